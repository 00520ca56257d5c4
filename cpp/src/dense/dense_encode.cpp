// Format 2 dense encoder (docs/format.md §10-§14); byte-identical to tests/reference_dense.py.
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "codec.hpp"
#include "crc32.hpp"
#include "dense/coder.hpp"
#include "dense/dense.hpp"
#include "dense/dense_internal.hpp"
#include "dense/dense_writer.hpp"
#include "dense/simd.hpp"
#include "float_bits.hpp"
#include "format/class_map.hpp"
#include "parallel.hpp"
#include "varint.hpp"

namespace slicer::dense {
namespace {

using internal::StatusError;

// The input element i widened to binary64.
struct Reader {
  const uint8_t* data;
  int dtype;
  double operator()(uint64_t i) const { return LoadElement(dtype, data, i); }
};

// rANS (§14) over syms[0, n) (mode 2: class · 512 + symbol, so that table[syms[i]] is element
// i's entry in its class's table) written backwards into [*begin, end): *begin is set to the first
// byte. The buffer must hold 24 + 2n bytes plus the 2 bytes below them that the branchless step
// may write (and then drop).
uint8_t* EncodeRans(const uint16_t* syms, uint64_t n, const EncSymbol* table, uint8_t* end) {
  const unsigned k = StatesFor(n);
  uint8_t* ptr = end;
  uint32_t x[4] = {kRansL, kRansL, kRansL, kRansL};
  if (k == 1) {
    for (uint64_t i = n; i-- > 0;) RansPutBranchless(&x[0], &ptr, table[syms[i]]);
  } else {
    uint64_t i = n;
    while (i % 4 != 0) {
      --i;
      RansPutBranchless(&x[i % 4], &ptr, table[syms[i]]);
    }
    uint32_t x0 = x[0], x1 = x[1], x2 = x[2], x3 = x[3];
    while (i > 0) {
      i -= 4;
      RansPutBranchless(&x3, &ptr, table[syms[i + 3]]);
      RansPutBranchless(&x2, &ptr, table[syms[i + 2]]);
      RansPutBranchless(&x1, &ptr, table[syms[i + 1]]);
      RansPutBranchless(&x0, &ptr, table[syms[i]]);
    }
    x[0] = x0, x[1] = x1, x[2] = x2, x[3] = x3;
  }
  RansFlush(x, k, &ptr);
  return ptr;
}

// Mode 1's table kind (§13.5) by the reference encoder's rule (PickTableKind, dense_common.cpp),
// each candidate's rANS bytes from the chunks' symbols: syms, chunk j's at [chunk_syms[j],
// chunk_syms[j + 1]). *kt: the chosen table when the kind is not 0.
unsigned ChooseTableKind(const slicer_dense_params& params, const uint64_t* hist,
                         const uint16_t* syms, const std::vector<uint64_t>& chunk_syms,
                         KindTable* kt) {
  if (params.table_kind == 0) return 0;
  std::vector<uint8_t> scratch;  // auto only: one chunk's rANS bytes
  std::vector<EncSymbol> table;
  const auto rans_bytes = [&](const KindTable& cand) {
    if (table.empty()) {
      uint64_t most = 0;
      for (size_t j = 0; j + 1 < chunk_syms.size(); ++j)
        most = std::max(most, chunk_syms[j + 1] - chunk_syms[j]);
      scratch.resize(static_cast<size_t>(most == 0 ? 0 : 2 + 24 + 2 * most));
      table.resize(kNumSymbols);
    }
    for (size_t s = 0; s < cand.freq.size(); ++s)
      if (cand.freq[s]) table[s] = MakeEncSymbol(cand.cum[s], cand.freq[s]);
    uint64_t len = 0;
    for (size_t j = 0; j + 1 < chunk_syms.size(); ++j) {
      const uint64_t a = chunk_syms[j], b = chunk_syms[j + 1];
      if (a == b) continue;
      uint8_t* const end = scratch.data() + scratch.size();
      const uint64_t rl =
          static_cast<uint64_t>(end - EncodeRans(syms + a, b - a, table.data(), end));
      len += rl + internal::VarintLength(rl);
    }
    return len;
  };
  return PickTableKind(params.table_kind, hist, rans_bytes, kt);
}

// ---------------------------------------------------------------------------------------------
// Paired rANS encoder (AVX2): two chunks of four states side by side in eight 32-bit lanes
// (lanes 0-3: chunk a's states 0-3, lanes 4-7: chunk b's), element blocks i … i+3 from the last
// to the first, as the scalar loop. Per lane the same integers as RansPutBranchless: the bytes
// due (x ≥ x_max = freq·2^17, x ≥ x_max·2^8), the state shifted, then x = (w div f)·2^14 +
// (w mod f) + start with the quotient from a binary32 division corrected to the exact one. A
// step's renormalisation bytes (lane 0's … lane 3's, each big-endian, below the chunk's cursor)
// are packed by one byte shuffle chosen by the lanes' byte counts and stored as 16 bytes ending
// at the cursor; the bytes below the new cursor are overwritten by the next step or the final
// states (16 bytes), so nothing is written below the chunk's first byte.

// Per class (stride 512) and symbol: freq | start << 15 (the symbols that occur). Mode 2's
// symbol array holds class · 512 + symbol (the encoder's index into its per-class tables).
constexpr unsigned kClassShift = 9;
constexpr size_t kEncStride = size_t{1} << kClassShift;
static_assert(kNumSymbols <= kEncStride && SLICER_DENSE_MAX_CLASSES * kEncStride <= 65536,
              "class · 512 + symbol fits in 16 bits");

// Byte shuffles of one chunk's renormalisation output by key = (lanes with ≥ 1 byte) | (lanes
// with 2 bytes) << 4: the bytes end at position 16, zeros (index 0x80) before them.
struct EmitTable {
  alignas(16) uint8_t idx[256][16];
  uint8_t count[256];
  EmitTable() {
    for (unsigned key = 0; key < 256; ++key) {
      uint8_t order[8];
      unsigned t = 0;
      for (unsigned l = 0; l < 4; ++l) {
        const unsigned due = ((key >> l) & 1) + ((key >> (4 + l)) & 1);
        if (due == 2) order[t++] = static_cast<uint8_t>(4 * l + 1);
        if (due >= 1) order[t++] = static_cast<uint8_t>(4 * l);
      }
      std::memset(idx[key], 0x80, 16);
      std::memcpy(idx[key] + 16 - t, order, t);
      count[key] = static_cast<uint8_t>(t);
    }
  }
};

const EmitTable& GetEmitTable() {
  static const EmitTable table;
  return table;
}

// Blocks [0, blocks) of the 2·kP chunks of a set (table indices sy[h]: mode 2's carry the
// class; vector v: chunks 2v and 2v + 1), from the last block to the first; states xs[h][0..3]
// and cursors ptr[h] in and out.
template <unsigned kP>
__attribute__((target("avx2"))) void EncodeSetSteps(const uint16_t* const* sy, uint64_t blocks,
                                                    const uint32_t* fs, uint32_t (*xs)[4],
                                                    uint8_t** ptr) {
  const EmitTable& emit = GetEmitTable();
  const __m256i freq_mask = _mm256_set1_epi32(0x7FFF);
  const __m256i one = _mm256_set1_epi32(1);
  const __m256i zero = _mm256_setzero_si256();
  const __m256 below = _mm256_set1_ps(1.0f - 0x1p-22f);
  __m256i x[kP];
  uint8_t* p[2 * kP];
  for (unsigned v = 0; v < kP; ++v) {
    const uint32_t* a = xs[2 * v];
    const uint32_t* b = xs[2 * v + 1];
    x[v] = _mm256_setr_epi32(a[0], a[1], a[2], a[3], b[0], b[1], b[2], b[3]);
    p[2 * v] = ptr[2 * v];
    p[2 * v + 1] = ptr[2 * v + 1];
  }
  for (uint64_t blk = blocks; blk-- > 0;) {
    for (unsigned v = 0; v < kP; ++v) {
      uint64_t s4a, s4b;
      std::memcpy(&s4a, sy[2 * v] + 4 * blk, 8);
      std::memcpy(&s4b, sy[2 * v + 1] + 4 * blk, 8);
      const __m256i idx = _mm256_cvtepu16_epi32(
          _mm_set_epi64x(static_cast<long long>(s4b), static_cast<long long>(s4a)));
      const __m256i e = _mm256_i32gather_epi32(reinterpret_cast<const int*>(fs), idx, 4);
      const __m256i freq = _mm256_and_si256(e, freq_mask);
      const __m256i start = _mm256_srli_epi32(e, 15);
      // x ≥ freq·2^17 and x ≥ freq·2^25 (x < 2^31; freq·2^17 − 1 < 2^31 as a signed compare).
      const __m256i xmax1 = _mm256_sub_epi32(_mm256_slli_epi32(freq, 17), one);
      const __m256i d1 = _mm256_cmpgt_epi32(x[v], xmax1);
      const __m256i d2 = _mm256_cmpgt_epi32(_mm256_srli_epi32(x[v], 8), xmax1);
      const unsigned m1 = static_cast<unsigned>(_mm256_movemask_ps(_mm256_castsi256_ps(d1)));
      const unsigned m2 = static_cast<unsigned>(_mm256_movemask_ps(_mm256_castsi256_ps(d2)));
      const unsigned ka = (m1 & 0x0F) | (m2 & 0x0F) << 4, kb = (m1 >> 4) | (m2 & 0xF0);
      const __m256i shuffle = _mm256_loadu2_m128i(reinterpret_cast<const __m128i*>(emit.idx[kb]),
                                                  reinterpret_cast<const __m128i*>(emit.idx[ka]));
      const __m256i bytes = _mm256_shuffle_epi8(x[v], shuffle);
      _mm_storeu_si128(reinterpret_cast<__m128i*>(p[2 * v] - 16), _mm256_castsi256_si128(bytes));
      _mm_storeu_si128(reinterpret_cast<__m128i*>(p[2 * v + 1] - 16),
                       _mm256_extracti128_si256(bytes, 1));
      p[2 * v] -= emit.count[ka];
      p[2 * v + 1] -= emit.count[kb];
      const __m256i due = _mm256_sub_epi32(zero, _mm256_add_epi32(d1, d2));
      const __m256i w = _mm256_srlv_epi32(x[v], _mm256_slli_epi32(due, 3));
      // q = w div freq (w < 2^31, q < 2^17): the binary32 quotient scaled by 1 − 2^-22 lies in
      // (w / freq − 1, w / freq), so its truncation is q − 1 or q; the remainder corrects it.
      __m256i q = _mm256_cvttps_epi32(
          _mm256_mul_ps(_mm256_div_ps(_mm256_cvtepi32_ps(w), _mm256_cvtepi32_ps(freq)), below));
      __m256i r = _mm256_sub_epi32(w, _mm256_mullo_epi32(q, freq));
      const __m256i high = _mm256_cmpgt_epi32(r, _mm256_sub_epi32(freq, one));
      q = _mm256_sub_epi32(q, high);
      r = _mm256_sub_epi32(r, _mm256_and_si256(high, freq));
      x[v] = _mm256_add_epi32(_mm256_add_epi32(_mm256_slli_epi32(q, kProbBits), r), start);
    }
  }
  for (unsigned v = 0; v < kP; ++v) {
    alignas(32) uint32_t lanes[8];
    _mm256_store_si256(reinterpret_cast<__m256i*>(lanes), x[v]);
    for (unsigned l = 0; l < 4; ++l) {
      xs[2 * v][l] = lanes[l];
      xs[2 * v + 1][l] = lanes[4 + l];
    }
    ptr[2 * v] = p[2 * v];
    ptr[2 * v + 1] = p[2 * v + 1];
  }
}

// The 2·kP chunks of a set (four states each: n ≥ 8192) encoded as EncodeRans would, each
// written backwards from end[h]; their first bytes into begin[h].
template <unsigned kP>
void EncodeRansSet(const uint16_t* const* sy, const uint64_t* n, const EncSymbol* table,
                   const uint32_t* fs, uint8_t* const* end, uint8_t** begin) {
  constexpr unsigned kN = 2 * kP;
  uint32_t x[kN][4];
  uint8_t* p[kN];
  uint64_t i[kN];
  auto sym = [&](unsigned h, uint64_t e) -> const EncSymbol& { return table[sy[h][e]]; };
  uint64_t common = ~uint64_t{0};
  for (unsigned h = 0; h < kN; ++h) {
    for (unsigned l = 0; l < 4; ++l) x[h][l] = kRansL;
    p[h] = end[h];
    i[h] = n[h];
    while (i[h] % 4 != 0) {
      --i[h];
      RansPutBranchless(&x[h][i[h] % 4], &p[h], sym(h, i[h]));
    }
    common = std::min(common, i[h]);
  }
  for (unsigned h = 0; h < kN; ++h) {  // the blocks above the set's common count
    for (; i[h] > common; i[h] -= 4)
      for (unsigned l = 4; l-- > 0;) RansPutBranchless(&x[h][l], &p[h], sym(h, i[h] - 4 + l));
  }
  EncodeSetSteps<kP>(sy, common / 4, fs, x, p);
  for (unsigned h = 0; h < kN; ++h) {
    RansFlush(x[h], 4, &p[h]);
    begin[h] = p[h];
  }
}

// Walks the positions (§19.1) of consecutive elements from i on without a division per element.
struct PositionCursor {
  const ClassGeometry& geo;
  uint64_t pos, within;
  PositionCursor(const ClassGeometry& g, uint64_t i)
      : geo(g), pos((i / g.inner) % g.length), within(i % g.inner) {}
  void Next() {
    if (++within == geo.inner) {
      within = 0;
      if (++pos == geo.length) pos = 0;
    }
  }
};

// LSB-first bit writer (§1) for the extra bits: bits gather in a 64-bit accumulator that is
// stored 32 bits at a time (rarely: most codes carry no extra bits).
struct BitSink {
  uint8_t* out;
  uint64_t pos = 0;  // bytes written
  uint64_t acc = 0;
  unsigned n = 0;                            // pending bits, < 32 between writes
  void Write32(uint64_t v, unsigned bits) {  // bits <= 32
    acc |= v << n;
    n += bits;
    if (n >= 32) {
      const uint32_t word = static_cast<uint32_t>(acc);
      std::memcpy(out + pos, &word, 4);
      pos += 4;
      acc >>= 32;
      n -= 32;
    }
  }
  void Write(uint64_t v, unsigned bits) {  // bits <= 51
    if (bits > 32) {
      Write32(v & 0xFFFFFFFFu, 32);
      Write32(v >> 32, bits - 32);
    } else {
      Write32(v, bits);
    }
  }
  // Pads the pending bits with zeros to a byte; returns the bytes written so far.
  uint64_t Finish() {
    for (; n > 0; n = n > 8 ? n - 8 : 0) {
      out[pos++] = static_cast<uint8_t>(acc);
      acc >>= 8;
    }
    acc = 0;
    return pos;
  }
};

// Symbol counts in eight interleaved 32-bit tables (element k counts in table k mod 8, so the
// increments of a run of equal symbols do not wait on each other), folded into 64-bit totals
// before any table could overflow.
struct Histogram {
  uint32_t part[8][kNumSymbols] = {};
  uint64_t total[kNumSymbols] = {};
  uint64_t pending = 0;
  void Fold() {
    for (unsigned w = 0; w < 8; ++w) {
      for (unsigned q = 0; q < kNumSymbols; ++q) total[q] += part[w][q];
      std::memset(part[w], 0, sizeof(part[w]));
    }
    pending = 0;
  }
  void Reserve(uint64_t cnt) {  // before counting cnt more elements
    if (pending + cnt >= (uint64_t{1} << 32)) Fold();
    pending += cnt;
  }
  void Reset() {
    std::memset(part, 0, sizeof(part));
    std::memset(total, 0, sizeof(total));
    pending = 0;
  }
  void Total(uint64_t* out) {
    Fold();
    std::memcpy(out, total, sizeof(total));
  }
};

// Quantizer output of one block of at most kBlock elements (§12.2).
constexpr unsigned kBlock = 256;
struct Block {
  alignas(32) double x[kBlock];
  alignas(32) double t[kBlock];
  alignas(32) int32_t m[kBlock];
  alignas(32) int32_t mh[kBlock];  // |h| of the low-bit plane's codes (§13.6), for its extra bits
};

// t = |x|/Δ, m = floor(t + ρ) for codes below 2^31, and the offset sums; false when some
// t + ρ is not below 2^31 (huge codes, NaN or infinity: the caller's exact scalar path).
// The same binary64 operations whatever the instruction set (no contraction: §1).
template <bool kAutoOff>
__attribute__((always_inline)) inline bool QuantizeBlockImpl(Block* b, unsigned cnt, double delta,
                                                             double rho, OffsetSums* acc) {
  for (unsigned k = 0; k < cnt; ++k) b->t[k] = std::fabs(b->x[k]) / delta;
  int32_t in_range = 1;
  for (unsigned k = 0; k < cnt; ++k) in_range &= static_cast<int32_t>(b->t[k] + rho < 0x1p31);
  if (!in_range) return false;
  for (unsigned k = 0; k < cnt; ++k) b->m[k] = static_cast<int32_t>(b->t[k] + rho);  // floor
  if constexpr (kAutoOff) {
    int64_t s1 = 0, s2 = 0;
    int32_t c1 = 0, c2 = 0;
    for (unsigned k = 0; k < cnt; ++k) {
      const double dv = (b->t[k] - static_cast<double>(b->m[k])) * 0x1p20;
      const int32_t tr = static_cast<int32_t>(dv);
      const int32_t fl = tr - static_cast<int32_t>(static_cast<double>(tr) > dv);
      const int32_t one = -static_cast<int32_t>(b->m[k] == 1);
      const int32_t big = -static_cast<int32_t>(b->m[k] >= 2);
      s1 += fl & one;
      s2 += fl & big;
      c1 -= one;
      c2 -= big;
    }
    acc->s1 += s1;
    acc->s2 += s2;
    acc->c1 += static_cast<uint64_t>(c1);
    acc->c2 += static_cast<uint64_t>(c2);
  }
  return true;
}

template <bool kAutoOff>
bool QuantizeBlockBase(Block* b, unsigned cnt, double delta, double rho, OffsetSums* acc) {
  return QuantizeBlockImpl<kAutoOff>(b, cnt, delta, rho, acc);
}
template <bool kAutoOff>
__attribute__((target("avx2"))) bool QuantizeBlockAvx2(Block* b, unsigned cnt, double delta,
                                                       double rho, OffsetSums* acc) {
  return QuantizeBlockImpl<kAutoOff>(b, cnt, delta, rho, acc);
}

using QuantizeFn = bool (*)(Block*, unsigned, double, double, OffsetSums*);
QuantizeFn PickQuantize(bool auto_off) {
  static const bool avx2 = __builtin_cpu_supports("avx2");
  if (avx2) return auto_off ? &QuantizeBlockAvx2<true> : &QuantizeBlockAvx2<false>;
  return auto_off ? &QuantizeBlockBase<true> : &QuantizeBlockBase<false>;
}

// float32 blocks with AVX2 (cnt a multiple of 8): the quantizer of QuantizeBlockImpl (the same
// binary64 operations, 4 lanes at a time), m into blk->m and the offset sums into *acc. False,
// with nothing counted, when some t + ρ is not below 2^24 (or is NaN): the caller's general path.
template <bool kAutoOff>
__attribute__((target("avx2"), always_inline)) inline bool QuantizeF32Avx2(const float* in,
                                                                          unsigned cnt,
                                                                          double delta, double rho,
                                                                          OffsetSums* acc,
                                                                          Block* blk) {
  const __m256d dv = _mm256_set1_pd(delta), rv = _mm256_set1_pd(rho);
  const __m256d limit = _mm256_set1_pd(0x1p24), scale = _mm256_set1_pd(0x1p20);
  const __m256d abs_mask = _mm256_castsi256_pd(_mm256_set1_epi64x(0x7FFFFFFFFFFFFFFFLL));
  __m256d ok = _mm256_castsi256_pd(_mm256_set1_epi64x(-1));
  __m128i s1 = _mm_setzero_si128(), s2 = _mm_setzero_si128();
  __m128i c1 = _mm_setzero_si128(), c2 = _mm_setzero_si128();
  const __m128i one = _mm_set1_epi32(1);
  for (unsigned k = 0; k < cnt; k += 4) {
    const __m256d x = _mm256_cvtps_pd(_mm_loadu_ps(in + k));
    const __m256d t = _mm256_div_pd(_mm256_and_pd(x, abs_mask), dv);
    const __m256d u = _mm256_add_pd(t, rv);
    ok = _mm256_and_pd(ok, _mm256_cmp_pd(u, limit, _CMP_LT_OQ));
    const __m128i m = _mm256_cvttpd_epi32(u);  // floor: u ≥ 0
    _mm_store_si128(reinterpret_cast<__m128i*>(blk->m + k), m);
    if constexpr (kAutoOff) {
      const __m256d d = _mm256_mul_pd(_mm256_sub_pd(t, _mm256_cvtepi32_pd(m)), scale);
      // floor(d), |d| ≤ 2^20: the scalar trunc-and-correct gives the same integer
      const __m128i fl =
          _mm256_cvttpd_epi32(_mm256_round_pd(d, _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC));
      const __m128i is1 = _mm_cmpeq_epi32(m, one), is2 = _mm_cmpgt_epi32(m, one);
      s1 = _mm_add_epi32(s1, _mm_and_si128(fl, is1));
      s2 = _mm_add_epi32(s2, _mm_and_si128(fl, is2));
      c1 = _mm_sub_epi32(c1, is1);
      c2 = _mm_sub_epi32(c2, is2);
    }
  }
  if (_mm256_movemask_pd(ok) != 0xF) return false;
  if constexpr (kAutoOff) {
    alignas(16) int32_t v[4][4];
    _mm_store_si128(reinterpret_cast<__m128i*>(v[0]), s1);
    _mm_store_si128(reinterpret_cast<__m128i*>(v[1]), s2);
    _mm_store_si128(reinterpret_cast<__m128i*>(v[2]), c1);
    _mm_store_si128(reinterpret_cast<__m128i*>(v[3]), c2);
    for (unsigned l = 0; l < 4; ++l) {
      acc->s1 += v[0][l];
      acc->s2 += v[1][l];
      acc->c1 += static_cast<uint32_t>(v[2][l]);
      acc->c2 += static_cast<uint32_t>(v[3][l]);
    }
  }
  return true;
}

// §11's extra bits of the magnitudes mag[0, cnt) (< 2^24, cnt a multiple of 8) in element order:
// big_lanes marks the ones ≥ 8 (bit k: mag[k]), nbig of them.
__attribute__((target("avx2"), always_inline)) inline void WriteExtraBitsAvx2(
    const int32_t* mag, const uint64_t* big_lanes, unsigned nbig, unsigned cnt, BitSink* sink) {
  if (nbig == 0) return;
  if (4 * nbig <= cnt) {
    // Few codes carry extra bits (≈ 4 b/el and below): the marked elements in element order,
    // one loop per 64 elements instead of a branch per 8 that the CPU cannot predict.
    for (unsigned w = 0; w < kBlock / 64; ++w) {
      for (uint64_t bits = big_lanes[w]; bits != 0; bits &= bits - 1) {
        const uint32_t mv = static_cast<uint32_t>(mag[64 * w + __builtin_ctzll(bits)]);
        const unsigned s = 29u - static_cast<unsigned>(__builtin_clz(mv));  // floor(log2 m) − 2
        sink->Write32(mv & ((1u << s) - 1u), s);
      }
    }
    return;
  }
  // Most codes carry extra bits: 8 lanes at a time.
  const __m256i seven = _mm256_set1_epi32(7);
  for (unsigned k = 0; k < cnt; k += 8) {
    unsigned bits = static_cast<unsigned>(big_lanes[k / 64] >> (k % 64)) & 0xFFu;
    if (bits == 0) continue;
    const __m256i m = _mm256_load_si256(reinterpret_cast<const __m256i*>(mag + k));
    const __m256i big = _mm256_cmpgt_epi32(m, seven);
    const __m256i e = _mm256_sub_epi32(
        _mm256_srli_epi32(_mm256_castps_si256(_mm256_cvtepi32_ps(m)), 23), _mm256_set1_epi32(127));
    const __m256i sh = _mm256_sub_epi32(e, _mm256_set1_epi32(2));
    // The lanes' extra bits (sh = floor(log2 m) − 2 of them where m ≥ 8) at positions from an
    // exclusive prefix sum of their counts, OR-ed into one word: one write when they fit in 32.
    const __m256i nb = _mm256_and_si256(sh, big);
    __m256i pre = _mm256_add_epi32(nb, _mm256_slli_si256(nb, 4));
    pre = _mm256_add_epi32(pre, _mm256_slli_si256(pre, 8));  // inclusive, per 128-bit half
    pre = _mm256_add_epi32(  // the low half's total onto the high half
        pre, _mm256_permute2x128_si256(_mm256_shuffle_epi32(pre, 0xFF), pre, 0x08));
    const unsigned total = static_cast<unsigned>(_mm256_extract_epi32(pre, 7));
    if (total <= 32) {
      const __m256i one = _mm256_set1_epi32(1);
      const __m256i field = _mm256_and_si256(m, _mm256_sub_epi32(_mm256_sllv_epi32(one, nb), one));
      __m256i word = _mm256_sllv_epi32(field, _mm256_sub_epi32(pre, nb));
      word = _mm256_or_si256(word, _mm256_shuffle_epi32(word, 0x4E));
      word = _mm256_or_si256(word, _mm256_shuffle_epi32(word, 0xB1));
      const uint32_t all = static_cast<uint32_t>(_mm256_cvtsi256_si32(word)) |
                           static_cast<uint32_t>(_mm256_extract_epi32(word, 4));
      sink->Write32(all, total);
      continue;
    }
    while (bits != 0) {  // extra bits in element order
      const unsigned l = static_cast<unsigned>(__builtin_ctz(bits));
      bits &= bits - 1;
      const uint32_t mv = static_cast<uint32_t>(mag[k + l]);
      const unsigned s = 29u - static_cast<unsigned>(__builtin_clz(mv));  // floor(log2 m) − 2
      sink->Write32(mv & ((1u << s) - 1u), s);
    }
  }
}

// §11's bins of 8 magnitudes m (0 ≤ m < 2^24), floor(log2 m) from the exponent of m converted
// to binary32 (exact below 2^24).
__attribute__((target("avx2"), always_inline)) inline __m256i BinsAvx2(__m256i m, __m256i big) {
  const __m256i e = _mm256_sub_epi32(
      _mm256_srli_epi32(_mm256_castps_si256(_mm256_cvtepi32_ps(m)), 23), _mm256_set1_epi32(127));
  const __m256i bin_big = _mm256_add_epi32(
      _mm256_sub_epi32(_mm256_slli_epi32(e, 2), _mm256_set1_epi32(4)),
      _mm256_and_si256(_mm256_srlv_epi32(m, _mm256_sub_epi32(e, _mm256_set1_epi32(2))),
                       _mm256_set1_epi32(3)));
  return _mm256_blendv_epi8(m, bin_big, big);
}

// float32 blocks with AVX2 (cnt a multiple of 8): QuantizeF32Avx2, then the symbols of §11 8
// lanes at a time into o and the extra bits of the codes ≥ 8 written in element order; m into
// blk->m. False, with nothing written or counted, when some t + ρ is not below 2^24 (or is NaN):
// the caller's general path.
template <bool kAutoOff>
__attribute__((target("avx2"))) bool QuantizeSymbolsF32Avx2(const float* in, unsigned cnt,
                                                            double delta, double rho,
                                                            OffsetSums* acc, Block* blk,
                                                            uint16_t* o, BitSink* sink) {
  if (!QuantizeF32Avx2<kAutoOff>(in, cnt, delta, rho, acc, blk)) return false;
  const __m256i seven = _mm256_set1_epi32(7);
  const __m256i zero = _mm256_setzero_si256();
  uint64_t big_lanes[kBlock / 64] = {};  // bit k: m[k] ≥ 8 (carries extra bits)
  unsigned nbig = 0;
  for (unsigned k = 0; k < cnt; k += 8) {
    const __m256i m = _mm256_load_si256(reinterpret_cast<const __m256i*>(blk->m + k));
    const __m256i big = _mm256_cmpgt_epi32(m, seven);
    const __m256i bin = BinsAvx2(m, big);
    const __m256i pos = _mm256_castps_si256(
        _mm256_cmp_ps(_mm256_loadu_ps(in + k), _mm256_setzero_ps(), _CMP_GT_OQ));
    const __m256i sym = _mm256_and_si256(_mm256_add_epi32(_mm256_add_epi32(bin, bin), pos),
                                         _mm256_cmpgt_epi32(m, zero));
    _mm_storeu_si128(
        reinterpret_cast<__m128i*>(o + k),
        _mm_packus_epi32(_mm256_castsi256_si128(sym), _mm256_extracti128_si256(sym, 1)));
    const unsigned bits = static_cast<unsigned>(_mm256_movemask_ps(_mm256_castsi256_ps(big)));
    big_lanes[k / 64] |= uint64_t{bits} << (k % 64);  // no branch on the data here
    nbig += static_cast<unsigned>(__builtin_popcount(bits));
  }
  WriteExtraBitsAvx2(blk->m, big_lanes, nbig, cnt, sink);
  return true;
}

// LSB-first bit writer (§1) for a chunk's low-bit plane (§13.6): at most 7 bits pending after a
// write, each write one 8-byte store at the byte cursor (so the buffer needs 8 bytes past the
// last byte written; the bytes above the pending bits are stored as zeros and rewritten later).
struct PlaneSink {
  uint8_t* p;
  uint64_t acc = 0;
  unsigned n = 0;
  void Put(uint64_t v, unsigned bits) {  // bits ≤ 56, v < 2^bits
    acc |= v << n;
    n += bits;
    std::memcpy(p, &acc, 8);
    p += n >> 3;
    acc >>= n & ~7u;  // n ≤ 63
    n &= 7;
  }
  // Appends the bits a BitSink holds before its Finish (whole 32-bit words, then < 32 pending).
  void Append(const BitSink& s) {
    for (uint64_t i = 0; i < s.pos; i += 4) {
      uint32_t w;
      std::memcpy(&w, s.out + i, 4);
      Put(w, 32);
    }
    if (s.n != 0) Put(s.acc, s.n);
  }
  // Pads the pending bits with zeros to a byte (already stored); returns the end.
  uint8_t* Finish() { return p + (n != 0); }
};

// What a pass with the low-bit plane writes besides the symbols: the plane's width k, its sink,
// and for `low_bits="auto"` (counts != nullptr) the codes with m < limit[w] (limit 0: none), the
// c_k of §13.6's rule at up to four widths.
struct PlanePass {
  unsigned k = 0;
  PlaneSink plane{nullptr};
  uint64_t* counts = nullptr;  // [4]
  uint32_t limit[4] = {};
};

// float32 blocks with AVX2 (cnt a multiple of 8), mode 1 with a low-bit plane of k bits (§13.6):
// QuantizeF32Avx2, then per 8 lanes the code q = ±m, h = q >> k and l = q mod 2^k; the l's
// packed into the plane (8 fields of k bits by shifts within the vector), h's symbols (§11 of
// |h| and the sign of h) into o, h's extra bits into *sink (in element order), and the counts of
// the auto rule. False, with nothing written or counted, as QuantizeSymbolsF32Avx2.
template <bool kAutoOff>
__attribute__((target("avx2"))) bool QuantizePlaneF32Avx2(const float* in, unsigned cnt,
                                                          double delta, double rho,
                                                          OffsetSums* acc, Block* blk, uint16_t* o,
                                                          BitSink* sink, PlanePass* pp) {
  if (!QuantizeF32Avx2<kAutoOff>(in, cnt, delta, rho, acc, blk)) return false;
  const unsigned k = pp->k;
  const __m128i kc = _mm_cvtsi32_si128(static_cast<int>(k));
  const __m128i k2c = _mm_cvtsi32_si128(static_cast<int>(2 * k));
  const __m256i lmask = _mm256_set1_epi32(static_cast<int>((1u << k) - 1));
  const __m256i low32 = _mm256_set1_epi64x(0xFFFFFFFFLL);
  const __m256i seven = _mm256_set1_epi32(7);
  const __m256i zero = _mm256_setzero_si256();
  const bool counting = pp->counts != nullptr;
  __m256i lim[4], cnt_v[4];
  for (unsigned w = 0; w < 4; ++w) {
    lim[w] = _mm256_set1_epi32(static_cast<int>(pp->limit[w]));
    cnt_v[w] = zero;
  }
  PlaneSink plane = pp->plane;
  uint64_t big_lanes[kBlock / 64] = {};  // bit k: |h[k]| ≥ 8 (carries extra bits)
  unsigned nbig = 0;
  for (unsigned e = 0; e < cnt; e += 8) {
    const __m256i m = _mm256_load_si256(reinterpret_cast<const __m256i*>(blk->m + e));
    const __m256 x = _mm256_loadu_ps(in + e);
    const __m256i neg = _mm256_castps_si256(_mm256_cmp_ps(x, _mm256_setzero_ps(), _CMP_LT_OQ));
    const __m256i q = _mm256_sub_epi32(_mm256_xor_si256(m, neg), neg);  // ±m (0 for m = 0)
    const __m256i h = _mm256_sra_epi32(q, kc);                          // floor(q / 2^k)
    const __m256i l = _mm256_and_si256(q, lmask);                       // q − h·2^k
    // The plane: pairs of fields in each 64-bit lane (l0 | l1 << k), then pairs of those in
    // each 128-bit half (4k ≤ 60 bits), both halves written in order.
    __m256i pk = _mm256_or_si256(_mm256_and_si256(l, low32),
                                 _mm256_sll_epi64(_mm256_srli_epi64(l, 32), kc));
    pk = _mm256_or_si256(pk, _mm256_sll_epi64(_mm256_srli_si256(pk, 8), k2c));
    const auto lo = static_cast<uint64_t>(_mm_cvtsi128_si64(_mm256_castsi256_si128(pk)));
    const auto hi = static_cast<uint64_t>(_mm_cvtsi128_si64(_mm256_extracti128_si256(pk, 1)));
    if (k <= 7) {
      plane.Put(lo | hi << (4 * k), 8 * k);
    } else if (k <= 14) {
      plane.Put(lo, 4 * k);
      plane.Put(hi, 4 * k);
    } else {  // 4k = 60: in halves of 30 bits
      plane.Put(lo & 0x3FFFFFFF, 30);
      plane.Put(lo >> 30, 30);
      plane.Put(hi & 0x3FFFFFFF, 30);
      plane.Put(hi >> 30, 30);
    }
    const __m256i mh = _mm256_abs_epi32(h);
    _mm256_store_si256(reinterpret_cast<__m256i*>(blk->mh + e), mh);  // for the extra bits
    const __m256i big = _mm256_cmpgt_epi32(mh, seven);
    const __m256i bin = BinsAvx2(mh, big);
    const __m256i sym =
        _mm256_and_si256(_mm256_add_epi32(_mm256_add_epi32(bin, bin), _mm256_cmpgt_epi32(h, zero)),
                         _mm256_cmpgt_epi32(mh, zero));
    _mm_storeu_si128(
        reinterpret_cast<__m128i*>(o + e),
        _mm_packus_epi32(_mm256_castsi256_si128(sym), _mm256_extracti128_si256(sym, 1)));
    const unsigned bits = static_cast<unsigned>(_mm256_movemask_ps(_mm256_castsi256_ps(big)));
    big_lanes[e / 64] |= uint64_t{bits} << (e % 64);
    nbig += static_cast<unsigned>(__builtin_popcount(bits));
    if (counting) {
      for (unsigned w = 0; w < 4; ++w)
        cnt_v[w] = _mm256_sub_epi32(cnt_v[w], _mm256_cmpgt_epi32(lim[w], m));
    }
  }
  pp->plane = plane;
  if (counting) {
    for (unsigned w = 0; w < 4; ++w) {
      alignas(32) int32_t v[8];
      _mm256_store_si256(reinterpret_cast<__m256i*>(v), cnt_v[w]);
      for (unsigned t = 0; t < 8; ++t) pp->counts[w] += static_cast<uint32_t>(v[t]);
    }
  }
  WriteExtraBitsAvx2(blk->mh, big_lanes, nbig, cnt, sink);
  return true;
}

// sums[q] += min(m[q], 2^16) for q < len (codes below 2^24: §18.2's position sums), 8 lanes at
// a time.
__attribute__((target("avx2"))) void AddClampedAvx2(uint64_t* sums, const int32_t* m,
                                                    unsigned len) {
  static_assert(format::kClassStatClamp < (uint64_t{1} << 31), "a 32-bit lane holds the clamp");
  const __m256i clamp = _mm256_set1_epi32(static_cast<int>(format::kClassStatClamp));
  unsigned q = 0;
  for (; q + 8 <= len; q += 8) {
    const __m256i v =
        _mm256_min_epu32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(m + q)), clamp);
    __m256i* const s = reinterpret_cast<__m256i*>(sums + q);
    _mm256_storeu_si256(s, _mm256_add_epi64(_mm256_loadu_si256(s),
                                            _mm256_cvtepu32_epi64(_mm256_castsi256_si128(v))));
    _mm256_storeu_si256(s + 1,
                        _mm256_add_epi64(_mm256_loadu_si256(s + 1),
                                         _mm256_cvtepu32_epi64(_mm256_extracti128_si256(v, 1))));
  }
  for (; q < len; ++q)
    sums[q] += std::min<uint64_t>(static_cast<uint32_t>(m[q]), format::kClassStatClamp);
}

