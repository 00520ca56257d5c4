"""Task-aware step allocation of the dense codec (RESULTS §9.5): per-group steps from the task's
sensitivity (slicer.split.sensitivity) against one step for the tensor.

    python bench/fidelity/task_steps.py effnet     # EfficientNet-Lite0 after blocks 4 and 10
    python bench/fidelity/task_steps.py minilm     # MiniLM-L6 after layer 3
    python bench/fidelity/task_steps.py plot       # redraw bench/plots/task_steps.png

Two folds: the importance w_g is estimated on calibration inputs of one half of the data and
used to code the other half (photos 0-9 / 10-19; sentences 0-99 / 100-199), so every scored
input is held out. Every setting codes the cut with real streams, everything counted:
``slicer.encode(x, mode=..., max_bytes=B*N/8, groups=..., weights=w**alpha)``. MiniLM's side
tensors (the attention mask and the additive mask derived from it, 12 bytes per token) are
counted raw ("side raw") and losslessly zlib-coded ("side zlib", what they cost when sent as
deflated bytes; the receiver knows their dtype and shape from the graph and T).
"""

from __future__ import annotations

import json
import sys
import time
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

import slicer
from slicer.split import Partitioner, SplitModel, zoo
from slicer.split.fidelity import cosine, log_softmax
from slicer.split.sensitivity import group_importance
from slicer.split.transport import coded_names

RESULTS = Path(__file__).resolve().parent.parent / "results"
PLOTS = Path(__file__).resolve().parent.parent / "plots"


def coder(bpe: float, groups: str, mode: str = "auto", rho: float | None = None) -> Callable:
    """x, weights -> (decoded x, stream bytes) at B*N/8 bytes."""

    def fn(x: np.ndarray, w: np.ndarray | None, axis_last: bool) -> tuple[np.ndarray, int]:
        x32 = np.ascontiguousarray(x, dtype=np.float32)
        if axis_last:  # token matrix [.., T, C]: code [T, C] so "channels" = hidden channels
            x32 = x32.reshape(-1, x32.shape[-1])
        kw: dict[str, Any] = {"groups": groups}
        if w is not None:
            kw["weights"] = w
        if rho is not None:
            kw["rho"] = rho
        stream = slicer.encode(x32, mode=mode, max_bytes=max(64, int(bpe * x32.size / 8)), **kw)
        return np.asarray(slicer.decode(stream)).reshape(x.shape), len(stream)

    return fn


def side_bytes(value: np.ndarray, how: str) -> int:
    return value.nbytes if how == "raw" else len(zlib.compress(value.tobytes(), 9))


def run_settings(
    split: SplitModel,
    heads: list[dict[str, np.ndarray]],
    fold: np.ndarray,
    weights: dict[int, np.ndarray],
    settings: list[dict[str, Any]],
    score: Callable[[int, dict], dict[str, float]],
    axis_last: bool,
    desc: str,
) -> list[dict[str, Any]]:
    """Every setting over every input; weights[fold[i]] ** alpha codes input i."""
    name = coded_names(
        {k: tuple(v.shape) for k, v in heads[0].items()},
        {k: str(v.dtype) for k, v in heads[0].items()},
    )[0]
    rows = []
    bar = tqdm(total=len(settings) * len(heads), desc=desc, unit="run", file=sys.stderr)
    for s in settings:
        sent = {"raw": 0, "zlib": 0}
        elements, metrics = 0, []
        for i, h in enumerate(heads):
            alpha = s.get("alpha")
            w = None if alpha is None else weights[int(fold[i])] ** alpha
            xhat, nbytes = s["fn"](h[name], w, axis_last)
            received = dict(h)
            received[name] = xhat.astype(h[name].dtype)
            for how in sent:
                sent[how] += nbytes + sum(side_bytes(v, how) for k, v in h.items() if k != name)
            elements += h[name].size
            metrics.append(score(i, split.run_tail(received)))
            bar.update(1)
        row = {k: v for k, v in s.items() if k != "fn"}
        row["bits_per_element"] = 8 * sent["raw"] / elements
        row["bits_per_element_side_zlib"] = 8 * sent["zlib"] / elements
        for key in metrics[0]:
            row[key] = float(np.mean([m[key] for m in metrics]))
        rows.append(row)
    bar.close()
    return rows


