"""Pure-NumPy reference of SLICER bitstream format 2, modes 1 ("dense") and 2 (dense with class
tables).

The executable form of ``docs/format.md`` §10-§16 and §19: written to be read next to the spec,
not to be fast (the rANS coder is a plain Python loop). The C++ backend is tested for byte equality
against it. Depends only on NumPy, ``zlib`` and ``ml_dtypes``.

Parameters (all already integers, as the stream stores them)::

    {"step": float (a binary32 value > 0), "rho_256": 1..128, "offsets": None | (o1, o2)
     (None: the data rule of §12.3), "chunk_log2": 6..24, "layout": 0 tensor / 1 rows /
     2 channels, "group_table": None | list of per-group bytes (§13.1),
     "classes": 1 (mode 1) | 2..16 (mode 2, §19), "class_axis": 0 last axis / 1 axis 1,
     "class_map": "rank" (§18.1 map bytes, §18.2's rule) | "ranges" (§18.3 index ranges) |
     "bounds" (§18.4 range boundaries, "class_bounds": the K − 1 boundaries)}
"""

from __future__ import annotations

import math
import struct
import zlib
from dataclasses import dataclass, field

import ml_dtypes
import numpy as np

MAGIC = b"SLCR"
VERSION = 2
DTYPE_CODES = {
    np.dtype(np.float32): 1,
    np.dtype(np.float16): 2,
    np.dtype(ml_dtypes.bfloat16): 3,
    np.dtype(np.float64): 4,
}
CODE_DTYPES = {code: dt for dt, code in DTYPE_CODES.items()}
LAYOUT_TENSOR, LAYOUT_ROWS, LAYOUT_CHANNELS = 0, 1, 2
MODE_DENSE = 1
MODE_CLASSES = 2  # §19: dense with class tables
DENSE_PARAMS_LEN = 9
CLASS_PARAMS_LEN = 11
# §11 symbols
DIRECT = 8  # magnitudes below this are their own bin
MAX_MAG = 1 << 53  # largest |q| a stream may carry
NUM_BINS = DIRECT + 4 * (53 - 3) + 4  # 212: bins 0 … 211
NUM_SYMBOLS = 2 * NUM_BINS - 1  # 423
# §14 rANS
PROB_BITS = 14
PROB_SCALE = 1 << PROB_BITS
RANS_L = 1 << 23
INTERLEAVE_MIN = 8192  # chunks with at least this many coded elements use 4 states
# §13.2 count classes
CLASS_MAX = 511
# §12.1 step table: 2^(k/8) rounded to binary64
STEP_FRACTION = [
    float.fromhex(h)
    for h in (
        "0x1.0000000000000p+0",
        "0x1.172b83c7d517bp+0",
        "0x1.306fe0a31b715p+0",
        "0x1.4bfdad5362a27p+0",
        "0x1.6a09e667f3bcdp+0",
        "0x1.8ace5422aa0dbp+0",
        "0x1.ae89f995ad3adp+0",
        "0x1.d5818dcfba487p+0",
    )
]
GROUP_ZERO, GROUP_RAW = 0x80, 0x81


class ReferenceFormatError(ValueError):
    """A stream that format 2 calls invalid."""


class UnsupportedModeError(ReferenceFormatError):
    """A well-formed format-2 stream of a mode this reference does not know."""


def default_params(**overrides) -> dict:
    params = {
        "step": 0.01,
        "rho_256": 128,
        "offsets": None,
        "chunk_log2": 14,
        "layout": LAYOUT_TENSOR,
        "group_table": None,
        "classes": 1,
        "class_axis": 0,
        "class_map": "rank",
        "class_bounds": None,
        "table_kind": 0,  # §13.5: 0 … 4, or "auto" (the shortest stream; mode 1 only)
        "low_bits": 0,  # §13.6: 0 … 15, or "auto" (mode 1 only)
    }
    unknown = set(overrides) - set(params)
    if unknown:
        raise KeyError(f"unknown parameters {sorted(unknown)}")
    params.update(overrides)
    params["step"] = float(np.float32(params["step"]))
    return params


# ----------------------------------------------------------------------------- primitives


def varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


