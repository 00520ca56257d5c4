// Runtime choice of the dense coder's SIMD paths (AVX2), shared by the encoder and the decoder.
#ifndef SLICER_SRC_DENSE_SIMD_HPP_
#define SLICER_SRC_DENSE_SIMD_HPP_

#include <cstdlib>

namespace slicer::dense {

// Whether the SIMD paths may run: the CPU has AVX2 (and BMI2) and the environment variable
// SLICER_DENSE_SIMD is not "0". Read at each call, so that tests can force the scalar paths;
// both give the same bytes and values.
inline bool SimdWanted() {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
  static const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("bmi2");
  if (!avx2) return false;
  const char* env = std::getenv("SLICER_DENSE_SIMD");
  return env == nullptr || env[0] != '0';
#else
  return false;
#endif
}

}  // namespace slicer::dense

#endif  // SLICER_SRC_DENSE_SIMD_HPP_
