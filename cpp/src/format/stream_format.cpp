#include "format/stream_format.hpp"

#include <algorithm>
#include <cstring>

#include "crc32.hpp"
#include "format/reject.hpp"
#include "format/spec.hpp"
#include "varint.hpp"

namespace slicer::format {
namespace {

using u128 = unsigned __int128;

constexpr uint32_t kInfinityBits = 0x7F800000u;

// Bounded little-endian field reader over [pos, end); every failure names its field.
class FieldReader {
 public:
  FieldReader(const uint8_t* data, size_t end, size_t pos) : data_(data), end_(end), pos_(pos) {}

  slicer_status U8(const char* what, uint32_t* value) {
    if (pos_ >= end_) return Reject(SLICER_ERR_TRUNCATED, what);
    *value = data_[pos_++];
    return SLICER_OK;
  }

  slicer_status F32Bits(const char* what, uint32_t* bits) {
    if (end_ - pos_ < 4) return Reject(SLICER_ERR_TRUNCATED, what);
    std::memcpy(bits, data_ + pos_, 4);  // the stream and every supported host: little-endian
    pos_ += 4;
    return SLICER_OK;
  }

  slicer_status Varint(const char* what, uint64_t* value) {
    switch (internal::GetVarint(data_, end_, &pos_, value)) {
      case internal::VarintResult::kOk:
        return SLICER_OK;
      case internal::VarintResult::kTruncated:
        return Reject(SLICER_ERR_TRUNCATED, what);
      default:
        return Reject(SLICER_ERR_CORRUPT, what);  // non-minimal or above 2^64 − 1
    }
  }

  size_t pos() const { return pos_; }

