/*
 * cuda_engine.cu -- the CUDA backend: simulated log-likelihood, analytic
 * gradient, per-individual scores and exact Hessian on one GPU. It mirrors
 * the CPU reference engine (engine.c) step by step and calls the very same
 * per-(individual, draw) code (iclv_core.h, draws.h) from device code; the
 * kernels and their contracts are in cuda_kernels.cuh, this file holds the
 * host side: launch plan, model upload, buffers, evaluation.
 *
 * What one evaluation computes (engine.c's definitions):
 *   l_nr    = iclv_pair_eval(n, e_nr)                  (draws made in the kernel)
 *   lse_n   = logsumexp_r l_nr,  log L_n = lse_n - log R
 *   w_nr    = exp(l_nr - lse_n)
 *   s_n     = sum_r w_nr g_nr                          (g_nr = d l_nr / d theta)
 *   H_n     = sum_r w_nr hess l_nr + sum_r a_nr a_nr',  a_nr = sqrt(w_nr) (g_nr - s_n)
 *   LL = sum_n log L_n, gradient = sum_n s_n, Hessian = sum_n H_n
 *
 * Per chunk of individuals, on one stream:
 *   k_pairs         one pass over the draws for LL and scores together (online
 *                   log-sum-exp, the pair scratch in shared memory)
 *   k_merge_split   (only when an individual's draws are split over blocks)
 *   k_reduce_groups LL and gradient: fixed trees over groups of 32 individuals,
 *                   groups added in index order into a running sum
 * and for a Hessian request k_hess_pairs (D threads per individual over its
 * draws, each with its own P x P slot; D from N, R, P and the device),
 * k_hess_outer (the D slots in index order plus the outer products, in 4 x 4
 * tiles, parallel over tiles) and k_reduce_groups over the individuals'
 * P x P results. One copy in (theta) and, for a one-chunk evaluation,
 * one copy out (sums, log L_n and statuses are adjacent on the device and on
 * the host); the scores, when asked, are one more copy per chunk.
 *
 * Determinism: no atomics; every sum has a fixed order that depends only on
 * R, N and the launch shape chosen at creation from (N, R, the device),
 * never on the chunk size (cuda_kernels.cuh explains the reductions). So
 * repeated evaluations are bit-identical, and so are any two chunk sizes.
 * Against the CPU engine the results agree to rounding only (device
 * exp/log/erfc differ from glibc's by a few ulp; sums are taken in another
 * order); the tests ask for 1e-12 relative (1e-10 for the Hessian).
 * The build uses -fmad=false so that a*b+c is rounded twice, as gcc does on
 * x86-64 without -mfma.
 *
 * Memory: the planner (cuda_plan.c, iclv_cuda_plan_make) sizes every
 * buffer from the model, the design, the device's shape and the budget;
 * creation allocates exactly its buffers, in its order, so iclv_memory_plan()
 * and the account cannot differ. The buffers of LL, gradient and scores are
 * allocated at creation and recorded in the engine's iclv_mem_account (the
 * pinned host buffers in a second, host account); such an evaluation
 * allocates nothing. The model's arrays are uploaded once (two packed
 * buffers: ints and doubles); draws are regenerated in the kernels with
 * iclv_draw_normal() (a user array is uploaded once). Buffers that scale
 * with the individuals are sized for one chunk of `per_chunk` individuals
 * (their account names start with "chunk:"). The Hessian's buffers are
 * created by the evaluation that asks for it, recorded while they live, and
 * released before it returns; per_chunk is the largest count whose total,
 * with the Hessian's buffers, fits the budget:
 *   fixed + hessian fixed + c * (per_individual + hessian per_individual),
 * so a fit whose Hessian at the optimum cannot fit fails at creation. Only
 * the LL buffers are held between Hessian requests.
 *
 * Per-thread scratch of a pair (e, eta (K), D (K, S), V, gV (J), the extended
 * gradient g (P + K)) is a row of shared memory per thread (rowlen doubles,
 * odd so that a warp touching entry p of its 32 rows hits distinct banks);
 * when T rows do not fit the device's shared memory per block, a global
 * buffer with one row per thread ("chunk:pair_scratch", correct but slower).
 * No per-thread arrays: the kernels' local-memory frames are what ptxas
 * reports (bench/README.md shows how to read them), recorded in the
 * account as the driver's reservation (frame x resident threads x SMs).
 *
 * No R headers here; errors are iclv_status codes with messages (CUDA errors
 * with the call, file and line; see cuda_util.cuh).
 */
#include <cuda_runtime.h>
#include <stdlib.h>
#include <string.h>
#include <stdio.h>
#include <math.h>
#include <limits.h>

#include "../iclv_model.h"
#include "../engine.h"
#include "../numerics.h"
#include "../iclv_core.h"
#include "../draws.h"
#include "../model_checks.h"
#include "../cuda_plan.h"
#include "cuda_backend.h"
#include "cuda_util.cuh"
#include "cuda_kernels.cuh"

/* The tuning constants (fixed: the reduction orders depend on them), the
 * launch shape, every buffer's size and the chunking are the planner's
 * (cuda_plan.h, cuda_plan.c): creation calls it and allocates exactly the
 * buffers it lists. */
#define ICLV_CUDA_MAX_HOST 8           /* pinned host buffers */

/* ---- the engine ------------------------------------------------------------ */

