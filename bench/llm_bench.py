"""Autoregressive split decoding of real LLMs: the measurements behind bench/RESULTS.md.

    python bench/llm_bench.py lossless --model smollm2 --cuts 5 15 25 --new 256
    python bench/llm_bench.py quality  --model smollm2 --cuts 5 15 25 --tokens 10240
    python bench/llm_bench.py quality  --cuts 15 --tokens 1024 --settings "frames q3.2" "dense q3.2"
    python bench/llm_bench.py quality  --cuts 15 --settings "frames q3" "frames q3 klt"
    python bench/llm_bench.py quality  --cuts 15 --settings "frames q2 c8" "frames q2 c8 klt"
    python bench/llm_bench.py quality  --cuts 15 --settings "frames q1 c8 klt-all t"  # trellis
    python bench/llm_bench.py quality  --cuts 15 --settings "frames q1 c8 klt-all t cal"  # §13.15
    python bench/llm_bench.py drift    --model smollm2 --cut 15 --new 512
    python bench/llm_bench.py handover --model smollm2 --cut 15 --new 64
    python bench/llm_bench.py memory   --model smollm2 --cuts 1 5 11 15 25
    python bench/llm_bench.py plan     --model smollm2 --cuts 1 5 11 15 20 25
    python bench/llm_bench.py export   --model smollm2 --cuts 10 --cache /tmp/fresh-cache

Each writes bench/llm_results/<command>_<model>.json and prints a table; drift and quality
also draw bench/plots/llm_*.png. All runs are CPU, ONNX Runtime, one thread per graph.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from slicer.llm import export, klt
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


#: Setting suffixes that code the rows in a calibrated KLT basis (slicer.llm.klt): " klt" with
#: the shipped recipe, " klt-all" fitted on every row (the shipped recipe since §13.11),
#: " klt-x8" without the rows above 8x their chunk's median norm (the attention-sink rows;
#: the results of §13.11 name it " klt", the recipe of the first runs).
KLT_SUFFIXES = {
    " klt-all": klt.Recipe(outlier_ratio=None),
    " klt-x8": klt.Recipe(outlier_ratio=8.0),
    " klt": klt.DEFAULT_RECIPE,
}


def _setting(name: str) -> tuple[str, dict]:
    """SETTINGS[name], or "frames qX" / "dense qX" / "frames eX" for any step / rel. error."""
    if name in SETTINGS:
        return SETTINGS[name]
    kind, _, value = name.partition(" ")
    if kind in ("frames", "dense") and value[:1] in ("q", "e"):
        try:
            number = float(value[1:])
        except ValueError:
            number = None
        if number is not None:
            opts = {"step": number} if value[0] == "q" else {"rel_error": number}
            return ("frames", opts) if kind == "frames" else ("slicer", {"mode": "dense", **opts})
    raise SystemExit(f"unknown setting {name!r}")


def _split_classes(name: str) -> tuple[str, int]:
    """``"frames q2.0 c8"`` -> ``("frames q2.0", 8)``: frames under a class-map context (§18)."""
    head, _, last = name.rpartition(" ")
    if head and last[:1] == "c" and last[1:].isdigit():
        return head, int(last[1:])
    return name, 1


def _split_trellis(name: str) -> tuple[str, float | None]:
    """``"frames q1.0 c8 t"`` -> ``("frames q1.0 c8", 0.34)``: a trellis context (§17.4) with
    λ = 0.34, or ``" tX"`` with λ = X; without the token, ``(name, None)``."""
    head, _, last = name.rpartition(" ")
    if head and last[:1] == "t":
        if last == "t":
            return head, 0.34
        try:
            return head, float(last[1:])
        except ValueError:
            pass
    return name, None


def _split_klt(name: str) -> tuple[str, klt.Recipe | None]:
    """The name without its KLT suffix (a trailing trellis token stays: "frames q1 klt-all t"
    -> "frames q1 t"), and the recipe."""
    core, _ = _split_trellis(name)  # a trellis token may follow the KLT suffix
    for suffix, recipe in KLT_SUFFIXES.items():
        if core.endswith(suffix):
            return core[: -len(suffix)] + name[len(core) :], recipe
    return name, None


def _klt_suffix(name: str) -> str:
    core, _ = _split_trellis(_split_context(name)[0])
    return next((s for s in KLT_SUFFIXES if core.endswith(s)), "")


#: A last setting token that chooses the rows a frame context is built from (default: the
#: first --prefill rows of each chunk): " cal" the KLT recipe's calibration rows (the text the
#: transform is fitted on, in its basis), " cal+p" those and the chunk's prefill rows.
CONTEXT_TOKENS = (" cal+p", " cal")


def _split_context(name: str) -> tuple[str, str | None]:
    """``"frames q1 c8 klt-all t cal"`` -> ``("frames q1 c8 klt-all t", "cal")``."""
    for token in CONTEXT_TOKENS:
        if name.endswith(token):
            return name[: -len(token)], token[1:]
    return name, None


def _available(names: list[str]) -> dict:
    out = {}
    for full in names:
        name, ctx = _split_context(full)
        if ctx is not None and _split_klt(name)[1] is None:
            raise SystemExit(f"{full!r}: a calibration context needs a KLT setting")
        name = full if ctx is None else name
        core, lam = _split_trellis(_split_klt(name)[0])
        base, classes = _split_classes(core)
        kind, opts = _setting(base)
        if classes != 1:
            if kind != "frames":
                raise SystemExit(f"{name!r}: a class-map suffix applies to frames settings only")
            opts = {**opts, "classes": classes}
        if lam is not None:  # trellis-coded quantization (frames §17.4, dense mode 3)
            opts = {**opts, "trellis": lam}
        if ctx is not None and kind != "frames":
            raise SystemExit(f"{full!r}: a calibration context applies to frames settings only")
        try:
            out[full] = make_codec(kind, **opts)
        except (ValueError, TypeError) as exc:
            print(f"skipping {full}: {exc}", file=sys.stderr)
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


_CALIBRATION_ROWS: dict = {}


def _calibration_rows(head: _Stack, model: str, recipe: klt.Recipe, tr: klt.CutTransform):
    """The rows of ``recipe``'s calibration text after the head (each chunk from position 0,
    as the fit ran them), in the basis of ``tr``: what a calibration-built context sees."""
    key = (model, id(head), recipe, tr.fingerprint())
    if key not in _CALIBRATION_ROWS:
        ids = klt._calibration_ids(model, recipe)
        rows = []
        for s in tqdm(range(0, ids.size - recipe.chunk + 1, recipe.chunk), desc="calib rows",
                      leave=False):  # fmt: skip
            head.reset()
            rows.append(head.run(ids[None, s : s + recipe.chunk], 0)[0])
        _CALIBRATION_ROWS[key] = np.ascontiguousarray(tr.forward(np.concatenate(rows)), np.float32)
    return _CALIBRATION_ROWS[key]


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
        transforms = {}  # setting -> the cut's KLT (fitted once, then cached beside the graphs)
        calib = {}  # setting -> its transform's calibration rows in the KLT basis (cal contexts)
        for name in codecs:
            recipe = _split_klt(_split_context(name)[0])[1]
            if recipe is not None:
                transforms[name] = klt.load(args.model, cut, recipe, progress=True)
                if _split_context(name)[1] is not None:
                    calib[name] = _calibration_rows(head, args.model, recipe, transforms[name])
        per_chunk = {name: [] for name in acc}  # NLL sum per chunk: the noise of Δppl
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
            per_chunk["lossless"].append(float(acc["lossless"]["nll"][-1].sum()))
            # bytes of a decode-step message at row r: payload + framing (session 1, step and
            # position r); the prefill rows (r < --prefill) are not counted in bytes
            framing = np.asarray([framing_bytes(1, 1, r, r) for r in range(len(piece))])
            acc["lossless"]["bytes"].append((4 * info.hidden + framing)[pre:])
            for name, codec in codecs.items():
                rows, sizes = [], []
                tr = transforms.get(name)
                t0 = time.perf_counter()
                coded = hidden if tr is None else tr.forward(hidden[0])[None]
                if codec.name == "frames":
                    ctx = _split_context(name)[1]
                    cal = calib.get(name)
                    if ctx == "cal+p":
                        cal = np.concatenate([cal, coded[0, :pre]])
                    first = codec.encode(coded[0, :pre], first=True, calibration=cal)
                    if ctx is not None:
                        acc[name].setdefault("context", []).append(codec.context_bytes)
                    stream, decoded = FrameStream.open(first, pre, info.hidden)
                    rows.append(decoded[0])
                    for r in range(pre, hidden.shape[1]):
                        payload = codec.encode(coded[0, r : r + 1], first=False)
                        sizes.append(len(payload) + framing[r])
                        rows.append(stream.decode(payload, 1)[0])
                else:
                    for r in range(hidden.shape[1]):
                        payload = codec.encode(coded[0, r : r + 1])
                        if r >= pre:
                            sizes.append(len(payload) + framing[r])
                        rows.append(codec.decode(payload, 1, info.hidden)[0])
                decoded = np.concatenate(rows)
                if tr is not None:
                    decoded = tr.inverse(decoded)
                enc_ms = 1e3 * (time.perf_counter() - t0) / hidden.shape[1]
                tail.reset()
                logits = tail.run(decoded[None], 0)[0]
                logp = _log_softmax(logits)
                a = acc[name]
                a["kl"].append(np.sum(np.exp(ref_logp) * (ref_logp - logp), axis=-1)[pre:])
                a["top1"].append((logits.argmax(-1) == ref_top)[pre:])
                a["nll"].append(-logp[np.arange(len(target)), target])
                per_chunk[name].append(float(a["nll"][-1].sum()))
                a["bytes"].append(np.asarray(sizes))
                a["enc_ms"].append(enc_ms)
        res = {}
        ref_chunks = np.asarray(per_chunk["lossless"])
        for name, a in acc.items():
            nll = np.concatenate(a["nll"])
            # the noise of Δppl: standard error of the mean per-token NLL change over chunks
            d = (np.asarray(per_chunk[name]) - ref_chunks) / (chunk - 1)
            se = float(d.std(ddof=1) / np.sqrt(d.size)) if d.size > 1 else float("nan")
            entry = {
                "perplexity": float(np.exp(nll.mean())),
                "ppl_change_se": se,
                "transform": transforms[name].fingerprint() if name in transforms else None,
                "bytes_per_row": float(np.concatenate(a["bytes"]).mean()),
                "bits_per_element": float(8 * np.concatenate(a["bytes"]).mean() / info.hidden),
            }
            if a.get("context"):
                entry["context_bytes"] = float(np.mean(a["context"]))
            if a["kl"]:
                kl = np.concatenate(a["kl"])
                top1 = np.concatenate(a["top1"])
                entry.update(
                    kl_mean=float(kl.mean()),
                    # standard errors over chunks (rows within a chunk are correlated)
                    kl_se=float(np.std([k.mean() for k in a["kl"]], ddof=1) / np.sqrt(len(a["kl"])))
                    if len(a["kl"]) > 1
                    else float("nan"),
                    top1_se=float(
                        np.std([t.mean() for t in a["top1"]], ddof=1) / np.sqrt(len(a["top1"]))
                    )
                    if len(a["top1"]) > 1
                    else float("nan"),
                    rows_scored=int(top1.size),
                    kl_p99=float(np.quantile(kl, 0.99)),
                    kl_chunks=[float(k.mean()) for k in a["kl"]],  # paired comparisons
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
            f"{'setting':20} {'B/row':>7} {'b/el':>6} {'KL':>8} {'±':>6} {'top1':>7} {'±':>6} "
            f"{'ppl':>8} {'dppl':>7} {'±':>6}"
        )
        for name, e in res.items():
            print(
                f"{name:20} {e['bytes_per_row']:7.1f} {e['bits_per_element']:6.2f} "
                f"{e.get('kl_mean', 0):8.4f} {e.get('kl_se', 0):6.4f} {e.get('top1', 1):7.4f} "
                f"{e.get('top1_se', 0):6.4f} {e['perplexity']:8.3f} "
                f"{100 * e['ppl_change']:6.2f}% {100 * e['ppl_change_se']:5.2f}%",
                flush=True,
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


def cmd_rdplot(args: argparse.Namespace) -> None:
    """KL, top-1 and Δ perplexity against bits/element from quality result files: one line per
    setting family ("frames", "frames klt", ...: the setting name without its step)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [("kl_mean", "KL(lossless || coded), mean per decode row", "log")]
    panels += [("top1", "top-1 agreement", "linear"), ("ppl_change", "Δ perplexity", "linear")]
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 4))
    runs = [json.loads(Path(path).read_text()) for path in args.files]
    # one line per cut, codec kind and transform (setting names of different runs may name
    # the same transform differently: the fingerprint decides, named after its first suffix)
    named: dict[str, str] = {}
    for data in runs:
        for res in data["cuts"].values():
            for name, e in res.items():
                if e.get("transform"):
                    named.setdefault(e["transform"], _klt_suffix(name))
    families: dict[str, list] = {}
    for data in runs:
        for cut, res in data["cuts"].items():
            for name, e in res.items():
                if name == "lossless":
                    continue
                plain_name, ctx = _split_context(name)
                core, lam = _split_trellis(_split_klt(plain_name)[0])
                base, classes = _split_classes(core)
                kind = base.partition(" ")[0] + (f" c{classes}" if classes > 1 else "")
                kind += " t" if lam is not None else ""
                suffix = named[e["transform"]] if e.get("transform") else ""
                suffix += f" {ctx}" if ctx else ""
                families.setdefault(f"cut {cut}: {kind}{suffix}", []).append(e)
    for label, entries in sorted(families.items()):
        entries.sort(key=lambda e: e["bits_per_element"])
        x = [e["bits_per_element"] for e in entries]
        for ax, (key, _, _) in zip(axes, panels, strict=True):
            y = [100 * e[key] if key == "ppl_change" else e[key] for e in entries]
            ax.plot(x, y, marker="o", ms=3, label=label)
    for ax, (key, title, scale) in zip(axes, panels, strict=True):
        ax.set_yscale(scale)
        ax.set_xlabel("bits / element per decode row (framing incl.)")
        ax.set_title(title + (" (%)" if key == "ppl_change" else ""), fontsize=9)
        ax.grid(alpha=0.3)
        ax.axvline(3.0, color="grey", lw=0.8, ls=":")
    axes[0].axhline(0.01, color="grey", lw=0.8, ls=":")
    axes[1].axhline(0.97, color="grey", lw=0.8, ls=":")
    axes[2].axhline(2.0, color="grey", lw=0.8, ls=":")
    axes[0].legend(fontsize=7)
    fig.suptitle(f"{args.model}: rows coded as they are and in a calibrated KLT basis", fontsize=10)
    fig.tight_layout()
    PLOTS.mkdir(exist_ok=True)
    out = PLOTS / f"{args.out}.png" if "/" not in args.out else Path(args.out + ".png")
    fig.savefig(out, dpi=130)
    print(f"wrote {out}")


