/*
 * engine.h -- the evaluation interface shared by the CPU engine (engine.c)
 * and the CUDA backend (cuda/cuda_engine.cu). Plain C types only.
 *
 * An engine is created once per fit from a model and a draw design; it
 * allocates every workspace it will ever need at creation (none inside the
 * evaluation path) and records the bytes of each buffer in its account.
 * Each backend has a planner that computes that account before anything is
 * allocated, and its create allocates from the plan (backend.h chooses the
 * backend; draws.h and linalg.h declare the draws and LAPACK helpers).
 */
#ifndef ICLV_ENGINE_H
#define ICLV_ENGINE_H

#include "iclv_model.h"

/* What one evaluation returns. Pointers the caller does not want are NULL;
 * the caller owns all memory. Derivatives are with respect to every natural
 * parameter theta[0..n_par-1] (fixed ones included; the caller drops them). */
typedef struct {
  double *loglik;    /* (1)  sum_n log L_n */
  double *loglik_i;  /* (n_ind) log L_n, or NULL */
  double *grad;      /* (n_par) d LL / d theta, or NULL */
  double *scores;    /* (n_ind, n_par) column-major: d log L_n / d theta_p at [n + n_ind*p], or NULL */
  double *hess;      /* (n_par, n_par) column-major exact Hessian of LL, or NULL */
} iclv_eval_out;

/* Memory accounting: every buffer an engine allocates, by name. */
#define ICLV_MAX_BUFFERS 32
#define ICLV_BUFNAME_LEN 40
typedef struct {
  int n;                                       /* buffers recorded */
  char name[ICLV_MAX_BUFFERS][ICLV_BUFNAME_LEN];
  double bytes[ICLV_MAX_BUFFERS];              /* bytes of each buffer */
  double current;                              /* bytes allocated now */
  double peak;                                 /* largest `current` seen */
} iclv_mem_account;

/* Interrupt poll. The engines call it on the calling (main) thread only,
 * between batches of individuals (never inside a parallel region or from a
 * worker thread), with the `ctx` given to the setter. A non-zero return stops
 * the evaluation: it returns ICLV_INTERRUPTED, its outputs are undefined, and
 * the engine stays usable (it allocates nothing per evaluation, so nothing
 * leaks). The R boundary passes a function that checks for Ctrl-C. */
typedef int (*iclv_poll_fn)(void *ctx);

/* ---- CPU engine (engine.c) ---------------------------------------------- */
#define ICLV_MAX_THREADS 1024 /* more CPU threads than this is refused */
#define ICLV_THREADS_PER_PROC 4 /* more threads than this many per processor is refused */
typedef struct iclv_cpu_engine iclv_cpu_engine;

/* What iclv_cpu_engine_create would allocate for the same arguments: its
 * planner, which create itself calls before allocating exactly these
 * buffers, so a plan and an engine's account cannot differ. */
typedef struct {
  int n_threads;         /* the OpenMP team size the engine uses */
  int hess_block;        /* individuals per Hessian block */
  iclv_mem_account acct; /* every buffer in allocation order; current = peak = their sum */
} iclv_cpu_plan_info;

/* The CPU engine's plan for model m, design d and n_threads (<= 0: the
 * OpenMP default; capped at OMP_THREAD_LIMIT, as the engine does). Pure
 * arithmetic: allocates nothing, starts no thread. It does not apply the
 * engine's refusals of too many threads for this machine
 * (ICLV_THREADS_PER_PROC, the probe), so a plan can be made for a larger
 * machine. Returns ICLV_OK, or ICLV_ERR_INPUT (design and model disagree,
 * n_threads > ICLV_MAX_THREADS). */
int iclv_cpu_plan(const iclv_model *m, const iclv_draws *d, int n_threads,
                  iclv_cpu_plan_info *out, iclv_status *st);

/* The OpenMP default team size (omp_get_max_threads(), capped at
 * OMP_THREAD_LIMIT; 1 without OpenMP): what n_threads <= 0 means. */
int iclv_cpu_default_threads(void);

/* Creates the CPU engine. `m` and `d` must outlive the engine (they point
 * into R objects that the caller keeps protected). n_threads as in
 * iclv_cpu_plan. With check_thread_limits (always, except for tests that
 * only read an engine's account) more than ICLV_THREADS_PER_PROC times the
 * processors OpenMP sees, or more threads than the system will start now
 * (probed, e.g. under an address-space limit), is ICLV_ERR_THREADS: the
 * OpenMP runtime would end the process instead. The buffers are those of
 * iclv_cpu_plan(m, d, n_threads), in its order. With the environment
 * variable ICLV_CPU_REFERENCE=1 at creation the engine uses the per-pair
 * reference path of iclv_core.h instead of the fast kernels (engine_fast.h):
 * the same results to rounding, for tests.
 * On success *out is set and ICLV_OK returned; on failure *out is NULL and
 * nothing is leaked. */
int iclv_cpu_engine_create(const iclv_model *m, const iclv_draws *d,
                           int n_threads, int check_thread_limits,
                           iclv_cpu_engine **out, iclv_status *st);

/* One evaluation at theta (n_par). Allocates nothing. Returns ICLV_OK, or
 * ICLV_ERR_NUMERIC with a message naming the individual and the model part
 * when log L_n is not finite, or ICLV_ERR_INPUT (e.g. thresholds not
 * increasing, sd <= 0), or ICLV_INTERRUPTED when the poll asked to stop
 * (polled between batches of individuals). */
int iclv_cpu_eval(iclv_cpu_engine *e, const double *theta, iclv_eval_out *out,
                  iclv_status *st);

/* Post-estimation quantities at theta:
 *   prob      (n_rows, iclv_prob_dim: n_alt, or n_ocat for an ordered choice)
 *             column-major: choice (category) probabilities of each row
 *             integrated over the LV distribution given covariates only,
 *             (1/R) sum_r P_r(j), or NULL;
 *   lv_mean, lv_sd (n_ind, n_lv) column-major: posterior mean and sd of each
 *             LV given all data of the individual (weights w_nr), or NULL;
 *   comp_ll   (n_indic + 1): per-component simulated LL, sum_n log((1/R) sum_r
 *             P_component,nr), the indicators first, then the choice model
 *             (0 when there is none), or NULL. */
int iclv_cpu_predict(iclv_cpu_engine *e, const double *theta, double *prob,
                     double *lv_mean, double *lv_sd, double *comp_ll,
                     iclv_status *st);

/* Sets (poll != NULL) or clears (NULL) the interrupt poll of e; see
 * iclv_poll_fn. `ctx` must stay valid while the poll is set. */
void iclv_cpu_engine_set_poll(iclv_cpu_engine *e, iclv_poll_fn poll, void *ctx);

const iclv_mem_account *iclv_cpu_engine_memory(const iclv_cpu_engine *e);
void iclv_cpu_engine_free(iclv_cpu_engine *e); /* NULL-safe, idempotent use by caller */

/* Which path the engine's evaluations took (for tests): out[0] = 1 when
 * the engine runs the per-pair reference (ICLV_CPU_REFERENCE=1 at
 * creation), else 0; out[1 + i] = the fast kernels' path counter i
 * (engine_fast.h ICLV_FAST_CNT_*, i < ICLV_FAST_NCNT) summed over the
 * threads, cumulative since creation (0 on the reference path). */
void iclv_cpu_engine_paths(const iclv_cpu_engine *e, double *out);

#endif /* ICLV_ENGINE_H */
