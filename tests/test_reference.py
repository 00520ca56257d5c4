"""The NumPy reference against the spec's properties (no compiled code involved).

These pin the reference itself, so that "the C++ matches the reference" means something.
"""

from __future__ import annotations

import struct
import zlib

import ml_dtypes
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import reference as ref


def half_step_ok(x: np.ndarray, y: np.ndarray, stream: bytes) -> bool:
    return within_half_step(x, y, ref.decode(stream)[1].blocks)


def within_half_step(x: np.ndarray, y: np.ndarray, blocks) -> bool:
    """Every kept value within half a step of its block (+ the output dtype's rounding)."""
    x64 = np.asarray(x, dtype=np.float64).reshape(-1)
    y64 = np.asarray(y, dtype=np.float64).reshape(-1)
    kept = y64 != 0
    steps = [(hi - lo) / ((1 << w) - 1) if w else 0.0 for (_, _, _, w, lo, hi) in blocks]
    max_step = max(steps, default=0.0)
    # the output dtype's rounding: half an ulp of the decoded value, as binary64
    ulp = np.spacing(np.abs(y64[kept]).astype(np.asarray(y).dtype).astype(np.float32))
    ulp = ulp.astype(np.float64) * 2.0 ** (23 - ml_dtypes.finfo(np.asarray(y).dtype).nmant)
    return bool(np.all(np.abs(x64[kept] - y64[kept]) <= max_step / 2 * (1 + 1e-12) + ulp))


@pytest.mark.parametrize("n", [1, 7, 576, 4096])
@pytest.mark.parametrize("s_ppb", [0, 500_000_000, 900_000_000, 999_000_000])
def test_exact_k_and_magnitude_order(n: int, s_ppb: int) -> None:
    x = np.random.default_rng(n + s_ppb).standard_normal(n).astype(np.float32)
    stream = ref.encode(x, ref.default_params(sparsity_ppb=s_ppb))
    y, account = ref.decode(stream)
    k = ref.keep_count(n, np.count_nonzero(x), s_ppb)
    assert np.count_nonzero(y) == k == account.kept
    kept = y != 0
    if 0 < k < n:
        assert np.abs(x[kept]).min() >= np.abs(x[~kept]).max()
    assert np.all(np.sign(y[kept]) == np.sign(x[kept]))
    assert half_step_ok(x, y, stream)


def test_k_uses_integer_ppb_not_float_product() -> None:
    # floor((1 - 0.9) * 10) is 0 in binary64; the spec's integer rule gives 1.
    x = np.arange(1, 11, dtype=np.float32)
    y, _ = ref.decode(ref.encode(x, ref.default_params(sparsity_ppb=900_000_000)))
    assert np.count_nonzero(y) == 1 and y[-1] != 0


def test_ties_follow_the_draw_and_the_seed() -> None:
    x = np.ones(1000, dtype=np.float32)
    picks = []
    for seed in (0, 0, 1):
        y, _ = ref.decode(ref.encode(x, ref.default_params(seed=seed)))
        picks.append(np.flatnonzero(y))
    assert np.array_equal(picks[0], picks[1])
    assert not np.array_equal(picks[0], picks[2])
    expected = np.sort(np.argsort(ref.draw(0, np.arange(1000)), kind="stable")[:100])
    assert np.array_equal(picks[0], expected)


def test_draw_is_splitmix64() -> None:
    # splitmix64 seeded with 0: first outputs are the published sequence.
    assert [int(v) for v in ref.draw(0, np.arange(3))] == [
        0xE220A8397B1DCDAF,
        0x6E789E6AA1B965F4,
        0x06C45D188009454F,
    ]


def test_asymmetry_prefers_negatives() -> None:
    x = np.concatenate([np.linspace(1, 2, 500), -np.linspace(1, 2, 500)]).astype(np.float32)
    counts = []
    for asym in (0, 300_000_000):
        y, _ = ref.decode(ref.encode(x, ref.default_params(asym_ppb=asym)))
        counts.append(((y > 0).sum(), (y < 0).sum()))
    assert sum(counts[0]) == sum(counts[1]) == 100
    assert counts[1][1] > counts[0][1]


