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
 *   - LL and gradient in one pass over the draws, in blocks of up to 128
 *     draws with the draw index innermost (loops marked for SIMD), with an
 *     online log-sum-exp: each draw's link derivatives are accumulated with
 *     the draw's unnormalised weight (rescaled when a block exceeds the
 *     running maximum); gradients with respect to draw-invariant directions
 *     are formed once per individual from the weighted sums (pbar);
 *   - an inline exp (polynomial, about 1 ulp) where the argument is known
 *     to lie in [-708, 708]; an ordered-logit factor within 2^-12 of 1 is
 *     added as -log1p(x) so that log-likelihoods near 0 keep their digits;
 *   - a fast MNL row is implicit in the LL and score pass: only
 *     1 / sum_j E_tj u_j is kept per draw; the score's sums come from it
 *     and u, the column sums of d l / d eta from sum_t E_tj / S_t;
 *   - with covariate sources only, eta = e + c and d eta / d phi once per
 *     individual (structural_mean);
 *   - row multipliers (choice parts' scales, best-worst): W and L are
 *     pre-multiplied per row, the scale's score is formed from V's parts
 *     and the same weighted sums; in the Hessian pass a scale mu is a
 *     parameter of pseudo-terms, d U / d mu = sign (W0 + L0 eta) (the
 *     unscaled parts), so the rows' weighted sums M give its block too,
 *     and d2 U / d mu d theta comes from G0 and G1 (sum w gV eta_k);
 *   - MNL rows whose LV coefficients differ between rows (an LV times an
 *     attribute, several multipliers) are vectorised over the draws too
 *     (explicit rows: V = W + L eta, fast_exp_core, P_y into the product);
 *   - an MNL whose tapes read no draw (fd->tape_w) runs them once per
 *     individual and adds their values to W: its rows are the MNL's hoisted
 *     rows, the tapes' gradients pseudo-terms of the Hessian pass;
 *   - choice rows without a hoisted product form (nested logit, ordered
 *     choice, nonlinear utilities on tapes otherwise: fd->ref_choice) keep the
 *     indicators' and the structural part's hoisted forms: without row
 *     multipliers (fd->link_rows) their utilities come from the hoisted W
 *     and L plus the tapes' values (tapes that read no draw run once per
 *     individual) and go through the reference's links draw by draw, d l /
 *     dV into the same weighted sums as MNL's; with row multipliers through
 *     iclv_choice_atom itself, its gradient rows summed with the same
 *     weights; in the Hessian pass (row multipliers included) through the
 *     atoms, their outer products dense (iclv_hess.C: DV' C DV) and, where
 *     the utilities are affine in eta, from each row's sums over the draws
 *     (fd->atoms_affine);
 *   - the Hessian's choice block is formed from per-task weighted sums of
 *     d2 log P / dV dV' (times 1, eta_k, eta_k eta_l, only for LVs that
 *     the utilities carry), scattered once per individual instead of once
 *     per draw, in its lower triangle; a fast MNL row's sums are dot
 *     products over a block of draws of p_j p_j2 (j2 < j; the diagonal from
 *     HV's zero row sums), and the utility parameters' per-draw gradients
 *     are summed over the term lists a block of draws at a time; the
 *     parameter block of the terms without an LV is dX' M0 dX per row (a
 *     dense design over the individual's parameters, not a loop over
 *     pairs of terms);
 *     ordered-probit and ordered-logit terms of the Hessian pass reuse the
 *     LL pass's link values (Fst); with covariate sources only, those with
 *     one loading are summed over a block of draws (fixed-order dot
 *     products), only their gradient is formed draw by draw;
 *     binary-probit indicator terms use Cody's Phi (probit_cdf_fast);
 *     binary probit choice rows and explicit MNL rows are taken a block
 *     of draws at a time from the gV the LL pass kept (hess_block_probit,
 *     hess_block_mnl), their sums as dot products over the block;
 *   - with LV-on-LV terms (d eta / d phi differs by draw) the LV blocks
 *     that meet d eta / d phi are kept per draw for a block of draws (the
 *     indicators' rows of Hpe; the choice rows' HV L) and folded into the
 *     mixed block with w D as fixed-order dot products over the block
 *     (fold_block), the LV-LV block draw by draw;
 *   - the block kernels are also compiled for AVX2 (ICLV_CLONES, numerics.h:
 *     no FMA, so the same results on every CPU).
 * An ordered indicator with an intercept or a scale (ind_icpt or ind_sd >= 0,
 * lavaan's `y ~ 1`, `y ~~ y`) takes the reference link draw by draw in the
 * LL and score pass (its index a = (tau - alpha - s) / sigma has no hoisted
 * product form), its score from the same weighted sums as the others (see
 * iclv_fast_individual), and the reference atom in the Hessian pass.
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
  int B;             /* draws per block (equal blocks of <= BLOCK_DRAWS = 128, engine_fast.c) */
  int Tmax;          /* most choice rows of one individual */
  int Omax;          /* most indicator observations of one individual */
  int Ku;            /* LVs 0..Ku-1 may appear in the utilities (1 + largest ut_lv; 0 if none) */
  int NU;            /* utility terms (ut_ptr[n_alt]; 0 without a choice model) */
  int NUP;           /* distinct parameters of the utility terms without an LV, and of the
                        row multipliers (the Hessian pass's pseudo-terms, below) */
  int NTE;           /* the Hessian pass's terms per row at most: NU, and with row
                        multipliers (not through the atoms) J (1 + Ku) pseudo-terms for
                        d U / d mu = sign (W + L eta) (unscaled) */
  int lv_rowinv;     /* MNL and every LV utility term has no attribute column */
  int hess_ok;       /* no LV-on-LV structural term (d eta / d phi is draw-invariant) */
  int d2_zero;       /* every LV source of a structural term has no structural term itself
                        (d2 eta / d phi d phi' = 0: the Hessian pass forms no D2) */
  int row_mult;      /* rows carry utility multipliers (best-worst, scales, iclv_model.h): the
                        LL and score kernels apply them (setup_choice); the Hessian pass
                        adds the scales' pseudo-terms (NTE) and cross terms, or with
                        ref_choice takes the rows through the choice atoms */
  int nested;        /* a nested logit (iclv_model.h) */
  int ordered;       /* an ordered choice (iclv_model.h) */
  int tapes;         /* nonlinear utilities (iclv_tape.h) */
  int tape_w;        /* an MNL whose tapes read no draw (tapes_fixed), without row
                        multipliers: the tapes run once per individual (hoist_tapes) and
                        their values join W, so the rows take the MNL's hoisted forms (not
                        ref_choice); the tapes' parameters' score from G0 and the tapes'
                        gradients, their Hessian from pseudo-terms (the gradients, NTE)
                        and G0 times the tapes' Hessians */
  int tapes_fixed;   /* tapes whose variables are all parameters (no LV or random term): a
                        row's tape results are the same for every draw, run once per
                        individual (ICLV_FAST_CNT_TAPE_HOIST) */
  int tape_E;        /* doubles of one tape entry (iclv_tape_entry; 0 without tapes) */
  int Lc;            /* side of the Hessian pass's C (iclv_outer_dim; J without a choice model) */
  int link_rows;     /* ref_choice without row multipliers: the LL and score pass forms the
                        utilities from the hoisted W and L (plus the tapes' values) and
                        calls the links of iclv_core.h directly (block_link_rows); the
                        score from the same weighted sums as the hoisted forms' (G0, G1) */
  int nl_block;      /* doubles per draw of the nested-logit rows' block scratch (bN), 0
                        unless the LL and score pass takes a nested logit's rows a block
                        of draws at a time (link_rows with nests and no tape that reads a
                        draw: block_nl_rows) */
  int nl_nests;      /* with nl_block: the nests M (their lambdas, then J ints, follow bN's
                        nl_block B) */
  int ord_block;     /* doubles per draw of an ordered choice's block scratch (bN), 0 unless
                        the LL and score pass takes its rows a block of draws at a time
                        through the ordered indicators' kernels (link_rows with one index
                        and no tape that reads a draw: block_ord_rows) */
  int NTV;           /* tape variables over all alternatives (tape_var_ptr[n_alt]; 0 without) */
  int atoms_affine;  /* the utilities are affine in eta with draw-invariant coefficients (no
                        tape, or tapes_fixed): the Hessian pass sums each row's C over the
                        draws (affine_sums) and forms its outer products once (affine_outer) */
  int pblk;         /* a binary probit without row multipliers or tapes: the Hessian pass
                        takes its rows a block of draws at a time from the LL pass's gV_0
                        and LVs (kept in hU's hPg, hEta: hess_block_probit) */
  int exblk;        /* an MNL without nests whose rows can be explicit (LV coefficients
                        that differ by row, row multipliers), when Tmax J R doubles are
                        at most EXBLK_MAX_DOUBLES (engine_fast.c): for an individual
                        without row-invariant LV coefficients, the Hessian pass takes its
                        rows a block of draws at a time from the LL pass's gV (kept in
                        hU's hGv: hess_block_mnl) */
  int nhr;          /* with LV-on-LV terms (!hess_ok): a bound on the rows of Hpe that
                        the Hessian pass keeps per draw for fold_block (hess_rows: the
                        parameters of the indicators of LVs with structural terms) */
  int ref_choice;    /* nested, ordered or tapes: the choice rows have no hoisted form; both
                        passes take them draw by draw through iclv_choice_atom (the
                        reference's atom, iclv_core.h) inside the fast kernels, which keep
                        the indicators' and the structural part's hoisted forms and the
                        weighted sums (rows counted as ICLV_FAST_CNT_ROW_REF) */
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
  double *bD;    /* (K, S, B) d eta / d phi; in the Hessian pass of models with LV-on-LV
                    terms w D of a block's draws (fold_block) */
  double *bGe;   /* (K, B) d l / d eta */
  double *bS;    /* (16, B) log terms, products, their power-of-2 scales, l, weights, scratch (11) */
  double *bOf;   /* (Omax, 3, B) indicator derivatives d1, d2, c = d l / d s */
  double *bGv;   /* (Tmax, J, B) d log P / dV; an implicit fast row (block_choice) keeps
                    1 / sum_j E_tj u_j in its first B instead */
  double *bU;    /* (3, J, B) a = L eta, u = exp(a - max a), column sums of gV (after bGv) */
  double *bN;    /* (after bU) the nested-logit rows of a block of draws (nl_block, B):
                    V, p (J, B); I, zbar, Q (M, B); the max, the nests' sum and the
                    log-likelihood (B); d l / d eta (K, B); then the lambdas (M) and a
                    nest's members (J ints) (block_nl_rows); or an ordered choice's
                    (ord_block, B): the index, d l / d(a, b, V_0) (B each), d l / d eta
                    (K, B) (block_ord_rows) */
  double *tl;    /* (Tmax NU, 4) an individual's utility terms with x != 0 (parameter,
                    index of their gV, LV, x) sorted by parameter (Hessian pass); then
                    (Tmax NU, 4) the same by row and alternative; then ints: (P + 1) the
                    sort's counts, (Tmax, 2 J + 1) where each row's alternatives' terms
                    and their LV terms begin */
  double *cnt;   /* (ICLV_FAST_NCNT) path counters of this thread, cumulative since
                    iclv_fast_ws_bind (which zeroes them) */
  double *HpS;   /* (P, S) column-major, sum over draws of w Hpe D (Hessian pass of
                    models with LV-on-LV terms) */
  double *Fst;   /* (Omax, 2, R) of each draw, from the last LL and score pass (the Hessian
                    pass's): d log P / d(a, b) of an ordered-probit observation; F(a),
                    F(-b) of an ordered-logit one in the product form (logit_fast) */
  double *fr;    /* ((J + J (J - 1) / 2 + 1 + Ku + Ku^2) B + J) the fast rows' block sums
                    (Hessian pass, flush_rows) */
  double *cst;   /* (3 K) with covariate sources only (hess_ok): the LVs' draw-invariant
                    part c (eta = e + c), then scratch (K), zeros (K) */
  double *bZ;    /* (J B + J + B + J) a block's implicit fast rows (block_choice): Z (J, B)
                    = sum_t E_tj / S_t, the counts of their choices (J); then scratch
                    of the score: w / S_t (B), one dot per alternative (J) */
  double *usame; /* (2 J) an earlier alternative with the same LV coefficients (its u is
                    copied), or -1; then 1 for an alternative with an LV term, else 0 */
  double *dX;    /* the Hessian pass's scratch, laid out by hess_layout (engine_fast.c):
                    one row's design of the utility terms without an LV (J, NUP), M0 dX,
                    their parameter block, their LV block, M0 L (the fold); the ordered
                    indicators' block sums of d l / d eta; Hee D of a draw; with
                    LV-on-LV terms a block of draws' rows of Hpe that the indicators
                    write (nhr, B) and the choice rows' HV L (Ku, J, Tmax, B); then
                    ints: the fold's parameter columns, the observations summed over a
                    block of draws (hess_block_indicators), the carried LVs, those rows
                    of Hpe (hess_rows), D's non-zeros of a draw and of a block */
  double *hU;    /* (J, R) u_j of each draw of the last LL pass with links, where its
                    block was implicit (block_choice); then hI (Tmax, R) 1 / S_t of
                    its fast rows, hF (R) 1 for such a block (by block index): the
                    Hessian pass's choice rows reuse them (hess_block_choice); with
                    pblk then hPg (Tmax, R) each probit row's gV_0 and hEta (K, R)
                    the LVs of each draw (hess_block_probit); with exblk then hGv
                    (Tmax, J, R) each row's gV (hess_block_mnl) */
  double *rc;    /* ref_choice only: the choice rows through the atoms,
                    laid out by rc_layout (engine_fast.c): one draw's gradient, its
                    entries at the choice parameters for a block of draws and their
                    weighted sums (LL and score pass); the Hessian pass's dense outer
                    products (atom_outer); the hoisted tape results (tapes_fixed) */
  int nrc;       /* entries of crow */
  int rowinv;    /* the current individual's LV utility coefficients are the same in
                    every row (lv_rowinv, and one row multiplier: setup_choice) */
} iclv_fast_ws;

