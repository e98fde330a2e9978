/*
 * iclv_core.h -- the likelihood of one (individual n, draw r) pair with its
 * exact gradient and Hessian: the model of iclv_model.h, written once and
 * shared by the CPU engine (engine.c) and the CUDA backend (cuda/), which
 * includes this header in a .cu file and calls the same functions from
 * device code.
 *
 * Plain C that also compiles as CUDA C++: `static inline` ICLV_HD functions,
 * no allocation, no globals, no R headers, no I/O. Every output goes into
 * caller-provided scratch.
 *
 * How the derivatives are organised
 *   The pair log-likelihood l_nr is a sum of "atoms": one per indicator
 *   observation and one per choice row. Each atom depends on a few natural
 *   parameters and on the latent variables eta[0..K-1]. Derivatives are first
 *   taken in an *extended* space of P + K coordinates (the P parameters, then
 *   the K LVs treated as free), indexed 0..P+K-1; each atom adds its
 *   gradient and Hessian there from the derivatives of its scalar link
 *   function (numerics.h). The LVs depend on the structural parameters:
 *   eta = eta(theta) with Jacobian D = d eta / d phi over the structural
 *   *terms* phi_t = theta[st_par[t]] (a parameter shared by several terms
 *   collects the sum), and second derivatives D2 when LVs load on LVs.
 *   Folding applies the chain rule:
 *     g_p  += sum_k g_eta_k D[k, t]                           (p = st_par[t])
 *     H_pp += H_pe D + D' H_ep + D' H_ee D + sum_k g_eta_k D2_k
 *
 * Hessian storage during one pair (iclv_hess):
 *   Hpp (P x P, column-major) is the caller's accumulator: contributions are
 *   multiplied by the pair's weight w before being added (the engine sums
 *   sum_r w_r hess l_nr into it directly). Hpe (P x K) and Hee (K x K) hold
 *   the LV blocks of this pair only, unweighted; iclv_fold_hessian() adds
 *   them into Hpp (times w).
 */
#ifndef ICLV_CORE_H
#define ICLV_CORE_H

#include <math.h>
#include <float.h>
#include <stdint.h>

#include "numerics.h"
#include "iclv_model.h"
#include "iclv_tape.h"

/* ---- scratch of one pair ----------------------------------------------- */

/* Caller-provided scratch for one (n, r) pair. Sizes: K = n_lv,
 * S = st_ptr[K] (structural terms), J = n_alt (at least 1). */
typedef struct {
  double *eta; /* (K) latent variables of this pair */
  double *D;   /* (K, S) row-major: d eta_k / d phi_t; NULL when no derivatives */
  double *D2;  /* (K, S, S): d2 eta_k / d phi_t d phi_u at [(k*S + t)*S + u]; NULL unless Hessian */
  double *V;   /* (J) utilities of one choice row */
  double *gV;  /* (J) d log P / d V */
  double *HV;  /* (J, J) d2 log P / d V d V' */
} iclv_pair_ws;

/* Hessian accumulator of one pair (see the header comment). */
typedef struct {
  int P, K;
  double w;    /* weight applied to everything that lands in Hpp */
  double *Hpp; /* (P, P) column-major, accumulated across calls */
  double *Hpe; /* (P, K) column-major, this pair only (zeroed by iclv_pair_eval) */
  double *Hee; /* (K, K) column-major, this pair only (zeroed by iclv_pair_eval) */
  double *C;   /* NULL (everyone but the CPU's fast Hessian pass), or (L, L) row-major,
                  L = iclv_outer_dim: iclv_utility_outer adds its c at (j, j2) there
                  instead of adding c dV_j dV_j2' to the cells, iclv_utility_cross its
                  c at (j, J + x) and (J + x, j) for parameter p = Cp[x] (appended to
                  Cp when new) instead of c (e_p dV_j' + dV_j e_p'): the caller forms
                  DV' C DV with DV's row J + x the unit vector of Cp[x] */
  int *Cp;     /* (L - n_alt) with C: the parameters of C's extra rows */
  int nCp;     /* with C: their count (the caller resets it with C) */
} iclv_hess;

/* Side of iclv_hess.C: the alternatives, then room for every distinct
 * parameter that iclv_utility_cross meets in one row (a row multiplier's
 * scale, an ordered choice's two thresholds, a nested logit's lambdas). */
ICLV_HD static inline int iclv_outer_dim(const iclv_model *m) {
  return m->n_alt + (m->n_nest > 2 ? m->n_nest : 2);
}

/* Adds v to cell (i, j) of the extended Hessian, for 0 <= i, j < P + K.
 * Callers add both (i, j) and (j, i) (the full symmetric matrix); the mixed
 * block is stored once, as Hpe, so the (LV, parameter) orientation is
 * dropped here. */
ICLV_HD static inline void iclv_hcell(iclv_hess *h, int i, int j, double v) {
  int P = h->P;
  if (i < P) {
    if (j < P) h->Hpp[i + (long) P * j] += h->w * v;
    else h->Hpe[i + (long) P * (j - P)] += v;
  } else if (j >= P) {
    h->Hee[(i - P) + h->K * (j - P)] += v;
  }
}

/* Adds v (e_i e_j' + e_j e_i') to the extended Hessian (2v on the diagonal). */
ICLV_HD static inline void iclv_hsym(iclv_hess *h, int i, int j, double v) {
  iclv_hcell(h, i, j, v);
  iclv_hcell(h, j, i, v);
}

/* ---- structural model --------------------------------------------------- */

/* Latent variables of individual n for one draw, in lv_order:
 *   eta[k] = u_k e[k] + sum_{t of k} theta[st_par[t]] * src_t
 * (u_k = 0 when a term of k is its own draw, ICLV_SRC_DRAW with st_src ==
 * k: the free standard deviation; else 1; src/iclv_model.h). A draw
 * source enters D like a covariate (its value does not depend on theta).
 * Inputs: e (K) standard normal draws; theta (P).
 * Outputs: eta (K); D (K, S) = d eta / d phi when non-NULL; D2 (K, S, S)
 * when non-NULL (requires D). */
ICLV_HD static inline void iclv_structural(const iclv_model *m, const double *theta, int n,
                                           const double *e, double *eta, double *D, double *D2) {
  int K = m->n_lv, S = m->st_ptr[K];
  if (D) for (int i = 0; i < K * S; i++) D[i] = 0.0;
  if (D2) for (long i = 0; i < (long) K * S * S; i++) D2[i] = 0.0;
  for (int o = 0; o < K; o++) {
    int k = m->lv_order[o];
    double v = e[k];
    for (int t = m->st_ptr[k]; t < m->st_ptr[k + 1]; t++)
      if (m->st_src_type[t] == ICLV_SRC_DRAW && m->st_src[t] == k) v = 0.0;
    for (int t = m->st_ptr[k]; t < m->st_ptr[k + 1]; t++) {
      int type = m->st_src_type[t], lv_src = type == ICLV_SRC_LV;
      int j = m->st_src[t];
      double src = lv_src ? eta[j] : type == ICLV_SRC_DRAW ? e[j] : m->cov[(long) n * m->n_cov + j];
      double th = theta[m->st_par[t]];
      v += th * src;
      if (D) {
        D[k * S + t] += src;
        if (lv_src)
          for (int u = 0; u < S; u++) D[k * S + u] += th * D[j * S + u];
      }
      if (D2 && lv_src) {
        double *Dk2 = D2 + (long) k * S * S;
        const double *Dj2 = D2 + (long) j * S * S;
        for (int u = 0; u < S; u++) {
          Dk2[t * S + u] += D[j * S + u];
          Dk2[u * S + t] += D[j * S + u];
        }
        for (int u = 0; u < S * S; u++) Dk2[u] += th * Dj2[u];
      }
    }
    eta[k] = v;
  }
}

