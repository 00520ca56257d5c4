// Exact widening of float16 / bfloat16 to binary32 and RNE narrowing back (§1, §5.3).
#ifndef SLICER_SRC_FLOAT_BITS_HPP_
#define SLICER_SRC_FLOAT_BITS_HPP_

#include <cstdint>
#include <cstring>

namespace slicer::internal {

inline uint32_t FloatToBits(float value) {
  uint32_t bits;
  std::memcpy(&bits, &value, 4);
  return bits;
}

inline float BitsToFloat(uint32_t bits) {
  float value;
  std::memcpy(&value, &bits, 4);
  return value;
}

// |x| as an integer key: for non-negative finite floats the bit pattern orders like the value.
inline uint32_t MagnitudeKey(float value) { return FloatToBits(value) & 0x7FFFFFFFu; }

constexpr uint32_t kInfinityKey = 0x7F800000u;  // keys >= this are inf or NaN

inline float HalfToFloat(uint16_t half) {
  const uint32_t sign = static_cast<uint32_t>(half & 0x8000u) << 16;
  const uint32_t exponent = (half >> 10) & 0x1Fu;
  const uint32_t mantissa = half & 0x3FFu;
  if (exponent == 0) {
    // Subnormal or zero: mantissa * 2^-24 is exact in binary32.
    const float magnitude = static_cast<float>(mantissa) * 5.9604644775390625e-08f;
    return BitsToFloat(FloatToBits(magnitude) | sign);
  }
  if (exponent == 31) return BitsToFloat(sign | 0x7F800000u | (mantissa << 13));
  return BitsToFloat(sign | ((exponent + 112) << 23) | (mantissa << 13));
}

inline float BFloat16ToFloat(uint16_t value) {
  return BitsToFloat(static_cast<uint32_t>(value) << 16);
}

// Round-to-nearest-even binary32 -> binary16 (overflow gives infinity).
inline uint16_t FloatToHalf(float value) {
  const uint32_t f32_infinity = 255u << 23;
  const uint32_t f16_overflow = (127u + 16u) << 23;
  const uint32_t denormal_magic = ((127u - 15u) + (23u - 10u) + 1u) << 23;
  uint32_t bits = FloatToBits(value);
  const uint32_t sign = bits & 0x80000000u;
  bits ^= sign;
  uint32_t out;
  if (bits >= f16_overflow) {
    out = bits > f32_infinity ? 0x7E00u : 0x7C00u;
  } else if (bits < (113u << 23)) {
    // Below the smallest normal half: let the FPU's RNE addition do the rounding.
    const float shifted = BitsToFloat(bits) + BitsToFloat(denormal_magic);
    out = FloatToBits(shifted) - denormal_magic;
  } else {
    const uint32_t mantissa_odd = (bits >> 13) & 1u;
    bits += (static_cast<uint32_t>(15 - 127) << 23) + 0xFFFu + mantissa_odd;
    out = bits >> 13;
  }
  return static_cast<uint16_t>(out | (sign >> 16));
}

// Round-to-nearest-even binary32 -> bfloat16 (inputs are finite here).
inline uint16_t FloatToBFloat16(float value) {
  const uint32_t bits = FloatToBits(value);
  if ((bits & 0x7FFFFFFFu) > 0x7F800000u) return static_cast<uint16_t>((bits >> 16) | 0x40u);
  return static_cast<uint16_t>((bits + 0x7FFFu + ((bits >> 16) & 1u)) >> 16);
}

}  // namespace slicer::internal

#endif  // SLICER_SRC_FLOAT_BITS_HPP_
