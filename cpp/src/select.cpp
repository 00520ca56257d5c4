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

constexpr uint64_t kRadixMinElements = uint64_t{1} << 16;
constexpr uint64_t kMinElementsPerThread = uint64_t{1} << 16;
constexpr unsigned kBuckets = 1u << 15;  // keys < 2^31: the top 15 bits

struct RankInfo {
  uint32_t key;      // the key at the requested rank (descending, 0-based)
  uint64_t greater;  // how many keys are strictly greater
  uint64_t equal;    // how many keys equal it
};

RankInfo KeyAtRank(const uint32_t* keys, uint64_t n, uint64_t rank, unsigned threads) {
  std::vector<uint32_t> bucket;
  uint64_t above = 0;
  if (n < kRadixMinElements) {
    bucket.assign(keys, keys + n);
  } else {
    const unsigned parts = PartCount(n, threads, kMinElementsPerThread);
    std::vector<std::vector<uint64_t>> histograms(parts, std::vector<uint64_t>(kBuckets, 0));
    RunParts(n, parts, [&](unsigned part, uint64_t begin, uint64_t end) {
      uint64_t* histogram = histograms[part].data();
      for (uint64_t j = begin; j < end; ++j) ++histogram[keys[j] >> 16];
    });
    unsigned chosen = 0;
    for (unsigned b = kBuckets; b-- > 0;) {
      uint64_t count = 0;
      for (unsigned part = 0; part < parts; ++part) count += histograms[part][b];
      if (above + count > rank) {
        chosen = b;
        break;
      }
      above += count;
    }
    std::vector<std::vector<uint32_t>> gathered(parts);
    RunParts(n, parts, [&](unsigned part, uint64_t begin, uint64_t end) {
      std::vector<uint32_t>& out = gathered[part];
      for (uint64_t j = begin; j < end; ++j) {
        if ((keys[j] >> 16) == chosen) out.push_back(keys[j]);
      }
    });
    for (const std::vector<uint32_t>& part : gathered) {
      bucket.insert(bucket.end(), part.begin(), part.end());
    }
  }
  const uint64_t local = rank - above;
  if (local >= bucket.size()) throw StatusError(SLICER_ERR_INTERNAL, "rank out of range");
  std::nth_element(bucket.begin(), bucket.begin() + static_cast<ptrdiff_t>(local), bucket.end(),
                   std::greater<uint32_t>());
  RankInfo info{bucket[local], above, 0};
  for (uint32_t key : bucket) {
    info.greater += key > info.key;
    info.equal += key == info.key;
  }
  return info;
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

// `global_of(j)` gives element j's global index.
template <class GlobalOf>
Cut CutFirst(const uint32_t* keys, uint64_t n, uint64_t count, uint64_t seed, unsigned threads,
             GlobalOf global_of) {
  Cut cut;
  if (count == 0) return cut;
  const RankInfo info = KeyAtRank(keys, n, count - 1, threads);
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
    if (keys[j] == cut.mu) {
      const uint64_t global = global_of(j);
      ties.emplace_back(Draw(seed, global), global);
    }
  }
  std::nth_element(ties.begin(), ties.begin() + static_cast<ptrdiff_t>(need - 1), ties.end());
  cut.draw_limit = ties[need - 1].first;
  cut.index_limit = ties[need - 1].second;
  return cut;
}

uint64_t CountNonZero(const uint32_t* keys, uint64_t n, unsigned threads) {
  const unsigned parts = PartCount(n, threads, kMinElementsPerThread);
  std::vector<uint64_t> counts(parts, 0);
  RunParts(n, parts, [&](unsigned part, uint64_t begin, uint64_t end) {
    uint64_t count = 0;
    for (uint64_t j = begin; j < end; ++j) count += keys[j] != 0;
    counts[part] = count;
  });
  uint64_t total = 0;
  for (uint64_t c : counts) total += c;
  return total;
}