def cmd_tables(args: argparse.Namespace) -> None:
    """Ideal order-0 entropy of a step's codes (no table, no framing) of the decode rows: one
    table for all elements (what a frame context has), one per group of components (the
    first 32 / 128 / 256 by decreasing variance, then the rest), one per component."""

    def entropy(q: np.ndarray) -> float:
        _, counts = np.unique(q, return_counts=True)
        p = counts / counts.sum()
        return float(-(p * np.log2(p)).sum())

    info = export.model_info(args.model)
    ids = np.asarray(_prose_ids(args.model, args.tokens), np.int64)
    head = _Stack(export.graph_path(args.model, "head", args.cut), info, range(args.cut), 1)
    rows = []
    for s in range(0, ids.size - args.chunk + 1, args.chunk):
        head.reset()
        rows.append(head.run(ids[None, s : s + args.chunk], 0)[0][args.prefill :])
    hidden = np.concatenate(rows)
    out = {"model": args.model, "cut": args.cut, "rows": int(hidden.shape[0]), "entries": []}
    print(f"{args.model} cut {args.cut}: {hidden.shape[0]} decode rows; bits per element")
    head_line = f"{'basis':8} {'step':>5} {'mse':>7} {'1 table':>8} {'2 grp':>6} {'4 grp':>6}"
    print(f"{head_line} {'each':>6}")
    bases = {"rows": None, "klt-x8": klt.Recipe(outlier_ratio=8.0), "klt-all": klt.DEFAULT_RECIPE}
    for name, recipe in bases.items():
        t = None if recipe is None else klt.load(args.model, args.cut, recipe)
        coeffs = hidden if t is None else t.forward(hidden)
        order = np.argsort(-coeffs.var(axis=0), kind="stable")
        for step in args.steps:
            q = np.rint(coeffs[:, order] / step).astype(np.int64)
            grouped = {}
            for groups, bounds in ((2, (0, 32, 576)), (4, (0, 32, 128, 256, 576))):
                bounds = (*bounds[:-1], q.shape[1])
                grouped[groups] = (
                    sum(
                        entropy(q[:, a:b]) * (b - a)
                        for a, b in zip(bounds, bounds[1:], strict=False)
                    )
                    / q.shape[1]
                )
            entry = {
                "basis": name,
                "step": step,
                "mse": float(np.mean((q * step - coeffs[:, order]) ** 2)),
                "one_table": entropy(q),
                "groups_2": grouped[2],
                "groups_4": grouped[4],
                "per_component": float(np.mean([entropy(q[:, k]) for k in range(q.shape[1])])),
            }
            out["entries"].append(entry)
            print(
                f"{name:8} {step:5.2f} {entry['mse']:7.4f} {entry['one_table']:8.3f} "
                f"{entry['groups_2']:6.3f} {entry['groups_4']:6.3f} {entry['per_component']:6.3f}"
            )
    _save("tables", args.model, out, args.tag)


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
                    "model_bytes": export.graph_bytes(path),
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


