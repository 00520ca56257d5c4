"""Cost of mode="auto" against one plain dense encode of the same array, by size (issue 7:
auto <= 3 plain encodes at every size).

    git show REV:python/slicer/_rate.py > /tmp/rate_before.py
    python bench/auto_cost.py --before /tmp/rate_before.py [--reps 7] [--sizes 16384,...]
        [--variants] [--json out.json] [--plot bench/plots/auto_cost.png]

Input: SmolLM2 layer-15 states of bench/data tiled to (N / 64, 64) float32 (the lead's
measurement of issue 7); the plain encode is ``mode="dense", step=0.5`` (classes=1) and the
budgets are its size (max_bytes) and its relative L2 error (rel_error). Per size, one round
calls the plain encode, then every auto call of the current rate control and of `--before` (an
earlier python/slicer/_rate.py, loaded as classes_speed.py does), in turn: the machine's load
weighs on all alike. Times are the calling thread's CPU time (time.thread_time), threads=1,
medians over `reps` rounds; the streams of the two rate controls are compared byte for byte.

Per call the CPU time inside the real encodes (slicer._core.dense_encode / dense_encode_sse,
wrapped) is recorded too: "model ms" is the rest of an auto call (rate model, argument checks,
Python), and "if 2x" = (auto's encode ms / 2 + model ms) / (plain's encode ms / 2 + plain's
rest), the ratio if the C++ encoder (plain's and auto's encodes alike) ran twice as fast and
nothing else changed.

`--variants`: at N = 131072, the same for float16 / bfloat16 / float64 input and for
groups="rows" / "channels" (a (N / 64 / 8, 8, 8, 8)-shaped copy for channels).

`--baseline EARLIER.json`: the --json of a run under another build (e.g. the commit before a
change of the C++ rate kernel, which --before cannot load): its ratios are drawn dotted in the
plot and printed beside this run's as "baseline / plain".
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from classes_speed import RATE_FUNCTIONS, load_rate

HERE = Path(__file__).resolve().parent


def rel(a: np.ndarray, b: np.ndarray) -> float:
    a64 = a.astype(np.float64)
    return float(np.linalg.norm(a64 - b.astype(np.float64)) / np.linalg.norm(a64))


def measure(x: np.ndarray, rates: dict, reps: int, groups: str = "tensor") -> list[dict]:
    """Rows (target, classes, before ms, now ms, plain ms, ratios, same stream)."""
    import slicer
    from slicer import _api, _core

    inside = [0.0, 0]  # CPU seconds in the real encodes, and their count

    def timed_encoder(fn):  # noqa: ANN001, ANN202
        def run(*a):  # noqa: ANN002, ANN202
            c0 = time.thread_time()
            try:
                return fn(*a)
            finally:
                inside[0] += time.thread_time() - c0
                inside[1] += 1

        return run

    def use(module) -> None:  # noqa: ANN001
        for name in RATE_FUNCTIONS:
            setattr(_api, name, getattr(module, name))

    plain_kw = dict(mode="dense", step=0.5, threads=1, groups=groups)
    s = slicer.encode(x, **plain_kw)
    err = rel(x, slicer.decode(s))
    targets = {"max_bytes": dict(max_bytes=len(s)), "rel_error": dict(rel_error=err)}
    calls = {}
    for target, kw in targets.items():
        for classes in ("auto", 1):
            for tag in rates:
                calls[(target, classes, tag)] = dict(kw, classes=classes)
    cpu: dict = {key: [] for key in calls}
    enc: dict = {key: [] for key in calls}
    cpu["plain"] = []
    plain_enc: list[float] = []
    out: dict = {}
    originals = (_core.dense_encode, _core.dense_encode_sse)
    _core.dense_encode = timed_encoder(originals[0])
    _core.dense_encode_sse = timed_encoder(originals[1])
    try:
        for _ in range(reps):
            inside[:] = [0.0, 0]
            c0 = time.thread_time()
            slicer.encode(x, **plain_kw)
            cpu["plain"].append(time.thread_time() - c0)
            plain_enc.append(inside[0])
            for key, kw in calls.items():
                use(rates[key[2]])
                inside[:] = [0.0, 0]
                c0 = time.thread_time()
                out[key] = slicer.encode(x, mode="auto", threads=1, groups=groups, **kw)
                cpu[key].append(time.thread_time() - c0)
                enc[key].append(tuple(inside))
    finally:
        use(rates["now"])
        _core.dense_encode, _core.dense_encode_sse = originals
    plain = statistics.median(cpu["plain"])
    plain_in = statistics.median(plain_enc)
    plain_2x = plain_in / 2 + statistics.median(c - e for c, e in zip(cpu["plain"], plain_enc,
                                                                      strict=True))  # fmt: skip
    rows = []
    for target in targets:
        for classes in ("auto", 1):
            key = (target, classes, "now")
            now = statistics.median(cpu[key])
            encode = statistics.median(e[0] for e in enc[key])
            model = statistics.median(c - e[0] for c, e in zip(cpu[key], enc[key], strict=True))
            row = dict(n=int(x.size), dtype=str(x.dtype), groups=groups, target=target,
                       classes=str(classes), plain_ms=plain * 1e3, now_ms=now * 1e3,
                       now_ratio=now / plain, bytes=len(out[key]), encodes=enc[key][-1][1],
                       encode_ms=encode * 1e3, model_ms=model * 1e3,
                       if_2x=(encode / 2 + model) / plain_2x)  # fmt: skip
            if "before" in rates:
                before = statistics.median(cpu[(target, classes, "before")])
                same = out[(target, classes, "now")] == out[(target, classes, "before")]
                row.update(before_ms=before * 1e3, before_ratio=before / plain, same=same)
            rows.append(row)
    return rows


def print_rows(rows: list[dict]) -> None:
    for r in rows:
        before = (f"{r['before_ms']:.2f} | {r['before_ratio']:.2f}x | "
                  if "before_ms" in r else "")  # fmt: skip
        same = ("yes" if r["same"] else "NO") if "same" in r else ""
        print(f"| {r['n']:,} | {r['dtype']} | {r['groups']} | {r['target']} | {r['classes']} | "
              f"{r['plain_ms']:.2f} | {before}{r['now_ms']:.2f} | {r['now_ratio']:.2f}x | "
              f"{r['encodes']} | {r['model_ms']:.2f} | {r['if_2x']:.2f}x | {same} |",
              flush=True)  # fmt: skip


def plot(rows: list[dict], path: str, baseline: list[dict] | None = None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2))
    main = [r for r in rows if r["dtype"] == "float32" and r["groups"] == "tensor"]
    sizes = sorted({r["n"] for r in main})
    for target in ("max_bytes", "rel_error"):
        for classes in ("auto", "1"):
            sel = {r["n"]: r for r in main if r["target"] == target and r["classes"] == classes}
            label = f"{target}, classes={classes}"
            line = ax.plot(sizes, [sel[n]["now_ratio"] for n in sizes], "o-", label=label)[0]
            if baseline is not None:
                old = {r["n"]: r for r in baseline if r["dtype"] == "float32"
                       and r["groups"] == "tensor" and r["target"] == target
                       and r["classes"] == classes}  # fmt: skip
                ax.plot(sizes, [old[n]["now_ratio"] for n in sizes], "x:",
                        color=line.get_color(), alpha=0.6)  # fmt: skip
            elif all("before_ratio" in sel[n] for n in sizes):
                ax.plot(sizes, [sel[n]["before_ratio"] for n in sizes], "x:",
                        color=line.get_color(), alpha=0.6)  # fmt: skip
    ax.axhline(3.0, color="k", lw=0.8, ls="--")
    ax.text(sizes[0], 3.1, "target: 3 plain encodes", fontsize=8)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("elements N (SmolLM2 layer 15, float32, (N/64, 64))")
    ax.set_ylabel("auto CPU time / one plain encode")
    dotted = "the baseline build" if baseline is not None else "NumPy model before"
    ax.set_title(f"mode='auto' cost (solid: this build; dotted: {dotted})", fontsize=10)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", metavar="OLD_RATE.py")
    parser.add_argument("--reps", type=int, default=7)
    parser.add_argument("--sizes", default="16384,131072,1048576,4194304")
    parser.add_argument("--variants", action="store_true")
    parser.add_argument("--json", metavar="OUT.json")
    parser.add_argument("--plot", metavar="OUT.png")
    parser.add_argument("--baseline", metavar="EARLIER.json")
    parser.add_argument("--python-driver", action="store_true",
                        help="run the Python budget driver (slicer._rate.NATIVE_DRIVER = False), "
                        "the reference of the C++ one: the build before it")  # fmt: skip
    args = parser.parse_args()
    from slicer import _rate

    rates = {"now": _rate}
    _rate.NATIVE_DRIVER = not args.python_driver
    if args.before:
        rates["before"] = load_rate(args.before)
    print(f"# uptime: {os.popen('uptime').read().strip()}")
    print("| N | dtype | groups | target | classes | plain ms | "
          + ("before ms | before / plain | " if args.before else "")
          + "now ms | now / plain | encodes | model ms | if 2x | same stream |")  # fmt: skip
    print("|---:|---|---|---|---|---:|" + ("---:|---:|" if args.before else "")
          + "---:|---:|---:|---:|---:|---|")  # fmt: skip
    base = np.load(HERE / "data" / "smollm2_l15.npy").reshape(-1)
    rows = []
    for n in (int(v) for v in args.sizes.split(",")):
        x = np.resize(base, n).astype(np.float32).reshape(n // 64, 64)
        got = measure(x, rates, args.reps)
        print_rows(got)
        rows += got
    if args.variants:
        import ml_dtypes

        n = 131072
        x = np.resize(base, n).astype(np.float32).reshape(n // 64, 64)
        for dtype in (np.float16, ml_dtypes.bfloat16, np.float64):
            got = measure(x.astype(dtype), rates, args.reps)
            print_rows(got)
            rows += got
        got = measure(x, rates, args.reps, groups="rows")
        print_rows(got)
        rows += got
        got = measure(x.reshape(n // 512, 8, 8, 8), rates, args.reps, groups="channels")
        print_rows(got)
        rows += got
    print(f"# uptime: {os.popen('uptime').read().strip()}")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    baseline = json.loads(Path(args.baseline).read_text()) if args.baseline else None
    if baseline is not None:
        old = {(r["n"], r["dtype"], r["groups"], r["target"], r["classes"]): r for r in baseline}
        print("\n| N | dtype | groups | target | classes | baseline / plain | now / plain |")
        print("|---:|---|---|---|---|---:|---:|")
        for r in rows:
            b = old.get((r["n"], r["dtype"], r["groups"], r["target"], r["classes"]))
            if b is not None:
                ratios = f"{b['now_ratio']:.2f}x | {r['now_ratio']:.2f}x"
                print(f"| {r['n']:,} | {r['dtype']} | {r['groups']} | {r['target']} | "
                      f"{r['classes']} | {ratios} |")  # fmt: skip
    if args.plot:
        plot(rows, args.plot, baseline)
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(HERE))
    raise SystemExit(main())
