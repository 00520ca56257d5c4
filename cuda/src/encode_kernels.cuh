// Encoder kernels: group scan, radix select (magnitude digits, then draw digits for the tied
// elements only), block statistics, ABQ, chunk sizing and chunk packing.
#ifndef SLICER_CUDA_ENCODE_KERNELS_CUH_
#define SLICER_CUDA_ENCODE_KERNELS_CUH_

#include <cstdint>

#include "block_primitives.cuh"
#include "device_math.cuh"
#include "encode_types.cuh"

namespace slicer::cuda {

constexpr uint32_t kStatusNonfinite = 3;  // SLICER_ERR_NONFINITE_INPUT
constexpr uint32_t kStatusInternal = 99;  // SLICER_ERR_INTERNAL

__device__ inline void RaiseStatus(uint32_t* status, uint32_t code) {
  atomicCAS(status, 0u, code);
}

template <typename T>
__device__ inline float LoadElement(const T* data, const Layout& lay, uint64_t g, uint64_t f) {
  return ToFloat<T>(data[lay.Address(g, f)]);
}

__device__ inline bool Selects(const Selection& sel, uint32_t key, uint64_t seed, uint64_t f) {
  if (sel.empty) return false;
  if (key != sel.tau) return key > sel.tau;
  return sel.dstar == kAllDraws || Draw(seed, f) <= sel.dstar;
}

__device__ inline bool InStrict(const GroupRule& rule, float x) {
  const double v = static_cast<double>(x);
  return v > rule.t_pos || -v > rule.t_neg;
}

__device__ inline bool IsKept(const GroupRule& rule, float x, uint32_t key, uint64_t seed,
                              uint64_t f) {
  if (rule.k == 0 || key == 0) return false;
  switch (rule.mode) {
    case kKeepSelected:
      return Selects(rule.a, key, seed, f);
    case kKeepTrim:
      return InStrict(rule, x) && Selects(rule.b, key, seed, f);
    default:
      return InStrict(rule, x) || Selects(rule.b, key, seed, f);
  }
}

// Block label of a kept element (§5.1): the number of block boundaries of its sign whose
// leading set (the first floor(m n / M) elements in P order) does not contain it.
__device__ inline uint32_t LabelOf(const Params& p, const Selection* bounds, float x,
                                   uint32_t key, uint64_t f) {
  const bool positive = x > 0.0f;
  const uint32_t blocks = positive ? p.blocks_pos : p.blocks_neg;
  const Selection* own = positive ? bounds : bounds + (p.blocks_pos - 1);
  uint32_t m = 0;
  while (m + 1 < blocks && !Selects(own[m], key, p.seed, f)) ++m;
  return positive ? m : p.blocks_pos + m;
}

__device__ inline bool InSet(uint32_t set, const GroupRule& rule, float x, uint32_t key,
                             uint64_t seed, uint64_t f) {
  switch (set) {
    case kSetNonzero:
      return key != 0;
    case kSetStrict:
      return InStrict(rule, x);
    case kSetRest:
      return key != 0 && !InStrict(rule, x);
    case kSetKeptPos:
      return x > 0.0f && IsKept(rule, x, key, seed, f);
    default:
      return x < 0.0f && IsKept(rule, x, key, seed, f);
  }
}

// ---------------------------------------------------------------------------- group scan

// nnz per group and the finiteness check (§4, §4.1). grid = (blocks per group, groups).
template <typename T>
__global__ void ScanKernel(const T* data, Layout lay, uint64_t group_begin, GroupRule* rules,
                           uint32_t* status) {
  __shared__ unsigned long long scratch[kThreads];
  const uint64_t g = group_begin + blockIdx.y;
  unsigned long long nnz = 0;
  bool finite = true;
  for (uint64_t j = blockIdx.x * uint64_t{kThreads} + threadIdx.x; j < lay.group_size;
       j += uint64_t{gridDim.x} * kThreads) {
    const float x = LoadElement(data, lay, g, lay.ItemIndex(g, j));
    finite &= IsFiniteBits(x);
    nnz += MagnitudeKey(x) != 0;
  }
  if (!finite) RaiseStatus(status, kStatusNonfinite);
  const unsigned long long total = BlockReduce(nnz, SumOp(), scratch);
  if (threadIdx.x == 0 && total) {
    atomicAdd(reinterpret_cast<unsigned long long*>(&rules[g].nnz), total);
  }
}

// A select of rank r over `set`, ready for its first digit pass (r = 0 selects nothing).
__host__ __device__ inline SelectSlot NewSlot(uint32_t set, uint64_t r, uint32_t target) {
  SelectSlot slot{};
  slot.remaining = r;
  slot.set = set;
  slot.phase = r ? kPhaseKey : kPhaseIdle;
  slot.empty = r ? 0 : 1;
  slot.target = target;
  return slot;
}

// k (§4.1) from the group's nonzero count; resets everything decided later.
__device__ inline void InitRule(const Params& p, const Layout& lay, GroupRule* rule) {
  const unsigned __int128 budget =
      static_cast<unsigned __int128>(lay.group_size) * (1000000000u - p.sparsity_ppb);
  const uint64_t k_max = static_cast<uint64_t>(budget / 1000000000u);
  rule->k = k_max < rule->nnz ? k_max : rule->nnz;
  rule->mode = kKeepSelected;
  rule->a = {0, 1, 0};
  rule->b = {0, 1, 0};
  rule->t_pos = 0.0;
  rule->t_neg = 0.0;
  rule->strict_count = 0;
  rule->n_pos = 0;
}

// lambda > 0 (§4.4): t+ = tau f+, t- = tau f-.
__device__ inline void SetThresholds(const Params& p, GroupRule* rule) {
  const double tau = static_cast<double>(BitsFloat(rule->a.tau));
  const double f_plus = Div(static_cast<double>(1000000000u + p.asym_ppb), 1e9);
  const double f_minus = Div(static_cast<double>(1000000000u - p.asym_ppb), 1e9);
  rule->t_pos = Mul(tau, f_plus);
  rule->t_neg = Mul(tau, f_minus);
}

// Trim or fill (§4.4) once |S| is known: the second select ranks S or the nonzero rest.
__device__ inline SelectSlot SecondSlot(GroupRule* rule) {
  if (rule->k == 0) return NewSlot(kSetStrict, 0, 1);
  if (rule->strict_count >= rule->k) {
    rule->mode = kKeepTrim;
    return NewSlot(kSetStrict, rule->k, 1);
  }
  rule->mode = kKeepFill;
  return NewSlot(kSetRest, rule->k - rule->strict_count, 1);  // rank >= 1
}

// Block boundary `bound` of a group (§5.1): boundary i < M+ - 1 is the leading
// floor((i+1) n+ / M+) positives, the rest the same for negatives.
__device__ inline SelectSlot BoundSlot(const Params& p, const GroupRule& rule, uint32_t bound) {
  const bool positive = bound < p.blocks_pos - 1;
  const uint64_t n = positive ? rule.n_pos : rule.k - rule.n_pos;
  const uint64_t blocks = positive ? p.blocks_pos : p.blocks_neg;
  const uint64_t m = positive ? bound + 1 : bound - (p.blocks_pos - 1) + 1;
  return NewSlot(positive ? kSetKeptPos : kSetKeptNeg, m * n / blocks, 2 + bound);
}

// k (§4.1) and the first select: rank k among the nonzero elements.
__global__ void InitKeepKernel(Params p, Layout lay, uint64_t group_begin, uint64_t groups,
                               GroupRule* rules, SelectSlot* slots) {
  const uint64_t w = blockIdx.x * uint64_t{blockDim.x} + threadIdx.x;
  if (w >= groups) return;
  GroupRule& rule = rules[group_begin + w];
  InitRule(p, lay, &rule);
  slots[w * kSlotsPerRun] = NewSlot(kSetNonzero, rule.k, 0);
  for (int s = 1; s < kSlotsPerRun; ++s) slots[w * kSlotsPerRun + s] = SelectSlot{};
}

// lambda > 0 (§4.4): thresholds from tau, then |S|.
__global__ void InitStrictKernel(Params p, uint64_t group_begin, uint64_t groups,
                                 GroupRule* rules) {
  const uint64_t w = blockIdx.x * uint64_t{blockDim.x} + threadIdx.x;
  if (w >= groups) return;
  GroupRule& rule = rules[group_begin + w];
  rule.strict_count = 0;
  if (rule.k == 0) return;
  SetThresholds(p, &rule);
}

template <typename T>
__global__ void CountStrictKernel(const T* data, Layout lay, uint64_t group_begin,
                                  GroupRule* rules) {
  __shared__ unsigned long long scratch[kThreads];
  const uint64_t g = group_begin + blockIdx.y;
  const GroupRule rule = rules[g];
  if (rule.k == 0) return;
  unsigned long long count = 0;
  for (uint64_t j = blockIdx.x * uint64_t{kThreads} + threadIdx.x; j < lay.group_size;
       j += uint64_t{gridDim.x} * kThreads) {
    count += InStrict(rule, LoadElement(data, lay, g, lay.ItemIndex(g, j)));
  }
  const unsigned long long total = BlockReduce(count, SumOp(), scratch);
  if (threadIdx.x == 0 && total) {
    atomicAdd(reinterpret_cast<unsigned long long*>(&rules[g].strict_count), total);
  }
}

__global__ void InitSecondKernel(uint64_t group_begin, uint64_t groups, GroupRule* rules,
                                 SelectSlot* slots) {
  const uint64_t w = blockIdx.x * uint64_t{blockDim.x} + threadIdx.x;
  if (w >= groups) return;
  slots[w * kSlotsPerRun] = SecondSlot(&rules[group_begin + w]);
  for (int s = 1; s < kSlotsPerRun; ++s) slots[w * kSlotsPerRun + s] = SelectSlot{};
}

// ---------------------------------------------------------------------------- radix select

// The digit a nonzero element adds to a select's histogram at this level, or -1 when it is not
// a candidate (outside the set, or outside the prefix chosen so far).
__device__ inline int SlotDigit(const SelectSlot& slot, const GroupRule& rule, float x,
                                uint32_t key, uint64_t f, uint64_t seed, bool draw_phase,
                                uint32_t level) {
  if (draw_phase) {
    const uint32_t shift = 56 - kRadixBits * level;
    if (key != slot.tau || !InSet(slot.set, rule, x, key, seed, f)) return -1;
    const uint64_t d = Draw(seed, f);
    if (level != 0 && (d >> (shift + kRadixBits)) != slot.prefix) return -1;
    return static_cast<int>((d >> shift) & (kBins - 1));
  }
  const uint32_t shift = 24 - kRadixBits * level;
  if ((uint64_t{key} >> (shift + kRadixBits)) != slot.prefix) return -1;
  if (!InSet(slot.set, rule, x, key, seed, f)) return -1;
  return static_cast<int>((key >> shift) & (kBins - 1));
}

// Picks the digit of the histogram `h` that holds the wanted rank, clears `h`, and moves the
// select to its next level (or phase).
__device__ inline void FindStep(SelectSlot& slot, uint32_t* h, bool draw_phase, uint32_t level,
                                uint32_t last_level, uint32_t* status) {
  uint64_t below = 0;
  int chosen = -1;
  uint32_t chosen_count = 0;
  for (int step = 0; step < kBins; ++step) {
    // Magnitudes rank from the top digit down (P order: |x| descending), draws from the
    // bottom up (draw ascending).
    const int b = draw_phase ? step : kBins - 1 - step;
    const uint32_t c = h[b];
    h[b] = 0;
    if (chosen < 0) {
      if (slot.remaining <= below + c) {
        chosen = b;
        chosen_count = c;
      } else {
        below += c;
      }
    }
  }
  if (chosen < 0) {  // the rank is larger than the set: an internal inconsistency
    RaiseStatus(status, kStatusInternal);
    slot.phase = kPhaseDone;
    slot.empty = 1;
    return;
  }
  slot.remaining -= below;
  slot.prefix = (slot.prefix << kRadixBits) | static_cast<uint64_t>(chosen);
  if (level == last_level) {
    if (!draw_phase) {
      slot.tau = static_cast<uint32_t>(slot.prefix);
      if (slot.remaining == chosen_count) {  // every tied element is selected: no draw needed
        slot.prefix = kAllDraws;
        slot.phase = kPhaseDone;
      } else {
        slot.prefix = 0;
        slot.phase = kPhaseDraw;
      }
    } else {
      slot.phase = kPhaseDone;  // prefix is now the draw of the last selected tie
    }
  }
}

__host__ __device__ inline Selection SelectionOf(const SelectSlot& slot) {
  return Selection{slot.tau, slot.empty, slot.empty ? 0 : slot.prefix};
}

// One digit of every active select of the group: histogram of the digit among the set's
// elements that match the prefix so far. grid = (blocks per group, groups in the wave).
template <typename T, bool kDrawPhase>
__global__ void SelectHistogramKernel(const T* data, Layout lay, Params p, uint64_t group_begin,
                                      const GroupRule* rules, const SelectSlot* slots,
                                      uint32_t* hist, uint32_t level) {
  __shared__ uint32_t counts[kSlotsPerRun * kBins];  // slot s, digit b at s * kBins + b
  __shared__ SelectSlot local[kSlotsPerRun];
  __shared__ int active[kSlotsPerRun];
  __shared__ int num_active;
  const uint64_t w = blockIdx.y;
  const uint64_t g = group_begin + w;
  const uint32_t want = kDrawPhase ? kPhaseDraw : kPhaseKey;
  if (threadIdx.x == 0) {
    int n = 0;
    for (int s = 0; s < kSlotsPerRun; ++s) {
      const SelectSlot slot = slots[w * kSlotsPerRun + s];
      if (slot.phase == want) {
        local[n] = slot;
        active[n] = s;
        ++n;
      }
    }
    num_active = n;
  }
  for (int i = threadIdx.x; i < kSlotsPerRun * kBins; i += kThreads) counts[i] = 0;
  __syncthreads();
  const int n_active = num_active;
  if (n_active == 0) return;
  const GroupRule rule = rules[g];
  for (uint64_t j = blockIdx.x * uint64_t{kThreads} + threadIdx.x; j < lay.group_size;
       j += uint64_t{gridDim.x} * kThreads) {
    const uint64_t f = lay.ItemIndex(g, j);
    const float x = LoadElement(data, lay, g, f);
    const uint32_t key = MagnitudeKey(x);
    if (key == 0) continue;  // zero is in no set
    for (int s = 0; s < n_active; ++s) {
      const int digit = SlotDigit(local[s], rule, x, key, f, p.seed, kDrawPhase, level);
      if (digit >= 0) atomicAdd(&counts[s * kBins + digit], 1u);
    }
  }
  __syncthreads();
  for (int s = 0; s < n_active; ++s) {
    uint32_t* out = hist + (w * kSlotsPerRun + active[s]) * kBins;
    for (int b = threadIdx.x; b < kBins; b += kThreads) {
      if (counts[s * kBins + b]) atomicAdd(&out[b], counts[s * kBins + b]);
    }
  }
}

// Picks the digit that holds the wanted rank and clears the histogram for the next pass.
// One thread per (group, slot).
__global__ void SelectFindKernel(SelectSlot* slots, uint32_t* hist, uint64_t count,
                                 bool draw_phase, uint32_t level, uint32_t last_level,
                                 uint32_t* status) {
  const uint64_t i = blockIdx.x * uint64_t{blockDim.x} + threadIdx.x;
  if (i >= count) return;
  SelectSlot slot = slots[i];
  if (slot.phase != (draw_phase ? kPhaseDraw : kPhaseKey)) return;
  FindStep(slot, hist + i * kBins, draw_phase, level, last_level, status);
  slots[i] = slot;
}

// Stores finished selects where the later passes read them. One thread per (group, slot).
__global__ void SelectCommitKernel(const SelectSlot* slots, uint64_t group_begin, uint64_t count,
                                   GroupRule* rules, Selection* bounds,
                                   uint32_t bounds_per_group) {
  const uint64_t i = blockIdx.x * uint64_t{blockDim.x} + threadIdx.x;
  if (i >= count) return;
  const SelectSlot slot = slots[i];
  const uint64_t g = group_begin + i / kSlotsPerRun;
  if (slot.phase != kPhaseDone && !(slot.phase == kPhaseIdle && slot.empty)) return;
  const Selection sel = SelectionOf(slot);
  if (slot.target == 0) {
    rules[g].a = sel;
  } else if (slot.target == 1) {
    rules[g].b = sel;
  } else {
    bounds[g * bounds_per_group + (slot.target - 2)] = sel;
  }
}

// ---------------------------------------------------------------------------- blocks

template <typename T>
__global__ void CountPositiveKernel(const T* data, Layout lay, Params p, uint64_t group_begin,
                                    GroupRule* rules) {
  __shared__ unsigned long long scratch[kThreads];
  const uint64_t g = group_begin + blockIdx.y;
  const GroupRule rule = rules[g];
  if (rule.k == 0) return;
  unsigned long long count = 0;
  for (uint64_t j = blockIdx.x * uint64_t{kThreads} + threadIdx.x; j < lay.group_size;
       j += uint64_t{gridDim.x} * kThreads) {
    const uint64_t f = lay.ItemIndex(g, j);
    const float x = LoadElement(data, lay, g, f);
    count += x > 0.0f && IsKept(rule, x, MagnitudeKey(x), p.seed, f);
  }
  const unsigned long long total = BlockReduce(count, SumOp(), scratch);
  if (threadIdx.x == 0 && total) {
    atomicAdd(reinterpret_cast<unsigned long long*>(&rules[g].n_pos), total);
  }
}

// Boundary selects of one round: slot s of the round computes boundary (first + s) of the
// group; boundary i < M+ - 1 is positive rank floor((i+1) n+ / M+), the rest negative.
__global__ void InitBoundsKernel(Params p, uint64_t group_begin, uint64_t groups,
                                 const GroupRule* rules, SelectSlot* slots, uint32_t first) {
  const uint64_t i = blockIdx.x * uint64_t{blockDim.x} + threadIdx.x;
  if (i >= groups * kSlotsPerRun) return;
  const uint64_t w = i / kSlotsPerRun;
  const uint32_t bound = first + static_cast<uint32_t>(i % kSlotsPerRun);
  const uint32_t total = p.blocks_pos + p.blocks_neg - 2;
  SelectSlot slot{};
  if (bound < total) slot = BoundSlot(p, rules[group_begin + w], bound);
  slots[i] = slot;
}

// Per (group, label): largest and smallest key of the block (§5.2).
template <typename T>
__global__ void BlockStatsKernel(const T* data, Layout lay, Params p, uint64_t group_begin,
                                 const GroupRule* rules, const Selection* bounds,
                                 uint32_t bounds_per_group, uint32_t* max_key,
                                 uint32_t* min_key) {
  __shared__ uint32_t smax[kMaxLabels];
  __shared__ uint32_t smin[kMaxLabels];
  const uint64_t g = group_begin + blockIdx.y;
  for (int l = threadIdx.x; l < kMaxLabels; l += kThreads) {
    smax[l] = 0;
    smin[l] = 0xFFFFFFFFu;
  }
  __syncthreads();
  const GroupRule rule = rules[g];
  const Selection* own = bounds + g * bounds_per_group;
  if (rule.k != 0) {
    for (uint64_t j = blockIdx.x * uint64_t{kThreads} + threadIdx.x; j < lay.group_size;
         j += uint64_t{gridDim.x} * kThreads) {
      const uint64_t f = lay.ItemIndex(g, j);
      const float x = LoadElement(data, lay, g, f);
      const uint32_t key = MagnitudeKey(x);
      if (!IsKept(rule, x, key, p.seed, f)) continue;
      const uint32_t label = LabelOf(p, own, x, key, f);
      atomicMax(&smax[label], key);
      atomicMin(&smin[label], key);
    }
  }
  __syncthreads();
  for (uint32_t l = threadIdx.x; l < p.num_labels; l += kThreads) {
    if (smax[l] != 0) atomicMax(&max_key[g * p.num_labels + l], smax[l]);
    if (smin[l] != 0xFFFFFFFFu) atomicMin(&min_key[g * p.num_labels + l], smin[l]);
  }
}

__host__ __device__ inline uint64_t BlockCount(uint64_t n, uint64_t blocks, uint64_t m) {
  return format::BlockCount(n, static_cast<uint32_t>(blocks), static_cast<uint32_t>(m));
}

// Chained ranges and widths (§5.2) of one group from its per-label key extremes.
__device__ inline void ComputeBlockMeta(const Params& p, const GroupRule& rule,
                                        const uint32_t* max_key, const uint32_t* min_key,
                                        BlockMeta* meta) {
  for (int sign = 0; sign < 2; ++sign) {
    const uint32_t blocks = sign == 0 ? p.blocks_pos : p.blocks_neg;
    const uint32_t base = sign == 0 ? 0 : p.blocks_pos;
    const uint64_t n = sign == 0 ? rule.n_pos : rule.k - rule.n_pos;
    int next = -1;  // the next non-empty block's label (walking from the last block up)
    for (int m = static_cast<int>(blocks) - 1; m >= 0; --m) {
      const uint32_t label = base + m;
      BlockMeta out{};
      out.count = BlockCount(n, blocks, m);
      if (out.count) {
        const uint32_t top = max_key[label];
        const uint32_t bottom = min_key[label];
        out.hi = BitsFloat(top);
        out.lo = next >= 0 ? BitsFloat(max_key[next]) : BitsFloat(bottom);
        if (bottom == top) {
          out.width = 0;
        } else if (p.level_count) {
          out.width = p.levels[m];
        } else {
          out.width = p.bits;
          out.abq = p.delta_micro != 0 && p.bits > 1;
        }
        next = static_cast<int>(label);
      }
      meta[label] = out;
    }
  }
}

// One thread per group.
__global__ void BlockMetaKernel(Params p, uint64_t group_begin, uint64_t groups,
                                const GroupRule* rules, const uint32_t* max_key,
                                const uint32_t* min_key, BlockMeta* meta) {
  const uint64_t w = blockIdx.x * uint64_t{blockDim.x} + threadIdx.x;
  if (w >= groups) return;
  const uint64_t g = group_begin + w;
  ComputeBlockMeta(p, rules[g], max_key + g * p.num_labels, min_key + g * p.num_labels,
                   meta + g * p.num_labels);
}

// Adds one kept magnitude's |coarse(T0) - T| for every candidate width (§5.4) to `sums`
// (kMaxBits entries of its block).
__device__ inline void AbqAccumulate(const Params& p, uint32_t key, const BlockMeta& m,
                                     unsigned long long* sums) {
  const double a = static_cast<double>(BitsFloat(key));
  const double lo = m.lo;
  const double hi = m.hi;
  const uint32_t t0 = Quantize(a, lo, hi, p.bits);
  for (uint32_t cand = 1; cand < p.bits; ++cand) {
    const uint32_t t = Quantize(a, lo, hi, cand);
    const uint32_t coarse = t0 >> (p.bits - cand);
    const uint32_t diff = coarse > t ? coarse - t : t - coarse;
    if (diff) atomicAdd(&sums[cand], static_cast<unsigned long long>(diff));
  }
}

// Greedy width (§5.4) from the block's DS sums.
__device__ inline void AbqChoose(const Params& p, const unsigned long long* sums, BlockMeta* m) {
  uint32_t width = p.bits;
  const unsigned __int128 budget = static_cast<unsigned __int128>(p.delta_micro) * m->count;
  while (width > 1) {
    const unsigned __int128 sum = sums[width - 1];
    if (sum * 1000000u > budget) break;
    --width;
  }
  m->width = width;
  m->abq = 0;
}

// DS sums of every candidate width below q_bit (§5.4), for the blocks ABQ still decides.
// ds[(w * L + label) * kMaxBits + width] for width in [1, q_bit), w the group in the wave.
template <typename T>
__global__ void AbqKernel(const T* data, Layout lay, Params p, uint64_t group_begin,
                          const GroupRule* rules, const Selection* bounds,
                          uint32_t bounds_per_group, const BlockMeta* meta,
                          unsigned long long* ds) {
  __shared__ unsigned long long sums[kMaxLabels * kMaxBits];
  const uint64_t g = group_begin + blockIdx.y;
  for (int i = threadIdx.x; i < kMaxLabels * kMaxBits; i += kThreads) sums[i] = 0;
  __syncthreads();
  const GroupRule rule = rules[g];
  const Selection* own = bounds + g * bounds_per_group;
  const BlockMeta* group_meta = meta + g * p.num_labels;
  if (rule.k != 0) {
    for (uint64_t j = blockIdx.x * uint64_t{kThreads} + threadIdx.x; j < lay.group_size;
         j += uint64_t{gridDim.x} * kThreads) {
      const uint64_t f = lay.ItemIndex(g, j);
      const float x = LoadElement(data, lay, g, f);
      const uint32_t key = MagnitudeKey(x);
      if (!IsKept(rule, x, key, p.seed, f)) continue;
      const uint32_t label = LabelOf(p, own, x, key, f);
      const BlockMeta m = group_meta[label];
      if (m.abq) AbqAccumulate(p, key, m, &sums[label * kMaxBits]);
    }
  }
  __syncthreads();
  for (uint32_t i = threadIdx.x; i < p.num_labels * kMaxBits; i += kThreads) {
    if (sums[i]) atomicAdd(&ds[(blockIdx.y * uint64_t{p.num_labels}) * kMaxBits + i], sums[i]);
  }
}

// Greedy width choice (§5.4): one thread per (group, label).
__global__ void AbqChooseKernel(Params p, uint64_t group_begin, uint64_t groups,
                                const unsigned long long* ds, BlockMeta* meta) {
  const uint64_t i = blockIdx.x * uint64_t{blockDim.x} + threadIdx.x;
  if (i >= groups * p.num_labels) return;
  const uint64_t at = group_begin * p.num_labels + i;
  BlockMeta m = meta[at];
  if (!m.abq) return;
  AbqChoose(p, ds + i * kMaxBits, &m);
  meta[at] = m;
}

// ---------------------------------------------------------------------------- small groups

// Groups up to this many elements (a token row, a small tensor) take the fused kernel below:
// one block does every step of the group, so a batch of rows is one launch instead of ~50.
constexpr uint64_t kSmallGroup = uint64_t{1} << 14;

// Radix select of `*slot` (shared, set up by thread 0 and synchronized) by one block over one
// group; leaves the result in *out (shared). Every thread of the block must call it.
template <typename T>
__device__ void BlockSelect(const T* data, const Layout& lay, const Params& p, uint64_t g,
                            const GroupRule& rule, SelectSlot* slot, uint32_t* hist,
                            Selection* out, uint32_t* status) {
  for (uint32_t step = 0; step < 12; ++step) {
    const bool draw = step >= 4;  // 4 magnitude digits, then up to 8 draw digits
    const uint32_t level = draw ? step - 4 : step;
    if (slot->phase != (draw ? kPhaseDraw : kPhaseKey)) continue;  // the same for all threads
    for (int b = threadIdx.x; b < kBins; b += kThreads) hist[b] = 0;
    __syncthreads();
    for (uint64_t j = threadIdx.x; j < lay.group_size; j += kThreads) {
      const uint64_t f = lay.ItemIndex(g, j);
      const float x = LoadElement(data, lay, g, f);
      const uint32_t key = MagnitudeKey(x);
      if (key == 0) continue;
      const int digit = SlotDigit(*slot, rule, x, key, f, p.seed, draw, level);
      if (digit >= 0) atomicAdd(&hist[digit], 1u);
    }
    __syncthreads();
    if (threadIdx.x == 0) FindStep(*slot, hist, draw, level, draw ? 7 : 3, status);
    __syncthreads();
  }
  if (threadIdx.x == 0) *out = SelectionOf(*slot);
  __syncthreads();
}

// Everything up to the block table for groups of at most kSmallGroup elements: the same steps
// and helpers as the multi-kernel path (scan, selects, boundaries, ranges, ABQ), one block per
// group, writing rules, bounds and meta exactly as that path does.
template <typename T>
__global__ void SmallGroupKernel(const T* data, Layout lay, Params p, uint64_t groups,
                                 GroupRule* rules, Selection* bounds, uint32_t bounds_per_group,
                                 BlockMeta* meta, uint32_t* status) {
  __shared__ unsigned long long scratch[kThreads];
  __shared__ uint32_t hist[kBins];
  __shared__ SelectSlot slot;
  __shared__ GroupRule rule;
  __shared__ Selection own[kMaxLabels];
  __shared__ uint32_t max_key[kMaxLabels];
  __shared__ uint32_t min_key[kMaxLabels];
  __shared__ BlockMeta block_meta[kMaxLabels];
  __shared__ unsigned long long sums[kMaxLabels * kMaxBits];
  const uint32_t num_bounds = p.num_labels - 2;
  const bool abq = p.level_count == 0 && p.delta_micro != 0 && p.bits > 1;
  for (uint64_t g = blockIdx.x; g < groups; g += gridDim.x) {
    // §4.1: nonzero count (and the finiteness check), k, the first select.
    unsigned long long nnz = 0;
    bool finite = true;
    for (uint64_t j = threadIdx.x; j < lay.group_size; j += kThreads) {
      const float x = LoadElement(data, lay, g, lay.ItemIndex(g, j));
      finite &= IsFiniteBits(x);
      nnz += MagnitudeKey(x) != 0;
    }
    if (!finite) RaiseStatus(status, kStatusNonfinite);
    const unsigned long long nonzero = BlockReduce(nnz, SumOp(), scratch);
    if (threadIdx.x == 0) {
      rule = GroupRule{};
      rule.nnz = nonzero;
      InitRule(p, lay, &rule);
      slot = NewSlot(kSetNonzero, rule.k, 0);
    }
    __syncthreads();
    BlockSelect(data, lay, p, g, rule, &slot, hist, &rule.a, status);
    // §4.4, lambda > 0: |S|, then trim or fill.
    if (p.asym_ppb && rule.k) {
      if (threadIdx.x == 0) SetThresholds(p, &rule);
      __syncthreads();
      unsigned long long strict = 0;
      for (uint64_t j = threadIdx.x; j < lay.group_size; j += kThreads) {
        strict += InStrict(rule, LoadElement(data, lay, g, lay.ItemIndex(g, j)));
      }
      const unsigned long long strict_total = BlockReduce(strict, SumOp(), scratch);
      if (threadIdx.x == 0) {
        rule.strict_count = strict_total;
        slot = SecondSlot(&rule);
      }
      __syncthreads();
      BlockSelect(data, lay, p, g, rule, &slot, hist, &rule.b, status);
    }
    // §5.1: kept positives, then every block boundary.
    unsigned long long positives = 0;
    for (uint64_t j = threadIdx.x; j < lay.group_size; j += kThreads) {
      const uint64_t f = lay.ItemIndex(g, j);
      const float x = LoadElement(data, lay, g, f);
      positives += x > 0.0f && IsKept(rule, x, MagnitudeKey(x), p.seed, f);
    }
    const unsigned long long positive_total = BlockReduce(positives, SumOp(), scratch);
    if (threadIdx.x == 0) rule.n_pos = positive_total;
    __syncthreads();
    for (uint32_t b = 0; b < num_bounds; ++b) {
      if (threadIdx.x == 0) slot = BoundSlot(p, rule, b);
      __syncthreads();
      BlockSelect(data, lay, p, g, rule, &slot, hist, &own[b], status);
    }
    // §5.2: block extremes, chained ranges and widths; §5.4: ABQ.
    for (int l = threadIdx.x; l < kMaxLabels; l += kThreads) {
      max_key[l] = 0;
      min_key[l] = 0xFFFFFFFFu;
    }
    if (abq) {
      for (int i = threadIdx.x; i < kMaxLabels * kMaxBits; i += kThreads) sums[i] = 0;
    }
    __syncthreads();
    for (uint64_t j = threadIdx.x; rule.k && j < lay.group_size; j += kThreads) {
      const uint64_t f = lay.ItemIndex(g, j);
      const float x = LoadElement(data, lay, g, f);
      const uint32_t key = MagnitudeKey(x);
      if (!IsKept(rule, x, key, p.seed, f)) continue;
      const uint32_t label = LabelOf(p, own, x, key, f);
      atomicMax(&max_key[label], key);
      atomicMin(&min_key[label], key);
    }
    __syncthreads();
    if (threadIdx.x == 0) ComputeBlockMeta(p, rule, max_key, min_key, block_meta);
    __syncthreads();
    if (abq) {
      for (uint64_t j = threadIdx.x; rule.k && j < lay.group_size; j += kThreads) {
        const uint64_t f = lay.ItemIndex(g, j);
        const float x = LoadElement(data, lay, g, f);
        const uint32_t key = MagnitudeKey(x);
        if (!IsKept(rule, x, key, p.seed, f)) continue;
        const uint32_t label = LabelOf(p, own, x, key, f);
        if (!block_meta[label].abq) continue;
        AbqAccumulate(p, key, block_meta[label], &sums[label * kMaxBits]);
      }
      __syncthreads();
      for (uint32_t l = threadIdx.x; l < p.num_labels; l += kThreads) {
        if (block_meta[l].abq) AbqChoose(p, &sums[l * kMaxBits], &block_meta[l]);
      }
      __syncthreads();
    }
    if (threadIdx.x == 0) rules[g] = rule;
    for (uint32_t b = threadIdx.x; b < num_bounds; b += kThreads) {
      bounds[g * bounds_per_group + b] = own[b];
    }
    for (uint32_t l = threadIdx.x; l < p.num_labels; l += kThreads) {
      meta[g * p.num_labels + l] = block_meta[l];
    }
    __syncthreads();
  }
}

// ---------------------------------------------------------------------------- chunks

constexpr int kItems = 4;  // consecutive elements per thread in the chunk kernels
constexpr int kTile = kThreads * kItems;

struct ChunkInfo {
  uint64_t count;
  uint64_t bytes;
  uint32_t rice;
  uint32_t pad;
};

// What a thread knows of one of its elements in a chunk kernel.
struct ElementCode {
  uint32_t label;
  uint32_t width;
  uint32_t code;
};

template <typename T>
__device__ inline bool CodeElement(const T* data, const Layout& lay, const Params& p,
                                   const GroupRule& rule, const Selection* own,
                                   const BlockMeta* group_meta, uint64_t g, uint64_t j,
                                   bool want_code, ElementCode* out) {
  const uint64_t f = lay.ItemIndex(g, j);
  const float x = LoadElement(data, lay, g, f);
  const uint32_t key = MagnitudeKey(x);
  if (!IsKept(rule, x, key, p.seed, f)) return false;
  out->label = LabelOf(p, own, x, key, f);
  const BlockMeta m = group_meta[out->label];
  out->width = m.width;
  out->code = (want_code && m.width)
                  ? Quantize(static_cast<double>(BitsFloat(key)), m.lo, m.hi, m.width)
                  : 0;
  return true;
}

// Sizes every chunk: kept count, Rice parameter and payload bytes (§6.1). One block per chunk.
template <typename T>
__global__ void ChunkSizeKernel(const T* data, Layout lay, Params p, const GroupRule* rules,
                                const Selection* bounds, uint32_t bounds_per_group,
                                const BlockMeta* meta, uint64_t total_chunks,
                                ChunkInfo* chunks, unsigned long long* lengths) {
  __shared__ unsigned long long sums[kThreads];
  __shared__ long long positions[kThreads];
  const LabelCode label_code = MakeLabelCode(p.num_labels);
  for (uint64_t cid = blockIdx.x; cid < total_chunks; cid += gridDim.x) {
    const uint64_t g = cid / lay.chunks_per_group;
    const uint64_t start = (cid % lay.chunks_per_group) << lay.chunk_log2;
    const uint64_t end = min(start + (uint64_t{1} << lay.chunk_log2), lay.group_size);
    const GroupRule rule = rules[g];
    const Selection* own = bounds + g * bounds_per_group;
    const BlockMeta* group_meta = meta + g * p.num_labels;
    // Pass 1: count and last kept position give the gap sum, hence r.
    unsigned long long count = 0;
    long long last = -1;
    for (uint64_t tile = start; tile < end; tile += kTile) {
      for (int it = 0; it < kItems; ++it) {
        const uint64_t j = tile + threadIdx.x * kItems + it;
        ElementCode e;
        if (j < end && CodeElement(data, lay, p, rule, own, group_meta, g, j, false, &e)) {
          ++count;
          last = static_cast<long long>(j - start);
        }
      }
    }
    const unsigned long long cnt = BlockReduce(count, SumOp(), sums);
    const long long last_all = BlockReduce(last, MaxOp(), positions);
    const unsigned long long gap_sum = cnt ? static_cast<unsigned long long>(last_all + 1) - cnt
                                           : 0;
    const uint32_t r = RiceParameter(cnt, gap_sum, lay.chunk_log2);
    // Pass 2: bits of every kept element; the gap needs the previous kept position, which
    // comes from the threads before (block max-scan) and the tiles before (carry).
    unsigned long long bits = 0;
    long long carry = -1;
    if (cnt) {
      for (uint64_t tile = start; tile < end; tile += kTile) {
        ElementCode e[kItems];
        bool kept[kItems];
        long long my_last = -1;
        for (int it = 0; it < kItems; ++it) {
          const uint64_t j = tile + threadIdx.x * kItems + it;
          kept[it] = j < end && CodeElement(data, lay, p, rule, own, group_meta, g, j, false,
                                            &e[it]);
          if (kept[it]) my_last = static_cast<long long>(j - start);
        }
        long long tile_last;
        long long prev = BlockExclusiveScan(my_last, carry, MaxOp(), positions, &tile_last);
        for (int it = 0; it < kItems; ++it) {
          if (!kept[it]) continue;
          const long long pos = static_cast<long long>(tile - start) + threadIdx.x * kItems + it;
          const uint64_t gap = static_cast<uint64_t>(pos - prev - 1);
          bits += ElementBits(gap, r, LabelBits(label_code, e[it].label), e[it].width);
          prev = pos;
        }
        carry = tile_last > carry ? tile_last : carry;
      }
    }
    const unsigned long long total_bits = BlockReduce(bits, SumOp(), sums);
    if (threadIdx.x == 0) {
      ChunkInfo info{};
      info.count = cnt;
      info.bytes = cnt ? (5 + total_bits + 7) / 8 : 0;
      info.rice = r;
      chunks[cid] = info;
      lengths[cid] = info.bytes;
    }
    __syncthreads();
  }
}

// Exclusive prefix sum of `count` values in one block: each thread folds a contiguous run.
__global__ void ExclusiveSumKernel(const unsigned long long* in, unsigned long long* out,
                                   uint64_t count) {
  __shared__ unsigned long long scratch[kThreads];
  const uint64_t per = (count + kThreads - 1) / kThreads;
  const uint64_t begin = min(threadIdx.x * per, count);
  const uint64_t end = min(begin + per, count);
  unsigned long long sum = 0;
  for (uint64_t i = begin; i < end; ++i) sum += in[i];
  unsigned long long total;
  unsigned long long run = BlockExclusiveScan(sum, 0ull, SumOp(), scratch, &total);
  for (uint64_t i = begin; i < end; ++i) {
    out[i] = run;
    run += in[i];
  }
}

__device__ inline void OrBits(uint32_t* words, uint64_t bit, uint64_t value, uint32_t nbits) {
  if (nbits == 0) return;
  value &= (nbits >= 64) ? ~0ull : ((1ull << nbits) - 1);
  const uint64_t w = bit >> 5;
  const uint32_t s = static_cast<uint32_t>(bit & 31);
  const uint64_t shifted = value << s;  // nbits <= 32, so s + nbits <= 63
  if (static_cast<uint32_t>(shifted)) atomicOr(&words[w], static_cast<uint32_t>(shifted));
  if (static_cast<uint32_t>(shifted >> 32)) {
    atomicOr(&words[w + 1], static_cast<uint32_t>(shifted >> 32));
  }
}

__device__ inline void OrOnes(uint32_t* words, uint64_t bit, uint64_t count) {
  while (count) {
    const uint32_t room = 32 - static_cast<uint32_t>(bit & 31);
    const uint32_t take = count < room ? static_cast<uint32_t>(count) : room;
    OrBits(words, bit, take == 32 ? 0xFFFFFFFFull : ((1ull << take) - 1), take);
    bit += take;
    count -= take;
  }
}

// Writes every chunk's bits at its byte offset into the zeroed payload (words), LSB-first.
template <typename T>
__global__ void ChunkPackKernel(const T* data, Layout lay, Params p, const GroupRule* rules,
                                const Selection* bounds, uint32_t bounds_per_group,
                                const BlockMeta* meta, uint64_t total_chunks,
                                const ChunkInfo* chunks, const unsigned long long* offsets,
                                uint64_t capacity, uint32_t* words, uint32_t* status) {
  __shared__ unsigned long long sums[kThreads];
  __shared__ long long positions[kThreads];
  const LabelCode label_code = MakeLabelCode(p.num_labels);
  for (uint64_t cid = blockIdx.x; cid < total_chunks; cid += gridDim.x) {
    const ChunkInfo info = chunks[cid];
    if (info.count == 0) continue;  // uniform across the block
    if (offsets[cid] + info.bytes > capacity) {
      if (threadIdx.x == 0) RaiseStatus(status, kStatusInternal);
      continue;
    }
    const uint64_t g = cid / lay.chunks_per_group;
    const uint64_t start = (cid % lay.chunks_per_group) << lay.chunk_log2;
    const uint64_t end = min(start + (uint64_t{1} << lay.chunk_log2), lay.group_size);
    const GroupRule rule = rules[g];
    const Selection* own = bounds + g * bounds_per_group;
    const BlockMeta* group_meta = meta + g * p.num_labels;
    const uint32_t r = info.rice;
    uint64_t bit_base = offsets[cid] * 8;
    if (threadIdx.x == 0) OrBits(words, bit_base, r, 5);
    bit_base += 5;
    long long carry = -1;
    for (uint64_t tile = start; tile < end; tile += kTile) {
      ElementCode e[kItems];
      bool kept[kItems];
      long long my_last = -1;
      for (int it = 0; it < kItems; ++it) {
        const uint64_t j = tile + threadIdx.x * kItems + it;
        kept[it] =
            j < end && CodeElement(data, lay, p, rule, own, group_meta, g, j, true, &e[it]);
        if (kept[it]) my_last = static_cast<long long>(j - start);
      }
      long long tile_last;
      const long long prev = BlockExclusiveScan(my_last, carry, MaxOp(), positions, &tile_last);
      unsigned long long my_bits = 0;
      long long walk = prev;
      for (int it = 0; it < kItems; ++it) {
        if (!kept[it]) continue;
        const long long pos = static_cast<long long>(tile - start) + threadIdx.x * kItems + it;
        my_bits += ElementBits(static_cast<uint64_t>(pos - walk - 1), r,
                               LabelBits(label_code, e[it].label), e[it].width);
        walk = pos;
      }
      unsigned long long tile_bits;
      const unsigned long long my_offset =
          BlockExclusiveScan(my_bits, 0ull, SumOp(), sums, &tile_bits);
      uint64_t bit = bit_base + my_offset;
      walk = prev;
      for (int it = 0; it < kItems; ++it) {
        if (!kept[it]) continue;
        const long long pos = static_cast<long long>(tile - start) + threadIdx.x * kItems + it;
        const uint64_t gap = static_cast<uint64_t>(pos - walk - 1);
        walk = pos;
        const uint64_t quotient = gap >> r;
        OrOnes(words, bit, quotient);
        bit += quotient + 1;  // the stop bit is the zero already there
        OrBits(words, bit, gap, r);
        bit += r;
        const uint32_t label_bits = LabelBits(label_code, e[it].label);
        const uint64_t tail = LabelValue(label_code, e[it].label) |
                              (static_cast<uint64_t>(e[it].code) << label_bits);
        OrBits(words, bit, tail, label_bits + e[it].width);
        bit += label_bits + e[it].width;
      }
      bit_base += tile_bits;
      carry = tile_last > carry ? tile_last : carry;
    }
  }
}

}  // namespace slicer::cuda

#endif  // SLICER_CUDA_ENCODE_KERNELS_CUH_
