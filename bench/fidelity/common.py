"""Shared parts of the fidelity benches: the codec settings and the NumPy peers, the
measurement loop over (cut × setting × input), JSON output and plots.

Every setting maps one cut tensor to (what the server receives, bytes sent). Side tensors of
a cut (masks, shape scalars) always travel raw and their bytes are counted.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

import slicer
from slicer.split import SplitModel
from slicer.split.transport import coded_names

PLOTS = Path(__file__).resolve().parent.parent / "plots"
SPARSITIES = (0.5, 0.7, 0.8, 0.9, 0.95)

Codec = Callable[[np.ndarray], tuple[np.ndarray, int]]


@dataclass(frozen=True)
class Setting:
    name: str
    family: str  # "slicer", "ablation", "peer" or "uncompressed"
    fn: Codec
    params: dict[str, Any]


# ----------------------------------------------------------------------- SLICER codec


def slicer_setting(
    sparsity: float,
    *,
    bits: int = 8,
    blocks: int = 3,
    delta: float = 0.01,
    groups: str = "tensor",
    family: str = "slicer",
    label: str = "",
) -> Setting:
    kwargs = {
        "sparsity": sparsity,
        "bits": bits,
        "blocks": blocks,
        "delta": delta,
        "groups": groups,
    }

    def fn(x: np.ndarray) -> tuple[np.ndarray, int]:
        stream = slicer.encode(np.ascontiguousarray(x, dtype=np.float32), **kwargs)
        return np.asarray(slicer.decode(stream)).reshape(x.shape), len(stream)

    name = label or f"slicer s={sparsity:g} q={bits} M={blocks} δ={delta:g} {groups}"
    return Setting(name, family, fn, kwargs)


# ----------------------------------------------------------------------- NumPy peers


def _quantize(x: np.ndarray, bits: int) -> np.ndarray:
    """Asymmetric per-tensor min/max integer quantization, dequantized."""
    lo, hi = float(x.min()), float(x.max())
    if hi == lo:
        return np.full_like(x, lo)
    levels = (1 << bits) - 1
    step = (hi - lo) / levels
    q = np.clip(np.floor((x.astype(np.float64) - lo) / step + 0.5), 0, levels)
    return (lo + q * step).astype(np.float32)


def fp16_setting() -> Setting:
    def fn(x: np.ndarray) -> tuple[np.ndarray, int]:
        return x.astype(np.float16).astype(np.float32), 2 * x.size

    return Setting("fp16", "peer", fn, {"bits": 16})


def int_setting(bits: int) -> Setting:
    def fn(x: np.ndarray) -> tuple[np.ndarray, int]:
        return _quantize(x, bits), (x.size * bits + 7) // 8 + 8  # + min and max (fp32)

    return Setting(f"int{bits} per tensor", "peer", fn, {"bits": bits})


def _topk_mask(x: np.ndarray, sparsity: float) -> np.ndarray:
    flat = np.abs(x.ravel())
    k = int(np.floor(flat.size * (1 - sparsity)))
    mask = np.zeros(flat.size, dtype=bool)
    if k > 0:
        mask[np.argpartition(-flat, k - 1)[:k]] = True
    return mask.reshape(x.shape)


def _position_bytes(n: int, k: int) -> int:
    """The cheaper of a bitmap (n bits) and 32-bit CSR indices (32 k bits)."""
    return min((n + 7) // 8, 4 * k)


def topk_int8_setting(sparsity: float) -> Setting:
    """What a user writes today: top-k by magnitude, one int8 range over the kept values."""

    def fn(x: np.ndarray) -> tuple[np.ndarray, int]:
        mask = _topk_mask(x, sparsity)
        out = np.zeros_like(x, dtype=np.float32)
        kept = x[mask]
        if kept.size:
            out[mask] = _quantize(kept, 8)
        return out, kept.size + _position_bytes(x.size, kept.size) + 8

    return Setting(f"top-k+int8 s={sparsity:g}", "peer", fn, {"sparsity": sparsity, "bits": 8})


def topk_exact_setting(sparsity: float) -> Setting:
    """Ablation floor: top-k with float32 values (no quantization at all)."""

    def fn(x: np.ndarray) -> tuple[np.ndarray, int]:
        mask = _topk_mask(x, sparsity)
        out = np.where(mask, x, 0).astype(np.float32)
        k = int(mask.sum())
        return out, 4 * k + _position_bytes(x.size, k)

    return Setting(
        f"top-k only (fp32 values) s={sparsity:g}",
        "ablation",
        fn,
        {"sparsity": sparsity, "bits": 32},
    )


def ablation_settings(
    sparsity: float, groups: str = "tensor", bits: int = 8, delta: float = 0.01, exact: bool = True
) -> list[Setting]:
    """Paper Table 4 in spirit: top-k only, + magnitude-split blocks, + ABQ, at one sparsity."""
    out = [topk_exact_setting(sparsity)] if exact else []
    return out + [
        slicer_setting(
            sparsity,
            bits=bits,
            blocks=1,
            delta=0.0,
            groups=groups,
            family="ablation",
            label=f"ATKF + 1 range {bits}-bit s={sparsity:g}",
        ),
        slicer_setting(
            sparsity,
            bits=bits,
            blocks=3,
            delta=0.0,
            groups=groups,
            family="ablation",
            label=f"ATKF + MS(3) {bits}-bit s={sparsity:g}",
        ),
        slicer_setting(
            sparsity,
            bits=bits,
            blocks=3,
            delta=delta,
            groups=groups,
            family="ablation",
            label=f"ATKF + MS(3) + ABQ δ={delta:g} {bits}-bit s={sparsity:g}",
        ),
    ]


def peer_settings(sparsities: Iterable[float] = (0.5, 0.8, 0.9)) -> list[Setting]:
    return [fp16_setting(), int_setting(8), int_setting(4)] + [
        topk_int8_setting(s) for s in sparsities
    ]


# ----------------------------------------------------------------------- measurement


def apply_setting(
    setting: Setting, cut_values: dict[str, np.ndarray]
) -> tuple[dict[str, np.ndarray], int, int]:
    """The server's view of a cut, bytes sent (side tensors included), elements that went
    through the codec."""
    shapes = {n: tuple(v.shape) for n, v in cut_values.items()}
    dtypes = {n: str(v.dtype) for n, v in cut_values.items()}
    coded = set(coded_names(shapes, dtypes))
    out, sent, elements = {}, 0, 0
    for name, value in cut_values.items():
        if name in coded:
            out[name], nbytes = setting.fn(value)
            out[name] = out[name].astype(value.dtype)
            sent += nbytes
            elements += value.size
        else:
            out[name] = value
            sent += value.nbytes
    return out, sent, elements


def sweep(
    split: SplitModel,
    head_values: Sequence[dict[str, np.ndarray]],
    settings: Sequence[Setting],
    score: Callable[[int, dict[str, np.ndarray]], dict[str, float]],
    desc: str,
) -> list[dict[str, Any]]:
    """Run every setting over every input's cut tensors; ``score(i, outputs)`` → metrics."""
    from tqdm import tqdm

    rows = []
    bar = tqdm(total=len(settings) * len(head_values), desc=desc, unit="run", file=sys.stderr)
    for setting in settings:
        metrics: list[dict[str, float]] = []
        sent_total, elem_total, side_total, start = 0, 0, 0, time.perf_counter()
        for i, values in enumerate(head_values):
            received, sent, elements = apply_setting(setting, values)
            side_total += sum(v.nbytes for n, v in values.items() if received[n] is v)
            outputs = split.run_tail(received)
            metrics.append(score(i, outputs))
            sent_total += sent
            elem_total += elements
            bar.update(1)
        row = {
            "setting": setting.name,
            "family": setting.family,
            "params": setting.params,
            "bytes_per_input": sent_total / len(head_values),
            "bits_per_element": 8 * sent_total / max(elem_total, 1),
            "side_bytes_per_input": side_total / len(head_values),
            "elements_per_input": elem_total / len(head_values),
            "seconds": time.perf_counter() - start,
        }
        for key in metrics[0]:
            row[key] = float(np.mean([m[key] for m in metrics]))
        rows.append(row)
    bar.close()
    return rows


