// Contexts (slicer_context_*): the same bytes as slicer_encode on every pool size, batches
// byte-identical to item-by-item encodes, concurrent callers, and argument checks.
#include <atomic>
#include <cmath>
#include <cstring>
#include <thread>
#include <vector>

#include "encoder.hpp"
#include "float_bits.hpp"
#include "harness.hpp"
#include "slicer/slicer.h"
#include "test_support.hpp"

namespace {

using slicer_test::Gaussian;
using slicer_test::Input;
using slicer_test::MakeInput;

std::vector<uint8_t> PlainEncode(const Input& input, const slicer_params& params) {
  size_t bound = 0;
  if (slicer_encode_bound(input.shape.data(), static_cast<uint32_t>(input.shape.size()),
                          input.dtype, &params, &bound) != SLICER_OK) {
    return {};
  }
  std::vector<uint8_t> stream(bound);
  size_t written = 0;
  if (slicer_encode(input.bytes.data(), input.dtype, input.shape.data(),
                    static_cast<uint32_t>(input.shape.size()), &params, stream.data(), bound,
                    &written) != SLICER_OK) {
    return {};
  }
  stream.resize(written);
  return stream;
}

std::vector<uint8_t> ContextEncode(slicer_context* context, const Input& input,
                                   const slicer_params& params) {
  const uint8_t* stream = nullptr;
  size_t size = 0;
  const int status =
      slicer_context_encode(context, input.bytes.data(), input.dtype, input.shape.data(),
                            static_cast<uint32_t>(input.shape.size()), &params, &stream, &size);
  CHECK_EQ(status, SLICER_OK);
  if (status != SLICER_OK) return {};
  return std::vector<uint8_t>(stream, stream + size);
}

slicer_params Params(uint32_t sparsity_ppb, bool rows, uint16_t threads) {
  slicer_params params;
  slicer_params_init(&params);
  params.sparsity_ppb = sparsity_ppb;
  params.group_rows = rows ? 1 : 0;
  params.threads = threads;
  return params;
}

}  // namespace

// Large groups split into parts (the sweep's per-part lists, their trim, the ties at tau and at
// the block cuts drawn in parts, payload parts checksummed apart): tie-heavy inputs give the
// bytes of one thread at every thread count, for 32- and 16-bit input.
TEST(TieHeavyLargeGroupsMatchOneThreadAtEveryThreadCount) {
  std::vector<float> rounded = Gaussian(400003, 31);
  for (float& v : rounded) v = std::round(v * 128.0f) / 128.0f;  // many equal magnitudes
  const std::vector<std::vector<float>> inputs = {slicer_test::Ties(300001, 7, 40, 0.2), rounded};
  slicer_context* context = slicer_context_create(4);
  for (const std::vector<float>& raw : inputs) {
    for (int dtype : {SLICER_FLOAT32, SLICER_FLOAT16}) {
      const Input input = MakeInput(raw, dtype, {static_cast<int64_t>(raw.size())});
      for (uint32_t sparsity : {900000000u, 500000000u}) {
        const std::vector<uint8_t> expected = PlainEncode(input, Params(sparsity, false, 1));
        CHECK(!expected.empty());
        for (uint16_t threads : {uint16_t{2}, uint16_t{3}, uint16_t{4}}) {
          CHECK(ContextEncode(context, input, Params(sparsity, false, threads)) == expected);
        }
      }
    }
  }
  slicer_context_destroy(context);
}

