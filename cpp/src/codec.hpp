// Internal model of format 1 shared by the encoder, decoder, bound and tests.
#ifndef SLICER_SRC_CODEC_HPP_
#define SLICER_SRC_CODEC_HPP_

#include <cstdint>
#include <memory>
#include <new>
#include <stdexcept>
#include <type_traits>
#include <utility>
#include <vector>

#include "slicer/slicer.h"

namespace slicer::internal {

struct Workspace;  // context.hpp: scratch of one thread of a call

constexpr uint64_t kPpb = 1000000000ull;
constexpr uint8_t kMagic[4] = {0x53, 0x4C, 0x43, 0x52};  // "SLCR"
constexpr uint8_t kModeSparseTopK = 0;
constexpr uint8_t kFlagMultiLevel = 1;

// A failure carrying a C status code; caught at the C ABI boundary.
class StatusError : public std::runtime_error {
 public:
  StatusError(slicer_status status, const char* what) : std::runtime_error(what), status_(status) {}
  slicer_status status() const { return status_; }

 private:
  slicer_status status_;
};

// Runs fn() (returning a status) and turns every exception into a status: nothing is thrown
// across the C ABI.
template <class Fn>
int GuardStatus(Fn&& fn) {
  try {
    return fn();
  } catch (const StatusError& error) {
    return error.status();
  } catch (const std::bad_alloc&) {
    return SLICER_ERR_OUT_OF_MEMORY;
  } catch (...) {
    return SLICER_ERR_INTERNAL;
  }
}

// slicer_params after validation (§2), in the form the codec uses.
struct CodecParams {
  uint32_t sparsity_ppb = 0;
  uint32_t asym_ppb = 0;
  uint32_t delta_micro = 0;
  uint64_t seed = 0;
  unsigned bits = 8;  // q_bit: the largest width (the largest level in multi-level mode)
  unsigned blocks_pos = 3;
  unsigned blocks_neg = 3;
  bool multi_level = false;
  uint8_t levels[SLICER_MAX_BLOCKS] = {};
  unsigned chunk_log2 = 14;
  bool group_rows = false;
  unsigned threads = 1;  // resolved: >= 1

