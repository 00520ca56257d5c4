// C ABI of format 2, mode "dense" (include/slicer/slicer.h).
#include <cstring>
#include <mutex>
#include <new>
#include <vector>

#include "codec.hpp"
#include "context.hpp"
#include "context_handle.hpp"
#include "dense/dense.hpp"
#include "dense/dense_budget.hpp"
#include "dense/dense_internal.hpp"
#include "dense/trellis.hpp"
#include "format/class_map.hpp"
#include "varint.hpp"

namespace {

using slicer::internal::GuardStatus;

bool IsDenseDtype(int dtype) { return dtype >= SLICER_FLOAT32 && dtype <= SLICER_FLOAT64; }

// Encodes on `context`: one call at a time on it, its parts on its pool, the stream in its
// scratch (valid until the context's next call). The caller holds no lock.
slicer_status EncodeOn(slicer::internal::Context& context, const void* data, int dtype,
                       const int64_t* shape, uint32_t ndim, const slicer_dense_params* params,
                       const std::vector<uint8_t>** stream, double* sse) {
  if (!IsDenseDtype(dtype)) return SLICER_ERR_UNSUPPORTED_DTYPE;
  slicer_status st = slicer::dense::CheckParams(params);
  if (st == SLICER_OK) st = slicer::dense::trellis::CheckParams(params);
  if (st != SLICER_OK) return st;
  std::lock_guard<std::mutex> lock(context.call_mutex());
  slicer::internal::PoolScope scope(context.pool());
  slicer_dense_params call = *params;
  call.threads = static_cast<uint16_t>(slicer::internal::CallThreads(context, params->threads));
  std::vector<uint8_t>& out = context.workspace(0).encode.stream;
  if (call.trellis) {  // mode 3 (§21)
    slicer::dense::trellis::Encode(data, dtype, shape, ndim, call, &out, sse);
  } else {
    slicer::dense::EncodeDense(data, dtype, shape, ndim, call, &out, sse);
  }
  context.TrimScratch(true);  // one huge call does not pin its scratch; the stream stays
  *stream = &out;
  return SLICER_OK;
}

int EncodeInto(const void* data, int dtype, const int64_t* shape, uint32_t ndim,
               const slicer_dense_params* params, void* dst, size_t dst_capacity, size_t* written,
               double* sse) {
  return GuardStatus([&]() -> int {
    if (written == nullptr || (dst == nullptr && dst_capacity > 0)) {
      return SLICER_ERR_INVALID_ARGUMENT;
    }
    *written = 0;
    // A context from the free list, as slicer_encode: no thread-local scratch.
    slicer::internal::LeasedContext lease;
    const std::vector<uint8_t>* stream = nullptr;
    const slicer_status st = EncodeOn(lease.get(), data, dtype, shape, ndim, params, &stream, sse);
    if (st != SLICER_OK) return st;
    const size_t size = stream->size();
    if (size <= dst_capacity) std::memcpy(dst, stream->data(), size);
    lease.get().TrimScratch(false);
    if (size > dst_capacity) return SLICER_ERR_BUFFER_TOO_SMALL;
    *written = size;
    return SLICER_OK;
  });
}

// slicer_dense_encode_budget's driver with its encodes on `context`.
slicer::dense::BudgetResult BudgetOn(slicer::internal::Context& context, const void* data,
                                     int dtype, const int64_t* shape, uint32_t ndim,
                                     const slicer_dense_params* params, uint64_t max_bytes,
                                     double rel_error, int search_offsets) {
  if (params == nullptr) {
    slicer::dense::BudgetResult r;
    r.status = SLICER_ERR_INVALID_ARGUMENT;
    return r;
  }
  auto encode = [&](const slicer_dense_params& p, const uint8_t** stream, size_t* size,
                    double* sse) -> int {
    const std::vector<uint8_t>* out = nullptr;
    const slicer_status st = EncodeOn(context, data, dtype, shape, ndim, &p, &out, sse);
    if (st != SLICER_OK) return st;
    *stream = out->data();
    *size = out->size();
    return SLICER_OK;
  };
  return slicer::dense::EncodeForBudget(data, dtype, shape, ndim, *params, max_bytes, rel_error,
                                        search_offsets != 0, encode);
}

}  // namespace

