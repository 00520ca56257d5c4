// Writes seed corpora for the fuzz targets: real encoded streams without their checksum
// (fuzz_decode) and inputs in the byte layout fuzz_roundtrip parses. Usage: fuzz_seed_corpus
// DECODE_DIR ROUNDTRIP_DIR
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "slicer/slicer.h"

namespace {

bool WriteFile(const std::string& path, const std::vector<uint8_t>& bytes) {
  FILE* file = std::fopen(path.c_str(), "wb");
  if (file == nullptr) return false;
  const bool ok = std::fwrite(bytes.data(), 1, bytes.size(), file) == bytes.size();
  return std::fclose(file) == 0 && ok;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: %s DECODE_DIR ROUNDTRIP_DIR\n", argv[0]);
    return 2;
  }
  int written = 0;
  for (int variant = 0; variant < 8; ++variant) {
    // The last variant is large enough for the radix selection path (>= 8192 per group).
    const int64_t rows = variant == 7 ? 1 : 1 + variant;
    const int64_t cols = variant == 7 ? 9973 : 37 + 29 * variant;
    std::vector<float> values(static_cast<size_t>(rows * cols));
    uint64_t state = 0x9E3779B97F4A7C15ull * (variant + 1);
    for (size_t j = 0; j < values.size(); ++j) {
      state = state * 6364136223846793005ull + 1442695040888963407ull;
      const double u = static_cast<double>(state >> 11) * 0x1p-53;
      values[j] = variant % 3 == 0 && u < 0.4 ? 0.0f : static_cast<float>(std::tan(3.0 * u - 1.5));
    }
    slicer_params params;
    slicer_params_init(&params);
    params.sparsity_ppb = 100000000u * static_cast<uint32_t>(variant + 1);
    params.asym_ppb = variant % 2 ? 200000000u : 0u;
    params.blocks_pos = static_cast<uint8_t>(1 + variant);
    params.chunk_log2 = 6;
    params.group_rows = static_cast<uint8_t>(variant % 2);
    const int64_t shape[2] = {rows, cols};
    size_t bound = 0;
    if (slicer_encode_bound(shape, 2, SLICER_FLOAT32, &params, &bound) != SLICER_OK) return 1;
    std::vector<uint8_t> stream(bound);
    size_t size = 0;
    if (slicer_encode(values.data(), SLICER_FLOAT32, shape, 2, &params, stream.data(),
                      stream.size(), &size) != SLICER_OK) {
      return 1;
    }
    // fuzz_decode appends the checksum itself: seed it with stream bodies.
    stream.resize(size - 4);
    written += WriteFile(std::string(argv[1]) + "/stream" + std::to_string(variant), stream);
    // fuzz_roundtrip layout: s(4) asym-flag(1) [asym(4)] delta(2) seed(4) bits(1) M+(1) M-(1)
    // multilevel(1) [levels] chunk(1) rows(1) dtype(1) row(1), then the values.
    std::vector<uint8_t> input = {0, 0, 0, 0, 0, 0x10, 0x27, 7, 0, 0, 0, 7, 2, 2, 1, 0, 1, 0, 31};
    if (variant == 7) input[16] = 0;  // one group for the whole array
    const uint32_t s = params.sparsity_ppb;
    for (int i = 0; i < 4; ++i) input[i] = static_cast<uint8_t>(s >> (8 * i));
    const uint8_t* raw = reinterpret_cast<const uint8_t*>(values.data());
    input.insert(input.end(), raw, raw + 4 * values.size());
    written += WriteFile(std::string(argv[2]) + "/input" + std::to_string(variant), input);
  }
  std::printf("wrote %d seed files\n", written);
  return written == 16 ? 0 : 1;
}
