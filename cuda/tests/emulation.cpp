// Fiber scheduler and the CUDA runtime entry points of the host emulation (emulation.hpp).
// "Device memory" is host memory here: the runtime copies and sets are memcpy and memset.
#include "emulation.hpp"

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#endif

#if !defined(__x86_64__)
#error "the kernel emulation switches fibers with x86-64 code"
#endif

// Saves the callee-saved registers and the stack pointer to *save, resumes the fiber whose
// stack pointer is `load` (System V x86-64). glibc's swapcontext would also save the signal
// mask with a system call on every switch, which made the emulation several times slower.
extern "C" void slicer_emu_switch(void** save, void* load);
asm(R"(
  .text
  .globl slicer_emu_switch
  .type slicer_emu_switch, @function
slicer_emu_switch:
  pushq %rbp
  pushq %rbx
  pushq %r12
  pushq %r13
  pushq %r14
  pushq %r15
  movq %rsp, (%rdi)
  movq %rsi, %rsp
  popq %r15
  popq %r14
  popq %r13
  popq %r12
  popq %rbx
  popq %rbp
  ret
  .size slicer_emu_switch, .-slicer_emu_switch
)");

namespace slicer::cuda {
namespace {

constexpr size_t kStackBytes = 256 * 1024;

struct Fiber {
  void* sp;
  bool done;
  std::vector<uint64_t> stack;
};

void* scheduler_sp = nullptr;
std::vector<Fiber> fibers;
size_t current = 0;
const std::function<void()>* body = nullptr;

[[noreturn]] void FiberEntry() {
  (*body)();
  fibers[current].done = true;
  void* unused;
  slicer_emu_switch(&unused, scheduler_sp);  // never resumed
  std::abort();
}

// A fresh stack whose first switch "returns" into FiberEntry with the ABI's alignment.
void PrepareFiber(Fiber* f) {
  f->stack.resize(kStackBytes / sizeof(uint64_t));
#if defined(__SANITIZE_ADDRESS__)
  // Frames of the fiber's previous run were abandoned, not unwound: clear their redzones.
  __asan_unpoison_memory_region(f->stack.data(), f->stack.size() * sizeof(uint64_t));
#endif
  uintptr_t top = reinterpret_cast<uintptr_t>(f->stack.data() + f->stack.size());
  top &= ~uintptr_t{15};
  auto* sp = reinterpret_cast<uint64_t*>(top - 16);  // 16-aligned slot of the return address
  sp[0] = reinterpret_cast<uint64_t>(&FiberEntry);
  sp[1] = 0;
  sp -= 6;  // r15 r14 r13 r12 rbx rbp
  for (int i = 0; i < 6; ++i) sp[i] = 0;
  f->sp = sp;
  f->done = false;
}

}  // namespace

void __syncthreads() { slicer_emu_switch(&fibers[current].sp, scheduler_sp); }

namespace emu {

void Launch(dim3 grid, dim3 block, const std::function<void()>& fn) {
  const size_t threads = size_t{block.x} * block.y * block.z;
  if (threads == 0 || grid.x == 0 || grid.y == 0 || grid.z == 0) return;
  if (fibers.size() < threads) fibers.resize(threads);
  blockDim = block;
  gridDim = grid;
  body = &fn;
  for (unsigned z = 0; z < grid.z; ++z) {
    for (unsigned y = 0; y < grid.y; ++y) {
      for (unsigned x = 0; x < grid.x; ++x) {
        blockIdx = uint3{x, y, z};
        for (size_t i = 0; i < threads; ++i) PrepareFiber(&fibers[i]);
        // Each round runs every live thread up to its next barrier (or its end).
        bool live = true;
        while (live) {
          live = false;
          for (size_t i = 0; i < threads; ++i) {
            if (fibers[i].done) continue;
            current = i;
            threadIdx = uint3{static_cast<unsigned>(i % block.x),
                              static_cast<unsigned>((i / block.x) % block.y),
                              static_cast<unsigned>(i / (size_t{block.x} * block.y))};
            slicer_emu_switch(&scheduler_sp, fibers[i].sp);
            if (!fibers[i].done) live = true;
          }
        }
      }
    }
  }
}

}  // namespace emu
}  // namespace slicer::cuda

// The CUDA runtime calls the launchers make, on host memory.
extern "C" {

cudaError_t cudaMemsetAsync(void* ptr, int value, size_t count, cudaStream_t) {
  if (count) std::memset(ptr, value, count);
  return cudaSuccess;
}

cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t count, cudaMemcpyKind,
                            cudaStream_t) {
  if (count) std::memmove(dst, src, count);
  return cudaSuccess;
}

cudaError_t cudaStreamSynchronize(cudaStream_t) { return cudaSuccess; }
cudaError_t cudaGetLastError(void) { return cudaSuccess; }
const char* cudaGetErrorString(cudaError_t) { return "emulated CUDA runtime"; }
cudaError_t cudaGetDeviceCount(int* count) {
  *count = 1;
  return cudaSuccess;
}

}  // extern "C"
