"""Encode / decode throughput of the SLICER codec against plain NumPy and plain PyTorch.

    python bench/bench_codec.py                 # full grid (N up to 16M), a few minutes
    python bench/bench_codec.py --quick         # N <= 1M, fewer repeats
    python bench/bench_codec.py --json out.json

Input: float32 N(0, 1), seed 0. For every N in {576, 4096, 1M, 16M} and s in {0.5, 0.9, 0.99}
it times, in this process and on the same array:
- SLICER encode / decode with threads=1 and with all threads (threads=0), blocks=3, bits=8,
  delta=0 (fixed 8 bits: the same job as the baselines; the ABQ default delta=0.01 is timed
  separately at the target point);
- the plain NumPy baseline (argpartition top-k + sign split + 3 blocks/sign + 8-bit min/max
  quantize; NumPy runs these on one thread) and the plain PyTorch CPU baseline (torch.topk +
  the same), with torch.set_num_threads(1) and with all threads.

Each figure is the median of `--repeats` timed batches (time.perf_counter); a batch runs the
call often enough to last >= 2 ms so that small N is not timer noise. Encode GB/s counts the
input bytes (4 N), decode GB/s the output bytes (4 N).

Targets (issue 2): at N = 1M, s = 0.9, encode >= 15x the plain PyTorch baseline and
>= 1 GB/s of input per core; decode >= 2 GB/s of output per core.
"""

from __future__ import annotations

import os

# Nothing timed here uses BLAS; keep OpenBLAS's worker threads from spinning on the cores the
# codec and the PyTorch baseline are measured on (set before NumPy loads OpenBLAS).
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse
import json
import platform
import statistics
import sys
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import baselines

SIZES_FULL = (576, 4096, 1 << 20, 1 << 24)
SIZES_QUICK = (576, 4096, 1 << 20)
SPARSITIES = (0.5, 0.9, 0.99)
TARGET_N, TARGET_S = 1 << 20, 0.9
ENCODE_VS_TORCH = 15.0
ENCODE_GBPS_PER_CORE = 1.0
DECODE_GBPS_PER_CORE = 2.0
MIN_BATCH_S = 2e-3
# The codec's parameters for the timed runs: the baselines' job (3 blocks/sign, 8 bits, fixed).
CODEC_PARAMS: dict[str, Any] = {"blocks": 3, "bits": 8, "delta": 0.0}


def time_samples(fn: Callable[[], object], repeats: int) -> list[tuple[float, float]]:
    """(wall, process CPU) seconds per call of `repeats` batches (each >= MIN_BATCH_S).

    CPU time sums every thread of the process; for a one-thread call it leaves out the time
    spent waiting for a core that another tenant of the machine held.
    """
    fn()  # warm-up: first-touch allocations, lazy imports, thread pool start
    t0 = time.perf_counter()
    fn()
    one = time.perf_counter() - t0
    number = max(1, int(MIN_BATCH_S / max(one, 1e-9)))
    samples = []
    for _ in range(repeats):
        c0, t0 = time.process_time(), time.perf_counter()
        for _ in range(number):
            fn()
        samples.append(((time.perf_counter() - t0) / number, (time.process_time() - c0) / number))
    return samples


def time_call(fn: Callable[[], object], repeats: int) -> tuple[float, float]:
    """Median wall and median CPU seconds per call."""
    samples = time_samples(fn, repeats)
    return statistics.median(w for w, _ in samples), statistics.median(c for _, c in samples)


def gbps(n: int, seconds: float) -> float:
    return 4.0 * n / seconds / 1e9


def check_roundtrip(slicer: Any, x: np.ndarray, stream: bytes, sparsity: float) -> None:
    """The timed codec must do the real job: exactly k nonzeros, the k largest magnitudes."""
    y = slicer.decode(stream)
    k = min(baselines.kept_count(x.size, sparsity), int(np.count_nonzero(x)))
    nz = np.flatnonzero(y)
    if nz.size != k:
        raise RuntimeError(f"decode kept {nz.size} values, expected k={k}")
    if k and k < x.size:
        tau = np.partition(np.abs(x), x.size - k)[x.size - k]
        if np.abs(x[nz]).min() < tau:
            raise RuntimeError("decode kept an element smaller than the k-th magnitude")


