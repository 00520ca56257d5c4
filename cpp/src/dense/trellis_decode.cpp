// Format 2, mode 3 decoder (docs/format.md §21.4): the common header and the body from the format
// layer (format/dense_header.hpp, format/dense_body.hpp), shared with modes 1 and 2;
// validates everything before it allocates from a size the stream states, never reads outside
// [data, data + size).
#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "dense/coder.hpp"
#include "dense/dense.hpp"
#include "dense/dense_internal.hpp"
#include "dense/trellis.hpp"
#include "format/class_map.hpp"
#include "format/dense_body.hpp"
#include "format/dense_header.hpp"
#include "format/reject.hpp"
#include "parallel.hpp"
#include "varint.hpp"

namespace slicer::dense::trellis {
namespace {

using format::Reject;

struct FreqCum {
  uint32_t freq, cum;
};

// The parsed stream: the body (group table, class map, tables, chunks) by the format layer,
// the mode's parameters and its decoding tables.
struct Stream : format::DenseBodyParams, format::DenseBody {
  format::DenseHeader h;
  int off[4] = {0, 0, 0, 0};
  // Per context x = 2c + q: slot → symbol [x · 2^14, …), (freq, cum) and cum [x · 424, …),
  // nsym. slot → symbol, or kEscape for symbols ≥ 255 (bins of magnitude ≥ 2^33, rare:
  // resolved from cum) and for every slot of an empty table; one byte per slot keeps 2K tables
  // in cache.
  std::vector<uint8_t> slot_symbol;
  std::vector<FreqCum> fc;
  std::vector<uint32_t> cum;
  std::vector<unsigned> nsym;
  using Chunk = format::DenseChunk;
};
constexpr size_t kStride = kNumSymbols + 1;
constexpr uint8_t kEscape = 255;

slicer_status ParseBody(const uint8_t* data, size_t size, Stream* s, slicer_dense_info* info) {
  const format::DenseHeader& h = s->h;
  if (h.params_len != kParamsLen) return Reject(SLICER_ERR_CORRUPT, "dense params_len");
  const uint8_t* p = data + h.params_pos;
  std::memcpy(&s->step, p, 4);
  s->chunk_log2 = p[4];
  if (!(std::isfinite(s->step) && s->step >= 0x1p-126f))
    return Reject(SLICER_ERR_CORRUPT, "dense step");
  if (s->chunk_log2 < 6 || s->chunk_log2 > 24 || p[5] > 1)
    return Reject(SLICER_ERR_CORRUPT, "dense parameters");
  s->has_table = p[5] == 1;
  const uint8_t axis = p[6];
  s->nclass = p[7];
  const uint8_t kinds = format::kClassRangesBit | format::kClassBoundsBit;
  if ((axis & ~(format::kClassAxisBit | kinds)) != 0 || (axis & kinds) == kinds ||
      (s->nclass == 1 && axis != 0)) {
    return Reject(SLICER_ERR_CORRUPT, "class axis");
  }
  if (s->nclass == 0 || s->nclass > SLICER_DENSE_MAX_CLASSES)
    return Reject(SLICER_ERR_CORRUPT, "class count");
  if (s->nclass > 1) {
    s->class_axis = axis & format::kClassAxisBit;
    s->class_kind = (axis & format::kClassRangesBit)   ? format::kMapRanges
                    : (axis & format::kClassBoundsBit) ? format::kMapBounds
                                                       : format::kMapRank;
    if (!MakeClassGeometry(h.shape, h.ndim, s->class_axis, &s->geo))
      return Reject(SLICER_ERR_CORRUPT, "class axis");
    if (s->nclass > s->geo.length) return Reject(SLICER_ERR_CORRUPT, "class count");
  }
  for (unsigned w = 0; w < 4; ++w) s->off[w] = static_cast<int8_t>(p[8 + w]);
  // The body (§12.1, §13, §19.2, §21.3) by the format layer: two tables per class.
  s->tables_per_class = 2;
  s->empty_iff_uncoded = false;
  s->account_one_class_tables = true;
  const format::DenseBodyParams& bp = *s;
  SLICER_TRY(format::ParseDenseBody(data, size, h, bp, s));
  const format::DenseBody& body = *s;
  if (info != nullptr) {
    format::FillDenseInfo(data, size, h, bp, body, info);
    info->offset1 = s->off[0];
    info->offset2 = s->off[1];
    info->trellis_offset1 = s->off[2];
    info->trellis_offset2 = s->off[3];
  }
  const unsigned nctx = 2 * s->nclass;
  // kEscape everywhere first: the slots of an empty table (which no element may use) take the
  // escape path, which rejects them
  s->slot_symbol.assign(size_t{nctx} * kProbScale, kEscape);
  s->fc.assign(size_t{nctx} * kStride, FreqCum{0, 0});
  s->cum.assign(size_t{nctx} * kStride, 0);
  s->nsym.assign(nctx, 0);
  for (unsigned x = 0; x < nctx; ++x) {
    const format::DenseTable& t = body.tables[x];
    if (t.nsym == 0) continue;
    uint8_t* lut = s->slot_symbol.data() + size_t{x} * kProbScale;
    for (unsigned q = 0; q < t.nsym; ++q) {
      s->fc[x * kStride + q] = FreqCum{t.freq[q], t.cum[q]};
      s->cum[x * kStride + q] = t.cum[q];
      std::memset(lut + t.cum[q], q < kEscape ? q : kEscape, t.freq[q]);
    }
    s->cum[x * kStride + t.nsym] = t.cum[t.nsym];  // the escape's search needs the end
    s->nsym[x] = t.nsym;
  }
  return SLICER_OK;
}

template <int kDtype>
inline void Store(uint8_t* dst, uint64_t i, double v) {
  if constexpr (kDtype == SLICER_FLOAT64) {
    std::memcpy(dst + 8 * i, &v, 8);
  } else if constexpr (kDtype == SLICER_FLOAT32) {
    const float f = static_cast<float>(v);
    std::memcpy(dst + 4 * i, &f, 4);
  } else {
    StoreElement(kDtype, dst, i, v);
  }
}

// Decodes chunk j (§21.4); stores its elements when dst != nullptr. Every read is checked
// against its area (the rANS bytes, the extra-bit area); the extra bits come from a 64-bit
// window while one fits inside the stream.
template <int kDtype>
slicer_status DecodeChunkT(const Stream& s, const uint8_t* data, size_t size, uint64_t j,
                           uint8_t* dst) {
  const Stream::Chunk& c = s.chunks[j];
  const uint64_t chunk = uint64_t{1} << s.chunk_log2;
  const uint64_t n = s.h.n;
  const uint64_t begin = j * chunk, stop_all = std::min(n, begin + chunk);
  const uint8_t* r = data + c.offset;
  const uint8_t* const rend = r + c.rans_len;
  const uint8_t* const bits = rend;
  const uint64_t bit_limit = 8 * c.bits_len;
  // bits[b … b + 7] lies inside the stream for b < window_end
  const uint64_t room = size - (c.offset + c.rans_len);
  const uint64_t window_end = room >= 8 ? room - 7 : 0;
  const unsigned k = StatesFor(c.coded);
  uint32_t x[4] = {kRansL, kRansL, kRansL, kRansL};
  uint8_t tstate[4] = {0, 0, 0, 0};
  if (c.coded > 0) {
    for (unsigned q = 0; q < k; ++q) {
      x[q] = uint32_t{r[0]} | uint32_t{r[1]} << 8 | uint32_t{r[2]} << 16 | uint32_t{r[3]} << 24;
      r += 4;
      if (x[q] < kRansL || x[q] >= (kRansL << 8))
        return Reject(SLICER_ERR_CORRUPT, "dense rANS initial state");
    }
  }
  // Per context: the offsets / 256 of m = 1 and m >= 2 (§21.2).
  const double off[4] = {s.off[0] / 256.0, s.off[1] / 256.0, s.off[2] / 256.0, s.off[3] / 256.0};
  const bool classes = s.nclass > 1;
  uint64_t bit_pos = 0;
  unsigned lane = 0;
  for (uint64_t i = begin; i < stop_all;) {
    const uint64_t g = s.layout.GroupOf(i);
    const uint64_t stop = std::min(stop_all, i + s.layout.RunLeft(i, n));
    if (s.has_table && !GroupIsDense(s.table[g])) {
      if (dst != nullptr && s.table[g] == kGroupZero) {
        for (; i < stop; ++i) Store<kDtype>(dst, i, 0.0);
      }
      i = stop;
      continue;
    }
    const double delta = s.has_table ? s.steps[g] : s.base_step;
    uint64_t pos = 0, within = 0;  // the class-axis position of element i (§19.1), walked
    if (classes) {
      pos = (i / s.geo.inner) % s.geo.length;
      within = i % s.geo.inner;
    }
    for (; i < stop; ++i) {
      const unsigned q = tstate[lane] >> 1;
      unsigned cls = 0;
      if (classes) {
        cls = s.class_map[pos];
        if (++within == s.geo.inner) {
          within = 0;
          if (++pos == s.geo.length) pos = 0;
        }
      }
      const size_t ctx = 2u * cls + q;
      uint32_t st = x[lane];
      const uint32_t slot = st & (kProbScale - 1);
      unsigned sym = s.slot_symbol[ctx * kProbScale + slot];
      if (__builtin_expect(sym == kEscape, 0)) {  // a symbol >= 255, or an empty table
        if (s.nsym[ctx] == 0) return Reject(SLICER_ERR_CORRUPT, "trellis context table empty");
        const uint32_t* cum = s.cum.data() + ctx * kStride;
        sym = static_cast<unsigned>(std::upper_bound(cum, cum + s.nsym[ctx] + 1, slot) - cum) - 1;
      }
      const FreqCum fc = s.fc[ctx * kStride + sym];
      st = fc.freq * (st >> kProbBits) + slot - fc.cum;
      if (rend - r >= 2) {  // §14: a decoded state is ≥ 2^9, so at most two bytes are due
        const uint32_t need =
            static_cast<uint32_t>(st < kRansL) + static_cast<uint32_t>(st < (kRansL >> 8));
        const uint32_t window = uint32_t{r[0]} << 8 | r[1];
        st = static_cast<uint32_t>((uint64_t{st} << (8 * need)) | (window >> (16 - 8 * need)));
        r += need;
      } else {
        while (st < kRansL) {
          if (r >= rend) return Reject(SLICER_ERR_CORRUPT, "dense rANS payload");
          st = (st << 8) | *r++;
        }
      }
      x[lane] = st;
      uint64_t m = (sym + 1) / 2;  // direct bins (§11)
      if (m >= kDirect) {
        uint64_t base;
        unsigned nbits;
        BinBase(static_cast<unsigned>(m), &base, &nbits);
        if (bit_pos + nbits > bit_limit) return Reject(SLICER_ERR_CORRUPT, "dense rANS payload");
        uint64_t extra = 0;
        if ((bit_pos >> 3) < window_end) {  // nbits ≤ 51: one 64-bit window holds them
          uint64_t word;
          std::memcpy(&word, bits + (bit_pos >> 3), 8);
          extra = (word >> (bit_pos & 7)) & ((uint64_t{1} << nbits) - 1);
        } else {
          for (unsigned b = 0; b < nbits; ++b)
            extra |= uint64_t{(bits[(bit_pos + b) >> 3] >> ((bit_pos + b) & 7)) & 1u} << b;
        }
        bit_pos += nbits;
        m = base + extra;
        if (m > kMaxMag) return Reject(SLICER_ERR_CORRUPT, "trellis magnitude above 2^52");
      }
      if (dst != nullptr) {  // §21.2 (trellis.hpp's Reconstruct, shared with frames)
        Store<kDtype>(dst, i, Reconstruct(m, q, format::dense::SymbolNegative(sym), off, delta));
      }
      tstate[lane] = kNext[tstate[lane]][m & 1];
      if (++lane == k) lane = 0;
    }
  }
  const uint64_t used = (bit_pos + 7) / 8;
  if (r != rend || used != c.bits_len ||
      ((bit_pos & 7) != 0 && (bits[bit_pos >> 3] >> (bit_pos & 7)) != 0)) {
    return Reject(SLICER_ERR_CORRUPT, "dense chunk length");
  }
  for (unsigned q = 0; q < k && c.coded > 0; ++q)
    if (x[q] != kRansL) return Reject(SLICER_ERR_CORRUPT, "dense rANS final state");
  return SLICER_OK;
}

slicer_status DecodeChunk(const Stream& s, const uint8_t* data, size_t size, uint64_t j,
                          uint8_t* dst) {
  switch (s.h.dtype) {
    case SLICER_FLOAT64:
      return DecodeChunkT<SLICER_FLOAT64>(s, data, size, j, dst);
    case SLICER_FLOAT32:
      return DecodeChunkT<SLICER_FLOAT32>(s, data, size, j, dst);
    case SLICER_FLOAT16:
      return DecodeChunkT<SLICER_FLOAT16>(s, data, size, j, dst);
    default:
      return DecodeChunkT<SLICER_BFLOAT16>(s, data, size, j, dst);
  }
}

slicer_status ParseStream(const uint8_t* data, size_t size, uint64_t max_elements, Stream* s,
                          slicer_dense_info* info) {
  uint32_t version = 0;
  SLICER_TRY(CheckContainer(data, size, &version));
  if (version != kVersion) return Reject(SLICER_ERR_BAD_VERSION, "version");
  SLICER_TRY(format::ParseDenseHeader(data, size, max_elements, &s->h));
  if (s->h.mode != kModeTrellis) return Reject(SLICER_ERR_UNSUPPORTED_MODE, "mode");
  return ParseBody(data, size, s, info);
}

}  // namespace

bool IsTrellisStream(const uint8_t* data, size_t size, uint64_t max_elements) {
  if (data == nullptr || size < 9 || data[4] != kVersion) return false;
  format::DenseHeader h;
  if (format::ParseDenseHeader(data, size, max_elements, &h) != SLICER_OK) {
    format::ClearRejection();  // the caller's parser reports it
    return false;
  }
  return h.mode == kModeTrellis;
}

slicer_status Parse(const uint8_t* data, size_t size, uint64_t max_elements,
                    slicer_dense_info* info, format::DenseBody* body) {
  Stream s;
  const slicer_status st = ParseStream(data, size, max_elements, &s, info);
  if (st == SLICER_OK && body != nullptr) *body = static_cast<const format::DenseBody&>(s);
  return st;
}

slicer_status Decode(const uint8_t* data, size_t size, uint64_t max_elements, void* dst,
                     size_t dst_bytes, unsigned threads, slicer_dense_info* info) {
  Stream s;
  SLICER_TRY(ParseStream(data, size, max_elements, &s, info));
  uint8_t* out = static_cast<uint8_t*>(dst);
  const size_t item = DtypeBytes(s.h.dtype);
  const uint64_t n = s.h.n;
  if (out != nullptr && dst_bytes < n * item) return SLICER_ERR_BUFFER_TOO_SMALL;
  if (s.has_table && s.raw_groups > 0) {  // raw values: verbatim, finite (§13.4)
    if (!format::RawValuesFinite(data, s.h.dtype, s.raw_pos,
                                 s.chunks.empty() ? size - 4 : s.chunks[0].offset))
      return Reject(SLICER_ERR_CORRUPT, "dense raw values");
    if (out != nullptr) {
      size_t pos = s.raw_pos;
      for (uint64_t g = 0; g < s.layout.groups; ++g) {
        if (s.table[g] != kGroupRaw) continue;
        for (uint64_t i = 0; i < n;) {
          const uint64_t stop = std::min(n, i + s.layout.RunLeft(i, n));
          if (s.layout.GroupOf(i) == g) {
            std::memcpy(out + item * i, data + pos, item * (stop - i));
            pos += item * (stop - i);
          }
          i = stop;
        }
      }
    }
  }
  const uint64_t nch = s.chunks.size();
  const unsigned parts =
      n < (uint64_t{1} << 18) ? 1u : internal::PartCount(nch, internal::ResolveThreads(threads), 1);
  std::vector<slicer_status> status(parts, SLICER_OK);
  internal::RunParts(nch, parts, [&](unsigned part, uint64_t j0, uint64_t j1) {
    for (uint64_t j = j0; j < j1 && status[part] == SLICER_OK; ++j) {
      status[part] = DecodeChunk(s, data, size, j, out);
    }
  });
  for (slicer_status st : status)
    if (st != SLICER_OK) return st;
  return SLICER_OK;
}

}  // namespace slicer::dense::trellis
