"""Helpers of the dense-mode tests: the C++ encoder with reference parameters, CRC repair and
the reference's verdict."""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest

import reference_dense as rd
import slicer
from slicer import _core
from slicer._context import native_context


def native(x: np.ndarray, params: dict) -> bytes:
    """The C++ encoder called with exactly the reference's integer parameters."""
    p = dict(params, threads=1)
    p["group_table"] = None if params["group_table"] is None else bytes(params["group_table"])
    code = rd.DTYPE_CODES[np.dtype(x.dtype)]
    raw = np.ascontiguousarray(x).reshape(-1).view(np.uint8)
    status, stream = _core.dense_encode(native_context(None), raw, code, list(x.shape), p)
    assert status == 0, status
    return stream


def with_crc(body: bytes) -> bytes:
    """`body` (a stream without its checksum) followed by its CRC-32 (docs/format.md §6.2)."""
    return body + struct.pack("<I", zlib.crc32(body) & 0xFFFFFFFF)


def same_values(a: np.ndarray, b: np.ndarray) -> bool:
    """Same dtype, shape and bit patterns (so -0.0 and 0.0 differ)."""
    return (
        a.dtype == b.dtype
        and a.shape == b.shape
        and np.ascontiguousarray(a).tobytes() == np.ascontiguousarray(b).tobytes()
    )


def assert_reference_verdict(data: bytes, max_elements: int = 2**31) -> bool:
    """slicer.decode rejects `data` iff the reference does, else decodes the same values.
    Returns whether the stream was accepted."""
    try:
        want = rd.decode(data, max_elements=max_elements)[0]
    except rd.ReferenceFormatError:
        want = None
    if want is None:
        with pytest.raises(slicer.FormatError):
            slicer.decode(data, max_elements=max_elements)
        return False
    assert same_values(slicer.decode(data, max_elements=max_elements), want)
    return True


def check_mode1_option(name: str, too_big: tuple, valid: int) -> None:
    """The API's checks of a mode-1 encoder option that takes 0 … top or "auto" (`table_kind`,
    `low_bits`): ValueError for `too_big` values and unknown strings, TypeError for non-integers,
    ValueError for `valid` with class tables, trellis, max_bytes and mode="topk"; "auto" with
    trellis writes 0. Each error names the option."""
    x = np.random.default_rng(10).laplace(0.0, 1.0, 500).astype(np.float32)
    for bad in (*too_big, -1, 255, "best"):
        with pytest.raises(ValueError, match=name):
            slicer.encode(x, mode="dense", step=0.5, **{name: bad})
    for bad in (1.0, None, b"4"):
        with pytest.raises(TypeError, match=name):
            slicer.encode(x, mode="dense", step=0.5, **{name: bad})
    for args in (dict(mode="dense", step=0.5, classes=2),
                 dict(mode="dense", step=0.5, trellis=True),
                 dict(mode="dense", max_bytes=300), {}):  # fmt: skip
        with pytest.raises(ValueError, match=name):
            slicer.encode(x.reshape(10, 50), **args, **{name: valid})
    auto = slicer.encode(x, mode="dense", step=0.5, trellis=True, **{name: "auto"})
    assert getattr(slicer.inspect(auto), name) == 0


def class_stream_group_byte(x2d: np.ndarray, **params) -> tuple[bytes, int]:
    """A mode-2 stream of the 2-d `x2d` by the reference and the offset of its group_table byte
    (§19.1: after the two dim varints, layout, mode, params_len and 8 bytes of parameters)."""
    stream = rd.encode(x2d, rd.default_params(**params))
    pos = 8
    for _ in range(2):
        while stream[pos] & 0x80:
            pos += 1
        pos += 1
    return stream, pos + 3 + 8
