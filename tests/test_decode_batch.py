"""slicer.decode_batch against per-stream slicer.decode; slicer.decode(context=)."""

from __future__ import annotations

import threading
import time

import ml_dtypes
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import slicer

DTYPES = (np.float32, np.float16, ml_dtypes.bfloat16)


def _array(shape: tuple[int, ...], seed: int, dtype) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(shape) * rng.uniform(0.1, 10)).astype(dtype)


def _stream(shape: tuple[int, ...], seed: int, dtype, dense: bool) -> bytes:
    x = _array(shape, seed, dtype)
    if dense:
        return slicer.encode(x, mode="dense", step=0.05)
    return slicer.encode(x, sparsity=0.8, bits=6, groups="rows" if len(shape) > 1 else "tensor")


def _assert_rows_equal(batch: np.ndarray, streams: list, errors: list) -> None:
    for i, s in enumerate(streams):
        assert errors[i] is None, errors[i]
        one = slicer.decode(s)
        assert batch[i].dtype == one.dtype and batch[i].shape == one.shape
        assert batch[i].tobytes() == one.tobytes(), i


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(1, 7, 3), (33,), (2, 1, 129), (1,)])
@pytest.mark.parametrize("count", [1, 2, 5, 17])
def test_matches_per_stream_decode(dtype, shape, count: int) -> None:
    streams = [_stream(shape, 100 * count + i, dtype, dense=i % 3 == 1) for i in range(count)]
    batch, errors = slicer.decode_batch(streams)
    assert batch.shape == (count, *shape) and batch.dtype == np.dtype(dtype)
    _assert_rows_equal(batch, streams, errors)


def test_float64_dense_and_inputs_of_every_kind() -> None:
    shape = (3, 40)
    raw = [slicer.encode(_array(shape, i, np.float64), mode="dense", step=0.01) for i in range(4)]
    kinds = [raw[0], bytearray(raw[1]), memoryview(raw[2]), np.frombuffer(raw[3], np.uint8)]
    batch, errors = slicer.decode_batch(kinds, threads=2)
    assert batch.dtype == np.float64
    _assert_rows_equal(batch, raw, errors)


@pytest.mark.parametrize("threads", [0, 1, 3])
def test_out_and_context(threads: int) -> None:
    shape = (4, 5, 6)
    streams = [_stream(shape, i, np.float32, dense=i % 2 == 0) for i in range(9)]
    out = np.full((9, *shape), np.nan, np.float32)
    ctx = slicer.Context(threads)
    result, errors = slicer.decode_batch(streams, out=out, threads=threads, context=ctx)
    assert result is out
    _assert_rows_equal(out, streams, errors)


def test_torch_out() -> None:
    torch = pytest.importorskip("torch")
    shape = (2, 9)
    streams = [_stream(shape, i, ml_dtypes.bfloat16, dense=False) for i in range(3)]
    out = torch.empty((3, *shape), dtype=torch.bfloat16)
    result, errors = slicer.decode_batch(streams, out=out)
    assert result is out
    ref = np.stack([slicer.decode(s) for s in streams])
    assert out.view(torch.int16).numpy().tobytes() == ref.view(np.int16).tobytes()


