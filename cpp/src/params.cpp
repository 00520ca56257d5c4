// Parameter validation (§2), geometry (§3) and header writing (§6).
#include <algorithm>

#include "codec.hpp"
#include "format/spec.hpp"
#include "format/stream_format.hpp"
#include "header.hpp"
#include "parallel.hpp"

namespace slicer::internal {

slicer_status ValidateParams(const slicer_params* params, CodecParams* out) {
  if (params == nullptr) return SLICER_ERR_INVALID_ARGUMENT;
  if (params->sparsity_ppb >= kPpb || params->asym_ppb >= kPpb) return SLICER_ERR_INVALID_ARGUMENT;
  if (params->blocks_pos < 1 || params->blocks_pos > SLICER_MAX_BLOCKS) {
    return SLICER_ERR_INVALID_ARGUMENT;
  }
  if (params->blocks_neg < 1 || params->blocks_neg > SLICER_MAX_BLOCKS) {
    return SLICER_ERR_INVALID_ARGUMENT;
  }
  if (params->chunk_log2 < 6 || params->chunk_log2 > 24) return SLICER_ERR_INVALID_ARGUMENT;
  if (params->group_rows > 1) return SLICER_ERR_INVALID_ARGUMENT;
  out->sparsity_ppb = params->sparsity_ppb;
  out->asym_ppb = params->asym_ppb;
  out->delta_micro = params->delta_micro;
  out->seed = params->seed;
  out->blocks_pos = params->blocks_pos;
  out->blocks_neg = params->blocks_neg;
  out->chunk_log2 = params->chunk_log2;
  out->group_rows = params->group_rows != 0;
  out->threads = ResolveThreads(params->threads);
  out->multi_level = params->level_count > 0;
  std::fill(out->levels, out->levels + SLICER_MAX_BLOCKS, uint8_t{0});
  if (out->multi_level) {
    if (params->level_count != std::max(params->blocks_pos, params->blocks_neg)) {
      return SLICER_ERR_INVALID_ARGUMENT;
    }
    unsigned largest = 0;
    for (unsigned m = 0; m < params->level_count; ++m) {
      const unsigned level = params->levels[m];
      if (level < 1 || level > SLICER_MAX_BITS) return SLICER_ERR_INVALID_ARGUMENT;
      out->levels[m] = static_cast<uint8_t>(level);
      largest = std::max(largest, level);
    }
    out->bits = largest;
  } else {
    if (params->bits < 1 || params->bits > SLICER_MAX_BITS) return SLICER_ERR_INVALID_ARGUMENT;
    out->bits = params->bits;
  }
  return SLICER_OK;
}

slicer_status ComputeGeometry(const int64_t* shape, uint32_t ndim, bool group_rows,
                              unsigned chunk_log2, Geometry* geometry) {
  if (ndim > SLICER_MAX_NDIM) return SLICER_ERR_INVALID_ARGUMENT;
  if (ndim > 0 && shape == nullptr) return SLICER_ERR_INVALID_ARGUMENT;
  bool any_zero = false;
  for (uint32_t d = 0; d < ndim; ++d) {
    if (shape[d] < 0) return SLICER_ERR_INVALID_ARGUMENT;
    any_zero = any_zero || shape[d] == 0;
  }
  uint64_t count = 1;
  if (any_zero) {
    count = 0;
  } else {
    for (uint32_t d = 0; d < ndim; ++d) {
      const unsigned __int128 product =
          static_cast<unsigned __int128>(count) * static_cast<uint64_t>(shape[d]);
      if (product >= (static_cast<unsigned __int128>(1) << 63)) {
        return SLICER_ERR_INVALID_ARGUMENT;
      }
      count = static_cast<uint64_t>(product);
    }
  }
  geometry->num_elements = count;
  geometry->group_count = 1;
  if (count > 0 && group_rows && ndim > 0) {
    geometry->group_count = count / static_cast<uint64_t>(shape[ndim - 1]);
  }
  geometry->group_size = count / geometry->group_count;
  const uint64_t chunk = uint64_t{1} << chunk_log2;
  geometry->chunks_per_group = (geometry->group_size + chunk - 1) >> chunk_log2;
  return SLICER_OK;
}

void WriteHeader(int dtype, const int64_t* shape, uint32_t ndim, const CodecParams& params,
                 uint64_t group_count, std::vector<uint8_t>* out) {
  slicer_header fields{};
  fields.format_version = SLICER_FORMAT_VERSION;
  fields.mode = format::kModeSparseTopK;
  fields.dtype = static_cast<slicer_dtype>(dtype);
  fields.flags = params.multi_level ? format::kFlagMultiLevel : 0;
  fields.ndim = ndim;
  for (uint32_t d = 0; d < ndim; ++d) fields.shape[d] = shape[d];
  fields.sparsity_ppb = params.sparsity_ppb;
  fields.asym_ppb = params.asym_ppb;
  fields.delta_micro = params.delta_micro;
  fields.seed = params.seed;
  fields.bits = params.bits;
  fields.blocks_pos = params.blocks_pos;
  fields.blocks_neg = params.blocks_neg;
  fields.chunk_log2 = params.chunk_log2;
  fields.group_count = group_count;
  format::AppendHeader(fields, out);
}

}  // namespace slicer::internal
