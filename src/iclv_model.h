/*
 * iclv_model.h -- the compiled ICLV model and data as plain C arrays.
 *
 * This header is the contract between the R side (R/compile.R builds the
 * list `compiled` whose elements carry exactly these names), the CPU engine
 * (engine.c) and the CUDA backend (cuda/). It contains plain C types only: no
 * R headers, so .cu files can include it.
 *
 * Conventions
 *   - Every index is 0-based and stored as int.
 *   - "CSR" means a pointer array ptr[n+1] into flat arrays: the entries of
 *     item i are [ptr[i], ptr[i+1]).
 *   - Row-major means element (i, j) of an (n x m) table is at [i*m + j].
 *   - theta is the vector of *natural* parameters, length n_par, in the order
 *     of the model's parameter table (model$partable$name); fixed parameters
 *     are included. Thresholds are thresholds (strictly increasing within an
 *     indicator), standard deviations are standard deviations (> 0).
 *   - Individuals are n = 0..n_ind-1 in the order of first appearance of
 *     their id in the data.
 *
 * The model, for individual n and draw r (e[k] = standard normal draw of
 * dimension k, the draw dimension equals the latent variable index):
 *
 *   Structural (LVs computed in lv_order, a topological order):
 *     eta[k] = u_k e[k] + sum_{t in st_ptr[k]..} theta[st_par[t]] * src_t
 *       src_t = cov[n*n_cov + st_src[t]]   if st_src_type[t] == ICLV_SRC_COV
 *             = eta[st_src[t]]             if st_src_type[t] == ICLV_SRC_LV
 *             = e[st_src[t]]               if st_src_type[t] == ICLV_SRC_DRAW
 *       u_k = 0 when LV k has a term with st_src_type ICLV_SRC_DRAW and
 *       st_src == k (its error's standard deviation is that term's
 *       parameter: lavaan's `lv ~~ lv`, R/lvstat.R), else 1 (variance 1,
 *       the default normalisation). An LV intercept (`lv ~ 1`) is a
 *       covariate term on a column of ones.
 *
 *   Measurement, one term per observation o of individual n
 *   (o in obs_ptr[n]..obs_ptr[n+1]-1, indicator m = obs_ind[o], y = obs_val[o]):
 *     s = sum_{q in ind_load_ptr[m]..} theta[ind_load_par[q]] * eta[ind_load_lv[q]]
 *     ordered probit/logit (y in 1..C, C = ind_ncat[m]; tau_c = theta[ind_thr[m] + c - 1],
 *       c = 1..C-1; tau_0 = -Inf, tau_C = +Inf):
 *         log P = log( F((tau_y - alpha - s) / sigma) - F((tau_{y-1} - alpha - s) / sigma) ),
 *       F = Phi or logistic; alpha = theta[ind_icpt[m]] when ind_icpt[m] >= 0, else 0
 *       (lavaan's `y ~ 1`), sigma = theta[ind_sd[m]] > 0 when ind_sd[m] >= 0, else 1
 *       (`y ~~ y`: the standard deviation of the latent response; R/indicator.R)
 *     normal: mu = theta[ind_icpt[m]] + s, sd = theta[ind_sd[m]]:
 *         log p = log dnorm(y; mu, sd)
 *     binary probit/logit (y in {0, 1}): a = theta[ind_icpt[m]] + s,
 *         log P = log F(a) if y == 1, log F(-a) if y == 0
 *
 *   Choice, one term per row t of individual n (t in row_ptr[n]..row_ptr[n+1]-1):
 *     V[j] = sum_{u in ut_ptr[j]..} theta[ut_par[u]] * x_u * lvf_u
 *       x_u   = X[t*n_xcol + ut_col[u]] if ut_col[u] >= 0, else 1
 *       lvf_u = eta[ut_lv[u]]            if ut_lv[u]  >= 0, else 1
 *     row multiplier (n_mult == n_rows; all 1 when n_mult == 0):
 *       s_t = mult_sign[t] * (theta[mult_par[t]] if mult_par[t] >= 0, else 1),
 *       and the link below sees U[j] = s_t * V[j] in place of V[j]. It makes
 *       the worst stage of a best-worst task (s_t = -1, or -mu with a free
 *       scale mu > 0) an MNL row; ranked and best-worst tasks are compiled
 *       into one MNL row per stage (R/rank.R), so they need no other kernel.
 *     MNL:    log P = V[y_t] - log sum_{j available} exp(V[j])
 *     probit: (n_alt == 2) log P = log Phi(V[0] - V[1]) if y_t == 0, else log Phi(V[1] - V[0])
 *             (0 when only the chosen alternative is available)
 *     nested logit (NL): alternative j is in nest a = nest_of[j] with
 *       lambda_a = theta[nest_par[a]] (1 when nest_par[a] < 0); with the
 *       available alternatives A_a of nest a, y_t in nest b,
 *         I_a = log sum_{k in A_a} exp(V[k] / lambda_a),  W_a = lambda_a I_a,
 *         log P = V[y_t] / lambda_b + (lambda_b - 1) I_b - log sum_{a: A_a != {}} exp(W_a)
 *       (iclv_core.h, iclv_nl_link, holds the derivatives); nests without an
 *       available alternative drop out. All lambda 1 is MNL, bit for bit.
 *     ordered (n_alt == 1: one utility V = V[0], the index; no availability,
 *       no row multiplier): y_t = c - 1 for the category c in 1..C (C =
 *       n_ocat >= 2), thresholds tau_k = theta[ocat_thr + k - 1] (k = 1..C-1,
 *       consecutive parameters, strictly increasing), tau_0 = -Inf, tau_C = +Inf,
 *         log P = log( F(tau_c - V) - F(tau_{c-1} - V) ),
 *       F = Phi (ocat_logit == 0) or the logistic (ocat_logit == 1): the link
 *       of the ordered indicators (iclv_ordered_link), index V in place of s.
 *     availability: avail[t*n_alt + j] != 0 (all available when n_avail == 0)
 *
 *   Nonlinear utilities: with n_tape > 0, V[j] above gains N_j(theta, eta,
 *     X[t, ]), the value of alternative j's tape (src/iclv_tape.h, built by
 *     R/tape.R): the additive terms of the utility that are not linear in
 *     the parameters; exact derivatives by forward mode on the tape.
 *
 *   l_nr = sum of the above; log L_n = logsumexp_r(l_nr) - log R; LL = sum_n log L_n.
 *
 *   Random terms (iclv_model(random = ), R/compile.R): the draw dimensions
 *     K_lv..n_lv-1 after the K_lv latent variables are random terms, i.e.
 *     "latent variables" without structural terms (st_ptr[k] == st_ptr[k+1])
 *     and without indicators, so eta[k] = e[k], a standard-normal draw per
 *     individual; utility terms reference them through ut_lv exactly as
 *     they reference an LV (b_sd * xi * price: ut_par = b_sd, ut_col = price,
 *     ut_lv = xi), which gives the exact derivatives and the fast path with
 *     no code of their own. lv_order lists them last. The draw design's
 *     n_dim is n_lv, LVs and random terms together.
 *
 *   Weights: with weight != NULL, LL = sum_n w_n log L_n (w_n = weight[n],
 *     finite, >= 0), and the gradient, scores and Hessian are those of this
 *     weighted sum: the per-individual outputs are w_n log L_n and
 *     w_n d log L_n / d theta (sampling weights, as Stata's pweights and
 *     Apollo's weights: the outer product of these scores enters the BHHH
 *     and sandwich covariances). Only the sums over individuals see w_n
 *     (engine.c, cuda/), so weight == NULL is the unweighted code, bit for
 *     bit, and all weights 1.0 give the same bits too.
 */
