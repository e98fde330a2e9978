/*
 * engine.c -- the CPU reference engine: simulated log-likelihood, analytic
 * gradient, per-individual scores, exact Hessian and post-estimation
 * predictions, with OpenMP over individuals.
 *
 * For individual n with draws r = 1..R (iclv_core.h gives l_nr and its
 * derivatives):
 *   log L_n = logsumexp_r(l_nr) - log R
 *   w_nr    = exp(l_nr - logsumexp_r l_nr)            (never exp(l)/sum exp(l))
 *   s_n     = d log L_n / d theta = sum_r w_nr g_nr
 *   H_n     = sum_r w_nr (hess l_nr + g_nr g_nr') - s_n s_n'
 *           = sum_r w_nr hess l_nr + sum_r w_nr (g_nr - s_n)(g_nr - s_n)'
 *   LL = sum_n log L_n, gradient = sum_n s_n, Hessian = sum_n H_n;
 *   with individual weights (m->weight, iclv_model.h) each term is
 *   multiplied by w_n when the sums are taken, and the per-individual
 *   outputs (loglik_i, scores) are the weighted terms w_n log L_n, w_n s_n.
 *
 * Determinism: every per-individual quantity is computed by one thread into
 * a per-individual slot, and the sums over individuals are taken serially in
 * index order, so LL, gradient, scores and Hessian are bit-identical for any
 * number of threads. The Hessian uses blocks of B individuals (B P x P slots
 * computed in parallel, then added in order) so that memory stays B P^2.
 *
 * Each individual goes through the fast kernels of engine_fast.c (draw-
 * invariant work hoisted, one pass over the draws for LL and score, the
 * choice Hessian from weighted per-task sums); individual_eval_ref keeps the
 * readable per-pair path of iclv_core.h (which the CUDA engine mirrors): the
 * tests compare the two (ICLV_CPU_REFERENCE=1 at creation selects it), and
 * the Hessian of models with LV-on-LV terms whose choice rows go through
 * the atoms (nests, ordered choice, tapes, row multipliers) uses its pairs.
 *
 * Memory: make_layout() sizes every workspace (iclv_cpu_plan reports it);
 * iclv_cpu_engine_create allocates exactly those buffers once and records
 * them in the engine's iclv_mem_account; iclv_cpu_eval and iclv_cpu_predict
 * allocate nothing. No R API is used here (threads never call R).
 *
 * Interrupts: individuals are processed in batches (one OpenMP parallel
 * region each: `batch` individuals, or the Hessian's B); between two batches
 * the main thread calls the engine's poll (engine.h), which may stop the
 * evaluation with ICLV_INTERRUPTED. Batching changes no result.
 */
#include <stdlib.h>
#include <string.h>
#include <stdio.h>
#include <math.h>
#ifdef _OPENMP
#include <omp.h>
#include <pthread.h>
#endif

#include "iclv_model.h"
#include "engine.h"
#include "numerics.h"
#include "iclv_core.h"
#include "draws.h"
#include "model_checks.h"
#include "engine_fast.h"

/* generated draws up to this many bytes are made once, at creation */
#define ICLV_DRAW_CACHE_BYTES (64.0 * 1048576.0)

/* per-individual status codes (bad[]) */
enum { IND_OK = 0, IND_LL_NONFINITE = 1, IND_GRAD_NONFINITE = 2, IND_HESS_NONFINITE = 3 };

/* Workspace of one thread (all pointers into engine-wide blocks). */
typedef struct {
  double *E;    /* (R, K) draws of the current individual, row-major */
  double *l;    /* (R) l_nr; in predict the weights' source */
  double *w;    /* (R) weights w_nr */
  double *G;    /* (R, P + K) row-major extended per-draw gradients */
  double *gtmp; /* (P + K + P) gradient of one draw (reference Hessian pass); hessian_outer's
                   column sums (P) and column indices */
  double *Hpe;  /* (P, K) column-major */
  double *Hee;  /* (K, K) */
  double *lc;   /* (R, M + 1) per-draw component log-likelihoods (predict) */
  double *ETA;  /* (R, K) LVs of every draw (predict) */
  double *pr;   /* (J) probabilities of one row (predict) */
  iclv_pair_ws pws; /* eta (K), D (K, S), D2 (K, S, S) or NULL, V/gV (J), HV (J, J) */
} thread_ws;

struct iclv_cpu_engine {
  const iclv_model *m;
  const iclv_draws *d;
  int n_threads;  /* OpenMP team size (1 without OpenMP) */
  int N, P, K, R, S, J, M, ext; /* ext = P + K */
  int hess_block; /* B individuals per Hessian block */
  int batch;      /* individuals per parallel region between two polls (LL, gradient, predict) */
  iclv_poll_fn poll; /* interrupt poll, called between batches on the main thread, or NULL */
  void *poll_ctx;    /* its argument */
  int has_lv_src; /* any LV-on-LV structural term (D2 needed) */
  int reference;  /* 1: every individual through the per-pair reference (iclv_core.h) */
  iclv_fast_dims fd; /* dimensions of the fast kernels (engine_fast.h) */
  iclv_mem_account acct;
  void *blocks[ICLV_MAX_BUFFERS]; /* the allocations, freed in order */
  /* shared, per individual */
  double *S_ind;  /* (N, P) row-major scores s_n */
  double *ll_ind; /* (N) log L_n */
  int *bad;       /* (N) IND_* status */
  double *Hslot;  /* (B, P, P) per-individual Hessians of one block */
  double *comp;   /* (N, M + 1) per-individual component log-likelihoods (predict) */
  thread_ws *tw;  /* (n_threads) */
  iclv_fast_ws *fast_ws; /* (n_threads) descriptors of the fast kernels' scratch */
  double *draw_cache;    /* (N, R, K) row-major e[n, r, k] of a generated design, or NULL */
};

/* ---- memory ---------------------------------------------------------- */

static int fail(iclv_status *st, int code, const char *msg) {
  st->code = code;
  snprintf(st->msg, ICLV_MSG_LEN, "%s", msg);
  return code;
}

/* Doubles per thread, rounded up to a cache line (8 doubles) so threads do
 * not share lines. */
static size_t pad8(size_t n) { return (n + 7) / 8 * 8; }

void iclv_cpu_engine_set_poll(iclv_cpu_engine *e, iclv_poll_fn poll, void *ctx) {
  e->poll = poll;
  e->poll_ctx = poll ? ctx : NULL;
}

/* Main thread only, between parallel regions: ICLV_INTERRUPTED (with a
 * message saying how far the evaluation got) when the poll asks to stop. */
