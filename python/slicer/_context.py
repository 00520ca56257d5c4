"""Codec contexts: a worker pool and scratch reused from call to call.

Every CPU encode runs on a context (``slicer_context`` of the C library). Without one, a call
uses its thread's default context, which owns only scratch and runs its parallel parts on the
process's shared pool (one thread per hardware thread, started on first use). A pool runs one
call's parts at a time; a call that finds it busy runs its parts on its own thread instead of
waiting, so concurrent calls never start threads of their own.

A multi-threaded server can rely on the defaults (each server thread gets its own scratch,
all share one pool), or give each worker a ``Context(threads=t)`` with a pool of its own to
fix how many cores one request may use (the process then runs at most workers × t threads).
A context serves one call at a time: calls on the same context from several threads are
serialized, never mixed.
"""

from __future__ import annotations

import operator
import threading
from typing import Any

from . import _core

__all__ = ["Context", "default_context"]


class Context:
    """A worker pool and reusable scratch for ``encode`` / ``encode_batch``.

    Parameters
    ----------
    threads : int, default 0
        0: scratch only; parallel parts run on the process's shared pool. t > 0: a pool of
        its own with t threads (the calling thread counts as one; t - 1 workers are started
        now and live as long as the context). A call's ``threads`` argument (0 = all) is
        capped by the context's. Streams never depend on either.
    """

    __slots__ = ("_native",)

    def __init__(self, threads: int = 0) -> None:
        if isinstance(threads, bool):
            raise TypeError("threads must be an integer, got bool")
        try:
            count = operator.index(threads)
        except TypeError:
            raise TypeError(f"threads must be an integer, got {type(threads).__name__}") from None
        if not 0 <= count <= 65535:
            raise ValueError(f"threads must be in 0..65535 (0 = the shared pool), got {count}")
        self._native = _core.Context(count)

    @property
    def threads(self) -> int:
        """Threads a call on this context may use (the calling thread included)."""
        return int(self._native.threads)

    def __repr__(self) -> str:
        return f"slicer.Context(threads={self.threads})"


_per_thread = threading.local()


def default_context() -> Context:
    """The calling thread's default context (scratch of its own, the shared pool)."""
    try:
        return _per_thread.context
    except AttributeError:
        context = _per_thread.context = Context(0)
        return context


def native_context(context: Any) -> Any:
    """The ``_core.Context`` behind `context` (None: the thread's default)."""
    if context is None:
        try:
            return _per_thread.context._native
        except AttributeError:
            return default_context()._native
    if not isinstance(context, Context):
        raise TypeError(f"context must be a slicer.Context or None, got {type(context).__name__}")
    return context._native
