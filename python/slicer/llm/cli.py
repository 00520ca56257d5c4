"""``slicer generate``: autoregressive split decoding from the command line."""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
from typing import Any

from . import export, klt
from .messages import FRAMING_BYTES, make_codec
from .sessions import EdgeSession, ServerSession, run_split

DEFAULT_PROMPT = "Explain in two sentences why the sky is blue."
#: Dense-mode defaults (bench/RESULTS.md, "Autoregressive split decoding"): a fixed quantizer
#: step per model where one was measured (mid cuts: KL ≈ 0.002, top-1 ≈ 97 %), else a relative
#: L2 error per message (outlier channels dominate a row's norm, so it is the weaker choice).
DEFAULT_STEP = {"smollm2": 0.8, "gemma3": 3.2}
DEFAULT_REL_ERROR = 0.02


def _cut(text: str) -> int | str:
    if text == "auto":
        return text
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"cut must be a layer number or 'auto': {text!r}"
        ) from None


def _handover(text: str) -> int | str:
    if text == "auto":
        return text
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"handover must be an int >= 0 or 'auto': {text!r}"
        ) from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"handover must be >= 0: {text!r}")
    return value


def register(sub: Any) -> None:
    from ..cli import _bits, _blocks

    p = sub.add_parser(
        "generate",
        help="generate text with the LLM split between device and server (KV on both sides)",
        description="Autoregressive split decoding: the device runs layers 0..cut-1 (and, "
        "for the first w tokens, its own full model), the server runs the rest; one coded "
        "hidden row per token crosses the link.",
    )
    p.add_argument("model", nargs="?", default="smollm2", choices=sorted(export.SOURCES))
    p.add_argument("--prompt", default=DEFAULT_PROMPT, help="prompt text (default: a shipped one)")
    p.add_argument("--no-chat", action="store_true", help="do not apply the chat template")
    p.add_argument("--cut", type=_cut, default=None, help="layers on the device, or auto")
    p.add_argument("--handover", type=_handover, default=0, help="w local tokens, or auto")
    p.add_argument("--max-new", type=int, default=32, help="tokens to generate")
    p.add_argument(
        "--device-model",
        choices=("fp32", "int8"),
        default=None,
        help="full model for the w local steps (default fp32 when w > 0)",
    )
    p.add_argument(
        "--codec",
        choices=("raw", "fp16", "slicer", "frames"),
        default="frames",
        help="frames (default): a frame context in the prefill, one frame per decode step; "
        "slicer: one full SLICER stream per message",
    )
    p.add_argument(
        "--frame-states", type=int, choices=(1, 2, 4), default=1, help="frames: rANS states"
    )
    p.add_argument(
        "--frame-classes",
        type=int,
        default=1,
        metavar="K",
        help="frames: 1 (one frequency table) or 2-16 classes of row positions, each with its "
        "own table (docs/format.md §18; smaller frames, a larger context)",
    )
    p.add_argument(
        "--trellis",
        type=float,
        nargs="?",
        const=0.34,
        default=None,
        metavar="LAMBDA",
        help="trellis-coded quantization (docs/format.md §17.4 / §21; λ default 0.34): frames "
        "from a trellis context (about 0.9 dB less error at equal bytes), or with --codec "
        "slicer dense mode 3; without --step the model's default frame step is halved (a "
        "trellis step codes at about the rate of a dead-zone step twice as large)",
    )
    p.add_argument(
        "--mode",
        choices=("topk", "dense", "auto"),
        default=None,
        help="SLICER coding mode (default: dense when this build has it, else topk)",
    )
    p.add_argument(
        "--transform",
        default=None,
        metavar="auto|FILE",
        help="code the rows in a calibrated KLT basis: auto (fitted on calibration prose through "
        "the head on first use, cached beside the graphs) or a CutTransform .npz file; both "
        "sides hold it and the server refuses rows coded with another",
    )
    p.add_argument("--klt", action="store_true", help="same as --transform auto")
    p.add_argument("--rel-error", type=float, default=None, help="SLICER dense: rel. L2 error")
    p.add_argument("--step", type=float, default=None, help="SLICER dense: quantizer step")
    p.add_argument("--max-bytes", type=int, default=None, help="SLICER: bytes per message")
    p.add_argument("--sparsity", type=float, default=0.0, help="SLICER topk: fraction dropped")
    p.add_argument("--bits", type=_bits, default=8, help="SLICER: q_bit or widths 8,4,2")
    p.add_argument("--blocks", type=_blocks, default=None, help="SLICER: M or M+,M-")
    p.add_argument("--delta", type=float, default=0.0, help="SLICER: ABQ budget")
    p.add_argument("--temperature", type=float, default=0.0, help="0: greedy")
    p.add_argument("--top-k", type=int, default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--rate", default="20Mbps", help="link rate R for link time / planning")
    p.add_argument("--bandwidth", default="10MHz", help="link bandwidth W")
    p.add_argument("--snr", default="10", help="mean SNR γ (linear, or NdB)")
    p.add_argument("--deadline", default=None, help="planner: D for the handover, e.g. 500ms")
    p.add_argument("--memory", default=None, help="planner: device memory M_ar, e.g. 600MB")
    p.add_argument(
        "--device-factor", type=float, default=1.0, help="planner: device time / time measured here"
    )
    p.add_argument(
        "--reprofile",
        action="store_true",
        help="planner: measure the per-cut time and memory profile again (else cached)",
    )
    p.add_argument("--threads", type=int, default=1, help="ORT threads per graph")
    p.add_argument("--stop-at-eos", action="store_true", help="stop at the end-of-text token")
    p.add_argument("--json", action="store_true", help="print one JSON object at the end")
    p.set_defaults(func=_cmd_generate)


def _prompt_ids(model: str, text: str, chat: bool) -> list[int]:
    tok = export.tokenizer(model)
    if chat and getattr(tok, "chat_template", None):
        ids = tok.apply_chat_template(
            [{"role": "user", "content": text}], add_generation_prompt=True, tokenize=True
        )
        if isinstance(ids, dict) or hasattr(ids, "keys"):
            ids = ids["input_ids"]
        return [int(t) for t in ids]
    return [int(t) for t in tok(text)["input_ids"]]


def _has_dense() -> bool:
    import inspect

    import slicer

    return "mode" in inspect.signature(slicer.encode).parameters


def _codec_options(args: argparse.Namespace) -> dict:
    if args.codec == "frames":
        if args.max_bytes is not None:
            raise ValueError("--max-bytes applies to --codec slicer, not to frames")
        if args.step is not None and args.rel_error is not None:
            raise ValueError("give one of --step and --rel-error")
        opts: dict[str, Any] = {"states": args.frame_states}
        if args.frame_classes != 1:
            opts["classes"] = args.frame_classes
        if args.trellis is not None:
            opts["trellis"] = args.trellis
        if args.step is not None:
            return {**opts, "step": args.step}
        if args.rel_error is not None:
            return {**opts, "rel_error": args.rel_error}
        step = DEFAULT_STEP.get(args.model)
        if step and args.trellis is not None:
            step = step / 2
        return {**opts, **({"step": step} if step else {"rel_error": DEFAULT_REL_ERROR})}
    if args.codec != "slicer":
        if args.trellis is not None:
            raise ValueError("--trellis applies to --codec frames or --codec slicer --mode dense")
        return {}
    mode = args.mode or ("dense" if _has_dense() else "topk")
    if args.trellis is not None and mode != "dense":
        raise ValueError("--trellis applies to --codec frames or --codec slicer --mode dense")
    if mode == "topk":
        opts = {"sparsity": args.sparsity, "bits": args.bits, "delta": args.delta}
        if args.blocks is not None:
            opts["blocks"] = args.blocks
        if args.max_bytes is not None:
            opts["max_bytes"] = max(args.max_bytes - FRAMING_BYTES, 1)
        if args.mode is not None:
            opts["mode"] = "topk"
        return opts
    opts = {"mode": mode}
    if args.trellis is not None:
        opts["trellis"] = args.trellis
    given = {"rel_error": args.rel_error, "step": args.step, "max_bytes": args.max_bytes}
    given = {k: v for k, v in given.items() if v is not None}
    if not given:
        step = DEFAULT_STEP.get(args.model)
        given = {"step": step} if step else {"rel_error": DEFAULT_REL_ERROR}
    if "max_bytes" in given:  # the budget is for the whole message, framing included
        given["max_bytes"] = max(given["max_bytes"] - FRAMING_BYTES, 1)
    return {**opts, **given}


def _choose(args: argparse.Namespace, info: export.ModelInfo, prompt_len: int, link: Any) -> tuple:
    from ..split.link import parse_bytes, parse_seconds
    from .planner import ARProfile, plan, row_bytes_for
    from .profile import head_weight_bytes, load_profile

    if args.cut != "auto" and args.handover != "auto":
        cut = info.layers // 2 if args.cut is None else args.cut
        return cut, args.handover, None
    device_model = args.device_model or "fp32"
    data, cached = load_profile(
        args.model,
        device_model=device_model,
        threads=args.threads,
        refresh=args.reprofile,
        progress=not args.json,
    )
    if not args.json:
        mem = data["memory"]
        print(
            f"[profile] {'cached' if cached else 'measured'} ({args.model} cuts "
            f"{', '.join(map(str, data['cuts']))}, {device_model} device model, "
            f"{args.threads} thread(s)): per layer {data['fit']['layer']['call']:.2f} ms a step; "
            f"peak memory {mem['factor']:.2f} x head weights {mem['base'] / 1e6:+.0f} MB, "
            f"margin {100 * mem['margin']:.0f} %",
            file=sys.stderr,
        )
    profile = ARProfile.from_profile(
        info,
        data,
        row_bytes_for(args.codec, info.hidden, _codec_options(args)),
        head_bytes={c: head_weight_bytes(args.model, c) for c in range(1, info.layers)},
        device_factor=args.device_factor,
    )
    cuts = None if args.cut in ("auto", None) else [args.cut]
    handovers = None if args.handover == "auto" else [args.handover]
    chosen = plan(
        profile,
        prompt_len=prompt_len,
        max_new=args.max_new,
        link=link,
        deadline_s=parse_seconds(args.deadline) if args.deadline else math.inf,
        memory_bytes=parse_bytes(args.memory) if args.memory else math.inf,
        cuts=cuts,
        handovers=handovers,
    )
    return chosen.cut, chosen.handover, chosen


def summarize(steps: list, hidden: int) -> dict:
    decode = [s for s in steps if s.kind == "decode"]
    first = [s for s in steps if s.kind in ("prefill", "handover")]
    local = [s for s in steps if s.kind == "local"]

    def med(values: list[float]) -> float:
        return round(statistics.median(values), 3) if values else 0.0

    return {
        "tokens": len(steps),
        "local_steps": len(local),
        "local_ms_median": med([s.device_ms for s in local]),
        "first_message": first[0].to_json() if first else None,
        "decode_steps": len(decode),
        "bytes_up_per_step": med([s.bytes_up for s in decode]),
        "bytes_down_per_step": med([s.bytes_down for s in decode]),
        "bits_per_element": med([s.bits_per_element for s in decode]),
        "device_ms": med([s.device_ms for s in decode]),
        "codec_ms": med([s.codec_ms for s in decode]),
        "link_ms": med([s.link_ms for s in decode]),
        "server_ms": med([s.server_ms for s in decode]),
    }


def _cmd_generate(args: argparse.Namespace) -> int:
    from ..split.link import Link, parse_hertz, parse_rate, parse_snr

    if args.max_new < 1:
        raise ValueError(f"--max-new must be >= 1, got {args.max_new}")
    link = Link(parse_rate(args.rate), parse_hertz(args.bandwidth), parse_snr(args.snr))
    info = export.model_info(args.model)
    prompt = _prompt_ids(args.model, args.prompt, not args.no_chat)
    cut, handover, chosen = _choose(args, info, len(prompt), link)
    if chosen is not None and not args.json:
        print(
            f"[plan] cut {cut}, handover w={handover}: L_AR {chosen.latency_ms:.1f} ms, "
            f"total {chosen.total_ms:.0f} ms, device memory {chosen.memory_bytes / 1e6:.0f} MB",
            file=sys.stderr,
        )
    codec = make_codec(args.codec, **_codec_options(args))
    device_model = args.device_model or ("fp32" if handover > 0 else None)
    if args.klt and args.transform not in (None, "auto"):
        raise ValueError("give one of --klt and --transform FILE")
    spec = "auto" if args.klt else args.transform
    transform = klt.resolve(spec, args.model, cut, progress=not args.json)
    edge = EdgeSession(
        args.model,
        cut,
        codec,
        device_model=device_model,
        threads=args.threads,
        transform=transform,
    )
    server = ServerSession(
        args.model,
        cut,
        threads=args.threads,
        temperature=args.temperature,
        top_k=args.top_k,
        seed=args.seed,
        transform=transform,
    )
    tok = export.tokenizer(args.model)
    shown = ""
    gen_tokens: list[int] = []

    def stream(token: int, stats: Any) -> None:
        nonlocal shown
        if args.json:
            return
        text = tok.decode(gen_tokens + [token], skip_special_tokens=True)
        sys.stdout.write(text[len(shown) :])
        sys.stdout.flush()
        shown = text
        gen_tokens.append(token)

    gen = run_split(
        edge,
        server,
        prompt,
        args.max_new,
        handover=handover,
        stop_at_eos=args.stop_at_eos,
        link=link,
        on_token=stream,
    )
    summary = summarize(gen.steps, info.hidden)
    if args.json:
        out = {
            "model": args.model,
            "cut": cut,
            "handover": handover,
            "codec": codec.describe(),
            "transform": None if transform is None else transform.fingerprint(),
            "prompt_tokens": len(prompt),
            "text": tok.decode(gen.tokens, skip_special_tokens=True),
            "tokens": gen.tokens,
            "summary": summary,
            "plan": chosen.to_json() if chosen is not None else None,
            "steps": [s.to_json() for s in gen.steps],
        }
        print(json.dumps(out, indent=1))
        return 0
    print(flush=True)
    s = summary
    print(
        f"[{args.model} cut {cut}/{info.layers}, w={handover}, {codec.describe()}"
        f"{'' if transform is None else ', KLT ' + format(edge.transform_tag, '08x')}] "
        f"{s['tokens']} tokens ({s['local_steps']} local); per decode step: "
        f"{s['bytes_up_per_step']:.0f} B up ({s['bits_per_element']:.2f} bits/element), "
        f"{summary['bytes_down_per_step']:.0f} B down; device {summary['device_ms']:.2f} ms, "
        f"codec {summary['codec_ms']:.2f} ms, link {summary['link_ms']:.2f} ms, "
        f"server {summary['server_ms']:.2f} ms",
        file=sys.stderr,
    )
    return 0