static int poll_stop(const struct iclv_cpu_engine *e, int done, iclv_status *st) {
  if (e->poll == NULL || e->poll(e->poll_ctx) == 0) return ICLV_OK;
  st->code = ICLV_INTERRUPTED;
  snprintf(st->msg, ICLV_MSG_LEN, "interrupted by the user after %d of %d individuals", done, e->N);
  return st->code;
}

const iclv_mem_account *iclv_cpu_engine_memory(const iclv_cpu_engine *e) {
  return &e->acct;
}

void iclv_cpu_engine_paths(const iclv_cpu_engine *e, double *out) {
  out[0] = e->reference ? 1.0 : 0.0;
  for (int i = 0; i < ICLV_FAST_NCNT; i++) {
    double c = 0.0;
    for (int t = 0; t < e->n_threads; t++) c += e->fast_ws[t].cnt[i];
    out[1 + i] = c;
  }
}

void iclv_cpu_engine_free(iclv_cpu_engine *e) {
  if (e == NULL) return;
  for (int i = 0; i < e->acct.n; i++) free(e->blocks[i]);
  free(e);
}

/* ---- the plan: every buffer, sized before anything is allocated ---------- */

/* The CPU engine's buffers in allocation order: the index of each in the
 * account. CPU_BUF_DRAW_CACHE is recorded only when the draws are cached. */
enum {
  CPU_BUF_SCORES, CPU_BUF_LL, CPU_BUF_STATUS, CPU_BUF_HSLOT, CPU_BUF_COMP, CPU_BUF_TW,
  CPU_BUF_E, CPU_BUF_L, CPU_BUF_G, CPU_BUF_GTMP, CPU_BUF_HLV, CPU_BUF_LC, CPU_BUF_D, CPU_BUF_V,
  CPU_BUF_FAST, CPU_BUF_FAST_DESC, CPU_BUF_DRAW_CACHE, CPU_BUF_COUNT
};

/* Everything iclv_cpu_engine_create sizes, computed by make_layout() alone:
 * the planner (iclv_cpu_plan) reports it and create allocates it. */
typedef struct {
  int T;          /* threads */
  int B;          /* individuals per Hessian block */
  int batch;      /* individuals per parallel region between two polls */
  int has_lv_src; /* any LV-on-LV structural term (D2 needed) */
  /* doubles per thread of each piece of the thread workspace, padded */
  size_t zE, zl, zG, zg, zpe, zee, zlc, zeta, zD, zD2, zJ, zHV, zF;
  iclv_fast_dims fd;     /* the fast kernels' dimensions (engine_fast.h) */
  iclv_mem_account acct; /* the buffers, index CPU_BUF_*; current = peak = their sum */
} cpu_layout;

static void plan_record(iclv_mem_account *a, const char *name, double bytes) {
  int i = a->n++;
  snprintf(a->name[i], ICLV_BUFNAME_LEN, "%s", name);
  a->bytes[i] = bytes;
  a->current += bytes;
  a->peak = a->current;
}

/* The team size of an engine asked for n_threads (<= 0: the OpenMP
 * default, omp_get_max_threads(), which respects OMP_NUM_THREADS), capped at
 * OMP_THREAD_LIMIT; 1 without OpenMP. */
static int resolve_threads(int n_threads) {
#ifdef _OPENMP
  int T = n_threads > 0 ? n_threads : omp_get_max_threads();
  if (T > omp_get_thread_limit()) T = omp_get_thread_limit();
  return T < 1 ? 1 : T;
#else
  (void) n_threads;
  return 1;
#endif
}

int iclv_cpu_default_threads(void) { return resolve_threads(0); }

/* Fills *L for model m, design d and T threads (T >= 1). Pure arithmetic. */
static void make_layout(const iclv_model *m, const iclv_draws *d, int T, cpu_layout *L) {
  memset(L, 0, sizeof(*L));
  L->T = T;
  int N = m->n_ind, P = m->n_par, K = m->n_lv, Rn = d->n_draws, S = m->st_ptr[m->n_lv];
  for (int t = 0; t < S; t++)
    if (m->st_src_type[t] == ICLV_SRC_LV) L->has_lv_src = 1;
  iclv_fast_dims_init(m, Rn, &L->fd);
  {
    /* B: up to 32 slots per thread within 8 MiB of slots (fewer parallel
     * regions: a fast individual's Hessian is cheap), at least the former
     * 4 per thread within 64 MiB, never fewer than one per thread, never
     * more than N. B does not change results. */
    double slot = 8.0 * (double) P * (double) P;
    double want = slot > 0 ? floor(8.0 * 1048576.0 / slot) : 32.0 * T;
    double cap = slot > 0 ? floor(64.0 * 1048576.0 / slot) : 4.0 * T;
    if (want > 32.0 * T) want = 32.0 * T;
    if (cap > 4.0 * T) cap = 4.0 * T;
    double Bd = want > cap ? want : cap;
    if (Bd < T) Bd = T;
    if (Bd > N) Bd = N;
    L->B = (int) Bd;
    /* batch: about 2e6 (individual, draw, observation) terms per thread
     * between two polls (a few tens of ms), at least one individual per
     * thread; 16 per thread at most, so a parallel region still balances */
    double per_ind = (double) Rn * (1.0 + (double) (m->n_obs + m->n_rows) / (double) N);
    double per_thread = 2e6 / (per_ind > 1.0 ? per_ind : 1.0);
    int b = per_thread >= 16.0 ? 16 : (per_thread < 1.0 ? 1 : (int) per_thread);
    long bt = (long) b * T;
    L->batch = bt < N ? (int) bt : N;
  }
  size_t n = (size_t) N, p = (size_t) P, k = (size_t) K, r = (size_t) Rn, s = (size_t) S;
  /* choice scratch: V, gV and the prediction's probabilities (the
   * utilities and a nested logit's per-nest scratch: iclv_vscratch_dim >=
   * iclv_link_dim >= n_alt), HV (the link's derivatives, iclv_core.h) */
  size_t J = (size_t) iclv_vscratch_dim(m), JL = (size_t) iclv_link_dim(m);
  size_t M = (size_t) m->n_indic, ext = p + k;
  size_t B = (size_t) L->B, t = (size_t) T;
  L->zE = pad8(r * k); L->zl = pad8(r); L->zG = pad8(r * ext); L->zg = pad8(ext + p);
  L->zpe = pad8(p * k); L->zee = pad8(k * k); L->zlc = pad8(r * (M + 1)); L->zeta = pad8(k);
  L->zD = pad8(k * s); L->zD2 = L->has_lv_src ? pad8(k * s * s) : 0; L->zJ = pad8(J);
  L->zHV = pad8(JL * JL);
  L->zF = iclv_fast_ws_doubles(&L->fd);
  const double dbl = (double) sizeof(double);
  iclv_mem_account *a = &L->acct;
  plan_record(a, "scores_by_individual", dbl * n * p);
  plan_record(a, "loglik_by_individual", dbl * n);
  plan_record(a, "status_by_individual", (double) sizeof(int) * n);
  plan_record(a, "hessian_block_slots", dbl * B * p * p);
  plan_record(a, "component_loglik_by_individual", dbl * n * (M + 1));
  plan_record(a, "thread_descriptors", (double) sizeof(thread_ws) * t);
  plan_record(a, "thread_draws", dbl * t * L->zE);
  plan_record(a, "thread_draw_loglik", dbl * t * 2 * L->zl);
  plan_record(a, "thread_draw_gradients", dbl * t * L->zG);
  plan_record(a, "thread_gradient_scratch", dbl * t * L->zg);
  plan_record(a, "thread_hessian_lv_blocks", dbl * t * (L->zpe + L->zee));
  plan_record(a, "thread_component_loglik", dbl * t * (L->zlc + L->zE));
  plan_record(a, "thread_lv_jacobian", dbl * t * (L->zeta + L->zD + L->zD2));
  plan_record(a, "thread_choice_scratch", dbl * t * (3 * L->zJ + L->zHV));
  plan_record(a, "thread_fast_scratch", dbl * t * L->zF);
  plan_record(a, "thread_fast_descriptors", (double) sizeof(iclv_fast_ws) * t);
  /* Generated draws (not a user array, which is stored already) are made
   * once at creation when they take at most ICLV_DRAW_CACHE_BYTES;
   * evaluations then copy them instead of recomputing the inverse normal.
   * The same function makes them either way, so the values are the same
   * bits. */
  if (d->type != ICLV_DRAWS_USER && dbl * (double) n * (double) r * (double) k <= ICLV_DRAW_CACHE_BYTES &&
      n * r * k > 0)
    plan_record(a, "draw_cache", dbl * n * r * k);
}

