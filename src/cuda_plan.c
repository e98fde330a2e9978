/*
 * cuda_plan.c -- the CUDA engine's planner (cuda_plan.h): launch shape,
 * buffers and chunking as plain arithmetic, so that the engine
 * (cuda/cuda_engine.cu) and iclv_memory_plan() read the same numbers.
 * No CUDA calls here; it is compiled in every build.
 */
#include <math.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "iclv_model.h"
#include "iclv_core.h"
#include "engine.h"
#include "cuda_plan.h"

void iclv_cuda_shape_assumed(iclv_cuda_shape *s) {
  memset(s, 0, sizeof(*s));
  snprintf(s->name, sizeof s->name, "assumed: an H100 (%d multiprocessors)", ICLV_CUDA_ASSUMED_SMS);
  s->known = 0;
  s->sms = ICLV_CUDA_ASSUMED_SMS;
  s->threads_per_sm = ICLV_CUDA_ASSUMED_THREADS_PER_SM;
  s->smem_optin = ICLV_CUDA_ASSUMED_SHARED;
  s->local_frame = ICLV_CUDA_ASSUMED_FRAME;
  s->total_bytes = NAN;
  s->free_bytes = NAN;
}

size_t iclv_cuda_pad32(size_t n) { return (n + 31) / 32 * 32; }

void iclv_cuda_model_parts(const iclv_model *m, iclv_model *dm,
                           iclv_model_part ip[ICLV_CUDA_INT_PARTS],
                           iclv_model_part dp[ICLV_CUDA_DBL_PARTS]) {
  size_t N = (size_t) m->n_ind, K = (size_t) m->n_lv, M = (size_t) m->n_indic;
  size_t S = (size_t) m->st_ptr[m->n_lv], L = (size_t) m->ind_load_ptr[m->n_indic];
  size_t J = (size_t) m->n_alt, U = (size_t) m->ut_ptr[m->n_alt];
  int i = 0;
#define PART(arr, field, count)                                            \
  do {                                                                     \
    arr[i].src = (const void *) m->field;                                  \
    arr[i].len = (size_t) (count);                                       \
    arr[i].dst = (void *) &dm->field;                                      \
    i++;                                                                   \
  } while (0)
  PART(ip, lv_order, K); PART(ip, st_ptr, K + 1); PART(ip, st_par, S); PART(ip, st_src_type, S);
  PART(ip, st_src, S); PART(ip, ind_type, M); PART(ip, ind_ncat, M); PART(ip, ind_thr, M);
  PART(ip, ind_icpt, M); PART(ip, ind_sd, M); PART(ip, ind_load_ptr, M + 1);
  PART(ip, ind_load_lv, L); PART(ip, ind_load_par, L); PART(ip, obs_ptr, N + 1);
  PART(ip, obs_ind, m->n_obs); PART(ip, row_ptr, N + 1); PART(ip, y, m->n_rows);
  PART(ip, avail, m->n_avail); PART(ip, ut_ptr, J + 1); PART(ip, ut_par, U);
  PART(ip, ut_col, U); PART(ip, ut_lv, U);
  PART(ip, mult_par, m->n_mult); /* best-worst row multipliers (0 when absent) */
  PART(ip, nest_of, m->n_nest > 0 ? J : 0); /* nested logit (0 when absent) */
  PART(ip, nest_par, m->n_nest);
  { /* the utilities' tapes (0 when absent) */
    size_t TJ = m->n_tape > 0 ? J + 1 : 0, nop = m->n_tape > 0 ? (size_t) m->tape_ptr[J] : 0;
    size_t nvar = m->n_tape > 0 ? (size_t) m->tape_var_ptr[J] : 0;
    PART(ip, tape_ptr, TJ); PART(ip, tape_op, nop); PART(ip, tape_arg, nop);
    PART(ip, tape_var_ptr, TJ); PART(ip, tape_var, nvar);
    size_t npop = m->n_tape > 0 ? (size_t) m->tape_pptr[J] : 0;
    PART(ip, tape_pptr, TJ); PART(ip, tape_pop, npop); PART(ip, tape_parg, npop);
  }
  i = 0;
  PART(dp, cov, N * (size_t) m->n_cov); PART(dp, obs_val, m->n_obs);
  PART(dp, X, (size_t) m->n_rows * (size_t) m->n_xcol); PART(dp, mult_sign, m->n_mult);
  PART(dp, weight, m->weight ? N : 0); /* NULL on the device too when unweighted */
  PART(dp, tape_const, m->n_tape > 0 ? (size_t) m->n_tape_const : 0);
#undef PART
}

