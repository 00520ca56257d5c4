"""Full Fisher matrix of SmolLM2's hidden rows after layer CUT, for
``bench/fidelity_dense.py --klt-weights`` (RESULTS §9.6).

    python bench/fidelity/fisher_matrix.py --cut 25 --chunks 8 --draws 2 --out fisher_l25.npy

Gradients of Σ_t log p(y_t) with respect to the output of decoder layer CUT (PyTorch, the HF
model the ONNX graphs are exported from), y_t drawn from the model's own prediction, on
512-token chunks of the prose from token 40960 on (the calibration text of
bench/fidelity_dense.py, disjoint from the scored tokens); the first (attention-sink) row of
each chunk is left out. F = mean of g·gᵀ over rows and draws.
"""

from __future__ import annotations

import argparse

import numpy as np
from tqdm import tqdm

from slicer.split import zoo

CALIB_START = 40960


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cut", type=int, default=25)
    p.add_argument("--chunks", type=int, default=8)
    p.add_argument("--draws", type=int, default=2)
    p.add_argument("--out", required=True)
    a = p.parse_args()
    import torch

    ids = np.array(zoo.smollm2_tokenizer()(zoo.prose_text())["input_ids"], dtype=np.int64)
    model, _ = zoo._load_smollm2()
    store: dict = {}

    def hook(_m: object, _i: object, out: object) -> object:
        hs = out[0] if isinstance(out, tuple) else out
        leaf = hs.detach().requires_grad_(True)
        store["leaf"] = leaf
        return (leaf, *out[1:]) if isinstance(out, tuple) else leaf

    model.model.layers[a.cut - 1].register_forward_hook(hook)
    gen = torch.Generator().manual_seed(0)
    width = model.config.hidden_size
    fisher, n = np.zeros((width, width)), 0
    for c in tqdm(range(a.chunks), desc="fisher", unit="chunk"):
        seg = ids[CALIB_START + 512 * c : CALIB_START + 512 * (c + 1)]
        logp = torch.log_softmax(model(torch.tensor([seg])).logits[0].double(), -1)
        probs = logp.detach().exp()
        for _ in range(a.draws):
            y = torch.multinomial(probs, 1, generator=gen)[:, 0]
            obj = logp[torch.arange(len(seg)), y].sum()
            (g,) = torch.autograd.grad(obj, store["leaf"], retain_graph=True)
            rows = g[0, 1:].double().numpy()
            fisher += rows.T @ rows
            n += rows.shape[0]
    np.save(a.out, fisher / n)
    print(f"{n} gradient rows, trace {np.trace(fisher / n):.6g} -> {a.out}")


if __name__ == "__main__":
    main()
