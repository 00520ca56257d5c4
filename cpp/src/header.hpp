// Stream header (§6) writing from codec parameters, shared by the encoder and the size bound;
// the bytes come from the format layer (format::AppendHeader).
#ifndef SLICER_SRC_HEADER_HPP_
#define SLICER_SRC_HEADER_HPP_

#include <cstdint>
#include <vector>

#include "codec.hpp"

namespace slicer::internal {

void WriteHeader(int dtype, const int64_t* shape, uint32_t ndim, const CodecParams& params,
                 uint64_t group_count, std::vector<uint8_t>* out);

inline bool IsSupportedDtype(int dtype) {
  return dtype == SLICER_FLOAT32 || dtype == SLICER_FLOAT16 || dtype == SLICER_BFLOAT16;
}

inline size_t DtypeSize(int dtype) { return dtype == SLICER_FLOAT32 ? 4 : 2; }

}  // namespace slicer::internal

#endif  // SLICER_SRC_HEADER_HPP_
