// Status strings, device detection and the thread's last CUDA error.
#include <cuda_runtime.h>

#include "cuda_check.hpp"
#include "slicer/slicer_cuda.h"

namespace slicer::cuda {
namespace {
thread_local const char* last_error = "";
}  // namespace

int CudaStatus(cudaError_t err) {
  last_error = cudaGetErrorString(err);
  if (err == cudaErrorNoDevice || err == cudaErrorInsufficientDriver) {
    return SLICER_ERR_NO_DEVICE;
  }
  if (err == cudaErrorMemoryAllocation) return SLICER_ERR_OUT_OF_MEMORY;
  return SLICER_ERR_CUDA_RUNTIME;
}

}  // namespace slicer::cuda

extern "C" {

const char* slicer_cuda_status_string(int status) {
  switch (status) {
    case SLICER_ERR_NO_DEVICE:
      return "no CUDA driver or CUDA device is available";
    case SLICER_ERR_CUDA_RUNTIME:
      return "a CUDA runtime call failed";
    case SLICER_ERR_TEMP_TOO_SMALL:
      return "the temporary device buffer is smaller than the size query asked for";
    default:
      return slicer_status_string(status);
  }
}

int slicer_cuda_available(void) {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    cudaGetLastError();  // clear the sticky-free error so later calls start clean
    return 0;
  }
  return count > 0 ? 1 : 0;
}

const char* slicer_cuda_last_error(void) { return slicer::cuda::last_error; }

}  // extern "C"