// Loads elements [b0, b0 + cnt) as binary64 into blk->x (the quantizer's input).
void LoadBlock(const Reader& read, uint64_t b0, unsigned cnt, Block* blk) {
  if (read.dtype == SLICER_FLOAT32) {
    const float* f = reinterpret_cast<const float*>(read.data) + b0;
    for (unsigned k = 0; k < cnt; ++k) {
      float v;
      std::memcpy(&v, f + k, 4);
      blk->x[k] = v;
    }
  } else if (read.dtype == SLICER_FLOAT64) {
    std::memcpy(blk->x, read.data + 8 * b0, 8 * cnt);
  } else {
    for (unsigned k = 0; k < cnt; ++k) blk->x[k] = read(b0 + k);
  }
}

// The codes m of 16 float32 elements (QuantizeF32Avx2) into m; false as QuantizeF32Avx2.
__attribute__((target("avx2"))) bool SampleF32Avx2(const float* in, double delta, double rho,
                                                   Block* blk) {
  return QuantizeF32Avx2<false>(in, 16, delta, rho, nullptr, blk);
}

// §13.6 for one code q (|q| ≤ 2^53) of a pass with the low-bit plane: l = q mod 2^k into the
// plane, h = floor(q / 2^k)'s extra bits into *sink; returns h's symbol (§11), and counts m = |q|
// for the auto rule.
inline unsigned PlaneSymbol(int64_t q, uint64_t m, PlanePass* pp, BitSink* sink) {
  const unsigned k = pp->k;
  pp->plane.Put(static_cast<uint64_t>(q) & ((uint64_t{1} << k) - 1), k);
  if (pp->counts != nullptr) {
    for (unsigned w = 0; w < 4; ++w) pp->counts[w] += m < pp->limit[w];
  }
  const int64_t h = q >> k;  // floor(q / 2^k)
  const int64_t sh = h >> 63;
  const uint64_t mh = static_cast<uint64_t>((h ^ sh) - sh);
  if (mh < (uint64_t{1} << 31)) {  // §11 without branches, as QuantizeRun
    const auto a = static_cast<uint32_t>(mh);
    const unsigned e = 31u - static_cast<unsigned>(__builtin_clz(a | 1u));  // floor(log2 |h|)
    const bool big = a >= kDirect;
    const unsigned shift = big ? e - 2 : 0;
    const unsigned bin = big ? 4 * e - 4 + ((a >> shift) & 3u) : a;
    sink->Write32(a & ((1u << shift) - 1u), shift);
    return (2 * bin - static_cast<unsigned>(h > 0)) & (0u - static_cast<unsigned>(bin != 0));
  }
  unsigned nbits = 0;
  uint64_t extra = 0;
  const unsigned sym = SymbolOf(mh, h < 0, &nbits, &extra);
  sink->Write(extra, nbits);
  return sym;
}

