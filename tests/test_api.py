"""The public Python API of the codec: round trips, the spec's promises, batch, out=, rate."""

from __future__ import annotations

import json

import ml_dtypes
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import slicer
from conftest import PPB, check_stream, kept_count

try:  # PyTorch is optional: the tests that feed it are skipped without it
    import torch
except ImportError:
    torch = None
needs_torch = pytest.mark.skipif(torch is None, reason="PyTorch is not installed")

DTYPES = [np.float32, np.float16, ml_dtypes.bfloat16]
SHAPES = [(), (0,), (1,), (7,), (3, 5, 7), (0, 3), (4, 576)]


def normal(shape, dtype=np.float32, seed: int = 0, scale: float = 1.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(shape) * scale).astype(dtype)


def test_version_and_format() -> None:
    assert slicer.__version__ == "0.3.0"
    assert slicer.FORMAT_VERSION == 1
    assert issubclass(slicer.FormatError, ValueError)


SHAPE_GROUPS = [(shape, "tensor") for shape in SHAPES] + [
    (shape, "rows")
    for shape in SHAPES
    if shape  # a 0-d array has no rows
]


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize(("shape", "groups"), SHAPE_GROUPS, ids=str)
@pytest.mark.parametrize("sparsity", [0.0, 0.5, 0.9])
def test_round_trip_numpy(dtype, shape, groups: str, sparsity: float) -> None:
    x = normal(shape, dtype, seed=len(shape) + 7)
    stream = slicer.encode(x, sparsity=sparsity, groups=groups)
    check_stream(x, stream, sparsity=sparsity, rows=groups == "rows")


@needs_torch
@pytest.mark.parametrize("name", ["float32", "float16", "bfloat16"])
def test_torch_cpu_tensors_give_numpy_bytes(name: str) -> None:
    tdtype = getattr(torch, name)
    t = torch.randn(6, 97, generator=torch.Generator().manual_seed(3)).to(tdtype)
    as_numpy = (
        t.view(torch.int16).numpy().view(ml_dtypes.bfloat16)
        if tdtype == torch.bfloat16
        else t.numpy()
    )
    stream = slicer.encode(t, sparsity=0.7, bits=6)
    assert stream == slicer.encode(as_numpy, sparsity=0.7, bits=6)
    y = check_stream(as_numpy, stream, sparsity=0.7)
    assert y.dtype == as_numpy.dtype


@needs_torch
def test_torch_non_contiguous_bfloat16() -> None:
    t = torch.randn(40, 30, generator=torch.Generator().manual_seed(5)).to(torch.bfloat16).T
    assert not t.is_contiguous()
    expected = t.contiguous().view(torch.int16).numpy().view(ml_dtypes.bfloat16)
    assert slicer.encode(t) == slicer.encode(expected)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_non_contiguous_numpy(dtype) -> None:
    x = normal((9, 64), dtype, seed=11)
    view = x[::2, ::3]
    assert not view.flags.c_contiguous
    assert slicer.encode(view, sparsity=0.5) == slicer.encode(
        np.ascontiguousarray(view), sparsity=0.5
    )
    reversed_view = x[::-1]
    assert slicer.encode(reversed_view) == slicer.encode(np.ascontiguousarray(reversed_view))


def test_big_endian_input() -> None:
    x = normal((50,), seed=6)
    assert slicer.encode(x.astype(">f4")) == slicer.encode(x)
    assert slicer.encode(x.astype(">f2")) == slicer.encode(x.astype(np.float16))


def test_buffer_protocol_input() -> None:
    x = normal((300,), np.float32, seed=1)
    assert slicer.encode(memoryview(x)) == slicer.encode(x)


@pytest.mark.parametrize("n", [1, 7, 576, 4096, 100_003])
@pytest.mark.parametrize("sparsity", [0.0, 0.3, 0.9, 0.99, 0.999999999])
def test_exact_kept_count(n: int, sparsity: float) -> None:
    x = normal((n,), seed=n)
    x[::5] = 0  # ReLU-like zeros: k is capped by nnz
    y = slicer.decode(slicer.encode(x, sparsity=sparsity))
    expected = kept_count(n, int(np.count_nonzero(x)), round(sparsity * PPB))
    assert int(np.count_nonzero(y)) == expected


