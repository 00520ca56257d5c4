"""The C++ rate model (cpp/src/dense/rate_model.cpp, slicer._core.RateModel / rate_*) against
the NumPy model it replaces in python/slicer/_rate.py (DenseModel and the class-estimate
functions, themselves checked bin by bin in test_dense_classes_auto.py): the same sample, counts,
predictions, step searches, symbols, class histograms, §18.4 boundaries and, end to end, the
same streams; determinism; parameter errors of the bindings."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import slicer
from slicer import _core, _rate

DTYPES = [np.float32, np.float16, ml_dtypes.bfloat16, np.float64]


def heavy(rng: np.random.Generator, n: int, dtype) -> np.ndarray:  # noqa: ANN001
    """Heavy-tailed values with zeros and a few LLM-like outliers, in `dtype`."""
    x = rng.standard_t(3, n) * rng.choice([0.01, 1.0, 30.0], n, p=[0.3, 0.65, 0.05])
    x[rng.random(n) < 0.15] = 0.0
    if n > 10:
        x[rng.integers(0, n, 3)] = 2e4 if dtype != np.float16 else 2e3
    return x.astype(dtype)


def both(x: np.ndarray, header: int = 20) -> tuple[_rate.DenseModel, _rate.KernelModel]:
    flat = x.reshape(-1)
    return (_rate.DenseModel(flat, x.dtype.itemsize, header),
            _rate.KernelModel(flat, x.dtype.itemsize, header))  # fmt: skip


# ----------------------------------------------------------------------------- the model


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", [1, 7, 4096, 32768, 32769, 70_001])
def test_sample_range_energy_and_predictions_match(dtype, n):
    rng = np.random.default_rng(n)
    ref, fast = both(heavy(rng, n, dtype))
    np.testing.assert_array_equal(fast.sample, ref.sample)  # the same elements, exactly
    np.testing.assert_array_equal(fast.sample_indices(), ref.sample_indices())
    assert fast.max_abs == ref.max_abs and fast.scale == ref.scale
    assert fast.energy == pytest.approx(ref.energy, rel=1e-12)
    steps = np.geomspace(ref.min_step(), 4 * ref.max_abs + 1e-30, 37)
    for rho in (0, 72, 96, 128, 255):
        want = ref.predict_many(steps, rho)
        got = fast.predict_many(steps, rho)
        np.testing.assert_allclose(got[0], want[0], rtol=1e-12)
        np.testing.assert_allclose(got[1], want[1], rtol=1e-9, atol=1e-300)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", [1, 999, 32768, 70_002, 131_072])
def test_one_pass_reads_what_the_separate_passes_read(dtype, n):
    """Max, energy and sample read in the model's one pass equal the separate kernels' (bit for
    bit) and the NumPy model's."""
    x = heavy(np.random.default_rng(n), n, dtype)
    fused = _rate.KernelModel(x, x.dtype.itemsize, 20, energy=True)
    plain = _rate.KernelModel(x, x.dtype.itemsize, 20)
    raw = x.view(np.uint8)
    code = _rate._KERNEL_CODES[x.dtype]
    ref = _rate.DenseModel(x, x.dtype.itemsize, 20)
    np.testing.assert_array_equal(fused.sample, ref.sample)
    assert fused.max_abs == plain.max_abs == _core.rate_stats(raw, code, False)[0] == ref.max_abs
    assert fused.energy == plain.energy == _core.rate_stats(raw, code, True)[1]


def _sorted_sides_reference(sample: np.ndarray) -> tuple:
    """What the model's sort must give, from NumPy's sort: per side (positive values, negative
    values' magnitudes) the ascending magnitudes and their running sums of m and m² (NumPy's
    accumulate adds in order), the count of zeros (+0 and −0), and the (E, count) runs of the
    binary exponents E = floor(log2 m) along the positive side, then the negative side
    (binary64 subnormals: −1100)."""
    v = np.asarray(sample, dtype=np.float64)
    sides = []
    runs: list[tuple[int, float]] = []
    for mags in (np.sort(v[v > 0]), np.sort(-v[v < 0])):
        zero = np.zeros(1)
        with np.errstate(over="ignore"):  # float64's extremes: inf, as in the model
            sides.append((mags, np.concatenate([zero, np.cumsum(mags)]),
                          np.concatenate([zero, np.cumsum(mags * mags)])))  # fmt: skip
        e = np.where(mags >= np.finfo(np.float64).tiny, np.frexp(mags)[1] - 1, -1100)
        side_runs: list[tuple[int, float]] = []  # each side starts its own runs
        for value in e.tolist():
            if side_runs and side_runs[-1][0] == value:
                side_runs[-1] = (value, side_runs[-1][1] + 1.0)
            else:
                side_runs.append((value, 1.0))
        runs += side_runs
    return sides[0], sides[1], float(v.size - (v > 0).sum() - (v < 0).sum()), runs


