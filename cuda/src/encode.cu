// Encoder launchers: temp layout, the pass sequence per wave of groups, and the host or device
// assembly of the streams.
#include <cuda_runtime.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "crc_kernels.cuh"
#include "cuda_check.hpp"
#include "encode_kernels.cuh"
#include "launch.hpp"
#include "slicer/slicer_cuda.h"
#include "stream_host.hpp"

namespace slicer::cuda {

// Largest group the fused one-block-per-group kernel takes; larger groups run the multi-kernel
// passes. A variable so that the emulated tests can run both paths on the same inputs.
uint64_t small_group_limit = kSmallGroup;

namespace {

constexpr uint64_t kHistogramBudget = uint64_t{32} << 20;  // bytes of select histograms
constexpr uint64_t kMaxGridBlocks = 2048;                    // element-parallel blocks per wave
constexpr uint64_t kAlign = 256;

uint64_t AlignUp(uint64_t v) { return (v + kAlign - 1) / kAlign * kAlign; }
uint64_t CeilDiv(uint64_t a, uint64_t b) { return (a + b - 1) / b; }

// A batch of `items` streams that share one EncodePlan. Items are contiguous, or slices
// along an axis (inner != 0).
struct Batch {
  EncodePlan plan;
  uint64_t items = 1;
  uint64_t inner = 0;
  uint64_t axis_len = 1;
};

// Byte offsets of every region of the caller's temp buffer.
struct TempLayout {
  uint64_t groups, wave, bounds_per_group, total_chunks, meta_bound, segments;
  uint64_t rules, bounds, meta, max_key, min_key, ds, slots, hist, chunks, lengths, offsets,
      payload, status, stage, pieces, ranges, segment_crc, total;
};

uint64_t StreamMetaBound(const EncodePlan& plan) {
  const uint64_t per_group =
      20 + plan.num_labels + 4 * (plan.num_labels + 2) + 20 * plan.chunks_per_group;
  return HeaderBytes(plan).size() + plan.groups * per_group;
}

void MakeTempLayout(const Batch& batch, TempLayout* t) {
  const EncodePlan& plan = batch.plan;
  t->groups = plan.groups * batch.items;
  t->wave = std::min<uint64_t>(
      {t->groups, kHistogramBudget / (kSlotsPerRun * kBins * sizeof(uint32_t)), 65535});
  t->wave = std::max<uint64_t>(t->wave, 1);
  t->bounds_per_group = std::max<uint64_t>(plan.num_labels - 2, 1);
  t->total_chunks = t->groups * plan.chunks_per_group;
  t->meta_bound = StreamMetaBound(plan) * batch.items;
  const uint64_t stream_bound = StreamMetaBound(plan) + plan.payload_bound + 4;
  t->segments = CeilDiv(stream_bound, kCrcSegment) * batch.items;
  const uint64_t labels = uint64_t{plan.num_labels};
  uint64_t at = 0;
  auto take = [&at](uint64_t bytes) {
    const uint64_t where = at;
    at = AlignUp(at + bytes);
    return where;
  };
  t->rules = take(t->groups * sizeof(GroupRule));
  t->bounds = take(t->groups * t->bounds_per_group * sizeof(Selection));
  t->meta = take(t->groups * labels * sizeof(BlockMeta));
  t->max_key = take(t->groups * labels * sizeof(uint32_t));
  t->min_key = take(t->groups * labels * sizeof(uint32_t));
  t->ds = take(t->wave * labels * kMaxBits * sizeof(unsigned long long));
  t->slots = take(t->wave * kSlotsPerRun * sizeof(SelectSlot));
  t->hist = take(t->wave * kSlotsPerRun * kBins * sizeof(uint32_t));
  t->chunks = take(t->total_chunks * sizeof(ChunkInfo));
  t->lengths = take(t->total_chunks * sizeof(unsigned long long));
  t->offsets = take(t->total_chunks * sizeof(unsigned long long));
  t->payload = take(AlignUp(plan.payload_bound * batch.items + 8));
  t->status = take(sizeof(uint32_t));
  t->stage = take(t->meta_bound);
  t->pieces = take(batch.items * sizeof(StreamPiece));
  t->ranges = take((batch.items + 1) * sizeof(CrcRange));
  t->segment_crc = take(t->segments * sizeof(uint32_t));
  t->total = at;
}

template <typename T>
class Encoder {
 public:
  Encoder(const Batch& batch, const TempLayout& t, const T* data, uint8_t* temp,
          cudaStream_t stream)
      : batch_(batch), t_(t), data_(data), temp_(temp), stream_(stream) {
    const EncodePlan& plan = batch.plan;
    lay_.group_size = plan.group_size;
    lay_.groups_per_item = plan.groups;
    lay_.item_elements = plan.elements;
    lay_.inner = batch.inner;
    lay_.axis_len = batch.axis_len;
    lay_.chunks_per_group = plan.chunks_per_group;
    lay_.chunk_log2 = plan.params.chunk_log2;
    const slicer_params& sp = plan.params;
    p_ = Params{};
    p_.seed = sp.seed;
    p_.sparsity_ppb = sp.sparsity_ppb;
    p_.asym_ppb = sp.asym_ppb;
    p_.delta_micro = sp.delta_micro;
    p_.bits = plan.bits;
    p_.blocks_pos = sp.blocks_pos;
    p_.blocks_neg = sp.blocks_neg;
    p_.num_labels = plan.num_labels;
    p_.level_count = sp.level_count;
    std::memcpy(p_.levels, sp.levels, sizeof(p_.levels));
    rules_ = At<GroupRule>(t.rules);
    bounds_ = At<Selection>(t.bounds);
    meta_ = At<BlockMeta>(t.meta);
    max_key_ = At<uint32_t>(t.max_key);
    min_key_ = At<uint32_t>(t.min_key);
    ds_ = At<unsigned long long>(t.ds);
    slots_ = At<SelectSlot>(t.slots);
    hist_ = At<uint32_t>(t.hist);
    chunks_ = At<ChunkInfo>(t.chunks);
    lengths_ = At<unsigned long long>(t.lengths);
    offsets_ = At<unsigned long long>(t.offsets);
    words_ = At<uint32_t>(t.payload);
    status_ = At<uint32_t>(t.status);
  }

