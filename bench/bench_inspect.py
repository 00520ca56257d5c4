"""Time and memory of ``slicer.inspect`` and ``decode`` on a stream with millions of blocks.

Writes (once) a groups="rows" stream of about 14.5 MiB with about 2.5 M non-empty blocks, then
measures each call in a fresh subprocess: wall time and the growth of the peak resident set
(ru_maxrss) over the process's state with the stream loaded.

Usage::

    python bench/bench_inspect.py [--stream /tmp/slicer-inspect-bench.slc]

Run it with the package build to measure (e.g. an older checkout's venv for "before").
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

CHILD = r"""
import json, resource, sys, time
import slicer
data = open(sys.argv[1], "rb").read()
what = sys.argv[2]
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t0 = time.perf_counter()
if what == "inspect":
    info = slicer.inspect(data)
elif what == "inspect_blocks":
    info = slicer.inspect(data, blocks=True)
elif what == "inspect_to_dict":
    info = slicer.inspect(data).to_dict()
elif what == "inspect_blocks_to_dict":
    info = slicer.inspect(data, blocks=True).to_dict()
elif what == "decode":
    info = slicer.decode(data)
elapsed = time.perf_counter() - t0
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"what": what, "seconds": elapsed, "rss_growth_mib": (peak - base) / 1024}))
"""


CALLS = ["decode", "inspect", "inspect_to_dict", "inspect_blocks", "inspect_blocks_to_dict"]


def make_stream(path: Path) -> None:
    import numpy as np

    import slicer

    rng = np.random.default_rng(0)
    x = rng.standard_normal((19300, 256)).astype(np.float32)
    path.write_bytes(slicer.encode(x, sparsity=0.5, blocks=64, bits=2, groups="rows"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stream", type=Path, default=Path("/tmp/slicer-inspect-bench.slc"))
    parser.add_argument(
        "--calls",
        nargs="*",
        default=CALLS,
    )
    args = parser.parse_args()
    if not args.stream.exists():
        make_stream(args.stream)
    size = args.stream.stat().st_size
    print(f"stream {args.stream}: {size / 2**20:.2f} MiB")
    for what in args.calls:
        out = subprocess.run(
            [sys.executable, "-c", CHILD, str(args.stream), what],
            capture_output=True,
            text=True,
        )
        if out.returncode != 0:
            print(f"{what:24s} failed: {out.stderr.strip().splitlines()[-1]}")
            continue
        result = json.loads(out.stdout)
        print(
            f"{what:24s} {result['seconds']:8.3f} s  peak RSS +{result['rss_growth_mib']:8.1f} MiB"
        )


if __name__ == "__main__":
    main()