def _check_sorted_sides(x: np.ndarray) -> None:
    model = _rate.KernelModel(x.reshape(-1), x.dtype.itemsize, 20)
    got = model.core.sorted_sides()
    want = _sorted_sides_reference(model.sample)
    for side in (0, 1):
        for g, w in zip(got[side], want[side], strict=True):
            np.testing.assert_array_equal(g, w)  # bit for bit: -0.0 and +0.0 would differ too
            assert np.signbit(g).sum() == 0
    assert got[2] == want[2]
    assert [tuple(r) for r in got[3]] == want[3]


def _awkward(n: int, dtype, rng: np.random.Generator) -> np.ndarray:  # noqa: ANN001
    """±0, subnormals, the extremes of the type, many ties, a few outliers."""
    info = np.finfo(dtype)
    tiny, normal, top = (
        float(v) for v in (info.smallest_subnormal, info.smallest_normal, info.max)
    )
    special = np.array([0.0, -0.0, tiny, -tiny, normal, top, -top, 1.0, -1.0])
    ties = rng.choice(np.array([0.5, -0.5, 3.0, -3.0, 0.0, -0.0]), n)
    spread = rng.standard_normal(n) * 10.0 ** rng.integers(-3, 4, n)
    pick = rng.integers(0, 3, n)
    x = np.where(pick == 0, ties, np.where(pick == 1, spread, rng.choice(special, n)))
    return x.astype(dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", [0, 1, 2, 3, 255, 256, 257, 4097, 32768, 40_001])
def test_sorted_sample_is_numpys_sort(dtype, n):
    """The model's sort of the sample (one radix sort of both signs' binary32 patterns for
    float32 / float16 / bfloat16, the 64-bit sort per side for float64) against np.sort on
    awkward inputs: ±0, subnormals, the type's extremes, ties, n = 0 / 1 / odd / around the
    small-input threshold / beyond the 32,768-element sample."""
    _check_sorted_sides(_awkward(n, dtype, np.random.default_rng(n + 7)))


def test_sorted_sample_of_signed_zeros_and_float64_only_values():
    """All zeros of both signs; float64 values past the binary32 range or between its values
    (the 64-bit path), with binary64 subnormals; one such value among binary32 ones."""
    _check_sorted_sides(np.array([-0.0, 0.0, -0.0] * 300, np.float32))
    rng = np.random.default_rng(5)
    wide = rng.standard_normal(3001) * 1e-300
    wide[::5] = 5e-324
    wide[1::9] = -1e39
    _check_sorted_sides(wide)
    narrow = rng.standard_normal(3001).astype(np.float32).astype(np.float64)
    narrow[1234] = 1.0 + 2.0**-40  # not a binary32 value: the whole sample takes the 64-bit path
    _check_sorted_sides(narrow)


@settings(max_examples=60, deadline=None)
@given(
    hnp.arrays(np.float32, st.integers(0, 3000),
               elements=st.floats(width=32, allow_nan=False, allow_infinity=False,
                                  allow_subnormal=True)),
)  # fmt: skip
def test_sorted_sample_is_numpys_sort_on_random_floats(x):
    _check_sorted_sides(x)


def test_float64_beyond_the_float_range():
    """float64 magnitudes past the float32 range (the sort's 32-bit path must not take them):
    the same predictions as the NumPy model."""
    rng = np.random.default_rng(64)
    x = rng.standard_normal(5000)
    x[::97] = [3.5e38, -1e150, 1e40, -3.4028234663852886e38] * 13
    tiny = rng.standard_normal(5000) * 1e-300  # with subnormals, in a narrow key range
    tiny[::7] = 5e-324
    tiny[1::7] = -1e-310
    for values in (x, tiny):
        ref, fast = both(values.astype(np.float64))
        steps = np.geomspace(ref.max_abs / 2.0**50, 4 * ref.max_abs, 11)
        for rho in (72, 128):
            want = ref.predict_many(steps, rho)
            got = fast.predict_many(steps, rho)
            np.testing.assert_allclose(got[0], want[0], rtol=1e-12)
            np.testing.assert_allclose(got[1], want[1], rtol=1e-9, atol=1e-300)


def test_prediction_of_an_empty_and_an_all_zero_input():
    for x in (np.zeros(0, np.float32), np.zeros(50, np.float32)):
        ref, fast = both(x)
        steps = np.array([1e-3, 1.0, 7.5])
        for got, want in zip(fast.predict_many(steps, 128), ref.predict_many(steps, 128),
                             strict=True):  # fmt: skip
            np.testing.assert_array_equal(got, want)


class _Curve:
    """A stand-in model for _boundary: predicted size 2^(c − x) and squared error 2^(2x − c)
    at log2 step x (both monotone), for a hypothesis test of the search itself."""

    def __init__(self, c: float) -> None:
        self.c = c

    def predict_many(self, steps: np.ndarray, rho: object) -> tuple[np.ndarray, np.ndarray]:
        x = np.log2(steps)
        return 2.0 ** (self.c - x), 2.0 ** (2 * x - self.c)


@settings(max_examples=60, deadline=None)
@given(c=st.floats(-30.0, 30.0), root=st.floats(-25.0, 25.0), large_ok=st.booleans())
def test_boundary_bisection_ends_within_tolerance_on_the_ok_side(c, root, large_ok):
    """The grid search with a bisection per round, on a monotone predicate with a known
    boundary `root` in [-28, 28]: the answer holds the predicate and lies within
    _LOG2_TOLERANCE of the boundary (or at the range's end when the boundary is outside)."""
    model = _Curve(c)
    if large_ok:  # size <= threshold for x >= root
        threshold = 2.0 ** (c - root)
        got = float(_rate._boundary(model, (128,), -28.0, 28.0, True, threshold, True)[0])
        assert model.predict_many(np.asarray([2.0**got]), 128)[0][0] <= threshold
        assert root - 1e-9 <= got <= root + _rate._LOG2_TOLERANCE + 1e-9
    else:  # squared error <= threshold for x <= root
        threshold = 2.0 ** (2 * root - c)
        got = float(_rate._boundary(model, (128,), -28.0, 28.0, False, threshold, False)[0])
        assert model.predict_many(np.asarray([2.0**got]), 128)[1][0] <= threshold
        assert root - _rate._LOG2_TOLERANCE - 1e-9 <= got <= root + 1e-9


@pytest.mark.parametrize("n", [5, 3000, 200_000])
def test_step_searches_find_the_reference_steps(n):
    """_boundary on the kernel (the same grids, predicted only at the points the bisection of
    each round reads) ends on the NumPy search's grid point (tiny inputs: predicates that are
    not monotone)."""
    rng = np.random.default_rng(n + 1)
    ref, fast = both(heavy(rng, n, np.float32))
    rhos = (128, 96, 72)
    sizes = ref.predict_many(np.asarray([ref.max_abs / 1e4, ref.max_abs / 10]), 128)[0]
    for limit in np.linspace(sizes[1], sizes[0], 5):
        want = _rate._bisect_step(ref, rhos, float(limit))
        np.testing.assert_array_equal(_rate._bisect_step(fast, rhos, float(limit)), want)
        near = float(want[0]) * 1.01
        got = _rate._bisect_step(fast, (128,), float(limit), near)
        np.testing.assert_array_equal(got, _rate._bisect_step(ref, (128,), float(limit), near))
    for goal in np.geomspace(ref.energy * 1e-8, ref.energy * 1e-2, 5):
        np.testing.assert_array_equal(_rate._largest_step(fast, rhos, goal),
                                      _rate._largest_step(ref, rhos, goal))  # fmt: skip


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 3000), st.integers(0, 2**32 - 1), st.sampled_from(DTYPES),
       st.floats(-60.0, 20.0))  # fmt: skip
