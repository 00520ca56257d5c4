"""CPU time of the server's batch worker beyond the tail run (RESULTS §7.3).

Builds the EfficientNet-Lite0 tail engine of `slicer serve` at the plan's cut, makes B requests
carrying real codec streams of the cut tensor (the head run on random images, encoded with the
plan's parameters), and calls TailEngine.run_batch on them repeatedly: thread CPU of the whole
call against thread CPU of the tail runs inside it (what the loadtest counts as compute).
Then the decode alone: the B streams by per-stream slicer.decode and by one decode_batch.

    python bench/serve_worker_cpu.py [--batch 16] [--repeats 200]
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

import slicer
from slicer.serve import TailEngine, wire
from slicer.serve import wire_pb2 as pb
from slicer.serve.cli import load_settings, resolve_model
from slicer.serve.engine import Item
from slicer.split import Partitioner, SplitModel


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="efficientnet-lite0")
    ap.add_argument("--settings", default="bench/serve_settings/plan_effnet.json")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=200)
    args = ap.parse_args()
    cut, params = load_settings(args.settings)
    path = resolve_model(args.model)
    engine = TailEngine(path, cut)
    split = SplitModel(Partitioner(path), cut, providers=["CPUExecutionProvider"], threads=1)
    rng = np.random.default_rng(0)
    requests = []
    for i in range(args.batch):
        feeds = {}
        for inp in split.head.get_inputs():
            shape = [d if isinstance(d, int) else 1 for d in inp.shape]
            feeds[inp.name] = rng.standard_normal(shape).astype(np.float32)
        values = split.run_head(feeds)
        tensors = [
            pb.Tensor(name=n, codec=slicer.encode(values[n], **params.kwargs_for(values[n])))
            for n in engine.tensor_names
        ]
        requests.append(
            pb.Request(
                wire_version=wire.WIRE_VERSION,
                model_fingerprint=engine.fingerprint,
                cut_id=engine.cut_id,
                session_id=f"s{i}",
                seq=1,
                reply_kind=pb.TOP_K,
                top_k=5,
                tensors=tensors,
            )
        )
    engine.warm(args.batch)
    for _ in range(10):
        engine.run_batch([Item(r) for r in requests])
    total = compute = 0.0
    for _ in range(args.repeats):
        items = [Item(r) for r in requests]
        t0 = time.thread_time()
        outs = engine.run_batch(items)
        total += time.thread_time() - t0
        compute += outs[0].compute_cpu_s
        assert all(o.reply.code == 0 for o in outs)
    n = args.repeats * args.batch
    streams = [r.tensors[0].codec for r in requests]
    out = np.empty((args.batch, *slicer.decode(streams[0]).shape), np.float32)
    t0, w0 = time.thread_time(), time.perf_counter()
    for _ in range(args.repeats):
        for s in streams:
            slicer.decode(s, threads=1)
    single_cpu, single_wall = time.thread_time() - t0, time.perf_counter() - w0
    t0, w0 = time.thread_time(), time.perf_counter()
    for _ in range(args.repeats):
        slicer.decode_batch(streams, out=out, threads=1)
    batch_cpu, batch_wall = time.thread_time() - t0, time.perf_counter() - w0
    w0 = time.perf_counter()
    for _ in range(args.repeats):
        slicer.decode_batch(streams, out=out, threads=0)
    batch_all_wall = time.perf_counter() - w0
    print(
        json.dumps(
            {
                "decode_per_stream_cpu_ms": 1e3 * single_cpu / n,
                "decode_per_stream_wall_ms": 1e3 * single_wall / n,
                "decode_batch_1thread_cpu_ms": 1e3 * batch_cpu / n,
                "decode_batch_1thread_wall_ms": 1e3 * batch_wall / n,
                "decode_batch_all_threads_wall_ms": 1e3 * batch_all_wall / n,
                "batch": args.batch,
                "requests": n,
                "worker_cpu_ms_per_request": 1e3 * total / n,
                "tail_cpu_ms_per_request": 1e3 * compute / n,
                "beyond_tail_ms_per_request": 1e3 * (total - compute) / n,
                "stream_bytes": len(requests[0].tensors[0].codec),
            }
        )
    )


if __name__ == "__main__":
    main()
