"""Format 2, mode 3 (dense with trellis-coded quantization, docs/format.md §21): the C++ encoder
and decoder against the NumPy reference (tests/reference_tcq.py) byte for byte, hostile streams,
the Python API's `trellis=`, the size bound and the byte account."""

from __future__ import annotations

import json
import struct
import zlib
from pathlib import Path

import ml_dtypes
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import reference_dense as rd
import reference_tcq as rt
import slicer
from dense_tools import same_values, with_crc
from slicer import _core
from slicer._context import native_context
from slicer._errors import CORRUPT, TRUNCATED, UNSUPPORTED_MODE
from test_dense_classes import spread

DTYPES = [np.float32, np.float16, ml_dtypes.bfloat16, np.float64]


def native(x: np.ndarray, params: dict) -> bytes:
    """The C++ encoder with exactly the reference's parameters."""
    p = {k: v for k, v in params.items() if k not in ("lam", "offsets")}
    p.update(rho_256=128, threads=1, trellis=params["lam"], offsets=params["offsets"])
    p["group_table"] = None if params["group_table"] is None else bytes(params["group_table"])
    code = rd.DTYPE_CODES[np.dtype(x.dtype)]
    raw = np.ascontiguousarray(x).reshape(-1).view(np.uint8)
    status, stream = _core.dense_encode(native_context(None), raw, code, list(x.shape), p)
    assert status == 0, status
    return stream


def checked(x: np.ndarray, params: dict):  # noqa: ANN201
    """C++ bytes == reference bytes; both decoders give the reference reconstruction; the
    byte account adds up and matches the reference's. Returns (stream, inspect info)."""
    stream = rt.encode(x, params)
    assert native(x, params) == stream
    want, acc = rt.decode(stream)
    assert same_values(want, rt.reconstruct(rt.plan(x, params)))
    assert same_values(slicer.decode(stream), want)
    info = slicer.inspect(stream)
    a = info.account
    parts = (a.header + a.group_table + a.class_map + a.freq_table + a.chunk_table + a.raw
             + a.codes + a.extra_bits + a.checksum)  # fmt: skip
    assert parts == a.total == len(stream)
    assert info.mode == "dense-trellis" and info.classes == params["classes"]
    assert (a.header, a.group_table, a.class_map, a.freq_table, a.chunk_table, a.raw, a.codes,
            a.extra_bits) == (acc.header, acc.group_table, acc.class_map, acc.freq_table,
                              acc.chunk_table, acc.raw, acc.rans, acc.extra_bits)  # fmt: skip
    assert list(a.class_tables) == acc.class_tables and sum(a.class_tables) == a.freq_table
    assert info.offsets == acc.info["offsets"]
    assert info.trellis_offsets == acc.info["trellis_offsets"]
    return stream, info


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    "shape,k,axis",
    [((1, 1), 1, 0), ((7,), 1, 0), ((5, 999), 1, 0), ((5, 999), 16, 0), ((33, 31), 2, 0),
     ((2, 12, 5, 5), 4, 1), ((3, 5, 7), 5, 1), ((0, 5), 1, 0), ((0, 5), 3, 0)],
)  # fmt: skip
def test_native_matches_reference(shape, k, axis, dtype):
    rng = np.random.default_rng(sum(shape) * 31 + k)
    x = spread(rng, shape, axis, dtype)
    for step, lam in ((0.05, 0.34), (0.9, 0.24)):
        checked(x, rt.default_params(step=step, lam=lam, classes=k, class_axis=axis,
                                     chunk_log2=6))  # fmt: skip


@pytest.mark.parametrize("kind", ["rank", "ranges", "bounds"])
def test_class_map_kinds(kind):
    rng = np.random.default_rng(7)
    x = spread(rng, (40, 48), 0, np.float32)
    bounds = [3, 10, 30] if kind == "bounds" else None
    checked(x, rt.default_params(step=0.2, classes=4, class_map=kind, class_bounds=bounds,
                                 chunk_log2=7))  # fmt: skip


def test_groups_zero_and_raw():
    """Zero and raw groups (§12.1) interrupt the chains: the coded elements of a chunk are its
    elements of dense groups, in flat order."""
    rng = np.random.default_rng(5)
    x = rng.standard_normal((9, 70)).astype(np.float32)
    x[2] = 0.0
    table = [0, 0x80, 0x80, 3, 0x81, 0xF8, 0, 0x81, 1]
    checked(x, rt.default_params(step=0.1, layout=rd.LAYOUT_ROWS, group_table=table,
                                 chunk_log2=7))  # fmt: skip
    # every group zero or raw: nothing coded, every table empty
    table = [0x80, 0x81] * 4 + [0x80]
    stream, info = checked(x, rt.default_params(step=0.1, layout=rd.LAYOUT_ROWS,
                                                group_table=table, classes=2))  # fmt: skip
    assert info.coded == 0


