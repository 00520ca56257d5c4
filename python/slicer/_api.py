"""The public codec API: encode, encode_batch, decode, size_bound.

Arrays on the CPU go to the C++ codec (``slicer._core``); arrays whose DLPack device is CUDA
go to the CUDA backend (``slicer._gpu``). Both write the same bytes (docs/format.md).
"""

from __future__ import annotations

import functools
import inspect
import math
import operator
from typing import Any

import numpy as np

from . import _core, _rate
from ._context import native_context
from ._errors import (
    LIMIT_EXCEEDED,
    TARGET_UNREACHABLE,
    UNSUPPORTED_MODE,
    FormatError,
    raise_decode_status,
    raise_encode_status,
)
from ._intake import (
    CODE_OF_DTYPE,
    DLPACK_CUDA,
    DTYPE_OF_CODE,
    as_host_array,
    as_stream_bytes,
    as_writable_out,
    dlpack_device_type,
    parse_dtype,
    resolve_lazy_views,
)
from ._params import DEFAULT_CHUNK_LOG2, class_length, make_dense_params, make_params
from ._rate import classes_at_step, dense_for_budget, dense_for_error, encode_within
from ._trellis import trellis_at_step, trellis_for_budget, trellis_for_error

__all__ = ["decode", "encode", "encode_batch", "size_bound"]

_MAX_NDIM = 32
_BFLOAT16_CODE = 3
DEFAULT_MAX_ELEMENTS = 2**31

_PARAMS_DOC_HEAD = """\
    sparsity : float, default 0.9
        Fraction s in [0, 1) of elements to drop. Exactly k = min(floor(N(1e9 - s_ppb)/1e9),
        nnz) elements are kept per group, with s_ppb = round(s * 1e9) (docs/format.md §4.1).
    asym : float, default 0.0
        Asymmetry lambda in [0, 1) of the top-K filter (paper Eq. 7): positives must clear
        (1 + lambda) tau, negatives (1 - lambda) tau; the kept count stays exactly k.
    blocks : int or (int, int), default 3 (len(bits) when bits is a list)
        Blocks per sign M (or the pair (M+, M-)), each 1..64. Each sign's kept values are cut
        into blocks of equal cardinality, largest magnitudes first, each quantized on its own.
    bits : int or list of int, default 8
        q_bit in 1..16, the widest code; ABQ lowers it per block while the DS metric stays
        within `delta`. A list selects the fixed multi-level mode: one width per block (largest
        magnitudes first), and then max(M+, M-) must equal len(bits).
    delta : float, default 0.01
        ABQ budget delta >= 0 (paper Eq. 9), stored as round(delta * 1e6); 0 keeps q_bit for
        every block.
    seed : int, default 0
        Seed (0..2**64-1) of the counter-based draw that breaks ties between equal magnitudes.
        Same input, parameters and seed give the same bytes on every backend.
"""

_MAX_BYTES_DOC = """\
    max_bytes : int or None, default None
        Rate control: the stream is never larger than this. If the requested setting fits it
        is used as is. Otherwise, for each width b from `bits` down to 2 (a multi-level list is
        scaled down proportionally, its largest level becoming b), the encoder finds by
        bisection (bracketed by `size_bound`) the smallest sparsity >= the requested one whose
        real stream fits, and keeps, among those candidates, the one whose decoded tensor has
        the lowest relative L2 error against the input. Width 1 is tried only when no wider
        candidate fits. If nothing fits even with one kept element per group, ValueError
        reports the smallest size reached.
"""

_PARAMS_DOC_TAIL = """\
    groups : {"tensor", "rows"}, default "tensor"
        "tensor" codes the whole tensor as one problem; "rows" codes every row of the last
        axis on its own (top-K, blocks and ranges per row, e.g. per LLM token).
    chunk_size : int or None, default None
        Elements per independently decodable payload chunk, a power of two in 64..2**24.
        None: 16384 for ``mode="topk"`` and ``trellis=True``; for ``mode="dense"`` /
        ``"auto"`` the size the decoders take fastest for this many elements
        (docs/format.md §15.1: 16384 below 8192 and from 2**18 elements on, 8192 … 131072
        between), also given as ``"auto"``.
    threads : int, default 0
        Worker threads (0 = all cores). The bytes never depend on it.
"""

_OUT_DOC = """\
    out : {"host", "device"}, default "host"
        "host" returns ``bytes``. "device" (CUDA input only) leaves the stream in device
        memory and returns it as a 1-D uint8 CUDA array (DLPack-capable, for GPU-direct
        transport); `slicer.decode(..., device="cuda")` takes it back.
"""

_CONTEXT_DOC = """\
    context : slicer.Context or None, default None
        The worker pool and scratch of CPU calls (see :class:`slicer.Context`); None uses
        the calling thread's default context, which shares the process's pool.
"""


def _max_bytes(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool):
        raise TypeError("max_bytes must be an integer or None, got bool")
    try:
        limit = operator.index(value)
    except TypeError:
        raise TypeError(
            f"max_bytes must be an integer or None, got {type(value).__name__}"
        ) from None
    if limit < 1:
        raise ValueError(f"max_bytes must be >= 1, got {limit}")
    return limit


def check_max_elements(value: Any) -> int:
    """`max_elements` as an int in 0 .. 2**64 - 1 (TypeError / ValueError naming it)."""
    if isinstance(value, bool):
        raise TypeError("max_elements must be an integer, got bool")
    try:
        limit = operator.index(value)
    except TypeError:
        raise TypeError(f"max_elements must be an integer, got {type(value).__name__}") from None
    if not 0 <= limit < 2**64:
        raise ValueError(f"max_elements must be in 0 .. 2**64 - 1, got {limit}")
    return limit


def _check_threads(value: Any) -> int:
    if isinstance(value, bool):
        raise TypeError("threads must be an integer, got bool")
    try:
        count = operator.index(value)
    except TypeError:
        raise TypeError(f"threads must be an integer, got {type(value).__name__}") from None
    if not 0 <= count < 2**32:
        raise ValueError(f"threads must be in 0 .. 2**32 - 1, got {count}")
    return count


def _check_shape(shape: tuple[int, ...], params: dict[str, Any]) -> None:
    if len(shape) > _MAX_NDIM:
        raise ValueError(
            f"arrays of at most {_MAX_NDIM} dimensions are supported, got {len(shape)}"
        )
    if params["group_rows"] and len(shape) == 0:
        raise ValueError("groups='rows' needs an array with at least one dimension")


