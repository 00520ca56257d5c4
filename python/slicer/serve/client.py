"""``slicer.serve.EdgeClient``: the edge side — head locally, encode, stream, await replies.

One client holds one session (one gRPC bidi stream). Requests may be pipelined
(:meth:`EdgeClient.submit` returns a future); :meth:`EdgeClient.infer` is the blocking form.
When the stream breaks (server restart, network), the client reconnects with exponential
backoff and re-sends every unanswered request on the new stream; a reply is delivered at most
once (a duplicate is counted and dropped). ``RESOURCE_EXHAUSTED`` replies are retried after
the server's hint; every request has a deadline.
"""

from __future__ import annotations

import itertools
import os
import queue
import random
import threading
import time
import uuid
from collections import deque
from collections.abc import Mapping
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

import grpc
import numpy as np

from . import wire
from . import wire_pb2 as pb
from .server import SERVICE

KINDS = {
    "outputs": pb.OUTPUTS,
    "logits": pb.LOGITS,
    "top_k": pb.TOP_K,
    "token": pb.TOKEN,
    "embedding": pb.EMBEDDING,
}


class ServeError(Exception):
    """A request the server answered with a non-OK status (or that could not be delivered)."""

    def __init__(self, code: int, message: str, retry_after_ms: int = 0) -> None:
        super().__init__(f"{wire.CODE_NAMES.get(code, code)}: {message}")
        self.code = code
        self.message = message
        self.retry_after_ms = retry_after_ms


class DeadlineExceeded(ServeError, TimeoutError):
    """No reply within the request's deadline."""

    def __init__(self, message: str) -> None:
        super().__init__(wire.DEADLINE_EXCEEDED, message)


@dataclass
class Result:
    """A reply, decoded: outputs by name (OUTPUTS / LOGITS / EMBEDDING) or top-k ids/values."""

    seq: int
    kind: int
    outputs: dict[str, np.ndarray]
    top_k_ids: list[int]
    top_k_values: list[float]
    server_id: str
    latency_s: float
    timing: dict[str, int] = field(default_factory=dict)
    request_bytes: int = 0
    llm_message: bytes = b""  # LLM servers: the token message

    @property
    def token(self) -> int:
        return self.top_k_ids[0]


@dataclass
class _Pending:
    seq: int
    tensors: list[pb.Tensor]
    kind: int
    top_k: int
    deadline: float
    future: Future
    sent: float = 0.0
    size: int = 0
    llm_message: bytes = b""


@dataclass
class ClientStats:
    sent: int = 0
    replies: int = 0
    duplicates: int = 0
    late: int = 0
    retries: int = 0
    reconnects: int = 0
    messages_sent: int = 0  # gRPC messages written (a RequestBatch counts once)
    messages_received: int = 0


