// Format 2 dense decoder (docs/format.md §10-§14): validates everything before it allocates
// from a size the stream states, never reads outside [data, data + size).
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <vector>

#include "crc32.hpp"
#include "dense/coder.hpp"
#include "dense/dense.hpp"
#include "dense/dense_internal.hpp"
#include "dense/simd.hpp"
#include "dense/trellis.hpp"
#include "float_bits.hpp"
#include "format/class_map.hpp"
#include "format/dense_body.hpp"
#include "format/dense_header.hpp"
#include "format/reject.hpp"
#include "parallel.hpp"
#include "varint.hpp"

namespace slicer::dense {
namespace {

using format::Reject;

// Per-symbol decoding entry (§11, §12.4, §14): rANS frequency and start, the magnitude of the
// bin's first value, its extra bits, the reconstruction offset and the sign.
struct DSym {
  uint32_t freq, cum;
  uint64_t base;   // m of the bin's first value (m itself for the direct bins)
  double off;      // o1/256 for m = 1, o2/256 for m >= 2, 0 for symbol 0
  double sign;     // -1.0 for q < 0, else +1.0 (an exact multiplication)
  uint64_t mask;   // 2^nbits - 1
  uint32_t nbits;  // extra bits (0 for the direct bins)
  uint32_t unused;
};

// Mode 2: a symbol's rANS frequency and start in one class's table (the rest of its DSym does
// not depend on the class: one small table per class keeps the decoder's tables in cache).
struct FreqCum {
  uint32_t freq, cum;
};

// Strides of the per-class decoder tables of mode 2.
constexpr size_t kSymStride = kNumSymbols;
constexpr size_t kCumStride = kNumSymbols + 1;

// slot → symbol for symbols below this; slots of larger symbols (bins of magnitude ≥ 2^33,
// rare) hold kEscape: such elements take the careful path, which resolves the symbol from the
// cumulative frequencies and is the only one that can meet a magnitude above 2^53.
constexpr uint8_t kEscape = 255;

// Bytes after the last slot of the lut, so that a 32-bit gather at any slot stays inside it.
constexpr size_t kLutPad = 4;

// The parsed stream: the body (group table, class map, tables, chunks) by the format layer,
// the mode's parameters and its decoding tables.
struct Stream : format::DenseBodyParams, format::DenseBody {
  int dtype = 0;
  uint32_t ndim = 0;
  int64_t shape[SLICER_MAX_NDIM] = {};
  uint64_t n = 0;
  unsigned layout_code = 0;
  unsigned rho = 0;
  int o1 = 0, o2 = 0;
  double low_offs[3] = {0.0, 0.0, 0.0};  // §13.6: {0, o1/256, o2/256} by |q| = 0, 1, ≥ 2
  // Per class c (mode 1: one class): slots [c · 2^14, (c + 1) · 2^14) of lut, symbols
  // [c · kSymStride, …) of syms, cum entries [c · kCumStride, …) of cum.
  std::vector<uint32_t> freq, cum;   // mode 1: cum has nsym + 1 entries
  std::vector<uint8_t> lut;          // slot -> symbol, or kEscape
  std::vector<DSym> syms;            // per symbol (mode 2: freq / cum unused, see fc)
  std::vector<FreqCum> fc;           // mode 2: per class and symbol
  unsigned nsym = 0;                 // mode 1; mode 2: the largest of the tables'
  std::vector<unsigned> class_nsym;  // mode 2: nsym per class
  using Chunk = format::DenseChunk;
};

inline bool IsDenseGroup(const Stream& s, uint64_t g) {
  return !s.has_table || GroupIsDense(s.table[g]);
}

template <int kDtype>
inline void StoreT(uint8_t* dst, uint64_t i, double v) {
  if constexpr (kDtype == SLICER_FLOAT64) {
    std::memcpy(dst + 8 * i, &v, 8);
  } else if constexpr (kDtype == SLICER_FLOAT32) {
    const float f = static_cast<float>(v);
    std::memcpy(dst + 4 * i, &f, 4);
  } else if constexpr (kDtype == SLICER_FLOAT16) {
    const uint16_t h = internal::FloatToHalf(static_cast<float>(v));
    std::memcpy(dst + 2 * i, &h, 2);
  } else {
    const uint16_t h = internal::FloatToBFloat16(static_cast<float>(v));
    std::memcpy(dst + 2 * i, &h, 2);
  }
}

// The symbol owning `slot` from the cumulative frequencies (the escape path of the lut).
unsigned SlotSymbol(const uint32_t* cum, unsigned nsym, uint32_t slot) {
  return static_cast<unsigned>(std::upper_bound(cum, cum + nsym + 1, slot) - cum) - 1;
}

// State of a chunk being decoded: rANS states and byte cursor (§14), extra-bit cursor.
struct ChunkIn {
  uint32_t x[4];
  const uint8_t* r;
  const uint8_t* end;
  const uint8_t* bits;  // extra-bit area
  uint64_t bits_len;    // its length in bytes
  uint64_t bits_room;   // readable bytes from `bits` to the end of the stream (≥ bits_len)
  uint64_t bit_pos = 0;
  // The paired decoder's VecExtras may read this chunk's bits while bit_pos < vec_end (a step's
  // 26 bits inside the area, 8 readable bytes at the cursor); set by VecExtrasEnd.
  uint64_t vec_end = 0;
};

// §13.6: the low bits of the chunk's coded element e (k ≤ 15 bits at bit e·k of the bit area,
// inside it: ParseDenseBody checked coded·k ≤ 8·bits_len), never reading past the stream.
inline uint32_t PlaneLow(const ChunkIn& in, unsigned k, uint64_t e) {
  const uint64_t at = e * k, first = at >> 3;
  uint32_t word = 0;  // (at & 7) + k ≤ 22 bits
  if (first + 4 <= in.bits_room) {
    std::memcpy(&word, in.bits + first, 4);
  } else {
    for (uint64_t b = first; b < in.bits_room; ++b)
      word |= uint32_t{in.bits[b]} << (8 * (b - first));
  }
  return (word >> (at & 7)) & ((1u << k) - 1);
}

// §13.6: the value of code q = h·2^k + l, h = ±mh (negative: the symbol's sign), by §12.4; false
// when |q| > 2^53 (then *v is 0).
//
// Without branches on the data (signs and small magnitudes are random): the offset from the
// stream's table offs = {0, o1/256, o2/256} (Stream::low_offs, built once: a table built per call
// went through the stack on every element), the sign flipped on the bits (−(a·Δ) is exactly
// (a·Δ)·(−1)).
inline bool LowValue(uint64_t mh, bool negative, uint32_t low, unsigned k, const double* offs,
                     double delta, double* v) {
  *v = 0.0;
  if (mh > (kMaxMag >> k)) return false;  // |q| > 2^53 whatever l is
  const int64_t sh = -static_cast<int64_t>(negative);
  const int64_t h = (static_cast<int64_t>(mh) ^ sh) - sh;
  const int64_t q = h * (int64_t{1} << k) + static_cast<int64_t>(low);
  const int64_t sq = q >> 63;  // 0, or −1 for q < 0
  const uint64_t m = static_cast<uint64_t>((q ^ sq) - sq);
  if (m > kMaxMag) return false;
  const double a =
      (static_cast<double>(static_cast<int64_t>(m)) + offs[std::min<uint64_t>(m, 2)]) * delta;
  uint64_t bits;
  std::memcpy(&bits, &a, 8);
  bits ^= static_cast<uint64_t>(sq) & (uint64_t{1} << 63);
  std::memcpy(v, &bits, 8);
  return true;
}

// §13.6, DecodeRun's float32 batches: the values of n consecutive coded elements from their h·2^k
// (a[0 … n), |h·2^k| < 2^48) and their low bits (the plane fields of coded elements e0 … e0 + n
// − 1, k ≤ kLowBatchMax bits, each field's 64-bit window readable: the caller's fast steps held
// it), rounded to binary32 into out[0 … n). LowValue's value, four lanes at a time: q = a + l,
// |q| < 2^49 as binary64 by its bits (2^52 + |q|, minus 2^52: exact), + o/256 of |q| = 0, 1, ≥ 2
// (exact), × Δ (the one rounding), the sign of q on the bits, then binary32.
constexpr unsigned kLowBatchMax = 14;  // (e·k) mod 8 + 4k ≤ 63: four fields in one 64-bit word
constexpr uint64_t kLowBatch = 256;

inline double LowBatchValue(int64_t a, uint64_t low, const double* offs, double delta) {
  const int64_t q = a + static_cast<int64_t>(low);
  const int64_t sq = q >> 63;  // 0, or −1 for q < 0
  const uint64_t m = static_cast<uint64_t>((q ^ sq) - sq);
  const double v =
      (static_cast<double>(static_cast<int64_t>(m)) + offs[std::min<uint64_t>(m, 2)]) * delta;
  uint64_t bits;
  std::memcpy(&bits, &v, 8);
  bits ^= static_cast<uint64_t>(sq) & (uint64_t{1} << 63);
  double r;
  std::memcpy(&r, &bits, 8);
  return r;
}

__attribute__((target("avx2"))) void LowBatchF32(const uint8_t* bits, uint64_t e0, unsigned k,
                                                 const int64_t* a, uint64_t n, float* out,
                                                 double delta, const double* offs) {
  const uint64_t field = (uint64_t{1} << k) - 1;
  const __m256i mask = _mm256_set1_epi64x(static_cast<int64_t>(field));
  const __m256i lanes = _mm256_setr_epi64x(0, k, 2 * k, 3 * k);
  const __m256i magic = _mm256_set1_epi64x(0x4330000000000000LL);  // 2^52 as binary64
  const __m256d two52 = _mm256_castsi256_pd(magic);
  const __m256i one = _mm256_set1_epi64x(1), zero = _mm256_setzero_si256();
  const __m256d off0 = _mm256_set1_pd(offs[0]), off1 = _mm256_set1_pd(offs[1]);
  const __m256d off2 = _mm256_set1_pd(offs[2]), dl = _mm256_set1_pd(delta);
  const __m256i sign_bit = _mm256_set1_epi64x(static_cast<int64_t>(uint64_t{1} << 63));
  uint64_t i = 0;
  for (; i + 4 <= n; i += 4) {
    const uint64_t at = (e0 + i) * k;
    int64_t word;
    std::memcpy(&word, bits + (at >> 3), 8);
    const __m256i shift = _mm256_add_epi64(lanes, _mm256_set1_epi64x(static_cast<int64_t>(at & 7)));
    const __m256i low = _mm256_and_si256(_mm256_srlv_epi64(_mm256_set1_epi64x(word), shift), mask);
    const __m256i q = _mm256_add_epi64(
        _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a + i)), low);
    const __m256i sq = _mm256_cmpgt_epi64(zero, q);
    const __m256i m = _mm256_sub_epi64(_mm256_xor_si256(q, sq), sq);
    const __m256d dm = _mm256_sub_pd(_mm256_castsi256_pd(_mm256_or_si256(m, magic)), two52);
    const __m256d off = _mm256_blendv_pd(
        _mm256_blendv_pd(off2, off1, _mm256_castsi256_pd(_mm256_cmpeq_epi64(m, one))), off0,
        _mm256_castsi256_pd(_mm256_cmpeq_epi64(m, zero)));
    const __m256d v = _mm256_mul_pd(_mm256_add_pd(dm, off), dl);
    const __m256d sv = _mm256_xor_pd(v, _mm256_castsi256_pd(_mm256_and_si256(sq, sign_bit)));
    _mm_storeu_ps(out + i, _mm256_cvtpd_ps(sv));
  }
  for (; i < n; ++i) {
    const uint64_t at = (e0 + i) * k;
    uint64_t word;
    std::memcpy(&word, bits + (at >> 3), 8);
    out[i] = static_cast<float>(LowBatchValue(a[i], (word >> (at & 7)) & field, offs, delta));
  }
}

