"""Wire format version 1: protobuf messages (``wire.proto``), caps, and validation.

The normative text is ``docs/wire.md``. This module converts between NumPy arrays and
``Tensor`` / ``RawTensor`` messages and validates a request *before* any of its bytes are
decoded, so a hostile message costs the server a few comparisons, never an allocation sized
by what the message merely claims.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import grpc
import numpy as np

from . import wire_pb2 as pb

WIRE_VERSION = 1

#: Default caps (both sides). gRPC's own transport limit is set a little above the
#: application cap so that an oversize request is answered in-session (INVALID_ARGUMENT)
#: instead of killing the stream.
MAX_REQUEST_BYTES = 4 * 1024 * 1024
MAX_REPLY_BYTES = 4 * 1024 * 1024
TRANSPORT_SLACK = 1024 * 1024
MAX_TENSORS = 64
MAX_NDIM = 8
MAX_TOP_K = 1000
SESSION_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
#: SessionBatched: at most this many requests in one RequestBatch (ServerInfo reports it)
MAX_REQUESTS_PER_MESSAGE = 64

#: dtypes a RawTensor may carry (numpy names, little-endian).
RAW_DTYPES = (
    "float32",
    "float16",
    "float64",
    "int64",
    "int32",
    "int16",
    "int8",
    "uint8",
    "bool",
)

OK = grpc.StatusCode.OK.value[0]
INVALID_ARGUMENT = grpc.StatusCode.INVALID_ARGUMENT.value[0]
FAILED_PRECONDITION = grpc.StatusCode.FAILED_PRECONDITION.value[0]
OUT_OF_RANGE = grpc.StatusCode.OUT_OF_RANGE.value[0]
RESOURCE_EXHAUSTED = grpc.StatusCode.RESOURCE_EXHAUSTED.value[0]
DEADLINE_EXCEEDED = grpc.StatusCode.DEADLINE_EXCEEDED.value[0]
INTERNAL = grpc.StatusCode.INTERNAL.value[0]
UNAVAILABLE = grpc.StatusCode.UNAVAILABLE.value[0]

CODE_NAMES = {c.value[0]: c.name for c in grpc.StatusCode}


class WireError(Exception):
    """A request that breaks the wire format; ``code`` is the gRPC status code to answer."""

    def __init__(self, code: int, message: str, retry_after_ms: int = 0) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.retry_after_ms = retry_after_ms


def channel_options(max_request_bytes: int, max_reply_bytes: int) -> list[tuple[str, int]]:
    """gRPC options of a channel or server: message caps (transport limit = cap + slack) and a
    fixed HTTP/2 flow-control window that holds the largest message either way.

    gRPC's default window starts at 64 KiB and grows by BDP probing: a PING after data
    arrives and its ACK, about 0.7 extra frames written and 0.5 read by the server per
    one-request message (docs/wire.md). A stream window as large as the largest message
    allowed makes the probing moot (no message waits for a window update, whatever the round
    trip), so it is off on both sides.
    """
    window = max(int(max_request_bytes), int(max_reply_bytes)) + TRANSPORT_SLACK
    return [
        ("grpc.max_receive_message_length", int(max_request_bytes) + TRANSPORT_SLACK),
        ("grpc.max_send_message_length", int(max_reply_bytes) + TRANSPORT_SLACK),
        ("grpc.http2.bdp_probe", 0),
        ("grpc.http2.lookahead_bytes", window),
    ]


def model_fingerprint(model_bytes: bytes, cut: str | None) -> str:
    """sha256 of the serialized ONNX model and the cut name, 32 hex digits.

    The cut is part of the fingerprint: a client built for another cut must not feed this
    server's tail.
    """
    h = hashlib.sha256()
    h.update(model_bytes)
    h.update(b"\0cut\0" + (cut or "<full>").encode())
    return h.hexdigest()[:32]


# ---------------------------------------------------------------------------- tensors


_LITTLE = {np.dtype(n): (n, np.dtype(n).newbyteorder("<")) for n in RAW_DTYPES}


def _dtype_name(dtype: np.dtype) -> str:
    known = _LITTLE.get(dtype)
    if known is not None:
        return known[0]
    name = np.dtype(dtype).name
    if name not in RAW_DTYPES:
        raise TypeError(f"dtype {name} cannot be sent raw; allowed: {', '.join(RAW_DTYPES)}")
    return name


def top_k_ids(row: np.ndarray, k: int) -> np.ndarray:
    """Ids of the k largest entries, by descending value, ties by lower id (a partial sort)."""
    k = min(int(k), row.size)
    if k <= 0:
        return np.zeros(0, dtype=np.int64)
    kth = row[np.argpartition(-row, k - 1)[:k]].min()
    above = np.flatnonzero(row > kth)
    ids = np.concatenate([above, np.flatnonzero(row == kth)[: k - above.size]])
    if ids.size != k:  # NaNs: fall back to the full stable sort (NaN last)
        return np.argsort(-row, kind="stable")[:k]
    return ids[np.lexsort((ids, -row[ids]))]


#: up to this k, :func:`top_k_rows` takes k arg-maxima instead of a partial sort
_TOP_K_BY_MAXIMA = 8


def top_k_rows(rows: np.ndarray, k: int) -> np.ndarray:
    """:func:`top_k_ids` of every row of a 2-D array at once: shape (rows, min(k, columns))."""
    return top_k_rows_values(rows, k)[0]


def top_k_rows_values(rows: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """:func:`top_k_rows` and the rows' values at those ids (``rows[r, ids[r]]``).

    For k <= 8, k rounds of a row-wise argmax on a copy (each round's winner is set to -inf;
    argmax takes the lowest id among equal values, so ties come by lower id, and the first NaN
    of a row if it has one); otherwise one partial sort for the whole matrix. A row whose
    chosen values are not all finite (a NaN, an infinity), whose last pick was -inf in the copy
    (it ran out of entries above -inf), or with a tie at the k-th value in the partial sort, takes
    :func:`top_k_ids` itself, so every row's ids are exactly what that function returns.
    Few NumPy calls per batch: after a tail run they run on cold caches.
    """
    count, width = rows.shape
    k = min(int(k), width)
    if k <= 0 or count == 0:
        empty = np.zeros((count, max(k, 0)), dtype=np.int64)
        return empty, np.zeros(empty.shape, rows.dtype)
    every = np.arange(count)
    if k <= _TOP_K_BY_MAXIMA and rows.dtype.kind == "f":
        work = np.array(rows, copy=True)
        best = [work.argmax(axis=1)]
        for _ in range(k - 1):
            work[every, best[-1]] = -np.inf
            best.append(work.argmax(axis=1))
        # the last round's pick as the copy holds it: -inf when a row ran out of entries above
        # -inf (a winner set to -inf could then be picked again)
        last = work[every, best[-1]]
        ids = np.stack(best, axis=1).astype(np.int64, copy=False)
        values = rows[every[:, None], ids]
        if not (np.isfinite(values).all() and np.isfinite(last).all()):
            for r in np.flatnonzero(~(np.isfinite(values).all(axis=1) & np.isfinite(last))):
                ids[r] = top_k_ids(rows[r], k)
                values[r] = rows[r, ids[r]]
        return ids, values
    negated = -rows
    candidates = np.argpartition(negated, k - 1, axis=1)[:, :k]
    chosen = np.take_along_axis(negated, candidates, axis=1)
    kth = chosen.max(axis=1, keepdims=True)  # the k-th largest value of the row, negated
    order = np.lexsort((candidates, chosen), axis=1)
    ids = np.take_along_axis(candidates, order, axis=1).astype(np.int64, copy=False)
    # Exact unless another entry equals the k-th value (ties broken by id) or a NaN is present.
    inexact = np.flatnonzero((negated <= kth).sum(axis=1) != k)
    for r in inexact:
        ids[r] = top_k_ids(rows[r], k)
    return ids, rows[every[:, None], ids]


def batch_element(data: bytes) -> bytes:
    """A serialized Request / Reply as one element of a RequestBatch / ReplyBatch (field 1,
    length-delimited): the concatenation of such elements is the serialized batch."""
    n = len(data)
    head = bytearray(b"\x0a")
    while n >= 0x80:
        head.append((n & 0x7F) | 0x80)
        n >>= 7
    head.append(n)
    return bytes(head) + data


def raw_tensor(array: np.ndarray) -> pb.RawTensor:
    """A RawTensor holding ``array`` (C order, little-endian)."""
    if isinstance(array, np.generic):
        array = np.asarray(array)
    if not isinstance(array, np.ndarray):
        raise TypeError(f"array must be a numpy.ndarray, got {type(array).__name__}")
    name = _dtype_name(array.dtype)
    data = np.ascontiguousarray(array, dtype=_LITTLE[np.dtype(name)][1])
    return pb.RawTensor(dtype=name, shape=list(array.shape), data=data.tobytes())


def raw_array(
    msg: pb.RawTensor, *, what: str = "tensor", max_elements: int = 1 << 28
) -> np.ndarray:
    """The array in a RawTensor; WireError(INVALID_ARGUMENT) when it is inconsistent."""
    if msg.dtype not in RAW_DTYPES:
        raise WireError(INVALID_ARGUMENT, f"{what}: dtype {msg.dtype!r} is not allowed")
    if len(msg.shape) > MAX_NDIM:
        raise WireError(INVALID_ARGUMENT, f"{what}: {len(msg.shape)} dimensions > {MAX_NDIM}")
    count = 1
    for d in msg.shape:
        if d < 0:
            raise WireError(INVALID_ARGUMENT, f"{what}: negative dimension {d}")
        count *= int(d)
        if count > max_elements:
            raise WireError(INVALID_ARGUMENT, f"{what}: more than {max_elements} elements")
    dtype = np.dtype(msg.dtype).newbyteorder("<")
    if len(msg.data) != count * dtype.itemsize:
        raise WireError(
            INVALID_ARGUMENT,
            f"{what}: {len(msg.data)} data bytes, shape {list(msg.shape)} {msg.dtype} needs "
            f"{count * dtype.itemsize}",
        )
    return np.frombuffer(msg.data, dtype=dtype).reshape(tuple(msg.shape)).astype(msg.dtype)


def exact_array(t: pb.Tensor, *, what: str = "tensor", max_elements: int = 1 << 28) -> np.ndarray:
    """The array of a ``raw`` or ``side`` payload (docs/side.md); WireError(INVALID_ARGUMENT)
    when it is inconsistent. A side string is checked against ``max_elements`` × 8 bytes
    before anything is allocated, then held to the raw limits (dtypes, dims, elements)."""
    if t.WhichOneof("payload") != "side":
        return raw_array(t.raw, what=what, max_elements=max_elements)
    from ..split.side import decode_side

    try:
        array = decode_side(t.side, max_bytes=8 * max_elements)
    except ValueError as exc:  # slicer.FormatError
        raise WireError(INVALID_ARGUMENT, f"{what}: bad side tensor: {exc}") from None
    if array.dtype.name not in RAW_DTYPES:
        raise WireError(INVALID_ARGUMENT, f"{what}: dtype {array.dtype.name!r} is not allowed")
    if array.ndim > MAX_NDIM:
        raise WireError(INVALID_ARGUMENT, f"{what}: {array.ndim} dimensions > {MAX_NDIM}")
    if array.size > max_elements:
        raise WireError(INVALID_ARGUMENT, f"{what}: more than {max_elements} elements")
    return array


def pack_tensors(
    codec_streams: Mapping[str, bytes],
    raw: Mapping[str, np.ndarray],
    side: Mapping[str, bytes] | None = None,
) -> list[pb.Tensor]:
    """Tensor messages for a packet: codec streams, side-tensor strings (``side``, for servers
    with ``ServerInfo.side_tensors``) and raw arrays (those not in ``side``)."""
    side = side or {}
    out = [pb.Tensor(name=n, codec=bytes(s)) for n, s in codec_streams.items()]
    out += [pb.Tensor(name=n, side=bytes(b)) for n, b in side.items()]
    out += [
        pb.Tensor(name=n, raw=raw_tensor(np.asarray(a))) for n, a in raw.items() if n not in side
    ]
    return out


# ---------------------------------------------------------------------------- requests


@dataclass(frozen=True)
class Expect:
    """What a server accepts: its fingerprint, cut and the tensors a request must carry."""

    fingerprint: str
    cut_id: int
    tensor_names: tuple[str, ...]
    max_request_bytes: int = MAX_REQUEST_BYTES
    llm: bool = False  # an LLM server: requests carry llm_message, not tensors
    # calibrated transforms the server inverts on codec tensors: ((name, fingerprint), ...)
    transforms: tuple[tuple[str, str], ...] = ()


def transform_fingerprint(transforms: Mapping[str, Any], coded: Iterable[str] | None = None) -> str:
    """The wire's transform fingerprint: ``name=fingerprint`` of each transformed tensor,
    sorted by name, joined by ``;`` ("" without one). ``transforms``: name → CutTransform or
    its fingerprint string; ``coded``: only the tensors among these (those that travel as
    codec streams: raw and side tensors are never transformed)."""
    keep = None if coded is None else set(coded)
    return ";".join(
        f"{n}={t if isinstance(t, str) else t.fingerprint()}"
        for n, t in sorted(transforms.items())
        if keep is None or n in keep
    )


def request_transform(tensors: Iterable[pb.Tensor], transforms: Mapping[str, Any]) -> str:
    """What ``Request.transform_fingerprint`` must be for these tensors: the transforms of
    the tensors that travel as codec streams."""
    if not transforms:
        return ""
    coded = [t.name for t in tensors if t.WhichOneof("payload") == "codec"]
    return transform_fingerprint(transforms, coded)


def check_request(req: pb.Request, expect: Expect, size: int) -> None:
    """Validate everything but the tensor payloads; raises WireError with the status."""
    if size > expect.max_request_bytes:
        raise WireError(
            INVALID_ARGUMENT,
            f"request of {size} bytes exceeds the cap of {expect.max_request_bytes}",
        )
    if req.wire_version != WIRE_VERSION:
        raise WireError(
            FAILED_PRECONDITION,
            f"wire_version {req.wire_version} is not supported (server speaks {WIRE_VERSION})",
        )
    if req.model_fingerprint != expect.fingerprint:
        raise WireError(
            FAILED_PRECONDITION,
            f"model fingerprint {req.model_fingerprint[:32]!r} does not match the server's "
            f"{expect.fingerprint!r}",
        )
    if req.cut_id != expect.cut_id:
        raise WireError(
            FAILED_PRECONDITION, f"cut_id {req.cut_id} does not match the server's {expect.cut_id}"
        )
    if req.seq == 0:
        raise WireError(INVALID_ARGUMENT, "seq must be >= 1")
    if req.reply_kind == pb.TOP_K and not 1 <= req.top_k <= MAX_TOP_K:
        raise WireError(INVALID_ARGUMENT, f"top_k must be in 1..{MAX_TOP_K}, got {req.top_k}")
    if expect.llm:
        if req.tensors or not req.llm_message:
            raise WireError(
                INVALID_ARGUMENT, "this server serves LLM sessions: send llm_message, no tensors"
            )
        return
    if req.llm_message:
        raise WireError(INVALID_ARGUMENT, "this server serves a cut's tensors, not llm_message")
    if len(req.tensors) > MAX_TENSORS:
        raise WireError(INVALID_ARGUMENT, f"{len(req.tensors)} tensors > {MAX_TENSORS}")
    names = [t.name for t in req.tensors]
    if len(set(names)) != len(names):
        raise WireError(INVALID_ARGUMENT, f"a tensor is sent twice: {sorted(names)}")
    if set(names) != set(expect.tensor_names):
        missing = sorted(set(expect.tensor_names) - set(names))
        extra = sorted(set(names) - set(expect.tensor_names))
        raise WireError(INVALID_ARGUMENT, f"tensors missing {missing}, unexpected {extra}")
    for t in req.tensors:
        kind = t.WhichOneof("payload")
        if kind is None:
            raise WireError(INVALID_ARGUMENT, f"tensor {t.name!r} has no payload")
    if expect.transforms or req.transform_fingerprint:
        want = request_transform(req.tensors, dict(expect.transforms))
        if req.transform_fingerprint != want:
            raise WireError(
                FAILED_PRECONDITION,
                f"the codec tensors were sent through transform "
                f"{req.transform_fingerprint[:80] or 'none'!r}; this server inverts "
                f"{want[:80] or 'none'!r} (encode with the server's settings: "
                "slicer client --settings / EdgeClient(transforms=...))",
            )


def error_reply(
    session_id: str, seq: int, code: int, message: str, retry_after_ms: int = 0
) -> pb.Reply:
    return pb.Reply(
        session_id=session_id,
        seq=seq,
        code=code,
        message=message[:500],
        retry_after_ms=retry_after_ms,
    )


def reply_payload(
    reply: pb.Reply,
    names: Sequence[str],
    outputs: Sequence[np.ndarray],
    kind: int,
    top_k: int,
) -> pb.Reply:
    """Fill ``reply`` with the outputs shaped as the request's reply kind asks."""
    kind = kind or pb.OUTPUTS
    reply.kind = kind
    if kind == pb.OUTPUTS:
        reply.output_names.extend(names)
        reply.outputs.extend(raw_tensor(np.asarray(o)) for o in outputs)
    elif kind in (pb.LOGITS, pb.EMBEDDING):
        reply.output_names.append(names[0])
        reply.outputs.append(raw_tensor(np.asarray(outputs[0])))
    elif kind == pb.TOP_K:
        row = np.asarray(outputs[0], dtype=np.float32).reshape(-1, np.shape(outputs[0])[-1])[-1]
        ids = top_k_ids(row, top_k)
        reply.top_k_ids.extend(ids.tolist())
        reply.top_k_values.extend(row[ids].tolist())
    elif kind == pb.TOKEN:
        row = np.asarray(outputs[0]).reshape(-1, np.shape(outputs[0])[-1])[-1]
        reply.top_k_ids.append(int(np.argmax(row)))
    else:
        raise WireError(INVALID_ARGUMENT, f"unknown reply_kind {kind}")
    return reply


def reply_outputs(reply: pb.Reply) -> dict[str, np.ndarray]:
    """The raw outputs of a reply, by name."""
    return {
        n: raw_array(t, what=f"output {n!r}")
        for n, t in zip(reply.output_names, reply.outputs, strict=True)
    }
