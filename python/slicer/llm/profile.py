"""Measured per-cut costs for the AR planner: step times and device memory per ℓ.

Time. Every graph (head ℓ, tail ℓ) is timed as ``t(rows, P) = call + row · rows + past · P``
(ms; P = rows already in its KV cache) from a prefill of ``rows`` rows at P = 0, one-row steps
at P = rows and one-row steps at a long P (a zero KV cache of that length: the cost does not
depend on the values). Head and tail are measured at a few cuts only (the ones already
exported when they span the model, else three spread ones), interleaved so that a load spike
hits all of them alike, and each term is fitted as

    head(ℓ) = h + ℓ · layer        tail(ℓ) = t + (L − ℓ) · layer

(least squares, one per-layer cost shared by head and tail: the layers are the same), which
gives every cut 1..L-1. The full device model (fp32 or int8) is measured as it is. With one
ORT thread the times are the CPU time of the calling thread (ORT runs the graph there): what a
step costs on an idle core, unmoved by the load of a shared machine; with more threads, wall
time.

Memory. The peak resident memory (``VmHWM``) of a fresh process holding the device side
(:class:`~slicer.llm.sessions.EdgeSession`: head ℓ, optionally the full device model) after a
prefill and decode steps is measured at the same cuts, a few times each, and fitted as
``peak(ℓ) = base + factor · weights(head ℓ)``; holding a full device model as well adds its
measured extra (peak with it − peak without, same cut). The KV caches come on top (twice:
the past and the present arrays coexist during a step). ``margin`` is the largest relative
excess of any measured peak over the fit (at least :data:`MIN_MARGIN`), and every prediction
is multiplied by ``1 + margin``, so each calibration run lies under it.

Profiles are cached as JSON beside the graphs (the model directory is named by the weights'
fingerprint), per machine, ORT version and thread count.
"""

from __future__ import annotations

import hashlib
import json
import mmap
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import export

PROFILE_VERSION = 1
MIN_MARGIN = 0.05  # floor of the memory margin: run-to-run spread not seen in few runs
DEFAULT_ROWS = 32  # prefill rows of the timing runs
LONG_PAST = 512  # P of the long-context steps
TOKEN_BYTES = 2.0 * mmap.PAGESIZE  # resident bytes a new token's embedding row can add


# --------------------------------------------------------------------------- memory model


@dataclass(frozen=True)
class MemoryModel:
    """Device peak resident bytes:
    (base + factor · weights + extra + 2 · KV + token_bytes · tokens) · (1 + margin).

    ``extra`` is keyed by the device model ("fp32" / "int8") held beside the head. The default
    (base 0, factor 1, no margin) counts the weights once: the model before calibration.
    ``token_bytes`` bounds what each distinct token adds: the weights are mapped from their file,
    so an embedding row becomes resident when a token first reads it (at most two pages per row
    and graph); the calibration runs repeat one token, so the fit does not contain it.
    """

    base: float = 0.0
    factor: float = 1.0
    margin: float = 0.0
    extra: tuple[tuple[str, float], ...] = ()
    kv_factor: float = 1.0
    token_bytes: float = 0.0

    def predict(
        self,
        head_weights: float,
        kv_bytes: float,
        device_model: str | None = None,
        device_bytes: float = 0.0,
        tokens: int = 0,
    ) -> float:
        """Peak bytes holding head weights + KV (+ a device model: its measured extra when
        calibrated, else ``factor · device_bytes``) after ``tokens`` distinct tokens."""
        extra = 0.0
        if device_model is not None:
            table = dict(self.extra)
            extra = table[device_model] if device_model in table else self.factor * device_bytes
        body = self.base + self.factor * head_weights + extra + self.kv_factor * kv_bytes
        body += self.token_bytes * tokens * (2 if device_model is not None else 1)
        return body * (1.0 + self.margin)

    def to_json(self) -> dict:
        return {**self.__dict__, "extra": dict(self.extra)}

    @classmethod
    def from_json(cls, data: dict) -> MemoryModel:
        # a fitted model saved before token_bytes existed gets the same bound
        data = {"token_bytes": TOKEN_BYTES, **data}
        return cls(**{**data, "extra": tuple(sorted(data["extra"].items()))})


