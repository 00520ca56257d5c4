"""Where the dense coder's overhead on 4096-element groups goes, what could be saved, and what no
coder can save (issue 7 target: coded codes within 3 % of their order-0 entropy on groups of
>= 4096 elements). Measured on the real streams; nothing here changes the format.

    python bench/entropy_account.py                 # table of the split (RESULTS §9.22 (a))
    python bench/entropy_account.py --prototypes    # + the table / flush / chunk prototypes (b)
    python bench/entropy_account.py --prototypes smollm2_l15 gemma3_l9   # these workloads
    python bench/entropy_account.py --prototypes --plot bench/plots/entropy_account.png

For every workload and target rate, the first 4096 elements are encoded with the C++ coder at
the step that gives the rate (bench_entropy.step_for: the same streams as §9.2). The coded bits
(frequency table + chunk table + rANS bytes + extra bits, from ``slicer.inspect``) minus
H0 = N x order-0 entropy of the integer codes q split exactly into

- ``table``: the frequency table's bits (§13.1);
- ``chunk``: the chunk table's bits (§13.3);
- ``prec``: sum over elements of -log2(f_s / 2^14) minus N x H(symbol), the loss of coding the
  symbols with the stream's quantised frequencies instead of their own empirical ones;
- ``flush``: the rANS bytes minus sum -log2(f_s / 2^14): the final state and renormalisation
  rounding (§14);
- ``extra``: the extra bits minus their share of H0, N x H(q | symbol) (a code seen once has no
  share: every one of its extra bits is overhead here).

What is achievable with the model counted: ``nml`` is the exact minimax regret of the order-0
model over the K distinct codes of the slice, log2 C(N, K) (normalised maximum likelihood; the
Kontkanen-Myllymaki recurrence), ``mdl`` its two-part approximation (K - 1) / 2 x log2 N, and
``kt`` an adaptive order-0 coder's ideal code length (Krichevsky-Trofimov estimator over the used
symbols, a bitmap of them and the extra bits raw; no flush) minus H0.

With ``--prototypes`` (ideal code lengths under the quantised tables, plus the exact table bits
of each table coding; the flush and chunk terms as the real stream's unless changed):

- ``coarse``: count classes with r = 3 (today), 2, 1 or 0 mantissa bits, the encoder picking
  the cheapest table + codes by exact count (2 bits say which);
- ``geom``: a parametric table, a two-sided geometric law with a zero mass (8-bit zero mass,
  8-bit log-scale of the mean magnitude, nsym), taken when cheaper; built with integers only
  (``geom_counts``: one 16-entry table of 2^(-k/16), Q32 powers), as a spec would need;
- ``esc``: rare symbols (count <= 2, highest first) moved to one escape symbol, each escaped
  element followed by its symbol in 9 raw bits, on the best of coarse / geom;
- ``carry``: the rANS start state carries up to 30 extra bits (x0 = L + raw; the decoder reads
  them from its final state instead of checking x = L): the flush shrinks by min(E, 30) bits;
- ``chunk1``: a stream of one chunk stores rans_len only (bits_len = what is left);
- ``nochunk``: a stream of one chunk stores no lengths (extra bits read from the stream's end
  backwards, the rANS bytes from its start);
- ``state16``: 24-bit rANS states (L = 2^16, states in [2^16, 2^24), a 3-byte final state)
  instead of 32-bit ones: exact rANS bytes of that coder over the same symbols and table;
- ``all``: best table kind with escapes, ``carry`` (up to 23 bits with 24-bit states),
  ``state16`` and ``nochunk`` together;
- ``xbits`` (not in ``all``; an ideal figure with its model free): the extra bits coded under a
  geometric law of the magnitudes fitted to the slice (mean of m given m >= 1) instead of raw.
"""

from __future__ import annotations

import functools
import math
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))

import bench_entropy as be  # noqa: E402
import bench_rd  # noqa: E402

import reference_dense as rd  # noqa: E402

SLICE = 4096
P = rd.PROB_SCALE