  // Runs every kernel up to the packed payload.
  int Run() {
    const uint64_t labels = p_.num_labels;
    SLICER_CUDA_TRY(cudaMemsetAsync(rules_, 0, t_.groups * sizeof(GroupRule), stream_));
    SLICER_CUDA_TRY(cudaMemsetAsync(max_key_, 0, t_.groups * labels * 4, stream_));
    SLICER_CUDA_TRY(cudaMemsetAsync(min_key_, 0xFF, t_.groups * labels * 4, stream_));
    SLICER_CUDA_TRY(cudaMemsetAsync(hist_, 0, t_.wave * kSlotsPerRun * kBins * 4, stream_));
    SLICER_CUDA_TRY(cudaMemsetAsync(status_, 0, 4, stream_));
    SLICER_CUDA_TRY(cudaMemsetAsync(words_, 0, t_.payload ? t_.status - t_.payload : 0, stream_));
    if (lay_.group_size <= small_group_limit) {
      const uint64_t blocks = std::min<uint64_t>(t_.groups, uint64_t{1} << 20);
      SLICER_LAUNCH(SmallGroupKernel<T>, blocks, kThreads, stream_, data_, lay_, p_, t_.groups,
                    rules_, bounds_, static_cast<uint32_t>(t_.bounds_per_group), meta_, status_);
      SLICER_CUDA_LAUNCHED();
    } else {
      for (uint64_t begin = 0; begin < t_.groups; begin += t_.wave) {
        SLICER_TRY_STATUS(RunWave(begin, std::min(t_.wave, t_.groups - begin)));
      }
    }
    const uint64_t chunk_grid = std::min<uint64_t>(t_.total_chunks, uint64_t{1} << 20);
    SLICER_LAUNCH(ChunkSizeKernel<T>, chunk_grid, kThreads, stream_, data_, lay_, p_, rules_,
                  bounds_, t_.bounds_per_group, meta_, t_.total_chunks, chunks_, lengths_);
    SLICER_CUDA_LAUNCHED();
    SLICER_LAUNCH(ExclusiveSumKernel, 1, kThreads, stream_, lengths_, offsets_, t_.total_chunks);
    SLICER_CUDA_LAUNCHED();
    SLICER_LAUNCH(ChunkPackKernel<T>, chunk_grid, kThreads, stream_, data_, lay_, p_, rules_,
                  bounds_, t_.bounds_per_group, meta_, t_.total_chunks, chunks_, offsets_,
                  batch_.plan.payload_bound * batch_.items, words_, status_);
    SLICER_CUDA_LAUNCHED();
    return SLICER_OK;
  }

