"""Contexts, the encode fast path and encode_batch in one C call: the bytes never change."""

from __future__ import annotations

import os
import threading
import time

import ml_dtypes
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import slicer

DTYPES = [np.float32, np.float16, ml_dtypes.bfloat16]


def _data(shape: tuple[int, ...], seed: int, dtype) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


@pytest.mark.parametrize("threads", [0, 1, 2, 3])
@pytest.mark.parametrize("n", [1, 7, 4096, 70001])
def test_context_streams_equal_single_thread(threads: int, n: int) -> None:
    context = slicer.Context(threads)
    assert context.threads >= 1
    x = _data((n,), n, np.float32)
    expected = slicer.encode(x, threads=1)
    assert slicer.encode(x, context=context) == expected
    assert slicer.encode(x, context=context, threads=2) == expected
    rows = _data((3, n), n + 1, np.float16)
    assert slicer.encode(rows, groups="rows", context=context) == slicer.encode(
        rows, groups="rows", threads=1
    )


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("axis", [0, 1, -1])
@pytest.mark.parametrize("groups", ["tensor", "rows"])
def test_encode_batch_matches_item_by_item(dtype, axis: int, groups: str) -> None:
    x = _data((6, 5, 33), 3, dtype)
    streams = slicer.encode_batch(x, axis=axis, sparsity=0.7, groups=groups, seed=5)
    assert len(streams) == x.shape[axis]
    for i, stream in enumerate(streams):
        assert stream == slicer.encode(np.take(x, i, axis), sparsity=0.7, groups=groups, seed=5)


def test_encode_batch_edge_shapes() -> None:
    assert slicer.encode_batch(np.zeros((0, 4), np.float32)) == []
    one_d = _data((9,), 1, np.float32)  # items are scalars
    assert slicer.encode_batch(one_d, sparsity=0.0) == [
        slicer.encode(one_d[i], sparsity=0.0) for i in range(9)
    ]
    with pytest.raises(ValueError, match="groups='rows'"):
        slicer.encode_batch(one_d, groups="rows")
    bad = _data((64, 16), 2, np.float32)
    bad[40, 3] = np.inf
    with pytest.raises(ValueError, match="NaN or infinity"):
        slicer.encode_batch(bad)
    # max_bytes: slice by slice, still item-identical.
    x = _data((3, 576), 4, np.float32)
    assert slicer.encode_batch(x, max_bytes=120) == [
        slicer.encode(x[i], max_bytes=120) for i in range(3)
    ]


@settings(max_examples=25, deadline=None)
@given(
    items=st.integers(0, 9),
    inner=st.lists(st.integers(1, 70), min_size=0, max_size=2),
    sparsity=st.sampled_from([0.0, 0.5, 0.9, 0.99]),
    dtype=st.sampled_from(DTYPES),
    threads=st.integers(0, 3),
    seed=st.integers(0, 2**32),
)
def test_encode_batch_property(items, inner, sparsity, dtype, threads, seed) -> None:
    x = _data((items, *inner), seed % 1000, dtype)
    context = slicer.Context(threads)
    streams = slicer.encode_batch(x, sparsity=sparsity, seed=seed, context=context)
    assert streams == [slicer.encode(x[i], sparsity=sparsity, seed=seed) for i in range(items)]


def test_fast_path_keeps_argument_checks() -> None:
    x = _data((576,), 0, np.float32)
    reference = slicer.encode(x, seed=1)
    assert slicer.encode(x, seed=1) == reference  # cached now
    with pytest.raises(TypeError, match="seed"):
        slicer.encode(x, seed=True)  # equal to 1 and hashes alike, but a bool
    assert slicer.encode(x, sparsity=np.float64(0.9), seed=1) == reference
    with pytest.raises(ValueError, match="sparsity"):
        slicer.encode(x, sparsity=float("nan"))
    with pytest.raises(TypeError, match="context"):
        slicer.encode(x, context="pool")
    big_endian = x.astype(">f4")
    assert slicer.encode(big_endian, seed=1) == reference
    strided = np.repeat(x, 2)[::2]
    assert slicer.encode(strided, seed=1) == reference
    x[3] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        slicer.encode(x, seed=1)


def test_context_arguments() -> None:
    with pytest.raises(ValueError, match="threads"):
        slicer.Context(-1)
    with pytest.raises(TypeError, match="threads"):
        slicer.Context(True)
    with pytest.raises(TypeError, match="threads"):
        slicer.Context(1.5)
    assert "threads=" in repr(slicer.Context(1))
    assert slicer.default_context() is slicer.default_context()


def _thread_count() -> int:
    return len(os.listdir("/proc/self/task"))


