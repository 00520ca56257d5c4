"""decode(out=...) into DLPack arrays: torch CPU tensors (bfloat16 included), refusals."""

from __future__ import annotations

import numpy as np
import pytest

import slicer

torch = pytest.importorskip("torch")


def stream_of(dtype: torch.dtype, shape=(5, 77), seed=0) -> tuple[bytes, np.ndarray]:
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(shape, generator=gen).to(dtype)
    stream = slicer.encode(x, sparsity=0.6, bits=7)
    return stream, slicer.decode(stream)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_decode_into_a_torch_tensor(dtype) -> None:
    stream, expected = stream_of(dtype)
    out = torch.full(expected.shape, 7.0, dtype=dtype)
    assert slicer.decode(stream, out=out) is out
    # bit-exact: compare the raw 16/32-bit patterns of both results
    width = torch.int16 if dtype != torch.float32 else torch.int32
    got = out.view(width).numpy()
    ref = expected.view(np.int16 if dtype != torch.float32 else np.int32)
    assert np.array_equal(got, ref)


def test_bfloat16_route_into_torch_needs_no_float32_detour() -> None:
    stream, expected = stream_of(torch.bfloat16, shape=(3, 576), seed=4)
    out = torch.empty(3, 576, dtype=torch.bfloat16)
    slicer.decode(stream, out=out)
    assert torch.equal(out.float(), torch.from_numpy(expected.astype(np.float32)))


def test_decode_into_a_tensor_view_that_is_contiguous() -> None:
    stream, expected = stream_of(torch.float32, shape=(4, 10))
    big = torch.zeros(6, 10)
    view = big[1:5]  # contiguous rows of a larger tensor
    slicer.decode(stream, out=view)
    assert np.array_equal(big[1:5].numpy(), expected)
    assert not big[0].any() and not big[5].any()


def test_bad_torch_outputs_are_refused_and_left_unchanged() -> None:
    stream, _ = stream_of(torch.float32, shape=(4, 10))
    cases = [
        (torch.zeros(10, 4).t(), ValueError, "C-contiguous"),
        (torch.zeros(4, 10, requires_grad=True), ValueError, "requires grad"),
        (torch.complex(torch.zeros(4, 10), torch.ones(4, 10)).conj().imag, ValueError, "negated"),
        (torch.zeros(4, 10, dtype=torch.float16), ValueError, "dtype"),
        (torch.zeros(4, 11), ValueError, "shape"),
        (torch.zeros(4, 10, dtype=torch.int32), ValueError, "dtype"),
    ]
    for out, error, message in cases:
        before = out.detach().clone()
        with pytest.raises(error, match=message):
            slicer.decode(stream, out=out)
        assert torch.equal(out.detach(), before)
    with pytest.raises(TypeError, match="DLPack"):
        slicer.decode(stream, out=[0.0] * 40)


def test_corrupt_stream_leaves_the_tensor_unchanged() -> None:
    stream, _ = stream_of(torch.float32, shape=(4, 10))
    bad = bytearray(stream)
    bad[len(bad) // 2] ^= 0x10
    out = torch.full((4, 10), 3.0)
    with pytest.raises(slicer.FormatError):
        slicer.decode(bytes(bad), out=out)
    assert torch.equal(out, torch.full((4, 10), 3.0))
