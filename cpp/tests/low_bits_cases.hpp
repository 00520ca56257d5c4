// Inputs and C-ABI encodes shared by the low-bit-plane tests (docs/format.md §13.6):
// test_low_bits_encode.cpp and test_low_bits_decode.cpp.
#ifndef SLICER_TESTS_LOW_BITS_CASES_HPP_
#define SLICER_TESTS_LOW_BITS_CASES_HPP_

#include <cstdint>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "float_bits.hpp"
#include "harness.hpp"
#include "slicer/slicer.h"
#include "test_support.hpp"

namespace low_bits_test {

struct Case {
  std::string name;
  int dtype = SLICER_FLOAT32;
  std::vector<int64_t> shape;
  std::vector<uint8_t> bytes;   // the input in its dtype
  std::vector<double> values;   // the same, widened
  float step = 0.01f;
  uint8_t rho_256 = 128;
  uint8_t chunk_log2 = 14;
  std::vector<uint8_t> groups;  // group table of rows (empty: none)
};

inline Case MakeCase(std::string name, const std::vector<double>& raw, int dtype, float step,
              std::vector<int64_t> shape = {}) {
  Case c;
  c.name = std::move(name);
  c.dtype = dtype;
  c.step = step;
  c.shape = shape.empty() ? std::vector<int64_t>{static_cast<int64_t>(raw.size())} : shape;
  const size_t width = dtype == SLICER_FLOAT64 ? 8 : dtype == SLICER_FLOAT32 ? 4 : 2;
  c.bytes.resize(raw.size() * width);
  c.values.resize(raw.size());
  for (size_t j = 0; j < raw.size(); ++j) {
    double v = raw[j];
    if (dtype == SLICER_FLOAT64) {
      std::memcpy(&c.bytes[8 * j], &v, 8);
    } else if (dtype == SLICER_FLOAT32) {
      const float f = static_cast<float>(v);
      std::memcpy(&c.bytes[4 * j], &f, 4);
      v = f;
    } else if (dtype == SLICER_FLOAT16) {
      const uint16_t h = slicer::internal::FloatToHalf(static_cast<float>(v));
      std::memcpy(&c.bytes[2 * j], &h, 2);
      v = slicer::internal::HalfToFloat(h);
    } else {
      const uint16_t h = slicer::internal::FloatToBFloat16(static_cast<float>(v));
      std::memcpy(&c.bytes[2 * j], &h, 2);
      v = slicer::internal::BFloat16ToFloat(h);
    }
    c.values[j] = v;
  }
  return c;
}

inline slicer_dense_params ParamsOf(const Case& c, uint8_t low_bits) {
  slicer_dense_params p;
  slicer_dense_params_init(&p);
  p.step = c.step;
  p.rho_256 = c.rho_256;
  p.chunk_log2 = c.chunk_log2;
  p.threads = 1;
  p.low_bits = low_bits;
  if (!c.groups.empty()) {
    p.layout = SLICER_DENSE_LAYOUT_ROWS;
    p.group_table = c.groups.data();
    p.group_table_size = c.groups.size();
  }
  return p;
}

inline std::vector<uint8_t> Encode(const Case& c, uint8_t low_bits) {
  const slicer_dense_params p = ParamsOf(c, low_bits);
  size_t bound = 0, written = 0;
  CHECK_EQ(slicer_dense_encode_bound(c.shape.data(), static_cast<uint32_t>(c.shape.size()),
                                     c.dtype, &p, &bound),
           SLICER_OK);
  std::vector<uint8_t> out(bound);
  CHECK_EQ(slicer_dense_encode(c.bytes.data(), c.dtype, c.shape.data(),
                               static_cast<uint32_t>(c.shape.size()), &p, out.data(), bound,
                               &written),
           SLICER_OK);
  out.resize(written);
  return out;
}

inline std::vector<double> Normal(size_t n, uint64_t seed, double scale) {
  std::vector<double> out(n);
  const std::vector<float> g = slicer_test::Gaussian(n, seed, scale);
  for (size_t j = 0; j < n; ++j) out[j] = g[j];
  return out;
}

}  // namespace low_bits_test

#endif  // SLICER_TESTS_LOW_BITS_CASES_HPP_