// Elements [begin, end) of one dense group → symbols, histogram, extra bits (§11).
//
// kSums (mode 2, §19.4): also adds min(m, 2^16) of every element to sums[its position], the
// positions walked by *at from `begin` on.
// kPlane (mode 1 with a low-bit plane, §13.6): the symbols, histogram and extra bits of h, the
// low bits into pp's plane (the same pass: the codes are not walked twice).
template <bool kSums, bool kPlane = false>
void QuantizeRun(const Reader& read, uint64_t begin, uint64_t end, double delta, double rho,
                 bool auto_off, QuantizeFn quantize, uint16_t* out, Histogram* hist, BitSink* sink,
                 OffsetSums* acc, uint64_t* sums = nullptr, PositionCursor* at = nullptr,
                 PlanePass* pp = nullptr) {
  static_assert(!(kSums && kPlane), "mode 2 has no low-bit plane");
  Block blk;
  const bool fast = read.dtype == SLICER_FLOAT32 && SimdWanted();
  for (uint64_t b0 = begin; b0 < end; b0 += kBlock) {
    const unsigned cnt = static_cast<unsigned>(std::min<uint64_t>(kBlock, end - b0));
    hist->Reserve(cnt);
    uint16_t* o = out + (b0 - begin);
    if (fast && cnt % 8 == 0) {
      const float* in = reinterpret_cast<const float*>(read.data) + b0;
      bool done;
      if constexpr (kPlane) {
        done = auto_off ? QuantizePlaneF32Avx2<true>(in, cnt, delta, rho, acc, &blk, o, sink, pp)
                        : QuantizePlaneF32Avx2<false>(in, cnt, delta, rho, acc, &blk, o, sink, pp);
      } else {
        done = auto_off ? QuantizeSymbolsF32Avx2<true>(in, cnt, delta, rho, acc, &blk, o, sink)
                        : QuantizeSymbolsF32Avx2<false>(in, cnt, delta, rho, acc, &blk, o, sink);
      }
      if (done) {
        if constexpr (!kSums) {  // mode 2 counts per class later (the map is not known yet)
          for (unsigned k = 0; k < cnt; k += 8) {  // table k mod 8, unrolled
            ++hist->part[0][o[k]];
            ++hist->part[1][o[k + 1]];
            ++hist->part[2][o[k + 2]];
            ++hist->part[3][o[k + 3]];
            ++hist->part[4][o[k + 4]];
            ++hist->part[5][o[k + 5]];
            ++hist->part[6][o[k + 6]];
            ++hist->part[7][o[k + 7]];
          }
        } else if (at->geo.inner == 1) {  // positions run along the last axis: no cursor steps
          const uint64_t length = at->geo.length;
          uint64_t pos = at->pos;
          for (unsigned k = 0; k < cnt;) {
            const unsigned len = static_cast<unsigned>(std::min<uint64_t>(cnt - k, length - pos));
            AddClampedAvx2(sums + pos, blk.m + k, len);
            k += len;
            pos += len;
            if (pos == length) pos = 0;
          }
          at->pos = pos;
        } else {
          for (unsigned k = 0; k < cnt; ++k, at->Next()) {
            sums[at->pos] +=
                std::min<uint64_t>(static_cast<uint32_t>(blk.m[k]), format::kClassStatClamp);
          }
        }
        continue;
      }
    }
    LoadBlock(read, b0, cnt, &blk);
    if (!quantize(&blk, cnt, delta, rho, acc)) {  // rare: the exact scalar path
      for (unsigned k = 0; k < cnt; ++k) {
        const double t = std::fabs(blk.x[k]) / delta;
        const double u = t + rho;
        if (!(u <= 0x1p53)) {
          if (!std::isfinite(blk.x[k]))
            throw internal::StatusError(SLICER_ERR_NONFINITE_INPUT, "input");
          throw internal::StatusError(SLICER_ERR_INVALID_ARGUMENT, "step too small");
        }
        const uint64_t m = static_cast<uint64_t>(u);
        unsigned sym;
        if constexpr (kPlane) {
          const auto qm = static_cast<int64_t>(m);
          sym = PlaneSymbol(blk.x[k] < 0 ? -qm : qm, m, pp, sink);
        } else {
          unsigned nbits = 0;
          uint64_t extra = 0;
          sym = SymbolOf(m, blk.x[k] < 0, &nbits, &extra);
          if (nbits != 0) sink->Write(extra, nbits);
        }
        if (auto_off) acc->Add(t, m);
        o[k] = static_cast<uint16_t>(sym);
        ++hist->part[k & 7][sym];
        if constexpr (kSums) {
          sums[at->pos] += std::min(m, format::kClassStatClamp);
          at->Next();
        }
      }
      continue;
    }
    if constexpr (kPlane) {  // codes below 2^31
      for (unsigned k = 0; k < cnt; ++k) {
        const int64_t m = blk.m[k], neg = -static_cast<int64_t>(blk.x[k] < 0);
        const unsigned sym = PlaneSymbol((m ^ neg) - neg, static_cast<uint64_t>(m), pp, sink);
        o[k] = static_cast<uint16_t>(sym);
        ++hist->part[k & 7][sym];
      }
      continue;
    }
    // §11 without branches: codes below 2^31.
    for (unsigned k = 0; k < cnt; ++k) {
      const uint32_t m = static_cast<uint32_t>(blk.m[k]);
      const unsigned e = 31u - static_cast<unsigned>(__builtin_clz(m | 1u));  // floor(log2 m)
      const bool big = m >= kDirect;
      const unsigned sh = big ? e - 2 : 0;
      const unsigned bin = big ? 4 * e - 4 + ((m >> sh) & 3u) : m;
      const uint32_t extra = m & ((1u << sh) - 1u);
      const unsigned pos = static_cast<unsigned>(blk.x[k] > 0);
      const unsigned sym = (2 * bin - pos) & (0u - static_cast<unsigned>(bin != 0));
      sink->Write32(extra, sh);
      o[k] = static_cast<uint16_t>(sym);
      ++hist->part[k & 7][sym];
    }
    if constexpr (kSums) {
      for (unsigned k = 0; k < cnt; ++k, at->Next()) {
        sums[at->pos] +=
            std::min<uint64_t>(static_cast<uint32_t>(blk.m[k]), format::kClassStatClamp);
      }
    }
  }
}