def settings_grid(budgets: tuple[float, ...], rich: bool) -> list[dict[str, Any]]:
    out = []
    for b in budgets:
        out.append({"label": f"tensor B={b:g}", "bpe": b, "groups": "tensor",
                    "fn": coder(b, "tensor")})  # fmt: skip
        out.append({"label": f"channels RMS B={b:g}", "bpe": b, "groups": "channels",
                    "fn": coder(b, "channels")})  # fmt: skip
        for alpha in (0.5, 1.0):
            out.append({"label": f"channels w^{alpha:g} B={b:g}", "bpe": b, "groups": "channels",
                        "alpha": alpha, "fn": coder(b, "channels")})  # fmt: skip
    if rich:  # the rounding offset, with the best allocation and with none, at the middle B
        b = budgets[len(budgets) // 2]
        for rho in (0.5, 0.375, 0.28, 0.2):
            out.append({"label": f"tensor dense rho={rho:g} B={b:g}", "bpe": b, "rho": rho,
                        "groups": "tensor", "fn": coder(b, "tensor", "dense", rho)})  # fmt: skip
            out.append({"label": f"channels w^1 dense rho={rho:g} B={b:g}", "bpe": b,
                        "rho": rho, "groups": "channels", "alpha": 1.0,
                        "fn": coder(b, "channels", "dense", rho)})  # fmt: skip
    return out


def estimate(
    split: SplitModel, heads: list, name: str, calib: list[int], loss: str, out: str, axis: int
) -> np.ndarray:
    """Mean importance over the calibration inputs `calib` (one noise probe per group each)."""
    total = None
    for i in calib:
        h = heads[i]

        def tail(x: np.ndarray, h: dict = h) -> np.ndarray:
            return split.run_tail({**h, name: x})[out]

        w = group_importance(tail, [h[name]], axis=axis, loss=loss, seed=i)
        total = w if total is None else total + w
    return total / len(calib)


def effnet(threads: int = 2) -> dict[str, Any]:
    import effnet as fe

    part = Partitioner(zoo.model_path("efficientnet-lite0"))
    photos = zoo.imagenet_photos()
    samples, fold, calib_of = [], [], {0: [], 1: []}
    for p, (rgb, _label, _) in enumerate(photos):
        for ci, (c, o) in enumerate(fe.CROPS):
            for f in (False, True):
                if ci == 0:  # calibration: the centre crop (and its flip) of each photo
                    calib_of[int(p >= len(photos) // 2)].append(len(samples))
                samples.append(zoo.preprocess_image(rgb, crop=c, offset=o, flip=f))
                fold.append(int(p >= len(photos) // 2))
    fold_arr = np.array(fold)
    out: dict[str, Any] = {"inputs": len(samples), "cuts": {}}
    for name in fe.CUTS[:2]:
        split = SplitModel(part, name, providers="cpu", threads=threads)
        ref = [split.run_full({"image": x})["logits"][0] for x in samples]
        heads = [split.run_head({"image": x}) for x in samples]
        t0 = time.perf_counter()
        # weights for fold k are estimated on the other fold's calibration crops
        weights = {k: estimate(split, heads, name, calib_of[1 - k], "kl", "logits", 1)
                   for k in (0, 1)}  # fmt: skip
        est_s = time.perf_counter() - t0

        def score(i: int, outputs: dict, ref: list = ref) -> dict[str, float]:
            logits = outputs["logits"][0]
            lp, lq = log_softmax(ref[i][None]), log_softmax(logits[None])
            return {"top1_agreement": float(logits.argmax() == ref[i].argmax()),
                    "kl": float(np.sum(np.exp(lp) * (lp - lq)))}  # fmt: skip

        grid = settings_grid((1.5, 2.0, 2.5), True)
        rows = run_settings(split, heads, fold_arr, weights, grid, score, False,
                            name.split("/")[1])  # fmt: skip
        out["cuts"][name] = {"rows": rows, "estimate_seconds": est_s,
                             "calibration_inputs": len(calib_of[0]),
                             "weights": {k: v.tolist() for k, v in weights.items()}}  # fmt: skip
        print(f"EfficientNet-Lite0 {name}: weights estimated in {est_s:.0f} s "
              f"(spread max/min {weights[0].max() / weights[0].min():.1f})")  # fmt: skip
        for r in rows:
            print(f"  {r['label']:<34} {r['bits_per_element']:6.3f} b/el  "
                  f"agree {r['top1_agreement']:.3f}  KL {r['kl']:.4f}", flush=True)  # fmt: skip
    return out


def minilm(threads: int = 2, calib: int = 10) -> dict[str, Any]:
    import minilm as fm

    part = Partitioner(zoo.model_path("minilm"))
    tok = zoo.minilm_tokenizer()
    inputs = []
    for text in zoo.prose_sentences(fm.SENTENCES):
        enc = tok(text, return_tensors="np", truncation=True, max_length=128)
        inputs.append({"input_ids": enc["input_ids"].astype(np.int64),
                       "attention_mask": enc["attention_mask"].astype(np.int64)})  # fmt: skip
    half = len(inputs) // 2
    fold = np.array([int(i >= half) for i in range(len(inputs))])
    calib_of = {0: list(range(calib)), 1: list(range(half, half + calib))}
    name = fm.CUTS[1]
    split = SplitModel(part, name, providers="cpu", threads=threads)
    ref = [split.run_full(x)["embedding"][0] for x in inputs]
    heads = [split.run_head(x) for x in inputs]
    t0 = time.perf_counter()
    weights = {k: estimate(split, heads, name, calib_of[1 - k], "cosine", "embedding", -1)
               for k in (0, 1)}  # fmt: skip
    est_s = time.perf_counter() - t0

    def score(i: int, outputs: dict) -> dict[str, float]:
        return {"cosine": cosine(ref[i], outputs["embedding"][0])}

    rows = run_settings(split, heads, fold, weights, settings_grid((1.75, 2.0, 2.25), True),
                        score, True, "layer.3")  # fmt: skip
    print(f"MiniLM {name}: weights estimated in {est_s:.0f} s "
          f"(spread max/min {weights[0].max() / weights[0].min():.1f})")  # fmt: skip
    for r in rows:
        print(f"  {r['label']:<34} {r['bits_per_element']:6.3f} b/el "
              f"({r['bits_per_element_side_zlib']:6.3f} side zlib)  cosine {r['cosine']:.5f}",
              flush=True)  # fmt: skip
    return {"inputs": len(inputs), "cuts": {name: {
        "rows": rows, "estimate_seconds": est_s, "calibration_inputs": calib,
        "weights": {k: v.tolist() for k, v in weights.items()}}}}  # fmt: skip


def plot() -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = []
    for model, metric, x_key in (("effnet", "top1_agreement", "bits_per_element"),
                                 ("minilm", "cosine", "bits_per_element_side_zlib")):  # fmt: skip
        path = RESULTS / f"task_steps_{model}.json"
        if path.exists():
            data = json.loads(path.read_text())
            for cut, d in data["cuts"].items():
                panels.append((model, cut, metric, x_key, d["rows"]))
    llm = sorted(RESULTS.glob("task_steps_llm_cut*.json"))
    fig, axes = plt.subplots(
        1, len(panels) + len(llm), figsize=(4.4 * (len(panels) + len(llm)), 4.2), squeeze=False
    )
    for ax, path in zip(axes[0][len(panels) :], llm, strict=True):
        data = json.loads(path.read_text())
        for kind, style, label in (("frames q", "-o", "frames, one step per row"),
                                   ("frames w^1 q", "-v", "frames, step ∝ w^-1/2")):  # fmt: skip
            pts = sorted((v["bits_per_element"], v["kl_mean"])
                         for k, v in data["settings"].items() if k.startswith(kind))  # fmt: skip
            if pts:
                ax.plot(*zip(*pts, strict=True), style, label=label)
        ax.axhline(0.01, color="gray", lw=0.8, ls=":")
        ax.axvline(3.0, color="gray", lw=0.8, ls=":")
        ax.set_yscale("log")
        ax.set_title(f"SmolLM2 cut {data['cut']}, {data['tokens']} tokens", fontsize=9)
        ax.set_xlabel("bits per element per decode row (frame + framing)")
        ax.set_ylabel("teacher-forced KL")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7)
    for ax, (model, cut, metric, x_key, rows) in zip(axes[0], panels, strict=False):
        for kind, style in (("tensor", "-o"), ("channels RMS", "--s"), ("channels w^0.5", "-.^"),
                            ("channels w^1", "-v")):  # fmt: skip
            pts = sorted((r[x_key], r[metric]) for r in rows
                         if r["label"].startswith(kind + " B="))  # fmt: skip
            if pts:
                ax.plot(*zip(*pts, strict=True), style, label=kind)
        target = 0.99
        ax.axhline(target, color="gray", lw=0.8, ls=":")
        ax.axvline(2.0, color="gray", lw=0.8, ls=":")
        short = [p for p in cut.split("/") if p][0]
        ax.set_title(f"{model} {short}", fontsize=9)
        ax.set_xlabel("bits per element, all counted" + (" (side zlib)" if "zlib" in x_key else ""))
        ax.set_ylabel(metric)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    out = PLOTS / "task_steps.png"
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


if __name__ == "__main__":
    which = sys.argv[1] if len(sys.argv) > 1 else "effnet"
    if which == "plot":
        print(plot())
    else:
        result = {"effnet": effnet, "minilm": minilm}[which]()
        result["command"] = f"python bench/fidelity/task_steps.py {which}"
        result["slicer"] = slicer.__version__
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / f"task_steps_{which}.json").write_text(json.dumps(result, indent=1))
        print(plot())
