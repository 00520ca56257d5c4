"""mode="auto" at equal budgets: the current rate control against an earlier one, per workload.

    git show REV:python/slicer/_rate.py > /tmp/rate_before.py
    python bench/auto_equal.py --before /tmp/rate_before.py [--random 150 --seed 3] [--json out]

A cheaper rate control may choose other streams; this says whether they are worse. On the six
bench/data workloads (as bench/classes_choice.py: SmolLM2 layers 5 / 15 / 25 and MiniLM layer
3 as token rows, EfficientNet-Lite0 blocks 4 and 10 as (1, C, H, W) maps), classes="auto":
- equal bytes: ``max_bytes = B·N/8`` for B in classes_choice.BUDGETS; both streams honour the
  budget (checked), and the ratio now / before of their relative L2 errors is the cost (> 1:
  the current control is worse);
- equal error: ``rel_error`` = the error the earlier control's stream reached at each of those
  budgets; both streams stay within it (checked), and the ratio now / before of their bytes is
  the cost.
Per workload the geometric mean, the best and the worst ratio over the budgets, and the real
encodes per call of each control (the wrapped slicer._core encoders). `--random N`: the same on
N random arrays of classes_choice.py's generator (seeded), one budget and one error each.
`--numpy-before`: the earlier control on its NumPy model (needed when the C++ kernel changed:
the earlier _rate.py would call this build's kernel).
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np
from classes_choice import BUDGETS, DATA, WORKLOADS, random_case, rel
from classes_speed import RATE_FUNCTIONS, load_rate


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", required=True, metavar="OLD_RATE.py")
    parser.add_argument("--random", type=int, default=0, metavar="N")
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--json", metavar="OUT.json")
    parser.add_argument(
        "--numpy-before",
        action="store_true",
        help="run the earlier control on its NumPy model (DenseModel, whose streams are its "
        "kernel's), for a change of this build's C++ kernel that the earlier control would call",
    )
    args = parser.parse_args()
    import slicer
    from slicer import _api, _core, _rate

    before = load_rate(args.before)
    if args.numpy_before:
        before.MODEL = before.DenseModel
    encodes = [0]
    for name in ("dense_encode", "dense_encode_sse"):
        fn = getattr(_core, name)

        def counted(*a, fn=fn):  # noqa: ANN002, ANN202
            encodes[0] += 1
            return fn(*a)

        setattr(_core, name, counted)

    def use(module) -> None:  # noqa: ANN001
        for name in RATE_FUNCTIONS:
            setattr(_api, name, getattr(module, name))

    def run(module, x: np.ndarray, **kw) -> tuple[int, float, int, bytes] | None:  # noqa: ANN001, ANN003
        """(bytes, relative L2 error, encodes, stream) of one auto call; None: none fits."""
        use(module)
        encodes[0] = 0
        try:
            s = slicer.encode(x, mode="auto", **kw)
        except ValueError:
            return None
        finally:
            use(_rate)
        err = rel(x, slicer.decode(s))
        if "max_bytes" in kw:
            assert len(s) <= kw["max_bytes"], (len(s), kw)
        else:
            assert err <= kw["rel_error"] * (1 + 1e-12), (err, kw)
        return len(s), err, encodes[0], s

    rows = []

    def compare(x: np.ndarray, limit: int) -> dict | None:
        """Both controls at max_bytes = limit and at the earlier stream's error."""
        old = run(before, x, max_bytes=limit)
        new = run(_rate, x, max_bytes=limit)
        if old is None or new is None:
            assert (old is None) == (new is None), limit
            return None
        old_e = run(before, x, rel_error=old[1])
        new_e = run(_rate, x, rel_error=old[1])
        return dict(
            limit=limit,
            err_ratio=new[1] / old[1],
            bytes_ratio=new_e[0] / old_e[0],
            same=int(new[3] == old[3]) + int(new_e[3] == old_e[3]),
            encodes_before=(old[2], old_e[2]),
            encodes_now=(new[2], new_e[2]),
        )

    def summary(label: str, per: list[dict]) -> None:
        er = [p["err_ratio"] for p in per]
        br = [p["bytes_ratio"] for p in per]
        row = dict(
            workload=label, calls=2 * len(per), same=sum(p["same"] for p in per),
            err_gmean=math.exp(np.mean(np.log(er))), err_best=min(er), err_worst=max(er),
            bytes_gmean=math.exp(np.mean(np.log(br))), bytes_best=min(br), bytes_worst=max(br),
            encodes_before=float(np.mean([sum(p["encodes_before"]) / 2 for p in per])),
            encodes_now=float(np.mean([sum(p["encodes_now"]) / 2 for p in per])),
            cases=per,
        )  # fmt: skip
        rows.append(row)
        print(f"| {label} | {row['calls']} | {row['same']} | {row['err_gmean']:.4f} | "
              f"{row['err_best']:.4f} | {row['err_worst']:.4f} | {row['bytes_gmean']:.4f} | "
              f"{row['bytes_best']:.4f} | {row['bytes_worst']:.4f} | "
              f"{row['encodes_before']:.2f} | {row['encodes_now']:.2f} |", flush=True)  # fmt: skip

    print(
        "| workload | calls | same streams | error now / before at equal max_bytes: gmean | best "
        "| worst | bytes now / before at equal rel_error: gmean | best | worst | encodes before "
        "| encodes now |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name in WORKLOADS:
        x = np.load(DATA / f"{name}.npy").astype(np.float32)
        if x.ndim == 3:
            x = x[None]  # (1, C, H, W)
        per = [compare(x, int(b * x.size / 8)) for b in BUDGETS]
        summary(name, [p for p in per if p is not None])
    if args.random:
        rng = np.random.default_rng(args.seed)
        small: list[dict] = []
        large: list[dict] = []
        for case in range(args.random):  # the generator of classes_choice.py --random
            x, budget, _ = random_case(rng, case)  # (equal errors here: the earlier stream's)
            found = compare(x, budget)
            if found is not None:
                (small if x.size <= 32768 else large).append(found)
        summary(f"random (seed {args.seed}), N <= 32k", small)
        summary(f"random (seed {args.seed}), N > 32k", large)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
