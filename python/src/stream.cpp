// Encode, decode, header and inspect entry points. Every function returns the C status code
// (slicer_status) as its first result instead of raising, so that the Python layer owns the
// one mapping from codes to exceptions and messages (slicer/_errors.py).
#include <nanobind/ndarray.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/vector.h>

#include <cstdint>
#include <memory>
#include <mutex>
#include <new>
#include <string>
#include <vector>

#include "glue.hpp"
#include "params_dict.hpp"

namespace slicer_py {
namespace {

// Bytes per element of a format-1 dtype (format 1 takes no float64); 0 otherwise.
size_t ItemSize(int dtype) { return dtype == SLICER_FLOAT64 ? 0 : slicer_dtype_size(dtype); }

nb::dict HeaderDict(const slicer_header& h) {
  nb::dict d;
  d["format_version"] = h.format_version;
  d["mode"] = h.mode;
  d["dtype"] = static_cast<int>(h.dtype);
  d["flags"] = h.flags;
  nb::list shape;
  for (uint32_t i = 0; i < h.ndim && i < SLICER_MAX_NDIM; ++i) shape.append(h.shape[i]);
  d["shape"] = nb::tuple(shape);
  d["num_elements"] = h.num_elements;
  d["sparsity_ppb"] = h.sparsity_ppb;
  d["asym_ppb"] = h.asym_ppb;
  d["delta_micro"] = h.delta_micro;
  d["seed"] = h.seed;
  d["bits"] = h.bits;
  d["blocks_pos"] = h.blocks_pos;
  d["blocks_neg"] = h.blocks_neg;
  d["chunk_log2"] = h.chunk_log2;
  d["group_count"] = h.group_count;
  return d;
}

nb::dict AccountDict(const slicer_account& a) {
  nb::dict d;
  d["total_bytes"] = a.total_bytes;
  d["header_bytes"] = a.header_bytes;
  d["group_bytes"] = a.group_bytes;
  d["block_meta_bytes"] = a.block_meta_bytes;
  d["chunk_table_bytes"] = a.chunk_table_bytes;
  d["position_bits"] = a.position_bits;
  d["label_bits"] = a.label_bits;
  d["value_bits"] = a.value_bits;
  d["padding_bits"] = a.padding_bits;
  d["checksum_bytes"] = a.checksum_bytes;
  d["kept"] = a.kept;
  d["chunks"] = a.chunks;
  return d;
}

// A 1-D NumPy array that owns a copy of `values`.
template <typename T>
nb::object Column(const std::vector<T>& values) {
  auto* copy = new std::vector<T>(values);
  nb::capsule owner(copy, [](void* p) noexcept { delete static_cast<std::vector<T>*>(p); });
  const size_t shape[1] = {copy->size()};
  return nb::ndarray<nb::numpy, T>(copy->data(), 1, shape, owner).cast();
}

nb::dict BlockColumns(const std::vector<slicer_block_info>& blocks) {
  const size_t n = blocks.size();
  std::vector<uint64_t> group(n), count(n);
  std::vector<uint32_t> label(n), index(n), width(n);
  std::vector<int32_t> sign(n);
  std::vector<float> lo(n), hi(n);
  for (size_t i = 0; i < n; ++i) {
    group[i] = blocks[i].group;
    label[i] = blocks[i].label;
    sign[i] = blocks[i].sign;
    index[i] = blocks[i].index;
    count[i] = blocks[i].count;
    width[i] = blocks[i].width;
    lo[i] = blocks[i].lo;
    hi[i] = blocks[i].hi;
  }
  nb::dict d;
  d["group"] = Column(group);
  d["label"] = Column(label);
  d["sign"] = Column(sign);
  d["index"] = Column(index);
  d["count"] = Column(count);
  d["width"] = Column(width);
  d["lo"] = Column(lo);
  d["hi"] = Column(hi);
  return d;
}

nb::tuple EncodeBound(const std::vector<int64_t>& shape, int dtype, const nb::dict& params) {
  const slicer_params p = ParamsFromDict(params);
  size_t bound = 0;
  const int status =
      slicer_encode_bound(shape.data(), static_cast<uint32_t>(shape.size()), dtype, &p, &bound);
  return nb::make_tuple(status, bound);
}

// `raw` holds the C-contiguous elements as bytes; `dtype` says how to read them.
nb::tuple Encode(ConstBytes raw, int dtype, const std::vector<int64_t>& shape,
                 const nb::dict& params) {
  const size_t itemsize = ItemSize(dtype);
  if (itemsize == 0)
    return nb::make_tuple(static_cast<int>(SLICER_ERR_UNSUPPORTED_DTYPE), nb::none());
  CheckRawLength(shape, itemsize, raw.shape(0));
  const slicer_params p = ParamsFromDict(params);
  const uint32_t ndim = static_cast<uint32_t>(shape.size());
  size_t bound = 0;
  int status = slicer_encode_bound(shape.data(), ndim, dtype, &p, &bound);
  if (status != SLICER_OK) return nb::make_tuple(status, nb::none());
  std::unique_ptr<uint8_t[]> dst(new uint8_t[bound > 0 ? bound : 1]);
  size_t written = 0;
  {
    nb::gil_scoped_release release;
    status = slicer_encode(raw.data(), dtype, shape.data(), ndim, &p, dst.get(), bound, &written);
  }
  if (status != SLICER_OK) return nb::make_tuple(status, nb::none());
  return nb::make_tuple(status, nb::bytes(reinterpret_cast<const char*>(dst.get()), written));
}

// Encoder parameters converted once from the integer dict of slicer/_params.py (callers that
// encode many tensors with the same settings keep one and skip the dict per call).
struct NativeParams {
  explicit NativeParams(const nb::dict& params) : raw(ParamsFromDict(params)) {}
  slicer_params raw;
};

using AnyArray = nb::ndarray<nb::ro, nb::c_contig, nb::device::cpu>;

// The shape of a C-contiguous array whose items are `dtype`; false when its element width is
// not the dtype's or it has too many dimensions.
bool ArrayShape(const AnyArray& array, int dtype, std::vector<int64_t>* shape) {
  if (array.ndim() > SLICER_MAX_NDIM || array.dtype().lanes != 1 ||
      array.dtype().bits != 8 * ItemSize(dtype)) {
    return false;
  }
  shape->resize(array.ndim());
  for (size_t i = 0; i < array.ndim(); ++i) (*shape)[i] = static_cast<int64_t>(array.shape(i));
  return true;
}

// (status, stream): encode a C-contiguous CPU array (float32 / float16, or the uint16 bits of
// bfloat16) on a context, without converting the parameters or copying the input.
nb::tuple EncodeArray(PyContext& context, AnyArray array, int dtype, const NativeParams& params) {
  if (ItemSize(dtype) == 0) {
    return nb::make_tuple(static_cast<int>(SLICER_ERR_UNSUPPORTED_DTYPE), nb::none());
  }
  std::vector<int64_t> shape;
  if (!ArrayShape(array, dtype, &shape)) {
    throw nb::value_error("the array's element width or rank does not match the dtype code");
  }
  const uint8_t* stream = nullptr;
  size_t size = 0;
  std::unique_lock<std::mutex> hold(context.lock, std::defer_lock);
  int status;
  {
    nb::gil_scoped_release release;
    hold.lock();
    status =
        slicer_context_encode(context.context, array.data(), dtype, shape.data(),
                              static_cast<uint32_t>(shape.size()), &params.raw, &stream, &size);
  }
  if (status != SLICER_OK) return nb::make_tuple(status, nb::none());
  return nb::make_tuple(status, nb::bytes(reinterpret_cast<const char*>(stream), size));
}

// (status, list of streams): every item along the first axis as its own stream, one C call.
nb::tuple EncodeBatchArray(PyContext& context, AnyArray array, int dtype,
                           const NativeParams& params) {
  if (ItemSize(dtype) == 0) {
    return nb::make_tuple(static_cast<int>(SLICER_ERR_UNSUPPORTED_DTYPE), nb::none());
  }
  std::vector<int64_t> shape;
  if (!ArrayShape(array, dtype, &shape) || shape.empty()) {
    throw nb::value_error("the array's element width or rank does not match the dtype code");
  }
  const size_t items = static_cast<size_t>(shape[0]);
  std::vector<const uint8_t*> streams(items);
  std::vector<size_t> sizes(items);
  std::unique_lock<std::mutex> hold(context.lock, std::defer_lock);
  int status;
  {
    nb::gil_scoped_release release;
    hold.lock();
    status = slicer_context_encode_batch(context.context, array.data(), dtype, shape.data(),
                                         static_cast<uint32_t>(shape.size()), &params.raw,
                                         streams.data(), sizes.data());
  }
  if (status != SLICER_OK) return nb::make_tuple(status, nb::none());
  // The list sized once and filled in place (append would re-check and grow it per item).
  nb::list out = nb::steal<nb::list>(PyList_New(static_cast<Py_ssize_t>(items)));
  if (!out.is_valid()) throw nb::python_error();
  for (size_t i = 0; i < items; ++i) {
    PyObject* stream = PyBytes_FromStringAndSize(reinterpret_cast<const char*>(streams[i]),
                                                 static_cast<Py_ssize_t>(sizes[i]));
    if (stream == nullptr) throw nb::python_error();
    PyList_SET_ITEM(out.ptr(), static_cast<Py_ssize_t>(i), stream);  // steals the reference
  }
  return nb::make_tuple(status, out);
}

nb::tuple ReadHeader(ConstBytes buf, uint64_t max_elements) {
  slicer_header header{};
  const int status = slicer_read_header(buf.data(), buf.shape(0), max_elements, &header);
  if (status != SLICER_OK) return nb::make_tuple(status, nb::none());
  return nb::make_tuple(status, HeaderDict(header));
}

int DecodeInto(ConstBytes buf, MutableBytes out, uint64_t max_elements, uint32_t threads) {
  nb::gil_scoped_release release;
  return slicer_decode(buf.data(), buf.shape(0), max_elements, out.data(), out.shape(0), threads);
}

// Owner of the output buffer that slicer_decode_alloc asks for (no GIL needed to allocate).
struct DecodeBuffer {
  uint8_t* data = nullptr;
  size_t bytes = 0;
};

void* AllocateDecodeBuffer(void* ctx, const slicer_header*, size_t bytes) {
  auto* buffer = static_cast<DecodeBuffer*>(ctx);
  buffer->data = new (std::nothrow) uint8_t[bytes > 0 ? bytes : 1];
  buffer->bytes = bytes;
  return buffer->data;
}

// (status, header dict, 1-D uint8 array of the decoded elements): the whole stream is validated
// before the output is allocated, and a stream that fails late leaves nothing behind.
// With a context, on its pool and scratch (slicer_context_decode_alloc).
nb::tuple Decode(ConstBytes buf, uint64_t max_elements, uint32_t threads, PyContext* context) {
  DecodeBuffer buffer;
  slicer_header header{};
  int status = SLICER_OK;
  {
    nb::gil_scoped_release release;
    status =
        context == nullptr
            ? slicer_decode_alloc(buf.data(), buf.shape(0), max_elements, threads,
                                  &AllocateDecodeBuffer, &buffer, &header)
            : slicer_context_decode_alloc(context->context, buf.data(), buf.shape(0), max_elements,
                                          threads, &AllocateDecodeBuffer, &buffer, &header);
  }
  std::unique_ptr<uint8_t[]> owned(buffer.data);
  if (status != SLICER_OK) return nb::make_tuple(status, nb::none(), nb::none());
  uint8_t* data = owned.release();
  nb::capsule owner(data, [](void* p) noexcept { delete[] static_cast<uint8_t*>(p); });
  const size_t shape[1] = {buffer.bytes};
  nb::object array = nb::ndarray<nb::numpy, uint8_t>(data, 1, shape, owner).cast();
  return nb::make_tuple(status, HeaderDict(header), array);
}

// (status, header, account, number of blocks, block columns or None). The per-block table
// costs a second validating pass and memory proportional to the blocks: only on request.
nb::tuple Inspect(ConstBytes buf, uint64_t max_elements, bool with_blocks) {
  slicer_header header{};
  slicer_account account{};
  size_t num_blocks = 0;
  int status = SLICER_OK;
  {
    nb::gil_scoped_release release;
    status = slicer_inspect(buf.data(), buf.shape(0), max_elements, &header, &account, nullptr, 0,
                            &num_blocks);
  }
  if (status != SLICER_OK) {
    return nb::make_tuple(status, nb::none(), nb::none(), nb::none(), nb::none());
  }
  if (!with_blocks) {
    return nb::make_tuple(status, HeaderDict(header), AccountDict(account), num_blocks, nb::none());
  }
  std::vector<slicer_block_info> blocks(num_blocks);
  {
    nb::gil_scoped_release release;
    status = slicer_inspect(buf.data(), buf.shape(0), max_elements, &header, &account,
                            blocks.data(), blocks.size(), &num_blocks);
  }
  if (status != SLICER_OK) {
    return nb::make_tuple(status, nb::none(), nb::none(), nb::none(), nb::none());
  }
  blocks.resize(num_blocks < blocks.size() ? num_blocks : blocks.size());
  return nb::make_tuple(status, HeaderDict(header), AccountDict(account), blocks.size(),
                        BlockColumns(blocks));
}

}  // namespace

void RegisterStream(nb::module_& m) {
  m.def(
      "version", [] { return std::string(slicer_version()); }, "Version of the linked C library.");
  m.def("format_version", &slicer_format_version, "Highest bitstream format this build handles.");
  m.def(
      "status_string", [](int status) { return std::string(slicer_status_string(status)); },
      nb::arg("status"), "The C library's description of a status code.");
  m.def("encode_bound", &EncodeBound, nb::arg("shape"), nb::arg("dtype"), nb::arg("params"),
        "(status, bound): upper bound on the stream size (docs/format.md §8).");
  m.def("encode", &Encode, nb::arg("raw"), nb::arg("dtype"), nb::arg("shape"), nb::arg("params"),
        "(status, stream): encode C-contiguous elements given as a 1-D uint8 array.");
  nb::class_<NativeParams>(m, "Params",
                           "Encoder parameters converted once from the integer dict of "
                           "slicer._params.make_params.")
      .def(nb::init<const nb::dict&>(), nb::arg("params"));
  nb::class_<PyContext>(m, "Context",
                        "A worker pool and reusable scratch (slicer_context, slicer.h).")
      .def(nb::init<uint32_t>(), nb::arg("threads"))
      .def_prop_ro(
          "threads", [](const PyContext& c) { return slicer_context_threads(c.context); },
          "Threads of its calls (the calling thread counts as one).");
  m.def("encode_array", &EncodeArray, nb::arg("context"), nb::arg("array"), nb::arg("dtype"),
        nb::arg("params"), "(status, stream): encode a C-contiguous CPU array on a context.");
  m.def("encode_batch_array", &EncodeBatchArray, nb::arg("context"), nb::arg("array"),
        nb::arg("dtype"), nb::arg("params"),
        "(status, list of streams): each item along axis 0 as its own stream, one call.");
  m.def("read_header", &ReadHeader, nb::arg("buf"), nb::arg("max_elements"),
        "(status, header dict or None): validate checksum and header.");
  m.def("decode_into", &DecodeInto, nb::arg("buf"), nb::arg("out"), nb::arg("max_elements"),
        nb::arg("threads"), "status: decode into a C-contiguous uint8 array of the output size.");
  m.def(
      "error_detail", [] { return std::string(slicer_error_detail()); },
      "The field or check that made this thread's last failing decode/inspect reject a stream.");
  m.def("decode", &Decode, nb::arg("buf"), nb::arg("max_elements"), nb::arg("threads"),
        nb::arg("context").none() = nb::none(),
        "(status, header, uint8 array): validate every table, then allocate and decode.");
  m.def("inspect", &Inspect, nb::arg("buf"), nb::arg("max_elements"), nb::arg("blocks"),
        "(status, header, account, block count, block columns or None): full validation plus "
        "byte account.");
}

}  // namespace slicer_py