def test_huge_codes():
    """Magnitudes above 2^33 (symbols >= 255: the decoder's escape path) next to small ones."""
    rng = np.random.default_rng(17)
    x = rng.standard_normal((6, 50))
    x[:, ::7] *= 3e4
    for dtype in (np.float32, np.float64):
        checked(x.astype(dtype), rt.default_params(step=1e-7, chunk_log2=6))


def test_given_offsets():
    rng = np.random.default_rng(9)
    x = rng.standard_normal((16, 40)).astype(np.float32)
    checked(x, rt.default_params(step=0.3, offsets=(-5, 3, 12, -128)))


@settings(max_examples=25, deadline=None)
@given(
    rows=st.integers(1, 6),
    cols=st.integers(1, 90),
    step=st.sampled_from([0.01, 0.07, 0.3, 1.5]),
    lam=st.sampled_from([0.05, 0.24, 0.34, 0.46, 2.0]),
    k=st.integers(1, 4),
    seed=st.integers(0, 2**16),
    dtype=st.sampled_from(DTYPES),
)
def test_property_native_is_reference(rows, cols, step, lam, k, seed, dtype):
    rng = np.random.default_rng(seed)
    x = spread(rng, (rows, cols), 0, dtype)
    k = min(k, cols)
    params = rt.default_params(step=step, lam=lam, classes=k, chunk_log2=6)
    assert native(x, params) == rt.encode(x, params)


# ----------------------------------------------------------------------------- hostile streams


def _body(stream: bytes) -> bytearray:
    return bytearray(stream[:-4])


def _params_at(stream: bytes) -> int:
    """Offset of the 12 mode parameters of a stream of ndim <= 2 with small dims."""
    pos = 8
    for _ in range(stream[7]):
        while stream[pos] & 0x80:
            pos += 1
        pos += 1
    return pos + 3  # layout, mode, params_len


def _status(stream: bytes) -> int:
    status, _ = _core.dense_inspect(stream, 2**31)
    return status


def _rejected_by_both(data: bytes) -> int:
    with pytest.raises(rd.ReferenceFormatError):
        rt.decode(data)
    with pytest.raises(slicer.FormatError):
        slicer.decode(data)
    return _status(data)


def test_hostile_parameters():
    rng = np.random.default_rng(11)
    x = rng.standard_normal((4, 30)).astype(np.float32)
    stream = rt.encode(x, rt.default_params(step=0.2))
    at = _params_at(stream)
    for field, value in ((4, 5), (5, 2), (6, 1), (7, 0), (7, 17), (6, 8)):
        body = _body(stream)
        body[at + field] = value  # chunk_log2, group_table, class_axis, nclass
        assert _rejected_by_both(with_crc(bytes(body))) in (CORRUPT, TRUNCATED)
    body = _body(stream)
    body[at - 1] = 11  # params_len of mode 2
    assert _rejected_by_both(with_crc(bytes(body))) == CORRUPT


def test_empty_context_table_is_corrupt():
    """An element whose (class, quantizer) table is empty: corrupt (§21.4)."""
    x = np.full((1, 20), 0.01, np.float32)  # every code 0 in state 0: Q1's table stays empty
    stream = rt.encode(x, rt.default_params(step=1.0))
    at = _params_at(stream) + 12
    r = rd.ByteReader(stream, len(stream) - 4)
    r.pos = at
    rd.read_table(stream, r, len(stream) - 4)
    assert stream[r.pos] == 0  # Q1's table: nsym = 0
    # Normal values use both quantizers; then Q1's table is emptied.
    x = np.random.default_rng(4).standard_normal((1, 40)).astype(np.float32)
    good = rt.encode(x, rt.default_params(step=0.3))
    r = rd.ByteReader(good, len(good) - 4)
    r.pos = at
    rd.read_table(good, r, len(good) - 4)
    q1_start = r.pos
    assert rd.read_table(good, r, len(good) - 4)  # Q1's table is used
    body = good[:q1_start] + b"\x00" + good[r.pos : -4]  # ... and now empty
    assert _rejected_by_both(with_crc(body)) == CORRUPT


