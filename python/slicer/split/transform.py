"""A calibrated decorrelating transform for a cut tensor (KLT / PCA along the feature axis).

The features that cross a cut are strongly correlated across channels: a transformer's residual
stream lives mostly in a few directions, a CNN map's channels move together. A uniform
quantizer with an entropy coder (the codec's dense mode) spends bits on every coordinate, so
coding the tensor in the basis of its principal components costs fewer bits for the same
squared error: the transform is orthonormal, so the error the server sees after the inverse
transform is exactly the error of the coded coefficients (bench/RESULTS.md §9.6).

``CutTransform.fit`` estimates the mean and the covariance of the feature vectors (one vector
per token row or per pixel) over calibration samples, in float64, and keeps the eigenvectors
sorted by decreasing variance. Both sides of a split hold the same transform (a settings
artifact, like the model's weights: it is not sent with each tensor): the device codes
``forward(x)``, the server decodes and applies ``inverse``. Not part of the bitstream: a stream
of a transformed tensor is an ordinary SLICER stream of the coefficients.
"""

from __future__ import annotations

import hashlib
import io
import os
import zipfile
from collections.abc import Iterable
from typing import Any

import numpy as np

__all__ = ["CutTransform", "default_axis"]

_FLOAT_KINDS = ("f",)


def default_axis(ndim: int) -> int:
    """The feature axis of a cut tensor: 1 for an (N, C, H, W) map, the last axis otherwise."""
    if ndim < 1:
        raise ValueError("a cut tensor for a transform needs at least one dimension")
    return 1 if ndim == 4 else ndim - 1


def _as_float(x: Any, what: str) -> np.ndarray:
    arr = np.asarray(x)
    if arr.dtype.kind not in _FLOAT_KINDS and arr.dtype.name != "bfloat16":
        raise TypeError(f"{what} must be a floating-point array, got dtype {arr.dtype}")
    return arr


class StoredArtifact:
    """``save`` / ``load`` of a settings artifact through its ``to_bytes`` / ``from_bytes``."""

    __slots__ = ()

    def save(self, path: str | os.PathLike) -> None:
        with open(path, "wb") as f:
            f.write(self.to_bytes())

    @classmethod
    def load(cls, path: str | os.PathLike):  # noqa: ANN206 - an instance of cls
        with open(path, "rb") as f:
            return cls.from_bytes(f.read())

    @staticmethod
    def _digest(*parts: bytes) -> str:
        """``sha256:`` and the hex digest of ``parts`` in order (the artifact's fingerprint)."""
        h = hashlib.sha256()
        for part in parts:
            h.update(part)
        return "sha256:" + h.hexdigest()

    @staticmethod
    def _npz(**arrays: Any) -> bytes:
        """``arrays`` as a compressed ``.npz`` (what ``to_bytes`` writes)."""
        buf = io.BytesIO()
        np.savez_compressed(buf, **arrays)
        return buf.getvalue()


