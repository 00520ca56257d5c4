// Frames (docs/format.md §17) through the C ABI and the C++ wrapper: the golden contexts and
// frames decode with the right sequence numbers, the C++ encoder rebuilds none of them wrongly
// (decode → values within the step), damaged or truncated inputs fail with a status, never a
// crash. Byte equality with the NumPy reference is tested in tests/test_frames.py.
#include <cmath>
#include <cstring>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "harness.hpp"
#include "slicer/slicer.h"
#include "slicer/slicer.hpp"

namespace {

std::vector<uint8_t> ReadFile(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::vector<uint8_t>((std::istreambuf_iterator<char>(f)), {});
}

const char* const kGoldens[] = {
    "f32_smollm2_l15", "f32_smollm2_l15_k2", "f16_7", "bf16_3x5", "f64_1", "f64_unseen", "f32_8192",
    "f32_smollm2_l15_c8", "f16_7_c3", "f64_2_c2", "bf16_3x5_c15",
    // trellis contexts (§17.4)
    "f32_smollm2_l15_t", "f32_smollm2_l15_c8_t", "f16_7_t", "f64_unseen_t", "bf16_3x5_c15_t"};

TEST(golden_frames_decode_and_damage_fails) {
  for (const char* name : kGoldens) {
    const std::string base = std::string(SLICER_FRAMES_GOLDEN_DIR) + "/" + name;
    const std::vector<uint8_t> ctx = ReadFile(base + ".ctx");
    CHECK(!ctx.empty());
    slicer_frame_context* c = nullptr;
    CHECK_EQ(slicer_frame_context_open(ctx.data(), ctx.size(), 1u << 18, &c), SLICER_OK);
    slicer_frame_info info;
    CHECK_EQ(slicer_frame_context_info(c, &info), SLICER_OK);
    const size_t item = info.dtype == SLICER_FLOAT64 ? 8 : info.dtype == SLICER_FLOAT32 ? 4 : 2;
    std::vector<uint8_t> out(info.row_elements * item);
    for (uint32_t k = 0;; ++k) {
      const std::vector<uint8_t> frame = ReadFile(base + "_" + std::to_string(k) + ".frame");
      if (frame.empty()) break;
      uint32_t seq = 99;
      CHECK_EQ(slicer_frame_decode(c, frame.data(), frame.size(), out.data(), out.size(), &seq),
               SLICER_OK);
      CHECK_EQ(seq, k);
      for (size_t cut = 0; cut < frame.size(); cut += 1 + frame.size() / 50) {
        CHECK(slicer_frame_decode(c, frame.data(), cut, out.data(), out.size(), &seq) != SLICER_OK);
      }
      for (size_t i = 0; i < frame.size(); i += 1 + frame.size() / 50) {
        std::vector<uint8_t> bad = frame;
        bad[i] ^= 0x10;
        CHECK(slicer_frame_decode(c, bad.data(), bad.size(), out.data(), out.size(), &seq) !=
              SLICER_OK);
      }
    }
    for (size_t cut = 0; cut < ctx.size(); ++cut) {
      slicer_frame_context* t = nullptr;
      CHECK(slicer_frame_context_open(ctx.data(), cut, 1u << 18, &t) != SLICER_OK);
      CHECK(t == nullptr);
    }
    slicer_frame_context_free(c);
  }
}

TEST(round_trip_within_half_a_step_and_wrapper) {
  std::vector<float> rows(5 * 300);
  for (size_t i = 0; i < rows.size(); ++i) {
    rows[i] = static_cast<float>(std::sin(0.1 * i) * (i % 97 == 0 ? 5000.0 : 3.0));
  }
  for (uint8_t states : {1, 2, 4}) {
    const float step = 0.125f;
    const std::vector<uint8_t> ctx =
        slicer::FrameContext::Build(rows.data(), slicer::DType::kFloat32, 2, {300}, step, states);
    slicer::FrameContext fc(ctx);
    CHECK_EQ(fc.info().states, states);
    CHECK_EQ(fc.info().row_elements, 300u);
    std::vector<float> out(300);
    for (uint32_t r = 2; r < 5; ++r) {
      const std::vector<uint8_t> frame = fc.Encode(rows.data() + 300 * r, 1200, r);
      CHECK(frame.size() <= fc.info().frame_bound);
      CHECK_EQ(fc.Decode(frame, out.data(), 1200), r);
      for (size_t i = 0; i < 300; ++i) {
        // |x − x̂| ≤ (ρ + |offset|/256) · Δ with ρ = 1/2 and |offset| ≤ 1/2.
        CHECK(std::fabs(out[i] - rows[300 * r + i]) <= step * (1.0 + 1e-6));
      }
    }
    bool threw = false;
    try {
      fc.Encode(rows.data(), 1196, 0);  // wrong row size
    } catch (const slicer::Error& e) {
      threw = e.status() == SLICER_ERR_INVALID_ARGUMENT;
    }
    CHECK(threw);
  }
  // A frame of another context fails its check.
  const std::vector<uint8_t> a =
      slicer::FrameContext::Build(rows.data(), slicer::DType::kFloat32, 2, {300}, 0.125f);
  const std::vector<uint8_t> b =
      slicer::FrameContext::Build(rows.data(), slicer::DType::kFloat32, 2, {300}, 0.25f);
  slicer::FrameContext fa(a), fb(b);
  const std::vector<uint8_t> frame = fa.Encode(rows.data() + 600, 1200, 0);
  std::vector<float> out(300);
  uint32_t seq;
  slicer_frame_context* raw = nullptr;
  CHECK_EQ(slicer_frame_context_open(b.data(), b.size(), 300, &raw), SLICER_OK);
  CHECK_EQ(slicer_frame_decode(raw, frame.data(), frame.size(), out.data(), 1200, &seq),
           SLICER_ERR_BAD_CHECKSUM);
  slicer_frame_context_free(raw);
  // Non-finite input is refused.
  std::vector<float> nan_row(300, NAN);
  size_t written = 0;
  std::vector<uint8_t> dst(fa.info().frame_bound);
  raw = nullptr;
  CHECK_EQ(slicer_frame_context_open(a.data(), a.size(), 300, &raw), SLICER_OK);
  CHECK_EQ(slicer_frame_encode(raw, nan_row.data(), 1200, 0, dst.data(), dst.size(), &written),
           SLICER_ERR_NONFINITE_INPUT);
  // Row limit: a context of 300-element rows is refused under max_elements = 299.
  slicer_frame_context* small = nullptr;
  CHECK_EQ(slicer_frame_context_open(a.data(), a.size(), 299, &small), SLICER_ERR_LIMIT_EXCEEDED);
  slicer_frame_context_free(raw);
}

TEST(class_maps_round_trip_and_bound) {
  // Rows whose positions differ in spread by 1000x: a class map gives smaller frames.
  const uint64_t r = 301;  // odd: the map's last byte has a padding nibble
  std::vector<float> rows(40 * r);
  for (size_t i = 0; i < rows.size(); ++i) {
    const double scale = std::pow(10.0, 3.0 * static_cast<double>(i % r) / r);
    rows[i] = static_cast<float>(std::sin(0.7 * i) * scale * 0.01);
  }
  const float step = 0.05f;
  std::vector<uint8_t> one =
      slicer::FrameContext::Build(rows.data(), slicer::DType::kFloat32, 20, {301}, step, 2, 1);
  slicer::FrameContext f1(one);
  size_t bytes1 = 0;
  for (unsigned classes : {2u, 7u, 16u}) {
    const std::vector<uint8_t> ctx = slicer::FrameContext::Build(
        rows.data(), slicer::DType::kFloat32, 20, {301}, step, 2, classes);
    CHECK(ctx.size() <= SLICER_FRAME_CONTEXT_BOUND(r, classes));
    slicer::FrameContext fc(ctx);
    slicer_frame_context* raw = nullptr;
    CHECK_EQ(slicer_frame_context_open(ctx.data(), ctx.size(), r, &raw), SLICER_OK);
    uint32_t got = 0;
    CHECK_EQ(slicer_frame_context_classes(raw, &got), SLICER_OK);
    CHECK_EQ(got, classes);
    slicer_frame_context_free(raw);
    size_t bytes = 0;
    std::vector<float> out(r);
    for (uint32_t k = 20; k < 40; ++k) {
      const std::vector<uint8_t> frame = fc.Encode(rows.data() + r * k, 4 * r, k);
      bytes += frame.size();
      CHECK_EQ(fc.Decode(frame, out.data(), 4 * r), k);
      for (size_t i = 0; i < r; ++i) CHECK(std::fabs(out[i] - rows[r * k + i]) <= step);
      if (classes == 2) bytes1 += f1.Encode(rows.data() + r * k, 4 * r, k).size();
    }
    CHECK(bytes < bytes1);  // per-class tables pay for these rows
  }
  // More classes than positions, or above 16, is an argument error.
  slicer_frame_params p;
  slicer_frame_params_init(&p);
  std::vector<uint8_t> dst(SLICER_FRAME_CONTEXT_BOUND(301u, 17u));
  size_t n = 0;
  const int64_t three[1] = {3};
  CHECK_EQ(slicer_frame_context_build_classes(rows.data(), SLICER_FLOAT32, 2, three, 1, &p, 4,
                                              dst.data(), dst.size(), &n),
           SLICER_ERR_INVALID_ARGUMENT);
  const int64_t shape[1] = {301};
  CHECK_EQ(slicer_frame_context_build_classes(rows.data(), SLICER_FLOAT32, 2, shape, 1, &p, 17,
                                              dst.data(), dst.size(), &n),
           SLICER_ERR_INVALID_ARGUMENT);
  CHECK_EQ(slicer_frame_context_build_classes(rows.data(), SLICER_FLOAT32, 2, shape, 1, &p, 0,
                                              dst.data(), dst.size(), &n),
           SLICER_ERR_INVALID_ARGUMENT);
  CHECK_EQ(slicer_frame_context_build_classes(rows.data(), SLICER_FLOAT32, 2, shape, 1, &p, 8,
                                              dst.data(), 200, &n),
           SLICER_ERR_BUFFER_TOO_SMALL);
}

TEST(trellis_contexts_round_trip_and_bound) {
  // §17.4: a trellis context through the wrapper; every element decodes within
  // sqrt(4 + λ · 67) + 1/2 steps (the Viterbi's worst case per element), most far closer;
  // the context is reported as trellis with its λ; a row reaching |x| / Δ = 2^52 is refused.
  const uint64_t r = 300;
  std::vector<float> rows(6 * r);
  for (size_t i = 0; i < rows.size(); ++i) {
    rows[i] = static_cast<float>(std::sin(0.1 * i) * (i % 97 == 0 ? 5000.0 : 3.0));
  }
  const float step = 0.0625f;
  for (uint32_t classes : {1u, 5u}) {
    for (uint8_t states : {1, 2, 4}) {
      const std::vector<uint8_t> ctx = slicer::FrameContext::Build(
          rows.data(), slicer::DType::kFloat32, 3, {300}, step, states, classes, 0.34f);
      CHECK(ctx.size() <= SLICER_FRAME_TRELLIS_CONTEXT_BOUND(r, classes));
      CHECK_EQ(ctx[7], (classes > 1 ? 1 : 0) | 2);  // flags: class map, trellis
      slicer::FrameContext fc(ctx);
      CHECK_EQ(fc.info().trellis, 1u);
      CHECK(fc.info().trellis_lambda == 0.34f);
      CHECK_EQ(fc.info().rho_256, 0u);
      std::vector<float> out(r);
      double sse = 0;
      for (uint32_t k = 3; k < 6; ++k) {
        const std::vector<uint8_t> frame = fc.Encode(rows.data() + r * k, 4 * r, k);
        CHECK(frame.size() <= fc.info().frame_bound);
        CHECK_EQ(fc.Decode(frame, out.data(), 4 * r), k);
        for (size_t i = 0; i < r; ++i) {
          const double e = std::fabs(out[i] - rows[r * k + i]);
          CHECK(e <= (std::sqrt(4.0 + 0.34 * 67.0) + 1.0) * step);
          sse += e * e;
        }
      }
      // RMS: about that of a uniform quantizer of step 2Δ (0.58 Δ), far below the worst case
      CHECK(std::sqrt(sse / (3 * r)) < 0.8 * step);
    }
  }
  slicer_frame_params p;
  slicer_frame_params_init(&p);
  CHECK(p.trellis == 0 && p.trellis_lambda == 0.34f);
  p.trellis = 1;
  p.step = 0.0625f;
  std::vector<uint8_t> dst(SLICER_FRAME_TRELLIS_CONTEXT_BOUND(300u, 1u));
  size_t n = 0;
  const int64_t shape[1] = {300};
  for (float lam : {0.0f, -1.0f, NAN, INFINITY}) {
    p.trellis_lambda = lam;
    CHECK_EQ(slicer_frame_context_build(rows.data(), SLICER_FLOAT32, 2, shape, 1, &p, dst.data(),
                                        dst.size(), &n),
             SLICER_ERR_INVALID_ARGUMENT);
  }
  p.trellis_lambda = 0.34f;
  p.trellis = 2;
  CHECK_EQ(slicer_frame_context_build(rows.data(), SLICER_FLOAT32, 2, shape, 1, &p, dst.data(),
                                      dst.size(), &n),
           SLICER_ERR_INVALID_ARGUMENT);
  p.trellis = 1;
  CHECK_EQ(slicer_frame_context_build(rows.data(), SLICER_FLOAT32, 2, shape, 1, &p, dst.data(),
                                      dst.size(), &n),
           SLICER_OK);
  slicer_frame_context* raw = nullptr;
  CHECK_EQ(slicer_frame_context_open(dst.data(), n, 300, &raw), SLICER_OK);
  std::vector<float> big(300, 0.0f);
  big[7] = 0x1p48f;  // |x| / Δ = 2^52
  std::vector<uint8_t> frame(2000);
  size_t written = 0;
  CHECK_EQ(slicer_frame_encode(raw, big.data(), 1200, 0, frame.data(), frame.size(), &written),
           SLICER_ERR_INVALID_ARGUMENT);
  big[7] = NAN;
  CHECK_EQ(slicer_frame_encode(raw, big.data(), 1200, 0, frame.data(), frame.size(), &written),
           SLICER_ERR_NONFINITE_INPUT);
  slicer_frame_context_free(raw);
}

}  // namespace

TEST_MAIN()