 private:
  template <typename U>
  U* At(uint64_t offset) {
    return reinterpret_cast<U*>(temp_ + offset);
  }

  dim3 ElementGrid(uint64_t groups) const {
    const uint64_t per_group = CeilDiv(lay_.group_size, uint64_t{kThreads} * 16);
    const uint64_t cap = std::max<uint64_t>(kMaxGridBlocks / groups, 1);
    return dim3(static_cast<unsigned>(std::clamp<uint64_t>(per_group, 1, cap)),
                static_cast<unsigned>(groups));
  }
  static unsigned Threads1D(uint64_t n) { return static_cast<unsigned>(CeilDiv(n, 128)); }

  // Every digit pass of the selects in the slots, then their results into rules/bounds.
  int RunSelects(uint64_t begin, uint64_t groups) {
    const dim3 grid = ElementGrid(groups);
    const uint64_t count = groups * kSlotsPerRun;
    const auto key_histogram = SelectHistogramKernel<T, false>;
    const auto draw_histogram = SelectHistogramKernel<T, true>;
    for (uint32_t level = 0; level < 4; ++level) {
      SLICER_LAUNCH(key_histogram, grid, kThreads, stream_, data_, lay_, p_, begin, rules_, slots_,
                    hist_, level);
      SLICER_CUDA_LAUNCHED();
      SLICER_LAUNCH(SelectFindKernel, Threads1D(count), 128, stream_, slots_, hist_, count, false,
                    level, 3, status_);
      SLICER_CUDA_LAUNCHED();
    }
    for (uint32_t level = 0; level < 8; ++level) {
      SLICER_LAUNCH(draw_histogram, grid, kThreads, stream_, data_, lay_, p_, begin, rules_, slots_,
                    hist_, level);
      SLICER_CUDA_LAUNCHED();
      SLICER_LAUNCH(SelectFindKernel, Threads1D(count), 128, stream_, slots_, hist_, count, true,
                    level, 7, status_);
      SLICER_CUDA_LAUNCHED();
    }
    SLICER_LAUNCH(SelectCommitKernel, Threads1D(count), 128, stream_, slots_, begin, count, rules_,
                  bounds_, static_cast<uint32_t>(t_.bounds_per_group));
    SLICER_CUDA_LAUNCHED();
    return SLICER_OK;
  }

