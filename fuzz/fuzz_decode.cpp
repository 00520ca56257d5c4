// libFuzzer target: arbitrary bytes through read_header, inspect and decode, twice: as given
// (mostly stopped by the checksum) and with a correct CRC-32 appended, so that mutations reach
// every field check behind it. Any crash, leak, out-of-bounds access or undefined behaviour is
// a bug; so is decode, inspect and decode_alloc disagreeing.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "slicer/slicer.h"

namespace {

constexpr uint64_t kMaxElements = uint64_t{1} << 22;  // keeps each input's memory small

uint32_t Crc32(const uint8_t* data, size_t size) {
  uint32_t crc = 0xFFFFFFFFu;
  for (size_t i = 0; i < size; ++i) {
    crc ^= data[i];
    for (int b = 0; b < 8; ++b) crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1u)));
  }
  return ~crc;
}

void Exercise(const uint8_t* data, size_t size) {
  slicer_header header;
  const int header_status = slicer_read_header(data, size, kMaxElements, &header);
  slicer_account account;
  slicer_block_info blocks[8];
  size_t num_blocks = 0;
  const int inspect_status =
      slicer_inspect(data, size, kMaxElements, &header, &account, blocks, 8, &num_blocks);
  if (header_status != SLICER_OK) {
    if (inspect_status == SLICER_OK) std::abort();  // inspect accepted a bad header
    return;
  }
  const size_t item = slicer_dtype_size(header.dtype);  // format 2 streams may be float64
  std::vector<uint8_t> out(header.num_elements * item + 1);
  const int decode_status = slicer_decode(data, size, kMaxElements, out.data(), out.size() - 1, 2);
  if ((decode_status == SLICER_OK) != (inspect_status == SLICER_OK)) std::abort();
  if (inspect_status == SLICER_OK && account.total_bytes != size) std::abort();
  // The allocating entry point: the same status, the same bytes, one request of the right size.
  struct Request {
    std::vector<uint8_t> buffer;
    int calls = 0;
  } request;
  const int alloc_status = slicer_decode_alloc(
      data, size, kMaxElements, 2,
      [](void* ctx, const slicer_header*, size_t bytes) -> void* {
        auto* r = static_cast<Request*>(ctx);
        ++r->calls;
        r->buffer.resize(bytes + 1);
        return r->buffer.data();
      },
      &request, nullptr);
  if (alloc_status != decode_status || request.calls > 1) std::abort();
  if (alloc_status == SLICER_OK &&
      (request.buffer.size() != out.size() ||
       std::memcmp(request.buffer.data(), out.data(), out.size() - 1) != 0)) {
    std::abort();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  Exercise(data, size);
  // Copies, so that ASan sees the exact buffer bounds.
  std::vector<uint8_t> exact(data, data + size);
  Exercise(exact.data(), exact.size());
  const uint32_t crc = Crc32(data, size);
  for (int i = 0; i < 4; ++i) exact.push_back(static_cast<uint8_t>(crc >> (8 * i)));
  Exercise(exact.data(), exact.size());
  return 0;
}
