"""Cost of class tables (format 2 mode 2, docs/format.md §19) on one core.

    python bench/classes_speed.py [--reps 9]

Input: SmolLM2 layer-15 states of bench/data tiled to 1820 token rows of 576 (1,048,320
float32), the shape where classes pay. Every time is the median over `reps` calls of the
calling thread's CPU time (time.thread_time; the machine may be shared, wall times are printed
too); threads=1 everywhere. Rows:
- dense encode / decode at the 4 b/el step with one table (mode 1) and with 16 class tables;
- mode="auto" with max_bytes = the 4 b/el size and rel_error = the 4 b/el error, classes=1 and
  classes="auto", against one plain mode-1 encode (issue 7 target: auto <= 3 plain encodes).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from bench_dense_speed import rel, timed  # the same timing and error helpers (bench/)

HERE = Path(__file__).resolve().parent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=9)
    args = parser.parse_args()
    import slicer

    base = np.load(HERE / "data" / "smollm2_l15.npy").reshape(-1)
    x = np.resize(base, 1820 * 576).astype(np.float32).reshape(1820, 576)
    nbytes = x.nbytes

    def row(name: str, cpu: float, wall: float, extra: str = "") -> None:
        gbs = nbytes / cpu / 1e9
        print(f"| {name} | {cpu * 1e3:.2f} | {gbs:.2f} | {wall * 1e3:.2f} | {extra} |", flush=True)

    print("| operation | CPU ms | GB/s (CPU) | wall ms | note |")
    print("|---|---:|---:|---:|---|")
    lo, hi = -12.0, 8.0
    for _ in range(30):
        mid = (lo + hi) / 2
        if 8 * len(slicer.encode(x, mode="dense", step=2**mid, threads=1)) / x.size > 4:
            lo = mid
        else:
            hi = mid
    step = 2**hi
    encodes = {}
    for k in (1, 16):
        c, w, s = timed(lambda k=k: slicer.encode(x, mode="dense", step=step, classes=k,
                                                  threads=1), args.reps)  # fmt: skip
        encodes[k] = (c, s)
        row(f"dense encode, classes={k}", c, w,
            f"{8 * len(s) / x.size:.3f} b/el, rel L2 {rel(x, slicer.decode(s)):.3e}")  # fmt: skip
        c2, w2, _ = timed(lambda s=s: slicer.decode(s, threads=1), args.reps)
        row(f"dense decode, classes={k}", c2, w2)
    plain, s4 = encodes[1]
    err4 = rel(x, slicer.decode(s4))
    for classes in (1, "auto"):
        c, w, s = timed(lambda classes=classes: slicer.encode(
            x, mode="auto", max_bytes=len(s4), classes=classes, threads=1), 3)  # fmt: skip
        row(f"auto, max_bytes = the 4 b/el size, classes={classes}", c, w,
            f"{c / plain:.2f}x one plain encode; K={slicer.inspect(s).classes}, "
            f"rel L2 {rel(x, slicer.decode(s)):.3e}")  # fmt: skip
        c, w, s = timed(lambda classes=classes: slicer.encode(
            x, mode="auto", rel_error=err4, classes=classes, threads=1), 3)  # fmt: skip
        row(f"auto, rel_error = the 4 b/el error, classes={classes}", c, w,
            f"{c / plain:.2f}x one plain encode; K={slicer.inspect(s).classes}, "
            f"{8 * len(s) / x.size:.3f} b/el")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
