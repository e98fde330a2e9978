/*
 * cuda_devices.cu -- device discovery for iclv_devices() and
 * iclv_cuda_available(). Called only when the user asks; never at load.
 * A machine without a driver reports zero devices and the CUDA reason.
 */
#include <cuda_runtime.h>
#include <string.h>
#include <stdio.h>

#include "cuda_backend.h"

extern "C" int iclv_cuda_list_devices(iclv_device_info *info, int max_devices,
                                      int *n_devices, char *reason, int reason_len) {
  *n_devices = 0;
  if (reason_len > 0) reason[0] = '\0';
  int count = 0;
  cudaError_t err = cudaGetDeviceCount(&count);
  if (err != cudaSuccess) {
    snprintf(reason, (size_t) reason_len, "cudaGetDeviceCount: %s (%s)",
             cudaGetErrorString(err), cudaGetErrorName(err));
    cudaGetLastError(); /* clear the sticky-free error state */
    return ICLV_OK;
  }
  if (count == 0) {
    snprintf(reason, (size_t) reason_len, "no CUDA device is present");
    return ICLV_OK;
  }
  int n = 0;
  for (int d = 0; d < count && n < max_devices; d++) {
    cudaDeviceProp prop;
    err = cudaGetDeviceProperties(&prop, d);
    if (err != cudaSuccess) {
      snprintf(reason, (size_t) reason_len, "cudaGetDeviceProperties(%d): %s", d, cudaGetErrorString(err));
      continue;
    }
    size_t free_b = 0, total_b = 0;
    int prev = -1;
    cudaGetDevice(&prev);
    if (cudaSetDevice(d) == cudaSuccess && cudaMemGetInfo(&free_b, &total_b) == cudaSuccess) {
      info[n].free_bytes = (double) free_b;
      info[n].total_bytes = (double) total_b;
    } else {
      info[n].free_bytes = -1;
      info[n].total_bytes = (double) prop.totalGlobalMem;
      cudaGetLastError();
    }
    if (prev >= 0) cudaSetDevice(prev);
    strncpy(info[n].name, prop.name, sizeof(info[n].name) - 1);
    info[n].name[sizeof(info[n].name) - 1] = '\0';
    info[n].major = prop.major;
    info[n].minor = prop.minor;
    info[n].multiprocessors = prop.multiProcessorCount;
    n++;
  }
  *n_devices = n;
  return ICLV_OK;
}
