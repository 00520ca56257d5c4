"""Entropy-coder efficiency of the dense mode (issue 7 target: coded size within 3 % of the
order-0 entropy of the codes, tables included, on groups of >= 4096 elements; no floor of
1 bit per element).

    python bench/bench_entropy.py          # needs bench/data/ (bench/activations.py)

For every workload, slice size (4096 elements and the whole tensor) and step (chosen for
0.5 ... 8 bits per element), the codes q of the real stream (the reference quantizer,
tests/reference_dense.py, identical to the C++ one) give H0 = N * order-0 entropy of q;
"coded" is everything the entropy coder spends: frequency table + chunk table + rANS bytes +
extra bits (header and CRC excluded: they are not the coder's). Overhead = coded / H0 - 1.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))

import bench_rd  # noqa: E402

import reference_dense as rd  # noqa: E402

TARGET_BPE = (0.5, 1, 2, 4, 8)


def entropy_bits(q: np.ndarray) -> float:
    _, counts = np.unique(q, return_counts=True)
    p = counts / q.size
    return float(-np.sum(counts * np.log2(p)))


def step_for(x: np.ndarray, bpe: float) -> float:
    """Bisection on the real stream size for a target rate."""
    import slicer

    rms = float(np.sqrt(np.mean(x.astype(np.float64) ** 2))) or 1.0
    lo, hi = np.log2(rms) - 16, np.log2(rms) + 8
    for _ in range(22):
        mid = (lo + hi) / 2
        if 8 * len(slicer.encode(x, mode="dense", step=2.0**mid)) / x.size > bpe:
            lo = mid
        else:
            hi = mid
    return float(2.0**hi)


def main() -> int:
    import slicer

    workloads = bench_rd.load_workloads(bench_rd.DATA_DIR, None)
    print("| workload | elements | target b/el | H0 b/el | coded b/el | overhead |")
    print("|---|---:|---:|---:|---:|---:|")
    worst = {}
    for name, x in workloads.items():
        flat = x.reshape(-1)
        for size in (4096, flat.size):
            part = flat[:size]
            for bpe in TARGET_BPE:
                step = step_for(part, bpe)
                stream = slicer.encode(part, mode="dense", step=step)
                a = slicer.inspect(stream).account
                coded = 8 * (a.freq_table + a.chunk_table + a.codes + a.extra_bits)
                p = rd.plan(part, rd.default_params(step=step))
                q = np.where(p.negative, -p.m, p.m)
                h0 = entropy_bits(q)
                over = coded / h0 - 1 if h0 > 0 else float("nan")
                key = "4096" if size == 4096 else "whole"
                worst[key] = max(worst.get(key, -1.0), over)
                print(f"| {name} | {size} | {bpe:g} | {h0 / size:.4f} | {coded / size:.4f} "
                      f"| {100 * over:+.2f} % |")  # fmt: skip
    print()
    for key, value in worst.items():
        print(f"worst overhead, {key} slices: {100 * value:+.2f} %")
    return 0


if __name__ == "__main__":
    sys.exit(main())
