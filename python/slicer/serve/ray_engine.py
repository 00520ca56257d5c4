"""Scale-out on Ray Serve: the same request handler as replicas, behind the same gRPC front.

``slicer serve MODEL --split CUT --engine ray --replicas R`` starts a local Ray cluster bound
to 127.0.0.1 (no dashboard, no Ray HTTP proxy), deploys R single-replica deployments of
:class:`TailReplica` — each a :class:`~slicer.serve.engine.TailEngine` whose
``handle_batch`` is a ``@serve.batch`` method, so concurrent requests from many clients meet
in one tail run — and serves the wire format of docs/wire.md from the usual gRPC front.

Routing is session-affine: a consistent-hash ring (64 virtual nodes per replica) maps each
session id to one replica, so per-session state (an LLM session's KV cache) stays where it
was built. One deployment per replica is what makes that deterministic: Ray Serve's own
router picks among a deployment's replicas by load, not by key.

When to choose which: the embedded engine (default) starts in about a second, costs one
process and is the right default on one machine; Ray Serve costs seconds to start and about
2 GB idle, and is the way to spread replicas over cores or machines.
"""

from __future__ import annotations

import asyncio
import bisect
import hashlib
import os
import time
from typing import Any

import psutil

from . import wire
from . import wire_pb2 as pb
from .engine import Item, Outcome
from .server import Backend, Running, ServeConfig, start_server

VNODES = 64


class HashRing:
    """Consistent hashing of session ids onto replica indices."""

    def __init__(self, replicas: int, vnodes: int = VNODES) -> None:
        if replicas < 1:
            raise ValueError(f"replicas must be >= 1, got {replicas}")
        points = sorted(
            (self._hash(f"replica-{r}#{v}"), r) for r in range(replicas) for v in range(vnodes)
        )
        self._keys = [p for p, _ in points]
        self._owners = [r for _, r in points]

    @staticmethod
    def _hash(text: str) -> int:
        return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big")

    def owner(self, session_id: str) -> int:
        i = bisect.bisect(self._keys, self._hash(session_id)) % len(self._keys)
        return self._owners[i]


def _replica_class() -> Any:
    from ray import serve

    @serve.deployment(max_ongoing_requests=512, ray_actor_options={"num_cpus": 0})
    class TailReplica:
        """One replica: a TailEngine behind ``@serve.batch``."""

        def __init__(
            self,
            model: str,
            cut: str | None,
            index: int,
            max_batch: int,
            window_s: float,
            llm_sessions: int = 0,
        ) -> None:
            from concurrent.futures import ThreadPoolExecutor

            from slicer.serve.engine import LLMEngine, TailEngine

            sid = f"ray-replica-{index}:{os.getpid()}"
            if llm_sessions:  # LLM sessions: the KV caches of the sessions routed here
                self.engine = LLMEngine(model, int(cut), max_sessions=llm_sessions, server_id=sid)
            else:
                self.engine = TailEngine(model, cut, server_id=sid)
            self._pool = ThreadPoolExecutor(1, thread_name_prefix="slicer-ray-tail")
            self.handle_batch.set_max_batch_size(max_batch)
            self.handle_batch.set_batch_wait_timeout_s(window_s)

        def info(self) -> bytes:
            return self.engine.info().SerializeToString()

        def end_session(self, session_id: str) -> None:
            end = getattr(self.engine, "end_session", None)
            if end is not None:
                end(session_id)

        @serve.batch(max_batch_size=16, batch_wait_timeout_s=0.002)
        async def handle_batch(self, requests: list[bytes]) -> list[tuple]:
            items = [Item(pb.Request.FromString(b)) for b in requests]
            loop = asyncio.get_running_loop()
            outs = await loop.run_in_executor(self._pool, self.engine.run_batch, items)
            return [
                (
                    o.reply.SerializeToString(),
                    o.decode_s,
                    o.compute_s,
                    o.compute_cpu_s,
                    o.batch_size,
                )
                for o in outs
            ]

        async def __call__(self, request: bytes) -> tuple:
            return await self.handle_batch(request)

    return TailReplica


class RemoteEngine:
    """What the front needs of an engine (fingerprint, cut, tensor names), from replica 0."""

    def __init__(self, info: pb.ServerInfo, replicas: int) -> None:
        self._info = info
        self.fingerprint = info.model_fingerprint
        self.cut_id = info.cut_id
        self.cut_name = info.cut_name
        self.tensor_names = tuple(info.tensor_names)
        self.output_names = tuple(info.output_names)
        self.replicas = replicas
        self.llm = info.kind == "llm"
        self.batched = not self.llm
        self.batch_note = f"Ray Serve, {replicas} replicas, @serve.batch"

    def expect(self, max_request_bytes: int = wire.MAX_REQUEST_BYTES) -> wire.Expect:
        return wire.Expect(
            self.fingerprint, self.cut_id, self.tensor_names, max_request_bytes, llm=self.llm
        )

    def info(self, **caps: Any) -> pb.ServerInfo:
        info = pb.ServerInfo()
        info.CopyFrom(self._info)
        for k, v in caps.items():
            setattr(info, k, v)
        info.server_id = f"ray-front:{os.getpid()}"
        return info


