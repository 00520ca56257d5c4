// Splits [0, n) into contiguous parts run on the current call's worker pool. Exceptions thrown
// by a part are re-thrown in the caller after every part has finished, so none escapes a worker.
#ifndef SLICER_SRC_PARALLEL_HPP_
#define SLICER_SRC_PARALLEL_HPP_

#include <algorithm>
#include <cstdint>
#include <exception>
#include <thread>
#include <vector>

#include "pool.hpp"

namespace slicer::internal {

inline unsigned ResolveThreads(unsigned requested) {
  if (requested != 0) return requested;
  // Asked once: hardware_concurrency() reads /sys on Linux, which would cost more than
  // encoding a whole 576-float row.
  static const unsigned hardware = std::max(1u, std::thread::hardware_concurrency());
  return hardware;
}

// How many parts of at least `min_items` items each (at most `threads`).
inline unsigned PartCount(uint64_t n, unsigned threads, uint64_t min_items) {
  if (min_items == 0) min_items = 1;
  const uint64_t by_size = std::max<uint64_t>(1, n / min_items);
  return static_cast<unsigned>(std::min<uint64_t>(std::max(1u, threads), by_size));
}

inline uint64_t PartBegin(uint64_t n, unsigned parts, unsigned part) {
  return static_cast<uint64_t>((static_cast<unsigned __int128>(n) * part) / parts);
}

// Calls fn(part, begin, end) for `parts` contiguous slices of [0, n), on the workers of the
// current call's pool (pool.hpp; the process's shared pool outside a context's call) when it
// has any and is free, else one after another on this thread. The slices, and so every
// result, are the same either way.
template <class Fn>
void RunParts(uint64_t n, unsigned parts, Fn&& fn) {
  if (parts <= 1) {
    fn(0u, uint64_t{0}, n);
    return;
  }
  std::vector<std::exception_ptr> errors(parts);
  auto body = [&](unsigned part) {
    try {
      fn(part, PartBegin(n, parts, part), PartBegin(n, parts, part + 1));
    } catch (...) {
      errors[part] = std::current_exception();
    }
  };
  using Body = decltype(body);
  Pool* pool = CurrentPool();
  if (pool == nullptr) pool = SharedPoolInstance();
  const bool pooled =
      pool->threads() > 1 &&
      pool->TryRun(parts, [](void* arg, unsigned part) { (*static_cast<Body*>(arg))(part); },
                   &body);
  if (!pooled) {
    for (unsigned part = 0; part < parts; ++part) body(part);
  }
  for (const std::exception_ptr& error : errors) {
    if (error) std::rethrow_exception(error);
  }
}

}  // namespace slicer::internal

#endif  // SLICER_SRC_PARALLEL_HPP_
