"""Mode 2 with range boundaries (docs/format.md §18.4: K − 1 boundaries as varint gaps, bit 2 of
class_axis): the C++ backend against the NumPy reference, hostile boundary bytes, the Python
API's `class_map="bounds"` / `class_bounds=`, classes="auto" estimating boundaries, the size
bound."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import reference_classes as rc
import reference_dense as rd
import slicer
from dense_tools import assert_reference_verdict, native, with_crc
from slicer._errors import CORRUPT, TRUNCATED
from test_dense_class_ranges import klt_like
from test_dense_classes import _params_offset, _reject_both, checked, spread

DTYPES = [np.float32, np.float16, ml_dtypes.bfloat16, np.float64]


def check(x: np.ndarray, params: dict) -> bytes:
    """C++ bytes == reference bytes; both decoders give the reference values; the map is the
    boundaries' varint gaps (test_dense_classes.checked does the rest)."""
    stream, info, acc = checked(x, params)
    a = info.account
    assert info.classes == params["classes"] and info.class_map == "bounds"
    assert info.class_bounds == list(params["class_bounds"]) == acc.info["class_bounds"]
    assert a.class_map == acc.class_map == len(rc.pack_bounds(params["class_bounds"]))
    assert list(a.class_tables) == acc.class_tables
    p = _params_offset(stream) if x.ndim == 2 else None
    if p is not None:
        assert stream[p + 9] == params["class_axis"] | 4
    return stream


def random_bounds(rng: np.random.Generator, length: int, k: int) -> list[int]:
    return sorted(int(v) for v in rng.choice(np.arange(1, length), size=k - 1, replace=False))


def test_bounds_rule_and_bytes():
    """class(a) = #{j : b_j <= a}; the gaps round-trip through the reference reader; bad
    boundaries are refused."""
    rng = np.random.default_rng(0)
    for length in list(range(2, 40)) + [127, 128, 129, 16384, 20000]:
        for k in {2, min(16, length), int(rng.integers(2, min(16, length) + 1))}:
            b = random_bounds(rng, length, k)
            c = rc.bounds_classes(b, length)
            assert c == [sum(bj <= a for bj in b) for a in range(length)]
            assert c == sorted(c) and set(c) == set(range(k))
            data = rc.pack_bounds(b)
            r = rd.ByteReader(data, len(data))
            assert rc.read_bounds(r, length, k) == b and r.pos == len(data)
            # §19.5: K − 1 varints never take more than ceil(L/2) + K − 1 bytes
            assert len(data) <= (length + 1) // 2 + k - 1
    for bad in ([0, 3], [3, 3], [4, 2], [2, 9], [1]):
        with pytest.raises(ValueError):
            rc.check_bounds(bad, 9, 3)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    "shape,k,axis",
    [((1, 2), 2, 0), ((7, 3), 3, 0), ((5, 999), 16, 0), ((33, 31), 7, 0), ((2, 12, 5, 5), 5, 1),
     ((3, 5, 7), 5, 1), ((4, 17), 16, 1), ((6, 2, 1), 2, 1), ((36, 384), 8, 0),
     ((2, 300), 4, 0)],
)  # fmt: skip
def test_native_matches_reference(shape, k, axis, dtype):
    rng = np.random.default_rng(sum(shape) * 19 + k)
    x = spread(rng, shape, axis, dtype)
    length = shape[-1] if axis == 0 else shape[1]
    for step, rho in ((0.05, 128), (0.9, 70)):
        b = random_bounds(rng, length, k)
        check(x, rd.default_params(step=step, rho_256=rho, classes=k, class_axis=axis,
                                   class_map="bounds", class_bounds=b, chunk_log2=6))  # fmt: skip


@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_native_matches_reference_property(data):
    rows = data.draw(st.integers(0, 5))
    length = data.draw(st.integers(2, 300))
    k = data.draw(st.integers(2, min(16, length)))
    b = sorted(data.draw(st.sets(st.integers(1, length - 1), min_size=k - 1, max_size=k - 1)))
    seed = data.draw(st.integers(0, 2**32 - 1))
    x = spread(np.random.default_rng(seed), (rows, length), 0, np.float32)
    step = data.draw(st.sampled_from([0.01, 0.3, 4.0]))
    check(x, rd.default_params(step=step, classes=k, class_map="bounds", class_bounds=b,
                               chunk_log2=6))  # fmt: skip


