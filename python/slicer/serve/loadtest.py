"""``slicer loadtest``: real client processes against a real server (the paper's Fig. 2).

For each set-up — ``cloud`` (raw model inputs, the whole model on the server), ``raw`` (split,
cut tensors uncompressed), ``slicer`` (split, cut tensors through the codec) — a server is
started as a separate process (``python -m slicer serve``) and, for each client count N, N
client processes are forked. Each client owns ``pool`` distinct real inputs (photos for
EfficientNet-Lite0, prose sentences for MiniLM, seeded draws otherwise) whose request tensors
and expected replies the parent computed beforehand with local ONNX Runtime sessions (so the
clients spend their CPU on the wire, not on heads). Every reply is checked against the
expected outputs of *its* input: 0 lost, 0 duplicated, 0 mismatched is the bar. The expected
outputs of the ``slicer`` set-up are the local head → codec → decode → tail result; its
top-1 agreement / cosine with the uncut model is reported as fidelity.

Server CPU time is read from the server process (user + system, all threads) over each run;
the tail's own compute is the server's ``slicer_serve_compute_cpu_seconds_total``.
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing as mp
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np

SETUPS = ("cloud", "raw", "slicer")


@dataclass
class LoadConfig:
    model: str
    cut: str | None = None  # None: the split CLI's automatic mid-network cut
    params: Any = None  # CodecParams for the slicer set-up (None: CodecParams())
    clients: list[int] = field(default_factory=lambda: [1, 4, 16])
    requests: int = 20  # per client per run
    duration_s: float = 60.0  # per run cap
    setups: list[str] = field(default_factory=lambda: list(SETUPS))
    pool: int = 4
    inflight: int = 1
    max_batch: int = 16
    batch_window_ms: float = 2.0
    workers: int = 1
    max_queue: int = 1024
    rtol: float = 1e-3  # reply vs expected, relative to the output's largest magnitude
    reply: str = "outputs"  # what the server sends back: "outputs" (all, raw) or "top_k"
    engine: str = "grpc"  # the server: "grpc" (embedded) or "ray" (Ray Serve replicas)
    replicas: int = 2
    top_k: int = 5
    front: str = "aio"  # the grpc engine's front: "aio" (grpc.aio) or "sync" (threads)
    coalesce: bool = False  # clients send on SessionBatched, refilling their window at once
    # a settings file (slicer calibrate) or plan: the split servers run `slicer serve
    # --settings FILE`, so the cut's calibrated transform and decoder-side estimator apply; the
    # expected replies and the clients' requests are made with the same artifacts
    settings: str | None = None

    def __post_init__(self) -> None:
        bad = [s for s in self.setups if s not in SETUPS]
        if bad or not self.setups:
            raise ValueError(f"setups must be a subset of {', '.join(SETUPS)}, got {self.setups}")
        if not self.clients or min(self.clients) < 1 or max(self.clients) > 256:
            raise ValueError(f"clients must be counts in 1..256, got {self.clients}")
        if not 1 <= self.requests <= 100_000:
            raise ValueError(f"requests must be in 1..100000, got {self.requests}")
        if not 0 < self.duration_s <= 3600:
            raise ValueError(f"duration_s must be in (0, 3600], got {self.duration_s}")
        if not 1 <= self.pool <= 64:
            raise ValueError(f"pool must be in 1..64, got {self.pool}")
        if self.engine not in ("grpc", "ray") or not 1 <= self.replicas <= 64:
            raise ValueError(f"engine must be grpc|ray with 1..64 replicas: {self.engine!r}")
        if self.reply not in ("outputs", "top_k"):
            raise ValueError(f"reply must be 'outputs' or 'top_k', got {self.reply!r}")
        if self.front not in ("aio", "sync") or (self.front == "sync" and self.engine != "grpc"):
            raise ValueError(f"front must be 'aio' or 'sync' (grpc engine), got {self.front!r}")
        if not 1 <= self.inflight <= 64:
            raise ValueError(f"inflight must be in 1..64, got {self.inflight}")


# ---------------------------------------------------------------------------- inputs


def model_inputs(name: str, session: Any, count: int) -> list[dict[str, np.ndarray]]:
    """``count`` distinct real inputs for a shipped model (seeded draws for other models)."""
    from ..split import zoo
    from ..split.runner import random_inputs

    if name == "efficientnet-lite0":
        photos = zoo.imagenet_photos()
        crops = (0.875, 1.0, 0.8, 0.7, 0.95, 0.9, 0.85, 0.75)
        out = []
        for k in range(count):
            rgb, _, _ = photos[k % len(photos)]
            v = k // len(photos)
            offset = (0.5 + 0.1 * ((v // 16) % 3 - 1), 0.5 + 0.1 * ((v // 48) % 3 - 1))
            image = zoo.preprocess_image(
                rgb, crop=crops[v % 8], flip=bool((v // 8) % 2), offset=offset
            )
            out.append({"image": image})
        return out
    if name == "minilm":
        tok = zoo.minilm_tokenizer()
        try:
            sentences = zoo.prose_sentences(count)
        except Exception:  # the prose tarball is not available: the shipped sentences
            sentences = []
        while len(sentences) < count:
            sentences.append(
                zoo.SENTENCES[len(sentences) % len(zoo.SENTENCES)] + f" ({len(sentences)})"
            )
        out = []
        for s in sentences[:count]:
            enc = tok(s, padding="max_length", truncation=True, max_length=32, return_tensors="np")
            out.append(
                {
                    "input_ids": enc["input_ids"].astype(np.int64),
                    "attention_mask": enc["attention_mask"].astype(np.int64),
                }
            )
        return out
    if name == "toy":
        from .toy import toy_inputs

        return [toy_inputs(k) for k in range(count)]
    return [random_inputs(session, seed=k) for k in range(count)]


@dataclass
class Prepared:
    """Per input: the request tensors (serialized pb.Tensor) and the expected outputs."""

    tensors: list[list[bytes]]
    expected: list[list[np.ndarray]]
    request_bytes: list[int]
    fidelity: dict[str, float]
    # {cut tensor: transform fingerprint} the requests' codec tensors were coded through
    transforms: dict[str, str] = field(default_factory=dict)


def prepare(
    setup: str,
    part: Any,
    cut: Any,
    inputs: list[dict],
    params: Any,
    transforms: dict[str, Any] | None = None,
    estimators: dict[str, Any] | None = None,
) -> Prepared:
    """Requests and expected outputs of ``setup`` for ``inputs``. ``transforms`` /
    ``estimators``: the cut's calibrated artifacts (``slicer.split.settings``), which the
    ``slicer`` set-up codes through and decodes with, as a server started with the same
    settings does (the raw set-up sends exact values: neither applies)."""
    from ..split import fidelity
    from ..split.providers import make_session
    from ..split.transport import decode_packet, encode_values
    from . import wire

    ext = part.external_dir
    cpu = ["CPUExecutionProvider"]
    full = make_session(part.model, cpu, 1, ext)
    out_names = [o.name for o in full.get_outputs()]
    in_names = [i.name for i in full.get_inputs()]
    tensors, expected, sizes, agree, cos = [], [], [], [], []
    head = tail = None
    if setup != "cloud":
        h, t = part.extract(cut)
        head, tail = make_session(h, cpu, 1, ext), make_session(t, cpu, 1, ext)
    for x in inputs:
        ref = full.run(out_names, {n: x[n] for n in in_names})
        if setup == "cloud":
            msgs = wire.pack_tensors({}, {n: x[n] for n in in_names})
            got = ref
        else:
            hn = [o.name for o in head.get_outputs()]
            vals = dict(
                zip(hn, head.run(hn, {i.name: x[i.name] for i in head.get_inputs()}), strict=True)
            )
            tail_in = [i.name for i in tail.get_inputs()]
            for n in tail_in:
                if n not in vals:
                    vals[n] = x[n]
            vals = {n: vals[n] for n in tail_in}
            coded = setup == "slicer"
            packet = encode_values(vals, params if coded else None, transforms if coded else None)
            # side tensors travel as their lossless strings, as EdgeClient sends them
            msgs = wire.pack_tensors(packet.streams, packet.raw, packet.side)
            received, _ = decode_packet(packet, transforms, estimators if coded else None)
            got = tail.run(out_names, received)
        tensors.append([m.SerializeToString() for m in msgs])
        sizes.append(sum(len(b) for b in tensors[-1]))
        expected.append(got)
        m = fidelity.compare(out_names[0], ref[0], got[0])
        cos.append(m.get("cosine", 1.0))
        if "top1_agreement" in m:
            agree.append(m["top1_agreement"])
    fid = {"cosine_min": float(min(cos)), "cosine_mean": float(np.mean(cos))}
    if agree:
        fid["top1_agreement"] = float(np.mean(agree))
    used = {n: t.fingerprint() for n, t in (transforms or {}).items()} if setup == "slicer" else {}
    return Prepared(tensors, expected, sizes, fid, used)


# ---------------------------------------------------------------------------- clients


def _matches(res: Any, expected: list[np.ndarray], config: LoadConfig) -> bool:
    """Is this reply the answer for this input? (outputs within rtol of their magnitude; for
    top-k: the values are the expected logits at the returned ids and nothing larger was
    left out)."""
    scale = [float(np.max(np.abs(e))) or 1.0 for e in expected]
    if config.reply == "top_k":
        row = expected[0].reshape(-1, expected[0].shape[-1])[-1].astype(np.float64)
        ids, vals = np.asarray(res.top_k_ids), np.asarray(res.top_k_values, np.float64)
        k = min(config.top_k, row.size)
        tol = config.rtol * scale[0]
        if ids.size != k or len(set(ids.tolist())) != k or ids.min() < 0 or ids.max() >= row.size:
            return False
        kth = np.sort(row)[::-1][k - 1]
        return bool(np.allclose(vals, row[ids], rtol=0, atol=tol) and vals.min() >= kth - tol)
    got = list(res.outputs.values())
    return len(got) == len(expected) and all(
        g.shape == e.shape and np.allclose(g, e, rtol=0, atol=config.rtol * sc)
        for g, e, sc in zip(got, expected, scale, strict=True)
    )


def _client_main(
    cid: int,
    target: str,
    prepared: Prepared,
    slots: list[int],
    config: LoadConfig,
    start: Any,
    results: Any,
) -> None:
    from . import wire
    from . import wire_pb2 as pb
    from .client import EdgeClient, ServeError

    stats: dict[str, Any] = {
        "cid": cid, "ok": 0, "mismatched": 0, "errors": {}, "latency": [], "tail_batch": [],
    }  # fmt: skip
    try:
        edge = EdgeClient(
            target,
            None,
            session_id=f"load-{cid}-{os.getpid()}",
            deadline_s=60.0,
            batch_messages=config.coalesce,
            # requests go pre-encoded (no codec params here); their transform_fingerprint
            # names the transforms the prepared streams were coded through
            params=None,
            transforms=prepared.transforms,
        )
    except Exception as exc:
        stats["fatal"] = repr(exc)
        results.put(stats)
        return
    pools = [[pb.Tensor.FromString(b) for b in prepared.tensors[s]] for s in slots]
    requests, inflight = config.requests, config.inflight
    start.wait(120)
    t0 = time.monotonic()
    stop = t0 + config.duration_s
    issued = 0
    errors: Counter = Counter()
    window: deque[tuple[Any, int]] = deque()

    def settle(fut: Any, j: int) -> None:
        try:
            res = fut.result()
        except ServeError as exc:
            errors[wire.CODE_NAMES.get(exc.code, str(exc.code))] += 1
            return
        stats["latency"].append(res.latency_s)
        stats["tail_batch"].append(res.timing.get("batch_size", 0))
        exp = prepared.expected[slots[j]]
        stats["ok" if _matches(res, exp, config) else "mismatched"] += 1

    # Keep `inflight` requests in flight: refill the window (with --coalesce in one call, so
    # that they share a message), wait for the oldest, then take every one already answered.
    while issued < requests and time.monotonic() < stop:
        count = min(inflight - len(window), requests - issued)
        js = [(issued + i) % len(slots) for i in range(count)]
        if config.coalesce:
            futs = edge.submit_many([pools[j] for j in js], reply=config.reply, top_k=config.top_k)
        else:
            futs = [edge.submit(pools[j], reply=config.reply, top_k=config.top_k) for j in js]
        window.extend(zip(futs, js, strict=True))
        issued += count
        if issued < requests:
            settle(*window.popleft())
            while window and window[0][0].done():
                settle(*window.popleft())
    for fut, j in window:
        settle(fut, j)
    stats["wall_s"] = time.monotonic() - t0
    stats["issued"] = issued
    stats["errors"] = dict(errors)
    stats["duplicates"] = edge.stats.duplicates
    stats["reconnects"] = edge.stats.reconnects
    stats["retries"] = edge.stats.retries
    edge.close()
    results.put(stats)


def run_clients(n: int, target: str, prepared: Prepared, config: LoadConfig) -> tuple:
    """Fork ``n`` client processes; they wait for the returned start event."""
    ctx = mp.get_context("fork")
    start, results = ctx.Event(), ctx.Queue()
    total = len(prepared.tensors)
    procs = []
    for cid in range(n):
        slots = [(cid * config.pool + j) % total for j in range(config.pool)]
        p = ctx.Process(
            target=_client_main,
            args=(cid, target, prepared, slots, config, start, results),
            daemon=True,
        )
        p.start()
        procs.append(p)
    return procs, start, results


# ---------------------------------------------------------------------------- the server


class ServerProcess:
    """``python -m slicer serve`` in its own process, on 127.0.0.1, any free ports."""

    def __init__(
        self, model: str, cut: str, config: LoadConfig, extra: list[str] | None = None
    ) -> None:
        import psutil

        self._dir = tempfile.TemporaryDirectory(prefix="slicer-serve-")
        ready = os.path.join(self._dir.name, "ready.json")
        cmd = [
            sys.executable, "-m", "slicer", "serve", model, "--split", cut,
            "--host", "127.0.0.1", "--port", "0", "--metrics-port", "0",
            "--max-batch", str(config.max_batch), "--batch-window", str(config.batch_window_ms),
            "--workers", str(config.workers), "--max-queue", str(config.max_queue),
            "--ready-file", ready, *(extra or []),
        ]  # fmt: skip
        self.log = open(os.path.join(self._dir.name, "server.log"), "w+")  # noqa: SIM115
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 300
        while not os.path.exists(ready):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.log.seek(0)
                tail = self.log.read()[-2000:]
                self.stop()
                raise RuntimeError(f"the server did not start: {tail}")
            time.sleep(0.05)
        with open(ready) as f:
            self.info = json.load(f)
        self.target = self.info["target"]
        self.process = psutil.Process(self.proc.pid)

    def _tree(self) -> list:
        """The server process and, for the Ray engine, every process it started."""
        import psutil

        procs = [self.process]
        if self.info.get("engine") == "ray":
            try:
                procs += self.process.children(recursive=True)
            except psutil.Error:
                pass
        return procs

    def cpu_s(self) -> float:
        import psutil

        total = 0.0
        for p in self._tree():
            try:
                t = p.cpu_times()
            except psutil.Error:
                continue
            total += float(t.user + t.system)
        return total

    def thread_cpu(self) -> dict[int, tuple[str, float]]:
        """Thread id -> (name, CPU seconds) of the server process (Linux /proc; else empty).
        The main thread (id = pid) runs the asyncio loop and grpc.aio's Python side."""
        out: dict[int, tuple[str, float]] = {}
        pid = self.process.pid
        tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
        try:
            tids = os.listdir(f"/proc/{pid}/task")
        except OSError:
            return out
        for tid in tids:
            try:
                with open(f"/proc/{pid}/task/{tid}/stat") as f:
                    stat = f.read()
                with open(f"/proc/{pid}/task/{tid}/comm") as f:
                    name = f.read().strip()
            except OSError:
                continue
            fields = stat[stat.rindex(")") + 2 :].split()
            name = "main" if int(tid) == pid else name
            out[int(tid)] = (name, (int(fields[11]) + int(fields[12])) / tick)
        return out

    def rss(self) -> int:
        import psutil

        total = 0
        for p in self._tree():
            try:
                total += int(p.memory_info().rss)
            except psutil.Error:
                continue
        return total

    def metrics(self) -> dict[str, float]:
        from .metrics import parse

        url = f"http://127.0.0.1:{self.info['metrics_port']}/metrics"
        with urllib.request.urlopen(url, timeout=10) as r:
            return parse(r.read().decode())

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.log.close()
        self._dir.cleanup()


