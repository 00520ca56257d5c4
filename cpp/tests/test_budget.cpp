// slicer_dense_encode_budget / slicer_context_dense_encode_budget (the C++ budget driver,
// cpp/src/dense/dense_budget.cpp) and its wrapper: targets met, both entry points give the same
// bytes, argument errors and unreachable targets as pinned statuses, classes="auto" against
// goldens of the Python driver. Its streams are compared byte for byte with the Python driver in
// tests/test_budget_native.py.
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

// The inputs of the classes="auto" goldens, reproducible in NumPy (tests/test_budget_native.py
// test_auto_classes_goldens): u = (bits 40…63 of a 64-bit LCG − 2^23) / 2^23, x = u³ · scale
// (binary64, rounded to float32 once). (rows, 96) token rows with every 7th channel 30× larger
// (outlier channels), (2, 16, 40, 40) maps with channel c scaled by 2^(c mod 5), or 1-D with
// three ranges of scales 1, 8 and 0.5 (cut at 1000 and 4500).
std::vector<float> GoldenInput(const std::vector<int64_t>& shape) {
  uint64_t n = 1;
  for (int64_t d : shape) n *= static_cast<uint64_t>(d);
  std::vector<float> x(n);
  uint64_t state = 0x51C3;
  for (uint64_t i = 0; i < n; ++i) {
    state = state * 6364136223846793005ull + 1442695040888963407ull;
    const double u = (static_cast<double>(state >> 40) - 8388608.0) / 8388608.0;
    double scale;
    if (shape.size() == 1) {
      scale = i < 1000 ? 1.0 : i < 4500 ? 8.0 : 0.5;
    } else if (shape.size() == 2) {
      scale = (i % 96) % 7 == 0 ? 30.0 : 1.0;
    } else {
      scale = std::ldexp(1.0, static_cast<int>((i / 1600) % 16 % 5));
    }
    x[i] = static_cast<float>(u * u * u * scale);
  }
  return x;
}

uint64_t Fnv1a(const uint8_t* data, size_t size) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (size_t i = 0; i < size; ++i) h = (h ^ data[i]) * 0x100000001b3ull;
  return h;
}

// classes="auto" (SLICER_DENSE_CLASSES_AUTO): the streams of the Python driver (size and FNV-1a
// of the bytes, generated with slicer._rate.NATIVE_DRIVER = False), the target met, both entry
// points and the wrapper alike, and the class setting the stream reports reproduces it in a
// plain encode at its step.
TEST(AutoClassesGoldens) {
  struct Case {
    std::vector<int64_t> shape;
    uint64_t max_bytes;
    double rel_error;
    size_t size;
    uint64_t fnv;
    uint32_t classes;
  };
  const Case cases[] = {
      // {shape, max_bytes, rel_error, size, FNV-1a, classes}: §18.2 rank maps on the last axis,
      // §18.3 ranges on axis 1, §18.4 boundaries of a 1-D input
      {{64, 96}, 1536, 0.0, 1527, 0x81f8a5346bdcd092ull, 8},
      {{64, 96}, 768, 0.0, 767, 0x8d0e8014f44ff09bull, 8},
      {{64, 96}, 0, 0.05, 1285, 0xa9408bf7af39753cull, 8},
      {{2, 16, 40, 40}, 12800, 0.0, 12767, 0x2d5662d09ffd170bull, 16},
      {{2, 16, 40, 40}, 6400, 0.0, 6314, 0x22898f71b5ddb8e3ull, 16},
      {{2, 16, 40, 40}, 0, 0.05, 18783, 0xf76e244d4920dd6aull, 16},
      {{6000}, 1500, 0.0, 1499, 0xdb05469f5a0a4868ull, 4},
      {{6000}, 750, 0.0, 745, 0xe89e32de7ee596bbull, 4},
      {{6000}, 0, 0.05, 2300, 0x0918f5b642faaa59ull, 4},
  };
  slicer_context* ctx = slicer_context_create(1);
  for (const Case& c : cases) {
    const std::vector<float> x = GoldenInput(c.shape);
    const uint32_t ndim = static_cast<uint32_t>(c.shape.size());
    slicer_dense_params p;
    slicer_dense_params_init(&p);
    p.threads = 1;
    p.classes = SLICER_DENSE_CLASSES_AUTO;
    p.class_axis = SLICER_DENSE_CLASS_AXIS_LAST;  // ndim 4: axis 1 is searched too
    std::vector<uint8_t> dst(1 << 20);
    size_t written = 0;
    CHECK_EQ(slicer_dense_encode_budget(x.data(), SLICER_FLOAT32, c.shape.data(), ndim, &p,
                                        c.max_bytes, c.rel_error, 1, dst.data(), dst.size(),
                                        &written),
             SLICER_OK);
    dst.resize(written);
    CHECK_EQ(written, c.size);
    CHECK_EQ(Fnv1a(dst.data(), dst.size()), c.fnv);
    if (c.max_bytes) CHECK(written <= c.max_bytes);
    if (c.rel_error > 0) CHECK(RelError(x, dst) <= c.rel_error);
    const uint8_t* stream = nullptr;
    size_t size = 0;
    CHECK_EQ(slicer_context_dense_encode_budget(ctx, x.data(), SLICER_FLOAT32, c.shape.data(),
                                                ndim, &p, c.max_bytes, c.rel_error, 1, &stream,
                                                &size),
             SLICER_OK);
    CHECK(std::vector<uint8_t>(stream, stream + size) == dst);
    slicer::DenseParams w;
    w.threads(1).classes(SLICER_DENSE_CLASSES_AUTO, p.class_axis);
    CHECK(slicer::dense_encode_budget(x.data(), slicer::DType::kFloat32, c.shape, w, c.max_bytes,
                                      c.rel_error) == dst);
    // what the stream reports is the setting: a plain encode with it gives the same bytes
    const slicer_dense_info info = slicer::dense_inspect(dst);
    CHECK_EQ(info.classes, c.classes);
    slicer::DenseParams again;
    std::vector<uint64_t> bounds;
    int axis = static_cast<int>(info.class_axis);
    if (info.classes > 1 && info.class_map_kind == 1) axis |= SLICER_DENSE_CLASS_MAP_RANGES;
    if (info.classes > 1 && info.class_map_kind == 2) {
      axis |= SLICER_DENSE_CLASS_MAP_BOUNDS;
      bounds.assign(info.class_bounds, info.class_bounds + info.classes - 1);
    }
    again.threads(1).step(info.step).classes(static_cast<int>(info.classes), axis, bounds);
    slicer_dense_params raw = again.raw();
    raw.rho_256 = static_cast<uint8_t>(info.rho_256);
    std::vector<uint8_t> plain(1 << 20);
    size_t plain_size = 0;
    CHECK_EQ(slicer_dense_encode(x.data(), SLICER_FLOAT32, c.shape.data(), ndim, &raw,
                                 plain.data(), plain.size(), &plain_size),
             SLICER_OK);
    plain.resize(plain_size);
    CHECK(plain == dst);
  }
  slicer_context_destroy(ctx);
}

