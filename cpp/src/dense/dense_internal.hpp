// Format 2 dense entry points used by the C ABI (dense_api.cpp).
#ifndef SLICER_SRC_DENSE_DENSE_INTERNAL_HPP_
#define SLICER_SRC_DENSE_DENSE_INTERNAL_HPP_

#include <cstddef>
#include <cstdint>
#include <vector>

#include "slicer/slicer.h"

namespace slicer::format {
struct DenseBody;
}  // namespace slicer::format

namespace slicer::dense {

slicer_status CheckParams(const slicer_dense_params* params);
slicer_status CheckShape(const int64_t* shape, uint32_t ndim, uint64_t* n);
void WriteCommonHeader(int dtype, const int64_t* shape, uint32_t ndim, unsigned layout,
                       std::vector<uint8_t>* out, uint8_t mode = 1);

// Throws internal::StatusError on bad input. With sse != nullptr also *sse = Σ (x − y)² with y
// the decoded stream (exactly the decoder's values), in binary64.
void EncodeDense(const void* data, int dtype, const int64_t* shape, uint32_t ndim,
                 const slicer_dense_params& params, std::vector<uint8_t>* stream,
                 double* sse = nullptr);

// Length, magic and CRC checks of §6.2; on success *version is the version byte.
slicer_status CheckContainer(const uint8_t* data, size_t size, uint32_t* version);

// Container, header and every table (not the chunk payloads); fills info (may be nullptr).
slicer_status ParseDense(const uint8_t* data, size_t size, uint64_t max_elements,
                         slicer_dense_info* info);
// The same, and hands out the parsed body (format/dense_body.hpp: group steps, class map,
// frequency tables, chunk table, raw values and payload positions) to a decoder that runs the
// chunks elsewhere (the CUDA decoder); body may be nullptr.
slicer_status ParseDense(const uint8_t* data, size_t size, uint64_t max_elements,
                         slicer_dense_info* info, format::DenseBody* body);

// Parses and fully validates a format-2 stream; decodes into dst when dst != nullptr
// (dst_bytes must be num_elements · itemsize). Fills info (may be nullptr).
slicer_status DecodeDense(const uint8_t* data, size_t size, uint64_t max_elements, void* dst,
                          size_t dst_bytes, unsigned threads, slicer_dense_info* info);

// Dispatch helpers for the format-1 entry points of api.cpp (status codes, never throw).
bool IsFormat2(const void* src, size_t size);
int DecodeFormat2(const void* src, size_t size, uint64_t max_elements, void* dst, size_t dst_bytes,
                  uint32_t threads);
int DecodeAllocFormat2(const void* src, size_t size, uint64_t max_elements, uint32_t threads,
                       slicer_alloc_fn alloc, void* ctx, slicer_header* header);
// full: also decode (validate) every chunk, as slicer_inspect does.
int HeaderFormat2(const void* src, size_t size, uint64_t max_elements, slicer_header* header,
                  slicer_account* account, bool full = true);

}  // namespace slicer::dense

#endif  // SLICER_SRC_DENSE_DENSE_INTERNAL_HPP_
