"""Trellis frame contexts (docs/format.md §17.4): the C++ backend against the NumPy reference,
byte for byte; hostile trellis contexts and frames end in FormatError; the gain at equal bytes."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import reference_dense as rd
import reference_frames as rf
import slicer
from test_frames import damaged_frames_agree, reseal_context, rows_like_llm, verdict_ref

DTYPES = [np.float32, np.float16, ml_dtypes.bfloat16, np.float64]


def pair(calib, lam=0.34, **kw):
    enc = slicer.FrameEncoder(calib, trellis=lam, **kw)
    ref = rf.build_context(calib, row_shape=kw.get("row_shape"), step=enc.step,
                           offsets=kw.get("offsets"), states=kw.get("states", 2),
                           classes=kw.get("classes", 1), trellis=lam)  # fmt: skip
    return enc, ref


def check_frames(enc, ref, rows):
    dec = slicer.FrameDecoder(enc.context)
    for i, row in enumerate(rows):
        frame = enc.encode(row)
        assert frame == rf.encode_frame(ref, row, i)
        want, seq = rf.decode_frame(ref, frame, i)
        got = dec.decode(frame)
        assert seq == i and got.dtype == want.dtype
        np.testing.assert_array_equal(got.view(np.uint8), want.view(np.uint8))


CASES = [(d, dtype, states, classes) for d in (1, 7, 576) for dtype in DTYPES
         for states in (1, 2, 4) for classes in (1, 3, 8) if classes <= d
         and (d < 576 or (states, classes) in ((1, 1), (2, 8), (4, 3)))]  # fmt: skip


@pytest.mark.parametrize(("d", "dtype", "states", "classes"), CASES + [(1500, np.float32, 2, 8)])
def test_trellis_contexts_and_frames_match_reference(d, dtype, states, classes):
    rng = np.random.default_rng(1000 + d + states + classes)
    spread = np.geomspace(0.05, 20.0, d)[rng.permutation(d)]
    calib = (rows_like_llm(rng, 3, d, np.float64) * spread).astype(dtype)
    rows = (rows_like_llm(rng, 2, d, np.float64) * spread).astype(dtype)
    enc, ref = pair(calib, step=0.125, states=states, classes=classes)
    assert ref.trellis and enc.trellis == ref.lam and enc.classes == classes
    assert enc.context == ref.data
    assert len(ref.tables) == 2 * classes and ref.data[7] == 2 | (1 if classes > 1 else 0)
    check_frames(enc, ref, rows)


def test_lambda_offsets_and_row_shape():
    rng = np.random.default_rng(2)
    calib = rng.normal(size=(4, 3, 5)).astype(np.float32)
    enc, ref = pair(calib, lam=1.5, step=0.05, offsets=(-3, 7, 2, -9), row_shape=(3, 5))
    assert enc.context == ref.data and ref.offsets == (-3, 7, 2, -9)
    assert enc.trellis == float(np.float32(1.5))
    dec = slicer.FrameDecoder(enc.context)
    assert dec.row_shape == (3, 5) and dec.trellis == enc.trellis
    check_frames(enc, ref, calib[1:3])
    # True is λ = 0.34 (encode's default)
    assert slicer.FrameEncoder(calib, step=0.05, trellis=True).trellis == float(np.float32(0.34))


def test_unseen_symbols_and_the_magnitude_limit():
    """Calibration of zeros: every symbol still codes in both quantizers' tables; |x|/Δ up to
    just below 2^52 codes and decodes (within the quantizer's half step); 2^52 is refused."""
    calib = np.zeros((2, 64), np.float64)
    enc, ref = pair(calib, step=1.0)
    assert all(v == 1 for t in ref.tables for v in t[1:])
    row = np.zeros(64)
    row[:6] = [2.0**52 - 8, -(2.0**51), 3.0, -1.0, 1e6, -7.0]
    check_frames(enc, ref, [row])
    got = slicer.FrameDecoder(enc.context, check_sequence=False).decode(enc.encode(row))
    assert np.all(np.abs(got - row) <= 1.0 + np.abs(row) * 2.0**-50)
    for bad in (2.0**52, np.nan, np.inf):
        row2 = row.copy()
        row2[9] = bad
        with pytest.raises(ValueError):
            enc.encode(row2)
        with pytest.raises(ValueError):
            rf.encode_frame(ref, row2, 0)


def test_calibration_with_one_element_leaves_q1_tables_empty():
    """A one-element row with one state is always coded in state 0 (Q0): Q1's table has no
    counts and is all classes 1 (§17.4 3.)."""
    calib = np.array([[3.0], [-1.0], [0.2]])
    enc, ref = pair(calib, step=0.5, states=1)
    assert enc.context == ref.data and all(v == 1 for v in ref.tables[1])
    check_frames(enc, ref, [np.array([5.5]), np.array([-0.1])])


def test_trellis_beats_plain_frames_at_equal_bytes():
    """LLM-like rows: at the same frame bytes (interpolated in log step), trellis frames decode
    with lower squared error than dead-zone frames (≈ 0.8-1 dB here; mode 3's gain)."""
    rng = np.random.default_rng(7)
    x = rows_like_llm(rng, 48, 576, np.float64).astype(np.float32)
    calib, rows = x[:16], x[16:]
    energy = float(np.sum(rows.astype(np.float64) ** 2))

    def curve(trellis, steps):
        out = []
        for step in steps:
            enc = slicer.FrameEncoder(calib, step=step, trellis=trellis)
            dec = slicer.FrameDecoder(enc.context)
            frames = [enc.encode(r) for r in rows]
            y = np.stack([dec.decode(f) for f in frames]).astype(np.float64)
            sse = float(np.sum((y - rows) ** 2))
            out.append((sum(map(len, frames)), 10 * np.log10(energy / sse)))
        return np.array(out)

    plain = curve(False, [0.3, 0.4, 0.5, 0.6, 0.8])
    tcq = curve(True, [0.15, 0.2, 0.25, 0.3, 0.4])
    # SNR of each at the bytes of the plain points inside both ranges
    lo, hi = max(plain[:, 0].min(), tcq[:, 0].min()), min(plain[:, 0].max(), tcq[:, 0].max())
    b = plain[(plain[:, 0] >= lo) & (plain[:, 0] <= hi), 0]
    assert b.size >= 2
    gain = np.interp(b, tcq[::-1, 0], tcq[::-1, 1]) - np.interp(b, plain[::-1, 0], plain[::-1, 1])
    assert np.all(gain > 0.4), gain


def test_hostile_trellis_contexts():
    rng = np.random.default_rng(6)
    calib = (rng.normal(size=(3, 9)) * np.arange(1, 10)).astype(np.float32)
    for classes in (1, 3):
        ctx = slicer.FrameEncoder(calib, step=0.1, trellis=True, classes=classes).context
        for cut in range(len(ctx)):
            with pytest.raises(slicer.FormatError):
                slicer.FrameDecoder(ctx[:cut])
        body = ctx[:-4]
        # every byte of the fields and the map, every 5th of the tables (the tables' checks
        # are §17.1's, tested on plain contexts byte by byte)
        where = list(range(min(len(body), 40))) + list(range(40, len(body), 5))
        for i in where:
            for v in (0x00, 0xFF, body[i] ^ 0x01, body[i] ^ 0x02, body[i] ^ 0x40):
                bad = reseal_context(body[:i] + bytes([v]) + body[i + 1 :])
                want = verdict_ref(lambda bad=bad: rf.parse_context(bad, 2**18))
                if want is None:
                    with pytest.raises(slicer.FormatError):
                        slicer.FrameDecoder(bad)
                else:
                    got = slicer.FrameDecoder(bad)
                    assert got.context_id == want.context_id
                    assert got.trellis == want.lam and got.classes == len(want.tables) // (
                        2 if want.trellis else 1
                    )
    # λ not a positive normal binary32 → corrupt
    for lam in (0.0, -1.0, float("inf"), float("nan"), 1e-40):
        data = rf.context_bytes(1, (4,), 1.0, 0, (0, 0, 0, 0), None, 1,
                                tables=[[1] * rd.NUM_SYMBOLS] * 2, lam=lam)  # fmt: skip
        with pytest.raises(slicer.FormatError):
            slicer.FrameDecoder(data)
        with pytest.raises(rd.ReferenceFormatError):
            rf.parse_context(data)
    good = rf.context_bytes(1, (4,), 1.0, 0, (0, 0, 0, 0), None, 1,
                            tables=[[1] * rd.NUM_SYMBOLS] * 2, lam=0.25)  # fmt: skip
    assert slicer.FrameDecoder(good).trellis == 0.25
    one_table = rf.context_bytes(1, (4,), 1.0, 0, (0, 0, 0, 0), None, 1,
                                 tables=[[1] * rd.NUM_SYMBOLS], lam=0.25)  # fmt: skip
    with pytest.raises(slicer.FormatError):  # a trellis context needs 2T tables
        slicer.FrameDecoder(one_table)
    flags4 = bytearray(good[:-4])
    flags4[7] |= 4  # a reserved flag bit
    with pytest.raises(slicer.FormatError):
        slicer.FrameDecoder(reseal_context(bytes(flags4)))


