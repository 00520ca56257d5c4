"""What the batch worker's own Python costs right after a tail run, against warm (§7.3.5).

Builds the EfficientNet-Lite0 tail engine of `slicer serve` at the plan's cut and 16 requests
carrying real codec streams (bench/serve_worker_cpu.real_requests), then times, in thread CPU, the
two parts of TailEngine.run_batch that are not the tail — the batch decode (``_decode_batch``)
and the replies (``_replies``: top-5 of the logits, one Reply per request) — in three
settings, each for --repeats batches:

- ``real``: the tail runs for real between batches (what the server does);
- ``replayed``: the tail's run returns recorded outputs at once (the worker's code stays warm);
- ``sleep``: the tail's run sleeps its wall time, then returns recorded outputs (the thread is
  off the CPU as long as a tail run, but runs no ONNX Runtime code).

    python bench/serve_cold_cpu.py [--repeats 100]
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time

from slicer.serve.engine import Item

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from serve_worker_cpu import bench_setup  # noqa: E402


def main() -> None:
    args, engine, requests = bench_setup(repeats=100)
    real = engine.session.run
    recorded: list = []
    parts: dict[str, float] = {}

    def timed(name: str, method):  # noqa: ANN001, ANN202
        def run(*a, **k):  # noqa: ANN002, ANN003, ANN202
            t0 = time.thread_time()
            try:
                return method(*a, **k)
            finally:
                parts[name] = parts.get(name, 0.0) + time.thread_time() - t0

        return run

    engine._decode_batch = timed("decode", engine._decode_batch)
    engine._replies = timed("replies", engine._replies)
    wall: list[float] = []

    def replay(names, feeds):  # noqa: ANN001, ANN202
        if not recorded:
            recorded.append(real(names, feeds))
        return recorded[0]

    def sleep(names, feeds):  # noqa: ANN001, ANN202
        time.sleep(statistics.median(wall))
        return recorded[0]

    out: dict[str, dict[str, float]] = {}
    modes = {"real": real, "replayed": replay, "sleep": sleep}
    for rnd in range(2):
        for mode, run in modes.items():
            engine.session.run = run
            for _ in range(5):
                t0 = time.perf_counter()
                engine.run_batch([Item(r) for r in requests])
                if mode == "real":
                    wall.append(time.perf_counter() - t0)
            parts.clear()
            for _ in range(args.repeats):
                engine.run_batch([Item(r) for r in requests])
            n = args.repeats * args.batch
            out[f"{mode}_{rnd + 1}"] = {k: round(1e3 * v / n, 4) for k, v in parts.items()}
    engine.session.run = real
    print(json.dumps({"ms_per_request": out, "batch": args.batch, "repeats": args.repeats}))


if __name__ == "__main__":
    main()
