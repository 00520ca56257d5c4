// Mode 1's low-bit plane on the encoder side (docs/format.md §13.6): the encoder writes the plane
// in the same pass as the symbols, and for low_bits = AUTO writes the plane of a guessed width
// that the pass checks with exact counts (cpp/src/dense/dense_encode.cpp). Checked here: the auto
// stream is the stream of the width that §13.6's rule gives (recomputed below from the codes)
// whatever the guess (every guess forced through SLICER_DENSE_LOW_BITS_GUESS, right and wrong,
// inputs whose counts sit exactly at the rule's threshold among them); every width decodes to
// the same values as the stream without the plane; the SIMD and scalar paths write the same
// bytes. The bytes against the NumPy reference: tests/test_dense_low_bits.py.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

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

std::vector<uint8_t> Decode(const std::vector<uint8_t>& stream, const Case& c) {
  std::vector<uint8_t> out(c.bytes.size());
  CHECK_EQ(slicer_decode(stream.data(), stream.size(), c.values.size(), out.data(), out.size(), 1),
           SLICER_OK);
  return out;
}

uint32_t LowBitsOf(const std::vector<uint8_t>& stream) {
  slicer_dense_info info;
  CHECK_EQ(slicer_dense_inspect(stream.data(), stream.size(), uint64_t{1} << 40, &info),
           SLICER_OK);
  return info.low_bits;
}

// §13.6's rule from the codes themselves: m = floor(|x| / Δ_g + ρ) of every element of a dense
// group (§12.2; the cases' group exponents are multiples of 8, so Δ_g = Δ0 · 2^(e_g / 8)), c_k =
// #{m < 2^k}; the largest k in 3 … 15 with 16·c_k ≤ 9·n, else 0.
unsigned RuleOf(const Case& c) {
  const double rho = c.rho_256 / 256.0;
  const uint64_t width = static_cast<uint64_t>(c.shape.back());
  uint64_t below[16] = {}, n = 0;
  for (size_t i = 0; i < c.values.size(); ++i) {
    double delta = static_cast<double>(c.step);
    if (!c.groups.empty()) {
      const uint8_t b = c.groups[i / width];
      if (b == SLICER_DENSE_GROUP_ZERO || b == SLICER_DENSE_GROUP_RAW) continue;
      delta = std::ldexp(delta, static_cast<int8_t>(b) / 8);
    }
    ++n;
    const double m = std::floor(std::fabs(c.values[i]) / delta + rho);
    for (unsigned k = 3; k <= 15; ++k) below[k] += m < std::ldexp(1.0, static_cast<int>(k));
  }
  unsigned best = 0;
  for (unsigned k = 3; k <= 15; ++k)
    if (n > 0 && 16 * below[k] <= 9 * n) best = k;
  return best;
}

// Magnitudes in code units: `small` of them below 2^k (m = 0 … 2^k − 1), the others at 2^k …
// 2^(k+3), random signs, shuffled: c_k = small exactly at step 1, ρ = 1/2.
std::vector<double> AtThreshold(size_t n, size_t small, unsigned k, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<double> out(n);
  const double top = std::ldexp(1.0, static_cast<int>(k));
  for (size_t j = 0; j < n; ++j) {
    const double lo = j < small ? 0.0 : top, hi = j < small ? top - 1 : 8 * top - 1;
    const double m = lo + std::floor(std::uniform_real_distribution<double>(0, 1)(rng) *
                                     (hi - lo + 1));
    out[j] = (rng() & 1) ? -m : m;
  }
  std::shuffle(out.begin(), out.end(), rng);
  return out;
}


// Heavy tails (a Student-t-like ratio), as LLM activations.
std::vector<double> Heavy(size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> normal(0.0, 1.0);
  std::vector<double> out(n);
  for (double& v : out) v = normal(rng) / std::max(0.05, std::fabs(normal(rng)));
  return out;
}

