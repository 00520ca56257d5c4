// slicer_dense_encode_budget / slicer_context_dense_encode_budget (the C++ budget driver,
// cpp/src/dense/dense_budget.cpp) and its wrapper: targets met, both entry points give the same
// bytes, argument errors and unreachable targets as pinned statuses. Its streams are compared
// byte for byte with the Python driver in tests/test_budget_native.py.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "harness.hpp"
#include "slicer/slicer.h"
#include "slicer/slicer.hpp"
#include "test_support.hpp"

namespace {

double RelError(const std::vector<float>& x, const std::vector<uint8_t>& stream) {
  const std::vector<float> y = slicer::decode(stream).to_float32();
  double err = 0, energy = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    err += (y[i] - x[i]) * static_cast<double>(y[i] - x[i]);
    energy += x[i] * static_cast<double>(x[i]);
  }
  return std::sqrt(err / energy);
}

TEST(BudgetMetAndBothEntryPointsAgree) {
  for (size_t n : {7u, 4096u, 40000u, 131072u}) {
    const std::vector<float> x = slicer_test::Gaussian(n, 11 + n);
    const int64_t shape[1] = {static_cast<int64_t>(n)};
    slicer_dense_params p;
    slicer_dense_params_init(&p);
    slicer_context* ctx = slicer_context_create(0);
    for (double bits : {0.5, 2.0, 6.0}) {
      const uint64_t limit = std::max<uint64_t>(40, static_cast<uint64_t>(bits * n / 8));
      std::vector<uint8_t> dst(limit + 1024);
      size_t written = 0;
      CHECK_EQ(slicer_dense_encode_budget(x.data(), SLICER_FLOAT32, shape, 1, &p, limit, 0.0, 1,
                                          dst.data(), dst.size(), &written),
               SLICER_OK);
      CHECK(written <= limit);
      const uint8_t* stream = nullptr;
      size_t size = 0;
      CHECK_EQ(slicer_context_dense_encode_budget(ctx, x.data(), SLICER_FLOAT32, shape, 1, &p,
                                                  limit, 0.0, 1, &stream, &size),
               SLICER_OK);
      CHECK_EQ(size, written);
      CHECK(std::vector<uint8_t>(stream, stream + size) ==
            std::vector<uint8_t>(dst.begin(), dst.begin() + written));
      // the wrapper, and a fixed rho (mode="dense")
      const std::vector<uint8_t> w =
          slicer::dense_encode_budget(x.data(), slicer::DType::kFloat32, {static_cast<int64_t>(n)},
                                      slicer::DenseParams(), limit);
      CHECK(w == std::vector<uint8_t>(dst.begin(), dst.begin() + written));
      CHECK(slicer::dense_encode_budget(x.data(), slicer::DType::kFloat32,
                                        {static_cast<int64_t>(n)}, slicer::DenseParams(), limit,
                                        0.0, false)
                .size() <= limit);
    }
    for (double e : {0.3, 0.05, 0.004}) {
      const std::vector<uint8_t> s =
          slicer::dense_encode_budget(x.data(), slicer::DType::kFloat32, {static_cast<int64_t>(n)},
                                      slicer::DenseParams(), 0, e);
      CHECK(RelError(x, s) <= e);
    }
    slicer_context_destroy(ctx);
  }
}

TEST(FixedClassesAndTableKind) {
  const std::vector<float> x = slicer_test::Gaussian(64 * 256, 3);
  const std::vector<int64_t> shape = {64, 256};
  slicer::DenseParams p;
  p.table_kind(SLICER_DENSE_TABLE_AUTO);
  slicer_dense_params raw = p.raw();
  raw.classes = 4;
  raw.class_axis = SLICER_DENSE_CLASS_AXIS_LAST | SLICER_DENSE_CLASS_MAP_RANGES;
  std::vector<uint8_t> dst(1 << 20);
  size_t written = 0;
  CHECK_EQ(slicer_dense_encode_budget(x.data(), SLICER_FLOAT32, shape.data(), 2, &raw, 6000, 0.0, 1,
                                      dst.data(), dst.size(), &written),
           SLICER_OK);
  CHECK(written <= 6000);
  dst.resize(written);
  CHECK_EQ(slicer::dense_inspect(dst).classes, 4u);
}

