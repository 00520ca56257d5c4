// The CUDA backend's full pipeline under the host emulation (emulation.hpp) against the C++
// codec: byte-identical streams on random inputs at awkward sizes, every dtype, the parameter
// corners of the spec, ties, batches along any axis, the device-output path with its device
// CRC, and decoding (host and "device" sources) equal to the C++ decoder, errors included.
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "float_bits.hpp"
#include "slicer/slicer.h"
#include "slicer/slicer_cuda.h"

namespace slicer::cuda {
extern uint64_t small_group_limit;  // encode.cu: groups up to this size take the fused kernel
}  // namespace slicer::cuda

namespace {

int failures = 0;
int checks = 0;

void Fail(const std::string& what) {
  ++failures;
  if (failures <= 30) std::fprintf(stderr, "FAIL: %s\n", what.c_str());
}

struct Input {
  std::vector<uint8_t> bytes;
  int dtype;
  std::vector<int64_t> shape;
  size_t Elements() const {
    size_t n = 1;
    for (int64_t d : shape) n *= static_cast<size_t>(d);
    return n;
  }
};

Input MakeInput(std::vector<int64_t> shape, int dtype, const std::string& kind, uint64_t seed) {
  Input in{{}, dtype, shape};
  const size_t n = in.Elements();
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> v(n);
  for (auto& x : v) x = normal(rng);
  if (kind == "ties") {
    for (auto& x : v) x = std::round(x * 2.0f) / 2.0f;
  } else if (kind == "relu") {
    for (auto& x : v) x = x > 0 ? x : 0.0f;
  } else if (kind == "outliers") {
    for (size_t i = 0; i < n; i += 397) v[i] *= 1e4f;
  } else if (kind == "equal") {
    for (size_t i = 0; i < n; ++i) v[i] = (i % 3 == 0) ? -2.5f : 2.5f;
  }
  const size_t item = dtype == SLICER_FLOAT32 ? 4 : 2;
  in.bytes.resize(n * item);
  for (size_t i = 0; i < n; ++i) {
    if (dtype == SLICER_FLOAT32) {
      std::memcpy(&in.bytes[4 * i], &v[i], 4);
    } else {
      const uint16_t h = dtype == SLICER_FLOAT16 ? slicer::internal::FloatToHalf(v[i])
                                                 : slicer::internal::FloatToBFloat16(v[i]);
      std::memcpy(&in.bytes[2 * i], &h, 2);
    }
  }
  return in;
}

std::string Describe(const Input& in, const slicer_params& p, const std::string& kind) {
  std::string s = kind + " dtype=" + std::to_string(in.dtype) + " shape=(";
  for (int64_t d : in.shape) s += std::to_string(d) + ",";
  s += ") s=" + std::to_string(p.sparsity_ppb) + " asym=" + std::to_string(p.asym_ppb) +
       " bits=" + std::to_string(p.bits) + " M=" + std::to_string(p.blocks_pos) + "/" +
       std::to_string(p.blocks_neg) + " levels=" + std::to_string(p.level_count) +
       " delta=" + std::to_string(p.delta_micro) + " c=" + std::to_string(p.chunk_log2) +
       " rows=" + std::to_string(p.group_rows) + " seed=" + std::to_string(p.seed);
  return s;
}

std::vector<uint8_t> CpuEncode(const Input& in, const slicer_params& p, int* status) {
  size_t bound = 0;
  *status = slicer_encode_bound(in.shape.data(), static_cast<uint32_t>(in.shape.size()),
                                in.dtype, &p, &bound);
  if (*status) return {};
  std::vector<uint8_t> out(bound);
  size_t written = 0;
  *status = slicer_encode(in.bytes.data(), in.dtype, in.shape.data(),
                          static_cast<uint32_t>(in.shape.size()), &p, out.data(), out.size(),
                          &written);
  out.resize(written);
  return out;
}

std::vector<uint8_t> CpuDecode(const std::vector<uint8_t>& stream, int* status) {
  slicer_header h{};
  *status = slicer_read_header(stream.data(), stream.size(), uint64_t{1} << 31, &h);
  if (*status) return {};
  std::vector<uint8_t> out(h.num_elements * (h.dtype == SLICER_FLOAT32 ? 4 : 2));
  *status = slicer_decode(stream.data(), stream.size(), uint64_t{1} << 31, out.data(),
                          out.size(), 1);
  return out;
}

// Decodes with the emulated GPU decoder from a host or a "device" source.
std::vector<uint8_t> GpuDecode(const std::vector<uint8_t>& stream, bool device_src,
                               int* status) {
  slicer_header h{};
  size_t temp_bytes = 0;
  *status = slicer_cuda_decode_temp_size(stream.data(), stream.size(), device_src,
                                         uint64_t{1} << 31, &h, &temp_bytes, nullptr);
  if (*status) return {};
  std::vector<uint8_t> temp(temp_bytes);
  std::vector<uint8_t> out(h.num_elements * (h.dtype == SLICER_FLOAT32 ? 4 : 2), 0xAB);
  *status = slicer_cuda_decode(stream.data(), stream.size(), device_src, uint64_t{1} << 31,
                               temp.data(), temp.size(), out.data(), out.size(), nullptr);
  return out;
}

void CheckCase(const Input& in, const slicer_params& p, const std::string& kind) {
  ++checks;
  const std::string what = Describe(in, p, kind);
  const uint32_t ndim = static_cast<uint32_t>(in.shape.size());
  int cpu_status = 0;
  const std::vector<uint8_t> cpu = CpuEncode(in, p, &cpu_status);
  size_t temp_bytes = 0;
  int status = slicer_cuda_encode_temp_size(in.shape.data(), ndim, in.dtype, &p, &temp_bytes);
  // The size query sees shape and parameters only: it fails exactly on their errors.
  if (status != cpu_status && cpu_status && cpu_status != SLICER_ERR_NONFINITE_INPUT) {
    Fail(what + ": temp size status " + std::to_string(status) + " vs cpu " +
         std::to_string(cpu_status));
    return;
  }
  std::vector<uint8_t> temp(temp_bytes);
  size_t bound = 0;
  slicer_encode_bound(in.shape.data(), ndim, in.dtype, &p, &bound);
  for (int device_dst = 0; device_dst < 2; ++device_dst) {
    std::vector<uint8_t> gpu(bound + 16, 0xCD);
    size_t written = 0;
    status = device_dst
                 ? slicer_cuda_encode(in.bytes.data(), in.dtype, in.shape.data(), ndim, &p,
                                      temp.data(), temp.size(), gpu.data(), gpu.size(), &written,
                                      nullptr)
                 : slicer_cuda_encode_host(in.bytes.data(), in.dtype, in.shape.data(), ndim, &p,
                                           temp.data(), temp.size(), gpu.data(), gpu.size(),
                                           &written, nullptr);
    if (status != cpu_status) {
      Fail(what + ": encode status " + std::to_string(status) + " vs cpu " +
           std::to_string(cpu_status) + (device_dst ? " (device dst)" : ""));
      continue;
    }
    if (status) continue;
    gpu.resize(written);
    if (gpu != cpu) {
      size_t at = 0;
      while (at < std::min(gpu.size(), cpu.size()) && gpu[at] == cpu[at]) ++at;
      Fail(what + ": bytes differ at " + std::to_string(at) + " (sizes " +
           std::to_string(gpu.size()) + " vs " + std::to_string(cpu.size()) + ")" +
           (device_dst ? " (device dst)" : ""));
    }
  }
  if (cpu_status) return;
  int decode_status = 0;
  const std::vector<uint8_t> expect = CpuDecode(cpu, &decode_status);
  for (int device_src = 0; device_src < 2; ++device_src) {
    int gpu_status = 0;
    const std::vector<uint8_t> got = GpuDecode(cpu, device_src, &gpu_status);
    if (gpu_status != decode_status || got != expect) {
      Fail(what + ": decode differs (status " + std::to_string(gpu_status) + ")" +
           (device_src ? " (device src)" : ""));
    }
  }
}

slicer_params Params(uint32_t s_ppb) {
  slicer_params p;
  slicer_params_init(&p);
  p.sparsity_ppb = s_ppb;
  return p;
}

void TestRandomSizes() {
  const int dtypes[3] = {SLICER_FLOAT32, SLICER_FLOAT16, SLICER_BFLOAT16};
  const uint32_t sparsities[4] = {0, 500000000, 900000000, 999000000};
  const int64_t sizes[6] = {1, 7, 100, 4096, 70001, 150001};
  uint64_t seed = 1;
  for (int64_t n : sizes) {
    for (int dtype : dtypes) {
      for (uint32_t s : sparsities) {
        if (n > 100000 && s != 900000000) continue;  // keep the run short
        slicer_params p = Params(s);
        p.seed = seed;
        CheckCase(MakeInput({n}, dtype, "normal", seed++), p, "normal");
      }
    }
  }
}

void TestParameterCorners() {
  struct Case {
    const char* kind;
    std::vector<int64_t> shape;
    void (*tweak)(slicer_params*);
  };
  const std::vector<Case> cases = {
      {"ties", {3, 1000}, [](slicer_params* p) { p->sparsity_ppb = 500000000; }},
      {"ties", {17, 33}, [](slicer_params* p) { p->seed = 123456789; }},
      {"relu", {3000}, [](slicer_params* p) { p->sparsity_ppb = 300000000; }},
      {"relu", {2, 999}, [](slicer_params* p) { p->asym_ppb = 200000000; }},
      {"normal", {5000}, [](slicer_params* p) {
         p->sparsity_ppb = 800000000;
         p->asym_ppb = 300000000;
       }},
      {"ties", {4099}, [](slicer_params* p) {
         p->sparsity_ppb = 700000000;
         p->asym_ppb = 900000000;
       }},
      {"ties", {4099}, [](slicer_params* p) {
         p->sparsity_ppb = 200000000;
         p->asym_ppb = 100000000;
       }},
      {"normal", {4000}, [](slicer_params* p) {
         p->level_count = 3;
         p->levels[0] = 8;
         p->levels[1] = 4;
         p->levels[2] = 2;
       }},
      {"normal", {4096}, [](slicer_params* p) {
         p->sparsity_ppb = 600000000;
         p->blocks_pos = 2;
         p->blocks_neg = 5;
         p->bits = 16;
         p->delta_micro = 500000;
       }},
      {"outliers", {3000}, [](slicer_params* p) {
         p->bits = 4;
         p->delta_micro = 0;
       }},
      {"normal", {20000}, [](slicer_params* p) {
         p->sparsity_ppb = 950000000;
         p->blocks_pos = 64;
         p->blocks_neg = 1;
         p->bits = 3;
       }},
      {"normal", {2000}, [](slicer_params* p) {
         p->sparsity_ppb = 0;
         p->bits = 1;
       }},
      {"normal", {5000}, [](slicer_params* p) { p->chunk_log2 = 6; }},
      {"ties", {8, 577}, [](slicer_params* p) { p->group_rows = 1; }},
      {"outliers", {9, 4096}, [](slicer_params* p) {
         p->group_rows = 1;
         p->asym_ppb = 50000000;
       }},
      {"equal", {999}, [](slicer_params* p) { p->sparsity_ppb = 400000000; }},
      // More groups than one wave of selects holds (4096): the launcher loops over waves.
      {"ties", {4200, 8}, [](slicer_params* p) {
         p->group_rows = 1;
         p->sparsity_ppb = 700000000;
       }},
      {"normal", {4100, 9}, [](slicer_params* p) {
         p->group_rows = 1;
         p->asym_ppb = 400000000;
         p->blocks_pos = 2;
         p->blocks_neg = 9;
       }},
      {"normal", {0, 3}, [](slicer_params*) {}},
      {"normal", {}, [](slicer_params* p) { p->sparsity_ppb = 0; }},
      {"relu", {64}, [](slicer_params* p) { p->sparsity_ppb = 999999999; }},
  };
  const int dtypes[3] = {SLICER_FLOAT32, SLICER_FLOAT16, SLICER_BFLOAT16};
  uint64_t seed = 1000;
  for (const Case& c : cases) {
    for (int dtype : dtypes) {
      // Thousands of groups cost many emulated blocks: one dtype is enough for those.
      if (c.shape.size() == 2 && c.shape[0] > 4096 && dtype != SLICER_FLOAT32) continue;
      slicer_params p = Params(900000000);
      c.tweak(&p);
      CheckCase(MakeInput(c.shape, dtype, c.kind, seed++), p, c.kind);
    }
  }
  // Input errors are reported like the CPU codec does.
  Input bad = MakeInput({100}, SLICER_FLOAT32, "normal", 5);
  const float nan = std::nanf("");
  std::memcpy(&bad.bytes[40], &nan, 4);
  CheckCase(bad, Params(900000000), "nan");
  slicer_params bad_params = Params(900000000);
  bad_params.chunk_log2 = 5;
  CheckCase(MakeInput({100}, SLICER_FLOAT32, "normal", 6), bad_params, "bad chunk_log2");
}

// Batch items along each axis equal the C++ codec's stream of each slice.
void TestBatches() {
  const std::vector<int64_t> shape = {6, 5, 77};
  for (int dtype : {SLICER_FLOAT32, SLICER_BFLOAT16}) {
    const Input whole = MakeInput(shape, dtype, "ties", 77 + dtype);
    const size_t item = dtype == SLICER_FLOAT32 ? 4 : 2;
    for (uint32_t axis = 0; axis < 3; ++axis) {
      for (int rows = 0; rows < 2; ++rows) {
        ++checks;
        slicer_params p = Params(900000000);
        p.asym_ppb = 50000000;
        p.group_rows = static_cast<uint8_t>(rows);
        std::vector<int64_t> item_shape;
        for (uint32_t d = 0; d < 3; ++d) {
          if (d != axis) item_shape.push_back(shape[d]);
        }
        const size_t items = static_cast<size_t>(shape[axis]);
        size_t temp_bytes = 0;
        if (slicer_cuda_encode_batch_temp_size(shape.data(), 3, axis, dtype, &p, &temp_bytes)) {
          Fail("batch temp size");
          continue;
        }
        std::vector<uint8_t> temp(temp_bytes);
        size_t bound = 0;
        slicer_encode_bound(item_shape.data(), 2, dtype, &p, &bound);
        for (int device_dst = 0; device_dst < 2; ++device_dst) {
          std::vector<uint8_t> dst(bound * items);
          std::vector<size_t> offsets(items);
          std::vector<size_t> sizes(items);
          const int status =
              device_dst ? slicer_cuda_encode_batch(whole.bytes.data(), dtype, shape.data(), 3,
                                                    axis, &p, temp.data(), temp.size(),
                                                    dst.data(), dst.size(), offsets.data(),
                                                    sizes.data(), nullptr)
                         : slicer_cuda_encode_batch_host(whole.bytes.data(), dtype, shape.data(),
                                                         3, axis, &p, temp.data(), temp.size(),
                                                         dst.data(), dst.size(), offsets.data(),
                                                         sizes.data(), nullptr);
          if (status) {
            Fail("batch encode status " + std::to_string(status));
            continue;
          }
          for (size_t b = 0; b < items; ++b) {
            // The slice x[..., b, ...] made contiguous.
            Input slice{{}, dtype, item_shape};
            const int64_t outer = axis == 0 ? 1 : (axis == 1 ? shape[0] : shape[0] * shape[1]);
            const int64_t inner = axis == 0 ? shape[1] * shape[2] : (axis == 1 ? shape[2] : 1);
            for (int64_t o = 0; o < outer; ++o) {
              const size_t from = ((o * shape[axis] + b) * inner) * item;
              slice.bytes.insert(slice.bytes.end(), whole.bytes.begin() + from,
                                 whole.bytes.begin() + from + inner * item);
            }
            int cpu_status = 0;
            const std::vector<uint8_t> cpu = CpuEncode(slice, p, &cpu_status);
            const std::vector<uint8_t> got(dst.begin() + offsets[b],
                                           dst.begin() + offsets[b] + sizes[b]);
            if (cpu_status || got != cpu) {
              Fail("batch item " + std::to_string(b) + " axis " + std::to_string(axis) +
                   " rows " + std::to_string(rows) + " dtype " + std::to_string(dtype) +
                   (device_dst ? " (device dst)" : ""));
            }
          }
        }
      }
    }
  }
}

// Damaged streams: the emulated GPU decoder reports what the C++ decoder reports.
void TestDamagedStreams() {
  slicer_params p = Params(800000000);
  const Input in = MakeInput({3000}, SLICER_FLOAT32, "normal", 42);
  int status = 0;
  const std::vector<uint8_t> good = CpuEncode(in, p, &status);
  std::mt19937_64 rng(9);
  for (int trial = 0; trial < 300; ++trial) {
    ++checks;
    std::vector<uint8_t> bad = good;
    const int mode = trial % 3;
    if (mode == 0) {
      bad.resize(rng() % good.size());
    } else {
      bad[rng() % bad.size()] ^= static_cast<uint8_t>(1u << (rng() % 8));
      if (mode == 2) {
        // Re-seal the checksum so that the damage reaches the table and payload checks.
        uint32_t crc = 0xFFFFFFFFu;
        for (size_t i = 0; i + 4 < bad.size(); ++i) {
          crc ^= bad[i];
          for (int k = 0; k < 8; ++k) crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1u)));
        }
        crc = ~crc;
        for (int b = 0; b < 4; ++b) bad[bad.size() - 4 + b] = static_cast<uint8_t>(crc >> (8 * b));
      }
    }
    int cpu_status = 0;
    const std::vector<uint8_t> expect = CpuDecode(bad, &cpu_status);
    for (int device_src = 0; device_src < 2; ++device_src) {
      int gpu_status = 0;
      const std::vector<uint8_t> got = GpuDecode(bad, device_src, &gpu_status);
      // One pinned status per rejection: the same code as the C++ decoder, not just "failed".
      if (gpu_status != cpu_status || (cpu_status == 0 && got != expect)) {
        Fail("damaged stream trial " + std::to_string(trial) + ": gpu status " +
             std::to_string(gpu_status) + " cpu status " + std::to_string(cpu_status));
      }
    }
  }
}

