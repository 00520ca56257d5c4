"""EfficientNet-Lite0 blocks 4 and 10: rate control per input (issue 7 task target: top-1
agreement >= 99 % at a mean <= 2.0 b/el). Every scheme before spent the same bytes on every
input; here the edge may give fragile inputs (near ties of the uncut model) more bits and the
easy ones fewer, as long as the mean real stream size over the scored inputs stays <= 2.0 b/el.

Two stages; the first codes every input at every rung of a ladder of codings and keeps, per
input and rung, the real stream size and what the tail made of it (top-1, KL; plain decode and
with the cross-fitted decoder-side estimator of slicer.split.estimator); the second decides, per
input, which rung the edge would have sent, from what the edge has (the cut tensor), with every
knob set on calibration inputs only ("extra" adds random views of the calibration photos for the
predictors; "refine" keeps the tail's margin on each low-rung decode, for a server that asks for
fragile inputs again; "cost" times the predictor against the head):

    nice python bench/effnet_ratecontrol.py measure --cache build/effnet_ratecontrol
    nice python bench/effnet_ratecontrol.py extra --cache build/effnet_ratecontrol
    nice python bench/effnet_ratecontrol.py refine --cache build/effnet_ratecontrol \
        --budgets 1.25 1.5 1.75
    python bench/effnet_ratecontrol.py analyse --cache build/effnet_ratecontrol \
        --json bench/results/effnet_ratecontrol.json --plot bench/plots/effnet_ratecontrol.png

Coding: mode 3 (trellis λ = 0.34, classes="auto") in a KLT basis fitted on "fit", as §9.21;
rungs ``mode="auto", max_bytes=B·N/8`` (constant bytes) and ``mode="auto", rel_error=e``
(constant distortion: the codec's own per-input rate control, no predictor). Sets, photos
disjoint (bench/effnet_estimator.py): scored (the standard 200 crops), alt (200 other crops of
the same 20 photos), photos (7 other real photos, 280 crops), fit (gallery photos, 280 crops,
never scored).

Calibration is cross-fitted by photo as the estimator of §9.21: a scored / alt crop of an
ImageNet photo of parity k is steered by a predictor and thresholds set on "fit" + the crops
(scored and alt) of the photos of parity 1 - k; the photos set by those set on "fit" + all 20.
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

from effnet_decoder import CUTS, kl_div  # noqa: E402
from effnet_estimator import image_sets, photo_bootstrap, photo_folds  # noqa: E402

SETS = ("scored", "alt", "photos")
BUDGETS = (2.0, 1.75, 2.25, 1.5, 2.5, 3.0, 1.25, 4.0, 5.0)


# ------------------------------------------------------------------ features at the edge


def pooled_features(x: np.ndarray) -> np.ndarray:
    """(1, C, H, W) cut tensor -> 3C: per-channel mean, RMS and max over the map."""
    x = np.asarray(x, dtype=np.float32).reshape(x.shape[1], -1)
    return np.concatenate([x.mean(1), np.sqrt((x * x).mean(1)), x.max(1)])


def logit_margin(logits: np.ndarray) -> float:
    top = np.partition(logits, -2)[-2:]
    return float(top[1] - top[0])


# ------------------------------------------------------------------ stage 1: measure


def limited_sets(limit: int) -> dict:
    """The image sets of bench/effnet_estimator.py; every limit-th input (smoke test) if > 0."""
    sets = image_sets()
    if limit:
        sets = {k: (xs[::limit], src[::limit]) for k, (xs, src) in sets.items()}
    return sets


def open_cut(part, ci: int):
    """(cut tensor name, short tag, a one-thread CPU SplitModel) of CUTS[ci]."""
    from slicer.split import SplitModel

    name = CUTS[ci]
    return name, name.split("/")[1], SplitModel(part, name, providers="cpu", threads=1)


def rung_key(kind: str, value: float) -> str:
    return f"{kind}{value:g}"


def measure(a: argparse.Namespace) -> None:  # noqa: PLR0915 - one linear measurement loop
    from slicer.split import Partitioner, zoo
    from slicer.split.estimator import EstimatorFit
    from slicer.split.transform import CutTransform
    from slicer.split.transport import CodecParams, decode_packet, encode_values

    cache = Path(a.cache)
    cache.mkdir(parents=True, exist_ok=True)
    sets = limited_sets(a.limit)
    print({k: len(v[0]) for k, v in sets.items()}, flush=True)
    part = Partitioner(zoo.model_path("efficientnet-lite0"))
    fold = photo_folds(sets)
    rungs = [("B", b) for b in a.budgets] + [("E", e) for e in a.rel_errors]
    for ci in a.cuts:
        name, cut_tag, split = open_cut(part, ci)
        heads, base = {}, {}
        for tag, (xs, src) in sets.items():
            heads[tag] = []
            refs = []
            for x in tqdm(xs, desc=f"{cut_tag} head+full {tag}", file=sys.stderr):
                heads[tag].append(split.run_head({"image": x})[name])
                refs.append(split.run_full({"image": x})["logits"][0])
            base[f"{tag}/features"] = np.stack([pooled_features(h) for h in heads[tag]])
            base[f"{tag}/margin"] = np.array([logit_margin(r) for r in refs])
            base[f"{tag}/top1"] = np.array([int(r.argmax()) for r in refs])
            base[f"{tag}/logits"] = np.stack(refs).astype(np.float32)
            base[f"{tag}/photos"] = np.array(src)
            heads[tag + "/refs"] = refs
        np.savez(cache / f"{cut_tag}_base.npz", **base)
        klt = CutTransform.fit(iter(heads["fit"]))
        transforms = {name: klt}
        n = heads["fit"][0].size
        for kind, value in rungs:
            out_path = cache / f"{cut_tag}_{rung_key(kind, value)}.npz"
            if out_path.exists():
                print(f"{out_path} exists, kept", flush=True)
                continue
            t0 = time.process_time()
            if kind == "B":
                params = CodecParams(mode="auto", max_bytes=int(value * n / 8),
                                     trellis=a.trellis, classes="auto")  # fmt: skip
            else:
                params = CodecParams(mode="auto", rel_error=value, trellis=a.trellis,
                                     classes="auto")  # fmt: skip
            coded: dict[str, list[tuple[np.ndarray, int]]] = {}
            res: dict[str, np.ndarray] = {}
            for tag in sets:
                coded[tag] = []
                for x in tqdm(heads[tag], desc=f"{cut_tag} code {tag} {kind}{value:g}",
                              file=sys.stderr):  # fmt: skip
                    packet = encode_values({name: x}, params, transforms)
                    y = decode_packet(packet, transforms)[0][name]
                    coded[tag].append((y, packet.encoded_bytes))
                res[f"{tag}/bytes"] = np.array([b for _, b in coded[tag]])
            groups = {
                "fit": [("fit", i) for i in range(len(heads["fit"]))],
                "fold0": [(t, i) for t in ("scored", "alt") for i in np.flatnonzero(fold[t] == 0)],
                "fold1": [(t, i) for t in ("scored", "alt") for i in np.flatnonzero(fold[t] == 1)],
            }
            acc = {}
            for g, members in groups.items():
                e = EstimatorFit("map", heads["fit"][0].shape[1], 3)
                for t, i in members:
                    e.add(heads[t][i], coded[t][i][0])
                acc[g] = e
            est = {
                0: (acc["fit"] + acc["fold1"]).solve(),
                1: (acc["fit"] + acc["fold0"]).solve(),
                "all": (acc["fit"] + acc["fold0"] + acc["fold1"]).solve(),
            }
            for tag in ("fit", *SETS):
                refs = heads[tag + "/refs"]
                for variant in ("none", "lmmse3"):
                    if variant == "lmmse3" and tag == "fit":
                        continue  # in-sample: never scored
                    top1, kls, err, den = [], [], 0.0, 0.0
                    for i, (y, _) in enumerate(coded[tag]):
                        if variant == "lmmse3":
                            e = est["all"] if tag == "photos" else est[int(fold[tag][i])]
                            y = e.apply(y)
                        lg = split.run_tail({name: y})["logits"][0]
                        top1.append(int(lg.argmax()))
                        kls.append(kl_div(refs[i], lg))
                        x = heads[tag][i].astype(np.float64)
                        err += float(np.sum((x - y) ** 2))
                        den += float(np.sum(x * x))
                    res[f"{tag}/{variant}/top1"] = np.array(top1)
                    res[f"{tag}/{variant}/kl"] = np.array(kls)
                    res[f"{tag}/{variant}/rel_l2"] = np.array(np.sqrt(err / den))
            np.savez(out_path, elements=n, cpu_s=time.process_time() - t0, **res)
            for tag in SETS:
                b = 8 * res[f"{tag}/bytes"].mean() / n
                ag = (res[f"{tag}/none/top1"] == base[f"{tag}/top1"]).mean()
                age = (res[f"{tag}/lmmse3/top1"] == base[f"{tag}/top1"]).mean()
                print(f"{cut_tag} {kind}{value:g} {tag:6} {b:.3f} b/el  agreement "
                      f"{100 * ag:.1f} % plain, {100 * age:.1f} % estimator  "
                      f"(CPU {time.process_time() - t0:.0f} s)", flush=True)  # fmt: skip


def extra(a: argparse.Namespace) -> None:
    """More calibration views for the predictors only (no coding needed: features and the uncut
    margin): ``--views`` random crops (scale 0.4-1, any offset, random flip; fixed seed) of every
    "fit" photo and of every ImageNet photo (those are used only by the fold that does not score
    that photo)."""
    from effnet_estimator import PHOTOS

    from slicer.split import Partitioner, zoo
    from slicer.split.datasets import gallery_images

    rng = np.random.default_rng(7)
    photos = [(rgb, name) for rgb, _label, name in zoo.imagenet_photos()]
    gallery = [(rgb, s) for rgb, s in gallery_images() if not s.startswith("foolbox/imagenet_")]
    photos += [(rgb, s) for rgb, s in gallery if s not in PHOTOS][0::2]  # the "fit" photos
    views, names = [], []
    for rgb, name in photos:
        rgb = rgb if rgb.ndim == 3 else np.stack([rgb] * 3, -1)
        for _ in range(a.views):
            crop, ox, oy = rng.uniform(0.4, 1.0), rng.uniform(0.1, 0.9), rng.uniform(0.1, 0.9)
            views.append((rgb, crop, (ox, oy), bool(rng.integers(2))))
            names.append(name)
    part = Partitioner(zoo.model_path("efficientnet-lite0"))
    for ci in a.cuts:
        name, cut_tag, split = open_cut(part, ci)
        feats, margin, logits = [], [], []
        for rgb, crop, off, flip in tqdm(views, desc=f"{cut_tag} extra views", file=sys.stderr):
            x = zoo.preprocess_image(rgb, crop=crop, offset=off, flip=flip)
            out = split.run_full({"image": x})
            h = split.run_head({"image": x})[name]
            feats.append(pooled_features(h))
            margin.append(logit_margin(out["logits"][0]))
            logits.append(out["logits"][0].astype(np.float32))
        out_path = Path(a.cache) / f"{cut_tag}_extra.npz"
        np.savez(out_path, features=np.stack(feats), margin=np.array(margin),
                 logits=np.stack(logits), photos=np.array(names))  # fmt: skip
        print(f"{cut_tag}: {len(views)} extra views of {len(photos)} photos", flush=True)


def refine(a: argparse.Namespace) -> None:
    """For a server-side policy: the tail's own top-1 - top-2 margin on the tensor decoded from
    each low rung (no estimator), what a server sees before it answers."""
    from slicer.split import Partitioner, zoo
    from slicer.split.transform import CutTransform
    from slicer.split.transport import CodecParams, decode_packet, encode_values

    sets = limited_sets(a.limit)
    part = Partitioner(zoo.model_path("efficientnet-lite0"))
    for ci in a.cuts:
        name, cut_tag, split = open_cut(part, ci)
        heads = {
            tag: [split.run_head({"image": x})[name] for x in tqdm(xs, desc=f"{cut_tag} head {tag}",
                                                                   file=sys.stderr)]
            for tag, (xs, _src) in sets.items()
        }  # fmt: skip
        transforms = {name: CutTransform.fit(iter(heads["fit"]))}
        n = heads["fit"][0].size
        for b in a.budgets:
            params = CodecParams(mode="auto", max_bytes=int(b * n / 8), trellis=a.trellis,
                                 classes="auto")  # fmt: skip
            out = {}
            for tag, hs in heads.items():
                m, top1 = [], []
                for x in tqdm(hs, desc=f"{cut_tag} decoded margin {tag} B{b:g}", file=sys.stderr):
                    packet = encode_values({name: x}, params, transforms)
                    y = decode_packet(packet, transforms)[0][name]
                    logits = split.run_tail({name: y})["logits"][0]
                    m.append(logit_margin(logits))
                    top1.append(int(logits.argmax()))
                out[f"{tag}/decoded_margin"] = np.array(m)
                out[f"{tag}/top1"] = np.array(top1)  # the same as measure's (a check)
            np.savez(Path(a.cache) / f"{cut_tag}_refine_B{b:g}.npz", **out)
            count = sum(len(v) for k, v in out.items() if k.endswith("/decoded_margin"))
            print(f"{cut_tag} B{b:g}: decoded margins of {count} inputs", flush=True)


def residual(a: argparse.Namespace) -> None:
    """For a cheaper server refinement: each input at a low rung B, then the residual of its
    KLT coefficients (c - decoded c) coded on its own at R b/el of the cut's elements; the server
    adds the two decodes. Keeps per (B, R) the residual stream's size and the tail's top-1 / KL."""
    import slicer
    from slicer.split import Partitioner, zoo
    from slicer.split.transform import CutTransform
    from slicer.split.transport import CodecParams

    sets = limited_sets(a.limit)
    part = Partitioner(zoo.model_path("efficientnet-lite0"))
    for ci in a.cuts:
        name, cut_tag, split = open_cut(part, ci)
        klt, n = None, 0
        out: dict[str, dict] = {}
        for tag in ("fit", *SETS):
            xs = sets[tag][0]
            heads = [split.run_head({"image": x})[name] for x in xs]
            if klt is None:  # "fit" comes first: the KLT of measure
                klt, n = CutTransform.fit(iter(heads)), heads[0].size
            for x_img, h in tqdm(list(zip(xs, heads, strict=True)), file=sys.stderr,
                                 desc=f"{cut_tag} residual {tag}"):  # fmt: skip
                ref = split.run_full({"image": x_img})["logits"][0]
                c = np.ascontiguousarray(klt.forward(h).astype(np.float32))
                for b in a.budgets:
                    p_lo = CodecParams(mode="auto", max_bytes=int(b * n / 8), trellis=a.trellis,
                                       classes="auto")  # fmt: skip
                    c_lo = np.asarray(slicer.decode(slicer.encode(c, **p_lo.kwargs())),
                                      dtype=np.float32).reshape(c.shape)  # fmt: skip
                    res = np.ascontiguousarray(c - c_lo)
                    for r in a.residuals:
                        p_r = CodecParams(mode="auto", max_bytes=int(r * n / 8),
                                          trellis=a.trellis, classes="auto")  # fmt: skip
                        stream = slicer.encode(res, **p_r.kwargs())
                        r_hat = np.asarray(slicer.decode(stream), dtype=np.float32)
                        y = np.asarray(klt.inverse(c_lo + r_hat.reshape(c.shape)), np.float32)
                        lg = split.run_tail({name: y.reshape(h.shape)})["logits"][0]
                        d = out.setdefault(f"B{b:g}_R{r:g}", {})
                        d.setdefault(f"{tag}/bytes", []).append(len(stream))
                        d.setdefault(f"{tag}/none/top1", []).append(int(lg.argmax()))
                        d.setdefault(f"{tag}/none/kl", []).append(kl_div(ref, lg))
        for key, d in out.items():
            np.savez(Path(a.cache) / f"{cut_tag}_residual_{key}.npz", elements=n,
                     **{k: np.array(v) for k, v in d.items()})  # fmt: skip
            print(f"{cut_tag} {key}: residual streams " + ", ".join(
                f"{t} {8 * np.mean(d[f'{t}/bytes']) / n:.3f} b/el" for t in ("fit", *SETS)),
                flush=True)  # fmt: skip


# ------------------------------------------------------------------ stage 2: analyse


def ridge_fit(f: np.ndarray, y: np.ndarray, lam: float) -> tuple[np.ndarray, ...]:
    """Standardised features, ridge λ·n on the weights (bias free): (mu, sd, w, b)."""
    mu, sd = f.mean(0), f.std(0) + 1e-6
    z = (f - mu) / sd
    ym = y.mean(0)
    w = np.linalg.solve(z.T @ z + lam * len(z) * np.eye(z.shape[1]), z.T @ (y - ym))
    return mu, sd, w, ym


def ridge_predict(model: tuple[np.ndarray, ...], f: np.ndarray) -> np.ndarray:
    mu, sd, w, b = model
    return ((f - mu) / sd) @ w + b


LAMBDAS = (1e-3, 1e-2, 1e-1, 1.0, 10.0)


def fit_predictor(kind: str, f: np.ndarray, margin: np.ndarray, logits: np.ndarray,
                  groups: np.ndarray):  # fmt: skip
    """A fragility score (higher = more fragile) from the pooled features, λ chosen by 5-fold
    cross-validation over photos of the calibration inputs (Spearman of score and -margin)."""

    def target(idx):
        if kind == "margin":
            return np.log(margin[idx] + 0.1)
        return logits[idx] - logits[idx].mean(1, keepdims=True)

    def score(model, fq):
        p = ridge_predict(model, fq)
        if kind == "margin":
            return -p
        top = np.sort(p, 1)
        return -(top[:, -1] - top[:, -2])

    uniq = np.unique(groups)
    rng = np.random.default_rng(0)
    part = {g: k for k, g in enumerate(rng.permutation(uniq))}
    folds = np.array([part[g] % 5 for g in groups])
    best = None
    for lam in LAMBDAS:
        s = np.empty(len(f))
        for k in range(5):
            tr, te = folds != k, folds == k
            s[te] = score(ridge_fit(f[tr], target(np.flatnonzero(tr)), lam), f[te])
        rho = spearman(s, -margin)
        if best is None or rho > best[0]:
            best = (rho, lam)
    model = ridge_fit(f, target(np.arange(len(f))), best[1])
    return (lambda fq: score(model, fq)), {"lambda": best[1], "cv_spearman": best[0]}


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    ra, rb = np.argsort(np.argsort(a)), np.argsort(np.argsort(b))
    return float(np.corrcoef(ra, rb)[0, 1])


def choose_threshold(score: np.ndarray, rate_lo: np.ndarray, rate_hi: np.ndarray,
                     target: float) -> float:  # fmt: skip
    """The lowest score threshold t (inputs with score >= t get the high rung) whose mean real
    rate over these calibration inputs is <= target; +inf when even all-low exceeds it."""
    order = np.argsort(-score)
    s = score[order]
    base = rate_lo.sum()
    extra = np.cumsum((rate_hi - rate_lo)[order])
    ok = (base + extra) / len(score) <= target
    if base / len(score) > target:
        return np.inf
    k = int(np.flatnonzero(ok)[-1]) + 1 if ok.any() else 0
    if k == 0:
        return np.inf
    if k == len(s):
        return -np.inf
    # between the k-th and (k+1)-th score: admit exactly the first k calibration inputs
    return float(0.5 * (s[k - 1] + s[k]))


def analyse(a: argparse.Namespace) -> None:  # noqa: C901, PLR0912, PLR0915
    cache = Path(a.cache)
    report: dict = {"command": " ".join(sys.argv), "target_rate": a.target, "cuts": {}}
    for ci in a.cuts:
        cut_tag = CUTS[ci].split("/")[1]
        base = dict(np.load(cache / f"{cut_tag}_base.npz"))
        rungs = {}
        for p in sorted(cache.glob(f"{cut_tag}_*.npz")):
            key = p.stem[len(cut_tag) + 1 :]
            if key not in ("base", "extra") and not key.startswith(("refine", "residual")):
                rungs[key] = dict(np.load(p))
        n = int(next(iter(rungs.values()))["elements"])
        tags = ("fit", *SETS)
        rate = {k: {t: 8 * r[f"{t}/bytes"] / n for t in tags} for k, r in rungs.items()}
        hit = {
            k: {(t, v): (r[f"{t}/{v}/top1"] == base[f"{t}/top1"]).astype(float)
                for t in tags for v in ("none", "lmmse3") if f"{t}/{v}/top1" in r}
            for k, r in rungs.items()
        }  # fmt: skip
        kl = {k: {(t, v): r[f"{t}/{v}/kl"] for t in tags for v in ("none", "lmmse3")
                  if f"{t}/{v}/kl" in r} for k, r in rungs.items()}  # fmt: skip
        names = sorted(set(base["scored/photos"]))
        fold = {t: np.array([names.index(p) % 2 for p in base[f"{t}/photos"]])
                for t in ("scored", "alt")}  # fmt: skip

        def cal_index(t, k, base=base, fold=fold):
            """(set, index) pairs of the calibration inputs for held-out set t, fold k."""
            out = [("fit", i) for i in range(len(base["fit/margin"]))]
            for s in ("scored", "alt"):
                sel = np.arange(len(fold[s])) if t == "photos" else np.flatnonzero(fold[s] != k)
                out += [(s, int(i)) for i in sel]
            return out

        def held_index(t, k, base=base, fold=fold):
            if t == "photos":
                return np.arange(len(base["photos/margin"])) if k == 0 else np.array([], int)
            return np.flatnonzero(fold[t] == k)

        def gather(key, pairs, base=base):
            return np.array([base[f"{s}/{key}"][i] for s, i in pairs])

        budget_keys = sorted((k for k in rungs if k.startswith("B")), key=lambda k: float(k[1:]))
        rel_keys = sorted((k for k in rungs if k.startswith("E")), key=lambda k: -float(k[1:]))
        ladders = [(lo, hi) for lo in budget_keys for hi in budget_keys
                   if float(lo[1:]) < a.target < float(hi[1:])]  # fmt: skip
        policies: dict[str, dict] = {}
        # per policy and held-out set: the rung chosen per input. "/cal": threshold set on the
        # calibration inputs; "/batch": the edge ranks one batch (a held-out set's fold, 100 or
        # 280 inputs) by its scores and sends the most fragile at the high rung as long as the
        # batch's real mean rate stays <= target (rate guaranteed, ranking from the predictor)
        extra_path = cache / f"{cut_tag}_extra.npz"
        ext = dict(np.load(extra_path)) if extra_path.exists() else None
        pols = ("fixed", "rel_error", "margin", "probe", "oracle")
        pols += ("margin+", "probe+") if ext is not None else ()
        # server-requested refinement: every input first at a low rung; the server, from the
        # tail's own margin on that decode, asks for the input again at a high rung (both streams
        # counted: rung "lo>hi" costs rate[lo] + rate[hi] and is judged on the high rung)
        refm = {p.stem.split("_refine_")[1]: dict(np.load(p))
                for p in sorted(cache.glob(f"{cut_tag}_refine_B*.npz"))}  # fmt: skip
        refine_ladders = []
        for lo, r in refm.items():
            for t in tags:  # the decode the server saw is the one measured (a check)
                same = int((r[f"{t}/top1"] == rungs[lo][f"{t}/none/top1"]).sum())
                if same != len(r[f"{t}/top1"]):
                    print(f"  {cut_tag} {lo} {t}: refine top-1 differs on "
                          f"{len(r[f'{t}/top1']) - same} inputs", flush=True)  # fmt: skip
            for hi in budget_keys:
                if float(hi[1:]) > 2.0:
                    key = f"{lo}>{hi}"
                    rate[key] = {t: rate[lo][t] + rate[hi][t] for t in tags}
                    hit[key], kl[key] = hit[hi], kl[hi]
                    refine_ladders.append((lo, key))
        pols += ("refine",) if refm else ()
        for key in budget_keys:  # the constant-bytes rungs, for comparison
            print(f"  {cut_tag} {key} on every input: {rung_line(rate, hit, kl, key)}", flush=True)
        # the same with a residual refinement: the low rung's bytes are kept, the server asks
        # for the residual of the coefficients at R b/el (rung "lo+Rr"; plain decode only)
        residual_ladders = []
        for path in sorted(cache.glob(f"{cut_tag}_residual_B*_R*.npz")):
            lo, rr = path.stem.split("_residual_")[1].split("_")
            if lo not in refm:
                continue
            d = dict(np.load(path))
            key = f"{lo}+{rr}"
            rate[key] = {t: rate[lo][t] + 8 * d[f"{t}/bytes"] / n for t in tags}
            hit[key] = {(t, "none"): (d[f"{t}/none/top1"] == base[f"{t}/top1"]).astype(float)
                        for t in tags}  # fmt: skip
            kl[key] = {(t, "none"): d[f"{t}/none/kl"] for t in tags}
            residual_ladders.append((lo, key))
            print(f"  {cut_tag} {key} on every input: {rung_line(rate, hit, kl, key)}", flush=True)
        pols += ("refine-residual",) if residual_ladders else ()
        for pol in pols:
            allocs = ("",) if pol in ("fixed", "rel_error") else ("/cal", "/batch")
            choice = {al: {t: np.empty(len(base[f"{t}/margin"]), dtype=object) for t in SETS}
                      for al in allocs}  # fmt: skip
            info = []
            for t in SETS:
                for k in (0, 1):
                    held = held_index(t, k)
                    if len(held) == 0:
                        continue
                    cal = cal_index(t, k)
                    cal_rate = {key: np.array([rate[key][s][i] for s, i in cal]) for key in rate}
                    cal_hit = {key: np.array([hit[key][(s, "none")][i] for s, i in cal])
                               for key in hit}  # fmt: skip
                    if pol == "fixed":  # the standard figure: 2.0 b/el on every input
                        choice[""][t][held] = "B2"
                        continue
                    if pol == "rel_error":
                        ok = [key for key in rel_keys if cal_rate[key].mean() <= a.target]
                        ok = ok or rel_keys[:1]  # none fits: the lowest-rate rung measured
                        choice[""][t][held] = ok[-1]
                        info.append({"set": t, "fold": k, "rung": ok[-1],
                                     "cal_rate": float(cal_rate[ok[-1]].mean())})  # fmt: skip
                        continue
                    pinfo, pol_ladders = {}, ladders
                    if pol.startswith("refine"):  # the score depends on the rung the server decoded

                        def score_cal_of(lo, cal=cal, refm=refm):
                            return -np.array([refm[lo][f"{s}/decoded_margin"][i] for s, i in cal])

                        def score_held_of(lo, t=t, held=held, refm=refm):
                            return -refm[lo][f"{t}/decoded_margin"][held]

                        pol_ladders = refine_ladders if pol == "refine" else residual_ladders
                    else:
                        f_cal = gather("features", cal)
                        if pol == "oracle":
                            score_cal = -gather("margin", cal)
                            score_held = -base[f"{t}/margin"][held]
                        else:
                            f_fit, m_fit = f_cal, gather("margin", cal)
                            lg_fit = gather("logits", cal)
                            g_fit = np.array([base[f"{s}/photos"][i] for s, i in cal])
                            if pol.endswith("+"):  # the extra views of the calibration photos
                                ok = np.isin(ext["photos"], np.unique(g_fit))
                                f_fit = np.concatenate([f_fit, ext["features"][ok]])
                                m_fit = np.concatenate([m_fit, ext["margin"][ok]])
                                lg_fit = np.concatenate([lg_fit, ext["logits"][ok]])
                                g_fit = np.concatenate([g_fit, ext["photos"][ok]])
                            kind = pol.rstrip("+")
                            predict, pinfo = fit_predictor(kind, f_fit, m_fit, lg_fit, g_fit)
                            score_cal = predict(f_cal)
                            score_held = predict(base[f"{t}/features"][held])

                        def score_cal_of(lo, sc=score_cal):
                            return sc

                        def score_held_of(lo, sh=score_held):
                            return sh

                    # ladder and threshold: best calibration agreement at mean rate <= target
                    best = None
                    for lo, hi in pol_ladders:
                        sc = score_cal_of(lo)
                        th = choose_threshold(sc, cal_rate[lo], cal_rate[hi], a.target)
                        up = sc >= th
                        ag = np.where(up, cal_hit[hi], cal_hit[lo]).mean()
                        if best is None or ag > best[0]:
                            best = (ag, lo, hi, th, float(up.mean()))
                    _, lo, hi, th, frac = best
                    score_held = score_held_of(lo)
                    choice["/cal"][t][held] = np.where(score_held >= th, hi, lo)
                    tb = choose_threshold(score_held, rate[lo][t][held], rate[hi][t][held],
                                          a.target)  # fmt: skip
                    choice["/batch"][t][held] = np.where(score_held >= tb, hi, lo)
                    info.append({"set": t, "fold": k, "ladder": [lo, hi], "threshold": th,
                                 "cal_fraction_high": frac, "cal_agreement": float(best[0]),
                                 "held_spearman": spearman(score_held, -base[f"{t}/margin"][held]),
                                 **pinfo})  # fmt: skip
            for al in allocs:
                policies[pol + al] = {"choice": choice[al], "info": info}
        rows = []
        for pol, p in policies.items():
            for v in ("none", "lmmse3"):
                used = {key for t in SETS for key in p["choice"][t]}
                if any((t, v) not in hit[key] for key in used for t in SETS):
                    continue  # residual refinement: plain decode only
                per, pooled = {}, {"r": [], "h": [], "q": [], "h0": [], "src": []}
                for t in SETS:
                    ch = p["choice"][t]
                    got = {
                        "r": [rate[key][t][i] for i, key in enumerate(ch)],
                        "h": [hit[key][(t, v)][i] for i, key in enumerate(ch)],
                        "q": [kl[key][(t, v)][i] for i, key in enumerate(ch)],
                        "h0": hit["B2"][(t, "none")],
                        "src": list(base[f"{t}/photos"]),
                    }
                    per[t] = set_summary(**got)
                    per[t]["rungs"] = {key: int((ch == key).sum()) for key in sorted(set(ch))}
                    for key, val in got.items():
                        pooled[key] += list(val)
                per["pooled"] = set_summary(**pooled)
                rows.append({"policy": pol, "estimator": v, "sets": per})
                print(_line(cut_tag, pol, v, per), flush=True)
        for key in rel_keys:  # how much constant distortion moves the rate between inputs
            spread = ", ".join(
                f"{t} {rate[key][t].mean():.3f} ± {rate[key][t].std():.3f} "
                f"[{rate[key][t].min():.3f}, {rate[key][t].max():.3f}] "
                f"(Spearman with -margin {spearman(rate[key][t], -base[f'{t}/margin']):+.2f})"
                for t in tags
            )
            print(f"  {cut_tag} {key} b/el per input: {spread}", flush=True)
        # how good must a predictor be? the oracle's score plus Gaussian noise (on the
        # log(margin + 0.1) scale), batch allocation on the oracle's calibrated ladder, 20 draws
        noisy = []
        for sigma in a.noise:
            for v in ("none", "lmmse3"):
                rho, agree, rates = {t: [] for t in SETS}, {t: [] for t in SETS}, []
                misses_pooled = []
                for draw in range(20):
                    rng = np.random.default_rng(1000 + draw)
                    m_pooled, r_pooled = 0, []
                    for inf in policies["oracle/batch"]["info"]:
                        t, k = inf["set"], inf["fold"]
                        lo, hi = inf["ladder"]
                        held = held_index(t, k)
                        clean = -np.log(base[f"{t}/margin"][held] + 0.1)
                        sc = clean + sigma * rng.standard_normal(len(held))
                        rho[t].append(spearman(sc, clean))
                        tb = choose_threshold(sc, rate[lo][t][held], rate[hi][t][held], a.target)
                        up = sc >= tb
                        h = np.where(up, hit[hi][(t, v)][held], hit[lo][(t, v)][held])
                        agree[t].append((h.sum(), len(h)))
                        m_pooled += int((h == 0).sum())
                        r_pooled += list(np.where(up, rate[hi][t][held], rate[lo][t][held]))
                    misses_pooled.append(m_pooled)
                    rates.append(np.mean(r_pooled))
                entry = {
                    "sigma": sigma,
                    "estimator": v,
                    "rate": float(np.mean(rates)),
                    "pooled_misses_mean": float(np.mean(misses_pooled)),
                    "pooled_misses_range": [int(min(misses_pooled)), int(max(misses_pooled))],
                }
                for t in SETS:
                    hits = np.array(agree[t], dtype=float).reshape(20, -1, 2).sum(1)
                    entry[t] = {
                        "spearman": float(np.mean(rho[t])),
                        "agreement_mean": float(np.mean(hits[:, 0] / hits[:, 1])),
                    }
                noisy.append(entry)
                rho_s = ", ".join(f"{t} {entry[t]['spearman']:.2f}" for t in SETS)
                ag_s = ", ".join(f"{t} {100 * entry[t]['agreement_mean']:.2f} %" for t in SETS)
                print(
                    f"  {cut_tag} noisy oracle σ={sigma:g} {v:6}: Spearman {rho_s}; agreement "
                    f"{ag_s}; pooled misses {entry['pooled_misses_mean']:.1f} "
                    f"{entry['pooled_misses_range']} (fixed 2.0: "
                    f"{rows[0]['sets']['pooled']['misses']}), mean rate {entry['rate']:.3f}",
                    flush=True,
                )
        # the constant budgets themselves, for the plot (agreement against real rate)
        curve = {key: {t: {"rate": float(rate[key][t].mean()),
                           "inputs": len(rate[key][t]),
                           "agreement": {v: float(hit[key][(t, v)].mean())
                                         for v in ("none", "lmmse3")}}
                       for t in SETS} for key in rungs}  # fmt: skip
        report["cuts"][cut_tag] = {
            "rows": rows,
            "noisy_oracle": noisy,
            "curve": curve,
            "policy_info": {k: p["info"] for k, p in policies.items()},
            "margin_misses_at_B2": {
                t: sorted(float(x) for x in base[f"{t}/margin"][hit["B2"][(t, "none")] == 0])
                for t in SETS
            },
        }
        for pol in [p for p in pols if p.startswith(("margin", "probe", "refine"))]:
            for inf in policies[pol + "/cal"]["info"]:
                inf = {"lambda": float("nan"), "cv_spearman": float("nan"), **inf}
                print(f"  {cut_tag} {pol} {inf['set']} fold {inf['fold']}: λ {inf['lambda']:g}, "
                      f"CV Spearman {inf['cv_spearman']:.3f}, held-out Spearman "
                      f"{inf['held_spearman']:.3f}, ladder {inf['ladder']}, high on "
                      f"{100 * inf['cal_fraction_high']:.0f} % of calibration")  # fmt: skip
    if a.json:
        Path(a.json).write_text(json.dumps(report, indent=1, default=_json_default))
        print(f"wrote {a.json}")
    if a.plot:
        plot(report, a.plot)


def rung_line(rate: dict, hit: dict, kl: dict, key: str) -> str:
    """One rung sent for every input: its mean rate, agreement (standard 200, pooled) and KL."""
    pooled = np.concatenate([hit[key][(t, "none")] for t in SETS]).mean()
    r_pooled = np.concatenate([rate[key][t] for t in SETS]).mean()
    kl_pooled = np.concatenate([kl[key][(t, "none")] for t in SETS]).mean()
    return (f"{r_pooled:.3f} b/el, agreement standard 200 "
            f"{100 * hit[key][('scored', 'none')].mean():.1f} %, pooled 680 {100 * pooled:.2f} %, "
            f"KL pooled {kl_pooled:.4f}")  # fmt: skip


def set_summary(r: list, h: list, q: list, h0: list, src: list) -> dict:
    """Mean real rate, agreement (binomial s.e., 95 % photo bootstrap), KL and the paired
    difference against constant 2.0 b/el (plain decode) of one set of inputs."""
    r, h, q, h0 = (np.asarray(z, dtype=float) for z in (r, h, q, h0))
    return {
        "rate": float(r.mean()),
        "agreement": float(h.mean()),
        "misses": int((h == 0).sum()),
        "inputs": len(h),
        "kl": float(q.mean()),
        "binomial_se": float(np.sqrt(h.mean() * (1 - h.mean()) / len(h))),
        "photo_ci": photo_bootstrap(h, src),
        "diff_vs_fixed2": float((h - h0).mean()),
        "diff_vs_fixed2_photo_ci": photo_bootstrap(h - h0, src),
    }


def _json_default(o):
    if isinstance(o, np.generic):
        return o.item()
    raise TypeError(type(o))


def _line(cut_tag: str, pol: str, v: str, per: dict) -> str:
    s = f"{cut_tag:9} {pol:12} {v:6}"
    for t in SETS:
        r = per[t]
        lo, hi = r["photo_ci"]
        s += (f" | {t} {r['rate']:.3f} b/el {100 * r['agreement']:.1f} % ({r['misses']}; "
              f"[{100 * lo:.1f}, {100 * hi:.1f}]) Δ{100 * r['diff_vs_fixed2']:+.1f}")  # fmt: skip
    p = per["pooled"]
    lo, hi = p["diff_vs_fixed2_photo_ci"]
    return s + (f" | pooled {p['rate']:.3f} b/el {100 * p['agreement']:.2f} % ({p['misses']}; "
                f"±{100 * p['binomial_se']:.2f}) Δ{100 * p['diff_vs_fixed2']:+.2f} "
                f"[{100 * lo:+.1f}, {100 * hi:+.1f}]")  # fmt: skip


def plot(report: dict, path: str) -> None:
    """Agreement against the real mean rate per cut: the constant-bytes rungs as a curve, each
    policy as a point; the standard 200 crops and the 680 inputs pooled; plain decode."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cuts = list(report["cuts"])
    fig, axes = plt.subplots(2, len(cuts), figsize=(6.5 * len(cuts), 9), squeeze=False)
    marks = {"fixed": "s", "rel_error": "D", "margin/cal": "o", "margin/batch": "P",
             "probe/cal": "^", "probe/batch": "v", "oracle/batch": "*",
             "margin+/batch": "X", "probe+/batch": "<", "refine/batch": "h",
             "refine-residual/batch": "p"}  # fmt: skip
    for col, cut in enumerate(cuts):
        ax = axes[0, col]
        c = report["cuts"][cut]
        for j, t in enumerate(("scored", "pooled")):
            pts = []
            for key, v in c["curve"].items():
                if key.startswith("B"):
                    w = {s: v[s]["inputs"] for s in SETS} if t == "pooled" else {"scored": 1}
                    r = sum(v[s]["rate"] * n for s, n in w.items()) / sum(w.values())
                    ag = sum(v[s]["agreement"]["none"] * n for s, n in w.items()) / sum(w.values())
                    pts.append((r, ag))
            pts.sort()
            name = "standard 200" if t == "scored" else "680 pooled"
            ax.plot([p[0] for p in pts], [100 * p[1] for p in pts], "-", color=f"C{j}", lw=1,
                    label=f"constant bytes per input, {name}")  # fmt: skip
            for row in c["rows"]:
                if row["estimator"] != "none" or row["policy"] not in marks:
                    continue
                r = row["sets"][t]
                ax.plot(r["rate"], 100 * r["agreement"], marks[row["policy"]], color=f"C{j}",
                        ms=7, mfc="none", label=f"{row['policy']}, {name}")  # fmt: skip
        ax.axhline(99, color="grey", lw=0.8)
        ax.axvline(2.0, color="grey", lw=0.8, ls=":")
        block = {"_blocks.4": "block 4", "_blocks.9": "block 10"}[cut]
        ax.set_title(f"EfficientNet-Lite0 after {block}: rate per input (plain decode)")
        ax.set_xlabel("mean bits / element over the inputs (real streams)")
        ax.set_ylabel("top-1 agreement with the uncut model (%)")
        ax.set_xlim(1.2, 3.1)
        ax.set_ylim(82, 100.5)
        ax.legend(fontsize=6, ncol=2, loc="lower right")
        ax = axes[1, col]
        for j, v in enumerate(("none", "lmmse3")):
            pts = [e for e in c["noisy_oracle"] if e["estimator"] == v]
            rho = [np.mean([e[t]["spearman"] for t in SETS]) for e in pts]
            ax.errorbar(
                rho,
                [e["pooled_misses_mean"] for e in pts],
                yerr=np.array(
                    [[e["pooled_misses_mean"] - e["pooled_misses_range"][0],
                      e["pooled_misses_range"][1] - e["pooled_misses_mean"]] for e in pts]
                ).T,
                fmt="-o", color=f"C{j + 2}", capsize=2,
                label="oracle score + noise, " + ("plain decode" if v == "none" else "estimator"),
            )  # fmt: skip
            fixed = next(r for r in c["rows"] if r["policy"] == "fixed" and r["estimator"] == v)
            tag = "plain" if v == "none" else "estimator"
            ax.axhline(fixed["sets"]["pooled"]["misses"], color=f"C{j + 2}", ls=":", lw=1,
                       label=f"constant 2.0 b/el, {tag}")  # fmt: skip
            for r in c["rows"]:
                if (
                    r["estimator"] == v
                    and r["policy"].endswith("/batch")
                    and "oracle" not in r["policy"]
                ):
                    rho_r = np.mean([i["held_spearman"] for i in c["policy_info"][r["policy"]]])
                    ax.plot(rho_r, r["sets"]["pooled"]["misses"], marks[r["policy"]],
                            color=f"C{j + 2}", ms=8, label=f"{r['policy']} (ridge on pooled "
                            "features), " + ("plain" if v == "none" else "estimator"))  # fmt: skip
        ax.set_xlabel("Spearman of the edge's score with the uncut margin (held-out inputs)")
        ax.set_ylabel("misses on the 680 pooled inputs at mean ≤ 1.98 b/el")
        ax.set_title("how good the fragility predictor must be (20 noise draws, min-max)")
        ax.legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    print(f"wrote {path}")