struct iclv_cuda_engine {
  const iclv_model *hm;   /* host model (R memory; outlives the engine) */
  const iclv_draws *hd;   /* host draw design */
  iclv_model dm;          /* the same model with device pointers (kernel argument) */
  iclv_draws dd;          /* the design with a device `user` pointer (kernel argument) */
  int device;             /* CUDA ordinal */
  int N, P, K, R, S, J;   /* individuals, parameters, LVs, draws, structural terms, max(1, n_alt) */
  int has_lv_src;         /* some structural term has an LV source (D2 needed for the Hessian) */
  int per_chunk;          /* individuals per chunk */
  int n_chunks;
  int cap;                /* individuals the chunk buffers hold now (per_chunk, or less
                             during a Hessian request) */
  int chunk_first;        /* account index of the first chunk buffer (-1: none) */
  double dev_total, dev_free; /* cudaMemGetInfo at creation */
  iclv_cuda_plan plan;    /* the planner's launch shape (split, threads, rowlen, hsplit, ...),
                             buffer sizes and budget (cuda_plan.h) */
  iclv_mem_account acct;
  void *dbuf[ICLV_MAX_BUFFERS];   /* device allocations, index-aligned with acct (NULL: none) */
  void *hbuf[ICLV_CUDA_MAX_HOST]; /* pinned host allocations */
  int n_hbuf;
  iclv_mem_account hacct; /* the pinned buffers and the host scratch */
  cudaStream_t stream;
  int have_stream;
  iclv_poll_fn poll;      /* interrupt poll between chunks (host, calling thread), or NULL */
  void *poll_ctx;         /* its argument */

  /* device buffers (pointers into dbuf) */
  int *d_int;        /* packed int arrays of the model */
  double *d_dbl;     /* packed double arrays of the model */
  double *d_user;    /* (N, R, K) user draws, column-major, or NULL */
  double *d_theta;   /* (P) */
  double *d_out;     /* (1 + P + 2 per_chunk): the results block: sums (1 + P: LL, gradient),
                        then lli (per_chunk) and status (per_chunk) of the chunk */
  double *d_lse;     /* (per_chunk) logsumexp_r l_nr */
  double *d_rows;    /* (per_chunk, 1 + P) row-major: log L_n, s_n */
  double *d_part;    /* (per_chunk * B, 2 + P) row-major online states, or NULL when B == 1 */
  double *d_grows;   /* (per_chunk * B * T, rowlen) global pair rows, or NULL */
  double *d_carry;   /* (ICLV_CUDA_GROUP, 1 + P) leaves of a group cut by a chunk boundary */

  /* pinned host staging */
  double *h_theta;   /* (P) */
  double *h_out;     /* (1 + P + 2 N): sums, lli (N), status (N) */
  double *h_rows;    /* (per_chunk, 1 + P) row-major: scores staging */
  double *h_hess;    /* (P, P) column-major */
  int *h_hstatus;    /* (N) */
  /* plain host scratch for naming the model part at fault (diagnose) */
  double *h_ws;      /* (2K + Jv + JL): e, eta, V, gV of diagnose() */
};

/* ---- small host helpers ------------------------------------------------------ */

static int fail_msg(iclv_status *st, int code, const char *msg) {
  st->code = code;
  snprintf(st->msg, ICLV_MSG_LEN, "%s", msg);
  return code;
}

/* "812 bytes", "3.4 KB", "12.5 MB" or "1.07 GB" (1 KB = 1024 bytes) into buf. */
static const char *fmt_bytes(double b, char *buf, size_t len) {
  if (b < 1024.0) snprintf(buf, len, "%.0f bytes", b);
  else if (b < 1048576.0) snprintf(buf, len, "%.1f KB", b / 1024.0);
  else if (b < 1073741824.0) snprintf(buf, len, "%.1f MB", b / 1048576.0);
  else snprintf(buf, len, "%.2f GB", b / 1073741824.0);
  return buf;
}

/* Records a buffer in the account (bytes may be an estimate with ptr NULL). */
static int account_add(iclv_cuda_engine *e, const char *name, double bytes, void *ptr,
                       iclv_status *st) {
  if (e->acct.n >= ICLV_MAX_BUFFERS)
    return fail_msg(st, ICLV_ERR_MEMORY, "the CUDA engine has more buffers than its account holds");
  int i = e->acct.n++;
  e->dbuf[i] = ptr;
  snprintf(e->acct.name[i], ICLV_BUFNAME_LEN, "%s", name);
  e->acct.bytes[i] = bytes;
  e->acct.current += bytes;
  if (e->acct.current > e->acct.peak) e->acct.peak = e->acct.current;
  return ICLV_OK;
}

/* cudaMalloc of `bytes` (nothing when 0: *out = NULL), recorded under
 * `name`. Out of device memory is ICLV_ERR_MEMORY naming the buffer;
 * another failure is ICLV_ERR_CUDA with call, file and line. */
static int dev_alloc(iclv_cuda_engine *e, const char *name, size_t bytes, void **out,
                     iclv_status *st) {
  *out = NULL;
  if (bytes == 0) return ICLV_OK;
  void *p = NULL;
  cudaError_t err = cudaMalloc(&p, bytes);
  if (err != cudaSuccess) {
    if (err == cudaErrorMemoryAllocation) {
      char b1[32], b2[32];
      (void) cudaGetLastError();
      st->code = ICLV_ERR_MEMORY;
      snprintf(st->msg, ICLV_MSG_LEN,
               "could not allocate %s of device memory for the CUDA engine's buffer '%s' "
               "(cudaMalloc at %s:%d: %s); %s were free when the engine started; lower "
               "device_memory in iclv_control() to process individuals in smaller chunks",
               fmt_bytes((double) bytes, b1, sizeof b1), name, __FILE__, __LINE__,
               cudaGetErrorString(err), fmt_bytes(e->dev_free, b2, sizeof b2));
      return st->code;
    }
    return iclv_cuda_fail(st, err, "cudaMalloc", __FILE__, __LINE__);
  }
  if (account_add(e, name, (double) bytes, p, st) != ICLV_OK) {
    cudaFree(p);
    return st->code;
  }
  *out = p;
  return ICLV_OK;
}

