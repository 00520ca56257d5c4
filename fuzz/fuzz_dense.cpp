// libFuzzer target for format 2, modes 1, 2 and 3 (dense, dense with class tables, trellis-coded
// quantization: docs/format.md §10-§16, §19, §21). Two properties:
//  - decode: any byte string (with its magic, version and CRC made valid so the fuzzer reaches
//    the structure behind them) decodes or fails with a status; never a crash, and decode and
//    inspect agree on the verdict; hostile class maps and class tables included;
//  - round trip: any finite float32 data with any parameters (1 … 16 classes along either axis
//    of a 2-d shape, a §18.1 map, §18.3 index ranges or §18.4 boundaries) encodes; the stream
//    decodes, its error is within (max(rho, 1 - rho) + |offset|) steps, and encoding is
//    deterministic; with trellis (mode 3) the same, the error within max(|x|, 3 steps) + 1/2
//    step (the Viterbi may code 0 or a neighbour of the nearest level); mode 1 with any table
//    kind (§13.5) decodes to kind 0's values, "auto" never longer than kind 0.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "slicer/slicer.h"

namespace {

uint32_t Crc32(const uint8_t* p, size_t n) {
  uint32_t c = 0xFFFFFFFFu;
  for (size_t i = 0; i < n; ++i) {
    c ^= p[i];
    for (int k = 0; k < 8; ++k) c = (c >> 1) ^ (0xEDB88320u & (0u - (c & 1u)));
  }
  return c ^ 0xFFFFFFFFu;
}

void Decode(const uint8_t* data, size_t size) {
  std::vector<uint8_t> s(data, data + size);
  if (s.size() < 9) s.resize(9, 0);
  std::memcpy(s.data(), "SLCR\x02", 5);
  const uint32_t crc = Crc32(s.data(), s.size() - 4);
  for (int b = 0; b < 4; ++b) s[s.size() - 4 + b] = static_cast<uint8_t>(crc >> (8 * b));
  slicer_dense_info info;
  const int inspect = slicer_dense_inspect(s.data(), s.size(), 1u << 20, &info);
  if (inspect != SLICER_OK) {
    std::vector<uint8_t> out(64);
    if (slicer_decode(s.data(), s.size(), 1u << 20, out.data(), out.size(), 1) == SLICER_OK) {
      __builtin_trap();  // decode accepted what inspect refused
    }
    return;
  }
  const size_t item = slicer_dtype_size(info.dtype);
  std::vector<uint8_t> out(info.num_elements * item + 1);
  if (slicer_decode(s.data(), s.size(), 1u << 20, out.data(), out.size(), 1) != SLICER_OK) {
    __builtin_trap();
  }
  uint64_t tables = 0;
  for (unsigned c = 0; c < 16; ++c) tables += info.class_table_bytes[c];
  if (info.classes > 1 && tables != info.freq_table_bytes) __builtin_trap();
  if (info.header_bytes + info.group_table_bytes + info.class_map_bytes + info.freq_table_bytes +
          info.chunk_table_bytes + info.raw_bytes + info.rans_bytes + info.extra_bits_bytes +
          info.checksum_bytes !=
      info.total_bytes) {
    __builtin_trap();
  }
}

void RoundTrip(const uint8_t* data, size_t size) {
  if (size < 10) return;
  slicer_dense_params p;
  slicer_dense_params_init(&p);
  const int exponent = static_cast<int>(data[0] % 40) - 20;
  p.step = std::ldexp(1.0f + data[1] / 256.0f, exponent);
  p.rho_256 = static_cast<uint8_t>(1 + data[2] % 128);
  p.chunk_log2 = static_cast<uint8_t>(6 + data[3] % 6);
  const unsigned kind = (data[3] >> 4) % 7;  // §13.5 table kinds: 0 … 4, 5 auto, 6 none
  const unsigned low = (data[7] >> 1) % 17;  // §13.6 low-bit planes: 0 … 15, 16 auto
  p.auto_offsets = data[4] & 1;
  p.offset1 = static_cast<int8_t>(data[5]);
  p.offset2 = static_cast<int8_t>(data[6]);
  p.threads = 1 + (data[7] & 1);
  p.trellis = (data[4] >> 1) & 1;  // mode 3 (§21)
  p.trellis_lambda = (1 + data[2]) / 128.0;
  p.trellis_offset1 = static_cast<int8_t>(data[6] ^ data[5]);
  p.trellis_offset2 = static_cast<int8_t>(data[7]);
  const unsigned classes = data[8] % 17;  // 0, 1: mode 1; 2 … 16: mode 2
  const unsigned ranges = (data[8] >> 6) & 1 ? SLICER_DENSE_CLASS_MAP_RANGES : 0;  // §18.3
  const unsigned bounds = !ranges && ((data[8] >> 5) & 1) ? SLICER_DENSE_CLASS_MAP_BOUNDS : 0;
  p.class_axis = static_cast<uint8_t>((data[8] >> 7) | ranges | bounds);
  const uint32_t seed = data[0] | (uint32_t{data[1]} << 8) | (uint32_t{data[9]} << 16);
  const unsigned cols = 1 + data[9] % 40;
  data += 10;
  size -= 10;
  std::vector<float> x(size / 4 / cols * cols);
  if (!x.empty()) std::memcpy(x.data(), data, x.size() * 4);
  for (float& v : x)
    if (!std::isfinite(v) || std::fabs(v) > 1e6f) v = 0.0f;
  const int64_t shape[2] = {static_cast<int64_t>(x.size() / cols), static_cast<int64_t>(cols)};
  p.classes = static_cast<uint8_t>(std::min(classes, cols));
  // §13.5 table kinds: 0 … 4 in mode 1, auto (0 in modes 2, 3), 0.
  const bool mode1 = p.classes <= 1 && !p.trellis;
  p.table_kind = kind == 5 ? SLICER_DENSE_TABLE_AUTO : kind < 5 && mode1 ? kind : 0;
  // §13.6 low-bit planes: 0 … 15 in mode 1, auto (0 in modes 2, 3).
  p.low_bits = low == 16 ? SLICER_DENSE_LOW_BITS_AUTO : mode1 ? low : 0;
  std::vector<uint64_t> cuts;  // §18.4: K − 1 distinct positions of 1 … L − 1, rising
  if (bounds && p.classes >= 2) {
    std::vector<uint64_t> all(cols - 1);
    for (unsigned a = 0; a + 1 < cols; ++a) all[a] = a + 1;
    uint32_t r = seed * 2654435761u + 1;
    for (unsigned j = 0; j + 1 < p.classes; ++j) {  // a partial Fisher-Yates shuffle
      r = r * 1664525u + 1013904223u;
      std::swap(all[j], all[j + (r >> 8) % (all.size() - j)]);
    }
    cuts.assign(all.begin(), all.begin() + (p.classes - 1));
    std::sort(cuts.begin(), cuts.end());
    p.class_bounds = cuts.data();
    p.class_bounds_count = static_cast<uint32_t>(cuts.size());
  }
  size_t bound = 0;
  if (slicer_dense_encode_bound(shape, 2, SLICER_FLOAT32, &p, &bound) != SLICER_OK) {
    __builtin_trap();
  }
  std::vector<uint8_t> a(bound), b(bound);
  size_t na = 0, nb = 0;
  const int st = slicer_dense_encode(x.data(), SLICER_FLOAT32, shape, 2, &p, a.data(), bound, &na);
  if (st == SLICER_ERR_INVALID_ARGUMENT) return;  // step too small for the data
  if (st != SLICER_OK) __builtin_trap();  // includes a stream above its bound (BUFFER_TOO_SMALL)
  if (slicer_dense_encode(x.data(), SLICER_FLOAT32, shape, 2, &p, b.data(), bound, &nb) !=
          SLICER_OK ||
      na != nb || std::memcmp(a.data(), b.data(), na) != 0) {
    __builtin_trap();  // not deterministic
  }
  slicer_dense_info info;
  if (slicer_dense_inspect(a.data(), na, 1u << 30, &info) != SLICER_OK) __builtin_trap();
  if (info.mode != (p.trellis ? 3u : p.classes > 1 ? 2u : 1u)) __builtin_trap();
  if (p.table_kind != SLICER_DENSE_TABLE_AUTO && info.table_kind != p.table_kind) __builtin_trap();
  if (info.table_kind > (mode1 ? 4u : 0u)) __builtin_trap();
  if (p.low_bits != SLICER_DENSE_LOW_BITS_AUTO && info.low_bits != p.low_bits) __builtin_trap();
  if (info.low_bits > (mode1 ? 15u : 0u)) __builtin_trap();
  // kind 0's stream without a plane: the same values; auto (kinds only) is never longer
  if (p.table_kind != 0 || p.low_bits != 0) {
    slicer_dense_params q = p;
    q.table_kind = 0;
    q.low_bits = 0;
    size_t nq = 0;
    if (slicer_dense_encode(x.data(), SLICER_FLOAT32, shape, 2, &q, b.data(), bound, &nq) !=
        SLICER_OK)
      __builtin_trap();
    if (p.table_kind == SLICER_DENSE_TABLE_AUTO && p.low_bits == 0 && na > nq) __builtin_trap();
    std::vector<float> y0(x.size() + 1), y1(x.size() + 1);
    if (slicer_decode(b.data(), nq, 1u << 30, y0.data(), y0.size() * 4, 1) != SLICER_OK ||
        slicer_decode(a.data(), na, 1u << 30, y1.data(), y1.size() * 4, 1) != SLICER_OK ||
        std::memcmp(y0.data(), y1.data(), x.size() * 4) != 0)
      __builtin_trap();
  }
  if (p.classes > 1 && (info.class_map_kind == 1) != ((p.class_axis & 2) != 0)) __builtin_trap();
  if (info.class_map_kind == 1 && info.class_map_bytes != 0) __builtin_trap();
  if (p.classes > 1 && (info.class_map_kind == 2) != (bounds != 0)) __builtin_trap();
  for (size_t j = 0; info.class_map_kind == 2 && j < cuts.size(); ++j)
    if (info.class_bounds[j] != cuts[j]) __builtin_trap();
  std::vector<float> y(x.size() + 1);
  if (slicer_decode(a.data(), na, 1u << 30, y.data(), y.size() * 4, 1) != SLICER_OK) {
    __builtin_trap();
  }
  const double rho = p.rho_256 / 256.0;
  const double off = std::max(std::abs(info.offset1), std::abs(info.offset2)) / 256.0;
  const double tol = (std::max(rho, 1.0 - rho) + off) * static_cast<double>(p.step);
  const double step = p.step;
  for (size_t i = 0; i < x.size(); ++i) {
    const double err = std::fabs(static_cast<double>(y[i]) - x[i]);
    const double limit =
        p.trellis ? std::max(std::fabs(static_cast<double>(x[i])), 3 * step) + 0.5 * step : tol;
    if (err > limit * (1 + 1e-6) + std::fabs(x[i]) * 1e-6) __builtin_trap();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  if (data[0] & 1) {
    RoundTrip(data + 1, size - 1);
  } else {
    Decode(data + 1, size - 1);
  }
  return 0;
}