/* The path counters (iclv_fast_ws.cnt): which code took each piece of
 * work. A "term" is one (indicator observation or choice row, draw) pair of
 * the LL and score pass. The vectorised forms are the product forms over a
 * block of draws (Cody's Phi for probit links, exp(W) exp(L eta) for MNL,
 * logit_fast's form for ordered logit); a term redone one by one through
 * the fast scalar forms (probit_fast, probit_cdf_fast, logit_fast: a log or
 * log1p of its own) counts as scalar; the links of numerics.h / iclv_core.h
 * (normal and binary indicators, the tails, MNL rows with attribute-bearing
 * LV terms) count as reference. They cost a few additions per block and
 * make no difference to any result; tests read their sums over the threads
 * (iclv_cpu_engine_paths) to prove that the fast path is taken. */
enum {
  ICLV_FAST_CNT_INDIV = 0,   /* individuals through iclv_fast_individual */
  ICLV_FAST_CNT_HESS,        /* individuals through iclv_fast_hessian */
  ICLV_FAST_CNT_OBS_VEC,     /* indicator terms, vectorised forms */
  ICLV_FAST_CNT_OBS_SCALAR,  /* indicator terms, fast scalar forms */
  ICLV_FAST_CNT_OBS_REF,     /* indicator terms, reference links */
  ICLV_FAST_CNT_ROW_VEC,     /* choice-row terms, vectorised forms */
  ICLV_FAST_CNT_ROW_SCALAR,  /* choice-row terms, fast scalar forms */
  ICLV_FAST_CNT_ROW_REF,     /* choice-row terms, reference links (the atoms included) */
  ICLV_FAST_CNT_TAPE_HOIST,  /* choice rows whose tapes ran once for all draws (tapes_fixed) */
  ICLV_FAST_NCNT
};