  int RunWave(uint64_t begin, uint64_t groups) {
    const dim3 grid = ElementGrid(groups);
    const uint32_t bpg = static_cast<uint32_t>(t_.bounds_per_group);
    SLICER_LAUNCH(ScanKernel<T>, grid, kThreads, stream_, data_, lay_, begin, rules_, status_);
    SLICER_CUDA_LAUNCHED();
    SLICER_LAUNCH(InitKeepKernel, Threads1D(groups), 128, stream_, p_, lay_, begin, groups, rules_,
                  slots_);
    SLICER_CUDA_LAUNCHED();
    SLICER_TRY_STATUS(RunSelects(begin, groups));
    if (p_.asym_ppb) {
      SLICER_LAUNCH(InitStrictKernel, Threads1D(groups), 128, stream_, p_, begin, groups, rules_);
      SLICER_CUDA_LAUNCHED();
      SLICER_LAUNCH(CountStrictKernel<T>, grid, kThreads, stream_, data_, lay_, begin, rules_);
      SLICER_CUDA_LAUNCHED();
      SLICER_LAUNCH(InitSecondKernel, Threads1D(groups), 128, stream_, begin, groups, rules_,
                    slots_);
      SLICER_CUDA_LAUNCHED();
      SLICER_TRY_STATUS(RunSelects(begin, groups));
    }
    SLICER_LAUNCH(CountPositiveKernel<T>, grid, kThreads, stream_, data_, lay_, p_, begin, rules_);
    SLICER_CUDA_LAUNCHED();
    const uint32_t total_bounds = p_.num_labels - 2;
    for (uint32_t first = 0; first < total_bounds; first += kSlotsPerRun) {
      SLICER_LAUNCH(InitBoundsKernel, Threads1D(groups * kSlotsPerRun), 128, stream_, p_, begin,
                    groups, rules_, slots_, first);
      SLICER_CUDA_LAUNCHED();
      SLICER_TRY_STATUS(RunSelects(begin, groups));
    }
    SLICER_LAUNCH(BlockStatsKernel<T>, grid, kThreads, stream_, data_, lay_, p_, begin, rules_,
                  bounds_, bpg, max_key_, min_key_);
    SLICER_CUDA_LAUNCHED();
    SLICER_LAUNCH(BlockMetaKernel, Threads1D(groups), 128, stream_, p_, begin, groups, rules_,
                  max_key_, min_key_, meta_);
    SLICER_CUDA_LAUNCHED();
    if (p_.level_count == 0 && p_.delta_micro != 0 && p_.bits > 1) {
      SLICER_CUDA_TRY(cudaMemsetAsync(
          ds_, 0, groups * p_.num_labels * kMaxBits * sizeof(unsigned long long), stream_));
      SLICER_LAUNCH(AbqKernel<T>, grid, kThreads, stream_, data_, lay_, p_, begin, rules_, bounds_,
                    bpg, meta_, ds_);
      SLICER_CUDA_LAUNCHED();
      SLICER_LAUNCH(AbqChooseKernel, Threads1D(groups * p_.num_labels), 128, stream_, p_, begin,
                    groups, ds_, meta_);
      SLICER_CUDA_LAUNCHED();
    }
    return SLICER_OK;
  }

