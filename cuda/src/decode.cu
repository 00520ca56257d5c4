// Decoder launchers: checksum, host-side parse of the header and tables, then the chunk kernel.
#include <cuda_runtime.h>

#include <algorithm>
#include <vector>

#include "crc_kernels.cuh"
#include "cuda_check.hpp"
#include "decode_kernels.cuh"
#include "launch.hpp"
#include "slicer/slicer_cuda.h"
#include "stream_host.hpp"

namespace slicer::cuda {
namespace {

constexpr uint64_t kAlign = 256;
constexpr size_t kHeaderPrefix = 512;  // the fixed header is at most 383 bytes

uint64_t AlignUp(uint64_t v) { return (v + kAlign - 1) / kAlign * kAlign; }
uint64_t CeilDiv(uint64_t a, uint64_t b) { return (a + b - 1) / b; }

size_t ItemSize(int dtype) { return dtype == SLICER_FLOAT32 ? 4 : 2; }

// Temp regions. The checksum regions depend only on the stream size, the rest on its header.
struct DecodeTemp {
  uint64_t ranges, segment_crc, crc, status, chunks, blocks, seen, payload, total;
};

DecodeTemp MakeDecodeTemp(const DecodePlan& plan, size_t size, bool src_is_device) {
  DecodeTemp t{};
  uint64_t at = 0;
  auto take = [&at](uint64_t bytes) {
    const uint64_t where = at;
    at = AlignUp(at + bytes);
    return where;
  };
  const uint64_t groups = plan.header.group_count;
  t.ranges = take(2 * sizeof(CrcRange));
  t.segment_crc = take(CeilDiv(size, kCrcSegment) * sizeof(uint32_t));
  t.crc = take(4);
  t.status = take(4);
  t.chunks = take(groups * plan.chunks_per_group * sizeof(DecodeChunk));
  t.blocks = take(groups * plan.num_labels * sizeof(DecodeBlock));
  t.seen = take(groups * plan.num_labels * sizeof(unsigned long long));
  t.payload = take(src_is_device ? 0 : size);
  t.total = at;
  return t;
}

// Copies `n` bytes of the stream to the host (or points at them when they are there already).
int HostBytes(const void* src, size_t n, bool src_is_device, cudaStream_t stream,
              std::vector<uint8_t>* copy, const uint8_t** bytes) {
  if (!src_is_device) {
    *bytes = static_cast<const uint8_t*>(src);
    return SLICER_OK;
  }
  copy->resize(n);
  if (n) {
    SLICER_CUDA_TRY(cudaMemcpyAsync(copy->data(), src, n, cudaMemcpyDeviceToHost, stream));
    SLICER_CUDA_TRY(cudaStreamSynchronize(stream));
  }
  *bytes = copy->data();
  return SLICER_OK;
}

// Magic, then the checksum, then the header fields: the order of tests/reference.py.
int CheckAndParseHeader(const void* src, size_t size, bool src_is_device,
                        uint64_t max_elements, uint8_t* temp, size_t temp_bytes,
                        cudaStream_t stream, DecodePlan* plan) {
  if (src == nullptr) return SLICER_ERR_INVALID_ARGUMENT;
  if (size < 9) return SLICER_ERR_TRUNCATED;
  std::vector<uint8_t> copy;
  const uint8_t* head;
  SLICER_TRY_STATUS(HostBytes(src, std::min(size, kHeaderPrefix), src_is_device, stream, &copy,
                              &head));
  if (head[0] != 0x53 || head[1] != 0x4C || head[2] != 0x43 || head[3] != 0x52) {
    return SLICER_ERR_BAD_MAGIC;
  }
  uint32_t stored;
  uint32_t computed;
  if (!src_is_device) {
    const auto* bytes = static_cast<const uint8_t*>(src);
    stored = static_cast<uint32_t>(bytes[size - 4]) | static_cast<uint32_t>(bytes[size - 3]) << 8 |
             static_cast<uint32_t>(bytes[size - 2]) << 16 |
             static_cast<uint32_t>(bytes[size - 1]) << 24;
    computed = HostCrc32(bytes, size - 4);
  } else if (temp == nullptr) {
    // No device scratch (header-only queries): checksum on a host copy of the stream.
    std::vector<uint8_t> whole;
    const uint8_t* bytes;
    SLICER_TRY_STATUS(HostBytes(src, size, true, stream, &whole, &bytes));
    stored = static_cast<uint32_t>(bytes[size - 4]) | static_cast<uint32_t>(bytes[size - 3]) << 8 |
             static_cast<uint32_t>(bytes[size - 2]) << 16 |
             static_cast<uint32_t>(bytes[size - 1]) << 24;
    computed = HostCrc32(bytes, size - 4);
  } else {
    DecodePlan sizing;  // the checksum regions need only the size
    const DecodeTemp t = MakeDecodeTemp(sizing, size, true);
    if (temp_bytes < t.crc + 4) return SLICER_ERR_TEMP_TOO_SMALL;
    const uint64_t segments = CeilDiv(size - 4, kCrcSegment);
    const CrcRange ranges[2] = {CrcRange{0, size - 4, 0, 0}, CrcRange{0, 0, 0, segments}};
    SLICER_CUDA_TRY(cudaMemcpyAsync(temp + t.ranges, ranges, sizeof(ranges),
                                    cudaMemcpyHostToDevice, stream));
    const auto* dev_ranges = reinterpret_cast<const CrcRange*>(temp + t.ranges);
    auto* segment_crc = reinterpret_cast<uint32_t*>(temp + t.segment_crc);
    const unsigned segment_blocks = static_cast<unsigned>(CeilDiv(segments, kCrcThreads));
    SLICER_LAUNCH(CrcSegmentKernel, segment_blocks, kCrcThreads, stream, dev_ranges, 1,
                  static_cast<const uint8_t*>(src), segment_crc);
    SLICER_CUDA_LAUNCHED();
    SLICER_LAUNCH(CrcCombineKernel, 1, kCrcThreads, stream, dev_ranges, segment_crc, temp + t.crc);
    SLICER_CUDA_LAUNCHED();
    uint8_t tail[8];
    SLICER_CUDA_TRY(cudaMemcpyAsync(tail, temp + t.crc, 4, cudaMemcpyDeviceToHost, stream));
    SLICER_CUDA_TRY(cudaMemcpyAsync(tail + 4, static_cast<const uint8_t*>(src) + size - 4, 4,
                                    cudaMemcpyDeviceToHost, stream));
    SLICER_CUDA_TRY(cudaStreamSynchronize(stream));
    computed = tail[0] | tail[1] << 8 | tail[2] << 16 | static_cast<uint32_t>(tail[3]) << 24;
    stored = tail[4] | tail[5] << 8 | tail[6] << 16 | static_cast<uint32_t>(tail[7]) << 24;
  }
  if (stored != computed) return SLICER_ERR_BAD_CHECKSUM;
  return ParseHeader(head, std::min(size, kHeaderPrefix), size, max_elements, plan);
}

template <typename T>
int LaunchDecode(const DecodePlan& plan, const uint8_t* payload, const DecodeTemp& t,
                 uint8_t* temp, void* dst, cudaStream_t stream) {
  const uint64_t total_chunks = plan.chunks.size();
  const uint64_t labels = plan.blocks.size();
  auto* status = reinterpret_cast<uint32_t*>(temp + t.status);
  auto* seen = reinterpret_cast<unsigned long long*>(temp + t.seen);
  const auto* chunks = reinterpret_cast<const DecodeChunk*>(temp + t.chunks);
  const auto* blocks = reinterpret_cast<const DecodeBlock*>(temp + t.blocks);
  const unsigned chunk_blocks = static_cast<unsigned>(CeilDiv(total_chunks, 64));
  SLICER_LAUNCH(DecodeChunkKernel<T>, chunk_blocks, 64, stream, payload, chunks, total_chunks,
                blocks, plan.num_labels, plan.header.blocks_pos, plan.header.chunk_log2,
                static_cast<T*>(dst), seen, status);
  SLICER_CUDA_LAUNCHED();
  const unsigned label_blocks = static_cast<unsigned>(CeilDiv(labels, 128));
  SLICER_LAUNCH(CheckCountsKernel, label_blocks, 128, stream, blocks, seen, labels, status);
  SLICER_CUDA_LAUNCHED();
  return SLICER_OK;
}

int Decode(const void* src, size_t size, bool src_is_device, uint64_t max_elements, void* temp,
           size_t temp_bytes, void* dst, size_t dst_bytes, cudaStream_t stream) {
  auto* temp8 = static_cast<uint8_t*>(temp);
  DecodePlan plan;
  SLICER_TRY_STATUS(CheckAndParseHeader(src, size, src_is_device, max_elements, temp8,
                                        temp_bytes, stream, &plan));
  const uint64_t elements = plan.header.num_elements;
  std::vector<uint8_t> copy;
  const uint8_t* bytes;
  SLICER_TRY_STATUS(HostBytes(src, std::min<uint64_t>(size - 4, TablesBound(plan)),
                              src_is_device, stream, &copy, &bytes));
  SLICER_TRY_STATUS(ParseTables(bytes, src_is_device ? copy.size() : size - 4, size, &plan));
  // After the tables, as in the C++ decoder: one status per stream, whatever the buffer.
  if (dst_bytes < elements * ItemSize(plan.header.dtype)) return SLICER_ERR_BUFFER_TOO_SMALL;
  if (elements == 0) return SLICER_OK;
  if (dst == nullptr) return SLICER_ERR_INVALID_ARGUMENT;
  const DecodeTemp t = MakeDecodeTemp(plan, size, src_is_device);
  if (temp8 == nullptr || temp_bytes < t.total) return SLICER_ERR_TEMP_TOO_SMALL;
  SLICER_CUDA_TRY(cudaMemsetAsync(dst, 0, elements * ItemSize(plan.header.dtype), stream));
  SLICER_CUDA_TRY(cudaMemsetAsync(temp8 + t.status, 0, 4, stream));
  SLICER_CUDA_TRY(cudaMemsetAsync(temp8 + t.seen, 0,
                                  plan.blocks.size() * sizeof(unsigned long long), stream));
  SLICER_CUDA_TRY(cudaMemcpyAsync(temp8 + t.chunks, plan.chunks.data(),
                                  plan.chunks.size() * sizeof(DecodeChunk),
                                  cudaMemcpyHostToDevice, stream));
  SLICER_CUDA_TRY(cudaMemcpyAsync(temp8 + t.blocks, plan.blocks.data(),
                                  plan.blocks.size() * sizeof(DecodeBlock),
                                  cudaMemcpyHostToDevice, stream));
  const uint8_t* payload;
  if (src_is_device) {
    payload = static_cast<const uint8_t*>(src) + plan.payload_offset;
  } else {
    if (plan.payload_bytes) {
      SLICER_CUDA_TRY(cudaMemcpyAsync(temp8 + t.payload,
                                      static_cast<const uint8_t*>(src) + plan.payload_offset,
                                      plan.payload_bytes, cudaMemcpyHostToDevice, stream));
    }
    payload = temp8 + t.payload;
  }
  switch (plan.header.dtype) {
    case SLICER_FLOAT32:
      SLICER_TRY_STATUS(LaunchDecode<float>(plan, payload, t, temp8, dst, stream));
      break;
    case SLICER_FLOAT16:
      SLICER_TRY_STATUS(LaunchDecode<__half>(plan, payload, t, temp8, dst, stream));
      break;
    default:
      SLICER_TRY_STATUS(LaunchDecode<__nv_bfloat16>(plan, payload, t, temp8, dst, stream));
      break;
  }
  uint32_t status = 0;
  SLICER_CUDA_TRY(cudaMemcpyAsync(&status, temp8 + t.status, 4, cudaMemcpyDeviceToHost, stream));
  SLICER_CUDA_TRY(cudaStreamSynchronize(stream));
  return static_cast<int>(status);
}

}  // namespace
}  // namespace slicer::cuda

