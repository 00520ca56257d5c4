"""Task fidelity of the format-2 dense mode (issue 7 targets), with bench/fidelity's harness.

    python bench/fidelity_dense.py effnet     # EfficientNet-Lite0, after blocks 4 and 10
    python bench/fidelity_dense.py minilm     # MiniLM-L6, after layer 3

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


if __name__ == "__main__":
    which = sys.argv[1] if len(sys.argv) > 1 else "effnet"
    {"effnet": effnet, "minilm": minilm}[which](2)
