/*
 * cuda_engine.cu -- the CUDA backend: simulated log-likelihood, analytic
 * gradient, per-individual scores and exact Hessian on one GPU. It mirrors
 * the CPU reference engine (engine.c) step by step and calls the very same
 * per-(individual, draw) code (iclv_core.h, draws.h) from device code.
 *
 * What one evaluation computes (engine.c's definitions):
 *   l_nr    = iclv_pair_eval(n, e_nr)                  (draws made in the kernel)
 *   lse_n   = logsumexp_r l_nr,  log L_n = lse_n - log R
 *   w_nr    = exp(l_nr - lse_n)
 *   s_n     = sum_r w_nr g_nr                          (g_nr = d l_nr / d theta)
 *   H_n     = sum_r w_nr hess l_nr + sum_r a_nr a_nr',  a_nr = sqrt(w_nr) (g_nr - s_n)
 *             (= sum_r w_nr (hess l_nr + g_nr g_nr') - s_n s_n')
 *   LL = sum_n log L_n, gradient = sum_n s_n,
 *   Hessian = sum_n H_n                                (all in individual order)
 *
 * Kernels, per chunk of individuals (all on one stream; see each kernel's
 * contract below):
 *   k_pair_loglik   grid (individual x split), threads along draws: l_nr
 *   k_logsumexp     one block per individual: lse_n, log L_n
 *   k_pair_scores   grid (individual x split): recomputes each pair with its
 *                   gradient, weights it by w_nr, sums over the block's draws
 *                   (fixed-order shuffle tree, then the warps in order)
 *   k_merge_split   (split > 1 only) adds the split's partial rows in block order
 *   k_sum_scores    gradient += scores of the chunk's individuals, in index order
 * and, for a Hessian request, after those:
 *   k_hess_pairs    one thread per individual, its draws in order: adds
 *                   w_nr hess l_nr into the individual's P x P slot (the
 *                   slot is shared by all its draws, so they are serialised)
 *                   and writes the rows a_nr (chunk buffer, R x P each)
 *   k_hess_outer    one block per individual: slot += sum_r a_nr a_nr' on the
 *                   lower triangle (4 x 4 tiles, one thread each, r in order)
 *   k_sum_hess      Hessian += the chunk's slots, in index order (lower triangle)
 * The host adds log L_n in index order and checks every individual, in index
 * order, exactly as engine.c's report_bad does (same messages).
 *
 * Determinism: no atomics anywhere; every sum has a fixed order that depends
 * only on R, on the split and block size chosen at creation from (N, R, the
 * device), never on the chunk size. Per-individual results do not depend on
 * which chunk holds the individual, and the gradient is a running sum over
 * individuals in index order across chunks (the CPU engine's order). So
 * repeated evaluations are bit-identical, and so are any two chunk sizes.
 * Against the CPU engine the results agree to rounding only (device
 * exp/log/erfc differ from glibc's by a few ulp; sums over draws are taken
 * in another order); the tests ask for 1e-12 relative.
 * The build uses -fmad=false so that a*b+c is rounded twice, as gcc does on
 * x86-64 without -mfma.
 *
 * The Hessian is engine.c's, step for step: the same per-pair code, the same
 * rows a_nr, the same 4 x 4 tile order over draws, the lower triangle summed
 * over individuals in index order and mirrored on the host. It is as
 * deterministic as the gradient (nothing depends on the chunk size); the
 * tests ask for 1e-10 relative to sqrt(|H_ii H_jj|) against the CPU engine.
 *
 * Memory: every device buffer is allocated once, at creation, and recorded
 * in the engine's iclv_mem_account; an evaluation allocates nothing. The
 * model's arrays are uploaded once (two packed buffers: ints and doubles);
 * draws are regenerated in the kernels with iclv_draw_normal() (a user array
 * is uploaded once). Buffers that scale with the individuals are sized for
 * one chunk of `per_chunk` individuals (their account names start with
 * "chunk:") and reused; per_chunk is the largest count whose total fits the
 * budget: total(c) = fixed + c * per_individual, exactly the recorded bytes.
 * The chunk is sized for the worst case, a Hessian evaluation (per
 * individual R x P rows, a P x P slot and the Hessian pair scratch), once at
 * creation; LL and gradient evaluations use the same chunks.
 *
 * Per-thread scratch of a pair (e, eta (K), D (K, S), V, gV (J), the
 * extended gradient g (P + K) and the thread's running score sum acc (P)):
 * in LOCAL memory, as a fixed-size array (template parameter CAP doubles)
 * when it fits CAP = 64 or 512 doubles, else in a global buffer with one
 * contiguous slot per thread. Why local memory: the core functions index
 * their vectors with unit stride (g[i]), so a global slot per thread makes
 * the 32 threads of a warp, which all update the same index i at the same
 * time (same individual, same model structure), touch 32 different sectors.
 * Local memory is interleaved by the hardware (word i of consecutive threads
 * at consecutive addresses), so the same code gets coalesced accesses, cached
 * in L1. Its cost is the driver's reservation, about (bytes per thread) x
 * (resident threads per SM) x (SMs), which is estimated from the kernels'
 * attributes, included in the budget and recorded in the account. The
 * global fallback (models with 2P + 2K + KS + 2J > 512, e.g. P > ~240) is
 * correct but slower.
 *
 * Register pressure: iclv_pair_eval with the gradient is the heavy part.
 * ptxas (CUDA 13.0, sm_90 and sm_80, -O3 -fmad=false) gives k_pair_scores
 * 96 registers with 40-56 bytes of spills, k_pair_loglik 72 registers: up to
 * 5 blocks of 128 threads per SM by registers, so occupancy is limited by
 * the problem's size (N x R pairs), not by the kernels. __launch_bounds__(128)
 * keeps every kernel launchable with 128 threads; nothing else is forced
 * (bench/README.md shows how to read the counts with -Xptxas -v).
 * k_hess_pairs (pair code with gradient and Hessian, scratch in a global
 * slot per individual): 128 registers, 16-byte frame, no spills, on sm_90
 * and sm_80; k_hess_outer 72 registers, no spills.
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
#include "cuda_backend.h"
#include "cuda_util.cuh"

/* ---- tuning constants (fixed: the reduction orders depend on them) ------- */

#define ICLV_CUDA_MAX_BLOCK 128        /* threads of a pair block (a multiple of 32, at most) */
#define ICLV_CUDA_MAX_WARPS (ICLV_CUDA_MAX_BLOCK / 32)
#define ICLV_CUDA_LSE_BLOCK 128        /* threads of a log-sum-exp block (a power of 2) */
#define ICLV_CUDA_AUX_BLOCK 128        /* threads of the merge and column-sum kernels */
#define ICLV_CUDA_ROW_TILE 64          /* parameters per step of the block reduction */
#define ICLV_CUDA_MIN_DRAWS_SPLIT 32   /* no block of a split individual gets fewer draws */
#define ICLV_CUDA_BLOCKS_PER_SM 4      /* split individuals while N < this x SMs */
#define ICLV_CUDA_CAP_SMALL 64         /* local scratch capacities, doubles per thread */
#define ICLV_CUDA_CAP_LARGE 512
#define ICLV_CUDA_THETA_SHARED_MAX 32768 /* theta goes to shared memory up to this many bytes */
#define ICLV_CUDA_MAX_HOST 8           /* pinned host buffers */
#define ICLV_CUDA_HESS_BLOCK 32        /* threads (= individuals) of a k_hess_pairs block */

/* ---- the engine ------------------------------------------------------------ */

