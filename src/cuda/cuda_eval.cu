/*
 * cuda_eval.cu -- one evaluation of the CUDA engine: the chunks of
 * individuals (k_pairs, k_merge_split, k_reduce_groups through
 * cuda_launch.cu), the Hessian's buffers created for the request and
 * released after it, the copies back, the interrupt poll between chunks,
 * the CUDA graphs of one-chunk LL (+ gradient) requests, and the checks of
 * the results (the first bad individual, as engine.c). What it computes and
 * in which order, and when a graph is used, is in cuda_engine_impl.cuh.
 */
#include <cuda_runtime.h>
#include <stdlib.h>
#include <string.h>
#include <stdio.h>
#include <math.h>

#include "../numerics.h"
#include "../model_checks.h"
#include "cuda_util.cuh"
#include "cuda_engine_impl.cuh"

/* ---- the Hessian's buffers (created per request, released after) -------------------------- */

typedef struct {
  int per_chunk;        /* individuals per Hessian chunk (<= the engine's per_chunk) */
  int first;            /* index of its first account entry */
  double *sum;          /* (P, P) running sum (lower triangle) */
  double *carry;        /* (ICLV_CUDA_GROUP, P, P) */
  double *slot;         /* (per_chunk, D, P, P) per-(individual, draw stride) Hessian parts */
  double *arows;        /* (per_chunk, R, P) */
  double *scratch;      /* (per_chunk * D, hess_slot) */
  int *status;          /* (per_chunk) */
} hess_bufs;

/* Frees the Hessian's buffers and removes them from the account (the peak
 * keeps them). */
static void hess_release(iclv_cuda_engine *e, hess_bufs *hb) {
  if (hb->first < 0) return;
  for (int i = e->acct.n - 1; i >= hb->first; i--) {
    if (e->dbuf[i] != NULL) (void) cudaFree(e->dbuf[i]);
    e->dbuf[i] = NULL;
    e->acct.current -= e->acct.bytes[i];
  }
  e->acct.n = hb->first;
  hb->first = -1;
}

/* hess_release, then the LL chunk buffers back at per_chunk individuals. */
static int hess_finish(iclv_cuda_engine *e, hess_bufs *hb, iclv_status *st) {
  hess_release(e, hb);
  if (e->cap != e->per_chunk) {
    ce_chunk_release(e);
    if (ce_chunk_alloc(e, e->per_chunk, st) != ICLV_OK) return st->code;
  }
  return ICLV_OK;
}

/* Allocates the Hessian's buffers: fixed (P, P) sum and (32, P, P) carry,
 * per individual R x P rows, D P x P slots, D pair scratches and a status,
 * for the largest chunk C_h <= per_chunk such that the fixed buffers, the
 * LL chunk buffers and the Hessian's, both for C_h individuals, fit the
 * budget. Creation sized per_chunk so that C_h = per_chunk; should it not
 * (a guard), the LL chunk buffers are re-made for C_h individuals and
 * hess_finish restores them. */
