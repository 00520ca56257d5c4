"""The threaded gRPC front (``slicer serve --front sync``): grpc.server with a thread pool.

The same admission, sessions, batching and delivery as the asyncio front
(:class:`~slicer.serve.server.Backend`), on threads instead of an event loop: each ``Session``
stream is read by its own thread (admission runs there), its replies are written by the
gRPC handler thread of the stream, and ``workers`` threads each take a batch from a bounded
queue (waiting ``batch_window_ms`` for it to fill), run it and hand every reply to its
stream. No event loop, no executor hand-off, no wake-up of a loop per message.
"""

from __future__ import annotations

import queue
import threading
import time
from collections import deque
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import grpc

from . import wire
from . import wire_pb2 as pb
from .engine import Item, TailEngine
from .server import Backend, ServeConfig, fix_malloc


class ThreadedBackend(Backend):
    """:class:`Backend` on threads: stream readers, a janitor and batch workers."""

    def __init__(self, engine: TailEngine, config: ServeConfig) -> None:
        super().__init__(engine, config)
        self._executor.shutdown(wait=False)  # the workers below run the batches themselves
        self._tq: queue.Queue[Item | None] = queue.Queue(config.max_queue)
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []

    # ------------------------------------------------------------------ lifecycle

    def start_threads(self) -> None:
        fix_malloc()
        warm = getattr(self.engine, "warm", None)
        if warm is not None:
            warm(self.config.max_batch)
        self._threads = [
            threading.Thread(target=self._worker, name=f"slicer-tail-{i}", daemon=True)
            for i in range(self.config.workers)
        ]
        self._threads.append(
            threading.Thread(target=self._janitor_loop, name="slicer-janitor", daemon=True)
        )
        for t in self._threads:
            t.start()
        self.ready = True

    def stop_threads(self) -> None:
        self.ready = False
        self.draining = True
        self._stopping.set()
        for _ in range(self.config.workers):
            try:
                self._tq.put(None, timeout=1.0)
            except queue.Full:
                break
        for t in self._threads:
            t.join(5.0)

    def queue_depth(self) -> int:
        return self._tq.qsize()

    def _enqueue(self, item: Item) -> bool:
        try:
            self._tq.put_nowait(item)
        except queue.Full:
            return False
        return True

    # ------------------------------------------------------------------ RPCs

    def info_sync(self, request: pb.InfoRequest, context: grpc.ServicerContext) -> Any:
        info = self.engine.info(**self.config.caps())
        info.engine = self.engine_name
        return info

    def health_sync(self, request: pb.HealthRequest, context: grpc.ServicerContext) -> Any:
        return pb.HealthReply(
            live=True,
            ready=self.ready and not self.draining,
            sessions=len(self.sessions),
            queue_depth=self.queue_depth(),
        )

    def session_sync(
        self, request_iterator: Iterator[tuple[Any, int]], context: grpc.ServicerContext
    ) -> Iterator[pb.Reply]:
        return self._stream(request_iterator, context, batched=False)

    def session_batched_sync(
        self, request_iterator: Iterator[tuple[Any, int]], context: grpc.ServicerContext
    ) -> Iterator[bytes]:
        return self._stream(request_iterator, context, batched=True)

    def _stream(
        self,
        request_iterator: Iterator[tuple[Any, int]],
        context: grpc.ServicerContext,
        batched: bool,
    ) -> Iterator[Any]:
        if len(self.sessions) >= self.config.max_sessions:
            self.metrics.rejected_sessions.inc()
            context.abort(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"{len(self.sessions)} sessions open (cap {self.config.max_sessions}); "
                "retry after 1000 ms",
            )
        replies: queue.SimpleQueue = queue.SimpleQueue()
        box: dict[str, Any] = {"session": None}

        def terminated() -> None:  # the RPC is over (done, or the client cancelled it)
            session = box["session"]
            if session is not None:
                session.closed = True
            replies.put(None)

        context.add_callback(terminated)
        reader = threading.Thread(
            target=self._read_stream,
            args=(request_iterator, replies, box, self._admit_batch if batched else self._admit),
            name="slicer-stream",
            daemon=True,
        )
        reader.start()
        held: deque = deque()
        try:
            while True:
                reply = held.popleft() if held else replies.get()
                if reply is None:
                    break
                if isinstance(reply, tuple):  # (status, reason): the server ends the stream
                    context.abort(reply[0], reply[1])
                yield self._gather(reply, held, replies) if batched else reply
        finally:
            self._end_session(box["session"])

    # ------------------------------------------------------------------ threads

    def _read_stream(self, request_iterator: Iterator, replies: Any, box: dict, admit: Any) -> None:
        try:
            for parsed, size in request_iterator:
                self._admit_guarded(admit, parsed, size, replies, box)
        except Exception:  # the client vanished mid-message: same as a half-close
            pass
        session = box["session"]
        while session is not None and session.pending and not session.closed:
            time.sleep(0.005)  # stream end = session end, after its replies
        replies.put(None)

    def _janitor_loop(self) -> None:
        last_trim = time.monotonic()
        period = min(1.0, self.config.session_idle_s / 4)
        while not self._stopping.wait(period):
            last_trim = self._sweep(last_trim)

    def _worker(self) -> None:
        q, cap = self._tq, self.config.max_batch
        window = self.config.batch_window_ms / 1e3
        while True:
            first = q.get()
            if first is None:
                return
            if window and q.qsize() < cap - 1:
                time.sleep(window)
            batch = [first]
            stop = False
            while len(batch) < cap:
                try:
                    it = q.get_nowait()
                except queue.Empty:
                    break
                if it is None:
                    stop = True
                    break
                batch.append(it)
            live = self._skip_closed(batch)
            if live:
                start = time.perf_counter()
                try:
                    outcomes = self.engine.run_batch(live)
                except Exception as exc:  # an engine bug: every member learns it
                    outcomes = self._failed(live, exc)
                self._account(live, outcomes, start)
            if stop:
                return


