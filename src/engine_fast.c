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
#define NPIECE 21

static size_t pad8(size_t n) { return (n + 7) / 8 * 8; }

/* e^x for -708 <= x <= 708 (callers guarantee the range; below it returns
 * 0, as exp would return a subnormal or 0), within about 1 ulp of exp():
 * x = k ln2 + r with |r| <= ln2 / 2 (fdlibm's two-part ln 2, so k ln2_hi is
 * exact), e^r by its Taylor polynomial to r^13 / 13! (remainder below
 * 4e-18), times 2^k built in the exponent bits. Inline and branch-free in
 * the range: several times cheaper than a call to libm's exp. */
static inline double fast_exp(double x) {
  if (!(x >= -708.0)) return x != x ? x : 0.0;
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
  fd->Tmax = 0;
  fd->Omax = 0;
  for (int n = 0; n < m->n_ind; n++) {
    int T = m->row_ptr[n + 1] - m->row_ptr[n], O = m->obs_ptr[n + 1] - m->obs_ptr[n];
    if (T > fd->Tmax) fd->Tmax = T;
    if (O > fd->Omax) fd->Omax = O;
  }
  if (m->choice_type == ICLV_CHOICE_NONE) fd->Tmax = 0;
  fd->Ku = 0;
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
  z[12] = pad8(O * 3);           /* of */
  z[13] = pad8(O * 2);           /* A0 */
  z[14] = pad8(O * K);           /* A1 */
  z[15] = pad8(K);               /* geta */
  z[16] = pad8(S);               /* Gst */
  z[17] = pad8(5 * J);           /* au */
  z[18] = pad8(P * K);           /* Hpe */
  z[19] = pad8(K * K);           /* Hee */
  z[20] = pad8(T);               /* tv */
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
                          &ws->G1, &ws->M0, &ws->M1, &ws->M2, &ws->oc, &ws->of, &ws->A0,
                          &ws->A1, &ws->geta, &ws->Gst, &ws->au, &ws->Hpe, &ws->Hee, &ws->tv};
  for (int i = 0; i < NPIECE; i++) {
    *dst[i] = b;
    b += z[i];
  }
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

/* Choice rows of individual n at eta: gV (column-major (J, Tm)) and, when
 * want_hv, HV ((Tm, J, J)) of every row; adds d l / d eta to ws->geta (Ku
 * entries; for row-invariant L through the column sums cs_j = sum_t gV_tj,
 * left in au + 4J); multiplies fast rows' probabilities into the product;
 * returns the sum of the other rows' log probabilities. The fast rows are
 * done together, vectorisable over rows. */
static double draw_choice(const iclv_model *m, const iclv_fast_dims *fd, int n, const double *eta,
                          iclv_fast_ws *ws, int want_hv, double *prod, int *sc) {
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
#ifdef _OPENMP
#pragma omp simd
#endif
      for (int i = 0; i < T; i++) {
        double v = E[i] * uj;
        g[i] = v;
        inv[i] += v;
      }
    }
