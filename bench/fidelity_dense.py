"""Task fidelity of the format-2 dense mode (issue 7 targets), with bench/fidelity's harness.

    python bench/fidelity_dense.py effnet     # EfficientNet-Lite0, after blocks 4 and 10
    python bench/fidelity_dense.py minilm     # MiniLM-L6, after layer 3
    python bench/fidelity_dense.py smollm2    # SmolLM2-135M, after layers 5 / 15 / 25
    python bench/fidelity_dense.py smollm2 --tokens 10240 --groups rows --budgets 2.5

Each setting codes every cut tensor with ``slicer.encode(x, mode="auto", max_bytes=B*N/8)``
(everything counted: the whole stream), groups "tensor" or per channel / per row, and reports
the same metrics as bench/fidelity/{effnet,minilm}.py: top-1 agreement with the uncut model /
embedding cosine. Targets: agreement >= 99 % at <= 2.0 b/el; cosine >= 0.99 at <= 2.0 b/el.

The cut's side tensors (masks, ids: everything the codec does not code) travel as the product
sends them on a coded link, as docs/side.md strings (slicer.split.side): the tail runs on the
decoded strings and ``b/el`` counts their bytes; the raw-side figure is printed beside it.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "fidelity"))

import common  # noqa: E402

import slicer  # noqa: E402
from slicer.split.side import decode_side, encode_side  # noqa: E402
from slicer.split.transform import CutTransform  # noqa: E402

BUDGETS = (1.0, 1.5, 2.0, 2.5)
CLASSES = None  # --classes
TRELLISES: tuple = (None,)  # --trellis: λ of mode 3 per setting (docs/format.md §21), None = off


def dense_setting(
    bpe: float,
    groups: str,
    transform: CutTransform | None = None,
    beta: float = 0.0,
    trellis: float | None = None,
) -> common.Setting:
    """``mode="auto", max_bytes=bpe*N/8``; with ``transform`` the stream codes the transform's
    coefficients and the receiver applies its inverse (the transform is held by both sides)."""

    kw: dict = {"groups": groups}
    if transform is not None and beta:
        # component k's step ∝ var_k^(beta/2): groups = the transform's components
        kw = {"groups": "channels", "weights": np.maximum(transform.variance, 1e-12) ** -beta}
    if CLASSES is not None:  # frequency tables per class of positions (docs/format.md §19)
        kw["classes"] = CLASSES
    if trellis is not None:  # trellis-coded quantization (mode 3, docs/format.md §21)
        kw["trellis"] = trellis

    def fn(x: np.ndarray) -> tuple[np.ndarray, int]:
        x32 = np.ascontiguousarray(x, dtype=np.float32)
        sink = SINK_ROWS if x32.ndim == 3 else 0  # (1, T, C) token rows sent raw first
        budget = max(64, int(bpe * x32.size / 8)) - sink * x32.shape[-1] * 4
        body = x32[:, sink:] if sink else x32
        coded = body if transform is None else transform.forward(body)
        if beta and coded.ndim == 3:  # (1, T, C): the components on axis 1 of (T, C)
            coded = coded.reshape(-1, coded.shape[-1])
        stream = slicer.encode(coded, mode="auto", max_bytes=budget, **kw)
        y = np.asarray(slicer.decode(stream)).reshape(body.shape)
        y = y if transform is None else transform.inverse(y)
        if sink:
            y = np.concatenate([x32[:, :sink], y], axis=1)
        return y, len(stream) + sink * x32.shape[-1] * 4

    tag = "" if transform is None else (f" klt b{beta:g}" if beta else " klt")
    tag += "" if CLASSES is None else f" classes {CLASSES}"
    tag += "" if trellis is None else f" trellis {trellis:g}"
    return common.Setting(
        f"dense auto {bpe:g} b/el {groups}{tag}",
        "dense",
        fn,
        {
            "bpe": bpe,
            "groups": groups,
            "transform": None if transform is None else transform.fingerprint(),
            "trellis": trellis,
        },
    )


def code_side_tensors(heads: list[dict[str, np.ndarray]]) -> float:
    """Replace each head's side tensors by what their docs/side.md strings decode to (bit for
    bit the same: checked) and return the mean side-string bytes per head."""
    from slicer.split.transport import coded_names

    total = 0
    for h in heads:
        coded = coded_names(
            {n: v.shape for n, v in h.items()}, {n: str(v.dtype) for n, v in h.items()}
        )
        for name in [n for n in h if n not in coded]:
            data = encode_side(h[name])
            back = decode_side(data)
            if back.dtype != h[name].dtype or back.tobytes() != h[name].tobytes():
                raise RuntimeError(f"side tensor {name!r} did not survive its side string")
            h[name] = back
            total += len(data)
    return total / max(len(heads), 1)


ROWS: list[dict] = []  # every row measured, for --json


def count_side(rows: list[dict], side_coded: float, cut: str) -> None:
    """``bits_per_element`` with the side tensors' strings counted instead of their raw bytes
    (the raw-side figure kept as ``bits_per_element_side_raw``)."""
    for row in rows:
        n = row["elements_per_input"]
        row["bits_per_element_side_raw"] = row["bits_per_element"]
        row["side_coded_bytes_per_input"] = side_coded
        sent = row["bytes_per_input"] - row["side_bytes_per_input"] + side_coded
        row["bits_per_element"] = 8 * sent / n
    ROWS.extend({"cut": cut, **row} for row in rows)


def side_note(row: dict) -> str:
    n = row["elements_per_input"]
    coded = 8 * row["side_coded_bytes_per_input"] / n
    raw = 8 * row["side_bytes_per_input"] / n
    return f"(sides coded {coded:.4f}, raw {raw:.3f}: {row['bits_per_element_side_raw']:.3f})"


def fit_transform(split, inputs: list, desc: str) -> CutTransform:  # noqa: ANN001
    """The KLT of the cut's one coded tensor from calibration inputs (disjoint from the
    scored ones)."""
    from tqdm import tqdm

    from slicer.split.transport import coded_names

    def values():  # noqa: ANN202
        for x in tqdm(inputs, desc=f"fit {desc}", unit="input", file=sys.stderr):
            out = split.run_head(x)
            names = coded_names(
                {n: v.shape for n, v in out.items()}, {n: str(v.dtype) for n, v in out.items()}
            )
            if len(names) != 1:
                raise RuntimeError(f"expected one coded cut tensor, got {names}")
            yield out[names[0]]

    weights = None
    if KLT_FISHER:
        weights = np.load(KLT_FISHER[desc]) if isinstance(KLT_FISHER, dict) else None
    t = CutTransform.fit(values(), weights=weights, outlier_ratio=KLT_OUTLIER)
    print(f"  transform: {t}{' (task-weighted)' if weights is not None else ''}", flush=True)
    return t


KLT_BETAS: tuple[float, ...] = (0.0,)  # --klt-beta
KLT_OUTLIER: float | None = None  # --klt-outlier
SINK_ROWS = 0  # --sink-rows: the first rows of each (1, T, C) chunk sent raw (float32)
KLT_FISHER: dict[str, str] = {}  # --klt-weights: cut tag -> .npy of a (C, C) Fisher matrix


def make_settings(budgets, groups, klt: str, transform: CutTransform | None) -> list:  # noqa: ANN001
    """``klt``: "off" (plain), "on" (transform only) or "both" (plain and transformed)."""
    out = []
    for g in groups:
        for b in budgets:
            for lam in TRELLISES:
                if klt in ("off", "both"):
                    out.append(dense_setting(b, g, trellis=lam))
                if klt in ("on", "both"):
                    out.extend(
                        dense_setting(b, g, transform, beta, trellis=lam) for beta in KLT_BETAS
                    )
    return out


def effnet(threads: int, budgets=BUDGETS, groups=("tensor", "channels"), klt="off") -> None:  # noqa: ANN001
    import effnet as fe

    from slicer.split import Partitioner, SplitModel, zoo
    from slicer.split.datasets import gallery_images

    part = Partitioner(zoo.model_path("efficientnet-lite0"))
    samples = [
        zoo.preprocess_image(rgb, crop=c, offset=o, flip=f)
        for rgb, _label, _ in zoo.imagenet_photos()
        for c, o in fe.CROPS
        for f in (False, True)
    ]
    # Calibration for the transform: every shipped photo that is not one of the scored ones.
    calib = [
        {
            "image": zoo.preprocess_image(
                rgb if rgb.ndim == 3 else np.stack([rgb] * 3, -1),
                crop=0.875,
                offset=(0.5, 0.5),
                flip=f,
            )
        }
        for rgb, src in gallery_images()
        if not src.startswith("foolbox/imagenet_")
        for f in (False, True)
    ]
    for name in fe.CUTS[:2]:
        split = SplitModel(part, name, providers="cpu", threads=threads)
        t = fit_transform(split, calib, name.split("/")[1]) if klt != "off" else None
        settings = make_settings(budgets, groups, klt, t)
        ref = [int(split.run_full({"image": x})["logits"][0].argmax()) for x in samples]
        heads = [split.run_head({"image": x}) for x in samples]
        side = code_side_tensors(heads)

        def score(i: int, outputs: dict, ref: list = ref) -> dict[str, float]:
            return {"top1_agreement": float(outputs["logits"][0].argmax() == ref[i])}

        rows = common.sweep(split, heads, settings, score, desc=name.split("/")[1])
        count_side(rows, side, name)
        print(f"EfficientNet-Lite0 {name} ({len(samples)} photo crops):")
        for row in rows:
            print(
                f"  {row['setting']:<38} {row['bits_per_element']:6.3f} b/el  "
                f"{side_note(row)} agreement {row['top1_agreement']:.3f}",
                flush=True,
            )


def minilm(threads: int, budgets=BUDGETS, groups=("tensor", "rows"), klt="off") -> None:  # noqa: ANN001
    import minilm as fm

    from slicer.split import Partitioner, SplitModel, zoo
    from slicer.split.fidelity import cosine

    part = Partitioner(zoo.model_path("minilm"))
    tok = zoo.minilm_tokenizer()

    def encode(text: str) -> dict:
        enc = tok(text, return_tensors="np", truncation=True, max_length=128)
        return {
            "input_ids": enc["input_ids"].astype(np.int64),
            "attention_mask": enc["attention_mask"].astype(np.int64),
        }

    sentences = zoo.prose_sentences(MINILM_CALIB_STOP)
    inputs = [encode(text) for text in sentences[: fm.SENTENCES]]
    name = fm.CUTS[1]  # after layer 3
    split = SplitModel(part, name, providers="cpu", threads=threads)
    t = None
    if klt != "off":  # calibration sentences far from the scored ones
        t = fit_transform(split, [encode(x) for x in sentences[MINILM_CALIB_START:]], "layer.3")
    settings = make_settings(budgets, groups, klt, t)
    ref = [split.run_full(x)["embedding"][0] for x in inputs]
    heads = [split.run_head(x) for x in inputs]
    side = code_side_tensors(heads)

    def score(i: int, outputs: dict) -> dict[str, float]:
        return {"cosine": cosine(ref[i], outputs["embedding"][0])}

    rows = common.sweep(split, heads, settings, score, desc="layer.3")
    count_side(rows, side, name)
    print(f"MiniLM {name} ({len(inputs)} sentences):")
    for row in rows:
        print(
            f"  {row['setting']:<38} {row['bits_per_element']:6.4f} b/el  "
            f"{side_note(row)} cosine {row['cosine']:.5f}",
            flush=True,
        )


MINILM_CALIB_START, MINILM_CALIB_STOP = 1000, 1400
SMOLLM2_CALIB_START, SMOLLM2_CALIB_TOKENS = 40960, 8192


SMOLLM2_CUTS = ("/model.layers.4/add_944", "/model.layers.14/add_2834", "/model.layers.24/add_4724")


def smollm2(
    threads: int,
    tokens: int = 2048,
    chunk: int = 512,
    budgets: tuple[float, ...] = (2.0, 2.5, 3.0),
    groups: tuple[str, ...] = ("rows", "tensor"),
    cuts: tuple[int, ...] = (5, 15, 25),
    klt: str = "off",
) -> None:
    """Perplexity change after layers 5 / 15 / 25 (4 x 512 tokens of prose by default)."""
    from slicer.split import Partitioner, SplitModel, zoo
    from slicer.split.fidelity import log_softmax

    def nll(logits: np.ndarray, ids: np.ndarray) -> float:
        lp = log_softmax(logits[0, :-1])
        return float(-lp[np.arange(lp.shape[0]), ids[0, 1:]].sum())

    part = Partitioner(zoo.model_path("smollm2"))
    ids = np.array(zoo.smollm2_tokenizer()(zoo.prose_text())["input_ids"], dtype=np.int64)
    if ids.size < tokens:
        raise ValueError(f"the prose has {ids.size} tokens, fewer than {tokens}")
    chunks = [ids[i * chunk : (i + 1) * chunk][None] for i in range(tokens // chunk)]
    scored = len(chunks) * (chunk - 1)
    if klt != "off" and SMOLLM2_CALIB_START < tokens:
        raise ValueError(f"--tokens must stay below the calibration text at {SMOLLM2_CALIB_START}")
    calib_ids = ids[SMOLLM2_CALIB_START : SMOLLM2_CALIB_START + SMOLLM2_CALIB_TOKENS]
    calib = [{"input_ids": calib_ids[i : i + chunk][None]} for i in range(0, calib_ids.size, chunk)]
    ref = None  # the uncut model's NLL per chunk, the same for every cut
    for name in SMOLLM2_CUTS:
        if int(name.split(".")[2].split("/")[0]) + 1 not in cuts:  # layers.4 = cut 5
            continue
        split = SplitModel(part, name, providers="cpu", threads=threads)
        t = fit_transform(split, calib, name.split("/")[2]) if klt != "off" else None
        settings = make_settings(budgets, groups, klt, t)
        if ref is None:
            ref = [nll(split.run_full({"input_ids": c})["logits"], c) for c in chunks]
        heads = [split.run_head({"input_ids": c}) for c in chunks]
        side = code_side_tensors(heads)
        ppl_uncut = float(np.exp(sum(ref) / scored))

        per_chunk: list[float] = []  # NLL per chunk, setting after setting

        def score(i: int, outputs: dict, per_chunk: list = per_chunk) -> dict[str, float]:
            per_chunk.append(nll(outputs["logits"], chunks[i]))
            return {"nll_sum": per_chunk[-1]}

        rows = common.sweep(split, heads, settings, score, desc=name.split("/")[2])
        count_side(rows, side, name)
        print(f"SmolLM2 {name} ({len(chunks) * chunk} tokens, uncut perplexity {ppl_uncut:.3f}):")
        for k, row in enumerate(rows):
            ppl = float(np.exp(row["nll_sum"] * len(chunks) / scored))
            change = 100 * (ppl / ppl_uncut - 1)
            # the noise: standard error of the mean per-token NLL change over the chunks
            d = (np.array(per_chunk[k * len(chunks) : (k + 1) * len(chunks)]) - ref) / (chunk - 1)
            se = 100 * float(d.std(ddof=1) / np.sqrt(len(d))) if len(d) > 1 else float("nan")
            print(
                f"  {row['setting']:<34} {row['bits_per_element']:6.3f} b/el  "
                f"{side_note(row)} perplexity {ppl:.3f} ({change:+.2f} % ± {se:.2f} % s.e. over "
                f"{len(d)} chunks)",
                flush=True,
            )
        if len(TRELLISES) > 1 and len(rows) > 1:  # paired: each setting against the first
            n = len(chunks)
            first = np.array(per_chunk[:n])
            for k in range(1, len(rows)):
                d = (np.array(per_chunk[k * n : (k + 1) * n]) - first) / (chunk - 1)
                print(
                    f"  paired {rows[k]['setting']} - {rows[0]['setting']}: per-token NLL "
                    f"{100 * d.mean():+.3f} % ± {100 * d.std(ddof=1) / np.sqrt(n):.3f} % s.e.",
                    flush=True,
                )


if __name__ == "__main__":
    import argparse

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("which", nargs="?", default="effnet", choices=["effnet", "minilm", "smollm2"])
    p.add_argument("--tokens", type=int, default=2048, help="smollm2: tokens (512-token chunks)")
    p.add_argument(
        "--groups",
        nargs="+",
        help="default: smollm2 rows tensor, effnet tensor channels, minilm tensor rows",
    )
    p.add_argument(
        "--budgets",
        type=float,
        nargs="+",
        help="bits/element (default: smollm2 2 2.5 3, others 1 1.5 2 2.5)",
    )
    p.add_argument("--cuts", type=int, nargs="+", default=[5, 15, 25], help="smollm2: 5 15 25")
    p.add_argument(
        "--klt",
        choices=["off", "on", "both"],
        default="off",
        help="code the cut in its calibrated KLT basis (slicer.split.transform)",
    )
    p.add_argument(
        "--klt-beta",
        type=float,
        nargs="+",
        default=[0.0],
        help="component steps ∝ variance^(beta/2) (0: one step)",
    )
    p.add_argument(
        "--klt-weights",
        nargs="*",
        default=[],
        metavar="CUTTAG=NPY",
        help="task weights (Fisher matrix .npy) per cut tag, e.g. add_4724=f.npy",
    )
    p.add_argument(
        "--klt-outlier",
        type=float,
        default=None,
        help="fit the transform without rows above this multiple of the median norm",
    )
    p.add_argument(
        "--classes",
        default=None,
        help="classes= of the encoder: 1 (one table), 2..16 or auto (default: encode's, auto)",
    )
    p.add_argument(
        "--trellis",
        type=float,
        nargs="+",
        default=None,
        help="code with trellis-coded quantization (mode 3) at these λ (0: modes 1-2), e.g. "
        "0 0.34 (smollm2: then the paired NLL change of each against the first)",
    )
    p.add_argument(
        "--sink-rows",
        type=int,
        default=0,
        help="token tensors: send the first N rows raw (counted), code the rest",
    )
    p.add_argument("--json", default=None, help="write every row (bits, side bytes, metric) here")
    a = p.parse_args()
    SINK_ROWS = a.sink_rows
    if a.trellis:
        TRELLISES = tuple(None if lam == 0 else lam for lam in a.trellis)
    CLASSES = None if a.classes is None else (a.classes if a.classes == "auto" else int(a.classes))
    KLT_BETAS = tuple(a.klt_beta)
    KLT_OUTLIER = a.klt_outlier
    KLT_FISHER = dict(item.split("=", 1) for item in a.klt_weights)
    kw = {"klt": a.klt}
    if a.groups:
        kw["groups"] = tuple(a.groups)
    if a.budgets:
        kw["budgets"] = tuple(a.budgets)
    if a.which == "smollm2":
        smollm2(2, a.tokens, cuts=tuple(a.cuts), **kw)
    else:
        {"effnet": effnet, "minilm": minilm}[a.which](2, **kw)
    if a.json:
        import json

        with open(a.json, "w") as f:
            json.dump({"model": a.which, "command": sys.argv, "rows": ROWS}, f, indent=1)
