"""Frames (docs/format.md §17) on real SmolLM2 hidden states: speed, sizes, overheads.

    python bench/bench_frames.py            # ~1 min; writes bench/results/frames.json

1. The C ABI per frame, one thread pinned to one core (bench/bench_frames.cpp, compiled here
   against the library of the installed package's build folder, --lib), states 1 / 2 / 4.
2. The Python call overhead: FrameEncoder.encode / FrameDecoder.decode against the C figure
   (thread CPU time, like the C figure: immune to preemption on a shared machine).
3. Bytes per 576-float row: a frame (everything counted) against a full dense stream of the
   same row at the same step, and the framing overhead (frame − rANS − extra bits).
4. What the every-symbol floor of the frame table costs: the ideal code length of the frames
   under the floored table against the same table without the floor (rows whose symbols the
   calibration saw), and how many rows use a symbol the calibration never saw.

`--only-classes --classes 8 16 --lib-before OLD/libslicer.a`: the C ABI with 1, 8 and 16
classes only, this build against an earlier one, alternating runs (`--rounds`), medians.

Rows: bench/data/smollm2_l{5,15,25}.npy (384 tokens); the context is built from rows 0-63 (the
prompt's prefill, first token included), frames are rows 64-383.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import slicer

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

import reference_dense as rd  # noqa: E402
import reference_frames as rf  # noqa: E402

PREFILL = 64


def compile_bench(lib: Path, tag: str = "") -> Path:
    """bench/bench_frames.cpp linked against `lib`, in a file of this process (tag: which lib)."""
    exe = Path(tempfile.gettempdir()) / f"slicer_bench_frames_{os.getpid()}{tag}"
    subprocess.run(
        ["g++", "-O2", "-std=c++17", f"-I{HERE.parent / 'cpp' / 'include'}",
         str(HERE / "bench_frames.cpp"), str(lib), "-lpthread", "-o", str(exe)],
        check=True,
    )  # fmt: skip
    return exe


def run_bench(exe: Path, rows: np.ndarray, step: float, states: int, repeats: int,
              classes: int = 1) -> dict:  # fmt: skip
    data = Path(tempfile.gettempdir()) / f"slicer_bench_frames_{os.getpid()}.f32"
    rows.astype(np.float32).tofile(data)
    cmd = [str(exe), str(data), str(rows.shape[0]), str(rows.shape[1]), str(PREFILL),
           repr(step), str(repeats), str(states), str(classes)]  # fmt: skip
    if os.path.exists("/usr/bin/taskset"):
        cmd = ["taskset", "-c", "0", *cmd]
    out = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
    out["classes"] = classes
    return out


def c_bench(lib: Path, rows: np.ndarray, step: float, states: int, repeats: int,
            classes: int = 1) -> dict:  # fmt: skip
    return run_bench(compile_bench(lib), rows, step, states, repeats, classes)


def compare_libs(lib: Path, before: Path, classes: list[int], step: float, repeats: int,
                 rounds: int) -> list[dict]:  # fmt: skip
    """Per class count, the medians over `rounds` interleaved runs of two builds (this one and
    `before`): the machine's load weighs on both alike."""
    rows = np.load(HERE / "data" / "smollm2_l15.npy")
    exes = {"now": compile_bench(lib, "_now"), "before": compile_bench(before, "_before")}
    runs: dict = {(tag, k): [] for tag in exes for k in classes}
    for _ in range(rounds):
        for k in classes:
            for tag, exe in exes.items():
                runs[(tag, k)].append(run_bench(exe, rows, step, 2, repeats, k))
    out = []
    for (tag, k), rs in runs.items():
        row = {"build": tag, "classes": k, "rounds": rounds, "repeats": repeats,
               "context_bytes": rs[0]["context_bytes"],
               "mean_frame_bytes": rs[0]["mean_frame_bytes"]}  # fmt: skip
        for key in ("encode_us_median_cpu", "decode_us_median_cpu"):
            row[key] = float(np.median([r[key] for r in rs]))
        out.append(row)
    print("| build | classes | context | mean frame | encode µs | decode µs |")
    print("|---|---:|---:|---:|---:|---:|")
    for r in sorted(out, key=lambda r: (r["classes"], r["build"] != "before")):
        print(f"| {r['build']} | {r['classes']} | {r['context_bytes']} B | "
              f"{r['mean_frame_bytes']:.1f} B | {r['encode_us_median_cpu']:.2f} | "
              f"{r['decode_us_median_cpu']:.2f} |")  # fmt: skip
    return out


def python_overhead(rows: np.ndarray, step: float, states: int, repeats: int) -> dict:
    enc = slicer.FrameEncoder(rows[:PREFILL], step=step, states=states)
    dec = slicer.FrameDecoder(enc.context, check_sequence=False)
    tail = [np.ascontiguousarray(r) for r in rows[PREFILL:]]
    frames = [enc.encode(r) for r in tail]
    e_times, d_times = [], []
    for _ in range(repeats):
        t0 = time.thread_time()
        for r in tail:
            enc.encode(r)
        e_times.append((time.thread_time() - t0) / len(tail))
        t0 = time.thread_time()
        for f in frames:
            dec.decode(f)
        d_times.append((time.thread_time() - t0) / len(tail))
    return {"encode_us_median": 1e6 * float(np.median(e_times)),
            "decode_us_median": 1e6 * float(np.median(d_times))}  # fmt: skip


