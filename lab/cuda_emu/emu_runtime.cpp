/* The emulated CUDA runtime of lab/cuda_emu (see include/cuda_runtime.h for
 * the execution model): warps of 32 lanes as ucontext fibers, warp
 * operations with mask checks, block barriers, and the runtime calls the
 * iclv CUDA backend makes. Not shipped. */
#include "cuda_runtime.h"
#include <ucontext.h>
#include <cstdarg>
#include <string>
#include <random>
#include <algorithm>
uint3_ threadIdx, blockIdx;
uint3_ blockDim, gridDim;
static cudaError_t emu_last = cudaSuccess;
static char emu_err[512];
static double env_num(const char *n, double def) { const char *v = getenv(n); return v ? atof(v) : def; }
#define EMU_MAX_SHARED (227 * 1024)
alignas(16) double emu_dyn_shared[EMU_MAX_SHARED / sizeof(double)];
static size_t emu_shared_optin = 0; /* the largest dynamic size a kernel was allowed (cudaFuncSetAttribute) */

/* ---- fibers of one block ---- */
#define EMU_STACK (512 * 1024)
#define EMU_MAX_THREADS 1024
enum { ST_READY = 0, ST_BLOCK_BAR, ST_WARP_OP, ST_DONE };
struct emu_fiber {
  ucontext_t ctx;
  int state;
  int op, arg, width; /* warp operation waited at */
  unsigned mask;
  uint64_t val, res;
  int pred;           /* __syncthreads_or */
};
static ucontext_t emu_sched;
static emu_fiber emu_fib[EMU_MAX_THREADS];
static char *emu_stacks[EMU_MAX_THREADS];
static int emu_cur, emu_nthreads, emu_failed, emu_bar_or;
static const std::function<void()> *emu_body;

static void emu_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void emu_fail(const char *fmt, ...) {
  if (!emu_failed) {
    va_list ap;
    va_start(ap, fmt);
    int k = snprintf(emu_err, sizeof emu_err, "EMU: kernel error in block %u: ", blockIdx.x);
    vsnprintf(emu_err + k, sizeof emu_err - k, fmt, ap);
    va_end(ap);
    if (getenv("EMU_VERBOSE")) fprintf(stderr, "%s\n", emu_err);
  }
  emu_failed = 1;
}
const char *emu_error_message() { return emu_err; }

/* the running fiber gives control back to the scheduler; after an error the
 * scheduler never resumes it */
static void emu_yield() { swapcontext(&emu_fib[emu_cur].ctx, &emu_sched); }

void emu_syncthreads() {
  emu_fib[emu_cur].state = ST_BLOCK_BAR;
  emu_yield();
}
int emu_syncthreads_or(int pred) {
  emu_fib[emu_cur].pred = pred != 0;
  emu_syncthreads();
  return emu_bar_or;
}

static const char *op_name(int op) {
  switch (op) {
  case EMU_OP_SYNCWARP: return "__syncwarp";
  case EMU_OP_SHFL_IDX: return "__shfl_sync";
  case EMU_OP_SHFL_UP: return "__shfl_up_sync";
  case EMU_OP_SHFL_DOWN: return "__shfl_down_sync";
  case EMU_OP_SHFL_XOR: return "__shfl_xor_sync";
  default: return "__ballot_sync";
  }
}

uint64_t emu_warp_op(int op, unsigned mask, uint64_t v, int arg, int width) {
  const int t = emu_cur, lane = t & 31;
  if (!(mask >> lane & 1u)) {
    emu_fail("%s: lane %d (thread %d) calls it with mask 0x%08x, which does not name it", op_name(op),
             lane, t, mask);
    emu_yield();
  }
  emu_fiber *f = &emu_fib[t];
  f->state = ST_WARP_OP;
  f->op = op;
  f->mask = mask;
  f->val = v;
  f->arg = arg;
  f->width = width;
  emu_yield();
  return f->res;
}

/* Resolves the warp operations that can complete; returns how many lanes it
 * released, or -1 after an error. */
