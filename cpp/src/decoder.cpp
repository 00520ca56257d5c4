#include "decoder.hpp"

#include <algorithm>
#include <cstring>
#include <utility>

#include "bit_io.hpp"
#include "float_bits.hpp"
#include "format/reject.hpp"
#include "format/spec.hpp"
#include "parallel.hpp"

namespace slicer::internal {
namespace {

constexpr uint64_t kMinElementsPerThread = uint64_t{1} << 16;
constexpr const char* kCountsMismatch = "block counts (labels per block differ from c_m)";

// What a chunk decoder needs per label of the current group. A negative block's lo, step and
// constant are stored negated: lo + code · step then gives the negated magnitude exactly
// (binary64 addition and multiplication, and the rounding to binary32, are symmetric in sign).
struct LabelDecoder {
  bool present = false;
  unsigned width = 0;
  double lo = 0.0;
  double step = 0.0;
  float constant = 0.0f;  // the value of a width-0 block
};

// 64 bits from p (little-endian host), shifted so that bit `shift` < 8 comes first: at least 57
// valid bits.
inline uint64_t LoadBits(const uint8_t* p, unsigned shift) {
  uint64_t word;
  std::memcpy(&word, p, 8);
  return word >> shift;
}

struct PayloadBits {
  uint64_t position = 0;
  uint64_t label = 0;
  uint64_t value = 0;
  uint64_t padding = 0;
};

// One chunk's payload (§6.4): its Rice parameter, then per kept element the position gap,
// label and value, then the padding and the bit account. Used element by element, so that two
// chunks can be decoded side by side (DecodeTwoChunks) with the statuses of one after the other.
template <class Store>
class ChunkDecode {
 public:
  ChunkDecode(const uint8_t* data, const ChunkEntry& entry, uint64_t elements, unsigned chunk_log2,
              unsigned num_labels, const LabelDecoder* decoders, Store store)
      : cur_{BitReader(data + entry.offset, entry.length)},
        chunk_(data + entry.offset),
        count_(entry.count),
        elements_(elements),
        chunk_log2_(chunk_log2),
        num_labels_(num_labels),
        decoders_(decoders),
        store_(store) {
    const format::LabelCode label_code = format::MakeLabelCode(num_labels);
    label_bits_ = label_code.b;
    short_labels_ = label_code.u;
    label_mask_ = (uint64_t{1} << label_bits_) - 1;
    fast_bytes_ = entry.length >= 16 ? entry.length - 16 : 0;
    any_fast_ = entry.length >= 16;
    std::fill_n(counts_, num_labels, uint64_t{0});
  }

  // Where the chunk's decoding stands: the bit reader, the next free position and the elements
  // decoded. Fast / General take it by reference, so that a caller's loop keeps it in registers
  // (a local copy, written back after the loop) instead of loading and storing it per element.
  struct Cursor {
    BitReader reader;
    uint64_t next = 0;
    uint64_t t = 0;
  };
  Cursor& cursor() { return cur_; }
  bool done(const Cursor& c) const { return c.t == count_; }
  bool done() const { return done(cur_); }

  // The Rice parameter (an empty chunk has no payload to read).
  slicer_status Start() {
    if (count_ == 0) return SLICER_OK;
    if (!cur_.reader.Read(5, &rice_)) {
      return format::Reject(SLICER_ERR_CORRUPT, "chunk payload: Rice parameter (past the chunk)");
    }
    if (rice_ > chunk_log2_) {
      return format::Reject(SLICER_ERR_CORRUPT,
                            "chunk payload: Rice parameter (above chunk_log2)");
    }
    rice_mask_ = (uint64_t{1} << rice_) - 1;
    // The remainder, label and value of an element (≤ rice + label_bits + 1 + 16 bits) are read
    // from the unary run's own window when they lie inside its 57 bits, which saves the second
    // load (and its wait) on the chain from one element's position to the next.
    fields_max_ = rice_ + label_bits_ + 1 + 16;
    return SLICER_OK;
  }

