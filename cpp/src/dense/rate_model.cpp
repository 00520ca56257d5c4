// The rate model of mode="auto" (see rate_model.hpp; reference: python/slicer/_rate.py).
#include "dense/rate_model.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <type_traits>
#include <utility>

#include "dense/simd.hpp"
#include "float_bits.hpp"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define SLICER_RATE_AVX2 1
#endif

namespace slicer::rate {
namespace {

// Smallest magnitude of bins 0..211 (+ the end, 2^54) and each bin's extra-bit count (§11).
struct BinTable {
  double base[kBins + 1];
  int nbits[kBins];
  BinTable() {
    for (int b = 0; b < kBins; ++b) {
      if (b < 8) {
        base[b] = b;
        nbits[b] = 0;
      } else {
        const int e = (b - 8) / 4 + 3, top = (b - 8) % 4;
        base[b] = std::ldexp(4.0 + top, e - 2);
        nbits[b] = e - 2;
      }
    }
    base[kBins] = std::ldexp(1.0, 54);
  }
};
const BinTable kTable;

// Number of elements of the ascending `v` below `x`, searched in [from, v.size()): an empty bin
// at once (the common case at coarse steps), else a gallop from `from` (bins hold few elements
// at fine steps) and a branch-free halving of the last interval.
size_t CountBelow(const Doubles& v, size_t from, double x) {
  const size_t n = v.size();
  if (from == n || !(v[from] < x)) return from;
  size_t reach = 1;
  while (from + reach < n && v[from + reach] < x) reach *= 2;
  // v[from + reach / 2] < x; the first element >= x lies in [from + reach / 2 + 1, hi]
  size_t lo = from + reach / 2 + 1;
  const size_t hi = std::min(from + reach, n);
  if (lo >= hi) return hi;
  size_t len = hi - lo;
  const double* base = v.data() + lo;
  while (len > 1) {
    const size_t half = len / 2;
    base = base[half - 1] < x ? base + half : base;
    len -= half;
  }
  return static_cast<size_t>(base - v.data()) + (*base < x ? 1 : 0);
}

// The search key of a magnitude for Model::Below: its exponent field and the top four bits of
// its mantissa (ascending with the value for non-negative doubles).
inline int64_t KeyOf(double m) {
  uint64_t bits;
  std::memcpy(&bits, &m, 8);
  return static_cast<int64_t>(bits >> 48);
}

// CountBelow(v, from, x) searched from a guess `near` of the answer (every element before
// `from` is below x): forward from `near` when v[near] < x, else a gallop backwards from it.
// The answer does not depend on the guess.
size_t CountBelowNear(const Doubles& v, size_t from, size_t near, double x) {
  const size_t n = v.size();
  size_t hi = std::min(std::max(near, from), n);
  if (hi < n && v[hi] < x) return CountBelow(v, hi, x);
  // v[hi] >= x (or hi = n): the answer lies in [from, hi]
  size_t dist = 1;
  while (hi > from) {
    const size_t probe = hi - std::min(dist, hi - from);
    if (v[probe] < x) {
      return static_cast<size_t>(std::lower_bound(v.begin() + static_cast<ptrdiff_t>(probe) + 1,
                                                  v.begin() + static_cast<ptrdiff_t>(hi), x) -
                                 v.begin());
    }
    hi = probe;
    dist *= 2;
  }
  return from;
}

// Ascending sort of non-negative finite doubles: LSD radix sort on their bit patterns (which
// order like the values), byte by byte, skipping the bytes every key shares (the low mantissa
// bytes of widened float64 input). Sorting is exact, so the result is std::sort's. (A sample of
// binary32 values takes SortSignedKeys instead.)
void SortMagnitudes(Doubles& v) {
  const size_t n = v.size();
  if (n < 64) {
    std::sort(v.begin(), v.end());
    return;
  }
  std::vector<uint64_t> wide(n), tmp(n);
  std::memcpy(wide.data(), v.data(), n * 8);
  uint64_t wide_any = 0, wide_all = ~uint64_t{0};
  for (uint64_t k : wide) wide_any |= k, wide_all &= k;
  const uint64_t varies = wide_any ^ wide_all;  // the bits not shared by every key
  std::vector<uint32_t> count(256);
  for (int d = 0; d < 8; ++d) {
    if (((varies >> (8 * d)) & 0xFF) == 0) continue;  // every key has the same byte here
    uint32_t* c = count.data();
    std::fill(c, c + 256, 0);
    for (uint64_t k : wide) ++c[(k >> (8 * d)) & 0xFF];
    uint32_t sum = 0;
    for (int b = 0; b < 256; ++b) {
      const uint32_t here = c[b];
      c[b] = sum;
      sum += here;
    }
    for (uint64_t k : wide) tmp[c[(k >> (8 * d)) & 0xFF]++] = k;
    wide.swap(tmp);
  }
  std::memcpy(v.data(), wide.data(), n * 8);
}

// The whole sample, both signs, in one exact sort when every value is a binary32 value
// (float32 / float16 / bfloat16 input): `keys` = the values' binary32 patterns in ascending
// unsigned order, i.e. the positive side's magnitudes ascending (sign bit 0, +0 first), then the
// negative side's (sign bit 1, −0 first). LSD radix sort, 11 + 11 + 10 bits a pass (a pass
// skipped where every key has the same digit), the three digits counted in the pass that makes
// the keys. False (keys unspecified) when some value is not a binary32 value (float64 input).
// One sort of N keys instead of a split by sign and two sorts: the counting, the prefix sums of
// the 2048-entry counts and the split's copy are paid once.
bool SortSignedKeys(const std::vector<double>& sample,
                    std::vector<uint32_t, NoInit<uint32_t>>* keys) {
  const size_t n = sample.size();
  keys->resize(n);
  uint32_t* k = keys->data();
  bool narrow = true;
  std::vector<uint32_t> counts(3 * 2048, 0);
  uint32_t* c0 = counts.data();
  uint32_t* c1 = c0 + 2048;
  uint32_t* c2 = c1 + 2048;
  uint32_t any = 0, all = ~uint32_t{0};
  for (size_t i = 0; i < n; ++i) {
    const double v = sample[i];
    // (a value beyond the float range is converted as 0: such a conversion is undefined)
    const bool fits = std::fabs(v) <= static_cast<double>(std::numeric_limits<float>::max());
    const float f = static_cast<float>(fits ? v : 0.0);
    narrow &= fits && static_cast<double>(f) == v;
    const uint32_t key = internal::FloatToBits(f);
    k[i] = key;
    any |= key, all &= key;
    ++c0[key & 0x7FF], ++c1[(key >> 11) & 0x7FF], ++c2[key >> 22];
  }
  if (!narrow) return false;
  // −0.0 == 0.0 as doubles: its pattern (sign bit set) is kept, so it sorts first among the
  // negatives, where the caller counts it as a zero, as the comparison v < 0 does not
  if (n < 256) {  // the 2048-entry prefix sums would cost more than the sort
    std::sort(k, k + n);
    return true;
  }
  std::vector<uint32_t, NoInit<uint32_t>> tmp(n);
  const uint32_t varies = any ^ all;
  for (int shift = 0; shift < 32; shift += 11) {
    if (((varies >> shift) & 0x7FF) == 0) continue;
    uint32_t* c = counts.data() + (shift / 11) * 2048;
    uint32_t sum = 0;
    for (int d = 0; d < 2048; ++d) {
      const uint32_t here = c[d];
      c[d] = sum;
      sum += here;
    }
    const uint32_t* src = keys->data();
    uint32_t* dst = tmp.data();
    for (size_t i = 0; i < n; ++i) {
      const uint32_t key = src[i];
      dst[c[(key >> shift) & 0x7FF]++] = key;
    }
    keys->swap(tmp);
  }
  return true;
}

// v·log2(v) of a count (the bounds estimate takes it for every cell range): a table up to the
// largest sample (built once, thread-safe), the same expression beyond it.
constexpr int64_t kXLogXTable = (int64_t{1} << 15) + 1;

const double* XLogXTable() {
  static const std::vector<double> table = [] {
    std::vector<double> t(kXLogXTable, 0.0);
    for (int64_t i = 1; i < kXLogXTable; ++i) {
      t[i] = static_cast<double>(i) * std::log2(static_cast<double>(i));
    }
    return t;
  }();
  return table.data();
}

// The table's lookup, inlined into the loops that take it (`table` = XLogXTable()).
inline double XLogX(const double* table, int64_t v) {
  if (v < kXLogXTable) return table[v];
  return static_cast<double>(v) * std::log2(static_cast<double>(v));
}

// §13.1 estimate of a table's bytes from the index of its last used symbol + 1 (0: none).
int64_t TableBytes(int64_t last) {
  return last > 0 ? 2 + (9 + 4 * std::max<int64_t>(0, last - 1) + 7) / 8 : 1;
}

template <typename Fn>
void ForEach(const uint8_t* data, int dtype, uint64_t begin, uint64_t end, Fn fn) {
  switch (dtype) {
    case 1:
      for (uint64_t i = begin; i < end; ++i) {
        float v;
        std::memcpy(&v, data + 4 * i, 4);
        fn(i, static_cast<double>(v));
      }
      break;
    case 2:
      for (uint64_t i = begin; i < end; ++i) {
        uint16_t h;
        std::memcpy(&h, data + 2 * i, 2);
        fn(i, static_cast<double>(internal::HalfToFloat(h)));
      }
      break;
    case 3:
      for (uint64_t i = begin; i < end; ++i) {
        uint16_t h;
        std::memcpy(&h, data + 2 * i, 2);
        fn(i, static_cast<double>(internal::BFloat16ToFloat(h)));
      }
      break;
    default:
      for (uint64_t i = begin; i < end; ++i) {
        double v;
        std::memcpy(&v, data + 8 * i, 8);
        fn(i, v);
      }
  }
}

}  // namespace

double ElementAt(const uint8_t* data, int dtype, uint64_t i) {
  double out = 0.0;
  ForEach(data, dtype, i, i + 1, [&](uint64_t, double v) { out = v; });
  return out;
}

void Gather(const uint8_t* data, int dtype, const int64_t* positions, size_t count, double* out) {
  if (positions == nullptr) {
    ForEach(data, dtype, 0, count, [&](uint64_t i, double v) { out[i] = v; });
    return;
  }
  for (size_t i = 0; i < count; ++i) {
    const uint64_t at = static_cast<uint64_t>(positions[i]);
    switch (dtype) {
      case 1: {
        float v;
        std::memcpy(&v, data + 4 * at, 4);
        out[i] = v;
        break;
      }
      case 2:
      case 3: {
        uint16_t h;
        std::memcpy(&h, data + 2 * at, 2);
        out[i] = dtype == 2 ? internal::HalfToFloat(h) : internal::BFloat16ToFloat(h);
        break;
      }
      default:
        std::memcpy(out + i, data + 8 * at, 8);
    }
  }
}

namespace {

constexpr uint64_t kBlock = 1024;

// fn(values, count) over the elements [begin, end) widened to binary64, kBlock at a time: the
// per-element loops below then run on plain doubles (the compiler vectorises them).
template <typename Fn>
void ForBlocks(const uint8_t* data, int dtype, uint64_t begin, uint64_t end, Fn fn) {
  double buf[kBlock];
  for (uint64_t at = begin; at < end; at += kBlock) {
    const uint64_t stop = std::min(end, at + kBlock);
    ForEach(data, dtype, at, stop, [&](uint64_t i, double v) { buf[i - at] = v; });
    fn(buf, static_cast<size_t>(stop - at));
  }
}

}  // namespace

double MaxAbs(const uint8_t* data, int dtype, uint64_t n) {
  // max is exact in any order: eight running maxima (of the floats themselves for float32,
  // whose widening is exact and monotone)
  if (dtype == 1) {
    float m[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    float buf[kBlock];
    for (uint64_t at = 0; at < n; at += kBlock) {
      const size_t count = static_cast<size_t>(std::min<uint64_t>(kBlock, n - at));
      std::memcpy(buf, data + 4 * at, 4 * count);
      size_t i = 0;
      for (; i + 8 <= count; i += 8) {
        for (int j = 0; j < 8; ++j) {
          const float a = std::fabs(buf[i + j]);
          m[j] = a > m[j] ? a : m[j];
        }
      }
      for (; i < count; ++i) m[0] = std::max(m[0], std::fabs(buf[i]));
    }
    float top = 0;
    for (float v : m) top = std::max(top, v);
    return static_cast<double>(top);
  }
  double m[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  ForBlocks(data, dtype, 0, n, [&](const double* v, size_t count) {
    size_t i = 0;
    for (; i + 8 <= count; i += 8) {
      for (int j = 0; j < 8; ++j) {
        const double a = std::fabs(v[i + j]);
        m[j] = a > m[j] ? a : m[j];
      }
    }
    for (; i < count; ++i) m[0] = std::max(m[0], std::fabs(v[i]));
  });
  return std::max(std::max(std::max(m[0], m[1]), std::max(m[2], m[3])),
                  std::max(std::max(m[4], m[5]), std::max(m[6], m[7])));
}

FirstPass ReadInput(const uint8_t* data, int dtype, uint64_t n, const int64_t* positions,
                    size_t count, bool energy) {
  FirstPass out;
  out.sample.resize(positions ? count : static_cast<size_t>(n));
  double m[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  double acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  size_t next = 0;  // the next sample position
  double buf[kBlock];
  float fbuf[kBlock];
  for (uint64_t begin = 0; begin < n; begin += kBlock) {
    const uint64_t end = std::min(n, begin + kBlock);
    const size_t len = static_cast<size_t>(end - begin);
    if (dtype == 1 && !energy && positions) {
      // float32 without the energy: the range of the floats themselves (widening is exact
      // and monotone) and the few sample elements, no binary64 copy of the block
      std::memcpy(fbuf, data + 4 * begin, 4 * len);
      float f[8] = {0, 0, 0, 0, 0, 0, 0, 0};
      size_t i = 0;
      for (; i + 8 <= len; i += 8) {
        for (int j = 0; j < 8; ++j) {
          const float a = std::fabs(fbuf[i + j]);
          f[j] = a > f[j] ? a : f[j];
        }
      }
      for (; i < len; ++i) f[0] = std::max(f[0], std::fabs(fbuf[i]));
      for (int j = 0; j < 8; ++j) m[j] = std::max(m[j], static_cast<double>(f[j]));
      while (next < count && static_cast<uint64_t>(positions[next]) < end) {
        out.sample[next] = fbuf[positions[next] - static_cast<int64_t>(begin)];
        ++next;
      }
      continue;
    }
    ForEach(data, dtype, begin, end, [&](uint64_t i, double x) { buf[i - begin] = x; });
    const double* v = buf;
    size_t i = 0;
    for (; i + 8 <= len; i += 8) {
      for (int j = 0; j < 8; ++j) {
        const double a = std::fabs(v[i + j]);
        m[j] = a > m[j] ? a : m[j];
      }
    }
    for (; i < len; ++i) m[0] = std::max(m[0], std::fabs(v[i]));
    if (energy) {  // Energy's partial sums (its blocks start at the same multiples of kBlock)
      for (i = 0; i + 8 <= len; i += 8) {
        for (int j = 0; j < 8; ++j) acc[j] += v[i + j] * v[i + j];
      }
      for (; i < len; ++i) acc[0] += v[i] * v[i];
    }
    if (positions) {  // ascending positions: the sample is read while its block is at hand
      while (next < count && static_cast<uint64_t>(positions[next]) < end) {
        out.sample[next] = v[positions[next] - static_cast<int64_t>(begin)];
        ++next;
      }
    } else {
      std::memcpy(out.sample.data() + begin, v, len * 8);
    }
  }
  out.max_abs = std::max(std::max(std::max(m[0], m[1]), std::max(m[2], m[3])),
                         std::max(std::max(m[4], m[5]), std::max(m[6], m[7])));
  out.energy = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
  return out;
}

double Energy(const uint8_t* data, int dtype, uint64_t n) {
  // eight interleaved partial sums (a single running sum is bound by the adder's latency)
  double acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  ForBlocks(data, dtype, 0, n, [&](const double* v, size_t count) {
    size_t i = 0;
    for (; i + 8 <= count; i += 8) {
      for (int j = 0; j < 8; ++j) acc[j] += v[i + j] * v[i + j];
    }
    for (; i < count; ++i) acc[0] += v[i] * v[i];
  });
  return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
}

std::vector<double> PositionScores(const uint8_t* data, int dtype, uint64_t outer, uint64_t length,
                                   uint64_t inner) {
  std::vector<double> out(length, 0.0);
  if (dtype == 1 && inner == 1) {  // float32 rows: the same sums, without a block copy per row
    double* o = out.data();
    for (uint64_t a = 0; a < outer; ++a) {
      const uint8_t* row = data + 4 * a * length;
      for (uint64_t c = 0; c < length; ++c) {
        float v;
        std::memcpy(&v, row + 4 * c, 4);
        o[c] += std::fabs(static_cast<double>(v));
      }
    }
    return out;
  }
  for (uint64_t a = 0; a < outer; ++a) {
    const uint64_t row = a * length * inner;
    if (inner == 1) {  // rows added in order: NumPy's axis-0 sum
      ForBlocks(data, dtype, row, row + length,
                [&, at = row](const double* v, size_t count) mutable {
                  double* o = out.data() + (at - row);
                  for (size_t i = 0; i < count; ++i) o[i] += std::fabs(v[i]);
                  at += count;
                });
    } else {
      for (uint64_t c = 0; c < length; ++c) {
        double part = 0.0;
        const uint64_t at = row + c * inner;
        ForEach(data, dtype, at, at + inner, [&](uint64_t, double v) { part += std::fabs(v); });
        out[c] += part;
      }
    }
  }
  return out;
}

Model::Model(std::vector<double> sample, uint64_t n, double header_bytes)
    : sample_(std::move(sample)), n_(n), header_bytes_(header_bytes) {
  scale_ = sample_.empty() ? 0.0 : static_cast<double>(n) / static_cast<double>(sample_.size());
  std::vector<uint32_t, NoInit<uint32_t>> keys;
  if (SortSignedKeys(sample_, &keys)) {
    // the positives' keys, then the negatives' (sign bit set), each side ascending from its
    // zeros (+0 / −0): the sides' magnitudes are the keys without the sign bit, past the zeros
    const size_t count = keys.size();
    const size_t split =
        static_cast<size_t>(std::lower_bound(keys.begin(), keys.end(), 0x80000000u) - keys.begin());
    size_t pos_from = 0, neg_from = split;
    while (pos_from < split && keys[pos_from] == 0) ++pos_from;
    while (neg_from < count && keys[neg_from] == 0x80000000u) ++neg_from;
    zeros_ = static_cast<double>((pos_from - 0) + (neg_from - split));
    const size_t from[2] = {pos_from, neg_from}, to[2] = {split, count};
    for (int s = 0; s < 2; ++s) {
      Doubles& mags = sides_[s].mags;
      mags.resize(to[s] - from[s]);
      const uint32_t* k = keys.data() + from[s];
      for (size_t i = 0; i < mags.size(); ++i) {
        mags[i] = static_cast<double>(internal::BitsToFloat(k[i] & 0x7FFFFFFFu));
      }
    }
  } else {
    // split by sign without branches on the data: both sides written, one index advanced
    Doubles pos(sample_.size()), neg(sample_.size());
    size_t np = 0, nn = 0;
    for (double v : sample_) {
      pos[np] = v;
      neg[nn] = -v;
      np += v > 0 ? 1 : 0;
      nn += v < 0 ? 1 : 0;
    }
    zeros_ = static_cast<double>(sample_.size() - np - nn);
    pos.resize(np);
    neg.resize(nn);
    sides_[0].mags = std::move(pos);
    sides_[1].mags = std::move(neg);
    for (Side& side : sides_) SortMagnitudes(side.mags);
  }
  // The ascending magnitudes' prefix sums of m and m², both sides in one loop (four running
  // sums in registers, each still added in order: one side's two would wait on the adder).
  for (Side& side : sides_) {
    side.s1.resize(side.mags.size() + 1);
    side.s2.resize(side.mags.size() + 1);
    side.s1[0] = 0.0, side.s2[0] = 0.0;
  }
  {
    const double* m0 = sides_[0].mags.data();
    const double* m1 = sides_[1].mags.data();
    double* p1 = sides_[0].s1.data() + 1;
    double* p2 = sides_[0].s2.data() + 1;
    double* q1 = sides_[1].s1.data() + 1;
    double* q2 = sides_[1].s2.data() + 1;
    const size_t n0 = sides_[0].mags.size(), n1 = sides_[1].mags.size();
    const size_t both = std::min(n0, n1);
    double a0 = 0.0, b0 = 0.0, a1 = 0.0, b1 = 0.0;
    size_t i = 0;
    for (; i < both; ++i) {
      const double u = m0[i], v = m1[i];
      a0 += u, b0 += u * u, a1 += v, b1 += v * v;
      p1[i] = a0, p2[i] = b0, q1[i] = a1, q2[i] = b1;
    }
    for (size_t j = i; j < n0; ++j) a0 += m0[j], b0 += m0[j] * m0[j], p1[j] = a0, p2[j] = b0;
    for (size_t j = i; j < n1; ++j) a1 += m1[j], b1 += m1[j] * m1[j], q1[j] = a1, q2[j] = b1;
  }
  std::vector<std::pair<int, double>> by_exponent;
  for (Side& side : sides_) {
    // One integer pass over the magnitudes' bit patterns: a run per binary exponent (pushed
    // where the exponent changes) and the key index of Below.
    const Doubles& mags = side.mags;
    const size_t size = mags.size();
    if (size == 0) continue;
    const int64_t lo = KeyOf(mags.front()), hi = KeyOf(mags.back());
    const bool keyed = hi - lo < 4096;
    if (keyed) {
      side.key_min = lo;
      side.first.assign(static_cast<size_t>(hi - lo + 2), 0);
    }
    uint32_t* first = keyed ? side.first.data() : nullptr;
    size_t k = 0;  // key index entries up to k are set
    int run_exponent = 0;
    size_t run_start = 0;
    for (size_t i = 0; i < size; ++i) {
      uint64_t bits;
      std::memcpy(&bits, &mags[i], 8);
      const int field = static_cast<int>((bits >> 52) & 0x7FF);
      const int e = field ? field - 1023 : -1100;  // subnormal: below any exponent that counts
      if (i == 0) {
        run_exponent = e;
      } else if (e != run_exponent) {
        by_exponent.emplace_back(run_exponent, static_cast<double>(i - run_start));
        run_exponent = e, run_start = i;
      }
      if (keyed) {
        const size_t key = static_cast<size_t>(static_cast<int64_t>(bits >> 48) - lo);
        while (k < key) first[++k] = static_cast<uint32_t>(i);
      }
    }
    by_exponent.emplace_back(run_exponent, static_cast<double>(size - run_start));
    if (keyed) {
      while (k + 1 < side.first.size()) first[++k] = static_cast<uint32_t>(size);
    }
  }
  exponents_ = std::move(by_exponent);
}

size_t Model::Below(const Side& side, size_t from, double x) {
  const Doubles& v = side.mags;
  const size_t n = v.size();
  if (!(x > 0)) return from;  // every magnitude is positive
  const int64_t k = KeyOf(x) - side.key_min;
  if (k < 0) return from;  // x below every key of the side: nothing below x
  if (k + 1 >= static_cast<int64_t>(side.first.size())) return n;  // above every key
  // [0, first[k]) have smaller keys (below x); from first[k + 1] on larger keys (not below)
  const size_t lo = std::max<size_t>(from, side.first[k]);
  const size_t hi = std::max<size_t>(lo, side.first[k + 1]);
  return static_cast<size_t>(std::lower_bound(v.begin() + static_cast<ptrdiff_t>(lo),
                                              v.begin() + static_cast<ptrdiff_t>(hi), x) -
                             v.begin());
}

// A lower bound of the predicted size at `step`, any rho, from the exponents alone: an
// element with floor(log2 |x|) = E and step < 2^k reaches at least bin 4(E − k) − 4 (the bin whose
// base is 2^(E−k): its edge (2^(E−k) − ρ)·Δ rounds to at most 2^E <= |x|), whose extra bits are
// E − k − 2; the entropy is >= 0 (its computed value >= −1e-3 bits), the tables >= 1 byte. Every
// operation below is Predict's on smaller or equal operands, so it rounds to no more.
double Model::SizeBelow(double step) const {
  int k;
  std::frexp(step, &k);  // step < 2^k
  double extra = 0.0;
  for (const auto& [e, count] : exponents_) {
    if (e - k - 2 > 0) extra += count * static_cast<double>(e - k - 2);
  }
  const double chunks = static_cast<double>((n_ + 16383) / 16384);
  const double bits = extra - 1e-3;
  return header_bytes_ + 1.0 + 4 + 6 * chunks + bits * scale_ / 8.0 * 1.002;
}

// An upper bound of the predicted squared error at `step`, any rho: bin 0 holds only
// magnitudes below (1 − ρ)·Δ <= Δ (their squares: the prefix sum up to Δ bounds them); every
// other element adds at most Δ²/4 (a centroid bin of width Δ; wide bins add Δ²/12), with room
// for the rounding of the centroid terms' cancellation (2^-52 of 64Δ² per element).
double Model::SquaredErrorAbove(double step) const {
  double sum = 0.0, others = 0.0;
  for (const Side& side : sides_) {
    const size_t below = CountBelow(side.mags, 0, step);
    sum += side.s2[below];
    others += static_cast<double>(side.mags.size());
  }
  return (sum * (1 + 1e-12) + others * step * step * 0.2501) * scale_ * (1 + 1e-12);
}

double Model::Counts(double step, double rho, double* sym, int* used, Hint* hint) const {
  std::fill(sym, sym + kSymbols, 0.0);
  double sse = 0.0;
  int top_symbol = 0;  // one past the last symbol with a count
  sym[0] = zeros_;
  for (int s = 0; s < 2; ++s) {
    const Side& side = sides_[s];
    const size_t size = side.mags.size();
    const double top = size ? side.mags.back() : -1.0;
    // idx[b]: magnitudes below edge b, edge b = max(base_b − ρ, 0)·Δ (edge 0 = 0)
    size_t own[kBins + 1];
    size_t* idx = hint ? hint->idx[s] : own;
    const bool near = hint && hint->valid;
    idx[0] = CountBelow(side.mags, 0, 0.0);
    const bool keyed = !side.first.empty();
    int last = 0;  // the last bin index computed (beyond it every count is `size`)
    for (int b = 1; b <= kBins; ++b) {
      const double edge = std::max(kTable.base[b] - rho, 0.0) * step;
      idx[b] = keyed  ? Below(side, idx[b - 1], edge)
               : near ? CountBelowNear(side.mags, idx[b - 1], idx[b], edge)
                      : CountBelow(side.mags, idx[b - 1], edge);
      last = b;
      if (edge > top) break;  // every magnitude lies below this edge
    }
    for (int b = last + 1; b <= kBins; ++b) idx[b] = size;
    // bin 0 decodes to 0; bins 1..7 to their centroid; wider bins: uniform error step²/12
    double mid = 0.0;
    for (int b = 1; b < 8; ++b) {
      const size_t c = idx[b + 1] - idx[b];
      if (c > 0) {
        const double sa = side.s1[idx[b + 1]] - side.s1[idx[b]];
        const double sa2 = side.s2[idx[b + 1]] - side.s2[idx[b]];
        mid += sa2 - sa * sa / static_cast<double>(c);
      }
    }
    const double wide = static_cast<double>(size - idx[8]) * step * step / 12.0;
    sse += side.s2[idx[1]] - side.s2[idx[0]];
    sse += mid;
    sse += wide;
    sym[0] += static_cast<double>(idx[1] - idx[0]);
    for (int b = 1; b < kBins && b < last + 1; ++b) {
      const size_t c = idx[b + 1] - idx[b];
      if (c == 0) continue;
      const int symbol = 2 * b - 1 + s;
      sym[symbol] = static_cast<double>(c);
      top_symbol = std::max(top_symbol, symbol + 1);
    }
  }
  if (sym[0] > 0) top_symbol = std::max(top_symbol, 1);
  *used = top_symbol;
  if (hint) hint->valid = true;
  return sse;
}

void Model::Predict(const double* steps, const double* rho_256, size_t count, double* size,
                    double* sse) const {
  for (size_t i = 0; i < count; ++i) PredictOne(steps[i], rho_256[i], size + i, sse + i, nullptr);
}

void Model::PredictOne(double step, double rho_256, double* size, double* sse, Hint* hint) const {
  const double chunks = static_cast<double>((n_ + 16383) / 16384);
  const double* xl = XLogXTable();
  double sym[kSymbols];
  {
    double bits = 0.0, table = 0.0, err = 0.0;
    if (sample_.empty()) {
      table = 1.0;
    } else {
      int used = 0;
      err = Counts(step, rho_256 / 256.0, sym, &used, hint);
      // Σ c·log2(c / total) = Σ c·log2 c − total·log2 total (counts are integers). The total
      // and the extra bits are sums of integers below 2^53: exact in int64, the same values as
      // the binary64 running sums (which waited on the adder for every one of `used` symbols);
      // Σ c·log2 c keeps its order.
      int64_t total_count = 0, extra_bits = 0;
      double xlogx = 0.0;
      for (int j = 0; j < used; ++j) {
        const int64_t c = static_cast<int64_t>(sym[j]);
        total_count += c;
        extra_bits += c * kTable.nbits[(j + 1) / 2];  // symbol 0 (bin 0): no extra bits
        if (c > 0) xlogx += XLogX(xl, c);
      }
      const double total = static_cast<double>(total_count);
      const double entropy = total > 0 ? xlogx - XLogX(xl, total_count) : 0.0;
      const double extra = static_cast<double>(extra_bits);
      bits = -entropy + extra;
      table = static_cast<double>(TableBytes(used));
    }
    *size = header_bytes_ + table + 4 + 6 * chunks + bits * scale_ / 8.0 * 1.002;
    *sse = err * scale_;
  }
}

std::vector<double> Model::Boundary(const std::vector<int>& rhos, double lo, double hi,
                                    bool on_size, double threshold, bool large_ok) const {
  constexpr int kGrid = 17;
  constexpr double kTolerance = 1e-3;
  const size_t r = rhos.size();
  std::vector<double> result(r, 0.0);
  double grid[kGrid];
  signed char good[kGrid];  // -1: not predicted yet
  for (size_t j = 0; j < r; ++j) {
    const double rho = rhos[j];
    Hint hint;  // the last prediction's counts: the next grid point's search starts there
    double lo_j = lo, hi_j = hi;
    bool done = false;
    // Each round halves the bracket [0, 16] of grid points by bisection (the ends first: where
    // the predicate holds at the small end (large_ok) or fails there (!large_ok) the boundary
    // lies at or beyond that end), four predictions a round instead of a scan up to the
    // deciding point; a point is settled by a bound where one decides it. The NumPy model
    // (_boundary) bisects its predicted grid the same way: the same points, the same answer.
    auto ok = [&](int i) {
      if (good[i] < 0) {
        const double step = std::pow(2.0, grid[i]);
        // settled by a bound (small steps, where a prediction costs most): the same answer
        if (on_size && SizeBelow(step) > threshold) return (good[i] = 0) == 1;
        if (!on_size && SquaredErrorAbove(step) <= threshold) return (good[i] = 1) == 1;
        double size, sse;
        PredictOne(step, rho, &size, &sse, &hint);
        good[i] = (on_size ? size : sse) <= threshold ? 1 : 0;
      }
      return good[i] == 1;
    };
    // The previous round's answers at the ends of the new range (lo_j and hi_j were its grid
    // points, both predicted): a new grid point equal to one of them (the first always, the last
    // often) takes its answer, the same prediction of the same step.
    signed char lo_good = -1, hi_good = -1;
    for (int round = 0; round < 8 && !done; ++round) {
      for (int i = 0; i < kGrid; ++i) {
        grid[i] = lo_j + (hi_j - lo_j) * (i * 0.0625);
        good[i] = -1;
      }
      if (round > 0) {
        if (grid[0] == lo_j) good[0] = lo_good;
        if (grid[kGrid - 1] == hi_j) good[kGrid - 1] = hi_good;
      }
      // the end where the predicate is expected to fail first: holding there, the boundary is
      // that end; then the other end: failing there too, no point holds
      if (ok(large_ok ? 0 : kGrid - 1)) {
        result[j] = grid[large_ok ? 0 : kGrid - 1], done = true;
        break;
      }
      if (!ok(large_ok ? kGrid - 1 : 0)) {
        result[j] = large_ok ? hi_j : lo_j, done = true;
        break;
      }
      // bisection of [a, b]: the predicate fails at a and holds at b (large_ok), or the reverse
      int a = 0, b = kGrid - 1;
      while (b - a > 1) {
        const int m = (a + b) / 2;
        (ok(m) == large_ok ? b : a) = m;
      }
      lo_j = grid[a];
      hi_j = grid[b];
      lo_good = good[a];
      hi_good = good[b];
      if (hi_j - lo_j < kTolerance) {
        result[j] = large_ok ? hi_j : lo_j;
        done = true;
      }
    }
    if (!done) result[j] = large_ok ? hi_j : lo_j;
  }
  return result;
}

#ifdef SLICER_RATE_AVX2
namespace {

// Model::Symbols of count elements, four at a time (count a multiple of 4): the same binary64
// division, addition and floor (exact), the same bit fields of m, in 64-bit lanes packed to 32.
__attribute__((target("avx2"))) void SymbolsAvx2(const double* x, size_t count, double step,
                                                 double rho, int32_t* out) {
  const __m256d sign = _mm256_set1_pd(-0.0), stepv = _mm256_set1_pd(step);
  const __m256d rhov = _mm256_set1_pd(rho), four = _mm256_set1_pd(4.0);
  const __m256d zero = _mm256_setzero_pd();
  const __m256i low = _mm256_setr_epi32(0, 2, 4, 6, 0, 2, 4, 6);
  const __m256i bias = _mm256_set1_epi64x(4096), three = _mm256_set1_epi64x(3);
  for (size_t i = 0; i < count; i += 4) {
    const __m256d v = _mm256_loadu_pd(x + i);
    const __m256d q = _mm256_add_pd(_mm256_div_pd(_mm256_andnot_pd(sign, v), stepv), rhov);
    const __m256d m = _mm256_floor_pd(q);
    const __m256i bits = _mm256_castpd_si256(m);
    // 4·(E − 1023) − 4 + the two bits below the leading one = 4·E + t − 4096
    const __m256i wide =
        _mm256_sub_epi64(_mm256_add_epi64(_mm256_slli_epi64(_mm256_srli_epi64(bits, 52), 2),
                                          _mm256_and_si256(_mm256_srli_epi64(bits, 50), three)),
                         bias);
    const __m128i wide32 = _mm256_castsi256_si128(_mm256_permutevar8x32_epi32(wide, low));
    const __m128i small32 = _mm256_cvttpd_epi32(_mm256_min_pd(m, four));
    const __m128i is_small = _mm256_castsi256_si128(
        _mm256_permutevar8x32_epi32(_mm256_castpd_si256(_mm256_cmp_pd(m, four, _CMP_LT_OQ)), low));
    const __m128i negative = _mm256_castsi256_si128(
        _mm256_permutevar8x32_epi32(_mm256_castpd_si256(_mm256_cmp_pd(v, zero, _CMP_LT_OQ)), low));
    const __m128i b = _mm_blendv_epi8(wide32, small32, is_small);
    // 2b − 1 + (x < 0): `negative` is −1 where x < 0
    const __m128i symbol =
        _mm_sub_epi32(_mm_sub_epi32(_mm_add_epi32(b, b), _mm_set1_epi32(1)), negative);
    const __m128i none = _mm_cmpeq_epi32(b, _mm_setzero_si128());
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out + i), _mm_andnot_si128(none, symbol));
  }
}

}  // namespace
#endif

std::vector<int32_t> Model::Symbols(double step, int rho_256) const {
  std::vector<int32_t> out(sample_.size());
  const double rho = rho_256 / 256.0;
  size_t start = 0;
#ifdef SLICER_RATE_AVX2
  if (dense::SimdWanted()) {
    start = sample_.size() & ~size_t{3};
    SymbolsAvx2(sample_.data(), start, step, rho, out.data());
  }
#endif
  for (size_t i = start; i < sample_.size(); ++i) {
    const double x = sample_[i];
    const double q = std::fabs(x) / step + rho;  // >= 0: truncation is floor below 2^62
    const double m = q < 4.6e18 ? static_cast<double>(static_cast<int64_t>(q)) : std::floor(q);
    // masks, not branches (the data decide both tests at random; the compiler kept jumps
    // for the conditional expressions)
    int64_t pattern;
    std::memcpy(&pattern, &m, 8);
    const int64_t wide = 4 * ((pattern >> 52) - 1023) - 4 + ((pattern >> 50) & 3);
    const int64_t small = -static_cast<int64_t>(m < 4);  // all ones when m < 4
    const int64_t b = (static_cast<int64_t>(std::min(m, 4.0)) & small) | (wide & ~small);
    const int64_t symbol = 2 * b - 1 + static_cast<int64_t>(x < 0);
    out[i] = static_cast<int32_t>(symbol & -static_cast<int64_t>(b != 0));
  }
  return out;
}

std::vector<int64_t> ClassHistogram(const int32_t* sym, const int64_t* cls, size_t count, int k) {
  std::vector<int64_t> hist(static_cast<size_t>(k) * kSymbols, 0);
  for (size_t i = 0; i < count; ++i) ++hist[static_cast<size_t>(cls[i]) * kSymbols + sym[i]];
  return hist;
}

double HistogramBits(const int64_t* hist, int k, int64_t* table_bytes) {
  double acc = 0.0;
  int64_t tables = 0;
  const double* xl = XLogXTable();
  for (int c = 0; c < k; ++c) {
    const int64_t* row = hist + static_cast<size_t>(c) * kSymbols;
    int64_t total = 0, last = 0;
    for (int s = 0; s < kSymbols; ++s) {
      total += row[s];
      if (row[s] > 0) last = s + 1;
    }
    // Σ h·log2(h / total) = Σ h·log2 h − total·log2 total (counts are integers)
    double xlogx = 0.0;
    for (int s = 0; s < kSymbols; ++s) {
      if (row[s] > 0) xlogx += XLogX(xl, row[s]);
    }
    if (total > 0) acc += xlogx - XLogX(xl, total);
    tables += TableBytes(last);
  }
  *table_bytes = tables;
  return -acc;
}

std::vector<std::pair<double, int64_t>> RankClassBits(const int32_t* sym, const int64_t* rank,
                                                      size_t count, int64_t length,
                                                      const std::vector<int>& ks) {
  std::vector<std::pair<double, int64_t>> out;
  std::vector<int64_t> cls(count);
  int top = 1;
  for (int k : ks) top = std::max(top, k);
  // class of each rank through a table of the `length` ranks (a 64-bit division per element
  // cost more than the rest of the pass); a huge axis divides per element instead
  std::vector<int64_t> of_rank;
  auto classes = [&](int k) {
    if (static_cast<size_t>(length) <= 4 * count) {
      of_rank.resize(static_cast<size_t>(length));
      for (int64_t r = 0; r < length; ++r) of_rank[r] = r * k / length;
      for (size_t i = 0; i < count; ++i) cls[i] = of_rank[rank[i]];
    } else {
      for (size_t i = 0; i < count; ++i) cls[i] = rank[i] * k / length;
    }
  };
  classes(top);
  const std::vector<int64_t> hist_top = ClassHistogram(sym, cls.data(), count, top);
  for (int k : ks) {
    std::vector<int64_t> hist;
    if (top % k == 0) {  // class ⌊K·r/L⌋ is class ⌊top·r/L⌋ div (top / K): merge rows
      hist.assign(static_cast<size_t>(k) * kSymbols, 0);
      for (int c = 0; c < top; ++c) {
        int64_t* to = hist.data() + static_cast<size_t>(c / (top / k)) * kSymbols;
        const int64_t* from = hist_top.data() + static_cast<size_t>(c) * kSymbols;
        for (int q = 0; q < kSymbols; ++q) to[q] += from[q];
      }
    } else {
      classes(k);
      hist = ClassHistogram(sym, cls.data(), count, k);
    }
    int64_t tables = 0;
    const double bits = HistogramBits(hist.data(), k, &tables);
    out.emplace_back(bits, tables);
  }
  return out;
}

namespace {

// The §18.4 dynamic programme of BestBounds on the sample's histogram per grid cell: `hist`
// holds `cells` rows of `u` counts, column q counting symbol symbol_of[q] (ascending in q).
std::vector<BoundsChoice> BoundsFromCells(const int64_t* hist, int64_t cells, int u,
                                          const int* symbol_of, int64_t g, int64_t length,
                                          const std::vector<int>& ks, double scale) {
  std::vector<BoundsChoice> out(ks.size(), BoundsChoice{-1.0, {}});
  // Nonzero (column, count) entries of each cell, in symbol order: cell c's entries are
  // [first[c], first[c + 1]) of col / cnt.
  std::vector<int32_t> col;
  std::vector<int64_t> cnt;
  std::vector<size_t> first(static_cast<size_t>(cells) + 1, 0);
  std::vector<int64_t> cell_total(static_cast<size_t>(cells), 0);
  for (int64_t c = 0; c < cells; ++c) {
    const int64_t* row = hist + static_cast<size_t>(c) * u;
    for (int q = 0; q < u; ++q) {
      if (row[q]) col.push_back(q), cnt.push_back(row[q]), cell_total[c] += row[q];
    }
    first[c + 1] = col.size();
  }
  const double inf = std::numeric_limits<double>::infinity();
  const size_t w = static_cast<size_t>(cells + 1);
  std::vector<double> cost(w * w, inf);  // cost[i·w + j]: segment [i, j) of cells
  std::vector<int64_t> seg(static_cast<size_t>(u));
  const double* xl = XLogXTable();
  int64_t all = 0;
  for (int64_t t : cell_total) all += t;
  // Every count a segment reaches is at most `all`: below the table's end (a sample of at most
  // 2^15 elements), the lookups need no range check (the same values).
  auto segments = [&](auto in_table) {
    auto xlogx_of = [&](int64_t v) {
      if constexpr (decltype(in_table)::value) {
        return xl[v];
      } else {
        return XLogX(xl, v);
      }
    };
    for (int64_t i = 0; i < cells; ++i) {
      // segment [i, j) grown one cell at a time: only the symbols of cell j − 1 change
      std::fill(seg.begin(), seg.end(), 0);
      int64_t total = 0, last = 0;
      double xlogx = 0.0;  // Σ_s seg_s·log2 seg_s
      for (int64_t j = i + 1; j <= cells; ++j) {
        // the cell's change of Σ seg·log2 seg in four partial sums (one running sum would wait
        // on the adder's latency for every symbol): the cell's entry e adds to d_(e mod 4)
        const size_t from = first[j - 1], to = first[j];
        auto change = [&](size_t q) {
          const int32_t symbol = col[q];
          const int64_t add = cnt[q], before = seg[symbol];
          seg[symbol] = before + add;
          return xlogx_of(before + add) - xlogx_of(before);
        };
        double d0 = 0, d1 = 0, d2 = 0, d3 = 0;
        size_t q = from;
        for (; q + 4 <= to; q += 4) {
          d0 += change(q);
          d1 += change(q + 1);
          d2 += change(q + 2);
          d3 += change(q + 3);
        }
        if (q < to) d0 += change(q++);
        if (q < to) d1 += change(q++);
        if (q < to) d2 += change(q++);
        total += cell_total[j - 1];
        if (to > from) last = std::max<int64_t>(last, symbol_of[col[to - 1]] + 1);
        xlogx += (d0 + d1) + (d2 + d3);
        const double bits = (total > 0 ? XLogX(xl, total) : 0.0) - xlogx;
        double c = bits * scale / 8.0 * 1.002 + static_cast<double>(TableBytes(last));
        if (j < cells) {  // a range that ends before L ends at a boundary: its gap's varint
          uint64_t gap = static_cast<uint64_t>((j - i) * g);
          int bitlen = 0;
          while (gap) ++bitlen, gap >>= 1;
          c = c + static_cast<double>(std::max(1, (bitlen + 6) / 7));
        }
        cost[i * w + j] = c;
      }
    }
  };
  if (all < kXLogXTable) {
    segments(std::true_type{});
  } else {
    segments(std::false_type{});
  }
  int top = 0;
  for (int k : ks) {
    if (k <= cells) top = std::max(top, k);
  }
  if (top == 0) return out;
  std::vector<double> best(cost.begin(), cost.begin() + w), next(w);
  std::vector<std::vector<int64_t>> back;
  for (int c = 1; c < top; ++c) {
    // next[j] = min_i best[i] + cost[i, j], the first i on ties (NumPy's argmin)
    std::vector<int64_t> arg(w, 0);
    for (size_t j = 0; j < w; ++j) next[j] = best[0] + cost[j];
    for (size_t i = 1; i < w; ++i) {
      const double bi = best[i];
      if (!(bi < inf)) continue;  // cells [0, i) unreachable: every candidate is infinite
      const double* row = cost.data() + i * w;
      for (size_t j = i + 1; j < w; ++j) {  // cost[i, j] is infinite for j <= i
        const double cand = bi + row[j];
        const bool less = cand < next[j];
        next[j] = less ? cand : next[j];
        arg[j] = less ? static_cast<int64_t>(i) : arg[j];
      }
    }
    back.push_back(std::move(arg));
    best.swap(next);
    const int k = c + 1;
    for (size_t q = 0; q < ks.size(); ++q) {
      if (ks[q] != k || !std::isfinite(best[cells])) continue;
      std::vector<int64_t> cuts;
      int64_t j = cells;
      for (auto it = back.rbegin(); it != back.rend(); ++it) {
        j = (*it)[j];
        cuts.push_back(std::min(length - 1, j * g));
      }
      std::sort(cuts.begin(), cuts.end());
      out[q] = BoundsChoice{best[cells], std::move(cuts)};
    }
  }
  return out;
}

}  // namespace

std::vector<BoundsChoice> BestBounds(const int64_t* pos, const int32_t* sym, size_t count,
                                     int64_t length, const std::vector<int>& ks, double scale) {
  if (length <= 0 || ks.empty())
    return std::vector<BoundsChoice>(ks.size(), BoundsChoice{-1.0, {}});
  const int64_t g = (length + kBoundsGrid - 1) / kBoundsGrid;
  const int64_t cells = (length + g - 1) / g;
  std::vector<int64_t> hist(static_cast<size_t>(cells) * kSymbols, 0);
  if (g == 1) {
    for (size_t i = 0; i < count; ++i) ++hist[static_cast<size_t>(pos[i]) * kSymbols + sym[i]];
  } else {
    const uint64_t ug = static_cast<uint64_t>(g);
    for (size_t i = 0; i < count; ++i)
      ++hist[static_cast<size_t>(static_cast<uint64_t>(pos[i]) / ug) * kSymbols + sym[i]];
  }
  int identity[kSymbols];
  for (int q = 0; q < kSymbols; ++q) identity[q] = q;
  return BoundsFromCells(hist.data(), cells, kSymbols, identity, g, length, ks, scale);
}

namespace {

// HistogramBits of `k` rows of `u` columns, column q counting symbol symbol_of[q] (ascending):
// the same sums in the same order as over the 423 symbols (absent symbols add nothing).
double CompactBits(const int64_t* hist, int k, int u, const int* symbol_of, int64_t* table_bytes) {
  double acc = 0.0;
  int64_t tables = 0;
  const double* xl = XLogXTable();
  for (int c = 0; c < k; ++c) {
    const int64_t* row = hist + static_cast<size_t>(c) * u;
    int64_t total = 0, last = 0;
    double xlogx = 0.0;
    for (int q = 0; q < u; ++q) {
      total += row[q];
      if (row[q] > 0) {
        last = symbol_of[q] + 1;
        xlogx += XLogX(xl, row[q]);
      }
    }
    if (total > 0) acc += xlogx - XLogX(xl, total);
    tables += TableBytes(last);
  }
  *table_bytes = tables;
  return -acc;
}

// ⌊a / d⌋ for d ≥ 1 with `inv` = 1 / d: the binary64 product is within a few ulps of a / d, so
// for a < 2^50 its floor is the quotient or one off, which one comparison each way corrects
// (a 64-bit division per sample element cost more than the rest of the class search).
inline uint64_t DivFloor(uint64_t a, uint64_t d, double inv) {
  if (a >= (uint64_t{1} << 50)) return a / d;
  uint64_t q = static_cast<uint64_t>(static_cast<double>(a) * inv);
  if (q * d > a) {
    --q;
  } else if ((q + 1) * d <= a) {
    ++q;
  }
  return q;
}

// out[i] = (at / inner) mod length of each sample element's flat index `at` (positions[i], or
// i when `positions` is null): the same integers as the two divisions, without dividing per
// element.
void PositionsAlong(const int64_t* positions, size_t count, uint64_t length, uint64_t inner,
                    int64_t* out) {
  if (!positions) {  // consecutive indices: position a for `inner` elements, a = 0 … L − 1, …
    size_t i = 0;
    while (i < count) {
      for (uint64_t a = 0; a < length && i < count; ++a) {
        const size_t end = static_cast<size_t>(std::min<uint64_t>(count, i + inner));
        for (; i < end; ++i) out[i] = static_cast<int64_t>(a);
      }
    }
    return;
  }
  const double inv_inner = 1.0 / static_cast<double>(inner);
  const double inv_length = 1.0 / static_cast<double>(length);
  for (size_t i = 0; i < count; ++i) {
    const uint64_t q = DivFloor(static_cast<uint64_t>(positions[i]), inner, inv_inner);
    out[i] = static_cast<int64_t>(q - DivFloor(q, length, inv_length) * length);
  }
}

// Ranks of the positions by score, ties to the lower index (NumPy's lexsort((arange, scores))).
std::vector<int64_t> RankOf(const std::vector<double>& scores) {
  std::vector<int64_t> order(scores.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = static_cast<int64_t>(i);
  std::stable_sort(order.begin(), order.end(),
                   [&](int64_t a, int64_t b) { return scores[a] < scores[b]; });
  std::vector<int64_t> rank(scores.size());
  for (size_t r = 0; r < order.size(); ++r) rank[order[r]] = static_cast<int64_t>(r);
  return rank;
}

}  // namespace

ClassChoice ClassSearch(const Model& model, const int64_t* positions, const uint8_t* data,
                        int dtype, double step, int rho_256, const std::vector<ClassPlan>& plans) {
  ClassChoice best;
  if (plans.empty()) return best;
  const size_t count = model.sample().size();
  const double scale = model.scale();
  const std::vector<int32_t> sym = model.Symbols(step, rho_256);
  // the symbols the sample holds, numbered densely in ascending order
  // (the counts in four histograms, element i to histogram i mod 4: one histogram's
  // increments of a repeated symbol would wait on each other)
  int64_t counts[4][kSymbols] = {};
  {
    size_t i = 0;
    for (; i + 4 <= count; i += 4) {
      ++counts[0][sym[i]], ++counts[1][sym[i + 1]], ++counts[2][sym[i + 2]];
      ++counts[3][sym[i + 3]];
    }
    for (; i < count; ++i) ++counts[0][sym[i]];
  }
  int id_of[kSymbols];
  int symbol_of[kSymbols];
  std::vector<int64_t> one;
  int u = 0;
  for (int v = 0; v < kSymbols; ++v) {
    const int64_t c = counts[0][v] + counts[1][v] + counts[2][v] + counts[3][v];
    if (c) id_of[v] = u, symbol_of[u++] = v, one.push_back(c);
  }
  if (one.empty()) one.push_back(0);
  std::vector<int32_t> cid(count);
  for (size_t i = 0; i < count; ++i) cid[i] = id_of[sym[i]];
  int64_t tables = 0;
  double bits = CompactBits(one.data(), 1, u, symbol_of, &tables);
  const double base = bits * scale / 8.0 * 1.002 + static_cast<double>(tables);
  // position along each plan's axis of every sample element, per (length, inner)
  std::vector<int64_t> pos(count);
  uint64_t pos_length = 0, pos_inner = 0;
  std::vector<int64_t> hist_pos;  // (position, column) counts when the axis is short
  for (size_t p = 0; p < plans.size(); ++p) {
    const ClassPlan& plan = plans[p];
    const uint64_t length = plan.length;
    if (length != pos_length || plan.inner != pos_inner) {
      PositionsAlong(positions, count, length, plan.inner, pos.data());
      pos_length = length, pos_inner = plan.inner;
      hist_pos.clear();
      if (length * static_cast<uint64_t>(u) <= 2 * count + 4096) {
        // two histograms (even and odd elements), summed: integers, the same counts
        const size_t cells = length * static_cast<size_t>(u);
        hist_pos.assign(2 * cells, 0);
        int64_t* h0 = hist_pos.data();
        int64_t* h1 = h0 + cells;
        size_t i = 0;
        for (; i + 2 <= count; i += 2) {
          ++h0[static_cast<size_t>(pos[i]) * u + cid[i]];
          ++h1[static_cast<size_t>(pos[i + 1]) * u + cid[i + 1]];
        }
        if (i < count) ++h0[static_cast<size_t>(pos[i]) * u + cid[i]];
        for (size_t c = 0; c < cells; ++c) h0[c] += h1[c];
        hist_pos.resize(cells);
      }
    }
    const bool by_position = !hist_pos.empty();
    if (plan.kind == 2) {  // §18.4: contiguous ranges of positions, boundaries estimated
      std::vector<BoundsChoice> est;
      if (by_position) {
        const uint64_t g = (length + kBoundsGrid - 1) / kBoundsGrid;
        const uint64_t cells = (length + g - 1) / g;
        std::vector<int64_t> hist(cells * static_cast<size_t>(u), 0);
        for (uint64_t a = 0; a < length; ++a) {
          int64_t* to = hist.data() + (a / g) * u;
          const int64_t* from = hist_pos.data() + a * u;
          for (int q = 0; q < u; ++q) to[q] += from[q];
        }
        est =
            BoundsFromCells(hist.data(), static_cast<int64_t>(cells), u, symbol_of,
                            static_cast<int64_t>(g), static_cast<int64_t>(length), plan.ks, scale);
      } else {
        est =
            BestBounds(pos.data(), sym.data(), count, static_cast<int64_t>(length), plan.ks, scale);
      }
      for (size_t q = 0; q < plan.ks.size(); ++q) {
        if (est[q].bytes < 0) continue;
        const double cost = est[q].bytes + 2;
        if (base - cost > best.saving) {
          best.k = plan.ks[q], best.plan = p, best.saving = base - cost;
          best.bounds = est[q].bounds;
        }
      }
      continue;
    }
    std::vector<int64_t> rank;  // kind 0: positions ranked by Σ|x| over the whole input
    if (plan.kind == 0) {
      rank = RankOf(PositionScores(data, dtype, plan.outer, length, plan.inner));
    }
    std::vector<std::pair<double, int64_t>> found;
    if (by_position) {
      // class ⌊K·rank / L⌋ of each position; rows of K that divide the largest merged from it
      int top = 1;
      for (int k : plan.ks) top = std::max(top, k);
      auto histogram = [&](int k) {
        std::vector<int64_t> hist(static_cast<size_t>(k) * u, 0);
        for (uint64_t a = 0; a < length; ++a) {
          const uint64_t r = rank.empty() ? a : static_cast<uint64_t>(rank[a]);
          int64_t* to = hist.data() + (r * static_cast<uint64_t>(k) / length) * u;
          const int64_t* from = hist_pos.data() + a * u;
          for (int q = 0; q < u; ++q) to[q] += from[q];
        }
        return hist;
      };
      const std::vector<int64_t> hist_top = histogram(top);
      for (int k : plan.ks) {
        std::vector<int64_t> hist;
        if (top % k == 0) {
          hist.assign(static_cast<size_t>(k) * u, 0);
          for (int c = 0; c < top; ++c) {
            int64_t* to = hist.data() + static_cast<size_t>(c / (top / k)) * u;
            const int64_t* from = hist_top.data() + static_cast<size_t>(c) * u;
            for (int q = 0; q < u; ++q) to[q] += from[q];
          }
        } else {
          hist = histogram(k);
        }
        int64_t t = 0;
        const double b = CompactBits(hist.data(), k, u, symbol_of, &t);
        found.emplace_back(b, t);
      }
    } else {
      std::vector<int64_t> ranked(count);
      for (size_t i = 0; i < count; ++i) ranked[i] = rank.empty() ? pos[i] : rank[pos[i]];
      found =
          RankClassBits(sym.data(), ranked.data(), count, static_cast<int64_t>(length), plan.ks);
    }
    for (size_t q = 0; q < plan.ks.size(); ++q) {
      double cost = found[q].first * scale / 8.0 * 1.002;
      cost += static_cast<double>(found[q].second) + 2 + static_cast<double>(plan.map_bytes);
      if (base - cost > best.saving) {
        best.k = plan.ks[q], best.plan = p, best.saving = base - cost;
        best.bounds.clear();
      }
    }
  }
  return best;
}

}  // namespace slicer::rate
