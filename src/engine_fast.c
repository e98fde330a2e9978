/*
 * engine_fast.c -- the CPU engine's fast per-individual kernels; see
 * engine_fast.h for what is hoisted and why. The readable per-pair reference
 * is iclv_core.h (the CUDA engine mirrors it); tests compare the two
 * (tests/testthat/test-engine-fast.R).
 */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "engine_fast.h"
#include "numerics.h"
#include "iclv_core.h"

/* Loops over the draws of a block (and over rows) are marked for SIMD
 * vectorisation (OpenMP 4 simd: the build compiles with OpenMP; without it
 * the marks are ignored and the loops stay scalar). A reduction lets the
 * compiler reorder the sum across lanes, the same way on every call, so the
 * results still do not depend on the number of threads. */
#ifdef _OPENMP
#define ICLV_PRAGMA(x) _Pragma(#x)
#define ICLV_SIMD _Pragma("omp simd")
#define ICLV_SIMD_SUM(v) ICLV_PRAGMA(omp simd reduction(+ : v))
#else
#define ICLV_SIMD
#define ICLV_SIMD_SUM(v)
#endif

/* Exponents beyond these leave a task / observation to the reference links:
 * with |W - max W| <= 200 and max a - min a <= 200 an MNL term E u is at
 * least e^-400 and a task probability at least e^-400 / J; with |s|, |tau|
 * <= 150 an ordered-logit factor 1 / ((1 + Ea)(1 + Eb)) is at least e^-301.
 * A running product kept in [2^-256, 1] therefore never underflows. */
#define FAST_MNL_RANGE 200.0
#define FAST_LOGIT_RANGE 150.0
#define PROD_FLOOR 0x1p-256
#define PROD_SCALE 0x1p256
#define PROD_LN_SCALE (256.0 * ICLV_LN2)
/* An ordered-logit factor F(b) F(-a) = 1 / (1 + x) with x below this goes
 * into the log terms as -log1p(x) instead of into the product, whose log
 * would round a log-likelihood this close to 0 (x < 2.4e-4: within 1e-12 of
 * the term in relative terms). */
#define LOGIT_NEAR1 0x1p-12
#define NPIECE 27
#define BLOCK_DRAWS 32 /* at most this many draws processed together by the LL and score pass */

static size_t pad8(size_t n) { return (n + 7) / 8 * 8; }

/* e^x within about 1 ulp of exp() for -708 <= x <= 708 (the callers' range;
 * outside it, and for NaN, exp() itself is called):
 * x = k ln2 + r with |r| <= ln2 / 2 (fdlibm's two-part ln 2, so k ln2_hi is
 * exact), e^r by its Taylor polynomial to r^13 / 13! (remainder below
 * 4e-18), times 2^k built in the exponent bits. Inline and branch-free in
 * the range: several times cheaper than a call to libm's exp. */
static inline double fast_exp(double x) {
  if (!(x >= -708.0 && x <= 708.0)) return exp(x);
  const double shift = 0x1.8p52;
  double kd = x * 0x1.71547652b82fep0 + shift;
  int64_t kb;
  memcpy(&kb, &kd, sizeof kb);
  kd -= shift;
  int64_t k = kb - (int64_t) 0x4338000000000000LL; /* round(x / ln 2) */
  double r = (x - kd * 6.93147180369123816490e-01) - kd * 1.90821492927058770002e-10;
  double p = 1.0 / 6227020800.0;
  p = p * r + 1.0 / 479001600.0;
  p = p * r + 1.0 / 39916800.0;
  p = p * r + 1.0 / 3628800.0;
  p = p * r + 1.0 / 362880.0;
  p = p * r + 1.0 / 40320.0;
  p = p * r + 1.0 / 5040.0;
  p = p * r + 1.0 / 720.0;
  p = p * r + 1.0 / 120.0;
  p = p * r + 1.0 / 24.0;
  p = p * r + 1.0 / 6.0;
  p = p * r + 0.5;
  p = p * r + 1.0;
  p = p * r + 1.0;
  uint64_t sb = (uint64_t) (k + 1023) << 52;
  double sc;
  memcpy(&sc, &sb, sizeof sc);
  return p * sc;
}

void iclv_fast_dims_init(const iclv_model *m, int R, iclv_fast_dims *fd) {
  int K = m->n_lv;
  fd->P = m->n_par;
  fd->K = K;
  fd->S = m->st_ptr[K];
  fd->J = m->n_alt > 0 ? m->n_alt : 1;
  fd->R = R;
  {
    /* blocks of equal size, at most BLOCK_DRAWS draws */
    int nblk = (R + BLOCK_DRAWS - 1) / BLOCK_DRAWS;
    fd->B = nblk > 0 ? (R + nblk - 1) / nblk : 1;
  }
  fd->Tmax = 0;
  fd->Omax = 0;
  for (int n = 0; n < m->n_ind; n++) {
    int T = m->row_ptr[n + 1] - m->row_ptr[n], O = m->obs_ptr[n + 1] - m->obs_ptr[n];
    if (T > fd->Tmax) fd->Tmax = T;
    if (O > fd->Omax) fd->Omax = O;
  }
  if (m->choice_type == ICLV_CHOICE_NONE) fd->Tmax = 0;
  fd->Ku = 0;
  fd->NU = m->choice_type != ICLV_CHOICE_NONE ? m->ut_ptr[m->n_alt] : 0;
  fd->lv_rowinv = m->choice_type == ICLV_CHOICE_MNL;
  if (m->choice_type != ICLV_CHOICE_NONE)
    for (int u = 0; u < m->ut_ptr[m->n_alt]; u++)
      if (m->ut_lv[u] >= 0) {
        if (m->ut_lv[u] + 1 > fd->Ku) fd->Ku = m->ut_lv[u] + 1;
        if (m->ut_col[u] >= 0) fd->lv_rowinv = 0;
      }
  fd->hess_ok = 1;
  for (int t = 0; t < fd->S; t++)
    if (m->st_src_type[t] == ICLV_SRC_LV) fd->hess_ok = 0;
}

