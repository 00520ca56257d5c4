// Unsigned LEB128 varints (docs/format.md §1): minimal, at most 10 bytes, value < 2^64.
#ifndef SLICER_SRC_VARINT_HPP_
#define SLICER_SRC_VARINT_HPP_

#include <cstddef>
#include <cstdint>

namespace slicer::internal {

inline size_t VarintLength(uint64_t value) {
  size_t length = 1;
  while (value >= 0x80) {
    value >>= 7;
    ++length;
  }
  return length;
}

// Writes `value` at `out` (which must have VarintLength(value) bytes); returns the bytes written.
inline size_t PutVarint(uint64_t value, uint8_t* out) {
  size_t length = 0;
  while (value >= 0x80) {
    out[length++] = static_cast<uint8_t>(value | 0x80);
    value >>= 7;
  }
  out[length++] = static_cast<uint8_t>(value);
  return length;
}

enum class VarintResult { kOk, kTruncated, kInvalid };

// Reads a varint from [*pos, end). Rejects non-minimal encodings and values >= 2^64.
inline VarintResult GetVarint(const uint8_t* data, size_t end, size_t* pos, uint64_t* value) {
  uint64_t result = 0;
  for (int i = 0; i < 10; ++i) {
    if (*pos >= end) return VarintResult::kTruncated;
    const uint8_t byte = data[(*pos)++];
    const uint64_t group = byte & 0x7F;
    if (i == 9 && (byte & 0xFE) != 0) return VarintResult::kInvalid;  // above 2^64 - 1
    result |= group << (7 * i);
    if ((byte & 0x80) == 0) {
      if (i > 0 && byte == 0) return VarintResult::kInvalid;  // non-minimal
      *value = result;
      return VarintResult::kOk;
    }
  }
  return VarintResult::kInvalid;
}

}  // namespace slicer::internal

#endif  // SLICER_SRC_VARINT_HPP_
