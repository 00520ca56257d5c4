"""§13.5 table kinds: count classes with 3 … 0 mantissa bits and a geometric table in mode 1.
The NumPy reference encodes and decodes them; the C++ encoder writes the same bytes for every
kind and for "auto", the C++ decoder gives the reference's values, and every stream the
reference rejects ends in slicer.FormatError."""

from __future__ import annotations

import math
import struct
import zlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import reference_dense as rd
import slicer
from dense_tools import check_mode1_option, class_stream_group_byte
from slicer import _core
from slicer._context import native_context

KINDS = range(rd.TABLE_KIND_GEOM + 1)


def laplace(n: int, seed: int, scale: float = 1.0) -> np.ndarray:
    return np.random.default_rng(seed).laplace(0.0, scale, n).astype(np.float32)


def reseal(stream: bytes) -> bytes:
    body = stream[:-4]
    return body + struct.pack("<I", zlib.crc32(body))


def params_at(stream: bytes) -> int:
    """Offset of the mode-1 parameters in a 1-d stream (magic, version, dtype, flags, ndim,
    one dim varint, layout, mode, params_len)."""
    pos = 8
    while stream[pos] & 0x80:
        pos += 1
    return pos + 1 + 3


def table_at(stream: bytes) -> int:
    acc = rd.decode(stream)[1]
    return acc.header + acc.group_table


def native(x: np.ndarray, params: dict) -> bytes:
    """The C++ encoder with the reference's parameter dict."""
    p = dict(params, threads=1)
    table = params.get("group_table")
    p["group_table"] = None if table is None else bytes(table)
    raw = np.ascontiguousarray(x).reshape(-1).view(np.uint8)
    status, stream = _core.dense_encode(
        native_context(None), raw, rd.DTYPE_CODES[x.dtype], list(x.shape), p
    )
    assert status == 0
    return stream


def same_outcome(stream: bytes) -> None:
    """The C++ decoder agrees with the reference: the same values, or both reject."""
    try:
        want = rd.decode(stream)[0]
    except rd.ReferenceFormatError:
        with pytest.raises(slicer.FormatError):
            slicer.decode(stream)
        return
    assert slicer.decode(stream).tobytes() == want.tobytes()


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("n, seed, step", [(1, 0, 0.5), (7, 1, 0.25), (4096, 2, 2.0),
                                           (20_000, 3, 0.05)])  # fmt: skip
def test_round_trip_same_values_and_bytes(kind, n, seed, step):
    x = laplace(n, seed)
    x[::97] *= 300.0  # isolated large codes: rare high symbols with extra bits
    base = rd.default_params(step=step)
    want, _ = rd.decode(rd.encode(x, base))
    stream = rd.encode(x, dict(base, table_kind=kind))
    assert stream[params_at(stream) + 8] == kind << 1
    got, acc = rd.decode(stream)
    assert got.tobytes() == want.tobytes()
    assert acc.total == len(stream)
    assert native(x, dict(base, table_kind=kind)) == stream
    assert slicer.decode(stream).tobytes() == want.tobytes()
    assert slicer.inspect(stream).table_kind == kind


@settings(max_examples=30, deadline=None)
@given(
    n=st.integers(0, 3000),
    seed=st.integers(0, 2**16),
    log_step=st.floats(-3, 3),
    kind=st.sampled_from([0, 1, 2, 3, 4, "auto"]),
    dtype=st.sampled_from([np.float32, np.float16, np.float64]),
    chunk_log2=st.sampled_from([6, 8, 14]),
)
def test_cpp_bytes_equal_reference(n, seed, log_step, kind, dtype, chunk_log2):
    x = laplace(n, seed).astype(dtype)
    params = rd.default_params(step=2.0**log_step, chunk_log2=chunk_log2, table_kind=kind)
    stream = rd.encode(x, params)
    assert native(x, params) == stream
    assert slicer.decode(stream).tobytes() == rd.decode(stream)[0].tobytes()


@settings(max_examples=15, deadline=None)
@given(rows=st.integers(1, 12), cols=st.integers(1, 90), seed=st.integers(0, 2**16))
def test_cpp_bytes_equal_reference_with_groups(rows, cols, seed):
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal((rows, cols)) * 3).astype(np.float32)
    table = rng.choice([0, 0x80, 0x81, 5, 0xF0], rows).tolist()
    params = rd.default_params(step=0.2, layout=1, group_table=table, chunk_log2=6,
                               table_kind="auto")  # fmt: skip
    stream = rd.encode(x, params)
    assert native(x, params) == stream
    assert slicer.decode(stream).tobytes() == rd.decode(stream)[0].tobytes()


