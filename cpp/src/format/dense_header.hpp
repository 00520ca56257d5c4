// Format 2 common header (docs/format.md §10): dtype, flags, shape, layout, mode and the length
// of the mode parameters, read with the checks and statuses of §10 in their order. Used by the
// parsers of modes 1-3 (dense/dense_decode.cpp, dense/trellis_decode.cpp; the body after the
// parameters: format/dense_body.hpp) and by the dispatch that sends mode-3 streams there.
#ifndef SLICER_SRC_FORMAT_DENSE_HEADER_HPP_
#define SLICER_SRC_FORMAT_DENSE_HEADER_HPP_

#include <cstddef>
#include <cstdint>

#include "slicer/slicer.h"

namespace slicer::format {

struct DenseHeader {
  int dtype = 0;
  uint32_t ndim = 0;
  int64_t shape[SLICER_MAX_NDIM] = {};
  uint64_t n = 0;  // element count (0 when a dimension is 0)
  unsigned layout = 0;
  unsigned mode = 0;
  size_t params_pos = 0;  // first byte of the mode parameters
  uint64_t params_len = 0;
};

// Reads the header of a format-2 stream whose container (length, magic, CRC, version) the
// caller has checked. Everything after the mode byte is the mode's; an unknown mode is not
// judged here.
slicer_status ParseDenseHeader(const uint8_t* data, size_t size, uint64_t max_elements,
                               DenseHeader* header);

}  // namespace slicer::format

#endif  // SLICER_SRC_FORMAT_DENSE_HEADER_HPP_
