// Format 2, mode 3: dense with trellis-coded quantization (docs/format.md §21). The encoder is
// §21.6 (byte-identical to tests/reference_tcq.py), the decoder §21.4; both reuse the dense
// mode's groups, class maps, symbols, tables and rANS (dense.hpp, coder.hpp, format/).
#ifndef SLICER_SRC_DENSE_TRELLIS_HPP_
#define SLICER_SRC_DENSE_TRELLIS_HPP_

#include <cstddef>
#include <cstdint>
#include <vector>

#include "slicer/slicer.h"

namespace slicer::format {
struct DenseBody;
}  // namespace slicer::format

namespace slicer::dense::trellis {

constexpr uint8_t kModeTrellis = 3;
constexpr uint64_t kParamsLen = 12;
constexpr unsigned kPasses = 2;                  // §21.6 7.
constexpr int32_t kUnseenRate = 4096;            // 16 bits in 1/256 bit (§21.6 4.)
constexpr uint64_t kMaxMag = uint64_t{1} << 52;  // §21.2
constexpr double kMaxT = 0x1p52;                 // §21.6 1.

// The state machine (§21.1): next = kNext[s][m & 1]; quantizer(s) = s >> 1.
constexpr uint8_t kNext[4][2] = {{0, 2}, {2, 0}, {1, 3}, {3, 1}};

// Trellis-specific parameter checks (the rest is CheckParams').
slicer_status CheckParams(const slicer_dense_params* params);

// Throws internal::StatusError on bad input; sse as EncodeDense.
void Encode(const void* data, int dtype, const int64_t* shape, uint32_t ndim,
            const slicer_dense_params& params, std::vector<uint8_t>* stream, double* sse);

// True when the stream's container and common header are well formed and its mode is 3 (the
// caller then parses / decodes it with the functions below; otherwise with modes 1-2's).
bool IsTrellisStream(const uint8_t* data, size_t size, uint64_t max_elements);

// As ParseDense / DecodeDense for a mode-3 stream (body: as ParseDense's, may be nullptr).
slicer_status Parse(const uint8_t* data, size_t size, uint64_t max_elements,
                    slicer_dense_info* info, format::DenseBody* body = nullptr);
slicer_status Decode(const uint8_t* data, size_t size, uint64_t max_elements, void* dst,
                     size_t dst_bytes, unsigned threads, slicer_dense_info* info);

}  // namespace slicer::dense::trellis

#endif  // SLICER_SRC_DENSE_TRELLIS_HPP_