class RayBackend(Backend):
    """The gRPC front: admission as usual, then each request to its session's replica."""

    engine_name = "ray"

    def __init__(self, engine: RemoteEngine, config: ServeConfig, handles: list[Any]) -> None:
        super().__init__(engine, config)  # type: ignore[arg-type]
        self.handles = handles
        self.ring = HashRing(len(handles))

    def _submit(self, batch: list[Item]) -> asyncio.Future:
        return asyncio.ensure_future(self._remote(batch))

    def _end_session(self, session: Any) -> None:
        if session is not None and self.engine.llm:  # free the KV cache on its replica
            holder = self.sessions.get(session.sid)
            if holder is session or holder is None:
                self.handles[self.ring.owner(session.sid)].end_session.remote(session.sid)
        super()._end_session(session)

    async def _remote(self, batch: list[Item]) -> list[Outcome]:
        calls = [
            self.handles[self.ring.owner(it.request.session_id)].remote(
                it.request.SerializeToString()
            )
            for it in batch
        ]
        outcomes = []
        for it, call in zip(batch, calls, strict=True):
            try:
                data, decode_s, compute_s, cpu_s, size = await call
                outcomes.append(
                    Outcome(pb.Reply.FromString(data), decode_s, compute_s, cpu_s, size)
                )
            except Exception as exc:  # a replica died: the request learns it
                req = it.request
                msg = f"replica failed: {type(exc).__name__}"
                outcomes.append(
                    Outcome(wire.error_reply(req.session_id, req.seq, wire.UNAVAILABLE, msg))
                )
        return outcomes


def _process_tree_rss() -> int:
    me = psutil.Process()
    total = me.memory_info().rss
    for child in me.children(recursive=True):
        try:
            total += child.memory_info().rss
        except psutil.Error:
            continue
    return total


class RayCluster:
    """A local Ray cluster on 127.0.0.1 with R replica deployments."""

    def __init__(
        self,
        model: str,
        cut: str | None,
        replicas: int,
        config: ServeConfig,
        num_cpus: int | None = None,
        llm_sessions: int = 0,
    ) -> None:
        import ray
        from ray import serve

        if replicas < 1:
            raise ValueError(f"replicas must be >= 1, got {replicas}")
        t0 = time.perf_counter()
        ray.init(
            address="local",
            _node_ip_address="127.0.0.1",
            include_dashboard=False,
            num_cpus=num_cpus or os.cpu_count(),
            log_to_driver=False,
            configure_logging=False,
            namespace="slicer-serve",
        )
        serve.start(proxy_location="Disabled", http_options={"host": "127.0.0.1"})
        cls = _replica_class()
        window = config.batch_window_ms / 1e3
        self.handles = []
        for i in range(replicas):
            app = cls.options(name=f"tail-{i}", num_replicas=1).bind(
                model, cut, i, config.max_batch, window, llm_sessions
            )
            self.handles.append(serve.run(app, name=f"slicer-tail-{i}", route_prefix=None))
        infos = [pb.ServerInfo.FromString(h.info.remote().result()) for h in self.handles]
        self.replica_ids = [i.server_id for i in infos]
        self.engine = RemoteEngine(infos[0], replicas)
        self.cold_start_s = time.perf_counter() - t0
        time.sleep(1.0)
        self.idle_rss = _process_tree_rss()

    def shutdown(self) -> None:
        import ray
        from ray import serve

        serve.shutdown()
        ray.shutdown()


async def start_ray(cluster: RayCluster, config: ServeConfig) -> Running:
    """The gRPC front for a started cluster (front-side batching off: Ray batches)."""
    front = ServeConfig(
        **{
            **config.__dict__,
            "max_batch": 1,
            "batch_window_ms": 0.0,
            "workers": max(64, config.workers),
            "front": "aio",  # the Ray front awaits replicas on the event loop
        }
    )
    backend = RayBackend(cluster.engine, front, [h for h in cluster.handles])
    return await start_server(cluster.engine, front, backend)  # type: ignore[arg-type]


def serve_ray(
    model: str,
    cut: str | None,
    config: ServeConfig,
    replicas: int,
    ready_file: str | None,
    llm_sessions: int = 0,
) -> int:
    """``slicer serve --engine ray``: run until SIGINT / SIGTERM."""
    import contextlib
    import json
    import signal

    cluster = RayCluster(
        model, None if cut == "full" else cut, replicas, config, llm_sessions=llm_sessions
    )

    async def main() -> None:
        running = await start_ray(cluster, config)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(sig, stop.set)
        info = {
            "target": running.target,
            "port": running.port,
            "metrics_port": running.metrics_port,
            "pid": os.getpid(),
            "engine": "ray",
            "replicas": replicas,
            "replica_ids": cluster.replica_ids,
            "cold_start_s": cluster.cold_start_s,
            "idle_rss_bytes": cluster.idle_rss,
            "fingerprint": cluster.engine.fingerprint,
            "cut_id": cluster.engine.cut_id,
            "cut_name": cluster.engine.cut_name,
            "batched": True,
        }
        if ready_file:
            with open(f"{ready_file}.tmp", "w") as f:
                json.dump(info, f)
            os.replace(f"{ready_file}.tmp", ready_file)
        print(
            f"serving {cluster.engine.cut_name} on {running.target} through Ray Serve "
            f"({replicas} replicas); cold start {cluster.cold_start_s:.1f} s, idle memory "
            f"{cluster.idle_rss / 2**30:.2f} GiB",
            flush=True,
        )
        await stop.wait()
        await running.stop()

    try:
        asyncio.run(main())
    finally:
        cluster.shutdown()
    return 0
