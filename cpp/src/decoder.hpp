// Fully validating stream parser and chunk decoder (§6, §6.1, §7).
#ifndef SLICER_SRC_DECODER_HPP_
#define SLICER_SRC_DECODER_HPP_

#include <cstddef>
#include <cstdint>
#include <vector>

#include "codec.hpp"
#include "format/stream_format.hpp"

namespace slicer::internal {

// The tables of format 1 come from the shared format layer (format/stream_format.hpp).
using ParsedBlock = format::Block;
using ParsedGroup = format::Group;
using ChunkEntry = format::Chunk;

struct ParsedStream {
  slicer_header header{};
  Geometry geometry;
  unsigned labels = 0;
  std::vector<ParsedGroup> groups;
  std::vector<ParsedBlock> blocks;  // group-major, label order
  std::vector<ChunkEntry> chunks;   // group-major
  slicer_account account{};         // byte fields filled by ParseStream
};

// Checks magic, version, checksum and header; stops after the header when `header_only`.
slicer_status ParseStream(const uint8_t* data, size_t size, uint64_t max_elements, bool header_only,
                          ParsedStream* stream);

// Decodes every chunk of a parsed stream into `dst` (may be NULL: validate only) and adds the
// payload bit counts to stream->account. A rejection is named (format/reject.hpp) on the
// calling thread, also when a worker found it.
slicer_status DecodeChunks(const uint8_t* data, ParsedStream* stream, void* dst, unsigned threads);

}  // namespace slicer::internal

#endif  // SLICER_SRC_DECODER_HPP_
