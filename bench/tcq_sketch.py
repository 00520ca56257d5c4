"""Trellis-coded (dependent) quantization against the dense codec's dead-zone ECSQ, at equal
rate (issue 7, the gate of docs/format.md's would-be mode 3; bench/RESULTS.md §9.9).

    python bench/tcq_sketch.py                    # six workloads, plain and KLT, 1.5 .. 3 b/el
    python bench/tcq_sketch.py --workloads minilm_l3 --bases klt
    python bench/tcq_sketch.py --minilm           # + MiniLM embedding cosine at 2.0 b/el

Both schemes code the same array (the scored half of bench/klt_rd.py: fit / score split, KLT
coefficients from slicer.split.transform) and are charged the same way: the ideal conditional
entropy of the §11 symbols they code (one order-0 table per context), plus the §11 extra bits,
plus each non-empty table at its exact §13.1 size (the same table coding for both), plus the
class map when there are classes. Nothing else of the stream (header, chunk table, CRC) is
counted for either: it is the same for both.

- ECSQ: the codec's dense quantizer (§12.2, dead zone rho/256) with its MSE reconstruction
  offsets (§12.3 rule), contexts = class of the position (K = 1: one table, mode 1; K = 8: class
  tables along the last axis, mode 2, map by §18.2's rule). Grid: step x rho.
- TCQ: two scalar quantizers Q0 = {2mΔ}, Q1 = {0, ±(2m − 1)Δ}, a 4-state machine driven by the
  parity of the index (next = T[s][k & 1], T = [[0,2],[2,0],[1,3],[3,1]]; states 0, 1 use Q0,
  2, 3 use Q1), contexts = (class, quantizer of the state): 2K tables. The encoder is a Viterbi
  search over D/Δ² + λ·R with R in bits from the tables of the previous pass (3 passes, the
  first from plain rounding). Chains: the flat array is cut into M lanes (element i's
  predecessor is i − M), every chain starting in state 0, the Viterbi vectorised over lanes.
  Reconstruction with and without per-(quantizer, m = 1 / m ≥ 2) MSE offsets. Grid: step x λ.

Each scheme's (rate, error) points give a lower convex hull in (rate, squared error) (what
time-sharing between its settings reaches); the error at a target rate is read off the hull.
The gain is 10·log10(err_ecsq² / err_tcq²) dB;
"b/el@=" is the rate at which TCQ + offsets reaches ECSQ's error at the budget.

--minilm / --smollm2: the task effect through bench/fidelity_dense.py's harness (same model,
inputs, calibration and KLT), the codec replaced by the two schemes at an ideal rate (as above,
tables and map counted, per input tensor) of at most B b/el, each at its best of a small grid
(ECSQ: rho 128 / 96 / 64; TCQ: λ 0.24 / 0.46, 2 passes; classes 1 or 4; SmolLM2: 8 classes,
λ = 0.34), step by bisection; prints the paired difference per input with its standard error.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
DATA = HERE / "data"
WORKLOADS = ("smollm2_l5", "smollm2_l15", "smollm2_l25", "minilm_l3", "effnet_b4", "effnet_b10")
BUDGETS = (1.5, 2.0, 2.5, 3.0)
TRANS = np.array([[0, 2], [2, 0], [1, 3], [3, 1]])
NUM_SYMBOLS = 423

# ---------------------------------------------------------------------------------------------
# §11 symbols and §13.1 table sizes


def symbols(m: np.ndarray, neg: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(§11 symbol, extra bits) of magnitudes m (int64) with sign `neg`."""
    m = np.asarray(m, dtype=np.int64)
    _, ex = np.frexp(np.maximum(m, 1).astype(np.float64))
    e = ex.astype(np.int64) - 1  # floor(log2 m), exact for m < 2^53
    big = m >= 8
    eb = np.where(big, e, 3)
    b = np.where(big, 8 + 4 * (eb - 3) + ((m >> (eb - 2)) & 3), m)
    sym = np.where(m == 0, 0, np.where(neg, 2 * b, 2 * b - 1))
    return sym, np.where(big, e - 2, 0)


