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
    assert len(data) == m.FRAMING_BYTES + len(payload)
    assert m.parse(data) == msg


def test_layout_is_the_documented_one() -> None:
    data = _msg().to_bytes()
    assert data[:2] == b"SL" and data[2] == 1 and data[3] == m.DECODE
    assert struct.unpack_from("<HIIII", data, 6) == (1, 7, 3, 40, 0xDEADBEEF)
    assert struct.unpack_from("<I", data, len(data) - 4)[0] == zlib.crc32(data[:-4])


@given(data=st.data())
def test_any_corruption_is_a_message_error(data) -> None:
    good = bytearray(_msg().to_bytes())
    i = data.draw(st.integers(0, len(good) - 1))
    bit = data.draw(st.integers(0, 7))
    good[i] ^= 1 << bit
    with pytest.raises(m.MessageError):
        m.parse(bytes(good))


@pytest.mark.parametrize("cut", range(0, 27, 5))
def test_truncated_is_a_message_error(cut: int) -> None:
    data = _msg().to_bytes()
    with pytest.raises(m.MessageError):
        m.parse(data[:cut] if cut < m.FRAMING_BYTES else data[:-1])


def test_format_error_family_and_bad_type() -> None:
    assert issubclass(m.MessageError, slicer.FormatError)
    with pytest.raises(TypeError, match="bytes-like"):
        m.parse("SL...")


def _resealed(data: bytes, offset: int, value: int) -> bytes:
    b = bytearray(data[:-4])
    b[offset] = value
    return bytes(b) + struct.pack("<I", zlib.crc32(bytes(b)))


def test_semantic_checks_after_crc() -> None:
    data = _msg().to_bytes()
    with pytest.raises(m.MessageError, match="version"):
        m.parse(_resealed(data, 2, 9))
    with pytest.raises(m.MessageError, match="kind"):
        m.parse(_resealed(data, 3, 77))
    with pytest.raises(m.MessageError, match="codec"):
        m.parse(_resealed(data, 4, 9))
    with pytest.raises(m.MessageError, match="no rows"):
        m.parse(_resealed(_resealed(data, 6, 0), 7, 0))
    with pytest.raises(m.MessageError, match="token"):
        m.parse(_resealed(data, 4, m.CODEC_TOKEN))


@pytest.mark.parametrize("field,value", [("rows", 0x10000), ("step", -1), ("cut", 256)])
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
    with pytest.raises(ValueError, match="sparsity"):
        m.make_codec("slicer", sparsity=1.5)
    with pytest.raises(ValueError, match="groups"):
        m.make_codec("slicer", groups="planes")
    assert m.make_codec("slicer", sparsity=0.5).options["groups"] == "rows"
