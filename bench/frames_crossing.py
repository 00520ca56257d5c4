"""Interpolated crossings of `llm_bench.py quality` results (bench/RESULTS.md §13.13).

    python bench/frames_crossing.py bench/llm_results/quality_smollm2_tcq_tf15.json \
        --at 3.0 --kl 0.01
    python bench/frames_crossing.py bench/llm_results/quality_smollm2_tcq_ppl25.json --ppl 0.02

Per setting family (the setting name without its step token "qX"), the points sorted by bits
per element; values between two neighbouring points are interpolated linearly (as §13.11 and
§13.12 did): KL, top-1 and Δ perplexity at `--at` bits/element, the bits/element where KL falls
to `--kl`, and the bits/element and bytes per row (and frame bytes, framing excluded) where Δ
perplexity reaches `--ppl`. Nothing is extrapolated: a crossing outside the measured points is
reported as not bracketed.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

FRAMING = 18.7  # mean message framing of a decode row in these runs (bytes, §13.12)


def family(name: str) -> str:
    return " ".join(t for t in name.split() if not (t[:1] == "q" and t[1:2].isdigit()))


def interp_at(points, key_x, x, key_y):
    for a, b in zip(points, points[1:], strict=False):
        if a[key_x] <= x <= b[key_x]:
            f = (x - a[key_x]) / (b[key_x] - a[key_x])
            return a[key_y] + f * (b[key_y] - a[key_y])
    return None


def crossing(points, key, level, decreasing):
    """bits/element and bytes/row where `key` crosses `level` between two points."""
    for a, b in zip(points, points[1:], strict=False):
        ya, yb = a[key], b[key]
        if (ya - level) * (yb - level) <= 0 and ya != yb:
            f = (level - ya) / (yb - ya)
            bits = a["bits_per_element"] + f * (b["bits_per_element"] - a["bits_per_element"])
            rows = a["bytes_per_row"] + f * (b["bytes_per_row"] - a["bytes_per_row"])
            return bits, rows
    del decreasing
    return None


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("files", nargs="+")
    ap.add_argument("--at", type=float, default=3.0, help="bits/element to interpolate at")
    ap.add_argument("--kl", type=float, default=None, help="KL level to find the rate of")
    ap.add_argument("--ppl", type=float, default=None, help="Δ perplexity level (0.02 = +2 %%)")
    args = ap.parse_args()
    fams: dict[str, list] = {}
    for path in args.files:
        data = json.loads(Path(path).read_text())
        for cut, res in data["cuts"].items():
            for name, e in res.items():
                if name != "lossless":
                    fams.setdefault(f"cut {cut}: {family(name)}", []).append(e)
    for label, pts in sorted(fams.items()):
        pts.sort(key=lambda e: e["bits_per_element"])
        line = [f"{label:34} ({len(pts)} points)"]
        for key, fmt in (("kl_mean", "KL {:.4f}"), ("top1", "top-1 {:.2%}"),
                         ("ppl_change", "dppl {:+.2%}")):  # fmt: skip
            if key in pts[0]:
                v = interp_at(pts, "bits_per_element", args.at, key)
                line.append(f"at {args.at}: " + (fmt.format(v) if v is not None else "n/b"))
        if args.kl is not None and "kl_mean" in pts[0]:
            c = crossing(pts, "kl_mean", args.kl, True)
            line.append(f"KL <= {args.kl} from " + (f"{c[0]:.3f} b/el" if c else "n/b"))
        if args.ppl is not None:
            c = crossing(pts, "ppl_change", args.ppl, False)
            at = f"{c[0]:.3f} b/el, {c[1]:.1f} B/row, frame {c[1] - FRAMING:.1f} B" if c else "n/b"
            line.append(f"dppl {args.ppl:+.0%} at {at}")
        print("; ".join(line))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