def test_search_bounds_hold(n, seed, dtype, log2_step):
    """The bounds that settle grid points without a prediction (rate_model.cpp SizeBelow /
    SquaredErrorAbove) never cross the prediction, at any rounding offset."""
    x = heavy(np.random.default_rng(seed), n, dtype)
    if seed % 3 == 0:
        x = np.abs(x) * 1e-30 if dtype == np.float64 else np.abs(x)  # tiny / one-sided
    fast = _rate.KernelModel(x, x.dtype.itemsize, 20)
    step = max(2.0**log2_step, fast.min_step())
    size_below, sse_above = fast.core.bounds(step)
    for rho in (0, 1, 72, 128, 255):
        size, sse = fast.predict(step, rho)
        assert size_below <= size
        assert sse <= sse_above


def test_searches_at_the_ends_of_the_range():
    """A limit nothing meets and one everything meets: both searches return the range's ends."""
    ref, fast = both(heavy(np.random.default_rng(4), 999, np.float32))
    for limit in (1.0, 1e12):
        np.testing.assert_array_equal(_rate._bisect_step(fast, (128, 72), limit),
                                      _rate._bisect_step(ref, (128, 72), limit))  # fmt: skip
    for goal in (0.0, 1e300):
        np.testing.assert_array_equal(_rate._largest_step(fast, (128,), goal),
                                      _rate._largest_step(ref, (128,), goal))  # fmt: skip


