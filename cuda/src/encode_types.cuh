// Plain data shared by the encoder launchers and kernels: the problem layout, the per-group
// selection rules and the radix-select slots.
#ifndef SLICER_CUDA_ENCODE_TYPES_CUH_
#define SLICER_CUDA_ENCODE_TYPES_CUH_

#include <cstdint>

namespace slicer::cuda {

constexpr int kThreads = 256;        // threads per block of every element-parallel kernel
constexpr int kRadixBits = 8;        // digit width of the radix selects
constexpr int kBins = 1 << kRadixBits;
constexpr int kSlotsPerRun = 8;      // radix selects run side by side in one pass
constexpr int kMaxLabels = 128;      // 64 blocks per sign
constexpr int kMaxBits = 16;
constexpr uint64_t kAllDraws = ~0ull;

// Where the elements live. Group g (over all items) is item g / groups_per_item; element j of
// it is item element f = (g % groups_per_item) * group_size + j, whose draw index is f (the
// index is global within the item's own tensor, §3). Items are contiguous (inner == 0) or are
// the slices along an axis of a C-contiguous batch: f -> (f / inner, f % inner).
struct Layout {
  uint64_t group_size;
  uint64_t groups_per_item;
  uint64_t item_elements;
  uint64_t inner;     // 0: items contiguous; else elements after the batch axis
  uint64_t axis_len;  // items along the batch axis (used when inner != 0)
  uint64_t chunks_per_group;
  uint32_t chunk_log2;

  __host__ __device__ uint64_t ItemIndex(uint64_t g, uint64_t j) const {
    return (g % groups_per_item) * group_size + j;
  }
  __host__ __device__ uint64_t Address(uint64_t g, uint64_t f) const {
    const uint64_t item = g / groups_per_item;
    if (inner == 0) return item * item_elements + f;
    return (f / inner) * (axis_len * inner) + item * inner + f % inner;
  }
};

// The integer parameters the kernels need (§2), by value in every launch.
struct Params {
  uint64_t seed;
  uint32_t sparsity_ppb;
  uint32_t asym_ppb;
  uint32_t delta_micro;
  uint32_t bits;        // q_bit (largest level in multi-level mode)
  uint32_t blocks_pos;
  uint32_t blocks_neg;
  uint32_t num_labels;
  uint32_t level_count;  // 0: ABQ
  uint8_t levels[64];
};

// The first r elements of a set in P order: key > tau, or key == tau and draw <= dstar.
struct Selection {
  uint32_t tau;
  uint32_t empty;  // 1: selects nothing (r = 0)
  uint64_t dstar;
};

enum RuleMode : uint32_t {
  kKeepSelected = 0,  // lambda = 0: K = first k nonzero elements in P order
  kKeepTrim = 1,      // lambda > 0, |S| >= k: K = first k of S
  kKeepFill = 2       // lambda > 0, |S| < k: K = S + first (k - |S|) of the rest
};

struct GroupRule {
  uint64_t nnz;
  uint64_t k;
  uint64_t strict_count;  // |S| (lambda > 0)
  uint64_t n_pos;
  double t_pos;
  double t_neg;
  uint32_t mode;
  uint32_t pad;
  Selection a;  // over nonzero elements, r = k (gives tau)
  Selection b;  // over S (trim) or the rest (fill)
};

// Which set a radix select ranks.
enum SetKind : uint32_t { kSetNonzero = 0, kSetStrict = 1, kSetRest = 2, kSetKeptPos = 3,
                          kSetKeptNeg = 4 };
enum SlotPhase : uint32_t { kPhaseIdle = 0, kPhaseKey = 1, kPhaseDraw = 2, kPhaseDone = 3 };

// One radix select in flight: the rank still wanted inside the current digit prefix.
struct SelectSlot {
  uint64_t remaining;
  uint64_t prefix;
  uint32_t tau;
  uint32_t set;
  uint32_t phase;
  uint32_t target;  // 0: rule.a, 1: rule.b, 2 + i: boundary i of the group
  uint32_t empty;
  uint32_t pad;
};

// Per (group, label) block description after the stats pass.
struct BlockMeta {
  uint64_t count;
  float lo;
  float hi;
  uint32_t width;
  uint32_t abq;  // 1: width still to be chosen by the DS pass
};

}  // namespace slicer::cuda

#endif  // SLICER_CUDA_ENCODE_TYPES_CUH_
