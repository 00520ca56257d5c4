// Block ranges (the chain of §5.2), ABQ widths (§5.4) and the codes of §5.3.
//
// Every step streams over the kept list in position order, split across threads by element
// ranges: per-thread partial sums are integers, so the result never depends on the split.
#include <algorithm>
#include <cmath>
#include <vector>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define SLICER_RANKS_AVX2 1
#endif

#include "codec.hpp"
#include "context.hpp"
#include "encoder.hpp"
#include "float_bits.hpp"
#include "parallel.hpp"

namespace slicer::internal {
namespace {

constexpr uint64_t kMinKeptPerThread = uint64_t{1} << 15;
constexpr uint64_t kSlice = 1024;  // ABQ re-checks its budgets every kSlice elements

// Left uninitialized in arrays on purpose: per-row groups build them thousands of times and
// only the entries of labels in use are set and read.
struct Quantizer {
  double lo;
  double step;
  uint32_t max_code;
};

Quantizer MakeQuantizer(const Block& block, unsigned width) {
  Quantizer q;
  q.lo = block.lo;
  q.max_code = (uint32_t{1} << width) - 1;
  q.step = (static_cast<double>(block.hi) - static_cast<double>(block.lo)) /
           static_cast<double>(q.max_code);
  return q;
}

// Sets every element's code at its block's width; only labels with selected[label] when
// `selected` is given.
void QuantizeKept(const std::vector<Block>& blocks, const bool* selected, unsigned parts,
                  KeptList* kept) {
  Quantizer quantizers[2 * SLICER_MAX_BLOCKS];
  for (size_t label = 0; label < blocks.size(); ++label) {
    quantizers[label] = blocks[label].count > 0 && blocks[label].width > 0
                            ? MakeQuantizer(blocks[label], blocks[label].width)
                            : Quantizer{0.0, 0.0, 0};
  }
  bool all[2 * SLICER_MAX_BLOCKS];
  if (selected == nullptr) {
    std::fill(all, all + 2 * SLICER_MAX_BLOCKS, true);
    selected = all;
  }
  KeptElement* elements = kept->data();
  RunParts(kept->size(), parts, [&](unsigned, uint64_t begin, uint64_t end) {
    uint64_t t = begin;
#if defined(__SSE2__)
    // Two elements per step: the binary64 division dominates, and divpd does two at once.
    for (; t + 2 <= end; t += 2) {
      KeptElement& e0 = elements[t];
      KeptElement& e1 = elements[t + 1];
      const Quantizer& q0 = quantizers[e0.label];
      const Quantizer& q1 = quantizers[e1.label];
      const __m128i codes = QuantizeMagnitude2(
          _mm_set_pd(std::fabs(static_cast<double>(e1.value)),
                     std::fabs(static_cast<double>(e0.value))),
          _mm_set_pd(q1.lo, q0.lo), _mm_set_pd(q1.step, q0.step),
          _mm_set_pd(static_cast<double>(q1.max_code), static_cast<double>(q0.max_code)));
      const uint16_t c0 = static_cast<uint16_t>(_mm_cvtsi128_si32(codes));
      const uint16_t c1 = static_cast<uint16_t>(_mm_cvtsi128_si32(_mm_srli_si128(codes, 4)));
      e0.code = selected[e0.label] ? c0 : e0.code;
      e1.code = selected[e1.label] ? c1 : e1.code;
    }
#endif
    for (; t < end; ++t) {
      KeptElement& e = elements[t];
      if (!selected[e.label]) continue;
      const Quantizer& q = quantizers[e.label];
      e.code = q.max_code == 0
                   ? 0
                   : static_cast<uint16_t>(QuantizeMagnitude(
                         std::fabs(static_cast<double>(e.value)), q.lo, q.step, q.max_code));
    }
  });
}

// Greedy ABQ (§5.4) on one thread. Blocks are independent, so each block runs its own greedy
// loop over its own elements (grouped by a counting sort of the kept list by label): a local
// sum, no branch on the label, and a trial stops at the first element that puts it over the
// budget (partial sums only grow, so the decision is the same). On entry every element's code
// is T0 and ABQ blocks have width q_bit; on return the widths are final.
void ChooseAbqWidthsOneThread(const CodecParams& params, Workspace* workspace, GroupCode* group) {
  const unsigned num_labels = params.labels();
  std::vector<Block>& blocks = group->blocks;
  const KeptElement* elements = group->kept.data();
  const uint64_t k = group->kept.size();
  IndexBuffer& order = workspace->order;
  order.resize(k);
  uint64_t start[2 * SLICER_MAX_BLOCKS + 1];
  uint64_t fill[2 * SLICER_MAX_BLOCKS];
  start[0] = 0;
  for (unsigned label = 0; label < num_labels; ++label) {
    start[label + 1] = start[label] + blocks[label].count;
    fill[label] = start[label];
  }
  for (uint64_t t = 0; t < k; ++t) order[fill[elements[t].label]++] = t;
  for (unsigned label = 0; label < num_labels; ++label) {
    Block& block = blocks[label];
    if (block.count == 0) continue;
    // DS_sum * 10^6 <= delta_micro * c  <=>  DS_sum <= floor(delta_micro * c / 10^6).
    const unsigned __int128 limit_wide =
        static_cast<unsigned __int128>(params.delta_micro) * block.count / 1000000u;
    const uint64_t limit =
        limit_wide > ~uint64_t{0} ? ~uint64_t{0} : static_cast<uint64_t>(limit_wide);
    while (block.width > 1) {
      const Quantizer trial = MakeQuantizer(block, block.width - 1);
      const unsigned shift = params.bits - (block.width - 1);
      uint64_t sum = 0;
      bool over = false;
      uint64_t i = start[label];
#if defined(__SSE2__)
      // Two elements per step (the decision is the same: partial sums only grow).
      const __m128d lo2 = _mm_set1_pd(trial.lo);
      const __m128d step2 = _mm_set1_pd(trial.step);
      const __m128d max2 = _mm_set1_pd(static_cast<double>(trial.max_code));
      for (; i + 2 <= start[label + 1] && !over; i += 2) {
        const KeptElement& e0 = elements[order[i]];
        const KeptElement& e1 = elements[order[i + 1]];
        const __m128i codes =
            QuantizeMagnitude2(_mm_set_pd(std::fabs(static_cast<double>(e1.value)),
                                          std::fabs(static_cast<double>(e0.value))),
                               lo2, step2, max2);
        const int64_t d0 = static_cast<int64_t>(e0.code >> shift) - _mm_cvtsi128_si32(codes);
        const int64_t d1 =
            static_cast<int64_t>(e1.code >> shift) - _mm_cvtsi128_si32(_mm_srli_si128(codes, 4));
        sum += static_cast<uint64_t>(d0 < 0 ? -d0 : d0) + static_cast<uint64_t>(d1 < 0 ? -d1 : d1);
        over = sum > limit;
      }
#endif
      for (; i < start[label + 1] && !over; ++i) {
        const KeptElement& e = elements[order[i]];
        const int64_t code = QuantizeMagnitude(std::fabs(static_cast<double>(e.value)), trial.lo,
                                               trial.step, trial.max_code);
        const int64_t difference = static_cast<int64_t>(e.code >> shift) - code;
        sum += static_cast<uint64_t>(difference < 0 ? -difference : difference);
        over = sum > limit;
      }
      if (over) break;
      --block.width;
    }
  }
}

// Greedy ABQ (§5.4) for all blocks at once. On entry every element's code is T0 (the code at
// q_bit) and ABQ blocks have width q_bit; on return the widths are final.
void ChooseAbqWidths(const CodecParams& params, unsigned parts, GroupCode* group) {
  const unsigned num_labels = params.labels();
  std::vector<Block>& blocks = group->blocks;
  bool active[2 * SLICER_MAX_BLOCKS];
  bool any_active = false;
  for (unsigned label = 0; label < num_labels; ++label) {
    active[label] = blocks[label].count > 0 && blocks[label].width > 1;
    any_active = any_active || active[label];
  }
  const KeptElement* elements = group->kept.data();
  // One row of per-label sums per part (on the stack for one part: the per-row case).
  uint64_t single_part_sums[2 * SLICER_MAX_BLOCKS];
  std::vector<uint64_t> many_part_sums(parts > 1 ? static_cast<size_t>(parts) * num_labels : 0);
  uint64_t* part_sums = parts > 1 ? many_part_sums.data() : single_part_sums;
  while (any_active) {
    // Trial: every active block at its width - 1, DS against T0 >> (q_bit - (width - 1)).
    Quantizer trial[2 * SLICER_MAX_BLOCKS];
    unsigned shift[2 * SLICER_MAX_BLOCKS];
    unsigned __int128 budget[2 * SLICER_MAX_BLOCKS];
    for (unsigned label = 0; label < num_labels; ++label) {
      if (!active[label]) continue;
      trial[label] = MakeQuantizer(blocks[label], blocks[label].width - 1);
      shift[label] = params.bits - (blocks[label].width - 1);
      budget[label] = static_cast<unsigned __int128>(params.delta_micro) * blocks[label].count;
    }
    std::fill(part_sums, part_sums + static_cast<size_t>(parts) * num_labels, uint64_t{0});
    RunParts(group->kept.size(), parts, [&](unsigned part, uint64_t begin, uint64_t end) {
      uint64_t* sums = part_sums + static_cast<size_t>(part) * num_labels;
      bool live[2 * SLICER_MAX_BLOCKS];
      std::copy(active, active + num_labels, live);
      for (uint64_t slice = begin; slice < end; slice += kSlice) {
        const uint64_t slice_end = std::min(end, slice + kSlice);
        for (uint64_t t = slice; t < slice_end; ++t) {
          const KeptElement& e = elements[t];
          if (!live[e.label]) continue;
          const Quantizer& q = trial[e.label];
          const int64_t code =
              QuantizeMagnitude(std::fabs(static_cast<double>(e.value)), q.lo, q.step, q.max_code);
          const int64_t difference = static_cast<int64_t>(e.code >> shift[e.label]) - code;
          sums[e.label] += static_cast<uint64_t>(difference < 0 ? -difference : difference);
        }
        // A partial sum over budget already rejects: the total can only be larger.
        for (unsigned label = 0; label < num_labels; ++label) {
          live[label] = live[label] &&
                        static_cast<unsigned __int128>(sums[label]) * 1000000u <= budget[label];
        }
        // (labels that were never active keep live == false and are not read.)
      }
    });
    any_active = false;
    for (unsigned label = 0; label < num_labels; ++label) {
      if (!active[label]) continue;
      unsigned __int128 total = 0;
      for (unsigned part = 0; part < parts; ++part) {
        total += part_sums[static_cast<size_t>(part) * num_labels + label];
      }
      if (total * 1000000u <= budget[label]) {
        --blocks[label].width;
        active[label] = blocks[label].width > 1;
      } else {
        active[label] = false;
      }
      any_active = any_active || active[label];
    }
  }
}

// The magnitude keys of the largest and smallest kept element of every label, in a pass over
// the kept list (into group->min_key / max_key).
void FindBlockRanges(unsigned parts, unsigned num_labels, GroupCode* group) {
  uint32_t* min_key = group->min_key;
  uint32_t* max_key = group->max_key;
  const uint64_t k = group->kept.size();
  std::vector<uint32_t> many_min(parts > 1 ? static_cast<size_t>(parts) * num_labels : 0);
  std::vector<uint32_t> many_max(many_min.size());
  uint32_t* part_min = parts > 1 ? many_min.data() : min_key;
  uint32_t* part_max = parts > 1 ? many_max.data() : max_key;
  std::fill(part_min, part_min + static_cast<size_t>(parts) * num_labels, 0xFFFFFFFFu);
  std::fill(part_max, part_max + static_cast<size_t>(parts) * num_labels, 0u);
  const KeptElement* elements = group->kept.data();
  RunParts(k, parts, [&](unsigned part, uint64_t begin, uint64_t end) {
    uint32_t* lo = part_min + static_cast<size_t>(part) * num_labels;
    uint32_t* hi = part_max + static_cast<size_t>(part) * num_labels;
    for (uint64_t t = begin; t < end; ++t) {
      const uint32_t key = MagnitudeKey(elements[t].value);
      lo[elements[t].label] = std::min(lo[elements[t].label], key);
      hi[elements[t].label] = std::max(hi[elements[t].label], key);
    }
  });
  if (parts > 1) {
    for (unsigned label = 0; label < num_labels; ++label) {
      min_key[label] = 0xFFFFFFFFu;
      max_key[label] = 0;
      for (unsigned part = 0; part < parts; ++part) {
        min_key[label] = std::min(min_key[label], part_min[part * num_labels + label]);
        max_key[label] = std::max(max_key[label], part_max[part * num_labels + label]);
      }
    }
  }
}

// Ranges and starting widths of a group's blocks from each label's smallest and largest key,
// chained per sign: lo_b = hi of the next non-empty block, the last keeps its own minimum; a
// block whose keys are all equal has width 0, the others q_bit (or their level), which ABQ
// may lower later.
void ChainBlocks(const CodecParams& params, const uint32_t* min_key, const uint32_t* max_key,
                 std::vector<Block>* blocks_out) {
  std::vector<Block>& blocks = *blocks_out;
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
      block.width = min_key[label] == max_key[label]
                        ? 0
                        : (params.multi_level ? params.levels[m] : params.bits);
    }
  }
}

}  // namespace

