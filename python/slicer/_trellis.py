"""Step search of mode 3, dense with trellis-coded quantization (docs/format.md §21).

`encode(x, mode="dense", trellis=True, ...)` writes mode 3. Its rate and error at a step differ
from the dead-zone quantizer that python/slicer/_rate.py models: TCQ's union of two quantizers
has spacing Δ, each quantizer 2Δ, so a TCQ step codes at about the rate of a dead-zone step
twice as large. The search starts from that model's answer at twice the step and corrects it
with real encodes (each one is the whole two-pass Viterbi of §21.6): a secant on (log step, log
bytes) for `max_bytes`, and on the measured error (slicer_dense_encode_sse) for `rel_error`.
classes="auto" is resolved once by _rate's class model at the equivalent dead-zone step.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from . import _core, _rate
from ._errors import raise_encode_status
from ._intake import CODE_OF_DTYPE
from ._rate import DenseModel, classes_at_step

__all__ = [
    "DEFAULT_LAMBDA",
    "trellis_at_step",
    "trellis_for_budget",
    "trellis_for_error",
    "trellis_lambda",
]

DEFAULT_LAMBDA = 0.34  # λ in units of Δ² per bit (bench/RESULTS.md §9.9: 0.24 … 0.46)
_EQUIVALENT = 2.0  # a TCQ step codes at about the rate of a dead-zone step this much larger
_ATTEMPTS = 6  # real encodes of the budget / error search before the fallback
_ECSQ_RHO = 128


def trellis_lambda(value: Any) -> float | None:
    """`trellis`: False / None (modes 1-2), True (mode 3 with λ = 0.34) or λ itself, a finite
    real number > 0 (units of Δ² per bit)."""
    if value is None or value is False:
        return None
    if value is True:
        return DEFAULT_LAMBDA
    if isinstance(value, (str, bytes)) or not isinstance(value, (int, float, np.floating)):
        raise TypeError(
            f"trellis must be a bool or a positive real number (λ), got {type(value).__name__}"
        )
    lam = float(value)
    if not (math.isfinite(lam) and lam > 0):
        raise ValueError(f"trellis must be True, False or a finite λ > 0, got {value!r}")
    return lam


def _model(array: np.ndarray, work: np.ndarray, energy: bool = False) -> DenseModel:
    """_rate.MODEL of `work` (the C++ kernel; DenseModel, the NumPy reference, when a test sets
    it) with the header estimate of mode 1 (close enough); `energy`: Σ x² read in its pass."""
    from ._rate import _dense_header_bytes

    return _rate.MODEL(work.reshape(-1), array.dtype.itemsize, _dense_header_bytes(array.shape),
                       energy=energy)  # fmt: skip


def _resolve(array: np.ndarray, params: dict[str, Any], work: np.ndarray, step: float) -> dict:
    """classes="auto" resolved by _rate's class model at the equivalent dead-zone step."""
    if params.get("classes") != "auto":
        return params
    ecsq = dict(params, step=float(np.float32(step * _EQUIVALENT)), rho_256=_ECSQ_RHO)
    out = classes_at_step(array, ecsq, work)
    return dict(out, step=params.get("step"), rho_256=params["rho_256"])


def trellis_at_step(
    array: np.ndarray, params: dict[str, Any], work: np.ndarray, encoder: Callable
) -> bytes:
    """Mode 3 at the given step (classes="auto" resolved first)."""
    return encoder(array, _resolve(array, params, work, params["step"]))


