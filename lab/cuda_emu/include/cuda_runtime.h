/* A host emulation of the few CUDA runtime calls and device built-ins the iclv
 * CUDA backend uses, to run its kernels on a machine without a GPU. Not shipped.
 *
 * Execution model (emu_runtime.cpp): each launch runs its blocks one after
 * another; the threads of a block are ucontext fibers grouped into 32-lane
 * warps (the last warp of a block whose size is not a multiple of 32 is
 * partial: its missing lanes do not exist). A fiber runs until it reaches a
 * synchronisation point, then the next one runs, in the order EMU_SCHEDULE
 * names (forward, the default; reverse; random:SEED, reshuffled at every
 * round), so memory written by one lane is seen by another only in that
 * order unless a barrier orders them: a kernel that relies on an absent
 * __syncwarp / __syncthreads reads stale values under some order.
 *   __syncthreads(): waits for every thread of the block; a thread that has
 *     exited while others wait is an error (divergent barrier).
 *   __syncwarp(mask), __shfl_{sync,up,down,xor}_sync(mask, ...),
 *   __ballot_sync / __any_sync / __all_sync(mask, ...): the lanes named in
 *     mask meet; it is an error when the calling lane is not in its mask,
 *     when a lane of the mask does not exist (partial warp) or has exited,
 *     when a lane of the mask waits at another kind of barrier or at a
 *     warp operation of another kind or mask (deadlock / divergence), and
 *     when a shuffle reads a lane outside the mask (undefined on a GPU).
 * An error stops the kernel: the launch reports cudaErrorLaunchFailure
 * (cudaGetLastError), the message is in emu_error_message() and on stderr
 * when EMU_VERBOSE is set; the process is not aborted.
 *
 * Launches: build.sh rewrites k<<<g, b, s, st>>>(args) into
 * emu_launch_k(g, b, s, st, [](auto... a) { k(a...); }, args): the
 * arguments are evaluated and copied once, at the launch (as CUDA copies
 * kernel parameters), so a launch recorded by a stream capture keeps the
 * values it was given.
 *
 * Streams and graphs (emu_runtime.cpp): outside a capture every operation
 * runs at once, in issue order. cudaStreamBeginCapture(st, mode) makes the
 * operations queued to st (cudaMemcpyAsync, cudaMemsetAsync, launches)
 * records that do NOT run; cudaStreamEndCapture returns them as a
 * cudaGraph_t, cudaGraphInstantiate copies them into a cudaGraphExec_t and
 * cudaGraphLaunch replays them in order, reading host buffers as they are
 * at the launch. Checks, as CUDA makes them or stricter:
 *   - during a capture in global or thread-local mode, cudaMalloc, cudaFree,
 *     cudaMallocHost, cudaFreeHost, cudaMemcpy, cudaMemset,
 *     cudaDeviceSynchronize and cudaStreamSynchronize fail with
 *     cudaErrorStreamCaptureUnsupported and invalidate the capture
 *     (cudaStreamEndCapture then fails with cudaErrorStreamCaptureInvalidated);
 *     an asynchronous operation on the legacy stream 0 fails with
 *     cudaErrorStreamCaptureImplicit;
 *   - a captured copy must name whole live buffers of the right kinds:
 *     device memory from cudaMalloc and PINNED host memory from
 *     cudaMallocHost (the emulator refuses pageable host memory in a graph);
 *   - at every replay each copy's and memset's buffers and every pointer
 *     argument of a kernel must still be live allocations: a graph that
 *     outlived a buffer stops with cudaErrorIllegalAddress, reported by the
 *     next cudaStreamSynchronize / cudaDeviceSynchronize (with the node);
 *     cudaFree keeps freed device blocks out of reuse for a while
 *     (up to EMU_QUARANTINE bytes, 64 MB by default) and fills them with 0xFF
 *     (NaN), so stale pointers neither alias a new buffer nor read data;
 *   - a kernel that fails during a replay is reported the same way.
 * Fault injection: EMU_FAIL=cudaStreamBeginCapture (or cudaStreamEndCapture,
 * cudaGraphInstantiate, cudaGraphLaunch) makes that call fail with
 * cudaErrorUnknown, to test the callers' error paths.
 * emu_graph_counts() gives the live graphs and executable graphs (leaks). */