def entropy_of_counts(counts: np.ndarray) -> float:
    c = counts[counts > 0].astype(np.float64)
    n = c.sum()
    return float(-np.sum(c * np.log2(c / n)))


def nml_regret(n: int, k: int) -> float:
    """log2 C(n, k): the multinomial NML normaliser (exact, Kontkanen & Myllymaki 2007)."""
    if k <= 1 or n == 0:
        return 0.0
    h = np.arange(n + 1, dtype=np.float64)
    lb = np.array([math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1) for i in h])
    with np.errstate(divide="ignore", invalid="ignore"):  # h log(h/n) + (n-h) log((n-h)/n)
        t = np.where(h > 0, h * np.log(h / n), 0.0)
        t += np.where(h < n, (n - h) * np.log((n - h) / n), 0.0)
    log_c2 = np.logaddexp.reduce(lb + t)  # natural log of C(n, 2)
    log_c = [0.0, log_c2]  # C(n,1), C(n,2)
    for j in range(1, k - 1):  # C(n, j+2) = C(n, j+1) + n / j * C(n, j)
        log_c.append(np.logaddexp(log_c[-1], math.log(n / j) + log_c[-2]))
    return float(log_c[k - 1] / math.log(2))


def kt_bits(counts: np.ndarray) -> float:
    """Ideal code length of an adaptive Krichevsky-Trofimov coder over the used symbols."""
    c = counts[counts > 0]
    a, n = c.size, int(c.sum())
    if a <= 1:
        return 0.0
    lg = math.lgamma
    bits = lg(n + a / 2) - lg(a / 2) - sum(lg(v + 0.5) - lg(0.5) for v in c.tolist())
    return bits / math.log(2)


# ----------------------------------------------------------------------------- table codings


# count classes with r mantissa bits and their nearest class: docs/format.md §13.5 (the reference)
class_count_r = rd.class_count_bits
count_class_r = rd.count_class_bits


def eg0_bits(z: int) -> int:
    return 2 * (z + 1).bit_length() - 1