def cmd_memory(args: argparse.Namespace) -> None:
    """Measured device peaks per cut against the profile's calibrated memory model (and the
    weights-only count it replaces); then plans under budgets M_ar, each run and measured."""
    from slicer.llm.planner import ARProfile, plan, row_bytes_for
    from slicer.llm.profile import head_weight_bytes, load_profile, measure_memory
    from slicer.split.link import Link

    info = export.model_info(args.model)
    data, cached = load_profile(args.model, refresh=args.reprofile)
    prof = ARProfile.from_profile(
        info,
        data,
        row_bytes_for("raw", info.hidden),
        head_bytes={c: head_weight_bytes(args.model, c) for c in range(1, info.layers)},
        device_factor=args.device_factor,
    )
    mem = prof.memory
    rows = []
    cases = [(cut, None) for cut in args.cuts] + [(args.cuts[0], d) for d in args.device_models]
    for cut, device in tqdm(cases * args.runs, desc="memory runs", file=sys.stderr):
        p = measure_memory(args.model, cut, device, prompt=64, steps=args.steps)
        device_bytes = (
            0.0
            if device is None
            else float(
                export.graph_bytes(
                    export.graph_path(args.model, "full")
                    if device == "fp32"
                    else export.int8_graph_path(args.model)
                )
            )
        )
        known = device is None or device in dict(mem.extra)
        rows.append(
            {
                "cut": cut,
                "device_model": device,
                "weights_mb": (p["head_weights"] + device_bytes) / 1e6,
                "peak_mb": p["peak"] / 1e6,
                "baseline_mb": p["baseline"] / 1e6,
                "model_mb": mem.predict(p["head_weights"], p["kv_bytes"], device) / 1e6
                if known
                else None,
                "weights_only_mb": (p["head_weights"] + device_bytes + p["kv_bytes"]) / 1e6,
                "calibration": cut in data["cuts"],
            }
        )
        print(rows[-1])
    # budgets: the planner's choice under each M_ar, run for real and measured
    checks = []
    link = Link(args.rate)
    for budget_mb in args.budgets:
        try:
            chosen = plan(
                prof,
                prompt_len=64,
                max_new=args.steps,
                link=link,
                memory_bytes=budget_mb * 1e6,
                handovers=args.handovers,
            )
        except ValueError as exc:
            checks.append({"budget_mb": budget_mb, "plan": None, "binds": str(exc)})
            print(checks[-1])
            continue
        w = chosen.handover
        p = measure_memory(
            args.model,
            chosen.cut,
            prof.device_model if w else None,
            prompt=64,
            steps=args.steps,
            local=w,
        )
        checks.append(
            {
                "budget_mb": budget_mb,
                "cut": chosen.cut,
                "handover": w,
                "predicted_mb": chosen.memory_bytes / 1e6,
                "peak_mb": p["peak"] / 1e6,
                "within": p["peak"] <= budget_mb * 1e6,
                "ruled_out": chosen.ruled_out(),
            }
        )
        print(checks[-1])
    out = {
        "steps": args.steps,
        "prompt": 64,
        "memory_model": mem.to_json(),
        "profile_cuts": data["cuts"],
        "rows": rows,
        "budgets": checks,
        "loadavg": os.getloadavg(),
    }
    _save("memory", args.model, out, args.tag)


