"""Plot of server overhead at N = 32 from serve_overhead_ab.py outputs (RESULTS §7.3.2).

Each SIDE is FILE:KEY:LABEL (KEY = a or b of that file); every run is a dot, the median a bar,
and the 15 % target a line.

    python bench/serve_overhead_plot.py --out bench/plots/serve_overhead32.png \\
        bench/serve_results/overhead32_final.json:a:"before" ...
"""

from __future__ import annotations

import argparse
import json
import statistics


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("sides", nargs="+", help="FILE:KEY:LABEL")
    ap.add_argument("--out", required=True)
    ap.add_argument("--target", type=float, default=15.0)
    args = ap.parse_args()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = []
    for side in args.sides:
        path, key, label = side.split(":", 2)
        with open(path) as f:
            runs = json.load(f)["runs"][key]
        rows.append((label, [100 * r["overhead"] for r in runs]))
    fig, ax = plt.subplots(figsize=(8, 0.55 * len(rows) + 1.4))
    for y, (_label, values) in enumerate(rows):
        median = statistics.median(values)
        ax.barh(y, median, color="#9ecae1", height=0.6)
        ax.plot(values, [y] * len(values), "o", color="#08519c", ms=4)
        ax.text(median + 0.3, y + 0.22, f"{median:.1f} %", fontsize=8)
    ax.axvline(args.target, color="#cb181d", ls="--", lw=1, label=f"target {args.target:g} %")
    ax.set_yticks(range(len(rows)), [r[0] for r in rows], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("server CPU beyond the tail's compute, % of the tail (N = 32 clients)")
    ax.set_title("EfficientNet-Lite0, top-5 replies: runs (dots), median (bar)", fontsize=10)
    ax.grid(axis="x", alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(args.out, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    main()
