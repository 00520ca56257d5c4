// SLICER intermediate-feature codec: header-only C++17 wrapper over the C ABI (slicer.h).
// Errors become slicer::Error exceptions carrying the C status code.
#ifndef SLICER_SLICER_HPP_
#define SLICER_SLICER_HPP_

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "slicer/slicer.h"

namespace slicer {

// A failed call: what() names the operation and the status; status() is the C code.
class Error : public std::runtime_error {
 public:
  Error(int status, const std::string& operation)
      : std::runtime_error(operation + ": " + slicer_status_string(status)), status_(status) {}
  int status() const noexcept { return status_; }

 private:
  int status_;
};

inline void Check(int status, const char* operation) {
  if (status != SLICER_OK) throw Error(status, operation);
}

enum class DType : int {
  kFloat32 = SLICER_FLOAT32,
  kFloat16 = SLICER_FLOAT16,
  kBFloat16 = SLICER_BFLOAT16,
  kFloat64 = SLICER_FLOAT64,  // format 2 (dense) only
};

inline size_t ItemSize(DType dtype) {
  return dtype == DType::kFloat64 ? 8 : dtype == DType::kFloat32 ? 4 : 2;
}

// Encoder parameters built from the API's real numbers, fixed to the stream's integers once,
// as docs/format.md §2 says: round-half-to-even of the binary64 product.
class Params {
 public:
  Params() { slicer_params_init(&raw_); }

  Params& sparsity(double s) {
    raw_.sparsity_ppb = Fix(s, 1e9, 999999999.0, "sparsity must be in [0, 1)");
    return *this;
  }
  Params& asymmetry(double lambda) {
    raw_.asym_ppb = Fix(lambda, 1e9, 999999999.0, "asymmetry must be in [0, 1)");
    return *this;
  }
  Params& delta(double delta) {
    raw_.delta_micro = Fix(delta, 1e6, 4294967295.0, "delta must be in [0, 4294.967295]");
    return *this;
  }
  Params& seed(uint64_t seed) {
    raw_.seed = seed;
    return *this;
  }
  Params& bits(int bits) {
    Require(bits >= 1 && bits <= SLICER_MAX_BITS, "bits must be in [1, 16]");
    raw_.bits = static_cast<uint8_t>(bits);
    return *this;
  }
  Params& blocks(int positive, int negative) {
    Require(positive >= 1 && positive <= SLICER_MAX_BLOCKS && negative >= 1 &&
                negative <= SLICER_MAX_BLOCKS,
            "blocks must be in [1, 64]");
    raw_.blocks_pos = static_cast<uint8_t>(positive);
    raw_.blocks_neg = static_cast<uint8_t>(negative);
    return *this;
  }
  // Fixed multi-level widths (one per block index); an empty list returns to ABQ.
  Params& levels(const std::vector<int>& widths) {
    Require(widths.size() <= SLICER_MAX_BLOCKS, "at most 64 levels");
    raw_.level_count = static_cast<uint8_t>(widths.size());
    for (size_t m = 0; m < widths.size(); ++m) {
      Require(widths[m] >= 1 && widths[m] <= SLICER_MAX_BITS, "levels must be in [1, 16]");
      raw_.levels[m] = static_cast<uint8_t>(widths[m]);
    }
    return *this;
  }
  Params& chunk_log2(int c) {
    Require(c >= 6 && c <= 24, "chunk_log2 must be in [6, 24]");
    raw_.chunk_log2 = static_cast<uint8_t>(c);
    return *this;
  }
  // true: one group per row of the last axis; false: one group for the whole tensor.
  Params& rows(bool per_row) {
    raw_.group_rows = per_row ? 1 : 0;
    return *this;
  }
  Params& threads(unsigned count) {
    Require(count <= 65535, "threads must be at most 65535");
    raw_.threads = static_cast<uint16_t>(count);
    return *this;
  }

  const slicer_params& raw() const { return raw_; }
  slicer_params& raw() { return raw_; }

 private:
  static void Require(bool condition, const char* message) {
    if (!condition) throw Error(SLICER_ERR_INVALID_ARGUMENT, message);
  }
  static uint32_t Fix(double value, double scale, double largest, const char* message) {
    Require(std::isfinite(value) && value >= 0.0, message);
    const double fixed = std::nearbyint(value * scale);  // default rounding: half to even
    Require(fixed <= largest, message);
    return static_cast<uint32_t>(fixed);
  }

