"""Run a model split in two: head on the "edge", codec on the link, tail on the "server".

Both halves run in ONNX Runtime sessions in this process; the timings separate what each side
would spend.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import onnx

from . import fidelity
from .graph import Cut, Partitioner
from .providers import make_session, resolve_providers
from .transport import CodecParams, Packet, decode_packet, encode_values

_ORT_TYPES = {
    "tensor(float)": np.float32,
    "tensor(float16)": np.float16,
    "tensor(double)": np.float64,
    "tensor(int64)": np.int64,
    "tensor(int32)": np.int32,
    "tensor(int8)": np.int8,
    "tensor(uint8)": np.uint8,
    "tensor(bool)": np.bool_,
}


@dataclass
class SplitResult:
    """One split run: outputs, sizes, timings and fidelity against the uncut model."""

    cut: Cut
    outputs: dict[str, np.ndarray]
    reference: dict[str, np.ndarray] | None
    packet: Packet
    latency_s: dict[str, float]
    fidelity: dict[str, float] = field(default_factory=dict)
    per_output: dict[str, dict[str, float]] = field(default_factory=dict)
    shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)  # concrete cut shapes

    @property
    def bits_per_element(self) -> float:
        """Bits sent per element of the cut tensors (side tensors included)."""
        elements = self.packet.coded_elements + sum(a.size for a in self.packet.raw.values())
        return 8.0 * self.packet.encoded_bytes / elements if elements else 0.0


class SplitModel:
    """A model cut at one point, with ONNX Runtime sessions for head, tail and (lazily) the
    uncut model.

    ``providers``: ``None``/"auto" (CUDA when it really loads, else CPU), or a list such as
    ``["CPUExecutionProvider"]``. ``threads``: ORT intra-op threads, 0 = ORT's default.
    ``transforms``: cut tensor name → :class:`~slicer.split.transform.CutTransform` (held by
    both sides; coded tensors travel as its coefficients). ``estimators``: cut tensor name →
    :class:`~slicer.split.estimator.CutEstimator`, applied by the receiving side after decode.
    """

    def __init__(
        self,
        model: str | os.PathLike | onnx.ModelProto | Partitioner,
        cut: Cut | str | int,
        *,
        providers: Sequence[str] | str | None = None,
        threads: int = 0,
        transforms: Mapping[str, Any] | None = None,
        estimators: Mapping[str, Any] | None = None,
    ) -> None:
        self.partitioner = model if isinstance(model, Partitioner) else Partitioner(model)
        self.cut = cut if isinstance(cut, Cut) else self.partitioner.find_cut(cut)
        self.providers = resolve_providers(providers)
        self.threads = threads
        head, tail = self.partitioner.extract(self.cut)
        ext = self.partitioner.external_dir
        self.head = make_session(head, self.providers, threads, ext)
        self.tail = make_session(tail, self.providers, threads, ext)
        self._full = None
        self.transforms: dict[str, Any] = dict(transforms or {})
        self.estimators: dict[str, Any] = dict(estimators or {})
        names = {t.name for t in self.cut.tensors}
        for what, given in (("transforms", self.transforms), ("estimators", self.estimators)):
            unknown = sorted(set(given) - names)
            if unknown:
                raise ValueError(
                    f"{what} for {unknown}, which are not tensors of cut {self.cut.name}"
                )

    @property
    def provider(self) -> str:
        """The execution provider the head session actually runs on."""
        return self.head.get_providers()[0]

    @property
    def full(self):  # noqa: ANN201 - onnxruntime type
        if self._full is None:
            self._full = make_session(
                self.partitioner.model, self.providers, self.threads, self.partitioner.external_dir
            )
        return self._full

    def _feeds(self, session, values: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:  # noqa: ANN001
        feeds = {}
        for inp in session.get_inputs():
            if inp.name not in values:
                raise ValueError(f"missing input {inp.name!r} (expected {inp.type} {inp.shape})")
            feeds[inp.name] = values[inp.name]
        return feeds

    def run_head(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        names = [o.name for o in self.head.get_outputs()]
        values = self.head.run(names, self._feeds(self.head, inputs))
        # Graph inputs that cross the cut (masks, token ids) are head outputs too: the head
        # model passes them through unchanged.
        return dict(zip(names, values, strict=True))

    def run_tail(self, cut_values: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        names = [o.name for o in self.tail.get_outputs()]
        values = self.tail.run(names, self._feeds(self.tail, cut_values))
        return dict(zip(names, values, strict=True))

    def run_full(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        names = [o.name for o in self.full.get_outputs()]
        return dict(zip(names, self.full.run(names, self._feeds(self.full, inputs)), strict=True))

    def run(
        self,
        inputs: Mapping[str, np.ndarray],
        params: CodecParams | None,
        *,
        reference: Mapping[str, np.ndarray] | None = None,
        compare: bool = True,
    ) -> SplitResult:
        """Head → codec (``params``; ``None`` = raw) → tail, plus fidelity vs the uncut model."""
        start = time.perf_counter()
        head_inputs = {i.name: inputs[i.name] for i in self.head.get_inputs()}
        cut_values = self.run_head(head_inputs)
        for t in self.cut.tensors:  # cut tensors that are graph inputs pass straight through
            if t.name not in cut_values:
                cut_values[t.name] = inputs[t.name]
        device_s = time.perf_counter() - start
        packet = encode_values(cut_values, params, self.transforms)
        received, decode_s = decode_packet(packet, self.transforms, self.estimators)
        start = time.perf_counter()
        outputs = self.run_tail(received)
        server_s = time.perf_counter() - start
        ref = (
            dict(reference)
            if reference is not None
            else (self.run_full(inputs) if compare else None)
        )
        result = SplitResult(
            cut=self.cut,
            outputs=outputs,
            reference=ref,
            packet=packet,
            latency_s={
                "device": device_s,
                "encode": packet.encode_s,
                "decode": decode_s,
                "server": server_s,
            },
            shapes={n: tuple(int(d) for d in v.shape) for n, v in cut_values.items()},
        )
        if ref is not None:
            result.per_output = {n: fidelity.compare(n, ref[n], outputs[n]) for n in outputs}
            result.fidelity = fidelity.summarize(result.per_output)
        return result


def random_inputs(session, seed: int = 0) -> dict[str, np.ndarray]:  # noqa: ANN001
    """Inputs drawn from the declared shapes (dynamic dimensions set to 1).

    Floats: standard normal. Integers: small non-negative ids (0 … 99), which are valid token
    ids and indices for the models we ship; all-ones for inputs named like masks.
    """
    rng = np.random.default_rng(seed)
    feeds = {}
    for inp in session.get_inputs():
        shape = [d if isinstance(d, int) and d > 0 else 1 for d in inp.shape]
        dtype = _ORT_TYPES.get(inp.type)
        if dtype is None:
            raise ValueError(f"cannot draw random values for input {inp.name!r} of {inp.type}")
        if "mask" in inp.name.lower():
            feeds[inp.name] = np.ones(shape, dtype=dtype)
        elif np.issubdtype(dtype, np.floating):
            feeds[inp.name] = rng.standard_normal(shape).astype(dtype)
        elif dtype is np.bool_:
            feeds[inp.name] = np.ones(shape, dtype=dtype)
        else:
            feeds[inp.name] = rng.integers(0, 100, size=shape).astype(dtype)
    return feeds


def load_inputs(path: str | os.PathLike, session) -> dict[str, np.ndarray]:  # noqa: ANN001
    """Arrays from an ``.npz`` keyed by the model's input names, cast to the declared types."""
    with np.load(path) as data:
        arrays = {k: data[k] for k in data.files}
    feeds = {}
    for inp in session.get_inputs():
        if inp.name not in arrays:
            raise ValueError(
                f"{path} has no array named {inp.name!r}; it holds {sorted(arrays)}; the model "
                f"needs {[i.name for i in session.get_inputs()]}"
            )
        dtype = _ORT_TYPES.get(inp.type)
        feeds[inp.name] = arrays[inp.name].astype(dtype) if dtype else arrays[inp.name]
    return feeds


def json_result(result: SplitResult, provider: str, extra: dict[str, Any] | None = None) -> dict:
    """The ``slicer run --json`` object (field names are a contract)."""
    ms = {k: v * 1e3 for k, v in result.latency_s.items()}
    out = {
        "cut": {"index": result.cut.index, "name": result.cut.name},
        "tensors": [
            {**t.to_json(), "shape": list(result.shapes.get(t.name, t.shape or ()))}
            for t in result.cut.tensors
        ],
        "coded_tensors": sorted(result.packet.streams),
        "side_tensors": sorted(result.packet.side),  # sent as lossless docs/side.md strings
        "transforms": dict(result.packet.transforms),  # coded through a CutTransform
        "raw_bytes": result.packet.raw_bytes,
        "encoded_bytes": result.packet.encoded_bytes,
        "side_bytes": result.packet.side_bytes,
        "bits_per_element": result.bits_per_element,
        "compression_ratio": (
            result.packet.raw_bytes / result.packet.encoded_bytes
            if result.packet.encoded_bytes
            else None
        ),
        "latency_ms": ms,
        "fidelity": result.fidelity,
        "fidelity_per_output": result.per_output,
        "provider": provider,
    }
    if extra:
        out.update(extra)
    return out