static int resolve_warp_ops() {
  int released = 0;
  for (int w0 = 0; w0 < emu_nthreads; w0 += 32) {
    const int nl = emu_nthreads - w0 < 32 ? emu_nthreads - w0 : 32;
    for (int l = 0; l < nl; l++) {
      emu_fiber *f = &emu_fib[w0 + l];
      if (f->state != ST_WARP_OP) continue;
      const unsigned mask = f->mask;
      int ok = 1;
      for (int q = 0; q < 32 && ok; q++) {
        if (!(mask >> q & 1u)) continue;
        if (q >= nl) {
          emu_fail("%s with mask 0x%08x in warp %d: lane %d does not exist (the warp has %d lanes)",
                   op_name(f->op), mask, w0 / 32, q, nl);
          return -1;
        }
        emu_fiber *g = &emu_fib[w0 + q];
        if (g->state == ST_DONE) {
          emu_fail("%s with mask 0x%08x in warp %d: lane %d has exited", op_name(f->op), mask,
                   w0 / 32, q);
          return -1;
        }
        if (g->state != ST_WARP_OP) { ok = 0; break; } /* may still come (if READY) */
        if (g->op != f->op || g->mask != mask || (f->op != EMU_OP_SYNCWARP && f->op != EMU_OP_BALLOT && g->width != f->width)) {
          emu_fail("warp %d: lane %d waits at %s (mask 0x%08x) while lane %d waits at %s (mask "
                   "0x%08x): divergent warp operations", w0 / 32, l, op_name(f->op), mask, q,
                   op_name(g->op), g->mask);
          return -1;
        }
      }
      if (!ok) continue;
      /* every lane of the mask is here: exchange */
      unsigned ballot = 0;
      for (int q = 0; q < 32; q++)
        if (mask >> q & 1u && emu_fib[w0 + q].val) ballot |= 1u << q;
      for (int q = 0; q < 32; q++) {
        if (!(mask >> q & 1u)) continue;
        emu_fiber *g = &emu_fib[w0 + q];
        const int wd = g->width, base = q & ~(wd - 1), sub = q & (wd - 1);
        int src = q;
        switch (g->op) {
        case EMU_OP_SHFL_IDX: src = base + (g->arg & (wd - 1)); break;
        case EMU_OP_SHFL_UP: src = sub - g->arg >= 0 ? q - g->arg : q; break;
        case EMU_OP_SHFL_DOWN: src = sub + g->arg < wd ? q + g->arg : q; break;
        case EMU_OP_SHFL_XOR: src = (sub ^ g->arg) < wd ? base + (sub ^ g->arg) : q; break;
        default: break;
        }
        if (g->op >= EMU_OP_SHFL_IDX && g->op <= EMU_OP_SHFL_XOR && !(mask >> src & 1u)) {
          emu_fail("%s with mask 0x%08x in warp %d: lane %d reads lane %d, outside the mask "
                   "(undefined on a GPU)", op_name(g->op), mask, w0 / 32, q, src);
          return -1;
        }
        g->res = g->op == EMU_OP_BALLOT ? ballot : g->op == EMU_OP_SYNCWARP ? 0 : emu_fib[w0 + src].val;
      }
      for (int q = 0; q < 32; q++)
        if (mask >> q & 1u) { emu_fib[w0 + q].state = ST_READY; released++; }
    }
  }
  return released;
}

static void emu_entry() {
  (*emu_body)();
  emu_fib[emu_cur].state = ST_DONE;
  /* returning resumes uc_link = the scheduler */
}

static int emu_schedule_mode() { /* 0 forward, 1 reverse, 2 random */
  const char *s = getenv("EMU_SCHEDULE");
  if (!s || !strcmp(s, "forward")) return 0;
  if (!strcmp(s, "reverse")) return 1;
  return 2;
}