  slicer_params raw_;
};

constexpr uint64_t kDefaultMaxElements = uint64_t{1} << 31;

inline size_t encode_bound(const std::vector<int64_t>& shape, DType dtype,
                           const Params& params = Params()) {
  size_t bound = 0;
  Check(slicer_encode_bound(shape.data(), static_cast<uint32_t>(shape.size()),
                            static_cast<int>(dtype), &params.raw(), &bound),
        "slicer::encode_bound");
  return bound;
}

// Encodes a C-contiguous array whose items are of `dtype` (raw bytes).
inline std::vector<uint8_t> encode(const void* data, DType dtype, const std::vector<int64_t>& shape,
                                   const Params& params = Params()) {
  std::vector<uint8_t> stream(encode_bound(shape, dtype, params));
  size_t written = 0;
  Check(slicer_encode(data, static_cast<int>(dtype), shape.data(),
                      static_cast<uint32_t>(shape.size()), &params.raw(), stream.data(),
                      stream.size(), &written),
        "slicer::encode");
  stream.resize(written);
  return stream;
}

inline std::vector<uint8_t> encode(const float* data, const std::vector<int64_t>& shape,
                                   const Params& params = Params()) {
  return encode(static_cast<const void*>(data), DType::kFloat32, shape, params);
}

// float16 or bfloat16 bit patterns.
inline std::vector<uint8_t> encode(const uint16_t* data, DType dtype,
                                   const std::vector<int64_t>& shape,
                                   const Params& params = Params()) {
  if (dtype == DType::kFloat32) throw Error(SLICER_ERR_INVALID_ARGUMENT, "16-bit data as float32");
  return encode(static_cast<const void*>(data), dtype, shape, params);
}

inline slicer_header read_header(const void* stream, size_t size,
                                 uint64_t max_elements = kDefaultMaxElements) {
  slicer_header header;
  Check(slicer_read_header(stream, size, max_elements, &header), "slicer::read_header");
  return header;
}

inline slicer_header read_header(const std::vector<uint8_t>& stream,
                                 uint64_t max_elements = kDefaultMaxElements) {
  return read_header(stream.data(), stream.size(), max_elements);
}

// A decoded array: shape, dtype and the raw little-endian items.
struct Decoded {
  std::vector<int64_t> shape;
  DType dtype = DType::kFloat32;
  std::vector<uint8_t> bytes;

  size_t size() const { return bytes.size() / ItemSize(dtype); }

  // The values widened exactly to float (float16 / bfloat16 included).
  std::vector<float> to_float32() const {
    std::vector<float> out(size());
    for (size_t j = 0; j < out.size(); ++j) {
      if (dtype == DType::kFloat32) {
        std::memcpy(&out[j], &bytes[4 * j], 4);
        continue;
      }
      uint16_t item;
      std::memcpy(&item, &bytes[2 * j], 2);
      uint32_t bits;
      if (dtype == DType::kBFloat16) {
        bits = static_cast<uint32_t>(item) << 16;
      } else {
        const uint32_t sign = static_cast<uint32_t>(item & 0x8000u) << 16;
        const uint32_t exponent = (item >> 10) & 0x1Fu;
        const uint32_t mantissa = item & 0x3FFu;
        if (exponent == 0) {
          float magnitude = static_cast<float>(mantissa) * 5.9604644775390625e-08f;
          std::memcpy(&bits, &magnitude, 4);
          bits |= sign;
        } else if (exponent == 31) {
          bits = sign | 0x7F800000u | (mantissa << 13);
        } else {
          bits = sign | ((exponent + 112) << 23) | (mantissa << 13);
        }
      }
      std::memcpy(&out[j], &bits, 4);
    }
    return out;
  }
};

inline Decoded decode(const void* stream, size_t size, uint64_t max_elements = kDefaultMaxElements,
                      unsigned threads = 0) {
  const slicer_header header = read_header(stream, size, max_elements);
  Decoded decoded;
  decoded.shape.assign(header.shape, header.shape + header.ndim);
  decoded.dtype = static_cast<DType>(header.dtype);
  decoded.bytes.resize(header.num_elements * ItemSize(decoded.dtype));
  Check(slicer_decode(stream, size, max_elements, decoded.bytes.data(), decoded.bytes.size(),
                      threads),
        "slicer::decode");
  return decoded;
}

inline Decoded decode(const std::vector<uint8_t>& stream,
                      uint64_t max_elements = kDefaultMaxElements, unsigned threads = 0) {
  return decode(stream.data(), stream.size(), max_elements, threads);
}

// Full validation plus the exact byte account and every non-empty block.
struct Inspection {
  slicer_header header;
  slicer_account account;
  std::vector<slicer_block_info> blocks;
};

inline Inspection inspect(const void* stream, size_t size,
                          uint64_t max_elements = kDefaultMaxElements) {
  Inspection result{};
  size_t count = 0;
  Check(slicer_inspect(stream, size, max_elements, &result.header, &result.account, nullptr, 0,
                       &count),
        "slicer::inspect");
  result.blocks.resize(count);
  Check(slicer_inspect(stream, size, max_elements, &result.header, &result.account,
                       result.blocks.data(), result.blocks.size(), &count),
        "slicer::inspect");
  return result;
}

inline Inspection inspect(const std::vector<uint8_t>& stream,
                          uint64_t max_elements = kDefaultMaxElements) {
  return inspect(stream.data(), stream.size(), max_elements);
}

// Format 2, mode "dense" (docs/format.md §10-§16): dead-zone uniform quantizer + rANS.
// slicer::decode / read_header / inspect above accept its streams too; dense_inspect gives the
// format-2 byte account.
class DenseParams {
 public:
  DenseParams() { slicer_dense_params_init(&raw_); }

