"""Speed of the format-2 dense mode on one core, with baselines in the same process.

    python bench/bench_dense_speed.py [--reps 15]

Input: 1M float32 (SmolLM2 layer-15 states of bench/data tiled to 2^20 elements). Every time
is the median over `reps` calls of the calling thread's CPU time (time.thread_time: the
machine may be shared; wall times are printed too). threads=1 everywhere. Rows:
- memcpy of the 4 MB input (numpy.copyto): the bandwidth reference of this machine;
- format-1 top-K encode/decode (s=0.9, the previous codec);
- dense encode / decode with fixed steps at about 2, 4 and 8 bits per element (mode 1), and the
  same with 8 class tables (mode 2, classes along the last axis of the input cut to rows of 576,
  SmolLM2's width: 1820 rows);
- SZ3 (pysz) compress / decompress with the absolute bound whose error matches dense at 4 b/el;
- mode="auto" with max_bytes = 4 b/el and rel_error = the 4 b/el error, against one plain encode.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def timed(fn, reps: int) -> tuple[float, float, object]:
    cpu, wall = [], []
    out = None
    for _ in range(reps):
        c0, w0 = time.thread_time(), time.perf_counter()
        out = fn()
        cpu.append(time.thread_time() - c0)
        wall.append(time.perf_counter() - w0)
    return statistics.median(cpu), statistics.median(wall), out


def rel(x: np.ndarray, y: np.ndarray) -> float:
    x64 = x.astype(np.float64)
    return float(np.linalg.norm(x64 - y.astype(np.float64)) / np.linalg.norm(x64))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=15)
    args = parser.parse_args(argv)
    import slicer

    base = np.load(HERE / "data" / "smollm2_l15.npy").reshape(-1)
    x = np.resize(base, 1 << 20).astype(np.float32)
    nbytes = x.nbytes
    rows = []

    def row(name, cpu, wall, extra=""):
        rows.append((name, cpu, wall, extra))
        gbs = nbytes / cpu / 1e9
        print(f"| {name} | {cpu * 1e3:.2f} | {gbs:.2f} | {wall * 1e3:.2f} | {extra} |", flush=True)

    print("| operation | CPU ms | GB/s (CPU) | wall ms | note |")
    print("|---|---:|---:|---:|---|")
    dst = np.empty_like(x)
    c, w, _ = timed(lambda: np.copyto(dst, x), args.reps)
    row("memcpy 4 MB (numpy.copyto)", c, w)
    c, w, s1 = timed(lambda: slicer.encode(x, sparsity=0.9, threads=1), args.reps)
    row("format 1 top-K encode (s=0.9)", c, w, f"{8 * len(s1) / x.size:.2f} b/el")
    c, w, _ = timed(lambda: slicer.decode(s1, threads=1), args.reps)
    row("format 1 top-K decode", c, w)
    steps = {}
    for target in (2, 4, 8):
        lo, hi = -12.0, 8.0
        for _ in range(30):
            mid = (lo + hi) / 2
            if 8 * len(slicer.encode(x, mode="dense", step=2**mid, threads=1)) / x.size > target:
                lo = mid
            else:
                hi = mid
        steps[target] = 2**hi
        c, w, s = timed(lambda st=2**hi: slicer.encode(x, mode="dense", step=st, threads=1),
                        args.reps)  # fmt: skip
        err = rel(x, slicer.decode(s))
        row(f"dense encode, {8 * len(s) / x.size:.2f} b/el", c, w, f"rel L2 {err:.2e}")
        c2, w2, _ = timed(lambda s=s: slicer.decode(s, threads=1), args.reps)
        row(f"dense decode, {8 * len(s) / x.size:.2f} b/el", c2, w2)
        if target == 4:
            enc4, dec4, err4, s4 = c, c2, err, s
    x2 = x[: (x.size // 576) * 576].reshape(-1, 576)
    for target in (2, 4, 8):  # mode 2: 8 class tables over the 576 positions of a row
        lo, hi = -12.0, 8.0
        for _ in range(30):
            mid = (lo + hi) / 2
            s = slicer.encode(x2, mode="dense", step=2**mid, classes=8, threads=1)
            if 8 * len(s) / x2.size > target:
                lo = mid
            else:
                hi = mid
        c, w, s = timed(lambda st=2**hi: slicer.encode(x2, mode="dense", step=st, classes=8,
                                                       threads=1), args.reps)  # fmt: skip
        err = rel(x2, slicer.decode(s))
        row(f"dense 8 classes encode, {8 * len(s) / x2.size:.2f} b/el", c, w, f"rel L2 {err:.2e}")
        c2, w2, _ = timed(lambda s=s: slicer.decode(s, threads=1), args.reps)
        row(f"dense 8 classes decode, {8 * len(s) / x2.size:.2f} b/el", c2, w2)
    plain = enc4
    c, w, s = timed(lambda: slicer.encode(x, mode="auto", max_bytes=len(s4), threads=1), 3)
    row("auto, max_bytes = the 4 b/el size", c, w,
        f"{c / plain:.2f}x one plain encode; rel L2 {rel(x, slicer.decode(s)):.2e}")  # fmt: skip
    c, w, s = timed(lambda: slicer.encode(x, mode="auto", rel_error=err4, threads=1), 3)
    row("auto, rel_error = the 4 b/el error", c, w,
        f"{c / plain:.2f}x one plain encode; {8 * len(s) / x.size:.2f} b/el")  # fmt: skip
    try:
        from pysz import sz, szConfig, szErrorBoundMode
    except ImportError:
        print("SZ3 (pysz) not installed")
        return 0
    value_range = float(x.max() - x.min())
    lo, hi = 1e-9, 1e-1
    best = None
    for _ in range(30):  # the SZ3 bound whose error matches dense at 4 b/el
        mid = (lo * hi) ** 0.5
        cfg = szConfig()
        cfg.errorBoundMode = szErrorBoundMode.ABS
        cfg.absErrorBound = mid * value_range
        comp, _ = sz.compress(x, cfg)
        y, _ = sz.decompress(comp, np.float32, x.shape)
        if rel(x, y) > err4:
            hi = mid
        else:
            lo, best = mid, (cfg, comp)
    cfg, comp = best
    c, w, comp = timed(lambda: sz.compress(x, cfg)[0], max(3, args.reps // 3))
    y, _ = sz.decompress(comp, np.float32, x.shape)
    row("SZ3 compress at the same error", c, w,
        f"{8 * comp.nbytes / x.size:.2f} b/el, rel L2 {rel(x, y):.2e}; dense encode "
        f"{c / enc4:.1f}x faster")  # fmt: skip
    c, w, _ = timed(lambda: sz.decompress(comp, np.float32, x.shape), max(3, args.reps // 3))
    row("SZ3 decompress", c, w, f"dense decode {c / dec4:.1f}x faster")
    return 0


if __name__ == "__main__":
    sys.exit(main())
