"""Cost of class tables (format 2 mode 2, docs/format.md §19) on one core.

    python bench/classes_speed.py [--reps 9] [--before OLD_RATE.py]

Input: SmolLM2 layer-15 states of bench/data tiled to 1820 token rows of 576 (1,048,320
float32), the shape where classes pay. Every time is the median over `reps` calls of the
calling thread's CPU time (time.thread_time; the machine may be shared, wall times are printed
too); threads=1 everywhere. Rows:
- dense encode / decode at the 4 b/el step with one table (mode 1) and with 16 class tables;
- mode="auto" with max_bytes = the 4 b/el size and rel_error = the 4 b/el error, classes=1 and
  classes="auto", against one plain mode-1 encode (issue 7 target: auto <= 3 plain encodes).

`--before FILE`: a copy of an earlier python/slicer/_rate.py (e.g. `git show
REV:python/slicer/_rate.py > /tmp/rate_before.py`); its rate control is timed in the same
process, each call interleaved with the current one and with the plain encode (the machine's
load then weighs on both alike), and the streams of the two are compared byte for byte.
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from bench_dense_speed import rel, timed  # the same timing and error helpers (bench/)

HERE = Path(__file__).resolve().parent
RATE_FUNCTIONS = ("dense_for_budget", "dense_for_error", "classes_at_step")


def load_rate(path: str):  # noqa: ANN201
    """An earlier _rate.py as module slicer._rate_before (its relative imports resolve)."""
    spec = importlib.util.spec_from_file_location("slicer._rate_before", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["slicer._rate_before"] = module
    spec.loader.exec_module(module)
    return module


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=9)
    parser.add_argument("--before", metavar="OLD_RATE.py", help="an earlier _rate.py to compare")
    args = parser.parse_args()
    import slicer
    from slicer import _api, _rate

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
    s4 = encodes[1][1]
    err4 = rel(x, slicer.decode(s4))
    rates = {"": _rate}
    if args.before:
        rates[" (before)"] = load_rate(args.before)

    def use(module) -> None:  # noqa: ANN001
        for name in RATE_FUNCTIONS:
            setattr(_api, name, getattr(module, name))

    calls = {"plain": lambda: slicer.encode(x, mode="dense", step=step, classes=1, threads=1)}
    for classes in (1, "auto"):
        for tag in rates:
            calls[f"auto, max_bytes = the 4 b/el size, classes={classes}{tag}"] = (
                tag, dict(max_bytes=len(s4), classes=classes))  # fmt: skip
            calls[f"auto, rel_error = the 4 b/el error, classes={classes}{tag}"] = (
                tag, dict(rel_error=err4, classes=classes))  # fmt: skip
    cpu: dict[str, list[float]] = {name: [] for name in calls}
    wall: dict[str, list[float]] = {name: [] for name in calls}
    out: dict[str, bytes] = {}
    try:
        for _ in range(max(3, args.reps)):  # one call of each, in turn, per round
            for name, call in calls.items():
                if name == "plain":
                    fn = call
                else:
                    tag, kwargs = call
                    use(rates[tag])
                    fn = lambda kw=kwargs: slicer.encode(x, mode="auto", threads=1, **kw)  # noqa: E731
                c0, w0 = time.thread_time(), time.perf_counter()
                out[name] = fn()
                cpu[name].append(time.thread_time() - c0)
                wall[name].append(time.perf_counter() - w0)
    finally:
        use(_rate)
    plain = statistics.median(cpu["plain"])
    row("plain mode-1 encode (interleaved with the auto calls)", plain,
        statistics.median(wall["plain"]))  # fmt: skip
    for name in calls:
        if name == "plain":
            continue
        s = out[name]
        c = statistics.median(cpu[name])
        if "max_bytes" in name:
            what = f"rel L2 {rel(x, slicer.decode(s)):.3e}"
        else:
            what = f"{8 * len(s) / x.size:.3f} b/el"
        same = ""
        if name.endswith(" (before)"):
            same = "; same stream as now" if s == out[name[: -len(" (before)")]] else "; differs"
        note = f"{c / plain:.2f}x one plain encode; K={slicer.inspect(s).classes}, {what}{same}"
        row(name, c, statistics.median(wall[name]), note)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
