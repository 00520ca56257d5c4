// Shared declarations of the slicer._core glue. The module only converts between Python
// objects and the C ABI of cpp/include/slicer/slicer.h; validation of user parameters and
// the mapping of status codes to exceptions live in the Python package (slicer/_errors.py).
#ifndef SLICER_PYTHON_GLUE_HPP_
#define SLICER_PYTHON_GLUE_HPP_

#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>

#include <cstddef>
#include <cstdint>
#include <mutex>
#include <new>
#include <vector>

#include "slicer/slicer.h"

namespace slicer_py {

namespace nb = nanobind;

// 1-D C-contiguous byte buffers on the host (streams, raw element bytes, output buffers).
using ConstBytes = nb::ndarray<const uint8_t, nb::ndim<1>, nb::c_contig, nb::device::cpu>;
using MutableBytes = nb::ndarray<uint8_t, nb::ndim<1>, nb::c_contig, nb::device::cpu>;

// slicer_context plus a lock held from the encode until its stream is copied into a Python
// object (the stream lives in the context until its next call, which another Python thread
// could otherwise start in between). The lock is only ever taken with the GIL released.
// Registered as slicer._core.Context (stream.cpp); decode and decode_batch take it too.
struct PyContext {
  explicit PyContext(uint32_t threads) : context(slicer_context_create(threads)) {
    if (context == nullptr) throw std::bad_alloc();
  }
  ~PyContext() { slicer_context_destroy(context); }
  PyContext(const PyContext&) = delete;
  PyContext& operator=(const PyContext&) = delete;

  slicer_context* context;
  std::mutex lock;
};

void RegisterIntake(nb::module_& m);
void RegisterBatch(nb::module_& m);
void RegisterStream(nb::module_& m);
void RegisterDense(nb::module_& m);
void RegisterFrames(nb::module_& m);
void RegisterRate(nb::module_& m);

// Checks that `nbytes` input bytes hold exactly the C-contiguous elements of `shape` at
// `itemsize` bytes each (ValueError otherwise).
inline void CheckRawLength(const std::vector<int64_t>& shape, size_t itemsize, size_t nbytes) {
  size_t count = 1;
  for (int64_t d : shape) {
    if (d < 0) throw nb::value_error("negative dimension");
    count *= static_cast<size_t>(d);
  }
  if (count * itemsize != nbytes) {
    throw nb::value_error("byte length of the input does not match its shape and dtype");
  }
}

}  // namespace slicer_py

#endif  // SLICER_PYTHON_GLUE_HPP_