struct iclv_cuda_engine {
  const iclv_model *hm;   /* host model (R memory; outlives the engine) */
  const iclv_draws *hd;   /* host draw design */
  iclv_model dm;          /* the same model with device pointers (kernel argument) */
  iclv_draws dd;          /* the design with a device `user` pointer (kernel argument) */
  int device;             /* CUDA ordinal */
  int N, P, K, R, S, J;   /* individuals, parameters, LVs, draws, structural terms, max(1, n_alt) */
  int has_lv_src;         /* some structural term has an LV source (D2 needed for the Hessian) */
  int split;              /* B: blocks per individual in the pair kernels */
  int draws_per_block;    /* ceil(R / B) */
  int threads;            /* T: threads of a pair block, multiple of 32, <= ICLV_CUDA_MAX_BLOCK */
  int cap_ll, cap_gr;     /* local scratch capacity (doubles) of each pair kernel; 0: global slot */
  size_t slot;            /* doubles per thread slot of the global scratch (0: not used) */
  size_t hess_slot;       /* doubles of Hessian pair scratch per individual (k_hess_pairs) */
  size_t theta_smem;      /* dynamic shared bytes for theta in the pair kernels (0: read global) */
  int per_chunk;          /* individuals per chunk */
  int n_chunks;
  int sms;                /* multiprocessors of the device */
  double dev_total, dev_free; /* cudaMemGetInfo at creation */
  double fixed_bytes, per_ind_bytes; /* the budget's model: total = fixed + per_chunk * per_ind */
  iclv_mem_account acct;
  void *dbuf[ICLV_MAX_BUFFERS];   /* device allocations, index-aligned with acct (NULL: none) */
  void *hbuf[ICLV_CUDA_MAX_HOST]; /* pinned host allocations */
  int n_hbuf;
  cudaStream_t stream;
  int have_stream;
  iclv_poll_fn poll;      /* interrupt poll between chunks (host, calling thread), or NULL */
  void *poll_ctx;         /* its argument */

  /* device buffers (pointers into dbuf) */
  int *d_int;        /* packed int arrays of the model */
  double *d_dbl;     /* packed double arrays of the model */
  double *d_user;    /* (N, R, K) user draws, column-major, or NULL */
  double *d_theta;   /* (P) */
  double *d_grad;    /* (P) running gradient sum */
  double *d_l;       /* (per_chunk, R) row-major l_nr */
  double *d_lse;     /* (per_chunk) logsumexp_r l_nr */
  double *d_lli;     /* (per_chunk) log L_n */
  int *d_status;     /* (per_chunk) 1 when s_n is not finite */
  double *d_scores;  /* (per_chunk, P) row-major s_n */
  double *d_part;    /* (per_chunk, B, P) row-major partial score rows, or NULL when B == 1 */
  double *d_scratch; /* (per_chunk * B * T, slot) global pair scratch, or NULL */
  double *d_hess;    /* (P, P) column-major running Hessian sum (lower triangle) */
  double *d_arows;   /* (per_chunk, R, P) row-major rows sqrt(w_r) (g_r - s_n) */
  double *d_hslot;   /* (per_chunk, P, P) column-major per-individual Hessians */
  double *d_hscratch; /* (per_chunk, hess_slot) Hessian pair scratch, one slot per individual */
  int *d_hstatus;    /* (per_chunk) 1 when the individual's Hessian is not finite */

