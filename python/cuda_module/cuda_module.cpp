// slicer._cuda: converts between Python objects (DLPack arrays, bytes, dicts) and the stream-
// ordered C ABI of cuda/include/slicer/slicer_cuda.h. Every entry point returns the status code
// first (like slicer._core); slicer/_gpu.py owns the mapping to exceptions. Device memory for
// temporaries comes from the stream-ordered allocator; results returned on the device own their
// allocation and export DLPack (torch.from_dlpack works on them).
#include <cuda_runtime.h>
#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/vector.h>

#include <cstdint>
#include <string>
#include <vector>

#include "params_dict.hpp"
#include "slicer/slicer.h"
#include "slicer/slicer_cuda.h"

namespace nb = nanobind;
using slicer_py::DenseParams;
using slicer_py::DenseParamsFromDict;
using slicer_py::ParamsFromDict;

namespace {

using AnyArray = nb::ndarray<nb::ro>;
using DeviceArray = nb::ndarray<>;

int DtypeCode(nb::dlpack::dtype dt) {
  if (dt.lanes != 1 || dt.bits == 0) return 0;
  if (dt.code == static_cast<uint8_t>(nb::dlpack::dtype_code::Float) && dt.bits == 32) {
    return SLICER_FLOAT32;
  }
  if (dt.code == static_cast<uint8_t>(nb::dlpack::dtype_code::Float) && dt.bits == 16) {
    return SLICER_FLOAT16;
  }
  if (dt.code == static_cast<uint8_t>(nb::dlpack::dtype_code::Bfloat) && dt.bits == 16) {
    return SLICER_BFLOAT16;
  }
  return 0;
}

// The dense mode also takes float64.
int DenseDtypeCode(nb::dlpack::dtype dt) {
  if (dt.lanes == 1 && dt.code == static_cast<uint8_t>(nb::dlpack::dtype_code::Float) &&
      dt.bits == 64) {
    return SLICER_FLOAT64;
  }
  return DtypeCode(dt);
}

nb::dlpack::dtype DlpackDtype(int code) {
  nb::dlpack::dtype dt{};
  dt.lanes = 1;
  if (code == SLICER_FLOAT32) {
    dt.code = static_cast<uint8_t>(nb::dlpack::dtype_code::Float);
    dt.bits = 32;
  } else if (code == SLICER_FLOAT16) {
    dt.code = static_cast<uint8_t>(nb::dlpack::dtype_code::Float);
    dt.bits = 16;
  } else if (code == SLICER_FLOAT64) {
    dt.code = static_cast<uint8_t>(nb::dlpack::dtype_code::Float);
    dt.bits = 64;
  } else {
    dt.code = static_cast<uint8_t>(nb::dlpack::dtype_code::Bfloat);
    dt.bits = 16;
  }
  return dt;
}

bool IsCContiguous(const DeviceArray& a) {
  int64_t expect = 1;
  for (size_t d = a.ndim(); d-- > 0;) {
    if (a.shape(d) != 1 && a.stride(d) != expect) return false;
    expect *= static_cast<int64_t>(a.shape(d));
  }
  return true;
}

std::vector<int64_t> ShapeOf(const DeviceArray& a) {
  std::vector<int64_t> shape(a.ndim());
  for (size_t d = 0; d < a.ndim(); ++d) shape[d] = static_cast<int64_t>(a.shape(d));
  return shape;
}

int FromCuda(cudaError_t err) {
  if (err == cudaSuccess) return SLICER_OK;
  if (err == cudaErrorNoDevice || err == cudaErrorInsufficientDriver) return SLICER_ERR_NO_DEVICE;
  if (err == cudaErrorMemoryAllocation) return SLICER_ERR_OUT_OF_MEMORY;
  return SLICER_ERR_CUDA_RUNTIME;
}

// Makes `device` current for the scope of one call.
class DeviceScope {
 public:
  explicit DeviceScope(int device) {
    cudaGetDevice(&previous_);
    status_ = FromCuda(cudaSetDevice(device));
  }
  ~DeviceScope() { cudaSetDevice(previous_); }
  int status() const { return status_; }

 private:
  int previous_ = 0;
  int status_ = SLICER_OK;
};

// Stream-ordered scratch memory, released on the same stream.
class Scratch {
 public:
  Scratch(size_t bytes, cudaStream_t stream) : stream_(stream) {
    if (bytes) status_ = FromCuda(cudaMallocAsync(&ptr_, bytes, stream));
  }
  ~Scratch() {
    if (ptr_) cudaFreeAsync(ptr_, stream_);
  }
  void* get() const { return ptr_; }
  int status() const { return status_; }

