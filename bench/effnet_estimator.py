"""EfficientNet-Lite0 blocks 4 and 10 with and without the decoder-side estimator of
slicer.split.estimator (issue 7 task target: top-1 agreement >= 99 % at <= 2.0 b/el), on the
product path (``encode_values`` / ``decode_packet`` with the cut's KLT and ``CutEstimator``).

    python bench/effnet_estimator.py --json bench/results/effnet_estimator.json
    python bench/effnet_estimator.py --summary bench/results/effnet_estimator.json \
        --plot bench/plots/effnet_estimator.png

Coding: mode 3 (trellis λ = 0.34, classes="auto", ``mode="auto", max_bytes=B·N/8``) in a KLT
basis fitted on "fit" (§9.17 (c), the best coding found at 2 b/el). Sets, photos disjoint:
  scored  the standard 200 crops (20 foolbox ImageNet photos x 5 crops x 2 flips)
  alt     the same 20 photos, 5 other crops x 2 flips (200)
  photos  7 other real photos (skimage astronaut, coffee, chelsea, rocket, motorcycle_left;
          sklearn china, flower) x 20 crops x 2 flips (280): agreement needs no labels
  fit     the even-indexed half of the remaining gallery photos, 10 crops each: fits the KLT
          and the estimator, never scored
The estimator (3x3 x all channels LMMSE, ``CutEstimator``) is cross-fitted: a scored / alt crop
gets the one fitted on "fit" + the crops of the other half of the 20 ImageNet photos (by photo
parity); the photos set the one fitted on "fit" + all 20 ImageNet photos. Noise: binomial
standard error, and a bootstrap over photos (2000 rounds) of the agreement and of the paired
difference (estimator - plain).
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
sys.path.insert(0, str(HERE))

from effnet_decoder import ALT_CROPS, CROPS, CUTS, crops, kl_div, margins, rel_l2  # noqa: E402

from slicer.split import Partitioner, SplitModel, zoo  # noqa: E402
from slicer.split.datasets import gallery_images  # noqa: E402
from slicer.split.estimator import EstimatorFit  # noqa: E402
from slicer.split.transform import CutTransform  # noqa: E402
from slicer.split.transport import CodecParams, decode_packet, encode_values  # noqa: E402

PHOTOS = (
    "skimage/astronaut.png",
    "skimage/coffee.png",
    "skimage/chelsea.png",
    "skimage/rocket.jpg",
    "skimage/motorcycle_left.png",
    "sklearn/china.jpg",
    "sklearn/flower.jpg",
)
MORE_CROPS = (
    (0.5, (0.25, 0.25)),
    (0.5, (0.75, 0.25)),
    (0.5, (0.25, 0.75)),
    (0.5, (0.75, 0.75)),
    (0.5, (0.5, 0.5)),
    (0.65, (0.3, 0.5)),
    (0.65, (0.7, 0.5)),
    (0.65, (0.5, 0.3)),
    (0.65, (0.5, 0.7)),
    (0.4, (0.5, 0.5)),
)
SETS = ("scored", "alt", "photos")


def image_sets() -> dict[str, tuple[list[np.ndarray], list[str]]]:
    out: dict[str, tuple[list[np.ndarray], list[str]]] = {}
    for tag, which in (("scored", CROPS), ("alt", ALT_CROPS)):
        xs, srcs = [], []
        for rgb, _label, name in zoo.imagenet_photos():
            xs += crops(rgb, which)
            srcs += [name] * 2 * len(which)
        out[tag] = (xs, srcs)
    gallery = [(rgb, s) for rgb, s in gallery_images() if not s.startswith("foolbox/imagenet_")]
    found = {s for _, s in gallery}
    missing = [p for p in PHOTOS if p not in found]
    if missing:
        raise SystemExit(f"photos not installed: {missing}")
    photo_crops = CROPS + ALT_CROPS + MORE_CROPS
    xs, srcs = [], []
    for rgb, s in gallery:
        if s in PHOTOS:
            xs += crops(rgb, photo_crops)
            srcs += [s] * 2 * len(photo_crops)
    out["photos"] = (xs, srcs)
    rest = [(rgb, s) for rgb, s in gallery if s not in PHOTOS][0::2]
    xs, srcs = [], []
    for rgb, s in rest:
        xs += crops(rgb)
        srcs += [s] * 2 * len(CROPS)
    out["fit"] = (xs, srcs)
    return out


def photo_folds(sets: dict) -> dict[str, np.ndarray]:
    """Per crop of the 20 ImageNet photos (sets "scored" and "alt"): the parity of its photo's
    rank, the fold of the cross-fitting."""
    names = sorted(set(sets["scored"][1]))
    return {t: np.array([names.index(n) % 2 for n in sets[t][1]]) for t in ("scored", "alt")}


def photo_bootstrap(
    hits: np.ndarray, photos: list[str], rounds: int = 2000, seed: int = 0
) -> tuple[float, float]:
    """95 % interval of the mean of ``hits`` (per input) resampling whole photos."""
    names = sorted(set(photos))
    idx = np.array([names.index(p) for p in photos])
    sums = np.bincount(idx, weights=hits, minlength=len(names))
    counts = np.bincount(idx, minlength=len(names))
    rng = np.random.default_rng(seed)
    pick = rng.integers(0, len(names), size=(rounds, len(names)))
    values = sums[pick].sum(1) / counts[pick].sum(1)
    lo, hi = np.percentile(values, [2.5, 97.5])
    return float(lo), float(hi)


def main() -> None:  # noqa: C901, PLR0915 - one linear measurement script
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--budgets", type=float, nargs="+", default=[1.75, 2.0, 2.25])
    ap.add_argument("--cuts", type=int, nargs="+", default=[0, 1], help="indices into CUTS")
    ap.add_argument("--trellis", type=float, default=0.34)
    ap.add_argument("--window", type=int, default=3, help="the estimator's neighbourhood")
    ap.add_argument("--json", default=None)
    ap.add_argument("--summary", nargs="+", help="print the tables of --json files (merged)")
    ap.add_argument("--plot", default=None, help="with --summary: write this plot")
    ap.add_argument("--minilm", action="store_true", help="MiniLM layer 3 (cosine) instead")
    a = ap.parse_args()
    if a.minilm:
        t0 = time.process_time()
        rows = minilm(a.budgets, a.trellis)
        if a.json:
            Path(a.json).write_text(json.dumps({"command": " ".join(sys.argv), "minilm": rows,
                                                "cpu_s": time.process_time() - t0}))  # fmt: skip
        print(f"CPU {time.process_time() - t0:.0f} s")
        return
    if a.summary:
        reports = [json.loads(Path(f).read_text()) for f in a.summary]
        report = {"rows": [r for rep in reports for r in rep["rows"]]}
        summary(report)
        if a.plot:
            plot(report, a.plot)
        return

    t0 = time.process_time()
    sets = image_sets()
    print({k: len(v[0]) for k, v in sets.items()}, flush=True)
    part = Partitioner(zoo.model_path("efficientnet-lite0"))
    report: dict = {
        "command": " ".join(sys.argv),
        "sets": {k: len(v[0]) for k, v in sets.items()},
        "photos": {k: sorted(set(v[1])) for k, v in sets.items()},
    }
    rows = []
    fold = photo_folds(sets)
    for ci in a.cuts:
        name = CUTS[ci]
        cut_tag = name.split("/")[1]
        split = SplitModel(part, name, providers="cpu", threads=1)
        heads, refs = {}, {}
        for tag, (xs, _src) in sets.items():
            heads[tag] = [
                split.run_head({"image": x})[name]
                for x in tqdm(xs, desc=f"{cut_tag} head {tag}", file=sys.stderr)
            ]
            if tag != "fit":
                refs[tag] = [split.run_full({"image": x})["logits"][0] for x in xs]
        klt = CutTransform.fit(iter(heads["fit"]))
        transforms = {name: klt}
        for bpe in a.budgets:
            n = heads["fit"][0].size
            params = CodecParams(
                mode="auto", max_bytes=int(bpe * n / 8), trellis=a.trellis, classes="auto"
            )
            coded: dict[str, list[tuple[np.ndarray, int]]] = {}
            for tag, hs in heads.items():
                coded[tag] = []
                for x in tqdm(hs, desc=f"{cut_tag} code {tag} {bpe}", file=sys.stderr):
                    packet = encode_values({name: x}, params, transforms)
                    y = decode_packet(packet, transforms)[0][name]
                    coded[tag].append((y, packet.encoded_bytes))
            # normal equations per group of inputs, added up per estimator (cross-fitting)
            acc = {}
            groups = {
                "fit": [("fit", i) for i in range(len(heads["fit"]))],
                "fold0": [(t, i) for t in ("scored", "alt") for i in np.flatnonzero(fold[t] == 0)],
                "fold1": [(t, i) for t in ("scored", "alt") for i in np.flatnonzero(fold[t] == 1)],
            }
            fit_cpu = time.process_time()
            for g, members in groups.items():
                e = EstimatorFit("map", heads["fit"][0].shape[1], a.window)
                for t, i in tqdm(members, desc=f"{cut_tag} fit {g}", file=sys.stderr):
                    e.add(heads[t][i], coded[t][i][0])
                acc[g] = e
            est = {
                0: (acc["fit"] + acc["fold1"]).solve(),  # for photos of fold 0
                1: (acc["fit"] + acc["fold0"]).solve(),
                "all": (acc["fit"] + acc["fold0"] + acc["fold1"]).solve(),
            }
            fit_cpu = time.process_time() - fit_cpu
            for tag in SETS:
                xs, src = heads[tag], sets[tag][1]
                bits = 8 * np.mean([b for _, b in coded[tag]]) / xs[0].size
                ref_top1 = np.array([int(r.argmax()) for r in refs[tag]])
                hits, kls, outs = {}, {}, {}
                apply_ms, tail_ms = [], []
                lmmse = f"lmmse{a.window}"
                for variant in ("none", lmmse):
                    ys, logits = [], []
                    for i, (y, _) in enumerate(coded[tag]):
                        if variant == lmmse:
                            e = est["all"] if tag == "photos" else est[int(fold[tag][i])]
                            c0 = time.thread_time()
                            y = e.apply(y)
                            apply_ms.append(1e3 * (time.thread_time() - c0))
                        ys.append(y)
                        c0 = time.thread_time()
                        logits.append(split.run_tail({name: y})["logits"][0])
                        tail_ms.append(1e3 * (time.thread_time() - c0))
                    top1 = np.array([int(lg.argmax()) for lg in logits])
                    hits[variant] = (top1 == ref_top1).astype(float)
                    kls[variant] = np.array(
                        [kl_div(r, lg) for r, lg in zip(refs[tag], logits, strict=True)]
                    )
                    outs[variant] = ys
                for variant in ("none", lmmse):
                    h = hits[variant]
                    miss = np.flatnonzero(h == 0)
                    row = {
                        "cut": name,
                        "set": tag,
                        "budget": bpe,
                        "estimator": variant,
                        "inputs": len(xs),
                        "photos": len(set(src)),
                        "bits_per_element": float(bits),
                        "rel_l2": rel_l2(xs, outs[variant]),
                        "kl": float(kls[variant].mean()),
                        "agreement": float(h.mean()),
                        "binomial_se": float(np.sqrt(h.mean() * (1 - h.mean()) / len(h))),
                        "photo_ci": photo_bootstrap(h, src),
                        "misses": [
                            {"index": int(i), "photo": src[i], "margins": margins(refs[tag][i])}
                            for i in miss
                        ],
                    }
                    if variant == lmmse:
                        d = hits[lmmse] - hits["none"]
                        row["paired_diff"] = float(d.mean())
                        row["paired_diff_photo_ci"] = photo_bootstrap(d, src)
                        row["kl_ratio"] = float(kls[lmmse].mean() / kls["none"].mean())
                        row["kl_ratio_photo_ci"] = _ratio_ci(kls[lmmse], kls["none"], src)
                        row["apply_ms_median"] = float(np.median(apply_ms))
                        row["tail_ms_median"] = float(np.median(tail_ms))
                        row["fit_cpu_s"] = fit_cpu
                    rows.append(row)
                    print(_line(row), flush=True)
    report["rows"] = rows
    report["cpu_s"] = time.process_time() - t0
    print(f"CPU {report['cpu_s']:.0f} s")
    if a.json:
        Path(a.json).write_text(json.dumps(report, separators=(",", ":")))
        print(f"wrote {a.json}")
    summary(report)


MINILM_CUT = "/layer.3/output/LayerNorm/LayerNormalization_output_0"


def minilm(budgets: list[float], trellis: float, count: int = 200) -> list[dict]:
    """MiniLM-L6 after layer 3: mean embedding cosine with and without a 'rows' estimator
    (384 x 384 + bias), 2-fold cross-fitted over the sentences; KLT fitted per fold too; the
    coded tensor's budget is B b/el of its elements (side tensors counted in the b/el)."""
    from slicer.split.estimator import CutEstimator
    from slicer.split.fidelity import cosine

    part = Partitioner(zoo.model_path("minilm"))
    tok = zoo.minilm_tokenizer()
    split = SplitModel(part, MINILM_CUT, providers="cpu", threads=1)
    inputs = []
    for text in zoo.prose_sentences(count):
        enc = tok(text, return_tensors="np", truncation=True, max_length=128)
        inputs.append({k: enc[k].astype(np.int64) for k in ("input_ids", "attention_mask")})
    refs = [split.run_full(x)["embedding"][0] for x in inputs]
    heads = [split.run_head(x) for x in inputs]
    fold = np.arange(count) % 2
    rows = []
    for bpe in budgets:
        got: dict[str, list[float]] = {"none": [0.0] * count, "lmmse": [0.0] * count}
        bits = [0.0] * count
        for k in (0, 1):
            train = np.flatnonzero(fold != k)
            klt = {MINILM_CUT: CutTransform.fit(heads[i][MINILM_CUT] for i in train)}

            def code(i: int, klt: dict = klt, bpe: float = bpe) -> tuple[np.ndarray, float]:
                x = heads[i][MINILM_CUT]
                p = CodecParams(mode="auto", max_bytes=max(64, int(bpe * x.size / 8)),
                                trellis=trellis, classes="auto")  # fmt: skip
                packet = encode_values(heads[i], p, klt)
                elements = packet.coded_elements + sum(a.size for a in packet.raw.values())
                return decode_packet(packet, klt)[0], 8 * packet.encoded_bytes / elements

            est = CutEstimator.fit(
                (heads[i][MINILM_CUT], code(i)[0][MINILM_CUT])
                for i in tqdm(train, desc=f"minilm fit {bpe} fold {k}", file=sys.stderr)
            )
            for i in tqdm(np.flatnonzero(fold == k), desc="minilm score", file=sys.stderr):
                received, bits[i] = code(i)
                got["none"][i] = cosine(refs[i], split.run_tail(received)["embedding"][0])
                received[MINILM_CUT] = est.apply(received[MINILM_CUT])
                got["lmmse"][i] = cosine(refs[i], split.run_tail(received)["embedding"][0])
        d = np.array(got["lmmse"]) - np.array(got["none"])
        row = {
            "cut": MINILM_CUT,
            "budget": bpe,
            "bits_per_element": float(np.mean(bits)),
            "cosine_none": float(np.mean(got["none"])),
            "cosine_lmmse": float(np.mean(got["lmmse"])),
            "paired_diff": float(d.mean()),
            "paired_diff_se": float(d.std(ddof=1) / np.sqrt(count)),
        }
        print(
            f"minilm layer 3 B={bpe:g}: {row['bits_per_element']:.4f} b/el (sides counted)  "
            f"cosine {row['cosine_none']:.5f} plain, {row['cosine_lmmse']:.5f} with the "
            f"estimator (paired {row['paired_diff']:+.5f} ± {row['paired_diff_se']:.5f} s.e.)",
            flush=True,
        )
        rows.append(row)
    return rows


