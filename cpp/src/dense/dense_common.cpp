// Count classes, normalisation and layouts of format 2 (docs/format.md §12.1, §13.1, §13.2).
#include <algorithm>
#include <vector>

#include "dense/dense.hpp"

namespace slicer::dense {

unsigned CountClass(uint64_t n) {
  // Largest v with cnt(v) <= n, then the nearer of v and v + 1 (ties to the lower).
  unsigned lo = 1, hi = kClassMax;
  while (lo < hi) {
    const unsigned mid = (lo + hi + 1) / 2;
    if (ClassCountInt(mid) <= n) {
      lo = mid;
    } else {
      hi = mid - 1;
    }
  }
  unsigned v = lo;
  if (v < kClassMax && ClassCountInt(v + 1) - n < n - ClassCountInt(v)) ++v;
  return v;
}

void Normalize(const std::vector<unsigned>& classes, std::vector<uint32_t>* freq_out,
               std::vector<uint32_t>* cum_out) {
  const size_t n = classes.size();
  std::vector<uint64_t> c(n);
  unsigned __int128 total = 0;
  for (size_t s = 0; s < n; ++s) {
    c[s] = ClassCountInt(classes[s]);
    total += c[s];
  }
  std::vector<int64_t> f(n, 0);
  int64_t sum = 0;
  for (size_t s = 0; s < n; ++s) {
    if (c[s] == 0) continue;
    const int64_t v =
        static_cast<int64_t>((static_cast<unsigned __int128>(c[s]) * kProbScale) / total);
    f[s] = std::max<int64_t>(1, v);
    sum += f[s];
  }
  int64_t diff = static_cast<int64_t>(kProbScale) - sum;
  auto argmax = [&]() {
    size_t best = 0;
    for (size_t s = 1; s < n; ++s)
      if (f[s] > f[best]) best = s;
    return best;
  };
  if (n > 0 && diff > 0) f[argmax()] += diff;
  while (diff < 0) {
    const size_t k = argmax();
    const int64_t d = std::min({-diff, f[k] - 1, std::max<int64_t>(1, f[k] >> 2)});
    f[k] -= d;
    diff += d;
  }
  freq_out->assign(n, 0);
  cum_out->assign(n + 1, 0);
  for (size_t s = 0; s < n; ++s) {
    (*freq_out)[s] = static_cast<uint32_t>(f[s]);
    (*cum_out)[s + 1] = (*cum_out)[s] + static_cast<uint32_t>(f[s]);
  }
}

bool MakeLayout(const int64_t* shape, uint32_t ndim, uint64_t n, unsigned code, Layout* layout) {
  *layout = Layout{};
  if (code == SLICER_DENSE_LAYOUT_TENSOR) return true;
  if (code == SLICER_DENSE_LAYOUT_ROWS) {
    if (ndim < 1) return false;
    const uint64_t r = static_cast<uint64_t>(shape[ndim - 1]);
    layout->groups = n == 0 ? 0 : n / r;
    layout->run = n == 0 ? 1 : r;
    layout->modulo = n == 0 ? 1 : layout->groups;
    return true;
  }
  if (code == SLICER_DENSE_LAYOUT_CHANNELS) {
    if (ndim < 2) return false;
    uint64_t inner = 1;
    for (uint32_t d = 2; d < ndim; ++d) inner *= static_cast<uint64_t>(shape[d]);
    layout->groups = static_cast<uint64_t>(shape[1]);
    layout->run = inner == 0 ? 1 : inner;
    layout->modulo = layout->groups == 0 ? 1 : layout->groups;
    return true;
  }
  return false;
}

bool MakeClassGeometry(const int64_t* shape, uint32_t ndim, unsigned axis, ClassGeometry* geo) {
  *geo = ClassGeometry{};
  if (axis == 0 && ndim >= 1) {
    geo->length = static_cast<uint64_t>(shape[ndim - 1]);
    return true;
  }
  if (axis == 1 && ndim >= 2) {
    geo->length = static_cast<uint64_t>(shape[1]);
    uint64_t inner = 1;
    for (uint32_t d = 2; d < ndim; ++d) inner *= static_cast<uint64_t>(shape[d]);
    geo->inner = inner == 0 ? 1 : inner;
    return true;
  }
  return false;
}

uint32_t ClassesWithCoded(const Layout& layout, const uint8_t* kinds, uint64_t n,
                          const ClassGeometry& geo, const uint8_t* map) {
  const uint64_t length = geo.length;
  if (n == 0 || length == 0) return 0;
  std::vector<uint8_t> seen(length, 0);
  uint64_t covered = 0;
  auto mark = [&](uint64_t first, uint64_t count) {  // count consecutive positions, wrapping
    if (count >= length) {
      first = 0;
      count = length;
    }
    for (uint64_t q = 0; q < count; ++q) {
      uint64_t a = first + q;
      if (a >= length) a -= length;
      covered += seen[a] == 0;
      seen[a] = 1;
    }
  };
  for (uint64_t i = 0; i < n && covered < length;) {
    const uint64_t stop = std::min(n, i + layout.RunLeft(i, n));
    if (kinds == nullptr || GroupIsDense(kinds[layout.GroupOf(i)])) {
      const uint64_t b0 = i / geo.inner, b1 = (stop - 1) / geo.inner;
      mark(b0 % length, b1 - b0 + 1);
    }
    i = stop;
  }
  uint32_t has = 0;
  for (uint64_t a = 0; a < length; ++a)
    if (seen[a]) has |= uint32_t{1} << map[a];
  return has;
}

}  // namespace slicer::dense
