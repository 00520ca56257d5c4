"""Unsigned LEB128 varints (docs/format.md §1): the one writer of the Python package."""

from __future__ import annotations


def varint(value: int) -> bytes:
    """The minimal varint of ``value`` ≥ 0: 7 bits per byte, least significant group first."""
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)
