#include "stream_host.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>

#include "varint.hpp"

namespace slicer::cuda {
namespace {

constexpr uint32_t kPpb = 1000000000u;
constexpr uint8_t kMagic[4] = {0x53, 0x4C, 0x43, 0x52};

void PutU8(std::vector<uint8_t>* out, uint32_t v) { out->push_back(static_cast<uint8_t>(v)); }

void PutVarint(std::vector<uint8_t>* out, uint64_t v) {
  uint8_t buf[10];
  const size_t n = internal::PutVarint(v, buf);
  out->insert(out->end(), buf, buf + n);
}

void PutF32(std::vector<uint8_t>* out, float v) {
  uint8_t buf[4];
  std::memcpy(buf, &v, 4);  // the stream is little-endian and so is every supported host
  out->insert(out->end(), buf, buf + 4);
}

uint64_t BlockCount(uint64_t n, uint64_t blocks, uint64_t m) {
  return (m + 1) * n / blocks - m * n / blocks;
}

bool MulOverflows(uint64_t a, uint64_t b, uint64_t* out) {
  const unsigned __int128 p = static_cast<unsigned __int128>(a) * b;
  *out = static_cast<uint64_t>(p);
  return p >> 64 != 0;
}

// Reads fields of a host byte range; `end` is where the tables must stop (before the CRC).
class Reader {
 public:
  Reader(const uint8_t* data, size_t end) : data_(data), end_(end) {}
  size_t pos() const { return pos_; }
  int U8(uint32_t* v) {
    if (pos_ >= end_) return SLICER_ERR_TRUNCATED;
    *v = data_[pos_++];
    return SLICER_OK;
  }
  int F32(float* v) {
    if (pos_ > end_ || end_ - pos_ < 4) return SLICER_ERR_TRUNCATED;
    std::memcpy(v, data_ + pos_, 4);
    pos_ += 4;
    return SLICER_OK;
  }
  int Varint(uint64_t* v) {
    switch (internal::GetVarint(data_, end_, &pos_, v)) {
      case internal::VarintResult::kOk:
        return SLICER_OK;
      case internal::VarintResult::kTruncated:
        return SLICER_ERR_TRUNCATED;
      default:
        return SLICER_ERR_CORRUPT;
    }
  }
  void Skip(size_t n) { pos_ += n; }