/* ---- the linear index of an indicator ----------------------------------- */

/* s = sum_q theta[ind_load_par[q]] * eta[ind_load_lv[q]] over indicator ind's
 * loadings. Its extended gradient has entries (par_q: eta_q) and
 * (P + lv_q: theta_q); its only second derivatives are the (par_q, P+lv_q)
 * pairs, equal to 1. */
ICLV_HD static inline double iclv_ind_index(const iclv_model *m, const double *theta,
                                            const double *eta, int ind) {
  double s = 0.0;
  for (int q = m->ind_load_ptr[ind]; q < m->ind_load_ptr[ind + 1]; q++)
    s += theta[m->ind_load_par[q]] * eta[m->ind_load_lv[q]];
  return s;
}

/* g (P + K) += c * d s / d(theta, eta). */
ICLV_HD static inline void iclv_ind_index_grad(const iclv_model *m, const double *theta,
                                               const double *eta, int ind, double c, double *g) {
  int P = m->n_par;
  for (int q = m->ind_load_ptr[ind]; q < m->ind_load_ptr[ind + 1]; q++) {
    g[m->ind_load_par[q]] += c * eta[m->ind_load_lv[q]];
    g[P + m->ind_load_lv[q]] += c * theta[m->ind_load_par[q]];
  }
}

/* Hessian += c * ds ds' + c2 * d2s + sum_i cu[i] (e_{ju[i]} ds' + ds e_{ju[i]}')
 * for nu unit directions ju[0..nu-1] (parameter indices, -1 = skip). */
ICLV_HD static inline void iclv_ind_index_hess(const iclv_model *m, const double *theta,
                                               const double *eta, int ind, double c, double c2,
                                               int nu, const int *ju, const double *cu,
                                               iclv_hess *h) {
  int P = m->n_par;
  int q0 = m->ind_load_ptr[ind], q1 = m->ind_load_ptr[ind + 1];
  for (int q = q0; q < q1; q++) {
    int pq = m->ind_load_par[q], eq = P + m->ind_load_lv[q];
    double dpq = eta[m->ind_load_lv[q]], deq = theta[m->ind_load_par[q]];
    for (int q2 = q0; q2 < q1; q2++) {
      int pq2 = m->ind_load_par[q2], eq2 = P + m->ind_load_lv[q2];
      double dpq2 = eta[m->ind_load_lv[q2]], deq2 = theta[m->ind_load_par[q2]];
      iclv_hcell(h, pq, pq2, c * dpq * dpq2);
      iclv_hcell(h, pq, eq2, c * dpq * deq2);
      iclv_hcell(h, eq, pq2, c * deq * dpq2);
      iclv_hcell(h, eq, eq2, c * deq * deq2);
    }
    iclv_hsym(h, pq, eq, c2);
    for (int i = 0; i < nu; i++) {
      if (ju[i] < 0) continue;
      iclv_hsym(h, ju[i], pq, cu[i] * dpq);
      iclv_hsym(h, ju[i], eq, cu[i] * deq);
    }
  }
}

/* ---- the ordered link ----------------------------------------------------- */

/* log(F(b) - F(a)) for a < b (a = -Inf and b = +Inf allowed), F = Phi
 * (probit != 0) or the logistic, in log space (numerics.h), with its
 * derivatives fa = d/da, fb = d/db and, when want_h, the second ones faa,
 * fab, fbb (else left untouched). Shared by the ordered indicators (a =
 * tau_{y-1} - s, b = tau_y - s) and the ordered choice (index V). */
ICLV_HD static inline double iclv_ordered_link(int probit, double a, double b, int want_h,
                                               double *fa, double *fb, double *faa, double *fab,
                                               double *fbb) {
  double ll = probit ? iclv_probit_logdiff(a, b, fa, fb) : iclv_logit_logdiff(a, b, fa, fb);
  if (want_h) {
    double ka = a != -INFINITY ? (probit ? iclv_dlogpdf_probit(a) : iclv_dlogpdf_logit(a)) : 0.0;
    double kb = b != INFINITY ? (probit ? iclv_dlogpdf_probit(b) : iclv_dlogpdf_logit(b)) : 0.0;
    iclv_logdiff_second(*fa, *fb, ka, kb, faa, fab, fbb);
  }
  return ll;
}

/* ---- measurement atoms ---------------------------------------------------- */

/* Log-likelihood of indicator observation o at eta, with (optionally) its
 * extended gradient added to g (P + K) and its Hessian added to h.
 * Preconditions (checked by the engine): ordered y in 1..C with increasing
 * thresholds, binary y in {0, 1}, normal sd > 0. */
