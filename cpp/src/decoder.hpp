// Fully validating stream parser and chunk decoder (§6, §6.1, §7).
#ifndef SLICER_SRC_DECODER_HPP_
#define SLICER_SRC_DECODER_HPP_

#include <cstddef>
#include <cstdint>
#include <vector>

#include "codec.hpp"

namespace slicer::internal {

struct ParsedBlock {
  uint64_t group;
  uint32_t label;
  uint64_t count;
  unsigned width;
  float lo;
  float hi;
};

struct ParsedGroup {
  uint64_t k;
  uint64_t n_pos;
  uint64_t first_block;  // index into ParsedStream::blocks
  uint32_t num_blocks;
};

struct ChunkEntry {
  uint64_t count;
  uint64_t offset;  // from the start of the stream
  uint64_t length;
};

struct ParsedStream {
  slicer_header header{};
  Geometry geometry;
  unsigned labels = 0;
  std::vector<ParsedGroup> groups;
  std::vector<ParsedBlock> blocks;
  std::vector<ChunkEntry> chunks;  // group-major
  slicer_account account{};        // byte fields filled by ParseStream
};

// Checks magic, version, checksum and header; stops after the header when `header_only`.
slicer_status ParseStream(const uint8_t* data, size_t size, uint64_t max_elements, bool header_only,
                          ParsedStream* stream);

// Decodes every chunk of a parsed stream into `dst` (may be NULL: validate only) and adds the
// payload bit counts to stream->account.
slicer_status DecodeChunks(const uint8_t* data, ParsedStream* stream, void* dst, unsigned threads);

}  // namespace slicer::internal

#endif  // SLICER_SRC_DECODER_HPP_