def cost(a: argparse.Namespace) -> None:
    """CPU time of the calling thread per input: the edge's predictor (pooled features and the
    ridge read-out: a scalar for "margin", 1000 logits for "probe") against the head."""
    from slicer.split import Partitioner, zoo

    part = Partitioner(zoo.model_path("efficientnet-lite0"))
    rgb = next(iter(zoo.imagenet_photos()))[0]
    image = zoo.preprocess_image(rgb)
    rng = np.random.default_rng(0)
    for ci in a.cuts:
        name, _, split = open_cut(part, ci)
        x = split.run_head({"image": image})[name]
        c = x.shape[1]
        w_margin = rng.standard_normal(3 * c)
        w_probe = rng.standard_normal((3 * c, 1000)).astype(np.float32)
        mu, sd = rng.standard_normal(3 * c), rng.random(3 * c) + 1
        t_head, t_margin, t_probe = [], [], []
        for _ in range(a.repeats):
            c0 = time.thread_time()
            x = split.run_head({"image": image})[name]
            c1 = time.thread_time()
            f = (pooled_features(x) - mu) / sd
            float(f @ w_margin)
            c2 = time.thread_time()
            f = ((pooled_features(x) - mu) / sd).astype(np.float32)
            top = np.partition(f @ w_probe, -2)[-2:]
            float(top[1] - top[0])
            c3 = time.thread_time()
            t_head.append(c1 - c0)
            t_margin.append(c2 - c1)
            t_probe.append(c3 - c2)
        h, m, p = (1e3 * float(np.median(t)) for t in (t_head, t_margin, t_probe))
        print(f"{name.split('/')[1]} {tuple(x.shape)}  head {h:.3f} ms  predictor: margin "
              f"{m:.4f} ms ({100 * m / h:.2f} % of the head), probe {p:.4f} ms "
              f"({100 * p / h:.2f} %)  (median of {a.repeats}, CPU time of the calling thread)",
              flush=True)  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("stage", choices=("measure", "extra", "refine", "residual", "analyse", "cost"))
    ap.add_argument("--residuals", type=float, nargs="+", default=[0.5, 1.0, 1.5, 2.5],
                    help="residual: b/el of the residual stream")  # fmt: skip
    ap.add_argument("--views", type=int, default=40, help="extra: random views per photo")
    ap.add_argument("--cache", default=None, help="folder of the per-rung .npz results")
    ap.add_argument("--repeats", type=int, default=200, help="cost: calls timed")
    ap.add_argument("--cuts", type=int, nargs="+", default=[1, 0], help="indices into CUTS")
    ap.add_argument("--budgets", type=float, nargs="+", default=list(BUDGETS))
    ap.add_argument("--rel-errors", type=float, nargs="+", default=[0.25, 0.24, 0.26, 0.27])
    ap.add_argument("--trellis", type=float, default=0.34)
    ap.add_argument("--target", type=float, default=1.98, help="mean b/el aimed at (calibration)")
    ap.add_argument("--limit", type=int, default=0, help="measure: every n-th input (smoke test)")
    ap.add_argument("--noise", type=float, nargs="+", default=[0.0, 0.25, 0.5, 1.0, 2.0])
    ap.add_argument("--json", default=None)
    ap.add_argument("--plot", default=None)
    a = ap.parse_args()
    t0 = time.process_time()
    stages = {"measure": measure, "extra": extra, "refine": refine, "residual": residual,
              "analyse": analyse}  # fmt: skip
    {**stages, "cost": cost}[a.stage](a)
    print(f"CPU {time.process_time() - t0:.0f} s")


if __name__ == "__main__":
    main()
