"""Fidelity of a split + compressed model against the uncut model (no labels needed)."""

from __future__ import annotations

import numpy as np


def looks_like_logits(name: str, ref: np.ndarray) -> bool:
    """Class scores: a float output with a class axis last that is not unit-normalized."""
    if ref.dtype.kind != "f" or ref.ndim < 1 or ref.shape[-1] < 2:
        return False
    lowered = name.lower()
    if any(key in lowered for key in ("logit", "score")):
        return True
    if ref.shape[-1] < 10:
        return False
    norms = np.linalg.norm(ref.reshape(-1, ref.shape[-1]).astype(np.float64), axis=-1)
    return not np.allclose(norms, 1.0, atol=1e-3)


def log_softmax(x: np.ndarray) -> np.ndarray:
    """Log-probabilities along the last axis, in float64."""
    x = x.astype(np.float64)
    x = x - x.max(axis=-1, keepdims=True)
    return x - np.log(np.exp(x).sum(axis=-1, keepdims=True))


def compare(name: str, ref: np.ndarray, got: np.ndarray) -> dict[str, float]:
    """Metrics of ``got`` against ``ref`` (same shape).

    Always: ``max_abs_diff``, ``rel_l2`` (‖got − ref‖ / ‖ref‖) and ``cosine`` (flattened).
    For logits, also ``top1_agreement`` (fraction of rows whose argmax matches) and ``kl``
    (mean KL(ref ‖ got) over rows, nats).
    """
    if ref.shape != got.shape:
        raise ValueError(f"output {name!r}: shape {got.shape} differs from {ref.shape}")
    r = ref.astype(np.float64).ravel()
    g = got.astype(np.float64).ravel()
    diff = g - r
    ref_norm = float(np.linalg.norm(r))
    out = {
        "max_abs_diff": float(np.max(np.abs(diff))) if diff.size else 0.0,
        "rel_l2": float(np.linalg.norm(diff) / ref_norm)
        if ref_norm > 0
        else float(np.linalg.norm(diff)),
        "cosine": cosine(r, g),
    }
    if looks_like_logits(name, ref):
        rows_r = ref.reshape(-1, ref.shape[-1])
        rows_g = got.reshape(-1, got.shape[-1])
        out["top1_agreement"] = float(np.mean(rows_r.argmax(-1) == rows_g.argmax(-1)))
        lp = log_softmax(rows_r)
        lq = log_softmax(rows_g)
        out["kl"] = float(np.mean(np.sum(np.exp(lp) * (lp - lq), axis=-1)))
    return out


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    a = np.asarray(a, dtype=np.float64).ravel()
    b = np.asarray(b, dtype=np.float64).ravel()
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    if na == 0 or nb == 0:
        return 1.0 if na == nb else 0.0
    return float(np.dot(a, b) / (na * nb))


def row_cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosine similarity of each row (last axis) of two equally shaped arrays."""
    a = a.reshape(-1, a.shape[-1]).astype(np.float64)
    b = b.reshape(-1, b.shape[-1]).astype(np.float64)
    num = np.sum(a * b, axis=-1)
    den = np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1)
    return np.where(den > 0, num / np.where(den > 0, den, 1), 1.0)


def summarize(metrics: dict[str, dict[str, float]]) -> dict[str, float]:
    """One dict over all outputs: worst case of each metric."""
    if not metrics:
        return {}
    out: dict[str, float] = {}
    for per in metrics.values():
        for key, value in per.items():
            worse_is_low = key in ("cosine", "top1_agreement")
            if key not in out:
                out[key] = value
            else:
                out[key] = min(out[key], value) if worse_is_low else max(out[key], value)
    return out
