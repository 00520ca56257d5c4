"""Array intake: lazy torch views, ndarray subclasses and masked arrays (issue 11)."""

from __future__ import annotations

import numpy as np
import pytest

import slicer

torch = pytest.importorskip("torch")


def lossless(x) -> np.ndarray:
    """Decode of a stream that keeps every element at 16 bits (s = 0, no ABQ lowering)."""
    return slicer.decode(slicer.encode(x, sparsity=0.0, bits=16, delta=0.0))


@pytest.mark.parametrize("n", [1, 7, 4096])
def test_negative_bit_view_keeps_its_sign(n: int) -> None:
    gen = torch.Generator().manual_seed(n)
    a = torch.randn(n, generator=gen)
    b = torch.randn(n, generator=gen) + 3.0  # mostly positive: a lost sign cannot hide
    im = torch.complex(a, b).conj().imag
    assert im.is_neg()
    expected = (-b).numpy()
    y = lossless(im)
    step = (expected.max() - expected.min()) / (2**16 - 1)
    assert np.max(np.abs(y - expected)) <= step
    assert slicer.encode(im, sparsity=0.5) == slicer.encode(-b, sparsity=0.5)


def test_neg_view_of_a_2d_slice_and_of_bfloat16() -> None:
    gen = torch.Generator().manual_seed(5)
    z = torch.complex(torch.randn(6, 9, generator=gen), torch.randn(6, 9, generator=gen))
    im = z.conj().imag[:, 1:8]  # strided and negative
    assert im.is_neg() and not im.is_contiguous()
    assert slicer.encode(im, sparsity=0.3) == slicer.encode(-z.imag[:, 1:8].numpy(), sparsity=0.3)
    half = im.to(torch.bfloat16)  # .to() materializes: the sign must survive either way
    ref = (-z.imag[:, 1:8]).to(torch.bfloat16).contiguous()
    assert slicer.encode(half, sparsity=0.3) == slicer.encode(ref, sparsity=0.3)


def test_encode_batch_and_codec_see_the_resolved_sign() -> None:
    gen = torch.Generator().manual_seed(11)
    z = torch.complex(torch.randn(3, 40, generator=gen), torch.randn(3, 40, generator=gen))
    im = z.conj().imag
    plain = (-z.imag).contiguous()
    assert slicer.encode_batch(im, sparsity=0.5) == slicer.encode_batch(plain, sparsity=0.5)


@pytest.mark.filterwarnings("ignore::PendingDeprecationWarning")
def test_matrix_is_coded_as_a_plain_2d_array() -> None:
    x = np.random.default_rng(3).standard_normal((5, 7)).astype(np.float32)
    assert slicer.encode(np.asmatrix(x), sparsity=0.4) == slicer.encode(x, sparsity=0.4)
    assert slicer.size_bound((5, 7), "float32") >= len(slicer.encode(np.asmatrix(x)))


def test_masked_array_is_refused_naming_the_mask() -> None:
    x = np.ma.masked_array(np.ones(6, np.float32), mask=[0, 1, 0, 0, 1, 0])
    with pytest.raises(TypeError, match="MaskedArray.*filled"):
        slicer.encode(x)
    with pytest.raises(TypeError, match="MaskedArray"):
        slicer.encode_batch(x.reshape(2, 3))
    # the documented ways out work
    assert slicer.decode(slicer.encode(x.filled(0), sparsity=0)).tolist() == [1, 0, 1, 1, 0, 1]
    assert slicer.decode(slicer.encode(np.asarray(x), sparsity=0)).tolist() == [1] * 6


def test_encode_batch_names_an_unknown_keyword_itself() -> None:
    x = np.ones((2, 3), np.float32)
    with pytest.raises(TypeError, match=r"encode_batch\(\) got unexpected keyword.*quality"):
        slicer.encode_batch(x, quality=1)
    with pytest.raises(ValueError, match="sparsity"):
        slicer.encode_batch(x, sparsity=1.5)
