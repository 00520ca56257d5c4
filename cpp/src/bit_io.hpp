// LSB-first bit streams (docs/format.md §1): the first bit written is bit 0 of byte 0.
#ifndef SLICER_SRC_BIT_IO_HPP_
#define SLICER_SRC_BIT_IO_HPP_

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace slicer::internal {

// LSB-first writer into a caller buffer that has at least 8 bytes of slack past the last byte
// written (Flush stores a whole 64-bit word).
class BitWriter {
 public:
  explicit BitWriter(uint8_t* out) : out_(out), begin_(out) {}

  // Adds the n low bits of value (value < 2^n). At most 57 bits may be pending: call Flush()
  // after each field of up to 57 bits.
  void Put(uint64_t value, unsigned n) {
    accumulator_ |= value << filled_;
    filled_ += n;
    bits_written_ += n;
  }

  // Stores the completed bytes; at most 7 bits stay pending.
  void Flush() {
    std::memcpy(out_, &accumulator_, 8);  // little-endian host
    const unsigned bytes = filled_ >> 3;
    out_ += bytes;
    accumulator_ = bytes == 8 ? 0 : accumulator_ >> (8 * bytes);
    filled_ &= 7;
  }

  // `quotient` one bits, then a zero bit.
  void PutUnary(uint64_t quotient) {
    while (quotient >= 32) {
      Put(0xFFFFFFFFu, 32);
      Flush();
      quotient -= 32;
    }
    Put((uint64_t{1} << quotient) - 1, static_cast<unsigned>(quotient) + 1);
    Flush();
  }

  // Pads the last byte with zero bits; returns the bytes used.
  size_t Finish() {
    Flush();
    if (filled_ > 0) {
      *out_++ = static_cast<uint8_t>(accumulator_);
      filled_ = 0;
      accumulator_ = 0;
    }
    return static_cast<size_t>(out_ - begin_);
  }

  uint64_t bits_written() const { return bits_written_; }

 private:
  uint8_t* out_;
  uint8_t* begin_;
  uint64_t accumulator_ = 0;
  unsigned filled_ = 0;
  uint64_t bits_written_ = 0;
};

// Reads bits from a bounded buffer; never touches a byte at or past `size`.
class BitReader {
 public:
  BitReader(const uint8_t* data, size_t size) : data_(data), total_bits_(uint64_t{size} * 8) {}

  // Reads nbits <= 32 bits; returns false (and reads nothing) if that passes the end.
  bool Read(unsigned nbits, uint32_t* value) {
    if (nbits == 0) {
      *value = 0;
      return true;
    }
    if (total_bits_ - position_ < nbits) return false;
    *value = static_cast<uint32_t>(Peek() & ((uint64_t{1} << nbits) - 1));
    position_ += nbits;
    return true;
  }

  // Counts one bits up to the terminating zero; false if the end comes first or the run
  // exceeds `limit` (no valid code has a longer run).
  bool ReadUnary(uint64_t limit, uint64_t* quotient) {
    uint64_t count = 0;
    for (;;) {
      const uint64_t available = total_bits_ - position_;
      if (available == 0) return false;
      const unsigned window = available < 57 ? static_cast<unsigned>(available) : 57u;
      const uint64_t bits = Peek() & ((uint64_t{1} << window) - 1);
      const uint64_t inverted = ~bits & ((uint64_t{1} << window) - 1);
      if (inverted != 0) {
        const unsigned ones = static_cast<unsigned>(__builtin_ctzll(inverted));
        count += ones;
        position_ += ones + 1;
        if (count > limit) return false;
        *quotient = count;
        return true;
      }
      count += window;
      position_ += window;
      if (count > limit) return false;
    }
  }

  uint64_t position() const { return position_; }
  uint64_t total_bits() const { return total_bits_; }
  // Moves to `position` (<= total_bits()), for a caller that read ahead with its own loads.
  void Seek(uint64_t position) { position_ = position; }

 private:
  // Up to 57 bits starting at position_ (bits past the end read as zero).
  uint64_t Peek() const {
    const uint64_t byte = position_ >> 3;
    const uint64_t size = total_bits_ >> 3;
    uint64_t word = 0;
    if (byte + 8 <= size) {
      std::memcpy(&word, data_ + byte, 8);
    } else {
      for (uint64_t i = byte; i < size; ++i) word |= uint64_t{data_[i]} << (8 * (i - byte));
    }
    return word >> (position_ & 7);
  }

  const uint8_t* data_;
  uint64_t total_bits_;
  uint64_t position_ = 0;
};

}  // namespace slicer::internal

#endif  // SLICER_SRC_BIT_IO_HPP_
