/*
 * cuda_util.cuh -- checked CUDA calls for the iclv CUDA backend.
 *
 * Every CUDA runtime call of the backend goes through ICLV_CUDA_TRY, which
 * turns a failure into an iclv_status (code ICLV_ERR_CUDA) whose message
 * holds the call text, cudaGetErrorString / cudaGetErrorName, __FILE__ and
 * __LINE__ (as llm.c's cudaCheck records them), and then jumps to the label
 * `fail` of the calling function, which must release what it allocated and
 * return st->code. Nothing here prints, exits or aborts.
 *
 * Plain C types and the CUDA runtime only: no R headers.
 */
#ifndef ICLV_CUDA_UTIL_CUH
#define ICLV_CUDA_UTIL_CUH

#include <cuda_runtime.h>
#include <stdio.h>

#include "../iclv_model.h"

/* Records the failed call `call` (its source text) in st: code
 * ICLV_ERR_CUDA and "CUDA call <call> failed at <file>:<line>: <error
 * string> (<error name>)". Clears the runtime's last error (for the
 * non-sticky errors that allow the context to be used again).
 * Returns ICLV_ERR_CUDA. */
static inline int iclv_cuda_fail(iclv_status *st, cudaError_t err, const char *call,
                                 const char *file, int line) {
  st->code = ICLV_ERR_CUDA;
  snprintf(st->msg, ICLV_MSG_LEN, "CUDA call %s failed at %s:%d: %s (%s)", call, file, line,
           cudaGetErrorString(err), cudaGetErrorName(err));
  (void) cudaGetLastError();
  return ICLV_ERR_CUDA;
}

/* Runs `call` (an expression of type cudaError_t); on failure records it in
 * *st (see iclv_cuda_fail) and jumps to the caller's `fail:` label. */
#define ICLV_CUDA_TRY(st, call)                                              \
  do {                                                                       \
    cudaError_t iclv_cuda_err_ = (call);                                     \
    if (iclv_cuda_err_ != cudaSuccess) {                                     \
      iclv_cuda_fail((st), iclv_cuda_err_, #call, __FILE__, __LINE__);       \
      goto fail;                                                             \
    }                                                                        \
  } while (0)

/* Checks the kernel launch just made; `name` (a string literal) names the
 * kernel in the message. Configuration errors (grid, block, shared memory,
 * registers) are reported here; errors during execution surface at the next
 * synchronisation, which is itself an ICLV_CUDA_TRY. */
#define ICLV_CUDA_CHECK_LAUNCH(st, name)                                     \
  do {                                                                       \
    cudaError_t iclv_cuda_err_ = cudaGetLastError();                         \
    if (iclv_cuda_err_ != cudaSuccess) {                                     \
      iclv_cuda_fail((st), iclv_cuda_err_, "launch of kernel " name,        \
                     __FILE__, __LINE__);                                    \
      goto fail;                                                             \
    }                                                                        \
  } while (0)

#endif /* ICLV_CUDA_UTIL_CUH */
