"""§13.6 low-bit plane (mode 1): the low k bits of every code in a fixed-width plane at the start
of each chunk's bit area, the high part h = q >> k through rANS. The NumPy reference encodes and
decodes it; the C++ encoder writes the same bytes for every k and for "auto", the C++ decoder
(scalar, and the AVX2 paired decoder that reads the plane inside its vector steps) gives the
reference's values, and every stream the reference rejects ends in slicer.FormatError."""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import reference_dense as rd
import slicer
from dense_tools import (
    assert_reference_verdict,
    check_mode1_option,
    class_stream_group_byte,
    native,
    same_values,
)
from slicer import _core

CHUNK_LOG2 = 13  # many four-state chunks from small inputs: sets, pairs, single chunks


def laplace(n: int, seed: int, scale: float = 1.0) -> np.ndarray:
    return np.random.default_rng(seed).laplace(0.0, scale, n).astype(np.float32)


def reseal(stream: bytes) -> bytes:
    body = stream[:-4]
    return body + struct.pack("<I", zlib.crc32(body))


def group_byte_at(stream: bytes) -> int:
    """Offset of mode 1's group_table byte in a 1-d stream (magic, version, dtype, flags, ndim,
    one dim varint, layout, mode, params_len, then 8 bytes of parameters)."""
    pos = 8
    while stream[pos] & 0x80:
        pos += 1
    return pos + 1 + 3 + 8


def decode_as(stream: bytes, monkeypatch, simd: bool):
    monkeypatch.setenv("SLICER_DENSE_SIMD", "1" if simd else "0")
    try:
        return "ok", slicer.decode(stream, threads=1)
    except slicer.FormatError as e:
        return "error", f"{e} [{_core.error_detail()}]"


def same_decoders(stream: bytes, monkeypatch) -> None:
    """Scalar and SIMD decoders: the same values, or the same rejection."""
    kind_s, scalar = decode_as(stream, monkeypatch, False)
    kind_v, vector = decode_as(stream, monkeypatch, True)
    assert kind_s == kind_v, (scalar, vector)
    if kind_s == "ok":
        assert same_values(scalar, vector)
    else:
        assert scalar == vector


@pytest.mark.parametrize("k", [1, 3, 5, 14, 15])
@pytest.mark.parametrize("n, seed, step", [(1, 0, 0.5), (7, 1, 0.01), (4096, 2, 0.002),
                                           (20_000, 3, 0.05)])  # fmt: skip
def test_same_values_and_bytes(k, n, seed, step):
    x = laplace(n, seed)
    x[::97] *= 300.0  # isolated large codes: high parts with extra bits
    base = rd.default_params(step=step)
    want, _ = rd.decode(rd.encode(x, base))
    stream = rd.encode(x, dict(base, low_bits=k))
    assert stream[group_byte_at(stream)] == k << 4
    got, acc = rd.decode(stream)
    assert got.tobytes() == want.tobytes()
    assert acc.total == len(stream) and acc.info["low_bits"] == k
    assert native(x, dict(base, low_bits=k)) == stream
    assert slicer.decode(stream).tobytes() == want.tobytes()
    info = slicer.inspect(stream)
    assert info.low_bits == k and "low-bit plane" in str(info)


def test_split_is_floor_with_sign_in_the_high_part():
    q = np.array([0, 1, 31, 32, -1, -32, -33, 2**53, -(2**53)], dtype=np.int64)
    m, neg = np.abs(q), q < 0
    sym, nbits, extra, low = rd.split_low_bits(m, neg, 5)
    h = q >> 5
    assert np.array_equal(h * 32 + low, q) and np.all((low >= 0) & (low < 32))
    assert h.tolist() == [0, 0, 0, 1, -1, -1, -2, 2**48, -(2**48)]
    assert sym[0] == 0 and sym[4] == 2  # h = −1: the negative symbol of bin 1


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(0, 3000),
    seed=st.integers(0, 2**16),
    log_step=st.floats(-8, 2),
    low=st.sampled_from([0, 1, 2, 4, 6, 9, 15, "auto"]),
    kind=st.sampled_from([0, 4, "auto"]),
    dtype=st.sampled_from([np.float32, np.float16, np.float64]),
    chunk_log2=st.sampled_from([6, 8, 14]),
)
def test_cpp_bytes_equal_reference(n, seed, log_step, low, kind, dtype, chunk_log2):
    x = laplace(n, seed).astype(dtype)
    params = rd.default_params(step=2.0**log_step, chunk_log2=chunk_log2, low_bits=low,
                               table_kind=kind)  # fmt: skip
    stream = rd.encode(x, params)
    assert native(x, params) == stream
    assert slicer.decode(stream).tobytes() == rd.decode(stream)[0].tobytes()


