"""Lossless coding of one side tensor (token ids, masks, shape scalars): ``docs/side.md``.

A side tensor travels as a self-describing byte string: a magic/version byte, a dtype code,
ndim and dims as varints, a coding byte (0 stored, 1 deflate) and the payload. The encoder
deflates only when that is strictly shorter, so a side tensor never costs more than its raw
bytes plus a few header bytes. The decoder checks every field before it allocates: the
tensor's size against the caller's ``max_bytes``, deflate output bounded to exactly that size.
Every bad string raises :class:`slicer.FormatError` (a ``ValueError``).
"""

from __future__ import annotations

import zlib

import ml_dtypes
import numpy as np

from .._errors import FormatError
from .._varint import varint as _varint

__all__ = ["MAX_BYTES", "MAX_NDIM", "decode_side", "encode_side", "side_bound"]

MAGIC_VERSION = 0xE1  # high nibble 0xE: a side tensor; low nibble: version 1
MAX_NDIM = 32
MAX_BYTES = 64 * 1024 * 1024  # the decoder's default cap on a tensor's bytes
STORED, DEFLATE = 0, 1
DEFLATE_LEVEL = 6  # zlib's default: level 9 took 17x the time on int64 token ids for 1.3 %
RAW_DEFLATE = -15  # zlib's wbits for a raw deflate stream (RFC 1951: no header, no Adler-32)

#: dtype code -> numpy dtype (little-endian); the table of docs/side.md §1.
DTYPES: tuple[np.dtype, ...] = (
    np.dtype(np.bool_),
    np.dtype("<i1"),
    np.dtype("<i2"),
    np.dtype("<i4"),
    np.dtype("<i8"),
    np.dtype("<u1"),
    np.dtype("<u2"),
    np.dtype("<u4"),
    np.dtype("<u8"),
    np.dtype("<f2"),
    np.dtype("<f4"),
    np.dtype("<f8"),
    np.dtype(ml_dtypes.bfloat16),
)
_CODES = {d.name: code for code, d in enumerate(DTYPES)}


def _header(code: int, shape: tuple[int, ...]) -> bytearray:
    out = bytearray((MAGIC_VERSION, code))
    out += _varint(len(shape))
    for d in shape:
        out += _varint(int(d))
    return out


def _dtype_code(dtype: np.dtype, what: str) -> int:
    code = _CODES.get(np.dtype(dtype).name)
    if code is None:
        names = ", ".join(d.name for d in DTYPES)
        raise TypeError(f"{what} has dtype {np.dtype(dtype)}; side tensors are {names}")
    return code


def encode_side(array: np.ndarray) -> bytes:
    """The side-tensor string of ``array`` (docs/side.md): deflated when that is shorter."""
    if isinstance(array, np.generic):
        array = np.asarray(array)
    if not isinstance(array, np.ndarray):
        raise TypeError(f"array must be a numpy.ndarray, got {type(array).__name__}")
    code = _dtype_code(array.dtype, "array")
    if array.ndim > MAX_NDIM:
        raise ValueError(f"array has {array.ndim} dimensions; side tensors have at most {MAX_NDIM}")
    raw = np.ascontiguousarray(array, dtype=DTYPES[code]).tobytes()
    out = _header(code, array.shape)
    packed = b""
    if raw:
        deflate = zlib.compressobj(DEFLATE_LEVEL, zlib.DEFLATED, RAW_DEFLATE)
        packed = deflate.compress(raw) + deflate.flush()
    if raw and len(packed) < len(raw):
        out.append(DEFLATE)
        out += packed
    else:
        out.append(STORED)
        out += raw
    return bytes(out)


def side_bound(shape: tuple[int, ...], dtype: str | np.dtype) -> int:
    """Most bytes :func:`encode_side` writes for a tensor of this shape and dtype."""
    code = _dtype_code(np.dtype(dtype), "dtype")
    shape = tuple(int(d) for d in shape)
    if any(d < 0 for d in shape):
        raise ValueError(f"shape must have non-negative dims, got {shape}")
    count = int(np.prod(shape, dtype=object)) if shape else 1
    return len(_header(code, shape)) + 1 + count * DTYPES[code].itemsize