def measure_run(server: ServerProcess, n: int, prepared: Prepared, config: LoadConfig) -> dict:
    procs, start, results = run_clients(n, server.target, prepared, config)
    time.sleep(0.2)
    m0, cpu0, threads0 = server.metrics(), server.cpu_s(), server.thread_cpu()
    t0 = time.perf_counter()
    start.set()
    stats = []
    deadline = time.monotonic() + config.duration_s + 120
    while len(stats) < n and time.monotonic() < deadline:
        with contextlib.suppress(Exception):
            stats.append(results.get(timeout=1.0))
        if all(not p.is_alive() for p in procs) and results.empty() and len(stats) < n:
            time.sleep(0.5)
            if results.empty():
                break
    wall = time.perf_counter() - t0
    cpu1, m1, threads1 = server.cpu_s(), server.metrics(), server.thread_cpu()
    for p in procs:
        p.join(5)
        if p.is_alive():
            p.kill()
            p.join(5)
    key = "slicer_serve_compute_cpu_seconds_total"
    compute = m1.get(key, 0.0) - m0.get(key, 0.0)
    key = "slicer_serve_decode_wall_seconds_total"
    decode = m1.get(key, 0.0) - m0.get(key, 0.0)
    ok = sum(s.get("ok", 0) for s in stats)
    issued = sum(s.get("issued", 0) for s in stats)
    mismatched = sum(s.get("mismatched", 0) for s in stats)
    errors: Counter = Counter()
    for s in stats:
        errors.update(s.get("errors", {}))
    lat = np.array([x for s in stats for x in s.get("latency", [])], dtype=np.float64)
    tb = np.array([x for s in stats for x in s.get("tail_batch", [])], dtype=np.float64)
    answered = ok + mismatched + sum(v for k, v in errors.items() if k != "DEADLINE_EXCEEDED")
    missing_clients = n - len(stats)
    bsum = m1.get("slicer_serve_batch_size_sum", 0) - m0.get("slicer_serve_batch_size_sum", 0)
    bcount = m1.get("slicer_serve_batch_size_count", 0) - m0.get("slicer_serve_batch_size_count", 0)
    server_cpu = cpu1 - cpu0
    return {
        "clients": n,
        "clients_reporting": len(stats),
        "requests": issued,
        "ok": ok,
        "lost": issued - answered + missing_clients * config.requests,
        "duplicated": sum(s.get("duplicates", 0) for s in stats),
        "mismatched": mismatched,
        "errors": dict(errors),
        "fatal": [s["fatal"] for s in stats if "fatal" in s],
        "wall_s": wall,
        "throughput_rps": ok / wall if wall > 0 else 0.0,
        "latency_ms": {
            "p50": float(np.percentile(lat, 50) * 1e3) if lat.size else None,
            "p99": float(np.percentile(lat, 99) * 1e3) if lat.size else None,
        },
        "server_cpu_s": server_cpu,
        "server_cpu_ms_per_request": 1e3 * server_cpu / ok if ok else None,
        "compute_cpu_s": compute,
        "overhead": (server_cpu - compute) / compute if compute > 0 else None,
        "decode_ms_per_request": 1e3 * decode / ok if ok else None,
        "mean_batch": bsum / bcount if bcount else None,
        # the tail-run size each reply reports (for Ray: @serve.batch inside the replicas)
        "reply_batch_mean": float(np.mean(tb)) if tb.size else None,
        "server_rss_mb": server.rss() / 2**20,
        # CPU ms per answered request of each server thread that used any (busiest first)
        "server_threads_ms_per_request": _thread_shares(threads0, threads1, ok),
    }


