"""mode="auto" streams of a fixed set of calls, hashed, to compare two builds byte for byte.

    python bench/auto_streams.py --save /tmp/streams_before.json     # under the earlier build
    python bench/auto_streams.py --compare /tmp/streams_before.json  # under this one

bench/classes_choice.py compares two versions of python/slicer/_rate.py in one process, on one
build of the C++ kernels; a change to the kernels themselves (cpp/src/dense/rate_model.cpp) is
checked here instead, across two installs (run from a directory where `import slicer` finds
the install meant). The calls: the six bench/data workloads at max_bytes = B·N/8 for B in
classes_choice.BUDGETS and at the rel_error each stream reached (96 calls, as classes_choice.py),
`--random N` random arrays (its generator and seed, a max_bytes and a rel_error each), and the
bench/auto_cost.py inputs (SmolLM2 layer 15 tiled to (N/64, 64), N = 16k … 1M, max_bytes and
rel_error, classes "auto" and 1; float16 / bfloat16 / float64, groups rows and channels at
131k). Per call: SHA-256 of the stream (or of the ValueError's message).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from classes_choice import BUDGETS, WORKLOADS, random_case, rel  # noqa: E402


def digest(fn) -> str:  # noqa: ANN001
    try:
        out = fn()
    except ValueError as e:  # a budget below the smallest stream: the same message?
        out = str(e).encode()
    return hashlib.sha256(out).hexdigest()


def calls(random: int, seed: int):  # noqa: ANN201
    """(label, zero-argument encode) pairs, in a fixed order."""
    import slicer

    for name in WORKLOADS:
        x = np.load(HERE / "data" / f"{name}.npy").astype(np.float32)
        if x.ndim == 3:
            x = x[None]
        for b in BUDGETS:
            limit = int(b * x.size / 8)
            s = slicer.encode(x, mode="auto", max_bytes=limit)
            err = rel(x, slicer.decode(s))
            yield f"{name} {b:g} b/el", (lambda s=s: s)
            yield (
                f"{name} err {err:.6g}",
                (lambda x=x, e=err: slicer.encode(x, mode="auto", rel_error=e)),
            )
    rng = np.random.default_rng(seed)
    for case in range(random):  # the generator of classes_choice.py --random
        x, budget, error = random_case(rng, case)
        yield (
            f"random {case} max_bytes",
            (lambda x=x, b=budget: slicer.encode(x, mode="auto", max_bytes=b)),
        )
        yield (
            f"random {case} rel_error",
            (lambda x=x, e=error: slicer.encode(x, mode="auto", rel_error=e)),
        )
    import ml_dtypes

    base = np.load(HERE / "data" / "smollm2_l15.npy").reshape(-1)
    inputs = []
    for n in (16384, 131072, 1048576):
        inputs.append((f"cost {n}", np.resize(base, n).astype(np.float32).reshape(n // 64, 64),
                       "tensor"))  # fmt: skip
    x = inputs[1][1]
    for dtype in (np.float16, ml_dtypes.bfloat16, np.float64):
        inputs.append((f"cost 131072 {np.dtype(dtype).name}", x.astype(dtype), "tensor"))
    inputs.append(("cost 131072 rows", x, "rows"))
    inputs.append(("cost 131072 channels", x.reshape(-1, 8, 8, 8), "channels"))
    for label, x, groups in inputs:
        plain = slicer.encode(x, mode="dense", step=0.5, groups=groups)
        err = rel(x, slicer.decode(plain))
        for classes in ("auto", 1):
            kw = dict(mode="auto", groups=groups, classes=classes)
            size = len(plain)
            yield (
                f"{label} max_bytes {classes}",
                (lambda x=x, kw=kw, b=size: slicer.encode(x, max_bytes=b, **kw)),
            )
            yield (
                f"{label} rel_error {classes}",
                (lambda x=x, kw=kw, e=err: slicer.encode(x, rel_error=e, **kw)),
            )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--save", metavar="OUT.json")
    group.add_argument("--compare", metavar="EARLIER.json")
    parser.add_argument("--random", type=int, default=150)
    parser.add_argument("--seed", type=int, default=3)
    args = parser.parse_args()
    import slicer

    got = {label: digest(fn) for label, fn in calls(args.random, args.seed)}
    if args.save:
        Path(args.save).write_text(json.dumps({"slicer": slicer.__file__, "streams": got},
                                              indent=0))  # fmt: skip
        print(f"{len(got)} calls hashed ({slicer.__file__})")
        return 0
    earlier = json.loads(Path(args.compare).read_text())
    before = earlier["streams"]
    groups: dict[str, list[int]] = {}
    for label, h in got.items():
        kind = label.split()[0] if label.split()[0] in ("random", "cost") else "workload"
        tally = groups.setdefault(kind, [0, 0])
        tally[0] += 1
        tally[1] += before.get(label) == h
        if before.get(label) != h:
            print(f"differs: {label}")
    print(f"earlier: {earlier['slicer']}; now: {slicer.__file__}")
    for kind, (total, same) in groups.items():
        print(f"{kind}: {same} / {total} identical streams")
    return 0 if all(total == same for total, same in groups.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
