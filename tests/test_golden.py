"""Golden streams of format 1: the reference and the compiled codec reproduce them forever."""

from __future__ import annotations

import numpy as np
import pytest

import reference as ref
import slicer
from backend_params import api_kwargs, golden_cases, load_golden

CASES = golden_cases()


def test_there_are_golden_cases() -> None:
    assert len(CASES) >= 20


@pytest.mark.parametrize("name", CASES)
def test_reference_reproduces_golden(name: str) -> None:
    x, params, stream = load_golden(name)
    assert ref.encode(x, params) == stream


@pytest.mark.parametrize("name", CASES)
def test_codec_encodes_golden_bytes(name: str) -> None:
    x, params, stream = load_golden(name)
    assert slicer.encode(x, **api_kwargs(params)) == stream


@pytest.mark.parametrize("name", CASES)
def test_codec_decodes_golden_like_reference(name: str) -> None:
    _, _, stream = load_golden(name)
    expected, account = ref.decode(stream)
    got = slicer.decode(stream)
    assert got.dtype == expected.dtype and got.shape == expected.shape
    assert np.array_equal(got.reshape(-1).view(np.uint8), expected.reshape(-1).view(np.uint8))
    info = slicer.inspect(stream).to_dict()
    acct = info["account"]
    assert acct["total"] == account.total == len(stream)
    assert acct["positions_bits"] == account.position_bits
    assert acct["labels_bits"] == account.label_bits
    assert acct["values_bits"] == account.value_bits
