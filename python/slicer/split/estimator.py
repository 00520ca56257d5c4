"""A calibrated decoder-side estimator for a cut tensor (linear MMSE, applied after decode).

The codec's decoded tensor y is the cut tensor x plus quantization error. The error is not
independent of y (a dead zone pulls small values to zero, a coarse step rounds a smooth map
into plateaus), so a linear function of y predicts x better than y itself. ``CutEstimator``
holds that function, fitted by least squares on calibration pairs (x, y) — the uncut cut
tensors and their decoded versions at the cut's chosen codec settings — and the server applies
it right after decode, before the tail runs (bench/RESULTS.md §9.17, §9.21). It costs no bits
and nothing on the device; it is a settings artifact of the server like a
:class:`~slicer.split.transform.CutTransform` (a file beside the settings, checked by
fingerprint), not part of the bitstream.

Two layouts:

``map``  an (…, C, H, W) feature map: every output value x̂[c, i, j] is a weighted sum of the
         decoded values of *all* channels in the ``window`` × ``window`` neighbourhood of
         (i, j) (zero padding at the borders) plus a bias per channel — a ``window`` ×
         ``window`` convolution from C to C channels. Tap order: (dy, dx) row-major, then the
         channel: tap ``(dy · window + dx) · C + c``.
``rows`` a tensor whose last axis holds C features (token rows): x̂ = y · W + b per row.

The fit solves the normal equations in float64 with a ridge of ``ridge`` × the mean diagonal
of the taps' Gram matrix (the bias is not regularised); the apply runs in float32 as a one-node
ONNX Runtime graph (a Conv, or a Gemm for rows) on one thread.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterable
from typing import Any

import numpy as np

from .transform import StoredArtifact, check_npz_members

__all__ = ["ESTIMATOR_VERSION", "CutEstimator", "EstimatorFit"]

ESTIMATOR_VERSION = 1  # the stored file's version (bump when its members change meaning)
LAYOUTS = ("map", "rows")
MAX_WINDOW = 7
# taps of an estimator: its fit's Gram matrix is taps² float64 (512 MiB at the limit), a stored
# weight matrix at most taps² elements, checked before a file is read
MAX_TAPS = 1 << 13
DEFAULT_RIDGE = 1e-3


def _window_ok(layout: str, window: Any) -> int:
    if not isinstance(window, (int, np.integer)) or isinstance(window, bool):
        raise TypeError(f"window must be an integer, got {type(window).__name__}")
    window = int(window)
    if layout == "rows" and window != 1:
        raise ValueError(f"window must be 1 for the 'rows' layout, got {window}")
    if not (1 <= window <= MAX_WINDOW and window % 2 == 1):
        raise ValueError(f"window must be an odd integer in 1..{MAX_WINDOW}, got {window}")
    return window


def _layout_of(ndim: int) -> str:
    """'map' for an (N, C, H, W) tensor, 'rows' otherwise (the last axis holds the features)."""
    if ndim < 1:
        raise ValueError("a cut tensor for an estimator needs at least one dimension")
    return "map" if ndim == 4 else "rows"


def _taps(y: np.ndarray, layout: str, window: int) -> np.ndarray:
    """The regressors of every output position, (positions, taps) in float64 (the fit's
    design matrix without its constant column)."""
    if layout == "rows":
        return y.reshape(-1, y.shape[-1]).astype(np.float64)
    c, h, w = y.shape[-3:]
    maps = y.reshape(-1, c, h, w).astype(np.float64)
    r = window // 2
    padded = np.pad(maps, ((0, 0), (0, 0), (r, r), (r, r)))
    # (N, H, W, window², C): every neighbour of every pixel, channels innermost
    out = np.empty((maps.shape[0], h, w, window * window, c))
    for dy in range(window):
        for dx in range(window):
            out[:, :, :, dy * window + dx, :] = padded[:, :, dy : dy + h, dx : dx + w].transpose(
                0, 2, 3, 1
            )
    return out.reshape(-1, window * window * c)


def _targets(x: np.ndarray, layout: str) -> np.ndarray:
    """The cut tensor's values as (positions, C) float64, in the order of :func:`_taps`."""
    if layout == "rows":
        return x.reshape(-1, x.shape[-1]).astype(np.float64)
    c, h, w = x.shape[-3:]
    return x.reshape(-1, c, h, w).transpose(0, 2, 3, 1).reshape(-1, c).astype(np.float64)


