"""The frame decoder's slot → symbol tables (cpp/src/frames: one bucket of 32 slots per byte
and a walk through the class's cumulative counts): every symbol of every class decodes as the
reference decodes it — the rare symbols ≥ 255 (codes of 2^33 and more), the floor symbols
packed many to a bucket, with 1 to 16 classes and 1, 2 or 4 states — and damaged frames of a
16-class context get the reference's verdict."""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest

import reference_dense as rd
import reference_frames as rf
import slicer


def every_symbol_row(d: int, step: float, rng: np.random.Generator) -> np.ndarray:
    """A float64 row whose codes run through the bins of §11 with both signs — 0 … 203, every
    bin whose codes stay below 2^52, where |x|/Δ + ρ is exact (symbols up to 407) — placed at
    random positions (so every class meets large and small codes)."""
    values = []
    for b in range(204):
        base, nbits = rd.bin_base(b)
        m = base + (int(rng.integers(0, 1 << nbits)) if nbits else 0)
        values.append(m * step)
    values = np.asarray(values, dtype=np.float64)
    signs = np.where(np.arange(2 * values.size) % 2 == 0, 1.0, -1.0)
    row = np.resize(np.repeat(values, 2) * signs, d)
    return row[rng.permutation(d)]


@pytest.mark.parametrize("states", [1, 2, 4])
@pytest.mark.parametrize("classes", [1, 2, 16])
def test_every_symbol_decodes_as_the_reference(classes, states):
    rng = np.random.default_rng(10 * classes + states)
    d = 816  # 2 × 408: each symbol of the row twice, in some class
    step = 2.0**-20  # codes up to 2^52 stay finite in float64
    calib = rng.standard_normal((4, d)) * np.geomspace(0.01, 10.0, d)[rng.permutation(d)]
    enc = slicer.FrameEncoder(calib, step=step, states=states, classes=classes)
    ref = rf.build_context(calib, step=enc.step, states=states, classes=classes)
    assert enc.context == ref.data
    dec = slicer.FrameDecoder(enc.context)
    for i in range(3):
        row = every_symbol_row(d, enc.step, rng)
        frame = enc.encode(row)
        assert frame == rf.encode_frame(ref, row, i)
        want, _ = rf.decode_frame(ref, frame, i)
        got = dec.decode(frame)
        np.testing.assert_array_equal(got.view(np.uint8), want.view(np.uint8))
        assert np.max(np.abs(got - row) / np.maximum(np.abs(row), enc.step)) < 1.0


def test_sixteen_class_frames_damaged_get_the_reference_verdict():
    """Every single-byte change (and truncation) of a 16-class frame, resealed behind a valid
    check: the C++ decoder rejects exactly what the reference rejects and otherwise returns
    its rows."""
    rng = np.random.default_rng(12)
    d = 48
    spread = np.geomspace(0.01, 30.0, d)[rng.permutation(d)]
    calib = rng.standard_t(3, size=(6, d)) * spread
    enc = slicer.FrameEncoder(calib, step=0.05, classes=16)
    ref = rf.build_context(calib, step=enc.step, states=2, classes=16)
    assert enc.context == ref.data
    dec = slicer.FrameDecoder(enc.context, check_sequence=False)
    body = enc.encode(rng.standard_t(3, size=d) * spread)[:-4]
    mutations = [body[:i] + bytes([v]) + body[i + 1 :] for i in range(len(body))
                 for v in (0x00, 0xFF, body[i] ^ 0x01, body[i] ^ 0x40)]  # fmt: skip
    mutations += [body[:i] for i in range(len(body))]
    accepted = 0
    for m in mutations:
        bad = m + struct.pack("<I", zlib.crc32(m, zlib.crc32(struct.pack("<I", ref.context_id))))
        try:
            want = rf.decode_frame(ref, bad)[0]
        except rd.ReferenceFormatError:
            with pytest.raises(slicer.FormatError):
                dec.decode(bad)
            continue
        accepted += 1
        np.testing.assert_array_equal(dec.decode(bad).view(np.uint8), want.view(np.uint8))
    assert 0 < accepted < len(mutations)