def test_largest_magnitudes_kept_and_signs(rng) -> None:
    x = (rng.standard_normal(5000) * np.exp(rng.standard_normal(5000))).astype(np.float32)
    stream = slicer.encode(x, sparsity=0.8, delta=0.0, bits=12)
    y = check_stream(x, stream, sparsity=0.8)
    kept = y != 0
    assert np.abs(x[kept]).min() >= np.abs(x[~kept]).max()


@pytest.mark.parametrize("asym", [0.2, 0.6])
def test_asymmetric_filter_keeps_exactly_k(rng, asym: float) -> None:
    x = rng.standard_normal(3001).astype(np.float32)
    y = check_stream(x, slicer.encode(x, sparsity=0.9, asym=asym), sparsity=0.9, asym=asym)
    # Eq. 7 favours negatives: more of them survive than with lambda = 0.
    y0 = slicer.decode(slicer.encode(x, sparsity=0.9))
    assert np.count_nonzero(y < 0) > np.count_nonzero(y0 < 0)


@given(
    n=st.integers(1, 3000),
    shift=st.floats(-2.0, 2.0),
    ties=st.booleans(),
    sparsity=st.floats(0.0, 0.99),
    asym=st.floats(0.01, 0.95),
    seed=st.integers(0, 2**32 - 1),
)
def test_asymmetric_selection_property(n, shift, ties, sparsity, asym, seed) -> None:
    """Eq. 7 with trim (|S| >= k) and fill (|S| < k), skewed signs, ties, zeros."""
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal(n) + shift).astype(np.float32)
    if ties:
        x = np.round(x * 2).astype(np.float32) / np.float32(2)  # many equal magnitudes, zeros
    check_stream(x, slicer.encode(x, sparsity=sparsity, asym=asym), sparsity=sparsity, asym=asym)


def test_half_step_bound_for_huge_outliers(rng) -> None:
    x = rng.standard_normal(4096).astype(np.float32)
    x[[3, 900, 2000]] = [3.0e38, -1.5e36, 7.0e30]
    for bits in (2, 8, 16):
        check_stream(x, slicer.encode(x, sparsity=0.5, bits=bits, delta=0.0), sparsity=0.5)


def test_rows_groups_keep_k_per_row(rng) -> None:
    x = rng.standard_normal((5, 576)).astype(np.float32)
    x[0] *= 1000  # an outlier token must not starve the other rows
    stream = slicer.encode(x, sparsity=0.9, groups="rows")
    check_stream(x, stream, sparsity=0.9, rows=True)
    assert slicer.inspect(stream).group_count == 5


def test_determinism_and_seeded_ties() -> None:
    # 1000 elements tie at magnitude 1 and k = 750: the seeded draw decides which stay.
    x = np.tile(np.array([1.0, -1.0, 0.5], dtype=np.float32), 500)
    a = slicer.encode(x, sparsity=0.5, seed=1)
    assert a == slicer.encode(x.copy(), sparsity=0.5, seed=1)
    assert a == slicer.encode(x, sparsity=0.5, seed=1, threads=1)
    b = slicer.encode(x, sparsity=0.5, seed=2)
    assert a != b
    ya, yb = slicer.decode(a), slicer.decode(b)
    assert np.count_nonzero(ya) == np.count_nonzero(yb) == 750
    assert not np.array_equal(ya != 0, yb != 0)  # the draw picked different tied elements


@pytest.mark.parametrize("axis", [0, 1, -1])
def test_encode_batch_matches_encode(axis: int) -> None:
    x = normal((4, 33, 10), seed=9)
    items = slicer.encode_batch(x, axis=axis, sparsity=0.6, bits=[8, 4], blocks=2)
    moved = np.moveaxis(x, axis, 0)
    assert len(items) == moved.shape[0]
    for i, item in enumerate(items):
        assert item == slicer.encode(moved[i], sparsity=0.6, bits=[8, 4], blocks=2)