/* Fills fd from the model and R. */
void iclv_fast_dims_init(const iclv_model *m, int R, iclv_fast_dims *fd);

/* Doubles of one thread's iclv_fast_ws (a multiple of 8); the CPU engine's
 * planner (iclv_cpu_plan) sizes the thread scratch from it. */
size_t iclv_fast_ws_doubles(const iclv_fast_dims *fd);

/* Points ws into block (iclv_fast_ws_doubles(fd) doubles) and zeroes its
 * path counters. */
void iclv_fast_ws_bind(const iclv_fast_dims *fd, double *block, iclv_fast_ws *ws);

/* Log-likelihood of individual n, log L_n = logsumexp_r(l_nr) - log R, and
 * with score != NULL its score (P) d log L_n / d theta. E (R, K) row-major
 * holds the draws of n; lr (R) receives l_nr. pws supplies eta (K) and D
 * (K, S) (and D2 when the model has LV-on-LV terms). With links != 0 it
 * leaves in ws what iclv_fast_hessian() reuses. Returns
 * log L_n (NaN or +-Inf when not finite; the score is then unspecified). */
double iclv_fast_individual(const iclv_model *m, const iclv_fast_dims *fd, const double *theta,
                            int n, const double *E, iclv_pair_ws *pws, iclv_fast_ws *ws,
                            double *lr, double *score, int links);

