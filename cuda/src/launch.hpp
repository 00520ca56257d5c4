// Kernel launch through one macro, so that the host emulation used by the tests
// (cuda/tests/emulation.hpp, SLICER_CUDA_EMULATION) runs the very same launch sequence.
#ifndef SLICER_CUDA_LAUNCH_HPP_
#define SLICER_CUDA_LAUNCH_HPP_

#ifdef SLICER_CUDA_EMULATION
#define SLICER_LAUNCH(kernel, grid, block, stream, ...) \
  ((void)(stream), ::slicer::cuda::emu::Launch((grid), (block), [&] { kernel(__VA_ARGS__); }))
#else
#define SLICER_LAUNCH(kernel, grid, block, stream, ...) \
  kernel<<<(grid), (block), 0, (stream)>>>(__VA_ARGS__)
#endif

#endif  // SLICER_CUDA_LAUNCH_HPP_
