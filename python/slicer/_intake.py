"""Array intake: turn anything exposing DLPack or the buffer protocol into a NumPy array.

No copy is made when the input already is a C-contiguous float32 / float16 / bfloat16 array
on the CPU. NumPy cannot import bfloat16 through DLPack, so those tensors (PyTorch, JAX, ...)
are viewed through ``slicer._core.raw_view`` as uint16 and reinterpreted as
``ml_dtypes.bfloat16``.
"""

from __future__ import annotations

from typing import Any

import ml_dtypes
import numpy as np

__all__ = [
    "BFLOAT16",
    "CODE_OF_DTYPE",
    "DLPACK_CUDA",
    "DTYPE_OF_CODE",
    "as_host_array",
    "as_stream_bytes",
    "as_writable_out",
    "dlpack_device_type",
    "parse_dtype",
    "resolve_lazy_views",
]

BFLOAT16 = np.dtype(ml_dtypes.bfloat16)
#: Stream dtype codes (docs/format.md §6) and the NumPy dtypes they decode to.
DTYPE_OF_CODE = {1: np.dtype(np.float32), 2: np.dtype(np.float16), 3: BFLOAT16}
CODE_OF_DTYPE = {dtype: code for code, dtype in DTYPE_OF_CODE.items()}
_NAME_OF_CODE = {1: "float32", 2: "float16", 3: "bfloat16"}

# DLPack device types (dlpack.h): CPU memory and pinned host memory are readable here.
DLPACK_CPU = 1
DLPACK_CUDA = 2
DLPACK_CUDA_HOST = 3
# DLPack type codes (dlpack.h DLDataTypeCode).
_DL_INT, _DL_UINT, _DL_FLOAT, _DL_BFLOAT, _DL_COMPLEX, _DL_BOOL = 0, 1, 2, 4, 5, 6


def dtype_name(code: int) -> str:
    return _NAME_OF_CODE[code]


def parse_dtype(dtype: Any) -> int:
    """Stream dtype code of a dtype given as a string, NumPy/ml_dtypes dtype or torch dtype."""
    aliases = {"float32": 1, "float": 1, "float16": 2, "half": 2, "bfloat16": 3}
    if isinstance(dtype, str) or type(dtype).__module__ == "torch":
        text = str(dtype).removeprefix("torch.")
        if text in aliases:
            return aliases[text]
    try:
        np_dtype = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"dtype must be float32, float16 or bfloat16, got {dtype!r}") from None
    _check_dtype(np_dtype)
    return CODE_OF_DTYPE[np_dtype]


def _check_dtype(dtype: np.dtype) -> None:
    if dtype in CODE_OF_DTYPE:
        return
    if dtype.kind in "biuc":
        raise TypeError(
            f"slicer encodes floating-point arrays (float32, float16, bfloat16), got {dtype}"
        )
    if dtype.kind == "f":
        raise TypeError(
            f"dtype {dtype} is not supported: use float32, float16 or bfloat16 "
            "(for example x.astype(numpy.float32))"
        )
    raise TypeError(f"unsupported dtype {dtype}: use float32, float16 or bfloat16")


def dlpack_device_type(x: Any) -> int | None:
    """The DLPack device type of `x`, or None when it does not speak DLPack."""
    if isinstance(x, np.ndarray):
        return DLPACK_CPU
    device = getattr(x, "__dlpack_device__", None)
    if device is None or not hasattr(x, "__dlpack__"):
        return None
    try:
        return int(device()[0])
    except Exception:
        return None


def _from_raw_view(x: Any) -> np.ndarray:
    from . import _core

    try:
        view, code, bits = _core.raw_view(x)
    except (TypeError, ValueError, RuntimeError, BufferError) as exc:
        raise TypeError(f"cannot import {type(x).__name__} through DLPack: {exc}") from exc
    if code == _DL_BFLOAT and bits == 16:
        return view.view(BFLOAT16)
    if code == _DL_FLOAT and bits in (16, 32):
        return view.view(np.float16 if bits == 16 else np.float32)
    kinds = {_DL_INT: "integer", _DL_UINT: "unsigned integer", _DL_BOOL: "bool"}
    kinds[_DL_COMPLEX] = "complex"
    kinds[_DL_FLOAT] = "float"
    kind = kinds.get(code, f"DLPack type code {code}")
    raise TypeError(
        f"slicer encodes floating-point arrays (float32, float16, bfloat16), got {kind} of "
        f"{bits} bits"
    )


def resolve_lazy_views(x: Any) -> Any:
    """`x` with PyTorch's lazy negation / conjugation applied.

    ``torch.complex(a, b).conj().imag`` is a view whose *negative bit* is set: its memory
    holds ``b`` and the minus sign is applied lazily. DLPack exports the memory without that
    bit, so reading such a tensor through DLPack gives the wrong sign, silently. Such views
    (and conjugate views) are materialized here (one copy; plain tensors pass unchanged).
    """
    is_neg = getattr(x, "is_neg", None)
    is_conj = getattr(x, "is_conj", None)
    if callable(is_neg) and callable(is_conj) and type(x).__module__.startswith("torch"):
        if is_neg():
            x = x.resolve_neg()
        if is_conj():
            x = x.resolve_conj()
    return x


def _plain_ndarray(x: np.ndarray, name: str) -> np.ndarray:
    """A base-class view of an ndarray subclass; masked arrays are refused."""
    if isinstance(x, np.ma.MaskedArray):
        raise TypeError(
            f"{name} is a numpy.ma.MaskedArray: the codec has no notion of a mask; pass "
            f"{name}.filled(value) (or numpy.asarray({name}) to code the data under the mask)"
        )
    return x.view(np.ndarray)  # e.g. numpy.matrix: same memory, plain semantics