def _native_view(array: np.ndarray) -> tuple[np.ndarray, int]:
    """The array as the C library reads it (bfloat16 as its uint16 bits) and its dtype code."""
    code = CODE_OF_DTYPE[array.dtype]
    return (array.view(np.uint16) if code == _BFLOAT16_CODE else array), code


def encode_host(array: np.ndarray, params: dict[str, Any], context: Any = None) -> bytes:
    """Encode a C-contiguous CPU array of a supported dtype with integer parameters."""
    _check_shape(array.shape, params)
    view, code = _native_view(array)
    status, stream = _core.encode_array(native_context(context), view, code, _core.Params(params))
    if status:
        raise_encode_status(status)
    return stream


# The fast path of encode(): per-token callers encode many small arrays with the same
# arguments, so the converted parameters are cached on the exact arguments and their types
# (bool never aliases int, numpy.float64 never aliases float) once a call validated them.
_FAST_DTYPES = {np.dtype(np.float32): 1, np.dtype(np.float16): 2}
_FAST_PARAMS: dict[tuple[Any, ...], Any] = {}
_FAST_PARAMS_MAX = 256


def _gpu_module() -> Any:
    try:
        from . import _gpu
    except ImportError as exc:
        raise RuntimeError(
            "this array lives on a CUDA device, but slicer was built without the CUDA backend"
        ) from exc
    if not _gpu.available():
        raise RuntimeError(
            "this array lives on a CUDA device, but no usable GPU / CUDA driver was found by "
            "slicer's CUDA backend"
        )
    return _gpu


def _host_copy_of_cuda(x: Any) -> np.ndarray:
    """A host copy of a CUDA array, for rate control and the class model (the bytes are
    backend-independent)."""
    try:
        array = np.from_dlpack(x, device="cpu", copy=True)
    except Exception as exc:
        raise RuntimeError(
            f"a byte / error budget or classes='auto' needs a host copy of this CUDA array and "
            f"DLPack could not make one ({exc}); copy it to the CPU first"
        ) from exc
    return as_host_array(array)


def encode(
    x: Any,
    *,
    mode: str = "topk",
    sparsity: float = 0.9,
    asym: float = 0.0,
    blocks: int | tuple[int, int] | None = None,
    bits: int | list[int] = 8,
    delta: float = 0.01,
    seed: int = 0,
    max_bytes: int | None = None,
    groups: str = "tensor",
    chunk_size: int | str | None = None,
    threads: int = 0,
    out: str = "host",
    context: Any = None,
    step: float | None = None,
    rel_error: float | None = None,
    rho: float | None = None,
    weights: Any = None,
    classes: int | str | None = None,
    class_map: str | None = None,
    class_bounds: Any = None,
    trellis: bool | float = False,
    table_kind: int | str = 0,
    low_bits: int | str = 0,
) -> Any:
    """Encode an array into a SLICER stream (docs/format.md).

    ``mode="topk"`` (default) writes format 1 (top-K + magnitude split + ABQ), bit-exact with
    earlier releases. ``mode="dense"`` / ``mode="auto"`` write format 2 (dead-zone uniform
    quantizer + rANS, see `_DENSE_DOC` below).

    Parameters
    ----------
    x : array
        Anything exposing DLPack (``__dlpack__``) or the buffer protocol: NumPy arrays,
        PyTorch CPU tensors, JAX / CuPy arrays, ... of dtype float32, float16 or bfloat16
        (``ml_dtypes.bfloat16`` NumPy arrays, ``torch.bfloat16`` tensors), any shape. Taken
        without a copy when C-contiguous. Arrays on a CUDA device are encoded on the GPU.
    """
    if mode != "topk":
        topk_given = (sparsity, asym, blocks, bits, delta, seed) != (0.9, 0.0, None, 8, 0.01, 0)
        return _encode_dense(
            x, mode, topk_given, step, rel_error, max_bytes, rho, groups, chunk_size, threads, out,
            weights, context, classes, class_map, class_bounds, trellis, table_kind, low_bits,
        )  # fmt: skip
    chunk_size = _topk_chunk_size(chunk_size)
    if (step is not None or rel_error is not None or rho is not None or weights is not None
            or classes is not None or class_map is not None
            or class_bounds is not None or trellis is not False
            or not (isinstance(table_kind, int) and table_kind == 0)
            or not (isinstance(low_bits, int) and low_bits == 0)):  # fmt: skip
        raise ValueError(
            "step, rel_error, rho, weights, classes, class_map, class_bounds, trellis, "
            "table_kind and low_bits belong to mode='dense' / mode='auto'"
        )
    if type(x) is np.ndarray and max_bytes is None and out == "host" and x.ndim:
        # Fast path: a plain C-contiguous float32 / float16 array with arguments already seen.
        key = (
            sparsity, asym, blocks, bits, delta, seed, groups, chunk_size, threads,
            type(sparsity), type(asym), type(blocks), type(bits), type(delta), type(seed),
            type(chunk_size), type(threads),
        )  # fmt: skip
        try:
            native = _FAST_PARAMS.get(key)
        except TypeError:  # unhashable, e.g. a list of widths
            key, native = None, None
        code = _FAST_DTYPES.get(x.dtype)
        if native is not None and code is not None and x.flags.c_contiguous and x.ndim <= 32:
            status, stream = _core.encode_array(native_context(context), x, code, native)
            if status:
                raise_encode_status(status)
            return stream
    else:
        key = None
    params = make_params(
        sparsity=sparsity,
        asym=asym,
        blocks=blocks,
        bits=bits,
        delta=delta,
        seed=seed,
        groups=groups,
        chunk_size=chunk_size,
        threads=threads,
    )
    limit = _max_bytes(max_bytes)
    x = resolve_lazy_views(x)  # torch neg / conj views: DLPack would drop the sign
    if out not in ("host", "device"):
        raise ValueError(f"out must be 'host' or 'device', got {out!r}")
    on_cuda = dlpack_device_type(x) == DLPACK_CUDA
    if out == "device":
        if not on_cuda:
            raise ValueError("out='device' needs an array on a CUDA device")
        if limit is not None:
            raise ValueError("out='device' cannot be combined with max_bytes")
        return _gpu_module().encode(x, params, out="device")
    if on_cuda:
        gpu = _gpu_module()
        if limit is None:
            return bytes(gpu.encode(x, params, out="host"))
        array = _host_copy_of_cuda(x)
    else:
        array = as_host_array(x)
    if limit is None:
        stream = encode_host(array, params, context)
        if key is not None and len(_FAST_PARAMS) < _FAST_PARAMS_MAX:
            _FAST_PARAMS[key] = _core.Params(params)
        return stream
    _check_shape(array.shape, params)
    native_context(context)  # checks `context` before the search starts
    return encode_within(array, params, limit, lambda a, p: encode_host(a, p, context))


