// Whole-stream encoder (§3-§6) behind slicer_encode.
#ifndef SLICER_SRC_ENCODER_HPP_
#define SLICER_SRC_ENCODER_HPP_

#include <cstdint>
#include <vector>

#include "codec.hpp"

namespace slicer::internal {

enum class SelectionPath { kRadix, kSort };

// Encodes into `out` (replacing its contents). Throws StatusError on bad input.
void EncodeStream(const void* data, int dtype, const int64_t* shape, uint32_t ndim,
                  const CodecParams& params, SelectionPath path, std::vector<uint8_t>* out);

}  // namespace slicer::internal

#endif  // SLICER_SRC_ENCODER_HPP_