int iclv_cpu_plan(const iclv_model *m, const iclv_draws *d, int n_threads, iclv_cpu_plan_info *out,
                  iclv_status *st) {
  cpu_layout L;
  st->code = ICLV_OK;
  st->msg[0] = '\0';
  memset(out, 0, sizeof(*out));
  if (d->n_ind != m->n_ind || d->n_dim != m->n_lv)
    return fail(st, ICLV_ERR_INPUT, "the draw design does not match the model (individuals or LVs)");
  if (n_threads > ICLV_MAX_THREADS)
    return fail(st, ICLV_ERR_INPUT, "n_threads is larger than iclv allows (1024)");
  make_layout(m, d, resolve_threads(n_threads), &L);
  out->n_threads = L.T;
  out->hess_block = L.B;
  out->acct = L.acct;
  return ICLV_OK;
}

/* ---- creation and checks ------------------------------------------------ */

#ifdef _OPENMP
static void *probe_wait(void *mu) {
  pthread_mutex_lock((pthread_mutex_t *) mu);
  pthread_mutex_unlock((pthread_mutex_t *) mu);
  return NULL;
}

/* How many of n threads (default attributes, as libgomp starts its own
 * unless OMP_STACKSIZE is set) the system starts now, all alive at once.
 * They wait on a lock held here, then are joined: nothing is left behind.
 * libgomp ends the process when it cannot start a team's thread, so the
 * engine asks first. */
static int probe_threads(int n) {
  if (n <= 0) return 0;
  pthread_t *ids = (pthread_t *) malloc(sizeof(pthread_t) * (size_t) n);
  if (ids == NULL) return 0;
  pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
  pthread_mutex_lock(&mu);
  int k = 0;
  while (k < n && pthread_create(&ids[k], NULL, probe_wait, &mu) == 0) k++;
  pthread_mutex_unlock(&mu);
  for (int i = 0; i < k; i++) pthread_join(ids[i], NULL);
  free(ids);
  pthread_mutex_destroy(&mu);
  return k;
}
#endif

/* ICLV_OK when T threads (asked as n_threads) may run here, else
 * ICLV_ERR_THREADS with a message: more than ICLV_THREADS_PER_PROC per
 * processor, or more than the system starts now (probed). */
static int check_threads(int T, int n_threads, iclv_status *st) {
#ifdef _OPENMP
  int procs = omp_get_num_procs(), cap = ICLV_THREADS_PER_PROC * (procs > 0 ? procs : 1);
  int started;
  if (T > cap) {
    st->code = ICLV_ERR_THREADS;
    snprintf(st->msg, ICLV_MSG_LEN,
             "'n_threads' = %d%s is more than iclv allows on this machine: at most %d "
             "(%d x the %d processors OpenMP sees)", T,
             n_threads > 0 ? "" : " (the OpenMP default, from OMP_NUM_THREADS)", cap,
             ICLV_THREADS_PER_PROC, procs);
    return st->code;
  }
  if (T > 1 && (started = probe_threads(T - 1)) < T - 1) {
    st->code = ICLV_ERR_THREADS;
    snprintf(st->msg, ICLV_MSG_LEN,
             "'n_threads' = %d: the system started only %d threads (an address-space or process "
             "limit, e.g. ulimit -v or -u); use at most %d", T, started + 1, started + 1);
    return st->code;
  }
#else
  (void) T;
  (void) n_threads;
#endif
  return ICLV_OK;
}