def test_damaged_streams_never_crash():
    """Every single-byte change and every truncation of a small stream: the C++ decoder rejects
    it iff the reference does (CRC repaired), with the same values when both accept."""
    rng = np.random.default_rng(13)
    x = spread(rng, (3, 21), 0, np.float32)
    stream = rt.encode(x, rt.default_params(step=0.3, classes=2, chunk_log2=6))
    body = _body(stream)
    for i in range(len(body)):
        for delta in (1, 0x80):
            damaged = bytearray(body)
            damaged[i] = (damaged[i] + delta) & 0xFF
            data = with_crc(bytes(damaged))
            try:
                want = rt.decode(data)[0]
            except rd.ReferenceFormatError:
                want = None
            if want is None:
                with pytest.raises(slicer.FormatError):
                    slicer.decode(data)
            else:
                assert same_values(slicer.decode(data), want)
    for cut in range(9, len(body)):
        with pytest.raises(slicer.FormatError):
            slicer.decode(with_crc(bytes(body[:cut])))


def test_unknown_mode_still_unsupported():
    rng = np.random.default_rng(2)
    x = rng.standard_normal(50).astype(np.float32)
    stream = bytearray(rt.encode(x, rt.default_params(step=0.3))[:-4])
    stream[_params_at(bytes(stream)) - 2] = 4
    assert _status(with_crc(bytes(stream))) == UNSUPPORTED_MODE


# ----------------------------------------------------------------------------- Python API


def test_api_step_is_reference():
    rng = np.random.default_rng(21)
    x = rng.standard_normal((30, 64)).astype(np.float32)
    s = slicer.encode(x, mode="dense", step=0.25, trellis=True)
    assert s == rt.encode(x, rt.default_params(step=0.25))
    s = slicer.encode(x, mode="dense", step=0.25, trellis=0.46, classes=4)
    assert s == rt.encode(x, rt.default_params(step=0.25, lam=0.46, classes=4))


def test_api_budget_and_error():
    rng = np.random.default_rng(22)
    x = (rng.standard_normal((256, 96)) * np.geomspace(0.1, 5, 96)).astype(np.float32)
    n = x.size
    for bits in (1.5, 2.5):
        limit = int(bits * n / 8)
        s3 = slicer.encode(x, mode="dense", max_bytes=limit, trellis=True)
        s1 = slicer.encode(x, mode="dense", max_bytes=limit)
        assert len(s3) <= limit and len(s3) >= 0.97 * limit
        e3 = np.linalg.norm(slicer.decode(s3) - x)
        e1 = np.linalg.norm(slicer.decode(s1) - x)
        assert e3 < 0.97 * e1  # TCQ: lower error at the same bytes (§9.9: 0.3-0.9 dB)
    s = slicer.encode(x, mode="dense", rel_error=0.05, trellis=True, classes="auto")
    y = slicer.decode(s)
    assert np.linalg.norm(y - x) / np.linalg.norm(x) <= 0.05
    assert slicer.inspect(s).mode == "dense-trellis"


def test_api_validation():
    x = np.ones(10, np.float32)
    with pytest.raises(TypeError, match="trellis"):
        slicer.encode(x, mode="dense", step=0.1, trellis="yes")
    for bad in (0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="trellis"):
            slicer.encode(x, mode="dense", step=0.1, trellis=bad)
    with pytest.raises(ValueError, match="trellis"):
        slicer.encode(x, trellis=True)  # mode="topk"
    with pytest.raises(ValueError, match="rho"):
        slicer.encode(x, mode="dense", step=0.1, trellis=True, rho=0.4)
    with pytest.raises(ValueError, match="step"):
        slicer.encode(np.full(4, 1e30, np.float32), mode="dense", step=1e-20, trellis=True)


@pytest.mark.parametrize("k", [1, 4, "auto"])
def test_size_bound_holds(k):
    """size_bound is a true bound for hostile-ish inputs: huge ranges, outliers, alternating
    signs, a tiny step (most extra bits), every element distinct."""
    rng = np.random.default_rng(31)
    cases = [
        rng.standard_normal((8, 64)) * np.logspace(-3, 4, 64),
        np.where(np.arange(512) % 2, 1.0, -1.0).reshape(8, 64) * 1e4,
        rng.uniform(-6e4, 6e4, (8, 64)),
        np.zeros((8, 64)),
    ]
    for x in cases:
        for dtype in (np.float32, np.float16):
            a = x.astype(dtype)
            bound = slicer.size_bound(a.shape, dtype, mode="dense", trellis=True, classes=k)
            for step in (1e-3, 0.3, 1e3):
                s = slicer.encode(a, mode="dense", step=step, trellis=True, classes=k)
                assert len(s) <= bound
    assert slicer.size_bound((8, 64), np.float32, mode="dense", trellis=True) > slicer.size_bound(
        (8, 64), np.float32, mode="dense"
    )


