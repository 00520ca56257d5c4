// Format-2 "dense" entry points (docs/format.md §10-§16). Like stream.cpp, every function
// returns the C status as its first result; the Python layer maps it to exceptions.
#include <nanobind/ndarray.h>
#include <nanobind/stl/vector.h>

#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

#include "dense/dense_budget.hpp"
#include "glue.hpp"
#include "params_dict.hpp"

namespace slicer_py {
namespace {

nb::tuple DenseBound(const std::vector<int64_t>& shape, int dtype, const nb::dict& params) {
  const DenseParams p = DenseParamsFromDict(params);
  size_t bound = 0;
  const int status = slicer_dense_encode_bound(shape.data(), static_cast<uint32_t>(shape.size()),
                                               dtype, &p.raw, &bound);
  return nb::make_tuple(status, bound);
}

// (status, stream) or, with `measured`, (status, stream, sse): slicer_context_dense_encode on
// `context` (its pool and scratch; the stream is copied once, out of the context's scratch).
nb::tuple DenseEncodeImpl(PyContext& context, ConstBytes raw, int dtype,
                          const std::vector<int64_t>& shape, const nb::dict& params,
                          bool measured) {
  const size_t itemsize = slicer_dtype_size(dtype);
  auto fail = [&](int status) {
    return measured ? nb::make_tuple(status, nb::none(), nb::none())
                    : nb::make_tuple(status, nb::none());
  };
  if (itemsize == 0) return fail(static_cast<int>(SLICER_ERR_UNSUPPORTED_DTYPE));
  CheckRawLength(shape, itemsize, raw.shape(0));
  const DenseParams p = DenseParamsFromDict(params);
  const uint32_t ndim = static_cast<uint32_t>(shape.size());
  const uint8_t* stream = nullptr;
  size_t size = 0;
  double sse = 0.0;
  std::unique_lock<std::mutex> hold(context.lock, std::defer_lock);
  int status;
  {
    nb::gil_scoped_release release;
    hold.lock();
    status = slicer_context_dense_encode(context.context, raw.data(), dtype, shape.data(), ndim,
                                         &p.raw, &stream, &size, measured ? &sse : nullptr);
  }
  if (status != SLICER_OK) return fail(status);
  nb::bytes out(reinterpret_cast<const char*>(stream), size);
  return measured ? nb::make_tuple(status, out, sse) : nb::make_tuple(status, out);
}

nb::tuple DenseEncode(PyContext& context, ConstBytes raw, int dtype,
                      const std::vector<int64_t>& shape, const nb::dict& params) {
  return DenseEncodeImpl(context, raw, dtype, shape, params, false);
}

nb::tuple DenseEncodeSse(PyContext& context, ConstBytes raw, int dtype,
                         const std::vector<int64_t>& shape, const nb::dict& params) {
  return DenseEncodeImpl(context, raw, dtype, shape, params, true);
}

// (status, stream or None, size): slicer_context_dense_encode_budget's driver on `context`
// (size: the smallest stream's bytes when max_bytes cannot be met), its encodes through
// slicer_context_dense_encode, without the driver's finiteness pass: the Python layer has
// checked every element before it calls this.
nb::tuple DenseEncodeBudget(PyContext& context, ConstBytes raw, int dtype,
                            const std::vector<int64_t>& shape, const nb::dict& params,
                            uint64_t max_bytes, double rel_error, bool search_offsets) {
  const size_t itemsize = slicer_dtype_size(dtype);
  if (itemsize == 0) {
    return nb::make_tuple(static_cast<int>(SLICER_ERR_UNSUPPORTED_DTYPE), nb::none(), 0);
  }
  CheckRawLength(shape, itemsize, raw.shape(0));
  const DenseParams p = DenseParamsFromDict(params);
  const uint32_t ndim = static_cast<uint32_t>(shape.size());
  auto encode = [&](const slicer_dense_params& q, const uint8_t** stream, size_t* size,
                    double* sse) {
    return slicer_context_dense_encode(context.context, raw.data(), dtype, shape.data(), ndim, &q,
                                       stream, size, sse);
  };
  slicer::dense::BudgetResult r;
  std::unique_lock<std::mutex> hold(context.lock, std::defer_lock);
  {
    nb::gil_scoped_release release;
    hold.lock();
    r = slicer::dense::EncodeForBudget(raw.data(), dtype, shape.data(), ndim, p.raw, max_bytes,
                                       rel_error, search_offsets, encode, false);
  }
  if (r.status != SLICER_OK) return nb::make_tuple(r.status, nb::none(), r.smallest);
  return nb::make_tuple(r.status, nb::bytes(reinterpret_cast<const char*>(r.data), r.size), r.size);
}

nb::tuple DenseInspect(ConstBytes buf, uint64_t max_elements) {
  slicer_dense_info info{};
  int status;
  {
    nb::gil_scoped_release release;
    status = slicer_dense_inspect(buf.data(), buf.shape(0), max_elements, &info);
  }
  if (status != SLICER_OK) return nb::make_tuple(status, nb::none());
  nb::dict d;
  d["format_version"] = info.format_version;
  d["mode"] = info.mode;
  d["dtype"] = static_cast<int>(info.dtype);
  nb::list shape;
  for (uint32_t i = 0; i < info.ndim && i < SLICER_MAX_NDIM; ++i) shape.append(info.shape[i]);
  d["shape"] = nb::tuple(shape);
  d["num_elements"] = info.num_elements;
  d["layout"] = info.layout;
  d["group_count"] = info.group_count;
  d["step"] = info.step;
  d["rho_256"] = info.rho_256;
  d["offsets"] = nb::make_tuple(info.offset1, info.offset2);
  d["trellis_offsets"] = nb::make_tuple(info.trellis_offset1, info.trellis_offset2);  // mode 3
  d["chunk_log2"] = info.chunk_log2;
  d["has_group_table"] = info.has_group_table != 0;
  d["table_kind"] = info.table_kind;  // §13.5
  d["low_bits"] = info.low_bits;      // §13.6
  d["total_bytes"] = info.total_bytes;
  d["header_bytes"] = info.header_bytes;
  d["group_table_bytes"] = info.group_table_bytes;
  d["freq_table_bytes"] = info.freq_table_bytes;
  d["chunk_table_bytes"] = info.chunk_table_bytes;
  d["raw_bytes"] = info.raw_bytes;
  d["rans_bytes"] = info.rans_bytes;
  d["extra_bits_bytes"] = info.extra_bits_bytes;
  d["checksum_bytes"] = info.checksum_bytes;
  d["coded"] = info.coded;
  d["chunks"] = info.chunks;
  d["symbols"] = info.symbols;
  d["zero_groups"] = info.zero_groups;
  d["raw_groups"] = info.raw_groups;
  d["classes"] = info.classes;
  d["class_axis"] = info.class_axis;
  d["class_map"] = info.class_map_kind == 2   ? "bounds"
                   : info.class_map_kind == 1 ? "ranges"
                                              : "rank";
  nb::list bounds;
  for (uint32_t j = 0; info.class_map_kind == 2 && j + 1 < info.classes && j < 15; ++j)
    bounds.append(info.class_bounds[j]);
  d["class_bounds"] = bounds;
  d["class_map_bytes"] = info.class_map_bytes;
  nb::list tables;
  for (uint32_t c = 0; c < info.classes && (info.classes > 1 || info.mode == 3) && c < 16; ++c)
    tables.append(info.class_table_bytes[c]);
  d["class_table_bytes"] = tables;
  return nb::make_tuple(status, d);
}

nb::tuple StreamVersion(ConstBytes buf) {
  uint32_t version = 0;
  const int status = slicer_stream_version(buf.data(), buf.shape(0), &version);
  return nb::make_tuple(status, version);
}

}  // namespace

void RegisterDense(nb::module_& m) {
  m.def("dense_auto_chunk_log2", &slicer_dense_auto_chunk_log2, nb::arg("n"),
        "The default chunk_log2 of modes 1 and 2 for n elements (docs/format.md §15.1).");
  m.def("dense_encode_bound", &DenseBound, nb::arg("shape"), nb::arg("dtype"), nb::arg("params"),
        "(status, bound): upper bound on a dense stream's size (docs/format.md §16).");
  m.def("dense_encode", &DenseEncode, nb::arg("context"), nb::arg("raw"), nb::arg("dtype"),
        nb::arg("shape"), nb::arg("params"),
        "(status, stream): format-2 dense encode of C-contiguous elements on a context.");
  m.def("dense_encode_sse", &DenseEncodeSse, nb::arg("context"), nb::arg("raw"), nb::arg("dtype"),
        nb::arg("shape"), nb::arg("params"),
        "(status, stream, sse): dense_encode and the decoded values' squared error (binary64).");
  m.def("dense_encode_budget", &DenseEncodeBudget, nb::arg("context"), nb::arg("raw"),
        nb::arg("dtype"), nb::arg("shape"), nb::arg("params"), nb::arg("max_bytes"),
        nb::arg("rel_error"), nb::arg("search_offsets"),
        "(status, stream or None, size): the rate control of mode='auto' / 'dense' in C++ "
        "(slicer_context_dense_encode_budget).");
  m.def("dense_inspect", &DenseInspect, nb::arg("buf"), nb::arg("max_elements"),
        "(status, info dict): full validation and byte account of a format-2 stream.");
  m.def("stream_version", &StreamVersion, nb::arg("buf"),
        "(status, version): the format version after length, magic and CRC checks.");
}

}  // namespace slicer_py