int iclv_cpu_engine_create(const iclv_model *m, const iclv_draws *d, int n_threads,
                           int check_thread_limits, iclv_cpu_engine **out, iclv_status *st) {
  cpu_layout L;
  *out = NULL;
  st->code = ICLV_OK;
  st->msg[0] = '\0';
  if (d->n_ind != m->n_ind || d->n_dim != m->n_lv)
    return fail(st, ICLV_ERR_INPUT, "the draw design does not match the model (individuals or LVs)");
  if (n_threads > ICLV_MAX_THREADS)
    return fail(st, ICLV_ERR_INPUT, "n_threads is larger than iclv allows (1024)");
  if (iclv_draws_check(d, st) != ICLV_OK) return st->code;
  if (iclv_check_data(m, st) != ICLV_OK) return st->code;
  int T = resolve_threads(n_threads);
  if (check_thread_limits && check_threads(T, n_threads, st) != ICLV_OK) return st->code;
  make_layout(m, d, T, &L);

  struct iclv_cpu_engine *e = (struct iclv_cpu_engine *) calloc(1, sizeof(*e));
  if (e == NULL) return fail(st, ICLV_ERR_MEMORY, "could not allocate the CPU engine");
  e->m = m;
  e->d = d;
  e->n_threads = T;
  e->N = m->n_ind;
  e->P = m->n_par;
  e->K = m->n_lv;
  e->R = d->n_draws;
  e->S = m->st_ptr[m->n_lv];
  e->J = m->n_alt > 0 ? m->n_alt : 1;
  e->M = m->n_indic;
  e->ext = e->P + e->K;
  e->has_lv_src = L.has_lv_src;
  e->hess_block = L.B;
  e->batch = L.batch;
  e->fd = L.fd;
  {
    /* ICLV_CPU_REFERENCE=1 in the environment when the engine is created
     * selects the per-pair reference path (the tests compare the two) */
    const char *ref = getenv("ICLV_CPU_REFERENCE");
    e->reference = ref != NULL && strcmp(ref, "1") == 0;
  }
  /* exactly the planned buffers, zeroed, recorded as they are made */
  for (int i = 0; i < L.acct.n; i++) {
    size_t bytes = (size_t) L.acct.bytes[i];
    void *p = calloc(bytes > 0 ? bytes : 1, 1);
    if (p == NULL) {
      iclv_cpu_engine_free(e);
      return fail(st, ICLV_ERR_MEMORY, "could not allocate the CPU engine's workspaces");
    }
    e->blocks[i] = p;
    e->acct.n = i + 1;
    snprintf(e->acct.name[i], ICLV_BUFNAME_LEN, "%s", L.acct.name[i]);
    e->acct.bytes[i] = L.acct.bytes[i];
    e->acct.current += L.acct.bytes[i];
    e->acct.peak = e->acct.current;
  }
  e->S_ind = (double *) e->blocks[CPU_BUF_SCORES];
  e->ll_ind = (double *) e->blocks[CPU_BUF_LL];
  e->bad = (int *) e->blocks[CPU_BUF_STATUS];
  e->Hslot = (double *) e->blocks[CPU_BUF_HSLOT];
  e->comp = (double *) e->blocks[CPU_BUF_COMP];
  e->tw = (thread_ws *) e->blocks[CPU_BUF_TW];
  e->fast_ws = (iclv_fast_ws *) e->blocks[CPU_BUF_FAST_DESC];
  double *bE = (double *) e->blocks[CPU_BUF_E], *bl = (double *) e->blocks[CPU_BUF_L];
  double *bG = (double *) e->blocks[CPU_BUF_G], *bg = (double *) e->blocks[CPU_BUF_GTMP];
  double *bH = (double *) e->blocks[CPU_BUF_HLV], *bc = (double *) e->blocks[CPU_BUF_LC];
  double *bD = (double *) e->blocks[CPU_BUF_D], *bV = (double *) e->blocks[CPU_BUF_V];
  double *bF = (double *) e->blocks[CPU_BUF_FAST];
  if (L.acct.n > CPU_BUF_DRAW_CACHE) {
    size_t R = (size_t) e->R, K = (size_t) e->K;
    e->draw_cache = (double *) e->blocks[CPU_BUF_DRAW_CACHE];
    for (int n = 0; n < e->N; n++)
      for (int r = 0; r < e->R; r++)
        for (int k = 0; k < e->K; k++)
          e->draw_cache[((size_t) n * R + r) * K + k] = iclv_draw_normal(d, n, r, k);
  }
  for (int i = 0; i < T; i++) {
    thread_ws *w = &e->tw[i];
    w->E = bE + i * L.zE;
    w->l = bl + i * 2 * L.zl;
    w->w = w->l + L.zl;
    w->G = bG + i * L.zG;
    w->gtmp = bg + i * L.zg;
    w->Hpe = bH + i * (L.zpe + L.zee);
    w->Hee = w->Hpe + L.zpe;
    w->lc = bc + i * (L.zlc + L.zE);
    w->ETA = w->lc + L.zlc;
    double *dd = bD + i * (L.zeta + L.zD + L.zD2);
    w->pws.eta = dd;
    w->pws.D = dd + L.zeta;
    w->pws.D2 = L.has_lv_src ? dd + L.zeta + L.zD : NULL;
    double *vv = bV + i * (3 * L.zJ + L.zHV);
    w->pws.V = vv;
    w->pws.gV = vv + L.zJ;
    w->pr = vv + 2 * L.zJ;
    w->pws.HV = vv + 3 * L.zJ;
    iclv_fast_ws_bind(&e->fd, bF + i * L.zF, &e->fast_ws[i]);
  }
  *out = e;
  return ICLV_OK;
}

/* ---- one individual ------------------------------------------------------ */

/* Copies the draws of individual n into w->E (R, K). */
static void load_draws(const struct iclv_cpu_engine *e, thread_ws *w, int n) {
  if (e->draw_cache) {
    size_t RK = (size_t) e->R * e->K;
    memcpy(w->E, e->draw_cache + (size_t) n * RK, sizeof(double) * RK);
    return;
  }
  for (int r = 0; r < e->R; r++)
    for (int k = 0; k < e->K; k++) w->E[r * e->K + k] = iclv_draw_normal(e->d, n, r, k);
}

static int all_finite(const double *x, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (!isfinite(x[i])) return 0;
  return 1;
}

/* Is the lower triangle (diagonal included) of H (P, P) column-major
 * finite? (The per-individual Hessians are complete there only.) */
static int lower_finite(const double *H, int P) {
  for (int j = 0; j < P; j++)
    for (int i = j; i < P; i++)
      if (!isfinite(H[i + (size_t) P * j])) return 0;
  return 1;
}

/* Lower triangle (diagonal included) of H (P, P) column-major += A' A,
 * where A is (R, Pa) with row stride lda and its column q is column idx[q]
 * of the full (R, P) matrix (idx increasing; NULL: Pa = P and the identity;
 * the other columns are 0). Register tiles of 8 x 4 cells of H (4 x 4 at
 * the end of a column of tiles, and where Pw is not a multiple of 4), each
 * cell summed over r in order: the result does not depend on the tiling
 * or on threads. Eight independent accumulators of 4 doubles keep the
 * adds' latency hidden (a 4 x 4 tile has four: half the speed). Columns
 * Pa .. Pw - 1 of A are zeros (padding to whole tiles; Pw >= Pa) and are
 * not written. */
