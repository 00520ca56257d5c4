"""Relative L2 error at equal bytes: the cut tensor coded as it is vs in its KLT basis, each
with one frequency table (classes=1, format 2 mode 1), with class tables whose map is §18.2's
index ranges (classes="auto", class_map="ranges", mode 2, docs/format.md §18.3: no map bytes)
and with class tables of any kind (classes="auto", the default: §18.2's rank map, §18.3's
ranges or §18.4's range boundaries estimated per stream); "change" is the last against the
second.

    python bench/klt_rd.py        # reads bench/data/*.npy (python bench/activations.py)
    python bench/klt_rd.py --plot bench/plots/classes_rd.png
    python bench/klt_rd.py --rows 36 --plot bench/plots/class_ranges_rd_36.png  # per slice
    python bench/klt_rd.py --trellis 0.34 --plot bench/plots/trellis_rd.png   # mode 3 (§21)

With ``--trellis LAMBDA`` the table compares, per basis, mode 1 (one table, classes=1), the
dense family's best (mode="auto": mode 1 or 2, any map kind) and mode 3 (trellis-coded
quantization, docs/format.md §21: ``mode="dense", trellis=LAMBDA, classes="auto"``), every
stream real and within the same budget; "dB" = 20 log10(err_auto / err_trellis).

Each workload's feature vectors (token rows; pixels of a C x H x W map) are split in two: the
transform (slicer.split.transform.CutTransform) is fitted on the first half (SmolLM2 / MiniLM:
the first half of the token rows; EfficientNet: the even image rows) and the codings are
measured on the other half, an (n, C) array of feature vectors, with
``slicer.encode(mode="auto", max_bytes=B*N/8)``, everything counted. The fit and the scored
half come from the same forward pass: for the task-level numbers with calibration data from
other inputs see bench/fidelity_dense.py --klt. Classes are positions along the last axis:
channels (plain) or KLT components. With ``--rows R`` the scored half is coded in slices of R
feature vectors (36: one MiniLM sentence; the last partial slice dropped), each at B b/el, and
the error is over all slices.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from tqdm import tqdm

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


VARIANTS = (("one", {"classes": 1}), ("ranges", {"class_map": "ranges"}), ("any", {}))
SHORT = {"rank": "rk", "ranges": "rg", "bounds": "bd"}


def coded(x: np.ndarray, bpe: float, kw: dict, rows: int | None):  # noqa: ANN201
    """(decoded, bytes, [(classes, map kind) per stream]) of mode="auto" at bpe b/el, the
    whole array or slices of `rows` rows."""
    parts = [x] if rows is None else [x[s : s + rows] for s in range(0, len(x) - rows + 1, rows)]
    out, size, kinds = [], 0, []
    for part in parts:
        budget = int(bpe * part.size / 8)
        stream = slicer.encode(part, mode="auto", max_bytes=budget, **kw)
        assert len(stream) <= budget
        info = slicer.inspect(stream)
        out.append(slicer.decode(stream))
        size += len(stream)
        kinds.append((info.classes, info.class_map))
    return np.concatenate(out), size, kinds


def describe(kinds: list) -> str:
    """'8bd' (8 classes, range boundaries) / '8rg' (index ranges) / '8rk' (rank map) / '1' for
    one stream; the mean K and the share of streams with range boundaries for many."""
    if len(kinds) == 1:
        k, m = kinds[0]
        return f"{k}{'' if k == 1 else SHORT[m]}"
    ks = np.mean([k for k, _ in kinds])
    share = np.mean([m == "bounds" for _, m in kinds])
    return f"{ks:.1f}/{100 * share:.0f}%"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--plot", type=Path, default=None, help="write the error changes here")
    parser.add_argument("--rows", type=int, default=None, help="code slices of this many rows")
    parser.add_argument("--workloads", nargs="+", default=list(WORKLOADS))
    parser.add_argument("--budgets", type=float, nargs="+", default=list(BUDGETS))
    parser.add_argument("--trellis", type=float, default=None, help="mode 3 at this λ instead")
    args = parser.parse_args()
    if args.trellis is not None:
        trellis_table(args)
        return
    print(
        f"{'workload':<12} {'b/el':>5}  {'plain':>8} {'+ranges':>8} {'+any':>8} {'K':>8} "
        f"{'change':>7}  {'klt':>8} {'+ranges':>8} {'+any':>8} {'K':>8} {'change':>7}"
    )
    results: dict[str, list] = {}
    for name in args.workloads:
        fit, scored = halves(np.load(DATA / f"{name}.npy"))
        scored = np.ascontiguousarray(scored, dtype=np.float32)
        t = CutTransform.fit([fit])
        coef = np.ascontiguousarray(t.forward(scored), dtype=np.float32)
        for b in args.budgets:
            errors, ks = [], []
            for basis in ("plain", "klt"):
                x = scored if basis == "plain" else coef
                for _, kw in tqdm(VARIANTS, desc=f"{name} {b} {basis}", leave=False):
                    y, _, kinds = coded(x, b, kw, args.rows)
                    y = y if basis == "plain" else t.inverse(y)
                    errors.append(rel(scored[: len(y)], y))
                    ks.append(describe(kinds))
            results.setdefault(name, []).append((b, *errors))
            p0, p1, p2, k0, k1, k2 = errors
            print(
                f"{name:<12} {b:>5.2f}  {p0:>8.4f} {p1:>8.4f} {p2:>8.4f} {ks[2]:>8} "
                f"{100 * (p2 / p1 - 1):>+6.1f}%  {k0:>8.4f} {k1:>8.4f} {k2:>8.4f} {ks[5]:>8} "
                f"{100 * (k2 / k1 - 1):>+6.1f}%",
                flush=True,
            )
    if args.plot is not None:
        plot(results, args.plot, args.rows)


def trellis_table(args: argparse.Namespace) -> None:
    """Mode 1, the dense family's best and mode 3 at equal budgets, plain and KLT."""
    variants = (
        ("one", {"classes": 1}),
        ("auto", {}),
        ("tcq", {"trellis": args.trellis}),
    )
    print(
        f"{'workload':<12} {'b/el':>5}  {'plain m1':>8} {'auto':>8} {'tcq':>8} {'b/el':>6} "
        f"{'dB':>6}  {'klt m1':>8} {'auto':>8} {'tcq':>8} {'b/el':>6} {'dB':>6}"
    )
    results: dict[str, list] = {}
    for name in args.workloads:
        fit, scored = halves(np.load(DATA / f"{name}.npy"))
        scored = np.ascontiguousarray(scored, dtype=np.float32)
        t = CutTransform.fit([fit])
        coef = np.ascontiguousarray(t.forward(scored), dtype=np.float32)
        for b in args.budgets:
            cells = []
            for basis in ("plain", "klt"):
                x = scored if basis == "plain" else coef
                errs, bpe = [], 0.0
                for label, kw in tqdm(variants, desc=f"{name} {b} {basis}", leave=False):
                    y, size, _ = coded(x, b, kw, args.rows)
                    y = y if basis == "plain" else t.inverse(y)
                    errs.append(rel(scored[: len(y)], y))
                    if label == "tcq":
                        bpe = 8 * size / y.size
                cells.append((*errs, bpe, 20 * np.log10(errs[1] / errs[2])))
            results.setdefault(name, []).append((b, cells[0][4], cells[1][4]))
            (p1, p2, p3, pb, pd), (k1, k2, k3, kb, kd) = cells
            print(
                f"{name:<12} {b:>5.2f}  {p1:>8.4f} {p2:>8.4f} {p3:>8.4f} {pb:>6.3f} {pd:>+6.2f}  "
                f"{k1:>8.4f} {k2:>8.4f} {k3:>8.4f} {kb:>6.3f} {kd:>+6.2f}",
                flush=True,
            )
    if args.plot is not None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
        for ax, (title, col) in zip(axes, (("as it is", 1), ("KLT basis", 2)), strict=True):
            for j, (name, rows_) in enumerate(results.items()):
                r = np.asarray(rows_)
                ax.plot(r[:, 0], r[:, col], marker="o", color=f"C{j}", label=name)
            ax.axhline(0, color="grey", lw=0.8)
            ax.set_title(f"mode 3 (trellis, λ={args.trellis:g}) vs mode='auto', {title}")
            ax.set_xlabel("bits per element (everything counted, real streams)")
            ax.grid(alpha=0.3)
        axes[0].set_ylabel("lower rel. L2 at equal bytes (dB)")
        axes[1].legend(fontsize=8)
        fig.tight_layout()
        args.plot.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(args.plot, dpi=110)
        print(f"wrote {args.plot}")


def plot(results: dict[str, list], path: Path, rows: int | None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    for ax, (title, i0) in zip(axes, (("as it is", 1), ("KLT basis", 4)), strict=True):
        for j, (name, rows_) in enumerate(results.items()):
            r = np.asarray(rows_)
            color = f"C{j}"
            ax.plot(r[:, 0], 100 * (r[:, i0 + 1] / r[:, i0] - 1), marker="o", ls="--",
                    color=color, alpha=0.6)  # fmt: skip
            ax.plot(r[:, 0], 100 * (r[:, i0 + 2] / r[:, i0] - 1), marker="s", color=color,
                    label=name)  # fmt: skip
        ax.axhline(0, color="grey", lw=0.8)
        ax.set_title(f"class tables vs one table, {title}")
        ax.set_xlabel("bits per element (everything counted)")
        ax.grid(alpha=0.3)
    where = "whole tensors" if rows is None else f"slices of {rows} rows"
    axes[0].set_ylabel(f"change of rel. L2 at equal bytes (%), {where}")
    axes[1].legend(fontsize=8, title="solid: any kind (rank, ranges, bounds)\ndashed: ranges only")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