std::string ReadFile(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// The integer after "key": in the golden JSON (flat, as tests/golden/make_golden.py writes it).
uint64_t JsonInt(const std::string& json, const std::string& key) {
  const size_t at = json.find("\"" + key + "\"");
  if (at == std::string::npos) return 0;
  return std::stoull(json.substr(json.find(':', at) + 1));
}

std::vector<int> JsonLevels(const std::string& json) {
  std::vector<int> levels;
  const size_t at = json.find("\"levels\"");
  const size_t open = json.find('[', at);
  const size_t close = json.find(']', open);
  std::stringstream list(json.substr(open + 1, close - open - 1));
  std::string item;
  while (std::getline(list, item, ',')) {
    if (item.find_first_of("0123456789") != std::string::npos) levels.push_back(std::stoi(item));
  }
  return levels;
}

// A little-endian .npy of float32 / float16 / uint16 (bfloat16 bits).
bool ReadNpy(const std::string& bytes, std::vector<int64_t>* shape, std::string* descr,
             std::string* data) {
  if (bytes.size() < 10 || bytes.compare(0, 6, "\x93NUMPY") != 0) return false;
  const size_t header_len = static_cast<uint8_t>(bytes[8]) | static_cast<uint8_t>(bytes[9]) << 8;
  const std::string header = bytes.substr(10, header_len);
  const size_t d = header.find("'descr': '") + 10;
  *descr = header.substr(d, header.find('\'', d) - d);
  const size_t open = header.find('(', header.find("'shape'"));
  const size_t close = header.find(')', open);
  std::stringstream dims(header.substr(open + 1, close - open - 1));
  std::string item;
  shape->clear();
  while (std::getline(dims, item, ',')) {
    if (item.find_first_of("0123456789") != std::string::npos) shape->push_back(std::stoll(item));
  }
  *data = bytes.substr(10 + header_len);
  return header.find("'fortran_order': False") != std::string::npos;
}

// The golden streams of tests/golden/v1: the emulated GPU encoder writes them byte for byte.
void TestGolden() {
  const std::filesystem::path dir = SLICER_GOLDEN_DIR;
  int cases = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    if (entry.path().extension() != ".slc") continue;
    ++checks;
    ++cases;
    const std::filesystem::path base = entry.path().parent_path() / entry.path().stem();
    const std::string json = ReadFile(base.string() + ".json");
    std::vector<int64_t> shape;
    std::string descr;
    std::string data;
    if (!ReadNpy(ReadFile(base.string() + ".npy"), &shape, &descr, &data)) {
      Fail("golden " + base.string() + ": unreadable .npy");
      continue;
    }
    Input in{std::vector<uint8_t>(data.begin(), data.end()),
             json.find("\"bfloat16\"") != std::string::npos
                 ? SLICER_BFLOAT16
                 : (descr == "<f2" ? SLICER_FLOAT16 : SLICER_FLOAT32),
             shape};
    slicer_params p;
    slicer_params_init(&p);
    p.sparsity_ppb = static_cast<uint32_t>(JsonInt(json, "sparsity_ppb"));
    p.asym_ppb = static_cast<uint32_t>(JsonInt(json, "asym_ppb"));
    p.delta_micro = static_cast<uint32_t>(JsonInt(json, "delta_micro"));
    p.seed = JsonInt(json, "seed");
    p.bits = static_cast<uint8_t>(JsonInt(json, "bits"));
    p.blocks_pos = static_cast<uint8_t>(JsonInt(json, "blocks_pos"));
    p.blocks_neg = static_cast<uint8_t>(JsonInt(json, "blocks_neg"));
    p.chunk_log2 = static_cast<uint8_t>(JsonInt(json, "chunk_log2"));
    p.group_rows = static_cast<uint8_t>(JsonInt(json, "group_rows"));
    const std::vector<int> levels = JsonLevels(json);
    p.level_count = static_cast<uint8_t>(levels.size());
    for (size_t i = 0; i < levels.size(); ++i) p.levels[i] = static_cast<uint8_t>(levels[i]);
    const std::string golden = ReadFile(entry.path());
    const uint32_t ndim = static_cast<uint32_t>(shape.size());
    size_t temp_bytes = 0;
    size_t bound = 0;
    slicer_cuda_encode_temp_size(shape.data(), ndim, in.dtype, &p, &temp_bytes);
    slicer_encode_bound(shape.data(), ndim, in.dtype, &p, &bound);
    std::vector<uint8_t> temp(temp_bytes);
    std::vector<uint8_t> out(bound);
    size_t written = 0;
    const int status = slicer_cuda_encode_host(in.bytes.data(), in.dtype, shape.data(), ndim, &p,
                                               temp.data(), temp.size(), out.data(), out.size(),
                                               &written, nullptr);
    if (status || std::string(out.begin(), out.begin() + written) != golden) {
      Fail("golden " + base.filename().string() + ": status " + std::to_string(status) +
           ", bytes differ");
    }
    // And decodes it like the C++ decoder.
    const std::vector<uint8_t> stream(golden.begin(), golden.end());
    int cpu_status = 0;
    int gpu_status = 0;
    const std::vector<uint8_t> expect = CpuDecode(stream, &cpu_status);
    if (GpuDecode(stream, true, &gpu_status) != expect || gpu_status != cpu_status) {
      Fail("golden " + base.filename().string() + ": decode differs");
    }
  }
  if (cases < 20) Fail("expected at least 20 golden streams in " + dir.string());
}