def fit_memory(points: Sequence[dict], min_margin: float = MIN_MARGIN) -> MemoryModel:
    """Fit :class:`MemoryModel` to measured peaks.

    points: dicts with ``head_weights`` (bytes), ``kv_bytes``, ``device_model`` (None, "fp32",
    "int8") and ``peak`` (bytes). Head-only points fix base and factor (least squares, at least
    two distinct weights); a device-model point adds its excess over the head-only fit.
    """
    heads = [p for p in points if p["device_model"] is None]
    sizes = {p["head_weights"] for p in heads}
    if len(sizes) < 2:
        raise ValueError("memory fit needs head-only peaks at two or more cuts")
    a = np.array([[1.0, p["head_weights"]] for p in heads])
    y = np.array([p["peak"] - 2.0 * p["kv_bytes"] for p in heads])
    (base, factor), *_ = np.linalg.lstsq(a, y, rcond=None)
    factor = max(float(factor), 0.0)
    base = float(np.mean(y - factor * a[:, 1]))
    extra: dict[str, list[float]] = {}
    for p in points:
        if p["device_model"] is not None:
            rest = p["peak"] - (base + factor * p["head_weights"] + 2.0 * p["kv_bytes"])
            extra.setdefault(p["device_model"], []).append(rest)
    model = MemoryModel(
        base=base,
        factor=factor,
        extra=tuple(sorted((k, float(np.median(v))) for k, v in extra.items())),
        kv_factor=2.0,
    )
    worst = max(
        p["peak"] / model.predict(p["head_weights"], p["kv_bytes"], p["device_model"])
        for p in points
    )
    return MemoryModel(
        base=model.base,
        factor=model.factor,
        extra=model.extra,
        kv_factor=model.kv_factor,
        margin=max(min_margin, float(worst) - 1.0),
        token_bytes=TOKEN_BYTES,
    )


def head_weight_bytes(name: str, cut: int) -> float:
    """Bytes of the head graph's weights (the file when exported, else counted parameters)."""
    path = export.model_dir(name) / f"head-{cut}.onnx"
    if path.exists():
        return float(export.graph_bytes(path))
    info = export.model_info(name)
    return 4.0 * (info.embed_params + cut * info.layer_params)


_MEMORY_CHILD = r"""
import json, sys
import numpy as np
import onnxruntime  # noqa: F401  (in the baseline)
from slicer.llm.sessions import EdgeSession

def hwm():  # VmHWM restarts at exec (ru_maxrss would keep the parent's peak)
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return 1024 * int(line.split()[1])

model, cut, prompt, steps, device, local = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), \
    int(sys.argv[4]), sys.argv[5], int(sys.argv[6])
base = hwm()
edge = EdgeSession(model, cut, "raw", device_model=None if device == "none" else device)
edge.start(np.full(prompt, 100))
if device != "none":
    for _ in range(local):
        edge.local_step()
edge.offload()
for _ in range(steps - local):
    edge.tokens.append(100)
    edge.step += 1
    edge.decode_message()
print(json.dumps({"baseline": base, "peak": hwm(), "kv_bytes": edge.head.kv_bytes()}))
"""