void FinishBlocks(const CodecParams& params, unsigned threads, Workspace* workspace,
                  GroupCode* group) {
  if (group->finished) {  // FinishSmallGroup did it all
    group->finished = false;
    group->ranges_known = false;
    return;
  }
  const unsigned num_labels = params.labels();
  std::vector<Block>& blocks = group->blocks;
  const uint64_t k = group->kept.size();
  const unsigned parts = PartCount(k, threads, kMinKeptPerThread);

  // Magnitude range of every block (keys order like magnitudes): from the selection when it
  // found them, else one row of per-label minima and maxima per part (on the stack for one
  // part, the per-row case).
  uint32_t* min_key = group->min_key;
  uint32_t* max_key = group->max_key;
  const bool ranges_known = group->ranges_known;
  group->ranges_known = false;
  if (!ranges_known) FindBlockRanges(parts, num_labels, group);

  ChainBlocks(params, min_key, max_key, &blocks);

  // Codes at the starting widths (for ABQ blocks: T0 at q_bit), then the greedy ABQ, then the
  // codes of the blocks ABQ lowered.
  QuantizeKept(blocks, nullptr, parts, &group->kept);
  if (params.multi_level || params.delta_micro == 0) return;
  if (parts == 1) {
    ChooseAbqWidthsOneThread(params, workspace, group);
  } else {
    ChooseAbqWidths(params, parts, group);
  }
  bool lowered[2 * SLICER_MAX_BLOCKS];
  bool any_lowered = false;
  for (unsigned label = 0; label < num_labels; ++label) {
    lowered[label] =
        blocks[label].count > 0 && blocks[label].width > 0 && blocks[label].width < params.bits;
    any_lowered = any_lowered || lowered[label];
  }
  if (any_lowered) QuantizeKept(blocks, lowered, parts, &group->kept);
}