static int hess_create(iclv_cuda_engine *e, hess_bufs *hb, iclv_status *st) {
  void *p = NULL;
  hb->first = -1;
  const double fixed = e->plan.hess_fixed_bytes, per = e->plan.hess_per_ind_bytes;
  double fit = floor((e->plan.budget - e->plan.fixed_bytes - fixed) / (e->plan.per_ind_bytes + per));
  if (!(fit >= 1.0)) {
    char b1[32], b2[32], b3[32], b4[32];
    st->code = ICLV_ERR_MEMORY;
    snprintf(st->msg, ICLV_MSG_LEN,
             "the device memory budget of %s is too small for the exact Hessian: beyond the "
             "engine's %s it needs %s plus %s per individual (R = %d draws, P = %d parameters); "
             "raise device_memory in iclv_control() or ask the CPU for the Hessian",
             ce_fmt_bytes(e->plan.budget, b1, sizeof b1), ce_fmt_bytes(e->plan.fixed_bytes, b4, sizeof b4),
             ce_fmt_bytes(fixed, b2, sizeof b2), ce_fmt_bytes(per + e->plan.per_ind_bytes, b3, sizeof b3), e->R,
             e->P);
    return st->code;
  }
  hb->per_chunk = fit >= (double) e->per_chunk ? e->per_chunk : (int) fit;
  if (e->test_hess_chunk > 0 && hb->per_chunk > e->test_hess_chunk) hb->per_chunk = e->test_hess_chunk;
  if (hb->per_chunk < e->cap) {
    ce_chunk_release(e);
    if (ce_chunk_alloc(e, hb->per_chunk, st) != ICLV_OK) return st->code;
  }
  hb->first = e->acct.n;
  {
    const int C = hb->per_chunk;
    if (ce_plan_alloc(e, ICLV_CD_HSUM, C, &p, st) != ICLV_OK) goto fail;
    hb->sum = (double *) p;
    if (ce_plan_alloc(e, ICLV_CD_HCARRY, C, &p, st) != ICLV_OK) goto fail;
    hb->carry = (double *) p;
    if (ce_plan_alloc(e, ICLV_CD_HROWS, C, &p, st) != ICLV_OK) goto fail;
    hb->arows = (double *) p;
    if (ce_plan_alloc(e, ICLV_CD_HSLOT, C, &p, st) != ICLV_OK) goto fail;
    hb->slot = (double *) p;
    if (ce_plan_alloc(e, ICLV_CD_HSCRATCH, C, &p, st) != ICLV_OK) goto fail;
    hb->scratch = (double *) p;
    if (ce_plan_alloc(e, ICLV_CD_HSTATUS, C, &p, st) != ICLV_OK) goto fail;
  }
  hb->status = (int *) p;
  return ICLV_OK;
fail:
  hess_release(e, hb);
  return st->code;
}

/* Queues the Hessian of individuals n0 .. n0 + n_here - 1 (one chunk) on the
 * engine's stream, after the chunk's k_pairs (lse and scores): zeroes the
 * slots, k_hess_pairs, k_hess_outer, k_reduce_groups over the slots into
 * hb->sum, and the copy of the chunk's statuses into h_hstatus + n0.
 * Requires P > 0. Returns ICLV_OK, or ICLV_ERR_CUDA for a failed launch or
 * call (queued work is not waited for: the caller synchronises). */
static int queue_hessian_chunk(iclv_cuda_engine *e, const hess_bufs *hb, int n0, int n_here,
                               iclv_status *st) {
  const int P = e->P;
  const size_t PP = (size_t) P * P;
  const size_t D = (size_t) e->plan.hsplit;
  ICLV_CUDA_TRY(st, cudaMemsetAsync(hb->slot, 0, (size_t) n_here * D * PP * sizeof(double), e->stream));
  ICLV_CUDA_TRY(st, cl_launch_hessian(e, n0, n_here, hb->slot, hb->arows, hb->scratch, hb->status));
  cl_launch_reduce(e, hb->slot, D * PP, (int) PP, n0, n_here, hb->carry, hb->sum);
  ICLV_CUDA_CHECK_LAUNCH(st, "k_reduce_groups (Hessian)");
  ICLV_CUDA_TRY(st, cudaMemcpyAsync(e->h_hstatus + n0, hb->status, (size_t) n_here * sizeof(int),
                                    cudaMemcpyDeviceToHost, e->stream));
  return ICLV_OK;
fail:
  return st->code;
}

extern "C" void iclv_cuda_engine_set_poll(iclv_cuda_engine *e, iclv_poll_fn poll, void *ctx) {
  e->poll = poll;
  e->poll_ctx = poll ? ctx : NULL;
}

/* ---- the LL (and gradient) sequence: queued, or captured as a graph ------------------------ */

/* Queues the start of an LL request: theta from the pinned h_theta (filled
 * by the caller) into d_theta, and the W reduced sums (LL, and with the
 * gradient P more) zeroed. Returns ICLV_OK or ICLV_ERR_CUDA. */