@needs_torch
def test_encode_batch_torch_and_errors() -> None:
    t = torch.randn(3, 50, generator=torch.Generator().manual_seed(1)).to(torch.bfloat16)
    items = slicer.encode_batch(t)
    assert items == [slicer.encode(t[i]) for i in range(3)]
    with pytest.raises(ValueError, match="axis"):
        slicer.encode_batch(t, axis=2)
    with pytest.raises(ValueError, match="dimension"):
        slicer.encode_batch(np.float32(1.0))


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_decode_into_out(dtype) -> None:
    x = normal((8, 16), dtype, seed=2)
    stream = slicer.encode(x, sparsity=0.5)
    out = np.full((8, 16), 7, dtype=dtype)
    result = slicer.decode(stream, out=out)
    assert result is out
    assert np.array_equal(out.view(np.uint8), slicer.decode(stream).view(np.uint8))
    with pytest.raises(ValueError, match="shape"):
        slicer.decode(stream, out=np.empty((16, 8), dtype=dtype))
    with pytest.raises(ValueError, match="dtype"):
        slicer.decode(stream, out=np.empty((8, 16), dtype=np.float64))
    with pytest.raises(ValueError, match="contiguous"):
        slicer.decode(stream, out=np.empty((8, 32), dtype=dtype)[:, ::2])


def test_decode_accepts_byte_containers() -> None:
    x = normal((100,), seed=4)
    stream = slicer.encode(x)
    expected = slicer.decode(stream)
    for buf in (bytearray(stream), memoryview(stream), np.frombuffer(stream, np.uint8)):
        assert np.array_equal(slicer.decode(buf), expected)
    if torch is not None:
        as_tensor = torch.frombuffer(bytearray(stream), dtype=torch.uint8)
        assert np.array_equal(slicer.decode(as_tensor), expected)


def test_multilevel_widths_visible_in_inspect(rng) -> None:
    x = rng.standard_normal(3000).astype(np.float32)
    info = slicer.inspect(slicer.encode(x, bits=[8, 4, 2]), blocks=True)
    assert info.multilevel and info.bits == 8 and info.blocks == (3, 3)
    assert sorted({(b.index, b.width) for b in info.block_table}) == [(0, 8), (1, 4), (2, 2)]
    with pytest.raises(ValueError, match="blocks"):
        slicer.encode(x, bits=[8, 4, 2], blocks=2)


def test_abq_lowers_widths_and_delta_zero_keeps_them(rng) -> None:
    x = rng.standard_normal(20000).astype(np.float32)
    fixed = slicer.inspect(slicer.encode(x, bits=10, delta=0.0), blocks=True)
    assert {b.width for b in fixed.block_table} == {10}
    adaptive = slicer.inspect(slicer.encode(x, bits=10, delta=0.5), blocks=True)
    assert all(1 <= b.width <= 10 for b in adaptive.block_table)
    assert sum(b.width * b.count for b in adaptive.block_table) < 10 * adaptive.kept


def test_inspect_account_and_table(rng) -> None:
    x = rng.standard_normal((3, 5, 7)).astype(np.float32)
    stream = slicer.encode(x, sparsity=0.5, seed=42)
    info = slicer.inspect(stream, blocks=True)
    assert info.format_version == 1 and info.shape == (3, 5, 7) and info.dtype == "float32"
    assert info.sparsity == 0.5 and info.seed == 42 and info.num_elements == 105
    assert info.kept == 52 == sum(b.count for b in info.block_table)
    acct = info.account
    parts = acct.header + acct.groups + acct.block_meta + acct.chunk_table + acct.checksum
    bits = acct.positions_bits + acct.labels_bits + acct.values_bits + acct.padding_bits
    assert bits % 8 == 0 and parts + bits // 8 == acct.total == len(stream)
    assert acct.bits_per_element == pytest.approx(8 * len(stream) / 105)
    as_dict = json.loads(json.dumps(info.to_dict()))
    assert as_dict["shape"] == [3, 5, 7] and as_dict["account"]["total"] == len(stream)
    text = str(info)
    assert "total" in text and "positions" in text and "3x5x7" in text


def _size_target(n: int, sparsity: float, seed: int) -> tuple[int, float]:
    x = np.random.default_rng(seed).standard_normal(n).astype(np.float32)
    stream = slicer.encode(x, sparsity=sparsity, blocks=3, bits=8, delta=0.0)
    return len(stream), 8 * len(stream) / n


def test_size_targets() -> None:
    size, bpe = _size_target(1_000_000, 0.9, 1)
    print(f"\n1M N(0,1) s=0.9 bits=8 delta=0: {size} bytes, {bpe:.4f} bits/element")
    assert bpe <= 1.6
    size, bpe = _size_target(1_000_000, 0.99, 2)
    print(f"1M N(0,1) s=0.99 bits=8 delta=0: {size} bytes, {bpe:.4f} bits/element")
    assert bpe <= 0.2
    x = np.random.default_rng(3).standard_normal(576).astype(np.float32)
    size = len(slicer.encode(x, sparsity=0.9, bits=8))
    print(f"576-float row s=0.9 bits=8: {size} bytes")
    assert size <= 200