extern "C" {

void slicer_dense_params_init(slicer_dense_params* params) {
  if (params == nullptr) return;
  std::memset(params, 0, sizeof(*params));
  params->step = 0.01f;
  params->rho_256 = 128;
  params->auto_offsets = 1;
  params->chunk_log2 = 14;
  params->layout = SLICER_DENSE_LAYOUT_TENSOR;
  params->trellis_lambda = 0.34;
}

uint32_t slicer_dense_auto_chunk_log2(uint64_t n) {
  return slicer::format::dense::AutoChunkLog2(n);
}

int slicer_dense_encode_bound(const int64_t* shape, uint32_t ndim, int dtype,
                              const slicer_dense_params* params, size_t* bound) {
  return GuardStatus([&]() -> int {
    using slicer::internal::VarintLength;
    using u128 = unsigned __int128;
    if (bound == nullptr) return SLICER_ERR_INVALID_ARGUMENT;
    if (!IsDenseDtype(dtype)) return SLICER_ERR_UNSUPPORTED_DTYPE;
    slicer_status st = slicer::dense::CheckParams(params);
    if (st == SLICER_OK) st = slicer::dense::trellis::CheckParams(params);
    if (st != SLICER_OK) return st;
    uint64_t n = 0;
    st = slicer::dense::CheckShape(shape, ndim, &n);
    if (st != SLICER_OK) return st;
    slicer::dense::Layout layout;
    if (!slicer::dense::MakeLayout(shape, ndim, n, params->layout, &layout)) {
      return SLICER_ERR_INVALID_ARGUMENT;
    }
    std::vector<uint8_t> header;
    slicer::dense::WriteCommonHeader(dtype, shape, ndim, params->layout, &header);
    u128 total = header.size() + 1 + slicer::dense::kParamsLen + layout.groups +
                 slicer::dense::kMaxTableBytes + 4;
    if (params->trellis) {  // §21.5: 12 bytes of parameters, two tables per class
      // (3 more parameter bytes than mode 1, 1 more than mode 2's 11 counted below)
      total += (params->classes >= 2 ? 1 : 3) +
               u128{params->classes >= 2 ? params->classes : 1u} * slicer::dense::kMaxTableBytes;
    }
    if (params->classes >= 2) {  // §19.5: two more parameter bytes, the map, K − 1 more tables
      slicer::dense::ClassGeometry geo;
      if (!slicer::dense::MakeClassGeometry(
              shape, ndim, params->class_axis & slicer::format::kClassAxisBit, &geo) ||
          geo.length < params->classes) {
        return SLICER_ERR_INVALID_ARGUMENT;
      }
      total += 2 + (u128{geo.length} + 1) / 2 +
               u128{params->classes - 1u} * slicer::dense::kMaxTableBytes;
      // §18.4: K − 1 boundary varints take at most ceil(L/2) + K − 1 bytes
      if (params->class_axis & slicer::format::kClassBoundsBit) total += params->classes - 1u;
    }
    const uint64_t chunk = uint64_t{1} << params->chunk_log2;
    auto per_chunk = [](uint64_t c) -> u128 {
      const uint64_t p = 24 + 2 * c, x = (51 * c + 7) / 8;
      return u128{VarintLength(p)} + VarintLength(x) + p + x;
    };
    if (n > 0) {
      const uint64_t full = n / chunk, rest = n % chunk;
      total += u128{full} * per_chunk(chunk) + (rest ? per_chunk(rest) : 0);
    }
    total += u128{n} * slicer::dense::DtypeBytes(dtype);
    if (total > u128{SIZE_MAX}) return SLICER_ERR_INVALID_ARGUMENT;
    *bound = static_cast<size_t>(total);
    return SLICER_OK;
  });
}

int slicer_dense_encode(const void* data, int dtype, const int64_t* shape, uint32_t ndim,
                        const slicer_dense_params* params, void* dst, size_t dst_capacity,
                        size_t* written) {
  return EncodeInto(data, dtype, shape, ndim, params, dst, dst_capacity, written, nullptr);
}

int slicer_dense_encode_sse(const void* data, int dtype, const int64_t* shape, uint32_t ndim,
                            const slicer_dense_params* params, void* dst, size_t dst_capacity,
                            size_t* written, double* sse) {
  if (sse == nullptr) return SLICER_ERR_INVALID_ARGUMENT;
  *sse = 0.0;
  return EncodeInto(data, dtype, shape, ndim, params, dst, dst_capacity, written, sse);
}

int slicer_context_dense_encode(slicer_context* context, const void* data, int dtype,
                                const int64_t* shape, uint32_t ndim,
                                const slicer_dense_params* params, const uint8_t** stream,
                                size_t* size, double* sse) {
  return GuardStatus([&]() -> int {
    if (context == nullptr || stream == nullptr || size == nullptr) {
      return SLICER_ERR_INVALID_ARGUMENT;
    }
    *stream = nullptr;
    *size = 0;
    if (sse != nullptr) *sse = 0.0;
    const std::vector<uint8_t>* out = nullptr;
    const slicer_status st =
        EncodeOn(context->context, data, dtype, shape, ndim, params, &out, sse);
    if (st != SLICER_OK) return st;
    *stream = out->data();
    *size = out->size();
    return SLICER_OK;
  });
}

int slicer_dense_encode_budget(const void* data, int dtype, const int64_t* shape, uint32_t ndim,
                               const slicer_dense_params* params, uint64_t max_bytes,
                               double rel_error, int search_offsets, void* dst, size_t dst_capacity,
                               size_t* written) {
  return GuardStatus([&]() -> int {
    if (written == nullptr || (dst == nullptr && dst_capacity > 0)) {
      return SLICER_ERR_INVALID_ARGUMENT;
    }
    *written = 0;
    slicer::internal::LeasedContext lease;
    const slicer::dense::BudgetResult r = BudgetOn(lease.get(), data, dtype, shape, ndim, params,
                                                   max_bytes, rel_error, search_offsets);
    if (r.status == SLICER_ERR_TARGET_UNREACHABLE) *written = r.smallest;
    int status = r.status;
    if (status == SLICER_OK) {
      *written = r.size;
      if (r.size > dst_capacity) {
        status = SLICER_ERR_BUFFER_TOO_SMALL;
      } else if (r.size) {
        std::memcpy(dst, r.data, r.size);
      }
    }
    lease.get().TrimScratch(false);
    return status;
  });
}

int slicer_context_dense_encode_budget(slicer_context* context, const void* data, int dtype,
                                       const int64_t* shape, uint32_t ndim,
                                       const slicer_dense_params* params, uint64_t max_bytes,
                                       double rel_error, int search_offsets, const uint8_t** stream,
                                       size_t* size) {
  return GuardStatus([&]() -> int {
    if (context == nullptr || stream == nullptr || size == nullptr) {
      return SLICER_ERR_INVALID_ARGUMENT;
    }
    *stream = nullptr;
    *size = 0;
    slicer::dense::BudgetResult r = BudgetOn(context->context, data, dtype, shape, ndim, params,
                                             max_bytes, rel_error, search_offsets);
    if (r.status == SLICER_ERR_TARGET_UNREACHABLE) *size = r.smallest;
    if (r.status != SLICER_OK) return r.status;
    std::lock_guard<std::mutex> lock(context->context.call_mutex());
    std::vector<uint8_t>& out = context->context.workspace(0).encode.stream;
    if (r.data != out.data()) out.assign(r.data, r.data + r.size);  // an earlier encode's
    *stream = out.data();
    *size = out.size();
    return SLICER_OK;
  });
}

int slicer_dense_inspect(const void* src, size_t size, uint64_t max_elements,
                         slicer_dense_info* info) {
  return GuardStatus([&]() -> int {
    return slicer::dense::DecodeDense(static_cast<const uint8_t*>(src), size, max_elements, nullptr,
                                      0, 1, info);
  });
}

int slicer_stream_version(const void* src, size_t size, uint32_t* version) {
  return GuardStatus([&]() -> int {
    if (version == nullptr) return SLICER_ERR_INVALID_ARGUMENT;
    return slicer::dense::CheckContainer(static_cast<const uint8_t*>(src), size, version);
  });
}

}  // extern "C"

