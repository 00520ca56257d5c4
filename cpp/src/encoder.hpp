// Whole-stream encoder (§3-§6) behind slicer_encode.
#ifndef SLICER_SRC_ENCODER_HPP_
#define SLICER_SRC_ENCODER_HPP_

#include <cstdint>
#include <vector>

#include "codec.hpp"

namespace slicer::internal {

enum class SelectionPath { kRadix, kSort };

class Context;

// float16 / bfloat16 bits at bytes[2 begin, 2 end) -> binary32 x[begin, end), exactly as
// HalfToFloat / BFloat16ToFloat (float_bits.hpp) convert one element.
void WidenHalf(const uint8_t* bytes, uint64_t begin, uint64_t end, float* x);
void WidenBFloat16(const uint8_t* bytes, uint64_t begin, uint64_t end, float* x);

// Tests only: true makes the encoder skip its AVX2 loops (chosen at run time where the CPU
// has AVX2) and take the baseline x86-64 ones, so both are compared on one machine.
void SetBaselineSimdForTesting(bool baseline);
bool BaselineSimdForTesting();

// True where the CPU and OS support AVX2 (checked once) and the tests have not asked for the
// baseline loops: the run-time switch of every AVX2 loop of the encoder.
bool UseAvx2();

// Encodes on `context` (its pool and scratch; params.threads = 0 or more than the context has
// means all of its threads). Returns the stream, owned by the context and valid until its
// next call. Throws StatusError on bad input.
const std::vector<uint8_t>& EncodeStream(Context* context, const void* data, int dtype,
                                         const int64_t* shape, uint32_t ndim,
                                         const CodecParams& params, SelectionPath path);

// The same on a context leased for the call (context.hpp); the stream replaces *out.
void EncodeStream(const void* data, int dtype, const int64_t* shape, uint32_t ndim,
                  const CodecParams& params, SelectionPath path, std::vector<uint8_t>* out);

// Encodes each of the shape[0] items (shape[1..ndim)) of a C-contiguous array as its own
// stream, byte-identical to EncodeStream of the item. streams[i] / sizes[i] receive item i's
// stream, owned by the context and valid until its next call.
void EncodeBatch(Context* context, const void* data, int dtype, const int64_t* shape, uint32_t ndim,
                 const CodecParams& params, const uint8_t** streams, size_t* sizes);

}  // namespace slicer::internal

#endif  // SLICER_SRC_ENCODER_HPP_