def _thread_shares(
    before: dict[int, tuple[str, float]], after: dict[int, tuple[str, float]], ok: int
) -> list[tuple[str, float]]:
    shares = []
    for tid, (name, cpu) in after.items():
        used = cpu - before.get(tid, (name, 0.0))[1]
        if used > 0 and ok:
            shares.append((name, round(1e3 * used / ok, 4)))
    return sorted(shares, key=lambda s: -s[1])


# ---------------------------------------------------------------------------- driver


def run_loadtest(config: LoadConfig, progress: bool = True) -> dict:
    from ..split.cli import _auto_cut
    from ..split.graph import Partitioner
    from ..split.providers import make_session
    from ..split.transport import CodecParams
    from .cli import resolve_model

    path = resolve_model(config.model)
    part = Partitioner(path)
    cut = part.find_cut(config.cut) if config.cut not in (None, "full") else _auto_cut(part)
    params = config.params or CodecParams()
    name = config.model if not os.path.exists(config.model) else os.path.basename(config.model)
    full = make_session(part.model, ["CPUExecutionProvider"], 1, part.external_dir)
    count = max(config.clients) * config.pool
    inputs = model_inputs(config.model, full, count)
    transforms: dict[str, Any] = {}
    estimators: dict[str, Any] = {}
    if config.settings:  # what `slicer serve --settings` applies at this cut
        from ..split.settings import estimators_for_cut, transforms_for_cut

        transforms = transforms_for_cut(config.settings, cut.name)
        estimators = estimators_for_cut(config.settings, cut.name)
        if config.engine == "ray" and (transforms or estimators):
            raise ValueError(
                f"settings {config.settings}: cut {cut.name} has a calibrated transform or "
                "decoder-side estimator, which --engine ray does not apply: use --engine grpc"
            )
    runs = []
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(
            total=len(config.setups) * len(config.clients),
            desc="loadtest",
            unit="run",
            file=sys.stderr,
        )
    report: dict[str, Any] = {
        "model": name,
        "cut": {"index": cut.index, "name": cut.name},
        "params": params.to_json(),
        "config": {
            k: getattr(config, k)
            for k in (
                "clients",
                "requests",
                "duration_s",
                "pool",
                "inflight",
                "max_batch",
                "batch_window_ms",
                "workers",
                "max_queue",
                "reply",
                "engine",
                "replicas",
                "front",
                "coalesce",
                "settings",
            )
        },  # fmt: skip
        "setups": {},
        "runs": runs,
        "cpu_count": os.cpu_count(),
    }
    servers: dict[str, ServerProcess] = {}
    try:
        for setup in config.setups:
            if bar:
                bar.set_postfix_str(f"{setup}: preparing {count} inputs")
            prepared = prepare(setup, part, cut, inputs, params, transforms, estimators)
            server_cut = "full" if setup == "cloud" else cut.name
            if server_cut not in servers:
                if bar:
                    bar.set_postfix_str(f"{setup}: starting server")
                extra = (
                    ["--engine", "ray", "--replicas", str(config.replicas)]
                    if config.engine == "ray"
                    else (["--front", config.front] if config.front != "aio" else [])
                )
                if config.settings and server_cut != "full":
                    extra += ["--settings", config.settings]
                servers[server_cut] = ServerProcess(path, server_cut, config, extra)
            server = servers[server_cut]
            report["setups"][setup] = {
                "request_bytes_mean": float(np.mean(prepared.request_bytes)),
                "fidelity_vs_uncut": prepared.fidelity,
                "server_batched": server.info.get("batched"),
                "engine": server.info.get("engine", "grpc"),
                **{
                    k: server.info[k]
                    for k in ("replicas", "replica_ids", "cold_start_s", "idle_rss_bytes")
                    if k in server.info
                },
            }
            for n in config.clients:
                if bar:
                    bar.set_postfix_str(f"{setup}: {n} clients")
                run = measure_run(server, n, prepared, config)
                run["setup"] = setup
                runs.append(run)
                if bar:
                    bar.update(1)
    finally:
        for s in servers.values():
            s.stop()
        if bar:
            bar.close()
    report["summary"] = summarize(runs)
    return report