ICLV_HD static inline double iclv_indicator_atom(const iclv_model *m, const double *theta,
                                                 const double *eta, int o, double *g,
                                                 iclv_hess *h) {
  int ind = m->obs_ind[o];
  int type = m->ind_type[ind];
  double y = m->obs_val[o];
  double s = iclv_ind_index(m, theta, eta, ind);

  if (type == ICLV_IND_ORDERED_PROBIT || type == ICLV_IND_ORDERED_LOGIT) {
    /* With an intercept alpha (ind_icpt >= 0, else 0) and a scale sigma
     * (ind_sd >= 0, else 1), w = 1 / sigma:
     *   a = (tau_{y-1} - alpha - s) w,  b = (tau_y - alpha - s) w,
     *   ll = L(a, b) = log(F(b) - F(a)).
     * In the extended space, with ds = d s and the unit vectors e_lo, e_hi
     * (thresholds), e_i (alpha), e_sc (sigma):
     *   da = w (va - ds),  va = e_lo - e_i - a e_sc;  db = w (vb - ds),
     *   vb = e_hi - e_i - b e_sc;
     *   d2a = -w d2s - w^2 (e_sc (e_lo - e_i - ds)' + sym) + 2 a w^2 e_sc e_sc'
     *   (likewise b), so
     *   H = La_a da da' + Lab (da db' + db da') + Lbb db db' + La d2a + Lb d2b:
     *   the parameter block w^2 (faa va va' + fab (va vb' + vb va') + fbb vb vb')
     *   - w^2 (e_sc r' + r e_sc') + 2 w^2 (fa a + fb b) e_sc e_sc', r = fa e_lo
     *   + fb e_hi - (fa + fb) e_i; the ds ds' coefficient w^2 (faa + 2 fab +
     *   fbb), d2s's -(fa + fb) w, and the cross terms (e_j ds' + ds e_j') of
     *   iclv_ind_index_hess with the coefficients cu below. An infinite a
     *   (b) has fa = faa = fab = 0 (fb = fab = fbb = 0): its products with a
     *   (b) are taken as 0 (am, bm). Without intercept and scale (w = 1,
     *   alpha = 0) every value is the plain model's, bit for bit. */
    int C = m->ind_ncat[ind], c = (int) y, thr = m->ind_thr[ind];
    int j_lo = c > 1 ? thr + c - 2 : -1;  /* parameter of tau_{y-1} */
    int j_hi = c < C ? thr + c - 1 : -1;  /* parameter of tau_y */
    int ji = m->ind_icpt[ind], js = m->ind_sd[ind];
    double u = ji >= 0 ? s + theta[ji] : s; /* alpha + s */
    double w = js >= 0 ? 1.0 / theta[js] : 1.0;
    double a = j_lo >= 0 ? (theta[j_lo] - u) * w : -INFINITY;
    double b = j_hi >= 0 ? (theta[j_hi] - u) * w : INFINITY;
    double fa, fb, faa = 0.0, fab = 0.0, fbb = 0.0;
    double ll = iclv_ordered_link(type == ICLV_IND_ORDERED_PROBIT, a, b, h != 0, &fa, &fb, &faa,
                                  &fab, &fbb);
    double am = j_lo >= 0 ? a : 0.0, bm = j_hi >= 0 ? b : 0.0;
    if (g) {
      if (j_lo >= 0) g[j_lo] += fa * w;
      if (j_hi >= 0) g[j_hi] += fb * w;
      if (ji >= 0) g[ji] -= (fa + fb) * w;
      if (js >= 0) g[js] -= (fa * am + fb * bm) * w;
      iclv_ind_index_grad(m, theta, eta, ind, -(fa + fb) * w, g);
    }
    if (h) {
      double w2 = w * w;
      int jv[4] = {j_lo, j_hi, ji, js};
      double va[4] = {1.0, 0.0, -1.0, -am}, vb[4] = {0.0, 1.0, -1.0, -bm};
      double r[3] = {fa, fb, -(fa + fb)};
      for (int p = 0; p < 4; p++) {
        if (jv[p] < 0) continue;
        for (int q = 0; q < 4; q++) {
          if (jv[q] < 0) continue;
          double v = faa * va[p] * va[q] + fab * (va[p] * vb[q] + vb[p] * va[q]) + fbb * vb[p] * vb[q];
          if (v != 0.0) iclv_hcell(h, jv[p], jv[q], w2 * v);
        }
      }
      if (js >= 0) {
        for (int p = 0; p < 3; p++)
          if (jv[p] >= 0) iclv_hsym(h, js, jv[p], -w2 * r[p]);
        iclv_hcell(h, js, js, 2.0 * w2 * (fa * am + fb * bm));
      }
      double cab = faa + 2.0 * fab + fbb;
      int ju[4] = {j_lo, j_hi, ji, js};
      double cu[4] = {-w2 * (faa + fab), -w2 * (fab + fbb), w2 * cab,
                      w2 * ((faa + fab) * am + (fab + fbb) * bm + fa + fb)};
      iclv_ind_index_hess(m, theta, eta, ind, w2 * cab, -(fa + fb) * w, 4, ju, cu, h);
    }
    return ll;
  }

  if (type == ICLV_IND_NORMAL) {
    int ji = m->ind_icpt[ind], js = m->ind_sd[ind];
    double sd = theta[js];
    double z = (y - theta[ji] - s) / sd;
    double ll = -ICLV_LN_SQRT_2PI - log(sd) - 0.5 * z * z;
    double fmu = z / sd, fsd = (z * z - 1.0) / sd;
    if (g) {
      g[ji] += fmu;
      g[js] += fsd;
      iclv_ind_index_grad(m, theta, eta, ind, fmu, g);
    }
    if (h) {
      double s2 = sd * sd;
      double hmm = -1.0 / s2, hms = -2.0 * z / s2, hss = (1.0 - 3.0 * z * z) / s2;
      iclv_hcell(h, ji, ji, hmm);
      iclv_hsym(h, ji, js, hms);
      iclv_hcell(h, js, js, hss);
      int ju[2] = {ji, js};
      double cu[2] = {hmm, hms};
      iclv_ind_index_hess(m, theta, eta, ind, hmm, fmu, 2, ju, cu, h);
    }
    return ll;
  }

  /* binary probit / logit: log F(a) if y == 1, log F(-a) if y == 0 */
  {
    int ji = m->ind_icpt[ind];
    double sg = y > 0.5 ? 1.0 : -1.0;
    double x = sg * (theta[ji] + s);
    double ll, f1, f2;
    if (type == ICLV_IND_BINARY_PROBIT) {
      ll = iclv_log_pnorm_mills(x, &f1); /* one erfc for both */
      f2 = iclv_inv_mills_deriv(x, f1);
    } else {
      ll = iclv_log_plogis(x);
      f1 = iclv_plogis(-x);
      f2 = -f1 * iclv_plogis(x);
    }
    f1 *= sg; /* d/da; the second derivative is sign-free */
    if (g) {
      g[ji] += f1;
      iclv_ind_index_grad(m, theta, eta, ind, f1, g);
    }
    if (h) {
      iclv_hcell(h, ji, ji, f2);
      int ju[1] = {ji};
      double cu[1] = {f2};
      iclv_ind_index_hess(m, theta, eta, ind, f2, f1, 1, ju, cu, h);
    }
    return ll;
  }
}

/* ---- choice atoms ----------------------------------------------------------- */

/* The utility helpers below take tc, the row's tape cache (iclv_row_tapes;
 * NULL when the model has no tapes): alternative j's nonlinear part N_j is
 * the entry at tc + j E (E = iclv_tape_entry: value, gradient by the tape's
 * variables tape_var[tape_var_ptr[j]..], packed Hessian). */

/* Utility of alternative j in row t:
 *   V_j = sum_{u of j} theta[ut_par[u]] * x_u * lvf_u  (+ N_j). */
ICLV_HD static inline double iclv_utility(const iclv_model *m, const double *theta,
                                          const double *eta, int t, int j, const double *tc) {
  double v = tc ? tc[(long) j * iclv_tape_entry(m)] : 0.0;
  const double *xr = m->X + (long) t * m->n_xcol;
  for (int u = m->ut_ptr[j]; u < m->ut_ptr[j + 1]; u++) {
    double x = m->ut_col[u] >= 0 ? xr[m->ut_col[u]] : 1.0;
    double lvf = m->ut_lv[u] >= 0 ? eta[m->ut_lv[u]] : 1.0;
    v += theta[m->ut_par[u]] * x * lvf;
  }
  return v;
}

/* g (P + K) += c * d V_j / d(theta, eta) for row t. */
ICLV_HD static inline void iclv_utility_grad(const iclv_model *m, const double *theta,
                                             const double *eta, int t, int j, double c,
                                             const double *tc, double *g) {
  int P = m->n_par;
  if (tc) {
    const double *te = tc + (long) j * iclv_tape_entry(m);
    for (int i = m->tape_var_ptr[j]; i < m->tape_var_ptr[j + 1]; i++)
      g[m->tape_var[i]] += c * te[1 + i - m->tape_var_ptr[j]];
  }
  const double *xr = m->X + (long) t * m->n_xcol;
  for (int u = m->ut_ptr[j]; u < m->ut_ptr[j + 1]; u++) {
    double x = m->ut_col[u] >= 0 ? xr[m->ut_col[u]] : 1.0;
    int lv = m->ut_lv[u];
    double lvf = lv >= 0 ? eta[lv] : 1.0;
    g[m->ut_par[u]] += c * x * lvf;
    if (lv >= 0) g[P + lv] += c * theta[m->ut_par[u]] * x;
  }
}

/* Hessian += c * dV_j dV_j2' (cells of both orientations are visited when
 * the caller loops over all ordered (j, j2)). */