// Decodes `count` coded elements of one group run into dst[i0, i0 + count) (when kStore), the
// first of them being the chunk's coded element `idx`. Returns false on a corrupt stream.
//
// Fast path, while every byte a step can touch lies inside the chunk (the rANS bytes and the
// extra-bit area): no branch depends on the data. The renormalisation takes the 0, 1 or 2 bytes
// due from a 16-bit window (§14: a decoded state is ≥ 2^9, so never more than two), the extra
// bits come from a 64-bit window at the bit cursor, and every symbol is reconstructed by the
// same formula (§12.4: ±(m + o/256)·Δ, m = base + extra, which is exact for the direct bins
// too). Near the end of the chunk each byte is checked before it is read.
//
// kClasses (mode 2, §19.3): element k uses the tables of class cls[k]. kLow (mode 1 with a
// low-bit plane, §13.6): the symbols are h's, each value takes its low bits from the plane.
template <int kDtype, unsigned kStates, bool kStore, bool kClasses, bool kLow>
bool DecodeRun(const Stream& s, ChunkIn* in, uint64_t idx, uint64_t count, uint8_t* dst,
               uint64_t i0, double delta, const uint8_t* cls) {
  const uint8_t* const lut0 = s.lut.data();
  const DSym* const syms0 = s.syms.data();
  const FreqCum* const fc0 = s.fc.data();
  const uint32_t* const cum0 = s.cum.data();
  const unsigned nsym0 = s.nsym;
  uint32_t x[4] = {in->x[0], in->x[1], in->x[2], in->x[3]};
  const uint8_t* r = in->r;
  const uint8_t* const end = in->end;
  const uint8_t* const bits = in->bits;
  const uint64_t bit_limit = 8 * in->bits_len;
  const uint64_t window_limit = 8 * in->bits_room;
  uint64_t bit_pos = in->bit_pos;
  bool ok = true;
  // kLow: the plane's width, field mask and offsets in locals (the stores through dst may alias
  // the stream's fields, which would be reloaded for every element).
  const unsigned low_k = s.low_bits;
  const uint64_t low_mask = (uint64_t{1} << low_k) - 1;
  const double offs[3] = {s.low_offs[0], s.low_offs[1], s.low_offs[2]};
  // kLow, float32 out, AVX2 (and not forced off), k ≤ kLowBatchMax: the fast steps keep h·2^k of
  // up to kLowBatch consecutive elements, LowBatchF32 makes their values (before any careful
  // step, which writes its own element, and at the end of the fast steps).
  constexpr bool kBatchable = kLow && kStore && kDtype == SLICER_FLOAT32;
  const bool batch = kBatchable && low_k <= kLowBatchMax && SimdWanted();
  alignas(32) int64_t hbuf[kBatchable ? kLowBatch : 1];
  uint64_t held = 0;  // elements in hbuf: the fast steps' k − held … k − 1
  auto flush = [&](uint64_t k) {
    if constexpr (kBatchable) {
      if (held == 0) return;
      LowBatchF32(bits, idx + k - held, low_k, hbuf, held,
                  reinterpret_cast<float*>(dst) + i0 + k - held, delta, offs);
      held = 0;
    }
  };
  // m < 2^55 always (bin 211: (7 << 51) + 2^51 - 1): the int64 conversion is exact up to 2^53.
  auto element = [&](const DSym& d, uint64_t extra, uint64_t k) {
    const uint64_t m = d.base + extra;
    double v;
    if constexpr (kLow) {
      if (!LowValue(m, d.sign < 0, PlaneLow(*in, s.low_bits, idx + k), s.low_bits, s.low_offs,
                    delta, &v))
        ok = false;
    } else {
      v = ((static_cast<double>(static_cast<int64_t>(m)) + d.off) * delta) * d.sign;
    }
    if constexpr (kStore) StoreT<kDtype>(dst, i0 + k, v);
  };
  // Every read checked; the only step that meets escaped symbols and magnitudes above 2^53.
  // Not inlined: inside the fast step's (rare) escape branch it made the unrolled loop of mode 1
  // 30-45 % slower (bench/bench_dense_cpp.cpp against the build before mode 2).
  auto careful = [&](uint32_t & st, uint64_t k) __attribute__((noinline)) {
    const unsigned c = kClasses ? cls[k] : 0;
    const uint8_t* const lut = lut0 + size_t{c} * kProbScale;
    const uint32_t slot = st & (kProbScale - 1);
    unsigned q = lut[slot];
    if (q == kEscape) {
      q = kClasses ? SlotSymbol(cum0 + c * kCumStride, s.class_nsym[c], slot)
                   : SlotSymbol(cum0, nsym0, slot);
    }
    const DSym& d = syms0[q];
    const uint32_t f = kClasses ? fc0[c * kSymStride + q].freq : d.freq;
    const uint32_t start = kClasses ? fc0[c * kSymStride + q].cum : d.cum;
    st = f * (st >> kProbBits) + slot - start;
    while (st < kRansL) {
      if (r >= end) {
        ok = false;
        st = kRansL;
        break;
      }
      st = (st << 8) | *r++;
    }
    uint64_t extra = 0;  // defined even when the read fails (the chunk is rejected then)
    if (bit_pos + d.nbits > bit_limit) {
      ok = false;
    } else if (d.nbits != 0) {
      const uint64_t first = bit_pos >> 3, last = (bit_pos + d.nbits - 1) >> 3;
      uint64_t word = 0;
      for (uint64_t b = first; b <= last; ++b) word |= uint64_t{bits[b]} << (8 * (b - first));
      extra = (word >> (bit_pos & 7)) & d.mask;
    }
    bit_pos += d.nbits;
    if (d.base + extra > kMaxMag) ok = false;  // kLow: also |q| > 2^53 in element
    element(d, extra, k);
  };
  // No branch on the data but the (never taken in practice) escape.
  auto fast = [&](uint32_t& st, uint64_t k) {
    const unsigned c = kClasses ? cls[k] : 0;
    const uint32_t slot = st & (kProbScale - 1);
    const unsigned q = lut0[size_t{c} * kProbScale + slot];
    if (__builtin_expect(q == kEscape, 0)) {
      flush(k);
      return careful(st, k);
    }
    const DSym& d = syms0[q];
    uint32_t v;
    if constexpr (kClasses) {
      const FreqCum e = fc0[c * kSymStride + q];
      v = e.freq * (st >> kProbBits) + slot - e.cum;
    } else {
      v = d.freq * (st >> kProbBits) + slot - d.cum;
    }
    const uint32_t need =
        static_cast<uint32_t>(v < kRansL) + static_cast<uint32_t>(v < (kRansL >> 8));
    const uint32_t window = uint32_t{r[0]} << 8 | r[1];
    st = static_cast<uint32_t>((uint64_t{v} << (8 * need)) | (window >> (16 - 8 * need)));
    r += need;
    uint64_t word;
    std::memcpy(&word, bits + (bit_pos >> 3), 8);
    const uint64_t extra = (word >> (bit_pos & 7)) & d.mask;
    bit_pos += d.nbits;
    if (kBatchable && batch) {  // h·2^k for LowBatchF32 (h < 0 iff the symbol's sign is −1)
      int64_t sign_bits;
      std::memcpy(&sign_bits, &d.sign, 8);
      const uint64_t neg = static_cast<uint64_t>(sign_bits >> 63);  // 0 or all ones
      hbuf[held] = static_cast<int64_t>((((d.base + extra) << low_k) ^ neg) - neg);
      if (++held == kLowBatch) flush(k + 1);
    } else if constexpr (kLow) {
      // §13.6: l from a 64-bit window at the element's plane field, unchecked: the plane lies
      // before the extra bits (field (idx + k)·k_low < coded·k_low ≤ bit_pos), and room() holds
      // 64 readable bits past bit_pos.
      const uint64_t at = (idx + k) * low_k;
      uint64_t pw;
      std::memcpy(&pw, bits + (at >> 3), 8);
      const uint64_t low = (pw >> (at & 7)) & low_mask;
      // LowValue's value without its bounds (no lut escape: h = ±mh, mh < 2^33, so |q| < 2^48)
      // and with fewer steps: h < 0 exactly for the symbols of sign −1 (then mh ≥ 1), and q has
      // h's sign (|l| < 2^k), so |q| = mh·2^k ± l and the sign is the symbol's exact factor.
      int64_t sign_bits;
      std::memcpy(&sign_bits, &d.sign, 8);
      const uint64_t neg = static_cast<uint64_t>(sign_bits >> 63);  // 0 or all ones
      const uint64_t m = ((d.base + extra) << low_k) + ((low ^ neg) - neg);
      const double v =
          ((static_cast<double>(static_cast<int64_t>(m)) + offs[std::min<uint64_t>(m, 2)]) *
           delta) *
          d.sign;
      if constexpr (kStore) StoreT<kDtype>(dst, i0 + k, v);
    } else {
      element(d, extra, k);
    }
  };
  // Room for kStates fast steps: 2 rANS bytes each; ≤ 51 extra bits each plus the 64-bit
  // window inside the stream (a window may reach past the extra-bit area into the following
  // bytes: a step that consumed bits beyond the area leaves bit_pos > bit_limit, and the chunk
  // is rejected by its length check, as the careful reader would have rejected the read).
  auto room = [&]() {
    return end - r >= static_cast<std::ptrdiff_t>(2 * kStates) &&
           bit_pos + 51 * kStates + 64 <= window_limit;
  };
  uint64_t k = 0;
  if constexpr (kStates == 1) {
    uint32_t x0 = x[0];
    for (; k < count && room(); ++k) fast(x0, k);
    flush(k);
    for (; k < count && ok; ++k) careful(x0, k);
    x[0] = x0;
  } else {
    for (; k < count && ((idx + k) & 3) != 0 && ok; ++k) careful(x[(idx + k) & 3], k);
    uint32_t x0 = x[0], x1 = x[1], x2 = x[2], x3 = x[3];
    if (ok) {
      for (; k + 4 <= count && room(); k += 4) {
        fast(x0, k);
        fast(x1, k + 1);
        fast(x2, k + 2);
        fast(x3, k + 3);
      }
      flush(k);
    }
    x[0] = x0, x[1] = x1, x[2] = x2, x[3] = x3;
    for (; k < count && ok; ++k) careful(x[(idx + k) & 3], k);
  }
  if (!ok) return false;
  for (unsigned q = 0; q < 4; ++q) in->x[q] = x[q];
  in->r = r;
  in->bit_pos = bit_pos;
  return true;
}

using RunFn = bool (*)(const Stream&, ChunkIn*, uint64_t, uint64_t, uint8_t*, uint64_t, double,
                       const uint8_t*);

template <unsigned kStates, bool kStore, bool kClasses, bool kLow>
RunFn PickRunOf(int dtype) {
  switch (dtype) {
    case SLICER_FLOAT64:
      return &DecodeRun<SLICER_FLOAT64, kStates, kStore, kClasses, kLow>;
    case SLICER_FLOAT32:
      return &DecodeRun<SLICER_FLOAT32, kStates, kStore, kClasses, kLow>;
    case SLICER_FLOAT16:
      return &DecodeRun<SLICER_FLOAT16, kStates, kStore, kClasses, kLow>;
    default:
      return &DecodeRun<SLICER_BFLOAT16, kStates, kStore, kClasses, kLow>;
  }
}

// Mode 2 (classes) never has a low-bit plane (§13.6).
template <unsigned kStates, bool kStore>
RunFn PickRun(int dtype, bool classes, bool low) {
  return classes ? PickRunOf<kStates, kStore, true, false>(dtype)
         : low   ? PickRunOf<kStates, kStore, false, true>(dtype)
                 : PickRunOf<kStates, kStore, false, false>(dtype);
}

