"""Stream surgery for decoder tests: walk a format-1 stream's tables and payload bits, mutate
it and fix the CRC up, so that a test reaches the check it means to exercise.

Built on the readers of ``tests/reference.py`` (docs/format.md §6); it trusts its input (use
it on streams the encoder wrote).
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field

import reference as ref


def fix_crc(body: bytes) -> bytes:
    """`body` (a stream whose last 4 bytes are a checksum) with a valid CRC-32 (§6.2)."""
    return bytes(body[:-4]) + struct.pack("<I", zlib.crc32(bytes(body[:-4])))


@dataclass
class Chunk:
    group: int
    index: int
    count: int
    offset: int  # byte offset of the payload in the stream
    length: int


@dataclass
class Layout:
    """Where the parts of a format-1 stream lie."""

    num_labels: int
    blocks_pos: int
    chunk_log2: int
    n: int  # group size
    header_end: int
    payload_start: int
    widths: list[dict[int, int]] = field(default_factory=list)  # per group: label -> width
    group_spans: list[tuple[int, int]] = field(default_factory=list)  # table bytes per group
    chunks: list[Chunk] = field(default_factory=list)


def layout(stream: bytes) -> Layout:
    rd = ref.ByteReader(stream, len(stream) - 4)
    rd.take(5)
    _mode, _dtype, _flags, ndim = rd.u8(), rd.u8(), rd.u8(), rd.u8()
    shape = [rd.varint() for _ in range(ndim)]
    for _ in range(4):
        rd.varint()
    _bits, m_pos, m_neg, chunk_log2 = rd.u8(), rd.u8(), rd.u8(), rd.u8()
    groups = rd.varint()
    total = 1
    for d in shape:
        total *= d
    out = Layout(m_pos + m_neg, m_pos, chunk_log2, total // groups, rd.pos, 0)
    entries = []
    for g in range(groups):
        start = rd.pos
        k, n_pos = rd.varint(), rd.varint()
        counts = ref.block_counts(n_pos, m_pos) + ref.block_counts(k - n_pos, m_neg)
        widths = {}
        for first, last in ((0, m_pos), (m_pos, m_pos + m_neg)):
            labels = [label for label in range(first, last) if counts[label]]
            for label in labels:
                widths[label] = rd.u8()
            if labels:
                rd.take(4 * (len(labels) + 1))
        out.widths.append(widths)
        for j in range(-(-out.n // (1 << chunk_log2))):
            entries.append((g, j, rd.varint(), rd.varint()))
        out.group_spans.append((start, rd.pos))
    out.payload_start = offset = rd.pos
    for g, j, count, length in entries:
        out.chunks.append(Chunk(g, j, count, offset, length))
        offset += length
    return out


def label_bit_offsets(stream: bytes, lay: Layout, chunk: Chunk) -> list[tuple[int, int]]:
    """(bit offset within the chunk, label) of every kept element of `chunk` (§6.1)."""
    br = ref.BitReader(stream[chunk.offset : chunk.offset + chunk.length])
    r = br.read(5)
    result = []
    for _ in range(chunk.count):
        br.unary()
        br.read(r)
        at = br.pos
        label = ref.read_label(br, lay.num_labels)
        result.append((at, label))
        br.read(lay.widths[chunk.group][label])
    return result


def set_bits(stream: bytes, byte_offset: int, bit_offset: int, value: int, nbits: int) -> bytes:
    """Overwrite `nbits` LSB-first bits at `bit_offset` of the payload at `byte_offset`."""
    out = bytearray(stream)
    for i in range(nbits):
        p = bit_offset + i
        byte, bit = byte_offset + (p >> 3), p & 7
        out[byte] = (out[byte] & ~(1 << bit)) | (((value >> i) & 1) << bit)
    return bytes(out)
