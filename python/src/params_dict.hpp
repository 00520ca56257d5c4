// The validated parameter dicts of slicer/_params.py -> slicer_params (format 1) and
// slicer_dense_params (format 2). Shared by slicer._core and slicer._cuda so both backends
// read the parameters the same way.
#ifndef SLICER_PYTHON_PARAMS_DICT_HPP_
#define SLICER_PYTHON_PARAMS_DICT_HPP_

#include <nanobind/nanobind.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/vector.h>

#include <cstdint>
#include <string>
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

// Format 2 dense: dict(step, rho_256, offsets (None, (o1, o2), or 4 with trellis), trellis (λ or
// None), chunk_log2, layout,
// group_table (None or bytes), optional threads, classes (int or "auto"), class_axis,
// class_map "rank" / "ranges" / "bounds", class_bounds (list of K − 1 ints with "bounds"),
// table_kind (0 … 4 or "auto", §13.5), low_bits (0 … 15 or "auto", §13.6)), already validated
// (make_dense_params).
// `table` owns the group table that raw.group_table points into.
struct DenseParams {
  slicer_dense_params raw;
  std::vector<uint8_t> table;
  std::vector<uint64_t> bounds;  // §18.4 range boundaries that raw.class_bounds points into
};

inline DenseParams DenseParamsFromDict(const nanobind::dict &d) {
  DenseParams p;
  slicer_dense_params_init(&p.raw);
  p.raw.step = nanobind::cast<float>(d["step"]);
  p.raw.rho_256 = nanobind::cast<uint8_t>(d["rho_256"]);
  nanobind::object offsets = d["offsets"];
  if (offsets.is_none()) {
    p.raw.auto_offsets = 1;
  } else {
    p.raw.auto_offsets = 0;
    p.raw.offset1 = nanobind::cast<int8_t>(offsets[nanobind::int_(0)]);
    p.raw.offset2 = nanobind::cast<int8_t>(offsets[nanobind::int_(1)]);
    if (nanobind::len(offsets) == 4) {  // mode 3: Q1's offsets follow Q0's (§21.2)
      p.raw.trellis_offset1 = nanobind::cast<int8_t>(offsets[nanobind::int_(2)]);
      p.raw.trellis_offset2 = nanobind::cast<int8_t>(offsets[nanobind::int_(3)]);
    }
  }
  p.raw.chunk_log2 = nanobind::cast<uint8_t>(d["chunk_log2"]);
  p.raw.layout = nanobind::cast<uint8_t>(d["layout"]);
  nanobind::object table = d["group_table"];
  if (!table.is_none()) {
    const nanobind::bytes bytes = nanobind::cast<nanobind::bytes>(table);
    const uint8_t *b = reinterpret_cast<const uint8_t *>(bytes.c_str());
    p.table.assign(b, b + bytes.size());
    p.raw.group_table = p.table.data();
    p.raw.group_table_size = p.table.size();
    if (p.table.empty()) p.raw.group_table = reinterpret_cast<const uint8_t *>("");
  }
  p.raw.threads = DictInt<uint16_t>(d, "threads", 0);
  // Mode 3 (§21): "trellis" is λ (a float > 0) or absent / None / 0 for modes 1-2.
  if (d.contains("trellis") && !d["trellis"].is_none()) {
    const double lam = nanobind::cast<double>(d["trellis"]);
    if (lam != 0.0) {
      p.raw.trellis = 1;
      p.raw.trellis_lambda = lam;
    }
  }
  // §13.5: mode 1's table kind 0 … 4, or "auto" (the shortest stream).
  if (d.contains("table_kind") && nanobind::isinstance<nanobind::str>(d["table_kind"])) {
    p.raw.table_kind = SLICER_DENSE_TABLE_AUTO;
  } else {
    p.raw.table_kind = DictInt<uint8_t>(d, "table_kind", 0);
  }
  // §13.6: mode 1's low-bit plane 0 … 15, or "auto" (the encoder rule).
  if (d.contains("low_bits") && nanobind::isinstance<nanobind::str>(d["low_bits"])) {
    p.raw.low_bits = SLICER_DENSE_LOW_BITS_AUTO;
  } else {
    p.raw.low_bits = DictInt<uint8_t>(d, "low_bits", 0);
  }
  // mode 2 (§19) when >= 2; "auto": SLICER_DENSE_CLASSES_AUTO (the budget driver's search)
  const bool automatic = d.contains("classes") && nanobind::isinstance<nanobind::str>(d["classes"]);
  p.raw.classes = automatic ? SLICER_DENSE_CLASSES_AUTO : DictInt<uint8_t>(d, "classes", 1);
  p.raw.class_axis = DictInt<uint8_t>(d, "class_axis", 0);
  if (automatic && d.contains("class_map") && !d["class_map"].is_none() &&
      nanobind::cast<std::string>(d["class_map"]) == "rank") {
    p.raw.class_axis |= SLICER_DENSE_CLASS_MAP_RANK;  // the search tries the §18.2 map only
  }
  if (d.contains("class_map") && !d["class_map"].is_none() &&
      nanobind::cast<std::string>(d["class_map"]) == "ranges") {
    p.raw.class_axis |= SLICER_DENSE_CLASS_MAP_RANGES;  // §18.3 index ranges
  }
  if (d.contains("class_map") && !d["class_map"].is_none() &&
      nanobind::cast<std::string>(d["class_map"]) == "bounds") {
    p.raw.class_axis |= SLICER_DENSE_CLASS_MAP_BOUNDS;  // §18.4 range boundaries
    if (automatic) return p;  // the search estimates the boundaries
    if (!d.contains("class_bounds") || d["class_bounds"].is_none()) {
      throw nanobind::value_error("class_map 'bounds' needs class_bounds (K - 1 positions)");
    }
    p.bounds = nanobind::cast<std::vector<uint64_t>>(d["class_bounds"]);
    p.raw.class_bounds = p.bounds.data();
    p.raw.class_bounds_count = static_cast<uint32_t>(p.bounds.size());
  }
  return p;
}

}  // namespace slicer_py

#endif  // SLICER_PYTHON_PARAMS_DICT_HPP_
