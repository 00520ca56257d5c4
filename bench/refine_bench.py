"""Server-requested refinement and inter-token prediction of decode rows (bench/RESULTS.md §13.14).

    python bench/refine_bench.py sweep   --bases 2.4 2.8 3.2 --fractions 0.5 0.25 \
        --taus 0 0.1 0.2 0.3 0.5 1.0 --tag tf15
    python bench/refine_bench.py ceiling --bases 2.4 3.2 --tag tf15
    python bench/refine_bench.py predict --steps 1.6 2.4 3.2 --tag tf15
    python bench/refine_bench.py plot bench/llm_results/refine_smollm2_tf15.json --oneshot \
        bench/llm_results/quality_smollm2_classes_tf15.json \
        bench/llm_results/quality_smollm2_refine_oneshot.json \
        --exact bench/llm_results/refine_smollm2_tf15_exact.json

sweep: the §13.12 teacher-forced protocol (SmolLM2, cut 15, 8 chunks x 512 tokens, 16 prefill
rows each, frames with an 8-class context in the shipped KLT basis). Each decode row is coded
at a base step; the server runs the tail on it and, where its own top-1 / top-2 logit margin
is below tau, asks for a refinement: the residual of the row's coefficients (the edge knows
exactly what the server decoded) coded as one frame at ``fraction x base step`` under a second
frame context built from the prefill rows' residuals (sent once, counted). The tail then runs
on base + refinement. Bytes per decode row count everything that goes up: the base message
(frame + framing), and for refined rows the refinement message (frame + framing), plus the
refinement context once per chunk; the server's refine request is one more server -> edge
message per refined row (the size of a token reply, ``down_bytes_per_row``), not counted.
Decisions are taken on the tail's logits of the base rows in one pass over the chunk (the
context of a row is then its predecessors' base rows, not the mixed rows the protocol would
hold); the scored logits come from a second pass over the mixed rows,
exact for those decisions. ``--exact`` runs the protocol itself instead, one row at a time
(tail step on the base row; below tau, the KV cache rolled back to the row's position and the
step re-run on base + refinement), for the given points only (slow: a tail step per row).

ceiling: the best any refinement of the current row can do: the row exact (lossless) on its
coded context, for every row, and for the rows a margin rule would pick.

predict: ideal order-0 entropy (one table per component) of the decode rows' KLT coefficients
coded as they are, against coded as the residual of a per-component linear prediction (closed
loop: from the previous decoded row, and from that row plus a running mean of the decoded rows
before it; least-squares weights fitted on the first half of the chunks, scored on the second
half) at equal step (uniform quantizers of the same step: equal MSE, printed).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import llm_bench  # noqa: E402

from slicer.llm import export, klt  # noqa: E402
from slicer.llm.messages import FrameCodec, FrameStream, framing_bytes  # noqa: E402
from slicer.llm.sessions import _Stack  # noqa: E402

#: Per-chunk lists that a sweep point collects.
FIELDS = ("kl", "top1", "up", "ask", "down", "kl_rowchoice", "top1_rowchoice", "ref_margin")
FIELDS += ("context",)


def _margin(logits: np.ndarray) -> np.ndarray:
    top2 = np.partition(logits, -2, axis=-1)[:, -2:]
    return (top2[:, 1] - top2[:, 0]).astype(np.float64)


def _score(ref_logp: np.ndarray, ref_top: np.ndarray, logits: np.ndarray, pre: int):
    logp = llm_bench._log_softmax(logits)
    kl = np.sum(np.exp(ref_logp) * (ref_logp - logp), axis=-1)[pre:]
    top1 = (logits.argmax(-1) == ref_top)[pre:]
    return kl, top1


def _chunks(model: str, tokens: int, chunk: int) -> list[list[int]]:
    ids = llm_bench._prose_ids(model, tokens)
    return [ids[i : i + chunk] for i in range(0, len(ids) - chunk + 1, chunk)]


def cmd_sweep(args: argparse.Namespace) -> None:
    import slicer

    info = export.model_info(args.model)
    cut, pre, d = args.cut, args.prefill, info.hidden
    head = _Stack(export.graph_path(args.model, "head", cut), info, range(cut), 1)
    tail = _Stack(export.graph_path(args.model, "tail", cut), info, range(cut, info.layers), 1)
    tr = klt.load(args.model, cut, klt.DEFAULT_RECIPE, progress=True)
    chunks = _chunks(args.model, args.tokens, args.chunk)
    # per (base, fraction, tau): lists over chunks of per-row arrays
    res: dict = {}
    cpu0, wall0 = time.process_time(), time.perf_counter()
    for piece in tqdm(chunks, desc="chunks", file=sys.stderr):
        x = np.asarray(piece, np.int64)[None]
        head.reset()
        hidden = head.run(x, 0)
        tail.reset()
        ref_logits = tail.run(hidden, 0)[0]
        ref_logp = llm_bench._log_softmax(ref_logits)
        ref_top = ref_logits.argmax(-1)
        ref_margin = _margin(ref_logits)[pre:]
        coeffs = tr.forward(hidden[0])
        n = coeffs.shape[0]
        # decode-step framing at row r (session 1, step and position r); a refine message
        # carries the same header fields, so the same framing
        framing = np.asarray([framing_bytes(1, 1, r, r) for r in range(n)])[pre:]
        down = np.asarray([framing_bytes(1, 1, r, r + 1) + 4 for r in range(n)])[pre:]

        def run_tail(c: np.ndarray) -> np.ndarray:
            tail.reset()
            return tail.run(tr.inverse(c)[None], 0)[0]

        def protocol(chat: np.ndarray, refined: np.ndarray, base_logits: np.ndarray, tau: float):
            """The server's steps one row at a time: a tail step on the base row, and below tau
            the KV cache rolled back to the row's position and the step re-run on the refined
            row. Returns (refined?, logits of every row; the prefill's from ``base_logits``)."""
            tail.reset()
            tail.run(tr.inverse(chat[:pre])[None], 0)
            final = base_logits.copy()
            ask = np.zeros(len(chat) - pre, bool)
            for r in range(pre, len(chat)):
                kv = tail.kv
                step_logits = tail.run(tr.inverse(chat[r : r + 1])[None], r)[0]
                if _margin(step_logits)[0] < tau:
                    ask[r - pre] = True
                    tail.kv, tail.length = kv, r
                    step_logits = tail.run(tr.inverse(refined[r : r + 1])[None], r)[0]
                final[r] = step_logits[0]
            return ask, final

        for base in args.bases:
            codec = FrameCodec(step=base, classes=args.classes, states=1)
            stream, dec = FrameStream.open(codec.encode(coeffs[:pre], first=True), pre, d)
            rows, sizes = [dec[0]], []
            for r in range(pre, n):
                payload = codec.encode(coeffs[r : r + 1], first=False)
                sizes.append(len(payload))
                rows.append(stream.decode(payload, 1)[0])
            chat = np.concatenate(rows)
            base_bytes = np.asarray(sizes) + framing
            logits = run_tail(chat)
            margin = _margin(logits)[pre:]
            kl_b, top1_b = _score(ref_logp, ref_top, logits, pre)
            resid = (coeffs - chat).astype(np.float32)
            for frac in args.fractions:
                step = base * frac
                enc = slicer.FrameEncoder(resid[:pre], step=step, classes=args.classes, states=1)
                rdec = slicer.FrameDecoder(enc.context, max_elements=d)
                rsizes, rrows = [], []
                for r in range(pre, n):
                    frame = enc.encode(resid[r])
                    rsizes.append(len(frame))
                    rrows.append(rdec.decode(frame))
                refined = chat.copy()
                refined[pre:] += np.stack(rrows)
                ref_bytes = np.asarray(rsizes) + framing
                kl_r, top1_r = _score(ref_logp, ref_top, run_tail(refined), pre)
                for tau in args.taus:
                    if args.exact:
                        ask, final = protocol(chat, refined, logits, tau)
                        kl, top1 = _score(ref_logp, ref_top, final, pre)
                    else:
                        ask = margin < tau
                        mixed = chat.copy()
                        mixed[pre:][ask] = refined[pre:][ask]
                        if ask.any():
                            kl, top1 = _score(ref_logp, ref_top, run_tail(mixed), pre)
                        else:
                            kl, top1 = kl_b, top1_b
                    ctx = len(enc.context) + 2 if ask.any() else 0  # varint length + context
                    up = base_bytes + np.where(ask, ref_bytes, 0)
                    up = up.astype(np.float64)
                    up += ctx / up.size  # the context once per chunk, spread over its rows
                    key = f"{base}|{frac}|{tau}"
                    e = res.setdefault(
                        key,
                        {"base": base, "fraction": frac, "tau": tau, **{k: [] for k in FIELDS}},
                    )
                    e["kl"].append(kl)
                    e["top1"].append(top1)
                    e["up"].append(up)
                    e["ask"].append(ask)
                    e["down"].append(down.astype(np.float64))
                    # the free approximation: each row's logits from the all-base or all-refined
                    # pass (ignores the refined context of later rows)
                    e["kl_rowchoice"].append(np.where(ask, kl_r, kl_b))
                    e["top1_rowchoice"].append(np.where(ask, top1_r, top1_b))
                    e["ref_margin"].append(ref_margin)
                    e["context"].append(ctx)
    out = {
        "model": args.model,
        "cut": cut,
        "tokens": len(chunks) * args.chunk,
        "prefill": pre,
        "classes": args.classes,
        "exact": args.exact,
        "transform": tr.fingerprint(),
        "cpu_s": time.process_time() - cpu0,
        "wall_s": time.perf_counter() - wall0,
        "loadavg": os.getloadavg(),
        "points": [],
    }

    def se(parts: list[np.ndarray]) -> float:
        m = [p.mean() for p in parts]
        return float(np.std(m, ddof=1) / np.sqrt(len(m))) if len(m) > 1 else float("nan")

    print(
        f"\n{args.model} cut {cut}: {out['tokens']} tokens, "
        f"{sum(a.size for a in next(iter(res.values()))['kl'])} decode rows"
    )
    print(
        f"{'base':>5} {'frac':>5} {'tau':>5} {'B/row':>7} {'b/el':>6} {'refined':>8} "
        f"{'KL':>7} {'±':>6} {'top1':>7} {'±':>6} {'p99 B':>6} {'rt/100':>6} "
        f"{'KLrc':>7} {'top1rc':>7}"
    )
    for e in res.values():
        up = np.concatenate(e["up"])
        ask = np.concatenate(e["ask"])
        kl = np.concatenate(e["kl"])
        top1 = np.concatenate(e["top1"])
        p = {
            "base": e["base"],
            "fraction": e["fraction"],
            "refine_step": e["base"] * e["fraction"],
            "tau": e["tau"],
            "rows": int(up.size),
            "bytes_per_row": float(up.mean()),
            "bits_per_element": float(8 * up.mean() / d),
            "bytes_p99": float(np.quantile(up, 0.99)),
            "bytes_p50": float(np.quantile(up, 0.5)),
            "refined_fraction": float(ask.mean()),
            "refined_fraction_se": se(e["ask"]),
            "extra_round_trips_per_100": float(100 * ask.mean()),
            "down_bytes_per_row": float(np.concatenate(e["down"]).mean()),
            "context_bytes_mean": float(np.mean(e["context"])),
            "kl_mean": float(kl.mean()),
            "kl_se": se(e["kl"]),
            "top1": float(top1.mean()),
            "top1_se": se(e["top1"]),
            "kl_rowchoice": float(np.concatenate(e["kl_rowchoice"]).mean()),
            "top1_rowchoice": float(np.concatenate(e["top1_rowchoice"]).mean()),
        }
        out["points"].append(p)
        print(
            f"{p['base']:5.2f} {p['fraction']:5.2f} {p['tau']:5.2f} {p['bytes_per_row']:7.1f} "
            f"{p['bits_per_element']:6.3f} {100 * p['refined_fraction']:7.1f}% "
            f"{p['kl_mean']:7.4f} {p['kl_se']:6.4f} {100 * p['top1']:6.2f}% "
            f"{100 * p['top1_se']:5.2f}% {p['bytes_p99']:6.0f} "
            f"{p['extra_round_trips_per_100']:6.1f} {p['kl_rowchoice']:7.4f} "
            f"{100 * p['top1_rowchoice']:6.2f}%",
            flush=True,
        )
    # margin statistics of the reference (how fragile the decisions are)
    m = np.concatenate(next(iter(res.values()))["ref_margin"])
    out["ref_margin_quantiles"] = {str(q): float(np.quantile(m, q)) for q in (0.1, 0.25, 0.5)}
    print("reference top-1/top-2 margin quantiles 10/25/50 %:", out["ref_margin_quantiles"])
    llm_bench._save("refine", args.model, out, args.tag)


def cmd_predict(args: argparse.Namespace) -> None:
    """Closed-loop inter-token prediction of KLT coefficients: ideal entropy at equal step."""

    def entropy_cols(q: np.ndarray) -> float:
        total = 0.0
        for k in range(q.shape[1]):
            _, counts = np.unique(q[:, k], return_counts=True)
            p = counts / counts.sum()
            total += float(-(p * np.log2(p)).sum())
        return total / q.shape[1]

    def features(c: np.ndarray, lam: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(previous row, running mean of the rows before, this row) over a chunk's decode
        rows: the running mean starts at the prefill's mean and moves by (1 - lam) per row."""
        ema = c[: args.prefill].mean(0)
        prev, avg = [], []
        for t in range(args.prefill, len(c)):
            prev.append(c[t - 1])
            avg.append(ema.copy())
            ema = lam * ema + (1 - lam) * c[t]
        return np.asarray(prev), np.asarray(avg), c[args.prefill :]

    info = export.model_info(args.model)
    head = _Stack(export.graph_path(args.model, "head", args.cut), info, range(args.cut), 1)
    tr = klt.load(args.model, args.cut, klt.DEFAULT_RECIPE)
    coeff = []
    for piece in tqdm(_chunks(args.model, args.tokens, args.chunk), desc="head", file=sys.stderr):
        head.reset()
        rows = head.run(np.asarray(piece, np.int64)[None], 0)[0]
        coeff.append(tr.forward(rows).astype(np.float64))
    # the first half of the chunks fits the per-component predictor (least squares, open loop);
    # the second half is scored, closed loop (from the previous decoded rows)
    half = len(coeff) // 2
    out = {"model": args.model, "cut": args.cut, "ema": args.ema, "entries": []}
    parts = [features(c, args.ema) for c in coeff[:half]]
    prev, avg, cur = (np.concatenate([p[i] for p in parts]) for i in range(3))
    corr = np.array(
        [
            np.corrcoef(prev[:, k], cur[:, k])[0, 1] if prev[:, k].std() > 0 else 0.0
            for k in range(cur.shape[1])
        ]
    )
    out["lag1_corr_quantiles"] = {str(q): float(np.quantile(np.abs(corr), q)) for q in (0.5, 0.9)}
    print("lag-1 |correlation| per component, quantiles 50/90 %:", out["lag1_corr_quantiles"])
    weights = {
        "lag1": np.stack(
            [(prev * cur).sum(0) / np.maximum((prev * prev).sum(0), 1e-30), np.zeros(cur.shape[1])],
            1,
        ),
        f"lag1+mean{args.ema}": np.stack(
            [
                np.linalg.lstsq(np.stack([prev[:, k], avg[:, k]], 1), cur[:, k], rcond=None)[0]
                for k in range(cur.shape[1])
            ]
        ),
    }
    for step in args.steps:
        plain = [np.rint(c[args.prefill :] / step) for c in coeff[half:]]
        rows_all = np.concatenate([c[args.prefill :] for c in coeff[half:]])
        mse_plain = float(((np.concatenate(plain) * step - rows_all) ** 2).mean())
        h_plain = entropy_cols(np.concatenate(plain).astype(np.int64))
        for name, w in weights.items():
            codes, err = [], 0.0
            for c in coeff[half:]:
                rows = c[args.prefill :]
                last = np.rint(c[args.prefill - 1] / step) * step  # decoded prefill row
                ema = np.rint(c[: args.prefill] / step).mean(0) * step
                qs = np.empty_like(rows)
                for t in range(rows.shape[0]):
                    guess = w[:, 0] * last + w[:, 1] * ema
                    qs[t] = np.rint((rows[t] - guess) / step)
                    last = guess + qs[t] * step
                    err += float(((last - rows[t]) ** 2).sum())
                    ema = args.ema * ema + (1 - args.ema) * last
                codes.append(qs)
            h_pred = entropy_cols(np.concatenate(codes).astype(np.int64))
            e = {
                "step": step,
                "predictor": name,
                "mse_plain": mse_plain,
                "mse_pred": err / rows_all.size,
                "bits_plain": h_plain,
                "bits_pred": h_pred,
                "gain": h_plain - h_pred,
            }
            out["entries"].append(e)
            print(
                f"step {step:4.2f} {name:12}: mse {e['mse_plain']:.4f} / {e['mse_pred']:.4f}, "
                f"bits/element (a table per component) plain {h_plain:.3f}, predicted "
                f"{h_pred:.3f}, gain {e['gain']:+.3f}"
            )
    llm_bench._save("predict", args.model, out, args.tag)


def cmd_ceiling(args: argparse.Namespace) -> None:
    """What refining the current row can buy at best: every decode row's logits with the row
    itself exact (lossless) and its context (the KV cache of the rows before it) coded at the
    base step, against the row and its context both coded; and, per tau, the rows whose base
    margin falls below tau, with that perfect refinement of those rows only."""
    info = export.model_info(args.model)
    cut, pre, d = args.cut, args.prefill, info.hidden
    head = _Stack(export.graph_path(args.model, "head", cut), info, range(cut), 1)
    tail = _Stack(export.graph_path(args.model, "tail", cut), info, range(cut, info.layers), 1)
    tr = klt.load(args.model, cut, klt.DEFAULT_RECIPE)
    names = ("margin", "flip", "kl", "own_flip", "own_kl")
    acc: dict = {b: {k: [] for k in names} for b in args.bases}
    for piece in tqdm(_chunks(args.model, args.tokens, args.chunk), desc="chunks", file=sys.stderr):
        head.reset()
        hidden = head.run(np.asarray(piece, np.int64)[None], 0)
        tail.reset()
        ref_logits = tail.run(hidden, 0)[0]
        ref_logp = llm_bench._log_softmax(ref_logits)
        ref_top = ref_logits.argmax(-1)
        coeffs = tr.forward(hidden[0])
        for base in args.bases:
            codec = FrameCodec(step=base, classes=args.classes, states=1)
            stream, dec = FrameStream.open(codec.encode(coeffs[:pre], first=True), pre, d)
            rows = [dec[0]]
            for r in range(pre, coeffs.shape[0]):
                rows.append(stream.decode(codec.encode(coeffs[r : r + 1], first=False), 1)[0])
            coded = tr.inverse(np.concatenate(rows))[None].astype(np.float32)
            tail.reset()
            logits = tail.run(coded, 0)[0]
            kv = tail.kv
            kl, top1 = _score(ref_logp, ref_top, logits, pre)
            own = np.empty_like(logits[pre:])
            for r in range(pre, coeffs.shape[0]):  # the exact row on the coded context
                tail.kv = {k: v[:, :, :r] for k, v in kv.items()}
                own[r - pre] = tail.run(hidden[:, r : r + 1], r)[0, 0]
            a = acc[base]
            a["margin"].append(_margin(logits)[pre:])
            a["flip"].append(~top1)
            a["kl"].append(kl)
            a["own_flip"].append(own.argmax(-1) != ref_top[pre:])
            a["own_kl"].append(llm_bench._kl(ref_logp[pre:], own))
    out = {"model": args.model, "cut": cut, "prefill": pre, "classes": args.classes, "bases": []}
    for base, a in acc.items():
        m, flip, kl = (np.concatenate(a[k]) for k in ("margin", "flip", "kl"))
        own_flip, own_kl = np.concatenate(a["own_flip"]), np.concatenate(a["own_kl"])
        entry = {
            "base": base,
            "rows": int(m.size),
            "top1": float(1 - flip.mean()),
            "kl": float(kl.mean()),
            "top1_own_exact": float(1 - own_flip.mean()),
            "kl_own_exact": float(own_kl.mean()),
            "taus": [],
        }
        print(
            f"base {base}: top-1 {100 * entry['top1']:.2f} %, KL {entry['kl']:.4f}; the row "
            f"exact on its coded context: top-1 {100 * entry['top1_own_exact']:.2f} %, KL "
            f"{entry['kl_own_exact']:.4f}"
        )
        for tau in args.taus:
            ask = m < tau
            t = {
                "tau": tau,
                "refined_fraction": float(ask.mean()),
                "flips_caught": int(flip[ask].sum()),
                "flips": int(flip.sum()),
                "top1_if_exact": float(1 - np.where(ask, own_flip, flip).mean()),
                "kl_if_exact": float(np.where(ask, own_kl, kl).mean()),
            }
            entry["taus"].append(t)
            print(
                f"  tau {tau:4.2f}: {100 * t['refined_fraction']:5.1f} % of rows ask, catching "
                f"{t['flips_caught']} / {t['flips']} flips; those rows exact: top-1 "
                f"{100 * t['top1_if_exact']:.2f} %, KL {t['kl_if_exact']:.4f}"
            )
        out["bases"].append(entry)
    llm_bench._save("refine_ceiling", args.model, out, args.tag)


def cmd_plot(args: argparse.Namespace) -> None:
    """KL and top-1 against mean bits per decode row: refinement curves (one per base step and
    refinement step, tau rising along each) against one-shot frames (``--oneshot``: quality
    JSONs of llm_bench.py, settings "frames qX c8 klt-all")."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    one = []
    for path in args.oneshot:
        for name, e in json.loads(Path(path).read_text())["cuts"][str(args.cut)].items():
            if name.startswith("frames q") and name.endswith(" c8 klt-all"):
                one.append((e["bits_per_element"], e["kl_mean"], e["top1"]))
    one.sort()
    data = json.loads(Path(args.sweep).read_text())
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for ax, idx, label, target in (
        (axes[0], 1, "KL (teacher-forced, mean)", 0.01),
        (axes[1], 2, "top-1 agreement", 0.97),
    ):
        ax.plot(
            [o[0] for o in one], [o[idx] for o in one], "k-o", label="one shot (frames, c8, KLT)"
        )
        curves: dict = {}
        for p in data["points"]:
            curves.setdefault((p["base"], p["fraction"]), []).append(p)
        for (base, frac), pts in sorted(curves.items()):
            pts.sort(key=lambda p: p["tau"])
            ax.plot(
                [p["bits_per_element"] for p in pts],
                [p["kl_mean"] if idx == 1 else p["top1"] for p in pts],
                "--" if frac < 0.5 else "-",
                marker=".",
                label=f"base q{base}, refine at q{base * frac:.2g} (tau 0 … {pts[-1]['tau']:g})",
            )
        ax.axhline(target, color="grey", lw=0.8)
        ax.axvline(3.0, color="grey", lw=0.8)
        for path in args.exact:
            for p in json.loads(Path(path).read_text())["points"]:
                ax.plot(
                    p["bits_per_element"],
                    p["kl_mean"] if idx == 1 else p["top1"],
                    "kx",
                    ms=9,
                    label=f"row by row: base q{p['base']}, tau {p['tau']:g}",
                )
        ax.set_xlabel("bits/element per decode row (mean; refinements, framing included)")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    axes[0].set_yscale("log")
    axes[1].legend(fontsize=6.5, loc="lower right")
    fig.suptitle(
        f"SmolLM2 cut {data['cut']}: server-requested refinement vs one-shot rows "
        f"({data['points'][0]['rows']} decode rows)"
    )
    fig.tight_layout()
    out = HERE / "plots" / f"{args.out}.png"
    fig.savefig(out, dpi=120)
    print(f"wrote {out.relative_to(HERE.parent)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--model", default="smollm2", choices=sorted(export.SOURCES))
    common.add_argument("--cut", type=int, default=15)
    common.add_argument("--tokens", type=int, default=4096)
    common.add_argument("--chunk", type=int, default=512)
    common.add_argument("--prefill", type=int, default=16)
    common.add_argument("--tag", default="")
    p = sub.add_parser("sweep", parents=[common])
    p.add_argument("--bases", type=float, nargs="+", default=[2.4, 2.8, 3.2])
    p.add_argument("--fractions", type=float, nargs="+", default=[0.5, 0.25])
    p.add_argument("--taus", type=float, nargs="+", default=[0.5, 1.0, 1.5, 2.0, 3.0])
    p.add_argument("--classes", type=int, default=8)
    p.add_argument("--exact", action="store_true", help="run the protocol row by row (slow)")
    p = sub.add_parser("predict", parents=[common])
    p.add_argument("--steps", type=float, nargs="+", default=[1.6, 2.4, 3.2])
    p.add_argument("--ema", type=float, default=0.9, help="running-mean factor per row")
    p = sub.add_parser("ceiling", parents=[common])
    p.add_argument("--bases", type=float, nargs="+", default=[2.4, 3.2])
    p.add_argument("--taus", type=float, nargs="+", default=[0.1, 0.2, 0.3, 0.5, 1.0, 2.0])
    p.add_argument("--classes", type=int, default=8)
    p = sub.add_parser("plot", parents=[common])
    p.add_argument("sweep", help="bench/llm_results/refine_*.json")
    p.add_argument("--oneshot", nargs="+", default=[], help="llm_bench.py quality JSONs")
    p.add_argument("--exact", nargs="*", default=[], help="refine JSONs of sweep --exact")
    p.add_argument("--out", default="llm_refine")
    args = parser.parse_args()
    {"sweep": cmd_sweep, "predict": cmd_predict, "ceiling": cmd_ceiling, "plot": cmd_plot}[
        args.command
    ](args)


if __name__ == "__main__":
    main()
