// The header-only C++ wrapper: parameter fixing (§2), exceptions with status codes, and
// encode / decode / inspect / read_header through it.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "harness.hpp"
#include "slicer/slicer.hpp"
#include "test_support.hpp"

namespace {

template <class Fn>
int StatusOf(Fn&& fn) {
  try {
    fn();
  } catch (const slicer::Error& error) {
    return error.status();
  }
  return SLICER_OK;
}

TEST(ParamsRoundLikeTheSpec) {
  slicer::Params p;
  CHECK_EQ(p.raw().sparsity_ppb, 900000000u);  // defaults of slicer_params_init
  CHECK_EQ(p.raw().delta_micro, 10000u);
  p.sparsity(0.99).asymmetry(0.3).delta(0.0125).bits(4).blocks(2, 5).seed(7);
  CHECK_EQ(p.raw().sparsity_ppb, 990000000u);
  CHECK_EQ(p.raw().asym_ppb, 300000000u);
  CHECK_EQ(p.raw().delta_micro, 12500u);
  CHECK_EQ(p.raw().bits, 4u);
  CHECK_EQ(p.raw().blocks_neg, 5u);
  p.delta(2.5e-6);  // 2.5 exactly halfway: ties to even
  CHECK_EQ(p.raw().delta_micro, 2u);
  p.delta(3.5e-6);
  CHECK_EQ(p.raw().delta_micro, 4u);
  CHECK_EQ(StatusOf([&] { p.sparsity(1.0); }), SLICER_ERR_INVALID_ARGUMENT);
  CHECK_EQ(StatusOf([&] { p.sparsity(0.9999999999); }), SLICER_ERR_INVALID_ARGUMENT);
  CHECK_EQ(StatusOf([&] { p.asymmetry(-0.1); }), SLICER_ERR_INVALID_ARGUMENT);
  CHECK_EQ(StatusOf([&] { p.delta(NAN); }), SLICER_ERR_INVALID_ARGUMENT);
  CHECK_EQ(StatusOf([&] { p.bits(0); }), SLICER_ERR_INVALID_ARGUMENT);
  CHECK_EQ(StatusOf([&] { p.levels({8, 17}); }), SLICER_ERR_INVALID_ARGUMENT);
}

TEST(EncodeDecodeInspectThroughTheWrapper) {
  const std::vector<float> x = slicer_test::Gaussian(4 * 300, 21);
  const std::vector<int64_t> shape = {4, 300};
  const slicer::Params rows = slicer::Params().rows(true);
  const std::vector<uint8_t> stream = slicer::encode(x.data(), shape, rows);
  CHECK(stream.size() <= slicer::encode_bound(shape, slicer::DType::kFloat32, rows));
  const slicer_header header = slicer::read_header(stream);
  CHECK_EQ(header.group_count, 4u);
  const slicer::Decoded decoded = slicer::decode(stream);
  CHECK(decoded.shape == shape);
  const std::vector<float> y = decoded.to_float32();
  size_t kept = 0;
  for (float v : y) kept += v != 0.0f;
  CHECK_EQ(kept, 4u * 30u);
  const slicer::Inspection info = slicer::inspect(stream);
  CHECK_EQ(info.account.kept, 120u);
  CHECK_EQ(info.account.total_bytes, stream.size());
  CHECK_EQ(info.blocks.size(), 4u * 6u);

  const slicer_test::Input half = slicer_test::MakeInput(x, SLICER_BFLOAT16, shape);
  const std::vector<uint8_t> bf16 =
      slicer::encode(reinterpret_cast<const uint16_t*>(half.bytes.data()), slicer::DType::kBFloat16,
                     shape, slicer::Params().sparsity(0.5));
  const slicer::Decoded wide = slicer::decode(bf16);
  CHECK(wide.dtype == slicer::DType::kBFloat16);
  CHECK_EQ(wide.bytes.size(), half.bytes.size());
  const std::vector<float> z = wide.to_float32();
  kept = 0;
  for (float v : z) kept += v != 0.0f;
  CHECK_EQ(kept, 600u);
}

TEST(TrellisThroughTheWrapper) {  // format 2 mode 3 (docs/format.md §21)
  const std::vector<float> x = slicer_test::Gaussian(8 * 200, 5);
  const std::vector<int64_t> shape = {8, 200};
  const slicer::DenseParams p = slicer::DenseParams().step(0.1f).trellis(0.34);
  const std::vector<uint8_t> stream =
      slicer::dense_encode(x.data(), slicer::DType::kFloat32, shape, p);
  CHECK(stream.size() <= slicer::dense_encode_bound(shape, slicer::DType::kFloat32, p));
  const slicer_dense_info info = slicer::dense_inspect(stream);
  CHECK_EQ(info.mode, 3u);
  CHECK_EQ(info.classes, 1u);
  const std::vector<float> y = slicer::decode(stream).to_float32();
  double err = 0, energy = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    err += (y[i] - x[i]) * static_cast<double>(y[i] - x[i]);
    energy += x[i] * static_cast<double>(x[i]);
  }
  CHECK(err < 0.01 * energy);  // step 0.1 on unit normals: about 0.3 % of the energy
  CHECK_EQ(StatusOf([&] { slicer::DenseParams().trellis(0.0); }), SLICER_ERR_INVALID_ARGUMENT);
}

