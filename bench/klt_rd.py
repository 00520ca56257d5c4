"""Relative L2 error at equal bytes: the cut tensor coded as it is vs in its KLT basis.

    python bench/klt_rd.py        # reads bench/data/*.npy (python bench/activations.py)

Each workload's feature vectors (token rows; pixels of a C x H x W map) are split in two: the
transform (slicer.split.transform.CutTransform) is fitted on the first half (SmolLM2 / MiniLM:
the first half of the token rows; EfficientNet: the even image rows) and both codings are
measured on the other half with ``slicer.encode(mode="auto", max_bytes=B*N/8)``, everything
counted. The fit and the scored half come from the same forward pass: for the task-level
numbers with calibration data from other inputs see bench/fidelity_dense.py --klt.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

import slicer
from slicer.split.transform import CutTransform

DATA = Path(__file__).resolve().parent / "data"
WORKLOADS = ("smollm2_l5", "smollm2_l15", "smollm2_l25", "minilm_l3", "effnet_b4", "effnet_b10")
BUDGETS = (1.5, 2.0, 2.5, 3.0)


def rel(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(a - b) / np.linalg.norm(a))


def halves(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(fit rows, scored rows), each (n, C)."""
    if x.ndim == 3:  # C x H x W: pixels of the even image rows / of the odd ones
        rows = np.moveaxis(x, 0, -1)
        return rows[0::2].reshape(-1, x.shape[0]), rows[1::2].reshape(-1, x.shape[0])
    t = x.shape[0] // 2
    return x[:t], x[t:]


def main() -> None:
    print(f"{'workload':<12} {'b/el':>5}  {'plain':>8} {'klt':>8}  {'change':>7}")
    for name in WORKLOADS:
        fit, scored = halves(np.load(DATA / f"{name}.npy"))
        scored = np.ascontiguousarray(scored, dtype=np.float32)
        t = CutTransform.fit([fit])
        coef = t.forward(scored)
        for b in BUDGETS:
            budget = int(b * scored.size / 8)
            plain = slicer.decode(slicer.encode(scored, mode="auto", max_bytes=budget))
            stream = slicer.encode(coef, mode="auto", max_bytes=budget)
            via = t.inverse(slicer.decode(stream))
            e0, e1 = rel(scored, plain), rel(scored, via)
            print(f"{name:<12} {b:>5.1f}  {e0:>8.4f} {e1:>8.4f}  {100 * (e1 / e0 - 1):>+6.1f}%",
                  flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
