"""Encode-time cost of the table kinds (docs/format.md §13.5): CPU time of the calling thread of
``slicer.encode(x, mode="dense", step=s, table_kind=k)`` for k = 0 … 4 and "auto", as a ratio
to k = 0 measured in the same process (kinds interleaved, each timed over a block of calls in a
row: 20 at 4096 elements, 1 at 1M; median of the repeats), on the first 4096 elements of a
workload and on 1M elements (the workload tiled), at the steps of 0.5, 1 and 2 b/el (found
with kind 0 on each input). One thread (threads=1).

    python bench/bench_table_kinds.py [WORKLOAD] [--repeats R]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import bench_entropy as be  # noqa: E402
import bench_rd  # noqa: E402

KINDS = (0, 1, 2, 3, 4, "auto")


def main(argv: list[str] | None = None) -> int:
    from tqdm import tqdm

    import slicer

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("workload", nargs="?", default="smollm2_l15")
    parser.add_argument("--repeats", type=int, default=0, help="0: 21 at 4096, 9 at 1M")
    args = parser.parse_args(argv)
    x = np.load(bench_rd.DATA_DIR / f"{args.workload}.npy").reshape(-1).astype(np.float32)
    inputs = {4096: x[:4096], 1 << 20: np.resize(x, 1 << 20)}
    print(f"load: {os.getloadavg()[0]:.1f} (1-min average at start)")
    print("| elements | b/el | kind 0 µs | " + " | ".join(f"{k} / 0" for k in KINDS[1:])
          + " | auto's kind | auto bytes / kind 0 |")  # fmt: skip
    print("|---:|---:|---:|" + "---:|" * (len(KINDS) - 1) + "---:|---:|")
    for n, part in inputs.items():
        repeats = args.repeats or (21 if n == 4096 else 9)
        for bpe in (0.5, 1, 2):
            step = be.step_for(part, bpe)
            times = {k: [] for k in KINDS}
            block = 20 if n == 4096 else 1  # calls per timing: one kind's calls in a row
            for _ in tqdm(range(repeats), desc=f"{n} at {bpe} b/el", file=sys.stderr):
                for k in KINDS:
                    t0 = time.thread_time()
                    for _ in range(block):
                        slicer.encode(part, mode="dense", step=step, table_kind=k, threads=1)
                    times[k].append((time.thread_time() - t0) / block)
            med = {k: statistics.median(v) for k, v in times.items()}
            plain = slicer.encode(part, mode="dense", step=step, threads=1)
            auto = slicer.encode(part, mode="dense", step=step, table_kind="auto", threads=1)
            ratios = " | ".join(f"{med[k] / med[0]:.2f}" for k in KINDS[1:])
            print(f"| {n} | {bpe:g} | {1e6 * med[0]:.0f} | {ratios} | "
                  f"{slicer.inspect(auto).table_kind} | {len(auto) / len(plain):.4f} |",
                  flush=True)  # fmt: skip
    print(f"load: {os.getloadavg()[0]:.1f} (1-min average at the end)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
