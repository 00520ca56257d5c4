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


def test_max_bytes_of_the_wrong_type_fails_at_construction() -> None:
    with pytest.raises(TypeError, match="max_bytes"):
        slicer.Codec(max_bytes=True)
    with pytest.raises(TypeError, match="max_bytes"):
        slicer.Codec(max_bytes=4000.0)
    with pytest.raises(ValueError, match="max_bytes"):
        slicer.Codec(max_bytes=0)
    codec = slicer.Codec(max_bytes=np.int64(600), sparsity=0.2)
    assert type(codec.max_bytes) is int
    assert len(codec.encode(sample())) <= 600


def test_numpy_scalars_give_a_json_config_and_the_same_bytes() -> None:
    params = {
        "sparsity": np.float32(0.7),
        "asym": np.float64(0.05),
        "blocks": np.array([2, 3]),
        "bits": np.int16(7),
        "delta": np.float16(0.02),
        "seed": np.uint64(2**63 + 5),
        "chunk_size": np.int32(256),
        "threads": np.int8(1),
    }
    codec = slicer.Codec(**params)
    text = json.dumps(codec.get_config())  # raised TypeError before
    again = get_codec(json.loads(text))
    assert again == codec
    x = sample()
    # encode itself takes the numpy scalars (blocks as a pair)
    expected = slicer.encode(x, **{**params, "blocks": (np.int64(2), np.int64(3))})
    assert codec.encode(x) == expected
    assert again.encode(x) == expected
    levels = slicer.Codec(bits=np.array([8, 4, 2]))
    assert json.loads(json.dumps(levels.get_config()))["bits"] == [8, 4, 2]


def test_foreign_codec_ids_are_refused() -> None:
    with pytest.raises(ValueError, match="'zlib'"):
        slicer.Codec.from_config({"id": "zlib", "level": 5})
    with pytest.raises(ValueError, match="'zlib'"):
        slicer.Codec.from_config({"id": "zlib"})
    with pytest.raises(TypeError, match="level"):
        slicer.Codec.from_config({"id": "slicer", "level": 5})
    assert slicer.Codec.from_config({"sparsity": 0.5}) == slicer.Codec(sparsity=0.5)


def test_f_ordered_arrays_are_refused() -> None:
    x = np.asfortranarray(sample())
    codec = slicer.Codec(sparsity=0.0, bits=16)
    with pytest.raises(ValueError, match="F-ordered"):
        codec.encode(x)
    # 1-D and single-row arrays are both C and F contiguous: nothing to refuse
    assert codec.encode(np.asfortranarray(x[:1])) == codec.encode(np.ascontiguousarray(x[:1]))


def _zarr_v2_array(order: str, codec: slicer.Codec, shape=(13, 21), chunks=(5, 8)):
    """A zarr array in the v2 format (zarr 3 library, zarr_format=2), numcodecs compressor."""
    zarr = pytest.importorskip("zarr")
    return zarr.create_array(
        store={},
        shape=shape,
        chunks=chunks,
        dtype="float32",
        zarr_format=2,
        order=order,
        compressors=codec,
        filters=None,
    )


def test_zarr_format_2_c_order_round_trip_matches_the_codec() -> None:
    x = np.random.default_rng(4).standard_normal((13, 21)).astype(np.float32)
    codec = slicer.Codec(sparsity=0.0, bits=16, delta=0.0)
    z = _zarr_v2_array("C", codec)
    z[:] = x
    got = z[:]
    # every chunk equals decode(encode(chunk)), edge chunks (padded by zarr) included
    for i in range(0, 13, 5):
        for j in range(0, 21, 8):
            block = x[i : i + 5, j : j + 8]
            full = np.zeros((5, 8), np.float32)
            full[: block.shape[0], : block.shape[1]] = block
            ref = slicer.decode(slicer.encode(full, sparsity=0.0, bits=16, delta=0.0))
            assert np.array_equal(
                got[i : i + 5, j : j + 8], ref[: block.shape[0], : block.shape[1]]
            )
    assert np.max(np.abs(got - x)) < 1e-3


def test_zarr_format_2_f_order_is_refused_not_silently_wrong() -> None:
    x = np.random.default_rng(5).standard_normal((13, 21)).astype(np.float32)
    z = _zarr_v2_array("F", slicer.Codec(sparsity=0.0, bits=16))
    with pytest.raises(ValueError, match="F-ordered"):
        z[:] = x
