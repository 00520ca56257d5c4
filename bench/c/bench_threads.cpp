// Encode of N float32 N(0, 1) values (one group, default parameters) with threads=1 and
// threads=2 on one two-thread context, interleaved call by call: medians of wall time, of the
// calling thread's CPU time and of the process's CPU time (both threads), and the stream
// hashes (equal for both thread counts). Build as bench_batch.cpp (bench/RESULTS.md §6.2).
// Usage: bench_threads [n=16777216] [calls=15] [only=0|1|2]
#include <algorithm>
#include <chrono>
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
static double Proc() {
  timespec t;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return t.tv_sec + 1e-9 * t.tv_nsec;
}
static double Wall() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}
int main(int argc, char** argv) {
  const int64_t n = argc > 1 ? atoll(argv[1]) : (1 << 24);
  const int calls = argc > 2 ? atoi(argv[2]) : 15;
  const int only = argc > 3 ? atoi(argv[3]) : 0;  // 0 both, 1 or 2 only that
  std::vector<int64_t> shape = {n};
  const auto input = slicer_test::MakeInput(slicer_test::Gaussian(n, 1), SLICER_FLOAT32, shape);
  slicer_context* ctx = slicer_context_create(2);
  std::vector<double> w[3], c[3], pc[3];
  uint32_t hash[3] = {0, 0, 0};
  for (int r = 0; r < calls + 1; ++r) {
    for (unsigned t = 1; t <= 2; ++t) {
      if (only && only != (int)t) continue;
      slicer_params p;
      slicer_params_init(&p);
      p.threads = t;
      const uint8_t* s;
      size_t size;
      double w0 = Wall(), c0 = Cpu(), p0 = Proc();
      if (slicer_context_encode(ctx, input.bytes.data(), SLICER_FLOAT32, shape.data(), 1, &p, &s,
                                &size) != SLICER_OK)
        return 1;
      double c1 = Cpu(), w1 = Wall(), p1 = Proc();
      if (r == 0) {
        uint32_t h = 0;
        for (size_t b = 0; b < size; ++b) h = h * 31 + s[b];
        hash[t] = h;
        continue;
      }
      w[t].push_back(w1 - w0);
      c[t].push_back(c1 - c0);
      pc[t].push_back(p1 - p0);
    }
  }
  auto med = [](std::vector<double> v) {
    if (v.empty()) return 0.0;
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
  };
  std::printf(
      "n=%lld t1 wall %.2f cpu %.2f | t2 wall %.2f cpu %.2f | wall x%.2f cpu x%.2f | proc %.2f "
      "%.2f | hash %08x %08x\n",
      (long long)n, med(w[1]) * 1e3, med(c[1]) * 1e3, med(w[2]) * 1e3, med(c[2]) * 1e3,
      med(w[1]) / med(w[2]), med(c[1]) / med(c[2]), med(pc[1]) * 1e3, med(pc[2]) * 1e3, hash[1],
      hash[2]);
  slicer_context_destroy(ctx);
}