# ----------------------------------------------------------------------------- classes


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.floats(-1e5, 1e5, allow_nan=False, width=32), min_size=1, max_size=400),
    st.floats(1e-3, 1e2),
    st.integers(0, 255),
)  # fmt: skip
def test_symbols_are_the_reference_symbols(values, step, rho):
    x = np.asarray(values, dtype=np.float32)
    ref, fast = both(x)
    step = max(step, ref.max_abs / 2.0**50)
    np.testing.assert_array_equal(fast.symbols(step, rho), ref.symbols(step, rho))


@pytest.mark.parametrize("n,length", [(64, 1), (999, 7), (40_000, 576), (70_001, 13)])
def test_class_histogram_costs_match(n, length):
    rng = np.random.default_rng(length)
    ref, fast = both(heavy(rng, n, np.float32))
    sym = ref.symbols(0.2, 96)
    pos = ref.sample_indices() % length
    rank = rng.permutation(length)
    ranked = rank[pos]
    for k in (1, 2, 3, 4, 16):
        cls = ranked * k // length
        want = ref.class_bits(sym, cls, k)
        got = fast.class_bits(sym.astype(np.int32), cls, k)
        assert got[1] == want[1]
        assert got[0] == pytest.approx(want[0], rel=1e-12, abs=1e-9)
    assert fast.class_bits(sym.astype(np.int32), None, 1) == pytest.approx(
        ref.class_bits(sym, np.zeros(sym.size, dtype=np.int64), 1), rel=1e-12)  # fmt: skip
    ks = [2, 3, 4, 8, 16]
    for r in (rank, None):
        for got, want in zip(fast.rank_bits(sym.astype(np.int32), pos, r, length, ks),
                             ref.rank_bits(sym, pos, r, length, ks), strict=True):  # fmt: skip
            assert got[1] == want[1]
            assert got[0] == pytest.approx(want[0], rel=1e-12, abs=1e-9)


@pytest.mark.parametrize("length,rows", [(9, 300), (64, 256), (130, 40), (576, 60), (1000, 9)])
def test_bounds_match_the_reference_dynamic_programme(length, rows):
    rng = np.random.default_rng(length)
    scale = np.geomspace(0.05, 20.0, length)[rng.permutation(length)]
    x = (rng.standard_normal((rows, length)) * scale).astype(np.float32)
    ref, fast = both(x)
    pos = ref.sample_indices() % length
    for step in (0.01, 0.3):
        sym = ref.symbols(step, 128)
        ks = [k for k in (2, 4, 8, 16) if k <= length]
        want = ref.best_bounds(pos, sym, length, ks)
        got = fast.best_bounds(pos, sym.astype(np.int32), length, ks)
        assert got.keys() == want.keys()
        for k in want:
            assert got[k][1] == want[k][1], k
            assert got[k][0] == pytest.approx(want[k][0], rel=1e-12)


