"""Pure-NumPy reference of SLICER bitstream format 1.

This module is the executable form of ``docs/format.md``: written to be read next to the
spec (section numbers in the comments), not to be fast. Every fast path (C++, CUDA) is tested
for byte equality against it. It depends only on NumPy, ``zlib`` and ``ml_dtypes``.

Parameters are the integer fields of ``slicer_params`` (spec §2)::

    {"sparsity_ppb", "asym_ppb", "delta_micro", "seed", "bits", "blocks_pos", "blocks_neg",
     "levels" (list, empty for ABQ), "chunk_log2", "group_rows"}
"""

from __future__ import annotations

import math
import struct
import zlib
from dataclasses import dataclass, field

import ml_dtypes
import numpy as np

MAGIC = b"SLCR"
VERSION = 1
DTYPE_CODES = {np.dtype(np.float32): 1, np.dtype(np.float16): 2, np.dtype(ml_dtypes.bfloat16): 3}
CODE_DTYPES = {code: dt for dt, code in DTYPE_CODES.items()}
PPB = 10**9
MASK64 = (1 << 64) - 1


class ReferenceFormatError(ValueError):
    """A stream that format 1 calls invalid."""


def default_params(**overrides) -> dict:
    params = {
        "sparsity_ppb": 900_000_000,
        "asym_ppb": 0,
        "delta_micro": 10_000,
        "seed": 0,
        "bits": 8,
        "blocks_pos": 3,
        "blocks_neg": 3,
        "levels": [],
        "chunk_log2": 14,
        "group_rows": 0,
    }
    unknown = set(overrides) - set(params)
    if unknown:
        raise KeyError(f"unknown parameters {sorted(unknown)}")
    params.update(overrides)
    return params


# ----------------------------------------------------------------------------- §1 primitives


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
        self.out = bytearray()
        self.acc = 0
        self.nacc = 0
        self.count = 0  # bits written

    def write(self, value: int, nbits: int) -> None:
        if nbits == 0:
            return
        self.acc |= (value & ((1 << nbits) - 1)) << self.nacc
        self.nacc += nbits
        self.count += nbits
        while self.nacc >= 8:
            self.out.append(self.acc & 0xFF)
            self.acc >>= 8
            self.nacc -= 8

    def unary(self, quotient: int) -> None:
        while quotient >= 32:
            self.write(0xFFFFFFFF, 32)
            quotient -= 32
        self.write((1 << quotient) - 1, quotient + 1)  # `quotient` ones, then a zero

    def finish(self) -> bytes:
        if self.nacc:
            self.out.append(self.acc & 0xFF)  # zero padding (§1)
            self.acc = 0
            self.nacc = 0
        return bytes(self.out)


class BitReader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0  # bit position

    def read(self, nbits: int) -> int:
        if self.pos + nbits > 8 * len(self.data):
            raise ReferenceFormatError("chunk payload read past its length")
        value = 0
        for i in range(nbits):
            p = self.pos + i
            value |= ((self.data[p >> 3] >> (p & 7)) & 1) << i
        self.pos += nbits
        return value

    def unary(self) -> int:
        quotient = 0
        while self.read(1):
            quotient += 1
        return quotient


def draw(seed: int, index: np.ndarray) -> np.ndarray:
    """splitmix64 of counter ``index`` under ``seed`` (spec §4.3), as uint64."""
    with np.errstate(over="ignore"):
        z = np.uint64(seed) + (index.astype(np.uint64) + np.uint64(1)) * np.uint64(
            0x9E3779B97F4A7C15
        )
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def label_code_bits(num_labels: int) -> tuple[int, int]:
    b = num_labels.bit_length() - 1  # floor(log2 L)
    return b, (1 << (b + 1)) - num_labels


def write_label(bw: BitWriter, label: int, num_labels: int) -> None:
    b, u = label_code_bits(num_labels)
    if label < u:
        bw.write(label, b)
    else:
        t = label - u
        bw.write(u + (t >> 1), b)
        bw.write(t & 1, 1)


def read_label(br: BitReader, num_labels: int) -> int:
    b, u = label_code_bits(num_labels)
    x = br.read(b)
    return x if x < u else u + 2 * (x - u) + br.read(1)


def rice_parameter(count: int, gap_sum: int, chunk_log2: int) -> int:
    r = 0
    while r < chunk_log2 and count << (r + 1) <= gap_sum:
        r += 1
    return r


