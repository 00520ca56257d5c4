// The tie-break draw d(i) (docs/format.md §4.3): splitmix64 of counter i under a seed.
#ifndef SLICER_SRC_DRAW_HPP_
#define SLICER_SRC_DRAW_HPP_

#include <cstdint>

namespace slicer::internal {

inline uint64_t Draw(uint64_t seed, uint64_t index) {
  uint64_t z = seed + (index + 1) * 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

}  // namespace slicer::internal

#endif  // SLICER_SRC_DRAW_HPP_