# shapes whose class axis is short against the sample (one (position, symbol) histogram) and
# long (a pass per kind: 2,000 and 70,001 positions), both axes of 3-D / 4-D
CLASS_SHAPES = [(512, 64), (300, 40), (64, 33), (2, 24, 6, 7), (5, 20, 9), (3000, 48),
                (40, 576), (40, 1000), (60, 2000), (70_001,), (200, 3, 300), (9, 2, 70), (1, 7),
                (3, 2)]  # fmt: skip


@pytest.mark.parametrize("shape", CLASS_SHAPES)
def test_class_search_is_the_composition_of_its_pieces(shape):
    """RateModel.class_search (one call) chooses what _class_saving composes from the kernel's
    pieces one call each: the same K, axis, kind, saving (to the last bit) and boundaries, for
    every kind alone and all together, at fine and coarse steps and two rounding offsets."""
    rng = np.random.default_rng(sum(shape))
    n = int(np.prod(shape))
    x = (
        heavy(rng, n, np.float64).reshape(shape)
        * np.geomspace(0.05, 20.0, shape[-1])[rng.permutation(shape[-1])]
    ).astype(np.float32)
    model = _rate.KernelModel(x.reshape(-1), 4, _rate._dense_header_bytes(shape))
    axes = (0, 1) if len(shape) >= 3 else (0,)
    ks = tuple(sorted({c for a in axes for c in _rate.class_candidates(shape, a)}))
    saved = _rate.FUSED_CLASS_SEARCH
    chosen = set()
    try:
        for step in (0.003, 0.05, 0.3, 2.0):
            step = max(step, model.max_abs / 2.0**50)
            for kinds in (("rank", "ranges", "bounds"), ("rank",), ("ranges",), ("bounds",)):
                for rho in (128, 72):
                    args = (model, x, shape, axes, ks, step, rho, kinds)
                    _rate.FUSED_CLASS_SEARCH = True
                    got = _rate._class_saving(*args)
                    _rate.FUSED_CLASS_SEARCH = False
                    assert got == _rate._class_saving(*args), (step, kinds, rho)
                    chosen.add(got[0])
    finally:
        _rate.FUSED_CLASS_SEARCH = saved
    if n >= 4096 and len(shape) > 1:  # (a 1-D array's maps cost more than they save)
        assert chosen - {1}, "no case where classes save: the comparison would be idle"


