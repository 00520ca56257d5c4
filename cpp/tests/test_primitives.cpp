// Varints, LSB-first bit I/O, CRC-32, the splitmix64 draw, float conversions and the dense
// encoder's default chunk size.
#include <cstring>
#include <random>
#include <vector>

#include <slicer/slicer.h>

#include "bit_io.hpp"
#include "crc32.hpp"
#include "draw.hpp"
#include "float_bits.hpp"
#include "format/dense_spec.hpp"
#include "harness.hpp"
#include "varint.hpp"

namespace {

using namespace slicer::internal;

TEST(VarintRoundTripAndLength) {
  const uint64_t values[] = {
      0, 1, 127, 128, 300, 16383, 16384, (uint64_t{1} << 35) + 17, uint64_t{1} << 63, ~uint64_t{0}};
  for (uint64_t v : values) {
    uint8_t buffer[10];
    const size_t length = PutVarint(v, buffer);
    CHECK_EQ(length, VarintLength(v));
    size_t pos = 0;
    uint64_t back = 0;
    CHECK(GetVarint(buffer, length, &pos, &back) == VarintResult::kOk);
    CHECK_EQ(back, v);
    CHECK_EQ(pos, length);
    pos = 0;
    if (length > 1) CHECK(GetVarint(buffer, length - 1, &pos, &back) == VarintResult::kTruncated);
  }
  CHECK_EQ(VarintLength(~uint64_t{0}), 10u);
  uint8_t encoded[10];
  PutVarint(300, encoded);
  CHECK_EQ(encoded[0], 0xACu);
  CHECK_EQ(encoded[1], 0x02u);
}

TEST(VarintRejectsNonMinimalAndOverflow) {
  size_t pos = 0;
  uint64_t value = 0;
  const uint8_t non_minimal[] = {0x85, 0x00};
  CHECK(GetVarint(non_minimal, 2, &pos, &value) == VarintResult::kInvalid);
  pos = 0;
  const uint8_t too_big[] = {0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x02};
  CHECK(GetVarint(too_big, 10, &pos, &value) == VarintResult::kInvalid);
  pos = 0;
  const uint8_t eleven[] = {0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x81, 0x01};
  CHECK(GetVarint(eleven, 11, &pos, &value) == VarintResult::kInvalid);
  pos = 0;
  const uint8_t zero[] = {0x00};
  CHECK(GetVarint(zero, 1, &pos, &value) == VarintResult::kOk);
  CHECK_EQ(value, 0u);
}

TEST(BitWriterIsLsbFirst) {
  uint8_t out[16] = {};
  BitWriter writer(out);
  writer.Put(1, 1);  // bit 0 of byte 0
  writer.Put(0, 7);
  writer.Flush();
  writer.Put(0x1FF, 9);  // byte 1 = 0xFF, bit 0 of byte 2
  writer.Put(0b101, 3);
  const size_t bytes = writer.Finish();
  CHECK_EQ(bytes, 3u);
  CHECK_EQ(out[0], 0x01u);
  CHECK_EQ(out[1], 0xFFu);
  CHECK_EQ(out[2], 0x0Bu);  // 1 then 1,0,1 -> 0b1011
  CHECK_EQ(writer.bits_written(), 20u);
}

TEST(BitRoundTripRandomFieldsAndLongUnary) {
  std::mt19937_64 rng(77);
  std::vector<std::pair<uint32_t, unsigned>> fields;
  std::vector<uint64_t> unaries;
  std::vector<uint8_t> out(5000 * 40 + 64);
  BitWriter writer(out.data());
  for (int i = 0; i < 5000; ++i) {
    const unsigned nbits = static_cast<unsigned>(rng() % 33);
    const uint32_t value = nbits == 0 ? 0 : static_cast<uint32_t>(rng()) >> (32 - nbits);
    fields.emplace_back(value, nbits);
    writer.Put(value, nbits);
    writer.Flush();
    const uint64_t unary = i % 97 == 0 ? rng() % 300 : rng() % 5;
    unaries.push_back(unary);
    writer.PutUnary(unary);
  }
  out.resize(writer.Finish());
  BitReader reader(out.data(), out.size());
  bool ok = true;
  for (size_t i = 0; i < fields.size() && ok; ++i) {
    uint32_t value = 0;
    ok = reader.Read(fields[i].second, &value) && value == fields[i].first;
    uint64_t unary = 0;
    ok = ok && reader.ReadUnary(1000, &unary) && unary == unaries[i];
  }
  CHECK(ok);
  CHECK(reader.total_bits() - reader.position() < 8);
  uint32_t value;
  CHECK(!reader.Read(9, &value));  // past the end
  uint64_t unary;
  const uint8_t ones[2] = {0xFF, 0xFF};
  BitReader run(ones, 2);
  CHECK(!run.ReadUnary(1000, &unary));  // no terminating zero
  const uint8_t long_run[3] = {0xFF, 0xFF, 0x0F};
  BitReader limited(long_run, 3);
  CHECK(!limited.ReadUnary(10, &unary));  // run of 20 exceeds the limit
  BitReader fine(long_run, 3);
  CHECK(fine.ReadUnary(20, &unary));
  CHECK_EQ(unary, 20u);
}

uint32_t BitwiseCrc(const uint8_t* data, size_t size) {
  uint32_t crc = 0xFFFFFFFFu;
  for (size_t i = 0; i < size; ++i) {
    crc ^= data[i];
    for (int b = 0; b < 8; ++b) crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1u)));
  }
  return ~crc;
}