  // The next element on the fast path: while 16 bytes remain from the current byte, one load
  // covers a unary run of up to 56 ones and, as a rule, the Rice remainder (≤ 24 bits), the label
  // (≤ 9) and the value (≤ 16) after it (else a second load), so no field can pass the chunk's
  // end; the checks and rejections are those of General, in the same order. 1: decoded; 0: this
  // element needs General (near the end, or a longer run); -1: rejected (*status), with nothing
  // of the element consumed, so that General meets the same rejection again.
  __attribute__((always_inline)) int Fast(Cursor& c, slicer_status* status) {
    uint64_t pos = c.reader.position();
    if (!any_fast_ || (pos >> 3) > fast_bytes_) return 0;
    constexpr uint64_t kWindow = (uint64_t{1} << 57) - 1;
    const uint64_t window = LoadBits(chunk_ + (pos >> 3), pos & 7);
    const uint64_t run = ~window & kWindow;
    if (run == 0) return 0;
    const uint64_t quotient = static_cast<uint64_t>(__builtin_ctzll(run));
    if (quotient > elements_) {
      *status =
          format::Reject(SLICER_ERR_CORRUPT, "chunk payload: position gap (past the chunk)");
      return -1;
    }
    pos += quotient + 1;
    uint64_t word = quotient + 1 + fields_max_ <= 57 ? window >> (quotient + 1)
                                                     : LoadBits(chunk_ + (pos >> 3), pos & 7);
    const uint64_t position = c.next + ((quotient << rice_) | (word & rice_mask_));
    if (position >= elements_) {
      *status =
          format::Reject(SLICER_ERR_CORRUPT, "chunk payload: position (past the chunk's end)");
      return -1;
    }
    word >>= rice_;
    const uint32_t first = static_cast<uint32_t>(word & label_mask_);
    // Without a branch: which labels take the extra bit is data, not a pattern.
    const uint32_t is_long = first >= short_labels_ ? 1u : 0u;
    const uint32_t extra = static_cast<uint32_t>(word >> label_bits_) & is_long;
    const uint32_t label = first + is_long * (first - short_labels_) + extra;
    const unsigned used = label_bits_ + is_long;
    if (label >= num_labels_ || !decoders_[label].present) {
      *status = format::Reject(SLICER_ERR_CORRUPT, "chunk payload: label (of an empty block)");
      return -1;
    }
    const LabelDecoder& decoder = decoders_[label];
    const uint64_t code = (word >> used) & ((uint64_t{1} << decoder.width) - 1);
    const float value = decoder.width > 0
                            ? static_cast<float>(DequantizeMagnitude(
                                  static_cast<uint32_t>(code), decoder.lo, decoder.step))
                            : decoder.constant;
    c.reader.Seek(pos + rice_ + used + decoder.width);
    c.next = position + 1;
    ++counts_[label];
    ++c.t;
    store_(position, value);
    return 1;
  }

  // The next element with every read checked.
  slicer_status General(Cursor& c) {
    uint64_t quotient;
    uint32_t remainder;
    if (!c.reader.ReadUnary(elements_, &quotient) || !c.reader.Read(rice_, &remainder)) {
      return format::Reject(SLICER_ERR_CORRUPT, "chunk payload: position gap (past the chunk)");
    }
    const uint64_t position = c.next + ((quotient << rice_) | remainder);
    if (position >= elements_) {
      return format::Reject(SLICER_ERR_CORRUPT, "chunk payload: position (past the chunk's end)");
    }
    c.next = position + 1;
    uint32_t label;
    if (!c.reader.Read(label_bits_, &label)) {
      return format::Reject(SLICER_ERR_CORRUPT, "chunk payload: label (past the chunk)");
    }
    if (label >= short_labels_) {
      uint32_t extra;
      if (!c.reader.Read(1, &extra)) {
        return format::Reject(SLICER_ERR_CORRUPT, "chunk payload: label (past the chunk)");
      }
      label = short_labels_ + 2 * (label - short_labels_) + extra;
    }
    if (label >= num_labels_ || !decoders_[label].present) {
      return format::Reject(SLICER_ERR_CORRUPT, "chunk payload: label (of an empty block)");
    }
    const LabelDecoder& decoder = decoders_[label];
    float value = decoder.constant;
    if (decoder.width > 0) {
      uint32_t code;
      if (!c.reader.Read(decoder.width, &code)) {
        return format::Reject(SLICER_ERR_CORRUPT, "chunk payload: value (past the chunk)");
      }
      value = static_cast<float>(DequantizeMagnitude(code, decoder.lo, decoder.step));
    }
    ++counts_[label];
    ++c.t;
    store_(position, value);
    return SLICER_OK;
  }

  // The elements left, fast where possible.
  slicer_status Rest() {
    Cursor c = cur_;
    slicer_status status = SLICER_OK;
    while (!done(c)) {
      const int fast = Fast(c, &status);
      if (fast > 0) continue;
      if (fast < 0) break;
      status = General(c);
      if (status != SLICER_OK) break;
    }
    cur_ = c;
    return status;
  }

