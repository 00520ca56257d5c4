"""classes="auto": the K (and stream) the current rate control picks against an earlier one.

    git show REV:python/slicer/_rate.py > /tmp/rate_before.py
    python bench/classes_choice.py --before /tmp/rate_before.py

On the six bench/data workloads (python bench/activations.py) — SmolLM2 after layers 5 / 15 /
25 and MiniLM after layer 3 as token rows (n, C), EfficientNet-Lite0 after blocks 4 and 10 as
(1, C, H, W) maps (classes="auto" weighs both axes there) — ``slicer.encode(mode="auto")`` at
max_bytes = B·N/8 for B in BUDGETS and at the rel_error each of those streams reached: per
call the K, axis, bytes and relative L2 error of the current rate control and of the earlier
one (`--before`), and whether the two streams are the same bytes. A faster estimate that picks
a worse K would show here as a higher error at equal bytes (or more bytes at equal error).

`--random N [--seed S]`: also N random arrays (1 … 300 rows × 1 … 700 columns of Student-t
values at random scales, a quarter with per-column scales, a quarter half zeros, a quarter
non-negative; float16 / float32 / float64), each at a random max_bytes and a random rel_error:
the count of identical streams.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from classes_speed import RATE_FUNCTIONS, load_rate

DATA = Path(__file__).resolve().parent / "data"
WORKLOADS = ("smollm2_l5", "smollm2_l15", "smollm2_l25", "minilm_l3", "effnet_b4", "effnet_b10")
BUDGETS = (1.0, 1.5, 2.0, 2.5, 3.0, 4.0, 6.0, 8.0)


def random_case(rng: np.random.Generator, case: int) -> tuple[np.ndarray, int, float]:
    """(array, max_bytes, rel_error) of random case `case` (`--random`; the draws in this order
    keep the arrays, budgets and errors of the runs recorded in RESULTS)."""
    rows, cols = int(rng.integers(1, 300)), int(rng.integers(1, 700))
    x = rng.standard_t(3, (rows, cols)) * 10.0 ** rng.uniform(-3, 3)
    if case % 4 == 1:
        x *= np.geomspace(0.01, 50, cols)[rng.permutation(cols)]
    elif case % 4 == 2:
        x[rng.random(x.shape) < 0.5] = 0
    elif case % 4 == 3:
        x = np.abs(x)
    dtype = rng.choice([np.float32, np.float64, np.float16])
    x = np.clip(x, -6e4, 6e4).astype(dtype) if dtype == np.float16 else x.astype(dtype)
    budget = max(64, int(rng.uniform(0.3, 9) * x.size / 8))
    return x, budget, float(10 ** rng.uniform(-3, -0.3))


def rel(a: np.ndarray, b: np.ndarray) -> float:
    a64 = a.astype(np.float64)
    return float(np.linalg.norm(a64 - b.astype(np.float64)) / np.linalg.norm(a64))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", required=True, metavar="OLD_RATE.py")
    parser.add_argument("--random", type=int, default=0, metavar="N")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    import slicer
    from slicer import _api, _rate

    before = load_rate(args.before)

    def use(module) -> None:  # noqa: ANN001
        for name in RATE_FUNCTIONS:
            setattr(_api, name, getattr(module, name))

    def run(module, x: np.ndarray, **kw) -> tuple[bytes, int, str, float]:  # noqa: ANN001, ANN003
        use(module)
        try:
            s = slicer.encode(x, mode="auto", **kw)
        finally:
            use(_rate)
        info = slicer.inspect(s)
        return s, info.classes, info.class_axis, rel(x, slicer.decode(s))

    print(f"{'workload':<12} {'shape':<16} {'target':<14} {'K now':>5} {'K before':>8} "
          f"{'bytes now':>10} {'before':>10} {'rel L2 now':>11} {'before':>11}  same")  # fmt: skip
    calls = same = k_changed = 0
    for name in WORKLOADS:
        x = np.load(DATA / f"{name}.npy").astype(np.float32)
        if x.ndim == 3:
            x = x[None]  # (1, C, H, W)
        n = x.size
        for b in BUDGETS:
            limit = int(b * n / 8)
            now = run(_rate, x, max_bytes=limit)
            targets = [(f"{b:g} b/el", dict(max_bytes=limit)),
                       (f"err {now[3]:.3g}", dict(rel_error=now[3]))]  # fmt: skip
            for label, kw in targets:
                a = now if "max_bytes" in kw else run(_rate, x, **kw)
                o = run(before, x, **kw)
                calls += 1
                same += a[0] == o[0]
                k_changed += (a[1], a[2]) != (o[1], o[2])
                print(f"{name:<12} {str(x.shape):<16} {label:<14} {a[1]:>5} {o[1]:>8} "
                      f"{len(a[0]):>10} {len(o[0]):>10} {a[3]:>11.4e} {o[3]:>11.4e}  "
                      f"{'yes' if a[0] == o[0] else 'no'}", flush=True)  # fmt: skip
    print(f"{calls} calls: {same} identical streams, K or axis changed in {k_changed}")
    if args.random:
        rng = np.random.default_rng(args.seed)
        total = alike = 0
        for case in range(args.random):
            x, budget, error = random_case(rng, case)
            for kw in (dict(max_bytes=budget), dict(rel_error=error)):
                streams = []
                for module in (_rate, before):
                    try:
                        streams.append(run(module, x, **kw)[0])
                    except ValueError as e:  # a budget below the smallest stream: same message?
                        streams.append(str(e))
                total += 1
                alike += streams[0] == streams[1]
        print(f"{total} random calls (seed {args.seed}): {alike} identical streams")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
