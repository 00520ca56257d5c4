// Shared by the C++ benchmark harnesses (bench_dense_cpp.cpp, bench_dense_lowbits.cpp,
// bench_decode_cpp.cpp, bench_budget_cpp.cpp): CPU time
// of the calling thread and a float32 file read whole.
#ifndef SLICER_BENCH_BENCH_CPU_HPP_
#define SLICER_BENCH_BENCH_CPU_HPP_

#include <cstdio>
#include <ctime>
#include <vector>

inline double CpuNow() {
  timespec t;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return t.tv_sec + 1e-9 * t.tv_nsec;
}

// The float32 values of a raw little-endian file; false when it cannot be opened.
inline bool ReadFloats(const char* path, std::vector<float>* x) {
  FILE* f = std::fopen(path, "rb");
  if (f == nullptr) return false;
  float buf[4096];
  size_t got;
  while ((got = std::fread(buf, 4, 4096, f)) > 0) x->insert(x->end(), buf, buf + got);
  std::fclose(f);
  return true;
}

#endif  // SLICER_BENCH_BENCH_CPU_HPP_
