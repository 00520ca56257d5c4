"""Format-2 dense mode, NumPy reference, against the rate-distortion peers on real activations.

    python bench/activations.py          # once (writes bench/data/)
    python bench/dense_sketch.py         # table per workload, reference streams (real bytes)

For every budget B (bits/element) the reference's step is searched (bisection on the predicted
size, then one real encode; the point counts only if the REAL stream fits B·N/8 bytes) for a few
rounding offsets ρ; the lowest rel. L2 error is reported next to the best peer at ≤ B bits
(peers: bench/bench_rd.py's fp16 / bf16 / int8 / int4 / top-k + int8 / zfp / SZ3, plus per-row
and per-channel int8 / int6 / int4 with one f32 scale per row/channel).
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))

import bench_rd  # noqa: E402

import reference_dense as rd  # noqa: E402

BUDGETS = (1, 2, 3, 4, 6, 8)
RHOS = (128, 96, 72)


def axis_int(x: np.ndarray, bits: int, axis: int) -> tuple[np.ndarray, int]:
    """Symmetric int quantization with one f32 scale per slice along `axis` (absmax)."""
    x64 = x.astype(np.float64)
    moved = np.moveaxis(x64, axis, 0).reshape(x.shape[axis], -1)
    half = (1 << (bits - 1)) - 1
    scale = np.abs(moved).max(axis=1, keepdims=True) / half
    scale[scale == 0] = 1.0
    y = np.clip(np.rint(moved / scale), -half, half) * scale
    y = np.moveaxis(y.reshape(np.moveaxis(x64, axis, 0).shape), 0, axis)
    return y.astype(np.float32), bits * x.size + 32 * x.shape[axis]


def axis_points(x: np.ndarray) -> list[dict]:
    out = []
    axes = {"row": x.ndim - 1} if x.ndim == 2 else {}
    if x.ndim == 2:
        axes = {"row": 0, "column": 1}
    elif x.ndim >= 3:
        axes = {"channel": x.ndim - 3}
    for label, axis in axes.items():
        for bits in (8, 6, 4):
            y, nbits = axis_int(x, bits, axis)
            out.append(bench_rd.point(f"int{bits} per {label}", "", nbits, x, y))
    return out


def search(x: np.ndarray, budget_bytes: float, rho: int) -> tuple[float, bytes] | None:
    """Largest-rate step whose real stream fits the budget (None if nothing fits)."""
    rms = float(np.sqrt(np.mean(x.astype(np.float64) ** 2))) or 1.0
    lo, hi = math.log2(rms) - 20, math.log2(rms) + 6  # lo: too many bytes, hi: fits
    for _ in range(26):
        mid = (lo + hi) / 2
        p = rd.plan(x, rd.default_params(step=2.0**mid, rho_256=rho))
        if rd.estimate_bytes(p) <= budget_bytes:
            hi = mid
        else:
            lo = mid
    for k in range(6):  # the estimate is a few bytes optimistic at worst: back off if needed
        step = 2.0 ** (hi + 0.01 * k)
        stream = rd.encode(x, rd.default_params(step=step, rho_256=rho))
        if len(stream) <= budget_bytes:
            return step, stream
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workloads", nargs="+", default=None)
    args = parser.parse_args(argv)
    from tqdm import tqdm

    workloads = bench_rd.load_workloads(bench_rd.DATA_DIR, args.workloads)
    for name, x in workloads.items():
        peers = bench_rd.plain_points(x, bench_rd.SPARSITY_FULL) + axis_points(x)
        for peer, fn in (("zfp", bench_rd.zfp_points), ("SZ3", bench_rd.sz3_points)):
            pts, status = bench_rd.guarded(peer, fn, x)
            peers += pts
        print(f"\n## {name} {x.shape}\n")
        print("| B | dense ref rel L2 | bits/el | step | rho | best peer | peer rel L2 | ratio |")
        print("|---:|---:|---:|---:|---:|---|---:|---:|")
        for b in tqdm(BUDGETS, desc=name, file=sys.stderr):
            best = None
            for rho in RHOS:
                found = search(x, b * x.size / 8, rho)
                if found is None:
                    continue
                step, stream = found
                y, _ = rd.decode(stream)
                err = bench_rd.rel_l2(x, y)
                if best is None or err < best[0]:
                    best = (err, 8 * len(stream) / x.size, step, rho)
            within = bench_rd.best_within(peers, b)
            peer = min(within.values(), key=lambda p: p["rel_l2"]) if within else None
            pe = peer["rel_l2"] if peer else float("nan")
            if best is None:
                print(f"| {b} | — | — | — | — | {peer['method'] if peer else '—'} | {pe:.2e} | |")
                continue
            err, bpe, step, rho = best
            pname = f"{peer['method']} {peer['config']}".strip() if peer else "—"
            print(f"| {b} | {err:.3e} | {bpe:.3f} | {step:.3g} | {rho} | {pname} | {pe:.2e} "
                  f"| {err / pe:.2f} |")  # fmt: skip
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
