"""CPU speed targets of the encoder and decoder (issue 11, "CPU speed debts"), one process.

    taskset -c 1 python bench/bench_speed.py              # one pinned core: all but 'threads'
    taskset -c 0,1 python bench/bench_speed.py --only threads
    python bench/bench_speed.py --json out.json --rounds 15

Every figure interleaves the calls it compares, one of each per round, and reports the median
of the per-round values (the machine is shared: a round sees the same load for all of them).
Input: float32 N(0, 1), seed 0 (fp16 / bf16: the same values rounded).

Single-thread figures are process CPU time (time.process_time), the speed-up is wall time.

- threads: encode of 16M floats at s = 0.9, threads=2 against threads=1: wall-time speed-up,
  minor page faults per call, and the speed-up of the calling thread's CPU time (what the
  wall-time speed-up is on an idle machine, less the waits for a worker's last part).
- overhead: one 576-float encode through ``slicer.encode`` against the C++ time per row of
  the same job (a 2048-row ``encode_batch`` divided by 2048); the difference is what a call
  costs beyond the coding itself.
- batch: ``encode_batch`` of 2048 x 576 at s = 0.9 in tokens (rows) per second.
- dtypes: fp16 and bf16 encode of 1M elements against fp32 (time ratio), both against the
  original fp32 data and against fp32 holding the same (rounded) values.
- torch: encode at 1M, s = 0.9, against the plain PyTorch top-k + 3 blocks/sign + 8-bit
  quantize (bench/baselines.py) on one thread, with the same job (blocks=3, bits=8, delta=0).
- decode: decode of that 1M stream in GB/s of output.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse
import json
import resource
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import baselines

CODEC_PARAMS: dict[str, Any] = {"blocks": 3, "bits": 8, "delta": 0.0}
MIN_BATCH_S = 2e-3


# Single-thread figures use process CPU time: on a shared machine it leaves out the time the
# process waited for its core. Multi-thread figures (the threads speed-up) need wall time.
clock = time.process_time


def per_call(fn: Callable[[], object], number: int) -> tuple[float, float]:
    """(seconds, minor page faults) per call over `number` calls."""
    f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    t0 = clock()
    for _ in range(number):
        fn()
    seconds = (clock() - t0) / number
    faults = (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0) / number
    return seconds, faults


def calls_per_batch(fn: Callable[[], object]) -> int:
    fn()
    t0 = time.perf_counter()
    fn()
    return max(1, int(MIN_BATCH_S / max(time.perf_counter() - t0, 1e-9)))


def interleaved(calls: dict[str, Callable[[], object]], rounds: int) -> dict[str, list]:
    """Per call name: a list of (seconds, faults) per round, calls interleaved."""
    numbers = {name: calls_per_batch(fn) for name, fn in calls.items()}
    out: dict[str, list] = {name: [] for name in calls}
    for _ in range(rounds):
        for name, fn in calls.items():
            out[name].append(per_call(fn, numbers[name]))
    return out


def med(values: list[float]) -> float:
    return statistics.median(values)


def bench_threads(slicer: Any, rounds: int) -> dict[str, Any]:
    global clock
    clock = time.perf_counter  # a speed-up is a wall-time figure
    x = np.random.default_rng(0).standard_normal(1 << 24, dtype=np.float32)
    streams = {t: slicer.encode(x, sparsity=0.9, threads=t) for t in (1, 2)}
    assert streams[1] == streams[2], "streams differ across thread counts"
    r = interleaved(
        {
            "t1": lambda: slicer.encode(x, sparsity=0.9, threads=1),
            "t2": lambda: slicer.encode(x, sparsity=0.9, threads=2),
        },
        rounds,
    )
    ratios = [a[0] / b[0] for a, b in zip(r["t1"], r["t2"], strict=True)]
    # The calling thread's CPU time: it runs the serial steps and its share of every parallel
    # step, so on an idle machine a pooled call's wall time is about this (a little more: it
    # may wait for a worker's last part). Unlike wall time it is not inflated by other tenants.
    clock = time.thread_time
    c = interleaved(
        {
            "t1": lambda: slicer.encode(x, sparsity=0.9, threads=1),
            "t2": lambda: slicer.encode(x, sparsity=0.9, threads=2),
        },
        rounds,
    )
    caller_ratios = [a[0] / b[0] for a, b in zip(c["t1"], c["t2"], strict=True)]
    clock = time.process_time
    return {
        "t1_caller_cpu_ms": 1e3 * med([s for s, _ in c["t1"]]),
        "t2_caller_cpu_ms": 1e3 * med([s for s, _ in c["t2"]]),
        "speedup_from_caller_cpu": med(caller_ratios),
        "t1_ms": 1e3 * med([s for s, _ in r["t1"]]),
        "t2_ms": 1e3 * med([s for s, _ in r["t2"]]),
        "t1_faults": med([f for _, f in r["t1"]]),
        "t2_faults": med([f for _, f in r["t2"]]),
        "speedup": med(ratios),
        "target": 1.6,
    }


def bench_small(slicer: Any, rounds: int) -> dict[str, Any]:
    rng = np.random.default_rng(0)
    rows = rng.standard_normal((2048, 576), dtype=np.float32)
    one = rows[0].copy()
    expected = [slicer.encode(rows[i], sparsity=0.9) for i in range(rows.shape[0])]
    assert slicer.encode_batch(rows, sparsity=0.9) == expected, "encode_batch differs"
    r = interleaved(
        {
            "encode": lambda: slicer.encode(one, sparsity=0.9),
            "batch": lambda: slicer.encode_batch(rows, sparsity=0.9),
        },
        rounds,
    )
    encode_us = 1e6 * med([s for s, _ in r["encode"]])
    batch_s = med([s for s, _ in r["batch"]])
    per_row_us = 1e6 * batch_s / rows.shape[0]
    from slicer._params import make_params

    mp = interleaved({"make_params": lambda: make_params(sparsity=0.9)}, rounds)
    return {
        "encode_576_us": encode_us,
        "batch_row_us": per_row_us,
        "overhead_us": encode_us - per_row_us,
        "overhead_target_us": 3.0,
        "make_params_us": 1e6 * med([s for s, _ in mp["make_params"]]),
        "batch_tokens_per_s": rows.shape[0] / batch_s,
        "batch_target_tokens_per_s": 400e3,
    }


def bench_dtypes(slicer: Any, rounds: int) -> dict[str, Any]:
    """fp16 / bf16 encode against fp32 of the same values (the widening's cost) and against
    fp32 of the original data (which has fewer equal magnitudes, so fewer ties to draw)."""
    import ml_dtypes

    x = np.random.default_rng(0).standard_normal(1 << 20, dtype=np.float32)
    variants = {"fp32": x}
    for name, dtype in (("fp16", np.float16), ("bf16", ml_dtypes.bfloat16)):
        variants[name] = x.astype(dtype)
        variants[f"{name}_as_fp32"] = variants[name].astype(np.float32)
    r = interleaved(
        {
            name: (lambda a=a: slicer.encode(a, sparsity=0.9, threads=1))
            for name, a in variants.items()
        },
        rounds,
    )
    out: dict[str, Any] = {f"{name}_ms": 1e3 * med([s for s, _ in r[name]]) for name in r}
    for name in ("fp16", "bf16"):
        for base in ("fp32", f"{name}_as_fp32"):
            ratios = [a[0] / b[0] for a, b in zip(r[name], r[base], strict=True)]
            out[f"{name}_vs_{base}"] = med(ratios)
    out["target"] = 1.10
    return out


def bench_torch_decode(slicer: Any, rounds: int) -> dict[str, Any]:
    import torch

    torch.set_num_threads(1)
    n = 1 << 20
    x = np.random.default_rng(0).standard_normal(n, dtype=np.float32)
    xt = torch.from_numpy(x)
    stream = slicer.encode(x, sparsity=0.9, threads=1, **CODEC_PARAMS)
    r = interleaved(
        {
            "slicer": lambda: slicer.encode(x, sparsity=0.9, threads=1, **CODEC_PARAMS),
            "torch": lambda: baselines.torch_encode(xt, 0.9),
            "decode": lambda: slicer.decode(stream, threads=1),
        },
        rounds,
    )
    decode_s = med([s for s, _ in r["decode"]])
    encode_s = med([s for s, _ in r["slicer"]])
    return {
        "encode_ms": 1e3 * encode_s,
        "encode_gbps": 4.0 * n / encode_s / 1e9,
        "torch_ms": 1e3 * med([s for s, _ in r["torch"]]),
        "encode_vs_torch": med([t[0] / e[0] for t, e in zip(r["torch"], r["slicer"], strict=True)]),
        "encode_vs_torch_target": 15.0,
        "decode_ms": 1e3 * decode_s,
        "decode_gbps": 4.0 * n / decode_s / 1e9,
        "decode_gbps_target": 2.5,
    }


BENCHES = {
    "threads": bench_threads,
    "small": bench_small,
    "dtypes": bench_dtypes,
    "torch": bench_torch_decode,
}


# (section, key, label, higher is better, target or None)
PLOTTED = [
    ("threads", "speedup", "threads=2 / threads=1\nencode 16M, wall (x)", True, 1.6),
    ("threads", "speedup_from_caller_cpu", "same, caller-thread\nCPU time (x)", True, 1.6),
    ("small", "encode_576_us", "one 576-float encode\nin all (us)", False, None),
    ("small", "batch_tokens_per_s", "encode_batch 2048x576\n(K tokens/s)", True, 400e3),
    ("dtypes", "fp16_vs_fp16_as_fp32", "fp16 / fp32, same values\nencode 1M (x)", False, 1.1),
    ("dtypes", "bf16_vs_bf16_as_fp32", "bf16 / fp32, same values\nencode 1M (x)", False, 1.1),
    ("torch", "encode_vs_torch", "encode vs PyTorch\n1M (x)", True, 15.0),
    ("torch", "decode_gbps", "decode 1M\n(GB/s)", True, 2.5),
]


def merge(inputs: list[Path], out: Path) -> None:
    """The median of every numeric figure over several --json results (per section and key)."""
    runs = [json.loads(p.read_text()) for p in inputs]
    merged: dict[str, Any] = {"runs": len(runs)}
    for section in BENCHES:
        values: dict[str, list[float]] = {}
        for run in runs:
            for key, value in run.get(section, {}).items():
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    values.setdefault(key, []).append(float(value))
        if values:
            merged[section] = {key: med(v) for key, v in values.items()}
            merged[section]["runs_" + section] = len(next(iter(values.values())))
    loads = [run[k] for run in runs for k in ("loadavg_start", "loadavg_end") if k in run]
    if loads:
        merged["loadavg_range"] = [min(loads), max(loads)]
    out.write_text(json.dumps(merged, indent=1))


def plot(before: dict[str, Any], after: dict[str, Any], path: Path) -> None:
    """One panel per target: before, after and the target line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(PLOTTED), figsize=(2.3 * len(PLOTTED), 3.2))
    for ax, (section, key, label, higher, target) in zip(axes, PLOTTED, strict=True):
        scale = 1e-3 if key == "batch_tokens_per_s" else 1.0
        values = [run.get(section, {}).get(key) for run in (before, after)]
        heights = [v * scale if v is not None else 0.0 for v in values]
        ax.bar(["before", "after"], heights, color=["#999999", "#3070b0"])
        ax.set_title(label, fontsize=8)
        ax.tick_params(labelsize=7)
        if target is None:
            continue
        ax.axhline(target * scale, color="#c03030", linestyle="--", linewidth=1)
        ax.text(
            1.02,
            target * scale,
            "target" + (" (min)" if higher else " (max)"),
            fontsize=6,
            color="#c03030",
            transform=ax.get_yaxis_transform(),
            va="center",
        )
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", choices=sorted(BENCHES), default=None)
    parser.add_argument("--skip", nargs="+", choices=sorted(BENCHES), default=[])
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument(
        "--plot",
        nargs=3,
        type=Path,
        metavar=("BEFORE", "AFTER", "PNG"),
        default=None,
        help="plot two --json results (each may merge several runs) instead of measuring",
    )
    parser.add_argument(
        "--merge",
        nargs="+",
        type=Path,
        metavar=("OUT", "IN"),
        default=None,
        help="write to OUT the median of every figure over the --json files IN ...",
    )
    args = parser.parse_args(argv)
    if args.merge:
        if len(args.merge) < 2:
            parser.error("--merge needs OUT and at least one IN")
        merge(args.merge[1:], args.merge[0])
        return 0
    if args.plot:
        before, after = (json.loads(p.read_text()) for p in args.plot[:2])
        plot(before, after, args.plot[2])
        return 0
    import slicer

    names = args.only or [name for name in BENCHES if name not in args.skip]
    results: dict[str, Any] = {"affinity": sorted(os.sched_getaffinity(0))}
    results["loadavg_start"] = os.getloadavg()[0]
    for name in names:
        results[name] = BENCHES[name](slicer, args.rounds)
        print(name, json.dumps(results[name], indent=1), flush=True)
    results["loadavg_end"] = os.getloadavg()[0]
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
