"""Messages between the edge and the server session, and the pluggable row codecs.

Every message is a compact header, a payload and a CRC-32 (little-endian, varints LEB128):

    field     size      value
    magic     2         b"SL"
    version   1         message format version (2)
    kind      1         high nibble: 1 prefill, 2 handover, 3 decode step (edge → server),
                        4 token (server → edge); low nibble: bit 3 the transform flag (rows
                        coded in the session's KLT basis, below), bits 0-2 the payload codec:
                        0 raw float32 rows, 1 float16 rows, 2 SLICER stream, 3 token id
                        (uint32), 4 frames
    cut       1         cut ℓ (layers on the edge)
    rows      varint    row count n, 1 … 65535
    session   varint    session id, < 2^32
    step      varint    index of the generated token the reply produces (0-based), < 2^32
    position  varint    absolute position of the first row (tokens before it in the cache)
    model     4         the first 32 bits of the model fingerprint, XOR the transform's
                        32-bit tag when the transform flag is set
    payload   …         rows × d hidden values as coded by the codec, or one token id
    crc       4         CRC-32 (zlib polynomial) of everything before it

Framing is 15 fixed bytes plus the four varints: 19 bytes for a decode step of a session id
below 128 in the first 16,384 positions (:data:`FRAMING_BYTES`), at most 31
(:data:`MAX_FRAMING_BYTES`). A malformed message raises :class:`MessageError` (a
:class:`slicer.FormatError`); a well-formed one that does not fit the receiver's state (wrong
session, model, cut, step or position, or a frame without its context) raises
:class:`ProtocolError`. Neither changes the receiving session.

Transform binding. A session may code its rows in a calibrated KLT basis (:mod:`slicer.llm.klt`):
the edge sends the codec's payload of ``transform.forward(rows)``, the server decodes it and
applies ``transform.inverse``. Both sides hold the transform (fitted per model and cut, never
sent). Such rows messages set the transform flag (low nibble bit 3, e.g. 0x0C: frames in a
transform basis) and carry ``model_tag ^ transform_tag`` (:func:`transform_tag`: the first 32
bits of the SHA-256 of the transform's fingerprint) in the model field, and the server's token
replies echo that value; a message without the flag and with the plain model tag is exactly the
message of a session without a transform (byte for byte). A server refuses with
:class:`ProtocolError`, its session unchanged, a flagged message when it holds no transform, an
unflagged one when it holds one, and a flagged one whose tag is not its own transform's; a
reader older than the flag refuses flagged messages as of an unknown codec. The flag and tag
add no byte to a message.

Row codecs are pluggable (:class:`RowCodec`): raw, float16, one full SLICER stream per message
(``"slicer"``), or frames (``"frames"``, :class:`FrameCodec`, docs/format.md §17): the prefill /
handover message carries a frame context built from its own rows plus one frame per row, and
every decode step one frame of 6–8 bytes of overhead. The server keeps the session's
:class:`slicer.FrameDecoder`.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass
from typing import Any

import numpy as np

from .._errors import FormatError
from .._varint import varint as _varint

MAGIC = b"SL"
VERSION = 2
PREFILL, HANDOVER, DECODE, TOKEN = 1, 2, 3, 4
KIND_NAMES = {PREFILL: "prefill", HANDOVER: "handover", DECODE: "decode", TOKEN: "token"}
CODEC_RAW, CODEC_FP16, CODEC_SLICER, CODEC_TOKEN, CODEC_FRAMES = 0, 1, 2, 3, 4
#: Low-nibble bit of a rows message coded in the session's transform basis.
TRANSFORM_FLAG = 8
CODEC_NAMES = {
    CODEC_RAW: "raw",
    CODEC_FP16: "fp16",
    CODEC_SLICER: "slicer",
    CODEC_TOKEN: "token",
    CODEC_FRAMES: "frames",
}
FIXED_BYTES = 2 + 1 + 1 + 1 + 4 + 4  # magic, version, kind/codec, cut, model, crc
#: Framing of a decode step (one row) of a session id < 128 at a step and position < 16,384.
FRAMING_BYTES = FIXED_BYTES + 1 + 1 + 2 + 2
MAX_FRAMING_BYTES = FIXED_BYTES + 3 + 5 + 5 + 5
MIN_MESSAGE_BYTES = FIXED_BYTES + 4
MAX_ROWS = 65535


class MessageError(FormatError):
    """A byte string is not a well-formed edge/server message."""


class ProtocolError(ValueError):
    """A well-formed message that does not fit the receiving session's state."""