class CutTransform(StoredArtifact):
    """Mean and basis (columns sorted by decreasing variance) of a feature axis.

    ``forward(x) = (x − mean) · basis`` along ``axis`` (float32 result); ``inverse`` undoes it
    with ``inverse_basis`` (``basisᵀ`` for the plain KLT, whose basis is orthonormal; the
    task-weighted transform of ``fit(weights=...)`` is not orthonormal and stores its inverse).
    """

    __slots__ = ("_fingerprint", "axis", "basis", "count", "inverse_basis", "mean", "variance")

    def __init__(
        self,
        mean: np.ndarray,
        basis: np.ndarray,
        variance: np.ndarray,
        *,
        axis: int,
        count: int = 0,
        inverse_basis: np.ndarray | None = None,
    ) -> None:
        # Own copies: they are made read-only below.
        mean = np.array(mean, dtype=np.float32)
        basis = np.array(basis, dtype=np.float32)
        variance = np.array(variance, dtype=np.float64)
        if mean.ndim != 1 or mean.size == 0:
            raise ValueError(f"mean must be a non-empty vector, got shape {mean.shape}")
        c = mean.size
        if basis.shape != (c, c):
            raise ValueError(f"basis must be ({c}, {c}) for a mean of {c}, got {basis.shape}")
        if variance.shape != (c,):
            raise ValueError(f"variance must have shape ({c},), got {variance.shape}")
        if not (np.isfinite(mean).all() and np.isfinite(basis).all()):
            raise ValueError("mean and basis must be finite")
        if inverse_basis is None:
            gram = basis.astype(np.float64).T @ basis.astype(np.float64)
            if not np.allclose(gram, np.eye(c), atol=1e-4):
                raise ValueError("basis must be orthonormal (basisᵀ·basis = I) without an inverse")
            inverse_basis = basis.T
        inverse_basis = np.array(inverse_basis, dtype=np.float32)
        if inverse_basis.shape != (c, c) or not np.isfinite(inverse_basis).all():
            raise ValueError(f"inverse_basis must be a finite ({c}, {c}) matrix")
        if not np.allclose(
            basis.astype(np.float64) @ inverse_basis.astype(np.float64), np.eye(c), atol=1e-3
        ):
            raise ValueError("inverse_basis is not the inverse of basis")
        if not isinstance(axis, (int, np.integer)) or isinstance(axis, bool):
            raise TypeError(f"axis must be an integer, got {type(axis).__name__}")
        self.mean = mean
        self.basis = np.ascontiguousarray(basis)
        self.inverse_basis = np.ascontiguousarray(inverse_basis)
        self.variance = variance
        self.axis = int(axis)
        self.count = int(count)
        for arr in (self.mean, self.basis, self.inverse_basis, self.variance):
            arr.setflags(write=False)  # immutable: the fingerprint is computed once
        self._fingerprint: str | None = None

    @property
    def channels(self) -> int:
        return self.mean.size

    # ------------------------------------------------------------------ fitting

    @classmethod
    def fit(
        cls,
        samples: Iterable[Any],
        *,
        axis: int | None = None,
        weights: Any = None,
        outlier_ratio: float | None = None,
    ) -> CutTransform:
        """Fit on calibration tensors (each with the same size along ``axis``; ``axis=None``:
        :func:`default_axis` of the first sample). Accumulates in float64, one sample at a
        time, so memory stays O(C²) whatever the number of samples.

        ``weights``: the task's sensitivity to errors of the feature vector, a (C, C) positive
        semi-definite matrix F (e.g. the Fisher information from gradients) or a vector (its
        diagonal). The loss then grows as ½·eᵀFe for an error e, and the transform codes
        z = (x − mean)·L with F = L·Lᵀ, in the KLT basis of z: the codec's plain squared error
        on the coefficients is then the task's weighted error. F is regularised with 1e-3 of
        its mean diagonal so that every direction stays invertible.

        ``outlier_ratio``: leave out of the fit the feature vectors whose norm exceeds this
        multiple of their sample's median vector norm (an LLM's attention-sink rows carry
        activations 50× the others and would otherwise set the mean and the top components).
        They are still coded, just not fitted."""
        total: np.ndarray | None = None
        outer: np.ndarray | None = None
        count = 0
        ax: int | None = axis
        if outlier_ratio is not None and not (
            isinstance(outlier_ratio, (int, float)) and outlier_ratio >= 1
        ):
            raise ValueError(f"outlier_ratio must be a number ≥ 1, got {outlier_ratio!r}")
        for i, sample in enumerate(samples):
            arr = _as_float(sample, f"sample {i}")
            if ax is None:
                ax = default_axis(arr.ndim)
            rows = _rows(arr, ax, f"sample {i}")
            if outlier_ratio is not None and rows.shape[0] > 1:
                norms = np.linalg.norm(rows, axis=1)
                rows = rows[norms <= outlier_ratio * np.median(norms)]
            if total is None:
                total = np.zeros(rows.shape[1])
                outer = np.zeros((rows.shape[1], rows.shape[1]))
            elif rows.shape[1] != total.size:
                raise ValueError(
                    f"sample {i} has {rows.shape[1]} features along axis {ax}, "
                    f"the first sample {total.size}"
                )
            if not np.isfinite(rows).all():
                raise ValueError(f"sample {i} holds NaN or infinity")
            total += rows.sum(axis=0)
            outer += rows.T @ rows
            count += rows.shape[0]
        if total is None or outer is None or ax is None:
            raise ValueError("fit needs at least one sample")
        if count < 2:
            raise ValueError(f"fit needs at least 2 feature vectors, got {count}")
        mean = total / count
        cov = (outer - count * np.outer(mean, mean)) / (count - 1)
        cov = (cov + cov.T) / 2
        lower = None if weights is None else _weight_factor(weights, total.size)
        if lower is not None:
            cov = lower.T @ cov @ lower
            cov = (cov + cov.T) / 2
        variance, vectors = np.linalg.eigh(cov)
        order = np.argsort(-variance, kind="stable")
        variance = np.maximum(variance[order], 0.0)
        vectors = vectors[:, order]
        # Deterministic signs: each column's largest-magnitude entry is positive.
        pivot = np.argmax(np.abs(vectors), axis=0)
        signs = np.where(vectors[pivot, np.arange(vectors.shape[1])] < 0, -1.0, 1.0)
        vectors = vectors * signs
        if lower is None:
            return cls(mean, vectors, variance, axis=ax, count=count)
        forward = lower @ vectors
        inverse = vectors.T @ np.linalg.inv(lower)
        return cls(mean, forward, variance, axis=ax, count=count, inverse_basis=inverse)

    # ------------------------------------------------------------------ applying

    def forward(self, x: Any) -> np.ndarray:
        """Coefficients of ``x`` (float32, same shape, C-contiguous)."""
        arr = _as_float(x, "x")
        rows = _moved(arr, self._axis_of(arr), self.channels, "x")
        y = (rows.astype(np.float32, copy=False) - self.mean) @ self.basis
        return np.ascontiguousarray(np.moveaxis(y, -1, self._axis_of(arr)))

    def inverse(self, y: Any) -> np.ndarray:
        """The tensor whose coefficients are ``y`` (float32, same shape, C-contiguous)."""
        arr = _as_float(y, "y")
        rows = _moved(arr, self._axis_of(arr), self.channels, "y")
        x = rows.astype(np.float32, copy=False) @ self.inverse_basis + self.mean
        return np.ascontiguousarray(np.moveaxis(x, -1, self._axis_of(arr)))

    def _axis_of(self, arr: np.ndarray) -> int:
        ax = self.axis if self.axis >= 0 else arr.ndim + self.axis
        if not 0 <= ax < arr.ndim:
            raise ValueError(f"axis {self.axis} is out of range for a {arr.ndim}-d tensor")
        return ax

    def coding_gain_bits(self) -> float:
        """Half the log2 ratio of the arithmetic to the geometric mean of the component
        variances (floored at 1e-12 of the largest): the high-rate saving, bits per element,
        of coding the components instead of white data of the same power."""
        v = np.maximum(self.variance, 1e-12 * max(float(self.variance.max()), 1e-300))
        return float(0.5 * np.log2(v.mean() / np.exp(np.log(v).mean())))

    # ------------------------------------------------------------------ storage

    def fingerprint(self) -> str:
        """sha256 of the axis, mean and both bases (computed once: the arrays are read-only)."""
        if self._fingerprint is None:
            self._fingerprint = self._digest(
                np.int64(self.axis).tobytes(),
                self.mean.tobytes(),
                self.basis.tobytes(),
                self.inverse_basis.tobytes(),
            )
        return self._fingerprint

    def to_bytes(self) -> bytes:
        return self._npz(
            mean=self.mean,
            basis=self.basis,
            inverse_basis=self.inverse_basis,
            variance=self.variance,
            axis=np.int64(self.axis),
            count=np.int64(self.count),
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> CutTransform:
        """The transform stored by :meth:`to_bytes`. Every array's header is checked before
        it is read (at most ``MAX_CHANNELS`` features, float / integer arrays only), so a
        small hostile file cannot make the reader allocate gigabytes."""
        try:
            check_npz_members(data, _MEMBER_DIMS, MAX_CHANNELS)
            with np.load(io.BytesIO(data), allow_pickle=False) as z:
                fields = {k: z[k] for k in ("mean", "basis", "variance", "axis", "count")}
                fields["inverse_basis"] = z["inverse_basis"] if "inverse_basis" in z else None
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
            raise ValueError(f"not a SLICER cut transform: {exc}") from exc
        return cls(
            fields["mean"],
            fields["basis"],
            fields["variance"],
            axis=int(fields["axis"]),
            count=int(fields["count"]),
            inverse_basis=fields["inverse_basis"],
        )

    def __repr__(self) -> str:
        return (
            f"CutTransform(channels={self.channels}, axis={self.axis}, count={self.count}, "
            f"gain={self.coding_gain_bits():.2f} b/el)"
        )


MAX_CHANNELS = 1 << 15  # features of a stored transform (a 32768² basis is 4 GiB)
_MEMBER_DIMS = {
    "mean": (1, "fiu"),
    "basis": (2, "fiu"),
    "inverse_basis": (2, "fiu"),
    "variance": (1, "fiu"),
    "axis": (0, "fiu"),
    "count": (0, "fiu"),
}


def check_npz_members(data: bytes, members: dict[str, tuple[int, str]], max_dim: int) -> None:
    """Shapes and dtypes of the arrays of an ``.npz``, from their .npy headers, before any is
    read: each member must be named in ``members`` (name → (dimensions, dtype kinds)) and no
    dimension may exceed ``max_dim`` (``ValueError`` otherwise)."""
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        for info in z.infolist():
            name = info.filename.removesuffix(".npy")
            if name not in members:
                raise ValueError(f"unexpected member {info.filename!r}")
            with z.open(info) as f:
                version = np.lib.format.read_magic(f)
                if version == (1, 0):
                    shape, _, dtype = np.lib.format.read_array_header_1_0(f)
                else:
                    shape, _, dtype = np.lib.format.read_array_header_2_0(f)
            dims, kinds = members[name]
            if dtype.kind not in kinds or len(shape) != dims:
                raise ValueError(f"member {name!r} is a {len(shape)}-d {dtype} array")
            if any(d > max_dim for d in shape):
                raise ValueError(f"member {name!r} has shape {shape} (at most {max_dim})")


def _weight_factor(weights: Any, channels: int) -> np.ndarray:
    """L with L·Lᵀ = F + 1e-3·mean(diag F)·I for a (C, C) PSD F or a diagonal vector."""
    w = np.asarray(weights, dtype=np.float64)
    if w.shape == (channels,):
        w = np.diag(w)
    if w.shape != (channels, channels):
        raise ValueError(
            f"weights must be a ({channels},) vector or a ({channels}, {channels}) matrix, "
            f"got shape {w.shape}"
        )
    if not np.isfinite(w).all():
        raise ValueError("weights must be finite")
    w = (w + w.T) / 2
    ridge = 1e-3 * float(np.trace(w)) / channels
    if ridge <= 0:
        raise ValueError("weights must have a positive trace")
    try:
        return np.linalg.cholesky(w + ridge * np.eye(channels))
    except np.linalg.LinAlgError as exc:
        raise ValueError("weights must be positive semi-definite") from exc


def _moved(arr: np.ndarray, ax: int, channels: int, what: str) -> np.ndarray:
    if arr.shape[ax] != channels:
        raise ValueError(
            f"{what} has {arr.shape[ax]} features along axis {ax}, the transform {channels}"
        )
    return np.moveaxis(arr, ax, -1)


def _rows(arr: np.ndarray, ax: int, what: str) -> np.ndarray:
    if arr.ndim == 0:
        raise ValueError(f"{what} is a scalar; a transform needs a feature axis")
    if not -arr.ndim <= ax < arr.ndim:
        raise ValueError(f"axis {ax} is out of range for the {arr.ndim}-d {what}")
    moved = np.moveaxis(arr, ax, -1)
    return moved.reshape(-1, moved.shape[-1]).astype(np.float64)
