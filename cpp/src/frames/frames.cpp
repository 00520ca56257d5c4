// Frames for token streams (docs/format.md §17); byte-identical to tests/reference_frames.py.
// The quantizer, symbols, table coding and rANS steps are the dense mode's (dense/coder.hpp).
#include "frames/frames.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <new>

#include "codec.hpp"
#include "crc32.hpp"
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
  if (!(std::isfinite(p.step) && p.step >= 0x1p-126f) || p.rho_256 < 1 || p.rho_256 > 128 ||
      p.auto_offsets > 1 || (p.states != 1 && p.states != 2 && p.states != 4)) {
    throw StatusError(SLICER_ERR_INVALID_ARGUMENT, "params");
  }
  if (nclass < 1 || nclass > format::kMaxClasses || nclass > row) {
    throw StatusError(SLICER_ERR_INVALID_ARGUMENT, "classes");
  }
  double delta = 0;
  dense::GroupStep(p.step, 0, &delta);
  const double rho = p.rho_256 / 256.0;
  const uint8_t* bytes = static_cast<const uint8_t*>(rows);
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
  const int8_t o1 = p.auto_offsets ? sums.O1() : p.offset1;
  const int8_t o2 = p.auto_offsets ? sums.O2() : p.offset2;
  std::vector<uint8_t> cmap(row, 0);
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
  std::vector<unsigned> classes(uint64_t{nclass} * dense::kNumSymbols);
  for (unsigned c = 0; c < nclass; ++c) {
    unsigned shift = 0;
    while ((total[c] << shift) < (uint64_t{1} << 15)) ++shift;
    for (unsigned s = 0; s < dense::kNumSymbols; ++s) {
      const uint64_t h = hist[uint64_t{c} * dense::kNumSymbols + s];
      classes[uint64_t{c} * dense::kNumSymbols + s] = h ? dense::CountClass(h << shift) : 1;
    }
  }
  out->clear();
  static const uint8_t magic[4] = {0x53, 0x4C, 0x43, 0x52};
  out->insert(out->end(), magic, magic + 4);
  out->push_back(dense::kVersion);
  out->push_back(kKindContext);
  out->push_back(static_cast<uint8_t>(dtype));
  out->push_back(nclass > 1 ? 1 : 0);  // flags bit 0: a class map follows the states
  out->push_back(static_cast<uint8_t>(row_ndim));
  for (uint32_t d = 0; d < row_ndim; ++d) {
    uint8_t buf[10];
    const size_t len = internal::PutVarint(static_cast<uint64_t>(row_shape[d]), buf);
    out->insert(out->end(), buf, buf + len);
  }
  uint8_t mp[8];
  std::memcpy(mp, &p.step, 4);
  mp[4] = p.rho_256;
  mp[5] = static_cast<uint8_t>(o1);
  mp[6] = static_cast<uint8_t>(o2);
  mp[7] = p.states;
  out->insert(out->end(), mp, mp + 8);
  if (nclass > 1) {
    out->push_back(static_cast<uint8_t>(nclass));
    format::WriteClassMap(cmap.data(), row, out);
  }
  for (unsigned c = 0; c < nclass; ++c) {
    uint8_t nsym[2];
    const size_t vl = internal::PutVarint(dense::kNumSymbols, nsym);
    out->insert(out->end(), nsym, nsym + vl);
    dense::WriteClassField(classes.data() + uint64_t{c} * dense::kNumSymbols, dense::kNumSymbols,
                           out);
  }
  const uint32_t crc = internal::Crc32(0, out->data(), out->size());
  for (int b = 0; b < 4; ++b) out->push_back(static_cast<uint8_t>(crc >> (8 * b)));
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
  if ((b & ~1u) != 0) return SLICER_ERR_CORRUPT;
  const bool has_map = (b & 1) != 0;
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
  if (end - pos < 8) return SLICER_ERR_TRUNCATED;
  std::memcpy(&c->step, data + pos, 4);
  c->rho_256 = data[pos + 4];
  c->o1 = static_cast<int8_t>(data[pos + 5]);
  c->o2 = static_cast<int8_t>(data[pos + 6]);
  c->states = data[pos + 7];
  pos += 8;
  if (c->states != 1 && c->states != 2 && c->states != 4) return SLICER_ERR_CORRUPT;
  if (!(std::isfinite(c->step) && c->step >= 0x1p-126f)) return SLICER_ERR_CORRUPT;
  if (c->rho_256 < 1 || c->rho_256 > 128) return SLICER_ERR_CORRUPT;
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
  c->tables.assign(c->nclass, {});
  for (unsigned k = 0; k < c->nclass; ++k) {
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
  c->enc.resize(uint64_t{c->nclass} * dense::kNumSymbols);
  c->bucket_symbol.assign(uint64_t{c->nclass} * kBucketsPerClass, 0);
  c->cum.resize(uint64_t{c->nclass} * kCumStride);
  std::vector<uint32_t> freq, cum;
  for (unsigned k = 0; k < c->nclass; ++k) {
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
  c->syms.resize(row);
  c->rans.resize(24 + 2 * row + 2);
  c->t.resize(row);
  c->neg.resize(row);
  c->bits.resize((51 * row + 7) / 8 + 8);
  return SLICER_OK;
}

size_t EncodeFrame(Context* c, const void* row_data, uint32_t seq, uint8_t* dst) {
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
      acc |= extra << cnt;
      cnt += nb;
      while (cnt >= 8) {
        bits[bits_pos++] = static_cast<uint8_t>(acc);
        acc >>= 8;
        cnt -= 8;
      }
    }
    if (cnt > 0) bits[bits_pos++] = static_cast<uint8_t>(acc);
  }
  // §18: with a class map, the symbol indexes its class's block of encoder symbols.
  if (c->nclass > 1) {
    const uint16_t* base = c->sym_base.data();
    for (uint64_t i = 0; i < r; ++i) syms[i] = static_cast<uint16_t>(syms[i] + base[i]);
  }
  // Pass 2 (§14): rANS backwards into the scratch.
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
  // Assemble (§17.2).
  size_t o = 0;
  dst[o++] = static_cast<uint8_t>(seq);
  o += internal::PutVarint(bits_pos, dst + o);
  std::memcpy(dst + o, ptr, rans_len);
  o += rans_len;
  std::memcpy(dst + o, bits, bits_pos);
  o += bits_pos;
  const uint32_t check = IdCheck(c->id, dst, o);
  for (int b = 0; b < 4; ++b) dst[o++] = static_cast<uint8_t>(check >> (8 * b));
  return o;
}

slicer_status DecodeFrame(const Context& c, const uint8_t* f, size_t size, uint8_t* dst,
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
  for (uint64_t i = 0; i < c.row; ++i) {
    // one rANS step (dense::RansGet) on the tables of position i's class
    const unsigned cls = cmap[i];
    uint32_t& st = x[i & (k - 1)];
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
    double v = c.value[s];
    if (c.nbits_of[s] != 0) {  // a bin with extra bits (§11)
      uint64_t m;
      unsigned nb;
      dense::BinBase(dense::BinOf(s), &m, &nb);
      while (cnt < nb) {
        if (bp >= bend) return SLICER_ERR_CORRUPT;
        acc |= uint64_t{*bp++} << cnt;
        cnt += 8;
      }
      m += acc & ((uint64_t{1} << nb) - 1);
      acc >>= nb;
      cnt -= nb;
      if (m > dense::kMaxMag) return SLICER_ERR_CORRUPT;
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
