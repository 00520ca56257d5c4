"""``slicer cuts | plan | run | calibrate``: split inference from the command line.

Registered into the main ``slicer`` parser by ``slicer.cli`` through :func:`register`.
Field names of the ``--json`` outputs are a contract (see docs in the package README).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import sys
from pathlib import Path
from typing import Any

for _dep in ("onnx", "onnxruntime"):
    if importlib.util.find_spec(_dep) is None:  # the split extra is not installed
        raise ImportError(
            f"slicer split commands need {_dep!r} (pip install 'slicer-codec[split]')"
        )

DEMO_MODEL = "efficientnet-lite0"
DEMO_CUT = "/_blocks.11/_swish/Clip_output_0"  # mid-network, after ReLU6 (block 12 of 16)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``cuts``, ``plan``, ``run`` and ``calibrate`` sub-commands."""
    cuts = subparsers.add_parser("cuts", help="list the cut points of an ONNX model")
    cuts.add_argument(
        "model",
        help="ONNX model file, or a shipped model name (efficientnet-lite0, minilm, smollm2)",
    )
    cuts.add_argument(
        "--simple", action="store_true", help="only cuts with one bulky tensor (layer boundaries)"
    )
    cuts.add_argument("--json", action="store_true", help="machine-readable JSON")
    cuts.set_defaults(func=cmd_cuts)

    plan = subparsers.add_parser("plan", help="choose the cut and codec settings for budgets")
    plan.add_argument("model", help="ONNX model file or shipped model name")
    plan.add_argument("--memory", required=True, help="device memory budget M, e.g. 64MB")
    plan.add_argument("--deadline", required=True, help="latency budget D, e.g. 30ms")
    plan.add_argument("--rate", required=True, help="link rate R, e.g. 20Mbps")
    plan.add_argument("--bandwidth", default="10MHz", help="channel bandwidth W (default 10MHz)")
    plan.add_argument("--snr", default="10", help="mean SNR γ, linear or with dB (default 10)")
    plan.add_argument("--eps", type=float, default=1e-3, help="outage target ε (default 0.001)")
    plan.add_argument("--profile", help="profile JSON: reused if it exists, else written there")
    plan.add_argument("--bits", type=int, default=8, help="q_bit of the codec (default 8)")
    plan.add_argument("--delta", type=float, default=0.01, help="ABQ budget δ (default 0.01)")
    plan.add_argument("--groups", choices=["tensor", "rows"], default="tensor")
    plan.add_argument(
        "--max-sparsity",
        type=float,
        default=0.95,
        help="fidelity floor as a cap on sparsity (default 0.95)",
    )
    plan.add_argument(
        "--min-fidelity",
        type=float,
        default=None,
        help="fidelity floor on measured top-1 agreement / cosine (needs "
        "--fidelity when profiling)",
    )
    plan.add_argument(
        "--fidelity",
        action="store_true",
        help="while profiling, measure fidelity per cut and sparsity",
    )
    plan.add_argument(
        "--settings",
        help="calibrated settings (slicer calibrate): each cut uses its calibrated codec "
        "setting and only cuts that keep the target qualify",
    )
    _add_runtime_options(plan)
    _add_shape_option(plan)
    plan.add_argument("--json", action="store_true", help="machine-readable JSON")
    plan.set_defaults(func=cmd_plan)

    run = subparsers.add_parser(
        "run",
        help="run head + codec + tail and report fidelity, bytes and latency",
        description="Without MODEL: EfficientNet-Lite0 on the shipped ImageNet photos.",
    )
    run.add_argument("model", nargs="?", help="ONNX model file or shipped model name")
    run.add_argument(
        "--split",
        default="auto",
        help="cut: 'auto' (a mid-network layer boundary), a name or an index",
    )
    run.add_argument("--sparsity", type=float, default=None, help="default 0.9")
    run.add_argument("--blocks", type=int, default=None, help="default 3")
    run.add_argument("--bits", type=int, default=None, help="default 8")
    run.add_argument("--delta", type=float, default=None, help="default 0.01")
    run.add_argument("--asym", type=float, default=None, help="default 0")
    run.add_argument("--seed", type=int, default=None, help="default 0")
    run.add_argument("--groups", choices=["tensor", "rows"], default=None)
    run.add_argument("--raw", action="store_true", help="send the cut tensors uncompressed")
    run.add_argument(
        "--settings",
        help="calibrated settings file (slicer calibrate); shipped models use their shipped "
        "settings when no codec option is given",
    )
    run.add_argument(
        "--target",
        action="append",
        metavar="METRIC:VALUE",
        help="calibrate the cut on the fly for this target (repeatable), then run",
    )
    _add_runtime_options(run)
    _add_shape_option(run)
    run.add_argument("--json", action="store_true", help="machine-readable JSON")
    run.set_defaults(func=cmd_run)

    cal = subparsers.add_parser(
        "calibrate",
        help="find, per cut, the fewest bits per element that keep a fidelity target",
        description="Searches the codec settings per cut on a calibration split, measures the "
        "choice on a held-out split (bootstrap 95%% interval) and writes a settings file for "
        "`slicer run --settings` / `slicer plan --settings`.",
    )
    cal.add_argument("model", help="ONNX model file or shipped model name")
    cal.add_argument(
        "--split",
        default="auto",
        help="cut(s): auto (mid-network), all (layer boundaries, see --max-cuts), a name, an "
        "index, or a comma-separated list",
    )
    cal.add_argument(
        "--target",
        action="append",
        metavar="METRIC:VALUE",
        help="agreement:0.99, cosine:0.99, kl:0.01, rel_l2:0.05, ppl:+2%% (repeatable, all "
        "must hold; default: the shipped model's default target, else agreement:0.99 for "
        "class outputs and cosine:0.99 otherwise)",
    )
    src = cal.add_mutually_exclusive_group()
    src.add_argument("--inputs", help=".npz of inputs keyed by input name (leading sample axis)")
    src.add_argument(
        "--dataset",
        help="photos, gallery, mnist, shakespeare, random, or a folder of images (default: the "
        "shipped model's own data; random for other models)",
    )
    cal.add_argument("--count", type=int, default=None, help="inputs to use (default per data)")
    cal.add_argument(
        "--preprocess",
        choices=["imagenet", "unit", "signed", "raw"],
        default=None,
        help="image scaling for photos / mnist / image folders (see slicer.split.datasets)",
    )
    cal.add_argument("--holdout", type=float, default=0.3, help="held-out fraction (0.3)")
    cal.add_argument(
        "--guard",
        type=float,
        default=0.5,
        help="search with this fraction of each target's allowed loss (0.5: agreement ≥ 99%% "
        "is searched as ≥ 99.5%%), a margin for unseen inputs; 1 = the target itself",
    )
    cal.add_argument(
        "--backoff",
        type=int,
        default=1,
        help="take each search's pick this many knob steps more generous than the cheapest "
        "passing setting (default 1; 0 = the cheapest)",
    )
    cal.add_argument("--max-cuts", type=int, default=8, help="cuts for --split all (8)")
    cal.add_argument(
        "--modes",
        default=None,
        help="codec modes to search, comma-separated: topk, dense, auto (default: every mode "
        "the codec has)",
    )
    cal.add_argument(
        "--trellis",
        type=float,
        default=None,
        metavar="LAMBDA",
        help="the dense family codes with trellis-coded quantization (format 2 mode 3) at this "
        "λ, e.g. 0.34 (without --modes: the dense family only)",
    )
    cal.add_argument("--output", help="model output to measure (default: chosen per metric)")
    cal.add_argument("--seed", type=int, default=0)
    cal.add_argument("--out", help="write the settings JSON here")
    cal.add_argument(
        "--klt",
        action="store_true",
        help="code each cut in its calibrated KLT basis (fit on the calibration split; the "
        "transform is written next to --out, else into the model cache)",
    )
    cal.add_argument(
        "--estimator",
        action="store_true",
        help="also fit a decoder-side linear MMSE estimator per cut at the chosen setting "
        "(applied by the receiver after decode; kept when the held-out split is no worse; "
        "written next to --out, else into the model cache)",
    )
    cal.add_argument("--plot", help="draw bits/element against the metric per cut (PNG)")
    cal.add_argument("--threads", type=int, default=1, help="ORT intra-op threads (1)")
    _add_shape_option(cal)
    cal.add_argument("--json", action="store_true", help="machine-readable JSON")
    cal.set_defaults(func=cmd_calibrate)