@settings(max_examples=15, deadline=None)
@given(rows=st.integers(1, 12), cols=st.integers(1, 90), seed=st.integers(0, 2**16),
       low=st.sampled_from([3, 7, "auto"]))  # fmt: skip
def test_cpp_bytes_equal_reference_with_groups(rows, cols, seed, low):
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal((rows, cols)) * 300).astype(np.float32)
    table = rng.choice([0, 0x80, 0x81, 5, 0xF0], rows).tolist()
    params = rd.default_params(step=0.2, layout=1, group_table=table, chunk_log2=6,
                               low_bits=low)  # fmt: skip
    stream = rd.encode(x, params)
    assert native(x, params) == stream
    assert slicer.decode(stream).tobytes() == rd.decode(stream)[0].tobytes()


SIMD_CASES = {
    # name: (shape, dtype, step, low_bits, group table (rows) or None)
    "eight_chunks_and_a_tail_k5": ((8 * 8192 + 77,), np.float32, 0.004, 5, None),
    "six_chunks_k3": ((6 * 8192,), np.float32, 0.02, 3, None),
    "three_chunks_k14": ((3 * 8192 + 5,), np.float32, 1e-6, 14, None),
    "four_chunks_k15_scalar": ((4 * 8192,), np.float32, 1e-6, 15, None),
    "float64_k6": ((4 * 8192 + 3,), np.float64, 0.001, 6, None),
    "float16_k2": ((4 * 8192,), np.float16, 0.05, 2, None),
    "rows_with_groups_k4": ((150, 576), np.float32, 0.01, 4, "mixed"),
}


@pytest.mark.parametrize("name", sorted(SIMD_CASES))
def test_simd_decoder_equals_scalar_and_reference(name, monkeypatch):
    shape, dtype, step, k, groups = SIMD_CASES[name]
    rng = np.random.default_rng(len(name))
    x = rng.standard_normal(shape) * rng.choice([1.0, 1.0, 1.0, 40.0], shape)
    x.reshape(-1)[::1001] *= 1e4 if dtype != np.float16 else 1e2  # rare large codes in h
    x = x.astype(dtype)
    params = rd.default_params(step=step, chunk_log2=CHUNK_LOG2, low_bits=k)
    if groups:
        table = [(0, 0x80, 3, 0x81, 0xFC)[r % 5] for r in range(shape[0])]
        params = dict(params, layout=1, group_table=table)
    stream = rd.encode(x, params)
    assert native(x, params) == stream
    want = rd.decode(stream)[0]
    for simd in (False, True):
        kind, got = decode_as(stream, monkeypatch, simd)
        assert kind == "ok" and same_values(got, want), simd
    # damaged payloads: the same verdict and values on both paths, and the reference's verdict
    acc = rd.decode(stream)[1]
    payload = len(stream) - 4 - acc.rans - acc.extra_bits
    drng = np.random.default_rng(5)
    for _ in range(12):
        at = int(drng.integers(payload, len(stream) - 4))
        bad = bytearray(stream)
        bad[at] ^= 1 << int(drng.integers(0, 8))
        same_decoders(reseal(bytes(bad)), monkeypatch)