  const Batch& batch_;
  const TempLayout& t_;
  const T* data_;
  uint8_t* temp_;
  cudaStream_t stream_;
  Layout lay_{};
  Params p_{};
  GroupRule* rules_;
  Selection* bounds_;
  BlockMeta* meta_;
  uint32_t* max_key_;
  uint32_t* min_key_;
  unsigned long long* ds_;
  SelectSlot* slots_;
  uint32_t* hist_;
  ChunkInfo* chunks_;
  unsigned long long* lengths_;
  unsigned long long* offsets_;
  uint32_t* words_;
  uint32_t* status_;
};

// The host copies of what the kernels decided, enough to write every table.
struct Results {
  std::vector<GroupRule> rules;
  std::vector<BlockMeta> meta;
  std::vector<ChunkInfo> chunks;
  uint32_t status = 0;
};

// Header and tables of item b, and the payload range it owns.
void ItemMetadata(const Batch& batch, const Results& r, uint64_t item,
                  const std::vector<uint8_t>& header, std::vector<uint8_t>* out,
                  uint64_t* payload_begin, uint64_t* payload_len,
                  const std::vector<uint64_t>& chunk_offsets) {
  const EncodePlan& plan = batch.plan;
  out->insert(out->end(), header.begin(), header.end());
  std::vector<BlockResult> blocks(plan.num_labels);
  std::vector<uint64_t> counts(plan.chunks_per_group);
  std::vector<uint64_t> bytes(plan.chunks_per_group);
  *payload_len = 0;
  for (uint64_t gi = 0; gi < plan.groups; ++gi) {
    const uint64_t g = item * plan.groups + gi;
    const GroupRule& rule = r.rules[g];
    for (uint32_t l = 0; l < plan.num_labels; ++l) {
      const BlockMeta& m = r.meta[g * plan.num_labels + l];
      blocks[l] = BlockResult{m.count, m.lo, m.hi, m.width};
    }
    for (uint64_t j = 0; j < plan.chunks_per_group; ++j) {
      const ChunkInfo& c = r.chunks[g * plan.chunks_per_group + j];
      counts[j] = c.count;
      bytes[j] = c.bytes;
      *payload_len += c.bytes;
    }
    AppendGroupTables(plan, rule.k, rule.n_pos, blocks.data(), counts.data(), bytes.data(), out);
  }
  *payload_begin = plan.chunks_per_group
                       ? chunk_offsets[item * plan.groups * plan.chunks_per_group]
                       : 0;
}

int CheckBatch(const int64_t* shape, uint32_t ndim, int dtype, const slicer_params* params,
               bool batched, uint32_t axis, Batch* batch) {
  if (!batched) return MakeEncodePlan(shape, ndim, dtype, params, &batch->plan);
  if (shape == nullptr || ndim == 0 || axis >= ndim) return SLICER_ERR_INVALID_ARGUMENT;
  std::vector<int64_t> item_shape;
  uint64_t inner = 1;
  uint64_t outer = 1;
  for (uint32_t d = 0; d < ndim; ++d) {
    if (d == axis) continue;
    item_shape.push_back(shape[d]);
    if (shape[d] < 0) return SLICER_ERR_INVALID_ARGUMENT;
    if (d > axis) inner *= static_cast<uint64_t>(shape[d]);
    if (d < axis) outer *= static_cast<uint64_t>(shape[d]);
  }
  if (shape[axis] < 0) return SLICER_ERR_INVALID_ARGUMENT;
  const int status =
      MakeEncodePlan(item_shape.data(), ndim - 1, dtype, params, &batch->plan);
  if (status != SLICER_OK) return status;
  batch->items = static_cast<uint64_t>(shape[axis]);
  batch->axis_len = batch->items;
  batch->inner = outer > 1 ? inner : 0;  // axis 0 (or all leading dims 1): items contiguous
  if (batch->inner == 0 && outer > 1) return SLICER_ERR_INTERNAL;
  return SLICER_OK;
}

// Streams of a batch whose items have no elements: tables only, no kernels.
void EmptyItemBytes(const EncodePlan& plan, std::vector<uint8_t>* out) {
  *out = HeaderBytes(plan);
  std::vector<BlockResult> blocks(plan.num_labels, BlockResult{0, 0.0f, 0.0f, 0});
  AppendGroupTables(plan, 0, 0, blocks.data(), nullptr, nullptr, out);
  const uint32_t crc = HostCrc32(out->data(), out->size());
  for (int b = 0; b < 4; ++b) out->push_back(static_cast<uint8_t>(crc >> (8 * b)));
}

template <typename T>
int EncodeTyped(const Batch& batch, const TempLayout& t, const void* data, uint8_t* temp,
                bool device_dst, uint8_t* dst, size_t capacity, size_t* offsets, size_t* sizes,
                cudaStream_t stream) {
  const EncodePlan& plan = batch.plan;
  Encoder<T> encoder(batch, t, static_cast<const T*>(data), temp, stream);
  const int launched = encoder.Run();
  if (launched != SLICER_OK) return launched;
  Results r;
  r.rules.resize(t.groups);
  r.meta.resize(t.groups * plan.num_labels);
  r.chunks.resize(t.total_chunks);
  std::vector<unsigned long long> offs(t.total_chunks);
  SLICER_CUDA_TRY(cudaMemcpyAsync(r.rules.data(), temp + t.rules, t.groups * sizeof(GroupRule),
                                  cudaMemcpyDeviceToHost, stream));
  SLICER_CUDA_TRY(cudaMemcpyAsync(r.meta.data(), temp + t.meta, r.meta.size() * sizeof(BlockMeta),
                                  cudaMemcpyDeviceToHost, stream));
  SLICER_CUDA_TRY(cudaMemcpyAsync(r.chunks.data(), temp + t.chunks,
                                  r.chunks.size() * sizeof(ChunkInfo), cudaMemcpyDeviceToHost,
                                  stream));
  SLICER_CUDA_TRY(cudaMemcpyAsync(offs.data(), temp + t.offsets, offs.size() * 8,
                                  cudaMemcpyDeviceToHost, stream));
  SLICER_CUDA_TRY(cudaMemcpyAsync(&r.status, temp + t.status, 4, cudaMemcpyDeviceToHost, stream));
  SLICER_CUDA_TRY(cudaStreamSynchronize(stream));
  if (r.status != 0) return static_cast<int>(r.status);

  const std::vector<uint64_t> chunk_offsets(offs.begin(), offs.end());
  const std::vector<uint8_t> header = HeaderBytes(plan);
  std::vector<uint8_t> meta;
  std::vector<StreamPiece> pieces(batch.items);
  uint64_t at = 0;
  uint64_t payload_total = 0;
  for (uint64_t b = 0; b < batch.items; ++b) {
    StreamPiece& piece = pieces[b];
    piece.meta_src = meta.size();
    uint64_t begin, len;
    ItemMetadata(batch, r, b, header, &meta, &begin, &len, chunk_offsets);
    piece.meta_len = meta.size() - piece.meta_src;
    piece.payload_src = begin;
    piece.payload_len = len;
    piece.dst = at;
    const uint64_t total = piece.meta_len + len + 4;
    if (at + total > capacity) return SLICER_ERR_BUFFER_TOO_SMALL;
    offsets[b] = at;
    sizes[b] = total;
    at += total;
    payload_total += len;
  }
  if (!device_dst) {
    std::vector<uint8_t> payload(payload_total);
    if (payload_total) {
      SLICER_CUDA_TRY(cudaMemcpyAsync(payload.data(), temp + t.payload, payload_total,
                                      cudaMemcpyDeviceToHost, stream));
      SLICER_CUDA_TRY(cudaStreamSynchronize(stream));
    }
    for (const StreamPiece& piece : pieces) {
      uint8_t* out = dst + piece.dst;
      std::memcpy(out, meta.data() + piece.meta_src, piece.meta_len);
      if (piece.payload_len) {
        std::memcpy(out + piece.meta_len, payload.data() + piece.payload_src, piece.payload_len);
      }
      const uint64_t len = piece.meta_len + piece.payload_len;
      const uint32_t crc = HostCrc32(out, len);
      for (int b = 0; b < 4; ++b) out[len + b] = static_cast<uint8_t>(crc >> (8 * b));
    }
    return SLICER_OK;
  }
  // Device output: stage the tables, assemble every stream, checksum on the device.
  if (meta.size() > t.meta_bound) return SLICER_ERR_INTERNAL;
  std::vector<CrcRange> ranges(batch.items + 1);
  uint64_t segments = 0;
  for (uint64_t b = 0; b < batch.items; ++b) {
    const uint64_t len = pieces[b].meta_len + pieces[b].payload_len;
    ranges[b] = CrcRange{pieces[b].dst, len, pieces[b].dst + len, segments};
    segments += CeilDiv(len, kCrcSegment);
  }
  ranges[batch.items] = CrcRange{0, 0, 0, segments};
  if (segments > t.segments) return SLICER_ERR_INTERNAL;
  SLICER_CUDA_TRY(cudaMemcpyAsync(temp + t.stage, meta.data(), meta.size(),
                                  cudaMemcpyHostToDevice, stream));
  SLICER_CUDA_TRY(cudaMemcpyAsync(temp + t.pieces, pieces.data(),
                                  pieces.size() * sizeof(StreamPiece), cudaMemcpyHostToDevice,
                                  stream));
  SLICER_CUDA_TRY(cudaMemcpyAsync(temp + t.ranges, ranges.data(),
                                  ranges.size() * sizeof(CrcRange), cudaMemcpyHostToDevice,
                                  stream));
  uint64_t longest = 0;
  for (const StreamPiece& piece : pieces) {
    longest = std::max<uint64_t>(longest, piece.meta_len + piece.payload_len);
  }
  const uint64_t copy_blocks = std::clamp<uint64_t>(CeilDiv(longest, 256 * 16), 1, 1024);
  const dim3 grid(static_cast<unsigned>(copy_blocks),
                  static_cast<unsigned>(std::min<uint64_t>(batch.items, 65535)));
  SLICER_LAUNCH(AssembleKernel, grid, 256, stream,
                reinterpret_cast<const StreamPiece*>(temp + t.pieces), batch.items,
                temp + t.stage, temp + t.payload, dst);
  SLICER_CUDA_LAUNCHED();
  const auto* dev_ranges = reinterpret_cast<const CrcRange*>(temp + t.ranges);
  auto* segment_crc = reinterpret_cast<uint32_t*>(temp + t.segment_crc);
  const unsigned segment_blocks = static_cast<unsigned>(CeilDiv(segments, kCrcThreads));
  SLICER_LAUNCH(CrcSegmentKernel, segment_blocks, kCrcThreads, stream, dev_ranges, batch.items, dst,
                segment_crc);
  SLICER_CUDA_LAUNCHED();
  SLICER_LAUNCH(CrcCombineKernel, static_cast<unsigned>(batch.items), kCrcThreads, stream,
                dev_ranges, segment_crc, dst);
  SLICER_CUDA_LAUNCHED();
  return SLICER_OK;
}

int EncodeAny(const void* data, int dtype, const int64_t* shape, uint32_t ndim, bool batched,
              uint32_t axis, const slicer_params* params, void* temp, size_t temp_bytes,
              bool device_dst, void* dst, size_t capacity, size_t* offsets, size_t* sizes,
              void* stream_ptr) {
  if (dst == nullptr || offsets == nullptr || sizes == nullptr) {
    return SLICER_ERR_INVALID_ARGUMENT;
  }
  Batch batch;
  int status = CheckBatch(shape, ndim, dtype, params, batched, axis, &batch);
  if (status != SLICER_OK) return status;
  if (batch.items == 0) return SLICER_OK;
  cudaStream_t stream = static_cast<cudaStream_t>(stream_ptr);
  if (batch.plan.elements == 0) {  // no element to select: tables only
    std::vector<uint8_t> one;
    EmptyItemBytes(batch.plan, &one);
    if (one.size() * batch.items > capacity) return SLICER_ERR_BUFFER_TOO_SMALL;
    for (uint64_t b = 0; b < batch.items; ++b) {
      offsets[b] = b * one.size();
      sizes[b] = one.size();
      uint8_t* out = static_cast<uint8_t*>(dst) + offsets[b];
      if (device_dst) {
        SLICER_CUDA_TRY(cudaMemcpyAsync(out, one.data(), one.size(), cudaMemcpyHostToDevice,
                                        stream));
      } else {
        std::memcpy(out, one.data(), one.size());
      }
    }
    return SLICER_OK;
  }
  if (data == nullptr || temp == nullptr) return SLICER_ERR_INVALID_ARGUMENT;
  TempLayout t;
  MakeTempLayout(batch, &t);
  if (temp_bytes < t.total) return SLICER_ERR_TEMP_TOO_SMALL;
  auto* temp8 = static_cast<uint8_t*>(temp);
  auto* dst8 = static_cast<uint8_t*>(dst);
  switch (dtype) {
    case SLICER_FLOAT32:
      return EncodeTyped<float>(batch, t, data, temp8, device_dst, dst8, capacity, offsets, sizes,
                                stream);
    case SLICER_FLOAT16:
      return EncodeTyped<__half>(batch, t, data, temp8, device_dst, dst8, capacity, offsets,
                                 sizes, stream);
    default:
      return EncodeTyped<__nv_bfloat16>(batch, t, data, temp8, device_dst, dst8, capacity,
                                        offsets, sizes, stream);
  }
}

int TempSize(const int64_t* shape, uint32_t ndim, bool batched, uint32_t axis, int dtype,
             const slicer_params* params, size_t* temp_bytes) {
  if (temp_bytes == nullptr) return SLICER_ERR_INVALID_ARGUMENT;
  Batch batch;
  const int status = CheckBatch(shape, ndim, dtype, params, batched, axis, &batch);
  if (status != SLICER_OK) return status;
  if (batch.items == 0 || batch.plan.elements == 0) {
    *temp_bytes = 0;
    return SLICER_OK;
  }
  TempLayout t;
  MakeTempLayout(batch, &t);
  *temp_bytes = t.total;
  return SLICER_OK;
}

}  // namespace
}  // namespace slicer::cuda