def _add_shape_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--shape",
        action="append",
        metavar="NAME=D1xD2x...",
        help="concrete shape for an input with dynamic dimensions (repeatable)",
    )


def _add_runtime_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--inputs", help=".npz with arrays keyed by the model's input names")
    p.add_argument(
        "--providers",
        default="auto",
        help="execution providers: auto (CUDA if it loads, else CPU), cpu, cuda",
    )
    p.add_argument("--threads", type=int, default=0, help="ORT intra-op threads (0: default)")


def _resolve_model(name: str) -> str:
    from . import zoo

    if name in zoo.ZOO:
        return str(zoo.model_path(name))
    if not Path(name).is_file():
        raise ValueError(
            f"no such ONNX file or shipped model: {name!r} (shipped: {', '.join(zoo.ZOO)})"
        )
    return name


def _zoo_name(model: str | None) -> str | None:
    """The shipped model a name or a path refers to (None for other ONNX files)."""
    from . import zoo

    if model is None:
        return None
    if model in zoo.ZOO:
        return model
    try:
        resolved = Path(model).resolve()
    except OSError:
        return None
    for name, entry in zoo.ZOO.items():
        if resolved == (zoo.cache_dir() / entry.filename).resolve():
            return name
    return None


def _fmt_bytes(n: float) -> str:
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{int(n)} B"


