"""Differential fuzzing of the C++ decoder against the NumPy references (tests/reference.py for
format 1; tests/reference_dense.py for format 2, modes 1 and 2 — dense and dense with class
tables; tests/reference_tcq.py for mode 3, trellis-coded quantization).

Mutates golden and freshly encoded streams (bit flips, byte writes, varint overwrites, label
flips in payloads, inserted / deleted / duplicated bytes, truncation), fixes the CRC up so the
mutation reaches the field checks, and asks both decoders for a verdict. They must agree on
accept / reject, on the decoded bits when both accept, and ``slicer.inspect`` must agree with
``slicer.decode``. Anything but ``slicer.FormatError`` from the package, or anything but
``ReferenceFormatError`` from the reference, is a failure too.

Usage::

    python fuzz/differential.py --streams 100000 --seed 1 [--seconds 600] [--save DIR]

Exit status 1 when any disagreement was found (each is printed as hex, and saved with --save).
``tests/test_decoder_trust.py`` runs a small fixed-seed pass of it.
"""

from __future__ import annotations

import argparse
import json
import struct
import sys
import time
import zlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

import reference as ref  # noqa: E402
import reference_dense as rd  # noqa: E402
import reference_tcq as rt  # noqa: E402  (its decode: every dense mode)
import slicer  # noqa: E402
import stream_tools as st  # noqa: E402

# Keeps the reference's dense float64 output (and the C++ output) small on hostile headers.
MAX_ELEMENTS = 1 << 20


def golden_streams() -> list[bytes]:
    """Format 1 and format 2 (modes 1, 2 and 3) golden streams."""
    paths = sorted((ROOT / "tests/golden/v1").glob("*.slc"))
    paths += sorted((ROOT / "tests/golden/v2").glob("*.slc"))
    return [p.read_bytes() for p in paths]


def dense_streams(rng: np.random.Generator, count: int) -> list[bytes]:
    """Small format-2 streams: modes 1, 2 and 3 (classes along both axes, rank maps, index
    ranges and range boundaries; trellis in about a third), layouts, dtypes."""
    out = []
    dtypes = [np.float32, np.float16, np.float64]
    for _ in range(count):
        ndim = int(rng.integers(1, 4))
        shape = tuple(int(d) for d in rng.integers(1, 12, size=ndim))
        x = rng.standard_normal(shape) * np.geomspace(0.1, 10.0, shape[-1])
        if x.size and rng.random() < 0.3:
            x[rng.random(shape) < 0.3] = 0
        x = x.astype(dtypes[int(rng.integers(len(dtypes)))])
        groups = str(rng.choice(["tensor", "rows"] + (["channels"] if ndim >= 2 else [])))
        axis_len = shape[1] if groups == "channels" else shape[-1]
        classes = int(rng.integers(2, min(axis_len, 16) + 1)) if axis_len >= 2 else 1
        if rng.random() < 0.3:
            classes = 1
        class_map = str(rng.choice(["rank", "ranges", "bounds"])) if classes > 1 else None
        bounds = None
        if class_map == "bounds":  # §18.4: K − 1 distinct positions of 1 … L − 1
            bounds = sorted(int(b) for b in rng.choice(np.arange(1, axis_len), classes - 1,
                                                        replace=False))  # fmt: skip
        out.append(
            slicer.encode(
                x, mode="dense", step=float(rng.choice([0.01, 0.2, 2.0])), groups=groups,
                chunk_size=int(rng.choice([64, 16384])), classes=classes, class_map=class_map,
                class_bounds=bounds, trellis=bool(rng.random() < 0.35),
            )
        )  # fmt: skip
    return out


def random_streams(rng: np.random.Generator, count: int) -> list[bytes]:
    """Small streams over the parameter space: dtypes, groups, chunks, blocks, widths."""
    out = []
    dtypes = [np.float32, np.float16, np.dtype("bfloat16") if _has_bf16() else np.float32]
    for _ in range(count):
        ndim = int(rng.integers(0, 4))
        shape = tuple(int(d) for d in rng.integers(1, 9, size=ndim))
        if ndim and rng.random() < 0.05:
            shape = shape[:-1] + (0,)
        x = rng.standard_normal(shape).astype(np.float32)
        if x.size and rng.random() < 0.3:
            x[rng.random(shape) < 0.5] = 0  # zeros and ties
        if x.size and rng.random() < 0.2:
            x = np.round(x)
        x = x.astype(dtypes[int(rng.integers(len(dtypes)))])
        blocks = (int(rng.integers(1, 6)), int(rng.integers(1, 6)))
        kwargs = {
            "sparsity": float(rng.choice([0.0, 0.3, 0.5, 0.9])),
            "asym": float(rng.choice([0.0, 0.0, 0.4])),
            "blocks": blocks,
            "delta": float(rng.choice([0.0, 0.01, 0.5])),
            "seed": int(rng.integers(0, 2**63)),
            "chunk_size": int(rng.choice([64, 128, 16384])),
            "groups": "rows" if ndim and rng.random() < 0.4 else "tensor",
        }
        if rng.random() < 0.3:
            levels = sorted(rng.integers(1, 17, size=max(blocks)).tolist(), reverse=True)
            kwargs["bits"] = [int(v) for v in levels]
        else:
            kwargs["bits"] = int(rng.integers(1, 17))
        out.append(slicer.encode(x, **kwargs))
    return out