/* sizes of the pieces, in the order they are laid out */
static void ws_sizes(const iclv_fast_dims *fd, size_t z[NPIECE]) {
  size_t T = (size_t) fd->Tmax, O = (size_t) fd->Omax, J = (size_t) fd->J, K = (size_t) fd->K;
  size_t Ku = (size_t) fd->Ku, P = (size_t) fd->P, S = (size_t) fd->S, JJ = J * J;
  z[0] = pad8(T * J);            /* W */
  z[1] = pad8(T * J * Ku);       /* L */
  z[2] = pad8(T * J);            /* Eu */
  z[3] = pad8(T);                /* tsafe */
  z[4] = pad8(T * J);            /* gV */
  z[5] = pad8(T * JJ);           /* HV */
  z[6] = pad8(T * J);            /* G0 */
  z[7] = pad8(T * J * Ku);       /* G1 */
  z[8] = pad8(T * JJ);           /* M0 */
  z[9] = pad8(T * Ku * JJ);      /* M1 */
  z[10] = pad8(T * Ku * Ku * JJ);/* M2 */
  z[11] = pad8(O * 5);           /* oc */
  z[12] = pad8(O * 2);           /* A0 */
  z[13] = pad8(O * K);           /* A1 */
  z[14] = pad8(K);               /* geta */
  z[15] = pad8(S);               /* Gst */
  z[16] = pad8(5 * J + K);       /* au */
  z[17] = pad8(P * K);           /* Hpe */
  z[18] = pad8(K * K);           /* Hee */
  z[19] = pad8(T);               /* tv */
  size_t B = (size_t) fd->B;
  z[20] = pad8(K * B);           /* bEta */
  z[21] = pad8(K * S * B);       /* bD */
  z[22] = pad8(K * B);           /* bGe */
  z[23] = pad8(8 * B);           /* bS */
  z[24] = pad8(O * 3 * B);       /* bOf */
  z[25] = pad8(T * J * B + 3 * J * B); /* bGv, then bU */
  z[26] = pad8(T * (size_t) fd->NU * 4); /* tl */
}

size_t iclv_fast_ws_doubles(const iclv_fast_dims *fd) {
  size_t z[NPIECE], tot = 0;
  ws_sizes(fd, z);
  for (int i = 0; i < NPIECE; i++) tot += z[i];
  return tot;
}

void iclv_fast_ws_bind(const iclv_fast_dims *fd, double *b, iclv_fast_ws *ws) {
  size_t z[NPIECE];
  ws_sizes(fd, z);
  double **dst[NPIECE] = {&ws->W, &ws->L, &ws->Eu, &ws->tsafe, &ws->gV, &ws->HV, &ws->G0,
                          &ws->G1, &ws->M0, &ws->M1, &ws->M2, &ws->oc, &ws->A0,
                          &ws->A1, &ws->geta, &ws->Gst, &ws->au, &ws->Hpe, &ws->Hee, &ws->tv,
                          &ws->bEta, &ws->bD, &ws->bGe, &ws->bS, &ws->bOf, &ws->bGv,
                          &ws->tl};
  for (int i = 0; i < NPIECE; i++) {
    *dst[i] = b;
    b += z[i];
  }
  ws->bU = ws->bGv + (size_t) fd->Tmax * fd->J * fd->B;
}

static void zero(double *x, size_t n) {
  for (size_t i = 0; i < n; i++) x[i] = 0.0;
}

/* ---- per-individual setup ------------------------------------------------- */

/* W, L (Ku LVs), Eu and tsafe of every choice row of individual n. */
static void setup_choice(const iclv_model *m, const iclv_fast_dims *fd, const double *theta,
                         int n, iclv_fast_ws *ws) {
  int J = fd->J, Ku = fd->Ku, Tm = fd->Tmax, t0 = m->row_ptr[n], T = m->row_ptr[n + 1] - t0;
  for (int i = 0; i < T; i++) {
    int t = t0 + i;
    const double *xr = m->X + (long) t * m->n_xcol;
    double *W = ws->W + (size_t) i * J, *L = ws->L + (size_t) i * J * Ku;
    for (int j = 0; j < J; j++) {
      double wj = 0.0;
      for (int k = 0; k < Ku; k++) L[j * Ku + k] = 0.0;
      for (int u = m->ut_ptr[j]; u < m->ut_ptr[j + 1]; u++) {
        double x = m->ut_col[u] >= 0 ? xr[m->ut_col[u]] : 1.0;
        double c = theta[m->ut_par[u]] * x;
        if (m->ut_lv[u] < 0) wj += c;
        else L[j * Ku + m->ut_lv[u]] += c;
      }
      W[j] = wj;
    }
    ws->tsafe[i] = 0.0;
    if (!fd->lv_rowinv) continue;
    double mx = -INFINITY;
    for (int j = 0; j < J; j++)
      if (iclv_available(m, t, j) && W[j] > mx) mx = W[j];
    int safe = mx > -INFINITY && mx < INFINITY;
    double *Eu = ws->Eu + i; /* column-major (J, Tm) */
    for (int j = 0; j < J; j++) {
      if (!iclv_available(m, t, j)) { Eu[(size_t) j * Tm] = 0.0; continue; }
      double dlt = W[j] - mx;
      if (!(dlt >= -FAST_MNL_RANGE)) safe = 0; /* also NaN */
      Eu[(size_t) j * Tm] = exp(dlt);
    }
    /* an unsafe row takes the reference link; harmless values meanwhile */
    if (!safe)
      for (int j = 0; j < J; j++) Eu[(size_t) j * Tm] = 1.0;
    ws->tsafe[i] = safe ? 1.0 : 0.0;
  }
}

/* Thresholds of observation o: parameter indices (or -1) and values. */
static void obs_thresholds(const iclv_model *m, const double *theta, int o, int *j_lo, int *j_hi) {
  int ind = m->obs_ind[o], C = m->ind_ncat[ind], c = (int) m->obs_val[o], thr = m->ind_thr[ind];
  *j_lo = c > 1 ? thr + c - 2 : -1;
  *j_hi = c < C ? thr + c - 1 : -1;
  (void) theta;
}

/* Per-observation constants oc (5 per observation) of individual n:
 *   ordered logit: exp(tau_lo) (0 without), exp(-tau_hi) (0 without),
 *     q = 1 / expm1(tau_hi - tau_lo) (0 unless both), log(1 - exp(tau_lo -
 *     tau_hi)) (0 unless both), 1 when the product form may be used;
 *   normal: -log sqrt(2 pi) - log(sd). */
static void setup_indicators(const iclv_model *m, const double *theta, int n, iclv_fast_ws *ws) {
  int o0 = m->obs_ptr[n], O = m->obs_ptr[n + 1] - o0;
  for (int i = 0; i < O; i++) {
    int o = o0 + i, ind = m->obs_ind[o], type = m->ind_type[ind];
    double *c = ws->oc + (size_t) i * 5;
    c[0] = c[1] = c[2] = c[3] = c[4] = 0.0;
    if (type == ICLV_IND_ORDERED_LOGIT) {
      int j_lo, j_hi;
      obs_thresholds(m, theta, o, &j_lo, &j_hi);
      int ok = 1;
      if (j_lo >= 0) {
        ok &= fabs(theta[j_lo]) <= FAST_LOGIT_RANGE;
        c[0] = exp(theta[j_lo]);
      }
      if (j_hi >= 0) {
        ok &= fabs(theta[j_hi]) <= FAST_LOGIT_RANGE;
        c[1] = exp(-theta[j_hi]);
      }
      if (j_lo >= 0 && j_hi >= 0) {
        c[2] = 1.0 / expm1(theta[j_hi] - theta[j_lo]);
        c[3] = iclv_log1mexp(theta[j_lo] - theta[j_hi]);
      }
      c[4] = ok ? 1.0 : 0.0;
    } else if (type == ICLV_IND_NORMAL) {
      c[0] = -ICLV_LN_SQRT_2PI - log(theta[m->ind_sd[ind]]);
    }
  }
}