namespace {

// Codes of a block's magnitudes mag[0, count) at quantizer q, into code[].
void QuantizeRun(const double* mag, uint64_t count, const Quantizer& q, uint16_t* code) {
  uint64_t i = 0;
  if (q.max_code == 0) {
    for (; i < count; ++i) code[i] = 0;
    return;
  }
#if defined(__SSE2__)
  const __m128d lo = _mm_set1_pd(q.lo);
  const __m128d step = _mm_set1_pd(q.step);
  const __m128d max_code = _mm_set1_pd(static_cast<double>(q.max_code));
  for (; i + 2 <= count; i += 2) {
    const __m128i codes = QuantizeMagnitude2(_mm_loadu_pd(mag + i), lo, step, max_code);
    code[i] = static_cast<uint16_t>(_mm_cvtsi128_si32(codes));
    code[i + 1] = static_cast<uint16_t>(_mm_cvtsi128_si32(_mm_srli_si128(codes, 4)));
  }
#endif
  for (; i < count; ++i)
    code[i] = static_cast<uint16_t>(QuantizeMagnitude(mag[i], q.lo, q.step, q.max_code));
}

// DS of a block at trial quantizer q against its T0 codes shifted down by `shift`, stopping
// once it passes `limit` (partial sums only grow). True when it stays within the limit.
bool TrialWithin(const double* mag, const uint16_t* t0, uint64_t count, const Quantizer& q,
                 unsigned shift, uint64_t limit) {
  uint64_t sum = 0;
  uint64_t i = 0;
#if defined(__SSE2__)
  const __m128d lo = _mm_set1_pd(q.lo);
  const __m128d step = _mm_set1_pd(q.step);
  const __m128d max_code = _mm_set1_pd(static_cast<double>(q.max_code));
  for (; i + 2 <= count; i += 2) {
    const __m128i codes = QuantizeMagnitude2(_mm_loadu_pd(mag + i), lo, step, max_code);
    const int64_t d0 = static_cast<int64_t>(t0[i] >> shift) - _mm_cvtsi128_si32(codes);
    const int64_t d1 =
        static_cast<int64_t>(t0[i + 1] >> shift) - _mm_cvtsi128_si32(_mm_srli_si128(codes, 4));
    sum += static_cast<uint64_t>(d0 < 0 ? -d0 : d0) + static_cast<uint64_t>(d1 < 0 ? -d1 : d1);
    if (sum > limit) return false;
  }
#endif
  for (; i < count; ++i) {
    const int64_t d =
        static_cast<int64_t>(t0[i] >> shift) - QuantizeMagnitude(mag[i], q.lo, q.step, q.max_code);
    sum += static_cast<uint64_t>(d < 0 ? -d : d);
    if (sum > limit) return false;
  }
  return true;
}

#if defined(SLICER_RANKS_AVX2)
// rank_of[t] = the number of keys larger than key[t], t < count, eight t at a time against
// every key broadcast (finite keys are below 2^31: signed comparisons order them). key[] is
// readable up to the next multiple of eight past count.
__attribute__((target("avx2"))) void CountLargerAvx2(const uint32_t* key, uint64_t count,
                                                     uint32_t* rank_of) {
  for (uint64_t t = 0; t < count; t += 8) {
    const __m256i mine = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(key + t));
    __m256i greater = _mm256_setzero_si256();
    for (uint64_t u = 0; u < count; ++u) {
      const __m256i other = _mm256_set1_epi32(static_cast<int32_t>(key[u]));
      greater = _mm256_sub_epi32(greater, _mm256_cmpgt_epi32(other, mine));
    }
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(rank_of + t), greater);
  }
}
#endif

}  // namespace

