// Round trips and the properties format 1 promises: exact k, top magnitudes kept, half-step
// error, determinism across thread counts, and the size bound.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <exception>
#include <vector>

#include "codec.hpp"
#include "encoder.hpp"
#include "harness.hpp"
#include "test_support.hpp"

namespace {

using slicer_test::Decode;
using slicer_test::DefaultParams;
using slicer_test::Encode;
using slicer_test::Input;
using slicer_test::MakeInput;

uint64_t ExpectedK(const std::vector<float>& x, uint64_t begin, uint64_t n, uint32_t s_ppb) {
  uint64_t nnz = 0;
  for (uint64_t j = begin; j < begin + n; ++j) nnz += x[j] != 0.0f;
  return std::min(slicer::internal::KeepLimit(n, s_ppb), nnz);
}

double DtypeEpsilon(int dtype) {
  return dtype == SLICER_FLOAT32 ? 0x1p-24 : dtype == SLICER_FLOAT16 ? 0x1p-11 : 0x1p-8;
}

// Absolute rounding grid of the dtype's subnormals.
double SubnormalSpacing(int dtype) {
  return dtype == SLICER_FLOAT32 ? 0x1p-149 : dtype == SLICER_FLOAT16 ? 0x1p-24 : 0x1p-133;
}

// Checks every property of one encode/decode; returns the stream.
std::vector<uint8_t> CheckRoundTrip(const Input& input, const slicer_params& params) {
  std::vector<uint8_t> stream;
  CHECK_EQ(Encode(input, params, &stream), SLICER_OK);
  size_t bound = 0;
  CHECK_EQ(slicer_encode_bound(input.shape.data(), static_cast<uint32_t>(input.shape.size()),
                               input.dtype, &params, &bound),
           SLICER_OK);
  CHECK(stream.size() <= bound);
  std::vector<float> decoded;
  CHECK_EQ(Decode(stream, &decoded), SLICER_OK);
  CHECK_EQ(decoded.size(), input.values.size());
  if (decoded.size() != input.values.size()) return stream;

  slicer_header header;
  slicer_account account;
  size_t num_blocks = 0;
  CHECK_EQ(slicer_inspect(stream.data(), stream.size(), uint64_t{1} << 40, &header, &account,
                          nullptr, 0, &num_blocks),
           SLICER_OK);
  std::vector<slicer_block_info> blocks(num_blocks);
  CHECK_EQ(slicer_inspect(stream.data(), stream.size(), uint64_t{1} << 40, &header, &account,
                          blocks.data(), blocks.size(), &num_blocks),
           SLICER_OK);
  // The byte account is exact.
  const uint64_t payload_bits =
      account.position_bits + account.label_bits + account.value_bits + account.padding_bits;
  CHECK_EQ(payload_bits % 8, 0u);
  CHECK_EQ(account.header_bytes + account.group_bytes + account.block_meta_bytes +
               account.chunk_table_bytes + payload_bits / 8 + account.checksum_bytes,
           stream.size());

  const uint64_t groups = header.group_count;
  const uint64_t n = decoded.size() / groups;
  uint64_t kept_total = 0;
  for (uint64_t g = 0; g < groups; ++g) {
    const uint64_t k = ExpectedK(input.values, g * n, n, params.sparsity_ppb);
    uint64_t kept = 0;
    float min_kept = INFINITY;
    float max_dropped = 0.0f;
    for (uint64_t j = g * n; j < (g + 1) * n; ++j) {
      const float x = input.values[j];
      const float d = decoded[j];
      if (d == 0.0f) {
        max_dropped = std::max(max_dropped, std::fabs(x));
        continue;
      }
      ++kept;
      min_kept = std::min(min_kept, std::fabs(x));
      CHECK((d > 0) == (x > 0));
      // Half a step of the block that holds |x| (chained ranges may overlap at one value).
      double allowed = INFINITY;
      for (const slicer_block_info& b : blocks) {
        if (b.group != g || (b.sign > 0) != (x > 0)) continue;
        if (!(std::fabs(x) >= b.lo && std::fabs(x) <= b.hi)) continue;
        const double bound_here =
            b.width == 0 ? std::fabs(static_cast<double>(b.hi) - std::fabs(x))
                         : (static_cast<double>(b.hi) - b.lo) / ((1u << b.width) - 1) / 2;
        allowed = std::min(allowed, bound_here);
      }
      const double error = std::fabs(static_cast<double>(d) - x);
      const double tolerance = allowed * (1 + 1e-9) + std::fabs(x) * DtypeEpsilon(input.dtype) +
                               SubnormalSpacing(input.dtype);
      if (!(error <= tolerance)) {
        CHECK(error <= tolerance);
        std::fprintf(stderr, "  j=%llu x=%.9g d=%.9g allowed=%.9g\n",
                     static_cast<unsigned long long>(j), x, d, allowed);
        break;
      }
    }
    CHECK_EQ(kept, k);
    if (params.asym_ppb == 0 && kept > 0) CHECK(min_kept >= max_dropped);
    kept_total += kept;
  }
  CHECK_EQ(account.kept, kept_total);
  return stream;
}

const int kDtypes[] = {SLICER_FLOAT32, SLICER_FLOAT16, SLICER_BFLOAT16};

TEST(RoundTripAwkwardSizesAllDtypes) {
  for (size_t n : {size_t{1}, size_t{7}, size_t{576}, size_t{4096}, size_t{999999}}) {
    for (int dtype : kDtypes) {
      const Input input =
          MakeInput(slicer_test::Gaussian(n, 1000 + n, 3.0), dtype, {static_cast<int64_t>(n)});
      slicer_params params = DefaultParams();
      CheckRoundTrip(input, params);
      params.sparsity_ppb = 0;
      params.delta_micro = 0;
      params.bits = 5;
      CheckRoundTrip(input, params);
    }
  }
}

TEST(RoundTripParameterSweep) {
  const Input input = MakeInput(slicer_test::Gaussian(3 * 4099, 7), SLICER_FLOAT32, {3, 4099});
  for (uint32_t s : {0u, 500000000u, 900000000u, 999000000u, 999999999u}) {
    for (uint32_t asym : {0u, 300000000u, 900000000u}) {
      for (unsigned blocks : {1u, 2u, 5u, 64u}) {
        slicer_params params = DefaultParams();
        params.sparsity_ppb = s;
        params.asym_ppb = asym;
        params.blocks_pos = static_cast<uint8_t>(blocks);
        params.blocks_neg = static_cast<uint8_t>(blocks == 64 ? 3 : blocks);
        params.chunk_log2 = blocks == 5 ? 6 : 14;
        params.group_rows = blocks == 2 ? 1 : 0;
        params.bits = static_cast<uint8_t>(blocks == 64 ? 16 : 1 + blocks);
        CheckRoundTrip(input, params);
      }
    }
  }
}

TEST(MultiLevelWidths) {
  const Input input = MakeInput(slicer_test::Gaussian(5000, 11), SLICER_FLOAT32, {5000});
  slicer_params params = DefaultParams();
  params.blocks_pos = 3;
  params.blocks_neg = 2;
  params.level_count = 3;
  params.levels[0] = 8;
  params.levels[1] = 4;
  params.levels[2] = 2;
  const std::vector<uint8_t> stream = CheckRoundTrip(input, params);
  size_t num_blocks = 0;
  std::vector<slicer_block_info> blocks(16);
  CHECK_EQ(slicer_inspect(stream.data(), stream.size(), 1u << 20, nullptr, nullptr, blocks.data(),
                          blocks.size(), &num_blocks),
           SLICER_OK);
  CHECK_EQ(num_blocks, 5u);
  for (size_t b = 0; b < num_blocks; ++b) {
    CHECK_EQ(blocks[b].width, static_cast<uint32_t>(params.levels[blocks[b].index]));
  }
  params.level_count = 2;  // must equal max(M+, M-)
  std::vector<uint8_t> out;
  CHECK_EQ(Encode(input, params, &out), SLICER_ERR_INVALID_ARGUMENT);
}

TEST(TiesAndReluZerosAreDeterministicAcrossThreads) {
  for (int variant = 0; variant < 4; ++variant) {
    const size_t n = variant < 2 ? 200003 : 70001;
    const Input input = MakeInput(slicer_test::Ties(n, 5 + variant, variant == 0 ? 1 : 7, 0.5),
                                  SLICER_FLOAT32, {static_cast<int64_t>(n)});
    slicer_params params = DefaultParams();
    params.sparsity_ppb = variant == 3 ? 300000000u : 700000000u;
    params.asym_ppb = variant == 2 ? 250000000u : 0u;
    params.seed = 12345 + variant;
    params.threads = 1;
    const std::vector<uint8_t> reference = CheckRoundTrip(input, params);
    for (uint16_t threads : {2, 3, 8}) {
      params.threads = threads;
      std::vector<uint8_t> stream;
      CHECK_EQ(Encode(input, params, &stream), SLICER_OK);
      CHECK(stream == reference);
    }
    std::vector<float> one;
    std::vector<float> many;
    CHECK_EQ(Decode(reference, &one, 1), SLICER_OK);
    CHECK_EQ(Decode(reference, &many, 5), SLICER_OK);
    CHECK(one == many);
    // A different seed breaks the ties differently (same k, different kept set).
    params.seed ^= 0xABCDEF;
    std::vector<uint8_t> reseeded;
    CHECK_EQ(Encode(input, params, &reseeded), SLICER_OK);
    CHECK(reseeded != reference);
  }
}

// The radix path against the literal full-sort path of the spec, byte for byte.
TEST(RadixSelectionMatchesSortSelection) {
  int cases = 0;
  for (size_t n : {size_t{577}, size_t{70001}, size_t{131075}}) {
    for (int data = 0; data < 3; ++data) {
      for (uint32_t asym : {0u, 150000000u, 450000000u}) {
        const int variant = cases;
        std::vector<float> raw = data == 0   ? slicer_test::Ties(n, 40 + variant, 2 + variant, 0.3)
                                 : data == 1 ? slicer_test::Gaussian(n, 40 + variant)
                                             : slicer_test::Gaussian(n, 40 + variant, 1e-41);
        // data 2: subnormal magnitudes (all in the lowest histogram bucket) and zeros.
        const Input input = MakeInput(raw, SLICER_FLOAT32, {static_cast<int64_t>(n)});
        slicer_params raw_params = DefaultParams();
        raw_params.sparsity_ppb = 100000000u * static_cast<uint32_t>(variant % 10);
        raw_params.asym_ppb = asym;
        raw_params.blocks_pos = static_cast<uint8_t>(1 + variant % 5);
        raw_params.blocks_neg = static_cast<uint8_t>(1 + (variant * 7) % 6);
        raw_params.seed = 99 + variant;
        raw_params.threads = static_cast<uint16_t>(1 + variant % 3);
        slicer::internal::CodecParams params;
        CHECK_EQ(slicer::internal::ValidateParams(&raw_params, &params), SLICER_OK);
        const int64_t shape[1] = {static_cast<int64_t>(n)};
        std::vector<uint8_t> radix;
        std::vector<uint8_t> sorted;
        try {
          slicer::internal::EncodeStream(input.bytes.data(), input.dtype, shape, 1, params,
                                         slicer::internal::SelectionPath::kRadix, &radix);
          slicer::internal::EncodeStream(input.bytes.data(), input.dtype, shape, 1, params,
                                         slicer::internal::SelectionPath::kSort, &sorted);
        } catch (const std::exception& error) {
          std::fprintf(stderr, "  case %d: %s\n", variant, error.what());
        }
        CHECK(!radix.empty());
        CHECK(radix == sorted);
        if (data == 2 && asym == 0) CheckRoundTrip(input, raw_params);
        ++cases;
      }
    }
  }
  CHECK_EQ(cases, 27);
}

// Large groups estimate tau's floor from 32 runs of 256 keys at (n - 256) * r / 31. Inputs
// whose runs mislead it (a floor far too high: the exact fallback; too low or zero: a long
// candidate list) must still give the bytes of the literal full-sort path.
TEST(SampledFloorMatchesSortSelectionOnAdversarialLayouts) {
  const size_t n = 200003;
  std::vector<bool> sampled(n, false);
  for (size_t r = 0; r < 32; ++r) {
    const size_t start = (n - 256) * r / 31;
    for (size_t i = 0; i < 256; ++i) sampled[start + i] = true;
  }
  const std::vector<float> noise = slicer_test::Gaussian(n, 77);
  int cases = 0;
  for (int layout = 0; layout < 3; ++layout) {
    std::vector<float> raw(n);
    for (size_t j = 0; j < n; ++j) {
      const float small = noise[j] == 0.0f ? 0.5f : noise[j];
      if (layout == 0) raw[j] = sampled[j] ? 100.0f * small : small;  // floor too high
      if (layout == 1) raw[j] = sampled[j] ? 0.0f : small;            // sample all zero
      if (layout == 2) raw[j] = sampled[j] ? 1e-3f * small : small;   // floor too low
    }
    for (uint32_t sparsity : {500000000u, 900000000u, 990000000u}) {
      for (uint16_t threads : {uint16_t{1}, uint16_t{2}}) {
        const Input input = MakeInput(raw, SLICER_FLOAT32, {static_cast<int64_t>(n)});
        slicer_params raw_params = DefaultParams();
        raw_params.sparsity_ppb = sparsity;
        raw_params.threads = threads;
        raw_params.seed = 5 + static_cast<uint64_t>(cases);
        slicer::internal::CodecParams params;
        CHECK_EQ(slicer::internal::ValidateParams(&raw_params, &params), SLICER_OK);
        const int64_t shape[1] = {static_cast<int64_t>(n)};
        std::vector<uint8_t> radix;
        std::vector<uint8_t> sorted;
        slicer::internal::EncodeStream(input.bytes.data(), input.dtype, shape, 1, params,
                                       slicer::internal::SelectionPath::kRadix, &radix);
        slicer::internal::EncodeStream(input.bytes.data(), input.dtype, shape, 1, params,
                                       slicer::internal::SelectionPath::kSort, &sorted);
        CHECK(!radix.empty());
        CHECK(radix == sorted);
        ++cases;
      }
    }
  }
  CHECK_EQ(cases, 18);
}

// The AVX2 candidate sweep (taken at run time where the CPU has AVX2) and the baseline SSE2
// one give the same streams: zeros, NaN-free ties, awkward lengths, 16-bit input, 2 threads.
TEST(Avx2SweepMatchesBaselineSweep) {
  int cases = 0;
  for (size_t n : {size_t{65536}, size_t{65537 + 63}, size_t{200003}}) {
    std::vector<float> raw = slicer_test::Gaussian(n, 91 + static_cast<uint64_t>(n));
    for (size_t j = 0; j < n; j += 3) raw[j] = 0.0f;                       // a third zeros
    for (size_t j = 1; j < n; j += 7) raw[j] = raw[j] < 0 ? -2.0f : 2.0f;  // ties near tau
    for (int dtype : {SLICER_FLOAT32, SLICER_FLOAT16}) {
      for (uint16_t threads : {uint16_t{1}, uint16_t{2}}) {
        const Input input = MakeInput(raw, dtype, {static_cast<int64_t>(n)});
        slicer_params raw_params = DefaultParams();
        raw_params.sparsity_ppb = 800000000u;
        raw_params.threads = threads;
        slicer::internal::CodecParams params;
        CHECK_EQ(slicer::internal::ValidateParams(&raw_params, &params), SLICER_OK);
        const int64_t shape[1] = {static_cast<int64_t>(n)};
        std::vector<uint8_t> vector_isa;
        std::vector<uint8_t> baseline;
        slicer::internal::EncodeStream(input.bytes.data(), input.dtype, shape, 1, params,
                                       slicer::internal::SelectionPath::kRadix, &vector_isa);
        slicer::internal::SetBaselineSimdForTesting(true);
        slicer::internal::EncodeStream(input.bytes.data(), input.dtype, shape, 1, params,
                                       slicer::internal::SelectionPath::kRadix, &baseline);
        slicer::internal::SetBaselineSimdForTesting(false);
        CHECK(!baseline.empty());
        CHECK(vector_isa == baseline);
        ++cases;
      }
    }
  }
  CHECK_EQ(cases, 12);
}

// Per-token rows: the eight-lane rank count of small groups (FinishSmallGroup) gives the
// baseline loop's labels, for rows of 1 ... 96 kept elements per sign and 1 ... 6 blocks.
TEST(Avx2RowRanksMatchBaseline) {
  int cases = 0;
  for (int64_t row : {int64_t{57}, int64_t{576}, int64_t{1000}}) {
    const std::vector<float> raw = slicer_test::Gaussian(static_cast<size_t>(32 * row), 7);
    const Input input = MakeInput(raw, SLICER_FLOAT32, {32, row});
    for (unsigned blocks : {1u, 3u, 6u}) {
      for (uint32_t sparsity : {900000000u, 850000000u, 0u}) {
        slicer_params raw_params = DefaultParams();
        raw_params.group_rows = 1;
        raw_params.blocks_pos = static_cast<uint8_t>(blocks);
        raw_params.blocks_neg = static_cast<uint8_t>(blocks);
        raw_params.sparsity_ppb = sparsity;
        slicer::internal::CodecParams params;
        CHECK_EQ(slicer::internal::ValidateParams(&raw_params, &params), SLICER_OK);
        const int64_t shape[2] = {32, row};
        std::vector<uint8_t> vector_isa;
        std::vector<uint8_t> baseline;
        slicer::internal::EncodeStream(input.bytes.data(), input.dtype, shape, 2, params,
                                       slicer::internal::SelectionPath::kRadix, &vector_isa);
        slicer::internal::SetBaselineSimdForTesting(true);
        slicer::internal::EncodeStream(input.bytes.data(), input.dtype, shape, 2, params,
                                       slicer::internal::SelectionPath::kRadix, &baseline);
        slicer::internal::SetBaselineSimdForTesting(false);
        CHECK(!baseline.empty());
        CHECK(vector_isa == baseline);
        ++cases;
      }
    }
  }
  CHECK_EQ(cases, 27);
}

// Block 0 holds three equal magnitudes (width 0) above a chained range: it decodes to its own
// top, not to the chain's lower end; values from the NumPy reference.
TEST(ChainedWidthZeroBlockDecodesToItsTop) {
  const Input input = MakeInput({5, 5, 5, 4, 3, 2}, SLICER_FLOAT32, {6});
  slicer_params params = DefaultParams();
  params.sparsity_ppb = 0;
  params.blocks_pos = 2;
  std::vector<uint8_t> stream;
  CHECK_EQ(Encode(input, params, &stream), SLICER_OK);
  std::vector<float> decoded;
  CHECK_EQ(Decode(stream, &decoded), SLICER_OK);
  CHECK(decoded == std::vector<float>({5, 5, 5, 4, 4, 2}));
}

// One far gap after a dense run: its Rice quotient is far above 32 ones (long unary path).
TEST(LongUnaryGapRoundTrips) {
  std::vector<float> raw(16384, 0.0f);
  for (int j = 0; j < 100; ++j) raw[j] = static_cast<float>(j + 1) * (j % 2 ? -1.0f : 1.0f);
  raw[16000] = 50.5f;
  const Input input = MakeInput(raw, SLICER_FLOAT32, {16384});
  slicer_params params = DefaultParams();
  params.sparsity_ppb = 0;
  const std::vector<uint8_t> stream = CheckRoundTrip(input, params);
  slicer_account account;
  CHECK_EQ(slicer_inspect(stream.data(), stream.size(), 1u << 20, nullptr, &account, nullptr, 0,
                          nullptr),
           SLICER_OK);
  CHECK(account.position_bits > 5 + 15900 / 64);  // r = 6: the last gap alone needs 248 ones
}

TEST(EmptyScalarAndAllZeroTensors) {
  slicer_params params = DefaultParams();
  {
    const Input input = MakeInput({}, SLICER_FLOAT32, {0, 3});
    const std::vector<uint8_t> stream = CheckRoundTrip(input, params);
    slicer_header header;
    CHECK_EQ(slicer_read_header(stream.data(), stream.size(), 0, &header), SLICER_OK);
    CHECK_EQ(header.num_elements, 0u);
    CHECK_EQ(header.ndim, 2u);
  }
  {
    const Input input = MakeInput({-2.5f}, SLICER_FLOAT16, {});
    params.sparsity_ppb = 0;
    const std::vector<uint8_t> stream = CheckRoundTrip(input, params);
    std::vector<float> decoded;
    CHECK_EQ(Decode(stream, &decoded), SLICER_OK);
    CHECK_EQ(decoded.size(), 1u);
    CHECK(decoded[0] == -2.5f);
  }
  {
    const Input input = MakeInput(std::vector<float>(1000, 0.0f), SLICER_BFLOAT16, {10, 100});
    params.group_rows = 1;
    CheckRoundTrip(input, params);
  }
}

TEST(NonFiniteAndBadArgumentsAreRejected) {
  slicer_params params = DefaultParams();
  std::vector<float> raw = slicer_test::Gaussian(100, 3);
  std::vector<uint8_t> out;
  raw[57] = NAN;
  CHECK_EQ(Encode(MakeInput(raw, SLICER_FLOAT32, {100}), params, &out), SLICER_ERR_NONFINITE_INPUT);
  raw[57] = -INFINITY;
  CHECK_EQ(Encode(MakeInput(raw, SLICER_BFLOAT16, {100}), params, &out),
           SLICER_ERR_NONFINITE_INPUT);
  raw[57] = 1e6f;  // overflows float16: infinity
  CHECK_EQ(Encode(MakeInput(raw, SLICER_FLOAT16, {100}), params, &out), SLICER_ERR_NONFINITE_INPUT);
  raw[57] = 1.0f;
  const Input good = MakeInput(raw, SLICER_FLOAT32, {100});
  slicer_params bad = params;
  bad.sparsity_ppb = 1000000000u;
  CHECK_EQ(Encode(good, bad, &out), SLICER_ERR_INVALID_ARGUMENT);
  bad = params;
  bad.bits = 17;
  CHECK_EQ(Encode(good, bad, &out), SLICER_ERR_INVALID_ARGUMENT);
  bad = params;
  bad.blocks_neg = 0;
  CHECK_EQ(Encode(good, bad, &out), SLICER_ERR_INVALID_ARGUMENT);
  bad = params;
  bad.chunk_log2 = 5;
  CHECK_EQ(Encode(good, bad, &out), SLICER_ERR_INVALID_ARGUMENT);
  size_t written = 0;
  const int64_t shape[1] = {100};
  CHECK_EQ(slicer_encode(good.bytes.data(), 4, shape, 1, &params, out.data(), 0, &written),
           SLICER_ERR_UNSUPPORTED_DTYPE);
  const int64_t negative[1] = {-1};
  CHECK_EQ(slicer_encode(good.bytes.data(), 1, negative, 1, &params, nullptr, 0, &written),
           SLICER_ERR_INVALID_ARGUMENT);
  std::vector<uint8_t> small(10);
  CHECK_EQ(
      slicer_encode(good.bytes.data(), 1, shape, 1, &params, small.data(), small.size(), &written),
      SLICER_ERR_BUFFER_TOO_SMALL);
}

TEST(EncodeBoundHoldsInWorstCases) {
  int checked = 0;
  for (int variant = 0; variant < 16; ++variant) {
    const size_t n = variant % 2 == 0 ? 20000 : 4099;
    std::vector<float> raw = slicer_test::Gaussian(n, 500 + variant, 1e3);
    const Input input = MakeInput(raw, SLICER_FLOAT32, {static_cast<int64_t>(n)});
    slicer_params params = DefaultParams();
    params.sparsity_ppb = variant % 4 == 0 ? 0u : 1000000u * static_cast<uint32_t>(variant * 61);
    params.bits = 16;
    params.delta_micro = 0;
    params.blocks_pos = static_cast<uint8_t>(variant % 3 == 0 ? 64 : 1 + variant);
    params.blocks_neg = static_cast<uint8_t>(variant % 5 == 0 ? 64 : 2);
    params.chunk_log2 = static_cast<uint8_t>(6 + variant);
    std::vector<uint8_t> stream;
    CHECK_EQ(Encode(input, params, &stream), SLICER_OK);
    size_t bound = 0;
    CHECK_EQ(slicer_encode_bound(input.shape.data(), 1, input.dtype, &params, &bound), SLICER_OK);
    CHECK(stream.size() <= bound);
    ++checked;
  }
  CHECK_EQ(checked, 16);
}

// Size sanity of the design brief (printed so runs record the numbers).
TEST(SizeSanity) {
  const Input input = MakeInput(slicer_test::Gaussian(1000000, 2024), SLICER_FLOAT32, {1000000});
  slicer_params params = DefaultParams();
  params.delta_micro = 0;
  std::vector<uint8_t> stream;
  CHECK_EQ(Encode(input, params, &stream), SLICER_OK);
  const double bpe_90 = 8.0 * stream.size() / 1e6;
  params.sparsity_ppb = 990000000u;
  CHECK_EQ(Encode(input, params, &stream), SLICER_OK);
  const double bpe_99 = 8.0 * stream.size() / 1e6;
  const Input row = MakeInput(slicer_test::Gaussian(576, 7), SLICER_FLOAT32, {576});
  params = DefaultParams();
  CHECK_EQ(Encode(row, params, &stream), SLICER_OK);
  const size_t row_bytes = stream.size();
  std::printf("  1M N(0,1) s=0.9 delta=0: %.4f bits/element; s=0.99: %.4f; 576-row: %zu bytes\n",
              bpe_90, bpe_99, row_bytes);
  CHECK(bpe_90 <= 1.6);
  CHECK(bpe_99 <= 0.2);
  CHECK(row_bytes <= 200);
}

}  // namespace

TEST_MAIN()
