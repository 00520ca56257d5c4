// Format 2, mode 1 "dense" (docs/format.md §10-§16): shared model of the encoder and decoder.
#ifndef SLICER_SRC_DENSE_DENSE_HPP_
#define SLICER_SRC_DENSE_DENSE_HPP_

#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <vector>

#include "format/dense_spec.hpp"
#include "slicer/slicer.h"

namespace slicer::dense {

// The per-element arithmetic shared with the CUDA kernels (format/dense_spec.hpp).
using format::dense::BinBase;
using format::dense::BinOf;
using format::dense::GroupByteValid;
using format::dense::GroupIsDense;
using format::dense::kDirect;
using format::dense::kGroupRaw;
using format::dense::kGroupZero;
using format::dense::kInterleaveMin;
using format::dense::kMaxMag;
using format::dense::kNumSymbols;
using format::dense::kProbBits;
using format::dense::kProbScale;
using format::dense::kRansL;
using format::dense::StatesFor;
using format::dense::SymbolOf;

constexpr uint8_t kVersion = 2;
constexpr uint8_t kModeDense = 1;
constexpr uint8_t kModeClasses = 2;  // §19: dense with class tables
constexpr uint64_t kParamsLen = 9;
constexpr uint64_t kClassParamsLen = 11;
constexpr unsigned kClassMax = 511;
constexpr uint64_t kMaxTableBytes = 2 + 1109;  // §16: varint nsym + ceil((9 + 422·21) / 8)

// 2^(k/8) rounded to binary64 (§12.1).
constexpr double kStepFraction[8] = {
    0x1.0000000000000p+0, 0x1.172b83c7d517bp+0, 0x1.306fe0a31b715p+0, 0x1.4bfdad5362a27p+0,
    0x1.6a09e667f3bcdp+0, 0x1.8ace5422aa0dbp+0, 0x1.ae89f995ad3adp+0, 0x1.d5818dcfba487p+0,
};

// Δ_g = ldexp(Δ0 · F[e mod 8], e div 8); false when not finite or below 2^-1022.
inline bool GroupStep(float step, int e, double* out) {
  const double d = std::ldexp(static_cast<double>(step) * kStepFraction[e & 7], e >> 3);
  *out = d;
  return std::isfinite(d) && d >= 0x1p-1022;
}

unsigned CountClass(uint64_t n);

// §13.5 table kinds: 0 … 3 count classes with 3 − t mantissa bits, 4 geometric; auto = the
// shortest stream (encoder setting only, never in a stream).
constexpr unsigned kTableKindGeom = 4;
constexpr unsigned kTableKindAuto = SLICER_DENSE_TABLE_AUTO;
// The largest class of r = 3 − t mantissa bits (§13.5): 511, 255, 127, 63.
constexpr unsigned ClassMaxOfKind(unsigned t) { return (64u << (3 - t)) - 1; }
// cnt_r(v) of §13.5 (r = 3: §13.1's cnt); exact (cnt(511) = 15·2^62 needs 66 bits).
unsigned __int128 ClassCountOfKind(unsigned v, unsigned t);
// The class of kind t whose count is nearest to n ≥ 1 (ties to the lower).
unsigned CountClassOfKind(uint64_t n, unsigned t);
// §13.5: the geometric table's pseudo-counts c_0 … c_{nsym−1} (nsym ≥ 1).
void GeomCounts(unsigned nsym, unsigned z, unsigned a, std::vector<unsigned __int128>* counts);

// §13.2: frequencies (sum 2^14) from counts (classes: of §13.1's count classes, kind 0; of kind
// t's); cum has nsym + 1 entries.
void NormalizeCounts(const std::vector<unsigned __int128>& counts, std::vector<uint32_t>* freq,
                     std::vector<uint32_t>* cum);
void Normalize(const std::vector<unsigned>& classes, std::vector<uint32_t>* freq,
               std::vector<uint32_t>* cum, unsigned kind = 0);

// One mode-1 frequency table of kind t (§13.1, §13.5) for the symbol counts hist[0, nsym):
// the bytes after the nsym varint (class field, or z and a), freq and cum. Kind 4 searches
// (z, a) as the reference encoder does (§13.5).
struct KindTable {
  std::vector<uint8_t> body;
  std::vector<uint32_t> freq, cum;
};
void MakeKindTable(const uint64_t* hist, unsigned nsym, unsigned kind, KindTable* out);

// The reference encoder's table kind (§13.5, mode 1; shared by the C++ and CUDA encoders):
// `table_kind` 0 … 4 as given, or SLICER_DENSE_TABLE_AUTO: of kinds 0 … 4 the shortest stream,
// ties to the lower kind, measured as the kind's table bytes plus rans_bytes(its table) (the
// coded chunks' rANS bytes and their length varints; everything else is the same for every
// kind). hist: the counts of the coded symbols. *kt: the chosen table when the kind is not 0.
using RansBytesFn = std::function<uint64_t(const KindTable&)>;
unsigned PickTableKind(unsigned table_kind, const uint64_t* hist, const RansBytesFn& rans_bytes,
                       KindTable* kt);

// The reference encoder's low-bit width for low_bits = SLICER_DENSE_LOW_BITS_AUTO (§13.6, mode
// 1) from the histogram of q's symbols: the largest k in 3 … 15 with 16·c_k ≤ 9·n (c_k: the
// codes with |q| < 2^k, i.e. the symbols below 8k − 9), else 0.
unsigned AutoLowBits(const uint64_t* hist);

// Group geometry of a layout (§12.1): element i is in group (i / run) % modulo.
struct Layout {
  uint64_t groups = 1;
  uint64_t run = 0;     // 0: tensor layout (one group)
  uint64_t modulo = 1;  // group = (i / run) % modulo
  uint64_t GroupOf(uint64_t i) const { return run == 0 ? 0 : (i / run) % modulo; }
  // Elements from i on that stay in i's group.
  uint64_t RunLeft(uint64_t i, uint64_t n) const { return run == 0 ? n - i : run - i % run; }
};

// Fills `layout` for (shape, layout code); false when the layout needs more axes.
bool MakeLayout(const int64_t* shape, uint32_t ndim, uint64_t n, unsigned code, Layout* layout);

// Positions of mode 2 (§19.1): element i is at position (i / inner) % length (inner = 1 for the
// last axis).
struct ClassGeometry {
  uint64_t length = 0;  // L
  uint64_t inner = 1;
  uint64_t PositionOf(uint64_t i) const { return (i / inner) % length; }
};

// Fills `geo` for (shape, class axis); false when the axis is not 0 / 1 or the shape lacks it.
bool MakeClassGeometry(const int64_t* shape, uint32_t ndim, unsigned axis, ClassGeometry* geo);

// Marks in *has the classes with at least one coded element (§19.2 "empty classes"): the
// elements of dense groups (kinds == nullptr: every group) at positions of `map`.
uint32_t ClassesWithCoded(const Layout& layout, const uint8_t* kinds, uint64_t n,
                          const ClassGeometry& geo, const uint8_t* map);

inline size_t DtypeBytes(int dtype) {
  return dtype == SLICER_FLOAT64 ? 8 : dtype == SLICER_FLOAT32 ? 4 : 2;
}

}  // namespace slicer::dense

#endif  // SLICER_SRC_DENSE_DENSE_HPP_