def summarize(runs: list[dict]) -> dict:
    """Server CPU per request by set-up (over all N) and the cloud / slicer ratio."""
    out: dict[str, Any] = {}
    for setup in SETUPS:
        rs = [r for r in runs if r["setup"] == setup and r["ok"]]
        if rs:
            cpu = sum(r["server_cpu_s"] for r in rs)
            ok = sum(r["ok"] for r in rs)
            out[f"{setup}_cpu_ms_per_request"] = 1e3 * cpu / ok
    if "cloud_cpu_ms_per_request" in out:
        for setup in ("raw", "slicer"):
            if f"{setup}_cpu_ms_per_request" in out:
                out[f"cloud_over_{setup}"] = (
                    out["cloud_cpu_ms_per_request"] / out[f"{setup}_cpu_ms_per_request"]
                )
    out["lost"] = sum(r["lost"] for r in runs)
    out["duplicated"] = sum(r["duplicated"] for r in runs)
    out["mismatched"] = sum(r["mismatched"] for r in runs)
    out["requests"] = sum(r["requests"] for r in runs)
    return out


def print_report(report: dict) -> None:
    print(f"model {report['model']}, cut #{report['cut']['index']} {report['cut']['name']}")
    for setup, info in report["setups"].items():
        kb = info["request_bytes_mean"] / 1e3
        print(f"  {setup:7} {kb:9.1f} kB/request, fidelity {info['fidelity_vs_uncut']}")
    print(
        f"{'setup':7} {'N':>4} {'reqs':>6} {'ok':>6} {'lost':>4} {'dup':>3} {'mism':>4} "
        f"{'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'cpu ms/req':>10} {'ovh':>6} {'batch':>5}"
    )
    for r in report["runs"]:
        lat = r["latency_ms"]
        print(
            f"{r['setup']:7} {r['clients']:>4} {r['requests']:>6} {r['ok']:>6} {r['lost']:>4} "
            f"{r['duplicated']:>3} {r['mismatched']:>4} {r['throughput_rps']:>8.1f} "
            f"{(lat['p50'] or 0):>8.2f} {(lat['p99'] or 0):>8.2f} "
            f"{(r['server_cpu_ms_per_request'] or 0):>10.3f} "
            f"{(100 * r['overhead']) if r['overhead'] is not None else float('nan'):>5.1f}% "
            f"{(r['mean_batch'] or 0):>5.1f}"
        )
    for k, v in report["summary"].items():
        print(f"  {k}: {v:.3f}" if isinstance(v, float) else f"  {k}: {v}")


def plot_report(report: dict, path: str) -> None:
    """Cumulative server CPU time against N, and CPU per request, for each set-up."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4))
    labels = {"cloud": "cloud-only", "raw": "split, raw features", "slicer": "split, SLICER"}
    for setup in SETUPS:
        rs = [r for r in report["runs"] if r["setup"] == setup and r["ok"]]
        if not rs:
            continue
        n = [r["clients"] for r in rs]
        a.plot(n, [r["server_cpu_s"] for r in rs], "o-", label=labels[setup])
        b.plot(n, [r["server_cpu_ms_per_request"] for r in rs], "o-", label=labels[setup])
    req = report["config"]["requests"]
    a.set(xlabel="clients N", ylabel=f"cumulative server CPU time, s ({req} requests/client)")
    b.set(xlabel="clients N", ylabel="server CPU time per request, ms")
    for ax in (a, b):
        ax.grid(alpha=0.3)
        ax.legend()
    a.set_title(f"{report['model']}, cut #{report['cut']['index']}")
    s = report["summary"]
    if "cloud_over_slicer" in s:
        b.set_title(f"cloud-only / SLICER = {s['cloud_over_slicer']:.2f}x per request")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
