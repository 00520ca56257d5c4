"""Relative L2 error at equal bytes: the cut tensor coded as it is vs in its KLT basis, each
with one frequency table (classes=1, format 2 mode 1) and with class tables (classes="auto",
mode 2, docs/format.md §19).

    python bench/klt_rd.py        # reads bench/data/*.npy (python bench/activations.py)
    python bench/klt_rd.py --plot bench/plots/classes_rd.png

Each workload's feature vectors (token rows; pixels of a C x H x W map) are split in two: the
transform (slicer.split.transform.CutTransform) is fitted on the first half (SmolLM2 / MiniLM:
the first half of the token rows; EfficientNet: the even image rows) and the codings are
measured on the other half, an (n, C) array of feature vectors, with
``slicer.encode(mode="auto", max_bytes=B*N/8)``, everything counted. The fit and the scored
half come from the same forward pass: for the task-level numbers with calibration data from
other inputs see bench/fidelity_dense.py --klt. Classes are positions along the last axis:
channels (plain) or KLT components.
"""

from __future__ import annotations

import argparse
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


def coded(x: np.ndarray, budget: int, classes) -> tuple[np.ndarray, int, int]:  # noqa: ANN001
    """(decoded, stream bytes, frequency tables) of mode="auto" at `budget`."""
    stream = slicer.encode(x, mode="auto", max_bytes=budget, classes=classes)
    return slicer.decode(stream), len(stream), slicer.inspect(stream).classes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--plot", type=Path, default=None, help="write the error changes here")
    args = parser.parse_args()
    print(
        f"{'workload':<12} {'b/el':>5}  {'plain':>8} {'+cls':>8} {'K':>3} {'change':>7}  "
        f"{'klt':>8} {'+cls':>8} {'K':>3} {'change':>7}  {'klt+cls vs plain':>16}"
    )
    results: dict[str, list] = {}
    for name in WORKLOADS:
        fit, scored = halves(np.load(DATA / f"{name}.npy"))
        scored = np.ascontiguousarray(scored, dtype=np.float32)
        t = CutTransform.fit([fit])
        coef = t.forward(scored)
        for b in BUDGETS:
            budget = int(b * scored.size / 8)
            errors, ks = [], []
            for basis in ("plain", "klt"):
                x = scored if basis == "plain" else coef
                for classes in (1, "auto"):
                    y, size, k = coded(x, budget, classes)
                    assert size <= budget
                    y = y if basis == "plain" else t.inverse(y)
                    errors.append(rel(scored, y))
                    ks.append(k)
            e0, e1, e2, e3 = errors
            results.setdefault(name, []).append((b, e0, e1, e2, e3))
            print(
                f"{name:<12} {b:>5.1f}  {e0:>8.4f} {e1:>8.4f} {ks[1]:>3} "
                f"{100 * (e1 / e0 - 1):>+6.1f}%  {e2:>8.4f} {e3:>8.4f} {ks[3]:>3} "
                f"{100 * (e3 / e2 - 1):>+6.1f}%  {100 * (e3 / e0 - 1):>+15.1f}%",
                flush=True,
            )
    if args.plot is not None:
        plot(results, args.plot)


def plot(results: dict[str, list], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    for ax, (title, i0, i1) in zip(axes, (("as it is", 1, 2), ("KLT basis", 3, 4)), strict=True):
        for name, rows in results.items():
            r = np.asarray(rows)
            ax.plot(r[:, 0], 100 * (r[:, i1] / r[:, i0] - 1), marker="o", label=name)
        ax.axhline(0, color="grey", lw=0.8)
        ax.set_title(f"class tables vs one table, {title}")
        ax.set_xlabel("bits per element (everything counted)")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("change of rel. L2 error at equal bytes (%)")
    axes[1].legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
