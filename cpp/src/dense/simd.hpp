// Runtime choice of the dense coder's SIMD paths (AVX2), shared by the encoder and the decoder.
#ifndef SLICER_SRC_DENSE_SIMD_HPP_
#define SLICER_SRC_DENSE_SIMD_HPP_

#include <cstdint>
#include <cstdlib>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#endif

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

// The paired decoder's choice between reading extra bits inside its vector steps and in a second
// pass (same values, same statuses): `preferred` (from the stream's tables) unless the
// environment variable SLICER_DENSE_DEFERRED is "0" or "1" (tests force both).
inline bool DeferredWanted(bool preferred) {
  const char* env = std::getenv("SLICER_DENSE_DEFERRED");
  if (env != nullptr && (env[0] == '0' || env[0] == '1')) return env[0] == '1';
  return preferred;
}

// Whether mode 1's inline vector steps take their symbols from narrow slot entries (same values,
// same statuses): where the stream's frequencies allow them (`fits`) unless the environment
// variable SLICER_DENSE_NARROW is "0" (tests compare both).
inline bool NarrowWanted(bool fits) {
  const char* env = std::getenv("SLICER_DENSE_NARROW");
  return fits && (env == nullptr || env[0] != '0');
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
// Eight table entries (uint32_t, or uint8_t / uint16_t zero-extended) at the lanes' 32-bit
// indices: the same values as a vpgatherdd (scale sizeof(T), masked to T's width), by eight
// scalar loads, which were faster on the cores measured (AMD Zen 4: bench/RESULTS.md §9.16).
template <typename T>
__attribute__((target("avx2"))) inline __m256i Lookup8(const T* table, __m256i idx) {
  alignas(32) uint32_t i[8];
  _mm256_store_si256(reinterpret_cast<__m256i*>(i), idx);
  __m128i lo = _mm_cvtsi32_si128(static_cast<int>(table[i[0]]));
  __m128i hi = _mm_cvtsi32_si128(static_cast<int>(table[i[4]]));
  lo = _mm_insert_epi32(lo, static_cast<int>(table[i[1]]), 1);
  hi = _mm_insert_epi32(hi, static_cast<int>(table[i[5]]), 1);
  lo = _mm_insert_epi32(lo, static_cast<int>(table[i[2]]), 2);
  hi = _mm_insert_epi32(hi, static_cast<int>(table[i[6]]), 2);
  lo = _mm_insert_epi32(lo, static_cast<int>(table[i[3]]), 3);
  hi = _mm_insert_epi32(hi, static_cast<int>(table[i[7]]), 3);
  return _mm256_setr_m128i(lo, hi);
}
#endif

}  // namespace slicer::dense

#endif  // SLICER_SRC_DENSE_SIMD_HPP_
