// Frame encode / decode time through the C ABI (docs/format.md §17), one thread.
// Usage: bench_frames ROWS.f32 NUM_ROWS ROW_LEN CALIB_ROWS STEP REPEATS [STATES [CLASSES
//        [TRELLIS_STEP]]]
// Reads NUM_ROWS float32 rows, builds a context from the first CALIB_ROWS, then encodes (and
// decodes) every other row REPEATS times. Prints per-frame medians over the repeats: wall time
// and thread CPU time (the latter is immune to preemption on a shared machine), and sizes.
// With TRELLIS_STEP, a trellis context (docs/format.md §17.4, λ 0.34) at that step is measured
// too, in the same process, each repeat alternating with the plain context's: two lines.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <vector>

#include "slicer/slicer.h"

namespace {

double ThreadSeconds() {
  timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

double WallSeconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

void Check(int status, const char* what) {
  if (status != SLICER_OK) {
    std::fprintf(stderr, "%s: %s\n", what, slicer_status_string(status));
    std::exit(1);
  }
}

struct Result {
  size_t ctx_len = 0, count = 0;
  unsigned states = 0;
  double bytes = 0;
  std::vector<double> enc_wall, enc_cpu, dec_wall, dec_cpu;
};

// One context: built once; each call to Repeat adds one encode pass and one decode pass.
struct Bench {
  const std::vector<float>* data;
  size_t rows, len, calib;
  slicer_frame_context* ctx = nullptr;
  slicer_frame_info info{};
  std::vector<uint8_t> frame;
  std::vector<std::vector<uint8_t>> frames;
  std::vector<float> out;
  Result res;

  Bench(const std::vector<float>& d, size_t rows_, size_t len_, size_t calib_,
        const slicer_frame_params& params, unsigned classes)
      : data(&d), rows(rows_), len(len_), calib(calib_) {
    std::vector<uint8_t> ctx_bytes(SLICER_FRAME_TRELLIS_CONTEXT_BOUND(len, classes));
    const int64_t shape[1] = {static_cast<int64_t>(len)};
    Check(slicer_frame_context_build_classes(d.data(), SLICER_FLOAT32, calib, shape, 1, &params,
                                             classes, ctx_bytes.data(), ctx_bytes.size(),
                                             &res.ctx_len),
          "build");
    Check(slicer_frame_context_open(ctx_bytes.data(), res.ctx_len, len, &ctx), "open");
    slicer_frame_context_info(ctx, &info);
    frame.resize(info.frame_bound);
    out.resize(len);
    res.count = rows - calib;
    res.states = info.states;
    for (size_t i = calib; i < rows; ++i) {  // the frames the decode passes decode
      size_t written = 0;
      Check(slicer_frame_encode(ctx, d.data() + i * len, 4 * len, static_cast<uint32_t>(i),
                                frame.data(), frame.size(), &written),
            "encode");
      frames.emplace_back(frame.begin(), frame.begin() + written);
    }
  }
  ~Bench() { slicer_frame_context_free(ctx); }

  void Repeat() {
    const size_t count = res.count;
    double w0 = WallSeconds(), c0 = ThreadSeconds();
    size_t total = 0;
    for (size_t i = calib; i < rows; ++i) {
      size_t written = 0;
      Check(slicer_frame_encode(ctx, data->data() + i * len, 4 * len, static_cast<uint32_t>(i),
                                frame.data(), frame.size(), &written),
            "encode");
      total += written;
    }
    res.enc_cpu.push_back((ThreadSeconds() - c0) / count);
    res.enc_wall.push_back((WallSeconds() - w0) / count);
    res.bytes = static_cast<double>(total) / count;
    w0 = WallSeconds();
    c0 = ThreadSeconds();
    for (const auto& fr : frames) {
      uint32_t seq;
      Check(slicer_frame_decode(ctx, fr.data(), fr.size(), out.data(), 4 * len, &seq), "decode");
    }
    res.dec_cpu.push_back((ThreadSeconds() - c0) / count);
    res.dec_wall.push_back((WallSeconds() - w0) / count);
  }

  void Print(int repeats, const char* kind, float step) const {
    std::printf(
        "{\"kind\": \"%s\", \"step\": %g, \"row_len\": %zu, \"states\": %u, \"frames\": %zu, "
        "\"repeats\": %d, \"context_bytes\": %zu, "
        "\"mean_frame_bytes\": %.2f, \"encode_us_median_cpu\": %.3f, \"encode_us_median_wall\": "
        "%.3f, \"encode_us_min_cpu\": %.3f, \"decode_us_median_cpu\": %.3f, "
        "\"decode_us_median_wall\": %.3f}\n",
        kind, step, len, res.states, res.count, repeats, res.ctx_len, res.bytes,
        1e6 * Median(res.enc_cpu), 1e6 * Median(res.enc_wall),
        1e6 * *std::min_element(res.enc_cpu.begin(), res.enc_cpu.end()), 1e6 * Median(res.dec_cpu),
        1e6 * Median(res.dec_wall));
  }
};

}  // namespace

int main(int argc, char** argv) {
  if (argc < 7 || argc > 10) {
    std::fprintf(stderr,
                 "usage: %s ROWS.f32 NUM_ROWS ROW_LEN CALIB_ROWS STEP REPEATS [STATES [CLASSES "
                 "[TRELLIS_STEP]]]\n",
                 argv[0]);
    return 2;
  }
  const size_t rows = std::strtoull(argv[2], nullptr, 10);
  const size_t len = std::strtoull(argv[3], nullptr, 10);
  const size_t calib = std::strtoull(argv[4], nullptr, 10);
  const float step = std::strtof(argv[5], nullptr);
  const int repeats = std::atoi(argv[6]);
  std::vector<float> data(rows * len);
  FILE* f = std::fopen(argv[1], "rb");
  if (f == nullptr || std::fread(data.data(), 4, data.size(), f) != data.size()) {
    std::fprintf(stderr, "cannot read %s\n", argv[1]);
    return 2;
  }
  std::fclose(f);
  slicer_frame_params params;
  slicer_frame_params_init(&params);
  params.step = step;
  params.states = static_cast<uint8_t>(argc >= 8 ? std::atoi(argv[7]) : 1);
  const unsigned classes = argc >= 9 ? static_cast<unsigned>(std::atoi(argv[8])) : 1;
  Bench plain(data, rows, len, calib, params, classes);
  if (argc < 10) {
    for (int r = 0; r < repeats; ++r) plain.Repeat();
    plain.Print(repeats, "plain", step);
    return 0;
  }
  slicer_frame_params tparams = params;
  tparams.trellis = 1;
  tparams.step = std::strtof(argv[9], nullptr);
  Bench trellis(data, rows, len, calib, tparams, classes);
  for (int r = 0; r < repeats; ++r) {
    plain.Repeat();
    trellis.Repeat();
  }
  plain.Print(repeats, "plain", step);
  trellis.Print(repeats, "trellis", tparams.step);
  return 0;
}
