"""Encode / decode speed of mode 3 (trellis-coded quantization, docs/format.md §21) as ratios
to modes 1 and 2 in one process: 1M float32 values, one thread, CPU time of the calling
thread (median of --reps), at steps that give about the same bytes.

    python bench/trellis_speed.py [--reps 7] [--data bench/data/smollm2_l25.npy]

Without --data the input is 1M normal values scaled per column (1024 x 1024, a spread like
LLM channels). Prints bytes per element, MB/s of float32 input and each ratio.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

import slicer


def thread_seconds(fn, reps: int) -> float:  # noqa: ANN001
    times = []
    for _ in range(reps):
        t = time.thread_time()
        fn()
        times.append(time.thread_time() - t)
    return float(np.median(times))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--reps", type=int, default=7)
    p.add_argument("--data", default=None)
    p.add_argument("--bits", type=float, default=2.5, help="bits per element of the streams")
    a = p.parse_args()
    if a.data:
        x = np.load(a.data).astype(np.float32).reshape(-1)
        x = np.resize(x, 1 << 20).reshape(1024, 1024)
    else:
        rng = np.random.default_rng(0)
        x = (rng.standard_normal((1024, 1024)) * np.geomspace(0.1, 10, 1024)).astype(np.float32)
    limit = int(a.bits * x.size / 8)
    print(f"load: {os.getloadavg()[0]:.2f}; {x.size} float32, target {a.bits} b/el, 1 thread")
    cases = {}
    # steps that hit the budget (found once, outside the timing)
    for name, kw in (
        ("mode 1", {"classes": 1}),
        ("mode 2 (K=8)", {"classes": 8, "class_map": "ranges"}),
        ("mode 3 (K=1)", {"classes": 1, "trellis": True}),
        ("mode 3 (K=8)", {"classes": 8, "class_map": "ranges", "trellis": True}),
    ):
        s = slicer.encode(x, mode="dense", max_bytes=limit, threads=1, **kw)
        step = slicer.inspect(s).step
        cases[name] = (kw, step)
    rows = {}
    for name, (kw, step) in cases.items():
        stream = slicer.encode(x, mode="dense", step=step, threads=1, **kw)

        def enc_once(kw: dict = kw, step: float = step) -> bytes:
            return slicer.encode(x, mode="dense", step=step, threads=1, **kw)

        enc = thread_seconds(enc_once, a.reps)
        dec = thread_seconds(lambda s=stream: slicer.decode(s, threads=1), a.reps)
        err = float(np.linalg.norm(slicer.decode(stream) - x) / np.linalg.norm(x))
        rows[name] = (8 * len(stream) / x.size, err, enc, dec)
    base = rows["mode 2 (K=8)"]
    print(f"{'':14} {'b/el':>6} {'rel L2':>8} {'enc ms':>8} {'MB/s':>7} {'dec ms':>8} {'MB/s':>7} "
          f"{'enc/m2':>7} {'dec/m2':>7}")  # fmt: skip
    mb = x.nbytes / 1e6
    for name, (bpe, err, enc, dec) in rows.items():
        print(
            f"{name:14} {bpe:6.3f} {err:8.5f} {1e3 * enc:8.2f} {mb / enc:7.0f} {1e3 * dec:8.2f} "
            f"{mb / dec:7.0f} {enc / base[2]:7.2f} {dec / base[3]:7.2f}"
        )


if __name__ == "__main__":
    main()