ICLV_HD static inline void iclv_utility_outer(const iclv_model *m, const double *theta,
                                              const double *eta, int t, int j, int j2,
                                              double c, const double *tc, iclv_hess *h) {
  if (h->C) {
    h->C[(long) j * iclv_outer_dim(m) + j2] += c;
    return;
  }
  int P = m->n_par;
  const double *xr = m->X + (long) t * m->n_xcol;
  if (tc) { /* the tape's gradient of j against all of dV_j2, and the linear
             * terms of j against the tape's gradient of j2 */
    int E = iclv_tape_entry(m);
    const double *te = tc + (long) j * E, *te2 = tc + (long) j2 * E;
    int a0 = m->tape_var_ptr[j], a1 = m->tape_var_ptr[j + 1];
    int b0 = m->tape_var_ptr[j2], b1 = m->tape_var_ptr[j2 + 1];
    for (int a = a0; a < a1; a++) {
      double ga = c * te[1 + a - a0];
      if (ga == 0.0) continue;
      for (int b = b0; b < b1; b++) iclv_hcell(h, m->tape_var[a], m->tape_var[b], ga * te2[1 + b - b0]);
      for (int u2 = m->ut_ptr[j2]; u2 < m->ut_ptr[j2 + 1]; u2++) {
        double x2 = m->ut_col[u2] >= 0 ? xr[m->ut_col[u2]] : 1.0;
        int lv2 = m->ut_lv[u2];
        iclv_hcell(h, m->tape_var[a], m->ut_par[u2], ga * x2 * (lv2 >= 0 ? eta[lv2] : 1.0));
        if (lv2 >= 0) iclv_hcell(h, m->tape_var[a], P + lv2, ga * theta[m->ut_par[u2]] * x2);
      }
    }
    for (int b = b0; b < b1; b++) {
      double gb = c * te2[1 + b - b0];
      if (gb == 0.0) continue;
      for (int u = m->ut_ptr[j]; u < m->ut_ptr[j + 1]; u++) {
        double x = m->ut_col[u] >= 0 ? xr[m->ut_col[u]] : 1.0;
        int lv = m->ut_lv[u];
        iclv_hcell(h, m->ut_par[u], m->tape_var[b], gb * x * (lv >= 0 ? eta[lv] : 1.0));
        if (lv >= 0) iclv_hcell(h, P + lv, m->tape_var[b], gb * theta[m->ut_par[u]] * x);
      }
    }
  }
  for (int u = m->ut_ptr[j]; u < m->ut_ptr[j + 1]; u++) {
    double x = m->ut_col[u] >= 0 ? xr[m->ut_col[u]] : 1.0;
    int lv = m->ut_lv[u];
    double dp = x * (lv >= 0 ? eta[lv] : 1.0), de = theta[m->ut_par[u]] * x;
    for (int u2 = m->ut_ptr[j2]; u2 < m->ut_ptr[j2 + 1]; u2++) {
      double x2 = m->ut_col[u2] >= 0 ? xr[m->ut_col[u2]] : 1.0;
      int lv2 = m->ut_lv[u2];
      double dp2 = x2 * (lv2 >= 0 ? eta[lv2] : 1.0), de2 = theta[m->ut_par[u2]] * x2;
      iclv_hcell(h, m->ut_par[u], m->ut_par[u2], c * dp * dp2);
      if (lv2 >= 0) iclv_hcell(h, m->ut_par[u], P + lv2, c * dp * de2);
      if (lv >= 0) {
        iclv_hcell(h, P + lv, m->ut_par[u2], c * de * dp2);
        if (lv2 >= 0) iclv_hcell(h, P + lv, P + lv2, c * de * de2);
      }
    }
  }
}

/* Hessian += c * d2 V_j (the theta_u x eta pairs: x_u; the tape's Hessian). */
ICLV_HD static inline void iclv_utility_second(const iclv_model *m, int t, int j, double c,
                                               const double *tc, iclv_hess *h) {
  const double *xr = m->X + (long) t * m->n_xcol;
  if (tc) {
    int a0 = m->tape_var_ptr[j], nv = m->tape_var_ptr[j + 1] - a0;
    const double *He = tc + (long) j * iclv_tape_entry(m) + 1 + m->tape_nv;
    for (int i = 0, q = 0; i < nv; i++)
      for (int k = 0; k <= i; k++, q++) {
        if (He[q] == 0.0) continue;
        if (i == k) iclv_hcell(h, m->tape_var[a0 + i], m->tape_var[a0 + i], c * He[q]);
        else iclv_hsym(h, m->tape_var[a0 + i], m->tape_var[a0 + k], c * He[q]);
      }
  }
  for (int u = m->ut_ptr[j]; u < m->ut_ptr[j + 1]; u++) {
    if (m->ut_lv[u] < 0) continue;
    double x = m->ut_col[u] >= 0 ? xr[m->ut_col[u]] : 1.0;
    iclv_hsym(h, m->ut_par[u], m->n_par + m->ut_lv[u], c * x);
  }
}

/* Hessian += c * (e_p dV_j' + dV_j e_p') for parameter p (the scale of a
 * row multiplier; 2 c dV_j[p] on the diagonal when p is also in V_j). */
ICLV_HD static inline void iclv_utility_cross(const iclv_model *m, const double *theta,
                                              const double *eta, int t, int j, int p, double c,
                                              const double *tc, iclv_hess *h) {
  if (h->C) {
    const int L = iclv_outer_dim(m), J = m->n_alt;
    int x = 0;
    while (x < h->nCp && h->Cp[x] != p) x++;
    if (x == h->nCp) h->Cp[h->nCp++] = p;
    h->C[(long) j * L + J + x] += c;
    h->C[(long) (J + x) * L + j] += c;
    return;
  }
  const double *xr = m->X + (long) t * m->n_xcol;
  if (tc) {
    const double *te = tc + (long) j * iclv_tape_entry(m);
    for (int i = m->tape_var_ptr[j]; i < m->tape_var_ptr[j + 1]; i++)
      iclv_hsym(h, p, m->tape_var[i], c * te[1 + i - m->tape_var_ptr[j]]);
  }
  for (int u = m->ut_ptr[j]; u < m->ut_ptr[j + 1]; u++) {
    double x = m->ut_col[u] >= 0 ? xr[m->ut_col[u]] : 1.0;
    int lv = m->ut_lv[u];
    iclv_hsym(h, p, m->ut_par[u], c * x * (lv >= 0 ? eta[lv] : 1.0));
    if (lv >= 0) iclv_hsym(h, p, m->n_par + lv, c * theta[m->ut_par[u]] * x);
  }
}

/* The utility multiplier s_t of row t (iclv_model.h): 1 when the model has
 * none, else mult_sign[t] times the row's scale parameter (if any). */
ICLV_HD static inline double iclv_row_mult(const iclv_model *m, const double *theta, int t) {
  if (m->n_mult == 0) return 1.0;
  int p = m->mult_par[t];
  return m->mult_sign[t] * (p >= 0 ? theta[p] : 1.0);
}

/* Is alternative j available in row t? */
ICLV_HD static inline int iclv_available(const iclv_model *m, int t, int j) {
  return m->n_avail == 0 || m->avail[(long) t * m->n_alt + j] != 0;
}

/* ---- nested logit --------------------------------------------------------
 *
 * With nests a = 0..M-1 (M = n_nest), lambda_a (iclv_nest_lambda), the
 * available alternatives A_a of nest a, z_k = V_k / lambda_a for k in nest a,
 * p_k = exp(z_k - I_a) (the probability of k within its nest),
 *   I_a = log sum_{k in A_a} exp(z_k),   W_a = lambda_a I_a,
 *   Q_a = exp(W_a) / sum_c exp(W_c)      (the nest's probability),
 *   zbar_a = sum_k p_k z_k,   var_a = sum_k p_k (z_k - zbar_a)^2,
 * the chosen alternative y in nest b has
 *   log P = T - LSE,  T = V_y / lambda_b + (lambda_b - 1) I_b,  LSE = log sum_a exp(W_a),
 * P_k = Q_a p_k. Nests without an available alternative drop out (Q = 0).
 * Derivatives in the L = J + M coordinates (V_0..V_{J-1}, lambda_0..lambda_{M-1}):
 *   dW_a/dV_k = p_k,  dW_a/dlambda_a = I_a - zbar_a =: w_a,
 *   d2W_a/dV_k dV_l = (delta_kl p_k - p_k p_l) / lambda_a,
 *   d2W_a/dV_k dlambda_a = -p_k (z_k - zbar_a) / lambda_a,  d2W_a/dlambda_a^2 = var_a / lambda_a;
 *   d LSE = G := sum_a Q_a dW_a (G_k = P_k, G_{lambda_a} = Q_a w_a),
 *   d2 LSE = sum_a Q_a (d2W_a + dW_a dW_a') - G G';
 *   dT/dV_k = delta_ky / lambda_b + [k in b] (lambda_b - 1) p_k / lambda_b,
 *   dT/dlambda_b = -z_y / lambda_b + I_b - (lambda_b - 1) zbar_b / lambda_b,
 *   d2T/dV_k dV_l = [k, l in b] (lambda_b - 1) (delta_kl p_k - p_k p_l) / lambda_b^2,
 *   d2T/dV_k dlambda_b = -delta_ky / lambda_b^2
 *                        + [k in b] (p_k / lambda_b - (lambda_b - 1) p_k (1 + z_k - zbar_b) / lambda_b^2),
 *   d2T/dlambda_b^2 = 2 z_y / lambda_b^2 - 2 zbar_b / lambda_b + (lambda_b - 1) (var_b + 2 zbar_b) / lambda_b^2.
 * Everything is computed in log space (each nest's log-sum-exp shifted by its
 * largest z, the nests' by the largest W), so small lambdas do not overflow.
 * When every lambda is exactly 1 the value is computed as the MNL link
 * computes it (one log-sum-exp over the alternatives in index order), so a
 * nested logit with every lambda fixed at 1 is the MNL model bit for bit; the
 * derivatives keep the general form (equal to MNL's up to rounding, and the
 * lambda scores are the ones of the nested model). */