def _ecsq_step(model: DenseModel, ok: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> float:
    """The dead-zone step (ρ = 1/2) at the boundary of the monotone predicate ok(size, sse),
    ok for large steps, by the model (log2 grid, refined)."""
    lo = math.log2(model.min_step())
    hi = math.log2(max(model.max_abs, 2.0**-100)) + 2.0
    for _ in range(6):
        grid = np.linspace(lo, hi, 17)
        size, sse = model.predict_many(2.0**grid, _ECSQ_RHO)
        good = ok(size, sse)
        if good[0]:
            return float(2.0 ** grid[0])
        if not good.any():
            return float(2.0**hi)
        i = int(np.argmax(good))
        lo, hi = grid[i - 1], grid[i]
    return float(2.0**hi)


def _f32(step: float) -> float:
    return float(np.float32(min(max(step, 2.0**-126), 2.0**127)))


def trellis_for_budget(
    array: np.ndarray,
    params: dict[str, Any],
    limit: int,
    encoder: Callable,
    work: np.ndarray,
) -> bytes:
    """The lowest-error mode-3 stream found of at most `limit` bytes (the largest that fits)."""
    model = _model(array, work)
    step = _ecsq_step(model, lambda size, _sse: size <= limit) / _EQUIVALENT
    params = _resolve(array, params, work, step)
    tried: list[tuple[float, int]] = []
    fitting = b""
    found = False
    target = math.log(limit * 0.995)
    for _ in range(_ATTEMPTS):
        stream = encoder(array, dict(params, step=_f32(step)))
        size = len(stream)
        tried.append((math.log(step), math.log(max(size, 1))))
        if size <= limit and (not found or size > len(fitting)):
            fitting, found = stream, True
        if size <= limit and size >= 0.99 * limit:
            break
        step = math.exp(_next_log_step(tried, target, -1.0))
    if found:
        return fitting
    stream = encoder(array, dict(params, step=_f32(step)))
    while len(stream) > limit:  # rare: coarser until it fits (all zeros at the end)
        step *= 1.25
        if step > 2.0**127:
            break
        stream = encoder(array, dict(params, step=_f32(step)))
    if len(stream) > limit:
        raise ValueError(
            f"max_bytes={limit} is below the smallest dense stream for this array "
            f"({len(stream)} bytes)"
        )
    return stream


def _next_log_step(tried: list[tuple[float, float]], target: float, slope: float) -> float:
    """Secant step on (log step, log value) towards `target` from the two closest attempts
    (`slope` the assumed d log value / d log step with one attempt); moves of at most ×2."""
    x1, y1 = tried[-1]
    best = sorted(tried, key=lambda p: abs(p[1] - target))
    if len(best) >= 2 and best[0][0] != best[1][0]:
        (xa, ya), (xb, yb) = best[0], best[1]
        s = (yb - ya) / (xb - xa)
        if s * slope > 0 and abs(s) > 1e-3:  # the expected sign
            x1, y1, slope = xa, ya, s
    move = (target - y1) / slope
    return x1 + max(-math.log(2.0), min(math.log(2.0), move))


def trellis_for_error(
    array: np.ndarray,
    params: dict[str, Any],
    rel_error: float,
    work: np.ndarray,
    context: Any,
) -> bytes:
    """The smallest mode-3 stream found whose relative L2 error is <= rel_error (each attempt's
    error is exact: slicer_dense_encode_sse)."""
    code = 4 if array.dtype == np.float64 else CODE_OF_DTYPE[array.dtype]
    raw = np.ascontiguousarray(array).reshape(-1).view(np.uint8)
    shape = list(array.shape)

    def measured(p: dict[str, Any]) -> tuple[bytes, float]:
        status, stream, sse = _core.dense_encode_sse(context, raw, code, shape, p)
        if status:
            raise_encode_status(status)
        return stream, sse

    model = _model(array, work, energy=True)
    flat = array.reshape(-1)
    energy = float(np.dot(flat.astype(np.float64), flat.astype(np.float64)))
    if energy == 0.0:
        k = params.get("classes", 1)
        return measured(dict(params, step=1.0, classes=1 if k == "auto" else k))[0]
    goal = rel_error**2 * model.energy
    step = _ecsq_step(model, lambda _size, sse: sse > goal)  # first step past the goal
    step /= _EQUIVALENT
    params = _resolve(array, params, work, step)
    best: bytes | None = None
    tried: list[tuple[float, float]] = []
    target = math.log(rel_error * 0.99)
    for _ in range(_ATTEMPTS):
        stream, sse = measured(dict(params, step=_f32(step)))
        err = math.sqrt(sse / energy)
        tried.append((math.log(step), math.log(max(err, 1e-300))))
        if err <= rel_error:
            if best is None or len(stream) < len(best):
                best = stream
            if err >= 0.97 * rel_error:
                break
        step = math.exp(_next_log_step(tried, target, 1.0))
    if best is not None:
        return best
    floor = model.min_step()
    while True:  # rare: keep shrinking
        step = max(floor, step * 0.8)
        stream, sse = measured(dict(params, step=_f32(step)))
        if math.sqrt(sse / energy) <= rel_error:
            return stream
        if step <= floor:
            raise ValueError(f"rel_error={rel_error} cannot be reached for this array")
