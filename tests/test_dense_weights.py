"""Task-aware steps of the dense mode: ``encode(..., weights=w)`` against a NumPy reference of the
exponent rule (docs: `slicer.encode`, `_DENSE_DOC`), and the sensitivity estimator
(slicer.split.sensitivity) against closed forms on linear tails.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import reference_dense as rd
import slicer
from slicer.split.sensitivity import gradient_importance, group_importance


def reference_table(x: np.ndarray, layout: int, w: np.ndarray) -> bytes:
    """The weights rule written out from its documentation, one group at a time."""
    x = x.astype(np.float64)
    if layout == 1:
        groups = [x.reshape(-1, x.shape[-1])[g] for g in range(x.size // x.shape[-1])]
    else:
        groups = [np.take(x, g, axis=1) for g in range(x.shape[1])]
    live = [bool(np.any(gv != 0)) for gv in groups]
    positive = [w[g] for g in range(len(groups)) if live[g] and w[g] > 0]
    ref = float(np.median(positive)) if positive else 1.0
    out = bytearray()
    for g in range(len(groups)):
        if not live[g]:
            out.append(0x80)
            continue
        e = 63 if w[g] == 0 else int(np.clip(np.rint(-4 * np.log2(w[g] / ref)), -64, 63))
        out.append(e & 0xFF)
    return bytes(out)


@pytest.mark.parametrize(
    ("shape", "groups", "layout"),
    [((7, 5), "channels", 2), ((3, 13, 4, 2), "channels", 2), ((9, 33), "rows", 1),
     ((2, 3, 7), "rows", 1), ((1, 1), "channels", 2)],
)  # fmt: skip
def test_weights_bytes_match_reference(shape: tuple[int, ...], groups: str, layout: int) -> None:
    rng = np.random.default_rng(sum(shape))
    x = (rng.standard_normal(shape) * 3).astype(np.float32)
    count = x.shape[1] if layout == 2 else x.size // x.shape[-1]
    w = np.exp(rng.uniform(-6, 6, count))
    if count > 2:
        w[1] = 0.0  # the largest step
        if layout == 2:  # an all-zero group stays a zero group (0x80)
            np.moveaxis(x, 1, 0)[2] = 0
        else:
            x.reshape(-1, x.shape[-1])[2] = 0
    table = reference_table(x, layout, w)
    got = slicer.encode(x, mode="dense", step=0.05, groups=groups, weights=w)
    want = rd.encode(x, rd.default_params(step=0.05, layout=layout, group_table=list(table)))
    assert got == want
    assert np.array_equal(slicer.decode(got), rd.decode(want)[0])


@settings(max_examples=40, deadline=None)
@given(
    rows=st.integers(1, 6),
    cols=st.integers(1, 40),
    log_w=st.lists(st.floats(-30, 30), min_size=40, max_size=40),
    zeros=st.integers(0, 2**40 - 1),
)
def test_weights_rule_property(rows: int, cols: int, log_w: list[float], zeros: int) -> None:
    x = np.random.default_rng(rows * 100 + cols).standard_normal((rows, cols)).astype(np.float32)
    w = np.exp2(np.array(log_w[:cols]))
    w[[bool(zeros >> i & 1) for i in range(cols)]] = 0.0
    table = reference_table(x, 2, w)
    got = slicer.encode(x, mode="dense", step=0.25, groups="channels", weights=w)
    assert got == rd.encode(x, rd.default_params(step=0.25, layout=2, group_table=list(table)))


def test_weights_scale_free_and_median_group_keeps_step() -> None:
    x = np.random.default_rng(1).standard_normal((50, 9)).astype(np.float32)
    w = np.array([1, 2, 4, 8, 16, 32, 64, 128, 256.0])
    a = slicer.encode(x, mode="dense", step=0.1, groups="channels", weights=w)
    b = slicer.encode(x, mode="dense", step=0.1, groups="channels", weights=w * 1e-7)
    assert a == b  # only ratios matter
    table = reference_table(x, 2, w)
    assert table[4] == 0  # the median weight's group gets the stream step
    assert np.frombuffer(table, np.int8).tolist() == [16, 12, 8, 4, 0, -4, -8, -12, -16]


def test_weights_lower_the_weighted_error_at_equal_budget() -> None:
    """Δ_g ∝ w_g^(-1/2) beats one step on Σ w_g MSE_g at the same byte budget (fixed seed)."""
    rng = np.random.default_rng(7)
    x = rng.standard_normal((4096, 16)).astype(np.float32)
    w = np.geomspace(1, 1000, 16)
    budget = int(2.0 * x.size / 8)

    def weighted_mse(**kw: object) -> tuple[float, int]:
        s = slicer.encode(x, mode="auto", max_bytes=budget, **kw)
        err = ((x - slicer.decode(s)).astype(np.float64) ** 2).mean(axis=0)
        return float(w @ err), len(s)

    plain, n_plain = weighted_mse(groups="tensor")
    weighted, n_weighted = weighted_mse(groups="channels", weights=w)
    assert n_plain <= budget and n_weighted <= budget
    assert weighted < 0.75 * plain


def test_weights_work_with_rel_error_and_cuda_free_paths() -> None:
    x = np.random.default_rng(2).standard_normal((64, 8)).astype(np.float32)
    s = slicer.encode(x, mode="auto", rel_error=0.05, groups="rows", weights=np.ones(64))
    y = slicer.decode(s)
    assert np.linalg.norm(x - y) <= 0.05 * np.linalg.norm(x)


@pytest.mark.parametrize(
    ("kw", "exc", "match"),
    [
        ({"weights": np.ones(3)}, ValueError, "one value per group"),
        ({"weights": np.ones((8, 1))}, ValueError, "one value per group"),
        ({"weights": -np.ones(8)}, ValueError, "non-negative"),
        ({"weights": np.full(8, np.nan)}, ValueError, "finite"),
        ({"weights": np.full(8, np.inf)}, ValueError, "finite"),
        ({"weights": np.ones(8, bool)}, TypeError, "weights"),
        ({"weights": "abc"}, TypeError, "weights"),
        ({"weights": [1j] * 8}, TypeError, "weights"),
        ({"weights": np.ones(8), "groups": "tensor"}, ValueError, "groups"),
    ],
)
def test_weights_validation(kw: dict, exc: type, match: str) -> None:
    x = np.ones((4, 8), np.float32)
    kw = {"groups": "channels", **kw}
    with pytest.raises(exc, match=match):
        slicer.encode(x, mode="dense", step=0.1, **kw)


def test_weights_rejected_in_topk_mode() -> None:
    with pytest.raises(ValueError, match="weights"):
        slicer.encode(np.ones((4, 8), np.float32), weights=np.ones(8))


# ----------------------------------------------------------------------------- sensitivity


def test_importance_of_a_linear_tail_with_mse_loss() -> None:
    """y = A x, loss = mean((y - y0)^2): w_g = 2/M · mean_{i in g} ||A[:, i]||^2 exactly in
    expectation; 300 outputs and 4 samples keep the probes' sampling error near 4 %."""
    rng = np.random.default_rng(3)
    n_groups, size, m = 4, 500, 300
    a = rng.standard_normal((m, n_groups * size)) * np.repeat([0.1, 1, 3, 10], size)
    samples = [rng.standard_normal((1, n_groups, size)).astype(np.float64) for _ in range(4)]

    def run(x: np.ndarray) -> np.ndarray:
        return a @ x.reshape(-1)

    w = group_importance(run, samples, axis=1, loss="mse", noise=0.1, seed=5)
    col = (a * a).sum(axis=0).reshape(n_groups, size).mean(axis=1)
    np.testing.assert_allclose(w, 2 / m * col, rtol=0.15)