def _shape_text(shape: Any) -> str:
    return "?" if shape is None else "[" + ",".join(str(d) for d in shape) + "]"


# --------------------------------------------------------------------------------- cuts


def cmd_cuts(args: argparse.Namespace) -> int:
    from .graph import Partitioner

    part = Partitioner(_resolve_model(args.model))
    cuts = [c for c in part.cuts() if c.simple or not args.simple]
    if args.json:
        json.dump(
            {
                "model": args.model,
                "num_cuts": len(part.cuts()),
                "cuts": [c.to_json() for c in cuts],
            },
            sys.stdout,
            indent=1,
        )
        print()
        return 0
    print(
        f"{len(part.cuts())} cuts ({sum(c.single for c in part.cuts())} single-tensor, "
        f"{sum(c.simple for c in part.cuts())} simple); * = single tensor, + = simple"
    )
    print(f"{'index':>5}  {'':1} {'head params':>11}  {'name':<56} tensors")
    for c in cuts:
        mark = "*" if c.single else ("+" if c.simple else " ")
        tensors = ", ".join(f"{_shape_text(t.shape)} {t.dtype}" for t in c.tensors[:3])
        if len(c.tensors) > 3:
            tensors += f", … ({len(c.tensors)} tensors)"
        print(f"{c.index:>5}  {mark} {_fmt_bytes(c.head_param_bytes):>11}  {c.name:<56} {tensors}")
    return 0


# --------------------------------------------------------------------------------- plan


def _inputs_for(model_path: str, args: argparse.Namespace):  # noqa: ANN202
    from .graph import load_model
    from .providers import make_session

    proto, ext = load_model(model_path)
    sess = make_session(proto, ["CPUExecutionProvider"], 1, ext)
    if args.inputs:
        return _inputs_from_file(args.inputs, sess)
    return _random_inputs(model_path, args, sess)


def _random_inputs(model_path: str, args: argparse.Namespace, session: Any) -> dict[str, Any]:
    """Random inputs: shipped models set dynamic dimensions to 1 (token sequences), other
    models need ``--shape`` for each dynamic dimension (a one-line error names them)."""
    from .datasets import parse_shapes, random_samples
    from .graph import Partitioner
    from .runner import random_inputs

    shapes = parse_shapes(getattr(args, "shape", None))
    if shapes or _zoo_name(model_path) is None:
        return random_samples(Partitioner(model_path), 1, shapes, seed=0)[0]
    return random_inputs(session)


def _positive(option: str, parse: Any, text: str) -> float:
    """A budget / link value that parses to a finite number > 0 (1e400MB is not a budget)."""
    try:
        value = parse(text)
    except ValueError:
        word = str(text).strip()
        if not word.startswith("-") or word.lower().endswith("db"):  # -3dB is a valid SNR
            raise
        value = -1.0  # "-5MB": the parsers read no sign
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{option} must be a finite number > 0, got {text}")
    return value


def _check_codec_options(args: argparse.Namespace) -> None:
    """The codec options, checked up front: a run whose cut sends no float tensor through the
    codec, or a plan, must not accept settings the codec would refuse."""
    from .._params import make_params

    options = {"bits": args.bits, "delta": args.delta, "groups": args.groups}
    for name in ("sparsity", "blocks", "asym", "seed"):
        if hasattr(args, name):
            options[name] = getattr(args, name)
    options = {k: v for k, v in options.items() if v is not None}  # None: not given
    try:
        make_params(**options)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"--{exc}") from None


