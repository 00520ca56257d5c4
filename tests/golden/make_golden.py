"""Write the golden cases (inputs, parameters, streams) of formats 1 and 2 with the references.

Golden files pin format 1 forever: they are written once and committed. Every backend must
decode them and re-encode their inputs to the same bytes (tests/test_golden.py, the C++ CTest).
Re-running this script must reproduce the committed files exactly; `--check` verifies that
without writing.

    python tests/golden/make_golden.py [--check]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import ml_dtypes
import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
import reference as ref  # noqa: E402
import reference_dense as rd  # noqa: E402
import reference_tcq as rt  # noqa: E402

OUT = HERE / "v1"
OUT_V2 = HERE / "v2"


def cases() -> dict[str, tuple[np.ndarray, dict]]:
    rng = np.random.default_rng(20261127)
    normal = lambda *shape: rng.standard_normal(shape).astype(np.float32)  # noqa: E731
    p = ref.default_params
    out: dict[str, tuple[np.ndarray, dict]] = {}
    out["f32_default_64x64"] = (normal(64, 64), p())
    out["f32_delta0_576"] = (normal(576), p(delta_micro=0))
    out["f16_10x100"] = (normal(10, 100).astype(np.float16), p())
    out["bf16_777"] = (normal(777).astype(ml_dtypes.bfloat16), p(delta_micro=0))
    ties = rng.integers(-3, 4, size=2000).astype(np.float32)
    out["ties_s50"] = (ties, p(sparsity_ppb=500_000_000))
    out["ties_s50_seed7"] = (ties, p(sparsity_ppb=500_000_000, seed=7))
    out["relu_k_is_nnz"] = (np.maximum(normal(3000), 0), p(sparsity_ppb=300_000_000))
    out["asym_l30_s80"] = (normal(1500), p(sparsity_ppb=800_000_000, asym_ppb=300_000_000))
    out["asym_l90_ties"] = (ties[:999], p(sparsity_ppb=600_000_000, asym_ppb=900_000_000))
    out["multilevel_8_4_2"] = (normal(2048), p(levels=[8, 4, 2]))
    out["abq_delta_0p5"] = (normal(4096), p(delta_micro=500_000))
    out["rows_8x64"] = (normal(8, 64) * np.float32(3), p(group_rows=1))
    out["chunks_64"] = (normal(1000), p(sparsity_ppb=500_000_000, chunk_log2=6))
    out["n1_s0"] = (np.array([-2.5], dtype=np.float32), p(sparsity_ppb=0))
    out["n7_s50"] = (normal(7), p(sparsity_ppb=500_000_000))
    out["scalar"] = (np.array(1.25, dtype=np.float32), p(sparsity_ppb=0))
    out["empty_0x3"] = (np.zeros((0, 3), dtype=np.float32), p())
    out["zeros_only"] = (np.zeros(100, dtype=np.float32), p())
    out["blocks_2_5_bits16"] = (
        normal(4096),
        p(blocks_pos=2, blocks_neg=5, bits=16, seed=12345, sparsity_ppb=999_000_000),
    )
    outliers = normal(512)
    outliers[[3, 100, 400]] = [1e30, -3e38, 2.5e4]
    out["outliers_bits4"] = (outliers, p(bits=4, delta_micro=0))
    out["bits1_s0"] = (normal(300), p(bits=1, sparsity_ppb=0))
    return out


def cases_v2() -> dict[str, tuple[np.ndarray, dict]]:
    """Format 2, modes 1 and 2 (dense, dense with class tables): every dtype, layout, group
    kind, interleave and outliers; mode 2 with both class axes, an odd map, an empty class."""
    rng = np.random.default_rng(20261201)
    normal = lambda *shape: rng.standard_normal(shape)  # noqa: E731
    p = rd.default_params
    out: dict[str, tuple[np.ndarray, dict]] = {}
    out["d_f32_576"] = (normal(576).astype(np.float32), p(step=0.05))
    out["d_f16_10x100"] = (normal(10, 100).astype(np.float16), p(step=0.1, rho_256=80))
    out["d_bf16_777"] = (normal(777).astype(ml_dtypes.bfloat16), p(step=0.3, rho_256=64))
    out["d_f64_33x31"] = (normal(33, 31), p(step=0.01))
    out["d_n1"] = (np.array([-2.5], dtype=np.float32), p(step=1.0))
    out["d_scalar"] = (np.array(1.25, dtype=np.float32), p(step=0.5))
    out["d_empty_0x3"] = (np.zeros((0, 3), dtype=np.float32), p())
    out["d_zeros_100"] = (np.zeros(100, dtype=np.float32), p(step=0.5))
    massive = (normal(8, 64) * 2).astype(np.float32)
    massive[0, [3, 17]] = [2.2e4, -1.9e4]
    out["d_outliers_8x64"] = (massive, p(step=0.05))
    out["d_chunks_5000"] = (normal(5000).astype(np.float32), p(step=0.2, chunk_log2=10))
    out["d_offsets_fixed"] = (normal(300).astype(np.float32), p(step=0.4, offsets=(-20, 7)))
    out["d_rows_table"] = (
        (normal(9, 130) * 3).astype(np.float32),
        p(step=0.1, layout=1, group_table=[0, 0x80, 0x81, 5, 0xF0, 3, 1, 0x81, 0x80], chunk_log2=6),
    )
    out["d_channels_table"] = (
        normal(2, 6, 5, 5).astype(np.float16),
        p(step=0.05, layout=2, group_table=[0, 0x81, 0x80, 8, 0xF8, 0x3F], chunk_log2=6),
    )
    # mode 2 (§19): class tables along the last axis / axis 1
    cols = np.geomspace(0.05, 20.0, 96)
    rows = (normal(24, 96) * cols).astype(np.float32)
    rows[0, [5, 90]] = [2.4e4, -1.7e4]
    out["m2_rows_k4"] = (rows, p(step=0.05, classes=4))
    out["m2_f16_k16_odd"] = (
        (normal(7, 33) * np.geomspace(0.1, 8.0, 33)).astype(np.float16),
        p(step=0.02, rho_256=80, classes=16, chunk_log2=6),
    )
    out["m2_bf16_k2"] = (
        (normal(5, 40) * np.geomspace(0.1, 8.0, 40)).astype(ml_dtypes.bfloat16),
        p(step=0.1, rho_256=64, classes=2),
    )
    out["m2_f64_rows_table"] = (
        normal(9, 30) * np.geomspace(0.01, 5.0, 30),
        p(step=0.01, layout=1, group_table=[0, 0x80, 0x81, 5, 0xF0, 3, 1, 0x81, 0x80],
          classes=8, chunk_log2=6),
    )  # fmt: skip
    chans = (normal(2, 12, 3, 3) * np.geomspace(0.1, 10.0, 12)[None, :, None, None]).astype(
        np.float32
    )
    out["m2_channels_empty_class"] = (
        chans,
        p(step=0.05, layout=2, group_table=[0, 0x80, 0x81, 0x80, 0x80, 5, 0, 0xF8, 0, 1, 2, 3],
          classes=4, class_axis=1, chunk_log2=6),
    )  # fmt: skip
    out["m2_interleaved_k16"] = (
        (normal(64, 160) * np.geomspace(0.01, 3.0, 160)).astype(np.float32),
        p(step=0.02, classes=16),
    )
    out["m2_empty_0x4"] = (np.zeros((0, 4), dtype=np.float32), p(classes=2))
    # mode 2 with index ranges (§18.3): no map bytes; L not a multiple of K, both axes, a class
    # whose positions are all zero groups (its table empty)
    out["m2_ranges_rows_k5"] = (
        (normal(7, 33) * np.geomspace(8.0, 0.1, 33)).astype(np.float16),
        p(step=0.02, rho_256=80, classes=5, class_map="ranges", chunk_log2=6),
    )
    out["m2_ranges_f32_k16"] = (
        (normal(40, 100) * np.geomspace(6.0, 0.01, 100)).astype(np.float32),
        p(step=0.02, classes=16, class_map="ranges"),
    )
    out["m2_ranges_channels_empty"] = (
        chans,
        p(step=0.05, layout=2, group_table=[0x80, 0x80, 0x80, 0, 0x81, 5, 0, 0xF8, 0, 1, 2, 3],
          classes=4, class_axis=1, class_map="ranges", chunk_log2=6),
    )  # fmt: skip
    # mode 2 with range boundaries (§18.4): K − 1 varint gaps, one of two bytes (gap >= 128),
    # both axes, a class whose positions are all zero groups (its table empty)
    out["m2_bounds_f32_k6"] = (
        (normal(12, 300) * np.geomspace(6.0, 0.01, 300)).astype(np.float32),
        p(step=0.02, classes=6, class_map="bounds", class_bounds=[2, 9, 40, 200, 299],
          chunk_log2=6),
    )  # fmt: skip
    out["m2_bounds_rows_k2_f16"] = (
        (normal(7, 33) * np.geomspace(8.0, 0.1, 33)).astype(np.float16),
        p(step=0.02, rho_256=80, layout=1, classes=2, class_map="bounds", class_bounds=[1]),
    )
    out["m2_bounds_channels_empty"] = (
        chans,
        p(step=0.05, layout=2, group_table=[0x80, 0x80, 0, 0x80, 0x81, 5, 0, 0xF8, 0, 1, 2, 3],
          classes=3, class_axis=1, class_map="bounds", class_bounds=[2, 3], chunk_log2=6),
    )  # fmt: skip
    # mode 1 with the table kinds of §13.5: coarser count classes (1 … 3) and the geometric
    # table (4); rows with zero / raw groups, several chunks with 4 states, a ternary input
    # (nsym = 3), wide codes (161 symbols) with fixed offsets
    out["d_kind1_f16_rows"] = (
        (normal(9, 130) * 3).astype(np.float16),
        p(step=0.1, layout=1, group_table=[0, 0x80, 0x81, 5, 0xF0, 3, 1, 0x81, 0x80],
          chunk_log2=6, table_kind=1),
    )  # fmt: skip
    out["d_kind2_bf16_777"] = (
        normal(777).astype(ml_dtypes.bfloat16),
        p(step=0.3, rho_256=64, table_kind=2),
    )
    out["d_kind3_chunks_20000"] = (
        normal(20000).astype(np.float32),
        p(step=0.5, chunk_log2=14, table_kind=3),
    )
    out["d_kind4_geom_4096"] = (
        rng.laplace(0.0, 1.0, 4096).astype(np.float32),
        p(step=1.5, table_kind=4),
    )
    out["d_kind4_ternary"] = (
        rng.choice([-1.0, 0.0, 0.0, 0.0, 1.0], 1000).astype(np.float32),
        p(step=1.0, table_kind=4),
    )
    wide = normal(40, 50)
    wide[::7, ::3] *= 1e4
    out["d_kind4_f64_wide"] = (wide, p(step=0.01, offsets=(-20, 7), table_kind=4))
    # mode 1 with the low-bit plane of §13.6: a pair of 4-state chunks and a tail at 5 bits (the
    # paired decoder's plane reads), rows with zero / raw groups and per-group steps, the widest
    # plane (15 bits) on float64 codes up to 2^53, and a plane with the geometric table
    big = normal(2 * 8192 + 333).astype(np.float32) * 40
    big[::501] *= 1e4
    out["d_low5_chunks"] = (big, p(step=0.01, chunk_log2=13, low_bits=5))
    out["d_low3_f16_rows"] = (
        (normal(9, 130) * 30).astype(np.float16),
        p(step=0.05, layout=1, group_table=[0, 0x80, 0x81, 5, 0xF0, 3, 1, 0x81, 0x80],
          chunk_log2=6, low_bits=3),
    )  # fmt: skip
    huge = normal(700) * 1e3
    huge[:4] = [2.0**53, -(2.0**53), 2.0**53 - 1, -(2.0**52) - 3]
    out["d_low15_f64"] = (huge, p(step=1.0, low_bits=15))
    out["d_low4_kind4_bf16"] = (
        (rng.laplace(0.0, 200.0, 3000)).astype(ml_dtypes.bfloat16),
        p(step=0.5, low_bits=4, table_kind=4),
    )
    return out


def cases_m3() -> dict[str, tuple[np.ndarray, dict]]:
    """Format 2, mode 3 (trellis-coded quantization, docs/format.md §21): every dtype, one and
    four chains per chunk, class maps of the three kinds on both axes, zero / raw groups, an
    empty class, fixed offsets, an empty array and one element."""
    rng = np.random.default_rng(20261202)
    normal = lambda *shape: rng.standard_normal(shape)  # noqa: E731
    p = rt.default_params
    out: dict[str, tuple[np.ndarray, dict]] = {}
    cols = np.geomspace(0.05, 20.0, 96)
    rows = (normal(24, 96) * cols).astype(np.float32)
    rows[0, [5, 90]] = [2.4e4, -1.7e4]
    out["m3_f32_24x96"] = (rows, p(step=0.05))
    out["m3_f16_k16_odd"] = (
        (normal(7, 33) * np.geomspace(0.1, 8.0, 33)).astype(np.float16),
        p(step=0.02, lam=0.24, classes=16, chunk_log2=6),
    )
    out["m3_bf16_ranges_k4"] = (
        (normal(5, 40) * np.geomspace(8.0, 0.1, 40)).astype(ml_dtypes.bfloat16),
        p(step=0.1, lam=0.46, classes=4, class_map="ranges"),
    )
    out["m3_f64_rows_table_k8"] = (
        normal(9, 30) * np.geomspace(0.01, 5.0, 30),
        p(step=0.01, layout=1, group_table=[0, 0x80, 0x81, 5, 0xF0, 3, 1, 0x81, 0x80],
          classes=8, chunk_log2=6),
    )  # fmt: skip
    chans = (normal(2, 12, 3, 3) * np.geomspace(0.1, 10.0, 12)[None, :, None, None]).astype(
        np.float32
    )
    out["m3_channels_bounds_empty"] = (
        chans,
        p(step=0.05, layout=2, group_table=[0x80, 0x80, 0, 0x80, 0x81, 5, 0, 0xF8, 0, 1, 2, 3],
          classes=3, class_axis=1, class_map="bounds", class_bounds=[2, 3], chunk_log2=6),
    )  # fmt: skip
    out["m3_four_chains"] = ((normal(64, 160) * 0.7).astype(np.float32), p(step=0.02))
    out["m3_offsets_fixed"] = (normal(300).astype(np.float32), p(step=0.4, offsets=(-20, 7, 5, -3)))
    out["m3_empty_0x4"] = (np.zeros((0, 4), dtype=np.float32), p(classes=2))
    out["m3_n1"] = (np.array([-2.5], dtype=np.float32), p(step=1.0))
    return out


def to_disk(x: np.ndarray) -> np.ndarray:
    """bfloat16 inputs are stored as their '<u2' bit patterns (plain .npy readers)."""
    return x.view(np.uint16) if x.dtype == ml_dtypes.bfloat16 else x


def dtype_name(x: np.ndarray) -> str:
    return {1: "float32", 2: "float16", 3: "bfloat16", 4: "float64"}[
        rd.DTYPE_CODES[np.dtype(x.dtype)]
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="verify, do not write")
    parser.add_argument(
        "--formats", default="1,2", help="comma-separated format versions to write/check"
    )
    args = parser.parse_args()
    formats = {int(f) for f in args.formats.split(",")}
    OUT.mkdir(parents=True, exist_ok=True)
    bad = 0
    for name, (x, params) in (cases() if 1 in formats else {}).items():
        stream = ref.encode(x, params)
        meta = {"dtype": dtype_name(x), "params": params}
        if args.check:
            same = (OUT / f"{name}.slc").read_bytes() == stream
            print(f"{name:24s} {len(stream):6d} bytes {'ok' if same else 'DIFFERS'}")
            bad += not same
            continue
        np.save(OUT / f"{name}.npy", to_disk(x))
        (OUT / f"{name}.json").write_text(json.dumps(meta, indent=1, sort_keys=True) + "\n")
        (OUT / f"{name}.slc").write_bytes(stream)
        print(f"{name:24s} {len(stream):6d} bytes")
    OUT_V2.mkdir(parents=True, exist_ok=True)
    for name, (x, params) in (cases_v2() if 2 in formats else {}).items():
        stream = rd.encode(x, params)
        if params["classes"] == 1:  # mode 1: the files written before mode 2 existed
            params = {k: v for k, v in params.items() if k not in ("classes", "class_axis")}
        if params.get("class_map") == "rank":  # the files written before index ranges existed
            params = {k: v for k, v in params.items() if k != "class_map"}
        if params.get("class_bounds") is None:  # the files written before range boundaries
            params = {k: v for k, v in params.items() if k != "class_bounds"}
        if params.get("table_kind") == 0:  # the files written before table kinds (§13.5)
            params = {k: v for k, v in params.items() if k != "table_kind"}
        if params.get("low_bits") == 0:  # the files written before low-bit planes (§13.6)
            params = {k: v for k, v in params.items() if k != "low_bits"}
        meta = {"dtype": dtype_name(x), "params": params}
        if args.check:
            same = (OUT_V2 / f"{name}.slc").read_bytes() == stream
            print(f"v2/{name:21s} {len(stream):6d} bytes {'ok' if same else 'DIFFERS'}")
            bad += not same
            continue
        np.save(OUT_V2 / f"{name}.npy", to_disk(x))
        (OUT_V2 / f"{name}.json").write_text(json.dumps(meta, indent=1, sort_keys=True) + "\n")
        (OUT_V2 / f"{name}.slc").write_bytes(stream)
        print(f"v2/{name:21s} {len(stream):6d} bytes")
    for name, (x, params) in (cases_m3() if 2 in formats else {}).items():
        stream = rt.encode(x, params)
        meta = {"dtype": dtype_name(x), "params": params}
        if args.check:
            same = (OUT_V2 / f"{name}.slc").read_bytes() == stream
            print(f"v2/{name:21s} {len(stream):6d} bytes {'ok' if same else 'DIFFERS'}")
            bad += not same
            continue
        if (OUT_V2 / f"{name}.slc").exists():  # written once, never regenerated
            continue
        np.save(OUT_V2 / f"{name}.npy", to_disk(x))
        (OUT_V2 / f"{name}.json").write_text(json.dumps(meta, indent=1, sort_keys=True) + "\n")
        (OUT_V2 / f"{name}.slc").write_bytes(stream)
        print(f"v2/{name:21s} {len(stream):6d} bytes")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