def _ratio_ci(
    num: np.ndarray, den: np.ndarray, photos: list[str], rounds: int = 2000
) -> tuple[float, float]:
    names = sorted(set(photos))
    idx = np.array([names.index(p) for p in photos])
    sn = np.bincount(idx, weights=num, minlength=len(names))
    sd = np.bincount(idx, weights=den, minlength=len(names))
    pick = np.random.default_rng(0).integers(0, len(names), size=(rounds, len(names)))
    lo, hi = np.percentile(sn[pick].sum(1) / sd[pick].sum(1), [2.5, 97.5])
    return float(lo), float(hi)


def _line(row: dict) -> str:
    lo, hi = row["photo_ci"]
    s = (
        f"{row['cut'].split('/')[1]:9} {row['set']:6} B={row['budget']:<5g} "
        f"{row['estimator']:7} {row['bits_per_element']:6.3f} b/el  relL2 {row['rel_l2']:.4f}  "
        f"KL {row['kl']:.4f}  agree {100 * row['agreement']:.2f} % "
        f"(±{100 * row['binomial_se']:.2f} binom, photos [{100 * lo:.1f}, {100 * hi:.1f}]; "
        f"{len(row['misses'])} misses)"
    )
    if "paired_diff" in row:
        dlo, dhi = row["paired_diff_photo_ci"]
        klo, khi = row["kl_ratio_photo_ci"]
        s += (
            f"  diff {100 * row['paired_diff']:+.2f} pp [{100 * dlo:+.1f}, {100 * dhi:+.1f}]"
            f"  KL ×{row['kl_ratio']:.3f} [{klo:.3f}, {khi:.3f}]"
            f"  apply {row['apply_ms_median']:.2f} ms, tail {row['tail_ms_median']:.2f} ms"
        )
    return s


