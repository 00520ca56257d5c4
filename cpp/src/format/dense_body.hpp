// Format 2 stream body of the dense modes (docs/format.md §12.1, §13, §19.2, §21.4): the group
// table, the class map, the frequency tables, the chunk table, the raw values and the payload
// lengths, read with the checks and statuses of the spec in their order, and the byte account
// of slicer_dense_info. One parser for modes 1, 2 and 3 (dense/dense_decode.cpp,
// dense/trellis_decode.cpp; the CUDA decoder takes the parsed body from ParseDense); the
// mode parameters (§10's params field) stay with each mode.
#ifndef SLICER_SRC_FORMAT_DENSE_BODY_HPP_
#define SLICER_SRC_FORMAT_DENSE_BODY_HPP_

#include <cstddef>
#include <cstdint>
#include <vector>

#include "dense/dense.hpp"
#include "format/dense_header.hpp"
#include "slicer/slicer.h"

namespace slicer::format {

// What the mode's parameters say about the body.
struct DenseBodyParams {
  float step = 0;
  unsigned chunk_log2 = 0;
  bool has_table = false;
  unsigned table_kind = 0;             // §13.5 (mode 1; 0 in modes 2, 3)
  unsigned low_bits = 0;               // §13.6: the plane's width k (mode 1; 0 in modes 2, 3)
  unsigned nclass = 1;                 // 1 … 16
  unsigned class_axis = 0;             // nclass > 1
  unsigned class_kind = 0;             // ClassMapKind (nclass > 1)
  ::slicer::dense::ClassGeometry geo;  // nclass > 1
  // Frequency tables per class: 1 (modes 1, 2), 2 (mode 3: context 2c + q, §21.3).
  unsigned tables_per_class = 1;
  // Modes 1, 2 (§13.1, §19.2): a table is empty iff its class codes nothing ("class table
  // (empty iff its class codes nothing)"; one class: "dense frequency table"). Mode 3 (§21.3):
  // only a class without coded elements must have empty tables ("class table (a class without
  // coded elements)"), as a context may go unused.
  bool empty_iff_uncoded = true;
  // slicer_dense_info::class_table_bytes of a one-class stream: modes 1, 2 leave it 0, mode 3
  // accounts its two tables as class 0's.
  bool account_one_class_tables = false;
};

struct DenseTable {
  unsigned nsym = 0;
  std::vector<uint32_t> freq, cum;  // Normalize's (cum: nsym + 1 entries); empty when nsym = 0
  uint64_t bytes = 0;               // nsym varint and the class field (or z, a: §13.5)
};

struct DenseChunk {
  uint64_t coded, rans_len, bits_len, offset;
};

struct DenseBody {
  ::slicer::dense::Layout layout;
  const uint8_t* table = nullptr;  // G bytes in the stream (has_table)
  std::vector<double> steps;       // per group (has_table)
  double base_step = 0;
  uint64_t zero_groups = 0, raw_groups = 0;
  std::vector<uint8_t> class_map;  // nclass > 1 and N > 0: class per position
  uint64_t class_map_bytes = 0;
  std::vector<DenseTable> tables;  // nclass · tables_per_class
  unsigned max_nsym = 0;
  std::vector<DenseChunk> chunks;
  uint64_t coded_total = 0;
  size_t raw_pos = 0;
  // Ends of the parameters, group table, class map, frequency tables, chunk table, raw values.
  size_t header_end = 0, table_end = 0, map_end = 0, freq_end = 0, chunk_end = 0, raw_end = 0;
};

// Reads the body that starts at h.params_pos + h.params_len. The caller has checked the
// container, the header (ParseDenseHeader) and the mode's parameters.
slicer_status ParseDenseBody(const uint8_t* data, size_t size, const DenseHeader& h,
                             const DenseBodyParams& p, DenseBody* body);

// The fields of slicer_dense_info every dense mode has (memset first); the caller adds the
// mode's own (rho, offsets).
void FillDenseInfo(const uint8_t* data, size_t size, const DenseHeader& h, const DenseBodyParams& p,
                   const DenseBody& body, slicer_dense_info* info);

// §13.4: whether every raw value in [data + begin, data + end) is finite (whole items only).
bool RawValuesFinite(const uint8_t* data, int dtype, size_t begin, size_t end);

}  // namespace slicer::format

#endif  // SLICER_SRC_FORMAT_DENSE_BODY_HPP_
