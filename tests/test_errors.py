"""Bad arguments raise TypeError / ValueError naming the problem; bad streams FormatError."""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import slicer


@pytest.fixture(scope="module")
def small_stream() -> bytes:
    x = np.random.default_rng(5).standard_normal((6, 11)).astype(np.float32)
    return slicer.encode(x, sparsity=0.6, seed=3)


def with_crc(body: bytes) -> bytes:
    """`body` with a valid CRC-32 appended (docs/format.md §6.2)."""
    return body + struct.pack("<I", zlib.crc32(body))


# ------------------------------------------------------------------------------ input types


@pytest.mark.parametrize(
    "x",
    [
        np.arange(10, dtype=np.int32),
        np.arange(10, dtype=np.uint8),
        np.ones(10, dtype=bool),
        np.ones(10, dtype=np.complex64),
        np.ones(10, dtype=np.float64),
        [1.0, 2.0],
        "text",
        None,
    ],
    ids=["int32", "uint8", "bool", "complex64", "float64", "list", "str", "None"],
)
def test_unsupported_inputs_raise_type_error(x) -> None:
    with pytest.raises(TypeError):
        slicer.encode(x)


def test_integer_torch_tensor_raises_type_error() -> None:
    torch = pytest.importorskip("torch")
    with pytest.raises(TypeError, match="floating-point"):
        slicer.encode(torch.arange(12))
    with pytest.raises(TypeError, match="floating-point"):
        slicer.encode(torch.ones(3, dtype=torch.complex64))


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_non_finite_input_raises_value_error(bad: float, dtype) -> None:
    x = np.ones(100, dtype=dtype)
    x[37] = bad
    with pytest.raises(ValueError, match="NaN or infinity"):
        slicer.encode(x)


# ------------------------------------------------------------------------------ parameters


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"sparsity": -0.1}, "sparsity"),
        ({"sparsity": 1.0}, "sparsity"),
        ({"sparsity": float("nan")}, "sparsity"),
        ({"sparsity": 0.9999999999}, "sparsity"),
        ({"asym": 1.0}, "asym"),
        ({"asym": -1e-3}, "asym"),
        ({"blocks": 0}, "blocks"),
        ({"blocks": 65}, "blocks"),
        ({"blocks": (3, 0)}, r"blocks\[1\]"),
        ({"blocks": (1, 2, 3)}, "blocks"),
        ({"bits": 0}, "bits"),
        ({"bits": 17}, "bits"),
        ({"bits": []}, "bits"),
        ({"bits": [8, 0]}, r"bits\[1\]"),
        ({"bits": [8, 4], "blocks": 3}, "blocks"),
        ({"delta": -0.5}, "delta"),
        ({"delta": 5000.0}, "delta"),
        ({"seed": -1}, "seed"),
        ({"seed": 2**64}, "seed"),
        ({"groups": "cols"}, "groups"),
        ({"chunk_size": 100}, "chunk_size"),
        ({"chunk_size": 32}, "chunk_size"),
        ({"threads": -1}, "threads"),
        ({"max_bytes": 0}, "max_bytes"),
    ],
)
def test_out_of_range_parameters_name_themselves(kwargs: dict, name: str) -> None:
    x = np.ones(10, dtype=np.float32)
    with pytest.raises(ValueError, match=name):
        slicer.encode(x, **kwargs)
    if "max_bytes" not in kwargs:
        with pytest.raises(ValueError, match=name):
            slicer.size_bound((10,), "float32", **kwargs)


@pytest.mark.parametrize(
    "kwargs",
    [{"sparsity": "0.5"}, {"seed": 1.5}, {"bits": 8.0}, {"blocks": "3"}, {"max_bytes": 10.5}],
)
def test_wrongly_typed_parameters_raise_type_error(kwargs: dict) -> None:
    with pytest.raises(TypeError):
        slicer.encode(np.ones(10, dtype=np.float32), **kwargs)


def test_rows_need_a_dimension() -> None:
    with pytest.raises(ValueError, match="rows"):
        slicer.encode(np.float32(1.0), groups="rows")


def test_too_many_dimensions() -> None:
    with pytest.raises(ValueError, match="dimensions"):
        slicer.encode(np.ones((1,) * 33, dtype=np.float32))


def test_cuda_array_without_usable_backend_raises_runtime_error() -> None:
    class FakeCudaArray:
        def __dlpack_device__(self) -> tuple[int, int]:
            return (2, 0)

        def __dlpack__(self, **kwargs):
            raise AssertionError("must not be imported on the CPU path")

    try:
        from slicer import _gpu

        usable = _gpu.available()
    except ImportError:
        usable = False
    if usable:
        pytest.skip("a GPU is usable here: the CUDA tests cover this path")
    with pytest.raises(RuntimeError, match="CUDA"):
        slicer.encode(FakeCudaArray())


