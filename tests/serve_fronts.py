"""The server set-ups that every front-dependent serve test runs against."""

from __future__ import annotations

from typing import Any

#: grpc.aio with a worker thread, grpc.aio running batches on its event-loop thread
#: (``workers=0``), and the threaded grpc.server front
FRONTS = ("aio", "aio-inline", "sync")


def serve_config(front: str, **kwargs: Any):  # noqa: ANN201 - slicer.serve.ServeConfig
    """A ServeConfig for one of FRONTS (``aio-inline``: the asyncio front, ``workers=0``)."""
    from slicer.serve import ServeConfig

    if front == "aio-inline":
        return ServeConfig(front="aio", **{**kwargs, "workers": 0})
    return ServeConfig(front=front, **kwargs)
