"""Server CPU per request of `slicer serve`'s front with the tail's compute taken out (§7.3.5).

The loadtest's overhead (RESULTS §7.3) divides what the server spends beyond the tail by the
tail, and both swing with this shared machine's load. This bench keeps everything of a
`slicer serve --workers 0` server on EfficientNet-Lite0 at the plan's cut — gRPC, admission,
batching, the codec decode of real 4.3 kB streams, the top-k replies, metrics — but replaces
the tail's ONNX Runtime run by a sleep of its wall time (``--tail-ms`` per batch of 16, scaled
to the batch) that returns recorded outputs of the real tail. What the server process then
spends is what the loadtest counts as overhead; the loadtest's clients (one request in flight
each, replies checked) are replaced by lighter ones that send pre-serialized requests, so more
pairs fit in a session.

Each run starts a server process, 32 client processes that send --requests each, and reads the
server's CPU time (all threads, /proc) over the run. ``--a`` / ``--b`` name two source trees
(python/slicer of a commit, one built module) whose servers are alternated A B A B ...:

    python bench/serve_front_cpu.py --a /tmp/a --b /tmp/b --repeats 6 --out FILE.json
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import statistics
import subprocess
import sys
import time


def _thread_cpu(pid: int) -> dict[int, tuple[str, float, float]]:
    """Thread id -> (name, CPU seconds from schedstat (ns), of which system time (ticks))."""
    tick = os.sysconf("SC_CLK_TCK")
    out = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/stat") as f:
                stat = f.read()
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                ns = int(f.read().split()[0])
        except OSError:
            continue
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat.rsplit(")", 1)[1].split()
        out[int(tid)] = ("main" if int(tid) == pid else name, ns / 1e9, int(fields[12]) / tick)
    return out


# ---------------------------------------------------------------------------- server side


def serve(args: argparse.Namespace) -> None:
    """The server process (run with the tree under test on sys.path)."""
    from slicer.serve import cli

    os.environ.setdefault("GRPC_EXPERIMENTS", cli.GRPC_EXPERIMENTS)
    import asyncio

    import numpy as np

    from slicer.serve import ServeConfig, TailEngine
    from slicer.serve.server import serve_forever

    cut, _ = cli.load_settings(args.settings)
    engine = TailEngine(cli.resolve_model(args.model), cut)
    real = engine.session
    feeds = {
        i.name: np.random.default_rng(0)
        .standard_normal([16 if k == 0 else d for k, d in enumerate(i.shape)])
        .astype(np.float32)
        for i in real.get_inputs()
    }
    recorded = real.run(list(engine.output_names), feeds)
    tail_s = args.tail_ms / 1e3

    class SleepingTail:
        """The tail's wall time without its CPU: recorded outputs after a sleep."""

        def __getattr__(self, name: str):  # noqa: ANN204
            return getattr(real, name)

        def run(self, names, feeds):  # noqa: ANN001, ANN202
            size = len(next(iter(feeds.values())))
            time.sleep(tail_s * size / 16)
            return [np.resize(r, (size, *r.shape[1:])) for r in recorded]

    engine.session = SleepingTail()
    config = ServeConfig(port=0, metrics_port=None, workers=args.workers, max_queue=1024)
    asyncio.run(serve_forever(engine, config, ready_file=args.ready_file, quiet=True))


# ---------------------------------------------------------------------------- client side


def _client(target: str, template: bytes, cid: int, count: int, go, results) -> None:  # noqa: ANN001
    import queue

    import grpc

    from slicer.serve import wire
    from slicer.serve import wire_pb2 as pb

    req = pb.Request.FromString(template)
    req.session_id = f"c{cid}"
    options = wire.channel_options(wire.MAX_REQUEST_BYTES, wire.MAX_REPLY_BYTES)
    channel = grpc.insecure_channel(target, options=options)
    call = channel.stream_stream(
        "/slicer.serve.v1.SplitInference/Session",
        request_serializer=None,
        response_deserializer=pb.Reply.FromString,
    )
    outbox: queue.SimpleQueue = queue.SimpleQueue()

    def requests():  # noqa: ANN202
        while (message := outbox.get()) is not None:
            yield message

    bad = 0
    go.wait(120)
    replies = call(requests())
    for k in range(count):
        req.seq = k + 1
        outbox.put(req.SerializeToString())
        reply = next(replies)
        bad += reply.code != 0 or reply.seq != k + 1 or len(reply.top_k_ids) != req.top_k
    outbox.put(None)
    for _ in replies:
        pass
    channel.close()
    results.put(bad)


