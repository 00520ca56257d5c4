"""Context modelling of the dense codes on their neighbours: does it pay on top of class tables?
(issue 7: "context modelling: measure what pays"; bench/RESULTS.md §9.27).

    python bench/context_sketch.py                       # seven workloads, plain and KLT
    python bench/context_sketch.py --workloads effnet_b10 --bases klt

The dense codec codes every symbol with a static table chosen by the element's position: one
table (mode 1) or one per position class (mode 2, §18–§19). A context coder would choose the
table from the magnitudes of codes already decoded next to the element instead (or as well):
the element before it on the last axis ("left") and the element one row / one image row before
it ("up": the same channel of the previous token for (tokens, C) rows, the pixel above in the
same channel plane for (C, H, W) maps). This sketch measures what that could save before anyone
builds it, at the same quantizer and the same error:

- every scheme codes the codes of the codec's dense quantizer (§12.2, dead zone rho/256, §12.3
  offsets: tcq_sketch.ecsq) on a grid of steps × rho;
- charged as bench/tcq_sketch.py charges (its functions): the ideal conditional entropy of the
  §11 symbols given the context, plus §11's extra bits, plus every non-empty table at its exact
  §13.1 size ("tables counted"), and once more with the tables free ("no tables": the bound an
  adaptive coder that learns its tables on the fly approaches from above, its learning cost not
  counted);
- contexts: `pos8` = 8 position classes (§18.2's ranking by mean |x| along the last axis for
  rows, by channel plane for maps: mode 2's analogue); `pos8+U3` = pos8 × min(|m_up|, 2);
  `pos8+LU6` = pos8 × a 6-level bucket of |m_left| + |m_up| (0, 1, 2, 3–4, 5–8, ≥ 9); `U3`,
  `LU6` alone (one position class). Neighbours outside the tensor count as 0;
- each scheme's (rate, error) points give a lower convex hull; the table prints, at the error
  `pos8` reaches at B b/el, the rate each scheme needs, as a change against `pos8` (negative:
  fewer bits). KLT basis: the tensor's own principal axes over channels (fitted on the tensor
  itself: an upper bound for the transform; the question is the context's gain on top of it).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import tcq_sketch as ts  # noqa: E402

WORKLOADS = (
    "smollm2_l5",
    "smollm2_l15",
    "smollm2_l25",
    "gemma3_l9",
    "minilm_l3",
    "effnet_b4",
    "effnet_b10",
)
BUDGETS = (1.0, 1.5, 2.0, 3.0)
STEPS = 36
RHOS = (128, 96, 64)
SCHEMES = ("pos8", "U3", "LU6", "pos8+U3", "pos8+LU6")


def klt(x: np.ndarray) -> np.ndarray:
    """The tensor in its principal axes over channels (axis 0 of maps, the last of rows)."""
    rows = np.moveaxis(x, 0, -1).reshape(-1, x.shape[0]) if x.ndim == 3 else x
    centred = rows - rows.mean(0)
    _, vec = np.linalg.eigh(centred.T @ centred)
    coef = centred @ vec[:, ::-1]
    if x.ndim == 3:
        return np.moveaxis(coef.reshape(x.shape[1], x.shape[2], x.shape[0]), -1, 0)
    return coef


def position_classes(x: np.ndarray, k: int = 8) -> np.ndarray:
    """Class per element: channels (last axis of rows, planes of maps) ranked by mean |x|."""
    if x.ndim == 3:
        score = np.abs(x).reshape(x.shape[0], -1).mean(1)
    else:
        score = np.abs(x).mean(0)
    rank = np.empty(score.size, np.int64)
    rank[np.lexsort((np.arange(score.size), score))] = np.arange(score.size)
    cls = rank * k // score.size
    if x.ndim == 3:
        return np.broadcast_to(cls[:, None, None], x.shape).ravel()
    return np.broadcast_to(cls[None, :], x.shape).ravel()


def neighbours(m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(|m_left|, |m_up|) per element of the magnitude array m, in its layout."""
    left = np.zeros_like(m)
    left[..., 1:] = m[..., :-1]
    up = np.zeros_like(m)
    up[..., 1:, :] = m[..., :-1, :]
    return left.ravel(), up.ravel()


