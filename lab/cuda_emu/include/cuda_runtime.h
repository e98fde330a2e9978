/* A host emulation of the few CUDA runtime calls and device built-ins the iclv
 * CUDA backend uses, to run its kernels on a machine without a GPU: each
 * launch runs the blocks one after another, the threads of a block as
 * ucontext fibers, switched round-robin at every __syncthreads. Not shipped. */
#ifndef EMU_CUDA_RUNTIME_H
#define EMU_CUDA_RUNTIME_H
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <cstdio>
#include <cmath>
#include <atomic>
#include <vector>
#include <functional>

#define __global__
#define __device__
#define __host__
#define __grid_constant__
#define __launch_bounds__(...)
#define __shared__ static

typedef enum { cudaSuccess = 0, cudaErrorMemoryAllocation = 2, cudaErrorInvalidValue = 1,
               cudaErrorInvalidDevice = 101 } cudaError_t;
typedef enum { cudaMemcpyHostToDevice = 1, cudaMemcpyDeviceToHost = 2 } cudaMemcpyKind;
typedef int cudaStream_t;
#define cudaStreamNonBlocking 1
struct dim3 { unsigned x, y, z; dim3(unsigned a = 1, unsigned b = 1, unsigned c = 1) : x(a), y(b), z(c) {} };
struct uint3_ { unsigned x, y, z; };
typedef struct { char name[256]; int multiProcessorCount; int maxThreadsPerMultiProcessor; size_t totalGlobalMem; int major, minor; } cudaDeviceProp;
typedef struct { int maxThreadsPerBlock; size_t localSizeBytes; } cudaFuncAttributes;

extern uint3_ threadIdx, blockIdx;
extern uint3_ blockDim, gridDim;
void emu_barrier(); /* the calling fiber waits until every thread of the block arrives */
extern double emu_slots[1024];
extern std::atomic<int> emu_flag;
extern int emu_sms;
extern double emu_mem_free;

static inline void __syncthreads() { emu_barrier(); }
static inline int __syncthreads_or(int x) {
  emu_barrier();
  if (threadIdx.x == 0) emu_flag.store(0);
  emu_barrier();
  if (x) emu_flag.store(1);
  emu_barrier();
  return emu_flag.load();
}
static inline double __shfl_down_sync(unsigned, double v, int off) {
  emu_slots[threadIdx.x] = v;
  emu_barrier();
  unsigned lane = threadIdx.x & 31;
  double r = lane + off < 32 ? emu_slots[threadIdx.x + off] : v;
  emu_barrier();
  return r;
}

/* runs body() for every thread of every block */
void emu_launch(dim3 grid, dim3 block, size_t shm, const std::function<void()> &body);
#define EMU_LAUNCH(g, b, s, call) emu_launch(dim3(g), dim3(b), (size_t) (s), [&]() { call; })

cudaError_t cudaGetDeviceCount(int *n);
cudaError_t cudaSetDevice(int d);
cudaError_t cudaGetDevice(int *d);
cudaError_t cudaGetDeviceProperties(cudaDeviceProp *p, int d);
cudaError_t cudaMemGetInfo(size_t *f, size_t *t);
cudaError_t cudaStreamCreateWithFlags(cudaStream_t *s, unsigned flags);
cudaError_t cudaStreamDestroy(cudaStream_t s);
cudaError_t cudaMalloc(void **p, size_t n);
cudaError_t cudaFree(void *p);
cudaError_t cudaMallocHost(void **p, size_t n);
cudaError_t cudaFreeHost(void *p);
cudaError_t cudaMemcpy(void *d, const void *s, size_t n, cudaMemcpyKind k);
cudaError_t cudaMemcpyAsync(void *d, const void *s, size_t n, cudaMemcpyKind k, cudaStream_t st);
cudaError_t cudaMemset(void *d, int v, size_t n);
cudaError_t cudaMemsetAsync(void *d, int v, size_t n, cudaStream_t st);
cudaError_t cudaStreamSynchronize(cudaStream_t s);
cudaError_t cudaDeviceSynchronize();
cudaError_t cudaGetLastError();
cudaError_t cudaFuncGetAttributes(cudaFuncAttributes *a, const void *f);
const char *cudaGetErrorString(cudaError_t e);
const char *cudaGetErrorName(cudaError_t e);
#endif