TEST(ContextStreamsMatchPlainEncodeAtEveryPoolSize) {
  const std::vector<float> raw = Gaussian(3 * 70001, 11);
  for (unsigned pool : {0u, 1u, 2u, 3u, 5u}) {
    slicer_context* context = slicer_context_create(pool);
    CHECK(context != nullptr);
    CHECK(slicer_context_threads(context) >= 1);
    for (int dtype : {SLICER_FLOAT32, SLICER_FLOAT16, SLICER_BFLOAT16}) {
      for (size_t n : {size_t{1}, size_t{7}, size_t{4096}, size_t{70001}, raw.size()}) {
        const Input input = MakeInput(std::vector<float>(raw.begin(), raw.begin() + n), dtype,
                                      {static_cast<int64_t>(n)});
        for (uint16_t threads : {uint16_t{0}, uint16_t{1}, uint16_t{4}}) {
          const slicer_params params = Params(900000000u, false, threads);
          const std::vector<uint8_t> expected = PlainEncode(input, Params(900000000u, false, 1));
          CHECK(!expected.empty());
          CHECK(ContextEncode(context, input, params) == expected);
        }
      }
      // s = 0: about 75 000 kept values per sign, labelled by several parts.
      const Input half =
          MakeInput(std::vector<float>(raw.begin(), raw.begin() + 150001), dtype, {150001});
      CHECK(ContextEncode(context, half, Params(0u, false, 0)) ==
            PlainEncode(half, Params(0u, false, 1)));
      // Rows: many groups coded by several parts.
      const Input rows = MakeInput(raw, dtype, {3 * 70001 / 7, 7});
      CHECK(ContextEncode(context, rows, Params(500000000u, true, 0)) ==
            PlainEncode(rows, Params(500000000u, true, 1)));
    }
    slicer_context_destroy(context);
  }
}

TEST(BatchMatchesItemByItem) {
  for (unsigned pool : {1u, 2u, 4u}) {
    slicer_context* context = slicer_context_create(pool);
    for (int dtype : {SLICER_FLOAT32, SLICER_FLOAT16, SLICER_BFLOAT16}) {
      for (const std::vector<int64_t>& shape :
           {std::vector<int64_t>{37, 576}, std::vector<int64_t>{5, 3, 9}, std::vector<int64_t>{9},
            std::vector<int64_t>{3, 70000}, std::vector<int64_t>{0, 4}}) {
        size_t count = 1;
        for (int64_t d : shape) count *= static_cast<size_t>(d);
        const Input input = MakeInput(Gaussian(count, 5 + count), dtype, shape);
        for (bool rows : {false, true}) {
          if (rows && shape.size() < 2) continue;
          const slicer_params params = Params(900000000u, rows, 0);
          const size_t items = static_cast<size_t>(shape[0]);
          std::vector<const uint8_t*> streams(items + 1, nullptr);
          std::vector<size_t> sizes(items + 1, 0);
          const int status = slicer_context_encode_batch(
              context, input.bytes.data(), dtype, shape.data(), static_cast<uint32_t>(shape.size()),
              &params, streams.data(), sizes.data());
          CHECK_EQ(status, SLICER_OK);
          if (status != SLICER_OK) continue;
          const size_t item_count = items == 0 ? 0 : count / items;
          const size_t item_bytes = item_count * (dtype == SLICER_FLOAT32 ? 4 : 2);
          for (size_t i = 0; i < items; ++i) {
            Input item;
            item.dtype = dtype;
            item.shape.assign(shape.begin() + 1, shape.end());
            item.bytes.assign(input.bytes.begin() + i * item_bytes,
                              input.bytes.begin() + (i + 1) * item_bytes);
            const std::vector<uint8_t> expected = PlainEncode(item, params);
            CHECK(!expected.empty());
            CHECK(std::vector<uint8_t>(streams[i], streams[i] + sizes[i]) == expected);
          }
        }
      }
    }
    slicer_context_destroy(context);
  }
}

TEST(BatchReportsTheFirstBadItem) {
  slicer_context* context = slicer_context_create(2);
  std::vector<float> raw = Gaussian(64 * 16, 3);
  raw[40 * 16 + 3] = std::nanf("");
  const Input input = MakeInput(raw, SLICER_FLOAT32, {64, 16});
  const slicer_params params = Params(900000000u, false, 0);
  std::vector<const uint8_t*> streams(64);
  std::vector<size_t> sizes(64);
  CHECK_EQ(
      slicer_context_encode_batch(context, input.bytes.data(), SLICER_FLOAT32, input.shape.data(),
                                  2, &params, streams.data(), sizes.data()),
      SLICER_ERR_NONFINITE_INPUT);
  // The context still works after a failed call.
  const Input good = MakeInput(Gaussian(100, 1), SLICER_FLOAT32, {100});
  CHECK(ContextEncode(context, good, params) == PlainEncode(good, params));
  slicer_context_destroy(context);
}

