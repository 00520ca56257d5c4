"""``slicer cuts | plan | run``: split inference from the command line.

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
    """Add the ``cuts``, ``plan`` and ``run`` sub-commands."""
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
    _add_runtime_options(plan)
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
    run.add_argument("--sparsity", type=float, default=0.9)
    run.add_argument("--blocks", type=int, default=3)
    run.add_argument("--bits", type=int, default=8)
    run.add_argument("--delta", type=float, default=0.01)
    run.add_argument("--asym", type=float, default=0.0)
    run.add_argument("--seed", type=int, default=0)
    run.add_argument("--groups", choices=["tensor", "rows"], default="tensor")
    run.add_argument("--raw", action="store_true", help="send the cut tensors uncompressed")
    _add_runtime_options(run)
    run.add_argument("--json", action="store_true", help="machine-readable JSON")
    run.set_defaults(func=cmd_run)


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
    from .runner import random_inputs

    proto, ext = load_model(model_path)
    sess = make_session(proto, ["CPUExecutionProvider"], 1, ext)
    return _inputs_from_file(args.inputs, sess) if args.inputs else random_inputs(sess)


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
            f"{f'{p.sparsity:g}' if p else '-':>5} {p.blocks if p else '-':>2} "
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


def cmd_run(args: argparse.Namespace) -> int:
    from .transport import CodecParams

    _check_codec_options(args)
    params = (
        None
        if args.raw
        else CodecParams(
            sparsity=args.sparsity,
            blocks=args.blocks,
            bits=args.bits,
            delta=args.delta,
            asym=args.asym,
            seed=args.seed,
            groups=args.groups,
        )
    )
    if args.model is None:
        from .demo import run_demo

        return run_demo(params, args)
    from tqdm import tqdm

    from .graph import Partitioner
    from .runner import SplitModel, json_result, random_inputs

    steps = tqdm(
        total=4,
        desc="split run",
        unit="step",
        file=sys.stderr,
        leave=False,
        disable=args.json and not sys.stderr.isatty(),
    )
    steps.set_postfix_str("loading model")
    part = Partitioner(_resolve_model(args.model))
    if args.split.strip().startswith("-") and args.split.strip()[1:].isdigit():
        raise ValueError(f"--split must be 'auto', a cut name or an index >= 0, got {args.split}")
    cut = _auto_cut(part) if args.split == "auto" else part.find_cut(args.split)
    steps.update(1)
    steps.set_postfix_str("building head / tail sessions")
    split = SplitModel(part, cut, providers=args.providers, threads=args.threads)
    steps.update(1)
    steps.set_postfix_str("uncut reference session")
    inputs = (
        _inputs_from_file(args.inputs, split.full) if args.inputs else random_inputs(split.full)
    )
    steps.update(1)
    steps.set_postfix_str("head -> codec -> tail")
    result = split.run(inputs, params)
    steps.update(1)
    steps.close()
    out = json_result(
        result,
        split.provider,
        {
            "model": args.model,
            "params": params.to_json() if params else None,
            "inputs": "file" if args.inputs else "random",
        },
    )
    if args.json:
        json.dump(out, sys.stdout, indent=1)
        print()
        return 0
    print_run_summary(out)
    return 0


def print_run_summary(out: dict[str, Any]) -> None:
    """Readable report of a ``run`` result dict (the JSON object)."""
    lat = out["latency_ms"]
    p = out.get("params")
    codec = (
        "raw (no codec)"
        if not p
        else f"sparsity {p['sparsity']:g}, {p['blocks']} blocks/sign, {p['bits']} bits, "
        f"δ={p['delta']:g}, groups={p['groups']}"
    )
    print(f"model     {out.get('model')}  [{out['provider']}]")
    print(f"cut       #{out['cut']['index']} {out['cut']['name']}")
    for t in out["tensors"]:
        coded = "codec" if t["name"] in out["coded_tensors"] else "raw"
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
