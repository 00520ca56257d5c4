"""Interleaved A/B runs of bench/bench_dense_cpp.cpp built against two libraries.

    python bench/bench_dense_ab.py OLD_BENCH NEW_BENCH [--rounds 5] [--reps 30] [--data /tmp/x.f32]
        [--steps 4,1,0.0625] [--classes 1,8] [--low-bits auto] [--old-low-bits auto] [--plain]
        [--elements N]

OLD_BENCH / NEW_BENCH: the harness linked against the library before and after a change (see
the build lines at the top of bench_dense_cpp.cpp). Each round runs, for mode 1 and mode 2
(8 classes) at the steps 4, 1 and 1/16 (about 2, 4 and 8 bits per element on SmolLM2 layer 15)
and for encode and decode: the old harness, the new one, and the new one with
SLICER_DENSE_SIMD=0 (its scalar paths), one after the other, so that a shared machine's load
falls on all three alike. Prints a Markdown table: per cell the median over rounds of each run's
median CPU time of the calling thread, and the fastest call seen (the least disturbed one).
--low-bits K (or auto) sets SLICER_BENCH_LOW_BITS for the new harness's runs (mode 1's low-bit
plane, docs/format.md §13.6; mode 2 has none): the bits/el column then shows both streams.
--old-low-bits K does the same for the old harness's runs (the plane's encode before / after a
change), and --plain adds a fourth run per round, the new harness without the plane, with the
columns "after without the plane" and "with / without" (the plane's cost in the same rounds).
--elements: the number of floats in --data (mode 1's GB/s; default 2^20).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys

STEPS = ("4", "1", "0.0625")


def run(
    binary: str,
    data: str,
    op: str,
    step: str,
    reps: int,
    classes: str,
    scalar: bool,
    low_bits: str | None = None,
):
    env = dict(os.environ)
    if scalar:
        env["SLICER_DENSE_SIMD"] = "0"
    else:
        env.pop("SLICER_DENSE_SIMD", None)
    env.pop("SLICER_BENCH_LOW_BITS", None)
    if low_bits is not None:
        env["SLICER_BENCH_LOW_BITS"] = low_bits
    out = subprocess.run(
        [binary, data, op, step, str(reps), classes], capture_output=True, text=True, env=env,
        check=True,
    ).stdout.split()  # fmt: skip
    fields = dict(zip(out[1::2], out[2::2], strict=False))  # "decode classes 1 bits/el …"
    return float(fields["bits/el"]), float(fields["median_ms"]), float(fields["min_ms"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("old")
    parser.add_argument("new")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--reps", type=int, default=30)
    parser.add_argument("--data", default="/tmp/x.f32")
    parser.add_argument("--steps", default=",".join(STEPS))
    parser.add_argument("--classes", default="1,8")
    parser.add_argument("--low-bits", default=None)
    parser.add_argument("--old-low-bits", default=None)
    parser.add_argument("--plain", action="store_true")
    parser.add_argument("--elements", type=int, default=1 << 20, help="mode 1's input size")
    args = parser.parse_args(argv)
    configs = [("old", args.old, False), ("new", args.new, False), ("scalar", args.new, True)]
    if args.plain:
        configs.append(("plain", args.new, False))
    cells: dict[tuple[str, str, str], dict[str, list[tuple[float, float]]]] = {}
    bits: dict[tuple[str, str, str], dict[str, float]] = {}
    for _ in range(args.rounds):
        for classes in args.classes.split(","):
            for step in args.steps.split(","):
                for op in ("enc", "dec"):
                    key = (classes, step, op)
                    for name, binary, scalar in configs:
                        low_bits = {"old": args.old_low_bits, "plain": None}.get(
                            name, args.low_bits
                        )
                        b, med, low = run(
                            binary, args.data, op, step, args.reps, classes, scalar, low_bits
                        )
                        bits.setdefault(key, {})[name] = b
                        cells.setdefault(key, {}).setdefault(name, []).append((med, low))
    elements = {"1": args.elements, "8": 1820 * 576}
    extra = " after without the plane ms | with / without (medians; fastest) |"
    extra = extra if args.plain else ""
    print(
        "| mode | op | bits/el | before ms | after ms | after GB/s | speed-up | before / after "
        "fastest ms | after GB/s fastest | after, scalar forced ms |" + extra
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|" + ("---:|---:|" * args.plain))
    for (classes, step, op), runs in cells.items():
        med = {k: statistics.median(m for m, _ in v) for k, v in runs.items()}
        low = {k: min(lo for _, lo in v) for k, v in runs.items()}
        nbytes = 4 * elements[classes]
        mode = "1" if classes == "1" else "2 (8 classes)"
        b = bits[(classes, step, op)]
        shown = f"{b['new']:.2f}" if b["old"] == b["new"] else f"{b['old']:.3f} / {b['new']:.3f}"
        ms = {k: f"{v:.3f}" if v < 1 else f"{v:.2f}" for k, v in med.items()}
        lo = {k: f"{v:.3f}" if v < 1 else f"{v:.2f}" for k, v in low.items()}
        print(
            f"| {mode} | {'encode' if op == 'enc' else 'decode'} | {shown} "
            f"| {ms['old']} | {ms['new']} | {nbytes / med['new'] / 1e6:.2f} "
            f"| {med['old'] / med['new']:.2f}x | {lo['old']} / {lo['new']} "
            f"| {nbytes / low['new'] / 1e6:.2f} | {ms['scalar']} |"
            + (
                f" {ms['plain']} | {med['new'] / med['plain']:.2f}x; "
                f"{low['new'] / low['plain']:.2f}x |"
                if args.plain
                else ""
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
