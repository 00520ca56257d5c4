// Block ranges (the chain of §5.2), ABQ widths (§5.4) and the codes of §5.3.
#include <algorithm>
#include <utility>
#include <vector>

#include "codec.hpp"
#include "float_bits.hpp"
#include "parallel.hpp"

namespace slicer::internal {
namespace {

void QuantizeAll(const float* magnitudes, uint64_t count, double lo, double step, uint32_t max_code,
                 uint16_t* codes) {
  for (uint64_t j = 0; j < count; ++j) {
    codes[j] = static_cast<uint16_t>(QuantizeMagnitude(magnitudes[j], lo, step, max_code));
  }
}

}  // namespace

unsigned AbqWidth(const float* magnitudes, uint64_t count, float lo, float hi, unsigned bits,
                  uint32_t delta_micro, uint16_t* codes) {
  const double lo64 = lo;
  const double range = static_cast<double>(hi) - lo64;
  const uint32_t top_max = (uint32_t{1} << bits) - 1;
  QuantizeAll(magnitudes, count, lo64, range / static_cast<double>(top_max), top_max, codes);
  if (delta_micro == 0) return bits;
  // T0 stays in `top`; `codes` holds the codes of the current width. Small blocks (per-row
  // groups, thousands per tensor) use the stack.
  constexpr uint64_t kStackValues = 256;
  uint16_t top_stack[kStackValues];
  uint16_t trial_stack[kStackValues];
  std::vector<uint16_t> top_heap;
  std::vector<uint16_t> trial_heap;
  uint16_t* top = top_stack;
  uint16_t* trial = trial_stack;
  if (count > kStackValues) {
    top_heap.resize(count);
    trial_heap.resize(count);
    top = top_heap.data();
    trial = trial_heap.data();
  }
  std::copy(codes, codes + count, top);
  const unsigned __int128 budget = static_cast<unsigned __int128>(delta_micro) * count;
  unsigned width = bits;
  while (width > 1) {
    const unsigned candidate = width - 1;
    const uint32_t max_code = (uint32_t{1} << candidate) - 1;
    const double step = range / static_cast<double>(max_code);
    const unsigned shift = bits - candidate;
    // Quantize in slices and stop as soon as the budget is exceeded: most rejections are
    // decided within the first few hundred values.
    uint64_t ds_sum = 0;
    bool over = false;
    constexpr uint64_t kSlice = 256;
    for (uint64_t begin = 0; begin < count && !over; begin += kSlice) {
      const uint64_t end = std::min(count, begin + kSlice);
      QuantizeAll(magnitudes + begin, end - begin, lo64, step, max_code, trial + begin);
      for (uint64_t j = begin; j < end; ++j) {
        const int32_t difference = static_cast<int32_t>(top[j] >> shift) - trial[j];
        ds_sum += static_cast<uint64_t>(difference < 0 ? -difference : difference);
      }
      over = static_cast<unsigned __int128>(ds_sum) * 1000000u > budget;
    }
    if (over) break;
    width = candidate;
    std::copy(trial, trial + count, codes);
  }
  return width;
}

void FinishBlocks(const CodecParams& params, unsigned threads, GroupCode* group) {
  const unsigned num_labels = params.labels();
  std::vector<Block>& blocks = group->blocks;
  uint32_t min_key[2 * SLICER_MAX_BLOCKS];
  uint32_t max_key[2 * SLICER_MAX_BLOCKS];
  std::fill(min_key, min_key + num_labels, 0xFFFFFFFFu);
  std::fill(max_key, max_key + num_labels, 0u);
  for (const KeptElement& e : group->kept) {
    const uint32_t key = MagnitudeKey(e.value);
    min_key[e.label] = std::min(min_key[e.label], key);
    max_key[e.label] = std::max(max_key[e.label], key);
  }
  // Chain per sign: lo_b = hi of the next non-empty block, the last keeps its own minimum.
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
      } else {
        block.width = params.multi_level ? params.levels[m] : params.bits;  // ABQ refines below
      }
    }
  }
  // Gather each block's magnitudes (label-major), quantize, scatter the codes back.
  uint64_t offset[2 * SLICER_MAX_BLOCKS + 1] = {};
  for (unsigned label = 0; label < num_labels; ++label) {
    offset[label + 1] = offset[label] + blocks[label].count;
  }
  const uint64_t k = group->kept.size();
  thread_local std::vector<float> magnitudes;
  thread_local std::vector<uint64_t> owner;
  thread_local std::vector<uint16_t> codes;
  magnitudes.resize(k);
  owner.resize(k);
  codes.assign(k, 0);
  {
    uint64_t cursor[2 * SLICER_MAX_BLOCKS];
    std::copy(offset, offset + num_labels, cursor);
    for (uint64_t t = 0; t < k; ++t) {
      const KeptElement& e = group->kept[t];
      const uint64_t slot = cursor[e.label]++;
      magnitudes[slot] = BitsToFloat(MagnitudeKey(e.value));
      owner[slot] = t;
    }
  }
  std::vector<unsigned> work;
  for (unsigned label = 0; label < num_labels; ++label) {
    if (blocks[label].count > 0 && blocks[label].width > 0) work.push_back(label);
  }
  const unsigned parts = k < (uint64_t{1} << 15)
                             ? 1u
                             : std::min<unsigned>(threads, static_cast<unsigned>(work.size()));
  // Workers must not name the thread_local buffers (each thread would see its own).
  const float* magnitude_data = magnitudes.data();
  uint16_t* code_data = codes.data();
  RunParts(work.size(), std::max(parts, 1u), [&](unsigned, uint64_t begin, uint64_t end) {
    for (uint64_t i = begin; i < end; ++i) {
      const unsigned label = work[i];
      Block& block = blocks[label];
      const float* a = magnitude_data + offset[label];
      uint16_t* c = code_data + offset[label];
      if (params.multi_level) {
        const uint32_t max_code = (uint32_t{1} << block.width) - 1;
        const double step = (static_cast<double>(block.hi) - static_cast<double>(block.lo)) /
                            static_cast<double>(max_code);
        QuantizeAll(a, block.count, block.lo, step, max_code, c);
      } else {
        block.width =
            AbqWidth(a, block.count, block.lo, block.hi, params.bits, params.delta_micro, c);
      }
    }
  });
  for (uint64_t slot = 0; slot < k; ++slot) group->kept[owner[slot]].code = codes[slot];
}

}  // namespace slicer::internal
