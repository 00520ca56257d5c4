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
