"""One event-loop wake-up per burst of gRPC completions instead of one per completion.

grpc.aio hands completions to the event loop through a socket pair: its poller thread queues
each completion and writes one byte; the loop's reader (``PollerCompletionQueue.
_handle_events``) receives ONE byte and then runs every queued completion. A burst of n
completions (a batch's replies written, the reads that arrived while a tail ran) thus costs n
loop iterations: the first runs all n, the other n - 1 each pay an ``epoll_wait``, a
``recv`` and a callback to find the queue empty (grpcio 1.85; later releases receive every
waiting byte themselves, and the wrapper then only saves them nothing).

:func:`drain_completion_wakeups` wraps that reader: it takes all but one of the bytes waiting
(``FIONREAD``) and leaves the last for grpc.aio's own ``recv``, so one iteration handles the
burst. The order matters: the poller queues a completion before it writes its byte, so every
completion whose byte is counted is in the queue when the original reader drains it, and a
completion queued later writes a byte of its own (another wake-up). Nothing is lost, and the
original reader's one-byte ``recv`` always finds its byte.

Only grpc.aio's poller on a selector event loop is touched; anything else (uvloop, a gRPC
build without the poller, a loop without it) is left as it is.
"""

from __future__ import annotations

import asyncio
import fcntl
import socket
import struct
import termios
from collections.abc import Callable
from typing import Any

_INT = struct.Struct("i")


def _pending_bytes(fd: int, buffer: bytearray) -> int:
    fcntl.ioctl(fd, termios.FIONREAD, buffer)
    return _INT.unpack(buffer)[0]


def drained(sock: socket.socket, reader: Callable[[], Any]) -> Callable[[], None]:
    """``reader`` (which receives one byte of ``sock`` itself) behind a drain of the rest."""
    fd = sock.fileno()
    buffer = bytearray(_INT.size)

    def handle_events() -> None:
        extra = _pending_bytes(fd, buffer) - 1
        if extra > 0:
            sock.recv(extra)
        reader()

    handle_events.slicer_drained = True  # type: ignore[attr-defined]
    return handle_events


def drain_completion_wakeups(loop: asyncio.AbstractEventLoop) -> bool:
    """Wrap grpc.aio's completion reader on ``loop``; True when it is (or already was)."""
    selector = getattr(loop, "_selector", None)
    if selector is None:  # not a selector loop (e.g. uvloop)
        return False
    for key in list(selector.get_map().values()):
        sock = key.fileobj
        handle = key.data[0] if isinstance(key.data, tuple) and key.data else None
        callback = getattr(handle, "_callback", None)
        if getattr(callback, "slicer_drained", False):
            return True
        method = getattr(callback, "func", callback)  # grpcio 1.85: partial(method, loop)
        owner = getattr(method, "__self__", None)
        if not (
            isinstance(sock, socket.socket)
            and getattr(method, "__name__", "") == "_handle_events"
            and type(owner).__name__ == "PollerCompletionQueue"
        ):
            continue
        loop.remove_reader(sock)
        loop.add_reader(sock, drained(sock, callback))
        return True
    return False