/* ---- one draw --------------------------------------------------------------- */

/* Multiplies the running product by f, keeping it in [2^-256, 1]. */
static inline void prod_mul(double *prod, int *sc, double f) {
  double p = *prod * f;
  while (p < PROD_FLOOR && p > 0.0) {
    p *= PROD_SCALE;
    (*sc)++;
  }
  *prod = p;
}

/* Choice rows of individual n at one draw eta (the Hessian pass): gV
 * (column-major (J, Tm)) of every row, HV ((Tm, J, J)) of the rows that take
 * the reference link (the others, "fast rows", are those with *fast_out and
 * tsafe: their HV is -(diag p - p p')); adds d l / d eta to ws->geta (Ku
 * entries; for row-invariant L through the column sums cs_j = sum_t gV_tj);
 * multiplies fast rows' probabilities into the product; returns the sum of
 * the other rows' log probabilities. */
static double draw_choice(const iclv_model *m, const iclv_fast_dims *fd, int n, const double *eta,
                          iclv_fast_ws *ws, int *fast_out, double *prod, int *sc) {
  int J = fd->J, Ku = fd->Ku, Tm = fd->Tmax, t0 = m->row_ptr[n], T = m->row_ptr[n + 1] - t0;
  double lsum = 0.0;
  double *a = ws->au, *u = ws->au + J, *V = ws->au + 2 * J, *gt = ws->au + 3 * J;
  double *cs = ws->au + 4 * J;
  double *restrict gV = ws->gV;
  int fastd = 0;
  if (fd->lv_rowinv && T > 0) {
    double amax = -INFINITY, amin = INFINITY;
    for (int j = 0; j < J; j++) {
      double s = 0.0;
      for (int k = 0; k < Ku; k++) s += ws->L[j * Ku + k] * eta[k];
      a[j] = s;
      if (s > amax) amax = s;
      if (s < amin) amin = s;
    }
    if (amax - amin <= FAST_MNL_RANGE) {
      fastd = 1;
      for (int j = 0; j < J; j++)
        u[j] = (j > 0 && a[j] == a[j - 1]) ? u[j - 1] : fast_exp(a[j] - amax);
    }
  }
  if (fastd) {
    /* P_tj = E_tj u_j / sum_j E_tj u_j for every row at once */
    double *restrict inv = ws->tv;
    const double *restrict Eu = ws->Eu;
    for (int i = 0; i < T; i++) inv[i] = 0.0;
    for (int j = 0; j < J; j++) {
      double uj = u[j];
      const double *restrict E = Eu + (size_t) j * Tm;
      double *restrict g = gV + (size_t) j * Tm;
ICLV_SIMD
      for (int i = 0; i < T; i++) {
        double v = E[i] * uj;
        g[i] = v;
        inv[i] += v;
      }
    }
ICLV_SIMD
    for (int i = 0; i < T; i++) inv[i] = 1.0 / inv[i];
    for (int j = 0; j < J; j++) {
      double *restrict g = gV + (size_t) j * Tm;
ICLV_SIMD
      for (int i = 0; i < T; i++) g[i] *= -inv[i]; /* -P_tj */
    }
    double p = *prod;
    int c = *sc;
    for (int i = 0; i < T; i++) {
      double *gy = gV + (size_t) m->y[t0 + i] * Tm + i;
      double py = -*gy;
      *gy += 1.0;
      if (ws->tsafe[i] != 0.0) prod_mul(&p, &c, py);
    }
    *prod = p;
    *sc = c;
  }
  for (int i = 0; i < T; i++) {
    int t = t0 + i;
    double *HV = ws->HV + (size_t) i * J * J;
    if (fastd && ws->tsafe[i] != 0.0) continue;
    const double *W = ws->W + (size_t) i * J, *L = ws->L + (size_t) i * J * Ku;
    for (int j = 0; j < J; j++) {
      double v = W[j];
      for (int k = 0; k < Ku; k++) v += L[j * Ku + k] * eta[k];
      V[j] = v;
    }
    lsum += iclv_choice_link(m, t, V, gt, HV);
    for (int j = 0; j < J; j++) gV[(size_t) j * Tm + i] = gt[j];
  }
  if (fd->lv_rowinv) {
    for (int j = 0; j < J; j++) {
      const double *g = gV + (size_t) j * Tm;
      double c = 0.0;
      for (int i = 0; i < T; i++) c += g[i];
      cs[j] = c;
      for (int k = 0; k < Ku; k++) ws->geta[k] += c * ws->L[j * Ku + k];
    }
  } else {
    for (int i = 0; i < T; i++) {
      const double *L = ws->L + (size_t) i * J * Ku;
      for (int j = 0; j < J; j++) {
        double g = gV[(size_t) j * Tm + i];
        for (int k = 0; k < Ku; k++) ws->geta[k] += g * L[j * Ku + k];
      }
    }
  }
  *fast_out = fastd;
  return lsum;
}

/* An ordered-logit observation in product form (constants c of oc, index s
 * with |s| <= FAST_LOGIT_RANGE): F(b) - F(a) = F(b) F(-a) (1 - e^(a-b))
 * with e^a = c0 / e^s, e^-b = c1 e^s. Returns F(b) F(-a); sets d1, d2 (the
 * derivatives of log(F(b) - F(a)) by a and b: -F(a) - q and F(-b) + q) and
 * ka, kb (d log f / dx at a and b: 1 - 2 F(a), 2 F(-b) - 1). One division. */
static inline double logit_fast(const double *c, double s, double *d1, double *d2, double *ka,
                                double *kb) {
  double es = fast_exp(s);
  double e0 = es + c[0];       /* e^s (1 + e^a) */
  double e1 = 1.0 + c[1] * es; /* 1 + e^-b */
  double r = 1.0 / (e0 * e1);
  double fa = c[0] * r * e1;       /* F(a) */
  double fnb = c[1] * es * r * e0; /* F(-b) */
  *d1 = -fa - c[2];
  *d2 = fnb + c[2];
  *ka = 1.0 - 2.0 * fa;
  *kb = 2.0 * fnb - 1.0;
  return es * r;
}

/* ---- LL and score ------------------------------------------------------------ */