static inline void syrk_store(int i, int j, int ni, int nj, double c[][8], int Pa,
                              double *H, int P, const int *idx) {
  for (int jj = 0; jj < nj && j + jj < Pa; jj++)
    for (int ii = 0; ii < ni && i + ii < Pa; ii++)
      if (i + ii >= j + jj)
        H[(idx ? idx[i + ii] : i + ii) + (size_t) P * (idx ? idx[j + jj] : j + jj)] += c[jj][ii];
}

ICLV_CLONES static void syrk_lower(int Pa, int Pw, int R, const double *A, size_t lda, double *H,
                                   int P, const int *idx) {
  for (int j = 0; j < Pw; j += 4) {
    int nj = Pw - j < 4 ? Pw - j : 4;
    int i = j;
    if (nj == 4)
      for (; i + 8 <= Pw; i += 8) {
        double c[4][8];
#if defined(__GNUC__)
        /* GCC's and clang's vectors of 4 doubles: eight accumulators in
         * registers (element-wise products and sums, the same operations
         * as the loop below) */
        typedef double v4d __attribute__((vector_size(32)));
        v4d c0 = {0.0, 0.0, 0.0, 0.0}, c1 = c0, c2 = c0, c3 = c0, c4 = c0, c5 = c0, c6 = c0,
            c7 = c0;
        for (int r = 0; r < R; r++) {
          const double *a = A + (size_t) r * lda;
          v4d xl, xh;
          memcpy(&xl, a + i, sizeof xl);
          memcpy(&xh, a + i + 4, sizeof xh);
          const v4d y0 = {a[j], a[j], a[j], a[j]}, y1 = {a[j + 1], a[j + 1], a[j + 1], a[j + 1]},
                    y2 = {a[j + 2], a[j + 2], a[j + 2], a[j + 2]},
                    y3 = {a[j + 3], a[j + 3], a[j + 3], a[j + 3]};
          c0 += xl * y0;
          c1 += xh * y0;
          c2 += xl * y1;
          c3 += xh * y1;
          c4 += xl * y2;
          c5 += xh * y2;
          c6 += xl * y3;
          c7 += xh * y3;
        }
        memcpy(c[0], &c0, sizeof c0);
        memcpy(c[0] + 4, &c1, sizeof c1);
        memcpy(c[1], &c2, sizeof c2);
        memcpy(c[1] + 4, &c3, sizeof c3);
        memcpy(c[2], &c4, sizeof c4);
        memcpy(c[2] + 4, &c5, sizeof c5);
        memcpy(c[3], &c6, sizeof c6);
        memcpy(c[3] + 4, &c7, sizeof c7);
#else
        for (int jj = 0; jj < 4; jj++)
          for (int ii = 0; ii < 8; ii++) c[jj][ii] = 0.0;
        for (int r = 0; r < R; r++) {
          const double *a = A + (size_t) r * lda;
          for (int jj = 0; jj < 4; jj++) {
            const double y = a[j + jj];
            for (int ii = 0; ii < 8; ii++) c[jj][ii] += a[i + ii] * y;
          }
        }
#endif
        syrk_store(i, j, 8, 4, c, Pa, H, P, idx);
      }
    for (; i < Pw; i += 4) {
      int ni = Pw - i < 4 ? Pw - i : 4;
      double c[4][8];
      for (int jj = 0; jj < 4; jj++)
        for (int ii = 0; ii < 8; ii++) c[jj][ii] = 0.0;
      if (ni == 4 && nj == 4) {
#if defined(__GNUC__)
        typedef double v4d __attribute__((vector_size(32)));
        v4d c0 = {0.0, 0.0, 0.0, 0.0}, c1 = c0, c2 = c0, c3 = c0;
        for (int r = 0; r < R; r++) {
          const double *a = A + (size_t) r * lda;
          v4d x;
          memcpy(&x, a + i, sizeof x);
          const v4d y0 = {a[j], a[j], a[j], a[j]}, y1 = {a[j + 1], a[j + 1], a[j + 1], a[j + 1]},
                    y2 = {a[j + 2], a[j + 2], a[j + 2], a[j + 2]},
                    y3 = {a[j + 3], a[j + 3], a[j + 3], a[j + 3]};
          c0 += x * y0;
          c1 += x * y1;
          c2 += x * y2;
          c3 += x * y3;
        }
        memcpy(c[0], &c0, sizeof c0);
        memcpy(c[1], &c1, sizeof c1);
        memcpy(c[2], &c2, sizeof c2);
        memcpy(c[3], &c3, sizeof c3);
#else
        for (int r = 0; r < R; r++) {
          const double *a = A + (size_t) r * lda;
          for (int jj = 0; jj < 4; jj++) {
            const double y = a[j + jj];
            for (int ii = 0; ii < 4; ii++) c[jj][ii] += a[i + ii] * y;
          }
        }
#endif
      } else {
        for (int r = 0; r < R; r++) {
          const double *a = A + (size_t) r * lda;
          for (int jj = 0; jj < nj; jj++)
            for (int ii = 0; ii < ni; ii++) c[jj][ii] += a[i + ii] * a[j + jj];
        }
      }
      syrk_store(i, j, ni, nj, c, Pa, H, P, idx);
    }
  }
}

/* Rows r of G (R, P, stride ext) become a_r = sqrt(w_r) (g_r - s) (0 where
 * w_r == 0), and nzs (P) = sum_r |a_rp|: element by element, the same
 * values whichever clone runs. */
ICLV_CLONES static void center_rows(int R, int P, double *G, size_t ext, const double *w,
                                    const double *restrict s, double *restrict nzs) {
  for (int p = 0; p < P; p++) nzs[p] = 0.0;
  for (int r = 0; r < R; r++) {
    double *restrict a = G + (size_t) r * ext;
    double sw = sqrt(w[r]);
    if (sw > 0.0) {
#ifdef _OPENMP
#pragma omp simd
#endif
      for (int p = 0; p < P; p++) {
        a[p] = sw * (a[p] - s[p]);
        nzs[p] += fabs(a[p]);
      }
    } else {
      for (int p = 0; p < P; p++) a[p] = 0.0;
    }
  }
}

/* H_n (P, P) += sum_r w_r (g_r - s)(g_r - s)' in its lower triangle, from
 * the rows g_r of w->G (stride ext) and the weights w->w; s = s_n. The rows
 * are overwritten. */