def _inputs_from_file(path: str, session: Any) -> dict[str, Any]:
    """Model inputs from an .npz, checked against the model's declared inputs."""
    import zipfile

    import numpy as np

    from .runner import load_inputs

    if not Path(path).is_file():
        raise ValueError(f"--inputs {path}: no such file")
    if not zipfile.is_zipfile(path):
        raise ValueError(
            f"--inputs {path} is not an .npz archive (write one with numpy.savez(path, "
            "input_name=array, ...))"
        )
    try:
        feeds = load_inputs(path, session)
    except (OSError, EOFError, zipfile.BadZipFile, KeyError) as exc:
        raise ValueError(f"--inputs {path}: cannot read it ({exc})") from None
    for inp in session.get_inputs():
        array = np.asarray(feeds[inp.name])
        declared = list(inp.shape or [])
        fixed = [d if isinstance(d, int) and d > 0 else None for d in declared]
        if len(declared) != array.ndim or any(
            d is not None and d != a for d, a in zip(fixed, array.shape, strict=True)
        ):
            want = "[" + ",".join("?" if d is None else str(d) for d in fixed) + "]"
            raise ValueError(
                f"--inputs {path}: array {inp.name!r} has shape {list(array.shape)}, the model "
                f"needs {want}"
            )
    return feeds


def cmd_plan(args: argparse.Namespace) -> int:
    from .link import Link, parse_bytes, parse_hertz, parse_rate, parse_seconds, parse_snr
    from .planner import Budget, plan
    from .profile import FIDELITY_SPARSITIES, load_profile, profile_model, save_profile

    _check_codec_options(args)
    if not 0.0 <= args.max_sparsity < 1.0:
        raise ValueError(f"--max-sparsity must be in [0, 1), got {args.max_sparsity!r}")
    if not 0.0 < args.eps < 1.0:
        raise ValueError(f"--eps must be in (0, 1), got {args.eps!r}")
    link = Link(
        rate_bps=_positive("--rate", parse_rate, args.rate),
        bandwidth_hz=_positive("--bandwidth", parse_hertz, args.bandwidth),
        snr=_positive("--snr", parse_snr, args.snr),
        eps=args.eps,
    )
    budget = Budget(
        memory_bytes=_positive("--memory", parse_bytes, args.memory),
        deadline_s=_positive("--deadline", parse_seconds, args.deadline),
        link=link,
    )
    settings = None
    if args.settings:
        settings = _checked_settings(args.settings, _resolve_model(args.model), args.model)
    if args.profile and Path(args.profile).is_file():
        profile = load_profile(args.profile)
        made_for = profile.get("model")
        if made_for and Path(made_for).resolve() != Path(_resolve_model(args.model)).resolve():
            raise ValueError(f"profile {args.profile} was made for {made_for}, not {args.model}")
    else:
        model_path = _resolve_model(args.model)
        inputs = _inputs_for(model_path, args)
        bar = _progress("profiling", args.json)
        profile = profile_model(
            model_path,
            inputs,
            # With calibrated settings, profile exactly the calibrated cuts.
            cuts=[c["index"] for c in settings["cuts"]] if settings else "simple",
            providers=args.providers,
            threads=args.threads,
            fidelity_sparsities=FIDELITY_SPARSITIES if args.fidelity else (),
            progress=bar,
        )
        bar.close()
        if args.profile:
            save_profile(profile, args.profile)
    result = plan(
        profile,
        budget,
        bits=args.bits,
        delta=args.delta,
        groups=args.groups,
        max_sparsity=args.max_sparsity,
        min_fidelity=args.min_fidelity,
        settings=settings,
    )
    if args.json:
        out = result.to_json()
        out["provider"] = profile.get("provider")
        json.dump(out, sys.stdout, indent=1)
        print()
        return 0 if result.feasible else 1
    print(
        f"link: {link.rate_bps / 1e6:g} Mbps over {link.bandwidth_hz / 1e6:g} MHz, "
        f"SNR {link.snr:g}, ε={link.eps:g}: outage {link.outage_probability:.3g}, "
        f"{link.transmissions:g} tries per packet"
    )
    print(
        f"budget: memory {_fmt_bytes(budget.memory_bytes)}, deadline "
        f"{budget.deadline_s * 1e3:g} ms; profiled on {profile.get('provider')}"
    )
    print(
        f"{'index':>5}  {'name':<48} {'memory':>9} {'device':>9} {'raw IF':>9} "
        f"{'payload':>9} {'s':>5} {'M':>2} {'total':>9}  status"
    )
    for c in result.candidates:
        status = (
            "CHOSEN" if result.chosen is c else ("fits" if c.feasible else (c.constraint or "-"))
        )
        p = c.params
        print(
            f"{c.index:>5}  {c.name[-48:]:<48} {_fmt_bytes(c.memory_bytes):>9} "
            f"{c.device_s * 1e3:>7.2f}ms {_fmt_bytes(c.raw_bytes):>9} "
            f"{_fmt_bytes(c.payload_bytes) if c.payload_bytes else '-':>9} "
            f"{(f'{p.sparsity:g}' if p.mode == 'topk' else p.mode) if p else '-':>5} "
            f"{p.blocks if p and p.mode == 'topk' else '-':>2} "
            f"{f'{c.total_s * 1e3:.2f}ms' if c.total_s is not None else '-':>9}  {status}"
        )
    print(("feasible: " if result.feasible else "") + result.reason)
    return 0 if result.feasible else 1


