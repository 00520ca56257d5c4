// encode_batch of ITEMS x ROW float32 N(0, 1) rows (one stream per row, default parameters:
// s = 0.9, delta = 0.01) on a one-thread context; CPU time of the calling thread per call,
// median and best of CALLS calls; the stream bytes' hash checks that two builds agree.
// Build against a libslicer.a (see bench/RESULTS.md §6.2):
//   g++ -O3 -std=c++17 -Icpp/include -Icpp/tests -Icpp/src bench/c/bench_batch.cpp
//       BUILD/cpp/libslicer.a -lpthread -o bench_batch   (one command line)
// Usage: bench_batch [items=2048] [row=576] [calls=200]
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <vector>

#include "test_support.hpp"
static double Cpu() {
  timespec t;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return t.tv_sec + 1e-9 * t.tv_nsec;
}
int main(int argc, char** argv) {
  const int64_t items = argc > 1 ? atoll(argv[1]) : 2048;
  const int64_t row = argc > 2 ? atoll(argv[2]) : 576;
  const int calls = argc > 3 ? atoi(argv[3]) : 200;
  std::vector<int64_t> shape = {items, row};
  const auto input =
      slicer_test::MakeInput(slicer_test::Gaussian(items * row, 1), SLICER_FLOAT32, shape);
  slicer_params p;
  slicer_params_init(&p);
  p.threads = 1;
  slicer_context* ctx = slicer_context_create(1);
  std::vector<const uint8_t*> streams(items);
  std::vector<size_t> sizes(items);
  std::vector<double> t;
  for (int c = 0; c < calls; ++c) {
    double c0 = Cpu();
    if (slicer_context_encode_batch(ctx, input.bytes.data(), SLICER_FLOAT32, shape.data(), 2, &p,
                                    streams.data(), sizes.data()) != SLICER_OK)
      return 1;
    t.push_back(Cpu() - c0);
  }
  size_t total = 0;
  uint32_t h = 0;
  for (int64_t i = 0; i < items; ++i) {
    total += sizes[i];
    for (size_t b = 0; b < sizes[i]; ++b) h = h * 31 + streams[i][b];
  }
  std::sort(t.begin(), t.end());
  std::printf(
      "batch %lldx%lld: median %.3f ms = %.3f us/row = %.0f K rows/s (best %.3f); bytes %zu hash "
      "%08x\n",
      (long long)items, (long long)row, t[t.size() / 2] * 1e3, t[t.size() / 2] * 1e6 / items,
      items / t[t.size() / 2] / 1e3, t[0] * 1e3, total, h);
  slicer_context_destroy(ctx);
}
