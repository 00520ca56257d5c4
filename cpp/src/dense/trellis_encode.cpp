// Format 2, mode 3 encoder (docs/format.md §21.6): byte-identical to tests/reference_tcq.py.
// Built with the library's -ffp-contract=off: the Viterbi's costs are binary64 operations each
// rounded once (§1), so every implementation takes the same path.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "codec.hpp"
#include "crc32.hpp"
#include "dense/coder.hpp"
#include "dense/dense.hpp"
#include "dense/dense_internal.hpp"
#include "dense/dense_writer.hpp"
#include "dense/trellis.hpp"
#include "float_bits.hpp"
#include "format/class_map.hpp"
#include "parallel.hpp"
#include "varint.hpp"

namespace slicer::dense::trellis {
namespace {

using internal::StatusError;

// Candidate list of quantizer q for t (§21.6 3.): (0, max(a − 1, 0), a, a + 1), a = Nearest.
inline uint64_t Candidate(uint64_t a, unsigned k) {
  switch (k) {
    case 0:
      return 0;
    case 1:
      return a == 0 ? 0 : a - 1;
    case 2:
      return a;
    default:
      return a + 1;
  }
}
inline unsigned Sym(uint64_t m, bool neg, unsigned* nbits) {
  uint64_t extra;
  return SymbolOf(m, neg && m > 0, nbits, &extra);
}

}  // namespace

// Rates in 1/256 bit of the table of exact counts `counts` (§21.6 4.).
void MakeRates(const uint64_t* counts, int32_t* rates) {
  unsigned nsym = 0;
  for (unsigned s = 0; s < kNumSymbols; ++s)
    if (counts[s]) nsym = s + 1;
  std::fill(rates, rates + kNumSymbols, kUnseenRate);
  if (nsym == 0) return;
  std::vector<unsigned> classes(nsym);
  for (unsigned s = 0; s < nsym; ++s) classes[s] = counts[s] ? CountClass(counts[s]) : 0;
  std::vector<uint32_t> freq, cum;
  Normalize(classes, &freq, &cum);
  for (unsigned s = 0; s < nsym; ++s) {
    if (freq[s] != 0) rates[s] = RateOfFreq(freq[s]);
  }
}

int32_t RateOfFreq(uint32_t f) {
  return 3584 - static_cast<int32_t>(std::floor(256.0 * std::log2(static_cast<double>(f)) + 0.5));
}

void ExtraRates(int32_t* extra_rate) {
  for (unsigned s = 0; s < kNumSymbols; ++s) {
    uint64_t base;
    unsigned nbits;
    BinBase(BinOf(s), &base, &nbits);
    extra_rate[s] = 256 * static_cast<int32_t>(nbits);
  }
}

namespace {

// Predecessors (s, p) of new state n, in the pinned order (§21.6 6.).
constexpr uint8_t kPred[4][2][2] = {
    {{0, 0}, {1, 1}}, {{2, 0}, {3, 1}}, {{0, 1}, {1, 0}}, {{2, 1}, {3, 0}}};

// The coded elements of the stream, in flat order.
struct Coded {
  std::vector<double> t;
  std::vector<uint8_t> neg, cls;
  std::vector<uint64_t> chunk_first;  // nch + 1 prefix of coded counts per chunk
};

}  // namespace

// The chains of one chunk (§21.1): chain l holds elements first + l, first + l + K, … below
// first + count. Writes each element's magnitude and the state it is coded in.
//
// `weights`: λ' · R(s) per context and symbol in binary64 (§21.6 5.: R includes the symbol's
// extra bits, which the symbol fixes), the product the cost adds, computed once per table.
//
// The `states` chains of a chunk run interleaved, element after element in flat order (each
// lane's path costs apart): consecutive elements belong to independent chains, so their
// updates overlap in the CPU; every chain's arithmetic is the one of §21.6.
void RunChains(const ChainInput& c, uint64_t first, uint64_t count, unsigned states,
               const double* weights, uint16_t* trace, uint64_t* m_out, uint8_t* s_out) {
  constexpr double kInf = std::numeric_limits<double>::infinity();
  double path[4][4];
  for (unsigned l = 0; l < 4; ++l) {
    path[l][0] = 0.0;
    path[l][1] = path[l][2] = path[l][3] = kInf;
  }
  unsigned lane = 0;
  for (uint64_t e = first; e < first + count; ++e) {
    double* const J = path[lane];
    if (++lane == states) lane = 0;
    const double t = c.t[e];
    const bool neg = c.neg[e] != 0;
    const double* wq[2] = {weights + size_t{2u * c.cls[e]} * kNumSymbols,
                           weights + size_t{2u * c.cls[e] + 1} * kNumSymbols};
    double bc[2][2];
    unsigned bi[2][2];
    for (unsigned q = 0; q < 2; ++q) {
      const uint64_t a = Nearest(t, q);
      bc[q][0] = bc[q][1] = kInf;
      bi[q][0] = bi[q][1] = 0;
      for (unsigned k = 0; k < 4; ++k) {
        const uint64_t m = Candidate(a, k);
        unsigned nbits;
        const unsigned s = Sym(m, neg, &nbits);
        const double u = t - Recon(m, q);
        const double d = u * u;
        const double cost = d + wq[q][s];
        const unsigned p = static_cast<unsigned>(m & 1);
        if (cost < bc[q][p]) {
          bc[q][p] = cost;
          bi[q][p] = k;
        }
      }
    }
    double nj[4];
    uint16_t tr = 0;
    for (unsigned n = 0; n < 4; ++n) {
      const unsigned s0 = kPred[n][0][0], p0 = kPred[n][0][1];
      const unsigned s1 = kPred[n][1][0], p1 = kPred[n][1][1];
      const double x = J[s0] + bc[s0 >> 1][p0];
      const double y = J[s1] + bc[s1 >> 1][p1];
      if (y < x) {
        nj[n] = y;
        tr |= static_cast<uint16_t>(1u << n);
      } else {
        nj[n] = x;
      }
    }
    for (unsigned q = 0; q < 2; ++q)
      for (unsigned p = 0; p < 2; ++p)
        tr |= static_cast<uint16_t>(bi[q][p] << (4 + 2 * (2 * q + p)));
    trace[e] = tr;
    std::memcpy(J, nj, sizeof(nj));
  }
  for (unsigned l = 0; l < states && l < count; ++l) {  // trace back each chain
    const double* const J = path[l];
    unsigned st = 0;
    for (unsigned s = 1; s < 4; ++s)
      if (J[s] < J[st]) st = s;
    for (uint64_t e = first + l + (count - 1 - l) / states * states;; e -= states) {
      const uint16_t tr = trace[e];
      const unsigned ch = (tr >> st) & 1;
      const unsigned s = kPred[st][ch][0], p = kPred[st][ch][1], q = s >> 1;
      const unsigned k = (tr >> (4 + 2 * (2 * q + p))) & 3;
      m_out[e] = Candidate(Nearest(c.t[e], q), k);
      s_out[e] = static_cast<uint8_t>(s);
      st = s;
      if (e < first + l + states) break;
    }
  }
}

namespace {

// binary64 → the stream dtype → binary64: what the decoder stores (§12.4).
inline double Decoded(int dtype, double v) {
  switch (dtype) {
    case SLICER_FLOAT64:
      return v;
    case SLICER_FLOAT32:
      return static_cast<float>(v);
    case SLICER_FLOAT16:
      return internal::HalfToFloat(internal::FloatToHalf(static_cast<float>(v)));
    default:
      return internal::BFloat16ToFloat(internal::FloatToBFloat16(static_cast<float>(v)));
  }
}

}  // namespace

slicer_status CheckParams(const slicer_dense_params* p) {
  if (p == nullptr) return SLICER_ERR_INVALID_ARGUMENT;
  if (p->trellis > 1) return SLICER_ERR_INVALID_ARGUMENT;
  if (p->trellis == 1 && !(std::isfinite(p->trellis_lambda) && p->trellis_lambda > 0))
    return SLICER_ERR_INVALID_ARGUMENT;
  return SLICER_OK;
}

void Encode(const void* data, int dtype, const int64_t* shape, uint32_t ndim,
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
  const uint8_t* bytes = static_cast<const uint8_t*>(data);
  const uint64_t chunk = in.chunk;
  const uint64_t nch = in.nch;

  // §21.6 1.-2.: t, sign, class of every coded element; rank maps' S_a.
  Coded c;
  c.chunk_first.assign(nch + 1, 0);
  std::vector<uint64_t> sums(nclass > 1 && rank ? geo.length : 0, 0);
  for (uint64_t i = 0; i < n;) {
    const uint64_t g = layout.GroupOf(i);
    const uint64_t stop = std::min(n, i + layout.RunLeft(i, n));
    const uint8_t kind = has_table ? kinds[g] : 0;
    if (!GroupIsDense(kind)) {
      for (; i < stop; ++i) {
        if (!std::isfinite(LoadElement(dtype, bytes, i)))
          throw StatusError(SLICER_ERR_NONFINITE_INPUT, "input");
      }
      continue;
    }
    const double delta = has_table ? steps[g] : base_step;
    for (; i < stop; ++i) {
      const double x = LoadElement(dtype, bytes, i);
      if (!std::isfinite(x)) throw StatusError(SLICER_ERR_NONFINITE_INPUT, "input");
      const double t = std::fabs(x) / delta;
      if (!(t < kMaxT)) throw StatusError(SLICER_ERR_INVALID_ARGUMENT, "step too small");
      c.t.push_back(t);
      c.neg.push_back(x < 0 ? 1 : 0);
      ++c.chunk_first[i / chunk + 1];
      if (!sums.empty()) {
        const uint64_t near = static_cast<uint64_t>(std::floor(t + 0.5));
        sums[geo.PositionOf(i)] += std::min(near, format::kClassStatClamp);
      }
    }
  }
  for (uint64_t j = 0; j < nch; ++j) c.chunk_first[j + 1] += c.chunk_first[j];
  const uint64_t nc = c.t.size();
  std::vector<uint8_t> class_map;
  c.cls.assign(nc, 0);
  if (nclass > 1) {
    MakeClassMap(in, params, sums, &class_map);
    uint64_t idx = 0;
    for (uint64_t i = 0; i < n;) {
      const uint64_t stop = std::min(n, i + layout.RunLeft(i, n));
      if (GroupIsDense(has_table ? kinds[layout.GroupOf(i)] : 0)) {
        for (; i < stop; ++i) c.cls[idx++] = class_map[geo.PositionOf(i)];
      }
      i = stop;
    }
  }

  // §21.6 7.: pass-1 tables from plain rounding in each quantizer, then two Viterbi passes.
  const unsigned nctx = 2 * nclass;
  std::vector<uint64_t> counts(size_t{nctx} * kNumSymbols, 0);
  for (uint64_t e = 0; e < nc; ++e) {
    for (unsigned q = 0; q < 2; ++q) {
      unsigned nbits;
      const unsigned s = Sym(Nearest(c.t[e], q), c.neg[e] != 0, &nbits);
      ++counts[size_t{2u * c.cls[e] + q} * kNumSymbols + s];
    }
  }
  std::vector<int32_t> rates(size_t{nctx} * kNumSymbols);
  std::vector<uint16_t> trace(nc);
  std::vector<uint64_t> mags(nc, 0);
  std::vector<uint8_t> state(nc, 0);
  const double lamp = params.trellis_lambda / 256.0;
  const unsigned parts =
      n < (uint64_t{1} << 16)
          ? 1u
          : internal::PartCount(nch, internal::ResolveThreads(params.threads), 1);
  std::vector<double> weights(rates.size());
  int32_t extra_rate[kNumSymbols];  // 256 · the extra bits of each symbol (§11)
  ExtraRates(extra_rate);
  for (unsigned pass = 0; pass < kPasses; ++pass) {
    for (unsigned x = 0; x < nctx; ++x)
      MakeRates(counts.data() + size_t{x} * kNumSymbols, rates.data() + size_t{x} * kNumSymbols);
    for (size_t q = 0; q < rates.size(); ++q)
      weights[q] = lamp * static_cast<double>(rates[q] + extra_rate[q % kNumSymbols]);
    internal::RunParts(nch, parts, [&](unsigned, uint64_t j0, uint64_t j1) {
      for (uint64_t j = j0; j < j1; ++j) {
        const uint64_t first = c.chunk_first[j], count = c.chunk_first[j + 1] - first;
        if (count == 0) continue;
        const ChainInput in_c{c.t.data(), c.neg.data(), c.cls.data()};
        RunChains(in_c, first, count, StatesFor(count), weights.data(), trace.data(), mags.data(),
                  state.data());
      }
    });
    std::fill(counts.begin(), counts.end(), 0);
    for (uint64_t e = 0; e < nc; ++e) {
      unsigned nbits;
      const unsigned s = Sym(mags[e], c.neg[e] != 0, &nbits);
      ++counts[size_t{2u * c.cls[e] + (state[e] >> 1)} * kNumSymbols + s];
    }
  }

  // §21.6 8.: offsets per quantizer and class (m = 1, m ≥ 2).
  int8_t off[4];
  if (params.auto_offsets) {
    int64_t sum[4] = {0, 0, 0, 0};
    uint64_t cnt[4] = {0, 0, 0, 0};
    for (uint64_t e = 0; e < nc; ++e) {
      const uint64_t m = mags[e];
      if (m == 0) continue;
      const unsigned q = state[e] >> 1;
      const double d = c.t[e] - Recon(m, q);
      const unsigned which = 2 * q + (m == 1 ? 0 : 1);
      sum[which] += FloorToInt(d * 0x1p20);
      ++cnt[which];
    }
    for (unsigned w = 0; w < 4; ++w) off[w] = OffsetSums::Offset(sum[w], cnt[w]);
  } else {
    off[0] = params.offset1;
    off[1] = params.offset2;
    off[2] = params.trellis_offset1;
    off[3] = params.trellis_offset2;
  }

  if (sse != nullptr) {  // the decoded values' squared error (§21.2), without decoding
    double total = 0.0;
    uint64_t e = 0;
    for (uint64_t i = 0; i < n;) {
      const uint64_t g = layout.GroupOf(i);
      const uint64_t stop = std::min(n, i + layout.RunLeft(i, n));
      const uint8_t kind = has_table ? kinds[g] : 0;
      if (kind == kGroupZero) {
        for (; i < stop; ++i) {
          const double x = LoadElement(dtype, bytes, i);
          total += x * x;
        }
      } else if (kind != kGroupRaw) {
        const double delta = has_table ? steps[g] : base_step;
        for (; i < stop; ++i, ++e) {
          const uint64_t m = mags[e];
          double v = 0.0;
          if (m != 0) {
            const unsigned q = state[e] >> 1;
            const double o = off[2 * q + (m == 1 ? 0 : 1)] / 256.0;
            v = (static_cast<double>(2 * m - q) + o) * delta;
            if (c.neg[e]) v = -v;
          }
          const double u = LoadElement(dtype, bytes, i) - Decoded(dtype, v);
          total += u * u;
        }
      }
      i = stop;
    }
    *sse = total;
  }

  // Tables (§21.4): table 2c + q of the exact counts of the written codes.
  std::vector<unsigned> nsym_of(nctx, 0);
  std::vector<std::vector<unsigned>> classes(nctx);
  std::vector<EncSymbol> enc(size_t{nctx} * kNumSymbols);
  for (unsigned x = 0; x < nctx; ++x) {
    const uint64_t* h = counts.data() + size_t{x} * kNumSymbols;
    unsigned nsym = 0;
    for (unsigned s = 0; s < kNumSymbols; ++s)
      if (h[s]) nsym = s + 1;
    nsym_of[x] = nsym;
    if (nsym == 0) continue;
    classes[x].resize(nsym);
    for (unsigned s = 0; s < nsym; ++s) classes[x][s] = h[s] ? CountClass(h[s]) : 0;
    std::vector<uint32_t> freq, cum;
    Normalize(classes[x], &freq, &cum);
    for (unsigned s = 0; s < nsym; ++s)
      if (freq[s]) enc[size_t{x} * kNumSymbols + s] = MakeEncSymbol(cum[s], freq[s]);
  }

  // Chunks: rANS (§14) with each element's context, extra bits LSB-first.
  std::vector<std::vector<uint8_t>> rans(nch), bits(nch);
  internal::RunParts(nch, parts, [&](unsigned, uint64_t j0, uint64_t j1) {
    std::vector<uint8_t> buf;
    for (uint64_t j = j0; j < j1; ++j) {
      const uint64_t first = c.chunk_first[j], count = c.chunk_first[j + 1] - first;
      if (count == 0) continue;
      const unsigned k = StatesFor(count);
      buf.resize(24 + 2 * count + 8);
      uint8_t* const end = buf.data() + buf.size();
      uint8_t* ptr = end;
      uint32_t x[4] = {kRansL, kRansL, kRansL, kRansL};
      for (uint64_t i = count; i-- > 0;) {
        const uint64_t e = first + i;
        unsigned nbits;
        const unsigned s = Sym(mags[e], c.neg[e] != 0, &nbits);
        const size_t ctx = 2u * c.cls[e] + (state[e] >> 1);
        RansPut(&x[i % k], &ptr, enc[ctx * kNumSymbols + s]);
      }
      RansFlush(x, k, &ptr);
      rans[j].assign(ptr, end);
      std::vector<uint8_t>& out = bits[j];
      uint64_t acc = 0;
      unsigned have = 0;
      for (uint64_t e = first; e < first + count; ++e) {
        unsigned nbits;
        uint64_t extra;
        SymbolOf(mags[e], c.neg[e] != 0 && mags[e] > 0, &nbits, &extra);
        for (unsigned b = 0; b < nbits; ++b) {  // ≤ 50 bits, LSB first (§1)
          acc |= ((extra >> b) & 1u) << have;
          if (++have == 8) {
            out.push_back(static_cast<uint8_t>(acc));
            acc = 0;
            have = 0;
          }
        }
      }
      if (have > 0) out.push_back(static_cast<uint8_t>(acc));
    }
  });

  // Assemble (§10, §21.3, §21.4).
  uint8_t mp[kParamsLen];
  std::memcpy(mp, &params.step, 4);
  mp[4] = params.chunk_log2;
  mp[5] = has_table ? 1 : 0;
  mp[6] = nclass > 1 ? params.class_axis : 0;
  mp[7] = static_cast<uint8_t>(nclass);
  for (unsigned w = 0; w < 4; ++w) mp[8 + w] = static_cast<uint8_t>(off[w]);
  std::vector<uint64_t> chunk_lens(2 * nch);
  for (uint64_t j = 0; j < nch; ++j) {
    chunk_lens[2 * j] = rans[j].size();
    chunk_lens[2 * j + 1] = bits[j].size();
  }
  std::vector<uint8_t>& out = *stream;
  WriteStreamHead(in, data, dtype, shape, ndim, params, kModeTrellis, mp, kParamsLen, class_map,
                  classes, nsym_of, chunk_lens, &out);
  for (uint64_t j = 0; j < nch; ++j) {
    out.insert(out.end(), rans[j].begin(), rans[j].end());
    out.insert(out.end(), bits[j].begin(), bits[j].end());
  }
  AppendChecksum(&out);
}

}  // namespace slicer::dense::trellis
