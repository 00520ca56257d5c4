// ATKF (§4) and magnitude splitting (§5.1) on top of rank_select.hpp.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <cpuid.h>
#include <immintrin.h>
#define SLICER_SWEEP_AVX2 1
#endif

#include "codec.hpp"
#include "context.hpp"
#include "draw.hpp"
#include "encoder.hpp"
#include "float_bits.hpp"
#include "parallel.hpp"
#include "rank_select.hpp"

namespace slicer::internal {
namespace {

constexpr uint64_t kSortLabelMax = 96;  // LabelSign sorts sets up to this size

// Appends kept elements field by field straight into the list's storage (grown without
// zero-filling, trimmed by Drain): pushing a whole struct stalls on store-to-load forwarding
// (a 16-byte reload of freshly written narrower fields) and reloads the vector's end after
// every store; a stack buffer copied over would write every element twice.
class KeptAppender {
 public:
  KeptAppender(const float* x, KeptList* out) : x_(x), out_(out) {
    // The callers reserve what they expect: grow only a list that is full (per-row groups
    // keep small lists, and every group of a stream holds its own).
    const size_t size = out->size();
    out->resize(out->capacity() > size ? out->capacity() : size + kGrowth);
    at_ = out->data() + size;
    end_ = out->data() + out->size();
  }
  ~KeptAppender() { Drain(); }
  KeptAppender(const KeptAppender&) = delete;
  KeptAppender& operator=(const KeptAppender&) = delete;

  // Values are read from x[j - offset] from now on (a widened tile of 16-bit input).
  void SetSource(const float* x, uint64_t offset) {
    x_ = x;
    offset_ = offset;
  }

  void Add(uint64_t j) {
    if (at_ == end_) Grow();
    at_->position = j;
    at_->value = x_[j - offset_];
    at_->label = 0;
    at_->code = 0;
    ++at_;
  }

  // Trims the list to the elements added; further Adds grow it again.
  void Drain() {
    const size_t size = static_cast<size_t>(at_ - out_->data());
    out_->resize(size);
    at_ = out_->data() + size;
    end_ = at_;
  }

 private:
  static constexpr size_t kGrowth = 512;

  void Grow() {
    const size_t size = static_cast<size_t>(at_ - out_->data());
    out_->resize(std::max<size_t>(2 * size, size + kGrowth));
    at_ = out_->data() + size;
    end_ = out_->data() + out_->size();
  }

