"""Many edge clients, one back-end: the SLICER wire format, server, client and load test.

Needs the ``serve`` extra (``pip install 'slicer[serve]'``: grpcio, protobuf,
prometheus-client, psutil); Ray Serve scale-out needs the ``ray`` extra.

Python API::

    from slicer.serve import TailEngine, ServeConfig, ServerThread, EdgeClient

    engine = TailEngine("model.onnx", cut="/layers.3/Add_output_0")   # tail of one cut
    with ServerThread(engine, ServeConfig(max_batch=16, batch_window_ms=2)) as server:
        with EdgeClient(server.target, "model.onnx") as edge:           # head runs here
            result = edge.infer({"input": x}, reply="top_k", top_k=5)

``slicer serve`` / ``slicer client`` / ``slicer loadtest`` are the command-line forms; the
wire format is specified in ``docs/wire.md``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the names for type checkers; at run time they load on first use
    from .client import DeadlineExceeded, EdgeClient, Result, ServeError
    from .engine import TailEngine, make_batchable
    from .server import ServeConfig, ServerThread, start_server
    from .wire import WIRE_VERSION

# Loaded on first use, so that ``slicer serve`` can set GRPC_EXPERIMENTS before gRPC loads
# (importing this package, e.g. for slicer.serve.cli, does not import grpc).
_LAZY = {
    "DeadlineExceeded": "client",
    "EdgeClient": "client",
    "Result": "client",
    "ServeError": "client",
    "TailEngine": "engine",
    "make_batchable": "engine",
    "ServeConfig": "server",
    "ServerThread": "server",
    "start_server": "server",
    "WIRE_VERSION": "wire",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "WIRE_VERSION",
    "DeadlineExceeded",
    "EdgeClient",
    "Result",
    "ServeConfig",
    "ServeError",
    "ServerThread",
    "TailEngine",
    "make_batchable",
    "start_server",
]