#ifndef ICLV_MODEL_H
#define ICLV_MODEL_H

#include <stdint.h>

/* indicator types (ind_type) */
enum {
  ICLV_IND_ORDERED_PROBIT = 1,
  ICLV_IND_ORDERED_LOGIT  = 2,
  ICLV_IND_NORMAL         = 3,
  ICLV_IND_BINARY_PROBIT  = 4,
  ICLV_IND_BINARY_LOGIT   = 5
};

/* choice model types (choice_type) */
enum {
  ICLV_CHOICE_NONE   = 0,
  ICLV_CHOICE_MNL    = 1,
  ICLV_CHOICE_PROBIT = 2,
  ICLV_CHOICE_NL     = 3,
  ICLV_CHOICE_ORDERED = 4
};

/* sources of structural terms (st_src_type) */
enum {
  ICLV_SRC_COV  = 0,
  ICLV_SRC_LV   = 1,
  ICLV_SRC_DRAW = 2  /* a draw dimension: e[st_src] (R/lvstat.R) */
};

/* draw types (iclv_draws.type) */
enum {
  ICLV_DRAWS_USER             = 0,
  ICLV_DRAWS_HALTON           = 1,
  ICLV_DRAWS_SCRAMBLED_HALTON = 2,
  ICLV_DRAWS_SOBOL            = 3,
  ICLV_DRAWS_MLHS             = 4,
  ICLV_DRAWS_PSEUDO           = 5
};