def bench_case(
    slicer: Any, torch: Any, x: np.ndarray, sparsity: float, threads: int, cores: int, repeats: int
) -> dict[str, Any]:
    n = x.size
    torch.set_num_threads(1 if threads == 1 else cores)
    xt = torch.from_numpy(x)
    stream = slicer.encode(x, sparsity=sparsity, threads=threads, **CODEC_PARAMS)
    check_roundtrip(slicer, x, stream, sparsity)
    enc_np = baselines.numpy_encode(x, sparsity)
    enc_t = baselines.torch_encode(xt, sparsity)
    timed = {
        "slicer_encode": time_call(
            lambda: slicer.encode(x, sparsity=sparsity, threads=threads, **CODEC_PARAMS), repeats
        ),
        "slicer_decode": time_call(lambda: slicer.decode(stream, threads=threads), repeats),
        "numpy_encode": time_call(lambda: baselines.numpy_encode(x, sparsity), repeats),
        "numpy_decode": time_call(lambda: baselines.numpy_decode(enc_np), repeats),
        "torch_encode": time_call(lambda: baselines.torch_encode(xt, sparsity), repeats),
        "torch_decode": time_call(lambda: baselines.torch_decode(enc_t), repeats),
    }
    t = {key: wall for key, (wall, _) in timed.items()}
    cpu = {key: c for key, (_, c) in timed.items()}
    return {
        "n": n,
        "sparsity": sparsity,
        "threads": threads if threads else cores,
        "all_threads": threads == 0,
        "bits_per_element": 8.0 * len(stream) / n,
        "baseline_bits_per_element": 8.0 * enc_np.nbytes() / n,
        "seconds": t,
        "cpu_seconds": cpu,
        "gbps": {key: gbps(n, sec) for key, sec in t.items()},
        # bytes per CPU-second of all threads together: throughput per core actually used
        "cpu_gbps_per_core": {key: gbps(n, sec) for key, sec in cpu.items()},
        "encode_vs_torch": t["torch_encode"] / t["slicer_encode"],
        "encode_vs_numpy": t["numpy_encode"] / t["slicer_encode"],
        "decode_vs_torch": t["torch_decode"] / t["slicer_decode"],
        "decode_vs_numpy": t["numpy_decode"] / t["slicer_decode"],
    }


def size_name(n: int) -> str:
    if n >= 1 << 20 and n % (1 << 20) == 0:
        return f"{n >> 20}M"
    return str(n)


COLUMNS = (
    "N",
    "s",
    "threads",
    "bpe",
    "base bpe",
    "enc GB/s",
    "dec GB/s",
    "enc GB/s/core CPU",
    "dec GB/s/core CPU",
    "np enc",
    "pt enc",
    "np dec",
    "pt dec",
    "enc vs pt",
    "enc vs np",
    "dec vs pt",
    "dec vs np",
)


def print_table(rows: list[dict[str, Any]]) -> None:
    """A Markdown table, so that it can be pasted into bench/RESULTS.md as printed."""
    print("| " + " | ".join(COLUMNS) + " |")
    print("|" + "---:|" * len(COLUMNS))
    for r in rows:
        g = r["gbps"]
        per_core = r["cpu_gbps_per_core"]
        cells = [
            size_name(r["n"]),
            f"{r['sparsity']:g}",
            f"{r['threads']}" + (" (all)" if r["all_threads"] else ""),
            f"{r['bits_per_element']:.2f}",
            f"{r['baseline_bits_per_element']:.2f}",
            *(f"{g[key]:.3f}" for key in ("slicer_encode", "slicer_decode")),
            *(f"{per_core[key]:.3f}" for key in ("slicer_encode", "slicer_decode")),
            *(
                f"{g[key]:.3f}"
                for key in (
                    "numpy_encode",
                    "torch_encode",
                    "numpy_decode",
                    "torch_decode",
                )
            ),
            *(
                f"{r[key]:.1f}x"
                for key in (
                    "encode_vs_torch",
                    "encode_vs_numpy",
                    "decode_vs_torch",
                    "decode_vs_numpy",
                )
            ),
        ]
        print("| " + " | ".join(cells) + " |")


def verdict(target: str, setting: str, value: float, goal: float, unit: str) -> dict:
    return {
        "target": target,
        "setting": setting,
        "value": value,
        "goal": goal,
        "unit": unit,
        "met": value >= goal,
    }


