"""Side tensors (docs/side.md): round trips of every dtype, goldens, hostile strings."""

from __future__ import annotations

import itertools
import struct
import tracemalloc
import zlib

import ml_dtypes
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import slicer
from slicer.split.side import MAX_BYTES, decode_side, encode_side, side_bound

# docs/side.md §1, written out again here (not imported) so a changed table fails the tests.
TABLE = {
    "bool": 0,
    "int8": 1,
    "int16": 2,
    "int32": 3,
    "int64": 4,
    "uint8": 5,
    "uint16": 6,
    "uint32": 7,
    "uint64": 8,
    "float16": 9,
    "float32": 10,
    "float64": 11,
    "bfloat16": 12,
}
DTYPES = [np.dtype(ml_dtypes.bfloat16) if n == "bfloat16" else np.dtype(n) for n in TABLE]


def leb128(value: int) -> bytes:
    """Unsigned LEB128, docs/format.md §1 (an independent writer)."""
    out = []
    while value >= 0x80:
        out.append(0x80 | (value & 0x7F))
        value >>= 7
    out.append(value)
    return bytes(out)


def reference_header(array: np.ndarray) -> bytes:
    dims = b"".join(leb128(d) for d in array.shape)
    return bytes([0xE1, TABLE[array.dtype.name]]) + leb128(array.ndim) + dims


def deflate(raw: bytes) -> bytes:
    """A raw deflate stream (RFC 1951) of ``raw``, as the encoder writes it."""
    c = zlib.compressobj(6, zlib.DEFLATED, -15)
    return c.compress(raw) + c.flush()


def inflate(payload: bytes) -> bytes:
    d = zlib.decompressobj(-15)
    out = d.decompress(payload)
    assert d.eof and not d.unused_data
    return out


def little_endian_bytes(array: np.ndarray) -> bytes:
    if array.dtype.name == "bfloat16":
        return np.ascontiguousarray(array).view(np.uint16).astype("<u2").tobytes()
    return np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<")).tobytes()


def check_encoding(array: np.ndarray) -> bytes:
    """The string for ``array`` against §1-§2: header, the coding rule, the payload."""
    data = encode_side(array)
    head = reference_header(array)
    raw = little_endian_bytes(array)
    assert data[: len(head)] == head
    coding, payload = data[len(head)], data[len(head) + 1 :]
    if coding == 0:
        assert payload == raw
        assert not raw or len(deflate(raw)) >= len(raw)  # deflate only when shorter
    else:
        assert coding == 1 and len(payload) < len(raw)
        assert payload == deflate(raw) and inflate(payload) == raw
    assert len(data) <= side_bound(array.shape, array.dtype)
    return data


def same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    return (
        a.dtype == b.dtype
        and a.shape == b.shape
        and little_endian_bytes(a) == little_endian_bytes(b)
    )


# ------------------------------------------------------------------------------ round trips


@st.composite
def side_arrays(draw: st.DrawFn) -> np.ndarray:
    dtype = draw(st.sampled_from(DTYPES))
    shape = draw(hnp.array_shapes(min_dims=0, max_dims=5, min_side=0, max_side=7))
    if draw(st.booleans()):  # masks and token ids: few distinct values, so deflate wins
        values = draw(st.integers(1, 3))
        bits = np.random.default_rng(draw(st.integers(0, 2**32))).integers(0, values, shape)
        array = bits.astype(np.uint8).astype(np.float32).astype(dtype)
    else:  # arbitrary bit patterns (NaN payloads, -0.0, infinities, denormals)
        size = int(np.prod(shape)) * dtype.itemsize
        raw = draw(st.binary(min_size=size, max_size=size))
        store = np.dtype(f"<u{dtype.itemsize}") if dtype.kind != "b" else np.dtype(np.uint8)
        array = np.frombuffer(raw, dtype=store).reshape(shape)
        array = (array & 1).astype(np.bool_) if dtype.kind == "b" else array.view(dtype)
    return array