// Zero bytes after a copied bit area: every fast step of DecodeRun (51·4 + 64 bits of room)
// fits behind any cursor inside the area.
constexpr uint64_t kAreaPad = 40;
static_assert(8 * kAreaPad >= 51 * 4 + 64, "kAreaPad: room() of four fast steps");

// Decodes chunk j (§14); writes its elements when dst != nullptr.
slicer_status DecodeChunk(const Stream& s, const uint8_t* data, size_t size, uint64_t j,
                          uint8_t* dst) {
  const Stream::Chunk& c = s.chunks[j];
  const uint64_t chunk = uint64_t{1} << s.chunk_log2;
  const uint64_t begin = j * chunk, stop_all = std::min(s.n, begin + chunk);
  const uint8_t* r = data + c.offset;
  const unsigned k = StatesFor(c.coded);
  ChunkIn in{{kRansL, kRansL, kRansL, kRansL}, r, r + c.rans_len, r + c.rans_len, c.bits_len,
             size - (c.offset + c.rans_len)};
  in.bit_pos = c.coded * s.low_bits;  // §13.6: the extra bits follow the plane
  // A chunk whose bit area ends less than kAreaPad bytes before the end of the stream (the last
  // one) would take DecodeRun's careful steps wherever fewer than 51·4 + 64 bits are left behind
  // the bit cursor: where extra bits are few (low rates, or h's with a plane, §13.6), that is
  // most of the chunk — a four-state tensor of 21 952 elements at 3.6 b/el decoded in 131 µs,
  // 81 µs with this. Such a chunk's area is decoded from a copy followed by zeros: the same
  // values and verdicts (a read past the area decides nothing but its rejection, by the length
  // check below), only fast steps. Not for a one-state chunk without a plane: its careful steps
  // are the faster ones (one state's chain, branches that predict), 11 % at 4096 elements.
  std::vector<uint8_t> area;
  if ((k == 4 || s.low_bits != 0) && in.bits_room - in.bits_len < kAreaPad) {
    area.assign(in.bits_len + kAreaPad, 0);
    std::memcpy(area.data(), in.bits, in.bits_len);
    in.bits = area.data();
    in.bits_room = area.size();
  }
  if (c.coded > 0) {
    for (unsigned q = 0; q < k; ++q) {
      in.x[q] = uint32_t{r[0]} | uint32_t{r[1]} << 8 | uint32_t{r[2]} << 16 | uint32_t{r[3]} << 24;
      r += 4;
      if (in.x[q] < kRansL || in.x[q] >= (kRansL << 8))
        return Reject(SLICER_ERR_CORRUPT, "dense rANS initial state");
    }
    in.r = r;
  }
  const bool classes = s.nclass > 1, low = s.low_bits != 0;
  const RunFn run = dst != nullptr ? (k == 1 ? PickRun<1, true>(s.dtype, classes, low)
                                             : PickRun<4, true>(s.dtype, classes, low))
                                   : (k == 1 ? PickRun<1, false>(s.dtype, classes, low)
                                             : PickRun<4, false>(s.dtype, classes, low));
  std::vector<uint8_t> cls;  // mode 2: the class of each element of the current run
  uint64_t idx = 0;          // coded element index within the chunk
  for (uint64_t i = begin; i < stop_all;) {
    const uint64_t g = s.layout.GroupOf(i);
    const uint64_t stop = std::min(stop_all, i + s.layout.RunLeft(i, s.n));
    if (!IsDenseGroup(s, g)) {
      if (dst != nullptr && s.table[g] == kGroupZero) {
        for (; i < stop; ++i) StoreElement(s.dtype, dst, i, 0.0);
      }
      i = stop;
      continue;
    }
    const double delta = s.has_table ? s.steps[g] : s.base_step;
    if (classes) {
      cls.resize(stop - i);
      uint64_t pos = (i / s.geo.inner) % s.geo.length, within = i % s.geo.inner;
      for (uint64_t q = 0; q < stop - i; ++q) {
        cls[q] = s.class_map[pos];
        if (++within == s.geo.inner) {
          within = 0;
          if (++pos == s.geo.length) pos = 0;
        }
      }
    }
    if (!run(s, &in, idx, stop - i, dst, i, delta, cls.data())) {
      return Reject(SLICER_ERR_CORRUPT, "dense rANS payload");
    }
    idx += stop - i;
    i = stop;
  }
  // Every rANS byte and exactly the extra-bit area consumed, its padding zero (§14).
  const uint64_t used = (in.bit_pos + 7) / 8;
  if (in.r != in.end || used != in.bits_len ||
      ((in.bit_pos & 7) != 0 && (in.bits[in.bit_pos >> 3] >> (in.bit_pos & 7)) != 0)) {
    return Reject(SLICER_ERR_CORRUPT, "dense chunk length");
  }
  for (unsigned q = 0; q < k && c.coded > 0; ++q)
    if (in.x[q] != kRansL) return Reject(SLICER_ERR_CORRUPT, "dense rANS final state");
  return SLICER_OK;
}

// ---------------------------------------------------------------------------------------------
// Paired decoder (AVX2): chunks of four states decoded side by side, two per 8-lane vector
// (lanes 0-3: chunk a's states 0-3, lanes 4-7: chunk b's), two vectors interleaved (sets of four
// chunks; a pair where only two are left). Element i of a chunk uses state i mod 4, so one vector
// step decodes elements i … i+3 of both chunks in their sequential order; the 0, 1 or 2
// renormalisation bytes of the four lanes of one chunk are located by a prefix sum of the lanes'
// byte counts. The step computes exactly the scalar fast step's integers. Values: float32 tensors
// without a group table get the rounded Δ·value straight away (the scalar decoder's binary64
// product); otherwise ±(m + o/256) (the scalar formula with Δ = 1, which multiplies exactly) goes
// to a buffer per segment of coded elements, then × Δ_g of each element's group, rounded to the
// dtype. Extra bits are cut from a window per chunk at positions from a prefix sum of the lanes'
// bit counts; escaped symbols take the scalar step (DecodeRun). Where few elements carry extra
// bits (PreferDeferred: at most 40 % of the slots), the vector steps skip them instead and
// a second pass per chunk (DeferredExtras) reads them for the marked elements in element order:
// the steps then have no branch on the data, which at about 4 b/el mispredicted on half of
// them. Any failure re-decodes the chunks with DecodeChunk, so damaged streams keep their
// statuses and rejection names.

// Per stream, per class and slot: freq − 1 | (slot − cum) << 14 | min(symbol, 15) << 28, so one
// gather gives a lane's whole state update and, for the direct symbols 0 … 14 (bins 0 … 7, no
// extra bits), its value; 15 marks a symbol with extra bits or an escape (the lut tells which).
//
// Mode 2 with the extra bits inline (kCompact): the steps there need each lane's symbol from the
// lut anyway, so instead of the slot tables (64 KB per class: 8 classes fill half the core's L2)
// they read the lut (one byte per slot, 16 KB per class) and then, per class and lut symbol,
// syms: freq − 1 | cum << 14 | min(symbol, 15) << 28 (1 KB per class), and take slot − cum
// themselves. A lut escape (symbol ≥ 255) stops the steps before that step. (With the extra
// bits in a second pass the second lookup did not pay: 8 classes at 1.9 and 3.8 b/el, fastest
// calls 2.19 / 2.41 ms against 2.00 / 2.21 with the slot tables; at 7.8 b/el 3.05 against 3.71.)
//
// Mode 1 with the extra bits inline where every frequency is at most 2^11 (kNarrow: the rates
// where most codes carry extra bits, so every step needs the lanes' symbols): the slot entries
// are freq − 1 | (slot − cum) << 11 | symbol << 22 instead, so that the steps take the symbol
// from the entry they read anyway rather than from a second lookup in the lut.
struct PairTables {
  std::vector<uint32_t> slots;  // mode 1
  std::vector<uint32_t> syms;   // mode 2 with kCompact: per class (stride 256) and lut symbol
  bool narrow = false;          // slots holds kNarrow entries
};

constexpr uint32_t kCodeOther = 15;
constexpr size_t kCompactStride = 256;
constexpr uint32_t kNarrowFreqMax = 1u << 11;
constexpr unsigned kNarrowBits = 11;

// The share of slots (over all classes) owned by symbols ≥ 15: an element's chance to carry
// extra bits or to escape.
double OtherShare(const Stream& s) {
  uint64_t other = 0;
  for (unsigned c = 0; c < s.nclass; ++c) {
    const unsigned nsym = s.nclass > 1 ? s.class_nsym[c] : s.nsym;
    for (unsigned q = kCodeOther; q < nsym; ++q)
      other += s.nclass > 1 ? s.fc[c * kSymStride + q].freq : s.syms[q].freq;
  }
  return static_cast<double>(other) / (static_cast<double>(s.nclass) * kProbScale);
}

// Whether mode 1's inline steps may take kNarrow slot entries: every frequency ≤ 2^11 (and
// every symbol below 2^9, which kNumSymbols guarantees).
bool NarrowFits(const Stream& s) {
  static_assert(kNumSymbols <= (1u << (32 - 2 * kNarrowBits)), "symbol field of narrow entries");
  if (s.nclass > 1) return false;
  for (unsigned q = 0; q < s.nsym; ++q)
    if (s.syms[q].freq > kNarrowFreqMax) return false;
  return true;
}

// compact (mode 2 only): syms instead of slots; narrow (mode 1 only, NarrowFits): kNarrow slot
// entries.
void BuildPairTables(const Stream& s, bool compact, bool narrow, PairTables* t) {
  t->slots.clear();
  t->syms.clear();
  t->narrow = narrow;
  if (compact) {
    t->syms.assign(size_t{s.nclass} * kCompactStride, 0);
  } else {
    t->slots.assign(size_t{s.nclass} * kProbScale, 0);
  }
  for (unsigned c = 0; c < s.nclass; ++c) {
    const unsigned nsym = s.nclass > 1 ? s.class_nsym[c] : s.nsym;
    uint32_t* slots = compact ? nullptr : t->slots.data() + size_t{c} * kProbScale;
    for (unsigned q = 0; q < nsym; ++q) {
      const DSym& d = s.syms[q];
      const uint32_t f = s.nclass > 1 ? s.fc[c * kSymStride + q].freq : d.freq;
      const uint32_t start = s.nclass > 1 ? s.fc[c * kSymStride + q].cum : d.cum;
      const uint32_t code = std::min<uint32_t>(q, kCodeOther) << 28;
      if (compact) {
        if (q < kEscape) t->syms[c * kCompactStride + q] = (f - 1) | start << 14 | code;
      } else if (narrow) {
        for (uint32_t k = 0; k < f; ++k)
          slots[start + k] = (f - 1) | k << kNarrowBits | q << (2 * kNarrowBits);
      } else {
        for (uint32_t k = 0; k < f; ++k) slots[start + k] = (f - 1) | k << 14 | code;
      }
    }
  }
}

// Chunk-local element order of the coded elements: walks the dense runs of one chunk.
struct CodedWalker {
  const Stream* s;
  uint64_t i, stop_all;
  uint64_t run_stop;
  double delta = 0;
  CodedWalker(const Stream& st, uint64_t begin, uint64_t end)
      : s(&st), i(begin), stop_all(end), run_stop(begin) {}
  // Elements left in the current dense run, moving past finished runs and non-dense groups
  // (zero groups written to dst when dst != nullptr); 0 at the chunk's end.
  uint64_t Next(uint8_t* dst) {
    while (i == run_stop && i < stop_all) {
      const uint64_t g = s->layout.GroupOf(i);
      const uint64_t stop = std::min(stop_all, i + s->layout.RunLeft(i, s->n));
      run_stop = stop;
      if (!IsDenseGroup(*s, g)) {
        if (dst != nullptr && s->table[g] == kGroupZero) {
          for (; i < stop; ++i) StoreElement(s->dtype, dst, i, 0.0);
        }
        i = stop;
        continue;
      }
      delta = s->has_table ? s->steps[g] : s->base_step;
    }
    return run_stop - i;
  }
};