double iclv_cuda_buf_bytes(const iclv_cuda_buf *b, int cap) {
  return b->fixed + b->per_ind * (double) cap;
}

static void set_buf(iclv_cuda_buf *b, const char *name, double fixed, double per_ind) {
  b->name = name;
  b->fixed = fixed;
  b->per_ind = per_ind;
}

/* Blocks per individual B, draws per block and threads per block T, from
 * the whole problem (never from the chunk: the reduction order depends on
 * them). Individuals are split while N < ICLV_CUDA_BLOCKS_PER_SM x SMs, as
 * long as each block keeps at least ICLV_CUDA_MIN_DRAWS_SPLIT draws; T is
 * the draws per block rounded up to a warp, at most ICLV_CUDA_MAX_BLOCK
 * (a warp per individual when R <= 32). The Hessian: D threads (and P x P
 * slots) per individual while N D is short of ICLV_CUDA_BLOCKS_PER_SM blocks
 * of ICLV_CUDA_HESS_BLOCK per SM, at most ICLV_CUDA_MAX_HSPLIT and R, and
 * while the N D slots stay within ICLV_CUDA_HSPLIT_BYTES (zeroing and
 * summing them costs memory traffic). */
static void choose_split(int N, int R, int P, int sms, iclv_cuda_plan *p) {
  const long target = (long) ICLV_CUDA_BLOCKS_PER_SM * sms;
  long B = 1;
  if (N < target) {
    long want = (target + N - 1) / N;           /* blocks per individual to fill the GPU */
    long most = R / ICLV_CUDA_MIN_DRAWS_SPLIT;   /* keeps >= ICLV_CUDA_MIN_DRAWS_SPLIT draws each */
    B = want < most ? want : most;
    if (B < 1) B = 1;
  }
  /* ceilings in long: R + d - 1 overflows int for R near INT_MAX */
  int rb = (int) (((long) R + B - 1) / B);
  int split = (int) (((long) R + rb - 1) / rb); /* no empty block */
  int T = (int) (((long) rb + 31) / 32 * 32);
  if (T > ICLV_CUDA_MAX_BLOCK) T = ICLV_CUDA_MAX_BLOCK;
  p->split = split;
  p->draws_per_block = rb;
  p->threads = T;
  {
    long want = (target * ICLV_CUDA_HESS_BLOCK + N - 1) / N;
    long D = want < ICLV_CUDA_MAX_HSPLIT ? want : ICLV_CUDA_MAX_HSPLIT;
    if (D > R) D = R;
    double slots = 8.0 * (double) N * (double) P * (double) P;
    if (slots > 0 && (double) D * slots > ICLV_CUDA_HSPLIT_BYTES) D = (long) (ICLV_CUDA_HSPLIT_BYTES / slots);
    p->hsplit = D < 1 ? 1 : (int) D;
  }
}

