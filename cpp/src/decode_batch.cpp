// Batch decode (slicer_decode_batch, slicer_context_decode_batch) and the context's allocating
// decode (slicer_context_decode_alloc): C ABI of include/slicer/slicer.h.
//
// A batch decodes B streams that must all hold the same dtype and shape straight into the rows
// of one caller buffer. Each item goes through the ordinary per-stream decoder
// (slicer_decode_alloc, formats 1 and 2): its allocator callback checks the validated header
// against the batch's dtype and shape and hands out the item's row, so no second parser exists
// and nothing is written before the item's header and tables are validated. Items run in
// parallel on the pool (the shared one, or a context's), one item per thread at a time, taken
// from a shared counter so that uneven stream sizes balance. A failing item gets its own status
// and a zeroed row; the other items are unaffected.
#include <atomic>
#include <cstring>
#include <mutex>

#include "codec.hpp"
#include "context.hpp"
#include "parallel.hpp"
#include "pool.hpp"
#include "slicer/slicer.h"

struct slicer_context {
  explicit slicer_context(unsigned threads) : context(threads) {}
  slicer::internal::Context context;
};

namespace {

using slicer::internal::GuardStatus;

// The batch's item description, checked once per call.
struct BatchShape {
  int dtype = 0;
  uint32_t ndim = 0;
  const int64_t* shape = nullptr;
  size_t item_bytes = 0;
};

// Allocator of one item: its row when the validated header matches the batch, else NULL with
// `mismatch` set (the item's status becomes SLICER_ERR_INVALID_ARGUMENT).
struct ItemTarget {
  const BatchShape* batch;
  uint8_t* row;
  bool mismatch = false;
};

void* ItemRow(void* ctx, const slicer_header* header, size_t bytes) {
  auto* target = static_cast<ItemTarget*>(ctx);
  const BatchShape& batch = *target->batch;
  bool same = static_cast<int>(header->dtype) == batch.dtype && header->ndim == batch.ndim &&
              bytes == batch.item_bytes;
  for (uint32_t d = 0; same && d < batch.ndim; ++d) same = header->shape[d] == batch.shape[d];
  if (!same) {
    target->mismatch = true;
    return nullptr;
  }
  // A zero-byte item still needs a non-NULL pointer (the decoder treats NULL as a failure).
  return target->row != nullptr ? target->row : static_cast<void*>(target);
}

int DecodeItem(const BatchShape& batch, const void* src, size_t size, uint64_t max_elements,
               uint8_t* row, uint32_t threads) {
  ItemTarget target{&batch, row};
  int status = SLICER_ERR_INVALID_ARGUMENT;
  if (src != nullptr || size == 0) {
    status = slicer_decode_alloc(src, size, max_elements, threads, &ItemRow, &target, nullptr);
  }
  if (target.mismatch) status = SLICER_ERR_INVALID_ARGUMENT;
  if (status != SLICER_OK && batch.item_bytes > 0) std::memset(row, 0, batch.item_bytes);
  return status;
}

// Argument checks of a batch call; on success *batch describes one item.
int CheckBatch(const void* const* srcs, const size_t* sizes, size_t count, int dtype,
               const int64_t* shape, uint32_t ndim, void* dst, size_t dst_bytes,
               const int* statuses, BatchShape* batch) {
  if (count > 0 && (srcs == nullptr || sizes == nullptr || statuses == nullptr)) {
    return SLICER_ERR_INVALID_ARGUMENT;
  }
  if (ndim > SLICER_MAX_NDIM || (ndim > 0 && shape == nullptr)) return SLICER_ERR_INVALID_ARGUMENT;
  const size_t itemsize = slicer_dtype_size(dtype);
  if (itemsize == 0) return SLICER_ERR_UNSUPPORTED_DTYPE;
  unsigned __int128 bytes = itemsize;
  for (uint32_t d = 0; d < ndim; ++d) {
    if (shape[d] < 0) return SLICER_ERR_INVALID_ARGUMENT;
    bytes *= static_cast<uint64_t>(shape[d]);
    if (bytes > SIZE_MAX) return SLICER_ERR_INVALID_ARGUMENT;
  }
  const unsigned __int128 total = bytes * count;
  if (total > dst_bytes) return SLICER_ERR_BUFFER_TOO_SMALL;
  if (total > 0 && dst == nullptr) return SLICER_ERR_INVALID_ARGUMENT;
  batch->dtype = dtype;
  batch->ndim = ndim;
  batch->shape = shape;
  batch->item_bytes = static_cast<size_t>(bytes);
  return SLICER_OK;
}

// Runs the items on the current pool with `threads` threads (>= 1).
void DecodeItems(const BatchShape& batch, const void* const* srcs, const size_t* sizes,
                 size_t count, uint64_t max_elements, void* dst, int* statuses, unsigned threads) {
  uint8_t* base = static_cast<uint8_t*>(dst);
  const auto row = [&](size_t i) {
    return base == nullptr ? nullptr : base + i * batch.item_bytes;
  };
  const unsigned parts = slicer::internal::PartCount(count, threads, 1);
  if (parts <= 1) {
    // One part: each item may use every thread of the call.
    for (size_t i = 0; i < count; ++i) {
      statuses[i] = DecodeItem(batch, srcs[i], sizes[i], max_elements, row(i), threads);
    }
    return;
  }
  std::atomic<size_t> next{0};
  slicer::internal::RunParts(parts, parts, [&](unsigned, uint64_t, uint64_t) {
    for (size_t i = next.fetch_add(1); i < count; i = next.fetch_add(1)) {
      statuses[i] = DecodeItem(batch, srcs[i], sizes[i], max_elements, row(i), 1);
    }
  });
}

size_t CountFailed(const int* statuses, size_t count) {
  size_t failed = 0;
  for (size_t i = 0; i < count; ++i) failed += statuses[i] != SLICER_OK;
  return failed;
}

}  // namespace