// The classes (§19.1) of elements [i, i + count).
void FillClasses(const Stream& s, uint64_t i, uint64_t count, uint8_t* out) {
  uint64_t pos = (i / s.geo.inner) % s.geo.length, within = i % s.geo.inner;
  if (s.geo.inner == 1) {
    for (uint64_t q = 0; q < count;) {
      const uint64_t len = std::min(count - q, s.geo.length - pos);
      std::memcpy(out + q, s.class_map.data() + pos, len);
      q += len;
      pos = 0;
    }
    return;
  }
  for (uint64_t q = 0; q < count; ++q) {
    out[q] = s.class_map[pos];
    if (++within == s.geo.inner) {
      within = 0;
      if (++pos == s.geo.length) pos = 0;
    }
  }
}

using ScaleFn = void (*)(uint8_t*, uint64_t, const double*, uint64_t, double);

template <int kDtype>
void StoreScaled(uint8_t* dst, uint64_t i, const double* t, uint64_t count, double delta) {
  for (uint64_t k = 0; k < count; ++k) StoreT<kDtype>(dst, i + k, t[k] * delta);
}

__attribute__((target("avx2"))) void StoreScaledF32Avx2(uint8_t* dst, uint64_t i, const double* t,
                                                        uint64_t count, double delta) {
  float* out = reinterpret_cast<float*>(dst) + i;
  const __m256d d = _mm256_set1_pd(delta);
  uint64_t k = 0;
  for (; k + 4 <= count; k += 4) {
    _mm_storeu_ps(out + k, _mm256_cvtpd_ps(_mm256_mul_pd(_mm256_loadu_pd(t + k), d)));
  }
  StoreScaled<SLICER_FLOAT32>(dst, i + k, t + k, count - k, delta);
}

ScaleFn PickScale(int dtype) {
  switch (dtype) {
    case SLICER_FLOAT64:
      return &StoreScaled<SLICER_FLOAT64>;
    case SLICER_FLOAT32:
      return &StoreScaledF32Avx2;
    case SLICER_FLOAT16:
      return &StoreScaled<SLICER_FLOAT16>;
    default:
      return &StoreScaled<SLICER_BFLOAT16>;
  }
}

// Extra bits of the elements whose symbols are q[0..3] (in lane order), overwriting their
// values t[0..3]. False when a read would leave the chunk's extra-bit area.
inline bool PairExtras(const Stream& s, ChunkIn* in, const uint32_t* q, double* t) {
  const uint64_t bit_limit = 8 * in->bits_len;
  for (unsigned l = 0; l < 4; ++l) {
    const DSym& d = s.syms[q[l]];
    if (d.nbits == 0) continue;
    const uint64_t bp = in->bit_pos;
    if (bp + d.nbits > bit_limit) return false;
    uint64_t word = 0;
    const uint64_t first = bp >> 3;
    if (first + 8 <= in->bits_room) {
      std::memcpy(&word, in->bits + first, 8);
    } else {
      for (uint64_t b = first; b < in->bits_room; ++b)
        word |= uint64_t{in->bits[b]} << (8 * (b - first));
    }
    const uint64_t extra = (word >> (bp & 7)) & d.mask;
    in->bit_pos = bp + d.nbits;
    const uint64_t m = d.base + extra;
    t[l] = ((static_cast<double>(static_cast<int64_t>(m)) + d.off) * 1.0) * d.sign;
  }
  return true;
}

// The extra bits (§11) of one chunk's four lanes (symbols q4, all below 255, in lane order)
// read at once: per lane the bit count of its bin, the lanes' positions by a prefix sum, each
// lane's bits out of one 64-bit window at the chunk's bit cursor (a word per lane when they span
// more than 57 bits). *v = ±(double(base + extra) + o2/256) for the lanes with extra bits (bins ≥
// 8 have m ≥ 8), *keep marks them. False when a read would leave the extra-bit area.
__attribute__((target("avx2"))) inline bool ChunkExtras(const Stream& s, ChunkIn* in, __m128i q4,
                                                        double off2, __m256d* v, __m128i* keep) {
  const __m128i b = _mm_srli_epi32(_mm_add_epi32(q4, _mm_set1_epi32(1)), 1);
  const __m128i big = _mm_cmpgt_epi32(b, _mm_set1_epi32(7));
  const __m128i nb = _mm_and_si128(_mm_srli_epi32(_mm_sub_epi32(b, _mm_set1_epi32(4)), 2), big);
  *keep = big;
  __m128i pre = _mm_add_epi32(nb, _mm_slli_si128(nb, 4));
  pre = _mm_add_epi32(pre, _mm_slli_si128(pre, 8));
  const uint64_t total = static_cast<uint32_t>(_mm_extract_epi32(pre, 3));
  const uint64_t bp = in->bit_pos;
  if (bp + total > 8 * in->bits_len) return false;
  if ((bp + total) / 8 + 8 > in->bits_room) {  // near the stream's end: byte by byte
    alignas(16) uint32_t q[4];
    alignas(32) double t[4] = {0, 0, 0, 0};
    _mm_store_si128(reinterpret_cast<__m128i*>(q), q4);
    if (!PairExtras(s, in, q, t)) return false;
    *v = _mm256_load_pd(t);
    return true;
  }
  const __m256i excl = _mm256_cvtepu32_epi64(_mm_sub_epi32(pre, nb));
  const __m256i nb64 = _mm256_cvtepu32_epi64(nb);
  const __m256i one = _mm256_set1_epi64x(1);
  __m256i word;
  if (total + (bp & 7) <= 64) {  // one window
    uint64_t w;
    std::memcpy(&w, in->bits + (bp >> 3), 8);
    word = _mm256_srlv_epi64(_mm256_set1_epi64x(static_cast<long long>(w >> (bp & 7))), excl);
  } else {
    const __m256i pos = _mm256_add_epi64(_mm256_set1_epi64x(static_cast<long long>(bp)), excl);
    word = _mm256_srlv_epi64(_mm256_i64gather_epi64(reinterpret_cast<const long long*>(in->bits),
                                                    _mm256_srli_epi64(pos, 3), 1),
                             _mm256_and_si256(pos, _mm256_set1_epi64x(7)));
  }
  const __m256i extra = _mm256_and_si256(word, _mm256_sub_epi64(_mm256_sllv_epi64(one, nb64), one));
  const __m256i top =
      _mm256_cvtepu32_epi64(_mm_add_epi32(_mm_and_si128(b, _mm_set1_epi32(3)), _mm_set1_epi32(4)));
  const __m256i m = _mm256_add_epi64(_mm256_sllv_epi64(top, nb64), extra);  // < 2^33
  const __m256i two52 = _mm256_set1_epi64x(0x4330000000000000LL);
  const __m256d md =
      _mm256_sub_pd(_mm256_castsi256_pd(_mm256_or_si256(m, two52)), _mm256_castsi256_pd(two52));
  const __m256i neg = _mm256_slli_epi64(_mm256_andnot_si256(_mm256_cvtepu32_epi64(q4), one),
                                        63);  // even symbols are negative
  *v = _mm256_xor_pd(_mm256_add_pd(md, _mm256_set1_pd(off2)), _mm256_castsi256_pd(neg));
  in->bit_pos = bp + total;
  return true;
}

// The extra bits of both chunks of a vector at once (lanes 0-3: chunk a, 4-7: chunk b; symbols
// sym, all below 255) while each chunk's bits of this step number at most 26: per lane the bit
// count of its bin, the positions by a prefix sum per chunk, the fields cut out of one 32-bit
// window per chunk. *m = the magnitudes (< 2^29) of the lanes with extra bits, *big marks them.
// False, with nothing consumed, when the step needs ChunkExtras (more bits, or the stream's end
// near).
constexpr uint64_t kVecBits = 26;

// ChunkIn::vec_end: bit_pos + kVecBits ≤ 8 · bits_len and (bit_pos >> 3) + 8 ≤ bits_room hold
// exactly for bit_pos < vec_end.
inline uint64_t VecExtrasEnd(const ChunkIn& c) {
  const uint64_t by_len = 8 * c.bits_len >= kVecBits ? 8 * c.bits_len - kVecBits + 1 : 0;
  const uint64_t by_room = c.bits_room >= 8 ? 8 * (c.bits_room - 7) : 0;
  return std::min(by_len, by_room);
}

__attribute__((target("avx2"))) inline bool VecExtras(ChunkIn* a, ChunkIn* b, __m256i sym,
                                                      __m256i* m, __m256i* big) {
  const __m256i bin = _mm256_srli_epi32(_mm256_add_epi32(sym, _mm256_set1_epi32(1)), 1);
  *big = _mm256_cmpgt_epi32(bin, _mm256_set1_epi32(7));
  const __m256i nb =
      _mm256_and_si256(_mm256_srli_epi32(_mm256_sub_epi32(bin, _mm256_set1_epi32(4)), 2), *big);
  __m256i pre = _mm256_add_epi32(nb, _mm256_slli_si256(nb, 4));
  pre = _mm256_add_epi32(pre, _mm256_slli_si256(pre, 8));
  const uint64_t ta = static_cast<uint32_t>(_mm256_extract_epi32(pre, 3));
  const uint64_t tb = static_cast<uint32_t>(_mm256_extract_epi32(pre, 7));
  const uint64_t pa = a->bit_pos, pb = b->bit_pos;
  if (ta > kVecBits || tb > kVecBits || pa >= a->vec_end || pb >= b->vec_end) return false;
  uint64_t wa, wb;
  std::memcpy(&wa, a->bits + (pa >> 3), 8);
  std::memcpy(&wb, b->bits + (pb >> 3), 8);
  const __m256i window =
      _mm256_setr_m128i(_mm_set1_epi32(static_cast<int>(static_cast<uint32_t>(wa >> (pa & 7)))),
                        _mm_set1_epi32(static_cast<int>(static_cast<uint32_t>(wb >> (pb & 7)))));
  const __m256i one = _mm256_set1_epi32(1);
  const __m256i extra = _mm256_and_si256(_mm256_srlv_epi32(window, _mm256_sub_epi32(pre, nb)),
                                         _mm256_sub_epi32(_mm256_sllv_epi32(one, nb), one));
  const __m256i top =
      _mm256_add_epi32(_mm256_and_si256(bin, _mm256_set1_epi32(3)), _mm256_set1_epi32(4));
  *m = _mm256_add_epi32(_mm256_sllv_epi32(top, nb), extra);
  a->bit_pos = pa + ta;
  b->bit_pos = pb + tb;
  return true;
}

// Where SetSteps puts the values of chunk h: ±(m + o/256) as binary64 into t[h] + 4·step (for
// a later × Δ_g), or, kDirect (float32, one Δ for every element), rounded Δ·value straight into
// the float32 output at f[h] + 4·step (for the direct symbols out of a 16-entry table of the
// same binary64 product rounded to binary32).
struct SetOut {
  double* t[4];
  float* f[4];
  // kDeferred: per chunk the lanes' table index (slot | class << 14) at slot[h] + 4·step, per
  // vector the mask of its lanes whose symbol is not direct (code 15) at spec[p] + step.
  uint32_t* slot[4];
  uint8_t* spec[2];
  double delta;
  // The direct symbols' values: kDirect the rounded Δ·value (binary32), else 256·value (int32
  // bits: ±(256·m + o) is an integer below 2^11).
  alignas(32) float ftab[16];
  // kLow (§13.6): per chunk the coded index of the element of step 0, lane 0 (its low bits at
  // bit elem·k of the chunk's bit area, in[h].bits).
  uint64_t elem[4];
};

