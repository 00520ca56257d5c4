"""slicer.zarr3.SlicerCodec: a zarr 3 array -> bytes codec (entry point, orders, sharding)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import slicer

zarr = pytest.importorskip("zarr")
from slicer.zarr3 import SlicerCodec  # noqa: E402  (needs zarr)

PARAMS = {"sparsity": 0.6, "bits": 7, "blocks": (2, 3), "seed": 4}


def reference(x: np.ndarray, chunks: tuple[int, int], **params) -> np.ndarray:
    """Each chunk (zero-padded at the edges, as zarr stores it) through encode/decode."""
    out = np.empty_like(x)
    for i in range(0, x.shape[0], chunks[0]):
        for j in range(0, x.shape[1], chunks[1]):
            block = x[i : i + chunks[0], j : j + chunks[1]]
            full = np.zeros(chunks, x.dtype)
            full[: block.shape[0], : block.shape[1]] = block
            y = slicer.decode(slicer.encode(full, **params))
            out[i : i + chunks[0], j : j + chunks[1]] = y[: block.shape[0], : block.shape[1]]
    return out


def data(shape=(13, 21), dtype=np.float32, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


@pytest.mark.parametrize("order", ["C", "F"])
@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_chunks_decode_to_the_codec_output_in_either_memory_order(order, dtype) -> None:
    x = data(dtype=dtype)
    z = zarr.create_array(
        store={},
        shape=x.shape,
        chunks=(5, 8),
        dtype=x.dtype,
        serializer=SlicerCodec(**PARAMS),
        compressors=None,
        config={"order": order},
    )
    z[:] = x
    assert np.array_equal(z[:], reference(x, (5, 8), **PARAMS))
    # lossless-ish settings: the values themselves come back (not transposed)
    z2 = zarr.create_array(
        store={},
        shape=x.shape,
        chunks=(5, 8),
        dtype=x.dtype,
        serializer=SlicerCodec(sparsity=0.0, bits=16, delta=0.0),
        compressors=None,
        config={"order": order},
    )
    z2[:] = x
    tolerance = 1e-3 if dtype == np.float32 else 2e-3
    assert np.max(np.abs(z2[:].astype(np.float64) - x)) < tolerance


def test_sharding_with_slicer_inner_chunks() -> None:
    x = data((40, 30), seed=1)
    store: dict = {}
    z = zarr.create_array(
        store=store,
        shape=x.shape,
        chunks=(5, 6),
        shards=(20, 30),
        dtype="float32",
        serializer=SlicerCodec(**PARAMS),
        compressors=None,
    )
    z[:] = x
    assert sorted(k for k in store if k.startswith("c/")) == ["c/0/0", "c/1/0"]  # 2 shards
    assert np.array_equal(z[:], reference(x, (5, 6), **PARAMS))
    assert np.array_equal(z[7:19, 4:25], reference(x, (5, 6), **PARAMS)[7:19, 4:25])


def test_config_is_plain_json_and_round_trips() -> None:
    codec = SlicerCodec(sparsity=np.float32(0.75), bits=np.array([8, 4]), seed=np.uint64(7))
    entry = json.loads(json.dumps(codec.to_dict()))
    assert entry["name"] == "slicer"
    assert entry["configuration"]["bits"] == [8, 4]
    again = SlicerCodec.from_dict(entry)
    assert again == codec and hash(again) == hash(codec)
    with pytest.raises(ValueError, match="sparsity"):
        SlicerCodec(sparsity=1.5)
    with pytest.raises(TypeError, match="max_bytes"):
        SlicerCodec(max_bytes=True)


@pytest.mark.parametrize("dtype", ["float64", "int32"])
def test_unsupported_dtypes_are_refused_at_creation(dtype) -> None:
    with pytest.raises(ValueError, match="float32 or float16"):
        zarr.create_array(
            store={},
            shape=(8,),
            chunks=(4,),
            dtype=dtype,
            serializer=SlicerCodec(),
            compressors=None,
        )


def test_a_chunk_claiming_another_shape_is_a_format_error() -> None:
    store: dict = {}
    z = zarr.create_array(
        store=store,
        shape=(8, 8),
        chunks=(4, 4),
        dtype="float32",
        serializer=SlicerCodec(sparsity=0.0),
        compressors=None,
    )
    z[:] = data((8, 8))
    # a valid stream of 2 x 8 elements where a 4 x 4 chunk belongs; then one of 64 x 64,
    # refused from its header (max_elements) before anything is allocated
    from zarr.core.buffer import cpu

    store["c/0/0"] = cpu.Buffer.from_bytes(slicer.encode(data((2, 8))))
    with pytest.raises(slicer.FormatError, match="shape"):
        z[:4, :4]
    store["c/0/0"] = cpu.Buffer.from_bytes(slicer.encode(data((64, 64))))
    with pytest.raises(slicer.FormatError, match="max_elements"):
        z[:4, :4]


def test_array_reopens_in_a_fresh_process(tmp_path) -> None:
    """The zarr.codecs entry point: a new interpreter finds the codec by its name alone."""
    x = data((12, 10), seed=3)
    z = zarr.create_array(
        store=str(tmp_path / "a.zarr"),
        shape=x.shape,
        chunks=(4, 10),
        dtype="float32",
        serializer=SlicerCodec(**PARAMS),
        compressors=None,
    )
    z[:] = x
    np.save(tmp_path / "expected.npy", z[:])
    script = textwrap.dedent(
        f"""
        import sys, numpy as np, zarr
        z = zarr.open_array({str(tmp_path / "a.zarr")!r}, mode="r")
        expected = np.load({str(tmp_path / "expected.npy")!r})
        assert np.array_equal(z[:], expected), "values differ"
        print("slicer.zarr3" in sys.modules)
        print(z.metadata.to_dict()["codecs"][0]["name"])
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split()[-2:] == ["True", "slicer"]
