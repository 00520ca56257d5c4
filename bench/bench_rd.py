"""Rate-distortion of SLICER and its peers on real activations.

    python bench/activations.py     # once, with the model packages (writes bench/data/)
    python bench/bench_rd.py        # table + bench/plots/rd_<workload>.png
    python bench/bench_rd.py --quick --json rd.json

Distortion is the relative L2 error ||x - x_hat|| / ||x|| of the whole tensor; rate is bits per
element with everything counted (SLICER: the whole stream; peers: payload + side information).

Methods:
- SLICER, sweeping sparsity s, q_bit and the ABQ budget delta, with groups="tensor" and (for
  token-by-feature states: SmolLM2, MiniLM) groups="rows";
- fp16 and bf16 casts (16 bits);
- uniform per-tensor int8 / int4 on [min, max] (+ 64 bits of range);
- plain top-k + symmetric per-tensor int8, positions costed at their entropy log2 C(N, k)
  (an ideal enumerative code: the most favourable costing such a scheme can claim);
- zfp fixed-rate mode (zfpy) at rates 1..16 on the array's own 2-D / 3-D shape;
- SZ3 (pysz) with an absolute error bound swept from 10 % to 0.01 % of the value range.

The peers zfp and SZ3 run in a forked child process: a peer that is missing, raises, or
crashes (zfpy 1.0.1.post0 is known to segfault on some inputs) is reported, not fatal.
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing as mp
import sys
import traceback
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import baselines  # noqa: E402

DATA_DIR = HERE / "data"
PLOT_DIR = HERE / "plots"
# Workloads whose last axis is a feature vector per token: coded per row as well.
ROW_WORKLOADS = ("smollm2", "minilm", "gemma3")
SPARSITY_FULL = (0.0, 0.5, 0.75, 0.9, 0.95, 0.99)
SPARSITY_QUICK = (0.5, 0.9, 0.99)
BITS_FULL = (4, 8)
BITS_QUICK = (8,)
DELTA_FULL = (0.0, 0.01, 0.05)
DELTA_QUICK = (0.0, 0.01)
ZFP_RATES = (1, 2, 3, 4, 6, 8, 12, 16)
SZ3_RELATIVE_BOUNDS = (
    1e-1, 5e-2, 3e-2, 2e-2, 1e-2, 5e-3, 3e-3, 2e-3, 1e-3, 5e-4, 3e-4, 2e-4, 1e-4, 5e-5, 3e-5,
    2e-5, 1e-5, 1e-6,
)  # fmt: skip
ZFP_TOLERANCES = (1e-1, 3e-2, 1e-2, 3e-3, 1e-3, 3e-4, 1e-4, 3e-5, 1e-5)  # x value range
# Format 2: mode="auto" with max_bytes = B * N / 8 at these B (issue 7 targets).
DENSE_BUDGETS = (1, 2, 3, 4, 6, 8)
BUDGETS = (0.5, 1.0, 2.0, 4.0, 8.0, 16.0)
# A point counts for budget B when its rate is <= B * (1 + BUDGET_SLACK): per-tensor int8 pays
# 64 bits of range on top of 8 bits per element and must still count as an 8-bit method.
BUDGET_SLACK = 0.01

Point = dict[str, Any]


def rel_l2(x: np.ndarray, y: np.ndarray) -> float:
    x64 = x.astype(np.float64).ravel()
    diff = x64 - y.astype(np.float64).ravel()
    return float(np.linalg.norm(diff) / np.linalg.norm(x64))


def mean_row_rel_l2(x: np.ndarray, y: np.ndarray) -> float | None:
    """Mean over rows of the per-row relative L2 error, for token-by-feature states only.

    The whole-tensor error of an LLM state is dominated by the few massive-activation tokens;
    this one weighs every token equally, so damage to ordinary tokens shows.
    """
    if x.ndim != 2:
        return None
    x64 = x.astype(np.float64)
    num = np.linalg.norm(x64 - y.astype(np.float64), axis=1)
    den = np.linalg.norm(x64, axis=1)
    return float(np.mean(num[den > 0] / den[den > 0]))


def point(method: str, config: str, bits: float, x: np.ndarray, y: np.ndarray) -> Point:
    return {
        "method": method,
        "config": config,
        "bpe": bits / x.size,
        "rel_l2": rel_l2(x, y),
        "row_rel_l2": mean_row_rel_l2(x, y),
    }


def slicer_points(
    x: np.ndarray,
    rows: bool,
    sparsities: tuple[float, ...],
    widths: tuple[int, ...],
    deltas: tuple[float, ...],
) -> list[Point]:
    import slicer

    out = []
    for groups in ("tensor", "rows") if rows else ("tensor",):
        for bits in widths:
            for delta in deltas:
                method = f"SLICER {groups} q{bits} d{delta:g}"
                for s in sparsities:
                    stream = slicer.encode(
                        x, sparsity=s, blocks=3, bits=bits, delta=delta, groups=groups
                    )
                    y = slicer.decode(stream)
                    out.append(point(method, f"s={s:g}", 8 * len(stream), x, y))
    return out


def plain_points(x: np.ndarray, sparsities: tuple[float, ...]) -> list[Point]:
    out = []
    y, bits = baselines.cast_fp16(x)
    out.append(point("fp16 cast", "", bits, x, y))
    y, bits = baselines.cast_bf16(x)
    out.append(point("bf16 cast", "", bits, x, y))
    for width in (8, 4):
        y, bits = baselines.uniform_int(x, width)
        out.append(point(f"int{width} per tensor", "", bits, x, y))
    for s in sparsities:
        y, bits = baselines.topk_int(x, s, 8, positions="entropy")
        out.append(point("top-k + int8", f"s={s:g}", bits, x, y))
    return out


def zfp_points(x: np.ndarray) -> list[Point]:
    import zfpy

    out = []
    for rate in ZFP_RATES:
        buf = zfpy.compress_numpy(x, rate=rate)
        y = zfpy.decompress_numpy(buf)
        out.append(point("zfp fixed rate", f"rate={rate}", 8 * len(buf), x, y))
    value_range = float(x.max() - x.min())
    for tol in ZFP_TOLERANCES:
        buf = zfpy.compress_numpy(x, tolerance=tol * value_range)
        y = zfpy.decompress_numpy(buf)
        out.append(point("zfp fixed accuracy", f"tol={tol:g}*range", 8 * len(buf), x, y))
    return out


def axis_int_points(x: np.ndarray) -> list[Point]:
    """Symmetric int8/int6/int4 with one f32 absmax scale per row (token) or per channel."""
    axes = {"row": 0} if x.ndim == 2 else {"channel": x.ndim - 3} if x.ndim >= 3 else {}
    out = []
    for label, axis in axes.items():
        x64 = np.moveaxis(x.astype(np.float64), axis, 0)
        flat = x64.reshape(x64.shape[0], -1)
        for bits in (8, 6, 4):
            half = (1 << (bits - 1)) - 1
            scale = np.abs(flat).max(axis=1, keepdims=True) / half
            scale[scale == 0] = 1.0
            y = np.clip(np.rint(flat / scale), -half, half) * scale
            y = np.moveaxis(y.reshape(x64.shape), 0, axis).astype(np.float32)
            nbits = bits * x.size + 32 * flat.shape[0]
            out.append(point(f"int{bits} per {label}", "", nbits, x, y))
    return out


def dense_points(x: np.ndarray) -> list[Point]:
    """Format 2: mode='auto' at each budget, and mode='dense' rel_error targets."""
    import slicer

    out = []
    for b in DENSE_BUDGETS:
        stream = slicer.encode(x, mode="auto", max_bytes=int(b * x.size // 8))
        out.append(point("SLICER dense auto", f"max_bytes={b}*N/8", 8 * len(stream), x,
                         slicer.decode(stream)))  # fmt: skip
    return out


def sz3_points(x: np.ndarray) -> list[Point]:
    from pysz import sz, szConfig, szErrorBoundMode

    value_range = float(x.max() - x.min())
    out = []
    for rel in SZ3_RELATIVE_BOUNDS:
        config = szConfig()
        config.errorBoundMode = szErrorBoundMode.ABS
        config.absErrorBound = rel * value_range
        compressed, _ratio = sz.compress(x, config)
        y, _conf = sz.decompress(compressed, np.float32, x.shape)
        out.append(point("SZ3 abs bound", f"eb={rel:g}*range", 8 * compressed.nbytes, x, y))
    return out


def _child(fn: Callable[[np.ndarray], list[Point]], x: np.ndarray, conn: Any) -> None:
    try:
        conn.send(("ok", fn(x)))
    except BaseException as exc:  # report every failure of the peer to the parent
        conn.send(("error", f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=2)}"))
    finally:
        conn.close()


def guarded(
    name: str, fn: Callable[[np.ndarray], list[Point]], x: np.ndarray, timeout_s: float = 300.0
) -> tuple[list[Point], str]:
    """Run a peer sweep in a forked child; return its points and a status line."""
    ctx = mp.get_context("fork")
    parent, child = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child, args=(fn, x, child))
    proc.start()
    child.close()
    result = None
    if parent.poll(timeout_s):
        try:
            result = parent.recv()
        except EOFError:
            result = None
    proc.join(timeout=10)
    if proc.is_alive():
        proc.kill()
        proc.join()
        return [], f"{name}: timed out after {timeout_s:.0f} s"
    if result is None:
        return [], f"{name}: crashed (exit code {proc.exitcode})"
    status, value = result
    if status == "error":
        first = value.splitlines()[0]
        return [], f"{name}: failed: {first}"
    return value, f"{name}: ok"


def best_within(points: list[Point], budget: float, key: str = "rel_l2") -> dict[str, Point]:
    """Per method family, the lowest-`key` point whose rate is <= budget (+ slack)."""
    best: dict[str, Point] = {}
    for p in points:
        value = p[key]
        if p["bpe"] <= budget * (1 + BUDGET_SLACK) and value is not None and math.isfinite(value):
            family = method_family(p["method"])
            if family not in best or value < best[family][key]:
                best[family] = p
    return best


def method_family(method: str) -> str:
    """SLICER series collapse to one family per grouping for the matched-rate table."""
    if method.startswith("SLICER dense"):
        return method
    if method.startswith("SLICER"):
        return " ".join(method.split()[:2])
    return method


def print_points(name: str, points: list[Point]) -> None:
    rows = points[0]["row_rel_l2"] is not None
    print(f"\n### {name}: every point\n")
    extra = " mean row rel L2 |" if rows else ""
    print(f"| method | config | bits/elem | rel L2 |{extra}")
    print("|---|---|---:|---:|" + ("---:|" if rows else ""))
    for p in points:
        cells = [p["method"], p["config"], f"{p['bpe']:.3f}", f"{p['rel_l2']:.3e}"]
        if rows:
            cells.append(f"{p['row_rel_l2']:.3e}")
        print("| " + " | ".join(cells) + " |")


def print_matched(name: str, points: list[Point], key: str = "rel_l2") -> None:
    families = sorted(
        {method_family(p["method"]) for p in points},
        key=lambda f: (not f.startswith("SLICER"), f),
    )
    what = "rel L2 error" if key == "rel_l2" else "mean row rel L2 error"
    print(f"\n### {name}: lowest {what} at <= B bits per element (+1 %)\n")
    header = "| method | " + " | ".join(f"B={b:g}" for b in BUDGETS) + " |"
    print(header)
    print("|---|" + "---:|" * len(BUDGETS))
    tables = {b: best_within(points, b, key) for b in BUDGETS}
    for fam in families:
        cells = []
        for b in BUDGETS:
            p = tables[b].get(fam)
            cells.append(f"{p[key]:.2e}" if p else "—")
        print(f"| {fam} | " + " | ".join(cells) + " |")


def print_targets(name: str, points: list[Point]) -> None:
    """Issue 7 target: dense auto at B*N/8 bytes vs the best peer at <= B bits (+1 %)."""
    print(f"\n### {name}: SLICER dense auto vs the best peer at the same or fewer bits\n")
    print("| B | auto bits/el | auto rel L2 | best peer (config) | peer rel L2 | auto / peer |")
    print("|---:|---:|---:|---|---:|---:|")
    peers = [p for p in points if not p["method"].startswith("SLICER")]
    for b in DENSE_BUDGETS:
        auto = [p for p in points if p["method"] == "SLICER dense auto"
                and p["config"] == f"max_bytes={b}*N/8"]  # fmt: skip
        within = best_within(peers, b)
        peer = min(within.values(), key=lambda p: p["rel_l2"]) if within else None
        a = auto[0]
        if peer is None:
            print(f"| {b} | {a['bpe']:.3f} | {a['rel_l2']:.3e} | — | — | — |")
            continue
        label = f"{peer['method']} ({peer['config']})" if peer["config"] else peer["method"]
        print(f"| {b} | {a['bpe']:.3f} | {a['rel_l2']:.3e} | {label} | {peer['rel_l2']:.3e} "
              f"| {a['rel_l2'] / peer['rel_l2']:.2f} |")  # fmt: skip


SLICER_STYLE = {"0": "-", "0.01": "--", "0.05": ":"}


def plot(name: str, shape: tuple[int, ...], points: list[Point], path: Path) -> None:
    """SLICER: one colour per (groups, q_bit), line style by delta; peers: own colours."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 5.8))
    methods = list(dict.fromkeys(p["method"] for p in points))
    colors = plt.get_cmap("tab10").colors
    families = list(
        dict.fromkeys(
            m.rsplit(" ", 1)[0]
            for m in methods
            if m.startswith("SLICER") and not m.startswith("SLICER dense")
        )
    )
    peer_colors = iter([*colors[len(families) :], "black", "grey", "olive"])
    for m in methods:
        pts = sorted((p for p in points if p["method"] == m), key=lambda p: p["bpe"])
        xs = [p["bpe"] for p in pts]
        ys = [max(p["rel_l2"], 1e-12) for p in pts]
        if m.startswith("SLICER dense"):
            ax.plot(xs, ys, "-", marker="*", ms=9, lw=2.2, color="crimson", label=m)
        elif m.startswith("SLICER"):
            family, delta = m.rsplit(" ", 1)
            style = SLICER_STYLE.get(delta.removeprefix("d"), "-.")
            color = colors[families.index(family)]
            ax.plot(xs, ys, style, marker="o", ms=3.5, lw=1.5, color=color, label=m)
        elif len(pts) == 1:
            ax.plot(xs, ys, "", marker="s", ms=7, color=next(peer_colors), label=m)
        else:
            ax.plot(
                xs, ys, "-", marker="^", ms=5, lw=0.9, alpha=0.8, color=next(peer_colors), label=m
            )
    ax.set_yscale("log")
    ax.set_xlabel("bits per element (everything counted)")
    ax.set_ylabel("relative L2 error (whole tensor)")
    ax.set_title(
        f"{name} {tuple(shape)}: rate-distortion (SLICER line style: delta 0 / 0.01 / 0.05)"
    )
    ax.grid(True, which="both", alpha=0.3)
    ax.set_xlim(0, 17)
    ax.legend(fontsize=7, ncol=2, loc="lower left")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def load_workloads(data_dir: Path, wanted: list[str] | None) -> dict[str, np.ndarray]:
    manifest = data_dir / "manifest.json"
    if not manifest.exists():
        raise SystemExit(f"{manifest} not found: run bench/activations.py first")
    names = list(json.loads(manifest.read_text()))
    if wanted:
        unknown = sorted(set(wanted) - set(names))
        if unknown:
            raise SystemExit(f"unknown workloads {unknown}; available: {names}")
        names = wanted
    return {n: np.load(data_dir / f"{n}.npy") for n in names}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA_DIR, help="activations folder")
    parser.add_argument("--plots", type=Path, default=PLOT_DIR, help="plot folder")
    parser.add_argument("--workloads", nargs="+", default=None, help="subset of workloads")
    parser.add_argument("--quick", action="store_true", help="fewer SLICER settings")
    parser.add_argument("--json", type=Path, default=None, help="write all points here")
    args = parser.parse_args(argv)

    from tqdm import tqdm

    import slicer

    sparsities = SPARSITY_QUICK if args.quick else SPARSITY_FULL
    widths = BITS_QUICK if args.quick else BITS_FULL
    deltas = DELTA_QUICK if args.quick else DELTA_FULL
    workloads = load_workloads(args.data, args.workloads)
    results: dict[str, Any] = {}
    for name, x in (bar := tqdm(workloads.items(), desc="workloads", file=sys.stderr)):
        bar.set_postfix_str(name)
        rows = name.startswith(ROW_WORKLOADS) and x.ndim >= 2
        points = slicer_points(x, rows, sparsities, widths, deltas)
        points += dense_points(x)
        points += plain_points(x, sparsities) + axis_int_points(x)
        statuses = []
        for peer, fn in (("zfp", zfp_points), ("SZ3", sz3_points)):
            peer_points, status = guarded(peer, fn, x)
            points += peer_points
            statuses.append(status)
        results[name] = {"shape": list(x.shape), "points": points, "peers": statuses}
        plot(name, x.shape, points, args.plots / f"rd_{name}.png")

    date = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    print(
        f"SLICER {slicer.__version__}, NumPy {np.__version__}, {date}; SLICER blocks=3; "
        "top-k + int8 positions costed at log2 C(N, k)"
    )
    for name, res in results.items():
        print(f"\n## {name} {tuple(res['shape'])}  ({'; '.join(res['peers'])})")
        print_matched(name, res["points"])
        print_targets(name, res["points"])
        if res["points"][0]["row_rel_l2"] is not None:
            print_matched(name, res["points"], key="row_rel_l2")
        print_points(name, res["points"])
    if args.json:
        args.json.write_text(json.dumps({"date_utc": date, "results": results}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