def _handlers(backend: ThreadedBackend) -> grpc.GenericRpcHandler:
    from .server import SERVICE, _deserialize, _deserialize_batch, _identity

    return grpc.method_handlers_generic_handler(
        SERVICE,
        {
            "Session": grpc.stream_stream_rpc_method_handler(
                backend.session_sync,
                request_deserializer=_deserialize,
                response_serializer=pb.Reply.SerializeToString,
            ),
            "SessionBatched": grpc.stream_stream_rpc_method_handler(
                backend.session_batched_sync,
                request_deserializer=_deserialize_batch,
                response_serializer=_identity,
            ),
            "Info": grpc.unary_unary_rpc_method_handler(
                backend.info_sync,
                request_deserializer=pb.InfoRequest.FromString,
                response_serializer=pb.ServerInfo.SerializeToString,
            ),
            "Health": grpc.unary_unary_rpc_method_handler(
                backend.health_sync,
                request_deserializer=pb.HealthRequest.FromString,
                response_serializer=pb.HealthReply.SerializeToString,
            ),
        },
    )


class ThreadedServer:
    """A started threaded gRPC server; ``stop`` drains and stops it (any thread)."""

    def __init__(self, backend: ThreadedBackend) -> None:
        config = backend.config
        self.backend = backend
        # one pool thread per open stream (its reply writer) plus room for Info / Health
        self._pool = ThreadPoolExecutor(config.max_sessions + 8, thread_name_prefix="slicer-grpc")
        self.server = grpc.server(
            self._pool,
            handlers=(_handlers(backend),),
            options=wire.channel_options(config.max_request_bytes, config.max_reply_bytes)
            + [("grpc.so_reuseport", 0)],
            maximum_concurrent_rpcs=config.max_sessions + 8,
        )
        self.port = self.server.add_insecure_port(f"{config.host}:{config.port}")
        if self.port == 0:
            raise OSError(f"cannot bind {config.host}:{config.port}")

    def start(self) -> None:
        self.backend.start_threads()
        self.server.start()

    def stop(self, grace: float = 1.0) -> None:
        self.backend.draining = True
        self.server.stop(grace).wait(grace + 5)
        self.backend.stop_threads()
        self._pool.shutdown(wait=False, cancel_futures=True)