def model_tag(fingerprint: str, transform: int | None = None) -> int:
    """The 32-bit model field of a message: the fingerprint's first 8 hex digits, XOR the
    transform's tag (:func:`slicer.llm.klt.transform_tag`) for rows coded in its basis."""
    return int(fingerprint[:8], 16) ^ (transform or 0)


def _read_varint(data: bytes, pos: int, end: int, name: str, limit: int) -> tuple[int, int]:
    value = shift = 0
    start = pos
    while True:
        if pos >= end:
            raise MessageError(f"message {name} runs past the header")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            break
        shift += 7
        if shift > 28:
            raise MessageError(f"message {name} varint is longer than 5 bytes")
    if pos - start > 1 and byte == 0:
        raise MessageError(f"message {name} varint is not minimal")
    if value > limit:
        raise MessageError(f"message {name} {value} exceeds {limit}")
    return value, pos


def framing_bytes(rows: int, session: int, step: int, position: int) -> int:
    """The framing bytes (everything but the payload) of a message with these fields."""
    return FIXED_BYTES + sum(len(_varint(v)) for v in (rows, session, step, position))


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
    transform: bool = False  # rows coded in the session's transform basis (flag in the header)

    def to_bytes(self) -> bytes:
        for field, value, hi in (
            ("kind", self.kind, 15),
            ("codec", self.codec, 7),
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
        if self.transform and self.kind == TOKEN:
            raise ValueError("a token message carries no rows, so no transform flag")
        flag = TRANSFORM_FLAG if self.transform else 0
        body = b"".join(
            (
                MAGIC,
                bytes((VERSION, (self.kind << 4) | flag | self.codec, self.cut)),
                _varint(int(self.rows)),
                _varint(int(self.session)),
                _varint(int(self.step)),
                _varint(int(self.position)),
                struct.pack("<I", int(self.model)),
                bytes(self.payload),
            )
        )
        return body + struct.pack("<I", zlib.crc32(body))

    @property
    def kind_name(self) -> str:
        return KIND_NAMES.get(self.kind, str(self.kind))


def parse(data: Any) -> Message:
    """Read one message; raises :class:`MessageError` when it is malformed."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"a message must be bytes-like, got {type(data).__name__}")
    data = bytes(data)
    if len(data) < MIN_MESSAGE_BYTES:
        raise MessageError(
            f"message of {len(data)} bytes is shorter than the {MIN_MESSAGE_BYTES}-byte minimum"
        )
    if data[:2] != MAGIC:
        raise MessageError(f"not a SLICER message (magic {data[:2]!r})")
    if data[2] != VERSION:
        raise MessageError(f"message version {data[2]} is not supported (this reader: {VERSION})")
    (crc,) = struct.unpack_from("<I", data, len(data) - 4)
    if zlib.crc32(data[:-4]) != crc:
        raise MessageError("message CRC mismatch (corrupt or truncated)")
    kind, codec, cut = data[3] >> 4, data[3] & 0x07, data[4]
    transform = bool(data[3] & TRANSFORM_FLAG)
    if kind not in KIND_NAMES:
        raise MessageError(f"unknown message kind {kind}")
    if codec not in CODEC_NAMES:
        raise MessageError(f"unknown payload codec {codec}")
    end = len(data) - 8  # the model tag and the CRC follow the varints
    rows, pos = _read_varint(data, 5, end, "rows", MAX_ROWS)
    session, pos = _read_varint(data, pos, end, "session", 2**32 - 1)
    step, pos = _read_varint(data, pos, end, "step", 2**32 - 1)
    position, pos = _read_varint(data, pos, end, "position", 2**32 - 1)
    (model,) = struct.unpack_from("<I", data, pos)
    if rows == 0:
        raise MessageError("message carries no rows")
    if (kind == TOKEN) != (codec == CODEC_TOKEN):
        raise MessageError(
            f"a {KIND_NAMES[kind]} message cannot carry codec {codec} "
            "(token ids travel in token messages only)"
        )
    if transform and kind == TOKEN:
        raise MessageError("a token message cannot carry the transform flag")
    payload = data[pos + 4 : -4]
    return Message(kind, codec, cut, rows, session, step, position, model, payload, transform)


# --------------------------------------------------------------------------- row codecs


class RowCodec:
    """Codes hidden rows (n, d) float32 for the wire; subclasses set ``codec_id``."""

    codec_id: int = -1
    name: str = ""

    def encode(self, rows: np.ndarray, *, first: bool = True) -> bytes:
        """The payload of one message; ``first`` is True for the prefill / handover message
        (stateful codecs start their context there), False for decode steps."""
        raise NotImplementedError

    def decode(self, payload: bytes, rows: int, width: int) -> np.ndarray:
        raise NotImplementedError

    def describe(self) -> dict:
        return {"codec": self.name}


class RawCodec(RowCodec):
    """float32 rows as they are (lossless)."""

    codec_id = CODEC_RAW
    name = "raw"

    def encode(self, rows: np.ndarray, *, first: bool = True) -> bytes:
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

    def encode(self, rows: np.ndarray, *, first: bool = True) -> bytes:
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

    def encode(self, rows: np.ndarray, *, first: bool = True) -> bytes:
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


class FrameCodec(RowCodec):
    """Per-row frames (docs/format.md §17) after a context sent once.

    The first message of a session (prefill or handover) carries ``varint(len(context))``,
    the context (built by :class:`slicer.FrameEncoder` from that message's own rows at ``step``
    or ``rel_error``) and one frame per row; each decode step carries one frame. Several frames
    in one payload are each preceded by their varint length, except the last (the message
    gives its length). A FrameCodec holds the encoder of one edge session: give each
    :class:`~slicer.llm.EdgeSession` its own.

    states: interleaved rANS states per frame (1: smallest frames, the default here; 2 or 4
    encode faster, about 3.5 / 10.5 bytes more per 576-float row).
    classes: 1 (one frequency table), or 2 … 16: a context with a class map (docs/format.md
    §18), one table per class of row positions — smaller frames when the positions differ in
    spread (an LLM's channels, a transform's components); the context grows by half a byte per
    position and one table per class, once per session.
    trellis: False, or True / λ: a trellis context (docs/format.md §17.4, trellis-coded
    quantization; the decoder needs nothing more, the context says so). ``rho`` does not apply.
    """

    codec_id = CODEC_FRAMES
    name = "frames"

    def __init__(
        self,
        *,
        step: Any = None,
        rel_error: Any = None,
        rho: Any = None,
        states: int = 1,
        classes: int = 1,
        trellis: Any = False,
    ) -> None:
        import slicer

        if step is None and rel_error is None:
            raise ValueError("frames codec: give step= or rel_error=")
        if isinstance(classes, bool) or not isinstance(classes, int) or not 1 <= classes <= 16:
            raise ValueError(f"frames codec: classes must be an int in 1 ... 16, got {classes!r}")
        self.options = {"step": step, "rel_error": rel_error, "rho": rho, "states": states}
        if classes != 1:
            self.options["classes"] = classes
        if trellis is not False and trellis is not None:
            self.options["trellis"] = trellis
        # Validate the options once, on a dummy row, so a bad one fails here, not mid-run.
        slicer.FrameEncoder(np.ones((1, 16), np.float32), **self.options)
        self.encoder: Any = None

    def encode(self, rows: np.ndarray, *, first: bool = True, calibration: Any = None) -> bytes:
        """The payload of ``rows``; with ``first``, the context first, built from ``rows``, or
        from ``calibration`` rows (same width) when given — e.g. rows of calibration text in
        the session's transform basis, so the context does not depend on a short prefill."""
        import slicer

        rows = np.ascontiguousarray(rows, dtype=np.float32)
        if rows.ndim != 2 or rows.shape[0] < 1:
            raise ValueError(f"rows must be (n >= 1, d), got shape {rows.shape}")
        if calibration is not None and not first:
            raise ValueError("calibration applies to the first message (first=True) only")
        parts: list[bytes] = []
        if first:
            if calibration is not None:
                calibration = np.ascontiguousarray(calibration, dtype=np.float32)
                if calibration.ndim != 2 or calibration.shape[1] != rows.shape[1]:
                    raise ValueError(
                        f"calibration must be (n, {rows.shape[1]}) rows, got shape "
                        f"{calibration.shape}"
                    )
            encoder = slicer.FrameEncoder(
                rows if calibration is None else calibration, **self.options
            )
            parts += [_varint(len(encoder.context)), encoder.context]
        elif self.encoder is None:
            raise ValueError(
                "frames codec: the first message (prefill / handover) builds the context; "
                "encode it with first=True before decode steps"
            )
        else:
            encoder = self.encoder
        for i, row in enumerate(rows):
            frame = encoder.encode(row)
            if i + 1 < len(rows):
                parts.append(_varint(len(frame)))
            parts.append(frame)
        self.encoder = encoder
        return b"".join(parts)

    def decode(self, payload: bytes, rows: int, width: int) -> np.ndarray:
        raise MessageError("frames decode under the session's context: use FrameStream")

    @property
    def context_bytes(self) -> int:
        return len(self.encoder.context) if self.encoder is not None else 0

    def describe(self) -> dict:
        opts = {k: v for k, v in self.options.items() if v is not None}
        if self.encoder is not None:
            opts["context_step"] = self.encoder.step
        return {"codec": self.name, **opts}


class FrameStream:
    """The server side of :class:`FrameCodec`: the :class:`slicer.FrameDecoder` of one session.

    :meth:`open` reads a first message's payload (context + frames) and returns a new stream;
    :meth:`decode` reads a decode step's frames. A damaged payload, a frame of another context
    or an out-of-sequence frame raises :class:`MessageError` and leaves the stream as it was.
    """

    def __init__(self, decoder: Any, width: int) -> None:
        self.decoder = decoder
        self.width = width

    @classmethod
    def open(cls, payload: bytes, rows: int, width: int) -> tuple[FrameStream, np.ndarray]:
        import slicer

        length, pos = _read_varint(payload, 0, len(payload), "frame context length", 1 << 20)
        if pos + length > len(payload):
            raise MessageError(
                f"frame context of {length} bytes runs past the {len(payload)}-byte payload"
            )
        try:
            decoder = slicer.FrameDecoder(payload[pos : pos + length], max_elements=width)
        except slicer.FormatError as exc:
            raise MessageError(f"bad frame context: {exc}") from None
        if decoder.row_shape != (width,) or decoder.dtype != np.float32:
            raise MessageError(
                f"frame context rows are {decoder.row_shape} {decoder.dtype}, "
                f"expected ({width},) float32"
            )
        stream = cls(decoder, width)
        return stream, stream._frames(payload, pos + length, rows)

    def decode(self, payload: bytes, rows: int) -> np.ndarray:
        return self._frames(payload, 0, rows)

    def _frames(self, payload: bytes, pos: int, rows: int) -> np.ndarray:
        import slicer

        out = np.empty((1, rows, self.width), np.float32)
        seq = self.decoder.seq
        try:
            for i in range(rows):
                if i + 1 < rows:
                    length, pos = _read_varint(payload, pos, len(payload), "frame length", 1 << 24)
                else:
                    length = len(payload) - pos
                if length < 1 or pos + length > len(payload):
                    raise MessageError(f"frame {i} of {rows} runs past the payload")
                try:
                    out[0, i] = self.decoder.decode(payload[pos : pos + length])
                except slicer.FormatError as exc:
                    raise MessageError(
                        f"frame {i} of {rows} does not decode under this session's frame "
                        f"context (damaged, or sent under another context): {exc}"
                    ) from None
                pos += length
        except BaseException:
            self.decoder.seq = seq
            raise
        return out

    def rewind(self, rows: int) -> None:
        """Undo the sequence advance of the last ``rows`` frames (the message was refused)."""
        self.decoder.seq = (self.decoder.seq - rows) & 0xFF


def codec_for_id(codec_id: int) -> RowCodec:
    """The decoder for a payload codec id (the SLICER decoder needs no options)."""
    if codec_id == CODEC_RAW:
        return RawCodec()
    if codec_id == CODEC_FP16:
        return Fp16Codec()
    if codec_id == CODEC_SLICER:
        return _SLICER_DECODER
    if codec_id == CODEC_FRAMES:
        raise MessageError("frames decode under the session's frame context (FrameStream)")
    raise MessageError(f"codec {codec_id} carries no hidden rows")


class _SlicerDecoder(SlicerCodec):
    def __init__(self) -> None:  # decoding needs no options
        self.options = {"groups": "rows"}


_SLICER_DECODER = _SlicerDecoder()


def make_codec(spec: str | RowCodec | None = None, **options: Any) -> RowCodec:
    """``"raw"`` / ``None`` (lossless float32), ``"fp16"``, ``"slicer"`` with encode options,
    or ``"frames"`` with :class:`FrameCodec` options (``step`` or ``rel_error``, ``states``)."""
    if isinstance(spec, RowCodec):
        return spec
    if spec is None or spec == "raw":
        return RawCodec()
    if spec == "fp16":
        return Fp16Codec()
    if spec == "slicer":
        return SlicerCodec(**options)
    if spec == "frames":
        return FrameCodec(**options)
    raise ValueError(f"codec must be 'raw', 'fp16', 'slicer' or 'frames', got {spec!r}")