def test_auto_rule():
    # 8 b/el-like codes: k = 5 (16·c_5 ≤ 9·n at k = 5, not at 6); 2 b/el-like: k = 0
    wide = np.random.default_rng(1).laplace(0, 60.0, 50_000).round().astype(np.int64)
    sym = rd.symbols_of(np.abs(wide), wide < 0)[0]
    k = rd.auto_low_bits(sym)
    m = np.abs(wide)
    assert 16 * np.count_nonzero(m < 2**k) <= 9 * m.size < 16 * np.count_nonzero(m < 2 ** (k + 1))
    narrow = np.random.default_rng(1).laplace(0, 1.0, 50_000).round().astype(np.int64)
    assert rd.auto_low_bits(rd.symbols_of(np.abs(narrow), narrow < 0)[0]) == 0
    assert rd.auto_low_bits(np.zeros(0, dtype=np.int64)) == 0
    for seed, step, want in [(2, 0.004, None), (3, 1.0, 0)]:
        x = laplace(20_000, seed)
        params = rd.default_params(step=step, low_bits="auto")
        stream = rd.encode(x, params)
        assert native(x, params) == stream
        got = rd.decode(stream)[1].info["low_bits"]
        assert got == (want if want is not None else got) and (want == 0 or got >= 3)


def test_zero_is_todays_stream():
    x = laplace(5000, 4)
    base = rd.default_params(step=0.1)
    assert rd.encode(x, dict(base, low_bits=0)) == rd.encode(x, base)
    assert slicer.encode(x, mode="dense", step=0.1, rho=0.5, low_bits=0) == rd.encode(x, base)


def test_largest_codes_and_beyond():
    x = np.array([2.0**53, -(2.0**53), 3.0, -1.0, 0.0], dtype=np.float64)
    for k in (1, 5, 15):
        params = rd.default_params(step=1.0, low_bits=k)
        stream = rd.encode(x, params)
        assert native(x, params) == stream
        assert slicer.decode(stream).tobytes() == rd.decode(stream)[0].tobytes() == x.tobytes()
    # |q| > 2^53 from a valid-looking h: h = 2^48 + 1 (k = 5), and h = 2^48 with l = 1
    for patch in ("extra", "low"):
        p = rd.plan(x[:1], rd.default_params(step=1.0, low_bits=5))
        if patch == "extra":
            p.extra[0] += 1
        else:
            p.low[0] += 1
        bad = rd.assemble(p)
        with pytest.raises(rd.ReferenceFormatError, match="2\\^53"):
            rd.decode(bad)
        with pytest.raises(slicer.FormatError):
            slicer.decode(bad)


def test_hostile_streams():
    x = laplace(3000, 6, 40.0)
    stream = rd.encode(x, rd.default_params(step=0.05, low_bits=5, chunk_log2=10))
    at = group_byte_at(stream)
    # any k on the same payload (k = 0 … 15), table kinds, reserved kinds: the reference's verdict
    for byte in [k << 4 for k in range(16)] + [0x5A, 0x5B, 0x5F, 0xFF, 0x58]:
        assert_reference_verdict(reseal(stream[:at] + bytes([byte]) + stream[at + 1 :]))
    # a bit area shorter than its plane: the chunk table's bits_len lowered (payload regrown)
    acc = rd.decode(stream)[1]
    assert_reference_verdict(reseal(stream[: acc.total - 5] + stream[-4:]))
    rng = np.random.default_rng(7)
    for _ in range(150):  # single-byte damage anywhere after the magic
        bad = bytearray(stream)
        bad[int(rng.integers(5, len(stream) - 4))] ^= int(rng.integers(1, 256))
        assert_reference_verdict(reseal(bytes(bad)))


def test_class_tables_have_no_plane():
    x = laplace(64 * 40, 8).reshape(40, 64)
    stream, at = class_stream_group_byte(x, step=0.5, classes=4)
    assert stream[at] == 0
    bad = reseal(stream[:at] + bytes([0x30]) + stream[at + 1 :])
    with pytest.raises(rd.ReferenceFormatError, match="class tables"):
        rd.decode(bad)
    with pytest.raises(slicer.FormatError):
        slicer.decode(bad)
    with pytest.raises(ValueError, match="low_bits"):
        rd.encode(x, rd.default_params(step=0.5, classes=4, low_bits=3))
    plain = rd.encode(x, rd.default_params(step=0.5, classes=4))
    assert rd.encode(x, rd.default_params(step=0.5, classes=4, low_bits="auto")) == plain
    assert slicer.encode(x, mode="dense", step=0.5, rho=0.5, classes=4, low_bits="auto") == plain


