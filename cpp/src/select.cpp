// ATKF (§4) and magnitude splitting (§5.1) by radix selection on magnitude keys.
//
// Every selection here is "the first r elements of a candidate set in P order". Candidates
// are given as a key array where non-candidates hold key 0 (every candidate is non-zero, so
// they never mix). The r-th largest key mu is found by a 16-bit histogram plus nth_element
// inside one bucket; draws are computed only for the elements that tie at mu, and only when
// the ties are split.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <utility>
#include <vector>

#include "codec.hpp"
#include "draw.hpp"
#include "float_bits.hpp"
#include "parallel.hpp"

namespace slicer::internal {
namespace {

constexpr uint64_t kRadixMinElements = uint64_t{1} << 13;
constexpr uint64_t kMinElementsPerThread = uint64_t{1} << 16;
constexpr unsigned kBuckets = 1u << 15;
constexpr uint64_t kSortLabelMax = 96;  // LabelSign sorts sets up to this size  // keys < 2^31: the top 15 bits
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

std::vector<uint32_t>& Scratch() {
  thread_local std::vector<uint32_t> scratch;
  return scratch;
}

RankInfo RankInBucket(std::vector<uint32_t>* bucket, uint64_t local, uint64_t above) {
  if (local >= bucket->size()) throw StatusError(SLICER_ERR_INTERNAL, "rank out of range");
  std::nth_element(bucket->begin(), bucket->begin() + static_cast<ptrdiff_t>(local),
                   bucket->end(), std::greater<uint32_t>());
  RankInfo info{(*bucket)[local], above, 0};
  for (uint32_t key : *bucket) {
    info.greater += key > info.key;
    info.equal += key == info.key;
  }
  return info;
}

// The bucket holding descending rank `rank`; *above = how many keys lie in higher buckets.
unsigned FindBucket(const Histogram& histogram, uint64_t rank, uint64_t* above) {
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

// Small inputs: an 11-bit histogram on the stack (exponent and 3 mantissa bits), then
// nth_element inside the one bucket that holds the rank.
template <class KeyOf>
RankInfo SmallKeyAtRank(KeyOf key_of, uint64_t n, uint64_t rank) {
  std::vector<uint32_t>& bucket = Scratch();
  if (n <= 128) {  // clearing even a small histogram costs more than selecting directly
    bucket.resize(n);
    for (uint64_t j = 0; j < n; ++j) bucket[j] = key_of(j);
    return RankInBucket(&bucket, rank, 0);
  }
  // Radix descent, 8 bits a level from the exponent down, narrowing the candidates in place.
  static_assert(kRadixMinElements < 65536, "uint16 lanes");
  bucket.resize(n);
  for (uint64_t j = 0; j < n; ++j) bucket[j] = key_of(j);
  uint64_t above = 0;
  for (int shift = 23; shift >= 0 && bucket.size() > 64; shift -= 8) {
    // Four interleaved counters per bin: keys cluster in few bins, and one counter array
    // would serialize on store-to-load forwarding.
    uint16_t lanes[4][256] = {};
    const size_t size = bucket.size();
    size_t i = 0;
    for (; i + 4 <= size; i += 4) {
      ++lanes[0][(bucket[i] >> shift) & 0xFF];
      ++lanes[1][(bucket[i + 1] >> shift) & 0xFF];
      ++lanes[2][(bucket[i + 2] >> shift) & 0xFF];
      ++lanes[3][(bucket[i + 3] >> shift) & 0xFF];
    }
    for (; i < size; ++i) ++lanes[0][(bucket[i] >> shift) & 0xFF];
    uint32_t histogram[256];
    for (unsigned b = 0; b < 256; ++b) {
      histogram[b] = uint32_t{lanes[0][b]} + lanes[1][b] + lanes[2][b] + lanes[3][b];
    }
    unsigned chosen = 0;
    const uint64_t local = rank - above;
    uint64_t seen = 0;
    for (unsigned b = 256; b-- > 0;) {
      if (seen + histogram[b] > local) {
        chosen = b;
        break;
      }
      seen += histogram[b];
    }
    above += seen;
    size_t kept = 0;
    for (uint32_t key : bucket) {
      bucket[kept] = key;
      kept += ((key >> shift) & 0xFF) == chosen;
    }
    bucket.resize(kept);
  }
  return RankInBucket(&bucket, rank - above, above);
}

template <class KeyOf>
RankInfo KeyAtRank(KeyOf key_of, uint64_t n, uint64_t rank, unsigned threads) {
  if (n < kRadixMinElements) return SmallKeyAtRank(key_of, n, rank);
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

// Completes a cut from the rank of its last member; `global_of(j)` is j's global index.
template <class KeyOf, class GlobalOf>
Cut CutFromRank(const RankInfo& info, uint64_t count, KeyOf key_of, uint64_t n, uint64_t seed,
                GlobalOf global_of) {
  Cut cut;
  if (info.key == 0) throw StatusError(SLICER_ERR_INTERNAL, "selection reached a zero");
  cut.mu = info.key;
  const uint64_t need = count - info.greater;  // 1 ... info.equal
  if (need == info.equal) {
    cut.all_ties = true;
    return cut;
  }
  std::vector<std::pair<uint64_t, uint64_t>> ties;  // (draw, global index)
  ties.reserve(info.equal);
  for (uint64_t j = 0; j < n; ++j) {
    if (key_of(j) == cut.mu) {
      const uint64_t global = global_of(j);
      ties.emplace_back(Draw(seed, global), global);
    }
  }
  std::nth_element(ties.begin(), ties.begin() + static_cast<ptrdiff_t>(need - 1), ties.end());
  cut.draw_limit = ties[need - 1].first;
  cut.index_limit = ties[need - 1].second;
  return cut;
}

template <class KeyOf, class GlobalOf>
Cut CutFirst(KeyOf key_of, uint64_t n, uint64_t count, uint64_t seed, unsigned threads,
             GlobalOf global_of) {
  if (count == 0) return Cut{};
  return CutFromRank(KeyAtRank(key_of, n, count - 1, threads), count, key_of, n, seed,
                     global_of);
}

// Collects the elements for which kept(j) holds, in position order.
template <class Kept>
void CollectKept(const float* x, uint64_t n, unsigned threads, Kept kept, GroupCode* group) {
  const unsigned parts = PartCount(n, threads, kMinElementsPerThread);
  std::vector<std::vector<KeptElement>> lists(parts);
  RunParts(n, parts, [&](unsigned part, uint64_t begin, uint64_t end) {
    // Branch-free compaction through a small buffer: a kept/dropped branch would mispredict.
    constexpr uint64_t kBuffer = 1024;
    KeptElement buffer[kBuffer + 1];
    std::vector<KeptElement>& out = lists[part];
    uint64_t filled = 0;
    for (uint64_t j = begin; j < end; ++j) {
      buffer[filled] = KeptElement{j, x[j], 0, 0};
      filled += kept(j) ? 1 : 0;
      if (filled == kBuffer) {
        out.insert(out.end(), buffer, buffer + filled);
        filled = 0;
      }
    }
    out.insert(out.end(), buffer, buffer + filled);
  });
  group->kept.clear();
  group->kept.reserve(group->k);
  for (const std::vector<KeptElement>& list : lists) {
    group->kept.insert(group->kept.end(), list.begin(), list.end());
  }
}

// CollectKept for lambda = 0: the candidates are the keys >= cut.mu, found 64 at a time with a
// loop the compiler vectorizes; only ties at mu may need their draw.
void CollectTop(const float* x, uint64_t n, uint64_t base, const Cut& cut, uint64_t seed,
                unsigned threads, uint64_t expected, GroupCode* group) {
  const unsigned parts = PartCount(n, threads, kMinElementsPerThread);
  // One part writes straight into the group's list; several parts fill their own lists.
  std::vector<std::vector<KeptElement>> lists(parts > 1 ? parts : 0);
  group->kept.clear();
  group->kept.reserve(expected);
  for (std::vector<KeptElement>& list : lists) list.reserve(expected / parts + expected / 8 + 64);
  const int32_t mu = static_cast<int32_t>(cut.mu);  // finite keys are below 2^31
  RunParts(n, parts, [&](unsigned part, uint64_t begin, uint64_t end) {
    std::vector<KeptElement>& out = parts > 1 ? lists[part] : group->kept;
    const uint32_t* bits = reinterpret_cast<const uint32_t*>(x);
    auto consider = [&](uint64_t j) {
      const uint32_t key = bits[j] & 0x7FFFFFFFu;
      if (key > cut.mu || InCut(cut, key, seed, base + j)) {
        out.push_back(KeptElement{j, x[j], 0, 0});
      }
    };
    uint64_t j = begin;
    for (; j + 64 <= end; j += 64) {
      uint8_t flags[64];
      for (int i = 0; i < 64; ++i) {
        flags[i] = static_cast<int32_t>(bits[j + i] & 0x7FFFFFFFu) >= mu ? 1 : 0;
      }
      uint64_t words[8];
      std::memcpy(words, flags, 64);
      for (int w = 0; w < 8; ++w) {
        uint64_t word = words[w];
        while (word != 0) {
          consider(j + 8 * w + (static_cast<unsigned>(__builtin_ctzll(word)) >> 3));
          word &= word - 1;
        }
      }
    }
    for (; j < end; ++j) {
      if ((bits[j] & 0x7FFFFFFFu) >= cut.mu) consider(j);
    }
  });
  for (const std::vector<KeptElement>& list : lists) {
    group->kept.insert(group->kept.end(), list.begin(), list.end());
  }
}

// Labels the kept elements of one sign by their P-order rank (§5.1). `keys[t]` is the
// magnitude key of kept element `members[t]`.
void LabelSign(const std::vector<uint32_t>& keys, const std::vector<uint64_t>& members,
               unsigned blocks, unsigned first_label, uint64_t base, const CodecParams& params,
               unsigned threads, GroupCode* group) {
  KeptElement* kept = group->kept.data();
  const uint64_t count = keys.size();
  const uint32_t* key_data = keys.data();
  const uint64_t* member = members.data();
  const auto key_of = [key_data](uint64_t t) { return key_data[t]; };
  const auto global_of = [kept, member, base](uint64_t t) {
    return base + kept[member[t]].position;
  };
  if (blocks > 1 && count > 0 && count <= kSortLabelMax) {
    // Few elements (per-row groups): sort them in P order and label by rank directly.
    struct Ranked {
      uint32_t key;
      uint64_t draw;
      uint64_t global;
      uint64_t t;
    };
    Ranked ranked[kSortLabelMax];
    for (uint64_t t = 0; t < count; ++t) {
      const uint64_t global = global_of(t);
      ranked[t] = Ranked{key_data[t], Draw(params.seed, global), global, t};
    }
    std::sort(ranked, ranked + count, [](const Ranked& a, const Ranked& b) {
      if (a.key != b.key) return a.key > b.key;
      if (a.draw != b.draw) return a.draw < b.draw;
      return a.global < b.global;
    });
    unsigned block = 0;
    for (uint64_t r = 0; r < count; ++r) {
      while (block + 1 < blocks && (uint64_t{block} + 1) * count / blocks <= r) ++block;
      kept[member[ranked[r].t]].label = static_cast<uint8_t>(first_label + block);
    }
    return;
  }
  // cuts[b - 1] = the first floor(b * count / M) elements of this sign, b = 1 ... M - 1.
  std::vector<Cut> cuts;
  if (blocks > 1 && count > 0) {
    Histogram histogram;
    const bool radix = count >= kRadixMinElements;
    if (radix) histogram = BuildHistogram(key_of, count, threads);
    for (unsigned b = 1; b < blocks; ++b) {
      const uint64_t rank_end =
          static_cast<uint64_t>(static_cast<unsigned __int128>(b) * count / blocks);
      if (rank_end == 0) {
        cuts.push_back(Cut{});
        continue;
      }
      const RankInfo info = radix
                                ? RankFromHistogram(histogram, key_of, count, rank_end - 1, threads)
                                : KeyAtRank(key_of, count, rank_end - 1, threads);
      cuts.push_back(CutFromRank(info, rank_end, key_of, count, params.seed, global_of));
    }
  }
  for (uint64_t t = 0; t < count; ++t) {
    unsigned block = 0;
    for (const Cut& cut : cuts) block += !InCut(cut, key_data[t], params.seed, global_of(t));
    kept[member[t]].label = static_cast<uint8_t>(first_label + block);
  }
}

// Splits the kept list by sign (compact key arrays, no masking) and labels both signs.
void LabelBlocks(uint64_t base, const CodecParams& params, unsigned threads, GroupCode* group) {
  const std::vector<KeptElement>& kept = group->kept;
  const uint64_t k = kept.size();
  std::vector<uint32_t> keys[2];
  std::vector<uint64_t> members[2];
  for (int sign = 0; sign < 2; ++sign) {
    const uint64_t size = sign == 0 ? group->n_pos : k - group->n_pos;
    keys[sign].resize(size);
    members[sign].resize(size);
  }
  uint64_t filled[2] = {0, 0};
  for (uint64_t t = 0; t < k; ++t) {
    const uint32_t bits = FloatToBits(kept[t].value);
    const unsigned sign = bits >> 31;  // kept values are non-zero: the sign bit is the sign
    keys[sign][filled[sign]] = bits & 0x7FFFFFFFu;
    members[sign][filled[sign]] = t;
    ++filled[sign];
  }
  LabelSign(keys[0], members[0], params.blocks_pos, 0, base, params, threads, group);
  LabelSign(keys[1], members[1], params.blocks_neg, params.blocks_pos, base, params, threads,
            group);
}

void CountAndCheckBlocks(const CodecParams& params, GroupCode* group) {
  group->blocks.assign(params.labels(), Block{});
  for (const KeptElement& e : group->kept) ++group->blocks[e.label].count;
  const uint64_t n_neg = group->k - group->n_pos;
  for (unsigned m = 0; m < params.blocks_pos; ++m) {
    if (group->blocks[m].count != BlockCount(group->n_pos, params.blocks_pos, m)) {
      throw StatusError(SLICER_ERR_INTERNAL, "positive block count mismatch");
    }
  }
  for (unsigned m = 0; m < params.blocks_neg; ++m) {
    if (group->blocks[params.blocks_pos + m].count != BlockCount(n_neg, params.blocks_neg, m)) {
      throw StatusError(SLICER_ERR_INTERNAL, "negative block count mismatch");
    }
  }
}

}  // namespace

uint64_t KeepLimit(uint64_t n, uint32_t sparsity_ppb) {
  return static_cast<uint64_t>(static_cast<unsigned __int128>(n) * (kPpb - sparsity_ppb) / kPpb);
}

uint64_t BlockCount(uint64_t n, unsigned blocks, unsigned m) {
  const auto edge = [&](unsigned b) {
    return static_cast<uint64_t>(static_cast<unsigned __int128>(b) * n / blocks);
  };
  return edge(m + 1) - edge(m);
}

void SelectGroup(const float* x, uint64_t n, uint64_t base, const CodecParams& params,
                 unsigned threads, GroupCode* group) {
  const auto key_of = [x](uint64_t j) { return MagnitudeKey(x[j]); };
  const bool radix = n >= kRadixMinElements;
  // One pass gives the non-zero count and rejects NaN/inf (their keys sit above every finite).
  Histogram histogram;
  uint64_t nnz = 0;
  if (radix) {
    histogram = BuildHistogram(key_of, n, threads);
    nnz = n - histogram.zeros;
    if (histogram.non_finite) throw StatusError(SLICER_ERR_NONFINITE_INPUT, "NaN or infinity");
  } else {
    uint32_t largest = 0;
    for (uint64_t j = 0; j < n; ++j) {
      const uint32_t key = key_of(j);
      nnz += key != 0;
      largest = std::max(largest, key);
    }
    if (largest >= kInfinityKey) throw StatusError(SLICER_ERR_NONFINITE_INPUT, "NaN or infinity");
  }
  group->k = std::min(KeepLimit(n, params.sparsity_ppb), nnz);
  group->n_pos = 0;
  group->kept.clear();
  if (group->k > 0) {
    const uint64_t k = group->k;
    const uint64_t seed = params.seed;
    const auto identity = [base](uint64_t j) { return base + j; };
    if (params.asym_ppb == 0 && radix) {
      // With lambda = 0 the kept set is the first k non-zero elements in P order. One pass
      // collects everything from tau's histogram bucket up (k plus a bucket's worth); the
      // exact tau and its ties are then resolved on that short list.
      uint64_t above = 0;
      const unsigned chosen = FindBucket(histogram, k - 1, &above);
      Cut coarse;
      coarse.mu = chosen << 16;
      coarse.all_ties = true;
      CollectTop(x, n, base, coarse, seed, threads, above + histogram.bins[chosen], group);
      std::vector<KeptElement>& candidates = group->kept;
      std::vector<uint32_t> bucket;
      bucket.reserve(histogram.bins[chosen]);
      for (const KeptElement& e : candidates) {
        const uint32_t key = MagnitudeKey(e.value);
        if ((key >> 16) == chosen) bucket.push_back(key);
      }
      const RankInfo info = RankInBucket(&bucket, k - 1 - above, above);
      const KeptElement* c = candidates.data();
      const Cut cut = CutFromRank(
          info, k, [c](uint64_t t) { return MagnitudeKey(c[t].value); }, candidates.size(), seed,
          [c, base](uint64_t t) { return base + c[t].position; });
      size_t kept = 0;
      for (size_t t = 0; t < candidates.size(); ++t) {
        const uint32_t key = MagnitudeKey(candidates[t].value);
        if (key > cut.mu || InCut(cut, key, seed, base + candidates[t].position)) {
          candidates[kept++] = candidates[t];
        }
      }
      candidates.resize(kept);
    } else if (params.asym_ppb == 0) {
      const RankInfo tau_info = KeyAtRank(key_of, n, k - 1, threads);
      const Cut cut = CutFromRank(tau_info, k, key_of, n, seed, identity);
      CollectTop(x, n, base, cut, seed, threads, k, group);
    } else {
      const RankInfo tau_info = radix ? RankFromHistogram(histogram, key_of, n, k - 1, threads)
                                      : KeyAtRank(key_of, n, k - 1, threads);
      const double tau = static_cast<double>(BitsToFloat(tau_info.key));
      const double f_plus = static_cast<double>(kPpb + params.asym_ppb) / static_cast<double>(kPpb);
      const double f_minus =
          static_cast<double>(kPpb - params.asym_ppb) / static_cast<double>(kPpb);
      const double t_plus = tau * f_plus;
      const double t_minus = tau * f_minus;
      std::vector<uint8_t> strict(n);
      std::vector<uint32_t> masked(n);
      uint64_t strict_count = 0;
      for (uint64_t j = 0; j < n; ++j) {
        const double v = static_cast<double>(x[j]);
        strict[j] = (v > t_plus) || (-v > t_minus);
        strict_count += strict[j];
        masked[j] = strict[j] ? key_of(j) : 0;
      }
      const uint32_t* m = masked.data();
      const auto masked_of = [m](uint64_t j) { return m[j]; };
      if (strict_count >= k) {
        // Trim: the first k elements of S in P order.
        const Cut cut = CutFirst(masked_of, n, k, seed, threads, identity);
        CollectKept(x, n, threads,
                    [&](uint64_t j) { return InCut(cut, m[j], seed, base + j); }, group);
      } else {
        // Fill: S plus the first k - |S| non-zero elements outside S in P order.
        for (uint64_t j = 0; j < n; ++j) masked[j] = strict[j] ? 0 : key_of(j);
        const Cut cut = CutFirst(masked_of, n, k - strict_count, seed, threads, identity);
        CollectKept(
            x, n, threads,
            [&](uint64_t j) { return strict[j] || InCut(cut, m[j], seed, base + j); }, group);
      }
    }
    if (group->kept.size() != k) throw StatusError(SLICER_ERR_INTERNAL, "kept count mismatch");
    for (const KeptElement& e : group->kept) group->n_pos += e.value > 0.0f;
    LabelBlocks(base, params, threads, group);
  }
  CountAndCheckBlocks(params, group);
}

void SelectGroupBySort(const float* x, uint64_t n, uint64_t base, const CodecParams& params,
                       GroupCode* group) {
  // P order: |x| descending, draw ascending, global index ascending (§4.2).
  struct Entry {
    double magnitude;
    uint64_t draw;
    uint64_t index;  // group-relative
  };
  std::vector<Entry> order(n);
  uint64_t nnz = 0;
  for (uint64_t j = 0; j < n; ++j) {
    if (!std::isfinite(x[j])) throw StatusError(SLICER_ERR_NONFINITE_INPUT, "NaN or infinity");
    order[j] = Entry{std::fabs(static_cast<double>(x[j])), Draw(params.seed, base + j), j};
    nnz += x[j] != 0.0f;
  }
  std::sort(order.begin(), order.end(), [](const Entry& a, const Entry& b) {
    if (a.magnitude != b.magnitude) return a.magnitude > b.magnitude;
    if (a.draw != b.draw) return a.draw < b.draw;
    return a.index < b.index;
  });
  const uint64_t k = std::min(KeepLimit(n, params.sparsity_ppb), nnz);
  std::vector<uint64_t> kept_in_order;  // K in P order
  if (k > 0) {
    const double tau = order[k - 1].magnitude;
    std::vector<bool> strict(n, false);
    if (params.asym_ppb == 0) {
      for (uint64_t j = 0; j < n; ++j) strict[j] = std::fabs(static_cast<double>(x[j])) > tau;
    } else {
      const double t_plus = tau * (static_cast<double>(kPpb + params.asym_ppb) / 1e9);
      const double t_minus = tau * (static_cast<double>(kPpb - params.asym_ppb) / 1e9);
      for (uint64_t j = 0; j < n; ++j) {
        const double v = static_cast<double>(x[j]);
        strict[j] = v > t_plus || -v > t_minus;
      }
    }
    for (const Entry& e : order) {
      if (strict[e.index] && kept_in_order.size() < k) kept_in_order.push_back(e.index);
    }
    for (const Entry& e : order) {
      if (kept_in_order.size() >= k) break;
      if (!strict[e.index] && x[e.index] != 0.0f) kept_in_order.push_back(e.index);
    }
    // Fill elements were appended after S; restore P order over all of K.
    std::vector<uint64_t> rank_of(n, 0);
    for (uint64_t r = 0; r < n; ++r) rank_of[order[r].index] = r;
    std::sort(kept_in_order.begin(), kept_in_order.end(),
              [&](uint64_t a, uint64_t b) { return rank_of[a] < rank_of[b]; });
  }
  std::vector<uint8_t> labels(n, 0xFF);
  uint64_t n_pos = 0;
  for (uint64_t j : kept_in_order) n_pos += x[j] > 0.0f;
  const uint64_t n_neg = k - n_pos;
  uint64_t rank_pos = 0;
  uint64_t rank_neg = 0;
  for (uint64_t j : kept_in_order) {
    const bool positive = x[j] > 0.0f;
    const uint64_t rank = positive ? rank_pos++ : rank_neg++;
    const uint64_t count = positive ? n_pos : n_neg;
    const unsigned blocks = positive ? params.blocks_pos : params.blocks_neg;
    unsigned m = 0;
    while (m + 1 < blocks &&
           static_cast<uint64_t>(static_cast<unsigned __int128>(m + 1) * count / blocks) <= rank) {
      ++m;
    }
    labels[j] = static_cast<uint8_t>(positive ? m : params.blocks_pos + m);
  }
  group->k = k;
  group->n_pos = n_pos;
  group->kept.clear();
  for (uint64_t j = 0; j < n; ++j) {
    if (labels[j] != 0xFF) group->kept.push_back(KeptElement{j, x[j], labels[j], 0});
  }
  CountAndCheckBlocks(params, group);
}

}  // namespace slicer::internal