// Random shapes, dtypes, data kinds and parameters (`emulated_tests --fuzz N [seed]`, not
// part of the CTest run).
void Fuzz(int cases, uint64_t seed) {
  std::mt19937_64 rng(seed);
  const char* kinds[5] = {"normal", "ties", "relu", "outliers", "equal"};
  const int dtypes[3] = {SLICER_FLOAT32, SLICER_FLOAT16, SLICER_BFLOAT16};
  for (int c = 0; c < cases; ++c) {
    std::vector<int64_t> shape;
    const int ndim = static_cast<int>(rng() % 3);
    int64_t elements = 1;
    for (int d = 0; d <= ndim; ++d) {
      shape.push_back(1 + static_cast<int64_t>(rng() % (d == ndim ? 40000 : 60)));
      elements *= shape.back();
    }
    if (elements > 100000) shape.back() = std::max<int64_t>(1, 100000 / (elements / shape.back()));
    slicer_params p = Params(static_cast<uint32_t>(rng() % 1000000000));
    if (rng() % 3 == 0) p.asym_ppb = static_cast<uint32_t>(rng() % 1000000000);
    p.seed = rng();
    p.blocks_pos = static_cast<uint8_t>(1 + rng() % (rng() % 4 == 0 ? 64 : 5));
    p.blocks_neg = static_cast<uint8_t>(1 + rng() % (rng() % 4 == 0 ? 64 : 5));
    p.bits = static_cast<uint8_t>(1 + rng() % 16);
    p.delta_micro = static_cast<uint32_t>(rng() % 3 == 0 ? 0 : rng() % 2000000);
    if (rng() % 4 == 0) {
      p.level_count = std::max(p.blocks_pos, p.blocks_neg);
      for (int i = 0; i < p.level_count; ++i) p.levels[i] = static_cast<uint8_t>(1 + rng() % 16);
    }
    p.chunk_log2 = static_cast<uint8_t>(6 + rng() % 10);
    p.group_rows = static_cast<uint8_t>(rng() % 2);
    const char* kind = kinds[rng() % 5];
    CheckCase(MakeInput(shape, dtypes[rng() % 3], kind, rng()), p, kind);
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc >= 3 && std::string(argv[1]) == "--fuzz") {
    for (const uint64_t limit : {slicer::cuda::small_group_limit, uint64_t{0}}) {
      slicer::cuda::small_group_limit = limit;  // both encoder paths on the same cases
      Fuzz(std::atoi(argv[2]), argc >= 4 ? std::strtoull(argv[3], nullptr, 10) : 1);
    }
    std::printf("fuzz: %d of %d cases failed\n", failures, checks);
    return failures ? 1 : 0;
  }
  // Small groups take the fused kernel by default; run the suites again with every group on
  // the multi-kernel path (the path of large groups) so that both are checked on every case.
  for (const uint64_t limit : {slicer::cuda::small_group_limit, uint64_t{0}}) {
    slicer::cuda::small_group_limit = limit;
    TestGolden();
    TestRandomSizes();
    TestParameterCorners();
    TestBatches();
  }
  TestDamagedStreams();
  if (failures) {
    std::fprintf(stderr, "%d of %d emulated checks failed\n", failures, checks);
    return 1;
  }
  std::printf("emulated CUDA pipeline: %d checks passed\n", checks);
  return 0;
}
