"""CPU time of the server's batch worker beyond the tail run (RESULTS §7.3).

Builds the EfficientNet-Lite0 tail engine of `slicer serve` at the plan's cut, makes B requests
carrying real codec streams of the cut tensor (the head run on random images, encoded with the
plan's parameters), and calls TailEngine.run_batch on them repeatedly: thread CPU of the whole
call against thread CPU of the tail runs inside it (what the loadtest counts as compute).
Then the decode alone: the B streams by per-stream slicer.decode and by one decode_batch;
run_batch with the tail's outputs replayed (everything the worker does but the tail run); and
the server's asyncio-side Python per request: parse + admission (Backend._admit) of the
serialized requests and the hand-over of their replies (Backend._account), without gRPC.

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


def real_requests(
    engine: TailEngine,
    path: str,
    cut: str,
    params,
    count: int,
    seed: int = 0,  # noqa: ANN001
) -> list[pb.Request]:
    """``count`` top-5 requests for ``engine`` carrying real codec streams of the cut: the
    head run on seeded random images, encoded with ``params`` (session ids s0, s1, ...)."""
    split = SplitModel(Partitioner(path), cut, providers=["CPUExecutionProvider"], threads=1)
    rng = np.random.default_rng(seed)
    requests = []
    for i in range(count):
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
    return requests


def bench_setup(repeats: int) -> tuple[argparse.Namespace, TailEngine, list[pb.Request]]:
    """The options (--model, --settings, --batch, --repeats), the tail engine at the settings'
    cut warmed at the batch size, and a batch of :func:`real_requests`."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="efficientnet-lite0")
    ap.add_argument("--settings", default="bench/serve_settings/plan_effnet.json")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=repeats)
    args = ap.parse_args()
    cut, params = load_settings(args.settings)
    path = resolve_model(args.model)
    engine = TailEngine(path, cut)
    requests = real_requests(engine, path, cut, params, args.batch)
    engine.warm(args.batch)
    return args, engine, requests


def main() -> None:
    args, engine, requests = bench_setup(repeats=200)
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
    replay_cpu = _replayed_tail(engine, requests, args.repeats)
    admit_cpu, account_cpu = _admission(engine, requests, args.repeats)
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
                "run_batch_tail_replayed_cpu_ms": 1e3 * replay_cpu / n,
                "admit_cpu_ms": 1e3 * admit_cpu / n,
                "reply_handover_cpu_ms": 1e3 * account_cpu / n,
            }
        )
    )


def _replayed_tail(engine, requests, repeats: int) -> float:  # noqa: ANN001
    """Thread CPU of run_batch when the tail's run returns recorded outputs."""
    real = engine.session.run
    recorded: list = []

    def replay(names, feeds):  # noqa: ANN001, ANN202
        if not recorded:
            recorded.append(real(names, feeds))
        return recorded[0]

    engine.session.run = replay
    try:
        engine.run_batch([Item(r) for r in requests])
        t0 = time.thread_time()
        for _ in range(repeats):
            engine.run_batch([Item(r) for r in requests])
        return time.thread_time() - t0
    finally:
        engine.session.run = real


def _admission(engine, requests, repeats: int) -> tuple[float, float]:  # noqa: ANN001
    """Thread CPU of parse + admission and of the reply hand-over for the requests, as the
    asyncio side of the server does them (no gRPC, no tail)."""
    import asyncio

    from slicer.serve import ServeConfig
    from slicer.serve.engine import Outcome
    from slicer.serve.server import Backend, _deserialize

    async def run() -> tuple[float, float]:
        backend = Backend(engine, ServeConfig(max_queue=len(requests) * repeats + 1))
        backend._queue = asyncio.Queue(len(requests) * repeats + 1)
        data = []
        for k in range(repeats):
            for i, r in enumerate(requests):
                one = pb.Request()
                one.CopyFrom(r)
                one.session_id, one.seq = f"s{i}", k + 1
                data.append((i, one.SerializeToString()))
        boxes = [{"session": None} for _ in requests]
        queues = [asyncio.Queue() for _ in requests]
        t0 = time.thread_time()
        for i, raw in data:
            parsed, size = _deserialize(raw)
            backend._admit(parsed, size, queues[i], boxes[i])
        admit = time.thread_time() - t0
        items = [backend._queue.get_nowait() for _ in data]
        outs = [
            Outcome(
                pb.Reply(session_id=it.request.session_id, seq=it.request.seq, kind=pb.TOP_K,
                         top_k_ids=[1, 2, 3, 4, 5], top_k_values=[0.5, 0.4, 0.3, 0.2, 0.1]),
                decode_s=1e-5, compute_s=0.03, compute_cpu_s=0.03, batch_size=len(requests),
            )
            for it in items
        ]  # fmt: skip
        step = len(requests)
        t0 = time.thread_time()
        for k in range(0, len(items), step):
            backend._account(items[k : k + step], outs[k : k + step], time.perf_counter())
        return admit, time.thread_time() - t0

    return asyncio.run(run())


if __name__ == "__main__":
    main()
