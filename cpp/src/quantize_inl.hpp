// Inline quantizer of §5.3, kept in a header because the encoder's inner loops call it.
#ifndef SLICER_SRC_QUANTIZE_INL_HPP_
#define SLICER_SRC_QUANTIZE_INL_HPP_

#include <cmath>
#include <cstdint>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

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

#if defined(__SSE2__)
// QuantizeMagnitude of two lanes at once (max_code < 2^31), with the same binary64 operations
// (SSE2 rounds each like the scalar code): clamping v to [0, max_code] before truncating gives
// floor(v) clamped, and a NaN v (a zero step) becomes 0 as in the scalar form. Returns the two
// codes in the low two int32 lanes.
inline __m128i QuantizeMagnitude2(__m128d magnitude, __m128d lo, __m128d step, __m128d max_code) {
  const __m128d v =
      _mm_add_pd(_mm_div_pd(_mm_sub_pd(magnitude, lo), step), _mm_set1_pd(0.5));
  return _mm_cvttpd_epi32(_mm_min_pd(_mm_max_pd(v, _mm_setzero_pd()), max_code));
}
#endif

inline double DequantizeMagnitude(uint32_t code, double lo, double step) {
  return lo + static_cast<double>(code) * step;
}

}  // namespace slicer::internal

#endif  // SLICER_SRC_QUANTIZE_INL_HPP_
