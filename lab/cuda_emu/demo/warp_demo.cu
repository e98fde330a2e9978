/* Kernels that show what the warp-level emulator (lab/cuda_emu) catches:
 * each "broken" kernel is a classic warp-programming bug that compiles and
 * often passes on older GPUs or in a block-barrier emulator; the "good"
 * kernels are the correct versions. Run: sh lab/cuda_emu/demo/run_demo.sh
 * (builds this file with g++ against the emulator; also compiles with nvcc). */
#include <cuda_runtime.h>
#include <stdio.h>
#include <math.h>

/* sum of 32 values per warp in a fixed shuffle tree: correct */
__global__ void good_warp_sum(const double *x, double *out) {
  double v = x[blockIdx.x * blockDim.x + threadIdx.x];
  for (int off = 16; off > 0; off >>= 1) v += __shfl_down_sync(0xffffffffu, v, off);
  if ((threadIdx.x & 31) == 0) out[(blockIdx.x * blockDim.x + threadIdx.x) / 32] = v;
}

/* the same sum through shared memory, "warp-synchronous" without __syncwarp:
 * wrong since Volta (independent thread scheduling); lanes read partner
 * values before they are written */
__global__ void broken_no_syncwarp(const double *x, double *out) {
  __shared__ double s[128];
  const int t = threadIdx.x, lane = t & 31;
  s[t] = x[blockIdx.x * blockDim.x + t];
  for (int off = 16; off > 0; off >>= 1)
    if (lane < off) s[t] += s[t + off];
  if (lane == 0) out[(blockIdx.x * blockDim.x + t) / 32] = s[t];
}

/* the shared-memory version with the barriers it needs: correct */
__global__ void good_with_syncwarp(const double *x, double *out) {
  __shared__ double s[128];
  const int t = threadIdx.x, lane = t & 31;
  s[t] = x[blockIdx.x * blockDim.x + t];
  __syncwarp();
  for (int off = 16; off > 0; off >>= 1) {
    double v = lane < off ? s[t + off] : 0.0;
    __syncwarp();
    if (lane < off) s[t] += v;
    __syncwarp();
  }
  if (lane == 0) out[(blockIdx.x * blockDim.x + t) / 32] = s[t];
}

/* a full mask in a partial warp (blockDim 48: warp 1 has 16 lanes) */
__global__ void broken_partial_warp(const double *x, double *out) {
  double v = threadIdx.x < blockDim.x ? x[threadIdx.x] : 0.0;
  for (int off = 16; off > 0; off >>= 1) v += __shfl_down_sync(0xffffffffu, v, off);
  if ((threadIdx.x & 31) == 0) out[threadIdx.x / 32] = v;
}

/* lanes that exited early are still named in the mask */
__global__ void broken_exited_lane(const double *x, double *out, int n) {
  const int t = threadIdx.x;
  if (t >= n) return;
  double v = x[t];
  for (int off = 16; off > 0; off >>= 1) v += __shfl_down_sync(0xffffffffu, v, off);
  if (t == 0) out[0] = v;
}

/* the fix: every lane takes part, out-of-range lanes with 0 */
__global__ void good_inactive_zero(const double *x, double *out, int n) {
  const int t = threadIdx.x;
  double v = t < n ? x[t] : 0.0;
  for (int off = 16; off > 0; off >>= 1) v += __shfl_down_sync(0xffffffffu, v, off);
  if (t == 0) out[0] = v;
}

/* a half-warp mask whose shuffle reads outside it (lane 8 reads lane 16) */
__global__ void broken_read_outside_mask(const double *x, double *out) {
  const int t = threadIdx.x;
  double v = x[t];
  if (t < 16) v += __shfl_down_sync(0x0000ffffu, v, 8);
  if (t < 16) v += __shfl_down_sync(0x0000ffffu, v, 8);
  if (t == 0) out[0] = v;
}