def test_api_arguments():
    check_mode1_option("low_bits", (16,), 4)


@pytest.mark.parametrize("mode, budget", [("auto", {"rel_error": 0.003}),
                                          ("auto", {"max_bytes": 9000}),
                                          ("dense", {"rel_error": 0.002}),
                                          ("dense", {"max_bytes": 8200})])  # fmt: skip
def test_search_then_low_bits(mode, budget):
    """The search runs without the plane; its stream is re-encoded with it: the same values;
    with max_bytes "auto" keeps the budget (the plane dropped where it would not fit)."""
    x = laplace(8192, 11, 30.0)
    plain = slicer.encode(x, mode=mode, classes=1, **budget)
    low = slicer.encode(x, mode=mode, classes=1, low_bits="auto", **budget)
    assert "max_bytes" not in budget or len(low) <= budget["max_bytes"]
    assert slicer.decode(low).tobytes() == slicer.decode(plain).tobytes()
    if "rel_error" in budget:
        assert slicer.inspect(low).low_bits >= 3
        fixed = slicer.encode(x, mode=mode, classes=1, low_bits=4, **budget)
        assert slicer.inspect(fixed).low_bits == 4
        assert slicer.decode(fixed).tobytes() == slicer.decode(plain).tobytes()


def test_budget_kept_when_the_plane_does_not_fit(monkeypatch):
    """A budget that the search's stream meets exactly: "auto" drops the plane rather than
    pass it (the search itself, whose steps rarely land there, replaced by one fixed step)."""
    import slicer._api as api
    from slicer import _rate

    x = laplace(8192, 12, 30.0)
    step = 1.0  # k = 4 here costs 10 bytes (at finer steps the plane may save a few)
    plain = slicer.encode(x, mode="dense", step=step, rho=0.5)
    with_plane = slicer.encode(x, mode="dense", step=step, rho=0.5, low_bits="auto")
    assert slicer.inspect(with_plane).low_bits >= 3 and len(with_plane) > len(plain)
    monkeypatch.setattr(_rate, "NATIVE_DRIVER", False)  # the Python driver, replaced below
    monkeypatch.setattr(api, "dense_for_budget",
                        lambda array, params, limit, encoder, auto, model_input=None:
                        encoder(array, dict(params, step=step)))  # fmt: skip
    assert slicer.encode(x, mode="dense", max_bytes=len(plain), low_bits="auto") == plain
    got = slicer.encode(x, mode="dense", max_bytes=len(with_plane), low_bits="auto")
    assert got == with_plane


@pytest.mark.parametrize("step", [3 * 2.0**-126, 0.0031415926, 7.77])
@pytest.mark.parametrize("k", [3, 9, 14])
def test_simd_float32_products(step, k, monkeypatch):
    """float32 without a group table: the paired decoder takes ±(m + o/256)·Δ in binary32 (exact
    as binary64, one rounding); against the scalar decoder and the reference at steps whose
    products are subnormal, odd and large, with fixed offsets of every sign."""
    rng = np.random.default_rng(k)
    x = (rng.standard_normal(2 * 8192 + 100) * step * 2.0 ** (k + 2)).astype(np.float32)
    for offsets in [(-128, 127), (37, -5), None]:
        params = rd.default_params(step=step, chunk_log2=CHUNK_LOG2, low_bits=k, offsets=offsets)
        stream = rd.encode(x, params)
        assert native(x, params) == stream
        want = rd.decode(stream)[0]
        for simd in (False, True):
            kind, got = decode_as(stream, monkeypatch, simd)
            assert kind == "ok" and same_values(got, want), (simd, offsets)
