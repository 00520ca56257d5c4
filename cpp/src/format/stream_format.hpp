// Format 1 stream layout (docs/format.md §6): the frame checks, the header and the group tables,
// read and written in one place for every backend (the C++ codec and the CUDA host code).
// Parsing works on a prefix of `avail` bytes of a stream of `size` bytes, so that a backend
// whose stream lives in device memory copies only the header and tables to the host.
#ifndef SLICER_SRC_FORMAT_STREAM_FORMAT_HPP_
#define SLICER_SRC_FORMAT_STREAM_FORMAT_HPP_

#include <cstddef>
#include <cstdint>
#include <vector>

#include "slicer/slicer.h"

namespace slicer::format {

// The header (§6) and what follows from it.
struct Header {
  slicer_header fields{};
  uint64_t group_size = 0;        // n = N / G
  uint64_t chunks_per_group = 0;  // ceil(n / 2^chunk_log2)
  uint32_t num_labels = 0;        // L = M+ + M−
  size_t bytes = 0;               // length of the fixed header
};

// One non-empty block of one group (§5.1, §5.2).
struct Block {
  uint64_t count;  // c_m
  float lo;
  float hi;
  uint32_t label;
  uint32_t width;
};

struct Group {
  uint64_t k;
  uint64_t n_pos;
  uint64_t first_block;  // index into Tables::blocks
  uint32_t num_blocks;
};

struct Chunk {
  uint64_t count;
  uint64_t offset;  // from the start of the stream
  uint64_t length;
};

// Byte account of the tables (§6), filled by ParseTables.
struct TableBytes {
  uint64_t groups = 0;       // k and n_pos
  uint64_t block_meta = 0;   // widths and chains
  uint64_t chunk_table = 0;  // chunk entries
};

struct Tables {
  std::vector<Group> groups;
  std::vector<Block> blocks;  // group-major, label order
  std::vector<Chunk> chunks;  // group-major
  size_t payload_start = 0;
  uint64_t payload_bytes = 0;
  TableBytes bytes;
};

// §6.2 in its order: length ≥ 9, magic, then (when `check_crc`) the CRC-32; sets *version to
// the version byte without judging it.
slicer_status CheckFrame(const uint8_t* data, size_t size, bool check_crc, uint32_t* version);

// The fixed header of a format-1 stream from its first `avail` bytes (the frame is checked by
// the caller). Refuses element counts above max_elements (§7) and versions other than 1.
slicer_status ParseHeader(const uint8_t* data, size_t avail, size_t size, uint64_t max_elements,
                          Header* header);

// The most bytes the header and group tables of this header's streams can take.
uint64_t TablesBound(const Header& header);

// Every group's tables from the first `avail` bytes (avail ≥ min(size − 4, TablesBound)), with
// the check that the chunk lengths fill the stream exactly (§6).
slicer_status ParseTables(const uint8_t* data, size_t avail, size_t size, const Header& header,
                          Tables* tables);

// Writing (§6): the fixed header, the counterpart of ParseHeader. Writes magic, version 1 and
// the fields of `fields` that ParseHeader fills (num_elements is implied by the shape);
// returns the header's length, Header::bytes of the stream.
size_t AppendHeader(const slicer_header& fields, std::vector<uint8_t>* out);

// Writing (§6): one group's k, n_pos, widths and chains, then its chunk table. `widths`, `lo`,
// `hi` and `counts` hold one entry per label; blocks with counts[label] == 0 are skipped.
void AppendGroupTables(uint64_t k, uint64_t n_pos, uint32_t blocks_pos, uint32_t num_labels,
                       const uint64_t* counts, const uint32_t* widths, const float* lo,
                       const float* hi, uint64_t chunks, const uint64_t* chunk_counts,
                       const uint64_t* chunk_bytes, std::vector<uint8_t>* out);

}  // namespace slicer::format

#endif  // SLICER_SRC_FORMAT_STREAM_FORMAT_HPP_
