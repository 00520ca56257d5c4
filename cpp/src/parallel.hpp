// Splits [0, n) into contiguous parts run on std::threads. Exceptions thrown by a part are
// re-thrown in the caller after every thread has joined, so none escapes a worker.
#ifndef SLICER_SRC_PARALLEL_HPP_
#define SLICER_SRC_PARALLEL_HPP_

#include <algorithm>
#include <cstdint>
#include <exception>
#include <thread>
#include <vector>

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

// Calls fn(part, begin, end) for `parts` contiguous slices of [0, n).
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
  std::vector<std::thread> workers;
  workers.reserve(parts - 1);
  unsigned started = 1;
  for (; started < parts; ++started) {
    try {
      workers.emplace_back(body, started);
    } catch (...) {
      break;  // could not start a thread: run the rest here
    }
  }
  body(0);
  for (unsigned part = started; part < parts; ++part) body(part);
  for (std::thread& worker : workers) worker.join();
  for (const std::exception_ptr& error : errors) {
    if (error) std::rethrow_exception(error);
  }
}

}  // namespace slicer::internal

#endif  // SLICER_SRC_PARALLEL_HPP_
