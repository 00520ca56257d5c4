"""Format 2, mode 2 (dense with class tables, docs/format.md §19): the C++ backend against the
NumPy reference (tests/reference_dense.py + reference_classes.py), hostile maps and tables, the
Python API's `classes=`, the size bound and the byte account."""

from __future__ import annotations

import math

import ml_dtypes
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import reference_classes as rc
import reference_dense as rd
import slicer
from dense_tools import assert_reference_verdict, native, same_values, with_crc
from slicer._errors import CORRUPT, TRUNCATED

DTYPES = [np.float32, np.float16, ml_dtypes.bfloat16, np.float64]


def spread(rng: np.random.Generator, shape: tuple[int, ...], axis: int, dtype) -> np.ndarray:
    """Normal values whose scale differs by position along the class axis (what classes pay
    for; no scaling when the shape lacks the axis), with exact zeros and a few massive values."""
    x = rng.standard_normal(shape)
    length = (shape[-1] if axis == 0 else shape[1]) if len(shape) > axis else 0
    if length > 0:  # an empty axis leaves nothing to scale
        scale = np.geomspace(0.05, 20.0, length)
        if axis == 0:
            x = x * scale
        else:
            x = x * scale.reshape((1, length) + (1,) * (len(shape) - 2))
    flat = x.reshape(-1)
    flat[rng.random(flat.size) < 0.1] = 0.0
    if flat.size > 8:
        flat[rng.integers(0, flat.size, 2)] = [3.1e4, -2.2e4]
    if dtype == np.float16:
        x = np.clip(x, -6e4, 6e4)
    return x.astype(dtype)


def checked(x: np.ndarray, params: dict):  # noqa: ANN201
    """C++ bytes == reference bytes; both decoders give the reference reconstruction; the byte
    account adds up. Returns (stream, inspect info, the reference decoder's account)."""
    stream = rd.encode(x, params)
    assert native(x, params) == stream
    want, acc = rd.decode(stream)
    assert same_values(want, rd.reconstruct(rd.plan(x, params)))
    assert same_values(slicer.decode(stream), want)
    info = slicer.inspect(stream)
    a = info.account
    parts = (a.header + a.group_table + a.class_map + a.freq_table + a.chunk_table + a.raw
             + a.codes + a.extra_bits + a.checksum)  # fmt: skip
    assert parts == a.total == len(stream)
    return stream, info, acc


def check(x: np.ndarray, params: dict) -> bytes:
    """:func:`checked`, and for K >= 2 the class fields of the account."""
    stream, info, acc = checked(x, params)
    a = info.account
    if params["classes"] > 1:
        assert info.mode == "dense-classes" and info.classes == params["classes"]
        assert a.class_map == acc.class_map and list(a.class_tables) == acc.class_tables
        assert sum(a.class_tables) == a.freq_table
    return stream


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    "shape,k,axis",
    [((1, 2), 2, 0), ((7, 3), 3, 0), ((5, 999), 16, 0), ((33, 31), 2, 0), ((2, 12, 5, 5), 4, 1),
     ((3, 5, 7), 5, 1), ((4, 17), 16, 1), ((6, 2, 1), 2, 1)],
)  # fmt: skip
def test_native_matches_reference(shape, k, axis, dtype):
    rng = np.random.default_rng(sum(shape) * 31 + k)
    x = spread(rng, shape, axis, dtype)
    for step, rho in ((0.05, 128), (0.9, 70)):
        check(x, rd.default_params(step=step, rho_256=rho, classes=k, class_axis=axis,
                                   chunk_log2=6))  # fmt: skip


def test_interleaved_states_and_chunks():
    """≥ 8192 coded elements per chunk (4 states, §13.3) and several chunks, 16 classes."""
    rng = np.random.default_rng(77)
    x = spread(rng, (48, 200), 0, np.float32)
    check(x, rd.default_params(step=0.02, classes=16, chunk_log2=13))