# --------------------------------------------------------------------------------- run


class _NoBar:
    def __call__(self, *a: Any) -> None:
        pass

    def update(self, n: int = 1) -> None:
        pass

    def close(self) -> None:
        pass


def _progress(desc: str, quiet: bool):  # noqa: ANN202
    """A tqdm bar on stderr usable as a ``progress(i, n, label)`` callback."""
    if quiet and not sys.stderr.isatty():
        return _NoBar()
    from tqdm import tqdm

    bar = tqdm(desc=desc, unit="cut", file=sys.stderr, leave=False)

    class _Bar:
        def __call__(self, i: int, n: int, label: str) -> None:
            bar.total = n
            bar.n = i
            bar.set_postfix_str(label[-40:])
            bar.refresh()

        def update(self, n: int = 1) -> None:
            bar.update(n)

        def close(self) -> None:
            bar.close()

    return _Bar()


def _auto_cut(part):  # noqa: ANN001, ANN202
    """A mid-network layer boundary: the simple cut nearest half of the compute nodes."""
    cuts = part.cuts()
    simple = [c for c in cuts if c.simple] or cuts
    middle = cuts[-1].node_index / 2
    return min(simple, key=lambda c: abs(c.node_index - middle))


_CODEC_FLAGS = ("sparsity", "blocks", "bits", "delta", "asym", "seed", "groups")
_CODEC_DEFAULTS = {
    "sparsity": 0.9,
    "blocks": 3,
    "bits": 8,
    "delta": 0.01,
    "asym": 0.0,
    "seed": 0,
    "groups": "tensor",
}
# Inputs for an on-the-fly calibration (`run --target`) of a shipped model.
_FLY_COUNTS = {"photos": 60, "gallery": 82, "shakespeare": 40, "random": 16}


def _checked_settings(path: str, model_path: str, label: str) -> dict[str, Any]:
    """A settings file, validated and checked against the model's fingerprint."""
    from .graph import load_model
    from .settings import check_model, fingerprint, load_settings

    settings = load_settings(path)
    proto, ext = load_model(model_path)
    check_model(settings, fingerprint(proto, ext), label)
    return settings


def _run_cut(part, split: str, settings: dict[str, Any] | None, demo: bool):  # noqa: ANN001, ANN202
    if split.strip().startswith("-") and split.strip()[1:].isdigit():
        raise ValueError(f"--split must be 'auto', a cut name or an index >= 0, got {split}")
    if split != "auto":
        return part.find_cut(split)
    if demo:
        return part.find_cut(DEMO_CUT)
    auto = _auto_cut(part)
    if settings is None:
        return auto
    usable = [c for c in settings["cuts"] if c["status"] != "unreachable"]
    if any(c["name"] == auto.name for c in usable):
        return auto
    if not usable:
        raise ValueError("the settings file holds no cut that meets its targets")
    return part.find_cut(min(usable, key=lambda c: c["bits_per_element"])["name"])


def _entry_params(entry: dict[str, Any], where: str):  # noqa: ANN202
    """(CodecParams, artifacts) of a settings entry: artifacts holds the SplitModel keywords
    ``transforms`` and ``estimators`` (each empty when the entry has none)."""
    from .settings import estimators_for_entry, params_from_json, transforms_for_entry

    if entry["status"] == "unreachable":
        best = entry.get("best") or {}
        raise ValueError(
            f"{where}: cut {entry['name']} cannot meet the targets at any rate tried "
            f"(best reached: {best.get('metrics')})"
        )
    artifacts = {"transforms": transforms_for_entry(entry)}
    artifacts["estimators"] = estimators_for_entry(entry)
    return params_from_json(entry["params"]), artifacts


