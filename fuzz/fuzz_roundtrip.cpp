// libFuzzer target: bytes -> (parameters, array) -> encode -> decode. Properties checked:
// encoding succeeds within slicer_encode_bound, is deterministic across thread counts, keeps
// exactly k = min(floor(n (1 - s)), nnz) elements per group, and every kept element decodes
// within half a step of its block (plus float32 rounding).
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "slicer/slicer.h"

namespace {

class ByteSource {
 public:
  ByteSource(const uint8_t* data, size_t size) : data_(data), size_(size) {}
  uint32_t Take(unsigned bytes) {
    uint32_t value = 0;
    for (unsigned i = 0; i < bytes; ++i) {
      value |= static_cast<uint32_t>(pos_ < size_ ? data_[pos_] : 0) << (8 * i);
      ++pos_;
    }
    return value;
  }
  size_t remaining() const { return pos_ < size_ ? size_ - pos_ : 0; }
  const uint8_t* rest() const { return data_ + std::min(pos_, size_); }

 private:
  const uint8_t* data_;
  size_t size_;
  size_t pos_ = 0;
};

void CheckAt(bool condition, int line) {
  if (!condition) {
    std::fprintf(stderr, "fuzz_roundtrip: property at line %d violated\n", line);
    std::abort();
  }
}
#define Check(condition) CheckAt((condition), __LINE__)

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  ByteSource source(data, size);
  slicer_params params;
  slicer_params_init(&params);
  // Parameters drawn from the first bytes, always inside their valid ranges.
  params.sparsity_ppb = source.Take(4) % 1000000000u;
  params.asym_ppb = (source.Take(1) & 1) ? source.Take(4) % 1000000000u : 0;
  params.delta_micro = source.Take(2) * 7u;
  params.seed = source.Take(4);
  params.bits = static_cast<uint8_t>(1 + source.Take(1) % 16);
  params.blocks_pos = static_cast<uint8_t>(1 + source.Take(1) % 64);
  params.blocks_neg = static_cast<uint8_t>(1 + source.Take(1) % 64);
  if (source.Take(1) % 4 == 0) {
    params.level_count = std::max(params.blocks_pos, params.blocks_neg);
    for (unsigned m = 0; m < params.level_count; ++m) {
      params.levels[m] = static_cast<uint8_t>(1 + source.Take(1) % 16);
    }
  }
  params.chunk_log2 = static_cast<uint8_t>(6 + source.Take(1) % 5);
  params.group_rows = static_cast<uint8_t>(source.Take(1) & 1);
  const int dtype = 1 + static_cast<int>(source.Take(1) % 3);
  const int64_t row = 1 + source.Take(1) % 64;
  // The array: the remaining bytes as values of the dtype (NaN/inf replaced by 0).
  const size_t item = dtype == SLICER_FLOAT32 ? 4 : 2;
  size_t count = source.remaining() / item;
  count -= count % static_cast<size_t>(row);
  std::vector<uint8_t> bytes(source.rest(), source.rest() + count * item);
  std::vector<float> values(count);
  for (size_t j = 0; j < count; ++j) {
    if (item == 4) {
      uint32_t bits;
      std::memcpy(&bits, &bytes[4 * j], 4);
      if ((bits & 0x7F800000u) == 0x7F800000u) bits = 0;
      std::memcpy(&bytes[4 * j], &bits, 4);
      std::memcpy(&values[j], &bits, 4);
    } else {
      uint16_t bits;
      std::memcpy(&bits, &bytes[2 * j], 2);
      const bool half = dtype == SLICER_FLOAT16;
      const uint16_t exponent = half ? 0x7C00 : 0x7F80;
      if ((bits & exponent) == exponent) bits = 0;
      std::memcpy(&bytes[2 * j], &bits, 2);
      if (half) {
        const uint32_t sign = (bits & 0x8000u) << 16;
        const uint32_t e = (bits >> 10) & 0x1F;
        const uint32_t m = bits & 0x3FF;
        float v = e == 0 ? static_cast<float>(m) * 5.9604644775390625e-08f
                         : std::ldexp(static_cast<float>(m | 0x400), static_cast<int>(e) - 25);
        values[j] = sign ? -v : v;
      } else {
        const uint32_t widened = static_cast<uint32_t>(bits) << 16;
        std::memcpy(&values[j], &widened, 4);
      }
    }
  }
  const int64_t shape[2] = {static_cast<int64_t>(count) / row, row};

  size_t bound = 0;
  Check(slicer_encode_bound(shape, 2, dtype, &params, &bound) == SLICER_OK);
  std::vector<uint8_t> stream(bound + 1);
  size_t written = 0;
  params.threads = 1;
  Check(slicer_encode(bytes.data(), dtype, shape, 2, &params, stream.data(), stream.size(),
                      &written) == SLICER_OK);
  Check(written <= bound);
  std::vector<uint8_t> again(bound + 1);
  size_t written_again = 0;
  params.threads = 3;
  Check(slicer_encode(bytes.data(), dtype, shape, 2, &params, again.data(), again.size(),
                      &written_again) == SLICER_OK);
  Check(written == written_again && std::memcmp(stream.data(), again.data(), written) == 0);