// A guess of §13.6's auto width from a sample of the coded elements, so that the one pass can
// write the plane of that width and check the guess with exact counts at the widths around it
// (LowBitCheck); a wrong guess costs another pass, never other bytes. The sample: the input cut
// into 64 … 256 equal strata, in each 16 consecutive elements (one cache line of float32, not 16
// scattered misses) at a fixed pseudo-random place, so that it does not alias with the channels
// of a row as a plain stride can (every 256th element of rows of 576 sees 9 columns); all
// elements when there are at most 1024.
unsigned GuessLowBits(const Reader& read, const EncodeInput& in, const std::vector<double>& steps,
                      double rho) {
  constexpr uint64_t kRun = 16;
  const uint64_t n = in.n;
  const uint64_t strata = n <= 1024 ? 1 : std::clamp<uint64_t>(n / 1024, 64, 256);
  const uint64_t width = n / strata, run = n <= 1024 ? n : kRun;  // width ≥ 16 when n > 1024
  uint64_t below[16] = {};  // codes with floor(log2 m) = e (m = 0 with m = 1), e < 15
  uint64_t seen = 0;
  const bool fast = read.dtype == SLICER_FLOAT32 && !in.has_table && SimdWanted();
  uint64_t starts[256];
  for (uint64_t j = 0; j < strata; ++j) {
    const uint64_t jitter = (j * 0x9E3779B97F4A7C15ULL) >> 32;  // frac(j·φ) in 32 bits
    starts[j] = j * width + static_cast<uint64_t>(
                                (static_cast<unsigned __int128>(jitter) * (width - run + 1)) >> 32);
    __builtin_prefetch(read.data + DtypeBytes(read.dtype) * starts[j]);  // the misses overlap
  }
  Block blk;
  for (uint64_t j = 0; j < strata; ++j) {
    const uint64_t start = starts[j];
    if (fast && run == kRun &&
        SampleF32Avx2(reinterpret_cast<const float*>(read.data) + start, in.base_step, rho, &blk)) {
      seen += kRun;
      for (unsigned e = 0; e < kRun; ++e)  // m < 2^24 here
        if (blk.m[e] < (1 << 15)) ++below[format::dense::Log2Floor(uint64_t(blk.m[e]) | 1)];
      continue;
    }
    for (uint64_t i = start; i < start + run; ++i) {
      const uint64_t g = in.layout.GroupOf(i);
      if (in.has_table && !GroupIsDense(in.kinds[g])) continue;
      const double u = std::fabs(read(i)) / (in.has_table ? steps[g] : in.base_step) + rho;
      ++seen;
      if (u < 0x1p15) ++below[format::dense::Log2Floor(static_cast<uint64_t>(u) | 1)];
    }
  }
  unsigned best = 0;
  uint64_t c = 0;
  for (unsigned k = 1; k <= SLICER_DENSE_MAX_LOW_BITS; ++k) {
    c += below[k - 1];  // c = #{m < 2^k}
    if (k >= 3 && seen > 0 && 16 * c <= 9 * seen) best = k;
  }
  return best;
}