static void hessian_outer(const struct iclv_cpu_engine *e, thread_ws *w, const double *s,
                          double *Hn) {
  int R = e->R, P = e->P, ext = e->ext;
  /* rows of G become a_r = sqrt(w_r) (g_r - s) (G is not needed any more);
   * nzs (P, in w->gtmp) sums |a_rp| over the draws: 0 only for a column
   * that is 0 in every row (NaN and Inf count as non-zero) */
  double *restrict nzs = w->gtmp;
  center_rows(R, P, w->G, (size_t) ext, w->w, s, nzs);
  /* only the columns that are non-zero for some draw (a parameter that no
   * term of the individual touches, e.g. the thresholds of categories it
   * never chose, has a zero column here; as does one whose every a_rp is
   * 0, which adds nothing): packed to the left of each row (from the first
   * column that moves), their indices in idx (after nzs in w->gtmp, P + ext
   * doubles) */
  int *idx = (int *) (w->gtmp + P), Pa = 0;
  for (int p = 0; p < P; p++)
    if (nzs[p] != 0.0) idx[Pa++] = p;
  int q0 = 0;
  while (q0 < Pa && idx[q0] == q0) q0++;
  if (q0 < Pa)
    for (int r = 0; r < R; r++) {
      double *a = w->G + (size_t) r * ext;
      for (int q = q0; q < Pa; q++) a[q] = a[idx[q]];
    }
  /* zero columns up to a multiple of 4 where the rows have room (ext = P
   * + K), so that every tile is whole */
  int Pw = Pa;
  if (Pa % 4 != 0 && Pa - Pa % 4 + 4 <= ext) {
    Pw = Pa - Pa % 4 + 4;
    for (int r = 0; r < R; r++) {
      double *a = w->G + (size_t) r * ext;
      for (int q = Pa; q < Pw; q++) a[q] = 0.0;
    }
  }
  syrk_lower(Pa, Pw, R, w->G, (size_t) ext, Hn, P, Pa < P ? idx : (const int *) 0);
}

/* Everything of individual n through the per-pair reference (iclv_core.h):
 * ll_ind[n]; with want_g the score s_n into S_ind (n, .); with Hn != NULL
 * (requires want_g) H_n (P, P) column-major. Only the lower triangle of
 * H_n is complete. Sets bad[n]. Runs inside a thread: touches only n's
 * slots and w. Expects n's draws in w->E. */
static void individual_eval_ref(const struct iclv_cpu_engine *e, thread_ws *w,
                                const double *theta, int n, int want_g, double *Hn) {
  const iclv_model *m = e->m;
  int R = e->R, P = e->P, K = e->K, ext = e->ext;
  for (int r = 0; r < R; r++)
    w->l[r] = iclv_pair_eval(m, theta, n, w->E + r * K, &w->pws,
                             want_g ? w->G + (size_t) r * ext : NULL, NULL);
  double lse = iclv_logsumexp(w->l, R, 1);
  double lln = lse - log((double) R);
  e->ll_ind[n] = lln;
  if (!isfinite(lln)) { e->bad[n] = IND_LL_NONFINITE; return; }
  e->bad[n] = IND_OK;
  if (!want_g) return;

  double *s = e->S_ind + (size_t) n * P;
  for (int p = 0; p < P; p++) s[p] = 0.0;
  for (int r = 0; r < R; r++) {
    double wr = exp(w->l[r] - lse);
    w->w[r] = wr;
    if (wr == 0.0) continue;
    const double *g = w->G + (size_t) r * ext;
    for (int p = 0; p < P; p++) s[p] += wr * g[p];
  }
  if (!all_finite(s, (size_t) P)) { e->bad[n] = IND_GRAD_NONFINITE; return; }
  if (Hn == NULL) return;

  /* H_n = sum_r w_r hess l_nr  +  sum_r w_r (g_r - s)(g_r - s)' */
  for (size_t i = 0; i < (size_t) P * P; i++) Hn[i] = 0.0;
  iclv_hess h;
  h.P = P;
  h.K = K;
  h.Hpp = Hn;
  h.Hpe = w->Hpe;
  h.Hee = w->Hee;
  h.C = (double *) 0;
  h.Cp = (int *) 0;
  h.nCp = 0;
  for (int r = 0; r < R; r++) {
    if (w->w[r] == 0.0) continue;
    h.w = w->w[r];
    iclv_pair_eval(m, theta, n, w->E + r * K, &w->pws, w->gtmp, &h);
  }
  hessian_outer(e, w, s, Hn);
  /* Only the lower triangle of Hn is complete (the upper one lacks the
   * outer products); iclv_cpu_eval mirrors the total once, and checks
   * that Hn is finite (hessian_block_sum). */
}

/* sum_r w_r hess l_nr into Hn (zeroed first) and row r of w->G = g_nr for
 * each draw with w_r > 0, through the per-pair reference (one
 * iclv_pair_eval per draw); for models whose d eta / d phi depends on the
 * draw (LV-on-LV terms) when no D2 scratch is at hand or their choice rows
 * go through the atoms (the fast Hessian folds the others draw by draw). */
static void hessian_pairs_ref(const struct iclv_cpu_engine *e, thread_ws *w, const double *theta,
                              int n, double *Hn) {
  int R = e->R, P = e->P, K = e->K;
  for (size_t i = 0; i < (size_t) P * P; i++) Hn[i] = 0.0;
  iclv_hess h;
  h.P = P;
  h.K = K;
  h.Hpp = Hn;
  h.Hpe = w->Hpe;
  h.Hee = w->Hee;
  h.C = (double *) 0;
  h.Cp = (int *) 0;
  h.nCp = 0;
  for (int r = 0; r < R; r++) {
    if (w->w[r] == 0.0) continue;
    h.w = w->w[r];
    iclv_pair_eval(e->m, theta, n, w->E + r * K, &w->pws, w->gtmp, &h);
    memcpy(w->G + (size_t) r * e->ext, w->gtmp, sizeof(double) * (size_t) P);
  }
}

/* The same as individual_eval_ref through the fast kernels (engine_fast.h):
 * one pass over the draws for the LL and the score (with Hn, also keeping
 * the links the Hessian pass reuses: the score is the same as without the
 * Hessian, bit for bit), a second for the Hessian (the per-pair reference
 * for models with row multipliers, or with LV-on-LV terms and no D2
 * scratch). */