/* Multiplies every gradient accumulator of the individual by f. */
static void scale_acc(const iclv_fast_dims *fd, int T, int O, iclv_fast_ws *ws, double f) {
  size_t J = (size_t) fd->J, Ku = (size_t) fd->Ku, K = (size_t) fd->K;
  for (size_t i = 0; i < (size_t) fd->Tmax * J; i++) ws->G0[i] *= f;
  for (size_t i = 0; i < (size_t) T * J * Ku; i++) ws->G1[i] *= f;
  for (size_t i = 0; i < (size_t) O * 2; i++) ws->A0[i] *= f;
  for (size_t i = 0; i < (size_t) O * K; i++) ws->A1[i] *= f;
  for (int t = 0; t < fd->S; t++) ws->Gst[t] *= f;
}

/* The indicator observations of individual n for the nb draws of a block:
 * per observation i the derivatives d1, d2, c (bOf (i, 3, B)), d l / d eta
 * added to bGe (K, B), log terms to bS's lsum and product factors to its
 * running products. */
static void block_indicators(const iclv_model *m, const iclv_fast_dims *fd, const double *theta,
                             int n, int nb, iclv_fast_ws *ws) {
  int B = fd->B, o0 = m->obs_ptr[n], O = m->obs_ptr[n + 1] - o0;
  double *restrict ls = ws->bS, *restrict pr = ws->bS + B, *restrict sc = ws->bS + 2 * B;
  double *restrict sv = ws->bS + 5 * B;
  for (int i = 0; i < O; i++) {
    int o = o0 + i, ind = m->obs_ind[o], type = m->ind_type[ind];
    int q0 = m->ind_load_ptr[ind], q1 = m->ind_load_ptr[ind + 1];
    double y = m->obs_val[o];
    const double *c = ws->oc + (size_t) i * 5;
    double *restrict f0 = ws->bOf + (size_t) i * 3 * B, *restrict f1 = f0 + B, *restrict fc = f1 + B;
    ICLV_SIMD
    for (int b = 0; b < nb; b++) sv[b] = 0.0;
    for (int q = q0; q < q1; q++) {
      double th = theta[m->ind_load_par[q]];
      const double *restrict eb = ws->bEta + (size_t) m->ind_load_lv[q] * B;
      ICLV_SIMD
      for (int b = 0; b < nb; b++) sv[b] += th * eb[b];
    }
    int allfast = type == ICLV_IND_ORDERED_LOGIT && c[4] != 0.0;
    for (int b = 0; b < nb && allfast; b++) allfast = fabs(sv[b]) <= FAST_LOGIT_RANGE;
    if (allfast) {
      double c0 = c[0], c1 = c[1], c2 = c[2];
      /* the factor F(b) F(-a) = 1 / (1 + x) and x of each draw (bS slots 6, 7) */
      double *restrict fct = ws->bS + 6 * B, *restrict fx = ws->bS + 7 * B;
ICLV_SIMD
      for (int b = 0; b < nb; b++) {
        double es = fast_exp(sv[b]);
        double e0 = es + c0, e1 = 1.0 + c1 * es;
        double r = 1.0 / (e0 * e1);
        double d1 = -(c0 * r * e1) - c2, d2 = c1 * es * r * e0 + c2;
        f0[b] = d1;
        f1[b] = d2;
        fc[b] = -(d1 + d2);
        fx[b] = c0 / es + c1 * es + c0 * c1;
        fct[b] = es * r;
        ls[b] += c[3];
      }
      for (int b = 0; b < nb; b++) {
        if (fx[b] < LOGIT_NEAR1) ls[b] -= log1p(fx[b]);
        else pr[b] *= fct[b];
        while (pr[b] < PROD_FLOOR && pr[b] > 0.0) {
          pr[b] *= PROD_SCALE;
          sc[b] += 1.0;
        }
      }
    } else {
      for (int b = 0; b < nb; b++) {
        double s = sv[b], d1, d2, cs;
        if (type == ICLV_IND_ORDERED_PROBIT || type == ICLV_IND_ORDERED_LOGIT) {
          int j_lo, j_hi;
          obs_thresholds(m, theta, o, &j_lo, &j_hi);
          if (type == ICLV_IND_ORDERED_LOGIT && c[4] != 0.0 && fabs(s) <= FAST_LOGIT_RANGE) {
            double ka, kb, p = pr[b];
            int k = 0;
            double f = logit_fast(c, s, &d1, &d2, &ka, &kb);
            double es = fast_exp(s), x = c[0] / es + c[1] * es + c[0] * c[1];
            if (x < LOGIT_NEAR1) ls[b] -= log1p(x);
            else prod_mul(&p, &k, f);
            pr[b] = p;
            sc[b] += k;
            ls[b] += c[3];
          } else {
            double a = j_lo >= 0 ? theta[j_lo] - s : -INFINITY;
            double bb = j_hi >= 0 ? theta[j_hi] - s : INFINITY;
            ls[b] += type == ICLV_IND_ORDERED_PROBIT ? iclv_probit_logdiff(a, bb, &d1, &d2)
                                                     : iclv_logit_logdiff(a, bb, &d1, &d2);
          }
          cs = -(d1 + d2);
        } else if (type == ICLV_IND_NORMAL) {
          double sd = theta[m->ind_sd[ind]];
          double z = (y - theta[m->ind_icpt[ind]] - s) / sd;
          ls[b] += c[0] - 0.5 * z * z;
          d1 = z / sd;
          d2 = (z * z - 1.0) / sd;
          cs = d1;
        } else {
          double sg = y > 0.5 ? 1.0 : -1.0;
          double x = sg * (theta[m->ind_icpt[ind]] + s);
          double fl;
          if (type == ICLV_IND_BINARY_PROBIT) {
            ls[b] += iclv_log_pnorm(x);
            fl = iclv_inv_mills(x);
          } else {
            ls[b] += iclv_log_plogis(x);
            fl = iclv_plogis(-x);
          }
          d1 = sg * fl;
          d2 = 0.0;
          cs = d1;
        }
        f0[b] = d1;
        f1[b] = d2;
        fc[b] = cs;
      }
    }
    for (int q = q0; q < q1; q++) {
      double th = theta[m->ind_load_par[q]];
      double *restrict ge = ws->bGe + (size_t) m->ind_load_lv[q] * B;
      ICLV_SIMD
      for (int b = 0; b < nb; b++) ge[b] += fc[b] * th;
    }
  }
}

/* The choice rows of individual n for the nb draws of a block: gV of row
 * i, alternative j, draw b at bGv[(i J + j) B + b]; d l / d eta added to bGe;
 * with row-invariant L the column sums sum_i gV_ij at bU + 2 J B. Fast rows
 * (every draw of the block within the guards) vectorised over the draws;
 * the others through the reference link draw by draw. */
