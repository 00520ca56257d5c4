// Host side of format 1 for the CUDA backend: parameter checks, the header and group tables
// the encoder writes around the device payload, and the parser the decoder runs before its
// kernels. Byte layout exactly as docs/format.md §6 (and tests/reference.py).
#ifndef SLICER_CUDA_STREAM_HOST_HPP_
#define SLICER_CUDA_STREAM_HOST_HPP_

#include <cstddef>
#include <cstdint>
#include <vector>

#include "slicer/slicer.h"

namespace slicer::cuda {

// Shape and parameters of one encode problem (one stream), fixed and validated.
struct EncodePlan {
  std::vector<int64_t> shape;
  int dtype = 0;
  slicer_params params{};
  uint64_t elements = 0;
  uint64_t groups = 0;
  uint64_t group_size = 0;
  uint64_t chunks_per_group = 0;
  uint32_t bits = 0;        // q_bit as stored (largest level in multi-level mode)
  uint32_t num_labels = 0;
  uint64_t payload_bound = 0;  // §8 payload term summed over the groups
};

// Validates shape, dtype and parameters (§2, §3) and fills the plan.
int MakeEncodePlan(const int64_t* shape, uint32_t ndim, int dtype, const slicer_params* params,
                   EncodePlan* plan);

// Header bytes (§6) of a stream with this plan.
std::vector<uint8_t> HeaderBytes(const EncodePlan& plan);

// What the device computed for one block of one group.
struct BlockResult {
  uint64_t count;
  float lo;
  float hi;
  uint32_t width;
};

// Appends one group's k, n_pos, widths and chains and its chunk table (§6).
void AppendGroupTables(const EncodePlan& plan, uint64_t k, uint64_t n_pos,
                       const BlockResult* blocks, const uint64_t* chunk_counts,
                       const uint64_t* chunk_bytes, std::vector<uint8_t>* out);

// --- decoding

struct DecodeBlock {
  float lo;
  float hi;
  uint32_t width;
  uint32_t present;  // 1 when the block is non-empty (c_m > 0)
  unsigned long long count;
};

struct DecodeChunk {
  unsigned long long payload_offset;  // bytes from the start of the payload
  unsigned long long length;
  unsigned long long count;
  unsigned long long out_offset;  // element offset of the chunk's first element
  unsigned long long elements;
  unsigned long long group;
};

struct DecodePlan {
  slicer_header header{};
  uint64_t header_bytes = 0;  // bytes of the fixed header
  uint64_t group_size = 0;
  uint64_t chunks_per_group = 0;
  uint32_t num_labels = 0;
  uint64_t payload_offset = 0;  // where the payload starts in the stream
  uint64_t payload_bytes = 0;
  std::vector<DecodeBlock> blocks;  // groups x labels
  std::vector<DecodeChunk> chunks;  // groups x chunks
};

// Parses and validates the fixed header from `avail` host bytes of a stream of `size` bytes
// (magic, version and fields; not the checksum, which the caller checks first).
int ParseHeader(const uint8_t* data, size_t avail, size_t size, uint64_t max_elements,
                DecodePlan* plan);

// Upper bound of the bytes the group tables may take after the fixed header.
uint64_t TablesBound(const DecodePlan& plan);

// Parses every group's tables from `avail` host bytes (header included) and checks that the
// chunk lengths fill the stream exactly (§6).
int ParseTables(const uint8_t* data, size_t avail, size_t size, DecodePlan* plan);

// Host CRC-32 of a byte range (zlib.crc32).
uint32_t HostCrc32(const uint8_t* data, size_t size);

}  // namespace slicer::cuda

#endif  // SLICER_CUDA_STREAM_HOST_HPP_