class BitWriter:
    """LSB-first bit writer (spec §1)."""

    def __init__(self) -> None:
        self.acc = 0
        self.nbits = 0

    def write(self, value: int, nbits: int) -> None:
        self.acc |= (value & ((1 << nbits) - 1)) << self.nbits
        self.nbits += nbits

    def exp_golomb(self, z: int) -> None:
        u = z + 1
        length = u.bit_length() - 1
        self.write(0, length)
        self.write(1, 1)
        self.write(u - (1 << length), length)

    def finish(self) -> bytes:
        return self.acc.to_bytes((self.nbits + 7) // 8, "little")


class BitReader:
    def __init__(self, data: bytes, start: int = 0, end: int | None = None) -> None:
        self.data = data
        self.pos = 8 * start
        self.end = 8 * (len(data) if end is None else end)

    def read(self, nbits: int) -> int:
        if self.pos + nbits > self.end:
            raise ReferenceFormatError("bit field read past its end")
        value = 0
        for i in range(nbits):
            p = self.pos + i
            value |= ((self.data[p >> 3] >> (p & 7)) & 1) << i
        self.pos += nbits
        return value

    def exp_golomb(self, max_length: int) -> int:
        length = 0
        while self.read(1) == 0:
            length += 1
            if length > max_length:
                raise ReferenceFormatError("Exp-Golomb code too long")
        return (1 << length) + self.read(length) - 1

    def finish(self) -> int:
        """Check the zero padding to the next byte; return the byte position after it."""
        pad = (-self.pos) % 8
        if self.read(pad):
            raise ReferenceFormatError("non-zero padding bits")
        return self.pos // 8


def zigzag(v: int) -> int:
    return 2 * v if v >= 0 else -2 * v - 1


def unzigzag(z: int) -> int:
    return z >> 1 if z % 2 == 0 else -((z + 1) >> 1)


# ----------------------------------------------------------------------------- §12 groups, steps


def group_count(shape: tuple[int, ...], layout: int) -> int:
    n = math.prod(shape)
    if layout == LAYOUT_TENSOR:
        return 1
    if layout == LAYOUT_ROWS:
        if len(shape) < 1:
            raise ValueError("layout rows needs at least one axis")
        return n // shape[-1] if n else 0
    if layout == LAYOUT_CHANNELS:
        if len(shape) < 2:
            raise ValueError("layout channels needs at least two axes")
        return shape[1]
    raise ValueError(f"unknown layout {layout}")


def group_of(shape: tuple[int, ...], layout: int) -> np.ndarray:
    """Group index of every flat element (C order)."""
    n = math.prod(shape)
    i = np.arange(n, dtype=np.int64)
    if layout == LAYOUT_TENSOR or n == 0:
        return np.zeros(n, dtype=np.int64)
    if layout == LAYOUT_ROWS:
        return i // shape[-1]
    inner = math.prod(shape[2:])
    return (i // inner) % shape[1]


def class_length(shape: tuple[int, ...], axis: int) -> int:
    """L of §19.1: shape[-1] (axis 0) or shape[1] (axis 1)."""
    if axis == 0 and len(shape) >= 1:
        return shape[-1]
    if axis == 1 and len(shape) >= 2:
        return shape[1]
    raise ValueError(f"class_axis {axis} needs more axes than {len(shape)}")


def position_of(shape: tuple[int, ...], axis: int) -> np.ndarray:
    """Position (along the class axis, §19.1) of every flat element (C order)."""
    n = math.prod(shape)
    i = np.arange(n, dtype=np.int64)
    length = class_length(shape, axis)
    if n == 0:
        return i
    if axis == 0:
        return i % length
    inner = math.prod(shape[2:])
    return (i // inner) % length


def group_step(step: float, e: int) -> float:
    """Δ_g = Δ0 · F[e mod 8] · 2^(e div 8) (§12.1), binary64."""
    return math.ldexp(step * STEP_FRACTION[e & 7], e >> 3)


def quantize(a: np.ndarray, delta: np.ndarray, rho_256: int) -> tuple[np.ndarray, np.ndarray]:
    """Magnitudes a ≥ 0 (binary64) → (m, t): t = a / Δ, m = floor(t + ρ) (§12.2)."""
    t = a / delta
    m = np.floor(t + rho_256 / 256.0)
    if m.size and float(m.max()) > MAX_MAG:
        raise ValueError("step too small for the data: a code exceeds 2^53")
    return m.astype(np.int64), t


def offset_rule(m: np.ndarray, t: np.ndarray) -> tuple[int, int]:
    """The data-optimal reconstruction offsets o1 (|q| = 1) and o2 (|q| ≥ 2), §12.3."""
    out = []
    for sel in (m == 1, m >= 2):
        count = int(sel.sum())
        if count == 0:
            out.append(0)
            continue
        d = t[sel] - m[sel].astype(np.float64)  # exact (Sterbenz)
        s = int(np.floor(d * 2.0**20).astype(np.int64).sum())
        o = (2 * s + count * 4096) // (2 * count * 4096)
        out.append(max(-128, min(127, o)))
    return out[0], out[1]


def dequantize(m: np.ndarray, negative: np.ndarray, delta: np.ndarray, o1: int, o2: int):
    """x̂ = ±(m + o/256) · Δ (binary64), 0 for m = 0 (§12.4)."""
    off = np.where(m == 1, o1 / 256.0, o2 / 256.0)
    v = (m.astype(np.float64) + off) * delta
    v = np.where(m == 0, 0.0, v)
    return np.where(negative, -v, v)


# ----------------------------------------------------------------------------- §11 symbols


def magnitude_bin(m: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """m → (bin, extra-bit count, extra-bit value)."""
    m = m.astype(np.int64)
    e = np.zeros_like(m)
    big = m >= DIRECT
    e[big] = np.floor(np.log2(m[big].astype(np.float64))).astype(np.int64)
    # floor(log2) by float can be off by one near powers of two: fix exactly
    e[big] -= (np.left_shift(1, e[big]) > m[big]).astype(np.int64)
    e[big] += (np.left_shift(1, e[big] + 1) <= m[big]).astype(np.int64)
    nbits = np.where(big, e - 2, 0)
    top = np.where(big, (m >> np.maximum(e - 2, 0)) & 3, 0)
    b = np.where(big, DIRECT + 4 * (e - 3) + top, m)
    extra = np.where(big, m & ((np.left_shift(1, nbits)) - 1), 0)
    return b, nbits, extra


def symbols_of(m: np.ndarray, negative: np.ndarray):
    b, nbits, extra = magnitude_bin(m)
    sym = np.where(b == 0, 0, np.where(negative, 2 * b, 2 * b - 1))
    return sym, nbits, extra


def bin_base(b: int) -> tuple[int, int]:
    """Bin → (smallest magnitude, extra-bit count)."""
    if b < DIRECT:
        return b, 0
    e = (b - DIRECT) // 4 + 3
    top = (b - DIRECT) % 4
    return (4 + top) << (e - 2), e - 2


# ----------------------------------------------------------------------------- §13.2 table


def class_count(v: int) -> int:
    if v < 16:
        return v
    k, mt = divmod(v - 16, 8)
    return (8 + mt) << (k + 1)


def count_class(n: int) -> int:
    """The class v whose count is nearest to n ≥ 1 (ties to the lower)."""
    lo, hi = 1, CLASS_MAX
    while lo < hi:  # largest v with class_count(v) <= n
        mid = (lo + hi + 1) // 2
        if class_count(mid) <= n:
            lo = mid
        else:
            hi = mid - 1
    v = lo
    if v < CLASS_MAX and class_count(v + 1) - n < n - class_count(v):
        v += 1
    return v


def normalize(counts: list[int]) -> list[int]:
    """Deterministic normalisation of class counts to frequencies summing to 2^14 (§13.3)."""
    total = sum(counts)
    f = [0 if c == 0 else max(1, c * PROB_SCALE // total) for c in counts]
    diff = PROB_SCALE - sum(f)
    if diff > 0:
        f[f.index(max(f))] += diff
    while diff < 0:
        s = f.index(max(f))
        d = min(-diff, f[s] - 1, max(1, f[s] >> 2))
        f[s] -= d
        diff += d
    return f


def write_table(classes: list[int]) -> bytes:
    out = bytearray(varint(len(classes)))
    if not classes:
        return bytes(out)
    bw = BitWriter()
    bw.write(classes[0], 9)
    for prev, cur in zip(classes[:-1], classes[1:], strict=True):
        bw.exp_golomb(zigzag(cur - prev))
    return bytes(out) + bw.finish()


# ----------------------------------------------------------------------------- §13.5 table kinds

TABLE_KIND_GEOM = 4  # kinds 0 … 3: count classes with 3 − kind mantissa bits; 4: geometric
CLASS_MAX_BY_BITS = {3: 511, 2: 255, 1: 127, 0: 63}
# floor(2^(32 − k/16)), k = 0 … 15: the largest x with x^16 ≤ 2^(512 − k) (§13.5)
GEOM_ROOTS = [
    4294967296, 4112874773, 3938502375, 3771522796, 3611622602, 3458501653, 3311872529,
    3171459999, 3037000499, 2908241642, 2784941737, 2666869344, 2553802833, 2445529971,
    2341847523, 2242560871,
]  # fmt: skip


def class_count_bits(v: int, r: int) -> int:
    """cnt(v) of count classes with r mantissa bits (r = 3: §13.1's class_count)."""
    t, half = 2 << r, 1 << r
    if v < t:
        return v
    k, mt = divmod(v - t, half)
    return (half + mt) << (k + 1)


def count_class_bits(n: int, r: int) -> int:
    """The class (r mantissa bits) whose count is nearest to n ≥ 1 (ties to the lower)."""
    lo, hi = 1, CLASS_MAX_BY_BITS[r]
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if class_count_bits(mid, r) <= n:
            lo = mid
        else:
            hi = mid - 1
    if lo < CLASS_MAX_BY_BITS[r] and class_count_bits(lo + 1, r) - n < n - class_count_bits(lo, r):
        lo += 1
    return lo


def pow_q32(base: int, n: int) -> int:
    """base^n in unsigned Q32 (base ≤ 2^32): square-and-multiply, every product floored."""
    r = 1 << 32
    while n:
        if n & 1:
            r = (r * base) >> 32
        base = (base * base) >> 32
        n >>= 1
    return r


def geom_counts(nsym: int, z: int, a: int) -> list[int]:
    """§13.5 pseudo-counts of the geometric table (z, a): normalised by §13.2 like classes."""
    theta = (1 << 32) - (GEOM_ROOTS[a % 16] >> (a // 16))
    zero = (2 * z + 1) << 15
    counts = [zero]
    for s in range(1, nsym):
        lo, w = bin_base((s + 1) // 2)
        mass = (pow_q32(theta, lo - 1) * ((1 << 32) - pow_q32(theta, 1 << w))) >> 32
        counts.append(max(1, ((1 << 24) - zero) * mass >> 33))
    return counts


# round(2^16 · log2 f), f = 0 … 2^14 (entry 0 unused): the encoder's exact code-length score
LOG2_Q16 = [0] + [round(65536 * math.log2(f)) for f in range(1, PROB_SCALE + 1)]


def table_score(hist: list[int], freq: list[int]) -> int:
    """Σ n_s · round(2^16 · log2 f_s): the larger, the fewer ideal code bits (exact integers)."""
    return sum(n * LOG2_Q16[f] for n, f in zip(hist, freq, strict=False) if n)


def table_model(symbols: np.ndarray, kind: int) -> tuple[bytes, list[int], list[int]]:
    """(table bytes, freq, cum) of the coded symbols under table kind 0 … 4 (§13.5)."""
    if symbols.size == 0:
        return varint(0), [], [0]
    hist = np.bincount(symbols)
    if kind == TABLE_KIND_GEOM:  # the (z, a) of the largest score, ties to the first
        nsym, counts, best = hist.size, hist.tolist(), (-1, 0, 0, [])
        z0 = min(255, 256 * counts[0] // symbols.size)
        for z in range(max(0, z0 - 3), min(256, z0 + 4)):
            for a in range(256):
                freq = normalize(geom_counts(nsym, z, a))
                score = table_score(counts, freq)
                if score > best[0]:
                    best = (score, z, a, freq)
        _, z, a, freq = best
        table = varint(nsym) + bytes([z, a])
    else:
        r = 3 - kind
        classes = [0 if c == 0 else count_class_bits(int(c), r) for c in hist.tolist()]
        freq = normalize([class_count_bits(v, r) for v in classes])
        table = write_table(classes)
    cum = [0]
    for f in freq:
        cum.append(cum[-1] + f)
    return table, freq, cum


def read_model(stream: bytes, r: ByteReader, end: int, kind: int) -> list[int]:
    """One §13.5 table of the given kind at r.pos → its frequencies (empty if nsym = 0)."""
    if kind == TABLE_KIND_GEOM:
        nsym = r.varint()
        if nsym > NUM_SYMBOLS:
            raise ReferenceFormatError("alphabet larger than the format allows")
        if nsym == 0:
            return []
        z, a = r.u8(), r.u8()
        return normalize(geom_counts(nsym, z, a))
    bits = 3 - kind
    classes = read_table(stream, r, end)
    if any(v > CLASS_MAX_BY_BITS[bits] for v in classes):
        raise ReferenceFormatError("count class out of range")
    return normalize([class_count_bits(v, bits) for v in classes]) if classes else []


# ----------------------------------------------------------------------------- §14 rANS


def rans_encode(symbols: list[int], freq: list[int], cum: list[int], states: int) -> bytes:
    x = [RANS_L] * states
    out = bytearray()  # bytes in the order they are written; reversed at the end
    for i in range(len(symbols) - 1, -1, -1):
        j = i % states
        s = symbols[i]
        f = freq[s]
        x_max = ((RANS_L >> PROB_BITS) << 8) * f
        while x[j] >= x_max:
            out.append(x[j] & 0xFF)
            x[j] >>= 8
        x[j] = ((x[j] // f) << PROB_BITS) + (x[j] % f) + cum[s]
    for j in range(states - 1, -1, -1):
        for shift in (24, 16, 8, 0):
            out.append((x[j] >> shift) & 0xFF)
    return bytes(reversed(out))


def rans_decode(data: bytes, count: int, freq: list[int], cum: list[int], states: int) -> list:
    if len(data) < 4 * states:
        raise ReferenceFormatError("rANS stream shorter than its states")
    pos = 0
    x = []
    for _ in range(states):
        x.append(int.from_bytes(data[pos : pos + 4], "little"))
        pos += 4
        if not RANS_L <= x[-1] < (RANS_L << 8):
            raise ReferenceFormatError("rANS state out of range")
    slot_symbol = np.repeat(np.arange(len(freq)), freq).tolist()
    out = []
    for i in range(count):
        j = i % states
        slot = x[j] & (PROB_SCALE - 1)
        s = slot_symbol[slot]
        x[j] = freq[s] * (x[j] >> PROB_BITS) + slot - cum[s]
        while x[j] < RANS_L:
            if pos >= len(data):
                raise ReferenceFormatError("rANS stream read past its length")
            x[j] = (x[j] << 8) | data[pos]
            pos += 1
        out.append(s)
    if pos != len(data) or any(v != RANS_L for v in x):
        raise ReferenceFormatError("rANS stream does not end in its initial state")
    return out


def states_for(count: int) -> int:
    return 4 if count >= INTERLEAVE_MIN else 1


def chunk_cut_cost(n: int, c: int) -> int:
    """docs/format.md §15.1: the decoders' cost of cutting n elements into chunks of 2**c."""
    sizes = [1 << c] * (n >> c) + ([n % (1 << c)] if n % (1 << c) else [])
    four = [size >= INTERLEAVE_MIN for size in sizes]
    cost, j = 0, 0
    while j < len(sizes):
        if all(four[j : j + 4]) and j + 4 <= len(sizes):
            cost, j = cost + 10 * sum(sizes[j : j + 4]), j + 4
        elif all(four[j : j + 2]) and j + 2 <= len(sizes):
            cost, j = cost + 18 * sum(sizes[j : j + 2]), j + 2
        else:
            cost, j = cost + (22 if four[j] else 46) * sizes[j], j + 1
    return cost


def auto_chunk_log2(n: int) -> int:
    """docs/format.md §15.1: the default chunk_log2 of modes 1 and 2 for n elements."""
    if n < INTERLEAVE_MIN or n >= 1 << 18:
        return 14
    cmax = min(17, max(14, (n - 1).bit_length()))
    chosen, best = cmax, chunk_cut_cost(n, cmax)
    for c in range(cmax - 1, 12, -1):
        cost = chunk_cut_cost(n, c)
        if 20 * cost < 19 * best:
            chosen, best = c, cost
    return chosen


# ----------------------------------------------------------------------------- encoder


def as_float64(x: np.ndarray) -> tuple[np.ndarray, int]:
    dt = np.dtype(x.dtype)
    if dt not in DTYPE_CODES:
        raise TypeError(f"unsupported dtype {dt}")
    flat = np.ascontiguousarray(x).reshape(-1).astype(np.float64)
    if not np.all(np.isfinite(flat)):
        raise ValueError("input contains NaN or infinity")
    return flat, DTYPE_CODES[dt]


def header_bytes(shape, dtype_code: int, layout: int, mode: int = MODE_DENSE) -> bytes:
    out = bytearray(MAGIC)
    out += bytes([VERSION, dtype_code, 0, len(shape)])
    for dim in shape:
        out += varint(dim)
    out += bytes([layout, mode])
    return bytes(out)


@dataclass
class Plan:
    """Everything the encoder decides before entropy coding (shared with the estimators)."""

    shape: tuple
    dtype_code: int
    flat: np.ndarray
    params: dict
    table: list  # per-group byte (§13.1), or None
    coded: np.ndarray  # bool per element: in a dense group
    delta: np.ndarray  # Δ per element (binary64), dense elements
    m: np.ndarray  # |q| per element (0 outside dense groups)
    t: np.ndarray
    negative: np.ndarray
    offsets: tuple[int, int]
    symbols: np.ndarray
    nbits: np.ndarray
    extra: np.ndarray
    class_map: list | None = None  # mode 2: class of each position (§19)
    cls: np.ndarray | None = None  # mode 2: class of every element
    low_bits: int = 0  # §13.6: k; symbols / nbits / extra are then h's
    low: np.ndarray | None = None  # §13.6: l per element (k > 0)


LOW_BITS_MAX = 15


def auto_low_bits(symbols: np.ndarray) -> int:
    """§13.6's encoder rule: the largest k in 3 … 15 with 16·c_k ≤ 9·n (c_k: codes |q| < 2^k,
    i.e. symbols below 8k − 9), else 0."""
    n = symbols.size
    if n == 0:
        return 0
    hist = np.bincount(symbols, minlength=NUM_SYMBOLS)
    below = np.concatenate([[0], np.cumsum(hist)])  # below[s] = #symbols < s
    best = 0
    for k in range(3, LOW_BITS_MAX + 1):
        if 16 * int(below[min(8 * k - 9, NUM_SYMBOLS)]) <= 9 * n:
            best = k
    return best


def split_low_bits(m: np.ndarray, negative: np.ndarray, k: int):
    """q = ±m → (h, l) with q = h·2^k + l, 0 ≤ l < 2^k (§13.6); h's symbols, nbits, extra."""
    q = np.where(negative, -m, m).astype(np.int64)
    h = q >> k
    low = q & ((1 << k) - 1)
    hm = np.abs(h)
    symbols, nbits, extra = symbols_of(hm, h < 0)
    return symbols, nbits, extra, low


def plan(x: np.ndarray, params: dict) -> Plan:
    shape = tuple(int(d) for d in np.shape(x))
    flat, dtype_code = as_float64(np.asarray(x))
    layout = params["layout"]
    num_groups = group_count(shape, layout)
    table = params["group_table"]
    gid = group_of(shape, layout)
    if table is None:
        coded = np.ones(flat.size, dtype=bool)
        exps = np.zeros(flat.size, dtype=np.int64)
    else:
        if len(table) != num_groups:
            raise ValueError("group_table needs one entry per group")
        tab = np.asarray(table, dtype=np.int64)
        if np.any(
            (tab < 0) | (tab > 255) | ((tab >= 0x40) & (tab < 0x80)) | (tab > 0x81) & (tab < 0xC0)
        ):
            raise ValueError("invalid group table entry")
        coded = (
            (tab[gid] != GROUP_ZERO) & (tab[gid] != GROUP_RAW) if flat.size else np.zeros(0, bool)
        )
        exps = np.where(tab >= 0x80, tab - 256, tab)[gid] if flat.size else np.zeros(0, np.int64)
    step = params["step"]
    delta = np.array([group_step(step, int(e)) for e in range(-64, 64)])[exps + 64]
    if not (np.all(np.isfinite(delta)) and np.all(delta >= 2.0**-1022)):
        raise ValueError("group step not a finite normal number")
    a = np.abs(flat)
    m, t = quantize(np.where(coded, a, 0.0), delta, params["rho_256"])
    m = np.where(coded, m, 0)
    negative = flat < 0
    offsets = params["offsets"]
    if offsets is None:
        offsets = offset_rule(m[coded], t[coded])
    symbols, nbits, extra = symbols_of(m, negative & (m > 0))
    low_bits = params.get("low_bits", 0)
    if low_bits == "auto":  # §13.6: from the histogram of q's symbols; mode 1 only
        low_bits = 0 if params.get("classes", 1) != 1 else auto_low_bits(symbols[coded])
    if not (isinstance(low_bits, int) and 0 <= low_bits <= LOW_BITS_MAX):
        raise ValueError("low_bits must be 0 … 15 or 'auto'")
    if low_bits and params.get("classes", 1) != 1:
        raise ValueError("low_bits needs mode 1 (one frequency table)")
    low = None
    if low_bits:
        symbols, nbits, extra, low = split_low_bits(m, negative & (m > 0), low_bits)
        symbols = np.where(coded, symbols, 0)
        nbits = np.where(coded, nbits, 0)
        extra = np.where(coded, extra, 0)
    class_map, cls = None, None
    k = params.get("classes", 1)
    if k != 1:
        import reference_classes as rc  # imports this module: not at the top

        axis = params.get("class_axis", 0)
        length = class_length(shape, axis)
        if not 2 <= k <= min(rc.MAX_CLASSES, length):
            raise ValueError("classes must be in 2..min(16, L)")
        pos = position_of(shape, axis)
        kind = params.get("class_map", "rank")
        if kind == "ranges":
            class_map = rc.range_classes(length, k)
        elif kind == "bounds":
            bounds = rc.check_bounds(params["class_bounds"], length, k)
            class_map = rc.bounds_classes(bounds, length)
        elif kind == "rank":
            class_map = rc.class_rule(rc.position_sums(m, pos, coded, length), k)
        else:
            raise ValueError(f"class_map must be 'rank', 'ranges' or 'bounds', not {kind!r}")
        cls = np.asarray(class_map, dtype=np.int64)[pos] if flat.size else np.zeros(0, np.int64)
    return Plan(
        shape, dtype_code, flat, params, table, coded, delta, m, t, negative,
        tuple(offsets), symbols, nbits, extra, class_map, cls, low_bits, low,
    )  # fmt: skip


def frequencies(symbols: np.ndarray) -> tuple[list[int], list[int], list[int]]:
    """Histogram → (classes, freq, cum) of §13.2-§13.3."""
    if symbols.size == 0:
        return [], [], [0]
    hist = np.bincount(symbols, minlength=int(symbols.max()) + 1).tolist()
    classes = [0 if c == 0 else count_class(c) for c in hist]
    freq = normalize([class_count(v) for v in classes])
    cum = [0]
    for f in freq:
        cum.append(cum[-1] + f)
    return classes, freq, cum


def encode(x: np.ndarray, params: dict | None = None) -> bytes:
    """Encode ``x`` (float32/float16/bfloat16/float64) to a format-2 dense stream."""
    params = default_params() if params is None else params
    p = plan(x, params)
    if params.get("table_kind", 0) == "auto":  # §13.5: the shortest, ties to the lower kind
        if params.get("classes", 1) != 1:  # class tables have kind 0 only
            return assemble(p, 0)
        streams = [assemble(p, kind) for kind in range(TABLE_KIND_GEOM + 1)]
        return min(streams, key=len)
    return assemble(p, params.get("table_kind", 0))


def assemble(p: Plan, table_kind: int = 0) -> bytes:
    params = p.params
    k = params.get("classes", 1)
    mode = MODE_DENSE if k == 1 else MODE_CLASSES
    if not 0 <= table_kind <= TABLE_KIND_GEOM or (table_kind and mode != MODE_DENSE):
        raise ValueError("table_kind must be 0 … 4, and 0 with class tables")
    out = bytearray(header_bytes(p.shape, p.dtype_code, params["layout"], mode))
    o1, o2 = p.offsets
    mode_params = struct.pack(
        "<fBbbBB",
        params["step"],
        params["rho_256"],
        o1,
        o2,
        params["chunk_log2"],
        (0 if p.table is None else 1) | table_kind << 1 | p.low_bits << 4,  # §13.5, §13.6
    )
    ranges = params.get("class_map", "rank") == "ranges"
    bounds = params.get("class_map", "rank") == "bounds"
    if mode == MODE_CLASSES:  # §19.1: bit 1 = index ranges (§18.3), bit 2 = boundaries (§18.4)
        kind_bits = (2 if ranges else 0) | (4 if bounds else 0)
        mode_params += bytes([params.get("class_axis", 0) | kind_bits, k])
    out += varint(len(mode_params)) + mode_params
    if p.table is not None:
        out += bytes(p.table)
    if mode == MODE_CLASSES:
        import reference_classes as rc

        if bounds:  # §18.4: the boundaries' varint gaps
            out += rc.pack_bounds(params["class_bounds"])
        elif not ranges:  # §18.3: a range map has no bytes
            out += rc.pack_map(p.class_map, k)
        models = []
        for c in range(k):  # §19.2: one table per class, class 0 first
            classes_c, freq_c, cum_c = frequencies(p.symbols[p.coded & (p.cls == c)])
            out += write_table(classes_c)
            models.append((freq_c, cum_c))
    else:
        coded_symbols = p.symbols[p.coded]
        table_bytes, freq, cum = table_model(coded_symbols, table_kind)
        out += table_bytes
    n = p.flat.size
    chunk = 1 << params["chunk_log2"]
    chunks = []
    for start in range(0, n, chunk):
        sel = slice(start, min(start + chunk, n))
        c = p.coded[sel]
        syms = p.symbols[sel][c].tolist()
        if not syms:
            chunks.append((b"", b""))
            continue
        if mode == MODE_CLASSES:
            rans = rc.rans_encode(syms, p.cls[sel][c].tolist(), models, states_for(len(syms)))
        else:
            rans = rans_encode(syms, freq, cum, states_for(len(syms)))
        bw = BitWriter()
        if p.low_bits:  # §13.6: the plane first, k bits per coded element
            for low in p.low[sel][c].tolist():
                bw.write(low, p.low_bits)
        for nb, ex in zip(p.nbits[sel][c].tolist(), p.extra[sel][c].tolist(), strict=True):
            bw.write(ex, nb)
        chunks.append((rans, bw.finish()))
    for rans, bits in chunks:
        out += varint(len(rans)) + varint(len(bits))
    # §13.5 raw groups, in stream dtype
    if p.table is not None:
        gid = group_of(p.shape, params["layout"])
        dt = CODE_DTYPES[p.dtype_code]
        for g, b in enumerate(p.table):
            if b == GROUP_RAW:
                vals = p.flat[gid == g].astype(np.float32 if p.dtype_code != 4 else np.float64)
                out += vals.astype(dt).astype(dt.newbyteorder("<")).tobytes()
    for rans, bits in chunks:
        out += rans + bits
    out += struct.pack("<I", zlib.crc32(out))
    return bytes(out)


# ----------------------------------------------------------------------------- decoder


def read_table(stream: bytes, r: ByteReader, end: int) -> list[int]:
    """One frequency table (§13.1) at r.pos with every check; advances r past it."""
    nsym = r.varint()
    if nsym > NUM_SYMBOLS:
        raise ReferenceFormatError("alphabet larger than the format allows")
    classes: list[int] = []
    if nsym:
        br = BitReader(stream, r.pos, end)
        classes.append(br.read(9))
        for _ in range(nsym - 1):
            v = classes[-1] + unzigzag(br.exp_golomb(10))
            if not 0 <= v <= CLASS_MAX:
                raise ReferenceFormatError("count class out of range")
            classes.append(v)
        if classes[0] > CLASS_MAX or classes[-1] == 0:
            raise ReferenceFormatError("invalid frequency table")
        r.pos = br.finish()
    return classes


class ByteReader:
    def __init__(self, data: bytes, end: int) -> None:
        self.data = data
        self.pos = 0
        self.end = end

    def take(self, n: int) -> bytes:
        if self.pos + n > self.end:
            raise ReferenceFormatError("stream truncated")
        piece = self.data[self.pos : self.pos + n]
        self.pos += n
        return piece

    def u8(self) -> int:
        return self.take(1)[0]

    def varint(self) -> int:
        value = 0
        for i in range(10):
            byte = self.u8()
            value |= (byte & 0x7F) << (7 * i)
            if not byte & 0x80:
                if i and byte == 0:
                    raise ReferenceFormatError("non-minimal varint")
                if value >= 1 << 64:
                    raise ReferenceFormatError("varint overflows 64 bits")
                return value
        raise ReferenceFormatError("varint longer than 10 bytes")


@dataclass
class Account:
    """Byte account of a format-2 stream (§16)."""

    header: int = 0  # common header + mode parameters
    group_table: int = 0
    freq_table: int = 0
    chunk_table: int = 0
    raw: int = 0  # raw groups
    rans: int = 0  # entropy-coded symbols (all chunks)
    extra_bits: int = 0  # bytes of extra (mantissa) bits, padding included
    checksum: int = 4
    total: int = 0
    coded: int = 0  # elements entropy-coded
    chunks: int = 0
    symbols: int = 0  # alphabet size in the table (mode 2: the largest of the tables)
    class_map: int = 0  # mode 2: bytes of the class map (not in freq_table)
    class_tables: list = field(default_factory=list)  # mode 2: bytes of each table
    info: dict = field(default_factory=dict)


def to_dtype(v: np.ndarray, dtype_code: int) -> np.ndarray:
    """binary64 → stream dtype: float64 as is; others via binary32 (RNE), then RNE (§12.4)."""
    if dtype_code == 4:
        return v.astype(np.float64)
    with np.errstate(over="ignore"):
        return v.astype(np.float32).astype(CODE_DTYPES[dtype_code])


def decode(stream: bytes, max_elements: int = 2**31) -> tuple[np.ndarray, Account]:
    stream = bytes(stream)
    if len(stream) < 9:
        raise ReferenceFormatError("stream truncated")
    if stream[:4] != MAGIC:
        raise ReferenceFormatError("bad magic")
    if struct.unpack("<I", stream[-4:])[0] != zlib.crc32(stream[:-4]):
        raise ReferenceFormatError("checksum mismatch")
    if stream[4] != VERSION:
        raise ReferenceFormatError("unsupported version")
    end = len(stream) - 4
    r = ByteReader(stream, end)
    r.take(5)
    dtype_code = r.u8()
    if dtype_code not in CODE_DTYPES:
        raise ReferenceFormatError("unknown dtype")
    if r.u8() != 0:
        raise ReferenceFormatError("reserved flags set")
    ndim = r.u8()
    if ndim > 32:
        raise ReferenceFormatError("ndim > 32")
    shape = tuple(r.varint() for _ in range(ndim))
    n = 1
    for d in shape:
        n *= d
        if n > max_elements:
            raise ReferenceFormatError("element count exceeds max_elements")
    layout = r.u8()
    if layout > 2 or (layout == 1 and ndim < 1) or (layout == 2 and ndim < 2):
        raise ReferenceFormatError("invalid layout")
    mode = r.u8()
    plen = r.varint()
    if plen > end - r.pos:
        raise ReferenceFormatError("stream truncated")
    if mode not in (MODE_DENSE, MODE_CLASSES):
        raise UnsupportedModeError(f"unsupported mode {mode}")
    if plen != (DENSE_PARAMS_LEN if mode == MODE_DENSE else CLASS_PARAMS_LEN):
        raise ReferenceFormatError("dense parameters of the wrong length")
    raw_params = r.take(plen)
    step, rho, o1, o2, chunk_log2, table_byte = struct.unpack("<fBbbBB", raw_params[:9])
    if not (math.isfinite(step) and step >= 2.0**-126):
        raise ReferenceFormatError("step not a positive normal binary32")
    has_table, table_kind = table_byte & 1, (table_byte >> 1) & 7  # §13.5: bits 1–3
    low_bits = table_byte >> 4  # §13.6: bits 4–7
    if not 1 <= rho <= 128 or not 6 <= chunk_log2 <= 24 or table_kind > TABLE_KIND_GEOM:
        raise ReferenceFormatError("dense parameter out of range")
    if table_kind and mode != MODE_DENSE:
        raise ReferenceFormatError("table kind other than 0 with class tables")
    if low_bits and mode != MODE_DENSE:
        raise ReferenceFormatError("low-bit plane with class tables")
    nclass, class_axis, length, ranges, bounds = 1, 0, 0, False, False
    if mode == MODE_CLASSES:  # §19.1
        axis_byte, nclass = raw_params[9], raw_params[10]
        class_axis, ranges, bounds = axis_byte & 1, bool(axis_byte & 2), bool(axis_byte & 4)
        if axis_byte > 7 or (ranges and bounds) or ndim < class_axis + 1:
            raise ReferenceFormatError("invalid class axis")
        length = class_length(shape, class_axis)
        if not 2 <= nclass <= 16 or nclass > length:
            raise ReferenceFormatError("class count out of range")
    acc = Account(header=r.pos)
    num_groups = group_count(shape, layout)
    gid = group_of(shape, layout)
    if has_table:
        table = list(r.take(num_groups))
        for b in table:
            if 0x40 <= b < 0x80 or 0x82 <= b < 0xC0:
                raise ReferenceFormatError("invalid group table entry")
        tab = np.asarray(table, dtype=np.int64)
        coded = (tab[gid] < 0x80) | (tab[gid] >= 0xC0) if n else np.zeros(0, bool)
        exps = np.where(tab >= 0x80, tab - 256, tab)
        steps = [group_step(step, int(e)) if (b < 0x80 or b >= 0xC0) else 1.0
                 for e, b in zip(exps.tolist(), table, strict=True)]  # fmt: skip
        for s in steps:
            if not (math.isfinite(s) and s >= 2.0**-1022):
                raise ReferenceFormatError("group step not a finite normal number")
        delta = np.asarray(steps, dtype=np.float64)[gid] if n else np.zeros(0)
    else:
        table = None
        coded = np.ones(n, dtype=bool)
        delta = np.full(n, float(step))
    acc.group_table = r.pos - acc.header
    total_coded = int(coded.sum())
    cls = None
    if mode == MODE_CLASSES:  # §19.2: the class map, then one table per class
        import reference_classes as rc

        t0 = r.pos
        class_bounds = None
        if ranges:  # §18.3: no bytes
            class_map = rc.range_classes(length, nclass)
        elif bounds:  # §18.4: K − 1 varint gaps
            class_bounds = rc.read_bounds(r, length, nclass)
            class_map = rc.bounds_classes(class_bounds, length)
        else:
            class_map = rc.unpack_map(r.take((length + 1) // 2), length, nclass)
        acc.class_map = r.pos - t0
        pos = position_of(shape, class_axis)
        cls = np.asarray(class_map, dtype=np.int64)[pos] if n else np.zeros(0, np.int64)
        coded_per_class = [int((coded & (cls == c)).sum()) for c in range(nclass)]
    else:
        coded_per_class = [total_coded]
    models = []
    for c in range(nclass):
        t0 = r.pos
        freq = read_model(stream, r, end, table_kind)
        if (len(freq) == 0) != (coded_per_class[c] == 0):
            raise ReferenceFormatError("frequency table does not match the coded elements")
        cum = [0]
        for f in freq:
            cum.append(cum[-1] + f)
        models.append((freq, cum))
        acc.freq_table += r.pos - t0
        acc.symbols = max(acc.symbols, len(freq))
        if mode == MODE_CLASSES:
            acc.class_tables.append(r.pos - t0)
    # chunk table
    t0 = r.pos
    chunk = 1 << chunk_log2
    nch = -(-n // chunk)
    lengths = []
    for j in range(nch):
        cnt = int(coded[j * chunk : (j + 1) * chunk].sum())
        rl, bl = r.varint(), r.varint()
        if cnt == 0 and (rl or bl):
            raise ReferenceFormatError("chunk without coded elements has bytes")
        if cnt and rl < 4 * states_for(cnt):
            raise ReferenceFormatError("rANS stream shorter than its states")
        if rl > end or bl > end:
            raise ReferenceFormatError("stream truncated")
        lengths.append((cnt, rl, bl))
    acc.chunk_table = r.pos - t0
    acc.chunks = nch
    out = np.zeros(n, dtype=np.float64)
    dt = CODE_DTYPES[dtype_code]
    # raw groups
    t0 = r.pos
    if table is not None:
        item = 8 if dtype_code == 4 else dt.itemsize
        for g, b in enumerate(table):
            if b != GROUP_RAW:
                continue
            idx = np.nonzero(gid == g)[0]
            vals = np.frombuffer(r.take(item * idx.size), dtype=dt.newbyteorder("<"))
            with np.errstate(invalid="ignore"):  # a hostile NaN is refused just below
                vals = vals.astype(np.float64)
            if not np.all(np.isfinite(vals)):
                raise ReferenceFormatError("raw value not finite")
            out[idx] = vals
    acc.raw = r.pos - t0
    # chunks
    if sum(rl + bl for _, rl, bl in lengths) != end - r.pos:
        raise ReferenceFormatError("chunk lengths do not add up to the payload")
    m_all = np.zeros(n, dtype=np.int64)
    neg_all = np.zeros(n, dtype=bool)
    for j, (cnt, rl, bl) in enumerate(lengths):
        if cnt == 0:
            continue
        sel = np.nonzero(coded[j * chunk : (j + 1) * chunk])[0] + j * chunk
        if cls is None:
            syms = rans_decode(r.take(rl), cnt, models[0][0], models[0][1], states_for(cnt))
        else:
            syms = rc.rans_decode(r.take(rl), cls[sel].tolist(), models, states_for(cnt))
        br = BitReader(r.take(bl))
        if cnt * low_bits > 8 * bl:
            raise ReferenceFormatError("low-bit plane does not fit the bit area")
        lows = [br.read(low_bits) for _ in range(cnt)] if low_bits else None
        mags, negs = [], []
        for q, s in enumerate(syms):
            b = (s + 1) // 2
            base, nb = bin_base(b)
            mag, neg = base + br.read(nb), s > 0 and s % 2 == 0
            if low_bits:  # §13.6: q = h·2^k + l
                if mag > MAX_MAG >> low_bits:
                    raise ReferenceFormatError("code magnitude above 2^53")
                code = (-mag if neg else mag) * (1 << low_bits) + lows[q]
                mag, neg = abs(code), code < 0
            mags.append(mag)
            negs.append(neg)
        if br.finish() != bl:
            raise ReferenceFormatError("extra-bit area has leftover bytes")
        m_all[sel] = mags
        neg_all[sel] = negs
        acc.rans += rl
        acc.extra_bits += bl
    if np.any(m_all > MAX_MAG):
        raise ReferenceFormatError("code magnitude above 2^53")
    v = dequantize(m_all, neg_all, delta, o1, o2)
    out[coded] = v[coded]
    acc.total = len(stream)
    acc.coded = total_coded
    acc.info = {"step": step, "rho_256": rho, "offsets": (o1, o2), "chunk_log2": chunk_log2,
                "layout": layout, "dtype": dtype_code, "shape": shape, "mode": mode,
                "classes": nclass, "class_axis": class_axis,
                "class_map": "rank" if mode != MODE_CLASSES else
                ("ranges" if ranges else "bounds" if bounds else "rank"),
                "class_bounds": class_bounds if mode == MODE_CLASSES else None,
                "table_kind": table_kind, "low_bits": low_bits}  # fmt: skip
    y = to_dtype(out, dtype_code)
    if table is not None:  # raw values are verbatim
        raw_idx = np.isin(gid, [g for g, b in enumerate(table) if b == GROUP_RAW])
        y[raw_idx] = out[raw_idx].astype(y.dtype)
    return y.reshape(shape), acc


# ----------------------------------------------------------------------------- estimates


def estimate_bytes(p: Plan) -> float:
    """Stream size predicted from the tables (ideal rANS cost), without running the coder.

    Mode 2 (a plan with a class map): one table per class, the map included (§19.5)."""
    head = len(header_bytes(p.shape, p.dtype_code, p.params["layout"])) + 1 + DENSE_PARAMS_LEN
    head += 0 if p.table is None else len(p.table)
    if p.class_map is None:
        subsets = [p.coded]
    else:
        head += 2
        kind = p.params.get("class_map", "rank")
        if kind == "bounds":
            import reference_classes as rc

            head += len(rc.pack_bounds(p.params["class_bounds"]))
        elif kind != "ranges":
            head += (len(p.class_map) + 1) // 2
        subsets = [p.coded & (p.cls == c) for c in range(max(p.class_map) + 1)]
    head += 4
    sym_bits = 0.0
    for sel in subsets:
        coded_symbols = p.symbols[sel]
        classes, freq, _ = frequencies(coded_symbols)
        head += len(write_table(classes))
        if coded_symbols.size == 0:
            continue
        hist = np.bincount(coded_symbols, minlength=len(freq))
        f = np.asarray(freq, dtype=np.float64)
        used = hist > 0
        sym_bits += float(np.sum(hist[used] * (PROB_BITS - np.log2(f[used]))))
    if not p.coded.any():
        return head
    extra = float(p.nbits[p.coded].sum())
    nch = -(-p.flat.size // (1 << p.params["chunk_log2"]))
    return head + (sym_bits + extra) / 8 + nch * (4 + 3 + 2)


def reconstruct(p: Plan) -> np.ndarray:
    """What the decoder outputs for a plan (no coding)."""
    o1, o2 = p.offsets
    v = dequantize(p.m, p.negative & (p.m > 0), p.delta, o1, o2)
    out = np.where(p.coded, v, 0.0)
    if p.table is not None:
        gid = group_of(p.shape, p.params["layout"])
        raw = np.isin(gid, [g for g, b in enumerate(p.table) if b == GROUP_RAW])
        out[raw] = p.flat[raw]
    return to_dtype(out, p.dtype_code).reshape(p.shape)
