// Measurement for a possible format option (not a format): the low k bits of every code in a
// fixed-width packed plane, the rest through the dense coder (bench/RESULTS.md §9.18).
//
//   g++ -O2 -std=c++17 -Icpp/include bench/bench_dense_lowbits.cpp \
//       build/<dir>/cpp/libslicer.a -lpthread -o /tmp/bench_lowbits
//   /tmp/bench_lowbits /tmp/x.f32 STEP REPS K [K …]
//
// Codes q = round(x / STEP) (the shipped quantizer with its default rounding gives the same
// codes up to ties). For each K: h = q >> K (arithmetic, so that q = h · 2^K + l with
// l = q & (2^K − 1) in [0, 2^K): no separate sign), h coded by the shipped dense coder as the
// float32 values h at step 1 (a stream of today's format whose codes are h), l packed K bits per
// element. Decode = the shipped decoder on the h stream (CPU time of the calling thread) plus one
// AVX2 pass that unpacks l, forms q = h · 2^K + l and writes the value q · STEP (binary64 product,
// rounded to float32). A decoder for such a format would do the second pass inside its vector
// steps; here it is a separate pass over the decoded h, so the time is an upper bound of the
// layout's cost on this decoder (the coder's share is printed too). K = 0: the shipped stream of x
// itself at STEP. Prints per K the bits per element (h stream + plane) and the median / fastest
// decode CPU milliseconds; checks that the decoded codes equal q.
#include <immintrin.h>
#include <slicer/slicer.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "bench_cpu.hpp"

static std::vector<uint8_t> Encode(const std::vector<float>& x, float step) {
  int64_t shape[1] = {static_cast<int64_t>(x.size())};
  slicer_dense_params p;
  slicer_dense_params_init(&p);
  p.step = step;
  p.threads = 1;
  size_t bound = 0, written = 0;
  if (slicer_dense_encode_bound(shape, 1, SLICER_FLOAT32, &p, &bound) != SLICER_OK) std::exit(1);
  std::vector<uint8_t> s(bound);
  if (slicer_dense_encode(x.data(), SLICER_FLOAT32, shape, 1, &p, s.data(), bound, &written) !=
      SLICER_OK)
    std::exit(1);
  s.resize(written);
  return s;
}

// y[i] = float((h[i] · 2^k + l[i]) · step), h from the decoded float32 values (integers up to
// the stream's reconstruction offset, |o| / 256 < 1/2), l from the plane (k ≤ 8).
__attribute__((target("avx2"))) static void Combine(const float* hv, const uint8_t* plane,
                                                    unsigned k, double step, float* y, size_t n,
                                                    int32_t* q_out) {
  const __m256i shifts = _mm256_setr_epi32(0, k, 2 * k, 3 * k, 0, k, 2 * k, 3 * k);
  const __m256i mask = _mm256_set1_epi32((1 << k) - 1);
  const __m256d d = _mm256_set1_pd(step);
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t w;
    std::memcpy(&w, plane + (i / 8) * k, 8);
    const __m256i win = _mm256_setr_m128i(_mm_set1_epi32(static_cast<int>(w)),
                                          _mm_set1_epi32(static_cast<int>(w >> (4 * k))));
    const __m256i l = _mm256_and_si256(_mm256_srlv_epi32(win, shifts), mask);
    const __m256i h = _mm256_cvtps_epi32(_mm256_loadu_ps(hv + i));  // nearest
    const __m256i q = _mm256_or_si256(_mm256_slli_epi32(h, static_cast<int>(k)), l);
    if (q_out != nullptr) _mm256_storeu_si256(reinterpret_cast<__m256i*>(q_out + i), q);
    const __m128 lo =
        _mm256_cvtpd_ps(_mm256_mul_pd(_mm256_cvtepi32_pd(_mm256_castsi256_si128(q)), d));
    const __m128 hi =
        _mm256_cvtpd_ps(_mm256_mul_pd(_mm256_cvtepi32_pd(_mm256_extracti128_si256(q, 1)), d));
    _mm256_storeu_ps(y + i, _mm256_setr_m128(lo, hi));
  }
  for (; i < n; ++i) {
    const uint64_t bit = i * k;
    uint32_t w = 0;
    std::memcpy(&w, plane + bit / 8, 2);
    const int32_t l = static_cast<int32_t>((w >> (bit % 8)) & ((1u << k) - 1));
    const int32_t q = static_cast<int32_t>(std::nearbyint(hv[i])) * (1 << k) + l;
    if (q_out != nullptr) q_out[i] = q;
    y[i] = static_cast<float>(q * step);
  }
}

int main(int argc, char** argv) {
  if (argc < 5) {
    std::fprintf(stderr, "usage: %s FILE.f32 STEP REPS K [K ...]\n", argv[0]);
    return 2;
  }
  const float step = static_cast<float>(std::atof(argv[2]));
  const int reps = std::atoi(argv[3]);
  std::vector<float> x;
  if (!ReadFloats(argv[1], &x)) return 2;
  const size_t n = x.size();
  std::vector<int32_t> q(n);
  for (size_t i = 0; i < n; ++i)
    q[i] = static_cast<int32_t>(std::nearbyint(static_cast<double>(x[i]) / step));
  std::vector<float> y(n), hv(n);
  std::vector<int32_t> qd(n);
  for (int a = 4; a < argc; ++a) {
    const unsigned k = static_cast<unsigned>(std::atoi(argv[a]));
    if (k > 8) return 2;
    std::vector<uint8_t> stream, plane((n * k + 7) / 8 + 8, 0);
    if (k == 0) {
      stream = Encode(x, step);
    } else {
      std::vector<float> h(n);
      for (size_t i = 0; i < n; ++i) {
        h[i] = static_cast<float>(q[i] >> k);
        const uint64_t l = static_cast<uint32_t>(q[i]) & ((1u << k) - 1), bit = i * k;
        for (unsigned b = 0; b < k; ++b)
          plane[(bit + b) / 8] |= static_cast<uint8_t>(((l >> b) & 1) << ((bit + b) % 8));
      }
      stream = Encode(h, 1.0f);
    }
    std::vector<double> ms, dec_ms;
    for (int r = 0; r < reps; ++r) {
      const double t0 = CpuNow();
      float* out = k == 0 ? y.data() : hv.data();
      if (slicer_decode(stream.data(), stream.size(), n, out, 4 * n, 1) != SLICER_OK) return 1;
      const double t1 = CpuNow();
      if (k > 0) Combine(hv.data(), plane.data(), k, step, y.data(), n, nullptr);
      ms.push_back((CpuNow() - t0) * 1e3);
      dec_ms.push_back((t1 - t0) * 1e3);
    }
    std::sort(dec_ms.begin(), dec_ms.end());
    size_t wrong = 0;
    if (k > 0) {
      Combine(hv.data(), plane.data(), k, step, y.data(), n, qd.data());
      for (size_t i = 0; i < n; ++i) wrong += qd[i] != q[i];
    }
    std::sort(ms.begin(), ms.end());
    const double bits = 8.0 * (stream.size() + (k > 0 ? (n * k + 7) / 8 : 0)) / n;
    std::printf(
        "k %u bits/el %.4f median_ms %.3f GB/s %.2f min_ms %.3f GB/s_fastest %.2f "
        "(coder alone: median %.3f min %.3f) wrong_codes %zu\n",
        k, bits, ms[ms.size() / 2], 4e-6 * n / ms[ms.size() / 2], ms[0], 4e-6 * n / ms[0],
        dec_ms[dec_ms.size() / 2], dec_ms[0], wrong);
  }
  return 0;
}
