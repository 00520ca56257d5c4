// Batch decode (slicer_decode_batch / slicer_context_decode_batch): many streams of one dtype and
// shape into the rows of one output, in one call with the GIL released. Returns the C status
// codes; slicer/_api.py turns them into exceptions.
#include <nanobind/ndarray.h>
#include <nanobind/stl/vector.h>

#include <cstdint>
#include <vector>

#include "glue.hpp"

namespace slicer_py {
namespace {

using Statuses = nb::ndarray<int32_t, nb::ndim<1>, nb::c_contig, nb::device::cpu>;

// The buffers of a sequence of byte strings, held for the span of the call.
class StreamViews {
 public:
  explicit StreamViews(const nb::sequence& streams) {
    const size_t count = nb::len(streams);
    views_.reserve(count);
    pointers_.reserve(count);
    sizes_.reserve(count);
    for (size_t i = 0; i < count; ++i) {
      nb::object item = streams[i];
      Py_buffer view;
      if (PyObject_GetBuffer(item.ptr(), &view, PyBUF_SIMPLE) != 0) {
        PyErr_Clear();
        throw nb::type_error("each stream must be a contiguous bytes-like object");
      }
      views_.push_back(view);
      pointers_.push_back(view.buf);
      sizes_.push_back(static_cast<size_t>(view.len));
    }
  }
  ~StreamViews() {
    for (Py_buffer& view : views_) PyBuffer_Release(&view);
  }
  StreamViews(const StreamViews&) = delete;
  StreamViews& operator=(const StreamViews&) = delete;

  size_t size() const { return pointers_.size(); }
  const void* const* pointers() const { return pointers_.data(); }
  const size_t* sizes() const { return sizes_.data(); }

 private:
  std::vector<Py_buffer> views_;
  std::vector<const void*> pointers_;
  std::vector<size_t> sizes_;
};

// (status, number of failed items): decode streams[i] into row i of `out` (the whole output
// as 1-D uint8); statuses[i] receives item i's status.
nb::tuple DecodeBatch(const nb::sequence& streams, MutableBytes out, int dtype,
                      const std::vector<int64_t>& shape, uint64_t max_elements, uint32_t threads,
                      Statuses statuses, PyContext* context) {
  StreamViews views(streams);
  if (statuses.shape(0) != views.size()) {
    throw nb::value_error("statuses must have one entry per stream");
  }
  int status = SLICER_OK;
  size_t failed = 0;
  {
    nb::gil_scoped_release release;
    const auto ndim = static_cast<uint32_t>(shape.size());
    status = context == nullptr
                 ? slicer_decode_batch(views.pointers(), views.sizes(), views.size(), max_elements,
                                       dtype, shape.data(), ndim, out.data(), out.shape(0),
                                       statuses.data(), &failed, threads)
                 : slicer_context_decode_batch(context->context, views.pointers(), views.sizes(),
                                               views.size(), max_elements, dtype, shape.data(),
                                               ndim, out.data(), out.shape(0), statuses.data(),
                                               &failed, threads);
  }
  return nb::make_tuple(status, failed);
}

}  // namespace

void RegisterBatch(nb::module_& m) {
  m.def("decode_batch", &DecodeBatch, nb::arg("streams"), nb::arg("out"), nb::arg("dtype"),
        nb::arg("shape"), nb::arg("max_elements"), nb::arg("threads"), nb::arg("statuses"),
        nb::arg("context").none() = nb::none(),
        "(status, failed): decode every stream into one row of `out` (1-D uint8 over the "
        "whole output); statuses[i] receives stream i's status.");
}

}  // namespace slicer_py