@pytest.mark.skipif(not os.path.isdir("/proc/self/task"), reason="needs /proc")
def test_concurrent_callers_start_no_threads() -> None:
    big = _data((1 << 18,), 7, np.float32)
    small = _data((576,), 8, np.float32)
    expected = {id(big): slicer.encode(big, threads=1), id(small): slicer.encode(small)}
    slicer.encode(big)  # the shared pool is started by now
    errors: list[str] = []
    peak = [0]
    start = threading.Barrier(8)

    def worker(t: int) -> None:
        start.wait()
        for r in range(6):
            x = big if (t + r) % 2 else small
            if slicer.encode(x) != expected[id(x)]:
                errors.append(f"thread {t} round {r}")
            peak[0] = max(peak[0], _thread_count())

    before = _thread_count()
    callers = [threading.Thread(target=worker, args=(t,)) for t in range(8)]
    for caller in callers:
        caller.start()
    for caller in callers:
        caller.join()
    assert not errors
    # Only the 8 Python threads themselves: the codec started none for them.
    assert peak[0] <= before + 8
    for _ in range(100):  # a joined thread leaves /proc a moment after join() returns
        if _thread_count() == before:
            break
        time.sleep(0.01)
    assert _thread_count() == before


def _sixteen_bit_input(n: int, kind: str, dtype) -> np.ndarray:
    rng = np.random.default_rng(n)
    if kind == "normal":
        x = rng.standard_normal(n)
    elif kind == "relu_ties":  # zeros and many equal magnitudes
        x = np.maximum(rng.integers(-4, 5, size=n), 0) * 0.5
    else:  # outliers, and float16 subnormals
        x = rng.standard_normal(n)
        x[rng.integers(0, n, size=max(1, n // 1000))] *= 1e3
        x[rng.integers(0, n, size=max(1, n // 50))] = 3e-6
    return x.astype(dtype)


@pytest.mark.parametrize("dtype", [np.float16, ml_dtypes.bfloat16])
@pytest.mark.parametrize("kind", ["normal", "relu_ties", "outliers"])
@pytest.mark.parametrize("n", [65_536, 150_001])
def test_large_sixteen_bit_groups_match_reference(dtype, kind: str, n: int) -> None:
    """float16 / bfloat16 groups of >= 64K elements are selected from the 16-bit input in place
    (no widened copy): the same bytes as the NumPy reference, at several thread counts."""
    import reference as ref
    from backend_params import api_kwargs

    x = _sixteen_bit_input(n, kind, dtype)
    for overrides in ({}, {"sparsity_ppb": 500_000_000, "seed": 3}):
        params = ref.default_params(**overrides)
        expected = ref.encode(x, params)
        for threads in (1, 2, 3):
            assert slicer.encode(x, threads=threads, **api_kwargs(params)) == expected


@pytest.mark.parametrize("dtype", [np.float16, ml_dtypes.bfloat16])
def test_large_sixteen_bit_group_rejects_nan(dtype) -> None:
    x = _sixteen_bit_input(100_000, "normal", dtype)
    x[77_777] = np.nan
    with pytest.raises(ValueError, match="NaN or infinity"):
        slicer.encode(x)
    x[77_777] = np.inf
    with pytest.raises(ValueError, match="NaN or infinity"):
        slicer.encode(x)


@pytest.mark.parametrize("threads", [0, 1, 3])
@pytest.mark.parametrize("mode", ["dense", "auto"])
def test_dense_modes_run_on_the_given_context(threads: int, mode: str) -> None:
    """`context=` in the dense modes: the same bytes as without, on the context's pool (before,
    the dense modes ignored `context` and kept their stream in thread-local scratch)."""
    context = slicer.Context(threads)
    x = _data((70001,), 11, np.float32)
    budget = {"step": 0.05} if mode == "dense" else {"max_bytes": 70001 // 4}
    kw = {"mode": mode, "chunk_size": 4096, **budget}
    expected = slicer.encode(x, threads=1, **kw)
    assert slicer.encode(x, context=context, **kw) == expected
    assert slicer.encode(x, context=context, threads=2, **kw) == expected
    err = {"mode": "auto", "rel_error": 0.05, "groups": "rows"}
    rows = _data((7, 333), 12, np.float16)
    assert slicer.encode(rows, context=context, **err) == slicer.encode(rows, **err)
    with pytest.raises(TypeError, match="slicer.Context"):
        slicer.encode(x, context=object(), **kw)


def test_dense_encode_from_many_threads_on_one_context() -> None:
    """One context, several Python threads: calls are serialized on it, every stream right."""
    context = slicer.Context(2)
    inputs = [_data((20000 + 17 * i,), i, np.float32) for i in range(6)]
    expected = [slicer.encode(x, mode="dense", step=0.02) for x in inputs]
    errors: list[int] = []

    def worker(i: int) -> None:
        for _ in range(5):
            if slicer.encode(inputs[i], mode="dense", step=0.02, context=context) != expected[i]:
                errors.append(i)

    callers = [threading.Thread(target=worker, args=(i,)) for i in range(6)]
    for caller in callers:
        caller.start()
    for caller in callers:
        caller.join()
    assert not errors
