// Kernels of format 2, mode 1 "dense" (docs/format.md §10-§14). Decode: one thread block per
// chunk; thread 0 runs the chunk's rANS states (§14) into a symbol and extra-bit-position array,
// then the block reconstructs the chunk's elements in tiles (§12.4). Encode: an element-parallel
// quantizer with a block histogram and the §12.3 sums (mode 2, §19: also the per-position sums
// S_a of §18.2), mode 2's per-class histograms once the host has chosen the class map, mode 1's
// split of the codes into h and low bits (§13.6) once the host has chosen k, then one block per
// chunk that writes the chunk's rANS bytes backwards (each element with its class's table) and
// its bit area (the low-bit plane, then the extra bits). Plain __syncthreads only, so that the
// host emulation (cuda/tests/emulation.hpp) runs this very code.
#ifndef SLICER_CUDA_DENSE_KERNELS_CUH_
#define SLICER_CUDA_DENSE_KERNELS_CUH_

#include <cstdint>

#include "block_primitives.cuh"
#include "device_math.cuh"
#include "format/class_map.hpp"
#include "format/dense_spec.hpp"

namespace slicer::cuda::dense_gpu {

// The per-element arithmetic of the format, shared with the C++ codec (format/dense_spec.hpp).
using format::dense::BinBase;
using format::dense::BinOf;
using format::dense::GroupIsDense;
using format::dense::kGroupRaw;
using format::dense::kGroupZero;
using format::dense::kMaxMag;
using format::dense::kNumSymbols;
using format::dense::kProbBits;
using format::dense::kProbScale;
using format::dense::kRansL;
using format::dense::StatesFor;
using format::dense::SymbolNegative;
using format::dense::SymbolOf;
constexpr uint16_t kNotCoded = 0xFFFF;

#ifdef SLICER_CUDA_EMULATION
inline unsigned long long atomicMin(unsigned long long* p, unsigned long long v) {
  const unsigned long long old = *p;
  if (v < old) *p = v;
  return old;
}
#endif

// Group geometry of §12.1 (run = 0: one group). `within` is the element's index in its group.
struct GroupGeometry {
  uint64_t run, modulo, group_size;
  SLICER_HD uint64_t GroupOf(uint64_t i) const { return run == 0 ? 0 : (i / run) % modulo; }
  SLICER_HD uint64_t Within(uint64_t i) const {
    return run == 0 ? i : (i / (run * modulo)) * run + i % run;
  }
};

// One chunk of the stream (offsets from the start of the payload area).
struct DenseChunk {
  uint64_t begin, end;   // elements [begin, end)
  uint64_t coded;        // elements of dense groups in it
  uint64_t first_coded;  // coded elements of the chunks before
  uint64_t offset, rans_len, bits_len;
};

struct DecodeArgs {
  const uint8_t* payload;
  const DenseChunk* chunks;
  const uint8_t* kinds;  // group table, or nullptr (every group dense, e = 0)
  const double* steps;   // per group (with a table)
  const uint64_t* raw_before;
  const uint8_t* raw;  // raw values
  GroupGeometry geo;
  const uint16_t* lut;   // slot -> symbol (2^14; mode 2: 2^14 per class)
  const uint32_t* freq;  // mode 2: 423 per class
  const uint32_t* cum;   // mode 2: 424 per class
  unsigned nsym;
  unsigned nclass;                  // 1 (mode 1) or 2 … 16 (mode 2, §19)
  const uint8_t* class_map;         // mode 2: class of each position
  uint64_t class_len, class_inner;  // mode 2: position of element i = (i / inner) % len
  double base_step, off1, off2;
  // Mode 3 (§21): trellis states per lane; tables per context 2c + q in lut / freq / cum; the
  // four offsets o1_0, o2_0, o1_1, o2_1 / 256; syms carries the element's quantizer in bit 15.
  unsigned trellis;
  double toff[4];
  // Mode 1's low-bit plane (§13.6): k, and the symbols are h's; element e of a chunk has its
  // low bits at bit e·k of the chunk's bit area, the extra bits start after the plane.
  unsigned low_bits;
  unsigned item;
  uint16_t* syms;    // per coded element
  uint32_t* bitpos;  // per coded element: its extra bits' position in the chunk's area
  uint32_t* status;  // 0 or SLICER_ERR_CORRUPT
};

template <typename T>
__device__ void StoreValue(T* dst, uint64_t i, double v) {
  dst[i] = FromDouble<T>(v);
}
template <>
__device__ void StoreValue<double>(double* dst, uint64_t i, double v) {
  dst[i] = v;
}

// Mode 3 (§21.1): next state T[s][odd], T = [[0, 2], [2, 0], [1, 3], [3, 1]].
__device__ inline uint8_t TrellisNext(unsigned s, unsigned odd) {
  return static_cast<uint8_t>((s >> 1) + 2 * (odd ^ (s & 1)));
}

// Phase 1 of a chunk (one thread): the rANS states of §14 and the extra-bit reader of the C++
// decoder, whose acceptance (all bytes consumed, no set bit left) it reproduces exactly.
//
// Mode 2 (a.nclass > 1): the tables of each element's class, from global memory; the walk over
// the chunk's elements (skipping those of zero and raw groups) gives each coded element's
// position.
__device__ bool DecodeChunkSymbols(const DecodeArgs& a, const DenseChunk& c, const uint16_t* lut,
                                   const uint32_t* freq, const uint32_t* cum) {
  if (c.coded == 0) return true;
  const bool classes = a.nclass > 1;
  uint64_t at = c.begin;  // mode 2: flat index of the next coded element
  const uint8_t* p = a.payload + c.offset;
  const uint8_t* const end = p + c.rans_len;
  const unsigned k = StatesFor(c.coded);
  uint32_t x[4];
  for (unsigned q = 0; q < k; ++q) {
    x[q] = uint32_t{p[0]} | uint32_t{p[1]} << 8 | uint32_t{p[2]} << 16 | uint32_t{p[3]} << 24;
    p += 4;
    if (x[q] < kRansL || x[q] >= (kRansL << 8)) return false;
  }
  // The bit reader's (pos, cnt) as in the C++ BitSource: bulk refills of up to 7 bytes. §13.6:
  // the plane's coded·k bits are read already (they fit: the C++ parser checked it).
  uint64_t total = c.coded * a.low_bits, pos = (total + 7) / 8;
  unsigned cnt = static_cast<unsigned>(8 * pos - total);
  const uint64_t len = c.bits_len;
  uint8_t ts[4] = {0, 0, 0, 0};  // mode 3: each lane's trellis state (§21.4)
  for (uint64_t e = 0; e < c.coded; ++e) {
    uint32_t st = x[e % k];
    const uint32_t slot = st & (kProbScale - 1);
    unsigned s;
    unsigned q = 0;  // mode 3: the quantizer of the element's state
    if (a.trellis) {
      unsigned cls = 0;
      if (classes) {
        while (a.kinds != nullptr && !GroupIsDense(a.kinds[a.geo.GroupOf(at)])) ++at;
        cls = a.class_map[(at / a.class_inner) % a.class_len];
        ++at;
      }
      q = ts[e % k] >> 1;
      const unsigned ctx = 2 * cls + q;
      s = a.lut[ctx * kProbScale + slot];
      const uint32_t f = a.freq[ctx * kNumSymbols + s];
      if (f == 0) return false;  // the context's table is empty
      st = f * (st >> kProbBits) + slot - a.cum[ctx * (kNumSymbols + 1) + s];
    } else if (classes) {
      while (a.kinds != nullptr && !GroupIsDense(a.kinds[a.geo.GroupOf(at)])) ++at;
      const unsigned cls = a.class_map[(at / a.class_inner) % a.class_len];
      ++at;
      s = a.lut[cls * kProbScale + slot];
      st = a.freq[cls * kNumSymbols + s] * (st >> kProbBits) + slot -
           a.cum[cls * (kNumSymbols + 1) + s];
    } else {
      s = lut[slot];
      st = freq[s] * (st >> kProbBits) + slot - cum[s];
    }
    while (st < kRansL) {
      if (p >= end) return false;
      st = (st << 8) | *p++;
    }
    x[e % k] = st;
    a.syms[c.first_coded + e] = static_cast<uint16_t>(s | q << 15);
    a.bitpos[c.first_coded + e] = static_cast<uint32_t>(total);
    uint64_t base;
    unsigned nb;
    BinBase(BinOf(s), &base, &nb);
    const uint64_t first_bit = total;
    if (nb != 0) {
      if (cnt < nb && pos + 8 <= len) {
        const unsigned take = (63 - cnt) / 8;
        pos += take;
        cnt += 8 * take;
      }
      while (cnt < nb) {
        if (pos >= len) return false;
        ++pos;
        cnt += 8;
      }
      cnt -= nb;
      total += nb;
    }
    if (a.trellis) {  // next state from the magnitude's parity: base (even for bins >= 8) + extra
      const unsigned odd =
          nb == 0 ? static_cast<unsigned>(base & 1) : (end[first_bit >> 3] >> (first_bit & 7)) & 1u;
      ts[e % k] = TrellisNext(ts[e % k], odd);
    }
  }
  if (p != end) return false;
  for (unsigned q = 0; q < k; ++q)
    if (x[q] != kRansL) return false;
  if (pos != len) return false;
  // The bits read but not used (total … 8·pos) must all be zero.
  const uint8_t* bits = end;
  for (uint64_t bit = total; bit < 8 * pos; ++bit) {
    if ((bits[bit >> 3] >> (bit & 7)) & 1u) return false;
  }
  return true;
}

// Reads `nb` ≤ 51 bits LSB-first at bit position `at` of `bits`.
__device__ uint64_t ReadBits(const uint8_t* bits, uint64_t at, unsigned nb) {
  uint64_t v = 0;
  for (unsigned got = 0; got < nb;) {
    const uint64_t bit = at + got;
    const unsigned shift = static_cast<unsigned>(bit & 7);
    const unsigned take = 8 - shift < nb - got ? 8 - shift : nb - got;
    const uint64_t byte = (bits[bit >> 3] >> shift) & ((1u << take) - 1);
    v |= byte << got;
    got += take;
  }
  return v;
}

template <typename T>
__global__ void DenseDecodeKernel(DecodeArgs a, T* dst) {
  __shared__ uint16_t lut[kProbScale];
  __shared__ uint32_t freq[kNumSymbols];
  __shared__ uint32_t cum[kNumSymbols];
  __shared__ uint64_t scan[kThreads];
  __shared__ uint32_t ok;
  const DenseChunk c = a.chunks[blockIdx.x];
  // modes 2 and 3 read their class / context tables from global memory
  const bool one_table = a.nclass <= 1 && !a.trellis;
  for (unsigned s = threadIdx.x; s < kProbScale; s += kThreads)
    lut[s] = a.nsym && one_table ? a.lut[s] : 0;
  for (unsigned s = threadIdx.x; s < a.nsym && one_table; s += kThreads) {
    freq[s] = a.freq[s];
    cum[s] = a.cum[s];
  }
  if (threadIdx.x == 0) ok = 1;
  __syncthreads();
  if (threadIdx.x == 0 && !DecodeChunkSymbols(a, c, lut, freq, cum)) ok = 0;
  __syncthreads();
  if (!ok) {
    if (threadIdx.x == 0) atomicMax(a.status, SLICER_ERR_CORRUPT);
    return;
  }
  const uint8_t* bits = a.payload + c.offset + c.rans_len;
  uint64_t coded_before = c.first_coded;
  bool bad = false;
  for (uint64_t t0 = c.begin; t0 < c.end; t0 += kThreads) {
    const uint64_t i = t0 + threadIdx.x;
    const bool live = i < c.end;
    const uint64_t g = live ? a.geo.GroupOf(i) : 0;
    const uint8_t kind = a.kinds == nullptr ? 0 : (live ? a.kinds[g] : kGroupZero);
    const bool dense = live && GroupIsDense(kind);
    uint64_t tile_total;
    const uint64_t idx =
        BlockExclusiveScan<uint64_t>(dense ? 1 : 0, coded_before, SumOp{}, scan, &tile_total);
    coded_before += tile_total;
    if (!live) continue;
    if (dense) {
      const double delta = a.kinds == nullptr ? a.base_step : a.steps[g];
      const unsigned s = a.syms[idx] & 0x7FFF, q = a.syms[idx] >> 15;
      uint64_t base;
      unsigned nb;
      BinBase(BinOf(s), &base, &nb);
      const uint64_t m = nb == 0 ? base : base + ReadBits(bits, a.bitpos[idx], nb);
      double v;
      if (a.trellis) {  // §21.2: ±((2m − q) + o/256)·Δ, m ≤ 2^52
        if (m > kMaxMag / 2) bad = true;
        v = m == 0
                ? 0.0
                : Mul(Add(static_cast<double>(2 * m - q), a.toff[2 * q + (m == 1 ? 0 : 1)]), delta);
      } else if (a.low_bits != 0) {  // §13.6: q = h·2^k + l, the value of q by §12.4
        const unsigned k = a.low_bits;
        const uint64_t low = ReadBits(bits, (idx - c.first_coded) * k, k);
        uint64_t mq = 0;
        bool negative = false;
        if (m > (kMaxMag >> k)) {
          bad = true;
        } else {
          const int64_t h = SymbolNegative(s) ? -static_cast<int64_t>(m) : static_cast<int64_t>(m);
          const int64_t q = h * (int64_t{1} << k) + static_cast<int64_t>(low);
          negative = q < 0;
          mq = negative ? static_cast<uint64_t>(-q) : static_cast<uint64_t>(q);
          if (mq > kMaxMag) bad = true;
        }
        v = mq == 0 ? 0.0 : Mul(Add(static_cast<double>(mq), mq == 1 ? a.off1 : a.off2), delta);
        if (negative) v = -v;
      } else {
        if (m > kMaxMag) bad = true;
        v = m == 0 ? 0.0 : Mul(Add(static_cast<double>(m), m == 1 ? a.off1 : a.off2), delta);
      }
      if (SymbolNegative(s) && a.low_bits == 0) v = -v;
      StoreValue<T>(dst, i, v);
    } else if (kind == kGroupZero) {
      StoreValue<T>(dst, i, 0.0);
    } else {
      const uint8_t* from = a.raw + (a.raw_before[g] * a.geo.group_size + a.geo.Within(i)) * a.item;
      uint8_t* to = reinterpret_cast<uint8_t*>(dst) + i * a.item;
      for (unsigned q = 0; q < a.item; ++q) to[q] = from[q];
    }
  }
  if (bad) atomicMax(a.status, SLICER_ERR_CORRUPT);
}

// ---- Encode -------------------------------------------------------------------------------

// Mode 2 positions (§19.1): element i is at position (i / inner) % len.
struct ClassPositions {
  uint64_t len, inner;
  SLICER_HD uint64_t Of(uint64_t i) const { return (i / inner) % len; }
};

using format::kClassStatClamp;  // §18.2: S_a sums min(m, 2^16)
using format::kMaxClasses;

struct EncodeArgs {
  uint64_t n;
  const uint8_t* kinds;  // or nullptr
  const double* steps;
  GroupGeometry geo;
  double base_step, rho;
  uint16_t* syms;             // per element (kNotCoded outside dense groups)
  uint64_t* extras;           // per element: (extra << 6) | nbits
  unsigned long long* hist;   // kNumSymbols counts
  unsigned long long* sums;   // s1, s2 (two's complement), c1, c2
  unsigned long long* error;  // min over (element << 8 | status)
  // Mode 2 (§18.2): S_a = Σ min(m, 2^16) per position a (len entries); nullptr in mode 1.
  unsigned long long* class_sums;
  ClassPositions positions;
};

template <typename T>
__device__ double LoadValue(const T* data, uint64_t i) {
  return static_cast<double>(ToFloat<T>(data[i]));
}
template <>
__device__ double LoadValue<double>(const double* data, uint64_t i) {
  return data[i];
}

__device__ bool IsFiniteDouble(double v) { return v - v == 0.0; }

// floor of a double in (-2^62, 2^62) as int64 (the C++ FloorInt).
__device__ int64_t FloorToInt(double v) {
  const int64_t t = static_cast<int64_t>(v);
  return t - (static_cast<double>(t) > v);
}

// §11, §12.2, §12.3 per element, one thread each.
//
// Mode 2 adds each coded element's min(m, 2^16) to S_a of its position a. The block's elements
// are consecutive, so their positions come in runs (one element each along the last axis, runs
// of `inner` along axis 1): a block scan of the statistics, then the last element of each run
// adds the run's inclusive prefix and the first subtracts its exclusive prefix (modulo 2^64, so
// every S_a is exact): one global atomic per run and end instead of one per element.
template <typename T>
__global__ void DenseQuantizeKernel(EncodeArgs a, const T* data) {
  __shared__ unsigned hist[kNumSymbols];
  __shared__ unsigned long long sums[4];
  __shared__ unsigned long long scan[kThreads];
  __shared__ uint64_t pos_of[kThreads];
  for (unsigned s = threadIdx.x; s < kNumSymbols; s += kThreads) hist[s] = 0;
  if (threadIdx.x < 4) sums[threadIdx.x] = 0;
  __syncthreads();
  const uint64_t i = uint64_t{blockIdx.x} * kThreads + threadIdx.x;
  unsigned long long stat = 0;  // mode 2: min(m, 2^16) of a coded element
  if (i < a.n) {
    const uint64_t g = a.geo.GroupOf(i);
    const uint8_t kind = a.kinds == nullptr ? 0 : a.kinds[g];
    const double x = LoadValue<T>(data, i);
    uint16_t sym = kNotCoded;
    uint64_t extra = 0;
    if (!GroupIsDense(kind)) {
      if (!IsFiniteDouble(x)) atomicMin(a.error, (i << 8) | SLICER_ERR_NONFINITE_INPUT);
    } else {
      const double delta = a.kinds == nullptr ? a.base_step : a.steps[g];
      const double t = Div(x < 0 ? -x : x, delta);
      const double u = Add(t, a.rho);
      if (!(u <= 0x1p53)) {
        atomicMin(a.error, (i << 8) | (IsFiniteDouble(x) ? SLICER_ERR_INVALID_ARGUMENT
                                                         : SLICER_ERR_NONFINITE_INPUT));
        sym = 0;
      } else {
        const uint64_t m = static_cast<uint64_t>(u);
        unsigned nbits;
        uint64_t bits_value;
        sym = static_cast<uint16_t>(SymbolOf(m, x < 0, &nbits, &bits_value));
        extra = nbits == 0 ? 0 : (bits_value << 6) | nbits;
        if (m > 0) {
          const int64_t d = FloorToInt(Mul(Sub(t, static_cast<double>(m)), 0x1p20));
          atomicAdd(&sums[m == 1 ? 0 : 1], static_cast<unsigned long long>(d));
          atomicAdd(&sums[m == 1 ? 2 : 3], 1ull);
        }
        stat = m < kClassStatClamp ? m : kClassStatClamp;
        atomicAdd(&hist[sym], 1u);
      }
    }
    a.syms[i] = sym;
    a.extras[i] = extra;
  }
  if (a.class_sums != nullptr) {  // the same for every thread of the launch
    const bool live = i < a.n;
    const uint64_t pos = live ? a.positions.Of(i) : 0;
    pos_of[threadIdx.x] = pos;
    const unsigned long long incl = BlockInclusiveScan(stat, SumOp{}, scan);  // syncs
    if (live) {
      const bool head = threadIdx.x == 0 || pos_of[threadIdx.x - 1] != pos;
      const bool tail =
          threadIdx.x == kThreads - 1 || i + 1 == a.n || pos_of[threadIdx.x + 1] != pos;
      const unsigned long long add = (tail ? incl : 0ull) - (head ? incl - stat : 0ull);
      if (add != 0) atomicAdd(&a.class_sums[pos], add);
    }
  }
  __syncthreads();
  for (unsigned s = threadIdx.x; s < kNumSymbols; s += kThreads)
    if (hist[s]) atomicAdd(&a.hist[s], static_cast<unsigned long long>(hist[s]));
  if (threadIdx.x < 4 && sums[threadIdx.x]) atomicAdd(&a.sums[threadIdx.x], sums[threadIdx.x]);
}

// Mode 2 (§19.4): the symbol counts of each class's coded elements, nclass × kNumSymbols, once
// the host has chosen the class map. A block counts kClassHistItems · kThreads consecutive
// elements in shared memory (up to 16 tables) and adds its non-zero counts to the totals.
constexpr unsigned kClassHistItems = 16;

struct ClassHistArgs {
  uint64_t n;
  const uint16_t* syms;  // per element (kNotCoded outside dense groups)
  const uint8_t* class_map;
  ClassPositions positions;
  unsigned nclass;
  unsigned long long* hist;  // nclass × kNumSymbols, zeroed
};

__global__ void DenseClassHistKernel(ClassHistArgs a) {
  __shared__ unsigned hist[kMaxClasses * kNumSymbols];
  const unsigned size = a.nclass * kNumSymbols;
  for (unsigned s = threadIdx.x; s < size; s += kThreads) hist[s] = 0;
  __syncthreads();
  const uint64_t first = uint64_t{blockIdx.x} * kThreads * kClassHistItems;
  for (unsigned k = 0; k < kClassHistItems; ++k) {
    const uint64_t i = first + uint64_t{k} * kThreads + threadIdx.x;
    if (i >= a.n) break;
    const unsigned s = a.syms[i];
    if (s != kNotCoded) atomicAdd(&hist[a.class_map[a.positions.Of(i)] * kNumSymbols + s], 1u);
  }
  __syncthreads();
  for (unsigned s = threadIdx.x; s < size; s += kThreads)
    if (hist[s]) atomicAdd(&a.hist[s], static_cast<unsigned long long>(hist[s]));
}

// Mode 1's low-bit plane (§13.6), once the host has chosen k ≥ 1: every coded element's code q
// (its magnitude from the symbol and extra bits of pass 1, the sign from the symbol) split into
// h = q >> k (floor) and l = q − h·2^k; the element's symbol and extra bits become h's (§11),
// l goes to `lows`, and `hist` (zeroed) counts h's symbols.
struct LowBitsArgs {
  uint64_t n;
  uint16_t* syms;    // per element (kNotCoded outside dense groups)
  uint64_t* extras;  // per element: (extra << 6) | nbits
  uint16_t* lows;    // per element: l (coded elements)
  unsigned k;        // 1 … 15
  unsigned long long* hist;
};

__global__ void DenseLowBitsKernel(LowBitsArgs a) {
  __shared__ unsigned hist[kNumSymbols];
  for (unsigned s = threadIdx.x; s < kNumSymbols; s += kThreads) hist[s] = 0;
  __syncthreads();
  const uint64_t i = uint64_t{blockIdx.x} * kThreads + threadIdx.x;
  if (i < a.n && a.syms[i] != kNotCoded) {
    const unsigned s = a.syms[i];
    uint64_t base;
    unsigned nb;
    BinBase(BinOf(s), &base, &nb);
    const uint64_t m = base + (a.extras[i] >> 6);  // |q| ≤ 2^53
    const int64_t q = SymbolNegative(s) ? -static_cast<int64_t>(m) : static_cast<int64_t>(m);
    const int64_t h = q >> a.k;  // floor(q / 2^k): an arithmetic shift
    const uint64_t mh = h < 0 ? static_cast<uint64_t>(-h) : static_cast<uint64_t>(h);
    unsigned nbits;
    uint64_t bits_value;
    const unsigned sym = SymbolOf(mh, h < 0, &nbits, &bits_value);
    a.syms[i] = static_cast<uint16_t>(sym);
    a.extras[i] = nbits == 0 ? 0 : (bits_value << 6) | nbits;
    a.lows[i] = static_cast<uint16_t>(static_cast<uint64_t>(q) & ((uint64_t{1} << a.k) - 1));
    atomicAdd(&hist[sym], 1u);
  }
  __syncthreads();
  for (unsigned s = threadIdx.x; s < kNumSymbols; s += kThreads)
    if (hist[s]) atomicAdd(&a.hist[s], static_cast<unsigned long long>(hist[s]));
}

struct ChunkEncodeArgs {
  const DenseChunk* chunks;  // begin, end, coded
  const uint16_t* syms;
  const uint64_t* extras;
  const uint32_t* freq;  // mode 2: kNumSymbols per class
  const uint32_t* cum;   // mode 2: kNumSymbols + 1 per class
  unsigned nsym;         // mode 1
  unsigned nclass;       // 1 (mode 1) or 2 … 16 (mode 2)
  const uint8_t* class_map;
  ClassPositions positions;
  unsigned low_bits;     // mode 1's k (§13.6): the plane of `lows` before the extra bits
  const uint16_t* lows;  // per element (low_bits > 0)
  uint8_t* scratch;      // per chunk: rans_cap bytes then bits_cap bytes
  uint64_t chunk_elems;  // 2^chunk_log2
  uint64_t* out;         // per chunk: rans start (in its region), rans_len, bits_len
};

// A chunk's scratch region: rANS bytes (written backwards from the end of their part), then
// its extra bits; both parts are multiples of 4 bytes so the bits can be OR-ed in 32-bit words.
SLICER_HD uint64_t RansCap(uint64_t elems) { return (24 + 2 * elems + 3) / 4 * 4; }
SLICER_HD uint64_t BitsCap(uint64_t elems) { return ((51 * elems + 7) / 8 + 8 + 3) / 4 * 4; }

// ORs the `len` ≤ 51 low bits of v into a zeroed LSB-first bit area (§1) at bit `at`.
__device__ inline void OrBits(uint32_t* words, uint64_t at, uint64_t v, unsigned len) {
  while (len > 0) {
    const unsigned shift = static_cast<unsigned>(at & 31);
    const unsigned take = 32 - shift < len ? 32 - shift : len;
    const uint64_t part = (v & ((uint64_t{1} << take) - 1)) << shift;
    atomicOr(&words[at >> 5], static_cast<uint32_t>(part));
    v >>= take;
    at += take;
    len -= take;
  }
}

// One block per chunk: the block writes the chunk's bit area (mode 1's low-bit plane, §13.6, then
// the extra bits; positions from a block scan, bits OR-ed into 32-bit words), then thread 0
// codes the chunk backwards (§14); in mode 2 each element with the (freq, cum) of its
// position's class (§19.3), read from global memory.
__global__ void DenseChunkEncodeKernel(ChunkEncodeArgs a) {
  __shared__ uint32_t freq[kNumSymbols];
  __shared__ uint32_t cum[kNumSymbols];
  __shared__ uint64_t scan[kThreads];
  const bool classes = a.nclass > 1;
  for (unsigned s = threadIdx.x; s < a.nsym && !classes; s += kThreads) {
    freq[s] = a.freq[s];
    cum[s] = a.cum[s];
  }
  __syncthreads();
  const uint64_t j = blockIdx.x;
  const DenseChunk c = a.chunks[j];
  const uint64_t rcap = RansCap(a.chunk_elems);
  uint8_t* region = a.scratch + j * (rcap + BitsCap(a.chunk_elems));
  uint64_t* out = a.out + 3 * j;
  // The bit area (§13.6, §14), LSB-first (§1), OR-ed into the zeroed region: with k = low_bits
  // > 0 the plane first (coded element e's l at bit e·k), then from bit n_j·k the extra bits in
  // flat order. One block scan gives both positions: the extra bits' count in the low 40 bits
  // (≤ 51·2^24), the coded elements' count above them.
  auto* words = reinterpret_cast<uint32_t*>(region + rcap);
  constexpr unsigned kCountShift = 40;
  constexpr uint64_t kBitsMask = (uint64_t{1} << kCountShift) - 1;
  const unsigned k = a.low_bits;
  const uint64_t plane = c.coded * k;
  uint64_t before = 0;
  for (uint64_t t0 = c.begin; t0 < c.end && c.coded > 0; t0 += kThreads) {
    const uint64_t i = t0 + threadIdx.x;
    const bool coded = i < c.end && a.syms[i] != kNotCoded;
    const uint64_t ex = coded ? a.extras[i] : 0;
    const uint64_t key = (ex & 63) | (coded ? uint64_t{1} << kCountShift : 0);
    uint64_t tile_total;
    const uint64_t at = BlockExclusiveScan<uint64_t>(key, before, SumOp{}, scan, &tile_total);
    before += tile_total;
    if (coded && k != 0) OrBits(words, (at >> kCountShift) * k, a.lows[i], k);
    OrBits(words, plane + (at & kBitsMask), ex >> 6, static_cast<unsigned>(ex & 63));
  }
  const uint64_t area_bits = plane + (before & kBitsMask);
  if (threadIdx.x != 0) return;
  if (c.coded == 0) {
    out[0] = 0;
    out[1] = 0;
    out[2] = 0;
    return;
  }
  uint8_t* ptr = region + rcap;
  const unsigned lanes = StatesFor(c.coded);
  uint32_t x[4] = {kRansL, kRansL, kRansL, kRansL};
  uint64_t e = c.coded;
  // Mode 2: the position of element i, walked backwards from the chunk's last element.
  uint64_t pos = 0, within = 0;
  if (classes) {
    pos = a.positions.Of(c.end - 1);
    within = (c.end - 1) % a.positions.inner;
  }
  for (uint64_t i = c.end; i-- > c.begin;) {
    const unsigned s = a.syms[i];
    const uint32_t* f_of = freq;
    const uint32_t* cum_of = cum;
    if (classes) {
      const unsigned cls = a.class_map[pos];
      f_of = a.freq + cls * kNumSymbols;
      cum_of = a.cum + cls * (kNumSymbols + 1);
      if (within-- == 0) {
        within = a.positions.inner - 1;
        pos = pos == 0 ? a.positions.len - 1 : pos - 1;
      }
    }
    if (s == kNotCoded) continue;
    --e;
    uint32_t v = x[e % lanes];
    const uint32_t f = f_of[s];
    const uint32_t x_max = ((kRansL >> kProbBits) << 8) * f;
    while (v >= x_max) {
      *--ptr = static_cast<uint8_t>(v);
      v >>= 8;
    }
    x[e % lanes] = ((v / f) << kProbBits) + (v % f) + cum_of[s];
  }
  for (unsigned q = lanes; q-- > 0;) {
    ptr -= 4;
    ptr[0] = static_cast<uint8_t>(x[q]);
    ptr[1] = static_cast<uint8_t>(x[q] >> 8);
    ptr[2] = static_cast<uint8_t>(x[q] >> 16);
    ptr[3] = static_cast<uint8_t>(x[q] >> 24);
  }
  out[0] = static_cast<uint64_t>(ptr - region);
  out[1] = static_cast<uint64_t>(region + rcap - ptr);
  out[2] = (area_bits + 7) / 8;
}

// Packs the chunks' rANS bytes and extra bits back to back at their output offsets (one block
// per chunk): the stream's payload in one buffer for one device-to-host copy.
__global__ void DensePackKernel(const uint8_t* scratch, uint64_t region_elems, const uint64_t* out,
                                const uint64_t* offsets, uint8_t* dst) {
  const uint64_t j = blockIdx.x;
  const uint64_t rcap = RansCap(region_elems);
  const uint8_t* region = scratch + j * (rcap + BitsCap(region_elems));
  const uint64_t start = out[3 * j], rans_len = out[3 * j + 1], bits_len = out[3 * j + 2];
  uint8_t* to = dst + offsets[j];
  for (uint64_t q = threadIdx.x; q < rans_len; q += kThreads) to[q] = region[start + q];
  for (uint64_t q = threadIdx.x; q < bits_len; q += kThreads) to[rans_len + q] = region[rcap + q];
}

}  // namespace slicer::cuda::dense_gpu

#endif  // SLICER_CUDA_DENSE_KERNELS_CUH_