def test_equal_to_ranges_stream_plus_gaps():
    """Boundaries at §18.3's index ranges give §18.3's classes: the boundary stream is the
    range stream with bit 2 instead of bit 1 and the gaps inserted where the map would be."""
    x = klt_like(36, 384)
    k = 8
    b = [j * 384 // k for j in range(1, k)]
    assert rc.bounds_classes(b, 384) == rc.range_classes(384, k)
    base = rd.default_params(step=0.05, classes=k, class_map="ranges")
    ranges = rd.encode(x, base)
    bounds = check(x, dict(base, class_map="bounds", class_bounds=b))
    _, acc = rd.decode(ranges)
    m = acc.header + acc.group_table
    expect = bytearray(ranges[:m] + rc.pack_bounds(b) + ranges[m:-4])
    expect[_params_offset(ranges) + 9] ^= 2 | 4
    assert bounds == with_crc(bytes(expect))
    assert len(bounds) - len(ranges) == k - 1  # gaps of 48 < 128: one byte each


# ----------------------------------------------------------------------------- hostile streams


def _bounds_stream(b=(3, 7, 20), length=21) -> tuple[bytes, int]:
    x = spread(np.random.default_rng(3), (6, length), 0, np.float32)
    params = rd.default_params(step=0.1, classes=len(b) + 1, chunk_log2=6, class_map="bounds",
                               class_bounds=list(b))  # fmt: skip
    stream = rd.encode(x, params)
    _, acc = rd.decode(stream)
    return stream, acc.header + acc.group_table  # the gaps start here


def _gapped(stream: bytes, at: int, old: int, gaps: bytes) -> bytes:
    """`stream` with its `old` gap bytes at `at` replaced by `gaps`, CRC repaired."""
    return with_crc(stream[:at] + gaps + stream[at + old : -4])


def test_hostile_gaps():
    stream, at = _bounds_stream()
    old = 3  # gaps 3, 4, 13
    assert stream[at : at + old] == bytes([3, 4, 13])
    for gaps in (
        bytes([0, 4, 13]),  # gap 0
        bytes([3, 0, 13]),
        bytes([3, 4, 14]),  # last boundary = L
        bytes([3, 4, 15]),  # past L
        bytes([20, 1, 1]),
        bytes([0x83, 0x00, 4, 13]),  # non-minimal varint 3
        bytes([3, 4, 0x8D, 0x00]),
        bytes([3, 4, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01]),  # 2^64 - 1
        bytes([3, 4, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01]),
    ):
        bad = _gapped(stream, at, old, gaps)
        _reject_both(bad)
        assert assert_reference_verdict(bad) is False
    # valid gaps that move the boundaries: the tables then code other elements; both decoders
    # reach the same verdict
    for gaps in (bytes([1, 1, 1]), bytes([3, 5, 12]), bytes([2, 4, 13])):
        assert_reference_verdict(_gapped(stream, at, old, gaps))
    assert assert_reference_verdict(_gapped(stream, at, old, bytes([19, 1, 0]))) is False


def test_every_truncation():
    """The stream cut anywhere: both decoders reject, TRUNCATED when the cut is in the gaps
    (the body ends inside a varint) with the CRC recomputed over what is left."""
    stream, at = _bounds_stream((3, 200, 300), 400)
    for cut in range(len(stream) - 1, 0, -1):
        with pytest.raises(slicer.FormatError):
            slicer.decode(stream[:cut])
    for end in range(at, at + 4):  # gaps 3, 197 (2 bytes), 100
        bad = with_crc(stream[:end])
        with pytest.raises(rd.ReferenceFormatError, match="truncated"):
            rd.decode(bad)
        with pytest.raises(slicer.FormatError) as err:
            slicer.decode(bad)
        assert err.value.status == TRUNCATED


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_hostile_bytes_same_verdict(data):
    body = bytearray(_bounds_stream()[0][:-4])
    at = data.draw(st.integers(0, len(body) - 1))
    body[at] = data.draw(st.integers(0, 255))
    assert_reference_verdict(with_crc(bytes(body)))


def test_hostile_parameters_and_previous_revision():
    """Bits 1 and 2 together and bits 3–7 are corrupt; the revision before §18.4 rejected a
    set bit 2 as CORRUPT, which is what this revision does with bits 3–7."""
    stream, _ = _bounds_stream()
    body = bytes(stream[:-4])
    p = _params_offset(stream)
    for value in (6, 7, 8, 12, 0x84, 0xFC):
        bad = bytearray(body)
        bad[p + 9] = value
        _reject_both(with_crc(bytes(bad)))
        with pytest.raises(slicer.FormatError) as err:
            slicer.decode(with_crc(bytes(bad)))
        assert err.value.status == CORRUPT
    for flip in (4, 4 | 2):  # read as the rank map / index ranges: same verdict
        bad = bytearray(body)
        bad[p + 9] ^= flip
        assert_reference_verdict(with_crc(bytes(bad)))


# ----------------------------------------------------------------------------- Python API


def test_api_bounds():
    x = klt_like()
    b = [10, 30, 60, 100, 150, 220, 300]
    s = slicer.encode(x, mode="dense", step=0.05, classes=8, class_map="bounds", class_bounds=b)
    assert s == rd.encode(x, rd.default_params(step=0.05, classes=8, class_map="bounds",
                                               class_bounds=b))  # fmt: skip
    assert s == slicer.encode(x, mode="dense", step=0.05, class_bounds=b)  # K from the bounds
    assert s == slicer.encode(x, mode="dense", step=0.05, class_map="bounds",
                              class_bounds=np.array(b))  # fmt: skip
    info = slicer.inspect(s)
    assert info.class_map == "bounds" and info.class_bounds == b and info.account.class_map == 7
    assert "bounds map at [10, 30" in str(info)
    assert len(s) <= slicer.size_bound(x.shape, np.float32, mode="dense", classes=8,
                                       class_map="bounds", class_bounds=b)  # fmt: skip


def test_api_bounds_errors():
    x = klt_like(4, 16)
    kw = dict(mode="dense", step=0.1)
    for bad in (3, "3,5", b"\x03", [1.5, 3], [True, 3]):
        with pytest.raises(TypeError, match="class_bounds"):
            slicer.encode(x, class_bounds=bad, **kw)
    for bad in ([], [0, 3], [3, 3], [5, 2], list(range(1, 17))):
        with pytest.raises(ValueError, match="class_bounds"):
            slicer.encode(x, class_bounds=bad, **kw)
    with pytest.raises(ValueError, match="class_bounds"):
        slicer.encode(x, classes=4, class_bounds=[3, 5], **kw)  # K − 1 = 3 needed
    with pytest.raises(ValueError, match="class_bounds"):
        slicer.encode(x, class_bounds=[3, 16], **kw)  # L = 16: boundaries < 16
    with pytest.raises(ValueError, match="class_bounds"):
        slicer.encode(x, classes=4, class_map="bounds", **kw)  # none given
    with pytest.raises(ValueError, match="class_bounds"):
        slicer.encode(x, class_map="ranges", class_bounds=[3], **kw)
    with pytest.raises(ValueError, match="class_bounds"):
        slicer.encode(x, classes="auto", class_bounds=[3], **kw)
    with pytest.raises(ValueError, match="class_bounds"):
        slicer.encode(x, class_bounds=[3])  # mode topk
    with pytest.raises(ValueError, match="class_map"):
        slicer.encode(x, class_map="bound", **kw)


def test_binding_refuses_bounds_kind_without_bounds():
    """The native encoder's parameter dict: the bounds kind without boundaries is a clear
    ValueError, not a KeyError from the binding."""
    x = klt_like(4, 16)
    p = rd.default_params(step=0.1, classes=4, class_map="bounds", class_bounds=[3, 7, 11])
    assert native(x, p) == rd.encode(x, p)
    del p["class_bounds"]
    with pytest.raises(ValueError, match="class_bounds"):
        native(x, p)


def test_auto_estimates_bounds():
    """classes="auto" estimates boundaries on the coarse grid and keeps the cheapest kind;
    deterministic; the chosen stream is never larger than the size bound."""
    rng = np.random.default_rng(7)
    # two flat blocks of spread with a step at position 100 of 384: equal ranges cut badly
    scale = np.where(np.arange(384) < 100, 5.0, 0.05)
    x = (rng.standard_normal((64, 384)) * scale).astype(np.float32)
    s = slicer.encode(x, mode="dense", step=0.05, classes="auto")
    info = slicer.inspect(s)
    assert info.class_map == "bounds" and all(b % 6 == 0 for b in info.class_bounds)  # g = 6
    assert s == slicer.encode(x, mode="dense", step=0.05, classes="auto")
    r = slicer.encode(x, mode="dense", step=0.05, classes="auto", class_map="ranges")
    k = slicer.encode(x, mode="dense", step=0.05, classes="auto", class_map="rank")
    assert len(s) < len(r) and len(s) < len(k)
    only = slicer.encode(x, mode="dense", step=0.05, classes="auto", class_map="bounds")
    assert slicer.inspect(only).class_map == "bounds"
    for tiny in (np.zeros((0, 8), np.float32), np.ones((2, 3), np.float32)):  # K = 1 chosen
        for mode, kw in (("dense", {"step": 0.1}), ("auto", {"max_bytes": 100})):
            s1 = slicer.encode(tiny, mode=mode, classes="auto", class_map="bounds", **kw)
            assert slicer.inspect(s1).classes == 1
            np.testing.assert_allclose(slicer.decode(s1), tiny, atol=0.1)
    for cm in (None, "bounds"):
        assert len(s) <= slicer.size_bound(x.shape, np.float32, mode="dense", classes="auto",
                                           class_map=cm)  # fmt: skip


@pytest.mark.parametrize("shape", [(1000,), (36, 384), (3, 20, 5), (2, 17), (4, 4)])
def test_size_bound_holds_for_bounds(shape):
    rng = np.random.default_rng(5)
    x = rng.standard_normal(shape).astype(np.float32)
    x.reshape(-1)[:2] = [6e4, -5e4]
    bound = slicer.size_bound(shape, np.float32, mode="auto", chunk_size=64)
    length = shape[-1]
    for step in (1e-3, 0.5):
        for k in (2, min(16, length)):
            b = random_bounds(rng, length, k)
            s = slicer.encode(x, mode="dense", step=step, class_bounds=b, chunk_size=64)
            assert len(s) <= slicer.size_bound(shape, np.float32, mode="dense", classes=k,
                                               class_map="bounds", class_bounds=b,
                                               chunk_size=64)  # fmt: skip
        s = slicer.encode(x, mode="dense", step=step, classes="auto", chunk_size=64)
        assert len(s) <= bound


def test_split_codec_params_pass_class_bounds():
    from slicer.split.transport import CodecParams

    b = [40, 100, 200]
    c = CodecParams(mode="dense", step=0.05, classes=4, class_map="bounds", class_bounds=b)
    c.validate()
    assert c.kwargs()["class_bounds"] == b and c.to_json()["class_bounds"] == b
    assert slicer.inspect(slicer.encode(klt_like(), **c.kwargs())).class_bounds == b
    with pytest.raises(ValueError, match="class_bounds"):
        CodecParams(class_bounds=b).validate()  # topk
    with pytest.raises(TypeError, match="class_bounds"):
        CodecParams(mode="dense", step=0.1, class_bounds="40").validate()


@pytest.mark.parametrize("kind", ["ranges", "bounds"])
def test_empty_stream_with_a_huge_class_axis_allocates_nothing(kind):
    """N = 0 with L = 2^40 on the class axis is a valid index-kind stream: the decoders check
    its map without placing 2^40 classes (found by fuzz_dense: a 2^51-byte allocation)."""
    extra = {"class_bounds": [3, 7, 11]} if kind == "bounds" else {}
    small = rd.encode(
        np.zeros((0, 16), np.float32),
        rd.default_params(step=0.1, classes=4, class_map=kind, **extra),
    )
    dim = bytes([0x80] * 5 + [0x20])  # varint 2^40 instead of 16
    at = small.index(b"\x02\x00\x10") + 2  # ndim 2, dims (0, 16)
    huge = with_crc(small[:at] + dim + small[at + 1 : -4])
    # (the NumPy reference places every position's class: not asked here)
    got = slicer.decode(huge)
    assert got.shape == (0, 1 << 40) and got.dtype == np.float32
    info = slicer.inspect(huge)
    assert info.class_map == kind
    if kind == "bounds":
        assert info.class_bounds == [3, 7, 11]
    # the rank map of such a stream needs its 2^39 bytes: truncated, not an allocation
    rank = bytearray(huge)
    axis_at = at + len(dim) + 12  # after the dims: u8, mode, params_len, 9 bytes of mode 1
    assert rank[axis_at] == (2 if kind == "ranges" else 4)
    rank[axis_at] = 0x00  # class_axis: the rank map
    with pytest.raises(slicer.FormatError, match="truncated"):
        slicer.decode(with_crc(bytes(rank[:-4])))