static void individual_eval(const struct iclv_cpu_engine *e, thread_ws *w, const double *theta,
                            int n, int want_g, double *Hn) {
  int R = e->R, P = e->P;
  load_draws(e, w, n);
  if (e->reference) {
    individual_eval_ref(e, w, theta, n, want_g, Hn);
    return;
  }
  iclv_fast_ws *fw = &e->fast_ws[w - e->tw]; /* the thread's */
  double *s = e->S_ind + (size_t) n * P;
  double lln = iclv_fast_individual(e->m, &e->fd, theta, n, w->E, &w->pws, fw, w->l,
                                    want_g ? s : NULL, Hn != NULL);
  e->ll_ind[n] = lln;
  if (!isfinite(lln)) { e->bad[n] = IND_LL_NONFINITE; return; }
  e->bad[n] = IND_OK;
  if (!want_g) return;
  if (!all_finite(s, (size_t) P)) { e->bad[n] = IND_GRAD_NONFINITE; return; }
  if (Hn == NULL) return;
  double lse = lln + log((double) R);
  iclv_fast_weights(w->l, lse, R, w->w);
  /* the fast Hessian; D2: LV-on-LV terms, folded draw by draw, except
   * where the choice rows go through the atoms (nests, ordered choice,
   * tapes: iclv_fast_hessian), whose LV blocks it folds only when d eta /
   * d phi is draw-invariant */
  const int atoms = e->fd.ref_choice;
  if (e->fd.hess_ok || (!atoms && w->pws.D2 != NULL)) {
    for (size_t i = 0; i < (size_t) P * P; i++) Hn[i] = 0.0;
    iclv_fast_hessian(e->m, &e->fd, theta, n, w->E, &w->pws, fw, w->w, w->G,
                      (size_t) e->ext, w->Hpe, w->Hee, Hn);
  } else {
    hessian_pairs_ref(e, w, theta, n, Hn);
  }
  hessian_outer(e, w, s, Hn);
  /* (finite? hessian_block_sum) */
}

/* First individual (in index order) whose bad[] is set, or -1. Turns it
 * into ICLV_ERR_NUMERIC with a message. */
static int report_bad(const struct iclv_cpu_engine *e, const double *theta, int n0, int n1,
                      iclv_status *st) {
  for (int n = n0; n < n1; n++) {
    if (e->bad[n] == IND_OK) continue;
    char part[256];
    const char *what = e->bad[n] == IND_LL_NONFINITE ? "log-likelihood"
                     : e->bad[n] == IND_GRAD_NONFINITE ? "gradient" : "Hessian";
    if (e->bad[n] == IND_LL_NONFINITE)
      /* serial: thread workspace 0 is free here */
      iclv_diagnose_individual(e->m, e->d, theta, n, e->tw[0].E, &e->tw[0].pws, part, sizeof part);
    else
      snprintf(part, sizeof part, "log L = %g", e->ll_ind[n]);
    st->code = ICLV_ERR_NUMERIC;
    snprintf(st->msg, ICLV_MSG_LEN, "the simulated %s of individual %d is not finite (%s)",
             what, n + 1, part);
    return st->code;
  }
  return ICLV_OK;
}

/* ---- evaluation ---------------------------------------------------------- */

static int thread_id(void) {
#ifdef _OPENMP
  return omp_get_thread_num();
#else
  return 0;
#endif
}

/* H (P, P) += the lower triangles of the block's Hessians (individuals n0
 * .. n0 + nb - 1, in e->Hslot; the upper ones are incomplete), in index
 * order, weighted with weights. Then the Hessians' check, once per block:
 * the sum is finite unless some H_n is not (or the sum overflows); only
 * then is each H_n of an individual without another fault checked, and
 * marked IND_HESS_NONFINITE where it is not finite. (H is not read when
 * any individual is bad: the evaluation fails.) */
static void hessian_block_sum(struct iclv_cpu_engine *e, int n0, int nb, double *H) {
  const iclv_model *m = e->m;
  const int P = e->P;
  const size_t PP = (size_t) P * P;
  for (int b = 0; b < nb; b++) {
    const double *Hb = e->Hslot + (size_t) b * PP;
    const double wn = m->weight ? m->weight[n0 + b] : 1.0;
    for (int j = 0; j < P; j++) {
      double *restrict hc = H + (size_t) P * j;
      const double *restrict bc = Hb + (size_t) P * j;
      if (m->weight)
        for (int i = j; i < P; i++) hc[i] += wn * bc[i];
      else
        for (int i = j; i < P; i++) hc[i] += bc[i];
    }
  }
  if (lower_finite(H, P)) return;
  for (int b = 0; b < nb; b++)
    if (e->bad[n0 + b] == IND_OK && !lower_finite(e->Hslot + (size_t) b * PP, P))
      e->bad[n0 + b] = IND_HESS_NONFINITE;
}

int iclv_cpu_eval(iclv_cpu_engine *e, const double *theta, iclv_eval_out *out,
                  iclv_status *st) {
  const iclv_model *m = e->m;
  int N = e->N, P = e->P;
  st->code = ICLV_OK;
  st->msg[0] = '\0';
  if (iclv_check_theta(m, theta, st) != ICLV_OK) return st->code;
  int want_h = out->hess != NULL;
  int want_g = want_h || out->grad != NULL || out->scores != NULL;

  if (!want_h) {
    for (int n0 = 0; n0 < N; n0 += e->batch) {
      int n1 = N - n0 < e->batch ? N : n0 + e->batch;
      if (n0 > 0 && poll_stop(e, n0, st) != ICLV_OK) return st->code;
#ifdef _OPENMP
#pragma omp parallel for schedule(dynamic) num_threads(e->n_threads)
#endif
      for (int n = n0; n < n1; n++)
        individual_eval(e, &e->tw[thread_id()], theta, n, want_g, NULL);
    }
    if (report_bad(e, theta, 0, N, st) != ICLV_OK) return st->code;
  } else {
    double *H = out->hess;
    size_t PP = (size_t) P * P;
    for (size_t i = 0; i < PP; i++) H[i] = 0.0;
    int B = e->hess_block;
    for (int n0 = 0; n0 < N; n0 += B) {
      int nb = N - n0 < B ? N - n0 : B;
      if (n0 > 0 && poll_stop(e, n0, st) != ICLV_OK) return st->code;
#ifdef _OPENMP
#pragma omp parallel for schedule(dynamic) num_threads(e->n_threads)
#endif
      for (int b = 0; b < nb; b++)
        individual_eval(e, &e->tw[thread_id()], theta, n0 + b, 1, e->Hslot + (size_t) b * PP);
      hessian_block_sum(e, n0, nb, H);
      if (report_bad(e, theta, n0, n0 + nb, st) != ICLV_OK) return st->code;
    }
    /* the lower triangle is the sum; mirror it (exactly symmetric result) */
    for (int j = 0; j < P; j++)
      for (int i = j + 1; i < P; i++) H[j + (size_t) P * i] = H[i + (size_t) P * j];
  }

  /* serial sums in index order; with weights (iclv_model.h) every output is
   * the weighted contribution w_n log L_n, w_n s_n, w_n H_n; without, the
   * very same unweighted loops (no multiplication by 1) */
  const double *wt = m->weight;
  double ll = 0.0;
  if (wt) for (int n = 0; n < N; n++) ll += wt[n] * e->ll_ind[n];
  else for (int n = 0; n < N; n++) ll += e->ll_ind[n];
  *out->loglik = ll;
  if (out->loglik_i) {
    if (wt) for (int n = 0; n < N; n++) out->loglik_i[n] = wt[n] * e->ll_ind[n];
    else memcpy(out->loglik_i, e->ll_ind, sizeof(double) * (size_t) N);
  }
  if (out->grad) {
    for (int p = 0; p < P; p++) out->grad[p] = 0.0;
    for (int n = 0; n < N; n++) {
      const double *s = e->S_ind + (size_t) n * P;
      if (wt) for (int p = 0; p < P; p++) out->grad[p] += wt[n] * s[p];
      else for (int p = 0; p < P; p++) out->grad[p] += s[p];
    }
  }
  if (out->scores)
    for (int n = 0; n < N; n++) {
      const double *s = e->S_ind + (size_t) n * P;
      if (wt) for (int p = 0; p < P; p++) out->scores[n + (size_t) N * p] = wt[n] * s[p];
      else for (int p = 0; p < P; p++) out->scores[n + (size_t) N * p] = s[p];
    }
  return ICLV_OK;
}

