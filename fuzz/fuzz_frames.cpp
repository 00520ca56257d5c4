// libFuzzer target for frames (docs/format.md §17). The first byte picks the property:
//  - 0: context bytes (magic, version, kind and CRC made valid so the fuzzer reaches the fields)
//       open or fail with a status, never a crash;
//  - 1: frame bytes under a fixed context (the check made valid) decode or fail with a status;
//  - 2: a round trip: finite float32 rows from the input build a context (with a class map of
//       1 … 16 classes, §18) and code frames that decode within (max(rho, 1 - rho) + |offset| /
//       256) steps; encoding is deterministic;
//  - 3, 4: as 1 and 2 with a trellis context (§17.4); a round trip's elements decode within
//       sqrt(4 + λ · 67) + 1 steps (the Viterbi never pays more than λ' · the largest rate
//       over the nearest level of a parity, 2 steps away at most) plus the offset.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "slicer/slicer.h"

namespace {

uint32_t Crc32(uint32_t crc, const uint8_t* p, size_t n) {
  uint32_t c = ~crc;
  for (size_t i = 0; i < n; ++i) {
    c ^= p[i];
    for (int k = 0; k < 8; ++k) c = (c >> 1) ^ (0xEDB88320u & (0u - (c & 1u)));
  }
  return ~c;
}

void Put32(uint8_t* p, uint32_t v) {
  for (int b = 0; b < 4; ++b) p[b] = static_cast<uint8_t>(v >> (8 * b));
}

void FuzzContext(const uint8_t* data, size_t size) {
  std::vector<uint8_t> s(data, data + size);
  if (s.size() < 12) s.resize(12, 0);
  std::memcpy(s.data(), "SLCR\x02\xF0", 6);
  Put32(s.data() + s.size() - 4, Crc32(0, s.data(), s.size() - 4));
  slicer_frame_context* ctx = nullptr;
  if (slicer_frame_context_open(s.data(), s.size(), 1u << 16, &ctx) != SLICER_OK) {
    if (ctx != nullptr) __builtin_trap();
    return;
  }
  slicer_frame_info info;
  if (slicer_frame_context_info(ctx, &info) != SLICER_OK) __builtin_trap();
  // An opened context must code a row of zeros and of large values.
  const size_t item = slicer_dtype_size(info.dtype);
  std::vector<uint8_t> row(info.row_elements * item, 0);
  std::vector<uint8_t> frame(info.frame_bound);
  size_t written = 0;
  if (slicer_frame_encode(ctx, row.data(), row.size(), 0, frame.data(), frame.size(), &written) !=
      SLICER_OK) {
    __builtin_trap();
  }
  std::vector<uint8_t> out(row.size());
  uint32_t seq = 7;
  if (slicer_frame_decode(ctx, frame.data(), written, out.data(), out.size(), &seq) != SLICER_OK ||
      seq != 0) {
    __builtin_trap();
  }
  slicer_frame_context_free(ctx);
}

slicer_frame_context* FixedContext(bool trellis) {
  static slicer_frame_context* ctxs[2] = {nullptr, nullptr};
  slicer_frame_context*& ctx = ctxs[trellis ? 1 : 0];
  if (ctx != nullptr) return ctx;
  ctx = [trellis] {
    std::vector<float> rows(4 * 96);
    for (size_t i = 0; i < rows.size(); ++i) rows[i] = std::sin(0.37 * i) * (i % 17 == 0 ? 300 : 3);
    slicer_frame_params p;
    slicer_frame_params_init(&p);
    p.step = 0.25f;
    p.trellis = trellis ? 1 : 0;
    std::vector<uint8_t> bytes(SLICER_FRAME_TRELLIS_CONTEXT_BOUND(96, 1));
    size_t n = 0;
    const int64_t shape[1] = {96};
    slicer_frame_context* c = nullptr;
    if (slicer_frame_context_build(rows.data(), SLICER_FLOAT32, 4, shape, 1, &p, bytes.data(),
                                   bytes.size(), &n) != SLICER_OK ||
        slicer_frame_context_open(bytes.data(), n, 96, &c) != SLICER_OK) {
      __builtin_trap();
    }
    return c;
  }();
  return ctx;
}

void FuzzFrame(const uint8_t* data, size_t size, bool trellis) {
  slicer_frame_context* ctx = FixedContext(trellis);
  slicer_frame_info info;
  slicer_frame_context_info(ctx, &info);
  std::vector<uint8_t> f(data, data + size);
  if (f.size() >= 4) {
    uint8_t id[4];
    Put32(id, info.context_id);
    Put32(f.data() + f.size() - 4, Crc32(Crc32(0, id, 4), f.data(), f.size() - 4));
  }
  std::vector<float> out(info.row_elements);
  uint32_t seq;
  const int st = slicer_frame_decode(ctx, f.data(), f.size(), out.data(), 4 * out.size(), &seq);
  if (st == SLICER_OK) {
    for (float v : out)
      if (!std::isfinite(v) && std::fabs(v) != INFINITY) __builtin_trap();
  }
}

void FuzzRoundTrip(const uint8_t* data, size_t size, bool trellis) {
  if (size < 9) return;
  const uint64_t len = 1 + data[0] % 64;
  const unsigned rho = 1 + data[1] % 128;
  const float step = std::ldexp(1.0f + data[2] / 256.0f, static_cast<int>(data[3] % 24) - 12);
  const unsigned classes = std::min<unsigned>(1 + data[4] % 16, static_cast<unsigned>(len));
  data += 5;
  size -= 5;
  std::vector<float> vals(size / 4);
  for (size_t i = 0; i < vals.size(); ++i) {
    float v;
    std::memcpy(&v, data + 4 * i, 4);
    vals[i] = std::isfinite(v) && std::fabs(v) < 1e6f ? v : 0.0f;
  }
  const uint64_t rows = vals.size() / len;
  if (rows < 2) return;
  slicer_frame_params p;
  slicer_frame_params_init(&p);
  p.step = step;
  p.rho_256 = static_cast<uint8_t>(rho);
  p.trellis = trellis ? 1 : 0;
  p.trellis_lambda = 0.05f + rho / 64.0f;  // 0.07 … 2.05
  std::vector<uint8_t> bytes(SLICER_FRAME_TRELLIS_CONTEXT_BOUND(len, classes));
  size_t n = 0;
  const int64_t shape[1] = {static_cast<int64_t>(len)};
  if (slicer_frame_context_build_classes(vals.data(), SLICER_FLOAT32, 1, shape, 1, &p, classes,
                                         bytes.data(), bytes.size(), &n) != SLICER_OK) {
    __builtin_trap();
  }
  slicer_frame_context* ctx = nullptr;
  if (slicer_frame_context_open(bytes.data(), n, len, &ctx) != SLICER_OK) __builtin_trap();
  slicer_frame_info info;
  slicer_frame_context_info(ctx, &info);
  std::vector<uint8_t> a(info.frame_bound), b(info.frame_bound);
  std::vector<float> out(len);
  const double d = step;
  const double tol =
      trellis ? (std::sqrt(4.0 + p.trellis_lambda * 67.0) + 1.0 + 0.5) * d * (1 + 1e-6) + 1e-30
              : (std::max(rho, 256u - rho) + 128.0) / 256.0 * d * (1 + 1e-6) + 1e-30;
  for (uint64_t r = 1; r < rows; ++r) {
    size_t na = 0, nb = 0;
    const float* row = vals.data() + r * len;
    if (slicer_frame_encode(ctx, row, 4 * len, static_cast<uint32_t>(r), a.data(), a.size(), &na) !=
            SLICER_OK ||
        slicer_frame_encode(ctx, row, 4 * len, static_cast<uint32_t>(r), b.data(), b.size(), &nb) !=
            SLICER_OK ||
        na != nb || std::memcmp(a.data(), b.data(), na) != 0) {
      __builtin_trap();
    }
    uint32_t seq;
    if (slicer_frame_decode(ctx, a.data(), na, out.data(), 4 * len, &seq) != SLICER_OK ||
        seq != (r & 0xFF)) {
      __builtin_trap();
    }
    for (uint64_t i = 0; i < len; ++i) {
      const double err = std::fabs(static_cast<double>(out[i]) - row[i]);
      if (err > tol + std::fabs(row[i]) * 1e-6) __builtin_trap();
    }
  }
  slicer_frame_context_free(ctx);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  switch (data[0] % 5) {
    case 0:
      FuzzContext(data + 1, size - 1);
      break;
    case 1:
      FuzzFrame(data + 1, size - 1, false);
      break;
    case 2:
      FuzzRoundTrip(data + 1, size - 1, false);
      break;
    case 3:
      FuzzFrame(data + 1, size - 1, true);
      break;
    default:
      FuzzRoundTrip(data + 1, size - 1, true);
  }
  return 0;
}
