"""A plain NumPy reference of the decoder-side estimator (slicer.split.estimator), written from
its docstring's definition with explicit loops: small inputs only.

map layout: x̂[c, i, j] = bias[c] + Σ_{dy, dx, k} W[(dy·window + dx)·C + k, c] · y[k, i+dy−r, j+dx−r]
(r = window // 2, y = 0 outside the map); rows layout: x̂ = y · W + bias per row of the last axis.
Fit: least squares over every position of every pair with a constant regressor; the ridge
adds ``ridge`` × mean(diag of the taps' Gram matrix) to the taps' diagonal, not to the bias's.
"""

from __future__ import annotations

import numpy as np


def design(y: np.ndarray, layout: str, window: int) -> np.ndarray:
    """(positions, taps + 1) regressors, the last column 1; positions in (n, i, j) order for
    a map, row order otherwise."""
    if layout == "rows":
        rows = y.reshape(-1, y.shape[-1]).astype(np.float64)
        return np.concatenate([rows, np.ones((rows.shape[0], 1))], 1)
    c, h, w = y.shape[-3:]
    maps = y.reshape(-1, c, h, w).astype(np.float64)
    r = window // 2
    out = []
    for m in maps:
        for i in range(h):
            for j in range(w):
                row = []
                for dy in range(window):
                    for dx in range(window):
                        ii, jj = i + dy - r, j + dx - r
                        for k in range(c):
                            inside = 0 <= ii < h and 0 <= jj < w
                            row.append(m[k, ii, jj] if inside else 0.0)
                row.append(1.0)
                out.append(row)
    return np.array(out)


def targets(x: np.ndarray, layout: str) -> np.ndarray:
    if layout == "rows":
        return x.reshape(-1, x.shape[-1]).astype(np.float64)
    c, h, w = x.shape[-3:]
    maps = x.reshape(-1, c, h, w).astype(np.float64)
    return np.array(
        [[m[k, i, j] for k in range(c)] for m in maps for i in range(h) for j in range(w)]
    )


def fit(pairs, layout: str, window: int, ridge: float) -> tuple[np.ndarray, np.ndarray]:  # noqa: ANN001
    """(weights (taps, C), bias (C,)) in float64."""
    a = np.concatenate([design(y, layout, window) for _, y in pairs])
    t = np.concatenate([targets(x, layout) for x, _ in pairs])
    gram = a.T @ a
    k = gram.shape[0] - 1
    gram[np.arange(k), np.arange(k)] += ridge * np.trace(gram[:k, :k]) / k
    sol = np.linalg.solve(gram, a.T @ t)
    return sol[:k], sol[k]


def apply(weights: np.ndarray, bias: np.ndarray, y: np.ndarray, layout: str, window: int):  # noqa: ANN201
    """x̂ from y, float64, y's shape."""
    if layout == "rows":
        return y.astype(np.float64) @ weights.astype(np.float64) + bias
    c, h, w = y.shape[-3:]
    maps = y.reshape(-1, c, h, w).astype(np.float64)
    r = window // 2
    out = np.zeros_like(maps)
    for n, m in enumerate(maps):
        for co in range(c):
            for i in range(h):
                for j in range(w):
                    s = float(bias[co])
                    for dy in range(window):
                        for dx in range(window):
                            ii, jj = i + dy - r, j + dx - r
                            if not (0 <= ii < h and 0 <= jj < w):
                                continue
                            for k in range(c):
                                s += weights[(dy * window + dx) * c + k, co] * m[k, ii, jj]
                    out[n, co, i, j] = s
    return out.reshape(y.shape)
