#include "cuda_runtime.h"
#include <ucontext.h>
uint3_ threadIdx, blockIdx;
uint3_ blockDim, gridDim;
double emu_slots[1024];
std::atomic<int> emu_flag;
static cudaError_t emu_last = cudaSuccess;
static double env_num(const char *n, double def) { const char *v = getenv(n); return v ? atof(v) : def; }

/* fibers of one block */
#define EMU_STACK (512 * 1024)
static ucontext_t emu_sched, emu_fib[1024];
static char *emu_stacks[1024];
static int emu_done[1024];
static int emu_cur;
static const std::function<void()> *emu_body;

void emu_barrier() { swapcontext(&emu_fib[emu_cur], &emu_sched); }

static void emu_entry() {
  (*emu_body)();
  emu_done[emu_cur] = 1;
  /* returning resumes uc_link = the scheduler */
}

void emu_launch(dim3 grid, dim3 block, size_t shm, const std::function<void()> &body) {
  if (grid.x == 0 || block.x == 0 || block.x > 1024 || shm > 48 * 1024) { emu_last = cudaErrorInvalidValue; return; }
  blockDim = {block.x, 1, 1};
  gridDim = {grid.x, 1, 1};
  emu_body = &body;
  const int T = (int) block.x;
  for (int t = 0; t < T; t++)
    if (!emu_stacks[t]) emu_stacks[t] = (char *) malloc(EMU_STACK);
  for (unsigned b = 0; b < grid.x; b++) {
    blockIdx = {b, 0, 0};
    for (int t = 0; t < T; t++) {
      getcontext(&emu_fib[t]);
      emu_fib[t].uc_stack.ss_sp = emu_stacks[t];
      emu_fib[t].uc_stack.ss_size = EMU_STACK;
      emu_fib[t].uc_link = &emu_sched;
      makecontext(&emu_fib[t], emu_entry, 0);
      emu_done[t] = 0;
    }
    int live = T;
    while (live > 0) {
      int n_done = 0, n_wait = 0;
      for (int t = 0; t < T; t++) {
        if (emu_done[t]) { n_done++; continue; }
        emu_cur = t;
        threadIdx = {(unsigned) t, 0, 0};
        swapcontext(&emu_sched, &emu_fib[t]);
        if (emu_done[t]) n_done++; else n_wait++;
      }
      if (n_wait > 0 && n_done > 0) { fprintf(stderr, "EMU: divergent barrier in block %u\n", b); abort(); }
      live = T - n_done;
    }
  }
}
cudaError_t cudaGetDeviceCount(int *n) { *n = (int) env_num("EMU_DEVICES", 1); return cudaSuccess; }
cudaError_t cudaSetDevice(int d) { int n; cudaGetDeviceCount(&n); return d < n ? cudaSuccess : cudaErrorInvalidDevice; }
cudaError_t cudaGetDevice(int *d) { *d = 0; return cudaSuccess; }
cudaError_t cudaGetDeviceProperties(cudaDeviceProp *p, int) {
  memset(p, 0, sizeof *p);
  snprintf(p->name, sizeof p->name, "emulated device (%d SMs)", (int) env_num("EMU_SMS", 132));
  p->multiProcessorCount = (int) env_num("EMU_SMS", 132);
  p->maxThreadsPerMultiProcessor = 2048;
  p->totalGlobalMem = (size_t) 80e9; p->major = 9; p->minor = 0;
  return cudaSuccess;
}
cudaError_t cudaMemGetInfo(size_t *f, size_t *t) { *t = (size_t) 80e9; *f = (size_t) env_num("EMU_FREE", 79e9); return cudaSuccess; }
cudaError_t cudaStreamCreateWithFlags(cudaStream_t *s, unsigned) { *s = 1; return cudaSuccess; }
cudaError_t cudaStreamDestroy(cudaStream_t) { return cudaSuccess; }
static long emu_live = 0;
cudaError_t cudaMalloc(void **p, size_t n) {
  if (n > (size_t) env_num("EMU_MAX_ALLOC", 4e9)) { *p = NULL; emu_last = cudaErrorMemoryAllocation; return cudaErrorMemoryAllocation; }
  *p = malloc(n); emu_live++; return *p ? cudaSuccess : cudaErrorMemoryAllocation; }
cudaError_t cudaFree(void *p) { if (p) emu_live--; free(p); if (getenv("EMU_TRACE")) fprintf(stderr, "EMU cudaFree: %ld live\n", emu_live); return cudaSuccess; }
extern "C" long emu_live_allocs() { return emu_live; }
cudaError_t cudaMallocHost(void **p, size_t n) { *p = malloc(n); return *p ? cudaSuccess : cudaErrorMemoryAllocation; }
cudaError_t cudaFreeHost(void *p) { free(p); return cudaSuccess; }
cudaError_t cudaMemcpy(void *d, const void *s, size_t n, cudaMemcpyKind) { memcpy(d, s, n); return cudaSuccess; }
cudaError_t cudaMemcpyAsync(void *d, const void *s, size_t n, cudaMemcpyKind k, cudaStream_t) { return cudaMemcpy(d, s, n, k); }
cudaError_t cudaMemset(void *d, int v, size_t n) { memset(d, v, n); return cudaSuccess; }
cudaError_t cudaMemsetAsync(void *d, int v, size_t n, cudaStream_t) { return cudaMemset(d, v, n); }
cudaError_t cudaStreamSynchronize(cudaStream_t) { return cudaSuccess; }
cudaError_t cudaDeviceSynchronize() { return cudaSuccess; }
cudaError_t cudaGetLastError() { cudaError_t e = emu_last; emu_last = cudaSuccess; return e; }
cudaError_t cudaFuncGetAttributes(cudaFuncAttributes *a, const void *) { a->maxThreadsPerBlock = 128; a->localSizeBytes = 4160; return cudaSuccess; }
const char *cudaGetErrorString(cudaError_t e) { return e == cudaSuccess ? "no error" : e == cudaErrorMemoryAllocation ? "out of memory" : "emulated error"; }
const char *cudaGetErrorName(cudaError_t e) { return e == cudaSuccess ? "cudaSuccess" : e == cudaErrorMemoryAllocation ? "cudaErrorMemoryAllocation" : "cudaErrorEmulated"; }