encode.__doc__ = (
    (encode.__doc__ or "").rstrip()
    + "\n"
    + _PARAMS_DOC_HEAD
    + _MAX_BYTES_DOC
    + _PARAMS_DOC_TAIL
    + _OUT_DOC
    + _CONTEXT_DOC
    + """
    Returns
    -------
    bytes, or a uint8 CUDA array with ``out="device"``
        The stream: header, block metadata, chunk table, payload and CRC-32.

    Raises
    ------
    TypeError
        Integer, bool, complex or float64 input, or a parameter of the wrong type.
    ValueError
        A parameter out of range (the message names it), NaN or infinity in the input, or a
        `max_bytes` that no setting can meet.
    RuntimeError
        A CUDA array given to a build without the CUDA backend or without a usable GPU.
"""
)


@functools.cache
def _encode_keywords() -> frozenset[str]:
    """The keyword arguments encode() takes (encode_batch passes them on)."""
    signature = inspect.signature(encode)
    return frozenset(
        name for name, p in signature.parameters.items() if p.kind is p.KEYWORD_ONLY
    ) - {"out"}


def encode_batch(x: Any, axis: int = 0, **params: Any) -> list[bytes]:
    """Encode every slice of `x` along `axis` as its own stream.

    Item i is byte-identical to ``encode(numpy.take(x, i, axis), **params)``. `params` are the
    keyword arguments of :func:`encode` (``context`` included). CPU arrays are encoded in one
    call of the C library (slices in parallel on the context's pool; with `max_bytes`, slice
    by slice); CUDA arrays by the CUDA backend in one launch (without `max_bytes`).
    """
    unknown = sorted(set(params) - _encode_keywords())
    if unknown:
        raise TypeError(
            f"encode_batch() got unexpected keyword argument(s) {', '.join(unknown)}; it takes "
            "axis and the keyword arguments of slicer.encode()"
        )
    limit = params.get("max_bytes")
    context = params.get("context")
    check = {k: v for k, v in params.items() if k not in ("max_bytes", "context")}
    int_params = make_params(**check)
    _max_bytes(limit)
    native = native_context(context)
    axis_index = operator.index(axis)
    if dlpack_device_type(x) == DLPACK_CUDA and limit is None:
        gpu = _gpu_module()
        return [bytes(item) for item in gpu.encode_batch(x, axis_index, int_params)]
    array = _host_copy_of_cuda(x) if dlpack_device_type(x) == DLPACK_CUDA else as_host_array(x)
    if array.ndim == 0:
        raise ValueError("encode_batch needs an array with at least one dimension")
    if not -array.ndim <= axis_index < array.ndim:
        raise ValueError(f"axis {axis_index} is out of range for an array of {array.ndim} dims")
    moved = np.moveaxis(array, axis_index, 0)
    if limit is not None:
        return [encode(moved[i], **params) for i in range(moved.shape[0])]
    _check_shape(moved.shape[1:], int_params)
    view, code = _native_view(np.ascontiguousarray(moved))
    status, streams = _core.encode_batch_array(native, view, code, _core.Params(int_params))
    if status:
        raise_encode_status(status)
    return streams


def decode(
    buf: Any,
    *,
    out: np.ndarray | None = None,
    max_elements: int = DEFAULT_MAX_ELEMENTS,
    device: str = "cpu",
    threads: int = 0,
    context: Any = None,
) -> Any:
    """Decode a SLICER stream into a dense array.

    Parameters
    ----------
    buf : bytes, bytearray, memoryview or numpy.ndarray of uint8
        The stream.
    out : numpy.ndarray or torch.Tensor (any writable CPU DLPack array), optional
        A C-contiguous, writable array of exactly the stream's shape and dtype, filled and
        returned (bfloat16 streams need an ``ml_dtypes.bfloat16`` array or a
        ``torch.bfloat16`` tensor: the way to get a bfloat16 result into torch). The stream
        is decoded in full first and then copied: after a FormatError `out` is unchanged.
    max_elements : int, default 2**31
        Streams whose header claims more elements are refused (so are shapes whose non-zero
        dimensions multiply to 2**60 or more, empty ones included); nothing is allocated before
        every table of the stream is validated.
    device : {"cpu", "cuda"}, default "cpu"
        "cuda" decodes on the GPU through the CUDA backend and returns its device array.
    threads : int, default 0
        Worker threads (0 = all cores; with `context`, at most the context's).
    context : slicer.Context or None, default None
        Decode on this context's pool and scratch (see :class:`slicer.Context`); the result is
        the same. None: the process's shared pool. CPU only.

    Returns
    -------
    numpy.ndarray
        Same shape and dtype as the encoded input (bfloat16 as ``ml_dtypes.bfloat16``); zero
        everywhere except the kept elements.

    Raises
    ------
    slicer.FormatError
        The stream is malformed (truncated, corrupt, wrong version, too many elements, ...).
    ValueError
        A bad argument (`out` of the wrong shape or dtype, a bad `device`).
    """
    limit = check_max_elements(max_elements)
    thread_count = _check_threads(threads)
    native = None if context is None else native_context(context)
    if device == "cuda":
        if context is not None:
            raise ValueError("context applies to CPU decoding only (device='cpu')")
        gpu = _gpu_module()
        return gpu.decode(buf, out=out, max_elements=limit)
    if device != "cpu":
        raise ValueError(f"device must be 'cpu' or 'cuda', got {device!r}")
    target = None if out is None else as_writable_out(out)  # NumPy or DLPack (torch) arrays
    data = as_stream_bytes(buf)
    # The whole stream is validated before the output is allocated, and decoded before `out`
    # is touched: a stream that fails late leaves `out` as it was.
    status, header, raw = _core.decode(data, limit, thread_count, native)
    if status:
        raise_stream_status(status, data)
    dtype = _STREAM_DTYPES[header["dtype"]]
    shape = tuple(header["shape"])
    try:
        result = raw.view(dtype).reshape(shape)
    except ValueError:  # not expected: the decoder keeps every shape below 2**60 (§7)
        raise FormatError(
            f"stream's shape {shape} cannot be represented by NumPy", LIMIT_EXCEEDED
        ) from None
    if target is None:
        return result
    if target.shape != shape or target.dtype != dtype:
        raise ValueError(
            f"out has shape {target.shape} and dtype {target.dtype}; the stream holds shape "
            f"{shape} and dtype {dtype}"
        )
    np.copyto(target, result)
    return out


