"""NumPy reference of format 2, mode 3: dense with trellis-coded quantization (docs/format.md §21).

The encoder is §21.6 to the letter (candidates, integer rates, the Viterbi's tie order, two
passes, the offsets rule); the C++ encoder must write the same bytes. The Viterbi runs over all
chains of the stream at once (one NumPy step per chain position), so tests run in seconds. The
decoder is §21.4 with every check, one element at a time (small streams only).
"""

from __future__ import annotations

import math
import struct
import zlib

import numpy as np

import reference_classes as rc
import reference_dense as rd

MODE_TRELLIS = 3
PARAMS_LEN = 12
PASSES = 2
UNSEEN = 4096  # rate of a symbol its context's table does not hold (16 bits)
MAX_T = 2.0**52  # t = |x|/Δ at or above this: "step too small" (§21.6 1.)
MAX_MAG3 = 1 << 52  # largest magnitude a mode-3 stream may carry (§21.2)
TRANS = np.array([[0, 2], [2, 0], [1, 3], [3, 1]], dtype=np.int64)
# Predecessors (s, p) of each new state n, in the pinned order (§21.6 6.).
PRED = (((0, 0), (1, 1)), ((2, 0), (3, 1)), ((0, 1), (1, 0)), ((2, 1), (3, 0)))
DEFAULT_LAMBDA = 0.34


def default_params(**overrides) -> dict:
    params = {
        "step": 0.01,
        "lam": DEFAULT_LAMBDA,
        "offsets": None,  # None: the data rule, else (o1_0, o2_0, o1_1, o2_1)
        "chunk_log2": 14,
        "layout": rd.LAYOUT_TENSOR,
        "group_table": None,
        "classes": 1,
        "class_axis": 0,
        "class_map": "rank",
        "class_bounds": None,
    }
    unknown = set(overrides) - set(params)
    if unknown:
        raise KeyError(f"unknown parameters {sorted(unknown)}")
    params.update(overrides)
    params["step"] = float(np.float32(params["step"]))
    return params


# ----------------------------------------------------------------------------- §21.6 pieces


def rate_table(counts: np.ndarray) -> np.ndarray:
    """Rates R(s) in 1/256 bit of the table of these exact symbol counts (§21.6 4.)."""
    out = np.full(rd.NUM_SYMBOLS, UNSEEN, dtype=np.int64)
    nz = np.nonzero(counts)[0]
    if nz.size == 0:
        return out
    nsym = int(nz[-1]) + 1
    classes = [0 if c == 0 else rd.count_class(int(c)) for c in counts[:nsym].tolist()]
    freq = np.asarray(rd.normalize([rd.class_count(v) for v in classes]), dtype=np.int64)
    out[:nsym] = rates_of_freq(freq)
    return out


def rates_of_freq(freq) -> np.ndarray:
    """R(s) = 3584 - floor(256 log2 f_s + 1/2) per symbol, UNSEEN where f_s = 0 (§21.6 4.)."""
    freq = np.asarray(freq, dtype=np.int64)
    used = freq > 0
    r = 3584 - np.floor(256.0 * np.log2(np.where(used, freq, 1).astype(np.float64)) + 0.5)
    return np.where(used, r.astype(np.int64), UNSEEN)


def candidates(t: np.ndarray, q: int) -> tuple[np.ndarray, np.ndarray]:
    """(magnitudes (4, n), reconstruction in units of Δ (4, n)) of quantizer q (§21.6 3.)."""
    if q == 0:
        a = np.floor(t / 2 + 0.5)
    else:
        a = np.maximum(np.floor((t + 1) / 2 + 0.5), 1.0)
    a = a.astype(np.int64)
    m = np.stack([np.zeros_like(a), np.maximum(a - 1, 0), a, a + 1])
    r = (2 * m).astype(np.float64) if q == 0 else np.where(m == 0, 0, 2 * m - 1).astype(np.float64)
    return m, r