  DenseParams& step(float step) {
    Require(std::isfinite(step) && step >= 0x1p-126f, "step must be a positive normal float");
    raw_.step = step;
    return *this;
  }
  // Rounding offset rho in [1/256, 1/2], stored as round(rho * 256) (below 1/2: a dead zone).
  DenseParams& rho(double rho) {
    const double fixed = std::nearbyint(rho * 256.0);
    Require(std::isfinite(rho) && fixed >= 1.0 && fixed <= 128.0, "rho must be in [1/256, 1/2]");
    raw_.rho_256 = static_cast<uint8_t>(fixed);
    return *this;
  }
  // Fixed reconstruction offsets (1/256 units) instead of the data rule of §12.3.
  DenseParams& offsets(int offset1, int offset2) {
    Require(offset1 >= -128 && offset1 <= 127 && offset2 >= -128 && offset2 <= 127,
            "offsets must be in -128..127");
    raw_.auto_offsets = 0;
    raw_.offset1 = static_cast<int8_t>(offset1);
    raw_.offset2 = static_cast<int8_t>(offset2);
    return *this;
  }
  DenseParams& chunk_size(uint64_t elements) {
    unsigned log2 = 0;
    while (log2 < 25 && (uint64_t{1} << log2) < elements) ++log2;
    Require((uint64_t{1} << log2) == elements && log2 >= 6 && log2 <= 24,
            "chunk_size must be a power of two in 64..2^24");
    raw_.chunk_log2 = static_cast<uint8_t>(log2);
    return *this;
  }
  // SLICER_DENSE_LAYOUT_* and one byte per group (§12.1); an empty table: none.
  DenseParams& groups(int layout, std::vector<uint8_t> table = {}) {
    Require(layout >= 0 && layout <= 2, "layout must be 0, 1 or 2");
    raw_.layout = static_cast<uint8_t>(layout);
    table_ = std::move(table);
    return *this;
  }
  DenseParams& threads(int threads) {
    Require(threads >= 0 && threads <= 65535, "threads must be in 0..65535");
    raw_.threads = static_cast<uint16_t>(threads);
    return *this;
  }
  // Mode 3 (docs/format.md §21): trellis-coded quantization with Lagrange multiplier λ > 0.
  DenseParams& trellis(double lambda = 0.34) {
    Require(lambda > 0 && lambda < 1e300, "trellis lambda must be finite and > 0");
    raw_.trellis = 1;
    raw_.trellis_lambda = lambda;
    return *this;
  }
  // Mode 1's frequency table kind (docs/format.md §13.5): 0 … 4, or SLICER_DENSE_TABLE_AUTO
  // (the shortest stream).
  DenseParams& table_kind(int kind) {
    Require((kind >= 0 && kind <= 4) || kind == SLICER_DENSE_TABLE_AUTO,
            "table_kind must be 0 … 4 or SLICER_DENSE_TABLE_AUTO");
    raw_.table_kind = static_cast<uint8_t>(kind);
    return *this;
  }
  // Mode 1's low-bit plane width (docs/format.md §13.6): 0 … 15, or SLICER_DENSE_LOW_BITS_AUTO.
  DenseParams& low_bits(int k) {
    Require((k >= 0 && k <= SLICER_DENSE_MAX_LOW_BITS) || k == SLICER_DENSE_LOW_BITS_AUTO,
            "low_bits must be 0 … 15 or SLICER_DENSE_LOW_BITS_AUTO");
    raw_.low_bits = static_cast<uint8_t>(k);
    return *this;
  }

