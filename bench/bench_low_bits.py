"""Mode 1's low-bit plane (docs/format.md §13.6): what it costs in bytes on every workload of
bench/data, and what it saves in decode time, at the rates of issue 7's targets.

    python bench/bench_low_bits.py [--rates 4,6,7,8] [--reps 15] [--plot bench/plots/x.png]

Per workload (the array as stored, one group per tensor, float32) and rate B: the step of
``mode="dense", max_bytes=B·N/8`` (the budget driver's choice), then the stream at that step
without the plane and with ``low_bits="auto"`` (the width §13.6's rule picks) and with each width
k = 1 … 7: real stream bytes, everything counted. Decode: ``slicer.decode(threads=1)`` of both
streams, alternated, CPU time of the calling thread (time.thread_time), median and fastest of
`reps` calls each (through Python: the C ABI numbers are bench/bench_dense_ab.py's); encode the
same way (``slicer.encode(threads=1)`` at that step without and with ``low_bits="auto"``).

    python bench/bench_low_bits.py --digests FILE [--rates 4,6,7,8]

writes instead one line per stream (workload, rate, variant, low_bits, length, SHA-256) for
``low_bits`` 0, "auto", 1, 5, 15 at each rate's step and for several variants of the input and
parameters (float32; float16 clipped to its range; float64; chunks of 1024 and 16384;
table_kind "auto"; groups "rows" with weights and two all-zero rows): run before and after an
encoder change that must not change the bytes and compare the files (bench/RESULTS.md §9.23).
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np

import slicer

DATA = Path(__file__).resolve().parent / "data"


def encode_ms(x: np.ndarray, reps: int, **kw) -> list[float]:
    out = []
    for _ in range(reps):
        t0 = time.thread_time()
        slicer.encode(x, threads=1, **kw)
        out.append((time.thread_time() - t0) * 1e3)
    return out


def decode_ms(stream: bytes, reps: int) -> list[float]:
    out = []
    for _ in range(reps):
        t0 = time.thread_time()
        slicer.decode(stream, threads=1)
        out.append((time.thread_time() - t0) * 1e3)
    return out


LOW_BITS = (0, "auto", 1, 5, 15)


def variants(x: np.ndarray) -> list[tuple[str, np.ndarray, dict]]:
    """(name, array, extra encode parameters) of the digest run."""
    rows = x.reshape(-1, x.shape[-1]).copy()
    rows[[0, len(rows) // 2]] = 0.0  # two zero groups
    weights = np.linspace(0.5, 2.0, len(rows))
    return [
        ("f32", x, {}),
        ("f32_chunk1024", x, {"chunk_size": 1024}),
        ("f32_kind_auto", x, {"table_kind": "auto"}),
        ("f16", np.clip(x, -65504, 65504).astype(np.float16), {}),
        ("f64", x.astype(np.float64), {}),
        ("f32_rows_weights", rows, {"groups": "rows", "weights": weights}),
    ]


def digests(rates: list[float], path: str) -> int:
    import hashlib

    lines = []
    for src in sorted(DATA.glob("*.npy")):
        x = np.ascontiguousarray(np.load(src).astype(np.float32))
        for rate in rates:
            budget = int(rate * x.size / 8)
            found = slicer.inspect(slicer.encode(x, mode="dense", max_bytes=budget))
            for name, arr, extra in variants(x):
                kw = dict(mode="dense", step=found.step, rho=found.rho, **extra)
                for low in LOW_BITS:
                    s = slicer.encode(arr, low_bits=low, **kw)
                    k = slicer.inspect(s).low_bits
                    digest = hashlib.sha256(s).hexdigest()
                    lines.append(f"{src.stem} {rate:g} {name} {low} k={k} {len(s)} {digest}")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    print(f"{len(lines)} streams -> {path}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rates", default="4,6,7,8")
    parser.add_argument("--reps", type=int, default=15)
    parser.add_argument("--plot", default=None)
    parser.add_argument("--digests", default=None)
    args = parser.parse_args(argv)
    rates = [float(r) for r in args.rates.split(",")]
    if args.digests:
        return digests(rates, args.digests)
    rows = []
    print(
        "| workload | target b/el | b/el without | k (auto) | b/el with | size change | "
        "k = 1 … 7 size change | decode ms without / with (median; fastest) | "
        "encode ms without / with (median; fastest) |"
    )
    print("|---|---:|---:|---:|---:|---:|---|---|---|")
    for path in sorted(DATA.glob("*.npy")):
        x = np.ascontiguousarray(np.load(path).astype(np.float32))
        for rate in rates:
            budget = int(rate * x.size / 8)
            found = slicer.inspect(slicer.encode(x, mode="dense", max_bytes=budget))
            kw = dict(mode="dense", step=found.step, rho=found.rho)
            plain = slicer.encode(x, **kw)
            auto = slicer.encode(x, low_bits="auto", **kw)
            k = slicer.inspect(auto).low_bits
            fixed = [len(slicer.encode(x, low_bits=w, **kw)) for w in range(1, 8)]
            assert slicer.decode(auto).tobytes() == slicer.decode(plain).tobytes()
            t_plain, t_auto, e_plain, e_auto = [], [], [], []
            for _ in range(3):  # alternated, so that the load falls on both
                t_plain += decode_ms(plain, args.reps // 3)
                t_auto += decode_ms(auto, args.reps // 3)
                e_plain += encode_ms(x, args.reps // 3, **kw)
                e_auto += encode_ms(x, args.reps // 3, low_bits="auto", **kw)
            change = 100.0 * (len(auto) - len(plain)) / len(plain)
            bits = 8 * len(plain) / x.size
            rows.append((path.stem, rate, bits, k, change, fixed, len(plain)))
            print(
                f"| {path.stem} | {rate:g} | {bits:.3f} | {k} | {8 * len(auto) / x.size:.3f} "
                f"| {change:+.2f} % | "
                + ", ".join(f"{100.0 * (f - len(plain)) / len(plain):+.1f}" for f in fixed)
                + f" | {statistics.median(t_plain):.2f} / {statistics.median(t_auto):.2f}; "
                f"{min(t_plain):.2f} / {min(t_auto):.2f} "
                f"| {statistics.median(e_plain):.2f} / {statistics.median(e_auto):.2f}; "
                f"{min(e_plain):.2f} / {min(e_auto):.2f} |"
            )
    if args.plot:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, (ax, bx) = plt.subplots(1, 2, figsize=(11, 4))
        for name in sorted({r[0] for r in rows}):
            sel = [r for r in rows if r[0] == name]
            ax.plot([r[2] for r in sel], [r[4] for r in sel], "o-", label=name)
            for r in sel:
                ax.annotate(f"k={r[3]}", (r[2], r[4]), fontsize=7)
            at8 = min(sel, key=lambda r: abs(r[1] - 8))
            bx.plot(range(1, 8), [100.0 * (f - at8[6]) / at8[6] for f in at8[5]], "o-", label=name)
        ax.axhline(0.5, color="grey", lw=0.8, ls="--")
        ax.set_xlabel("bits per element without the plane")
        ax.set_ylabel('size change with low_bits="auto" (%)')
        ax.set_title("Low-bit plane, §13.6 rule: byte cost")
        bx.set_yscale("symlog", linthresh=0.1)
        bx.set_xlabel("plane width k")
        bx.set_ylabel("size change at 8 b/el (%)")
        bx.set_title("Every width at 8 b/el")
        ax.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(args.plot, dpi=120)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
