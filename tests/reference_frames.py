"""Pure-NumPy reference of format-2 frames (docs/format.md §17).

A context (sent once) and one frame per row. Everything below the framing is the dense mode of
``reference_dense``: its quantizer, offset rule, symbols, frequency-table coding, normalisation
and rANS coder are imported, not re-implemented. Trellis contexts (§17.4) take mode 3's
candidates, rates, Viterbi, offset rule and reconstruction from ``reference_tcq``. The C++
backend is tested for byte equality against this file.
"""

from __future__ import annotations

import math
import struct
import zlib
from dataclasses import dataclass

import numpy as np

import reference_classes as rcl
import reference_dense as rd
import reference_tcq as rt

KIND_CONTEXT = 0xF0
FLAG_MAP = 1
FLAG_TRELLIS = 2
MAX_ROW = 1 << 18  # elements per row (§17.1)
SCALE_TARGET = 1 << 15  # S · T ≥ 2^15 (§17.3)
CHECK_BYTES = 4


@dataclass(frozen=True)
class Context:
    """A parsed (or built) frame context."""

    dtype_code: int
    row_shape: tuple
    step: float  # binary32 value
    rho_256: int  # 0 in a trellis context (it has no ρ)
    offsets: tuple  # (o1, o2); a trellis context: (o1_0, o2_0, o1_1, o2_1)
    states: int  # interleaved rANS states per frame: 1, 2 or 4
    tables: tuple  # T tables of 423 count classes, each ≥ 1 (T = 1 without a class map);
    # a trellis context: 2T, table 2c + q for class c and quantizer q (§17.4)
    class_map: tuple | None  # §18: the class of each row position, or None
    context_id: int  # CRC-32 of the context bytes
    data: bytes  # the context bytes
    lam: float | None = None  # a trellis context's λ (binary32 value), else None

    @property
    def trellis(self) -> bool:
        return self.lam is not None

    @property
    def row_size(self) -> int:
        return math.prod(self.row_shape)

    @property
    def classes(self) -> tuple:
        """The count classes of the first (without a class map: the only) table."""
        return self.tables[0]

    def model(self) -> tuple[list[int], list[int]]:
        return rcl.model_of(list(self.tables[0]))

    def element_classes(self) -> list[int]:
        return list(self.class_map) if self.class_map is not None else [0] * self.row_size

    def models(self) -> list[tuple[list[int], list[int]]]:
        return [rcl.model_of(list(t)) for t in self.tables]


def _codes(flat: np.ndarray, step: float, rho_256: int):
    """§12.2 with Δ = Δ0 (exponent 0) → (m, t, negative, symbols, nbits, extra)."""
    delta = np.full(flat.size, rd.group_step(step, 0))
    m, t = rd.quantize(np.abs(flat), delta, rho_256)
    negative = (flat < 0) & (m > 0)
    symbols, nbits, extra = rd.symbols_of(m, negative)
    return m, t, negative, symbols, nbits, extra


def frame_classes(symbols: np.ndarray) -> list[int]:
    """§17.3: classes of the scaled calibration counts, 1 for unseen symbols (all 423)."""
    hist = np.bincount(symbols, minlength=rd.NUM_SYMBOLS)[: rd.NUM_SYMBOLS].tolist()
    total = sum(hist)
    scale = 1
    while scale * total < SCALE_TARGET:
        scale *= 2
    return [rd.count_class(n * scale) if n else 1 for n in hist]