TEST(TableKindsThroughTheWrapper) {  // format 2 mode 1, table kinds (docs/format.md §13.5)
  const std::vector<float> x = slicer_test::Gaussian(4096, 6);
  const std::vector<int64_t> shape = {4096};
  const std::vector<float> want =
      slicer::decode(slicer::dense_encode(x.data(), slicer::DType::kFloat32, shape,
                                          slicer::DenseParams().step(1.0f)))
          .to_float32();
  size_t shortest = SIZE_MAX;
  for (int kind = 0; kind <= 4; ++kind) {
    const slicer::DenseParams p = slicer::DenseParams().step(1.0f).table_kind(kind);
    const std::vector<uint8_t> stream =
        slicer::dense_encode(x.data(), slicer::DType::kFloat32, shape, p);
    CHECK(stream.size() <= slicer::dense_encode_bound(shape, slicer::DType::kFloat32, p));
    CHECK_EQ(slicer::dense_inspect(stream).table_kind, static_cast<uint32_t>(kind));
    CHECK(slicer::decode(stream).to_float32() == want);
    shortest = std::min(shortest, stream.size());
  }
  const std::vector<uint8_t> best =
      slicer::dense_encode(x.data(), slicer::DType::kFloat32, shape,
                           slicer::DenseParams().step(1.0f).table_kind(SLICER_DENSE_TABLE_AUTO));
  CHECK_EQ(best.size(), shortest);
  CHECK_EQ(StatusOf([&] { slicer::DenseParams().table_kind(5); }), SLICER_ERR_INVALID_ARGUMENT);
  CHECK_EQ(StatusOf([&] {
             slicer::dense_encode(x.data(), slicer::DType::kFloat32, {64, 64},
                                  slicer::DenseParams().step(1.0f).trellis().table_kind(4));
           }),
           SLICER_ERR_INVALID_ARGUMENT);
}

// docs/format.md §13.6: low-bit planes of 1 … 15 bits give the plain stream's values and stay
// within the bound; auto picks a width at high rates; 16 and mode 3 are refused.
TEST(DenseLowBits) {
  std::vector<float> x(20000);
  for (size_t i = 0; i < x.size(); ++i)
    x[i] = static_cast<float>(std::sin(0.37 * static_cast<double>(i)) * 50.0 + (i % 13) * 0.1);
  const std::vector<int64_t> shape = {static_cast<int64_t>(x.size())};
  const auto plain = slicer::dense_encode(x.data(), slicer::DType::kFloat32, shape,
                                          slicer::DenseParams().step(0.01f));
  const std::vector<float> want = slicer::decode(plain).to_float32();
  for (int k : {1, 5, 14, 15, SLICER_DENSE_LOW_BITS_AUTO}) {
    const slicer::DenseParams p = slicer::DenseParams().step(0.01f).low_bits(k);
    const std::vector<uint8_t> stream =
        slicer::dense_encode(x.data(), slicer::DType::kFloat32, shape, p);
    CHECK(stream.size() <= slicer::dense_encode_bound(shape, slicer::DType::kFloat32, p));
    const uint32_t got = slicer::dense_inspect(stream).low_bits;
    CHECK(k == SLICER_DENSE_LOW_BITS_AUTO ? got >= 3 : got == static_cast<uint32_t>(k));
    CHECK(slicer::decode(stream).to_float32() == want);
  }
  CHECK_EQ(StatusOf([&] { slicer::DenseParams().low_bits(16); }), SLICER_ERR_INVALID_ARGUMENT);
  CHECK_EQ(StatusOf([&] {
             slicer::dense_encode(x.data(), slicer::DType::kFloat32, {100, 200},
                                  slicer::DenseParams().step(1.0f).trellis().low_bits(3));
           }),
           SLICER_ERR_INVALID_ARGUMENT);
}

TEST(ErrorsCarryTheStatus) {
  std::vector<uint8_t> garbage = {'S', 'L', 'C', 'R', 1, 0, 0, 0, 0, 0};
  CHECK_EQ(StatusOf([&] { slicer::decode(garbage); }), SLICER_ERR_BAD_CHECKSUM);
  garbage[0] = 'X';
  CHECK_EQ(StatusOf([&] { slicer::inspect(garbage); }), SLICER_ERR_BAD_MAGIC);
  const float bad[2] = {1.0f, NAN};
  CHECK_EQ(StatusOf([&] { slicer::encode(bad, {2}); }), SLICER_ERR_NONFINITE_INPUT);
  try {
    slicer::decode(garbage);
    CHECK(false);
  } catch (const std::runtime_error& error) {
    CHECK(std::string(error.what()).find("bad magic") != std::string::npos);
  }
}

}  // namespace

TEST_MAIN()