def test_group_tables_and_empty_classes():
    """Zero and raw groups leave classes without coded elements: their tables are empty
    (nsym = 0, §19.2), and the decoder accepts exactly that."""
    rng = np.random.default_rng(5)
    x = spread(rng, (2, 12, 3, 3), 1, np.float32)
    # channels 1, 2, 3, 4 zero / raw: with 4 classes of 3 channels, class 0 holds 3 of them
    table = [0, 0x80, 0x81, 0x80, 0x80, 5, 0, 0xF8, 0, 1, 2, 3]
    params = rd.default_params(step=0.05, layout=2, group_table=table, classes=4, class_axis=1,
                               chunk_log2=6)  # fmt: skip
    stream = check(x, params)
    _, acc = rd.decode(stream)
    assert 1 in acc.class_tables  # an empty table is its varint 0
    rows = spread(rng, (9, 20), 0, np.float16)
    table = [0, 0x80, 0x81, 5, 0xF0, 3, 1, 0x81, 0x80]
    check(rows, rd.default_params(step=0.1, layout=1, group_table=table, classes=8,
                                  chunk_log2=6))  # fmt: skip
    every_zero = [0x80] * 9
    check(rows, rd.default_params(step=0.1, layout=1, group_table=every_zero, classes=3))


def test_empty_array():
    x = np.zeros((0, 4), dtype=np.float32)
    stream = check(x, rd.default_params(step=0.5, classes=2))
    assert slicer.decode(stream).shape == (0, 4)


def test_mode1_bytes_unchanged():
    """classes=1 is mode 1: same bytes as before mode 2 existed (the v2 goldens pin them)."""
    rng = np.random.default_rng(9)
    x = spread(rng, (10, 64), 0, np.float32)
    params = rd.default_params(step=0.1)
    stream = rd.encode(x, params)
    assert stream[_params_offset(stream) - 2] == 1  # the mode byte
    assert native(x, dict(params, classes=1)) == stream == native(x, dict(params, classes=0))
    info = slicer.inspect(stream)
    assert info.mode == "dense" and info.classes == 1 and info.account.class_map == 0


@settings(max_examples=40, deadline=None)
@given(
    rows=st.integers(1, 9),
    cols=st.integers(2, 40),
    k=st.integers(2, 16),
    dtype=st.sampled_from(DTYPES),
    step=st.sampled_from([0.01, 0.3, 4.0]),
    rho=st.integers(1, 128),
    seed=st.integers(0, 2**32 - 1),
    layout=st.sampled_from([0, 1]),
    class_map=st.sampled_from(["rank", "ranges"]),
)
def test_property_native_equals_reference(rows, cols, k, dtype, step, rho, seed, layout,
                                          class_map):  # fmt: skip
    """Either kind of class map (§18.1 map bytes, §18.3 index ranges)."""
    k = min(k, cols)
    rng = np.random.default_rng(seed)
    x = spread(rng, (rows, cols), 0, dtype)
    table = None
    if layout == 1:
        table = [int(b) for b in rng.choice([0, 0x80, 0x81, 3, 0xFC], size=rows)]
    check(x, rd.default_params(step=step, rho_256=rho, classes=k, layout=layout,
                               group_table=table, chunk_log2=6, class_map=class_map))  # fmt: skip


# ----------------------------------------------------------------------------- hostile streams


def _stream_and_offsets():
    rng = np.random.default_rng(3)
    x = spread(rng, (6, 21), 0, np.float32)
    params = rd.default_params(step=0.1, classes=4, chunk_log2=6)
    stream = rd.encode(x, params)
    _, acc = rd.decode(stream)
    return stream, acc


def _params_offset(stream: bytes) -> int:
    """Offset of the mode parameters (after params_len) in a stream of a 2-d shape."""
    pos = 8
    for _ in range(stream[7]):
        while stream[pos] & 0x80:
            pos += 1
        pos += 1
    return pos + 3  # layout, mode, params_len (one byte)


