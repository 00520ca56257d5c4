"""Bar chart of bench/bench_dense_ab.py outputs: decode (or encode) GB/s before and after, per
mode and rate, the medians as bars and the fastest calls as markers, one group per run.

    python bench/plot_dense_ab.py OUT.png RUN.md [RUN.md ...] [--op decode]

RUN.md: the saved output of one bench_dense_ab.py run (its Markdown table; other lines are
ignored). Sizes as bench_dense_ab.py: 2^20 float32 (mode 1), 1820 x 576 (mode 2).
"""

from __future__ import annotations

import argparse

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

ELEMENTS = {"1": 1 << 20, "2 (8 classes)": 1820 * 576}


def read_run(path: str, op: str) -> list[dict]:
    rows = []
    for line in open(path, encoding="utf-8"):
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 10 or cells[1] != op:
            continue
        nbytes = 4 * ELEMENTS[cells[0]]
        before_fast, after_fast = (float(v) for v in cells[7].split("/"))
        rows.append(
            dict(
                label=f"mode {cells[0].split()[0]}\n{float(cells[2]):.1f} b/el",
                before=nbytes / float(cells[3]) / 1e6,
                after=nbytes / float(cells[4]) / 1e6,
                before_fast=nbytes / before_fast / 1e6,
                after_fast=nbytes / after_fast / 1e6,
            )
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out")
    parser.add_argument("runs", nargs="+")
    parser.add_argument("--op", default="decode", choices=["decode", "encode"])
    parser.add_argument("--target", type=float, default=None, help="GB/s line (default by op)")
    args = parser.parse_args(argv)
    runs = [read_run(p, args.op) for p in args.runs]
    labels = [r["label"] for r in runs[0]]
    width = 0.8 / (2 * len(runs))
    fig, ax = plt.subplots(figsize=(10, 4.5))
    for k, rows in enumerate(runs):
        for j, (key, color) in enumerate((("before", "#999999"), ("after", "#1f77b4"))):
            xs = [i + (2 * k + j - len(runs) + 0.5) * width for i in range(len(rows))]
            ax.bar(xs, [r[key] for r in rows], width, color=color,
                   label=f"{key}, median" if k == 0 else None)  # fmt: skip
            ax.plot(xs, [r[key + "_fast"] for r in rows], "k_", markersize=10,
                    label="fastest call" if k == 0 and j == 0 else None)  # fmt: skip
    target = args.target if args.target is not None else (2.5 if args.op == "decode" else 1.5)
    ax.axhline(target, color="#d62728", linestyle="--", linewidth=1, label=f"target {target} GB/s")
    ax.set_xticks(range(len(labels)), labels)
    ax.set_ylabel(f"{args.op} GB/s (CPU time, one thread)")
    ax.set_title(f"dense {args.op}, 1M float32, one core: before / after ({len(runs)} runs)")
    ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    fig.savefig(args.out, dpi=120)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