class EstimatorFit:
    """The normal equations of the least-squares fit, accumulated one (x, y) pair at a time
    (memory O(taps²) whatever the number of pairs). Accumulators of disjoint inputs add up
    (``a + b``), which is how cross-fitted estimators are built without re-reading data."""

    def __init__(self, layout: str, channels: int, window: int) -> None:
        if layout not in LAYOUTS:
            raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
        self.layout = layout
        self.window = _window_ok(layout, window)
        self.channels = int(channels)
        taps = self.window * self.window * self.channels
        if taps > MAX_TAPS:
            raise ValueError(f"{taps} taps is more than {MAX_TAPS}: use a smaller window")
        self.gram = np.zeros((taps + 1, taps + 1))  # the last tap is the constant 1
        self.cross = np.zeros((taps + 1, self.channels))
        self.count = 0

    def add(self, x: Any, y: Any) -> None:
        """One calibration pair: the uncut cut tensor ``x`` and its decoded version ``y``."""
        x, y = np.asarray(x), np.asarray(y)
        if x.shape != y.shape:
            raise ValueError(f"x has shape {x.shape}, y {y.shape}: a pair must match")
        for what, a in (("x", x), ("y", y)):
            if a.dtype.kind != "f" and a.dtype.name != "bfloat16":
                raise TypeError(f"{what} must be a floating-point array, got dtype {a.dtype}")
        axis = -3 if self.layout == "map" else -1
        if x.ndim < (3 if self.layout == "map" else 1) or x.shape[axis] != self.channels:
            raise ValueError(
                f"a pair of shape {x.shape} does not have {self.channels} channels on axis {axis}"
            )
        taps = _taps(y, self.layout, self.window)
        target = _targets(x, self.layout)
        if not (np.isfinite(taps).all() and np.isfinite(target).all()):
            raise ValueError("a calibration pair holds NaN or infinity")
        ones = taps.sum(axis=0)
        k = taps.shape[1]
        self.gram[:k, :k] += taps.T @ taps
        self.gram[:k, k] += ones
        self.gram[k, :k] += ones
        self.gram[k, k] += taps.shape[0]
        self.cross[:k] += taps.T @ target
        self.cross[k] += target.sum(axis=0)
        self.count += taps.shape[0]

    def __add__(self, other: EstimatorFit) -> EstimatorFit:
        if (other.layout, other.window, other.channels) != (
            self.layout,
            self.window,
            self.channels,
        ):
            raise ValueError("only fits of the same layout, window and channels add up")
        out = EstimatorFit(self.layout, self.channels, self.window)
        out.gram = self.gram + other.gram
        out.cross = self.cross + other.cross
        out.count = self.count + other.count
        return out

    def solve(self, ridge: float = DEFAULT_RIDGE) -> CutEstimator:
        """The least-squares estimator (ridge: ``ridge`` × the taps' mean diagonal)."""
        if not (isinstance(ridge, (int, float)) and not isinstance(ridge, bool) and ridge >= 0):
            raise ValueError(f"ridge must be a number ≥ 0, got {ridge!r}")
        k = self.gram.shape[0] - 1
        if self.count < 2:
            raise ValueError(f"an estimator needs at least 2 positions, got {self.count}")
        gram = self.gram.copy()
        lam = ridge * float(np.trace(gram[:k, :k])) / k
        gram[np.arange(k), np.arange(k)] += lam
        try:
            solution = np.linalg.solve(gram, self.cross)
        except np.linalg.LinAlgError:  # singular without a ridge: the minimum-norm solution
            solution = np.linalg.lstsq(gram, self.cross, rcond=None)[0]
        return CutEstimator(
            solution[:k],
            solution[k],
            layout=self.layout,
            window=self.window,
            count=self.count,
            ridge=float(ridge),
        )


