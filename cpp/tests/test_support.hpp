// Helpers shared by the codec tests: deterministic inputs and C-ABI round trips.
#ifndef SLICER_TESTS_TEST_SUPPORT_HPP_
#define SLICER_TESTS_TEST_SUPPORT_HPP_

#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

#include "float_bits.hpp"
#include "slicer/slicer.h"

namespace slicer_test {

// Input in binary32 plus the bytes of the requested dtype (the values are exactly the dtype's).
struct Input {
  int dtype = SLICER_FLOAT32;
  std::vector<int64_t> shape;
  std::vector<float> values;   // widened to binary32
  std::vector<uint8_t> bytes;  // what slicer_encode reads
};

inline Input MakeInput(const std::vector<float>& raw, int dtype, std::vector<int64_t> shape) {
  Input input;
  input.dtype = dtype;
  input.shape = std::move(shape);
  input.values.resize(raw.size());
  input.bytes.resize(raw.size() * (dtype == SLICER_FLOAT32 ? 4 : 2));
  for (size_t j = 0; j < raw.size(); ++j) {
    float v = raw[j];
    if (dtype == SLICER_FLOAT16) {
      const uint16_t h = slicer::internal::FloatToHalf(v);
      std::memcpy(&input.bytes[2 * j], &h, 2);
      v = slicer::internal::HalfToFloat(h);
    } else if (dtype == SLICER_BFLOAT16) {
      const uint16_t h = slicer::internal::FloatToBFloat16(v);
      std::memcpy(&input.bytes[2 * j], &h, 2);
      v = slicer::internal::BFloat16ToFloat(h);
    } else {
      std::memcpy(&input.bytes[4 * j], &v, 4);
    }
    input.values[j] = v;
  }
  return input;
}

inline std::vector<float> Gaussian(size_t n, uint64_t seed, double scale = 1.0) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> normal(0.0, scale);
  std::vector<float> out(n);
  for (float& v : out) v = static_cast<float>(normal(rng));
  return out;
}

// Few distinct magnitudes (many ties) and zeros, like a quantized ReLU output.
inline std::vector<float> Ties(size_t n, uint64_t seed, int distinct, double zero_fraction) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  std::uniform_int_distribution<int> level(1, distinct);
  std::vector<float> out(n);
  for (float& v : out) {
    if (unit(rng) < zero_fraction) {
      v = unit(rng) < 0.5 ? 0.0f : -0.0f;
    } else {
      v = static_cast<float>(level(rng)) * 0.25f * (unit(rng) < 0.5 ? -1.0f : 1.0f);
    }
  }
  return out;
}

inline slicer_params DefaultParams() {
  slicer_params p;
  slicer_params_init(&p);
  return p;
}

inline int Encode(const Input& input, const slicer_params& params, std::vector<uint8_t>* out) {
  size_t bound = 0;
  int status = slicer_encode_bound(input.shape.data(), static_cast<uint32_t>(input.shape.size()),
                                   input.dtype, &params, &bound);
  if (status != SLICER_OK) return status;
  out->assign(bound, 0);
  size_t written = 0;
  status = slicer_encode(input.bytes.data(), input.dtype, input.shape.data(),
                         static_cast<uint32_t>(input.shape.size()), &params, out->data(),
                         out->size(), &written);
  out->resize(status == SLICER_OK ? written : 0);
  return status;
}

// Decodes and widens the result to binary32.
inline int Decode(const std::vector<uint8_t>& stream, std::vector<float>* out,
                  uint32_t threads = 0) {
  slicer_header header;
  int status = slicer_read_header(stream.data(), stream.size(), uint64_t{1} << 40, &header);
  if (status != SLICER_OK) return status;
  const size_t item = header.dtype == SLICER_FLOAT32 ? 4 : 2;
  std::vector<uint8_t> raw(header.num_elements * item);
  status = slicer_decode(stream.data(), stream.size(), uint64_t{1} << 40, raw.data(), raw.size(),
                         threads);
  if (status != SLICER_OK) return status;
  out->resize(header.num_elements);
  for (size_t j = 0; j < out->size(); ++j) {
    if (item == 4) {
      std::memcpy(&(*out)[j], &raw[4 * j], 4);
    } else {
      uint16_t h;
      std::memcpy(&h, &raw[2 * j], 2);
      (*out)[j] = header.dtype == SLICER_FLOAT16 ? slicer::internal::HalfToFloat(h)
                                                 : slicer::internal::BFloat16ToFloat(h);
    }
  }
  return SLICER_OK;
}

}  // namespace slicer_test

#endif  // SLICER_TESTS_TEST_SUPPORT_HPP_