  /* pinned host staging */
  double *h_theta;   /* (P) */
  double *h_grad;    /* (P) */
  double *h_lli;     /* (N) */
  int *h_status;     /* (N) */
  double *h_scores;  /* (per_chunk, P) row-major */
  double *h_hess;    /* (P, P) column-major */
  int *h_hstatus;    /* (N) */
  /* plain host scratch for naming the model part at fault (diagnose) */
  double *h_ws;      /* (2K + 2J) */
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

/* Pinned host memory (page-locked, for asynchronous copies); not device
 * memory, so not in the device account. */
static int host_alloc(iclv_cuda_engine *e, size_t bytes, void **out, iclv_status *st) {
  *out = NULL;
  if (bytes == 0) return ICLV_OK;
  if (e->n_hbuf >= ICLV_CUDA_MAX_HOST)
    return fail_msg(st, ICLV_ERR_MEMORY, "the CUDA engine has more pinned buffers than it tracks");
  void *p = NULL;
  ICLV_CUDA_TRY(st, cudaMallocHost(&p, bytes));
  e->hbuf[e->n_hbuf++] = p;
  *out = p;
  return ICLV_OK;
fail:
  return st->code;
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
  pw.gV = pw.V + e->J;
  pw.HV = NULL;
  iclv_diagnose_individual(e->hm, e->hd, theta, n, ev, &pw, buf, len);
}

/* ---- device helpers ------------------------------------------------------------ */

extern __shared__ double iclv_dyn_shared[]; /* dynamic shared memory: theta (P) */

/* theta for the block: copied into dynamic shared memory when the launch
 * gave it room (in_shared != 0), else the global copy. Every thread of the
 * block must call it (it synchronises). */
__device__ static inline const double *block_theta(const double *theta, int P, int in_shared) {
  if (!in_shared) return theta;
  for (int p = threadIdx.x; p < P; p += blockDim.x) iclv_dyn_shared[p] = theta[p];
  __syncthreads();
  return iclv_dyn_shared;
}

/* Sum over the 32 lanes of a warp in a fixed tree (offsets 16, 8, 4, 2, 1);
 * the result is in lane 0. All 32 lanes must call it. */
__device__ static inline double warp_sum(double v) {
  for (int off = 16; off > 0; off >>= 1) v += __shfl_down_sync(0xffffffffu, v, off);
  return v;
}

/* out[p] = sum over the block's threads of acc[p], p = 0..P-1, in a fixed
 * order: a shuffle tree within each warp, then the warps in index order.
 * When bad_out != NULL, *bad_out = 1 if some out[p] is not finite, else 0.
 * Every thread of the block must call it; blockDim.x is a multiple of 32
 * and at most ICLV_CUDA_MAX_BLOCK. */
__device__ static void block_sum_rows(const double *acc, int P, double *__restrict__ out,
                                      int *bad_out) {
  __shared__ double part[ICLV_CUDA_MAX_WARPS][ICLV_CUDA_ROW_TILE];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, n_warps = blockDim.x >> 5;
  int bad = 0;
  for (int p0 = 0; p0 < P; p0 += ICLV_CUDA_ROW_TILE) {
    const int np = P - p0 < ICLV_CUDA_ROW_TILE ? P - p0 : ICLV_CUDA_ROW_TILE;
    for (int q = 0; q < np; q++) {
      double v = warp_sum(acc[p0 + q]);
      if (lane == 0) part[warp][q] = v;
    }
    __syncthreads();
    for (int q = threadIdx.x; q < np; q += blockDim.x) {
      double s = part[0][q];
      for (int w = 1; w < n_warps; w++) s += part[w][q];
      out[p0 + q] = s;
      if (!isfinite(s)) bad = 1;
    }
    __syncthreads();
  }
  if (bad_out != NULL) {
    int any = __syncthreads_or(bad);
    if (threadIdx.x == 0) *bad_out = any ? 1 : 0;
  }
}

/* ---- kernels ---------------------------------------------------------------------- */

/* k_pair_loglik: l_nr of every pair of a chunk.
 *   grid:  n_here * split blocks; block b of individual i = n - n0 is
 *          blockIdx.x = i * split + b and takes draws [b * rb, min(R, (b+1) * rb))
 *   block: T threads (multiple of 32); thread t takes draws r0 + t, r0 + t + T, ...
 *   dynamic shared memory: P doubles when theta_in_shared, else 0
 *   in:    m, d (device views), theta (P)
 *   out:   l_out (n_here, R) row-major: l_out[i * R + r] = l_{n0+i, r}
 *   scratch: CAP doubles of local memory per thread (CAP > 0), or the
 *          thread's slot of gscratch (slot doubles, CAP == 0): e, eta (K), V, gV (J). */
template <int CAP>
__global__ void __launch_bounds__(ICLV_CUDA_MAX_BLOCK)
k_pair_loglik(const __grid_constant__ iclv_model m, const __grid_constant__ iclv_draws d,
              const double *__restrict__ theta_g, int theta_in_shared, int n0, int split, int rb,
              double *__restrict__ l_out, double *__restrict__ gscratch, size_t slot) {
  const int i = blockIdx.x / split, b = blockIdx.x % split;
  const int n = n0 + i, R = d.n_draws, K = m.n_lv, J = m.n_alt > 0 ? m.n_alt : 1;
  const double *theta = block_theta(theta_g, m.n_par, theta_in_shared);
  double lbuf[CAP > 0 ? CAP : 1];
  double *ws = CAP > 0 ? lbuf : gscratch + ((size_t) blockIdx.x * blockDim.x + threadIdx.x) * slot;
  double *ev = ws, *eta = ev + K, *V = eta + K, *gV = V + J;
  iclv_pair_ws pw;
  pw.eta = eta;
  pw.D = NULL;
  pw.D2 = NULL;
  pw.V = V;
  pw.gV = gV;
  pw.HV = NULL;
  const int r_end = (int) ((long long) (b + 1) * rb < R ? (long long) (b + 1) * rb : R);
  for (int r = b * rb + (int) threadIdx.x; r < r_end; r += blockDim.x) {
    for (int k = 0; k < K; k++) ev[k] = iclv_draw_normal(&d, n, r, k);
    l_out[(size_t) i * R + r] = iclv_pair_eval(&m, theta, n, ev, &pw, NULL, NULL);
  }
}

/* k_logsumexp: lse_n and log L_n of every individual of a chunk, as
 * numerics.h iclv_logsumexp (NaN if any l is NaN; +-Inf when the max is).
 *   grid:  n_here blocks (block i = individual n0 + i)
 *   block: ICLV_CUDA_LSE_BLOCK threads; thread t takes r = t, t + T, ... in order,
 *          then a fixed shared-memory tree (max, then the sum of exp(l - max))
 *   in:    l (n_here, R) row-major
 *   out:   lse_out[i] = logsumexp_r l[i, r]; lli_out[i] = lse_out[i] - log R */
__global__ void __launch_bounds__(ICLV_CUDA_LSE_BLOCK)
k_logsumexp(const double *__restrict__ l, int R, double *__restrict__ lse_out,
            double *__restrict__ lli_out) {
  __shared__ double sh[ICLV_CUDA_LSE_BLOCK];
  const int t = threadIdx.x;
  const double *li = l + (size_t) blockIdx.x * R;
  double mx = -INFINITY;
  int nan = 0;
  for (int r = t; r < R; r += blockDim.x) {
    double v = li[r];
    if (v != v) nan = 1;
    else if (v > mx) mx = v;
  }
  const int any_nan = __syncthreads_or(nan);
  sh[t] = mx;
  __syncthreads();
  for (int s = blockDim.x / 2; s > 0; s >>= 1) {
    if (t < s && sh[t + s] > sh[t]) sh[t] = sh[t + s];
    __syncthreads();
  }
  mx = sh[0];
  __syncthreads();
  double lse;
  if (any_nan) {
    lse = NAN;
  } else if (mx == -INFINITY || mx == INFINITY) {
    lse = mx;
  } else {
    double acc = 0.0;
    for (int r = t; r < R; r += blockDim.x) acc += exp(li[r] - mx);
    sh[t] = acc;
    __syncthreads();
    for (int s = blockDim.x / 2; s > 0; s >>= 1) {
      if (t < s) sh[t] += sh[t + s];
      __syncthreads();
    }
    lse = mx + log(sh[0]);
  }
  if (t == 0) {
    lse_out[blockIdx.x] = lse;
    lli_out[blockIdx.x] = lse - log((double) R);
  }
}

/* k_pair_scores: weighted gradient sums of every (individual, split part).
 *   grid, block, shared memory, draws per thread: as k_pair_loglik
 *   in:    m, d, theta (P); l (n_here, R) from k_pair_loglik; lse (n_here)
 *   out:   rows (n_here * split, P) row-major: row blockIdx.x = i * split + b
 *          holds sum over the block's draws r of w_r g_r[p], w_r = exp(l_r - lse_i)
 *          (draws with w_r == 0 skipped, as engine.c does); when split == 1
 *          these rows are the scores and status[i] = 1 if one is not finite.
 *   scratch: local CAP doubles (or a global slot): e, eta (K), D (K, S), V, gV (J),
 *          g (P + K), acc (P). */
template <int CAP>
__global__ void __launch_bounds__(ICLV_CUDA_MAX_BLOCK)
k_pair_scores(const __grid_constant__ iclv_model m, const __grid_constant__ iclv_draws d,
              const double *__restrict__ theta_g, int theta_in_shared, int n0, int split, int rb,
              const double *__restrict__ l, const double *__restrict__ lse_in,
              double *__restrict__ rows, int *__restrict__ status, double *__restrict__ gscratch,
              size_t slot) {
  const int i = blockIdx.x / split, b = blockIdx.x % split;
  const int n = n0 + i, R = d.n_draws, K = m.n_lv, P = m.n_par;
  const int S = m.st_ptr[K], J = m.n_alt > 0 ? m.n_alt : 1;
  const double *theta = block_theta(theta_g, P, theta_in_shared);
  double lbuf[CAP > 0 ? CAP : 1];
  double *ws = CAP > 0 ? lbuf : gscratch + ((size_t) blockIdx.x * blockDim.x + threadIdx.x) * slot;
  double *ev = ws, *eta = ev + K, *D = eta + K, *V = D + (size_t) K * S, *gV = V + J;
  double *g = gV + J, *acc = g + P + K;
  iclv_pair_ws pw;
  pw.eta = eta;
  pw.D = D;
  pw.D2 = NULL;
  pw.V = V;
  pw.gV = gV;
  pw.HV = NULL;
  for (int p = 0; p < P; p++) acc[p] = 0.0;
  const double lse = lse_in[i];
  const double *li = l + (size_t) i * R;
  const int r_end = (int) ((long long) (b + 1) * rb < R ? (long long) (b + 1) * rb : R);
  for (int r = b * rb + (int) threadIdx.x; r < r_end; r += blockDim.x) {
    for (int k = 0; k < K; k++) ev[k] = iclv_draw_normal(&d, n, r, k);
    iclv_pair_eval(&m, theta, n, ev, &pw, g, NULL);
    const double w = exp(li[r] - lse);
    if (w == 0.0) continue;
    for (int p = 0; p < P; p++) acc[p] += w * g[p];
  }
  block_sum_rows(acc, P, rows + (size_t) blockIdx.x * P, split == 1 ? status + i : NULL);
}

/* k_merge_split: scores of individuals whose draws were split over blocks.
 *   grid:  n_here blocks; block: ICLV_CUDA_AUX_BLOCK threads over p
 *   in:    part (n_here, split, P) row-major from k_pair_scores
 *   out:   scores[i, p] = part[i, 0, p] + part[i, 1, p] + ... (in block order);
 *          status[i] = 1 if some scores[i, .] is not finite, else 0 */
__global__ void __launch_bounds__(ICLV_CUDA_AUX_BLOCK)
k_merge_split(const double *__restrict__ part, int split, int P, double *__restrict__ scores,
              int *__restrict__ status) {
  const int i = blockIdx.x;
  int bad = 0;
  for (int p = threadIdx.x; p < P; p += blockDim.x) {
    const double *src = part + (size_t) i * split * P + p;
    double s = src[0];
    for (int b = 1; b < split; b++) s += src[(size_t) b * P];
    scores[(size_t) i * P + p] = s;
    if (!isfinite(s)) bad = 1;
  }
  int any = __syncthreads_or(bad);
  if (threadIdx.x == 0) status[i] = any ? 1 : 0;
}

/* k_sum_scores: grad[p] += scores[0, p] + scores[1, p] + ... + scores[n_here-1, p],
 * added one individual at a time in index order (engine.c's order), so the
 * running sum over chunks equals the sum over all individuals in order.
 *   grid:  ceil(P / ICLV_CUDA_AUX_BLOCK) blocks; thread = parameter p
 *   in:    scores (n_here, P) row-major; out: grad (P), updated in place */
__global__ void __launch_bounds__(ICLV_CUDA_AUX_BLOCK)
k_sum_scores(const double *__restrict__ scores, int n_here, int P, double *__restrict__ grad) {
  const int p = blockIdx.x * blockDim.x + threadIdx.x;
  if (p >= P) return;
  double a = grad[p];
  for (int i = 0; i < n_here; i++) a += scores[(size_t) i * P + p];
  grad[p] = a;
}

/* ---- Hessian kernels ------------------------------------------------------------------ */

/* k_hess_pairs: the draw-by-draw part of each individual's Hessian, and the
 * rows of its outer-product part (engine.c individual_eval, Hessian pass).
 * iclv_pair_eval() adds w_r hess l_nr into ONE P x P slot per individual,
 * so the draws of an individual are serialised: one thread per individual,
 * draws r = 0, 1, ..., R - 1 in order (no two threads write the same slot).
 *   grid:  ceil(n_here / ICLV_CUDA_HESS_BLOCK) blocks; block: ICLV_CUDA_HESS_BLOCK
 *          threads; thread = individual i = blockIdx.x * blockDim.x + threadIdx.x
 *          (threads with i >= n_here only help to load theta)
 *   dynamic shared memory: P doubles when theta_in_shared, else 0
 *   in:    m, d (device views), theta (P); l (n_here, R) row-major from
 *          k_pair_loglik; lse (n_here) from k_logsumexp; scores (n_here, P)
 *          row-major s_n from k_pair_scores / k_merge_split
 *   out:   hslot (n_here, P, P): slot i (column-major, ZEROED by the caller)
 *          += sum_r w_r hess l_nr, w_r = exp(l_r - lse_i), draws with
 *          w_r == 0 skipped (as engine.c);
 *          arows (n_here, R, P) row-major: row (i, r) = sqrt(w_r) (g_r - s_i),
 *          0 when w_r == 0 (engine.c's rows a_r), every row written; NaN rows
 *          (and nothing in hslot) when lse_i is not finite (the host reports
 *          that individual's log-likelihood first)
 *   scratch: the individual's slot of gscratch (slot doubles): e, eta (K),
 *          D (K, S), D2 (K, S, S) when has_lv_src, V, gV (J), HV (J, J),
 *          g (P + K), Hpe (P, K), Hee (K, K). */
__global__ void __launch_bounds__(ICLV_CUDA_HESS_BLOCK)
k_hess_pairs(const __grid_constant__ iclv_model m, const __grid_constant__ iclv_draws d,
             const double *__restrict__ theta_g, int theta_in_shared, int n0, int n_here,
             int has_lv_src, const double *__restrict__ l, const double *__restrict__ lse_in,
             const double *__restrict__ scores, double *hslot, double *arows, double *gscratch,
             size_t slot) {
  const int P = m.n_par, K = m.n_lv, R = d.n_draws, J = m.n_alt > 0 ? m.n_alt : 1;
  const double *theta = block_theta(theta_g, P, theta_in_shared);
  const int i = (int) (blockIdx.x * blockDim.x + threadIdx.x);
  if (i >= n_here) return;
  const int n = n0 + i, S = m.st_ptr[K];
  double *ws = gscratch + (size_t) i * slot;
  double *ev = ws, *eta = ev + K, *D = eta + K;
  double *D2 = D + (size_t) K * S;
  double *V = D2 + (has_lv_src ? (size_t) K * S * S : 0);
  double *gV = V + J, *HV = gV + J, *g = HV + (size_t) J * J;
  double *Hpe = g + P + K, *Hee = Hpe + (size_t) P * K;
  iclv_pair_ws pw;
  pw.eta = eta;
  pw.D = D;
  pw.D2 = has_lv_src ? D2 : NULL;
  pw.V = V;
  pw.gV = gV;
  pw.HV = HV;
  iclv_hess h;
  h.P = P;
  h.K = K;
  h.w = 0.0;
  h.Hpp = hslot + (size_t) i * P * P;
  h.Hpe = Hpe;
  h.Hee = Hee;
  const double lse = lse_in[i];
  const double *li = l + (size_t) i * R;
  const double *s = scores + (size_t) i * P;
  double *a = arows + (size_t) i * R * P;
  if (!isfinite(lse)) {
    for (size_t q = 0; q < (size_t) R * P; q++) a[q] = NAN;
    return;
  }
  for (int r = 0; r < R; r++, a += P) {
    const double w = exp(li[r] - lse);
    if (w == 0.0) {
      for (int p = 0; p < P; p++) a[p] = 0.0;
      continue;
    }
    for (int k = 0; k < K; k++) ev[k] = iclv_draw_normal(&d, n, r, k);
    h.w = w;
    iclv_pair_eval(&m, theta, n, ev, &pw, g, &h);
    const double sw = sqrt(w);
    for (int p = 0; p < P; p++) a[p] = sw * (g[p] - s[p]);
  }
}

/* k_hess_outer: slot i's lower triangle (diagonal included) += sum_r a_r a_r'
 * over the rows a_r = arows (i, r, .), as engine.c's syrk_lower: the lower
 * triangle in 4 x 4 tiles, each tile owned by one thread, which sums over
 * r = 0, 1, ..., R - 1 in order from 0 and then adds the tile into the slot
 * (so the per-individual result does not depend on the launch). Then checks
 * every element of the slot.
 *   grid:  n_here blocks (block i = individual n0 + i); block: ICLV_CUDA_AUX_BLOCK
 *          threads; thread t takes tiles t, t + T, ... of the lower tiles,
 *          enumerated column by column (tile column tj, rows ti >= tj)
 *   in:    arows (n_here, R, P) row-major from k_hess_pairs
 *   out:   hslot (n_here, P, P) column-major, lower triangle updated in place;
 *          hstatus[i] = 1 if some element of slot i is not finite, else 0 */
__global__ void __launch_bounds__(ICLV_CUDA_AUX_BLOCK)
k_hess_outer(const double *__restrict__ arows, int R, int P, double *__restrict__ hslot,
             int *__restrict__ hstatus) {
  const int i = blockIdx.x;
  const double *A = arows + (size_t) i * R * P;
  double *H = hslot + (size_t) i * P * P;
  const int nb = (P + 3) / 4;
  int q = 0;
  for (int tj = 0; tj < nb; tj++) {
    for (int ti = tj; ti < nb; ti++, q++) {
      if (q % (int) blockDim.x != (int) threadIdx.x) continue;
      const int r0 = 4 * ti, c0 = 4 * tj;
      const int ni = P - r0 < 4 ? P - r0 : 4, nj = P - c0 < 4 ? P - c0 : 4;
      double c[4][4] = {{0.0, 0.0, 0.0, 0.0}, {0.0, 0.0, 0.0, 0.0},
                        {0.0, 0.0, 0.0, 0.0}, {0.0, 0.0, 0.0, 0.0}};
      for (int r = 0; r < R; r++) {
        const double *ar = A + (size_t) r * P;
        double x[4], y[4];
        for (int u = 0; u < 4; u++) {
          x[u] = u < ni ? ar[r0 + u] : 0.0;
          y[u] = u < nj ? ar[c0 + u] : 0.0;
        }
        for (int jj = 0; jj < 4; jj++)
          for (int ii = 0; ii < 4; ii++) c[ii][jj] += x[ii] * y[jj];
      }
      for (int jj = 0; jj < nj; jj++)
        for (int ii = 0; ii < ni; ii++)
          if (r0 + ii >= c0 + jj) H[(r0 + ii) + (size_t) P * (c0 + jj)] += c[ii][jj];
    }
  }
  __syncthreads(); /* the block's writes to the slot are visible below */
  int bad = 0;
  for (size_t e = threadIdx.x; e < (size_t) P * P; e += blockDim.x)
    if (!isfinite(H[e])) bad = 1;
  const int any = __syncthreads_or(bad);
  if (threadIdx.x == 0) hstatus[i] = any ? 1 : 0;
}

/* k_sum_hess: hess[c] += hslot[0, c] + hslot[1, c] + ... + hslot[n_here-1, c]
 * for the cells c = row + P col of the lower triangle (row >= col), added one
 * individual at a time in index order (engine.c's order), so the running sum
 * over chunks is the sum over all individuals in order. The upper triangle
 * of hess is not touched (the host mirrors the lower one, as engine.c).
 *   grid:  ceil(P * P / ICLV_CUDA_AUX_BLOCK) blocks; thread = cell c
 *   in:    hslot (n_here, P, P); out: hess (P, P) column-major, updated in place */
__global__ void __launch_bounds__(ICLV_CUDA_AUX_BLOCK)
k_sum_hess(const double *__restrict__ hslot, int n_here, int P, double *__restrict__ hess) {
  const size_t c = (size_t) blockIdx.x * blockDim.x + threadIdx.x;
  const size_t PP = (size_t) P * P;
  if (c >= PP || (int) (c % P) < (int) (c / P)) return;
  double a = hess[c];
  for (int i = 0; i < n_here; i++) a += hslot[(size_t) i * PP + c];
  hess[c] = a;
}

/* ---- kernel selection by scratch capacity ------------------------------------------ */

/* Smallest local capacity holding `need` doubles, or 0 (global slot). */
static int choose_cap(size_t need) {
  if (need <= ICLV_CUDA_CAP_SMALL) return ICLV_CUDA_CAP_SMALL;
  if (need <= ICLV_CUDA_CAP_LARGE) return ICLV_CUDA_CAP_LARGE;
  return 0;
}

static const void *pair_loglik_fn(int cap) {
  if (cap == ICLV_CUDA_CAP_SMALL) return (const void *) k_pair_loglik<ICLV_CUDA_CAP_SMALL>;
  if (cap == ICLV_CUDA_CAP_LARGE) return (const void *) k_pair_loglik<ICLV_CUDA_CAP_LARGE>;
  return (const void *) k_pair_loglik<0>;
}

static const void *pair_scores_fn(int cap) {
  if (cap == ICLV_CUDA_CAP_SMALL) return (const void *) k_pair_scores<ICLV_CUDA_CAP_SMALL>;
  if (cap == ICLV_CUDA_CAP_LARGE) return (const void *) k_pair_scores<ICLV_CUDA_CAP_LARGE>;
  return (const void *) k_pair_scores<0>;
}

/* Launches k_pair_loglik for individuals n0 .. n0 + n_here - 1 (no check). */
static void launch_pair_loglik(const iclv_cuda_engine *e, int n0, int n_here) {
  dim3 grid((unsigned) (n_here * e->split)), block((unsigned) e->threads);
  int in_sh = e->theta_smem > 0;
  switch (e->cap_ll) {
  case ICLV_CUDA_CAP_SMALL:
    k_pair_loglik<ICLV_CUDA_CAP_SMALL><<<grid, block, e->theta_smem, e->stream>>>(
        e->dm, e->dd, e->d_theta, in_sh, n0, e->split, e->draws_per_block, e->d_l, e->d_scratch,
        e->slot);
    break;
  case ICLV_CUDA_CAP_LARGE:
    k_pair_loglik<ICLV_CUDA_CAP_LARGE><<<grid, block, e->theta_smem, e->stream>>>(
        e->dm, e->dd, e->d_theta, in_sh, n0, e->split, e->draws_per_block, e->d_l, e->d_scratch,
        e->slot);
    break;
  default:
    k_pair_loglik<0><<<grid, block, e->theta_smem, e->stream>>>(
        e->dm, e->dd, e->d_theta, in_sh, n0, e->split, e->draws_per_block, e->d_l, e->d_scratch,
        e->slot);
  }
}

/* Launches k_pair_scores for individuals n0 .. n0 + n_here - 1 (no check). */
static void launch_pair_scores(const iclv_cuda_engine *e, int n0, int n_here) {
  dim3 grid((unsigned) (n_here * e->split)), block((unsigned) e->threads);
  int in_sh = e->theta_smem > 0;
  double *rows = e->split == 1 ? e->d_scores : e->d_part;
  switch (e->cap_gr) {
  case ICLV_CUDA_CAP_SMALL:
    k_pair_scores<ICLV_CUDA_CAP_SMALL><<<grid, block, e->theta_smem, e->stream>>>(
        e->dm, e->dd, e->d_theta, in_sh, n0, e->split, e->draws_per_block, e->d_l, e->d_lse, rows,
        e->d_status, e->d_scratch, e->slot);
    break;
  case ICLV_CUDA_CAP_LARGE:
    k_pair_scores<ICLV_CUDA_CAP_LARGE><<<grid, block, e->theta_smem, e->stream>>>(
        e->dm, e->dd, e->d_theta, in_sh, n0, e->split, e->draws_per_block, e->d_l, e->d_lse, rows,
        e->d_status, e->d_scratch, e->slot);
    break;
  default:
    k_pair_scores<0><<<grid, block, e->theta_smem, e->stream>>>(
        e->dm, e->dd, e->d_theta, in_sh, n0, e->split, e->draws_per_block, e->d_l, e->d_lse, rows,
        e->d_status, e->d_scratch, e->slot);
  }
}

/* ---- model upload ------------------------------------------------------------------ */

/* One array of the model: host source, length, and the field of the device
 * view that receives its device address. */
typedef struct {
  const void *src; /* host array (NULL when len == 0) */
  size_t len;      /* elements */
  void *dst;       /* address of the pointer field of e->dm that receives the device address */
} model_part;

/* Offsets are rounded up to 32 elements (128 or 256 bytes) so that every
 * array starts on a cache line. */
static size_t pad32(size_t n) { return (n + 31) / 32 * 32; }

/* Copies the parts (elements of `elem` bytes) into one host block, uploads
 * it to a device buffer named `name` and points the fields at it (NULL for
 * empty arrays, as on the host). */
static int upload_parts(iclv_cuda_engine *e, const char *name, model_part *parts, int n_parts,
                        size_t elem, void **dbuf, iclv_status *st) {
  size_t total = 0;
  char *stage = NULL;
  char *dev = NULL;
  for (int i = 0; i < n_parts; i++) total += pad32(parts[i].len);
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
      off += pad32(parts[i].len);
    }
  }
  ICLV_CUDA_TRY(st, cudaMemcpy(dev, stage, total * elem, cudaMemcpyHostToDevice));
  free(stage);
  return ICLV_OK;