def evaluate_targets(
    rows: list[dict[str, Any]], abq: dict[str, Any] | None, detail: dict[str, Any] | None
) -> list[dict]:
    """Each target with the measured value at the target point, per measurement."""
    verdicts = []
    for r in rows:
        if r["n"] != TARGET_N or r["sparsity"] != TARGET_S:
            continue
        cores = r["threads"]
        label = f"grid, threads={cores}" + (" (all)" if r["all_threads"] else "")
        verdicts += [
            verdict("encode / plain PyTorch", label, r["encode_vs_torch"], ENCODE_VS_TORCH, "x"),
            verdict(
                "encode GB/s per core (CPU time)",
                label,
                r["cpu_gbps_per_core"]["slicer_encode"],
                ENCODE_GBPS_PER_CORE,
                "GB/s",
            ),
            verdict(
                "decode GB/s per core (CPU time)",
                label,
                r["cpu_gbps_per_core"]["slicer_decode"],
                DECODE_GBPS_PER_CORE,
                "GB/s",
            ),
            verdict(
                "encode GB/s per core (wall / threads)",
                label,
                r["gbps"]["slicer_encode"] / cores,
                ENCODE_GBPS_PER_CORE,
                "GB/s",
            ),
        ]
    if detail is not None:
        calls = detail["calls"]
        verdicts += [
            verdict(
                "encode / plain PyTorch",
                "interleaved, wall",
                detail["encode_vs_torch_median_ratio"],
                ENCODE_VS_TORCH,
                "x",
            ),
            verdict(
                "encode / plain PyTorch",
                "interleaved, CPU",
                detail["encode_vs_torch_cpu_ratio"],
                ENCODE_VS_TORCH,
                "x",
            ),
            verdict(
                "encode GB/s per core",
                "interleaved, CPU",
                calls["slicer_encode"]["cpu_gbps"],
                ENCODE_GBPS_PER_CORE,
                "GB/s",
            ),
            verdict(
                "decode GB/s per core",
                "interleaved, CPU",
                calls["slicer_decode"]["cpu_gbps"],
                DECODE_GBPS_PER_CORE,
                "GB/s",
            ),
        ]
    if abq is not None:
        verdicts.append(
            verdict(
                "encode GB/s per core, ABQ delta=0.01",
                "grid, threads=1, CPU",
                abq["encode_cpu_gbps"],
                ENCODE_GBPS_PER_CORE,
                "GB/s",
            )
        )
    return verdicts


def target_detail(slicer: Any, torch: Any, rounds: int) -> dict[str, Any]:
    """The target point on one thread, measured so that a shared machine cannot bias it.

    The calls run interleaved, one of each per round, so that every round sees the same load
    for all of them; the speed-up is the median of the per-round ratios. Next to wall time it
    records process CPU time (time.process_time): for a one-thread call it leaves out the
    time the process waited for a core that another tenant held.
    """
    torch.set_num_threads(1)
    x = np.random.default_rng(0).standard_normal(TARGET_N, dtype=np.float32)
    xt = torch.from_numpy(x)
    stream = slicer.encode(x, sparsity=TARGET_S, threads=1, **CODEC_PARAMS)
    calls: dict[str, Callable[[], object]] = {
        "slicer_encode": lambda: slicer.encode(x, sparsity=TARGET_S, threads=1, **CODEC_PARAMS),
        "slicer_decode": lambda: slicer.decode(stream, threads=1),
        "numpy_encode": lambda: baselines.numpy_encode(x, TARGET_S),
        "torch_encode": lambda: baselines.torch_encode(xt, TARGET_S),
    }
    for fn in calls.values():
        fn()  # warm-up
    wall: dict[str, list[float]] = {name: [] for name in calls}
    cpu: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(rounds):
        for name, fn in calls.items():
            c0, t0 = time.process_time(), time.perf_counter()
            fn()
            wall[name].append(time.perf_counter() - t0)
            cpu[name].append(time.process_time() - c0)
    out: dict[str, Any] = {"rounds": rounds, "calls": {}}
    for name in calls:
        w, c = wall[name], cpu[name]
        out["calls"][name] = {
            "median_ms": 1e3 * statistics.median(w),
            "best_ms": 1e3 * min(w),
            "worst_ms": 1e3 * max(w),
            "cpu_median_ms": 1e3 * statistics.median(c),
            "median_gbps": gbps(TARGET_N, statistics.median(w)),
            "cpu_gbps": gbps(TARGET_N, statistics.median(c)),
        }
    ratios = [t / e for t, e in zip(wall["torch_encode"], wall["slicer_encode"], strict=True)]
    cpu_ratios = [t / e for t, e in zip(cpu["torch_encode"], cpu["slicer_encode"], strict=True)]
    out["encode_vs_torch_median_ratio"] = statistics.median(ratios)
    out["encode_vs_torch_cpu_ratio"] = statistics.median(cpu_ratios)
    return out