  // Mode 2 (docs/format.md §19): k = 1 (mode 1) or 2 … 16 class tables along class_axis
  // (SLICER_DENSE_CLASS_AXIS_*, with SLICER_DENSE_CLASS_MAP_RANGES or SLICER_DENSE_CLASS_MAP_BOUNDS
  // or-ed in; `bounds`: the K − 1 boundaries of the latter), or SLICER_DENSE_CLASSES_AUTO for
  // dense_encode_budget (the class search; class_axis its axis, optionally one map kind flag).
  DenseParams& classes(int k, int class_axis = SLICER_DENSE_CLASS_AXIS_LAST,
                       std::vector<uint64_t> bounds = {}) {
    Require((k >= 0 && k <= SLICER_DENSE_MAX_CLASSES) || k == SLICER_DENSE_CLASSES_AUTO,
            "classes must be 0 … 16 or SLICER_DENSE_CLASSES_AUTO");
    Require(class_axis >= 0 && class_axis <= 15, "class_axis must be 0 … 15");
    raw_.classes = static_cast<uint8_t>(k);
    raw_.class_axis = static_cast<uint8_t>(class_axis);
    bounds_ = std::move(bounds);
    return *this;
  }

  // The C struct, its group-table and boundary pointers aimed at this object's copies.
  const slicer_dense_params& raw() const {
    raw_.group_table = table_.empty() ? nullptr : table_.data();
    raw_.group_table_size = table_.size();
    raw_.class_bounds = bounds_.empty() ? nullptr : bounds_.data();
    raw_.class_bounds_count = static_cast<uint32_t>(bounds_.size());
    return raw_;
  }

 private:
  static void Require(bool condition, const char* message) {
    if (!condition) throw Error(SLICER_ERR_INVALID_ARGUMENT, message);
  }

