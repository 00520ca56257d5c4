"""Messages between the edge and the server session, and the pluggable row codecs.

Every message is a 24-byte header, a payload and a CRC-32 (all little-endian):

    offset size field
    0      2    magic b"SL"
    2      1    message format version (1)
    3      1    kind: 1 prefill, 2 handover, 3 decode step (edge → server), 4 token (server → edge)
    4      1    payload codec: 0 raw float32 rows, 1 float16 rows, 2 SLICER stream (groups="rows"),
                3 token id (uint32)
    5      1    cut ℓ (layers on the edge)
    6      2    row count n
    8      4    session id
    12     4    step: index of the generated token the reply produces (0-based)
    16     4    position: absolute position of the first row (tokens before it in the cache)
    20     4    model: the first 32 bits of the model fingerprint
    24     …    payload (rows × d hidden values as coded by the codec, or one token id)
    end-4  4    CRC-32 (zlib polynomial) of everything before it

Framing costs 28 bytes per message. A malformed message raises :class:`MessageError` (a
:class:`slicer.FormatError`); a well-formed one that does not fit the receiver's state (wrong
session, model, cut, step or position) raises :class:`ProtocolError`. Neither changes the
receiving session.

Row codecs are pluggable (:class:`RowCodec`): full SLICER streams today; a codec with a
context sent once and small per-row frames slots in under a new codec id.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass
from typing import Any

import numpy as np

from .._errors import FormatError

MAGIC = b"SL"
VERSION = 1
PREFILL, HANDOVER, DECODE, TOKEN = 1, 2, 3, 4
KIND_NAMES = {PREFILL: "prefill", HANDOVER: "handover", DECODE: "decode", TOKEN: "token"}
CODEC_RAW, CODEC_FP16, CODEC_SLICER, CODEC_TOKEN = 0, 1, 2, 3
_HEADER = struct.Struct("<2sBBBBHIIII")
HEADER_BYTES = _HEADER.size  # 24
FRAMING_BYTES = HEADER_BYTES + 4
MAX_ROWS = 65535


class MessageError(FormatError):
    """A byte string is not a well-formed edge/server message."""


class ProtocolError(ValueError):
    """A well-formed message that does not fit the receiving session's state."""


def model_tag(fingerprint: str) -> int:
    """The 32-bit model field of a message: the fingerprint's first 8 hex digits."""
    return int(fingerprint[:8], 16)


@dataclass(frozen=True)
class Message:
    kind: int
    codec: int
    cut: int
    rows: int
    session: int
    step: int
    position: int
    model: int
    payload: bytes

    def to_bytes(self) -> bytes:
        for field, value, hi in (
            ("kind", self.kind, 255),
            ("codec", self.codec, 255),
            ("cut", self.cut, 255),
            ("rows", self.rows, MAX_ROWS),
            ("session", self.session, 2**32 - 1),
            ("step", self.step, 2**32 - 1),
            ("position", self.position, 2**32 - 1),
            ("model", self.model, 2**32 - 1),
        ):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
                raise TypeError(f"message {field} must be an int, got {type(value).__name__}")
            if not 0 <= value <= hi:
                raise ValueError(f"message {field} must be in 0..{hi}, got {value}")
        head = _HEADER.pack(
            MAGIC,
            VERSION,
            self.kind,
            self.codec,
            self.cut,
            self.rows,
            self.session,
            self.step,
            self.position,
            self.model,
        )
        body = head + bytes(self.payload)
        return body + struct.pack("<I", zlib.crc32(body))

    @property
    def kind_name(self) -> str:
        return KIND_NAMES.get(self.kind, str(self.kind))


