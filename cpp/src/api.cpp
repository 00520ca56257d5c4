// The C ABI (include/slicer/slicer.h): argument checks, exception-to-status translation.
#include <cmath>
#include <cstring>
#include <exception>
#include <new>
#include <vector>

#include "codec.hpp"
#include "context.hpp"
#include "decoder.hpp"
#include "dense/dense_internal.hpp"
#include "encoder.hpp"
#include "format/reject.hpp"
#include "header.hpp"
#include "parallel.hpp"
#include "slicer/slicer.h"
#include "varint.hpp"

namespace {

using slicer::internal::CodecParams;
using slicer::internal::StatusError;

// Runs fn() and turns every exception into a status: nothing is thrown across the C ABI.
template <class Fn>
int Guard(Fn&& fn) {
  slicer::format::ClearRejection();
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

unsigned CeilLog2(unsigned value) {
  unsigned bits = 0;
  while ((1u << bits) < value) ++bits;
  return bits;
}

// §8, computed in 128-bit integers; returns false when the bound does not fit in size_t.
bool ComputeBound(const int64_t* shape, uint32_t ndim, int dtype, const CodecParams& params,
                  const slicer::internal::Geometry& geometry, size_t* bound) {
  using slicer::internal::VarintLength;
  using u128 = unsigned __int128;
  std::vector<uint8_t> header;
  slicer::internal::WriteHeader(dtype, shape, ndim, params, geometry.group_count, &header);
  const uint64_t n = geometry.group_size;
  const uint64_t k_max = slicer::internal::KeepLimit(n, params.sparsity_ppb);
  const unsigned labels = params.labels();
  const unsigned lb = CeilLog2(labels);
  const unsigned chunk_log2 = params.chunk_log2;
  const uint64_t chunks = geometry.chunks_per_group;
  u128 group = 2 * u128{VarintLength(k_max)} + 5 * u128{labels} + 8;
  const auto chunk_table = [&](uint64_t elements) {
    const u128 payload_bound = (12 + u128{elements} * (3 + lb + params.bits + chunk_log2) + 7) / 8;
    const uint64_t capped =
        payload_bound > u128{~uint64_t{0}} ? ~uint64_t{0} : static_cast<uint64_t>(payload_bound);
    return u128{VarintLength(elements)} + VarintLength(capped) + (capped == ~uint64_t{0} ? 1 : 0);
  };
  if (chunks > 0) {
    const uint64_t full = uint64_t{1} << chunk_log2;
    const uint64_t last = n - (chunks - 1) * full;
    group += u128{chunks - 1} * chunk_table(full) + chunk_table(last);
  }
  u128 rice_bits = 0;
  if (k_max > 0) {
    const double log_term = static_cast<double>(k_max) *
                            std::log2(static_cast<double>(n) / static_cast<double>(k_max)) *
                            (1.0 + 1e-9);
    if (!(log_term < 1e30)) return false;
    rice_bits = static_cast<u128>(std::ceil(std::max(0.0, log_term))) + 2;
  }
  const u128 payload_bits = 12 * u128{chunks} + u128{k_max} * (3 + lb + params.bits) + rice_bits;
  group += (payload_bits + 7) / 8 + chunks;
  const u128 total = header.size() + u128{geometry.group_count} * group + 4;
  if (total > u128{SIZE_MAX}) return false;
  *bound = static_cast<size_t>(total);
  return true;
}

// Bytes of the decoded output, saturated at 2^64 - 1 (never wraps to a small size).
uint64_t ElementBytes(const slicer_header& header) {
  const unsigned __int128 bytes = static_cast<unsigned __int128>(header.num_elements) *
                                  slicer::internal::DtypeSize(header.dtype);
  return bytes > ~uint64_t{0} ? ~uint64_t{0} : static_cast<uint64_t>(bytes);
}

}  // namespace

extern "C" {

size_t slicer_dtype_size(int dtype) {
  switch (dtype) {
    case SLICER_FLOAT32:
      return 4;
    case SLICER_FLOAT16:
    case SLICER_BFLOAT16:
      return 2;
    case SLICER_FLOAT64:
      return 8;
    default:
      return 0;
  }
}

const char* slicer_status_string(int status) {
  switch (status) {
    case SLICER_OK:
      return "ok";
    case SLICER_ERR_INVALID_ARGUMENT:
      return "invalid argument";
    case SLICER_ERR_UNSUPPORTED_DTYPE:
      return "unsupported dtype (expected float32, float16 or bfloat16)";
    case SLICER_ERR_NONFINITE_INPUT:
      return "input contains NaN or infinity";
    case SLICER_ERR_BUFFER_TOO_SMALL:
      return "destination buffer too small";
    case SLICER_ERR_OUT_OF_MEMORY:
      return "out of memory";
    case SLICER_ERR_TRUNCATED:
      return "stream truncated";
    case SLICER_ERR_BAD_MAGIC:
      return "not a SLICER stream (bad magic)";
    case SLICER_ERR_BAD_VERSION:
      return "unsupported SLICER format version";
    case SLICER_ERR_BAD_CHECKSUM:
      return "checksum mismatch";
    case SLICER_ERR_CORRUPT:
      return "corrupt stream";
    case SLICER_ERR_LIMIT_EXCEEDED:
      return "stream exceeds the element limit";
    case SLICER_ERR_UNSUPPORTED_MODE:
      return "unsupported coding mode";
    case SLICER_ERR_TARGET_UNREACHABLE:
      return "the size or error target cannot be met";
    case SLICER_ERR_INTERNAL:
      return "internal error";
    default:
      return "unknown status";
  }
}

const char* slicer_error_detail(void) { return slicer::format::LastRejection(); }

const char* slicer_version(void) { return "0.3.0"; }

uint32_t slicer_format_version(void) { return SLICER_FORMAT_VERSION; }

void slicer_params_init(slicer_params* params) {
  if (params == nullptr) return;
  std::memset(params, 0, sizeof(*params));
  params->sparsity_ppb = 900000000u;
  params->asym_ppb = 0;
  params->delta_micro = 10000u;
  params->seed = 0;
  params->bits = 8;
  params->blocks_pos = 3;
  params->blocks_neg = 3;
  params->level_count = 0;
  params->chunk_log2 = 14;
  params->group_rows = 0;
  params->threads = 0;
}

int slicer_encode_bound(const int64_t* shape, uint32_t ndim, int dtype, const slicer_params* params,
                        size_t* bound) {
  return Guard([&]() -> int {
    if (bound == nullptr) return SLICER_ERR_INVALID_ARGUMENT;
    if (!slicer::internal::IsSupportedDtype(dtype)) return SLICER_ERR_UNSUPPORTED_DTYPE;
    CodecParams codec;
    const slicer_status status = slicer::internal::ValidateParams(params, &codec);
    if (status != SLICER_OK) return status;
    slicer::internal::Geometry geometry;
    const slicer_status shape_status = slicer::internal::ComputeGeometry(
        shape, ndim, codec.group_rows, codec.chunk_log2, &geometry);
    if (shape_status != SLICER_OK) return shape_status;
    if (!ComputeBound(shape, ndim, dtype, codec, geometry, bound)) {
      return SLICER_ERR_INVALID_ARGUMENT;
    }
    return SLICER_OK;
  });
}

int slicer_encode(const void* data, int dtype, const int64_t* shape, uint32_t ndim,
                  const slicer_params* params, void* dst, size_t dst_capacity, size_t* written) {
  return Guard([&]() -> int {
    if (written == nullptr || (dst == nullptr && dst_capacity > 0)) {
      return SLICER_ERR_INVALID_ARGUMENT;
    }
    *written = 0;
    CodecParams codec;
    const slicer_status status = slicer::internal::ValidateParams(params, &codec);
    if (status != SLICER_OK) return status;
    // A context from the free list: its scratch was used by earlier calls (no fresh pages).
    slicer::internal::LeasedContext lease;
    const std::vector<uint8_t>& stream = slicer::internal::EncodeStream(
        &lease.get(), data, dtype, shape, ndim, codec, slicer::internal::SelectionPath::kRadix);
    const size_t size = stream.size();
    if (size > dst_capacity) return SLICER_ERR_BUFFER_TOO_SMALL;
    std::memcpy(dst, stream.data(), size);
    *written = size;
    return SLICER_OK;
  });
}

int slicer_read_header(const void* src, size_t size, uint64_t max_elements, slicer_header* header) {
  return Guard([&]() -> int {
    if (header == nullptr) return SLICER_ERR_INVALID_ARGUMENT;
    if (slicer::dense::IsFormat2(src, size)) {
      return slicer::dense::HeaderFormat2(src, size, max_elements, header, nullptr, false);
    }
    slicer::internal::ParsedStream stream;
    const slicer_status status = slicer::internal::ParseStream(static_cast<const uint8_t*>(src),
                                                               size, max_elements, true, &stream);
    if (status != SLICER_OK) return status;
    *header = stream.header;
    return SLICER_OK;
  });
}

int slicer_decode(const void* src, size_t size, uint64_t max_elements, void* dst, size_t dst_bytes,
                  uint32_t threads) {
  return Guard([&]() -> int {
    if (slicer::dense::IsFormat2(src, size)) {
      return slicer::dense::DecodeFormat2(src, size, max_elements, dst, dst_bytes, threads);
    }
    slicer::internal::ParsedStream stream;
    const uint8_t* data = static_cast<const uint8_t*>(src);
    // Group tables are bounded by the stream size, so parsing before the size check is safe.
    const slicer_status status =
        slicer::internal::ParseStream(data, size, max_elements, false, &stream);
    if (status != SLICER_OK) return status;
    const uint64_t needed = ElementBytes(stream.header);
    if (needed > dst_bytes) return SLICER_ERR_BUFFER_TOO_SMALL;
    if (needed > 0 && dst == nullptr) return SLICER_ERR_INVALID_ARGUMENT;
    return slicer::internal::DecodeChunks(data, &stream, dst,
                                          slicer::internal::ResolveThreads(threads));
  });
}

int slicer_decode_alloc(const void* src, size_t size, uint64_t max_elements, uint32_t threads,
                        slicer_alloc_fn alloc, void* ctx, slicer_header* header) {
  return Guard([&]() -> int {
    if (alloc == nullptr) return SLICER_ERR_INVALID_ARGUMENT;
    if (slicer::dense::IsFormat2(src, size)) {
      return slicer::dense::DecodeAllocFormat2(src, size, max_elements, threads, alloc, ctx,
                                               header);
    }
    slicer::internal::ParsedStream stream;
    const uint8_t* data = static_cast<const uint8_t*>(src);
    // Every table is validated (and bounded by the stream size) before anything is allocated.
    const slicer_status status =
        slicer::internal::ParseStream(data, size, max_elements, false, &stream);
    if (status != SLICER_OK) return status;
    if (header != nullptr) *header = stream.header;
    const uint64_t needed = ElementBytes(stream.header);
    if (needed > SIZE_MAX) return SLICER_ERR_OUT_OF_MEMORY;
    void* dst = alloc(ctx, &stream.header, static_cast<size_t>(needed));
    if (dst == nullptr && needed > 0) return SLICER_ERR_OUT_OF_MEMORY;
    return slicer::internal::DecodeChunks(data, &stream, dst,
                                          slicer::internal::ResolveThreads(threads));
  });
}

int slicer_inspect(const void* src, size_t size, uint64_t max_elements, slicer_header* header,
                   slicer_account* account, slicer_block_info* blocks, size_t blocks_capacity,
                   size_t* num_blocks) {
  return Guard([&]() -> int {
    if (blocks == nullptr && blocks_capacity > 0) return SLICER_ERR_INVALID_ARGUMENT;
    if (slicer::dense::IsFormat2(src, size)) {
      if (num_blocks != nullptr) *num_blocks = 0;
      return slicer::dense::HeaderFormat2(src, size, max_elements, header, account);
    }
    slicer::internal::ParsedStream stream;
    const uint8_t* data = static_cast<const uint8_t*>(src);
    slicer_status status = slicer::internal::ParseStream(data, size, max_elements, false, &stream);
    if (status != SLICER_OK) return status;
    status =
        slicer::internal::DecodeChunks(data, &stream, nullptr, slicer::internal::ResolveThreads(0));
    if (status != SLICER_OK) return status;
    if (header != nullptr) *header = stream.header;
    if (account != nullptr) *account = stream.account;
    const unsigned m_pos = stream.header.blocks_pos;
    uint64_t group = 0;
    for (size_t b = 0; b < stream.blocks.size() && b < blocks_capacity; ++b) {
      const slicer::internal::ParsedBlock& block = stream.blocks[b];
      while (b >= stream.groups[group].first_block + stream.groups[group].num_blocks) ++group;
      slicer_block_info& info = blocks[b];
      info.group = group;
      info.label = block.label;
      info.sign = block.label < m_pos ? 1 : -1;
      info.index = block.label < m_pos ? block.label : block.label - m_pos;
      info.count = block.count;
      info.width = block.width;
      info.lo = block.lo;
      info.hi = block.hi;
    }
    if (num_blocks != nullptr) *num_blocks = stream.blocks.size();
    return SLICER_OK;
  });
}

}  // extern "C"
