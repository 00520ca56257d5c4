"""EfficientNet-Lite0 at ~2 b/el: where the top-1 misses come from, and what a calibrated
decoder-side estimator buys (issue 7, task-fidelity target "agreement >= 99 % at <= 2.0 b/el
after blocks 4 and 10").

    python bench/effnet_decoder.py --budgets 1.75 2.0 2.25 --json bench/results/effnet_decoder.json
    python bench/effnet_decoder.py --summary bench/results/effnet_decoder.json --plot x.png

~9 min CPU on the 2-core VM. Sets:
  scored  the standard 200 crops (20 foolbox ImageNet photos x 5 crops x 2 flips; 1 crop = 0.5 pp)
  alt     the same 20 photos, 5 other crops x 2 flips (200): crop noise, not photo noise
  held    the odd-indexed half of the other 62 shipped gallery photos, the standard 10 crops (310)
  fit     the even-indexed half, same 10 crops (310): fits the estimators, never scored

Coding: ``slicer.encode(x, mode="auto", max_bytes=B*N/8)`` on the whole cut tensor (groups
"tensor"), everything counted; the stream's real size is reported. Estimators map the decoded
tensor y to x_hat, fitted by least squares on (x, y) pairs of the fit set at the same budget:
  shrink   per channel x_hat_c = a_c * y_c + b_c (Wiener shrinkage of the decoded values)
  lmmse3   per channel, x_hat_c(p) = sum over the 3x3 neighbourhood of p and every channel of
           w * y + b (a ridge regression, λ = 1e-3 * mean diagonal of the normal matrix)
"x-" estimators are cross-fitted: for a scored / alt crop, fitted on "fit" + the crops of the
other half of the 20 ImageNet photos (by photo parity); for "held", on "fit" + all 20 photos.
Diagnosis per miss: uncut top-1 / top-2 logit margin and probability margin, the photo it
comes from.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "fidelity"))

import slicer  # noqa: E402
from slicer.split import Partitioner, SplitModel, zoo  # noqa: E402
from slicer.split.datasets import gallery_images  # noqa: E402

CUTS = ("/_blocks.4/Add_output_0", "/_blocks.9/Add_output_0")
CROPS = (
    (0.875, (0.5, 0.5)),
    (1.0, (0.5, 0.5)),
    (0.8, (0.2, 0.2)),
    (0.8, (0.8, 0.8)),
    (0.7, (0.5, 0.5)),
)
# five more crops of the same 20 photos: another 200 inputs (crop noise, not photo noise)
ALT_CROPS = (
    (0.9, (0.3, 0.7)),
    (0.9, (0.7, 0.3)),
    (0.75, (0.35, 0.35)),
    (0.75, (0.65, 0.65)),
    (0.6, (0.5, 0.5)),
)


def crops(rgb: np.ndarray, which: tuple = CROPS) -> list[np.ndarray]:
    rgb = rgb if rgb.ndim == 3 else np.stack([rgb] * 3, -1)
    return [
        zoo.preprocess_image(rgb, crop=c, offset=o, flip=f) for c, o in which for f in (False, True)
    ]


def image_sets() -> dict[str, tuple[list[np.ndarray], list[str]]]:
    out = {}
    for tag, which in (("scored", CROPS), ("alt", ALT_CROPS)):
        xs, srcs = [], []
        for rgb, _label, name in zoo.imagenet_photos():
            for x in crops(rgb, which):
                xs.append(x)
                srcs.append(name)
        out[tag] = (xs, srcs)
    others = [
        (rgb, src) for rgb, src in gallery_images() if not src.startswith("foolbox/imagenet_")
    ]
    for tag, half in (("fit", others[0::2]), ("held", others[1::2])):
        xs, srcs = [], []
        for rgb, src in half:
            for x in crops(rgb):
                xs.append(x)
                srcs.append(src)
        out[tag] = (xs, srcs)
    return out


CODING: dict = {}  # --trellis / --klt: extra slicer.encode arguments, "transform"


def code(x: np.ndarray, bpe: float) -> tuple[np.ndarray, int]:
    """The cut tensor as the server decodes it (in the KLT basis and back with --klt)."""
    kw = {k: v for k, v in CODING.items() if k != "transform"}
    t = CODING.get("transform")
    x32 = np.ascontiguousarray(x, dtype=np.float32)
    c = x32 if t is None else np.ascontiguousarray(t.forward(x32), dtype=np.float32)
    stream = slicer.encode(c, mode="auto", max_bytes=max(64, int(bpe * x32.size / 8)), **kw)
    y = np.asarray(slicer.decode(stream), dtype=np.float32).reshape(c.shape)
    y = y if t is None else np.asarray(t.inverse(y), dtype=np.float32)
    return y.reshape(x.shape), len(stream)


# ------------------------------------------------------------------ estimators


def neighbourhood(y: np.ndarray) -> np.ndarray:
    """(1, C, H, W) -> (H*W, 9*C + 1): the 3x3 neighbourhood of every pixel (zero padded),
    every channel, and a constant 1."""
    _, c, h, w = y.shape
    p = np.pad(y[0], ((0, 0), (1, 1), (1, 1)))
    taps = [p[:, dy : dy + h, dx : dx + w] for dy in range(3) for dx in range(3)]
    a = np.stack(taps, 0).reshape(9 * c, h * w).T
    return np.concatenate([a, np.ones((h * w, 1), a.dtype)], 1)


def fit_shrink(xs: list[np.ndarray], ys: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    x = np.concatenate([v[0].reshape(v.shape[1], -1) for v in xs], 1).astype(np.float64)
    y = np.concatenate([v[0].reshape(v.shape[1], -1) for v in ys], 1).astype(np.float64)
    my, mx = y.mean(1), x.mean(1)
    cov = ((y - my[:, None]) * (x - mx[:, None])).mean(1)
    var = ((y - my[:, None]) ** 2).mean(1)
    a = cov / np.maximum(var, 1e-30)
    return a, mx - a * my


def apply_shrink(est: tuple[np.ndarray, np.ndarray], y: np.ndarray) -> np.ndarray:
    a, b = est
    return (a[None, :, None, None] * y + b[None, :, None, None]).astype(np.float32)


def fit_lmmse(xs: list[np.ndarray], ys: list[np.ndarray], ridge: float = 1e-3) -> np.ndarray:
    c = xs[0].shape[1]
    ata = np.zeros((9 * c + 1, 9 * c + 1))
    atb = np.zeros((9 * c + 1, c))
    for x, y in zip(xs, ys, strict=True):
        a = neighbourhood(y.astype(np.float64))
        ata += a.T @ a
        atb += a.T @ x[0].reshape(c, -1).T.astype(np.float64)
    lam = ridge * np.trace(ata) / len(ata)
    return np.linalg.solve(ata + lam * np.eye(len(ata)), atb)  # (9C+1, C)


def apply_lmmse(w: np.ndarray, y: np.ndarray) -> np.ndarray:
    _, c, h, wd = y.shape
    out = neighbourhood(y.astype(np.float64)) @ w
    return out.T.reshape(1, c, h, wd).astype(np.float32)


# ------------------------------------------------------------------ measurement


def rel_l2(xs: list[np.ndarray], ys: list[np.ndarray]) -> float:
    num = sum(float(np.sum((x - y).astype(np.float64) ** 2)) for x, y in zip(xs, ys, strict=True))
    den = sum(float(np.sum(x.astype(np.float64) ** 2)) for x in xs)
    return float(np.sqrt(num / den))


def margins(logits: np.ndarray) -> tuple[float, float]:
    top = np.sort(logits)[::-1]
    p = np.exp(logits - logits.max())
    p /= p.sum()
    ps = np.sort(p)[::-1]
    return round(float(top[0] - top[1]), 5), round(float(ps[0] - ps[1]), 5)


def kl_div(ref: np.ndarray, logits: np.ndarray) -> float:
    lp = ref - ref.max() - np.log(np.sum(np.exp(ref - ref.max())))
    lq = logits - logits.max() - np.log(np.sum(np.exp(logits - logits.max())))
    return float(np.sum(np.exp(lp) * (lp - lq)))


def summary(report: dict) -> None:
    """The misses of the plain decode on the scored set and where they sit among the uncut
    margins of every input."""
    for cut, by_set in report["uncut_margins"].items():
        for tag, ms in by_set.items():
            prob = np.array([m[1] for m in ms])
            logit = np.array([m[0] for m in ms])
            print(
                f"{cut.split('/')[1]} {tag}: uncut prob margin median {np.median(prob):.3f}, "
                f"< 0.05: {np.sum(prob < 0.05)}, < 0.1: {np.sum(prob < 0.1)}, "
                f"< 0.2: {np.sum(prob < 0.2)} of {len(prob)}; logit margin < 0.5: "
                f"{np.sum(logit < 0.5)}, < 1: {np.sum(logit < 1)}"
            )
    for row in report["rows"]:
        if row["set"] == "held" or row["estimator"] != "none":
            continue
        ms = ", ".join(
            f"{m['photo'].removeprefix('imagenet_').removesuffix('.jpg')}#{m['index'] % 10}"
            f" ({m['uncut_logit_margin']:.2f}/{m['uncut_prob_margin']:.3f})"
            for m in row["misses"]
        )
        print(f"{row['cut'].split('/')[1]} {row['set']} B={row['budget']:g}: misses {ms}")


def plot(report: dict, path: str) -> None:
    """Agreement and KL against bits/element: plain decode and the cross-fitted estimator."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cuts = list(report["uncut_margins"])
    fig, axes = plt.subplots(2, len(cuts), figsize=(5 * len(cuts), 7), squeeze=False)
    for col, cut in enumerate(cuts):
        for tag, colour in (("scored", "C0"), ("alt", "C1"), ("held", "C2")):
            for est, style in (("none", "-o"), ("x-lmmse3", "--s")):
                pts = sorted(
                    (r["bits_per_element"], r["agreement"], r["kl"])
                    for r in report["rows"]
                    if r["cut"] == cut and r["set"] == tag and r["estimator"] == est
                )
                if not pts:
                    continue
                b, ag, kl = zip(*pts, strict=True)
                label = f"{tag}, {'plain decode' if est == 'none' else 'decoder LMMSE 3x3'}"
                axes[0, col].plot(b, [100 * v for v in ag], style, color=colour, label=label)
                axes[1, col].plot(b, kl, style, color=colour, label=label)
        axes[0, col].axhline(99, color="grey", lw=0.8)
        axes[0, col].set_title(f"EfficientNet-Lite0 {cut.split('/')[1]}")
        axes[0, col].set_ylabel("top-1 agreement (%)")
        axes[1, col].set_ylabel("KL(uncut || split)")
        axes[1, col].set_xlabel("bits / element (whole stream)")
        axes[1, col].set_yscale("log")
    axes[0, 0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    print(f"wrote {path}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--budgets", type=float, nargs="+", default=[1.75, 2.0, 2.25])
    ap.add_argument("--cuts", type=int, nargs="+", default=[0, 1], help="indices into CUTS")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", default=None)
    ap.add_argument(
        "--trellis", type=float, default=None, help="mode 3 at this λ, classes='auto' (§9.12)"
    )
    ap.add_argument("--klt", action="store_true", help="code in a KLT basis fitted on 'fit'")
    ap.add_argument("--summary", default=None, help="print the miss summary of a --json file")
    ap.add_argument("--plot", default=None, help="with --summary: write this plot")
    a = ap.parse_args()
    if a.summary:
        report = json.loads(Path(a.summary).read_text())
        summary(report)
        if a.plot:
            plot(report, a.plot)
        return

    t0 = time.process_time()
    sets = image_sets()
    print({k: len(v[0]) for k, v in sets.items()}, flush=True)
    part = Partitioner(zoo.model_path("efficientnet-lite0"))
    report: dict = {"command": " ".join(sys.argv), "sets": {k: len(v[0]) for k, v in sets.items()}}
    rows = []
    for ci in a.cuts:
        name = CUTS[ci]
        split = SplitModel(part, name, providers="cpu", threads=a.threads)
        heads, refs = {}, {}
        for tag, (xs, _src) in sets.items():
            heads[tag] = [
                next(iter(split.run_head({"image": x}).values()))
                for x in tqdm(xs, desc=f"head {tag}", file=sys.stderr)
            ]
            if tag != "fit":
                refs[tag] = [split.run_full({"image": x})["logits"][0] for x in xs]
        cut_tag = name.split("/")[1]
        CODING.clear()
        if a.trellis is not None:
            CODING.update(trellis=a.trellis, classes="auto")
        if a.klt:
            from slicer.split.transform import CutTransform

            CODING["transform"] = CutTransform.fit(iter(heads["fit"]))
        for bpe in a.budgets:
            coded = {
                tag: [code(x, bpe) for x in tqdm(hs, desc=f"code {tag} {bpe}", file=sys.stderr)]
                for tag, hs in heads.items()
            }

            def fitted(idx: dict[str, list[int]], heads=heads, coded=coded) -> dict:  # noqa: ANN001
                """Estimators fitted on the inputs ``idx[tag]`` of each set."""
                xs = [heads[t][i] for t, ii in idx.items() for i in ii]
                ys = [coded[t][i][0] for t, ii in idx.items() for i in ii]
                sh, lm = fit_shrink(xs, ys), fit_lmmse(xs, ys)
                return {
                    "shrink": lambda v, sh=sh: apply_shrink(sh, v),
                    "lmmse3": lambda v, lm=lm: apply_lmmse(lm, v),
                }

            n_fit = len(heads["fit"])
            gallery = fitted({"fit": list(range(n_fit))})
            # cross-fitting on the ImageNet photos: fold k of the photos is coded with the
            # estimators fitted on the gallery fit half + the other fold's crops (both crop sets)
            names = sorted(set(sets["scored"][1]))
            fold = {
                t: np.array([names.index(n) % 2 for n in sets[t][1]]) for t in ("scored", "alt")
            }
            cross = [
                fitted(
                    {
                        "fit": list(range(n_fit)),
                        "scored": list(np.flatnonzero(fold["scored"] != k)),
                        "alt": list(np.flatnonzero(fold["alt"] != k)),
                    }
                )
                for k in (0, 1)
            ]
            cross_all = fitted(
                {
                    "fit": list(range(n_fit)),
                    "scored": list(range(len(heads["scored"]))),
                    "alt": list(range(len(heads["alt"]))),
                }
            )
            for tag in ("scored", "alt", "held"):
                xs, src = heads[tag], sets[tag][1]
                n = xs[0].size
                bits = 8 * np.mean([b for _, b in coded[tag]]) / n
                ref_top1 = [int(r.argmax()) for r in refs[tag]]
                variants = {"none": lambda i, v: v}
                for e in ("shrink", "lmmse3"):
                    variants[e] = lambda i, v, f=gallery[e]: f(v)
                    if tag == "held":
                        variants["x-" + e] = lambda i, v, f=cross_all[e]: f(v)
                    else:
                        fs, fo = [c[e] for c in cross], fold[tag]
                        variants["x-" + e] = lambda i, v, fs=fs, fo=fo: fs[fo[i]](v)
                for est_name, est in variants.items():
                    ys = [est(i, y) for i, (y, _) in enumerate(coded[tag])]
                    logits = [split.run_tail({name: y})["logits"][0] for y in ys]
                    agree = np.array(
                        [int(lg.argmax()) == r for lg, r in zip(logits, ref_top1, strict=True)]
                    )
                    kl = np.mean([kl_div(r, lg) for r, lg in zip(refs[tag], logits, strict=True)])
                    misses = [
                        {
                            "index": int(i),
                            "photo": src[i],
                            "uncut_logit_margin": margins(refs[tag][i])[0],
                            "uncut_prob_margin": margins(refs[tag][i])[1],
                        }
                        for i in np.flatnonzero(~agree)
                    ]
                    row = {
                        "cut": name,
                        "set": tag,
                        "budget": bpe,
                        "coding": {k: str(val) for k, val in CODING.items()},
                        "estimator": est_name,
                        "inputs": len(xs),
                        "bits_per_element": float(bits),
                        "rel_l2": rel_l2(xs, ys),
                        "agreement": float(agree.mean()),
                        "kl": float(kl),
                        "misses": misses,
                        "miss_photos": len({m["photo"] for m in misses}),
                    }
                    rows.append(row)
                    print(
                        f"{cut_tag:9} {tag:6} B={bpe:<5g} {est_name:9} {bits:6.3f} b/el  "
                        f"relL2 {row['rel_l2']:.4f}  KL {kl:.4f}  agree {row['agreement']:.4f} "
                        f"({len(misses)} misses, {row['miss_photos']} photos)",
                        flush=True,
                    )
        # margins of every scored input, for the distribution the misses sit in
        report.setdefault("uncut_margins", {})[name] = {
            tag: [margins(r) for r in refs[tag]] for tag in refs
        }
    report["rows"] = rows
    report["cpu_s"] = time.process_time() - t0
    print(f"CPU {report['cpu_s']:.0f} s")
    summary(report)
    if a.json:
        Path(a.json).write_text(json.dumps(report, separators=(",", ":")))
        print(f"wrote {a.json}")


if __name__ == "__main__":
    main()