// Collects the elements for which kept(j) holds, in position order.
template <class Kept>
void CollectKept(const float* x, uint64_t n, unsigned threads, Kept kept, GroupCode* group) {
  const unsigned parts = PartCount(n, threads, kMinElementsPerThread);
  std::vector<std::vector<KeptElement>> lists(parts);
  RunParts(n, parts, [&](unsigned part, uint64_t begin, uint64_t end) {
    std::vector<KeptElement>& out = lists[part];
    for (uint64_t j = begin; j < end; ++j) {
      if (kept(j)) out.push_back(KeptElement{j, x[j], 0});
    }
  });
  group->kept.clear();
  group->kept.reserve(group->k);
  for (const std::vector<KeptElement>& list : lists) {
    group->kept.insert(group->kept.end(), list.begin(), list.end());
  }
}

// Labels the kept elements of one sign by their P-order rank (§5.1).
void LabelSign(bool positive, uint64_t sign_count, unsigned blocks, unsigned first_label,
               uint64_t base, const CodecParams& params, unsigned threads, GroupCode* group) {
  std::vector<KeptElement>& kept = group->kept;
  const uint64_t k = kept.size();
  std::vector<uint32_t> keys(k);
  for (uint64_t t = 0; t < k; ++t) {
    const bool is_positive = kept[t].value > 0.0f;
    keys[t] = is_positive == positive ? MagnitudeKey(kept[t].value) : 0;
  }
  // cuts[b - 1] = the first floor(b * n / M) elements of this sign, b = 1 ... M - 1.
  std::vector<Cut> cuts;
  for (unsigned b = 1; b < blocks; ++b) {
    const uint64_t rank_end =
        static_cast<uint64_t>(static_cast<unsigned __int128>(b) * sign_count / blocks);
    cuts.push_back(CutFirst(keys.data(), k, rank_end, params.seed, threads,
                            [&](uint64_t t) { return base + kept[t].position; }));
  }
  for (uint64_t t = 0; t < k; ++t) {
    if (keys[t] == 0) continue;
    unsigned block = 0;
    for (const Cut& cut : cuts) block += !InCut(cut, keys[t], params.seed, base + kept[t].position);
    kept[t].label = static_cast<uint8_t>(first_label + block);
  }
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

void SelectGroup(const float* x, const uint32_t* keys, uint64_t n, uint64_t base,
                 const CodecParams& params, unsigned threads, GroupCode* group) {
  const uint64_t nnz = CountNonZero(keys, n, threads);
  group->k = std::min(KeepLimit(n, params.sparsity_ppb), nnz);
  group->n_pos = 0;
  group->kept.clear();
  if (group->k > 0) {
    const uint64_t k = group->k;
    const uint64_t seed = params.seed;
    const auto identity = [base](uint64_t j) { return base + j; };
    if (params.asym_ppb == 0) {
      // With lambda = 0 the kept set is the first k non-zero elements in P order.
      const Cut cut = CutFirst(keys, n, k, seed, threads, identity);
      CollectKept(x, n, threads,
                  [&](uint64_t j) { return InCut(cut, keys[j], seed, base + j); }, group);
    } else {
      const RankInfo tau_info = KeyAtRank(keys, n, k - 1, threads);
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
        masked[j] = strict[j] ? keys[j] : 0;
      }
      if (strict_count >= k) {
        // Trim: the first k elements of S in P order.
        const Cut cut = CutFirst(masked.data(), n, k, seed, threads, identity);
        CollectKept(x, n, threads,
                    [&](uint64_t j) { return InCut(cut, masked[j], seed, base + j); }, group);
      } else {
        // Fill: S plus the first k - |S| non-zero elements outside S in P order.
        for (uint64_t j = 0; j < n; ++j) masked[j] = strict[j] ? 0 : keys[j];
        const Cut cut = CutFirst(masked.data(), n, k - strict_count, seed, threads, identity);
        CollectKept(
            x, n, threads,
            [&](uint64_t j) { return strict[j] || InCut(cut, masked[j], seed, base + j); },
            group);
      }
    }
    if (group->kept.size() != k) throw StatusError(SLICER_ERR_INTERNAL, "kept count mismatch");
    for (const KeptElement& e : group->kept) group->n_pos += e.value > 0.0f;
    LabelSign(true, group->n_pos, params.blocks_pos, 0, base, params, threads, group);
    LabelSign(false, k - group->n_pos, params.blocks_neg, params.blocks_pos, base, params, threads,
              group);
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
    if (labels[j] != 0xFF) group->kept.push_back(KeptElement{j, x[j], labels[j]});
  }
  CountAndCheckBlocks(params, group);
}

}  // namespace slicer::internal