# --------------------------------------------------------------------------- planner


def cmd_plan(args: argparse.Namespace) -> None:
    """Per-cut head / tail times measured against the profile's per-layer fit (and against the
    older split of one full-model time by multiply-adds), a plot, and the planner's choices."""
    from slicer.llm.planner import ARProfile, plan, row_bytes_for
    from slicer.llm.profile import (
        fit_layers,
        head_weight_bytes,
        load_profile,
        measure_graphs,
        predict_graph,
    )
    from slicer.split.link import Link

    info = export.model_info(args.model)
    began = time.perf_counter()
    data, cached = load_profile(args.model, refresh=args.reprofile, repeats=args.repeats)
    print(f"profile: {'cached' if cached else 'measured'} in {time.perf_counter() - began:.1f} s")
    fit = data["fit"]
    full = data["graphs"]["full"]
    total = info.layers * info.layer_params + info.head_params
    measured: dict[str, dict] = {"cpu": {}, "wall": {}}
    for i in range(0, len(args.cuts), 2):  # two cuts at a time: memory
        timed = measure_graphs(
            args.model, args.cuts[i : i + 2], device_model=None, repeats=args.repeats
        )
        for clock in measured:
            measured[clock].update(timed[clock])
    # the same fit on this run's measurements of the profiled cuts: the fit's own error, apart
    # from drift between the profile's run and this one
    profiled = {k: v for k, v in measured["cpu"].items() if int(k.split("-")[1]) in data["cuts"]}
    same = fit_layers(info, profiled) if len({k.split("-")[1] for k in profiled}) >= 2 else None
    rows = []
    for cut in args.cuts:
        share = cut * info.layer_params / total
        row = {"cut": cut, "in_profile": cut in data["cuts"]}
        for part in ("head", "tail"):
            m = measured["cpu"][f"{part}-{cut}"]
            model = predict_graph(info, fit, part, cut)
            if same is not None:
                own = predict_graph(info, same, part, cut)
                row[f"{part}_step_samerun_ms"] = own[0] + own[1] + own[2] * 32
            frac = share if part == "head" else 1 - share
            row[f"{part}_step_ms"] = m["step_ms"]
            row[f"{part}_step_wall_ms"] = measured["wall"][f"{part}-{cut}"]["step_ms"]
            row[f"{part}_step_profile_ms"] = model[0] + model[1] + model[2] * 32
            # the older model: half the full model's call cost each, rows split by MACs
            row[f"{part}_step_macs_ms"] = full["call"] / 2 + frac * full["row"]
            row[f"{part}_prefill_ms"] = m["prefill_ms"]
            row[f"{part}_prefill_profile_ms"] = model[0] + 32 * model[1]
            row[f"{part}_prefill_macs_ms"] = full["call"] / 2 + 32 * frac * full["row"]
        rows.append(row)
        print({k: round(v, 2) if isinstance(v, float) else v for k, v in row.items()})
    plot_profile(args.model, data, rows)
    choices = []
    head_bytes = {c: head_weight_bytes(args.model, c) for c in range(1, info.layers)}
    for rate, factor in ((20e6, 1.0), (20e6, 4.0), (2e6, 4.0), (1e5, 4.0)):
        prof = ARProfile.from_profile(
            info,
            data,
            row_bytes_for("raw", info.hidden),
            head_bytes=head_bytes,
            device_factor=factor,
        )
        p = plan(prof, prompt_len=64, max_new=128, link=Link(rate))
        choices.append({"rate_bps": rate, "device_factor": factor, **p.to_json()})
        print(choices[-1])
    _save(
        "plan",
        args.model,
        {
            "profile": {k: data[k] for k in ("cuts", "clock", "graphs", "fit", "seconds")},
            "cuts": rows,
            "choices": choices,
            "loadavg": os.getloadavg(),
        },
        args.tag,
    )