  // After the last element: the padding (< 8 zero bits), the chunk's label counts into the
  // group's and its bits into the account (label and value bits follow from the per-label
  // counts; a label's code is b bits, b + 1 from u on; its value is `width` bits).
  slicer_status Finish(uint64_t* label_counts, PayloadBits* bits) {
    if (count_ == 0) return SLICER_OK;
    BitReader& reader = cur_.reader;
    const uint64_t padding = reader.total_bits() - reader.position();
    if (padding >= 8) return format::Reject(SLICER_ERR_CORRUPT, "chunk payload (leftover bytes)");
    uint32_t pad_value;
    if (!reader.Read(static_cast<unsigned>(padding), &pad_value) || pad_value != 0) {
      return format::Reject(SLICER_ERR_CORRUPT, "chunk payload: padding (not zero)");
    }
    uint64_t label_total = 0;
    uint64_t value_total = 0;
    for (unsigned label = 0; label < num_labels_; ++label) {
      label_counts[label] += counts_[label];
      label_total += counts_[label] * (label_bits_ + (label >= short_labels_ ? 1 : 0));
      value_total += counts_[label] * decoders_[label].width;
    }
    bits->position += reader.position() - padding - label_total - value_total;
    bits->label += label_total;
    bits->value += value_total;
    bits->padding += padding;
    return SLICER_OK;
  }

