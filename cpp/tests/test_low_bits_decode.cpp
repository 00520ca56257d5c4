// Mode 1's low-bit plane on the decoder's scalar path (docs/format.md §13.6;
// cpp/src/dense/dense_decode.cpp, DecodeRun / DecodeChunk): tensors whose chunks leave no set or
// pair of four-state chunks to the AVX2 decoder (one chunk, a one-state tail chunk, segment tails
// of the paired decoder) take the scalar decoder, which decodes a chunk near the end of the stream
// from a zero-padded copy of its bit area and, for float32 with AVX2, makes the values of its
// fast steps in batches of four lanes (LowBatchF32). Checked here: every width k = 1 … 15 decodes
// to the values of the same input's stream without the plane (a decoder path this change does not
// touch), with the SIMD paths on and forced off (the batches against the per-element formula), on
// sizes around the batch (256) and the four-state unroll, single chunks and tails, escaped symbols
// (codes ≥ 2^33 · 2^k) between fast steps, group tables with zero and raw rows, float16 / float64;
// and damaged streams (resealed, so that the payload is decoded) give the same status and values
// on both paths. The bytes and verdicts against the NumPy reference: tests/test_dense_low_bits.py.
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "crc32.hpp"
#include "float_bits.hpp"
#include "harness.hpp"
#include "low_bits_cases.hpp"
#include "slicer/slicer.h"
#include "test_support.hpp"

