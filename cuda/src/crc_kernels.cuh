// Device-side CRC-32 (§6.2) of many byte ranges at once: fixed segments are checksummed in
// parallel, then combined per range with the zlib combination operator.
#ifndef SLICER_CUDA_CRC_KERNELS_CUH_
#define SLICER_CUDA_CRC_KERNELS_CUH_

#include <cstdint>

#include "device_math.cuh"

namespace slicer::cuda {

// Kernels here are static: the header is compiled into both the encoder and the decoder.

constexpr uint64_t kCrcSegment = 4096;
constexpr int kCrcThreads = 256;

// One checksummed range: `length` bytes at `src_offset`; the CRC goes, little-endian, to
// `crc_offset` of the output base. `first_segment` of range[count] is the total segments.
struct CrcRange {
  unsigned long long src_offset;
  unsigned long long length;
  unsigned long long crc_offset;
  unsigned long long first_segment;
};

static __global__ void CrcSegmentKernel(const CrcRange* ranges, uint64_t count, const uint8_t* src,
                                 uint32_t* segment_crc) {
  __shared__ uint32_t table[256];
  for (int i = threadIdx.x; i < 256; i += blockDim.x) table[i] = Crc32TableEntry(i);
  __syncthreads();
  const uint64_t seg = blockIdx.x * uint64_t{blockDim.x} + threadIdx.x;
  if (seg >= ranges[count].first_segment) return;
  uint64_t lo = 0;  // the range holding `seg`: last one with first_segment <= seg
  uint64_t hi = count;
  while (hi - lo > 1) {
    const uint64_t mid = (lo + hi) / 2;
    if (ranges[mid].first_segment <= seg) {
      lo = mid;
    } else {
      hi = mid;
    }
  }
  const CrcRange range = ranges[lo];
  const uint64_t begin = (seg - range.first_segment) * kCrcSegment;
  const uint64_t end = min(begin + kCrcSegment, static_cast<uint64_t>(range.length));
  const uint8_t* bytes = src + range.src_offset;
  uint32_t crc = 0xFFFFFFFFu;
  for (uint64_t i = begin; i < end; ++i) crc = Crc32Byte(crc, bytes[i], table);
  segment_crc[seg] = ~crc;
}

// One block per range: each thread folds a run of segments, then a tree joins the runs.
static __global__ void CrcCombineKernel(const CrcRange* ranges, const uint32_t* segment_crc,
                                 uint8_t* out) {
  __shared__ uint32_t crc[kCrcThreads];
  __shared__ unsigned long long len[kCrcThreads];
  const CrcRange range = ranges[blockIdx.x];
  const uint64_t length = range.length;
  const uint64_t segments = (length + kCrcSegment - 1) / kCrcSegment;
  const uint64_t per_thread = (segments + kCrcThreads - 1) / kCrcThreads;
  uint32_t acc = 0;  // CRC of the empty string
  uint64_t acc_len = 0;
  const uint64_t first = threadIdx.x * per_thread;
  const uint64_t last = min(first + per_thread, segments);
  for (uint64_t s = first; s < last; ++s) {
    const uint64_t seg_len = min(kCrcSegment, length - s * kCrcSegment);
    acc = Crc32Combine(acc, segment_crc[range.first_segment + s], seg_len);
    acc_len += seg_len;
  }
  crc[threadIdx.x] = acc;
  len[threadIdx.x] = acc_len;
  __syncthreads();
  for (int stride = 1; stride < kCrcThreads; stride *= 2) {
    const bool leader = threadIdx.x % (2 * stride) == 0;
    uint32_t merged = 0;
    unsigned long long merged_len = 0;
    if (leader) {
      merged = Crc32Combine(crc[threadIdx.x], crc[threadIdx.x + stride], len[threadIdx.x + stride]);
      merged_len = len[threadIdx.x] + len[threadIdx.x + stride];
    }
    __syncthreads();
    if (leader) {
      crc[threadIdx.x] = merged;
      len[threadIdx.x] = merged_len;
    }
    __syncthreads();
  }
  if (threadIdx.x == 0) {
    for (int b = 0; b < 4; ++b) out[range.crc_offset + b] = static_cast<uint8_t>(crc[0] >> (8 * b));
  }
}

// Copies each output stream's metadata (staged from the host) and payload into place.
struct StreamPiece {
  unsigned long long meta_src;
  unsigned long long meta_len;
  unsigned long long payload_src;
  unsigned long long payload_len;
  unsigned long long dst;
};

static __global__ void AssembleKernel(const StreamPiece* pieces, uint64_t count,
                                      const uint8_t* meta, const uint8_t* payload, uint8_t* dst) {
  for (uint64_t item = blockIdx.y; item < count; item += gridDim.y) {  // grid.y <= 65535
    const StreamPiece piece = pieces[item];
    const uint64_t total = piece.meta_len + piece.payload_len;
    for (uint64_t i = blockIdx.x * uint64_t{blockDim.x} + threadIdx.x; i < total;
         i += uint64_t{gridDim.x} * blockDim.x) {
      dst[piece.dst + i] = i < piece.meta_len ? meta[piece.meta_src + i]
                                              : payload[piece.payload_src + i - piece.meta_len];
    }
  }
}

}  // namespace slicer::cuda

#endif  // SLICER_CUDA_CRC_KERNELS_CUH_
