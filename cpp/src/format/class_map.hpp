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
#include "varint.hpp"

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

// §19.1: the class_axis byte of mode 2's parameters: bit 0 the axis, bits 1 and 2 the map kind.
constexpr uint8_t kClassAxisBit = 1;
constexpr uint8_t kClassRangesBit = 2;  // §18.3 index ranges instead of §18.1 map bytes
constexpr uint8_t kClassBoundsBit = 4;  // §18.4 range boundaries (varint gaps) in the body

// The kind of a mode-2 class map (slicer_dense_info.class_map_kind).
enum ClassMapKind : unsigned { kMapRank = 0, kMapRanges = 1, kMapBounds = 2 };

// §18.3: position a of `length` has class floor(a · k / L); every class is used when 2 ≤ k ≤ L.
inline void RangeClasses(uint64_t length, unsigned k, uint8_t* classes) {
  for (uint64_t a = 0; a < length; ++a) classes[a] = static_cast<uint8_t>(a * k / length);
}

// §18.4: `count` boundaries are valid for k classes of `length` positions iff count = k − 1 and
// 1 ≤ b_1 < … < b_{k−1} ≤ L − 1 (every class holds at least one position).
inline bool ValidBounds(const uint64_t* bounds, uint64_t count, unsigned k, uint64_t length) {
  if (k < 2 || k > kMaxClasses || length < k || count != k - 1u || bounds == nullptr) return false;
  uint64_t prev = 0;
  for (uint64_t j = 0; j < count; ++j) {
    if (bounds[j] <= prev || bounds[j] >= length) return false;
    prev = bounds[j];
  }
  return true;
}

// §18.4: class(a) = #{j : b_j ≤ a} (bounds already valid).
inline void BoundsClasses(const uint64_t* bounds, unsigned k, uint64_t length, uint8_t* classes) {
  unsigned c = 0;
  for (uint64_t a = 0; a < length; ++a) {
    while (c + 1 < k && bounds[c] <= a) ++c;
    classes[a] = static_cast<uint8_t>(c);
  }
}

// §18.4: appends the k − 1 gaps g_j = b_j − b_{j−1} (b_0 = 0) as minimal varints.
inline void WriteClassBounds(const uint64_t* bounds, unsigned k, std::vector<uint8_t>* out) {
  uint64_t prev = 0;
  uint8_t buf[10];
  for (unsigned j = 0; j + 1 < k; ++j) {
    const size_t n = internal::PutVarint(bounds[j] - prev, buf);
    out->insert(out->end(), buf, buf + n);
    prev = bounds[j];
  }
}

// Bytes of the map in the body for the two kinds whose size the length alone fixes: §18.1's
// nibbles, or none for index ranges (§18.3). (§18.4's varints: ParseClasses says.)
inline size_t ClassMapBodyBytes(bool ranges, uint64_t length) {
  return ranges ? 0 : ClassMapBytes(length);
}

// §18.4: the k − 1 minimal varint gaps (each ≥ 1, the last boundary < L) of `avail` bytes at
// `data` into bounds[0 … k − 2]; `*used` gets their bytes. TRUNCATED / CORRUPT as §18.4 says.
inline slicer_status ReadBounds(const uint8_t* data, uint64_t avail, uint64_t length, unsigned k,
                                uint64_t* bounds, uint64_t* used) {
  *used = 0;
  uint64_t prev = 0;
  size_t pos = 0;
  const size_t end = static_cast<size_t>(std::min<uint64_t>(avail, SIZE_MAX));
  for (unsigned j = 0; j + 1 < k; ++j) {
    uint64_t gap = 0;
    const internal::VarintResult r = internal::GetVarint(data, end, &pos, &gap);
    if (r == internal::VarintResult::kTruncated) return SLICER_ERR_TRUNCATED;
    if (r != internal::VarintResult::kOk) return SLICER_ERR_CORRUPT;
    if (gap == 0 || gap > length - 1 - prev) return SLICER_ERR_CORRUPT;
    prev += gap;
    bounds[j] = prev;
  }
  *used = pos;
  return SLICER_OK;
}

// The one place that turns a map's kind and the body into the class of every position (every
// backend's decoder and the encoders' range kind): `avail` bytes at `data`; `*used` gets the
// bytes the map takes. TRUNCATED when the map's bytes are missing, CORRUPT on a bad map.
// `classes` may be null: the map is then only checked (a stream without elements, whose L is
// not bounded by its element count: nothing of size L is allocated for index kinds, and a rank
// map's L is bounded by its bytes in the stream).
inline slicer_status ParseClasses(unsigned kind, const uint8_t* data, uint64_t avail,
                                  uint64_t length, unsigned k, uint8_t* classes, uint64_t* used) {
  *used = 0;
  if (k < 2 || k > kMaxClasses || length < k) return SLICER_ERR_CORRUPT;
  if (kind == kMapRanges) {
    if (classes != nullptr) RangeClasses(length, k, classes);
    return SLICER_OK;
  }
  if (kind == kMapBounds) {
    uint64_t bounds[kMaxClasses];
    const slicer_status st = ReadBounds(data, avail, length, k, bounds, used);
    if (st == SLICER_OK && classes != nullptr) BoundsClasses(bounds, k, length, classes);
    return st;
  }
  if (kind != kMapRank) return SLICER_ERR_CORRUPT;
  const uint64_t bytes = ClassMapBytes(length);
  if (bytes > avail) return SLICER_ERR_TRUNCATED;
  std::vector<uint8_t> checked;  // L <= 2 * avail here: the map's bytes are in the stream
  if (classes == nullptr) {
    checked.resize(length);
    classes = checked.data();
  }
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