int iclv_cuda_plan_make(const iclv_model *m, const iclv_draws *d, const iclv_cuda_shape *s,
                        double budget, iclv_cuda_plan *p, iclv_status *st) {
  memset(p, 0, sizeof(*p));
  st->code = ICLV_OK;
  st->msg[0] = '\0';
  const int N = m->n_ind, P = m->n_par, K = m->n_lv, R = d->n_draws;
  /* the choice scratch of a pair: V (Jv: utilities and a nested logit's
   * per-nest scratch), gV (JL) and HV (JL x JL): iclv_core.h */
  const int S = m->st_ptr[m->n_lv], Jv = iclv_vscratch_dim(m), JL = iclv_link_dim(m);
  int has_lv_src = 0;
  for (int t = 0; t < S; t++)
    if (m->st_src_type[t] == ICLV_SRC_LV) has_lv_src = 1;
  const double dbl = (double) sizeof(double);

  choose_split(N, R, P, s->sms > 0 ? s->sms : 1, p);
  /* where the pair rows live: shared memory unless T rows do not fit */
  {
    size_t need = 2 * (size_t) K + (size_t) K * S + (size_t) Jv + (size_t) JL + (size_t) (P + K);
    p->rowlen = (int) (need | 1u);
    size_t base = sizeof(double) * (2 * (size_t) P + (size_t) p->threads + ICLV_CUDA_MAX_WARPS);
    size_t rows = sizeof(double) * (size_t) p->threads * (size_t) p->rowlen;
    if (base > s->smem_optin) {
      st->code = ICLV_ERR_MEMORY;
      snprintf(st->msg, ICLV_MSG_LEN,
               "the CUDA engine needs %zu bytes of shared memory per block for P = %d parameters; "
               "%s offers %zu: use backend = \"cpu\"", base, P, s->name, s->smem_optin);
      return st->code;
    }
    p->rows_global = base + rows > s->smem_optin;
    p->smem_pairs = base + (p->rows_global ? 0 : rows);
  }
  /* the Hessian's pair scratch (k_hess_pairs): a global slot per thread */
  p->hess_slot = 2 * (size_t) K + (size_t) K * S + (has_lv_src ? (size_t) K * S * S : 0) +
                 (size_t) Jv + (size_t) JL + (size_t) JL * JL + (size_t) (P + K) + (size_t) P * K +
                 (size_t) K * K;
  /* local memory the driver reserves, context-wide, for the largest frame
   * of the kernels: local bytes per thread x maximum resident threads per
   * SM x SMs (it is resized, not freed, between launches) */
  p->lmem = (double) s->local_frame * (double) s->threads_per_sm * (double) s->sms;

  /* the buffers */
  {
    iclv_model view;
    iclv_model_part ip[ICLV_CUDA_INT_PARTS], dp[ICLV_CUDA_DBL_PARTS];
    size_t ni = 0, nd = 0;
    iclv_cuda_model_parts(m, &view, ip, dp);
    for (int i = 0; i < ICLV_CUDA_INT_PARTS; i++) ni += iclv_cuda_pad32(ip[i].len);
    for (int i = 0; i < ICLV_CUDA_DBL_PARTS; i++) nd += iclv_cuda_pad32(dp[i].len);
    set_buf(&p->dev[ICLV_CD_MODEL_INT], "model_int_arrays", (double) sizeof(int) * (double) ni, 0);
    set_buf(&p->dev[ICLV_CD_MODEL_DBL], "model_double_arrays", dbl * (double) nd, 0);
  }
  set_buf(&p->dev[ICLV_CD_USER], "user_draws",
          d->type == ICLV_DRAWS_USER ? dbl * (double) N * (double) R * (double) K : 0, 0);
  set_buf(&p->dev[ICLV_CD_THETA], "theta", dbl * P, 0);
  set_buf(&p->dev[ICLV_CD_CARRY], "reduction_carry", dbl * ICLV_CUDA_GROUP * (1.0 + P), 0);
  set_buf(&p->dev[ICLV_CD_LMEM], "local_memory_reserved_estimate", p->lmem, 0);
  set_buf(&p->dev[ICLV_CD_SUMS], "loglik_gradient_sums", dbl * (1.0 + P), 0);
  set_buf(&p->dev[ICLV_CD_LLSTATUS], "chunk:loglik_status", 0, dbl * 2);
  set_buf(&p->dev[ICLV_CD_LSE], "chunk:logsumexp", 0, dbl);
  set_buf(&p->dev[ICLV_CD_SCORES], "chunk:scores", 0, dbl * (1.0 + P));
  set_buf(&p->dev[ICLV_CD_PART], "chunk:draw_block_states", 0,
          p->split > 1 ? dbl * p->split * (2.0 + P) : 0);
  set_buf(&p->dev[ICLV_CD_GROWS], "chunk:pair_scratch", 0,
          p->rows_global ? dbl * p->split * (double) p->threads * p->rowlen : 0);
  set_buf(&p->dev[ICLV_CD_HSUM], "hessian_sum", dbl * P * P, 0);
  set_buf(&p->dev[ICLV_CD_HCARRY], "hessian_carry", dbl * ICLV_CUDA_GROUP * P * P, 0);
  set_buf(&p->dev[ICLV_CD_HROWS], "chunk:hessian_draw_rows", 0, dbl * R * (double) P);
  set_buf(&p->dev[ICLV_CD_HSLOT], "chunk:hessian_by_individual", 0, dbl * p->hsplit * (double) P * P);
  set_buf(&p->dev[ICLV_CD_HSCRATCH], "chunk:hessian_pair_scratch", 0,
          dbl * p->hsplit * (double) p->hess_slot);
  set_buf(&p->dev[ICLV_CD_HSTATUS], "chunk:hessian_status", 0, (double) sizeof(int));
  set_buf(&p->host[ICLV_CH_THETA], "cuda_pinned_theta", dbl * P, 0);
  set_buf(&p->host[ICLV_CH_OUT], "cuda_pinned_results", dbl * (1.0 + P + 2.0 * N), 0);
  set_buf(&p->host[ICLV_CH_ROWS], "cuda_pinned_scores", 0, dbl * (1.0 + P));
  set_buf(&p->host[ICLV_CH_HESS], "cuda_pinned_hessian", dbl * P * P, 0);
  set_buf(&p->host[ICLV_CH_HSTATUS], "cuda_pinned_hessian_status", (double) sizeof(int) * N, 0);
  set_buf(&p->host[ICLV_CH_SCRATCH], "cuda_host_scratch", dbl * (2.0 * K + Jv + JL), 0);

  for (int b = 0; b < ICLV_CD_COUNT; b++) {
    if (b < ICLV_CD_HESS_FIRST) {
      p->fixed_bytes += p->dev[b].fixed;
      p->per_ind_bytes += p->dev[b].per_ind;
    } else {
      p->hess_fixed_bytes += p->dev[b].fixed;
      p->hess_per_ind_bytes += p->dev[b].per_ind;
    }
  }

  /* the chunk: as many individuals as the budget allows with the Hessian's
   * buffers (iclv() asks for the Hessian at the optimum by default: a fit
   * that cannot hold it fails at creation, not after the optimisation) */
  p->budget = budget > 0 ? budget : 0.8 * s->free_bytes;
  if (isnan(p->budget)) {
    p->per_chunk = N;
  } else {
    double fit = floor((p->budget - p->fixed_bytes - p->hess_fixed_bytes) /
                       (p->per_ind_bytes + p->hess_per_ind_bytes));
    double most = (double) INT_MAX / (double) p->split; /* grid.x = per_chunk * split */
    if (!(fit >= 1.0)) fit = 0.0;
    if (fit > most) fit = most;
    p->per_chunk = fit >= (double) N ? N : (int) fit;
  }
  p->n_chunks = p->per_chunk > 0 ? (int) (((long) N + p->per_chunk - 1) / p->per_chunk) : 0;
  return ICLV_OK;
}

static void account_put(iclv_mem_account *a, const iclv_cuda_buf *b, int cap, int always) {
  double bytes = iclv_cuda_buf_bytes(b, cap);
  if (bytes <= 0 && !always) return;
  int i = a->n++;
  snprintf(a->name[i], ICLV_BUFNAME_LEN, "%s", b->name);
  a->bytes[i] = bytes;
  a->current += bytes;
  a->peak = a->current;
}

void iclv_cuda_plan_accounts(const iclv_cuda_plan *p, int cap, int with_hessian,
                             iclv_mem_account *dev, iclv_mem_account *host) {
  memset(dev, 0, sizeof(*dev));
  memset(host, 0, sizeof(*host));
  int last = with_hessian ? ICLV_CD_COUNT : ICLV_CD_HESS_FIRST;
  for (int b = 0; b < last; b++) account_put(dev, &p->dev[b], cap, b == ICLV_CD_LMEM);
  for (int b = 0; b < ICLV_CH_COUNT; b++) account_put(host, &p->host[b], cap, 0);
}