@given(side_arrays())
def test_round_trip_every_dtype_and_shape(array: np.ndarray) -> None:
    data = check_encoding(array)
    back = decode_side(data)
    assert same_bits(back, array)
    assert back.flags.writeable and back.flags.c_contiguous and back.dtype.isnative


@pytest.mark.parametrize("dtype", DTYPES, ids=[d.name for d in DTYPES])
def test_round_trip_awkward_shapes(dtype: np.dtype) -> None:
    rng = np.random.default_rng(7)
    shapes = [(), (0,), (1,), (7,), (3, 0, 5), (1, 1, 1, 37), (2, 3, 4, 5, 1, 2), (1,) * 32]
    for shape in shapes:
        array = (rng.integers(0, 2, shape) * 3).astype(np.float32).astype(dtype)
        back = decode_side(check_encoding(array))
        assert same_bits(back, array), shape


def test_large_tensors_deflate_and_store() -> None:
    rng = np.random.default_rng(11)
    mask = np.ones((1, 999_999), np.int64)  # compressible: deflated
    noise = rng.integers(0, 2**63, (4096, 33), dtype=np.int64)  # incompressible: stored
    for array, coding in ((mask, 1), (noise, 0)):
        data = check_encoding(array)
        assert data[len(reference_header(array))] == coding
        assert same_bits(decode_side(data), array)
    assert len(encode_side(mask)) < mask.nbytes / 500


def test_byte_order_and_strides_do_not_matter() -> None:
    base = np.arange(-30, 30, dtype=np.int32).reshape(6, 10)
    for view in (base.astype(">i4"), base[:, ::3], base.T, np.asfortranarray(base)):
        back = decode_side(encode_side(view))
        assert back.dtype == np.dtype(np.int32) and np.array_equal(back, view)
    assert decode_side(encode_side(np.float64(2.5))).shape == ()  # numpy scalar


def test_float_bits_survive() -> None:
    bits = np.array([0x7FC00001, 0xFFFFFFFF, 0x80000000, 0x7F800000, 0x00000001], np.uint32)
    x = bits.view(np.float32)
    assert np.array_equal(decode_side(encode_side(x)).view(np.uint32), bits)
    b16 = np.array([0x7FC1, 0x8000, 0xFF80], np.uint16).view(ml_dtypes.bfloat16)
    back = decode_side(encode_side(b16))
    assert back.dtype == np.dtype(ml_dtypes.bfloat16)
    assert np.array_equal(back.view(np.uint16), b16.view(np.uint16))


def test_minilm_masks_cost_a_few_bytes() -> None:
    """The cut's two masks (36 tokens, no padding): 432 raw bytes, a few dozen coded."""
    ids = np.ones((1, 36), np.int64)
    additive = np.zeros((1, 1, 1, 36), np.float32)
    sizes = [len(encode_side(a)) for a in (ids, additive)]
    assert sum(sizes) <= 32, sizes  # 16 + 14 with zlib 1.2.13
    padded = np.concatenate([np.ones((1, 30), np.int64), np.zeros((1, 6), np.int64)], axis=1)
    assert np.array_equal(decode_side(encode_side(padded)), padded)


# ------------------------------------------------------------------------------ goldens

GOLDEN = [
    # stored: 3 int16 values, 6 bytes (deflate needs at least 8)
    (np.array([[1, 2, 3]], np.int16), "e1 02 02 01 03 00 0100 0200 0300"),
    # a 0-d bool True
    (np.array(True), "e1 00 00 00 01"),
    # a bfloat16 scalar 3.5 = 0x4060
    (np.array(3.5, ml_dtypes.bfloat16), "e1 0c 00 00 6040"),
    # an empty (0, 200) uint64 tensor: header only; dim 200 = c8 01
    (np.zeros((0, 200), np.uint64), "e1 08 02 00 c801 00"),
]


@pytest.mark.parametrize("array,hexed", GOLDEN, ids=["int16", "bool0d", "bf16", "empty"])
def test_golden_strings(array: np.ndarray, hexed: str) -> None:
    data = bytes.fromhex(hexed)
    assert encode_side(array) == data
    assert same_bits(decode_side(data), array)