  mutable slicer_dense_params raw_;
  std::vector<uint8_t> table_;
  std::vector<uint64_t> bounds_;
};

inline size_t dense_encode_bound(const std::vector<int64_t>& shape, DType dtype,
                                 const DenseParams& params = DenseParams()) {
  size_t bound = 0;
  Check(slicer_dense_encode_bound(shape.data(), static_cast<uint32_t>(shape.size()),
                                  static_cast<int>(dtype), &params.raw(), &bound),
        "slicer::dense_encode_bound");
  return bound;
}

// Encodes C-contiguous elements (float32 / float16 / bfloat16 bits / float64) as format 2.
inline std::vector<uint8_t> dense_encode(const void* data, DType dtype,
                                         const std::vector<int64_t>& shape,
                                         const DenseParams& params = DenseParams()) {
  std::vector<uint8_t> out(dense_encode_bound(shape, dtype, params));
  size_t written = 0;
  Check(slicer_dense_encode(data, static_cast<int>(dtype), shape.data(),
                            static_cast<uint32_t>(shape.size()), &params.raw(), out.data(),
                            out.size(), &written),
        "slicer::dense_encode");
  out.resize(written);
  return out;
}

// Rate control (slicer_dense_encode_budget): the lowest-error stream of at most max_bytes
// bytes (rel_error = 0) or the smallest stream whose relative L2 error is at most rel_error
// (max_bytes = 0); search_offsets: mode="auto"'s three rounding offsets, else params' rho. A
// target that cannot be met throws slicer::Error with SLICER_ERR_TARGET_UNREACHABLE. With
// classes(SLICER_DENSE_CLASSES_AUTO) the buffer starts at max_bytes, or at the bound of one
// table, and a stream of class tables longer than that is encoded again into its own size.
inline std::vector<uint8_t> dense_encode_budget(const void* data, DType dtype,
                                                const std::vector<int64_t>& shape,
                                                const DenseParams& params, uint64_t max_bytes,
                                                double rel_error = 0.0,
                                                bool search_offsets = true) {
  size_t capacity;
  if (params.raw().classes == SLICER_DENSE_CLASSES_AUTO) {
    DenseParams one = params;
    one.classes(1);
    capacity = max_bytes ? static_cast<size_t>(max_bytes) : dense_encode_bound(shape, dtype, one);
  } else {
    capacity = dense_encode_bound(shape, dtype, params);
  }
  std::vector<uint8_t> out(capacity);
  size_t written = 0;
  auto call = [&]() {
    return slicer_dense_encode_budget(data, static_cast<int>(dtype), shape.data(),
                                      static_cast<uint32_t>(shape.size()), &params.raw(),
                                      max_bytes, rel_error, search_offsets ? 1 : 0, out.data(),
                                      out.size(), &written);
  };
  int status = call();
  if (status == SLICER_ERR_BUFFER_TOO_SMALL && written > out.size()) {
    out.resize(written);
    status = call();
  }
  Check(status, "slicer::dense_encode_budget");
  out.resize(written);
  return out;
}

inline slicer_dense_info dense_inspect(const std::vector<uint8_t>& stream,
                                       uint64_t max_elements = kDefaultMaxElements) {
  slicer_dense_info info;
  Check(slicer_dense_inspect(stream.data(), stream.size(), max_elements, &info),
        "slicer::dense_inspect");
  return info;
}

// Frames for token streams (docs/format.md §17): build a context once from calibration rows,
// then code one row per frame. Not copyable; one object serves one thread at a time.
class FrameContext {
 public:
  // Context bytes from num_rows C-contiguous rows of row_shape (dtype of every later row).
  // classes: 1 (one frequency table) or 2 … 16 (a class map, docs/format.md §18).
  // trellis_lambda > 0: a trellis context with that λ (§17.4); 0: the dead-zone quantizer.
  static std::vector<uint8_t> Build(const void* rows, DType dtype, uint64_t num_rows,
                                    const std::vector<int64_t>& row_shape, float step,
                                    uint8_t states = 2, uint32_t classes = 1,
                                    float trellis_lambda = 0.0f) {
    slicer_frame_params params;
    slicer_frame_params_init(&params);
    params.step = step;
    params.states = states;
    if (trellis_lambda != 0.0f) {
      params.trellis = 1;
      params.trellis_lambda = trellis_lambda;
    }
    uint64_t row = 1;
    for (int64_t d : row_shape) row *= d > 0 ? static_cast<uint64_t>(d) : 0;
    const uint32_t k = classes <= SLICER_FRAME_MAX_CLASSES ? classes : 1;
    std::vector<uint8_t> out(row > SLICER_FRAME_MAX_ROW ? SLICER_FRAME_CONTEXT_MAX_BYTES
                             : params.trellis           ? SLICER_FRAME_TRELLIS_CONTEXT_BOUND(row, k)
                             : classes > 1              ? SLICER_FRAME_CONTEXT_BOUND(row, classes)
                                                        : SLICER_FRAME_CONTEXT_MAX_BYTES);
    size_t written = 0;
    Check(slicer_frame_context_build_classes(rows, static_cast<int>(dtype), num_rows,
                                             row_shape.data(),
                                             static_cast<uint32_t>(row_shape.size()), &params,
                                             classes, out.data(), out.size(), &written),
          "slicer::FrameContext::Build");
    out.resize(written);
    return out;
  }

  explicit FrameContext(const std::vector<uint8_t>& context,
                        uint64_t max_elements = SLICER_FRAME_MAX_ROW) {
    Check(slicer_frame_context_open(context.data(), context.size(), max_elements, &ctx_),
          "slicer::FrameContext");
    slicer_frame_context_info(ctx_, &info_);
  }
  FrameContext(const FrameContext&) = delete;
  FrameContext& operator=(const FrameContext&) = delete;
  ~FrameContext() { slicer_frame_context_free(ctx_); }

  const slicer_frame_info& info() const { return info_; }

  // One frame of one row (row_bytes = row_elements · itemsize).
  std::vector<uint8_t> Encode(const void* row, size_t row_bytes, uint32_t seq) {
    std::vector<uint8_t> out(info_.frame_bound);
    size_t written = 0;
    Check(slicer_frame_encode(ctx_, row, row_bytes, seq, out.data(), out.size(), &written),
          "slicer::FrameContext::Encode");
    out.resize(written);
    return out;
  }

  // Decodes a frame into dst; returns its sequence number.
  uint32_t Decode(const std::vector<uint8_t>& frame, void* dst, size_t dst_bytes) {
    uint32_t seq = 0;
    Check(slicer_frame_decode(ctx_, frame.data(), frame.size(), dst, dst_bytes, &seq),
          "slicer::FrameContext::Decode");
    return seq;
  }

 private:
  slicer_frame_context* ctx_ = nullptr;
  slicer_frame_info info_{};
};

}  // namespace slicer

#endif  // SLICER_SLICER_HPP_