# ----------------------------------------------------------------------------- format 2, dense

_STREAM_DTYPES = {**DTYPE_OF_CODE, 4: np.dtype(np.float64)}
_DENSE_DTYPE_CODES = {dt: code for code, dt in _STREAM_DTYPES.items()}

_DENSE_DOC = """
    Dense mode (format 2, ``mode="dense"`` or ``"auto"``): every element is quantized with a
    uniform step and a dead zone, q = sign(x) floor(|x| / step + rho), the codes are
    entropy-coded (rANS, one static table, docs/format.md §10-§16); large values (LLM massive
    activations) are ordinary codes with extra bits, so every element's error stays about
    step / 2. float64 input is accepted. Exactly one of `step`, `rel_error`, `max_bytes`:

    step : float
        The quantizer step (stored as float32).
    rel_error : float
        The smallest stream found whose relative L2 error ||x - x_hat|| / ||x|| <= rel_error
        (verified on the real stream; at most three encodes and decodes, rarely more).
    max_bytes : int
        The lowest-error stream found of at most this many bytes (at most three encodes,
        rarely more).
    rho : float, default 0.5
        Rounding offset in [1/256, 1/2] (stored in 1/256 units); below 1/2 widens the zero
        bin (a dead zone: fewer bits at low rates). ``mode="auto"`` chooses it among
        0.5, 0.375 and 0.28 with the rate model (ignored there).
    groups : {"tensor", "rows", "channels"}
        "tensor": one step for all elements (the MSE-optimal choice). "rows" / "channels": a
        step per row of the last axis / per plane of axis 1, scaled to the group's RMS in
        steps of 2^(1/8) (for task metrics that weigh every token or channel alike); all-zero
        groups cost nothing.
    weights : array of G non-negative reals, or None (default)
        Per-group task importance (groups "rows" / "channels" only; G = the number of groups),
        e.g. from :func:`slicer.split.sensitivity.group_importance`. It replaces the RMS rule:
        group g's step is the stream step times 2^(e_g/8) with
        e_g = clip(rint(-4 log2(w_g / w_ref)), -64, 63), w_ref the median of the positive
        weights of the groups that are not all zero, so the step goes as w_g^(-1/2) (the
        optimum of sum_g w_g MSE_g at a fixed rate); a zero weight gets the largest step
        (e_g = 63). All-zero groups still cost nothing. Pass ``w ** alpha`` to temper it.
    classes : int in 1..16, "auto" or None (default: 1 for "dense", "auto" for "auto")
        Frequency tables per stream. 1 writes mode 1 (one table, the bytes of earlier
        releases). K >= 2 writes mode 2 (docs/format.md §19): the positions along the class
        axis (the last axis; axis 1 for groups="channels") are ranked by the codes' mean
        magnitude and cut into K classes, each coded with its own table, which pays where
        positions differ in spread (LLM / MiniLM channels, KLT components: 4-9 % fewer bits).
        K must not exceed the number of positions. "auto" lets the rate model choose K among
        1, 2, 4, 8, 16 (and, for arrays of 3 or more dimensions, the axis among the last and
        axis 1) from per-class histograms of a sample, tables and map counted, without extra
        encodes. "dense" defaults to 1 so that its bytes and speed stay those of mode 1.
        A CUDA array with `step` and an int `classes` (1 or K) is encoded on the GPU, the same
        bytes as the CPU; classes="auto" needs the rate model's pass on the host, so such an
        array is then copied to the host and encoded on the CPU. The GPU decodes both modes.
    class_map : "rank", "ranges" or None (default None)
        How mode 2 assigns positions to classes (docs/format.md §18). "rank": by the codes'
        magnitude, sent as a map of ceil(L/2) bytes. "ranges": contiguous index ranges
        (position a has class a·K // L), no map bytes: what KLT components, sorted by
        variance, want. None: "rank" for an explicit K; classes="auto" estimates both and
        keeps the cheaper. "bounds": contiguous ranges at explicit boundaries (K − 1 varints
        in the stream, docs/format.md §18.4): `class_bounds` gives them, or classes="auto"
        estimates them per stream on a coarse grid; None with "auto" tries all three kinds.
    class_bounds : sequence of int or None (default None)
        With class_map="bounds": the first position of classes 1 … K−1, strictly rising in
        1 … L−1; K = len(class_bounds) + 1 (classes may be left out).
    trellis : bool or float, default False
        True (λ = 0.34) or a λ > 0 writes mode 3 (docs/format.md §21): trellis-coded
        quantization, two quantizers under a 4-state machine whose magnitudes a Viterbi search
        chooses jointly (cost = squared error / step² + λ · bits), with one table per (class,
        quantizer). At equal bytes it has 0.4-1.0 dB lower error than the dead-zone
        quantizer (bench/RESULTS.md §9.12), for a slower encode (two Viterbi passes; `max_bytes`
        and `rel_error` take up to six encodes). The step means the spacing of the union of
        the two quantizers: about half the dead-zone step of the same rate. Works with `step`,
        `max_bytes`, `rel_error` and `classes`; not with `rho`. A CUDA array is copied to the
        host and encoded on the CPU (no GPU encoder of mode 3); ``mode="auto"`` does not use
        it unless asked.
    table_kind : int or "auto", default 0
        Mode 1's frequency table (docs/format.md §13.5): 0 the count classes of every earlier
        stream, 1 … 3 coarser count classes, 4 a geometric table of 3 bytes, "auto" the
        shortest stream of the five (ties to the lower kind). Pays on small tensors at low
        rates (bench/RESULTS.md §9.22); streams with kinds 1 … 4 need a decoder of this
        revision. Modes 2 and 3 keep kind 0 ("auto" gives 0; 1 … 4 raise ValueError). With
        `max_bytes` / `rel_error` the search runs at kind 0 and its stream is re-encoded with
        the kind (same values, "auto" never longer); 1 … 4 with `max_bytes` raise ValueError.
        A CUDA array with a `step` is encoded on the GPU with any kind (same bytes).
    low_bits : int or "auto", default 0
        Mode 1's low-bit plane (docs/format.md §13.6): 0 none (every earlier stream), k = 1 …
        15 the low k bits of every code packed at k bits per element beside the entropy-coded
        high part, "auto" the encoder rule of §13.6 (0 up to about 5 bits per element, 3 … 5
        at 6 … 8). Decodes faster at high rates for a small size cost (bench/RESULTS.md §9.23);
        streams with k > 0 need a decoder of this revision. Modes 2 and 3 have none ("auto"
        gives 0; 1 … 15 raise ValueError). With `max_bytes` / `rel_error` the search runs
        without the plane and its stream is re-encoded with it (same values); with `max_bytes`
        "auto" keeps the stream without the plane when the plane would pass the budget, and
        1 … 15 raise ValueError. A CUDA array with a `step` is encoded on the GPU with any
        low_bits (same bytes).
"""


