// Chunk payload writer (§6.1): Rice-coded gaps, truncated-binary labels, block-width codes.
#include <cmath>
#include <vector>

#include "bit_io.hpp"
#include "codec.hpp"
#include "float_bits.hpp"

namespace slicer::internal {

void EncodeChunk(const KeptElement* kept, uint64_t count, uint64_t chunk_start,
                 const GroupCode& group, unsigned num_labels, unsigned chunk_log2,
                 std::vector<uint8_t>* out) {
  if (count == 0) return;
  // Sum of gaps = last position - (count - 1).
  const uint64_t gap_sum = (kept[count - 1].position - chunk_start) - (count - 1);
  unsigned rice = 0;
  while (rice < chunk_log2 && (count << (rice + 1)) <= gap_sum) ++rice;

  struct LabelCoder {
    unsigned width;
    double lo;
    double step;
    uint32_t max_code;
  };
  LabelCoder coders[2 * SLICER_MAX_BLOCKS];
  for (unsigned label = 0; label < num_labels; ++label) {
    const Block& block = group.blocks[label];
    LabelCoder& coder = coders[label];
    coder.width = block.count == 0 ? 0 : block.width;
    coder.max_code = coder.width == 0 ? 0 : (uint32_t{1} << coder.width) - 1;
    coder.lo = block.lo;
    coder.step = coder.width == 0
                     ? 0.0
                     : (static_cast<double>(block.hi) - static_cast<double>(block.lo)) /
                           static_cast<double>(coder.max_code);
  }
  const unsigned label_bits = 31u - static_cast<unsigned>(__builtin_clz(num_labels));  // b
  const uint32_t short_labels = (uint32_t{2} << label_bits) - num_labels;               // u

  BitWriter writer(out);
  writer.Write(rice, 5);
  const uint64_t remainder_mask = (uint64_t{1} << rice) - 1;
  uint64_t next = chunk_start;  // first position the next gap counts from
  for (uint64_t t = 0; t < count; ++t) {
    const KeptElement& e = kept[t];
    const uint64_t gap = e.position - next;
    next = e.position + 1;
    writer.WriteUnary(gap >> rice);
    writer.Write(gap & remainder_mask, rice);
    if (e.label < short_labels) {
      writer.Write(e.label, label_bits);
    } else {
      const uint32_t rest = e.label - short_labels;
      writer.Write(short_labels + (rest >> 1), label_bits);
      writer.Write(rest & 1u, 1);
    }
    const LabelCoder& coder = coders[e.label];
    if (coder.width > 0) {
      const double magnitude = static_cast<double>(BitsToFloat(MagnitudeKey(e.value)));
      writer.Write(QuantizeMagnitude(magnitude, coder.lo, coder.step, coder.max_code),
                   coder.width);
    }
  }
  writer.Finish();
}

}  // namespace slicer::internal
