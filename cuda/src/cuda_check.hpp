// CUDA runtime error plumbing shared by the launchers.
#ifndef SLICER_CUDA_CUDA_CHECK_HPP_
#define SLICER_CUDA_CUDA_CHECK_HPP_

#include <cuda_runtime.h>

namespace slicer::cuda {

// Records `err` as this thread's last CUDA error and maps it to a status code.
int CudaStatus(cudaError_t err);

}  // namespace slicer::cuda

#define SLICER_CUDA_TRY(expr)                                     \
  do {                                                            \
    const cudaError_t err_ = (expr);                              \
    if (err_ != cudaSuccess) return ::slicer::cuda::CudaStatus(err_); \
  } while (0)

#define SLICER_TRY_STATUS(expr)       \
  do {                                \
    const int s_ = (expr);            \
    if (s_ != 0) return s_;           \
  } while (0)

#define SLICER_CUDA_LAUNCHED() SLICER_CUDA_TRY(cudaGetLastError())

#endif  // SLICER_CUDA_CUDA_CHECK_HPP_