typedef struct {
  /* dimensions */
  int n_ind;      /* N individuals */
  int n_lv;       /* K draw dimensions: the latent variables, then the random terms */
  int n_par;      /* P natural parameters (free and fixed) */
  int n_cov;      /* C covariates per individual (structural model) */
  int n_indic;    /* M indicators */
  int n_obs;      /* total indicator observations (non-missing) */
  int n_rows;     /* total choice rows (tasks) */
  int n_alt;      /* J alternatives (0 when choice_type == NONE) */
  int n_xcol;     /* attribute columns in X */
  int n_avail;    /* n_rows * n_alt, or 0 when every alternative is always available */
  int choice_type;/* ICLV_CHOICE_* */

  /* structural model */
  const int *lv_order;     /* (n_lv) topological order of the LVs */
  const int *st_ptr;       /* (n_lv + 1) CSR over LVs */
  const int *st_par;       /* (st_ptr[n_lv]) parameter index of each term */
  const int *st_src_type;  /* (st_ptr[n_lv]) ICLV_SRC_COV, ICLV_SRC_LV or ICLV_SRC_DRAW */
  const int *st_src;       /* (st_ptr[n_lv]) covariate column or LV index */
  const double *cov;       /* (n_ind, n_cov) row-major */

  /* measurement model */
  const int *ind_type;     /* (n_indic) ICLV_IND_* */
  const int *ind_ncat;     /* (n_indic) categories C for ordered, 2 for binary, 0 for normal */
  const int *ind_thr;      /* (n_indic) index of the first threshold parameter, or -1 */
  const int *ind_icpt;     /* (n_indic) intercept parameter (normal, binary; ordered: optional),
                              or -1 (ordered: intercept 0) */
  const int *ind_sd;       /* (n_indic) sd parameter (normal; ordered: optional scale), or -1
                              (ordered: scale 1; binary: always -1) */
  const int *ind_load_ptr; /* (n_indic + 1) CSR over indicators */
  const int *ind_load_lv;  /* (ind_load_ptr[n_indic]) LV of each loading */
  const int *ind_load_par; /* (ind_load_ptr[n_indic]) parameter of each loading */
  const int *obs_ptr;      /* (n_ind + 1) CSR over individuals */
  const int *obs_ind;      /* (n_obs) indicator of each observation */
  const double *obs_val;   /* (n_obs) observed value: category 1..C, 0/1, or real */

  /* choice model */
  const int *row_ptr;      /* (n_ind + 1) CSR over individuals */
  const int *y;            /* (n_rows) chosen alternative 0..n_alt-1 (ordered: category - 1) */
  const int *avail;        /* (n_rows, n_alt) row-major, or NULL when n_avail == 0 */
  const double *X;         /* (n_rows, n_xcol) row-major attributes */
  const int *ut_ptr;       /* (n_alt + 1) CSR over alternatives */
  const int *ut_par;       /* (ut_ptr[n_alt]) parameter of each utility term */
  const int *ut_col;       /* (ut_ptr[n_alt]) column of X, or -1 */
  const int *ut_lv;        /* (ut_ptr[n_alt]) LV, or -1 */
  int n_mult;              /* n_rows when rows carry a utility multiplier, else 0 */
  const double *mult_sign; /* (n_mult) +1 or -1, or NULL when n_mult == 0 */
  const int *mult_par;     /* (n_mult) scale parameter of the row (theta > 0), or -1 */
  int n_nest;              /* nests of a nested logit (choice_type == NL), else 0 */
  const int *nest_of;      /* (n_alt) nest 0..n_nest-1 of each alternative, or NULL */
  const int *nest_par;     /* (n_nest) parameter of the nest's lambda (0 < theta <= 1),
                              or -1 (lambda = 1: an alternative in no nest of the user's) */
  int n_ocat;              /* categories C >= 2 of an ordered choice (choice_type == ORDERED), else 0 */
  int ocat_thr;            /* first of its C - 1 consecutive threshold parameters, or -1 */
  int ocat_logit;          /* its link: 0 probit, 1 logit */

  /* the nonlinear parts of the utilities (iclv_tape.h; n_tape == 0: none,
   * every pointer below NULL) */
  int n_tape;              /* alternatives whose utility has a tape */
  int tape_nv;             /* most variables of one tape */
  int tape_depth;          /* deepest stack of one tape */
  const int *tape_ptr;     /* (n_alt + 1) CSR over alternatives into tape_op / tape_arg */
  const int *tape_op;      /* (tape_ptr[n_alt]) ICLV_OP_* */
  const int *tape_arg;     /* (tape_ptr[n_alt]) constant, variable or X column index, or 0 */
  int n_tape_const;        /* constants of all tapes */
  const double *tape_const;/* (n_tape_const) */
  const int *tape_var_ptr; /* (n_alt + 1) CSR over alternatives into tape_var */
  const int *tape_var;     /* extended coordinate of each tape variable: p < n_par a
                              parameter, n_par + k the LV or random term k */
  int tape_nslot;          /* most hoisted subtrees (slots) of one tape; 0: none */
  const int *tape_pptr;    /* (n_alt + 1) CSR into tape_pop / tape_parg: each tape's pair
                              program (its subtrees without data, run once per draw) */
  const int *tape_pop;     /* (tape_pptr[n_alt]) ICLV_OP_* */
  const int *tape_parg;    /* (tape_pptr[n_alt]) */

  /* individual weights */
  const double *weight;    /* (n_ind) w_n (finite, >= 0), or NULL: unweighted */
} iclv_model;