#ifdef _OPENMP
#pragma omp simd
#endif
    for (int i = 0; i < T; i++) inv[i] = 1.0 / inv[i];
    for (int j = 0; j < J; j++) {
      double *restrict g = gV + (size_t) j * Tm;
#ifdef _OPENMP
#pragma omp simd
#endif
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
    double *HV = want_hv ? ws->HV + (size_t) i * J * J : (double *) 0;
    if (fastd && ws->tsafe[i] != 0.0) {
      if (HV) {
        /* HV = -(diag p - p p'), p_j = y_j - gV_j */
        for (int j = 0; j < J; j++) gt[j] = (j == m->y[t] ? 1.0 : 0.0) - gV[(size_t) j * Tm + i];
        for (int j = 0; j < J; j++)
          for (int j2 = 0; j2 < J; j2++) HV[j * J + j2] = (j == j2 ? -gt[j] : 0.0) + gt[j] * gt[j2];
      }
      continue;
    }
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

/* Indicator observations of individual n at eta: of = (d1, d2, c) per
 * observation (ordered: d/da, d/db, -(d1 + d2); normal: d/dmu, d/dsd, d1;
 * binary: d/da, 0, d1), d l / d eta added to ws->geta; ordered-logit
 * factors go into the product; returns the sum of the other log terms. */
static double draw_indicators(const iclv_model *m, const double *theta, int n, const double *eta,
                              iclv_fast_ws *ws, double *prod, int *sc) {
  int o0 = m->obs_ptr[n], O = m->obs_ptr[n + 1] - o0;
  double lsum = 0.0;
  for (int i = 0; i < O; i++) {
    int o = o0 + i, ind = m->obs_ind[o], type = m->ind_type[ind];
    double y = m->obs_val[o];
    double s = iclv_ind_index(m, theta, eta, ind);
    const double *c = ws->oc + (size_t) i * 5;
    double d1, d2, cs;
    if (type == ICLV_IND_ORDERED_PROBIT || type == ICLV_IND_ORDERED_LOGIT) {
      int j_lo, j_hi;
      obs_thresholds(m, theta, o, &j_lo, &j_hi);
      if (type == ICLV_IND_ORDERED_LOGIT && c[4] != 0.0 && fabs(s) <= FAST_LOGIT_RANGE) {
        double ka, kb;
        prod_mul(prod, sc, logit_fast(c, s, &d1, &d2, &ka, &kb));
        lsum += c[3];
      } else {
        double a = j_lo >= 0 ? theta[j_lo] - s : -INFINITY;
        double b = j_hi >= 0 ? theta[j_hi] - s : INFINITY;
        lsum += type == ICLV_IND_ORDERED_PROBIT ? iclv_probit_logdiff(a, b, &d1, &d2)
                                                : iclv_logit_logdiff(a, b, &d1, &d2);
      }
      cs = -(d1 + d2);
    } else if (type == ICLV_IND_NORMAL) {
      double sd = theta[m->ind_sd[ind]];
      double z = (y - theta[m->ind_icpt[ind]] - s) / sd;
      lsum += c[0] - 0.5 * z * z;
      d1 = z / sd;
      d2 = (z * z - 1.0) / sd;
      cs = d1;
    } else {
      double sg = y > 0.5 ? 1.0 : -1.0;
      double x = sg * (theta[m->ind_icpt[ind]] + s);
      double f1;
      if (type == ICLV_IND_BINARY_PROBIT) {
        lsum += iclv_log_pnorm(x);
        f1 = iclv_inv_mills(x);
      } else {
        lsum += iclv_log_plogis(x);
        f1 = iclv_plogis(-x);
      }
      d1 = sg * f1;
      d2 = 0.0;
      cs = d1;
    }
    double *f = ws->of + (size_t) i * 3;
    f[0] = d1;
    f[1] = d2;
    f[2] = cs;
    for (int q = m->ind_load_ptr[ind]; q < m->ind_load_ptr[ind + 1]; q++)
      ws->geta[m->ind_load_lv[q]] += cs * theta[m->ind_load_par[q]];
  }
  return lsum;
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

double iclv_fast_individual(const iclv_model *m, const iclv_fast_dims *fd, const double *theta,
                            int n, const double *E, iclv_pair_ws *pws, iclv_fast_ws *ws,
                            double *lr, double *score) {
  int R = fd->R, K = fd->K, Ku = fd->Ku, J = fd->J, S = fd->S, P = fd->P, Tm = fd->Tmax;
  int has_choice = m->choice_type != ICLV_CHOICE_NONE;
  int t0 = m->row_ptr[n], T = has_choice ? m->row_ptr[n + 1] - t0 : 0;
  int o0 = m->obs_ptr[n], O = m->obs_ptr[n + 1] - o0;
  int want_g = score != NULL;
  double *eta = pws->eta, *D = pws->D;
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
  for (int r = 0; r < R; r++) {
    iclv_structural(m, theta, n, E + (size_t) r * K, eta, want_g ? D : (double *) 0,
                    (double *) 0);
    for (int k = 0; k < K; k++) ws->geta[k] = 0.0;
    double prod = 1.0;
    int sc = 0;
    double l = draw_indicators(m, theta, n, eta, ws, &prod, &sc);
    if (has_choice) l += draw_choice(m, fd, n, eta, ws, 0, &prod, &sc);
    l += log(prod) - (double) sc * PROD_LN_SCALE;
    lr[r] = l;
    if (l != l) { any_nan = 1; continue; }
    if (l == INFINITY) { any_inf = 1; continue; }
    if (l == -INFINITY) continue;
    if (l > ref) {
      /* new running maximum: rescale what was accumulated against the old */
      if (wsum > 0.0) {
        double f = fast_exp(ref - l);
        wsum *= f;
        if (want_g) scale_acc(fd, T, O, ws, f);
      }
      ref = l;
    }
    double wt = fast_exp(l - ref);
    if (wt == 0.0) continue;
    wsum += wt;
    if (!want_g) continue;
    for (int j = 0; j < J; j++) {
      const double *restrict g = ws->gV + (size_t) j * Tm;
      double *restrict G = ws->G0 + (size_t) j * Tm;
#ifdef _OPENMP
#pragma omp simd
#endif
      for (int i = 0; i < T; i++) G[i] += wt * g[i];
    }
    if (fd->lv_rowinv) {
      /* row-invariant LV terms (no attribute): only sum_t gV_tj matters */
      const double *cs = ws->au + 4 * J;
      for (int j = 0; j < J && T > 0; j++)
        for (int k = 0; k < Ku; k++) ws->G1[j * Ku + k] += wt * cs[j] * eta[k];
    } else {
      for (int i = 0; i < T; i++)
        for (int j = 0; j < J; j++) {
          double g = wt * ws->gV[(size_t) j * Tm + i];
          for (int k = 0; k < Ku; k++) ws->G1[((size_t) i * J + j) * Ku + k] += g * eta[k];
        }
    }
    for (int i = 0; i < O; i++) {
      const double *f = ws->of + (size_t) i * 3;
      ws->A0[2 * i] += wt * f[0];
      ws->A0[2 * i + 1] += wt * f[1];
      double cw = wt * f[2];
      for (int k = 0; k < K; k++) ws->A1[(size_t) i * K + k] += cw * eta[k];
    }
    for (int t = 0; t < S; t++) {
      double acc = 0.0;
      for (int k = 0; k < K; k++) acc += ws->geta[k] * D[k * S + t];
      ws->Gst[t] += wt * acc;
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
      draw_choice(m, fd, n, eta, ws, 1, &prod, &sc);
      for (int k = 0; k < Ku; k++) gtmp[P + k] += ws->geta[k];
      for (int i = 0; i < T; i++) {
        const double *xr = m->X + (long) (t0 + i) * m->n_xcol;
        const double *HV = ws->HV + (size_t) i * JJ;
        for (int j = 0; j < J; j++) {
          double gv = ws->gV[(size_t) j * Tm + i];
          if (gv == 0.0) continue;
          ws->G0[(size_t) j * Tm + i] += w * gv;
          for (int u = m->ut_ptr[j]; u < m->ut_ptr[j + 1]; u++) {
            double x = m->ut_col[u] >= 0 ? xr[m->ut_col[u]] : 1.0;
            if (x == 0.0) continue;
            int lv = m->ut_lv[u];
            gtmp[m->ut_par[u]] += gv * x * (lv >= 0 ? eta[lv] : 1.0);
          }
        }
        double *M0 = ws->M0 + (size_t) i * JJ;
        for (size_t c = 0; c < JJ; c++) M0[c] += w * HV[c];
        for (int k = 0; k < Ku; k++) {
          double *M1 = ws->M1 + ((size_t) i * Ku + k) * JJ;
          double wk = w * eta[k];
          for (size_t c = 0; c < JJ; c++) M1[c] += wk * HV[c];
          for (int l = 0; l < Ku; l++) {
            double *M2 = ws->M2 + (((size_t) i * Ku + k) * Ku + l) * JJ;
            double wkl = wk * eta[l];
            for (size_t c = 0; c < JJ; c++) M2[c] += wkl * HV[c];
          }
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