class _Reader:
    def __init__(self, data: memoryview) -> None:
        self.data = data
        self.pos = 0

    def byte(self, field: str) -> int:
        if self.pos >= len(self.data):
            raise FormatError(f"side tensor is truncated: it ends before its {field}")
        value = self.data[self.pos]
        self.pos += 1
        return value

    def varint(self, field: str) -> int:
        value = 0
        for i in range(10):
            b = self.byte(field)
            value |= (b & 0x7F) << (7 * i)
            if not b & 0x80:
                if i and b == 0:
                    raise FormatError(f"side tensor: {field} is a non-minimal varint")
                if value >= 1 << 64:
                    raise FormatError(f"side tensor: {field} is a varint of 2^64 or more")
                return value
        raise FormatError(f"side tensor: {field} is a varint longer than 10 bytes")


def _check_cap(max_bytes: object) -> int:
    if isinstance(max_bytes, bool) or not isinstance(max_bytes, (int, np.integer)):
        raise TypeError(f"max_bytes must be an integer, got {type(max_bytes).__name__}")
    if max_bytes < 0:
        raise ValueError(f"max_bytes must be >= 0, got {max_bytes}")
    return int(max_bytes)


def _inflate(payload: memoryview, nbytes: int) -> bytes:
    """Exactly ``nbytes`` from one raw deflate stream that ends at the end of ``payload``."""
    d = zlib.decompressobj(RAW_DEFLATE)
    try:
        # max_length=0 would mean "no limit" to zlib: an empty tensor only probes below.
        out = d.decompress(payload, nbytes) if nbytes else b""
        tail = d.unconsumed_tail if nbytes else payload
        if len(out) < nbytes:
            raise FormatError(
                f"side tensor: the deflate stream holds {len(out)} bytes, the header says {nbytes}"
            )
        if not d.eof:  # the stream's final end-of-block may still be unread: probe one byte
            if d.decompress(tail, 1):
                raise FormatError(
                    f"side tensor: the deflate stream holds more than the header's {nbytes} bytes"
                )
    except zlib.error as exc:
        raise FormatError(f"side tensor: damaged deflate stream ({exc})") from None
    if not d.eof:
        raise FormatError("side tensor is truncated: its deflate stream does not end")
    if d.unused_data or d.unconsumed_tail:
        raise FormatError("side tensor has trailing bytes after its deflate stream")
    return out


def decode_side(data: bytes | bytearray | memoryview, *, max_bytes: int = MAX_BYTES) -> np.ndarray:
    """The array in a side-tensor string (docs/side.md §3).

    ``max_bytes``: the largest tensor (elements × itemsize) the caller accepts; checked
    before anything is allocated. Raises :class:`slicer.FormatError` for a bad string.
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"data must be bytes-like, got {type(data).__name__}")
    cap = _check_cap(max_bytes)
    view = memoryview(data).cast("B")
    r = _Reader(view)
    magic = r.byte("magic/version byte")
    if magic >> 4 != MAGIC_VERSION >> 4:
        raise FormatError(f"not a side tensor (magic/version byte 0x{magic:02x})")
    if magic != MAGIC_VERSION:
        raise FormatError(f"unsupported side-tensor version {magic & 0x0F} (this build reads 1)")
    code = r.byte("dtype code")
    if code >= len(DTYPES):
        raise FormatError(f"side tensor: unknown dtype code {code}")
    dtype = DTYPES[code]
    ndim = r.varint("ndim")
    if ndim > MAX_NDIM:
        raise FormatError(f"side tensor: ndim {ndim} > {MAX_NDIM}")
    shape, nominal, count = [], dtype.itemsize, 1
    for axis in range(ndim):
        d = r.varint(f"dim {axis}")
        nominal *= max(d, 1)
        if nominal > cap:
            raise FormatError(
                f"side tensor: shape {(*shape, d)}… of {dtype.name} is more than max_bytes={cap}"
            )
        shape.append(d)
        count *= d
    nbytes = count * dtype.itemsize
    coding = r.byte("coding byte")
    payload = view[r.pos :]
    if coding == STORED:
        if len(payload) != nbytes:
            what = "truncated" if len(payload) < nbytes else "followed by trailing bytes"
            raise FormatError(
                f"side tensor: stored payload is {what} ({len(payload)} bytes, needs {nbytes})"
            )
        raw = bytes(payload)
    elif coding == DEFLATE:
        raw = _inflate(payload, nbytes)
    else:
        raise FormatError(f"side tensor: unknown coding {coding}")
    array = np.frombuffer(raw, dtype=dtype, count=count).reshape(shape)
    if code == 0:
        if np.any(array.view(np.uint8) > 1):
            raise FormatError("side tensor: a bool byte is neither 0 nor 1")
        return array.copy()
    return array.astype(dtype.newbyteorder("="), copy=True)