 private:
  const uint8_t* data_;
  size_t end_;
  size_t pos_;
};

#define SLICER_FORMAT_TRY(expr)               \
  do {                                        \
    const slicer_status status_ = (expr);     \
    if (status_ != SLICER_OK) return status_; \
  } while (0)

float BitsToFloat(uint32_t bits) {
  float value;
  std::memcpy(&value, &bits, 4);
  return value;
}

uint32_t FloatToBits(float value) {
  uint32_t bits;
  std::memcpy(&bits, &value, 4);
  return bits;
}

// One sign's widths and chain (§5.2, §6).
slicer_status ParseSignBlocks(uint64_t sign_count, uint32_t blocks, uint32_t first_label,
                              uint32_t bits, FieldReader* reader, Tables* tables) {
  if (sign_count == 0) return SLICER_OK;
  const size_t first = tables->blocks.size();
  for (uint32_t m = 0; m < blocks; ++m) {
    const uint64_t count = BlockCount(sign_count, blocks, m);
    if (count == 0) continue;
    uint32_t width = 0;
    SLICER_FORMAT_TRY(reader->U8("block width", &width));
    if (width > bits) return Reject(SLICER_ERR_CORRUPT, "block width above q_bit");
    tables->blocks.push_back(Block{count, 0.0f, 0.0f, first_label + m, width});
  }
  const size_t used = tables->blocks.size() - first;
  uint32_t previous = 0;
  for (size_t b = 0; b <= used; ++b) {
    uint32_t value = 0;
    SLICER_FORMAT_TRY(reader->F32Bits("block range chain", &value));
    if (value == 0 || value >= kInfinityBits) {
      return Reject(SLICER_ERR_CORRUPT, "block range chain (not finite and > 0)");
    }
    if (b > 0 && value > previous) {
      return Reject(SLICER_ERR_CORRUPT, "block range chain (increases)");
    }
    if (b < used) tables->blocks[first + b].hi = BitsToFloat(value);
    if (b > 0) tables->blocks[first + b - 1].lo = BitsToFloat(value);
    previous = value;
  }
  for (size_t b = 0; b < used; ++b) {
    const Block& block = tables->blocks[first + b];
    if (block.width > 0 && !(block.lo < block.hi)) {
      return Reject(SLICER_ERR_CORRUPT, "block width (> 0 on an empty range)");
    }
  }
  const Block& last = tables->blocks[first + used - 1];
  if ((last.lo == last.hi) != (last.width == 0)) {
    return Reject(SLICER_ERR_CORRUPT, "last block range (lo = hi iff width 0)");
  }
  return SLICER_OK;
}

}  // namespace

slicer_status CheckFrame(const uint8_t* data, size_t size, bool check_crc, uint32_t* version) {
  if (data == nullptr) return Reject(SLICER_ERR_INVALID_ARGUMENT, "stream pointer");
  if (size < 9) return Reject(SLICER_ERR_TRUNCATED, "stream length (< 9 bytes)");
  if (std::memcmp(data, kMagic, 4) != 0) return Reject(SLICER_ERR_BAD_MAGIC, "magic");
  if (check_crc) {
    uint32_t stored;
    std::memcpy(&stored, data + size - 4, 4);
    if (internal::Crc32(0, data, size - 4) != stored) {
      return Reject(SLICER_ERR_BAD_CHECKSUM, "CRC-32");
    }
  }
  *version = data[4];
  return SLICER_OK;
}

slicer_status ParseHeader(const uint8_t* data, size_t avail, size_t size, uint64_t max_elements,
                          Header* header) {
  if (size < 9) return Reject(SLICER_ERR_TRUNCATED, "stream length (< 9 bytes)");
  if (data[4] != SLICER_FORMAT_VERSION) return Reject(SLICER_ERR_BAD_VERSION, "version");
  FieldReader reader(data, std::min(avail, size - 4), 5);
  slicer_header& h = header->fields;
  h = slicer_header{};
  uint32_t mode = 0, dtype = 0, flags = 0, ndim = 0;
  SLICER_FORMAT_TRY(reader.U8("mode", &mode));
  SLICER_FORMAT_TRY(reader.U8("dtype", &dtype));
  SLICER_FORMAT_TRY(reader.U8("flags", &flags));
  SLICER_FORMAT_TRY(reader.U8("ndim", &ndim));
  if (mode != kModeSparseTopK) return Reject(SLICER_ERR_CORRUPT, "mode");
  if (dtype < SLICER_FLOAT32 || dtype > SLICER_BFLOAT16) return Reject(SLICER_ERR_CORRUPT, "dtype");
  if ((flags & ~kFlagMultiLevel) != 0) return Reject(SLICER_ERR_CORRUPT, "flags (reserved bits)");
  if (ndim > kMaxNdim) return Reject(SLICER_ERR_CORRUPT, "ndim");
  h.format_version = SLICER_FORMAT_VERSION;
  h.mode = mode;
  h.dtype = static_cast<slicer_dtype>(dtype);
  h.flags = flags;
  h.ndim = ndim;
  // `extent` is the product of the non-zero dimensions: below 2^60, so that every shape of the
  // format, empty ones included, is an array that 8-byte elements can represent (§7).
  uint64_t extent = 1;
  bool any_zero = false;
  for (uint32_t d = 0; d < ndim; ++d) {
    uint64_t dim = 0;
    SLICER_FORMAT_TRY(reader.Varint("shape", &dim));
    if (dim >= (uint64_t{1} << 60)) return Reject(SLICER_ERR_LIMIT_EXCEEDED, "shape (>= 2^60)");
    h.shape[d] = static_cast<int64_t>(dim);
    if (dim == 0) {
      any_zero = true;
      continue;
    }
    const u128 product = static_cast<u128>(extent) * dim;
    if (product >= (u128{1} << 60)) return Reject(SLICER_ERR_LIMIT_EXCEEDED, "shape (>= 2^60)");
    extent = static_cast<uint64_t>(product);
  }
  const uint64_t count = any_zero ? 0 : extent;
  if (count > max_elements) return Reject(SLICER_ERR_LIMIT_EXCEEDED, "shape (above max_elements)");
  h.num_elements = count;
  uint64_t s_ppb = 0, asym_ppb = 0, delta_micro = 0, seed = 0;
  SLICER_FORMAT_TRY(reader.Varint("s_ppb", &s_ppb));
  SLICER_FORMAT_TRY(reader.Varint("asym_ppb", &asym_ppb));
  SLICER_FORMAT_TRY(reader.Varint("delta_micro", &delta_micro));
  SLICER_FORMAT_TRY(reader.Varint("seed", &seed));
  if (s_ppb >= kPpb) return Reject(SLICER_ERR_CORRUPT, "s_ppb");
  if (asym_ppb >= kPpb) return Reject(SLICER_ERR_CORRUPT, "asym_ppb");
  if (delta_micro > 0xFFFFFFFFull) return Reject(SLICER_ERR_CORRUPT, "delta_micro");
  uint32_t bits = 0, m_pos = 0, m_neg = 0, chunk_log2 = 0;
  SLICER_FORMAT_TRY(reader.U8("q_bit", &bits));
  SLICER_FORMAT_TRY(reader.U8("m_pos", &m_pos));
  SLICER_FORMAT_TRY(reader.U8("m_neg", &m_neg));
  SLICER_FORMAT_TRY(reader.U8("chunk_log2", &chunk_log2));
  if (bits < 1 || bits > kMaxBits) return Reject(SLICER_ERR_CORRUPT, "q_bit");
  if (m_pos < 1 || m_pos > kMaxBlocks) return Reject(SLICER_ERR_CORRUPT, "m_pos");
  if (m_neg < 1 || m_neg > kMaxBlocks) return Reject(SLICER_ERR_CORRUPT, "m_neg");
  if (chunk_log2 < kMinChunkLog2 || chunk_log2 > kMaxChunkLog2) {
    return Reject(SLICER_ERR_CORRUPT, "chunk_log2");
  }
  uint64_t group_count;
  SLICER_FORMAT_TRY(reader.Varint("group_count", &group_count));
  if (group_count == 0 || (count == 0 && group_count != 1) ||
      (count > 0 && count % group_count != 0)) {
    return Reject(SLICER_ERR_CORRUPT, "group_count (must divide N)");
  }
  h.sparsity_ppb = static_cast<uint32_t>(s_ppb);
  h.asym_ppb = static_cast<uint32_t>(asym_ppb);
  h.delta_micro = static_cast<uint32_t>(delta_micro);
  h.seed = seed;
  h.bits = bits;
  h.blocks_pos = m_pos;
  h.blocks_neg = m_neg;
  h.chunk_log2 = chunk_log2;
  h.group_count = group_count;
  header->bytes = reader.pos();
  header->group_size = count / group_count;
  header->chunks_per_group = (header->group_size + (uint64_t{1} << chunk_log2) - 1) >> chunk_log2;
  header->num_labels = m_pos + m_neg;
  // Every group's tables take at least 2 bytes and every chunk entry 2 more: a table count
  // the stream cannot hold is refused here, before any backend sizes anything from it.
  const u128 least = 2 * u128{group_count} * (1 + u128{header->chunks_per_group});
  if (least > size - 4 - header->bytes) {
    return Reject(SLICER_ERR_TRUNCATED, "group tables (more than the stream holds)");
  }
  return SLICER_OK;
}

uint64_t TablesBound(const Header& header) {
  const uint64_t labels = header.num_labels;
  const u128 per_group = 20 + labels + 4 * (labels + 2) + 20 * u128{header.chunks_per_group};
  const u128 bound = header.bytes + u128{header.fields.group_count} * per_group;
  return bound > ~uint64_t{0} ? ~uint64_t{0} : static_cast<uint64_t>(bound);
}

slicer_status ParseTables(const uint8_t* data, size_t avail, size_t size, const Header& header,
                          Tables* tables) {
  const slicer_header& h = header.fields;
  const size_t end = size - 4;
  FieldReader reader(data, std::min(avail, end), header.bytes);
  // ParseHeader bounded both counts by the stream size.
  tables->groups.clear();
  tables->blocks.clear();
  tables->chunks.clear();
  tables->groups.reserve(h.group_count);
  tables->chunks.reserve(h.group_count * header.chunks_per_group);
  tables->bytes = TableBytes{};
  const uint64_t n = header.group_size;
  uint64_t payload_total = 0;
  for (uint64_t g = 0; g < h.group_count; ++g) {
    size_t start = reader.pos();
    Group group{};
    SLICER_FORMAT_TRY(reader.Varint("k", &group.k));
    SLICER_FORMAT_TRY(reader.Varint("n_pos", &group.n_pos));
    if (group.k > n) return Reject(SLICER_ERR_CORRUPT, "k (above the group size)");
    if (group.n_pos > group.k) return Reject(SLICER_ERR_CORRUPT, "n_pos (above k)");
    tables->bytes.groups += reader.pos() - start;
    start = reader.pos();
    group.first_block = tables->blocks.size();
    SLICER_FORMAT_TRY(ParseSignBlocks(group.n_pos, h.blocks_pos, 0, h.bits, &reader, tables));
    SLICER_FORMAT_TRY(ParseSignBlocks(group.k - group.n_pos, h.blocks_neg, h.blocks_pos, h.bits,
                                      &reader, tables));
    group.num_blocks = static_cast<uint32_t>(tables->blocks.size() - group.first_block);
    tables->bytes.block_meta += reader.pos() - start;
    start = reader.pos();
    uint64_t kept = 0;
    for (uint64_t j = 0; j < header.chunks_per_group; ++j) {
      Chunk entry{};
      SLICER_FORMAT_TRY(reader.Varint("chunk count", &entry.count));
      SLICER_FORMAT_TRY(reader.Varint("chunk length", &entry.length));
      if (entry.count > ChunkElements(n, j, h.chunk_log2)) {
        return Reject(SLICER_ERR_CORRUPT, "chunk count (above the chunk's elements)");
      }
      if (entry.count == 0 && entry.length != 0) {
        return Reject(SLICER_ERR_CORRUPT, "chunk length (> 0 for an empty chunk)");
      }
      // Checked one by one, so that the sum never overflows.
      if (entry.length > end || payload_total + entry.length > end) {
        return Reject(SLICER_ERR_TRUNCATED, "chunk length (past the stream's end)");
      }
      entry.offset = payload_total;  // made absolute once the payload start is known
      payload_total += entry.length;
      kept += entry.count;
      tables->chunks.push_back(entry);
    }
    if (kept != group.k) return Reject(SLICER_ERR_CORRUPT, "chunk counts (sum differs from k)");
    tables->bytes.chunk_table += reader.pos() - start;
    tables->groups.push_back(group);
  }
  const size_t payload_start = reader.pos();
  if (payload_total > end - payload_start) {
    return Reject(SLICER_ERR_TRUNCATED, "chunk lengths (past the stream's end)");
  }
  if (payload_total < end - payload_start) {
    return Reject(SLICER_ERR_CORRUPT, "chunk lengths (leftover bytes)");
  }
  for (Chunk& entry : tables->chunks) entry.offset += payload_start;
  tables->payload_start = payload_start;
  tables->payload_bytes = payload_total;
  return SLICER_OK;
}

namespace {

// Writers below fill a region grown to the most their fields can take, then trim it: one
// resize per table instead of a push_back per byte (per-token streams write thousands).
class FieldWriter {
 public:
  FieldWriter(std::vector<uint8_t>* out, size_t most) : out_(out), start_(out->size()) {
    out->resize(start_ + most);
    at_ = out->data() + start_;
  }
  ~FieldWriter() { out_->resize(static_cast<size_t>(at_ - out_->data())); }
  FieldWriter(const FieldWriter&) = delete;
  FieldWriter& operator=(const FieldWriter&) = delete;

