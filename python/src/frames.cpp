// Frames for token streams (docs/format.md §17): glue only. Status codes go back as ints; the
// Python layer (slicer/_frames.py) maps them to exceptions. The per-frame calls avoid tuples
// and temporary arrays: encode returns bytes or a status int, decode returns seq or −status.
#include <nanobind/ndarray.h>
#include <nanobind/stl/vector.h>

#include <cstdint>
#include <vector>

#include "glue.hpp"

namespace slicer_py {
namespace {

using AnyArray = nb::ndarray<nb::c_contig, nb::device::cpu>;
using ConstArray = nb::ndarray<nb::ro, nb::c_contig, nb::device::cpu>;

nb::tuple BuildContext(ConstBytes raw, int dtype, uint64_t num_rows,
                       const std::vector<int64_t>& row_shape, float step, int rho_256,
                       nb::object offsets, int states, uint32_t classes, double trellis_lambda) {
  slicer_frame_params p;
  slicer_frame_params_init(&p);
  p.step = step;
  p.rho_256 = static_cast<uint8_t>(rho_256);
  p.states = static_cast<uint8_t>(states);
  if (trellis_lambda != 0.0) {  // a trellis context (§17.4); 0: the dead-zone quantizer
    p.trellis = 1;
    p.trellis_lambda = static_cast<float>(trellis_lambda);
  }
  if (!offsets.is_none()) {
    p.auto_offsets = 0;
    p.offset1 = nb::cast<int8_t>(offsets[nb::int_(0)]);
    p.offset2 = nb::cast<int8_t>(offsets[nb::int_(1)]);
    if (p.trellis) {
      p.trellis_offset1 = nb::cast<int8_t>(offsets[nb::int_(2)]);
      p.trellis_offset2 = nb::cast<int8_t>(offsets[nb::int_(3)]);
    }
  }
  uint64_t row = 1;
  for (int64_t d : row_shape) row *= d > 0 ? static_cast<uint64_t>(d) : 0;
  const bool fits = classes <= SLICER_FRAME_MAX_CLASSES && row <= SLICER_FRAME_MAX_ROW;
  std::vector<uint8_t> dst(!fits         ? SLICER_FRAME_CONTEXT_MAX_BYTES
                           : p.trellis   ? SLICER_FRAME_TRELLIS_CONTEXT_BOUND(row, classes)
                           : classes > 1 ? SLICER_FRAME_CONTEXT_BOUND(row, classes)
                                         : SLICER_FRAME_CONTEXT_MAX_BYTES);
  size_t written = 0;
  int status;
  {
    nb::gil_scoped_release release;
    status = slicer_frame_context_build_classes(raw.data(), dtype, num_rows, row_shape.data(),
                                                static_cast<uint32_t>(row_shape.size()), &p,
                                                classes, dst.data(), dst.size(), &written);
  }
  if (status != SLICER_OK) return nb::make_tuple(status, nb::none());
  return nb::make_tuple(status, nb::bytes(reinterpret_cast<const char*>(dst.data()), written));
}

class FrameHandle {
 public:
  FrameHandle() = default;
  FrameHandle(const FrameHandle&) = delete;
  FrameHandle& operator=(const FrameHandle&) = delete;
  ~FrameHandle() { slicer_frame_context_free(ctx_); }

  int Open(ConstBytes buf, uint64_t max_elements) {
    slicer_frame_context_free(ctx_);
    ctx_ = nullptr;
    const int status = slicer_frame_context_open(buf.data(), buf.shape(0), max_elements, &ctx_);
    if (status != SLICER_OK) return status;
    slicer_frame_context_info(ctx_, &info_);
    out_.resize(info_.frame_bound);
    return status;
  }

  nb::dict Info() const {
    nb::dict d;
    d["dtype"] = static_cast<int>(info_.dtype);
    nb::list shape;
    for (uint32_t i = 0; i < info_.ndim; ++i) shape.append(info_.shape[i]);
    d["row_shape"] = nb::tuple(shape);
    d["row_elements"] = info_.row_elements;
    d["step"] = info_.step;
    d["rho_256"] = info_.rho_256;
    d["offsets"] = info_.trellis ? nb::make_tuple(info_.offset1, info_.offset2,
                                                  info_.trellis_offset1, info_.trellis_offset2)
                                 : nb::make_tuple(info_.offset1, info_.offset2);
    d["trellis"] = info_.trellis;
    d["trellis_lambda"] = info_.trellis_lambda;
    d["states"] = info_.states;
    d["context_id"] = info_.context_id;
    d["context_bytes"] = info_.context_bytes;
    d["frame_bound"] = info_.frame_bound;
    uint32_t classes = 1;
    slicer_frame_context_classes(ctx_, &classes);
    d["classes"] = classes;
    return d;
  }

  // bytes on success, the status (int) otherwise.
  nb::object Encode(ConstArray row, uint32_t seq) {
    size_t written = 0;
    const int status = slicer_frame_encode(ctx_, row.data(), row.nbytes(), seq, out_.data(),
                                           out_.size(), &written);
    if (status != SLICER_OK) return nb::int_(status);
    return nb::bytes(reinterpret_cast<const char*>(out_.data()), written);
  }

  // The frame's sequence number on success, −status otherwise.
  int Decode(nb::bytes frame, AnyArray out) {
    uint32_t seq = 0;
    const int status =
        slicer_frame_decode(ctx_, frame.c_str(), frame.size(), out.data(), out.nbytes(), &seq);
    return status == SLICER_OK ? static_cast<int>(seq) : -status;
  }

 private:
  slicer_frame_context* ctx_ = nullptr;
  slicer_frame_info info_{};
  std::vector<uint8_t> out_;
};

}  // namespace

void RegisterFrames(nb::module_& m) {
  m.def("frame_context_build", &BuildContext, nb::arg("raw"), nb::arg("dtype"), nb::arg("num_rows"),
        nb::arg("row_shape"), nb::arg("step"), nb::arg("rho_256"), nb::arg("offsets").none(),
        nb::arg("states"), nb::arg("classes") = 1, nb::arg("trellis_lambda") = 0.0,
        "(status, context bytes) from calibration rows (§17.3).");
  nb::class_<FrameHandle>(m, "FrameHandle")
      .def(nb::init<>())
      .def("open", &FrameHandle::Open, nb::arg("buf"), nb::arg("max_elements"),
           "Validate and open context bytes; returns the status.")
      .def("info", &FrameHandle::Info)
      .def("encode", &FrameHandle::Encode, nb::arg("row"), nb::arg("seq"))
      .def("decode", &FrameHandle::Decode, nb::arg("frame"), nb::arg("out"));
}

}  // namespace slicer_py