// Six threads, each with a context on the shared pool plus the plain ABI's leased contexts.
TEST(ConcurrentCallersShareOnePoolAndGetTheirOwnStreams) {
  const Input big = MakeInput(Gaussian(1 << 18, 21), SLICER_FLOAT32, {1 << 18});
  const Input small = MakeInput(Gaussian(576, 22), SLICER_FLOAT32, {576});
  const slicer_params params = Params(900000000u, false, 0);
  const std::vector<uint8_t> big_expected = PlainEncode(big, Params(900000000u, false, 1));
  const std::vector<uint8_t> small_expected = PlainEncode(small, params);
  std::atomic<int> mismatches{0};
  std::vector<std::thread> callers;
  for (int t = 0; t < 6; ++t) {
    callers.emplace_back([&, t] {
      slicer_context* own = slicer_context_create(0);  // scratch only, the shared pool
      for (int round = 0; round < 4; ++round) {
        const Input& input = (t + round) % 2 ? big : small;
        const std::vector<uint8_t>& expected = (t + round) % 2 ? big_expected : small_expected;
        if (ContextEncode(own, input, params) != expected) ++mismatches;
        if (PlainEncode(input, params) != expected) ++mismatches;
      }
      slicer_context_destroy(own);
    });
  }
  for (std::thread& caller : callers) caller.join();
  CHECK_EQ(mismatches.load(), 0);
}

TEST(ContextArgumentsAreChecked) {
  const Input input = MakeInput(Gaussian(10, 1), SLICER_FLOAT32, {10});
  const slicer_params params = Params(900000000u, false, 0);
  const uint8_t* stream = nullptr;
  size_t size = 0;
  CHECK_EQ(slicer_context_encode(nullptr, input.bytes.data(), SLICER_FLOAT32, input.shape.data(), 1,
                                 &params, &stream, &size),
           SLICER_ERR_INVALID_ARGUMENT);
  slicer_context* context = slicer_context_create(1);
  CHECK_EQ(slicer_context_encode(context, input.bytes.data(), SLICER_FLOAT32, input.shape.data(), 1,
                                 &params, nullptr, &size),
           SLICER_ERR_INVALID_ARGUMENT);
  CHECK_EQ(slicer_context_encode(context, input.bytes.data(), 7, input.shape.data(), 1, &params,
                                 &stream, &size),
           SLICER_ERR_UNSUPPORTED_DTYPE);
  const int64_t scalar_shape[1] = {0};
  CHECK_EQ(slicer_context_encode_batch(context, input.bytes.data(), SLICER_FLOAT32, scalar_shape, 0,
                                       &params, nullptr, nullptr),
           SLICER_ERR_INVALID_ARGUMENT);
  const int64_t negative[2] = {-1, 4};
  const uint8_t* streams[1];
  size_t sizes[1];
  CHECK_EQ(slicer_context_encode_batch(context, input.bytes.data(), SLICER_FLOAT32, negative, 2,
                                       &params, streams, sizes),
           SLICER_ERR_INVALID_ARGUMENT);
  CHECK_EQ(slicer_context_threads(nullptr), 0u);
  slicer_context_destroy(context);
  slicer_context_destroy(nullptr);
}

