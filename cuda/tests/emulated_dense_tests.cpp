// The CUDA backend's format-2 dense pipeline (cuda/src/dense.cu, dense_kernels.cuh) under the
// host emulation (emulation.hpp) against the C++ codec: every golden stream of tests/golden/v2
// (modes 1 and 2) re-encoded byte for byte from its input and decoded like the C++ decoder;
// mode 2 (class tables, §19) encoded by both backends byte for byte on both class axes, 2 … 16
// classes, empty classes, codes above 2^33, both interleave widths, and its argument errors with
// the CPU's status; random inputs at awkward sizes, every dtype, the three layouts with zero /
// raw / scaled groups, fixed and data offsets, both interleave widths; damaged streams (with a
// valid checksum, so that the chunk checks are what rejects them) giving the C++ decoder's
// status.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "crc32.hpp"
#include "float_bits.hpp"
#include "slicer/slicer.h"
#include "slicer/slicer_cuda.h"

namespace slicer::cuda {
extern bool dense_copy_per_chunk;  // dense.cu: payload copied chunk by chunk, not packed
}  // namespace slicer::cuda

namespace {

int failures = 0;
int checks = 0;

void Fail(const std::string& what) {
  ++failures;
  if (failures <= 30) std::fprintf(stderr, "FAIL: %s\n", what.c_str());
}

size_t Item(int dtype) { return dtype == SLICER_FLOAT64 ? 8 : dtype == SLICER_FLOAT32 ? 4 : 2; }

std::vector<uint8_t> CpuDecode(const std::vector<uint8_t>& s, size_t bytes, int* status) {
  std::vector<uint8_t> out(bytes, 0xAB);
  *status = slicer_decode(s.data(), s.size(), uint64_t{1} << 40, out.data(), out.size(), 1);
  if (*status) out.clear();
  return out;
}

// "Device" decode (host and device sources alternate); `bytes` = the output size.
std::vector<uint8_t> GpuDecode(const std::vector<uint8_t>& s, size_t bytes, bool device_src,
                               int* status) {
  size_t temp_bytes = 0;
  slicer_dense_info info{};
  *status = slicer_cuda_dense_decode_temp_size(s.data(), s.size(), device_src, uint64_t{1} << 40,
                                               &info, &temp_bytes, nullptr);
  if (*status) return {};
  std::vector<uint8_t> temp(temp_bytes), out(bytes, 0xCD);
  *status = slicer_cuda_dense_decode(s.data(), s.size(), device_src, uint64_t{1} << 40, temp.data(),
                                     temp.size(), out.data(), out.size(), nullptr);
  if (*status) out.clear();
  return out;
}

std::vector<uint8_t> GpuEncode(const std::vector<uint8_t>& data, int dtype,
                               const std::vector<int64_t>& shape, const slicer_dense_params& p,
                               int* status) {
  const uint32_t ndim = static_cast<uint32_t>(shape.size());
  size_t temp_bytes = 0, bound = 0;
  *status = slicer_cuda_dense_encode_temp_size(shape.data(), ndim, dtype, &p, &temp_bytes);
  if (*status) return {};
  slicer_dense_encode_bound(shape.data(), ndim, dtype, &p, &bound);
  std::vector<uint8_t> temp(temp_bytes), out(bound);
  size_t written = 0;
  *status = slicer_cuda_dense_encode_host(data.data(), dtype, shape.data(), ndim, &p, temp.data(),
                                          temp.size(), out.data(), out.size(), &written, nullptr);
  out.resize(*status ? 0 : written);
  return out;
}

std::vector<uint8_t> CpuEncode(const std::vector<uint8_t>& data, int dtype,
                               const std::vector<int64_t>& shape, const slicer_dense_params& p,
                               int* status) {
  const uint32_t ndim = static_cast<uint32_t>(shape.size());
  size_t bound = 0;
  *status = slicer_dense_encode_bound(shape.data(), ndim, dtype, &p, &bound);
  if (*status) return {};
  std::vector<uint8_t> out(bound);
  size_t written = 0;
  *status = slicer_dense_encode(data.data(), dtype, shape.data(), ndim, &p, out.data(), out.size(),
                                &written);
  out.resize(*status ? 0 : written);
  return out;
}

int rejected = 0;  // decodes the C++ decoder refused

// Both decoders on one stream: same status, same bytes.
void CheckDecode(const std::vector<uint8_t>& s, size_t bytes, const std::string& what) {
  for (const bool device_src : {false, true}) {
    ++checks;
    int cs = 0, gs = 0;
    const auto expect = CpuDecode(s, bytes, &cs);
    rejected += cs != 0;
    const auto got = GpuDecode(s, bytes, device_src, &gs);
    if (cs != gs || got != expect) {
      Fail(what + ": decode status cpu " + std::to_string(cs) + " gpu " + std::to_string(gs) +
           (cs == gs ? " (values differ)" : ""));
    }
  }
}

void CheckCase(const std::vector<uint8_t>& data, int dtype, const std::vector<int64_t>& shape,
               const slicer_dense_params& p, const std::string& what) {
  ++checks;
  int cs = 0, gs = 0;
  const auto expect = CpuEncode(data, dtype, shape, p, &cs);
  const auto got = GpuEncode(data, dtype, shape, p, &gs);
  if (cs != gs || got != expect) {
    Fail(what + ": encode status cpu " + std::to_string(cs) + " gpu " + std::to_string(gs) +
         (cs == gs ? " (bytes differ)" : ""));
    return;
  }
  if (cs == SLICER_OK) CheckDecode(expect, data.size(), what);
}

std::string ReadFile(const std::filesystem::path& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// Golden streams: the input comes from NAME.npy, every parameter from the stream itself
// (step, rho, chunk_log2, layout, group table) and NAME.json (fixed or data offsets).
void TestGolden() {
  const std::filesystem::path dir = SLICER_GOLDEN_V2_DIR;
  int cases = 0, mode2_goldens = 0, range_goldens = 0, bound_goldens = 0, mode3_goldens = 0,
      kind_goldens = 0, low_goldens = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    if (entry.path().extension() != ".slc") continue;
    ++cases;
    const std::string name = entry.path().stem().string();
    const std::string slc = ReadFile(entry.path());
    const std::vector<uint8_t> stream(slc.begin(), slc.end());
    slicer_dense_info info{};
    if (slicer_dense_inspect(stream.data(), stream.size(), uint64_t{1} << 40, &info) != 0) {
      Fail("golden " + name + ": not a dense stream");
      continue;
    }
    const size_t bytes = info.num_elements * Item(info.dtype);
    CheckDecode(stream, bytes, "golden " + name);
    // The Python glue sends a stream to the dense decoder when the format-1 one refuses its
    // version byte: that refusal must be SLICER_ERR_BAD_VERSION, from either source.
    for (const int device_src : {0, 1}) {
      ++checks;
      size_t temp = 0;
      slicer_header h{};
      const int st = slicer_cuda_decode_temp_size(stream.data(), stream.size(), device_src,
                                                  uint64_t{1} << 40, &h, &temp, nullptr);
      if (st != SLICER_ERR_BAD_VERSION) {
        Fail("golden " + name + ": format-1 decoder gives " + std::to_string(st));
      }
    }
    std::string npy = ReadFile(dir / (name + ".npy"));
    if (npy.size() < 10 || npy.compare(0, 6, "\x93NUMPY") != 0) {
      Fail("golden " + name + ": bad npy");
      continue;
    }
    const size_t hlen =
        npy[6] == 1 ? (static_cast<uint8_t>(npy[8]) | static_cast<uint8_t>(npy[9]) << 8) + 10
                    : (static_cast<uint8_t>(npy[8]) | static_cast<uint8_t>(npy[9]) << 8 |
                       static_cast<uint8_t>(npy[10]) << 16) +
                          12;
    if (npy.size() != hlen + bytes) {
      Fail("golden " + name + ": npy size");
      continue;
    }
    std::vector<uint8_t> data(npy.begin() + static_cast<std::ptrdiff_t>(hlen), npy.end());
    std::vector<int64_t> shape(info.shape, info.shape + info.ndim);
    const std::string json = ReadFile(dir / (name + ".json"));
    slicer_dense_params p;
    slicer_dense_params_init(&p);
    p.step = info.step;
    p.rho_256 = static_cast<uint8_t>(info.rho_256);
    p.chunk_log2 = static_cast<uint8_t>(info.chunk_log2);
    p.layout = static_cast<uint8_t>(info.layout);
    p.auto_offsets = json.find("\"offsets\": null") != std::string::npos;
    p.offset1 = static_cast<int8_t>(info.offset1);
    p.offset2 = static_cast<int8_t>(info.offset2);
    std::vector<uint8_t> table;
    if (info.has_group_table) {
      table.assign(
          stream.begin() + static_cast<std::ptrdiff_t>(info.header_bytes),
          stream.begin() + static_cast<std::ptrdiff_t>(info.header_bytes + info.group_count));
      p.group_table = table.data();
      p.group_table_size = table.size();
    }
    ++checks;
    int gs = 0;
    if (info.mode == 3) {  // §21: the CPU writes the golden, the GPU encoder refuses trellis
      p.trellis = 1;
      p.rho_256 = 128;  // unused by mode 3 (its streams carry none), but must be valid
      p.trellis_offset1 = static_cast<int8_t>(info.trellis_offset1);
      p.trellis_offset2 = static_cast<int8_t>(info.trellis_offset2);
      const size_t at = json.find("\"lam\": ");
      p.trellis_lambda =
          at == std::string::npos ? 0.34 : std::strtod(json.c_str() + at + 7, nullptr);
      p.classes = static_cast<uint8_t>(info.classes);
      p.class_axis = static_cast<uint8_t>(info.class_axis);
      if (info.class_map_kind == 1) p.class_axis |= SLICER_DENSE_CLASS_MAP_RANGES;
      if (info.class_map_kind == 2) {
        p.class_axis |= SLICER_DENSE_CLASS_MAP_BOUNDS;
        p.class_bounds = info.class_bounds;
        p.class_bounds_count = info.classes - 1;
      }
      int cs = 0;
      if (CpuEncode(data, info.dtype, shape, p, &cs) != stream || cs != 0)
        Fail("golden " + name + ": cpu encode differs from the golden");
      GpuEncode(data, info.dtype, shape, p, &gs);
      if (gs != SLICER_ERR_INVALID_ARGUMENT)
        Fail("golden " + name + ": gpu encode of mode 3 gives " + std::to_string(gs));
      ++mode3_goldens;
      continue;
    }
    if (info.low_bits != 0 || info.table_kind != 0) {  // §13.5, §13.6: both encoders write it
      p.low_bits = static_cast<uint8_t>(info.low_bits);
      p.table_kind = static_cast<uint8_t>(info.table_kind);
      int cs = 0;
      if (CpuEncode(data, info.dtype, shape, p, &cs) != stream || cs != 0)
        Fail("golden " + name + ": cpu encode differs from the golden");
      if (info.table_kind != 0) {
        p.table_kind = SLICER_DENSE_TABLE_AUTO;
        if (CpuEncode(data, info.dtype, shape, p, &cs).size() > stream.size() || cs != 0)
          Fail("golden " + name + ": cpu encode with table kind auto is longer");
      }
      // The golden's input with every mix of its setting and auto (and none): the GPU's bytes
      // are the CPU's.
      for (const unsigned low : {info.low_bits, 0u, unsigned{SLICER_DENSE_LOW_BITS_AUTO}}) {
        for (const unsigned kind : {info.table_kind, 0u, unsigned{SLICER_DENSE_TABLE_AUTO}}) {
          p.low_bits = static_cast<uint8_t>(low);
          p.table_kind = static_cast<uint8_t>(kind);
          CheckCase(data, info.dtype, shape, p,
                    "golden " + name + " low_bits " + std::to_string(low) + " table_kind " +
                        std::to_string(kind));
        }
      }
      p.low_bits = static_cast<uint8_t>(info.low_bits);
      p.table_kind = static_cast<uint8_t>(info.table_kind);
      ++(info.low_bits != 0 ? low_goldens : kind_goldens);
    }
    if (info.classes > 1) {  // mode 2 (§19): both encoders write the golden
      p.classes = static_cast<uint8_t>(info.classes);
      p.class_axis = static_cast<uint8_t>(info.class_axis);
      if (info.class_map_kind == 1) {  // §18.3 index ranges: no map bytes in the stream
        p.class_axis |= SLICER_DENSE_CLASS_MAP_RANGES;
        ++range_goldens;
      }
      if (info.class_map_kind == 2) {  // §18.4 boundaries: the encoders' input, from inspect
        p.class_axis |= SLICER_DENSE_CLASS_MAP_BOUNDS;
        p.class_bounds = info.class_bounds;
        p.class_bounds_count = info.classes - 1;
        ++bound_goldens;
      }
      int cs = 0;
      if (CpuEncode(data, info.dtype, shape, p, &cs) != stream || cs != 0)
        Fail("golden " + name + ": cpu encode differs from the golden");
      ++mode2_goldens;
    }
    const auto got = GpuEncode(data, info.dtype, shape, p, &gs);
    if (gs != 0 || got != stream)
      Fail("golden " + name + ": gpu encode status " + std::to_string(gs) +
           ", bytes differ from the golden");
  }
  if (mode2_goldens < 7) Fail("expected at least 7 mode-2 golden streams");
  if (mode3_goldens < 5) Fail("expected at least 5 mode-3 golden streams");
  if (kind_goldens < 4) Fail("expected at least 4 golden streams with table kinds 1 … 4");
  if (low_goldens < 3) Fail("expected at least 3 golden streams with low-bit planes");
  if (range_goldens < 2) Fail("expected at least 2 mode-2 golden streams with index ranges");
  if (bound_goldens < 3) Fail("expected at least 3 mode-2 golden streams with range boundaries");
  if (cases < 13) Fail("expected at least 13 golden streams in " + dir.string());
}

// Element i of a raw array of `dtype` set to v (rounded to the dtype as the encoders read it).
void StoreAs(double v, int dtype, uint8_t* out, size_t i) {
  if (dtype == SLICER_FLOAT64) {
    std::memcpy(&out[8 * i], &v, 8);
  } else if (dtype == SLICER_FLOAT32) {
    const float f = static_cast<float>(v);
    std::memcpy(&out[4 * i], &f, 4);
  } else {
    const float f = static_cast<float>(v);
    const uint16_t h = dtype == SLICER_FLOAT16 ? slicer::internal::FloatToHalf(f)
                                               : slicer::internal::FloatToBFloat16(f);
    std::memcpy(&out[2 * i], &h, 2);
  }
}

std::vector<uint8_t> MakeData(size_t n, int dtype, const std::string& kind, std::mt19937_64* rng) {
  std::normal_distribution<double> normal(0.0, 1.0);
  std::vector<uint8_t> out(n * Item(dtype));
  for (size_t i = 0; i < n; ++i) {
    double v = normal(*rng);
    if (kind == "outliers" && i % 397 == 0) v *= 1e4;
    if (kind == "relu" && v < 0) v = 0;
    if (kind == "huge" && i % 1001 == 5) v = 3e13;  // codes beyond 2^31 (the scalar CPU path)
    StoreAs(v, dtype, out.data(), i);
  }
  return out;
}

// Cases up to max_n elements.
void TestRandom(size_t max_n) {
  std::mt19937_64 rng(20261201);
  const int dtypes[4] = {SLICER_FLOAT32, SLICER_FLOAT16, SLICER_BFLOAT16, SLICER_FLOAT64};
  struct Shape {
    std::vector<int64_t> dims;
    unsigned layout;
  };
  const std::vector<Shape> shapes = {
      {{1}, 0},         {{7}, 0},    {{4096}, 0},     {{999999}, 0},
      {{}, 0},          {{3, 7}, 1}, {{64, 64}, 1},   {{2, 5, 3, 3}, 2},
      {{1, 9, 700}, 2}, {{0, 4}, 1}, {{13, 1000}, 1}, {{4, 3, 2100}, 2},
  };
  int c = 0;
  for (const Shape& sh : shapes) {
    size_t n = 1;
    for (int64_t d : sh.dims) n *= static_cast<size_t>(d);
    if (n > max_n) continue;
    for (int dt = 0; dt < 4; ++dt) {
      const int dtype = dtypes[dt];
      const char* kinds[4] = {"normal", "outliers", "relu", "huge"};
      const std::string kind = kinds[(c++) % 4];
      const auto data = MakeData(n, dtype, kind, &rng);
      slicer_dense_params p;
      slicer_dense_params_init(&p);
      p.step = dtype == SLICER_BFLOAT16 ? 0.07f : 0.013f;
      p.rho_256 = static_cast<uint8_t>(1 + rng() % 128);
      p.chunk_log2 = static_cast<uint8_t>(n > 100000 ? 14 + rng() % 3 : 6 + rng() % 8);
      p.layout = static_cast<uint8_t>(sh.layout);
      if (rng() % 3 == 0) {
        p.auto_offsets = 0;
        p.offset1 = static_cast<int8_t>(rng() % 256);
        p.offset2 = static_cast<int8_t>(rng() % 256);
      }
      std::vector<uint8_t> table;
      uint64_t groups = 1;
      if (sh.layout == 1 && !sh.dims.empty()) groups = n ? n / sh.dims.back() : 0;
      if (sh.layout == 2) groups = static_cast<uint64_t>(sh.dims[1]);
      if (sh.layout != 0 || rng() % 2) {
        for (uint64_t g = 0; g < groups; ++g) {
          const unsigned r = rng() % 6;
          table.push_back(r == 0   ? 0x80
                          : r == 1 ? 0x81
                                   : static_cast<uint8_t>(
                                         static_cast<int8_t>(static_cast<int>(rng() % 40) - 20)));
        }
        p.group_table = table.data();
        p.group_table_size = table.size();
      }
      std::string what = kind + " dtype " + std::to_string(dtype) + " n " + std::to_string(n) +
                         " layout " + std::to_string(sh.layout);
      CheckCase(data, dtype, sh.dims, p, what);
      if (n == 4096) {  // every chunk large enough for four interleaved states
        p.chunk_log2 = 13;
        p.group_table = nullptr;
        p.group_table_size = 0;
        CheckCase(data, dtype, sh.dims, p, what + " K=4");
      }
    }
  }
  // Encoder errors: the first bad element decides, as in the C++ encoder.
  for (int dt = 0; dt < 4; ++dt) {
    const int dtype = dtypes[dt];
    auto data = MakeData(3000, dtype, "normal", &rng);
    slicer_dense_params p;
    slicer_dense_params_init(&p);
    const size_t item = Item(dtype);
    std::vector<uint8_t> bad = data;
    const double inf = INFINITY;
    if (dtype == SLICER_FLOAT64) std::memcpy(&bad[item * 2500], &inf, 8);
    if (dtype == SLICER_FLOAT32) {
      const float f = INFINITY;
      std::memcpy(&bad[item * 2500], &f, 4);
    }
    if (item == 2)
      bad[2 * 2500 + 1] = dtype == SLICER_FLOAT16 ? 0x7C : 0x7F,
                     bad[2 * 2500] = dtype == SLICER_FLOAT16 ? 0x00 : 0x80;
    CheckCase(bad, dtype, {3000}, p, "infinity dtype " + std::to_string(dtype));
    p.step = 0x1p-126f;  // codes above 2^53: "step too small"
    CheckCase(data, dtype, {3000}, p, "tiny step dtype " + std::to_string(dtype));
  }
}

// Mode 1's low-bit plane (§13.6) and table kinds (§13.5) on both encoders: random inputs at
// awkward sizes (1, 63, 4097, several chunks with four interleaved states), every dtype, the
// three layouts with zero / raw / scaled groups, codes above 2^33, rates from ≈ 1 to ≈ 12 b/el,
// low_bits 0, 1, 5, 15 and auto with table_kind 0 … 4 and auto: the GPU's stream is the CPU's
// byte for byte and decodes to the CPU decode's values; the streams really carry planes of every
// width asked and every table kind (auto included), and modes 2 / 3 keep k = 0, kind 0.
void TestPlanesAndKinds() {
  std::mt19937_64 rng(20261202);
  const int dtypes[4] = {SLICER_FLOAT32, SLICER_FLOAT16, SLICER_BFLOAT16, SLICER_FLOAT64};
  struct Shape {
    std::vector<int64_t> dims;
    unsigned layout;
    unsigned chunk_log2;
  };
  const std::vector<Shape> shapes = {
      {{1}, 0, 6},      {{63}, 0, 6},          {{4097}, 0, 6},     {{3, 21}, 1, 6},
      {{4097}, 0, 12},  {{9, 4097}, 1, 13},    {{2, 5, 700}, 2, 9}, {{70001}, 0, 14},
      {{1, 3, 30}, 2, 6}, {{0, 5}, 1, 6},
  };
  const unsigned lows[5] = {0, 1, 5, 15, SLICER_DENSE_LOW_BITS_AUTO};
  const unsigned kinds[6] = {0, 1, 2, 3, 4, SLICER_DENSE_TABLE_AUTO};
  const float steps[4] = {0.5f, 0.04f, 0.004f, 0.0004f};  // about 1, 5, 8, 12 b/el
  int cases = 0, seen_low[16] = {}, seen_kind[5] = {}, auto_low = 0, auto_kind = 0;
  for (size_t si = 0; si < shapes.size(); ++si) {
    const Shape& sh = shapes[si];
    size_t n = 1;
    for (int64_t d : sh.dims) n *= static_cast<size_t>(d);
    for (int dt = 0; dt < 4; ++dt) {
      const int dtype = dtypes[dt];
      const char* data_kinds[3] = {"normal", "outliers", "huge"};
      // (codes above 2^33: not in float16, whose range ends at 65504)
      const std::string data_kind =
          dtype == SLICER_FLOAT16 && (si + dt) % 3 == 2 ? "normal" : data_kinds[(si + dt) % 3];
      const auto data = MakeData(n, dtype, data_kind, &rng);
      std::vector<uint8_t> table;
      uint64_t groups = 1;
      if (sh.layout == 1 && !sh.dims.empty()) groups = n ? n / sh.dims.back() : 0;
      if (sh.layout == 2) groups = static_cast<uint64_t>(sh.dims[1]);
      const bool with_table = sh.layout != 0 || dt == 3;
      for (uint64_t g = 0; with_table && g < groups; ++g) {
        const unsigned r = rng() % 5;
        table.push_back(r == 0   ? 0x80
                        : r == 1 ? 0x81
                                 : static_cast<uint8_t>(
                                       static_cast<int8_t>(static_cast<int>(rng() % 24) - 12)));
      }
      if (sh.layout == 1 && groups >= 2) table[0] = 0;  // a dense group in every table
      // Small inputs: every (low_bits, table_kind); larger ones: eight of them, auto included.
      std::vector<std::pair<unsigned, unsigned>> combos;
      for (const unsigned low : lows)
        for (const unsigned kind : kinds)
          if (n < 1000 || rng() % 4 == 0 || (low == lows[4] && kind == kinds[5]))
            combos.emplace_back(low, kind);
      for (const auto& [low, kind] : combos) {
        slicer_dense_params p;
        slicer_dense_params_init(&p);
        // (3e13 at the two finer steps, scaled down by a group, would give codes above 2^53)
        p.step = steps[rng() % (data_kind == "huge" ? 2 : 4)] *
                 (dtype == SLICER_BFLOAT16 ? 4.0f : 1.0f);
        p.rho_256 = static_cast<uint8_t>(1 + rng() % 128);
        p.chunk_log2 = static_cast<uint8_t>(sh.chunk_log2);
        p.layout = static_cast<uint8_t>(sh.layout);
        if (rng() % 3 == 0) {
          p.auto_offsets = 0;
          p.offset1 = static_cast<int8_t>(rng() % 256);
          p.offset2 = static_cast<int8_t>(rng() % 256);
        }
        if (with_table) {
          p.group_table = table.data();
          p.group_table_size = table.size();
        }
        p.low_bits = static_cast<uint8_t>(low);
        p.table_kind = static_cast<uint8_t>(kind);
        const std::string what = "plane/kind " + data_kind + " dtype " + std::to_string(dtype) +
                                 " n " + std::to_string(n) + " layout " +
                                 std::to_string(sh.layout) + " step " + std::to_string(p.step) +
                                 " low_bits " + std::to_string(low) + " table_kind " +
                                 std::to_string(kind);
        CheckCase(data, dtype, sh.dims, p, what);
        ++cases;
        int st = 0;
        const auto stream = CpuEncode(data, dtype, sh.dims, p, &st);
        slicer_dense_info info{};
        if (st != 0 ||
            slicer_dense_inspect(stream.data(), stream.size(), uint64_t{1} << 40, &info) != 0) {
          Fail(what + ": cpu stream not inspected");
          continue;
        }
        if (low != SLICER_DENSE_LOW_BITS_AUTO && info.low_bits != low) Fail(what + ": k");
        if (kind != SLICER_DENSE_TABLE_AUTO && info.table_kind != kind) Fail(what + ": kind");
        if (info.symbols > 0) {  // something coded: count what the streams carry
          ++seen_low[info.low_bits];
          ++seen_kind[info.table_kind];
          auto_low += low == SLICER_DENSE_LOW_BITS_AUTO && info.low_bits != 0;
          auto_kind += kind == SLICER_DENSE_TABLE_AUTO && info.table_kind != 0;
        }
      }
    }
  }
  for (const unsigned k : {1u, 5u, 15u})
    if (seen_low[k] < 10) Fail("too few coded cases with low_bits " + std::to_string(k));
  for (unsigned t = 0; t < 5; ++t)
    if (seen_kind[t] < 10) Fail("too few coded cases with table kind " + std::to_string(t));
  if (auto_low < 5) Fail("low_bits auto chose a plane in too few cases");
  if (auto_kind < 5) Fail("table_kind auto chose a kind other than 0 in too few cases");
  // Modes 2 and 3 keep k = 0 and kind 0: auto gives the plain stream on both encoders, an
  // explicit width or kind is refused by both with the same status.
  {
    const auto data = MakeData(40 * 100, SLICER_FLOAT32, "normal", &rng);
    slicer_dense_params p;
    slicer_dense_params_init(&p);
    p.step = 0.004f;
    p.classes = 4;
    p.low_bits = SLICER_DENSE_LOW_BITS_AUTO;
    p.table_kind = SLICER_DENSE_TABLE_AUTO;
    CheckCase(data, SLICER_FLOAT32, {40, 100}, p, "mode 2 with auto plane and kind");
    int st = 0;
    const auto stream = CpuEncode(data, SLICER_FLOAT32, {40, 100}, p, &st);
    slicer_dense_info info{};
    ++checks;
    if (st != 0 ||
        slicer_dense_inspect(stream.data(), stream.size(), uint64_t{1} << 40, &info) != 0 ||
        info.mode != 2 || info.low_bits != 0 || info.table_kind != 0)
      Fail("mode 2 with auto plane and kind: not a plain mode-2 stream");
    p.low_bits = 5;
    p.table_kind = 0;
    CheckCase(data, SLICER_FLOAT32, {40, 100}, p, "mode 2 with low_bits 5");
    p.low_bits = 0;
    p.table_kind = 4;
    CheckCase(data, SLICER_FLOAT32, {40, 100}, p, "mode 2 with table kind 4");
    CpuEncode(data, SLICER_FLOAT32, {40, 100}, p, &st);
    ++checks;
    if (st != SLICER_ERR_INVALID_ARGUMENT) Fail("mode 2 with table kind 4 accepted by the cpu");
    p.classes = 1;
    p.trellis = 1;
    p.table_kind = 0;
    p.low_bits = 3;
    int gs = 0;
    CpuEncode(data, SLICER_FLOAT32, {40, 100}, p, &st);
    GpuEncode(data, SLICER_FLOAT32, {40, 100}, p, &gs);
    ++checks;
    if (st != SLICER_ERR_INVALID_ARGUMENT || gs != SLICER_ERR_INVALID_ARGUMENT)
      Fail("mode 3 with low_bits 3: cpu " + std::to_string(st) + " gpu " + std::to_string(gs));
  }
  std::printf(
      "low-bit planes / table kinds: %d cases (coded with k = 1: %d, 5: %d, 15: %d; kinds 0-4: "
      "%d %d %d %d %d), auto chose a plane in %d and a kind other than 0 in %d\n",
      cases, seen_low[1], seen_low[5], seen_low[15], seen_kind[0], seen_kind[1], seen_kind[2],
      seen_kind[3], seen_kind[4], auto_low, auto_kind);
}

// Data whose spread depends on the element's position along the class axis (§19.1: position
// (i / inner) mod len), so that the class map (§18.2) has distinct sums to rank: any error in the
// device's per-position sums moves positions between classes and changes the map's bytes.
std::vector<uint8_t> MakePositional(size_t n, int dtype, uint64_t len, uint64_t inner,
                                    std::mt19937_64* rng) {
  std::normal_distribution<double> normal(0.0, 1.0);
  std::vector<uint8_t> out(n * Item(dtype));
  for (size_t i = 0; i < n; ++i) {
    const uint64_t pos = (i / inner) % len;
    const double v = normal(*rng) * (0.2 + static_cast<double>((pos * 37 + 11) % 23));
    StoreAs(v, dtype, out.data(), i);
  }
  return out;
}

// The CPU's stream for (data, p) must be mode 2 with K classes; true when some class is empty
// (its table has nsym = 0: one byte, §19.2).
bool CheckMode2Stream(const std::vector<uint8_t>& data, int dtype, const std::vector<int64_t>& dims,
                      const slicer_dense_params& p, const std::string& what) {
  int st = 0;
  const auto stream = CpuEncode(data, dtype, dims, p, &st);
  slicer_dense_info info{};
  ++checks;
  if (st != 0 ||
      slicer_dense_inspect(stream.data(), stream.size(), uint64_t{1} << 40, &info) != 0 ||
      info.mode != 2 || info.classes != p.classes) {
    Fail(what + ": not a mode-2 stream (status " + std::to_string(st) + ")");
    return false;
  }
  const bool ranges = (p.class_axis & SLICER_DENSE_CLASS_MAP_RANGES) != 0;
  if ((info.class_map_kind == 1) != ranges || (ranges && info.class_map_bytes != 0))
    Fail(what + ": class map kind / bytes");
  const bool bounds = (p.class_axis & SLICER_DENSE_CLASS_MAP_BOUNDS) != 0;
  if ((info.class_map_kind == 2) != bounds) Fail(what + ": class map kind (boundaries)");
  for (uint32_t j = 0; bounds && j + 1 < info.classes; ++j)
    if (info.class_bounds[j] != p.class_bounds[j]) Fail(what + ": class boundaries");
  for (uint32_t c = 0; c < info.classes; ++c)
    if (info.class_table_bytes[c] == 1) return true;
  return false;
}

// Mode 2 (§19): the emulated GPU encode equals the CPU encode byte for byte (and both decoders
// give the CPU decode's values) on both class axes, 2 … 16 classes, zero / raw / scaled groups,
// empty classes, codes above 2^33 (symbols ≥ 255, the CPU's scalar path), one and four
// interleaved states; argument errors with the CPU's status.
void TestClasses() {
  std::mt19937_64 rng(19);
  struct Case {
    std::vector<int64_t> dims;
    unsigned layout, axis, classes;
  };
  const std::vector<Case> cases = {
      {{1, 2}, 0, 0, 2},          {{7, 5}, 0, 0, 3},    {{7, 5}, 1, 0, 5},
      {{64, 576}, 0, 0, 16},      {{64, 576}, 1, 0, 3}, {{2, 12, 5, 5}, 2, 1, 4},
      {{2, 16, 9, 31}, 2, 1, 16}, {{3, 5, 7}, 0, 1, 5}, {{3, 5, 7}, 1, 1, 2},
      {{5, 999}, 1, 0, 16},       {{9, 130}, 1, 0, 8},  {{1, 9, 700}, 2, 1, 9},
      {{0, 4}, 0, 0, 2},          {{4, 2, 0}, 2, 1, 2}, {{13, 1000}, 1, 0, 7},
      {{2, 40, 300}, 0, 1, 16},   {{600, 2}, 0, 0, 2},  {{6, 3, 4096}, 2, 1, 3},
  };
  const int dtypes[4] = {SLICER_FLOAT32, SLICER_FLOAT16, SLICER_BFLOAT16, SLICER_FLOAT64};
  int c = 0, huge_cases = 0, four_state_cases = 0, range_cases = 0, bound_cases = 0;
  for (const Case& cs : cases) {
    size_t n = 1;
    for (int64_t d : cs.dims) n *= static_cast<size_t>(d);
    const uint64_t len = static_cast<uint64_t>(cs.axis == 0 ? cs.dims.back() : cs.dims[1]);
    uint64_t inner = 1;
    for (size_t d = 2; cs.axis == 1 && d < cs.dims.size(); ++d)
      inner *= static_cast<uint64_t>(cs.dims[d]);
    for (int dt = 0; dt < 4; ++dt) {
      const int dtype = dtypes[dt];
      const char* kinds[4] = {"normal", "outliers", "huge", "positional"};  // huge: m >= 2^33
      std::string kind = kinds[(c++) % 4];
      if (kind == "huge" && dtype == SLICER_FLOAT16) kind = "positional";  // 3e13 is inf there
      const auto data = kind == "positional" ? MakePositional(n, dtype, len ? len : 1, inner, &rng)
                                             : MakeData(n, dtype, kind, &rng);
      slicer_dense_params p;
      slicer_dense_params_init(&p);
      p.step = dtype == SLICER_BFLOAT16 ? 0.07f : 0.013f;
      p.rho_256 = static_cast<uint8_t>(1 + rng() % 128);
      p.chunk_log2 = static_cast<uint8_t>(n >= 30000 ? 13 + rng() % 2 : 6 + rng() % 6);
      p.layout = static_cast<uint8_t>(cs.layout);
      p.classes = static_cast<uint8_t>(cs.classes);
      p.class_axis = static_cast<uint8_t>(cs.axis);
      if (dt % 2) {  // §18.3 index ranges: the map is the format layer's, no bytes
        p.class_axis |= SLICER_DENSE_CLASS_MAP_RANGES;
        ++range_cases;
      }
      std::vector<uint64_t> cuts;  // §18.4: K − 1 random distinct positions of 1 … L − 1
      if (dt == 2) {
        std::vector<uint64_t> all;
        for (uint64_t a = 1; a < len; ++a) all.push_back(a);
        std::shuffle(all.begin(), all.end(), rng);
        cuts.assign(all.begin(), all.begin() + (cs.classes - 1));
        std::sort(cuts.begin(), cuts.end());
        p.class_axis |= SLICER_DENSE_CLASS_MAP_BOUNDS;
        p.class_bounds = cuts.data();
        p.class_bounds_count = static_cast<uint32_t>(cuts.size());
        ++bound_cases;
      }
      if (rng() % 3 == 0) {
        p.auto_offsets = 0;
        p.offset1 = static_cast<int8_t>(rng() % 256);
        p.offset2 = static_cast<int8_t>(rng() % 256);
      }
      std::vector<uint8_t> table;
      uint64_t groups = 1;
      if (cs.layout == 1) groups = n ? n / static_cast<uint64_t>(cs.dims.back()) : 0;
      if (cs.layout == 2) groups = static_cast<uint64_t>(cs.dims[1]);
      if (cs.layout != 0 || dt == 3) {
        for (uint64_t g = 0; g < groups; ++g) {
          const unsigned r = rng() % 5;
          table.push_back(r == 0   ? 0x80
                          : r == 1 ? 0x81
                                   : static_cast<uint8_t>(
                                         static_cast<int8_t>(static_cast<int>(rng() % 24) - 12)));
        }
        p.group_table = table.data();
        p.group_table_size = table.size();
      }
      const std::string what = "classes " + std::to_string(cs.classes) + " axis " +
                               std::to_string(cs.axis) + " layout " + std::to_string(cs.layout) +
                               " " + kind + " dtype " + std::to_string(dtype) + " n " +
                               std::to_string(n) + " chunk_log2 " + std::to_string(p.chunk_log2);
      CheckMode2Stream(data, dtype, cs.dims, p, what);
      CheckCase(data, dtype, cs.dims, p, what);
      huge_cases += kind == "huge" && n > 1001;
      four_state_cases += p.chunk_log2 >= 13 && n >= 8192;
    }
  }
  if (huge_cases < 8 || four_state_cases < 8) Fail("too few huge-code / four-state mode-2 cases");
  if (range_cases < 30) Fail("too few index-range mode-2 cases");
  if (bound_cases < 15) Fail("too few range-boundary mode-2 cases");

  // Empty classes (§19.2): whole channel planes (axis 1) in zero / raw groups have S_a = 0, rank
  // first and fill class 0, whose table then has nsym = 0.
  int empty = 0;
  for (const unsigned k : {2u, 3u, 4u, 16u}) {
    for (int dt = 0; dt < 4; ++dt) {
      const int dtype = dtypes[dt];
      const std::vector<int64_t> dims = {3, 32, 4, 5};
      const auto data = MakePositional(3 * 32 * 20, dtype, 32, 20, &rng);
      std::vector<uint8_t> table(32);
      for (unsigned g = 0; g < 32; ++g)  // at least 32 / k planes not coded
        table[g] = g < 32 / k + 1 ? (g % 2 ? 0x80 : 0x81) : static_cast<uint8_t>(g % 5);
      slicer_dense_params p;
      slicer_dense_params_init(&p);
      p.step = 0.05f;
      p.chunk_log2 = 6;
      p.layout = SLICER_DENSE_LAYOUT_CHANNELS;
      p.group_table = table.data();
      p.group_table_size = table.size();
      p.classes = static_cast<uint8_t>(k);
      p.class_axis = 1;
      // index ranges: class 0 is planes [0, 32 / k), all zero / raw as well
      if (dt % 2) p.class_axis |= SLICER_DENSE_CLASS_MAP_RANGES;
      const std::string what = "empty class k " + std::to_string(k) + " dtype " +
                               std::to_string(dtype) + (dt % 2 ? " ranges" : " rank");
      if (!CheckMode2Stream(data, dtype, dims, p, what)) Fail(what + ": no empty class");
      CheckCase(data, dtype, dims, p, what);
      ++empty;
      // Every group zero: every class empty, no chunk payload.
      std::vector<uint8_t> zeros(32, 0x80);
      p.group_table = zeros.data();
      CheckCase(data, dtype, dims, p, what + " all zero groups");
    }
  }
  // All codes zero: every S_a = 0, the map by index alone.
  {
    std::vector<uint8_t> data(4 * 7 * 33, 0);
    slicer_dense_params p;
    slicer_dense_params_init(&p);
    p.step = 0.1f;
    p.classes = 16;
    CheckCase(data, SLICER_FLOAT32, {7, 33}, p, "all codes zero");
  }

  // Argument errors: the GPU's temp-size query and encoder give the CPU's status.
  struct Bad {
    std::vector<int64_t> dims;
    unsigned axis, classes;
    std::vector<uint64_t> cuts = {};  // §18.4 boundaries (with bit 2 of axis)
  };
  const std::vector<Bad> bad = {
      {{7}, 1, 2},  // axis 1 needs ndim >= 2
      {{}, 0, 2},   // a scalar has no last axis
      {{9, 3}, 0, 4},
      {{3, 2, 8}, 1, 3},  // K above L
      {{4, 40}, 0, 17},
      {{4, 40}, 4, 2},  // K out of range; boundaries without any given
      {{4, 40}, 6, 2},
      {{9, 3}, 2, 4},  // bits 1 and 2 set; index ranges with K above L
      {{7}, 3, 2},
      {{4, 40}, 8, 2},  // ranges along a missing axis 1; bit 3 set
      {{4, 40}, 4, 3, {5, 5}},
      {{4, 40}, 4, 3, {9, 4}},  // boundaries not rising
      {{4, 40}, 4, 3, {0, 4}},
      {{4, 40}, 4, 3, {4, 40}},  // boundaries at 0 / at L
      {{4, 40}, 4, 3, {4}},
      {{4, 40}, 4, 2, {4, 9}},  // K − 1 of them needed
  };
  for (const Bad& b : bad) {
    size_t n = 1;
    for (int64_t d : b.dims) n *= static_cast<size_t>(d);
    const auto data = MakeData(n, SLICER_FLOAT32, "normal", &rng);
    slicer_dense_params p;
    slicer_dense_params_init(&p);
    p.step = 0.1f;
    p.classes = static_cast<uint8_t>(b.classes);
    p.class_axis = static_cast<uint8_t>(b.axis);
    if (!b.cuts.empty()) {
      p.class_bounds = b.cuts.data();
      p.class_bounds_count = static_cast<uint32_t>(b.cuts.size());
    }
    const std::string what = "bad classes " + std::to_string(b.classes) + " axis " +
                             std::to_string(b.axis) + " ndim " + std::to_string(b.dims.size()) +
                             " cuts " + std::to_string(b.cuts.size());
    int cs = 0;
    CpuEncode(data, SLICER_FLOAT32, b.dims, p, &cs);
    ++checks;
    if (cs != SLICER_ERR_INVALID_ARGUMENT) Fail(what + ": cpu gives " + std::to_string(cs));
    CheckCase(data, SLICER_FLOAT32, b.dims, p, what);  // same status from the GPU encoder
    size_t temp = 0;
    ++checks;
    const int ts = slicer_cuda_dense_encode_temp_size(
        b.dims.data(), static_cast<uint32_t>(b.dims.size()), SLICER_FLOAT32, &p, &temp);
    if (ts != cs) Fail(what + ": temp size gives " + std::to_string(ts));
  }
  // A non-finite input in a mode-2 stream: the first bad element's status, as the CPU.
  {
    auto data = MakeData(4000, SLICER_FLOAT32, "normal", &rng);
    const float inf = INFINITY;
    std::memcpy(&data[4 * 3100], &inf, 4);
    slicer_dense_params p;
    slicer_dense_params_init(&p);
    p.classes = 4;
    CheckCase(data, SLICER_FLOAT32, {40, 100}, p, "mode 2 infinity");
    p.step = 0x1p-126f;
    CheckCase(MakeData(4000, SLICER_FLOAT32, "normal", &rng), SLICER_FLOAT32, {40, 100}, p,
              "mode 2 tiny step");
  }
  std::printf(
      "mode 2: %d empty-class cases, %d with codes above 2^33, %d with four states, %d with "
      "index ranges, %d with range boundaries\n",
      empty, huge_cases, four_state_cases, range_cases, bound_cases);
}

// Damaged chunk payloads / tables with the checksum recomputed: the chunk checks must reject
// them as the C++ decoder does (or accept the same values).
void TestDamaged() {
  std::mt19937_64 rng(7);
  std::vector<std::vector<uint8_t>> streams;
  std::vector<size_t> sizes;
  const int dtypes[4] = {SLICER_FLOAT32, SLICER_FLOAT16, SLICER_BFLOAT16, SLICER_FLOAT64};
  // 14 … 18: mode 1 with table kinds 0 … 4 (§13.5); 19 … 22: low-bit planes of 3, 5, 9, 15 bits
  // (§13.6), the last one with the geometric table
  for (int k = 0; k < 23; ++k) {
    const int dtype = dtypes[k % 4];
    const size_t n = k < 4 || (k >= 11 && k < 16) ? 700 : 9000;
    const auto data = MakeData(n, dtype, k % 2 ? "outliers" : "normal", &rng);
    slicer_dense_params p;
    slicer_dense_params_init(&p);
    p.step = 0.05f;
    p.chunk_log2 = k < 4 ? 8 : 14;
    std::vector<int64_t> shape = {static_cast<int64_t>(n / 100), 100};
    std::vector<uint8_t> table;
    if (k % 3 == 0) {
      p.layout = 1;
      for (size_t g = 0; g < n / 100; ++g)
        table.push_back(g % 5 == 1 ? 0x81 : g % 5 == 2 ? 0x80 : 0);
      p.group_table = table.data();
      p.group_table_size = table.size();
    }
    if (k >= 8) p.classes = static_cast<uint8_t>(2 + (k % 3) * 7);      // mode 2: 2, 9, 16 classes
    if (k >= 8 && k % 2) p.class_axis = SLICER_DENSE_CLASS_MAP_RANGES;  // §18.3 index ranges
    if (k >= 14 && k < 19) {  // §13.5 table kinds in mode 1
      p.classes = 0;
      p.class_axis = 0;
      p.table_kind = static_cast<uint8_t>(k - 14);
      p.step = k % 2 ? 0.5f : 0.05f;
    }
    if (k >= 19) {  // §13.6 low-bit planes in mode 1
      const uint8_t widths[4] = {3, 5, 9, 15};
      p.classes = 0;
      p.class_axis = 0;
      p.low_bits = widths[k - 19];
      p.table_kind = k == 22 ? 4 : 0;
      p.step = k % 2 ? 0.002f : 0.0001f;
      p.chunk_log2 = k % 2 ? 8 : 14;
    }
    int st = 0;
    streams.push_back(CpuEncode(data, dtype, shape, p, &st));
    if (st != 0) Fail("damaged-stream source " + std::to_string(k) + " not encoded");
    sizes.push_back(data.size());
  }
  int damaged = 0;
  for (size_t s = 0; s < streams.size(); ++s) {
    for (int t = 0; t < 60; ++t) {
      std::vector<uint8_t> d = streams[s];
      const size_t body = d.size() - 4;
      const unsigned how = rng() % 4;
      if (how == 0) {
        d[rng() % body] ^= static_cast<uint8_t>(1u << (rng() % 8));
      } else if (how == 1) {
        d[body - 1 - rng() % std::min<size_t>(body, 64)] = static_cast<uint8_t>(rng());
      } else if (how == 2) {
        const size_t at = rng() % body;
        d.erase(d.begin() + static_cast<std::ptrdiff_t>(at));
      } else {
        d.insert(d.begin() + static_cast<std::ptrdiff_t>(body - rng() % 16), 0);
      }
      const size_t b = d.size() - 4;
      const uint32_t crc = slicer::internal::Crc32(0, d.data(), b);
      for (int q = 0; q < 4; ++q) d[b + q] = static_cast<uint8_t>(crc >> (8 * q));
      CheckDecode(d, sizes[s], "damaged stream " + std::to_string(s) + " try " + std::to_string(t));
      ++damaged;
    }
    // Truncations and a wrong checksum: rejected before any kernel runs.
    std::vector<uint8_t> cut(streams[s].begin(), streams[s].begin() + 8);
    CheckDecode(cut, sizes[s], "truncated");
    std::vector<uint8_t> crc = streams[s];
    crc.back() ^= 1;
    CheckDecode(crc, sizes[s], "checksum");
    CheckDecode(streams[s], sizes[s] - 1, "small buffer");
  }
  // §13.5: the geometric table's z, a at every extreme and the group_table byte at every
  // value (kinds 5 … 7, §13.6's widths in bits 4 … 7, kinds in mode 2): the same status and
  // values.
  for (size_t s = 14; s < streams.size(); ++s) {
    slicer_dense_info info{};
    if (slicer_dense_inspect(streams[s].data(), streams[s].size(), uint64_t{1} << 40, &info) != 0)
      Fail("table-kind source not inspected");
    const size_t at = info.header_bytes + info.group_table_bytes;  // the table's nsym varint
    const size_t nsym_len = info.symbols < 128 ? 1 : 2;
    for (const unsigned z : {0u, 1u, 127u, 255u}) {
      for (const unsigned a : {0u, 1u, 15u, 16u, 100u, 255u}) {
        if (info.table_kind != 4) break;
        std::vector<uint8_t> d = streams[s];
        d[at + nsym_len] = static_cast<uint8_t>(z);
        d[at + nsym_len + 1] = static_cast<uint8_t>(a);
        const size_t b = d.size() - 4;
        const uint32_t crc = slicer::internal::Crc32(0, d.data(), b);
        for (int q = 0; q < 4; ++q) d[b + q] = static_cast<uint8_t>(crc >> (8 * q));
        CheckDecode(d, sizes[s],
                    "geometric table z " + std::to_string(z) + " a " + std::to_string(a));
      }
    }
    const size_t byte_at = info.header_bytes - 1;  // the mode's last parameter: group_table
    for (unsigned v = 0; v < 256; v += 3) {
      std::vector<uint8_t> d = streams[s];
      d[byte_at] = static_cast<uint8_t>(v);
      const size_t b = d.size() - 4;
      const uint32_t crc = slicer::internal::Crc32(0, d.data(), b);
      for (int q = 0; q < 4; ++q) d[b + q] = static_cast<uint8_t>(crc >> (8 * q));
      CheckDecode(d, sizes[s], "group_table byte " + std::to_string(v));
    }
  }
  // Most random damage must reach a rejection (else the test checks little).
  if (rejected < damaged) Fail("only " + std::to_string(rejected) + " rejections");
  std::printf("damaged streams: %d, rejected decodes (C++ = CUDA status): %d\n", damaged, rejected);
}

// Mode 3 (§21): CPU-encoded streams of every dtype, both lane counts, zero / raw groups and
// class maps decode to the same values on the GPU; damaged ones get the C++ decoder's status.
void TestTrellis() {
  std::mt19937_64 rng(21);
  const int dtypes[4] = {SLICER_FLOAT32, SLICER_FLOAT16, SLICER_BFLOAT16, SLICER_FLOAT64};
  int streams = 0;
  for (int k = 0; k < 12; ++k) {
    const int dtype = dtypes[k % 4];
    const size_t n = k < 6 ? 1200 : 20000;
    const auto data = MakeData(n, dtype, k % 2 ? "outliers" : "normal", &rng);
    slicer_dense_params p;
    slicer_dense_params_init(&p);
    p.trellis = 1;
    p.trellis_lambda = k % 3 == 0 ? 0.24 : 0.46;
    p.step = k % 2 ? 0.02f : 0.3f;
    p.chunk_log2 = k < 6 ? 8 : 14;
    std::vector<int64_t> shape = {static_cast<int64_t>(n / 100), 100};
    std::vector<uint8_t> table;
    if (k % 3 == 1) {
      p.layout = 1;
      for (size_t g = 0; g < n / 100; ++g)
        table.push_back(g % 5 == 1 ? 0x81 : g % 5 == 2 ? 0x80 : static_cast<uint8_t>(g % 7));
      p.group_table = table.data();
      p.group_table_size = table.size();
    }
    if (k % 4 >= 2) p.classes = static_cast<uint8_t>(k % 4 == 2 ? 4 : 16);
    if (k % 4 == 3) p.class_axis = SLICER_DENSE_CLASS_MAP_RANGES;
    int st = 0;
    const auto stream = CpuEncode(data, dtype, shape, p, &st);
    slicer_dense_info info{};
    if (st != 0 || slicer_dense_inspect(stream.data(), stream.size(), n, &info) != 0 ||
        info.mode != 3) {
      Fail("trellis source " + std::to_string(k) + " not a mode-3 stream");
      continue;
    }
    const std::string what = "trellis " + std::to_string(k);
    CheckDecode(stream, data.size(), what);
    int gs = 0;
    GpuEncode(data, dtype, shape, p, &gs);
    if (gs != SLICER_ERR_INVALID_ARGUMENT) Fail(what + ": gpu encode of mode 3 accepted");
    for (int t = 0; t < 40; ++t) {
      std::vector<uint8_t> d = stream;
      const size_t body = d.size() - 4;
      if (t % 2) {
        d[rng() % body] ^= static_cast<uint8_t>(1u << (rng() % 8));
      } else {
        d[body - 1 - rng() % std::min<size_t>(body, 64)] = static_cast<uint8_t>(rng());
      }
      const uint32_t crc = slicer::internal::Crc32(0, d.data(), body);
      for (int q = 0; q < 4; ++q) d[body + q] = static_cast<uint8_t>(crc >> (8 * q));
      CheckDecode(d, data.size(), what + " damaged " + std::to_string(t));
    }
    ++streams;
  }
  std::printf("trellis (mode 3) streams: %d, each with 40 damaged copies\n", streams);
}

// docs/format.md §15.1: the default chunk sizes of the Python API (2^13 … 2^17, one chunk of
// the whole input, a one-state tail or none) give the CPU's bytes on the GPU too, modes 1 and 2.
void TestAutoChunkSizes() {
  std::mt19937_64 rng(1511);
  int cases = 0;
  for (const size_t n : {size_t{16384}, size_t{20000}, size_t{21952}, size_t{36000},
                         size_t{50000}, size_t{131072}, size_t{250000}}) {
    const unsigned c = slicer_dense_auto_chunk_log2(n);
    for (const int dtype : {SLICER_FLOAT32, SLICER_FLOAT16}) {
      const auto data = MakeData(n, dtype, cases % 2 ? "outliers" : "normal", &rng);
      slicer_dense_params p;
      slicer_dense_params_init(&p);
      p.step = 0.013f;
      p.chunk_log2 = static_cast<uint8_t>(c);
      const std::string what = "auto chunk n " + std::to_string(n) + " chunk_log2 " +
                               std::to_string(c) + " dtype " + std::to_string(dtype);
      CheckCase(data, dtype, {static_cast<int64_t>(n)}, p, what);
      if (n % 64 == 0) {  // mode 2: four classes along rows of 64
        p.classes = 4;
        const std::vector<int64_t> rows = {static_cast<int64_t>(n / 64), 64};
        CheckMode2Stream(data, dtype, rows, p, what + " classes 4");
        CheckCase(data, dtype, rows, p, what + " classes 4");
      }
      ++cases;
    }
  }
  std::printf("default chunk sizes (§15.1): %d inputs\n", cases);
}

}  // namespace

int main() {
  TestAutoChunkSizes();
  TestTrellis();
  TestGolden();
  TestClasses();
  TestPlanesAndKinds();
  TestRandom(SIZE_MAX);
  slicer::cuda::dense_copy_per_chunk = true;  // the encoder's fallback path, smaller cases
  TestRandom(100000);
  slicer::cuda::dense_copy_per_chunk = false;
  TestDamaged();
  if (failures) {
    std::fprintf(stderr, "%d of %d emulated dense checks failed\n", failures, checks);
    return 1;
  }
  std::printf("emulated CUDA dense pipeline: %d checks passed\n", checks);
  return 0;
}
