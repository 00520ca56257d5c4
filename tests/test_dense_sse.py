"""slicer_dense_encode_sse: the same stream as slicer_dense_encode and the exact squared error of
what slicer_decode returns for it (docs/format.md §12.4), which `rel_error` rate control checks
instead of decoding."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import slicer
from slicer import _core, _params
from slicer._context import native_context

CODES = {np.float32: 1, np.float16: 2, ml_dtypes.bfloat16: 3, np.float64: 4}


def _encode_both(x: np.ndarray, params: dict) -> tuple[bytes, bytes, float]:
    raw = np.ascontiguousarray(x).reshape(-1).view(np.uint8)
    code = CODES[x.dtype.type]
    status, plain = _core.dense_encode(native_context(None), raw, code, list(x.shape), params)
    assert status == 0
    status, stream, sse = _core.dense_encode_sse(
        native_context(None), raw, code, list(x.shape), params
    )
    assert status == 0
    return plain, stream, sse


def _decoded_sse(x: np.ndarray, stream: bytes) -> float:
    d = x.astype(np.float64) - slicer.decode(stream).astype(np.float64)
    return float(np.sum(d * d))


@settings(max_examples=60, deadline=None)
@given(
    rows=st.integers(1, 9),
    cols=st.integers(1, 300),
    seed=st.integers(0, 2**32 - 1),
    log_step=st.floats(-12, 4),
    rho=st.integers(1, 128),
    dtype=st.sampled_from(list(CODES)),
    groups=st.sampled_from(["tensor", "rows"]),
    outliers=st.booleans(),
)
def test_sse_is_the_decoded_error(rows, cols, seed, log_step, rho, dtype, groups, outliers):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((rows, cols))
    if outliers:  # huge codes: the exact path for codes of 2^31 and more (float16: ≤ 65504)
        x[rng.random(x.shape) < 0.01] *= 1e3 if dtype is np.float16 else 1e9
    x = x.astype(dtype)
    params = _params.make_dense_params(
        step=2.0**log_step, rho=rho / 256, groups=groups, chunk_size=64, threads=1
    )
    params["group_table"] = None
    if groups == "rows":  # zero, raw and scaled groups
        table = [(0x80, 0x81, 0x00, 0x05, 0xF8)[r % 5] for r in range(rows)]
        params["group_table"] = bytes(table)
    try:
        plain, stream, sse = _encode_both(x, params)
    except AssertionError:  # a step too small for the data: both refuse alike
        return
    assert plain == stream
    want = _decoded_sse(x, stream)
    assert sse == pytest.approx(want, rel=1e-12, abs=1e-300)


def test_rel_error_streams_meet_the_bound_without_a_decode(monkeypatch):
    """encode(rel_error=e) checks its attempts with the encoder's error: no decode happens, and
    the stream's real error is <= e."""
    rng = np.random.default_rng(5)
    x = (rng.standard_normal((64, 576)) * np.where(rng.random((64, 576)) < 0.002, 300, 1)).astype(
        np.float32
    )
    calls = []
    real_decode = slicer.decode

    def counting_decode(*args, **kwargs):
        calls.append(1)
        return real_decode(*args, **kwargs)

    monkeypatch.setattr(slicer._api, "decode", counting_decode)
    for mode in ("dense", "auto"):
        for e in (0.2, 0.03, 0.004):
            stream = slicer.encode(x, mode=mode, rel_error=e)
            y = real_decode(stream).astype(np.float64)
            assert np.linalg.norm(y - x) / np.linalg.norm(x.astype(np.float64)) <= e
    assert calls == []


def test_sse_argument_errors():
    x = np.ones(10, np.float32)
    params = _params.make_dense_params(step=0.1, rho=0.5, groups="tensor", chunk_size=64, threads=1)
    params["group_table"] = None
    status, stream, sse = _core.dense_encode_sse(
        native_context(None), x.view(np.uint8), 9, [10], params
    )
    assert status != 0 and stream is None and sse is None