TEST(ContextDecodeMatchesPlainDecode) {
  const Input input = MakeInput(Gaussian(200000, 9), SLICER_FLOAT32, {200000});
  const std::vector<uint8_t> stream = PlainEncode(input, Params(900000000u, false, 0));
  std::vector<float> plain(200000), pooled(200000);
  CHECK_EQ(slicer_decode(stream.data(), stream.size(), 1u << 20, plain.data(), 4 * plain.size(), 1),
           SLICER_OK);
  slicer_context* context = slicer_context_create(3);
  CHECK_EQ(slicer_context_decode(context, stream.data(), stream.size(), 1u << 20, pooled.data(),
                                 4 * pooled.size(), 0),
           SLICER_OK);
  CHECK(std::memcmp(plain.data(), pooled.data(), 4 * plain.size()) == 0);
  slicer_context_destroy(context);
}

// The vector widening agrees with the scalar conversion on every bit pattern, at every
// alignment and tail length.
TEST(WideningMatchesScalarOnEveryPattern) {
  std::vector<uint8_t> bytes(2 * 65536 + 64);
  for (uint32_t pattern = 0; pattern < 65536; ++pattern) {
    const uint16_t value = static_cast<uint16_t>(pattern * 40503u);  // a permutation of 0..65535
    std::memcpy(&bytes[2 * pattern], &value, 2);
  }
  std::vector<float> x(65536 + 32);
  for (uint64_t begin : {0u, 1u, 3u, 7u}) {
    for (uint64_t end : {uint64_t{65536}, uint64_t{65531}, uint64_t{65534}}) {
      for (int bf16 = 0; bf16 < 2; ++bf16) {
        std::fill(x.begin(), x.end(), -1.0f);
        if (bf16) {
          slicer::internal::WidenBFloat16(bytes.data(), begin, end, x.data());
        } else {
          slicer::internal::WidenHalf(bytes.data(), begin, end, x.data());
        }
        int mismatches = 0;
        for (uint64_t j = 0; j < x.size(); ++j) {
          uint16_t value;
          std::memcpy(&value, &bytes[2 * j], 2);
          const float expected = j < begin || j >= end ? -1.0f
                                 : bf16                ? slicer::internal::BFloat16ToFloat(value)
                                                       : slicer::internal::HalfToFloat(value);
          mismatches += std::memcmp(&expected, &x[j], 4) != 0;
        }
        CHECK_EQ(mismatches, 0);
      }
    }
  }
}

