"""Edge/server messages and row codecs of slicer.llm (no model needed)."""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import slicer
from slicer.llm import messages as m

FIELDS = dict(kind=m.DECODE, codec=m.CODEC_RAW, cut=12, rows=1, session=7, step=3, position=40)


def _msg(**kw) -> m.Message:
    fields = {**FIELDS, "model": 0xDEADBEEF, "payload": bytes(range(16)), **kw}
    return m.Message(**fields)


@given(
    kind=st.sampled_from([m.PREFILL, m.HANDOVER, m.DECODE]),
    cut=st.integers(0, 255),
    rows=st.integers(1, m.MAX_ROWS),
    session=st.integers(0, 2**32 - 1),
    step=st.integers(0, 2**32 - 1),
    position=st.integers(0, 2**32 - 1),
    model=st.integers(0, 2**32 - 1),
    payload=st.binary(max_size=64),
)
def test_roundtrip(kind, cut, rows, session, step, position, model, payload) -> None:
    msg = m.Message(kind, m.CODEC_SLICER, cut, rows, session, step, position, model, payload)
    data = msg.to_bytes()
    assert len(data) == m.framing_bytes(rows, session, step, position) + len(payload)
    assert len(data) - len(payload) <= m.MAX_FRAMING_BYTES
    assert m.parse(data) == msg


def test_layout_is_the_documented_one() -> None:
    data = _msg(position=300).to_bytes()
    assert data[:2] == b"SL" and data[2] == 2 and data[3] == (m.DECODE << 4) | m.CODEC_RAW
    # cut, rows 1, session 7, step 3, position 300 = varint ac 02, model
    assert data[4:10] == bytes([12, 1, 7, 3, 0xAC, 0x02])
    assert struct.unpack_from("<I", data, 10)[0] == 0xDEADBEEF
    assert data[14:-4] == bytes(range(16))
    assert struct.unpack_from("<I", data, len(data) - 4)[0] == zlib.crc32(data[:-4])
    # a decode step of session < 128 at step and position < 16384: 19 bytes of framing
    assert len(data) - 16 == m.FRAMING_BYTES - 1  # step 3 needs one varint byte, not two


@given(data=st.data())
def test_any_corruption_is_a_message_error(data) -> None:
    good = bytearray(_msg().to_bytes())
    i = data.draw(st.integers(0, len(good) - 1))
    bit = data.draw(st.integers(0, 7))
    good[i] ^= 1 << bit
    with pytest.raises(m.MessageError):
        m.parse(bytes(good))


@pytest.mark.parametrize("cut", [*range(0, 30, 3), -1])
def test_truncated_is_a_message_error(cut: int) -> None:
    data = _msg().to_bytes()
    with pytest.raises(m.MessageError):
        m.parse(data[:cut])


def test_format_error_family_and_bad_type() -> None:
    assert issubclass(m.MessageError, slicer.FormatError)
    with pytest.raises(TypeError, match="bytes-like"):
        m.parse("SL...")


def _resealed(data: bytes, offset: int, value: int) -> bytes:
    b = bytearray(data[:-4])
    b[offset] = value
    return _sealed(bytes(b))


def test_semantic_checks_after_crc() -> None:
    data = _msg().to_bytes()
    with pytest.raises(m.MessageError, match="version"):
        m.parse(bytes([*data[:2], 9]) + data[3:])
    with pytest.raises(m.MessageError, match="kind"):
        m.parse(_resealed(data, 3, 0x70))
    for unknown in (5, 7, 5 | m.TRANSFORM_FLAG):  # codecs 5-7 are unassigned, flag or not
        with pytest.raises(m.MessageError, match="codec"):
            m.parse(_resealed(data, 3, (m.DECODE << 4) | unknown))
    with pytest.raises(m.MessageError, match="no rows"):
        m.parse(_resealed(data, 5, 0))
    with pytest.raises(m.MessageError, match="token"):
        m.parse(_resealed(data, 3, (m.DECODE << 4) | m.CODEC_TOKEN))
    with pytest.raises(m.MessageError, match="not minimal"):  # rows 1 as 81 00
        m.parse(_sealed(data[:5] + bytes([0x81, 0x00]) + data[6:-4]))
    with pytest.raises(m.MessageError, match="longer than 5"):
        m.parse(_sealed(data[:6] + bytes([0xFF] * 6 + [1]) + data[7:-4]))
    with pytest.raises(m.MessageError, match="exceeds"):  # rows 65536
        m.parse(_sealed(data[:5] + bytes([0x80, 0x80, 0x04]) + data[6:-4]))
    with pytest.raises(m.MessageError, match="past the header"):  # varints into the CRC
        m.parse(_sealed(data[:5] + bytes([0x81] * 8)))