/* Doubles of the link's derivative vector gV (and side of HV): the J
 * utilities, then (nested logit) one lambda per nest. */
ICLV_HD static inline int iclv_link_dim(const iclv_model *m) {
  int J = m->n_alt > 0 ? m->n_alt : 1;
  return m->choice_type == ICLV_CHOICE_NL ? J + m->n_nest : J;
}

/* Doubles of the utility scratch ws->V before the tapes' part: the J
 * utilities, then (nested logit) four per nest (I, zbar, var, Q); for an
 * ordered choice at least the C categories (the prediction's probabilities
 * share the size). */
ICLV_HD static inline int iclv_vscratch_base(const iclv_model *m) {
  int J = m->n_alt > 0 ? m->n_alt : 1;
  if (m->choice_type == ICLV_CHOICE_ORDERED) return m->n_ocat > J ? m->n_ocat : J;
  return m->choice_type == ICLV_CHOICE_NL ? J + 4 * m->n_nest : J;
}

/* Doubles of the utility scratch ws->V: the above, then the tapes' row
 * cache and stack (iclv_tape.h). */
ICLV_HD static inline int iclv_vscratch_dim(const iclv_model *m) {
  return iclv_vscratch_base(m) + iclv_tape_scratch(m);
}

/* The row's tape cache inside the utility scratch V, or NULL without tapes. */
ICLV_HD static inline double *iclv_tape_cache(const iclv_model *m, double *V) {
  return m->n_tape ? V + iclv_vscratch_base(m) : (double *) 0;
}

/* Runs every alternative's tape for row t (order 0: values, 1: and
 * gradients, 2: and Hessians) into the cache inside V; returns the cache
 * (NULL without tapes). */
ICLV_HD static inline const double *iclv_row_tapes(const iclv_model *m, const double *theta,
                                                   const double *eta, int t, double *V,
                                                   int order) {
  if (m->n_tape == 0) return (const double *) 0;
  int E = iclv_tape_entry(m), J = m->n_alt > 0 ? m->n_alt : 1, A = iclv_tape_area(m);
  double *tc = iclv_tape_cache(m, V), *stack = tc + (long) J * E;
  double *areas = stack + (long) m->tape_depth * E;
  for (int j = 0; j < J; j++)
    iclv_tape_run(m, theta, eta, t, j, order, stack, A ? areas + (long) j * A : (double *) 0,
                  tc + (long) j * E);
  return tc;
}

/* Marks every tape's pair area empty (iclv_tape.h): at the start of each
 * draw, before the rows. */
ICLV_HD static inline void iclv_tapes_invalidate(const iclv_model *m, double *V) {
  int A = iclv_tape_area(m);
  if (m->n_tape == 0 || A == 0) return;
  int E = iclv_tape_entry(m), J = m->n_alt > 0 ? m->n_alt : 1;
  double *areas = iclv_tape_cache(m, V) + (long) (J + m->tape_depth) * E;
  for (int j = 0; j < J; j++) areas[(long) j * A] = -1.0;
}

/* Columns of a row's predicted probabilities: the C categories of an
 * ordered choice, else the n_alt alternatives. */
ICLV_HD static inline int iclv_prob_dim(const iclv_model *m) {
  return m->choice_type == ICLV_CHOICE_ORDERED ? m->n_ocat : m->n_alt;
}

/* lambda of nest a: its parameter, or 1 for a nest without one. */
ICLV_HD static inline double iclv_nest_lambda(const iclv_model *m, const double *theta, int a) {
  int p = m->nest_par[a];
  return p >= 0 ? theta[p] : 1.0;
}

/* The nests of row t: V (J + 4 M) holds the utilities; fills V[J..] with
 * I (M; -Inf for a nest without an available alternative), zbar (M), var
 * (M), Q (M), and p (J) with the within-nest probabilities (0 when not
 * available); with lsw != NULL, *lsw = log sum_a exp(lambda_a I_a) (as
 * max + log of the shifted sum: Q's normaliser). Returns 1 when every
 * lambda is exactly 1. */
ICLV_HD static inline int iclv_nl_nests(const iclv_model *m, const double *theta, int t, double *V,
                                        double *p, double *lsw) {
  int J = m->n_alt, M = m->n_nest, all1 = 1;
  double *I = V + J, *zb = I + M, *var = zb + M, *Q = var + M;
  for (int k = 0; k < J; k++) p[k] = 0.0;
  double mxW = -INFINITY;
  for (int a = 0; a < M; a++) {
    double lam = iclv_nest_lambda(m, theta, a);
    if (lam != 1.0) all1 = 0;
    double mx = -INFINITY;
    for (int k = 0; k < J; k++)
      if (m->nest_of[k] == a && iclv_available(m, t, k) && V[k] / lam > mx) mx = V[k] / lam;
    zb[a] = var[a] = 0.0;
    if (mx == -INFINITY) { /* no available alternative: the nest drops out */
      I[a] = -INFINITY;
      continue;
    }
    double s = 0.0;
    for (int k = 0; k < J; k++)
      if (m->nest_of[k] == a && iclv_available(m, t, k)) {
        p[k] = exp(V[k] / lam - mx);
        s += p[k];
      }
    I[a] = mx + log(s);
    double zbar = 0.0, v = 0.0;
    for (int k = 0; k < J; k++)
      if (m->nest_of[k] == a && p[k] != 0.0) {
        p[k] /= s;
        zbar += p[k] * (V[k] / lam);
      }
    for (int k = 0; k < J; k++)
      if (m->nest_of[k] == a && p[k] != 0.0) {
        double d = V[k] / lam - zbar;
        v += p[k] * d * d;
      }
    zb[a] = zbar;
    var[a] = v;
    if (lam * I[a] > mxW) mxW = lam * I[a];
  }
  double sW = 0.0;
  for (int a = 0; a < M; a++) {
    Q[a] = I[a] == -INFINITY ? 0.0 : exp(iclv_nest_lambda(m, theta, a) * I[a] - mxW);
    sW += Q[a];
  }
  for (int a = 0; a < M; a++) Q[a] /= sW;
  if (lsw) *lsw = mxW + log(sW);
  return all1;
}

/* Nested logit log-probability of row t's choice with gV (L = J + M) and,
 * when HV != NULL, HV (L, L) row-major: the derivatives by (V, lambda) of the
 * header comment above. V (J + 4 M): utilities on input, scratch after. */
