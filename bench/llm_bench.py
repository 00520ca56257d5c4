"""Autoregressive split decoding of real LLMs: the measurements behind bench/RESULTS.md.

    python bench/llm_bench.py lossless --model smollm2 --cuts 5 15 25 --new 256
    python bench/llm_bench.py quality  --model smollm2 --cuts 5 15 25 --tokens 10240
    python bench/llm_bench.py quality  --cuts 15 --tokens 1024 --settings "frames q3.2" "dense q3.2"
    python bench/llm_bench.py drift    --model smollm2 --cut 15 --new 512
    python bench/llm_bench.py handover --model smollm2 --cut 15 --new 64
    python bench/llm_bench.py memory   --model smollm2 --cuts 5 15 25
    python bench/llm_bench.py plan     --model smollm2

Each writes bench/llm_results/<command>_<model>.json and prints a table; drift and quality
also draw bench/plots/llm_*.png. All runs are CPU, ONNX Runtime, one thread per graph.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from slicer.llm import export
from slicer.llm.messages import FrameStream, framing_bytes, make_codec
from slicer.llm.sessions import EdgeSession, ServerSession, _Stack, reference_greedy, run_split

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "llm_results"
PLOTS = HERE / "plots"

# Codec settings: a name → make_codec arguments. Top-K (format 1) and, when the build has it,
# dense mode (format 2) at fixed relative errors.
SETTINGS = {
    "topk s0 b8": ("slicer", {"mode": "topk", "sparsity": 0.0, "bits": 8, "delta": 0.0}),
    "topk s.5 b6": ("slicer", {"mode": "topk", "sparsity": 0.5, "bits": 6, "delta": 0.0}),
    "topk s.5 b4": ("slicer", {"mode": "topk", "sparsity": 0.5, "bits": 4, "delta": 0.0}),
    "dense e.02": ("slicer", {"mode": "dense", "rel_error": 0.02}),
    "dense e.05": ("slicer", {"mode": "dense", "rel_error": 0.05}),
    "dense q0.4": ("slicer", {"mode": "dense", "step": 0.4}),
    "dense q0.8": ("slicer", {"mode": "dense", "step": 0.8}),
    "dense q1.6": ("slicer", {"mode": "dense", "step": 1.6}),
    "dense q3.2": ("slicer", {"mode": "dense", "step": 3.2}),
    "dense q6.4": ("slicer", {"mode": "dense", "step": 6.4}),
    "fp16": ("fp16", {}),
    # frames (format 2 §17): a context from the first --prefill rows of each chunk, then one
    # frame per row; K = 1 rANS state unless "k2"
    "frames q0.8": ("frames", {"step": 0.8}),
    "frames q1.6": ("frames", {"step": 1.6}),
    "frames q2.4": ("frames", {"step": 2.4}),
    "frames q3.2": ("frames", {"step": 3.2}),
    "frames q3.2 k2": ("frames", {"step": 3.2, "states": 2}),
    "frames q4.0": ("frames", {"step": 4.0}),
    "frames e.09": ("frames", {"rel_error": 0.09}),
    "frames e.11": ("frames", {"rel_error": 0.11}),
}


def _available(names: list[str]) -> dict:
    out = {}
    for name in names:
        kind, opts = SETTINGS[name]
        try:
            out[name] = make_codec(kind, **opts)
        except (ValueError, TypeError) as exc:
            print(f"skipping {name}: {exc}", file=sys.stderr)
    return out


def _save(command: str, model: str, data: dict, tag: str = "") -> Path:
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{command}_{model}{'_' + tag if tag else ''}.json"
    path.write_text(json.dumps(data, indent=1))
    print(f"wrote {path.relative_to(HERE.parent)}")
    return path


def _prose_ids(model: str, count: int) -> list[int]:
    from slicer.split.zoo import prose_text

    tok = export.tokenizer(model)
    ids = tok(prose_text())["input_ids"]
    if len(ids) < count:
        raise ValueError(f"the prose has {len(ids)} tokens, fewer than {count}")
    return [int(t) for t in ids[:count]]


def _log_softmax(z: np.ndarray) -> np.ndarray:
    z = z.astype(np.float64)
    m = z.max(axis=-1, keepdims=True)
    return z - m - np.log(np.exp(z - m).sum(axis=-1, keepdims=True))


def _kl(ref_logp: np.ndarray, logits: np.ndarray) -> np.ndarray:
    q = _log_softmax(logits)
    return np.sum(np.exp(ref_logp) * (ref_logp - q), axis=-1)


# --------------------------------------------------------------------------- lossless


def cmd_lossless(args: argparse.Namespace) -> None:
    tok = export.tokenizer(args.model)
    prompt = tok(args.prompt)["input_ids"]
    began = time.perf_counter()
    ref = reference_greedy(args.model, prompt, args.new)
    ref_s = time.perf_counter() - began
    rows = []
    for cut in args.cuts:
        edge = EdgeSession(args.model, cut, "raw")
        server = ServerSession(args.model, cut)
        began = time.perf_counter()
        gen = run_split(edge, server, prompt, args.new)
        secs = time.perf_counter() - began
        same = sum(a == b for a, b in zip(gen.tokens, ref, strict=True))
        first_diff = next(
            (i for i, (a, b) in enumerate(zip(gen.tokens, ref, strict=True)) if a != b), None
        )
        rows.append(
            {
                "cut": cut,
                "new_tokens": args.new,
                "identical": gen.tokens == ref,
                "equal_tokens": same,
                "first_difference": first_diff,
                "seconds": round(secs, 1),
            }
        )
        print(rows[-1])
    _save(
        "lossless",
        args.model,
        {
            "prompt": args.prompt,
            "reference_seconds": round(ref_s, 1),
            "cuts": rows,
            "text": tok.decode(ref),
        },
    )


# --------------------------------------------------------------------------- quality


def cmd_quality(args: argparse.Namespace) -> None:
    """Teacher-forced: each text row coded as one decode-step message, tail logits compared
    with the lossless split (identical to the un-split model) — KL, top-1, perplexity."""
    info = export.model_info(args.model)
    ids = _prose_ids(args.model, args.tokens)
    codecs = _available(args.settings)
    chunk = args.chunk
    pre = args.prefill
    if not 1 <= pre < chunk:
        raise ValueError(f"--prefill must be in 1..{chunk - 1}, got {pre}")
    out = {"model": args.model, "tokens": len(ids), "chunk": chunk, "prefill": pre, "cuts": {}}
    for cut in args.cuts:
        head = _Stack(export.graph_path(args.model, "head", cut), info, range(cut), 1)
        tail = _Stack(export.graph_path(args.model, "tail", cut), info, range(cut, info.layers), 1)
        acc = {
            name: {"kl": [], "top1": [], "nll": [], "bytes": [], "enc_ms": []} for name in codecs
        }
        acc["lossless"] = {"kl": [], "top1": [], "nll": [], "bytes": [], "enc_ms": []}
        chunks = [ids[i : i + chunk] for i in range(0, len(ids) - chunk + 1, chunk)]
        for piece in tqdm(chunks, desc=f"{args.model} cut {cut}", leave=False):
            x = np.asarray(piece, np.int64)[None]
            head.reset()
            hidden = head.run(x, 0)
            tail.reset()
            ref_logits = tail.run(hidden, 0)[0]
            ref_logp = _log_softmax(ref_logits)
            target = np.asarray(piece[1:])
            ref_top = ref_logits.argmax(-1)
            acc["lossless"]["nll"].append(-ref_logp[np.arange(len(target)), target])
            # bytes of a decode-step message at row r: payload + framing (session 1, step and
            # position r); the prefill rows (r < --prefill) are not counted in bytes
            framing = np.asarray([framing_bytes(1, 1, r, r) for r in range(len(piece))])
            acc["lossless"]["bytes"].append((4 * info.hidden + framing)[pre:])
            for name, codec in codecs.items():
                rows, sizes = [], []
                t0 = time.perf_counter()
                if codec.name == "frames":
                    first = codec.encode(hidden[0, :pre], first=True)
                    stream, decoded = FrameStream.open(first, pre, info.hidden)
                    rows.append(decoded[0])
                    for r in range(pre, hidden.shape[1]):
                        payload = codec.encode(hidden[0, r : r + 1], first=False)
                        sizes.append(len(payload) + framing[r])
                        rows.append(stream.decode(payload, 1)[0])
                else:
                    for r in range(hidden.shape[1]):
                        payload = codec.encode(hidden[0, r : r + 1])
                        if r >= pre:
                            sizes.append(len(payload) + framing[r])
                        rows.append(codec.decode(payload, 1, info.hidden)[0])
                enc_ms = 1e3 * (time.perf_counter() - t0) / hidden.shape[1]
                tail.reset()
                logits = tail.run(np.concatenate(rows)[None], 0)[0]
                logp = _log_softmax(logits)
                a = acc[name]
                a["kl"].append(np.sum(np.exp(ref_logp) * (ref_logp - logp), axis=-1)[pre:])
                a["top1"].append((logits.argmax(-1) == ref_top)[pre:])
                a["nll"].append(-logp[np.arange(len(target)), target])
                a["bytes"].append(np.asarray(sizes))
                a["enc_ms"].append(enc_ms)
        res = {}
        for name, a in acc.items():
            nll = np.concatenate(a["nll"])
            entry = {
                "perplexity": float(np.exp(nll.mean())),
                "bytes_per_row": float(np.concatenate(a["bytes"]).mean()),
                "bits_per_element": float(8 * np.concatenate(a["bytes"]).mean() / info.hidden),
            }
            if a["kl"]:
                kl = np.concatenate(a["kl"])
                entry.update(
                    kl_mean=float(kl.mean()),
                    kl_p99=float(np.quantile(kl, 0.99)),
                    top1=float(np.concatenate(a["top1"]).mean()),
                    codec_ms_per_row=float(np.mean(a["enc_ms"])),
                )
            res[name] = entry
        ref_ppl = res["lossless"]["perplexity"]
        for entry in res.values():
            entry["ppl_change"] = entry["perplexity"] / ref_ppl - 1
        out["cuts"][str(cut)] = res
        print(f"\n{args.model} cut {cut}: {len(chunks) * chunk} tokens")
        print(
            f"{'setting':14} {'B/row':>7} {'b/el':>6} {'KL':>8} {'top1':>7} {'ppl':>8} {'dppl':>7}"
        )
        for name, e in res.items():
            print(
                f"{name:14} {e['bytes_per_row']:7.1f} {e['bits_per_element']:6.2f} "
                f"{e.get('kl_mean', 0):8.4f} {e.get('top1', 1):7.4f} {e['perplexity']:8.3f} "
                f"{100 * e['ppl_change']:6.2f}%"
            )
    _save("quality", args.model, out, args.tag)


# --------------------------------------------------------------------------- drift


def cmd_drift(args: argparse.Namespace) -> None:
    """Free-running generation with the codec; at each step the KL between the coded split's
    logits and a lossless tail fed the exact rows of the same context."""
    info = export.model_info(args.model)
    prompt = _prose_ids(args.model, args.prompt_tokens)
    codecs = _available(args.settings)
    out = {"model": args.model, "cut": args.cut, "new": args.new, "settings": {}}
    for name, codec in codecs.items():
        edge = EdgeSession(args.model, args.cut, codec)
        server = ServerSession(args.model, args.cut)
        ref_tail = _Stack(
            export.graph_path(args.model, "tail", args.cut), info, range(args.cut, info.layers), 1
        )
        kls, tail_ms, codec_ms, up = [], [], [], []
        bar = tqdm(total=args.new, desc=f"drift {name}", leave=False)

        def on_token(  # noqa: ANN202
            token,
            stats,
            edge=edge,
            server=server,
            ref_tail=ref_tail,  # noqa: ANN001
            kls=kls,
            tail_ms=tail_ms,
            codec_ms=codec_ms,
            up=up,
            bar=bar,  # noqa: ANN001
        ):
            ref = ref_tail.run(edge.last_hidden, ref_tail.length)[0, -1]
            kls.append(float(_kl(_log_softmax(ref[None]), server.last_logits[-1:])[0]))
            if stats.kind == "decode":
                tail_ms.append(stats.server_ms)
                codec_ms.append(stats.codec_ms)
                up.append(stats.bytes_up)
            bar.update(1)

        run_split(edge, server, prompt, args.new, on_token=on_token)
        bar.close()
        steps = np.arange(len(kls))
        slope, intercept = np.polyfit(steps, kls, 1)
        out["settings"][name] = {
            "kl_per_step": kls,
            "kl_mean": float(np.mean(kls)),
            "slope_per_step": float(slope),
            "intercept": float(intercept),
            "bytes_up_median": float(np.median(up)),
            "bits_per_element": float(8 * np.median(up) / info.hidden),
            "codec_ms_median": float(np.median(codec_ms)),
            "tail_ms_median": float(np.median(tail_ms)),
            "codec_share_of_tail": float(np.median(codec_ms) / np.median(tail_ms)),
        }
        e = out["settings"][name]
        print(
            f"{name}: {e['bits_per_element']:.2f} b/el ({e['bytes_up_median']:.0f} B/step), KL "
            f"mean {e['kl_mean']:.4f}, slope {slope:.2e}/step; codec {e['codec_ms_median']:.3f} ms "
            f"= {100 * e['codec_share_of_tail']:.2f}% of the tail's {e['tail_ms_median']:.1f} ms"
        )
    _save("drift", args.model, out, args.tag)
    if not args.tag:  # a tagged run leaves the published plot alone
        plot_drift(out)


def plot_drift(out: dict) -> None:
    """KL per step (thin), its 32-step moving mean (solid) and the fitted line (dashed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for name, e in out["settings"].items():
        kls = np.asarray(e["kl_per_step"])
        steps = np.arange(len(kls))
        label = f"{name} ({e['bits_per_element']:.2f} b/el), slope {e['slope_per_step']:.1e}/step"
        ax.plot(steps, kls, lw=0.4, alpha=0.35)
        color = ax.lines[-1].get_color()
        mean = np.convolve(kls, np.ones(32) / 32, mode="valid")
        ax.plot(steps[31:], mean, lw=1.6, color=color, label=label)
        ax.plot(steps, e["slope_per_step"] * steps + e["intercept"], lw=1.2, ls="--", color=color)
    ax.set_xlabel("generated token (free-running greedy)")
    ax.set_ylabel("KL(lossless || coded)")
    ax.set_ylim(0, 0.05)
    ax.set_title(
        f"{out['model']}, cut {out['cut']}: KL per step over {out['new']} tokens\n"
        "thin: per step, solid: 32-step mean, dashed: fitted line"
    )
    ax.legend(fontsize=8)
    fig.tight_layout()
    PLOTS.mkdir(exist_ok=True)
    fig.savefig(PLOTS / f"llm_drift_{out['model']}.png", dpi=120)


def cmd_replot(args: argparse.Namespace) -> None:
    plot_drift(json.loads((RESULTS / f"drift_{args.model}.json").read_text()))


# --------------------------------------------------------------------------- handover


def cmd_handover(args: argparse.Namespace) -> None:
    """Tokens with w local steps on the int8 (and fp32) device model vs the fp32 reference."""
    tok = export.tokenizer(args.model)
    prompt = tok(args.prompt)["input_ids"]
    ref = reference_greedy(args.model, prompt, args.new)
    rows = []
    for device_model in ("fp32", "int8"):
        began = time.perf_counter()
        path = export.graph_path(args.model, "full") if device_model == "fp32" else None
        if device_model == "int8":
            path = export.int8_graph_path(args.model)
        prep = time.perf_counter() - began
        for w in args.w:
            edge = EdgeSession(
                args.model, args.cut, "raw", device_model=device_model if w else None
            )
            server = ServerSession(args.model, args.cut)
            gen = run_split(edge, server, prompt, args.new, handover=w)
            same = sum(a == b for a, b in zip(gen.tokens, ref, strict=True))
            first = next(
                (i for i, (a, b) in enumerate(zip(gen.tokens, ref, strict=True)) if a != b), None
            )
            local_ms = [s.device_ms for s in gen.steps if s.kind == "local"]
            rows.append(
                {
                    "device_model": device_model,
                    "model_bytes": path.stat().st_size,
                    "w": w,
                    "equal_tokens": same,
                    "of": args.new,
                    "first_difference": first,
                    "local_ms_median": float(np.median(local_ms)) if local_ms else None,
                    "prepare_seconds": round(prep, 1),
                }
            )
            print(rows[-1])
    ppl = _device_model_perplexity(args.model, args.tokens)
    print(ppl)
    _save(
        "handover",
        args.model,
        {"cut": args.cut, "prompt": args.prompt, "runs": rows, "perplexity": ppl},
    )


def _device_model_perplexity(model: str, count: int) -> dict:
    info = export.model_info(model)
    ids = _prose_ids(model, count)
    out = {}
    for name, path in (
        ("fp32", export.graph_path(model, "full")),
        ("int8", export.int8_graph_path(model)),
    ):
        stack = _Stack(path, info, range(info.layers), 1)
        nll = []
        for i in range(0, len(ids) - 511, 512):
            stack.reset()
            logits = stack.run(np.asarray(ids[i : i + 512], np.int64)[None], 0)[0]
            logp = _log_softmax(logits[:-1])
            nll.append(-logp[np.arange(511), ids[i + 1 : i + 512]])
        out[name] = float(np.exp(np.concatenate(nll).mean()))
    out["tokens"] = count
    return out


# --------------------------------------------------------------------------- memory

_MEMORY_CHILD = r"""
import json, sys, numpy as np
from slicer.llm.sessions import EdgeSession
model, cut, steps, device = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
import onnxruntime  # noqa: F401  (counted in the baseline)
def hwm_kb():  # VmHWM starts afresh at exec; ru_maxrss keeps the forking parent's peak
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
base = hwm_kb()
edge = EdgeSession(model, cut, "raw", device_model=None if device == "none" else device)
edge.start(np.arange(100, 164))
if device != "none":
    for _ in range(steps):
        edge.local_step()
else:
    edge.offload()
    for _ in range(steps):
        edge.tokens.append(100)
        edge.step += 1
        edge.decode_message()
peak = hwm_kb()
print(json.dumps({"baseline_kb": base, "peak_kb": peak}))
"""


def cmd_memory(args: argparse.Namespace) -> None:
    """Peak resident memory of a process holding the device side (64 prompt + N steps)."""
    info = export.model_info(args.model)
    rows = []
    cases = [(cut, "none") for cut in args.cuts] + [(args.cuts[0], "fp32"), (args.cuts[0], "int8")]
    for cut, device in cases:
        export.graph_path(args.model, "head", cut)
        if device == "int8":
            export.int8_graph_path(args.model)
        res = subprocess.run(
            [sys.executable, "-c", _MEMORY_CHILD, args.model, str(cut), str(args.steps), device],
            capture_output=True,
            text=True,
            check=True,
        )
        data = json.loads(res.stdout.strip().splitlines()[-1])
        weights = (
            4 * (info.embed_params + cut * info.layer_params)
            if device == "none"
            else (
                export.graph_path(args.model, "full")
                if device == "fp32"
                else export.int8_graph_path(args.model)
            )
            .stat()
            .st_size
        )
        row = {
            "cut": cut if device == "none" else None,
            "device_part": "head" if device == "none" else f"full {device}",
            "peak_rss_mb": data["peak_kb"] / 1024,
            "above_baseline_mb": (data["peak_kb"] - data["baseline_kb"]) / 1024,
            "weights_mb": weights / 2**20,
        }
        rows.append(row)
        print(row)
    _save("memory", args.model, {"steps": args.steps, "prompt": 64, "rows": rows})


# --------------------------------------------------------------------------- planner


def cmd_plan(args: argparse.Namespace) -> None:
    """Measured head / tail step times per cut vs the planner's split of the full model."""
    from slicer.llm.planner import ARProfile, measure_model, plan, row_bytes_for
    from slicer.split.link import Link

    info = export.model_info(args.model)
    call_ms, row_ms = measure_model(args.model, "fp32")
    prof = ARProfile.from_full_model(info, call_ms, row_ms, row_bytes_for("raw", info.hidden))
    rows = []
    for cut in args.cuts:
        head = _Stack(export.graph_path(args.model, "head", cut), info, range(cut), 1)
        tail = _Stack(export.graph_path(args.model, "tail", cut), info, range(cut, info.layers), 1)
        ids = np.full((1, 64), 100, np.int64)
        h = head.run(ids, 0)
        tail.run(h, 0)
        hs, ts = [], []
        for _ in range(9):
            t0 = time.perf_counter()
            h = head.run(ids[:, :1], head.length)
            t1 = time.perf_counter()
            tail.run(h, tail.length)
            t2 = time.perf_counter()
            hs.append(1e3 * (t1 - t0))
            ts.append(1e3 * (t2 - t1))
        rows.append(
            {
                "cut": cut,
                "head_ms": float(np.median(hs)),
                "head_model_ms": prof.head[cut][0] + prof.head[cut][1],
                "tail_ms": float(np.median(ts)),
                "tail_model_ms": prof.tail[cut][0] + prof.tail[cut][1],
            }
        )
        print(rows[-1])
    choices = []
    for rate, factor in ((20e6, 1.0), (20e6, 4.0), (1e5, 4.0), (2e6, 4.0)):
        p = plan(
            prof
            if factor == 1.0
            else ARProfile.from_full_model(
                info, call_ms, row_ms, row_bytes_for("raw", info.hidden), device_factor=factor
            ),
            prompt_len=64,
            max_new=128,
            link=Link(rate),
        )
        choices.append({"rate_bps": rate, "device_factor": factor, **p.to_json()})
        print(choices[-1])
    _save(
        "plan",
        args.model,
        {"full_call_ms": call_ms, "full_row_ms": row_ms, "cuts": rows, "choices": choices},
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--model", default="smollm2", choices=sorted(export.SOURCES))
    p = sub.add_parser("lossless", parents=[common])
    p.add_argument("--cuts", type=int, nargs="+", default=[5, 15, 25])
    p.add_argument("--new", type=int, default=256)
    p.add_argument("--prompt", default="The history of the printing press begins")
    p = sub.add_parser("quality", parents=[common])
    p.add_argument("--cuts", type=int, nargs="+", default=[5, 15, 25])
    p.add_argument("--tokens", type=int, default=10240)
    p.add_argument("--chunk", type=int, default=512)
    p.add_argument(
        "--prefill",
        type=int,
        default=1,
        help="rows of each chunk sent as the prefill (frames: the context's calibration); "
        "KL, top-1 and bytes count the later rows only",
    )
    p.add_argument("--settings", nargs="+", default=list(SETTINGS))
    p.add_argument("--tag", default="", help="suffix of the result file")
    p = sub.add_parser("drift", parents=[common])
    p.add_argument("--cut", type=int, default=15)
    p.add_argument("--new", type=int, default=512)
    p.add_argument("--prompt-tokens", type=int, default=64)
    p.add_argument("--settings", nargs="+", default=["dense q0.8", "dense q1.6", "dense q3.2"])
    p.add_argument("--tag", default="", help="suffix of the result file (no plot then)")
    p = sub.add_parser("handover", parents=[common])
    p.add_argument("--cut", type=int, default=15)
    p.add_argument("--new", type=int, default=64)
    p.add_argument("--w", type=int, nargs="+", default=[0, 4, 16, 48])
    p.add_argument("--tokens", type=int, default=4096)
    p.add_argument("--prompt", default="The history of the printing press begins")
    p = sub.add_parser("memory", parents=[common])
    p.add_argument("--cuts", type=int, nargs="+", default=[5, 15, 25])
    p.add_argument("--steps", type=int, default=64)
    p = sub.add_parser("replot", parents=[common], help="redraw the drift plot from its JSON")
    p = sub.add_parser("plan", parents=[common])
    p.add_argument("--cuts", type=int, nargs="+", default=[5, 15, 25])
    args = parser.parse_args()
    {
        "lossless": cmd_lossless,
        "quality": cmd_quality,
        "drift": cmd_drift,
        "handover": cmd_handover,
        "memory": cmd_memory,
        "plan": cmd_plan,
        "replot": cmd_replot,
    }[args.command](args)
    print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


if __name__ == "__main__":
    main()