def _has_bf16() -> bool:
    try:
        import ml_dtypes  # noqa: F401
    except ImportError:
        return False
    return True


def fix_crc(body: bytes) -> bytes:
    return body[:-4] + struct.pack("<I", zlib.crc32(body[:-4]))


def _varint(value: int) -> bytes:
    return ref.varint(value)


def regions(stream: bytes) -> tuple[int, int]:
    """(end of the header, start of the payload) of a valid stream (tests/stream_tools.py;
    format 2: the reference's byte account)."""
    if stream[4] == 2:
        _, acc = rt.decode(stream, max_elements=MAX_ELEMENTS)
        return acc.header, acc.total - 4 - acc.rans - acc.extra_bits
    lay = st.layout(stream)
    return lay.header_end, lay.payload_start


def _position(rng: np.random.Generator, n: int, bounds: tuple[int, int]) -> int:
    """A byte offset below n: header, tables or payload, a third of the time each."""
    header_end, payload_start = bounds
    spans = [(0, header_end), (header_end, payload_start), (payload_start, n)]
    lo, hi = spans[int(rng.integers(3))]
    hi = min(hi, n)
    if lo >= hi:
        return int(rng.integers(0, n))
    return int(rng.integers(lo, hi))


def mutate(
    stream: bytes, rng: np.random.Generator, bounds: tuple[int, int] = (0, 0)
) -> tuple[bytes, str]:
    """One to three random mutations; the CRC is fixed up 97 % of the time."""
    data = bytearray(stream)
    names = []
    body_end = max(len(data) - 4, 0)
    for _ in range(int(rng.integers(1, 4))):
        kind = str(
            rng.choice(
                [
                    "bit",
                    "bit",
                    "bit",
                    "byte",
                    "special",
                    "varint",
                    "insert",
                    "delete",
                    "dup",
                    "truncate",
                    "payload_bit",
                    "payload_bit",
                ]
            )
        )
        n = max(len(data) - 4, 1)
        if kind == "bit" and body_end:
            p = _position(rng, n, bounds)
            data[p] ^= 1 << int(rng.integers(0, 8))
        elif kind == "byte" and body_end:
            data[_position(rng, n, bounds)] = int(rng.integers(0, 256))
        elif kind == "special" and body_end:
            data[_position(rng, n, bounds)] = int(rng.choice([0, 1, 0x7F, 0x80, 0xFF, 6, 24, 64]))
        elif kind == "varint" and body_end:
            p = _position(rng, n, bounds)
            value = int(rng.choice([0, 1, 2**7, 2**14, 2**31, 2**32, 2**63, 2**64 - 1]))
            value += int(rng.integers(-1, 2)) if 0 < value < 2**64 - 1 else 0
            raw = _varint(value)
            data[p : p + len(raw)] = raw
        elif kind == "insert":
            p = min(_position(rng, n, bounds) + int(rng.integers(0, 2)), n)
            data[p:p] = bytes(rng.integers(0, 256, size=int(rng.integers(1, 5)), dtype=np.uint8))
        elif kind == "delete" and len(data) > 5:
            p = _position(rng, n, bounds)
            del data[p : p + int(rng.integers(1, 5))]
        elif kind == "dup" and body_end:
            p = _position(rng, n, bounds)
            q = min(p + int(rng.integers(1, 9)), n)
            data[q:q] = data[p:q]
        elif kind == "truncate":
            data = data[: int(rng.integers(0, len(data) + 1))] + b"\0\0\0\0"
        elif kind == "payload_bit" and body_end:
            # the last ~quarter of the body is mostly payload
            lo = max(0, n - max(1, n // 4))
            p = int(rng.integers(lo, n))
            data[p] ^= 1 << int(rng.integers(0, 8))
        else:
            continue
        names.append(kind)
    out = bytes(data)
    if len(out) >= 4 and rng.random() < 0.97:
        out = fix_crc(out)
    return out, "+".join(names) or "none"


@dataclass
class Verdict:
    accepted: bool
    detail: str
    array: np.ndarray | None = None


def reference_verdict(stream: bytes) -> Verdict:
    if len(stream) >= 9 and stream[:4] == b"SLCR" and stream[4] == 2:
        try:
            with np.errstate(over="ignore"):
                array, account = rt.decode(stream, max_elements=MAX_ELEMENTS)
        except rd.ReferenceFormatError as exc:
            return Verdict(False, str(exc))
        return Verdict(True, f"coded {account.coded}", array)
    try:
        with np.errstate(over="ignore"):  # huge decoded values become inf in float16, as in C++
            array, account = ref.decode(stream, max_elements=MAX_ELEMENTS)
    except ref.ReferenceFormatError as exc:
        return Verdict(False, str(exc))
    return Verdict(True, f"kept {account.kept}", array)


def package_verdict(stream: bytes, threads: int) -> Verdict:
    try:
        array = slicer.decode(stream, max_elements=MAX_ELEMENTS, threads=threads)
    except slicer.FormatError as exc:
        return Verdict(False, str(exc))
    return Verdict(True, "", array)


def inspect_accepts(stream: bytes) -> bool:
    try:
        slicer.inspect(stream, max_elements=MAX_ELEMENTS)
    except slicer.FormatError:
        return False
    return True


def same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    view = {8: np.uint64, 4: np.uint32}.get(a.dtype.itemsize, np.uint16)
    return bool(np.array_equal(a.view(view), b.view(view)))


@dataclass
class Stats:
    streams: int = 0
    accepted: int = 0
    disagreements: list = field(default_factory=list)
    reasons: Counter = field(default_factory=Counter)


def check_one(stream: bytes, mutation: str, threads: int, stats: Stats) -> None:
    stats.streams += 1
    problem = None
    try:
        expected = reference_verdict(stream)
    except Exception as exc:  # the reference must only ever raise ReferenceFormatError
        problem = f"reference raised {type(exc).__name__}: {exc}"
        expected = None
    try:
        got = package_verdict(stream, threads)
        inspected = inspect_accepts(stream)
    except Exception as exc:
        problem = f"package raised {type(exc).__name__}: {exc}"
        got = None
    if problem is None:
        if expected.accepted != got.accepted:
            problem = f"verdicts differ: reference {expected.detail!r}, package {got.detail!r}"
        elif expected.accepted and not same_bits(expected.array, got.array):
            problem = "decoded values differ"
        elif inspected != got.accepted:
            problem = f"inspect accepted={inspected}, decode accepted={got.accepted}"
    if expected is not None and not expected.accepted:
        stats.reasons[expected.detail] += 1
    if got is not None and got.accepted:
        stats.accepted += 1
    if problem is not None:
        stats.disagreements.append(
            {"mutation": mutation, "threads": threads, "problem": problem, "hex": stream.hex()}
        )


def run(streams: int, seed: int, seconds: float | None, progress: bool = True) -> Stats:
    rng = np.random.default_rng(seed)
    seeds = golden_streams() + random_streams(rng, 200) + dense_streams(rng, 100)
    bounds = [regions(s) for s in seeds]
    stats = Stats()
    start = time.monotonic()
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=streams, unit="stream", mininterval=2.0)
    for seed_stream in seeds:  # the unmutated streams first: all must be accepted
        check_one(seed_stream, "none", int(rng.integers(1, 5)), stats)
    while stats.streams < streams:
        if seconds is not None and time.monotonic() - start > seconds:
            break
        which = int(rng.integers(len(seeds)))
        mutated, mutation = mutate(seeds[which], rng, bounds[which])
        check_one(mutated, mutation, int(rng.integers(1, 5)), stats)
        if bar is not None:
            bar.update(1)
            if stats.disagreements:
                bar.set_postfix(disagreements=len(stats.disagreements), refresh=False)
    if bar is not None:
        bar.close()
    return stats


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--streams", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=None)
    parser.add_argument("--save", type=Path, default=None, help="folder for disagreements")
    args = parser.parse_args()
    t0 = time.monotonic()
    stats = run(args.streams, args.seed, args.seconds)
    elapsed = time.monotonic() - t0
    print(
        f"streams {stats.streams}  accepted {stats.accepted}  rejected "
        f"{stats.streams - stats.accepted}  disagreements {len(stats.disagreements)}  "
        f"({elapsed:.0f} s, seed {args.seed})"
    )
    for reason, count in stats.reasons.most_common():
        print(f"  {count:8d}  {reason}")
    for item in stats.disagreements[:20]:
        print(f"DISAGREE [{item['mutation']}, threads {item['threads']}] {item['problem']}")
        print(f"  {item['hex'][:400]}")
    if args.save is not None and stats.disagreements:
        args.save.mkdir(parents=True, exist_ok=True)
        (args.save / f"disagreements-{args.seed}.json").write_text(
            json.dumps(stats.disagreements, indent=1)
        )
    return 1 if stats.disagreements else 0


if __name__ == "__main__":
    sys.exit(main())
