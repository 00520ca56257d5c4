// Format 2, mode 3 decoder (docs/format.md §21.4): the common header from the format layer
// (format/dense_header.hpp), the body with the dense mode's table, class-map and group helpers;
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
#include "format/dense_header.hpp"
#include "format/reject.hpp"
#include "parallel.hpp"
#include "varint.hpp"

namespace slicer::dense::trellis {
namespace {

using format::Reject;

#define SLICER_TRY(expr)             \
  do {                               \
    const slicer_status s_ = (expr); \
    if (s_ != SLICER_OK) return s_;  \
  } while (0)

struct FreqCum {
  uint32_t freq, cum;
};

struct Stream {
  format::DenseHeader h;
  Layout layout;
  float step = 0;
  unsigned chunk_log2 = 0;
  int off[4] = {0, 0, 0, 0};
  bool has_table = false;
  const uint8_t* table = nullptr;
  std::vector<double> steps;
  double base_step = 0;
  unsigned nclass = 1, class_axis = 0, class_kind = 0;
  ClassGeometry geo;
  std::vector<uint8_t> class_map;
  // Per context x = 2c + q: slot → symbol [x · 2^14, …), (freq, cum) and cum [x · 424, …),
  // nsym. slot → symbol, or kEscape for symbols ≥ 255 (bins of magnitude ≥ 2^33, rare:
  // resolved from cum) and for every slot of an empty table; one byte per slot keeps 2K tables
  // in cache.
  std::vector<uint8_t> slot_symbol;
  std::vector<FreqCum> fc;
  std::vector<uint32_t> cum;
  std::vector<unsigned> nsym;
  uint64_t class_table_bytes[16] = {};
  struct Chunk {
    uint64_t coded, rans_len, bits_len, offset;
  };
  std::vector<Chunk> chunks;
  size_t raw_pos = 0;
  uint64_t coded_total = 0, zero_groups = 0, raw_groups = 0;
};
constexpr size_t kStride = kNumSymbols + 1;
constexpr uint8_t kEscape = 255;
constexpr double kSign[2] = {1.0, -1.0};

slicer_status ParseBody(const uint8_t* data, size_t size, Stream* s, slicer_dense_info* info) {
  const format::DenseHeader& h = s->h;
  MakeLayout(h.shape, h.ndim, h.n, h.layout, &s->layout);  // checked by ParseDenseHeader
  const size_t end = size - 4;
  if (h.params_len != kParamsLen) return Reject(SLICER_ERR_CORRUPT, "dense params_len");
  const uint8_t* p = data + h.params_pos;
  size_t pos = h.params_pos + kParamsLen;
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
  GroupStep(s->step, 0, &s->base_step);
  const size_t header_end = pos;
  const uint64_t groups = s->layout.groups;
  if (s->has_table) {
    if (groups > end - pos) return Reject(SLICER_ERR_TRUNCATED, "dense group table");
    s->table = data + pos;
    pos += groups;
    s->steps.assign(groups, 1.0);
    for (uint64_t g = 0; g < groups; ++g) {
      const uint8_t t = s->table[g];
      if (!GroupByteValid(t)) return Reject(SLICER_ERR_CORRUPT, "dense group table");
      if (GroupIsDense(t)) {
        if (!GroupStep(s->step, static_cast<int8_t>(t), &s->steps[g]))
          return Reject(SLICER_ERR_CORRUPT, "dense group step");
      } else if (t == kGroupZero) {
        ++s->zero_groups;
      } else {
        ++s->raw_groups;
      }
    }
  }
  const size_t table_end = pos;
  // Classes with coded elements (§19.2); with one class: whether anything is coded.
  uint32_t has_coded = 0;
  if (s->nclass > 1) {
    if (h.n > 0) s->class_map.resize(s->geo.length);
    uint64_t map_bytes = 0;
    const slicer_status st =
        format::ParseClasses(s->class_kind, data + pos, end - pos, s->geo.length, s->nclass,
                             h.n > 0 ? s->class_map.data() : nullptr, &map_bytes);
    if (st != SLICER_OK) return Reject(st, "class map");
    pos += map_bytes;
    has_coded = ClassesWithCoded(s->layout, s->has_table ? s->table : nullptr, h.n, s->geo,
                                 s->class_map.data());
  }
  const size_t map_end = pos;
  // Chunks' coded counts first (they decide which classes code something with one class).
  const uint64_t chunk = uint64_t{1} << s->chunk_log2;
  const uint64_t nch = (h.n + chunk - 1) / chunk;
  const unsigned nctx = 2 * s->nclass;
  // kEscape everywhere first: the slots of an empty table (which no element may use) take the
  // escape path, which rejects them
  s->slot_symbol.assign(size_t{nctx} * kProbScale, kEscape);
  s->fc.assign(size_t{nctx} * kStride, FreqCum{0, 0});
  s->cum.assign(size_t{nctx} * kStride, 0);
  s->nsym.assign(nctx, 0);
  for (unsigned x = 0; x < nctx; ++x) {
    const size_t start = pos;
    uint64_t nsym;
    switch (internal::GetVarint(data, end, &pos, &nsym)) {
      case internal::VarintResult::kOk:
        break;
      case internal::VarintResult::kTruncated:
        return SLICER_ERR_TRUNCATED;
      default:
        return SLICER_ERR_CORRUPT;
    }
    if (nsym > kNumSymbols) return Reject(SLICER_ERR_CORRUPT, "dense nsym");
    if (s->nclass > 1 && nsym > 0 && ((has_coded >> (x / 2)) & 1) == 0) {
      return Reject(SLICER_ERR_CORRUPT, "class table (a class without coded elements)");
    }
    if (nsym > 0) {
      std::vector<unsigned> classes;
      switch (ReadClassField(data, end, &pos, static_cast<unsigned>(nsym), &classes)) {
        case SLICER_OK:
          break;
        case SLICER_ERR_TRUNCATED:
          return Reject(SLICER_ERR_TRUNCATED, "dense frequency table");
        default:
          return Reject(SLICER_ERR_CORRUPT, "dense count class or table padding");
      }
      if (classes.back() == 0) return Reject(SLICER_ERR_CORRUPT, "dense count class");
      std::vector<uint32_t> freq, cum;
      Normalize(classes, &freq, &cum);
      uint8_t* lut = s->slot_symbol.data() + size_t{x} * kProbScale;
      for (unsigned q = 0; q < nsym; ++q) {
        s->fc[x * kStride + q] = FreqCum{freq[q], cum[q]};
        s->cum[x * kStride + q] = cum[q];
        std::memset(lut + cum[q], q < kEscape ? q : kEscape, freq[q]);
      }
      s->cum[x * kStride + nsym] = cum[nsym];  // the escape's search needs the end
      s->nsym[x] = static_cast<unsigned>(nsym);
    }
    if (x / 2 < 16) s->class_table_bytes[x / 2] += pos - start;
  }
  const size_t freq_end = pos;
  if (nch > (end - pos) / 2) return Reject(SLICER_ERR_TRUNCATED, "dense chunk table");
  s->chunks.resize(nch);
  uint64_t raw_elements = 0;
  for (uint64_t j = 0; j < nch; ++j) {
    uint64_t coded = 0;
    const uint64_t a = j * chunk, z = std::min(h.n, a + chunk);
    if (!s->has_table) {
      coded = z - a;
    } else {
      for (uint64_t i = a; i < z;) {
        const uint64_t stop = std::min(z, i + s->layout.RunLeft(i, h.n));
        const uint8_t t = s->table[s->layout.GroupOf(i)];
        if (GroupIsDense(t)) coded += stop - i;
        if (t == kGroupRaw) raw_elements += stop - i;
        i = stop;
      }
    }
    uint64_t rl, bl;
    for (uint64_t* v : {&rl, &bl}) {
      switch (internal::GetVarint(data, end, &pos, v)) {
        case internal::VarintResult::kOk:
          break;
        case internal::VarintResult::kTruncated:
          return SLICER_ERR_TRUNCATED;
        default:
          return SLICER_ERR_CORRUPT;
      }
    }
    if (coded == 0 && (rl || bl)) return Reject(SLICER_ERR_CORRUPT, "dense chunk table");
    if (coded > 0 && rl < 4 * uint64_t{StatesFor(coded)})
      return Reject(SLICER_ERR_CORRUPT, "dense chunk table");
    if (rl > size || bl > size) return Reject(SLICER_ERR_TRUNCATED, "dense chunk table");
    s->chunks[j] = Stream::Chunk{coded, rl, bl, 0};
    s->coded_total += coded;
  }
  if (s->nclass == 1 && s->coded_total == 0 && (s->nsym[0] || s->nsym[1]))
    return Reject(SLICER_ERR_CORRUPT, "class table (a class without coded elements)");
  const size_t chunk_end = pos;
  const size_t item = DtypeBytes(h.dtype);
  if (raw_elements > (end - pos) / item) return Reject(SLICER_ERR_TRUNCATED, "dense raw values");
  s->raw_pos = pos;
  pos += raw_elements * item;
  const size_t raw_end = pos;
  uint64_t payload = 0;
  for (Stream::Chunk& c : s->chunks) {
    c.offset = pos + payload;
    payload += c.rans_len + c.bits_len;
    if (payload > size) return Reject(SLICER_ERR_CORRUPT, "dense chunk table");
  }
  if (payload != end - pos) return Reject(SLICER_ERR_CORRUPT, "dense payload length");
  if (info != nullptr) {
    std::memset(info, 0, sizeof(*info));
    info->format_version = kVersion;
    info->mode = kModeTrellis;
    info->dtype = static_cast<slicer_dtype>(h.dtype);
    info->ndim = h.ndim;
    for (uint32_t d = 0; d < h.ndim; ++d) info->shape[d] = h.shape[d];
    info->num_elements = h.n;
    info->layout = h.layout;
    info->group_count = groups;
    info->step = s->step;
    info->offset1 = s->off[0];
    info->offset2 = s->off[1];
    info->trellis_offset1 = s->off[2];
    info->trellis_offset2 = s->off[3];
    info->chunk_log2 = s->chunk_log2;
    info->has_group_table = s->has_table;
    info->total_bytes = size;
    info->header_bytes = header_end;
    info->group_table_bytes = table_end - header_end;
    info->class_map_bytes = map_end - table_end;
    info->freq_table_bytes = freq_end - map_end;
    info->classes = s->nclass;
    info->class_axis = s->class_axis;
    info->class_map_kind = s->class_kind;
    if (s->class_kind == format::kMapBounds) {
      uint64_t used = 0;
      format::ReadBounds(data + table_end, map_end - table_end, s->geo.length, s->nclass,
                         info->class_bounds, &used);
    }
    for (unsigned c = 0; c < 16; ++c) info->class_table_bytes[c] = s->class_table_bytes[c];
    info->chunk_table_bytes = chunk_end - freq_end;
    info->raw_bytes = raw_end - chunk_end;
    for (const Stream::Chunk& c : s->chunks) {
      info->rans_bytes += c.rans_len;
      info->extra_bits_bytes += c.bits_len;
    }
    info->checksum_bytes = 4;
    info->coded = s->coded_total;
    info->chunks = nch;
    for (unsigned x = 0; x < nctx; ++x)
      info->symbols = std::max<uint64_t>(info->symbols, s->nsym[x]);
    info->zero_groups = s->zero_groups;
    info->raw_groups = s->raw_groups;
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
      if (dst != nullptr) {  // §21.2 without branches on the data (the sign and m = 0 are
                             // random): ×(−1) is exact, and m = 0 selects +0
        const double sign = kSign[format::dense::SymbolNegative(sym) ? 1 : 0];
        const double mag = static_cast<double>(static_cast<int64_t>(2 * m) - q);
        const double v = ((mag + off[2 * q + (m != 1 ? 1 : 0)]) * delta) * sign;
        Store<kDtype>(dst, i, m != 0 ? v : 0.0);
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
                    slicer_dense_info* info) {
  Stream s;
  return ParseStream(data, size, max_elements, &s, info);
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
    const size_t count = (s.chunks.empty() ? size - 4 : s.chunks[0].offset) - s.raw_pos;
    for (size_t q = 0; q < count / item; ++q) {
      const double v = LoadElement(s.h.dtype, data + s.raw_pos, q);
      if (!std::isfinite(v)) return Reject(SLICER_ERR_CORRUPT, "dense raw values");
    }
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