  const float* x_;
  uint64_t offset_ = 0;
  KeptList* out_;
  KeptElement* at_;
  KeptElement* end_;
};

// The workspace's per-part kept lists, `parts` of them, empty (their capacity is kept).
std::vector<KeptList>& PartLists(unsigned parts, Workspace* workspace) {
  std::vector<KeptList>& lists = workspace->lists;
  if (lists.size() < parts) lists.resize(parts);
  for (unsigned part = 0; part < parts; ++part) lists[part].clear();
  return lists;
}

// Appends the first `parts` per-part lists to group->kept in part order, each part copying its
// own list into place (a 16M-element sweep hands over about 30 MB).
void AppendParts(const std::vector<KeptList>& lists, unsigned parts, GroupCode* group) {
  if (parts <= 1) return;
  std::vector<size_t> offsets(parts + 1, group->kept.size());
  for (unsigned part = 0; part < parts; ++part) {
    offsets[part + 1] = offsets[part] + lists[part].size();
  }
  group->kept.resize(offsets[parts]);
  KeptElement* out = group->kept.data();
  RunParts(parts, parts, [&](unsigned, uint64_t begin, uint64_t end) {
    for (uint64_t part = begin; part < end; ++part) {
      std::copy(lists[part].begin(), lists[part].end(), out + offsets[part]);
    }
  });
}

// Collects the elements for which kept(j) holds, in position order.
template <class Kept>
void CollectKept(const float* x, uint64_t n, unsigned threads, Kept kept, Workspace* workspace,
                 GroupCode* group) {
  const unsigned parts = PartCount(n, threads, kMinElementsPerThread);
  std::vector<KeptList>& lists = PartLists(parts, workspace);
  RunParts(n, parts, [&](unsigned part, uint64_t begin, uint64_t end) {
    // Branch-free compaction through a small buffer: a kept/dropped branch would mispredict.
    constexpr uint64_t kBuffer = 1024;
    KeptElement buffer[kBuffer + 1];
    KeptList& out = lists[part];
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
  if (parts == 1) {
    group->kept.insert(group->kept.end(), lists[0].begin(), lists[0].end());
  }
  AppendParts(lists, parts, group);
}

// CollectKept for lambda = 0: the candidates are the keys >= cut.mu, found 64 at a time with a
// loop the compiler vectorizes; only ties at mu may need their draw.
void CollectTop(const float* x, uint64_t n, uint64_t base, const Cut& cut, uint64_t seed,
                unsigned threads, uint64_t expected, Workspace* workspace, GroupCode* group) {
  const unsigned parts = PartCount(n, threads, kMinElementsPerThread);
  // One part writes straight into the group's list; several parts fill their own lists.
  std::vector<KeptList>& lists = PartLists(parts > 1 ? parts : 0, workspace);
  group->kept.clear();
  group->kept.reserve(expected);
  for (unsigned part = 0; parts > 1 && part < parts; ++part) {
    lists[part].reserve(expected / parts + expected / 8 + 64);
  }
  const int32_t mu = static_cast<int32_t>(cut.mu);  // finite keys are below 2^31
  RunParts(n, parts, [&](unsigned part, uint64_t begin, uint64_t end) {
    KeptAppender out(x, parts > 1 ? &lists[part] : &group->kept);
    const uint32_t* bits = reinterpret_cast<const uint32_t*>(x);
    auto consider = [&](uint64_t j) {
      const uint32_t key = bits[j] & 0x7FFFFFFFu;
      if (key > cut.mu || InCut(cut, key, seed, base + j)) out.Add(j);
    };
    uint64_t j = begin;
#if defined(__SSE2__)
    // 64 keys at a time into a bit mask; candidates are visited by their set bits.
    const __m128i magnitude = _mm_set1_epi32(0x7FFFFFFF);
    const __m128i below_mu = _mm_set1_epi32(mu - 1);  // mu >= 1: a cut ends on a non-zero key
    for (; j + 64 <= end; j += 64) {
      uint64_t mask = 0;
      for (unsigned i = 0; i < 16; ++i) {
        const __m128i key = _mm_and_si128(
            _mm_loadu_si128(reinterpret_cast<const __m128i*>(bits + j + 4 * i)), magnitude);
        const int selected = _mm_movemask_ps(_mm_castsi128_ps(_mm_cmpgt_epi32(key, below_mu)));
        mask |= static_cast<uint64_t>(selected) << (4 * i);
      }
      while (mask != 0) {
        consider(j + static_cast<unsigned>(__builtin_ctzll(mask)));
        mask &= mask - 1;
      }
    }
#else
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
#endif
    for (; j < end; ++j) {
      if ((bits[j] & 0x7FFFFFFFu) >= cut.mu) consider(j);
    }
  });
  AppendParts(lists, parts, group);
}

// Groups at least this large try the one-pass selection of SelectTopFromSample.
constexpr uint64_t kSampleMinElements = uint64_t{1} << 16;
constexpr uint64_t kSampleRuns = 32;
constexpr uint64_t kSampleRunLength = 256;  // contiguous runs: one cache line holds 16 keys

struct SweepCounts {
  uint64_t zeros = 0;
  uint64_t non_finite = 0;
  uint64_t candidates = 0;  // keys at or above the floor
  unsigned parts = 1;       // > 1: the candidates are in the workspace's first `parts` lists
};

// One pass over the group: appends every element whose key is at least `floor` (>= 1) to
// group->kept in position order and counts the zero and non-finite keys of the whole group.
// 16-bit input read without a widened copy of the whole group (encoder.hpp widens tiles).
struct Input16 {
  const uint8_t* bytes;  // the group's first element
  int dtype;             // SLICER_FLOAT16 or SLICER_BFLOAT16
};

void WidenTile(const Input16& input, uint64_t begin, uint64_t end, float* tile) {
  const uint8_t* first = input.bytes + 2 * begin;
  if (input.dtype == SLICER_FLOAT16) {
    WidenHalf(first, 0, end - begin, tile);
  } else {
    WidenBFloat16(first, 0, end - begin, tile);
  }
}

constexpr uint64_t kTile = 2048;  // 16-bit input is swept through a widened tile this long

#if defined(SLICER_SWEEP_AVX2)
// CPUID leaf 7: AVX2 (EBX bit 5); leaf 1: OSXSAVE (ECX bit 27), and the OS must save the SSE
// and AVX register state (XCR0 bits 1 and 2). Read directly, as for F16C (encoder.cpp): the
// library is built for baseline x86-64 and picks the AVX2 sweep at run time.
bool DetectAvx2() {
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  if (!__get_cpuid(1, &eax, &ebx, &ecx, &edx) || (ecx & (1u << 27)) == 0) return false;
  unsigned xcr0_lo = 0, xcr0_hi = 0;
  __asm__ volatile("xgetbv" : "=a"(xcr0_lo), "=d"(xcr0_hi) : "c"(0));
  if ((xcr0_lo & 0x6u) != 0x6u) return false;
  if (!__get_cpuid_count(7, 0, &eax, &ebx, &ecx, &edx)) return false;
  return (ebx & (1u << 5)) != 0;
}

bool HasAvx2() {
  static const bool has = DetectAvx2();
  return has && !BaselineSimdForTesting();
}

// The 64-keys-at-a-time sweep of SweepCandidates with eight keys per instruction: the same
// mask bits, candidates and counts as the SSE2 loop. bits[j - offset] is element j's; returns
// the first element not swept. Lane counters stay below 2^29: n < 2^32.
__attribute__((target("avx2"))) uint64_t SweepAvx2(const uint32_t* bits, uint64_t offset,
                                                   uint64_t j, uint64_t end, int32_t floor_key,
                                                   KeptAppender* out, uint64_t* zeros,
                                                   uint64_t* non_finite) {
  const __m256i magnitude = _mm256_set1_epi32(0x7FFFFFFF);
  const __m256i below_floor = _mm256_set1_epi32(floor_key - 1);
  const __m256i largest_finite = _mm256_set1_epi32(static_cast<int32_t>(kInfinityKey) - 1);
  const __m256i zero = _mm256_setzero_si256();
  __m256i zero_lanes = _mm256_setzero_si256();
  __m256i non_finite_lanes = _mm256_setzero_si256();
  for (; j + 64 <= end; j += 64) {
    uint64_t mask = 0;
    for (unsigned i = 0; i < 8; ++i) {
      const __m256i key = _mm256_and_si256(
          _mm256_loadu_si256(reinterpret_cast<const __m256i*>(bits + (j - offset) + 8 * i)),
          magnitude);
      const unsigned selected = static_cast<unsigned>(
          _mm256_movemask_ps(_mm256_castsi256_ps(_mm256_cmpgt_epi32(key, below_floor))));
      mask |= static_cast<uint64_t>(selected) << (8 * i);
      zero_lanes = _mm256_sub_epi32(zero_lanes, _mm256_cmpeq_epi32(key, zero));
      non_finite_lanes =
          _mm256_sub_epi32(non_finite_lanes, _mm256_cmpgt_epi32(key, largest_finite));
    }
    while (mask != 0) {
      out->Add(j + static_cast<unsigned>(__builtin_ctzll(mask)));
      mask &= mask - 1;
    }
  }
  uint32_t lanes[8];
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(lanes), zero_lanes);
  for (uint32_t lane : lanes) *zeros += lane;
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(lanes), non_finite_lanes);
  for (uint32_t lane : lanes) *non_finite += lane;
  return j;
}
#endif

SweepCounts SweepCandidates(const float* x, const Input16* input16, uint64_t n, uint32_t floor,
                            unsigned threads, uint64_t expected, Workspace* workspace,
                            GroupCode* group) {
  const unsigned parts = PartCount(n, threads, kMinElementsPerThread);
  std::vector<KeptList>& lists = PartLists(parts > 1 ? parts : 0, workspace);
  std::vector<SweepCounts> counts(parts);
  group->kept.clear();
  group->kept.reserve(expected);
  for (unsigned part = 0; parts > 1 && part < parts; ++part) {
    lists[part].reserve(expected / parts + expected / 8 + 64);
  }
  const int32_t floor_key = static_cast<int32_t>(floor);
  const int32_t infinity_key = static_cast<int32_t>(kInfinityKey);
  RunParts(n, parts, [&](unsigned part, uint64_t part_begin, uint64_t part_end) {
    KeptAppender out(x, parts > 1 ? &lists[part] : &group->kept);
    uint64_t zeros = 0;
    uint64_t non_finite = 0;
    float tile[kTile];
    const uint64_t step = input16 != nullptr ? kTile : part_end - part_begin;
    for (uint64_t begin = part_begin; begin < part_end; begin += step) {
      const uint64_t end = std::min(part_end, begin + step);
      const uint32_t* bits = reinterpret_cast<const uint32_t*>(x);
      uint64_t offset = 0;  // bits[j - offset] is element j's
      if (input16 != nullptr) {
        WidenTile(*input16, begin, end, tile);
        out.SetSource(tile, begin);
        bits = reinterpret_cast<const uint32_t*>(tile);
        offset = begin;
      }
      uint64_t j = begin;
#if defined(SLICER_SWEEP_AVX2)
      if (HasAvx2()) j = SweepAvx2(bits, offset, j, end, floor_key, &out, &zeros, &non_finite);
#endif
#if defined(__SSE2__)
      // 64 keys at a time into a bit mask (SSE2 is part of every x86-64); the few candidates
      // are then visited by their set bits. Lane counters stay below 2^30: n < 2^32 here.
      const __m128i magnitude = _mm_set1_epi32(0x7FFFFFFF);
      const __m128i below_floor = _mm_set1_epi32(floor_key - 1);
      const __m128i largest_finite = _mm_set1_epi32(infinity_key - 1);
      const __m128i zero = _mm_setzero_si128();
      __m128i zero_lanes = _mm_setzero_si128();
      __m128i non_finite_lanes = _mm_setzero_si128();
      for (; j + 64 <= end; j += 64) {
        uint64_t mask = 0;
        for (unsigned i = 0; i < 16; ++i) {
          const __m128i key = _mm_and_si128(
              _mm_loadu_si128(reinterpret_cast<const __m128i*>(bits + (j - offset) + 4 * i)),
              magnitude);
          const int selected = _mm_movemask_ps(_mm_castsi128_ps(_mm_cmpgt_epi32(key, below_floor)));
          mask |= static_cast<uint64_t>(selected) << (4 * i);
          zero_lanes = _mm_sub_epi32(zero_lanes, _mm_cmpeq_epi32(key, zero));
          non_finite_lanes = _mm_sub_epi32(non_finite_lanes, _mm_cmpgt_epi32(key, largest_finite));
        }
        while (mask != 0) {
          out.Add(j + static_cast<unsigned>(__builtin_ctzll(mask)));
          mask &= mask - 1;
        }
      }
      uint32_t lanes[4];
      _mm_storeu_si128(reinterpret_cast<__m128i*>(lanes), zero_lanes);
      zeros += uint64_t{lanes[0]} + lanes[1] + lanes[2] + lanes[3];
      _mm_storeu_si128(reinterpret_cast<__m128i*>(lanes), non_finite_lanes);
      non_finite += uint64_t{lanes[0]} + lanes[1] + lanes[2] + lanes[3];
#else
    for (; j + 64 <= end; j += 64) {
      // Flags and counts for 64 keys in a loop the compiler vectorizes; the (few) candidates
      // are then visited by their set flag bytes.
      uint8_t flags[64];
      uint32_t block_zeros = 0;
      uint32_t block_non_finite = 0;
      for (int i = 0; i < 64; ++i) {
        const int32_t key = static_cast<int32_t>(bits[j - offset + i] & 0x7FFFFFFFu);
        flags[i] = key >= floor_key ? 1 : 0;
        block_zeros += key == 0 ? 1 : 0;
        block_non_finite += key >= infinity_key ? 1 : 0;
      }
      zeros += block_zeros;
      non_finite += block_non_finite;
      uint64_t words[8];
      std::memcpy(words, flags, 64);
      for (int w = 0; w < 8; ++w) {
        uint64_t word = words[w];
        while (word != 0) {
          out.Add(j + 8 * w + (static_cast<unsigned>(__builtin_ctzll(word)) >> 3));
          word &= word - 1;
        }
      }
    }
#endif
      for (; j < end; ++j) {
        const uint32_t key = bits[j - offset] & 0x7FFFFFFFu;
        zeros += key == 0;
        non_finite += key >= kInfinityKey;
        if (key >= floor) out.Add(j);
      }
    }
    out.Drain();
    counts[part] = SweepCounts{zeros, non_finite};
  });
  SweepCounts total;
  for (const SweepCounts& part : counts) {
    total.zeros += part.zeros;
    total.non_finite += part.non_finite;
  }
  // Several parts leave their candidates in the workspace's lists (TrimCandidates writes the
  // kept ones straight into the group's list); one part wrote into the group's list.
  total.parts = parts;
  total.candidates = group->kept.size();
  for (unsigned part = 0; parts > 1 && part < parts; ++part) total.candidates += lists[part].size();
  return total;
}

// Keeps the candidates (group->kept) in P order's first k: the k-th largest key among them on a
// copy of their keys, then its ties by draw, then a compaction in place.
void TrimCandidates(uint64_t k, uint64_t base, uint64_t seed, uint32_t floor, Workspace* workspace,
                    GroupCode* group) {
  KeptList& candidates = group->kept;
  KeyBuffer& keys = workspace->keys;
  keys.resize(candidates.size());
  uint32_t largest = 0;
  for (size_t t = 0; t < candidates.size(); ++t) {
    keys[t] = MagnitudeKey(candidates[t].value);
    largest = std::max(largest, keys[t]);
  }
  // Every candidate's key is at least the floor.
  const RankInfo info = RankInRange(&keys, k - 1, floor, largest);
  const KeptElement* c = candidates.data();
  const Cut cut = CutFromRank(
      info, k, [c](uint64_t t) { return MagnitudeKey(c[t].value); }, candidates.size(), seed,
      [c, base](uint64_t t) { return base + c[t].position; });
  // Branch-free compaction (about one candidate in eight is dropped, at random positions);
  // only a key equal to mu may need its draw.
  size_t kept = 0;
  KeptElement* data = candidates.data();
  for (size_t t = 0; t < candidates.size(); ++t) {
    const uint32_t key = MagnitudeKey(data[t].value);
    bool keep = key > cut.mu;
    if (key == cut.mu) keep = InCut(cut, key, seed, base + data[t].position);
    data[kept] = data[t];
    kept += keep ? 1 : 0;
  }
  candidates.resize(kept);
}

// TrimCandidates for candidates left in the workspace's first `parts` lists (in position order,
// list after list) by a sweep in parts. Every step runs in parts: the key copy, the rank's
// histogram and gather, the tie scan, and the hand-over, in which each list writes what it
// keeps at its offset in the group's list (one pass instead of joining the lists and then
// compacting them).
void TrimPartCandidates(uint64_t k, uint64_t base, uint64_t seed, uint32_t floor, unsigned threads,
                        unsigned parts, Workspace* workspace, GroupCode* group) {
  const std::vector<KeptList>& lists = workspace->lists;
  std::vector<uint64_t> first(parts + 1, 0);  // candidate index of each list's first element
  for (unsigned part = 0; part < parts; ++part) first[part + 1] = first[part] + lists[part].size();
  const uint64_t count = first[parts];
  KeyBuffer& keys = workspace->keys;
  keys.resize(count);
  uint32_t* key = keys.data();
  std::vector<uint32_t> part_largest(parts, 0);
  RunParts(parts, parts, [&](unsigned, uint64_t begin, uint64_t end) {
    for (uint64_t part = begin; part < end; ++part) {
      const KeptElement* c = lists[part].data();
      uint32_t* out = key + first[part];
      uint32_t largest = 0;
      for (size_t i = 0; i < lists[part].size(); ++i) {
        out[i] = MagnitudeKey(c[i].value);
        largest = std::max(largest, out[i]);
      }
      part_largest[part] = largest;
    }
  });
  // Every candidate's key is at least the floor.
  const uint32_t largest = *std::max_element(part_largest.begin(), part_largest.end());
  const RankInfo info =
      RankInRangeParallel(key, count, k - 1, floor, largest, threads, &workspace->sign_keys[0]);
  const auto position_of = [&](uint64_t t) {  // only for ties at mu: a short search
    const unsigned part =
        static_cast<unsigned>(std::upper_bound(first.begin(), first.end(), t) - first.begin()) - 1;
    return lists[part][t - first[part]].position;
  };
  const Cut cut = CutFromRank(
      info, k, [key](uint64_t t) { return key[t]; }, count, seed,
      [&](uint64_t t) { return base + position_of(t); }, threads);
  const auto keep = [&](const uint32_t* keys_of_list, const KeptElement* c, size_t i) {
    return keys_of_list[i] > cut.mu ||
           (keys_of_list[i] == cut.mu && InCut(cut, keys_of_list[i], seed, base + c[i].position));
  };
  std::vector<uint64_t> offsets(parts + 1, 0);
  RunParts(parts, parts, [&](unsigned, uint64_t begin, uint64_t end) {
    for (uint64_t part = begin; part < end; ++part) {
      const KeptElement* c = lists[part].data();
      const uint32_t* keys_of_list = key + first[part];
      const size_t size = lists[part].size();
      // Keys above mu counted in a loop the compiler vectorizes; keys at mu (few) one by one.
      uint64_t kept = 0;
      uint64_t at_mu = 0;
      for (size_t i = 0; i < size; ++i) {
        kept += keys_of_list[i] > cut.mu ? 1 : 0;
        at_mu += keys_of_list[i] == cut.mu ? 1 : 0;
      }
      for (size_t i = 0; at_mu > 0 && i < size; ++i) {
        if (keys_of_list[i] == cut.mu) {
          kept += keep(keys_of_list, c, i) ? 1 : 0;
          --at_mu;
        }
      }
      offsets[part + 1] = kept;
    }
  });
  for (unsigned part = 0; part < parts; ++part) offsets[part + 1] += offsets[part];
  if (offsets[parts] != k) throw StatusError(SLICER_ERR_INTERNAL, "kept count mismatch");
  KeptList& kept_list = group->kept;
  kept_list.resize(k + parts);  // one spare slot per list past the end, see below
  KeptElement* out = kept_list.data();
  RunParts(parts, parts, [&](unsigned, uint64_t begin, uint64_t end) {
    for (uint64_t part = begin; part < end; ++part) {
      // Branch-free: every candidate is written, only a kept one advances. Once a list has
      // written all it keeps, its next slot belongs to the next list: it writes to its spare.
      const KeptElement* c = lists[part].data();
      const uint32_t* keys_of_list = key + first[part];
      uint64_t at = offsets[part];
      const uint64_t list_end = offsets[part + 1];
      const uint64_t spare = k + part;
      for (size_t i = 0; i < lists[part].size(); ++i) {
        out[at < list_end ? at : spare] = c[i];
        at += keep(keys_of_list, c, i) ? 1 : 0;
      }
    }
  });
  kept_list.resize(k);
}

// lambda = 0 in one pass over x: a sample of the keys estimates a floor a little below tau,
// one sweep collects every key at or above it (and counts zeros and non-finite values), and
// the exact selection runs on that short list. The floor is only an estimate: when fewer
// than k keys clear it, this returns false and the caller runs the exact two-pass selection,
// so the result never depends on the sample.
bool SelectTopFromSample(const float* x, const Input16* input16, uint64_t n, uint64_t base,
                         const CodecParams& params, unsigned threads, Workspace* workspace,
                         GroupCode* group) {
  const uint64_t k_limit = KeepLimit(n, params.sparsity_ppb);
  if (n < kSampleMinElements || n >= (uint64_t{1} << 32) || k_limit == 0) return false;
  constexpr uint64_t kSample = kSampleRuns * kSampleRunLength;
  KeyBuffer& sample = workspace->keys;
  sample.resize(kSample);
  for (uint64_t r = 0; r < kSampleRuns; ++r) {
    const uint64_t start = (n - kSampleRunLength) * r / (kSampleRuns - 1);
    float widened[kSampleRunLength];  // 16-bit input: the run widened in one call
    if (input16 != nullptr) WidenTile(*input16, start, start + kSampleRunLength, widened);
    const float* run = input16 != nullptr ? widened : x + start;
    for (uint64_t i = 0; i < kSampleRunLength; ++i) {
      sample[r * kSampleRunLength + i] = MagnitudeKey(run[i]);
    }
  }
  // Descending sample rank of the floor: the expected rank of tau plus four standard
  // deviations of a binomial count, so the sweep rarely comes back short.
  const double expected = static_cast<double>(k_limit) * kSample / static_cast<double>(n);
  const double spread = std::sqrt(expected * (1.0 - expected / kSample));
  const double floor_rank = std::ceil(expected + 4.0 * spread + 16.0);
  if (floor_rank >= static_cast<double>(kSample)) return false;
  const RankInfo floor_info = SmallRankInPlace(&sample, static_cast<uint64_t>(floor_rank));
  const uint32_t floor = std::max<uint32_t>(floor_info.key, 1);
  const uint64_t reserve =
      static_cast<uint64_t>((floor_rank + 1.0) / kSample * static_cast<double>(n) * 1.125) + 1024;
  const SweepCounts counts =
      SweepCandidates(x, input16, n, floor, threads, reserve, workspace, group);
  if (counts.non_finite > 0) throw StatusError(SLICER_ERR_NONFINITE_INPUT, "NaN or infinity");
  const uint64_t k = std::min(k_limit, n - counts.zeros);
  if (counts.candidates < k) return false;
  group->k = k;
  if (k == 0) {
    group->kept.clear();
    return true;
  }
  if (counts.parts > 1) {
    TrimPartCandidates(k, base, params.seed, floor, threads, counts.parts, workspace, group);
  } else {
    TrimCandidates(k, base, params.seed, floor, workspace, group);
  }
  return true;
}

// The keys at several descending ranks (ascending list) of one key array in two passes: a
// histogram of (key - smallest) >> shift over at most kRangeBins bins (keys of one sign's kept
// set span a narrow range, so the bins are small and fine), then one gather of the keys in
// the bins that hold a requested rank, each resolved by nth_element.
constexpr unsigned kRangeBins = 4096;

// Kept elements per part of the labelling passes.
constexpr uint64_t kMinLabelPerThread = uint64_t{1} << 15;

std::vector<RankInfo> KeysAtRanks(const uint32_t* keys, uint64_t count,
                                  const std::vector<uint64_t>& ranks, unsigned threads) {
  std::vector<RankInfo> infos(ranks.size());
  if (ranks.empty()) return infos;
  // Range and histogram per part (integer counts: the same whatever the split).
  const unsigned parts = PartCount(count, threads, kMinLabelPerThread);
  std::vector<uint32_t> part_smallest(parts, 0xFFFFFFFFu);
  std::vector<uint32_t> part_largest(parts, 0);
  RunParts(count, parts, [&](unsigned part, uint64_t begin, uint64_t end) {
    uint32_t lo = 0xFFFFFFFFu;
    uint32_t hi = 0;
    for (uint64_t t = begin; t < end; ++t) {
      lo = std::min(lo, keys[t]);
      hi = std::max(hi, keys[t]);
    }
    part_smallest[part] = lo;
    part_largest[part] = hi;
  });
  const uint32_t smallest = *std::min_element(part_smallest.begin(), part_smallest.end());
  const uint32_t largest = *std::max_element(part_largest.begin(), part_largest.end());
  unsigned shift = 0;
  while (((largest - smallest) >> shift) >= kRangeBins) ++shift;
  const size_t num_bins = static_cast<size_t>((largest - smallest) >> shift) + 1;
  std::vector<uint64_t> bins(num_bins * parts, 0);
  RunParts(count, parts, [&](unsigned part, uint64_t begin, uint64_t end) {
    uint64_t* own = bins.data() + part * num_bins;
    for (uint64_t t = begin; t < end; ++t) ++own[(keys[t] - smallest) >> shift];
  });
  for (unsigned part = 1; part < parts; ++part) {
    for (size_t bin = 0; bin < num_bins; ++bin) bins[bin] += bins[part * num_bins + bin];
  }
  bins.resize(num_bins);
  // Walk the bins from the top once: rank r lies in the bin where the running count passes it.
  std::vector<uint8_t> slot_of_bin(num_bins, 0xFF);
  std::vector<size_t> bin_of_rank(ranks.size());
  std::vector<uint64_t> above_of_rank(ranks.size());
  std::vector<size_t> slot_bins;
  size_t r = 0;
  uint64_t above = 0;
  for (size_t bin = num_bins; bin-- > 0 && r < ranks.size();) {
    while (r < ranks.size() && ranks[r] < above + bins[bin]) {
      if (slot_of_bin[bin] == 0xFF) {
        slot_of_bin[bin] = static_cast<uint8_t>(slot_bins.size());
        slot_bins.push_back(bin);
      }
      bin_of_rank[r] = bin;
      above_of_rank[r] = above;
      ++r;
    }
    above += bins[bin];
  }
  if (r != ranks.size()) throw StatusError(SLICER_ERR_INTERNAL, "rank beyond the keys");
  // Each part gathers its keys of the chosen bins; the parts' lists are joined per bin (the
  // order of a bin's keys does not change the key at a rank).
  const size_t slots = slot_bins.size();
  std::vector<std::vector<uint32_t>> part_gathered(static_cast<size_t>(parts) * slots);
  RunParts(count, parts, [&](unsigned part, uint64_t begin, uint64_t end) {
    std::vector<uint32_t>* gathered = part_gathered.data() + static_cast<size_t>(part) * slots;
    for (size_t slot = 0; slot < slots; ++slot) {
      gathered[slot].reserve(parts == 1 ? bins[slot_bins[slot]]
                                        : bins[slot_bins[slot]] / parts + 64);
    }
    // Locals, not the captured references: push_back could alias them, so the loop would
    // reload them on every key.
    const uint32_t* key = keys;
    const uint8_t* slot_of = slot_of_bin.data();
    const uint32_t low = smallest;
    const unsigned bin_shift = shift;
    for (uint64_t t = begin; t < end; ++t) {
      const uint8_t slot = slot_of[(key[t] - low) >> bin_shift];
      if (slot != 0xFF) gathered[slot].push_back(key[t]);
    }
  });
  std::vector<uint32_t>* gathered = part_gathered.data();
  for (unsigned part = 1; part < parts; ++part) {
    for (size_t slot = 0; slot < slots; ++slot) {
      const std::vector<uint32_t>& more = part_gathered[static_cast<size_t>(part) * slots + slot];
      gathered[slot].insert(gathered[slot].end(), more.begin(), more.end());
    }
  }
  for (size_t i = 0; i < ranks.size(); ++i) {
    std::vector<uint32_t>& bucket = gathered[slot_of_bin[bin_of_rank[i]]];
    infos[i] = RankInBucket(&bucket, ranks[i] - above_of_rank[i], above_of_rank[i]);
  }
  return infos;
}

using MemberBuffer = IndexBuffer;

// Labels the kept elements of one sign by their P-order rank (§5.1). `keys[t]` is the
// magnitude key of kept element `members[t]`. Also sets the sign's block ranges
// (group->min_key / max_key of its non-empty blocks).
void LabelSign(const KeyBuffer& keys, const MemberBuffer& members, unsigned blocks,
               unsigned first_label, uint64_t base, const CodecParams& params, unsigned threads,
               GroupCode* group) {
  KeptElement* kept = group->kept.data();
  const uint64_t count = keys.size();
  const uint32_t* key_data = keys.data();
  const uint64_t* member = members.data();
  const auto key_of = [key_data](uint64_t t) { return key_data[t]; };
  const auto global_of = [kept, member, base](uint64_t t) {
    return base + kept[member[t]].position;
  };
  if (blocks == 1 && count > 0 && count <= kSortLabelMax) {
    uint32_t smallest = 0xFFFFFFFFu;
    uint32_t largest = 0;
    for (uint64_t t = 0; t < count; ++t) {
      kept[member[t]].label = static_cast<uint8_t>(first_label);
      smallest = std::min(smallest, key_data[t]);
      largest = std::max(largest, key_data[t]);
    }
    group->min_key[first_label] = smallest;
    group->max_key[first_label] = largest;
    return;
  }
  if (blocks > 1 && count > 0 && count <= kSortLabelMax) {
    // Few elements (per-row groups): label by P-order rank. Without equal keys the rank is the
    // number of larger keys, counted in a loop the compiler vectorizes (no sort, no draws).
    uint64_t edges[SLICER_MAX_BLOCKS + 1];  // first rank of block b
    edges[0] = 0;
    edges[blocks] = count;
    for (unsigned b = 1; b < blocks; ++b) edges[b] = uint64_t{b} * count / blocks;
    // Block ranges from the keys by rank (P order): a block's first and last rank.
    uint32_t key_at[kSortLabelMax];
    const auto set_ranges = [&]() {
      for (unsigned m = 0; m < blocks; ++m) {
        if (edges[m + 1] == edges[m]) continue;
        group->max_key[first_label + m] = key_at[edges[m]];
        group->min_key[first_label + m] = key_at[edges[m + 1] - 1];
      }
    };
    const auto label_of_rank = [&](uint64_t rank) {
      unsigned block = 0;
      for (unsigned b = 1; b < blocks; ++b) block += rank >= edges[b] ? 1u : 0u;
      return static_cast<uint8_t>(first_label + block);
    };
    // Distinct keys give distinct counts; equal keys give equal counts, seen as a repeat.
    uint32_t ranks[kSortLabelMax];
    uint64_t seen[(kSortLabelMax + 63) / 64] = {};
    bool ties = false;
    for (uint64_t t = 0; t < count; ++t) {
      const int32_t key = static_cast<int32_t>(key_data[t]);  // finite keys are below 2^31
      uint32_t greater = 0;
      for (uint64_t u = 0; u < count; ++u) {
        greater += static_cast<int32_t>(key_data[u]) > key ? 1u : 0u;
      }
      ranks[t] = greater;
      const uint64_t bit = uint64_t{1} << (greater & 63);
      ties = ties || (seen[greater >> 6] & bit) != 0;
      seen[greater >> 6] |= bit;
    }
    if (!ties) {
      for (uint64_t t = 0; t < count; ++t) {
        kept[member[t]].label = label_of_rank(ranks[t]);
        key_at[ranks[t]] = key_data[t];
      }
      set_ranges();
      return;
    }
    // Equal keys: sort in full P order.
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
    for (uint64_t r = 0; r < count; ++r) {
      kept[member[ranked[r].t]].label = label_of_rank(r);
      key_at[r] = ranked[r].key;
    }
    set_ranges();
    return;
  }
  // cuts[b - 1] = the first floor(b * count / M) elements of this sign, b = 1 ... M - 1.
  // Block m holds the P-order ranks [edge(m), edge(m + 1)), so its largest and smallest keys
  // are the keys at those two ranks: they come with the cut ranks from one KeysAtRanks call
  // and spare FinishBlocks a pass over the kept list.
  const auto edge = [count, blocks](unsigned b) {
    return static_cast<uint64_t>(static_cast<unsigned __int128>(b) * count / blocks);
  };
  std::vector<uint64_t> ranks;  // ascending: block tops, cut ends (= block bottoms)
  for (unsigned m = 0; m < blocks; ++m) {
    if (edge(m + 1) == edge(m)) continue;  // an empty block
    ranks.push_back(edge(m));
    ranks.push_back(edge(m + 1) - 1);
  }
  const std::vector<RankInfo> infos = KeysAtRanks(key_data, count, ranks, threads);
  const auto info_at = [&](uint64_t rank) {
    return infos[std::lower_bound(ranks.begin(), ranks.end(), rank) - ranks.begin()];
  };
  for (unsigned m = 0; m < blocks; ++m) {
    if (edge(m + 1) == edge(m)) continue;
    group->max_key[first_label + m] = info_at(edge(m)).key;
    group->min_key[first_label + m] = info_at(edge(m + 1) - 1).key;
  }
  std::vector<Cut> cuts;
  for (unsigned b = 1; b < blocks; ++b) {
    const uint64_t rank_end = edge(b);
    if (rank_end == 0) {
      cuts.push_back(Cut{});
      continue;
    }
    cuts.push_back(CutFromRank(info_at(rank_end - 1), rank_end, key_of, count, params.seed,
                               global_of, threads));
  }
  // An element's block is the number of cuts it misses. A key below a cut's mu misses it and
  // a key above is in it, so plain comparisons label everything except keys equal to the mu
  // of a cut that splits its ties; those few are relabelled by InCut (and their draws).
  bool any_split = false;
  for (const Cut& cut : cuts) any_split = any_split || (!cut.all_ties && cut.mu != Cut{}.mu);
  // Every element's label depends on its own key only: parts label disjoint elements.
  RunParts(count, PartCount(count, threads, kMinLabelPerThread),
           [&](unsigned, uint64_t begin, uint64_t end) {
             for (uint64_t t = begin; t < end; ++t) {
               unsigned block = 0;
               for (const Cut& cut : cuts) block += key_data[t] < cut.mu ? 1u : 0u;
               kept[member[t]].label = static_cast<uint8_t>(first_label + block);
             }
             if (!any_split) return;
             for (uint64_t t = begin; t < end; ++t) {
               bool at_split = false;
               for (const Cut& cut : cuts) {
                 at_split = at_split || (!cut.all_ties && key_data[t] == cut.mu);
               }
               if (!at_split) continue;
               unsigned block = 0;
               for (const Cut& cut : cuts) {
                 block += !InCut(cut, key_data[t], params.seed, global_of(t));
               }
               kept[member[t]].label = static_cast<uint8_t>(first_label + block);
             }
           });
}

// Splits the kept list by sign (compact key arrays, no masking) and labels both signs.
void LabelBlocks(uint64_t base, const CodecParams& params, unsigned threads, Workspace* workspace,
                 GroupCode* group) {
  const KeptList& kept = group->kept;
  const uint64_t k = kept.size();
  // The workspace's, reused: per-row groups call this thousands of times, large groups would
  // fault in fresh pages every call.
  KeyBuffer* keys = workspace->sign_keys;
  MemberBuffer* members = workspace->sign_members;
  // Parts of the kept list split at once: positives counted per part first, then every part
  // writes its elements from its own offsets (the same lists as one pass).
  const unsigned parts = PartCount(k, threads, kMinLabelPerThread);
  // One spare slot per part past the end: see the loop below.
  for (int sign = 0; sign < 2; ++sign) {
    keys[sign].resize(k + parts);
    members[sign].resize(k + parts);
  }
  const auto is_negative = [&kept](uint64_t t) {
    return uint64_t{FloatToBits(kept[t].value) >> 31};  // kept values are non-zero
  };
  std::vector<uint64_t> pos_start(parts + 1, 0);
  if (parts > 1) {
    RunParts(k, parts, [&](unsigned part, uint64_t begin, uint64_t end) {
      uint64_t negatives = 0;
      for (uint64_t t = begin; t < end; ++t) negatives += is_negative(t);
      pos_start[part + 1] = (end - begin) - negatives;
    });
    for (unsigned part = 0; part < parts; ++part) pos_start[part + 1] += pos_start[part];
  }
  // Every element is written to both signs' lists and only its own count advances: counts in
  // registers, no branch and no store-to-load chain through an indexed count. The slot after a
  // part's last element of a sign belongs to the next part, so once a part has written all of
  // its elements of a sign, its further writes to that sign go to its spare slot.
  uint32_t* pos_keys = keys[0].data();
  uint32_t* neg_keys = keys[1].data();
  uint64_t* pos_members = members[0].data();
  uint64_t* neg_members = members[1].data();
  uint64_t single_part_positives = 0;
  RunParts(k, parts, [&](unsigned part, uint64_t begin, uint64_t end) {
    uint64_t n_pos = pos_start[part];
    uint64_t n_neg = begin - pos_start[part];
    const uint64_t pos_end = parts > 1 ? pos_start[part + 1] : k;
    const uint64_t neg_end = parts > 1 ? end - pos_start[part + 1] : k;
    const uint64_t spare = k + part;
    for (uint64_t t = begin; t < end; ++t) {
      const uint32_t bits = FloatToBits(kept[t].value);
      const uint64_t negative = bits >> 31;
      const uint64_t pos_slot = n_pos < pos_end ? n_pos : spare;
      const uint64_t neg_slot = n_neg < neg_end ? n_neg : spare;
      pos_keys[pos_slot] = bits & 0x7FFFFFFFu;
      neg_keys[neg_slot] = bits & 0x7FFFFFFFu;
      pos_members[pos_slot] = t;
      neg_members[neg_slot] = t;
      n_pos += 1 - negative;
      n_neg += negative;
    }
    if (parts == 1) single_part_positives = n_pos;
  });
  const uint64_t n_pos = parts > 1 ? pos_start[parts] : single_part_positives;
  const uint64_t n_neg = k - n_pos;
  group->n_pos = n_pos;
  keys[0].resize(n_pos);
  members[0].resize(n_pos);
  keys[1].resize(n_neg);
  members[1].resize(n_neg);
  LabelSign(keys[0], members[0], params.blocks_pos, 0, base, params, threads, group);
  LabelSign(keys[1], members[1], params.blocks_neg, params.blocks_pos, base, params, threads,
            group);
  group->ranges_known = true;
}

// Checks the kept count, then counts the positives and labels and counts the blocks.
void FinishSelection(uint64_t base, const CodecParams& params, unsigned threads,
                     Workspace* workspace, GroupCode* group) {
  if (group->kept.size() != group->k) {
    throw StatusError(SLICER_ERR_INTERNAL, "kept count mismatch");
  }
  group->n_pos = 0;
  // Small groups (per-token rows): labels, block table and codes in one go when no draw is
  // needed; FinishBlocks then has nothing left to do.
  group->finished = threads == 1 && FinishSmallGroup(params, group);
  if (group->finished) return;
  if (group->k > 0) LabelBlocks(base, params, threads, workspace, group);  // also counts n_pos
  CountBlocks(params, group, threads);
}

}  // namespace

void CountBlocks(const CodecParams& params, GroupCode* group, unsigned threads) {
  group->blocks.assign(params.labels(), Block{});
  const unsigned parts = PartCount(group->kept.size(), threads, kMinLabelPerThread);
  if (parts == 1) {
    for (const KeptElement& e : group->kept) ++group->blocks[e.label].count;
  } else {
    const unsigned labels = params.labels();
    std::vector<uint64_t> counts(static_cast<size_t>(parts) * labels, 0);
    const KeptElement* kept = group->kept.data();
    RunParts(group->kept.size(), parts, [&](unsigned part, uint64_t begin, uint64_t end) {
      uint64_t* own = counts.data() + static_cast<size_t>(part) * labels;
      for (uint64_t t = begin; t < end; ++t) ++own[kept[t].label];
    });
    for (unsigned part = 0; part < parts; ++part) {
      for (unsigned label = 0; label < labels; ++label) {
        group->blocks[label].count += counts[static_cast<size_t>(part) * labels + label];
      }
    }
  }
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

// Both use 64-bit arithmetic when the product fits (a 128-bit division is a library call).
uint64_t KeepLimit(uint64_t n, uint32_t sparsity_ppb) {
  if (n < (uint64_t{1} << 34)) return n * (kPpb - sparsity_ppb) / kPpb;  // (10^9 - s) < 2^30
  return static_cast<uint64_t>(static_cast<unsigned __int128>(n) * (kPpb - sparsity_ppb) / kPpb);
}

uint64_t BlockCount(uint64_t n, unsigned blocks, unsigned m) {
  const auto edge = [&](unsigned b) {
    if (n < (uint64_t{1} << 56)) return uint64_t{b} * n / blocks;  // b <= 64
    return static_cast<uint64_t>(static_cast<unsigned __int128>(b) * n / blocks);
  };
  return edge(m + 1) - edge(m);
}

namespace {

// keys[j] = the magnitude key of x[j] for j < n; returns the number of zero keys and sets
// *largest to the largest key. SSE2 four at a time (keys < 2^31: signed comparisons order them).
uint64_t CopyKeys(const float* x, uint64_t n, uint32_t* keys, uint32_t* largest) {
  const uint32_t* bits = reinterpret_cast<const uint32_t*>(x);
  uint64_t zeros = 0;
  uint32_t top = 0;
  uint64_t j = 0;
#if defined(__SSE2__)
  const __m128i magnitude = _mm_set1_epi32(0x7FFFFFFF);
  const __m128i zero = _mm_setzero_si128();
  __m128i zero_lanes = zero;
  __m128i max_lanes = zero;
  for (; j + 4 <= n; j += 4) {
    const __m128i key =
        _mm_and_si128(_mm_loadu_si128(reinterpret_cast<const __m128i*>(bits + j)), magnitude);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(keys + j), key);
    zero_lanes = _mm_sub_epi32(zero_lanes, _mm_cmpeq_epi32(key, zero));
    const __m128i greater = _mm_cmpgt_epi32(key, max_lanes);
    max_lanes = _mm_or_si128(_mm_and_si128(greater, key), _mm_andnot_si128(greater, max_lanes));
  }
  uint32_t lanes[4];
  _mm_storeu_si128(reinterpret_cast<__m128i*>(lanes), zero_lanes);
  zeros = uint64_t{lanes[0]} + lanes[1] + lanes[2] + lanes[3];
  _mm_storeu_si128(reinterpret_cast<__m128i*>(lanes), max_lanes);
  top = std::max(std::max(lanes[0], lanes[1]), std::max(lanes[2], lanes[3]));
#endif
  for (; j < n; ++j) {
    keys[j] = bits[j] & 0x7FFFFFFFu;
    zeros += keys[j] == 0 ? 1 : 0;
    top = std::max(top, keys[j]);
  }
  *largest = top;
  return zeros;
}

}  // namespace

void SelectGroup(const float* x, uint64_t n, uint64_t base, const CodecParams& params,
                 unsigned threads, Workspace* workspace, GroupCode* group) {
  group->n_pos = 0;
  if (params.asym_ppb == 0 &&
      SelectTopFromSample(x, nullptr, n, base, params, threads, workspace, group)) {
    FinishSelection(base, params, threads, workspace, group);
    return;
  }
  const auto key_of = [x](uint64_t j) { return MagnitudeKey(x[j]); };
  const bool radix = n >= kRadixMinElements;
  // One pass gives the non-zero count and rejects NaN/inf (their keys sit above every finite).
  Histogram histogram;
  uint64_t nnz = 0;
  uint16_t small_bins[kSmallBins];  // filled for small groups of more than 128 keys
  uint32_t largest = 0;
  // The k-th largest of the small group's keys (copied to workspace->keys below).
  const auto small_rank = [&](uint64_t rank) {
    KeyBuffer* keys = &workspace->keys;
    return keys->size() <= 128 ? RankInBucket(keys, rank, 0)
                               : SmallRankFromBins(keys, rank, small_bins, largest);
  };
  if (radix) {
    histogram = BuildHistogram(key_of, n, threads);
    nnz = n - histogram.zeros;
    if (histogram.non_finite) throw StatusError(SLICER_ERR_NONFINITE_INPUT, "NaN or infinity");
  } else {
    // Small groups keep a copy of the keys for the selection below, and (above 128 keys) its
    // first histogram, in the same pass.
    KeyBuffer& keys = workspace->keys;
    keys.resize(n);
    largest = 0;
    if (n > 128) {
      // Keys, zero count and largest key four at a time, then the histogram from the copy (the
      // scalar loop doing all at once was bound by its instruction count).
      nnz = n - CopyKeys(x, n, keys.data(), &largest);
      std::fill(small_bins, small_bins + kSmallBins, uint16_t{0});
      const uint32_t* key = keys.data();
      uint64_t j = 0;
      for (; j + 4 <= n; j += 4) {
        ++small_bins[key[j] >> kSmallShift];
        ++small_bins[key[j + 1] >> kSmallShift];
        ++small_bins[key[j + 2] >> kSmallShift];
        ++small_bins[key[j + 3] >> kSmallShift];
      }
      for (; j < n; ++j) ++small_bins[key[j] >> kSmallShift];
    } else {
      for (uint64_t j = 0; j < n; ++j) {
        const uint32_t key = key_of(j);
        keys[j] = key;
        nnz += key != 0;
        largest = std::max(largest, key);
      }
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
      CollectTop(x, n, base, coarse, seed, threads, above + histogram.bins[chosen], workspace,
                 group);
      KeptList& candidates = group->kept;
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
      const RankInfo tau_info = small_rank(k - 1);  // keys copied above
      const Cut cut = CutFromRank(tau_info, k, key_of, n, seed, identity);
      CollectTop(x, n, base, cut, seed, threads, k, workspace, group);
    } else {
      const RankInfo tau_info =
          radix ? RankFromHistogram(histogram, key_of, n, k - 1, threads) : small_rank(k - 1);
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
        const Cut cut = CutFirst(masked_of, n, k, seed, threads, identity, &workspace->keys);
        CollectKept(
            x, n, threads, [&](uint64_t j) { return InCut(cut, m[j], seed, base + j); }, workspace,
            group);
      } else {
        // Fill: S plus the first k - |S| non-zero elements outside S in P order.
        for (uint64_t j = 0; j < n; ++j) masked[j] = strict[j] ? 0 : key_of(j);
        const Cut cut =
            CutFirst(masked_of, n, k - strict_count, seed, threads, identity, &workspace->keys);
        CollectKept(
            x, n, threads,
            [&](uint64_t j) { return strict[j] || InCut(cut, m[j], seed, base + j); }, workspace,
            group);
      }
    }
  }
  FinishSelection(base, params, threads, workspace, group);
}

bool SelectGroup16(const uint8_t* bytes, int dtype, uint64_t n, uint64_t base,
                   const CodecParams& params, unsigned threads, Workspace* workspace,
                   GroupCode* group) {
  if (params.asym_ppb != 0) return false;
  group->n_pos = 0;
  const Input16 input{bytes, dtype};
  if (!SelectTopFromSample(nullptr, &input, n, base, params, threads, workspace, group)) {
    return false;
  }
  FinishSelection(base, params, threads, workspace, group);
  return true;
}

bool UseAvx2() {
#if defined(SLICER_SWEEP_AVX2)
  return HasAvx2();
#else
  return false;
#endif
}

}  // namespace slicer::internal