/* Requires that the last iclv_fast_individual() on ws was for n at theta
 * with links: it reuses that pass's per-individual set-up (utility parts,
 * the indicators' constants), the ordered indicators' link values in
 * ws->Fst, which it overwrites with their derivatives, and the MNL rows'
 * u and 1 / S_t of its implicit blocks (ws->hU).
 * With the draw weights wr (R) of individual n (exp(l_nr - logsumexp), 0
 * skips a draw): Hn (P, P) column-major += sum_r wr hess l_nr (its lower
 * triangle, diagonal included; the upper one is incomplete),
 * and row r of G (stride ldg >= P + K) = the gradient g_nr (P) of l_nr for
 * every draw with wr > 0 (the row's P + K entries are its scratch for the
 * extended gradient; rows of draws with wr == 0 are not written). Scratch:
 * Hpe_d (P, K), Hee_d (K, K) (a draw's LV blocks); pws->D2 (K, S, S) when !fd->hess_ok. With fd->hess_ok
 * (d eta / d phi draw-invariant) the LV blocks are summed over the draws
 * and folded once; otherwise each draw's are folded with its own d eta /
 * d phi (and D2), as the per-pair reference does. */
void iclv_fast_hessian(const iclv_model *m, const iclv_fast_dims *fd, const double *theta,
                       int n, const double *E, iclv_pair_ws *pws, iclv_fast_ws *ws,
                       const double *wr, double *G, size_t ldg, double *Hpe_d,
                       double *Hee_d, double *Hn);

/* The draw weights of an individual, w[r] = exp(lr[r] - lse) (R draws),
 * through fast_exp (within about 1 ulp of exp()). */
void iclv_fast_weights(const double *lr, double lse, int R, double *w);

#endif /* ICLV_ENGINE_FAST_H */