def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--threads", type=int, default=2, help="ORT intra-op threads")
    p.add_argument("--out", default=None, help="JSON output (default bench/plots/<name>.json)")
    return p


def environment() -> dict[str, Any]:
    import onnxruntime

    return {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "onnxruntime": onnxruntime.__version__,
        "slicer": slicer.__version__,
        "cpu_count": __import__("os").cpu_count(),
    }


def write_json(name: str, payload: dict[str, Any], out: str | None) -> Path:
    path = Path(out) if out else PLOTS / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=1))
    return path


def replot(name: str, title: str, metric: str, ylabel: str, *, log_y: bool = False) -> Path:
    """Redraw a plot from its saved JSON (no model runs)."""
    data = json.loads((PLOTS / f"{name}.json").read_text())
    return plot(name, title, data["results"], metric, ylabel, log_y=log_y)


def plot(
    name: str,
    title: str,
    results: dict[str, list[dict[str, Any]]],
    metric: str,
    ylabel: str,
    *,
    log_y: bool = False,
) -> Path:
    """Fidelity against bits per element: one line per cut for the codec, peers as markers."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    markers = {"fp16": "s", "int8 per tensor": "^", "int4 per tensor": "v"}
    for cut, rows in results.items():
        parts = [p for p in cut.split("/") if p]
        short = "/".join(parts[:-1][:2]) or cut  # "/_blocks.9/Add_output_0" -> _blocks.9
        color = None
        for groups, style in (("tensor", "-o"), ("rows", "--o")):
            pts = sorted(
                (r["bits_per_element"], r[metric])
                for r in rows
                if r["family"] == "slicer" and metric in r and r["params"].get("groups") == groups
            )
            if pts:
                (line,) = ax.plot(
                    *zip(*pts, strict=True),
                    style,
                    color=color,
                    label=f"SLICER ({groups}) @ {short}",
                )
                color = line.get_color()
        for r in rows:
            if r["family"] == "peer" and metric in r and not r["setting"].startswith("top-k"):
                mk = markers.get(r["setting"], "x")
                ax.plot(r["bits_per_element"], r[metric], mk, color=color, alpha=0.7)
        topk = sorted(
            (r["bits_per_element"], r[metric])
            for r in rows
            if r["setting"].startswith("top-k+int8") and metric in r
        )
        if topk:
            ax.plot(*zip(*topk, strict=True), ":x", color=color, alpha=0.7)
    ax.plot([], [], "ks", label="fp16")
    ax.plot([], [], "k^", label="int8 per tensor")  # noqa: E702
    ax.plot([], [], "kv", label="int4 per tensor")
    ax.plot([], [], "k:x", label="top-k + int8 (bitmap/CSR)")
    ax.set_xscale("log", base=2)
    if log_y:
        ax.set_yscale("log")
    ax.set_xlabel("bits per element of the intermediate feature")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    path = PLOTS / f"{name}.png"
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
