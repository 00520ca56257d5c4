"""Task-aware per-channel steps for SmolLM2 token rows sent as frames (RESULTS §9.5, issue 9
target: teacher-forced KL <= 0.01 and top-1 >= 97 % at <= 3 bits/element per decode row).

    python bench/fidelity/task_steps_llm.py --cut 15 --tokens 2048 --calib 128

Frames (docs/format.md §17) carry one step per row. A per-channel step table in the frame
context would be a format change; this bench measures what it would give before making it:
every row is divided by s_c = 2^(e_c/8) (e_c from the weights rule of
``slicer.encode(weights=...)``, w_c the diagonal Fisher from PyTorch gradients through
slicer.split.sensitivity.gradient_importance, on calibration tokens that are not scored),
coded as a real frame (bytes = frame + decode-step framing, as bench/llm_bench.py quality
counts them), decoded and multiplied back — exactly a
per-channel step Δ0·s_c. The table itself (576 bytes, once per session in the context) is not
counted per row. Teacher-forced like bench/llm_bench.py quality: the tail's logits for the
coded rows against the lossless split's.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

import slicer
from slicer.llm import export
from slicer.llm.messages import framing_bytes
from slicer.llm.sessions import _Stack

HERE = Path(__file__).resolve().parent
RESULTS = HERE.parent / "results"


def log_softmax(z: np.ndarray) -> np.ndarray:
    z = z.astype(np.float64)
    m = z.max(axis=-1, keepdims=True)
    return z - m - np.log(np.exp(z - m).sum(axis=-1, keepdims=True))


def exponents(w: np.ndarray) -> np.ndarray:
    """The weights rule of slicer.encode (docs: `weights`), for live channels."""
    ref = float(np.median(w[w > 0]))
    e = np.full(w.shape, 63, dtype=np.int64)
    e[w > 0] = np.clip(np.rint(-4 * np.log2(w[w > 0] / ref)), -64, 63)
    return e


def fisher_weights(calib: list[int], cut: int, draws: int, seed: int = 0) -> np.ndarray:
    """Diagonal Fisher of the cut's hidden channels from PyTorch gradients (HF SmolLM2, the
    model the ONNX graphs are exported from): y drawn from the model's own prediction at every
    position, gradient of sum_t log p(y_t) w.r.t. the output of layer `cut` - 1; the first
    (massive-activation) row is left out."""
    import torch

    from slicer.split.sensitivity import gradient_importance
    from slicer.split.zoo import _load_smollm2

    model, _ = _load_smollm2()
    store: dict[str, torch.Tensor] = {}

    def hook(_mod: object, _inp: object, out: object) -> object:
        hs = out[0] if isinstance(out, tuple) else out
        leaf = hs.detach().requires_grad_(True)
        store["leaf"] = leaf
        return (leaf, *out[1:]) if isinstance(out, tuple) else leaf

    handle = model.model.layers[cut - 1].register_forward_hook(hook)
    gen = torch.Generator().manual_seed(seed)
    grads = []
    try:
        logp = torch.log_softmax(model(torch.tensor([calib])).logits[0].double(), -1)
        probs = logp.detach().exp()
        for _ in tqdm(range(draws), desc="fisher", file=sys.stderr):
            y = torch.multinomial(probs, 1, generator=gen)[:, 0]
            obj = logp[torch.arange(len(calib)), y].sum()
            (g,) = torch.autograd.grad(obj, store["leaf"], retain_graph=True)
            grads.append(g[0, 1:].double().numpy())
    finally:
        handle.remove()
    return gradient_importance(grads, axis=-1)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="smollm2")
    p.add_argument("--cut", type=int, default=15)
    p.add_argument("--tokens", type=int, default=2048)
    p.add_argument("--chunk", type=int, default=512)
    p.add_argument("--prefill", type=int, default=16)
    p.add_argument("--calib", type=int, default=128, help="calibration tokens (after the scored)")
    p.add_argument("--steps", type=float, nargs="+", default=[2.4, 3.2, 4.0])
    p.add_argument("--wsteps", type=float, nargs="+", default=[1.6, 2.4, 3.2])
    p.add_argument("--alphas", type=float, nargs="+", default=[1.0])
    p.add_argument("--draws", type=int, default=8, help="label draws for the Fisher")
    p.add_argument("--tag", default="")
    args = p.parse_args()

    info = export.model_info(args.model)
    tok = export.tokenizer(args.model)
    from slicer.split.zoo import prose_text

    ids = [int(t) for t in tok(prose_text())["input_ids"]]
    if len(ids) < args.tokens + args.calib:
        raise ValueError(f"the prose has {len(ids)} tokens, fewer than {args.tokens + args.calib}")
    scored, calib = ids[: args.tokens], ids[-args.calib :]  # calibration: the text's last tokens
    t0 = time.perf_counter()
    w = fisher_weights(calib, args.cut, args.draws)
    est_s = time.perf_counter() - t0
    head = _Stack(export.graph_path(args.model, "head", args.cut), info, range(args.cut), 2)
    tail = _Stack(
        export.graph_path(args.model, "tail", args.cut), info, range(args.cut, info.layers), 2
    )

    def run_tail(hidden: np.ndarray) -> np.ndarray:
        tail.reset()
        return tail.run(np.ascontiguousarray(hidden, dtype=np.float32), 0)[0]

    e = exponents(w)
    spread = w.max() / max(w[w > 0].min(), 1e-300)
    print(f"importance of {w.size} channels in {est_s:.0f} s; spread max/min {spread:.3g}; "
          f"exponents {e.min()}..{e.max()}")  # fmt: skip

    settings = [("frames", s, None) for s in args.steps]
    settings += [(f"frames w^{a:g}", s, a) for a in args.alphas for s in args.wsteps]
    acc = {f"{k} q{s:g}": {"kl": [], "top1": [], "bytes": []} for k, s, _ in settings}
    pre, chunk = args.prefill, args.chunk
    pieces = [scored[i : i + chunk] for i in range(0, len(scored) - chunk + 1, chunk)]
    for piece in tqdm(pieces, desc=f"cut {args.cut}", file=sys.stderr):
        head.reset()
        hidden = head.run(np.asarray(piece, np.int64)[None], 0)[0]  # [T, C]
        ref_logits = run_tail(hidden[None])
        ref_logp, ref_top = log_softmax(ref_logits), ref_logits.argmax(-1)
        framing = [framing_bytes(1, 1, r, r) for r in range(len(piece))]
        for kind, step, alpha in settings:
            scale = np.ones(info.hidden) if alpha is None else 2.0 ** (exponents(w**alpha) / 8)
            x = (hidden / scale).astype(np.float32)
            enc = slicer.FrameEncoder(x[:pre], step=step, states=1)
            dec = slicer.FrameDecoder(enc.context, max_elements=info.hidden)
            rows = [x[:pre]]
            sizes = []
            for r in range(pre, x.shape[0]):
                frame = enc.encode(x[r : r + 1])
                sizes.append(len(frame) + framing[r])
                rows.append(np.asarray(dec.decode(frame)).reshape(1, -1))
            got = (np.concatenate(rows) * scale).astype(np.float32)
            logits = run_tail(got[None])
            a = acc[f"{kind} q{step:g}"]
            a["kl"].append(np.sum(np.exp(ref_logp) * (ref_logp - log_softmax(logits)), -1)[pre:])
            a["top1"].append((logits.argmax(-1) == ref_top)[pre:])
            a["bytes"].append(np.asarray(sizes))
    out = {"model": args.model, "cut": args.cut, "tokens": len(pieces) * chunk,
           "calibration_tokens": args.calib, "estimate_seconds": est_s,
           "weights": w.tolist(), "settings": {}}  # fmt: skip
    print(f"\n{args.model} cut {args.cut}: {len(pieces) * chunk} tokens, rows after {pre}")
    print(f"{'setting':18} {'B/row':>7} {'b/el':>6} {'KL':>8} {'top1':>7}")
    for name, a in acc.items():
        b = np.concatenate(a["bytes"]).mean()
        kl, top1 = np.concatenate(a["kl"]), np.concatenate(a["top1"])
        out["settings"][name] = {"bytes_per_row": float(b),
                                 "bits_per_element": float(8 * b / info.hidden),
                                 "kl_mean": float(kl.mean()),
                                 "top1": float(top1.mean())}  # fmt: skip
        print(f"{name:18} {b:7.1f} {8 * b / info.hidden:6.2f} {kl.mean():8.4f} {top1.mean():7.4f}")
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"task_steps_llm_cut{args.cut}{'_' + args.tag if args.tag else ''}.json"
    path.write_text(json.dumps(out, indent=1))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
