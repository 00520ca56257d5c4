// Per-element arithmetic of format 1 shared by the encode and decode kernels. Everything here
// is __host__ __device__ so the host unit test (cuda/tests) checks the same code the GPU runs.
#ifndef SLICER_CUDA_DEVICE_MATH_CUH_
#define SLICER_CUDA_DEVICE_MATH_CUH_

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>
#include <cstring>

#include "format/spec.hpp"

#define SLICER_HD __host__ __device__ __forceinline__

namespace slicer::cuda {

// Binary64 operations rounded one by one (docs/format.md §1). The device intrinsics forbid
// contraction into FMA; the host side is built with -ffp-contract=off as cpp/ is.
SLICER_HD double Add(double a, double b) {
#ifdef __CUDA_ARCH__
  return __dadd_rn(a, b);
#else
  return a + b;
#endif
}
SLICER_HD double Sub(double a, double b) {
#ifdef __CUDA_ARCH__
  return __dsub_rn(a, b);
#else
  return a - b;
#endif
}
SLICER_HD double Mul(double a, double b) {
#ifdef __CUDA_ARCH__
  return __dmul_rn(a, b);
#else
  return a * b;
#endif
}
SLICER_HD double Div(double a, double b) {
#ifdef __CUDA_ARCH__
  return __ddiv_rn(a, b);
#else
  return a / b;
#endif
}

SLICER_HD uint32_t FloatBits(float v) {
#ifdef __CUDA_ARCH__
  return __float_as_uint(v);
#else
  uint32_t u;
  std::memcpy(&u, &v, 4);
  return u;
#endif
}
SLICER_HD float BitsFloat(uint32_t u) {
#ifdef __CUDA_ARCH__
  return __uint_as_float(u);
#else
  float v;
  std::memcpy(&v, &u, 4);
  return v;
#endif
}

// Selection key: the binary32 bits of |x|. For finite x the unsigned order of the keys is the
// order of the magnitudes, and -0.0 and +0.0 both map to 0.
SLICER_HD uint32_t MagnitudeKey(float x) { return FloatBits(x) & 0x7FFFFFFFu; }
SLICER_HD bool IsFiniteBits(float x) { return (FloatBits(x) & 0x7F800000u) != 0x7F800000u; }

// splitmix64 tie-break draw (§4.3). Bijective in `index`, so two elements never draw equal.
SLICER_HD uint64_t Draw(uint64_t seed, uint64_t index) {
  uint64_t z = seed + (index + 1) * 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// Input widening (§1): every dtype goes exactly to binary32 first.
template <typename T>
SLICER_HD float ToFloat(T v);
template <>
SLICER_HD float ToFloat<float>(float v) {
  return v;
}
template <>
SLICER_HD float ToFloat<__half>(__half v) {
  return __half2float(v);
}
template <>
SLICER_HD float ToFloat<__nv_bfloat16>(__nv_bfloat16 v) {
  return __bfloat162float(v);
}

// Output narrowing (§5.3): binary64 -> binary32 (RNE) -> stream dtype (RNE).
template <typename T>
SLICER_HD T FromDouble(double v);
template <>
SLICER_HD float FromDouble<float>(double v) {
#ifdef __CUDA_ARCH__
  return __double2float_rn(v);
#else
  return static_cast<float>(v);
#endif
}
template <>
SLICER_HD __half FromDouble<__half>(double v) {
  return __float2half_rn(FromDouble<float>(v));
}
template <>
SLICER_HD __nv_bfloat16 FromDouble<__nv_bfloat16>(double v) {
  return __float2bfloat16_rn(FromDouble<float>(v));
}

// §5.3 quantizer on magnitudes against the block range [lo, hi], width >= 1.
SLICER_HD uint32_t Quantize(double a, double lo, double hi, uint32_t width) {
  const uint32_t levels = (1u << width) - 1u;
  const double step = Div(Sub(hi, lo), static_cast<double>(levels));
  const double v = Add(Div(Sub(a, lo), step), 0.5);
  if (!(v >= 1.0)) return 0;  // floor(v) <= 0 (also catches a NaN that cannot happen)
  if (v >= static_cast<double>(levels)) return levels;
  return static_cast<uint32_t>(v);  // truncation == floor for v >= 1
}

// §5.3 decoder; width 0 decodes to the block maximum (§5.2).
SLICER_HD double Dequantize(uint32_t q, double lo, double hi, uint32_t width) {
  if (width == 0) return hi;
  const double step = Div(Sub(hi, lo), static_cast<double>((1u << width) - 1u));
  return Add(lo, Mul(static_cast<double>(q), step));
}

// Truncated binary over L labels (§6.1) and the Rice rule: the format layer's definitions
// (cpp/src/format/spec.hpp), which the C++ decoder uses too.
using format::LabelCode;
using format::MakeLabelCode;
using format::RiceParameter;

SLICER_HD uint32_t LabelBits(LabelCode code, uint32_t label) {
  return label < code.u ? code.b : code.b + 1;
}
// The label's bits in write order packed LSB-first into one value of LabelBits() bits.
SLICER_HD uint32_t LabelValue(LabelCode code, uint32_t label) {
  if (label < code.u) return label;
  const uint32_t t = label - code.u;
  return (code.u + (t >> 1)) | ((t & 1u) << code.b);
}

// Bits of one kept element: gap (unary quotient + stop bit + r remainder bits), label, value.
SLICER_HD uint64_t ElementBits(uint64_t gap, uint32_t r, uint32_t label_bits, uint32_t width) {
  return (gap >> r) + 1 + r + label_bits + width;
}

// --- CRC-32 (zlib), with the combination operator that lets segments be checksummed apart.

SLICER_HD uint32_t Crc32Byte(uint32_t crc, uint8_t byte, const uint32_t* table) {
  return (crc >> 8) ^ table[(crc ^ byte) & 0xFFu];
}
SLICER_HD uint32_t Crc32TableEntry(uint32_t b) {
  uint32_t crc = b;
  for (int i = 0; i < 8; ++i) crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1u)));
  return crc;
}
// a * b modulo the CRC polynomial, in the reflected bit order of zlib's crc32_combine.
SLICER_HD uint32_t MulModP(uint32_t a, uint32_t b) {
  uint32_t m = 1u << 31;
  uint32_t p = 0;
  for (;;) {
    if (a & m) {
      p ^= b;
      if ((a & (m - 1)) == 0) break;
    }
    m >>= 1;
    b = (b & 1u) ? (b >> 1) ^ 0xEDB88320u : b >> 1;
  }
  return p;
}
// x^(8 * bytes) modulo the polynomial.
SLICER_HD uint32_t ShiftOperator(uint64_t bytes) {
  uint32_t p = 1u << 31;    // x^0
  uint32_t sq = 1u << 23;   // x^8: one byte
  while (bytes) {
    if (bytes & 1u) p = MulModP(sq, p);
    bytes >>= 1;
    sq = MulModP(sq, sq);
  }
  return p;
}
// CRC of A followed by B from crc(A), crc(B) and |B| (zlib's crc32_combine).
SLICER_HD uint32_t Crc32Combine(uint32_t crc_a, uint32_t crc_b, uint64_t length_b) {
  return MulModP(ShiftOperator(length_b), crc_a) ^ crc_b;
}

}  // namespace slicer::cuda

#endif  // SLICER_CUDA_DEVICE_MATH_CUH_
