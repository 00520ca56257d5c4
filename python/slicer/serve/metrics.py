"""Prometheus metrics of one back-end (its own registry, so several servers fit one process)."""

from __future__ import annotations

from bisect import bisect_left
from collections import Counter as _Tally
from collections.abc import Sequence

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST

_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128)
_TIME_BUCKETS = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 0.1, 0.3, 1.0, 3.0)


class Metrics:
    """Requests by status, batch sizes, queue depth, decode / tail time, bytes in, sessions."""

    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        ProcessCollector(registry=r)  # process_cpu_seconds_total, process_resident_memory_bytes
        p = "slicer_serve_"
        self.requests = Counter(
            p + "requests", "Requests answered, by status code", ["code"], registry=r
        )
        self.bytes_in = Counter(
            p + "request_bytes", "Serialized request bytes received", registry=r
        )
        self.batch_size = Histogram(
            p + "batch_size",
            "Requests per batch handed to a worker",
            buckets=_BATCH_BUCKETS,
            registry=r,
        )
        self.queue_depth = Gauge(
            p + "queue_depth", "Admitted requests waiting for a batch", registry=r
        )
        self.queue_seconds = Histogram(
            p + "queue_seconds", "Admission to batch start", buckets=_TIME_BUCKETS, registry=r
        )
        self.decode_seconds = Histogram(
            p + "decode_seconds", "Codec decode per request", buckets=_TIME_BUCKETS, registry=r
        )
        self.compute_seconds = Histogram(
            p + "compute_seconds",
            "Tail (or whole-model) run per batch",
            buckets=_TIME_BUCKETS,
            registry=r,
        )
        self.compute_cpu_seconds = Counter(
            p + "compute_cpu_seconds", "Thread CPU time spent in tail runs", registry=r
        )
        self.decode_cpu_seconds = Counter(
            p + "decode_wall_seconds", "Worker time spent decoding requests", registry=r
        )
        self.sessions = Gauge(p + "sessions", "Open sessions", registry=r)
        self.sessions_opened = Counter(p + "sessions_opened", "Sessions opened", registry=r)
        self.sessions_ended = Counter(
            p + "sessions_ended", "Sessions ended, by reason", ["reason"], registry=r
        )
        self.rejected_sessions = Counter(
            p + "sessions_rejected", "Streams refused at the session cap", registry=r
        )

    def render(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


def observe_many(histogram: Histogram, values: Sequence[float]) -> None:
    """``histogram.observe(v)`` for every v, one bucket increment per bucket hit and one sum
    increment for the lot (the same counts and sum as observing one by one)."""
    bounds = getattr(histogram, "_upper_bounds", None)
    buckets = getattr(histogram, "_buckets", None)
    total = getattr(histogram, "_sum", None)
    if bounds is None or buckets is None or total is None:  # another prometheus_client layout
        for v in values:
            histogram.observe(v)
        return
    # observe() counts v in the first bucket whose upper bound is >= v (a NaN in none)
    for i, count in _Tally(bisect_left(bounds, v) for v in values if v == v).items():
        buckets[i].inc(count)
    total.inc(sum(values))


def parse(text: str) -> dict[str, float]:
    """``name{labels}`` → value for every sample of a Prometheus text exposition."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        key, _, value = line.rpartition(" ")
        try:
            out[key] = float(value)
        except ValueError:
            continue
    return out