def test_reference_rate_table_is_exact():
    """§21.6 4.: floor(256 log2 f + 1/2) is far from a rounding boundary for every f."""
    f = np.arange(1, 2**14 + 1, dtype=np.float64)
    v = 256 * np.log2(f)
    assert np.min(np.abs(v - np.floor(v) - 0.5)) > 2e-5
    counts = np.zeros(rd.NUM_SYMBOLS, np.int64)
    counts[[0, 1, 2]] = [1000, 10, 1]
    r = rt.rate_table(counts)
    assert r[0] < r[1] < r[2] < rt.UNSEEN and r[3] == rt.UNSEEN
    assert np.all(rt.rate_table(np.zeros(rd.NUM_SYMBOLS, np.int64)) == rt.UNSEEN)


def test_crc_helper_is_zlib():
    assert with_crc(b"abc")[-4:] == struct.pack("<I", zlib.crc32(b"abc"))


# ----------------------------------------------------------------------------- goldens

GOLDEN = Path(__file__).resolve().parent / "golden" / "v2"
M3 = sorted(p.stem for p in GOLDEN.glob("m3_*.slc"))


def test_m3_goldens_present():
    assert len(M3) >= 9


@pytest.mark.parametrize("name", M3)
def test_m3_golden(name):
    """The reference and the C++ encoder write the golden; both decoders agree on it
    (m3_four_chains: chunks of >= 8192 coded elements, four chains per chunk, §21.1)."""
    meta = json.loads((GOLDEN / f"{name}.json").read_text())
    x = np.load(GOLDEN / f"{name}.npy")
    if meta["dtype"] == "bfloat16":
        x = x.view(ml_dtypes.bfloat16)
    params = meta["params"]
    if params["offsets"] is not None:
        params["offsets"] = tuple(params["offsets"])
    stream = (GOLDEN / f"{name}.slc").read_bytes()
    assert stream[4] == 2 and stream[_params_at(stream) - 2] == rt.MODE_TRELLIS
    checked_stream, _ = checked(x, params)
    assert checked_stream == stream


def test_split_codec_params_pass_trellis():
    """slicer.split's CodecParams carry `trellis` to encode (validated by its rule)."""
    from slicer.split.calibrate import DenseFamily, families_for, setting_text
    from slicer.split.transport import CodecParams

    p = CodecParams(mode="dense", step=0.2, trellis=0.34)
    p.validate()
    assert p.kwargs()["trellis"] == 0.34 and p.to_json()["trellis"] == 0.34
    x = np.random.default_rng(1).standard_normal((8, 32)).astype(np.float32)
    assert slicer.inspect(slicer.encode(x, **p.kwargs())).mode == "dense-trellis"
    with pytest.raises(TypeError, match="trellis"):
        CodecParams(mode="dense", step=0.2, trellis="on").validate()
    with pytest.raises(ValueError, match="trellis"):
        CodecParams(mode="topk", trellis=True).validate()
    (dense,) = families_for("dense", trellis=0.24)
    assert isinstance(dense, DenseFamily) and dense.trellis == 0.24
    assert "trellis=0.34" in setting_text(p.to_json())


def test_threads_do_not_change_bytes_or_values():
    """Chains live inside chunks (§21.1): the bytes and the decoded values do not depend on the
    number of threads (large enough for the parallel paths: >= 2^18 elements)."""
    rng = np.random.default_rng(41)
    x = (rng.standard_normal((512, 576)) * np.geomspace(0.1, 5, 576)).astype(np.float32)
    one = slicer.encode(x, mode="dense", step=0.3, trellis=True, classes=8, threads=1)
    two = slicer.encode(x, mode="dense", step=0.3, trellis=True, classes=8, threads=2)
    assert one == two
    assert same_values(slicer.decode(one, threads=1), slicer.decode(one, threads=2))


@settings(max_examples=12, deadline=None)
@given(
    rows=st.integers(1, 40),
    cols=st.integers(1, 64),
    bits=st.sampled_from([0.5, 1.0, 2.0, 4.0]),
    scale=st.sampled_from([1e-3, 1.0, 1e4]),
    seed=st.integers(0, 2**16),
)
def test_property_budget_is_kept(rows, cols, bits, scale, seed):
    """max_bytes with trellis: the stream fits, or a ValueError says no stream can."""
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal((rows, cols)) * scale).astype(np.float32)
    limit = max(1, int(bits * x.size / 8))
    try:
        s = slicer.encode(x, mode="dense", max_bytes=limit, trellis=True, classes="auto")
    except ValueError as exc:
        assert "max_bytes" in str(exc)
        return
    assert len(s) <= limit
    assert slicer.decode(s).shape == x.shape