# ---------------------------------------------------------------------------- size_bound


@st.composite
def widths_and_blocks(draw) -> tuple[int | list[int], tuple[int, int]]:
    """ABQ (an int) or multi-level (a list) widths with blocks that fit them."""
    if draw(st.booleans()):
        return draw(st.integers(1, 16)), (draw(st.integers(1, 9)), draw(st.integers(1, 9)))
    levels = draw(st.lists(st.integers(1, 16), min_size=1, max_size=6))
    other = draw(st.integers(1, len(levels)))
    pair = (len(levels), other) if draw(st.booleans()) else (other, len(levels))
    return levels, pair


@given(
    n_rows=st.integers(1, 40),
    n_cols=st.integers(0, 300),
    dtype=st.sampled_from(["float32", "float16", "bfloat16"]),
    sparsity=st.floats(0.0, 0.999),
    asym=st.sampled_from([0.0, 0.3]),
    widths=widths_and_blocks(),
    delta=st.sampled_from([0.0, 0.01, 0.3]),
    rows=st.booleans(),
    seed=st.integers(0, 2**64 - 1),
    chunk_log2=st.integers(6, 9),
)
def test_size_bound_never_below_real_size(
    n_rows, n_cols, dtype, sparsity, asym, widths, delta, rows, seed, chunk_log2
) -> None:
    rng = np.random.default_rng(seed % 2**32)
    shape = (n_rows, n_cols)
    values = rng.standard_normal(shape) * np.exp(3 * rng.standard_normal(shape))
    with np.errstate(over="ignore"):
        x = values.astype(np.float32).astype(ml_dtypes.bfloat16 if dtype == "bfloat16" else dtype)
    x[~np.isfinite(x)] = 0
    params = dict(
        sparsity=sparsity,
        asym=asym,
        bits=widths[0],
        blocks=widths[1],
        delta=delta,
        seed=seed,
        groups="rows" if rows else "tensor",
        chunk_size=1 << chunk_log2,
    )
    assert len(slicer.encode(x, **params)) <= slicer.size_bound(x.shape, dtype, **params)


def test_size_bound_dtype_spellings() -> None:
    shape = (16, 64)
    expected = slicer.size_bound(shape, "bfloat16")
    assert slicer.size_bound(shape, ml_dtypes.bfloat16) == expected
    if torch is not None:
        assert slicer.size_bound(shape, torch.bfloat16) == expected
    assert slicer.size_bound(shape, np.float32) > 0
    assert slicer.size_bound(shape, "float32", max_bytes=100) == 100
    with pytest.raises(TypeError):
        slicer.size_bound(shape, "int32")


# ---------------------------------------------------------------------------- max_bytes


def _relative_error(x: np.ndarray, stream: bytes) -> float:
    ref = x.astype(np.float64)
    return float(
        np.linalg.norm(slicer.decode(stream).astype(np.float64) - ref) / np.linalg.norm(ref)
    )


def test_max_bytes_keeps_request_when_it_fits(rng) -> None:
    x = rng.standard_normal(2000).astype(np.float32)
    plain = slicer.encode(x, sparsity=0.9)
    assert slicer.encode(x, sparsity=0.9, max_bytes=len(plain)) == plain


@pytest.mark.parametrize("limit", [60, 150, 400, 1000])
@pytest.mark.parametrize("bits", [8, [8, 4, 2]])
def test_max_bytes_never_exceeded(rng, limit: int, bits) -> None:
    x = (rng.standard_normal((4, 512)) * np.exp(rng.standard_normal((4, 512)))).astype(np.float32)
    stream = slicer.encode(x, sparsity=0.5, bits=bits, max_bytes=limit)
    assert len(stream) <= limit
    info = slicer.inspect(stream)
    assert info.sparsity >= 0.5
    check_stream(x, stream, sparsity=info.sparsity)