@settings(max_examples=25, deadline=None)
@given(n=st.integers(0, 3000), seed=st.integers(0, 2**16), log_step=st.floats(-3, 3))
def test_auto_never_longer_and_decodes(n, seed, log_step):
    x = laplace(n, seed)
    base = rd.default_params(step=2.0**log_step)
    plain = rd.encode(x, base)
    auto = rd.encode(x, dict(base, table_kind="auto"))
    assert len(auto) <= len(plain)
    assert min(len(rd.encode(x, dict(base, table_kind=k))) for k in KINDS) == len(auto)
    assert rd.decode(auto)[0].tobytes() == rd.decode(plain)[0].tobytes()


def test_kind_zero_is_todays_stream():
    x = laplace(5000, 4)
    base = rd.default_params(step=0.1)
    assert rd.encode(x, dict(base, table_kind=0)) == rd.encode(x, base)
    assert rd.encode(x, base) == slicer.encode(x, mode="dense", step=0.1, rho=0.5)
    assert slicer.encode(x, mode="dense", step=0.1, rho=0.5, table_kind=0) == rd.encode(x, base)


def test_geometric_table_is_short_at_low_rates():
    x = laplace(4096, 5)
    base = rd.default_params(step=4.0)
    classes = rd.encode(x, base)
    geom = rd.encode(x, dict(base, table_kind=rd.TABLE_KIND_GEOM))
    assert rd.decode(geom)[1].freq_table == 3  # nsym, z, a
    assert len(geom) < len(classes)
    assert slicer.inspect(geom).account.freq_table == 3


def test_geometric_counts_are_integers_and_positive():
    for nsym, z, a in [(1, 0, 0), (423, 255, 255), (57, 200, 37), (9, 17, 0), (3, 0, 0)]:
        counts = rd.geom_counts(nsym, z, a)
        assert len(counts) == nsym and all(isinstance(c, int) and c >= 1 for c in counts)
        assert counts[0] < 2**24 and all(c < 2**23 for c in counts[1:])
        freq = rd.normalize(counts)
        assert sum(freq) == rd.PROB_SCALE and min(freq) >= 1


