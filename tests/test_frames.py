"""Frames (docs/format.md §17): the C++ backend against the NumPy reference, byte for byte;
hostile contexts and frames end in FormatError; argument errors name the argument."""

from __future__ import annotations

import struct
import zlib

import ml_dtypes
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import reference_dense as rd
import reference_frames as rf
import slicer

DTYPES = [np.float32, np.float16, ml_dtypes.bfloat16, np.float64]


def rows_like_llm(rng: np.random.Generator, n: int, d: int, dtype=np.float32) -> np.ndarray:
    """Heavy-tailed rows with a few outlier channels, like LLM hidden states."""
    x = rng.standard_t(4, size=(n, d)) * 1.5
    if d > 8:
        x[:, rng.choice(d, size=max(1, d // 200), replace=False)] *= 300.0
    return x.astype(dtype)


def pair(calib, **kw):
    enc = slicer.FrameEncoder(calib, **kw)
    row_shape = kw.get("row_shape")
    ref = rf.build_context(calib, row_shape=row_shape, step=enc.step,
                           rho_256=round(kw.get("rho", 0.5) * 256), offsets=kw.get("offsets"),
                           states=kw.get("states", 2), classes=kw.get("classes", 1))  # fmt: skip
    return enc, ref


@pytest.mark.parametrize("states", [1, 2, 4])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("d", [1, 7, 576, 1500, 8192])
def test_context_and_frames_match_reference(dtype, d, states):
    rng = np.random.default_rng(d)
    calib = rows_like_llm(rng, 3, d, dtype)
    rows = rows_like_llm(rng, 3, d, dtype)
    enc, ref = pair(calib, step=0.125, states=states)
    assert ref.states == states
    assert enc.context == ref.data
    dec = slicer.FrameDecoder(enc.context)
    for i, row in enumerate(rows):
        frame = enc.encode(row)
        assert frame == rf.encode_frame(ref, row, i)
        want, seq = rf.decode_frame(ref, frame, i)
        got = dec.decode(frame)
        assert seq == i and got.dtype == want.dtype and got.shape == (d,)
        np.testing.assert_array_equal(got.view(np.uint8), want.view(np.uint8))


def test_row_shape_and_offsets_and_rho():
    rng = np.random.default_rng(5)
    calib = rng.normal(size=(4, 3, 5)).astype(np.float32)
    enc, ref = pair(calib, step=0.05, rho=0.375, offsets=(-3, 7), row_shape=(3, 5))
    assert enc.context == ref.data and ref.offsets == (-3, 7) and ref.rho_256 == 96
    dec = slicer.FrameDecoder(enc.context)
    assert dec.row_shape == (3, 5)
    frame = enc.encode(calib[1])
    assert frame == rf.encode_frame(ref, calib[1], 0)
    np.testing.assert_array_equal(dec.decode(frame), rf.decode_frame(ref, frame)[0])


def test_unseen_symbols_still_code():
    """Calibration of zeros; frames with codes up to 2^53 still code and decode exactly."""
    calib = np.zeros((2, 64), np.float64)
    enc, ref = pair(calib, step=1.0)
    assert all(v == 1 for v in ref.classes[1:])
    row = np.zeros(64)
    row[:6] = [2.0**53, -(2.0**52), 3.0, -1.0, 1e6, -7.0]
    frame = enc.encode(row)
    assert frame == rf.encode_frame(ref, row, 0)
    np.testing.assert_array_equal(slicer.FrameDecoder(enc.context).decode(frame), row)


def test_overhead_is_at_most_eight_bytes():
    rng = np.random.default_rng(1)
    x = rows_like_llm(rng, 20, 576)
    enc, ref = pair(x[:10], step=0.5)
    for row in x[10:]:
        frame = enc.encode(row)
        bits_len, pos = 0, 1
        while True:  # the bits_len varint
            bits_len |= (frame[pos] & 0x7F) << (7 * (pos - 1))
            pos += 1
            if not frame[pos - 1] & 0x80:
                break
        rans_len = len(frame) - 4 - pos - bits_len
        assert len(frame) - rans_len - bits_len == 1 + (pos - 1) + 4 <= 8


def test_sequence_numbers_wrap_and_are_checked():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(300, 16)).astype(np.float32)
    enc = slicer.FrameEncoder(x[:4], step=0.1)
    dec = slicer.FrameDecoder(enc.context)
    frames = [enc.encode(r) for r in x]
    assert [f[0] for f in frames[254:258]] == [254, 255, 0, 1]
    for f in frames[:258]:
        dec.decode(f)
    with pytest.raises(slicer.FormatError, match="out of sequence"):
        dec.decode(frames[259])  # frame 258 lost
    dec.seq = 3  # resync
    dec.decode(frames[259])
    lax = slicer.FrameDecoder(enc.context, check_sequence=False)
    lax.decode(frames[7])


def test_wrong_context_and_damage_are_format_errors():
    rng = np.random.default_rng(3)
    x = rows_like_llm(rng, 8, 96)
    a = slicer.FrameEncoder(x[:4], step=0.25)
    b = slicer.FrameEncoder(x[:4], step=0.5)
    frame = a.encode(x[5])
    with pytest.raises(slicer.FormatError, match="checksum"):
        slicer.FrameDecoder(b.context).decode(frame)
    dec = slicer.FrameDecoder(a.context, check_sequence=False)
    dec.decode(frame)
    for cut in range(len(frame)):
        with pytest.raises(slicer.FormatError):
            dec.decode(frame[:cut])
    for i in range(len(frame)):
        for bit in (0, 3, 7):
            bad = bytearray(frame)
            bad[i] ^= 1 << bit
            with pytest.raises(slicer.FormatError):
                dec.decode(bytes(bad))
    with pytest.raises(slicer.FormatError):
        dec.decode(frame + b"\0")


def reseal_frame(ref: rf.Context, body: bytes) -> bytes:
    check = zlib.crc32(body, zlib.crc32(struct.pack("<I", ref.context_id)))
    return body + struct.pack("<I", check)


def reseal_context(body: bytes) -> bytes:
    return body + struct.pack("<I", zlib.crc32(body))


def verdict_ref(fn):
    try:
        return fn()
    except rd.ReferenceFormatError:
        return None


def test_resealed_damage_same_verdict_as_reference():
    """Damage behind a valid check: the C++ decoder agrees with the reference on every one."""
    rng = np.random.default_rng(4)
    x = rows_like_llm(rng, 6, 40)
    enc, ref = pair(x[:3], step=0.3)
    dec = slicer.FrameDecoder(enc.context, check_sequence=False)
    accepted, total = damaged_frames_agree(dec, ref, enc.encode(x[4]))
    assert accepted < total


def damaged_frames_agree(dec, ref, frame: bytes) -> tuple[int, int]:  # noqa: ANN001
    """Every byte of the frame's body set to 0x00 / 0xFF / flipped in bit 0 / bit 7, every
    truncation and two extensions, each resealed behind a valid check: the C++ decoder refuses
    exactly those the reference refuses and decodes the others to the reference's values.
    Returns (accepted, total)."""
    body = frame[:-4]
    mutations = []
    for i in range(len(body)):
        for v in (0x00, 0xFF, body[i] ^ 0x01, body[i] ^ 0x80):
            mutations.append(body[:i] + bytes([v]) + body[i + 1 :])
    mutations += [body[:i] for i in range(len(body))] + [body + b"\0", body + b"\x01"]
    accepted = 0
    for m in mutations:
        bad = reseal_frame(ref, m)
        want = verdict_ref(lambda bad=bad: rf.decode_frame(ref, bad)[0])
        if want is None:
            with pytest.raises(slicer.FormatError):
                dec.decode(bad)
        else:
            accepted += 1
            np.testing.assert_array_equal(dec.decode(bad), want)
    return accepted, len(mutations)


def test_hostile_contexts():
    rng = np.random.default_rng(6)
    ctx = slicer.FrameEncoder(rng.normal(size=(2, 10)).astype(np.float32), step=0.1).context
    for cut in range(len(ctx)):
        with pytest.raises(slicer.FormatError):
            slicer.FrameDecoder(ctx[:cut])
    body = ctx[:-4]
    for i in range(len(body)):
        for v in (0x00, 0xFF, body[i] ^ 0x01, body[i] ^ 0x40):
            bad = reseal_context(body[:i] + bytes([v]) + body[i + 1 :])
            want = verdict_ref(lambda bad=bad: rf.parse_context(bad, 2**18))
            if want is None:
                with pytest.raises(slicer.FormatError):
                    slicer.FrameDecoder(bad)
            else:
                assert slicer.FrameDecoder(bad).context_id == want.context_id
    with pytest.raises(slicer.FormatError):  # a full stream is not a context
        slicer.FrameDecoder(slicer.encode(np.ones(10, np.float32), mode="dense", step=0.1))
    with pytest.raises(slicer.FormatError):  # nor is a context a stream
        slicer.decode(ctx)
    big = rf.context_bytes(1, (1 << 18,), 1.0, 128, (0, 0), [1] * rd.NUM_SYMBOLS)
    with pytest.raises(slicer.FormatError, match="max_elements"):
        slicer.FrameDecoder(big, max_elements=1000)
    slicer.FrameDecoder(big, max_elements=1 << 18)
    too_big = rf.context_bytes(1, (1 << 18, 2), 1.0, 128, (0, 0), [1] * rd.NUM_SYMBOLS)
    with pytest.raises(slicer.FormatError):
        slicer.FrameDecoder(too_big, max_elements=1 << 30)


def test_argument_errors_name_the_argument():
    x = np.ones((2, 8), np.float32)
    with pytest.raises(ValueError, match="exactly one of step= and rel_error="):
        slicer.FrameEncoder(x)
    with pytest.raises(ValueError, match="exactly one"):
        slicer.FrameEncoder(x, step=0.1, rel_error=0.1)
    with pytest.raises(ValueError, match="rel_error"):
        slicer.FrameEncoder(x, rel_error=1.5)
    with pytest.raises(ValueError, match="rho"):
        slicer.FrameEncoder(x, step=0.1, rho=0.9)
    with pytest.raises(ValueError, match="states"):
        slicer.FrameEncoder(x, step=0.1, states=3)
    with pytest.raises(ValueError, match="whole rows"):
        slicer.FrameEncoder(x, step=0.1, row_shape=(3,))
    with pytest.raises(ValueError, match="row_shape"):
        slicer.FrameEncoder(x, step=0.1, row_shape=(0,))
    with pytest.raises(TypeError, match="calibration"):
        slicer.FrameEncoder(np.ones((2, 8), np.int32), step=0.1)
    enc = slicer.FrameEncoder(x, step=0.1)
    with pytest.raises(TypeError, match="dtype"):
        enc.encode(np.ones(8, np.float16))
    with pytest.raises(ValueError, match="elements"):
        enc.encode(np.ones(9, np.float32))
    with pytest.raises(ValueError, match="NaN"):
        enc.encode(np.full(8, np.nan, np.float32))
    with pytest.raises(TypeError, match="context"):
        slicer.FrameDecoder("abc")
    with pytest.raises(TypeError, match="max_elements"):
        slicer.FrameDecoder(enc.context, max_elements=1.5)
    with pytest.raises(TypeError, match="frame"):
        slicer.FrameDecoder(enc.context).decode("abc")
    assert enc.seq == 0  # failed encodes do not advance


def test_rel_error_is_met_on_the_calibration_rows():
    rng = np.random.default_rng(7)
    x = rows_like_llm(rng, 16, 256)
    for goal in (0.005, 0.05):
        enc = slicer.FrameEncoder(x, rel_error=goal)
        dec = slicer.FrameDecoder(enc.context)
        y = np.stack([dec.decode(enc.encode(r)) for r in x])
        err = np.mean(np.linalg.norm(y - x, axis=1) / np.linalg.norm(x, axis=1))
        assert err <= goal * 1.0001 and err > goal / 4


def test_torch_rows():
    torch = pytest.importorskip("torch")
    x = torch.randn(4, 32)
    enc = slicer.FrameEncoder(x, step=0.05)
    frame = enc.encode(x[1])
    assert enc.states == 2  # the default
    ref = rf.build_context(x.numpy(), step=enc.step, states=2)
    assert frame == rf.encode_frame(ref, x[1].numpy(), 0)
    xb = x.to(torch.bfloat16)
    encb = slicer.FrameEncoder(xb, step=0.05)
    assert slicer.FrameDecoder(encb.context).decode(encb.encode(xb[0])).dtype == ml_dtypes.bfloat16


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    d=st.integers(1, 70),
    rows=st.integers(1, 3),
    log_step=st.floats(-12, 6),
    rho_256=st.integers(1, 128),
    seed=st.integers(0, 2**32 - 1),
    dtype=st.sampled_from(DTYPES),
    states=st.sampled_from([1, 2, 4]),
    classes=st.sampled_from([1, 1, 2, 3, 8, 16]),
)
def test_property_matches_reference(d, rows, log_step, rho_256, seed, dtype, states, classes):
    """Contexts (with a class map of up to min(16, d) classes, §18) and frames."""
    classes = min(classes, d)
    rng = np.random.default_rng(seed)
    scale = 10.0 ** rng.uniform(-3, 4)
    spread = 10.0 ** rng.uniform(-2, 2, size=d) if classes > 1 else 1.0
    lim = 6e4  # finite in every dtype
    calib = np.clip(rng.standard_t(3, size=(rows, d)) * scale * spread, -lim, lim).astype(dtype)
    row = np.clip(rng.standard_t(3, size=d) * scale * spread * rng.uniform(0.1, 10), -lim, lim)
    row = row.astype(dtype)
    step = float(np.float32(2.0**log_step))
    ref = rf.build_context(calib, step=step, rho_256=rho_256, states=states, classes=classes)
    enc = slicer.FrameEncoder(calib, step=step, rho=rho_256 / 256, states=states, classes=classes)
    assert enc.context == ref.data
    frame = enc.encode(row)
    assert frame == rf.encode_frame(ref, row, 0)
    got = slicer.FrameDecoder(enc.context).decode(frame)
    want, _ = rf.decode_frame(ref, frame, 0)
    np.testing.assert_array_equal(got.view(np.uint8), want.view(np.uint8))


GOLDEN = __import__("pathlib").Path(__file__).resolve().parent / "golden" / "v2" / "frames"
GOLDEN_CASES = sorted(p.stem for p in GOLDEN.glob("*.ctx"))
GOLDEN_DTYPES = {"float32": np.float32, "float16": np.float16, "bfloat16": ml_dtypes.bfloat16,
                 "float64": np.float64}  # fmt: skip


def test_golden_cases_exist():
    assert len(GOLDEN_CASES) >= 6


@pytest.mark.parametrize("name", GOLDEN_CASES)
def test_golden(name):
    """The C++ backend rebuilds each golden context and frame byte for byte and decodes them
    to the reference's rows."""
    import json

    meta = json.loads((GOLDEN / f"{name}.json").read_text())
    dt = GOLDEN_DTYPES[meta["dtype"]]
    calib = np.load(GOLDEN / f"{name}_calib.npy").view(dt)
    rows = np.load(GOLDEN / f"{name}_rows.npy").view(dt)
    ctx = (GOLDEN / f"{name}.ctx").read_bytes()
    offsets = None if meta["offsets"] is None else tuple(meta["offsets"])
    lam = meta.get("trellis")  # a trellis context (§17.4): λ, no ρ
    enc = slicer.FrameEncoder(calib, step=meta["step"],
                              rho=None if lam else meta["rho_256"] / 256,
                              offsets=offsets, row_shape=tuple(meta["row_shape"]),
                              states=meta["states"], classes=meta.get("classes", 1),
                              trellis=lam or False)  # fmt: skip
    assert enc.context == ctx
    assert slicer.FrameDecoder(ctx).trellis == (None if lam is None else float(np.float32(lam)))
    assert slicer.FrameDecoder(ctx).classes == meta.get("classes", 1)
    ref = rf.parse_context(ctx)
    dec = slicer.FrameDecoder(ctx)
    for k in range(meta["frames"]):
        frame = (GOLDEN / f"{name}_{k}.frame").read_bytes()
        assert enc.encode(rows[k]) == frame
        want, seq = rf.decode_frame(ref, frame, k)
        got = dec.decode(frame)
        assert seq == k
        np.testing.assert_array_equal(got.view(np.uint8), want.view(np.uint8))


# ----------------------------------------------------------------------------- class maps (§18)


@pytest.mark.parametrize("classes", [2, 3, 8, 16])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("d", [16, 37, 576])
def test_class_map_contexts_match_reference(dtype, d, classes):
    rng = np.random.default_rng(100 + d + classes)
    spread = np.geomspace(0.01, 30.0, d)[rng.permutation(d)]
    calib = (rows_like_llm(rng, 5, d, np.float64) * spread).astype(dtype)
    rows = (rows_like_llm(rng, 3, d, np.float64) * spread).astype(dtype)
    enc, ref = pair(calib, step=0.125, states=2, classes=classes)
    assert enc.context == ref.data and enc.classes == classes
    assert ref.class_map is not None and sorted(set(ref.class_map)) == list(range(classes))
    dec = slicer.FrameDecoder(enc.context)
    assert dec.classes == classes
    for i, row in enumerate(rows):
        frame = enc.encode(row)
        assert frame == rf.encode_frame(ref, row, i)
        want, _ = rf.decode_frame(ref, frame, i)
        np.testing.assert_array_equal(dec.decode(frame).view(np.uint8), want.view(np.uint8))


def test_class_map_rule_orders_positions_by_magnitude():
    """§18.2 on a hand-checkable case: positions ranked by their summed |code|."""
    calib = np.array([[5.0, 0.0, 3.0, -3.0, 1.0, 9.0]])
    ref = rf.build_context(calib, step=1.0, classes=3, states=2)
    # S = 5, 0, 3, 3, 1, 9 → order 1, 4, 2, 3, 0, 5 → classes r·3 // 6
    assert ref.class_map == (2, 0, 1, 1, 0, 2)
    assert slicer.FrameEncoder(calib, step=1.0, classes=3).context == ref.data


def test_class_maps_make_llm_like_frames_smaller():
    """Rows whose channels differ in spread by two orders of magnitude (like LLM states): 8
    classes code the rows after the calibration ones in fewer bytes than one table (≈ 16 %
    here), the context excluded, and decode to the same values."""
    rng = np.random.default_rng(12)
    spread = 10.0 ** rng.uniform(-1, 1, size=576)
    x = (rows_like_llm(rng, 192, 576, np.float64) * spread).astype(np.float32)
    sizes, decoded = {}, {}
    for classes in (1, 8):
        enc = slicer.FrameEncoder(x[:64], step=1.0, classes=classes)
        dec = slicer.FrameDecoder(enc.context)
        frames = [enc.encode(r) for r in x[64:]]
        sizes[classes] = sum(map(len, frames))
        decoded[classes] = np.stack([dec.decode(f) for f in frames])
    np.testing.assert_array_equal(decoded[1], decoded[8])
    assert sizes[8] < 0.9 * sizes[1]


def class_context(classes=3, d=9):
    rng = np.random.default_rng(11)
    calib = (rng.normal(size=(4, d)) * np.arange(1, d + 1)).astype(np.float32)
    return slicer.FrameEncoder(calib, step=0.5, classes=classes).context


def test_hostile_class_contexts():
    ctx = class_context()
    body = ctx[:-4]
    for cut in range(len(ctx)):
        with pytest.raises(slicer.FormatError):
            slicer.FrameDecoder(ctx[:cut])
    for i in range(len(body)):
        for v in (0x00, 0xFF, body[i] ^ 0x01, body[i] ^ 0x10, body[i] ^ 0x40):
            bad = reseal_context(body[:i] + bytes([v]) + body[i + 1 :])
            want = verdict_ref(lambda bad=bad: rf.parse_context(bad, 2**18))
            if want is None:
                with pytest.raises(slicer.FormatError):
                    slicer.FrameDecoder(bad)
            else:
                got = slicer.FrameDecoder(bad)
                assert got.context_id == want.context_id and got.classes == len(want.tables)
    ref = rf.parse_context(ctx)
    flags_at = 8  # magic 4, version, kind, dtype, flags
    nclass_at = len(ref.data) - 4 - sum(len(rd.write_table(list(t))) for t in ref.tables) - 5 - 1
    assert body[nclass_at] == 3 and body[flags_at] == 1
    table = ref.tables[0]

    def craft(flags=1, nclass=3, cmap=None, tables=None, raw_map=None):
        out = bytearray(body[:flags_at]) + bytes([flags]) + body[flags_at + 1 : nclass_at]
        out += bytes([nclass])
        out += raw_map if raw_map is not None else rcl_pack(cmap or list(ref.class_map))
        for t in tables if tables is not None else ref.tables:
            out += rd.write_table(list(t))
        return reseal_context(bytes(out))

    def rcl_pack(cmap):
        out = bytearray((len(cmap) + 1) // 2)
        for a, v in enumerate(cmap):
            out[a // 2] |= v << (4 * (a % 2))
        return bytes(out)

    assert craft() == ctx  # the crafting reproduces the valid context
    bad = {
        "reserved flag": craft(flags=3),
        "one class": craft(nclass=1, tables=ref.tables[:1]),
        "17 classes": craft(nclass=17, tables=list(ref.tables) * 6),
        "more classes than positions": craft(nclass=10, tables=list(ref.tables) * 4),
        "entry >= nclass": craft(cmap=[0, 1, 2, 3, 0, 1, 2, 0, 1]),
        "unused class": craft(cmap=[0, 1, 1, 0, 0, 1, 1, 0, 1]),
        "padding nibble": craft(raw_map=rcl_pack(list(ref.class_map))[:-1]
                                + bytes([rcl_pack(list(ref.class_map))[-1] | 0x10])),
        "a table short": craft(tables=ref.tables[:2]),
        "a table with a zero class": craft(tables=[table, table, [0] + list(table[1:])]),
        "map truncated": craft(raw_map=rcl_pack(list(ref.class_map))[:-1]),
        "trailing byte": reseal_context(body + b"\0"),
    }  # fmt: skip
    for why, data in bad.items():
        with pytest.raises(rd.ReferenceFormatError):
            rf.parse_context(data)
        with pytest.raises(slicer.FormatError):
            slicer.FrameDecoder(data)
        assert why


def test_class_arguments():
    x = np.ones((2, 8), np.float32)
    for bad in (0, 17, 9):
        with pytest.raises(ValueError, match="classes"):
            slicer.FrameEncoder(x, step=0.1, classes=bad)
    for bad in (True, 2.0, "4"):
        with pytest.raises(TypeError, match="classes"):
            slicer.FrameEncoder(x, step=0.1, classes=bad)
    assert slicer.FrameEncoder(x, step=0.1, classes=8).classes == 8
    assert slicer.FrameEncoder(x, step=0.1).classes == 1
