"""The gRPC floor under `slicer serve`: server CPU per request of a bare grpc.aio echo (§7.3.3).

A grpc.aio server with one stream-stream method that answers every request message with a fixed
reply at once (no admission, no batching, no decode, no tail), on the same gRPC options and
GRPC_EXPERIMENTS as `slicer serve`, and N client processes that each keep one request in flight
on one stream (a request of --request-bytes, a reply of --reply-bytes, as the §7.3 loadtest's
4.3 kB codec request and top-5 reply), pausing --pause seconds between requests so that the
server sees about the message rate of the loadtest. Prints the server's CPU per request (all
threads, and per thread from /proc) as JSON: what any server on grpc.aio pays per request at
that rate before doing anything with it.

    python bench/serve_grpc_floor.py --clients 32 --requests 40 --pause 0.1 --repeats 3

``--alternate-defaults`` alternates every run with one on gRPC's default flow control (the
message caps only), to see what the fixed window of ``wire.channel_options`` changes alone.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import statistics
import time

SERVICE = "floor.Echo"


def _thread_cpu(pid: int) -> dict[int, float]:
    tick = os.sysconf("SC_CLK_TCK")
    out = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{tid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        out[int(tid)] = (int(fields[11]) + int(fields[12])) / tick
    return out


def _serve(options: list, reply: bytes, ready, stop) -> None:  # noqa: ANN001
    import grpc

    async def echo(requests, context):  # noqa: ANN001, ANN202
        async for _ in requests:
            yield reply

    async def main() -> None:
        server = grpc.aio.server(options=options)
        handler = grpc.stream_stream_rpc_method_handler(echo)
        server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler(SERVICE, {"S": handler}),)
        )
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        ready.put(port)
        while not stop.is_set():
            await asyncio.sleep(0.05)
        await server.stop(0.5)

    asyncio.run(main())


def _client(port: int, options: list, size: int, count: int, pause: float, go) -> None:  # noqa: ANN001
    import queue

    import grpc

    channel = grpc.insecure_channel(f"127.0.0.1:{port}", options=options)
    call = channel.stream_stream(f"/{SERVICE}/S")
    outbox: queue.SimpleQueue = queue.SimpleQueue()

    def requests():  # noqa: ANN202
        while (message := outbox.get()) is not None:
            yield message

    message = os.urandom(size)
    go.wait(60)
    replies = call(requests())
    for _ in range(count):
        outbox.put(message)
        next(replies)
        if pause:
            time.sleep(pause)
    outbox.put(None)
    for _ in replies:
        pass
    channel.close()


def run_once(args: argparse.Namespace, options: list) -> dict:
    ctx = mp.get_context("fork")
    ready, stop, go = ctx.Queue(), ctx.Event(), ctx.Event()
    server = ctx.Process(target=_serve, args=(options, b"r" * args.reply_bytes, ready, stop))
    server.start()
    port = ready.get(timeout=60)
    clients = [
        ctx.Process(
            target=_client,
            args=(port, options, args.request_bytes, args.requests, args.pause, go),
        )
        for _ in range(args.clients)
    ]
    for c in clients:
        c.start()
    time.sleep(1.0)
    before, wall = _thread_cpu(server.pid), time.perf_counter()
    go.set()
    for c in clients:
        c.join()
    after, wall = _thread_cpu(server.pid), time.perf_counter() - wall
    stop.set()
    server.join(10)
    total = args.clients * args.requests
    threads = sorted(
        (
            (1e3 * (cpu - before.get(tid, 0.0)) / total, "main" if tid == server.pid else "other")
            for tid, cpu in after.items()
        ),
        reverse=True,
    )
    return {
        "requests": total,
        "requests_per_s": total / wall,
        "server_cpu_ms_per_request": sum(ms for ms, _ in threads),
        "threads_ms_per_request": [(name, round(ms, 4)) for ms, name in threads if ms > 0],
        "loadavg_1min": os.getloadavg()[0],
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--clients", type=int, default=32)
    ap.add_argument("--requests", type=int, default=40, help="per client")
    ap.add_argument(
        "--pause", type=float, default=0.1, help="seconds between a reply and the next request"
    )
    ap.add_argument("--request-bytes", type=int, default=4318)
    ap.add_argument("--reply-bytes", type=int, default=70)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument(
        "--alternate-defaults",
        action="store_true",
        help="alternate each run with one on gRPC's default flow control (BDP probing, "
        "64 KiB initial window; the message caps only), as before RESULTS §7.3.3",
    )
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    from slicer.serve import cli

    # as `slicer serve` does before gRPC loads (sockets on the completion-queue thread)
    os.environ.setdefault("GRPC_EXPERIMENTS", cli.GRPC_EXPERIMENTS)
    import sys

    assert "grpc" not in sys.modules, "gRPC was loaded before GRPC_EXPERIMENTS was set"
    from slicer.serve import wire

    options = wire.channel_options(wire.MAX_REQUEST_BYTES, wire.MAX_REPLY_BYTES)
    defaults = options[:2]  # the message caps only
    assert all(name.startswith("grpc.max_") for name, _ in defaults)
    variants = [("channel_options", options)]
    if args.alternate_defaults:
        variants.append(("grpc_defaults", defaults))
    runs = []
    for _ in range(args.repeats):
        for name, opts in variants:
            run = {"options": name, **run_once(args, opts)}
            runs.append(run)
            print(json.dumps(run), flush=True)
    summary = {
        f"server_cpu_ms_per_request_median_{name}": statistics.median(
            r["server_cpu_ms_per_request"] for r in runs if r["options"] == name
        )
        for name, _ in variants
    }
    summary |= {
        "requests_per_s": [round(r["requests_per_s"], 1) for r in runs],
        "grpc_experiments": os.environ.get("GRPC_EXPERIMENTS"),
        "options": options,
    }
    print(json.dumps(summary))
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"args": vars(args), "runs": runs, "summary": summary}, f, indent=1)


if __name__ == "__main__":
    main()
