"""Small parts of the serve path that per-request costs were cut from (RESULTS §7.3.3, §7.3.4).

Each is held to what it replaced: histograms fed a batch at a time against observing one by one,
the asyncio front's reply queue against asyncio.Queue, the fixed flow-control window against the
caps it must hold, the queue-depth gauge against the queue it reads, the drained completion
reader against grpc.aio's one byte per call (nothing lost, nothing blocking).
"""

from __future__ import annotations

import asyncio
import math

import pytest

pytest.importorskip("grpc")
pytest.importorskip("prometheus_client")

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from prometheus_client import CollectorRegistry, Histogram, generate_latest  # noqa: E402

from slicer.serve import wire  # noqa: E402
from slicer.serve.metrics import _TIME_BUCKETS, observe_many, parse  # noqa: E402
from slicer.serve.server import _Replies  # noqa: E402

# values on, just below and just above every bucket bound, plus the awkward ones
_EDGES = [b * f for b in _TIME_BUCKETS for f in (1.0, 1 - 1e-12, 1 + 1e-12)]
_VALUES = st.one_of(
    st.sampled_from(_EDGES + [0.0, -0.0, -1e-3, 1e9, math.inf]),
    st.floats(-1.0, 10.0, allow_nan=False),
)


def _exposition(values: list[float], bulk: bool) -> dict[str, float]:
    registry = CollectorRegistry()
    h = Histogram("h", "test", buckets=_TIME_BUCKETS, registry=registry)
    if bulk:
        observe_many(h, values)
    else:
        for v in values:
            h.observe(v)
    return parse(generate_latest(registry).decode())


@settings(max_examples=300, deadline=None)
@given(chunks=st.lists(st.lists(_VALUES, max_size=20), max_size=6))
def test_observe_many_equals_observe_one_by_one(chunks) -> None:
    flat = [v for chunk in chunks for v in chunk]
    one_by_one = _exposition(flat, bulk=False)
    registry = CollectorRegistry()
    h = Histogram("h", "test", buckets=_TIME_BUCKETS, registry=registry)
    for chunk in chunks:  # several batches into one histogram
        observe_many(h, chunk)
    bulk = parse(generate_latest(registry).decode())
    assert bulk.keys() == one_by_one.keys()
    for key, value in one_by_one.items():
        if key == "h_sum":  # the same numbers summed in another order
            assert math.isclose(bulk[key], value, rel_tol=1e-12, abs_tol=1e-12) or (
                math.isinf(value) and bulk[key] == value
            )
        elif not key.startswith("h_created"):
            assert bulk[key] == value, key


def test_observe_many_nan_counts_in_no_bucket() -> None:
    bulk, one = _exposition([0.5, math.nan], bulk=True), _exposition([0.5, math.nan], bulk=False)
    assert math.isnan(bulk.pop("h_sum")) and math.isnan(one.pop("h_sum"))
    assert {k: v for k, v in bulk.items() if "created" not in k} == {
        k: v for k, v in one.items() if "created" not in k
    }


def test_replies_queue_is_fifo_and_wakes_its_reader() -> None:
    async def run() -> list:
        q = _Replies()
        with pytest.raises(asyncio.QueueEmpty):
            q.get_nowait()
        got: list = []

        async def reader() -> None:
            while (item := await q.get()) is not None:
                got.append(item)

        task = asyncio.create_task(reader())
        await asyncio.sleep(0)  # the reader waits on an empty queue
        q.put_nowait(1)
        q.put_nowait(2)
        await asyncio.sleep(0)
        q.put_nowait((3, "status"))
        assert q.qsize() == 1
        q.put_nowait(None)
        await asyncio.wait_for(task, 5)
        q.put_nowait(4)
        assert q.get_nowait() == 4 and q.qsize() == 0
        return got

    assert asyncio.run(run()) == [1, 2, (3, "status")]


def test_reader_cancelled_while_waiting_leaves_queue_usable() -> None:
    async def run() -> object:
        q = _Replies()
        task = asyncio.create_task(q.get())
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        q.put_nowait("after")  # a cancelled waiter is skipped, the item stays
        return await asyncio.wait_for(q.get(), 5)

    assert asyncio.run(run()) == "after"


