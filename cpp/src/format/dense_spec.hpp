// Per-element arithmetic of format 2, mode 1 "dense" (docs/format.md §11-§14), in one header
// that the C++ compiler and nvcc both include, like spec.hpp for format 1: the constants, the
// group bytes (§12.1), code → symbol + extra bits and symbol → bin base (§11). Integer only.
#ifndef SLICER_SRC_FORMAT_DENSE_SPEC_HPP_
#define SLICER_SRC_FORMAT_DENSE_SPEC_HPP_

#include <cstdint>

#include "format/spec.hpp"  // SLICER_SPEC_FN

namespace slicer::format::dense {

constexpr unsigned kDirect = 8;                  // bins 0 … 7 are their magnitude (§11)
constexpr unsigned kNumSymbols = 423;            // symbols 0 … 422
constexpr uint64_t kMaxMag = uint64_t{1} << 53;  // largest magnitude (§11)
constexpr unsigned kProbBits = 14;               // rANS probability precision (§14)
constexpr uint32_t kProbScale = 1u << kProbBits;
constexpr uint32_t kRansL = 1u << 23;      // rANS state lower bound (§14)
constexpr uint64_t kInterleaveMin = 8192;  // chunks of ≥ this many codes use 4 states
constexpr uint8_t kGroupZero = 0x80;       // group table bytes (§12.1)
constexpr uint8_t kGroupRaw = 0x81;

SLICER_SPEC_FN bool GroupIsDense(uint8_t b) { return b < 0x40 || b >= 0xC0; }
SLICER_SPEC_FN bool GroupByteValid(uint8_t b) {
  return GroupIsDense(b) || b == kGroupZero || b == kGroupRaw;
}

// Interleaved rANS states of a chunk with `coded` codes (§13.3).
SLICER_SPEC_FN unsigned StatesFor(uint64_t coded) { return coded >= kInterleaveMin ? 4 : 1; }

// The default chunk_log2 of modes 1 and 2 for n elements (docs/format.md §15.1): the cheapest
// cut by the decoder's per-element cost of its four paths (sets of four four-state chunks 10,
// pairs 18, single four-state chunks 22, one-state chunks 46), the largest c unless a smaller
// one is at least 5 % cheaper; 14 below 8192 and from 2^18 elements on. Not a decoder rule.
constexpr unsigned kDefaultChunkLog2 = 14;
// Elements of chunk j of `count` chunks of 2^c cutting n.
SLICER_SPEC_FN uint64_t ChunkElements(uint64_t n, unsigned c, uint64_t count, uint64_t j) {
  return j + 1 < count ? uint64_t{1} << c : n - ((count - 1) << c);
}
SLICER_SPEC_FN uint64_t ChunkCutCost(uint64_t n, unsigned c) {
  const uint64_t count = (n + (uint64_t{1} << c) - 1) >> c;
  uint64_t cost = 0;
  for (uint64_t j = 0; j < count;) {
    unsigned run = 0;  // four-state chunks from j on, up to 4
    uint64_t sum = 0;
    while (run < 4 && j + run < count && ChunkElements(n, c, count, j + run) >= kInterleaveMin)
      sum += ChunkElements(n, c, count, j + run++);
    if (run == 4) {
      cost += 10 * sum;
      j += 4;
    } else if (run >= 2) {
      cost += 18 * (ChunkElements(n, c, count, j) + ChunkElements(n, c, count, j + 1));
      j += 2;
    } else {
      cost += (run == 1 ? 22 : 46) * ChunkElements(n, c, count, j);
      j += 1;
    }
  }
  return cost;
}
SLICER_SPEC_FN unsigned AutoChunkLog2(uint64_t n) {
  if (n < kInterleaveMin || n >= (uint64_t{1} << 18)) return kDefaultChunkLog2;
  unsigned ceil_log2 = 0;
  while ((uint64_t{1} << ceil_log2) < n) ++ceil_log2;
  const unsigned cmax = ceil_log2 < kDefaultChunkLog2 ? kDefaultChunkLog2
                        : ceil_log2 > 17              ? 17u
                                                      : ceil_log2;
  unsigned chosen = cmax;
  uint64_t best = ChunkCutCost(n, cmax);
  for (unsigned c = cmax; c-- > 13;) {
    const uint64_t t = ChunkCutCost(n, c);
    if (20 * t < 19 * best) best = t, chosen = c;
  }
  return chosen;
}

// floor(log2 m) for m ≥ 1.
SLICER_SPEC_FN unsigned Log2Floor(uint64_t m) {
#if defined(__CUDA_ARCH__)
  return 63 - static_cast<unsigned>(__clzll(static_cast<long long>(m)));
#else
  return 63 - static_cast<unsigned>(__builtin_clzll(m));
#endif
}

// §11: the symbol of the code q = ±m (m ≤ 2^53, `negative`: q < 0); *nbits extra bits of value
// *extra (0 and 0 for the direct bins).
SLICER_SPEC_FN unsigned SymbolOf(uint64_t m, bool negative, unsigned* nbits, uint64_t* extra) {
  if (m < kDirect) {
    *nbits = 0;
    *extra = 0;
    return m == 0 ? 0 : static_cast<unsigned>(2 * m - (negative ? 0 : 1));
  }
  const unsigned e = Log2Floor(m);
  const unsigned b = kDirect + 4 * (e - 3) + static_cast<unsigned>((m >> (e - 2)) & 3);
  *nbits = e - 2;
  *extra = m & ((uint64_t{1} << (e - 2)) - 1);
  return negative ? 2 * b : 2 * b - 1;
}

// §11: bin b's first magnitude and its extra bits (b ≥ 8: (4 + (b − 8) mod 4) << (e − 2)).
SLICER_SPEC_FN void BinBase(unsigned b, uint64_t* base, unsigned* nbits) {
  if (b < kDirect) {
    *base = b;
    *nbits = 0;
    return;
  }
  const unsigned e = (b - kDirect) / 4 + 3, top = (b - kDirect) % 4;
  *base = uint64_t{4 + top} << (e - 2);
  *nbits = e - 2;
}

// The bin of symbol s and whether its code is negative (§11: 2b − 1 positive, 2b negative).
SLICER_SPEC_FN unsigned BinOf(unsigned s) { return (s + 1) / 2; }
SLICER_SPEC_FN bool SymbolNegative(unsigned s) { return s != 0 && (s & 1) == 0; }

}  // namespace slicer::format::dense

#endif  // SLICER_SRC_FORMAT_DENSE_SPEC_HPP_