#ifndef EMU_CUDA_RUNTIME_H
#define EMU_CUDA_RUNTIME_H
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <cstdio>
#include <cstdint>
#include <cmath>
#include <atomic>
#include <vector>
#include <functional>
#include <tuple>
#include <type_traits>

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __grid_constant__
#define __launch_bounds__(...)
#define __shared__ static
#define __constant__

typedef enum { cudaSuccess = 0, cudaErrorMemoryAllocation = 2, cudaErrorInvalidValue = 1,
               cudaErrorLaunchFailure = 719, cudaErrorInvalidDevice = 101,
               cudaErrorIllegalState = 401, cudaErrorIllegalAddress = 700,
               cudaErrorStreamCaptureUnsupported = 900, cudaErrorStreamCaptureInvalidated = 901,
               cudaErrorStreamCaptureImplicit = 906, cudaErrorUnknown = 999 } cudaError_t;
typedef enum { cudaMemcpyHostToDevice = 1, cudaMemcpyDeviceToHost = 2,
               cudaMemcpyDeviceToDevice = 3 } cudaMemcpyKind;
typedef enum { cudaFuncAttributeMaxDynamicSharedMemorySize = 8 } cudaFuncAttribute;
typedef int cudaStream_t;
typedef enum { cudaStreamCaptureModeGlobal = 0, cudaStreamCaptureModeThreadLocal = 1,
               cudaStreamCaptureModeRelaxed = 2 } cudaStreamCaptureMode;
typedef struct emu_graph *cudaGraph_t;          /* a captured sequence */
typedef struct emu_graph *cudaGraphExec_t;      /* its instantiated copy */
typedef double *cudaEvent_t; /* host clock seconds (emulated events) */
#define cudaStreamNonBlocking 1
struct dim3 { unsigned x, y, z; dim3(unsigned a = 1, unsigned b = 1, unsigned c = 1) : x(a), y(b), z(c) {} };
struct uint3_ { unsigned x, y, z; };
typedef struct { char name[256]; int multiProcessorCount; int maxThreadsPerMultiProcessor;
                 size_t totalGlobalMem; size_t sharedMemPerBlock; size_t sharedMemPerBlockOptin;
                 int major, minor; } cudaDeviceProp;
typedef struct { int maxThreadsPerBlock; size_t localSizeBytes; int numRegs; } cudaFuncAttributes;

extern uint3_ threadIdx, blockIdx;
extern uint3_ blockDim, gridDim;

/* ---- synchronisation points (emu_runtime.cpp) ---- */
enum { EMU_OP_SYNCWARP = 1, EMU_OP_SHFL_IDX, EMU_OP_SHFL_UP, EMU_OP_SHFL_DOWN, EMU_OP_SHFL_XOR,
       EMU_OP_BALLOT };
/* the calling fiber waits until every thread of the block arrives */
void emu_syncthreads();
/* the calling lane meets the lanes of `mask` at warp operation `op`: it
 * contributes `v` (64 bits), and gets back the value of the lane its
 * operation reads (shuffles; arg = source lane, delta or lane mask; width
 * = the shuffle's width) or the ballot of the predicates (EMU_OP_BALLOT) */
uint64_t emu_warp_op(int op, unsigned mask, uint64_t v, int arg, int width);
const char *emu_error_message();
/* block-wide OR of the predicate, as __syncthreads_or */
int emu_syncthreads_or(int pred);

