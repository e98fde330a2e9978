/*
 * cuda_plan.h -- the CUDA engine's planner: its launch shape, every device
 * and pinned host buffer, and the chunking of individuals, computed from the
 * model, the draw design, the device's shape and the budget, before
 * anything is allocated. Plain C (cuda_plan.c), compiled in every build, so
 * a CPU-only build can still plan for a GPU; iclv_cuda_engine_create
 * (cuda/cuda_engine.cu) calls it and allocates exactly its buffers.
 */
#ifndef ICLV_CUDA_PLAN_H
#define ICLV_CUDA_PLAN_H

#include <stddef.h>
#include "iclv_model.h"
#include "engine.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- constants the kernels and the sizes share (fixed: the reduction
 * orders depend on them) ---------------------------------------------------- */
#define ICLV_CUDA_MAX_BLOCK 128        /* threads of a pair block (a multiple of 32, at most) */
#define ICLV_CUDA_MAX_WARPS (ICLV_CUDA_MAX_BLOCK / 32)
#define ICLV_CUDA_AUX_BLOCK 128        /* threads of the merge, reduction and Hessian-outer kernels */
#define ICLV_CUDA_GROUP 32             /* individuals per tree of the reduction over individuals */
#define ICLV_CUDA_HESS_BLOCK 32        /* threads (= individuals) of a k_hess_pairs block */
#define ICLV_CUDA_MIN_DRAWS_SPLIT 32   /* no block of a split individual gets fewer draws */
#define ICLV_CUDA_BLOCKS_PER_SM 4      /* split individuals while N < this x SMs */
#define ICLV_CUDA_MAX_HSPLIT 32        /* Hessian slots per individual, at most */
#define ICLV_CUDA_HSPLIT_BYTES 1073741824.0 /* ... while all individuals' slots fit this */

/* The shape assumed when no device can be asked (an H100; the frame is the
 * 96 bytes ptxas of CUDA 13.0 reports for k_hess_pairs on sm_90). */
#define ICLV_CUDA_ASSUMED_SMS 132
#define ICLV_CUDA_ASSUMED_THREADS_PER_SM 2048
#define ICLV_CUDA_ASSUMED_SHARED (227 * 1024)
#define ICLV_CUDA_ASSUMED_FRAME 96

/* What the plan needs to know of the device. */
typedef struct {
  char name[256];        /* device name ("assumed: ..." when not asked) */
  int known;             /* 1: read from the device; 0: the assumed shape */
  int sms;               /* multiprocessors */
  int threads_per_sm;    /* resident threads per multiprocessor */
  size_t smem_optin;     /* shared bytes a block may opt in to */
  size_t local_frame;    /* largest local-memory frame of the engine's kernels, bytes per thread */
  int kernel_max_threads[6]; /* maxThreadsPerBlock of k_pairs<1>, k_pairs<0>, k_merge_split,
                                k_reduce_groups, k_hess_pairs, k_hess_outer (0: not known) */
  double total_bytes;    /* device memory (NaN when not known) */
  double free_bytes;     /* free device memory when asked (NaN when not known) */
} iclv_cuda_shape;

/* Fills *s with the assumed shape (known = 0). */
void iclv_cuda_shape_assumed(iclv_cuda_shape *s);

/* The engine's buffers, in allocation order. Device: */
enum {
  ICLV_CD_MODEL_INT, ICLV_CD_MODEL_DBL, ICLV_CD_USER, ICLV_CD_THETA, ICLV_CD_CARRY,
  ICLV_CD_LMEM,        /* the driver's local-memory reservation: recorded, never allocated */
  ICLV_CD_SUMS,        /* the results block's sums; ICLV_CD_LLSTATUS is its tail (one allocation) */
  ICLV_CD_LLSTATUS, ICLV_CD_LSE, ICLV_CD_SCORES, ICLV_CD_PART, ICLV_CD_GROWS,
  ICLV_CD_HESS_FIRST,  /* the Hessian's, made per request: */
  ICLV_CD_HSUM = ICLV_CD_HESS_FIRST, ICLV_CD_HCARRY, ICLV_CD_HROWS, ICLV_CD_HSLOT,
  ICLV_CD_HSCRATCH, ICLV_CD_HSTATUS, ICLV_CD_COUNT
};
/* Pinned host (and one plain host scratch): */
enum {
  ICLV_CH_THETA, ICLV_CH_OUT, ICLV_CH_ROWS, ICLV_CH_HESS, ICLV_CH_HSTATUS, ICLV_CH_SCRATCH,
  ICLV_CH_COUNT
};