class CutEstimator(StoredArtifact):
    """x̂ = taps(y) · weights + bias (see the module docstring for the taps).

    ``weights``: (window² · C, C), ``bias``: (C,), both stored as float32; ``count``: the
    positions (pixels or rows) it was fitted on; ``ridge``: the fit's regularisation."""

    __slots__ = (
        "_fingerprint",
        "_session",
        "bias",
        "count",
        "layout",
        "ridge",
        "weights",
        "window",
    )

    def __init__(
        self,
        weights: Any,
        bias: Any,
        *,
        layout: str,
        window: int = 1,
        count: int = 0,
        ridge: float = DEFAULT_RIDGE,
    ) -> None:
        if layout not in LAYOUTS:
            raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
        window = _window_ok(layout, window)
        weights = np.array(weights, dtype=np.float32)
        bias = np.array(bias, dtype=np.float32)
        if bias.ndim != 1 or bias.size == 0:
            raise ValueError(f"bias must be a non-empty vector, got shape {bias.shape}")
        c = bias.size
        taps = window * window * c
        if weights.shape != (taps, c):
            raise ValueError(
                f"weights must be ({taps}, {c}) for {c} channels and window {window}, "
                f"got {weights.shape}"
            )
        if not (np.isfinite(weights).all() and np.isfinite(bias).all()):
            raise ValueError("weights and bias must be finite")
        self.weights = np.ascontiguousarray(weights)
        self.bias = bias
        self.weights.setflags(write=False)
        self.bias.setflags(write=False)
        self.layout = layout
        self.window = window
        self.count = int(count)
        self.ridge = float(ridge)
        self._fingerprint: str | None = None
        self._session = None

    @property
    def channels(self) -> int:
        return self.bias.size

    @classmethod
    def fit(
        cls,
        pairs: Iterable[tuple[Any, Any]],
        *,
        window: int | None = None,
        ridge: float = DEFAULT_RIDGE,
    ) -> CutEstimator:
        """Fit on calibration pairs (uncut cut tensor x, decoded y), all of one shape along
        the channel axis. ``window``: the neighbourhood of the 'map' layout (default 3; a
        non-4-d tensor is 'rows' and takes 1)."""
        acc: EstimatorFit | None = None
        for i, (x, y) in enumerate(pairs):
            if acc is None:
                arr = np.asarray(x)
                layout = _layout_of(arr.ndim)
                win = (3 if layout == "map" else 1) if window is None else window
                axis = -3 if layout == "map" else -1
                acc = EstimatorFit(layout, arr.shape[axis], win)
            try:
                acc.add(x, y)
            except ValueError as exc:
                raise ValueError(f"pair {i}: {exc}") from None
        if acc is None:
            raise ValueError("fit needs at least one (x, y) pair")
        return acc.solve(ridge)

    def apply(self, y: Any) -> np.ndarray:
        """The estimate of the cut tensor from its decoded version (same shape and dtype)."""
        arr = np.asarray(y)
        if arr.dtype.kind != "f" and arr.dtype.name != "bfloat16":
            raise TypeError(f"y must be a floating-point array, got dtype {arr.dtype}")
        axis = -3 if self.layout == "map" else -1
        if arr.ndim < (3 if self.layout == "map" else 1) or arr.shape[axis] != self.channels:
            raise ValueError(
                f"y of shape {arr.shape} does not have {self.channels} channels on axis {axis} "
                f"(a '{self.layout}' estimator)"
            )
        if arr.size == 0:
            return arr.copy()
        if self.layout == "rows":
            flat = arr.reshape(-1, self.channels)
        else:
            flat = arr.reshape(-1, *arr.shape[-3:])
        flat = np.ascontiguousarray(flat, dtype=np.float32)
        out = self._runner().run(["x"], {"y": flat})[0]
        return out.reshape(arr.shape).astype(arr.dtype, copy=False)

    def _runner(self):  # noqa: ANN202 - an onnxruntime InferenceSession
        """The estimator as a one-node ONNX Runtime session on one thread, built once: a Conv
        (C → C, window × window, zero padding) or a Gemm. ONNX Runtime's kernels are 1.5-2x
        faster here than NumPy's products, and unlike them never spin up BLAS threads
        (bench/RESULTS.md §9.21)."""
        if self._session is None:
            self._session = _session(self)
        return self._session

    # ------------------------------------------------------------------ storage

    def fingerprint(self) -> str:
        """sha256 of the layout, window, weights and bias."""
        if self._fingerprint is None:
            self._fingerprint = self._digest(
                f"{self.layout}:{self.window}:".encode(),
                self.weights.tobytes(),
                self.bias.tobytes(),
            )
        return self._fingerprint

    def to_bytes(self) -> bytes:
        return self._npz(
            version=np.int64(ESTIMATOR_VERSION),
            layout=np.int64(LAYOUTS.index(self.layout)),
            window=np.int64(self.window),
            weights=self.weights,
            bias=self.bias,
            count=np.int64(self.count),
            ridge=np.float64(self.ridge),
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> CutEstimator:
        """The estimator stored by :meth:`to_bytes`; ``ValueError`` for anything else. Every
        member's header is checked before it is read (float32 weights and bias of at most
        ``MAX_TAPS`` rows and columns), so a small hostile file cannot make
        the reader allocate more than that."""
        try:
            check_npz_members(data, _MEMBERS, MAX_TAPS)
            with np.load(io.BytesIO(data), allow_pickle=False) as z:
                missing = sorted(set(_MEMBERS) - set(z.files))
                if missing:
                    raise ValueError(f"missing member(s) {missing}")
                f = {k: z[k] for k in _MEMBERS}
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
            raise ValueError(f"not a SLICER cut estimator: {exc}") from exc
        if int(f["version"]) != ESTIMATOR_VERSION:
            raise ValueError(
                f"cut estimator version {int(f['version'])}; this SLICER reads "
                f"version {ESTIMATOR_VERSION}"
            )
        for key in ("weights", "bias"):
            if f[key].dtype != np.float32:
                raise ValueError(f"cut estimator member {key!r} is {f[key].dtype}, not float32")
        layout = int(f["layout"])
        if not 0 <= layout < len(LAYOUTS):
            raise ValueError(f"cut estimator layout {layout} is unknown")
        ridge = float(f["ridge"])
        if not (np.isfinite(ridge) and ridge >= 0):
            raise ValueError("cut estimator ridge must be a finite number ≥ 0")
        return cls(
            f["weights"],
            f["bias"],
            layout=LAYOUTS[layout],
            window=int(f["window"]),
            count=int(f["count"]),
            ridge=ridge,
        )

    def __repr__(self) -> str:
        return (
            f"CutEstimator(layout={self.layout!r}, channels={self.channels}, "
            f"window={self.window}, count={self.count})"
        )


# member -> (dimensions, dtype kinds); checked from the .npy headers before any is read
_MEMBERS = {
    "version": (0, "i"),
    "layout": (0, "i"),
    "window": (0, "i"),
    "weights": (2, "f"),
    "bias": (1, "f"),
    "count": (0, "i"),
    "ridge": (0, "f"),
}


def _session(est: CutEstimator):  # noqa: ANN202 - an onnxruntime InferenceSession
    from onnx import TensorProto, helper, numpy_helper

    from .providers import make_session

    c, k = est.channels, est.window
    bias = numpy_helper.from_array(est.bias, "b")
    if est.layout == "map":
        # tap (dy · k + dx) · C + c_in of output c_out is Conv weight [c_out, c_in, dy, dx]
        kernel = np.ascontiguousarray(est.weights.reshape(k, k, c, c).transpose(3, 2, 0, 1))
        node = helper.make_node(
            "Conv", ["y", "w", "b"], ["x"], pads=[k // 2] * 4, kernel_shape=[k, k]
        )
        dims: list = ["n", c, "h", "w"]
        weights = numpy_helper.from_array(kernel, "w")
    else:
        node = helper.make_node("Gemm", ["y", "w", "b"], ["x"])
        dims = ["n", c]
        weights = numpy_helper.from_array(est.weights, "w")
    graph = helper.make_graph(
        [node],
        "slicer_cut_estimator",
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, dims)],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, dims)],
        initializer=[weights, bias],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return make_session(model, ["CPUExecutionProvider"], threads=1)
