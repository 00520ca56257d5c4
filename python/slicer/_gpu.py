"""CUDA backend of the Python API (``slicer._cuda``, built when nvcc is found).

``slicer.encode`` / ``encode_batch`` / ``decode`` call these functions for arrays whose DLPack
device is CUDA, or for ``decode(..., device="cuda")``. The GPU writes the same bytes as the
CPU codec (docs/format.md). Work runs on the producer's current stream: the DLPack stream
handshake (``__dlpack__(stream=...)``) makes the producer's pending work visible there, and the
results are ordered on that stream too.

The module imports on machines without a GPU or driver; :func:`available` then returns False
and every other function raises ``RuntimeError``.
"""

from __future__ import annotations

import operator
from typing import Any

from ._errors import raise_decode_status, raise_encode_status
from ._intake import as_stream_bytes

try:
    from . import _cuda
except ImportError:  # a build without the CUDA backend
    _cuda = None

__all__ = ["available", "decode", "encode", "encode_batch", "encode_dense"]

# Status codes of cuda/include/slicer/slicer_cuda.h (the C ABI's own codes are < 20).
NO_DEVICE = 20
CUDA_RUNTIME = 21
TEMP_TOO_SMALL = 22
_DLPACK_CUDA = 2
_DEFAULT_MAX_ELEMENTS = 2**31


def available() -> bool:
    """True when the CUDA backend is built and a CUDA driver and device are present."""
    return _cuda is not None and bool(_cuda.available())


def _require() -> Any:
    if _cuda is None:
        raise RuntimeError("slicer was built without the CUDA backend (slicer._cuda is missing)")
    if not _cuda.available():
        raise RuntimeError("slicer's CUDA backend found no usable GPU / CUDA driver")
    return _cuda


def _raise_cuda(status: int, encoding: bool) -> None:
    if status in (NO_DEVICE, CUDA_RUNTIME, TEMP_TOO_SMALL):
        detail = _cuda.last_cuda_error() if _cuda is not None else ""
        text = _cuda.status_string(status) if _cuda is not None else f"status {status}"
        raise RuntimeError(f"slicer CUDA backend: {text}" + (f" ({detail})" if detail else ""))
    if encoding:
        raise_encode_status(status, "CUDA backend")
    raise_decode_status(status, "CUDA backend")


def _producer_stream(x: Any) -> int:
    """The raw handle of the CUDA stream the producer of `x` works on (0: legacy default)."""
    module = type(x).__module__.split(".")[0]
    try:
        if module == "torch":
            import torch

            return int(torch.cuda.current_stream(x.device).cuda_stream)
        if module == "cupy":
            import cupy

            return int(cupy.cuda.get_current_stream().ptr)
    except Exception:  # the framework is present but has no CUDA context: use the default
        return 0
    return 0


def _capsule(x: Any, stream: int) -> Any:
    """DLPack capsule of `x`, its pending work ordered before `stream` (DLPack handshake)."""
    if not hasattr(x, "__dlpack__"):
        raise TypeError(f"expected a CUDA array exposing __dlpack__, got {type(x).__name__}")
    # DLPack: 1 names the legacy default stream; 0 is not allowed for CUDA.
    handshake = stream if stream else 1
    try:
        return x.__dlpack__(stream=handshake)
    except TypeError:  # producers predating the stream keyword
        return x.__dlpack__()


def _device_of(x: Any) -> int:
    device = getattr(x, "__dlpack_device__", None)
    if device is None:
        return -1
    kind, index = device()
    return int(index) if int(kind) == _DLPACK_CUDA else -1


def encode(x: Any, params: dict[str, Any], out: str = "host") -> Any:
    """Encode a CUDA array with the integer parameter dict of ``slicer._params.make_params``.

    ``out="host"`` returns ``bytes``; ``out="device"`` returns a 1-D uint8 CUDA array holding
    the stream (DLPack-capable: ``torch.from_dlpack`` works on it).
    """
    cuda = _require()
    if out not in ("host", "device"):
        raise ValueError(f"out must be 'host' or 'device', got {out!r}")
    stream = _producer_stream(x)
    status, result = cuda.encode(_capsule(x, stream), params, out == "device", stream)
    if status:
        _raise_cuda(status, encoding=True)
    return result


def encode_dense(x: Any, params: dict[str, Any]) -> bytes:
    """Format-2 dense encode of a CUDA array (float32/float16/bfloat16/float64) on the GPU.

    `params` is the validated dict of ``slicer._params.make_dense_params`` with its step and
    group table set. The stream is byte-identical to the CPU codec's and returned as bytes.
    """
    cuda = _require()
    stream = _producer_stream(x)
    status, result = cuda.dense_encode(_capsule(x, stream), params, stream)
    if status == 1:  # SLICER_ERR_INVALID_ARGUMENT: codes above 2^53 (the CPU path's message)
        raise ValueError(
            f"invalid dense parameters (step={params['step']!r} too small for the data "
            "or out of range)"
        )
    if status:
        _raise_cuda(status, encoding=True)
    return result


def encode_batch(x: Any, axis: int, params: dict[str, Any]) -> list[bytes]:
    """Encode every slice of a CUDA array along `axis` in one set of launches.

    Item i is byte-identical to ``encode`` of ``x`` taken at index i along `axis`.
    """
    cuda = _require()
    ndim = len(getattr(x, "shape", ()))
    if ndim == 0:
        raise ValueError("encode_batch needs an array with at least one dimension")
    index = operator.index(axis)
    if not -ndim <= index < ndim:
        raise ValueError(f"axis {index} is out of range for an array of {ndim} dims")
    stream = _producer_stream(x)
    status, items = cuda.encode_batch(_capsule(x, stream), index % ndim, params, stream)
    if status:
        _raise_cuda(status, encoding=True)
    return list(items)


def _stream_source(buf: Any) -> tuple[Any, int, int]:
    """(array-like for the module, device index or -1, stream) of a host or device stream."""
    device = _device_of(buf)
    if device >= 0:
        stream = _producer_stream(buf)
        return _capsule(buf, stream), device, stream
    # Host memory: bytes-like objects, uint8 arrays, CPU DLPack tensors (as slicer.decode).
    return as_stream_bytes(buf), -1, 0


def decode(buf: Any, out: Any = None, max_elements: int = _DEFAULT_MAX_ELEMENTS) -> Any:
    """Decode a stream on the GPU into a CUDA array (DLPack-capable); format 1 or 2 (dense).

    `buf` is host bytes (any buffer) or a 1-D uint8 CUDA array. `out`, when given, is a
    C-contiguous CUDA array of the stream's shape and dtype (e.g. a torch tensor); it is filled
    and returned. Otherwise a new CUDA array is returned (``torch.from_dlpack`` works on it).
    """
    cuda = _require()
    limit = operator.index(max_elements)
    if limit < 0:
        raise ValueError(f"max_elements must be >= 0, got {limit}")
    src, device, stream = _stream_source(buf)
    out_capsule = None
    if out is not None:
        out_device = _device_of(out)
        if out_device < 0:
            raise ValueError("out must be an array on a CUDA device")
        if device < 0:
            device = out_device
            stream = _producer_stream(out)
        out_capsule = _capsule(out, stream)
    if device < 0:
        device = 0
    try:
        status, result = cuda.decode(src, limit, out_capsule, device, stream)
    except ValueError as exc:
        raise ValueError(str(exc)) from None
    if status:
        _raise_cuda(status, encoding=False)
    return out if out is not None else result