namespace {

using low_bits_test::Case;
using low_bits_test::Encode;
using low_bits_test::MakeCase;
using low_bits_test::Normal;

// The status of decoding `stream`; the output (NaN-patterned where nothing was written) in *out.
int DecodeInto(const std::vector<uint8_t>& stream, const Case& c, std::vector<uint8_t>* out) {
  out->assign(c.bytes.size(), 0xA5);
  return slicer_decode(stream.data(), stream.size(), c.values.size(), out->data(), out->size(), 1);
}

void SetSimd(bool on) {
  if (on) {
    unsetenv("SLICER_DENSE_SIMD");
  } else {
    setenv("SLICER_DENSE_SIMD", "0", 1);
  }
}


// Normal values with every `every`-th one a huge code (±1e12 at step 0.01: |q| ≈ 2^46.5, so h ≥
// 2^33 for k ≤ 13: a lut escape, the careful step, between fast steps).
std::vector<double> WithHuge(size_t n, uint64_t seed, size_t every) {
  std::vector<double> out = Normal(n, seed, 1.0);
  for (size_t j = every / 2; j < n; j += every) out[j] = (j & 1) ? -1e12 : 1e12;
  return out;
}

std::vector<Case> Cases() {
  std::vector<Case> cases;
  // One chunk of 2^14 (no pair for the AVX2 decoder) at steps of about 6-8 b/el and below, sizes
  // around the batch of 256 and the unroll of four; 16385 and 21952: a four-state chunk and a
  // one-state tail chunk.
  for (size_t n : {size_t{1}, size_t{3}, size_t{4}, size_t{5}, size_t{255}, size_t{256},
                   size_t{257}, size_t{1031}, size_t{16384}, size_t{16385}, size_t{21952}}) {
    for (float step : {0.004f, 0.02f, 0.3f})
      cases.push_back(MakeCase("normal_" + std::to_string(n) + "_" + std::to_string(step),
                               Normal(n, 11 + n, 1.0), SLICER_FLOAT32, step));
  }
  // Several chunks: sets and pairs on the AVX2 decoder, their segment tails and the last chunk
  // (near the end of the stream) on the scalar one.
  {
    Case c = MakeCase("chunks_10_5000", Normal(5000, 31, 1.0), SLICER_FLOAT32, 0.01f);
    c.chunk_log2 = 10;
    cases.push_back(std::move(c));
  }
  for (size_t every : {size_t{97}, size_t{4}, size_t{1000}})
    cases.push_back(MakeCase("huge_every_" + std::to_string(every),
                             WithHuge(3001, 40 + every, every), SLICER_FLOAT32, 0.01f));
  // Rows with a group table: exponents ±8, a zero row and a raw row (runs of 576 elements, each
  // its own Δ).
  {
    const size_t rows = 30, cols = 576;
    Case c = MakeCase("rows_groups", Normal(rows * cols, 51, 1.0), SLICER_FLOAT32, 0.01f,
                      {static_cast<int64_t>(rows), static_cast<int64_t>(cols)});
    c.groups.resize(rows);
    for (size_t r = 0; r < rows; ++r)
      c.groups[r] = static_cast<uint8_t>(static_cast<int8_t>(r % 3 == 0 ? 8 : r % 3 == 1 ? -8 : 0));
    c.groups[4] = SLICER_DENSE_GROUP_ZERO;
    c.groups[13] = SLICER_DENSE_GROUP_RAW;
    cases.push_back(std::move(c));
  }
  // Other dtypes (the per-element formula whatever SIMD says).
  cases.push_back(MakeCase("f16_9000", Normal(9000, 61, 1.0), SLICER_FLOAT16, 0.01f));
  cases.push_back(MakeCase("f64_9000", Normal(9000, 62, 1.0), SLICER_FLOAT64, 0.001f));
  return cases;
}

TEST(EveryWidthDecodesToThePlainValuesOnBothPaths) {
  for (const Case& c : Cases()) {
    std::vector<uint8_t> plain, got;
    SetSimd(true);
    CHECK_EQ(DecodeInto(Encode(c, 0), c, &plain), SLICER_OK);
    for (uint8_t k = 1; k <= SLICER_DENSE_MAX_LOW_BITS; ++k) {
      const std::vector<uint8_t> stream = Encode(c, k);
      for (bool simd : {true, false}) {
        SetSimd(simd);
        CHECK_EQ(DecodeInto(stream, c, &got), SLICER_OK);
        const bool same = got == plain;
        CHECK(same);
        if (!same)
          std::fprintf(stderr, "  case %s, k %u, simd %d\n", c.name.c_str(), unsigned{k}, simd);
      }
    }
  }
  SetSimd(true);
}

TEST(DamagedStreamsSameVerdictOnBothPaths) {
  // Single-chunk streams (the scalar decoder, its padded copy of the bit area): one byte of the
  // payload changed and the CRC resealed, so that the decoder reads the damage.
  std::mt19937_64 rng(7);
  size_t checked = 0, rejected = 0;
  for (uint8_t k : {uint8_t{3}, uint8_t{5}, uint8_t{14}}) {
    const Case c = MakeCase("damage", WithHuge(3000, 70 + k, 211), SLICER_FLOAT32, 0.01f);
    const std::vector<uint8_t> stream = Encode(c, k);
    const size_t from = stream.size() / 3;  // past the header and tables: the chunk's bytes
    for (int t = 0; t < 200; ++t) {
      std::vector<uint8_t> bad = stream;
      const size_t at = from + static_cast<size_t>(rng() % (stream.size() - 4 - from));
      bad[at] ^= static_cast<uint8_t>(1 + rng() % 255);
      const uint32_t crc = slicer::internal::Crc32(0, bad.data(), bad.size() - 4);
      std::memcpy(&bad[bad.size() - 4], &crc, 4);
      std::vector<uint8_t> fast, scalar;
      SetSimd(true);
      const int st_fast = DecodeInto(bad, c, &fast);
      SetSimd(false);
      const int st_scalar = DecodeInto(bad, c, &scalar);
      CHECK_EQ(st_fast, st_scalar);
      if (st_fast == SLICER_OK) CHECK(fast == scalar);
      rejected += st_fast != SLICER_OK;
      ++checked;
    }
  }
  SetSimd(true);
  // The damage does reach the decoder's checks (rANS bytes, h's extra bits, the area's length);
  // a changed plane byte only changes values.
  CHECK(rejected >= checked / 10);
  CHECK(rejected < checked);
  std::fprintf(stderr, "  %zu damaged streams, %zu rejected\n", checked, rejected);
}

}  // namespace

int main(int argc, char** argv) { return slicer_test::RunAll(argc, argv); }