def context_counts(sym: np.ndarray, ctx: np.ndarray, nctx: int) -> np.ndarray:
    return np.bincount(ctx * rd.NUM_SYMBOLS + sym, minlength=nctx * rd.NUM_SYMBOLS).reshape(
        nctx, rd.NUM_SYMBOLS
    )


def chain_order(coded: np.ndarray, chunk_log2: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(flat indices of the coded elements sorted by (step, chain), their chain, their step):
    chunk j's coded element i is step i div K_j of chain (first chain of j) + i mod K_j."""
    n = coded.size
    chunk = 1 << chunk_log2
    idx_all, chain_all, step_all = [], [], []
    first = 0
    for start in range(0, n, chunk):
        sel = np.nonzero(coded[start : start + chunk])[0] + start
        if sel.size == 0:
            continue
        k = rd.states_for(sel.size)
        i = np.arange(sel.size)
        idx_all.append(sel)
        chain_all.append(first + i % k)
        step_all.append(i // k)
        first += k
    if not idx_all:
        z = np.zeros(0, np.int64)
        return z, z, z
    idx, chain, step = (np.concatenate(a) for a in (idx_all, chain_all, step_all))
    order = np.lexsort((chain, step))
    return idx[order], chain[order], step[order]


def viterbi(t, neg, cls, order, chain, step, lam: float, rates: np.ndarray):
    """§21.6 5.-6. over every chain: (magnitude, state it was coded in) per element of
    `order`. `rates`: (2K, NUM_SYMBOLS) integer rates per context."""
    lamp = lam / 256.0
    count = order.size
    nchain = int(chain.max()) + 1 if count else 0
    cost = np.full((nchain, 4), np.inf)
    cost[:, 0] = 0.0
    back_s = np.zeros((count, 4), np.int64)
    back_m = np.zeros((count, 4), np.int64)
    bounds = np.searchsorted(step, np.arange(int(step.max()) + 2 if count else 1))
    for k in range(len(bounds) - 1):
        a, b = bounds[k], bounds[k + 1]
        el = order[a:b]
        ch = chain[a:b]
        tj, nj, cj = t[el], neg[el], cls[el]
        best_c = np.empty((2, 2, b - a))
        best_m = np.empty((2, 2, b - a), np.int64)
        for q in (0, 1):
            m, r = candidates(tj, q)
            sym, nbits, _ = rd.symbols_of(m, nj[None, :] & (m > 0))
            rate = rates[2 * cj[None, :] + q, sym] + 256 * nbits
            u = tj[None, :] - r
            c = u * u + lamp * rate.astype(np.float64)
            for p in (0, 1):
                cc = np.where((m & 1) == p, c, np.inf)
                pick = cc.argmin(0)  # the first of least cost
                cols = np.arange(b - a)
                best_c[q, p] = cc[pick, cols]
                best_m[q, p] = m[pick, cols]
        j = cost[ch]
        new = np.empty((b - a, 4))
        for n, ((s0, p0), (s1, p1)) in enumerate(PRED):
            x = j[:, s0] + best_c[s0 >> 1, p0]
            y = j[:, s1] + best_c[s1 >> 1, p1]
            take = y < x
            new[:, n] = np.where(take, y, x)
            back_s[a:b, n] = np.where(take, s1, s0)
            back_m[a:b, n] = np.where(take, best_m[s1 >> 1, p1], best_m[s0 >> 1, p0])
        cost[ch] = new
    m_out = np.zeros(count, np.int64)
    s_out = np.zeros(count, np.int64)
    cur = cost.argmin(1) if nchain else np.zeros(0, np.int64)  # first state of least cost
    for k in range(len(bounds) - 2, -1, -1):
        a, b = bounds[k], bounds[k + 1]
        ch = chain[a:b]
        st = cur[ch]
        rows = np.arange(a, b)
        m_out[a:b] = back_m[rows, st]
        prev = back_s[rows, st]
        s_out[a:b] = prev
        cur[ch] = prev
    return m_out, s_out


def offsets_rule(m: np.ndarray, q: np.ndarray, t: np.ndarray) -> tuple[int, int, int, int]:
    """§21.6 8.: §12.3's rule per quantizer and class (m = 1, m ≥ 2), d = t − r."""
    r = np.where(m == 0, 0, 2 * m - q).astype(np.float64)
    out = []
    for qq in (0, 1):
        for sel in ((q == qq) & (m == 1), (q == qq) & (m >= 2)):
            c = int(sel.sum())
            if c == 0:
                out.append(0)
                continue
            d = t[sel] - r[sel]
            s = int(np.floor(d * 2.0**20).astype(np.int64).sum())
            out.append(max(-128, min(127, (2 * s + c * 4096) // (2 * c * 4096))))
    return tuple(out)


def reconstruct_values(m, q, negative, delta, offsets) -> np.ndarray:
    """§21.2 in binary64 (0 for m = 0)."""
    o1_0, o2_0, o1_1, o2_1 = offsets
    off = np.where(q == 0, np.where(m == 1, o1_0, o2_0), np.where(m == 1, o1_1, o2_1)) / 256.0
    v = ((2 * m - q).astype(np.float64) + off) * delta
    v = np.where(m == 0, 0.0, v)
    return np.where(negative, -v, v)


# ----------------------------------------------------------------------------- encoder


class Plan3:
    """Everything the mode-3 encoder decides (codes, states, tables, offsets)."""


def plan(x: np.ndarray, params: dict) -> Plan3:
    shape = tuple(int(d) for d in np.shape(x))
    flat, dtype_code = rd.as_float64(np.asarray(x))
    n = flat.size
    layout = params["layout"]
    table = params["group_table"]
    gid = rd.group_of(shape, layout)
    if table is None:
        coded = np.ones(n, dtype=bool)
        exps = np.zeros(n, dtype=np.int64)
    else:
        if len(table) != rd.group_count(shape, layout):
            raise ValueError("group_table needs one entry per group")
        tab = np.asarray(table, dtype=np.int64)
        if np.any(
            (tab < 0) | (tab > 255) | ((tab >= 0x40) & (tab < 0x80)) | (tab > 0x81) & (tab < 0xC0)
        ):
            raise ValueError("invalid group table entry")
        coded = (tab[gid] != rd.GROUP_ZERO) & (tab[gid] != rd.GROUP_RAW) if n else np.zeros(0, bool)
        exps = np.where(tab >= 0x80, tab - 256, tab)[gid] if n else np.zeros(0, np.int64)
    step = params["step"]
    delta = np.array([rd.group_step(step, int(e)) for e in range(-64, 64)])[exps + 64]
    if not (np.all(np.isfinite(delta)) and np.all(delta >= 2.0**-1022)):
        raise ValueError("group step not a finite normal number")
    lam = float(params["lam"])
    if not (math.isfinite(lam) and lam > 0):
        raise ValueError("lambda must be finite and > 0")
    t = np.where(coded, np.abs(flat), 0.0) / delta
    if t.size and float(t.max()) >= MAX_T:
        raise ValueError("step too small for the data: |x|/step reaches 2^52")
    neg = flat < 0
    k = params.get("classes", 1)
    kind = params.get("class_map", "rank")
    class_map = None
    cls = np.zeros(n, np.int64)
    if k != 1:
        axis = params.get("class_axis", 0)
        length = rd.class_length(shape, axis)
        if not 2 <= k <= min(rc.MAX_CLASSES, length):
            raise ValueError("classes must be in 2..min(16, L)")
        pos = rd.position_of(shape, axis)
        if kind == "ranges":
            class_map = rc.range_classes(length, k)
        elif kind == "bounds":
            class_map = rc.bounds_classes(
                rc.check_bounds(params["class_bounds"], length, k), length
            )
        elif kind == "rank":
            near = np.floor(t + 0.5).astype(np.int64)  # §21.6 2.
            class_map = rc.class_rule(rc.position_sums(near, pos, coded, length), k)
        else:
            raise ValueError(f"class_map must be 'rank', 'ranges' or 'bounds', not {kind!r}")
        if n:
            cls = np.asarray(class_map, dtype=np.int64)[pos]
    order, chain, stp = chain_order(coded, params["chunk_log2"])
    # pass-1 tables: plain rounding in each quantizer (§21.6 7.)
    tc, nc, cc = t[order], neg[order], cls[order]
    counts = np.zeros((2 * k, rd.NUM_SYMBOLS), np.int64)
    for q in (0, 1):
        a = candidates(tc, q)[0][2]
        sym, _, _ = rd.symbols_of(a, nc & (a > 0))
        counts += context_counts(sym, 2 * cc + q, 2 * k)
    for _ in range(PASSES):
        rates = np.stack([rate_table(c) for c in counts])
        m_o, s_o = viterbi(t, neg, cls, order, chain, stp, lam, rates)
        sym, _, _ = rd.symbols_of(m_o, nc & (m_o > 0))
        counts = context_counts(sym, 2 * cc + (s_o >> 1), 2 * k)
    m = np.zeros(n, np.int64)
    state = np.zeros(n, np.int64)
    m[order] = m_o
    state[order] = s_o
    q = state >> 1
    offsets = params["offsets"]
    if offsets is None:
        offsets = offsets_rule(m[coded], q[coded], t[coded])
    p = Plan3()
    p.shape, p.dtype_code, p.flat, p.params, p.table = shape, dtype_code, flat, params, table
    p.coded, p.delta, p.t, p.negative, p.m, p.q = coded, delta, t, neg, m, q
    p.cls, p.class_map, p.counts, p.offsets, p.gid = cls, class_map, counts, tuple(offsets), gid
    return p


def encode(x: np.ndarray, params: dict | None = None) -> bytes:
    """Encode ``x`` as a format-2 mode-3 stream (docs/format.md §21)."""
    params = default_params() if params is None else params
    return assemble(plan(x, params))


def assemble(p: Plan3) -> bytes:
    params = p.params
    k = params.get("classes", 1)
    kind = params.get("class_map", "rank")
    out = bytearray(rd.header_bytes(p.shape, p.dtype_code, params["layout"], MODE_TRELLIS))
    axis_byte = 0
    if k > 1:
        axis_byte = params.get("class_axis", 0) | (2 if kind == "ranges" else 0)
        axis_byte |= 4 if kind == "bounds" else 0
    mode_params = struct.pack(
        "<fBBBB4b",
        params["step"],
        params["chunk_log2"],
        0 if p.table is None else 1,
        axis_byte,
        k,
        *p.offsets,
    )
    out += rd.varint(len(mode_params)) + mode_params
    if p.table is not None:
        out += bytes(p.table)
    if k > 1:
        if kind == "bounds":
            out += rc.pack_bounds(params["class_bounds"])
        elif kind == "rank":
            out += rc.pack_map(p.class_map, k)
    models = []
    for ctx in range(2 * k):
        counts = p.counts[ctx]
        nz = np.nonzero(counts)[0]
        classes = []
        if nz.size:
            classes = [0 if c == 0 else rd.count_class(int(c)) for c in counts[: nz[-1] + 1]]
        out += rd.write_table(classes)
        models.append(rc.model_of(classes) if classes else ([], [0]))
    symbols, nbits, extra = rd.symbols_of(p.m, p.negative & (p.m > 0))
    ctx_all = 2 * p.cls + p.q
    n = p.flat.size
    chunk = 1 << params["chunk_log2"]
    chunks = []
    for start in range(0, n, chunk):
        sel = np.nonzero(p.coded[start : start + chunk])[0] + start
        if sel.size == 0:
            chunks.append((b"", b""))
            continue
        rans = rc.rans_encode(
            symbols[sel].tolist(), ctx_all[sel].tolist(), models, rd.states_for(sel.size)
        )
        bw = rd.BitWriter()
        for nb, ex in zip(nbits[sel].tolist(), extra[sel].tolist(), strict=True):
            bw.write(ex, nb)
        chunks.append((rans, bw.finish()))
    for rans, bits in chunks:
        out += rd.varint(len(rans)) + rd.varint(len(bits))
    if p.table is not None:
        dt = rd.CODE_DTYPES[p.dtype_code]
        for g, b in enumerate(p.table):
            if b == rd.GROUP_RAW:
                vals = p.flat[p.gid == g].astype(np.float32 if p.dtype_code != 4 else np.float64)
                out += vals.astype(dt).astype(dt.newbyteorder("<")).tobytes()
    for rans, bits in chunks:
        out += rans + bits
    out += struct.pack("<I", zlib.crc32(out))
    return bytes(out)


def reconstruct(p: Plan3) -> np.ndarray:
    """What the decoder outputs for a plan (no coding)."""
    v = reconstruct_values(p.m, p.q, p.negative & (p.m > 0), p.delta, p.offsets)
    out = np.where(p.coded, v, 0.0)
    if p.table is not None:
        raw = np.isin(p.gid, [g for g, b in enumerate(p.table) if b == rd.GROUP_RAW])
        out[raw] = p.flat[raw]
    return rd.to_dtype(out, p.dtype_code).reshape(p.shape)


# ----------------------------------------------------------------------------- decoder


def decode(stream: bytes, max_elements: int = 2**31) -> tuple[np.ndarray, rd.Account]:
    """Decode a format-2 stream of any dense mode; mode 3 here (§21.4), modes 1-2 by
    reference_dense."""
    stream = bytes(stream)
    if len(stream) < 9:
        raise rd.ReferenceFormatError("stream truncated")
    if stream[:4] != rd.MAGIC:
        raise rd.ReferenceFormatError("bad magic")
    if struct.unpack("<I", stream[-4:])[0] != zlib.crc32(stream[:-4]):
        raise rd.ReferenceFormatError("checksum mismatch")
    if stream[4] != rd.VERSION:
        raise rd.ReferenceFormatError("unsupported version")
    end = len(stream) - 4
    r = rd.ByteReader(stream, end)
    r.take(5)
    dtype_code = r.u8()
    if dtype_code not in rd.CODE_DTYPES:
        raise rd.ReferenceFormatError("unknown dtype")
    if r.u8() != 0:
        raise rd.ReferenceFormatError("reserved flags set")
    ndim = r.u8()
    if ndim > 32:
        raise rd.ReferenceFormatError("ndim > 32")
    shape = tuple(r.varint() for _ in range(ndim))
    n = 1
    for d in shape:
        n *= d
        if n > max_elements:
            raise rd.ReferenceFormatError("element count exceeds max_elements")
    layout = r.u8()
    if layout > 2 or (layout == 1 and ndim < 1) or (layout == 2 and ndim < 2):
        raise rd.ReferenceFormatError("invalid layout")
    mode = r.u8()
    if mode != MODE_TRELLIS:
        return rd.decode(stream, max_elements)
    plen = r.varint()
    if plen > end - r.pos:
        raise rd.ReferenceFormatError("stream truncated")
    if plen != PARAMS_LEN:
        raise rd.ReferenceFormatError("trellis parameters of the wrong length")
    step, chunk_log2, has_table, axis_byte, k, *offs = struct.unpack("<fBBBB4b", r.take(plen))
    if not (math.isfinite(step) and step >= 2.0**-126):
        raise rd.ReferenceFormatError("step not a positive normal binary32")
    if not 6 <= chunk_log2 <= 24 or has_table > 1:
        raise rd.ReferenceFormatError("dense parameter out of range")
    class_axis, ranges, bounds = axis_byte & 1, bool(axis_byte & 2), bool(axis_byte & 4)
    if axis_byte > 7 or (ranges and bounds) or (k == 1 and axis_byte != 0):
        raise rd.ReferenceFormatError("invalid class axis")
    length = 0
    if k != 1:
        if ndim < class_axis + 1:
            raise rd.ReferenceFormatError("invalid class axis")
        length = rd.class_length(shape, class_axis)
        if not 2 <= k <= 16 or k > length:
            raise rd.ReferenceFormatError("class count out of range")
    acc = rd.Account(header=r.pos)
    gid = rd.group_of(shape, layout)
    if has_table:
        table = list(r.take(rd.group_count(shape, layout)))
        for b in table:
            if 0x40 <= b < 0x80 or 0x82 <= b < 0xC0:
                raise rd.ReferenceFormatError("invalid group table entry")
        tab = np.asarray(table, dtype=np.int64)
        coded = (tab[gid] < 0x80) | (tab[gid] >= 0xC0) if n else np.zeros(0, bool)
        exps = np.where(tab >= 0x80, tab - 256, tab)
        steps = [rd.group_step(step, int(e)) if (b < 0x80 or b >= 0xC0) else 1.0
                 for e, b in zip(exps.tolist(), table, strict=True)]  # fmt: skip
        for s in steps:
            if not (math.isfinite(s) and s >= 2.0**-1022):
                raise rd.ReferenceFormatError("group step not a finite normal number")
        delta = np.asarray(steps, dtype=np.float64)[gid] if n else np.zeros(0)
    else:
        table = None
        coded = np.ones(n, dtype=bool)
        delta = np.full(n, float(step))
    acc.group_table = r.pos - acc.header
    cls = np.zeros(n, np.int64)
    class_bounds = None
    if k != 1:
        t0 = r.pos
        if ranges:
            class_map = rc.range_classes(length, k)
        elif bounds:
            class_bounds = rc.read_bounds(r, length, k)
            class_map = rc.bounds_classes(class_bounds, length)
        else:
            class_map = rc.unpack_map(r.take((length + 1) // 2), length, k)
        acc.class_map = r.pos - t0
        if n:
            cls = np.asarray(class_map, dtype=np.int64)[rd.position_of(shape, class_axis)]
    coded_per_class = [int((coded & (cls == c)).sum()) for c in range(k)]
    models = []
    for ctx in range(2 * k):
        t0 = r.pos
        classes = rd.read_table(stream, r, end)
        if coded_per_class[ctx // 2] == 0 and classes:
            raise rd.ReferenceFormatError("table of a class without coded elements")
        models.append(rc.model_of(classes) if classes else None)
        acc.freq_table += r.pos - t0
        acc.symbols = max(acc.symbols, len(classes))
        if ctx % 2 == 0:
            acc.class_tables.append(0)
        acc.class_tables[-1] += r.pos - t0
    t0 = r.pos
    chunk = 1 << chunk_log2
    nch = -(-n // chunk)
    lengths = []
    for j in range(nch):
        cnt = int(coded[j * chunk : (j + 1) * chunk].sum())
        rl, bl = r.varint(), r.varint()
        if cnt == 0 and (rl or bl):
            raise rd.ReferenceFormatError("chunk without coded elements has bytes")
        if cnt and rl < 4 * rd.states_for(cnt):
            raise rd.ReferenceFormatError("rANS stream shorter than its states")
        if rl > end or bl > end:
            raise rd.ReferenceFormatError("stream truncated")
        lengths.append((cnt, rl, bl))
    acc.chunk_table = r.pos - t0
    acc.chunks = nch
    out = np.zeros(n, dtype=np.float64)
    dt = rd.CODE_DTYPES[dtype_code]
    t0 = r.pos
    if table is not None:
        item = 8 if dtype_code == 4 else dt.itemsize
        for g, b in enumerate(table):
            if b != rd.GROUP_RAW:
                continue
            idx = np.nonzero(gid == g)[0]
            vals = np.frombuffer(r.take(item * idx.size), dtype=dt.newbyteorder("<"))
            vals = vals.astype(np.float64)
            if not np.all(np.isfinite(vals)):
                raise rd.ReferenceFormatError("raw value not finite")
            out[idx] = vals
    acc.raw = r.pos - t0
    if sum(rl + bl for _, rl, bl in lengths) != end - r.pos:
        raise rd.ReferenceFormatError("chunk lengths do not add up to the payload")
    slots = [None if md is None else np.repeat(np.arange(len(md[0])), md[0]).tolist()
             for md in models]  # fmt: skip
    m_all = np.zeros(n, np.int64)
    q_all = np.zeros(n, np.int64)
    neg_all = np.zeros(n, bool)
    for j, (cnt, rl, bl) in enumerate(lengths):
        if cnt == 0:
            continue
        sel = np.nonzero(coded[j * chunk : (j + 1) * chunk])[0] + j * chunk
        data = r.take(rl)
        br = rd.BitReader(r.take(bl))
        states = rd.states_for(cnt)
        x = []
        pos = 0
        for _ in range(states):
            x.append(int.from_bytes(data[pos : pos + 4], "little"))
            pos += 4
            if not rd.RANS_L <= x[-1] < (rd.RANS_L << 8):
                raise rd.ReferenceFormatError("rANS state out of range")
        tstate = [0] * states
        cls_sel = cls[sel].tolist()
        for i in range(cnt):
            lane = i % states
            q = tstate[lane] >> 1
            ctx = 2 * cls_sel[i] + q
            if models[ctx] is None:
                raise rd.ReferenceFormatError("element of an empty context table")
            freq, cum = models[ctx]
            slot = x[lane] & (rd.PROB_SCALE - 1)
            s = slots[ctx][slot]
            x[lane] = freq[s] * (x[lane] >> rd.PROB_BITS) + slot - cum[s]
            while x[lane] < rd.RANS_L:
                if pos >= len(data):
                    raise rd.ReferenceFormatError("rANS stream read past its length")
                x[lane] = (x[lane] << 8) | data[pos]
                pos += 1
            base, nb = rd.bin_base((s + 1) // 2)
            mag = base + br.read(nb)
            if mag > MAX_MAG3:
                raise rd.ReferenceFormatError("code magnitude above 2^52")
            m_all[sel[i]] = mag
            q_all[sel[i]] = q
            neg_all[sel[i]] = s > 0 and s % 2 == 0
            tstate[lane] = int(TRANS[tstate[lane], mag & 1])
        if pos != len(data) or any(v != rd.RANS_L for v in x):
            raise rd.ReferenceFormatError("rANS stream does not end in its initial state")
        if br.finish() != bl:
            raise rd.ReferenceFormatError("extra-bit area has leftover bytes")
        acc.rans += rl
        acc.extra_bits += bl
    v = reconstruct_values(m_all, q_all, neg_all, delta, tuple(offs))
    out[coded] = v[coded]
    acc.total = len(stream)
    acc.coded = int(coded.sum())
    acc.info = {"step": step, "offsets": tuple(offs[:2]), "trellis_offsets": tuple(offs[2:]),
                "chunk_log2": chunk_log2, "layout": layout, "dtype": dtype_code, "shape": shape,
                "mode": mode, "classes": k, "class_axis": class_axis,
                "class_map": "ranges" if ranges else "bounds" if bounds else "rank",
                "class_bounds": class_bounds}  # fmt: skip
    y = rd.to_dtype(out, dtype_code)
    if table is not None:
        raw_idx = np.isin(gid, [g for g, b in enumerate(table) if b == rd.GROUP_RAW])
        y[raw_idx] = out[raw_idx].astype(y.dtype)
    return y.reshape(shape), acc
