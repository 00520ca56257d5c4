"""The default chunk size of modes 1 and 2 (docs/format.md §15.1) against 2**14, by input size.

    g++ -O2 -std=c++17 -Icpp/include bench/bench_dense_cpp.cpp <build>/cpp/libslicer.a -lpthread \\
        -o /tmp/bench_dense
    python bench/chunk_auto.py /tmp/bench_dense [--rounds 5] [--steps 1,0.25] [--out table.md]

Inputs: real activations of bench/data (EfficientNet-Lite0 after blocks 10 and 4 as they are,
SmolLM2 layer 15 tiled to the other sizes; bench/activations.py and activations_extra.py write
them). For each size whose §15.1 choice is not 14, each round runs the C harness (one thread, CPU
time of the calling thread, pinned to the last core when `taskset` exists) for decode and
encode at chunk_log2 = 14 and at the choice, one after the other, so that the machine's load
falls on both alike. Prints a Markdown table: bits per element of both streams, and per
operation the median over rounds of each run's median milliseconds, with the speed-up.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from slicer import _core

DATA = Path(__file__).resolve().parent / "data"
TILED = (16384, 20000, 36000, 40000, 50000, 65536, 131072, 250000)


def workloads() -> list[tuple[str, np.ndarray]]:
    out = []
    for name in ("effnet_b10", "effnet_b4"):
        path = DATA / f"{name}.npy"
        if path.exists():
            out.append((name, np.load(path).reshape(-1).astype(np.float32)))
    llm = np.load(DATA / "smollm2_l15.npy").reshape(-1)
    out += [("smollm2_l15 tiled", np.resize(llm, n).astype(np.float32)) for n in TILED]
    return out


def run(binary: str, path: str, op: str, step: str, reps: int, chunk_log2: int):
    env = dict(os.environ, SLICER_BENCH_CHUNK_LOG2=str(chunk_log2))
    cmd = [binary, path, op, step, str(reps), "1"]
    if shutil.which("taskset"):
        cmd = ["taskset", "-c", str(os.cpu_count() - 1), *cmd]
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True).stdout.split()
    fields = dict(zip(out[1::2], out[2::2], strict=False))  # "decode classes 1 bits/el …"
    return float(fields["bits/el"]), float(fields["median_ms"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bench", help="bench/bench_dense_cpp.cpp built against the library")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", default="1,0.25")
    parser.add_argument("--out", default=None, help="also write the table here")
    args = parser.parse_args(argv)
    lines = [
        "| input | elements | chunk_log2 14 → | step | bits/el 14 / choice | "
        "decode ms 14 → choice | decode speed-up | encode ms 14 → choice | encode speed-up |",
        "|---|---:|---:|---:|---|---|---:|---|---:|",
    ]
    with tempfile.TemporaryDirectory() as tmp:
        for name, x in workloads():
            n = x.size
            choice = int(_core.dense_auto_chunk_log2(n))
            if choice == 14:
                lines.append(f"| {name} | {n:,} | 14 (unchanged) | | | | | | |")
                print(lines[-1], flush=True)
                continue
            path = os.path.join(tmp, f"{n}.f32")
            x.tofile(path)
            reps = max(50, int(4e6 / n))
            for step in args.steps.split(","):
                ms = {(op, c): [] for op in ("decode", "encode") for c in (14, choice)}
                bits = {}
                for _ in range(args.rounds):
                    for op in ("decode", "encode"):
                        for c in (14, choice):
                            b, t = run(args.bench, path, op, step, reps, c)
                            bits[c] = b
                            ms[(op, c)].append(t)
                med = {k: statistics.median(v) for k, v in ms.items()}
                d0, d1 = med[("decode", 14)], med[("decode", choice)]
                e0, e1 = med[("encode", 14)], med[("encode", choice)]
                lines.append(
                    f"| {name} | {n:,} | {choice} | {step} | {bits[14]:.3f} / {bits[choice]:.3f} "
                    f"({(bits[choice] / bits[14] - 1) * 100:+.2f} %) | {d0:.4f} → {d1:.4f} | "
                    f"{d0 / d1:.2f}x | {e0:.4f} → {e1:.4f} | {e0 / e1:.2f}x |"
                )
                print(lines[-1], flush=True)
    table = "\n".join(lines)
    print()
    print(table)
    if args.out:
        Path(args.out).write_text(table + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
