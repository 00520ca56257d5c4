"""The C++ budget driver (cpp/src/dense/dense_budget.cpp, slicer_dense_encode_budget) against
the Python driver it reproduces (python/slicer/_rate.py dense_for_budget / dense_for_error, the
reference): the same stream, byte for byte, or the same error message; its sample positions
against NumPy's generator."""

from __future__ import annotations

import contextlib

import ml_dtypes
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import slicer
from slicer import _core, _rate

DTYPES = [np.float32, np.float16, ml_dtypes.bfloat16, np.float64]


@contextlib.contextmanager
def reference_driver():
    _rate.NATIVE_DRIVER = False
    try:
        yield
    finally:
        _rate.NATIVE_DRIVER = True


def both(x: np.ndarray, **kw) -> tuple[bytes | str, bytes | str]:
    """(native, reference) outcome of slicer.encode(x, **kw): the stream or the ValueError's
    message."""

    def run() -> bytes | str:
        try:
            return slicer.encode(x, **kw)
        except ValueError as e:
            return str(e)

    native = run()
    with reference_driver():
        reference = run()
    return native, reference


def calls_native(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the C++ driver's calls (to prove the native path ran)."""
    seen: list[int] = []
    original = _core.dense_encode_budget

    def counting(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        seen.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(_core, "dense_encode_budget", counting)
    return seen


@pytest.mark.parametrize("n", [32769, 40000, 131072, 999_999, 4 << 20, (1 << 32) + 5, 1 << 40])
def test_sample_positions_match_numpy(n: int) -> None:
    expected = np.sort(np.random.default_rng(0x51C3).integers(0, n, 1 << 15))
    assert np.array_equal(_core.rate_sample_positions(n), expected)


def _data(rng: np.random.Generator, shape: tuple[int, ...], dtype, kind: int) -> np.ndarray:
    if kind == 0:
        x = rng.standard_normal(shape)
    elif kind == 1:  # heavy tails and exact zeros (ReLU-like)
        x = np.maximum(rng.standard_t(2, shape), 0) * 3.0
    else:  # a few massive outliers
        x = rng.standard_normal(shape)
        x.reshape(-1)[:: max(1, x.size // 5)] *= 1e3
    return x.astype(dtype)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("shape", [(7,), (4096,), (40, 576), (3, 5, 2191)])
def test_same_streams_fixed_sizes(monkeypatch, dtype, shape) -> None:
    seen = calls_native(monkeypatch)
    rng = np.random.default_rng(sum(shape))
    for kind in range(3):
        x = _data(rng, shape, dtype, kind)
        for bits in (0.5, 2.0, 6.0):
            limit = max(40, int(bits * x.size / 8))
            for mode in ("auto", "dense"):
                a, b = both(x, mode=mode, max_bytes=limit, classes=1)
                assert a == b, (kind, bits, mode)
                if isinstance(a, bytes):
                    assert len(a) <= limit
        for e in (0.3, 0.02):
            a, b = both(x, mode="auto", rel_error=e, classes=1)
            assert a == b, (kind, e)
    assert seen


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    n=st.integers(1, 70_000),
    rows=st.sampled_from([1, 2, 3, 16]),
    dtype=st.sampled_from(DTYPES),
    kind=st.integers(0, 2),
    bits=st.floats(0.05, 9.0),
    error=st.floats(1e-4, 0.9),
    seed=st.integers(0, 2**32 - 1),
    mode=st.sampled_from(["auto", "dense"]),
    rho=st.sampled_from([None, 0.3, 0.5]),
    extras=st.sampled_from(
        [{}, {"table_kind": "auto"}, {"low_bits": "auto"}, {"table_kind": "auto", "low_bits": 4}]
    ),
    classes=st.sampled_from([1, 2, 4, 16]),
    class_map=st.sampled_from(["rank", "ranges"]),
)
def test_same_streams_property(
    n, rows, dtype, kind, bits, error, seed, mode, rho, extras, classes, class_map
) -> None:
    rng = np.random.default_rng(seed)
    shape = (rows, -(-n // rows))
    x = _data(rng, shape, dtype, kind)
    if classes > shape[-1]:
        classes = 1
    kw = dict(mode=mode, classes=classes, **extras)
    if classes > 1:
        kw["class_map"] = class_map
    if mode == "dense" and rho is not None:
        kw["rho"] = rho
    limit = max(1, int(bits * x.size / 8))
    a, b = both(x, max_bytes=limit, **kw)
    assert a == b
    a, b = both(x, rel_error=error, **kw)
    assert a == b


def test_unreachable_targets_give_the_reference_message(monkeypatch) -> None:
    seen = calls_native(monkeypatch)
    x = np.random.default_rng(5).standard_normal(5000).astype(np.float32)
    a, b = both(x, mode="auto", max_bytes=10, classes=1)
    assert a == b and "below the smallest dense stream" in a
    z = np.zeros(100, np.float32)
    a, b = both(z, mode="dense", rel_error=0.1)
    assert a == b and isinstance(a, bytes)
    assert seen


def test_driver_argument_errors() -> None:
    """The binding reaches the driver's checks (those of slicer_dense_encode_budget; its C test,
    cpp/tests/test_budget.cpp, covers the rest): both targets or neither, group tables,
    trellis, §18.4 boundaries that are not K − 1, K > 16 and a fixed table kind or plane with
    max_bytes are INVALID_ARGUMENT; classes "auto" (with any map kind) and given boundaries
    run."""
    from slicer._context import default_context
    from slicer._params import make_dense_params

    x = np.random.default_rng(1).standard_normal((8, 64)).astype(np.float32)
    raw = x.reshape(-1).view(np.uint8)
    ctx = default_context()._native
    base = make_dense_params(step=1.0, rho=0.5, groups="tensor", classes=1)
    ok = _core.dense_encode_budget(ctx, raw, 1, [8, 64], base, 500, 0.0, True)
    assert ok[0] == 0 and len(ok[1]) == ok[2] <= 500
    for good in (
        dict(base, classes="auto"),
        dict(base, classes="auto", class_map="rank"),
        dict(base, classes="auto", class_map="bounds"),
        dict(base, classes=2, class_map="bounds", class_bounds=[10]),
    ):
        ok = _core.dense_encode_budget(ctx, raw, 1, [8, 64], good, 500, 0.0, True)
        assert ok[0] == 0 and len(ok[1]) == ok[2] <= 500
    for bad, limit, err in [
        (base, 0, 0.0),
        (base, 500, 0.1),
        (base, 0, float("nan")),
        (dict(base, table_kind=2), 500, 0.0),
        (dict(base, low_bits=4), 500, 0.0),
        (dict(base, trellis=0.34), 500, 0.0),
        (dict(base, classes=3, class_map="bounds", class_bounds=[10]), 500, 0.0),  # K − 1 = 2
        (dict(base, classes=17), 500, 0.0),
        (dict(base, layout=1, group_table=bytes(8)), 500, 0.0),
    ]:
        status, stream, _ = _core.dense_encode_budget(ctx, raw, 1, [8, 64], bad, limit, err, True)
        assert status == 1 and stream is None


# ------------------------------------------------------------------ classes="auto" (§19.4)


def _llm_rows(rng: np.random.Generator, tokens: int, channels: int) -> np.ndarray:
    """LLM-like hidden states: Gaussian rows with per-channel scales (log-normal), a few
    outlier channels 20-60x larger, a first token (attention sink) larger still."""
    x = rng.standard_normal((tokens, channels)) * np.exp(rng.normal(0.0, 0.7, channels))
    outliers = rng.choice(channels, max(1, channels // 100), replace=False)
    x[:, outliers] *= rng.uniform(20, 60, outliers.size)
    x[0] *= 8.0
    return x


def _feature_maps(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """(N, C, H, W) ReLU-like maps, each channel at its own scale (some nearly dead)."""
    scale = np.exp(rng.uniform(-4, 2, shape[1])).reshape(1, -1, *([1] * (len(shape) - 2)))
    return np.maximum(rng.standard_normal(shape), -0.1) * scale


def _ranges_1d(rng: np.random.Generator, n: int) -> np.ndarray:
    """1-D with three contiguous ranges of scales (a case for §18.3 / §18.4 classes)."""
    x = rng.standard_normal(n)
    x[n // 6 : n // 2] *= 12.0
    x[2 * n // 3 :] *= 0.2
    return x


AUTO_INPUTS = {
    "llm_rows": lambda rng: _llm_rows(rng, 48, 576),
    "llm_rows_large": lambda rng: _llm_rows(rng, 80, 896),  # 71 680: the sample (> 2^15)
    "maps": lambda rng: _feature_maps(rng, (2, 24, 14, 14)),
    "maps_3d": lambda rng: _feature_maps(rng, (40, 9, 11)),
    "1d": lambda rng: _ranges_1d(rng, 6001),
    "awkward": lambda rng: _llm_rows(rng, 3, 2191),
    "narrow": lambda rng: _llm_rows(rng, 257, 3),
}


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("name", list(AUTO_INPUTS))
def test_same_streams_auto_classes(monkeypatch, dtype, name) -> None:
    """classes="auto" through the C++ driver: the Python driver's stream (or message) for
    real-like arrays, both targets, rho searched (mode="auto") and fixed (mode="dense"), every
    class_map restriction; the choice is made (K > 1 somewhere) and the target met."""
    seen = calls_native(monkeypatch)
    rng = np.random.default_rng(sorted(AUTO_INPUTS).index(name))
    x = AUTO_INPUTS[name](rng).astype(dtype)
    chosen = set()
    for bits in (0.3, 1.5, 4.0):
        limit = max(40, int(bits * x.size / 8))
        for mode, rho in (("auto", None), ("dense", 0.3), ("dense", 0.5)):
            for class_map in ((None, "rank", "ranges", "bounds") if bits == 1.5 else (None,)):
                kw = dict(mode=mode, classes="auto", class_map=class_map)
                if rho is not None:
                    kw["rho"] = rho
                a, b = both(x, max_bytes=limit, **kw)
                assert a == b, (bits, mode, rho, class_map)
                if isinstance(a, bytes):
                    assert len(a) <= limit
                    info = slicer.inspect(a)
                    chosen.add((info.classes, info.class_map if info.classes > 1 else None))
                    if class_map is not None and info.classes > 1:
                        assert info.class_map == class_map
    for e in (0.3, 0.05, 0.005):
        for mode in ("auto", "dense"):
            a, b = both(x, mode=mode, rel_error=e, classes="auto")
            assert a == b, (e, mode)
            if isinstance(a, bytes):
                y = slicer.decode(a).astype(np.float64)
                ref = x.astype(np.float64)
                assert np.linalg.norm(y - ref) <= e * np.linalg.norm(ref)
    assert seen
    if name not in ("awkward", "narrow"):  # there a map or 3 channels may never pay
        assert any(k > 1 for k, _ in chosen), chosen


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    n=st.integers(1, 70_000),
    layout=st.sampled_from(["1d", "rows", "maps"]),
    dtype=st.sampled_from(DTYPES),
    kind=st.integers(0, 3),
    bits=st.floats(0.05, 9.0),
    error=st.floats(1e-4, 0.9),
    seed=st.integers(0, 2**32 - 1),
    mode=st.sampled_from(["auto", "dense"]),
    rho=st.sampled_from([None, 0.3, 0.5]),
    extras=st.sampled_from([{}, {"table_kind": "auto"}, {"low_bits": "auto"}]),
    class_map=st.sampled_from([None, None, "rank", "ranges", "bounds"]),
)
def test_same_streams_auto_classes_property(
    n, layout, dtype, kind, bits, error, seed, mode, rho, extras, class_map
) -> None:
    rng = np.random.default_rng(seed)
    if layout == "1d":
        shape: tuple[int, ...] = (n,)
    elif layout == "rows":
        channels = int(rng.choice([3, 64, 576, 2191]))
        shape = (max(1, n // channels), channels)
    else:
        c = int(rng.choice([2, 5, 16, 40]))
        side = max(1, int(np.sqrt(n / (2 * c))))
        shape = (2, c, side, side + 1)
    if kind == 3:
        x = _llm_rows(rng, int(np.prod(shape[:-1])), shape[-1]).reshape(shape)
    else:
        x = _data(rng, shape, np.float64, kind)
        if len(shape) > 1:  # channel scales along axis 1 / the last axis
            x = x * np.exp(rng.uniform(-3, 3, shape[-1]))
    x = x.astype(dtype)
    kw = dict(mode=mode, classes="auto", class_map=class_map, **extras)
    if mode == "dense" and rho is not None:
        kw["rho"] = rho
    limit = max(1, int(bits * x.size / 8))
    a, b = both(x, max_bytes=limit, **kw)
    assert a == b
    a, b = both(x, rel_error=error, **kw)
    assert a == b


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_same_streams_given_bounds(monkeypatch, dtype) -> None:
    """A fixed K with given §18.4 boundaries (the estimate of their saving at the model's
    step, then the second step search): the Python driver's streams."""
    seen = calls_native(monkeypatch)
    rng = np.random.default_rng(7)
    for x, bounds in (
        (_ranges_1d(rng, 6001), [1000, 3000]),
        (_llm_rows(rng, 64, 576), [5, 200, 201, 400]),
        (_feature_maps(rng, (2, 24, 14, 14)), [14]),  # the last axis (14)
    ):
        x = x.astype(dtype)
        k = len(bounds) + 1
        kw = dict(classes=k, class_map="bounds", class_bounds=bounds)
        for bits in (0.5, 2.0, 6.0):
            limit = max(40, int(bits * x.size / 8))
            for mode in ("auto", "dense"):
                a, b = both(x, mode=mode, max_bytes=limit, **kw)
                assert a == b, (bits, mode)
        for e in (0.2, 0.02):
            a, b = both(x, mode="auto", rel_error=e, **kw)
            assert a == b, e
    assert seen