def _request_template(args: argparse.Namespace) -> bytes:
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from serve_worker_cpu import real_requests

    from slicer.serve import TailEngine
    from slicer.serve.cli import load_settings, resolve_model

    cut, params = load_settings(args.settings)
    path = resolve_model(args.model)
    engine = TailEngine(path, cut, batching=False)
    [req] = real_requests(engine, path, cut, params, 1, seed=1)
    req.session_id = ""  # each client sets its own
    return req.SerializeToString()


def run_once(args: argparse.Namespace, tree: str, template: bytes, env_extra: list[str]) -> dict:
    import tempfile

    with tempfile.TemporaryDirectory(prefix="slicer-front-") as tmp:
        ready = os.path.join(tmp, "ready.json")
        env = dict(os.environ, PYTHONPATH=tree)
        env.update(item.split("=", 1) for item in env_extra)
        cmd = [
            sys.executable, __file__, "--serve", "--ready-file", ready,
            "--tail-ms", str(args.tail_ms), "--workers", str(args.workers),
        ]  # fmt: skip
        server = subprocess.Popen(cmd, env=env, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 300
            while not os.path.exists(ready):
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the server did not start")
                time.sleep(0.05)
            with open(ready) as f:
                target = json.load(f)["target"]
            ctx = mp.get_context("fork")
            go, results = ctx.Event(), ctx.Queue()
            clients = [
                ctx.Process(target=_client, args=(target, template, c, args.requests, go, results))
                for c in range(args.clients)
            ]
            for c in clients:
                c.start()
            time.sleep(1.0)
            before, wall = _thread_cpu(server.pid), time.perf_counter()
            go.set()
            bad = sum(results.get(timeout=300) for _ in clients)
            after, wall = _thread_cpu(server.pid), time.perf_counter() - wall
            for c in clients:
                c.join(10)
        finally:
            server.terminate()
            server.wait(30)
    total = args.clients * args.requests
    threads: dict[str, float] = {}
    system = 0.0
    for tid, (name, cpu, sys_s) in after.items():
        was = before.get(tid, (name, 0.0, 0.0))
        used = cpu - was[1]
        system += sys_s - was[2]
        if used > 0:
            threads[name] = threads.get(name, 0.0) + 1e3 * used / total
    return {
        "requests": total,
        "bad_replies": bad,
        "wall_s": wall,
        "server_cpu_ms_per_request": sum(threads.values()),
        "server_system_ms_per_request": 1e3 * system / total,
        "threads_ms_per_request": {k: round(v, 4) for k, v in sorted(threads.items())},
        "loadavg_1min": os.getloadavg()[0],
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--ready-file", help=argparse.SUPPRESS)
    ap.add_argument("--model", default="efficientnet-lite0")
    ap.add_argument("--settings", default="bench/serve_settings/plan_effnet.json")
    ap.add_argument("--tail-ms", type=float, default=35.0, help="tail wall time per batch of 16")
    ap.add_argument("--workers", type=int, default=0)
    ap.add_argument("--clients", type=int, default=32)
    ap.add_argument("--requests", type=int, default=40, help="per client")
    ap.add_argument("--a", help="source tree A (its python/ dir on PYTHONPATH)")
    ap.add_argument("--b", help="source tree B")
    ap.add_argument("--a-env", nargs="*", default=[], help="KEY=VALUE for A's server")
    ap.add_argument("--b-env", nargs="*", default=[], help="KEY=VALUE for B's server")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out")
    args = ap.parse_args()
    if args.serve:
        serve(args)
        return
    template = _request_template(args)
    runs: dict[str, list[dict]] = {"a": [], "b": []}
    for _ in range(args.repeats):
        for key in ("a", "b"):
            run = run_once(args, getattr(args, key), template, getattr(args, f"{key}_env"))
            runs[key].append(run)
            print(key, json.dumps(run), flush=True)
    summary = {
        key: {
            "server_cpu_ms_per_request": [round(r["server_cpu_ms_per_request"], 4) for r in rs],
            "median": round(statistics.median(r["server_cpu_ms_per_request"] for r in rs), 4),
        }
        for key, rs in runs.items()
    }
    summary["b_minus_a_pairs"] = [
        round(b["server_cpu_ms_per_request"] - a["server_cpu_ms_per_request"], 4)
        for a, b in zip(runs["a"], runs["b"], strict=True)
    ]
    print(json.dumps(summary), flush=True)
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"args": vars(args), "summary": summary, "runs": runs}, f, indent=1)


if __name__ == "__main__":
    main()