fail:
  free(stage);
  return st->code;
}

/* Builds e->dm (device view of the model) and uploads its arrays. */
static int upload_model(iclv_cuda_engine *e, iclv_status *st) {
  const iclv_model *m = e->hm;
  iclv_model *dm = &e->dm;
  *dm = *m; /* dimensions; pointers replaced below */
  size_t N = (size_t) m->n_ind, K = (size_t) m->n_lv, M = (size_t) m->n_indic;
  size_t S = (size_t) m->st_ptr[m->n_lv], L = (size_t) m->ind_load_ptr[m->n_indic];
  size_t J = (size_t) m->n_alt, U = (size_t) m->ut_ptr[m->n_alt];
#define IPART(field, len) { (const void *) m->field, (size_t) (len), (void *) &dm->field }
  model_part ip[] = {
    IPART(lv_order, K), IPART(st_ptr, K + 1), IPART(st_par, S), IPART(st_src_type, S),
    IPART(st_src, S), IPART(ind_type, M), IPART(ind_ncat, M), IPART(ind_thr, M),
    IPART(ind_icpt, M), IPART(ind_sd, M), IPART(ind_load_ptr, M + 1), IPART(ind_load_lv, L),
    IPART(ind_load_par, L), IPART(obs_ptr, N + 1), IPART(obs_ind, m->n_obs),
    IPART(row_ptr, N + 1), IPART(y, m->n_rows), IPART(avail, m->n_avail),
    IPART(ut_ptr, J + 1), IPART(ut_par, U), IPART(ut_col, U), IPART(ut_lv, U)
  };
  model_part dp[] = {
    IPART(cov, N * (size_t) m->n_cov), IPART(obs_val, m->n_obs),
    IPART(X, (size_t) m->n_rows * (size_t) m->n_xcol)
  };
#undef IPART
  void *buf = NULL;
  if (upload_parts(e, "model_int_arrays", ip, (int) (sizeof ip / sizeof ip[0]), sizeof(int), &buf,
                   st) != ICLV_OK)
    return st->code;
  e->d_int = (int *) buf;
  if (upload_parts(e, "model_double_arrays", dp, (int) (sizeof dp / sizeof dp[0]), sizeof(double),
                   &buf, st) != ICLV_OK)
    return st->code;
  e->d_dbl = (double *) buf;
  return ICLV_OK;
}