def test_queue_depth_gauge_reads_the_queue() -> None:
    from slicer.serve import ServeConfig, TailEngine
    from slicer.serve.server import Backend
    from slicer.serve.toy import TOY_CUT, toy_model

    backend = Backend(TailEngine(toy_model(), TOY_CUT), ServeConfig(metrics_port=None))

    def depth() -> float:
        return parse(backend.metrics.render()[0].decode())["slicer_serve_queue_depth"]

    async def run() -> list[float]:
        backend._queue = asyncio.Queue()
        seen = [depth()]
        for k in range(3):
            backend._queue.put_nowait(k)
        seen.append(depth())
        backend._queue.get_nowait()
        seen.append(depth())
        return seen

    try:
        assert depth() == 0  # no queue yet
        assert asyncio.run(run()) == [0, 3, 2]
    finally:
        backend._executor.shutdown(wait=False)


@pytest.mark.parametrize("request_cap,reply_cap", [(64, 64), (4 << 20, 4 << 20), (1 << 30, 64)])
def test_channel_window_holds_the_largest_message(request_cap, reply_cap) -> None:
    options = dict(wire.channel_options(request_cap, reply_cap))
    assert options["grpc.max_receive_message_length"] == request_cap + wire.TRANSPORT_SLACK
    assert options["grpc.max_send_message_length"] == reply_cap + wire.TRANSPORT_SLACK
    assert options["grpc.http2.bdp_probe"] == 0
    window = options["grpc.http2.lookahead_bytes"]
    assert window >= max(request_cap, reply_cap) + wire.TRANSPORT_SLACK
    assert window < 2**31  # a gRPC int channel argument


# ---------------------------------------------------------------- event-loop wake-ups (§7.3.4)


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 300), st.integers(0, 3))
def test_drained_reader_leaves_one_byte_for_the_original(waiting, later) -> None:
    """The wrapper takes all but one waiting byte; the reader it wraps takes the last one
    (never blocking, never finding none), and bytes written afterwards stay for later."""
    import socket

    from slicer.serve.loop_wakeups import drained

    a, b = socket.socketpair()
    try:
        a.setblocking(False)
        got: list[bytes] = []

        def reader() -> None:  # what grpc.aio's _handle_events does first: one byte
            got.append(a.recv(1))
            b.send(b"x" * later)  # completions queued while the reader runs

        b.send(b"1" * waiting)
        drained(a, reader)()
        assert got == [b"1"]
        left = b""
        with pytest.raises(BlockingIOError):
            while True:
                left += a.recv(4096)
        assert left == b"x" * later
    finally:
        a.close()
        b.close()


def test_grpc_completion_reader_is_wrapped_once() -> None:
    """On a running grpc.aio server the loop's completion reader is wrapped (grpcio's poller
    reads a socket pair), a second call wraps nothing more, and calls still complete."""
    import grpc

    from slicer.serve.loop_wakeups import drain_completion_wakeups

    def wrapped(loop: asyncio.AbstractEventLoop) -> int:
        handles = [key.data[0] for key in loop._selector.get_map().values()]
        return sum(getattr(h._callback, "slicer_drained", False) for h in handles)

    async def main() -> tuple[bool, bool, int, int, bytes]:
        server = grpc.aio.server()
        echo = grpc.unary_unary_rpc_method_handler(lambda request, context: request)
        server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler("t.Echo", {"Echo": echo}),)
        )
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        loop = asyncio.get_running_loop()
        first = drain_completion_wakeups(loop)
        second = drain_completion_wakeups(loop)
        count = wrapped(loop)
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            answers = await asyncio.gather(
                *(channel.unary_unary("/t.Echo/Echo")(bytes([k])) for k in range(50))
            )
        await server.stop(0)
        return first, second, count, len(answers), b"".join(answers)

    first, second, count, n, joined = asyncio.run(main())
    assert first == second and count == int(first)
    assert n == 50 and joined == bytes(range(50))


def test_workers_zero_is_the_asyncio_front_only() -> None:
    from slicer.serve import ServeConfig

    assert ServeConfig(workers=0).workers == 0
    for bad in (dict(workers=-1), dict(workers=0, front="sync"), dict(workers=257)):
        with pytest.raises(ValueError, match="workers"):
            ServeConfig(**bad)