def measure_memory(
    name: str,
    cut: int,
    device_model: str | None = None,
    prompt: int = 64,
    steps: int = 64,
    local: int | None = None,
) -> dict:
    """Peak resident bytes of a fresh process running the device side: ``prompt`` prompt rows,
    then ``steps`` tokens, the first ``local`` of them (default 4 with a device model) on the
    device model, then the handover and decode steps through the head."""
    if local is None:
        local = min(steps, 4) if device_model is not None else 0
    if not 0 <= local <= steps or (local and device_model is None):
        raise ValueError(f"local steps must be in 0..steps and need a device model, got {local}")
    export.graph_path(name, "head", cut)
    if device_model == "int8":
        export.int8_graph_path(name)
    elif device_model == "fp32":
        export.graph_path(name, "full")
    res = subprocess.run(
        [
            sys.executable,
            "-c",
            _MEMORY_CHILD,
            name,
            str(cut),
            str(prompt),
            str(steps),
            device_model or "none",
            str(local),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if res.returncode != 0:
        raise RuntimeError(f"memory probe failed: {res.stderr.strip()[-2000:]}")
    data = json.loads(res.stdout.strip().splitlines()[-1])
    info = export.model_info(name)
    kv_device = 0.0
    if device_model is not None:  # the device model's cache over the local steps
        kv_device = info.kv_bytes_per_token_per_layer * info.layers * (prompt + local)
    return {
        "cut": cut,
        "device_model": device_model,
        "local": local,
        "head_weights": head_weight_bytes(name, cut),
        "kv_bytes": float(data["kv_bytes"]) + kv_device,
        "peak": float(data["peak"]),
        "baseline": float(data["baseline"]),
    }


# --------------------------------------------------------------------------- time model


def _timed(fn: Callable[[], object]) -> tuple[float, float]:
    """(wall ms, CPU ms of this thread). With one ORT thread the graph runs on the calling
    thread, so its CPU time is what the run costs on an otherwise idle core."""
    wall, cpu = time.perf_counter(), time.thread_time()
    fn()
    return 1e3 * (time.perf_counter() - wall), 1e3 * (time.thread_time() - cpu)


class _Probe:
    """One graph under test: prefill, short-past steps and long-past steps, one at a time."""

    def __init__(
        self,
        path: Path,
        info: export.ModelInfo,
        layers: range,
        embed: bool,
        rows: int,
        threads: int,
    ) -> None:
        from .sessions import _Stack

        self.stack = _Stack(path, info, layers, threads)
        self.info = info
        self.rows = rows
        if embed:
            self.x_many = np.full((1, rows), 100, np.int64)
        else:
            rng = np.random.default_rng(0)
            self.x_many = rng.standard_normal((1, rows, info.hidden)).astype(np.float32)
        self.x_one = self.x_many[:, :1]
        shape = (1, info.kv_heads, LONG_PAST, info.head_dim)
        self.long_kv = {k: np.zeros(shape, np.float32) for k in self.stack.kv}
        self.kv_short = self.stack.kv
        self.clear()

    def clear(self) -> None:
        self.times: dict[str, list[tuple[float, float]]] = {"prefill": [], "short": [], "long": []}

    def run_all(self) -> None:
        self.stack.reset()
        self.times["prefill"].append(_timed(lambda: self.stack.run(self.x_many, 0)))
        self.kv_short = self.stack.kv
        self.times["short"].append(_timed(lambda: self.stack.run(self.x_one, self.rows)))
        self.stack.kv = self.long_kv
        self.times["long"].append(_timed(lambda: self.stack.run(self.x_one, LONG_PAST)))

    def terms(self, clock: int) -> dict:
        """call, row and past ms from the medians (clipped at 0); clock 0 wall, 1 CPU."""
        tp, s1, s2 = (
            statistics.median(t[clock] for t in self.times[k]) for k in ("prefill", "short", "long")
        )
        past = max((s2 - s1) / (LONG_PAST - self.rows), 0.0)
        row = max((tp - s1 + past * self.rows) / (self.rows - 1), 0.0)
        call = max(s1 - row - past * self.rows, 0.0)
        return {
            "call": call,
            "row": row,
            "past": past,
            "prefill_ms": tp,
            "step_ms": s1,
            "long_step_ms": s2,
        }


def measure_graphs(
    name: str,
    cuts: Sequence[int],
    *,
    device_model: str | None = "fp32",
    rows: int = DEFAULT_ROWS,
    repeats: int = 7,
    threads: int = 1,
    progress: bool = False,
) -> dict:
    """Time head ℓ and tail ℓ at each cut (and the full device model), interleaved.

    Returns {"cpu": {graph: terms}, "wall": {graph: terms}} (see :meth:`_Probe.terms`)."""
    info = export.model_info(name)
    probes: dict[str, _Probe] = {}
    for cut in cuts:
        export.check_cut(info, cut)
        probes[f"head-{cut}"] = _Probe(
            export.graph_path(name, "head", cut), info, range(cut), True, rows, threads
        )
        probes[f"tail-{cut}"] = _Probe(
            export.graph_path(name, "tail", cut),
            info,
            range(cut, info.layers),
            False,
            rows,
            threads,
        )
    if device_model is not None:
        path = (
            export.int8_graph_path(name)
            if device_model == "int8"
            else export.graph_path(name, "full")
        )
        probes["full"] = _Probe(path, info, range(info.layers), True, rows, threads)
    for p in probes.values():  # warm-up (first runs allocate)
        p.run_all()
        p.clear()
    rounds = range(repeats)
    if progress:
        from tqdm import tqdm

        rounds = tqdm(rounds, desc=f"profiling {name}", unit="round", file=sys.stderr)
    for _ in rounds:
        for p in probes.values():
            p.run_all()
    return {
        "cpu": {key: p.terms(1) for key, p in probes.items()},
        "wall": {key: p.terms(0) for key, p in probes.items()},
    }


def fit_layers(info: export.ModelInfo, graphs: dict) -> dict:
    """Per-term least squares: head(ℓ) = h + ℓ·layer, tail(ℓ) = t + (L−ℓ)·layer.

    graphs: {"head-ℓ": {"call", "row", "past"}, "tail-ℓ": {...}} for two or more cuts.
    Returns {"head": {term: h}, "tail": {term: t}, "layer": {term: per-layer}}.
    """
    keys = [k for k in graphs if k.startswith(("head-", "tail-"))]
    cuts = {int(k.split("-")[1]) for k in keys}
    if len(cuts) < 2:
        raise ValueError("the per-layer fit needs head and tail graphs at two or more cuts")
    design, index = [], []
    for k in keys:
        part, cut = k.split("-")
        layers = int(cut) if part == "head" else info.layers - int(cut)
        design.append([part == "head", part == "tail", layers])
        index.append(k)
    a = np.array(design, dtype=np.float64)
    out: dict[str, dict[str, float]] = {"head": {}, "tail": {}, "layer": {}}
    for term in ("call", "row", "past"):
        y = np.array([graphs[k][term] for k in index])
        (h, t, layer), *_ = np.linalg.lstsq(a, y, rcond=None)
        out["head"][term] = max(float(h), 0.0)
        out["tail"][term] = max(float(t), 0.0)
        out["layer"][term] = max(float(layer), 0.0)
    return out


def predict_graph(info: export.ModelInfo, fit: dict, part: str, cut: int) -> tuple:
    """(call, row, past) ms of head ℓ or tail ℓ from the per-layer fit."""
    layers = cut if part == "head" else info.layers - cut
    return tuple(fit[part][t] + layers * fit["layer"][t] for t in ("call", "row", "past"))


def default_cuts(name: str) -> list[int]:
    """Cuts to measure: up to three cached ones (head and tail) spanning ≥ a third of the
    model, else three spread ones (L/6, L/2, 5L/6)."""
    info = export.model_info(name)
    folder = export.model_dir(name)
    cached = sorted(
        c
        for c in range(1, info.layers)
        if (folder / f"head-{c}.onnx").exists() and (folder / f"tail-{c}.onnx").exists()
    )
    if len(cached) >= 2 and cached[-1] - cached[0] >= info.layers / 3:
        middle = min(cached, key=lambda c: abs(c - (cached[0] + cached[-1]) / 2))
        return sorted({cached[0], middle, cached[-1]})
    spread = {
        max(1, round(info.layers / 6)),
        info.layers // 2,
        min(info.layers - 1, round(5 * info.layers / 6)),
    }
    return sorted(spread)


def machine_key(threads: int) -> str:
    import onnxruntime

    cpu = platform.processor()
    try:
        for line in open("/proc/cpuinfo"):  # noqa: SIM115
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    text = f"{platform.node()}|{cpu}|{os.cpu_count()}|{onnxruntime.__version__}|{threads}"
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def profile_path(name: str, device_model: str, threads: int) -> Path:
    return export.model_dir(name) / (
        f"profile-v{PROFILE_VERSION}-{device_model}-t{threads}-{machine_key(threads)}.json"
    )


def measure_profile(
    name: str,
    *,
    device_model: str = "fp32",
    cuts: Sequence[int] | None = None,
    threads: int = 1,
    repeats: int = 7,
    memory_runs: int = 2,
    progress: bool = True,
) -> dict:
    """Measure times and memory at a few cuts and fit the per-layer and memory models."""
    info = export.model_info(name)
    cuts = sorted(set(default_cuts(name) if cuts is None else cuts))
    began = time.perf_counter()
    timed = measure_graphs(
        name,
        cuts,
        device_model=device_model,
        repeats=repeats,
        threads=threads,
        progress=progress,
    )
    # One ORT thread runs on the calling thread: its CPU time is the idle machine's wall time
    # and does not move with the load of a shared machine. More threads: wall time.
    clock = "cpu" if threads == 1 else "wall"
    graphs = timed[clock]
    fit = fit_layers(info, graphs)
    points = []
    cases = [(c, None) for c in cuts] + [(cuts[0], device_model)]
    for _ in range(memory_runs):
        for cut, dev in cases:
            points.append(measure_memory(name, cut, dev))
    memory = fit_memory(points)
    return {
        "version": PROFILE_VERSION,
        "model": name,
        "fingerprint": info.fingerprint,
        "machine": machine_key(threads),
        "threads": threads,
        "device_model": device_model,
        "cuts": cuts,
        "clock": clock,
        "graphs": graphs,
        "graphs_wall": timed["wall"],
        "fit": fit,
        "memory_points": points,
        "memory": memory.to_json(),
        "seconds": round(time.perf_counter() - began, 1),
    }


def load_profile(
    name: str,
    *,
    device_model: str = "fp32",
    threads: int = 1,
    refresh: bool = False,
    measure: Callable[..., dict] | None = None,
    **kwargs,
) -> tuple[dict, bool]:
    """(profile dict, whether it came from the cache); measured and cached when missing."""
    path = profile_path(name, device_model, threads)
    if path.exists() and not refresh:
        data = json.loads(path.read_text())
        if data.get("fingerprint") == export.model_info(name).fingerprint:
            return data, True
    data = (measure or measure_profile)(name, device_model=device_model, threads=threads, **kwargs)
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    tmp.write_text(json.dumps(data, indent=1))
    os.replace(tmp, path)
    return data, False