/* ---- creation ------------------------------------------------------------------------ */

extern "C" const iclv_mem_account *iclv_cuda_engine_memory(const iclv_cuda_engine *e) {
  return &e->acct;
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

/* Blocks per individual B, draws per block and threads per block T, from
 * the whole problem (never from the chunk: the reduction order depends on
 * them). Individuals are split while N < ICLV_CUDA_BLOCKS_PER_SM x SMs, as
 * long as each block keeps at least ICLV_CUDA_MIN_DRAWS_SPLIT draws; T is
 * the draws per block rounded up to a warp, at most ICLV_CUDA_MAX_BLOCK. */
static void choose_split(iclv_cuda_engine *e) {
  const long target = (long) ICLV_CUDA_BLOCKS_PER_SM * e->sms;
  long B = 1;
  if (e->N < target) {
    long want = (target + e->N - 1) / e->N;        /* blocks per individual to fill the GPU */
    long most = e->R / ICLV_CUDA_MIN_DRAWS_SPLIT;   /* keeps >= ICLV_CUDA_MIN_DRAWS_SPLIT draws each */
    B = want < most ? want : most;
    if (B < 1) B = 1;
  }
  int rb = (int) ((e->R + B - 1) / B);
  int split = (e->R + rb - 1) / rb; /* no empty block */
  int T = (rb + 31) / 32 * 32;
  if (T > ICLV_CUDA_MAX_BLOCK) T = ICLV_CUDA_MAX_BLOCK;
  e->split = split;
  e->draws_per_block = rb;
  e->threads = T;
}

extern "C" int iclv_cuda_engine_create(const iclv_model *m, const iclv_draws *d,
                                       const iclv_cuda_options *opt, iclv_cuda_engine **out,
                                       iclv_status *st) {
  iclv_cuda_engine *e = NULL;
  int count = 0;
  size_t free_b = 0, total_b = 0;
  cudaDeviceProp prop;
  cudaFuncAttributes fa_ll, fa_gr, fa_hp, fa_ho, fa_hs;
  double budget = 0.0, lmem = 0.0, user_bytes = 0.0;
  size_t need_ll = 0, need_gr = 0;
  void *p = NULL;
  *out = NULL;
  st->code = ICLV_OK;
  st->msg[0] = '\0';

  if (d->n_ind != m->n_ind || d->n_dim != m->n_lv)
    return fail_msg(st, ICLV_ERR_INPUT, "the draw design does not match the model (individuals or LVs)");
  if (iclv_draws_check(d, st) != ICLV_OK) return st->code;
  if (iclv_check_data(m, st) != ICLV_OK) return st->code;

  /* the device: say why when there is none */
  {
    cudaError_t err = cudaGetDeviceCount(&count);
    if (err != cudaSuccess) {
      (void) cudaGetLastError();
      st->code = ICLV_ERR_CUDA;
      snprintf(st->msg, ICLV_MSG_LEN,
               "no usable CUDA device: cudaGetDeviceCount failed at %s:%d: %s (%s)", __FILE__,
               __LINE__, cudaGetErrorString(err), cudaGetErrorName(err));
      return st->code;
    }
  }
  if (count == 0) return fail_msg(st, ICLV_ERR_CUDA, "no usable CUDA device: none is present");
  if (opt->device < 0 || opt->device >= count) {
    st->code = ICLV_ERR_CUDA;
    snprintf(st->msg, ICLV_MSG_LEN, "CUDA device %d was requested, but %d device(s) exist (ordinals 0 to %d)",
             opt->device, count, count - 1);
    return st->code;
  }

  e = (iclv_cuda_engine *) calloc(1, sizeof(*e));
  if (e == NULL) return fail_msg(st, ICLV_ERR_MEMORY, "could not allocate the CUDA engine");
  e->device = -1;
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

  ICLV_CUDA_TRY(st, cudaSetDevice(opt->device));
  e->device = opt->device;
  ICLV_CUDA_TRY(st, cudaGetDeviceProperties(&prop, opt->device));
  ICLV_CUDA_TRY(st, cudaMemGetInfo(&free_b, &total_b));
  e->dev_total = (double) total_b;
  e->dev_free = (double) free_b;
  e->sms = prop.multiProcessorCount > 0 ? prop.multiProcessorCount : 1;
  ICLV_CUDA_TRY(st, cudaStreamCreateWithFlags(&e->stream, cudaStreamNonBlocking));
  e->have_stream = 1;

  /* launch shape and scratch placement (independent of the chunk) */
  choose_split(e);
  need_ll = 2 * (size_t) e->K + 2 * (size_t) e->J;
  need_gr = 2 * (size_t) e->K + (size_t) e->K * e->S + 2 * (size_t) e->J + (size_t) (e->P + e->K) +
            (size_t) e->P;
  e->cap_ll = choose_cap(need_ll);
  e->cap_gr = choose_cap(need_gr);
  e->slot = 0;
  if (e->cap_ll == 0 && need_ll > e->slot) e->slot = need_ll;
  if (e->cap_gr == 0 && need_gr > e->slot) e->slot = need_gr;
  e->theta_smem = (size_t) e->P * sizeof(double) <= ICLV_CUDA_THETA_SHARED_MAX
                      ? (size_t) e->P * sizeof(double) : 0;
  /* the Hessian's pair scratch (k_hess_pairs): always a global slot per
   * individual (Hpe alone is P x K doubles) */
  e->hess_slot = 2 * (size_t) e->K + (size_t) e->K * e->S +
                 (e->has_lv_src ? (size_t) e->K * e->S * e->S : 0) + 2 * (size_t) e->J +
                 (size_t) e->J * e->J + (size_t) (e->P + e->K) + (size_t) e->P * e->K +
                 (size_t) e->K * e->K;
  ICLV_CUDA_TRY(st, cudaFuncGetAttributes(&fa_ll, pair_loglik_fn(e->cap_ll)));
  ICLV_CUDA_TRY(st, cudaFuncGetAttributes(&fa_gr, pair_scores_fn(e->cap_gr)));
  ICLV_CUDA_TRY(st, cudaFuncGetAttributes(&fa_hp, (const void *) k_hess_pairs));
  ICLV_CUDA_TRY(st, cudaFuncGetAttributes(&fa_ho, (const void *) k_hess_outer));
  ICLV_CUDA_TRY(st, cudaFuncGetAttributes(&fa_hs, (const void *) k_sum_hess));
  if (fa_ll.maxThreadsPerBlock < e->threads || fa_gr.maxThreadsPerBlock < e->threads) {
    st->code = ICLV_ERR_CUDA;
    snprintf(st->msg, ICLV_MSG_LEN,
             "the pair kernels cannot run %d threads per block on %s (at most %d and %d)",
             e->threads, prop.name, fa_ll.maxThreadsPerBlock, fa_gr.maxThreadsPerBlock);
    goto fail;
  }
  if (fa_hp.maxThreadsPerBlock < ICLV_CUDA_HESS_BLOCK || fa_ho.maxThreadsPerBlock < ICLV_CUDA_AUX_BLOCK ||
      fa_hs.maxThreadsPerBlock < ICLV_CUDA_AUX_BLOCK) {
    st->code = ICLV_ERR_CUDA;
    snprintf(st->msg, ICLV_MSG_LEN,
             "the Hessian kernels cannot run %d and %d threads per block on %s (at most %d, %d "
             "and %d)", ICLV_CUDA_HESS_BLOCK, ICLV_CUDA_AUX_BLOCK, prop.name,
             fa_hp.maxThreadsPerBlock, fa_ho.maxThreadsPerBlock, fa_hs.maxThreadsPerBlock);
    goto fail;
  }
  /* local memory the driver reserves, context-wide, for the largest frame
   * of the kernels: local bytes per thread x maximum resident threads per
   * SM x SMs (NVIDIA's description of current drivers; it is resized, not
   * freed, between launches) */
  {
    size_t frame = fa_ll.localSizeBytes;
    if (fa_gr.localSizeBytes > frame) frame = fa_gr.localSizeBytes;
    if (fa_hp.localSizeBytes > frame) frame = fa_hp.localSizeBytes;
    if (fa_ho.localSizeBytes > frame) frame = fa_ho.localSizeBytes;
    if (fa_hs.localSizeBytes > frame) frame = fa_hs.localSizeBytes;
    lmem = (double) frame * (double) prop.maxThreadsPerMultiProcessor * (double) e->sms;
  }

  /* device memory: the model, user draws, theta and gradient ... */
  if (upload_model(e, st) != ICLV_OK) goto fail;
  e->dd = *d;
  e->dd.user = NULL;
  if (d->type == ICLV_DRAWS_USER) {
    size_t nb = (size_t) e->N * (size_t) e->R * (size_t) e->K * sizeof(double);
    user_bytes = (double) nb;
    if (dev_alloc(e, "user_draws", nb, &p, st) != ICLV_OK) goto fail;
    e->d_user = (double *) p;
    if (nb > 0) ICLV_CUDA_TRY(st, cudaMemcpy(e->d_user, d->user, nb, cudaMemcpyHostToDevice));
    e->dd.user = e->d_user;
  }
  if (dev_alloc(e, "theta", (size_t) e->P * sizeof(double), &p, st) != ICLV_OK) goto fail;
  e->d_theta = (double *) p;
  if (dev_alloc(e, "gradient_sum", (size_t) e->P * sizeof(double), &p, st) != ICLV_OK) goto fail;
  e->d_grad = (double *) p;
  if (dev_alloc(e, "hessian_sum", (size_t) e->P * e->P * sizeof(double), &p, st) != ICLV_OK) goto fail;
  e->d_hess = (double *) p;
  if (account_add(e, "local_memory_reserved_estimate", lmem, NULL, st) != ICLV_OK) goto fail;

  /* ... then the chunk: as many individuals as the budget allows. The
   * chunk is sized once, here, for the worst case, an evaluation with the
   * Hessian (its per-draw rows, P x P slot and pair scratch per individual),
   * and every evaluation uses it: iclv() asks for the Hessian at the optimum
   * by default, so a fit that cannot hold it should fail here, not after the
   * optimisation. */
  e->fixed_bytes = e->acct.current;
  e->per_ind_bytes = (double) sizeof(double) * ((double) e->R + 2.0 + (double) e->P +
                                                (e->split > 1 ? (double) e->split * e->P : 0.0)) +
                     (double) sizeof(int) +
                     (double) sizeof(double) * (double) e->split * e->threads * (double) e->slot +
                     (double) sizeof(double) * ((double) e->R * e->P + (double) e->P * e->P +
                                                (double) e->hess_slot) +
                     (double) sizeof(int);
  budget = opt->device_memory_budget > 0 ? opt->device_memory_budget : 0.8 * e->dev_free;
  {
    double fit = floor((budget - e->fixed_bytes) / e->per_ind_bytes);
    if (!(fit >= 1.0)) {
      char b1[32], b2[32], b3[32], b4[32], b5[32];
      st->code = ICLV_ERR_MEMORY;
      snprintf(st->msg, ICLV_MSG_LEN,
               "the device memory budget of %s is too small for even one individual: the CUDA "
               "engine needs %s that do not depend on the chunk size (model and data, %s of user "
               "draws, %s of local scratch reserved by the driver) plus %s per individual (R = %d "
               "draws, P = %d parameters, Hessian buffers included); raise device_memory in "
               "iclv_control() or use backend = \"cpu\"",
               fmt_bytes(budget, b1, sizeof b1), fmt_bytes(e->fixed_bytes, b2, sizeof b2),
               fmt_bytes(user_bytes, b3, sizeof b3), fmt_bytes(lmem, b4, sizeof b4),
               fmt_bytes(e->per_ind_bytes, b5, sizeof b5), e->R, e->P);
      goto fail;
    }
    double most = (double) INT_MAX / (double) e->split; /* grid.x = per_chunk * split */
    if (fit > most) fit = most;
    e->per_chunk = fit >= (double) e->N ? e->N : (int) fit;
  }
  e->n_chunks = (e->N + e->per_chunk - 1) / e->per_chunk;
  {
    size_t C = (size_t) e->per_chunk, R = (size_t) e->R, P = (size_t) e->P;
    size_t B = (size_t) e->split, T = (size_t) e->threads;
    if (dev_alloc(e, "chunk:pair_loglik", C * R * sizeof(double), &p, st) != ICLV_OK) goto fail;
    e->d_l = (double *) p;
    if (dev_alloc(e, "chunk:logsumexp", C * sizeof(double), &p, st) != ICLV_OK) goto fail;
    e->d_lse = (double *) p;
    if (dev_alloc(e, "chunk:loglik_i", C * sizeof(double), &p, st) != ICLV_OK) goto fail;
    e->d_lli = (double *) p;
    if (dev_alloc(e, "chunk:score_status", C * sizeof(int), &p, st) != ICLV_OK) goto fail;
    e->d_status = (int *) p;
    if (dev_alloc(e, "chunk:scores", C * P * sizeof(double), &p, st) != ICLV_OK) goto fail;
    e->d_scores = (double *) p;
    if (B > 1) {
      if (dev_alloc(e, "chunk:score_partials", C * B * P * sizeof(double), &p, st) != ICLV_OK) goto fail;
      e->d_part = (double *) p;
    }
    if (e->slot > 0) {
      if (dev_alloc(e, "chunk:pair_scratch", C * B * T * e->slot * sizeof(double), &p, st) != ICLV_OK)
        goto fail;
      e->d_scratch = (double *) p;
    }
    if (dev_alloc(e, "chunk:hessian_draw_rows", C * R * P * sizeof(double), &p, st) != ICLV_OK)
      goto fail;
    e->d_arows = (double *) p;
    if (dev_alloc(e, "chunk:hessian_by_individual", C * P * P * sizeof(double), &p, st) != ICLV_OK)
      goto fail;
    e->d_hslot = (double *) p;
    if (dev_alloc(e, "chunk:hessian_pair_scratch", C * e->hess_slot * sizeof(double), &p, st) != ICLV_OK)
      goto fail;
    e->d_hscratch = (double *) p;
    if (dev_alloc(e, "chunk:hessian_status", C * sizeof(int), &p, st) != ICLV_OK) goto fail;
    e->d_hstatus = (int *) p;
    /* poison what the kernels must overwrite: a missed element is NaN, caught */
    if (e->d_l) ICLV_CUDA_TRY(st, cudaMemset(e->d_l, 0xFF, C * R * sizeof(double)));
    if (e->d_lse) ICLV_CUDA_TRY(st, cudaMemset(e->d_lse, 0xFF, C * sizeof(double)));
    if (e->d_lli) ICLV_CUDA_TRY(st, cudaMemset(e->d_lli, 0xFF, C * sizeof(double)));
    if (e->d_scores) ICLV_CUDA_TRY(st, cudaMemset(e->d_scores, 0xFF, C * P * sizeof(double)));
    if (e->d_part) ICLV_CUDA_TRY(st, cudaMemset(e->d_part, 0xFF, C * B * P * sizeof(double)));
    if (e->d_arows) ICLV_CUDA_TRY(st, cudaMemset(e->d_arows, 0xFF, C * R * P * sizeof(double)));
    if (e->d_hslot) ICLV_CUDA_TRY(st, cudaMemset(e->d_hslot, 0xFF, C * P * P * sizeof(double)));
    if (e->d_hstatus) ICLV_CUDA_TRY(st, cudaMemset(e->d_hstatus, 0xFF, C * sizeof(int)));
    ICLV_CUDA_TRY(st, cudaDeviceSynchronize());
  }

  /* pinned host staging and host scratch */
  if (host_alloc(e, (size_t) e->P * sizeof(double), &p, st) != ICLV_OK) goto fail;
  e->h_theta = (double *) p;
  if (host_alloc(e, (size_t) e->P * sizeof(double), &p, st) != ICLV_OK) goto fail;
  e->h_grad = (double *) p;
  if (host_alloc(e, (size_t) e->N * sizeof(double), &p, st) != ICLV_OK) goto fail;
  e->h_lli = (double *) p;
  if (host_alloc(e, (size_t) e->N * sizeof(int), &p, st) != ICLV_OK) goto fail;
  e->h_status = (int *) p;
  if (host_alloc(e, (size_t) e->per_chunk * e->P * sizeof(double), &p, st) != ICLV_OK) goto fail;
  e->h_scores = (double *) p;
  if (host_alloc(e, (size_t) e->P * e->P * sizeof(double), &p, st) != ICLV_OK) goto fail;
  e->h_hess = (double *) p;
  if (host_alloc(e, (size_t) e->N * sizeof(int), &p, st) != ICLV_OK) goto fail;
  e->h_hstatus = (int *) p;
  e->h_ws = (double *) calloc(2 * (size_t) e->K + 2 * (size_t) e->J, sizeof(double));
  if (e->h_ws == NULL) {
    fail_msg(st, ICLV_ERR_MEMORY, "could not allocate the CUDA engine's host scratch");
    goto fail;
  }
  *out = e;
  return ICLV_OK;

fail:
  iclv_cuda_engine_free(e);
  return st->code;
}

/* ---- evaluation ------------------------------------------------------------------------- */

/* Queues the Hessian of individuals n0 .. n0 + n_here - 1 (one chunk) on the
 * engine's stream, after the chunk's l, lse and scores: zeroes the slots,
 * k_hess_pairs, k_hess_outer, k_sum_hess (d_hess += the slots in index
 * order), and the copy of the chunk's Hessian statuses into h_hstatus + n0.
 * Requires P > 0. Returns ICLV_OK, or ICLV_ERR_CUDA for a failed launch or
 * call (queued work is not waited for: the caller synchronises). */
static int queue_hessian_chunk(iclv_cuda_engine *e, int n0, int n_here, iclv_status *st) {
  const int P = e->P;
  const size_t PP = (size_t) P * P;
  ICLV_CUDA_TRY(st, cudaMemsetAsync(e->d_hslot, 0, (size_t) n_here * PP * sizeof(double), e->stream));
  {
    dim3 grid((unsigned) ((n_here + ICLV_CUDA_HESS_BLOCK - 1) / ICLV_CUDA_HESS_BLOCK));
    dim3 block((unsigned) ICLV_CUDA_HESS_BLOCK);
    k_hess_pairs<<<grid, block, e->theta_smem, e->stream>>>(
        e->dm, e->dd, e->d_theta, e->theta_smem > 0, n0, n_here, e->has_lv_src, e->d_l, e->d_lse,
        e->d_scores, e->d_hslot, e->d_arows, e->d_hscratch, e->hess_slot);
    ICLV_CUDA_CHECK_LAUNCH(st, "k_hess_pairs");
  }
  k_hess_outer<<<n_here, ICLV_CUDA_AUX_BLOCK, 0, e->stream>>>(e->d_arows, e->R, P, e->d_hslot,
                                                                e->d_hstatus);
  ICLV_CUDA_CHECK_LAUNCH(st, "k_hess_outer");
  {
    dim3 grid((unsigned) ((PP + ICLV_CUDA_AUX_BLOCK - 1) / ICLV_CUDA_AUX_BLOCK));
    k_sum_hess<<<grid, ICLV_CUDA_AUX_BLOCK, 0, e->stream>>>(e->d_hslot, n_here, P, e->d_hess);
    ICLV_CUDA_CHECK_LAUNCH(st, "k_sum_hess");
  }
  ICLV_CUDA_TRY(st, cudaMemcpyAsync(e->h_hstatus + n0, e->d_hstatus, (size_t) n_here * sizeof(int),
                                    cudaMemcpyDeviceToHost, e->stream));
  return ICLV_OK;
fail:
  return st->code;
}

extern "C" void iclv_cuda_engine_set_poll(iclv_cuda_engine *e, iclv_poll_fn poll, void *ctx) {
  e->poll = poll;
  e->poll_ctx = poll ? ctx : NULL;
}

extern "C" int iclv_cuda_eval(iclv_cuda_engine *e, const double *theta, iclv_eval_out *out,
                              iclv_status *st) {
  const int N = e->N, P = e->P;
  int want_g = 0, want_h = 0;
  st->code = ICLV_OK;
  st->msg[0] = '\0';
  if (iclv_check_theta(e->hm, theta, st) != ICLV_OK) return st->code;
  want_h = out->hess != NULL && P > 0;
  want_g = want_h || out->grad != NULL || out->scores != NULL;

  ICLV_CUDA_TRY(st, cudaSetDevice(e->device));
  if (P > 0) {
    memcpy(e->h_theta, theta, (size_t) P * sizeof(double));
    ICLV_CUDA_TRY(st, cudaMemcpyAsync(e->d_theta, e->h_theta, (size_t) P * sizeof(double),
                                      cudaMemcpyHostToDevice, e->stream));
    if (want_g) ICLV_CUDA_TRY(st, cudaMemsetAsync(e->d_grad, 0, (size_t) P * sizeof(double), e->stream));
    if (want_h)
      ICLV_CUDA_TRY(st, cudaMemsetAsync(e->d_hess, 0, (size_t) P * P * sizeof(double), e->stream));
  }

  for (int c = 0; c < e->n_chunks; c++) {
    const int n0 = c * e->per_chunk;
    const int nh = N - n0 < e->per_chunk ? N - n0 : e->per_chunk;
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
    launch_pair_loglik(e, n0, nh);
    ICLV_CUDA_CHECK_LAUNCH(st, "k_pair_loglik");
    k_logsumexp<<<nh, ICLV_CUDA_LSE_BLOCK, 0, e->stream>>>(e->d_l, e->R, e->d_lse, e->d_lli);
    ICLV_CUDA_CHECK_LAUNCH(st, "k_logsumexp");
    ICLV_CUDA_TRY(st, cudaMemcpyAsync(e->h_lli + n0, e->d_lli, (size_t) nh * sizeof(double),
                                      cudaMemcpyDeviceToHost, e->stream));
    if (!want_g) continue;
    launch_pair_scores(e, n0, nh);
    ICLV_CUDA_CHECK_LAUNCH(st, "k_pair_scores");
    if (e->split > 1) {
      k_merge_split<<<nh, ICLV_CUDA_AUX_BLOCK, 0, e->stream>>>(e->d_part, e->split, P, e->d_scores,
                                                               e->d_status);
      ICLV_CUDA_CHECK_LAUNCH(st, "k_merge_split");
    }
    if (P > 0) {
      k_sum_scores<<<(P + ICLV_CUDA_AUX_BLOCK - 1) / ICLV_CUDA_AUX_BLOCK, ICLV_CUDA_AUX_BLOCK, 0,
                     e->stream>>>(e->d_scores, nh, P, e->d_grad);
      ICLV_CUDA_CHECK_LAUNCH(st, "k_sum_scores");
    }
    ICLV_CUDA_TRY(st, cudaMemcpyAsync(e->h_status + n0, e->d_status, (size_t) nh * sizeof(int),
                                      cudaMemcpyDeviceToHost, e->stream));
    if (want_h && queue_hessian_chunk(e, n0, nh, st) != ICLV_OK) goto fail;
    if (out->scores != NULL && P > 0) {
      /* the staging holds one chunk: wait for it, then transpose into the
       * caller's column-major (N, P) */
      ICLV_CUDA_TRY(st, cudaMemcpyAsync(e->h_scores, e->d_scores, (size_t) nh * P * sizeof(double),
                                        cudaMemcpyDeviceToHost, e->stream));
      ICLV_CUDA_TRY(st, cudaStreamSynchronize(e->stream));
      for (int i = 0; i < nh; i++)
        for (int p = 0; p < P; p++)
          out->scores[(size_t) (n0 + i) + (size_t) N * p] = e->h_scores[(size_t) i * P + p];
    }
  }
  if (want_g && P > 0)
    ICLV_CUDA_TRY(st, cudaMemcpyAsync(e->h_grad, e->d_grad, (size_t) P * sizeof(double),
                                      cudaMemcpyDeviceToHost, e->stream));
  if (want_h)
    ICLV_CUDA_TRY(st, cudaMemcpyAsync(e->h_hess, e->d_hess, (size_t) P * P * sizeof(double),
                                      cudaMemcpyDeviceToHost, e->stream));
  ICLV_CUDA_TRY(st, cudaStreamSynchronize(e->stream));

  /* the first bad individual in index order, as engine.c's report_bad */
  for (int n = 0; n < N; n++) {
    if (!isfinite(e->h_lli[n])) {
      char part[256];
      diagnose(e, theta, n, part, sizeof part);
      st->code = ICLV_ERR_NUMERIC;
      snprintf(st->msg, ICLV_MSG_LEN, "the simulated %s of individual %d is not finite (%s)",
               "log-likelihood", n + 1, part);
      return st->code;
    }
    if (want_g && e->h_status[n] != 0) {
      st->code = ICLV_ERR_NUMERIC;
      snprintf(st->msg, ICLV_MSG_LEN,
               "the simulated %s of individual %d is not finite (log L = %g)", "gradient", n + 1,
               e->h_lli[n]);
      return st->code;
    }
    if (want_h && e->h_hstatus[n] != 0) {
      st->code = ICLV_ERR_NUMERIC;
      snprintf(st->msg, ICLV_MSG_LEN,
               "the simulated %s of individual %d is not finite (log L = %g)", "Hessian", n + 1,
               e->h_lli[n]);
      return st->code;
    }
  }

  /* serial sums in index order (engine.c's order) */
  {
    double ll = 0.0;
    for (int n = 0; n < N; n++) ll += e->h_lli[n];
    *out->loglik = ll;
  }
  if (out->loglik_i) memcpy(out->loglik_i, e->h_lli, (size_t) N * sizeof(double));
  if (out->grad) {
    if (P > 0) memcpy(out->grad, e->h_grad, (size_t) P * sizeof(double));
  }
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
  return st->code;
}
