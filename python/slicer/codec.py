"""numcodecs-compatible codec (``codec_id = "slicer"``).

Registered through the ``numcodecs.codecs`` entry point, so that
``numcodecs.registry.get_codec({"id": "slicer", ...})`` finds it. When numcodecs is missing
(or fails to import, as numcodecs 0.17.1 does next to zfpy 1.0.1.post0) the class is a
plain class with the same methods.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ._api import _max_bytes, decode, encode
from ._params import make_params

__all__ = ["Slicer", "plain_params"]

try:
    from numcodecs.abc import Codec as _CodecBase
except Exception:  # any import failure of the optional dependency leaves a plain base
    _CodecBase = object


def _plain(value: Any) -> Any:
    """A NumPy scalar as the Python int / float of the same value; anything else unchanged."""
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    return value


def _plain_sequence(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return _plain(value)


def _stream_layout(buf: Any) -> tuple[tuple[int, ...], np.dtype]:
    """Shape and dtype a stream decodes to, from its validated header."""
    from . import _core
    from ._errors import raise_decode_status
    from ._intake import DTYPE_OF_CODE, as_stream_bytes

    status, header = _core.read_header(as_stream_bytes(buf), 2**31)
    if status:
        raise_decode_status(status)
    return tuple(header["shape"]), DTYPE_OF_CODE[header["dtype"]]


def _copy_into(decoded: np.ndarray, out: Any) -> Any:
    """Copy `decoded` into a caller buffer of the same number of bytes (numcodecs style)."""
    target = np.asarray(out) if not isinstance(out, np.ndarray) else out
    if target.nbytes != decoded.nbytes:
        raise ValueError(f"out holds {target.nbytes} bytes, the decoded array {decoded.nbytes}")
    if not target.flags.c_contiguous or not target.flags.writeable:
        raise ValueError("out must be C-contiguous and writable")
    target.reshape(-1).view(np.uint8)[:] = decoded.reshape(-1).view(np.uint8)
    return out


_CONFIG_KEYS = (
    "sparsity",
    "asym",
    "blocks",
    "bits",
    "delta",
    "seed",
    "max_bytes",
    "groups",
    "chunk_size",
    "threads",
)


def plain_params(**kwargs: Any) -> dict[str, Any]:
    """The keyword arguments of :func:`slicer.encode`, validated, as plain Python values.

    A codec configuration must be JSON-serializable (numcodecs and zarr write it into
    .zarray / zarr.json) whatever the caller passed (numpy scalars, arrays of widths, ...);
    int() / float() keep the exact values encode() would have seen. Errors name the parameter.
    """
    unknown = sorted(set(kwargs) - set(_CONFIG_KEYS))
    if unknown:
        raise TypeError(f"unknown codec parameter(s): {', '.join(unknown)}")
    params = {key: _plain(value) for key, value in kwargs.items()}
    params["bits"] = _plain_sequence(params.get("bits", 8))
    blocks = _plain_sequence(params.get("blocks"))
    params["blocks"] = tuple(blocks) if isinstance(blocks, list) else blocks
    groups = params.get("groups", "tensor")
    if not isinstance(groups, str):
        raise TypeError(f"groups must be 'tensor' or 'rows', got {type(groups).__name__}")
    params["groups"] = str(groups)
    max_bytes = params.pop("max_bytes", None)
    make_params(**params)
    params["max_bytes"] = _max_bytes(max_bytes)  # bool / float / < 1 refused here
    return {key: params[key] for key in _CONFIG_KEYS if key in params}


def _init_params(arguments: dict[str, Any]) -> dict[str, Any]:
    """plain_params of a codec constructor's arguments (its ``locals()``, keys _CONFIG_KEYS)."""
    return plain_params(**{key: arguments[key] for key in _CONFIG_KEYS})


def _json_config(params: dict[str, Any]) -> dict[str, Any]:
    """A copy of validated codec parameters with the tuples (blocks, bits) as JSON lists."""
    config = dict(params)
    for key in ("blocks", "bits"):
        if isinstance(config.get(key), tuple):
            config[key] = list(config[key])
    return config


class Slicer(_CodecBase):  # type: ignore[misc, valid-type]
    """SLICER as a numcodecs codec; parameters are those of :func:`slicer.encode`.

    Parameters
    ----------
    sparsity, asym, blocks, bits, delta, seed, max_bytes, groups, chunk_size, threads
        As in :func:`slicer.encode`; validated here, so a bad configuration fails at
        construction.
    """

    codec_id = "slicer"

    def __init__(
        self,
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
        for key, value in _init_params(locals()).items():
            setattr(self, key, value)

    def _params(self) -> dict[str, Any]:
        return {key: getattr(self, key) for key in _CONFIG_KEYS}

    def encode(self, buf: Any) -> bytes:
        """Encode an array (float32 / float16 / bfloat16) into a SLICER stream.

        F-ordered arrays are refused (as numcodecs' zfpy does): a stream holds its elements in
        C order, and zarr with ``order="F"`` would read the decoded C-ordered bytes back in F
        order, i.e. transposed values. Use ``order="C"`` with this codec (with zarr 3 arrays,
        :class:`slicer.zarr3.SlicerCodec` handles either order).
        """
        if isinstance(buf, np.ndarray) and buf.ndim > 1 and buf.flags.f_contiguous:
            if not buf.flags.c_contiguous:
                raise ValueError(
                    "the slicer codec does not support F-ordered arrays (zarr order='F'): "
                    "its streams hold C order; use order='C'"
                )
        return encode(buf, **self._params())

    def decode(self, buf: Any, out: Any = None) -> Any:
        """Decode a stream; with `out`, fill that buffer (same byte size) and return it."""
        if isinstance(buf, np.ndarray) and buf.dtype != np.uint8:
            buf = buf.reshape(-1).view(np.uint8)
        if out is None:
            return decode(buf, threads=self.threads)
        if isinstance(out, np.ndarray) and out.flags.c_contiguous and out.flags.writeable:
            shape, dtype = _stream_layout(buf)
            if out.dtype == dtype and out.size == math.prod(shape):
                decode(buf, out=out.reshape(shape), threads=self.threads)  # in place, no copy
                return out
        decoded = decode(buf, threads=self.threads)
        return _copy_into(decoded, out)

    def get_config(self) -> dict[str, Any]:
        """JSON-serializable configuration, with ``id``; ``from_config`` inverts it."""
        return {"id": self.codec_id, **_json_config(self._params())}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Slicer:
        """Codec from a configuration produced by :meth:`get_config`."""
        if not isinstance(config, dict):
            raise TypeError(f"config must be a dict, got {type(config).__name__}")
        params = dict(config)
        codec_id = params.pop("id", cls.codec_id)
        if codec_id != cls.codec_id:
            raise ValueError(
                f"config is for codec id {codec_id!r}, not {cls.codec_id!r}: build it with "
                "numcodecs.get_codec(config)"
            )
        unknown = sorted(set(params) - set(_CONFIG_KEYS))
        if unknown:
            raise TypeError(f"unknown {cls.codec_id!r} config key(s): {', '.join(unknown)}")
        return cls(**params)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Slicer):
            return NotImplemented
        return self.get_config() == other.get_config()

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self._params().items())
        return f"{type(self).__name__}({args})"
