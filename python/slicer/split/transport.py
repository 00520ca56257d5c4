"""What crosses the link: cut tensors through the SLICER codec, or raw when they must be exact.

Policy (documented, deterministic): a cut tensor is coded lossily when it is floating point
(float32 / float16 / bfloat16) and holds at least ``max(64, largest / 4)`` elements, where
``largest`` is the biggest float tensor of the cut. Everything else (token ids, integer masks,
shape scalars, additive attention masks, tiny tensors) is a *side tensor*: it must arrive bit
for bit (top-k would destroy a mask). A coded packet sends each side tensor losslessly as a
``docs/side.md`` string (deflated when that is shorter: MiniLM's two masks of a 36-token
sentence cost 30 bytes instead of 432); the raw link (``params=None``) sends every tensor
uncompressed, its byte count exactly the tensors' ``nbytes``.

A coded tensor may go through a calibrated transform first (``transforms``: cut tensor name →
:class:`~slicer.split.transform.CutTransform`): its stream then holds the transform's
coefficients, the packet records the transform's fingerprint, and the receiver must hold the
same transform to decode it.

A receiver may also hold a calibrated decoder-side estimator per coded tensor (``estimators``:
name → :class:`~slicer.split.estimator.CutEstimator`): it is applied to the decoded tensor
(after the inverse transform), costs no bits and is not recorded in the packet.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .side import MAX_BYTES as SIDE_MAX_BYTES
from .side import decode_side, encode_side, side_bound

CODEC_DTYPES = ("float32", "float16", "bfloat16")
MIN_CODED_ELEMENTS = 64


# dense / auto: mode 2 (§18, §19) and mode 3 (trellis-coded quantization, §21)
_CLASS_KEYS = ("classes", "class_map", "class_bounds", "trellis")


@dataclass(frozen=True)
class CodecParams:
    """The codec knobs of ``slicer.encode`` that a split run exposes.

    ``mode``: "topk" (sparsity / blocks / bits / delta / asym / seed), or "dense" / "auto"
    (format 2: exactly one of ``step``, ``rel_error``, ``max_bytes``; ``rho`` for "dense");
    ``groups`` applies to every mode ("channels" to dense / auto only). Each mode gets only
    its own keywords.
    """

    sparsity: float = 0.9
    blocks: int = 3
    bits: int = 8
    delta: float = 0.01
    asym: float = 0.0
    seed: int = 0
    groups: str = "tensor"
    mode: str = "topk"
    rel_error: float | None = None
    max_bytes: int | None = None
    step: float | None = None
    rho: float | None = None
    rel_step: float | None = None  # dense: step = rel_step × RMS of each coded tensor
    classes: int | str | None = None  # dense / auto: frequency tables (1, 2..16, "auto"; §19)
    class_map: str | None = None  # dense / auto: "rank" / "ranges" / "bounds" (§18), None: default
    class_bounds: list[int] | None = None  # class_map "bounds": the K − 1 boundaries (§18.4)
    trellis: bool | float | None = None  # dense / auto: mode 3 (True or λ > 0; docs/format.md §21)

    def validate(self) -> None:
        """``ValueError`` naming the first out-of-range knob."""
        if not isinstance(self.mode, str) or self.mode not in ("topk", "dense", "auto"):
            raise ValueError(f"mode must be 'topk', 'dense' or 'auto', got {self.mode!r}")
        if not (isinstance(self.sparsity, (int, float)) and 0 <= self.sparsity < 1):
            raise ValueError(f"sparsity must be in [0, 1), got {self.sparsity!r}")
        if not (isinstance(self.bits, int) and 1 <= self.bits <= 16):
            raise ValueError(f"bits must be an integer in 1..16, got {self.bits!r}")
        if not (isinstance(self.blocks, int) and 1 <= self.blocks <= 64):
            raise ValueError(f"blocks must be an integer in 1..64, got {self.blocks!r}")
        if not (isinstance(self.delta, (int, float)) and self.delta >= 0):
            raise ValueError(f"delta must be ≥ 0, got {self.delta!r}")
        groups = ("tensor", "rows") if self.mode == "topk" else ("tensor", "rows", "channels")
        if self.groups not in groups:
            raise ValueError(f"groups must be one of {groups} in mode {self.mode!r}")
        if self.rel_error is not None and not (
            isinstance(self.rel_error, (int, float)) and self.rel_error > 0
        ):
            raise ValueError(f"rel_error must be > 0, got {self.rel_error!r}")
        if self.mode == "topk" and self.classes is not None:
            raise ValueError("classes applies to modes 'dense' and 'auto'")
        if self.mode == "topk" and self.class_map is not None:
            raise ValueError("class_map applies to modes 'dense' and 'auto'")
        if self.mode == "topk" and self.class_bounds is not None:
            raise ValueError("class_bounds applies to modes 'dense' and 'auto'")
        if self.mode == "topk" and self.trellis not in (None, False):
            raise ValueError("trellis applies to modes 'dense' and 'auto'")
        if self.mode != "topk":
            if not _encode_accepts("mode"):
                raise ValueError(f"codec mode {self.mode!r} needs a SLICER with codec modes")
            budgets = [
                k for k in ("step", "rel_error", "max_bytes", "rel_step") if getattr(self, k)
            ]
            if len(budgets) != 1:
                raise ValueError(
                    f"mode {self.mode!r} takes exactly one of step, rel_step, rel_error, max_bytes"
                )
            if self.classes is not None:
                from .._params import dense_classes

                dense_classes(self.classes)  # TypeError / ValueError naming classes
            if self.class_map is not None:
                from .._params import dense_class_map

                dense_class_map(self.class_map)  # TypeError / ValueError naming class_map
            if self.class_bounds is not None:
                from .._params import dense_class_bounds

                dense_class_bounds(self.class_bounds)  # TypeError / ValueError naming it
            if self.trellis is not None:
                from .._trellis import trellis_lambda

                trellis_lambda(self.trellis)  # TypeError / ValueError naming trellis
            if self.rel_step is not None and not (
                isinstance(self.rel_step, (int, float)) and self.rel_step > 0
            ):
                raise ValueError(f"rel_step must be > 0, got {self.rel_step!r}")

    def kwargs(self) -> dict[str, Any]:
        if self.mode != "topk":
            out = {"mode": self.mode, "groups": self.groups}
            for key in ("step", "rel_error", "max_bytes", "rho", *_CLASS_KEYS):
                if getattr(self, key) is not None:
                    out[key] = getattr(self, key)
            return out
        out: dict[str, Any] = {
            "sparsity": self.sparsity,
            "blocks": self.blocks,
            "bits": self.bits,
            "delta": self.delta,
            "asym": self.asym,
            "seed": self.seed,
            "groups": self.groups,
        }
        if self.max_bytes is not None:
            out["max_bytes"] = self.max_bytes
        accepted = _encode_parameters()
        return {k: v for k, v in out.items() if accepted is None or k in accepted}

    def to_json(self) -> dict[str, Any]:
        out = {
            "sparsity": self.sparsity,
            "blocks": self.blocks,
            "bits": self.bits,
            "delta": self.delta,
            "asym": self.asym,
            "seed": self.seed,
            "groups": self.groups,
            "mode": self.mode,
        }
        for key in ("rel_error", "max_bytes", "step", "rho", "rel_step", *_CLASS_KEYS):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        return out

    def kwargs_for(self, value: np.ndarray) -> dict[str, Any]:
        """``kwargs()`` for one tensor: ``rel_step`` becomes this tensor's step."""
        kw = self.kwargs()
        if self.rel_step is not None:
            rms = float(np.sqrt(np.mean(np.square(value, dtype=np.float64))))
            kw["step"] = self.rel_step * rms if rms > 0 else 1.0
        return kw