/* ---- prediction ---------------------------------------------------------- */

/* Predictions of individual n (see engine.h): rows of `prob` (column-major
 * (n_rows, iclv_prob_dim): the alternatives, or an ordered choice's
 * categories) for n's rows, lv_mean/lv_sd (column-major (N, K)) row n,
 * comp (n, .) of the engine. Sets bad[n]. */
static void individual_predict(const struct iclv_cpu_engine *e, thread_ws *w, const double *theta,
                               int n, double *prob, double *lv_mean, double *lv_sd) {
  const iclv_model *m = e->m;
  int R = e->R, K = e->K, M = e->M, J = m->n_alt, N = e->N, JP = iclv_prob_dim(m);
  int C1 = M + 1;
  int has_choice = m->choice_type != ICLV_CHOICE_NONE;
  load_draws(e, w, n);
  if (prob && has_choice)
    for (int t = m->row_ptr[n]; t < m->row_ptr[n + 1]; t++)
      for (int j = 0; j < JP; j++) prob[t + (size_t) m->n_rows * j] = 0.0;
  for (int r = 0; r < R; r++) {
    double *eta = w->ETA + r * K;
    double *lc = w->lc + (size_t) r * C1;
    iclv_structural(m, theta, n, w->E + r * K, eta, NULL, NULL);
    if (has_choice) iclv_tapes_invalidate(m, w->pws.V);
    for (int c = 0; c < C1; c++) lc[c] = 0.0;
    for (int o = m->obs_ptr[n]; o < m->obs_ptr[n + 1]; o++)
      lc[m->obs_ind[o]] += iclv_indicator_atom(m, theta, eta, o, NULL, NULL);
    if (has_choice)
      for (int t = m->row_ptr[n]; t < m->row_ptr[n + 1]; t++) {
        lc[M] += iclv_choice_atom(m, theta, eta, t, &w->pws, NULL, NULL);
        if (prob) {
          double s = iclv_row_mult(m, theta, t); /* best-worst's worst stage: -mu */
          const double *tc = iclv_row_tapes(m, theta, eta, t, w->pws.V, 0);
          for (int j = 0; j < J; j++) w->pws.V[j] = s * iclv_utility(m, theta, eta, t, j, tc);
          iclv_choice_probs(m, theta, t, w->pws.V, w->pr);
          for (int j = 0; j < JP; j++) prob[t + (size_t) m->n_rows * j] += w->pr[j] / R;
        }
      }
    double l = 0.0;
    for (int c = 0; c < C1; c++) l += lc[c];
    w->l[r] = l;
  }
  double lse = iclv_logsumexp(w->l, R, 1);
  e->ll_ind[n] = lse - log((double) R);
  if (!isfinite(e->ll_ind[n])) { e->bad[n] = IND_LL_NONFINITE; return; }
  e->bad[n] = IND_OK;
  for (int r = 0; r < R; r++) w->w[r] = exp(w->l[r] - lse);
  for (int k = 0; k < K; k++) {
    double mu = 0.0, v = 0.0;
    for (int r = 0; r < R; r++) mu += w->w[r] * w->ETA[r * K + k];
    for (int r = 0; r < R; r++) {
      double dlt = w->ETA[r * K + k] - mu;
      v += w->w[r] * dlt * dlt;
    }
    if (lv_mean) lv_mean[n + (size_t) N * k] = mu;
    if (lv_sd) lv_sd[n + (size_t) N * k] = sqrt(v);
  }
  for (int c = 0; c < C1; c++)
    e->comp[(size_t) n * C1 + c] = iclv_logsumexp(w->lc + c, R, C1) - log((double) R);
}

int iclv_cpu_predict(iclv_cpu_engine *e, const double *theta, double *prob, double *lv_mean,
                     double *lv_sd, double *comp_ll, iclv_status *st) {
  int N = e->N, C1 = e->M + 1;
  st->code = ICLV_OK;
  st->msg[0] = '\0';
  if (iclv_check_theta(e->m, theta, st) != ICLV_OK) return st->code;
  for (int n0 = 0; n0 < N; n0 += e->batch) {
    int n1 = N - n0 < e->batch ? N : n0 + e->batch;
    if (n0 > 0 && poll_stop(e, n0, st) != ICLV_OK) return st->code;
#ifdef _OPENMP
#pragma omp parallel for schedule(dynamic) num_threads(e->n_threads)
#endif
    for (int n = n0; n < n1; n++)
      individual_predict(e, &e->tw[thread_id()], theta, n, prob, lv_mean, lv_sd);
  }
  if (report_bad(e, theta, 0, N, st) != ICLV_OK) return st->code;
  if (comp_ll) {
    for (int c = 0; c < C1; c++) comp_ll[c] = 0.0;
    const double *wt = e->m->weight; /* weighted like the LL (iclv_model.h) */
    for (int n = 0; n < N; n++)
      if (wt) for (int c = 0; c < C1; c++) comp_ll[c] += wt[n] * e->comp[(size_t) n * C1 + c];
      else for (int c = 0; c < C1; c++) comp_ll[c] += e->comp[(size_t) n * C1 + c];
  }
  return ICLV_OK;
}