@given(
    kind=st.sampled_from([m.PREFILL, m.HANDOVER, m.DECODE]),
    codec=st.sampled_from([m.CODEC_RAW, m.CODEC_FP16, m.CODEC_SLICER, m.CODEC_FRAMES]),
    transform=st.booleans(),
    model=st.integers(0, 2**32 - 1),
    payload=st.binary(max_size=32),
)
def test_transform_flag_roundtrip(kind, codec, transform, model, payload) -> None:
    msg = m.Message(kind, codec, 9, 1, 3, 5, 70, model, payload, transform)
    data = msg.to_bytes()
    assert m.parse(data) == msg
    # the flag is bit 3 of the kind byte and costs no byte; without it the bytes are those of
    # a message built without the transform field at all (sessions without a transform)
    plain = m.Message(kind, codec, 9, 1, 3, 5, 70, model, payload).to_bytes()
    assert len(data) == len(plain)
    assert data[3] == plain[3] | (m.TRANSFORM_FLAG if transform else 0)
    assert data[4:-4] == plain[4:-4]
    assert (data == plain) == (not transform)


def test_transform_flag_not_on_tokens() -> None:
    token = m.Message(m.TOKEN, m.CODEC_TOKEN, 9, 1, 3, 5, 70, 1, b"\0\0\0\0")
    with pytest.raises(ValueError, match="token message"):
        m.Message(**{**token.__dict__, "transform": True}).to_bytes()
    data = token.to_bytes()
    with pytest.raises(m.MessageError, match="transform flag"):
        m.parse(_resealed(data, 3, data[3] | m.TRANSFORM_FLAG))


def test_model_tag_folds_the_transform_tag() -> None:
    fp = "553b1b08055a32a6"
    assert m.model_tag(fp) == 0x553B1B08 == m.model_tag(fp, None) == m.model_tag(fp, 0)
    assert m.model_tag(fp, 0x12345678) == 0x553B1B08 ^ 0x12345678
    assert m.model_tag(fp, 0x12345678) ^ m.model_tag(fp) == 0x12345678


def _sealed(body: bytes) -> bytes:
    return body + struct.pack("<I", zlib.crc32(body))


@pytest.mark.parametrize(
    "field,value", [("rows", 0x10000), ("step", -1), ("cut", 256), ("codec", 16)]
)
def test_out_of_range_fields_refused(field: str, value: int) -> None:
    with pytest.raises(ValueError, match=field):
        _msg(**{field: value}).to_bytes()
    with pytest.raises(TypeError, match=field):
        _msg(**{field: 1.5}).to_bytes()


@pytest.mark.parametrize("rows,width", [(1, 576), (7, 640), (3, 1)])
def test_row_codecs(rows: int, width: int, rng) -> None:
    x = (rng.standard_normal((rows, width)) * 3).astype(np.float32)
    x[0, 0] = 3000.0  # a massive activation
    raw = m.RawCodec()
    y = raw.decode(raw.encode(x), rows, width)
    assert y.shape == (1, rows, width) and np.array_equal(y[0], x)
    f16 = m.Fp16Codec()
    y = f16.decode(f16.encode(x), rows, width)
    np.testing.assert_allclose(y[0], x, rtol=2**-11)
    codec = m.SlicerCodec(sparsity=0.0, bits=16, delta=0.0)
    payload = codec.encode(x)
    y = m.codec_for_id(m.CODEC_SLICER).decode(payload, rows, width)
    np.testing.assert_allclose(y[0], slicer.decode(payload), rtol=0, atol=0)
    np.testing.assert_allclose(y[0], x, rtol=0, atol=float(np.abs(x).max(axis=1).max()) * 1e-4)


