#include "format/reject.hpp"

#include "varint.hpp"

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

slicer_status ReadVarint(const uint8_t* data, size_t end, size_t* pos, uint64_t* value) {
  switch (internal::GetVarint(data, end, pos, value)) {
    case internal::VarintResult::kOk:
      return SLICER_OK;
    case internal::VarintResult::kTruncated:
      return SLICER_ERR_TRUNCATED;
    default:
      return SLICER_ERR_CORRUPT;
  }
}

}  // namespace slicer::format