def _dense_array(x: Any) -> np.ndarray:
    """A C-contiguous host array of float32/float16/bfloat16/float64."""
    if isinstance(x, np.ndarray) and x.dtype == np.float64 and type(x) is np.ndarray:
        return np.ascontiguousarray(x)
    if (
        not isinstance(x, np.ndarray)
        and hasattr(x, "__dlpack__")
        and "float64" in str(getattr(x, "dtype", ""))
        and dlpack_device_type(x) != DLPACK_CUDA
    ):
        return np.ascontiguousarray(np.from_dlpack(x))
    if dlpack_device_type(x) == DLPACK_CUDA:
        return _host_copy_of_cuda(x)
    return as_host_array(x)


encode.__doc__ = (encode.__doc__ or "") + _DENSE_DOC


def _group_rows(array: np.ndarray, layout: int) -> np.ndarray:
    """The groups of `layout` (1: rows of the last axis, 2: planes of axis 1) as rows, float64."""
    x = array.astype(np.float64)
    if layout == 1:
        return x.reshape(-1, array.shape[-1])
    return np.moveaxis(x.reshape(array.shape[:2] + (-1,)), 1, 0).reshape(array.shape[1], -1)


def _group_count(shape: tuple[int, ...], layout: int) -> int:
    if layout == 1:
        return int(np.prod(shape[:-1], dtype=np.int64)) if shape[-1] else 0
    return int(shape[1])


def _check_weights(weights: Any, layout: int, shape: tuple[int, ...]) -> np.ndarray | None:
    """`weights` as a float64 vector of one non-negative finite value per group, or None."""
    if weights is None:
        return None
    if layout == 0:
        raise ValueError("weights need groups='rows' or groups='channels' (one weight per group)")
    if isinstance(weights, (str, bytes)):
        raise TypeError("weights must be a 1-D array of real numbers")
    w = np.asarray(weights)
    if w.dtype == bool or not (np.issubdtype(w.dtype, np.integer)
                               or np.issubdtype(w.dtype, np.floating)):  # fmt: skip
        raise TypeError(f"weights must be a 1-D array of real numbers, got dtype {w.dtype}")
    count = _group_count(shape, layout)
    if w.ndim != 1 or w.shape[0] != count:
        raise ValueError(
            f"weights must hold one value per group: shape ({count},) for this array and "
            f"groups, got {w.shape}"
        )
    w = w.astype(np.float64)
    if not np.all(np.isfinite(w)) or np.any(w < 0):
        raise ValueError("weights must be finite and non-negative")
    return w


def _group_table(array: np.ndarray, layout: int, weights: np.ndarray | None = None) -> bytes | None:
    """Per-group step exponents (docs/format.md §12.1), in 2^(1/8) steps.

    Without `weights`: from the group RMS, around the median group (the step follows the
    RMS). With `weights` (one importance per group): e_g = clip(rint(-4 log2(w_g / w_ref)),
    -64, 63), w_ref = the median positive weight of the live groups; zero weight: e_g = 63.
    All-zero groups are zero groups (0x80) either way.
    """
    if layout == 0 or array.size == 0:
        return None
    rows = _group_rows(array, layout)
    rms = np.sqrt(np.mean(rows * rows, axis=1))
    live = rms > 0
    if not live.any():
        return bytes([0x80] * rows.shape[0])
    e = np.zeros(rows.shape[0], dtype=np.int64)
    if weights is None:
        ref = float(np.median(rms[live]))
        e[live] = np.clip(np.rint(8 * np.log2(rms[live] / ref)), -64, 63)
    else:
        positive = live & (weights > 0)
        e[:] = 63
        if positive.any():
            ref = float(np.median(weights[positive]))
            e[positive] = np.clip(np.rint(-4 * np.log2(weights[positive] / ref)), -64, 63)
    table = np.where(live, e & 0xFF, 0x80).astype(np.uint8)
    return table.tobytes()


def _dense_encoder(array: np.ndarray, context: Any) -> Any:
    """Encoder of the dense mode on `context` (a ``_core.Context``)."""
    code = _DENSE_DTYPE_CODES.get(array.dtype)
    if code is None:
        raise TypeError(
            f"mode='dense' encodes float32, float16, bfloat16 or float64 arrays, got {array.dtype}"
        )
    if array.ndim > _MAX_NDIM:
        raise ValueError(f"arrays of at most {_MAX_NDIM} dimensions are supported")
    raw = array.reshape(-1).view(np.uint8)
    shape = list(array.shape)

    def run(_array: np.ndarray, params: dict[str, Any]) -> bytes:
        status, stream = _core.dense_encode(context, raw, code, shape, params)
        if status:
            if status == 1 and params.get("step") is not None:
                raise ValueError(
                    f"invalid dense parameters (step={params['step']!r} too small for the data "
                    "or out of range)"
                )
            raise_encode_status(status)
        return stream

    return run


