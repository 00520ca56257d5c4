"""Task fidelity of the format-2 dense mode (issue 7 targets), with bench/fidelity's harness.

    python bench/fidelity_dense.py effnet     # EfficientNet-Lite0, after blocks 4 and 10
    python bench/fidelity_dense.py minilm     # MiniLM-L6, after layer 3
    python bench/fidelity_dense.py smollm2    # SmolLM2-135M, after layers 5 / 15 / 25
    python bench/fidelity_dense.py smollm2 --tokens 10240 --groups rows --budgets 2.5

Each setting codes every cut tensor with ``slicer.encode(x, mode="auto", max_bytes=B*N/8)``
(everything counted: the whole stream), groups "tensor" or per channel / per row, and reports
the same metrics as bench/fidelity/{effnet,minilm}.py: top-1 agreement with the uncut model /
embedding cosine. Targets: agreement >= 99 % at <= 2.0 b/el; cosine >= 0.99 at <= 2.0 b/el.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "fidelity"))

import common  # noqa: E402

import slicer  # noqa: E402

BUDGETS = (1.0, 1.5, 2.0, 2.5)


def dense_setting(bpe: float, groups: str) -> common.Setting:
    def fn(x: np.ndarray) -> tuple[np.ndarray, int]:
        x32 = np.ascontiguousarray(x, dtype=np.float32)
        stream = slicer.encode(x32, mode="auto", max_bytes=max(64, int(bpe * x32.size / 8)),
                               groups=groups)  # fmt: skip
        return np.asarray(slicer.decode(stream)).reshape(x.shape), len(stream)

    return common.Setting(f"dense auto {bpe:g} b/el {groups}", "dense", fn,
                          {"bpe": bpe, "groups": groups})  # fmt: skip


def effnet(threads: int) -> None:
    import effnet as fe

    from slicer.split import Partitioner, SplitModel, zoo

    part = Partitioner(zoo.model_path("efficientnet-lite0"))
    samples = [
        zoo.preprocess_image(rgb, crop=c, offset=o, flip=f)
        for rgb, _label, _ in zoo.imagenet_photos()
        for c, o in fe.CROPS
        for f in (False, True)
    ]
    settings = [dense_setting(b, g) for g in ("tensor", "channels") for b in BUDGETS]
    for name in fe.CUTS[:2]:
        split = SplitModel(part, name, providers="cpu", threads=threads)
        ref = [int(split.run_full({"image": x})["logits"][0].argmax()) for x in samples]
        heads = [split.run_head({"image": x}) for x in samples]

        def score(i: int, outputs: dict, ref: list = ref) -> dict[str, float]:
            return {"top1_agreement": float(outputs["logits"][0].argmax() == ref[i])}

        rows = common.sweep(split, heads, settings, score, desc=name.split("/")[1])
        print(f"EfficientNet-Lite0 {name} ({len(samples)} photo crops):")
        for row in rows:
            print(f"  {row['setting']:<34} {row['bits_per_element']:6.3f} b/el  "
                  f"agreement {row['top1_agreement']:.3f}", flush=True)  # fmt: skip


def minilm(threads: int) -> None:
    import minilm as fm

    from slicer.split import Partitioner, SplitModel, zoo
    from slicer.split.fidelity import cosine

    part = Partitioner(zoo.model_path("minilm"))
    tok = zoo.minilm_tokenizer()
    inputs = []
    for text in zoo.prose_sentences(fm.SENTENCES):
        enc = tok(text, return_tensors="np", truncation=True, max_length=128)
        inputs.append({"input_ids": enc["input_ids"].astype(np.int64),
                       "attention_mask": enc["attention_mask"].astype(np.int64)})  # fmt: skip
    settings = [dense_setting(b, g) for g in ("tensor", "rows") for b in BUDGETS]
    name = fm.CUTS[1]  # after layer 3
    split = SplitModel(part, name, providers="cpu", threads=threads)
    ref = [split.run_full(x)["embedding"][0] for x in inputs]
    heads = [split.run_head(x) for x in inputs]

    def score(i: int, outputs: dict) -> dict[str, float]:
        return {"cosine": cosine(ref[i], outputs["embedding"][0])}

    rows = common.sweep(split, heads, settings, score, desc="layer.3")
    print(f"MiniLM {name} ({len(inputs)} sentences):")
    for row in rows:
        print(f"  {row['setting']:<34} {row['bits_per_element']:6.3f} b/el  "
              f"cosine {row['cosine']:.5f}", flush=True)  # fmt: skip


SMOLLM2_CUTS = ("/model.layers.4/add_944", "/model.layers.14/add_2834", "/model.layers.24/add_4724")


def smollm2(
    threads: int,
    tokens: int = 2048,
    chunk: int = 512,
    budgets: tuple[float, ...] = (2.0, 2.5, 3.0),
    groups: tuple[str, ...] = ("rows", "tensor"),
    cuts: tuple[int, ...] = (5, 15, 25),
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
    settings = [dense_setting(b, g) for g in groups for b in budgets]
    ref = None  # the uncut model's NLL per chunk, the same for every cut
    for name in SMOLLM2_CUTS:
        if int(name.split(".")[2].split("/")[0]) + 1 not in cuts:  # layers.4 = cut 5
            continue
        split = SplitModel(part, name, providers="cpu", threads=threads)
        if ref is None:
            ref = [nll(split.run_full({"input_ids": c})["logits"], c) for c in chunks]
        heads = [split.run_head({"input_ids": c}) for c in chunks]
        ppl_uncut = float(np.exp(sum(ref) / scored))

        per_chunk: list[float] = []  # NLL per chunk, setting after setting

        def score(i: int, outputs: dict, per_chunk: list = per_chunk) -> dict[str, float]:
            per_chunk.append(nll(outputs["logits"], chunks[i]))
            return {"nll_sum": per_chunk[-1]}

        rows = common.sweep(split, heads, settings, score, desc=name.split("/")[2])
        print(f"SmolLM2 {name} ({len(chunks) * chunk} tokens, uncut perplexity {ppl_uncut:.3f}):")
        for k, row in enumerate(rows):
            ppl = float(np.exp(row["nll_sum"] * len(chunks) / scored))
            change = 100 * (ppl / ppl_uncut - 1)
            # the noise: standard error of the mean per-token NLL change over the chunks
            d = (np.array(per_chunk[k * len(chunks) : (k + 1) * len(chunks)]) - ref) / (chunk - 1)
            se = 100 * float(d.std(ddof=1) / np.sqrt(len(d))) if len(d) > 1 else float("nan")
            print(f"  {row['setting']:<34} {row['bits_per_element']:6.3f} b/el  "
                  f"perplexity {ppl:.3f} ({change:+.2f} % ± {se:.2f} % s.e. over "
                  f"{len(d)} chunks)", flush=True)  # fmt: skip


if __name__ == "__main__":
    import argparse

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("which", nargs="?", default="effnet", choices=["effnet", "minilm", "smollm2"])
    p.add_argument("--tokens", type=int, default=2048, help="smollm2: tokens (512-token chunks)")
    p.add_argument("--groups", nargs="+", default=["rows", "tensor"], help="smollm2")
    p.add_argument("--budgets", type=float, nargs="+", default=[2.0, 2.5, 3.0], help="smollm2")
    p.add_argument("--cuts", type=int, nargs="+", default=[5, 15, 25], help="smollm2: 5 15 25")
    a = p.parse_args()
    if a.which == "smollm2":
        smollm2(2, a.tokens, groups=tuple(a.groups), budgets=tuple(a.budgets), cuts=tuple(a.cuts))
    else:
        {"effnet": effnet, "minilm": minilm}[a.which](2)
