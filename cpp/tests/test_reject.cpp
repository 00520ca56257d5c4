// A decoder must refuse every stream format 1 calls invalid, and never crash on any input.
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "crc32.hpp"
#include "format/stream_format.hpp"
#include "harness.hpp"
#include "test_support.hpp"

namespace {

using slicer_test::DefaultParams;
using slicer_test::Encode;
using slicer_test::MakeInput;

constexpr uint64_t kLimit = uint64_t{1} << 31;

void FixCrc(std::vector<uint8_t>* stream) {
  const uint32_t crc = slicer::internal::Crc32(0, stream->data(), stream->size() - 4);
  std::memcpy(stream->data() + stream->size() - 4, &crc, 4);
}

// Decode and inspect must agree on validity; returns the decode status.
int DecodeStatus(const std::vector<uint8_t>& stream, uint64_t limit = kLimit) {
  std::vector<uint8_t> out(1 << 16);
  const int decoded = slicer_decode(stream.data(), stream.size(), limit, out.data(), out.size(), 2);
  slicer_account account;
  size_t num_blocks = 0;
  const int inspected = slicer_inspect(stream.data(), stream.size(), limit, nullptr, &account,
                                       nullptr, 0, &num_blocks);
  if (decoded != SLICER_ERR_BUFFER_TOO_SMALL) CHECK_EQ(decoded, inspected);
  return decoded;
}

std::vector<uint8_t> SmallStream(uint64_t seed, uint8_t chunk_log2 = 7) {
  const slicer_test::Input input =
      MakeInput(slicer_test::Gaussian(300, seed), SLICER_FLOAT32, {5, 60});
  slicer_params params = DefaultParams();
  params.sparsity_ppb = 700000000u;
  params.chunk_log2 = chunk_log2;
  std::vector<uint8_t> stream;
  CHECK_EQ(Encode(input, params, &stream), SLICER_OK);
  return stream;
}

TEST(ValidStreamDecodes) { CHECK_EQ(DecodeStatus(SmallStream(1)), SLICER_OK); }

TEST(EveryTruncationIsRejected) {
  const std::vector<uint8_t> stream = SmallStream(2);
  for (size_t size = 0; size < stream.size(); ++size) {
    std::vector<uint8_t> prefix(stream.begin(), stream.begin() + size);
    prefix.reserve(1);
    const int status = DecodeStatus(prefix);
    CHECK(status == SLICER_ERR_TRUNCATED || status == SLICER_ERR_BAD_CHECKSUM ||
          status == SLICER_ERR_INVALID_ARGUMENT);
  }
}

TEST(EveryBitFlipIsRejectedByTheChecksum) {
  const std::vector<uint8_t> stream = SmallStream(3);
  for (size_t bit = 0; bit < 8 * stream.size(); ++bit) {
    std::vector<uint8_t> flipped = stream;
    flipped[bit / 8] ^= static_cast<uint8_t>(1u << (bit % 8));
    const int status = DecodeStatus(flipped);
    CHECK(status == SLICER_ERR_BAD_CHECKSUM || status == SLICER_ERR_BAD_MAGIC);
  }
}

// With the checksum repaired every field check is reached; nothing may crash, and flips in
// the magic, version and mode must be caught.
TEST(BitFlipsBehindAValidChecksumNeverCrash) {
  const std::vector<uint8_t> stream = SmallStream(4);
  size_t rejected = 0;
  for (size_t bit = 0; bit < 8 * (stream.size() - 4); ++bit) {
    std::vector<uint8_t> flipped = stream;
    flipped[bit / 8] ^= static_cast<uint8_t>(1u << (bit % 8));
    FixCrc(&flipped);
    const int status = DecodeStatus(flipped);
    rejected += status != SLICER_OK;
    // Magic, version and mode admit no other value (a dtype or flag flip can be valid).
    if (bit < 6 * 8) CHECK(status != SLICER_OK);
  }
  std::printf("  %zu of %zu single-bit flips rejected behind a valid checksum\n", rejected,
              8 * (stream.size() - 4));
  CHECK(rejected > 0);
}

TEST(HeaderFieldsAreValidated) {
  const std::vector<uint8_t> good = SmallStream(5);
  auto with = [&](size_t offset, uint8_t value) {
    std::vector<uint8_t> s = good;
    s[offset] = value;
    FixCrc(&s);
    return DecodeStatus(s);
  };
  CHECK_EQ(with(0, 'X'), SLICER_ERR_BAD_MAGIC);
  CHECK_EQ(with(4, 3), SLICER_ERR_BAD_VERSION);  // 2 is format 2 (dense)
  CHECK_EQ(with(5, 1), SLICER_ERR_CORRUPT);  // mode 1 is reserved
  CHECK_EQ(with(6, 0), SLICER_ERR_CORRUPT);  // dtype
  CHECK_EQ(with(6, 4), SLICER_ERR_CORRUPT);
  CHECK_EQ(with(7, 2), SLICER_ERR_CORRUPT);   // reserved flag bit
  CHECK_EQ(with(8, 33), SLICER_ERR_CORRUPT);  // ndim
  // The checksum comes before every field but the magic (§6.2).
  std::vector<uint8_t> future = good;
  future[4] = 2;
  CHECK_EQ(DecodeStatus(future), SLICER_ERR_BAD_CHECKSUM);
  future[0] = 'X';
  CHECK_EQ(DecodeStatus(future), SLICER_ERR_BAD_MAGIC);
  CHECK_EQ(DecodeStatus(good, 299), SLICER_ERR_LIMIT_EXCEEDED);
  CHECK_EQ(DecodeStatus(good, 300), SLICER_OK);
  std::vector<uint8_t> tiny(good.begin(), good.begin() + 8);
  CHECK_EQ(DecodeStatus(tiny), SLICER_ERR_TRUNCATED);
  CHECK_EQ(slicer_decode(nullptr, 0, kLimit, nullptr, 0, 1), SLICER_ERR_INVALID_ARGUMENT);
}

TEST(NonMinimalVarintIsRejected) {
  // Shape (5, 60): the first dim is the single byte 0x05 at offset 9; spell it 0x85 0x00.
  const std::vector<uint8_t> good = SmallStream(6);
  CHECK_EQ(good[9], 5u);
  std::vector<uint8_t> bad(good.begin(), good.begin() + 9);
  bad.push_back(0x85);
  bad.push_back(0x00);
  bad.insert(bad.end(), good.begin() + 10, good.end());
  FixCrc(&bad);
  CHECK_EQ(DecodeStatus(bad), SLICER_ERR_CORRUPT);
}

TEST(LeftoverBytesAndPaddingAreRejected) {
  // One chunk per stream: grow the payload by a byte (stream length no longer matches).
  std::vector<uint8_t> good = SmallStream(7, 14);
  std::vector<uint8_t> longer = good;
  longer.insert(longer.end() - 4, uint8_t{0});
  FixCrc(&longer);
  CHECK_EQ(DecodeStatus(longer), SLICER_ERR_CORRUPT);
  // Set a padding bit of the last chunk (found through the byte account).
  int found = 0;
  for (uint64_t seed = 8; seed < 40 && found < 3; ++seed) {
    good = SmallStream(seed, 14);
    slicer_account account;
    CHECK_EQ(
        slicer_inspect(good.data(), good.size(), kLimit, nullptr, &account, nullptr, 0, nullptr),
        SLICER_OK);
    if (account.padding_bits == 0) continue;
    std::vector<uint8_t> padded = good;
    padded[padded.size() - 5] |= 0x80;  // the last padding bit of the only chunk
    FixCrc(&padded);
    CHECK_EQ(DecodeStatus(padded), SLICER_ERR_CORRUPT);
    ++found;
  }
  CHECK_EQ(found, 3);
}

TEST(RandomStreamsAreRejected) {
  std::mt19937_64 rng(2026);
  int accepted = 0;
  for (int i = 0; i < 3000; ++i) {
    std::vector<uint8_t> s(9 + rng() % 200);
    for (uint8_t& b : s) b = static_cast<uint8_t>(rng());
    if (i % 2 == 0) {
      std::memcpy(s.data(), "SLCR\x01\x00\x01\x00", 8);  // a plausible header start
      s[8] = static_cast<uint8_t>(rng() % 3);
    }
    FixCrc(&s);
    accepted += DecodeStatus(s) == SLICER_OK;
  }
  CHECK_EQ(accepted, 0);
}

TEST(DecodeNeedsACompleteDestination) {
  const std::vector<uint8_t> stream = SmallStream(9);
  std::vector<uint8_t> out(300 * 4);
  CHECK_EQ(slicer_decode(stream.data(), stream.size(), kLimit, out.data(), out.size() - 1, 1),
           SLICER_ERR_BUFFER_TOO_SMALL);
  CHECK_EQ(slicer_decode(stream.data(), stream.size(), kLimit, out.data(), out.size(), 1),
           SLICER_OK);
}

// Every rejection names its field (slicer_error_detail), with one pinned status.
TEST(RejectionsNameTheirField) {
  const std::vector<uint8_t> good = SmallStream(5);
  auto detail_of = [&](size_t offset, uint8_t value, int expected) {
    std::vector<uint8_t> s = good;
    s[offset] = value;
    FixCrc(&s);
    std::vector<uint8_t> out(300 * 4);
    CHECK_EQ(slicer_decode(s.data(), s.size(), kLimit, out.data(), out.size(), 1), expected);
    return std::string(slicer_error_detail());
  };
  CHECK(detail_of(5, 1, SLICER_ERR_CORRUPT) == "mode");
  CHECK(detail_of(6, 9, SLICER_ERR_CORRUPT) == "dtype");
  CHECK(detail_of(8, 33, SLICER_ERR_CORRUPT) == "ndim");
  CHECK(detail_of(4, 3, SLICER_ERR_BAD_VERSION) == "version");
  std::vector<uint8_t> bad = good;
  bad[10] ^= 1;  // the CRC is not resealed
  slicer_header header;
  CHECK_EQ(slicer_read_header(bad.data(), bad.size(), kLimit, &header), SLICER_ERR_BAD_CHECKSUM);
  CHECK(std::string(slicer_error_detail()) == "CRC-32");
  // A success clears it.
  CHECK_EQ(slicer_read_header(good.data(), good.size(), kLimit, &header), SLICER_OK);
  CHECK(std::string(slicer_error_detail()).empty());
}

// Per-label counts are checked for every group, whichever thread decodes it (§6.1): a stream
// whose middle group has one value moved to its sign's other block (same widths, so every
// other field stays valid) is rejected at every thread count.
TEST(BadMiddleGroupIsRejectedAtEveryThreadCount) {
  std::vector<float> values(8 << 16);
  std::mt19937_64 rng(11);
  std::normal_distribution<float> normal;
  for (float& v : values) v = normal(rng);
  const slicer_test::Input input = MakeInput(values, SLICER_FLOAT32, {8, 1 << 16});
  slicer_params params = DefaultParams();
  params.sparsity_ppb = 990000000u;
  params.blocks_pos = params.blocks_neg = 2;
  params.level_count = 2;
  params.levels[0] = params.levels[1] = 8;
  params.group_rows = 1;
  std::vector<uint8_t> stream;
  CHECK_EQ(Encode(input, params, &stream), SLICER_OK);
  std::vector<uint8_t> out(values.size() * 4);
  for (uint32_t threads = 1; threads <= 4; ++threads) {
    CHECK_EQ(slicer_decode(stream.data(), stream.size(), kLimit, out.data(), out.size(), threads),
             SLICER_OK);
  }
  // Find group 3's first chunk through the shared format layer, then its first label (§6.1:
  // L = 4, so labels are plain 2-bit fields after the gap code).
  slicer::format::Header header;
  CHECK_EQ(slicer::format::ParseHeader(stream.data(), stream.size(), stream.size(), kLimit,
                                       &header),
           SLICER_OK);
  slicer::format::Tables tables;
  CHECK_EQ(slicer::format::ParseTables(stream.data(), stream.size(), stream.size(), header,
                                       &tables),
           SLICER_OK);
  const slicer::format::Chunk& chunk = tables.chunks[3 * header.chunks_per_group];
  CHECK(chunk.count > 0);
  const uint8_t* payload = stream.data() + chunk.offset;
  auto bit = [&](uint64_t i) { return (payload[i >> 3] >> (i & 7)) & 1u; };
  uint32_t rice = 0;
  for (int i = 0; i < 5; ++i) rice |= bit(i) << i;
  uint64_t at = 5;
  while (bit(at)) ++at;
  at += 1 + rice;  // the stop bit and the remainder: `at` is the label's first bit
  std::vector<uint8_t> bad = stream;
  bad[chunk.offset + (at >> 3)] ^= static_cast<uint8_t>(1u << (at & 7));  // label ^= 1
  FixCrc(&bad);
  for (uint32_t threads = 1; threads <= 4; ++threads) {
    CHECK_EQ(slicer_decode(bad.data(), bad.size(), kLimit, out.data(), out.size(), threads),
             SLICER_ERR_CORRUPT);
    CHECK(std::string(slicer_error_detail()).rfind("block counts", 0) == 0);
  }
}

// slicer_decode_alloc asks for the output only after every table is valid.
TEST(DecodeAllocAllocatesOnlyForValidTables) {
  struct Request {
    int calls = 0;
    size_t bytes = 0;
    std::vector<uint8_t> buffer;
  };
  auto alloc = [](void* ctx, const slicer_header*, size_t bytes) -> void* {
    auto* request = static_cast<Request*>(ctx);
    ++request->calls;
    request->bytes = bytes;
    request->buffer.resize(bytes);
    return request->buffer.data();
  };
  const std::vector<uint8_t> good = SmallStream(3);
  Request ok;
  slicer_header header;
  CHECK_EQ(slicer_decode_alloc(good.data(), good.size(), kLimit, 1, alloc, &ok, &header),
           SLICER_OK);
  CHECK_EQ(ok.calls, 1);
  CHECK_EQ(ok.bytes, size_t{300 * 4});
  std::vector<uint8_t> expect(300 * 4);
  CHECK_EQ(slicer_decode(good.data(), good.size(), kLimit, expect.data(), expect.size(), 1),
           SLICER_OK);
  CHECK(ok.buffer == expect);
  // A header that claims 2^40 elements over tables the stream does not hold.
  std::vector<uint8_t> huge = {'S', 'L', 'C', 'R', 1, 0, 1, 0, 1, 0x80, 0x80, 0x80, 0x80, 0x80,
                               0x20, 0, 0, 0, 0, 8, 3, 3, 14, 1, 0, 0, 0, 0, 0, 0};
  FixCrc(&huge);
  Request refused;
  CHECK_EQ(slicer_decode_alloc(huge.data(), huge.size(), uint64_t{1} << 41, 1, alloc, &refused,
                               nullptr),
           SLICER_ERR_TRUNCATED);
  CHECK_EQ(refused.calls, 0);
  CHECK_EQ(slicer_decode_alloc(good.data(), good.size(), kLimit, 1, nullptr, nullptr, nullptr),
           SLICER_ERR_INVALID_ARGUMENT);
}

}  // namespace

TEST_MAIN()