def plot_profile(model: str, data: dict, rows: list[dict]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    info = export.model_info(model)
    from slicer.llm.profile import predict_graph

    cuts = np.arange(1, info.layers)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, what, rows_n in ((axes[0], "step", 1), (axes[1], "prefill", 32)):
        for part, color in (("head", "tab:blue"), ("tail", "tab:orange")):
            terms = np.array([predict_graph(info, data["fit"], part, int(c)) for c in cuts])
            past = 32 if what == "step" else 0
            ax.plot(
                cuts,
                terms[:, 0] + rows_n * terms[:, 1] + past * terms[:, 2],
                color=color,
                label=f"{part}: per-layer profile",
            )
            ax.plot(
                [r["cut"] for r in rows],
                [r[f"{part}_{what}_macs_ms"] for r in rows],
                color=color,
                ls=":",
                label=f"{part}: full model split by MACs",
            )
            for fitted, marker in ((True, "s"), (False, "o")):
                sel = [r for r in rows if r["in_profile"] == fitted]
                ax.plot(
                    [r["cut"] for r in sel],
                    [r[f"{part}_{what}_ms"] for r in sel],
                    marker,
                    color=color,
                    mfc="none" if fitted else color,
                    label=f"{part}: measured{' (profiled cut)' if fitted else ''}",
                )
        ax.set_xlabel("cut ℓ (layers on the device)")
        ax.set_ylabel("ms (CPU time, one ORT thread)")
        ax.set_title(
            f"{model}: one-row decode step (32 rows of past)"
            if what == "step"
            else f"{model}: prefill of 32 rows"
        )
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    PLOTS.mkdir(exist_ok=True)
    path = PLOTS / f"llm_profile_{model}.png"
    fig.savefig(path, dpi=120)
    print(f"wrote {path.relative_to(HERE.parent)}")


# --------------------------------------------------------------------------- export


def cmd_export(args: argparse.Namespace) -> None:
    """Wall and CPU seconds of loading the weights and exporting head / tail at each cut into a
    fresh cache (``--cache``), the machine's load average beside them."""
    import os as _os

    _os.environ["SLICER_CACHE"] = str(Path(args.cache).resolve())
    load0 = _os.getloadavg()
    wall, cpu = time.perf_counter(), time.process_time()
    export.load_hf(args.model)
    export.model_info(args.model)
    out = {
        "cache": args.cache,
        "load_s": time.perf_counter() - wall,
        "load_cpu_s": time.process_time() - cpu,
        "graphs": {},
    }
    print(out)
    for cut in args.cuts:
        for part in ("head", "tail"):
            wall, cpu = time.perf_counter(), time.process_time()
            export.graph_path(args.model, part, cut)
            times = export.export_times(args.model)["details"][f"{part}-{cut}"]
            out["graphs"][f"{part}-{cut}"] = {
                **times,
                "external_data_s": round(times["wall_s"] - times["torch_export_s"], 2),
                "bytes": export.graph_bytes(export.model_dir(args.model) / f"{part}-{cut}.onnx"),
            }
            print(f"{part}-{cut}", out["graphs"][f"{part}-{cut}"])
    out["loadavg_before"] = load0
    out["loadavg_after"] = _os.getloadavg()
    _save("export", args.model, out, args.tag)


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
    p.add_argument("--cuts", type=int, nargs="+", default=[1, 5, 11, 15, 25])
    p.add_argument("--steps", type=int, default=64)
    p.add_argument("--runs", type=int, default=2)
    p.add_argument("--budgets", type=float, nargs="+", default=[100, 200, 300, 450, 800, 1000])
    p.add_argument("--rate", type=float, default=2e6, help="link rate of the budget plans")
    p.add_argument("--handovers", type=int, nargs="+", default=[0, 8], help="w the plans may use")
    p.add_argument("--device-models", nargs="*", default=["fp32", "int8"], choices=["fp32", "int8"])
    p.add_argument("--device-factor", type=float, default=1.0)
    p.add_argument("--reprofile", action="store_true")
    p.add_argument("--tag", default="profile", help="suffix of the result file")
    p = sub.add_parser("replot", parents=[common], help="redraw the drift plot from its JSON")
    p = sub.add_parser("rdplot", parents=[common], help="plot quality results against b/el")
    p.add_argument("files", nargs="+", help="bench/llm_results/quality_*.json")
    p.add_argument("--out", default="llm_klt_quality", help="bench/plots/<out>.png")
    p = sub.add_parser("tables", parents=[common], help="code entropy: one table vs per group")
    p.add_argument("--cut", type=int, default=15)
    p.add_argument("--tokens", type=int, default=4096)
    p.add_argument("--chunk", type=int, default=512)
    p.add_argument("--prefill", type=int, default=16)
    p.add_argument("--steps", type=float, nargs="+", default=[1.6, 2.4, 3.2])
    p.add_argument("--tag", default="")
    p = sub.add_parser("plan", parents=[common])
    p.add_argument("--cuts", type=int, nargs="+", default=[1, 5, 11, 15, 20, 25])
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--reprofile", action="store_true")
    p.add_argument("--tag", default="profile", help="suffix of the result file")
    p = sub.add_parser("export", parents=[common])
    p.add_argument("--cuts", type=int, nargs="+", default=[10])
    p.add_argument("--cache", default="/tmp/slicer-export-bench", help="a fresh cache folder")
    p.add_argument("--tag", default="")
    args = parser.parse_args()
    {
        "lossless": cmd_lossless,
        "quality": cmd_quality,
        "drift": cmd_drift,
        "handover": cmd_handover,
        "memory": cmd_memory,
        "plan": cmd_plan,
        "export": cmd_export,
        "replot": cmd_replot,
        "rdplot": cmd_rdplot,
        "tables": cmd_tables,
    }[args.command](args)
    print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


if __name__ == "__main__":
    main()
