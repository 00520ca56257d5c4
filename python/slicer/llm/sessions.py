"""Edge and server sessions of autoregressive split decoding.

The edge (device) holds the tokenizer, the head graph (embedding + layers 0..ℓ-1) with its KV
cache, the row codec and, optionally, a full device model that generates the first w tokens on
its own. The server holds the tail graph (layers ℓ..L-1 + LM head) with its KV cache and picks
the next token. One message per step crosses each way (see :mod:`slicer.llm.messages`):

    w = 0:  prefill (all prompt rows)      → token 0, then decode steps (one row) → token k
    w > 0:  device generates tokens 0..w-1 with its full model, then
            handover (prompt + w rows)      → token w, then decode steps

The paper's Eq. 5 counts steps from 1: its "first w − 1 full passes" are our w local tokens.

Both sessions take ``transform=`` (None, ``"auto"``, a :class:`~slicer.split.transform.CutTransform`
or its file; :mod:`slicer.llm.klt`): rows then cross the link as the codec's payload of their
KLT coefficients, and every message is bound to the transform (a server with another transform,
or none, refuses it). Both sides must hold the same one.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import export, klt
from .messages import (
    CODEC_FRAMES,
    CODEC_TOKEN,
    DECODE,
    HANDOVER,
    PREFILL,
    TOKEN,
    FrameStream,
    Message,
    MessageError,
    ProtocolError,
    RowCodec,
    codec_for_id,
    make_codec,
    model_tag,
    parse,
)


def _binding(info: export.ModelInfo, transform: Any) -> tuple[int, int | None]:
    """(model field of this session's messages, transform tag or None)."""
    tag = None if transform is None else klt.transform_tag(transform)
    return model_tag(info.fingerprint, tag), tag


def _empty_kv(info: export.ModelInfo, layers: range) -> dict[str, np.ndarray]:
    shape = (1, info.kv_heads, 0, info.head_dim)
    return {f"past_{k}_{i}": np.zeros(shape, np.float32) for i in layers for k in ("key", "value")}


class _Stack:
    """One ONNX graph plus the KV cache of its layers."""

    def __init__(self, path, info: export.ModelInfo, layers: range, threads: int) -> None:  # noqa: ANN001
        self.session = export.ort_session(path, threads)
        self.info = info
        self.layers = layers
        self.input_name = self.session.get_inputs()[0].name
        self.reset()

    def reset(self) -> None:
        self.kv = _empty_kv(self.info, self.layers)
        self.length = 0

    def run(self, x: np.ndarray, position: int) -> np.ndarray:
        rows = x.shape[1]
        pos = np.arange(position, position + rows, dtype=np.int64)[None]
        outs = self.session.run(None, {self.input_name: x, "position_ids": pos, **self.kv})
        names = [f"past_{k}_{i}" for i in self.layers for k in ("key", "value")]
        self.kv = dict(zip(names, outs[1:], strict=True))
        self.length = position + rows
        return outs[0]

    def kv_bytes(self) -> int:
        return sum(a.nbytes for a in self.kv.values())


@dataclass
class StepStats:
    """What one generated token cost."""

    step: int
    kind: str  # "local", "prefill", "handover", "decode"
    rows: int
    bytes_up: int
    bytes_down: int
    payload_bytes: int
    bits_per_element: float
    device_ms: float
    codec_ms: float
    server_ms: float
    link_ms: float = 0.0

    def to_json(self) -> dict:
        return dict(self.__dict__)


class EdgeSession:
    """The device side: head graph + KV, codec, optional full device model for w local steps.

    device_model: None (no local steps), "fp32" (the full model as exported) or "int8" (ORT
    dynamic int8 weights, down_proj kept fp32).
    """

    def __init__(
        self,
        model: str = "smollm2",
        cut: int = 15,
        codec: RowCodec | str | None = None,
        *,
        session_id: int = 1,
        device_model: str | None = None,
        threads: int = 1,
        transform: Any = None,
    ) -> None:
        self.info = export.model_info(model)
        self.model = model
        self.cut = export.check_cut(self.info, cut)
        self.transform = klt.resolve(transform, model, self.cut)
        self.model_field, self.transform_tag = _binding(self.info, self.transform)
        if isinstance(session_id, bool) or not isinstance(session_id, int):
            raise TypeError(f"session_id must be an int, got {type(session_id).__name__}")
        if not 0 <= session_id < 2**32:
            raise ValueError(f"session_id must be in 0..2**32-1, got {session_id}")
        self.session_id = session_id
        self.codec = make_codec(codec)
        self.head = _Stack(export.graph_path(model, "head", cut), self.info, range(cut), threads)
        self.full: _Stack | None = None
        if device_model is not None:
            if device_model == "fp32":
                path = export.graph_path(model, "full")
            elif device_model == "int8":
                path = export.int8_graph_path(model)
            else:
                raise ValueError(
                    f"device_model must be None, 'fp32' or 'int8', got {device_model!r}"
                )
            self.full = _Stack(path, self.info, range(self.info.layers), threads)
        self.tokens: list[int] = []
        self.prompt_len = 0
        self.step = 0  # index of the next token to generate
        self.offloaded = False
        self.last_local_logits: np.ndarray | None = None
        self.last_device_ms = 0.0
        self.last_codec_ms = 0.0
        self.last_payload_bytes = 0
        self.last_hidden: np.ndarray | None = None  # the rows of the last message, uncoded

    # -- state ------------------------------------------------------------------------------
    def start(self, prompt_ids: Any) -> None:
        ids = [int(t) for t in np.asarray(prompt_ids, dtype=np.int64).reshape(-1)]
        if not ids:
            raise ValueError("prompt_ids must hold at least one token")
        if any(t < 0 or t >= self.info.vocab for t in ids):
            raise ValueError(f"prompt_ids must be token ids in 0..{self.info.vocab - 1}")
        self.tokens = ids
        self.prompt_len = len(ids)
        self.step = 0
        self.offloaded = False
        self.head.reset()
        if self.full is not None:
            self.full.reset()

    def local_step(self) -> int:
        """Generate the next token on the device with the full device model (greedy)."""
        if self.full is None:
            raise ValueError("local steps need a device model (device_model='fp32' or 'int8')")
        if self.offloaded:
            raise ValueError("the session was handed over to the server; no more local steps")
        self._need_started()
        began = time.perf_counter()
        new = np.asarray(self.tokens[self.full.length :], dtype=np.int64)[None]
        logits = self.full.run(new, self.full.length)
        self.last_device_ms = 1e3 * (time.perf_counter() - began)
        self.last_local_logits = logits[0, -1]
        token = int(np.argmax(logits[0, -1]))
        self.tokens.append(token)
        self.step += 1
        return token

    def offload(self) -> bytes:
        """The prefill (step 0) or handover (step w > 0) message: every row the server lacks."""
        self._need_started()
        if self.offloaded:
            raise ValueError("the session is already offloaded; send decode steps")
        kind = HANDOVER if self.step > 0 else PREFILL
        self.full = None  # the device model's KV is no longer needed
        self.head.reset()
        self.offloaded = True
        return self._rows_message(kind, np.asarray(self.tokens, dtype=np.int64)[None], 0)

    def decode_message(self) -> bytes:
        """The decode-step message: the head's row for the last token received."""
        if not self.offloaded:
            raise ValueError("offload() first: the server has not seen the prompt")
        if self.head.length != len(self.tokens) - 1:
            raise ValueError("receive the server's token before the next decode step")
        last = np.asarray(self.tokens[-1:], dtype=np.int64)[None]
        return self._rows_message(DECODE, last, self.head.length)

    def receive(self, reply: Any, *, force: int | None = None) -> int:
        """Take the server's token message; returns the token (``force`` replaces it, for
        teacher-forced evaluation). A reply that does not fit leaves the session unchanged."""
        msg = parse(reply)
        if msg.kind != TOKEN:
            raise ProtocolError(f"expected a token message, got {msg.kind_name}")
        self._check_binding(msg)
        if msg.step != self.step:
            raise ProtocolError(f"token message for step {msg.step}, the edge is at {self.step}")
        if msg.position != len(self.tokens) or len(msg.payload) != 4:
            raise ProtocolError(
                f"token message at position {msg.position}, the edge has {len(self.tokens)} tokens"
            )
        token = int(np.frombuffer(msg.payload, "<u4")[0])
        if token >= self.info.vocab:
            raise MessageError(f"token id {token} is outside the vocabulary")
        if force is not None:
            token = int(force)
        self.tokens.append(token)
        self.step += 1
        return token

    # -- helpers ----------------------------------------------------------------------------
    def _need_started(self) -> None:
        if not self.tokens:
            raise ValueError("start(prompt_ids) first")

    def _check_binding(self, msg: Message) -> None:
        if msg.session != self.session_id:
            raise ProtocolError(f"message for session {msg.session}, this is {self.session_id}")
        if msg.model != self.model_field or msg.cut != self.cut:
            raise ProtocolError("message for another model, transform or cut")

    def _rows_message(self, kind: int, ids: np.ndarray, position: int) -> bytes:
        began = time.perf_counter()
        hidden = self.head.run(ids, position)
        self.last_hidden = hidden
        rows = hidden[0] if self.transform is None else self.transform.forward(hidden[0])
        mid = time.perf_counter()
        payload = self.codec.encode(rows, first=kind != DECODE)
        msg = Message(
            kind=kind,
            codec=self.codec.codec_id,
            cut=self.cut,
            rows=ids.shape[1],
            session=self.session_id,
            step=self.step,
            position=position,
            model=self.model_field,
            payload=payload,
            transform=self.transform is not None,
        ).to_bytes()
        end = time.perf_counter()
        self.last_device_ms = 1e3 * (mid - began)
        self.last_codec_ms = 1e3 * (end - mid)
        self.last_payload_bytes = len(payload)
        return msg


class ServerSession:
    """The server side: tail graph + KV cache; answers each rows message with a token.

    temperature = 0 picks the argmax; otherwise samples from softmax(logits / temperature),
    restricted to the ``top_k`` most likely tokens when given, with a seeded generator.
    """

    def __init__(
        self,
        model: str = "smollm2",
        cut: int = 15,
        *,
        session_id: int = 1,
        threads: int = 1,
        temperature: float = 0.0,
        top_k: int | None = None,
        seed: int = 0,
        transform: Any = None,
    ) -> None:
        self.info = export.model_info(model)
        self.cut = export.check_cut(self.info, cut)
        self.session_id = session_id
        self.transform = klt.resolve(transform, model, self.cut)
        self.model_field, self.transform_tag = _binding(self.info, self.transform)
        if not temperature >= 0:
            raise ValueError(f"temperature must be >= 0, got {temperature}")
        if top_k is not None and (
            isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1
        ):
            raise ValueError(f"top_k must be a positive int or None, got {top_k!r}")
        self.temperature = float(temperature)
        self.top_k = top_k
        self.rng = np.random.default_rng(seed)
        self.tail = _Stack(
            export.graph_path(model, "tail", cut), self.info, range(cut, self.info.layers), threads
        )
        self.next_step: int | None = None  # None: waiting for prefill / handover
        self.frames: FrameStream | None = None  # the frame context of a frames session
        self.last_logits: np.ndarray | None = None  # logits of every row of the last message
        self.last_decode_ms = 0.0
        self.last_tail_ms = 0.0

    @property
    def cache_length(self) -> int:
        return self.tail.length

    def handle(self, data: Any) -> bytes:
        """Check a rows message against the session, run the tail, reply with the token."""
        msg = parse(data)
        if msg.session != self.session_id:
            raise ProtocolError(f"message for session {msg.session}, this is {self.session_id}")
        self._check_model(msg)
        if msg.cut != self.cut:
            raise ProtocolError(
                f"message cut at layer {msg.cut}, this server's tail starts at {self.cut}"
            )
        if msg.kind == TOKEN:
            raise ProtocolError("a server does not take token messages")
        if self.next_step is None:
            if msg.kind == DECODE:
                raise ProtocolError("decode step before prefill / handover")
            if msg.kind == PREFILL and msg.step != 0:
                raise ProtocolError(f"a prefill produces token 0, this one claims step {msg.step}")
            if msg.kind == HANDOVER and msg.step == 0:
                raise ProtocolError("a handover comes after at least one local step (step > 0)")
        else:
            if msg.kind != DECODE:
                raise ProtocolError(f"{msg.kind_name} after the session started; expected decode")
            if msg.step != self.next_step:
                raise ProtocolError(
                    f"decode step {msg.step} out of order; expected {self.next_step}"
                )
        if msg.position != self.tail.length:
            raise ProtocolError(
                f"rows start at position {msg.position}, the server cache holds {self.tail.length}"
            )
        began = time.perf_counter()
        frames = self.frames
        if msg.codec == CODEC_FRAMES:
            if msg.kind != DECODE:  # the first message brings a new context
                frames, hidden = FrameStream.open(msg.payload, msg.rows, self.info.hidden)
            elif frames is None:
                raise ProtocolError(
                    "a frames decode step needs the frame context of this session's prefill / "
                    "handover, and the session was started without one"
                )
            else:
                hidden = frames.decode(msg.payload, msg.rows)
        else:
            hidden = codec_for_id(msg.codec).decode(msg.payload, msg.rows, self.info.hidden)
            if msg.kind != DECODE:
                frames = None
        if self.transform is not None and np.isfinite(hidden).all():
            hidden = self.transform.inverse(hidden[0])[None]
        if not np.isfinite(hidden).all():
            if msg.codec == CODEC_FRAMES and msg.kind == DECODE:
                frames.rewind(msg.rows)
            raise MessageError("payload decodes to non-finite values")
        self.frames = frames
        mid = time.perf_counter()
        logits = self.tail.run(hidden, msg.position)  # state changes only from here on
        end = time.perf_counter()
        self.last_decode_ms = 1e3 * (mid - began)
        self.last_tail_ms = 1e3 * (end - mid)
        self.last_logits = logits[0]
        token = self._pick(logits[0, -1])
        self.next_step = msg.step + 1
        return Message(
            kind=TOKEN,
            codec=CODEC_TOKEN,
            cut=self.cut,
            rows=1,
            session=self.session_id,
            step=msg.step,
            position=msg.position + msg.rows,
            model=self.model_field,
            payload=np.asarray([token], "<u4").tobytes(),
        ).to_bytes()

    def _check_model(self, msg: Message) -> None:
        if msg.kind == TOKEN:
            return  # refused below; token messages carry no transform flag
        plain = model_tag(self.info.fingerprint)
        if self.transform is None:
            if msg.transform:
                raise ProtocolError(
                    f"message rows are coded in a transform basis (tag {msg.model ^ plain:08x} "
                    "if the model matches), and this server session holds no transform"
                )
            if msg.model != plain:
                raise ProtocolError("message for another model (fingerprint differs)")
            return
        if not msg.transform:
            raise ProtocolError(
                f"message rows are not coded in a transform basis, and this server session "
                f"expects transform {self.transform_tag:08x}"
                + ("" if msg.model == plain else " (and the model fingerprint differs)")
            )
        if msg.model != self.model_field:
            raise ProtocolError(
                f"message coded with another transform (tag {msg.model ^ plain:08x} if the model "
                f"matches) than this server session's {self.transform_tag:08x}, or for another "
                "model"
            )

    def _pick(self, logits: np.ndarray) -> int:
        if self.temperature == 0:
            return int(np.argmax(logits))
        z = logits.astype(np.float64) / self.temperature
        if self.top_k is not None and self.top_k < z.size:
            cut = np.partition(z, -self.top_k)[-self.top_k]
            z = np.where(z >= cut, z, -np.inf)
        p = np.exp(z - z.max())
        p /= p.sum()
        return int(self.rng.choice(z.size, p=p))


@dataclass
class Generation:
    tokens: list[int]  # generated tokens only
    prompt_ids: list[int]
    steps: list[StepStats] = field(default_factory=list)


def reference_greedy(model: str, prompt_ids: Any, max_new: int, threads: int = 1) -> list[int]:
    """Greedy tokens of the un-split model (the full graph), for comparison."""
    info = export.model_info(model)
    full = _Stack(export.graph_path(model, "full"), info, range(info.layers), threads)
    tokens = [int(t) for t in np.asarray(prompt_ids).reshape(-1)]
    out: list[int] = []
    for _ in range(max_new):
        new = np.asarray(tokens[full.length :], dtype=np.int64)[None]
        logits = full.run(new, full.length)
        token = int(np.argmax(logits[0, -1]))
        tokens.append(token)
        out.append(token)
    return out


def run_split(
    edge: EdgeSession,
    server: ServerSession,
    prompt_ids: Any,
    max_new: int,
    *,
    handover: int = 0,
    stop_at_eos: bool = False,
    link: Any = None,
    on_token: Any = None,
) -> Generation:
    """Generate ``max_new`` tokens: ``handover`` local steps on the edge, the rest split.

    link: an optional :class:`slicer.split.link.Link` that turns bytes into link time.
    on_token(token, stats): called as each token arrives (streaming).
    """
    if isinstance(max_new, bool) or not isinstance(max_new, int) or max_new < 1:
        raise ValueError(f"max_new must be a positive int, got {max_new!r}")
    if isinstance(handover, bool) or not isinstance(handover, int) or handover < 0:
        raise ValueError(f"handover must be an int >= 0, got {handover!r}")
    if handover >= max_new:
        raise ValueError(f"handover ({handover}) must be below max_new ({max_new})")
    edge.start(prompt_ids)
    gen = Generation(tokens=[], prompt_ids=list(edge.tokens))
    eos = set(edge.info.eos_ids)

    def emit(token: int, stats: StepStats) -> bool:
        gen.tokens.append(token)
        gen.steps.append(stats)
        if on_token is not None:
            on_token(token, stats)
        return stop_at_eos and token in eos

    for k in range(handover):
        token = edge.local_step()
        stats = StepStats(k, "local", 0, 0, 0, 0, 0.0, edge.last_device_ms, 0.0, 0.0)
        if emit(token, stats):
            return gen
    msg = edge.offload()
    while True:
        reply = server.handle(msg)
        token = edge.receive(reply)
        sent = parse(msg)
        kind, rows = sent.kind_name, sent.rows
        stats = StepStats(
            step=len(gen.tokens),
            kind=kind,
            rows=rows,
            bytes_up=len(msg),
            bytes_down=len(reply),
            payload_bytes=edge.last_payload_bytes,
            bits_per_element=8.0 * len(msg) / (rows * edge.info.hidden),
            device_ms=edge.last_device_ms,
            codec_ms=edge.last_codec_ms + server.last_decode_ms,
            server_ms=server.last_tail_ms,
            link_ms=(1e3 * link.transmit_seconds(len(msg))) if link is not None else 0.0,
        )
        if emit(token, stats) or len(gen.tokens) >= max_new:
            return gen
        msg = edge.decode_message()