ICLV_HD static inline double iclv_nl_link(const iclv_model *m, const double *theta, int t,
                                          double *V, double *gV, double *HV) {
  int J = m->n_alt, M = m->n_nest, L = J + M, yt = m->y[t], b = m->nest_of[yt];
  double *I = V + J, *zb = I + M, *var = zb + M, *Q = var + M;
  double *p = gV; /* the within-nest probabilities, until gV is written */
  double lsw;
  int all1 = iclv_nl_nests(m, theta, t, V, p, &lsw);
  double ll;
  if (all1) { /* MNL, computed exactly as iclv_choice_link computes it */
    double mx = -INFINITY, sum = 0.0;
    for (int j = 0; j < J; j++)
      if (iclv_available(m, t, j) && V[j] > mx) mx = V[j];
    for (int j = 0; j < J; j++)
      if (iclv_available(m, t, j)) sum += exp(V[j] - mx);
    ll = V[yt] - (mx + log(sum));
  } else {
    /* (lsw: the nests' log-sum, Q's normaliser, the same sum in the same
     * order: the empty nests' Q are 0) */
    double lb = iclv_nest_lambda(m, theta, b);
    ll = V[yt] / lb + (lb - 1.0) * I[b] - lsw;
  }
  double lb = iclv_nest_lambda(m, theta, b), zy = V[yt] / lb;
  if (HV) {
    for (int k = 0; k < J; k++) {
      int a = m->nest_of[k];
      double la = iclv_nest_lambda(m, theta, a), Pk = Q[a] * p[k];
      for (int l = 0; l < J; l++) {
        int c = m->nest_of[l];
        double h = Pk * Q[c] * p[l];
        if (a == c) {
          double d2 = ((k == l ? p[k] : 0.0) - p[k] * p[l]);
          h -= Q[a] * (d2 / la + p[k] * p[l]);
          if (a == b) h += (lb - 1.0) * d2 / (lb * lb);
        }
        HV[k * L + l] = h;
      }
      double zk = V[k] / la;
      for (int c = 0; c < M; c++) {
        double wc = Q[c] != 0.0 ? I[c] - zb[c] : 0.0;
        double h = Pk * Q[c] * wc;
        if (a == c && p[k] != 0.0) {
          double lc = iclv_nest_lambda(m, theta, c);
          h -= Q[c] * (-p[k] * (zk - zb[c]) / lc + p[k] * wc);
        }
        if (c == b) {
          if (k == yt) h -= 1.0 / (lb * lb);
          if (a == b && p[k] != 0.0) h += p[k] / lb - (lb - 1.0) * p[k] * (1.0 + zk - zb[b]) / (lb * lb);
        }
        HV[k * L + J + c] = h;
        HV[(J + c) * L + k] = h;
      }
    }
    for (int c = 0; c < M; c++) {
      double wc = Q[c] != 0.0 ? I[c] - zb[c] : 0.0, lc = iclv_nest_lambda(m, theta, c);
      for (int d = 0; d < M; d++) {
        double wd = Q[d] != 0.0 ? I[d] - zb[d] : 0.0;
        double h = Q[c] * wc * Q[d] * wd;
        if (c == d) {
          h -= Q[c] * (var[c] / lc + wc * wc);
          if (c == b) h += 2.0 * zy / (lb * lb) - 2.0 * zb[b] / lb + (lb - 1.0) * (var[b] + 2.0 * zb[b]) / (lb * lb);
        }
        HV[(J + c) * L + J + d] = h;
      }
    }
  }
  /* gradient last: gV held p until here */
  for (int c = 0; c < M; c++) {
    double wc = Q[c] != 0.0 ? I[c] - zb[c] : 0.0;
    double gc = -Q[c] * wc;
    if (c == b) gc += -zy / lb + I[b] - (lb - 1.0) * zb[b] / lb;
    gV[J + c] = gc;
  }
  for (int k = 0; k < J; k++) {
    int a = m->nest_of[k];
    double gk = -Q[a] * p[k];
    if (a == b) gk += (lb - 1.0) * p[k] / lb;
    if (k == yt) gk += 1.0 / lb;
    gV[k] = gk;
  }
  return ll;
}

/* Log-probability of the chosen alternative in row t, with the derivatives
 * with respect to the utilities: gV (J) and, when HV != NULL, HV (J, J)
 * row-major. V (J) holds the utilities on input (unavailable ones ignored).
 * MNL: log P = V_y - logsumexp(V_avail); binary probit: log Phi(+-(V0 - V1)),
 * or log 1 = 0 (gV, HV zero) when only the chosen alternative is available.
 * Precondition (model_checks.c): the chosen alternative is available. */
ICLV_HD static inline double iclv_choice_link(const iclv_model *m, int t, const double *V,
                                              double *gV, double *HV) {
  int J = m->n_alt, yt = m->y[t];
  if (m->choice_type == ICLV_CHOICE_PROBIT) {
    if (!iclv_available(m, t, 0) || !iclv_available(m, t, 1)) { /* a certain choice */
      gV[0] = gV[1] = 0.0;
      if (HV) HV[0] = HV[1] = HV[2] = HV[3] = 0.0;
      return 0.0;
    }
    double sg = yt == 0 ? 1.0 : -1.0;
    double x = sg * (V[0] - V[1]);
    double f1;
    double ll = iclv_log_pnorm_mills(x, &f1); /* one erfc for both */
    gV[0] = sg * f1;
    gV[1] = -sg * f1;
    if (HV) {
      double f2 = iclv_inv_mills_deriv(x, f1);
      HV[0] = f2; HV[1] = -f2; HV[2] = -f2; HV[3] = f2;
    }
    return ll;
  }
  /* MNL */
  double mx = -INFINITY;
  for (int j = 0; j < J; j++)
    if (iclv_available(m, t, j) && V[j] > mx) mx = V[j];
  double sum = 0.0;
  for (int j = 0; j < J; j++) {
    gV[j] = iclv_available(m, t, j) ? exp(V[j] - mx) : 0.0; /* unnormalised P_j */
    sum += gV[j];
  }
  double lse = mx + log(sum);
  for (int j = 0; j < J; j++) gV[j] /= sum; /* P_j */
  if (HV)
    for (int j = 0; j < J; j++)
      for (int j2 = 0; j2 < J; j2++) HV[j * J + j2] = (j == j2 ? -gV[j] : 0.0) + gV[j] * gV[j2];
  for (int j = 0; j < J; j++) gV[j] = (j == yt ? 1.0 : 0.0) - gV[j];
  return V[yt] - lse;
}

/* iclv_choice_atom for a nested logit row: the link's derivatives by the
 * utilities go through the utilities' chain rule, those by lambda_a to the
 * nest's parameter (none for a nest without one): the (V_j, lambda_a) block
 * as c (e_p dV_j' + dV_j e_p') (iclv_utility_cross). Rows carry no
 * multiplier (boundary.c). Scratch: ws->V (J + 4 M), gV (J + M), HV (J + M)^2. */
