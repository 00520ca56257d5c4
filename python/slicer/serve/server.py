"""``slicer serve``: an embedded gRPC back-end (grpc.aio) for many edge clients.

Life of a request: the stream handler validates it on the event loop (caps, version,
fingerprint, cut, session, sequence number — no payload byte is decoded there), puts it on a
bounded queue (full → RESOURCE_EXHAUSTED with a retry hint), a batcher takes up to
``max_batch`` requests that arrive within ``batch_window_ms`` and hands them to one of
``workers`` threads (``workers=0``: runs them on the event-loop thread itself), which decodes
them and runs the tail once per group of equal shapes (:class:`~slicer.serve.engine.TailEngine`).
Each request gets exactly one reply on its stream.

One stream = one session. Per-session state (sequence numbers, counters, and room for the
tail's KV cache of autoregressive sessions) lives until the stream ends, the client vanishes,
another stream takes the session id over, or the session is idle for ``session_idle_s``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import os
import queue
import signal
import threading
import time
from collections import defaultdict, deque
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import grpc
from google.protobuf.message import DecodeError

from . import wire
from . import wire_pb2 as pb
from .engine import Item, Outcome, TailEngine
from .loop_wakeups import drain_completion_wakeups
from .metrics import Metrics, observe_many

_log = logging.getLogger("slicer.serve")

SERVICE = "slicer.serve.v1.SplitInference"
FRONTS = ("aio", "sync")


@dataclass
class ServeConfig:
    """Knobs of the back-end (all caps are enforced, see docs/wire.md)."""

    host: str = "127.0.0.1"
    port: int = 0  # 0: any free port (the bound port is reported)
    metrics_port: int | None = 0  # HTTP /metrics /healthz /readyz; None: off, 0: any free port
    max_batch: int = 16
    batch_window_ms: float = 2.0
    workers: int = 1  # 0: batches run on the event-loop thread (asyncio front only)
    max_queue: int = 256
    max_sessions: int = 1024
    session_idle_s: float = 60.0
    max_request_bytes: int = wire.MAX_REQUEST_BYTES
    max_reply_bytes: int = wire.MAX_REPLY_BYTES
    front: str = "aio"  # "aio": grpc.aio on an event loop; "sync": grpc.server on threads

    def __post_init__(self) -> None:
        if self.front not in FRONTS:
            raise ValueError(f"front must be one of {', '.join(FRONTS)}, got {self.front!r}")
        checks = {
            "max_batch": self.max_batch >= 1,
            "batch_window_ms": 0 <= self.batch_window_ms <= 1000,
            "workers": (0 if self.front == "aio" else 1) <= self.workers <= 256,
            "max_queue": self.max_queue >= 1,
            "max_sessions": self.max_sessions >= 1,
            "session_idle_s": self.session_idle_s > 0,
            "max_request_bytes": 64 <= self.max_request_bytes <= 1 << 30,
            "max_reply_bytes": 64 <= self.max_reply_bytes <= 1 << 30,
            "port": 0 <= self.port <= 65535,
        }
        for name, ok in checks.items():
            if not ok:
                raise ValueError(f"{name} is out of range: {getattr(self, name)!r}")

    def caps(self) -> dict[str, int]:
        return {
            "max_request_bytes": self.max_request_bytes,
            "max_reply_bytes": self.max_reply_bytes,
            "max_sessions": self.max_sessions,
            "session_idle_s": int(self.session_idle_s),
            "max_batch": self.max_batch,
            "max_requests_per_message": wire.MAX_REQUESTS_PER_MESSAGE,
        }


class _Bad:
    """A request that did not parse (truncated or not protobuf at all)."""

    def __init__(self, size: int, error: str) -> None:
        self.size = size
        self.error = error


def _deserialize(data: bytes) -> tuple[pb.Request | _Bad, int]:
    try:
        return pb.Request.FromString(data), len(data)
    except DecodeError as exc:
        return _Bad(len(data), str(exc) or "not a protobuf Request"), len(data)


def _deserialize_batch(data: bytes) -> tuple[pb.RequestBatch | _Bad, int]:
    try:
        return pb.RequestBatch.FromString(data), len(data)
    except DecodeError as exc:
        return _Bad(len(data), str(exc) or "not a protobuf RequestBatch"), len(data)


def _identity(data: bytes) -> bytes:
    return data


class _Replies:
    """A session's reply queue on the event loop: what the stream's writer takes, in order.

    asyncio.Queue's put / get for one consumer with no size bound, without its getter list and
    loop checks (one wake-up of the writer per reply either way); not thread-safe (the asyncio
    front puts and gets on the loop only)."""

    __slots__ = ("_items", "_waiter")

    def __init__(self) -> None:
        self._items: deque = deque()
        self._waiter: asyncio.Future | None = None

    def put_nowait(self, item: Any) -> None:
        self._items.append(item)
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)

    def get_nowait(self) -> Any:
        if not self._items:
            raise asyncio.QueueEmpty
        return self._items.popleft()

    async def get(self) -> Any:
        while not self._items:
            self._waiter = asyncio.get_running_loop().create_future()
            await self._waiter
        return self._items.popleft()

    def qsize(self) -> int:
        return len(self._items)


@dataclass
class Session:
    """Per-stream state; ``state`` is free for the tail (an LLM's KV cache)."""

    sid: str
    replies: Any  # asyncio.Queue (asyncio front) or queue.SimpleQueue (threaded front)
    last_seq: int = 0
    pending: int = 0
    requests: int = 0
    last_active: float = field(default_factory=time.monotonic)
    closed: bool = False
    ended: bool = False  # _end_session ran (it runs once)
    close_reason: str = ""
    state: dict[str, Any] = field(default_factory=dict)


@functools.cache
def _libc():  # noqa: ANN202 - ctypes library or None (looked up once: find_library runs ldconfig)
    import ctypes
    import ctypes.util
    import sys

    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.malloc_trim  # noqa: B018 - glibc only
        libc.mallopt  # noqa: B018
        return libc
    except (OSError, AttributeError):
        return None


_M_MMAP_THRESHOLD = -3


def fix_malloc() -> None:
    """glibc: serve blocks of 256 KiB and more from mmap at a fixed threshold.

    glibc raises its mmap threshold after freeing a large block, so after a burst of big
    (e.g. oversize, rejected) requests their buffers come from the heap and stay resident;
    a fixed threshold returns them to the system when freed. ``SLICER_SERVE_MMAP_THRESHOLD``
    (bytes; 0 leaves glibc's dynamic threshold) overrides the 256 KiB.
    """
    libc = _libc()
    threshold = int(os.environ.get("SLICER_SERVE_MMAP_THRESHOLD", 256 * 1024))
    if libc is not None and threshold > 0:
        libc.mallopt(_M_MMAP_THRESHOLD, threshold)


def trim_malloc() -> None:
    """glibc: give freed heap memory back to the system (the janitor calls this)."""
    libc = _libc()
    if libc is not None:
        libc.malloc_trim(0)


class Backend:
    """The servicer: sessions, admission, the batcher and its worker threads."""

    engine_name = "grpc"

    def __init__(self, engine: TailEngine, config: ServeConfig) -> None:
        self.engine = engine
        self.config = config
        self.expect = engine.expect(config.max_request_bytes)
        self.metrics = Metrics()
        self.metrics.queue_depth.set_function(self.queue_depth)  # read when scraped
        self.sessions: dict[str, Session] = {}
        self.ready = False
        self.draining = False
        self._queue: asyncio.Queue[Item] | None = None
        self._slots: asyncio.Semaphore | None = None
        self._executor = ThreadPoolExecutor(
            max(1, config.workers), thread_name_prefix="slicer-tail"
        )
        self._tasks: list[asyncio.Task] = []
        self._service_s = 0.002  # moving average of per-request service time (retry hints)
        self._anon = 0
        # Session counters (pending, last_seq) change on the admission side and on the
        # delivery side; with the asyncio front both run on the loop, with the threaded
        # front on different threads: this lock makes each change whole.
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        fix_malloc()
        warm = getattr(self.engine, "warm", None)
        if warm is not None:
            await asyncio.get_running_loop().run_in_executor(
                self._executor, warm, self.config.max_batch
            )
        self._queue = asyncio.Queue(self.config.max_queue)
        self._slots = asyncio.Semaphore(max(1, self.config.workers))
        self._tasks = [
            asyncio.create_task(self._batcher()),
            asyncio.create_task(self._janitor()),
        ]
        self.ready = True

    async def stop(self) -> None:
        self.ready = False
        self.draining = True
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await t
        self._executor.shutdown(wait=True, cancel_futures=True)

    def queue_depth(self) -> int:
        return self._queue.qsize() if self._queue is not None else 0

    # ------------------------------------------------------------------ RPCs

    async def Info(self, request: pb.InfoRequest, context: grpc.aio.ServicerContext) -> Any:
        info = self.engine.info(**self.config.caps())
        info.engine = self.engine_name
        return info

    async def Health(self, request: pb.HealthRequest, context: grpc.aio.ServicerContext) -> Any:
        return pb.HealthReply(
            live=True,
            ready=self.ready and not self.draining,
            sessions=len(self.sessions),
            queue_depth=self.queue_depth(),
        )

    async def _refuse_over_cap(self, context: grpc.aio.ServicerContext) -> None:
        """Abort a new stream with RESOURCE_EXHAUSTED (and a retry hint) at the session cap."""
        if len(self.sessions) >= self.config.max_sessions:
            self.metrics.rejected_sessions.inc()
            await context.abort(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"{len(self.sessions)} sessions open (cap {self.config.max_sessions}); "
                "retry after 1000 ms",
            )

    async def Session(
        self, request_iterator: AsyncIterator[tuple[Any, int]], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.Reply]:
        await self._refuse_over_cap(context)
        replies = _Replies()
        box: dict[str, Session | None] = {"session": None}
        reader = asyncio.create_task(self._read(request_iterator, replies, box))
        try:
            while True:
                reply = await replies.get()
                if reply is None:
                    break
                if isinstance(reply, tuple):  # (status, reason): the server ends the stream
                    await context.abort(reply[0], reply[1])
                yield reply
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await reader
            self._end_session(box["session"])

    async def SessionBatched(
        self, request_iterator: AsyncIterator[tuple[Any, int]], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[bytes]:
        """A session whose messages are RequestBatch / ReplyBatch: the requests of a message
        are admitted one by one as on ``Session``; the replies waiting when the stream is
        written go out together (serialized ReplyBatch bytes)."""
        await self._refuse_over_cap(context)
        replies = _Replies()
        box: dict[str, Session | None] = {"session": None}
        reader = asyncio.create_task(self._read(request_iterator, replies, box, self._admit_batch))
        held: deque = deque()
        try:
            while True:
                reply = held.popleft() if held else await replies.get()
                if reply is None:
                    break
                if isinstance(reply, tuple):  # (status, reason): the server ends the stream
                    await context.abort(reply[0], reply[1])
                yield self._gather(reply, held, replies)
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await reader
            self._end_session(box["session"])

    def _gather(self, first: pb.Reply, held: deque, source: Any) -> bytes:
        """``first`` and the replies already waiting in ``source`` (an asyncio or a thread
        queue), as one serialized ReplyBatch of at most MAX_REQUESTS_PER_MESSAGE replies and
        ``max_reply_bytes`` (a single larger reply goes alone). What does not fit, and a
        stream-end marker, stay in ``held`` for the next message."""
        parts = [wire.batch_element(first.SerializeToString())]
        size = len(parts[0])
        while len(parts) < wire.MAX_REQUESTS_PER_MESSAGE:
            if not held:
                try:
                    held.append(source.get_nowait())
                except (asyncio.QueueEmpty, queue.Empty):
                    break
            reply = held[0]
            if reply is None or isinstance(reply, tuple):
                break
            part = wire.batch_element(reply.SerializeToString())
            if size + len(part) > self.config.max_reply_bytes:
                break
            held.popleft()
            parts.append(part)
            size += len(part)
        return b"".join(parts)

    # ------------------------------------------------------------------ sessions

    def _bind(self, sid: str, replies: Any) -> Session:
        with self._lock:
            old = self.sessions.get(sid)
            if old is not None:  # a reconnect takes the session id over; the old stream ends
                old.closed = True
                old.close_reason = "taken over by a new stream"
                old.replies.put_nowait(
                    (grpc.StatusCode.ABORTED, "session taken over by a new stream")
                )
                self.metrics.sessions_ended.labels("takeover").inc()
            session = Session(sid, replies)
            self.sessions[sid] = session
            self.metrics.sessions_opened.inc()
            self.metrics.sessions.set(len(self.sessions))
        return session

    def _end_session(self, session: Session | None) -> None:
        if session is None or session.ended:
            return
        with self._lock:
            session.ended = True
            holder = self.sessions.get(session.sid)
        end = getattr(self.engine, "end_session", None)
        if end is not None and (holder is session or holder is None):
            end(session.sid)  # per-session engine state (an LLM's KV cache); kept on takeover
        with self._lock:
            session.closed = True
            if self.sessions.get(session.sid) is session:
                del self.sessions[session.sid]
                self.metrics.sessions_ended.labels(session.close_reason or "stream end").inc()
            self.metrics.sessions.set(len(self.sessions))
        session.state.clear()

    async def _janitor(self) -> None:
        idle = self.config.session_idle_s
        last_trim = time.monotonic()
        while True:
            await asyncio.sleep(min(1.0, idle / 4))
            last_trim = self._sweep(last_trim)

    def _sweep(self, last_trim: float) -> float:
        """Expire idle sessions and trim the heap now and then; returns the last trim time."""
        idle = self.config.session_idle_s
        now = time.monotonic()
        if now - last_trim > 5.0:
            trim_malloc()
            last_trim = now
        with self._lock:
            for s in list(self.sessions.values()):
                if s.pending == 0 and now - s.last_active > idle:
                    s.close_reason = "idle"
                    s.closed = True
                    del self.sessions[s.sid]
                    self.metrics.sessions_ended.labels("idle").inc()
                    s.replies.put_nowait(
                        (
                            grpc.StatusCode.DEADLINE_EXCEEDED,
                            f"session idle for more than {idle:g} s",
                        )
                    )
            self.metrics.sessions.set(len(self.sessions))
        return last_trim

    # ------------------------------------------------------------------ admission

    async def _read(
        self, request_iterator: AsyncIterator, replies: asyncio.Queue, box: dict, admit: Any = None
    ) -> None:
        admit = admit or self._admit
        try:
            async for parsed, size in request_iterator:
                self._admit_guarded(admit, parsed, size, replies, box)
        except asyncio.CancelledError:
            raise
        except Exception:  # the client vanished mid-message: same as a half-close
            pass
        session = box["session"]
        while session is not None and session.pending and not session.closed:
            await asyncio.sleep(0.005)  # stream end = session end, after its replies
        replies.put_nowait(None)

    def _admit_guarded(self, admit: Any, parsed: Any, size: int, replies: Any, box: dict) -> None:
        """``admit`` one message. An exception there is the server's own fault, not the client
        vanishing (the stream readers treat errors of the request iterator as a half-close): it is
        logged and answered ``INTERNAL`` (the request's seq, 0 for a RequestBatch), and the
        session goes on."""
        try:
            admit(parsed, size, replies, box)
        except Exception as exc:  # noqa: BLE001 - answered and logged, never swallowed
            _log.exception("slicer serve: admitting a message failed")
            session: Session | None = box["session"]
            seq = parsed.seq if isinstance(parsed, pb.Request) else 0
            message = f"server error while admitting the message: {exc!r}"[:200]
            self._reject(replies, session.sid if session else "", seq, wire.INTERNAL, message)

    def _reject(
        self, replies: asyncio.Queue, sid: str, seq: int, code: int, msg: str, retry: int = 0
    ) -> None:
        self.metrics.requests.labels(wire.CODE_NAMES.get(code, str(code))).inc()
        replies.put_nowait(wire.error_reply(sid, seq, code, msg, retry))

    def _admit_batch(self, parsed: Any, size: int, replies: Any, box: dict) -> None:
        """A RequestBatch: each request admitted as if alone (the message's size is what
        ``max_request_bytes`` caps); an empty or over-long batch is refused whole."""
        self.metrics.bytes_in.inc(size)
        if isinstance(parsed, _Bad):
            self._admit_one(parsed, size, replies, box)
            return
        requests = parsed.requests
        session: Session | None = box["session"]
        sid = session.sid if session else ""
        if not requests:
            self._reject(replies, sid, 0, wire.INVALID_ARGUMENT, "a RequestBatch with no requests")
            return
        if len(requests) > wire.MAX_REQUESTS_PER_MESSAGE:
            message = f"{len(requests)} requests in one message > {wire.MAX_REQUESTS_PER_MESSAGE}"
            for req in requests:
                self._reject(replies, sid, req.seq, wire.INVALID_ARGUMENT, message)
            return
        for req in requests:
            self._admit_one(req, size, replies, box)

    def _admit(self, parsed: Any, size: int, replies: Any, box: dict) -> None:
        self.metrics.bytes_in.inc(size)
        self._admit_one(parsed, size, replies, box)

    def _admit_one(self, parsed: Any, size: int, replies: Any, box: dict) -> None:
        session: Session | None = box["session"]
        sid = session.sid if session else ""
        if isinstance(parsed, _Bad):
            self._reject(
                replies, sid, 0, wire.INVALID_ARGUMENT, f"malformed request: {parsed.error}"
            )
            return
        req: pb.Request = parsed
        if session is None:
            if not wire.SESSION_ID.match(req.session_id):
                self._reject(
                    replies,
                    "",
                    req.seq,
                    wire.INVALID_ARGUMENT,
                    "session_id must be 1-64 characters of [A-Za-z0-9._-]",
                )
                return
            session = box["session"] = self._bind(req.session_id, replies)
        elif req.session_id not in ("", session.sid):
            self._reject(
                replies,
                session.sid,
                req.seq,
                wire.INVALID_ARGUMENT,
                f"session_id {req.session_id[:64]!r} differs from this stream's {session.sid!r}",
            )
            return
        if session.closed:
            return
        session.last_active = time.monotonic()
        try:
            wire.check_request(req, self.expect, size)
        except wire.WireError as exc:
            self._reject(replies, session.sid, req.seq, exc.code, exc.message)
            return
        if req.seq <= session.last_seq:
            self._reject(
                replies,
                session.sid,
                req.seq,
                wire.OUT_OF_RANGE,
                f"seq {req.seq} is not above the last accepted seq {session.last_seq}",
            )
            return
        if self.draining:
            self._reject(replies, session.sid, req.seq, wire.UNAVAILABLE, "server is shutting down")
            return
        req.session_id = session.sid
        item = Item(req, context=session)
        with self._lock:
            if self._enqueue(item):
                session.last_seq = req.seq
                session.pending += 1
                session.requests += 1
                queued = True
            else:
                queued = False
        if not queued:
            depth = self.queue_depth()
            retry = max(5, int(1e3 * self._service_s * depth / max(1, self.config.workers)))
            self._reject(
                replies,
                session.sid,
                req.seq,
                wire.RESOURCE_EXHAUSTED,
                f"queue full ({depth} requests waiting); retry after {retry} ms",
                retry,
            )
            return

    def _enqueue(self, item: Item) -> bool:
        """Put an admitted item on the batch queue; False when the queue is full."""
        try:
            self._queue.put_nowait(item)  # type: ignore[union-attr]
        except asyncio.QueueFull:
            return False
        return True

    # ------------------------------------------------------------------ batching

    async def _batcher(self) -> None:
        queue, slots = self._queue, self._slots
        assert queue is not None and slots is not None
        window = self.config.batch_window_ms / 1e3
        while True:
            await slots.acquire()
            first = await queue.get()
            if window and queue.qsize() < self.config.max_batch - 1:
                await asyncio.sleep(window)
            batch = [first]
            while len(batch) < self.config.max_batch and not queue.empty():
                batch.append(queue.get_nowait())
            live = self._skip_closed(batch)
            if not live:
                slots.release()
                continue
            start = time.perf_counter()
            if self.config.workers == 0 and type(self)._submit is Backend._submit:
                self._run_here(live, start)
                await asyncio.sleep(0)  # the replies go out, reads are admitted, then the next
                continue
            fut = self._submit(live)
            fut.add_done_callback(lambda f, b=live, s=start: self._deliver(f, b, s))

    def _run_here(self, batch: list[Item], start: float) -> None:
        """``workers == 0``: run the batch on the event-loop thread. No hand-off to a worker
        and back (a futex wake, a loop wake-up, the GIL passed twice per batch), and the
        completions that arrive meanwhile are handled together afterwards; the price is that
        nothing is admitted or answered while a tail runs."""
        assert self._slots is not None
        try:
            outcomes = self.engine.run_batch(batch)
        except Exception as exc:  # an engine bug: every member learns it, the server lives on
            outcomes = self._failed(batch, exc)
        self._slots.release()
        self._account(batch, outcomes, start)

    def _submit(self, batch: list[Item]) -> asyncio.Future:
        """Run a batch; the future's result is one Outcome per item (in order)."""
        loop = asyncio.get_running_loop()
        return loop.run_in_executor(self._executor, self.engine.run_batch, batch)

    def _deliver(self, fut: asyncio.Future, batch: list[Item], start: float) -> None:
        assert self._slots is not None
        self._slots.release()
        try:
            outcomes: list[Outcome] = fut.result()
        except Exception as exc:  # an engine bug: every member learns it, the server lives on
            outcomes = self._failed(batch, exc)
        self._account(batch, outcomes, start)

    @staticmethod
    def _failed(batch: list[Item], exc: BaseException) -> list[Outcome]:
        return [
            Outcome(
                wire.error_reply(
                    it.request.session_id, it.request.seq, wire.INTERNAL, repr(exc)[:200]
                )
            )
            for it in batch
        ]

    def _skip_closed(self, batch: list[Item]) -> list[Item]:
        """The members of a batch whose session is still open (the others are dropped)."""
        live = [it for it in batch if not it.context.closed]
        if len(live) != len(batch):
            with self._lock:
                for it in batch:
                    if it.context.closed:  # its client is gone: skip the work
                        it.context.pending -= 1
            self.metrics.requests.labels("CANCELLED").inc(len(batch) - len(live))
        return live

    def _account(self, batch: list[Item], outcomes: list[Outcome], start: float) -> None:
        """Hand each reply to its session and count the batch (any thread)."""
        now = time.perf_counter()
        per_request = (now - start) / max(1, len(batch))
        self._service_s = 0.9 * self._service_s + 0.1 * per_request
        m = self.metrics
        m.batch_size.observe(len(batch))
        if outcomes and outcomes[0].batch_size:
            m.compute_seconds.observe(outcomes[0].compute_s)
        # Counters once per batch; histograms per request.
        codes: dict[int, int] = defaultdict(int)
        compute_cpu = 0.0
        active = time.monotonic()
        decodes = [out.decode_s for out in outcomes]
        waits = [max(0.0, start - it.admitted) for it in batch]
        for out, queued in zip(outcomes, waits, strict=True):
            reply = out.reply
            reply.timing.queue_us = int(queued * 1e6)
            codes[reply.code] += 1
            compute_cpu += out.compute_cpu_s / max(1, out.batch_size)
        observe_many(m.decode_seconds, decodes)
        observe_many(m.queue_seconds, waits)
        decode = sum(decodes)
        with self._lock:
            for it, out in zip(batch, outcomes, strict=True):
                session: Session = it.context
                session.pending -= 1
                if not session.closed:
                    session.last_active = active
                    session.replies.put_nowait(out.reply)
        for code, count in codes.items():
            m.requests.labels(wire.CODE_NAMES.get(code, str(code))).inc(count)
        m.compute_cpu_seconds.inc(compute_cpu)
        m.decode_cpu_seconds.inc(decode)


# ---------------------------------------------------------------------------- HTTP side


def _http_handler(backend: Backend) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server API
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                body, ctype = backend.metrics.render()
                self._send(200, body, ctype)
            elif path == "/healthz":
                self._send(200, b"live\n")
            elif path == "/readyz":
                ok = backend.ready and not backend.draining
                self._send(200 if ok else 503, b"ready\n" if ok else b"not ready\n")
            else:
                self._send(404, b"not found\n")

        def _send(self, code: int, body: bytes, ctype: str = "text/plain") -> None:
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    return Handler


# ---------------------------------------------------------------------------- running


@dataclass
class Running:
    """A started server: ports, the backend, and how to stop it."""

    port: int
    metrics_port: int | None
    backend: Backend
    server: Any  # grpc.aio.Server, or front_sync.ThreadedServer
    http: ThreadingHTTPServer | None

    @property
    def target(self) -> str:
        return f"{self.backend.config.host}:{self.port}"

    async def stop(self, grace: float = 1.0) -> None:
        self.backend.draining = True
        if isinstance(self.server, grpc.aio.Server):
            await self.server.stop(grace)
            await self.backend.stop()
        else:  # the threaded front: its stop blocks, so it runs off the loop
            await asyncio.get_running_loop().run_in_executor(None, self.server.stop, grace)
        if self.http is not None:
            self.http.shutdown()
            self.http.server_close()


def _handlers(backend: Backend) -> grpc.GenericRpcHandler:
    ser = pb.Reply.SerializeToString
    return grpc.method_handlers_generic_handler(
        SERVICE,
        {
            "Session": grpc.stream_stream_rpc_method_handler(
                backend.Session, request_deserializer=_deserialize, response_serializer=ser
            ),
            "SessionBatched": grpc.stream_stream_rpc_method_handler(
                backend.SessionBatched,
                request_deserializer=_deserialize_batch,
                response_serializer=_identity,
            ),
            "Info": grpc.unary_unary_rpc_method_handler(
                backend.Info,
                request_deserializer=pb.InfoRequest.FromString,
                response_serializer=pb.ServerInfo.SerializeToString,
            ),
            "Health": grpc.unary_unary_rpc_method_handler(
                backend.Health,
                request_deserializer=pb.HealthRequest.FromString,
                response_serializer=pb.HealthReply.SerializeToString,
            ),
        },
    )


async def start_server(
    engine: TailEngine, config: ServeConfig, backend: Backend | None = None
) -> Running:
    """Start the gRPC server (and the HTTP metrics/health endpoint) on the running loop.

    ``backend``: a Backend subclass instance to use instead of the in-process one (the Ray
    Serve front passes its own). ``config.front == "sync"`` starts the threaded front
    (:mod:`slicer.serve.front_sync`) instead of grpc.aio; the loop then only carries
    ``Running.stop``."""
    if config.front == "sync":
        if backend is not None:
            raise ValueError("the threaded front (front='sync') runs the in-process engine only")
        return await asyncio.get_running_loop().run_in_executor(
            None, _start_threaded, engine, config
        )
    backend = backend or Backend(engine, config)
    server = grpc.aio.server(
        options=wire.channel_options(config.max_request_bytes, config.max_reply_bytes)
        + [("grpc.so_reuseport", 0)]
    )
    server.add_generic_rpc_handlers((_handlers(backend),))
    port = server.add_insecure_port(f"{config.host}:{config.port}")
    if port == 0:
        raise OSError(f"cannot bind {config.host}:{config.port}")
    http, metrics_port = _http(backend, config)
    await backend.start()
    await server.start()
    drain_completion_wakeups(asyncio.get_running_loop())
    return Running(port, metrics_port, backend, server, http)


def _http(backend: Backend, config: ServeConfig) -> tuple[ThreadingHTTPServer | None, int | None]:
    if config.metrics_port is None:
        return None, None
    http = ThreadingHTTPServer((config.host, config.metrics_port), _http_handler(backend))
    http.daemon_threads = True
    threading.Thread(target=http.serve_forever, daemon=True, name="slicer-http").start()
    return http, http.server_address[1]


def _start_threaded(engine: TailEngine, config: ServeConfig) -> Running:
    from .front_sync import ThreadedBackend, ThreadedServer

    backend = ThreadedBackend(engine, config)
    server = ThreadedServer(backend)
    http, metrics_port = _http(backend, config)
    server.start()
    return Running(server.port, metrics_port, backend, server, http)


async def serve_forever(
    engine: TailEngine, config: ServeConfig, ready_file: str | None = None, quiet: bool = False
) -> None:
    """Run until SIGINT / SIGTERM; writes ``ready_file`` (JSON with the ports) once serving."""
    running = await start_server(engine, config)
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
        "fingerprint": engine.fingerprint,
        "cut_id": engine.cut_id,
        "cut_name": engine.cut_name,
        "batched": engine.batched,
    }
    if ready_file:
        tmp = f"{ready_file}.tmp"
        with open(tmp, "w") as f:
            json.dump(info, f)
        os.replace(tmp, ready_file)
    if not quiet:
        print(
            f"serving {engine.cut_name} (cut {engine.cut_id}) on {running.target}"
            + (
                f", metrics on http://{config.host}:{running.metrics_port}/metrics"
                if running.metrics_port
                else ""
            )
            + f"; {engine.batch_note}",
            flush=True,
        )
    await stop.wait()
    await running.stop()


class ServerThread:
    """A server on its own event loop in a background thread (tests, notebooks)."""

    def __init__(
        self, engine: TailEngine, config: ServeConfig | None = None, starter: Any = None
    ) -> None:
        self.config = config or ServeConfig()
        self._starter = starter or (lambda: start_server(engine, self.config))
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self.running: Running | None = None
        self._thread = threading.Thread(target=self._main, daemon=True)
        self._thread.start()
        self._ready.wait(60)
        if self._error is not None:
            raise self._error
        if self.running is None:
            raise RuntimeError("the server did not start within 60 s")

    def _main(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self.running = self._loop.run_until_complete(self._starter())
        except BaseException as exc:  # reported to the constructor
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        self._loop.run_forever()

    @property
    def target(self) -> str:
        assert self.running is not None
        return self.running.target

    @property
    def backend(self) -> Backend:
        assert self.running is not None
        return self.running.backend

    def stop(self) -> None:
        if self.running is None or not self._loop.is_running():
            return
        fut = asyncio.run_coroutine_threadsafe(self.running.stop(0.5), self._loop)
        fut.result(30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(30)

    def __enter__(self) -> ServerThread:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()