void emu_launch(dim3 grid, dim3 block, size_t shm, const std::function<void()> &body) {
  size_t shm_max = emu_shared_optin > 48 * 1024 ? emu_shared_optin : 48 * 1024;
  if (grid.x == 0 || block.x == 0 || block.x > EMU_MAX_THREADS || shm > shm_max) {
    snprintf(emu_err, sizeof emu_err, "EMU: invalid launch (grid %u, block %u, %zu bytes of dynamic shared memory, at most %zu)",
             grid.x, block.x, shm, shm_max);
    emu_last = cudaErrorInvalidValue;
    return;
  }
  blockDim = {block.x, 1, 1};
  gridDim = {grid.x, 1, 1};
  emu_body = &body;
  const int T = (int) block.x;
  emu_nthreads = T;
  emu_failed = 0;
  const int mode = emu_schedule_mode();
  static std::mt19937 rng;
  if (mode == 2) {
    const char *s = getenv("EMU_SCHEDULE");
    const char *c = strchr(s, ':');
    static std::string seeded;
    if (seeded != s) { rng.seed(c ? (unsigned) atoi(c + 1) : 1u); seeded = s; }
  }
  static int order[EMU_MAX_THREADS];
  for (int t = 0; t < T; t++) {
    order[t] = mode == 1 ? T - 1 - t : t;
    if (!emu_stacks[t]) emu_stacks[t] = (char *) malloc(EMU_STACK);
  }
  for (unsigned b = 0; b < grid.x && !emu_failed; b++) {
    blockIdx = {b, 0, 0};
    /* dynamic shared memory starts as garbage (NaN), as uninitialised memory may */
    memset(emu_dyn_shared, 0xFF, shm);
    for (int t = 0; t < T; t++) {
      getcontext(&emu_fib[t].ctx);
      emu_fib[t].ctx.uc_stack.ss_sp = emu_stacks[t];
      emu_fib[t].ctx.uc_stack.ss_size = EMU_STACK;
      emu_fib[t].ctx.uc_link = &emu_sched;
      makecontext(&emu_fib[t].ctx, emu_entry, 0);
      emu_fib[t].state = ST_READY;
    }
    for (;;) {
      if (mode == 2) std::shuffle(order, order + T, rng);
      int ran = 0;
      for (int i = 0; i < T && !emu_failed; i++) {
        const int t = order[i];
        if (emu_fib[t].state != ST_READY) continue;
        emu_cur = t;
        threadIdx = {(unsigned) t, 0, 0};
        swapcontext(&emu_sched, &emu_fib[t].ctx);
        ran++;
      }
      if (emu_failed) break;
      if (ran > 0) continue;
      const int rel = resolve_warp_ops();
      if (rel < 0) break;
      if (rel > 0) continue;
      int n_done = 0, n_bar = 0, n_warp = 0;
      for (int t = 0; t < T; t++) {
        n_done += emu_fib[t].state == ST_DONE;
        n_bar += emu_fib[t].state == ST_BLOCK_BAR;
        n_warp += emu_fib[t].state == ST_WARP_OP;
      }
      if (n_done == T) break;
      if (n_warp > 0) {
        int t = 0;
        while (emu_fib[t].state != ST_WARP_OP) t++;
        emu_fail("deadlock: thread %d waits at %s (mask 0x%08x) for lanes that wait at "
                 "__syncthreads or at another warp operation", t, op_name(emu_fib[t].op),
                 emu_fib[t].mask);
        break;
      }
      if (n_done > 0) {
        emu_fail("divergent __syncthreads: %d threads wait at it, %d have exited", n_bar, n_done);
        break;
      }
      emu_bar_or = 0;
      for (int t = 0; t < T; t++) { emu_bar_or |= emu_fib[t].pred; emu_fib[t].pred = 0; emu_fib[t].state = ST_READY; }
    }
  }
  if (emu_failed) emu_last = cudaErrorLaunchFailure;
}
cudaError_t cudaGetDeviceCount(int *n) { *n = (int) env_num("EMU_DEVICES", 1); return cudaSuccess; }
cudaError_t cudaSetDevice(int d) { int n; cudaGetDeviceCount(&n); return d < n ? cudaSuccess : cudaErrorInvalidDevice; }
cudaError_t cudaGetDevice(int *d) { *d = 0; return cudaSuccess; }
cudaError_t cudaGetDeviceProperties(cudaDeviceProp *p, int) {
  memset(p, 0, sizeof *p);
  snprintf(p->name, sizeof p->name, "emulated device (%d SMs)", (int) env_num("EMU_SMS", 132));
  p->multiProcessorCount = (int) env_num("EMU_SMS", 132);
  p->maxThreadsPerMultiProcessor = 2048;
  p->sharedMemPerBlock = 48 * 1024;
  p->sharedMemPerBlockOptin = (size_t) env_num("EMU_SHARED_OPTIN", EMU_MAX_SHARED);
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
/* the largest frame ptxas (CUDA 13.0, sm_90) reports for the engine's kernels, k_hess_pairs (EMU_FRAME overrides) */
cudaError_t cudaFuncGetAttributes(cudaFuncAttributes *a, const void *) {
  a->maxThreadsPerBlock = 1024; a->localSizeBytes = (size_t) env_num("EMU_FRAME", 96); a->numRegs = 0; return cudaSuccess; }
cudaError_t cudaFuncSetAttribute(const void *, cudaFuncAttribute attr, int value) {
  if (attr == cudaFuncAttributeMaxDynamicSharedMemorySize) {
    if (value < 0 || value > EMU_MAX_SHARED) return emu_last = cudaErrorInvalidValue;
    if ((size_t) value > emu_shared_optin) emu_shared_optin = (size_t) value;
  }
  return cudaSuccess;
}
#include <chrono>
cudaError_t cudaEventCreate(cudaEvent_t *e) { *e = new double(0.0); return cudaSuccess; }
cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t) {
  *e = std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); return cudaSuccess; }
cudaError_t cudaEventSynchronize(cudaEvent_t) { return cudaSuccess; }
cudaError_t cudaEventElapsedTime(float *ms, cudaEvent_t a, cudaEvent_t b) { *ms = (float) (1000.0 * (*b - *a)); return cudaSuccess; }
const char *cudaGetErrorString(cudaError_t e) {
  return e == cudaSuccess ? "no error" : e == cudaErrorMemoryAllocation ? "out of memory" :
         e == cudaErrorLaunchFailure || e == cudaErrorInvalidValue ? emu_err : "emulated error"; }
const char *cudaGetErrorName(cudaError_t e) { return e == cudaSuccess ? "cudaSuccess" : e == cudaErrorMemoryAllocation ? "cudaErrorMemoryAllocation" : e == cudaErrorLaunchFailure ? "cudaErrorLaunchFailure" : "cudaErrorEmulated"; }
