"""classes="auto" (docs/format.md §19.4) and the rate model behind it (python/slicer/_rate.py):
its pieces against direct references (the §11 symbols of tests/reference_dense.py, counts and
squared errors bin by bin, per-K histograms), the K it picks on inputs with a clear structure,
determinism, and parameter errors."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import reference_classes as rc
import reference_dense as rd
import slicer
from slicer import _rate

# ----------------------------------------------------------------------------- references


def ref_counts(sample: np.ndarray, step: float, rho_256: int) -> tuple[np.ndarray, float]:
    """(symbol counts (423,), squared error) of the model at one step, element by element:
    |x| falls in bin b when max(base_b − ρ, 0)·Δ ≤ |x| < max(base_{b+1} − ρ, 0)·Δ; bin 0
    decodes to 0, bins 1..7 to their mean, wider bins cost Δ²/12 each."""
    edges = np.maximum(_rate._BIN_BASE - rho_256 / 256.0, 0.0) * step
    edges[0] = 0.0
    counts = np.zeros(423)
    sse = 0.0
    for sign in (1, -1):
        mags = sign * sample[sign * sample > 0]
        b = np.searchsorted(edges, mags, side="right") - 1
        for k in range(212):
            inside = mags[b == k]
            if k == 0:
                counts[0] += inside.size
                sse += float(np.sum(inside**2))
                continue
            counts[2 * k - 1 if sign > 0 else 2 * k] += inside.size
            if k < 8:
                sse += float(np.sum((inside - inside.mean()) ** 2)) if inside.size else 0.0
            else:
                sse += inside.size * step * step / 12.0
    counts[0] += np.count_nonzero(sample == 0)
    return counts, sse


def ref_class_saving(model, work, shape, axis, k, step, rho_256, kind="rank", bounds=None):  # noqa: ANN001, ANN201
    """Bytes saved by K class tables on `axis` against one table (the estimate's formula, one
    histogram per K, positions ranked over the whole input by Σ|x|; kind "ranges": class
    a·K div L of the index, no map bytes, docs/format.md §18.3; kind "bounds": classes
    #{j : b_j <= a} of the given boundaries, their varint bytes, §18.4)."""
    m = np.floor(np.abs(model.sample) / step + rho_256 / 256.0)
    sym = rd.symbols_of(m, model.sample < 0)[0]
    length = rd.class_length(shape, axis)
    pos = rd.position_of(shape, axis)
    scores = np.bincount(pos, weights=np.abs(work.reshape(-1)).astype(np.float64),
                         minlength=length)  # fmt: skip
    rank = np.empty(length, dtype=np.int64)
    rank[np.lexsort((np.arange(length), scores))] = np.arange(length)
    if kind == "ranges":
        rank = np.arange(length)
    cls = rank[pos[model.sample_indices()]] * k // length
    if kind == "bounds":
        cls = np.asarray(rc.bounds_classes(bounds, length))[pos[model.sample_indices()]]

    def cost(labels: np.ndarray, groups: int) -> float:
        total = 0.0
        for c in range(groups):
            h = np.bincount(sym[labels == c], minlength=423).astype(np.float64)
            n = h.sum()
            if n:
                p = h[h > 0] / n
                total -= float(np.sum(h[h > 0] * np.log2(p))) * model.scale / 8.0 * 1.002
            total += float(_rate._table_bytes(h[None, :])[0])
        return total

    base = cost(np.zeros(sym.size, dtype=np.int64), 1)
    if kind == "bounds":
        return base - (cost(cls, k) + 2 + len(rc.pack_bounds(bounds)))
    return base - (cost(cls, k) + 2 + (0 if kind == "ranges" else (length + 1) // 2))


def spread_rows(rng: np.random.Generator, rows: int, cols: int, levels: int) -> np.ndarray:
    """Token-like rows whose channels fall into `levels` scales (1 = no structure)."""
    scale = np.repeat(np.geomspace(0.02, 50.0, levels), -(-cols // levels))[:cols]
    return (rng.standard_normal((rows, cols)) * rng.permutation(scale)).astype(np.float32)


# ----------------------------------------------------------------------------- pieces


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.one_of(st.floats(-1e6, 1e6, allow_nan=False), st.sampled_from([0.0, -0.0, 3e4])),
        min_size=1, max_size=300,
    ),
    st.floats(1e-3, 1e2),
    st.integers(0, 255),
)  # fmt: skip
def test_sample_symbols_are_the_reference_symbols(values, step, rho):
    sample = np.asarray(values, dtype=np.float64)
    step = max(step, float(np.max(np.abs(sample))) / 2.0**50)
    m = np.floor(np.abs(sample) / step + rho / 256.0)
    want = rd.symbols_of(m, sample < 0)[0]
    np.testing.assert_array_equal(_rate._sample_symbols(sample, step, rho), want)


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16])
@pytest.mark.parametrize("n", [1, 7, 999, 70_001])
def test_model_counts_and_error_match_bin_by_bin(dtype, n):
    rng = np.random.default_rng(n)
    x = (rng.standard_cauchy(n) * 0.5).astype(dtype)
    x[rng.random(n) < 0.2] = 0
    model = _rate.DenseModel(x, np.dtype(dtype).itemsize, 20)
    steps = np.array([1e-3, 0.05, 0.7, 40.0, float(np.max(np.abs(model.sample))) * 3 + 1])
    for rho in (0, 72, 128, 255):
        sym, sse = model.parts[0].counts(steps, np.full(steps.size, rho / 256.0))
        assert sym.shape[1] <= 423  # the columns past the last symbol in use are left out
        for i, step in enumerate(steps):
            want, want_sse = ref_counts(model.sample, float(step), rho)
            np.testing.assert_array_equal(sym[i], want[: sym.shape[1]])
            assert not want[sym.shape[1] :].any()
            assert sse[i] == pytest.approx(want_sse, rel=1e-9, abs=1e-12)


def test_coded_bits_ignore_the_empty_symbols_left_out():
    """The model's cost of counts cut after the last symbol in use equals the cost of the full
    423-symbol counts (bits to rounding, table bytes exactly)."""
    rng = np.random.default_rng(8)
    for width in (1, 15, 93, 422, 423):
        sym = np.zeros((6, 423))
        sym[:, :width] = rng.integers(0, 50, (6, width)) * (rng.random((6, width)) < 0.7)
        sym[0] = 0
        narrow, narrow_table = _rate._coded_bits(sym[:, :width])
        full, full_table = _rate._coded_bits(sym)
        np.testing.assert_allclose(narrow, full, rtol=1e-13)
        np.testing.assert_array_equal(narrow_table, full_table)


def test_model_sample_keeps_the_input_values():
    """The sample is sorted in the input's float type, then widened: the same binary64
    values as widening first (float32, float16 and a sample of the whole of a small input)."""
    rng = np.random.default_rng(3)
    for dtype, n in ((np.float32, 1 << 17), (np.float16, 5000), (np.float64, 40_000)):
        x = rng.standard_normal(n).astype(dtype)
        model = _rate.DenseModel(x, np.dtype(dtype).itemsize, 20)
        flat = x.astype(np.float32 if dtype == np.float16 else dtype)
        np.testing.assert_array_equal(model.sample, flat[model.sample_indices()].astype(np.float64))
        pos, neg = model.parts[0].sides
        s = model.sample
        np.testing.assert_array_equal(pos[0], np.sort(s[s > 0]))
        np.testing.assert_array_equal(neg[0], np.sort(-s[s < 0]))
        assert model.energy == pytest.approx(float(np.sum(flat.astype(np.float64) ** 2)))


@pytest.mark.parametrize(
    "shape,axis", [((300, 40), 0), ((64, 33), 0), ((2, 24, 6, 7), 1), ((5, 20, 9), 0),
                   ((5, 20, 9), 1), ((3000, 48), 0)],
)  # fmt: skip
def test_class_saving_matches_one_histogram_per_k(shape, axis):
    rng = np.random.default_rng(sum(shape))
    length = rd.class_length(shape, axis)
    scale = np.geomspace(0.05, 20.0, length)
    view = (1, length) + (1,) * (len(shape) - 2) if axis == 1 else (length,)
    x = (rng.standard_normal(shape) * rng.permutation(scale).reshape(view)).astype(np.float32)
    model = _rate.DenseModel(x.reshape(-1), 4, _rate._dense_header_bytes(shape))
    ks = tuple(k for k in (2, 3, 4, 8, 16) if k <= length)
    kinds = ("rank", "ranges")
    for step in (0.01, 0.3):
        for kind in kinds:
            for k in ks:
                got = _rate._class_saving(model, x, shape, (axis,), (k,), step, 128, (kind,))
                want = ref_class_saving(model, x, shape, axis, k, step, 128, kind)
                if want > 0:
                    assert got[:3] == (k, axis, kind)
                    assert got[3] == pytest.approx(want, rel=1e-9)
                else:
                    assert got == (1, axis, kind, 0.0, None)
        # all candidates and both kinds at once: the best of the single answers
        best = max((ref_class_saving(model, x, shape, axis, k, step, 128, kind), kind, k)
                   for kind in kinds for k in ks)  # fmt: skip
        got = _rate._class_saving(model, x, shape, (axis,), (1,) + ks, step, 128, kinds)
        if best[0] > 0:
            assert got[3] == pytest.approx(best[0], rel=1e-9)
            assert ref_class_saving(model, x, shape, axis, got[0], step, 128, got[2]) == (
                pytest.approx(best[0], rel=1e-9))  # fmt: skip
        else:
            assert got[0] == 1


@pytest.mark.parametrize(
    "length,rows,k", [(9, 200, 3), (12, 80, 4), (130, 30, 2), (70, 40, 3), (300, 20, 2)]
)
def test_bounds_estimate_is_the_best_cut_on_its_grid(length, rows, k):
    """§18.4 boundaries of classes="auto": the DP's cut equals the exhaustive best over every
    cut on the grid of multiples of ceil(L/64) (ties to the earlier boundary), and its saving
    equals the reference formula at those boundaries."""
    import itertools

    rng = np.random.default_rng(length * 7 + k)
    scale = np.geomspace(0.05, 20.0, length)[rng.permutation(length)]
    x = (rng.standard_normal((rows, length)) * scale).astype(np.float32)
    shape = x.shape
    model = _rate.DenseModel(x.reshape(-1), 4, _rate._dense_header_bytes(shape))
    g = -(-length // 64)
    grid = list(range(g, length, g))
    step = 0.05
    got = _rate._class_saving(model, x, shape, (0,), (k,), step, 128, ("bounds",))
    best = None
    for cut in itertools.combinations(grid, k - 1):  # lexicographic: ties keep the earlier
        saving = ref_class_saving(model, x, shape, 0, k, step, 128, "bounds", list(cut))
        if best is None or saving > best[0] + 1e-9 * abs(best[0]):
            best = (saving, list(cut))
    if best[0] > 0:
        assert got[:3] == (k, 0, "bounds")
        assert got[3] == pytest.approx(best[0], rel=1e-9)
        assert got[3] == pytest.approx(
            ref_class_saving(model, x, shape, 0, k, step, 128, "bounds", got[4]), rel=1e-9
        )
    else:
        assert got[0] == 1


def test_position_scores_match_a_bincount():
    rng = np.random.default_rng(5)
    for shape, axis in (((7, 11), 0), ((3, 5, 4, 2), 1), ((2, 6, 3), 0)):
        x = rng.standard_normal(shape).astype(np.float32)
        length = rd.class_length(shape, axis)
        want = np.bincount(rd.position_of(shape, axis), weights=np.abs(x.reshape(-1)),
                           minlength=length)  # fmt: skip
        np.testing.assert_allclose(_rate._position_scores(x, shape, axis), want, rtol=1e-12)


# ----------------------------------------------------------------------------- the K chosen


@pytest.mark.parametrize("levels,expect", [(1, {1}), (2, {2, 4, 8, 16}), (16, {16})])
def test_auto_picks_k_by_structure(levels, expect):
    """No structure: one table. Channels on two scales: classes. Sixteen scales: sixteen."""
    x = spread_rows(np.random.default_rng(levels), 1024, 96, levels)
    for kwargs in ({"max_bytes": x.size // 4}, {"rel_error": 0.05}):
        s = slicer.encode(x, mode="auto", **kwargs)
        assert slicer.inspect(s).classes in expect, (levels, kwargs)
    s = slicer.encode(x, mode="dense", step=0.05, classes="auto")
    assert slicer.inspect(s).classes in expect


def test_auto_picks_the_axis_with_structure():
    """A (N, C, H, W) map whose scale varies along C only: classes along axis 1; varying along
    W only: the last axis."""
    rng = np.random.default_rng(8)
    scale = np.geomspace(0.02, 50.0, 32)
    on_c = (rng.standard_normal((4, 32, 8, 32)) * scale[None, :, None, None]).astype(np.float32)
    on_w = (rng.standard_normal((4, 32, 8, 32)) * scale[None, None, None, :]).astype(np.float32)
    for x, axis in ((on_c, "1"), (on_w, "last")):
        info = slicer.inspect(slicer.encode(x, mode="auto", max_bytes=x.size // 4))
        assert info.classes >= 2 and info.class_axis == axis


def test_auto_classes_deterministic():
    """The same input gives the same stream, whatever ran before (cached sample positions,
    other shapes) and whether it is a copy."""
    rng = np.random.default_rng(9)
    x = spread_rows(rng, 700, 80, 8)
    first = [slicer.encode(x, mode="auto", max_bytes=x.size // 3),
             slicer.encode(x, mode="auto", rel_error=0.03)]  # fmt: skip
    slicer.encode(spread_rows(rng, 90, 33, 4), mode="auto", max_bytes=900)
    again = [slicer.encode(x.copy(), mode="auto", max_bytes=x.size // 3),
             slicer.encode(np.asfortranarray(x), mode="auto", rel_error=0.03)]  # fmt: skip
    assert first == again


def test_auto_classes_parameter_errors():
    x = spread_rows(np.random.default_rng(2), 40, 12, 4)
    for bad in (0, 17, -2):
        with pytest.raises(ValueError, match="classes"):
            slicer.encode(x, mode="auto", max_bytes=400, classes=bad)
    for bad in ("many", 2.0, True, [4]):
        with pytest.raises((TypeError, ValueError), match="classes"):
            slicer.encode(x, mode="auto", rel_error=0.1, classes=bad)
    with pytest.raises(ValueError, match="classes"):
        slicer.encode(x, mode="auto", max_bytes=400, classes=13)  # 12 positions
    # a step too small for the data: the encoder's error, not one of the estimate's arrays
    for kwargs in ({"step": 1e-30}, {"step": 1e-30, "classes": "auto"}):
        with pytest.raises(ValueError, match="step"):
            slicer.encode(x * 1e3, mode="dense", **kwargs)