// GuessLowBits, unless the environment variable SLICER_DENSE_LOW_BITS_GUESS gives the guess (0
// or 3 … 15): tests force every guess, right and wrong, since the bytes must never depend on it.
unsigned LowBitsGuess(const Reader& read, const EncodeInput& in, const std::vector<double>& steps,
                      double rho) {
  const char* env = std::getenv("SLICER_DENSE_LOW_BITS_GUESS");
  if (env != nullptr && env[0] != '\0') {
    const int g = std::atoi(env);
    if (g == 0 || (g >= 3 && g <= SLICER_DENSE_MAX_LOW_BITS)) return static_cast<unsigned>(g);
  }
  return GuessLowBits(read, in, steps, rho);
}

// The exact counts that check a guessed auto width g (§13.6): c_k at k = g − 1 … g + 2 within
// 3 … 15 (limit 2^k; 0 for none), counted by the pass that writes g's plane.
struct LowBitCheck {
  unsigned k[4] = {};
  uint64_t c[4] = {};
  explicit LowBitCheck(unsigned g, PlanePass* pp) {
    for (unsigned w = 0; w < 4; ++w) {
      k[w] = g - 1 + w;
      pp->limit[w] = k[w] >= 3 && k[w] <= SLICER_DENSE_MAX_LOW_BITS ? 1u << k[w] : 0u;
    }
    pp->counts = c;
  }
  // The rule's k when these counts decide it (16·c_k ≤ 9·n holds for every k up to the rule's
  // and for none above it: c_k grows with k), else kUndecided.
  static constexpr unsigned kUndecided = ~0u;
  unsigned Resolve(uint64_t n) const {
    if (n == 0) return 0;
    auto ok = [&](unsigned w) {
      return static_cast<unsigned __int128>(16) * c[w] <= static_cast<unsigned __int128>(9) * n;
    };
    const unsigned g = k[1];
    if (ok(1)) {
      if (g == SLICER_DENSE_MAX_LOW_BITS || !ok(2)) return g;
      if (g + 1 == SLICER_DENSE_MAX_LOW_BITS || !ok(3)) return g + 1;
      return kUndecided;
    }
    if (g == 3) return 0;
    if (ok(0)) return g - 1;
    return g - 1 == 3 ? 0 : kUndecided;
  }
};

