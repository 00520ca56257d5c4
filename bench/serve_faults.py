"""Fault storm against a real ``slicer serve`` process while good clients keep being served.

    python bench/serve_faults.py [--model efficientnet-lite0] [--settings PLAN.json]
        [--bad 1000] [--good 8] [--killed 16] [--workers 1] [--json OUT.json]

1. Start the server (separate process, 127.0.0.1) and ``--good`` client processes that send
   real requests for the whole run and check every reply against its expected outputs.
2. After a warm-up (good clients for 10 s: "cold"; then a smaller storm of 100 bad messages
   and the same killed clients, so that the server's buffers reach the size this load shape
   needs), record the server's resident memory ("before").
3. Storm: ``--bad`` bad messages over several streams — truncated protobuf, non-protobuf
   bytes, oversize payloads (over the request cap but under the transport limit), wrong
   model fingerprints, out-of-order sequence numbers, corrupted codec streams, wrong tensor
   shapes — each must get its own status (counted per kind); a few messages over the
   transport limit, which end their stream with RESOURCE_EXHAUSTED; and ``--killed`` client
   processes SIGKILLed mid-session with requests in flight.
4. Record memory again ("after", after a 3 s settle) and the good clients' verdicts.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import sys
import time
from collections import Counter

import numpy as np


def bad_messages(engine_info: dict, good: bytes, kinds: list[str], start_seq: int, count: int):
    """(bytes, kind, expected code) for ``count`` bad messages."""
    from slicer.serve import wire
    from slicer.serve import wire_pb2 as pb

    base = pb.Request.FromString(good)
    out = []
    seq = start_seq
    for i in range(count):
        kind = kinds[i % len(kinds)]
        m = pb.Request()
        m.CopyFrom(base)
        seq += 1
        m.seq = seq
        if kind == "truncated":
            data = m.SerializeToString()
            out.append((data[: random.randint(1, len(data) - 1)], kind, None, seq))
            continue
        if kind == "garbage":
            junk = os.urandom(random.randint(1, 64)) + b"\xff\xff\xff\xff\x0f"
            out.append((junk, kind, None, 0))
            continue
        if kind == "oversize":
            m.tensors[0].raw.CopyFrom(
                wire.raw_tensor(np.zeros((1, (4 << 20) // 4 + 100_000), np.float32))
            )
            code = wire.INVALID_ARGUMENT
        elif kind == "fingerprint":
            m.model_fingerprint = os.urandom(16).hex()
            code = wire.FAILED_PRECONDITION
        elif kind == "out_of_order":
            m.seq = 1
            seq -= 1
            code = wire.OUT_OF_RANGE
        elif kind == "corrupt_codec":
            t = next(t for t in m.tensors if t.WhichOneof("payload") == "codec")
            b = bytearray(t.codec)
            for _ in range(4):
                b[random.randrange(len(b))] ^= 1 << random.randrange(8)
            t.codec = bytes(b)
            code = wire.INVALID_ARGUMENT
        elif kind == "wrong_shape":
            t = m.tensors[0]
            t.ClearField("codec")
            t.raw.CopyFrom(wire.raw_tensor(np.zeros((1, 3, 5), np.float32)))
            code = wire.INVALID_ARGUMENT
        else:
            raise ValueError(kind)
        out.append((m.SerializeToString(), kind, code, m.seq))
    return out


def storm_stream(target: str, good: bytes, msgs: list) -> Counter:
    """One stream: a good request, then the bad ones pipelined. Returns verdict counts."""
    import queue

    import grpc

    from slicer.serve import wire
    from slicer.serve import wire_pb2 as pb
    from slicer.serve.server import SERVICE

    channel = grpc.insecure_channel(target, options=wire.channel_options(8 << 20, 8 << 20))
    rpc = channel.stream_stream(
        f"/{SERVICE}/Session",
        request_serializer=lambda b: b,
        response_deserializer=pb.Reply.FromString,
    )
    outq: queue.Queue = queue.Queue()
    outq.put(good)
    call = rpc(iter(outq.get, None), timeout=300)
    verdict: Counter = Counter()
    expect_by_seq: dict[int, list] = {}
    malformed = 0  # messages that may not parse: their reply may carry seq 0
    for _data, kind, code, seq in msgs:
        if kind in ("truncated", "garbage"):
            malformed += 1
        if kind != "garbage":
            expect_by_seq.setdefault(seq, []).append((kind, code))
    first = True
    replies = 0
    for reply in call:
        replies += 1
        if first:
            first = False
            verdict["good_ok" if reply.code == wire.OK else "good_failed"] += 1
            for data, _, _, _ in msgs:
                outq.put(data)
            outq.put(None)
            continue
        if reply.seq == 0:  # did not parse, or parsed without its seq (cut before it)
            ok = reply.code != wire.OK and malformed > 0
            malformed -= 1
            verdict["status_ok" if ok else "status_wrong"] += 1
            continue
        pending = expect_by_seq.get(reply.seq, [])
        # None: any error status will do (a truncated message that still parses)
        match = [
            i
            for i, (_, code) in enumerate(pending)
            if code == reply.code or (code is None and reply.code != wire.OK)
        ]
        if match:
            pending.pop(match[0])
            verdict["status_ok"] += 1
        elif pending:
            kind, _ = pending.pop(0)
            verdict["status_wrong"] += 1
            verdict[f"wrong:{kind}:{reply.code}"] += 1
        else:
            verdict["unexpected_reply"] += 1
    verdict["unanswered"] += len(msgs) + 1 - replies
    channel.close()
    return verdict


def over_transport_limit(target: str) -> str:
    import grpc

    from slicer.serve import wire_pb2 as pb
    from slicer.serve.server import SERVICE

    channel = grpc.insecure_channel(target, options=[("grpc.max_send_message_length", 64 << 20)])
    rpc = channel.stream_stream(
        f"/{SERVICE}/Session",
        request_serializer=lambda b: b,
        response_deserializer=pb.Reply.FromString,
    )
    try:
        list(rpc(iter([b"\x0a" + b"\x00" * (6 << 20)]), timeout=60))
        return "no error"
    except grpc.RpcError as exc:
        return exc.code().name
    finally:
        channel.close()


def killed_client(target: str, tensors: list[bytes]) -> None:
    from slicer.serve import wire_pb2 as pb
    from slicer.serve.client import EdgeClient

    edge = EdgeClient(target, None, deadline_s=60)
    msgs = [pb.Tensor.FromString(b) for b in tensors]
    futures = []
    for _ in range(100_000):  # killed long before this ends
        futures.append(edge.submit(msgs))
        if len(futures) > 4:
            futures.pop(0).result()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="efficientnet-lite0")
    ap.add_argument(
        "--settings",
        default=os.path.join(os.path.dirname(__file__), "serve_settings", "plan_effnet.json"),
    )
    ap.add_argument("--bad", type=int, default=1000)
    ap.add_argument("--good", type=int, default=8)
    ap.add_argument("--killed", type=int, default=16)
    ap.add_argument("--good-seconds", type=float, default=150.0, help="how long good clients run")
    ap.add_argument("--workers", type=int, default=1, help="the server's --workers")
    ap.add_argument("--json", help="write the result JSON here")
    args = ap.parse_args(argv)

    import multiprocessing as mp

    from tqdm import tqdm

    from slicer.serve.cli import load_settings, resolve_model
    from slicer.serve.loadtest import LoadConfig, ServerProcess, _client_main, model_inputs, prepare
    from slicer.split.graph import Partitioner
    from slicer.split.providers import make_session

    random.seed(0)
    cut, params = load_settings(args.settings)
    path = resolve_model(args.model)
    part = Partitioner(path)
    cutobj = part.find_cut(cut)
    full = make_session(part.model, ["CPUExecutionProvider"], 1, part.external_dir)
    inputs = model_inputs(args.model, full, args.good * 4)
    prepared = prepare("slicer", part, cutobj, inputs, params)
    config = LoadConfig(
        model=args.model,
        cut=cut,
        params=params,
        clients=[args.good],
        max_queue=1024,
        workers=args.workers,
    )
    server = ServerProcess(path, cut, config)
    result: dict = {"model": args.model, "cut": cut, "bad": args.bad, "killed": args.killed}
    try:
        ctx = mp.get_context("fork")
        start, results = ctx.Event(), ctx.Queue()
        good_procs = []
        good_config = LoadConfig(
            model=args.model, cut=cut, clients=[args.good], requests=100_000,
            duration_s=args.good_seconds,
        )  # fmt: skip
        for cid in range(args.good):
            slots = [(cid * 4 + j) % len(prepared.tensors) for j in range(4)]
            p = ctx.Process(
                target=_client_main,
                args=(cid, server.target, prepared, slots, good_config, start, results),
                daemon=True,
            )
            p.start()
            good_procs.append(p)
        start.set()
        time.sleep(10)  # warm-up with the good clients only
        rss_cold = server.rss()

        def storm(bad: int, kill: int, label: str) -> tuple[Counter, Counter, list]:
            """``bad`` bad messages over streams of 100 while ``kill`` clients are killed."""
            killed = []
            for _ in range(kill):
                p = ctx.Process(
                    target=killed_client, args=(server.target, prepared.tensors[0]), daemon=True
                )
                p.start()
                killed.append((p, time.monotonic() + random.uniform(0.5, 3.0)))
            kinds = [
                "truncated",
                "garbage",
                "oversize",
                "fingerprint",
                "out_of_order",
                "corrupt_codec",
                "wrong_shape",
            ]
            verdict: Counter = Counter()
            per_kind: Counter = Counter()
            with tqdm(total=bad, desc=label, file=sys.stderr) as bar:
                remaining = bad
                while remaining:
                    n = min(100, remaining)
                    good = _good_request(prepared, server.info, params)  # new session per stream
                    msgs = bad_messages(server.info, good, kinds, 1, n)
                    per_kind.update(k for _, k, _, _ in msgs)
                    verdict.update(storm_stream(server.target, good, msgs))
                    remaining -= n
                    bar.update(n)
                    now = time.monotonic()
                    for p, when in killed:
                        if p.is_alive() and now >= when:
                            os.kill(p.pid, signal.SIGKILL)
            for p, when in killed:
                time.sleep(max(0.0, when - time.monotonic()))
                if p.is_alive():
                    os.kill(p.pid, signal.SIGKILL)
                p.join(5)
            transport = [over_transport_limit(server.target) for _ in range(5)]
            return verdict, per_kind, transport

        # a first, smaller storm: the server's buffers reach the size this load shape needs
        storm(100, args.killed, "warm-up storm")
        time.sleep(3)
        rss_before = server.rss()
        m_before = server.metrics()
        t0 = time.perf_counter()
        verdict, per_kind, transport = storm(args.bad, args.killed, "storm")
        storm_s = time.perf_counter() - t0
        time.sleep(3)
        rss_after = server.rss()
        m_after = server.metrics()
        # let the good clients finish (their duration cap) and collect their verdicts
        stats = [results.get(timeout=200) for _ in good_procs]
        for p in good_procs:
            p.join(10)
        good_ok = sum(s.get("ok", 0) for s in stats)
        result.update(
            {
                "per_kind": dict(per_kind),
                "verdict": dict(verdict),
                "transport_limit_streams": transport,
                "killed_clients": args.killed,
                "storm_s": storm_s,
                "rss_cold_mb": rss_cold / 2**20,
                "rss_before_mb": rss_before / 2**20,
                "rss_after_mb": rss_after / 2**20,
                "rss_change": rss_after / rss_before - 1,
                "rss_change_from_cold": rss_after / rss_cold - 1,
                "good_clients": {
                    "requests": sum(s.get("issued", 0) for s in stats),
                    "ok": good_ok,
                    "mismatched": sum(s.get("mismatched", 0) for s in stats),
                    "errors": dict(sum((Counter(s.get("errors", {})) for s in stats), Counter())),
                    "duplicates": sum(s.get("duplicates", 0) for s in stats),
                },
                "server_sessions_ended": {
                    k.split("reason=")[1].strip('"}'): v - m_before.get(k, 0)
                    for k, v in m_after.items()
                    if k.startswith("slicer_serve_sessions_ended_total{")
                },
                "server_requests_by_code": {
                    k.split("code=")[1].strip('"}'): v - m_before.get(k, 0)
                    for k, v in m_after.items()
                    if k.startswith("slicer_serve_requests_total{")
                },
            }
        )
    finally:
        server.stop()
    print(json.dumps(result, indent=1))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)
    return 0


def _good_request(prepared, info: dict, params) -> bytes:  # noqa: ANN001
    from slicer.serve import wire
    from slicer.serve import wire_pb2 as pb

    return pb.Request(
        wire_version=wire.WIRE_VERSION,
        model_fingerprint=info["fingerprint"],
        cut_id=info["cut_id"],
        session_id=f"storm-{os.getpid()}-{random.randrange(1 << 30)}",
        seq=1,
        tensors=[pb.Tensor.FromString(b) for b in prepared.tensors[0]],
    ).SerializeToString()


if __name__ == "__main__":
    sys.exit(main())