def as_host_array(x: Any, name: str = "x") -> np.ndarray:
    """A C-contiguous NumPy view (or copy, when `x` is strided) of a CPU input array."""
    if isinstance(x, np.ndarray):
        array = x if type(x) is np.ndarray else _plain_ndarray(x, name)
    elif isinstance(x, np.generic):  # NumPy scalars, e.g. numpy.float32(1.5)
        array = np.asarray(x)
    elif hasattr(x, "__dlpack__"):
        x = resolve_lazy_views(x)
        device = dlpack_device_type(x)
        if device not in (None, DLPACK_CPU, DLPACK_CUDA_HOST):
            raise ValueError(
                f"{name} lives on DLPack device type {device}; only CPU and CUDA arrays are "
                "supported"
            )
        try:
            array = np.from_dlpack(x)
        except (BufferError, RuntimeError, TypeError, ValueError):
            array = _from_raw_view(x)
    else:
        try:
            array = np.asarray(memoryview(x))
        except TypeError:
            raise TypeError(
                f"{name} must be an array exposing DLPack or the buffer protocol "
                f"(NumPy, PyTorch, ...), got {type(x).__name__}"
            ) from None
    if not array.dtype.isnative:  # e.g. big-endian '>f4' from a .npy file: swap to native
        array = array.astype(array.dtype.newbyteorder("="))
    _check_dtype(array.dtype)
    if not array.flags.c_contiguous:
        array = np.ascontiguousarray(array)
    return array


def as_writable_out(out: Any, name: str = "out") -> np.ndarray:
    """A writable, C-contiguous NumPy view of a caller's output buffer, sharing its memory.

    `out` may be a NumPy array or any CPU array that exports itself writably through DLPack,
    e.g. a PyTorch CPU tensor (``torch.empty(shape, dtype=torch.bfloat16)`` included: torch
    tensors are the route to get a bfloat16 result into torch, since ``torch.from_numpy`` cannot
    take an ``ml_dtypes.bfloat16`` array). Shape and dtype are checked by the caller.
    """
    if isinstance(out, np.ndarray):
        array = out if type(out) is np.ndarray else _plain_ndarray(out, name)
    elif hasattr(out, "__dlpack__"):
        device = dlpack_device_type(out)
        if device == DLPACK_CUDA:
            raise ValueError(f"{name} lives on a CUDA device: decode with device='cuda'")
        if device not in (DLPACK_CPU, DLPACK_CUDA_HOST):
            raise ValueError(f"{name} lives on DLPack device type {device}, not in CPU memory")
        _refuse_lazy_or_tracked(out, name)
        try:
            array = np.from_dlpack(out)
        except (BufferError, RuntimeError, TypeError, ValueError) as exc:
            array = _bfloat16_out(out, name, exc)
    else:
        raise TypeError(
            f"{name} must be a numpy.ndarray or a writable CPU array exposing DLPack (e.g. a "
            f"torch tensor), got {type(out).__name__}"
        )
    if not array.flags.c_contiguous:
        raise ValueError(f"{name} must be C-contiguous")
    if not array.flags.writeable:
        raise ValueError(f"{name} must be writable")
    return array


def _refuse_lazy_or_tracked(out: Any, name: str) -> None:
    if type(out).__module__.startswith("torch"):
        if getattr(out, "requires_grad", False):
            raise ValueError(f"{name} requires grad: pass {name}.detach() (or a fresh tensor)")
        if out.is_neg() or out.is_conj():
            raise ValueError(
                f"{name} is a lazily negated / conjugated torch view: writing through it would "
                "store the wrong sign; pass a plain tensor"
            )


def _bfloat16_out(out: Any, name: str, exc: Exception) -> np.ndarray:
    """NumPy cannot import bfloat16 through DLPack: a torch bfloat16 tensor is taken through
    an int16 view of the same memory (torch.Tensor.view(dtype) never copies)."""
    import sys

    torch = sys.modules.get("torch")
    if torch is not None and isinstance(out, torch.Tensor) and out.dtype == torch.bfloat16:
        return np.from_dlpack(out.view(torch.int16)).view(BFLOAT16)
    raise TypeError(f"cannot write into {type(out).__name__} {name} through DLPack: {exc}")


def as_stream_bytes(buf: Any) -> np.ndarray:
    """A 1-D uint8 view of a stream given as bytes, bytearray, memoryview or uint8 array."""
    if isinstance(buf, np.ndarray):
        if buf.dtype != np.uint8:
            raise TypeError(f"a stream given as an array must have dtype uint8, got {buf.dtype}")
        return np.ascontiguousarray(buf.reshape(-1))
    if isinstance(buf, (bytes, bytearray, memoryview)):
        view = memoryview(buf)
        if not view.c_contiguous:
            view = memoryview(view.tobytes())
        return np.frombuffer(view, dtype=np.uint8)
    device = dlpack_device_type(buf)
    if device == DLPACK_CUDA:
        raise ValueError("this stream lives on a CUDA device: decode it with device='cuda'")
    if device in (DLPACK_CPU, DLPACK_CUDA_HOST):  # e.g. a torch.uint8 CPU tensor
        return as_stream_bytes(np.from_dlpack(buf))
    raise TypeError(
        f"a stream must be bytes, bytearray, memoryview or a uint8 array, got {type(buf).__name__}"
    )
