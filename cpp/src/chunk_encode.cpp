// Chunk payload writer (§6.1): Rice-coded gaps, truncated-binary labels, block-width codes.
#include <vector>

#include "bit_io.hpp"
#include "codec.hpp"

namespace slicer::internal {

void EncodeChunk(const KeptElement* kept, uint64_t count, uint64_t chunk_start,
                 const GroupCode& group, unsigned num_labels, unsigned chunk_log2,
                 ByteBuffer* out) {
  if (count == 0) return;
  // Sum of gaps = last position - (count - 1).
  const uint64_t gap_sum = (kept[count - 1].position - chunk_start) - (count - 1);
  unsigned rice = 0;
  while (rice < chunk_log2 && (count << (rice + 1)) <= gap_sum) ++rice;

  const unsigned label_bits = 31u - static_cast<unsigned>(__builtin_clz(num_labels));  // b
  const uint32_t short_labels = (uint32_t{2} << label_bits) - num_labels;              // u
  // Per label: its truncated-binary field and the field's length plus the block width, so the
  // element loop has no branch on the label.
  uint32_t label_field[2 * SLICER_MAX_BLOCKS];
  unsigned label_field_bits[2 * SLICER_MAX_BLOCKS];
  unsigned label_total_bits[2 * SLICER_MAX_BLOCKS];
  for (unsigned label = 0; label < num_labels; ++label) {
    if (label < short_labels) {
      label_field[label] = label;
      label_field_bits[label] = label_bits;
    } else {
      const uint32_t rest = label - short_labels;
      label_field[label] = (short_labels + (rest >> 1)) | ((rest & 1u) << label_bits);
      label_field_bits[label] = label_bits + 1;
    }
    const unsigned width = group.blocks[label].count == 0 ? 0 : group.blocks[label].width;
    label_total_bits[label] = label_field_bits[label] + width;
  }

  // Worst case: per element a stop bit, r remainder bits, b + 1 label bits, 16 value bits;
  // the unary quotients add at most gap_sum >> r bits in all.
  const uint64_t worst_bits = 5 + count * (1 + rice + label_bits + 1 + 16) + (gap_sum >> rice);
  const size_t start = out->size();
  out->resize(start + worst_bits / 8 + 16);
  BitWriter writer(out->data() + start);
  writer.Put(rice, 5);
  writer.Flush();
  uint64_t next = chunk_start;  // first position the next gap counts from
  for (uint64_t t = 0; t < count; ++t) {
    const KeptElement& e = kept[t];
    const uint64_t gap = e.position - next;
    next = e.position + 1;
    const uint64_t quotient = gap >> rice;
    const uint64_t remainder = gap & ((uint64_t{1} << rice) - 1);
    // Label and value: at most 7 + 16 bits.
    const uint64_t label_value =
        label_field[e.label] | (uint64_t{e.code} << label_field_bits[e.label]);
    const unsigned label_value_bits = label_total_bits[e.label];
    const unsigned gap_bits = static_cast<unsigned>(quotient) + 1 + rice;
    if (quotient < 32 && gap_bits + label_value_bits <= 57) {
      // The whole element in one go: quotient ones, a zero, the remainder, label, value.
      writer.Put(((uint64_t{1} << quotient) - 1) | (remainder << (quotient + 1)) |
                     (label_value << gap_bits),
                 gap_bits + label_value_bits);
      writer.Flush();
      continue;
    }
    if (quotient < 32) {
      // quotient ones, a zero, then the remainder: at most 31 + 1 + 24 bits in one go.
      writer.Put(((uint64_t{1} << quotient) - 1) | (remainder << (quotient + 1)), gap_bits);
    } else {
      writer.PutUnary(quotient);
      writer.Put(remainder, rice);
    }
    writer.Flush();
    writer.Put(label_value, label_value_bits);
    writer.Flush();
  }
  out->resize(start + writer.Finish());
}

}  // namespace slicer::internal