 private:
  Cursor cur_;
  const uint8_t* chunk_;
  uint64_t count_, elements_;
  unsigned chunk_log2_, num_labels_;
  const LabelDecoder* decoders_;
  Store store_;
  unsigned label_bits_ = 0;
  uint32_t short_labels_ = 0, rice_ = 0;
  uint64_t label_mask_ = 0, rice_mask_ = 0, fields_max_ = 0, fast_bytes_ = 0;
  bool any_fast_ = false;
  uint64_t counts_[2 * SLICER_MAX_BLOCKS];  // per label, the first num_labels_ (zeroed)
};

// Two chunks of one group, their fast steps interleaved (two independent chains of bit
// positions, so the core overlaps them), with the statuses and rejections of decoding the first
// and then the second: a rejection of the first ends the call at once; the second's (its Rice
// parameter, or a fast step, which consumes nothing of a rejected element) waits until the first
// has decoded in full, and its remaining elements then meet it again in order.
template <class Store>
slicer_status DecodeTwoChunks(ChunkDecode<Store>* a, ChunkDecode<Store>* b, uint64_t* label_counts,
                              PayloadBits* bits) {
  slicer_status status = a->Start();
  if (status != SLICER_OK) return status;
  const slicer_status second = b->Start();
  const char* second_rejection = second != SLICER_OK ? format::LastRejection() : "";
  if (second == SLICER_OK) {
    slicer_status ignored = SLICER_OK;
    auto ca = a->cursor();
    auto cb = b->cursor();
    int fa = 1;
    while (!a->done(ca) && !b->done(cb)) {
      fa = a->Fast(ca, &status);
      if (fa <= 0 || b->Fast(cb, &ignored) <= 0) break;
    }
    a->cursor() = ca;
    b->cursor() = cb;
    if (fa < 0) return status;
  }
  status = a->Rest();
  if (status == SLICER_OK) status = a->Finish(label_counts, bits);
  if (status != SLICER_OK) return status;
  if (second != SLICER_OK) return format::Reject(second, second_rejection);  // recorded last
  status = b->Rest();
  if (status == SLICER_OK) status = b->Finish(label_counts, bits);
  return status;
}

void BuildLabelDecoders(const ParsedStream& stream, uint64_t g, LabelDecoder* decoders) {
  for (unsigned label = 0; label < stream.labels; ++label) decoders[label] = LabelDecoder{};
  const ParsedGroup& group = stream.groups[g];
  for (uint32_t b = 0; b < group.num_blocks; ++b) {
    const ParsedBlock& block = stream.blocks[group.first_block + b];
    LabelDecoder& decoder = decoders[block.label];
    decoder.present = true;
    decoder.width = block.width;
    const bool negative = block.label >= stream.header.blocks_pos;
    decoder.lo = negative ? -static_cast<double>(block.lo) : block.lo;
    decoder.constant = negative ? -block.hi : block.hi;
    if (block.width > 0) {
      const double step = (static_cast<double>(block.hi) - static_cast<double>(block.lo)) /
                          static_cast<double>((uint32_t{1} << block.width) - 1);
      decoder.step = negative ? -step : step;
    }
  }
}

bool GroupCountsMatch(const ParsedStream& stream, uint64_t g, const uint64_t* counts) {
  const ParsedGroup& group = stream.groups[g];
  const unsigned m_pos = stream.header.blocks_pos;
  const unsigned m_neg = stream.header.blocks_neg;
  for (unsigned m = 0; m < m_pos; ++m) {
    if (counts[m] != format::BlockCount(group.n_pos, m_pos, m)) return false;
  }
  for (unsigned m = 0; m < m_neg; ++m) {
    if (counts[m_pos + m] != format::BlockCount(group.k - group.n_pos, m_neg, m)) return false;
  }
  return true;
}

}  // namespace

slicer_status ParseStream(const uint8_t* data, size_t size, uint64_t max_elements, bool header_only,
                          ParsedStream* stream) {
  // Order of docs/format.md §6.2 and the NumPy reference: minimum length, magic, checksum,
  // then every other field (the version included).
  uint32_t version;
  const slicer_status frame = format::CheckFrame(data, size, true, &version);
  if (frame != SLICER_OK) return frame;
  format::Header header;
  const slicer_status parsed = format::ParseHeader(data, size, size, max_elements, &header);
  if (parsed != SLICER_OK) return parsed;
  stream->header = header.fields;
  stream->geometry.num_elements = header.fields.num_elements;
  stream->geometry.group_count = header.fields.group_count;
  stream->geometry.group_size = header.group_size;
  stream->geometry.chunks_per_group = header.chunks_per_group;
  stream->labels = header.num_labels;
  stream->account = slicer_account{};
  stream->account.total_bytes = size;
  stream->account.header_bytes = header.bytes;
  stream->account.checksum_bytes = 4;
  if (header_only) return SLICER_OK;
  format::Tables tables;
  const slicer_status status = format::ParseTables(data, size, size, header, &tables);
  if (status != SLICER_OK) return status;
  stream->groups = std::move(tables.groups);
  stream->blocks = std::move(tables.blocks);
  stream->chunks = std::move(tables.chunks);
  stream->account.group_bytes = tables.bytes.groups;
  stream->account.block_meta_bytes = tables.bytes.block_meta;
  stream->account.chunk_table_bytes = tables.bytes.chunk_table;
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
    const char* rejection = "";  // the worker thread's rejection name
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
        if (!GroupCountsMatch(*stream, g, counts.data())) {
          result.status = format::Reject(SLICER_ERR_CORRUPT, kCountsMismatch);
        }
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
      // Chunk c alone, or c and c + 1 side by side when both lie in this part and this group.
      const bool pair = c + 1 < end && (c + 1) / per_group == g;
      auto decode = [&](auto make_store) {
        using Store = decltype(make_store(uint64_t{0}));
        auto chunk = [&](uint64_t k) {
          const uint64_t chunk_start = (k % per_group) << chunk_log2;
          const uint64_t elements =
              std::min(uint64_t{1} << chunk_log2, geometry.group_size - chunk_start);
          return ChunkDecode<Store>(data, stream->chunks[k], elements, chunk_log2, num_labels,
                                    decoders, make_store(k));
        };
        if (!pair) {
          ChunkDecode<Store> one = chunk(c);
          slicer_status status = one.Start();
          if (status == SLICER_OK) status = one.Rest();
          if (status == SLICER_OK) status = one.Finish(counts.data(), &result.bits);
          return status;
        }
        ChunkDecode<Store> first = chunk(c), second = chunk(c + 1);
        return DecodeTwoChunks(&first, &second, counts.data(), &result.bits);
      };
      // Chunk k's output, zeroed (the kept elements are then stored into it).
      auto output = [&](uint64_t k, size_t item) {
        const uint64_t chunk_start = (k % per_group) << chunk_log2;
        const uint64_t elements =
            std::min(uint64_t{1} << chunk_log2, geometry.group_size - chunk_start);
        uint8_t* out = static_cast<uint8_t*>(dst) + (g * geometry.group_size + chunk_start) * item;
        std::memset(out, 0, elements * item);
        return out;
      };
      if (dst == nullptr) {
        result.status = decode([](uint64_t) { return [](uint64_t, float) {}; });
      } else if (dtype == SLICER_FLOAT32) {
        result.status = decode([&](uint64_t k) {
          float* out = reinterpret_cast<float*>(output(k, sizeof(float)));
          return [out](uint64_t p, float v) { out[p] = v; };
        });
      } else if (dtype == SLICER_FLOAT16) {
        result.status = decode([&](uint64_t k) {
          uint16_t* out = reinterpret_cast<uint16_t*>(output(k, sizeof(uint16_t)));
          return [out](uint64_t p, float v) { out[p] = FloatToHalf(v); };
        });
      } else {
        result.status = decode([&](uint64_t k) {
          uint16_t* out = reinterpret_cast<uint16_t*>(output(k, sizeof(uint16_t)));
          return [out](uint64_t p, float v) { out[p] = FloatToBFloat16(v); };
        });
      }
      if (pair) ++c;
    }
    if (result.status == SLICER_OK && current != ~uint64_t{0}) {
      flush(current, current_first_chunk, end);
    }
    if (result.status != SLICER_OK) result.rejection = format::LastRejection();
  });
  std::vector<Partial> partials;
  for (PartResult& result : results) {
    if (result.status != SLICER_OK) return format::Reject(result.status, result.rejection);
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
    if (!GroupCountsMatch(*stream, partials[i].group, sum.data())) {
      return format::Reject(SLICER_ERR_CORRUPT, kCountsMismatch);
    }
    i = j;
  }
  return SLICER_OK;
}

}  // namespace slicer::internal