def _fly_calibrate(args: argparse.Namespace, part, cut, name: str | None):  # noqa: ANN001, ANN202
    """``run --target``: calibrate this one cut now and return its settings entry."""
    from .calibrate import calibrate
    from .datasets import default_dataset, load_samples, npz_samples, parse_shapes

    if args.inputs:
        samples, label = npz_samples(args.inputs, part), args.inputs
    else:
        source = default_dataset(name)
        samples = load_samples(
            source,
            part,
            _FLY_COUNTS[source],
            model_name=name,
            shapes=parse_shapes(getattr(args, "shape", None)),
        )
        label = source
    result = calibrate(
        part,
        args.target,
        samples,
        split=[cut.name],
        holdout=0.3,
        threads=1,
        model_name=name,
        data_label=label,
        progress=not args.json or sys.stderr.isatty(),
    )
    return result["cuts"][0], result


def _run_params(args: argparse.Namespace, part, cut, name: str | None, settings):  # noqa: ANN001, ANN202
    """The codec setting of a run, where it came from, and the cut's artifacts (SplitModel
    keywords: transforms, estimators)."""
    from .settings import (
        check_model,
        fingerprint,
        load_settings,
        settings_for_cut,
        shipped_settings_path,
        targets_of,
    )
    from .transport import CodecParams

    flags = {k: getattr(args, k) for k in _CODEC_FLAGS if getattr(args, k, None) is not None}
    chosen_by = [o for o, v in (("--raw", args.raw), ("--settings", settings)) if v]
    chosen_by += ["--target"] if args.target else []
    chosen_by += ["codec options"] if flags else []
    if len(chosen_by) > 1:
        raise ValueError(f"{' and '.join(chosen_by)} each choose the codec setting: give one")
    if args.raw:
        return None, "raw", {}
    if args.target:
        entry, result = _fly_calibrate(args, part, cut, name)
        targets = ", ".join(t.text() for t in targets_of(result))
        params, artifacts = _entry_params(entry, "--target")
        return params, f"calibrated now for {targets}", artifacts
    if settings is not None:
        entry = settings_for_cut(settings, cut.name)
        if entry is None:
            raise ValueError(
                f"--settings {args.settings} holds no entry for cut {cut.name}; calibrated "
                f"cuts: {[c['name'] for c in settings['cuts']]}"
            )
        targets = ", ".join(t.text() for t in targets_of(settings))
        params, artifacts = _entry_params(entry, f"--settings {args.settings}")
        return params, f"settings file ({targets})", artifacts
    if not flags and name is not None and shipped_settings_path(name).is_file():
        shipped = load_settings(shipped_settings_path(name))
        entry = settings_for_cut(shipped, cut.name)
        try:
            check_model(shipped, fingerprint(part.model, part.external_dir), name)
        except ValueError:
            entry = None  # another export of the model: the defaults below apply
        if entry is not None and entry["status"] != "unreachable":
            targets = ", ".join(t.text() for t in targets_of(shipped))
            params, artifacts = _entry_params(entry, "shipped settings")
            return params, f"shipped settings ({targets})", artifacts
    return CodecParams(**{**_CODEC_DEFAULTS, **flags}), "options" if flags else "defaults", {}


def cmd_run(args: argparse.Namespace) -> int:
    _check_codec_options(args)
    from tqdm import tqdm

    from .graph import Partitioner
    from .runner import SplitModel, json_result

    steps = tqdm(
        total=4,
        desc="split run",
        unit="step",
        file=sys.stderr,
        leave=False,
        disable=args.json and not sys.stderr.isatty(),
    )
    try:
        steps.set_postfix_str("loading model")
        name = _zoo_name(args.model) if args.model else DEMO_MODEL
        model_path = _resolve_model(args.model or DEMO_MODEL)
        part = Partitioner(model_path)
        settings = (
            _checked_settings(args.settings, model_path, args.model or DEMO_MODEL)
            if args.settings
            else None
        )
        shipped = None
        if settings is None and not args.raw and not args.target and name is not None:
            from .settings import load_settings, shipped_settings_path

            if not any(getattr(args, k, None) is not None for k in _CODEC_FLAGS):
                path = shipped_settings_path(name)
                shipped = load_settings(path) if path.is_file() else None
        # --split auto on a shipped model: a cut its shipped settings calibrated.
        cut = _run_cut(part, args.split, settings or shipped, demo=args.model is None)
        params, source, artifacts = _run_params(args, part, cut, name, settings)
        if args.model is None:
            steps.close()
            from .demo import run_demo

            return run_demo(params, args, part=part, cut=cut, source=source, artifacts=artifacts)
        steps.update(1)
        steps.set_postfix_str("building head / tail sessions")
        split = SplitModel(part, cut, providers=args.providers, threads=args.threads, **artifacts)
        steps.update(1)
        steps.set_postfix_str("uncut reference session")
        inputs = (
            _inputs_from_file(args.inputs, split.full)
            if args.inputs
            else _random_inputs(model_path, args, split.full)
        )
        steps.update(1)
        steps.set_postfix_str("head -> codec -> tail")
        result = split.run(inputs, params)
        steps.update(1)
    finally:
        steps.close()
    out = json_result(
        result,
        split.provider,
        {
            "model": args.model,
            "params": params.to_json() if params else None,
            "settings": source,
            "inputs": "file" if args.inputs else "random",
            # decoder-side estimators applied after decode (tensor -> fingerprint)
            "estimators": {n: e.fingerprint() for n, e in split.estimators.items()},
        },
    )
    if args.json:
        json.dump(out, sys.stdout, indent=1)
        print()
        return 0
    print_run_summary(out)
    return 0


