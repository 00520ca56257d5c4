"""Exceptions of the slicer package and the one mapping from C status codes to them."""

from __future__ import annotations

from typing import NoReturn

__all__ = ["FormatError", "raise_decode_status", "raise_encode_status"]


class FormatError(ValueError):
    """A byte string is not a valid SLICER stream (truncated, corrupt, wrong version, ...)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        #: The C library's status code (docs: cpp/include/slicer/slicer.h), when one applies.
        self.status = status


# Pinned status codes of the C ABI (cpp/include/slicer/slicer.h).
OK = 0
INVALID_ARGUMENT = 1
UNSUPPORTED_DTYPE = 2
NONFINITE_INPUT = 3
BUFFER_TOO_SMALL = 4
OUT_OF_MEMORY = 5
TRUNCATED = 10
BAD_MAGIC = 11
BAD_VERSION = 12
BAD_CHECKSUM = 13
CORRUPT = 14
LIMIT_EXCEEDED = 15
UNSUPPORTED_MODE = 16
TARGET_UNREACHABLE = 17  # slicer_dense_encode_budget: no stream meets the target

_FORMAT_MESSAGES = {
    TRUNCATED: "stream is truncated: it ends before a field it needs",
    BAD_MAGIC: "not a SLICER stream (bad magic bytes)",
    BAD_VERSION: "unsupported SLICER format version (this build reads formats 1 and 2)",
    BAD_CHECKSUM: "stream is corrupt or truncated: CRC-32 checksum mismatch",
    CORRUPT: "stream is corrupt: a field is invalid or inconsistent",
    LIMIT_EXCEEDED: "stream claims more elements than max_elements allows",
    UNSUPPORTED_MODE: "unsupported mode (a format-2 coding mode this build does not know)",
}


def _status_text(status: int) -> str:
    from . import _core

    return _core.status_string(status)


def raise_decode_status(status: int, context: str = "") -> NoReturn:
    """Raise the exception for a non-zero status of decode / read_header / inspect."""
    suffix = f" ({context})" if context else ""
    if status in _FORMAT_MESSAGES:
        from . import _core

        # The field or check that failed, as the C library names it (same thread, just now).
        detail = _core.error_detail()
        field = f" [{detail}]" if detail else ""
        raise FormatError(_FORMAT_MESSAGES[status] + field + suffix, status)
    if status == OUT_OF_MEMORY:
        raise MemoryError("slicer: out of memory while decoding" + suffix)
    raise RuntimeError(
        f"slicer: decoder failed with status {status} ({_status_text(status)}){suffix}"
    )


def raise_encode_status(status: int, context: str = "") -> NoReturn:
    """Raise the exception for a non-zero status of encode / encode_bound."""
    suffix = f" ({context})" if context else ""
    if status == NONFINITE_INPUT:
        raise ValueError("input contains NaN or infinity" + suffix)
    if status == UNSUPPORTED_DTYPE:
        raise TypeError("input dtype must be float32, float16 or bfloat16" + suffix)
    if status == INVALID_ARGUMENT:
        raise ValueError(f"invalid encoder argument: {_status_text(status)}{suffix}")
    if status == OUT_OF_MEMORY:
        raise MemoryError("slicer: out of memory while encoding" + suffix)
    raise RuntimeError(
        f"slicer: encoder failed with status {status} ({_status_text(status)}){suffix}"
    )
