"""docs/format.md §15.1: the default chunk size of modes 1 and 2. The C++ rule
(format/dense_spec.hpp AutoChunkLog2, C ABI slicer_dense_auto_chunk_log2) equals the NumPy
reference's for every size; `encode` / `size_bound` without chunk_size (or with "auto") take
it for mode="dense" / "auto", the same bytes as the explicit size; mode 3 and format 1 keep
2**14; an explicit chunk_size is taken as given."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import reference_dense as rd
import slicer
from slicer import _core

# the worked values of §15.1 and the ends of its range
WORKED = {
    0: 14,
    8191: 14,
    8192: 14,
    16384: 13,
    21952: 15,  # EfficientNet-Lite0 after block 10: 16 384 + a one-state tail of 5 568 at 2**14
    31360: 14,  # after block 4: two four-state chunks at 2**14
    50000: 13,
    131072: 15,
    262143: 16,
    262144: 14,
    1 << 20: 14,
}


def sizes_to_check() -> list[int]:
    every = list(range(0, (1 << 18) + 4096, 61))
    near = [m * 8192 + d for m in range(0, 33) for d in (-2, -1, 0, 1, 2)]
    return sorted({n for n in every + near if n >= 0})


def test_rule_matches_reference_at_every_checked_size():
    for n in sizes_to_check():
        assert _core.dense_auto_chunk_log2(n) == rd.auto_chunk_log2(n), n


@settings(max_examples=300, deadline=None)
@given(st.integers(min_value=0, max_value=1 << 22))
def test_rule_matches_reference(n):
    assert _core.dense_auto_chunk_log2(n) == rd.auto_chunk_log2(n)


@pytest.mark.parametrize("n,want", sorted(WORKED.items()))
def test_worked_values(n, want):
    assert rd.auto_chunk_log2(n) == want
    assert _core.dense_auto_chunk_log2(n) == want


def test_cost_of_the_worked_cut():
    # 21 952 at 2**14: one four-state chunk and a one-state tail; at 2**15 one four-state chunk
    assert rd.chunk_cut_cost(21952, 14) == 22 * 16384 + 46 * 5568
    assert rd.chunk_cut_cost(21952, 15) == 22 * 21952
    # 50 000 at 2**13: a set of four, a pair and a one-state tail of 848
    assert rd.chunk_cut_cost(50000, 13) == 10 * 32768 + 18 * 16384 + 46 * 848


def laplace(shape, seed: int, dtype=np.float32) -> np.ndarray:
    return np.random.default_rng(seed).laplace(0.0, 1.0, shape).astype(dtype)


@pytest.mark.parametrize("n", [5000, 16384, 21952, 31360, 50000, 131072, 300000])
@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_default_is_the_rule_and_explicit_size_gives_the_same_bytes(n, dtype):
    x = laplace(n, n, dtype)
    want = 1 << rd.auto_chunk_log2(n)
    for chunk in (None, "auto"):
        stream = slicer.encode(x, mode="dense", step=0.25, chunk_size=chunk)
        assert slicer.inspect(stream).chunk_size == want
        assert stream == slicer.encode(x, mode="dense", step=0.25, chunk_size=want)
    budget = n // 2
    stream = slicer.encode(x, mode="auto", max_bytes=budget)
    assert slicer.inspect(stream).chunk_size == want
    assert len(stream) <= budget
    assert stream == slicer.encode(x, mode="auto", max_bytes=budget, chunk_size=want)
    bound = slicer.size_bound(x.shape, x.dtype, mode="dense")
    assert bound == slicer.size_bound(x.shape, x.dtype, mode="dense", chunk_size=want)
    assert len(slicer.encode(x, mode="dense", step=0.25)) <= bound


def test_reference_encoder_writes_the_same_default_stream():
    x = laplace(21952, 7)
    stream = slicer.encode(x, mode="dense", step=0.5)
    params = rd.default_params(step=0.5, chunk_log2=rd.auto_chunk_log2(x.size))
    assert stream == rd.encode(x, params)
    values, _ = rd.decode(stream)
    assert np.array_equal(slicer.decode(stream), values.reshape(x.shape))


def test_shapes_count_every_element():
    # groups and classes do not change the rule: the element count does
    x = laplace((343, 64), 3)  # 21 952 elements in rows
    want = 1 << rd.auto_chunk_log2(x.size)
    assert (
        slicer.inspect(slicer.encode(x, mode="dense", step=0.3, groups="rows")).chunk_size == want
    )
    stream = slicer.encode(x, mode="auto", rel_error=0.05, classes="auto")
    assert slicer.inspect(stream).chunk_size == want
    assert slicer.inspect(slicer.encode(x, mode="dense", step=0.3, classes=4)).chunk_size == want
    assert (
        slicer.inspect(slicer.encode(np.float32(1.5), mode="dense", step=0.3)).chunk_size == 16384
    )


def test_trellis_and_format_1_keep_2_14_and_explicit_sizes_are_kept():
    x = laplace(21952, 5)
    assert (
        slicer.inspect(slicer.encode(x, mode="dense", step=0.3, trellis=True)).chunk_size == 16384
    )
    assert slicer.inspect(slicer.encode(x)).chunk_size == 16384
    assert slicer.size_bound(x.shape, x.dtype) == slicer.size_bound(
        x.shape, x.dtype, chunk_size=16384
    )
    for chunk in (64, 4096, 16384, 1 << 20):
        assert (
            slicer.inspect(slicer.encode(x, mode="dense", step=0.3, chunk_size=chunk)).chunk_size
            == chunk
        )


def test_format_1_rejects_auto_and_bad_sizes_still_fail():
    x = laplace(100, 1)
    with pytest.raises(ValueError, match="chunk_size='auto' belongs to mode='dense'"):
        slicer.encode(x, chunk_size="auto")
    with pytest.raises(ValueError, match="chunk_size='auto' belongs to mode='dense'"):
        slicer.size_bound(x.shape, x.dtype, chunk_size="auto")
    with pytest.raises(ValueError, match="power of two"):
        slicer.encode(x, mode="dense", step=0.3, chunk_size=1000)
    with pytest.raises((TypeError, ValueError)):
        slicer.encode(x, mode="dense", step=0.3, chunk_size="big")
