// slicer._core: nanobind glue over the C ABI (cpp/include/slicer/slicer.h).
#include <nanobind/nanobind.h>

#include "glue.hpp"

NB_MODULE(_core, m) {
  m.doc() = "Low-level bindings of the SLICER C ABI; use the slicer package instead.";
  m.attr("FORMAT_VERSION") = SLICER_FORMAT_VERSION;
  m.attr("MAX_NDIM") = SLICER_MAX_NDIM;
  m.attr("MAX_BLOCKS") = SLICER_MAX_BLOCKS;
  m.attr("MAX_BITS") = SLICER_MAX_BITS;
  slicer_py::RegisterIntake(m);
  slicer_py::RegisterStream(m);
  slicer_py::RegisterDense(m);
  slicer_py::RegisterFrames(m);
  slicer_py::RegisterBatch(m);
  slicer_py::RegisterRate(m);
}