def _cnt(v: np.ndarray) -> np.ndarray:
    v = np.asarray(v, dtype=np.int64)
    hi = (8 + (v - 16) % 8) << ((v - 16) // 8 + 1)
    return np.where(v < 16, v, hi)


_CNT = _cnt(np.arange(512))


def count_class(n: np.ndarray) -> np.ndarray:
    """§13.1 nearest count class (ties to the lower class)."""
    n = np.asarray(n, dtype=np.int64)
    i = np.clip(np.searchsorted(_CNT, n), 1, 511)
    lo, hi = _CNT[i - 1], _CNT[i]
    return np.where(n == 0, 0, np.where(n - lo <= hi - n, i - 1, i))


def table_bytes(counts: np.ndarray) -> int:
    """Exact §13.1 size of the table of these symbol counts (0 when empty: then nsym = 0)."""
    nz = np.nonzero(counts)[0]
    if nz.size == 0:
        return 1
    nsym = int(nz[-1]) + 1
    v = count_class(counts[:nsym])
    d = np.diff(v)
    z = np.where(d >= 0, 2 * d, -2 * d - 1) + 1
    bits = 9 + int((2 * np.floor(np.log2(z)) + 1).sum())
    return (1 if nsym < 128 else 2) + (bits + 7) // 8


def charged_bits(sym: np.ndarray, extra: np.ndarray, ctx: np.ndarray, nctx: int) -> float:
    """Ideal conditional entropy of the symbols given their context + extra bits + tables."""
    counts = np.bincount(ctx * NUM_SYMBOLS + sym, minlength=nctx * NUM_SYMBOLS).reshape(
        nctx, NUM_SYMBOLS
    )
    tot = counts.sum(1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        h = -(counts * np.log2(np.where(counts > 0, counts / np.maximum(tot, 1), 1.0))).sum()
    return float(h + extra.sum() + 8 * sum(table_bytes(c) for c in counts))


# ---------------------------------------------------------------------------------------------
# ECSQ: the dense codec's quantizer


def offset(d: np.ndarray) -> int:
    """§12.3: MSE offset of a class in 1/256 units from d = t − m."""
    c = d.size
    if c == 0:
        return 0
    s = int(np.floor(d * 2.0**20).astype(np.int64).sum())
    return int(np.clip((2 * s + c * 2**12) // (2 * c * 2**12), -128, 127))


def ecsq(
    x: np.ndarray, step: float, rho_256: int, cls: np.ndarray, k: int, recon: bool = False
) -> tuple:
    """(charged bits, squared error[, reconstruction]) of the §12.2 quantizer with §12.3
    offsets."""
    t = np.abs(x) / step
    m = np.floor(t + rho_256 / 256.0)
    d = t - m
    o1, o2 = offset(d[m == 1]), offset(d[m >= 2])
    r = np.where(m == 0, 0.0, m + np.where(m == 1, o1, o2) / 256.0)
    sse = float(((t - r) ** 2).sum()) * step * step
    sym, extra = symbols(m.astype(np.int64), x < 0)
    out = (charged_bits(sym, extra, cls, k), sse)
    return (*out, np.where(x < 0, -r, r) * step) if recon else out


# ---------------------------------------------------------------------------------------------
# TCQ


def _rate_tables(counts: np.ndarray) -> np.ndarray:
    """Bits per symbol per context from counts (a small floor for unseen symbols)."""
    c = counts + 0.02
    return -np.log2(c / c.sum(1, keepdims=True))


def _candidates(t: np.ndarray, q: int) -> tuple[np.ndarray, np.ndarray]:
    """(magnitudes (4, n), reconstruction in units of Δ) of quantizer q near t = |x|/Δ."""
    if q == 0:
        mn = np.floor(t / 2 + 0.5)
    else:
        mn = np.maximum(np.floor((t + 1) / 2 + 0.5), 1)
    m = np.stack([np.zeros_like(t), np.maximum(mn - 1, 0), mn, mn + 1])
    r = 2 * m if q == 0 else np.where(m == 0, 0.0, 2 * m - 1)
    return m, r


def viterbi(
    t: np.ndarray,
    neg: np.ndarray,
    cls: np.ndarray,
    lanes: int,
    lam: float,
    bits: np.ndarray,
    per: int = 2,
) -> tuple[np.ndarray, np.ndarray]:
    """Magnitudes and state per element of the min-cost path of every lane.

    t = |x|/Δ flat; element i is in lane i mod lanes at trellis step i div lanes. `bits`:
    (S·K, NUM_SYMBOLS) rate in bits per context (class·S + state·S/4) and symbol, S = 2
    (contexts by quantizer) or 4 (by state)."""
    n = t.size
    steps = -(-n // lanes)
    cost = np.full((4, lanes), np.inf)
    cost[0] = 0.0
    back_s = np.zeros((steps, 4, lanes), np.int8)
    back_m = np.zeros((steps, 4, lanes), np.int64)
    best_c = np.empty((4, 2, lanes))  # per state (the two states of a quantizer may share)
    best_m = np.empty((4, 2, lanes), np.int64)
    for j in range(steps):
        sl = slice(j * lanes, min(n, (j + 1) * lanes))
        w = sl.stop - sl.start
        tj, nj, cj = t[sl], neg[sl], cls[sl]
        for q in (0, 1):
            m, r = _candidates(tj, q)
            mi = m.astype(np.int64)
            sym, extra = symbols(mi, nj[None, :])
            dist = (tj[None, :] - r) ** 2
            par = mi & 1
            for sub in range(per // 2):  # the states of quantizer q with their own tables
                jc = dist + lam * (bits[cj * per + q * (per // 2) + sub, sym] + extra)
                for p in (0, 1):
                    cc = np.where(par == p, jc, np.inf)
                    a = cc.argmin(0)
                    best_c[2 * q + sub, p, :w] = cc[a, np.arange(w)]
                    best_m[2 * q + sub, p, :w] = mi[a, np.arange(w)]
                if per == 2:
                    best_c[2 * q + 1, :, :w] = best_c[2 * q, :, :w]
                    best_m[2 * q + 1, :, :w] = best_m[2 * q, :, :w]
        c = cost[:, :w]
        new = np.empty((4, w))
        for nxt, ((s0, p0), (s1, p1)) in enumerate(
            (((0, 0), (1, 1)), ((2, 0), (3, 1)), ((0, 1), (1, 0)), ((2, 1), (3, 0)))
        ):
            a = c[s0] + best_c[s0, p0, :w]
            b = c[s1] + best_c[s1, p1, :w]
            take_b = b < a
            new[nxt] = np.where(take_b, b, a)
            back_s[j, nxt, :w] = np.where(take_b, s1, s0)
            back_m[j, nxt, :w] = np.where(take_b, best_m[s1, p1, :w], best_m[s0, p0, :w])
        cost[:, :w] = new
    m_out = np.zeros(n, np.int64)
    q_out = np.zeros(n, np.int64)
    state = cost.argmin(0)
    lane = np.arange(lanes)
    for j in range(steps - 1, -1, -1):
        w = min(n, (j + 1) * lanes) - j * lanes
        st = state[:w]
        m_out[j * lanes : j * lanes + w] = back_m[j, st, lane[:w]]
        prev = back_s[j, st, lane[:w]].astype(np.int64)
        q_out[j * lanes : j * lanes + w] = prev
        state[:w] = prev
    return m_out, q_out


def tcq(
    x: np.ndarray,
    step: float,
    lam: float,
    cls: np.ndarray,
    k: int,
    passes: int = 3,
    per: int = 2,
    recon: bool = False,
    chain: int = 64,
) -> tuple:
    """(charged bits, squared error without offsets, with MSE offsets[, reconstruction with
    offsets]) of TCQ at step Δ; contexts per class: `per` = 2 (quantizer) or 4 (state);
    `chain` elements per trellis chain (lanes = ceil(N / chain))."""
    t = np.abs(x) / step
    neg = x < 0
    lanes = max(1, -(-t.size // chain))
    # first rate tables: plain rounding in each quantizer
    counts = np.zeros((per * k, NUM_SYMBOLS))
    for st in range(per):
        q = st // (per // 2)
        mq = np.floor(t / 2 + 0.5) if q == 0 else np.floor((t + 1) / 2 + 0.5)
        sym, _ = symbols(mq.astype(np.int64), neg)
        idx = (cls * per + st) * NUM_SYMBOLS + sym
        counts += np.bincount(idx, minlength=counts.size).reshape(counts.shape)
    for _ in range(passes):
        m, state = viterbi(t, neg, cls, lanes, lam, _rate_tables(counts), per)
        sym, extra = symbols(m, neg)
        ctx = cls * per + (state if per == 4 else state >> 1)
        counts = np.bincount(ctx * NUM_SYMBOLS + sym, minlength=counts.size).reshape(counts.shape)
    q = state >> 1
    r = np.where(m == 0, 0.0, np.where(q == 0, 2 * m, 2 * m - 1)).astype(np.float64)
    sse = float(((t - r) ** 2).sum()) * step * step
    r2 = r.copy()
    for qq in (0, 1):
        for sel in ((q == qq) & (m == 1), (q == qq) & (m >= 2)):
            r2[sel] += offset(t[sel] - r[sel]) / 256.0
    sse2 = float(((t - r2) ** 2).sum()) * step * step
    out = (charged_bits(sym, extra, ctx, per * k), sse, sse2)
    return (*out, np.where(neg, -r2, r2) * step) if recon else out


# ---------------------------------------------------------------------------------------------
# RD fronts


def hull(points: list[tuple[float, float]]) -> np.ndarray:
    """Lower convex hull of the (rate, squared error) points, the part where the error falls
    with the rate, by increasing rate: what time-sharing between the settings reaches. (A plain
    Pareto staircase of a grid over two parameters is jagged; interpolating it understates a
    scheme by up to 0.2 dB where its points of different λ / ρ interleave.)"""
    pts = sorted((r, e * e) for r, e in points)
    lower: list[tuple[float, float]] = []
    for p in pts:
        while len(lower) >= 2:
            (r1, d1), (r2, d2) = lower[-2], lower[-1]
            if (r2 - r1) * (p[1] - d1) - (d2 - d1) * (p[0] - r1) <= 0:
                lower.pop()
            else:
                break
        lower.append(p)
    h = np.array(lower)
    k = int(np.argmin(h[:, 1]))
    return h[: k + 1]


def rate_at(points: list[tuple[float, float]], error: float) -> float:
    """The hull's rate at `error` (linear in (rate, squared error) between vertices)."""
    h = hull(points)
    d = error * error
    if not h[-1, 1] <= d <= h[0, 1]:
        return float("nan")
    return float(np.interp(d, h[::-1, 1], h[::-1, 0]))


def front_at(points: list[tuple[float, float]], rates: tuple[float, ...]) -> list[float]:
    """Error of the hull (rate, error) at each rate (NaN outside the measured range)."""
    h = hull(points)
    out = []
    for b in rates:
        if b < h[0, 0] or b > h[-1, 0]:
            out.append(float("nan"))
            continue
        out.append(float(np.sqrt(np.interp(b, h[:, 0], h[:, 1]))))
    return out


def classes_of(shape: tuple[int, ...], x: np.ndarray, k: int) -> np.ndarray:
    """Class per flat element: positions along the last axis ranked by mean |x| into k classes
    (§18.2's rule on magnitudes instead of codes)."""
    if k == 1:
        return np.zeros(x.size, np.int64)
    c = shape[-1]
    s = np.abs(x.reshape(-1, c)).mean(0)
    rank = np.empty(c, np.int64)
    rank[np.lexsort((np.arange(c), s))] = np.arange(c)
    return np.tile(rank * k // c, x.size // c)


def sweep(x: np.ndarray, k: int, budgets: tuple[float, ...]) -> dict[str, list[float]]:
    """Rel. L2 error at each budget: ECSQ, TCQ, TCQ + offsets."""
    x = x.astype(np.float64).ravel()
    cls = classes_of(SHAPE[0], x, k)
    n, energy = x.size, float((x**2).sum())
    map_bits = 0.0 if k == 1 else 8 * (SHAPE[0][-1] + 1) // 2
    scale = float(np.sqrt(np.mean(x**2)))
    e_pts, t_pts, o_pts = [], [], []
    for step in scale * np.geomspace(0.03, 1.5, 36):
        for rho in (128, 112, 96, 80, 64, 48):
            b, sse = ecsq(x, step, rho, cls, k)
            e_pts.append(((b + map_bits) / n, np.sqrt(sse / energy)))
    hi = max(budgets) + 0.3
    # TCQ: union step Δ ≈ half the ECSQ step at equal rate; prune steps far from the budgets
    for lam in (0.03, 0.06, 0.1, 0.16, 0.24, 0.34, 0.46, 0.7):
        for step in scale * np.geomspace(0.75, 0.015, 30):  # coarse to fine
            b, sse, sse2 = tcq(x, step, lam, cls, k)
            rate = (b + map_bits) / n
            t_pts.append((rate, np.sqrt(sse / energy)))
            o_pts.append((rate, np.sqrt(sse2 / energy)))
            if rate > hi:
                break
    ecsq_err = front_at(e_pts, budgets)
    return {
        "ecsq": ecsq_err,
        "tcq": front_at(t_pts, budgets),
        "tcq_off": front_at(o_pts, budgets),
        # the rate at which TCQ + offsets reaches ECSQ's error at each budget
        "rate_same_error": [rate_at(o_pts, e) for e in ecsq_err],
    }


# ---------------------------------------------------------------------------------------------
# Task effect: MiniLM embedding cosine through bench/fidelity_dense.py, rates as ideal bits


def _fit_budget(evaluate, n: int, budget_bits: float, scale: float, iters: int):  # noqa: ANN001
    """Bisection in log step for the smallest step-error meeting the budget: evaluate(step) ->
    (bits, sse, xhat); returns the (sse, xhat, bits) of the last feasible step."""
    lo, hi = np.log(scale * 0.01), np.log(scale * 20.0)
    best = None
    for _ in range(iters):
        mid = 0.5 * (lo + hi)
        bits, sse, xhat = evaluate(float(np.exp(mid)))
        if bits <= budget_bits:
            hi = mid
            best = (sse, xhat, bits)
        else:
            lo = mid
    if best is None:
        bits, sse, xhat = evaluate(float(np.exp(hi)))
        best = (sse, xhat, bits)
    return best


def ideal_setting(scheme: str, bpe: float, transform, ks=(1, 4), lams=(0.24, 0.46)):  # noqa: ANN001, ANN201
    """A bench/fidelity Setting: KLT coefficients coded by `scheme` ("ecsq" / "tcq") at the
    lowest error whose ideal rate (tables and map counted) is <= bpe b/el, per input."""
    import common

    def fn(x: np.ndarray) -> tuple[np.ndarray, float]:
        x32 = np.ascontiguousarray(x, dtype=np.float32)
        coef = transform.forward(x32)
        shape = coef.reshape(-1, coef.shape[-1]).shape
        c = coef.astype(np.float64).ravel()
        n = c.size
        scale = float(np.sqrt(np.mean(c**2))) or 1.0
        best = None
        for k in ks:
            if k > shape[-1]:
                continue
            SHAPE[0] = shape
            cls = classes_of(shape, c, k)
            map_bits = 0.0 if k == 1 else 8 * ((shape[-1] + 1) // 2)
            budget = bpe * n - map_bits
            if scheme == "ecsq":
                for rho in (128, 96, 64):

                    def ev(step: float, rho: int = rho, cls=cls, k=k):  # noqa: ANN001, ANN202
                        return ecsq(c, step, rho, cls, k, recon=True)

                    sse, xh, bits = _fit_budget(ev, n, budget, scale, 14)
                    if best is None or sse < best[0]:
                        best = (sse, xh, bits + map_bits)
            else:
                for lam in lams:

                    def ev(step: float, lam: float = lam, cls=cls, k=k):  # noqa: ANN001, ANN202
                        b, _, sse2, xh = tcq(c, step, lam, cls, k, passes=2, recon=True)
                        return b, sse2, xh

                    sse, xh, bits = _fit_budget(ev, n, budget, scale, 10)
                    if best is None or sse < best[0]:
                        best = (sse, xh, bits + map_bits)
        _, xh, bits = best
        y = transform.inverse(xh.reshape(coef.shape).astype(np.float32))
        return y, bits / 8.0

    return common.Setting(f"ideal {scheme} {bpe:g} b/el klt", "ideal", fn, {"bpe": bpe})


def paired(fd, key: str, scale: float = 1.0) -> None:  # noqa: ANN001
    """Wrap the harness's sweep so that, per pair of settings (ecsq, tcq), the paired
    difference of the per-input metric `key` (× scale) and its standard error are printed."""
    orig = fd.common.sweep

    def sweep(split, heads, settings, score, desc):  # noqa: ANN001, ANN202
        values: list[float] = []

        def sc(i: int, outputs: dict) -> dict:
            r = score(i, outputs)
            values.append(r[key])
            return r

        rows = orig(split, heads, settings, sc, desc)
        v = np.asarray(values).reshape(len(settings), len(heads)) * scale
        for j in range(0, len(settings) - 1, 2):
            d = v[j + 1] - v[j]
            print(
                f"  paired {settings[j + 1].name} - {settings[j].name}: {key} "
                f"{d.mean():+.5f} ± {d.std(ddof=1) / np.sqrt(d.size):.5f} s.e. over {d.size}",
                flush=True,
            )
        return rows

    fd.common.sweep = sweep


def minilm_task(budgets: tuple[float, ...]) -> None:
    """bench/fidelity_dense.py's MiniLM run (200 sentences, layer 3, KLT from its calibration
    sentences) with the two ideal-rate settings in place of the codec's."""
    sys.path.insert(0, str(HERE))
    import fidelity_dense as fd

    def settings(_budgets, _groups, _klt, transform):  # noqa: ANN001, ANN202
        return [ideal_setting(s, b, transform) for b in budgets for s in ("ecsq", "tcq")]

    fd.make_settings = settings
    paired(fd, "cosine")
    fd.minilm(2, budgets=budgets, groups=("tensor",), klt="on")


def smollm2_task(budgets: tuple[float, ...], tokens: int) -> None:
    """bench/fidelity_dense.py's SmolLM2 run after layer 25 (KLT, one tensor per 512-token
    chunk) with the two ideal-rate settings (K = 8 classes, TCQ at λ = 0.34)."""
    sys.path.insert(0, str(HERE))
    import fidelity_dense as fd

    def settings(_budgets, _groups, _klt, transform):  # noqa: ANN001, ANN202
        return [
            ideal_setting(s, b, transform, ks=(8,), lams=(0.34,))
            for b in budgets
            for s in ("ecsq", "tcq")
        ]

    fd.make_settings = settings
    paired(fd, "nll_sum", 1.0 / 511)  # per-token NLL change of a 512-token chunk (≈ ppl ratio)
    fd.smollm2(2, tokens, budgets=budgets, groups=("tensor",), cuts=(25,), klt="on")


SHAPE: list[tuple[int, ...]] = [()]


def halves(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """bench/klt_rd.py's (fit rows, scored rows), each (n, C)."""
    if x.ndim == 3:
        rows = np.moveaxis(x, 0, -1)
        return rows[0::2].reshape(-1, x.shape[0]), rows[1::2].reshape(-1, x.shape[0])
    t = x.shape[0] // 2
    return x[:t], x[t:]


def real_codec_check(x: np.ndarray) -> None:
    """The sketch's ECSQ bits against the real codec's stream at a few steps (one table)."""
    import slicer

    x32 = np.ascontiguousarray(x, dtype=np.float32)
    cls = np.zeros(x32.size, np.int64)
    scale = float(np.sqrt(np.mean(x32.astype(np.float64) ** 2)))
    for f in (0.1, 0.25, 0.5):
        step = float(np.float32(scale * f))
        s = slicer.encode(x32, mode="dense", step=step, classes=1)
        y = np.asarray(slicer.decode(s), dtype=np.float64)
        real = float(np.linalg.norm(y - x32) / np.linalg.norm(x32))
        b, sse = ecsq(x32.astype(np.float64).ravel(), step, 128, cls, 1)
        print(
            f"  check step {step:.4g}: codec {8 * len(s) / x32.size:.4f} b/el rel {real:.5f}; "
            f"sketch {b / x32.size:.4f} b/el rel {np.sqrt(sse) / np.linalg.norm(x32):.5f}",
            flush=True,
        )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--workloads", nargs="+", default=list(WORKLOADS))
    p.add_argument("--bases", nargs="+", default=["plain", "klt"], choices=["plain", "klt"])
    p.add_argument("--classes", type=int, nargs="+", default=[1, 8])
    p.add_argument("--check", action="store_true", help="compare with the real codec first")
    p.add_argument(
        "--minilm",
        type=float,
        nargs="*",
        default=None,
        metavar="B",
        help="only the MiniLM task effect at these b/el (default 2.0)",
    )
    p.add_argument(
        "--smollm2",
        type=float,
        nargs="*",
        default=None,
        metavar="B",
        help="only the SmolLM2 layer-25 task effect at these b/el (default 2.5)",
    )
    p.add_argument("--tokens", type=int, default=10240, help="--smollm2: tokens")
    p.add_argument("--plot", type=Path, default=None, help="write the gains (dB) here")
    a = p.parse_args()
    if a.minilm is not None:
        minilm_task(tuple(a.minilm) or (2.0,))
        return
    if a.smollm2 is not None:
        smollm2_task(tuple(a.smollm2) or (2.5,), a.tokens)
        return
    from slicer.split.transform import CutTransform

    print(
        f"{'workload':<12} {'basis':<5} {'K':>2} {'b/el':>5}  {'ecsq':>8} {'tcq':>8} "
        f"{'tcq+off':>8}  {'dB':>6} {'dB+off':>6}  {'b/el@=':>7}"
    )
    gains: dict[tuple[str, int], dict[str, list[float]]] = {}
    for name in a.workloads:
        fit, scored = halves(np.load(DATA / f"{name}.npy"))
        scored = np.ascontiguousarray(scored, dtype=np.float32)
        if a.check:
            real_codec_check(scored)
        tr = CutTransform.fit([fit]) if "klt" in a.bases else None
        for basis in a.bases:
            x = scored if basis == "plain" else tr.forward(scored)
            SHAPE[0] = x.shape
            for k in a.classes:
                t0 = time.perf_counter()
                res = sweep(x, k, BUDGETS)
                # error relative to the scored tensor (the KLT is orthonormal)
                sc = float(np.linalg.norm(x.astype(np.float64)) / np.linalg.norm(scored))
                for i, b in enumerate(BUDGETS):
                    e, t, o = (res[s][i] * sc for s in ("ecsq", "tcq", "tcq_off"))
                    gains.setdefault((basis, k), {}).setdefault(name, []).append(
                        20 * np.log10(e / o)
                    )
                    print(
                        f"{name:<12} {basis:<5} {k:>2} {b:>5.1f}  {e:>8.5f} {t:>8.5f} {o:>8.5f}  "
                        f"{20 * np.log10(e / t):>+6.2f} {20 * np.log10(e / o):>+6.2f}  "
                        f"{res['rate_same_error'][i]:>7.3f}",
                        flush=True,
                    )
                print(f"  ({time.perf_counter() - t0:.0f} s)", file=sys.stderr, flush=True)
    if a.plot is not None:
        plot(gains, a.plot)


def plot(gains: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = sorted(gains)
    fig, axes = plt.subplots(1, len(keys), figsize=(4.2 * len(keys), 3.8), sharey=True)
    for ax, key in zip(np.atleast_1d(axes), keys, strict=True):
        for name, g in gains[key].items():
            ax.plot(BUDGETS, g, marker="o", label=name)
        ax.axhline(0, color="grey", lw=0.8)
        ax.axhline(0.25, color="grey", lw=0.8, ls=":")
        ax.set_title(f"{key[0]}, {key[1]} class{'es' if key[1] > 1 else ''}")
        ax.set_xlabel("bits per element (ideal, tables counted)")
        ax.grid(alpha=0.3)
    np.atleast_1d(axes)[0].set_ylabel("TCQ (+offsets) gain over ECSQ, dB of squared error")
    np.atleast_1d(axes)[-1].legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
