// Array intake for objects NumPy cannot import by itself (e.g. bfloat16 tensors exported
// through DLPack): expose their memory as a NumPy array of unsigned integers of the same
// width, so that the Python layer sees every input as a NumPy array without copying.
#include <nanobind/ndarray.h>

#include <cstdint>
#include <vector>

#include "glue.hpp"

namespace slicer_py {
namespace {

using AnyCpuArray = nb::ndarray<nb::ro, nb::device::cpu>;

// Returns (view, dtype_code, dtype_bits): `view` is a read-only NumPy array of uint8/16/32/64
// over the same memory and strides; dtype_code/bits are the DLPack type of the source.
nb::tuple RawView(AnyCpuArray array) {
  const nb::dlpack::dtype dt = array.dtype();
  if (dt.lanes != 1) throw nb::type_error("vector (multi-lane) element types are not supported");
  nb::dlpack::dtype raw;
  raw.code = static_cast<uint8_t>(nb::dlpack::dtype_code::UInt);
  raw.bits = dt.bits;
  raw.lanes = 1;
  const size_t ndim = array.ndim();
  std::vector<size_t> shape(ndim);
  std::vector<int64_t> strides(ndim);
  for (size_t i = 0; i < ndim; ++i) {
    shape[i] = array.shape(i);
    strides[i] = array.stride(i);
  }
  nb::object view;
  if (dt.bits == 8 || dt.bits == 16 || dt.bits == 32 || dt.bits == 64) {
    // The capsule keeps the imported tensor (and so its producer's memory) alive.
    auto* keep = new AnyCpuArray(array);
    nb::capsule owner(keep, [](void* p) noexcept { delete static_cast<AnyCpuArray*>(p); });
    view =
        nb::ndarray<nb::numpy, nb::ro>(array.data(), ndim, shape.data(), owner, strides.data(), raw)
            .cast();
  } else {
    view = nb::none();
  }
  return nb::make_tuple(view, static_cast<int>(dt.code), static_cast<int>(dt.bits));
}

}  // namespace

void RegisterIntake(nb::module_& m) {
  m.def("raw_view", &RawView, nb::arg("array"),
        "View a CPU array exported through DLPack or the buffer protocol as unsigned integers "
        "of its element width. Returns (view or None, dlpack_type_code, bits).");
}

}  // namespace slicer_py