ICLV_HD static inline double iclv_nl_atom(const iclv_model *m, const double *theta,
                                          const double *eta, int t, iclv_pair_ws *ws,
                                          const double *tc, double *g, iclv_hess *h) {
  int J = m->n_alt, M = m->n_nest, L = J + M;
  for (int j = 0; j < J; j++) ws->V[j] = iclv_utility(m, theta, eta, t, j, tc);
  double ll = iclv_nl_link(m, theta, t, ws->V, ws->gV, h ? ws->HV : (double *) 0);
  if (g) {
    for (int j = 0; j < J; j++)
      if (ws->gV[j] != 0.0) iclv_utility_grad(m, theta, eta, t, j, ws->gV[j], tc, g);
    for (int a = 0; a < M; a++)
      if (m->nest_par[a] >= 0) g[m->nest_par[a]] += ws->gV[J + a];
  }
  if (h) {
    for (int j = 0; j < J; j++) {
      for (int j2 = 0; j2 < J; j2++)
        if (ws->HV[j * L + j2] != 0.0)
          iclv_utility_outer(m, theta, eta, t, j, j2, ws->HV[j * L + j2], tc, h);
      if (ws->gV[j] != 0.0) iclv_utility_second(m, t, j, ws->gV[j], tc, h);
      for (int a = 0; a < M; a++)
        if (m->nest_par[a] >= 0 && ws->HV[j * L + J + a] != 0.0)
          iclv_utility_cross(m, theta, eta, t, j, m->nest_par[a], ws->HV[j * L + J + a], tc, h);
    }
    for (int a = 0; a < M; a++)
      for (int a2 = 0; a2 < M; a2++)
        if (m->nest_par[a] >= 0 && m->nest_par[a2] >= 0)
          iclv_hcell(h, m->nest_par[a], m->nest_par[a2], ws->HV[(J + a) * L + J + a2]);
  }
  return ll;
}

/* ---- ordered choice ---------------------------------------------------------
 *
 * One index V = V[0] (iclv_utility of the one "alternative") per row, the
 * category c = y_t + 1 in 1..C, thresholds tau_k = theta[ocat_thr + k - 1]:
 *   l = log(F(b) - F(a)),  a = tau_{c-1} - V (-Inf for c = 1),  b = tau_c - V (+Inf for c = C),
 * the link of the ordered indicators (iclv_ordered_link) with its derivatives
 * fa, fb, faa, fab, fbb by (a, b). By the chain rule (da/dtau_{c-1} =
 * db/dtau_c = 1, da/dV = db/dV = -1):
 *   dl/dtau_{c-1} = fa,  dl/dtau_c = fb,  dl/dV = -(fa + fb),
 *   d2l/dV2 = faa + 2 fab + fbb,  d2l/dtau_{c-1} dV = -(faa + fab),
 *   d2l/dtau_c dV = -(fab + fbb),  and the (tau, tau) block faa, fab, fbb;
 * V's own derivatives by its parameters, LVs and random terms come from the
 * utility helpers (iclv_utility_grad/outer/second/cross), as for MNL. */

/* iclv_choice_atom for an ordered choice row. Uses no scratch. */
ICLV_HD static inline double iclv_ordered_atom(const iclv_model *m, const double *theta,
                                               const double *eta, int t, const double *tc,
                                               double *g, iclv_hess *h) {
  int C = m->n_ocat, c = m->y[t] + 1, thr = m->ocat_thr;
  int j_lo = c > 1 ? thr + c - 2 : -1; /* parameter of tau_{c-1} */
  int j_hi = c < C ? thr + c - 1 : -1; /* parameter of tau_c */
  double V = iclv_utility(m, theta, eta, t, 0, tc);
  double a = j_lo >= 0 ? theta[j_lo] - V : -INFINITY;
  double b = j_hi >= 0 ? theta[j_hi] - V : INFINITY;
  double fa, fb, faa = 0.0, fab = 0.0, fbb = 0.0;
  double ll = iclv_ordered_link(!m->ocat_logit, a, b, h != 0, &fa, &fb, &faa, &fab, &fbb);
  if (g) {
    if (j_lo >= 0) g[j_lo] += fa;
    if (j_hi >= 0) g[j_hi] += fb;
    iclv_utility_grad(m, theta, eta, t, 0, -(fa + fb), tc, g);
  }
  if (h) {
    if (j_lo >= 0) iclv_hcell(h, j_lo, j_lo, faa);
    if (j_hi >= 0) iclv_hcell(h, j_hi, j_hi, fbb);
    if (j_lo >= 0 && j_hi >= 0) iclv_hsym(h, j_lo, j_hi, fab);
    iclv_utility_outer(m, theta, eta, t, 0, 0, faa + 2.0 * fab + fbb, tc, h);
    iclv_utility_second(m, t, 0, -(fa + fb), tc, h);
    if (j_lo >= 0) iclv_utility_cross(m, theta, eta, t, 0, j_lo, -(faa + fab), tc, h);
    if (j_hi >= 0) iclv_utility_cross(m, theta, eta, t, 0, j_hi, -(fab + fbb), tc, h);
  }
  return ll;
}

/* Log-likelihood of choice row t at eta, with the extended gradient added to
 * g (P + K) and the Hessian to h when they are non-NULL. Scratch: ws->V,
 * ws->gV (J), ws->HV (J, J).
 * A row multiplier s = sgn * mu (iclv_row_mult) feeds U = s V to the link;
 * with gU, HU its derivatives by U, the chain rule gives
 *   d l / d V = s gU,  d2 l / d V d V' = s^2 HU,
 * and, when mu is a parameter p,
 *   d l / d mu = sgn gU'V,  d2 l / d mu2 = V' HU V,
 *   d2 l / d mu d V_j = sgn (gU_j + s (HU V)_j). */
ICLV_HD static inline double iclv_choice_atom_tc(const iclv_model *m, const double *theta,
                                                 const double *eta, int t, iclv_pair_ws *ws,
                                                 const double *tc, double *g, iclv_hess *h);
ICLV_HD static inline double iclv_choice_atom(const iclv_model *m, const double *theta,
                                              const double *eta, int t, iclv_pair_ws *ws,
                                              double *g, iclv_hess *h) {
  const double *tc = iclv_row_tapes(m, theta, eta, t, ws->V, h ? 2 : g ? 1 : 0);
  return iclv_choice_atom_tc(m, theta, eta, t, ws, tc, g, h);
}

/* iclv_choice_atom with the row's tape cache tc given (iclv_row_tapes at
 * the order the derivatives need; NULL without tapes): the CPU's fast
 * kernels run tapes that read no LV or random term once per individual. */
ICLV_HD static inline double iclv_choice_atom_tc(const iclv_model *m, const double *theta,
                                                 const double *eta, int t, iclv_pair_ws *ws,
                                                 const double *tc, double *g, iclv_hess *h) {
  int J = m->n_alt;
  if (m->choice_type == ICLV_CHOICE_NL) return iclv_nl_atom(m, theta, eta, t, ws, tc, g, h);
  if (m->choice_type == ICLV_CHOICE_ORDERED) return iclv_ordered_atom(m, theta, eta, t, tc, g, h);
  double s = iclv_row_mult(m, theta, t);
  for (int j = 0; j < J; j++) ws->V[j] = s * iclv_utility(m, theta, eta, t, j, tc);
  double ll = iclv_choice_link(m, t, ws->V, ws->gV, h ? ws->HV : (double *) 0);
  /* (a scale parameter at exactly 1 still has its derivatives: s == 1 skips
   * only rows without a parameter) */
  if ((s != 1.0 || (m->n_mult > 0 && m->mult_par[t] >= 0)) && (g || h)) {
    int p = m->mult_par[t];
    if (p >= 0) {
      /* ws->V := the utilities before the multiplier (U is no longer needed);
       * 0 for an unavailable alternative, whose gU and HU are 0 and whose
       * utility may not be finite (another choice part's data, R/parts.R) */
      double sg = m->mult_sign[t], a = 0.0, b = 0.0;
      for (int j = 0; j < J; j++)
        ws->V[j] = iclv_available(m, t, j) ? iclv_utility(m, theta, eta, t, j, tc) : 0.0;
      for (int j = 0; j < J; j++) a += ws->gV[j] * ws->V[j];
      if (g) g[p] += sg * a;
      if (h) {
        for (int j = 0; j < J; j++) {
          double hv = 0.0;
          for (int k = 0; k < J; k++) hv += ws->HV[j * J + k] * ws->V[k];
          b += ws->V[j] * hv;
          double c = sg * (ws->gV[j] + s * hv);
          if (c != 0.0) iclv_utility_cross(m, theta, eta, t, j, p, c, tc, h);
        }
        iclv_hcell(h, p, p, b);
      }
    }
    for (int j = 0; j < J; j++) ws->gV[j] *= s;
    if (h)
      for (int j = 0; j < J * J; j++) ws->HV[j] *= s * s;
  }
  if (g)
    for (int j = 0; j < J; j++)
      if (ws->gV[j] != 0.0) iclv_utility_grad(m, theta, eta, t, j, ws->gV[j], tc, g);
  if (h) {
    for (int j = 0; j < J; j++) {
      for (int j2 = 0; j2 < J; j2++)
        if (ws->HV[j * J + j2] != 0.0)
          iclv_utility_outer(m, theta, eta, t, j, j2, ws->HV[j * J + j2], tc, h);
      if (ws->gV[j] != 0.0) iclv_utility_second(m, t, j, ws->gV[j], tc, h);
    }
  }
  return ll;
}

