"""slicer.Codec through numcodecs: entry-point registry, config round trip, decode into out."""

from __future__ import annotations

import json

import ml_dtypes
import numpy as np
import pytest

import slicer

try:  # numcodecs is optional and can fail to import for reasons of its own (zfpy versions)
    import numcodecs
    from numcodecs.registry import get_codec
except Exception as exc:  # pragma: no cover - depends on the environment
    pytest.skip(f"numcodecs is not importable: {exc}", allow_module_level=True)


def sample(dtype=np.float32) -> np.ndarray:
    return np.random.default_rng(8).standard_normal((16, 40)).astype(dtype)


def test_entry_point_registry_finds_the_codec() -> None:
    codec = get_codec({"id": "slicer", "sparsity": 0.5, "bits": 6})
    assert isinstance(codec, slicer.Codec)
    assert isinstance(codec, numcodecs.abc.Codec)
    x = sample()
    stream = codec.encode(x)
    assert stream == slicer.encode(x, sparsity=0.5, bits=6)
    assert np.array_equal(codec.decode(stream), slicer.decode(stream))


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"sparsity": 0.75, "asym": 0.1, "blocks": (2, 4), "delta": 0.0, "seed": 9},
        {"bits": [8, 4, 2], "groups": "rows", "chunk_size": 128, "max_bytes": 4000},
    ],
)
def test_config_round_trip(params: dict) -> None:
    codec = slicer.Codec(**params)
    config = json.loads(json.dumps(codec.get_config()))
    assert config["id"] == "slicer"
    again = get_codec(config)
    assert again == codec
    assert slicer.Codec.from_config(config) == codec
    x = sample()
    assert again.encode(x) == codec.encode(x)


def test_decode_into_out_buffers() -> None:
    codec = slicer.Codec(sparsity=0.3)
    for dtype in (np.float32, np.float16, ml_dtypes.bfloat16):
        x = sample(dtype)
        stream = codec.encode(x)
        expected = codec.decode(stream)
        out = np.empty(x.size, dtype=dtype)  # numcodecs passes flat buffers too
        assert codec.decode(stream, out=out) is out
        assert np.array_equal(out.view(np.uint8), expected.reshape(-1).view(np.uint8))
        raw = bytearray(x.nbytes)  # a plain byte buffer of the right size
        codec.decode(stream, out=raw)
        assert bytes(raw) == expected.tobytes()
        with pytest.raises(ValueError, match="bytes"):
            codec.decode(stream, out=np.empty(3, dtype=dtype))


def test_bad_configuration_fails_at_construction() -> None:
    with pytest.raises(ValueError, match="sparsity"):
        slicer.Codec(sparsity=2.0)
    with pytest.raises(ValueError, match="max_bytes"):
        get_codec({"id": "slicer", "max_bytes": -5})