def test_importance_kl_matches_the_fisher_diagonal() -> None:
    """Logits z = A x: KL(p0 || p) ≈ ½ eᵀ Aᵀ (diag p - p pᵀ) A e, so w_g is the mean diagonal of
    that Fisher matrix over the group (hidden channels on the last axis, tokens averaged)."""
    rng = np.random.default_rng(4)
    t, c, k = 6, 10, 7
    a = rng.standard_normal((c, k)) * np.linspace(0.1, 2, c)[:, None]
    x = rng.standard_normal((t, c))

    def run(v: np.ndarray) -> np.ndarray:
        return v @ a  # [t, k] logits, KL averaged over the t rows

    probes = [x] * 400  # repeat the sample: the Monte-Carlo noise averages out
    w = group_importance(run, probes, axis=-1, loss="kl", noise=0.02, seed=1)
    fisher = np.zeros(c)
    for row in x @ a:
        p = np.exp(row - row.max())
        p /= p.sum()
        f = a @ (np.diag(p) - np.outer(p, p)) @ a.T
        fisher += np.diag(f)
    fisher /= t
    # the loss is a mean over the t rows, so its curvature per element is the row's Fisher / t
    np.testing.assert_allclose(w, fisher / t, rtol=0.2)
    assert np.argmax(w) == np.argmax(fisher)


