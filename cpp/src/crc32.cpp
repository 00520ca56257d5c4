#include "crc32.hpp"

#include <array>
#include <cstring>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define SLICER_CRC_CLMUL 1
#endif

namespace slicer::internal {
namespace {

// Slicing-by-8 tables: table[t][b] is the CRC of byte b followed by t zero bytes.
using Tables = std::array<std::array<uint32_t, 256>, 8>;

Tables MakeTables() {
  Tables table{};
  for (uint32_t b = 0; b < 256; ++b) {
    uint32_t crc = b;
    for (int i = 0; i < 8; ++i) crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1u)));
    table[0][b] = crc;
  }
  for (uint32_t b = 0; b < 256; ++b) {
    for (int t = 1; t < 8; ++t) {
      const uint32_t prev = table[t - 1][b];
      table[t][b] = (prev >> 8) ^ table[0][prev & 0xFF];
    }
  }
  return table;
}

const Tables& GetTables() {
  static const Tables tables = MakeTables();
  return tables;
}

// The raw register update (no pre/post inversion), slicing by 8.
uint32_t UpdateTable(uint32_t crc, const uint8_t* data, size_t size) {
  const Tables& t = GetTables();
  while (size >= 8) {
    uint32_t lo;
    uint32_t hi;
    std::memcpy(&lo, data, 4);
    std::memcpy(&hi, data + 4, 4);
    lo ^= crc;  // the stream is little-endian and so is every supported host
    crc = t[7][lo & 0xFF] ^ t[6][(lo >> 8) & 0xFF] ^ t[5][(lo >> 16) & 0xFF] ^ t[4][lo >> 24] ^
          t[3][hi & 0xFF] ^ t[2][(hi >> 8) & 0xFF] ^ t[1][(hi >> 16) & 0xFF] ^ t[0][hi >> 24];
    data += 8;
    size -= 8;
  }
  while (size-- > 0) crc = (crc >> 8) ^ t[0][(crc ^ *data++) & 0xFF];
  return crc;
}

#if defined(SLICER_CRC_CLMUL)
bool HasClmul() {
  static const bool has = __builtin_cpu_supports("pclmul") && __builtin_cpu_supports("sse2");
  return has;
}

// One folding step in the bit-reflected domain: x (128 bits) moved forward by the distance
// whose constants are in k (low lane for x's low half, high lane for its high half), plus y.
__attribute__((target("pclmul,sse2"))) inline __m128i Fold(__m128i x, __m128i k, __m128i y) {
  return _mm_xor_si128(
      _mm_xor_si128(_mm_clmulepi64_si128(x, k, 0x00), _mm_clmulepi64_si128(x, k, 0x11)), y);
}

// Carry-less-multiply folding (size >= 64): four 128-bit lanes fold 64 bytes at a time, then
// into one lane. Folding keeps the message's remainder, so the folded 16 bytes, read with a
// zero register, continue exactly where the data left off; the table finishes the tail.
__attribute__((target("pclmul,sse2"))) uint32_t UpdateClmul(uint32_t crc, const uint8_t* data,
                                                            size_t size) {
  const __m128i fold_by_4 = _mm_set_epi64x(0x01c6e41596, 0x0154442bd4);  // 512-bit distance
  const __m128i fold_by_1 = _mm_set_epi64x(0x00ccaa009e, 0x01751997d0);  // 128-bit distance
  const auto load = [](const uint8_t* at) {
    return _mm_loadu_si128(reinterpret_cast<const __m128i*>(at));
  };
  __m128i x0 = _mm_xor_si128(load(data), _mm_cvtsi32_si128(static_cast<int>(crc)));
  __m128i x1 = load(data + 16);
  __m128i x2 = load(data + 32);
  __m128i x3 = load(data + 48);
  data += 64;
  size -= 64;
  while (size >= 64) {
    x0 = Fold(x0, fold_by_4, load(data));
    x1 = Fold(x1, fold_by_4, load(data + 16));
    x2 = Fold(x2, fold_by_4, load(data + 32));
    x3 = Fold(x3, fold_by_4, load(data + 48));
    data += 64;
    size -= 64;
  }
  x0 = Fold(x0, fold_by_1, x1);
  x0 = Fold(x0, fold_by_1, x2);
  x0 = Fold(x0, fold_by_1, x3);
  while (size >= 16) {
    x0 = Fold(x0, fold_by_1, load(data));
    data += 16;
    size -= 16;
  }
  uint8_t folded[16];
  _mm_storeu_si128(reinterpret_cast<__m128i*>(folded), x0);
  return UpdateTable(UpdateTable(0, folded, 16), data, size);
}
#endif

// a(x) * b(x) modulo the CRC polynomial, both in the bit-reflected form (bit 31 is x^0).
uint32_t MultiplyModP(uint32_t a, uint32_t b) {
  uint32_t product = 0;
  for (uint32_t m = uint32_t{1} << 31; m != 0; m >>= 1) {
    if ((a & m) != 0) {
      product ^= b;
      if ((a & (m - 1)) == 0) break;
    }
    b = (b & 1u) != 0 ? (b >> 1) ^ 0xEDB88320u : b >> 1;
  }
  return product;
}

// table[k] = x^(2^k) modulo the polynomial.
std::array<uint32_t, 64> MakePowerTable() {
  std::array<uint32_t, 64> table{};
  uint32_t p = uint32_t{1} << 30;  // x^1
  for (uint32_t& entry : table) {
    entry = p;
    p = MultiplyModP(p, p);
  }
  return table;
}

// x^(8 * bytes) modulo the polynomial.
uint32_t ShiftOfBytes(uint64_t bytes) {
  static const std::array<uint32_t, 64> powers = MakePowerTable();
  uint32_t p = uint32_t{1} << 31;  // x^0
  for (unsigned k = 3; bytes != 0 && k < 64; bytes >>= 1, ++k) {
    if ((bytes & 1u) != 0) p = MultiplyModP(powers[k], p);
  }
  return p;
}

}  // namespace

uint32_t Crc32Combine(uint32_t crc_a, uint32_t crc_b, uint64_t length_b) {
  return MultiplyModP(ShiftOfBytes(length_b), crc_a) ^ crc_b;
}

uint32_t Crc32(uint32_t crc, const uint8_t* data, size_t size) {
#if defined(SLICER_CRC_CLMUL)
  if (size >= 64 && HasClmul()) return ~UpdateClmul(~crc, data, size);
#endif
  return ~UpdateTable(~crc, data, size);
}

}  // namespace slicer::internal
