#include "decoder.hpp"

#include <algorithm>
#include <cstring>
#include <utility>

#include "bit_io.hpp"
#include "crc32.hpp"
#include "float_bits.hpp"
#include "header.hpp"
#include "parallel.hpp"
#include "varint.hpp"

namespace slicer::internal {
namespace {

constexpr uint64_t kMinElementsPerThread = uint64_t{1} << 16;

// Bounded little-endian field reader over [0, end).
class FieldReader {
 public:
  FieldReader(const uint8_t* data, size_t end, size_t pos) : data_(data), end_(end), pos_(pos) {}

  slicer_status U8(unsigned* value) {
    if (pos_ >= end_) return SLICER_ERR_TRUNCATED;
    *value = data_[pos_++];
    return SLICER_OK;
  }

  slicer_status F32(uint32_t* bits) {
    if (end_ - pos_ < 4) return SLICER_ERR_TRUNCATED;
    std::memcpy(bits, data_ + pos_, 4);
    pos_ += 4;
    return SLICER_OK;
  }

  slicer_status Varint(uint64_t* value) {
    switch (GetVarint(data_, end_, &pos_, value)) {
      case VarintResult::kOk:
        return SLICER_OK;
      case VarintResult::kTruncated:
        return SLICER_ERR_TRUNCATED;
      default:
        return SLICER_ERR_CORRUPT;
    }
  }

  size_t pos() const { return pos_; }
  size_t remaining() const { return end_ - pos_; }

