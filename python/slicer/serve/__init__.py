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

from .client import DeadlineExceeded, EdgeClient, Result, ServeError
from .engine import TailEngine, make_batchable
from .server import ServeConfig, ServerThread, start_server
from .wire import WIRE_VERSION

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