def _topk_chunk_size(chunk_size: Any) -> Any:
    """chunk_size of format 1: None is 2**14; "auto" is the dense modes' (docs/format.md §15.1)."""
    if chunk_size is None:
        return 1 << DEFAULT_CHUNK_LOG2
    if isinstance(chunk_size, str):
        raise ValueError(
            f"chunk_size={chunk_size!r}: mode='topk' takes a power of two in 64..2**24 "
            "(chunk_size='auto' belongs to mode='dense' / mode='auto')"
        )
    return chunk_size


def _dense_chunk_size(chunk_size: Any) -> tuple[Any, bool]:
    """(chunk_size for make_dense_params, whether §15.1's default replaces it once the element
    count is known): None and "auto" are the default."""
    if chunk_size is None or (isinstance(chunk_size, str) and chunk_size == "auto"):
        return 1 << DEFAULT_CHUNK_LOG2, True
    return chunk_size, False


def _auto_chunk(params: dict[str, Any], shape: tuple[int, ...]) -> None:
    """docs/format.md §15.1's chunk size for an input of this shape, into params (modes 1 and 2;
    mode 3 keeps 2**14)."""
    if params["trellis"] is None:
        params["chunk_log2"] = int(_core.dense_auto_chunk_log2(min(math.prod(shape), 1 << 62)))


def _encode_dense(
    x: Any,
    mode: str,
    topk_given: bool,
    step: Any,
    rel_error: Any,
    max_bytes: Any,
    rho: Any,
    groups: Any,
    chunk_size: Any,
    threads: Any,
    out: Any,
    weights: Any = None,
    context: Any = None,
    classes: Any = None,
    class_map: Any = None,
    class_bounds: Any = None,
    trellis: Any = False,
    table_kind: Any = 0,
    low_bits: Any = 0,
) -> bytes:
    if mode not in ("dense", "auto"):
        raise ValueError(f"mode must be 'topk', 'dense' or 'auto', got {mode!r}")
    if topk_given:
        raise ValueError(
            "sparsity, asym, blocks, bits, delta and seed belong to mode='topk'; "
            f"mode={mode!r} takes step, rel_error or max_bytes"
        )
    if out != "host":
        raise ValueError(f"mode={mode!r} supports out='host' only")
    auto = mode == "auto"
    chunk_size, auto_chunk = _dense_chunk_size(chunk_size)
    params = make_dense_params(
        step=step, rho=0.5 if rho is None else rho, groups=groups, chunk_size=chunk_size,
        threads=threads, classes=_default_classes(mode, classes), class_map=class_map,
        class_bounds=class_bounds, trellis=trellis, table_kind=table_kind, low_bits=low_bits,
    )  # fmt: skip
    lam = params["trellis"]
    kind = params["table_kind"]
    low = params["low_bits"]
    if lam is not None and rho is not None:
        raise ValueError("rho is the dead zone of modes 1-2: trellis=True (mode 3) has none")
    if params["classes"] != "auto" and params["classes"] > 1 and params["class_map"] is None:
        params["class_map"] = "rank"  # an explicit K: the §18.2 map unless told otherwise
    limit = _max_bytes(max_bytes)
    error = None
    if rel_error is not None:
        if isinstance(rel_error, bool) or not isinstance(rel_error, (int, float, np.floating)):
            raise TypeError(f"rel_error must be a real number, got {type(rel_error).__name__}")
        error = float(rel_error)
        if not (error > 0 and np.isfinite(error)):
            raise ValueError(f"rel_error must be a positive finite number, got {rel_error!r}")
    given = [name for name, v in (("step", step), ("rel_error", error), ("max_bytes", limit))
             if v is not None]  # fmt: skip
    if len(given) != 1:
        raise ValueError(
            f"mode={mode!r} needs exactly one of step, rel_error, max_bytes; got {given or 'none'}"
        )
    if auto and step is not None:
        raise ValueError("mode='auto' chooses the step: give rel_error or max_bytes")
    if limit is not None and kind not in (0, "auto"):
        raise ValueError(
            f"table_kind={kind} may not fit max_bytes (the budget is met at kind 0): give "
            "table_kind='auto' (never longer) or a step / rel_error"
        )
    if limit is not None and low not in (0, "auto"):
        raise ValueError(
            f"low_bits={low} may not fit max_bytes (the budget is met without the plane): give "
            "low_bits='auto' (dropped when it would not fit) or a step / rel_error"
        )
    x = resolve_lazy_views(x)
    on_gpu = dlpack_device_type(x) == DLPACK_CUDA
    if step is not None and on_gpu and params["classes"] != "auto" and lam is None:
        # An int classes (1: mode 1, K >= 2: mode 2), table kinds (§13.5) and low-bit planes
        # (§13.6), explicit or "auto", are encoded on the GPU; classes="auto" needs the rate
        # model's pass over a host copy and takes the host path below.
        _check_classes(params, tuple(int(d) for d in getattr(x, "shape", ())))
        if auto_chunk:
            _auto_chunk(params, tuple(int(d) for d in getattr(x, "shape", ())))
        return _encode_dense_cuda(x, params, weights)
    array = _dense_array(x)
    if auto_chunk:
        _auto_chunk(params, array.shape)
    if params["layout"] == 1 and array.ndim < 1:
        raise ValueError("groups='rows' needs an array with at least one dimension")
    if params["layout"] == 2 and array.ndim < 2:
        raise ValueError("groups='channels' needs an array with at least two dimensions")
    _check_classes(params, array.shape)
    native = native_context(context)
    encoder = _dense_encoder(array, native)
    w = _check_weights(weights, params["layout"], array.shape)
    wide = np.float32 if array.dtype.itemsize < 4 else array.dtype
    if array.size and not np.all(np.isfinite(array.astype(wide, copy=False))):
        raise ValueError("input contains NaN or infinity")
    table = _group_table(array, params["layout"], w)
    params["group_table"] = table
    if step is not None and params["classes"] != "auto":
        return encoder(array, params)  # mode 3 too (a CUDA array was copied to the host)
    work = array
    if table is not None:  # the model sees the values each group's step divides
        e = np.frombuffer(table, dtype=np.int8).astype(np.float64)
        scale = np.where(np.frombuffer(table, dtype=np.uint8) == 0x80, 1.0, 2.0 ** (e / 8))
        if params["layout"] == 1:
            work = array.astype(np.float64).reshape(-1, array.shape[-1]) / scale[:, None]
        else:
            shape = [1] * array.ndim
            shape[1] = array.shape[1]
            work = array.astype(np.float64) / scale.reshape(shape)
        work = np.ascontiguousarray(work)
    if lam is not None:  # mode 3 (§21): python/slicer/_trellis.py
        if step is not None:
            return trellis_at_step(array, params, work, encoder)
        if limit is not None:
            return trellis_for_budget(array, params, limit, encoder, work)
        return trellis_for_error(array, params, error, work, native)
    if step is not None:  # classes="auto" at a given step: chosen by the rate model
        params = classes_at_step(array, params, work)
        return encoder(array, params)
    if _rate.NATIVE_DRIVER and table is None and array.size:
        # the C++ driver, one call (the same stream as the one below): classes 1, a fixed K
        # (any map) or "auto"
        stream = _native_budget(array, params, limit, error, auto, native)
        if stream is not None:
            return stream
    # The search runs at kind 0 without a low-bit plane; its stream gets `kind` and `low`.
    searched = dict(params, table_kind=0, low_bits=0)
    if limit is not None:
        stream = dense_for_budget(array, searched, limit, encoder, auto, model_input=work)
    else:
        stream = dense_for_error(
            array, searched, error, encoder, auto, model_input=work, context=native
        )
    if not (kind or low):
        return stream
    again = _with_table_kind(array, stream, params, encoder)
    if low and limit is not None and len(again) > limit:  # "auto": the plane would not fit
        return (
            _with_table_kind(array, stream, dict(params, low_bits=0), encoder) if kind else stream
        )
    return again