def _reject_both(data: bytes) -> None:
    with pytest.raises(rd.ReferenceFormatError):
        rd.decode(data)
    with pytest.raises(slicer.FormatError) as err:
        slicer.decode(data)
    assert err.value.status in (CORRUPT, TRUNCATED)
    with pytest.raises(slicer.FormatError):
        slicer.inspect(data)


def test_hostile_parameters():
    stream, _ = _stream_and_offsets()
    body = bytearray(stream[:-4])
    p = _params_offset(stream)
    for at, value in (
        (p + 9, 8),  # class_axis bits 3–7 must be 0 (bit 1: ranges §18.3, bit 2: bounds §18.4)
        (p + 9, 6),  # bits 1 and 2 together
        (p + 9, 255),
        (p + 10, 1),
        (p + 10, 0),
        (p + 10, 17),
        (p + 10, 22),
    ):  # fmt: skip  (class_axis, nclass; L = 21)
        bad = bytearray(body)
        bad[at] = value
        _reject_both(with_crc(bytes(bad)))
    # params_len 9 with mode 2, 11 with mode 1
    bad = bytearray(body)
    bad[p - 1] = 9
    _reject_both(with_crc(bytes(bad[: p + 9] + bad[p + 11 :])))
    bad = bytearray(body)
    bad[p - 2] = 1
    _reject_both(with_crc(bytes(bad)))