/* Records `bytes` under `name` in the host account (not device memory). */
static void host_record(iclv_cuda_engine *e, const char *name, double bytes) {
  int i = e->hacct.n++;
  snprintf(e->hacct.name[i], ICLV_BUFNAME_LEN, "%s", name);
  e->hacct.bytes[i] = bytes;
  e->hacct.current += bytes;
  e->hacct.peak = e->hacct.current;
}

/* Pinned host memory (page-locked, for asynchronous copies) for the plan's
 * host buffer `id`, sized for per_chunk individuals; recorded in the host
 * account (nothing when empty). */
static int host_alloc(iclv_cuda_engine *e, int id, void **out, iclv_status *st) {
  const iclv_cuda_buf *b = &e->plan.host[id];
  size_t bytes = (size_t) iclv_cuda_buf_bytes(b, e->per_chunk);
  *out = NULL;
  if (bytes == 0) return ICLV_OK;
  if (e->n_hbuf >= ICLV_CUDA_MAX_HOST)
    return fail_msg(st, ICLV_ERR_MEMORY, "the CUDA engine has more pinned buffers than it tracks");
  void *p = NULL;
  ICLV_CUDA_TRY(st, cudaMallocHost(&p, bytes));
  e->hbuf[e->n_hbuf++] = p;
  host_record(e, b->name, (double) bytes);
  *out = p;
  return ICLV_OK;
fail:
  return st->code;
}

/* cudaMalloc of the plan's device buffer `id` for a chunk of `cap`
 * individuals (dev_alloc's rules). */
static int plan_alloc(iclv_cuda_engine *e, int id, int cap, void **out, iclv_status *st) {
  const iclv_cuda_buf *b = &e->plan.dev[id];
  return dev_alloc(e, b->name, (size_t) iclv_cuda_buf_bytes(b, cap), out, st);
}

/* ---- checks mirrored from engine.c (same rules, same messages) -------------- */

/* The data and theta checks and the diagnosis of a non-finite likelihood
 * are engine.c's, shared through model_checks.c (iclv_check_data,
 * iclv_check_theta, iclv_diagnose_individual), so both backends refuse the
 * same inputs with the same messages. */

/* Names the model part behind individual n's non-finite likelihood, on the
 * host with the host copies of the model and draws. */
static void diagnose(const iclv_cuda_engine *e, const double *theta, int n, char *buf, size_t len) {
  double *ev = e->h_ws;
  iclv_pair_ws pw;
  pw.eta = ev + e->K;
  pw.D = NULL;
  pw.D2 = NULL;
  pw.V = pw.eta + e->K;
  pw.gV = pw.V + iclv_vscratch_dim(e->hm); /* h_ws: 2K + Jv + JL (cuda_plan.c) */
  pw.HV = NULL;
  iclv_diagnose_individual(e->hm, e->hd, theta, n, ev, &pw, buf, len);
}

/* ---- model upload ------------------------------------------------------------------ */

/* Copies the parts (elements of `elem` bytes) into one host block, uploads
 * it to a device buffer named `name` and points the fields at it (NULL for
 * empty arrays, as on the host). */
static int upload_parts(iclv_cuda_engine *e, const char *name, iclv_model_part *parts, int n_parts,
                        size_t elem, void **dbuf, iclv_status *st) {
  size_t total = 0;
  char *stage = NULL;
  char *dev = NULL;
  for (int i = 0; i < n_parts; i++) total += iclv_cuda_pad32(parts[i].len);
  *dbuf = NULL;
  if (total == 0) {
    void *none = NULL;
    for (int i = 0; i < n_parts; i++) memcpy(parts[i].dst, &none, sizeof none);
    return ICLV_OK;
  }
  stage = (char *) calloc(total, elem);
  if (stage == NULL) return fail_msg(st, ICLV_ERR_MEMORY, "could not allocate host staging for the model upload");
  if (dev_alloc(e, name, total * elem, dbuf, st) != ICLV_OK) goto fail;
  dev = (char *) *dbuf;
  {
    size_t off = 0;
    for (int i = 0; i < n_parts; i++) {
      void *where = NULL;
      if (parts[i].len > 0) {
        memcpy(stage + off * elem, parts[i].src, parts[i].len * elem);
        where = dev + off * elem;
      }
      memcpy(parts[i].dst, &where, sizeof where); /* the field is a const T *; no aliasing cast */
      off += iclv_cuda_pad32(parts[i].len);
    }
  }
  ICLV_CUDA_TRY(st, cudaMemcpy(dev, stage, total * elem, cudaMemcpyHostToDevice));
  free(stage);
  return ICLV_OK;
fail:
  free(stage);
  return st->code;
}

/* Builds e->dm (device view of the model) and uploads its arrays, the
 * parts and lengths of the planner (iclv_cuda_model_parts). */
