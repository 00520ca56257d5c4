// Decode speed of one stream file (any format) through the C ABI, one thread, CPU time of the
// calling thread (bench/RESULTS.md §6.3).
//
//   a stream file, e.g. (Python) open('/tmp/s.slc', 'wb').write(slicer.encode(x))
//   g++ -O2 -std=c++17 -Icpp/include bench/bench_decode_cpp.cpp <build>/cpp/libslicer.a
//       -lpthread -o /tmp/bench_decode
//   /tmp/bench_decode /tmp/s.slc [REPS]
//
// Prints the median and the fastest call in µs over REPS calls (default 1000). Build it against
// two libraries and alternate the runs to compare them on a shared machine.
#include <slicer/slicer.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "bench_cpu.hpp"

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s STREAM [REPS]\n", argv[0]);
    return 2;
  }
  const int reps = argc > 2 ? std::atoi(argv[2]) : 1000;
  std::FILE* f = std::fopen(argv[1], "rb");
  if (f == nullptr) return 2;
  std::vector<unsigned char> stream;
  unsigned char buf[65536];
  size_t got;
  while ((got = std::fread(buf, 1, sizeof(buf), f)) > 0) stream.insert(stream.end(), buf, buf + got);
  std::fclose(f);
  slicer_header header;
  if (slicer_read_header(stream.data(), stream.size(), uint64_t{1} << 40, &header) != SLICER_OK)
    return 1;
  std::vector<unsigned char> out(header.num_elements * 8 + 8);
  std::vector<double> us(static_cast<size_t>(reps));
  for (int i = 0; i < reps; ++i) {
    const double t0 = CpuNow();
    if (slicer_decode(stream.data(), stream.size(), header.num_elements, out.data(), out.size(),
                      1) != SLICER_OK)
      return 1;
    us[static_cast<size_t>(i)] = (CpuNow() - t0) * 1e6;
  }
  std::sort(us.begin(), us.end());
  std::printf("decode elements %llu bytes %zu median_us %.2f min_us %.2f\n",
              static_cast<unsigned long long>(header.num_elements), stream.size(),
              us[us.size() / 2], us.front());
  return 0;
}