def test_hostile_class_map():
    stream, acc = _stream_and_offsets()
    body = bytes(stream[:-4])
    m = acc.header + acc.group_table
    length = 21
    valid = rc.unpack_map(body[m : m + 11], length, 4)
    cases = []
    bad = list(valid)
    bad[0] = 4  # entry ≥ K
    cases.append(bad)
    cases.append([0 if c == 3 else c for c in valid])  # class 3 unused
    for entries in cases:
        packed = bytearray(11)
        for a, v in enumerate(entries):
            packed[a // 2] |= (v & 0xF) << (4 * (a % 2))
        _reject_both(with_crc(body[:m] + bytes(packed) + body[m + 11 :]))
    padded = bytearray(body)
    padded[m + 10] |= 0x10  # high nibble of the last byte (L odd) not zero
    _reject_both(with_crc(bytes(padded)))
    # a different valid map: decodes (to other values) or fails in rANS, the same on both sides
    moved = list(valid)
    moved[0], moved[-1] = moved[-1], moved[0]
    if moved != valid:
        packed = rc.pack_map(moved, 4)
        assert_reference_verdict(with_crc(body[:m] + packed + body[m + 11 :]))


def test_hostile_empty_class_tables():
    """A table with nsym = 0 for a class that codes elements, and a non-empty table for a class
    that codes nothing, are both corrupt (§19.2)."""
    stream, acc = _stream_and_offsets()
    body = bytes(stream[:-4])
    t = acc.header + acc.group_table + acc.class_map
    first = acc.class_tables[0]
    _reject_both(with_crc(body[:t] + b"\x00" + body[t + first :]))
    # channels with zero groups: class 0 codes nothing; give it class 1's table
    rng = np.random.default_rng(5)
    x = spread(rng, (2, 12, 3, 3), 1, np.float32)
    table = [0, 0x80, 0x81, 0x80, 0x80, 5, 0, 0xF8, 0, 1, 2, 3]
    params = rd.default_params(step=0.05, layout=2, group_table=table, classes=4, class_axis=1)
    s2 = rd.encode(x, params)
    _, a2 = rd.decode(s2)
    assert a2.class_tables[0] == 1
    t2 = a2.header + a2.group_table + a2.class_map
    b2 = bytes(s2[:-4])
    other = b2[t2 + 1 : t2 + 1 + a2.class_tables[1]]
    _reject_both(with_crc(b2[:t2] + other + b2[t2 + 1 :]))


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_hostile_bytes_same_verdict(data):
    """Any byte of a small mode-2 stream changed (CRC repaired): the C++ decoder rejects it
    iff the reference does, else decodes the same values."""
    stream, _ = _stream_and_offsets()
    body = bytearray(stream[:-4])
    at = data.draw(st.integers(0, len(body) - 1))
    body[at] = data.draw(st.integers(0, 255))
    assert_reference_verdict(with_crc(bytes(body)))


# ----------------------------------------------------------------------------- Python API


def _structured(n_rows: int = 256, cols: int = 96) -> np.ndarray:
    rng = np.random.default_rng(11)
    return spread(rng, (n_rows, cols), 0, np.float32)


def test_api_classes_values():
    x = _structured()
    one = slicer.encode(x, mode="dense", step=0.05)
    assert one == slicer.encode(x, mode="dense", step=0.05, classes=1)
    assert slicer.inspect(one).classes == 1
    four = slicer.encode(x, mode="dense", step=0.05, classes=4)
    info = slicer.inspect(four)
    assert info.classes == 4 and info.class_axis == "last"
    ref = rd.encode(x, rd.default_params(step=0.05, classes=4))
    assert four == ref
    assert len(four) < len(one)  # the per-position spread is what classes pay for
    np.testing.assert_array_equal(slicer.decode(four), slicer.decode(one))
    auto = slicer.encode(x, mode="dense", step=0.05, classes="auto")
    assert slicer.inspect(auto).classes >= 2 and len(auto) <= len(four) * 1.02
    ch = spread(np.random.default_rng(1), (2, 24, 6, 6), 1, np.float32)
    s = slicer.encode(ch, mode="dense", step=0.05, classes=8, groups="channels")
    assert slicer.inspect(s).class_axis == "1"


def test_api_classes_errors():
    x = _structured(8, 6)
    for bad in (True, 2.0, "4", None.__class__, [2]):
        with pytest.raises((TypeError, ValueError), match="classes"):
            slicer.encode(x, mode="dense", step=0.1, classes=bad)
    for bad in (0, 17, -1):
        with pytest.raises(ValueError, match="classes"):
            slicer.encode(x, mode="dense", step=0.1, classes=bad)
    with pytest.raises(TypeError, match="classes"):
        slicer.encode(x, mode="dense", step=0.1, classes=2.0)
    with pytest.raises(ValueError, match="classes=7"):
        slicer.encode(x, mode="dense", step=0.1, classes=7)  # 6 positions
    with pytest.raises(ValueError, match="classes"):
        slicer.encode(np.float32(1.0), mode="dense", step=0.1, classes=2)
    with pytest.raises(ValueError, match="classes"):
        slicer.encode(x, classes=2)  # mode topk
    with pytest.raises(ValueError, match="classes"):
        slicer.size_bound((8, 6), "float32", classes=2)
    with pytest.raises(ValueError, match="classes"):
        slicer.size_bound((8, 6), "float32", mode="dense", classes=9)


def test_api_auto_budget_and_error():
    x = _structured()
    budget = int(2.5 * x.size / 8)
    plain = slicer.encode(x, mode="auto", max_bytes=budget, classes=1)
    best = slicer.encode(x, mode="auto", max_bytes=budget)  # classes="auto" by default
    assert len(plain) <= budget and len(best) <= budget
    assert slicer.inspect(plain).classes == 1 and slicer.inspect(best).classes >= 2

    def err(s: bytes) -> float:
        y = slicer.decode(s).astype(np.float64)
        return float(np.linalg.norm(y - x) / np.linalg.norm(x))

    assert err(best) < err(plain)
    e = err(plain)
    small = slicer.encode(x, mode="auto", rel_error=e)
    assert err(small) <= e and slicer.inspect(small).classes >= 2
    assert len(small) < len(slicer.encode(x, mode="auto", rel_error=e, classes=1))
    # deterministic
    assert slicer.encode(x, mode="auto", max_bytes=budget) == best


@pytest.mark.parametrize("classes", [1, 2, 16, "auto"])
@pytest.mark.parametrize("mode", ["dense", "auto"])
def test_size_bound_holds(classes, mode):
    rng = np.random.default_rng(4)
    shapes = [(16, 40), (3, 20, 5), (1, 17)]
    for shape in shapes:
        for dtype in (np.float32, np.float16, np.float64):
            x = rng.standard_normal(shape).astype(dtype)
            x.reshape(-1)[rng.integers(0, x.size, 2)] = [6e4, -5e4]  # long codes
            k = classes if classes == "auto" else min(classes, shape[-1])
            bound = slicer.size_bound(shape, dtype, mode=mode, classes=k, chunk_size=64)
            for step in (1e-3, 0.5):
                s = slicer.encode(x, mode="dense", step=step, classes=k if k != "auto" else 16
                                  if shape[-1] >= 16 else shape[-1], chunk_size=64)  # fmt: skip
                assert len(s) <= bound
    assert slicer.size_bound((16, 40), "float32", mode="auto") > slicer.size_bound(
        (16, 40), "float32", mode="auto", classes=1
    )


def test_size_bound_formula():
    """§19.5: mode 1's bound + 2 + ceil(L/2) + (K − 1) · 1111."""
    for shape, k in (((5, 33), 4), ((2, 3, 7), 7)):
        one = slicer.size_bound(shape, "float32", mode="dense", classes=1)
        axis_len = shape[-1]
        many = slicer.size_bound(shape, "float32", mode="dense", classes=k)
        assert many - one == 2 + math.ceil(axis_len / 2) + (k - 1) * 1111


def test_split_codec_params_pass_classes():
    """slicer.split's CodecParams passes classes= through to encode (dense / auto only)."""
    from slicer.split.transport import CodecParams

    c = CodecParams(mode="auto", max_bytes=2000, classes=4)
    c.validate()
    assert c.kwargs()["classes"] == 4 and c.to_json()["classes"] == 4
    x = _structured()
    assert slicer.inspect(slicer.encode(x, **c.kwargs())).classes == 4
    assert "classes" not in CodecParams(mode="auto", max_bytes=2000).kwargs()
    with pytest.raises(ValueError, match="classes"):
        CodecParams(classes=2).validate()  # topk
    with pytest.raises(ValueError, match="classes"):
        CodecParams(mode="dense", step=0.1, classes=17).validate()


def test_size_bound_auto_follows_the_estimate_rule():
    """classes="auto" bounds only the K the estimate may take: a 1-D array's rank map would
    cost more than any class saving, so with class_map="rank" its bound is mode 1's (index
    ranges cost no map bytes, so the default may take K = 16 there); an array where K = 16 may
    pay gets the K = 16 bound plus the K − 1 bytes that §18.4's boundaries may add (§19.5),
    and every auto stream stays below it."""
    one = slicer.size_bound((1000,), "float32", mode="auto", classes=1)
    assert slicer.size_bound((1000,), "float32", mode="auto", class_map="rank") == one
    k16 = slicer.size_bound((1000,), "float32", mode="dense", classes=16)
    assert slicer.size_bound((1000,), "float32", mode="auto") == k16 + 15
    assert slicer.size_bound((1000,), "float32", mode="auto", class_map="ranges") == k16
    x = _structured()
    bound = slicer.size_bound(x.shape, x.dtype, mode="auto")
    assert bound == slicer.size_bound(x.shape, x.dtype, mode="dense", classes=16) + 15
    for budget in (x.size // 8, x.size // 2):
        assert len(slicer.encode(x, mode="auto", max_bytes=budget)) <= bound


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_escaped_symbols_per_class(dtype):
    """Codes above 2^33 (symbols >= 255: the decoder's escape path, which resolves the symbol
    from its class's cumulative frequencies) in some classes only."""
    rng = np.random.default_rng(21)
    x = spread(rng, (12, 40), 0, np.float64)
    x[rng.integers(0, 12, 6), rng.integers(30, 40, 6)] = [3e12, -7e13, 1e14, -2e12, 5e13, 9e11]
    x = x.astype(dtype)
    for k in (2, 8):
        stream = check(x, rd.default_params(step=0.1, classes=k, chunk_log2=6))
        info = slicer.inspect(stream)
        assert info.symbols > 255
