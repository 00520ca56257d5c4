"""Shared fixtures of the codec test-suite: seeded data and the stream property checker."""

from __future__ import annotations

import os
from collections.abc import Callable

import ml_dtypes
import numpy as np
import pytest
from hypothesis import settings

# "slicer" keeps the suite fast and reproducible; SLICER_HYPOTHESIS_PROFILE=thorough digs deeper.
settings.register_profile("slicer", deadline=None, max_examples=60, derandomize=True)
settings.register_profile("thorough", deadline=None, max_examples=2000)
settings.load_profile(os.environ.get("SLICER_HYPOTHESIS_PROFILE", "slicer"))

BF16 = np.dtype(ml_dtypes.bfloat16)
PPB = 1_000_000_000
# Relative rounding of a value stored in each output dtype (half an ulp).
_HALF_ULP = {np.dtype(np.float32): 2.0**-24, np.dtype(np.float16): 2.0**-11, BF16: 2.0**-8}


def pytest_collection_modifyitems(config, items):
    """Tests marked ``slow`` (long model runs) run only with SLICER_RUN_SLOW=1."""
    if os.environ.get("SLICER_RUN_SLOW") == "1":
        return
    skip = pytest.mark.skip(reason="slow: set SLICER_RUN_SLOW=1 to run")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(20260127)


def kept_count(n: int, nnz: int, sparsity_ppb: int) -> int:
    """docs/format.md §4.1, exact integers."""
    return min(n * (PPB - sparsity_ppb) // PPB, nnz)


def check_stream(
    x: np.ndarray, stream: bytes, *, sparsity: float = 0.9, asym: float = 0.0, rows: bool = False
) -> np.ndarray:
    """Decode `stream` and assert what the spec promises about it; return the decoded array.

    Checks per group: exactly k nonzeros, kept elements keep their sign, with asym = 0 every
    kept magnitude >= every dropped one, and every kept value within half a quantization step
    of its block (block ranges and widths from ``slicer.inspect``).
    """
    import slicer

    y = slicer.decode(stream)
    assert y.shape == x.shape and y.dtype == x.dtype
    info = slicer.inspect(stream, blocks=True)
    s_ppb = round(sparsity * PPB)
    xf = x.astype(np.float32).astype(np.float64).reshape(-1)
    yf = y.astype(np.float32).astype(np.float64).reshape(-1)
    n_total = xf.size
    group = x.shape[-1] if rows and n_total else max(n_total, 1)
    groups = n_total // group if n_total else 0
    half_ulp = _HALF_ULP[x.dtype]
    total_kept = 0
    for g in range(groups):
        xs, ys = xf[g * group : (g + 1) * group], yf[g * group : (g + 1) * group]
        kept = ys != 0
        k = kept_count(group, int(np.count_nonzero(xs)), s_ppb)
        assert int(kept.sum()) == k, f"group {g}: {int(kept.sum())} kept, spec says {k}"
        total_kept += k
        assert np.all(np.sign(ys[kept]) == np.sign(xs[kept])), f"group {g}: a sign flipped"
        if asym == 0.0 and 0 < k < group:
            assert np.abs(xs[kept]).min() >= np.abs(xs[~kept]).max()
        if asym > 0.0 and k > 0:
            _check_asymmetric_selection(xs, kept, k, round(asym * PPB))
        _check_half_step(xs, ys, kept, info, g, half_ulp)
    assert info.kept == total_kept
    return y


def _check_asymmetric_selection(xs, kept, k: int, asym_ppb: int) -> None:
    """docs/format.md §4.4 (paper Eq. 7): thresholds t+ = tau f+, t- = tau f-, then trim/fill."""
    mag = np.abs(xs)
    tau = float(np.sort(mag)[::-1][k - 1])
    t_pos = tau * ((PPB + asym_ppb) / PPB)
    t_neg = tau * ((PPB - asym_ppb) / PPB)
    strict = (xs > t_pos) | (-xs > t_neg)
    if strict.sum() >= k:  # trim: K is inside S, and keeps S's largest magnitudes
        assert not np.any(kept & ~strict)
        if np.any(strict & ~kept):
            assert mag[strict & ~kept].max() <= mag[kept].min()
    else:  # fill: all of S, then the largest other nonzero magnitudes
        assert np.all(kept[strict])
        fill, rest = kept & ~strict, ~kept & ~strict & (xs != 0)
        if np.any(fill) and np.any(rest):
            assert mag[fill].min() >= mag[rest].max()


def _check_half_step(xs, ys, kept, info, group: int, half_ulp: float) -> None:
    blocks = [b for b in info.block_table if b.group == group]
    for sign in (1, -1):
        mask = kept & (np.sign(xs) == sign)
        order = np.argsort(-np.abs(xs[mask]), kind="stable")
        a = np.abs(xs[mask])[order]
        got = np.abs(ys[mask])[order]
        start = 0
        for block in sorted((b for b in blocks if b.sign == sign), key=lambda b: b.index):
            seg = slice(start, start + block.count)
            start += block.count
            if block.width == 0:
                step = 0.0
            else:
                step = (float(block.hi) - float(block.lo)) / (2**block.width - 1)
            tol = step / 2 * (1 + 1e-9) + a[seg] * 2.0**-23 + got[seg] * half_ulp * 2
            err = np.abs(got[seg] - a[seg])
            assert np.all(err <= tol), (
                f"group {group} sign {sign} block {block.index}: error {err.max()} > "
                f"half step {step / 2} (width {block.width})"
            )
        assert start == int(mask.sum())


@pytest.fixture
def check() -> Callable[..., np.ndarray]:
    return check_stream
