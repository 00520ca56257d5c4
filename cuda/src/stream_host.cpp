#include "stream_host.hpp"

#include <algorithm>
#include <cmath>

#include "codec.hpp"
#include "crc32.hpp"
#include "format/spec.hpp"
#include "format/stream_format.hpp"
#include "header.hpp"

// Everything about the stream's bytes (validation of parameters, header and tables, their
// writing, the checksum) is the C++ codec's format layer (cpp/src/format/); this file only
// adapts it to the plans the kernels take.
namespace slicer::cuda {

int MakeEncodePlan(const int64_t* shape, uint32_t ndim, int dtype, const slicer_params* params,
                   EncodePlan* plan) {
  if (params == nullptr || (ndim > 0 && shape == nullptr)) return SLICER_ERR_INVALID_ARGUMENT;
  if (ndim > SLICER_MAX_NDIM) return SLICER_ERR_INVALID_ARGUMENT;
  if (dtype < SLICER_FLOAT32 || dtype > SLICER_BFLOAT16) return SLICER_ERR_UNSUPPORTED_DTYPE;
  internal::CodecParams codec;
  int status = internal::ValidateParams(params, &codec);
  if (status != SLICER_OK) return status;
  internal::Geometry geometry;
  status = internal::ComputeGeometry(shape, ndim, codec.group_rows, codec.chunk_log2, &geometry);
  if (status != SLICER_OK) return status;
  // Limits of the device kernels (32-bit group-relative indices, 62-bit element offsets).
  if (geometry.num_elements > (uint64_t{1} << 62)) return SLICER_ERR_INVALID_ARGUMENT;
  if (geometry.group_size > 0xFFFFFFFFull) return SLICER_ERR_INVALID_ARGUMENT;
  const slicer_params& p = *params;
  plan->shape.assign(shape, shape + ndim);
  plan->dtype = dtype;
  plan->params = p;
  plan->elements = geometry.num_elements;
  plan->groups = geometry.group_count;
  plan->group_size = geometry.group_size;
  plan->chunks_per_group = geometry.chunks_per_group;
  plan->bits = codec.bits;
  plan->num_labels = codec.labels();
  // §8 payload term: ceil((12 nch + k_max (3 + lb + q_bit) + R) / 8) + nch per group.
  uint32_t lb = 0;
  while ((1u << lb) < plan->num_labels) ++lb;
  const uint64_t n = plan->group_size;
  const uint64_t k_max = internal::KeepLimit(n, p.sparsity_ppb);
  const uint64_t nch = plan->chunks_per_group;
  uint64_t rice = 0;
  if (k_max) {
    rice = static_cast<uint64_t>(std::ceil(static_cast<double>(k_max) *
                                           std::log2(static_cast<double>(n) / k_max) *
                                           (1 + 1e-9))) +
           2;
  }
  const uint64_t per_group = (12 * nch + k_max * (3 + lb + plan->bits) + rice + 7) / 8 + nch;
  plan->payload_bound = per_group * plan->groups;
  return SLICER_OK;
}

std::vector<uint8_t> HeaderBytes(const EncodePlan& plan) {
  internal::CodecParams codec;
  internal::ValidateParams(&plan.params, &codec);  // validated by MakeEncodePlan
  std::vector<uint8_t> out;
  internal::WriteHeader(plan.dtype, plan.shape.data(), static_cast<uint32_t>(plan.shape.size()),
                        codec, plan.groups, &out);
  return out;
}

void AppendGroupTables(const EncodePlan& plan, uint64_t k, uint64_t n_pos,
                       const BlockResult* blocks, const uint64_t* chunk_counts,
                       const uint64_t* chunk_bytes, std::vector<uint8_t>* out) {
  const uint32_t labels = plan.num_labels;
  uint64_t counts[2 * SLICER_MAX_BLOCKS];
  uint32_t widths[2 * SLICER_MAX_BLOCKS];
  float lo[2 * SLICER_MAX_BLOCKS];
  float hi[2 * SLICER_MAX_BLOCKS];
  for (uint32_t l = 0; l < labels; ++l) {
    counts[l] = blocks[l].count;
    widths[l] = blocks[l].width;
    lo[l] = blocks[l].lo;
    hi[l] = blocks[l].hi;
  }
  format::AppendGroupTables(k, n_pos, plan.params.blocks_pos, labels, counts, widths, lo, hi,
                            chunk_counts != nullptr ? plan.chunks_per_group : 0, chunk_counts,
                            chunk_bytes, out);
}

int ParseHeader(const uint8_t* data, size_t avail, size_t size, uint64_t max_elements,
                DecodePlan* plan) {
  uint32_t version;
  if (avail < 5 && size >= 9) return SLICER_ERR_TRUNCATED;
  int status = format::CheckFrame(data, size, false, &version);
  if (status != SLICER_OK) return status;
  format::Header header;
  status = format::ParseHeader(data, avail, size, max_elements, &header);
  if (status != SLICER_OK) return status;
  plan->header = header.fields;
  plan->header_bytes = header.bytes;
  plan->group_size = header.group_size;
  plan->chunks_per_group = header.chunks_per_group;
  plan->num_labels = header.num_labels;
  return SLICER_OK;
}

uint64_t TablesBound(const DecodePlan& plan) {
  format::Header header;
  header.fields = plan.header;
  header.bytes = plan.header_bytes;
  header.group_size = plan.group_size;
  header.chunks_per_group = plan.chunks_per_group;
  header.num_labels = plan.num_labels;
  return format::TablesBound(header);
}

int ParseTables(const uint8_t* data, size_t avail, size_t size, DecodePlan* plan) {
  format::Header header;
  header.fields = plan->header;
  header.bytes = plan->header_bytes;
  header.group_size = plan->group_size;
  header.chunks_per_group = plan->chunks_per_group;
  header.num_labels = plan->num_labels;
  format::Tables tables;
  const int status = format::ParseTables(data, avail, size, header, &tables);
  if (status != SLICER_OK) return status;
  const slicer_header& h = plan->header;
  const uint64_t groups = h.group_count;
  const uint32_t labels = plan->num_labels;
  const uint64_t n = plan->group_size;
  plan->blocks.assign(groups * labels, DecodeBlock{});
  plan->chunks.assign(tables.chunks.size(), DecodeChunk{});
  for (uint64_t g = 0; g < groups; ++g) {
    const format::Group& group = tables.groups[g];
    DecodeBlock* blocks = &plan->blocks[g * labels];
    for (uint32_t m = 0; m < h.blocks_pos; ++m) {
      blocks[m].count = format::BlockCount(group.n_pos, h.blocks_pos, m);
    }
    for (uint32_t m = 0; m < h.blocks_neg; ++m) {
      blocks[h.blocks_pos + m].count = format::BlockCount(group.k - group.n_pos, h.blocks_neg, m);
    }
    for (uint32_t b = 0; b < group.num_blocks; ++b) {
      const format::Block& block = tables.blocks[group.first_block + b];
      DecodeBlock& out = blocks[block.label];
      out.lo = block.lo;
      out.hi = block.hi;
      out.width = block.width;
      out.present = 1;
    }
    for (uint64_t j = 0; j < plan->chunks_per_group; ++j) {
      const format::Chunk& entry = tables.chunks[g * plan->chunks_per_group + j];
      DecodeChunk& c = plan->chunks[g * plan->chunks_per_group + j];
      c.payload_offset = entry.offset - tables.payload_start;
      c.length = entry.length;
      c.count = entry.count;
      c.out_offset = g * n + (j << h.chunk_log2);
      c.elements = format::ChunkElements(n, j, h.chunk_log2);
      c.group = g;
    }
  }
  plan->payload_offset = tables.payload_start;
  plan->payload_bytes = tables.payload_bytes;
  return SLICER_OK;
}

uint32_t HostCrc32(const uint8_t* data, size_t size) { return internal::Crc32(0, data, size); }

}  // namespace slicer::cuda
