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
#endif