# --------------------------------------------------------------------------------- calibrate


def _default_targets(part, name: str | None, sample: dict[str, Any]) -> list[str]:  # noqa: ANN001
    """The shipped model's target; else agreement ≥ 99 % for class scores (the uncut output
    on the first input looks like logits), cosine ≥ 0.99 otherwise."""
    from .fidelity import looks_like_logits
    from .providers import make_session
    from .settings import load_settings, shipped_settings_path

    if name is not None and shipped_settings_path(name).is_file():
        shipped = load_settings(shipped_settings_path(name))
        return [f"{t['metric']}:{t['value']}" for t in shipped["targets"]]
    sess = make_session(part.model, ["CPUExecutionProvider"], 1, part.external_dir)
    first = sess.get_outputs()[0].name
    feeds = {i.name: sample[i.name] for i in sess.get_inputs()}
    ref = sess.run([first], feeds)[0]
    return ["agreement:0.99" if looks_like_logits(first, ref) else "cosine:0.99"]


def cmd_calibrate(args: argparse.Namespace) -> int:
    from .calibrate import calibrate, families_for, plot_settings
    from .datasets import default_dataset, load_samples, npz_samples, parse_shapes
    from .graph import Partitioner
    from .settings import save_settings

    if args.count is not None and args.count < 2:
        raise ValueError(f"--count must be ≥ 2, got {args.count}")
    if not 0 <= args.holdout < 1:
        raise ValueError(f"--holdout must be in [0, 1), got {args.holdout}")
    model_path = _resolve_model(args.model)
    name = _zoo_name(args.model)
    part = Partitioner(model_path)
    shapes = parse_shapes(args.shape)
    if args.inputs:
        samples = npz_samples(args.inputs, part)[: args.count or None]
        label = args.inputs
    else:
        source = args.dataset or default_dataset(name)
        defaults = {"photos": 200, "gallery": 200, "mnist": 200, "shakespeare": 120}
        count = args.count or defaults.get(source, 64)
        if source == "shakespeare" and name == "smollm2" and args.count is None:
            count = 24
        if source == "random" and not args.json:
            print(
                "note: calibrating on random inputs (give --dataset or --inputs for real data)",
                file=sys.stderr,
            )
        samples = load_samples(
            source,
            part,
            count,
            model_name=name,
            shapes=shapes,
            preprocess=args.preprocess,
            seed=args.seed,
        )
        label = source
    targets = args.target or _default_targets(part, name, samples[0])
    settings = calibrate(
        part,
        targets,
        samples,
        split=args.split,
        holdout=args.holdout,
        seed=args.seed,
        max_cuts=args.max_cuts,
        families=(
            families_for(args.modes or "dense", trellis=args.trellis)
            if args.modes or args.trellis
            else None
        ),
        guard=args.guard,
        backoff=args.backoff,
        output=args.output,
        threads=args.threads,
        model_name=name or Path(model_path).name,
        data_label=label,
        progress=True if not args.json or sys.stderr.isatty() else False,
        transform=args.klt,
        transform_dir=Path(args.out).resolve().parent if args.out else None,
        estimator=args.estimator,
    )
    if args.out:
        save_settings(settings, args.out)
    if args.plot:
        plot_settings(settings, args.plot)
    unreachable = [c for c in settings["cuts"] if c["status"] == "unreachable"]
    if args.json:
        json.dump(settings, sys.stdout, indent=1)
        print()
    else:
        _print_calibration(settings, args)
    return 1 if unreachable else 0


