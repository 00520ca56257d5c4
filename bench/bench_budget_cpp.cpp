// mode="auto" cost through the C ABI (bench/RESULTS.md §9.29): the budget driver
// (slicer_context_dense_encode_budget, max_bytes = the plain stream's size) against one plain
// encode (step 0.5) of the same (N / 64, 64) float32 array, one thread, CPU time of the calling
// thread; the Python layer's own cost is not in it (bench/auto_cost.py measures through Python).
//
//   g++ -O2 -std=c++17 -Icpp/include bench/bench_budget_cpp.cpp <build>/cpp/libslicer.a
//       -lpthread -o /tmp/bench_budget
//   /tmp/bench_budget FILE.f32 N [REPS] [CLASSES]     (CLASSES: 1, or 255 = "auto")
#include <slicer/slicer.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "bench_cpu.hpp"

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: %s FILE.f32 N [REPS] [CLASSES]\n", argv[0]);
    return 2;
  }
  std::vector<float> x;
  if (!ReadFloats(argv[1], &x)) return 2;
  const size_t n = std::min<size_t>(std::strtoull(argv[2], nullptr, 10), x.size()) / 64 * 64;
  const int reps = argc > 3 ? std::atoi(argv[3]) : 1000;
  const int classes = argc > 4 ? std::atoi(argv[4]) : SLICER_DENSE_CLASSES_AUTO;
  int64_t shape[2] = {static_cast<int64_t>(n / 64), 64};
  slicer_dense_params p;
  slicer_dense_params_init(&p);
  p.step = 0.5f;
  p.threads = 1;
  slicer_context* ctx = slicer_context_create(1);
  const uint8_t* s = nullptr;
  size_t size = 0;
  if (slicer_context_dense_encode(ctx, x.data(), SLICER_FLOAT32, shape, 2, &p, &s, &size,
                                  nullptr) != SLICER_OK)
    return 1;
  const size_t budget = size;
  slicer_dense_params q = p;
  q.step = 1.0f;
  q.classes = static_cast<uint8_t>(classes);
  std::vector<double> plain(static_cast<size_t>(reps)), autos(static_cast<size_t>(reps));
  for (int i = 0; i < reps; ++i) {  // alternated: the machine's load falls on both alike
    double t0 = CpuNow();
    slicer_context_dense_encode(ctx, x.data(), SLICER_FLOAT32, shape, 2, &p, &s, &size, nullptr);
    plain[static_cast<size_t>(i)] = CpuNow() - t0;
    t0 = CpuNow();
    if (slicer_context_dense_encode_budget(ctx, x.data(), SLICER_FLOAT32, shape, 2, &q, budget, 0.0,
                                           1, &s, &size) != SLICER_OK)
      return 1;
    autos[static_cast<size_t>(i)] = CpuNow() - t0;
  }
  std::sort(plain.begin(), plain.end());
  std::sort(autos.begin(), autos.end());
  const double mp = plain[plain.size() / 2] * 1e3, ma = autos[autos.size() / 2] * 1e3;
  std::printf("n %zu classes %d plain_ms %.4f auto_ms %.4f ratio %.2f bytes %zu budget %zu\n", n,
              classes, mp, ma, ma / mp, size, budget);
  slicer_context_destroy(ctx);
  return 0;
}
