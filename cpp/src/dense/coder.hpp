// Dense-mode coding primitives shared by the dense streams and by frames (docs/format.md §11,
// §12.2, §12.3, §13.1, §14): code → symbol + extra bits, the offset rule, the frequency-table
// bit field, one rANS encode / decode step, and element loads / stores as binary64. Header-only
// so that the per-symbol loops inline.
#ifndef SLICER_SRC_DENSE_CODER_HPP_
#define SLICER_SRC_DENSE_CODER_HPP_

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#include "dense/dense.hpp"
#include "float_bits.hpp"

namespace slicer::dense {

// Element i of a float array of the given dtype, widened exactly to binary64.
inline double LoadElement(int dtype, const uint8_t* p, uint64_t i) {
  switch (dtype) {
    case SLICER_FLOAT64: {
      double v;
      std::memcpy(&v, p + 8 * i, 8);
      return v;
    }
    case SLICER_FLOAT32: {
      float v;
      std::memcpy(&v, p + 4 * i, 4);
      return v;
    }
    case SLICER_FLOAT16: {
      uint16_t h;
      std::memcpy(&h, p + 2 * i, 2);
      return internal::HalfToFloat(h);
    }
    default: {
      uint16_t h;
      std::memcpy(&h, p + 2 * i, 2);
      return internal::BFloat16ToFloat(h);
    }
  }
}

// v rounded (RNE) to the dtype and stored as element i of dst.
inline void StoreElement(int dtype, uint8_t* dst, uint64_t i, double v) {
  switch (dtype) {
    case SLICER_FLOAT64:
      std::memcpy(dst + 8 * i, &v, 8);
      break;
    case SLICER_FLOAT32: {
      const float f = static_cast<float>(v);
      std::memcpy(dst + 4 * i, &f, 4);
      break;
    }
    case SLICER_FLOAT16: {
      const uint16_t h = internal::FloatToHalf(static_cast<float>(v));
      std::memcpy(dst + 2 * i, &h, 2);
      break;
    }
    default: {
      const uint16_t h = internal::FloatToBFloat16(static_cast<float>(v));
      std::memcpy(dst + 2 * i, &h, 2);
      break;
    }
  }
}

// floor(v) of a double in (-2^62, 2^62) as int64.
inline int64_t FloorToInt(double v) {
  const int64_t t = static_cast<int64_t>(v);
  return t - (static_cast<double>(t) > v);
}

// §12.3 data rule: running sums of floor((t − m) · 2^20) per class (m = 1, m ≥ 2).
struct OffsetSums {
  int64_t s1 = 0, s2 = 0;
  uint64_t c1 = 0, c2 = 0;
  void Add(double t, uint64_t m) {
    if (m == 0) return;
    const int64_t d = FloorToInt((t - static_cast<double>(m)) * 0x1p20);
    if (m == 1) {
      s1 += d;
      ++c1;
    } else {
      s2 += d;
      ++c2;
    }
  }
  static int8_t Offset(int64_t s, uint64_t c) {
    if (c == 0) return 0;
    const __int128 num = 2 * static_cast<__int128>(s) + static_cast<__int128>(c) * 4096;
    const __int128 den = 2 * static_cast<__int128>(c) * 4096;
    __int128 q = num / den;
    if ((num % den != 0) && ((num < 0) != (den < 0))) --q;  // floor division
    return static_cast<int8_t>(std::max<__int128>(-128, std::min<__int128>(127, q)));
  }
  int8_t O1() const { return Offset(s1, c1); }
  int8_t O2() const { return Offset(s2, c2); }
};

// §13.1: nsym (varint) is written by the caller; this appends the class bit field.
inline void WriteClassField(const unsigned* classes, unsigned nsym, std::vector<uint8_t>* out) {
  if (nsym == 0) return;
  uint64_t acc = 0;
  unsigned n = 0;
  auto write = [&](uint64_t v, unsigned bits) {
    for (unsigned b = 0; b < bits; ++b) {
      acc |= ((v >> b) & 1u) << n;
      if (++n == 8) {
        out->push_back(static_cast<uint8_t>(acc));
        acc = 0;
        n = 0;
      }
    }
  };
  write(classes[0], 9);
  for (unsigned s = 1; s < nsym; ++s) {
    const int64_t d = static_cast<int64_t>(classes[s]) - static_cast<int64_t>(classes[s - 1]);
    const uint64_t z = d >= 0 ? static_cast<uint64_t>(2 * d) : static_cast<uint64_t>(-2 * d - 1);
    const uint64_t u = z + 1;
    const unsigned len = 63 - static_cast<unsigned>(__builtin_clzll(u));
    write(0, len);
    write(1, 1);
    write(u - (uint64_t{1} << len), len);
  }
  if (n > 0) out->push_back(static_cast<uint8_t>(acc));
}

// §13.1: reads nsym classes from data[*pos, end) (the bit field only), checks ranges and the
// zero padding; advances *pos past the field. Returns SLICER_OK, TRUNCATED or CORRUPT.
inline slicer_status ReadClassField(const uint8_t* data, size_t end, size_t* pos, unsigned nsym,
                                    std::vector<unsigned>* classes) {
  classes->clear();
  if (nsym == 0) return SLICER_OK;
  size_t bit = 8 * *pos;
  const size_t bit_end = 8 * end;
  auto read = [&](unsigned bits, uint64_t* v) {
    if (bit + bits > bit_end) return false;
    uint64_t r = 0;
    for (unsigned b = 0; b < bits; ++b, ++bit) {
      r |= uint64_t{(data[bit >> 3] >> (bit & 7)) & 1u} << b;
    }
    *v = r;
    return true;
  };
  uint64_t v;
  if (!read(9, &v)) return SLICER_ERR_TRUNCATED;
  if (v > kClassMax) return SLICER_ERR_CORRUPT;
  classes->push_back(static_cast<unsigned>(v));
  for (unsigned q = 1; q < nsym; ++q) {
    unsigned len = 0;
    for (;;) {
      uint64_t b;
      if (!read(1, &b)) return SLICER_ERR_TRUNCATED;
      if (b) break;
      if (++len > 10) return SLICER_ERR_CORRUPT;
    }
    uint64_t low;
    if (!read(len, &low)) return SLICER_ERR_TRUNCATED;
    const uint64_t z = (uint64_t{1} << len) + low - 1;
    const int64_t d = (z & 1) ? -static_cast<int64_t>((z + 1) >> 1) : static_cast<int64_t>(z >> 1);
    const int64_t nv = static_cast<int64_t>(classes->back()) + d;
    if (nv < 0 || nv > static_cast<int64_t>(kClassMax)) return SLICER_ERR_CORRUPT;
    classes->push_back(static_cast<unsigned>(nv));
  }
  const unsigned pad = static_cast<unsigned>((8 - bit % 8) % 8);
  uint64_t padding = 0;
  if (!read(pad, &padding)) return SLICER_ERR_TRUNCATED;
  if (padding != 0) return SLICER_ERR_CORRUPT;
  *pos = bit / 8;
  return SLICER_OK;
}

// rANS encoder symbol (§14): division by the frequency through an exact reciprocal.
struct EncSymbol {
  uint32_t x_max, rcp_freq, bias;
  uint16_t cmpl_freq, rcp_shift;
};

inline EncSymbol MakeEncSymbol(uint32_t start, uint32_t freq) {
  EncSymbol s{};
  s.x_max = ((kRansL >> kProbBits) << 8) * freq;
  s.cmpl_freq = static_cast<uint16_t>(kProbScale - freq);
  if (freq < 2) {
    s.rcp_freq = ~0u;
    s.rcp_shift = 0;
    s.bias = start + kProbScale - 1;
  } else {
    uint32_t shift = 0;
    while (freq > (1u << shift)) ++shift;
    s.rcp_freq = static_cast<uint32_t>(((uint64_t{1} << (shift + 31)) + freq - 1) / freq);
    s.rcp_shift = static_cast<uint16_t>(shift - 1);
    s.bias = start;
  }
  return s;
}

// One encoder step: renormalise (bytes written backwards at *ptr), then x = C(s, x).
inline void RansPut(uint32_t* x, uint8_t** ptr, const EncSymbol& s) {
  uint32_t v = *x;
  while (v >= s.x_max) {
    *--*ptr = static_cast<uint8_t>(v);
    v >>= 8;
  }
  const uint32_t q =
      static_cast<uint32_t>((static_cast<uint64_t>(v) * s.rcp_freq) >> 32) >> s.rcp_shift;
  *x = v + s.bias + q * s.cmpl_freq;
}

// The same step without branches: at most two renormalisation bytes are ever due (x < 2^31,
// x_max ≥ 2^17); both comparisons come from the incoming state, both bytes are stored below
// *ptr unconditionally and kept only when due. The caller leaves 2 writable bytes below the
// lowest byte the stream can reach.
inline void RansPutBranchless(uint32_t* x, uint8_t** ptr, const EncSymbol& s) {
  const uint32_t v = *x;
  const unsigned due = static_cast<unsigned>(v >= s.x_max) +
                       static_cast<unsigned>(uint64_t{v} >= (uint64_t{s.x_max} << 8));
  uint8_t* p = *ptr;
  p[-1] = static_cast<uint8_t>(v);
  p[-2] = static_cast<uint8_t>(v >> 8);
  *ptr = p - due;
  const uint32_t w = static_cast<uint32_t>(uint64_t{v} >> (8 * due));
  const uint32_t q =
      static_cast<uint32_t>((static_cast<uint64_t>(w) * s.rcp_freq) >> 32) >> s.rcp_shift;
  *x = w + s.bias + q * s.cmpl_freq;
}

// Final states x[k-1] … x[0] written backwards, so the stream starts with x[0] (u32 LE each).
inline void RansFlush(const uint32_t* x, unsigned k, uint8_t** ptr) {
  for (unsigned j = k; j-- > 0;) {
    *ptr -= 4;
    (*ptr)[0] = static_cast<uint8_t>(x[j]);
    (*ptr)[1] = static_cast<uint8_t>(x[j] >> 8);
    (*ptr)[2] = static_cast<uint8_t>(x[j] >> 16);
    (*ptr)[3] = static_cast<uint8_t>(x[j] >> 24);
  }
}

// Decoder model: slot → symbol, and each symbol's (freq, cum).
struct DecModel {
  std::vector<uint16_t> slot_symbol;  // 2^14 entries
  std::vector<uint32_t> freq, cum;
  void Build(const std::vector<unsigned>& classes) {
    Normalize(classes, &freq, &cum);
    slot_symbol.assign(kProbScale, 0);
    for (size_t q = 0; q < freq.size(); ++q)
      for (uint32_t slot = cum[q]; slot < cum[q + 1]; ++slot)
        slot_symbol[slot] = static_cast<uint16_t>(q);
  }
};

// One decoder step on state *x; reads renormalisation bytes from [*r, end). False: read past end.
inline bool RansGet(uint32_t* x, const uint8_t** r, const uint8_t* end, const DecModel& m,
                    unsigned* sym) {
  uint32_t st = *x;
  const uint32_t slot = st & (kProbScale - 1);
  const unsigned s = m.slot_symbol[slot];
  st = m.freq[s] * (st >> kProbBits) + slot - m.cum[s];
  while (st < kRansL) {
    if (*r >= end) return false;
    st = (st << 8) | *(*r)++;
  }
  *x = st;
  *sym = s;
  return true;
}

}  // namespace slicer::dense

#endif  // SLICER_SRC_DENSE_CODER_HPP_
