"""Calibrate the shipped models and compare with a fixed setting and per-channel int8.

    python bench/calibrate.py efficientnet-lite0 minilm smollm2 [--ship] [--quick]

For each model: ``slicer.split.calibrate`` at the cuts below with the model's default target
and data, the settings written to ``bench/results/calibrate_<model>.json`` (and, with
``--ship``, to the package's shipped ``settings/<model>.json``), a plot in
``bench/plots/calibrate_<model>.png``, and a table on stdout with, per cut and on the
held-out split: the calibrated bits/element and metric, the best single ("fixed") setting
that meets the target at every cut on the calibration split, the old default (s=0.9,
8 bits, 3 blocks, δ=0.01) and per-channel int8 (min/max per channel, 8 bits + two float32
per channel).

    python bench/calibrate.py efficientnet-lite0 --compare OTHER_SETTINGS.json

measures another settings file's per-cut choices (e.g. calibrated on other data) on the
held-out split of the data above, with the bootstrap interval, and searches nothing.

    python bench/calibrate.py minilm --classes SETTINGS.json [--count 16]

bits/element of the real streams at each cut's ``rel_step`` of SETTINGS (and one coarse step
either side) with one table, ``classes="auto"`` and K = 2, 4, 8, 16 on the first inputs of
the data above (the dense family's choice of tables; the decoded values are the same for
every choice, which it checks for ``auto``).

    python bench/calibrate.py efficientnet-lite0 minilm smollm2 --before 'OLD/{model}.json'

plots bits/element per cut, the settings in ``OLD`` against bench/results/calibrate_<model>.json,
with each held-out value and interval (bench/plots/calibrate_change.png); searches nothing.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from slicer.split import Partitioner, zoo
from slicer.split.calibrate import (
    REFINE,
    DenseFamily,
    _CutEvaluator,
    _fmt_metric,
    bootstrap_interval,
    calibrate,
    default_families,
    output_for,
    plot_settings,
    setting_text,
    split_indices,
)
from slicer.split.datasets import load_samples
from slicer.split.providers import make_session
from slicer.split.settings import (
    load_settings,
    save_settings,
    shipped_settings_path,
    targets_of,
)
from slicer.split.transport import CodecParams, coded_names

ROOT = Path(__file__).resolve().parent
# model -> (target, dataset, count, cuts)
PLAN = {
    # 82 source photos (datasets.gallery_images) in 4 views each; whole photos held out.
    "efficientnet-lite0": (
        "agreement:0.99",
        "gallery",
        328,
        [
            "/_blocks.4/Add_output_0",
            "/_blocks.8/_swish/Clip_output_0",
            "/_blocks.10/Add_output_0",
            "/_blocks.11/_swish/Clip_output_0",
            "/_blocks.14/Add_output_0",
        ],
    ),
    "minilm": (
        "cosine:0.99",
        "shakespeare",
        150,
        [
            "/layer.0/output/LayerNorm/LayerNormalization_output_0",
            "/layer.2/output/LayerNorm/LayerNormalization_output_0",
            "/layer.4/output/LayerNorm/LayerNormalization_output_0",
        ],
    ),
    # 128 chunks of 64 tokens, half held out (64 / 64, see HOLDOUT): a tight bootstrap interval.
    "smollm2": (
        "ppl:0.02",
        "shakespeare",
        128,
        ["/model.layers.4/add_944", "/model.layers.14/add_2834", "/model.layers.24/add_4724"],
    ),
}
# SmolLM2's tail costs ~0.05-0.3 CPU s per 64-token chunk here and a failing perplexity
# evaluation cannot stop early: the dense mode only, per tensor and per token row. (Top-k per
# token row at widths 8/6/5/4 failed at every cut with 24 chunks: +18 % perplexity or worse at
# <= 3.1 b/el, where dense passed at 2.2-3.0 b/el; RESULTS §12.)
FAMILIES = {
    "smollm2": lambda: [DenseFamily(groups=("tensor", "rows"))],
}
# Held-out fraction per model (default 0.3). SmolLM2: the search evaluates ~10 settings on
# the calibration split and the held-out split once, so half the chunks go to the held-out
# interval at the cost of one evaluation each.
HOLDOUT = {"smollm2": 0.5}
OLD_DEFAULT = CodecParams(sparsity=0.9, blocks=3, bits=8, delta=0.01)


def per_channel_int8(values: dict[str, np.ndarray]) -> tuple[dict[str, np.ndarray], int, int]:
    """Min/max 8-bit quantization per channel (axis 1 of NCHW, last axis of token rows)."""
    shapes = {n: tuple(v.shape) for n, v in values.items()}
    dtypes = {n: str(v.dtype) for n, v in values.items()}
    coded = set(coded_names(shapes, dtypes))
    out, nbytes, elements = {}, 0, 0
    for name, x in values.items():
        elements += x.size
        if name not in coded:
            out[name] = x
            nbytes += x.nbytes
            continue
        axis = 1 if x.ndim == 4 else x.ndim - 1
        moved = np.moveaxis(x.astype(np.float64), axis, 0).reshape(x.shape[axis], -1)
        lo = moved.min(axis=1, keepdims=True)
        hi = moved.max(axis=1, keepdims=True)
        step = np.where(hi > lo, (hi - lo) / 255.0, 1.0)
        deq = np.round((moved - lo) / step) * step + lo
        shape_moved = (x.shape[axis],) + tuple(np.delete(np.array(x.shape), axis))
        out[name] = np.moveaxis(deq.reshape(shape_moved), 0, axis).astype(x.dtype)
        nbytes += x.size + 8 * x.shape[axis]
    return out, nbytes, elements


def run_model(name: str, args: argparse.Namespace) -> list[dict]:
    target, source, count, cuts = PLAN[name]
    if args.quick:
        count = max(12, count // 5)
    part = Partitioner(zoo.model_path(name))
    samples = load_samples(source, part, count, model_name=name)
    out_dir = ROOT / "results"
    out_dir.mkdir(exist_ok=True)
    if args.reuse:  # the baselines only, for settings calibrated before
        settings = load_settings(out_dir / f"calibrate_{name}.json")
    else:
        start = time.perf_counter()
        families = FAMILIES[name]() if name in FAMILIES else default_families()
        if args.one_table:  # the dense family with one table only (the search before class tables)
            families = [
                replace(f, classes=(None,)) if isinstance(f, DenseFamily) else f for f in families
            ]
        settings = calibrate(
            part,
            target,
            samples,
            split=cuts,
            holdout=HOLDOUT.get(name, 0.3),
            seed=0,
            threads=1,
            families=families,
            refine=args.refine,
            model_name=name,
            data_label=source,
            progress=True,
        )
        print(f"{name}: calibrated {len(cuts)} cuts in {time.perf_counter() - start:.0f} s")
        save_settings(settings, out_dir / f"calibrate_{name}{args.tag}.json")
        if args.tag:  # a variant for the record: no plot, no baselines, never shipped
            return []
    if args.ship:
        save_settings(settings, shipped_settings_path(name))
    (ROOT / "plots").mkdir(exist_ok=True)
    plot_settings(settings, ROOT / "plots" / f"calibrate_{name}.png")
    if args.no_baselines:
        return [{"cut": c["name"], "status": c["status"]} for c in settings["cuts"]]

    # Baselines on the same held-out inputs.
    targets = targets_of(settings)
    full = make_session(part.model, ["CPUExecutionProvider"], 1, part.external_dir)
    names = [o.name for o in full.get_outputs()]
    feeds = [i.name for i in full.get_inputs()]
    refs = [
        dict(zip(names, full.run(names, {n: s[n] for n in feeds}), strict=True)) for s in samples
    ]
    outputs = {t.metric: output_for(t.metric, refs[0], None) for t in targets}
    holdout = settings["data"]["holdout"]
    calib_idx, hold_idx = split_indices(len(samples), holdout, 0, getattr(samples, "groups", None))
    # The fixed setting is judged like the calibrated ones: guarded targets on the
    # calibration split.
    guard = settings["data"].get("guard", 1.0)
    search_targets = [t.guarded(guard) for t in targets]
    evaluators = {
        c["name"]: _CutEvaluator(
            part,
            part.find_cut(c["name"]),
            samples,
            refs,
            search_targets,
            outputs,
            ["CPUExecutionProvider"],
            1,
        )
        for c in settings["cuts"]
    }
    # Best fixed setting: among the per-cut choices, the one meeting the target at every cut
    # (calibration split) with the lowest mean bits/element.
    fixed_best = None
    for c in settings["cuts"]:
        if c["status"] == "unreachable":
            continue
        params = CodecParams(**c["params"])
        points = [ev.evaluate(params, calib_idx)[0] for ev in evaluators.values()]
        if all(p.passed for p in points):
            mean_bpe = float(np.mean([p.bits_per_element for p in points]))
            if fixed_best is None or mean_bpe < fixed_best[0]:
                fixed_best = (mean_bpe, params)
    rows = []
    metric = targets[0].metric
    for c in settings["cuts"]:
        ev = evaluators[c["name"]]
        row = {"cut": c["name"], "index": c["index"], "status": c["status"]}
        if c["status"] != "unreachable":
            row["calibrated"] = (c["bits_per_element"], c["holdout"][metric]["value"])
            row["interval"] = (c["holdout"][metric]["low"], c["holdout"][metric]["high"])
            row["params"] = c["params"]
        else:
            row["best"] = c["best"]
        for label, params in (
            ("fixed", fixed_best[1] if fixed_best else None),
            ("old_default", OLD_DEFAULT),
            ("int8_channel", per_channel_int8),
        ):
            if params is None:
                continue
            p, _ = ev.evaluate(params, hold_idx, early_stop=False)
            row[label] = (p.bits_per_element, p.metrics[metric])
        rows.append(row)
    print_table(name, targets, rows, fixed_best)
    return rows


def compare_model(name: str, path: str) -> list[dict]:
    """Another settings file's per-cut settings (e.g. calibrated on other data) measured on
    this model's held-out split of the PLAN data, with the bootstrap interval."""
    target, source, count, _ = PLAN[name]
    other = load_settings(path)
    part = Partitioner(zoo.model_path(name))
    samples = load_samples(source, part, count, model_name=name)
    targets = targets_of(other)
    full = make_session(part.model, ["CPUExecutionProvider"], 1, part.external_dir)
    names = [o.name for o in full.get_outputs()]
    feeds = [i.name for i in full.get_inputs()]
    refs = [
        dict(zip(names, full.run(names, {n: s[n] for n in feeds}), strict=True)) for s in samples
    ]
    outputs = {t.metric: output_for(t.metric, refs[0], None) for t in targets}
    _, hold_idx = split_indices(
        len(samples), HOLDOUT.get(name, 0.3), 0, getattr(samples, "groups", None)
    )
    metric = targets[0].metric
    print(f"\n{name}: settings of {path} on the held-out split of {count} {source} inputs")
    print(f"| cut | setting | b/el | held-out {metric} [95% CI] |")
    print("|---|---|---:|---|")
    rows = []
    for c in other["cuts"]:
        if c["status"] == "unreachable":
            continue
        ev = _CutEvaluator(
            part, part.find_cut(c["name"]), samples, refs, targets, outputs,
            ["CPUExecutionProvider"], 1,
        )  # fmt: skip
        point, per = ev.evaluate(CodecParams(**c["params"]), hold_idx, early_stop=False)
        lo, hi = bootstrap_interval(metric, per[metric], seed=0)
        rows.append({"cut": c["name"], "params": c["params"], "point": point, "ci": (lo, hi)})
        print(
            f"| {c['name']} | {setting_text(c['params'])} | {point.bits_per_element:.3f} | "
            f"{_fmt_metric(metric, point.metrics[metric])} [{_fmt_metric(metric, lo)}, "
            f"{_fmt_metric(metric, hi)}] |"
        )
    return [
        {"cut": r["cut"], "params": r["params"], "bits_per_element": r["point"].bits_per_element,
         "metric": r["point"].metrics[metric], "interval": r["ci"]}
        for r in rows
    ]  # fmt: skip


