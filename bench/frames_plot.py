"""Plot of bench/frames_ppl.py results: perplexity change against bytes per 576-float frame.

python bench/frames_plot.py bench/results/frames_ppl.json bench/results/frames_ppl_coarse.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

HERE = Path(__file__).resolve().parent


def main(argv: list[str]) -> int:
    rows = []
    for path in argv:
        rows += json.loads(Path(path).read_text())["results"]
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for layer in sorted({r["layer"] for r in rows}):
        pts = sorted((r["mean_frame_bytes"], r["perplexity_change_pct"]) for r in rows
                     if r["layer"] == layer)  # fmt: skip
        ax.plot([p[0] for p in pts], [p[1] for p in pts], "o-", label=f"after layer {layer}")
    ax.axhline(2.0, color="grey", ls="--", lw=1, label="+2 % perplexity")
    ax.axvline(200.0, color="grey", ls=":", lw=1, label="200 B per frame")
    ax.set_xlabel("mean bytes per frame (576 floats, everything in the frame counted)")
    ax.set_ylabel("perplexity change (%)")
    ax.set_title("SmolLM2-135M, hidden rows sent as frames (4 x 512 tokens)")
    ax.legend()
    ax.grid(alpha=0.3)
    out = HERE / "plots" / "frames_ppl.png"
    out.parent.mkdir(exist_ok=True)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    print(out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