// The dense mode of format 2 on a context: the bytes (and the squared error) of
// slicer_dense_encode at every pool size, a stream that stays valid until the context's next
// call, concurrent callers on the shared pool, decoding on the context, argument checks.
TEST(DenseContextEncodeMatchesPlainDenseEncode) {
  auto plain = [](const Input& input, const slicer_dense_params& p, double* sse) {
    const uint32_t ndim = static_cast<uint32_t>(input.shape.size());
    size_t bound = 0;
    CHECK_EQ(slicer_dense_encode_bound(input.shape.data(), ndim, input.dtype, &p, &bound),
             SLICER_OK);
    std::vector<uint8_t> out(bound);
    size_t written = 0;
    double unused = 0.0;
    CHECK_EQ(slicer_dense_encode_sse(input.bytes.data(), input.dtype, input.shape.data(), ndim, &p,
                                     out.data(), bound, &written, sse ? sse : &unused),
             SLICER_OK);
    out.resize(written);
    return out;
  };
  auto pooled = [](slicer_context* context, const Input& input, const slicer_dense_params& p,
                   double* sse) {
    const uint8_t* stream = nullptr;
    size_t size = 0;
    const int status = slicer_context_dense_encode(
        context, input.bytes.data(), input.dtype, input.shape.data(),
        static_cast<uint32_t>(input.shape.size()), &p, &stream, &size, sse);
    CHECK_EQ(status, SLICER_OK);
    return status == SLICER_OK ? std::vector<uint8_t>(stream, stream + size)
                               : std::vector<uint8_t>();
  };
  slicer_dense_params params;
  slicer_dense_params_init(&params);
  params.step = 0.05f;
  params.chunk_log2 = 12;  // several chunks: the pool's parts really run
  const Input inputs[] = {MakeInput(Gaussian(1, 31), SLICER_FLOAT32, {1}),
                          MakeInput(Gaussian(100003, 32), SLICER_FLOAT32, {100003}),
                          MakeInput(Gaussian(3 * 4099, 33), SLICER_FLOAT16, {3, 4099}),
                          MakeInput(Gaussian(0, 34), SLICER_FLOAT32, {0, 7})};
  for (uint32_t pool : {1u, 2u, 5u, 0u}) {
    slicer_context* context = slicer_context_create(pool);
    for (const Input& input : inputs) {
      for (uint16_t threads : {uint16_t{0}, uint16_t{1}, uint16_t{3}}) {
        slicer_dense_params p = params;
        p.threads = threads;
        double sse_plain = -1.0, sse_pooled = -2.0;
        const std::vector<uint8_t> expected = plain(input, p, &sse_plain);
        CHECK(!expected.empty());
        CHECK(pooled(context, input, p, &sse_pooled) == expected);
        CHECK(sse_plain == sse_pooled);
        CHECK(pooled(context, input, p, nullptr) == expected);  // sse is optional
      }
    }
    // The stream is the context's until its next call; decoding on the context reads it.
    const Input& big = inputs[1];
    const uint8_t* stream = nullptr;
    size_t size = 0;
    CHECK_EQ(slicer_context_dense_encode(context, big.bytes.data(), big.dtype, big.shape.data(), 1,
                                         &params, &stream, &size, nullptr),
             SLICER_OK);
    const std::vector<uint8_t> copy(stream, stream + size);
    std::vector<float> a(100003), b(100003);
    CHECK_EQ(slicer_decode(copy.data(), copy.size(), 1u << 20, a.data(), 4 * a.size(), 1),
             SLICER_OK);
    CHECK_EQ(slicer_context_decode(context, stream, size, 1u << 20, b.data(), 4 * b.size(), 0),
             SLICER_OK);
    CHECK(std::memcmp(a.data(), b.data(), 4 * a.size()) == 0);
    slicer_context_destroy(context);
  }
  // Concurrent callers, each with a context of its own on the shared pool.
  const std::vector<uint8_t> expected = plain(inputs[1], params, nullptr);
  std::atomic<int> mismatches{0};
  std::vector<std::thread> callers;
  for (int t = 0; t < 4; ++t) {
    callers.emplace_back([&] {
      slicer_context* own = slicer_context_create(0);
      for (int round = 0; round < 3; ++round) {
        if (pooled(own, inputs[1], params, nullptr) != expected) ++mismatches;
        if (plain(inputs[1], params, nullptr) != expected) ++mismatches;
      }
      slicer_context_destroy(own);
    });
  }
  for (std::thread& caller : callers) caller.join();
  CHECK_EQ(mismatches.load(), 0);
  // Arguments.
  slicer_context* context = slicer_context_create(1);
  const Input& one = inputs[0];
  const uint8_t* stream = nullptr;
  size_t size = 0;
  CHECK_EQ(slicer_context_dense_encode(nullptr, one.bytes.data(), one.dtype, one.shape.data(), 1,
                                       &params, &stream, &size, nullptr),
           SLICER_ERR_INVALID_ARGUMENT);
  CHECK_EQ(slicer_context_dense_encode(context, one.bytes.data(), one.dtype, one.shape.data(), 1,
                                       &params, nullptr, &size, nullptr),
           SLICER_ERR_INVALID_ARGUMENT);
  CHECK_EQ(slicer_context_dense_encode(context, one.bytes.data(), 9, one.shape.data(), 1, &params,
                                       &stream, &size, nullptr),
           SLICER_ERR_UNSUPPORTED_DTYPE);
  slicer_dense_params bad = params;
  bad.chunk_log2 = 3;
  CHECK_EQ(slicer_context_dense_encode(context, one.bytes.data(), one.dtype, one.shape.data(), 1,
                                       &bad, &stream, &size, nullptr),
           SLICER_ERR_INVALID_ARGUMENT);
  CHECK(stream == nullptr && size == 0);
  slicer_context_destroy(context);
}

TEST_MAIN()