def test_row_codec_size_mismatch(rng) -> None:
    x = rng.standard_normal((2, 8)).astype(np.float32)
    with pytest.raises(m.MessageError, match="2x9"):
        m.RawCodec().decode(m.RawCodec().encode(x), 2, 9)
    stream = m.SlicerCodec(sparsity=0.5).encode(x)
    with pytest.raises(m.MessageError, match="expected 2x16"):
        m.codec_for_id(m.CODEC_SLICER).decode(stream, 2, 16)
    with pytest.raises(slicer.FormatError, match="max_elements"):  # claims more than expected
        m.codec_for_id(m.CODEC_SLICER).decode(stream, 2, 4)
    with pytest.raises(slicer.FormatError):
        m.codec_for_id(m.CODEC_SLICER).decode(stream[:-3], 2, 8)
    with pytest.raises(m.MessageError):
        m.codec_for_id(m.CODEC_TOKEN)


def test_make_codec() -> None:
    assert isinstance(m.make_codec(None), m.RawCodec)
    assert isinstance(m.make_codec("fp16"), m.Fp16Codec)
    assert m.make_codec("slicer", sparsity=0.5, bits=4).describe()["bits"] == 4
    with pytest.raises(ValueError, match="codec must be"):
        m.make_codec("zip")
    assert isinstance(m.make_codec("frames", step=0.8), m.FrameCodec)
    with pytest.raises(ValueError, match="step= or rel_error="):
        m.make_codec("frames")
    with pytest.raises(ValueError, match="states"):
        m.make_codec("frames", step=0.8, states=3)
    with pytest.raises(ValueError, match="rel_error"):
        m.make_codec("frames", rel_error=1.5)
    with pytest.raises(ValueError, match="sparsity"):
        m.make_codec("slicer", sparsity=1.5)
    with pytest.raises(ValueError, match="groups"):
        m.make_codec("slicer", groups="planes")
    assert m.make_codec("slicer", sparsity=0.5).options["groups"] == "rows"


# --------------------------------------------------------------------------- frames codec


def _hidden(rng, rows: int, width: int = 576) -> np.ndarray:
    """Rows shaped like an LLM's residual stream: mostly small, a few outlier channels, and a
    first row with a massive activation."""
    x = rng.standard_normal((rows, width)).astype(np.float32)
    x[:, 7] *= 40.0
    x[0, 3] = 3000.0
    return x


def _reference_frames(rows: np.ndarray, step: float) -> tuple[bytes, list[bytes]]:
    enc = slicer.FrameEncoder(rows, step=step, states=1)
    return enc.context, [enc.encode(r) for r in rows]


@pytest.mark.parametrize("rows,width", [(1, 576), (9, 576), (5, 640), (3, 7)])
def test_frames_roundtrip_matches_the_codec(rows: int, width: int, rng) -> None:
    """The payload is varint(len(context)), the context, then the rows' frames (each but the
    last after its varint length); decoded rows equal slicer.FrameDecoder's."""
    x = (
        _hidden(rng, rows, width)
        if width > 7
        else rng.standard_normal((rows, width)).astype(np.float32)
    )
    codec = m.FrameCodec(step=1.6)
    first = codec.encode(x, first=True)
    context, frames = _reference_frames(x, 1.6)
    expect = m._varint(len(context)) + context
    for i, f in enumerate(frames):
        expect += (m._varint(len(f)) if i + 1 < rows else b"") + f
    assert first == expect
    stream, y = m.FrameStream.open(first, rows, width)
    ref = slicer.FrameDecoder(context)
    assert np.array_equal(y[0], np.stack([ref.decode(f) for f in frames]))
    assert np.abs(y[0] - x).max() <= 1.6  # within one step (dead zone included)
    for k in range(3):  # decode steps: one frame each, 1 + 1 + 4 bytes of overhead
        row = rng.standard_normal((1, width)).astype(np.float32)
        frame = codec.encode(row, first=False)
        got = stream.decode(frame, 1)
        assert np.array_equal(got[0, 0], ref.decode(frame))
        assert stream.decoder.seq == (rows + k + 1) & 0xFF


