// Rank selection on magnitude keys, the engine of ATKF (§4) and magnitude splitting (§5.1).
//
// Every selection here is "the first r elements of a candidate set in P order". Candidates
// are given as a key array where non-candidates hold key 0 (every candidate is non-zero, so
// they never mix). The r-th largest key mu is found by a histogram of key >> 16 plus nth_element
// inside one bucket; draws are computed only for the elements that tie at mu, and only when
// the ties are split.
#ifndef SLICER_SRC_RANK_SELECT_HPP_
#define SLICER_SRC_RANK_SELECT_HPP_

#include <algorithm>
#include <cstdint>
#include <functional>
#include <utility>
#include <vector>

#include "codec.hpp"
#include "context.hpp"
#include "draw.hpp"
#include "float_bits.hpp"
#include "parallel.hpp"

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace slicer::internal {

constexpr uint64_t kRadixMinElements = uint64_t{1} << 13;
constexpr uint64_t kMinElementsPerThread = uint64_t{1} << 16;
constexpr unsigned kBuckets = 1u << 15;  // keys < 2^31: the top 15 bits
constexpr unsigned kFirstNonFiniteBucket = kInfinityKey >> 16;

struct RankInfo {
  uint32_t key;      // the key at the requested rank (descending, 0-based)
  uint64_t greater;  // how many keys are strictly greater
  uint64_t equal;    // how many keys equal it
};

// Bucket counts of key >> 16 over all n keys, plus the exact number of zero keys.
struct Histogram {
  std::vector<uint64_t> bins;
  uint64_t zeros = 0;
  bool non_finite = false;
};

template <class KeyOf>
Histogram BuildHistogram(KeyOf key_of, uint64_t n, unsigned threads) {
  // Per-part uint32 bins (half the cache footprint); parts stay below 2^32 elements.
  unsigned parts = PartCount(n, threads, kMinElementsPerThread);
  parts = std::max<unsigned>(parts, static_cast<unsigned>((n >> 32) + 1));
  std::vector<std::vector<uint32_t>> part_bins(parts);
  std::vector<uint64_t> part_zeros(parts, 0);
  RunParts(n, parts, [&](unsigned part, uint64_t begin, uint64_t end) {
    std::vector<uint32_t>& bins = part_bins[part];
    bins.assign(kBuckets, 0);
    uint32_t* bin = bins.data();
    uint64_t zeros = 0;
    for (uint64_t j = begin; j < end; ++j) {
      const uint32_t key = key_of(j);
      ++bin[key >> 16];
      zeros += key == 0;
    }
    part_zeros[part] = zeros;
  });
  Histogram histogram;
  histogram.bins.assign(kBuckets, 0);
  for (unsigned part = 0; part < parts; ++part) {
    for (unsigned b = 0; b < kBuckets; ++b) histogram.bins[b] += part_bins[part][b];
    histogram.zeros += part_zeros[part];
  }
  for (unsigned b = kFirstNonFiniteBucket; b < kBuckets; ++b) {
    histogram.non_finite = histogram.non_finite || histogram.bins[b] != 0;
  }
  return histogram;
}

template <class Keys>
RankInfo RankInBucket(Keys* bucket, uint64_t local, uint64_t above) {
  if (local >= bucket->size()) throw StatusError(SLICER_ERR_INTERNAL, "rank out of range");
  std::nth_element(bucket->begin(), bucket->begin() + static_cast<ptrdiff_t>(local), bucket->end(),
                   std::greater<uint32_t>());
  RankInfo info{(*bucket)[local], above, 0};
  for (uint32_t key : *bucket) {
    info.greater += key > info.key;
    info.equal += key == info.key;
  }
  return info;
}

// The bucket holding descending rank `rank`; *above = how many keys lie in higher buckets.
inline unsigned FindBucket(const Histogram& histogram, uint64_t rank, uint64_t* above) {
  *above = 0;
  for (unsigned b = kBuckets; b-- > 0;) {
    if (*above + histogram.bins[b] > rank) return b;
    *above += histogram.bins[b];
  }
  throw StatusError(SLICER_ERR_INTERNAL, "rank beyond the histogram");
}

template <class KeyOf>
RankInfo RankFromHistogram(const Histogram& histogram, KeyOf key_of, uint64_t n, uint64_t rank,
                           unsigned threads) {
  uint64_t above = 0;
  const unsigned chosen = FindBucket(histogram, rank, &above);
  const unsigned parts = PartCount(n, threads, kMinElementsPerThread);
  std::vector<std::vector<uint32_t>> gathered(parts);
  RunParts(n, parts, [&](unsigned part, uint64_t begin, uint64_t end) {
    std::vector<uint32_t>& out = gathered[part];
    out.reserve(histogram.bins[chosen] / parts + 16);
    for (uint64_t j = begin; j < end; ++j) {
      const uint32_t key = key_of(j);
      if ((key >> 16) == chosen) out.push_back(key);
    }
  });
  std::vector<uint32_t> bucket;
  bucket.reserve(histogram.bins[chosen]);
  for (const std::vector<uint32_t>& part : gathered) {
    bucket.insert(bucket.end(), part.begin(), part.end());
  }
  return RankInBucket(&bucket, rank - above, above);
}

// Keeps (in order) the keys whose digit (key >> shift) & digit_mask equals `chosen`.
template <class Keys>
void KeepDigit(Keys* keys, int shift, uint32_t digit_mask, uint32_t chosen) {
  uint32_t* data = keys->data();
  const size_t size = keys->size();
  size_t kept = 0;
  size_t at = 0;
#if defined(__SSE2__)
  // Matches of 32 keys as a bit mask, then one store per match: the scalar form below
  // serializes every element on the running count.
  const __m128i mask_lanes = _mm_set1_epi32(static_cast<int>(digit_mask));
  const __m128i wanted = _mm_set1_epi32(static_cast<int>(chosen));
  const __m128i shift_count = _mm_cvtsi32_si128(shift);
  for (; at + 32 <= size; at += 32) {
    uint32_t mask = 0;
    for (unsigned i = 0; i < 8; ++i) {
      const __m128i key = _mm_loadu_si128(reinterpret_cast<const __m128i*>(data + at + 4 * i));
      const __m128i digit = _mm_and_si128(_mm_srl_epi32(key, shift_count), mask_lanes);
      const int match = _mm_movemask_ps(_mm_castsi128_ps(_mm_cmpeq_epi32(digit, wanted)));
      mask |= static_cast<uint32_t>(match) << (4 * i);
    }
    while (mask != 0) {
      data[kept++] = data[at + static_cast<unsigned>(__builtin_ctz(mask))];
      mask &= mask - 1;
    }
  }
#endif
  for (; at < size; ++at) {
    const uint32_t key = data[at];
    data[kept] = key;
    kept += ((key >> shift) & digit_mask) == chosen;
  }
  keys->resize(kept);
}

// The key at descending `rank` among the keys in *keys (which it reorders and shrinks): an
// 8-bit radix descent with stack histograms, then nth_element on what is left. `Lane` counts
// one bin of a quarter of the keys, so it must hold keys->size() / 4 + 1.
template <class Lane, class Keys>
RankInfo RadixRankInPlace(Keys* keys, uint64_t rank) {
  Keys& bucket = *keys;
  uint64_t above = 0;
  // Below ~128 keys clearing a histogram costs more than selecting directly.
  for (int shift = 23; shift >= 0 && bucket.size() > 128; shift -= 8) {
    // Four interleaved counters per bin: keys cluster in few bins, and one counter array
    // would serialize on store-to-load forwarding.
    Lane lanes[4][256] = {};
    const size_t size = bucket.size();
    size_t i = 0;
    for (; i + 4 <= size; i += 4) {
      ++lanes[0][(bucket[i] >> shift) & 0xFF];
      ++lanes[1][(bucket[i + 1] >> shift) & 0xFF];
      ++lanes[2][(bucket[i + 2] >> shift) & 0xFF];
      ++lanes[3][(bucket[i + 3] >> shift) & 0xFF];
    }
    for (; i < size; ++i) ++lanes[0][(bucket[i] >> shift) & 0xFF];
    unsigned chosen = 0;
    uint64_t chosen_count = 0;
    const uint64_t local = rank - above;
    uint64_t seen = 0;
    for (unsigned b = 256; b-- > 0;) {
      const uint64_t count = uint64_t{lanes[0][b]} + lanes[1][b] + lanes[2][b] + lanes[3][b];
      if (seen + count > local) {
        chosen = b;
        chosen_count = count;
        break;
      }
      seen += count;
    }
    above += seen;
    if (chosen_count == size) continue;  // every key shares this digit: nothing to drop
    KeepDigit(&bucket, shift, 0xFF, chosen);
  }
  return RankInBucket(&bucket, rank - above, above);
}

// The key at descending `rank` of keys that all lie in [floor, largest] (the candidates of a
// sampled floor): one histogram of (key - floor) >> shift over at most 4096 bins (their
// range is narrow, so the bins are fine), one compaction to the bin that holds the rank, and
// the radix descent above on that bin only.
template <class Keys>
RankInfo RankInRange(Keys* keys, uint64_t rank, uint32_t floor, uint32_t largest) {
  constexpr unsigned kBins = 4096;
  Keys& bucket = *keys;
  unsigned shift = 0;
  while (((largest - floor) >> shift) >= kBins) ++shift;
  std::vector<uint32_t> bins(kBins, 0);
  for (const uint32_t key : bucket) ++bins[(key - floor) >> shift];
  uint64_t above = 0;
  unsigned chosen = (largest - floor) >> shift;
  while (above + bins[chosen] <= rank) {
    if (chosen == 0) throw StatusError(SLICER_ERR_INTERNAL, "rank beyond the keys");
    above += bins[chosen--];
  }
  uint32_t* data = bucket.data();
  size_t kept = 0;
  for (size_t at = 0; at < bucket.size(); ++at) {  // few keys match: a predictable branch
    if (((data[at] - floor) >> shift) == chosen) data[kept++] = data[at];
  }
  bucket.resize(kept);
  RankInfo info = RadixRankInPlace<uint32_t>(&bucket, rank - above);
  info.greater += above;
  return info;
}

// RankInRange of keys[0, count) without reordering them, on `threads` threads: per-part
// histograms (integer counts, merged), then each part gathers its keys of the chosen bin into
// *bucket (the order of the gathered keys does not change the key at a rank).
inline RankInfo RankInRangeParallel(const uint32_t* keys, uint64_t count, uint64_t rank,
                                    uint32_t floor, uint32_t largest, unsigned threads,
                                    KeyBuffer* bucket) {
  constexpr unsigned kBins = 4096;
  unsigned shift = 0;
  while (((largest - floor) >> shift) >= kBins) ++shift;
  const unsigned parts = PartCount(count, threads, kMinElementsPerThread);
  std::vector<uint32_t> bins(static_cast<size_t>(kBins) * parts, 0);
  RunParts(count, parts, [&](unsigned part, uint64_t begin, uint64_t end) {
    uint32_t* own = bins.data() + static_cast<size_t>(part) * kBins;
    for (uint64_t t = begin; t < end; ++t) ++own[(keys[t] - floor) >> shift];
  });
  for (unsigned part = 1; part < parts; ++part) {
    for (unsigned bin = 0; bin < kBins; ++bin) bins[bin] += bins[part * kBins + bin];
  }
  uint64_t above = 0;
  unsigned chosen = (largest - floor) >> shift;
  while (above + bins[chosen] <= rank) {
    if (chosen == 0) throw StatusError(SLICER_ERR_INTERNAL, "rank beyond the keys");
    above += bins[chosen--];
  }
  // Per-part counts of the chosen bin give each part its offset in the bucket.
  std::vector<uint64_t> offsets(parts + 1, 0);
  for (unsigned part = 0; part < parts; ++part) {
    offsets[part + 1] = offsets[part] + bins[part == 0 ? chosen : part * kBins + chosen];
  }
  if (parts > 1) {
    // bins[chosen] now holds the merged count; part 0's own count is the total less the rest.
    uint64_t rest = 0;
    for (unsigned part = 1; part < parts; ++part) rest += bins[part * kBins + chosen];
    offsets[1] = bins[chosen] - rest;
    for (unsigned part = 1; part < parts; ++part) {
      offsets[part + 1] = offsets[part] + bins[part * kBins + chosen];
    }
  }
  bucket->resize(offsets[parts]);
  uint32_t* out = bucket->data();
  RunParts(count, parts, [&](unsigned part, uint64_t begin, uint64_t end) {
    uint64_t at = offsets[part];
    uint64_t t = begin;
#if defined(__SSE2__)
    // Sixteen keys per test: a match (about one key in a few thousand) is picked out by its bit.
    const __m128i floor4 = _mm_set1_epi32(static_cast<int>(floor));
    const __m128i chosen4 = _mm_set1_epi32(static_cast<int>(chosen));
    const __m128i shift4 = _mm_cvtsi32_si128(static_cast<int>(shift));
    for (; t + 16 <= end; t += 16) {
      unsigned mask = 0;
      for (unsigned i = 0; i < 4; ++i) {
        const __m128i key = _mm_loadu_si128(reinterpret_cast<const __m128i*>(keys + t + 4 * i));
        const __m128i bin = _mm_srl_epi32(_mm_sub_epi32(key, floor4), shift4);
        mask |=
            static_cast<unsigned>(_mm_movemask_ps(_mm_castsi128_ps(_mm_cmpeq_epi32(bin, chosen4))))
            << (4 * i);
      }
      while (mask != 0) {
        out[at++] = keys[t + static_cast<unsigned>(__builtin_ctz(mask))];
        mask &= mask - 1;
      }
    }
#endif
    for (; t < end; ++t) {  // few keys match: a predictable branch
      if (((keys[t] - floor) >> shift) == chosen) out[at++] = keys[t];
    }
  });
  RankInfo info = RadixRankInPlace<uint32_t>(bucket, rank - above);
  info.greater += above;
  return info;
}

// Small inputs (fewer than kRadixMinElements keys). One histogram of the top 11 key bits
// (exponent and 3 mantissa bits: real data puts few keys in one bin), scanned down from the
// largest key's bin only, then one compaction to the chosen bin; if that bin is still large
// (clustered keys) the radix descent above finishes it.
constexpr int kSmallShift = 20;  // keys < 2^31: 11 bits above
constexpr unsigned kSmallBins = 1u << (31 - kSmallShift);

// SmallRankInPlace with the histogram of key >> kSmallShift over *keys and their largest key
// already counted (by the caller's pass that copied the keys).
// The key at descending rank `local` of keys[0, size) for a few dozen keys: the one whose count
// of larger keys is at most `local` and whose count of larger or equal keys exceeds it, counted
// in loops the compiler vectorizes (no nth_element). `above` is added to the count of larger.
inline RankInfo RankByCounting(const uint32_t* keys, uint64_t size, uint64_t local,
                               uint64_t above) {
  for (uint64_t i = 0; i < size; ++i) {
    const int32_t mine = static_cast<int32_t>(keys[i]);  // finite keys are below 2^31
    uint32_t greater = 0;
    uint32_t equal = 0;
    for (uint64_t u = 0; u < size; ++u) {
      greater += static_cast<int32_t>(keys[u]) > mine ? 1u : 0u;
      equal += static_cast<int32_t>(keys[u]) == mine ? 1u : 0u;
    }
    if (greater <= local && local < uint64_t{greater} + equal) {
      return RankInfo{keys[i], above + greater, equal};
    }
  }
  throw StatusError(SLICER_ERR_INTERNAL, "rank out of range");
}

template <class Keys>
RankInfo SmallRankFromBins(Keys* keys, uint64_t rank, const uint16_t* bins, uint32_t largest) {
  constexpr int kShift = kSmallShift;
  Keys& bucket = *keys;
  uint64_t above = 0;
  unsigned chosen = largest >> kShift;
  while (above + bins[chosen] <= rank) above += bins[chosen--];
  KeepDigit(&bucket, kShift, 0x7FF, chosen);
  if (bucket.size() <= 32) return RankByCounting(bucket.data(), bucket.size(), rank - above, above);
  RankInfo info = RadixRankInPlace<uint16_t>(&bucket, rank - above);
  info.greater += above;
  return info;
}

template <class Keys>
RankInfo SmallRankInPlace(Keys* keys, uint64_t rank) {
  static_assert(kRadixMinElements < 65536, "uint16 bins");
  Keys& bucket = *keys;
  if (bucket.size() <= 128) return RankInBucket(&bucket, rank, 0);
  uint16_t bins[kSmallBins] = {};
  uint32_t largest = 0;
  for (uint32_t key : bucket) {
    ++bins[key >> kSmallShift];
    largest = std::max(largest, key);
  }
  return SmallRankFromBins(keys, rank, bins, largest);
}

template <class KeyOf>
RankInfo SmallKeyAtRank(KeyOf key_of, uint64_t n, uint64_t rank, KeyBuffer* scratch) {
  KeyBuffer& bucket = *scratch;
  bucket.resize(n);
  for (uint64_t j = 0; j < n; ++j) bucket[j] = key_of(j);
  return SmallRankInPlace(&bucket, rank);
}

template <class KeyOf>
RankInfo KeyAtRank(KeyOf key_of, uint64_t n, uint64_t rank, unsigned threads, KeyBuffer* scratch) {
  if (n < kRadixMinElements) return SmallKeyAtRank(key_of, n, rank, scratch);
  return RankFromHistogram(BuildHistogram(key_of, n, threads), key_of, n, rank, threads);
}

// "The first `count` candidates in P order": keys above mu, plus the ties at mu whose
// (draw, index) is at most (draw_limit, index_limit).
struct Cut {
  uint32_t mu = 0xFFFFFFFFu;  // no finite key reaches it: the empty cut
  bool all_ties = false;
  uint64_t draw_limit = 0;
  uint64_t index_limit = 0;
};

inline bool InCut(const Cut& cut, uint32_t key, uint64_t seed, uint64_t global_index) {
  if (key != cut.mu) return key > cut.mu;
  if (cut.all_ties) return true;
  const uint64_t d = Draw(seed, global_index);
  return d < cut.draw_limit || (d == cut.draw_limit && global_index <= cut.index_limit);
}

// Completes a cut from the rank of its last member; `global_of(j)` is j's global index. The
// scan for the ties at mu runs in parts on `threads` threads: the (draw, global index) pairs
// are distinct, so the chosen one does not depend on the order they were collected in.
template <class KeyOf, class GlobalOf>
Cut CutFromRank(const RankInfo& info, uint64_t count, KeyOf key_of, uint64_t n, uint64_t seed,
                GlobalOf global_of, unsigned threads = 1) {
  Cut cut;
  if (info.key == 0) throw StatusError(SLICER_ERR_INTERNAL, "selection reached a zero");
  cut.mu = info.key;
  const uint64_t need = count - info.greater;  // 1 ... info.equal
  if (need == info.equal) {
    cut.all_ties = true;
    return cut;
  }
  using Tie = std::pair<uint64_t, uint64_t>;  // (draw, global index)
  const unsigned parts = PartCount(n, threads, kMinElementsPerThread);
  std::vector<std::vector<Tie>> part_ties(parts);
  RunParts(n, parts, [&](unsigned part, uint64_t begin, uint64_t end) {
    std::vector<Tie>& ties = part_ties[part];
    ties.reserve(parts == 1 ? info.equal : info.equal / parts + 16);
    // Locals, not the captured references: the appends below could alias them, so the loop
    // would reload them on every element.
    const uint32_t mu = cut.mu;
    const uint64_t draw_seed = seed;
    const KeyOf keys = key_of;
    const GlobalOf globals = global_of;
    for (uint64_t j = begin; j < end; ++j) {
      if (keys(j) == mu) {
        const uint64_t global = globals(j);
        ties.emplace_back(Draw(draw_seed, global), global);
      }
    }
  });
  std::vector<Tie>& ties = part_ties[0];
  for (unsigned part = 1; part < parts; ++part) {
    ties.insert(ties.end(), part_ties[part].begin(), part_ties[part].end());
  }
  if (ties.size() != info.equal) throw StatusError(SLICER_ERR_INTERNAL, "tie count mismatch");
  std::nth_element(ties.begin(), ties.begin() + static_cast<ptrdiff_t>(need - 1), ties.end());
  cut.draw_limit = ties[need - 1].first;
  cut.index_limit = ties[need - 1].second;
  return cut;
}

template <class KeyOf, class GlobalOf>
Cut CutFirst(KeyOf key_of, uint64_t n, uint64_t count, uint64_t seed, unsigned threads,
             GlobalOf global_of, KeyBuffer* scratch) {
  if (count == 0) return Cut{};
  return CutFromRank(KeyAtRank(key_of, n, count - 1, threads, scratch), count, key_of, n, seed,
                     global_of);
}

}  // namespace slicer::internal

#endif  // SLICER_SRC_RANK_SELECT_HPP_
