// Shared declarations of the slicer._core glue. The module only converts between Python
// objects and the C ABI of cpp/include/slicer/slicer.h; validation of user parameters and
// the mapping of status codes to exceptions live in the Python package (slicer/_errors.py).
#ifndef SLICER_PYTHON_GLUE_HPP_
#define SLICER_PYTHON_GLUE_HPP_

#include <nanobind/nanobind.h>

#include "slicer/slicer.h"

namespace slicer_py {

namespace nb = nanobind;

// Builds slicer_params from the integer dict the Python layer prepares (slicer/_params.py):
// keys sparsity_ppb, asym_ppb, delta_micro, seed, bits, blocks_pos, blocks_neg, levels,
// chunk_log2, group_rows, threads. Missing keys keep slicer_params_init defaults.
slicer_params ParamsFromDict(const nb::dict& params);

void RegisterIntake(nb::module_& m);
void RegisterStream(nb::module_& m);

}  // namespace slicer_py

#endif  // SLICER_PYTHON_GLUE_HPP_
