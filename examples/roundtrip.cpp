// Encodes a synthetic LLM-like activation (8 tokens x 576 channels, a few massive outlier
// channels), prints the byte account and the reconstruction error, then decodes it.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <random>
#include <vector>

#include "slicer/slicer.hpp"

int main() {
  const int64_t tokens = 8;
  const int64_t channels = 576;
  std::mt19937 rng(7);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> x(static_cast<size_t>(tokens * channels));
  for (size_t j = 0; j < x.size(); ++j) {
    const size_t channel = j % static_cast<size_t>(channels);
    const float scale = channel == 11 || channel == 300 ? 40.0f : 1.0f;  // outlier channels
    x[j] = std::max(0.0f, normal(rng) + 0.2f) * scale - 0.1f * normal(rng);
  }
  const std::vector<int64_t> shape = {tokens, channels};
  try {
    const slicer::Params params = slicer::Params().sparsity(0.8).bits(8).blocks(3, 3).rows(true);
    const std::vector<uint8_t> stream = slicer::encode(x.data(), shape, params);
    const slicer::Inspection info = slicer::inspect(stream);
    const slicer_account& a = info.account;
    std::printf("slicer %s, format %u: %zu floats (%zu bytes) -> %zu bytes (%.3f bits/element)\n",
                slicer_version(), slicer_format_version(), x.size(), 4 * x.size(), stream.size(),
                8.0 * static_cast<double>(stream.size()) / static_cast<double>(x.size()));
    std::printf("  header %llu B, groups %llu B, block ranges %llu B, chunk table %llu B\n",
                static_cast<unsigned long long>(a.header_bytes),
                static_cast<unsigned long long>(a.group_bytes),
                static_cast<unsigned long long>(a.block_meta_bytes),
                static_cast<unsigned long long>(a.chunk_table_bytes));
    std::printf(
        "  positions %llu bits, labels %llu bits, values %llu bits, padding %llu bits, "
        "checksum %llu B\n",
        static_cast<unsigned long long>(a.position_bits),
        static_cast<unsigned long long>(a.label_bits),
        static_cast<unsigned long long>(a.value_bits),
        static_cast<unsigned long long>(a.padding_bits),
        static_cast<unsigned long long>(a.checksum_bytes));
    std::printf("  kept %llu of %zu elements in %zu blocks; bound %zu bytes\n",
                static_cast<unsigned long long>(a.kept), x.size(), info.blocks.size(),
                slicer::encode_bound(shape, slicer::DType::kFloat32, params));

    const std::vector<float> y = slicer::decode(stream).to_float32();
    double error2 = 0.0;
    double norm2 = 0.0;
    double kept_max_error = 0.0;
    for (size_t j = 0; j < x.size(); ++j) {
      error2 += (static_cast<double>(x[j]) - y[j]) * (static_cast<double>(x[j]) - y[j]);
      norm2 += static_cast<double>(x[j]) * x[j];
      if (y[j] != 0.0f) kept_max_error = std::max(kept_max_error, std::fabs(double{x[j]} - y[j]));
    }
    std::printf("  relative L2 error %.4f, largest error on a kept value %.5f\n",
                std::sqrt(error2 / norm2), kept_max_error);
  } catch (const slicer::Error& error) {
    std::fprintf(stderr, "slicer error %d: %s\n", error.status(), error.what());
    return 1;
  }
  return 0;
}