def stored_block(raw: bytes) -> bytes:
    """A deflate stream built by hand (RFC 1951 §3.2.4): one final stored block."""
    assert len(raw) < 65536
    return bytes([0x01]) + struct.pack("<HH", len(raw), len(raw) ^ 0xFFFF) + raw


def test_golden_deflate_payloads_decode() -> None:
    """Any valid deflate stream is accepted: a hand-built stored block and a fixed-Huffman one."""
    raw = struct.pack("<4q", 1, 1, 1, 0)
    data = bytes.fromhex("e1 04 02 01 04 01") + stored_block(raw)
    assert np.array_equal(decode_side(data), np.array([[1, 1, 1, 0]], np.int64))
    # 40 zero bytes as the standard zlib deflates them at level 6 (one fixed-Huffman block:
    # a literal 0, then a match of length 39 at distance 1, then end of block)
    fixed = bytes.fromhex("6360 200e 0000")
    assert inflate(fixed) == bytes(40)
    data = bytes.fromhex("e1 0b 01 05 01") + fixed
    assert np.array_equal(decode_side(data), np.zeros(5))


# ------------------------------------------------------------------------------ hostile strings

SAMPLES = [
    encode_side(np.ones((1, 37), np.int64)),  # deflate
    encode_side(np.zeros((1, 1, 1, 37), np.float32)),  # deflate
    encode_side(np.arange(6, dtype=np.int16).reshape(2, 3)),  # stored
    encode_side(np.array([True, False, True])),  # stored bool
    encode_side(np.array(7, np.uint64)),  # 0-d stored
]


def decode_or_format_error(data: bytes, max_bytes: int = 1 << 16) -> np.ndarray | None:
    """A hostile string decodes to something within the cap or raises FormatError; any other
    exception fails the test."""
    try:
        out = decode_side(data, max_bytes=max_bytes)
    except slicer.FormatError:
        return None
    assert out.nbytes <= max_bytes
    return out


@pytest.mark.parametrize("data", SAMPLES)
def test_every_truncation_is_a_format_error(data: bytes) -> None:
    for cut in range(len(data)):
        with pytest.raises(slicer.FormatError):
            decode_side(data[:cut])


@pytest.mark.parametrize("data", SAMPLES)
def test_trailing_bytes_are_a_format_error(data: bytes) -> None:
    for extra in (b"\x00", b"\x01\x02\x03", bytes(100)):
        with pytest.raises(slicer.FormatError, match="trailing"):
            decode_side(data + extra)


@pytest.mark.parametrize("data", SAMPLES)
def test_flipped_bits_never_crash(data: bytes) -> None:
    """Every single-bit flip: a FormatError or a tensor within the cap (no checksum, §3)."""
    original = decode_side(data)
    head = len(reference_header(original))
    for pos, bit in itertools.product(range(len(data)), range(8)):
        bad = bytearray(data)
        bad[pos] ^= 1 << bit
        out = decode_or_format_error(bytes(bad))
        if pos == 0:  # any flip of the magic/version byte changes its magic or its version
            assert out is None
        if pos > head and data[head] == 0 and original.dtype != np.bool_:
            # stored payload: exactly that bit of the tensor's bytes changes
            raw = bytearray(little_endian_bytes(original))
            raw[pos - head - 1] ^= 1 << bit
            assert out is not None and little_endian_bytes(out) == bytes(raw)


@given(st.binary(max_size=64))
def test_random_strings_never_crash(data: bytes) -> None:
    decode_or_format_error(data)
    decode_or_format_error(b"\xe1" + data)
    decode_or_format_error(b"\xe1\x04" + data)


