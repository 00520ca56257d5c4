#include "dense/dense_writer.hpp"

#include <algorithm>

#include "codec.hpp"
#include "crc32.hpp"
#include "dense/coder.hpp"
#include "dense/dense_internal.hpp"
#include "format/class_map.hpp"
#include "varint.hpp"

namespace slicer::dense {

using internal::StatusError;

void Put(uint64_t v, std::vector<uint8_t>* out) {
  uint8_t buf[10];
  const size_t len = internal::PutVarint(v, buf);
  out->insert(out->end(), buf, buf + len);
}

void WriteCommonHeader(int dtype, const int64_t* shape, uint32_t ndim, unsigned layout,
                       std::vector<uint8_t>* out, uint8_t mode) {
  static const uint8_t magic[4] = {0x53, 0x4C, 0x43, 0x52};
  out->insert(out->end(), magic, magic + 4);
  out->push_back(kVersion);
  out->push_back(static_cast<uint8_t>(dtype));
  out->push_back(0);
  out->push_back(static_cast<uint8_t>(ndim));
  for (uint32_t d = 0; d < ndim; ++d) Put(static_cast<uint64_t>(shape[d]), out);
  out->push_back(static_cast<uint8_t>(layout));
  out->push_back(mode);
}

void CheckEncodeInput(const void* data, const int64_t* shape, uint32_t ndim,
                      const slicer_dense_params& params, EncodeInput* in) {
  uint64_t& n = in->n;
  slicer_status st = CheckShape(shape, ndim, &n);
  if (st != SLICER_OK) throw StatusError(st, "shape");
  if (n > 0 && data == nullptr) throw StatusError(SLICER_ERR_INVALID_ARGUMENT, "data");
  if (!MakeLayout(shape, ndim, n, params.layout, &in->layout)) {
    throw StatusError(SLICER_ERR_INVALID_ARGUMENT, "layout needs more axes");
  }
  const Layout& layout = in->layout;
  const unsigned nclass = in->nclass = params.classes >= 2 ? params.classes : 1;
  in->ranges = (params.class_axis & format::kClassRangesBit) != 0;  // §18.3
  in->bounds = (params.class_axis & format::kClassBoundsBit) != 0;  // §18.4
  in->rank = !in->ranges && !in->bounds;                            // §18.2
  if (nclass > 1) {
    ClassGeometry& geo = in->geo;
    if (!MakeClassGeometry(shape, ndim, params.class_axis & format::kClassAxisBit, &geo)) {
      throw StatusError(SLICER_ERR_INVALID_ARGUMENT, "class axis needs more axes");
    }
    if (geo.length < nclass) throw StatusError(SLICER_ERR_INVALID_ARGUMENT, "classes above L");
    if (in->bounds &&
        !format::ValidBounds(params.class_bounds, params.class_bounds_count, nclass, geo.length)) {
      throw StatusError(SLICER_ERR_INVALID_ARGUMENT, "class bounds");
    }
  }
  in->has_table = params.group_table != nullptr;
  if (in->has_table) {
    if (params.group_table_size != layout.groups) {
      throw StatusError(SLICER_ERR_INVALID_ARGUMENT, "group table size");
    }
    std::vector<uint8_t>& kinds = in->kinds;
    kinds.assign(params.group_table, params.group_table + layout.groups);
    in->steps.assign(layout.groups, 1.0);
    for (uint64_t g = 0; g < layout.groups; ++g) {
      if (!GroupByteValid(kinds[g])) throw StatusError(SLICER_ERR_INVALID_ARGUMENT, "group byte");
      if (GroupIsDense(kinds[g]) &&
          !GroupStep(params.step, static_cast<int8_t>(kinds[g]), &in->steps[g])) {
        throw StatusError(SLICER_ERR_INVALID_ARGUMENT, "group step");
      }
    }
  }
  GroupStep(params.step, 0, &in->base_step);
  in->chunk = uint64_t{1} << params.chunk_log2;
  in->nch = (n + in->chunk - 1) / in->chunk;
}

void MakeClassMap(const EncodeInput& in, const slicer_dense_params& params,
                  const std::vector<uint64_t>& sums, std::vector<uint8_t>* class_map) {
  const uint64_t length = in.geo.length;
  class_map->resize(length);
  if (in.ranges) {
    format::RangeClasses(length, in.nclass, class_map->data());
  } else if (in.bounds) {
    format::BoundsClasses(params.class_bounds, in.nclass, length, class_map->data());
  } else {
    format::ClassRule(sums.data(), length, in.nclass, class_map->data());
  }
}

void WriteStreamHead(const EncodeInput& in, const void* data, int dtype, const int64_t* shape,
                     uint32_t ndim, const slicer_dense_params& params, uint8_t mode,
                     const uint8_t* mode_params, size_t params_len,
                     const std::vector<uint8_t>& class_map,
                     const std::vector<std::vector<unsigned>>& classes,
                     const std::vector<unsigned>& nsym_of, const std::vector<uint64_t>& chunk_lens,
                     std::vector<uint8_t>* out, const std::vector<uint8_t>* kind_table) {
  out->clear();
  WriteCommonHeader(dtype, shape, ndim, params.layout, out, mode);
  out->push_back(static_cast<uint8_t>(params_len));
  out->insert(out->end(), mode_params, mode_params + params_len);
  if (in.has_table) out->insert(out->end(), in.kinds.begin(), in.kinds.end());
  if (in.nclass > 1 && in.rank) format::WriteClassMap(class_map.data(), in.geo.length, out);
  if (in.nclass > 1 && in.bounds) format::WriteClassBounds(params.class_bounds, in.nclass, out);
  for (size_t x = 0; x < nsym_of.size(); ++x) {
    Put(nsym_of[x], out);
    if (kind_table != nullptr) {
      out->insert(out->end(), kind_table->begin(), kind_table->end());
    } else {
      WriteClassField(classes[x].data(), nsym_of[x], out);
    }
  }
  for (uint64_t v : chunk_lens) Put(v, out);
  if (in.has_table &&
      data != nullptr) {  // the raw groups' elements, group after group, each in flat order
    const size_t item = DtypeBytes(dtype);
    const uint8_t* bytes = static_cast<const uint8_t*>(data);
    const uint64_t n = in.n;
    for (uint64_t g = 0; g < in.layout.groups; ++g) {
      if (in.kinds[g] != kGroupRaw) continue;
      for (uint64_t i = 0; i < n;) {
        const uint64_t stop = std::min(n, i + in.layout.RunLeft(i, n));
        if (in.layout.GroupOf(i) == g)
          out->insert(out->end(), bytes + item * i, bytes + item * stop);
        i = stop;
      }
    }
  }
}

void AppendChecksum(std::vector<uint8_t>* out) {
  const size_t size = out->size();
  out->resize(size + 4);
  WriteChecksum(out->data(), size);
}

void WriteChecksum(uint8_t* stream, size_t size) {
  const uint32_t crc = internal::Crc32(0, stream, size);
  for (int b = 0; b < 4; ++b) stream[size + b] = static_cast<uint8_t>(crc >> (8 * b));
}

}  // namespace slicer::dense
