// CRC-32 as zlib.crc32 (ISO-HDLC, reflected 0x04C11DB7, init/xorout 0xFFFFFFFF), §6.2.
#ifndef SLICER_SRC_CRC32_HPP_
#define SLICER_SRC_CRC32_HPP_

#include <cstddef>
#include <cstdint>

namespace slicer::internal {

// Continues a running CRC: Crc32(Crc32(0, a), b) == Crc32(0, a + b).
uint32_t Crc32(uint32_t crc, const uint8_t* data, size_t size);

// The CRC of a + b from crc_a = Crc32(0, a), crc_b = Crc32(0, b) and b's length (zlib's
// crc32_combine: crc_a times x^(8 * length_b) modulo the polynomial, plus crc_b), so parts of a
// message can be checksummed in parallel.
uint32_t Crc32Combine(uint32_t crc_a, uint32_t crc_b, uint64_t length_b);

}  // namespace slicer::internal

#endif  // SLICER_SRC_CRC32_HPP_