@pytest.mark.parametrize(
    "data,match",
    [
        (b"", "truncated"),
        (b"\x51\x04\x00\x00" + bytes(8), "not a side tensor"),
        (b"\xe2\x04\x00\x00" + bytes(8), "version 2"),
        (b"\xe1\x0d\x00\x00" + bytes(8), "dtype code 13"),
        (b"\xe1\xff\x00\x00" + bytes(8), "dtype code 255"),
        (b"\xe1\x04\x00\x02" + bytes(8), "unknown coding 2"),
        (b"\xe1\x04\x21" + b"\x01" * 33 + b"\x00" + bytes(8), "ndim 33"),
        (b"\xe1\x04\x81\x00\x00", "non-minimal"),
        (b"\xe1\x04\x01\xff\xff\xff\xff\xff\xff\xff\xff\xff\x7f\x00", "2\\^64"),
        (b"\xe1\x04\x01" + b"\xff" * 11, "longer than 10"),
        (b"\xe1\x00\x01\x02\x00\x01\x02", "neither 0 nor 1"),
        (b"\xe1\x04\x01\x02\x00" + bytes(15), "truncated"),
        (b"\xe1\x04\x01\x02\x01" + deflate(bytes(15)), "holds 15 bytes"),
        (b"\xe1\x04\x01\x02\x01" + deflate(bytes(17)), "more than"),
        (b"\xe1\x04\x01\x02\x01" + deflate(bytes(16))[:-1], "does not end"),
        (b"\xe1\x04\x01\x02\x01" + stored_block(bytes(16))[:-1], "holds 15 bytes"),
        (b"\xe1\x04\x01\x02\x01" + b"\xff\xff", "damaged"),  # block type 3 is reserved
        (b"\xe1\x04\x00\x01" + b"\x01\x08\x00\xf7\xf7" + bytes(8), "damaged"),  # NLEN
        (b"\xe1\x04\x01\x02\x01" + b"\x00" + stored_block(bytes(16))[1:], "does not end"),
    ],
)
def test_documented_errors(data: bytes, match: str) -> None:
    with pytest.raises(slicer.FormatError, match=match):
        decode_side(data)


def test_empty_tensor_with_deflate_payload() -> None:
    """max_length=0 means 'unlimited' to zlib: an empty tensor must still refuse any output."""
    head = b"\xe1\x04\x02\x00\x05\x01"
    assert decode_side(head + deflate(b"")).shape == (0, 5)
    with pytest.raises(slicer.FormatError, match="more than"):
        decode_side(head + deflate(bytes(1 << 20)))


def test_huge_dims_are_refused_before_allocating() -> None:
    tracemalloc.start()
    try:
        for dims in ((1 << 40, 1 << 40), (1 << 63,), (0, 1 << 62), (1 << 13, 1 << 13)):
            data = b"\xe1\x04" + leb128(len(dims)) + b"".join(leb128(d) for d in dims) + b"\x00"
            with pytest.raises(slicer.FormatError, match="max_bytes"):
                decode_side(data)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20
    # the cap is the caller's: exactly at the cap passes, one element more does not
    data = encode_side(np.zeros((4, 4), np.float64))
    assert decode_side(data, max_bytes=128).shape == (4, 4)
    with pytest.raises(slicer.FormatError, match="max_bytes=127"):
        decode_side(data, max_bytes=127)
    assert decode_side(encode_side(np.zeros((0, 9), np.int64)), max_bytes=72).shape == (0, 9)
    with pytest.raises(slicer.FormatError, match="max_bytes"):  # (0, 9) counts as 9 elements
        decode_side(encode_side(np.zeros((0, 9), np.int64)), max_bytes=71)


def test_deflate_bomb_allocates_only_the_claimed_size() -> None:
    packer, zeros = zlib.compressobj(9, zlib.DEFLATED, -15), bytes(1 << 20)
    bomb = b"".join(packer.compress(zeros) for _ in range(32)) + packer.flush()  # 32 MiB
    assert len(bomb) < 40_000
    head = b"\xe1\x05\x01" + leb128(4096) + b"\x01"
    tracemalloc.start()
    try:
        with pytest.raises(slicer.FormatError, match="more than"):
            decode_side(head + bomb)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 << 20, peak  # the bomb's own bytes are not traced here (made before start)
    assert MAX_BYTES == 64 << 20


