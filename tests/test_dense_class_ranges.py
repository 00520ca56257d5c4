"""Mode 2 with index ranges (docs/format.md §18.3: class of position a = a·K div L, no map
bytes, bit 1 of class_axis): the C++ backend against the NumPy reference, hostile parameters,
the Python API's `class_map=`, classes="auto" choosing between the two kinds, the size bound."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import reference_classes as rc
import reference_dense as rd
import slicer
from dense_tools import assert_reference_verdict, with_crc
from slicer._errors import CORRUPT
from test_dense_classes import _params_offset, _reject_both, checked, spread

DTYPES = [np.float32, np.float16, ml_dtypes.bfloat16, np.float64]


def check(x: np.ndarray, params: dict) -> bytes:
    """test_dense_classes.checked (C++ = reference bytes and values); no map bytes."""
    stream, info, acc = checked(x, params)
    a = info.account
    assert info.classes == params["classes"] and info.class_map == "ranges"
    assert a.class_map == acc.class_map == 0 and list(a.class_tables) == acc.class_tables
    assert acc.info["class_map"] == "ranges"
    p = _params_offset(stream) if x.ndim == 2 else None
    if p is not None:
        assert stream[p + 9] == params["class_axis"] | 2
    return stream


def test_range_classes_rule():
    """floor(a·K/L): contiguous, every class used, sizes floor(L/K) or ceil(L/K)."""
    for length in range(2, 70):
        for k in range(2, min(16, length) + 1):
            c = rc.range_classes(length, k)
            assert c == [a * k // length for a in range(length)]
            assert c == sorted(c) and set(c) == set(range(k))
            sizes = np.bincount(c)
            assert sizes.min() >= length // k and sizes.max() <= -(-length // k)
    with pytest.raises(rd.ReferenceFormatError):
        rc.range_classes(3, 4)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    "shape,k,axis",
    [((1, 2), 2, 0), ((7, 3), 3, 0), ((5, 999), 16, 0), ((33, 31), 7, 0), ((2, 12, 5, 5), 5, 1),
     ((3, 5, 7), 5, 1), ((4, 17), 16, 1), ((6, 2, 1), 2, 1), ((36, 384), 8, 0)],
)  # fmt: skip
def test_native_matches_reference(shape, k, axis, dtype):
    rng = np.random.default_rng(sum(shape) * 17 + k)
    x = spread(rng, shape, axis, dtype)
    for step, rho in ((0.05, 128), (0.9, 70)):
        check(x, rd.default_params(step=step, rho_256=rho, classes=k, class_axis=axis,
                                   class_map="ranges", chunk_log2=6))  # fmt: skip


def test_interleaved_states_groups_and_empty_class():
    rng = np.random.default_rng(78)
    check(spread(rng, (48, 200), 0, np.float32),
          rd.default_params(step=0.02, classes=16, chunk_log2=13, class_map="ranges"))  # fmt: skip
    x = spread(rng, (2, 12, 3, 3), 1, np.float32)
    # channels 0..2 are zero groups: range class 0 (channels 0, 1, 2) codes nothing
    table = [0x80, 0x80, 0x80, 0, 0x81, 5, 0, 0xF8, 0, 1, 2, 3]
    params = rd.default_params(step=0.05, layout=2, group_table=table, classes=4, class_axis=1,
                               class_map="ranges", chunk_log2=6)  # fmt: skip
    stream = check(x, params)
    assert rd.decode(stream)[1].class_tables[0] == 1  # its table is the varint 0
    empty = np.zeros((0, 5), dtype=np.float32)
    check(empty, rd.default_params(step=0.5, classes=3, class_map="ranges"))


def test_equal_to_rank_stream_without_its_map():
    """When §18.2's rank map is the index ranges (position scales increase with the index),
    the range stream is the rank stream with bit 1 of class_axis set and the map removed."""
    rng = np.random.default_rng(12)
    x = (rng.standard_normal((64, 40)) * np.geomspace(0.01, 100.0, 40)).astype(np.float32)
    base = rd.default_params(step=0.01, classes=8)
    p = rd.plan(x, base)
    assert p.class_map == rc.range_classes(40, 8)  # the data makes the two maps agree
    rank = rd.encode(x, base)
    ranges = check(x, dict(base, class_map="ranges"))
    at = _params_offset(rank)
    _, acc = rd.decode(rank)
    m = acc.header + acc.group_table
    expect = bytearray(rank[:m] + rank[m + 20 : -4])
    expect[at + 9] |= 2
    assert ranges == with_crc(bytes(expect))
    assert len(rank) - len(ranges) == 20


# ----------------------------------------------------------------------------- hostile streams


def _range_stream() -> bytes:
    x = spread(np.random.default_rng(3), (6, 21), 0, np.float32)
    return rd.encode(x, rd.default_params(step=0.1, classes=4, chunk_log2=6, class_map="ranges"))


def test_hostile_parameters():
    stream = _range_stream()
    body = bytes(stream[:-4])
    p = _params_offset(stream)
    for at, value in ((p + 9, 6), (p + 9, 0x82), (p + 9, 0xFE), (p + 10, 1), (p + 10, 17),
                      (p + 10, 22)):  # fmt: skip
        bad = bytearray(body)
        bad[at] = value
        _reject_both(with_crc(bytes(bad)))
    # axis 1 of a (6, 21) shape: L = 6 >= K, so the parameters are valid; the body then
    # decodes or fails the same way on both sides
    bad = bytearray(body)
    bad[p + 9] = 3
    assert_reference_verdict(with_crc(bytes(bad)))


def test_rank_map_bytes_read_as_ranges_and_back():
    """Flipping bit 1 of class_axis on either kind: the body is read with the other layout;
    both decoders agree (never a crash), and a truncated range stream is rejected."""
    x = spread(np.random.default_rng(4), (6, 21), 0, np.float32)
    params = rd.default_params(step=0.1, classes=4, chunk_log2=6)
    for stream in (rd.encode(x, params), rd.encode(x, dict(params, class_map="ranges"))):
        p = _params_offset(stream)
        bad = bytearray(stream[:-4])
        bad[p + 9] ^= 2
        assert_reference_verdict(with_crc(bytes(bad)))
    stream = _range_stream()
    for cut in (1, 5, 20):
        with pytest.raises(slicer.FormatError):
            slicer.decode(stream[:-cut])


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_hostile_bytes_same_verdict(data):
    body = bytearray(_range_stream()[:-4])
    at = data.draw(st.integers(0, len(body) - 1))
    body[at] = data.draw(st.integers(0, 255))
    assert_reference_verdict(with_crc(bytes(body)))


def test_previous_revision_rejects_as_corrupt():
    """A decoder of the revision before index ranges read class_axis 2 as an unknown axis:
    what it did with every class_axis above 1, CORRUPT, is what this revision does with bits
    3–7 (pinned here so the two revisions' verdicts cannot drift; bit 2 is §18.4's now)."""
    stream = _range_stream()
    bad = bytearray(stream[:-4])
    bad[_params_offset(stream) + 9] = 8
    with pytest.raises(slicer.FormatError) as err:
        slicer.decode(with_crc(bytes(bad)))
    assert err.value.status == CORRUPT


# ----------------------------------------------------------------------------- Python API


def klt_like(rows: int = 36, cols: int = 384, seed: int = 0) -> np.ndarray:
    """Coefficients whose spread falls with the index (as KLT components sorted by variance)."""
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((rows, cols)) * np.geomspace(6.0, 0.02, cols)).astype(np.float32)


def test_api_class_map():
    x = klt_like()
    rank = slicer.encode(x, mode="dense", step=0.05, classes=8)
    assert rank == slicer.encode(x, mode="dense", step=0.05, classes=8, class_map="rank")
    assert rank == rd.encode(x, rd.default_params(step=0.05, classes=8))  # the default
    ranges = slicer.encode(x, mode="dense", step=0.05, classes=8, class_map="ranges")
    assert ranges == rd.encode(x, rd.default_params(step=0.05, classes=8, class_map="ranges"))
    info = slicer.inspect(ranges)
    assert info.class_map == "ranges" and info.account.class_map == 0
    assert slicer.inspect(rank).class_map == "rank" and slicer.inspect(rank).account.class_map
    assert "ranges map" in str(info)
    assert slicer.inspect(slicer.encode(x, mode="dense", step=0.05)).class_map is None
    np.testing.assert_array_equal(slicer.decode(rank), slicer.decode(ranges))
    assert len(ranges) < len(rank)  # the 192 map bytes, for a tiny loss in the codes


def test_api_class_map_errors():
    x = klt_like(4, 16)
    for bad in (1, b"rank", ["ranges"]):
        with pytest.raises(TypeError, match="class_map"):
            slicer.encode(x, mode="dense", step=0.1, classes=4, class_map=bad)
    for bad in ("Rank", "range", ""):
        with pytest.raises(ValueError, match="class_map"):
            slicer.encode(x, mode="dense", step=0.1, classes=4, class_map=bad)
    with pytest.raises(ValueError, match="class_map"):
        slicer.encode(x, class_map="ranges")  # mode topk
    with pytest.raises(ValueError, match="class_map"):
        slicer.size_bound((4, 16), "float32", class_map="ranges")


def test_auto_chooses_the_cheaper_kind():
    """classes="auto" estimates both kinds: sorted spreads (KLT-like) take index ranges; the
    same columns shuffled take the rank map (ranges then group unlike positions), and an
    explicit class_map restricts the choice. Deterministic."""
    x = klt_like()
    budget = int(2.0 * x.size / 8)
    best = slicer.encode(x, mode="auto", max_bytes=budget, class_map="ranges")
    info = slicer.inspect(best)
    assert info.classes >= 2 and info.class_map == "ranges"
    assert best == slicer.encode(x, mode="auto", max_bytes=budget, class_map="ranges")
    # with every kind allowed, contiguous ranges win (§18.4's estimated boundaries, or §18.3's)
    assert slicer.inspect(slicer.encode(x, mode="auto", max_bytes=budget)).class_map in (
        "ranges", "bounds")  # fmt: skip
    rank_only = slicer.encode(x, mode="auto", max_bytes=budget, class_map="rank")
    assert slicer.inspect(rank_only).class_map in (None, "rank")

    def err(s: bytes, ref: np.ndarray) -> float:
        return float(np.linalg.norm(slicer.decode(s) - ref) / np.linalg.norm(ref))

    assert err(best, x) <= err(rank_only, x)
    big = klt_like(512, 384, seed=1)
    shuffled = big[:, np.random.default_rng(2).permutation(384)]
    s = slicer.encode(shuffled, mode="dense", step=0.05, classes="auto")
    assert slicer.inspect(s).class_map == "rank"  # contiguous ranges of any cut group badly
    r = slicer.encode(shuffled, mode="dense", step=0.05, classes="auto", class_map="ranges")
    assert slicer.inspect(r).class_map in (None, "ranges") and len(s) < len(r)


@pytest.mark.parametrize("shape", [(1000,), (36, 384), (3, 20, 5), (2, 17)])
def test_size_bound_holds_for_ranges(shape):
    rng = np.random.default_rng(5)
    x = rng.standard_normal(shape).astype(np.float32)
    x.reshape(-1)[:2] = [6e4, -5e4]
    bound = slicer.size_bound(shape, np.float32, mode="auto", chunk_size=64)
    for step in (1e-3, 0.5):
        for k in (2, min(16, shape[-1])):
            s = slicer.encode(x, mode="dense", step=step, classes=k, class_map="ranges",
                              chunk_size=64)  # fmt: skip
            assert len(s) <= bound
            assert len(s) <= slicer.size_bound(shape, np.float32, mode="dense", classes=k,
                                               class_map="ranges", chunk_size=64)  # fmt: skip
        s = slicer.encode(x, mode="dense", step=step, classes="auto", chunk_size=64)
        assert len(s) <= bound


def test_split_codec_params_pass_class_map():
    from slicer.split.transport import CodecParams

    c = CodecParams(mode="dense", step=0.05, classes=8, class_map="ranges")
    c.validate()
    assert c.kwargs()["class_map"] == "ranges" and c.to_json()["class_map"] == "ranges"
    assert slicer.inspect(slicer.encode(klt_like(), **c.kwargs())).class_map == "ranges"
    assert "class_map" not in CodecParams(mode="auto", max_bytes=2000).kwargs()
    with pytest.raises(ValueError, match="class_map"):
        CodecParams(class_map="ranges").validate()  # topk
    with pytest.raises(ValueError, match="class_map"):
        CodecParams(mode="dense", step=0.1, class_map="sorted").validate()
