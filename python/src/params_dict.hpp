// The integer parameter dict of slicer/_params.py -> slicer_params. Shared by
// slicer._core and slicer._cuda so both backends read the parameters the same
// way.
#ifndef SLICER_PYTHON_PARAMS_DICT_HPP_
#define SLICER_PYTHON_PARAMS_DICT_HPP_

#include <nanobind/nanobind.h>
#include <nanobind/stl/vector.h>

#include <cstdint>
#include <vector>

#include "slicer/slicer.h"

namespace slicer_py {

template <typename T>
T DictInt(const nanobind::dict &d, const char *key, T fallback) {
  if (!d.contains(key)) return fallback;
  return nanobind::cast<T>(d[key]);
}

// Keys sparsity_ppb, asym_ppb, delta_micro, seed, bits, blocks_pos, blocks_neg,
// levels, chunk_log2, group_rows, threads. Missing keys keep slicer_params_init
// defaults.
inline slicer_params ParamsFromDict(const nanobind::dict &d) {
  slicer_params p;
  slicer_params_init(&p);
  p.sparsity_ppb = DictInt<uint32_t>(d, "sparsity_ppb", p.sparsity_ppb);
  p.asym_ppb = DictInt<uint32_t>(d, "asym_ppb", p.asym_ppb);
  p.delta_micro = DictInt<uint32_t>(d, "delta_micro", p.delta_micro);
  p.seed = DictInt<uint64_t>(d, "seed", p.seed);
  p.bits = DictInt<uint8_t>(d, "bits", p.bits);
  p.blocks_pos = DictInt<uint8_t>(d, "blocks_pos", p.blocks_pos);
  p.blocks_neg = DictInt<uint8_t>(d, "blocks_neg", p.blocks_neg);
  p.chunk_log2 = DictInt<uint8_t>(d, "chunk_log2", p.chunk_log2);
  p.group_rows = DictInt<uint8_t>(d, "group_rows", p.group_rows);
  p.threads = DictInt<uint16_t>(d, "threads", p.threads);
  p.level_count = 0;
  if (d.contains("levels")) {
    const std::vector<int> levels = nanobind::cast<std::vector<int>>(d["levels"]);
    if (levels.size() > SLICER_MAX_BLOCKS) throw nanobind::value_error("too many levels");
    for (size_t i = 0; i < levels.size(); ++i) {
      if (levels[i] < 0 || levels[i] > 255) throw nanobind::value_error("level out of range");
      p.levels[i] = static_cast<uint8_t>(levels[i]);
    }
    p.level_count = static_cast<uint8_t>(levels.size());
  }
  return p;
}

}  // namespace slicer_py

#endif  // SLICER_PYTHON_PARAMS_DICT_HPP_
