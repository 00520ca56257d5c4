#include "format/dense_header.hpp"

#include "format/reject.hpp"

namespace slicer::format {

slicer_status ParseDenseHeader(const uint8_t* data, size_t size, uint64_t max_elements,
                               DenseHeader* h) {
  *h = DenseHeader{};
  if (size < 9) return Reject(SLICER_ERR_TRUNCATED, "length");
  const size_t end = size - 4;
  size_t pos = 5;
  auto u8 = [&](uint32_t* v) {
    if (pos >= end) return false;
    *v = data[pos++];
    return true;
  };
  uint32_t b;
  if (!u8(&b)) return SLICER_ERR_TRUNCATED;
  if (b < 1 || b > 4) return Reject(SLICER_ERR_CORRUPT, "dtype");
  h->dtype = static_cast<int>(b);
  if (!u8(&b)) return SLICER_ERR_TRUNCATED;
  if (b != 0) return Reject(SLICER_ERR_CORRUPT, "flags");
  if (!u8(&b)) return SLICER_ERR_TRUNCATED;
  if (b > SLICER_MAX_NDIM) return Reject(SLICER_ERR_CORRUPT, "ndim");
  h->ndim = b;
  bool zero = false, over = false;
  unsigned __int128 count = 1;
  for (uint32_t d = 0; d < h->ndim; ++d) {
    uint64_t v;
    SLICER_TRY(ReadVarint(data, end, &pos, &v));
    if (v >= (uint64_t{1} << 63)) return Reject(SLICER_ERR_CORRUPT, "dim");
    h->shape[d] = static_cast<int64_t>(v);
    if (v == 0) zero = true;
    if (!over) {
      count *= v;
      if (count >= (static_cast<unsigned __int128>(1) << 63)) over = true;
    }
  }
  h->n = zero ? 0 : static_cast<uint64_t>(count);
  if (!zero && (over || h->n > max_elements))
    return Reject(SLICER_ERR_LIMIT_EXCEEDED, "max_elements");
  if (!u8(&b)) return SLICER_ERR_TRUNCATED;
  h->layout = b;
  // §12.1: 0 tensor, 1 rows (ndim ≥ 1), 2 channel planes (ndim ≥ 2)
  if (b > 2 || (b == 1 && h->ndim < 1) || (b == 2 && h->ndim < 2))
    return Reject(SLICER_ERR_CORRUPT, "layout");
  if (!u8(&b)) return SLICER_ERR_TRUNCATED;
  h->mode = b;
  SLICER_TRY(ReadVarint(data, end, &pos, &h->params_len));
  if (h->params_len > end - pos) return Reject(SLICER_ERR_TRUNCATED, "params_len");
  h->params_pos = pos;
  return SLICER_OK;
}

}  // namespace slicer::format
