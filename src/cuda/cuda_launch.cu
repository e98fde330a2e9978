/*
 * cuda_launch.cu -- the CUDA engine's kernels (cuda_kernels.cuh, each
 * contract naming the CPU code it mirrors) and every launch of them: the
 * only translation unit that sees the kernels. The engine's files call the
 * cl_ functions (cuda_engine_impl.cuh); the device's draws for
 * iclv_draws_generate() are here too (one kernel, its copies).
 */
#include <cuda_runtime.h>
#include <stdlib.h>
#include <string.h>
#include <stdio.h>
#include <math.h>

#include "../numerics.h"
#include "../iclv_core.h"
#include "cuda_util.cuh"
#include "cuda_engine_impl.cuh"
#include "cuda_kernels.cuh"

/* ---- the kernels' attributes ------------------------------------------------ */

cudaError_t cl_kernel_attributes(cudaFuncAttributes fa[6]) {
  cudaError_t err;
  if ((err = cudaFuncGetAttributes(&fa[0], (const void *) k_pairs<1>)) != cudaSuccess) return err;
  if ((err = cudaFuncGetAttributes(&fa[1], (const void *) k_pairs<0>)) != cudaSuccess) return err;
  if ((err = cudaFuncGetAttributes(&fa[2], (const void *) k_merge_split)) != cudaSuccess) return err;
  if ((err = cudaFuncGetAttributes(&fa[3], (const void *) k_reduce_groups)) != cudaSuccess) return err;
  if ((err = cudaFuncGetAttributes(&fa[4], (const void *) k_hess_pairs)) != cudaSuccess) return err;
  return cudaFuncGetAttributes(&fa[5], (const void *) k_hess_outer);
}

cudaError_t cl_kernel_optin(size_t smem_pairs, size_t hess_smem) {
  cudaError_t err = cudaSuccess;
  if (smem_pairs > 48 * 1024) {
    err = cudaFuncSetAttribute((const void *) k_pairs<1>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                               (int) smem_pairs);
    if (err != cudaSuccess) return err;
    err = cudaFuncSetAttribute((const void *) k_pairs<0>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                               (int) smem_pairs);
    if (err != cudaSuccess) return err;
  }
  if (hess_smem > 48 * 1024)
    err = cudaFuncSetAttribute((const void *) k_hess_pairs, cudaFuncAttributeMaxDynamicSharedMemorySize,
                               (int) hess_smem);
  return err;
}

/* ---- launches ------------------------------------------------------------------------- */

/* Queues the LL (and with want_g the scores) of individuals n0 .. n0 + nh - 1:
 * k_pairs, then k_merge_split when the draws are split (no check). */
void cl_launch_pairs(const iclv_cuda_engine *e, int want_g, int n0, int nh) {
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
void cl_launch_reduce(const iclv_cuda_engine *e, const double *leaves, size_t ld, int W, int n0, int nh,
                      double *carry, double *sum) {
  const int per_block = ICLV_CUDA_AUX_BLOCK / 32;
  dim3 grid((unsigned) ((W + per_block - 1) / per_block));
  k_reduce_groups<<<grid, ICLV_CUDA_AUX_BLOCK, 0, e->stream>>>(leaves, ld, W, n0, nh, e->N,
                                                              e->dm.weight, carry, sum);
}

void cl_launch_merge(const iclv_cuda_engine *e, int want_g, int nh, double *d_lli, double *d_status) {
  k_merge_split<<<nh, ICLV_CUDA_AUX_BLOCK, 0, e->stream>>>(e->d_part, e->plan.split, e->P, e->R, want_g,
                                                          e->d_rows, 1 + e->P, d_lli, e->d_lse, d_status);
}

cudaError_t cl_launch_hessian(const iclv_cuda_engine *e, int n0, int n_here, double *slot, double *arows,
                              double *scratch, int *status) {
  const int P = e->P;
  dim3 grid((unsigned) (((size_t) n_here * (size_t) e->plan.hsplit + ICLV_CUDA_HESS_BLOCK - 1) /
                        ICLV_CUDA_HESS_BLOCK));
  dim3 block((unsigned) ICLV_CUDA_HESS_BLOCK);
  k_hess_pairs<<<grid, block, (size_t) P * sizeof(double), e->stream>>>(
      e->dm, e->dd, e->d_theta, n0, n_here, e->plan.hsplit, e->has_lv_src, e->d_lse, e->d_rows, 1 + P,
      slot, arows, scratch, e->plan.hess_slot);
  cudaError_t err = cudaGetLastError(); /* k_hess_outer only after a good launch */
  if (err != cudaSuccess) return err;
  k_hess_outer<<<n_here, ICLV_CUDA_AUX_BLOCK, 0, e->stream>>>(arows, e->R, P, e->plan.hsplit, slot, status);
  return cudaGetLastError();
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
    return ce_fail_msg(st, ICLV_ERR_CUDA, "no usable CUDA device");
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
