// One pinned status per rejection, with the name of the field or check that failed (§6.2, §7).
// The name of the calling thread's last rejection is what slicer_error_detail() returns.
#ifndef SLICER_SRC_FORMAT_REJECT_HPP_
#define SLICER_SRC_FORMAT_REJECT_HPP_

#include "slicer/slicer.h"

namespace slicer::format {

// Records `what` (a string literal) for the calling thread and returns `status`.
slicer_status Reject(slicer_status status, const char* what);

// The calling thread's last rejection ("" when none since ClearRejection).
const char* LastRejection();
void ClearRejection();

}  // namespace slicer::format

#endif  // SLICER_SRC_FORMAT_REJECT_HPP_
