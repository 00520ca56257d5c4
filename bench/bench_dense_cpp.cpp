// Dense-mode encode / decode speed through the C ABI, one thread, CPU time of the thread.
//
//   python -c "import numpy as np; x = np.load('bench/data/smollm2_l15.npy').reshape(-1); \
//              np.resize(x, 1 << 20).astype(np.float32).tofile('/tmp/x.f32')"
//   g++ -O2 -std=c++17 -Icpp/include bench/bench_dense_cpp.cpp build/<dir>/cpp/libslicer.a \
//       -lpthread -o /tmp/bench_dense
//   /tmp/bench_dense /tmp/x.f32 enc|dec STEP [REPS] [CLASSES]
//
// Prints the stream's bits per element, the median CPU milliseconds per call over REPS calls
// (default 100) and the fastest call (on a shared machine the least disturbed one). CLASSES
// (default 1) ≥ 2 writes mode 2 (docs/format.md §19): the input is cut to rows of 576 (SmolLM2's
// width: 1820 rows of the 2^20 floats) and the classes are positions of the last axis, mapped by
// the rule of §18.2; mode 1 codes the flat 2^20 floats. Build it against two libraries and
// alternate the runs to compare them on a shared machine (bench/RESULTS.md §9.3.1, §9.13).
// SLICER_DENSE_SIMD=0 in the environment forces the scalar paths of a library that has SIMD ones.
// SLICER_BENCH_LOW_BITS=k (0 … 15) or "auto" encodes mode 1 with a low-bit plane (docs/format.md
// §13.6) when the harness is built against a library that has it (ignored otherwise).
// SLICER_BENCH_CHUNK_LOG2=c (6 … 24) sets the chunk size (default: the C ABI's 14;
// bench/chunk_auto.py passes docs/format.md §15.1's choice).
#include <slicer/slicer.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "bench_cpu.hpp"

int main(int argc, char** argv) {
  if (argc < 4) {
    std::fprintf(stderr, "usage: %s FILE.f32 enc|dec STEP [REPS] [CLASSES]\n", argv[0]);
    return 2;
  }
  const bool encode = argv[2][0] == 'e';
  const float step = static_cast<float>(std::atof(argv[3]));
  const int reps = argc > 4 ? std::atoi(argv[4]) : 100;
  const int classes = argc > 5 ? std::atoi(argv[5]) : 1;
  std::vector<float> x;
  if (!ReadFloats(argv[1], &x)) return 2;
  int64_t shape[2] = {static_cast<int64_t>(x.size()), 0};
  uint32_t ndim = 1;
  slicer_dense_params p;
  slicer_dense_params_init(&p);
  p.step = step;
  p.threads = 1;
  if (const char* chunk = std::getenv("SLICER_BENCH_CHUNK_LOG2")) {
    p.chunk_log2 = static_cast<uint8_t>(std::atoi(chunk));
  }
#ifdef SLICER_DENSE_LOW_BITS_AUTO
  if (const char* low = std::getenv("SLICER_BENCH_LOW_BITS")) {
    p.low_bits = low[0] == 'a' ? SLICER_DENSE_LOW_BITS_AUTO : static_cast<uint8_t>(std::atoi(low));
  }
#endif
  if (classes >= 2) {
    const int64_t width = 576;
    shape[0] = static_cast<int64_t>(x.size()) / width;
    shape[1] = width;
    ndim = 2;
    x.resize(static_cast<size_t>(shape[0] * width));
    p.classes = static_cast<uint8_t>(classes);
    p.class_axis = 0;
  }
  size_t bound = 0;
  if (slicer_dense_encode_bound(shape, ndim, SLICER_FLOAT32, &p, &bound) != SLICER_OK) return 1;
  std::vector<uint8_t> stream(bound);
  size_t written = 0;
  if (slicer_dense_encode(x.data(), SLICER_FLOAT32, shape, ndim, &p, stream.data(), bound,
                          &written) != SLICER_OK)
    return 1;
  std::vector<float> y(x.size());
  std::vector<double> ms;
  for (int r = 0; r < reps; ++r) {
    const double t0 = CpuNow();
    int st;
    if (encode) {
      st = slicer_dense_encode(x.data(), SLICER_FLOAT32, shape, ndim, &p, stream.data(), bound,
                               &written);
    } else {
      st = slicer_decode(stream.data(), written, x.size(), y.data(), 4 * y.size(), 1);
    }
    ms.push_back((CpuNow() - t0) * 1e3);
    if (st != SLICER_OK) return 1;
  }
  std::sort(ms.begin(), ms.end());
  std::printf("%s classes %d bits/el %.3f median_ms %.3f GB/s %.2f min_ms %.3f\n",
              encode ? "encode" : "decode", classes, 8.0 * written / x.size(), ms[ms.size() / 2],
              4e-6 * x.size() / ms[ms.size() / 2], ms[0]);
  return 0;
}
