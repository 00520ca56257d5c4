"""Task sensitivity of a cut tensor's groups: which channels (or rows) the rest of the model needs.

A quantizer with step Δ_g in group g adds noise of power Δ_g²/12 per element; the task loss
(KL to the uncut output, 1 - cosine of an embedding, ...) grows by about
½ Σ_g n_g w_g Δ_g²/12, with w_g the mean diagonal curvature (Fisher information for a KL) of
the loss with respect to the group's elements. At a fixed rate that sum is smallest with
Δ_g ∝ w_g^(-1/2), which is what ``slicer.encode(..., groups=..., weights=w)`` does.

:func:`group_importance` estimates w_g through the model tail alone (any ONNX tail, no
gradients): per calibration sample, the tail's output for the clean tensor is the reference;
then each group in turn gets Gaussian noise of a known power and the loss increase, divided by
that power and the group's size, is its importance. The cost is G tail runs per sample.
Where the tail is differentiable (a PyTorch module), :func:`gradient_importance` gives the same
quantity from a few backward passes: the mean squared gradient of log p(y) per group, y drawn
from the model's own output distribution (the diagonal of the Fisher information).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

__all__ = ["LOSSES", "gradient_importance", "group_importance"]

Loss = Callable[[np.ndarray, np.ndarray], float]


def _log_softmax(x: np.ndarray) -> np.ndarray:
    x = x.astype(np.float64)
    x = x - x.max(axis=-1, keepdims=True)
    return x - np.log(np.exp(x).sum(axis=-1, keepdims=True))


def kl_loss(ref: np.ndarray, out: np.ndarray) -> float:
    """Mean KL(softmax(ref) || softmax(out)) over every position but the last axis."""
    lp, lq = _log_softmax(ref), _log_softmax(out)
    return float(np.mean(np.sum(np.exp(lp) * (lp - lq), axis=-1)))


def cosine_loss(ref: np.ndarray, out: np.ndarray) -> float:
    """1 - cosine similarity of the two outputs, flattened."""
    a, b = ref.astype(np.float64).ravel(), out.astype(np.float64).ravel()
    den = float(np.linalg.norm(a) * np.linalg.norm(b))
    return 0.0 if den == 0 else 1.0 - float(a @ b) / den


def mse_loss(ref: np.ndarray, out: np.ndarray) -> float:
    """Mean squared difference of the outputs."""
    d = ref.astype(np.float64) - out.astype(np.float64)
    return float(np.mean(d * d))


LOSSES: dict[str, Loss] = {"kl": kl_loss, "cosine": cosine_loss, "mse": mse_loss}


def group_importance(
    run: Callable[[np.ndarray], Any],
    samples: Iterable[Any],
    *,
    axis: int = 1,
    loss: str | Loss = "kl",
    noise: float = 0.25,
    seed: int = 0,
    progress: bool = False,
) -> np.ndarray:
    """Per-group importance w_g of a cut tensor for the task, from noise probes of the tail.

    Parameters
    ----------
    run : callable
        Maps a cut tensor (a NumPy array shaped like the samples) to the task output
        (logits, an embedding, ...), e.g. ``lambda x: split.run_tail({name: x})["logits"]``.
    samples : iterable of arrays
        Calibration values of the cut tensor (real inputs through the head); every sample has
        the same length along `axis`.
    axis : int, default 1
        The axis whose index is the group: 1 for the channel planes of an NCHW map (the codec's
        ``groups="channels"``), -1 for the hidden channels of a token matrix [T, C] or [1, T, C]
        (code it as [T, C] with ``groups="channels"``).
    loss : {"kl", "cosine", "mse"} or callable, default "kl"
        ``loss(reference_output, output) -> float``, zero and minimal at the reference: "kl"
        is the mean KL of the softmax over the output's last axis (logits), "cosine" is
        1 - cosine similarity (embeddings), "mse" the mean squared difference.
    noise : float, default 0.25
        Standard deviation of the probe noise relative to the sample's RMS, in (0, 10]: small
        enough that the loss stays quadratic, large enough to stand out of float32 rounding.
    seed : int, default 0
        Seed of the probe noise (the result is deterministic for a given seed).
    progress : bool, default False
        Show a progress bar (tqdm) over the tail runs.

    Returns
    -------
    numpy.ndarray of float64, shape (G,)
        w_g = mean over samples of 2 ΔL_g / (σ² n_g): the loss's mean curvature per element of
        group g (≥ 0; negative estimates, which only noise produces, are clipped to 0).

    Raises
    ------
    TypeError
        `run` not callable, a loss of the wrong type, or a sample that is not a real array.
    ValueError
        No samples, samples of different group counts, an out-of-range axis or noise, or an
        all-zero sample.
    """
    if not callable(run):
        raise TypeError("run must be a callable mapping a cut tensor to the task output")
    if isinstance(loss, str):
        if loss not in LOSSES:
            raise ValueError(f"loss must be one of {sorted(LOSSES)} or a callable, got {loss!r}")
        loss_fn = LOSSES[loss]
    elif callable(loss):
        loss_fn = loss
    else:
        raise TypeError(f"loss must be a name or a callable, got {type(loss).__name__}")
    if isinstance(noise, bool) or not isinstance(noise, (int, float, np.floating)):
        raise TypeError(f"noise must be a real number, got {type(noise).__name__}")
    if not 0 < float(noise) <= 10:
        raise ValueError(f"noise must be in (0, 10], got {noise!r}")
    if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)):
        raise TypeError(f"axis must be an integer, got {type(axis).__name__}")
    arrays = [np.asarray(s) for s in samples]
    if not arrays:
        raise ValueError("samples must hold at least one calibration tensor")
    for a in arrays:
        if not np.issubdtype(a.dtype, np.floating):
            raise TypeError(f"samples must be float arrays, got dtype {a.dtype}")
        if not -a.ndim <= axis < a.ndim:
            raise ValueError(f"axis {axis} is out of range for a sample of shape {a.shape}")
    count = arrays[0].shape[axis]
    if any(a.shape[axis] != count for a in arrays):
        raise ValueError("every sample must have the same length along `axis`")
    if count == 0:
        raise ValueError("samples have no groups (length 0 along `axis`)")

    rng = np.random.default_rng(seed)
    total = np.zeros(count, dtype=np.float64)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(arrays) * count, desc="sensitivity", unit="run")
    for a in arrays:
        rms = float(np.sqrt(np.mean(a.astype(np.float64) ** 2)))
        if rms == 0:
            raise ValueError("a calibration sample is all zeros")
        sigma = float(noise) * rms
        ref = np.asarray(run(a))
        moved = np.moveaxis(a, axis, 0)
        size = moved[0].size  # elements per group
        for g in range(count):
            probe = np.array(moved, copy=True)
            probe[g] = probe[g] + (sigma * rng.standard_normal(probe[g].shape)).astype(a.dtype)
            got = np.asarray(run(np.moveaxis(probe, 0, axis)))
            total[g] += 2.0 * loss_fn(ref, got) / (sigma * sigma * size)
            if bar is not None:
                bar.update(1)
    if bar is not None:
        bar.close()
    return np.maximum(total / len(arrays), 0.0)


def gradient_importance(grads: Iterable[Any], *, axis: int = 1) -> np.ndarray:
    """Per-group importance from gradients of the cut tensor: w_g = mean of g_i² over the
    group's elements and over the gradient samples.

    With gradients of log p(y | x) for labels y drawn from the model's own prediction (one
    backward pass per draw), this is the mean diagonal Fisher information of the group, the
    curvature of the KL to the uncut output; with gradients of a loss at its optimum it is the
    empirical Fisher. Same scale as :func:`group_importance` with ``loss="kl"`` up to the
    factor the loss averages over.

    Parameters
    ----------
    grads : iterable of arrays
        Gradients shaped like the cut tensor (NumPy, or anything ``np.asarray`` takes: move
        torch tensors to the CPU first), all with the same length along `axis`.
    axis : int, default 1
        The group axis (as in :func:`group_importance`).

    Returns
    -------
    numpy.ndarray of float64, shape (G,)
    """
    if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)):
        raise TypeError(f"axis must be an integer, got {type(axis).__name__}")
    total, count, groups = None, 0, None
    for grad in grads:
        g = np.asarray(grad)
        if not np.issubdtype(g.dtype, np.floating):
            raise TypeError(f"grads must be float arrays, got dtype {g.dtype}")
        if not -g.ndim <= axis < g.ndim:
            raise ValueError(f"axis {axis} is out of range for a gradient of shape {g.shape}")
        if groups is None:
            groups = g.shape[axis]
        elif g.shape[axis] != groups:
            raise ValueError("every gradient must have the same length along `axis`")
        if not np.all(np.isfinite(g)):
            raise ValueError("gradients must be finite")
        moved = np.moveaxis(g.astype(np.float64), axis, 0).reshape(groups, -1)
        mean_sq = np.mean(moved * moved, axis=1) if moved.shape[1] else np.zeros(groups)
        total = mean_sq if total is None else total + mean_sq
        count += 1
    if total is None:
        raise ValueError("grads must hold at least one gradient")
    return total / count
