// Class maps (docs/format.md §18), shared by frames (§17) and mode 2 (§19): the map bytes, their
// checks and the reference encoders' rule that chooses a map. Host code, byte-identical to
// tests/reference_classes.py.
#ifndef SLICER_SRC_FORMAT_CLASS_MAP_HPP_
#define SLICER_SRC_FORMAT_CLASS_MAP_HPP_

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <numeric>
#include <vector>

#include "slicer/slicer.h"

namespace slicer::format {

constexpr unsigned kMaxClasses = 16;
constexpr uint64_t kClassStatClamp = uint64_t{1} << 16;  // §18.2: S_a sums min(m, 2^16)

// Bytes of a map of `length` positions.
inline size_t ClassMapBytes(uint64_t length) { return static_cast<size_t>((length + 1) / 2); }

// §18.1: appends the map (entries < k, every class used; the caller guarantees it).
inline void WriteClassMap(const uint8_t* classes, uint64_t length, std::vector<uint8_t>* out) {
  const size_t base = out->size();
  out->resize(base + ClassMapBytes(length), 0);
  for (uint64_t a = 0; a < length; ++a) {
    (*out)[base + a / 2] |= static_cast<uint8_t>(classes[a] << (4 * (a % 2)));
  }
}

// §18.1 with every decoder check: `data` holds at least ClassMapBytes(length) bytes.
inline slicer_status ReadClassMap(const uint8_t* data, uint64_t length, unsigned k,
                                  uint8_t* classes) {
  if (k < 2 || k > kMaxClasses || length < k) return SLICER_ERR_CORRUPT;
  uint32_t used = 0;
  for (uint64_t a = 0; a < length; ++a) {
    const unsigned c = (data[a / 2] >> (4 * (a % 2))) & 0xF;
    if (c >= k) return SLICER_ERR_CORRUPT;
    classes[a] = static_cast<uint8_t>(c);
    used |= uint32_t{1} << c;
  }
  if ((length % 2) != 0 && (data[length / 2] >> 4) != 0) return SLICER_ERR_CORRUPT;
  if (used != (uint32_t{1} << k) - 1) return SLICER_ERR_CORRUPT;
  return SLICER_OK;
}

// §18.2: positions ordered by (S_a, a); rank r gets class floor(r · k / L). 2 ≤ k ≤ L.
inline void ClassRule(const uint64_t* sums, uint64_t length, unsigned k, uint8_t* classes) {
  std::vector<uint64_t> order(length);
  std::iota(order.begin(), order.end(), uint64_t{0});
  std::stable_sort(order.begin(), order.end(),
                   [sums](uint64_t a, uint64_t b) { return sums[a] < sums[b]; });
  for (uint64_t r = 0; r < length; ++r) {
    classes[order[r]] = static_cast<uint8_t>(r * k / length);
  }
}

}  // namespace slicer::format

#endif  // SLICER_SRC_FORMAT_CLASS_MAP_HPP_
