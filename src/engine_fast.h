/*
 * engine_fast.h -- the CPU engine's fast per-individual kernels (engine_fast.c).
 *
 * They compute exactly what iclv_core.h's per-pair reference defines (the
 * same model, the same log-likelihood, gradient and Hessian, to rounding),
 * reorganised for a CPU (issue 17):
 *   - draw-invariant work hoisted per individual: the utilities are
 *     V_tj(eta) = W_tj + sum_k L_tjk eta_k with W (ASCs and attribute terms)
 *     and L (LV coefficients) formed once per individual; when every LV term
 *     of the utilities is free of attributes, L does not depend on the row
 *     and exp(V_tj) = E_tj u_j with E_tj = exp(W_tj - max_j W_tj) once per
 *     individual and u_j = exp(L_j eta) once per draw, so an MNL task costs
 *     multiplications and one division; ordered-logit indicators use
 *     exp(s) once per observation and draw, with exp(tau) hoisted;
 *   - the log-likelihood of a draw is one log of a product of probabilities
 *     (rescaled by powers of two, so never under- or overflowing) plus the
 *     logs of the links that have no product form (probit, normal, binary);
 *   - LL and gradient in one pass over the draws, in blocks of up to 32
 *     draws with the draw index innermost (loops marked for SIMD), with an
 *     online log-sum-exp: each draw's link derivatives are accumulated with
 *     the draw's unnormalised weight (rescaled when a block exceeds the
 *     running maximum); gradients with respect to draw-invariant directions
 *     are formed once per individual from the weighted sums (pbar);
 *   - an inline exp (polynomial, about 1 ulp) where the argument is known
 *     to lie in [-708, 708]; an ordered-logit factor within 2^-12 of 1 is
 *     added as -log1p(x) so that log-likelihoods near 0 keep their digits;
 *   - the Hessian's choice block is formed from per-task weighted sums of
 *     d2 log P / dV dV' (times 1, eta_k, eta_k eta_l), scattered once per
 *     individual instead of once per draw.
 * Guards send a task, draw or observation whose exponents could leave
 * (e^-300, e^300) to the reference link functions of numerics.h, so the
 * tails are exactly as robust as the reference.
 *
 * Plain C, no R API, no allocation: every array is in an iclv_fast_ws that
 * the engine allocates at creation (size from iclv_fast_ws_doubles).
 */
#ifndef ICLV_ENGINE_FAST_H
#define ICLV_ENGINE_FAST_H

#include <stddef.h>
#include "iclv_model.h"
#include "iclv_core.h"

/* Model-level facts the kernels use (iclv_fast_dims_init). */
typedef struct {
  int P, K, S, J, R; /* parameters, LVs, structural terms, alternatives (>= 1), draws */
  int B;             /* draws per block of the LL and score pass (equal blocks of <= 32) */
  int Tmax;          /* most choice rows of one individual */
  int Omax;          /* most indicator observations of one individual */
  int Ku;            /* LVs 0..Ku-1 may appear in the utilities (1 + largest ut_lv; 0 if none) */
  int NU;            /* utility terms (ut_ptr[n_alt]; 0 without a choice model) */
  int lv_rowinv;     /* MNL and every LV utility term has no attribute column */
  int hess_ok;       /* no LV-on-LV structural term (d eta / d phi is draw-invariant) */
} iclv_fast_dims;