def parse(data: Any) -> Message:
    """Read one message; raises :class:`MessageError` when it is malformed."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"a message must be bytes-like, got {type(data).__name__}")
    data = bytes(data)
    if len(data) < FRAMING_BYTES:
        raise MessageError(
            f"message of {len(data)} bytes is shorter than its {FRAMING_BYTES}-byte framing"
        )
    magic, version, kind, codec, cut, rows, session, step, position, model = _HEADER.unpack_from(
        data
    )
    if magic != MAGIC:
        raise MessageError(f"not a SLICER message (magic {magic!r})")
    if version != VERSION:
        raise MessageError(f"message version {version} is not supported (this reader: {VERSION})")
    (crc,) = struct.unpack_from("<I", data, len(data) - 4)
    if zlib.crc32(data[:-4]) != crc:
        raise MessageError("message CRC mismatch (corrupt or truncated)")
    if kind not in KIND_NAMES:
        raise MessageError(f"unknown message kind {kind}")
    if codec not in (CODEC_RAW, CODEC_FP16, CODEC_SLICER, CODEC_TOKEN):
        raise MessageError(f"unknown payload codec {codec}")
    if rows == 0:
        raise MessageError("message carries no rows")
    if (kind == TOKEN) != (codec == CODEC_TOKEN):
        raise MessageError(
            f"a {KIND_NAMES[kind]} message cannot carry codec {codec} "
            "(token ids travel in token messages only)"
        )
    return Message(kind, codec, cut, rows, session, step, position, model, data[HEADER_BYTES:-4])


# --------------------------------------------------------------------------- row codecs


class RowCodec:
    """Codes hidden rows (n, d) float32 for the wire; subclasses set ``codec_id``."""

    codec_id: int = -1
    name: str = ""

    def encode(self, rows: np.ndarray) -> bytes:
        raise NotImplementedError

    def decode(self, payload: bytes, rows: int, width: int) -> np.ndarray:
        raise NotImplementedError

    def describe(self) -> dict:
        return {"codec": self.name}


class RawCodec(RowCodec):
    """float32 rows as they are (lossless)."""

    codec_id = CODEC_RAW
    name = "raw"

    def encode(self, rows: np.ndarray) -> bytes:
        return np.ascontiguousarray(rows, dtype="<f4").tobytes()

    def decode(self, payload: bytes, rows: int, width: int) -> np.ndarray:
        if len(payload) != 4 * rows * width:
            raise MessageError(
                f"raw payload of {len(payload)} bytes does not hold {rows}x{width} float32"
            )
        return np.frombuffer(payload, dtype="<f4").reshape(1, rows, width).astype(np.float32)


class Fp16Codec(RowCodec):
    """float16 rows (values beyond the float16 range saturate)."""

    codec_id = CODEC_FP16
    name = "fp16"

    def encode(self, rows: np.ndarray) -> bytes:
        clipped = np.clip(rows, -65504.0, 65504.0)
        return np.ascontiguousarray(clipped, dtype="<f2").tobytes()

    def decode(self, payload: bytes, rows: int, width: int) -> np.ndarray:
        if len(payload) != 2 * rows * width:
            raise MessageError(
                f"fp16 payload of {len(payload)} bytes does not hold {rows}x{width} float16"
            )
        return np.frombuffer(payload, dtype="<f2").reshape(1, rows, width).astype(np.float32)


class SlicerCodec(RowCodec):
    """A SLICER stream of the message's rows; options go to :func:`slicer.encode` as they are
    (default ``groups="rows"`` for top-K, ``"tensor"`` for dense modes), so new coding modes
    need no change here."""

    codec_id = CODEC_SLICER
    name = "slicer"

    def __init__(self, **options: Any) -> None:
        import slicer

        # top-K codes each row on its own; dense mode's one step for all rows of a message is
        # the MSE-optimal choice (a step per row follows outlier-inflated row RMS).
        dense = options.get("mode", "topk") != "topk"
        self.options = {"groups": "tensor" if dense else "rows", "threads": 1, **options}
        # Validate the options once, on a dummy row, so a bad one fails here, not mid-run.
        slicer.encode(np.ones((1, 8), np.float32), **self.options)

    def encode(self, rows: np.ndarray) -> bytes:
        import slicer

        return slicer.encode(np.ascontiguousarray(rows, dtype=np.float32), **self.options)

    def decode(self, payload: bytes, rows: int, width: int) -> np.ndarray:
        import slicer

        out = slicer.decode(payload, max_elements=rows * width, threads=1)
        if out.dtype != np.float32 or out.size != rows * width or out.shape[-1] != width:
            raise MessageError(
                f"payload stream holds {out.shape} {out.dtype}, expected {rows}x{width} float32"
            )
        return out.reshape(1, rows, width)

    def describe(self) -> dict:
        return {"codec": self.name, **{k: v for k, v in self.options.items() if k != "threads"}}


def codec_for_id(codec_id: int) -> RowCodec:
    """The decoder for a payload codec id (the SLICER decoder needs no options)."""
    if codec_id == CODEC_RAW:
        return RawCodec()
    if codec_id == CODEC_FP16:
        return Fp16Codec()
    if codec_id == CODEC_SLICER:
        return _SLICER_DECODER
    raise MessageError(f"codec {codec_id} carries no hidden rows")


class _SlicerDecoder(SlicerCodec):
    def __init__(self) -> None:  # decoding needs no options
        self.options = {"groups": "rows"}


_SLICER_DECODER = _SlicerDecoder()


def make_codec(spec: str | RowCodec | None = None, **options: Any) -> RowCodec:
    """``"raw"`` / ``None`` (lossless float32), ``"fp16"``, or ``"slicer"`` with encode options."""
    if isinstance(spec, RowCodec):
        return spec
    if spec is None or spec == "raw":
        return RawCodec()
    if spec == "fp16":
        return Fp16Codec()
    if spec == "slicer":
        return SlicerCodec(**options)
    raise ValueError(f"codec must be 'raw', 'fp16' or 'slicer', got {spec!r}")