def test_bad_arguments() -> None:
    with pytest.raises(TypeError, match="array"):
        encode_side([1, 2, 3])
    with pytest.raises(TypeError, match="complex128"):
        encode_side(np.zeros(3, np.complex128))
    with pytest.raises(TypeError, match="<U1"):
        encode_side(np.array(["a"]))
    with pytest.raises(ValueError, match="33 dimensions"):
        encode_side(np.zeros((1,) * 33))
    with pytest.raises(TypeError, match="data"):
        decode_side("e1")
    with pytest.raises(TypeError, match="max_bytes"):
        decode_side(SAMPLES[0], max_bytes=1.5)
    with pytest.raises(TypeError, match="max_bytes"):
        decode_side(SAMPLES[0], max_bytes=True)
    with pytest.raises(ValueError, match="max_bytes"):
        decode_side(SAMPLES[0], max_bytes=-1)
    with pytest.raises(ValueError, match="shape"):
        side_bound((-1, 2), "int64")
    assert side_bound((1, 36), np.int64) == 6 + 288
    assert side_bound((), "bool") == 4 + 1
    assert decode_side(bytearray(SAMPLES[2])).shape == (2, 3)
    assert decode_side(memoryview(SAMPLES[2])).shape == (2, 3)


# ------------------------------------------------------------------------------ in the product


def minilm_like_cut(tokens: int, pad: int) -> dict[str, np.ndarray]:
    """A cut shaped like MiniLM's after layer 3: hidden rows, int64 mask, additive mask."""
    rng = np.random.default_rng(tokens)
    mask = np.ones((1, tokens), np.int64)
    mask[0, tokens - pad :] = 0
    additive = ((1.0 - mask) * np.finfo(np.float32).min).astype(np.float32)[:, None, None, :]
    hidden = rng.standard_normal((1, tokens, 384)).astype(np.float32)
    return {"hidden": hidden, "attention_mask": mask, "additive": additive}


@pytest.mark.parametrize("tokens,pad", [(36, 0), (37, 5), (1, 0)])
def test_packet_codes_side_tensors_losslessly(tokens: int, pad: int) -> None:
    from slicer.split.transport import CodecParams, decode_packet, encode_values, payload_bound

    values = minilm_like_cut(tokens, pad)
    params = CodecParams(mode="dense", step=0.05)
    packet = encode_values(values, params)
    assert sorted(packet.streams) == ["hidden"]
    assert sorted(packet.side) == ["additive", "attention_mask"]
    for name, data in packet.side.items():
        assert data == encode_side(values[name])  # the packet carries exactly the side strings
    side = sum(len(encode_side(values[n])) for n in ("attention_mask", "additive"))
    assert packet.side_bytes == side < 12 * tokens + 16
    assert packet.encoded_bytes == len(packet.streams["hidden"]) + side
    shapes = {n: v.shape for n, v in values.items()}
    dtypes = {n: str(v.dtype) for n, v in values.items()}
    assert packet.encoded_bytes <= payload_bound(shapes, dtypes, params)
    got, _ = decode_packet(packet)
    for name in ("attention_mask", "additive"):
        assert same_bits(got[name], values[name])
        assert got[name] is not values[name]  # decoded from the side string, not passed along
    assert np.abs(got["hidden"] - values["hidden"]).max() <= 0.05


def test_raw_link_stays_raw() -> None:
    from slicer.split.transport import decode_packet, encode_values

    values = minilm_like_cut(36, 3)
    packet = encode_values(values, None)
    assert packet.side == {} and packet.streams == {}
    assert packet.encoded_bytes == packet.side_bytes == sum(v.nbytes for v in values.values())
    assert packet.encoded_bytes == packet.raw_bytes
    got, _ = decode_packet(packet)
    assert all(got[n] is values[n] for n in values)