def test_hostile_trellis_frames_same_verdict_as_reference():
    rng = np.random.default_rng(4)
    x = rows_like_llm(rng, 6, 40)
    x[4, 3] = 900.0  # extra bits in the frame
    enc, ref = pair(x[:3], step=0.2, classes=2)
    dec = slicer.FrameDecoder(enc.context, check_sequence=False)
    frame = enc.encode(x[4])
    for cut in range(len(frame)):
        with pytest.raises(slicer.FormatError):
            dec.decode(frame[:cut])
    for i in range(len(frame)):
        bad = bytearray(frame)
        bad[i] ^= 0x10
        with pytest.raises(slicer.FormatError):
            dec.decode(bytes(bad))
    accepted, total = damaged_frames_agree(dec, ref, frame)
    assert 0 < accepted < total
    # a frame of the plain context of the same rows is refused (another context id)
    plain = slicer.FrameEncoder(x[:3], step=0.2, classes=2)
    with pytest.raises(slicer.FormatError, match="checksum"):
        dec.decode(plain.encode(x[4]))


def test_trellis_argument_errors():
    x = np.ones((2, 8), np.float32)
    with pytest.raises(TypeError, match="trellis"):
        slicer.FrameEncoder(x, step=0.1, trellis="yes")
    for bad in (-1.0, 0.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="trellis"):
            slicer.FrameEncoder(x, step=0.1, trellis=bad)
    with pytest.raises(ValueError, match="trellis"):
        slicer.FrameEncoder(x, step=0.1, trellis=1e-50)  # below binary32's normal range
    with pytest.raises(ValueError, match="rho"):
        slicer.FrameEncoder(x, step=0.1, trellis=True, rho=0.4)
    with pytest.raises(TypeError, match="offsets"):
        slicer.FrameEncoder(x, step=0.1, trellis=True, offsets=(1, 2))
    with pytest.raises(ValueError, match="offsets"):
        slicer.FrameEncoder(x, step=0.1, trellis=True, offsets=(1, 2, 3, 300))
    with pytest.raises(ValueError):
        slicer.FrameEncoder(np.full((1, 8), np.nan, np.float32), step=0.1, trellis=True)
    with pytest.raises(ValueError, match="step"):
        slicer.FrameEncoder(np.full((1, 8), 1e30), step=1e-30, trellis=True)


