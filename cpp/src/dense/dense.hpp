// Format 2, mode 1 "dense" (docs/format.md §10-§16): shared model of the encoder and decoder.
#ifndef SLICER_SRC_DENSE_DENSE_HPP_
#define SLICER_SRC_DENSE_DENSE_HPP_

#include <cmath>
#include <cstdint>
#include <cstring>
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

inline double ClassCount(unsigned v) {  // exact in binary64 (< 2^60)
  if (v < 16) return v;
  const unsigned k = (v - 16) / 8, mt = (v - 16) % 8;
  return std::ldexp(8.0 + mt, static_cast<int>(k) + 1);
}
inline uint64_t ClassCountInt(unsigned v) {
  if (v < 16) return v;
  const unsigned k = (v - 16) / 8, mt = (v - 16) % 8;
  return uint64_t{8 + mt} << (k + 1);
}
unsigned CountClass(uint64_t n);

// §13.2: frequencies (sum 2^14) from count classes; cum has nsym + 1 entries.
void Normalize(const std::vector<unsigned>& classes, std::vector<uint32_t>* freq,
               std::vector<uint32_t>* cum);

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
