/* What the emulator's stream capture and graphs (lab/cuda_emu) do, checked:
 * a captured sequence does not run during the capture, a replay reads the
 * pinned host buffer as it is at the launch, calls CUDA forbids during a
 * capture invalidate it, and (emulator only) a captured copy from pageable
 * memory and a graph that outlived its buffer are errors. Exit status 0
 * when every check holds. Run: sh lab/cuda_emu/demo/run_demo.sh (builds
 * this file with g++ against the emulator; it also compiles with nvcc, where
 * the emulator-only checks are left out). */
#include <cuda_runtime.h>
#include <stdio.h>
#include <stdlib.h>

#define N 40

__global__ void twice_plus(const double *in, double *out, int n) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) out[i] = 2.0 * in[i] + out[i];
}

static int n_bad = 0;
static void report(const char *name, int ok, const char *what) {
  printf("%-34s %s  %s\n", name, ok ? "ok   " : "FAILS", what);
  if (!ok) n_bad++;
}

/* captures: h_in -> d_in, d_out = 0, twice_plus, d_out -> h_out */
static cudaError_t capture(cudaStream_t s, double *h_in, double *d_in, double *d_out, double *h_out,
                           cudaGraph_t *g) {
  cudaError_t err = cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal);
  if (err != cudaSuccess) return err;
  cudaMemcpyAsync(d_in, h_in, N * sizeof(double), cudaMemcpyHostToDevice, s);
  cudaMemsetAsync(d_out, 0, N * sizeof(double), s);
  twice_plus<<<2, 32, 0, s>>>(d_in, d_out, N);
  cudaMemcpyAsync(h_out, d_out, N * sizeof(double), cudaMemcpyDeviceToHost, s);
  return cudaStreamEndCapture(s, g);
}

int main(void) {
  cudaStream_t s;
  double *h_in, *h_out, *d_in, *d_out;
  cudaGraph_t g = NULL;
  cudaGraphExec_t x = NULL;
  char what[160];
  cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking);
  cudaMallocHost((void **) &h_in, N * sizeof(double));
  cudaMallocHost((void **) &h_out, N * sizeof(double));
  cudaMalloc((void **) &d_in, N * sizeof(double));
  cudaMalloc((void **) &d_out, N * sizeof(double));
  for (int i = 0; i < N; i++) { h_in[i] = i; h_out[i] = -1; }
  cudaMemset(d_in, 0, N * sizeof(double));

  /* 1. nothing runs during the capture */
  cudaError_t err = capture(s, h_in, d_in, d_out, h_out, &g);
  double probe = -7;
  cudaMemcpy(&probe, d_in + 5, sizeof probe, cudaMemcpyDeviceToHost);
  snprintf(what, sizeof what, "end capture: %s; h_out[5] = %g, d_in[5] = %g after it", cudaGetErrorName(err),
           h_out[5], probe);
  report("capture records, runs nothing", err == cudaSuccess && h_out[5] == -1 && probe == 0, what);

  /* 2. replays read the host buffer at each launch */
  err = cudaGraphInstantiate(&x, g, 0);
  if (err == cudaSuccess) err = cudaGraphDestroy(g);
  if (err == cudaSuccess) err = cudaGraphLaunch(x, s);
  if (err == cudaSuccess) err = cudaStreamSynchronize(s);
  const double first = h_out[5];
  for (int i = 0; i < N; i++) h_in[i] = 100 + i;
  if (err == cudaSuccess) err = cudaGraphLaunch(x, s);
  if (err == cudaSuccess) err = cudaStreamSynchronize(s);
  snprintf(what, sizeof what, "%s; out[5] = %g, then %g after h_in changed (want 10, 210)", cudaGetErrorName(err),
           first, h_out[5]);
  report("replay reads theta at the launch", err == cudaSuccess && first == 10 && h_out[5] == 210, what);

  /* 3. a call CUDA forbids during a capture invalidates it */
  {
    void *p = NULL;
    cudaGraph_t g2 = NULL;
    err = cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal);
    cudaError_t e_sync = cudaStreamSynchronize(s);
    cudaError_t e_end = cudaStreamEndCapture(s, &g2);
    snprintf(what, sizeof what, "synchronize: %s, end: %s", cudaGetErrorName(e_sync), cudaGetErrorName(e_end));
    report("synchronize in a capture", err == cudaSuccess && e_sync != cudaSuccess && e_end != cudaSuccess &&
                                           g2 == NULL, what);
    (void) cudaGetLastError();
    err = cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal);
    cudaError_t e_mal = cudaMalloc(&p, 64);
    e_end = cudaStreamEndCapture(s, &g2);
    snprintf(what, sizeof what, "cudaMalloc: %s, end: %s", cudaGetErrorName(e_mal), cudaGetErrorName(e_end));
    report("cudaMalloc in a capture", err == cudaSuccess && e_mal != cudaSuccess && e_end != cudaSuccess &&
                                          g2 == NULL, what);
    if (e_mal == cudaSuccess) cudaFree(p);
    (void) cudaGetLastError();
  }

#ifdef EMU_CUDA_RUNTIME_H
  /* 4. (emulator) a captured copy must use pinned host memory */
  {
    static double pageable[N];
    cudaGraph_t g3 = NULL;
    cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal);
    cudaError_t e_cp = cudaMemcpyAsync(d_in, pageable, N * sizeof(double), cudaMemcpyHostToDevice, s);
    cudaError_t e_end = cudaStreamEndCapture(s, &g3);
    snprintf(what, sizeof what, "copy: %s, end: %s", cudaGetErrorName(e_cp), cudaGetErrorName(e_end));
    report("(emu) pageable memory in a capture", e_cp != cudaSuccess && e_end != cudaSuccess, what);
    (void) cudaGetLastError();
  }
  /* 5. (emulator) a graph that outlived its buffer fails at the replay */
  {
    double *d_tmp = NULL;
    cudaGraph_t g4 = NULL;
    cudaGraphExec_t x4 = NULL;
    cudaMalloc((void **) &d_tmp, N * sizeof(double));
    capture(s, h_in, d_in, d_tmp, h_out, &g4);
    cudaGraphInstantiate(&x4, g4, 0);
    cudaGraphDestroy(g4);
    cudaFree(d_tmp);
    h_out[5] = -1;
    cudaError_t e_l = cudaGraphLaunch(x4, s);
    cudaError_t e_s = cudaStreamSynchronize(s);
    snprintf(what, sizeof what, "launch: %s, synchronize: %s (%.60s...)", cudaGetErrorName(e_l),
             cudaGetErrorName(e_s), cudaGetErrorString(e_s));
    report("(emu) stale graph", e_s == cudaErrorIllegalAddress && h_out[5] == -1, what);
    cudaGraphExecDestroy(x4);
  }
#endif

  cudaGraphExecDestroy(x);
#ifdef EMU_CUDA_RUNTIME_H
  {
    long ng = -1, nx = -1;
    emu_graph_counts(&ng, &nx);
    snprintf(what, sizeof what, "%ld graphs, %ld executable graphs live", ng, nx);
    report("(emu) no graph left behind", ng == 0 && nx == 0, what);
  }
#endif
  cudaFree(d_in);
  cudaFree(d_out);
  cudaFreeHost(h_in);
  cudaFreeHost(h_out);
  cudaStreamDestroy(s);
  printf(n_bad ? "%d check(s) failed\n" : "every graph check held\n", n_bad);
  return n_bad ? 1 : 0;
}