extern "C" {

int slicer_decode_batch(const void* const* srcs, const size_t* sizes, size_t count,
                        uint64_t max_elements, int dtype, const int64_t* shape, uint32_t ndim,
                        void* dst, size_t dst_bytes, int* statuses, size_t* num_failed,
                        uint32_t threads) {
  if (num_failed != nullptr) *num_failed = 0;
  return GuardStatus([&]() -> int {
    BatchShape batch;
    const int status =
        CheckBatch(srcs, sizes, count, dtype, shape, ndim, dst, dst_bytes, statuses, &batch);
    if (status != SLICER_OK) return status;
    DecodeItems(batch, srcs, sizes, count, max_elements, dst, statuses,
                slicer::internal::ResolveThreads(threads));
    if (num_failed != nullptr) *num_failed = CountFailed(statuses, count);
    return SLICER_OK;
  });
}

int slicer_context_decode_batch(slicer_context* context, const void* const* srcs,
                                const size_t* sizes, size_t count, uint64_t max_elements, int dtype,
                                const int64_t* shape, uint32_t ndim, void* dst, size_t dst_bytes,
                                int* statuses, size_t* num_failed, uint32_t threads) {
  if (num_failed != nullptr) *num_failed = 0;
  if (context == nullptr) return SLICER_ERR_INVALID_ARGUMENT;
  return GuardStatus([&]() -> int {
    BatchShape batch;
    const int status =
        CheckBatch(srcs, sizes, count, dtype, shape, ndim, dst, dst_bytes, statuses, &batch);
    if (status != SLICER_OK) return status;
    std::lock_guard<std::mutex> lock(context->context.call_mutex());
    slicer::internal::PoolScope scope(context->context.pool());
    DecodeItems(batch, srcs, sizes, count, max_elements, dst, statuses,
                slicer::internal::CallThreads(context->context, threads));
    if (num_failed != nullptr) *num_failed = CountFailed(statuses, count);
    return SLICER_OK;
  });
}

int slicer_context_decode_alloc(slicer_context* context, const void* src, size_t size,
                                uint64_t max_elements, uint32_t threads, slicer_alloc_fn alloc,
                                void* ctx, slicer_header* header) {
  if (context == nullptr) return SLICER_ERR_INVALID_ARGUMENT;
  int status = SLICER_ERR_INTERNAL;
  const int guarded = GuardStatus([&]() -> int {
    std::lock_guard<std::mutex> lock(context->context.call_mutex());
    slicer::internal::PoolScope scope(context->context.pool());
    status = slicer_decode_alloc(src, size, max_elements,
                                 slicer::internal::CallThreads(context->context, threads), alloc,
                                 ctx, header);
    return SLICER_OK;
  });
  return guarded != SLICER_OK ? guarded : status;
}

}  // extern "C"