static void block_choice(const iclv_model *m, const iclv_fast_dims *fd, int n, int nb,
                         iclv_fast_ws *ws) {
  int B = fd->B, J = fd->J, Ku = fd->Ku, Tm = fd->Tmax, t0 = m->row_ptr[n];
  int T = m->row_ptr[n + 1] - t0;
  double *restrict ls = ws->bS, *restrict pr = ws->bS + B, *restrict sc = ws->bS + 2 * B;
  double *restrict tmp = ws->bS + 5 * B, *restrict amax = ws->bS + 6 * B;
  double *restrict A = ws->bU, *restrict U = ws->bU + (size_t) J * B;
  double *restrict CS = ws->bU + (size_t) 2 * J * B;
  double *V = ws->au + 2 * J, *gt = ws->au + 3 * J, *eta = ws->au + 5 * J;
  int fastd = 0;
  if (fd->lv_rowinv && T > 0) {
    /* a_jb = L_j eta_b, u_jb = exp(a_jb - max_j a_jb) */
    double *restrict amin = tmp;
    ICLV_SIMD
    for (int b = 0; b < nb; b++) {
      amax[b] = -INFINITY;
      amin[b] = INFINITY;
    }
    for (int j = 0; j < J; j++) {
      double *restrict a = A + (size_t) j * B;
      ICLV_SIMD
      for (int b = 0; b < nb; b++) a[b] = 0.0;
      for (int k = 0; k < Ku; k++) {
        double lk = ws->L[j * Ku + k];
        const double *restrict eb = ws->bEta + (size_t) k * B;
        ICLV_SIMD
        for (int b = 0; b < nb; b++) a[b] += lk * eb[b];
      }
      ICLV_SIMD
      for (int b = 0; b < nb; b++) {
        if (a[b] > amax[b]) amax[b] = a[b];
        if (a[b] < amin[b]) amin[b] = a[b];
      }
    }
    fastd = 1;
    ICLV_SIMD
    for (int b = 0; b < nb; b++) fastd &= amax[b] - amin[b] <= FAST_MNL_RANGE;
    if (fastd)
      for (int j = 0; j < J; j++) {
        const double *restrict a = A + (size_t) j * B;
        double *restrict u = U + (size_t) j * B;
        int same = -1; /* an earlier alternative with the same L row */
        for (int j2 = 0; j2 < j && same < 0; j2++) {
          int eq = 1;
          for (int k = 0; k < Ku; k++) eq &= ws->L[j2 * Ku + k] == ws->L[j * Ku + k];
          if (eq) same = j2;
        }
        if (same >= 0) {
          memcpy(u, U + (size_t) same * B, sizeof(double) * (size_t) nb);
          continue;
        }
ICLV_SIMD
        for (int b = 0; b < nb; b++) u[b] = fast_exp(a[b] - amax[b]);
      }
  }
  for (int i = 0; i < T; i++) {
    int t = t0 + i, yt = m->y[t];
    double *restrict g = ws->bGv + (size_t) i * J * B;
    if (fastd && ws->tsafe[i] != 0.0) {
      ICLV_SIMD
      for (int b = 0; b < nb; b++) tmp[b] = 0.0;
      for (int j = 0; j < J; j++) {
        double e = ws->Eu[(size_t) j * Tm + i];
        const double *restrict u = U + (size_t) j * B;
        double *restrict gj = g + (size_t) j * B;
ICLV_SIMD
        for (int b = 0; b < nb; b++) {
          double v = e * u[b];
          gj[b] = v;
          tmp[b] += v;
        }
      }
ICLV_SIMD
      for (int b = 0; b < nb; b++) tmp[b] = 1.0 / tmp[b];
      for (int j = 0; j < J; j++) {
        double *restrict gj = g + (size_t) j * B;
ICLV_SIMD
        for (int b = 0; b < nb; b++) gj[b] *= -tmp[b]; /* -P_tj */
      }
      double *restrict gy = g + (size_t) yt * B;
ICLV_SIMD
      for (int b = 0; b < nb; b++) {
        pr[b] *= -gy[b];
        gy[b] += 1.0;
      }
      for (int b = 0; b < nb; b++)
        while (pr[b] < PROD_FLOOR && pr[b] > 0.0) {
          pr[b] *= PROD_SCALE;
          sc[b] += 1.0;
        }
    } else {
      const double *W = ws->W + (size_t) i * J, *L = ws->L + (size_t) i * J * Ku;
      for (int b = 0; b < nb; b++) {
        for (int k = 0; k < Ku; k++) eta[k] = ws->bEta[(size_t) k * B + b];
        for (int j = 0; j < J; j++) {
          double v = W[j];
          for (int k = 0; k < Ku; k++) v += L[j * Ku + k] * eta[k];
          V[j] = v;
        }
        ls[b] += iclv_choice_link(m, t, V, gt, (double *) 0);
        for (int j = 0; j < J; j++) g[(size_t) j * B + b] = gt[j];
      }
    }
  }
  /* d l / d eta */
  if (fd->lv_rowinv) {
    for (int j = 0; j < J; j++) {
      double *restrict cs = CS + (size_t) j * B;
      ICLV_SIMD
      for (int b = 0; b < nb; b++) cs[b] = 0.0;
      for (int i = 0; i < T; i++) {
        const double *restrict gj = ws->bGv + ((size_t) i * J + j) * B;
        ICLV_SIMD
        for (int b = 0; b < nb; b++) cs[b] += gj[b];
      }
      for (int k = 0; k < Ku; k++) {
        double lk = ws->L[j * Ku + k];
        double *restrict ge = ws->bGe + (size_t) k * B;
        ICLV_SIMD
        for (int b = 0; b < nb; b++) ge[b] += cs[b] * lk;
      }
    }
  } else {
    for (int i = 0; i < T; i++) {
      const double *L = ws->L + (size_t) i * J * Ku;
      for (int j = 0; j < J; j++) {
        const double *restrict gj = ws->bGv + ((size_t) i * J + j) * B;
        for (int k = 0; k < Ku; k++) {
          double lk = L[j * Ku + k];
          double *restrict ge = ws->bGe + (size_t) k * B;
          ICLV_SIMD
          for (int b = 0; b < nb; b++) ge[b] += gj[b] * lk;
        }
      }
    }
  }
}

/* sum_b w[b] x[b] over a block. */
static inline double wdot(const double *restrict w, const double *restrict x, int nb) {
  double acc = 0.0;
  ICLV_SIMD_SUM(acc)
  for (int b = 0; b < nb; b++) acc += w[b] * x[b];
  return acc;
}