std::vector<Case> Cases() {
  std::vector<Case> cases;
  for (size_t n : {size_t{1}, size_t{7}, size_t{1000}, size_t{4096}, size_t{70001}}) {
    for (float step : {0.5f, 0.02f, 0.004f, 0.0005f})
      cases.push_back(MakeCase("normal_" + std::to_string(n) + "_" + std::to_string(step),
                               Normal(n, 3 + n, 1.0), SLICER_FLOAT32, step));
  }
  cases.push_back(MakeCase("heavy_262147", Heavy(262147, 5), SLICER_FLOAT32, 0.01f));
  cases.push_back(MakeCase("heavy_f16", Heavy(50000, 6), SLICER_FLOAT16, 0.01f));
  cases.push_back(MakeCase("heavy_bf16", Heavy(50000, 7), SLICER_BFLOAT16, 0.003f));
  cases.push_back(MakeCase("heavy_f64", Heavy(50000, 8), SLICER_FLOAT64, 0.002f));
  // c_k/n at the threshold 9/16 exactly (the rule takes k), one code over it (k is refused),
  // and a little either side: the sample's guess cannot tell these apart.
  const size_t n = 65536;
  for (unsigned k : {3u, 7u, 12u}) {
    for (long d : {0L, 1L, -300L, 300L}) {
      const size_t small = static_cast<size_t>(static_cast<long>(9 * n / 16) + d);
      Case c = MakeCase("threshold_k" + std::to_string(k) + "_" + std::to_string(d),
                        AtThreshold(n, small, k, 10 * k + static_cast<uint64_t>(d + 1000)),
                        SLICER_FLOAT32, 1.0f);
      c.chunk_log2 = 12;
      cases.push_back(std::move(c));
    }
  }
  // Rows with a group table: exponents ±8 (steps ×2, ×1/2), a zero row and a raw row.
  {
    const size_t rows = 40, cols = 576;
    Case c = MakeCase("rows_groups", Heavy(rows * cols, 9), SLICER_FLOAT32, 0.02f,
                      {static_cast<int64_t>(rows), static_cast<int64_t>(cols)});
    c.groups.resize(rows);
    for (size_t r = 0; r < rows; ++r)
      c.groups[r] = static_cast<uint8_t>(static_cast<int8_t>(r % 3 == 0 ? 8 : r % 3 == 1 ? -8 : 0));
    c.groups[5] = SLICER_DENSE_GROUP_ZERO;
    c.groups[17] = SLICER_DENSE_GROUP_RAW;
    c.chunk_log2 = 13;
    cases.push_back(std::move(c));
  }
  // Codes above 2^24 and above 2^31 (the general and the exact scalar paths).
  cases.push_back(MakeCase("codes_2p24", Normal(3000, 21, 1.0), SLICER_FLOAT32, 3e-8f));
  cases.push_back(MakeCase("codes_2p40", Normal(3000, 22, 1.0), SLICER_FLOAT64, 1e-12f));
  return cases;
}

void SetEnv(const char* name, const char* value) {
  if (value == nullptr) {
    unsetenv(name);
  } else {
    setenv(name, value, 1);
  }
}

TEST(AutoIsTheRulesWidthWhateverTheGuess) {
  for (const Case& c : Cases()) {
    const unsigned rule = RuleOf(c);
    SetEnv("SLICER_DENSE_LOW_BITS_GUESS", nullptr);
    const std::vector<uint8_t> want = Encode(c, static_cast<uint8_t>(rule));
    CHECK_EQ(LowBitsOf(want), rule);
    std::vector<const char*> guesses = {nullptr, "0"};
    static const char* const kWidths[] = {"3", "4",  "5",  "6",  "7",  "8",  "9",
                                          "10", "11", "12", "13", "14", "15"};
    for (const char* g : kWidths) guesses.push_back(g);
    for (const char* simd : {static_cast<const char*>(nullptr), "0"}) {
      SetEnv("SLICER_DENSE_SIMD", simd);
      for (const char* g : guesses) {
        SetEnv("SLICER_DENSE_LOW_BITS_GUESS", g);
        const bool same = Encode(c, SLICER_DENSE_LOW_BITS_AUTO) == want;
        CHECK(same);
        if (!same)
          std::fprintf(stderr, "  case %s, rule %u, guess %s, simd %s\n", c.name.c_str(), rule,
                       g ? g : "-", simd ? simd : "-");
      }
    }
  }
  SetEnv("SLICER_DENSE_LOW_BITS_GUESS", nullptr);
  SetEnv("SLICER_DENSE_SIMD", nullptr);
}

TEST(ThresholdCasesSitWhereTheyShould) {
  // The inputs above do reach both sides of the rule: exactly 9/16 takes k, one more refuses it.
  for (const Case& c : Cases()) {
    if (c.name.rfind("threshold_", 0) != 0) continue;
    const unsigned k = static_cast<unsigned>(std::stoi(c.name.substr(11)));
    const long d = std::stol(c.name.substr(c.name.rfind('_') + 1));
    CHECK_EQ(RuleOf(c), d <= 0 ? k : (k == 3 ? 0u : k - 1));
  }
}

TEST(EveryWidthDecodesToThePlainValues) {
  for (const Case& c : Cases()) {
    if (c.name.rfind("threshold_", 0) == 0 && c.name.find("_k7_0") == std::string::npos) continue;
    const std::vector<uint8_t> plain = Decode(Encode(c, 0), c);
    for (uint8_t k = 1; k <= SLICER_DENSE_MAX_LOW_BITS; ++k) {
      SetEnv("SLICER_DENSE_SIMD", nullptr);
      const std::vector<uint8_t> fast = Encode(c, k);
      SetEnv("SLICER_DENSE_SIMD", "0");
      const std::vector<uint8_t> scalar = Encode(c, k);
      SetEnv("SLICER_DENSE_SIMD", nullptr);
      CHECK(fast == scalar);
      CHECK_EQ(LowBitsOf(fast), k);
      const bool same = Decode(fast, c) == plain;
      CHECK(same);
      if (!same) std::fprintf(stderr, "  case %s, k %u\n", c.name.c_str(), unsigned{k});
    }
  }
}

}  // namespace

int main(int argc, char** argv) { return slicer_test::RunAll(argc, argv); }
