// Count classes, normalisation and layouts of format 2 (docs/format.md §12.1, §13.1, §13.2).
#include <algorithm>
#include <cmath>
#include <utility>
#include <vector>

#include "dense/coder.hpp"
#include "dense/dense.hpp"

namespace slicer::dense {

unsigned CountClass(uint64_t n) { return CountClassOfKind(n, 0); }

unsigned __int128 ClassCountOfKind(unsigned v, unsigned t) {
  const unsigned r = 3 - t, two = 2u << r, half = 1u << r;
  if (v < two) return v;
  const unsigned k = (v - two) >> r, mt = (v - two) & (half - 1);
  return static_cast<unsigned __int128>(half + mt) << (k + 1);
}

unsigned CountClassOfKind(uint64_t n, unsigned t) {
  // Largest v with cnt_r(v) <= n, then the nearer of v and v + 1 (ties to the lower).
  const unsigned top = ClassMaxOfKind(t);
  unsigned lo = 1, hi = top;
  while (lo < hi) {
    const unsigned mid = (lo + hi + 1) / 2;
    if (ClassCountOfKind(mid, t) <= n) {
      lo = mid;
    } else {
      hi = mid - 1;
    }
  }
  if (lo < top && ClassCountOfKind(lo + 1, t) - n < n - ClassCountOfKind(lo, t)) ++lo;
  return lo;
}

namespace {

// G[k] = floor(2^(32 − k/16)) (§13.5).
constexpr uint64_t kGeomRoots[16] = {
    4294967296u, 4112874773u, 3938502375u, 3771522796u, 3611622602u, 3458501653u,
    3311872529u, 3171459999u, 3037000499u, 2908241642u, 2784941737u, 2666869344u,
    2553802833u, 2445529971u, 2341847523u, 2242560871u,
};

// §13.5 pow from the squarings it shares: sq[k] = θ^(2^k) (sq[0] = θ, sq[k] = sq[k−1]² >> 32),
// x = 2^32 times sq[k] for every set bit k of n, least significant first, products floored.
// Every product < 2^64 (θ < 2^32).
void GeomSquares(uint64_t theta, uint64_t* sq) {
  sq[0] = theta;
  for (unsigned k = 1; k < 64; ++k) sq[k] = (sq[k - 1] * sq[k - 1]) >> 32;
}

uint64_t PowQ32(const uint64_t* sq, uint64_t n) {
  uint64_t x = uint64_t{1} << 32;
  for (unsigned k = 0; n > 0; ++k, n >>= 1)
    if (n & 1) x = (x * sq[k]) >> 32;
  return x;
}

// mass of symbol s ≥ 1 (§13.5): (pow(θ, lo − 1) · (2^32 − pow(θ, 2^w))) >> 32.
uint64_t GeomMass(const uint64_t* sq, unsigned s) {
  uint64_t lo;
  unsigned w;
  BinBase(BinOf(s), &lo, &w);
  const unsigned __int128 p = PowQ32(sq, lo - 1);
  const unsigned __int128 q = (uint64_t{1} << 32) - PowQ32(sq, uint64_t{1} << w);
  return static_cast<uint64_t>((p * q) >> 32);  // p·q ≤ 2^64 (a = 0, s ≤ 2)
}

uint64_t GeomTheta(unsigned a) { return (uint64_t{1} << 32) - (kGeomRoots[a % 16] >> (a / 16)); }

uint64_t GeomZero(unsigned z) { return uint64_t{2 * z + 1} << 15; }

uint64_t GeomCount(uint64_t zero, uint64_t mass) {
  return std::max<uint64_t>(1, ((uint64_t{1} << 24) - zero) * mass >> 33);  // < 2^56 · 2^0
}

}  // namespace

void GeomCounts(unsigned nsym, unsigned z, unsigned a, std::vector<unsigned __int128>* counts) {
  counts->assign(nsym, 0);
  uint64_t sq[64];
  GeomSquares(GeomTheta(a), sq);
  const uint64_t zero = GeomZero(z);
  (*counts)[0] = zero;
  for (unsigned s = 1; s < nsym; ++s) (*counts)[s] = GeomCount(zero, GeomMass(sq, s));
}

void Normalize(const std::vector<unsigned>& classes, std::vector<uint32_t>* freq_out,
               std::vector<uint32_t>* cum_out, unsigned kind) {
  std::vector<unsigned __int128> c(classes.size());
  for (size_t s = 0; s < classes.size(); ++s) c[s] = ClassCountOfKind(classes[s], kind);
  NormalizeCounts(c, freq_out, cum_out);
}

namespace {

// floor(num / den) for num < 2^50, den ≥ 1 through a binary64 reciprocal (inv = 1 / den): the
// estimate is within 1 of the quotient (relative error a few 2^-53 of a value below 2^50), then
// corrected to the exact one.
inline uint64_t QuotientSmall(uint64_t num, uint64_t den, double inv) {
  uint64_t q = static_cast<uint64_t>(static_cast<double>(num) * inv);
  if (q * den > num) --q;
  if ((q + 1) * den <= num) ++q;
  return q;
}

// §13.2 on counts c[0, n) into f[0, n) (exact integers; total: their sum). C: uint64_t when
// every count and the total stay below 2^50, else unsigned __int128. kSmall (C = uint64_t,
// every c · 2^14 < 2^50): quotients by QuotientSmall.
template <typename C, bool kSmall = false>
void NormalizeInto(const C* c, size_t n, C total, int64_t* f) {
  int64_t sum = 0;
  [[maybe_unused]] const double inv = 1.0 / static_cast<double>(total);
  for (size_t s = 0; s < n; ++s) {
    f[s] = 0;
    if (c[s] == 0) continue;
    int64_t v;  // floor(c · 2^14 / total); c · 2^14 < 2^80
    if constexpr (kSmall) {
      v = static_cast<int64_t>(QuotientSmall(c[s] * kProbScale, total, inv));
    } else {
      v = static_cast<int64_t>((c[s] * kProbScale) / total);
    }
    f[s] = std::max<int64_t>(1, v);
    sum += f[s];
  }
  int64_t diff = static_cast<int64_t>(kProbScale) - sum;
  auto argmax = [&]() {
    size_t best = 0;
    for (size_t s = 1; s < n; ++s)
      if (f[s] > f[best]) best = s;
    return best;
  };
  if (n > 0 && diff > 0) f[argmax()] += diff;
  while (diff < 0) {
    const size_t k = argmax();
    const int64_t d = std::min({-diff, f[k] - 1, std::max<int64_t>(1, f[k] >> 2)});
    f[k] -= d;
    diff += d;
  }
}

}  // namespace

void NormalizeCounts(const std::vector<unsigned __int128>& c, std::vector<uint32_t>* freq_out,
                     std::vector<uint32_t>* cum_out) {
  const size_t n = c.size();
  unsigned __int128 total = 0;  // < 423 · 2^66
  for (size_t s = 0; s < n; ++s) total += c[s];
  std::vector<int64_t> f(n, 0);
  if (total < (uint64_t{1} << 50)) {  // 64-bit division, the same quotients
    std::vector<uint64_t> c64(c.begin(), c.end());
    NormalizeInto<uint64_t>(c64.data(), n, static_cast<uint64_t>(total), f.data());
  } else {
    NormalizeInto<unsigned __int128>(c.data(), n, total, f.data());
  }
  freq_out->assign(n, 0);
  cum_out->assign(n + 1, 0);
  for (size_t s = 0; s < n; ++s) {
    (*freq_out)[s] = static_cast<uint32_t>(f[s]);
    (*cum_out)[s + 1] = (*cum_out)[s] + static_cast<uint32_t>(f[s]);
  }
}

namespace {

// round(2^16 · log2 f) for f = 0 … 2^14 (entry 0 unused): the reference encoder's score of a
// geometric table (§13.5; every value is ≥ 10^−4 away from a rounding boundary).
const std::vector<int64_t>& Log2Q16() {
  static const std::vector<int64_t> table = [] {
    std::vector<int64_t> t(kProbScale + 1, 0);
    for (uint32_t f = 1; f <= kProbScale; ++f) t[f] = std::llround(65536.0 * std::log2(f));
    return t;
  }();
  return table;
}

}  // namespace

void MakeKindTable(const uint64_t* hist, unsigned nsym, unsigned kind, KindTable* out) {
  out->body.clear();
  if (nsym == 0) {
    out->freq.clear();
    out->cum.assign(1, 0);
    return;
  }
  if (kind < kTableKindGeom) {  // §13.1 / §13.5 count classes of 3 − kind mantissa bits
    std::vector<unsigned> classes(nsym);
    for (unsigned s = 0; s < nsym; ++s) classes[s] = hist[s] ? CountClassOfKind(hist[s], kind) : 0;
    WriteClassField(classes.data(), nsym, &out->body);
    Normalize(classes, &out->freq, &out->cum, kind);
    return;
  }
  // Geometric (§13.5): the (z, a) of the largest Σ n_s · L[f_s], the first on ties.
  unsigned __int128 n = 0;
  for (unsigned s = 0; s < nsym; ++s) n += hist[s];
  const unsigned z0 = static_cast<unsigned>(
      std::min<unsigned __int128>(255, (hist[0] * (unsigned __int128){256}) / n));
  const std::vector<int64_t>& log2q = Log2Q16();
  std::vector<uint64_t> mass(size_t{256} * nsym);  // per a, per s ≥ 1 (independent of z)
  for (unsigned a = 0; a < 256; ++a) {
    uint64_t sq[64];
    GeomSquares(GeomTheta(a), sq);
    for (unsigned s = 1; s < nsym; ++s) mass[size_t{a} * nsym + s] = GeomMass(sq, s);
  }
  std::vector<unsigned> used;  // the symbols that occur: the score's terms
  for (unsigned s = 0; s < nsym; ++s)
    if (hist[s]) used.push_back(s);
  std::vector<uint64_t> counts(nsym);  // < 2^24 each, total < 2^33: 64-bit §13.2
  std::vector<int64_t> freq(nsym);
  std::vector<unsigned __int128> best_counts;
  bool have = false;
  unsigned __int128 best = 0;
  unsigned best_z = 0, best_a = 0;
  for (unsigned z = z0 >= 3 ? z0 - 3 : 0; z <= std::min(255u, z0 + 3); ++z) {
    const uint64_t zero = GeomZero(z);
    counts[0] = zero;
    for (unsigned a = 0; a < 256; ++a) {
      uint64_t total = zero;
      for (unsigned s = 1; s < nsym; ++s) {
        counts[s] = GeomCount(zero, mass[size_t{a} * nsym + s]);
        total += counts[s];
      }
      NormalizeInto<uint64_t, true>(counts.data(), nsym, total, freq.data());  // c·2^14 < 2^38
      unsigned __int128 score = 0;
      for (const unsigned s : used)
        score += static_cast<unsigned __int128>(hist[s]) * log2q[freq[s]];
      if (!have || score > best) {
        have = true;
        best = score;
        best_z = z;
        best_a = a;
      }
    }
  }
  out->body = {static_cast<uint8_t>(best_z), static_cast<uint8_t>(best_a)};
  GeomCounts(nsym, best_z, best_a, &best_counts);
  NormalizeCounts(best_counts, &out->freq, &out->cum);
}

unsigned PickTableKind(unsigned table_kind, const uint64_t* hist, const RansBytesFn& rans_bytes,
                       KindTable* kt) {
  if (table_kind == 0) return 0;
  unsigned nsym = 0;
  for (unsigned s = 0; s < kNumSymbols; ++s)
    if (hist[s]) nsym = s + 1;
  if (table_kind != kTableKindAuto) {
    MakeKindTable(hist, nsym, table_kind, kt);
    return table_kind;
  }
  unsigned best = 0;
  uint64_t best_len = 0;
  for (unsigned kind = 0; kind <= kTableKindGeom; ++kind) {
    KindTable cand;
    MakeKindTable(hist, nsym, kind, &cand);
    const uint64_t len = cand.body.size() + rans_bytes(cand);
    if (kind == 0 || len < best_len) {
      best = kind;
      best_len = len;
      if (kind != 0) *kt = std::move(cand);
    }
  }
  return best;
}

unsigned AutoLowBits(const uint64_t* hist) {
  unsigned __int128 n = 0;
  for (unsigned s = 0; s < kNumSymbols; ++s) n += hist[s];
  unsigned best = 0, s = 0;
  unsigned __int128 below = 0;
  for (unsigned k = 3; k <= SLICER_DENSE_MAX_LOW_BITS && n > 0; ++k) {
    for (; s < std::min(8 * k - 9, kNumSymbols); ++s) below += hist[s];
    if (16 * below <= 9 * n) best = k;
  }
  return best;
}

bool MakeLayout(const int64_t* shape, uint32_t ndim, uint64_t n, unsigned code, Layout* layout) {
  *layout = Layout{};
  if (code == SLICER_DENSE_LAYOUT_TENSOR) return true;
  if (code == SLICER_DENSE_LAYOUT_ROWS) {
    if (ndim < 1) return false;
    const uint64_t r = static_cast<uint64_t>(shape[ndim - 1]);
    layout->groups = n == 0 ? 0 : n / r;
    layout->run = n == 0 ? 1 : r;
    layout->modulo = n == 0 ? 1 : layout->groups;
    return true;
  }
  if (code == SLICER_DENSE_LAYOUT_CHANNELS) {
    if (ndim < 2) return false;
    uint64_t inner = 1;
    for (uint32_t d = 2; d < ndim; ++d) inner *= static_cast<uint64_t>(shape[d]);
    layout->groups = static_cast<uint64_t>(shape[1]);
    layout->run = inner == 0 ? 1 : inner;
    layout->modulo = layout->groups == 0 ? 1 : layout->groups;
    return true;
  }
  return false;
}

bool MakeClassGeometry(const int64_t* shape, uint32_t ndim, unsigned axis, ClassGeometry* geo) {
  *geo = ClassGeometry{};
  if (axis == 0 && ndim >= 1) {
    geo->length = static_cast<uint64_t>(shape[ndim - 1]);
    return true;
  }
  if (axis == 1 && ndim >= 2) {
    geo->length = static_cast<uint64_t>(shape[1]);
    uint64_t inner = 1;
    for (uint32_t d = 2; d < ndim; ++d) inner *= static_cast<uint64_t>(shape[d]);
    geo->inner = inner == 0 ? 1 : inner;
    return true;
  }
  return false;
}

uint32_t ClassesWithCoded(const Layout& layout, const uint8_t* kinds, uint64_t n,
                          const ClassGeometry& geo, const uint8_t* map) {
  const uint64_t length = geo.length;
  if (n == 0 || length == 0) return 0;
  std::vector<uint8_t> seen(length, 0);
  uint64_t covered = 0;
  auto mark = [&](uint64_t first, uint64_t count) {  // count consecutive positions, wrapping
    if (count >= length) {
      first = 0;
      count = length;
    }
    for (uint64_t q = 0; q < count; ++q) {
      uint64_t a = first + q;
      if (a >= length) a -= length;
      covered += seen[a] == 0;
      seen[a] = 1;
    }
  };
  for (uint64_t i = 0; i < n && covered < length;) {
    const uint64_t stop = std::min(n, i + layout.RunLeft(i, n));
    if (kinds == nullptr || GroupIsDense(kinds[layout.GroupOf(i)])) {
      const uint64_t b0 = i / geo.inner, b1 = (stop - 1) / geo.inner;
      mark(b0 % length, b1 - b0 + 1);
    }
    i = stop;
  }
  uint32_t has = 0;
  for (uint64_t a = 0; a < length; ++a)
    if (seen[a]) has |= uint32_t{1} << map[a];
  return has;
}

}  // namespace slicer::dense
