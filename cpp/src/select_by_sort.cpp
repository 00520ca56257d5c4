// The literal selection of §4-§5.1: sort the whole group in P order. Slow and simple; the
// tests hold the radix path (select.cpp) to it byte for byte.
#include <algorithm>
#include <cmath>
#include <vector>

#include "codec.hpp"
#include "draw.hpp"

namespace slicer::internal {

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
  CountBlocks(params, group);
}

}  // namespace slicer::internal
