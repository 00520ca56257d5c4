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

// §19.1: the class_axis byte of mode 2's parameters: bit 0 the axis, bit 1 the map kind.
constexpr uint8_t kClassAxisBit = 1;
constexpr uint8_t kClassRangesBit = 2;  // §18.3 index ranges instead of §18.1 map bytes

// §18.3: position a of `length` has class floor(a · k / L); every class is used when 2 ≤ k ≤ L.
inline void RangeClasses(uint64_t length, unsigned k, uint8_t* classes) {
  for (uint64_t a = 0; a < length; ++a) classes[a] = static_cast<uint8_t>(a * k / length);
}

// Bytes of the map in the body: §18.1's nibbles, or none for index ranges (§18.3).
inline size_t ClassMapBodyBytes(bool ranges, uint64_t length) {
  return ranges ? 0 : ClassMapBytes(length);
}

// The one place that turns a map's kind and the body into the class of every position (every
// backend's decoder and the encoders' range kind): `avail` bytes at `data`; `*used` gets the
// bytes the map takes. TRUNCATED when the map's bytes are missing, CORRUPT on a bad map.
inline slicer_status ParseClasses(bool ranges, const uint8_t* data, uint64_t avail, uint64_t length,
                                  unsigned k, uint8_t* classes, uint64_t* used) {
  *used = 0;
  if (k < 2 || k > kMaxClasses || length < k) return SLICER_ERR_CORRUPT;
  if (ranges) {
    RangeClasses(length, k, classes);
    return SLICER_OK;
  }
  const uint64_t bytes = ClassMapBytes(length);
  if (bytes > avail) return SLICER_ERR_TRUNCATED;
  const slicer_status st = ReadClassMap(data, length, k, classes);
  if (st == SLICER_OK) *used = bytes;
  return st;
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
