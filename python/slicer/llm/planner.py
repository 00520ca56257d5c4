"""The autoregressive split planner of the paper's Eqs. 4–6: choose (w, ℓ).

The device generates the first w tokens with its own (compressed) full model, then at step w
runs the head (layers 0..ℓ-1) over every row the server has not seen and sends them; from then
on each step sends one coded row up and gets one token back. With our w (= the paper's w − 1):

    L_AR(ℓ, w)  = w · L_full + L_head(ℓ, P + w rows) + L_c(B(P + w rows))          (Eq. 5)
    total(ℓ, w) = L_AR + L_tail(ℓ, P + w rows)
                  + (N − w − 1) · (L_head(ℓ, 1) + L_c(B(1 row)) + L_tail(ℓ, 1))
    memory(ℓ, w) = M(weights(head ℓ), KV(ℓ layers, P + N)
                     + [w > 0] · KV(all layers, P + w), [w > 0] · device model)  (Eq. 4)

L_c is the ε-outage link of Eq. 1 (:class:`slicer.split.link.Link`). A plan is feasible when
L_AR ≤ D and memory ≤ M_ar (Eq. 6); among feasible plans the one with the least total time
wins (ties: the deeper cut, then the larger w). When none is feasible the error names the
constraint that binds and the best value reached.

Per-step costs come from :class:`ARProfile`. ``ARProfile.from_profile`` takes a measured
profile (:mod:`slicer.llm.profile`): each graph's time as ``call + row · rows + past · P`` (P =
rows already in its KV cache), head and tail fitted per layer from a few measured cuts, and M a
memory model calibrated on measured peaks of the device process, with a margin. The older
``ARProfile.from_full_model`` splits one full-model measurement between head and tail by
multiply-adds and counts the weights once (M = weights + KV); it misjudges both (bench/RESULTS.md
§13.8, §13.6).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

from ..split.link import Link
from .export import ModelInfo
from .messages import FRAMING_BYTES
from .profile import MemoryModel, predict_graph


@dataclass(frozen=True)
class ARProfile:
    """Per-cut costs. Times are (ms per call, ms per row[, ms per past row]); bytes are device
    memory."""

    info: ModelInfo
    full: tuple[float, ...]  # device model: ms per call, ms per row[, ms per row of past]
    head: dict[int, tuple[float, ...]]  # ℓ → ms per call, ms per row[, ms per row of past]
    tail: dict[int, tuple[float, ...]]
    device_model_bytes: float  # weights of the model used for local steps
    head_bytes: dict[int, float]  # ℓ → weights of the head graph
    row_bytes: Callable[[int, int], float]  # (ℓ, rows) → message bytes (payload + framing)
    memory: MemoryModel = field(default_factory=MemoryModel)
    device_model: str = "fp32"  # the memory model's key for the local-step model

    @classmethod
    def from_profile(
        cls,
        info: ModelInfo,
        data: dict,
        row_bytes: Callable[[int, int], float],
        *,
        head_bytes: dict[int, float] | None = None,
        device_factor: float = 1.0,
        server_factor: float = 1.0,
    ) -> ARProfile:
        """From a measured profile (:func:`slicer.llm.profile.load_profile`): head / tail
        times per cut from the per-layer fit, the measured full device model, the calibrated
        memory model. device_factor / server_factor scale the times as in from_full_model."""
        for name, value in (("device_factor", device_factor), ("server_factor", server_factor)):
            if not value > 0:
                raise ValueError(f"{name} must be > 0, got {value}")
        if data.get("fingerprint") != info.fingerprint:
            raise ValueError("profile was measured on other weights (fingerprint differs)")
        fit = data["fit"]
        head, tail = {}, {}
        for cut in range(1, info.layers):
            head[cut] = tuple(device_factor * v for v in predict_graph(info, fit, "head", cut))
            tail[cut] = tuple(server_factor * v for v in predict_graph(info, fit, "tail", cut))
        full = data["graphs"]["full"]
        if head_bytes is None:
            head_bytes = {
                c: 4.0 * (info.embed_params + c * info.layer_params) for c in range(1, info.layers)
            }
        return cls(
            info=info,
            full=tuple(device_factor * full[t] for t in ("call", "row", "past")),
            head=head,
            tail=tail,
            device_model_bytes=0.0,
            head_bytes=head_bytes,
            row_bytes=row_bytes,
            memory=MemoryModel.from_json(data["memory"]),
            device_model=data["device_model"],
        )

    @classmethod
    def from_full_model(
        cls,
        info: ModelInfo,
        full_call_ms: float,
        full_row_ms: float,
        row_bytes: Callable[[int, int], float],
        *,
        device_model_bytes: float | None = None,
        device_factor: float = 1.0,
        server_factor: float = 1.0,
    ) -> ARProfile:
        """Head / tail times split from one full-model measurement by multiply-adds.

        device_factor / server_factor scale the measured times to a slower device or a faster
        server (1.0: both run like the machine that was measured).
        """
        for name, value in (("device_factor", device_factor), ("server_factor", server_factor)):
            if not value > 0:
                raise ValueError(f"{name} must be > 0, got {value}")
        total = info.layers * info.layer_params + info.head_params
        head, tail, head_bytes = {}, {}, {}
        for cut in range(1, info.layers):
            share = cut * info.layer_params / total
            head[cut] = (full_call_ms * device_factor / 2, full_row_ms * device_factor * share)
            tail[cut] = (
                full_call_ms * server_factor / 2,
                full_row_ms * server_factor * (1 - share),
            )
            head_bytes[cut] = 4.0 * (info.embed_params + cut * info.layer_params)
        if device_model_bytes is None:
            device_model_bytes = 4.0 * (
                info.embed_params + info.layers * info.layer_params + info.head_params
            )
        return cls(
            info=info,
            full=(full_call_ms * device_factor, full_row_ms * device_factor),
            head=head,
            tail=tail,
            device_model_bytes=device_model_bytes,
            head_bytes=head_bytes,
            row_bytes=row_bytes,
        )


@dataclass(frozen=True)
class Plan:
    cut: int
    handover: int  # w: tokens generated on the device before the handover
    latency_ms: float  # L_AR of Eq. 5
    total_ms: float
    memory_bytes: float
    bytes_up: float  # over the whole generation
    feasible: bool = True
    considered: int = 0
    table: list[dict] = field(default_factory=list, repr=False)

    def to_json(self) -> dict:
        out = {k: v for k, v in self.__dict__.items() if k != "table"}
        out["ruled_out"] = self.ruled_out()
        return out

    def ruled_out(self) -> dict[str, int]:
        """How many (ℓ, w) each constraint excluded (memory checked first)."""
        count = {"memory": 0, "deadline": 0}
        for r in self.table:
            if r.get("binds"):
                count[r["binds"]] += 1
        return count


class InfeasibleError(ValueError):
    """No (w, ℓ) meets the deadline and the memory budget; ``binding`` names the constraint."""

    def __init__(self, message: str, binding: str) -> None:
        super().__init__(message)
        self.binding = binding


def _ms(cost: tuple[float, ...], rows: int, past: int = 0) -> float:
    """One call over ``rows`` new rows with ``past`` rows already in the KV cache."""
    return cost[0] + cost[1] * rows + (cost[2] * past if len(cost) > 2 else 0.0)


def _steps_ms(cost: tuple[float, ...], first_past: int, count: int) -> float:
    """``count`` one-row steps, the first with ``first_past`` rows of past, each one more."""
    if count <= 0:
        return 0.0
    past = cost[2] if len(cost) > 2 else 0.0
    return count * (cost[0] + cost[1]) + past * (count * first_past + count * (count - 1) / 2)


def evaluate(
    profile: ARProfile, cut: int, handover: int, prompt_len: int, max_new: int, link: Link
) -> dict:
    """Latency, total time, memory and bytes of one (ℓ, w) under the profile."""
    info = profile.info
    w = handover
    rows0 = prompt_len + w
    link_ms = lambda b: 1e3 * link.transmit_seconds(b)  # noqa: E731
    up0 = profile.row_bytes(cut, rows0)
    up1 = profile.row_bytes(cut, 1)
    latency = _ms(profile.head[cut], rows0) + link_ms(up0)
    if w > 0:  # the device model's prefill over the prompt, then w - 1 one-row steps
        latency += _ms(profile.full, prompt_len) + _steps_ms(profile.full, prompt_len, w - 1)
    rest = max_new - w - 1
    step_link = rest * link_ms(up1) if rest > 0 else 0.0
    steps = (
        _steps_ms(profile.head[cut], rows0, rest)
        + step_link
        + _steps_ms(profile.tail[cut], rows0, rest)
    )
    total = latency + _ms(profile.tail[cut], rows0) + steps
    kv_layer = info.kv_bytes_per_token_per_layer
    kv = kv_layer * cut * (prompt_len + max_new)
    if w > 0:
        kv += kv_layer * info.layers * rows0
    memory = profile.memory.predict(
        profile.head_bytes[cut],
        kv,
        profile.device_model if w > 0 else None,
        profile.device_model_bytes,
        tokens=prompt_len + max_new,
    )
    return {
        "cut": cut,
        "handover": w,
        "latency_ms": latency,
        "total_ms": total,
        "memory_bytes": memory,
        "bytes_up": up0 + rest * up1,
    }


def plan(
    profile: ARProfile,
    *,
    prompt_len: int,
    max_new: int,
    link: Link,
    deadline_s: float = math.inf,
    memory_bytes: float = math.inf,
    cuts: list[int] | None = None,
    handovers: list[int] | None = None,
) -> Plan:
    """Pick (w, ℓ) by Eqs. 4–6; raises :class:`InfeasibleError` naming the binding constraint."""
    for name, value in (("prompt_len", prompt_len), ("max_new", max_new)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}")
    if not deadline_s > 0:
        raise ValueError(f"deadline must be > 0 s, got {deadline_s}")
    if not memory_bytes > 0:
        raise ValueError(f"memory budget must be > 0 bytes, got {memory_bytes}")
    cuts = list(profile.head) if cuts is None else cuts
    handovers = list(range(max_new)) if handovers is None else handovers
    bad = [c for c in cuts if c not in profile.head]
    if bad:
        raise ValueError(f"cuts {bad} are not in the profile (1..{profile.info.layers - 1})")
    if any(w < 0 or w >= max_new for w in handovers):
        raise ValueError(f"handover w must be in 0..{max_new - 1}")
    rows = [evaluate(profile, c, w, prompt_len, max_new, link) for c in cuts for w in handovers]
    for r in rows:  # what rules each (ℓ, w) out: memory first (Eq. 4), then the deadline
        if r["memory_bytes"] > memory_bytes:
            r["binds"] = "memory"
        elif not (math.isfinite(r["total_ms"]) and r["latency_ms"] <= 1e3 * deadline_s):
            r["binds"] = "deadline"
        else:
            r["binds"] = None
    fits_memory = [r for r in rows if r["binds"] != "memory"]
    feasible = [r for r in rows if r["binds"] is None]
    if not feasible:
        if not fits_memory:
            least = min(rows, key=lambda r: r["memory_bytes"])
            raise InfeasibleError(
                f"memory binds: the smallest device footprint (cut {least['cut']}, "
                f"w = {least['handover']}) is {least['memory_bytes'] / 1e6:.1f} MB "
                f"> M_ar = {memory_bytes / 1e6:.1f} MB",
                "memory",
            )
        fastest = min(r["latency_ms"] for r in fits_memory)
        if not math.isfinite(fastest):
            raise InfeasibleError(
                f"deadline binds: the link is always in outage at {link.rate_bps:g} bit/s "
                f"over {link.bandwidth_hz:g} Hz (no finite transmission time)",
                "deadline",
            )
        raise InfeasibleError(
            f"deadline binds: the fastest handover within memory takes {fastest:.1f} ms "
            f"> D = {1e3 * deadline_s:.1f} ms",
            "deadline",
        )
    best = min(feasible, key=lambda r: (round(r["total_ms"], 6), -r["cut"], -r["handover"]))
    return Plan(
        cut=best["cut"],
        handover=best["handover"],
        latency_ms=best["latency_ms"],
        total_ms=best["total_ms"],
        memory_bytes=best["memory_bytes"],
        bytes_up=best["bytes_up"],
        considered=len(rows),
        table=rows,
    )


def row_bytes_for(codec_name: str, hidden: int, options: dict | None = None) -> Callable:
    """(ℓ, rows) → message bytes: exact for raw / fp16, the codec's size bound for SLICER
    (known before encoding, as SLICER-Search does); for frames the frame bound per row, plus,
    for a message of several rows (prefill / handover), a context estimate (an all-zero
    calibration's context + one table byte per symbol)."""
    if codec_name == "raw":
        return lambda cut, rows: FRAMING_BYTES + 4.0 * rows * hidden
    if codec_name == "fp16":
        return lambda cut, rows: FRAMING_BYTES + 2.0 * rows * hidden
    if codec_name == "slicer":
        import numpy as np

        import slicer

        opts = {"groups": "rows", **(options or {})}
        opts.pop("threads", None)
        cache: dict[int, float] = {}

        def size(cut: int, rows: int) -> float:
            if rows not in cache:
                cache[rows] = FRAMING_BYTES + slicer.size_bound((rows, hidden), np.float32, **opts)
            return cache[rows]

        return size
    if codec_name == "frames":
        import numpy as np

        import slicer

        opts = dict(options or {})
        if opts.get("step") is None:  # rel_error: the step depends on the rows; bound at 1.0
            opts = {**opts, "step": 1.0, "rel_error": None}
        enc = slicer.FrameEncoder(np.zeros((1, hidden), np.float32), **opts)
        frame = float(enc._h.frame_bound)
        context = float(len(enc.context)) + 2.0 + 423.0

        def frames_size(cut: int, rows: int) -> float:
            extra = context + 3.0 * (rows - 1) if rows > 1 else 0.0
            return FRAMING_BYTES + rows * frame + extra

        return frames_size
    raise ValueError(f"codec must be 'raw', 'fp16', 'slicer' or 'frames', got {codec_name!r}")