  void U8(uint32_t value) { *at_++ = static_cast<uint8_t>(value); }
  void Bytes(const uint8_t* bytes, size_t count) {
    std::memcpy(at_, bytes, count);
    at_ += count;
  }
  void Varint(uint64_t value) { at_ += internal::PutVarint(value, at_); }
  void F32(float value) {
    const uint32_t bits = FloatToBits(value);  // little-endian, like every supported host
    std::memcpy(at_, &bits, 4);
    at_ += 4;
  }
  size_t written() const { return static_cast<size_t>(at_ - (out_->data() + start_)); }

 private:
  std::vector<uint8_t>* out_;
  size_t start_;
  uint8_t* at_;
};

}  // namespace

size_t AppendHeader(const slicer_header& fields, std::vector<uint8_t>* out) {
  FieldWriter writer(out, kMaxHeaderBytes);
  writer.Bytes(kMagic, 4);
  writer.U8(SLICER_FORMAT_VERSION);
  writer.U8(fields.mode);
  writer.U8(fields.dtype);
  writer.U8(fields.flags);
  writer.U8(fields.ndim);
  for (uint32_t d = 0; d < fields.ndim; ++d) writer.Varint(static_cast<uint64_t>(fields.shape[d]));
  writer.Varint(fields.sparsity_ppb);
  writer.Varint(fields.asym_ppb);
  writer.Varint(fields.delta_micro);
  writer.Varint(fields.seed);
  writer.U8(fields.bits);
  writer.U8(fields.blocks_pos);
  writer.U8(fields.blocks_neg);
  writer.U8(fields.chunk_log2);
  writer.Varint(fields.group_count);
  return writer.written();
}

void AppendGroupTables(uint64_t k, uint64_t n_pos, uint32_t blocks_pos, uint32_t num_labels,
                       const uint64_t* counts, const uint32_t* widths, const float* lo,
                       const float* hi, uint64_t chunks, const uint64_t* chunk_counts,
                       const uint64_t* chunk_bytes, std::vector<uint8_t>* out) {
  // k and n_pos, a width and a range end per label, two chain ends, 20 bytes per chunk entry.
  FieldWriter writer(out, 20 + num_labels + 4 * (num_labels + 2) + 20 * chunks);
  writer.Varint(k);
  writer.Varint(n_pos);
  for (int sign = 0; sign < 2; ++sign) {
    const uint32_t first = sign == 0 ? 0 : blocks_pos;
    const uint32_t last = sign == 0 ? blocks_pos : num_labels;
    int64_t final_label = -1;
    for (uint32_t l = first; l < last; ++l) {
      if (counts[l]) writer.U8(widths[l]);
    }
    for (uint32_t l = first; l < last; ++l) {
      if (counts[l]) {
        writer.F32(hi[l]);
        final_label = l;
      }
    }
    if (final_label >= 0) writer.F32(lo[final_label]);
  }
  for (uint64_t j = 0; j < chunks; ++j) {
    writer.Varint(chunk_counts[j]);
    writer.Varint(chunk_bytes[j]);
  }
}

}  // namespace slicer::format
