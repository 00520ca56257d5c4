"""CUDA backend: byte equality with the CPU codec, cross-decoding, batch and device outputs.

Tests marked ``cuda`` need an NVIDIA GPU and PyTorch with CUDA; elsewhere they are skipped
with the reason shown by ``pytest -rs``. ``test_cuda_module_without_gpu`` runs everywhere the
CUDA module was built and checks that it imports and fails cleanly without a device.
"""

from __future__ import annotations

import glob
import json
from pathlib import Path
from typing import Any

import ml_dtypes
import numpy as np
import pytest

import reference as ref
import slicer
from backend_params import api_kwargs, golden_cases, load_golden

try:
    from slicer import _gpu
except ImportError:  # a package built before the CUDA backend existed
    _gpu = None

BF16 = np.dtype(ml_dtypes.bfloat16)


def _gpu_ready() -> tuple[bool, str]:
    if _gpu is None or _gpu._cuda is None:
        return False, "slicer was built without the CUDA backend (slicer._cuda missing)"
    if not _gpu.available():
        return False, "no CUDA device or driver (slicer._gpu.available() is False)"
    try:
        import torch
    except ImportError:
        return False, "the GPU tests move arrays to the device with PyTorch, which is missing"
    if not torch.cuda.is_available():
        return False, "PyTorch was built without CUDA"
    return True, ""


_READY, _WHY = _gpu_ready()
requires_gpu = pytest.mark.skipif(not _READY, reason=_WHY)


def test_cuda_module_without_gpu() -> None:
    if _gpu is None or _gpu._cuda is None:
        pytest.skip("slicer was built without the CUDA backend")
    present = _gpu.available()
    assert isinstance(present, bool)
    if not glob.glob("/dev/nvidia[0-9]*"):
        assert present is False  # no device node: the driver cannot see a GPU
    if present:
        return
    x = np.linspace(-1, 1, 64, dtype=np.float32)
    params = slicer._params.make_params()
    with pytest.raises(RuntimeError, match="no usable GPU"):
        _gpu.encode(x, params)
    with pytest.raises(RuntimeError, match="no usable GPU"):
        slicer.decode(slicer.encode(x), device="cuda")
    # The raw module reports the CUDA-specific status instead of crashing.
    status, result = _gpu._cuda.decode(np.frombuffer(slicer.encode(x), np.uint8), 100, None, 0, 0)
    assert status == _gpu.NO_DEVICE and result is None
    assert "CUDA" in _gpu._cuda.status_string(status)


@pytest.mark.parametrize(
    ("kw", "gpu"),
    [({"low_bits": 5}, True), ({"low_bits": "auto"}, True), ({"table_kind": 3}, True),
     ({"table_kind": "auto", "low_bits": "auto"}, True), ({"classes": 4}, True),
     ({"classes": "auto"}, False), ({"trellis": True}, False)],
)  # fmt: skip
def test_cuda_array_routing_of_dense_settings(
    monkeypatch: pytest.MonkeyPatch, kw: dict, gpu: bool
) -> None:
    # Which dense settings slicer.encode hands to the GPU encoder for a CUDA array (with a
    # step): runs everywhere, the array only claims to live on the device.
    from slicer import _api

    seen: list[dict] = []

    def on_gpu(x: Any, params: dict, weights: Any = None) -> bytes:
        seen.append(params)
        return b"gpu"

    monkeypatch.setattr(_api, "dlpack_device_type", lambda x: _api.DLPACK_CUDA)
    monkeypatch.setattr(_api, "_encode_dense_cuda", on_gpu)
    monkeypatch.setattr(_api, "_host_copy_of_cuda", lambda x: np.asarray(x))
    x = np.random.default_rng(3).standard_normal((16, 64)).astype(np.float32)
    out = slicer.encode(x, mode="dense", step=0.05, **kw)
    assert (out == b"gpu") is gpu and len(seen) == int(gpu)
    if gpu:
        assert {k: seen[0][k] for k in kw} == kw
    else:
        assert out == slicer.encode(x, mode="dense", step=0.05, **kw)  # the host encoder's bytes


# --------------------------------------------------------------------------- GPU helpers