def print_detail(detail: dict[str, Any]) -> None:
    print(
        f"\nTarget point N={size_name(TARGET_N)}, s={TARGET_S}, one thread, "
        f"{detail['rounds']} interleaved rounds:\n"
    )
    print("| call | median ms | best ms | worst ms | CPU ms (median) | GB/s (wall) | GB/s (CPU) |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, d in detail["calls"].items():
        print(
            f"| {name} | {d['median_ms']:.2f} | {d['best_ms']:.2f} | {d['worst_ms']:.2f} | "
            f"{d['cpu_median_ms']:.2f} | {d['median_gbps']:.3f} | {d['cpu_gbps']:.3f} |"
        )
    print(
        "\nencode vs plain PyTorch, one thread, median of per-round ratios: "
        f"{detail['encode_vs_torch_median_ratio']:.1f}x (wall), "
        f"{detail['encode_vs_torch_cpu_ratio']:.1f}x (CPU time)"
    )


def print_targets(verdicts: list[dict]) -> None:
    print(f"\nTargets at N={size_name(TARGET_N)}, s={TARGET_S}:")
    for v in verdicts:
        mark = "MET" if v["met"] else "NOT MET"
        print(
            f"  {v['target']:38s} {v['setting']:26s} {v['value']:8.3f} {v['unit']:4s} "
            f"(goal >= {v['goal']:g})  {mark}"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="N <= 1M and 3 repeats")
    parser.add_argument("--repeats", type=int, default=None, help="timed batches per figure")
    parser.add_argument("--sizes", type=int, nargs="+", default=None, help="override N")
    parser.add_argument("--json", type=Path, default=None, help="write all results here")
    parser.add_argument(
        "--target-rounds", type=int, default=31, help="interleaved rounds at the target point"
    )
    args = parser.parse_args(argv)
    repeats = args.repeats if args.repeats is not None else (3 if args.quick else 5)
    if repeats < 1:
        parser.error("--repeats must be >= 1")
    sizes = tuple(args.sizes) if args.sizes else (SIZES_QUICK if args.quick else SIZES_FULL)
    if any(n < 1 for n in sizes):
        parser.error("--sizes must be positive")

    import torch

    import slicer

    cores = os.cpu_count() or 1
    load_before = os.getloadavg()
    rows = []
    rng = np.random.default_rng(0)
    for n in sizes:
        x = rng.standard_normal(n, dtype=np.float32)
        for sparsity in SPARSITIES:
            for threads in (1, 0):
                rows.append(bench_case(slicer, torch, x, sparsity, threads, cores, repeats))
                print(
                    f"  done N={size_name(n)} s={sparsity} threads={threads or 'all'}",
                    file=sys.stderr,
                    flush=True,
                )
    abq = None
    if TARGET_N in sizes:
        x = np.random.default_rng(0).standard_normal(TARGET_N, dtype=np.float32)
        params = {**CODEC_PARAMS, "delta": 0.01}
        sec, cpu_sec = time_call(
            lambda: slicer.encode(x, sparsity=TARGET_S, threads=1, **params), repeats
        )
        abq = {
            "n": TARGET_N,
            "sparsity": TARGET_S,
            "delta": 0.01,
            "threads": 1,
            "encode_seconds": sec,
            "encode_gbps": gbps(TARGET_N, sec),
            "encode_cpu_gbps": gbps(TARGET_N, cpu_sec),
        }

    detail = None
    if TARGET_N in sizes:
        detail = target_detail(slicer, torch, max(args.target_rounds, 1))

    machine = {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": cores,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "torch": torch.__version__,
        "slicer": slicer.__version__,
        "date_utc": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "loadavg_1m_before_after": [load_before[0], os.getloadavg()[0]],
    }
    print(
        f"\nSLICER {slicer.__version__}, NumPy {np.__version__}, PyTorch {torch.__version__}, "
        f"{cores} cores, {machine['platform']}, {machine['date_utc']}; 1-minute load average "
        f"{load_before[0]:.2f} before, {os.getloadavg()[0]:.2f} after"
    )
    print(
        "GB/s: encode = input bytes / s, decode = output bytes / s; median of "
        f"{repeats} batches. bpe = SLICER stream bits per element; base bpe = the baselines' "
        "arrays (int32 index + uint8 code per kept value)."
    )
    print(
        "GB/s/core CPU = bytes per CPU-second of all the process's threads (what one core "
        "delivers, without the time spent waiting for a core). np / pt = plain NumPy / plain "
        "PyTorch baseline (GB/s); enc vs pt = SLICER encode speed-up over the PyTorch baseline "
        "at the same thread count (wall).\n"
    )
    print_table(rows)
    if abq is not None:
        print(
            f"\nABQ (delta=0.01) encode, N={size_name(TARGET_N)}, s={TARGET_S}, threads=1: "
            f"{abq['encode_gbps']:.3f} GB/s wall ({abq['encode_seconds'] * 1e3:.2f} ms), "
            f"{abq['encode_cpu_gbps']:.3f} GB/s of CPU time"
        )
    if detail is not None:
        print_detail(detail)
    verdicts = evaluate_targets(rows, abq, detail)
    if verdicts:
        print_targets(verdicts)
    if args.json:
        payload = {
            "machine": machine,
            "params": CODEC_PARAMS,
            "repeats": repeats,
            "rows": rows,
            "abq": abq,
            "target_detail": detail,
            "targets": verdicts,
        }
        args.json.write_text(json.dumps(payload, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
