// The budget driver of mode="auto" / mode="dense" with max_bytes or rel_error in C++
// (slicer_dense_encode_budget): dense_for_budget and dense_for_error of python/slicer/_rate.py,
// which stay the reference, step for step (the same model, the same binary64 operations, the
// same encodes, the same final stream), for classes 0 / 1 (mode 1), a given K >= 2 with a §18.2
// rank map, §18.3 index ranges or given §18.4 boundaries, and classes="auto"
// (SLICER_DENSE_CLASSES_AUTO: _resolve_classes' search over K, axes and map kinds in the rate
// model kernel's ClassSearch). Not here (Python only, for now): group tables (groups="rows" /
// "channels": the model divides by each group's step) and mode 3 (trellis).
#ifndef SLICER_SRC_DENSE_DENSE_BUDGET_HPP_
#define SLICER_SRC_DENSE_DENSE_BUDGET_HPP_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "slicer/slicer.h"

namespace slicer::dense {

// The flat indices of the rate model's sample of an n-element input, n > 2^15: NumPy's
// np.sort(np.random.default_rng(0x51C3).integers(0, n, 2^15)) (python/slicer/_rate.py
// _sample_positions) bit for bit: SeedSequence, PCG64 (XSL-RR 128/64) and NumPy's Lemire
// bounded integers. Cached per n (the last few).
std::shared_ptr<const std::vector<int64_t>> SamplePositions(uint64_t n);

// One encode of the driver: the stream (valid until the next call) and, when `sse` is not
// null, the squared error of the decoded stream (slicer_dense_encode_sse).
using BudgetEncoder = std::function<int(const slicer_dense_params& params, const uint8_t** stream,
                                        size_t* size, double* sse)>;

// The outcome of a driver call: the stream, or a status with what the caller's message needs.
struct BudgetResult {
  int status = SLICER_OK;
  // the stream: `data` / `size` point either into the last encode's output (still valid: no
  // encode after it) or into `copy` (an earlier encode's stream, kept)
  const uint8_t* data = nullptr;
  size_t size = 0;
  std::vector<uint8_t> copy;
  // SLICER_ERR_TARGET_UNREACHABLE with max_bytes: the smallest stream reached (bytes)
  uint64_t smallest = 0;
  // an encoder's failure: the step of the failing encode
  float step = 0.0f;
};

// Exactly one of max_bytes > 0 / rel_error > 0 (finite). `search_offsets`: the rounding offsets
// 128, 96, 72 / 256 (mode="auto"), else params->rho_256 only. params->step is not read.
// Argument errors are SLICER_ERR_INVALID_ARGUMENT / UNSUPPORTED_DTYPE / NONFINITE_INPUT.
// `check_finite` false: the caller has checked that every element is finite (the Python layer
// does before any encode), which saves a pass over the input (0.7 ms at 1M float32 here).
BudgetResult EncodeForBudget(const void* data, int dtype, const int64_t* shape, uint32_t ndim,
                             const slicer_dense_params& params, uint64_t max_bytes,
                             double rel_error, bool search_offsets, const BudgetEncoder& encode,
                             bool check_finite = true);

}  // namespace slicer::dense

#endif  // SLICER_SRC_DENSE_DENSE_BUDGET_HPP_
