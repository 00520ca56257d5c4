// Format 2 stream writing shared by the dense encoders (modes 1, 2: dense_encode.cpp; mode 3:
// trellis_encode.cpp): the checked input of an encode, the class map (§18.2-§18.4) and the
// stream's assembly (§10 header, the mode's parameters, §12.1 group table, §19.2 class map,
// §13.1 frequency tables, §13.3 chunk table, §13.4 raw values; the payloads; the CRC).
#ifndef SLICER_SRC_DENSE_DENSE_WRITER_HPP_
#define SLICER_SRC_DENSE_DENSE_WRITER_HPP_

#include <cstddef>
#include <cstdint>
#include <vector>

#include "dense/dense.hpp"
#include "slicer/slicer.h"

namespace slicer::dense {

void Put(uint64_t v, std::vector<uint8_t>* out);  // one varint (§1)

// An encode's shape, layout, classes and group table, checked against the parameters.
struct EncodeInput {
  uint64_t n = 0;
  Layout layout;
  unsigned nclass = 1;
  bool ranges = false, bounds = false, rank = true;  // §18.3, §18.4, §18.2 (nclass > 1)
  ClassGeometry geo;                                 // nclass > 1
  bool has_table = false;
  std::vector<double> steps;   // per group (has_table)
  std::vector<uint8_t> kinds;  // per group: the table byte (has_table)
  double base_step = 0;
  uint64_t chunk = 0, nch = 0;
};

// Throws internal::StatusError on bad input.
void CheckEncodeInput(const void* data, const int64_t* shape, uint32_t ndim,
                      const slicer_dense_params& params, EncodeInput* in);

// The class of every class-axis position (nclass > 1): index ranges, boundaries, or the rank
// rule on the codes' position sums.
void MakeClassMap(const EncodeInput& in, const slicer_dense_params& params,
                  const std::vector<uint64_t>& sums, std::vector<uint8_t>* class_map);

// Clears *out and writes everything before the payloads: header, mode and parameters, group
// table, class map, the tables (nsym, count classes), the chunk table (chunk_lens: rANS and
// extra-bit lengths per chunk) and the raw groups' values of `data` (none when data is nullptr:
// the caller appends them, as the CUDA encoder does from device memory). kind_table: mode 1's
// table of a kind other than 0 (§13.5: the bytes after nsym), written instead of classes[0].
void WriteStreamHead(const EncodeInput& in, const void* data, int dtype, const int64_t* shape,
                     uint32_t ndim, const slicer_dense_params& params, uint8_t mode,
                     const uint8_t* mode_params, size_t params_len,
                     const std::vector<uint8_t>& class_map,
                     const std::vector<std::vector<unsigned>>& classes,
                     const std::vector<unsigned>& nsym_of, const std::vector<uint64_t>& chunk_lens,
                     std::vector<uint8_t>* out, const std::vector<uint8_t>* kind_table = nullptr);

// Appends the CRC-32 of everything before it (§6).
void AppendChecksum(std::vector<uint8_t>* out);

// Writes the CRC-32 of stream[0, size) at stream + size (4 bytes, §6).
void WriteChecksum(uint8_t* stream, size_t size);

}  // namespace slicer::dense

#endif  // SLICER_SRC_DENSE_DENSE_WRITER_HPP_
