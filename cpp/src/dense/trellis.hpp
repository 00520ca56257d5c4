// Format 2, mode 3: dense with trellis-coded quantization (docs/format.md §21). The encoder is
// §21.6 (byte-identical to tests/reference_tcq.py), the decoder §21.4; both reuse the dense
// mode's groups, class maps, symbols, tables and rANS (dense.hpp, coder.hpp, format/).
#ifndef SLICER_SRC_DENSE_TRELLIS_HPP_
#define SLICER_SRC_DENSE_TRELLIS_HPP_

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "slicer/slicer.h"

namespace slicer::format {
struct DenseBody;
}  // namespace slicer::format

namespace slicer::dense::trellis {

constexpr uint8_t kModeTrellis = 3;
constexpr uint64_t kParamsLen = 12;
constexpr unsigned kPasses = 2;                  // §21.6 7.
constexpr int32_t kUnseenRate = 4096;            // 16 bits in 1/256 bit (§21.6 4.)
constexpr uint64_t kMaxMag = uint64_t{1} << 52;  // §21.2
constexpr double kMaxT = 0x1p52;                 // §21.6 1.

// The state machine (§21.1): next = kNext[s][m & 1]; quantizer(s) = s >> 1.
constexpr uint8_t kNext[4][2] = {{0, 2}, {2, 0}, {1, 3}, {3, 1}};

// The candidate `a` of quantizer q for t = |x| / Δ (§21.6 3.), each operation rounded once.
inline uint64_t Nearest(double t, unsigned q) {
  if (q == 0) return static_cast<uint64_t>(std::floor(t * 0.5 + 0.5));
  const double a = std::floor((t + 1.0) * 0.5 + 0.5);
  return a < 1.0 ? 1 : static_cast<uint64_t>(a);
}

// Reconstruction in units of Δ without offset (§21.2): 2m − q, 0 for m = 0.
inline double Recon(uint64_t m, unsigned q) {
  return m == 0 ? 0.0 : static_cast<double>(2 * m - q);
}

// §21.2: the value of magnitude m (sign `negative`) coded with quantizer q; off[2q + (m ≥ 2)]
// are the offsets / 256. ×(−1) is exact and m = 0 selects +0 (no branch on the data).
inline double Reconstruct(uint64_t m, unsigned q, bool negative, const double* off, double delta) {
  const double mag = static_cast<double>(static_cast<int64_t>(2 * m) - q);
  const double v = ((mag + off[2 * q + (m != 1 ? 1 : 0)]) * delta) * (negative ? -1.0 : 1.0);
  return m != 0 ? v : 0.0;
}

// §21.6 4.: the rate in 1/256 bit of a symbol of frequency f ≥ 1; 256 · the extra bits of each
// symbol (§11) into extra_rate[0 … 422]; the rates of a table of exact counts (kUnseenRate for
// symbols it does not hold).
int32_t RateOfFreq(uint32_t f);
void ExtraRates(int32_t* extra_rate);
void MakeRates(const uint64_t* counts, int32_t* rates);

// The elements a Viterbi runs over (§21.6 5.-6.): t = |x| / Δ, sign, class, one each.
struct ChainInput {
  const double* t;
  const uint8_t* neg;
  const uint8_t* cls;
};

// The Viterbi of §21.6 5.-6. over the `states` chains of elements [first, first + count):
// chain l holds elements first + l, first + l + states, …, each starting in state 0 and ending
// in the first state of least cost. `weights`: λ' · (R(s) + 256 · extra bits of s) per
// context x = 2c + q and symbol, [x · 423 + s]. `trace` is scratch of first + count entries;
// writes each element's magnitude and the state it is coded in. The one Viterbi of mode 3
// (§21) and of trellis frames (§17.4).
void RunChains(const ChainInput& c, uint64_t first, uint64_t count, unsigned states,
               const double* weights, uint16_t* trace, uint64_t* m_out, uint8_t* s_out);

// Trellis-specific parameter checks (the rest is CheckParams').
slicer_status CheckParams(const slicer_dense_params* params);

// Throws internal::StatusError on bad input; sse as EncodeDense.
void Encode(const void* data, int dtype, const int64_t* shape, uint32_t ndim,
            const slicer_dense_params& params, std::vector<uint8_t>* stream, double* sse);

// True when the stream's container and common header are well formed and its mode is 3 (the
// caller then parses / decodes it with the functions below; otherwise with modes 1-2's).
bool IsTrellisStream(const uint8_t* data, size_t size, uint64_t max_elements);

// As ParseDense / DecodeDense for a mode-3 stream (body: as ParseDense's, may be nullptr).
slicer_status Parse(const uint8_t* data, size_t size, uint64_t max_elements,
                    slicer_dense_info* info, format::DenseBody* body = nullptr);
slicer_status Decode(const uint8_t* data, size_t size, uint64_t max_elements, void* dst,
                     size_t dst_bytes, unsigned threads, slicer_dense_info* info);

}  // namespace slicer::dense::trellis

#endif  // SLICER_SRC_DENSE_TRELLIS_HPP_