// A decoded binary64 value v (§12.4) rounded to the stream dtype, as binary64: what the
// decoder stores.
template <int kDtype>
inline double Decoded(double v) {
  if constexpr (kDtype == SLICER_FLOAT64) {
    return v;
  } else if constexpr (kDtype == SLICER_FLOAT32) {
    return static_cast<float>(v);
  } else if constexpr (kDtype == SLICER_FLOAT16) {
    return internal::HalfToFloat(internal::FloatToHalf(static_cast<float>(v)));
  } else {
    return internal::BFloat16ToFloat(internal::FloatToBFloat16(static_cast<float>(v)));
  }
}

// Squared errors sq[k] = (x − y)², k in [first, cnt), of a quantized block (codes below 2^31 in
// blk->m), y the decoder's value (−0 for a negative x with m = 0 squares like the decoder's +0).
// off1 − off2 is exact (both k/256), so off2 + (off1 − off2)·[m = 1] is exactly the offset of
// §12.4, and ·[m ≠ 0] zeroes bin 0.
template <int kDtype>
void BlockErrors(const Block* blk, unsigned first, unsigned cnt, double delta, double off1,
                 double off2, double* sq) {
  const double doff = off1 - off2;
  for (unsigned k = first; k < cnt; ++k) {
    const int32_t m = blk->m[k];
    const double off = off2 + doff * static_cast<double>(m == 1);
    const double v = (static_cast<double>(m) + off) * delta * static_cast<double>(m != 0);
    const double d = blk->x[k] - Decoded<kDtype>(std::copysign(v, blk->x[k]));
    sq[k] = d * d;
  }
}

// float32 streams with AVX2: BlockErrors four elements at a time with the same binary64
// operations (no contraction), squared errors into sq as the scalar form writes them.
__attribute__((target("avx2"))) void BlockErrorsF32Avx2(const Block* blk, unsigned cnt,
                                                        double delta, double off1, double off2,
                                                        double* sq) {
  const __m256d one = _mm256_set1_pd(1.0), zero = _mm256_setzero_pd();
  const __m256d o1 = _mm256_set1_pd(off1), o2 = _mm256_set1_pd(off2);
  const __m256d dv = _mm256_set1_pd(delta), sign = _mm256_set1_pd(-0.0);
  unsigned k = 0;
  for (; k + 4 <= cnt; k += 4) {
    const __m256d x = _mm256_load_pd(blk->x + k);
    const __m256d m =
        _mm256_cvtepi32_pd(_mm_load_si128(reinterpret_cast<const __m128i*>(blk->m + k)));
    const __m256d off = _mm256_blendv_pd(o2, o1, _mm256_cmp_pd(m, one, _CMP_EQ_OQ));
    __m256d v = _mm256_mul_pd(_mm256_add_pd(m, off), dv);
    v = _mm256_andnot_pd(_mm256_cmp_pd(m, zero, _CMP_EQ_OQ), v);  // bin 0 decodes to 0
    v = _mm256_or_pd(v, _mm256_and_pd(x, sign));                  // v ≥ 0: the sign of x
    const __m256d y = _mm256_cvtps_pd(_mm256_cvtpd_ps(v));        // rounded to binary32
    const __m256d d = _mm256_sub_pd(x, y);
    _mm256_store_pd(sq + k, _mm256_mul_pd(d, d));
  }
  BlockErrors<SLICER_FLOAT32>(blk, k, cnt, delta, off1, off2, sq);  // the tail
}

// Σ (x − y)² over the dense elements [begin, end) of one group, y the decoder's value, for the
// sse of slicer_dense_encode_sse (eight running sums in a fixed order: deterministic).
template <int kDtype>
double ReconstructionError(const Reader& read, uint64_t begin, uint64_t end, double delta,
                           double rho, double off1, double off2, QuantizeFn quantize) {
  static const bool avx2 = __builtin_cpu_supports("avx2");
  Block blk;
  OffsetSums unused;
  alignas(32) double sq[kBlock];
  double acc[8] = {};
  for (uint64_t b0 = begin; b0 < end; b0 += kBlock) {
    const unsigned cnt = static_cast<unsigned>(std::min<uint64_t>(kBlock, end - b0));
    LoadBlock(read, b0, cnt, &blk);
    if (quantize(&blk, cnt, delta, rho, &unused)) {  // codes below 2^31 (blk.m)
      if (kDtype == SLICER_FLOAT32 && avx2) {
        BlockErrorsF32Avx2(&blk, cnt, delta, off1, off2, sq);
      } else {
        BlockErrors<kDtype>(&blk, 0, cnt, delta, off1, off2, sq);
      }
    } else {
      for (unsigned k = 0; k < cnt; ++k) {
        const uint64_t m = static_cast<uint64_t>(std::fabs(blk.x[k]) / delta + rho);
        double v = m == 0 ? 0.0 : (static_cast<double>(m) + (m == 1 ? off1 : off2)) * delta;
        v = blk.x[k] < 0 ? -v : v;
        const double d = blk.x[k] - Decoded<kDtype>(v);
        sq[k] = d * d;
      }
    }
    unsigned k = 0;
    for (; k + 8 <= cnt; k += 8)
      for (unsigned j = 0; j < 8; ++j) acc[j] += sq[k + j];
    for (; k < cnt; ++k) acc[k & 7] += sq[k];
  }
  return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
}

double ReconstructionErrorOf(const Reader& read, uint64_t begin, uint64_t end, double delta,
                             double rho, double off1, double off2) {
  const QuantizeFn quantize = PickQuantize(false);
  switch (read.dtype) {
    case SLICER_FLOAT64:
      return ReconstructionError<SLICER_FLOAT64>(read, begin, end, delta, rho, off1, off2,
                                                 quantize);
    case SLICER_FLOAT32:
      return ReconstructionError<SLICER_FLOAT32>(read, begin, end, delta, rho, off1, off2,
                                                 quantize);
    case SLICER_FLOAT16:
      return ReconstructionError<SLICER_FLOAT16>(read, begin, end, delta, rho, off1, off2,
                                                 quantize);
    default:
      return ReconstructionError<SLICER_BFLOAT16>(read, begin, end, delta, rho, off1, off2,
                                                  quantize);
  }
}

}  // namespace

slicer_status CheckParams(const slicer_dense_params* p) {
  if (p == nullptr) return SLICER_ERR_INVALID_ARGUMENT;
  if (!(std::isfinite(p->step) && p->step >= 0x1p-126f)) return SLICER_ERR_INVALID_ARGUMENT;
  if (p->rho_256 < 1 || p->rho_256 > 128) return SLICER_ERR_INVALID_ARGUMENT;
  if (p->auto_offsets > 1) return SLICER_ERR_INVALID_ARGUMENT;
  if (p->chunk_log2 < 6 || p->chunk_log2 > 24) return SLICER_ERR_INVALID_ARGUMENT;
  if (p->layout > 2) return SLICER_ERR_INVALID_ARGUMENT;
  const uint8_t kinds = format::kClassRangesBit | format::kClassBoundsBit;  // §18.3, §18.4
  if (p->classes > SLICER_DENSE_MAX_CLASSES ||
      (p->class_axis & ~(format::kClassAxisBit | kinds)) != 0 || (p->class_axis & kinds) == kinds)
    return SLICER_ERR_INVALID_ARGUMENT;
  if (p->class_bounds == nullptr && p->class_bounds_count != 0) return SLICER_ERR_INVALID_ARGUMENT;
  if ((p->class_axis & format::kClassBoundsBit) != 0 && p->classes >= 2 &&
      (p->class_bounds == nullptr || p->class_bounds_count != p->classes - 1u))
    return SLICER_ERR_INVALID_ARGUMENT;
  if (p->group_table == nullptr && p->group_table_size != 0) return SLICER_ERR_INVALID_ARGUMENT;
  // §13.5: table kinds 0 … 4 or auto; 1 … 4 in mode 1 only (auto is 0 in modes 2, 3).
  if (p->table_kind > kTableKindGeom && p->table_kind != kTableKindAuto)
    return SLICER_ERR_INVALID_ARGUMENT;
  if (p->table_kind != 0 && p->table_kind != kTableKindAuto && (p->classes >= 2 || p->trellis))
    return SLICER_ERR_INVALID_ARGUMENT;
  // §13.6: low-bit planes of 0 … 15 bits or auto; 1 … 15 in mode 1 only (auto is 0 in modes 2, 3).
  if (p->low_bits > SLICER_DENSE_MAX_LOW_BITS && p->low_bits != SLICER_DENSE_LOW_BITS_AUTO)
    return SLICER_ERR_INVALID_ARGUMENT;
  if (p->low_bits != 0 && p->low_bits != SLICER_DENSE_LOW_BITS_AUTO &&
      (p->classes >= 2 || p->trellis))
    return SLICER_ERR_INVALID_ARGUMENT;
  return SLICER_OK;
}