static inline void __syncthreads() { emu_syncthreads(); }
static inline int __syncthreads_or(int x) { return emu_syncthreads_or(x); }
static inline void __syncwarp(unsigned mask = 0xffffffffu) { (void) emu_warp_op(EMU_OP_SYNCWARP, mask, 0, 0, 32); }
static inline void __threadfence_block() {}
template <typename T> static inline uint64_t emu_bits(T v) { uint64_t b = 0; memcpy(&b, &v, sizeof v); return b; }
template <typename T> static inline T emu_from(uint64_t b) { T v; memcpy(&v, &b, sizeof v); return v; }
template <typename T> static inline T __shfl_sync(unsigned m, T v, int src, int w = 32) { return emu_from<T>(emu_warp_op(EMU_OP_SHFL_IDX, m, emu_bits(v), src, w)); }
template <typename T> static inline T __shfl_up_sync(unsigned m, T v, unsigned d, int w = 32) { return emu_from<T>(emu_warp_op(EMU_OP_SHFL_UP, m, emu_bits(v), (int) d, w)); }
template <typename T> static inline T __shfl_down_sync(unsigned m, T v, unsigned d, int w = 32) { return emu_from<T>(emu_warp_op(EMU_OP_SHFL_DOWN, m, emu_bits(v), (int) d, w)); }
template <typename T> static inline T __shfl_xor_sync(unsigned m, T v, int l, int w = 32) { return emu_from<T>(emu_warp_op(EMU_OP_SHFL_XOR, m, emu_bits(v), l, w)); }
static inline unsigned __ballot_sync(unsigned m, int p) { return (unsigned) emu_warp_op(EMU_OP_BALLOT, m, p != 0, 0, 32); }
static inline int __any_sync(unsigned m, int p) { return __ballot_sync(m, p) != 0; }
static inline int __all_sync(unsigned m, int p) { return __ballot_sync(m, p) == m; }

/* runs body() for every thread of every block */
void emu_launch(dim3 grid, dim3 block, size_t shm, const std::function<void()> &body);
/* a launch on stream st: runs it, or records it while st is captured;
 * ptrs are the kernel's pointer arguments (checked at every replay) */
void emu_submit(dim3 grid, dim3 block, size_t shm, cudaStream_t st, std::function<void()> body,
                std::vector<const void *> ptrs);
template <typename T> static inline void emu_note_ptr(std::vector<const void *> &v, const T &x) {
  if constexpr (std::is_pointer_v<T>) v.push_back((const void *) x);
}
/* k<<<g, b, s, st>>>(args...) (transform.py): the arguments copied now */
template <typename F, typename... A>
static inline void emu_launch_k(dim3 g, dim3 b, size_t s, cudaStream_t st, F f, const A &...a) {
  std::vector<const void *> ptrs;
  (emu_note_ptr(ptrs, a), ...);
  auto args = std::make_tuple(a...);
  emu_submit(g, b, s, st, [f, args]() { std::apply(f, args); }, std::move(ptrs));
}

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
cudaError_t cudaFuncSetAttribute(const void *f, cudaFuncAttribute attr, int value);
cudaError_t cudaEventCreate(cudaEvent_t *e);
cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t s = 0);
cudaError_t cudaEventSynchronize(cudaEvent_t e);
cudaError_t cudaEventElapsedTime(float *ms, cudaEvent_t a, cudaEvent_t b);
cudaError_t cudaStreamBeginCapture(cudaStream_t s, cudaStreamCaptureMode mode);
cudaError_t cudaStreamEndCapture(cudaStream_t s, cudaGraph_t *g);
cudaError_t cudaGraphInstantiate(cudaGraphExec_t *x, cudaGraph_t g, unsigned long long flags = 0);
cudaError_t cudaGraphLaunch(cudaGraphExec_t x, cudaStream_t s);
cudaError_t cudaGraphDestroy(cudaGraph_t g);
cudaError_t cudaGraphExecDestroy(cudaGraphExec_t x);
/* live cudaGraph_t and cudaGraphExec_t objects (for leak checks) */
extern "C" void emu_graph_counts(long *graphs, long *execs);
const char *cudaGetErrorString(cudaError_t e);
const char *cudaGetErrorName(cudaError_t e);
/* the dynamic shared memory of the running block (extern __shared__ arrays) */
extern double emu_dyn_shared[];
#endif
