// Single-process throughput check of the CPU codec (not a test): prints GB/s of input for
// encode and of output for decode, per thread count.
// Usage: bench_codec [elements] [threads] [rows(0/1)] [row_length] [delta_micro]
// Times are the best and the median of 20 calls.
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <vector>

#include "test_support.hpp"

// Minor page faults of the process so far (fresh pages the kernel had to map).
long MinorFaults() {
  rusage usage;
  getrusage(RUSAGE_SELF, &usage);
  return usage.ru_minflt;
}

// CPU time of the calling process (all threads): less sensitive to a busy machine than wall.
double CpuSeconds() {
  timespec t;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return static_cast<double>(t.tv_sec) + 1e-9 * static_cast<double>(t.tv_nsec);
}

int main(int argc, char** argv) {
  const size_t n = argc > 1 ? std::strtoull(argv[1], nullptr, 10) : 1000000;
  const unsigned threads = argc > 2 ? static_cast<unsigned>(std::strtoul(argv[2], nullptr, 10)) : 1;
  const bool rows = argc > 3 && std::atoi(argv[3]) != 0;
  const int64_t row = argc > 4 ? std::strtoll(argv[4], nullptr, 10) : 576;
  const long delta_micro = argc > 5 ? std::strtol(argv[5], nullptr, 10) : -1;  // -1: default
  std::vector<int64_t> shape = {static_cast<int64_t>(n)};
  if (rows) shape = {static_cast<int64_t>(n) / row, row};
  const size_t count = rows ? static_cast<size_t>(shape[0] * row) : n;
  const slicer_test::Input input =
      slicer_test::MakeInput(slicer_test::Gaussian(count, 1), SLICER_FLOAT32, shape);
  slicer_params params;
  slicer_params_init(&params);
  params.threads = static_cast<uint16_t>(threads);
  params.group_rows = rows ? 1 : 0;
  if (delta_micro >= 0) params.delta_micro = static_cast<uint32_t>(delta_micro);
  std::vector<uint8_t> stream;
  const int repeats = 20;
  double best_encode = 1e30;
  double best_encode_cpu = 1e30;
  std::vector<double> encode_cpu;
  if (slicer_test::Encode(input, params, &stream) != SLICER_OK) return 1;  // warm-up
  const long faults_before = MinorFaults();
  for (int r = 0; r < repeats; ++r) {
    const double c0 = CpuSeconds();
    const auto t0 = std::chrono::steady_clock::now();
    if (slicer_test::Encode(input, params, &stream) != SLICER_OK) return 1;
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    best_encode = s < best_encode ? s : best_encode;
    best_encode_cpu = std::min(best_encode_cpu, CpuSeconds() - c0);
    encode_cpu.push_back(CpuSeconds() - c0);
  }
  const double faults_per_encode = static_cast<double>(MinorFaults() - faults_before) / repeats;
  std::sort(encode_cpu.begin(), encode_cpu.end());
  const double median_encode_cpu = encode_cpu[encode_cpu.size() / 2];
  std::vector<float> out(count);
  double best_decode = 1e30;
  double best_decode_cpu = 1e30;
  for (int r = 0; r < repeats; ++r) {
    const double c0 = CpuSeconds();
    const auto t0 = std::chrono::steady_clock::now();
    if (slicer_decode(stream.data(), stream.size(), uint64_t{1} << 40, out.data(), 4 * count,
                      threads) != SLICER_OK) {
      return 1;
    }
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    best_decode = s < best_decode ? s : best_decode;
    best_decode_cpu = std::min(best_decode_cpu, CpuSeconds() - c0);
  }
  std::printf("n=%zu rows=%d threads=%u stream=%zu bytes (%.3f bits/elem)\n", count, rows ? 1 : 0,
              threads, stream.size(), 8.0 * stream.size() / count);
  std::printf("encode wall %.3f ms = %.2f GB/s in, cpu %.3f ms = %.2f GB/s per core\n",
              best_encode * 1e3, 4.0 * count / best_encode / 1e9, best_encode_cpu * 1e3,
              4.0 * count / best_encode_cpu / 1e9);
  std::printf("encode cpu median %.3f ms = %.2f GB/s per core, %.1f page faults per call\n",
              median_encode_cpu * 1e3, 4.0 * count / median_encode_cpu / 1e9, faults_per_encode);
  std::printf("decode wall %.3f ms = %.2f GB/s out, cpu %.3f ms = %.2f GB/s per core\n",
              best_decode * 1e3, 4.0 * count / best_decode / 1e9, best_decode_cpu * 1e3,
              4.0 * count / best_decode_cpu / 1e9);
  return 0;
}
