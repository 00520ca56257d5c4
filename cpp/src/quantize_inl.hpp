// Inline quantizer of §5.3, kept in a header because the encoder's inner loops call it.
#ifndef SLICER_SRC_QUANTIZE_INL_HPP_
#define SLICER_SRC_QUANTIZE_INL_HPP_

#include <cmath>
#include <cstdint>

namespace slicer::internal {

inline uint32_t QuantizeMagnitude(double magnitude, double lo, double step, uint32_t max_code) {
  const double q = std::floor((magnitude - lo) / step + 0.5);
  if (!(q > 0.0)) return 0;
  if (q >= static_cast<double>(max_code)) return max_code;
  return static_cast<uint32_t>(q);
}

inline double DequantizeMagnitude(uint32_t code, double lo, double step) {
  return lo + static_cast<double>(code) * step;
}

}  // namespace slicer::internal

#endif  // SLICER_SRC_QUANTIZE_INL_HPP_