/* The draw design: how e[n, r, k] is defined. */
typedef struct {
  int type;           /* ICLV_DRAWS_* */
  int n_draws;        /* R draws per individual */
  int n_dim;          /* dimensions (= n_lv) */
  int n_ind;          /* individuals the design covers */
  int ind_offset;     /* individual n of this design is individual n + ind_offset of
                         the full design (a shard of a cluster, R/cluster.R); every
                         generated type uses the full index, so a shard sees the very
                         draws of the whole; 0 for a whole design and for USER (a
                         shard of a user array is the slice of the array) */
  uint64_t seed;      /* seed for scrambled Halton, MLHS, pseudo */
  int64_t skip;       /* points skipped at the start of Halton/Sobol sequences */
  const double *user; /* (n_ind, n_draws, n_dim) in R's column-major order:
                         e[n, r, k] = user[n + n_ind * (r + n_draws * k)];
                         standard normal values; NULL unless type == USER */
} iclv_draws;

/* Status returned by every core routine: code 0 is success; msg says what
 * went wrong (for CUDA errors: the call, file and line). Only the R boundary
 * turns a non-zero code into an R error. */
enum {
  ICLV_OK          = 0,
  ICLV_ERR_INPUT   = 1, /* bad argument or model */
  ICLV_ERR_NUMERIC = 2, /* non-finite likelihood */
  ICLV_ERR_MEMORY  = 3, /* allocation failed */
  ICLV_ERR_CUDA    = 4, /* a CUDA call failed */
  ICLV_ERR_LAPACK  = 5, /* a LAPACK routine failed */
  ICLV_INTERRUPTED = 6, /* the caller's poll asked to stop (e.g. Ctrl-C); nothing
                           was returned, the engine stays usable */
  ICLV_ERR_THREADS = 7  /* the system refused the threads asked for */
};

#define ICLV_MSG_LEN 512

typedef struct {
  int code;
  char msg[ICLV_MSG_LEN];
} iclv_status;

#endif /* ICLV_MODEL_H */