def _to_cuda(x: np.ndarray) -> Any:
    import torch

    x = np.ascontiguousarray(x).reshape(x.shape)  # (ascontiguousarray makes 0-d arrays 1-d)
    if x.dtype == BF16:
        host = torch.from_numpy(x.view(np.uint16).astype(np.int16))
        return host.view(torch.bfloat16).cuda()
    return torch.from_numpy(x).cuda()


def _to_numpy(t: Any, dtype: np.dtype) -> np.ndarray:
    import torch

    host = t.detach().cpu()
    if dtype == BF16:
        return host.view(torch.int16).numpy().view(np.uint16).view(BF16)
    return host.numpy()


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    return a.shape == b.shape and a.dtype == b.dtype and a.tobytes() == b.tobytes()


def _data(rng: np.random.Generator, n: int, dtype: Any, kind: str) -> np.ndarray:
    x = rng.standard_normal(n).astype(np.float32)
    if kind == "ties":
        x = np.round(x * 2) / 2  # few distinct magnitudes: many ties at every threshold
    elif kind == "relu":
        x = np.maximum(x, 0)
    elif kind == "outliers":
        x[rng.integers(0, n, size=max(1, n // 500))] *= 1e4
    return x.astype(dtype)


SIZES = [1, 7, 4096, 65_537, 999_999]
DTYPES = [np.float32, np.float16, BF16]
SPARSITY = [0.0, 0.5, 0.9, 0.999]


# --------------------------------------------------------------------------- byte equality


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f16", "bf16"])
@pytest.mark.parametrize("sparsity", SPARSITY)
@pytest.mark.cuda
@requires_gpu
def test_gpu_bytes_equal_cpu(n: int, dtype: Any, sparsity: float) -> None:
    rng = np.random.default_rng(n * 31 + int(sparsity * 1000))
    x = _data(rng, n, dtype, "normal")
    kwargs = {"sparsity": sparsity, "seed": 5}
    assert slicer.encode(_to_cuda(x), **kwargs) == slicer.encode(x, **kwargs)


CASES = [
    ("ties", {"sparsity": 0.5}),
    ("ties", {"sparsity": 0.9, "seed": 123456789}),
    ("relu", {"sparsity": 0.3}),  # k = nnz
    ("relu", {"sparsity": 0.9, "asym": 0.2}),
    ("normal", {"sparsity": 0.8, "asym": 0.3}),
    ("ties", {"sparsity": 0.7, "asym": 0.9}),  # trim and fill by draw
    ("normal", {"sparsity": 0.9, "bits": [8, 4, 2]}),
    ("normal", {"sparsity": 0.6, "blocks": (2, 5), "bits": 16, "delta": 0.5}),
    ("outliers", {"sparsity": 0.9, "bits": 4, "delta": 0.0}),
    ("normal", {"sparsity": 0.95, "blocks": (64, 1), "bits": 3}),
    ("normal", {"sparsity": 0.0, "bits": 1}),
    ("normal", {"sparsity": 0.9, "chunk_size": 64}),
    ("ties", {"sparsity": 0.9, "groups": "rows"}),
]


@pytest.mark.parametrize(("kind", "kwargs"), CASES)
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f16", "bf16"])
@pytest.mark.parametrize("shape", [(3, 1000), (17, 33), (1, 70_001)])
@pytest.mark.cuda
@requires_gpu
def test_gpu_bytes_equal_cpu_params(
    kind: str, kwargs: dict, dtype: Any, shape: tuple[int, int]
) -> None:
    rng = np.random.default_rng(sum(shape) + len(kind))
    x = _data(rng, shape[0] * shape[1], dtype, kind).reshape(shape)
    assert slicer.encode(_to_cuda(x), **kwargs) == slicer.encode(x, **kwargs)


@pytest.mark.parametrize("name", golden_cases())
@pytest.mark.cuda
@requires_gpu
def test_gpu_encodes_golden(name: str) -> None:
    x, params, stream = load_golden(name)
    assert slicer.encode(_to_cuda(x), **api_kwargs(params)) == stream


@pytest.mark.parametrize("name", golden_cases())
@pytest.mark.cuda
@requires_gpu
def test_gpu_decodes_golden(name: str) -> None:
    _, _, stream = load_golden(name)
    expected, _ = ref.decode(stream)
    got = slicer.decode(stream, device="cuda")
    assert _same(_to_numpy_any(got, expected.dtype), expected)


def _to_numpy_any(result: Any, dtype: np.dtype) -> np.ndarray:
    import torch

    return _to_numpy(torch.from_dlpack(result), dtype)


# --------------------------------------------------------------------------- cross decoding


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f16", "bf16"])
@pytest.mark.cuda
@requires_gpu
def test_cross_decoding(dtype: Any) -> None:
    rng = np.random.default_rng(99)
    x = _data(rng, 123_457, dtype, "outliers").reshape(7, -1)
    gpu_stream = slicer.encode(_to_cuda(x), sparsity=0.85, asym=0.1)
    cpu_stream = slicer.encode(x, sparsity=0.85, asym=0.1)
    assert gpu_stream == cpu_stream
    on_cpu = slicer.decode(gpu_stream)
    on_gpu = _to_numpy_any(slicer.decode(cpu_stream, device="cuda"), on_cpu.dtype)
    assert _same(on_gpu, on_cpu)


@pytest.mark.cuda
@requires_gpu
def test_decode_into_out_and_from_device() -> None:
    import torch

    rng = np.random.default_rng(3)
    x = _data(rng, 4096 * 3, np.float16, "normal").reshape(3, 4096)
    stream = slicer.encode(x, sparsity=0.9)
    expected = slicer.decode(stream)
    out = torch.full((3, 4096), 7.0, dtype=torch.float16, device="cuda")
    result = slicer.decode(stream, device="cuda", out=out)
    assert result is out
    assert _same(_to_numpy(out, expected.dtype), expected)
    device_stream = torch.frombuffer(bytearray(stream), dtype=torch.uint8).cuda()
    again = slicer.decode(device_stream, device="cuda")
    assert _same(_to_numpy_any(again, expected.dtype), expected)
    with pytest.raises(ValueError):
        slicer.decode(
            stream, device="cuda", out=torch.zeros(3, 4095, dtype=torch.float16, device="cuda")
        )


@pytest.mark.cuda
@requires_gpu
def test_out_device() -> None:
    import torch

    rng = np.random.default_rng(4)
    x = _data(rng, 1_000_003, np.float32, "ties")
    params = slicer._params.make_params(sparsity=0.9, seed=11)
    on_device = _gpu.encode(_to_cuda(x), params, out="device")
    as_torch = torch.from_dlpack(on_device)
    assert as_torch.device.type == "cuda" and as_torch.dtype == torch.uint8
    assert as_torch.cpu().numpy().tobytes() == slicer.encode(x, sparsity=0.9, seed=11)
    decoded = slicer.decode(as_torch, device="cuda")
    assert _same(
        _to_numpy_any(decoded, np.dtype(np.float32)),
        slicer.decode(slicer.encode(x, sparsity=0.9, seed=11)),
    )


# --------------------------------------------------------------------------- batches


@pytest.mark.parametrize("axis", [0, 1, -1])
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f16", "bf16"])
@pytest.mark.cuda
@requires_gpu
def test_encode_batch(axis: int, dtype: Any) -> None:
    rng = np.random.default_rng(5)
    x = _data(rng, 6 * 5 * 577, dtype, "ties").reshape(6, 5, 577)
    kwargs = {"sparsity": 0.9, "asym": 0.05, "groups": "rows"}
    items = slicer.encode_batch(_to_cuda(x), axis=axis, **kwargs)
    moved = np.moveaxis(x, axis, 0)
    assert len(items) == moved.shape[0]
    for i, item in enumerate(items):
        assert item == slicer.encode(np.ascontiguousarray(moved[i]), **kwargs)


@pytest.mark.cuda
@requires_gpu
def test_encode_batch_tokens() -> None:
    rng = np.random.default_rng(6)
    x = _data(rng, 64 * 4096, np.float32, "outliers").reshape(64, 4096)
    items = slicer.encode_batch(_to_cuda(x), sparsity=0.9)
    assert items == [slicer.encode(x[i], sparsity=0.9) for i in range(64)]


# --------------------------------------------------------------------------- errors


@pytest.mark.cuda
@requires_gpu
def test_gpu_rejects_bad_input_and_streams() -> None:
    x = np.ones(100, np.float32)
    x[50] = np.nan
    with pytest.raises(ValueError, match="NaN or infinity"):
        slicer.encode(_to_cuda(x))
    rng = np.random.default_rng(8)
    stream = bytearray(slicer.encode(_data(rng, 5000, np.float32, "normal")))
    for cut in (3, 20, len(stream) - 1):
        with pytest.raises(slicer.FormatError):
            slicer.decode(bytes(stream[:cut]), device="cuda")
    stream[len(stream) // 2] ^= 0x10
    with pytest.raises(slicer.FormatError):
        slicer.decode(bytes(stream), device="cuda")
    with pytest.raises(slicer.FormatError):
        slicer.decode(slicer.encode(np.ones(64, np.float32)), device="cuda", max_elements=63)


# --------------------------------------------------------------------------- glue (no GPU)


class _FakeCudaArray:
    """Speaks DLPack like a CUDA array of another framework; records the stream handshake."""

    def __init__(self, shape: tuple[int, ...]) -> None:
        self.shape = shape
        self.streams: list[Any] = []

    def __dlpack_device__(self) -> tuple[int, int]:
        return (2, 1)  # kDLCUDA, device 1

    def __dlpack__(self, *, stream: Any = None) -> str:
        self.streams.append(stream)
        return "capsule"


class _FakeModule:
    """Stands in for slicer._cuda: records calls and answers with a preset status."""

    def __init__(self, status: int = 0, result: Any = b"stream") -> None:
        self.status = status
        self.result = result
        self.calls: list[tuple] = []

    def available(self) -> bool:
        return True

    def status_string(self, status: int) -> str:
        return f"status {status}"

    def last_cuda_error(self) -> str:
        return "detail"

    def encode(self, *args: Any) -> tuple[int, Any]:
        self.calls.append(("encode", *args))
        return self.status, self.result if not self.status else None

    def encode_batch(self, *args: Any) -> tuple[int, Any]:
        self.calls.append(("encode_batch", *args))
        return self.status, [b"a", b"b"] if not self.status else None

    def decode(self, *args: Any) -> tuple[int, Any]:
        self.calls.append(("decode", *args))
        return self.status, "device array" if not self.status else None

    def dense_encode(self, *args: Any) -> tuple[int, Any]:
        self.calls.append(("dense_encode", *args))
        return self.status, self.result if not self.status else None


@pytest.fixture
def fake_cuda(monkeypatch: pytest.MonkeyPatch) -> Any:
    if _gpu is None:
        pytest.skip("slicer._gpu is missing")

    def install(**kwargs: Any) -> _FakeModule:
        module = _FakeModule(**kwargs)
        monkeypatch.setattr(_gpu, "_cuda", module)
        return module

    return install


def test_glue_dlpack_handshake_and_arguments(fake_cuda: Any) -> None:
    module = fake_cuda()
    x = _FakeCudaArray((4, 8))
    params = slicer._params.make_params(sparsity=0.5)
    assert _gpu.encode(x, params) == b"stream"
    assert _gpu.encode(x, params, out="device") == b"stream"
    # An unknown producer works on the legacy default stream: handle 1 in the handshake
    # (0 is not allowed for CUDA), raw handle 0 for the kernels.
    assert x.streams == [1, 1]
    assert module.calls[0] == ("encode", "capsule", params, False, 0)
    assert module.calls[1] == ("encode", "capsule", params, True, 0)
    with pytest.raises(ValueError, match="out must be"):
        _gpu.encode(x, params, out="elsewhere")


def test_glue_batch_axis(fake_cuda: Any) -> None:
    module = fake_cuda()
    x = _FakeCudaArray((2, 3, 5))
    params = slicer._params.make_params()
    assert _gpu.encode_batch(x, -1, params) == [b"a", b"b"]
    assert module.calls[-1][2] == 2  # axis normalized
    with pytest.raises(ValueError, match="out of range"):
        _gpu.encode_batch(x, 3, params)
    with pytest.raises(ValueError, match="at least one dimension"):
        _gpu.encode_batch(_FakeCudaArray(()), 0, params)


def test_glue_decode_sources(fake_cuda: Any) -> None:
    module = fake_cuda()
    assert _gpu.decode(b"\x01\x02\x03", max_elements=10) == "device array"
    _, src, limit, out, device, stream = module.calls[-1]
    assert isinstance(src, np.ndarray) and src.dtype == np.uint8 and src.tolist() == [1, 2, 3]
    assert (limit, out, device, stream) == (10, None, 0, 0)
    on_device = _FakeCudaArray((3,))
    _gpu.decode(on_device)
    assert module.calls[-1][1] == "capsule" and module.calls[-1][4] == 1  # the array's device
    target = _FakeCudaArray((3,))
    assert _gpu.decode(bytearray(b"abc"), out=target) is target
    assert module.calls[-1][3] == "capsule" and module.calls[-1][4] == 1
    with pytest.raises(ValueError, match="out must be an array on a CUDA device"):
        _gpu.decode(b"abc", out=np.zeros(3, np.float32))
    with pytest.raises(TypeError, match="uint8"):
        _gpu.decode(np.zeros(3, np.float32))
    _gpu.decode(np.arange(6, dtype=np.uint8).reshape(2, 3))  # any uint8 host array, flattened
    assert module.calls[-1][1].tolist() == [0, 1, 2, 3, 4, 5]
    with pytest.raises(ValueError, match="max_elements"):
        _gpu.decode(b"abc", max_elements=-1)


@pytest.mark.parametrize(
    ("status", "error", "message"),
    [
        (3, ValueError, "NaN or infinity"),
        (1, ValueError, "invalid encoder argument"),
        (20, RuntimeError, "CUDA backend: status 20"),
        (21, RuntimeError, "detail"),
    ],
)
def test_glue_encode_errors(fake_cuda: Any, status: int, error: type, message: str) -> None:
    fake_cuda(status=status)
    with pytest.raises(error, match=message):
        _gpu.encode(_FakeCudaArray((8,)), slicer._params.make_params())


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (14, slicer.FormatError),
        (13, slicer.FormatError),
        (15, slicer.FormatError),
        (22, RuntimeError),
    ],
)
def test_glue_decode_errors(fake_cuda: Any, status: int, error: type) -> None:
    fake_cuda(status=status)
    with pytest.raises(error):
        _gpu.decode(b"SLCR....")


# --------------------------------------------------------------------------- format 2, dense

GOLDEN_V2 = Path(__file__).parent / "golden" / "v2"
DENSE_DTYPES = [np.float32, np.float16, BF16, np.float64]


def _dense_golden(name: str) -> tuple[np.ndarray, dict, bytes]:
    meta = json.loads((GOLDEN_V2 / f"{name}.json").read_text())
    x = np.load(GOLDEN_V2 / f"{name}.npy")
    if meta["dtype"] == "bfloat16":
        x = x.view(ml_dtypes.bfloat16)
    return x, meta["params"], (GOLDEN_V2 / f"{name}.slc").read_bytes()


def _dense_params(meta: dict) -> dict:
    layouts = {0: "tensor", 1: "rows", 2: "channels"}
    params = slicer._params.make_dense_params(
        step=meta["step"], rho=meta["rho_256"] / 256, groups=layouts[meta["layout"]],
        chunk_size=2 ** meta["chunk_log2"],
        offsets=None if meta["offsets"] is None else tuple(meta["offsets"]),
        table_kind=meta.get("table_kind", 0), low_bits=meta.get("low_bits", 0),  # §13.5, §13.6
    )  # fmt: skip
    table = meta["group_table"]
    params["group_table"] = None if table is None else bytes(table)
    if meta.get("classes", 1) > 1:  # mode 2 goldens (§19): their classes and axis
        params["classes"] = meta["classes"]
        params["class_axis"] = meta["class_axis"]
        params["class_map"] = meta.get("class_map", "rank")  # §18.3 index ranges or a map
        params["class_bounds"] = meta.get("class_bounds")  # §18.4 boundaries (an input)
    return params


def test_glue_dense_encode(fake_cuda: Any) -> None:
    module = fake_cuda()
    x = _FakeCudaArray((4, 8))
    params = slicer._params.make_dense_params(step=0.1)
    assert _gpu.encode_dense(x, params) == b"stream"
    assert module.calls[-1] == ("dense_encode", "capsule", params, 0)
    fake_cuda(status=1)
    with pytest.raises(ValueError, match="too small for the data"):
        _gpu.encode_dense(x, params)
    fake_cuda(status=3)
    with pytest.raises(ValueError, match="NaN or infinity"):
        _gpu.encode_dense(x, params)
    # slicer.encode routes a CUDA array with mode="dense" and a step to the GPU encoder.
    module = fake_cuda()
    assert slicer.encode(x, mode="dense", step=0.1) == b"stream"
    name, capsule, sent, stream = module.calls[-1]
    assert (name, capsule, stream) == ("dense_encode", "capsule", 0)
    assert sent == params and sent["group_table"] is None


def test_glue_dense_encode_classes(fake_cuda: Any) -> None:
    # An int classes goes to the GPU encoder (mode 2 for K >= 2) with its class axis; K above
    # the class axis' length is refused before any launch, as on the CPU.
    module = fake_cuda()
    x = _FakeCudaArray((4, 8))
    assert slicer.encode(x, mode="dense", step=0.1, classes=8) == b"stream"
    name, _, sent, _ = module.calls[-1]
    assert name == "dense_encode" and sent["classes"] == 8 and sent["class_axis"] == 0
    with pytest.raises(ValueError, match="classes=9 needs at least 9 positions"):
        slicer.encode(x, mode="dense", step=0.1, classes=9)
    assert len(module.calls) == 1


@pytest.mark.parametrize("name", sorted(p.stem for p in GOLDEN_V2.glob("*.slc")))
@pytest.mark.cuda
@requires_gpu
def test_gpu_dense_golden(name: str) -> None:
    x, meta, golden = _dense_golden(name)
    if name.startswith("m3_"):  # mode 3 (§21): decoded on the GPU, encoded on the host only
        kw = {"mode": "dense", "trellis": meta["lam"], "step": meta["step"]}
        assert slicer.encode(_to_cuda(x), **kw) == slicer.encode(x, **kw)
    else:
        assert _gpu.encode_dense(_to_cuda(x), _dense_params(meta)) == golden
    expect = slicer.decode(golden)
    got = _to_numpy(slicer.decode(golden, device="cuda"), expect.dtype)
    assert _same(got, expect)


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("dtype", DENSE_DTYPES, ids=["f32", "f16", "bf16", "f64"])
@pytest.mark.parametrize("groups", ["tensor", "rows"])
@pytest.mark.cuda
@requires_gpu
def test_gpu_dense_bytes_equal_cpu(n: int, dtype: Any, groups: str) -> None:
    rng = np.random.default_rng(n)
    x = _data(rng, n, np.float32, "outliers").astype(dtype).reshape(-1, 1 if n % 7 else 7)
    cpu = slicer.encode(x, mode="dense", step=0.02, groups=groups)
    gpu = slicer.encode(_to_cuda(x), mode="dense", step=0.02, groups=groups)
    assert gpu == cpu
    expect = slicer.decode(cpu)
    assert _same(_to_numpy(slicer.decode(cpu, device="cuda"), expect.dtype), expect)
    import torch

    on_device = torch.from_numpy(np.frombuffer(cpu, dtype=np.uint8).copy()).cuda()
    assert _same(_to_numpy(slicer.decode(on_device, device="cuda"), expect.dtype), expect)


@pytest.mark.parametrize("n", [1, 63, 4097, 65_537])
@pytest.mark.parametrize("dtype", DENSE_DTYPES, ids=["f32", "f16", "bf16", "f64"])
@pytest.mark.parametrize(
    ("low_bits", "table_kind"),
    [(1, 0), (5, 2), (15, 4), (3, 1), (0, "auto"), ("auto", 0), ("auto", "auto"), (5, "auto")],
)
@pytest.mark.cuda
@requires_gpu
def test_gpu_dense_low_bits_table_kind_bytes_equal_cpu(
    n: int, dtype: Any, low_bits: Any, table_kind: Any
) -> None:
    # Mode 1's low-bit plane (§13.6) and table kinds (§13.5), explicit and "auto", written by
    # the GPU encoder (slicer_cuda_dense_encode_host): the CPU's bytes at low and high rates.
    rng = np.random.default_rng(n + 13)
    x = _data(rng, n, np.float32, "outliers").astype(dtype).reshape(-1, 1 if n % 7 else 7)
    for step in (0.5, 0.004):
        kw = {"step": step, "low_bits": low_bits, "table_kind": table_kind}
        cpu = slicer.encode(x, mode="dense", **kw)
        gpu = _gpu.encode_dense(_to_cuda(x), slicer._params.make_dense_params(**kw))
        assert gpu == cpu
        assert slicer.encode(_to_cuda(x), mode="dense", **kw) == cpu  # the GPU path of encode
        info = slicer.inspect(cpu)
        if low_bits != "auto":
            assert info.low_bits == low_bits
        if table_kind != "auto":
            assert info.table_kind == table_kind
        expect = slicer.decode(cpu)
        assert _same(_to_numpy(slicer.decode(cpu, device="cuda"), expect.dtype), expect)


@pytest.mark.parametrize(
    ("shape", "groups", "classes"),
    [((1, 2), "tensor", 2), ((7, 5), "rows", 3), ((64, 576), "rows", 16),
     ((2, 16, 9, 31), "channels", 16), ((3, 40, 300), "channels", 5), ((999, 1001), "tensor", 8)],
)  # fmt: skip
@pytest.mark.parametrize("dtype", DENSE_DTYPES, ids=["f32", "f16", "bf16", "f64"])
@pytest.mark.cuda
@requires_gpu
def test_gpu_dense_classes_bytes_equal_cpu(
    shape: tuple, groups: str, classes: int, dtype: Any
) -> None:
    # Mode 2 (§19) on both class axes (the last; axis 1 for channels): the CPU's bytes.
    rng = np.random.default_rng(sum(shape) + classes)
    x = _data(rng, int(np.prod(shape)), np.float32, "outliers").astype(dtype).reshape(shape)
    cpu = slicer.encode(x, mode="dense", step=0.02, groups=groups, classes=classes)
    assert slicer.inspect(cpu).classes == classes
    gpu = slicer.encode(_to_cuda(x), mode="dense", step=0.02, groups=groups, classes=classes)
    assert gpu == cpu
    expect = slicer.decode(cpu)
    assert _same(_to_numpy(slicer.decode(cpu, device="cuda"), expect.dtype), expect)


@pytest.mark.cuda
@requires_gpu
def test_gpu_dense_rejects_like_cpu() -> None:
    import zlib

    rng = np.random.default_rng(5)
    stream = slicer.encode(rng.standard_normal((30, 700)).astype(np.float32), mode="dense",
                           step=0.05, groups="rows")  # fmt: skip
    for trial in range(200):
        damaged = bytearray(stream)
        damaged[int(rng.integers(0, len(stream) - 4))] ^= 1 << int(rng.integers(0, 8))
        damaged[-4:] = zlib.crc32(bytes(damaged[:-4])).to_bytes(4, "little")
        try:
            expect = slicer.decode(bytes(damaged))
        except slicer.FormatError as cpu_error:
            with pytest.raises(slicer.FormatError) as gpu_error:
                slicer.decode(bytes(damaged), device="cuda")
            assert gpu_error.value.status == cpu_error.status, trial
            continue
        got = slicer.decode(bytes(damaged), device="cuda")
        assert _same(_to_numpy(got, expect.dtype), expect), trial
    with pytest.raises(ValueError, match="NaN or infinity"):
        slicer.encode(_to_cuda(np.array([1.0, np.inf], np.float32)), mode="dense", step=0.1)


@pytest.mark.cuda
@requires_gpu
def test_gpu_trellis_takes_the_host_path() -> None:
    # Mode 3 (§21): a CUDA array with trellis= is copied to the host and encoded on the CPU
    # (the same bytes as from a host array); the GPU decodes the stream to the CPU's values.
    rng = np.random.default_rng(3)
    x = _data(rng, 64 * 96, np.float32, "outliers").reshape(64, 96)
    cpu = slicer.encode(x, mode="dense", step=0.02, trellis=True, classes=4)
    assert slicer.encode(_to_cuda(x), mode="dense", step=0.02, trellis=True, classes=4) == cpu
    expect = slicer.decode(cpu)
    assert _same(_to_numpy(slicer.decode(cpu, device="cuda"), expect.dtype), expect)