/* Probabilities P(j) (J) of every alternative in row t given utilities V
 * (J; for a nested logit J + 4 n_nest, the rest scratch); unavailable
 * alternatives get 0. For an ordered choice, prob (C = n_ocat) holds the
 * categories' P(c) = exp(l) of iclv_ordered_atom's link at V[0]. For
 * prediction. */
ICLV_HD static inline void iclv_choice_probs(const iclv_model *m, const double *theta, int t,
                                             double *V, double *prob) {
  int J = m->n_alt;
  if (m->choice_type == ICLV_CHOICE_ORDERED) {
    int C = m->n_ocat, thr = m->ocat_thr;
    for (int c = 1; c <= C; c++) {
      double a = c > 1 ? theta[thr + c - 2] - V[0] : -INFINITY;
      double b = c < C ? theta[thr + c - 1] - V[0] : INFINITY;
      double fa, fb;
      prob[c - 1] = exp(iclv_ordered_link(!m->ocat_logit, a, b, 0, &fa, &fb, &fa, &fa, &fa));
    }
    return;
  }
  if (m->choice_type == ICLV_CHOICE_NL) {
    iclv_nl_nests(m, theta, t, V, prob, (double *) 0);
    const double *Q = V + J + 3 * m->n_nest;
    for (int j = 0; j < J; j++) prob[j] *= Q[m->nest_of[j]];
    return;
  }
  if (m->choice_type == ICLV_CHOICE_PROBIT) {
    int a0 = iclv_available(m, t, 0), a1 = iclv_available(m, t, 1);
    prob[0] = !a0 ? 0.0 : a1 ? iclv_pnorm(V[0] - V[1]) : 1.0;
    prob[1] = !a1 ? 0.0 : a0 ? iclv_pnorm(V[1] - V[0]) : 1.0;
    return;
  }
  double mx = -INFINITY, sum = 0.0;
  for (int j = 0; j < J; j++)
    if (iclv_available(m, t, j) && V[j] > mx) mx = V[j];
  for (int j = 0; j < J; j++) {
    prob[j] = iclv_available(m, t, j) ? exp(V[j] - mx) : 0.0;
    sum += prob[j];
  }
  for (int j = 0; j < J; j++) prob[j] /= sum;
}

/* ---- folding the LV coordinates into the structural parameters ---------- */

/* g (P + K): g[st_par[t]] += sum_k g[P + k] D[k, t]. The LV slots are left
 * as they are (iclv_fold_hessian reads them). */
ICLV_HD static inline void iclv_fold_gradient(const iclv_model *m, const double *D, double *g) {
  int P = m->n_par, K = m->n_lv, S = m->st_ptr[K];
  for (int t = 0; t < S; t++) {
    double acc = 0.0;
    for (int k = 0; k < K; k++) acc += g[P + k] * D[k * S + t];
    g[m->st_par[t]] += acc;
  }
}

/* h->Hpp += w (Hpe D + D' Hep + D' Hee D + sum_k g_eta_k D2_k), the terms of
 * D mapped to their parameters st_par[t]. geta (K) = d l / d eta. */
ICLV_HD static inline void iclv_fold_hessian(const iclv_model *m, const double *D,
                                             const double *D2, const double *geta,
                                             iclv_hess *h) {
  int P = m->n_par, K = m->n_lv, S = m->st_ptr[K];
  double w = h->w;
  /* (Hpe D)[i, t] into cell (i, st_par[t]) and its mirror; only the rows
   * of Hpe that some atom touched (loadings, LV coefficients) are non-zero */
  for (int i = 0; i < P; i++) {
    int any = 0;
    for (int k = 0; k < K; k++) any |= h->Hpe[i + (long) P * k] != 0.0;
    if (!any) continue;
    for (int t = 0; t < S; t++) {
      int pt = m->st_par[t];
      double acc = 0.0;
      for (int k = 0; k < K; k++) acc += h->Hpe[i + (long) P * k] * D[k * S + t];
      h->Hpp[i + (long) P * pt] += w * acc;
      h->Hpp[pt + (long) P * i] += w * acc;
    }
  }
  /* D' Hee D + sum_k g_eta_k D2_k into cells (st_par[t], st_par[u]) */
  for (int t = 0; t < S; t++) {
    int pt = m->st_par[t];
    for (int u = 0; u < S; u++) {
      int pu = m->st_par[u];
      double acc = 0.0;
      for (int k = 0; k < K; k++) {
        double dk = 0.0;
        for (int l = 0; l < K; l++) dk += h->Hee[k + K * l] * D[l * S + u];
        acc += D[k * S + t] * dk;
        if (D2) acc += geta[k] * D2[((long) k * S + t) * S + u];
      }
      h->Hpp[pt + (long) P * pu] += w * acc;
    }
  }
}

/* ---- one pair --------------------------------------------------------- */

/* l_nr: the log-likelihood of individual n at draw vector e (K), i.e. every
 * indicator observation and every choice row of n at eta(e).
 *   g (P + K) or NULL: on return g[0..P-1] = d l_nr / d theta (structural
 *     parameters included through the chain rule) and g[P..P+K-1] =
 *     d l_nr / d eta (the LVs held fixed);
 *   h or NULL (requires g): Hpp += w * hess l_nr; Hpe/Hee are overwritten.
 * Scratch ws: eta always; D when g; D2 when h and the model has LV-on-LV
 * terms (may be NULL otherwise); V, gV, HV when there is a choice model. */
ICLV_HD static inline double iclv_pair_eval(const iclv_model *m, const double *theta, int n,
                                            const double *e, iclv_pair_ws *ws, double *g,
                                            iclv_hess *h) {
  int P = m->n_par, K = m->n_lv;
  iclv_structural(m, theta, n, e, ws->eta, g ? ws->D : (double *) 0, h ? ws->D2 : (double *) 0);
  if (g) for (int i = 0; i < P + K; i++) g[i] = 0.0;
  if (h) {
    for (long i = 0; i < (long) P * K; i++) h->Hpe[i] = 0.0;
    for (int i = 0; i < K * K; i++) h->Hee[i] = 0.0;
  }
  double l = 0.0;
  for (int o = m->obs_ptr[n]; o < m->obs_ptr[n + 1]; o++)
    l += iclv_indicator_atom(m, theta, ws->eta, o, g, h);
  if (m->choice_type != ICLV_CHOICE_NONE) iclv_tapes_invalidate(m, ws->V);
  if (m->choice_type != ICLV_CHOICE_NONE)
    for (int t = m->row_ptr[n]; t < m->row_ptr[n + 1]; t++)
      l += iclv_choice_atom(m, theta, ws->eta, t, ws, g, h);
  if (h) iclv_fold_hessian(m, ws->D, ws->D2, g + P, h);
  if (g) iclv_fold_gradient(m, ws->D, g);
  return l;
}

#endif /* ICLV_CORE_H */