static int upload_model(iclv_cuda_engine *e, iclv_status *st) {
  iclv_model_part ip[ICLV_CUDA_INT_PARTS], dp[ICLV_CUDA_DBL_PARTS];
  e->dm = *e->hm; /* dimensions; pointers replaced below */
  iclv_cuda_model_parts(e->hm, &e->dm, ip, dp);
  void *buf = NULL;
  if (upload_parts(e, e->plan.dev[ICLV_CD_MODEL_INT].name, ip, ICLV_CUDA_INT_PARTS, sizeof(int),
                   &buf, st) != ICLV_OK)
    return st->code;
  e->d_int = (int *) buf;
  if (upload_parts(e, e->plan.dev[ICLV_CD_MODEL_DBL].name, dp, ICLV_CUDA_DBL_PARTS, sizeof(double),
                   &buf, st) != ICLV_OK)
    return st->code;
  e->d_dbl = (double *) buf;
  return ICLV_OK;
}

/* ---- launches ------------------------------------------------------------------------- */

/* Queues the LL (and with want_g the scores) of individuals n0 .. n0 + nh - 1:
 * k_pairs, then k_merge_split when the draws are split (no check). */
static void launch_pairs(const iclv_cuda_engine *e, int want_g, int n0, int nh) {
  dim3 grid((unsigned) (nh * e->plan.split)), block((unsigned) e->plan.threads);
  const int ldr = 1 + e->P;
  double *lli = e->d_out + ldr, *status = lli + e->cap;
  if (want_g)
    k_pairs<1><<<grid, block, e->plan.smem_pairs, e->stream>>>(
        e->dm, e->dd, e->d_theta, n0, e->plan.split, e->plan.draws_per_block, e->plan.rowlen, e->d_grows, e->d_rows,
        ldr, lli, e->d_lse, status, e->d_part);
  else
    k_pairs<0><<<grid, block, e->plan.smem_pairs, e->stream>>>(
        e->dm, e->dd, e->d_theta, n0, e->plan.split, e->plan.draws_per_block, e->plan.rowlen, e->d_grows, e->d_rows,
        ldr, lli, e->d_lse, status, e->d_part);
}

/* Queues k_reduce_groups for W columns of the leaf rows (no check). */
static void launch_reduce(const iclv_cuda_engine *e, const double *leaves, size_t ld, int W, int n0,
                          int nh, double *carry, double *sum) {
  const int per_block = ICLV_CUDA_AUX_BLOCK / 32;
  dim3 grid((unsigned) ((W + per_block - 1) / per_block));
  k_reduce_groups<<<grid, ICLV_CUDA_AUX_BLOCK, 0, e->stream>>>(leaves, ld, W, n0, nh, e->N,
                                                              e->dm.weight, carry, sum);
}

/* ---- creation ------------------------------------------------------------------------ */

extern "C" const iclv_mem_account *iclv_cuda_engine_memory(const iclv_cuda_engine *e) {
  return &e->acct;
}

extern "C" const iclv_mem_account *iclv_cuda_engine_host_memory(const iclv_cuda_engine *e) {
  return &e->hacct;
}

extern "C" void iclv_cuda_engine_chunking(const iclv_cuda_engine *e, int *per_chunk,
                                          int *n_chunks, double *dev_total,
                                          double *dev_free_at_start) {
  *per_chunk = e->per_chunk;
  *n_chunks = e->n_chunks;
  *dev_total = e->dev_total;
  *dev_free_at_start = e->dev_free;
}

extern "C" void iclv_cuda_engine_free(iclv_cuda_engine *e) {
  if (e == NULL) return;
  if (e->device >= 0) (void) cudaSetDevice(e->device);
  if (e->have_stream) (void) cudaStreamDestroy(e->stream);
  for (int i = 0; i < e->acct.n; i++)
    if (e->dbuf[i] != NULL) (void) cudaFree(e->dbuf[i]);
  for (int i = 0; i < e->n_hbuf; i++) (void) cudaFreeHost(e->hbuf[i]);
  free(e->h_ws);
  (void) cudaGetLastError(); /* leave no error behind for the next caller */
  free(e);
}

/* Allocates one device block of head + tail bytes, recorded as two account
 * entries (`head_name`, fixed, and `tail_name`, a chunk buffer); the second
 * entry holds no pointer (the block is freed once). */
static int dev_alloc2(iclv_cuda_engine *e, const char *head_name, size_t head, const char *tail_name,
                      size_t tail, void **out, iclv_status *st) {
  if (dev_alloc(e, head_name, head + tail, out, st) != ICLV_OK) return st->code;
  e->acct.bytes[e->acct.n - 1] = (double) head;
  e->acct.current -= (double) tail;
  if (account_add(e, tail_name, (double) tail, NULL, st) != ICLV_OK) return st->code;
  return ICLV_OK;
}

/* Frees the chunk buffers (the account's entries from chunk_first on) and
 * removes them from the account (the peak keeps them). */
static void chunk_release(iclv_cuda_engine *e) {
  if (e->chunk_first < 0) return;
  for (int i = e->acct.n - 1; i >= e->chunk_first; i--) {
    if (e->dbuf[i] != NULL) (void) cudaFree(e->dbuf[i]);
    e->dbuf[i] = NULL;
    e->acct.current -= e->acct.bytes[i];
  }
  e->acct.n = e->chunk_first;
  e->chunk_first = -1;
  e->d_out = e->d_lse = e->d_rows = e->d_part = e->d_grows = NULL;
  e->cap = 0;
}

