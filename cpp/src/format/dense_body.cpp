#include "format/dense_body.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "dense/coder.hpp"
#include "format/class_map.hpp"
#include "format/reject.hpp"

namespace slicer::format {
slicer_status ParseDenseBody(const uint8_t* data, size_t size, const DenseHeader& h,
                             const DenseBodyParams& p, DenseBody* b) {
  using namespace ::slicer::dense;
  ::slicer::dense::MakeLayout(h.shape, h.ndim, h.n, h.layout,
                              &b->layout);  // checked by ParseDenseHeader
  ::slicer::dense::GroupStep(p.step, 0, &b->base_step);
  const size_t end = size - 4;
  size_t pos = h.params_pos + h.params_len;
  b->header_end = pos;
  // Group table (§12.1).
  const uint64_t groups = b->layout.groups;
  if (p.has_table) {
    if (groups > end - pos) return Reject(SLICER_ERR_TRUNCATED, "dense group table");
    b->table = data + pos;
    pos += groups;
    b->steps.assign(groups, 1.0);
    for (uint64_t g = 0; g < groups; ++g) {
      const uint8_t t = b->table[g];
      if (!GroupByteValid(t)) return Reject(SLICER_ERR_CORRUPT, "dense group table");
      if (GroupIsDense(t)) {
        if (!GroupStep(p.step, static_cast<int8_t>(t), &b->steps[g]))
          return Reject(SLICER_ERR_CORRUPT, "dense group step");
      } else if (t == kGroupZero) {
        ++b->zero_groups;
      } else {
        ++b->raw_groups;
      }
    }
  }
  b->table_end = pos;
  // Class map (§19.2: §18.1 bytes, §18.3 index ranges: none, §18.4 gaps). Per-position
  // classes only when there are elements (then L <= N <= max_elements): a stream of N = 0 may
  // name any L, and its map is only checked.
  uint32_t has_coded = 0;  // classes with coded elements
  if (p.nclass > 1) {
    if (h.n > 0) b->class_map.resize(p.geo.length);
    uint64_t map_bytes = 0;
    const slicer_status st =
        ParseClasses(p.class_kind, data + pos, end - pos, p.geo.length, p.nclass,
                     h.n > 0 ? b->class_map.data() : nullptr, &map_bytes);
    if (st != SLICER_OK) return Reject(st, "class map");
    pos += map_bytes;
    b->class_map_bytes = map_bytes;
    has_coded = ClassesWithCoded(b->layout, p.has_table ? b->table : nullptr, h.n, p.geo,
                                 b->class_map.data());
  }
  b->map_end = pos;
  // Frequency tables (§13.1): per class (§19.2), per class and trellis state (§21.3).
  const unsigned ntab = p.nclass * p.tables_per_class;
  b->tables.assign(ntab, DenseTable{});
  for (unsigned x = 0; x < ntab; ++x) {
    DenseTable& t = b->tables[x];
    const size_t start = pos;
    uint64_t nsym;
    SLICER_TRY(ReadVarint(data, end, &pos, &nsym));
    if (nsym > kNumSymbols) return Reject(SLICER_ERR_CORRUPT, "dense nsym");
    if (p.nclass > 1) {
      const bool coded = ((has_coded >> (x / p.tables_per_class)) & 1) != 0;
      if (p.empty_iff_uncoded && (nsym == 0) == coded)
        return Reject(SLICER_ERR_CORRUPT, "class table (empty iff its class codes nothing)");
      if (!p.empty_iff_uncoded && nsym > 0 && !coded)
        return Reject(SLICER_ERR_CORRUPT, "class table (a class without coded elements)");
    }
    if (nsym > 0 && p.table_kind == kTableKindGeom) {  // §13.5: z, a
      if (end - pos < 2) return Reject(SLICER_ERR_TRUNCATED, "dense frequency table");
      std::vector<unsigned __int128> counts;
      GeomCounts(static_cast<unsigned>(nsym), data[pos], data[pos + 1], &counts);
      pos += 2;
      NormalizeCounts(counts, &t.freq, &t.cum);
      t.nsym = static_cast<unsigned>(nsym);
    } else if (nsym > 0) {
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
      for (unsigned v : classes)  // §13.5: the classes of kind t
        if (v > ClassMaxOfKind(p.table_kind))
          return Reject(SLICER_ERR_CORRUPT, "dense count class");
      Normalize(classes, &t.freq, &t.cum, p.table_kind);
      t.nsym = static_cast<unsigned>(nsym);
    }
    t.bytes = pos - start;
    b->max_nsym = std::max(b->max_nsym, t.nsym);
  }
  b->freq_end = pos;
  // Chunk table (§13.3): each chunk's coded count from the group table.
  const uint64_t chunk = uint64_t{1} << p.chunk_log2;
  const uint64_t nch = (h.n + chunk - 1) / chunk;
  if (nch > (end - pos) / 2) return Reject(SLICER_ERR_TRUNCATED, "dense chunk table");
  b->chunks.resize(nch);
  uint64_t raw_elements = 0;
  for (uint64_t j = 0; j < nch; ++j) {
    uint64_t coded = 0;
    const uint64_t a = j * chunk, z = std::min(h.n, a + chunk);
    if (!p.has_table) {
      coded = z - a;
    } else {
      for (uint64_t i = a; i < z;) {
        const uint64_t stop = std::min(z, i + b->layout.RunLeft(i, h.n));
        const uint8_t t = b->table[b->layout.GroupOf(i)];
        if (GroupIsDense(t)) coded += stop - i;
        if (t == kGroupRaw) raw_elements += stop - i;
        i = stop;
      }
    }
    uint64_t rl, bl;
    SLICER_TRY(ReadVarint(data, end, &pos, &rl));
    SLICER_TRY(ReadVarint(data, end, &pos, &bl));
    if (coded == 0 && (rl || bl)) return Reject(SLICER_ERR_CORRUPT, "dense chunk table");
    if (coded > 0 && rl < 4 * uint64_t{StatesFor(coded)})
      return Reject(SLICER_ERR_CORRUPT, "dense chunk table");
    if (rl > size || bl > size) return Reject(SLICER_ERR_TRUNCATED, "dense chunk table");
    // §13.6: the plane (coded · k bits, coded ≤ 2^24, k ≤ 15) inside the bit area
    if (coded * p.low_bits > 8 * bl) return Reject(SLICER_ERR_CORRUPT, "dense low-bit plane");
    b->chunks[j] = DenseChunk{coded, rl, bl, 0};
    b->coded_total += coded;
  }
  if (p.nclass == 1) {  // one class: its tables against "anything coded"
    if (p.empty_iff_uncoded && (b->max_nsym == 0) != (b->coded_total == 0))
      return Reject(SLICER_ERR_CORRUPT, "dense frequency table");
    if (!p.empty_iff_uncoded && b->coded_total == 0 && b->max_nsym > 0)
      return Reject(SLICER_ERR_CORRUPT, "class table (a class without coded elements)");
  }
  b->chunk_end = pos;
  // Raw values (§13.4) and the payloads (§13.3).
  const size_t item = DtypeBytes(h.dtype);
  if (raw_elements > (end - pos) / item) return Reject(SLICER_ERR_TRUNCATED, "dense raw values");
  b->raw_pos = pos;
  pos += raw_elements * item;
  b->raw_end = pos;
  uint64_t payload = 0;
  for (DenseChunk& c : b->chunks) {
    c.offset = pos + payload;
    payload += c.rans_len + c.bits_len;
    if (payload > size) return Reject(SLICER_ERR_CORRUPT, "dense chunk table");
  }
  if (payload != end - pos) return Reject(SLICER_ERR_CORRUPT, "dense payload length");
  return SLICER_OK;
}

void FillDenseInfo(const uint8_t* data, size_t size, const DenseHeader& h, const DenseBodyParams& p,
                   const DenseBody& b, slicer_dense_info* info) {
  std::memset(info, 0, sizeof(*info));
  info->format_version = ::slicer::dense::kVersion;
  info->mode = h.mode;
  info->dtype = static_cast<slicer_dtype>(h.dtype);
  info->ndim = h.ndim;
  for (uint32_t d = 0; d < h.ndim; ++d) info->shape[d] = h.shape[d];
  info->num_elements = h.n;
  info->layout = h.layout;
  info->group_count = b.layout.groups;
  info->step = p.step;
  info->chunk_log2 = p.chunk_log2;
  info->has_group_table = p.has_table;
  info->table_kind = p.table_kind;
  info->low_bits = p.low_bits;
  info->total_bytes = size;
  info->header_bytes = b.header_end;
  info->group_table_bytes = b.table_end - b.header_end;
  info->class_map_bytes = b.map_end - b.table_end;
  info->freq_table_bytes = b.freq_end - b.map_end;
  info->classes = p.nclass;
  info->class_axis = p.class_axis;
  info->class_map_kind = p.class_kind;
  if (p.class_kind == kMapBounds) {  // §18.4: the gaps again (also when N = 0)
    uint64_t used = 0;
    ReadBounds(data + b.table_end, b.map_end - b.table_end, p.geo.length, p.nclass,
               info->class_bounds, &used);
  }
  if (p.nclass > 1 || p.account_one_class_tables) {
    for (unsigned x = 0; x < b.tables.size(); ++x) {
      const unsigned c = x / p.tables_per_class;
      if (c < 16) info->class_table_bytes[c] += b.tables[x].bytes;
    }
  }
  info->chunk_table_bytes = b.chunk_end - b.freq_end;
  info->raw_bytes = b.raw_end - b.chunk_end;
  for (const DenseChunk& c : b.chunks) {
    info->rans_bytes += c.rans_len;
    info->extra_bits_bytes += c.bits_len;
  }
  info->checksum_bytes = 4;
  info->coded = b.coded_total;
  info->chunks = b.chunks.size();
  info->symbols = b.max_nsym;
  info->zero_groups = b.zero_groups;
  info->raw_groups = b.raw_groups;
}

bool RawValuesFinite(const uint8_t* data, int dtype, size_t begin, size_t end) {
  const size_t item = ::slicer::dense::DtypeBytes(dtype);
  const size_t count = end - begin;
  for (size_t q = 0; q < count / item; ++q) {
    const uint8_t* v = data + begin + q * item;
    bool finite;
    if (dtype == SLICER_FLOAT64) {
      double d;
      std::memcpy(&d, v, 8);
      finite = std::isfinite(d);
    } else if (dtype == SLICER_FLOAT32) {
      float f;
      std::memcpy(&f, v, 4);
      finite = std::isfinite(f);
    } else {
      const uint16_t x = static_cast<uint16_t>(v[0] | v[1] << 8);
      finite = dtype == SLICER_FLOAT16 ? (x & 0x7C00) != 0x7C00 : (x & 0x7F80) != 0x7F80;
    }
    if (!finite) return false;
  }
  return true;
}

}  // namespace slicer::format