def test_multilevel_widths_and_abq() -> None:
    x = np.random.default_rng(3).standard_normal(4096).astype(np.float32)
    _, acc = ref.decode(ref.encode(x, ref.default_params(levels=[8, 4, 2])))
    assert [b[3] for b in acc.blocks] == [8, 4, 2, 8, 4, 2]
    _, acc0 = ref.decode(ref.encode(x, ref.default_params(delta_micro=0)))
    assert all(b[3] == 8 for b in acc0.blocks)
    _, acc_big = ref.decode(ref.encode(x, ref.default_params(delta_micro=2_000_000)))
    assert all(b[3] < 8 for b in acc_big.blocks)


def test_outliers_keep_half_step_bound_at_any_magnitude() -> None:
    x = np.random.default_rng(5).standard_normal(300).astype(np.float32)
    x[[0, 1]] = [3.0e38, -1.0e38]
    stream = ref.encode(x, ref.default_params(sparsity_ppb=0, bits=16, delta_micro=0))
    y, _ = ref.decode(stream)
    assert np.all(np.isfinite(y)) and half_step_ok(x, y, stream)


@pytest.mark.parametrize("dtype", [np.float16, ml_dtypes.bfloat16])
def test_half_precision_dtypes(dtype) -> None:
    x = np.random.default_rng(9).standard_normal((7, 33)).astype(dtype)
    stream = ref.encode(x, ref.default_params(sparsity_ppb=500_000_000))
    y, _ = ref.decode(stream)
    assert y.dtype == np.dtype(dtype) and y.shape == x.shape
    assert half_step_ok(x.astype(np.float32), y, stream)


def test_rows_are_independent_groups() -> None:
    x = np.random.default_rng(4).standard_normal((5, 40)).astype(np.float32)
    x[0] *= 1000  # a massive-activation row must not steal the others' budget
    y, _ = ref.decode(ref.encode(x, ref.default_params(group_rows=1)))
    assert [np.count_nonzero(row) for row in y] == [4] * 5


def corrupt_streams(stream: bytes):
    def with_crc(body: bytes) -> bytes:
        return body + struct.pack("<I", zlib.crc32(body))

    body = stream[:-4]
    yield stream[:-1]  # truncated
    yield bytes([stream[0] ^ 1]) + stream[1:]  # magic
    yield with_crc(body[:4] + b"\x02" + body[5:])  # version
    yield stream[:20] + bytes([stream[20] ^ 0x10]) + stream[21:]  # bit flip, bad CRC
    yield with_crc(body[:7] + b"\x02" + body[8:])  # reserved flag bit
    yield with_crc(body[:-1] + bytes([body[-1] | 0x80]))  # non-zero padding bit


def test_corrupt_streams_are_rejected() -> None:
    x = np.random.default_rng(1).standard_normal(999).astype(np.float32)
    stream = ref.encode(x, ref.default_params())
    for bad in corrupt_streams(stream):
        with pytest.raises(ref.ReferenceFormatError):
            ref.decode(bad)
    with pytest.raises(ref.ReferenceFormatError):
        ref.decode(stream, max_elements=998)


@settings(max_examples=60, deadline=None)
@given(
    x=hnp.arrays(
        np.float32,
        hnp.array_shapes(min_dims=1, max_dims=3, max_side=40),
        elements=st.floats(-1e6, 1e6, width=32),
    ),
    s_ppb=st.integers(0, 999_999_999),
    asym=st.sampled_from([0, 250_000_000]),
    blocks=st.tuples(st.integers(1, 5), st.integers(1, 5)),
    bits=st.integers(1, 16),
    rows=st.booleans(),
)
def test_bound_and_round_trip_properties(x, s_ppb, asym, blocks, bits, rows) -> None:
    params = ref.default_params(
        sparsity_ppb=s_ppb,
        asym_ppb=asym,
        blocks_pos=blocks[0],
        blocks_neg=blocks[1],
        bits=bits,
        group_rows=int(rows),
        chunk_log2=6,
    )
    stream = ref.encode(x, params)
    assert len(stream) <= ref.size_bound(x.shape, 1, params)
    y, _ = ref.decode(stream)
    groups = ref.group_count(x.shape, int(rows))
    n = x.size // groups
    for g in range(groups):
        xs, ys = x.reshape(-1)[g * n : (g + 1) * n], y.reshape(-1)[g * n : (g + 1) * n]
        assert np.count_nonzero(ys) == ref.keep_count(n, np.count_nonzero(xs), s_ppb)
    assert half_step_ok(x, y, stream)