/* Allocates the buffers of a chunk of `cap` individuals (the results block,
 * log-sum-exp, score rows, split states, global pair rows) as the last
 * entries of the account, and poisons what the kernels must overwrite (a
 * missed element is NaN, caught). On failure the caller frees the engine. */
static int chunk_alloc(iclv_cuda_engine *e, int cap, iclv_status *st) {
  void *p = NULL;
  const iclv_cuda_buf *pb = e->plan.dev;
  e->chunk_first = e->acct.n;
  e->cap = cap;
  {
    const size_t head = (size_t) iclv_cuda_buf_bytes(&pb[ICLV_CD_SUMS], cap);
    const size_t tail = (size_t) iclv_cuda_buf_bytes(&pb[ICLV_CD_LLSTATUS], cap);
    const size_t b_lse = (size_t) iclv_cuda_buf_bytes(&pb[ICLV_CD_LSE], cap);
    const size_t b_rows = (size_t) iclv_cuda_buf_bytes(&pb[ICLV_CD_SCORES], cap);
    const size_t b_part = (size_t) iclv_cuda_buf_bytes(&pb[ICLV_CD_PART], cap);
    if (dev_alloc2(e, pb[ICLV_CD_SUMS].name, head, pb[ICLV_CD_LLSTATUS].name, tail, &p, st) != ICLV_OK)
      goto fail;
    e->d_out = (double *) p;
    if (plan_alloc(e, ICLV_CD_LSE, cap, &p, st) != ICLV_OK) goto fail;
    e->d_lse = (double *) p;
    if (plan_alloc(e, ICLV_CD_SCORES, cap, &p, st) != ICLV_OK) goto fail;
    e->d_rows = (double *) p;
    if (plan_alloc(e, ICLV_CD_PART, cap, &p, st) != ICLV_OK) goto fail; /* none when B == 1 */
    e->d_part = (double *) p;
    if (plan_alloc(e, ICLV_CD_GROWS, cap, &p, st) != ICLV_OK) goto fail; /* none in shared memory */
    e->d_grows = (double *) p;
    /* poison what the kernels must overwrite: a missed element is NaN, caught */
    ICLV_CUDA_TRY(st, cudaMemset(e->d_out, 0xFF, head + tail));
    ICLV_CUDA_TRY(st, cudaMemset(e->d_rows, 0xFF, b_rows));
    ICLV_CUDA_TRY(st, cudaMemset(e->d_lse, 0xFF, b_lse));
    if (e->d_part) ICLV_CUDA_TRY(st, cudaMemset(e->d_part, 0xFF, b_part));
    ICLV_CUDA_TRY(st, cudaDeviceSynchronize());
  }
  return ICLV_OK;
fail:
  return st->code;
}

/* The device's shape, as the planner needs it (cuda_plan.h), for `device`
 * (made current): its properties, free memory and the kernels' attributes.
 * Returns ICLV_OK or ICLV_ERR_CUDA. */
static int device_shape(int device, iclv_cuda_shape *s, iclv_status *st) {
  cudaDeviceProp prop;
  cudaFuncAttributes fa[6];
  size_t free_b = 0, total_b = 0;
  memset(s, 0, sizeof(*s));
  ICLV_CUDA_TRY(st, cudaSetDevice(device));
  ICLV_CUDA_TRY(st, cudaGetDeviceProperties(&prop, device));
  ICLV_CUDA_TRY(st, cudaMemGetInfo(&free_b, &total_b));
  ICLV_CUDA_TRY(st, cudaFuncGetAttributes(&fa[0], (const void *) k_pairs<1>));
  ICLV_CUDA_TRY(st, cudaFuncGetAttributes(&fa[1], (const void *) k_pairs<0>));
  ICLV_CUDA_TRY(st, cudaFuncGetAttributes(&fa[2], (const void *) k_merge_split));
  ICLV_CUDA_TRY(st, cudaFuncGetAttributes(&fa[3], (const void *) k_reduce_groups));
  ICLV_CUDA_TRY(st, cudaFuncGetAttributes(&fa[4], (const void *) k_hess_pairs));
  ICLV_CUDA_TRY(st, cudaFuncGetAttributes(&fa[5], (const void *) k_hess_outer));
  snprintf(s->name, sizeof s->name, "%s", prop.name);
  s->known = 1;
  s->sms = prop.multiProcessorCount > 0 ? prop.multiProcessorCount : 1;
  s->threads_per_sm = prop.maxThreadsPerMultiProcessor;
  s->smem_optin = prop.sharedMemPerBlockOptin > prop.sharedMemPerBlock ? prop.sharedMemPerBlockOptin
                                                                       : prop.sharedMemPerBlock;
  s->local_frame = 0;
  for (int k = 0; k < 6; k++) {
    s->kernel_max_threads[k] = fa[k].maxThreadsPerBlock;
    if (fa[k].localSizeBytes > s->local_frame) s->local_frame = fa[k].localSizeBytes;
  }
  s->total_bytes = (double) total_b;
  s->free_bytes = (double) free_b;
  return ICLV_OK;
fail:
  return st->code;
}

