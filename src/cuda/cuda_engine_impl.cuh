/*
 * cuda_engine_impl.cuh -- the CUDA backend: simulated log-likelihood, analytic
 * gradient, per-individual scores and exact Hessian on one GPU. It mirrors
 * the CPU reference engine (engine.c) step by step and calls the very same
 * per-(individual, draw) code (iclv_core.h, draws.h) from device code; the
 * backend is split by role:
 *   cuda_plan.c          the plan: launch shape, every buffer, the chunking
 *                        (plain C, shared with iclv_memory_plan());
 *   cuda_engine.cu       creation: device queries, the account, buffers,
 *                        model upload, release;
 *   cuda_launch.cu       the kernels (cuda_kernels.cuh, their contracts
 *                        naming the CPU code they mirror) and every launch,
 *                        the only translation unit that sees them;
 *   cuda_eval.cu         one evaluation: chunks, the Hessian's buffers,
 *                        copies back, checks of the results.
 * This header is their shared contract: the engine's state and the
 * functions one file calls in another.
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
 * CUDA graphs (cuda_eval.cu): an LL or LL + gradient request without scores
 * or Hessian whose individuals fit one chunk (the optimizer's evaluations)
 * is the fixed sequence theta in, zero the sums, k_pairs, k_merge_split
 * (split only), k_reduce_groups, results out. It is captured from the
 * stream once per want_g and instantiated (graph[want_g]); later requests
 * copy theta into the pinned h_theta, launch the graph and synchronise:
 * one launch instead of five or six calls, the same kernels with the same
 * arguments, so the results are bit-identical to the queued calls'. A graph
 * holds the addresses of h_theta, d_theta, the chunk buffers, d_carry and
 * h_out: ce_chunk_release and iclv_cuda_engine_free destroy the graphs
 * before they free any buffer, so no graph outlives a buffer it names (the
 * chunk layout of a live graph is the one it was captured with). Failures
 * to capture, instantiate or launch are ICLV_ERR_CUDA like any other call;
 * there is no silent fallback. Debugging knob, read at creation:
 * ICLV_CUDA_GRAPHS=0 in the environment makes the engine queue the calls
 * every time (unset or 1: graphs; anything else is an input error).
 * Test hook, read at creation: ICLV_CUDA_TEST_HESSIAN_CHUNK=k caps the
 * Hessian request's chunk at k individuals, which takes hess_create's
 * guard (the LL chunk buffers re-made for k individuals and restored
 * after) that the planner's arithmetic otherwise never reaches.
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
#ifndef ICLV_CUDA_ENGINE_IMPL_CUH
#define ICLV_CUDA_ENGINE_IMPL_CUH

#include <cuda_runtime.h>
#include <stddef.h>

#include "../iclv_model.h"
#include "../engine.h"
#include "../draws.h"
#include "../cuda_plan.h"
#include "cuda_backend.h"

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
  int use_graphs;         /* 1: one-chunk LL (+ gradient) requests run as a CUDA graph
                             (0: ICLV_CUDA_GRAPHS=0 at creation) */
  cudaGraphExec_t graph[2]; /* [want_g] the captured one-chunk sequence, or NULL (not yet
                               captured, or destroyed with the chunk buffers it names) */
  long graph_builds;      /* graphs captured and instantiated so far */
  long graph_launches;    /* evaluations run as a graph so far */
  int test_hess_chunk;    /* test hook: > 0 caps the Hessian's chunk (ICLV_CUDA_TEST_HESSIAN_CHUNK) */

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

/* ---- cuda_engine.cu: helpers the evaluation uses --------------------------- */

int ce_fail_msg(iclv_status *st, int code, const char *msg);
const char *ce_fmt_bytes(double b, char *buf, size_t len);
/* cudaMalloc of the plan's device buffer `id` for `cap` individuals, recorded */
int ce_plan_alloc(iclv_cuda_engine *e, int id, int cap, void **out, iclv_status *st);
/* the chunk buffers for `cap` individuals (poisoned), and their release
 * (which first destroys the graphs: they name the chunk buffers) */
int ce_chunk_alloc(iclv_cuda_engine *e, int cap, iclv_status *st);
void ce_chunk_release(iclv_cuda_engine *e);
/* destroys the engine's graphs (cuda_eval.cu); idempotent, never fails */
void ce_graphs_destroy(iclv_cuda_engine *e);
/* names the model part behind individual n's non-finite likelihood (host) */
void ce_diagnose(const iclv_cuda_engine *e, const double *theta, int n, char *buf, size_t len);

/* ---- cuda_launch.cu: the kernels' launches and attributes ------------------- */

/* The attributes of the engine's six kernels, in the order of
 * iclv_cuda_shape.kernel_max_threads (k_pairs<1>, k_pairs<0>,
 * k_merge_split, k_reduce_groups, k_hess_pairs, k_hess_outer). */
cudaError_t cl_kernel_attributes(cudaFuncAttributes fa[6]);
/* Opts k_pairs in to smem_pairs bytes of dynamic shared memory, and
 * k_hess_pairs to hess_smem bytes, where they exceed 48 KB. */
cudaError_t cl_kernel_optin(size_t smem_pairs, size_t hess_smem);
/* Queues k_pairs for individuals n0 .. n0 + nh - 1 (LL, and scores with want_g). */
void cl_launch_pairs(const iclv_cuda_engine *e, int want_g, int n0, int nh);
/* Queues k_merge_split (draws split over blocks) for nh individuals. */
void cl_launch_merge(const iclv_cuda_engine *e, int want_g, int nh, double *d_lli, double *d_status);
/* Queues k_reduce_groups for W columns of the leaf rows. */
void cl_launch_reduce(const iclv_cuda_engine *e, const double *leaves, size_t ld, int W, int n0, int nh,
                      double *carry, double *sum);
/* Queues k_hess_pairs and k_hess_outer for individuals n0 .. n0 + n_here - 1;
 * returns the first launch error (the second kernel is not queued after a
 * failed first). */
cudaError_t cl_launch_hessian(const iclv_cuda_engine *e, int n0, int n_here, double *slot, double *arows,
                              double *scratch, int *status);

#endif