 private:
  void* ptr_ = nullptr;
  cudaStream_t stream_;
  int status_ = SLICER_OK;
};

// A device allocation handed to Python: freed when the last array viewing it goes away.
nb::capsule DeviceOwner(void* ptr) {
  return nb::capsule(ptr, [](void* p) noexcept { cudaFree(p); });
}

nb::object DeviceArrayOf(void* ptr, nb::capsule owner, const std::vector<size_t>& shape,
                         nb::dlpack::dtype dtype, int device) {
  nb::ndarray<> array(ptr, shape.size(), shape.data(), owner, nullptr, dtype,
                      nb::device::cuda::value, device);
  return nb::cast(array);
}

cudaStream_t AsStream(uintptr_t handle) { return reinterpret_cast<cudaStream_t>(handle); }

// encode(x, params, out_device, stream) -> (status, bytes | device uint8 array | None)
nb::tuple Encode(DeviceArray x, const nb::dict& params_dict, bool out_device, uintptr_t stream_h) {
  const slicer_params params = ParamsFromDict(params_dict);
  if (x.device_type() != nb::device::cuda::value) {
    throw nb::value_error("slicer._cuda.encode needs an array on a CUDA device");
  }
  const int dtype = DtypeCode(x.dtype());
  if (dtype == 0) return nb::make_tuple(int{SLICER_ERR_UNSUPPORTED_DTYPE}, nb::none());
  if (!IsCContiguous(x)) throw nb::value_error("the CUDA array must be C-contiguous");
  const std::vector<int64_t> shape = ShapeOf(x);
  const uint32_t ndim = static_cast<uint32_t>(shape.size());
  DeviceScope scope(x.device_id());
  if (scope.status()) return nb::make_tuple(scope.status(), nb::none());
  const cudaStream_t stream = AsStream(stream_h);
  size_t bound = 0;
  int status = slicer_encode_bound(shape.data(), ndim, dtype, &params, &bound);
  if (status) return nb::make_tuple(status, nb::none());
  size_t temp_bytes = 0;
  status = slicer_cuda_encode_temp_size(shape.data(), ndim, dtype, &params, &temp_bytes);
  if (status) return nb::make_tuple(status, nb::none());
  size_t written = 0;
  if (!out_device) {
    std::string host(bound, '\0');
    {
      nb::gil_scoped_release release;
      Scratch temp(temp_bytes, stream);
      status = temp.status();
      if (!status) {
        status = slicer_cuda_encode_host(x.data(), dtype, shape.data(), ndim, &params, temp.get(),
                                         temp_bytes, host.data(), host.size(), &written, stream);
      }
    }
    if (status) return nb::make_tuple(status, nb::none());
    return nb::make_tuple(0, nb::bytes(host.data(), written));
  }
  void* dst = nullptr;
  status = FromCuda(cudaMalloc(&dst, bound));
  if (status) return nb::make_tuple(status, nb::none());
  nb::capsule owner = DeviceOwner(dst);
  {
    nb::gil_scoped_release release;
    Scratch temp(temp_bytes, stream);
    status = temp.status();
    if (!status) {
      status = slicer_cuda_encode(x.data(), dtype, shape.data(), ndim, &params, temp.get(),
                                  temp_bytes, dst, bound, &written, stream);
    }
  }
  if (status) return nb::make_tuple(status, nb::none());
  return nb::make_tuple(0,
                        DeviceArrayOf(dst, owner, {written}, nb::dtype<uint8_t>(), x.device_id()));
}

// encode_batch(x, axis, params, stream) -> (status, [bytes, ...] | None)
nb::tuple EncodeBatch(DeviceArray x, uint32_t axis, const nb::dict& params_dict,
                      uintptr_t stream_h) {
  const slicer_params params = ParamsFromDict(params_dict);
  if (x.device_type() != nb::device::cuda::value) {
    throw nb::value_error("slicer._cuda.encode_batch needs an array on a CUDA device");
  }
  const int dtype = DtypeCode(x.dtype());
  if (dtype == 0) return nb::make_tuple(int{SLICER_ERR_UNSUPPORTED_DTYPE}, nb::none());
  if (!IsCContiguous(x)) throw nb::value_error("the CUDA array must be C-contiguous");
  const std::vector<int64_t> shape = ShapeOf(x);
  const uint32_t ndim = static_cast<uint32_t>(shape.size());
  if (ndim == 0 || axis >= ndim) throw nb::value_error("axis out of range");
  DeviceScope scope(x.device_id());
  if (scope.status()) return nb::make_tuple(scope.status(), nb::none());
  const cudaStream_t stream = AsStream(stream_h);
  std::vector<int64_t> item_shape;
  for (uint32_t d = 0; d < ndim; ++d) {
    if (d != axis) item_shape.push_back(shape[d]);
  }
  size_t item_bound = 0;
  int status = slicer_encode_bound(item_shape.data(), ndim - 1, dtype, &params, &item_bound);
  if (status) return nb::make_tuple(status, nb::none());
  size_t temp_bytes = 0;
  status =
      slicer_cuda_encode_batch_temp_size(shape.data(), ndim, axis, dtype, &params, &temp_bytes);
  if (status) return nb::make_tuple(status, nb::none());
  const size_t items = static_cast<size_t>(shape[axis]);
  std::vector<uint8_t> host(item_bound * items);
  std::vector<size_t> offsets(items);
  std::vector<size_t> sizes(items);
  {
    nb::gil_scoped_release release;
    Scratch temp(temp_bytes, stream);
    status = temp.status();
    if (!status && items) {
      status = slicer_cuda_encode_batch_host(x.data(), dtype, shape.data(), ndim, axis, &params,
                                             temp.get(), temp_bytes, host.data(), host.size(),
                                             offsets.data(), sizes.data(), stream);
    }
  }
  if (status) return nb::make_tuple(status, nb::none());
  nb::list out;
  for (size_t b = 0; b < items; ++b) {
    out.append(nb::bytes(reinterpret_cast<const char*>(host.data() + offsets[b]), sizes[b]));
  }
  return nb::make_tuple(0, out);
}

// dense_encode(x, params, stream) -> (status, bytes | None): format 2, mode dense, host output.
nb::tuple DenseEncode(DeviceArray x, const nb::dict& params_dict, uintptr_t stream_h) {
  const DenseParams params = DenseParamsFromDict(params_dict);
  if (x.device_type() != nb::device::cuda::value) {
    throw nb::value_error("slicer._cuda.dense_encode needs an array on a CUDA device");
  }
  const int dtype = DenseDtypeCode(x.dtype());
  if (dtype == 0) return nb::make_tuple(int{SLICER_ERR_UNSUPPORTED_DTYPE}, nb::none());
  if (!IsCContiguous(x)) throw nb::value_error("the CUDA array must be C-contiguous");
  const std::vector<int64_t> shape = ShapeOf(x);
  const uint32_t ndim = static_cast<uint32_t>(shape.size());
  DeviceScope scope(x.device_id());
  if (scope.status()) return nb::make_tuple(scope.status(), nb::none());
  const cudaStream_t stream = AsStream(stream_h);
  size_t bound = 0;
  int status = slicer_dense_encode_bound(shape.data(), ndim, dtype, &params.raw, &bound);
  if (status) return nb::make_tuple(status, nb::none());
  size_t temp_bytes = 0;
  status = slicer_cuda_dense_encode_temp_size(shape.data(), ndim, dtype, &params.raw, &temp_bytes);
  if (status) return nb::make_tuple(status, nb::none());
  std::string host(bound, '\0');
  size_t written = 0;
  {
    nb::gil_scoped_release release;
    Scratch temp(temp_bytes, stream);
    status = temp.status();
    if (!status) {
      status = slicer_cuda_dense_encode_host(x.data(), dtype, shape.data(), ndim, &params.raw,
                                             temp.get(), temp_bytes, host.data(), host.size(),
                                             &written, stream);
    }
  }
  if (status) return nb::make_tuple(status, nb::none());
  return nb::make_tuple(0, nb::bytes(host.data(), written));
}

// read_header(src, max_elements, stream) -> (status, dict | None)
nb::tuple ReadHeader(AnyArray src, uint64_t max_elements, uintptr_t stream_h) {
  const bool on_device = src.device_type() == nb::device::cuda::value;
  slicer_header h{};
  int status;
  {
    nb::gil_scoped_release release;
    status = slicer_cuda_read_header(src.data(), src.size(), on_device ? 1 : 0, max_elements, &h,
                                     AsStream(stream_h));
  }
  if (status) return nb::make_tuple(status, nb::none());
  nb::dict d;
  d["dtype"] = static_cast<int>(h.dtype);
  nb::list shape;
  for (uint32_t i = 0; i < h.ndim; ++i) shape.append(h.shape[i]);
  d["shape"] = nb::tuple(shape);
  d["num_elements"] = h.num_elements;
  return nb::make_tuple(0, d);
}

// decode(src, max_elements, out, device, stream) -> (status, device array | None)
// `src` is a 1-D uint8 array on the host or on a CUDA device; `out` is None or a C-contiguous
// CUDA array of the stream's shape and dtype.
nb::tuple Decode(AnyArray src, uint64_t max_elements, nb::object out, int device,
                 uintptr_t stream_h) {
  const bool on_device = src.device_type() == nb::device::cuda::value;
  if (!on_device && src.device_type() != nb::device::cpu::value) {
    throw nb::value_error("the stream must be in host memory or on a CUDA device");
  }
  if (src.ndim() != 1 || src.dtype() != nb::dtype<uint8_t>() || src.stride(0) != 1) {
    throw nb::value_error("the stream must be a contiguous 1-D uint8 buffer");
  }
  if (on_device) device = src.device_id();
  DeviceScope scope(device);
  if (scope.status()) return nb::make_tuple(scope.status(), nb::none());
  const cudaStream_t stream = AsStream(stream_h);
  const size_t size = src.size();
  slicer_header h{};
  int status;
  size_t temp_bytes = 0;
  {
    nb::gil_scoped_release release;
    status = slicer_cuda_decode_temp_size(src.data(), size, on_device ? 1 : 0, max_elements, &h,
                                          &temp_bytes, stream);
  }
  // Format 2 (dense): the format-1 header parser refuses its version byte.
  bool dense = false;
  if (status == SLICER_ERR_BAD_VERSION) {
    slicer_dense_info info{};
    {
      nb::gil_scoped_release release;
      status = slicer_cuda_dense_decode_temp_size(src.data(), size, on_device ? 1 : 0, max_elements,
                                                  &info, &temp_bytes, stream);
    }
    if (status) return nb::make_tuple(status, nb::none());
    dense = true;
    h = slicer_header{};
    h.dtype = info.dtype;
    h.ndim = info.ndim;
    for (uint32_t i = 0; i < info.ndim; ++i) h.shape[i] = info.shape[i];
    h.num_elements = info.num_elements;
  }
  if (status) return nb::make_tuple(status, nb::none());
  const size_t item = h.dtype == SLICER_FLOAT64 ? 8 : h.dtype == SLICER_FLOAT32 ? 4 : 2;
  std::vector<size_t> shape(h.ndim);
  for (uint32_t i = 0; i < h.ndim; ++i) shape[i] = static_cast<size_t>(h.shape[i]);
  const size_t dst_bytes = h.num_elements * item;
  void* dst = nullptr;
  nb::object result;
  if (!out.is_none()) {
    DeviceArray target = nb::cast<DeviceArray>(out);
    if (target.device_type() != nb::device::cuda::value) {
      throw nb::value_error("out must be an array on a CUDA device");
    }
    if (DenseDtypeCode(target.dtype()) != static_cast<int>(h.dtype) || target.ndim() != h.ndim ||
        ShapeOf(target) != std::vector<int64_t>(h.shape, h.shape + h.ndim) ||
        !IsCContiguous(target)) {
      throw nb::value_error(
          "out must be a C-contiguous CUDA array of the stream's shape and dtype");
    }
    if (target.device_id() != device) {
      throw nb::value_error("out must be on the device that decodes");
    }
    dst = target.data();
    result = out;
  } else {
    // At least one byte, so that an empty tensor still owns a real allocation.
    status = FromCuda(cudaMalloc(&dst, dst_bytes ? dst_bytes : 1));
    if (status) return nb::make_tuple(status, nb::none());
    result = DeviceArrayOf(dst, DeviceOwner(dst), shape, DlpackDtype(h.dtype), device);
  }
  {
    nb::gil_scoped_release release;
    Scratch temp(temp_bytes, stream);
    status = temp.status();
    if (!status) {
      status = dense ? slicer_cuda_dense_decode(src.data(), size, on_device ? 1 : 0, max_elements,
                                                temp.get(), temp_bytes, dst, dst_bytes, stream)
                     : slicer_cuda_decode(src.data(), size, on_device ? 1 : 0, max_elements,
                                          temp.get(), temp_bytes, dst, dst_bytes, stream);
    }
  }
  if (status) return nb::make_tuple(status, nb::none());
  return nb::make_tuple(0, result);
}

}  // namespace

NB_MODULE(_cuda, m) {
  m.doc() = "CUDA backend of the SLICER codec (glue over cuda/include/slicer/slicer_cuda.h)";
  m.def(
      "available", []() { return slicer_cuda_available() != 0; },
      "True when a CUDA driver and at least one device are present.");
  m.def("status_string", [](int status) { return std::string(slicer_cuda_status_string(status)); });
  m.def("last_cuda_error", []() { return std::string(slicer_cuda_last_error()); });
  m.def("encode", &Encode, nb::arg("x"), nb::arg("params"), nb::arg("out_device"),
        nb::arg("stream"));
  m.def("encode_batch", &EncodeBatch, nb::arg("x"), nb::arg("axis"), nb::arg("params"),
        nb::arg("stream"));
  m.def("dense_encode", &DenseEncode, nb::arg("x"), nb::arg("params"), nb::arg("stream"));
  m.def("read_header", &ReadHeader, nb::arg("src"), nb::arg("max_elements"), nb::arg("stream"));
  m.def("decode", &Decode, nb::arg("src"), nb::arg("max_elements"), nb::arg("out").none(),
        nb::arg("device"), nb::arg("stream"));
}
