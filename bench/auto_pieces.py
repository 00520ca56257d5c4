"""Where `mode="auto"`'s time goes at small sizes: each piece of the rate control by itself.

    python bench/auto_pieces.py [--sizes 16384,131072] [--reps 300]

Input as bench/auto_cost.py (SmolLM2 layer 15 of bench/data tiled to (N / 64, 64) float32). Per
piece the minimum CPU time of the calling thread (time.thread_time) over `reps` calls: the
plain encode (``mode="dense", step=0.5``), the model (one pass and the sorted sample), the step
search for three rounding offsets and for one, the class search's pieces at the step the search
found (the sample's symbols, the one-table histogram, Σ|x| per position, the rank-class
histograms, the §18.4 boundaries), the whole class search, and whole auto calls with max_bytes =
the plain stream's size (`--phases CALLS`: instead, each piece's time inside whole calls).
Internal functions of python/slicer/_rate.py: run it under the build
it is meant to measure (the pieces keep their names across the builds compared in RESULTS §9.15).
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def best(fn, reps: int) -> float:  # noqa: ANN001
    low = 1e9
    for _ in range(reps):
        c0 = time.thread_time()
        fn()
        low = min(low, time.thread_time() - c0)
    return low * 1e6


def measure(x: np.ndarray, reps: int) -> None:
    """Print each piece's time for the input `x` ((N / 64, 64) float32)."""
    import slicer
    from slicer import _rate

    n = x.size
    s = slicer.encode(x, mode="dense", step=0.5, threads=1)
    model = _rate._new_model(x, x, False)
    step = float(_rate._bisect_step(model, (128,), len(s))[0])
    sym = model.symbols(step, 128)
    pos = _rate._sample_positions_along(model.n, 64, 1)
    scores = model.position_scores(x, x.shape, 0)
    rank = np.empty(64, dtype=np.int64)
    rank[np.lexsort((np.arange(64), scores))] = np.arange(64)
    params = dict(classes="auto", class_axis=0)
    pieces = [
        ("plain encode", lambda: slicer.encode(x, mode="dense", step=0.5, threads=1)),
        ("model (_new_model)", lambda: _rate._new_model(x, x, False)),
        ("step search, 3 offsets", lambda: _rate._bisect_step(model, (128, 96, 72), len(s))),
        ("step search, 1 offset", lambda: _rate._bisect_step(model, (128,), len(s))),
        ("symbols", lambda: model.symbols(step, 128)),
        ("one-table histogram", lambda: model.class_bits(sym, None, 1)),
        ("position scores", lambda: model.position_scores(x, x.shape, 0)),
        ("rank classes K=2..16", lambda: model.rank_bits(sym, pos, rank, 64, [2, 4, 8, 16])),
        ("boundaries K=2..16", lambda: model.best_bounds(pos, sym, 64, [2, 4, 8, 16])),
        ("class search", lambda: _rate._resolve_classes(x, params, model, x, step, 128)),
        ("auto max_bytes, classes=auto",
         lambda: slicer.encode(x, mode="auto", max_bytes=len(s), threads=1)),
        ("auto max_bytes, classes=1",
         lambda: slicer.encode(x, mode="auto", max_bytes=len(s), threads=1, classes=1)),
    ]  # fmt: skip
    for name, fn in pieces:
        print(f"{n:>8} {name:<30} {best(fn, reps):9.1f} us", flush=True)


def phases(x: np.ndarray, calls: int) -> None:
    """Each piece's CPU time inside whole calls (max_bytes = the plain size, classes="auto"):
    the rate-control functions and the real encodes wrapped, the fastest 3 of `calls` calls."""
    import collections

    import slicer
    from slicer import _core, _rate

    spent: dict[str, float] = collections.defaultdict(float)

    def wrap(module, name: str) -> None:  # noqa: ANN001
        fn = getattr(module, name)

        def timed(*a, **k):  # noqa: ANN002, ANN003, ANN202
            c0 = time.thread_time()
            try:
                return fn(*a, **k)
            finally:
                spent[name] += time.thread_time() - c0

        setattr(module, name, timed)

    s = slicer.encode(x, mode="dense", step=0.5, threads=1)
    for name in ("_new_model", "_bisect_step", "_resolve_classes"):
        wrap(_rate, name)
    wrap(_core, "dense_encode")
    runs = []
    for _ in range(calls):
        spent.clear()
        c0 = time.thread_time()
        slicer.encode(x, mode="auto", max_bytes=len(s), threads=1)
        runs.append((time.thread_time() - c0, dict(spent)))
    for total, parts in sorted(runs, key=lambda r: r[0])[:3]:
        print(f"{x.size:>8} whole call {total * 1e6:7.0f} us: "
              + ", ".join(f"{k} {v * 1e6:.0f}" for k, v in parts.items()))  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="16384,131072")
    parser.add_argument("--reps", type=int, default=300)
    parser.add_argument("--phases", type=int, default=0, metavar="CALLS",
                        help="instead: the pieces' time inside CALLS whole calls")  # fmt: skip
    args = parser.parse_args()
    import slicer

    print(f"# {slicer.__file__}; uptime: {os.popen('uptime').read().strip()}")
    base = np.load(HERE / "data" / "smollm2_l15.npy").reshape(-1)
    for n in (int(v) for v in args.sizes.split(",")):
        x = np.resize(base, n).astype(np.float32).reshape(n // 64, 64)
        if args.phases:
            phases(x, args.phases)
        else:
            measure(x, args.reps)
    print(f"# uptime: {os.popen('uptime').read().strip()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
