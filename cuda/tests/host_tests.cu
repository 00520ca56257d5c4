// Host-side checks of the CUDA backend that need no GPU: the __host__ __device__ arithmetic the
// kernels run (CRC combination, quantizer, label code, Rice rule) against the C++ codec's own
// primitives, the header writer against the C++ encoder's stream, and the behaviour of the C
// ABI on a machine without a usable device.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <vector>

#include "crc32.hpp"
#include "device_math.cuh"
#include "quantize_inl.hpp"
#include "slicer/slicer.h"
#include "slicer/slicer_cuda.h"
#include "stream_host.hpp"

namespace {

int failures = 0;

#define EXPECT(cond)                                                    \
  do {                                                                  \
    if (!(cond)) {                                                      \
      std::fprintf(stderr, "%s:%d: expected %s\n", __FILE__, __LINE__, #cond); \
      ++failures;                                                       \
    }                                                                   \
  } while (0)

using slicer::cuda::Crc32Combine;

void TestCrcCombine() {
  std::mt19937_64 rng(7);
  for (size_t total : {size_t{0}, size_t{1}, size_t{9}, size_t{4095}, size_t{4096},
                       size_t{4097}, size_t{70001}}) {
    std::vector<uint8_t> data(total);
    for (auto& b : data) b = static_cast<uint8_t>(rng());
    const uint32_t whole = slicer::internal::Crc32(0, data.data(), data.size());
    EXPECT(slicer::cuda::HostCrc32(data.data(), data.size()) == whole);
    // Fold fixed segments as CrcSegmentKernel + CrcCombineKernel do.
    const size_t seg = 4096;
    uint32_t acc = 0;
    for (size_t at = 0; at < total; at += seg) {
      const size_t len = std::min(seg, total - at);
      const uint32_t part = slicer::internal::Crc32(0, data.data() + at, len);
      acc = Crc32Combine(acc, part, len);
    }
    EXPECT(acc == whole);
    // Uneven split joined as the tree does.
    const size_t cut = total / 3;
    const uint32_t a = slicer::internal::Crc32(0, data.data(), cut);
    const uint32_t b = slicer::internal::Crc32(0, data.data() + cut, total - cut);
    EXPECT(Crc32Combine(a, b, total - cut) == whole);
    EXPECT(Crc32Combine(whole, 0, 0) == whole);
  }
}

void TestQuantizer() {
  std::mt19937_64 rng(11);
  std::uniform_real_distribution<float> mag(1e-6f, 1e4f);
  for (int trial = 0; trial < 20000; ++trial) {
    float lo = mag(rng);
    float hi = mag(rng);
    if (lo == hi) continue;
    if (lo > hi) std::swap(lo, hi);
    std::uniform_real_distribution<float> inside(lo, hi);
    const float a = trial % 7 == 0 ? lo : (trial % 11 == 0 ? hi : inside(rng));
    const uint32_t width = 1 + trial % 16;
    const uint32_t levels = (1u << width) - 1;
    const double step = (static_cast<double>(hi) - lo) / levels;
    const uint32_t expect = slicer::internal::QuantizeMagnitude(a, lo, step, levels);
    const uint32_t got = slicer::cuda::Quantize(a, lo, hi, width);
    EXPECT(got == expect);
    EXPECT(slicer::cuda::Dequantize(got, lo, hi, width) ==
           slicer::internal::DequantizeMagnitude(got, lo, step));
  }
  EXPECT(slicer::cuda::Dequantize(5, 1.0, 2.0, 0) == 2.0);  // width 0 decodes to hi
}

// Truncated binary (§6.1) written field by field, as the spec states it.
uint32_t SpecLabelBits(uint32_t label, uint32_t num_labels, uint32_t* value) {
  uint32_t b = 0;
  while ((2u << b) <= num_labels) ++b;
  const uint32_t u = (2u << b) - num_labels;
  if (label < u) {
    *value = label;
    return b;
  }
  const uint32_t t = label - u;
  *value = (u + (t >> 1)) | ((t & 1u) << b);
  return b + 1;
}

void TestLabelsAndRice() {
  for (uint32_t num_labels = 2; num_labels <= 128; ++num_labels) {
    const slicer::cuda::LabelCode code = slicer::cuda::MakeLabelCode(num_labels);
    for (uint32_t label = 0; label < num_labels; ++label) {
      uint32_t value;
      const uint32_t bits = SpecLabelBits(label, num_labels, &value);
      EXPECT(slicer::cuda::LabelBits(code, label) == bits);
      EXPECT(slicer::cuda::LabelValue(code, label) == value);
      // Decoding (§6.1): x = read(b); x < u ? x : u + 2 (x - u) + read(1).
      const uint32_t x = value & ((1u << code.b) - 1);
      const uint32_t decoded = x < code.u ? x : code.u + 2 * (x - code.u) + (value >> code.b);
      EXPECT(decoded == label);
    }
  }
  EXPECT(slicer::cuda::RiceParameter(1, 0, 14) == 0);
  EXPECT(slicer::cuda::RiceParameter(1, 2, 14) == 1);
  EXPECT(slicer::cuda::RiceParameter(1, 3, 14) == 1);
  EXPECT(slicer::cuda::RiceParameter(1, 4, 14) == 2);
  EXPECT(slicer::cuda::RiceParameter(10, 16383 * 10, 14) == 13);
  EXPECT(slicer::cuda::RiceParameter(1, uint64_t{1} << 40, 14) == 14);
  EXPECT(slicer::cuda::ElementBits(9, 2, 3, 8) == (9 >> 2) + 1 + 2 + 3 + 8);
}

void TestDrawAndKeys() {
  EXPECT(slicer::cuda::MagnitudeKey(-0.0f) == 0);
  EXPECT(slicer::cuda::MagnitudeKey(-1.5f) == slicer::cuda::MagnitudeKey(1.5f));
  EXPECT(slicer::cuda::MagnitudeKey(2.0f) > slicer::cuda::MagnitudeKey(1.9999999f));
  EXPECT(!slicer::cuda::IsFiniteBits(std::numeric_limits<float>::infinity()));
  EXPECT(!slicer::cuda::IsFiniteBits(std::numeric_limits<float>::quiet_NaN()));
  EXPECT(slicer::cuda::IsFiniteBits(std::numeric_limits<float>::max()));
  // splitmix64 reference value: seed 0, counter 0 -> 0xE220A8397B1DCDAF.
  EXPECT(slicer::cuda::Draw(0, 0) == 0xE220A8397B1DCDAFull);
}

// The header and tables the CUDA encoder writes around its payload match the C++ encoder's
// stream for an input whose kept set is known (every element kept, one block per sign).
void TestHeaderAndTables() {
  const int64_t shape[2] = {2, 3};
  const float data[6] = {1.0f, -2.0f, 3.0f, -4.0f, 5.0f, 0.5f};
  slicer_params params;
  slicer_params_init(&params);
  params.sparsity_ppb = 0;
  params.blocks_pos = 1;
  params.blocks_neg = 1;
  params.delta_micro = 0;
  params.chunk_log2 = 6;
  size_t bound = 0;
  EXPECT(slicer_encode_bound(shape, 2, SLICER_FLOAT32, &params, &bound) == SLICER_OK);
  std::vector<uint8_t> cpu(bound);
  size_t written = 0;
  EXPECT(slicer_encode(data, SLICER_FLOAT32, shape, 2, &params, cpu.data(), cpu.size(),
                       &written) == SLICER_OK);
  cpu.resize(written);
  slicer::cuda::EncodePlan plan;
  EXPECT(slicer::cuda::MakeEncodePlan(shape, 2, SLICER_FLOAT32, &params, &plan) == SLICER_OK);
  std::vector<uint8_t> mine = slicer::cuda::HeaderBytes(plan);
  // Positives 5, 3, 1, 0.5 (one block [0.5, 5]); negatives 4, 2 (one block [2, 4]).
  const slicer::cuda::BlockResult blocks[2] = {{4, 0.5f, 5.0f, 8}, {2, 2.0f, 4.0f, 8}};
  const uint64_t counts[1] = {6};
  const uint64_t payload = written - 4;  // the payload length is what remains of the stream
  std::vector<uint8_t> probe = mine;
  slicer::cuda::AppendGroupTables(plan, 6, 4, blocks, counts, &payload, &probe);
  const size_t table_end = probe.size();
  const uint64_t chunk_bytes[1] = {written - 4 - table_end};
  slicer::cuda::AppendGroupTables(plan, 6, 4, blocks, counts, chunk_bytes, &mine);
  EXPECT(mine.size() <= cpu.size());
  EXPECT(std::memcmp(mine.data(), cpu.data(), mine.size()) == 0);
  // And the parser reads the C++ stream back with the same layout.
  slicer::cuda::DecodePlan parsed;
  EXPECT(slicer::cuda::ParseHeader(cpu.data(), cpu.size(), cpu.size(), 1u << 31, &parsed) ==
         SLICER_OK);
  EXPECT(slicer::cuda::ParseTables(cpu.data(), cpu.size() - 4, cpu.size(), &parsed) ==
         SLICER_OK);
  EXPECT(parsed.header.num_elements == 6);
  EXPECT(parsed.payload_offset == mine.size());
  EXPECT(parsed.chunks.size() == 1 && parsed.chunks[0].count == 6);
  EXPECT(parsed.blocks.size() == 2 && parsed.blocks[0].hi == 5.0f && parsed.blocks[1].lo == 2.0f);
  // A flipped byte inside the tables is caught by the parser or, in a full decode, the CRC.
  std::vector<uint8_t> bad = cpu;
  bad[mine.size() - 1] ^= 0x40;
  slicer::cuda::DecodePlan reparsed;
  EXPECT(slicer::cuda::ParseHeader(bad.data(), bad.size(), bad.size(), 1u << 31, &reparsed) ==
         SLICER_OK);
  // One parser for both backends: the status is the C++ decoder's (CRC resealed so that the
  // damage reaches its table checks).
  const uint32_t crc = slicer::internal::Crc32(0, bad.data(), bad.size() - 4);
  std::memcpy(bad.data() + bad.size() - 4, &crc, 4);
  std::vector<float> sink(6);
  const int cpu_status =
      slicer_decode(bad.data(), bad.size(), 1u << 31, sink.data(), sink.size() * 4, 1);
  EXPECT(cpu_status != SLICER_OK);
  EXPECT(slicer::cuda::ParseTables(bad.data(), bad.size() - 4, bad.size(), &reparsed) ==
         cpu_status);
}

// Without a device every entry point fails cleanly, with a status, never a crash.
void TestNoDeviceBehaviour() {
  if (slicer_cuda_available()) return;  // only meaningful on machines without a GPU
  const int64_t shape[1] = {1000};
  slicer_params params;
  slicer_params_init(&params);
  std::vector<uint8_t> dst(1 << 16);
  size_t written = 0;
  const int status = slicer_cuda_encode_host(reinterpret_cast<const void*>(0x1000),
                                             SLICER_FLOAT32, shape, 1, &params,
                                             reinterpret_cast<void*>(0x1000), size_t{1} << 40,
                                             dst.data(), dst.size(), &written, nullptr);
  EXPECT(status == SLICER_ERR_NO_DEVICE || status == SLICER_ERR_CUDA_RUNTIME);
  EXPECT(std::strlen(slicer_cuda_status_string(status)) > 0);
  EXPECT(std::strlen(slicer_cuda_status_string(SLICER_ERR_CORRUPT)) > 0);
  // Parameter errors are found before any device work.
  params.blocks_pos = 0;
  EXPECT(slicer_cuda_encode_host(nullptr, SLICER_FLOAT32, shape, 1, &params, nullptr, 0,
                                 dst.data(), dst.size(), &written, nullptr) ==
         SLICER_ERR_INVALID_ARGUMENT);
  slicer_params_init(&params);
  EXPECT(slicer_cuda_encode_host(nullptr, 7, shape, 1, &params, nullptr, 0, dst.data(),
                                 dst.size(), &written, nullptr) ==
         SLICER_ERR_UNSUPPORTED_DTYPE);
  // A host stream's header is read without a device.
  const float data[4] = {1.0f, -2.0f, 0.0f, 4.0f};
  const int64_t shape4[1] = {4};
  size_t n = 0;
  EXPECT(slicer_encode(data, SLICER_FLOAT32, shape4, 1, &params, dst.data(), dst.size(), &n) ==
         SLICER_OK);
  slicer_header header;
  EXPECT(slicer_cuda_read_header(dst.data(), n, 0, 100, &header, nullptr) == SLICER_OK);
  EXPECT(header.num_elements == 4 && header.shape[0] == 4);
  EXPECT(slicer_cuda_read_header(dst.data(), n, 0, 3, &header, nullptr) ==
         SLICER_ERR_LIMIT_EXCEEDED);
  dst[n - 1] ^= 1;
  EXPECT(slicer_cuda_read_header(dst.data(), n, 0, 100, &header, nullptr) ==
         SLICER_ERR_BAD_CHECKSUM);
}

}  // namespace

int main() {
  TestCrcCombine();
  TestQuantizer();
  TestLabelsAndRice();
  TestDrawAndKeys();
  TestHeaderAndTables();
  TestNoDeviceBehaviour();
  if (failures) {
    std::fprintf(stderr, "%d check(s) failed\n", failures);
    return 1;
  }
  std::printf("slicer_cuda host tests passed\n");
  return 0;
}