slicer_status CheckShape(const int64_t* shape, uint32_t ndim, uint64_t* n) {
  if (ndim > SLICER_MAX_NDIM || (ndim > 0 && shape == nullptr)) return SLICER_ERR_INVALID_ARGUMENT;
  unsigned __int128 count = 1;
  bool zero = false;
  for (uint32_t d = 0; d < ndim; ++d) {
    if (shape[d] < 0) return SLICER_ERR_INVALID_ARGUMENT;
    if (shape[d] == 0) zero = true;
    if (!zero) {
      count *= static_cast<uint64_t>(shape[d]);
      if (count >= (static_cast<unsigned __int128>(1) << 63)) return SLICER_ERR_INVALID_ARGUMENT;
    }
  }
  *n = zero ? 0 : static_cast<uint64_t>(count);
  return SLICER_OK;
}

void EncodeDense(const void* data, int dtype, const int64_t* shape, uint32_t ndim,
                 const slicer_dense_params& params, std::vector<uint8_t>* stream, double* sse) {
  EncodeInput in;  // shape, layout, classes, group table (dense_writer.hpp)
  CheckEncodeInput(data, shape, ndim, params, &in);
  const uint64_t n = in.n;
  const Layout layout = in.layout;
  const unsigned nclass = in.nclass;
  const bool rank = in.rank;
  const ClassGeometry geo = in.geo;
  const bool has_table = in.has_table;
  const std::vector<double> steps = std::move(in.steps);
  const std::vector<uint8_t> kinds = in.kinds;
  const double base_step = in.base_step;
  const double rho = params.rho_256 / 256.0;
  const Reader read{static_cast<const uint8_t*>(data), dtype};
  const uint64_t chunk = in.chunk;
  const uint64_t nch = in.nch;

  // Pass 1: codes → symbols, histogram, offset sums, and each chunk's extra bits (§11,
  // §12.2, §12.3), chunk after chunk into one buffer, each chunk's padded to a byte. With mode
  // 1's low-bit plane of k bits (§13.6: pass1 with a PlanePass of width k) the symbols,
  // histogram and bit areas are those of h = q >> k, in the same pass: each chunk's plane written
  // at its area's start, h's extra bits into `side` and appended to the plane when the chunk ends.
  std::vector<uint16_t, internal::UninitializedAllocator<uint16_t>> syms(n);
  std::vector<uint8_t, internal::UninitializedAllocator<uint8_t>> bitbuf(
      static_cast<size_t>((51 * n + 7) / 8 + nch + 16));
  std::vector<uint8_t, internal::UninitializedAllocator<uint8_t>> side;
  BitSink sink{bitbuf.data()};
  std::vector<uint64_t> chunk_syms(nch + 1, 0), chunk_bits(nch + 1, 0);
  Histogram counts;
  OffsetSums acc;
  uint64_t nsyms = 0;
  const bool auto_off = params.auto_offsets != 0;
  const QuantizeFn quantize = PickQuantize(auto_off);
  std::vector<uint64_t> sums(nclass > 1 && rank ? geo.length : 0, 0);  // §18.2's S_a
  uint64_t hist[kNumSymbols];
  auto pass1 = [&](PlanePass* pp) {
    const bool plane = pp != nullptr;
    sink = BitSink{bitbuf.data()};
    BitSink extras{nullptr};
    if (plane) {
      if (side.empty()) side.resize(static_cast<size_t>((51 * std::min(n, chunk) + 7) / 8 + 16));
      extras = BitSink{side.data()};
      pp->plane = PlaneSink{bitbuf.data()};
    }
    std::fill(chunk_syms.begin(), chunk_syms.end(), 0);
    std::fill(chunk_bits.begin(), chunk_bits.end(), 0);
    counts.Reset();
    acc = OffsetSums();
    nsyms = 0;
    uint64_t sink_chunk = 0;                      // the chunk whose extra bits the sink is writing
    auto close_chunks_before = [&](uint64_t c) {  // ends the sink's chunk and all before c
      if (c <= sink_chunk) return;
      uint64_t at;
      if (plane) {
        pp->plane.Append(extras);
        at = static_cast<uint64_t>(pp->plane.Finish() - bitbuf.data());
        extras = BitSink{side.data()};
        pp->plane = PlaneSink{bitbuf.data() + at};
      } else {
        at = sink.Finish();
      }
      for (uint64_t j = sink_chunk; j < c; ++j) chunk_bits[j + 1] = at;
      sink_chunk = c;
    };
    for (uint64_t i = 0; i < n;) {
      const uint64_t g = layout.GroupOf(i);
      const uint64_t stop = std::min(n, i + layout.RunLeft(i, n));
      const uint8_t kind = has_table ? kinds[g] : 0;
      if (!GroupIsDense(kind)) {
        for (; i < stop; ++i) {
          if (!std::isfinite(read(i))) throw StatusError(SLICER_ERR_NONFINITE_INPUT, "input");
        }
        continue;
      }
      const double delta = has_table ? steps[g] : base_step;
      while (i < stop) {  // chunk-aligned pieces, so per-chunk counts come out of the loop
        close_chunks_before(i / chunk);
        const uint64_t piece_end = std::min(stop, (i / chunk + 1) * chunk);
        if (nclass > 1 && rank) {
          PositionCursor at(geo, i);
          QuantizeRun<true>(read, i, piece_end, delta, rho, auto_off, quantize,
                            syms.data() + nsyms, &counts, &sink, &acc, sums.data(), &at);
        } else if (plane) {
          QuantizeRun<false, true>(read, i, piece_end, delta, rho, auto_off, quantize,
                                   syms.data() + nsyms, &counts, &extras, &acc, nullptr, nullptr,
                                   pp);
        } else {
          QuantizeRun<false>(read, i, piece_end, delta, rho, auto_off, quantize,
                             syms.data() + nsyms, &counts, &sink, &acc);
        }
        chunk_syms[i / chunk + 1] += piece_end - i;
        nsyms += piece_end - i;
        i = piece_end;
      }
    }
    close_chunks_before(nch);
    counts.Total(hist);
  };
  // Mode 1's low-bit plane (§13.6): k as given, or "auto" (the rule needs the counts of the
  // codes, so the pass writes the plane of a guessed width and checks the guess exactly; when
  // the check fails, a pass without the plane gives the histogram of q and the rule's k).
  unsigned low_bits = 0;
  if (nclass == 1 && params.low_bits != 0 && params.low_bits != SLICER_DENSE_LOW_BITS_AUTO) {
    low_bits = params.low_bits;
    PlanePass pp;
    pp.k = low_bits;
    pass1(&pp);
  } else if (nclass == 1 && params.low_bits == SLICER_DENSE_LOW_BITS_AUTO) {
    const unsigned guess = LowBitsGuess(read, in, steps, rho);
    unsigned rule = LowBitCheck::kUndecided;
    if (guess != 0) {
      PlanePass pp;
      pp.k = guess;
      const LowBitCheck check(guess, &pp);
      pass1(&pp);
      rule = check.Resolve(nsyms);
      if (rule == guess) low_bits = guess;
    }
    if (low_bits == 0) {
      if (rule == LowBitCheck::kUndecided || rule == 0) {
        pass1(nullptr);
        if (rule != 0) rule = AutoLowBits(hist);
      }
      if (rule != 0) {
        low_bits = rule;
        PlanePass pp;
        pp.k = rule;
        pass1(&pp);
      }
    }
  } else {
    pass1(nullptr);
  }
  const int64_t s1 = acc.s1, s2 = acc.s2;
  const uint64_t c1 = acc.c1, c2 = acc.c2;
  for (uint64_t j = 0; j < nch; ++j) {
    chunk_syms[j + 1] += chunk_syms[j];
  }
  const int8_t o1 = auto_off ? OffsetSums::Offset(s1, c1) : params.offset1;
  const int8_t o2 = auto_off ? OffsetSums::Offset(s2, c2) : params.offset2;

  if (sse != nullptr) {  // the decoded values' squared error, without decoding (§12.4)
    const double off1 = o1 / 256.0, off2 = o2 / 256.0;
    double total = 0.0;
    for (uint64_t i = 0; i < n;) {
      const uint64_t g = layout.GroupOf(i);
      const uint64_t stop = std::min(n, i + layout.RunLeft(i, n));
      const uint8_t kind = has_table ? kinds[g] : 0;
      if (kind == kGroupZero) {
        for (; i < stop; ++i) total += read(i) * read(i);
      } else if (kind != kGroupRaw) {
        total +=
            ReconstructionErrorOf(read, i, stop, has_table ? steps[g] : base_step, rho, off1, off2);
      }
      i = stop;
    }
    *sse = total;
  }

  // Mode 2 (§19.4): the class map from the codes' position sums (§18.2), every coded element's
  // class put above its symbol (syms[q] becomes class · 512 + symbol: the element's index into
  // the per-class tables below), and the per-class histograms (which replace the stream's one).
  std::vector<uint8_t> class_map;
  std::vector<uint64_t> class_hist;  // nclass × kNumSymbols
  if (nclass > 1) {
    MakeClassMap(in, params, sums, &class_map);
    uint16_t* const sq = syms.data();
    uint64_t idx = 0;
    for (uint64_t i = 0; i < n;) {  // the class of every coded element
      const uint64_t stop = std::min(n, i + layout.RunLeft(i, n));
      if (GroupIsDense(has_table ? kinds[layout.GroupOf(i)] : 0)) {
        if (geo.inner == 1) {  // the last axis: runs of the map itself
          for (uint64_t p = i % geo.length; i < stop; p = 0) {
            const uint64_t len = std::min(stop - i, geo.length - p);
            const uint8_t* const cm = class_map.data() + p;
            uint16_t* const o = sq + idx;
            for (uint64_t k = 0; k < len; ++k)
              o[k] = static_cast<uint16_t>(o[k] | unsigned{cm[k]} << kClassShift);
            idx += len;
            i += len;
          }
        } else {
          PositionCursor at(geo, i);
          for (; i < stop; ++i, at.Next(), ++idx)
            sq[idx] = static_cast<uint16_t>(sq[idx] | unsigned{class_map[at.pos]} << kClassShift);
        }
      }
      i = stop;
    }
    // Per-class histograms in eight interleaved tables (element q counts in table q mod 8, so
    // the increments of a run of one class and symbol do not wait on each other; the tables lie
    // a cache line more than a multiple of 4 KB apart, so that the same index in two tables
    // neither shares a cache set nor looks like the same address to the load-store check),
    // folded into 64-bit totals every 2^30 elements.
    constexpr size_t stride = SLICER_DENSE_MAX_CLASSES * kEncStride + 16;  // offsets in the code
    const size_t used = size_t{nclass} * kEncStride;
    class_hist.assign(size_t{nclass} * kNumSymbols, 0);
    std::vector<uint32_t, internal::UninitializedAllocator<uint32_t>> part(8 * stride);
    for (unsigned w = 0; w < 8; ++w) std::fill_n(part.data() + w * stride, used, 0u);
    for (uint64_t b = 0; b < nsyms; b += uint64_t{1} << 30) {
      const uint64_t e = std::min(nsyms, b + (uint64_t{1} << 30));
      uint32_t* const h = part.data();
      uint64_t q = b;
      for (; q + 8 <= e; q += 8) {
        ++h[0 * stride + sq[q]];
        ++h[1 * stride + sq[q + 1]];
        ++h[2 * stride + sq[q + 2]];
        ++h[3 * stride + sq[q + 3]];
        ++h[4 * stride + sq[q + 4]];
        ++h[5 * stride + sq[q + 5]];
        ++h[6 * stride + sq[q + 6]];
        ++h[7 * stride + sq[q + 7]];
      }
      for (; q < e; ++q) ++h[sq[q]];
      for (unsigned c = 0; c < nclass; ++c) {
        for (unsigned w = 0; w < 8; ++w) {
          const uint32_t* const from = h + w * stride + size_t{c} * kEncStride;
          uint64_t* const to = class_hist.data() + size_t{c} * kNumSymbols;
          for (unsigned t = 0; t < kNumSymbols; ++t) to[t] += from[t];
        }
      }
      for (unsigned w = 0; w < 8; ++w) std::fill_n(part.data() + w * stride, used, 0u);
    }
  } else {
    class_hist.assign(hist, hist + kNumSymbols);
  }

  // Frequency tables (§13.1, §13.2): one per class (mode 1: one, of the table kind, §13.5).
  std::vector<unsigned> nsyms_of(nclass, 0);
  std::vector<std::vector<unsigned>> classes(nclass);
  std::vector<EncSymbol> table(size_t{nclass} * kEncStride);  // at class · 512 + symbol
  std::vector<uint32_t> fs(size_t{nclass} * kEncStride, 0);   // the paired encoder's table
  KindTable kind_table;  // mode 1 with a table kind other than 0
  const unsigned table_kind =
      nclass > 1 ? 0
                 : ChooseTableKind(params, class_hist.data(), syms.data(), chunk_syms, &kind_table);
  for (unsigned c = 0; c < nclass; ++c) {
    const uint64_t* h = class_hist.data() + size_t{c} * kNumSymbols;
    unsigned nsym = 0;
    for (unsigned s = 0; s < kNumSymbols; ++s)
      if (h[s]) nsym = s + 1;
    nsyms_of[c] = nsym;
    std::vector<uint32_t> freq, cum;
    if (table_kind != 0) {
      freq = kind_table.freq;
      cum = kind_table.cum;
    } else {
      classes[c].resize(nsym);
      for (unsigned s = 0; s < nsym; ++s) classes[c][s] = h[s] ? CountClass(h[s]) : 0;
      Normalize(classes[c], &freq, &cum);
    }
    for (unsigned s = 0; s < nsym; ++s)
      if (freq[s]) {
        table[size_t{c} * kEncStride + s] = MakeEncSymbol(cum[s], freq[s]);
        fs[size_t{c} * kEncStride + s] = freq[s] | cum[s] << 15;
      }
  }

  // Pass 2: rANS per chunk (independent: on the call's pool for large inputs), each written
  // backwards into its own slot of one buffer: chunk j's slot ends at 2 + Σ_{i≤j} (24 + 2 n_i).
  std::vector<uint64_t> slot_end(nch + 1, 0);
  for (uint64_t j = 0; j < nch; ++j) {
    const uint64_t cnt = chunk_syms[j + 1] - chunk_syms[j];
    slot_end[j + 1] = slot_end[j] + (cnt == 0 ? 0 : 2 + 24 + 2 * cnt);
  }
  std::vector<uint8_t, internal::UninitializedAllocator<uint8_t>> rans(
      static_cast<size_t>(slot_end[nch]));
  std::vector<uint64_t> rans_begin(nch, 0);
  const unsigned parts =
      n < (uint64_t{1} << 18)
          ? 1u
          : internal::PartCount(nch, internal::ResolveThreads(params.threads), 1);
  const bool simd = SimdWanted();
  internal::RunParts(nch, parts, [&](unsigned, uint64_t j0, uint64_t j1) {
    for (uint64_t j = j0; j < j1; ++j) {
      const uint64_t a = chunk_syms[j], b = chunk_syms[j + 1];
      unsigned set = 0;  // chunks side by side: 4, 2 or none
      if (simd) {
        for (unsigned h = 0; h < 4 && j + h < j1; ++h) {
          if (StatesFor(chunk_syms[j + h + 1] - chunk_syms[j + h]) != 4) break;
          set = h + 1;
        }
        set = set >= 4 ? 4 : set >= 2 ? 2 : 0;
      }
      if (set != 0) {
        const uint16_t* sy[4];
        uint64_t cnt[4];
        uint8_t* ends[4];
        uint8_t* begins[4];
        for (unsigned h = 0; h < set; ++h) {
          sy[h] = syms.data() + chunk_syms[j + h];
          cnt[h] = chunk_syms[j + h + 1] - chunk_syms[j + h];
          ends[h] = rans.data() + slot_end[j + h + 1];
        }
        if (set == 4) {
          EncodeRansSet<2>(sy, cnt, table.data(), fs.data(), ends, begins);
        } else {
          EncodeRansSet<1>(sy, cnt, table.data(), fs.data(), ends, begins);
        }
        for (unsigned h = 0; h < set; ++h)
          rans_begin[j + h] = static_cast<uint64_t>(begins[h] - rans.data());
        j += set - 1;
        continue;
      }
      if (a == b) continue;
      uint8_t* const end = rans.data() + slot_end[j + 1];
      uint8_t* const begin = EncodeRans(syms.data() + a, b - a, table.data(), end);
      rans_begin[j] = static_cast<uint64_t>(begin - rans.data());
    }
  });

  // Assemble (§10, §13).
  uint8_t mp[11];
  std::memcpy(mp, &params.step, 4);
  mp[4] = params.rho_256;
  mp[5] = static_cast<uint8_t>(o1);
  mp[6] = static_cast<uint8_t>(o2);
  mp[7] = params.chunk_log2;
  // §13.5: bits 1-3 the table kind; §13.6: bits 4-7 the low-bit plane
  mp[8] = static_cast<uint8_t>((has_table ? 1 : 0) | table_kind << 1 | low_bits << 4);
  mp[9] = params.class_axis;  // bit 0 the axis, bit 1 index ranges, bit 2 bounds (§19.1)
  mp[10] = static_cast<uint8_t>(nclass);
  std::vector<uint64_t> chunk_lens(2 * nch);
  size_t payload = 0;
  for (uint64_t j = 0; j < nch; ++j) {
    const bool coded = chunk_syms[j + 1] > chunk_syms[j];
    const size_t rl = coded ? slot_end[j + 1] - rans_begin[j] : 0;
    const size_t bl = chunk_bits[j + 1] - chunk_bits[j];
    chunk_lens[2 * j] = rl;
    chunk_lens[2 * j + 1] = bl;
    payload += rl + bl;
  }
  std::vector<uint8_t>& out = *stream;
  WriteStreamHead(in, data, dtype, shape, ndim, params, nclass > 1 ? kModeClasses : kModeDense, mp,
                  nclass > 1 ? kClassParamsLen : kParamsLen, class_map, classes, nsyms_of,
                  chunk_lens, &out, table_kind != 0 ? &kind_table.body : nullptr);
  out.reserve(out.size() + payload + 4);
  for (uint64_t j = 0; j < nch; ++j) {
    if (chunk_syms[j + 1] > chunk_syms[j]) {
      out.insert(out.end(), rans.data() + rans_begin[j], rans.data() + slot_end[j + 1]);
    }
    out.insert(out.end(), bitbuf.data() + chunk_bits[j], bitbuf.data() + chunk_bits[j + 1]);
  }
  AppendChecksum(&out);
}

}  // namespace slicer::dense