// kLow (§13.6): the low bits of elements e … e + 3 of chunk a (lanes 0-3) and b (lanes 4-7), k ≤
// 14 bits each, out of one 64-bit word per chunk (bit (e·k) mod 8 + 4k ≤ 63). The caller keeps
// every word inside the stream (LowSteps).
constexpr unsigned kLowSimdMax = 14;
// kDirect with a plane (float32 products, SetSteps) up to this width: |q| < 8·2^k ≤ 2^16.
constexpr unsigned kLowDirectMax = 13;

__attribute__((target("avx2"))) inline __m256i PlaneLanes(const ChunkIn& a, const ChunkIn& b,
                                                          uint64_t ea, uint64_t eb, unsigned k,
                                                          __m256i shifts, __m256i mask) {
  const uint64_t pa = ea * k, pb = eb * k;
  uint64_t wa, wb;
  std::memcpy(&wa, a.bits + (pa >> 3), 8);
  std::memcpy(&wb, b.bits + (pb >> 3), 8);
  const __m256i la =
      _mm256_srlv_epi64(_mm256_set1_epi64x(static_cast<long long>(wa >> (pa & 7))), shifts);
  const __m256i lb =
      _mm256_srlv_epi64(_mm256_set1_epi64x(static_cast<long long>(wb >> (pb & 7))), shifts);
  const __m256i even = _mm256_setr_epi32(0, 2, 4, 6, 0, 2, 4, 6);
  return _mm256_and_si256(
      _mm256_setr_m128i(_mm256_castsi256_si128(_mm256_permutevar8x32_epi32(la, even)),
                        _mm256_castsi256_si128(_mm256_permutevar8x32_epi32(lb, even))),
      mask);
}

// kLow: the steps from coded element e on whose plane words (PlaneLanes) stay inside the stream.
inline uint64_t LowSteps(const ChunkIn& c, unsigned k, uint64_t e) {
  if (c.bits_room < 8) return 0;
  const uint64_t last = (8 * (c.bits_room - 8) + 7) / k;  // the largest e with e·k/8 ≤ room − 8
  return last >= e ? (last - e) / 4 + 1 : 0;
}

// Up to `steps` vector steps of the 2·kP chunks of a set (vector p: chunks 2p and 2p + 1), the
// classes of mode 2 from cl[h] + 4·step. Stops before a step in which a lane meets an escaped
// symbol (*escape = true: states, cursors and extra-bit positions as before that step). Returns
// the steps done, or -1 on an extra-bit read outside a chunk's area. The caller guarantees
// 8·steps + 8 rANS bytes in each chunk.
//
// kDeferred: the steps decode the states and the direct values only; the lanes with code 15 get
// a placeholder value, their table index and mask go to out.slot / out.spec, and DeferredExtras
// later resolves their symbols and reads their extra bits in element order (no branch on the
// data here, no escape: the slot table has an entry for every symbol).
//
// kNarrow (mode 1, extra bits inline): tb.slots holds kNarrow entries.
//
// kLow (mode 1 with a low-bit plane, §13.6; kDeferred): the direct symbols are h = ±(0 … 7), and
// every lane's value comes from q = h·2^k + l with l out of the plane: ±(256·|q| + o) as int32
// (|q| < 2^18), then × 2^-8 exactly, as the scalar formula.
template <bool kClasses, unsigned kP, bool kDirect, bool kDeferred, bool kNarrow, bool kLow>
__attribute__((target("avx2"))) int64_t SetSteps(const Stream& s, const PairTables& tb, ChunkIn* in,
                                                 uint8_t* const* cl, const SetOut& out,
                                                 uint64_t steps, bool* escape) {
  constexpr bool kCompact = kClasses && !kDeferred;
  static_assert(!kNarrow || (!kClasses && !kDeferred), "narrow entries: mode 1, inline");
  static_assert(!kLow || (!kClasses && kDeferred && !kNarrow), "low-bit plane: mode 1, deferred");
  const unsigned low_k = s.low_bits;
  const __m256i low_shifts = _mm256_setr_epi64x(0, low_k, 2 * low_k, 3 * low_k);
  const __m256i low_mask = _mm256_set1_epi32(static_cast<int>((1u << low_k) - 1));
  const __m128i low_count = _mm_cvtsi32_si128(static_cast<int>(low_k));
  const __m256i o1_int = _mm256_set1_epi32(s.o1), o2_int = _mm256_set1_epi32(s.o2);
  const __m256 inv256f = _mm256_set1_ps(0x1p-8f);
  const __m256 delta_f = _mm256_set1_ps(static_cast<float>(out.delta));  // kDirect: exact
  const __m256i slot_mask = _mm256_set1_epi32(kProbScale - 1);
  const __m256i low14 = _mm256_set1_epi32(0x3FFF);
  const __m256i one = _mm256_set1_epi32(1);
  const __m256i l1 = _mm256_set1_epi32(kRansL), l2 = _mm256_set1_epi32(kRansL >> 8);
  const __m256i sixteen = _mm256_set1_epi32(16);
  const __m256i other = _mm256_set1_epi32(kCodeOther);
  // Byte indices (o + 1, o, none, none): r[o] << 8 | r[o + 1] out of 16 bytes read at r.
  const __m256i pick = _mm256_set1_epi32(static_cast<int>(0x80800001u));
  const __m256d o2 = _mm256_set1_pd(s.o2 / 256.0), inv256 = _mm256_set1_pd(0x1p-8);
  const double off2 = s.o2 / 256.0;
  const __m256d delta = _mm256_set1_pd(out.delta);
  const __m256 ftab_lo = _mm256_load_ps(out.ftab), ftab_hi = _mm256_load_ps(out.ftab + 8);
  __m256i x[kP];
  const uint8_t* r[2 * kP];
  for (unsigned p = 0; p < kP; ++p) {
    const ChunkIn& a = in[2 * p];
    const ChunkIn& b = in[2 * p + 1];
    x[p] = _mm256_setr_epi32(a.x[0], a.x[1], a.x[2], a.x[3], b.x[0], b.x[1], b.x[2], b.x[3]);
    r[2 * p] = a.r;
    r[2 * p + 1] = b.r;
  }
  uint64_t st = 0;
  for (; st < steps; ++st) {
    __m256i idx[kP], code[kP], x_old[kP], ent[kP], lutq[kP], nsym[kP];
    const uint8_t* r_old[2 * kP];
    int special = 0, lanes[kP];
    for (unsigned p = 0; p < kP; ++p) {
      idx[p] = _mm256_and_si256(x[p], slot_mask);
      if constexpr (kClasses) {
        uint32_t c4a, c4b;
        std::memcpy(&c4a, cl[2 * p] + 4 * st, 4);
        std::memcpy(&c4b, cl[2 * p + 1] + 4 * st, 4);
        const __m256i cv = _mm256_cvtepu8_epi32(
            _mm_cvtsi64_si128(static_cast<long long>(uint64_t{c4a} | uint64_t{c4b} << 32)));
        const __m256i slot = idx[p];
        idx[p] = _mm256_add_epi32(idx[p], _mm256_slli_epi32(cv, kProbBits));
        if constexpr (!kCompact) {
          ent[p] = Lookup8(tb.slots.data(), idx[p]);
          continue;
        }
        lutq[p] = Lookup8(s.lut.data(), idx[p]);  // kCompact: the lut, then the class's entry
        const __m256i e =
            Lookup8(tb.syms.data(), _mm256_or_si256(_mm256_slli_epi32(cv, 8), lutq[p]));
        // slot − cum in the bits of the mode-1 entry's offset field
        ent[p] = _mm256_or_si256(
            _mm256_andnot_si256(_mm256_slli_epi32(low14, 14), e),
            _mm256_slli_epi32(
                _mm256_sub_epi32(slot, _mm256_and_si256(_mm256_srli_epi32(e, 14), low14)), 14));
      } else {
        ent[p] = Lookup8(tb.slots.data(), idx[p]);
      }
    }
    if constexpr (kCompact) {  // a lut escape: stop before this step (the scalar step takes it)
      int esc = 0;
      for (unsigned p = 0; p < kP; ++p)
        esc |= _mm256_movemask_ps(
            _mm256_castsi256_ps(_mm256_cmpeq_epi32(lutq[p], _mm256_set1_epi32(kEscape))));
      if (esc != 0) {
        *escape = true;
        break;
      }
    }
    for (unsigned p = 0; p < kP; ++p) {
      const __m256i e = ent[p];
      __m256i freq, bias;
      if constexpr (kNarrow) {
        const __m256i low11 = _mm256_set1_epi32((1 << kNarrowBits) - 1);
        freq = _mm256_add_epi32(_mm256_and_si256(e, low11), one);
        bias = _mm256_and_si256(_mm256_srli_epi32(e, kNarrowBits), low11);
        nsym[p] = _mm256_srli_epi32(e, 2 * kNarrowBits);
        code[p] = _mm256_min_epu32(nsym[p], other);
      } else {
        freq = _mm256_add_epi32(_mm256_and_si256(e, low14), one);
        bias = _mm256_and_si256(_mm256_srli_epi32(e, 14), low14);
        code[p] = _mm256_srli_epi32(e, 28);
      }
      lanes[p] = _mm256_movemask_ps(_mm256_castsi256_ps(_mm256_cmpeq_epi32(code[p], other)));
      special |= lanes[p];
      const __m256i v =
          _mm256_add_epi32(_mm256_mullo_epi32(freq, _mm256_srli_epi32(x[p], kProbBits)), bias);
      const __m256i need =
          _mm256_sub_epi32(_mm256_setzero_si256(),
                           _mm256_add_epi32(_mm256_cmpgt_epi32(l1, v), _mm256_cmpgt_epi32(l2, v)));
      __m256i pre = _mm256_add_epi32(need, _mm256_slli_si256(need, 4));
      pre = _mm256_add_epi32(pre, _mm256_slli_si256(pre, 8));  // inclusive prefix per chunk
      const __m256i excl = _mm256_sub_epi32(pre, need);
      const __m256i bytes = _mm256_loadu2_m128i(reinterpret_cast<const __m128i*>(r[2 * p + 1]),
                                                reinterpret_cast<const __m128i*>(r[2 * p]));
      const __m256i window = _mm256_shuffle_epi8(
          bytes, _mm256_add_epi32(_mm256_add_epi32(excl, _mm256_slli_epi32(excl, 8)), pick));
      const __m256i sh = _mm256_slli_epi32(need, 3);
      x_old[p] = x[p];
      x[p] = _mm256_or_si256(_mm256_sllv_epi32(v, sh),
                             _mm256_srlv_epi32(window, _mm256_sub_epi32(sixteen, sh)));
      r_old[2 * p] = r[2 * p];
      r_old[2 * p + 1] = r[2 * p + 1];
      r[2 * p] += _mm256_extract_epi32(pre, 3);
      r[2 * p + 1] += _mm256_extract_epi32(pre, 7);
    }
    __m256d val[2 * kP];
    __m256 fv[kP];
    for (unsigned p = 0; p < kP; ++p) {
      if constexpr (kLow) {  // q = h·2^k + l; code 15 lanes get a placeholder (DeferredExtras)
        const __m256i low = PlaneLanes(in[2 * p], in[2 * p + 1], out.elem[2 * p] + 4 * st,
                                       out.elem[2 * p + 1] + 4 * st, low_k, low_shifts, low_mask);
        const __m256i hb = _mm256_srli_epi32(_mm256_add_epi32(code[p], one), 1);
        const __m256i neg = _mm256_sub_epi32(_mm256_and_si256(code[p], one), one);  // even: −1
        const __m256i h = _mm256_sub_epi32(_mm256_xor_si256(hb, neg), neg);
        const __m256i q = _mm256_add_epi32(_mm256_sll_epi32(h, low_count), low);
        const __m256i m = _mm256_abs_epi32(q);
        const __m256i off = _mm256_blendv_epi8(o2_int, o1_int, _mm256_cmpeq_epi32(m, one));
        // ±(256·m + o), 0 for q = 0 (sign_epi32 zeroes it)
        const __m256i v8 = _mm256_sign_epi32(_mm256_add_epi32(_mm256_slli_epi32(m, 8), off), q);
        if constexpr (kDirect) {
          // ±(m + o/256) has at most 24 bits (m < 2^16: k ≤ kLowDirectMax, |h| ≤ 7) and Δ is
          // the binary32 step: their product is exact in binary64, so the scalar decoder's
          // binary64 product rounded to binary32 is the binary32 product (one rounding of the
          // same value).
          fv[p] = _mm256_mul_ps(_mm256_mul_ps(_mm256_cvtepi32_ps(v8), inv256f), delta_f);
        } else {
          val[2 * p] = _mm256_mul_pd(_mm256_cvtepi32_pd(_mm256_castsi256_si128(v8)), inv256);
          val[2 * p + 1] =
              _mm256_mul_pd(_mm256_cvtepi32_pd(_mm256_extracti128_si256(v8, 1)), inv256);
        }
      } else if constexpr (kDirect) {
        const __m256 lo = _mm256_permutevar8x32_ps(ftab_lo, code[p]);
        const __m256 hi = _mm256_permutevar8x32_ps(ftab_hi, code[p]);
        fv[p] = _mm256_blendv_ps(lo, hi, _mm256_castsi256_ps(_mm256_slli_epi32(code[p], 28)));
      } else {  // 256·value as int32 from the table, then exactly × 2^-8 in binary64
        const __m256 lo = _mm256_permutevar8x32_ps(ftab_lo, code[p]);
        const __m256 hi = _mm256_permutevar8x32_ps(ftab_hi, code[p]);
        const __m256i v8 = _mm256_castps_si256(
            _mm256_blendv_ps(lo, hi, _mm256_castsi256_ps(_mm256_slli_epi32(code[p], 28))));
        val[2 * p] = _mm256_mul_pd(_mm256_cvtepi32_pd(_mm256_castsi256_si128(v8)), inv256);
        val[2 * p + 1] = _mm256_mul_pd(_mm256_cvtepi32_pd(_mm256_extracti128_si256(v8, 1)), inv256);
      }
    }
    if constexpr (kDeferred) {
      for (unsigned p = 0; p < kP; ++p) {
        out.spec[p][st] = static_cast<uint8_t>(lanes[p]);
        _mm_storeu_si128(reinterpret_cast<__m128i*>(out.slot[2 * p] + 4 * st),
                         _mm256_castsi256_si128(idx[p]));
        _mm_storeu_si128(reinterpret_cast<__m128i*>(out.slot[2 * p + 1] + 4 * st),
                         _mm256_extracti128_si256(idx[p], 1));
      }
    } else if (__builtin_expect(special != 0, 0)) {  // extra bits or an escape somewhere
      __m256i sym[kP];
      int escaped = 0;
      for (unsigned p = 0; p < kP; ++p) {
        if (lanes[p] == 0) continue;  // no lane of this vector needs the lut
        if constexpr (kCompact) {
          sym[p] = lutq[p];
        } else if constexpr (kNarrow) {
          sym[p] = nsym[p];
        } else {
          sym[p] = Lookup8(s.lut.data(), idx[p]);
        }
        // kEscape from the lut; kNarrow: the symbols it stands for
        escaped |= _mm256_movemask_ps(
            _mm256_castsi256_ps(_mm256_cmpgt_epi32(sym[p], _mm256_set1_epi32(kEscape - 1))));
      }
      if (escaped != 0) {
        for (unsigned p = 0; p < kP; ++p) x[p] = x_old[p];
        for (unsigned h = 0; h < 2 * kP; ++h) r[h] = r_old[h];
        *escape = true;
        break;
      }
      for (unsigned p = 0; p < kP; ++p) {
        if (lanes[p] == 0) continue;
        __m256i mv, big;
        if (VecExtras(&in[2 * p], &in[2 * p + 1], sym[p], &mv, &big)) {
          // ±(double(m) + o2/256) (m ≥ 8), even symbols negative: the scalar value.
          const __m256d lo = _mm256_add_pd(_mm256_cvtepi32_pd(_mm256_castsi256_si128(mv)), o2);
          const __m256d hi = _mm256_add_pd(_mm256_cvtepi32_pd(_mm256_extracti128_si256(mv, 1)), o2);
          const __m256i neg = _mm256_slli_epi32(_mm256_andnot_si256(sym[p], one), 31);
          if constexpr (kDirect) {  // rounding commutes with the sign: flip after it
            const __m256 f = _mm256_setr_m128(_mm256_cvtpd_ps(_mm256_mul_pd(lo, delta)),
                                              _mm256_cvtpd_ps(_mm256_mul_pd(hi, delta)));
            fv[p] = _mm256_blendv_ps(fv[p], _mm256_xor_ps(f, _mm256_castsi256_ps(neg)),
                                     _mm256_castsi256_ps(big));
          } else {
            const __m256i neg_lo = _mm256_cvtepi32_epi64(_mm256_castsi256_si128(neg));
            const __m256i neg_hi = _mm256_cvtepi32_epi64(_mm256_extracti128_si256(neg, 1));
            const __m256i big_lo = _mm256_cvtepi32_epi64(_mm256_castsi256_si128(big));
            const __m256i big_hi = _mm256_cvtepi32_epi64(_mm256_extracti128_si256(big, 1));
            // neg lanes hold 0x80000000 sign-extended: bit 63 set, low bits cleared below
            const __m256d sign = _mm256_set1_pd(-0.0);
            val[2 * p] = _mm256_blendv_pd(
                val[2 * p], _mm256_xor_pd(lo, _mm256_and_pd(_mm256_castsi256_pd(neg_lo), sign)),
                _mm256_castsi256_pd(big_lo));
            val[2 * p + 1] = _mm256_blendv_pd(
                val[2 * p + 1], _mm256_xor_pd(hi, _mm256_and_pd(_mm256_castsi256_pd(neg_hi), sign)),
                _mm256_castsi256_pd(big_hi));
          }
          continue;
        }
        for (unsigned half = 0; half < 2; ++half) {
          if (((lanes[p] >> (4 * half)) & 0x0F) == 0) continue;
          const unsigned h = 2 * p + half;
          const __m128i q4 =
              half == 0 ? _mm256_castsi256_si128(sym[p]) : _mm256_extracti128_si256(sym[p], 1);
          __m256d v;
          __m128i keep;
          if (!ChunkExtras(s, &in[h], q4, off2, &v, &keep)) return -1;
          if constexpr (kDirect) {
            const __m128 f = _mm256_cvtpd_ps(_mm256_mul_pd(v, delta));
            const __m256 f8 = half == 0 ? _mm256_castps128_ps256(f)
                                        : _mm256_insertf128_ps(_mm256_setzero_ps(), f, 1);
            const __m256i k8 = half == 0 ? _mm256_castsi128_si256(keep)
                                         : _mm256_inserti128_si256(_mm256_setzero_si256(), keep, 1);
            const __m256i k8m =
                half == 0 ? _mm256_blend_epi32(k8, _mm256_setzero_si256(), 0xF0) : k8;
            fv[p] = _mm256_blendv_ps(fv[p], f8, _mm256_castsi256_ps(k8m));
          } else {
            val[h] = _mm256_blendv_pd(val[h], v, _mm256_castsi256_pd(_mm256_cvtepi32_epi64(keep)));
          }
        }
      }
    }
    for (unsigned p = 0; p < kP; ++p) {
      if constexpr (kDirect) {
        _mm_storeu_ps(out.f[2 * p] + 4 * st, _mm256_castps256_ps128(fv[p]));
        _mm_storeu_ps(out.f[2 * p + 1] + 4 * st, _mm256_extractf128_ps(fv[p], 1));
      } else {
        _mm256_storeu_pd(out.t[2 * p] + 4 * st, val[2 * p]);
        _mm256_storeu_pd(out.t[2 * p + 1] + 4 * st, val[2 * p + 1]);
      }
    }
  }
  for (unsigned p = 0; p < kP; ++p) {
    alignas(32) uint32_t xs[8];
    _mm256_store_si256(reinterpret_cast<__m256i*>(xs), x[p]);
    for (unsigned l = 0; l < 4; ++l) {
      in[2 * p].x[l] = xs[l];
      in[2 * p + 1].x[l] = xs[4 + l];
    }
  }
  for (unsigned h = 0; h < 2 * kP; ++h) in[h].r = r[h];
  return static_cast<int64_t>(st);
}

