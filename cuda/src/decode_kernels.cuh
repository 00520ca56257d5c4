// Decoder kernels: one thread per chunk reads the chunk's bit stream and scatters its values
// into the zeroed dense output; a last pass checks the per-label counts (§6.1).
#ifndef SLICER_CUDA_DECODE_KERNELS_CUH_
#define SLICER_CUDA_DECODE_KERNELS_CUH_

#include <cstdint>

#include "device_math.cuh"
#include "stream_host.hpp"

namespace slicer::cuda {

constexpr uint32_t kStatusCorrupt = 14;  // SLICER_ERR_CORRUPT

// LSB-first reader that never reads past `length` bytes (§1).
class ChunkReader {
 public:
  __device__ ChunkReader(const uint8_t* data, uint64_t length)
      : data_(data), bits_(length * 8) {}
  __device__ uint64_t position() const { return pos_; }
  __device__ uint64_t bits() const { return bits_; }
  // Reads n <= 32 bits; false past the end.
  __device__ bool Read(uint32_t n, uint32_t* value) {
    if (n > bits_ - pos_) return false;
    uint64_t v = 0;
    uint32_t got = 0;
    while (got < n) {
      const uint64_t p = pos_ + got;
      const uint32_t in_byte = static_cast<uint32_t>(p & 7);
      const uint32_t take = min(8 - in_byte, n - got);
      const uint32_t byte = data_[p >> 3];
      v |= static_cast<uint64_t>((byte >> in_byte) & ((1u << take) - 1)) << got;
      got += take;
    }
    pos_ += n;
    *value = static_cast<uint32_t>(v);
    return true;
  }
  // Counts 1 bits up to the first 0 bit (consumed); false past the end.
  __device__ bool Unary(uint64_t* quotient) {
    uint64_t q = 0;
    for (;;) {
      if (pos_ >= bits_) return false;
      const uint32_t byte = data_[pos_ >> 3];
      const uint32_t bit = (byte >> (pos_ & 7)) & 1u;
      ++pos_;
      if (!bit) break;
      ++q;
    }
    *quotient = q;
    return true;
  }

 private:
  const uint8_t* data_;
  uint64_t bits_;
  uint64_t pos_ = 0;
};

template <typename T>
__global__ void DecodeChunkKernel(const uint8_t* payload, const DecodeChunk* chunks,
                                  uint64_t total_chunks, const DecodeBlock* blocks,
                                  uint32_t num_labels, uint32_t blocks_pos, uint32_t chunk_log2,
                                  T* out, unsigned long long* seen, uint32_t* status) {
  const uint64_t i = blockIdx.x * uint64_t{blockDim.x} + threadIdx.x;
  if (i >= total_chunks) return;
  const DecodeChunk c = chunks[i];
  if (c.count == 0) return;  // the host checked that its length is 0
  const DecodeBlock* group_blocks = blocks + c.group * num_labels;
  unsigned long long* group_seen = seen + c.group * num_labels;
  const LabelCode code = MakeLabelCode(num_labels);
  ChunkReader rd(payload + c.payload_offset, c.length);
  auto fail = [status]() { atomicCAS(status, 0u, kStatusCorrupt); };
  uint32_t r;
  if (!rd.Read(5, &r) || r > chunk_log2) return fail();
  uint64_t pos = ~0ull;  // -1: the first gap is the first position
  for (uint64_t t = 0; t < c.count; ++t) {
    uint64_t quotient;
    uint32_t rem;
    if (!rd.Unary(&quotient) || !rd.Read(r, &rem)) return fail();
    if (quotient >= c.elements) return fail();  // also keeps the shift below in range
    pos += 1 + (quotient << r) + rem;
    if (pos >= c.elements) return fail();
    uint32_t x;
    if (!rd.Read(code.b, &x)) return fail();
    uint32_t label = x;
    if (x >= code.u) {
      uint32_t extra;
      if (!rd.Read(1, &extra)) return fail();
      label = code.u + 2 * (x - code.u) + extra;
    }
    if (label >= num_labels || !group_blocks[label].present) return fail();
    const DecodeBlock b = group_blocks[label];
    uint32_t q = 0;
    if (!rd.Read(b.width, &q)) return fail();
    const double magnitude = Dequantize(q, b.lo, b.hi, b.width);
    out[c.out_offset + pos] = FromDouble<T>(label < blocks_pos ? magnitude : -magnitude);
    atomicAdd(&group_seen[label], 1ull);
  }
  const uint64_t padding = rd.bits() - rd.position();
  uint32_t pad_bits = 0;
  if (padding >= 8 || !rd.Read(static_cast<uint32_t>(padding), &pad_bits) || pad_bits != 0) {
    return fail();
  }
}

// Per (group, label): decoded count equals c_m (§6.1).
__global__ void CheckCountsKernel(const DecodeBlock* blocks, const unsigned long long* seen,
                                  uint64_t count, uint32_t* status) {
  const uint64_t i = blockIdx.x * uint64_t{blockDim.x} + threadIdx.x;
  if (i >= count) return;
  if (seen[i] != blocks[i].count) atomicCAS(status, 0u, kStatusCorrupt);
}

}  // namespace slicer::cuda

#endif  // SLICER_CUDA_DECODE_KERNELS_CUH_
