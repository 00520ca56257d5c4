/* A plain C user of the SLICER C ABI: encodes a synthetic activation (4 tokens x 576
 * channels), reads the header back, decodes, and checks the kept values; then asks the dense
 * mode for the lowest-error stream within a link budget of 2 bits per element
 * (slicer_dense_encode_budget, Python's mode="auto" with max_bytes).
 *
 * Build against an installed SLICER (or the one inside the Python wheel):
 *   cc roundtrip.c $(pkg-config --cflags --libs slicer) -o roundtrip_c
 * (PKG_CONFIG_PATH="$(python -m slicer --pkgconfig-dir)" for the wheel), or through CMake's
 * find_package(slicer) (examples/CMakeLists.txt). */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "slicer/slicer.h"

enum { kTokens = 4, kChannels = 576, kCount = kTokens * kChannels };

static int fail(const char* what, int status) {
  fprintf(stderr, "%s failed: %s (%d)\n", what, slicer_status_string(status), status);
  return 1;
}

int main(void) {
  static float x[kCount];
  static float y[kCount];
  uint32_t state = 12345u; /* a small LCG: the example needs no random library */
  for (int i = 0; i < kCount; ++i) {
    state = state * 1664525u + 1013904223u;
    const float u = (float)(state >> 8) / 16777216.0f - 0.5f; /* [-0.5, 0.5) */
    x[i] = (i % kChannels == 11) ? 40.0f * u : u;            /* one outlier channel */
  }
  const int64_t shape[2] = {kTokens, kChannels};

  slicer_params params;
  slicer_params_init(&params);
  params.sparsity_ppb = 800000000u; /* keep 20 % of the values */
  params.group_rows = 1;            /* one top-K problem per token row */

  size_t bound = 0;
  int status = slicer_encode_bound(shape, 2, SLICER_FLOAT32, &params, &bound);
  if (status != SLICER_OK) return fail("slicer_encode_bound", status);
  uint8_t* stream = (uint8_t*)malloc(bound);
  if (stream == NULL) return 1;
  size_t size = 0;
  status = slicer_encode(x, SLICER_FLOAT32, shape, 2, &params, stream, bound, &size);
  if (status != SLICER_OK) return fail("slicer_encode", status);

  slicer_header header;
  status = slicer_read_header(stream, size, kCount, &header);
  if (status != SLICER_OK) return fail("slicer_read_header", status);
  status = slicer_decode(stream, size, kCount, y, sizeof y, 0);
  if (status != SLICER_OK) return fail("slicer_decode", status);

  size_t kept = 0;
  double error2 = 0.0, norm2 = 0.0;
  for (int i = 0; i < kCount; ++i) {
    kept += y[i] != 0.0f;
    error2 += ((double)x[i] - y[i]) * ((double)x[i] - y[i]);
    norm2 += (double)x[i] * x[i];
  }
  printf("slicer %s (format %u), C ABI: %lldx%lld float32 -> %zu bytes (%.3f bits/element)\n",
         slicer_version(), slicer_format_version(), (long long)header.shape[0],
         (long long)header.shape[1], size, 8.0 * (double)size / kCount);
  printf("  kept %zu of %d values, relative L2 error %.4f\n", kept, kCount, sqrt(error2 / norm2));
  /* 20 % of every row kept (the rows' values are all nonzero) */
  if (kept != (size_t)(kTokens * (kChannels / 5))) return 1;

  /* The dense mode within a budget: the stream never exceeds max_bytes (bound: any step). */
  slicer_dense_params dense;
  slicer_dense_params_init(&dense);
  const uint64_t budget = kCount * 2 / 8;
  status = slicer_dense_encode_bound(shape, 2, SLICER_FLOAT32, &dense, &bound);
  if (status != SLICER_OK) return fail("slicer_dense_encode_bound", status);
  uint8_t* dense_stream = (uint8_t*)malloc(bound);
  if (dense_stream == NULL) return 1;
  status = slicer_dense_encode_budget(x, SLICER_FLOAT32, shape, 2, &dense, budget, 0.0, 1,
                                      dense_stream, bound, &size);
  if (status != SLICER_OK) return fail("slicer_dense_encode_budget", status);
  status = slicer_decode(dense_stream, size, kCount, y, sizeof y, 0);
  if (status != SLICER_OK) return fail("slicer_decode (dense)", status);
  error2 = 0.0;
  for (int i = 0; i < kCount; ++i) error2 += ((double)x[i] - y[i]) * ((double)x[i] - y[i]);
  printf("  dense within %llu bytes: %zu bytes, relative L2 error %.4f\n",
         (unsigned long long)budget, size, sqrt(error2 / norm2));
  /* a budget below the smallest stream: its own status, the smallest size in `size` */
  status = slicer_dense_encode_budget(x, SLICER_FLOAT32, shape, 2, &dense, 8, 0.0, 1, dense_stream,
                                      bound, &size);
  free(dense_stream);
  free(stream);
  return status == SLICER_ERR_TARGET_UNREACHABLE && size > 8 ? 0 : 1;
}