def class_table_bits(classes: list[int]) -> int:
    """Bytes of §13.1's table for these classes, in bits (varint nsym + padded bit field)."""
    pairs = zip(classes[:-1], classes[1:], strict=True)
    nbits = 9 + sum(eg0_bits(rd.zigzag(b - a)) for a, b in pairs)
    return 8 * (len(rd.varint(len(classes))) + (nbits + 7) // 8)


def code_bits(counts: np.ndarray, freq: list[int]) -> float:
    f = np.asarray(freq, dtype=np.float64)
    used = counts > 0
    return float(-np.sum(counts[used] * np.log2(f[used] / P)))


def classes_table(counts: np.ndarray, r: int) -> tuple[int, list[int]]:
    """(table bits, normalised frequencies) of count classes with r mantissa bits."""
    classes = [0 if c == 0 else count_class_r(int(c), r) for c in counts.tolist()]
    return class_table_bits(classes), rd.normalize([class_count_r(v, r) for v in classes])


@functools.lru_cache(maxsize=1 << 16)
def geom_counts(nsym: int, z: int, a: int) -> tuple[int, ...]:
    """Integer pseudo-counts of the geometric table with parameters z, a (docs/format.md §13.5,
    the reference's rule): zero mass (2z + 1) / 512, 1 - theta = 2^(-a/16), each sign half of
    P(bin | m >= 1) = theta^(lo - 1) (1 - theta^(2^w)); every symbol >= 1."""
    return tuple(rd.geom_counts(nsym, z, a))


def geom_table(counts: np.ndarray) -> tuple[int, list[int]]:
    """(table bits, frequencies) of the 8 + 8-bit geometric table (z, a, nsym) with the fewest
    code bits: z near the zero fraction (± 3), every a."""
    nsym, n = counts.size, counts.sum()
    best, best_freq = math.inf, []
    z0 = int(np.clip(round(256 * counts[0] / n - 0.5), 0, 255))
    for z in range(max(0, z0 - 3), min(256, z0 + 4)):
        for a in range(256):
            freq = rd.normalize(list(geom_counts(nsym, z, a)))
            bits = code_bits(counts, freq)
            if bits < best:
                best, best_freq = bits, freq
    return 8 * (2 + len(rd.varint(nsym))), best_freq


def best_table(counts: np.ndarray, kinds: tuple[str, ...]) -> tuple[int, list[int], str]:
    """The kind with the fewest table + ideal code bits: (table bits, frequencies, kind)."""
    best, cost = (0, [], ""), math.inf
    for kind in kinds:
        t, freq = geom_table(counts) if kind == "geom" else classes_table(counts, int(kind[1:]))
        if t + code_bits(counts, freq) < cost:
            best, cost = (t, freq, kind), t + code_bits(counts, freq)
    return best


def with_escapes(counts: np.ndarray, kinds: tuple[str, ...]) -> tuple[int, np.ndarray, int]:
    """(k, symbol map, escaped count): the k highest rare symbols (count <= 2) coded as one
    escape symbol after the last kept one plus their symbol in 9 raw bits, k = 0 … all,
    the fewest table + ideal code + raw bits (k = 0: the map is the identity)."""
    rare = [s for s in range(counts.size - 1, 0, -1) if 0 < counts[s] <= 2]
    ident = np.arange(counts.size)
    t, freq, _ = best_table(counts, kinds)
    best = (t + code_bits(counts, freq), 0, ident, 0)
    for k in range(1, len(rare) + 1):
        kept = counts.copy()
        kept[rare[:k]] = 0
        top = int(np.nonzero(kept)[0].max()) + 1
        remap = ident.copy()
        remap[rare[:k]] = top
        c = np.bincount(remap, weights=counts, minlength=top + 1).astype(np.int64)
        moved = int(counts[rare[:k]].sum())
        t, freq, _ = best_table(c, kinds)
        bits = t + code_bits(c, freq) + 9 * moved
        if bits < best[0]:
            best = (bits, k, remap, moved)
    return best[1], best[2], best[3]


def rans_bytes(
    symbols: list[int], freq: list[int], low: int = rd.RANS_L, state_bytes: int = 4, start: int = 0
) -> int:
    """Length of §14's one-state rANS with lower bound ``low`` (states in [low, low << 8)), a
    final state of ``state_bytes`` bytes and the start state low + ``start`` (a carried value)."""
    cum = np.concatenate([[0], np.cumsum(freq)]).tolist()
    x, emitted = low + start, 0
    assert x < low << 8
    for s in reversed(symbols):
        f = freq[s]
        x_max = ((low >> rd.PROB_BITS) << 8) * f
        while x >= x_max:
            emitted += 1
            x >>= 8
        x = ((x // f) << rd.PROB_BITS) + (x % f) + cum[s]
    return emitted + state_bytes


def proposal_bits(p: rd.Plan, a, option: set[str]) -> int:
    """Exact coder bits (table + chunk table + rANS + extra bits) of the slice under the
    prototype ``option`` (a set of the names above; empty = today's coder, checked against the
    real stream)."""
    sym = p.symbols
    counts = np.bincount(sym).astype(np.int64)
    kinds = ("r3",)
    if "coarse" in option:
        kinds = ("r3", "r2", "r1", "r0")
    if "geom" in option:
        kinds = kinds + ("geom",)
    remap, moved = np.arange(counts.size), 0
    if "esc" in option:
        _, remap, moved = with_escapes(counts, kinds)
    coded = remap[sym]
    table, freq, _ = best_table(np.bincount(coded).astype(np.int64), kinds)
    ebits = int(p.nbits.sum()) + 9 * moved
    low, state_bytes, carry_max = rd.RANS_L, 4, 30
    if "state16" in option:
        low, state_bytes, carry_max = 1 << 16, 3, 23
    carry = min(ebits, carry_max) if "carry" in option else 0
    bw = rd.BitWriter()  # the value carried: the first extra bits of the chunk (§14 order)
    for nb, ex in zip(p.nbits.tolist(), p.extra.tolist(), strict=True):
        bw.write(ex, nb)
    start = bw.acc & ((1 << carry) - 1)
    rans = rans_bytes(coded.tolist(), freq, low, state_bytes, start)
    extra = (ebits - carry + 7) // 8
    chunk = len(rd.varint(rans)) + len(rd.varint(extra))
    if "chunk1" in option:
        chunk = len(rd.varint(rans))
    if "nochunk" in option:
        chunk = 0
    bits = table + 8 * (chunk + rans + extra)
    if not option:
        assert bits == 8 * (a.freq_table + a.chunk_table + a.codes + a.extra_bits)
    return bits


def xbits_gain(p: rd.Plan) -> float:
    """Ideal bits saved by coding the extra bits under a geometric law fitted to the slice
    (P(m | its bin) instead of 2^-w); the law's parameter is not counted."""
    m = p.m[p.m >= 1].astype(np.float64)
    big = p.nbits > 0
    if not big.any():
        return 0.0
    theta = 1.0 - 1.0 / max(float(m.mean()), 1.0 + 1e-9)
    lo = (p.m[big] >> p.nbits[big]) << p.nbits[big]  # the bin's smallest magnitude
    w = p.nbits[big].astype(np.float64)
    # -log2 P(m | bin) = -log2( theta^(m - lo) (1 - theta) / (1 - theta^(2^w)) )
    cost = -(p.m[big] - lo) * np.log2(theta) - np.log2(1 - theta) + np.log2(1 - theta ** (2**w))
    return float(np.sum(cost) - np.sum(w))


PROTOTYPES = {
    "coarse": {"coarse"},
    "geom": {"coarse", "geom"},
    "esc": {"coarse", "geom", "esc"},
    "carry": {"carry"},
    "chunk1": {"chunk1"},
    "nochunk": {"nochunk"},
    "state16": {"state16"},
    "all": {"coarse", "geom", "esc", "carry", "state16", "nochunk"},
}


# ----------------------------------------------------------------------------- per slice


def account(part: np.ndarray, bpe: float, prototypes: bool) -> dict:
    import slicer

    step = be.step_for(part, bpe)
    stream = slicer.encode(part, mode="dense", step=step)
    a = slicer.inspect(stream).account
    p = rd.plan(part, rd.default_params(step=step))
    q = np.where(p.negative, -p.m, p.m)
    n = q.size
    _, qcounts = np.unique(q, return_counts=True)
    h0 = entropy_of_counts(qcounts)
    sym = p.symbols
    counts = np.bincount(sym).astype(np.int64)
    hs = entropy_of_counts(counts)
    _, freq, _ = rd.frequencies(sym)
    ideal = code_bits(counts, freq)
    ebits = int(p.nbits.sum())
    coded = 8 * (a.freq_table + a.chunk_table + a.codes + a.extra_bits)
    row = {
        "bpe": bpe, "n": n, "h0": h0, "coded": coded,
        "table": 8 * a.freq_table, "chunk": 8 * a.chunk_table,
        "prec": ideal - hs, "flush": 8 * a.codes - ideal,
        "extra": 8 * a.extra_bits - (h0 - hs), "ebits": ebits,
        "K": int(qcounts.size), "nsym": int(np.count_nonzero(counts)),
        "nml": nml_regret(n, int(qcounts.size)),
        "mdl": (qcounts.size - 1) / 2 * math.log2(n),
        "kt": kt_bits(counts) + counts.size + 8 * len(rd.varint(counts.size)) + ebits - h0,
    }  # fmt: skip
    if prototypes:
        today = proposal_bits(p, a, set())
        for name, option in PROTOTYPES.items():
            row[name] = proposal_bits(p, a, option) - today
        row["xbits"] = xbits_gain(p)
    return row


def pct(bits: float, h0: float) -> str:
    return f"{100 * bits / h0:+.2f}"


def plot(rows: list[tuple[str, dict]], path: Path) -> None:
    """Stacked overhead split per workload and rate, with the NML regret and the prototypes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    parts = ("table", "chunk", "flush", "prec", "extra")
    names = list(dict.fromkeys(name for name, _ in rows))
    fig, axes = plt.subplots(1, len(names), figsize=(2.6 * len(names), 4.2), sharey=True)
    for ax, name in zip(np.atleast_1d(axes), names, strict=True):
        sub = [r for n, r in rows if n == name]
        xs = np.arange(len(sub))
        bottom = np.zeros(len(sub))
        for part in parts:
            v = np.array([100 * r[part] / r["h0"] for r in sub])
            ax.bar(xs, v, bottom=bottom, label=part, width=0.7)
            bottom += v
        ax.plot(xs, [100 * r["nml"] / r["h0"] for r in sub], "k_", ms=18, mew=2, label="NML regret")
        if "all" in sub[0]:
            over = [100 * (r["coded"] - r["h0"] + r["all"]) / r["h0"] for r in sub]
            ax.plot(xs, over, "rv", label="all prototypes")
        ax.axhline(3, color="gray", ls=":", lw=1)
        ax.set_xticks(xs, [f"{r['bpe']:g}" for r in sub])
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("b/el")
    np.atleast_1d(axes)[0].set_ylabel("coded - H0, % of H0 (4096 elements)")
    np.atleast_1d(axes)[-1].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv: list[str]) -> int:
    from tqdm import tqdm

    prototypes = "--prototypes" in argv
    plot_path = Path(argv[argv.index("--plot") + 1]) if "--plot" in argv else None
    skip = {str(plot_path)} if plot_path else set()
    names = [a for a in argv if not a.startswith("--") and a not in skip]  # default: manifest
    if names:
        workloads = {n: np.load(bench_rd.DATA_DIR / f"{n}.npy") for n in names}
    else:
        workloads = bench_rd.load_workloads(bench_rd.DATA_DIR, None)
    rows = []
    jobs = [(name, bpe) for name in workloads for bpe in be.TARGET_BPE]
    for name, bpe in tqdm(jobs, desc="slices", file=sys.stderr):
        part = workloads[name].reshape(-1)[:SLICE]
        rows.append((name, account(part, bpe, prototypes)))
    print("Split of coded - H0 at 4096 elements, in % of H0 (bits in brackets where useful):")
    print()
    print("| workload | b/el | H0 b/el | K codes | over | table | chunk | flush | prec | extra "
          "| nml | mdl | kt |")  # fmt: skip
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, r in rows:
        h0 = r["h0"]
        print(
            f"| {name} | {r['bpe']:g} | {h0 / r['n']:.4f} | {r['K']} | "
            f"{pct(r['coded'] - h0, h0)} | {pct(r['table'], h0)} ({r['table']}) | "
            f"{pct(r['chunk'], h0)} | {pct(r['flush'], h0)} | {pct(r['prec'], h0)} | "
            f"{pct(r['extra'], h0)} | {pct(r['nml'], h0)} | {pct(r['mdl'], h0)} | "
            f"{pct(r['kt'], h0)} |"
        )
    if prototypes:
        print()
        print("Prototypes, exact bytes: change of the coded size in % of H0 (each alone), and the")
        print("overhead over H0 with all of them:")
        print()
        names = [k for k in PROTOTYPES if k != "all"] + ["xbits"]
        print("| workload | b/el | over today | " + " | ".join(names) + " | over with all | nml |")
        print("|---|---:|---:|" + "---:|" * len(names) + "---:|---:|")
        for name, r in rows:
            h0 = r["h0"]
            cells = " | ".join(pct(r[k], h0) for k in names)
            print(
                f"| {name} | {r['bpe']:g} | {pct(r['coded'] - h0, h0)} | {cells} | "
                f"{pct(r['coded'] - h0 + r['all'], h0)} | {pct(r['nml'], h0)} |"
            )
    if plot_path:
        plot(rows, plot_path)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