def context_bytes(dtype_code, row_shape, step, rho_256, offsets, classes, states=1,
                  class_map=None, tables=None, lam=None) -> bytes:  # fmt: skip
    """§17.1. Without ``class_map``: one table ``classes`` (a trellis context, ``lam`` given:
    ``tables``, two); with it: ``tables`` (one per class, two per class with ``lam``)."""
    out = bytearray(rd.MAGIC)
    flags = (0 if class_map is None else FLAG_MAP) | (0 if lam is None else FLAG_TRELLIS)
    out += bytes([rd.VERSION, KIND_CONTEXT, dtype_code, flags, len(row_shape)])
    for d in row_shape:
        out += rd.varint(int(d))
    if lam is None:
        out += struct.pack("<fBbbB", step, rho_256, offsets[0], offsets[1], states)
    else:
        out += struct.pack("<ff4bB", step, lam, *offsets, states)
    if class_map is None:
        if lam is None:
            tables = [classes]
    else:
        out += bytes([len(tables) // (1 if lam is None else 2)])
        out += rcl.pack_map(class_map, len(tables) // (1 if lam is None else 2))
    for t in tables:
        out += rd.write_table(list(t))
    out += struct.pack("<I", zlib.crc32(bytes(out)))
    return bytes(out)


def build_context(rows: np.ndarray, row_shape=None, step: float = 0.01, rho_256: int = 128,
                  offsets=None, states: int = 1, classes: int = 1,
                  trellis: float | None = None) -> Context:  # fmt: skip
    """Build a context from calibration rows (the leading axes count rows); ``classes`` ≥ 2
    adds a class map with that many classes (§17.3, §18.2); ``trellis`` = λ builds a trellis
    context (§17.4; ``rho_256`` unused, ``offsets`` four)."""
    rows = np.asarray(rows)
    if row_shape is None:
        row_shape = rows.shape[1:]
    row_shape = tuple(int(d) for d in row_shape)
    r = math.prod(row_shape)
    if not 1 <= r <= MAX_ROW:
        raise ValueError("row size out of range")
    if states not in (1, 2, 4):
        raise ValueError("states must be 1, 2 or 4")
    flat, dtype_code = rd.as_float64(rows)
    if flat.size == 0 or flat.size % r:
        raise ValueError("calibration rows do not hold whole rows")
    step = float(np.float32(step))
    if trellis is not None:
        return _build_trellis(flat, dtype_code, row_shape, step, float(np.float32(trellis)),
                              offsets, states, classes)  # fmt: skip
    m, t, _, symbols, _, _ = _codes(flat, step, rho_256)
    if offsets is None:
        offsets = rd.offset_rule(m, t)
    if classes == 1:
        data = context_bytes(dtype_code, row_shape, step, rho_256, tuple(offsets),
                             frame_classes(symbols), states)  # fmt: skip
        return parse_context(data)
    if not 2 <= classes <= min(rcl.MAX_CLASSES, r):
        raise ValueError("classes must be 1, or 2 ... min(16, row size)")
    pos = np.tile(np.arange(r), flat.size // r)
    sums = rcl.position_sums(m, pos, np.ones(flat.size, dtype=bool), r)
    cmap = rcl.class_rule(sums, classes)
    of = np.asarray(cmap)[pos]
    tables = [frame_classes(symbols[of == c]) for c in range(classes)]
    data = context_bytes(dtype_code, row_shape, step, rho_256, tuple(offsets), None, states,
                         class_map=cmap, tables=tables)  # fmt: skip
    return parse_context(data)


def trellis_classes(counts: np.ndarray) -> list[int]:
    """§17.4 3.: §17.3's scaled classes of one context's counts; all 1 when it has none."""
    total = int(counts.sum())
    if total == 0:
        return [1] * rd.NUM_SYMBOLS
    scale = 1
    while scale * total < SCALE_TARGET:
        scale *= 2
    return [rd.count_class(int(n) * scale) if n else 1 for n in counts.tolist()]


def _trellis_rates(tables) -> np.ndarray:
    """(2T, 423) integer rates of a trellis context's tables (§17.4: every f_s ≥ 1)."""
    return np.stack([rt.rates_of_freq(rcl.model_of(list(t))[0]) for t in tables])


def _trellis_lanes(nrows: int, r: int, k: int):
    """(order, chain, step) of ``nrows`` rows coded as frames of K lanes (§17.4): element i of
    row j is step i div K of chain j·K + i mod K; ``order`` sorts by (step, chain)."""
    i = np.tile(np.arange(r), nrows)
    row = np.repeat(np.arange(nrows), r)
    chain = row * k + i % k
    step = i // k
    idx = np.arange(nrows * r)
    order = np.lexsort((chain, step))
    return idx[order], chain[order], step[order]


def _trellis_codes(t, neg, cls, nrows, r, k, lam, tables):
    """One Viterbi per lane of every row with the tables' rates → (m, quantizer) per element."""
    order, chain, stp = _trellis_lanes(nrows, r, k)
    m_o, s_o = rt.viterbi(t, neg, cls, order, chain, stp, lam, _trellis_rates(tables))
    m = np.zeros(t.size, np.int64)
    q = np.zeros(t.size, np.int64)
    m[order] = m_o
    q[order] = s_o >> 1
    return m, q


def _trellis_t(flat: np.ndarray, step: float):
    delta = rd.group_step(step, 0)
    if not np.all(np.isfinite(flat)):
        raise ValueError("input contains NaN or infinity")
    t = np.abs(flat) / delta
    if t.size and float(t.max()) >= rt.MAX_T:
        raise ValueError("step too small for the data: |x|/step reaches 2^52")
    return t, flat < 0


def _build_trellis(flat, dtype_code, row_shape, step, lam, offsets, states, classes):
    """§17.4's build rule."""
    r = math.prod(row_shape)
    nrows = flat.size // r
    t, neg = _trellis_t(flat, step)
    pos = np.tile(np.arange(r), nrows)
    cmap = None
    cls = np.zeros(flat.size, np.int64)
    if classes != 1:
        if not 2 <= classes <= min(rcl.MAX_CLASSES, r):
            raise ValueError("classes must be 1, or 2 ... min(16, row size)")
        near = np.floor(t + 0.5).astype(np.int64)
        cmap = rcl.class_rule(rcl.position_sums(near, pos, np.ones(flat.size, bool), r), classes)
        cls = np.asarray(cmap, dtype=np.int64)[pos]
    nctx = 2 * classes
    counts = np.zeros((nctx, rd.NUM_SYMBOLS), np.int64)
    for q in (0, 1):
        a = rt.candidates(t, q)[0][2]
        sym, _, _ = rd.symbols_of(a, neg & (a > 0))
        counts += rt.context_counts(sym, 2 * cls + q, nctx)
    for _ in range(rt.PASSES):
        tables = [trellis_classes(c) for c in counts]
        m, q = _trellis_codes(t, neg, cls, nrows, r, states, lam, tables)
        sym, _, _ = rd.symbols_of(m, neg & (m > 0))
        counts = rt.context_counts(sym, 2 * cls + q, nctx)
    tables = [trellis_classes(c) for c in counts]
    if offsets is None:
        offsets = rt.offsets_rule(m, q, t)
    if len(offsets) != 4:
        raise ValueError("a trellis context takes four offsets")
    data = context_bytes(dtype_code, row_shape, step, 0, tuple(offsets), None, states,
                         class_map=cmap, tables=tables, lam=lam)  # fmt: skip
    return parse_context(data)


def parse_context(data: bytes, max_elements: int = 2**31) -> Context:
    data = bytes(data)
    if len(data) < 12:
        raise rd.ReferenceFormatError("context truncated")
    if data[:4] != rd.MAGIC:
        raise rd.ReferenceFormatError("bad magic")
    if struct.unpack("<I", data[-4:])[0] != zlib.crc32(data[:-4]):
        raise rd.ReferenceFormatError("checksum mismatch")
    if data[4] != rd.VERSION:
        raise rd.ReferenceFormatError("unsupported version")
    if data[5] != KIND_CONTEXT:
        raise rd.ReferenceFormatError("not a frame context")
    end = len(data) - 4
    r = rd.ByteReader(data, end)
    r.take(6)
    dtype_code = r.u8()
    if dtype_code not in rd.CODE_DTYPES:
        raise rd.ReferenceFormatError("unknown dtype")
    flags = r.u8()
    if flags & ~(FLAG_MAP | FLAG_TRELLIS):
        raise rd.ReferenceFormatError("reserved flags set")
    trellis = bool(flags & FLAG_TRELLIS)
    ndim = r.u8()
    if ndim > 32:
        raise rd.ReferenceFormatError("ndim > 32")
    shape = []
    n = 1
    for _ in range(ndim):
        shape.append(r.varint())
        n *= shape[-1]
        if n > MAX_ROW or n > max_elements:
            raise rd.ReferenceFormatError("row size exceeds the limit")
    if n < 1:
        raise rd.ReferenceFormatError("empty row")
    lam = None
    if trellis:
        step, lam, *offsets, states = struct.unpack("<ff4bB", r.take(13))
        rho = 0
    else:
        step, rho, *offsets, states = struct.unpack("<fBbbB", r.take(8))
    if not (math.isfinite(step) and step >= 2.0**-126):
        raise rd.ReferenceFormatError("step not a positive normal binary32")
    if trellis and not (math.isfinite(lam) and lam >= 2.0**-126):
        raise rd.ReferenceFormatError("lambda not a positive normal binary32")
    if not trellis and not 1 <= rho <= 128:
        raise rd.ReferenceFormatError("rho out of range")
    if states not in (1, 2, 4):
        raise rd.ReferenceFormatError("states must be 1, 2 or 4")
    class_map = None
    count = 1
    if flags & 1:
        count = r.u8()
        if not 2 <= count <= min(rcl.MAX_CLASSES, n):
            raise rd.ReferenceFormatError("class count out of range")
        class_map = tuple(rcl.unpack_map(r.take((n + 1) // 2), n, count))
    tables = []
    pos = r.pos
    for _ in range(count * (2 if trellis else 1)):
        r.pos = pos
        nsym = r.varint()
        if nsym != rd.NUM_SYMBOLS:
            raise rd.ReferenceFormatError("a frame table describes all 423 symbols")
        br = rd.BitReader(data, r.pos, end)
        classes = [br.read(9)]
        for _ in range(nsym - 1):
            v = classes[-1] + rd.unzigzag(br.exp_golomb(10))
            if not 0 <= v <= rd.CLASS_MAX:
                raise rd.ReferenceFormatError("count class out of range")
            classes.append(v)
        if not all(1 <= v <= rd.CLASS_MAX for v in classes):
            raise rd.ReferenceFormatError("a frame table gives every symbol a class >= 1")
        pos = br.finish()
        tables.append(tuple(classes))
    if pos != end:
        raise rd.ReferenceFormatError("context has trailing bytes")
    return Context(dtype_code, tuple(shape), step, rho, tuple(offsets), states, tuple(tables),
                   class_map, struct.unpack("<I", data[-4:])[0], data, lam)  # fmt: skip


def encode_frame(ctx: Context, row: np.ndarray, seq: int) -> bytes:
    row = np.asarray(row)
    if rd.DTYPE_CODES.get(np.dtype(row.dtype)) != ctx.dtype_code:
        raise TypeError("row dtype differs from the context")
    if row.size != ctx.row_size:
        raise ValueError("row size differs from the context")
    flat, _ = rd.as_float64(row)
    if ctx.trellis:  # §17.4: one Viterbi per lane with the context's rates
        t, neg = _trellis_t(flat, ctx.step)
        cls = np.asarray(ctx.element_classes(), dtype=np.int64)
        m, q = _trellis_codes(t, neg, cls, 1, ctx.row_size, ctx.states, ctx.lam, ctx.tables)
        symbols, nbits, extra = rd.symbols_of(m, neg & (m > 0))
        tab = (2 * cls + q).tolist()
    else:
        _, _, _, symbols, nbits, extra = _codes(flat, ctx.step, ctx.rho_256)
        tab = ctx.element_classes()
    rans = rcl.rans_encode(symbols.tolist(), tab, ctx.models(), ctx.states)
    bw = rd.BitWriter()
    for nb, ex in zip(nbits.tolist(), extra.tolist(), strict=True):
        bw.write(ex, nb)
    bits = bw.finish()
    body = bytes([seq & 0xFF]) + rd.varint(len(bits)) + rans + bits
    check = zlib.crc32(body, zlib.crc32(struct.pack("<I", ctx.context_id)))
    return body + struct.pack("<I", check)


def decode_frame(ctx: Context, frame: bytes, expected_seq: int | None = None):
    """Frame → (row in the context dtype, seq)."""
    frame = bytes(frame)
    k = ctx.states
    if len(frame) < 6 + 4 * k:
        raise rd.ReferenceFormatError("frame truncated")
    body = frame[:-4]
    check = zlib.crc32(body, zlib.crc32(struct.pack("<I", ctx.context_id)))
    if struct.unpack("<I", frame[-4:])[0] != check:
        raise rd.ReferenceFormatError("frame check mismatch (damaged, or another context)")
    seq = body[0]
    r = rd.ByteReader(body, len(body))
    r.take(1)
    bits_len = r.varint()
    if bits_len > len(body) - r.pos:
        raise rd.ReferenceFormatError("extra bits past the frame")
    rans_len = len(body) - r.pos - bits_len
    if rans_len < 4 * k:
        raise rd.ReferenceFormatError("rANS stream shorter than its states")
    if expected_seq is not None and seq != expected_seq & 0xFF:
        raise rd.ReferenceFormatError(f"frame out of sequence: expected {expected_seq & 0xFF}")
    rans_bytes = r.take(rans_len)
    br = rd.BitReader(r.take(bits_len))
    lanes = _Lanes(br, k, ctx.trellis)
    rcl.rans_decode(rans_bytes, ctx.element_classes(), ctx.models(), k, lanes)
    if br.finish() != bits_len:
        raise rd.ReferenceFormatError("extra-bit area has leftover bytes")
    m = np.asarray(lanes.mags, dtype=np.int64)
    negs = np.asarray(lanes.negs, dtype=bool)
    delta = np.full(m.size, rd.group_step(ctx.step, 0))
    if ctx.trellis:
        q = np.asarray(lanes.qs, dtype=np.int64)
        v = rt.reconstruct_values(m, q, negs & (m > 0), delta, ctx.offsets)
    else:
        v = rd.dequantize(m, negs, delta, *ctx.offsets)
    return rd.to_dtype(v, ctx.dtype_code).reshape(ctx.row_shape), seq


class _Lanes:
    """The decoder's per-element work (rcl.rans_decode's ``lanes``): each symbol's extra bits
    and magnitude, and with a trellis context each lane's state (§17.4)."""

    def __init__(self, br, k: int, trellis: bool) -> None:
        self.br, self.k, self.trellis = br, k, trellis
        self.state = [0] * k
        self.mags, self.negs, self.qs = [], [], []

    def context(self, i: int, c: int) -> int:
        return 2 * c + (self.state[i % self.k] >> 1) if self.trellis else c

    def decoded(self, i: int, s: int) -> None:
        base, nb = rd.bin_base((s + 1) // 2)
        mag = base + self.br.read(nb)
        if mag > (rt.MAX_MAG3 if self.trellis else rd.MAX_MAG):
            raise rd.ReferenceFormatError("code magnitude above the limit")
        self.mags.append(mag)
        self.negs.append(s > 0 and s % 2 == 0)
        if self.trellis:
            lane = i % self.k
            self.qs.append(self.state[lane] >> 1)
            self.state[lane] = int(rt.TRANS[self.state[lane], mag & 1])