def test_bad_items_fail_alone() -> None:
    shape = (2, 50)
    streams = [_stream(shape, i, np.float32, dense=i % 2 == 1) for i in range(8)]
    truncated = streams[1][:-7]
    flipped = bytearray(streams[2])
    flipped[len(flipped) // 2] ^= 0x10
    other_shape = _stream((2, 51), 9, np.float32, dense=False)
    other_dtype = _stream(shape, 10, np.float16, dense=True)
    mixed = [
        streams[0],
        truncated,
        bytes(flipped),
        streams[3],
        other_shape,
        streams[5],
        other_dtype,
        b"",
        b"SLICER-not-really",
    ]
    out = np.full((len(mixed), *shape), 7.0, np.float32)
    _, errors = slicer.decode_batch(mixed, out=out, threads=3)
    for i in (0, 3, 5):
        assert errors[i] is None
        assert out[i].tobytes() == slicer.decode(mixed[i]).tobytes()
    for i in (1, 2, 7, 8):
        assert isinstance(errors[i], slicer.FormatError), (i, errors[i])
        with pytest.raises(slicer.FormatError) as info:
            slicer.decode(mixed[i])
        assert str(errors[i]) == str(info.value) and errors[i].status == info.value.status
    for i in (4, 6):
        assert type(errors[i]) is ValueError and f"streams[{i}]" in str(errors[i])
    for i in (1, 2, 4, 6, 7, 8):
        assert not out[i].any(), i  # failed rows are zeroed


def test_shape_from_first_good_stream() -> None:
    good = [_stream((3, 3), i, np.float16, dense=True) for i in range(3)]
    batch, errors = slicer.decode_batch([b"junk", good[0], good[1], b"", good[2]])
    assert batch.shape == (5, 3, 3) and batch.dtype == np.float16
    assert [e is None for e in errors] == [False, True, True, False, True]
    assert not batch[0].any() and not batch[3].any()
    for row, s in zip((1, 2, 4), good, strict=True):
        assert batch[row].tobytes() == slicer.decode(s).tobytes()
    none, errors = slicer.decode_batch([b"junk", b""])
    assert none is None and all(isinstance(e, slicer.FormatError) for e in errors)


def test_max_elements_per_item() -> None:
    streams = [_stream((10, 10), i, np.float32, dense=i == 1) for i in range(2)]
    out = np.zeros((2, 10, 10), np.float32)
    _, errors = slicer.decode_batch(streams, out=out, max_elements=99)
    assert all(isinstance(e, slicer.FormatError) and e.status == 15 for e in errors)
    _, errors = slicer.decode_batch(streams, out=out, max_elements=100)
    assert errors == [None, None]


def test_argument_errors() -> None:
    s = _stream((4,), 0, np.float32, dense=False)
    with pytest.raises(TypeError, match="streams"):
        slicer.decode_batch(s)
    with pytest.raises(TypeError, match="streams"):
        slicer.decode_batch(iter([s]))
    with pytest.raises(TypeError, match="stream"):
        slicer.decode_batch([s, 3])
    with pytest.raises(ValueError, match="empty"):
        slicer.decode_batch([])
    out, errors = slicer.decode_batch([], out=np.zeros((0, 4), np.float32))
    assert out.shape == (0, 4) and errors == []
    with pytest.raises(ValueError, match="shape"):
        slicer.decode_batch([s, s], out=np.zeros((3, 4), np.float32))
    with pytest.raises(ValueError, match="contiguous"):
        slicer.decode_batch([s], out=np.zeros((1, 8), np.float32)[:, ::2])
    with pytest.raises(TypeError, match="dtype"):
        slicer.decode_batch([s], out=np.zeros((1, 4), np.int32))
    with pytest.raises(TypeError, match="threads"):
        slicer.decode_batch([s], threads=1.5)
    with pytest.raises(ValueError, match="max_elements"):
        slicer.decode_batch([s], max_elements=-1)
    with pytest.raises(TypeError, match="context"):
        slicer.decode_batch([s], context="pool")


@settings(max_examples=40, deadline=None)
@given(
    count=st.integers(1, 12),
    shape=st.lists(st.integers(1, 9), min_size=1, max_size=3).map(tuple),
    dtype=st.sampled_from(DTYPES),
    dense=st.lists(st.booleans(), min_size=12, max_size=12),
    bad=st.lists(st.integers(0, 11), max_size=3),
    threads=st.integers(0, 4),
    seed=st.integers(0, 2**16),
)
def test_property(count, shape, dtype, dense, bad, threads, seed) -> None:
    streams = [_stream(shape, seed + i, dtype, dense[i]) for i in range(count)]
    corrupt = sorted({b for b in bad if b < count})
    for b in corrupt:
        damaged = bytearray(streams[b])
        damaged[(seed + b) % len(damaged)] ^= 0x41
        streams[b] = bytes(damaged)
    out = np.empty((count, *shape), dtype)
    _, errors = slicer.decode_batch(streams, out=out, threads=threads)
    for i, s in enumerate(streams):
        try:
            one = slicer.decode(s)
        except slicer.FormatError as exc:
            assert isinstance(errors[i], slicer.FormatError) and str(errors[i]) == str(exc)
            assert not out[i].view(np.uint8).any()
            continue
        assert errors[i] is None and out[i].tobytes() == one.tobytes()


def test_gil_released() -> None:
    # The counting thread gives the GIL up at every tick (a short sleep) and needs it back to
    # count: while a call holds the GIL it cannot count at all, while the call runs without
    # the GIL it counts every ~0.2 ms.
    shape = (1, 1 << 18)
    streams = [_stream(shape, i, np.float32, dense=False) for i in range(2)] * 24
    out = np.empty((len(streams), *shape), np.float32)
    ticks = 0
    running = threading.Event()
    stop = threading.Event()

    def count() -> None:
        nonlocal ticks
        running.set()
        while not stop.is_set():
            time.sleep(0.0002)
            ticks += 1

    worker = threading.Thread(target=count)
    worker.start()
    running.wait()
    start = time.perf_counter()
    before = ticks
    slicer.decode_batch(streams, out=out, threads=1)
    during = ticks - before
    elapsed = time.perf_counter() - start
    stop.set()
    worker.join()
    assert elapsed > 0.02 and during >= 5, (elapsed, during)


def test_decode_context_same_bytes() -> None:
    for dense, dtype in ((False, np.float32), (True, np.float16), (False, ml_dtypes.bfloat16)):
        s = _stream((3, 1000), 5, dtype, dense)
        ref = slicer.decode(s)
        for threads in (0, 1, 2):
            ctx = slicer.Context(threads)
            got = slicer.decode(s, context=ctx, threads=threads)
            assert got.dtype == ref.dtype and got.tobytes() == ref.tobytes()
    with pytest.raises(slicer.FormatError):
        slicer.decode(s[:-3], context=slicer.Context(2))
    with pytest.raises(TypeError, match="context"):
        slicer.decode(s, context=object())
    out = np.empty((3, 1000), ml_dtypes.bfloat16)
    assert slicer.decode(s, out=out, context=slicer.Context()) is out
    assert out.tobytes() == ref.tobytes()


def _c_abi():
    import ctypes

    lib = ctypes.CDLL(slicer._core.__file__)
    fn = lib.slicer_decode_batch
    p, sz = ctypes.c_void_p, ctypes.c_size_t
    fn.argtypes = [p, p, sz, ctypes.c_uint64, ctypes.c_int, p, ctypes.c_uint32, p, sz, p, p,
                   ctypes.c_uint32]  # fmt: skip
    fn.restype = ctypes.c_int
    ctx = lib.slicer_context_decode_batch
    ctx.argtypes = [p, *fn.argtypes]
    ctx.restype = ctypes.c_int
    return ctypes, fn, ctx


def test_c_abi_call_level_errors_and_item_statuses() -> None:
    ctypes, fn, ctx_fn = _c_abi()
    streams = [_stream((2, 3), i, np.float32, dense=i == 1) for i in range(3)]
    bufs = [ctypes.create_string_buffer(s, len(s)) for s in streams]
    srcs = (ctypes.c_void_p * 3)(*[ctypes.addressof(b) for b in bufs])
    sizes = (ctypes.c_size_t * 3)(*[len(s) for s in streams])
    shape = (ctypes.c_int64 * 2)(2, 3)
    out = np.zeros((3, 2, 3), np.float32)
    statuses = (ctypes.c_int * 3)(-7, -7, -7)
    failed = ctypes.c_size_t(99)

    def call(srcs=srcs, sizes=sizes, count=3, dtype=1, shape=shape, ndim=2, dst=None,
             dst_bytes=out.nbytes):  # fmt: skip
        dst = out.ctypes.data if dst is None else dst
        return fn(srcs, sizes, count, 1 << 31, dtype, shape, ndim, dst, dst_bytes, statuses,
                  ctypes.byref(failed), 1)  # fmt: skip

    assert call(srcs=None) == 1 and call(sizes=None) == 1  # INVALID_ARGUMENT
    assert call(dtype=9) == 2  # UNSUPPORTED_DTYPE
    assert call(shape=(ctypes.c_int64 * 2)(2, -3)) == 1
    assert call(dst_bytes=out.nbytes - 1) == 4  # BUFFER_TOO_SMALL
    assert call(dst=0) == 1
    assert call(ndim=33) == 1
    assert list(statuses) == [-7, -7, -7] and failed.value == 0  # untouched by call errors
    assert call(count=0, srcs=None, sizes=None) == 0 and failed.value == 0
    assert call() == 0 and list(statuses) == [0, 0, 0] and failed.value == 0
    for i, s in enumerate(streams):
        assert out[i].tobytes() == slicer.decode(s).tobytes()
    srcs[1] = None  # a NULL stream with a size: that item only
    sizes[2] = sizes[2] - 1  # a truncated one
    assert call() == 0 and failed.value == 2
    assert statuses[0] == 0 and statuses[1] == 1 and statuses[2] in (10, 13)
    assert not out[1].any() and not out[2].any()
    assert call(shape=(ctypes.c_int64 * 2)(3, 2)) == 0 and statuses[0] == 1  # shape mismatch
    assert ctx_fn(None, srcs, sizes, 3, 1 << 31, 1, shape, 2, out.ctypes.data, out.nbytes,
                  statuses, ctypes.byref(failed), 0) == 1  # fmt: skip


def test_empty_items() -> None:
    streams = [slicer.encode(np.zeros((0, 5), np.float32)) for _ in range(3)]
    batch, errors = slicer.decode_batch(streams, threads=2)
    assert batch.shape == (3, 0, 5) and errors == [None, None, None]
