/*
 * iclv_hd.h -- ICLV_HD marks the inline functions shared by the CPU engine
 * and the CUDA kernels: __host__ __device__ under nvcc, nothing in C.
 */
#ifndef ICLV_HD_H
#define ICLV_HD_H
#ifndef ICLV_HD
#ifdef __CUDACC__
#define ICLV_HD __host__ __device__
#else
#define ICLV_HD
#endif
#endif
/* ICLV_HD_OUTLINE starts the definition of a shared function that the
 * device code calls, not inlines: the tape interpreter of iclv_tape.h, which
 * only models with nonlinear utilities run; inlined, its switch would be
 * copied into every kernel that reaches iclv_pair_eval, and each of their
 * instantiations. In C (and the emulator) it is static inline. */
#ifndef ICLV_HD_OUTLINE
#ifdef __CUDACC__
#define ICLV_HD_OUTLINE static __host__ __device__ __noinline__
#else
#define ICLV_HD_OUTLINE static inline
#endif
#endif
#endif