static int queue_start(iclv_cuda_engine *e, int W, iclv_status *st) {
  if (e->P > 0)
    ICLV_CUDA_TRY(st, cudaMemcpyAsync(e->d_theta, e->h_theta, (size_t) e->P * sizeof(double),
                                      cudaMemcpyHostToDevice, e->stream));
  ICLV_CUDA_TRY(st, cudaMemsetAsync(e->d_out, 0, (size_t) W * sizeof(double), e->stream));
  return ICLV_OK;
fail:
  return st->code;
}

/* Queues chunk c of n_chunks, individuals n0 .. n0 + nh - 1: k_pairs,
 * k_merge_split (draws split over blocks), k_reduce_groups of W columns
 * into the running sums, and the copies into h_out: log L_n and statuses
 * of the chunk, and after the last chunk the sums; one copy of the whole
 * results block when one chunk holds every individual (sums, lli and
 * status are adjacent on both sides). Returns ICLV_OK or ICLV_ERR_CUDA. */
static int queue_ll_chunk(iclv_cuda_engine *e, int want_g, int W, int c, int n_chunks, int n0, int nh,
                          iclv_status *st) {
  const int N = e->N, P = e->P;
  double *h_sums = e->h_out, *h_lli = h_sums + 1 + P, *h_status = h_lli + N;
  double *d_lli = e->d_out + 1 + P, *d_status = d_lli + e->cap;
  cl_launch_pairs(e, want_g, n0, nh);
  ICLV_CUDA_CHECK_LAUNCH(st, "k_pairs");
  if (e->plan.split > 1) {
    cl_launch_merge(e, want_g, nh, d_lli, d_status);
    ICLV_CUDA_CHECK_LAUNCH(st, "k_merge_split");
  }
  cl_launch_reduce(e, e->d_rows, (size_t) (1 + P), W, n0, nh, e->d_carry, e->d_out);
  ICLV_CUDA_CHECK_LAUNCH(st, "k_reduce_groups");
  if (n_chunks == 1 && e->cap == N) {
    ICLV_CUDA_TRY(st, cudaMemcpyAsync(h_sums, e->d_out, (size_t) (1 + P + 2 * (size_t) N) * sizeof(double),
                                      cudaMemcpyDeviceToHost, e->stream));
  } else {
    ICLV_CUDA_TRY(st, cudaMemcpyAsync(h_lli + n0, d_lli, (size_t) nh * sizeof(double),
                                      cudaMemcpyDeviceToHost, e->stream));
    ICLV_CUDA_TRY(st, cudaMemcpyAsync(h_status + n0, d_status, (size_t) nh * sizeof(double),
                                      cudaMemcpyDeviceToHost, e->stream));
    if (c == n_chunks - 1)
      ICLV_CUDA_TRY(st, cudaMemcpyAsync(h_sums, e->d_out, (size_t) W * sizeof(double),
                                        cudaMemcpyDeviceToHost, e->stream));
  }
  return ICLV_OK;
fail:
  return st->code;
}

void ce_graphs_destroy(iclv_cuda_engine *e) {
  for (int k = 0; k < 2; k++) {
    if (e->graph[k] != NULL) (void) cudaGraphExecDestroy(e->graph[k]);
    e->graph[k] = NULL;
  }
}

/* Captures the one-chunk LL (with want_g: and gradient) request, W reduced
 * columns, into e->graph[want_g]: queue_start and queue_ll_chunk recorded
 * from the engine's stream (nothing runs), then instantiated. Thread-local
 * capture: the calls this thread may not make meanwhile (allocation,
 * synchronisation) fail, other threads' CUDA calls are left alone.
 * Requires e->cap == N (the chunk buffers hold every individual). Returns
 * ICLV_OK, or ICLV_ERR_CUDA naming the failed call, with the capture ended
 * and no graph kept. */