// kDeferred's second pass for chunk h of a set (lanes `half` of vector spec): the elements
// [0, count) of the segment whose mask bit is set, in element order: the symbol from the lut
// (escaped symbols from the cumulative frequencies), its extra bits at the chunk's bit cursor,
// the value by the scalar step's formula into f (kDirect: rounded Δ·value, delta = Δ) or t
// (±(m + o/256), delta = 1).
// False where the scalar decoder would fail (a read outside the extra-bit area, a magnitude
// above 2^53); the caller then re-decodes the set with it.
// kLow (§13.6): the symbols are h's; element e's low bits from the plane at coded index
// elem0 + e, the value by the scalar formula (LowValue).
template <bool kClasses, bool kDirect, bool kLow>
__attribute__((target("avx2,bmi2"))) bool DeferredExtras(const Stream& s, ChunkIn* in,
                                                         const uint8_t* spec, unsigned half,
                                                         const uint32_t* slot, uint64_t count,
                                                         double delta, float* f, double* t,
                                                         uint64_t elem0) {
  const uint64_t bit_limit = 8 * in->bits_len;
  uint64_t bit_pos = in->bit_pos;
  const uint64_t steps = count / 4;
  const uint64_t nib = half == 0 ? 0x0F0F0F0F0F0F0F0FULL : 0xF0F0F0F0F0F0F0F0ULL;
  for (uint64_t st0 = 0; st0 < steps; st0 += 8) {
    uint64_t bytes = 0;
    std::memcpy(&bytes, spec + st0, std::min<uint64_t>(8, steps - st0));
    uint64_t mask = _pext_u64(bytes, nib);  // bit 4·step + lane
    while (mask != 0) {
      const uint64_t e = 4 * st0 + static_cast<uint64_t>(__builtin_ctzll(mask));
      mask &= mask - 1;
      const uint32_t idx = slot[e];
      unsigned q = s.lut[idx];
      if (q == kEscape) {
        const unsigned c = kClasses ? idx >> kProbBits : 0;
        const uint32_t sl = idx & (kProbScale - 1);
        q = kClasses ? SlotSymbol(s.cum.data() + c * kCumStride, s.class_nsym[c], sl)
                     : SlotSymbol(s.cum.data(), s.nsym, sl);
      }
      const DSym& d = s.syms[q];
      if (bit_pos + d.nbits > bit_limit) return false;
      const uint64_t first = bit_pos >> 3;
      uint64_t word = 0;
      if (first + 8 <= in->bits_room) {
        std::memcpy(&word, in->bits + first, 8);
      } else {
        for (uint64_t b = first; b < in->bits_room; ++b)
          word |= uint64_t{in->bits[b]} << (8 * (b - first));
      }
      const uint64_t m = d.base + ((word >> (bit_pos & 7)) & d.mask);
      bit_pos += d.nbits;
      if (m > kMaxMag) return false;
      if constexpr (kLow) {
        double v;
        if (!LowValue(m, d.sign < 0, PlaneLow(*in, s.low_bits, elem0 + e), s.low_bits, s.low_offs,
                      delta, &v))
          return false;
        if constexpr (kDirect) {
          f[e] = static_cast<float>(v);
        } else {
          t[e] = v;
        }
        continue;
      }
      const double v = (static_cast<double>(static_cast<int64_t>(m)) + d.off) * delta;
      if constexpr (kDirect) {
        f[e] = static_cast<float>(v * d.sign);
      } else {
        t[e] = v * d.sign;
      }
    }
  }
  in->bit_pos = bit_pos;
  return true;
}