 private:
  const uint8_t* data_;
  size_t end_;
  size_t pos_ = 0;
};

#define SLICER_TRY(expr)             \
  do {                               \
    const int status_ = (expr);      \
    if (status_ != SLICER_OK) return status_; \
  } while (0)

}  // namespace

int MakeEncodePlan(const int64_t* shape, uint32_t ndim, int dtype, const slicer_params* params,
                   EncodePlan* plan) {
  if (params == nullptr || (ndim > 0 && shape == nullptr)) return SLICER_ERR_INVALID_ARGUMENT;
  if (ndim > SLICER_MAX_NDIM) return SLICER_ERR_INVALID_ARGUMENT;
  if (dtype < SLICER_FLOAT32 || dtype > SLICER_BFLOAT16) return SLICER_ERR_UNSUPPORTED_DTYPE;
  const slicer_params& p = *params;
  if (p.sparsity_ppb >= kPpb || p.asym_ppb >= kPpb) return SLICER_ERR_INVALID_ARGUMENT;
  if (p.blocks_pos < 1 || p.blocks_pos > 64 || p.blocks_neg < 1 || p.blocks_neg > 64) {
    return SLICER_ERR_INVALID_ARGUMENT;
  }
  if (p.chunk_log2 < 6 || p.chunk_log2 > 24 || p.group_rows > 1) {
    return SLICER_ERR_INVALID_ARGUMENT;
  }
  uint32_t bits = p.bits;
  if (p.level_count) {
    const uint32_t need = p.blocks_pos > p.blocks_neg ? p.blocks_pos : p.blocks_neg;
    if (p.level_count != need) return SLICER_ERR_INVALID_ARGUMENT;
    bits = 0;
    for (uint32_t i = 0; i < p.level_count; ++i) {
      if (p.levels[i] < 1 || p.levels[i] > SLICER_MAX_BITS) return SLICER_ERR_INVALID_ARGUMENT;
      if (p.levels[i] > bits) bits = p.levels[i];
    }
  } else if (bits < 1 || bits > SLICER_MAX_BITS) {
    return SLICER_ERR_INVALID_ARGUMENT;
  }
  uint64_t elements = 1;
  for (uint32_t d = 0; d < ndim; ++d) {
    if (shape[d] < 0) return SLICER_ERR_INVALID_ARGUMENT;
    if (MulOverflows(elements, static_cast<uint64_t>(shape[d]), &elements) ||
        elements > (uint64_t{1} << 62)) {
      return SLICER_ERR_INVALID_ARGUMENT;
    }
  }
  plan->shape.assign(shape, shape + ndim);
  plan->dtype = dtype;
  plan->params = p;
  plan->elements = elements;
  plan->groups = (elements == 0 || !p.group_rows || ndim == 0)
                     ? 1
                     : elements / static_cast<uint64_t>(shape[ndim - 1]);
  plan->group_size = elements / plan->groups;
  if (plan->group_size > 0xFFFFFFFFull) return SLICER_ERR_INVALID_ARGUMENT;  // see the header
  plan->chunks_per_group = (plan->group_size + (uint64_t{1} << p.chunk_log2) - 1) >> p.chunk_log2;
  plan->bits = bits;
  plan->num_labels = p.blocks_pos + p.blocks_neg;
  // §8 payload term: ceil((12 nch + k_max (3 + lb + q_bit) + R) / 8) + nch per group.
  uint32_t lb = 0;
  while ((1u << lb) < plan->num_labels) ++lb;
  const uint64_t n = plan->group_size;
  const uint64_t k_max = static_cast<uint64_t>(static_cast<unsigned __int128>(n) *
                                               (kPpb - p.sparsity_ppb) / kPpb);
  const uint64_t nch = plan->chunks_per_group;
  uint64_t rice = 0;
  if (k_max) {
    rice = static_cast<uint64_t>(std::ceil(static_cast<double>(k_max) *
                                           std::log2(static_cast<double>(n) / k_max) *
                                           (1 + 1e-9))) + 2;
  }
  const uint64_t per_group = (12 * nch + k_max * (3 + lb + bits) + rice + 7) / 8 + nch;
  plan->payload_bound = per_group * plan->groups;
  return SLICER_OK;
}

std::vector<uint8_t> HeaderBytes(const EncodePlan& plan) {
  const slicer_params& p = plan.params;
  std::vector<uint8_t> out(kMagic, kMagic + 4);
  PutU8(&out, SLICER_FORMAT_VERSION);
  PutU8(&out, 0);  // mode 0: sparse top-K
  PutU8(&out, static_cast<uint32_t>(plan.dtype));
  PutU8(&out, p.level_count ? 1 : 0);
  PutU8(&out, static_cast<uint32_t>(plan.shape.size()));
  for (int64_t d : plan.shape) PutVarint(&out, static_cast<uint64_t>(d));
  PutVarint(&out, p.sparsity_ppb);
  PutVarint(&out, p.asym_ppb);
  PutVarint(&out, p.delta_micro);
  PutVarint(&out, p.seed);
  PutU8(&out, plan.bits);
  PutU8(&out, p.blocks_pos);
  PutU8(&out, p.blocks_neg);
  PutU8(&out, p.chunk_log2);
  PutVarint(&out, plan.groups);
  return out;
}

void AppendGroupTables(const EncodePlan& plan, uint64_t k, uint64_t n_pos,
                       const BlockResult* blocks, const uint64_t* chunk_counts,
                       const uint64_t* chunk_bytes, std::vector<uint8_t>* out) {
  PutVarint(out, k);
  PutVarint(out, n_pos);
  const uint32_t m_pos = plan.params.blocks_pos;
  for (int sign = 0; sign < 2; ++sign) {
    const uint32_t first = sign == 0 ? 0 : m_pos;
    const uint32_t last = sign == 0 ? m_pos : plan.num_labels;
    const BlockResult* final_block = nullptr;
    for (uint32_t l = first; l < last; ++l) {
      if (blocks[l].count) PutU8(out, blocks[l].width);
    }
    for (uint32_t l = first; l < last; ++l) {
      if (blocks[l].count) {
        PutF32(out, blocks[l].hi);
        final_block = &blocks[l];
      }
    }
    if (final_block) PutF32(out, final_block->lo);
  }
  for (uint64_t j = 0; j < plan.chunks_per_group; ++j) {
    PutVarint(out, chunk_counts[j]);
    PutVarint(out, chunk_bytes[j]);
  }
}

int ParseHeader(const uint8_t* data, size_t avail, size_t size, uint64_t max_elements,
                DecodePlan* plan) {
  if (size < 9 || avail < 5) return SLICER_ERR_TRUNCATED;
  if (std::memcmp(data, kMagic, 4) != 0) return SLICER_ERR_BAD_MAGIC;
  if (data[4] != SLICER_FORMAT_VERSION) return SLICER_ERR_BAD_VERSION;
  const size_t end = avail < size - 4 ? avail : size - 4;
  Reader rd(data, end);
  rd.Skip(5);
  uint32_t mode, dtype, flags, ndim;
  SLICER_TRY(rd.U8(&mode));
  SLICER_TRY(rd.U8(&dtype));
  SLICER_TRY(rd.U8(&flags));
  SLICER_TRY(rd.U8(&ndim));
  if (mode != 0 || dtype < 1 || dtype > 3 || (flags & ~1u) || ndim > SLICER_MAX_NDIM) {
    return SLICER_ERR_CORRUPT;
  }
  slicer_header& h = plan->header;
  h = slicer_header{};
  h.format_version = SLICER_FORMAT_VERSION;
  h.mode = mode;
  h.dtype = static_cast<slicer_dtype>(dtype);
  h.flags = flags;
  h.ndim = ndim;
  uint64_t elements = 1;
  bool overflow = false;
  for (uint32_t d = 0; d < ndim; ++d) {
    uint64_t dim;
    SLICER_TRY(rd.Varint(&dim));
    if (dim > (uint64_t{1} << 63) - 1) overflow = true;
    h.shape[d] = static_cast<int64_t>(dim);
    if (!overflow && MulOverflows(elements, dim, &elements)) overflow = true;
    if (elements > (uint64_t{1} << 63)) overflow = true;
  }
  if (overflow || elements > max_elements) return SLICER_ERR_LIMIT_EXCEEDED;
  h.num_elements = elements;
  uint64_t s_ppb, asym_ppb, delta, seed;
  SLICER_TRY(rd.Varint(&s_ppb));
  SLICER_TRY(rd.Varint(&asym_ppb));
  SLICER_TRY(rd.Varint(&delta));
  SLICER_TRY(rd.Varint(&seed));
  uint32_t bits, m_pos, m_neg, chunk_log2;
  SLICER_TRY(rd.U8(&bits));
  SLICER_TRY(rd.U8(&m_pos));
  SLICER_TRY(rd.U8(&m_neg));
  SLICER_TRY(rd.U8(&chunk_log2));
  if (s_ppb >= kPpb || asym_ppb >= kPpb || delta > 0xFFFFFFFFull || bits < 1 || bits > 16 ||
      m_pos < 1 || m_pos > 64 || m_neg < 1 || m_neg > 64 || chunk_log2 < 6 || chunk_log2 > 24) {
    return SLICER_ERR_CORRUPT;
  }
  uint64_t groups;
  SLICER_TRY(rd.Varint(&groups));
  if (groups < 1 || (elements == 0 && groups != 1) || (elements != 0 && elements % groups)) {
    return SLICER_ERR_CORRUPT;
  }
  h.sparsity_ppb = static_cast<uint32_t>(s_ppb);
  h.asym_ppb = static_cast<uint32_t>(asym_ppb);
  h.delta_micro = static_cast<uint32_t>(delta);
  h.seed = seed;
  h.bits = bits;
  h.blocks_pos = m_pos;
  h.blocks_neg = m_neg;
  h.chunk_log2 = chunk_log2;
  h.group_count = groups;
  plan->header_bytes = rd.pos();
  plan->group_size = elements / groups;
  plan->chunks_per_group = (plan->group_size + (uint64_t{1} << chunk_log2) - 1) >> chunk_log2;
  plan->num_labels = m_pos + m_neg;
  // Every group's tables take at least 2 bytes plus 2 per chunk: refuse a table count that the
  // stream cannot hold before anything is sized from it.
  uint64_t min_tables;
  if (MulOverflows(groups, 2 + 2 * plan->chunks_per_group, &min_tables) ||
      min_tables > size) {
    return SLICER_ERR_CORRUPT;
  }
  return SLICER_OK;
}

uint64_t TablesBound(const DecodePlan& plan) {
  const uint64_t per_group = 20 + plan.num_labels + 4 * (plan.num_labels + 2) +
                             20 * plan.chunks_per_group;
  return plan.header_bytes + plan.header.group_count * per_group;
}

int ParseTables(const uint8_t* data, size_t avail, size_t size, DecodePlan* plan) {
  const slicer_header& h = plan->header;
  const size_t end = avail < size - 4 ? avail : size - 4;
  Reader rd(data, end);
  rd.Skip(plan->header_bytes);
  const uint64_t groups = h.group_count;
  const uint64_t n = plan->group_size;
  const uint32_t labels = plan->num_labels;
  const uint64_t chunk = uint64_t{1} << h.chunk_log2;
  plan->blocks.assign(groups * labels, DecodeBlock{});
  plan->chunks.assign(groups * plan->chunks_per_group, DecodeChunk{});
  uint64_t payload = 0;
  for (uint64_t g = 0; g < groups; ++g) {
    uint64_t k, n_pos;
    SLICER_TRY(rd.Varint(&k));
    SLICER_TRY(rd.Varint(&n_pos));
    if (k > n || n_pos > k) return SLICER_ERR_CORRUPT;
    DecodeBlock* blocks = &plan->blocks[g * labels];
    for (int sign = 0; sign < 2; ++sign) {
      const uint32_t first = sign == 0 ? 0 : h.blocks_pos;
      const uint32_t count = sign == 0 ? h.blocks_pos : h.blocks_neg;
      const uint64_t members = sign == 0 ? n_pos : k - n_pos;
      uint32_t used[64];
      uint32_t nonempty = 0;
      for (uint32_t m = 0; m < count; ++m) {
        const uint64_t c = BlockCount(members, count, m);
        blocks[first + m].count = c;
        if (c) used[nonempty++] = first + m;
      }
      if (nonempty == 0) continue;
      uint32_t widths[64];
      for (uint32_t b = 0; b < nonempty; ++b) SLICER_TRY(rd.U8(&widths[b]));
      float chain[65];
      for (uint32_t b = 0; b <= nonempty; ++b) {
        SLICER_TRY(rd.F32(&chain[b]));
        if (!std::isfinite(chain[b]) || !(chain[b] > 0.0f)) return SLICER_ERR_CORRUPT;
      }
      for (uint32_t b = 0; b < nonempty; ++b) {
        if (chain[b] < chain[b + 1]) return SLICER_ERR_CORRUPT;
      }
      if ((chain[nonempty] == chain[nonempty - 1]) != (widths[nonempty - 1] == 0)) {
        return SLICER_ERR_CORRUPT;
      }
      for (uint32_t b = 0; b < nonempty; ++b) {
        const float lo = chain[b + 1];
        const float hi = chain[b];
        if (widths[b] > h.bits || (widths[b] && !(lo < hi))) return SLICER_ERR_CORRUPT;
        DecodeBlock& out = blocks[used[b]];
        out.lo = lo;
        out.hi = hi;
        out.width = widths[b];
        out.present = 1;
      }
    }
    uint64_t total = 0;
    for (uint64_t j = 0; j < plan->chunks_per_group; ++j) {
      uint64_t cnt, length;
      SLICER_TRY(rd.Varint(&cnt));
      SLICER_TRY(rd.Varint(&length));
      const uint64_t elements = std::min(chunk, n - j * chunk);
      if (cnt > elements) return SLICER_ERR_CORRUPT;
      if (cnt == 0 && length != 0) return SLICER_ERR_CORRUPT;
      if (length > size) return SLICER_ERR_CORRUPT;
      total += cnt;
      DecodeChunk& c = plan->chunks[g * plan->chunks_per_group + j];
      c.payload_offset = payload;
      c.length = length;
      c.count = cnt;
      c.out_offset = g * n + j * chunk;
      c.elements = elements;
      c.group = g;
      payload += length;
      if (payload > size) return SLICER_ERR_CORRUPT;
    }
    if (total != k) return SLICER_ERR_CORRUPT;
  }
  plan->payload_offset = rd.pos();
  plan->payload_bytes = payload;
  if (rd.pos() + payload != size - 4) return SLICER_ERR_CORRUPT;
  return SLICER_OK;
}

uint32_t HostCrc32(const uint8_t* data, size_t size) {
  static const std::array<uint32_t, 256> table = [] {
    std::array<uint32_t, 256> t{};
    for (uint32_t b = 0; b < 256; ++b) {
      uint32_t crc = b;
      for (int i = 0; i < 8; ++i) crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1u)));
      t[b] = crc;
    }
    return t;
  }();
  uint32_t crc = 0xFFFFFFFFu;
  for (size_t i = 0; i < size; ++i) crc = (crc >> 8) ^ table[(crc ^ data[i]) & 0xFFu];
  return ~crc;
}

}  // namespace slicer::cuda