extern "C" {

int slicer_cuda_encode_temp_size(const int64_t* shape, uint32_t ndim, int dtype,
                                 const slicer_params* params, size_t* temp_bytes) {
  return slicer::cuda::TempSize(shape, ndim, false, 0, dtype, params, temp_bytes);
}

int slicer_cuda_encode(const void* data_device, int dtype, const int64_t* shape, uint32_t ndim,
                       const slicer_params* params, void* temp, size_t temp_bytes,
                       void* dst_device, size_t dst_capacity, size_t* written_host,
                       void* stream) {
  size_t offset = 0;
  return slicer::cuda::EncodeAny(data_device, dtype, shape, ndim, false, 0, params, temp,
                                 temp_bytes, true, dst_device, dst_capacity, &offset,
                                 written_host, stream);
}

int slicer_cuda_encode_host(const void* data_device, int dtype, const int64_t* shape,
                            uint32_t ndim, const slicer_params* params, void* temp,
                            size_t temp_bytes, void* dst_host, size_t dst_capacity,
                            size_t* written_host, void* stream) {
  size_t offset = 0;
  return slicer::cuda::EncodeAny(data_device, dtype, shape, ndim, false, 0, params, temp,
                                 temp_bytes, false, dst_host, dst_capacity, &offset,
                                 written_host, stream);
}

int slicer_cuda_encode_batch_temp_size(const int64_t* shape, uint32_t ndim, uint32_t axis,
                                       int dtype, const slicer_params* params,
                                       size_t* temp_bytes) {
  return slicer::cuda::TempSize(shape, ndim, true, axis, dtype, params, temp_bytes);
}

int slicer_cuda_encode_batch_host(const void* data_device, int dtype, const int64_t* shape,
                                  uint32_t ndim, uint32_t axis, const slicer_params* params,
                                  void* temp, size_t temp_bytes, void* dst_host,
                                  size_t dst_capacity, size_t* offsets_host, size_t* sizes_host,
                                  void* stream) {
  return slicer::cuda::EncodeAny(data_device, dtype, shape, ndim, true, axis, params, temp,
                                 temp_bytes, false, dst_host, dst_capacity, offsets_host,
                                 sizes_host, stream);
}

int slicer_cuda_encode_batch(const void* data_device, int dtype, const int64_t* shape,
                             uint32_t ndim, uint32_t axis, const slicer_params* params,
                             void* temp, size_t temp_bytes, void* dst_device,
                             size_t dst_capacity, size_t* offsets_host, size_t* sizes_host,
                             void* stream) {
  return slicer::cuda::EncodeAny(data_device, dtype, shape, ndim, true, axis, params, temp,
                                 temp_bytes, true, dst_device, dst_capacity, offsets_host,
                                 sizes_host, stream);
}

}  // extern "C"