def _encode_parameters() -> set[str] | None:
    """Keyword names of the installed ``slicer.encode`` (None if it takes ``**kwargs``)."""
    import inspect

    params = inspect.signature(_codec().encode).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return None
    return set(params)


def _encode_accepts(name: str) -> bool:
    accepted = _encode_parameters()
    return accepted is None or name in accepted


def coded_names(shapes: Mapping[str, tuple[int, ...]], dtypes: Mapping[str, str]) -> list[str]:
    """Which tensors of a cut go through the codec (see the module policy)."""
    floats = {
        n: int(np.prod(s)) if len(s) else 1 for n, s in shapes.items() if dtypes[n] in CODEC_DTYPES
    }
    if not floats:
        return []
    largest = max(floats.values())
    floor = max(MIN_CODED_ELEMENTS, largest // 4)
    return [n for n, count in floats.items() if count >= floor]


@dataclass
class Packet:
    """One cut's worth of payload: codec streams and side tensors.

    ``raw`` holds the side tensors (every tensor on the raw link) as arrays; on a coded link
    ``side`` holds each one's lossless ``docs/side.md`` string, and that string is what the
    packet sends and counts (a sender that can only send arrays may still use ``raw``).
    """

    streams: dict[str, bytes] = field(default_factory=dict)
    raw: dict[str, np.ndarray] = field(default_factory=dict)
    raw_bytes: int = 0  # bytes of every cut tensor uncompressed
    coded_elements: int = 0  # elements that went through the codec
    encode_s: float = 0.0
    transforms: dict[str, str] = field(default_factory=dict)  # stream name -> fingerprint
    side: dict[str, bytes] = field(default_factory=dict)  # side tensor name -> side string

    @property
    def encoded_bytes(self) -> int:
        """Bytes the packet sends: codec streams plus :attr:`side_bytes`."""
        return sum(len(s) for s in self.streams.values()) + self.side_bytes

    @property
    def side_bytes(self) -> int:
        """Bytes of the side tensors: their side strings (coded link), else their ``nbytes``."""
        if self.side:
            return sum(len(b) for b in self.side.values())
        return sum(a.nbytes for a in self.raw.values())


def _codec():  # noqa: ANN202 - the slicer package module
    try:
        import slicer
    except ImportError as exc:  # pragma: no cover - the package is this project's own
        raise RuntimeError(f"the SLICER codec extension is not importable: {exc}") from exc
    return slicer


def encode_values(
    values: Mapping[str, np.ndarray],
    params: CodecParams | None,
    transforms: Mapping[str, Any] | None = None,
) -> Packet:
    """Encode a cut's tensors; ``params=None`` sends everything raw (the uncompressed link).
    ``transforms``: coded tensors to send as the coefficients of their calibrated transform
    (ignored on the raw link: raw tensors travel exactly)."""
    shapes = {n: tuple(v.shape) for n, v in values.items()}
    dtypes = {n: str(v.dtype) for n, v in values.items()}
    coded = coded_names(shapes, dtypes) if params is not None else []
    transforms = dict(transforms or {}) if params is not None else {}
    stray = sorted(set(transforms) - set(coded))
    if stray:
        raise ValueError(
            f"transforms given for {stray}, which the codec does not code (coded: {coded})"
        )
    packet = Packet(raw_bytes=sum(int(v.nbytes) for v in values.values()))
    codec = _codec() if coded else None
    start = time.perf_counter()
    for name, value in values.items():
        if name in coded and codec is not None and params is not None:
            x = np.ascontiguousarray(value)
            if name in transforms:
                t = transforms[name]
                x = t.forward(x).astype(value.dtype, copy=False)
                packet.transforms[name] = t.fingerprint()
            packet.streams[name] = codec.encode(x, **params.kwargs_for(x))
            packet.coded_elements += int(value.size)
        else:
            packet.raw[name] = value
            if params is not None:
                packet.side[name] = encode_side(np.asarray(value))
    packet.encode_s = time.perf_counter() - start
    return packet


def decode_packet(
    packet: Packet,
    transforms: Mapping[str, Any] | None = None,
    estimators: Mapping[str, Any] | None = None,
) -> tuple[dict[str, np.ndarray], float]:
    """The server's view of the cut tensors, and the decode time in seconds. A stream coded
    through a transform needs the same transform in ``transforms`` (checked by fingerprint).
    ``estimators``: coded tensors whose decoded value goes through their calibrated
    estimator (included in the decode time); side tensors never do (they arrive exact).
    Side tensors are decoded from their side strings when the packet has them (exact dtype,
    shape and bits), each checked against ``max(raw_bytes, 64 MiB)`` before allocating."""
    out: dict[str, np.ndarray] = {n: a for n, a in packet.raw.items() if n not in packet.side}
    if not packet.streams and not packet.side:
        return out, 0.0
    transforms = transforms or {}
    for name, fp in packet.transforms.items():
        have = transforms.get(name)
        if have is None:
            raise ValueError(f"cut tensor {name!r} was coded through transform {fp[:19]}…; "
                             "give the receiver that transform")  # fmt: skip
        if have.fingerprint() != fp:
            raise ValueError(f"cut tensor {name!r} was coded through transform {fp[:19]}…, the "
                             f"receiver holds {have.fingerprint()[:19]}…")  # fmt: skip
    start = time.perf_counter()
    cap = max(int(packet.raw_bytes), SIDE_MAX_BYTES)
    for name, data in packet.side.items():
        out[name] = decode_side(data, max_bytes=cap)
    codec = _codec() if packet.streams else None
    for name, stream in packet.streams.items():
        y = np.asarray(codec.decode(stream))
        if name in packet.transforms:
            y = transforms[name].inverse(y).astype(y.dtype, copy=False)
        if estimators and name in estimators:
            y = estimators[name].apply(y)
        out[name] = y
    return out, time.perf_counter() - start


def payload_bound(
    shapes: Mapping[str, tuple[int, ...]], dtypes: Mapping[str, str], params: CodecParams
) -> int:
    """Upper bound on a packet's bytes before encoding (``slicer.size_bound`` + side strings)."""
    coded = set(coded_names(shapes, dtypes))
    total = 0
    codec = _codec() if coded else None
    for name, shape in shapes.items():
        if name in coded and codec is not None:
            import inspect

            accepted = inspect.signature(codec.size_bound).parameters
            kw = {k: v for k, v in params.kwargs().items() if k in accepted}
            total += int(codec.size_bound(tuple(shape), dtypes[name], **kw))
        else:
            total += side_bound(tuple(shape), _np_dtype(dtypes[name]))
    return total


def _np_dtype(dtype: str) -> np.dtype:
    if dtype == "bfloat16":
        import ml_dtypes

        return np.dtype(ml_dtypes.bfloat16)
    return np.dtype(dtype)