def test_rel_error_is_met_by_the_trellis_frames_of_the_calibration_rows():
    rng = np.random.default_rng(9)
    x = rows_like_llm(rng, 8, 96)
    for goal in (0.02, 0.1):
        enc = slicer.FrameEncoder(x, rel_error=goal, trellis=True)
        dec = slicer.FrameDecoder(enc.context, check_sequence=False)
        errs = [np.linalg.norm(dec.decode(enc.encode(r)) - r) / np.linalg.norm(r) for r in x]
        assert np.mean(errs) <= goal
        # within 1/16 octave of the largest such step: twice the step misses the goal
        enc2 = slicer.FrameEncoder(x, step=enc.step * 2, trellis=True)
        dec2 = slicer.FrameDecoder(enc2.context, check_sequence=False)
        errs2 = [np.linalg.norm(dec2.decode(enc2.encode(r)) - r) / np.linalg.norm(r) for r in x]
        assert np.mean(errs2) > goal


def test_context_size_bound():
    """§17.4: a trellis context is at most 62 + ceil(R/2) + 2T·1111 bytes (2284 without a map);
    the frame bound holds for rows of the largest magnitudes."""
    rng = np.random.default_rng(3)
    for d, classes in ((5, 1), (5, 5), (300, 16)):
        calib = rng.standard_t(1, size=(4, d)) * 10.0 ** rng.uniform(-3, 3, size=d) * 1e3
        calib = np.clip(calib, -1e9, 1e9)  # |x| / step below 2^52
        enc = slicer.FrameEncoder(calib, step=1e-6, trellis=True, classes=classes)
        bound = 62 + (d + 1) // 2 * (classes > 1) + 2 * classes * 1111
        assert len(enc.context) <= bound
        worst = np.full(d, 2.0**51) * enc.step * np.where(np.arange(d) % 2, -1, 1)
        frame = enc.encode(worst)
        assert len(frame) <= 1 + 4 + 24 + 2 * d + (51 * d + 7) // 8 + 4


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    d=st.integers(1, 70),
    rows=st.integers(1, 3),
    log_step=st.floats(-12, 6),
    lam=st.floats(0.01, 4.0),
    seed=st.integers(0, 2**32 - 1),
    dtype=st.sampled_from(DTYPES),
    states=st.sampled_from([1, 2, 4]),
    classes=st.sampled_from([1, 1, 2, 3, 16]),
)
def test_property_trellis_matches_reference(d, rows, log_step, lam, seed, dtype, states, classes):
    classes = min(classes, d)
    rng = np.random.default_rng(seed)
    scale = 10.0 ** rng.uniform(-3, 4)
    spread = 10.0 ** rng.uniform(-2, 2, size=d) if classes > 1 else 1.0
    lim = 6e4
    calib = np.clip(rng.standard_t(3, size=(rows, d)) * scale * spread, -lim, lim).astype(dtype)
    row = np.clip(rng.standard_t(3, size=d) * scale * spread * rng.uniform(0.1, 10), -lim, lim)
    row = row.astype(dtype)
    step = float(np.float32(2.0**log_step))
    if float(np.max(np.abs(np.concatenate([calib.ravel(), row]).astype(np.float64)))) / step >= (
        2.0**52
    ):
        return  # "step too small" (tested above)
    enc, ref = pair(calib, lam=lam, step=step, states=states, classes=classes)
    assert enc.context == ref.data
    check_frames(enc, ref, [row])