static int report(const char *name, int expect_ok, double got, double want) {
  cudaError_t e = cudaGetLastError();
  int ok = e == cudaSuccess && fabs(got - want) <= 1e-12 * fabs(want);
  printf("%-26s %-8s %s", name, ok ? "correct" : "FAILS", e != cudaSuccess ? cudaGetErrorString(e) : "");
  if (e == cudaSuccess && !ok) printf("wrong result %.17g (expected %.17g)", got, want);
  printf("\n");
  return ok == expect_ok;
}

int main() {
  const int n = 128;
  double *x, *out;
  cudaMallocHost((void **) &x, n * sizeof(double));
  cudaMallocHost((void **) &out, 8 * sizeof(double));
  double *dx, *dout;
  cudaMalloc((void **) &dx, n * sizeof(double));
  cudaMalloc((void **) &dout, 8 * sizeof(double));
  double want32 = 0.0, want48[2] = {0.0, 0.0}, want20 = 0.0, want16 = 0.0;
  for (int i = 0; i < n; i++) {
    x[i] = 1.0 + i * 0.25;
    if (i < 32) want32 += x[i];
    if (i < 48) want48[i / 32] += x[i];
    if (i < 20) want20 += x[i];
  }
  want16 = x[0] + x[8] + x[16] + x[24];
  cudaMemcpy(dx, x, n * sizeof(double), cudaMemcpyHostToDevice);
  int all = 1;
  cudaMemset(dout, 0, 8 * sizeof(double));
  good_warp_sum<<<1, 128>>>(dx, dout);
  cudaDeviceSynchronize();
  cudaMemcpy(out, dout, 8 * sizeof(double), cudaMemcpyDeviceToHost);
  all &= report("good_warp_sum", 1, out[0], want32);
  cudaMemset(dout, 0, 8 * sizeof(double));
  broken_no_syncwarp<<<1, 128>>>(dx, dout);
  cudaDeviceSynchronize();
  cudaMemcpy(out, dout, 8 * sizeof(double), cudaMemcpyDeviceToHost);
  all &= report("broken_no_syncwarp", 0, out[0], want32);
  cudaMemset(dout, 0, 8 * sizeof(double));
  good_with_syncwarp<<<1, 128>>>(dx, dout);
  cudaDeviceSynchronize();
  cudaMemcpy(out, dout, 8 * sizeof(double), cudaMemcpyDeviceToHost);
  all &= report("good_with_syncwarp", 1, out[0], want32);
  cudaMemset(dout, 0, 8 * sizeof(double));
  broken_partial_warp<<<1, 48>>>(dx, dout);
  cudaDeviceSynchronize();
  cudaMemcpy(out, dout, 8 * sizeof(double), cudaMemcpyDeviceToHost);
  all &= report("broken_partial_warp", 0, out[0], want48[0]);
  cudaMemset(dout, 0, 8 * sizeof(double));
  broken_exited_lane<<<1, 32>>>(dx, dout, 20);
  cudaDeviceSynchronize();
  cudaMemcpy(out, dout, 8 * sizeof(double), cudaMemcpyDeviceToHost);
  all &= report("broken_exited_lane", 0, out[0], want20);
  cudaMemset(dout, 0, 8 * sizeof(double));
  good_inactive_zero<<<1, 32>>>(dx, dout, 20);
  cudaDeviceSynchronize();
  cudaMemcpy(out, dout, 8 * sizeof(double), cudaMemcpyDeviceToHost);
  all &= report("good_inactive_zero", 1, out[0], want20);
  cudaMemset(dout, 0, 8 * sizeof(double));
  broken_read_outside_mask<<<1, 32>>>(dx, dout);
  cudaDeviceSynchronize();
  cudaMemcpy(out, dout, 8 * sizeof(double), cudaMemcpyDeviceToHost);
  all &= report("broken_read_outside_mask", 0, out[0], want16);
  printf(all ? "every broken kernel was caught, every good one passed\n"
             : "UNEXPECTED: see above\n");
  return all ? 0 : 1;
}