def test_decode_argument_errors(small_stream: bytes) -> None:
    with pytest.raises(TypeError):
        slicer.decode("not bytes")
    with pytest.raises(TypeError):
        slicer.decode(np.zeros(10, dtype=np.float32))
    with pytest.raises(ValueError, match="device"):
        slicer.decode(small_stream, device="tpu")
    with pytest.raises(ValueError, match="max_elements"):
        slicer.decode(small_stream, max_elements=-1)


# ------------------------------------------------------------------------------ bad streams


def test_every_truncation_is_a_format_error(small_stream: bytes) -> None:
    for n in range(len(small_stream)):
        with pytest.raises(slicer.FormatError):
            slicer.decode(small_stream[:n])
        with pytest.raises(slicer.FormatError):
            slicer.inspect(small_stream[:n])


def test_every_bit_flip_is_a_format_error(small_stream: bytes) -> None:
    data = bytearray(small_stream)
    for bit in range(8 * len(data)):
        data[bit // 8] ^= 1 << (bit % 8)
        with pytest.raises(slicer.FormatError):
            slicer.decode(bytes(data))
        data[bit // 8] ^= 1 << (bit % 8)


def test_flip_with_fixed_checksum_is_still_rejected_or_valid(small_stream: bytes) -> None:
    """Corruptions that keep the CRC valid must never crash: error or a well-formed array."""
    body = small_stream[:-4]
    for pos in range(len(body)):
        for mask in (0x01, 0x80, 0xFF):
            corrupt = bytearray(body)
            corrupt[pos] ^= mask
            try:
                y = slicer.decode(with_crc(bytes(corrupt)))
            except slicer.FormatError:
                continue
            assert isinstance(y, np.ndarray)


def test_wrong_version_and_magic(small_stream: bytes) -> None:
    body = bytearray(small_stream[:-4])
    body[4] = 3  # format 2 exists (dense mode): 3 is the first version no build reads
    with pytest.raises(slicer.FormatError, match="version") as info:
        slicer.decode(with_crc(bytes(body)))
    assert info.value.status == 12
    body[4] = 2  # a format-1 body under the format-2 version byte: refused, never decoded
    with pytest.raises(slicer.FormatError):
        slicer.decode(with_crc(bytes(body)))
    body = bytearray(small_stream[:-4])
    body[:4] = b"SLCX"
    with pytest.raises(slicer.FormatError, match="not a SLICER stream"):
        slicer.decode(with_crc(bytes(body)))


def test_checksum_mismatch_message(small_stream: bytes) -> None:
    data = bytearray(small_stream)
    data[-1] ^= 0x10
    with pytest.raises(slicer.FormatError, match="checksum"):
        slicer.decode(bytes(data))


def test_huge_claimed_shape_is_refused_before_allocation() -> None:
    # magic, version 1, mode 0, float32, flags 0, ndim 2, dims 2^40 x 2^40 (varints), then
    # parameters; the decoder must refuse from the header alone.
    dims = bytes([0x80, 0x80, 0x80, 0x80, 0x80, 0x20]) * 2
    header = b"SLCR" + bytes([1, 0, 1, 0, 2]) + dims + bytes([0, 0, 0, 0, 8, 3, 3, 14, 1])
    with pytest.raises(slicer.FormatError):
        slicer.decode(with_crc(header + bytes(16)))
    with pytest.raises(slicer.FormatError):
        slicer.inspect(with_crc(header + bytes(16)))


def test_max_elements_limit() -> None:
    stream = slicer.encode(np.ones(1000, dtype=np.float32))
    assert slicer.decode(stream, max_elements=1000).shape == (1000,)
    with pytest.raises(slicer.FormatError, match="max_elements") as info:
        slicer.decode(stream, max_elements=999)
    assert info.value.status == 15


@given(st.binary(max_size=300))
def test_random_bytes_are_format_errors(data: bytes) -> None:
    with pytest.raises(slicer.FormatError):
        slicer.decode(data)


@given(st.binary(min_size=5, max_size=200))
def test_random_bodies_with_valid_magic_and_crc(data: bytes) -> None:
    stream = with_crc(b"SLCR\x01" + data)
    try:
        y = slicer.decode(stream)
    except slicer.FormatError:
        return
    assert isinstance(y, np.ndarray)  # a valid stream by chance: it must still decode


def test_cuda_decode_without_usable_backend(small_stream: bytes) -> None:
    try:
        from slicer import _gpu

        usable = _gpu.available()
    except ImportError:
        usable = False
    if usable:
        pytest.skip("a GPU is usable here: the CUDA tests cover this path")
    with pytest.raises(RuntimeError, match="CUDA"):
        slicer.decode(small_stream, device="cuda")


def test_cuda_stream_needs_device_cuda(small_stream: bytes) -> None:
    class CudaStream:
        def __dlpack_device__(self) -> tuple[int, int]:
            return (2, 0)

        def __dlpack__(self, **kwargs):
            raise AssertionError("must not be imported on the CPU path")

    with pytest.raises(ValueError, match="device='cuda'"):
        slicer.decode(CudaStream())