# ----------------------------------------------------------------------------- §4 ATKF


def keep_count(n: int, nnz: int, sparsity_ppb: int) -> int:
    return min(n * (PPB - sparsity_ppb) // PPB, nnz)


def preference_order(values: np.ndarray, global_index: np.ndarray, seed: int) -> np.ndarray:
    """Indices sorting elements in P order: |x| descending, draw ascending, index ascending."""
    magnitude = np.abs(values.astype(np.float64))
    return np.lexsort((global_index, draw(seed, global_index), -magnitude))


def select(x: np.ndarray, first_index: int, params: dict) -> np.ndarray:
    """Group-relative indices of the kept elements (spec §4.4), in P order."""
    n = x.size
    x64 = x.astype(np.float64)
    k = keep_count(n, int(np.count_nonzero(x)), params["sparsity_ppb"])
    if k == 0:
        return np.zeros(0, dtype=np.int64)
    global_index = np.arange(first_index, first_index + n, dtype=np.int64)
    order = preference_order(x, global_index, params["seed"])
    magnitude = np.abs(x64)
    tau = magnitude[order[k - 1]]
    if params["asym_ppb"] == 0:
        strict = magnitude > tau
    else:
        f_plus = float(PPB + params["asym_ppb"]) / float(PPB)
        f_minus = float(PPB - params["asym_ppb"]) / float(PPB)
        strict = (x64 > tau * f_plus) | (-x64 > tau * f_minus)
    strict_in_order = order[strict[order]]
    if strict_in_order.size >= k:
        return strict_in_order[:k]
    rest = (~strict) & (x64 != 0)
    rest_in_order = order[rest[order]]
    kept = np.concatenate([strict_in_order, rest_in_order[: k - strict_in_order.size]])
    # Return the kept set in P order (blocks are cut in that order, §5.1).
    return kept[
        np.lexsort((global_index[kept], draw(params["seed"], global_index[kept]), -magnitude[kept]))
    ]


# ----------------------------------------------------------------------------- §5 MS + ABQ


def quantize(a: np.ndarray, lo: float, hi: float, width: int) -> np.ndarray:
    levels = (1 << width) - 1
    step = (hi - lo) / levels
    q = np.floor((a - lo) / step + 0.5)
    return np.clip(q, 0, levels).astype(np.int64)


def dequantize(q: np.ndarray, lo: float, hi: float, width: int) -> np.ndarray:
    if width == 0:
        return np.full(q.shape, hi, dtype=np.float64)
    step = (hi - lo) / ((1 << width) - 1)
    return lo + q.astype(np.float64) * step


def abq_width(a: np.ndarray, lo: float, hi: float, bits: int, delta_micro: int) -> int:
    """Greedy ABQ (spec §5.4): lower the width while the DS budget holds."""
    width = bits
    if delta_micro == 0:
        return width
    t0 = quantize(a, lo, hi, bits)
    while width > 1:
        candidate = width - 1
        t = quantize(a, lo, hi, candidate)
        ds_sum = int(np.abs((t0 >> (bits - candidate)) - t).sum())
        if ds_sum * 10**6 <= delta_micro * a.size:
            width = candidate
        else:
            break
    return width


def block_counts(n: int, blocks: int) -> list[int]:
    return [(m + 1) * n // blocks - m * n // blocks for m in range(blocks)]


@dataclass
class Block:
    label: int
    count: int
    width: int = 0
    lo: float = 0.0
    hi: float = 0.0


@dataclass
class CodedGroup:
    k: int
    n_pos: int
    blocks: list[Block]
    positions: np.ndarray  # group-relative, ascending
    labels: np.ndarray
    codes: np.ndarray


def code_group(x: np.ndarray, first_index: int, params: dict) -> CodedGroup:
    kept = select(x, first_index, params)  # P order
    a = np.abs(x[kept].astype(np.float64))
    positive = x[kept] > 0
    labels = np.zeros(kept.size, dtype=np.int64)
    codes = np.zeros(kept.size, dtype=np.int64)
    blocks: list[Block] = []
    for sign_is_pos, nblocks, label_base in (
        (True, params["blocks_pos"], 0),
        (False, params["blocks_neg"], params["blocks_pos"]),
    ):
        members = np.flatnonzero(positive == sign_is_pos)  # still in P order
        bounds = np.cumsum([0] + block_counts(members.size, nblocks))
        nonempty = [m for m in range(nblocks) if bounds[m + 1] > bounds[m]]
        for b, m in enumerate(nonempty):
            idx = members[bounds[m] : bounds[m + 1]]
            labels[idx] = label_base + m
            hi, own_min = float(a[idx].max()), float(a[idx].min())
            if b + 1 < len(nonempty):  # chained range (§5.2): down to the next block's top
                nxt = nonempty[b + 1]
                lo = float(a[members[bounds[nxt] : bounds[nxt + 1]]].max())
            else:
                lo = own_min
            if own_min == hi:
                width = 0
            elif params["levels"]:
                width = params["levels"][m]
            else:
                width = abq_width(a[idx], lo, hi, params["bits"], params["delta_micro"])
            if width:
                codes[idx] = quantize(a[idx], lo, hi, width)
            blocks.append(Block(label=label_base + m, count=idx.size, width=width, lo=lo, hi=hi))
    order = np.argsort(kept, kind="stable")
    return CodedGroup(
        k=kept.size,
        n_pos=int(positive.sum()),
        blocks=blocks,
        positions=kept[order],
        labels=labels[order],
        codes=codes[order],
    )


# ----------------------------------------------------------------------------- §6 writing


def group_count(shape: tuple[int, ...], group_rows: int) -> int:
    n = math.prod(shape)
    if n == 0 or not group_rows or len(shape) == 0:
        return 1
    return n // shape[-1]


def as_float32(x: np.ndarray) -> tuple[np.ndarray, int]:
    dt = np.dtype(x.dtype)
    if dt not in DTYPE_CODES:
        raise TypeError(f"unsupported dtype {dt}")
    flat = np.ascontiguousarray(x).reshape(-1).astype(np.float32)
    if not np.all(np.isfinite(flat)):
        raise ValueError("input contains NaN or infinity")
    return flat, DTYPE_CODES[dt]


def header_bytes(shape, dtype_code: int, params: dict) -> bytes:
    levels = params["levels"]
    out = bytearray(MAGIC)
    out += bytes([VERSION, 0, dtype_code, 1 if levels else 0, len(shape)])
    for dim in shape:
        out += varint(dim)
    for key in ("sparsity_ppb", "asym_ppb", "delta_micro", "seed"):
        out += varint(params[key])
    bits = max(levels) if levels else params["bits"]
    out += bytes([bits, params["blocks_pos"], params["blocks_neg"], params["chunk_log2"]])
    out += varint(group_count(tuple(shape), params["group_rows"]))
    return bytes(out)


def encode_chunk(positions, labels, codes, widths, num_labels, chunk_log2) -> bytes:
    if positions.size == 0:
        return b""
    gaps = np.diff(positions, prepend=-1) - 1
    r = rice_parameter(positions.size, int(gaps.sum()), chunk_log2)
    bw = BitWriter()
    bw.write(r, 5)
    for gap, label, code in zip(gaps.tolist(), labels.tolist(), codes.tolist(), strict=True):
        bw.unary(gap >> r)
        bw.write(gap & ((1 << r) - 1), r)
        write_label(bw, label, num_labels)
        bw.write(code, widths[label])
    return bw.finish()


def encode(x: np.ndarray, params: dict | None = None) -> bytes:
    """Encode ``x`` (float32 / float16 / ml_dtypes.bfloat16) to a format-1 stream."""
    params = default_params() if params is None else params
    shape = tuple(int(d) for d in np.shape(x))
    flat, dtype_code = as_float32(np.asarray(x))
    out = bytearray(header_bytes(shape, dtype_code, params))
    num_groups = group_count(shape, params["group_rows"])
    n = flat.size // num_groups if num_groups else 0
    chunk = 1 << params["chunk_log2"]
    num_labels = params["blocks_pos"] + params["blocks_neg"]
    payload = bytearray()
    for g in range(num_groups):
        coded = code_group(flat[g * n : (g + 1) * n], g * n, params)
        out += varint(coded.k) + varint(coded.n_pos)
        widths = [0] * num_labels
        for sign_blocks in (
            [b for b in coded.blocks if b.label < params["blocks_pos"]],
            [b for b in coded.blocks if b.label >= params["blocks_pos"]],
        ):
            if not sign_blocks:
                continue
            for block in sign_blocks:
                widths[block.label] = block.width
                out += bytes([block.width])
            chain = [b.hi for b in sign_blocks] + [sign_blocks[-1].lo]
            out += struct.pack(f"<{len(chain)}f", *chain)
        chunk_of = coded.positions // chunk
        for j in range(-(-n // chunk)):
            sel = chunk_of == j
            data = encode_chunk(
                coded.positions[sel] - j * chunk,
                coded.labels[sel],
                coded.codes[sel],
                widths,
                num_labels,
                params["chunk_log2"],
            )
            out += varint(int(sel.sum())) + varint(len(data))
            payload += data
    out += payload
    out += struct.pack("<I", zlib.crc32(out))
    return bytes(out)


# ----------------------------------------------------------------------------- decoding


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

    def f32(self) -> float:
        return struct.unpack("<f", self.take(4))[0]

    def varint(self) -> int:
        value = 0
        for i in range(10):
            byte = self.u8()
            value |= (byte & 0x7F) << (7 * i)
            if not byte & 0x80:
                if i and byte == 0:
                    raise ReferenceFormatError("non-minimal varint")
                if value > MASK64:
                    raise ReferenceFormatError("varint overflows 64 bits")
                return value
        raise ReferenceFormatError("varint longer than 10 bytes")


@dataclass
class Account:
    header: int = 0
    groups: int = 0
    block_meta: int = 0
    chunk_table: int = 0
    position_bits: int = 0
    label_bits: int = 0
    value_bits: int = 0
    padding_bits: int = 0
    checksum: int = 4
    total: int = 0
    kept: int = 0
    blocks: list = field(default_factory=list)


def decode(stream: bytes, max_elements: int = 2**31) -> tuple[np.ndarray, Account]:
    """Decode a stream, validating everything format 1 requires; returns (array, account)."""
    stream = bytes(stream)
    if len(stream) < 9:
        raise ReferenceFormatError("stream truncated")
    if stream[:4] != MAGIC:
        raise ReferenceFormatError("bad magic")
    if struct.unpack("<I", stream[-4:])[0] != zlib.crc32(stream[:-4]):
        raise ReferenceFormatError("checksum mismatch")
    rd = ByteReader(stream, len(stream) - 4)
    rd.take(4)
    if rd.u8() != VERSION:
        raise ReferenceFormatError("unsupported format version")
    mode, dtype_code, flags, ndim = rd.u8(), rd.u8(), rd.u8(), rd.u8()
    if mode != 0 or dtype_code not in CODE_DTYPES or flags & ~1 or ndim > 32:
        raise ReferenceFormatError("bad header field")
    shape = tuple(rd.varint() for _ in range(ndim))
    n_total = math.prod(shape)
    extent = math.prod(d for d in shape if d)  # §7: non-zero dims multiply to below 2**60
    if n_total > max_elements or extent >= 2**60:
        raise ReferenceFormatError("shape exceeds max_elements")
    s_ppb, asym_ppb, delta_micro, _seed = (rd.varint() for _ in range(4))
    bits, m_pos, m_neg, chunk_log2 = rd.u8(), rd.u8(), rd.u8(), rd.u8()
    if s_ppb >= PPB or asym_ppb >= PPB or delta_micro > 0xFFFFFFFF or not 1 <= bits <= 16:
        raise ReferenceFormatError("parameter out of range")
    if not (1 <= m_pos <= 64 and 1 <= m_neg <= 64 and 6 <= chunk_log2 <= 24):
        raise ReferenceFormatError("parameter out of range")
    num_groups = rd.varint()
    if num_groups < 1 or (n_total == 0 and num_groups != 1) or n_total % num_groups:
        raise ReferenceFormatError("bad group count")
    account = Account(header=rd.pos)
    n = n_total // num_groups
    chunk = 1 << chunk_log2
    num_labels = m_pos + m_neg
    groups = []
    for _ in range(num_groups):
        start = rd.pos
        k, n_pos = rd.varint(), rd.varint()
        if k > n or n_pos > k:
            raise ReferenceFormatError("bad kept count")
        account.groups += rd.pos - start
        start = rd.pos
        counts = block_counts(n_pos, m_pos) + block_counts(k - n_pos, m_neg)
        meta = {}
        for first, last in ((0, m_pos), (m_pos, num_labels)):
            labels = [label for label in range(first, last) if counts[label]]
            if not labels:
                continue
            widths = [rd.u8() for _ in labels]
            chain = [rd.f32() for _ in range(len(labels) + 1)]
            if not all(math.isfinite(v) and v > 0 for v in chain):
                raise ReferenceFormatError("bad block range")
            if any(chain[i] < chain[i + 1] for i in range(len(labels))):
                raise ReferenceFormatError("block ranges not non-increasing")
            if (chain[-1] == chain[-2]) != (widths[-1] == 0):
                raise ReferenceFormatError("bad last block range")
            for b, label in enumerate(labels):
                width, lo, hi = widths[b], chain[b + 1], chain[b]
                if width > bits or (width and not lo < hi):
                    raise ReferenceFormatError("bad block width")
                meta[label] = (width, lo, hi)
                sign = 1 if label < m_pos else -1
                account.blocks.append((sign, label - first, counts[label], width, lo, hi))
        account.block_meta += rd.pos - start
        start = rd.pos
        entries = []
        for j in range(-(-n // chunk)):
            cnt, length = rd.varint(), rd.varint()
            if cnt > min(chunk, n - j * chunk):
                raise ReferenceFormatError("chunk count too large")
            entries.append((cnt, length))
        if sum(c for c, _ in entries) != k:
            raise ReferenceFormatError("chunk counts do not add up to k")
        account.chunk_table += rd.pos - start
        groups.append((k, counts, meta, entries))
    payload_len = sum(length for g in groups for _, length in g[3])
    if rd.pos + payload_len != rd.end:
        raise ReferenceFormatError("chunk lengths do not match the stream size")
    out = np.zeros(n_total, dtype=np.float64)
    for g, (k, counts, meta, entries) in enumerate(groups):
        seen = [0] * num_labels
        for j, (cnt, length) in enumerate(entries):
            data = rd.take(length)
            if cnt == 0:
                if length:
                    raise ReferenceFormatError("empty chunk with payload")
                continue
            br = BitReader(data)
            r = br.read(5)
            if r > chunk_log2:
                raise ReferenceFormatError("bad Rice parameter")
            account.position_bits += 5
            end = min(chunk, n - j * chunk)
            pos = -1
            for _ in range(cnt):
                before = br.pos
                pos += 1 + (br.unary() << r) + br.read(r)
                if pos >= end:
                    raise ReferenceFormatError("position past the chunk end")
                account.position_bits += br.pos - before
                before = br.pos
                label = read_label(br, num_labels)
                if label >= num_labels or label not in meta:
                    raise ReferenceFormatError("label of an empty block")
                account.label_bits += br.pos - before
                width, lo, hi = meta[label]
                q = br.read(width)
                account.value_bits += width
                seen[label] += 1
                value = float(dequantize(np.array([q]), lo, hi, width)[0])
                out[g * n + j * chunk + pos] = value if label < m_pos else -value
            padding = 8 * length - br.pos
            if padding >= 8 or br.read(padding) != 0:
                raise ReferenceFormatError("bad chunk padding")
            account.padding_bits += padding
        if seen != counts:
            raise ReferenceFormatError("block counts do not match labels")
        account.kept += k
    account.total = len(stream)
    values = out.astype(np.float32).astype(CODE_DTYPES[dtype_code])
    return values.reshape(shape), account


# ----------------------------------------------------------------------------- §8 bound


def size_bound(shape, dtype_code: int, params: dict) -> int:
    shape = tuple(shape)
    n_total = math.prod(shape)
    num_groups = group_count(shape, params["group_rows"])
    n = n_total // num_groups
    bits = max(params["levels"]) if params["levels"] else params["bits"]
    chunk_log2 = params["chunk_log2"]
    chunk = 1 << chunk_log2
    num_labels = params["blocks_pos"] + params["blocks_neg"]
    lb = (num_labels - 1).bit_length()  # ceil(log2 L)
    k_max = n * (PPB - params["sparsity_ppb"]) // PPB
    nch = -(-n // chunk)
    per_group = 2 * len(varint(k_max)) + 5 * num_labels + 8
    for j in range(nch):
        c = min(chunk, n - j * chunk)
        per_chunk_bytes = -(-(12 + c * (3 + lb + bits + chunk_log2)) // 8)
        per_group += len(varint(c)) + len(varint(per_chunk_bytes))
    rice = 0 if k_max == 0 else math.ceil(k_max * math.log2(n / k_max) * (1 + 1e-9)) + 2
    per_group += -(-(12 * nch + k_max * (3 + lb + bits) + rice) // 8) + nch
    return len(header_bytes(shape, dtype_code, params)) + num_groups * per_group + 4