namespace slicer::dense {

bool IsFormat2(const void* src, size_t size) {
  const uint8_t* d = static_cast<const uint8_t*>(src);
  return d != nullptr && size >= 9 && d[0] == 0x53 && d[1] == 0x4C && d[2] == 0x43 &&
         d[3] == 0x52 && d[4] == kVersion;
}

int DecodeFormat2(const void* src, size_t size, uint64_t max_elements, void* dst, size_t dst_bytes,
                  uint32_t threads) {
  return GuardStatus([&]() -> int {
    slicer_dense_info info;
    const slicer_status st =
        ParseDense(static_cast<const uint8_t*>(src), size, max_elements, &info);
    if (st != SLICER_OK) return st;
    if (info.num_elements > 0 && dst == nullptr) return SLICER_ERR_INVALID_ARGUMENT;
    if (dst_bytes < info.num_elements * DtypeBytes(info.dtype)) return SLICER_ERR_BUFFER_TOO_SMALL;
    return DecodeDense(static_cast<const uint8_t*>(src), size, max_elements, dst, dst_bytes,
                       threads, nullptr);
  });
}

int DecodeAllocFormat2(const void* src, size_t size, uint64_t max_elements, uint32_t threads,
                       slicer_alloc_fn alloc, void* ctx, slicer_header* header) {
  slicer_header local;
  slicer_header* h = header != nullptr ? header : &local;
  const int st = HeaderFormat2(src, size, max_elements, h, nullptr, false);
  if (st != SLICER_OK) return st;
  return GuardStatus([&]() -> int {
    const size_t needed = h->num_elements * DtypeBytes(h->dtype);
    void* dst = alloc(ctx, h, needed);
    if (dst == nullptr && needed > 0) return SLICER_ERR_OUT_OF_MEMORY;
    return DecodeDense(static_cast<const uint8_t*>(src), size, max_elements, dst, needed, threads,
                       nullptr);
  });
}

int HeaderFormat2(const void* src, size_t size, uint64_t max_elements, slicer_header* header,
                  slicer_account* account, bool full) {
  return GuardStatus([&]() -> int {
    slicer_dense_info info;
    const uint8_t* data = static_cast<const uint8_t*>(src);
    const slicer_status st = full ? DecodeDense(data, size, max_elements, nullptr, 0, 1, &info)
                                  : ParseDense(data, size, max_elements, &info);
    if (st != SLICER_OK) return st;
    if (header != nullptr) {
      std::memset(header, 0, sizeof(*header));
      header->format_version = info.format_version;
      header->mode = info.mode;
      header->dtype = info.dtype;
      header->ndim = info.ndim;
      for (uint32_t d = 0; d < info.ndim; ++d) header->shape[d] = info.shape[d];
      header->num_elements = info.num_elements;
      header->chunk_log2 = info.chunk_log2;
      header->group_count = info.group_count;
    }
    if (account != nullptr) {
      std::memset(account, 0, sizeof(*account));
      account->total_bytes = info.total_bytes;
      account->header_bytes = info.header_bytes;
      account->group_bytes = info.group_table_bytes;
      account->block_meta_bytes = info.class_map_bytes + info.freq_table_bytes;
      account->chunk_table_bytes = info.chunk_table_bytes;
      account->value_bits = 8 * (info.raw_bytes + info.rans_bytes + info.extra_bits_bytes);
      account->checksum_bytes = info.checksum_bytes;
      account->kept = info.coded;
      account->chunks = info.chunks;
    }
    return SLICER_OK;
  });
}

}  // namespace slicer::dense