static int graph_build(iclv_cuda_engine *e, int want_g, int W, iclv_status *st) {
  cudaGraph_t g = NULL;
  cudaGraphExec_t x = NULL;
  int capturing = 0;
  ICLV_CUDA_TRY(st, cudaStreamBeginCapture(e->stream, cudaStreamCaptureModeThreadLocal));
  capturing = 1;
  if (queue_start(e, W, st) != ICLV_OK) goto fail;
  if (queue_ll_chunk(e, want_g, W, 0, 1, 0, e->N, st) != ICLV_OK) goto fail;
  capturing = 0; /* cudaStreamEndCapture ends it, failing or not */
  ICLV_CUDA_TRY(st, cudaStreamEndCapture(e->stream, &g));
  ICLV_CUDA_TRY(st, cudaGraphInstantiate(&x, g, 0));
  e->graph[want_g] = x;
  ICLV_CUDA_TRY(st, cudaGraphDestroy(g)); /* the instance does not need it */
  g = NULL;
  e->graph_builds++;
  return ICLV_OK;
fail:
  if (capturing) {
    /* leave the stream out of capture mode; the first error is the one reported */
    cudaGraph_t partial = NULL;
    if (cudaStreamEndCapture(e->stream, &partial) == cudaSuccess && partial != NULL)
      (void) cudaGraphDestroy(partial);
  }
  if (g != NULL) (void) cudaGraphDestroy(g);
  if (e->graph[want_g] != NULL) (void) cudaGraphExecDestroy(e->graph[want_g]);
  e->graph[want_g] = NULL;
  (void) cudaGetLastError();
  return st->code;
}

/* ---- evaluation ------------------------------------------------------------------------- */