@pytest.mark.parametrize("n,length", [(16_384, 64), (70_001, 13), (40_000, 576)])
def test_simd_paths_are_the_scalar_paths(n, length, monkeypatch):
    """The AVX2 symbols and everything built on them equal the scalar code's (SLICER_DENSE_SIMD
    = 0 forces it; without AVX2 both runs take the scalar path)."""
    rng = np.random.default_rng(n)
    x = heavy(rng, n, np.float32) * np.resize(np.geomspace(0.1, 10.0, length), n)
    model = _rate.KernelModel(x.astype(np.float32), 4, 20)
    pos = model.sample_indices() % length
    shape = (n // length, length)
    runs = []
    for flag in ("1", "0"):
        monkeypatch.setenv("SLICER_DENSE_SIMD", flag)
        out = []
        for step in (1e-4, 0.05, 0.7, 40.0):
            sym = model.symbols(step, 96)
            out.append(sym.tobytes())
            out.append(model.best_bounds(pos, sym, length, [2, 4, 8, 16]))
            if n % length == 0:
                out.append(_rate._class_saving(model, x.reshape(shape), shape, (0,),
                                               (1, 2, 4, 8, 16), step, 96,
                                               ("rank", "ranges", "bounds")))  # fmt: skip
        runs.append(out)
    assert runs[0] == runs[1]


@pytest.mark.parametrize("shape,axis", [((7, 11), 0), ((3, 5, 4, 2), 1), ((2, 6, 3), 0),
                                        ((300, 576), 0), ((2, 40, 9, 9), 1)])  # fmt: skip
@pytest.mark.parametrize("dtype", DTYPES)
def test_position_scores_match(shape, axis, dtype):
    x = np.random.default_rng(sum(shape)).standard_normal(shape).astype(dtype)
    ref, fast = both(x)
    np.testing.assert_allclose(fast.position_scores(x, shape, axis),
                               ref.position_scores(x, shape, axis), rtol=1e-12)  # fmt: skip


# ----------------------------------------------------------------------------- end to end


def with_model(model, fn):  # noqa: ANN001, ANN201
    """fn() with rate control on `model` in the Python driver (the C++ driver, which fixed class
    settings take, builds the kernel's model itself)."""
    saved = _rate.MODEL, _rate.NATIVE_DRIVER
    _rate.MODEL, _rate.NATIVE_DRIVER = model, False
    try:
        return fn()
    finally:
        _rate.MODEL, _rate.NATIVE_DRIVER = saved


CASES = [
    ((512, 64), np.float32, "tensor"), ((333, 17), np.float16, "tensor"),
    ((40, 576), ml_dtypes.bfloat16, "rows"), ((2, 24, 6, 7), np.float32, "channels"),
    ((7,), np.float64, "tensor"), ((900, 48), np.float32, "tensor"),
]  # fmt: skip


@pytest.mark.parametrize("shape,dtype,groups", CASES)
def test_auto_streams_are_the_reference_model_streams(shape, dtype, groups):
    """encode(mode="auto") with the kernel gives the bytes the NumPy model gives (max_bytes and
    rel_error, classes "auto" and 1, and classes="auto" at a given step)."""
    rng = np.random.default_rng(int(np.prod(shape)))
    x = heavy(rng, int(np.prod(shape)), np.float64).reshape(shape)
    x = (x * np.geomspace(0.1, 3.0, shape[-1])).astype(dtype)
    plain = slicer.encode(x, mode="dense", step=0.3, groups=groups)
    calls = [dict(mode="auto", max_bytes=len(plain)), dict(mode="auto", rel_error=0.02),
             dict(mode="auto", max_bytes=len(plain), classes=1),
             dict(mode="auto", rel_error=0.05, classes=1),
             dict(mode="dense", step=0.3, classes="auto")]  # fmt: skip
    for kw in calls:

        def run(kw=kw) -> bytes:  # noqa: ANN001
            return slicer.encode(x, groups=groups, **kw)

        assert with_model(_rate.KernelModel, run) == with_model(_rate.DenseModel, run), kw


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 60), st.integers(1, 90), st.integers(0, 2**32 - 1), st.floats(0.5, 6.0))
def test_auto_streams_match_on_random_arrays(rows, cols, seed, bits):
    rng = np.random.default_rng(seed)
    x = heavy(rng, rows * cols, np.float32).reshape(rows, cols)
    budget = max(200, int(bits * x.size / 8) + 120)
    for kw in (dict(max_bytes=budget), dict(rel_error=10.0**-bits)):

        def run(kw=kw) -> bytes:  # noqa: ANN001
            try:
                return slicer.encode(x, mode="auto", **kw)
            except ValueError as e:  # a budget below the smallest stream: the same error
                return str(e).encode()

        assert with_model(_rate.KernelModel, run) == with_model(_rate.DenseModel, run), kw


def _relative_error(x: np.ndarray, stream: bytes) -> float:
    ref = x.astype(np.float64).reshape(-1)
    diff = slicer.decode(stream).astype(np.float64).reshape(-1) - ref
    return float(np.sqrt(np.dot(diff, diff) / np.dot(ref, ref)))