double iclv_fast_individual(const iclv_model *m, const iclv_fast_dims *fd, const double *theta,
                            int n, const double *E, iclv_pair_ws *pws, iclv_fast_ws *ws,
                            double *lr, double *score) {
  int R = fd->R, K = fd->K, Ku = fd->Ku, J = fd->J, S = fd->S, P = fd->P, Tm = fd->Tmax;
  int B = fd->B;
  int has_choice = m->choice_type != ICLV_CHOICE_NONE;
  int t0 = m->row_ptr[n], T = has_choice ? m->row_ptr[n + 1] - t0 : 0;
  int o0 = m->obs_ptr[n], O = m->obs_ptr[n + 1] - o0;
  int want_g = score != NULL;
  double *eta = pws->eta, *D = pws->D;
  double *ls = ws->bS, *pr = ws->bS + B, *sc = ws->bS + 2 * B, *lb = ws->bS + 3 * B;
  double *wt = ws->bS + 4 * B, *tmp = ws->bS + 5 * B;
  if (has_choice) setup_choice(m, fd, theta, n, ws);
  setup_indicators(m, theta, n, ws);
  if (want_g) {
    zero(ws->G0, (size_t) Tm * J);
    zero(ws->G1, (size_t) T * J * Ku);
    zero(ws->A0, (size_t) O * 2);
    zero(ws->A1, (size_t) O * K);
    zero(ws->Gst, (size_t) S);
  }
  double ref = -INFINITY, wsum = 0.0;
  int any_nan = 0, any_inf = 0;
  for (int r0 = 0; r0 < R; r0 += B) {
    int nb = R - r0 < B ? R - r0 : B;
    /* LVs (and d eta / d phi) of each draw */
    for (int b = 0; b < nb; b++) {
      iclv_structural(m, theta, n, E + (size_t) (r0 + b) * K, eta, want_g ? D : (double *) 0,
                      (double *) 0);
      for (int k = 0; k < K; k++) ws->bEta[(size_t) k * B + b] = eta[k];
      if (want_g)
        for (int i = 0; i < K * S; i++) ws->bD[(size_t) i * B + b] = D[i];
      ls[b] = 0.0;
      pr[b] = 1.0;
      sc[b] = 0.0;
    }
    zero(ws->bGe, (size_t) K * B);
    block_indicators(m, fd, theta, n, nb, ws);
    if (has_choice) block_choice(m, fd, n, nb, ws);
    /* l_nr and the block's weights against the running maximum */
    double bmax = -INFINITY;
    ICLV_SIMD
    for (int b = 0; b < nb; b++) {
      double l = ls[b] + log(pr[b]) - sc[b] * PROD_LN_SCALE;
      lb[b] = l;
      lr[r0 + b] = l;
      if (l != l) any_nan = 1;
      else if (l == INFINITY) any_inf = 1;
      else if (l > bmax) bmax = l;
    }
    if (bmax == -INFINITY) continue;
    if (bmax > ref) {
      /* new running maximum: rescale what was accumulated against the old */
      if (wsum > 0.0) {
        double f = fast_exp(ref - bmax);
        wsum *= f;
        if (want_g) scale_acc(fd, T, O, ws, f);
      }
      ref = bmax;
    }
    double bsum = 0.0;
    ICLV_SIMD
    for (int b = 0; b < nb; b++) {
      double l = lb[b];
      wt[b] = (l == l && l < INFINITY) ? fast_exp(l - ref) : 0.0;
      bsum += wt[b];
    }
    wsum += bsum;
    if (!want_g) continue;
    for (int i = 0; i < T; i++)
      for (int j = 0; j < J; j++)
        ws->G0[(size_t) j * Tm + i] += wdot(wt, ws->bGv + ((size_t) i * J + j) * B, nb);
    if (fd->lv_rowinv) {
      /* row-invariant LV terms (no attribute): only sum_t gV_tj matters */
      for (int j = 0; j < J && T > 0; j++)
        for (int k = 0; k < Ku; k++) {
          const double *cs = ws->bU + ((size_t) 2 * J + j) * B, *eb = ws->bEta + (size_t) k * B;
          ICLV_SIMD
          for (int b = 0; b < nb; b++) tmp[b] = cs[b] * eb[b];
          ws->G1[j * Ku + k] += wdot(wt, tmp, nb);
        }
    } else {
      for (int i = 0; i < T; i++)
        for (int j = 0; j < J; j++) {
          const double *g = ws->bGv + ((size_t) i * J + j) * B;
          for (int k = 0; k < Ku; k++) {
            const double *eb = ws->bEta + (size_t) k * B;
            ICLV_SIMD
            for (int b = 0; b < nb; b++) tmp[b] = g[b] * eb[b];
            ws->G1[((size_t) i * J + j) * Ku + k] += wdot(wt, tmp, nb);
          }
        }
    }
    for (int i = 0; i < O; i++) {
      const double *f0 = ws->bOf + (size_t) i * 3 * B, *f1 = f0 + B, *fc = f1 + B;
      ws->A0[2 * i] += wdot(wt, f0, nb);
      ws->A0[2 * i + 1] += wdot(wt, f1, nb);
      for (int k = 0; k < K; k++) {
        const double *eb = ws->bEta + (size_t) k * B;
        ICLV_SIMD
        for (int b = 0; b < nb; b++) tmp[b] = fc[b] * eb[b];
        ws->A1[(size_t) i * K + k] += wdot(wt, tmp, nb);
      }
    }
    for (int t = 0; t < S; t++) {
      ICLV_SIMD
      for (int b = 0; b < nb; b++) tmp[b] = 0.0;
      for (int k = 0; k < K; k++) {
        const double *ge = ws->bGe + (size_t) k * B, *dk = ws->bD + ((size_t) k * S + t) * B;
        ICLV_SIMD
        for (int b = 0; b < nb; b++) tmp[b] += ge[b] * dk[b];
      }
      ws->Gst[t] += wdot(wt, tmp, nb);
    }
  }
  if (any_nan) return NAN;
  if (any_inf) return INFINITY;
  if (!(wsum > 0.0)) return -INFINITY;
  double lse = ref + log(wsum);
  if (!want_g) return lse - log((double) R);

  /* the score: weighted sums times the draw-invariant directions */
  for (int p = 0; p < P; p++) score[p] = 0.0;
  for (int i = 0; i < T; i++) {
    const double *xr = m->X + (long) (t0 + i) * m->n_xcol;
    for (int j = 0; j < J; j++) {
      double g0 = ws->G0[(size_t) j * Tm + i];
      const double *g1 = ws->G1 + ((size_t) i * J + j) * Ku;
      for (int u = m->ut_ptr[j]; u < m->ut_ptr[j + 1]; u++) {
        double x = m->ut_col[u] >= 0 ? xr[m->ut_col[u]] : 1.0;
        if (m->ut_lv[u] < 0) score[m->ut_par[u]] += x * g0;
        else if (!fd->lv_rowinv) score[m->ut_par[u]] += x * g1[m->ut_lv[u]];
      }
    }
  }
  if (fd->lv_rowinv && T > 0)
    for (int j = 0; j < J; j++)
      for (int u = m->ut_ptr[j]; u < m->ut_ptr[j + 1]; u++)
        if (m->ut_lv[u] >= 0) score[m->ut_par[u]] += ws->G1[j * Ku + m->ut_lv[u]];
  for (int i = 0; i < O; i++) {
    int o = o0 + i, ind = m->obs_ind[o], type = m->ind_type[ind];
    const double *a0 = ws->A0 + 2 * i;
    if (type == ICLV_IND_ORDERED_PROBIT || type == ICLV_IND_ORDERED_LOGIT) {
      int j_lo, j_hi;
      obs_thresholds(m, theta, o, &j_lo, &j_hi);
      if (j_lo >= 0) score[j_lo] += a0[0];
      if (j_hi >= 0) score[j_hi] += a0[1];
    } else if (type == ICLV_IND_NORMAL) {
      score[m->ind_icpt[ind]] += a0[0];
      score[m->ind_sd[ind]] += a0[1];
    } else {
      score[m->ind_icpt[ind]] += a0[0];
    }
    for (int q = m->ind_load_ptr[ind]; q < m->ind_load_ptr[ind + 1]; q++)
      score[m->ind_load_par[q]] += ws->A1[(size_t) i * K + m->ind_load_lv[q]];
  }
  for (int t = 0; t < S; t++) score[m->st_par[t]] += ws->Gst[t];
  for (int p = 0; p < P; p++) score[p] /= wsum;
  return lse - log((double) R);
}