extern "C" int iclv_cuda_eval(iclv_cuda_engine *e, const double *theta, iclv_eval_out *out,
                              iclv_status *st) {
  const int N = e->N, P = e->P;
  int want_g = 0, want_h = 0, C = e->per_chunk;
  hess_bufs hb;
  hb.first = -1;
  double *h_sums = e->h_out, *h_lli = h_sums + 1 + P, *h_status = h_lli + N;
  st->code = ICLV_OK;
  st->msg[0] = '\0';
  if (iclv_check_theta(e->hm, theta, st) != ICLV_OK) return st->code;
  want_h = out->hess != NULL && P > 0;
  want_g = want_h || out->grad != NULL || out->scores != NULL;
  const int W = want_g ? 1 + P : 1; /* reduced columns: log L_n (and s_n) */

  ICLV_CUDA_TRY(st, cudaSetDevice(e->device));
  if (e->chunk_first < 0 && ce_chunk_alloc(e, e->per_chunk, st) != ICLV_OK) {
    ce_chunk_release(e); /* a failed earlier restore: try again, else say so */
    return st->code;
  }
  if (want_h) {
    if (hess_create(e, &hb, st) != ICLV_OK) {
      iclv_status st2;
      (void) hess_finish(e, &hb, &st2);
      return st->code;
    }
    C = hb.per_chunk; /* the LL pass follows the Hessian's chunks: results do not depend on them */
    ICLV_CUDA_TRY(st, cudaMemsetAsync(hb.sum, 0, (size_t) P * P * sizeof(double), e->stream));
  }
  if (P > 0) memcpy(e->h_theta, theta, (size_t) P * sizeof(double)); /* read by the theta copy */

  if (e->use_graphs && !want_h && out->scores == NULL && C >= N && e->cap == N) {
    /* one chunk, LL (+ gradient) only: the captured sequence, one launch */
    if (e->graph[want_g] == NULL && graph_build(e, want_g, W, st) != ICLV_OK) goto fail;
    ICLV_CUDA_TRY(st, cudaGraphLaunch(e->graph[want_g], e->stream));
    e->graph_launches++;
  } else {
    const int n_chunks = (N + C - 1) / C;
    if (queue_start(e, W, st) != ICLV_OK) goto fail;
    for (int c = 0; c < n_chunks; c++) {
      const int n0 = c * C;
      const int nh = N - n0 < C ? N - n0 : C;
      if (c > 0 && e->poll != NULL) {
        /* the next chunk reuses the chunk buffers, so the device serialises
         * the chunks anyway: wait for this one, then ask the host's poll */
        ICLV_CUDA_TRY(st, cudaStreamSynchronize(e->stream));
        if (e->poll(e->poll_ctx) != 0) {
          st->code = ICLV_INTERRUPTED;
          snprintf(st->msg, ICLV_MSG_LEN, "interrupted by the user after %d of %d individuals", n0, N);
          goto fail;
        }
      }
      if (queue_ll_chunk(e, want_g, W, c, n_chunks, n0, nh, st) != ICLV_OK) goto fail;
      if (want_h && queue_hessian_chunk(e, &hb, n0, nh, st) != ICLV_OK) goto fail;
      if (out->scores != NULL && P > 0) {
        /* the staging holds one chunk: wait for it, then transpose into the
         * caller's column-major (N, P) */
        ICLV_CUDA_TRY(st, cudaMemcpyAsync(e->h_rows, e->d_rows, (size_t) nh * (1 + P) * sizeof(double),
                                          cudaMemcpyDeviceToHost, e->stream));
        ICLV_CUDA_TRY(st, cudaStreamSynchronize(e->stream));
        for (int i = 0; i < nh; i++) {
          const double *hw = e->hm->weight;
          if (hw)
            for (int p = 0; p < P; p++)
              out->scores[(size_t) (n0 + i) + (size_t) N * p] =
                  hw[n0 + i] * e->h_rows[(size_t) i * (1 + P) + 1 + p];
          else
            for (int p = 0; p < P; p++)
              out->scores[(size_t) (n0 + i) + (size_t) N * p] = e->h_rows[(size_t) i * (1 + P) + 1 + p];
        }
      }
    }
    if (want_h)
      ICLV_CUDA_TRY(st, cudaMemcpyAsync(e->h_hess, hb.sum, (size_t) P * P * sizeof(double),
                                        cudaMemcpyDeviceToHost, e->stream));
  }
  ICLV_CUDA_TRY(st, cudaStreamSynchronize(e->stream));
  if (want_h && hess_finish(e, &hb, st) != ICLV_OK) return st->code;

  /* the first bad individual in index order, as engine.c's report_bad */
  for (int n = 0; n < N; n++) {
    if (!isfinite(h_lli[n])) {
      char part[256];
      ce_diagnose(e, theta, n, part, sizeof part);
      st->code = ICLV_ERR_NUMERIC;
      snprintf(st->msg, ICLV_MSG_LEN, "the simulated %s of individual %d is not finite (%s)",
               "log-likelihood", n + 1, part);
      return st->code;
    }
    if (want_g && h_status[n] != 0.0) {
      st->code = ICLV_ERR_NUMERIC;
      snprintf(st->msg, ICLV_MSG_LEN,
               "the simulated %s of individual %d is not finite (log L = %g)", "gradient", n + 1,
               h_lli[n]);
      return st->code;
    }
    if (want_h && e->h_hstatus[n] != 0) {
      st->code = ICLV_ERR_NUMERIC;
      snprintf(st->msg, ICLV_MSG_LEN,
               "the simulated %s of individual %d is not finite (log L = %g)", "Hessian", n + 1,
               h_lli[n]);
      return st->code;
    }
  }

  *out->loglik = h_sums[0];
  if (out->loglik_i) {
    /* weighted terms, as engine.c (the device sums weighted them in k_reduce_groups) */
    if (e->hm->weight)
      for (int n = 0; n < N; n++) out->loglik_i[n] = e->hm->weight[n] * h_lli[n];
    else
      memcpy(out->loglik_i, h_lli, (size_t) N * sizeof(double));
  }
  if (out->grad && P > 0) memcpy(out->grad, h_sums + 1, (size_t) P * sizeof(double));
  if (want_h) {
    /* the lower triangle is the sum; mirror it (exactly symmetric, as engine.c) */
    for (int j = 0; j < P; j++)
      for (int i = j; i < P; i++) {
        const double v = e->h_hess[i + (size_t) P * j];
        out->hess[i + (size_t) P * j] = v;
        out->hess[j + (size_t) P * i] = v;
      }
  }
  return ICLV_OK;

fail:
  /* let work already queued finish before the caller (or the next
   * evaluation) reuses the pinned staging; its own error, if any, is moot */
  (void) cudaStreamSynchronize(e->stream);
  (void) cudaGetLastError();
  if (want_h) {
    iclv_status st2;
    (void) hess_finish(e, &hb, &st2);
  }
  return st->code;
}