// Whether the second-pass variant pays for this stream: the share of slots whose symbol is not
// direct (code 15), the chance that an element needs its extra bits, is at most this; at most
// kDeferredShareNarrow where the inline steps would take narrow entries (no lut lookup: they beat
// the second pass from ≈ 25 % on, bench/RESULTS.md §9.18).
constexpr double kDeferredShare = 0.4;
constexpr double kDeferredShareNarrow = 0.25;

bool PreferDeferred(const Stream& s, bool narrow) {
  return OtherShare(s) <= (narrow ? kDeferredShareNarrow : kDeferredShare);
}

// Whether chunks j … j + n − 1 can take the paired decoder (four states each).
bool Pairable(const Stream& s, uint64_t j, unsigned n) {
  if (j + n > s.chunks.size()) return false;
  for (unsigned h = 0; h < n; ++h)
    if (StatesFor(s.chunks[j + h].coded) != 4) return false;
  return true;
}

// Decodes chunks j … j + 2·kP − 1 (Pairable) into dst (when not nullptr). kDirect: float32 into
// dst, no group table, one group (every element coded with the base step). kLow: mode 1 with a
// low-bit plane of at most kLowSimdMax bits (§13.6), kDeferred.
template <bool kClasses, unsigned kP, bool kDirect, bool kDeferred, bool kNarrow, bool kLow>
slicer_status DecodeSet(const Stream& s, const PairTables& tb, const uint8_t* data, size_t size,
                        uint64_t j, uint8_t* dst) {
  constexpr unsigned kN = 2 * kP;
  auto sequential = [&]() {  // the scalar decoder's statuses and rejection names
    for (unsigned h = 0; h < kN; ++h) {
      const slicer_status st = DecodeChunk(s, data, size, j + h, dst);
      if (st != SLICER_OK) return st;
    }
    return SLICER_OK;
  };
  const uint64_t chunk = uint64_t{1} << s.chunk_log2;
  constexpr uint64_t kSeg = 1024;
  std::vector<double> tbuf(kDirect ? 0 : kN * kSeg);
  std::vector<uint8_t> cbuf(kClasses ? kN * kSeg : 0);
  std::vector<uint32_t> sbuf(kDeferred ? kN * kSeg : 0);
  std::vector<uint8_t> mbuf(kDeferred ? kP * kSeg / 4 : 0);
  ChunkIn in[kN];
  std::vector<CodedWalker> out;
  uint64_t coded[kN], done[kN], cnt[kN];
  uint8_t* cl[kN];
  SetOut so{};
  so.delta = s.base_step;
  for (unsigned c = 0; c < kCodeOther && c < s.syms.size(); ++c) {
    const DSym& d = s.syms[c];
    const double t = ((static_cast<double>(static_cast<int64_t>(d.base)) + d.off) * 1.0) * d.sign;
    if (kDirect) {
      so.ftab[c] = static_cast<float>(t * s.base_step);
    } else {
      const int32_t scaled = static_cast<int32_t>(t * 256.0);  // exact: t = ±(m + o/256)
      std::memcpy(&so.ftab[c], &scaled, 4);
    }
  }
  for (unsigned h = 0; h < kN; ++h) {
    const Stream::Chunk& c = s.chunks[j + h];
    const uint8_t* r = data + c.offset;
    in[h] = ChunkIn{{0, 0, 0, 0},   r + 16,     r + c.rans_len,
                    r + c.rans_len, c.bits_len, size - (c.offset + c.rans_len)};
    in[h].vec_end = VecExtrasEnd(in[h]);
    in[h].bit_pos = c.coded * s.low_bits;  // §13.6: the extra bits follow the plane
    for (unsigned q = 0; q < 4; ++q) {
      in[h].x[q] = uint32_t{r[4 * q]} | uint32_t{r[4 * q + 1]} << 8 | uint32_t{r[4 * q + 2]} << 16 |
                   uint32_t{r[4 * q + 3]} << 24;
      if (in[h].x[q] < kRansL || in[h].x[q] >= (kRansL << 8)) return sequential();
    }
    coded[h] = c.coded;
    done[h] = 0;
    out.emplace_back(s, (j + h) * chunk, std::min(s.n, (j + h + 1) * chunk));
    if (!kDirect) so.t[h] = tbuf.data() + h * kSeg;
    if (kDeferred) so.slot[h] = sbuf.data() + h * kSeg;
    cl[h] = kClasses ? cbuf.data() + h * kSeg : nullptr;
  }
  for (unsigned p = 0; p < kP && kDeferred; ++p) so.spec[p] = mbuf.data() + p * kSeg / 4;
  std::vector<CodedWalker> at(out);
  // The scalar steps: into the value buffer (Δ = 1), or kDirect into dst with Δ.
  const RunFn run = kDirect ? &DecodeRun<SLICER_FLOAT32, 4, true, kClasses, kLow>
                            : &DecodeRun<SLICER_FLOAT64, 4, true, kClasses, kLow>;
  auto scalar = [&](unsigned h, uint64_t k, uint64_t count) {
    if constexpr (kDirect) {
      return run(s, &in[h], done[h] + k, count, dst, (j + h) * chunk + done[h] + k, s.base_step,
                 kClasses ? cl[h] + k : nullptr);
    } else {
      return run(s, &in[h], done[h] + k, count, reinterpret_cast<uint8_t*>(so.t[h]), k, 1.0,
                 kClasses ? cl[h] + k : nullptr);
    }
  };
  const ScaleFn scale = PickScale(s.dtype);
  for (;;) {
    bool more = false, lockstep = true;
    for (unsigned h = 0; h < kN; ++h) {
      more |= done[h] < coded[h];
      lockstep &= done[h] == done[0];
      cnt[h] = std::min(kSeg, coded[h] - done[h]);
      if constexpr (kClasses) {
        for (uint64_t q = 0; q < cnt[h];) {
          const uint64_t take = std::min(cnt[h] - q, at[h].Next(nullptr));
          FillClasses(s, at[h].i, take, cl[h] + q);
          at[h].i += take;
          q += take;
        }
      }
    }
    if (!more) break;
    uint64_t k = 0;
    if (lockstep) {
      uint64_t lock = cnt[0];
      for (unsigned h = 1; h < kN; ++h) lock = std::min(lock, cnt[h]);
      lock &= ~uint64_t{3};
      // kDeferred: the second pass over the steps done since `passed`, before any scalar step
      // reads the chunks' extra bits (an escape's, the segment's tail).
      uint64_t passed = 0;
      auto second_pass = [&]() {
        for (unsigned h = 0; h < kN; ++h) {
          float* f = kDirect ? reinterpret_cast<float*>(dst) + (j + h) * chunk + done[h] + passed
                             : nullptr;
          if (!DeferredExtras<kClasses, kDirect, kLow>(
                  s, &in[h], so.spec[h / 2] + passed / 4, h % 2, so.slot[h] + passed, k - passed,
                  kDirect ? so.delta : 1.0, f, kDirect ? nullptr : so.t[h] + passed,
                  done[h] + passed))
            return false;
        }
        passed = k;
        return true;
      };
      while (k < lock) {
        uint64_t safe = (lock - k) / 4;
        for (unsigned h = 0; h < kN; ++h) {
          // Up to the stream's end, not the chunk's: a valid chunk never reads past its own
          // bytes (so the steps run to the chunk's last elements), and a damaged one that does
          // fails the final checks and is re-decoded by the scalar decoder.
          const ptrdiff_t room = (in[h].bits + in[h].bits_room) - in[h].r;
          safe = std::min<uint64_t>(safe, room < 16 ? 0 : static_cast<uint64_t>(room - 8) / 8);
          if constexpr (kLow) safe = std::min(safe, LowSteps(in[h], s.low_bits, done[h] + k));
        }
        if (safe == 0) break;
        bool escape = false;
        uint8_t* clk[kN];
        SetOut sk = so;
        for (unsigned h = 0; h < kN; ++h) {
          clk[h] = kClasses ? cl[h] + k : nullptr;
          if constexpr (kDirect) {
            sk.f[h] = reinterpret_cast<float*>(dst) + (j + h) * chunk + done[h] + k;
          } else {
            sk.t[h] = so.t[h] + k;
          }
          if constexpr (kDeferred) sk.slot[h] = so.slot[h] + k;
          sk.elem[h] = done[h] + k;
        }
        for (unsigned p = 0; p < kP && kDeferred; ++p) sk.spec[p] = so.spec[p] + k / 4;
        const int64_t did = SetSteps<kClasses, kP, kDirect, kDeferred, kNarrow, kLow>(
            s, tb, in, clk, sk, safe, &escape);
        if (did < 0) return sequential();
        k += 4 * static_cast<uint64_t>(did);
        if (escape) {  // this step on the scalar path
          if (kDeferred && !second_pass()) return sequential();
          for (unsigned h = 0; h < kN; ++h)
            if (!scalar(h, k, 4)) return sequential();
          k += 4;
          passed = k;
        }
      }
      if (kDeferred && !second_pass()) return sequential();
    }
    for (unsigned h = 0; h < kN; ++h) {
      if (k < cnt[h] && !scalar(h, k, cnt[h] - k)) return sequential();
      if constexpr (!kDirect) {
        for (uint64_t q = 0; q < cnt[h];) {
          const uint64_t take = std::min(cnt[h] - q, out[h].Next(dst));
          if (dst != nullptr) scale(dst, out[h].i, so.t[h] + q, take, out[h].delta);
          out[h].i += take;
          q += take;
        }
      }
      done[h] += cnt[h];
    }
  }
  for (unsigned h = 0; h < kN; ++h) {
    if constexpr (!kDirect) out[h].Next(dst);  // zero groups after the last coded element
    const ChunkIn& c = in[h];
    const uint64_t used = (c.bit_pos + 7) / 8;
    if (c.r != c.end || used != c.bits_len ||
        ((c.bit_pos & 7) != 0 && (c.bits[c.bit_pos >> 3] >> (c.bit_pos & 7)) != 0))
      return sequential();
    for (unsigned q = 0; q < 4; ++q)
      if (c.x[q] != kRansL) return sequential();
  }
  return SLICER_OK;
}

// The paired decoder for chunks j … j + 2·kP − 1 of this stream.
template <unsigned kP, bool kDeferred>
slicer_status DecodeSetOf(const Stream& s, const PairTables& tb, const uint8_t* data, size_t size,
                          uint64_t j, uint8_t* dst) {
  const bool direct =
      dst != nullptr && s.dtype == SLICER_FLOAT32 && !s.has_table && s.low_bits <= kLowDirectMax;
  if (s.nclass > 1) {
    return direct ? DecodeSet<true, kP, true, kDeferred, false, false>(s, tb, data, size, j, dst)
                  : DecodeSet<true, kP, false, kDeferred, false, false>(s, tb, data, size, j, dst);
  }
  if constexpr (!kDeferred) {
    if (tb.narrow) {
      return direct ? DecodeSet<false, kP, true, false, true, false>(s, tb, data, size, j, dst)
                    : DecodeSet<false, kP, false, false, true, false>(s, tb, data, size, j, dst);
    }
  } else {
    if (s.low_bits != 0) {  // §13.6 (the caller takes the scalar decoder above kLowSimdMax)
      return direct ? DecodeSet<false, kP, true, true, false, true>(s, tb, data, size, j, dst)
                    : DecodeSet<false, kP, false, true, false, true>(s, tb, data, size, j, dst);
    }
  }
  return direct ? DecodeSet<false, kP, true, kDeferred, false, false>(s, tb, data, size, j, dst)
                : DecodeSet<false, kP, false, kDeferred, false, false>(s, tb, data, size, j, dst);
}