def summary(report: dict) -> None:
    for row in report["rows"]:
        print(_line(row))
    # the three ImageNet/photo sets together, per cut / budget / estimator
    keys = sorted({(r["cut"], r["budget"], r["estimator"]) for r in report["rows"]})
    for cut, b, e in keys:
        rs = [r for r in report["rows"] if (r["cut"], r["budget"], r["estimator"]) == (cut, b, e)]
        n = sum(r["inputs"] for r in rs)
        m = sum(len(r["misses"]) for r in rs)
        print(
            f"{cut.split('/')[1]} B={b:g} {e}: all {len(rs)} sets {n} inputs, {m} misses, "
            f"{100 * (1 - m / n):.2f} %"
        )


def plot(report: dict, path: str) -> None:
    """Agreement (with the photo-bootstrap interval) and KL against b/el, per cut and set."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cuts = sorted({r["cut"] for r in report["rows"]}, key=CUTS.index)
    fig, axes = plt.subplots(2, len(cuts), figsize=(5.5 * len(cuts), 7.5), squeeze=False)
    for col, cut in enumerate(cuts):
        for k, tag in enumerate(SETS):
            for est, style in (("none", "-o"), ("lmmse3", "--s"), ("lmmse1", ":^")):
                pts = sorted(
                    (r["bits_per_element"] + (0.006 if est != "none" else 0), r)
                    for r in report["rows"]
                    if r["cut"] == cut and r["set"] == tag and r["estimator"] == est
                )
                if not pts:
                    continue
                b = [p[0] for p in pts]
                ag = np.array([100 * p[1]["agreement"] for p in pts])
                lo = np.array([100 * p[1]["photo_ci"][0] for p in pts])
                hi = np.array([100 * p[1]["photo_ci"][1] for p in pts])
                label = f"{tag}, " + {"none": "plain decode", "lmmse3": "decoder LMMSE 3x3",
                                      "lmmse1": "decoder LMMSE 1x1"}[est]  # fmt: skip
                axes[0, col].errorbar(
                    b, ag, yerr=[ag - lo, hi - ag], fmt=style, color=f"C{k}", capsize=2,
                    label=label, lw=1, ms=4,
                )  # fmt: skip
                axes[1, col].plot(b, [p[1]["kl"] for p in pts], style, color=f"C{k}", label=label)
        axes[0, col].axhline(99, color="grey", lw=0.8)
        axes[0, col].axvline(2.0, color="grey", lw=0.8, ls=":")
        block = {"_blocks.4": "block 4", "_blocks.9": "block 10"}[cut.split("/")[1]]
        axes[0, col].set_title(f"EfficientNet-Lite0 after {block}, mode 3 + KLT")
        axes[0, col].set_ylabel("top-1 agreement (%), 95 % photo bootstrap")
        axes[1, col].set_ylabel("KL(uncut || split)")
        axes[1, col].set_xlabel("bits / element (whole stream)")
        axes[1, col].set_yscale("log")
    axes[0, 0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
