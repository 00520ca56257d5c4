"""Class maps of mode 2 on KLT coefficients: ideal code bits of one table, the §18.2 rank map,
equal-count index ranges (§18.3: class floor(a·K/L), no map bytes) and the best K contiguous
ranges with explicit boundaries (chosen per stream by dynamic programming on the stream's own
codes: the most any boundary rule could gain), each with what its map would cost.

    python bench/class_ranges.py minilm_l3 --rows 36   # reads bench/data/*.npy

The cut tensor's rows are split in two: the KLT (slicer.split.transform.CutTransform) is fitted
on the first half and the second half is cut into slices of `--rows` rows (36: one MiniLM
sentence). Each slice is coded with ``slicer.encode(mode="auto", max_bytes=2 b/el,
classes=1)``; its codes at that stream's step give the ideal order-0 bits of every map
(frequency tables not counted: they are the same for every map of K classes).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from tqdm import tqdm

import slicer
from slicer.split.transform import CutTransform

DATA = Path(__file__).resolve().parent / "data"


def entropy_bits(counts: np.ndarray) -> np.ndarray:
    """Ideal order-0 bits of the counts along the last axis."""
    total = counts.sum(axis=-1, keepdims=True)
    p = np.where(counts > 0, counts / np.maximum(total, 1), 1.0)
    return -(counts * np.log2(p)).sum(axis=-1)


def best_ranges(sym: np.ndarray, k: int) -> float:
    """Fewest ideal bits of `sym` (rows × L) cut into k contiguous position ranges."""
    length = sym.shape[1]
    nsym = int(sym.max()) + 1
    hist = np.zeros((length + 1, nsym))
    for a in range(length):
        hist[a + 1] = hist[a] + np.bincount(sym[:, a], minlength=nsym)
    # cost[i, j] = bits of positions [i, j)
    cost = np.full((length + 1, length + 1), np.inf)
    for i in range(length):
        cost[i, i + 1 :] = entropy_bits(hist[i + 1 :] - hist[i])
    best = cost[0].copy()  # one range [0, j)
    for _ in range(k - 1):
        best = np.min(best[:, None] + cost, axis=0)
    return float(best[length])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("workload", nargs="?", default="minilm_l3")
    parser.add_argument("--rows", type=int, default=36, help="rows per coded slice")
    parser.add_argument("--budget", type=float, default=2.0, help="bits per element")
    parser.add_argument("--classes", type=int, nargs="+", default=[8, 16])
    args = parser.parse_args()
    x = np.load(DATA / f"{args.workload}.npy").astype(np.float32)
    x = x.reshape(-1, x.shape[-1])
    t = x.shape[0] // 2
    y = np.asarray(CutTransform.fit([x[:t]]).forward(x[t:]), np.float32)
    length = y.shape[1]
    slices = [y[s : s + args.rows] for s in range(0, y.shape[0] - args.rows + 1, args.rows)]
    n = sum(s.size for s in slices)
    bits: dict[str, float] = {}
    for s in tqdm(slices, desc="slices", unit="slice"):
        stream = slicer.encode(s, mode="auto", max_bytes=int(args.budget * s.size / 8), classes=1)
        step = slicer.inspect(stream).step
        q = np.floor(np.abs(s) / step + 0.5) * np.sign(s)
        sym = (np.unique(q, return_inverse=True)[1]).reshape(q.shape)
        bits["one table"] = bits.get("one table", 0.0) + float(
            entropy_bits(np.bincount(sym.ravel()))
        )
        score = np.abs(q).sum(axis=0)
        rank = np.empty(length, np.int64)
        rank[np.lexsort((np.arange(length), score))] = np.arange(length)
        for k in args.classes:
            for name, cls in (
                ("rank", rank * k // length),
                ("ranges", np.arange(length) * k // length),
            ):
                b = sum(
                    float(entropy_bits(np.bincount(sym[:, cls == c].ravel()))) for c in range(k)
                )
                bits[f"K={k} {name}"] = bits.get(f"K={k} {name}", 0.0) + b
            key = f"K={k} best boundaries"
            bits[key] = bits.get(key, 0.0) + best_ranges(sym, k)
    boundary_bytes = 2 if length >= 128 else 1  # a varint position per boundary
    print(f"{args.workload}: {len(slices)} slices of {args.rows} x {length}, KLT, "
          f"{args.budget} b/el")  # fmt: skip
    print(f"{'map':<22} {'code b/el':>9} {'map b/el':>8} {'total':>8}")
    for name, b in bits.items():
        k = int(name.split()[0][2:]) if name.startswith("K=") else 1
        per_slice = 0 if k == 1 or "ranges" in name else (
            (length + 1) // 2 if "rank" in name else (k - 1) * boundary_bytes)  # fmt: skip
        map_bpe = per_slice * 8 * len(slices) / n
        print(f"{name:<22} {b / n:9.4f} {map_bpe:8.4f} {b / n + map_bpe:8.4f}")


if __name__ == "__main__":
    main()