def bucket6(a: np.ndarray) -> np.ndarray:
    return np.select([a == 0, a == 1, a == 2, a <= 4, a <= 8], [0, 1, 2, 3, 4], 5)


def contexts(m: np.ndarray, cls: np.ndarray) -> dict[str, tuple[np.ndarray, int]]:
    left, up = neighbours(m)
    u3 = np.minimum(up, 2)
    lu6 = bucket6(left + up)
    return {
        "pos8": (cls, 8),
        "U3": (u3, 3),
        "LU6": (lu6, 6),
        "pos8+U3": (cls * 3 + u3, 24),
        "pos8+LU6": (cls * 6 + lu6, 48),
    }


def points(x: np.ndarray) -> dict[tuple[str, bool], list[tuple[float, float]]]:
    """(rate b/el, rel. L2 error) of every scheme over the step × rho grid."""
    flat = x.astype(np.float64).ravel()
    norm = float(np.linalg.norm(flat))
    cls = position_classes(x)
    scale = float(np.sqrt(np.mean(flat**2)))
    out: dict[tuple[str, bool], list[tuple[float, float]]] = {}
    for step in scale * np.geomspace(0.002, 4.0, STEPS):
        for rho in RHOS:
            t = np.abs(flat) / step
            m = np.floor(t + rho / 256.0).astype(np.int64)
            _, sse = ts.ecsq(flat, step, rho, np.zeros(flat.size, np.int64), 1)
            sym, extra = ts.symbols(m, flat < 0)
            err = np.sqrt(sse) / norm
            for name, (ctx, k) in contexts(m.reshape(x.shape), cls).items():
                counts = np.bincount(ctx * ts.NUM_SYMBOLS + sym, minlength=k * ts.NUM_SYMBOLS)
                counts = counts.reshape(k, ts.NUM_SYMBOLS)
                tot = counts.sum(1, keepdims=True)
                with np.errstate(divide="ignore", invalid="ignore"):
                    p = np.where(counts > 0, counts / np.maximum(tot, 1), 1.0)
                    h = float(-(counts * np.log2(p)).sum()) + float(extra.sum())
                tables = 8.0 * sum(ts.table_bytes(c) for c in counts if c.any())
                out.setdefault((name, True), []).append(((h + tables) / flat.size, err))
                out.setdefault((name, False), []).append((h / flat.size, err))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workloads", nargs="*", default=list(WORKLOADS))
    ap.add_argument("--bases", nargs="*", default=["plain", "klt"], choices=["plain", "klt"])
    args = ap.parse_args()
    head = "| workload | basis | B | pos8 rel. L2 | " + " | ".join(
        f"{s} (tables / none)" for s in SCHEMES
    )
    print(head + " |")
    print("|---|---|---:|---:|" + "---:|" * len(SCHEMES))
    for name in args.workloads:
        x = np.load(ts.DATA / f"{name}.npy").astype(np.float64)
        for basis in args.bases:
            y = klt(x) if basis == "klt" else x
            pts = points(y)
            for b in BUDGETS:
                err = ts.front_at(pts[("pos8", True)], (b,))[0]
                cells = []
                for s in SCHEMES:
                    r = [ts.rate_at(pts[(s, c)], err) for c in (True, False)]
                    cells.append(" / ".join(f"{100 * (v / b - 1):+.1f} %" for v in r))
                print(
                    f"| {name} {tuple(x.shape)} | {basis} | {b:g} | {err:.4g} | "
                    + " | ".join(cells)
                    + " |",
                    flush=True,
                )


if __name__ == "__main__":
    main()