def _native_budget(
    array: np.ndarray, params: dict[str, Any], limit: int | None, error: float | None,
    auto: bool, native: Any,
) -> bytes | None:  # fmt: skip
    """dense_for_budget / dense_for_error (and the table kind / plane after them) in one call of
    the C++ driver (slicer_context_dense_encode_budget); None where it fails for another reason
    than an unreachable target (the Python driver then raises its own exact error)."""
    raw = array.reshape(-1).view(np.uint8)
    status, stream, size = _core.dense_encode_budget(
        native, raw, _DENSE_DTYPE_CODES[array.dtype], list(array.shape), dict(params, step=1.0),
        limit or 0, error or 0.0, auto,
    )  # fmt: skip
    if status == TARGET_UNREACHABLE:
        if limit is not None:
            raise ValueError(
                f"max_bytes={limit} is below the smallest dense stream for this array "
                f"({size} bytes)"
            )
        raise ValueError(f"rel_error={error} cannot be reached for this array")
    return None if status else stream


def _with_table_kind(
    array: np.ndarray, stream: bytes, params: dict[str, Any], encoder: Any
) -> bytes:
    """A mode-1 stream re-encoded with params' table kind (docs/format.md §13.5) and low-bit plane
    (§13.6) at its own step, rho, offsets and group table: the same codes and values, another
    frequency table ("auto": never longer) and the plane. Streams of modes 2 and 3 have kind 0
    and no plane and stay as they are."""
    from ._inspect_dense import inspect_dense

    info = inspect_dense(stream, max(1, array.size))
    if info.mode != "dense":
        return stream
    a = info.account
    table = stream[a.header : a.header + a.group_table] if a.group_table else None
    again = dict(
        params, step=info.step, rho_256=round(info.rho * 256), offsets=info.offsets,
        chunk_log2=info.chunk_size.bit_length() - 1, group_table=table, classes=1,
        class_map=None, class_bounds=None,
    )  # fmt: skip
    return encoder(array, again)


def _default_classes(mode: str, classes: Any) -> Any:
    """classes=None: 1 for mode='dense' (the bytes of mode 1, no model pass: the explicit,
    per-token mode stays as fast and as stable as before), "auto" for mode='auto'."""
    if classes is not None:
        return classes
    return "auto" if mode == "auto" else 1


def _check_classes(params: dict[str, Any], shape: tuple[int, ...]) -> None:
    """An explicit classes=K needs K positions along the class axis (§19.1)."""
    k = params["classes"]
    if k == "auto" or k == 1:
        return
    axis = params["class_axis"]
    length = class_length(shape, axis)
    if k > length:
        where = "axis 1" if axis == 1 else "the last axis"
        raise ValueError(
            f"classes={k} needs at least {k} positions along {where} (the class axis of "
            f"groups={_LAYOUT_NAMES[params['layout']]!r}); this array has {length}"
        )
    bounds = params.get("class_bounds")
    if params.get("class_map") == "bounds" and bounds is not None and bounds[-1] >= length:
        raise ValueError(
            f"class_bounds must lie in 1 .. L - 1 = {length - 1} (L positions along the class "
            f"axis), got {bounds}"
        )


_LAYOUT_NAMES = {0: "tensor", 1: "rows", 2: "channels"}


def _encode_dense_cuda(x: Any, params: dict[str, Any], weights: Any = None) -> bytes:
    """mode='dense' with a step on a CUDA array: encoded on the GPU (same bytes as the CPU).

    Only the per-group step table (groups='rows' / 'channels') needs a host copy.
    """
    gpu = _gpu_module()
    ndim = len(getattr(x, "shape", ()))
    if params["layout"] == 1 and ndim < 1:
        raise ValueError("groups='rows' needs an array with at least one dimension")
    if params["layout"] == 2 and ndim < 2:
        raise ValueError("groups='channels' needs an array with at least two dimensions")
    w = _check_weights(weights, params["layout"], tuple(x.shape))
    if params["layout"] != 0:
        host = _host_copy_of_cuda(x)
        wide = np.float32 if host.dtype.itemsize < 4 else host.dtype
        if host.size and not np.all(np.isfinite(host.astype(wide, copy=False))):
            raise ValueError("input contains NaN or infinity")
        params["group_table"] = _group_table(host, params["layout"], w)
    return gpu.encode_dense(x, params)


def raise_stream_status(status: int, data: Any) -> None:
    """raise_decode_status, with the mode number for an unsupported format-2 mode."""
    if status == UNSUPPORTED_MODE:
        raise FormatError(f"unsupported mode {_mode_byte(data)} (format 2)", status)
    raise_decode_status(status)


def _mode_byte(data: Any) -> int | str:
    """The mode byte of a format-2 stream whose header parsed up to it."""
    b = bytes(memoryview(data)[: 8 + 10 * 32 + 3])
    pos = 8
    try:
        for _ in range(b[7]):
            while b[pos] & 0x80:
                pos += 1
            pos += 1
        return b[pos + 1]
    except IndexError:
        return "?"