@settings(max_examples=30, deadline=None)
@given(
    shape=st.sampled_from([(1,), (37,), (64, 48), (5, 700), (3, 8, 5, 7), (130, 31)]),
    dtype=st.sampled_from(DTYPES),
    groups=st.sampled_from(["tensor", "rows", "channels"]),
    classes=st.sampled_from(["auto", 1]),
    seed=st.integers(0, 2**32 - 1),
    bits=st.floats(0.2, 9.0),
    log_error=st.floats(-4.0, -0.3),
)
def test_auto_honours_the_budget_and_is_deterministic(
    shape, dtype, groups, classes, seed, bits, log_error
):
    """The driver's guarantees on random inputs (both models): every max_bytes stream fits its
    budget (or the call says the budget is below the smallest stream), every rel_error stream's
    decoded error is within the target, a second call on a copy gives the same bytes, and the
    kernel's stream is the NumPy model's."""
    if groups == "channels" and len(shape) < 2:
        groups = "tensor"
    rng = np.random.default_rng(seed)
    x = heavy(rng, int(np.prod(shape)), np.float64).reshape(shape)
    x = x * np.geomspace(0.05, 20.0, shape[-1])[rng.permutation(shape[-1])]
    x = np.clip(x, -6e4, 6e4).astype(dtype)  # (finite in float16)
    limit = max(1, int(bits * x.size / 8) + int(rng.integers(0, 200)))
    target = 10.0**log_error
    for kw in (dict(max_bytes=limit), dict(rel_error=target)):

        def run(kw=kw, x=x) -> bytes | str:  # noqa: ANN001
            try:
                return slicer.encode(x, mode="auto", groups=groups, classes=classes, **kw)
            except ValueError as e:  # a budget below the smallest stream / unreachable
                return str(e)

        got = run()
        assert run(x=x.copy()) == got, kw
        assert with_model(_rate.DenseModel, run) == got, kw
        if isinstance(got, str):
            assert "cannot be" in got or "below the smallest" in got, got
            if "max_bytes" in kw:  # the smallest stream (every element zero) does not fit
                zeros = slicer.encode(x, mode="dense", step=2.0**100, groups=groups)
                assert len(zeros) > limit - 64, (len(zeros), limit)
            continue
        if "max_bytes" in kw:
            assert len(got) <= limit
        else:
            assert _relative_error(x, got) <= target * (1 + 1e-9)


@pytest.mark.parametrize("shape,dtype", [((64, 48), np.float32), ((30, 70), np.float64),
                                         ((2, 12, 5, 6), np.float32)])  # fmt: skip
def test_trellis_streams_are_the_reference_model_streams(shape, dtype):
    """Mode 3 with a budget (python/slicer/_trellis.py) gives the same bytes with the kernel as
    with the NumPy model."""
    rng = np.random.default_rng(int(np.prod(shape)) + 3)
    x = heavy(rng, int(np.prod(shape)), np.float64).reshape(shape)
    x = (x * np.geomspace(0.1, 3.0, shape[-1])).astype(dtype)
    plain = slicer.encode(x, mode="dense", step=0.3, trellis=True)
    for kw in (dict(max_bytes=len(plain)), dict(rel_error=0.05)):
        for classes in ("auto", 1):

            def run(kw=kw, classes=classes) -> bytes:  # noqa: ANN001
                return slicer.encode(x, mode="dense", trellis=True, classes=classes, **kw)

            assert with_model(_rate.KernelModel, run) == with_model(_rate.DenseModel, run), kw