bool FinishSmallGroup(const CodecParams& params, GroupCode* group) {
  KeptList& kept = group->kept;
  const uint64_t k = kept.size();
  // Split by sign: magnitude keys and kept indices, on the stack.
  uint32_t keys[2][kSmallFinishMax + 8];  // + padding for the eight-lane rank count
  uint8_t members[2][kSmallFinishMax];
  uint64_t counts[2] = {0, 0};
  if (k > 2 * kSmallFinishMax) return false;
  for (uint64_t t = 0; t < k; ++t) {
    const uint32_t bits = FloatToBits(kept[t].value);
    const unsigned sign = bits >> 31;
    if (counts[sign] == kSmallFinishMax) return false;
    keys[sign][counts[sign]] = bits & 0x7FFFFFFFu;
    members[sign][counts[sign]] = static_cast<uint8_t>(t);
    ++counts[sign];
  }
  const unsigned num_labels = params.labels();
  uint8_t label_of[2 * kSmallFinishMax];  // by kept index
  uint64_t label_count[2 * SLICER_MAX_BLOCKS];
  uint32_t* min_key = group->min_key;
  uint32_t* max_key = group->max_key;
  for (int sign = 0; sign < 2; ++sign) {
    const unsigned blocks = sign == 0 ? params.blocks_pos : params.blocks_neg;
    const unsigned first_label = sign == 0 ? 0 : params.blocks_pos;
    const uint64_t count = counts[sign];
    const uint32_t* key = keys[sign];
    uint64_t edges[SLICER_MAX_BLOCKS + 1];  // first rank of block b (P order within the sign)
    for (unsigned b = 0; b <= blocks; ++b) edges[b] = uint64_t{b} * count / blocks;
    for (unsigned m = 0; m < blocks; ++m) label_count[first_label + m] = edges[m + 1] - edges[m];
    if (count == 0) continue;
    if (blocks == 1) {
      uint32_t smallest = 0xFFFFFFFFu;
      uint32_t largest = 0;
      for (uint64_t t = 0; t < count; ++t) {
        label_of[members[sign][t]] = static_cast<uint8_t>(first_label);
        smallest = std::min(smallest, key[t]);
        largest = std::max(largest, key[t]);
      }
      min_key[first_label] = smallest;
      max_key[first_label] = largest;
      continue;
    }
    // Rank = the number of larger keys (counted in a loop the compiler vectorizes); distinct
    // keys give distinct ranks, a repeated rank means equal keys and a draw: not handled here.
    uint32_t key_at[kSmallFinishMax];
    uint64_t seen[(kSmallFinishMax + 63) / 64] = {};
    uint8_t label_of_rank[kSmallFinishMax];  // block b holds the ranks [edges[b], edges[b + 1])
    for (unsigned b = 0; b < blocks; ++b) {
      for (uint64_t r = edges[b]; r < edges[b + 1]; ++r) {
        label_of_rank[r] = static_cast<uint8_t>(first_label + b);
      }
    }
    uint32_t rank_of[kSmallFinishMax + 7];
#if defined(SLICER_RANKS_AVX2)
    const bool avx2 = UseAvx2();
    if (avx2) {
      for (uint64_t u = count; u % 8 != 0; ++u) keys[sign][u] = 0;  // padding read by the count
      CountLargerAvx2(key, count, rank_of);
    }
#else
    const bool avx2 = false;
#endif
    for (uint64_t t = 0; t < count; ++t) {
      uint32_t greater = 0;
      if (avx2) {
        greater = rank_of[t];
      } else {
        const int32_t mine = static_cast<int32_t>(key[t]);  // finite keys are below 2^31
        for (uint64_t u = 0; u < count; ++u) {
          greater += static_cast<int32_t>(key[u]) > mine ? 1u : 0u;
        }
      }
      const uint64_t bit = uint64_t{1} << (greater & 63);
      if ((seen[greater >> 6] & bit) != 0) return false;
      seen[greater >> 6] |= bit;
      key_at[greater] = key[t];
      label_of[members[sign][t]] = label_of_rank[greater];
    }
    for (unsigned m = 0; m < blocks; ++m) {
      if (edges[m + 1] == edges[m]) continue;
      max_key[first_label + m] = key_at[edges[m]];
      min_key[first_label + m] = key_at[edges[m + 1] - 1];
    }
  }
  // From here on the group is finished this way.
  group->n_pos = counts[0];
  std::vector<Block>& blocks = group->blocks;
  blocks.assign(num_labels, Block{});
  for (unsigned label = 0; label < num_labels; ++label) blocks[label].count = label_count[label];
  ChainBlocks(params, min_key, max_key, &blocks);
  // The magnitudes grouped by label (a counting sort), as binary64.
  uint64_t start[2 * SLICER_MAX_BLOCKS + 1];
  uint64_t fill[2 * SLICER_MAX_BLOCKS];
  start[0] = 0;
  for (unsigned label = 0; label < num_labels; ++label) {
    start[label + 1] = start[label] + label_count[label];
    fill[label] = start[label];
  }
  double mag[2 * kSmallFinishMax];
  uint8_t member_at[2 * kSmallFinishMax];
  for (uint64_t t = 0; t < k; ++t) {
    const uint64_t at = fill[label_of[t]]++;
    mag[at] = std::fabs(static_cast<double>(kept[t].value));
    member_at[at] = static_cast<uint8_t>(t);
  }
  uint16_t code[2 * kSmallFinishMax];
  const bool abq = !params.multi_level && params.delta_micro != 0;
  for (unsigned label = 0; label < num_labels; ++label) {
    Block& block = blocks[label];
    if (block.count == 0) continue;
    const uint64_t first = start[label];
    if (block.width == 0) {
      for (uint64_t i = first; i < first + block.count; ++i) code[i] = 0;
      continue;
    }
    QuantizeRun(mag + first, block.count, MakeQuantizer(block, block.width), code + first);
    if (!abq) continue;
    // Greedy ABQ (§5.4): DS_sum * 10^6 <= delta_micro * c, i.e. DS_sum <= floor(delta_micro * c
    // / 10^6); delta_micro < 2^32 and c < 2^32 here, so the product fits 64 bits.
    const uint64_t limit = uint64_t{params.delta_micro} * block.count / 1000000u;
    const unsigned start_width = block.width;
    while (block.width > 1) {
      const unsigned shift = params.bits - (block.width - 1);
      if (!TrialWithin(mag + first, code + first, block.count,
                       MakeQuantizer(block, block.width - 1), shift, limit)) {
        break;
      }
      --block.width;
    }
    if (block.width < start_width) {
      QuantizeRun(mag + first, block.count, MakeQuantizer(block, block.width), code + first);
    }
  }
  for (uint64_t at = 0; at < k; ++at) {
    KeptElement& e = kept[member_at[at]];
    e.code = code[at];
  }
  for (uint64_t t = 0; t < k; ++t) kept[t].label = label_of[t];
  return true;
}

}  // namespace slicer::internal
