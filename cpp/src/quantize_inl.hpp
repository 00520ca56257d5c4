// Inline quantizer of §5.3, kept in a header because the encoder's inner loops call it.
#ifndef SLICER_SRC_QUANTIZE_INL_HPP_
#define SLICER_SRC_QUANTIZE_INL_HPP_

#include <cmath>
#include <cstdint>

namespace slicer::internal {

// floor(v) clamped to [0, max_code] with v = (magnitude - lo) / step + 0.5, without calling
// floor (a library call on baseline x86-64): floor(v) <= 0 iff v < 1 (or v is NaN), floor(v)
// >= max_code iff v >= max_code (an integer), and between them truncation is floor.
inline uint32_t QuantizeMagnitude(double magnitude, double lo, double step, uint32_t max_code) {
  const double v = (magnitude - lo) / step + 0.5;
  if (!(v >= 1.0)) return 0;
  if (v >= static_cast<double>(max_code)) return max_code;
  return static_cast<uint32_t>(v);
}

inline double DequantizeMagnitude(uint32_t code, double lo, double step) {
  return lo + static_cast<double>(code) * step;
}

}  // namespace slicer::internal

#endif  // SLICER_SRC_QUANTIZE_INL_HPP_
