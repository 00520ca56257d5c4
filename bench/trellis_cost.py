"""Cost of mode 3 (trellis=True) with a budget against one mode-3 encode at a step, with the
rate model as the C++ kernel (KernelModel, the default) and as the NumPy reference (DenseModel).

    python bench/trellis_cost.py [--reps 7] [--sizes 16384,131072,1048576]

Input as bench/auto_cost.py: SmolLM2 layer-15 states of bench/data tiled to (N / 64, 64)
float32. The plain call is ``mode="dense", trellis=True, step=0.5`` (classes=1); the budgets are
its size (max_bytes) and its relative L2 error (rel_error), classes "auto" and 1. One round calls
the plain encode, then every budget call with each model in turn; times are the calling thread's
CPU time (time.thread_time), threads=1, medians over `reps` rounds; the two models' streams are
compared byte for byte.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=7)
    parser.add_argument("--sizes", default="16384,131072,1048576")
    args = parser.parse_args()
    import slicer
    from slicer import _rate

    models = {"kernel": _rate.KernelModel, "numpy": _rate.DenseModel}
    print(f"# uptime: {os.popen('uptime').read().strip()}")
    print("| N | target | classes | plain ms | kernel ms | kernel / plain | NumPy model ms | "
          "NumPy / plain | same stream |")  # fmt: skip
    print("|---:|---|---|---:|---:|---:|---:|---:|---|")
    base = np.load(HERE / "data" / "smollm2_l15.npy").reshape(-1)
    for n in (int(v) for v in args.sizes.split(",")):
        x = np.resize(base, n).astype(np.float32).reshape(n // 64, 64)
        plain_kw = dict(mode="dense", trellis=True, step=0.5, threads=1)
        s = slicer.encode(x, **plain_kw)
        d = slicer.decode(s).astype(np.float64)
        err = float(np.linalg.norm(d - x) / np.linalg.norm(x.astype(np.float64)))
        calls = {}
        targets = (("max_bytes", dict(max_bytes=len(s))), ("rel_error", dict(rel_error=err)))
        for target, kw in targets:
            for classes in ("auto", 1):
                calls[(target, classes)] = dict(kw, classes=classes)
        cpu: dict = {"plain": []}
        out: dict = {}
        saved = _rate.MODEL
        try:
            for _ in range(args.reps):
                c0 = time.thread_time()
                slicer.encode(x, **plain_kw)
                cpu["plain"].append(time.thread_time() - c0)
                for key, kw in calls.items():
                    for tag, model in models.items():
                        _rate.MODEL = model
                        c0 = time.thread_time()
                        out[key + (tag,)] = slicer.encode(x, mode="dense", trellis=True,
                                                          threads=1, **kw)  # fmt: skip
                        cpu.setdefault(key + (tag,), []).append(time.thread_time() - c0)
        finally:
            _rate.MODEL = saved
        plain = statistics.median(cpu["plain"])
        for (target, classes), _kw in calls.items():
            k = statistics.median(cpu[(target, classes, "kernel")])
            m = statistics.median(cpu[(target, classes, "numpy")])
            same = out[(target, classes, "kernel")] == out[(target, classes, "numpy")]
            print(f"| {n:,} | {target} | {classes} | {plain * 1e3:.2f} | {k * 1e3:.2f} | "
                  f"{k / plain:.2f}x | {m * 1e3:.2f} | {m / plain:.2f}x | "
                  f"{'yes' if same else 'NO'} |", flush=True)  # fmt: skip
    print(f"# uptime: {os.popen('uptime').read().strip()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
