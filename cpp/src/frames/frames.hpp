// Frames for token streams (docs/format.md §17): an opened context and its per-row coder.
#ifndef SLICER_SRC_FRAMES_FRAMES_HPP_
#define SLICER_SRC_FRAMES_FRAMES_HPP_

#include <cstddef>
#include <cstdint>
#include <vector>

#include "dense/coder.hpp"
#include "dense/dense.hpp"
#include "slicer/slicer.h"

namespace slicer::frames {

constexpr uint8_t kKindContext = 0xF0;
constexpr uint64_t kMaxRow = uint64_t{1} << 18;
constexpr size_t kMinContext = 12;

// Decoder buckets: 2^kBucketBits slots each (see Context::bucket_symbol). 4, 5 and 6 measured
// alike with 16 classes; 5 keeps the one-table decoder as fast as before.
constexpr unsigned kBucketBits = 5;
constexpr unsigned kBucketsPerClass = (1u << 14) >> kBucketBits;
constexpr size_t kCumStride = 424;  // cumulative counts per class (423 symbols + the end)

struct Context {
  int dtype = 0;
  uint32_t ndim = 0;
  int64_t shape[SLICER_MAX_NDIM] = {};
  uint64_t row = 0;  // elements per row (R)
  unsigned states = 1;
  float step = 0;
  double delta = 0;  // Δ0 widened (§12.1, exponent 0)
  double rho = 0;
  unsigned rho_256 = 0;
  int o1 = 0, o2 = 0;
  // A trellis context (§17.4): λ, Q1's offsets, and per table x = 2c + q and symbol the
  // Viterbi's weights λ' · (R(s) + 256 · extra bits) [423 · x + s]; the T classes then have
  // 2T tables, and the per-class vectors below are per table.
  bool trellis = false;
  float lambda = 0;
  int o1_1 = 0, o2_1 = 0;
  std::vector<double> weights;
  uint32_t id = 0;
  size_t bytes = 0;
  unsigned nclass = 1;                        // T: 1, or 2 … 16 with a class map (§18)
  std::vector<uint8_t> cmap;                  // class of each row position (all 0 when T = 1)
  std::vector<uint16_t> sym_base;             // 423 · class of each row position (encoder)
  std::vector<std::vector<unsigned>> tables;  // T tables of 423 count classes
  std::vector<dense::EncSymbol> enc;          // per class, per symbol: [423 · c + s]
  // Decoder tables, per class c: the slots are cut into buckets of 2^kBucketBits; a bucket
  // holds the smallest symbol it meets (capped at 255: one byte), and the decoder steps from
  // there through the class's cumulative counts to the symbol owning the slot. 512 B + 848 B a
  // class at kBucketBits = 5 instead of a 32 KiB slot table: sixteen classes stay in the L1
  // cache (bench/RESULTS.md §10.1).
  // (cum is declared last: the fields the encoder reads keep the offsets they had with one
  // decoder vector here)
  std::vector<uint8_t> bucket_symbol;  // [kBucketsPerClass · c + (slot >> kBucketBits)]
  double value[dense::kNumSymbols];    // reconstruction of symbols without extra bits
  uint8_t nbits_of[dense::kNumSymbols];
  // Encoder scratch (one thread per context at a time).
  std::vector<uint16_t> syms;
  std::vector<double> t;     // |x| / Δ of the row
  std::vector<uint8_t> neg;  // sign of each element
  std::vector<uint8_t> rans, bits;
  std::vector<uint16_t> trace;  // trellis: the Viterbi's trace, magnitudes and states
  std::vector<uint64_t> mags;
  std::vector<uint8_t> tstate;
  std::vector<uint16_t> cum;  // [kCumStride · c + s]: cumulative counts, cum[423] = 2^14

  uint64_t FrameBound() const { return 1 + 4 + (24 + 2 * row) + (51 * row + 7) / 8 + 4; }
};

// §17.3 (§17.4 with params.trellis): context bytes from calibration rows; `classes` = 1 (one
// table) or 2 … 16 (a class map, §18). Throws internal::StatusError on bad input.
void BuildContext(const void* rows, int dtype, uint64_t num_rows, const int64_t* row_shape,
                  uint32_t row_ndim, const slicer_frame_params& params, unsigned classes,
                  std::vector<uint8_t>* out);

// §17.1: full validation; fills ctx (tables built) on success.
slicer_status OpenContext(const uint8_t* data, size_t size, uint64_t max_elements, Context* ctx);

// §17.2. Encode throws internal::StatusError on bad input; Decode returns a status.
size_t EncodeFrame(Context* ctx, const void* row, uint32_t seq, uint8_t* dst);
slicer_status DecodeFrame(const Context& ctx, const uint8_t* frame, size_t size, uint8_t* dst,
                          uint32_t* seq);

}  // namespace slicer::frames

#endif  // SLICER_SRC_FRAMES_FRAMES_HPP_
