"""Entropy-coder efficiency of the dense mode (issue 7 target: coded size within 3 % of the
order-0 entropy of the codes, tables included, on groups of >= 4096 elements; no floor of
1 bit per element).

    python bench/bench_entropy.py          # needs bench/data/ (bench/activations.py)
    python bench/bench_entropy.py --classes   # mode 2: one table per class of positions
    python bench/bench_entropy.py --kinds [--plot PNG] [NAME ...]  # 4096 slices: kind 0 vs "auto"

For every workload, slice size (4096 elements and the whole tensor) and step (chosen for
0.5 ... 8 bits per element), the codes q of the real stream (the reference quantizer,
tests/reference_dense.py, identical to the C++ one) give H0 = N * order-0 entropy of q;
"coded" is everything the entropy coder spends: frequency table + chunk table + rANS bytes +
extra bits (header and CRC excluded: they are not the coder's). Overhead = coded / H0 - 1.

With class tables (``--classes``, format 2 mode 2, docs/format.md §19): each workload as
feature vectors (n, C) (EfficientNet: (1, C, H, W), classes along the channels), slices of
the first rows holding >= 4096 elements and the whole tensor, encoded with classes="auto" at
the step of each target rate. The coder's own model is one order-0 table per class, so its
bound is H0|class = the sum over classes of each class's order-0 entropy (under the stream's
class map: its kind, rank / ranges / bounds, and boundaries as ``inspect`` reports them);
"coded" adds the class map to the tables. Overhead = coded / H0|class - 1, and the saving
against the one-table H0.

With table kinds (``--kinds``, docs/format.md §13.5): the 4096-element slices at the step of
each target rate (found with kind 0, so both streams hold the same codes), coded with
table_kind=0 and "auto" (the shortest of kinds 0 … 4) by the C++ encoder; both decoded (same
values); the overhead of each and the kind "auto" took.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))

import bench_rd  # noqa: E402

import reference_dense as rd  # noqa: E402

TARGET_BPE = (0.5, 1, 2, 4, 8)


def entropy_bits(q: np.ndarray) -> float:
    _, counts = np.unique(q, return_counts=True)
    p = counts / q.size
    return float(-np.sum(counts * np.log2(p)))


def step_for(x: np.ndarray, bpe: float) -> float:
    """Bisection on the real stream size for a target rate."""
    import slicer

    rms = float(np.sqrt(np.mean(x.astype(np.float64) ** 2))) or 1.0
    lo, hi = np.log2(rms) - 16, np.log2(rms) + 8
    for _ in range(22):
        mid = (lo + hi) / 2
        if 8 * len(slicer.encode(x, mode="dense", step=2.0**mid)) / x.size > bpe:
            lo = mid
        else:
            hi = mid
    return float(2.0**hi)


def as_vectors(x: np.ndarray) -> np.ndarray:
    """(n, C) token rows as they are; a C x H x W map as (1, C, H, W) (classes on axis 1)."""
    return x[None] if x.ndim == 3 else x


def classes_table() -> int:
    import slicer

    workloads = bench_rd.load_workloads(bench_rd.DATA_DIR, None)
    print("| workload | elements | target b/el | K | H0 b/el | H0\\|class b/el | coded b/el "
          "| overhead vs H0\\|class | coded vs H0 |")  # fmt: skip
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    worst = {}
    for name, x in workloads.items():
        v = as_vectors(x)
        per_row = int(np.prod(v.shape[1:]))
        for rows in sorted({min(-(-4096 // per_row), v.shape[0]), v.shape[0]}):
            part = np.ascontiguousarray(v[:rows]) if v.shape[0] > 1 else v
            size = part.size
            for bpe in TARGET_BPE:
                step = step_for(part, bpe)
                stream = slicer.encode(part, mode="dense", step=step, classes="auto")
                info = slicer.inspect(stream)
                a = info.account
                coded = 8 * (a.class_map + a.freq_table + a.chunk_table + a.codes + a.extra_bits)
                k = info.classes
                axis = 0 if info.class_axis in (None, "last") else 1
                kind = {}
                if k > 1:  # the stream's map: rank / ranges / bounds (and its boundaries)
                    kind = {"class_map": info.class_map, "class_bounds": info.class_bounds}
                p = rd.plan(part, rd.default_params(step=step, classes=k, class_axis=axis, **kind))
                q = np.where(p.negative, -p.m, p.m).reshape(-1)
                h0 = entropy_bits(q)
                if k > 1:
                    cls = p.cls.reshape(-1)
                    hc = sum(entropy_bits(q[cls == c]) for c in range(k) if np.any(cls == c))
                else:
                    hc = h0
                over = coded / hc - 1 if hc > 0 else float("nan")
                key = "4096" if rows < v.shape[0] else "whole"
                worst[key] = max(worst.get(key, -1.0), over)
                print(f"| {name} | {size} | {bpe:g} | {k} | {h0 / size:.4f} | {hc / size:.4f} "
                      f"| {coded / size:.4f} | {100 * over:+.2f} % "
                      f"| {100 * (coded / h0 - 1):+.2f} % |", flush=True)  # fmt: skip
    print()
    for key, value in worst.items():
        print(f"worst overhead against H0|class, {key} slices: {100 * value:+.2f} %")
    return 0


def kinds_table(names: list[str], plot: str | None = None) -> int:
    import slicer

    workloads = {n: np.load(bench_rd.DATA_DIR / f"{n}.npy") for n in names} or (
        bench_rd.load_workloads(bench_rd.DATA_DIR, None)
    )
    print("| workload | b/el | H0 b/el | kind 0 b/el | over kind 0 | auto b/el | over auto "
          "| kind |")  # fmt: skip
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    within = {0: 0, "auto": 0}
    cells = 0
    rows = []  # (name, b/el, over kind 0, over auto) for the plot
    for name, x in workloads.items():
        part = x.reshape(-1)[:4096]
        for bpe in TARGET_BPE:
            step = step_for(part, bpe)
            p = rd.plan(part, rd.default_params(step=step))
            h0 = entropy_bits(np.where(p.negative, -p.m, p.m))
            row, values = [], []
            for kind in (0, "auto"):
                stream = slicer.encode(part, mode="dense", step=step, table_kind=kind)
                info = slicer.inspect(stream)
                a = info.account
                coded = 8 * (a.freq_table + a.chunk_table + a.codes + a.extra_bits)
                over = coded / h0 - 1
                within[kind] += over <= 0.03
                row += [f"{coded / part.size:.4f}", f"{100 * over:+.2f} %"]
                values.append(slicer.decode(stream).tobytes())
            assert values[0] == values[1]
            cells += 1
            rows.append((name, bpe, float(row[1][:-2]), float(row[3][:-2])))
            print(f"| {name} | {bpe:g} | {h0 / part.size:.4f} | " + " | ".join(row)
                  + f" | {info.table_kind} |", flush=True)  # fmt: skip
    print()
    print(f"slices within 3 %: kind 0 {within[0]} / {cells}, auto {within['auto']} / {cells}")
    if plot:
        plot_kinds(rows, plot)
    return 0


def plot_kinds(rows: list[tuple[str, float, float, float]], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rates = sorted({r[1] for r in rows})
    fig, axes = plt.subplots(1, len(rates), figsize=(3.2 * len(rates), 3.6), sharey=True)
    for ax, bpe in zip(axes, rates, strict=True):
        part = [r for r in rows if r[1] == bpe]
        pos = np.arange(len(part))
        ax.bar(pos - 0.2, [r[2] for r in part], 0.4, label="table_kind=0")
        ax.bar(pos + 0.2, [r[3] for r in part], 0.4, label='table_kind="auto"')
        ax.axhline(3.0, color="k", lw=0.8, ls="--")
        ax.set_xticks(pos, [r[0] for r in part], rotation=60, ha="right", fontsize=7)
        ax.set_title(f"{bpe:g} b/el")
    axes[0].set_ylabel("coded over H0, % (4096 elements)")
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> int:
    import slicer

    if "--classes" in sys.argv[1:]:
        return classes_table()
    if "--kinds" in sys.argv[1:]:
        args = sys.argv[1:]
        plot = args[args.index("--plot") + 1] if "--plot" in args else None
        return kinds_table([a for a in args if not a.startswith("--") and a != plot], plot)
    workloads = bench_rd.load_workloads(bench_rd.DATA_DIR, None)
    print("| workload | elements | target b/el | H0 b/el | coded b/el | overhead |")
    print("|---|---:|---:|---:|---:|---:|")
    worst = {}
    for name, x in workloads.items():
        flat = x.reshape(-1)
        for size in (4096, flat.size):
            part = flat[:size]
            for bpe in TARGET_BPE:
                step = step_for(part, bpe)
                stream = slicer.encode(part, mode="dense", step=step)
                a = slicer.inspect(stream).account
                coded = 8 * (a.freq_table + a.chunk_table + a.codes + a.extra_bits)
                p = rd.plan(part, rd.default_params(step=step))
                q = np.where(p.negative, -p.m, p.m)
                h0 = entropy_bits(q)
                over = coded / h0 - 1 if h0 > 0 else float("nan")
                key = "4096" if size == 4096 else "whole"
                worst[key] = max(worst.get(key, -1.0), over)
                print(f"| {name} | {size} | {bpe:g} | {h0 / size:.4f} | {coded / size:.4f} "
                      f"| {100 * over:+.2f} % |")  # fmt: skip
    print()
    for key, value in worst.items():
        print(f"worst overhead, {key} slices: {100 * value:+.2f} %")
    return 0


if __name__ == "__main__":
    sys.exit(main())