def test_geometric_constants_and_products():
    for k, g in enumerate(rd.GEOM_ROOTS):  # the largest x with x^16 <= 2^(512 - k)
        assert g**16 <= 2 ** (512 - k) < (g + 1) ** 16
    thetas = [(1 << 32) - (rd.GEOM_ROOTS[a % 16] >> (a // 16)) for a in range(256)]
    assert thetas[0] == 0 and all(0 < t < 2**32 for t in thetas[1:])
    # the one product of §13.5 that needs 65 bits: pow(θ, 0) · (2^32 − pow(θ, 1)) at a = 0
    assert rd.pow_q32(0, 0) * ((1 << 32) - rd.pow_q32(0, 1)) == 2**64


def test_score_table_is_far_from_rounding_boundaries():
    fr = [abs((65536 * math.log2(f)) % 1 - 0.5) for f in range(1, rd.PROB_SCALE + 1)]
    assert min(fr) > 9e-5
    assert rd.LOG2_Q16[1] == 0 and rd.LOG2_Q16[rd.PROB_SCALE] == 14 * 65536


def test_class_counts_by_bits_match_section_13_1():
    for v in range(512):
        assert rd.class_count_bits(v, 3) == rd.class_count(v)
    for n in [1, 2, 3, 15, 16, 17, 100, 4095, 10**6, 10**12]:
        assert rd.count_class_bits(n, 3) == rd.count_class(n)
    for r, top in rd.CLASS_MAX_BY_BITS.items():  # the caps keep every count below 2^66
        assert 2**62 <= rd.class_count_bits(top, r) < 2**66


def hand_table_stream(kind: int, classes: list[int] | None, za: tuple[int, int] | None,
                      seed: int = 9) -> bytes:  # fmt: skip
    """A kind-`kind` stream whose table is replaced by the given classes / (z, a) bytes (same
    nsym), resealed: a valid container for any table, its payload decoded with that table."""
    x = laplace(600, seed)
    stream = rd.encode(x, dict(rd.default_params(step=0.7), table_kind=kind))
    at, acc = table_at(stream), rd.decode(stream)[1]
    nsym = acc.symbols
    if za is not None:
        table = rd.varint(nsym) + bytes(za)
    else:
        table = rd.write_table(classes)  # nsym varint and the class field
    return reseal(stream[:at] + table + stream[at + acc.freq_table :])


@pytest.mark.parametrize("z, a", [(0, 0), (255, 0), (255, 255), (0, 255), (128, 17), (3, 1)])
def test_geometric_extremes_decode_as_the_reference(z, a):
    same_outcome(hand_table_stream(rd.TABLE_KIND_GEOM, None, (z, a)))


@pytest.mark.parametrize("kind", [0, 1, 2, 3])
def test_classes_at_and_above_the_caps(kind):
    top = rd.CLASS_MAX_BY_BITS[3 - kind]
    nsym = rd.decode(rd.encode(laplace(600, 9), dict(rd.default_params(step=0.7),
                                                     table_kind=kind)))[1].symbols  # fmt: skip
    for hi in (top, top + 1, 511):
        classes = [hi] + [max(1, hi - 3 * s) for s in range(1, nsym)]
        stream = hand_table_stream(kind, classes, None)
        if hi > top:
            with pytest.raises(rd.ReferenceFormatError):
                rd.decode(stream)
        same_outcome(stream)  # kind 0 at 496 … 511: counts of 2^64 and more (65 bits)


def test_hostile_kinds():
    x = laplace(300, 6)
    stream = rd.encode(x, dict(rd.default_params(step=0.5), table_kind=rd.TABLE_KIND_GEOM))
    at = params_at(stream) + 8
    # kinds 5 … 7; 0x10, 0x80, 0xFF: kind 0, 7 with §13.6 planes on this geometric table's bytes
    for byte in (5 << 1, 5 << 1 | 1, 7 << 1, 0x10, 0x80, 0xFF):
        bad = reseal(stream[:at] + bytes([byte]) + stream[at + 1 :])
        with pytest.raises(rd.ReferenceFormatError):
            rd.decode(bad)
        with pytest.raises(slicer.FormatError):
            slicer.decode(bad)
    # a geometric table cut after nsym: z, a missing at the end of the body, or the chunk table
    # read as z, a
    t = table_at(stream)
    for cut in (stream[: t + 1] + stream[t + 3 :], stream[: t + 2]):
        short = reseal(cut) if len(cut) > 8 else cut
        with pytest.raises(rd.ReferenceFormatError):
            rd.decode(short)
        with pytest.raises(slicer.FormatError):
            slicer.decode(short)
    # nsym above 423
    big = reseal(stream[:t] + rd.varint(424) + stream[t + 1 :])
    with pytest.raises(rd.ReferenceFormatError):
        rd.decode(big)
    with pytest.raises(slicer.FormatError):
        slicer.decode(big)


@pytest.mark.parametrize("kind", range(1, rd.TABLE_KIND_GEOM + 1))
def test_class_tables_reject_kinds(kind):
    stream, at = class_stream_group_byte(laplace(64 * 40, 8).reshape(40, 64), step=0.5, classes=4)
    assert stream[at] == 0
    bad = reseal(stream[:at] + bytes([kind << 1]) + stream[at + 1 :])
    with pytest.raises(rd.ReferenceFormatError):
        rd.decode(bad)
    with pytest.raises(slicer.FormatError):
        slicer.decode(bad)


def test_class_tables_keep_kind_zero():
    x = laplace(64 * 40, 8).reshape(40, 64)
    with pytest.raises(ValueError, match="table_kind"):
        rd.encode(x, rd.default_params(step=0.5, classes=4, table_kind=1))
    plain = rd.encode(x, rd.default_params(step=0.5, classes=4))
    assert rd.encode(x, rd.default_params(step=0.5, classes=4, table_kind="auto")) == plain
    assert slicer.encode(x, mode="dense", step=0.5, rho=0.5, classes=4,
                         table_kind="auto") == plain  # fmt: skip


def test_api_arguments():
    check_mode1_option("table_kind", (5,), 4)


@pytest.mark.parametrize("mode, budget", [("auto", {"rel_error": 0.3}),
                                          ("auto", {"max_bytes": 400}),
                                          ("dense", {"rel_error": 0.2}),
                                          ("dense", {"max_bytes": 700})])  # fmt: skip
def test_search_then_table_kind(mode, budget):
    """The search runs at kind 0; its stream is re-encoded with the kind: the same values,
    "auto" never longer (so max_bytes holds), the re-encode at kind 0 is the search's stream."""
    x = laplace(4096, 11)
    plain = slicer.encode(x, mode=mode, classes=1, **budget)
    auto = slicer.encode(x, mode=mode, classes=1, table_kind="auto", **budget)
    assert len(auto) <= len(plain)
    assert "max_bytes" not in budget or len(auto) <= budget["max_bytes"]
    assert slicer.decode(auto).tobytes() == slicer.decode(plain).tobytes()
    info = slicer.inspect(plain)
    again = rd.default_params(step=info.step, rho_256=round(info.rho * 256),
                              offsets=info.offsets)  # fmt: skip
    assert native(x, again) == plain
    if mode == "dense" and "rel_error" in budget:
        geom = slicer.encode(x, mode=mode, table_kind=4, **budget)
        assert slicer.inspect(geom).table_kind == 4
        assert slicer.decode(geom).tobytes() == slicer.decode(plain).tobytes()


def test_cpp_auto_pick_matches_every_kind():
    for seed, step in [(12, 0.02), (13, 1.0), (14, 6.0)]:
        x = laplace(4096, seed)
        lens = [len(slicer.encode(x, mode="dense", step=step, table_kind=k)) for k in KINDS]
        auto = slicer.encode(x, mode="dense", step=step, table_kind="auto")
        assert len(auto) == min(lens)
        assert slicer.inspect(auto).table_kind == lens.index(min(lens))