def test_frames_with_a_class_map(rng) -> None:
    """classes=8: the context carries a class map (§18); the session's frames decode to the same
    rows as one table would (only the entropy coding differs) and a decode step is coded under
    the class tables."""
    x = _hidden(rng, 24)
    plain, classed = m.FrameCodec(step=1.6), m.FrameCodec(step=1.6, classes=8)
    s1, y1 = m.FrameStream.open(plain.encode(x), 24, 576)
    s8, y8 = m.FrameStream.open(classed.encode(x), 24, 576)
    assert s8.decoder.classes == 8 and s1.decoder.classes == 1
    assert np.array_equal(y1, y8)
    row = _hidden(rng, 2)[1:]
    frame = classed.encode(row, first=False)
    lax = slicer.FrameDecoder(classed.encoder.context, check_sequence=False)
    assert np.array_equal(s8.decode(frame, 1)[0, 0], lax.decode(frame))
    assert np.array_equal(s8.decode(classed.encode(row, first=False), 1),
                          s1.decode(plain.encode(row, first=False), 1))  # fmt: skip
    assert classed.describe()["classes"] == 8
    with pytest.raises(ValueError, match="classes"):
        m.FrameCodec(step=1.6, classes=17)


def test_frames_decode_step_is_small(rng) -> None:
    x = _hidden(rng, 32)
    codec = m.FrameCodec(step=0.5)
    stream, _ = m.FrameStream.open(codec.encode(x), 32, 576)
    row = _hidden(rng, 2)[1:]
    frame = codec.encode(row, first=False)
    full = slicer.encode(row, mode="dense", step=0.5)
    assert len(frame) + 20 < len(full)  # no header, no table: 20+ bytes less than a stream
    assert stream.decode(frame, 1).shape == (1, 1, 576)


def test_frames_errors_leave_the_stream_intact(rng) -> None:
    x = _hidden(rng, 8)
    codec = m.FrameCodec(step=0.8)
    stream, _ = m.FrameStream.open(codec.encode(x), 8, 576)
    rows = [rng.standard_normal((1, 576)).astype(np.float32) for _ in range(3)]
    frames = [codec.encode(r, first=False) for r in rows]
    # a frame of another context (same rows, another step) fails its check
    other = m.FrameCodec(step=0.9)
    other.encode(x)
    with pytest.raises(m.MessageError, match="another context"):
        stream.decode(other.encode(rows[0], first=False), 1)
    # a damaged frame (every byte, one bit) is a MessageError, never a wrong row
    for i in range(len(frames[0])):
        bad = bytearray(frames[0])
        bad[i] ^= 0x04
        with pytest.raises(m.MessageError):
            stream.decode(bytes(bad), 1)
    with pytest.raises(m.MessageError):
        stream.decode(frames[0][:-1], 1)
    # a lost frame: frame 1 before frame 0
    with pytest.raises(m.MessageError, match="sequence"):
        stream.decode(frames[1], 1)
    assert stream.decoder.seq == 8  # nothing advanced
    for r, f in zip(rows, frames, strict=True):
        assert np.abs(stream.decode(f, 1)[0, 0] - r[0]).max() <= 0.8
    # two frames in one payload: the first after its length
    two = codec.encode(np.concatenate(rows[:2]), first=False)
    assert stream.decode(two, 2).shape == (1, 2, 576)
    stream.rewind(2)
    assert stream.decoder.seq == 11
    with pytest.raises(m.MessageError, match="past the payload"):
        stream.decode(two[:3], 2)
    assert stream.decoder.seq == 11


