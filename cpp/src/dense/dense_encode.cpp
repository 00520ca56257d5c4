// Format 2 dense encoder (docs/format.md §10-§14); byte-identical to tests/reference_dense.py.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <thread>
#include <vector>

#include "codec.hpp"
#include "crc32.hpp"
#include "dense/coder.hpp"
#include "dense/dense.hpp"
#include "dense/dense_internal.hpp"
#include "float_bits.hpp"
#include "varint.hpp"

namespace slicer::dense {
namespace {

using internal::StatusError;

void Put(uint64_t v, std::vector<uint8_t>* out) {
  uint8_t buf[10];
  const size_t len = internal::PutVarint(v, buf);
  out->insert(out->end(), buf, buf + len);
}

// The input element i widened to binary64.
struct Reader {
  const uint8_t* data;
  int dtype;
  // Elements [i, i + cnt) widened to binary64 (one dtype switch per block).
  void Block(uint64_t i, unsigned cnt, double* out) const {
    switch (dtype) {
      case SLICER_FLOAT64:
        std::memcpy(out, data + 8 * i, 8 * cnt);
        break;
      case SLICER_FLOAT32: {
        float tmp[256];
        std::memcpy(tmp, data + 4 * i, 4 * cnt);
        for (unsigned k = 0; k < cnt; ++k) out[k] = tmp[k];
        break;
      }
      default:
        for (unsigned k = 0; k < cnt; ++k) out[k] = (*this)(i + k);
    }
  }
  double operator()(uint64_t i) const { return LoadElement(dtype, data, i); }
};

struct ChunkOut {
  std::vector<uint8_t> rans;  // [rans_begin, size) holds the bytes
  size_t rans_begin = 0;
  std::vector<uint8_t> bits;
};

// rANS (§14) over syms[0, n) written backwards into out->rans.
void EncodeRans(const uint16_t* syms, uint64_t n, const std::vector<EncSymbol>& table,
                ChunkOut* out) {
  const unsigned k = StatesFor(n);
  out->rans.resize(24 + 2 * n);
  uint8_t* const end = out->rans.data() + out->rans.size();
  uint8_t* ptr = end;
  uint32_t x[4] = {kRansL, kRansL, kRansL, kRansL};
  if (k == 1) {
    for (uint64_t i = n; i-- > 0;) RansPut(&x[0], &ptr, table[syms[i]]);
  } else {
    uint64_t i = n;
    while (i % 4 != 0) {
      --i;
      RansPut(&x[i % 4], &ptr, table[syms[i]]);
    }
    while (i > 0) {
      i -= 4;
      RansPut(&x[3], &ptr, table[syms[i + 3]]);
      RansPut(&x[2], &ptr, table[syms[i + 2]]);
      RansPut(&x[1], &ptr, table[syms[i + 1]]);
      RansPut(&x[0], &ptr, table[syms[i]]);
    }
  }
  RansFlush(x, k, &ptr);
  out->rans_begin = static_cast<size_t>(ptr - out->rans.data());
}

// LSB-first bit writer (§1) for the extra bits.
struct BitSink {
  std::vector<uint8_t>* out;
  uint64_t acc = 0;
  unsigned n = 0;
  void Write(uint64_t v, unsigned bits) {  // bits <= 51
    acc |= v << n;
    n += bits;
    while (n >= 8) {
      out->push_back(static_cast<uint8_t>(acc));
      acc >>= 8;
      n -= 8;
    }
  }
  void Finish() {
    if (n > 0) out->push_back(static_cast<uint8_t>(acc));
    acc = 0;
    n = 0;
  }
};

template <class Read>
void QuantizeRun(const Read& read, uint64_t begin, uint64_t end, double delta, double rho,
                 bool auto_off, uint16_t* out, uint64_t (*hist4)[kNumSymbols],
                 std::vector<uint64_t>* extras, OffsetSums* acc) {
  constexpr unsigned kBlock = 256;
  alignas(16) double xs[kBlock], ts[kBlock];
  alignas(16) int32_t ms[kBlock], dfl[kBlock];
  alignas(16) uint32_t sym_small[kBlock];  // unsigned: 2m wraps for m >= 2^30 (unused there)
  for (uint64_t b0 = begin; b0 < end; b0 += kBlock) {
    const unsigned cnt = static_cast<unsigned>(std::min<uint64_t>(kBlock, end - b0));
    read.Block(b0, cnt, xs);
    for (unsigned k = 0; k < cnt; ++k) ts[k] = std::fabs(xs[k]) / delta;  // §12.2, vectorized
    int32_t in_range = 1;  // every u < 2^31 (false for NaN / infinity too)
    for (unsigned k = 0; k < cnt; ++k) in_range &= static_cast<int32_t>(ts[k] + rho < 0x1p31);
    if (!in_range) {  // rare: huge codes, NaN or infinity: the exact scalar path
      for (unsigned k = 0; k < cnt; ++k) {
        const double t = ts[k];
        const double u = t + rho;
        if (!(u <= 0x1p53)) {
          if (!std::isfinite(xs[k]))
            throw internal::StatusError(SLICER_ERR_NONFINITE_INPUT, "input");
          throw internal::StatusError(SLICER_ERR_INVALID_ARGUMENT, "step too small");
        }
        const uint64_t m = static_cast<uint64_t>(u);
        unsigned nbits;
        uint64_t extra;
        const unsigned sym = SymbolOf(m, xs[k] < 0, &nbits, &extra);
        if (nbits != 0) extras->push_back((extra << 6) | nbits);
        if (auto_off) acc->Add(t, m);
        out[b0 - begin + k] = static_cast<uint16_t>(sym);
        ++hist4[k & 3][sym];
      }
      continue;
    }
    // Codes below 2^31: int32 arithmetic the compiler vectorizes (same values as §12.2).
    int32_t s1 = 0, s2 = 0, c1 = 0, c2 = 0;
    for (unsigned k = 0; k < cnt; ++k) {
      const int32_t m = static_cast<int32_t>(ts[k] + rho);  // u >= 0: truncation is floor
      ms[k] = m;
      const int32_t pos = static_cast<int32_t>(xs[k] > 0);
      const uint32_t mu = static_cast<uint32_t>(m);
      sym_small[k] = (2u * mu - static_cast<uint32_t>(pos)) & (0u - static_cast<uint32_t>(m != 0));
      const double dv = (ts[k] - static_cast<double>(m)) * 0x1p20;
      const int32_t tr = static_cast<int32_t>(dv);
      dfl[k] = tr - static_cast<int32_t>(static_cast<double>(tr) > dv);
    }
    if (auto_off) {
      for (unsigned k = 0; k < cnt; ++k) {
        const int32_t one = static_cast<int32_t>(ms[k] == 1);
        const int32_t big = static_cast<int32_t>(ms[k] >= 2);
        s1 += one * dfl[k];
        c1 += one;
        s2 += big * dfl[k];
        c2 += big;
      }
      acc->s1 += s1;
      acc->s2 += s2;
      acc->c1 += static_cast<uint64_t>(c1);
      acc->c2 += static_cast<uint64_t>(c2);
    }
    uint16_t* o = out + (b0 - begin);
    for (unsigned k = 0; k < cnt; ++k) {
      const uint32_t m = static_cast<uint32_t>(ms[k]);
      unsigned sym = static_cast<unsigned>(sym_small[k]);
      if (m >= kDirect) {
        unsigned nbits;
        uint64_t extra;
        sym = SymbolOf(m, xs[k] < 0, &nbits, &extra);
        extras->push_back((extra << 6) | nbits);
      }
      o[k] = static_cast<uint16_t>(sym);
      ++hist4[k & 3][sym];
    }
  }
}

}  // namespace

void WriteCommonHeader(int dtype, const int64_t* shape, uint32_t ndim, unsigned layout,
                       std::vector<uint8_t>* out) {
  static const uint8_t magic[4] = {0x53, 0x4C, 0x43, 0x52};
  out->insert(out->end(), magic, magic + 4);
  out->push_back(kVersion);
  out->push_back(static_cast<uint8_t>(dtype));
  out->push_back(0);
  out->push_back(static_cast<uint8_t>(ndim));
  for (uint32_t d = 0; d < ndim; ++d) Put(static_cast<uint64_t>(shape[d]), out);
  out->push_back(static_cast<uint8_t>(layout));
  out->push_back(kModeDense);
}

slicer_status CheckParams(const slicer_dense_params* p) {
  if (p == nullptr) return SLICER_ERR_INVALID_ARGUMENT;
  if (!(std::isfinite(p->step) && p->step >= 0x1p-126f)) return SLICER_ERR_INVALID_ARGUMENT;
  if (p->rho_256 < 1 || p->rho_256 > 128) return SLICER_ERR_INVALID_ARGUMENT;
  if (p->auto_offsets > 1) return SLICER_ERR_INVALID_ARGUMENT;
  if (p->chunk_log2 < 6 || p->chunk_log2 > 24) return SLICER_ERR_INVALID_ARGUMENT;
  if (p->layout > 2) return SLICER_ERR_INVALID_ARGUMENT;
  if (p->group_table == nullptr && p->group_table_size != 0) return SLICER_ERR_INVALID_ARGUMENT;
  return SLICER_OK;
}

slicer_status CheckShape(const int64_t* shape, uint32_t ndim, uint64_t* n) {
  if (ndim > SLICER_MAX_NDIM || (ndim > 0 && shape == nullptr)) return SLICER_ERR_INVALID_ARGUMENT;
  unsigned __int128 count = 1;
  bool zero = false;
  for (uint32_t d = 0; d < ndim; ++d) {
    if (shape[d] < 0) return SLICER_ERR_INVALID_ARGUMENT;
    if (shape[d] == 0) zero = true;
    if (!zero) {
      count *= static_cast<uint64_t>(shape[d]);
      if (count >= (static_cast<unsigned __int128>(1) << 63)) return SLICER_ERR_INVALID_ARGUMENT;
    }
  }
  *n = zero ? 0 : static_cast<uint64_t>(count);
  return SLICER_OK;
}

void EncodeDense(const void* data, int dtype, const int64_t* shape, uint32_t ndim,
                 const slicer_dense_params& params, std::vector<uint8_t>* stream) {
  uint64_t n = 0;
  slicer_status st = CheckShape(shape, ndim, &n);
  if (st != SLICER_OK) throw StatusError(st, "shape");
  if (n > 0 && data == nullptr) throw StatusError(SLICER_ERR_INVALID_ARGUMENT, "data");
  Layout layout;
  if (!MakeLayout(shape, ndim, n, params.layout, &layout)) {
    throw StatusError(SLICER_ERR_INVALID_ARGUMENT, "layout needs more axes");
  }
  const bool has_table = params.group_table != nullptr;
  std::vector<double> steps;
  std::vector<uint8_t> kinds;  // per group: the table byte (or 0)
  if (has_table) {
    if (params.group_table_size != layout.groups) {
      throw StatusError(SLICER_ERR_INVALID_ARGUMENT, "group table size");
    }
    kinds.assign(params.group_table, params.group_table + layout.groups);
    steps.assign(layout.groups, 1.0);
    for (uint64_t g = 0; g < layout.groups; ++g) {
      if (!GroupByteValid(kinds[g])) throw StatusError(SLICER_ERR_INVALID_ARGUMENT, "group byte");
      if (GroupIsDense(kinds[g]) &&
          !GroupStep(params.step, static_cast<int8_t>(kinds[g]), &steps[g])) {
        throw StatusError(SLICER_ERR_INVALID_ARGUMENT, "group step");
      }
    }
  }
  double base_step = 0;
  GroupStep(params.step, 0, &base_step);
  const double rho = params.rho_256 / 256.0;
  const Reader read{static_cast<const uint8_t*>(data), dtype};
  const uint64_t chunk = uint64_t{1} << params.chunk_log2;
  const uint64_t nch = (n + chunk - 1) / chunk;

  // Pass 1: codes → symbols (+ extra bits), histogram, offset sums (§11, §12.2, §12.3).
  std::vector<uint16_t, internal::UninitializedAllocator<uint16_t>> syms(n);
  std::vector<uint64_t> extras;  // (value << 6) | nbits, for bins >= 8, in order
  std::vector<uint64_t> chunk_syms(nch + 1, 0), chunk_extras(nch + 1, 0);
  uint64_t hist4[4][kNumSymbols] = {};
  OffsetSums acc;
  uint64_t nsyms = 0;
  const bool auto_off = params.auto_offsets != 0;
  for (uint64_t i = 0; i < n;) {
    const uint64_t g = layout.GroupOf(i);
    const uint64_t stop = std::min(n, i + layout.RunLeft(i, n));
    const uint8_t kind = has_table ? kinds[g] : 0;
    if (!GroupIsDense(kind)) {
      for (; i < stop; ++i) {
        if (!std::isfinite(read(i))) throw StatusError(SLICER_ERR_NONFINITE_INPUT, "input");
      }
      continue;
    }
    const double delta = has_table ? steps[g] : base_step;
    while (i < stop) {  // chunk-aligned pieces, so per-chunk counts come out of the loop
      const uint64_t piece_end = std::min(stop, (i / chunk + 1) * chunk);
      const uint64_t before = extras.size();
      QuantizeRun(read, i, piece_end, delta, rho, auto_off, syms.data() + nsyms, hist4, &extras,
                  &acc);
      chunk_syms[i / chunk + 1] += piece_end - i;
      chunk_extras[i / chunk + 1] += extras.size() - before;
      nsyms += piece_end - i;
      i = piece_end;
    }
  }
  uint64_t hist[kNumSymbols];
  for (unsigned q = 0; q < kNumSymbols; ++q)
    hist[q] = hist4[0][q] + hist4[1][q] + hist4[2][q] + hist4[3][q];
  const int64_t s1 = acc.s1, s2 = acc.s2;
  const uint64_t c1 = acc.c1, c2 = acc.c2;
  for (uint64_t j = 0; j < nch; ++j) {
    chunk_syms[j + 1] += chunk_syms[j];
    chunk_extras[j + 1] += chunk_extras[j];
  }
  const int8_t o1 = auto_off ? OffsetSums::Offset(s1, c1) : params.offset1;
  const int8_t o2 = auto_off ? OffsetSums::Offset(s2, c2) : params.offset2;

  // Frequency table (§13.1, §13.2).
  unsigned nsym = 0;
  for (unsigned s = 0; s < kNumSymbols; ++s)
    if (hist[s]) nsym = s + 1;
  std::vector<unsigned> classes(nsym);
  for (unsigned s = 0; s < nsym; ++s) classes[s] = hist[s] ? CountClass(hist[s]) : 0;
  std::vector<uint32_t> freq, cum;
  Normalize(classes, &freq, &cum);
  std::vector<EncSymbol> table(nsym);
  for (unsigned s = 0; s < nsym; ++s)
    if (freq[s]) table[s] = MakeEncSymbol(cum[s], freq[s]);

  // Pass 2: chunks (independent; run on threads for large inputs).
  std::vector<ChunkOut> chunks(nch);
  auto encode_chunks = [&](uint64_t j0, uint64_t j1) {
    for (uint64_t j = j0; j < j1; ++j) {
      const uint64_t a = chunk_syms[j], b = chunk_syms[j + 1];
      if (a == b) continue;
      EncodeRans(syms.data() + a, b - a, table, &chunks[j]);
      BitSink sink{&chunks[j].bits};
      chunks[j].bits.reserve((chunk_extras[j + 1] - chunk_extras[j]) * 7 + 8);
      for (uint64_t e = chunk_extras[j]; e < chunk_extras[j + 1]; ++e) {
        sink.Write(extras[e] >> 6, static_cast<unsigned>(extras[e] & 63));
      }
      sink.Finish();
    }
  };
  unsigned threads = params.threads == 0 ? std::max(1u, std::thread::hardware_concurrency())
                                         : params.threads;
  threads = static_cast<unsigned>(std::min<uint64_t>(threads, nch));
  if (threads <= 1 || n < (uint64_t{1} << 18)) {
    encode_chunks(0, nch);
  } else {
    std::vector<std::thread> workers;
    std::vector<std::exception_ptr> errors(threads);
    for (unsigned t = 0; t < threads; ++t) {
      workers.emplace_back([&, t] {
        try {
          encode_chunks(nch * t / threads, nch * (t + 1) / threads);
        } catch (...) {
          errors[t] = std::current_exception();
        }
      });
    }
    for (auto& w : workers) w.join();
    for (auto& e : errors)
      if (e) std::rethrow_exception(e);
  }

  // Assemble (§10, §13).
  std::vector<uint8_t>& out = *stream;
  out.clear();
  WriteCommonHeader(dtype, shape, ndim, params.layout, &out);
  out.push_back(static_cast<uint8_t>(kParamsLen));
  uint8_t mp[9];
  std::memcpy(mp, &params.step, 4);
  mp[4] = params.rho_256;
  mp[5] = static_cast<uint8_t>(o1);
  mp[6] = static_cast<uint8_t>(o2);
  mp[7] = params.chunk_log2;
  mp[8] = has_table ? 1 : 0;
  out.insert(out.end(), mp, mp + 9);
  if (has_table) out.insert(out.end(), kinds.begin(), kinds.end());
  Put(nsym, &out);
  WriteClassField(classes.data(), nsym, &out);
  size_t payload = 0;
  for (const ChunkOut& c : chunks) {
    const size_t rl = c.rans.size() - c.rans_begin;
    Put(rl, &out);
    Put(c.bits.size(), &out);
    payload += rl + c.bits.size();
  }
  if (has_table) {
    const size_t item = DtypeBytes(dtype);
    const uint8_t* bytes = static_cast<const uint8_t*>(data);
    for (uint64_t g = 0; g < layout.groups; ++g) {
      if (kinds[g] != kGroupRaw) continue;
      for (uint64_t i = 0; i < n;) {  // the group's elements in flat order
        const uint64_t stop = std::min(n, i + layout.RunLeft(i, n));
        if (layout.GroupOf(i) == g) {
          out.insert(out.end(), bytes + item * i, bytes + item * stop);
        }
        i = stop;
      }
    }
  }
  out.reserve(out.size() + payload + 4);
  for (const ChunkOut& c : chunks) {
    out.insert(out.end(), c.rans.begin() + static_cast<std::ptrdiff_t>(c.rans_begin),
               c.rans.end());
    out.insert(out.end(), c.bits.begin(), c.bits.end());
  }
  const uint32_t crc = internal::Crc32(0, out.data(), out.size());
  for (int b = 0; b < 4; ++b) out.push_back(static_cast<uint8_t>(crc >> (8 * b)));
}

}  // namespace slicer::dense