def test_max_bytes_picks_least_lossy_fitting_setting(rng) -> None:
    x = rng.standard_normal(4096).astype(np.float32)
    limit = 700
    stream = slicer.encode(x, sparsity=0.5, bits=8, delta=0.0, max_bytes=limit)
    best = _relative_error(x, stream)
    # Any width with its smallest fitting sparsity (found by brute force on k) is no better.
    for bits in (8, 5, 3, 2):
        for k in range(2048, 0, -8):
            s = 1 - k / 4096
            candidate = slicer.encode(x, sparsity=s, bits=bits, delta=0.0)
            if len(candidate) <= limit:
                assert best <= _relative_error(x, candidate) + 1e-12
                break


def test_max_bytes_search_is_economical(rng) -> None:
    from slicer._api import encode_host
    from slicer._params import make_params
    from slicer._rate import encode_within

    calls = []

    def counting(array: np.ndarray, params: dict) -> bytes:
        calls.append(params["sparsity_ppb"])
        return encode_host(array, params)

    x = rng.standard_normal(100_000).astype(np.float32)
    for limit in (15_000, 6_000, 500):
        calls.clear()
        stream = encode_within(x, make_params(), limit, counting)
        assert len(stream) <= limit
        # 7 widths; plain bisection over k would take about 17 encodes for each.
        assert len(calls) <= 7 * 8, f"{len(calls)} encodes for max_bytes={limit}"


def test_max_bytes_impossible_raises(rng) -> None:
    x = rng.standard_normal(1000).astype(np.float32)
    with pytest.raises(ValueError, match="smallest stream reached is"):
        slicer.encode(x, max_bytes=20)
    with pytest.raises(ValueError, match="max_bytes"):
        slicer.encode(x, max_bytes=0)


@needs_torch
def test_contiguous_inputs_are_not_copied() -> None:
    from slicer._intake import as_host_array

    x = normal((64,), seed=1)
    assert as_host_array(x) is x
    t = torch.randn(64)
    assert np.shares_memory(as_host_array(t), t.numpy())
    tb = torch.randn(64).to(torch.bfloat16)
    viewed = as_host_array(tb)
    assert viewed.dtype == ml_dtypes.bfloat16
    assert np.shares_memory(viewed, tb.view(torch.int16).numpy())
    readonly = np.frombuffer(x.tobytes(), dtype=np.float32)
    assert not readonly.flags.writeable
    assert slicer.encode(readonly) == slicer.encode(x)


@given(
    n_cols=st.integers(1, 700),
    n_rows=st.integers(1, 4),
    zeros=st.floats(0.0, 0.9),
    sparsity=st.floats(0.0, 0.95),
    bits=st.one_of(st.integers(1, 12), st.just([8, 4, 2])),
    rows=st.booleans(),
    limit=st.integers(20, 3000),
    seed=st.integers(0, 2**32 - 1),
)
def test_max_bytes_property(n_cols, n_rows, zeros, sparsity, bits, rows, limit, seed) -> None:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n_rows, n_cols)).astype(np.float32)
    x[rng.random(x.shape) < zeros] = 0
    groups = "rows" if rows else "tensor"
    try:
        stream = slicer.encode(x, sparsity=sparsity, bits=bits, groups=groups, max_bytes=limit)
    except ValueError as exc:
        assert "smallest stream reached" in str(exc)
        # Impossible indeed: one kept element per group at width 1 is already too big.
        n = n_cols if rows else x.size
        narrowest = 1 if isinstance(bits, int) else [1] * len(bits)
        tightest = slicer.encode(
            x, sparsity=max(sparsity, 1 - 1.5 / n), bits=narrowest, groups=groups
        )
        assert len(tightest) > limit
        return
    assert len(stream) <= limit
    info = slicer.inspect(stream)
    assert info.sparsity >= round(sparsity * 1e9) / 1e9
    check_stream(x, stream, sparsity=info.sparsity, rows=rows)


def test_encode_batch_with_max_bytes(rng) -> None:
    x = rng.standard_normal((3, 1000)).astype(np.float32)
    items = slicer.encode_batch(x, sparsity=0.5, max_bytes=300)
    assert items == [slicer.encode(row, sparsity=0.5, max_bytes=300) for row in x]
    assert all(len(item) <= 300 for item in items)


