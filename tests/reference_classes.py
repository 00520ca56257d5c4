"""Pure-NumPy reference of class maps (docs/format.md §18), shared by frames (§17) and mode 2.

A class map gives each position along one axis a class; every element is coded with its class's
frequency table. The rANS coder below is §14 of ``reference_dense`` with the (frequency,
cumulative) pair of each element taken from its class's table.
"""

from __future__ import annotations

import numpy as np

import reference_dense as rd

MAX_CLASSES = 16
STAT_CLAMP = 1 << 16  # §18.2: S_a sums min(m, 2^16)


def pack_map(classes: list[int] | np.ndarray, k: int) -> bytes:
    """§18.1: two entries per byte, low nibble first."""
    c = [int(v) for v in classes]
    if not 2 <= k <= MAX_CLASSES or any(not 0 <= v < k for v in c):
        raise ValueError("class map entries out of range")
    if sorted(set(c)) != list(range(k)):
        raise ValueError("every class must occur in the map")
    out = bytearray((len(c) + 1) // 2)
    for a, v in enumerate(c):
        out[a // 2] |= v << (4 * (a % 2))
    return bytes(out)


def unpack_map(data: bytes, length: int, k: int) -> list[int]:
    """§18.1 with every decoder check; ``data`` is exactly ceil(length / 2) bytes."""
    if not 2 <= k <= MAX_CLASSES:
        raise rd.ReferenceFormatError("class count out of range")
    if len(data) != (length + 1) // 2:
        raise rd.ReferenceFormatError("class map truncated")
    out = []
    for a in range(length):
        out.append((data[a // 2] >> (4 * (a % 2))) & 0xF)
    if length % 2 and data[-1] >> 4:
        raise rd.ReferenceFormatError("class map padding not zero")
    if any(v >= k for v in out):
        raise rd.ReferenceFormatError("class map entry >= class count")
    if len(set(out)) != k:
        raise rd.ReferenceFormatError("a class of the map is never used")
    return out


def range_classes(length: int, k: int) -> list[int]:
    """§18.3: index ranges, position a has class floor(a · K / L) (no bytes; every class used
    when 2 <= K <= L)."""
    if not 2 <= k <= MAX_CLASSES or k > length:
        raise rd.ReferenceFormatError("class count out of range")
    return [a * k // length for a in range(length)]


def check_bounds(bounds, length: int, k: int) -> list[int]:
    """§18.4: K − 1 boundaries 1 <= b_1 < … < b_{K−1} <= L − 1 (ValueError otherwise)."""
    b = [int(v) for v in bounds]
    if not 2 <= k <= MAX_CLASSES or k > length or len(b) != k - 1:
        raise ValueError("need K - 1 boundaries with 2 <= K <= min(16, L)")
    if any(not 1 <= v <= length - 1 for v in b) or any(
        x >= y for x, y in zip(b, b[1:], strict=False)
    ):
        raise ValueError("boundaries must rise strictly within 1 .. L - 1")
    return b


def bounds_classes(bounds, length: int) -> list[int]:
    """§18.4: class(a) = #{j : b_j <= a}."""
    return [int(np.searchsorted(np.asarray(bounds, dtype=np.int64), a, side="right"))
            for a in range(length)]  # fmt: skip


def pack_bounds(bounds) -> bytes:
    """§18.4: the gaps g_j = b_j − b_{j−1} (b_0 = 0) as minimal varints."""
    out, prev = b"", 0
    for b in bounds:
        out += rd.varint(int(b) - prev)
        prev = int(b)
    return out


def read_bounds(r, length: int, k: int) -> list[int]:
    """§18.4 with every decoder check (r: a reference_dense.ByteReader): K − 1 minimal varint
    gaps >= 1, the last boundary < L; truncation raises "stream truncated"."""
    if not 2 <= k <= MAX_CLASSES or k > length:
        raise rd.ReferenceFormatError("class count out of range")
    out, prev = [], 0
    for _ in range(k - 1):
        gap = r.varint()
        if gap == 0:
            raise rd.ReferenceFormatError("class boundary gap of 0")
        prev += gap
        if prev >= length:
            raise rd.ReferenceFormatError("class boundary past L - 1")
        out.append(prev)
    return out


def position_sums(m: np.ndarray, pos: np.ndarray, coded: np.ndarray, length: int) -> np.ndarray:
    """§18.2: S_a = Σ min(m, 2^16) over the coded elements at position a (uint64, exact)."""
    out = np.zeros(length, dtype=np.uint64)
    w = np.minimum(m[coded].astype(np.uint64), np.uint64(STAT_CLAMP))
    np.add.at(out, pos[coded], w)
    return out


def class_rule(sums: np.ndarray, k: int) -> list[int]:
    """§18.2: order positions by (S_a, a); rank r gets class floor(r · K / L)."""
    length = len(sums)
    if not 2 <= k <= min(MAX_CLASSES, length):
        raise ValueError("need 2 <= classes <= min(16, positions)")
    order = sorted(range(length), key=lambda a: (int(sums[a]), a))
    out = [0] * length
    for r, a in enumerate(order):
        out[a] = r * k // length
    return out


def rans_encode(symbols, cls, models, states: int) -> bytes:
    """§14 where element i uses ``models[cls[i]] = (freq, cum)``."""
    x = [rd.RANS_L] * states
    out = bytearray()
    for i in range(len(symbols) - 1, -1, -1):
        j = i % states
        freq, cum = models[cls[i]]
        s = symbols[i]
        f = freq[s]
        x_max = ((rd.RANS_L >> rd.PROB_BITS) << 8) * f
        while x[j] >= x_max:
            out.append(x[j] & 0xFF)
            x[j] >>= 8
        x[j] = ((x[j] // f) << rd.PROB_BITS) + (x[j] % f) + cum[s]
    for j in range(states - 1, -1, -1):
        for shift in (24, 16, 8, 0):
            out.append((x[j] >> shift) & 0xFF)
    return bytes(reversed(out))


def rans_decode(data: bytes, cls, models, states: int, lanes=None) -> list:
    """Inverse of :func:`rans_encode` for ``len(cls)`` elements, with §14's checks.

    ``lanes`` (optional): an object whose ``context(i, c)`` gives the table of element i of
    class ``c = cls[i]`` and whose ``decoded(i, s)`` sees each symbol as it is decoded (a
    trellis decoder's per-lane state, §17.4); without it element i uses table ``cls[i]``."""
    if len(data) < 4 * states:
        raise rd.ReferenceFormatError("rANS stream shorter than its states")
    pos = 0
    x = []
    for _ in range(states):
        x.append(int.from_bytes(data[pos : pos + 4], "little"))
        pos += 4
        if not rd.RANS_L <= x[-1] < (rd.RANS_L << 8):
            raise rd.ReferenceFormatError("rANS state out of range")
    slots = [np.repeat(np.arange(len(f)), f).tolist() for f, _ in models]
    out = []
    for i, c in enumerate(cls):
        j = i % states
        if lanes is not None:
            c = lanes.context(i, c)
        freq, cum = models[c]
        slot = x[j] & (rd.PROB_SCALE - 1)
        s = slots[c][slot]
        x[j] = freq[s] * (x[j] >> rd.PROB_BITS) + slot - cum[s]
        while x[j] < rd.RANS_L:
            if pos >= len(data):
                raise rd.ReferenceFormatError("rANS stream read past its length")
            x[j] = (x[j] << 8) | data[pos]
            pos += 1
        out.append(s)
        if lanes is not None:
            lanes.decoded(i, s)
    if pos != len(data) or any(v != rd.RANS_L for v in x):
        raise rd.ReferenceFormatError("rANS stream does not end in its initial state")
    return out


def model_of(classes_v: list[int]) -> tuple[list[int], list[int]]:
    """(freq, cum) of a table of count classes (§13.2)."""
    freq = rd.normalize([rd.class_count(v) for v in classes_v])
    cum = [0]
    for f in freq:
        cum.append(cum[-1] + f)
    return freq, cum