def test_frames_bad_first_payload(rng) -> None:
    x = _hidden(rng, 4)
    first = m.FrameCodec(step=0.8).encode(x)
    with pytest.raises(m.MessageError, match="past the"):
        m.FrameStream.open(first[:40], 4, 576)
    with pytest.raises(m.MessageError, match="bad frame context"):
        m.FrameStream.open(first[:20] + bytes([first[20] ^ 1]) + first[21:], 4, 576)
    with pytest.raises(m.MessageError, match="bad frame context"):  # rows wider than expected
        m.FrameStream.open(first, 4, 100)
    wide = m.FrameCodec(step=0.8).encode(_hidden(rng, 4, 640))
    with pytest.raises(m.MessageError, match="expected \\(700,\\)"):
        m.FrameStream.open(wide, 4, 700)
    with pytest.raises(m.MessageError, match="frame"):
        m.FrameStream.open(first, 5, 576)  # claims one row more than it holds
    with pytest.raises(m.MessageError, match="FrameStream"):
        m.codec_for_id(m.CODEC_FRAMES)


def test_frames_codec_misuse(rng) -> None:
    codec = m.FrameCodec(rel_error=0.1)
    with pytest.raises(ValueError, match="first=True"):
        codec.encode(_hidden(rng, 1), first=False)
    with pytest.raises(ValueError, match="rows must be"):
        codec.encode(np.ones(576, np.float32))
    codec.encode(_hidden(rng, 6))
    d = codec.describe()
    assert d["codec"] == "frames" and d["rel_error"] == 0.1 and d["context_step"] > 0
    assert codec.context_bytes > 100


@given(data=st.data())
def test_frames_any_rows_roundtrip(data) -> None:
    """Hypothesis: any finite rows, any step, any number of rows per message."""
    width = data.draw(st.integers(1, 40))
    n = data.draw(st.integers(1, 5))
    floats = st.floats(-1e4, 1e4, width=32, allow_nan=False)
    x = np.asarray(
        data.draw(st.lists(floats, min_size=n * width, max_size=n * width)), np.float32
    ).reshape(n, width)
    step = data.draw(st.sampled_from([0.01, 0.5, 3.0]))
    codec = m.FrameCodec(step=step, states=data.draw(st.sampled_from([1, 2, 4])))
    stream, y = m.FrameStream.open(codec.encode(x), n, width)
    assert np.abs(y[0] - x).max() <= step * (1 + 1e-5)
    nxt = x[::-1].copy()
    z = stream.decode(codec.encode(nxt, first=False), n)
    assert np.abs(z[0] - nxt).max() <= step * (1 + 1e-5)


def test_generate_cli_frame_classes() -> None:
    """`slicer generate --frame-classes K` reaches the frames codec's options."""
    import argparse

    from slicer.llm import cli

    parser = argparse.ArgumentParser()
    cli.register(parser.add_subparsers())
    args = parser.parse_args(["generate", "--frame-classes", "8", "--step", "2.0"])
    assert cli._codec_options(args) == {"states": 1, "classes": 8, "step": 2.0}
    args = parser.parse_args(["generate", "--step", "2.0"])
    assert cli._codec_options(args) == {"states": 1, "step": 2.0}
    codec = m.make_codec("frames", **cli._codec_options(
        parser.parse_args(["generate", "--frame-classes", "4", "--step", "1.0"])))  # fmt: skip
    assert codec.options["classes"] == 4