def size_bound(
    shape: Any,
    dtype: Any,
    *,
    mode: str = "topk",
    sparsity: float = 0.9,
    asym: float = 0.0,
    blocks: int | tuple[int, int] | None = None,
    bits: int | list[int] = 8,
    delta: float = 0.01,
    seed: int = 0,
    max_bytes: int | None = None,
    groups: str = "tensor",
    chunk_size: int | str | None = None,
    threads: int = 0,
    step: float | None = None,
    rel_error: float | None = None,
    rho: float | None = None,
    classes: int | str | None = None,
    class_map: str | None = None,
    class_bounds: Any = None,
    trellis: bool | float = False,
) -> int:
    """Upper bound on the size of ``encode(x, **params)`` for any x of this shape and dtype.

    The paper's predicted bound B^UB (docs/format.md §8: every block at q_bit), known before
    encoding; no stream is ever larger. With `max_bytes` the result is ``min(bound,
    max_bytes)``, since rate control never exceeds it.

    Parameters
    ----------
    shape : tuple of int
        The array's shape (``()`` for a scalar).
    dtype : str, numpy dtype, ml_dtypes.bfloat16 or torch dtype
        float32, float16 or bfloat16.
    """
    if mode != "topk":
        return _dense_size_bound(
            shape, dtype, mode, max_bytes, rho, groups, chunk_size, classes, class_map,
            class_bounds, trellis,
        )  # fmt: skip
    chunk_size = _topk_chunk_size(chunk_size)
    if classes is not None or class_map is not None or class_bounds is not None or (
            trellis is not False):  # fmt: skip
        raise ValueError(
            "classes, class_map, class_bounds and trellis belong to mode='dense' / mode='auto'"
        )
    params = make_params(
        sparsity=sparsity,
        asym=asym,
        blocks=blocks,
        bits=bits,
        delta=delta,
        seed=seed,
        groups=groups,
        chunk_size=chunk_size,
        threads=threads,
    )
    limit = _max_bytes(max_bytes)
    if isinstance(shape, (int, np.integer)):
        shape = (int(shape),)
    dims = tuple(operator.index(d) for d in shape)
    if any(d < 0 for d in dims):
        raise ValueError(f"shape must not have negative dimensions, got {dims}")
    if any(d >= 2**63 for d in dims):
        raise ValueError(f"shape dimensions must be below 2**63, got {dims}")
    _check_shape(dims, params)
    status, bound = _core.encode_bound(list(dims), parse_dtype(dtype), params)
    if status:
        raise_encode_status(status, "size_bound")
    return bound if limit is None else min(bound, limit)


size_bound.__doc__ = (
    (size_bound.__doc__ or "").rstrip()
    + "\n"
    + _PARAMS_DOC_HEAD
    + """    max_bytes : int or None, default None
        The size limit of rate control; the bound is capped by it.
"""
    + _PARAMS_DOC_TAIL
    + """
    Returns
    -------
    int
        Bytes; ``len(encode(x, **params)) <= size_bound(x.shape, x.dtype, **params)``.
"""
)


def _dense_size_bound(
    shape: Any, dtype: Any, mode: str, max_bytes: Any, rho: Any, groups: Any, chunk_size: Any,
    classes: Any = None,
    class_map: Any = None,
    class_bounds: Any = None,
    trellis: Any = False,
) -> int:  # fmt: skip
    """docs/format.md §16 / §19.5: a bound for every dense / auto stream of this shape and dtype
    (classes="auto": the largest K it may choose, the bound growing with K; the native bound
    counts ceil(L/2) map bytes for either kind of map, so it holds for index ranges too)."""
    if mode not in ("dense", "auto"):
        raise ValueError(f"mode must be 'topk', 'dense' or 'auto', got {mode!r}")
    chunk_size, auto_chunk = _dense_chunk_size(chunk_size)
    params = make_dense_params(
        step=1.0, rho=0.5 if rho is None else rho, groups=groups, chunk_size=chunk_size,
        classes=_default_classes(mode, classes), class_map=class_map, class_bounds=class_bounds,
        trellis=trellis,
    )  # fmt: skip
    limit = _max_bytes(max_bytes)
    if isinstance(shape, (int, np.integer)):
        shape = (int(shape),)
    dims = tuple(operator.index(d) for d in shape)
    if any(d < 0 or d >= 2**63 for d in dims) or len(dims) > _MAX_NDIM:
        raise ValueError(f"shape must have 0..32 dimensions in 0 .. 2**63 - 1, got {dims}")
    if auto_chunk:
        _auto_chunk(params, dims)
    _check_classes(params, dims)
    is_f64 = str(dtype) in ("float64", "torch.float64", "<class 'numpy.float64'>")
    code = 4 if is_f64 or dtype is np.float64 else parse_dtype(dtype)
    variants = [params]
    if params["classes"] == "auto":  # the largest K on every axis "auto" may choose
        axes = (params["class_axis"], 1 - params["class_axis"]) if len(dims) >= 3 else (
            params["class_axis"],)  # fmt: skip
        variants = []
        n = int(np.prod(dims, dtype=object)) if dims else 1
        for axis in axes:
            length = class_length(dims, axis)
            # the K auto may take here: K <= L and a map cheaper than log2(K) bits per element
            # (python/slicer/_rate.py, _class_saving; index ranges have no map bytes)
            kinds_map = {None: 0, "ranges": 0, "bounds": 1}  # bounds: at least one gap byte
            map_bytes = kinds_map.get(params["class_map"], (length + 1) // 2)
            ks = [
                k for k in (2, 4, 8, 16)
                if k <= length and 2 + map_bytes < n * math.log2(k) / 8
            ]  # fmt: skip
            k = max(ks, default=1)
            variant = dict(params, classes=k, class_axis=axis)
            if k > 1 and params["class_map"] in (None, "bounds"):
                # §18.4 boundaries may be chosen: the bound with their K − 1 extra bytes
                variant.update(class_map="bounds",
                               class_bounds=[j * length // k for j in range(1, k)])  # fmt: skip
            variants.append(variant)
    bound = 0
    for variant in variants:
        status, one = _core.dense_encode_bound(list(dims), code, variant)
        if status:
            raise_encode_status(status, "size_bound")
        bound = max(bound, one)
    return bound if limit is None else min(bound, limit)