/* ICLV_OK when device `device` exists, else ICLV_ERR_CUDA saying why. */
static int device_exists(int device, iclv_status *st) {
  int count = 0;
  cudaError_t err = cudaGetDeviceCount(&count);
  if (err != cudaSuccess) {
    (void) cudaGetLastError();
    st->code = ICLV_ERR_CUDA;
    snprintf(st->msg, ICLV_MSG_LEN,
             "no usable CUDA device: cudaGetDeviceCount failed at %s:%d: %s (%s)", __FILE__,
             __LINE__, cudaGetErrorString(err), cudaGetErrorName(err));
    return st->code;
  }
  if (count == 0) return fail_msg(st, ICLV_ERR_CUDA, "no usable CUDA device: none is present");
  if (device < 0 || device >= count) {
    st->code = ICLV_ERR_CUDA;
    snprintf(st->msg, ICLV_MSG_LEN, "CUDA device %d was requested, but %d device(s) exist (ordinals 0 to %d)",
             device, count, count - 1);
    return st->code;
  }
  return ICLV_OK;
}

extern "C" int iclv_cuda_device_shape(int device, iclv_cuda_shape *s, iclv_status *st) {
  st->code = ICLV_OK;
  st->msg[0] = '\0';
  if (device_exists(device, st) != ICLV_OK) return st->code;
  return device_shape(device, s, st);
}