def test_importance_is_deterministic_and_validates() -> None:
    x = np.random.default_rng(0).standard_normal((2, 3, 4)).astype(np.float32)

    def run(v: np.ndarray) -> np.ndarray:
        return v.sum(axis=(0, 2))

    a = group_importance(run, [x], axis=1, seed=3)
    b = group_importance(run, [x], axis=1, seed=3)
    assert a.shape == (3,) and np.array_equal(a, b) and np.all(a >= 0)
    with pytest.raises(TypeError, match="run"):
        group_importance(None, [x])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="at least one"):
        group_importance(run, [])
    with pytest.raises(ValueError, match="loss"):
        group_importance(run, [x], loss="l1")
    with pytest.raises(ValueError, match="noise"):
        group_importance(run, [x], noise=0)
    with pytest.raises(ValueError, match="axis"):
        group_importance(run, [x], axis=3)
    with pytest.raises(ValueError, match="same length"):
        group_importance(run, [x, x[:, :2]], axis=1)
    with pytest.raises(TypeError, match="float"):
        group_importance(run, [x.astype(np.int32)])
    with pytest.raises(ValueError, match="all zeros"):
        group_importance(run, [np.zeros_like(x)])


def test_gradient_importance_is_the_fisher_diagonal() -> None:
    """Logits z = x A, y ~ softmax(z): the gradient of log p(y) is A (onehot(y) - p), whose mean
    square per channel is the Fisher diagonal diag(A (diag p - p pᵀ) Aᵀ)."""
    rng = np.random.default_rng(6)
    c, k = 5, 4
    a = rng.standard_normal((c, k)) * np.array([0.1, 0.2, 0.3, 0.5, 0.8])[:, None]
    x = rng.standard_normal(c)
    z = x @ a
    p = np.exp(z - z.max())
    p /= p.sum()
    ys = rng.choice(k, size=4000, p=p)
    grads = [(a @ (np.eye(k)[y] - p))[None, :] for y in ys]  # shape [1, C]: channels on axis -1
    w = gradient_importance(grads, axis=-1)
    fisher = np.diag(a @ (np.diag(p) - np.outer(p, p)) @ a.T)
    np.testing.assert_allclose(w, fisher, rtol=0.1)


def test_gradient_importance_groups_and_validation() -> None:
    g = np.arange(24, dtype=np.float64).reshape(2, 3, 4)
    w = gradient_importance([g, -g], axis=1)
    want = [np.mean(g[:, i, :] ** 2) for i in range(3)]
    np.testing.assert_allclose(w, want)
    with pytest.raises(ValueError, match="at least one"):
        gradient_importance([])
    with pytest.raises(ValueError, match="same length"):
        gradient_importance([g, g[:, :2]], axis=1)
    with pytest.raises(ValueError, match="finite"):
        gradient_importance([g * np.nan])
    with pytest.raises(TypeError, match="float"):
        gradient_importance([g.astype(np.int64)])
    with pytest.raises(ValueError, match="axis"):
        gradient_importance([g], axis=5)
