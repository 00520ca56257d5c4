#include "format/reject.hpp"

namespace slicer::format {
namespace {
thread_local const char* last_rejection = "";
}  // namespace

slicer_status Reject(slicer_status status, const char* what) {
  last_rejection = what;
  return status;
}

const char* LastRejection() { return last_rejection; }

void ClearRejection() { last_rejection = ""; }

}  // namespace slicer::format