def test_frames_with_a_trellis_context(rng) -> None:
    """trellis=True: the prefill's context is a trellis context (§17.4), with a class map too;
    the server's FrameStream needs no setting (the context says so) and decodes every frame as
    a lone FrameDecoder does; frames and context differ from the plain codec's."""
    x = _hidden(rng, 24)
    codec = m.FrameCodec(step=0.8, classes=8, trellis=True)
    stream, y = m.FrameStream.open(codec.encode(x), 24, 576)
    assert stream.decoder.trellis == float(np.float32(0.34)) and stream.decoder.classes == 8
    assert np.sqrt(np.mean((y[0] - x) ** 2)) < 0.8  # about 0.6 steps RMS
    row = _hidden(rng, 2)[1:]
    frame = codec.encode(row, first=False)
    lax = slicer.FrameDecoder(codec.encoder.context, check_sequence=False)
    assert np.array_equal(stream.decode(frame, 1)[0, 0], lax.decode(frame))
    assert codec.describe()["trellis"] is True
    plain = m.FrameCodec(step=0.8, classes=8)
    assert plain.encode(x)[:64] != codec.encode(x)[:64]
    with pytest.raises(ValueError, match="rho"):
        m.FrameCodec(step=0.8, rho=0.4, trellis=True)
    with pytest.raises(ValueError, match="trellis"):
        m.FrameCodec(step=0.8, trellis=-1.0)


def test_frames_context_from_calibration_rows(rng) -> None:
    """calibration=: the first message's context is built from those rows (as a lone
    FrameEncoder builds it), not from the message's own rows; the payload still carries that
    context and the message's frames, and the server decodes them with nothing more."""
    cal = _hidden(rng, 40)
    x = _hidden(rng, 5)
    codec = m.FrameCodec(step=0.8, classes=8, trellis=True)
    first = codec.encode(x, first=True, calibration=cal)
    ref = slicer.FrameEncoder(cal, step=0.8, states=1, classes=8, trellis=True)
    assert codec.encoder.context == ref.context
    assert codec.encoder.context != slicer.FrameEncoder(x, step=0.8, states=1, classes=8,
                                                        trellis=True).context  # fmt: skip
    assert first.startswith(m._varint(len(ref.context)) + ref.context)
    stream, y = m.FrameStream.open(first, 5, 576)
    lax = slicer.FrameDecoder(ref.context, check_sequence=False)
    assert np.array_equal(y[0], np.stack([lax.decode(ref.encode(r)) for r in x]))
    row = _hidden(rng, 2)[1:]
    assert np.array_equal(stream.decode(codec.encode(row, first=False), 1)[0, 0],
                          lax.decode(ref.encode(row[0])))  # fmt: skip
    with pytest.raises(ValueError, match="calibration"):
        codec.encode(row, first=False, calibration=cal)
    with pytest.raises(ValueError, match="calibration"):
        codec.encode(x, first=True, calibration=cal[:, :100])


def test_generate_cli_trellis() -> None:
    """`slicer generate --trellis [λ]` reaches the frames codec (and with --codec slicer the
    dense mode's trellis=); the model's default frame step is halved; other codecs refuse."""
    import argparse

    from slicer.llm import cli

    parser = argparse.ArgumentParser()
    cli.register(parser.add_subparsers())
    args = parser.parse_args(["generate", "--trellis", "--frame-classes", "8", "--step", "1.0"])
    assert cli._codec_options(args) == {"states": 1, "classes": 8, "trellis": 0.34, "step": 1.0}
    args = parser.parse_args(["generate", "--trellis", "0.5", "--klt", "--step", "1.0"])
    assert cli._codec_options(args)["trellis"] == 0.5
    plain = cli._codec_options(parser.parse_args(["generate"]))
    halved = cli._codec_options(parser.parse_args(["generate", "--trellis"]))
    if "step" in plain:
        assert halved["step"] == plain["step"] / 2
    codec = m.make_codec("frames", **halved)
    assert codec.options["trellis"] == 0.34
    args = parser.parse_args(["generate", "--codec", "slicer", "--mode", "dense", "--trellis"])
    assert cli._codec_options(args)["trellis"] == 0.34
    for bad in (["--codec", "fp16"], ["--codec", "slicer", "--mode", "topk"]):
        with pytest.raises(ValueError, match="trellis"):
            cli._codec_options(parser.parse_args(["generate", *bad, "--trellis"]))