def _print_calibration(settings: dict[str, Any], args: argparse.Namespace) -> None:
    from .calibrate import _fmt_metric, estimator_text, setting_text
    from .settings import targets_of

    targets = targets_of(settings)
    data = settings["data"]
    print(
        f"model     {settings['model']['name']}  ({settings['model']['fingerprint'][:19]}…)\n"
        f"targets   {', '.join(t.text() for t in targets)}\n"
        f"data      {data['source']}: {data['calibration']} calibration + "
        f"{data['holdout_count']} held-out inputs; {settings['seconds']:.0f} s"
    )
    print(f"{'index':>5}  {'cut':<44} {'setting':<28} {'b/el':>6}  held-out [95% interval]")
    for c in settings["cuts"]:
        if c["status"] == "unreachable":
            best = c["best"]
            vals = ", ".join(
                f"{t.metric} {_fmt_metric(t.metric, best['metrics'].get(t.metric))}"
                for t in targets
            )
            print(
                f"{c['index']:>5}  {c['name'][-44:]:<44} UNREACHABLE: best {vals} "
                f"(at {best['bits_per_element'] or float('nan'):.2f} b/el)"
            )
            continue
        setting = setting_text(c["params"]) + estimator_text(c)
        held = "; ".join(
            f"{_fmt_metric(m, h['value'])} [{_fmt_metric(m, h['low'])}, "
            f"{_fmt_metric(m, h['high'])}]"
            for m, h in c["holdout"].items()
        )
        mark = "" if c["status"] == "ok" else "  (interval misses the target)"
        print(
            f"{c['index']:>5}  {c['name'][-44:]:<44} {setting:<28} "
            f"{c['bits_per_element']:>6.3f}  {held}{mark}"
        )
    unreachable = [c for c in settings["cuts"] if c["status"] == "unreachable"]
    if unreachable:
        print(
            f"target not reachable at {len(unreachable)} cut(s): no codec setting tried meets "
            f"{', '.join(t.text() for t in targets)} (best values above)"
        )
    if args.out:
        print(f"settings written to {args.out}")
    if args.plot:
        print(f"plot written to {args.plot}")


def print_run_summary(out: dict[str, Any]) -> None:
    """Readable report of a ``run`` result dict (the JSON object)."""
    lat = out["latency_ms"]
    p = out.get("params")
    if not p:
        codec = "raw (no codec)"
    elif p.get("mode", "topk") != "topk":
        from .calibrate import setting_text

        codec = setting_text(p)
    else:
        codec = (
            f"sparsity {p['sparsity']:g}, {p['blocks']} blocks/sign, {p['bits']} bits, "
            f"δ={p['delta']:g}, groups={p['groups']}"
        )
    if out.get("settings") and out["settings"] not in ("raw", "options"):
        codec += f"  [{out['settings']}]"
    print(f"model     {out.get('model')}  [{out['provider']}]")
    print(f"cut       #{out['cut']['index']} {out['cut']['name']}")
    for t in out["tensors"]:
        coded = "codec" if t["name"] in out["coded_tensors"] else "raw"
        if t["name"] in out.get("side_tensors", ()):
            coded = "lossless side string"
        if t["name"] in out.get("transforms", {}):
            coded += f", KLT {out['transforms'][t['name']][7:19]}"
        if t["name"] in out.get("estimators", {}):
            coded += f", decoder LMMSE {out['estimators'][t['name']][7:19]}"
        print(f"          {t['name']} {_shape_text(t['shape'])} {t['dtype']} ({coded})")
    print(f"codec     {codec}")
    ratio = out.get("compression_ratio")
    print(
        f"sent      {_fmt_bytes(out['encoded_bytes'])} of {_fmt_bytes(out['raw_bytes'])} raw"
        f" ({ratio:.1f}x smaller), {out['bits_per_element']:.2f} bits/element"
        if ratio
        else f"sent      {out['encoded_bytes']} B"
    )
    print(
        f"latency   device {lat['device']:.2f} ms | encode {lat['encode']:.2f} ms | "
        f"decode {lat['decode']:.2f} ms | server {lat['server']:.2f} ms"
    )
    fid = out["fidelity"]
    line = (
        f"fidelity  max|Δ| {fid.get('max_abs_diff', float('nan')):.4g}, "
        f"rel L2 {fid.get('rel_l2', float('nan')):.4g}, cosine {fid.get('cosine', 1):.6f}"
    )
    if "top1_agreement" in fid:
        line += f", top-1 agreement {100 * fid['top1_agreement']:.1f}%"
    print(line)
    for key, value in out.get("summary", {}).items():
        print(f"          {key}: {value}")
