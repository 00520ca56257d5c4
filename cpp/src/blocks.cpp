// Block ranges (the chain of §5.2) and ABQ widths (§5.4).
#include <algorithm>
#include <cstdlib>
#include <vector>

#include "codec.hpp"
#include "float_bits.hpp"
#include "parallel.hpp"

namespace slicer::internal {

unsigned AbqWidth(const std::vector<float>& magnitudes, float lo, float hi, unsigned bits,
                  uint32_t delta_micro) {
  unsigned width = bits;
  if (delta_micro == 0) return width;
  const double lo64 = lo;
  const double range = static_cast<double>(hi) - lo64;
  const uint32_t top_max = (uint32_t{1} << bits) - 1;
  const double top_step = range / static_cast<double>(top_max);
  std::vector<uint32_t> top(magnitudes.size());
  for (size_t j = 0; j < magnitudes.size(); ++j) {
    top[j] = QuantizeMagnitude(magnitudes[j], lo64, top_step, top_max);
  }
  const unsigned __int128 budget =
      static_cast<unsigned __int128>(delta_micro) * magnitudes.size();
  while (width > 1) {
    const unsigned candidate = width - 1;
    const uint32_t max_code = (uint32_t{1} << candidate) - 1;
    const double step = range / static_cast<double>(max_code);
    const unsigned shift = bits - candidate;
    uint64_t ds_sum = 0;
    for (size_t j = 0; j < magnitudes.size(); ++j) {
      const int64_t t = QuantizeMagnitude(magnitudes[j], lo64, step, max_code);
      ds_sum += static_cast<uint64_t>(std::llabs(static_cast<int64_t>(top[j] >> shift) - t));
    }
    if (static_cast<unsigned __int128>(ds_sum) * 1000000u > budget) break;
    width = candidate;
  }
  return width;
}

void FinishBlocks(const CodecParams& params, unsigned threads, GroupCode* group) {
  const unsigned num_labels = params.labels();
  std::vector<Block>& blocks = group->blocks;
  std::vector<uint32_t> min_key(num_labels, 0xFFFFFFFFu);
  std::vector<uint32_t> max_key(num_labels, 0);
  for (const KeptElement& e : group->kept) {
    const uint32_t key = MagnitudeKey(e.value);
    min_key[e.label] = std::min(min_key[e.label], key);
    max_key[e.label] = std::max(max_key[e.label], key);
  }
  // Chain per sign: lo_b = hi of the next non-empty block, the last keeps its own minimum.
  std::vector<unsigned> abq_labels;
  for (int sign = 0; sign < 2; ++sign) {
    const unsigned first = sign == 0 ? 0 : params.blocks_pos;
    const unsigned count = sign == 0 ? params.blocks_pos : params.blocks_neg;
    int next_nonempty = -1;
    for (unsigned m = count; m-- > 0;) {
      const unsigned label = first + m;
      Block& block = blocks[label];
      if (block.count == 0) continue;
      block.hi = BitsToFloat(max_key[label]);
      block.lo = next_nonempty < 0 ? BitsToFloat(min_key[label]) : blocks[next_nonempty].hi;
      next_nonempty = static_cast<int>(label);
      if (min_key[label] == max_key[label]) {
        block.width = 0;
      } else if (params.multi_level) {
        block.width = params.levels[m];
      } else {
        abq_labels.push_back(label);
      }
    }
  }
  if (abq_labels.empty()) return;
  std::vector<std::vector<float>> magnitudes(num_labels);
  for (unsigned label : abq_labels) magnitudes[label].reserve(blocks[label].count);
  for (const KeptElement& e : group->kept) {
    if (!abq_labels.empty()) magnitudes[e.label].push_back(BitsToFloat(MagnitudeKey(e.value)));
  }
  const unsigned parts = std::min<unsigned>(threads, static_cast<unsigned>(abq_labels.size()));
  const uint64_t work = group->k;
  RunParts(abq_labels.size(), work < (uint64_t{1} << 15) ? 1 : parts,
           [&](unsigned, uint64_t begin, uint64_t end) {
             for (uint64_t i = begin; i < end; ++i) {
               Block& block = blocks[abq_labels[i]];
               block.width = AbqWidth(magnitudes[abq_labels[i]], block.lo, block.hi, params.bits,
                                      params.delta_micro);
             }
           });
}

}  // namespace slicer::internal