slicer_status Parse(const uint8_t* data, size_t size, uint64_t max_elements, Stream* s,
                    slicer_dense_info* info) {
  format::DenseHeader h;
  SLICER_TRY(format::ParseDenseHeader(data, size, max_elements, &h));
  s->dtype = h.dtype;
  s->ndim = h.ndim;
  for (uint32_t d = 0; d < h.ndim; ++d) s->shape[d] = h.shape[d];
  s->n = h.n;
  s->layout_code = h.layout;
  const unsigned mode = h.mode;
  if (mode != kModeDense && mode != kModeClasses) {
    return Reject(SLICER_ERR_UNSUPPORTED_MODE, "mode");
  }
  if (h.params_len != (mode == kModeDense ? kParamsLen : kClassParamsLen)) {
    return Reject(SLICER_ERR_CORRUPT, "dense params_len");
  }
  const uint8_t* p = data + h.params_pos;
  if (mode == kModeClasses) {  // §19.1
    // Bit 0: the axis; bit 1: index ranges (§18.3); bit 2: range boundaries (§18.4), not both;
    // any other bit is corrupt.
    const uint8_t kinds = format::kClassRangesBit | format::kClassBoundsBit;
    if ((p[9] & ~(format::kClassAxisBit | kinds)) != 0 || (p[9] & kinds) == kinds) {
      return Reject(SLICER_ERR_CORRUPT, "class axis");
    }
    s->class_axis = p[9] & format::kClassAxisBit;
    s->class_kind = (p[9] & format::kClassRangesBit)   ? format::kMapRanges
                    : (p[9] & format::kClassBoundsBit) ? format::kMapBounds
                                                       : format::kMapRank;
    s->nclass = p[10];
    if (!MakeClassGeometry(s->shape, s->ndim, s->class_axis, &s->geo)) {
      return Reject(SLICER_ERR_CORRUPT, "class axis");
    }
    if (s->nclass < 2 || s->nclass > SLICER_DENSE_MAX_CLASSES || s->nclass > s->geo.length) {
      return Reject(SLICER_ERR_CORRUPT, "class count");
    }
  }
  std::memcpy(&s->step, p, 4);
  s->rho = p[4];
  s->o1 = static_cast<int8_t>(p[5]);
  s->o2 = static_cast<int8_t>(p[6]);
  s->low_offs[1] = s->o1 / 256.0;
  s->low_offs[2] = s->o2 / 256.0;
  s->chunk_log2 = p[7];
  if (!(std::isfinite(s->step) && s->step >= 0x1p-126f))
    return Reject(SLICER_ERR_CORRUPT, "dense step");
  // group_table byte: bit 0 the group table, bits 1-3 the table kind (§13.5), 0 … 4 in mode 1,
  // bits 4-7 the low-bit plane's width (§13.6), 0 in mode 2.
  if (s->rho < 1 || s->rho > 128 || s->chunk_log2 < 6 || s->chunk_log2 > 24 ||
      (p[8] & 0x0F) > (kTableKindGeom << 1 | 1)) {
    return Reject(SLICER_ERR_CORRUPT, "dense parameters");
  }
  s->has_table = (p[8] & 1) != 0;
  s->table_kind = (p[8] >> 1) & 7;
  s->low_bits = p[8] >> 4;
  if (s->table_kind != 0 && h.mode != kModeDense)
    return Reject(SLICER_ERR_CORRUPT, "table kind other than 0 with class tables");
  if (s->low_bits != 0 && h.mode != kModeDense)
    return Reject(SLICER_ERR_CORRUPT, "low-bit plane with class tables");
  // The body (§12.1, §13, §19.2) by the format layer.
  const format::DenseBodyParams& bp = *s;
  SLICER_TRY(format::ParseDenseBody(data, size, h, bp, s));
  const format::DenseBody& body = *s;
  if (info != nullptr) {
    format::FillDenseInfo(data, size, h, bp, body, info);
    info->rho_256 = s->rho;
    info->offset1 = s->o1;
    info->offset2 = s->o2;
  }
  s->nsym = body.max_nsym;
  // Per-symbol decoding tables (§11, §12.4, §14): one, or one per class (§19.2).
  if (s->nclass > 1) {
    s->lut.assign(size_t{s->nclass} * kProbScale + kLutPad, 0);
    s->syms.assign(kSymStride, DSym{});
    s->fc.assign(size_t{s->nclass} * kSymStride, FreqCum{0, 0});
    s->cum.assign(size_t{s->nclass} * kCumStride, 0);
    s->class_nsym.assign(s->nclass, 0);
  }
  for (unsigned c = 0; c < s->nclass; ++c) {
    format::DenseTable& t = s->tables[c];
    const unsigned nsym = t.nsym;
    if (nsym > 0) {
      if (s->nclass == 1) {
        s->lut.resize(kProbScale + kLutPad);
        s->syms.resize(nsym);
      }
      uint8_t* lut = s->lut.data() + size_t{c} * kProbScale;
      DSym* syms = s->syms.data();
      for (unsigned q = 0; q < nsym; ++q) {
        if (s->nclass > 1) s->fc[size_t{c} * kSymStride + q] = FreqCum{t.freq[q], t.cum[q]};
        DSym& d = syms[q];
        const unsigned b = (q + 1) / 2;
        unsigned nbits = 0;
        BinBase(b, &d.base, &nbits);
        d.nbits = nbits;
        d.freq = t.freq[q];
        d.cum = t.cum[q];
        d.off = b == 0 ? 0.0 : (b == 1 ? s->o1 : s->o2) / 256.0;
        d.sign = (q & 1) == 0 && q != 0 ? -1.0 : 1.0;
        d.mask = (uint64_t{1} << nbits) - 1;
        d.unused = 0;
        std::memset(lut + t.cum[q], q < kEscape ? q : kEscape, t.freq[q]);
      }
    }
    if (s->nclass == 1) {
      s->freq = t.freq;  // copies: the body's tables stay whole (ParseDense's body)
      s->cum = t.cum;
    } else {
      s->class_nsym[c] = nsym;
      std::copy(t.cum.begin(), t.cum.end(), s->cum.begin() + c * kCumStride);
    }
  }
  return SLICER_OK;
}

}  // namespace

slicer_status CheckContainer(const uint8_t* data, size_t size, uint32_t* version) {
  if (data == nullptr && size > 0) return SLICER_ERR_INVALID_ARGUMENT;
  if (size < 9) return Reject(SLICER_ERR_TRUNCATED, "length");
  static const uint8_t magic[4] = {0x53, 0x4C, 0x43, 0x52};
  if (std::memcmp(data, magic, 4) != 0) return Reject(SLICER_ERR_BAD_MAGIC, "magic");
  const uint32_t stored = uint32_t{data[size - 4]} | uint32_t{data[size - 3]} << 8 |
                          uint32_t{data[size - 2]} << 16 | uint32_t{data[size - 1]} << 24;
  if (internal::Crc32(0, data, size - 4) != stored)
    return Reject(SLICER_ERR_BAD_CHECKSUM, "checksum");
  *version = data[4];
  return SLICER_OK;
}

slicer_status ParseDense(const uint8_t* data, size_t size, uint64_t max_elements,
                         slicer_dense_info* info) {
  return ParseDense(data, size, max_elements, info, nullptr);
}

slicer_status ParseDense(const uint8_t* data, size_t size, uint64_t max_elements,
                         slicer_dense_info* info, format::DenseBody* body) {
  uint32_t version = 0;
  SLICER_TRY(CheckContainer(data, size, &version));
  if (version != kVersion) return Reject(SLICER_ERR_BAD_VERSION, "version");
  if (trellis::IsTrellisStream(data, size, max_elements))  // mode 3 (§21)
    return trellis::Parse(data, size, max_elements, info, body);
  Stream s;
  const slicer_status st = Parse(data, size, max_elements, &s, info);
  if (st == SLICER_OK && body != nullptr) *body = static_cast<const format::DenseBody&>(s);
  return st;
}

slicer_status DecodeDense(const uint8_t* data, size_t size, uint64_t max_elements, void* dst,
                          size_t dst_bytes, unsigned threads, slicer_dense_info* info) {
  uint32_t version = 0;
  SLICER_TRY(CheckContainer(data, size, &version));
  if (version != kVersion) return Reject(SLICER_ERR_BAD_VERSION, "version");
  if (trellis::IsTrellisStream(data, size, max_elements))  // mode 3 (§21)
    return trellis::Decode(data, size, max_elements, dst, dst_bytes, threads, info);
  Stream s;
  SLICER_TRY(Parse(data, size, max_elements, &s, info));
  uint8_t* out = static_cast<uint8_t*>(dst);
  const size_t item = DtypeBytes(s.dtype);
  if (out != nullptr) {
    if (dst_bytes < s.n * item) return SLICER_ERR_BUFFER_TOO_SMALL;
    // Raw groups: verbatim, finite.
    if (s.has_table && s.raw_groups > 0) {
      size_t pos = s.raw_pos;
      for (uint64_t g = 0; g < s.layout.groups; ++g) {
        if (s.table[g] != kGroupRaw) continue;
        for (uint64_t i = 0; i < s.n;) {
          const uint64_t stop = std::min(s.n, i + s.layout.RunLeft(i, s.n));
          if (s.layout.GroupOf(i) == g) {
            std::memcpy(out + item * i, data + pos, item * (stop - i));
            pos += item * (stop - i);
          }
          i = stop;
        }
      }
    }
  }
  if (s.has_table && s.raw_groups > 0 &&  // finiteness of raw values, also for inspect
      !format::RawValuesFinite(data, s.dtype, s.raw_pos,
                               s.chunks.empty() ? size - 4 : s.chunks[0].offset))
    return Reject(SLICER_ERR_CORRUPT, "dense raw values");
  const uint64_t nch = s.chunks.size();
  // Chunks in parallel on the call's pool (parallel.hpp); the first failing chunk's status.
  const unsigned parts = s.n < (uint64_t{1} << 18)
                             ? 1u
                             : internal::PartCount(nch, internal::ResolveThreads(threads), 1);
  std::vector<slicer_status> status(parts, SLICER_OK);
  // Two chunks at a time on the AVX2 paired decoder where they allow it.
  // A low-bit plane (§13.6) of up to kLowSimdMax bits takes the second-pass variant (its
  // symbols are mostly direct); wider planes the scalar decoder.
  const bool low = s.low_bits != 0;
  const bool simd = SimdWanted() && nch >= 2 && s.low_bits <= kLowSimdMax;
  // Extra bits in a second pass where few elements have them (the steps then never branch on
  // the data); inline where most do. SLICER_DENSE_DEFERRED=0 / 1 forces either (tests).
  const bool narrow = simd && !low && NarrowWanted(NarrowFits(s));
  const bool deferred = simd && (low || DeferredWanted(PreferDeferred(s, narrow)));
  PairTables tables;
  if (simd) BuildPairTables(s, s.nclass > 1 && !deferred, !deferred && narrow, &tables);
  internal::RunParts(nch, parts, [&](unsigned part, uint64_t j0, uint64_t j1) {
    for (uint64_t j = j0; j < j1 && status[part] == SLICER_OK; ++j) {
      if (simd && j + 4 <= j1 && Pairable(s, j, 4)) {
        status[part] = deferred ? DecodeSetOf<2, true>(s, tables, data, size, j, out)
                                : DecodeSetOf<2, false>(s, tables, data, size, j, out);
        j += 3;
      } else if (simd && j + 2 <= j1 && Pairable(s, j, 2)) {
        status[part] = deferred ? DecodeSetOf<1, true>(s, tables, data, size, j, out)
                                : DecodeSetOf<1, false>(s, tables, data, size, j, out);
        ++j;
      } else {
        status[part] = DecodeChunk(s, data, size, j, out);
      }
    }
  });
  for (slicer_status st : status)
    if (st != SLICER_OK) return st;
  return SLICER_OK;
}

}  // namespace slicer::dense
