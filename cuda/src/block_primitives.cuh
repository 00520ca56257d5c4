// Block-wide scans and reductions over kThreads threads through shared memory. Written with
// __syncthreads only (no warp intrinsics) so that the host emulation of the kernels
// (cuda/tests) runs exactly this code too.
#ifndef SLICER_CUDA_BLOCK_PRIMITIVES_CUH_
#define SLICER_CUDA_BLOCK_PRIMITIVES_CUH_

#include "encode_types.cuh"

namespace slicer::cuda {

struct SumOp {
  template <typename T>
  __host__ __device__ T operator()(T a, T b) const {
    return a + b;
  }
};
struct MaxOp {
  template <typename T>
  __host__ __device__ T operator()(T a, T b) const {
    return a > b ? a : b;
  }
};

// Inclusive scan (Hillis-Steele); `scratch` is a __shared__ array of kThreads elements and
// holds the inclusive results on return (scratch[kThreads - 1] is the block total).
template <typename T, typename Op>
__device__ T BlockInclusiveScan(T value, Op op, T* scratch) {
  scratch[threadIdx.x] = value;
  __syncthreads();
  for (unsigned offset = 1; offset < kThreads; offset <<= 1) {
    const bool has = threadIdx.x >= offset;
    const T other = has ? scratch[threadIdx.x - offset] : value;
    __syncthreads();
    if (has) value = op(other, value);
    scratch[threadIdx.x] = value;
    __syncthreads();
  }
  return value;
}

// Exclusive scan seeded with `init` (thread 0 gets init, thread t gets op(init, x_0..x_{t-1}));
// *aggregate receives op over all inputs (without init). Every thread must call it.
template <typename T, typename Op>
__device__ T BlockExclusiveScan(T value, T init, Op op, T* scratch, T* aggregate) {
  BlockInclusiveScan(value, op, scratch);
  const T before = threadIdx.x ? scratch[threadIdx.x - 1] : init;
  *aggregate = scratch[kThreads - 1];
  __syncthreads();  // scratch may be reused right after
  return threadIdx.x ? op(init, before) : init;
}

// op over every thread's value, returned to every thread.
template <typename T, typename Op>
__device__ T BlockReduce(T value, Op op, T* scratch) {
  BlockInclusiveScan(value, op, scratch);
  const T total = scratch[kThreads - 1];
  __syncthreads();
  return total;
}

}  // namespace slicer::cuda

#endif  // SLICER_CUDA_BLOCK_PRIMITIVES_CUH_
