"""Medians of alternating bench/auto_cost.py runs under two builds: a table and a plot.

    python bench/auto_cost.py --reps 101 --sizes 16384,131072 --json /tmp/before_1.json  # build A
    python bench/auto_cost.py --reps 101 --sizes 16384,131072 --json /tmp/after_1.json   # build B
    ... (alternating, several times)
    python bench/auto_cost_runs.py --before '/tmp/before_*.json' [GLOB ...] \\
        --after '/tmp/after_*.json' [GLOB ...] [--plot bench/plots/auto_cost.png]

At 16k and 131k elements one plain encode is 0.1-0.7 ms and a single run's auto / plain ratio
moves by ±0.5 with the machine's load, so a change of a few tens of microseconds is read from
many runs of the two builds in turn. Per (N, target, classes): the median of the runs' ratios
(auto CPU time / one plain encode, each run's own medians), their range, in how many pairs the
later build's ratio is the lower (runs paired in the order of their file names), and the medians
of the plain encode and of the rest of the auto call ("model ms": the call minus its encodes).
The plot draws both builds' medians against N with the runs' range as error bars.
"""

from __future__ import annotations

import argparse
import glob
import json
import statistics
from pathlib import Path


def load(patterns: list[str]) -> list[list[dict]]:
    """The runs (each a list of auto_cost.py's rows) of the files matching `patterns`, sorted
    by name within each pattern."""
    runs = []
    for pattern in patterns:
        files = sorted(glob.glob(pattern))
        if not files:
            raise SystemExit(f"no file matches {pattern!r}")
        runs += [json.loads(Path(f).read_text()) for f in files]
    return runs


def by_case(runs: list[list[dict]]) -> dict[tuple, list[dict]]:
    out: dict[tuple, list[dict]] = {}
    for run in runs:
        for row in run:
            if row.get("dtype", "float32") != "float32" or row.get("groups", "tensor") != "tensor":
                continue
            out.setdefault((row["n"], row["target"], str(row["classes"])), []).append(row)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", required=True, nargs="+", metavar="GLOB",
                        help="runs of the earlier build")  # fmt: skip
    parser.add_argument("--after", required=True, nargs="+", metavar="GLOB",
                        help="runs of the later build")  # fmt: skip
    parser.add_argument("--plot", metavar="OUT.png")
    args = parser.parse_args()
    before, after = by_case(load(args.before)), by_case(load(args.after))
    med = statistics.median
    print("| N | target | classes | runs | before: median (range) | after: median (range) "
          "| after lower (pairs) | plain ms before / after "
          "| model ms before → after |")  # fmt: skip
    print("|---:|---|---|---:|---:|---:|---:|---:|---:|")
    curves: dict[tuple, dict[str, list]] = {}
    for key in sorted(set(before) & set(after)):
        b = [r["now_ratio"] for r in before[key]]
        a = [r["now_ratio"] for r in after[key]]
        lower = sum(x < y for x, y in zip(a, b, strict=False))  # pairs: the shorter list
        n, target, classes = key
        print(f"| {n:,} | {target} | {classes} | {len(b)} / {len(a)} "
              f"| **{med(b):.2f}x** ({min(b):.2f}–{max(b):.2f}) "
              f"| **{med(a):.2f}x** ({min(a):.2f}–{max(a):.2f}) | {lower} / {min(len(a), len(b))} "
              f"| {med(r['plain_ms'] for r in before[key]):.3f} / "
              f"{med(r['plain_ms'] for r in after[key]):.3f} "
              f"| {med(r['model_ms'] for r in before[key]):.2f} → "
              f"{med(r['model_ms'] for r in after[key]):.2f} |")  # fmt: skip
        for tag, ratios in (("before", b), ("after", a)):
            c = curves.setdefault((target, classes, tag), {"n": [], "m": [], "lo": [], "hi": []})
            c["n"].append(n), c["m"].append(med(ratios))
            c["lo"].append(med(ratios) - min(ratios)), c["hi"].append(max(ratios) - med(ratios))
    if args.plot:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(8, 4.5))
        colours = {}
        for (target, classes, tag), c in sorted(curves.items()):
            label = f"{target}, classes={classes}"
            colour = colours.setdefault(label, f"C{len(colours)}")
            ax.errorbar(c["n"], c["m"], yerr=[c["lo"], c["hi"]], color=colour, capsize=3,
                        marker="o" if tag == "after" else "x",
                        linestyle="-" if tag == "after" else ":",
                        label=f"{label} ({tag})")  # fmt: skip
        ax.axhline(3.0, color="k", linestyle="--", linewidth=0.8)
        ax.set_xscale("log", base=2)
        ax.set_xlabel("elements N (SmolLM2 layer 15, float32, (N/64, 64))")
        ax.set_ylabel("auto CPU time / one plain encode")
        ax.set_title("mode='auto' cost: medians of alternating runs (bars: their range)")
        ax.legend(fontsize=7, ncol=2)
        fig.tight_layout()
        fig.savefig(args.plot, dpi=110)
        print(f"# plot: {args.plot}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