def sizes(rows: np.ndarray, step: float, states: int) -> dict:
    enc = slicer.FrameEncoder(rows[:PREFILL], step=step, states=states)
    ref = rf.parse_context(enc.context)
    frames = [enc.encode(r) for r in rows[PREFILL:]]
    overhead = []
    for f in frames:
        bits_len, pos = 0, 1
        while True:
            bits_len |= (f[pos] & 0x7F) << (7 * (pos - 1))
            pos += 1
            if not f[pos - 1] & 0x80:
                break
        overhead.append(1 + (pos - 1) + 4)
    full = [len(slicer.encode(r, mode="dense", step=step)) for r in rows[PREFILL:]]
    # the floor: ideal code lengths under the floored table and the same counts unfloored
    flat = rows[:PREFILL].astype(np.float64).reshape(-1)
    _, _, _, sy_cal, _, _ = rf._codes(flat, enc.step, 128)
    hist = np.bincount(sy_cal, minlength=rd.NUM_SYMBOLS)
    f_floor = np.asarray(ref.model()[0], dtype=np.float64)
    seen = hist > 0
    classes = [rd.count_class(int(n)) if n else 0 for n in hist]
    f_plain = np.asarray(rd.normalize([rd.class_count(v) for v in classes]), dtype=np.float64)
    floor_bits, plain_bits, unseen_rows = [], [], 0
    for r in rows[PREFILL:]:
        _, _, _, sy, _, _ = rf._codes(r.astype(np.float64), enc.step, 128)
        if not np.all(seen[sy]):
            unseen_rows += 1
            continue
        floor_bits.append(float(np.sum(14 - np.log2(f_floor[sy]))))
        plain_bits.append(float(np.sum(14 - np.log2(f_plain[sy]))))
    return {
        "step": enc.step,
        "states": states,
        "context_bytes": len(enc.context),
        "mean_frame_bytes": float(np.mean([len(f) for f in frames])),
        "max_frame_bytes": max(len(f) for f in frames),
        "mean_overhead_bytes": float(np.mean(overhead)),
        "max_overhead_bytes": max(overhead),
        "mean_full_stream_bytes": float(np.mean(full)),
        "floor_cost_bytes_per_frame": (float(np.mean(floor_bits)) - float(np.mean(plain_bits))) / 8
        if floor_bits
        else math.nan,
        "rows_with_unseen_symbols": unseen_rows,
        "frames": len(frames),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--lib", default=str(HERE.parent / "build" / "frames" / "cpp" / "libslicer.a"))
    p.add_argument("--steps", type=float, nargs="+", default=[0.5, 1.0, 2.0])
    p.add_argument("--repeats", type=int, default=50)
    p.add_argument("--speed-step", type=float, default=2.5, help="step of the timed frames")
    p.add_argument("--json", default=str(HERE / "results" / "frames.json"))
    p.add_argument("--classes", type=int, nargs="+", default=[],
                   help="also time K = 2 states with a class map of each size (§18)")  # fmt: skip
    p.add_argument(
        "--only-classes",
        action="store_true",
        help="time only the --classes contexts (skip sizes and states 1 / 2 / 4)",
    )
    p.add_argument("--lib-before", default=None,
                   help="with --only-classes: an earlier build's libslicer.a, timed interleaved "
                   "with --lib")  # fmt: skip
    p.add_argument("--rounds", type=int, default=7, help="interleaved rounds of --lib-before")
    args = p.parse_args(argv)
    out: dict = {"sizes": [], "speed_c": [], "speed_python": []}
    if args.only_classes and args.lib_before:
        out["compare"] = compare_libs(Path(args.lib), Path(args.lib_before), [1, *args.classes],
                                      args.speed_step, args.repeats, args.rounds)  # fmt: skip
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(out, indent=1) + "\n")
        return 0
    if args.only_classes:
        rows = np.load(HERE / "data" / "smollm2_l15.npy")
        for k in [1, *args.classes]:
            c = c_bench(Path(args.lib), rows, args.speed_step, 2, args.repeats, k)
            print(json.dumps(c))
            out["speed_c"].append(c)
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(out, indent=1) + "\n")
        return 0
    for layer in (5, 15, 25):
        rows = np.load(HERE / "data" / f"smollm2_l{layer}.npy")
        for step in args.steps:
            for states in (1, 2, 4):
                s = sizes(rows, step, states)
                s["layer"] = layer
                out["sizes"].append(s)
                print(json.dumps(s))
    rows = np.load(HERE / "data" / "smollm2_l15.npy")
    for states in (1, 2, 4):
        c = c_bench(Path(args.lib), rows, args.speed_step, states, args.repeats)
        py = python_overhead(rows, args.speed_step, states, max(5, args.repeats // 5))
        c["layer"] = py["layer"] = 15
        py["states"] = states
        py["encode_overhead_us"] = py["encode_us_median"] - c["encode_us_median_cpu"]
        py["decode_overhead_us"] = py["decode_us_median"] - c["decode_us_median_cpu"]
        out["speed_c"].append(c)
        out["speed_python"].append(py)
        print(json.dumps(c))
        print(json.dumps(py))
    for k in args.classes:
        c = c_bench(Path(args.lib), rows, args.speed_step, 2, args.repeats, k)
        out["speed_c"].append(c)
        print(json.dumps(c))
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(out, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