extern "C" {

int slicer_cuda_read_header(const void* src, size_t size, int src_is_device,
                            uint64_t max_elements, slicer_header* header, void* stream) {
  if (header == nullptr) return SLICER_ERR_INVALID_ARGUMENT;
  slicer::cuda::DecodePlan plan;
  const int status = slicer::cuda::CheckAndParseHeader(
      src, size, src_is_device != 0, max_elements, nullptr, 0,
      static_cast<cudaStream_t>(stream), &plan);
  if (status == SLICER_OK) *header = plan.header;
  return status;
}

int slicer_cuda_decode_temp_size(const void* src, size_t size, int src_is_device,
                                 uint64_t max_elements, slicer_header* header,
                                 size_t* temp_bytes, void* stream) {
  if (temp_bytes == nullptr || src == nullptr) return SLICER_ERR_INVALID_ARGUMENT;
  if (size < 9) return SLICER_ERR_TRUNCATED;
  // Header fields only (the checksum is checked by the decode itself).
  std::vector<uint8_t> copy;
  const uint8_t* head;
  const int copied = slicer::cuda::HostBytes(src, std::min(size, slicer::cuda::kHeaderPrefix),
                                             src_is_device != 0,
                                             static_cast<cudaStream_t>(stream), &copy, &head);
  if (copied != SLICER_OK) return copied;
  slicer::cuda::DecodePlan plan;
  const int status = slicer::cuda::ParseHeader(
      head, std::min(size, slicer::cuda::kHeaderPrefix), size, max_elements, &plan);
  if (status != SLICER_OK) {
    // Report what the C++ decoder reports: the checksum comes before the header fields (§6.2),
    // so a failing header is judged again with the checksum (a host copy; failures only).
    const int checked = slicer::cuda::CheckAndParseHeader(src, size, src_is_device != 0,
                                                          max_elements, nullptr, 0,
                                                          static_cast<cudaStream_t>(stream),
                                                          &plan);
    return checked != SLICER_OK ? checked : status;
  }
  if (header != nullptr) *header = plan.header;
  *temp_bytes = slicer::cuda::MakeDecodeTemp(plan, size, src_is_device != 0).total;
  return SLICER_OK;
}

int slicer_cuda_decode(const void* src, size_t size, int src_is_device, uint64_t max_elements,
                       void* temp, size_t temp_bytes, void* dst_device, size_t dst_bytes,
                       void* stream) {
  return slicer::cuda::Decode(src, size, src_is_device != 0, max_elements, temp, temp_bytes,
                              dst_device, dst_bytes, static_cast<cudaStream_t>(stream));
}

}  // extern "C"
