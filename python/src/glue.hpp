// Shared declarations of the slicer._core glue. The module only converts between Python
// objects and the C ABI of cpp/include/slicer/slicer.h; validation of user parameters and
// the mapping of status codes to exceptions live in the Python package (slicer/_errors.py).
#ifndef SLICER_PYTHON_GLUE_HPP_
#define SLICER_PYTHON_GLUE_HPP_

#include <nanobind/nanobind.h>

#include "slicer/slicer.h"

namespace slicer_py {

namespace nb = nanobind;

void RegisterIntake(nb::module_& m);
void RegisterStream(nb::module_& m);
void RegisterDense(nb::module_& m);
void RegisterFrames(nb::module_& m);

}  // namespace slicer_py

#endif  // SLICER_PYTHON_GLUE_HPP_