TEST(ArgumentsAndTargets) {
  const std::vector<float> x = slicer_test::Gaussian(5000, 9);
  const int64_t shape[1] = {5000};
  slicer_dense_params p;
  slicer_dense_params_init(&p);
  std::vector<uint8_t> dst(1 << 16);
  size_t written = 7;
  auto call = [&](const slicer_dense_params* q, uint64_t limit, double e, size_t cap) {
    return slicer_dense_encode_budget(x.data(), SLICER_FLOAT32, shape, 1, q, limit, e, 1,
                                      dst.data(), cap, &written);
  };
  CHECK_EQ(call(&p, 0, 0.0, dst.size()), SLICER_ERR_INVALID_ARGUMENT);     // no target
  CHECK_EQ(call(&p, 1000, 0.1, dst.size()), SLICER_ERR_INVALID_ARGUMENT);  // two targets
  CHECK_EQ(call(&p, 0, -0.1, dst.size()), SLICER_ERR_INVALID_ARGUMENT);
  CHECK_EQ(call(&p, 0, NAN, dst.size()), SLICER_ERR_INVALID_ARGUMENT);
  CHECK_EQ(call(nullptr, 1000, 0.0, dst.size()), SLICER_ERR_INVALID_ARGUMENT);
  CHECK_EQ(slicer_dense_encode_budget(x.data(), SLICER_FLOAT32, shape, 1, &p, 1000, 0.0, 1,
                                      dst.data(), dst.size(), nullptr),
           SLICER_ERR_INVALID_ARGUMENT);
  slicer_dense_params q = p;
  q.table_kind = 2;  // may not fit a byte budget
  CHECK_EQ(call(&q, 1000, 0.0, dst.size()), SLICER_ERR_INVALID_ARGUMENT);
  q = p;
  q.trellis = 1;
  CHECK_EQ(call(&q, 1000, 0.0, dst.size()), SLICER_ERR_INVALID_ARGUMENT);
  const uint8_t table[1] = {0};
  q = p;
  q.group_table = table;
  q.group_table_size = 1;
  CHECK_EQ(call(&q, 1000, 0.0, dst.size()), SLICER_ERR_INVALID_ARGUMENT);
  // below the smallest stream: the pinned status and the smallest size reached
  CHECK_EQ(call(&p, 10, 0.0, dst.size()), SLICER_ERR_TARGET_UNREACHABLE);
  CHECK(written > 10 && written < 200);
  const size_t smallest = written;
  CHECK_EQ(call(&p, smallest, 0.0, dst.size()), SLICER_OK);
  CHECK(written <= smallest);
  // a buffer too small: the stream's size in *written
  CHECK_EQ(call(&p, 3000, 0.0, 100), SLICER_ERR_BUFFER_TOO_SMALL);
  CHECK(written > 100 && written <= 3000);
  std::vector<float> bad = x;
  bad[17] = NAN;
  CHECK_EQ(slicer_dense_encode_budget(bad.data(), SLICER_FLOAT32, shape, 1, &p, 1000, 0.0, 1,
                                      dst.data(), dst.size(), &written),
           SLICER_ERR_NONFINITE_INPUT);
  int status = SLICER_OK;
  try {
    slicer::dense_encode_budget(x.data(), slicer::DType::kFloat32, {5000}, slicer::DenseParams(),
                                10);
  } catch (const slicer::Error& error) {
    status = error.status();
  }
  CHECK_EQ(status, SLICER_ERR_TARGET_UNREACHABLE);
}

}  // namespace

TEST_MAIN()
