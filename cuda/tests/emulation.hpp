// Host emulation of the few CUDA features the backend's kernels use, so that the whole
// encode/decode pipeline (launch sequence, kernels, temp layout, stream assembly) runs and is
// compared byte for byte with the C++ codec on machines without a GPU. Each thread block runs
// its threads as fibers that switch at __syncthreads(); blocks run one after another. This
// checks the logic of every kernel; it cannot show data races or GPU timing.
#ifndef SLICER_CUDA_TESTS_EMULATION_HPP_
#define SLICER_CUDA_TESTS_EMULATION_HPP_

#define SLICER_CUDA_EMULATION 1
#define __global__
#define __device__
#define __host__
#define __shared__ static

#include <cuda_runtime.h>

#include <cstdint>
#include <functional>
#include <type_traits>

namespace slicer::cuda {

inline uint3 threadIdx;
inline uint3 blockIdx;
inline dim3 blockDim;
inline dim3 gridDim;

void __syncthreads();

// Fibers never run in parallel, so plain read-modify-write is atomic here.
inline unsigned atomicAdd(unsigned* p, unsigned v) {
  const unsigned old = *p;
  *p = old + v;
  return old;
}
inline unsigned long long atomicAdd(unsigned long long* p, unsigned long long v) {
  const unsigned long long old = *p;
  *p = old + v;
  return old;
}
inline unsigned atomicMax(unsigned* p, unsigned v) {
  const unsigned old = *p;
  if (v > old) *p = v;
  return old;
}
inline unsigned atomicMin(unsigned* p, unsigned v) {
  const unsigned old = *p;
  if (v < old) *p = v;
  return old;
}
inline unsigned atomicCAS(unsigned* p, unsigned expected, unsigned v) {
  const unsigned old = *p;
  if (old == expected) *p = v;
  return old;
}
inline unsigned atomicOr(unsigned* p, unsigned v) {
  const unsigned old = *p;
  *p = old | v;
  return old;
}
template <typename A, typename B>
std::common_type_t<A, B> min(A a, B b) {
  return a < b ? a : b;
}

namespace emu {
// Runs `body` for every thread of every block of the grid, in order.
void Launch(dim3 grid, dim3 block, const std::function<void()>& body);
}  // namespace emu

}  // namespace slicer::cuda

#endif  // SLICER_CUDA_TESTS_EMULATION_HPP_