def test_concurrent_encodes_and_decodes_agree(rng) -> None:
    from concurrent.futures import ThreadPoolExecutor

    arrays = [rng.standard_normal(50_000).astype(np.float32) for _ in range(6)]
    expected = [slicer.encode(a, threads=1) for a in arrays]
    with ThreadPoolExecutor(max_workers=3) as pool:
        streams = list(pool.map(lambda a: slicer.encode(a, threads=1), arrays))
        decoded = list(pool.map(slicer.decode, streams))
    assert streams == expected
    for stream, y in zip(streams, decoded, strict=True):
        assert np.array_equal(y, slicer.decode(stream))


# ------------------------------------------------------------------ routing to the CUDA backend


class _CudaLike:
    """Claims to live on CUDA device 0 (DLPack device type 2); its data sits in `host`."""

    def __init__(self, host: np.ndarray) -> None:
        self.host = host
        self.shape = host.shape

    def __dlpack_device__(self) -> tuple[int, int]:
        return (2, 0)

    def __dlpack__(self, **kwargs):
        if kwargs.get("dl_device") != (1, 0) or not kwargs.get("copy"):
            raise BufferError("this stand-in only exports host copies")
        return self.host.copy().__dlpack__()


@pytest.fixture
def stand_in_gpu(monkeypatch):
    """slicer._gpu replaced by a recorder that encodes / decodes on the CPU."""
    from slicer import _gpu
    from slicer._api import encode_host

    calls: list[tuple] = []

    def encode(x, params, out="host"):
        calls.append(("encode", params, out))
        return encode_host(x.host, params)

    def encode_batch(x, axis, params):
        calls.append(("encode_batch", axis, params))
        return [encode_host(np.ascontiguousarray(a), params) for a in np.moveaxis(x.host, axis, 0)]

    def decode(buf, out=None, max_elements=2**31):
        calls.append(("decode", out, max_elements))
        return slicer.decode(buf, max_elements=max_elements)

    monkeypatch.setattr(_gpu, "available", lambda: True)
    monkeypatch.setattr(_gpu, "encode", encode)
    monkeypatch.setattr(_gpu, "encode_batch", encode_batch)
    monkeypatch.setattr(_gpu, "decode", decode)
    return calls


def test_cuda_arrays_go_to_the_cuda_backend(stand_in_gpu) -> None:
    host = normal((4, 300), seed=12)
    x = _CudaLike(host)
    stream = slicer.encode(x, sparsity=0.7, bits=[6, 3], groups="rows", seed=5)
    assert stream == slicer.encode(host, sparsity=0.7, bits=[6, 3], groups="rows", seed=5)
    kind, params, out = stand_in_gpu[-1]
    assert (kind, out) == ("encode", "host")
    assert params["sparsity_ppb"] == 700_000_000 and params["levels"] == [6, 3]
    assert params["blocks_pos"] == params["blocks_neg"] == 2 and params["group_rows"] == 1
    assert params["seed"] == 5 and params["level_count"] == 2 and params["bits"] == 6

    items = slicer.encode_batch(x, axis=1, sparsity=0.5)
    assert stand_in_gpu[-1][:2] == ("encode_batch", 1)
    assert items == [slicer.encode(host[:, i], sparsity=0.5) for i in range(300)]

    assert np.array_equal(
        slicer.decode(stream, device="cuda", max_elements=10**6), slicer.decode(stream)
    )
    assert stand_in_gpu[-1] == ("decode", None, 10**6)


def test_device_output_goes_to_the_cuda_backend(stand_in_gpu) -> None:
    host = normal((3, 200), seed=14)
    stream = slicer.encode(_CudaLike(host), sparsity=0.6, out="device")
    assert stream == slicer.encode(host, sparsity=0.6)
    assert stand_in_gpu[-1][2] == "device"
    with pytest.raises(ValueError, match="CUDA device"):
        slicer.encode(host, out="device")
    with pytest.raises(ValueError, match="max_bytes"):
        slicer.encode(_CudaLike(host), out="device", max_bytes=500)
    with pytest.raises(ValueError, match="out must be"):
        slicer.encode(host, out="gpu")


def test_cuda_arrays_with_max_bytes_use_a_host_copy(stand_in_gpu) -> None:
    host = normal((2000,), seed=13)
    stream = slicer.encode(_CudaLike(host), max_bytes=300)
    assert stream == slicer.encode(host, max_bytes=300) and len(stream) <= 300
    assert not stand_in_gpu  # rate control ran on the host copy: same bytes by the format