def test_packet_side_tensors_of_every_dtype() -> None:
    from slicer.split.transport import CodecParams, decode_packet, encode_values

    rng = np.random.default_rng(5)
    values = {"x": rng.standard_normal((2, 500)).astype(np.float32)}
    for i, dtype in enumerate(DTYPES):
        values[f"s{i}"] = rng.integers(0, 3, (1, 9)).astype(np.float32).astype(dtype)
    values["scalar"] = np.array(7, np.int64)
    values["empty"] = np.zeros((1, 0), np.int64)
    packet = encode_values(values, CodecParams(mode="dense", step=0.1))
    assert sorted(packet.streams) == ["x"]
    got, _ = decode_packet(packet)
    for name, value in values.items():
        if name != "x":
            assert same_bits(got[name], value), name


# ------------------------------------------------------------------------------ serving


@pytest.fixture(scope="module")
def toy():
    pytest.importorskip("grpc")
    pytest.importorskip("onnxruntime")
    from slicer.serve import TailEngine
    from slicer.serve.toy import TOY_CUT, toy_model

    model = toy_model()
    return model, TailEngine(model, TOY_CUT)


def test_serve_carries_side_strings(toy) -> None:  # noqa: ANN001
    """The toy cut's int64 'scale' travels as Tensor.side to a server that reads it, raw to
    one that does not (an older server), with the same answer either way."""
    from slicer.serve import EdgeClient, ServerThread
    from slicer.serve.toy import toy_inputs
    from slicer.split import CodecParams, Partitioner, SplitModel
    from slicer.split.transport import decode_packet, encode_values

    model, engine = toy
    params = CodecParams(sparsity=0.5, bits=8)
    split = SplitModel(Partitioner(model), "h1", providers=["CPUExecutionProvider"], threads=1)
    with ServerThread(engine) as server, EdgeClient(server.target, model, params=params) as edge:
        assert edge.info.side_tensors
        for seed in range(3):
            inputs = toy_inputs(seed)
            tensors = edge.prepare(inputs)
            kinds = {t.name: t.WhichOneof("payload") for t in tensors}
            assert kinds == {"h1": "codec", "scale": "side"}
            scale = next(t for t in tensors if t.name == "scale")
            assert same_bits(decode_side(scale.side), inputs["scale"])
            got = edge.submit(tensors).result().outputs["logits"]
            values = split.run_head({i.name: inputs[i.name] for i in split.head.get_inputs()})
            values.setdefault("scale", inputs["scale"])
            values = {i.name: values[i.name] for i in split.tail.get_inputs()}
            want = split.run_tail(decode_packet(encode_values(values, params))[0])["logits"]
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
        edge.info.side_tensors = False  # what an older server's Info says
        tensors = edge.prepare(toy_inputs(0))
        assert {t.name: t.WhichOneof("payload") for t in tensors}["scale"] == "raw"
        assert edge.submit(tensors).result().outputs["logits"].shape == got.shape


@pytest.mark.parametrize(
    "side,match",
    [
        (b"\xe1\x04\x02\x01\x01\x00" + bytes(7), "bad side tensor"),  # truncated
        (b"\xe1\x04\x02\x01\x01\x01\xff\xff", "bad side tensor"),  # damaged deflate
        (b"\xe1\x04\x02\xff\x7f\xff\x7f\x00", "bad side tensor"),  # 2^28 elements claimed
        (b"\xe1\x08\x02\x01\x01\x00" + bytes(8), "'uint64' is not allowed"),
        (b"\xe1\x03\x02\x01\x01\x00" + bytes(4), "int32, expected"),  # the input is int64
        (b"\xe1\x04\x01\x02\x00" + bytes(16), "shape"),  # (2,) where (1, 1) is expected
    ],
)
def test_serve_refuses_bad_side_strings(toy, side: bytes, match: str) -> None:  # noqa: ANN001
    from slicer.serve import wire
    from slicer.serve import wire_pb2 as pb

    _, engine = toy
    req = pb.Request(
        tensors=[
            pb.Tensor(name="scale", side=side),
            pb.Tensor(name="h1", raw=wire.raw_tensor(np.zeros((1, 256), np.float32))),
        ]
    )
    with pytest.raises(wire.WireError, match=match) as info:
        engine._decode(req)
    assert info.value.code == wire.INVALID_ARGUMENT
