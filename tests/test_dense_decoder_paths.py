"""The dense decoder's fast path (docs/format.md §14: four interleaved states, renormalisation
bytes and extra bits read from windows without per-byte checks) against the NumPy reference, on
chunks large enough to take it (n_j >= 8192) and with every density of extra bits, intact and
damaged behind a valid CRC. Near the end of a chunk the decoder switches to checked reads; a
damaged stream must get the reference's verdict whichever path meets the damage."""

from __future__ import annotations

import numpy as np
import pytest

import reference_dense as rd
import slicer
from dense_tools import assert_reference_verdict, same_values, with_crc


def _streams() -> list[bytes]:
    rng = np.random.default_rng(2026)
    out = []
    # (shape, groups, step, chunk size): from no extra bits at all to extra bits on almost every
    # element; at the default chunk size (docs/format.md §15.1) 9000 and 20000 elements are one
    # chunk of four states, 17000 and 18000 a pair of them and a one-state tail; 2**14 cuts 20000
    # into a four-state chunk and a one-state tail. A last four-state chunk with few extra bits
    # (8.0, 2.0, 2.5) decodes its area from a copy followed by zeros.
    for shape, groups, step, chunk in [
        ((9000,), "tensor", 8.0, None),
        ((9000,), "tensor", 0.05, None),
        ((3, 6000), "rows", 0.3, None),
        ((20000,), "tensor", 0.001, None),
        ((2, 5, 1700), "channels", 0.02, None),
        ((17000,), "tensor", 2.0, None),
        ((20000,), "tensor", 0.3, 16384),
        ((21952,), "tensor", 2.5, None),
    ]:
        x = rng.standard_normal(shape) * rng.choice([1.0, 100.0], size=shape, p=[0.95, 0.05])
        out.append(
            slicer.encode(
                x.astype(np.float32), mode="dense", step=step, groups=groups, chunk_size=chunk
            )
        )
    return out


STREAMS = _streams()


@pytest.mark.parametrize("index", range(len(STREAMS)))
def test_intact_streams_match_reference(index):
    stream = STREAMS[index]
    ref, _ = rd.decode(stream)
    for threads in (1, 2):
        assert same_values(slicer.decode(stream, threads=threads), ref)


def test_damaged_streams_get_the_reference_verdict():
    rng = np.random.default_rng(99)
    accepted = rejected = 0
    for it in range(360):
        b = bytearray(STREAMS[it % len(STREAMS)][:-4])
        kind = it % 4
        for _ in range(int(rng.integers(1, 4))):
            pos = int(rng.integers(5, len(b)))
            if kind == 0:
                b[pos] ^= 1 << int(rng.integers(8))
            elif kind == 1:
                b[pos] = int(rng.integers(256))
            elif kind == 2:
                del b[pos]
            else:
                b.insert(pos, int(rng.integers(256)))
        if assert_reference_verdict(with_crc(bytes(b)), max_elements=1 << 20):
            accepted += 1
        else:
            rejected += 1
    assert rejected > 100 and accepted > 10  # both verdicts exercised


def test_damage_in_the_last_extra_bits_is_caught():
    """The last bytes of a chunk's extra-bit area: the fast path reads them through a window
    that may reach past the area; flipping them must give the reference's verdict."""
    stream = STREAMS[3]  # every element carries extra bits
    info = slicer.inspect(stream)
    assert info.to_dict()["account"]["extra_bits"] > 1000
    body = stream[:-4]
    for back in range(1, 40):
        bad = bytearray(body)
        bad[len(body) - back] ^= 0x10
        assert_reference_verdict(with_crc(bytes(bad)))