/* One buffer: bytes = fixed + per_ind x (individuals of the chunk). */
typedef struct {
  const char *name; /* account name; "chunk:" when it grows with the chunk */
  double fixed;     /* bytes that do not depend on the chunk */
  double per_ind;   /* bytes per individual of a chunk */
} iclv_cuda_buf;

/* One array of the model for the device upload: host source, length and
 * the pointer field of a device view of the model that receives its
 * address (cuda_engine.cu's upload fills it). */
typedef struct {
  const void *src; /* host array (NULL when len == 0) */
  size_t len;      /* elements */
  void *dst;       /* address of the pointer field of the device view */
} iclv_model_part;

#define ICLV_CUDA_INT_PARTS 33
#define ICLV_CUDA_DBL_PARTS 6

/* The model's integer and double arrays, in upload order, with their
 * lengths, pointing their dst at the fields of *view. */
void iclv_cuda_model_parts(const iclv_model *m, iclv_model *view,
                           iclv_model_part ip[ICLV_CUDA_INT_PARTS],
                           iclv_model_part dp[ICLV_CUDA_DBL_PARTS]);

/* Elements of a packed upload: each array rounded up to 32 elements so
 * that every array starts on a cache line. */
size_t iclv_cuda_pad32(size_t n);

typedef struct {
  /* launch shape (from N, R and the device; never from the chunk) */
  int split;             /* B: blocks per individual in k_pairs */
  int draws_per_block;   /* ceil(R / B) */
  int threads;           /* T: threads of a pair block */
  int rowlen;            /* doubles of a thread's pair row (odd) */
  int rows_global;       /* the rows do not fit shared memory: a global buffer */
  size_t smem_pairs;     /* dynamic shared bytes of k_pairs */
  size_t hess_slot;      /* doubles of Hessian pair scratch per thread of k_hess_pairs */
  int hsplit;            /* D: Hessian slots per individual */
  double lmem;           /* the driver's local-memory reservation, bytes */
  /* buffers */
  iclv_cuda_buf dev[ICLV_CD_COUNT];
  iclv_cuda_buf host[ICLV_CH_COUNT];
  /* chunking: per_chunk is the largest count whose LL and Hessian buffers
   * fit the budget with the fixed ones:
   *   fixed + hess_fixed + per_chunk (per_ind + hess_per_ind) <= budget */
  double fixed_bytes, per_ind_bytes;           /* LL buffers */
  double hess_fixed_bytes, hess_per_ind_bytes; /* the Hessian's */
  double budget;         /* bytes (NaN: unknown; per_chunk is then N) */
  int per_chunk;         /* individuals per chunk; 0: the budget does not hold one */
  int n_chunks;          /* 0 when per_chunk is 0 */
} iclv_cuda_plan;

/* Plans the CUDA engine for model m and design d on a device of shape s
 * with budget `budget` bytes (<= 0: 80% of s->free_bytes; NaN when that is
 * unknown too). Pure arithmetic. Returns ICLV_OK (per_chunk 0 when the
 * budget does not hold one individual: the engine refuses that), or
 * ICLV_ERR_MEMORY when a pair block's shared memory cannot fit even without
 * the pair rows (too many parameters for this device). */
int iclv_cuda_plan_make(const iclv_model *m, const iclv_draws *d, const iclv_cuda_shape *s,
                        double budget, iclv_cuda_plan *p, iclv_status *st);

/* Bytes of buffer b for a chunk of `cap` individuals. */
double iclv_cuda_buf_bytes(const iclv_cuda_buf *b, int cap);

/* The accounts the engine records for a chunk of `cap` individuals: the
 * device buffers (with_hessian: also the Hessian's, as during a Hessian
 * request) and the host ones; an empty buffer is not recorded (except the
 * local-memory reservation). */
void iclv_cuda_plan_accounts(const iclv_cuda_plan *p, int cap, int with_hessian,
                             iclv_mem_account *dev, iclv_mem_account *host);

#ifdef __cplusplus
}
#endif

#endif /* ICLV_CUDA_PLAN_H */
