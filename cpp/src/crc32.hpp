// CRC-32 as zlib.crc32 (ISO-HDLC, reflected 0x04C11DB7, init/xorout 0xFFFFFFFF), §6.2.
#ifndef SLICER_SRC_CRC32_HPP_
#define SLICER_SRC_CRC32_HPP_

#include <cstddef>
#include <cstdint>

namespace slicer::internal {

// Continues a running CRC: Crc32(Crc32(0, a), b) == Crc32(0, a + b).
uint32_t Crc32(uint32_t crc, const uint8_t* data, size_t size);

}  // namespace slicer::internal

#endif  // SLICER_SRC_CRC32_HPP_
