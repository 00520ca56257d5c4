"""Format 2, dense mode: the C++ backend against the NumPy reference (tests/reference_dense.py),
the Python API, and hostile streams."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import reference_dense as rd
import slicer
from dense_tools import assert_reference_verdict, native, same_values, with_crc
from slicer import _core

DTYPES = [np.float32, np.float16, ml_dtypes.bfloat16, np.float64]


def sample(rng: np.random.Generator, n: int, dtype, outliers: bool = True) -> np.ndarray:
    x = rng.standard_normal(n) * 2.0
    x[rng.random(n) < 0.2] = 0.0  # exact zeros
    if outliers and n > 3:
        x[rng.integers(0, n, 3)] = [2.5e4, -1.3e4, 7e3]  # massive activations
    if dtype == np.float16:
        x = np.clip(x, -6e4, 6e4)
    return x.astype(dtype)


@pytest.mark.parametrize("n", [1, 7, 576, 4096, 5000])
@pytest.mark.parametrize("dtype", DTYPES)
def test_native_matches_reference(n, dtype):
    rng = np.random.default_rng(1000 + n)
    x = sample(rng, n, dtype)
    for step, rho in ((0.05, 128), (0.7, 70), (3.0, 1)):
        params = rd.default_params(step=step, rho_256=rho, chunk_log2=12)
        stream = rd.encode(x, params)
        assert native(x, params) == stream
        ref, _ = rd.decode(stream)
        assert same_values(slicer.decode(stream), ref)
        assert same_values(ref, rd.reconstruct(rd.plan(x, params)))


def test_native_matches_reference_999999():
    rng = np.random.default_rng(999_999)
    x = sample(rng, 999_999, np.float32)
    params = rd.default_params(step=1.5, rho_256=96, chunk_log2=16)
    stream = native(x, params)
    assert stream == rd.encode(x, params)
    y = slicer.decode(stream)
    assert same_values(y, rd.reconstruct(rd.plan(x, params)))
    # every element within (max(rho, 1 - rho) + |offset|) steps, outliers included
    o = max(abs(v) for v in slicer.inspect(stream).offsets)
    bound = (1 - 96 / 256 + o / 256) * float(np.float32(1.5)) * (1 + 1e-6)
    assert np.max(np.abs(y.astype(np.float64) - x)) <= bound


@pytest.mark.parametrize(
    "shape,layout,table",
    [
        ((6, 7, 5), 2, [0, 0x80, 0x81, 5, 0xF0, 3, 1]),
        ((9, 130), 1, [0, 0x80, 0x81, 5, 0xF0, 3, 1, 0x81, 0x80]),
        ((3, 4), 1, [0x81, 0x81, 0x81]),
        ((3, 4), 1, [0x80, 0x80, 0x80]),
        ((2, 3, 0), 2, [0x81, 1, 0x80]),
    ],
)
@pytest.mark.parametrize("dtype", DTYPES)
def test_group_tables(shape, layout, table, dtype):
    rng = np.random.default_rng(7)
    x = (rng.standard_normal(shape) * 3).astype(dtype)
    params = rd.default_params(step=0.1, layout=layout, group_table=table, chunk_log2=6)
    stream = rd.encode(x, params)
    assert native(x, params) == stream
    ref, _ = rd.decode(stream)
    y = slicer.decode(stream)
    assert same_values(y, ref)
    gid = rd.group_of(shape, layout)
    for g, b in enumerate(table):
        sel = (gid == g).reshape(shape)
        if b == 0x81:
            assert same_values(y[sel], x[sel])
        if b == 0x80:
            assert not np.any(y[sel].astype(np.float64))


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(0, 300),
    seed=st.integers(0, 2**32 - 1),
    log_step=st.floats(-8, 6),
    rho=st.integers(1, 128),
    chunk_log2=st.integers(6, 8),
    dtype=st.sampled_from(DTYPES),
    scale=st.sampled_from([1e-3, 1.0, 100.0]),
)
def test_property_native_equals_reference(n, seed, log_step, rho, chunk_log2, dtype, scale):
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal(n) * scale).astype(dtype)
    params = rd.default_params(step=2.0**log_step, rho_256=rho, chunk_log2=chunk_log2)
    stream = rd.encode(x, params)
    assert native(x, params) == stream
    assert same_values(slicer.decode(stream), rd.decode(stream)[0])
    code = rd.DTYPE_CODES[np.dtype(x.dtype)]
    status, bound = _core.dense_encode_bound(list(x.shape), code, dict(params, threads=1))
    assert status == 0 and len(stream) <= bound


@settings(max_examples=25, deadline=None)
@given(
    rows=st.integers(1, 12),
    cols=st.integers(1, 40),
    seed=st.integers(0, 2**32 - 1),
    dtype=st.sampled_from(DTYPES),
    data=st.data(),
)
def test_property_group_tables_and_bound(rows, cols, seed, dtype, data):
    """Random group tables (zero / raw / dense with any exponent): bytes, values and the bound."""
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal((rows, cols)) * 10.0 ** rng.integers(-2, 4)).astype(dtype)
    byte = st.one_of(st.integers(0, 0x3F), st.integers(0xC0, 0xFF), st.sampled_from([0x80, 0x81]))
    table = data.draw(st.lists(byte, min_size=rows, max_size=rows))
    params = rd.default_params(step=0.05, layout=1, group_table=table, chunk_log2=6)
    try:
        stream = rd.encode(x, params)
    except ValueError:  # a step too small for the data: the backend must refuse it too
        with pytest.raises(AssertionError):
            native(x, params)
        return
    assert native(x, params) == stream
    assert same_values(slicer.decode(stream), rd.decode(stream)[0])
    code = rd.DTYPE_CODES[np.dtype(x.dtype)]
    p = dict(params, threads=1, group_table=bytes(table))
    status, bound = _core.dense_encode_bound(list(x.shape), code, p)
    assert status == 0 and len(stream) <= bound


def test_api_dense_and_float64():
    x = np.random.default_rng(3).standard_normal((40, 50))  # float64
    stream = slicer.encode(x, mode="dense", step=0.01)
    y = slicer.decode(stream)
    assert y.dtype == np.float64 and y.shape == x.shape
    assert np.max(np.abs(y - x)) <= 0.01 * 0.52
    assert stream == rd.encode(x, rd.default_params(step=0.01))
    assert len(stream) <= slicer.size_bound(x.shape, "float64", mode="dense")


def test_api_inspect_adds_up():
    x = np.random.default_rng(4).standard_normal((64, 96)).astype(np.float32)
    stream = slicer.encode(x, mode="dense", step=0.2, groups="rows", chunk_size=1024)
    info = slicer.inspect(stream)
    a = info.account
    parts = a.header + a.group_table + a.freq_table + a.chunk_table + a.raw + a.codes
    assert parts + a.extra_bits + a.checksum == a.total == len(stream)
    assert info.groups == "rows" and info.group_count == 64 and info.chunks == 6
    _, acc = rd.decode(stream)
    assert (acc.header, acc.freq_table, acc.rans, acc.extra_bits) == (
        a.header, a.freq_table, a.codes, a.extra_bits
    )  # fmt: skip


@pytest.mark.parametrize("mode", ["dense", "auto"])
def test_api_budget_and_error_targets(mode):
    rng = np.random.default_rng(5)
    x = (rng.laplace(size=(96, 128)) * np.linspace(0.5, 3, 128)).astype(np.float32)
    x[0, :4] = 900.0
    for bpe in (1, 2, 4, 8):
        limit = bpe * x.size // 8
        stream = slicer.encode(x, mode=mode, max_bytes=limit)
        assert len(stream) <= limit
        assert len(stream) >= 0.9 * limit
        assert stream == slicer.encode(x, mode=mode, max_bytes=limit)  # deterministic
    for e in (0.2, 0.03, 0.001):
        stream = slicer.encode(x, mode=mode, rel_error=e)
        y = slicer.decode(stream).astype(np.float64)
        assert np.linalg.norm(y - x) / np.linalg.norm(x) <= e


def test_api_errors():
    x = np.ones((4, 4), dtype=np.float32)
    with pytest.raises(ValueError, match="exactly one of"):
        slicer.encode(x, mode="dense")
    with pytest.raises(ValueError, match="exactly one of"):
        slicer.encode(x, mode="dense", step=0.1, max_bytes=100)
    with pytest.raises(ValueError, match="belong to mode='topk'"):
        slicer.encode(x, mode="dense", step=0.1, sparsity=0.5)
    with pytest.raises(ValueError, match="mode must be"):
        slicer.encode(x, mode="nope", step=0.1)
    with pytest.raises(ValueError, match="step"):
        slicer.encode(x, mode="dense", step=-1.0)
    with pytest.raises(ValueError, match="rho"):
        slicer.encode(x, mode="dense", step=0.1, rho=0.75)
    with pytest.raises(ValueError, match="groups"):
        slicer.encode(x, mode="dense", step=0.1, groups="blocks")
    with pytest.raises(TypeError, match="rel_error"):
        slicer.encode(x, mode="auto", rel_error="0.1")
    with pytest.raises(ValueError, match="step too small|invalid dense"):
        slicer.encode(np.full(4, 1e30, np.float32), mode="dense", step=1e-30)
    with pytest.raises(ValueError, match="NaN"):
        slicer.encode(np.array([1.0, np.nan], np.float32), mode="dense", step=0.1)
    with pytest.raises(ValueError, match="belong to mode='dense'"):
        slicer.encode(x, step=0.1)


def test_unsupported_mode_is_its_own_error():
    stream = slicer.encode(np.ones(10, np.float32), mode="dense", step=0.5)
    body = bytearray(stream[:-4])
    pos = 8 + 1  # magic, version, dtype, flags, ndim, one 1-byte dim
    assert body[pos] == 0  # layout
    body[pos + 1] = 7  # mode
    with pytest.raises(slicer.FormatError, match="unsupported mode 7") as info:
        slicer.decode(with_crc(bytes(body)))
    assert info.value.status == 16
    with pytest.raises(rd.UnsupportedModeError):
        rd.decode(with_crc(bytes(body)))


def test_truncations_and_bit_flips():
    rng = np.random.default_rng(11)
    x = sample(rng, 300, np.float32)
    stream = slicer.encode(x, mode="dense", step=0.3, chunk_size=64)
    for cut in range(len(stream)):
        with pytest.raises(slicer.FormatError):
            slicer.decode(stream[:cut])
    for bit in range(8 * len(stream)):
        bad = bytearray(stream)
        bad[bit // 8] ^= 1 << (bit % 8)
        with pytest.raises(slicer.FormatError):
            slicer.decode(bytes(bad))


def test_bit_flips_behind_a_valid_crc_agree_with_reference():
    """Structural validation alone (the CRC recomputed): same verdict as the reference."""
    rng = np.random.default_rng(12)
    x = sample(rng, 200, np.float32)
    stream = slicer.encode(x, mode="dense", step=0.3, chunk_size=64)
    body = stream[:-4]
    for bit in range(8 * len(body)):
        bad = bytearray(body)
        bad[bit // 8] ^= 1 << (bit % 8)
        assert_reference_verdict(with_crc(bytes(bad)))


def test_topk_still_writes_format_1():
    x = np.random.default_rng(2).standard_normal(1000).astype(np.float32)
    assert slicer.encode(x)[4] == 1
    assert slicer.encode(x, mode="topk")[4] == 1