class EdgeClient:
    """A session with a SLICER back-end.

    ``target``: ``host:port``. ``model``: the ONNX model (path, ModelProto or shipped name)
    whose head runs here; needed for :meth:`infer`, not for :meth:`send`. ``params``: codec
    settings (``None``: cut tensors go raw). ``transforms``: the cut's calibrated transforms
    ({tensor name: CutTransform}, e.g. ``slicer.split.settings.transforms_for_cut``), applied
    before encoding; with ``params`` they must be the ones the server inverts
    (``ServerInfo.transform_fingerprint``), else the client refuses at connect.
    ``deadline_s``: per-request default.
    ``batch_messages``: send on ``SessionBatched`` (when the server serves it): the requests
    queued when the stream is written go in one message, and the replies ready together come
    in one (:meth:`submit_many` queues several at once); the same session rules otherwise.
    """

    def __init__(
        self,
        target: str,
        model: Any = None,
        *,
        params: Any = "default",
        transforms: Mapping[str, Any] | None = None,
        session_id: str | None = None,
        deadline_s: float = 30.0,
        connect_timeout_s: float = 30.0,
        reconnect_tries: int = 8,
        backoff_s: tuple[float, float] = (0.05, 2.0),
        max_request_bytes: int = wire.MAX_REQUEST_BYTES,
        providers: Any = ("CPUExecutionProvider",),
        threads: int = 1,
        batch_messages: bool = False,
    ) -> None:
        if not isinstance(target, str) or ":" not in target:
            raise ValueError(f"target must be 'host:port', got {target!r}")
        if deadline_s <= 0:
            raise ValueError(f"deadline_s must be > 0, got {deadline_s}")
        if reconnect_tries < 0:
            raise ValueError(f"reconnect_tries must be >= 0, got {reconnect_tries}")
        self.target = target
        self.session_id = session_id or f"edge-{os.getpid()}-{uuid.uuid4().hex[:12]}"
        if not wire.SESSION_ID.match(self.session_id):
            raise ValueError(f"session_id must be 1-64 chars of [A-Za-z0-9._-]: {session_id!r}")
        self.deadline_s = float(deadline_s)
        self.reconnect_tries = reconnect_tries
        self.backoff_s = backoff_s
        self.max_request_bytes = max_request_bytes
        self.stats = ClientStats()
        self._channel = grpc.insecure_channel(
            target, options=wire.channel_options(max_request_bytes, wire.MAX_REPLY_BYTES)
        )
        self._session_rpc = self._channel.stream_stream(
            f"/{SERVICE}/Session",
            request_serializer=pb.Request.SerializeToString,
            response_deserializer=pb.Reply.FromString,
        )
        self._batched_rpc = self._channel.stream_stream(
            f"/{SERVICE}/SessionBatched",
            request_serializer=_identity,
            response_deserializer=pb.ReplyBatch.FromString,
        )
        info_rpc = self._channel.unary_unary(
            f"/{SERVICE}/Info",
            request_serializer=pb.InfoRequest.SerializeToString,
            response_deserializer=pb.ServerInfo.FromString,
        )
        self.info: pb.ServerInfo = info_rpc(
            pb.InfoRequest(), timeout=connect_timeout_s, wait_for_ready=True
        )
        if self.info.wire_version != wire.WIRE_VERSION:
            raise ServeError(
                wire.FAILED_PRECONDITION,
                f"server speaks wire version {self.info.wire_version}, this client "
                f"{wire.WIRE_VERSION}",
            )
        # several requests per message only with a server that serves SessionBatched
        self.batch_messages = bool(batch_messages) and self.info.max_requests_per_message > 0
        from ..split.transport import CodecParams

        self.params = CodecParams() if params == "default" else params
        self.transforms = dict(transforms or {})
        mine = wire.transform_fingerprint(self.transforms)
        if self.params is not None and mine != self.info.transform_fingerprint:
            self._channel.close()
            raise ServeError(
                wire.FAILED_PRECONDITION,
                f"the server inverts transforms {self.info.transform_fingerprint[:80] or 'none'!r}"
                f", this client applies {mine[:80] or 'none'!r}: give the client the server's "
                "settings (slicer client --settings) or send raw",
            )
        self._head = None
        if model is not None:
            self._load_head(model, providers, threads)
        self._seq = itertools.count(1)
        self._lock = threading.Lock()
        # Seq assignment and the put on the send queue happen together, so the stream carries
        # seqs in increasing order even when callers and retry timers dispatch at once.
        self._send_lock = threading.Lock()
        self._pending: dict[int, _Pending] = {}
        self._done: set[int] = set()
        self._outq: queue.Queue | None = None
        self._generation = 0
        self._closed = False

    # ------------------------------------------------------------------ head

    def _load_head(self, model: Any, providers: Any, threads: int) -> None:
        from ..split.graph import Partitioner
        from ..split.providers import make_session, resolve_providers

        if isinstance(model, str) and not os.path.exists(model):
            from ..split import zoo

            if model in zoo.ZOO:
                model = zoo.model_path(model)
        part = model if isinstance(model, Partitioner) else Partitioner(model)
        fp = wire.model_fingerprint(part.model.SerializeToString(), self.info.cut_name)
        if fp != self.info.model_fingerprint:
            raise ValueError(
                f"model does not match the server's (fingerprint {fp} vs "
                f"{self.info.model_fingerprint}, cut {self.info.cut_name!r})"
            )
        self.partitioner = part
        if self.info.cut_id >= 0:
            cut = part.find_cut(self.info.cut_name)
            head, _ = part.extract(cut)
            self._head = make_session(
                head, resolve_providers(providers), threads, part.external_dir
            )
        self._input_names = list(part.input_names)

    def prepare(self, inputs: Mapping[str, np.ndarray]) -> list[pb.Tensor]:
        """Run the head on ``inputs`` and encode the cut tensors: the request's tensors."""
        if not hasattr(self, "partitioner"):
            raise ValueError("this client was made without a model: use send() with tensors")
        if self.info.cut_id < 0:  # cloud-only: the model inputs travel raw
            return wire.pack_tensors({}, {n: np.asarray(inputs[n]) for n in self._input_names})
        from ..split.transport import encode_values

        assert self._head is not None
        feeds = {i.name: inputs[i.name] for i in self._head.get_inputs()}
        names = [o.name for o in self._head.get_outputs()]
        values = dict(zip(names, self._head.run(names, feeds), strict=True))
        for name in self.info.tensor_names:  # cut tensors that are graph inputs
            if name not in values:
                values[name] = np.asarray(inputs[name])
        values = {n: values[n] for n in self.info.tensor_names}
        packet = encode_values(values, self.params, self.transforms)
        side = packet.side if self.info.side_tensors else {}  # older servers: side tensors raw
        return wire.pack_tensors(packet.streams, packet.raw, side)

    # ------------------------------------------------------------------ requests

    def infer(
        self,
        inputs: Mapping[str, np.ndarray],
        *,
        reply: str = "outputs",
        top_k: int = 5,
        deadline_s: float | None = None,
    ) -> Result:
        """Head → codec → server → reply, blocking."""
        return self.submit(
            self.prepare(inputs), reply=reply, top_k=top_k, deadline_s=deadline_s
        ).result()

    def send(
        self,
        streams: Mapping[str, bytes] | None = None,
        raw: Mapping[str, np.ndarray] | None = None,
        **kwargs: Any,
    ) -> Result:
        """Send already-encoded cut tensors, blocking (streams of transformed tensors: already
        coefficients of ``self.transforms``)."""
        tensors = wire.pack_tensors(streams or {}, raw or {})
        return self.submit(tensors, **kwargs).result()

    def send_llm(self, message: bytes, *, deadline_s: float | None = None) -> bytes:
        """One ``slicer.llm`` rows message (prefill / handover / decode step) to an LLM server;
        returns its token message (``slicer.llm.EdgeSession.receive`` takes it)."""
        if not isinstance(message, (bytes, bytearray, memoryview)) or not len(message):
            raise TypeError("message must be non-empty bytes (a slicer.llm rows message)")
        if self.info.kind != "llm":
            raise ValueError("this server serves a cut's tensors, not LLM sessions")
        return (
            self.submit([], llm_message=bytes(message), deadline_s=deadline_s).result().llm_message
        )

    def submit(
        self,
        tensors: list[pb.Tensor],
        *,
        reply: str = "outputs",
        top_k: int = 5,
        deadline_s: float | None = None,
        llm_message: bytes = b"",
    ) -> _ResultFuture:
        """Queue one request; returns a future whose ``result()`` waits up to the deadline."""
        if self._closed:
            raise ValueError("the client is closed")
        if reply not in KINDS:
            raise ValueError(f"reply must be one of {sorted(KINDS)}, got {reply!r}")
        deadline = time.monotonic() + (self.deadline_s if deadline_s is None else deadline_s)
        p = _Pending(0, list(tensors), KINDS[reply], int(top_k), deadline, Future())
        p.llm_message = llm_message
        self._dispatch(p)
        return _ResultFuture(self, p)

    def submit_many(
        self,
        requests: list[list[pb.Tensor]],
        *,
        reply: str = "outputs",
        top_k: int = 5,
        deadline_s: float | None = None,
    ) -> list[_ResultFuture]:
        """Queue several requests at once (one future each). With ``batch_messages`` they
        travel together in as few RequestBatch messages as the caps allow; otherwise as
        ``submit`` one after another."""
        if self._closed:
            raise ValueError("the client is closed")
        if reply not in KINDS:
            raise ValueError(f"reply must be one of {sorted(KINDS)}, got {reply!r}")
        if not isinstance(requests, (list, tuple)):
            raise TypeError(
                f"requests must be a list of tensor lists, got {type(requests).__name__}"
            )
        deadline = time.monotonic() + (self.deadline_s if deadline_s is None else deadline_s)
        pending = [
            _Pending(0, list(tensors), KINDS[reply], int(top_k), deadline, Future())
            for tensors in requests
        ]
        self._dispatch_all(pending)
        return [_ResultFuture(self, p) for p in pending]

    def _dispatch(self, p: _Pending) -> None:
        self._dispatch_all([p])

    def _dispatch_all(self, pending: list[_Pending]) -> None:
        if not pending:
            return
        with self._send_lock:
            self._dispatch_locked(pending)

    def _dispatch_locked(self, pending: list[_Pending]) -> None:
        with self._lock:
            for p in pending:
                p.seq = next(self._seq)
                self._pending[p.seq] = p
            if self._outq is None:
                self._open_locked()
            outq = self._outq
        frame = 6 if self.batch_messages else 0  # a batch element's tag and length
        ready = []
        for p in pending:
            req = self._request(p)
            p.size = req.ByteSize()
            if p.size + frame > self.max_request_bytes:
                with self._lock:
                    self._pending.pop(p.seq, None)
                p.future.set_exception(
                    ValueError(
                        f"request of {p.size} bytes exceeds the cap of {self.max_request_bytes}"
                    )
                )
                continue
            p.sent = time.perf_counter()
            ready.append(req)
        with self._lock:  # callers, retry timers and the reconnecting reader all send
            self.stats.sent += len(ready)
        assert outq is not None
        if ready:
            outq.put(ready)

    def _request(self, p: _Pending) -> pb.Request:
        return pb.Request(
            wire_version=wire.WIRE_VERSION,
            model_fingerprint=self.info.model_fingerprint,
            cut_id=self.info.cut_id,
            session_id=self.session_id,
            seq=p.seq,
            tensors=p.tensors,
            reply_kind=p.kind,
            top_k=p.top_k,
            llm_message=p.llm_message,
            transform_fingerprint=wire.request_transform(p.tensors, self.transforms),
        )

    # ------------------------------------------------------------------ the stream

    def _open_locked(self) -> None:
        self._generation += 1
        outq: queue.Queue = queue.Queue()
        self._outq = outq
        batched, budget = self.batch_messages, self.max_request_bytes
        cap = max(1, min(wire.MAX_REQUESTS_PER_MESSAGE, self.info.max_requests_per_message or 1))

        def requests():  # noqa: ANN202 - grpc request iterator
            buf: deque = deque()  # requests taken from the queue, not sent yet
            closing = False
            while True:
                if not buf:
                    item = None if closing else outq.get()
                    if item is None:
                        return
                    buf.extend(item)
                if not batched:
                    self.stats.messages_sent += 1
                    yield buf.popleft()
                    continue
                while not closing:  # everything queued by now goes in this message
                    try:
                        item = outq.get_nowait()
                    except queue.Empty:
                        break
                    if item is None:
                        closing = True
                    else:
                        buf.extend(item)
                parts: list[bytes] = []
                size = 0
                while buf and len(parts) < cap:
                    part = wire.batch_element(buf[0].SerializeToString())
                    if parts and size + len(part) > budget:
                        break
                    buf.popleft()
                    parts.append(part)
                    size += len(part)
                self.stats.messages_sent += 1
                yield b"".join(parts)

        call = (self._batched_rpc if batched else self._session_rpc)(requests())
        threading.Thread(
            target=self._read, args=(call, outq, self._generation), daemon=True, name="slicer-edge"
        ).start()

    def _read(self, call: Any, outq: queue.Queue, generation: int) -> None:
        error: grpc.RpcError | None = None
        try:
            if self.batch_messages:
                for batch in call:
                    self.stats.messages_received += 1
                    for reply in batch.replies:
                        self._on_reply(reply)
            else:
                for reply in call:
                    self.stats.messages_received += 1
                    self._on_reply(reply)
        except grpc.RpcError as exc:
            error = exc
        with self._lock:
            if generation != self._generation:
                return
            self._outq = None
            pending = sorted(self._pending.values(), key=lambda p: p.seq)
        outq.put(None)
        if self._closed or not pending:
            return
        self._reconnect(pending, error)

    def _reconnect(self, pending: list[_Pending], error: grpc.RpcError | None) -> None:
        base, cap = self.backoff_s
        for attempt in range(self.reconnect_tries):
            delay = min(cap, base * 2**attempt) * (0.5 + random.random() / 2)
            time.sleep(delay)
            if self._closed:
                return
            ready = grpc.channel_ready_future(self._channel)
            try:
                ready.result(timeout=max(0.1, cap))
            except grpc.FutureTimeoutError:
                ready.cancel()  # stops its connectivity polling (it outlived close() otherwise)
                continue
            self.stats.reconnects += 1
            with self._lock:
                for p in pending:
                    self._pending.pop(p.seq, None)
            for p in pending:  # new seqs on the new stream, oldest first
                if not p.future.done():
                    self._dispatch(p)
            return
        why = error.details() if error is not None else "stream ended"
        code = wire.UNAVAILABLE
        if error is not None and error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED:
            code = wire.RESOURCE_EXHAUSTED  # e.g. the server's session cap
        for p in pending:
            with self._lock:
                self._pending.pop(p.seq, None)
            if not p.future.done():
                p.future.set_exception(
                    ServeError(code, f"stream ended and reconnecting failed: {why}")
                )

    def _on_reply(self, reply: pb.Reply) -> None:
        with self._lock:
            p = self._pending.pop(reply.seq, None)
            if p is None:
                if reply.seq in self._done:
                    self.stats.duplicates += 1
                else:
                    self.stats.late += 1
                return
            self._done.add(reply.seq)
            if len(self._done) > 1 << 16:  # seqs only grow: forget the oldest half
                floor = reply.seq - (1 << 15)
                self._done = {s for s in self._done if s > floor}
        self.stats.replies += 1
        wait = max(0.001, reply.retry_after_ms / 1e3)
        if reply.code == wire.RESOURCE_EXHAUSTED and time.monotonic() + wait < p.deadline:
            self.stats.retries += 1  # after the server's hint; past the deadline: the error
            threading.Timer(wait, self._dispatch, args=(p,)).start()
            return
        if p.future.done():
            return
        if reply.code != wire.OK:
            p.future.set_exception(ServeError(reply.code, reply.message, reply.retry_after_ms))
            return
        try:
            outputs = wire.reply_outputs(reply)
        except wire.WireError as exc:
            p.future.set_exception(ServeError(wire.INTERNAL, f"malformed reply: {exc}"))
            return
        p.future.set_result(
            Result(
                seq=reply.seq,
                kind=reply.kind,
                outputs=outputs,
                top_k_ids=list(reply.top_k_ids),
                top_k_values=list(reply.top_k_values),
                server_id=reply.server_id,
                latency_s=time.perf_counter() - p.sent,
                timing={
                    "queue_us": reply.timing.queue_us,
                    "decode_us": reply.timing.decode_us,
                    "compute_us": reply.timing.compute_us,
                    "batch_size": reply.timing.batch_size,
                },
                request_bytes=p.size,
                llm_message=reply.llm_message,
            )
        )

    # ------------------------------------------------------------------ end

    def close(self) -> None:
        """Half-close the stream (the server ends the session) and the channel."""
        if self._closed:
            return
        self._closed = True
        with self._lock:
            outq, self._outq = self._outq, None
            self._generation += 1
        if outq is not None:
            outq.put(None)
        self._channel.close()

    def __enter__(self) -> EdgeClient:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _identity(data: bytes) -> bytes:
    return data


class _ResultFuture:
    """A request in flight; ``result()`` raises DeadlineExceeded past its deadline."""

    def __init__(self, client: EdgeClient, pending: _Pending) -> None:
        self._client = client
        self._p = pending

    def done(self) -> bool:
        return self._p.future.done()

    def result(self) -> Result:
        p = self._p
        remaining = p.deadline - time.monotonic()
        try:
            return p.future.result(timeout=max(0.0, remaining))
        except TimeoutError:
            with self._client._lock:
                self._client._pending.pop(p.seq, None)
            raise DeadlineExceeded(f"no reply within the deadline (request seq {p.seq})") from None