extern "C" int iclv_cuda_engine_create(const iclv_model *m, const iclv_draws *d,
                                       const iclv_cuda_options *opt, iclv_cuda_engine **out,
                                       iclv_status *st) {
  iclv_cuda_engine *e = NULL;
  iclv_cuda_shape shape;
  void *p = NULL;
  *out = NULL;
  st->code = ICLV_OK;
  st->msg[0] = '\0';

  if (d->n_ind != m->n_ind || d->n_dim != m->n_lv)
    return fail_msg(st, ICLV_ERR_INPUT, "the draw design does not match the model (individuals or LVs)");
  if (iclv_draws_check(d, st) != ICLV_OK) return st->code;
  if (iclv_check_data(m, st) != ICLV_OK) return st->code;
  /* the device: say why when there is none */
  if (device_exists(opt->device, st) != ICLV_OK) return st->code;

  e = (iclv_cuda_engine *) calloc(1, sizeof(*e));
  if (e == NULL) return fail_msg(st, ICLV_ERR_MEMORY, "could not allocate the CUDA engine");
  e->device = -1;
  e->chunk_first = -1;
  e->hm = m;
  e->hd = d;
  e->N = m->n_ind;
  e->P = m->n_par;
  e->K = m->n_lv;
  e->R = d->n_draws;
  e->S = m->st_ptr[m->n_lv];
  e->J = m->n_alt > 0 ? m->n_alt : 1;
  for (int t = 0; t < e->S; t++)
    if (m->st_src_type[t] == ICLV_SRC_LV) e->has_lv_src = 1;

  if (device_shape(opt->device, &shape, st) != ICLV_OK) goto fail;
  e->device = opt->device;
  e->dev_total = shape.total_bytes;
  e->dev_free = shape.free_bytes;
  ICLV_CUDA_TRY(st, cudaStreamCreateWithFlags(&e->stream, cudaStreamNonBlocking));
  e->have_stream = 1;

  /* the plan: launch shape, buffers and chunk (independent of the chunk
   * except the chunk buffers themselves) */
  if (iclv_cuda_plan_make(m, d, &shape, opt->device_memory_budget, &e->plan, st) != ICLV_OK) goto fail;
  {
    const int need_threads[6] = {e->plan.threads, e->plan.threads, ICLV_CUDA_AUX_BLOCK, ICLV_CUDA_AUX_BLOCK,
                                 ICLV_CUDA_HESS_BLOCK, ICLV_CUDA_AUX_BLOCK};
    for (int k = 0; k < 6; k++) {
      if (shape.kernel_max_threads[k] < need_threads[k]) {
        st->code = ICLV_ERR_CUDA;
        snprintf(st->msg, ICLV_MSG_LEN,
                 "CUDA kernel %d of the engine cannot run %d threads per block on %s (at most %d)",
                 k, need_threads[k], shape.name, shape.kernel_max_threads[k]);
        goto fail;
      }
    }
  }
  if (e->plan.smem_pairs > 48 * 1024) {
    ICLV_CUDA_TRY(st, cudaFuncSetAttribute((const void *) k_pairs<1>,
                                           cudaFuncAttributeMaxDynamicSharedMemorySize,
                                           (int) e->plan.smem_pairs));
    ICLV_CUDA_TRY(st, cudaFuncSetAttribute((const void *) k_pairs<0>,
                                           cudaFuncAttributeMaxDynamicSharedMemorySize,
                                           (int) e->plan.smem_pairs));
  }
  if ((size_t) e->P * sizeof(double) > 48 * 1024)
    ICLV_CUDA_TRY(st, cudaFuncSetAttribute((const void *) k_hess_pairs,
                                           cudaFuncAttributeMaxDynamicSharedMemorySize,
                                           (int) ((size_t) e->P * sizeof(double))));
  if (e->plan.per_chunk < 1) {
    char b1[32], b2[32], b3[32], b4[32], b5[32];
    st->code = ICLV_ERR_MEMORY;
    snprintf(st->msg, ICLV_MSG_LEN,
             "the device memory budget of %s is too small for even one individual: the CUDA "
             "engine needs %s that do not depend on the chunk size (model and data, %s of user "
             "draws, %s of local scratch reserved by the driver, the Hessian's sums) plus %s per "
             "individual (R = %d draws, P = %d parameters, the Hessian's buffers included); "
             "raise device_memory in iclv_control() or use backend = \"cpu\"",
             fmt_bytes(e->plan.budget, b1, sizeof b1),
             fmt_bytes(e->plan.fixed_bytes + e->plan.hess_fixed_bytes, b2, sizeof b2),
             fmt_bytes(e->plan.dev[ICLV_CD_USER].fixed, b3, sizeof b3), fmt_bytes(e->plan.lmem, b4, sizeof b4),
             fmt_bytes(e->plan.per_ind_bytes + e->plan.hess_per_ind_bytes, b5, sizeof b5), e->R, e->P);
    goto fail;
  }
  e->per_chunk = e->plan.per_chunk;
  e->n_chunks = e->plan.n_chunks;

  /* device memory, in the plan's order: the model, user draws, theta, the
   * reduction carry, the local-memory reservation (recorded, not
   * allocated), then the chunk */
  if (upload_model(e, st) != ICLV_OK) goto fail;
  e->dd = *d;
  e->dd.user = NULL;
  if (plan_alloc(e, ICLV_CD_USER, 0, &p, st) != ICLV_OK) goto fail; /* none unless USER draws */
  e->d_user = (double *) p;
  if (e->d_user != NULL) {
    ICLV_CUDA_TRY(st, cudaMemcpy(e->d_user, d->user, (size_t) e->plan.dev[ICLV_CD_USER].fixed,
                                 cudaMemcpyHostToDevice));
    e->dd.user = e->d_user;
  }
  if (plan_alloc(e, ICLV_CD_THETA, 0, &p, st) != ICLV_OK) goto fail;
  e->d_theta = (double *) p;
  if (plan_alloc(e, ICLV_CD_CARRY, 0, &p, st) != ICLV_OK) goto fail;
  e->d_carry = (double *) p;
  if (account_add(e, e->plan.dev[ICLV_CD_LMEM].name, e->plan.lmem, NULL, st) != ICLV_OK) goto fail;
  if (chunk_alloc(e, e->per_chunk, st) != ICLV_OK) goto fail;

  /* pinned host staging and host scratch */
  if (host_alloc(e, ICLV_CH_THETA, &p, st) != ICLV_OK) goto fail;
  e->h_theta = (double *) p;
  if (host_alloc(e, ICLV_CH_OUT, &p, st) != ICLV_OK) goto fail;
  e->h_out = (double *) p;
  if (host_alloc(e, ICLV_CH_ROWS, &p, st) != ICLV_OK) goto fail;
  e->h_rows = (double *) p;
  if (host_alloc(e, ICLV_CH_HESS, &p, st) != ICLV_OK) goto fail;
  e->h_hess = (double *) p;
  if (host_alloc(e, ICLV_CH_HSTATUS, &p, st) != ICLV_OK) goto fail;
  e->h_hstatus = (int *) p;
  {
    const iclv_cuda_buf *b = &e->plan.host[ICLV_CH_SCRATCH];
    e->h_ws = (double *) calloc((size_t) b->fixed, 1);
    if (e->h_ws == NULL) {
      fail_msg(st, ICLV_ERR_MEMORY, "could not allocate the CUDA engine's host scratch");
      goto fail;
    }
    host_record(e, b->name, b->fixed);
  }
  *out = e;
  return ICLV_OK;

fail:
  iclv_cuda_engine_free(e);
  return st->code;
}

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
    chunk_release(e);
    if (chunk_alloc(e, e->per_chunk, st) != ICLV_OK) return st->code;
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
             fmt_bytes(e->plan.budget, b1, sizeof b1), fmt_bytes(e->plan.fixed_bytes, b4, sizeof b4),
             fmt_bytes(fixed, b2, sizeof b2), fmt_bytes(per + e->plan.per_ind_bytes, b3, sizeof b3), e->R,
             e->P);
    return st->code;
  }
  hb->per_chunk = fit >= (double) e->per_chunk ? e->per_chunk : (int) fit;
  if (hb->per_chunk < e->cap) {
    chunk_release(e);
    if (chunk_alloc(e, hb->per_chunk, st) != ICLV_OK) return st->code;
  }
  hb->first = e->acct.n;
  {
    const int C = hb->per_chunk;
    if (plan_alloc(e, ICLV_CD_HSUM, C, &p, st) != ICLV_OK) goto fail;
    hb->sum = (double *) p;
    if (plan_alloc(e, ICLV_CD_HCARRY, C, &p, st) != ICLV_OK) goto fail;
    hb->carry = (double *) p;
    if (plan_alloc(e, ICLV_CD_HROWS, C, &p, st) != ICLV_OK) goto fail;
    hb->arows = (double *) p;
    if (plan_alloc(e, ICLV_CD_HSLOT, C, &p, st) != ICLV_OK) goto fail;
    hb->slot = (double *) p;
    if (plan_alloc(e, ICLV_CD_HSCRATCH, C, &p, st) != ICLV_OK) goto fail;
    hb->scratch = (double *) p;
    if (plan_alloc(e, ICLV_CD_HSTATUS, C, &p, st) != ICLV_OK) goto fail;
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
  {
    dim3 grid((unsigned) (((size_t) n_here * D + ICLV_CUDA_HESS_BLOCK - 1) / ICLV_CUDA_HESS_BLOCK));
    dim3 block((unsigned) ICLV_CUDA_HESS_BLOCK);
    k_hess_pairs<<<grid, block, (size_t) P * sizeof(double), e->stream>>>(
        e->dm, e->dd, e->d_theta, n0, n_here, e->plan.hsplit, e->has_lv_src, e->d_lse, e->d_rows, 1 + P,
        hb->slot, hb->arows, hb->scratch, e->plan.hess_slot);
    ICLV_CUDA_CHECK_LAUNCH(st, "k_hess_pairs");
  }
  k_hess_outer<<<n_here, ICLV_CUDA_AUX_BLOCK, 0, e->stream>>>(hb->arows, e->R, P, e->plan.hsplit, hb->slot,
                                                                hb->status);
  ICLV_CUDA_CHECK_LAUNCH(st, "k_hess_outer");
  launch_reduce(e, hb->slot, D * PP, (int) PP, n0, n_here, hb->carry, hb->sum);
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
  if (e->chunk_first < 0 && chunk_alloc(e, e->per_chunk, st) != ICLV_OK) {
    chunk_release(e); /* a failed earlier restore: try again, else say so */
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
  if (P > 0) {
    memcpy(e->h_theta, theta, (size_t) P * sizeof(double));
    ICLV_CUDA_TRY(st, cudaMemcpyAsync(e->d_theta, e->h_theta, (size_t) P * sizeof(double),
                                      cudaMemcpyHostToDevice, e->stream));
  }
  ICLV_CUDA_TRY(st, cudaMemsetAsync(e->d_out, 0, (size_t) W * sizeof(double), e->stream));

  {
    const int n_chunks = (N + C - 1) / C;
    double *d_lli = e->d_out + 1 + P, *d_status = d_lli + e->cap;
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
      launch_pairs(e, want_g, n0, nh);
      ICLV_CUDA_CHECK_LAUNCH(st, "k_pairs");
      if (e->plan.split > 1) {
        k_merge_split<<<nh, ICLV_CUDA_AUX_BLOCK, 0, e->stream>>>(e->d_part, e->plan.split, P, e->R, want_g,
                                                                e->d_rows, 1 + P, d_lli, e->d_lse,
                                                                d_status);
        ICLV_CUDA_CHECK_LAUNCH(st, "k_merge_split");
      }
      launch_reduce(e, e->d_rows, (size_t) (1 + P), W, n0, nh, e->d_carry, e->d_out);
      ICLV_CUDA_CHECK_LAUNCH(st, "k_reduce_groups");
      if (want_h && queue_hessian_chunk(e, &hb, n0, nh, st) != ICLV_OK) goto fail;
      if (n_chunks == 1 && e->cap == N) {
        /* one copy: sums, lli and status are adjacent on both sides */
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
  }
  if (want_h)
    ICLV_CUDA_TRY(st, cudaMemcpyAsync(e->h_hess, hb.sum, (size_t) P * P * sizeof(double),
                                      cudaMemcpyDeviceToHost, e->stream));
  ICLV_CUDA_TRY(st, cudaStreamSynchronize(e->stream));
  if (want_h && hess_finish(e, &hb, st) != ICLV_OK) return st->code;

  /* the first bad individual in index order, as engine.c's report_bad */
  for (int n = 0; n < N; n++) {
    if (!isfinite(h_lli[n])) {
      char part[256];
      diagnose(e, theta, n, part, sizeof part);
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

/* ---- the device's draws ---------------------------------------------------------------- */

extern "C" int iclv_cuda_draws(const iclv_draws *d, int device, double *out, iclv_status *st) {
  iclv_draws dd = *d;
  double *d_out = NULL, *d_user = NULL;
  const size_t NR = (size_t) d->n_ind * (size_t) d->n_draws;
  const size_t len = NR * (size_t) d->n_dim;
  int count = 0;
  st->code = ICLV_OK;
  st->msg[0] = '\0';
  if (iclv_draws_check(d, st) != ICLV_OK) return st->code;
  if (cudaGetDeviceCount(&count) != cudaSuccess || count == 0) {
    (void) cudaGetLastError();
    return fail_msg(st, ICLV_ERR_CUDA, "no usable CUDA device");
  }
  if (device < 0 || device >= count) {
    st->code = ICLV_ERR_CUDA;
    snprintf(st->msg, ICLV_MSG_LEN, "CUDA device %d was requested, but %d device(s) exist", device, count);
    return st->code;
  }
  if (len == 0) return ICLV_OK;
  ICLV_CUDA_TRY(st, cudaSetDevice(device));
  ICLV_CUDA_TRY(st, cudaMalloc((void **) &d_out, len * sizeof(double)));
  if (d->type == ICLV_DRAWS_USER) {
    ICLV_CUDA_TRY(st, cudaMalloc((void **) &d_user, len * sizeof(double)));
    ICLV_CUDA_TRY(st, cudaMemcpy(d_user, d->user, len * sizeof(double), cudaMemcpyHostToDevice));
    dd.user = d_user;
  }
  k_draws<<<(unsigned) ((NR + ICLV_CUDA_DRAWS_BLOCK - 1) / ICLV_CUDA_DRAWS_BLOCK), ICLV_CUDA_DRAWS_BLOCK>>>(dd, d_out);
  ICLV_CUDA_CHECK_LAUNCH(st, "k_draws");
  ICLV_CUDA_TRY(st, cudaMemcpy(out, d_out, len * sizeof(double), cudaMemcpyDeviceToHost));
  cudaFree(d_out);
  cudaFree(d_user);
  return ICLV_OK;
fail:
  if (d_out) (void) cudaFree(d_out);
  if (d_user) (void) cudaFree(d_user);
  (void) cudaGetLastError();
  return st->code;
}