 private:
  const uint8_t* data_;
  size_t end_;
  size_t pos_;
};

#define SLICER_RETURN_IF_ERROR(expr)          \
  do {                                        \
    const slicer_status status_ = (expr);     \
    if (status_ != SLICER_OK) return status_; \
  } while (0)

bool ValidMagnitude(uint32_t bits) { return bits > 0 && bits < kInfinityKey; }

slicer_status ParseHeader(const uint8_t* data, size_t size, uint64_t max_elements,
                          ParsedStream* stream, FieldReader* reader) {
  slicer_header& h = stream->header;
  unsigned version, mode, dtype, flags, ndim;
  reader->U8(&version);  // checked by the caller
  SLICER_RETURN_IF_ERROR(reader->U8(&mode));
  SLICER_RETURN_IF_ERROR(reader->U8(&dtype));
  SLICER_RETURN_IF_ERROR(reader->U8(&flags));
  SLICER_RETURN_IF_ERROR(reader->U8(&ndim));
  if (mode != kModeSparseTopK || !IsSupportedDtype(static_cast<int>(dtype))) {
    return SLICER_ERR_CORRUPT;
  }
  if ((flags & ~unsigned{kFlagMultiLevel}) != 0 || ndim > SLICER_MAX_NDIM) {
    return SLICER_ERR_CORRUPT;
  }
  h.format_version = version;
  h.mode = mode;
  h.dtype = static_cast<slicer_dtype>(dtype);
  h.flags = flags;
  h.ndim = ndim;
  // `extent` is the product of the non-zero dimensions: a shape with a zero dimension holds no
  // element, but its other dimensions are held to the same limit (§7), so that no caller
  // (NumPy included) is asked for an absurd empty array.
  uint64_t extent = 1;
  bool any_zero = false;
  for (unsigned d = 0; d < ndim; ++d) {
    uint64_t dim;
    SLICER_RETURN_IF_ERROR(reader->Varint(&dim));
    if (dim >= (uint64_t{1} << 63)) return SLICER_ERR_LIMIT_EXCEEDED;
    h.shape[d] = static_cast<int64_t>(dim);
    if (dim == 0) {
      any_zero = true;
      continue;
    }
    const unsigned __int128 product = static_cast<unsigned __int128>(extent) * dim;
    if (product >= (static_cast<unsigned __int128>(1) << 63)) return SLICER_ERR_LIMIT_EXCEEDED;
    extent = static_cast<uint64_t>(product);
  }
  const uint64_t count = any_zero ? 0 : extent;
  if (count > max_elements || extent > std::max<uint64_t>(max_elements, 1)) {
    return SLICER_ERR_LIMIT_EXCEEDED;
  }
  h.num_elements = count;
  uint64_t s_ppb, asym_ppb, delta_micro, seed;
  SLICER_RETURN_IF_ERROR(reader->Varint(&s_ppb));
  SLICER_RETURN_IF_ERROR(reader->Varint(&asym_ppb));
  SLICER_RETURN_IF_ERROR(reader->Varint(&delta_micro));
  SLICER_RETURN_IF_ERROR(reader->Varint(&seed));
  if (s_ppb >= kPpb || asym_ppb >= kPpb || delta_micro > 0xFFFFFFFFull) {
    return SLICER_ERR_CORRUPT;
  }
  unsigned bits, m_pos, m_neg, chunk_log2;
  SLICER_RETURN_IF_ERROR(reader->U8(&bits));
  SLICER_RETURN_IF_ERROR(reader->U8(&m_pos));
  SLICER_RETURN_IF_ERROR(reader->U8(&m_neg));
  SLICER_RETURN_IF_ERROR(reader->U8(&chunk_log2));
  if (bits < 1 || bits > SLICER_MAX_BITS || m_pos < 1 || m_pos > SLICER_MAX_BLOCKS || m_neg < 1 ||
      m_neg > SLICER_MAX_BLOCKS || chunk_log2 < 6 || chunk_log2 > 24) {
    return SLICER_ERR_CORRUPT;
  }
  uint64_t group_count;
  SLICER_RETURN_IF_ERROR(reader->Varint(&group_count));
  if (group_count == 0 || (count == 0 && group_count != 1) ||
      (count > 0 && count % group_count != 0)) {
    return SLICER_ERR_CORRUPT;
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
  Geometry& geometry = stream->geometry;
  geometry.num_elements = count;
  geometry.group_count = group_count;
  geometry.group_size = count / group_count;
  geometry.chunks_per_group = (geometry.group_size + (uint64_t{1} << chunk_log2) - 1) >> chunk_log2;
  stream->labels = m_pos + m_neg;
  (void)data;
  (void)size;
  return SLICER_OK;
}

// One sign's widths and chain (§5.2, §6).
slicer_status ParseSignBlocks(uint64_t group, uint64_t sign_count, unsigned blocks,
                              unsigned first_label, unsigned bits, FieldReader* reader,
                              ParsedStream* stream) {
  if (sign_count == 0) return SLICER_OK;
  const size_t first = stream->blocks.size();
  for (unsigned m = 0; m < blocks; ++m) {
    const uint64_t count = BlockCount(sign_count, blocks, m);
    if (count == 0) continue;
    unsigned width;
    SLICER_RETURN_IF_ERROR(reader->U8(&width));
    if (width > bits) return SLICER_ERR_CORRUPT;
    stream->blocks.push_back(ParsedBlock{group, first_label + m, count, width, 0.0f, 0.0f});
  }
  const size_t used = stream->blocks.size() - first;
  uint32_t previous = 0;
  for (size_t b = 0; b <= used; ++b) {
    uint32_t value;
    SLICER_RETURN_IF_ERROR(reader->F32(&value));
    if (!ValidMagnitude(value)) return SLICER_ERR_CORRUPT;
    if (b > 0 && value > previous) return SLICER_ERR_CORRUPT;  // the chain never increases
    if (b < used) stream->blocks[first + b].hi = BitsToFloat(value);
    if (b > 0) stream->blocks[first + b - 1].lo = BitsToFloat(value);
    previous = value;
  }
  for (size_t b = 0; b < used; ++b) {
    const ParsedBlock& block = stream->blocks[first + b];
    if (block.width > 0 && !(block.lo < block.hi)) return SLICER_ERR_CORRUPT;
  }
  const ParsedBlock& last = stream->blocks[first + used - 1];
  if ((last.lo == last.hi) != (last.width == 0)) return SLICER_ERR_CORRUPT;
  return SLICER_OK;
}

slicer_status ParseGroups(ParsedStream* stream, FieldReader* reader, size_t end) {
  const Geometry& geometry = stream->geometry;
  const slicer_header& h = stream->header;
  // Every group takes at least 2 bytes and every chunk entry 2 more: refuse before reserving.
  if (geometry.group_count > reader->remaining() / 2) return SLICER_ERR_TRUNCATED;
  const uint64_t total_chunks = geometry.group_count * geometry.chunks_per_group;
  if (total_chunks > reader->remaining() / 2) return SLICER_ERR_TRUNCATED;
  stream->groups.reserve(geometry.group_count);
  stream->chunks.reserve(total_chunks);
  const uint64_t n = geometry.group_size;
  uint64_t payload_total = 0;
  slicer_account& account = stream->account;
  for (uint64_t g = 0; g < geometry.group_count; ++g) {
    size_t start = reader->pos();
    ParsedGroup group{};
    SLICER_RETURN_IF_ERROR(reader->Varint(&group.k));
    SLICER_RETURN_IF_ERROR(reader->Varint(&group.n_pos));
    if (group.k > n || group.n_pos > group.k) return SLICER_ERR_CORRUPT;
    account.group_bytes += reader->pos() - start;
    start = reader->pos();
    group.first_block = stream->blocks.size();
    SLICER_RETURN_IF_ERROR(
        ParseSignBlocks(g, group.n_pos, h.blocks_pos, 0, h.bits, reader, stream));
    SLICER_RETURN_IF_ERROR(ParseSignBlocks(g, group.k - group.n_pos, h.blocks_neg, h.blocks_pos,
                                           h.bits, reader, stream));
    group.num_blocks = static_cast<uint32_t>(stream->blocks.size() - group.first_block);
    account.block_meta_bytes += reader->pos() - start;
    start = reader->pos();
    uint64_t kept = 0;
    for (uint64_t j = 0; j < geometry.chunks_per_group; ++j) {
      ChunkEntry entry{};
      SLICER_RETURN_IF_ERROR(reader->Varint(&entry.count));
      SLICER_RETURN_IF_ERROR(reader->Varint(&entry.length));
      const uint64_t elements = std::min(uint64_t{1} << h.chunk_log2, n - (j << h.chunk_log2));
      if (entry.count > elements) return SLICER_ERR_CORRUPT;
      if (entry.count == 0 && entry.length != 0) return SLICER_ERR_CORRUPT;
      if (entry.length > end) return SLICER_ERR_TRUNCATED;  // keeps the sums below overflow
      entry.offset = payload_total;  // made absolute once the payload start is known
      payload_total += entry.length;
      if (payload_total > end) return SLICER_ERR_TRUNCATED;
      kept += entry.count;
      stream->chunks.push_back(entry);
    }
    if (kept != group.k) return SLICER_ERR_CORRUPT;
    account.chunk_table_bytes += reader->pos() - start;
    stream->groups.push_back(group);
  }
  const size_t payload_start = reader->pos();
  if (payload_total > end - payload_start) return SLICER_ERR_TRUNCATED;
  if (payload_total < end - payload_start) return SLICER_ERR_CORRUPT;  // leftover bytes
  for (ChunkEntry& entry : stream->chunks) entry.offset += payload_start;
  return SLICER_OK;
}

// What a chunk decoder needs per label of the current group.
struct LabelDecoder {
  bool present = false;
  unsigned width = 0;
  bool negative = false;
  double lo = 0.0;
  double step = 0.0;
  float constant = 0.0f;  // the value of a width-0 block
};

struct PayloadBits {
  uint64_t position = 0;
  uint64_t label = 0;
  uint64_t value = 0;
  uint64_t padding = 0;
};

template <class Store>
slicer_status DecodeOneChunk(const uint8_t* data, const ChunkEntry& entry, uint64_t elements,
                             unsigned chunk_log2, unsigned num_labels, const LabelDecoder* decoders,
                             uint64_t* label_counts, PayloadBits* bits, Store store) {
  if (entry.count == 0) return SLICER_OK;
  BitReader reader(data + entry.offset, entry.length);
  uint32_t rice;
  if (!reader.Read(5, &rice)) return SLICER_ERR_CORRUPT;
  if (rice > chunk_log2) return SLICER_ERR_CORRUPT;
  const unsigned label_bits = 31u - static_cast<unsigned>(__builtin_clz(num_labels));
  const uint32_t short_labels = (uint32_t{2} << label_bits) - num_labels;
  uint64_t next = 0;
  uint64_t position_bits = 5;
  uint64_t label_total = 0;
  uint64_t value_total = 0;
  for (uint64_t t = 0; t < entry.count; ++t) {
    uint64_t before = reader.position();
    uint64_t quotient;
    uint32_t remainder;
    if (!reader.ReadUnary(elements, &quotient)) return SLICER_ERR_CORRUPT;
    if (!reader.Read(rice, &remainder)) return SLICER_ERR_CORRUPT;
    const uint64_t position = next + ((quotient << rice) | remainder);
    if (position >= elements) return SLICER_ERR_CORRUPT;
    next = position + 1;
    position_bits += reader.position() - before;
    before = reader.position();
    uint32_t label;
    if (!reader.Read(label_bits, &label)) return SLICER_ERR_CORRUPT;
    if (label >= short_labels) {
      uint32_t extra;
      if (!reader.Read(1, &extra)) return SLICER_ERR_CORRUPT;
      label = short_labels + 2 * (label - short_labels) + extra;
    }
    label_total += reader.position() - before;
    if (label >= num_labels || !decoders[label].present) return SLICER_ERR_CORRUPT;
    const LabelDecoder& decoder = decoders[label];
    float value = decoder.constant;
    if (decoder.width > 0) {
      uint32_t code;
      if (!reader.Read(decoder.width, &code)) return SLICER_ERR_CORRUPT;
      value_total += decoder.width;
      value = static_cast<float>(DequantizeMagnitude(code, decoder.lo, decoder.step));
    }
    ++label_counts[label];
    store(position, decoder.negative ? -value : value);
  }
  const uint64_t padding = reader.total_bits() - reader.position();
  if (padding >= 8) return SLICER_ERR_CORRUPT;  // leftover bytes
  uint32_t pad_value;
  if (!reader.Read(static_cast<unsigned>(padding), &pad_value) || pad_value != 0) {
    return SLICER_ERR_CORRUPT;
  }
  bits->position += position_bits;
  bits->label += label_total;
  bits->value += value_total;
  bits->padding += padding;
  return SLICER_OK;
}

void BuildLabelDecoders(const ParsedStream& stream, uint64_t g, LabelDecoder* decoders) {
  for (unsigned label = 0; label < stream.labels; ++label) decoders[label] = LabelDecoder{};
  const ParsedGroup& group = stream.groups[g];
  for (uint32_t b = 0; b < group.num_blocks; ++b) {
    const ParsedBlock& block = stream.blocks[group.first_block + b];
    LabelDecoder& decoder = decoders[block.label];
    decoder.present = true;
    decoder.width = block.width;
    decoder.negative = block.label >= stream.header.blocks_pos;
    decoder.lo = block.lo;
    decoder.constant = block.hi;
    if (block.width > 0) {
      decoder.step = (static_cast<double>(block.hi) - static_cast<double>(block.lo)) /
                     static_cast<double>((uint32_t{1} << block.width) - 1);
    }
  }
}

bool GroupCountsMatch(const ParsedStream& stream, uint64_t g, const uint64_t* counts) {
  const ParsedGroup& group = stream.groups[g];
  const unsigned m_pos = stream.header.blocks_pos;
  const unsigned m_neg = stream.header.blocks_neg;
  for (unsigned m = 0; m < m_pos; ++m) {
    if (counts[m] != BlockCount(group.n_pos, m_pos, m)) return false;
  }
  for (unsigned m = 0; m < m_neg; ++m) {
    if (counts[m_pos + m] != BlockCount(group.k - group.n_pos, m_neg, m)) return false;
  }
  return true;
}

}  // namespace

slicer_status ParseStream(const uint8_t* data, size_t size, uint64_t max_elements, bool header_only,
                          ParsedStream* stream) {
  if (data == nullptr) return SLICER_ERR_INVALID_ARGUMENT;
  // Order of docs/format.md §6.2 and the NumPy reference: minimum length, magic, checksum,
  // then every other field (the version included).
  if (size < 9) return SLICER_ERR_TRUNCATED;
  if (std::memcmp(data, kMagic, 4) != 0) return SLICER_ERR_BAD_MAGIC;
  uint32_t stored_crc;
  std::memcpy(&stored_crc, data + size - 4, 4);
  if (Crc32(0, data, size - 4) != stored_crc) return SLICER_ERR_BAD_CHECKSUM;
  if (data[4] != SLICER_FORMAT_VERSION) return SLICER_ERR_BAD_VERSION;
  const size_t end = size - 4;
  FieldReader reader(data, end, 4);
  SLICER_RETURN_IF_ERROR(ParseHeader(data, size, max_elements, stream, &reader));
  stream->account = slicer_account{};
  stream->account.total_bytes = size;
  stream->account.header_bytes = reader.pos();
  stream->account.checksum_bytes = 4;
  if (header_only) return SLICER_OK;
  SLICER_RETURN_IF_ERROR(ParseGroups(stream, &reader, end));
  stream->account.chunks = stream->chunks.size();
  for (const ParsedGroup& group : stream->groups) stream->account.kept += group.k;
  return SLICER_OK;
}

slicer_status DecodeChunks(const uint8_t* data, ParsedStream* stream, void* dst, unsigned threads) {
  const Geometry& geometry = stream->geometry;
  const uint64_t total_chunks = stream->chunks.size();
  if (total_chunks == 0) return SLICER_OK;
  const uint64_t per_group = geometry.chunks_per_group;
  const unsigned chunk_log2 = stream->header.chunk_log2;
  const unsigned num_labels = stream->labels;
  const int dtype = stream->header.dtype;
  const unsigned parts = std::min<uint64_t>(
      PartCount(geometry.num_elements, threads, kMinElementsPerThread), total_chunks);

  struct Partial {
    uint64_t group;
    std::vector<uint64_t> counts;
  };
  struct PartResult {
    slicer_status status = SLICER_OK;
    PayloadBits bits;
    std::vector<Partial> partials;  // label counts of groups this part only saw some chunks of
  };
  std::vector<PartResult> results(parts);
  RunParts(total_chunks, parts, [&](unsigned part, uint64_t begin, uint64_t end) {
    PartResult& result = results[part];
    LabelDecoder decoders[2 * SLICER_MAX_BLOCKS];
    std::vector<uint64_t> counts(num_labels, 0);
    uint64_t current = ~uint64_t{0};
    uint64_t current_first_chunk = 0;
    auto flush = [&](uint64_t g, uint64_t first_seen, uint64_t end_seen) {
      const bool whole = first_seen == g * per_group && end_seen == (g + 1) * per_group;
      if (whole) {
        if (!GroupCountsMatch(*stream, g, counts.data())) result.status = SLICER_ERR_CORRUPT;
      } else {
        result.partials.push_back(Partial{g, counts});
      }
      std::fill(counts.begin(), counts.end(), 0);
    };
    for (uint64_t c = begin; c < end && result.status == SLICER_OK; ++c) {
      const uint64_t g = c / per_group;
      if (g != current) {
        if (current != ~uint64_t{0}) {
          flush(current, current_first_chunk, c);
          // A group that failed its per-label count check ends this part: the next chunk's
          // status must not overwrite the rejection (§6.1).
          if (result.status != SLICER_OK) break;
        }
        current = g;
        current_first_chunk = c;
        BuildLabelDecoders(*stream, g, decoders);
      }
      const uint64_t chunk_start = (c % per_group) << chunk_log2;
      const uint64_t elements =
          std::min(uint64_t{1} << chunk_log2, geometry.group_size - chunk_start);
      const uint64_t out_start = g * geometry.group_size + chunk_start;
      const ChunkEntry& entry = stream->chunks[c];
      if (dst == nullptr) {
        result.status = DecodeOneChunk(data, entry, elements, chunk_log2, num_labels, decoders,
                                       counts.data(), &result.bits, [](uint64_t, float) {});
      } else if (dtype == SLICER_FLOAT32) {
        float* out = static_cast<float*>(dst) + out_start;
        std::memset(out, 0, elements * sizeof(float));
        result.status =
            DecodeOneChunk(data, entry, elements, chunk_log2, num_labels, decoders, counts.data(),
                           &result.bits, [out](uint64_t p, float v) { out[p] = v; });
      } else {
        uint16_t* out = static_cast<uint16_t*>(dst) + out_start;
        std::memset(out, 0, elements * sizeof(uint16_t));
        if (dtype == SLICER_FLOAT16) {
          result.status =
              DecodeOneChunk(data, entry, elements, chunk_log2, num_labels, decoders, counts.data(),
                             &result.bits, [out](uint64_t p, float v) { out[p] = FloatToHalf(v); });
        } else {
          result.status = DecodeOneChunk(
              data, entry, elements, chunk_log2, num_labels, decoders, counts.data(), &result.bits,
              [out](uint64_t p, float v) { out[p] = FloatToBFloat16(v); });
        }
      }
    }
    if (result.status == SLICER_OK && current != ~uint64_t{0}) {
      flush(current, current_first_chunk, end);
    }
  });
  std::vector<Partial> partials;
  for (PartResult& result : results) {
    if (result.status != SLICER_OK) return result.status;
    stream->account.position_bits += result.bits.position;
    stream->account.label_bits += result.bits.label;
    stream->account.value_bits += result.bits.value;
    stream->account.padding_bits += result.bits.padding;
    for (Partial& partial : result.partials) partials.push_back(std::move(partial));
  }
  // Partials arrive in chunk order, so the pieces of one group are adjacent.
  for (size_t i = 0; i < partials.size();) {
    std::vector<uint64_t> sum(num_labels, 0);
    size_t j = i;
    for (; j < partials.size() && partials[j].group == partials[i].group; ++j) {
      for (unsigned label = 0; label < num_labels; ++label) sum[label] += partials[j].counts[label];
    }
    if (!GroupCountsMatch(*stream, partials[i].group, sum.data())) return SLICER_ERR_CORRUPT;
    i = j;
  }
  return SLICER_OK;
}

}  // namespace slicer::internal
