// Frames for token streams (docs/format.md §17); byte-identical to tests/reference_frames.py.
// The quantizer, symbols, table coding and rANS steps are the dense mode's (dense/coder.hpp).
#include "frames/frames.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <new>

#include "codec.hpp"
#include "crc32.hpp"
#include "dense/trellis.hpp"
#include "float_bits.hpp"
#include "format/class_map.hpp"
#include "format/reject.hpp"
#include "varint.hpp"

namespace slicer::frames {
namespace {

using internal::StatusError;

// §12.2: m = floor(|x| / Δ + ρ); throws on non-finite input or m > 2^53.
inline uint64_t Quantize(double x, double delta, double rho, double* t_out) {
  const double t = std::fabs(x) / delta;
  const double u = t + rho;
  if (!(u <= 0x1p53)) {
    if (!std::isfinite(x)) throw StatusError(SLICER_ERR_NONFINITE_INPUT, "input");
    throw StatusError(SLICER_ERR_INVALID_ARGUMENT, "step too small for the data");
  }
  *t_out = t;
  return static_cast<uint64_t>(u);
}

uint32_t IdCheck(uint32_t id, const uint8_t* body, size_t len) {
  uint8_t idb[4] = {static_cast<uint8_t>(id), static_cast<uint8_t>(id >> 8),
                    static_cast<uint8_t>(id >> 16), static_cast<uint8_t>(id >> 24)};
  return internal::Crc32(internal::Crc32(0, idb, 4), body, len);
}

// A minimal varint in [*pos, end): TRUNCATED when it runs past end, CORRUPT when not minimal.
using format::ReadVarint;

inline uint32_t LoadU32(const uint8_t* p) {
  return uint32_t{p[0]} | uint32_t{p[1]} << 8 | uint32_t{p[2]} << 16 | uint32_t{p[3]} << 24;
}

// Appends nb extra bits (§11) LSB first to the extra-bit area bits[*bits_pos...] through the bit
// buffer (acc, cnt), writing every whole byte.
inline void PutExtraBits(uint64_t extra, unsigned nb, uint64_t* acc, unsigned* cnt, uint8_t* bits,
                         size_t* bits_pos) {
  *acc |= extra << *cnt;
  *cnt += nb;
  while (*cnt >= 8) {
    bits[(*bits_pos)++] = static_cast<uint8_t>(*acc);
    *acc >>= 8;
    *cnt -= 8;
  }
}

slicer_status CheckRowShape(const int64_t* shape, uint32_t ndim, uint64_t* row) {
  if (ndim > SLICER_MAX_NDIM || (ndim > 0 && shape == nullptr)) return SLICER_ERR_INVALID_ARGUMENT;
  uint64_t r = 1;
  for (uint32_t d = 0; d < ndim; ++d) {
    if (shape[d] < 1 || static_cast<uint64_t>(shape[d]) > kMaxRow) {
      return SLICER_ERR_INVALID_ARGUMENT;
    }
    r *= static_cast<uint64_t>(shape[d]);
    if (r > kMaxRow) return SLICER_ERR_INVALID_ARGUMENT;
  }
  *row = r;
  return SLICER_OK;
}

// §14 over syms[0, r) with K interleaved states (element i uses state i mod K), backwards.
template <unsigned K>
void RansEncode(const uint16_t* syms, uint64_t r, const dense::EncSymbol* enc, uint32_t* out,
                uint8_t** ptr) {
  uint32_t x[K];
  for (unsigned j = 0; j < K; ++j) x[j] = dense::kRansL;
  uint64_t i = r;
  while (i % K != 0) {
    --i;
    dense::RansPutBranchless(&x[i % K], ptr, enc[syms[i]]);
  }
  while (i > 0) {
    i -= K;
    for (unsigned j = K; j-- > 0;) dense::RansPutBranchless(&x[j], ptr, enc[syms[i + j]]);
  }
  for (unsigned j = 0; j < K; ++j) out[j] = x[j];
}

namespace tcq = dense::trellis;

// §17.4 3.: §17.3's classes of one table from its symbol counts; every class 1 without counts.
void TrellisClasses(const uint64_t* h, unsigned* classes) {
  uint64_t total = 0;
  for (unsigned s = 0; s < dense::kNumSymbols; ++s) total += h[s];
  if (total == 0) {
    std::fill(classes, classes + dense::kNumSymbols, 1u);
    return;
  }
  unsigned shift = 0;
  while ((total << shift) < (uint64_t{1} << 15)) ++shift;
  for (unsigned s = 0; s < dense::kNumSymbols; ++s)
    classes[s] = h[s] ? dense::CountClass(h[s] << shift) : 1;
}

// The Viterbi's weights λ' · (R(s) + 256 · extra bits) of `ntab` tables of 423 classes each.
void TrellisWeights(const unsigned* classes, unsigned ntab, float lambda, double* weights) {
  int32_t extra[dense::kNumSymbols];
  tcq::ExtraRates(extra);
  const double lamp = static_cast<double>(lambda) / 256.0;
  std::vector<unsigned> cls(dense::kNumSymbols);
  std::vector<uint32_t> freq, cum;
  for (unsigned x = 0; x < ntab; ++x) {
    std::copy(classes + size_t{x} * dense::kNumSymbols,
              classes + size_t{x + 1} * dense::kNumSymbols, cls.begin());
    dense::Normalize(cls, &freq, &cum);
    for (unsigned s = 0; s < dense::kNumSymbols; ++s)
      weights[size_t{x} * dense::kNumSymbols + s] =
          lamp * static_cast<double>(tcq::RateOfFreq(freq[s]) + extra[s]);
  }
}

// t = |x| / Δ0 and the sign of n elements; a non-finite x or t ≥ 2^52 throws (§17.4).
void TrellisInput(int dtype, const uint8_t* bytes, uint64_t n, double delta, double* t,
                  uint8_t* neg) {
  bool ok = true;
  for (uint64_t i = 0; i < n; ++i) {
    const double v = dense::LoadElement(dtype, bytes, i);
    t[i] = std::fabs(v) / delta;
    neg[i] = v < 0;
    ok &= t[i] < tcq::kMaxT;  // false for NaN / inf too
  }
  if (ok) return;
  for (uint64_t i = 0; i < n; ++i) {
    if (!std::isfinite(dense::LoadElement(dtype, bytes, i)))
      throw StatusError(SLICER_ERR_NONFINITE_INPUT, "input");
    if (!(t[i] < tcq::kMaxT)) throw StatusError(SLICER_ERR_INVALID_ARGUMENT, "step too small");
  }
}

// §17.4's build rule: class map, 2T tables (classes, [423 · (2c + q) + s]) and offsets.
void BuildTrellisTables(const uint8_t* bytes, int dtype, uint64_t num_rows, uint64_t row,
                        const slicer_frame_params& p, unsigned nclass, std::vector<uint8_t>* cmap,
                        std::vector<unsigned>* classes, int8_t* off) {
  double delta = 0;
  dense::GroupStep(p.step, 0, &delta);
  const uint64_t n = num_rows * row;
  std::vector<double> t(n);
  std::vector<uint8_t> neg(n), cls(n, 0);
  TrellisInput(dtype, bytes, n, delta, t.data(), neg.data());
  if (nclass > 1) {  // §17.4 2.: S_a of the nearest-integer codes (§21.6 2.)
    std::vector<uint64_t> sums(row, 0);
    for (uint64_t i = 0, a = 0; i < n; ++i) {
      const uint64_t near = static_cast<uint64_t>(std::floor(t[i] + 0.5));
      sums[a] += std::min(near, format::kClassStatClamp);
      if (++a == row) a = 0;
    }
    format::ClassRule(sums.data(), row, nclass, cmap->data());
    for (uint64_t i = 0, a = 0; i < n; ++i) {
      cls[i] = (*cmap)[a];
      if (++a == row) a = 0;
    }
  }
  const unsigned ntab = 2 * nclass;
  const size_t tab_size = size_t{ntab} * dense::kNumSymbols;
  std::vector<uint64_t> counts(tab_size, 0);
  for (uint64_t e = 0; e < n; ++e) {  // pass-1 counts: Q0's and Q1's nearest candidate
    for (unsigned q = 0; q < 2; ++q) {
      const uint64_t a = tcq::Nearest(t[e], q);
      unsigned nb;
      uint64_t extra;
      const unsigned s = dense::SymbolOf(a, neg[e] != 0 && a > 0, &nb, &extra);
      ++counts[size_t{2u * cls[e] + q} * dense::kNumSymbols + s];
    }
  }
  classes->assign(tab_size, 1);
  std::vector<double> weights(tab_size);
  std::vector<uint16_t> trace(n);
  std::vector<uint64_t> mags(n, 0);
  std::vector<uint8_t> state(n, 0);
  const tcq::ChainInput in{t.data(), neg.data(), cls.data()};
  for (unsigned pass = 0; pass < tcq::kPasses; ++pass) {
    for (unsigned x = 0; x < ntab; ++x)
      TrellisClasses(counts.data() + size_t{x} * dense::kNumSymbols,
                     classes->data() + size_t{x} * dense::kNumSymbols);
    TrellisWeights(classes->data(), ntab, p.trellis_lambda, weights.data());
    for (uint64_t r = 0; r < num_rows; ++r) {
      tcq::RunChains(in, r * row, row, p.states, weights.data(), trace.data(), mags.data(),
                     state.data());
    }
    std::fill(counts.begin(), counts.end(), 0);
    for (uint64_t e = 0; e < n; ++e) {
      unsigned nb;
      uint64_t extra;
      const unsigned s = dense::SymbolOf(mags[e], neg[e] != 0 && mags[e] > 0, &nb, &extra);
      ++counts[size_t{2u * cls[e] + (state[e] >> 1)} * dense::kNumSymbols + s];
    }
  }
  for (unsigned x = 0; x < ntab; ++x)
    TrellisClasses(counts.data() + size_t{x} * dense::kNumSymbols,
                   classes->data() + size_t{x} * dense::kNumSymbols);
  if (!p.auto_offsets) {
    off[0] = p.offset1;
    off[1] = p.offset2;
    off[2] = p.trellis_offset1;
    off[3] = p.trellis_offset2;
    return;
  }
  int64_t sum[4] = {0, 0, 0, 0};  // §21.6 8. per quantizer and class (m = 1, m ≥ 2)
  uint64_t cnt[4] = {0, 0, 0, 0};
  for (uint64_t e = 0; e < n; ++e) {
    const uint64_t m = mags[e];
    if (m == 0) continue;
    const unsigned q = state[e] >> 1;
    const unsigned which = 2 * q + (m == 1 ? 0 : 1);
    sum[which] += dense::FloorToInt((t[e] - tcq::Recon(m, q)) * 0x1p20);
    ++cnt[which];
  }
  for (unsigned w = 0; w < 4; ++w) off[w] = dense::OffsetSums::Offset(sum[w], cnt[w]);
}

// §17.3: class map, T tables and (o1, o2) of a context without trellis.
void BuildPlainTables(const uint8_t* bytes, int dtype, uint64_t num_rows, uint64_t row,
                      const slicer_frame_params& p, unsigned nclass, std::vector<uint8_t>* cmap_out,
                      std::vector<unsigned>* classes_out, int8_t* off) {
  double delta = 0;
  dense::GroupStep(p.step, 0, &delta);
  const double rho = p.rho_256 / 256.0;
  // Pass 1: every calibration element's symbol, the offset sums and (§18.2) S_a per position.
  const uint64_t n = num_rows * row;
  std::vector<uint16_t> syms(n);
  std::vector<uint64_t> pos_sums(nclass > 1 ? row : 0, 0);
  dense::OffsetSums sums;
  for (uint64_t i = 0, a = 0; i < n; ++i) {
    double t;
    const double x = dense::LoadElement(dtype, bytes, i);
    const uint64_t m = Quantize(x, delta, rho, &t);
    unsigned nb;
    uint64_t extra;
    syms[i] = static_cast<uint16_t>(dense::SymbolOf(m, x < 0, &nb, &extra));
    sums.Add(t, m);
    if (nclass > 1) {
      pos_sums[a] += std::min(m, format::kClassStatClamp);
      if (++a == row) a = 0;
    }
  }
  off[0] = p.auto_offsets ? sums.O1() : p.offset1;
  off[1] = p.auto_offsets ? sums.O2() : p.offset2;
  std::vector<uint8_t>& cmap = *cmap_out;
  if (nclass > 1) format::ClassRule(pos_sums.data(), row, nclass, cmap.data());
  // Per class: histogram, then (§17.3) scale S = 2^k, smallest with S · T_c ≥ 2^15; unseen
  // symbols get count class 1.
  std::vector<uint64_t> hist(uint64_t{nclass} * dense::kNumSymbols, 0);
  std::vector<uint64_t> total(nclass, 0);
  for (uint64_t i = 0, a = 0; i < n; ++i) {
    ++hist[uint64_t{cmap[a]} * dense::kNumSymbols + syms[i]];
    ++total[cmap[a]];
    if (++a == row) a = 0;
  }
  std::vector<unsigned>& classes = *classes_out;
  classes.assign(uint64_t{nclass} * dense::kNumSymbols, 0);
  for (unsigned c = 0; c < nclass; ++c) {
    unsigned shift = 0;
    while ((total[c] << shift) < (uint64_t{1} << 15)) ++shift;
    for (unsigned s = 0; s < dense::kNumSymbols; ++s) {
      const uint64_t h = hist[uint64_t{c} * dense::kNumSymbols + s];
      classes[uint64_t{c} * dense::kNumSymbols + s] = h ? dense::CountClass(h << shift) : 1;
    }
  }
}

void WriteContext(int dtype, const int64_t* row_shape, uint32_t row_ndim,
                  const slicer_frame_params& p, unsigned nclass, bool trellis,
                  const std::vector<uint8_t>& cmap, const std::vector<unsigned>& classes,
                  const int8_t* off, std::vector<uint8_t>* out) {
  const uint64_t row = cmap.size();
  static const uint8_t magic[4] = {0x53, 0x4C, 0x43, 0x52};
  out->assign(magic, magic + 4);
  out->push_back(dense::kVersion);
  out->push_back(kKindContext);
  out->push_back(static_cast<uint8_t>(dtype));
  // flags bit 0: a class map follows the states; bit 1: a trellis context (§17.4)
  out->push_back(static_cast<uint8_t>((nclass > 1 ? 1 : 0) | (trellis ? 2 : 0)));
  out->push_back(static_cast<uint8_t>(row_ndim));
  for (uint32_t d = 0; d < row_ndim; ++d) {
    uint8_t buf[10];
    const size_t len = internal::PutVarint(static_cast<uint64_t>(row_shape[d]), buf);
    out->insert(out->end(), buf, buf + len);
  }
  uint8_t mp[13];
  std::memcpy(mp, &p.step, 4);
  size_t len = 8;
  if (trellis) {  // step, lambda, o1_0, o2_0, o1_1, o2_1, states
    std::memcpy(mp + 4, &p.trellis_lambda, 4);
    for (unsigned w = 0; w < 4; ++w) mp[8 + w] = static_cast<uint8_t>(off[w]);
    mp[12] = p.states;
    len = 13;
  } else {  // step, rho_256, o1, o2, states
    mp[4] = p.rho_256;
    mp[5] = static_cast<uint8_t>(off[0]);
    mp[6] = static_cast<uint8_t>(off[1]);
    mp[7] = p.states;
  }
  out->insert(out->end(), mp, mp + len);
  if (nclass > 1) {
    out->push_back(static_cast<uint8_t>(nclass));
    format::WriteClassMap(cmap.data(), row, out);
  }
  for (unsigned c = 0; c < nclass * (trellis ? 2 : 1); ++c) {
    uint8_t nsym[2];
    const size_t vl = internal::PutVarint(dense::kNumSymbols, nsym);
    out->insert(out->end(), nsym, nsym + vl);
    dense::WriteClassField(classes.data() + uint64_t{c} * dense::kNumSymbols, dense::kNumSymbols,
                           out);
  }
  const uint32_t crc = internal::Crc32(0, out->data(), out->size());
  for (int b = 0; b < 4; ++b) out->push_back(static_cast<uint8_t>(crc >> (8 * b)));
}

}  // namespace

void BuildContext(const void* rows, int dtype, uint64_t num_rows, const int64_t* row_shape,
                  uint32_t row_ndim, const slicer_frame_params& p, unsigned nclass,
                  std::vector<uint8_t>* out) {
  if (dtype < SLICER_FLOAT32 || dtype > SLICER_FLOAT64) {
    throw StatusError(SLICER_ERR_UNSUPPORTED_DTYPE, "dtype");
  }
  uint64_t row = 0;
  slicer_status st = CheckRowShape(row_shape, row_ndim, &row);
  if (st != SLICER_OK) throw StatusError(st, "row_shape");
  if (num_rows == 0 || rows == nullptr || num_rows > (uint64_t{1} << 40) / row) {
    throw StatusError(SLICER_ERR_INVALID_ARGUMENT, "rows");
  }
  const bool trellis = p.trellis == 1;
  if (!(std::isfinite(p.step) && p.step >= 0x1p-126f) ||
      (!trellis && (p.rho_256 < 1 || p.rho_256 > 128)) || p.auto_offsets > 1 ||
      (p.states != 1 && p.states != 2 && p.states != 4) || p.trellis > 1 ||
      (trellis && !(std::isfinite(p.trellis_lambda) && p.trellis_lambda >= 0x1p-126f))) {
    throw StatusError(SLICER_ERR_INVALID_ARGUMENT, "params");
  }
  if (nclass < 1 || nclass > format::kMaxClasses || nclass > row) {
    throw StatusError(SLICER_ERR_INVALID_ARGUMENT, "classes");
  }
  const uint8_t* bytes = static_cast<const uint8_t*>(rows);
  std::vector<uint8_t> cmap(row, 0);
  std::vector<unsigned> classes;
  int8_t off[4] = {0, 0, 0, 0};
  if (trellis) {
    BuildTrellisTables(bytes, dtype, num_rows, row, p, nclass, &cmap, &classes, off);
  } else {
    BuildPlainTables(bytes, dtype, num_rows, row, p, nclass, &cmap, &classes, off);
  }
  WriteContext(dtype, row_shape, row_ndim, p, nclass, trellis, cmap, classes, off, out);
}

slicer_status OpenContext(const uint8_t* data, size_t size, uint64_t max_elements, Context* c) {
  if (data == nullptr || size < kMinContext) return SLICER_ERR_TRUNCATED;
  if (std::memcmp(data, "SLCR", 4) != 0) return SLICER_ERR_BAD_MAGIC;
  const uint32_t stored = LoadU32(data + size - 4);
  if (internal::Crc32(0, data, size - 4) != stored) return SLICER_ERR_BAD_CHECKSUM;
  if (data[4] != dense::kVersion) return SLICER_ERR_BAD_VERSION;
  if (data[5] != kKindContext) return SLICER_ERR_CORRUPT;
  const size_t end = size - 4;
  size_t pos = 6;
  auto u8 = [&](uint8_t* v) {
    if (pos >= end) return false;
    *v = data[pos++];
    return true;
  };
  uint8_t b;
  if (!u8(&b)) return SLICER_ERR_TRUNCATED;
  if (b < SLICER_FLOAT32 || b > SLICER_FLOAT64) return SLICER_ERR_CORRUPT;
  c->dtype = b;
  if (!u8(&b)) return SLICER_ERR_TRUNCATED;
  if ((b & ~3u) != 0) return SLICER_ERR_CORRUPT;
  const bool has_map = (b & 1) != 0;
  c->trellis = (b & 2) != 0;
  if (!u8(&b)) return SLICER_ERR_TRUNCATED;
  if (b > SLICER_MAX_NDIM) return SLICER_ERR_CORRUPT;
  c->ndim = b;
  uint64_t row = 1;
  for (uint32_t d = 0; d < c->ndim; ++d) {
    uint64_t v;
    if (const slicer_status st = ReadVarint(data, end, &pos, &v); st != SLICER_OK) return st;
    if (v > kMaxRow) return SLICER_ERR_LIMIT_EXCEEDED;
    c->shape[d] = static_cast<int64_t>(v);
    row *= v;  // ≤ 2^18 · 2^18 before the check below
    if (row > kMaxRow || row > max_elements) return SLICER_ERR_LIMIT_EXCEEDED;
  }
  if (row == 0) return SLICER_ERR_CORRUPT;
  c->row = row;
  const size_t fields = c->trellis ? 13 : 8;
  if (end - pos < fields) return SLICER_ERR_TRUNCATED;
  std::memcpy(&c->step, data + pos, 4);
  if (c->trellis) {  // step, lambda, o1_0, o2_0, o1_1, o2_1, states (§17.4)
    std::memcpy(&c->lambda, data + pos + 4, 4);
    c->rho_256 = 0;
    c->o1 = static_cast<int8_t>(data[pos + 8]);
    c->o2 = static_cast<int8_t>(data[pos + 9]);
    c->o1_1 = static_cast<int8_t>(data[pos + 10]);
    c->o2_1 = static_cast<int8_t>(data[pos + 11]);
    c->states = data[pos + 12];
  } else {
    c->lambda = 0;
    c->o1_1 = c->o2_1 = 0;
    c->rho_256 = data[pos + 4];
    c->o1 = static_cast<int8_t>(data[pos + 5]);
    c->o2 = static_cast<int8_t>(data[pos + 6]);
    c->states = data[pos + 7];
  }
  pos += fields;
  if (c->states != 1 && c->states != 2 && c->states != 4) return SLICER_ERR_CORRUPT;
  if (!(std::isfinite(c->step) && c->step >= 0x1p-126f)) return SLICER_ERR_CORRUPT;
  if (c->trellis ? !(std::isfinite(c->lambda) && c->lambda >= 0x1p-126f)
                 : (c->rho_256 < 1 || c->rho_256 > 128)) {
    return SLICER_ERR_CORRUPT;
  }
  c->nclass = 1;
  c->cmap.assign(row, 0);
  if (has_map) {
    if (!u8(&b)) return SLICER_ERR_TRUNCATED;
    if (b < 2 || b > format::kMaxClasses || b > row) return SLICER_ERR_CORRUPT;
    c->nclass = b;
    if (end - pos < format::ClassMapBytes(row)) return SLICER_ERR_TRUNCATED;
    const slicer_status st = format::ReadClassMap(data + pos, row, c->nclass, c->cmap.data());
    if (st != SLICER_OK) return st;
    pos += format::ClassMapBytes(row);
  }
  const unsigned ntab = c->nclass * (c->trellis ? 2 : 1);  // table 2c + q when trellis
  c->tables.assign(ntab, {});
  for (unsigned k = 0; k < ntab; ++k) {
    uint64_t nsym;
    if (const slicer_status st = ReadVarint(data, end, &pos, &nsym); st != SLICER_OK) return st;
    if (nsym != dense::kNumSymbols) return SLICER_ERR_CORRUPT;
    const slicer_status st =
        dense::ReadClassField(data, end, &pos, dense::kNumSymbols, &c->tables[k]);
    if (st != SLICER_OK) return st;
    for (unsigned v : c->tables[k])
      if (v == 0) return SLICER_ERR_CORRUPT;
  }
  if (pos != end) return SLICER_ERR_CORRUPT;
  c->id = stored;
  c->bytes = size;
  dense::GroupStep(c->step, 0, &c->delta);
  c->rho = c->rho_256 / 256.0;
  c->enc.resize(uint64_t{ntab} * dense::kNumSymbols);
  c->bucket_symbol.assign(uint64_t{ntab} * kBucketsPerClass, 0);
  c->cum.resize(uint64_t{ntab} * kCumStride);
  std::vector<uint32_t> freq, cum;
  for (unsigned k = 0; k < ntab; ++k) {
    dense::Normalize(c->tables[k], &freq, &cum);
    uint8_t* const bucket = c->bucket_symbol.data() + uint64_t{k} * kBucketsPerClass;
    for (unsigned q = 0; q < dense::kNumSymbols; ++q) {
      c->enc[uint64_t{k} * dense::kNumSymbols + q] = dense::MakeEncSymbol(cum[q], freq[q]);
    }
    // bucket j: the symbol owning its first slot j << kBucketBits (capped at 255)
    unsigned q = 0;
    for (unsigned j = 0; j < kBucketsPerClass; ++j) {
      while (cum[q + 1] <= (j << kBucketBits)) ++q;
      bucket[j] = static_cast<uint8_t>(std::min(q, 255u));
    }
    std::copy(cum.begin(), cum.end(), c->cum.begin() + uint64_t{k} * kCumStride);
  }
  c->sym_base.resize(row);
  for (uint64_t a = 0; a < row; ++a) {
    c->sym_base[a] = static_cast<uint16_t>(c->cmap[a] * dense::kNumSymbols);
  }
  const double off1 = c->o1 / 256.0, off2 = c->o2 / 256.0;
  for (unsigned q = 0; q < dense::kNumSymbols; ++q) {
    const unsigned bin = (q + 1) / 2;
    c->nbits_of[q] = bin >= dense::kDirect ? 1 : 0;  // the bin carries extra bits
    const double off = bin == 1 ? off1 : off2;
    const double v = bin == 0 ? 0.0 : (static_cast<double>(bin) + off) * c->delta;
    c->value[q] = (q & 1) == 0 && q != 0 ? -v : v;
  }
  if (c->trellis) {
    std::vector<unsigned> all;
    for (const std::vector<unsigned>& t : c->tables) all.insert(all.end(), t.begin(), t.end());
    c->weights.resize(all.size());
    TrellisWeights(all.data(), ntab, c->lambda, c->weights.data());
    c->trace.resize(row);
    c->mags.resize(row);
    c->tstate.resize(row);
  }
  c->syms.resize(row);
  c->rans.resize(24 + 2 * row + 2);
  c->t.resize(row);
  c->neg.resize(row);
  c->bits.resize((51 * row + 7) / 8 + 8);
  return SLICER_OK;
}

namespace {

// §14 over the frame's symbols (each already offset to its table's block of encoder symbols),
// then the frame of §17.2 with the extra-bit area bits[0, bits_len).
size_t AssembleFrame(Context* c, uint32_t seq, size_t bits_len, uint8_t* dst) {
  const uint64_t r = c->row;
  const uint16_t* syms = c->syms.data();
  uint8_t* const rend = c->rans.data() + c->rans.size();
  uint8_t* ptr = rend;  // c->rans has 2 spare bytes below the lowest reachable byte
  uint32_t x[4];
  switch (c->states) {
    case 1:
      RansEncode<1>(syms, r, c->enc.data(), x, &ptr);
      break;
    case 2:
      RansEncode<2>(syms, r, c->enc.data(), x, &ptr);
      break;
    default:
      RansEncode<4>(syms, r, c->enc.data(), x, &ptr);
  }
  dense::RansFlush(x, c->states, &ptr);
  const size_t rans_len = static_cast<size_t>(rend - ptr);
  size_t o = 0;
  dst[o++] = static_cast<uint8_t>(seq);
  o += internal::PutVarint(bits_len, dst + o);
  std::memcpy(dst + o, ptr, rans_len);
  o += rans_len;
  std::memcpy(dst + o, c->bits.data(), bits_len);
  o += bits_len;
  const uint32_t check = IdCheck(c->id, dst, o);
  for (int b = 0; b < 4; ++b) dst[o++] = static_cast<uint8_t>(check >> (8 * b));
  return o;
}

// §17.4: one Viterbi per lane with the context's weights, then symbols in the tables of the
// states they were coded in.
size_t EncodeTrellisFrame(Context* c, const void* row_data, uint32_t seq, uint8_t* dst) {
  const uint64_t r = c->row;
  double* t = c->t.data();
  uint8_t* neg = c->neg.data();
  TrellisInput(c->dtype, static_cast<const uint8_t*>(row_data), r, c->delta, t, neg);
  uint64_t* mags = c->mags.data();
  uint8_t* state = c->tstate.data();
  const uint8_t* cmap = c->cmap.data();
  tcq::RunChains(tcq::ChainInput{t, neg, cmap}, 0, r, c->states, c->weights.data(), c->trace.data(),
                 mags, state);
  uint16_t* syms = c->syms.data();
  uint8_t* bits = c->bits.data();
  size_t bits_pos = 0;
  uint64_t acc = 0;
  unsigned cnt = 0;
  for (uint64_t i = 0; i < r; ++i) {
    const uint64_t m = mags[i];
    unsigned s;
    if (m < dense::kDirect) {
      s = m == 0 ? 0u : static_cast<unsigned>(2 * m - 1 + neg[i]);
    } else {
      unsigned nb;
      uint64_t extra;
      s = dense::SymbolOf(m, neg[i] != 0, &nb, &extra);
      PutExtraBits(extra, nb, &acc, &cnt, bits, &bits_pos);
    }
    const unsigned tab = 2u * cmap[i] + (state[i] >> 1);
    syms[i] = static_cast<uint16_t>(s + tab * dense::kNumSymbols);
  }
  if (cnt > 0) bits[bits_pos++] = static_cast<uint8_t>(acc);
  return AssembleFrame(c, seq, bits_pos, dst);
}

}  // namespace

size_t EncodeFrame(Context* c, const void* row_data, uint32_t seq, uint8_t* dst) {
  if (c->trellis) return EncodeTrellisFrame(c, row_data, seq, dst);
  const uint8_t* in = static_cast<const uint8_t*>(row_data);
  const uint64_t r = c->row;
  uint16_t* syms = c->syms.data();
  uint8_t* bits = c->bits.data();
  double* t = c->t.data();
  const double delta = c->delta, rho = c->rho;
  // Pass 1a (§12.2): t = |x| / Δ (each operation rounded once) and the sign; vectorisable.
  uint8_t* neg = c->neg.data();
  if (c->dtype == SLICER_FLOAT32) {
    for (uint64_t i = 0; i < r; ++i) {  // memcpy: the row need not be aligned
      float v;
      std::memcpy(&v, in + 4 * i, 4);
      t[i] = std::fabs(static_cast<double>(v)) / delta;
      neg[i] = v < 0;
    }
  } else {
    for (uint64_t i = 0; i < r; ++i) {
      const double v = dense::LoadElement(c->dtype, in, i);
      t[i] = std::fabs(v) / delta;
      neg[i] = v < 0;
    }
  }
  bool ok = true;
  for (uint64_t i = 0; i < r; ++i) ok &= t[i] + rho <= 0x1p53;  // false for NaN / inf too
  if (!ok) {
    for (uint64_t i = 0; i < r; ++i) {
      double unused;
      // Throws the right status.
      Quantize(dense::LoadElement(c->dtype, in, i), delta, rho, &unused);
    }
  }
  // Pass 1b (§11): symbols of codes below 8 for every element (branch-free, vectorisable;
  // m = floor(t + ρ) as the spec, clamped to 8 so that the conversion stays in int32), then the
  // codes of 8 and more in order, with their extra bits written LSB-first.
  unsigned any_big = 0;
  for (uint64_t i = 0; i < r; ++i) {
    const int m = static_cast<int>(std::min(t[i] + rho, 8.0));
    any_big |= m & 8;
    syms[i] = static_cast<uint16_t>((2 * m - 1 + neg[i]) * (m > 0));
  }
  size_t bits_pos = 0;
  if (any_big) {
    uint64_t acc = 0;
    unsigned cnt = 0;
    for (uint64_t i = 0; i < r; ++i) {
      if (!(t[i] + rho >= 8.0)) continue;
      const uint64_t m = static_cast<uint64_t>(t[i] + rho);
      unsigned nb;
      uint64_t extra;
      syms[i] = static_cast<uint16_t>(dense::SymbolOf(m, neg[i] != 0, &nb, &extra));
      PutExtraBits(extra, nb, &acc, &cnt, bits, &bits_pos);
    }
    if (cnt > 0) bits[bits_pos++] = static_cast<uint8_t>(acc);
  }
  // §18: with a class map, the symbol indexes its class's block of encoder symbols.
  if (c->nclass > 1) {
    const uint16_t* base = c->sym_base.data();
    for (uint64_t i = 0; i < r; ++i) syms[i] = static_cast<uint16_t>(syms[i] + base[i]);
  }
  // Pass 2 (§14): rANS backwards into the scratch, then the frame (§17.2).
  return AssembleFrame(c, seq, bits_pos, dst);
}

namespace {

// Symbol s's magnitude (§11): its bin's base plus the bin's extra bits, read LSB first from the
// frame's extra-bit area [*bp, bend) through the bit buffer (acc, cnt). False when the area ends
// first. s must be a symbol with extra bits.
inline bool TakeExtraBits(unsigned s, const uint8_t* bend, const uint8_t** bp, uint64_t* acc,
                          unsigned* cnt, uint64_t* m) {
  unsigned nb;
  dense::BinBase(dense::BinOf(s), m, &nb);
  while (*cnt < nb) {
    if (*bp >= bend) return false;
    *acc |= uint64_t{*(*bp)++} << *cnt;
    *cnt += 8;
  }
  *m += *acc & ((uint64_t{1} << nb) - 1);
  *acc >>= nb;
  *cnt -= nb;
  return true;
}

// §17.2 (§17.4 with kTrellis: each lane's trellis state picks the table 2c + q of an element and
// the reconstruction of §21.2).
template <bool kTrellis>
slicer_status DecodeRow(const Context& c, const uint8_t* f, size_t size, uint8_t* dst,
                        uint32_t* seq) {
  const unsigned k = c.states;
  if (f == nullptr || size < 6 + 4 * size_t{k}) return SLICER_ERR_TRUNCATED;
  const size_t body = size - 4;
  if (IdCheck(c.id, f, body) != LoadU32(f + body)) return SLICER_ERR_BAD_CHECKSUM;
  size_t pos = 1;
  uint64_t bits_len;
  if (const slicer_status st = ReadVarint(f, body, &pos, &bits_len); st != SLICER_OK) return st;
  if (bits_len > body - pos) return SLICER_ERR_TRUNCATED;
  const size_t rans_len = body - pos - bits_len;
  if (rans_len < 4 * size_t{k}) return SLICER_ERR_CORRUPT;
  const uint8_t* r = f + pos;
  const uint8_t* const rend = r + rans_len;
  uint32_t x[4];
  for (unsigned q = 0; q < k; ++q) {
    x[q] = LoadU32(r);
    r += 4;
    if (x[q] < dense::kRansL || x[q] >= (dense::kRansL << 8)) return SLICER_ERR_CORRUPT;
  }
  const uint8_t* bp = rend;
  const uint8_t* const bend = rend + bits_len;
  uint64_t acc = 0;
  unsigned cnt = 0;
  const uint8_t* cmap = c.cmap.data();
  const uint8_t* const buckets = c.bucket_symbol.data();
  const uint16_t* const cums = c.cum.data();
  uint8_t tstate[4] = {0, 0, 0, 0};
  const double toff[4] = {c.o1 / 256.0, c.o2 / 256.0, c.o1_1 / 256.0, c.o2_1 / 256.0};
  for (uint64_t i = 0; i < c.row; ++i) {
    // one rANS step (dense::RansGet) on the tables of position i's class (and lane's state)
    const unsigned lane = static_cast<unsigned>(i & (k - 1));
    unsigned q = 0;
    unsigned cls = cmap[i];
    if constexpr (kTrellis) {
      q = tstate[lane] >> 1;
      cls = 2 * cls + q;
    }
    uint32_t& st = x[lane];
    const uint32_t slot = st & (dense::kProbScale - 1);
    const uint16_t* const cum = cums + size_t{cls} * kCumStride;
    unsigned s = buckets[size_t{cls} * kBucketsPerClass + (slot >> kBucketBits)];
    uint32_t end = cum[s + 1];
    while (end <= slot) end = cum[++s + 1];  // ends: cum[423] = 2^14 > slot
    const uint32_t start = cum[s];
    uint32_t nx = (end - start) * (st >> dense::kProbBits) + slot - start;
    if (rend - r >= 2) {
      // No branch on the data: the 0, 1 or 2 bytes due (a decoded state is >= 2^9, §14) from a
      // 16-bit window, as the dense decoder's fast step does.
      const uint32_t need = static_cast<uint32_t>(nx < dense::kRansL) +
                            static_cast<uint32_t>(nx < (dense::kRansL >> 8));
      const uint32_t window = uint32_t{r[0]} << 8 | r[1];
      nx = static_cast<uint32_t>((uint64_t{nx} << (8 * need)) | (window >> (16 - 8 * need)));
      r += need;
    } else {
      while (nx < dense::kRansL) {
        if (r >= rend) return SLICER_ERR_CORRUPT;
        nx = (nx << 8) | *r++;
      }
    }
    st = nx;
    if constexpr (kTrellis) {
      uint64_t m = (s + 1) / 2;  // direct bins (§11)
      if (c.nbits_of[s] != 0 && (!TakeExtraBits(s, bend, &bp, &acc, &cnt, &m) || m > tcq::kMaxMag))
        return SLICER_ERR_CORRUPT;
      const double v = tcq::Reconstruct(m, q, format::dense::SymbolNegative(s), toff, c.delta);
      if (dst != nullptr) dense::StoreElement(c.dtype, dst, i, v);
      tstate[lane] = tcq::kNext[tstate[lane]][m & 1];
      continue;
    }
    double v = c.value[s];
    if (c.nbits_of[s] != 0) {  // a bin with extra bits (§11)
      uint64_t m;
      if (!TakeExtraBits(s, bend, &bp, &acc, &cnt, &m) || m > dense::kMaxMag)
        return SLICER_ERR_CORRUPT;
      v = (static_cast<double>(m) + c.o2 / 256.0) * c.delta;
      if ((s & 1) == 0) v = -v;
    }
    if (dst != nullptr) dense::StoreElement(c.dtype, dst, i, v);
  }
  if (r != rend || bp != bend || acc != 0) return SLICER_ERR_CORRUPT;
  for (unsigned q = 0; q < k; ++q)
    if (x[q] != dense::kRansL) return SLICER_ERR_CORRUPT;
  if (seq != nullptr) *seq = f[0];
  return SLICER_OK;
}

}  // namespace

slicer_status DecodeFrame(const Context& c, const uint8_t* f, size_t size, uint8_t* dst,
                          uint32_t* seq) {
  return c.trellis ? DecodeRow<true>(c, f, size, dst, seq) : DecodeRow<false>(c, f, size, dst, seq);
}

}  // namespace slicer::frames

