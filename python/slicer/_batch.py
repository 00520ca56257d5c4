"""Batch decode: many streams of one dtype and shape into one array, in one codec call."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from . import _core
from ._api import (
    _DENSE_DTYPE_CODES,
    DEFAULT_MAX_ELEMENTS,
    _check_threads,
    check_max_elements,
    decode,
)
from ._context import native_context
from ._intake import as_stream_bytes, as_writable_out

__all__ = ["decode_batch"]


def decode_batch(
    streams: Sequence[Any],
    *,
    out: Any = None,
    max_elements: int = DEFAULT_MAX_ELEMENTS,
    threads: int = 0,
    context: Any = None,
) -> tuple[np.ndarray | None, list[Exception | None]]:
    """Decode B streams of the same shape and dtype into one array of shape (B, *shape).

    All streams are decoded by one call of the C library (``slicer_decode_batch``) with the
    GIL released, items in parallel, each straight into its row of the result. Every item is
    validated exactly as :func:`slicer.decode` validates it, and a bad item fails alone.

    Parameters
    ----------
    streams : sequence of bytes, bytearray, memoryview or uint8 arrays
        The streams (format 1 or format 2 dense, mixed freely).
    out : numpy.ndarray or torch.Tensor (writable CPU DLPack array), optional
        C-contiguous output of shape (B, *shape) and the streams' dtype; it fixes the item
        shape and dtype. Without it, they are those of the first stream that decodes, and a
        new array is returned.
    max_elements : int, default 2**31
        Per stream, as for :func:`slicer.decode`.
    threads : int, default 0
        Threads for the whole batch (0 = all cores; with `context`, at most the context's).
        Items are decoded one per thread.
    context : slicer.Context or None, default None
        Run on this context's pool (None: the process's shared pool).

    Returns
    -------
    (array, errors)
        ``array``: `out` (or a new array) with row i holding stream i, rows of failed items
        set to zero; None when `out` is not given and no stream decodes. ``errors``: a list
        of B entries, None for a decoded item, else the exception :func:`slicer.decode`
        raises for that stream (a :class:`slicer.FormatError` for a bad stream), or a
        ValueError naming the item when a valid stream holds another shape or dtype.

    Raises
    ------
    TypeError, ValueError
        Bad arguments: `streams` not a sequence of byte strings, `out` not C-contiguous
        (shape (B, ...)) or of an unsupported dtype, an empty batch without `out`.
    """
    if isinstance(streams, (bytes, bytearray, memoryview, np.ndarray)) or not isinstance(
        streams, Sequence
    ):
        raise TypeError(
            f"streams must be a sequence (list, tuple) of streams, got {type(streams).__name__}"
        )
    limit = check_max_elements(max_elements)
    thread_count = _check_threads(threads)
    native = None if context is None else native_context(context)
    items = [s if type(s) is bytes else as_stream_bytes(s) for s in streams]
    count = len(items)
    errors: list[Exception | None] = [None] * count
    first = 0  # items before `first` are already settled (failed while finding the shape)
    if out is None:
        if count == 0:
            raise ValueError("streams is empty: pass out= to give the item shape and dtype")
        for i, item in enumerate(items):
            try:
                head = decode(item, max_elements=limit, threads=thread_count, context=context)
            except ValueError as exc:  # FormatError included
                errors[i] = exc
                continue
            array = np.zeros((count, *head.shape), head.dtype)
            array[i] = head
            first = i + 1
            break
        else:
            return None, errors
        target = array
    else:
        target = as_writable_out(out)
        array = out
        if target.ndim < 1 or target.shape[0] != count:
            raise ValueError(
                f"out must have shape (B, ...) with B = len(streams) = {count}, "
                f"got shape {target.shape}"
            )
        if not target.flags.c_contiguous:
            raise ValueError("out must be C-contiguous")
    code = _DENSE_DTYPE_CODES.get(target.dtype)
    if code is None:
        raise TypeError(
            f"out has dtype {target.dtype}; streams hold float32, float16, bfloat16 or float64"
        )
    item_shape = target.shape[1:]
    rest = items[first:]
    if rest:
        rows = target[first:].reshape(-1).view(np.uint8)
        statuses = np.empty(len(rest), np.int32)
        status, failed = _core.decode_batch(
            rest, rows, code, list(item_shape), limit, thread_count, statuses, native
        )
        if status:  # arguments were checked above: not expected
            raise RuntimeError(
                f"slicer: batch decode failed with status {status} ({_core.status_string(status)})"
            )
        if failed:
            for j in np.flatnonzero(statuses):
                i = first + int(j)
                errors[i] = _item_error(i, items[i], item_shape, target.dtype, limit)
    return array, errors


def _item_error(
    index: int, item: Any, shape: tuple[int, ...], dtype: np.dtype, limit: int
) -> Exception:
    """The error of a failed item: what slicer.decode raises for it, or the mismatch."""
    try:
        alone = decode(item, max_elements=limit, threads=1)
    except Exception as exc:  # noqa: BLE001 - handed back to the caller, not swallowed
        return exc
    return ValueError(
        f"streams[{index}] holds shape {alone.shape} and dtype {alone.dtype}; the batch "
        f"holds shape {tuple(shape)} and dtype {dtype}"
    )