/* ---- Hessian ------------------------------------------------------------------ */

/* Extended gradient (into g) and Hessian (into h) of indicator observation o
 * at eta, as iclv_indicator_atom(); an ordered-logit observation within the
 * guards uses the product form (logit_fast), the others the reference atom.
 * c: the observation's constants (oc). */
static void hess_indicator(const iclv_model *m, const double *theta, const double *eta, int o,
                           const double *c, double *g, iclv_hess *h) {
  int ind = m->obs_ind[o];
  if (m->ind_type[ind] != ICLV_IND_ORDERED_LOGIT || c[4] == 0.0) {
    iclv_indicator_atom(m, theta, eta, o, g, h);
    return;
  }
  double s = iclv_ind_index(m, theta, eta, ind);
  if (!(fabs(s) <= FAST_LOGIT_RANGE)) {
    iclv_indicator_atom(m, theta, eta, o, g, h);
    return;
  }
  int j_lo, j_hi;
  obs_thresholds(m, theta, o, &j_lo, &j_hi);
  double fa, fb, ka, kb, faa, fab, fbb;
  logit_fast(c, s, &fa, &fb, &ka, &kb);
  if (j_lo < 0) ka = 0.0;
  if (j_hi < 0) kb = 0.0;
  if (j_lo >= 0) g[j_lo] += fa;
  if (j_hi >= 0) g[j_hi] += fb;
  iclv_ind_index_grad(m, theta, eta, ind, -(fa + fb), g);
  iclv_logdiff_second(fa, fb, ka, kb, &faa, &fab, &fbb);
  if (j_lo >= 0) iclv_hcell(h, j_lo, j_lo, faa);
  if (j_hi >= 0) iclv_hcell(h, j_hi, j_hi, fbb);
  if (j_lo >= 0 && j_hi >= 0) iclv_hsym(h, j_lo, j_hi, fab);
  int ju[2] = {j_lo, j_hi};
  double cu[2] = {-(faa + fab), -(fab + fbb)};
  iclv_ind_index_hess(m, theta, eta, ind, faa + 2.0 * fab + fbb, -(fa + fb), 2, ju, cu, h);
}

/* One utility term of one row of an individual, with x != 0 (the per-draw
 * gradient of the Hessian pass reads these instead of the model's CSR). */
typedef struct {
  int par, idx, lv; /* parameter, index of its gV (j Tm + i), LV or -1 */
  double x;         /* attribute value (1 without one) */
} term_e;

/* Sorts t[0..n-1] by parameter (heapsort: in place, no allocation), so that
 * the terms of one parameter are adjacent. */
static void sort_terms(term_e *t, int n) {
  for (int start = n / 2 - 1, end = n; ; ) {
    int root;
    term_e tmp;
    if (start >= 0) {
      root = start--;
    } else {
      if (--end <= 0) return;
      tmp = t[0]; t[0] = t[end]; t[end] = tmp;
      root = 0;
    }
    for (;;) { /* sift down within [0, end) */
      int c = 2 * root + 1;
      if (c >= end) break;
      if (c + 1 < end && t[c + 1].par > t[c].par) c++;
      if (t[c].par <= t[root].par) break;
      tmp = t[c]; t[c] = t[root]; t[root] = tmp;
      root = c;
    }
  }
}

/* Weighted sum of HV (row i, alternatives j, j2) times the LV factors of two
 * utility terms: f_a f_b with f = eta_lv, or 1 for lv < 0. */
static inline double msum(const iclv_fast_ws *ws, int Ku, int J, int i, int la, int lb, int j,
                          int j2) {
  size_t JJ = (size_t) J * J, c = (size_t) j * J + j2;
  if (la < 0 && lb < 0) return ws->M0[(size_t) i * JJ + c];
  if (la < 0) return ws->M1[((size_t) i * Ku + lb) * JJ + c];
  if (lb < 0) return ws->M1[((size_t) i * Ku + la) * JJ + c];
  return ws->M2[(((size_t) i * Ku + la) * Ku + lb) * JJ + c];
}