  unsigned labels() const { return blocks_pos + blocks_neg; }
};

slicer_status ValidateParams(const slicer_params* params, CodecParams* out);

// How a tensor is cut into groups and chunks (§3, §6).
struct Geometry {
  uint64_t num_elements = 0;
  uint64_t group_count = 1;
  uint64_t group_size = 0;
  uint64_t chunks_per_group = 0;
};

// Validates the shape (dims >= 0, element count < 2^63) and fills the geometry.
slicer_status ComputeGeometry(const int64_t* shape, uint32_t ndim, bool group_rows,
                              unsigned chunk_log2, Geometry* geometry);

// floor(n * (10^9 - s_ppb) / 10^9), exact (§4.1).
uint64_t KeepLimit(uint64_t n, uint32_t sparsity_ppb);

// Size of block m when n elements are cut into M equal-cardinality blocks (§5.1).
uint64_t BlockCount(uint64_t n, unsigned blocks, unsigned m);

// An allocator whose value-initialization leaves trivial elements uninitialized, so that
// resize() of a buffer that is about to be overwritten does not clear it first.
template <class T>
struct UninitializedAllocator : std::allocator<T> {
  template <class U>
  struct rebind {
    using other = UninitializedAllocator<U>;
  };
  UninitializedAllocator() = default;
  template <class U>
  UninitializedAllocator(const UninitializedAllocator<U>&) noexcept {}
  template <class U>
  void construct(U* p) noexcept(std::is_nothrow_default_constructible<U>::value) {
    ::new (static_cast<void*>(p)) U;
  }
  template <class U, class... Args>
  void construct(U* p, Args&&... args) {
    ::new (static_cast<void*>(p)) U(std::forward<Args>(args)...);
  }
};

// A kept element: group-relative position, its binary32 value, its label and (once
// FinishBlocks ran) its quantization code.
struct KeptElement {
  uint64_t position;
  float value;
  uint8_t label;
  uint16_t code;
};

// One block of a group: count, width and the quantization range [lo, hi] of §5.2.
struct Block {
  uint64_t count = 0;
  unsigned width = 0;
  float lo = 0.0f;
  float hi = 0.0f;
};

// Kept lists grow without zero-filling: every entry is written before it is read.
using KeptList = std::vector<KeptElement, UninitializedAllocator<KeptElement>>;

struct GroupCode {
  uint64_t k = 0;
  uint64_t n_pos = 0;
  std::vector<Block> blocks;  // one per label
  KeptList kept;              // ascending position
  // Magnitude keys of the largest and smallest kept element of every non-empty block, when
  // the selection already found them (ranges_known, reset by FinishBlocks); FinishBlocks
  // otherwise finds them in a pass over the kept list.
  bool ranges_known = false;
  // Labels, block table and codes already final (FinishSmallGroup); FinishBlocks then only
  // resets it.
  bool finished = false;
  uint32_t min_key[2 * SLICER_MAX_BLOCKS];
  uint32_t max_key[2 * SLICER_MAX_BLOCKS];
};

// ATKF + MS (§4, §5.1): fills k, n_pos, kept (with labels) and block counts. `x` holds the
// group's n elements; `base` is the global index of its first element. Throws
// StatusError(SLICER_ERR_NONFINITE_INPUT) on NaN or infinity.
void SelectGroup(const float* x, uint64_t n, uint64_t base, const CodecParams& params,
                 unsigned threads, Workspace* workspace, GroupCode* group);

// SelectGroup for float16 / bfloat16 input read in place (the group's n elements at `bytes`),
// without widening the whole group first. Only the one-pass sampled selection (lambda = 0,
// large groups) runs this way; returns false, having selected nothing, when it does not
// apply or comes back short (the caller then widens the input and calls SelectGroup).
bool SelectGroup16(const uint8_t* bytes, int dtype, uint64_t n, uint64_t base,
                   const CodecParams& params, unsigned threads, Workspace* workspace,
                   GroupCode* group);

// Fills group->blocks from the labels and checks every count against §5.1.
void CountBlocks(const CodecParams& params, GroupCode* group, unsigned threads = 1);

// The same selection by a full sort in P order: slow, literal, used to check SelectGroup.
void SelectGroupBySort(const float* x, uint64_t n, uint64_t base, const CodecParams& params,
                       GroupCode* group);

void FinishBlocks(const CodecParams& params, unsigned threads, Workspace* workspace,
                  GroupCode* group);

// Labels (§5.1), block table, ABQ widths and codes (§5.2-5.4) of a small group in one go, with
// the results of LabelBlocks + CountBlocks + FinishBlocks: for kept lists of at most
// kSmallFinishMax elements per sign whose magnitudes are all distinct within each sign (no
// draws needed). Returns false, leaving the codes and block table unset, otherwise.
constexpr uint64_t kSmallFinishMax = 96;
bool FinishSmallGroup(const CodecParams& params, GroupCode* group);

// Ranges (chain, §5.2), widths (§5.2, §5.4) and the code of every kept element.

using ByteBuffer = std::vector<uint8_t, UninitializedAllocator<uint8_t>>;

// Appends the payload of one chunk (§6.1) to `out`; kept[0..count) are its elements with
// chunk-relative positions position - chunk_start.
void EncodeChunk(const KeptElement* kept, uint64_t count, uint64_t chunk_start,
                 const GroupCode& group, unsigned num_labels, unsigned chunk_log2, ByteBuffer* out);

}  // namespace slicer::internal

#include "quantize_inl.hpp"

#endif  // SLICER_SRC_CODEC_HPP_
