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
#include <map>
#include <deque>
#include <thread>
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

/* 1 when the launch configuration is valid; else 0, with the message and
 * emu_last = cudaErrorInvalidValue (what cudaGetLastError reports after it) */
static int emu_config_ok(dim3 grid, dim3 block, size_t shm) {
  size_t shm_max = emu_shared_optin > 48 * 1024 ? emu_shared_optin : 48 * 1024;
  if (grid.x == 0 || block.x == 0 || block.x > EMU_MAX_THREADS || shm > shm_max) {
    snprintf(emu_err, sizeof emu_err, "EMU: invalid launch (grid %u, block %u, %zu bytes of dynamic shared memory, at most %zu)",
             grid.x, block.x, shm, shm_max);
    emu_last = cudaErrorInvalidValue;
    return 0;
  }
  return 1;
}

void emu_launch(dim3 grid, dim3 block, size_t shm, const std::function<void()> &body) {
  if (!emu_config_ok(grid, block, shm)) return;
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
/* ---- memory: live allocations, the quarantine of freed device blocks ---- */
static std::map<const char *, size_t> emu_dev, emu_pinned; /* base -> bytes */
static std::deque<std::pair<char *, size_t>> emu_quar;     /* freed device blocks kept out of reuse */
static size_t emu_quar_bytes = 0;
static long emu_live = 0;

/* 1 when [p, p + n) lies inside one allocation of m (n = 0: p may be its end) */
static int emu_in(const std::map<const char *, size_t> &m, const void *p, size_t n) {
  const char *c = (const char *) p;
  auto it = m.upper_bound(c);
  if (it == m.begin()) return 0;
  --it;
  return c + n <= it->first + it->second;
}

/* ---- stream capture and graphs ---- */
struct emu_node {
  int type = 0;                       /* EMU_N_COPY, EMU_N_SET, EMU_N_KERNEL */
  void *dst = nullptr;                /* copy, set */
  const void *src = nullptr;          /* copy */
  size_t n = 0;                       /* bytes */
  int val = 0;                        /* set */
  cudaMemcpyKind kind = cudaMemcpyDeviceToDevice;
  dim3 grid, block;                   /* kernel */
  size_t shm = 0;
  std::function<void()> body;         /* the kernel with its arguments, copied at capture */
  std::vector<const void *> ptrs;     /* its pointer arguments */
};
enum { EMU_N_COPY = 0, EMU_N_SET, EMU_N_KERNEL };
struct emu_graph {
  std::vector<emu_node> nodes;
  int exec; /* 0: cudaGraph_t, 1: cudaGraphExec_t */
};
static struct {
  int active, invalid;
  cudaStream_t stream;
  cudaStreamCaptureMode mode;
  std::thread::id thread;
  std::vector<emu_node> nodes;
} emu_cap;
static long emu_n_graphs = 0, emu_n_execs = 0;
static cudaError_t emu_pending = cudaSuccess; /* a replay's error, for the next synchronisation */
extern "C" void emu_graph_counts(long *graphs, long *execs) { *graphs = emu_n_graphs; *execs = emu_n_execs; }

static void emu_msg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void emu_msg(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(emu_err, sizeof emu_err, fmt, ap);
  va_end(ap);
  if (getenv("EMU_VERBOSE")) fprintf(stderr, "%s\n", emu_err);
}

/* A call that CUDA does not permit while a capture is under way (global
 * mode: from any thread; thread-local: from the capturing thread): fails
 * and invalidates the capture. cudaSuccess when permitted. */
static cudaError_t emu_unsafe(const char *call) {
  if (!emu_cap.active || emu_cap.mode == cudaStreamCaptureModeRelaxed) return cudaSuccess;
  if (emu_cap.mode == cudaStreamCaptureModeThreadLocal && std::this_thread::get_id() != emu_cap.thread)
    return cudaSuccess;
  emu_cap.invalid = 1;
  emu_msg("EMU: %s while stream %d is being captured (not permitted; the capture is invalidated)", call,
          emu_cap.stream);
  return emu_last = cudaErrorStreamCaptureUnsupported;
}

/* 1 when an asynchronous operation on st is to be recorded (st is being
 * captured); 0 to run it now, unless *err says it may not run at all (the
 * legacy stream during a capture). */
static int emu_recording(cudaStream_t st, const char *call, cudaError_t *err) {
  *err = cudaSuccess;
  if (!emu_cap.active) return 0;
  if (st == emu_cap.stream) return 1;
  if (st == 0 && emu_cap.mode != cudaStreamCaptureModeRelaxed) {
    emu_cap.invalid = 1;
    emu_msg("EMU: %s on the legacy stream 0 while stream %d is being captured (the capture is invalidated)",
            call, emu_cap.stream);
    *err = emu_last = cudaErrorStreamCaptureImplicit;
  }
  return 0;
}

/* why a copy's or memset's buffers are not live allocations of the right
 * kinds (device: cudaMalloc; host: cudaMallocHost), or NULL when they are */
static const char *emu_copy_bad(const emu_node &x) {
  if (x.type == EMU_N_SET) return emu_in(emu_dev, x.dst, x.n) ? NULL : "its destination is not in a live device buffer";
  const int d_dev = x.kind != cudaMemcpyDeviceToHost, s_dev = x.kind != cudaMemcpyHostToDevice;
  if (!emu_in(d_dev ? emu_dev : emu_pinned, x.dst, x.n))
    return d_dev ? "its destination is not in a live device buffer"
                 : "its destination is not in a live pinned host buffer (cudaMallocHost)";
  if (!emu_in(s_dev ? emu_dev : emu_pinned, x.src, x.n))
    return s_dev ? "its source is not in a live device buffer"
                 : "its source is not in a live pinned host buffer (cudaMallocHost)";
  return NULL;
}

cudaError_t cudaStreamCreateWithFlags(cudaStream_t *s, unsigned) {
  static int next = 1;
  *s = next++;
  return cudaSuccess;
}
cudaError_t cudaStreamDestroy(cudaStream_t s) {
  if (emu_cap.active && s == emu_cap.stream) { emu_cap.active = 0; emu_cap.nodes.clear(); }
  return cudaSuccess;
}
cudaError_t cudaMalloc(void **p, size_t n) {
  *p = NULL;
  if (cudaError_t e = emu_unsafe("cudaMalloc")) return e;
  if (n > (size_t) env_num("EMU_MAX_ALLOC", 4e9)) { emu_last = cudaErrorMemoryAllocation; return cudaErrorMemoryAllocation; }
  *p = malloc(n ? n : 1);
  if (!*p) return cudaErrorMemoryAllocation;
  emu_dev[(const char *) *p] = n;
  emu_live++;
  return cudaSuccess;
}
cudaError_t cudaFree(void *p) {
  if (!p) return cudaSuccess;
  if (cudaError_t e = emu_unsafe("cudaFree")) return e;
  auto it = emu_dev.find((const char *) p);
  if (it == emu_dev.end()) {
    emu_msg("EMU: cudaFree of %p, which is not a live device allocation", p);
    return emu_last = cudaErrorInvalidValue;
  }
  const size_t n = it->second, cap = (size_t) env_num("EMU_QUARANTINE", 64.0 * 1024 * 1024);
  emu_dev.erase(it);
  emu_live--;
  if (n <= cap) {
    /* keep it out of reuse, filled with NaN, so a stale pointer neither
     * aliases a new buffer nor reads the old data */
    memset(p, 0xFF, n);
    emu_quar.emplace_back((char *) p, n);
    emu_quar_bytes += n;
    while (emu_quar_bytes > cap) {
      free(emu_quar.front().first);
      emu_quar_bytes -= emu_quar.front().second;
      emu_quar.pop_front();
    }
  } else {
    free(p);
  }
  if (getenv("EMU_TRACE")) fprintf(stderr, "EMU cudaFree: %ld live\n", emu_live);
  return cudaSuccess;
}
extern "C" long emu_live_allocs() { return emu_live; }
cudaError_t cudaMallocHost(void **p, size_t n) {
  *p = NULL;
  if (cudaError_t e = emu_unsafe("cudaMallocHost")) return e;
  *p = malloc(n ? n : 1);
  if (!*p) return cudaErrorMemoryAllocation;
  emu_pinned[(const char *) *p] = n;
  return cudaSuccess;
}
cudaError_t cudaFreeHost(void *p) {
  if (!p) return cudaSuccess;
  if (cudaError_t e = emu_unsafe("cudaFreeHost")) return e;
  if (!emu_pinned.erase((const char *) p)) {
    emu_msg("EMU: cudaFreeHost of %p, which is not a live pinned allocation", p);
    return emu_last = cudaErrorInvalidValue;
  }
  free(p);
  return cudaSuccess;
}
cudaError_t cudaMemcpy(void *d, const void *s, size_t n, cudaMemcpyKind) {
  if (cudaError_t e = emu_unsafe("cudaMemcpy")) return e;
  memcpy(d, s, n);
  return cudaSuccess;
}
/* Records copy or memset node x of call `what` into the capture of stream
 * st, after emu_copy_bad's checks (a bad one invalidates the capture). */
static cudaError_t emu_capture_node(emu_node x, const char *what, cudaStream_t st) {
  if (const char *why = emu_copy_bad(x)) {
    emu_cap.invalid = 1;
    emu_msg("EMU: %s of %zu bytes captured on stream %d: %s", what, x.n, st, why);
    return emu_last = cudaErrorInvalidValue;
  }
  emu_cap.nodes.push_back(std::move(x));
  return cudaSuccess;
}
cudaError_t cudaMemcpyAsync(void *d, const void *s, size_t n, cudaMemcpyKind k, cudaStream_t st) {
  cudaError_t err;
  if (emu_recording(st, "cudaMemcpyAsync", &err)) {
    emu_node x;
    x.type = EMU_N_COPY; x.dst = d; x.src = s; x.n = n; x.kind = k;
    return emu_capture_node(std::move(x), "cudaMemcpyAsync", st);
  }
  if (err != cudaSuccess) return err;
  memcpy(d, s, n);
  return cudaSuccess;
}
cudaError_t cudaMemset(void *d, int v, size_t n) {
  if (cudaError_t e = emu_unsafe("cudaMemset")) return e;
  memset(d, v, n);
  return cudaSuccess;
}
cudaError_t cudaMemsetAsync(void *d, int v, size_t n, cudaStream_t st) {
  cudaError_t err;
  if (emu_recording(st, "cudaMemsetAsync", &err)) {
    emu_node x;
    x.type = EMU_N_SET; x.dst = d; x.n = n; x.val = v;
    return emu_capture_node(std::move(x), "cudaMemsetAsync", st);
  }
  if (err != cudaSuccess) return err;
  memset(d, v, n);
  return cudaSuccess;
}
void emu_submit(dim3 grid, dim3 block, size_t shm, cudaStream_t st, std::function<void()> body,
                std::vector<const void *> ptrs) {
  cudaError_t err;
  if (emu_recording(st, "a kernel launch", &err)) {
    /* a bad configuration is reported at the launch, as CUDA does, and
     * invalidates the capture; nothing runs now */
    if (!emu_config_ok(grid, block, shm)) { emu_cap.invalid = 1; return; }
    emu_node x;
    x.type = EMU_N_KERNEL; x.grid = grid; x.block = block; x.shm = shm;
    x.body = std::move(body);
    x.ptrs = std::move(ptrs);
    emu_cap.nodes.push_back(std::move(x));
    return;
  }
  if (err != cudaSuccess) return;
  emu_launch(grid, block, shm, body);
}
cudaError_t cudaStreamSynchronize(cudaStream_t) {
  if (cudaError_t e = emu_unsafe("cudaStreamSynchronize")) return e;
  cudaError_t e = emu_pending;
  emu_pending = cudaSuccess;
  return e;
}
cudaError_t cudaDeviceSynchronize() {
  if (cudaError_t e = emu_unsafe("cudaDeviceSynchronize")) return e;
  cudaError_t e = emu_pending;
  emu_pending = cudaSuccess;
  return e;
}
cudaError_t cudaGetLastError() { cudaError_t e = emu_last; emu_last = cudaSuccess; return e; }

/* fault injection: EMU_FAIL=<call name> makes that graph call fail with
 * cudaErrorUnknown (cudaStreamEndCapture still ends the capture, as CUDA's
 * does when it fails), so callers' error paths can be tested */
static cudaError_t emu_injected(const char *call) {
  const char *f = getenv("EMU_FAIL");
  if (f == NULL || strcmp(f, call) != 0) return cudaSuccess;
  emu_msg("EMU: %s failed on purpose (EMU_FAIL=%s)", call, f);
  return emu_last = cudaErrorUnknown;
}

cudaError_t cudaStreamBeginCapture(cudaStream_t s, cudaStreamCaptureMode mode) {
  if (cudaError_t e = emu_injected("cudaStreamBeginCapture")) return e;
  if (s == 0) {
    emu_msg("EMU: cudaStreamBeginCapture on the legacy stream 0 (not permitted)");
    return emu_last = cudaErrorStreamCaptureUnsupported;
  }
  if (emu_cap.active) {
    emu_msg("EMU: cudaStreamBeginCapture on stream %d while stream %d is being captured (the emulator "
            "captures one stream at a time)", s, emu_cap.stream);
    return emu_last = cudaErrorIllegalState;
  }
  emu_cap.active = 1;
  emu_cap.invalid = 0;
  emu_cap.stream = s;
  emu_cap.mode = mode;
  emu_cap.thread = std::this_thread::get_id();
  emu_cap.nodes.clear();
  return cudaSuccess;
}
cudaError_t cudaStreamEndCapture(cudaStream_t s, cudaGraph_t *g) {
  *g = NULL;
  if (!emu_cap.active || s != emu_cap.stream) {
    emu_msg("EMU: cudaStreamEndCapture on stream %d, which is not being captured", s);
    return emu_last = cudaErrorIllegalState;
  }
  emu_cap.active = 0;
  if (cudaError_t e = emu_injected("cudaStreamEndCapture")) { emu_cap.nodes.clear(); return e; }
  if (emu_cap.invalid) {
    emu_cap.nodes.clear();
    emu_msg("EMU: the capture of stream %d was invalidated by an operation it did not permit", s);
    return emu_last = cudaErrorStreamCaptureInvalidated;
  }
  *g = new emu_graph{std::move(emu_cap.nodes), 0};
  emu_cap.nodes.clear();
  emu_n_graphs++;
  return cudaSuccess;
}
cudaError_t cudaGraphInstantiate(cudaGraphExec_t *x, cudaGraph_t g, unsigned long long) {
  *x = NULL;
  if (cudaError_t e = emu_injected("cudaGraphInstantiate")) return e;
  if (g == NULL || g->exec) {
    emu_msg("EMU: cudaGraphInstantiate of something that is not a graph");
    return emu_last = cudaErrorInvalidValue;
  }
  *x = new emu_graph{g->nodes, 1}; /* a copy: the graph may be destroyed now */
  emu_n_execs++;
  return cudaSuccess;
}
cudaError_t cudaGraphLaunch(cudaGraphExec_t x, cudaStream_t s) {
  if (cudaError_t e = emu_injected("cudaGraphLaunch")) return e;
  if (x == NULL || !x->exec) {
    emu_msg("EMU: cudaGraphLaunch of something that is not an instantiated graph");
    return emu_last = cudaErrorInvalidValue;
  }
  if (emu_cap.active && (s == emu_cap.stream || s == 0)) {
    emu_cap.invalid = 1;
    emu_msg("EMU: cudaGraphLaunch into a stream capture is not emulated");
    return emu_last = cudaErrorStreamCaptureUnsupported;
  }
  if (getenv("EMU_TRACE")) fprintf(stderr, "EMU cudaGraphLaunch: %zu nodes\n", x->nodes.size());
  /* the nodes in order, as at capture; buffers as they are now */
  const cudaError_t before = emu_last;
  emu_last = cudaSuccess;
  for (size_t i = 0; i < x->nodes.size() && emu_pending == cudaSuccess; i++) {
    const emu_node &nd = x->nodes[i];
    if (nd.type != EMU_N_KERNEL) {
      if (const char *why = emu_copy_bad(nd)) {
        emu_msg("EMU: graph replay, node %zu (%s of %zu bytes): %s (the graph outlived a buffer)", i,
                nd.type == EMU_N_COPY ? "copy" : "memset", nd.n, why);
        emu_pending = cudaErrorIllegalAddress;
      } else if (nd.type == EMU_N_COPY) {
        memcpy(nd.dst, nd.src, nd.n);
      } else {
        memset(nd.dst, nd.val, nd.n);
      }
      continue;
    }
    for (size_t a = 0; a < nd.ptrs.size(); a++) {
      if (nd.ptrs[a] != NULL && !emu_in(emu_dev, nd.ptrs[a], 0)) {
        emu_msg("EMU: graph replay, node %zu (kernel): pointer argument %zu (%p) is not in a live device "
                "buffer (the graph outlived a buffer)", i, a + 1, nd.ptrs[a]);
        emu_pending = cudaErrorIllegalAddress;
        break;
      }
    }
    if (emu_pending != cudaSuccess) break;
    emu_launch(nd.grid, nd.block, nd.shm, nd.body);
    if (emu_last != cudaSuccess) { emu_pending = emu_last; emu_last = cudaSuccess; }
  }
  emu_last = before;
  return cudaSuccess;
}
cudaError_t cudaGraphDestroy(cudaGraph_t g) {
  if (g == NULL || g->exec) return emu_last = cudaErrorInvalidValue;
  delete g;
  emu_n_graphs--;
  return cudaSuccess;
}
cudaError_t cudaGraphExecDestroy(cudaGraphExec_t x) {
  if (x == NULL || !x->exec) return emu_last = cudaErrorInvalidValue;
  delete x;
  emu_n_execs--;
  return cudaSuccess;
}
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
  switch (e) {
  case cudaSuccess: return "no error";
  case cudaErrorMemoryAllocation: return "out of memory";
  case cudaErrorInvalidDevice: return "emulated error";
  default: return emu_err; /* the message of the failing call */
  }
}
const char *cudaGetErrorName(cudaError_t e) {
  switch (e) {
  case cudaSuccess: return "cudaSuccess";
  case cudaErrorMemoryAllocation: return "cudaErrorMemoryAllocation";
  case cudaErrorInvalidValue: return "cudaErrorInvalidValue";
  case cudaErrorLaunchFailure: return "cudaErrorLaunchFailure";
  case cudaErrorIllegalState: return "cudaErrorIllegalState";
  case cudaErrorIllegalAddress: return "cudaErrorIllegalAddress";
  case cudaErrorStreamCaptureUnsupported: return "cudaErrorStreamCaptureUnsupported";
  case cudaErrorStreamCaptureInvalidated: return "cudaErrorStreamCaptureInvalidated";
  case cudaErrorStreamCaptureImplicit: return "cudaErrorStreamCaptureImplicit";
  case cudaErrorUnknown: return "cudaErrorUnknown";
  default: return "cudaErrorEmulated";
  }
}
