"""The compiled codec against the NumPy reference: byte equality at awkward sizes."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import reference as ref
import slicer
from backend_params import api_kwargs

SIZES = [1, 7, 576, 4096, 999_999]


def sample(n: int, kind: str, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if kind == "normal":
        return rng.standard_normal(n).astype(np.float32)
    if kind == "relu_ties":  # ReLU zeros and many equal magnitudes
        return np.maximum(rng.integers(-4, 5, size=n), 0).astype(np.float32) * np.float32(0.5)
    if kind == "outliers":
        x = rng.standard_normal(n).astype(np.float32)
        x[rng.integers(0, n, size=max(1, n // 1000))] *= np.float32(1e4)
        return x
    raise ValueError(kind)


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("kind", ["normal", "relu_ties", "outliers"])
def test_same_bytes_as_reference(n: int, kind: str) -> None:
    x = sample(n, kind, seed=n)
    params = ref.default_params()
    stream = slicer.encode(x, **api_kwargs(params))
    assert stream == ref.encode(x, params)


PARAM_GRID = [
    {},
    {"sparsity_ppb": 0, "delta_micro": 0, "bits": 16},
    {"sparsity_ppb": 500_000_000, "asym_ppb": 400_000_000, "seed": 99},
    {"sparsity_ppb": 999_000_000, "blocks_pos": 1, "blocks_neg": 7},
    {"levels": [8, 6, 4, 2], "blocks_pos": 4, "blocks_neg": 4},
    {"delta_micro": 300_000, "bits": 12},
    {"group_rows": 1, "chunk_log2": 6},
]


@pytest.mark.parametrize("overrides", PARAM_GRID, ids=lambda o: ",".join(o) or "default")
@pytest.mark.parametrize("dtype", [np.float32, np.float16, ml_dtypes.bfloat16])
def test_parameter_grid_matches_reference(overrides: dict, dtype) -> None:
    x = (np.random.default_rng(7).standard_normal((13, 77)) * 3).astype(dtype)
    params = ref.default_params(**overrides)
    stream = slicer.encode(x, **api_kwargs(params))
    assert stream == ref.encode(x, params)
    got = slicer.decode(stream)
    expected, _ = ref.decode(stream)
    assert np.array_equal(got.reshape(-1).view(np.uint8), expected.reshape(-1).view(np.uint8))


@settings(max_examples=150, deadline=None)
@given(
    x=hnp.arrays(
        np.float32,
        hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=30),
        elements=st.one_of(
            st.floats(-(2**127), 2**127, width=32, allow_subnormal=True),
            st.sampled_from([0.0, -0.0, 1.0, -1.0, 2.5]),
        ),
    ),
    s_ppb=st.sampled_from([0, 250_000_000, 500_000_000, 900_000_000, 999_999_999]),
    asym=st.sampled_from([0, 100_000_000, 999_999_999]),
    blocks=st.tuples(st.integers(1, 64), st.integers(1, 64)),
    bits=st.integers(1, 16),
    delta=st.sampled_from([0, 10_000, 1_000_000]),
    seed=st.integers(0, 2**64 - 1),
    rows=st.booleans(),
)
def test_random_inputs_match_reference(x, s_ppb, asym, blocks, bits, delta, seed, rows) -> None:
    rows = rows and x.ndim > 0  # the API refuses rows for a 0-d array
    params = ref.default_params(
        sparsity_ppb=s_ppb,
        asym_ppb=asym,
        blocks_pos=blocks[0],
        blocks_neg=blocks[1],
        bits=bits,
        delta_micro=delta,
        seed=seed,
        group_rows=int(rows),
        chunk_log2=6,
    )
    stream = slicer.encode(x, **api_kwargs(params))
    assert stream == ref.encode(x, params)
    assert len(stream) <= slicer.size_bound(x.shape, "float32", **api_kwargs(params))
    got = slicer.decode(stream)
    expected, _ = ref.decode(stream)
    assert np.array_equal(got.reshape(-1).view(np.uint8), expected.reshape(-1).view(np.uint8))
