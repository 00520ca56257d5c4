// The context half of the C ABI (slicer_context_*, include/slicer/slicer.h).
#include <mutex>
#include <new>
#include <vector>

#include "codec.hpp"
#include "context.hpp"
#include "context_handle.hpp"
#include "encoder.hpp"
#include "slicer/slicer.h"

namespace {

using slicer::internal::CodecParams;
using slicer::internal::StatusError;

using slicer::internal::GuardStatus;

// Validated parameters with the call's thread count on this context.
slicer_status ContextParams(const slicer_context* context, const slicer_params* params,
                            CodecParams* codec) {
  const slicer_status status = slicer::internal::ValidateParams(params, codec);
  if (status != SLICER_OK) return status;
  codec->threads = slicer::internal::CallThreads(context->context, params->threads);
  return SLICER_OK;
}

}  // namespace

extern "C" {

slicer_context* slicer_context_create(uint32_t threads) {
  try {
    return new slicer_context(threads);
  } catch (...) {
    return nullptr;
  }
}

void slicer_context_destroy(slicer_context* context) { delete context; }

uint32_t slicer_context_threads(const slicer_context* context) {
  return context == nullptr ? 0 : context->context.threads();
}

int slicer_context_encode(slicer_context* context, const void* data, int dtype,
                          const int64_t* shape, uint32_t ndim, const slicer_params* params,
                          const uint8_t** stream, size_t* size) {
  return GuardStatus([&]() -> int {
    if (context == nullptr || stream == nullptr || size == nullptr) {
      return SLICER_ERR_INVALID_ARGUMENT;
    }
    *stream = nullptr;
    *size = 0;
    CodecParams codec;
    const slicer_status status = ContextParams(context, params, &codec);
    if (status != SLICER_OK) return status;
    const std::vector<uint8_t>& out =
        slicer::internal::EncodeStream(&context->context, data, dtype, shape, ndim, codec,
                                       slicer::internal::SelectionPath::kRadix);
    *stream = out.data();
    *size = out.size();
    return SLICER_OK;
  });
}

int slicer_context_encode_batch(slicer_context* context, const void* data, int dtype,
                                const int64_t* shape, uint32_t ndim, const slicer_params* params,
                                const uint8_t** streams, size_t* sizes) {
  return GuardStatus([&]() -> int {
    if (context == nullptr || shape == nullptr || ndim == 0) return SLICER_ERR_INVALID_ARGUMENT;
    if (shape[0] > 0 && (streams == nullptr || sizes == nullptr)) {
      return SLICER_ERR_INVALID_ARGUMENT;
    }
    CodecParams codec;
    const slicer_status status = ContextParams(context, params, &codec);
    if (status != SLICER_OK) return status;
    slicer::internal::EncodeBatch(&context->context, data, dtype, shape, ndim, codec, streams,
                                  sizes);
    return SLICER_OK;
  });
}

int slicer_context_decode(slicer_context* context, const void* src, size_t size,
                          uint64_t max_elements, void* dst, size_t dst_bytes, uint32_t threads) {
  if (context == nullptr) return SLICER_ERR_INVALID_ARGUMENT;
  int status = SLICER_ERR_INTERNAL;
  const int guarded = GuardStatus([&]() -> int {
    std::lock_guard<std::mutex> lock(context->context.call_mutex());
    slicer::internal::PoolScope scope(context->context.pool());
    status = slicer_decode(src, size, max_elements, dst, dst_bytes,
                           slicer::internal::CallThreads(context->context, threads));
    return SLICER_OK;
  });
  return guarded != SLICER_OK ? guarded : status;
}

}  // extern "C"
