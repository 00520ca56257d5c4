"""SLICER as a zarr 3 array -> bytes codec (``{"name": "slicer"}`` in zarr.json).

Registered through zarr's ``zarr.codecs`` entry point, so an array written with it reopens in
any process that has this package installed::

    import zarr
    from slicer.zarr3 import SlicerCodec

    z = zarr.create_array(store, shape=(4096, 576), chunks=(256, 576), dtype="float32",
                          serializer=SlicerCodec(sparsity=0.9, bits=8, groups="rows"),
                          compressors=None)

Each chunk becomes one SLICER stream (docs/format.md) of the chunk's logical shape, in C
order whatever the array's memory order, so ``order="F"`` arrays read back correctly. It works
as the inner codec of zarr's sharding codec. Lossy: a chunk reads back as
``slicer.decode(slicer.encode(chunk, **params))``.
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from zarr.abc.codec import ArrayBytesCodec
from zarr.core.common import parse_named_configuration

from ._api import decode, encode
from ._errors import FormatError
from .codec import _CONFIG_KEYS, _init_params, _json_config

if TYPE_CHECKING:
    from typing import Self

    from zarr.core.array_spec import ArraySpec
    from zarr.core.buffer import Buffer, NDBuffer

__all__ = ["SlicerCodec"]

_NAME = "slicer"
_DTYPES = (np.dtype(np.float32), np.dtype(np.float16))


def _native_dtype(spec_dtype: Any) -> np.dtype:
    native = spec_dtype.to_native_dtype() if hasattr(spec_dtype, "to_native_dtype") else spec_dtype
    return np.dtype(native)


@dataclass(frozen=True)
class SlicerCodec(ArrayBytesCodec):
    """SLICER as a zarr 3 array -> bytes codec; parameters are those of :func:`slicer.encode`.

    Parameters
    ----------
    sparsity, asym, blocks, bits, delta, seed, max_bytes, groups, chunk_size, threads
        As in :func:`slicer.encode`, validated at construction. `max_bytes` limits each chunk's
        stream; `threads` only affects speed, never the bytes.
    """

    is_fixed_size = False

    sparsity: float
    asym: float
    blocks: int | tuple[int, int] | None
    bits: int | list[int]
    delta: float
    seed: int
    max_bytes: int | None
    groups: str
    chunk_size: int
    threads: int

    def __init__(
        self,
        *,
        sparsity: float = 0.9,
        asym: float = 0.0,
        blocks: int | tuple[int, int] | list[int] | None = None,
        bits: int | list[int] = 8,
        delta: float = 0.01,
        seed: int = 0,
        max_bytes: int | None = None,
        groups: str = "tensor",
        chunk_size: int = 16384,
        threads: int = 0,
    ) -> None:
        params = _init_params(locals())
        if isinstance(params["bits"], list):
            params["bits"] = tuple(params["bits"])  # hashable: the dataclass is frozen
        for key, value in params.items():
            object.__setattr__(self, key, value)

    def _params(self) -> dict[str, Any]:
        return _json_config({key: getattr(self, key) for key in _CONFIG_KEYS})

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        """Codec from its zarr.json entry ``{"name": "slicer", "configuration": {...}}``."""
        _, configuration = parse_named_configuration(data, _NAME, require_configuration=False)
        return cls(**(configuration or {}))

    def to_dict(self) -> dict[str, Any]:
        """The zarr.json entry: plain JSON values; ``from_dict`` inverts it."""
        return {"name": _NAME, "configuration": self._params()}

    def validate(self, *, shape: Any, dtype: Any, chunk_grid: Any) -> None:
        """Refuse, when the array is created, data types the codec cannot hold."""
        native = _native_dtype(dtype)
        if native.newbyteorder("=") not in _DTYPES:
            raise ValueError(
                f"the slicer zarr codec holds float32 or float16 arrays, got dtype {native}"
            )

    def _encode_sync(self, chunk_array: NDBuffer, chunk_spec: ArraySpec) -> Buffer | None:
        # The logical chunk, C order: the stream does not depend on the memory order.
        array = np.ascontiguousarray(chunk_array.as_numpy_array())
        stream = encode(array, **self._params())
        return chunk_spec.prototype.buffer.from_bytes(stream)

    def _decode_sync(self, chunk_bytes: Buffer, chunk_spec: ArraySpec) -> NDBuffer:
        data = np.asarray(chunk_bytes.as_numpy_array()).view(np.uint8).reshape(-1)
        expected = tuple(chunk_spec.shape)
        # A chunk never holds more than its shape: refuse larger claims before allocating.
        decoded = decode(data, max_elements=math.prod(expected), threads=self.threads)
        if decoded.shape != expected:
            raise FormatError(
                f"a slicer chunk holds shape {decoded.shape}, the array's chunk is {expected}"
            )
        dtype = _native_dtype(chunk_spec.dtype)
        if decoded.dtype != dtype:
            decoded = decoded.astype(dtype)  # e.g. a big-endian array: same values
        return chunk_spec.prototype.nd_buffer.from_numpy_array(decoded)

    async def _encode_single(self, chunk_array: NDBuffer, chunk_spec: ArraySpec) -> Buffer | None:
        return await asyncio.to_thread(self._encode_sync, chunk_array, chunk_spec)

    async def _decode_single(self, chunk_bytes: Buffer, chunk_spec: ArraySpec) -> NDBuffer:
        return await asyncio.to_thread(self._decode_sync, chunk_bytes, chunk_spec)

    def compute_encoded_size(self, input_byte_length: int, _chunk_spec: ArraySpec) -> int:
        raise NotImplementedError("SLICER streams have a data-dependent size")
