// One pinned status per rejection, with the name of the field or check that failed (§6.2, §7).
// The name of the calling thread's last rejection is what slicer_error_detail() returns.
#ifndef SLICER_SRC_FORMAT_REJECT_HPP_
#define SLICER_SRC_FORMAT_REJECT_HPP_

#include <cstddef>
#include <cstdint>

#include "slicer/slicer.h"

// Returns the status of `expr` when it is not SLICER_OK.
#define SLICER_TRY(expr)             \
  do {                               \
    const slicer_status s_ = (expr); \
    if (s_ != SLICER_OK) return s_;  \
  } while (0)

namespace slicer::format {

// Records `what` (a string literal) for the calling thread and returns `status`.
slicer_status Reject(slicer_status status, const char* what);

// The calling thread's last rejection ("" when none since ClearRejection).
const char* LastRejection();
void ClearRejection();

// A varint (§1) at [*pos, end) as a status: SLICER_ERR_TRUNCATED when it runs past end,
// SLICER_ERR_CORRUPT when it is not minimal or not below 2^64 (no rejection name).
slicer_status ReadVarint(const uint8_t* data, size_t end, size_t* pos, uint64_t* value);

}  // namespace slicer::format

#endif  // SLICER_SRC_FORMAT_REJECT_HPP_