void iclv_fast_hessian(const iclv_model *m, const iclv_fast_dims *fd, const double *theta,
                       int n, const double *E, iclv_pair_ws *pws, iclv_fast_ws *ws,
                       const double *wr, double *G, size_t ldg, double *gtmp, double *Hpe_d,
                       double *Hee_d, double *Hn) {
  int R = fd->R, K = fd->K, Ku = fd->Ku, J = fd->J, P = fd->P, Tm = fd->Tmax;
  size_t JJ = (size_t) J * J;
  int has_choice = m->choice_type != ICLV_CHOICE_NONE;
  int t0 = m->row_ptr[n], T = has_choice ? m->row_ptr[n + 1] - t0 : 0;
  double *eta = pws->eta, *D = pws->D;
  if (has_choice) setup_choice(m, fd, theta, n, ws);
  setup_indicators(m, theta, n, ws);
  /* the utility terms with a non-zero attribute, each as (parameter, index
   * of its gV, x, lv): attribute-free terms first (n0 of them), then LV terms */
  int n0 = 0, nl = 0;
  for (int pass = 0; pass < 2; pass++)
    for (int i = 0; i < T; i++) {
      const double *xr = m->X + (long) (t0 + i) * m->n_xcol;
      for (int j = 0; j < J; j++)
        for (int u = m->ut_ptr[j]; u < m->ut_ptr[j + 1]; u++) {
          if ((m->ut_lv[u] >= 0) != pass) continue;
          double x = m->ut_col[u] >= 0 ? xr[m->ut_col[u]] : 1.0;
          if (x == 0.0) continue;
          term_e *e = (term_e *) ws->tl + (n0 + nl);
          e->par = m->ut_par[u];
          e->idx = j * Tm + i;
          e->lv = m->ut_lv[u];
          e->x = x;
          if (pass == 0) n0++;
          else nl++;
        }
    }
  sort_terms((term_e *) ws->tl, n0);
  zero(ws->G0, (size_t) Tm * J);
  zero(ws->M0, (size_t) T * JJ);
  zero(ws->M1, (size_t) T * Ku * JJ);
  zero(ws->M2, (size_t) T * Ku * Ku * JJ);
  zero(ws->Hpe, (size_t) P * K);
  zero(ws->Hee, (size_t) K * K);
  iclv_hess h;
  h.P = P;
  h.K = K;
  h.Hpp = Hn;
  h.Hpe = Hpe_d;
  h.Hee = Hee_d;
  for (int r = 0; r < R; r++) {
    double w = wr[r];
    if (w == 0.0) continue;
    iclv_structural(m, theta, n, E + (size_t) r * K, eta, D, (double *) 0);
    zero(gtmp, (size_t) P + K);
    zero(Hpe_d, (size_t) P * K);
    zero(Hee_d, (size_t) K * K);
    h.w = w;
    for (int o = m->obs_ptr[n]; o < m->obs_ptr[n + 1]; o++)
      hess_indicator(m, theta, eta, o, ws->oc + (size_t) (o - m->obs_ptr[n]) * 5, gtmp, &h);
    if (has_choice) {
      double prod = 1.0;
      int sc = 0;
      for (int k = 0; k < K; k++) ws->geta[k] = 0.0;
      int fastd = 0;
      draw_choice(m, fd, n, eta, ws, &fastd, &prod, &sc);
      for (int k = 0; k < Ku; k++) gtmp[P + k] += ws->geta[k];
      /* g_r of the utility parameters from the term lists */
      const term_e *e = (const term_e *) ws->tl;
      const double *gVr = ws->gV;
      for (int q = 0; q < n0;) { /* one parameter's terms at a time */
        int par = e[q].par;
        double acc = 0.0;
        for (; q < n0 && e[q].par == par; q++) acc += gVr[e[q].idx] * e[q].x;
        gtmp[par] += acc;
      }
      for (int q = n0; q < n0 + nl; q++) gtmp[e[q].par] += gVr[e[q].idx] * e[q].x * eta[e[q].lv];
      double *restrict p = ws->au; /* (J) */
      for (int i = 0; i < T; i++) {
        for (int j = 0; j < J; j++) ws->G0[(size_t) j * Tm + i] += w * ws->gV[(size_t) j * Tm + i];
        /* M += w f HV with f = 1, eta_k, eta_k eta_l; a fast row's HV is
         * -(diag p - p p') with p_j = y_j - gV_j, added as such */
        double *restrict HV = ws->HV + (size_t) i * JJ;
        if (fastd && ws->tsafe[i] != 0.0) {
          for (int j = 0; j < J; j++)
            p[j] = (j == m->y[t0 + i] ? 1.0 : 0.0) - ws->gV[(size_t) j * Tm + i];
          for (int j = 0; j < J; j++) {
            double pj = p[j];
            for (int j2 = 0; j2 < J; j2++) HV[j * J + j2] = pj * p[j2];
            HV[j * J + j] -= pj;
          }
        }
        for (int k = -1; k < Ku; k++)
          for (int l = -1; l < (k < 0 ? 0 : Ku); l++) {
            double *restrict Mx = k < 0 ? ws->M0 + (size_t) i * JJ
                                : l < 0 ? ws->M1 + ((size_t) i * Ku + k) * JJ
                                : ws->M2 + (((size_t) i * Ku + k) * Ku + l) * JJ;
            double f = w * (k >= 0 ? eta[k] : 1.0) * (l >= 0 ? eta[l] : 1.0);
            ICLV_SIMD
            for (size_t c = 0; c < JJ; c++) Mx[c] += f * HV[c];
          }
      }
    }
    for (size_t i = 0; i < (size_t) P * K; i++) ws->Hpe[i] += w * Hpe_d[i];
    for (int i = 0; i < K * K; i++) ws->Hee[i] += w * Hee_d[i];
    iclv_fold_gradient(m, D, gtmp);
    memcpy(G + (size_t) r * ldg, gtmp, sizeof(double) * (size_t) P);
  }

  /* the choice rows' second derivatives from the weighted sums, once */
  iclv_hess hb;
  hb.P = P;
  hb.K = K;
  hb.w = 1.0;
  hb.Hpp = Hn;
  hb.Hpe = ws->Hpe;
  hb.Hee = ws->Hee;
  for (int i = 0; i < T; i++) {
    const double *xr = m->X + (long) (t0 + i) * m->n_xcol;
    const double *L = ws->L + (size_t) i * J * Ku;
    for (int j = 0; j < J; j++) {
      for (int j2 = 0; j2 < J; j2++) {
        if (ws->M0[(size_t) i * JJ + (size_t) j * J + j2] == 0.0) continue;
        for (int u = m->ut_ptr[j]; u < m->ut_ptr[j + 1]; u++) {
          double x = m->ut_col[u] >= 0 ? xr[m->ut_col[u]] : 1.0;
          if (x == 0.0) continue;
          int lv = m->ut_lv[u], pu = m->ut_par[u];
          for (int u2 = m->ut_ptr[j2]; u2 < m->ut_ptr[j2 + 1]; u2++) {
            double x2 = m->ut_col[u2] >= 0 ? xr[m->ut_col[u2]] : 1.0;
            if (x2 == 0.0) continue;
            iclv_hcell(&hb, pu, m->ut_par[u2], x * x2 * msum(ws, Ku, J, i, lv, m->ut_lv[u2], j, j2));
          }
          double mp = msum(ws, Ku, J, i, lv, -1, j, j2);
          for (int l = 0; l < Ku; l++)
            if (L[j2 * Ku + l] != 0.0) iclv_hcell(&hb, pu, P + l, x * L[j2 * Ku + l] * mp);
        }
        double m0 = ws->M0[(size_t) i * JJ + (size_t) j * J + j2];
        for (int k = 0; k < Ku; k++)
          for (int l = 0; l < Ku; l++)
            iclv_hcell(&hb, P + k, P + l, L[j * Ku + k] * L[j2 * Ku + l] * m0);
      }
      double g0 = ws->G0[(size_t) j * Tm + i];
      if (g0 == 0.0) continue;
      for (int u = m->ut_ptr[j]; u < m->ut_ptr[j + 1]; u++) {
        if (m->ut_lv[u] < 0) continue;
        double x = m->ut_col[u] >= 0 ? xr[m->ut_col[u]] : 1.0;
        iclv_hsym(&hb, m->ut_par[u], P + m->ut_lv[u], x * g0);
      }
    }
  }
  /* d eta / d phi does not depend on the draw (hess_ok): fold once */
  iclv_fold_hessian(m, D, (double *) 0, ws->geta, &hb);
}