  slicer_header header;
  slicer_account account;
  size_t num_blocks = 0;
  Check(slicer_inspect(stream.data(), written, count, &header, &account, nullptr, 0, &num_blocks) ==
        SLICER_OK);
  std::vector<slicer_block_info> blocks(num_blocks);
  Check(slicer_inspect(stream.data(), written, count, &header, &account, blocks.data(),
                       blocks.size(), &num_blocks) == SLICER_OK);
  std::vector<uint8_t> decoded_bytes(count * item);
  Check(slicer_decode(stream.data(), written, count, decoded_bytes.data(), decoded_bytes.size(),
                      2) == SLICER_OK);

  const uint64_t groups = header.group_count;
  const uint64_t n = groups == 0 ? 0 : count / groups;
  size_t block_cursor = 0;
  for (uint64_t g = 0; g < groups; ++g) {
    uint64_t nnz = 0;
    uint64_t kept = 0;
    size_t first_block = block_cursor;
    while (block_cursor < blocks.size() && blocks[block_cursor].group == g) ++block_cursor;
    for (uint64_t j = g * n; j < (g + 1) * n; ++j) {
      nnz += values[j] != 0.0f;
      bool nonzero;
      double decoded;
      if (item == 4) {
        float v;
        std::memcpy(&v, &decoded_bytes[4 * j], 4);
        decoded = v;
        nonzero = v != 0.0f;
      } else {
        uint16_t bits;
        std::memcpy(&bits, &decoded_bytes[2 * j], 2);
        nonzero = (bits & 0x7FFF) != 0;
        decoded = 0.0;
        if (nonzero) {
          // Compare in the stream dtype's precision via a loose relative allowance below.
          if (dtype == SLICER_BFLOAT16) {
            const uint32_t widened = static_cast<uint32_t>(bits) << 16;
            float v;
            std::memcpy(&v, &widened, 4);
            decoded = v;
          } else {
            const uint32_t e = (bits >> 10) & 0x1F;
            const uint32_t m = bits & 0x3FF;
            const float v =
                e == 0 ? static_cast<float>(m) * 5.9604644775390625e-08f
                       : std::ldexp(static_cast<float>(m | 0x400), static_cast<int>(e) - 25);
            decoded = (bits & 0x8000) ? -v : v;
          }
        }
      }
      if (!nonzero) continue;
      ++kept;
      const double x = values[j];
      Check((decoded > 0) == (x > 0));
      double allowed = INFINITY;
      for (size_t b = first_block; b < block_cursor; ++b) {
        const slicer_block_info& info = blocks[b];
        if ((info.sign > 0) != (x > 0)) continue;
        if (!(std::fabs(x) >= info.lo && std::fabs(x) <= info.hi)) continue;
        const double half_step = info.width == 0 ? std::fabs(info.hi - std::fabs(x))
                                                 : (static_cast<double>(info.hi) - info.lo) /
                                                       ((1u << info.width) - 1) / 2;
        allowed = std::min(allowed, half_step);
      }
      const double epsilon = item == 4 ? 0x1p-23 : dtype == SLICER_FLOAT16 ? 0x1p-10 : 0x1p-7;
      // Subnormal results round on an absolute grid: 2^-149 (float32), 2^-24 (float16),
      // 2^-133 (bfloat16).
      const double floor_ulp = item == 4 ? 0x1p-149 : dtype == SLICER_FLOAT16 ? 0x1p-24 : 0x1p-133;
      const double tolerance = allowed * (1 + 1e-9) + std::fabs(x) * epsilon + floor_ulp;
      if (!(std::fabs(decoded - x) <= tolerance)) {
        std::fprintf(stderr, "dtype %d element %llu: x=%.9g decoded=%.9g allowed=%.9g\n", dtype,
                     static_cast<unsigned long long>(j), x, decoded, allowed);
        for (size_t b = first_block; b < block_cursor; ++b) {
          std::fprintf(stderr, "  block sign %d index %u count %llu width %u [%.9g, %.9g]\n",
                       blocks[b].sign, blocks[b].index,
                       static_cast<unsigned long long>(blocks[b].count), blocks[b].width,
                       blocks[b].lo, blocks[b].hi);
        }
      }
      Check(std::fabs(decoded - x) <= tolerance);
    }
    const uint64_t limit = static_cast<uint64_t>(
        (static_cast<unsigned __int128>(n) * (1000000000u - params.sparsity_ppb)) / 1000000000u);
    Check(kept == std::min(limit, nnz));
  }
  return 0;
}