def test_kernel_is_deterministic():
    rng = np.random.default_rng(11)
    x = heavy(rng, 3 * 32768 + 5, np.float32).reshape(-1, 1)
    a = _rate.KernelModel(x.reshape(-1), 4, 20)
    b = _rate.KernelModel(x.copy().reshape(-1), 4, 20)
    steps = np.geomspace(1e-3, 1e3, 50)
    for got, want in zip(a.predict_many(steps, 96), b.predict_many(steps, 96), strict=True):
        np.testing.assert_array_equal(got, want)
    assert list(a.core.boundary([128, 72], -20.0, 20.0, True, 5e4, True)) == list(
        b.core.boundary([128, 72], -20.0, 20.0, True, 5e4, True))  # fmt: skip
    first = slicer.encode(x, mode="auto", max_bytes=x.size // 2)
    assert slicer.encode(x.copy(), mode="auto", max_bytes=x.size // 2) == first


# ----------------------------------------------------------------------------- errors


def test_binding_parameter_errors():
    raw = np.zeros(40, np.uint8)
    with pytest.raises(ValueError, match="dtype"):
        _core.RateModel(raw, 9, None, 20.0)
    with pytest.raises(ValueError, match="whole number"):
        _core.RateModel(raw[:6], 1, None, 20.0)
    with pytest.raises(ValueError, match="positions"):
        _core.RateModel(raw, 1, np.array([0, 10], dtype=np.int64), 20.0)
    with pytest.raises(ValueError, match="positions"):
        _core.RateModel(raw, 1, np.array([-1], dtype=np.int64), 20.0)
    with pytest.raises(ValueError, match="ascending"):
        _core.RateModel(raw, 1, np.array([3, 1], dtype=np.int64), 20.0)
    model = _core.RateModel(raw, 1, None, 20.0)
    with pytest.raises(ValueError, match="length"):
        model.predict(np.ones(3), np.ones(2))
    with pytest.raises(ValueError, match="step"):
        model.symbols(0.0, 128)
    with pytest.raises(ValueError, match="step"):
        model.bounds(-1.0)
    sym = np.zeros(4, np.int32)
    with pytest.raises(ValueError, match="length"):
        _core.rate_class_bits(sym, np.zeros(3, np.int64), 2)
    with pytest.raises(ValueError, match="cls"):
        _core.rate_class_bits(sym, np.full(4, 2, np.int64), 2)
    with pytest.raises(ValueError, match="sym"):
        _core.rate_class_bits(np.full(4, 423, np.int32), np.zeros(4, np.int64), 1)
    with pytest.raises(ValueError, match="k"):
        _core.rate_class_bits(sym, np.zeros(4, np.int64), 0)
    pos = np.zeros(4, np.int64)
    with pytest.raises(ValueError, match="pos"):
        _core.rate_rank_bits(sym, np.full(4, 9, np.int64), None, 9, [2])
    with pytest.raises(ValueError, match="rank"):
        _core.rate_rank_bits(sym, pos, np.full(9, 9, np.int64), 9, [2])
    with pytest.raises(ValueError, match="rank"):
        _core.rate_rank_bits(sym, pos, np.zeros(8, np.int64), 9, [2])
    with pytest.raises(ValueError, match="ks"):
        _core.rate_rank_bits(sym, pos, None, 9, [17])
    with pytest.raises(ValueError, match="pos"):
        _core.rate_best_bounds(np.full(4, 9, np.int64), sym, 9, [2], 1.0)
    with pytest.raises(ValueError, match="ks"):
        _core.rate_best_bounds(np.zeros(4, np.int64), sym, 9, [1], 1.0)
    with pytest.raises(ValueError, match="length"):
        _core.rate_best_bounds(np.zeros(4, np.int64), sym, 0, [2], 1.0)
    with pytest.raises(ValueError, match="element count"):
        _core.rate_position_scores(raw, 1, 3, 4, 1)
    with pytest.raises(ValueError, match="dtype"):
        _core.rate_stats(raw, 0, False)
    plan = (0, 2, 5, 1, [2], 3)  # (kind, outer, length, inner, ks, map bytes) of 10 elements
    assert model.class_search(0.5, 128, [plan])[0] == 1  # all zeros: nothing to save
    with pytest.raises(ValueError, match="step"):
        model.class_search(0.0, 128, [plan])
    with pytest.raises(ValueError, match="rho_256"):
        model.class_search(0.5, 256, [plan])
    with pytest.raises(ValueError, match="kind"):
        model.class_search(0.5, 128, [(3, 2, 5, 1, [2], 3)])
    with pytest.raises(ValueError, match="element count"):
        model.class_search(0.5, 128, [(0, 2, 4, 1, [2], 3)])
    with pytest.raises(ValueError, match="ks"):
        model.class_search(0.5, 128, [(0, 2, 5, 1, [6], 3)])
    with pytest.raises(ValueError, match="ks"):
        model.class_search(0.5, 128, [(1, 2, 5, 1, [1], 0)])
    with pytest.raises(ValueError, match="map bytes"):
        model.class_search(0.5, 128, [(1, 2, 5, 1, [2], -1)])
    big = _core.RateModel(np.array([1e6], np.float32).view(np.uint8), 1, None, 20.0)
    with pytest.raises(ValueError, match="2\\^52"):
        big.class_search(1e-12, 128, [(1, 1, 1, 1, [], 0)])
