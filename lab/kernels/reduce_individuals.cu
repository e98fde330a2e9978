/* llm.c-style kernel lab (excluded from the package build): variants of the
 * sum over individuals of per-individual rows (N x W, row-major), the job of
 * src/cuda/cuda_kernels.cuh k_reduce_groups. Every variant is first checked
 * against the CPU reference of ITS fixed order (bit for bit) and against a
 * long-double sum (relative 1e-13), then timed with CUDA events.
 *   variant 1  one thread per column, serial over individuals (the v1 engine's
 *              k_sum_scores): the order the CPU engine uses
 *   variant 2  one warp per column, groups of 32 by a shuffle tree, groups in
 *              order (the v2 engine's k_reduce_groups): the winner in src/cuda
 *   variant 3  as 2 with two columns per warp half (16-lane trees): fewer idle
 *              lanes for small N, another fixed order
 * Build and run on a GPU:  nvcc -O3 -arch=sm_90 -fmad=false reduce_individuals.cu -o ri && ./ri [N] [W]
 * Check through the emulator (no GPU; correctness only, timings meaningless):
 *   sh lab/kernels/run_emu.sh reduce_individuals.cu 100 7 */
#include <cuda_runtime.h>
#include <stdio.h>
#include <stdlib.h>
#include <math.h>

__global__ void v1_serial(const double *x, int N, int W, double *out) {
  const int c = blockIdx.x * blockDim.x + threadIdx.x;
  if (c >= W) return;
  double a = 0.0;
  for (int n = 0; n < N; n++) a += x[(size_t) n * W + c];
  out[c] = a;
}

__global__ void v2_warp_groups(const double *x, int N, int W, double *out) {
  const int lane = threadIdx.x & 31;
  const int c = blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
  if (c >= W) return;
  double run = 0.0;
  for (int g = 0; g < (N + 31) / 32; g++) {
    const int n = g * 32 + lane;
    double v = n < N ? x[(size_t) n * W + c] : 0.0;
    for (int off = 16; off > 0; off >>= 1) v += __shfl_down_sync(0xffffffffu, v, off);
    run += v;
  }
  if (lane == 0) out[c] = run;
}

__global__ void v3_half_warps(const double *x, int N, int W, double *out) {
  const int lane = threadIdx.x & 31, half = lane >> 4, hl = lane & 15;
  const int c0 = (blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5)) * 2;
  if (c0 >= W) return;
  const int c = c0 + half;
  double run = 0.0;
  for (int g = 0; g < (N + 15) / 16; g++) {
    const int n = g * 16 + hl;
    double v = n < N && c < W ? x[(size_t) n * W + c] : 0.0;
    for (int off = 8; off > 0; off >>= 1) v += __shfl_down_sync(0xffffffffu, v, off, 16);
    run += v;
  }
  if (hl == 0 && c < W) out[c] = run;
}

/* CPU references of each variant's order */
static void ref_serial(const double *x, int N, int W, double *o) {
  for (int c = 0; c < W; c++) { double a = 0.0; for (int n = 0; n < N; n++) a += x[(size_t) n * W + c]; o[c] = a; }
}
static void ref_groups(const double *x, int N, int W, int G, double *o) {
  for (int c = 0; c < W; c++) {
    double run = 0.0;
    for (int g = 0; g < (N + G - 1) / G; g++) {
      double v[32];
      for (int l = 0; l < G; l++) { int n = g * G + l; v[l] = n < N ? x[(size_t) n * W + c] : 0.0; }
      for (int off = G / 2; off > 0; off >>= 1)
        for (int l = 0; l < off; l++) v[l] += v[l + off];
      run += v[0];
    }
    o[c] = run;
  }
}

int main(int argc, char **argv) {
  const int N = argc > 1 ? atoi(argv[1]) : 100000, W = argc > 2 ? atoi(argv[2]) : 55;
  const size_t n = (size_t) N * W;
  double *hx = (double *) malloc(n * sizeof(double)), *ho = (double *) malloc(W * sizeof(double)),
         *hr = (double *) malloc(W * sizeof(double));
  srand(1);
  for (size_t i = 0; i < n; i++) hx[i] = (rand() / (double) RAND_MAX - 0.5) * exp((rand() % 20) - 10.0);
  double *dx, *dout;
  cudaMalloc((void **) &dx, n * sizeof(double));
  cudaMalloc((void **) &dout, W * sizeof(double));
  cudaMemcpy(dx, hx, n * sizeof(double), cudaMemcpyHostToDevice);
  cudaEvent_t e0, e1;
  cudaEventCreate(&e0);
  cudaEventCreate(&e1);
  int ok_all = 1;
  for (int v = 1; v <= 3; v++) {
    const int per_block = 4;
    if (v == 1) ref_serial(hx, N, W, hr); else ref_groups(hx, N, W, v == 2 ? 32 : 16, hr);
    for (int rep = 0; rep < 11; rep++) {
      if (rep == 1) cudaEventRecord(e0);
      if (v == 1) v1_serial<<<(W + 127) / 128, 128>>>(dx, N, W, dout);
      else if (v == 2) v2_warp_groups<<<(W + per_block - 1) / per_block, 32 * per_block>>>(dx, N, W, dout);
      else v3_half_warps<<<((W + 1) / 2 + per_block - 1) / per_block, 32 * per_block>>>(dx, N, W, dout);
      if (rep == 0) {
        cudaMemcpy(ho, dout, W * sizeof(double), cudaMemcpyDeviceToHost);
        int bits = 1, close = 1;
        for (int c = 0; c < W; c++) {
          long double s = 0; for (int i = 0; i < N; i++) s += hx[(size_t) i * W + c];
          if (ho[c] != hr[c]) bits = 0;
          if (fabsl(ho[c] - s) > 1e-13L * fabsl(s) + 1e-300L) close = 0;
        }
        cudaError_t err = cudaGetLastError();
        if (!bits || !close || err != cudaSuccess) {
          printf("variant %d: WRONG (order %s, accuracy %s, %s): not timed\n", v, bits ? "ok" : "differs",
                 close ? "ok" : "off", cudaGetErrorString(err));
          ok_all = 0;
          break;
        }
      }
    }
    if (!ok_all) continue;
    cudaEventRecord(e1);
    cudaEventSynchronize(e1);
    float ms = 0;
    cudaEventElapsedTime(&ms, e0, e1);
    printf("variant %d: checked (bit-identical to its CPU order, 1e-13 to long double); %.4f ms per call (N %d, W %d)\n",
           v, ms / 10, N, W);
  }
  return ok_all ? 0 : 1;
}
