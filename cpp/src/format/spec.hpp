// Per-element arithmetic of format 1 (docs/format.md), in one header that the C++ compiler and
// nvcc both include: block cardinalities (§5.1), the truncated-binary label code and the Rice
// rule (§6.1), chunk extents (§6). Integer only; no 128-bit arithmetic, so it runs on devices.
#ifndef SLICER_SRC_FORMAT_SPEC_HPP_
#define SLICER_SRC_FORMAT_SPEC_HPP_

#include <cstdint>

#if defined(__CUDACC__)
#define SLICER_SPEC_FN __host__ __device__ inline
#else
#define SLICER_SPEC_FN inline
#endif

namespace slicer::format {

constexpr uint8_t kMagic[4] = {0x53, 0x4C, 0x43, 0x52};  // "SLCR"
constexpr uint32_t kPpb = 1000000000u;
constexpr unsigned kModeSparseTopK = 0;
constexpr unsigned kFlagMultiLevel = 1;
constexpr unsigned kMinChunkLog2 = 6;
constexpr unsigned kMaxChunkLog2 = 24;
constexpr unsigned kMaxBits = 16;
constexpr unsigned kMaxBlocks = 64;
constexpr unsigned kMaxNdim = 32;
// The longest fixed header: magic, 5 bytes, 32 dims and 4 parameters as 10-byte varints,
// 4 bytes, group count.
constexpr unsigned kMaxHeaderBytes = 4 + 5 + kMaxNdim * 10 + 4 * 10 + 4 + 10;

// c_m = floor((m+1)·n/M) − floor(m·n/M) (§5.1), exact for every n < 2^64 and M ≤ 64: with
// n = qM + r, floor(b·n/M) = b·q + floor(b·r/M) and b·r < 64².
SLICER_SPEC_FN uint64_t BlockCount(uint64_t n, uint32_t blocks, uint32_t m) {
  const uint64_t q = n / blocks;
  const uint64_t r = n % blocks;
  return q + ((m + 1) * r) / blocks - (m * r) / blocks;
}

// Elements of chunk j of a group of n elements (§6.1).
SLICER_SPEC_FN uint64_t ChunkElements(uint64_t n, uint64_t j, uint32_t chunk_log2) {
  const uint64_t start = j << chunk_log2;
  const uint64_t full = uint64_t{1} << chunk_log2;
  return n - start < full ? n - start : full;
}

// The truncated-binary code of labels in [0, L) (§6.1): b = floor(log2 L), u = 2^(b+1) − L.
struct LabelCode {
  uint32_t b;
  uint32_t u;
};

SLICER_SPEC_FN LabelCode MakeLabelCode(uint32_t num_labels) {
  uint32_t b = 0;
  while ((num_labels >> (b + 1)) != 0) ++b;
  return LabelCode{b, (uint32_t{2} << b) - num_labels};
}

// Label from the first b bits x and, for x ≥ u, one more bit `extra`.
SLICER_SPEC_FN uint32_t LabelFromBits(LabelCode code, uint32_t x, uint32_t extra) {
  return x < code.u ? x : code.u + 2 * (x - code.u) + extra;
}

// The encoder's Rice parameter for `count` gaps that sum to `gap_sum` (§6.1).
SLICER_SPEC_FN uint32_t RiceParameter(uint64_t count, uint64_t gap_sum, uint32_t chunk_log2) {
  uint32_t r = 0;
  while (r < chunk_log2 && (count << (r + 1)) <= gap_sum) ++r;
  return r;
}

}  // namespace slicer::format

#endif  // SLICER_SRC_FORMAT_SPEC_HPP_