// A fixed K with given §18.4 boundaries and classes="auto" restricted to one map kind.
TEST(GivenBoundsAndAutoKinds) {
  const std::vector<int64_t> shape = {64, 96};
  const std::vector<float> x = GoldenInput(shape);
  const uint64_t limit = 64 * 96 * 2 / 8;
  for (int flag : {SLICER_DENSE_CLASS_MAP_RANK, SLICER_DENSE_CLASS_MAP_RANGES,
                   SLICER_DENSE_CLASS_MAP_BOUNDS}) {
    slicer::DenseParams p;
    p.classes(SLICER_DENSE_CLASSES_AUTO, SLICER_DENSE_CLASS_AXIS_LAST | flag);
    const std::vector<uint8_t> s =
        slicer::dense_encode_budget(x.data(), slicer::DType::kFloat32, shape, p, limit);
    CHECK(s.size() <= limit);
    const slicer_dense_info info = slicer::dense_inspect(s);
    if (info.classes > 1) {
      CHECK_EQ(info.class_map_kind, flag == SLICER_DENSE_CLASS_MAP_RANK     ? 0u
                                    : flag == SLICER_DENSE_CLASS_MAP_RANGES ? 1u
                                                                            : 2u);
    }
  }
  slicer::DenseParams p;
  p.classes(3, SLICER_DENSE_CLASS_AXIS_LAST | SLICER_DENSE_CLASS_MAP_BOUNDS, {7, 50});
  const std::vector<uint8_t> s =
      slicer::dense_encode_budget(x.data(), slicer::DType::kFloat32, shape, p, limit);
  CHECK(s.size() <= limit);
  const slicer_dense_info info = slicer::dense_inspect(s);
  CHECK_EQ(info.classes, 3u);
  CHECK_EQ(info.class_map_kind, 2u);
  CHECK_EQ(info.class_bounds[0], 7u);
  CHECK_EQ(info.class_bounds[1], 50u);
  const std::vector<uint8_t> e =
      slicer::dense_encode_budget(x.data(), slicer::DType::kFloat32, shape, p, 0, 0.02);
  CHECK(RelError(x, e) <= 0.02);
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
  // classes: AUTO takes one map kind flag at most and no boundaries; the RANK flag goes with
  // AUTO only; given boundaries must number K − 1; AUTO is the budget call's alone
  const uint64_t bounds[2] = {10, 20};
  q = p;
  q.classes = SLICER_DENSE_CLASSES_AUTO;
  q.class_axis = SLICER_DENSE_CLASS_MAP_RANGES | SLICER_DENSE_CLASS_MAP_BOUNDS;
  CHECK_EQ(call(&q, 1000, 0.0, dst.size()), SLICER_ERR_INVALID_ARGUMENT);
  q.class_axis = SLICER_DENSE_CLASS_MAP_BOUNDS;
  q.class_bounds = bounds;
  q.class_bounds_count = 2;
  CHECK_EQ(call(&q, 1000, 0.0, dst.size()), SLICER_ERR_INVALID_ARGUMENT);
  q = p;
  q.classes = 4;
  q.class_axis = SLICER_DENSE_CLASS_MAP_RANK;
  CHECK_EQ(call(&q, 1000, 0.0, dst.size()), SLICER_ERR_INVALID_ARGUMENT);
  q.class_axis = SLICER_DENSE_CLASS_MAP_BOUNDS;
  q.class_bounds = bounds;
  q.class_bounds_count = 2;  // K − 1 = 3 needed
  CHECK_EQ(call(&q, 1000, 0.0, dst.size()), SLICER_ERR_INVALID_ARGUMENT);
  q.classes = 17;
  CHECK_EQ(call(&q, 1000, 0.0, dst.size()), SLICER_ERR_INVALID_ARGUMENT);
  q = p;
  q.classes = SLICER_DENSE_CLASSES_AUTO;
  q.step = 0.1f;
  size_t plain = 0;
  CHECK_EQ(slicer_dense_encode(x.data(), SLICER_FLOAT32, shape, 1, &q, dst.data(), dst.size(),
                               &plain),
           SLICER_ERR_INVALID_ARGUMENT);
  CHECK_EQ(call(&q, 1000, 0.0, dst.size()), SLICER_OK);  // 1-D: one table
  CHECK(written <= 1000);
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