// ----------------------------------------------------------------------------- C ABI

struct slicer_frame_context {
  slicer::frames::Context ctx;
};

using slicer::internal::GuardStatus;

extern "C" {

void slicer_frame_params_init(slicer_frame_params* params) {
  if (params == nullptr) return;
  std::memset(params, 0, sizeof(*params));
  params->step = 0.01f;
  params->rho_256 = 128;
  params->auto_offsets = 1;
  params->states = 2;
  params->trellis_lambda = 0.34f;
}

int slicer_frame_context_build(const void* rows, int dtype, uint64_t num_rows,
                               const int64_t* row_shape, uint32_t row_ndim,
                               const slicer_frame_params* params, void* dst, size_t dst_capacity,
                               size_t* written) {
  return slicer_frame_context_build_classes(rows, dtype, num_rows, row_shape, row_ndim, params, 1,
                                            dst, dst_capacity, written);
}

int slicer_frame_context_build_classes(const void* rows, int dtype, uint64_t num_rows,
                                       const int64_t* row_shape, uint32_t row_ndim,
                                       const slicer_frame_params* params, uint32_t classes,
                                       void* dst, size_t dst_capacity, size_t* written) {
  return GuardStatus([&]() -> int {
    if (written == nullptr || params == nullptr || (dst == nullptr && dst_capacity > 0)) {
      return SLICER_ERR_INVALID_ARGUMENT;
    }
    *written = 0;
    std::vector<uint8_t> out;
    slicer::frames::BuildContext(rows, dtype, num_rows, row_shape, row_ndim, *params, classes,
                                 &out);
    if (out.size() > dst_capacity) return SLICER_ERR_BUFFER_TOO_SMALL;
    std::memcpy(dst, out.data(), out.size());
    *written = out.size();
    return SLICER_OK;
  });
}

int slicer_frame_context_open(const void* src, size_t size, uint64_t max_elements,
                              slicer_frame_context** context) {
  return GuardStatus([&]() -> int {
    if (context == nullptr) return SLICER_ERR_INVALID_ARGUMENT;
    *context = nullptr;
    auto* h = new slicer_frame_context();
    const slicer_status st =
        slicer::frames::OpenContext(static_cast<const uint8_t*>(src), size, max_elements, &h->ctx);
    if (st != SLICER_OK) {
      delete h;
      return st;
    }
    *context = h;
    return SLICER_OK;
  });
}

void slicer_frame_context_free(slicer_frame_context* context) { delete context; }

int slicer_frame_context_info(const slicer_frame_context* context, slicer_frame_info* info) {
  if (context == nullptr || info == nullptr) return SLICER_ERR_INVALID_ARGUMENT;
  const slicer::frames::Context& c = context->ctx;
  std::memset(info, 0, sizeof(*info));
  info->dtype = static_cast<slicer_dtype>(c.dtype);
  info->ndim = c.ndim;
  for (uint32_t d = 0; d < c.ndim; ++d) info->shape[d] = c.shape[d];
  info->row_elements = c.row;
  info->step = c.step;
  info->rho_256 = c.rho_256;
  info->offset1 = c.o1;
  info->offset2 = c.o2;
  info->states = c.states;
  info->context_id = c.id;
  info->context_bytes = c.bytes;
  info->frame_bound = c.FrameBound();
  info->trellis = c.trellis ? 1 : 0;
  info->trellis_offset1 = c.o1_1;
  info->trellis_offset2 = c.o2_1;
  info->trellis_lambda = c.lambda;
  return SLICER_OK;
}

int slicer_frame_context_classes(const slicer_frame_context* context, uint32_t* classes) {
  if (context == nullptr || classes == nullptr) return SLICER_ERR_INVALID_ARGUMENT;
  *classes = context->ctx.nclass;
  return SLICER_OK;
}

int slicer_frame_encode(slicer_frame_context* context, const void* row, size_t row_bytes,
                        uint32_t seq, void* dst, size_t dst_capacity, size_t* written) {
  return GuardStatus([&]() -> int {
    if (context == nullptr || row == nullptr || written == nullptr || dst == nullptr) {
      return SLICER_ERR_INVALID_ARGUMENT;
    }
    *written = 0;
    slicer::frames::Context& c = context->ctx;
    if (row_bytes != c.row * slicer::dense::DtypeBytes(c.dtype)) return SLICER_ERR_INVALID_ARGUMENT;
    uint8_t* out = static_cast<uint8_t*>(dst);
    std::vector<uint8_t> tmp;
    if (dst_capacity < c.FrameBound()) {  // rare: encode aside, then copy if it fits
      tmp.resize(c.FrameBound());
      out = tmp.data();
    }
    const size_t n = slicer::frames::EncodeFrame(&c, row, seq, out);
    if (out != dst) {
      if (n > dst_capacity) return SLICER_ERR_BUFFER_TOO_SMALL;
      std::memcpy(dst, out, n);
    }
    *written = n;
    return SLICER_OK;
  });
}

int slicer_frame_decode(slicer_frame_context* context, const void* frame, size_t size, void* dst,
                        size_t dst_bytes, uint32_t* seq) {
  return GuardStatus([&]() -> int {
    if (context == nullptr || dst == nullptr) return SLICER_ERR_INVALID_ARGUMENT;
    const slicer::frames::Context& c = context->ctx;
    if (dst_bytes < c.row * slicer::dense::DtypeBytes(c.dtype)) return SLICER_ERR_BUFFER_TOO_SMALL;
    return slicer::frames::DecodeFrame(c, static_cast<const uint8_t*>(frame), size,
                                       static_cast<uint8_t*>(dst), seq);
  });
}

}  // extern "C"