/* Per-thread scratch (all pointers into one block; shapes row-major). */
typedef struct {
  double *W;     /* (Tmax, J) draw-invariant utility part */
  double *L;     /* (Tmax, J, Ku) LV coefficients of the utilities */
  double *Eu;    /* (J, Tmax) column-major exp(W - max W) of a fast row (0 when unavailable) */
  double *tsafe; /* (Tmax) 1 when the task may use Eu */
  double *gV;    /* (J, Tmax) column-major d log P / dV of the current draw */
  double *HV;    /* (Tmax, J, J) d2 log P / dV dV' of the current draw (Hessian) */
  double *G0;    /* (J, Tmax) column-major weighted sums of gV */
  double *G1;    /* (Tmax, J, Ku) weighted sums of gV eta_k; with lv_rowinv only (J, Ku)
                    of sum_t gV_tj eta_k */
  double *M0;    /* (Tmax, J, J) weighted sums of HV (Hessian) */
  double *M1;    /* (Tmax, Ku, J, J) weighted sums of HV eta_k (Hessian) */
  double *M2;    /* (Tmax, Ku, Ku, J, J) weighted sums of HV eta_k eta_l (Hessian) */
  double *oc;    /* (Omax, 5) per-observation constants of the current individual */
  double *A0;    /* (Omax, 2) weighted sums of d1, d2 */
  double *A1;    /* (Omax, K) weighted sums of c eta_k */
  double *geta;  /* (K) d l / d eta of the current draw */
  double *Gst;   /* (S) weighted sums of the structural terms' gradient */
  double *au;    /* (5 J + K) a_j = L_j eta, u_j = exp(a_j - max a), V_j, a link's gV,
                    column sums cs_j = sum_t gV_tj of the current draw, an eta (K) */
  double *Hpe;   /* (P, K) column-major, weighted LV-parameter block (Hessian) */
  double *Hee;   /* (K, K) weighted LV-LV block (Hessian) */
  double *tv;    /* (Tmax) per-row scratch of one draw */
  /* one block of B draws (LL and score pass), draws innermost: */
  double *bEta;  /* (K, B) LVs */
  double *bD;    /* (K, S, B) d eta / d phi */
  double *bGe;   /* (K, B) d l / d eta */
  double *bS;    /* (8, B) log terms, products, their power-of-2 scales, l, weights, scratch (3) */
  double *bOf;   /* (Omax, 3, B) indicator derivatives d1, d2, c = d l / d s */
  double *bGv;   /* (Tmax, J, B) d log P / dV */
  double *bU;    /* (3, J, B) a = L eta, u = exp(a - max a), column sums of gV (after bGv) */
  double *tl;    /* (Tmax NU, 4) an individual's utility terms with x != 0: parameter,
                    index of their gV, x, LV (Hessian pass) */
} iclv_fast_ws;

/* Fills fd from the model and R. */
void iclv_fast_dims_init(const iclv_model *m, int R, iclv_fast_dims *fd);

/* Doubles of one thread's iclv_fast_ws (a multiple of 8). R/memory.R mirrors
 * this formula (.plan_cpu_engine). */
size_t iclv_fast_ws_doubles(const iclv_fast_dims *fd);

/* Points ws into block (iclv_fast_ws_doubles(fd) doubles). */
void iclv_fast_ws_bind(const iclv_fast_dims *fd, double *block, iclv_fast_ws *ws);

/* Log-likelihood of individual n, log L_n = logsumexp_r(l_nr) - log R, and
 * with score != NULL its score (P) d log L_n / d theta. E (R, K) row-major
 * holds the draws of n; lr (R) receives l_nr. pws supplies eta (K) and D
 * (K, S) (and D2 when the model has LV-on-LV terms). Returns log L_n (NaN
 * or +-Inf when not finite; the score is then unspecified). */
double iclv_fast_individual(const iclv_model *m, const iclv_fast_dims *fd, const double *theta,
                            int n, const double *E, iclv_pair_ws *pws, iclv_fast_ws *ws,
                            double *lr, double *score);

/* Requires fd->hess_ok. With the draw weights wr (R) of individual n
 * (exp(l_nr - logsumexp), 0 skips a draw): Hn (P, P) column-major +=
 * sum_r wr hess l_nr (every cell), and row r of G (stride ldg) = the
 * gradient g_nr (P) of l_nr for every draw with wr > 0. Scratch: gtmp
 * (P + K), Hpe_d (P, K), Hee_d (K, K) (a draw's indicator LV blocks). */
void iclv_fast_hessian(const iclv_model *m, const iclv_fast_dims *fd, const double *theta,
                       int n, const double *E, iclv_pair_ws *pws, iclv_fast_ws *ws,
                       const double *wr, double *G, size_t ldg, double *gtmp, double *Hpe_d,
                       double *Hee_d, double *Hn);

#endif /* ICLV_ENGINE_FAST_H */