def classes_table(name: str, path: str, count: int) -> list[dict]:
    """Bits/element per table choice at the steps of a settings file (see the module doc)."""
    from slicer.split.runner import SplitModel
    from slicer.split.transport import decode_packet, encode_values

    _, source, _, _ = PLAN[name]
    part = Partitioner(zoo.model_path(name))
    samples = load_samples(source, part, count, model_name=name)
    settings = load_settings(path)
    choices = (None, "auto", 2, 4, 8, 16)
    print(f"\n{name}: bits/element per table choice, {count} {source} inputs, steps of {path}")
    print("| cut | groups | rel_step | " + " | ".join(f"classes={c}" for c in choices) + " |")
    print("|---|---|---:|" + "---:|" * len(choices))
    rows = []
    for c in settings["cuts"]:
        if c["status"] == "unreachable" or c["params"].get("mode") != "dense":
            continue
        cut = part.find_cut(c["name"])
        split = SplitModel(part, cut, providers=["CPUExecutionProvider"], threads=1)
        values = []
        for s in samples:
            v = split.run_head({i.name: s[i.name] for i in split.head.get_inputs()})
            values.append({**{t.name: s[t.name] for t in cut.tensors if t.name not in v}, **v})
        base = c["params"]
        for factor in (1 / 1.585, 1.0, 1.585):
            rel_step = base["rel_step"] * factor
            cells = []
            for classes in choices:
                params = CodecParams(**{**base, "rel_step": rel_step, "classes": classes})
                bits = elements = 0
                try:
                    for v in values:
                        packet = encode_values(v, params, {})
                        bits += 8 * packet.encoded_bytes
                        elements += packet.coded_elements + sum(a.size for a in packet.raw.values())
                        if classes == "auto":  # same codes, same decoded values
                            one = encode_values(
                                v, CodecParams(**{**base, "rel_step": rel_step}), {}
                            )
                            got, want = decode_packet(packet, {})[0], decode_packet(one, {})[0]
                            assert all(np.array_equal(got[k], want[k]) for k in want)
                    cells.append(bits / elements)
                except ValueError:  # K classes need K positions along the class axis
                    cells.append(None)
            rows.append({"cut": c["name"], "groups": base["groups"], "rel_step": rel_step,
                         "bits": dict(zip(map(str, choices), cells, strict=True))})  # fmt: skip
            text = " | ".join("-" if b is None else f"{b:.3f}" for b in cells)
            print(f"| {c['index']} | {base['groups']} | {rel_step:.4g} | {text} |", flush=True)
    return rows