TEST(Crc32MatchesZlib) {
  const char* check = "123456789";
  CHECK_EQ(Crc32(0, reinterpret_cast<const uint8_t*>(check), 9), 0xCBF43926u);
  std::vector<uint8_t> data(768);
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<uint8_t>(i);
  CHECK_EQ(Crc32(0, data.data(), data.size()), 0xB0C0DF2Au);  // zlib.crc32(bytes(range(256))*3)
  std::mt19937_64 rng(5);
  // Sizes around the 64-byte folding path's edges (x86-64 with carry-less multiply), at an
  // odd address too.
  for (size_t size :
       {0, 1, 7, 8, 9, 15, 16, 17, 63, 64, 65, 79, 80, 127, 128, 129, 1000, 4097, 65599}) {
    for (size_t offset : {0, 1}) {
      std::vector<uint8_t> storage(size + offset);
      for (uint8_t& b : storage) b = static_cast<uint8_t>(rng());
      const uint8_t* buf = storage.data() + offset;
      const uint32_t whole = Crc32(0, buf, size);
      CHECK_EQ(whole, BitwiseCrc(buf, size));
      const size_t third = size / 3;
      CHECK_EQ(Crc32(Crc32(0, buf, third), buf + third, size - third), whole);
      CHECK_EQ(
          Crc32Combine(Crc32(0, buf, third), Crc32(0, buf + third, size - third), size - third),
          whole);
    }
  }
}

TEST(DrawIsSplitmix64) {
  // Values from the NumPy reference (tests/reference.py draw()).
  CHECK(Draw(0, 0) == 0xE220A8397B1DCDAFull);
  CHECK(Draw(0, 1) == 0x6E789E6AA1B965F4ull);
  CHECK(Draw(0, 2) == 0x06C45D188009454Full);
  CHECK(Draw(12345, 0) == 0x22118258A9D111A0ull);
  CHECK(Draw(12345, 999999) == 0x39A8D82AB17BC9D7ull);
}

TEST(HalfAndBFloat16ConversionsAreExact) {
  int mismatches = 0;
  for (uint32_t h = 0; h < 65536; ++h) {
    const uint16_t half = static_cast<uint16_t>(h);
    const bool half_finite = (h & 0x7C00u) != 0x7C00u;
    if (half_finite && FloatToHalf(HalfToFloat(half)) != half) ++mismatches;
    const bool bf_finite = (h & 0x7F80u) != 0x7F80u;
    if (bf_finite && FloatToBFloat16(BFloat16ToFloat(half)) != half) ++mismatches;
  }
  CHECK_EQ(mismatches, 0);
  CHECK(HalfToFloat(0x3C00) == 1.0f);
  CHECK(HalfToFloat(0x0001) == 0x1p-24f);
  CHECK(HalfToFloat(0xFBFF) == -65504.0f);
  // Round to nearest, ties to even.
  CHECK_EQ(FloatToHalf(1.0f + 0x1p-11f), 0x3C00u);
  CHECK_EQ(FloatToHalf(1.0f + 3 * 0x1p-11f), 0x3C02u);
  CHECK_EQ(FloatToHalf(65520.0f), 0x7C00u);  // rounds up to infinity
  CHECK_EQ(FloatToHalf(0x1p-25f), 0x0000u);  // tie between 0 and the smallest subnormal
  CHECK_EQ(FloatToHalf(0x1.8p-25f), 0x0001u);
  CHECK_EQ(FloatToBFloat16(1.0f + 0x1p-8f), 0x3F80u);
  CHECK_EQ(FloatToBFloat16(1.0f + 3 * 0x1p-8f), 0x3F82u);
}

// docs/format.md §15.1: the worked values, the ends of the range, and the C ABI equal to the
// spec function (tests/test_dense_chunk_auto.py compares every n with the NumPy reference).
TEST(AutoChunkLog2PicksTheDecodersFastestCut) {
  using slicer::format::dense::AutoChunkLog2;
  using slicer::format::dense::ChunkCutCost;
  const uint64_t n[] = {0, 1, 8191, 8192, 9000, 16384, 20000, 21952, 31360, 36000, 50000,
                        70000, 131072, 250000, 262143, 262144, 1u << 20};
  const unsigned want[] = {14, 14, 14, 14, 14, 13, 15, 15, 14, 13, 13, 14, 15, 16, 16, 14, 14};
  for (size_t i = 0; i < sizeof(n) / sizeof(n[0]); ++i) {
    CHECK_EQ(AutoChunkLog2(n[i]), want[i]);
    CHECK_EQ(slicer_dense_auto_chunk_log2(n[i]), want[i]);
  }
  // 21 952 = 16 384 + 5 568: a single four-state chunk and a one-state tail at 14; one chunk at 15
  CHECK_EQ(ChunkCutCost(21952, 14), uint64_t{22 * 16384 + 46 * 5568});
  CHECK_EQ(ChunkCutCost(21952, 15), uint64_t{22 * 21952});
  CHECK_EQ(ChunkCutCost(50000, 13), uint64_t{10 * 32768 + 18 * 16384 + 46 * 848});
  for (uint64_t m = 8192; m < (1u << 18); m += 997) {
    const unsigned c = AutoChunkLog2(m);
    CHECK(c >= 13 && c <= 17);
    // never more than 5 % over the cost of the old default 2^14 (the rule's tie margin)
    CHECK(19 * ChunkCutCost(m, c) <= 20 * ChunkCutCost(m, 14));
  }
}

}  // namespace

TEST_MAIN()
