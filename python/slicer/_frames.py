"""Frames for token streams (docs/format.md §17): a context sent once, one small frame per row.

An autoregressive model produces one hidden row per generated token. A full stream per row
repeats its header, parameters and frequency table each time; with frames the sender builds a
**context** once from calibration rows (e.g. the prefill rows of the prompt) and then sends
per row only the row's codes plus 6-8 bytes (sequence byte, extra-bit length, CRC-32 bound to
the context)::

    enc = slicer.FrameEncoder(prefill_rows, rel_error=0.02)   # rows along the last axis
    dec = slicer.FrameDecoder(enc.context)                     # the receiver, once
    frame = enc.encode(hidden_row)                             # per token
    row = dec.decode(frame)

Every row of a context has the context's shape and dtype. Any row codes under any context
(every symbol has a slot in the table); rows unlike the calibration rows only cost more bytes.
A damaged frame, a frame of another context, or (with ``check_sequence``) a lost or reordered
frame raises :class:`slicer.FormatError`.

``FrameEncoder(..., trellis=True)`` (or ``trellis=λ``) builds a **trellis context** (§17.4):
its frames are coded with the trellis-coded quantization of ``encode(trellis=True)`` (§21),
about 0.8 dB lower error at equal bytes, with the same frame layout and overhead.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from . import _core
from ._errors import (
    INVALID_ARGUMENT,
    LIMIT_EXCEEDED,
    FormatError,
    raise_decode_status,
    raise_encode_status,
)
from ._intake import BFLOAT16, as_host_array
from ._params import make_dense_params
from ._trellis import trellis_lambda

__all__ = ["FrameDecoder", "FrameEncoder"]

_FLOAT64 = np.dtype(np.float64)
_CODES = {np.dtype(np.float32): 1, np.dtype(np.float16): 2, BFLOAT16: 3, _FLOAT64: 4}
_DTYPES = {code: dt for dt, code in _CODES.items()}
_MAX_ROW = 1 << 18
_MAX_CLASSES = 16
_DEFAULT_MAX_ELEMENTS = 1 << 18


def _rows_array(x: Any, name: str) -> np.ndarray:
    if isinstance(x, np.ndarray) and x.dtype == _FLOAT64 and type(x) is np.ndarray:
        return np.ascontiguousarray(x)
    if hasattr(x, "dtype") and "float64" in str(x.dtype) and hasattr(x, "__dlpack__"):
        return np.ascontiguousarray(np.from_dlpack(x))
    try:
        return as_host_array(x, name)
    except TypeError as exc:
        raise TypeError(f"{name}: {exc} (float64 is accepted too)") from None


def _native(a: np.ndarray) -> np.ndarray:
    return a.view(np.uint16) if a.dtype == BFLOAT16 else a


def _calibration_error(rows: np.ndarray, step: float, rho_256: int) -> float:
    """Mean per-row relative L2 error of the calibration rows (2-D, binary64) coded at `step`
    (§12.2-§12.4 with the offset rule of §12.3); rows of zeros count as exact."""
    a = np.abs(rows)
    t = a / step
    m = np.floor(t + rho_256 / 256.0)
    d = t - m
    offs = []
    for sel in (m == 1, m >= 2):
        c = int(sel.sum())
        if c == 0:
            offs.append(0.0)
            continue
        s = int(np.floor(d[sel] * 2.0**20).sum())
        offs.append(max(-128, min(127, (2 * s + c * 4096) // (2 * c * 4096))) / 256.0)
    rec = np.where(m == 0, 0.0, (m + np.where(m == 1, offs[0], offs[1])) * step)
    norm = np.linalg.norm(rows, axis=1)
    err = np.linalg.norm(a - rec, axis=1)
    return float(np.mean(np.where(norm > 0, err / np.where(norm > 0, norm, 1.0), 0.0)))


def _step_for_error(rows: np.ndarray, goal: float, rho_256: int) -> float:
    """The largest binary32 step meeting the goal on the rows (bisection on log2 step)."""
    peak = float(np.max(np.abs(rows))) if rows.size else 0.0
    if peak == 0.0:
        return 1.0
    lo, hi = math.log2(peak) - 40.0, math.log2(peak) + 2.0  # lo meets any goal ≥ 2^-30
    for _ in range(40):
        mid = 0.5 * (lo + hi)
        if _calibration_error(rows, float(np.float32(2.0**mid)), rho_256) <= goal:
            lo = mid
        else:
            hi = mid
    return max(float(np.float32(2.0**lo)), 2.0**-126)


def _trellis_error(
    rows: np.ndarray, shape: tuple, r: int, step: float, lam: float, states: int, classes: int
) -> float:
    """Mean per-row relative L2 error of the calibration rows coded as frames of the trellis
    context built from them at `step` (rows: the caller's array; rows of zeros count as
    exact)."""
    status, context = _core.frame_context_build(
        _native(rows).reshape(-1).view(np.uint8), _CODES[rows.dtype], rows.size // r, list(shape),
        step, 128, None, states, classes, lam,
    )  # fmt: skip
    if status != 0:
        raise_encode_status(status, "FrameEncoder")
    h = _Handle(context, r)
    flat = rows.reshape(-1, r)
    out = np.empty(h.row_shape, dtype=h.dtype)
    errs = []
    for k, row in enumerate(flat):
        row = np.ascontiguousarray(row)
        frame = h.handle.encode(_native(row), k & 0xFF)
        if type(frame) is int:
            raise_encode_status(frame, "FrameEncoder")
        h.handle.decode(frame, _native(out))
        x = row.astype(np.float64)
        norm = float(np.linalg.norm(x))
        errs.append(float(np.linalg.norm(x - out.reshape(-1).astype(np.float64))) / norm
                    if norm > 0 else 0.0)  # fmt: skip
    return float(np.mean(errs))


def _trellis_step_for_error(rows, shape, r, goal, lam, states, classes) -> float:
    """The largest binary32 step (within 1/16 octave) whose trellis frames meet the goal on
    the calibration rows: bisection on log2 step from the dead-zone step of the same goal,
    halved (a trellis step codes at about the rate of a dead-zone step twice as large)."""
    flat = rows.reshape(-1, r).astype(np.float64)
    start = _step_for_error(flat, goal, 128) / 2.0
    ok = lambda e: _trellis_error(rows, shape, r, float(np.float32(2.0**e)), lam, states,  # noqa: E731
                                  classes) <= goal  # fmt: skip
    lo, hi = math.log2(start) - 1.0, math.log2(start) + 1.0
    while not ok(lo):
        lo, hi = lo - 2.0, lo
        if lo < -126:
            return 2.0**-126
    while ok(hi) and hi < 127:
        lo, hi = hi, hi + 2.0
    while hi - lo > 1.0 / 16:
        mid = 0.5 * (lo + hi)
        if ok(mid):
            lo = mid
        else:
            hi = mid
    return max(float(np.float32(2.0**lo)), 2.0**-126)


class _Handle:
    """An opened context (C handle) plus what Python needs about it."""

    def __init__(self, context: Any, max_elements: int) -> None:
        if isinstance(context, (bytearray, memoryview)):
            context = bytes(context)
        if not isinstance(context, bytes):
            raise TypeError(f"context must be bytes, got {type(context).__name__}")
        self.handle = _core.FrameHandle()
        status = self.handle.open(np.frombuffer(context, dtype=np.uint8), max_elements)
        if status != 0:
            if status == LIMIT_EXCEEDED:
                raise FormatError(f"frame context rows exceed max_elements={max_elements}", status)
            raise_decode_status(status, "frame context")
        info = self.handle.info()
        self.context = context
        self.dtype = _DTYPES[info["dtype"]]
        self.row_shape = tuple(info["row_shape"])
        self.row_elements = int(info["row_elements"])
        self.step = float(info["step"])
        self.offsets = tuple(info["offsets"])
        self.states = int(info["states"])
        self.context_id = int(info["context_id"])
        self.frame_bound = int(info["frame_bound"])
        self.classes = int(info["classes"])
        self.trellis = float(info["trellis_lambda"]) if info["trellis"] else None


class FrameEncoder:
    """Builds a frame context from calibration rows and codes one row per :meth:`encode`.

    Parameters
    ----------
    calibration:
        Rows that set the step offsets and frequency table (NumPy / PyTorch / DLPack, float32,
        float16, bfloat16 or float64; that dtype is the dtype of every frame). The last
        ``len(row_shape)`` axes form a row, the leading axes count rows.
    step, rel_error:
        Exactly one: the quantizer step Δ0, or the mean per-row relative L2 error the
        calibration rows may reach (the largest step that meets it is taken). Per row, because
        frames are rows: one massive-activation row (an LLM's first token) would otherwise set
        a whole-tensor error on its own.
    rho, offsets:
        As for ``slicer.encode(mode="dense")``: rounding offset in [1/256, 1/2] (default 1/2),
        and the reconstruction offsets (None: the data rule over the calibration rows; a
        trellis context takes four, Q0's then Q1's, docs/format.md §21.2).
    trellis:
        False (default): the dead-zone quantizer. True or λ > 0: a trellis context (§17.4):
        every frame is coded with trellis-coded quantization (two quantizers under a 4-state
        machine, a Viterbi search per frame with the context's tables; λ = 0.34 for True, as
        ``encode(trellis=True)``). ``rho`` does not apply. At equal bytes the rows decode
        with lower error (bench/RESULTS.md §13.13); a trellis step is about half the
        dead-zone step of the same rate. ``rel_error=`` measures the trellis frames of the
        calibration rows.
    row_shape:
        The shape of one row; default: the last axis of ``calibration``.
    states:
        Interleaved rANS states per frame: 1 (smallest frames, about 3.5 bytes less than 2),
        2 (default: 576-float frames in under 3 µs through the C ABI) or 4 (a little faster,
        about 7 bytes more than 2).
    classes:
        1 (default): one frequency table for every row position. 2 … 16 (at most the row
        size): the row positions are grouped by their calibration magnitudes into that many
        classes, each with its own table (docs/format.md §18). Smaller frames when positions
        differ in spread (the channels of LLM states, the components of a calibrated
        transform); the context grows by half a byte per position and one table per class
        (about 50–150 bytes each), sent once.
    """

    def __init__(
        self,
        calibration: Any,
        *,
        step: Any = None,
        rel_error: Any = None,
        rho: Any = None,
        offsets: Any = None,
        row_shape: Any = None,
        states: int = 2,
        classes: int = 1,
        trellis: Any = False,
    ) -> None:
        rows = _rows_array(calibration, "calibration")
        lam = trellis_lambda(trellis)
        if lam is not None:
            if not 2.0**-126 <= float(np.float32(lam)) < math.inf:
                raise ValueError(f"trellis λ must be a normal binary32 number, got {trellis!r}")
            if rho is not None:
                raise ValueError("rho does not apply to a trellis context (trellis=...)")
            if offsets is not None:
                if isinstance(offsets, (str, bytes)) or len(offsets) != 4:
                    raise TypeError("offsets of a trellis context must be four integers "
                                    "(Q0's m = 1, m >= 2, then Q1's)")  # fmt: skip
                if not all(isinstance(o, (int, np.integer)) and not isinstance(o, bool)
                           for o in offsets):  # fmt: skip
                    raise TypeError(f"offsets must be integers, got {offsets!r}")
                if not all(-128 <= int(o) <= 127 for o in offsets):
                    raise ValueError(f"offsets must be in -128..127, got {tuple(offsets)}")
                offsets = tuple(int(o) for o in offsets)
        if rho is None:
            rho = 0.5
        if isinstance(states, bool) or states not in (1, 2, 4):
            raise ValueError(f"states must be 1, 2 or 4, got {states!r}")
        if isinstance(classes, bool) or not isinstance(classes, (int, np.integer)):
            raise TypeError(f"classes must be an int, got {classes!r}")
        if row_shape is None:
            if rows.ndim == 0:
                raise ValueError("calibration needs at least one axis (rows along the last)")
            row_shape = rows.shape[-1:]
        try:
            row_shape = tuple(int(d) for d in row_shape)
        except TypeError:
            raise TypeError("row_shape must be a sequence of ints") from None
        if any(d < 1 for d in row_shape):
            raise ValueError(f"row_shape must have positive dimensions, got {row_shape}")
        r = math.prod(row_shape)
        if r > _MAX_ROW:
            raise ValueError(f"a row may hold at most {_MAX_ROW} elements, row_shape gives {r}")
        if not 1 <= classes <= min(_MAX_CLASSES, r):
            raise ValueError(
                f"classes must be in 1 ... min({_MAX_CLASSES}, row size {r}), got {classes}"
            )
        if rows.size == 0 or rows.size % r:
            raise ValueError(
                f"calibration must hold one or more whole rows of shape {row_shape}, "
                f"got shape {rows.shape}"
            )
        if (step is None) == (rel_error is None):
            raise ValueError("give exactly one of step= and rel_error=")
        params = make_dense_params(step=step, rho=rho, offsets=None if lam else offsets)
        rho_256 = params["rho_256"]
        if lam is not None:
            params["offsets"] = offsets
        if step is None:
            if isinstance(rel_error, bool) or not isinstance(rel_error, (int, float, np.floating)):
                raise TypeError(f"rel_error must be a real number, got {rel_error!r}")
            if not 0.0 < float(rel_error) < 1.0:
                raise ValueError(f"rel_error must be in (0, 1), got {rel_error!r}")
            flat = rows.reshape(-1, r).astype(np.float64)
            if not np.all(np.isfinite(flat)):
                raise ValueError("calibration contains NaN or infinity")
            if lam is None:
                step_value = _step_for_error(flat, float(rel_error), rho_256)
            else:
                step_value = _trellis_step_for_error(
                    np.ascontiguousarray(rows), row_shape, r, float(rel_error), lam,
                    int(states), int(classes),
                )  # fmt: skip
        else:
            step_value = params["step"]
        if lam is not None:  # §17.4: |x| / step must stay below 2^52
            peak = float(np.max(np.abs(rows.astype(np.float64)))) if rows.size else 0.0
            if math.isfinite(peak) and peak / float(np.float32(step_value)) >= 2.0**52:
                raise ValueError(
                    f"step {step_value!r} too small for the calibration rows: |x| / step "
                    "reaches 2^52"
                )
        status, context = _core.frame_context_build(
            np.frombuffer(_native(rows).tobytes(), dtype=np.uint8)
            if not rows.flags.c_contiguous
            else _native(rows).reshape(-1).view(np.uint8),
            _CODES[rows.dtype],
            rows.size // r,
            list(row_shape),
            step_value,
            rho_256,
            params["offsets"],
            int(states),
            int(classes),
            0.0 if lam is None else lam,
        )
        if status != 0:
            raise_encode_status(status, "FrameEncoder")
        self._h = _Handle(context, r)
        self._seq = 0

    @property
    def context(self) -> bytes:
        """The context bytes to send once, before the first frame."""
        return self._h.context

    @property
    def context_id(self) -> int:
        return self._h.context_id

    @property
    def row_shape(self) -> tuple[int, ...]:
        return self._h.row_shape

    @property
    def dtype(self) -> np.dtype:
        return self._h.dtype

    @property
    def step(self) -> float:
        return self._h.step

    @property
    def states(self) -> int:
        return self._h.states

    @property
    def classes(self) -> int:
        """1, or the number of classes of the context's class map."""
        return self._h.classes

    @property
    def trellis(self) -> float | None:
        """λ of a trellis context (its binary32 value), None for the dead-zone quantizer."""
        return self._h.trellis

    @property
    def seq(self) -> int:
        """The sequence number (mod 256) of the next frame."""
        return self._seq

    def encode(self, row: Any) -> bytes:
        """One frame for one row of the context's shape and dtype."""
        if type(row) is not np.ndarray or not row.flags.c_contiguous:
            row = _rows_array(row, "row")
        if not isinstance(row, np.ndarray):
            raise TypeError("row must be an array")
        h = self._h
        if row.dtype != h.dtype:
            raise TypeError(f"row dtype {row.dtype} differs from the context dtype {h.dtype}")
        if row.size != h.row_elements:
            raise ValueError(
                f"row has {row.size} elements, the context's rows have {h.row_elements} "
                f"(shape {h.row_shape})"
            )
        out = h.handle.encode(row if row.dtype != BFLOAT16 else row.view(np.uint16), self._seq)
        if type(out) is int:
            if out == INVALID_ARGUMENT:  # the only argument error a row of the right shape has
                raise ValueError(
                    f"row: step {h.step!r} too small for the row's values (|x| / step reaches "
                    f"2^{52 if h.trellis is not None else 53})"
                )
            raise_encode_status(out, "FrameEncoder.encode")
        self._seq = (self._seq + 1) & 0xFF
        return out


class FrameDecoder:
    """Opens a frame context and decodes its frames, one row each.

    ``check_sequence`` (default True): frames must arrive in order; a gap or reordering raises
    :class:`slicer.FormatError` (the expected number is :attr:`seq`; assign it to resync).
    ``max_elements`` bounds the row size the context may claim.
    """

    def __init__(
        self,
        context: Any,
        *,
        check_sequence: bool = True,
        max_elements: int = _DEFAULT_MAX_ELEMENTS,
    ) -> None:
        if isinstance(max_elements, bool) or not isinstance(max_elements, (int, np.integer)):
            raise TypeError(f"max_elements must be an int, got {max_elements!r}")
        if max_elements < 1:
            raise ValueError(f"max_elements must be >= 1, got {max_elements}")
        self._h = _Handle(context, int(max_elements))
        self._check = bool(check_sequence)
        self._seq = 0

    @property
    def context_id(self) -> int:
        return self._h.context_id

    @property
    def row_shape(self) -> tuple[int, ...]:
        return self._h.row_shape

    @property
    def dtype(self) -> np.dtype:
        return self._h.dtype

    @property
    def classes(self) -> int:
        """1, or the number of classes of the context's class map."""
        return self._h.classes

    @property
    def trellis(self) -> float | None:
        """λ of a trellis context, None for the dead-zone quantizer."""
        return self._h.trellis

    @property
    def seq(self) -> int:
        """The sequence number (mod 256) the next frame must carry."""
        return self._seq

    @seq.setter
    def seq(self, value: int) -> None:
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise TypeError(f"seq must be an int, got {value!r}")
        self._seq = int(value) & 0xFF

    def decode(self, frame: Any) -> np.ndarray:
        """The row of one frame (a new array of the context's row shape and dtype)."""
        if type(frame) is not bytes:
            if not isinstance(frame, (bytearray, memoryview)):
                raise TypeError(f"frame must be bytes, got {type(frame).__name__}")
            frame = bytes(frame)
        h = self._h
        out = np.empty(h.row_shape, dtype=h.dtype)
        r = h.handle.decode(frame, out if h.dtype != BFLOAT16 else out.view(np.uint16))
        if r < 0:
            raise_decode_status(-r, "frame")
        if self._check and r != self._seq:
            raise FormatError(
                f"frame out of sequence: expected seq {self._seq}, got {r} (a frame was lost "
                "or reordered; assign FrameDecoder.seq to resynchronise)"
            )
        self._seq = (r + 1) & 0xFF
        return out