def plot_change(models: list[str], before: str) -> Path:
    """Old against new settings per cut: bits/element (bars) and the held-out metric."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, len(models), figsize=(4.6 * len(models), 6.4), squeeze=False)
    for k, name in enumerate(models):
        old = load_settings(before.format(model=name))
        new = load_settings(ROOT / "results" / f"calibrate_{name}.json")
        t = targets_of(new)[0]
        labels = [f"#{c['index']}" for c in new["cuts"]]
        x = np.arange(len(labels))
        for off, s, label in ((-0.2, old, "before"), (0.2, new, "refined + class tables")):
            bpe = [c.get("bits_per_element") or 0 for c in s["cuts"]]
            axes[0, k].bar(x + off, bpe, 0.4, label=label)
            held = [c["holdout"][t.metric] for c in s["cuts"]]
            v = np.array([h["value"] for h in held])
            err = [v - [h["low"] for h in held], [h["high"] for h in held] - v]
            axes[1, k].errorbar(x + off, v, yerr=err, fmt="o", capsize=3, label=label)
        axes[1, k].axhline(t.value, color="k", lw=0.8, ls="--")
        axes[0, k].set_title(f"{name}: {t.text()}", fontsize=9)
        axes[0, k].set_ylabel("bits per element (calibration split)")
        axes[1, k].set_ylabel(f"held-out {t.metric} [95 % CI]")
        for ax in axes[:, k]:
            ax.set_xticks(x, labels)
            ax.grid(alpha=0.3)
        axes[0, k].legend(fontsize=7)
    fig.tight_layout()
    path = ROOT / "plots" / "calibrate_change.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def print_table(name: str, targets, rows: list[dict], fixed_best) -> None:  # noqa: ANN001
    metric = targets[0].metric
    t = targets[0]
    print(f"\n{name}: {t.text()} (held-out split; bits/element, {metric})")
    if fixed_best:
        p = fixed_best[1]
        print(f"best fixed setting: {p.to_json()}")
    print(
        "| cut | calibrated setting | calibrated b/el | held-out "
        + metric
        + " [95% CI] | best fixed b/el (metric) | old default s=0.9 b/el (metric) | "
        "int8 per channel b/el (metric) |"
    )
    print("|---|---|---|---|---|---|---|")

    def cell(v):  # noqa: ANN001, ANN202
        return f"{v[0]:.3f} ({_fmt_metric(metric, v[1])})" if v else "-"

    for r in rows:
        if "calibrated" in r:
            p = r["params"]
            setting = setting_text(p)
            mark = "" if r["status"] == "ok" else " (interval misses)"
            cal = (
                f"{r['calibrated'][0]:.3f}",
                f"{_fmt_metric(metric, r['calibrated'][1])} "
                f"[{_fmt_metric(metric, r['interval'][0])}, "
                f"{_fmt_metric(metric, r['interval'][1])}]{mark}",
            )
        else:
            setting, cal = "unreachable", ("-", f"best {r['best']['metrics']}")
        print(
            f"| {r['cut']} | {setting} | {cal[0]} | {cal[1]} | {cell(r.get('fixed'))} | "
            f"{cell(r.get('old_default'))} | {cell(r.get('int8_channel'))} |"
        )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("models", nargs="+", choices=sorted(PLAN))
    ap.add_argument("--ship", action="store_true", help="also write the shipped settings")
    ap.add_argument("--quick", action="store_true", help="a fifth of the inputs")
    ap.add_argument(
        "--reuse", action="store_true", help="reuse bench/results settings; baselines only"
    )
    ap.add_argument(
        "--classes",
        metavar="SETTINGS",
        help="only bits/element per table choice at this settings file's steps",
    )
    ap.add_argument("--count", type=int, default=16, help="inputs for --classes")
    ap.add_argument(
        "--before",
        metavar="TEMPLATE",
        help="plot these settings ('{model}' in the path) against bench/results; no search",
    )
    ap.add_argument("--refine", type=int, default=REFINE, help="calibrate(refine=...)")
    ap.add_argument("--one-table", action="store_true", help="dense family without class tables")
    ap.add_argument(
        "--tag",
        default="",
        help="write bench/results/calibrate_<model><TAG>.json only (a variant for the record)",
    )
    ap.add_argument(
        "--no-baselines", action="store_true", help="the search only (no baseline table)"
    )
    ap.add_argument(
        "--compare",
        metavar="SETTINGS",
        help="only measure this settings file's choices on the held-out split (no search)",
    )
    args = ap.parse_args()
    if args.compare:
        for name in args.models:
            compare_model(name, args.compare)
        return 0
    if args.before:
        print(plot_change(args.models, args.before))
        return 0
    if args.classes:
        out = ROOT / "results" / "calibrate_classes.json"
        old = json.loads(out.read_text()) if out.is_file() else {}
        for name in args.models:
            old[name] = classes_table(name, args.classes, args.count)
        out.write_text(json.dumps(old, indent=1))
        return 0
    results = {}
    for name in args.models:
        results[name] = run_model(name, args)
    if args.no_baselines or args.tag:  # no table to record
        return 0
    out = ROOT / "results" / "calibrate_tables.json"
    old = json.loads(out.read_text()) if out.is_file() else {}
    old.update(results)
    out.write_text(json.dumps(old, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
