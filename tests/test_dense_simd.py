"""The dense coder's SIMD paths against its scalar paths (SLICER_DENSE_SIMD=0 forces the scalar
ones; the variable is read at every call): the same values from the paired AVX2 decoder (two
or four chunks of four states side by side, docs/format.md §14) and the same verdicts and
rejection names on damaged streams. On a CPU without AVX2 both runs take the scalar path and
the tests still hold.

The paired decoder reads the extra bits either inside its vector steps or in a second pass over
the elements whose symbols are not direct (chosen per stream from its tables;
SLICER_DENSE_DEFERRED=0 / 1 forces one): every SIMD decode here runs under the stream's own choice
and under both forced ones, each compared with the scalar decoder. Mode 1's inline steps take
their symbols from narrow slot entries where every frequency is at most 2^11
(SLICER_DENSE_NARROW=0 forces the wide entries and the lut): the inline runs go both ways.

Chunks of 2^13 elements keep the inputs small while giving many four-state chunks: sets of four,
pairs, single chunks and one-state tails, odd chunk counts, chunks that end inside a row, group
tables with zero and raw groups, extra bits on almost every element, escaped symbols (codes of
2^33 and more), every dtype, and mode 2 with each class-map kind."""

from __future__ import annotations

import numpy as np
import pytest

import reference_dense as rd
import slicer
from dense_tools import native, same_values, with_crc
from slicer import _core

CHUNK = 8192


# (SLICER_DENSE_DEFERRED, SLICER_DENSE_NARROW): the stream's choice, extra bits inline (narrow
# entries where they fit, and never), in a second pass
VARIANTS = ((None, None), ("0", None), ("0", "0"), ("1", None))


def _setenv(monkeypatch, name: str, value: str | None) -> None:
    if value is None:
        monkeypatch.delenv(name, raising=False)
    else:
        monkeypatch.setenv(name, value)


def _decode(stream: bytes, simd: bool, monkeypatch, variant=(None, None)):
    """("ok", values) or ("error", the exception's text with the rejection name)."""
    monkeypatch.setenv("SLICER_DENSE_SIMD", "1" if simd else "0")
    _setenv(monkeypatch, "SLICER_DENSE_DEFERRED", variant[0])
    _setenv(monkeypatch, "SLICER_DENSE_NARROW", variant[1])
    try:
        return "ok", slicer.decode(stream, threads=1)
    except slicer.FormatError as e:
        return "error", f"{e} [{_core.error_detail()}]"


def _same_decode(stream: bytes, monkeypatch) -> np.ndarray | None:
    kind_s, scalar = _decode(stream, False, monkeypatch)
    for variant in VARIANTS:
        kind_v, vector = _decode(stream, True, monkeypatch, variant)
        assert kind_s == kind_v, (variant, scalar, vector)
        if kind_s == "ok":
            assert same_values(scalar, vector), variant
        else:
            assert scalar == vector, variant
    return scalar if kind_s == "ok" else None


def _data(shape, seed, scale=1.0, outliers=0, outlier_size=1e4, dtype=np.float32):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape) * scale
    if outliers:
        flat = x.reshape(-1)
        at = rng.choice(flat.size, size=outliers, replace=False)
        flat[at] = rng.choice([-1.0, 1.0], size=outliers) * outlier_size
    return x.astype(dtype)


CASES = {
    # name: (shape, dtype, encode keyword arguments, seed, data keyword arguments)
    "five_chunks_and_a_tail_2bel": ((5 * CHUNK + 7,), np.float32, dict(step=1.0), 1, {}),
    "six_chunks_4bel": ((6 * CHUNK,), np.float32, dict(step=0.1), 2, {}),
    "just_below_two_chunks": ((2 * CHUNK - 1,), np.float32, dict(step=0.1), 3, {}),
    "just_above_three_chunks": ((3 * CHUNK + 1,), np.float32, dict(step=0.3), 4, {}),
    "last_chunk_one_state": ((4 * CHUNK + 8191,), np.float32, dict(step=0.3), 5, {}),
    "nine_chunks_8bel": ((9 * CHUNK,), np.float32, dict(step=0.004), 6, {}),
    # narrow entries with values through the binary64 buffer (a group table; float64)
    "rows_576_10bel": ((96, 576), np.float32, dict(step=0.004, groups="rows"), 24, {}),
    "float64_10bel": ((5 * CHUNK + 5,), np.float64, dict(step=0.004), 25, dict(outliers=7)),
    "outliers_1e4": ((5 * CHUNK,), np.float32, dict(step=0.05), 7, dict(outliers=300)),
    "escapes_2e33": (
        (4 * CHUNK,),
        np.float32,
        dict(step=1e-3),
        8,
        dict(outliers=50, outlier_size=3e7),
    ),
    "rows_576": ((96, 576), np.float32, dict(step=0.2, groups="rows"), 9, {}),
    "channels_4d": ((2, 8, 40, 64), np.float32, dict(step=0.1, groups="channels"), 10, {}),
    "float16": ((5 * CHUNK,), np.float16, dict(step=0.1), 11, {}),
    "bfloat16_rows": ((40, 1024), "bfloat16", dict(step=0.1, groups="rows"), 12, {}),
    "float64": ((4 * CHUNK + 3,), np.float64, dict(step=0.05), 13, dict(outliers=20)),
    "classes16_rank": ((96, 576), np.float32, dict(step=0.1, classes=16), 14, {}),
    "classes8_ranges": (
        (96, 576),
        np.float32,
        dict(step=0.1, classes=8, class_map="ranges"),
        15,
        {},
    ),
    # the second pass: a few codes with extra bits (about the 4 b/el share), segments of 1024
    # elements whose last vector steps hold them, the stream's end within a window's reach
    "sparse_extras_4bel": ((7 * CHUNK + 3,), np.float32, dict(step=0.2), 17, dict(outliers=9)),
    "rows_577_extras": ((100, 577), np.float32, dict(step=0.12, groups="rows"), 18, {}),
    "classes8_rank_4bel": ((96, 576), np.float32, dict(step=0.2, classes=8), 19, {}),
    # mode 2 with most codes ≥ 8 (extra bits inline, the lut-and-symbol tables) and escapes
    "classes8_8bel": ((96, 576), np.float32, dict(step=0.01, classes=8), 21, {}),
    "classes4_escapes": (
        (64, 576),
        np.float32,
        dict(step=1e-3, classes=4),
        20,
        dict(outliers=50, outlier_size=3e7),
    ),
    # mode 1 with a low-bit plane (docs/format.md §13.6: the paired decoder always takes the second
    # pass for h's extra bits; the plane read in its steps): 5 bits at 8 b/el, 14 bits (binary64
    # products), a float64 buffer with groups, escapes in h
    "low5_8bel": ((9 * CHUNK + 17,), np.float32, dict(step=0.004, low_bits=5), 26, {}),
    "low14_wide": ((4 * CHUNK,), np.float32, dict(step=2e-6, low_bits=14), 27, {}),
    "low3_rows_576": ((96, 576), np.float32, dict(step=0.01, groups="rows", low_bits=3), 28, {}),
    "low_auto_escapes": (
        (4 * CHUNK,),
        np.float32,
        dict(step=1e-3, low_bits="auto"),
        29,
        dict(outliers=50, outlier_size=3e7),
    ),
    "classes3_bounds_rows": (
        (96, 576),
        np.float32,
        dict(step=0.1, classes=3, class_map="bounds", class_bounds=[5, 300], groups="rows"),
        16,
        dict(outliers=40),
    ),
}


def _stream(name: str) -> tuple[np.ndarray, bytes]:
    shape, dtype, kwargs, seed, data = CASES[name]
    if dtype == "bfloat16":
        import ml_dtypes

        x = _data(shape, seed, **data).astype(ml_dtypes.bfloat16)
    else:
        x = _data(shape, seed, dtype=dtype, **data)
    return x, slicer.encode(x, mode="dense", chunk_size=CHUNK, threads=1, **kwargs)


@pytest.mark.parametrize("name", sorted(CASES))
def test_simd_decode_equals_scalar(name, monkeypatch):
    x, stream = _stream(name)
    y = _same_decode(stream, monkeypatch)
    assert y is not None and y.shape == x.shape


def test_deferred_cases_have_extra_bits_and_escapes_pass_through(monkeypatch):
    """The second-pass cases really carry extra bits on a minority of the elements (what makes
    the stream choose it); and an escaped symbol (magnitude ≥ 2^33) decodes through the second
    pass as through the scalar decoder."""
    for name in ("sparse_extras_4bel", "rows_577_extras", "classes8_rank_4bel"):
        x, stream = _stream(name)
        extra_bits = 8 * slicer.inspect(stream).to_dict()["account"]["extra_bits"]
        assert 0.01 * x.size < extra_bits < 0.5 * x.size, name
    for name in ("escapes_2e33", "classes4_escapes"):
        _, stream = _stream(name)
        assert slicer.inspect(stream).to_dict()["symbols"] > 255, name
        y = _same_decode(stream, monkeypatch)
        assert y is not None and np.abs(y).max() > 2.0**33 * 1e-3, name


def _model(x: np.ndarray, step: float) -> tuple[list[int], float]:
    """Mode 1's frequencies (reference) for x at this step, and the share of the slots whose
    symbols are not direct (≥ 15: extra bits or an escape)."""
    p = rd.plan(x, rd.default_params(step=step, chunk_log2=13))
    _, freq, _ = rd.frequencies(p.symbols[p.coded])
    return freq, sum(freq[15:]) / 2.0**14


@pytest.mark.parametrize("name", ["nine_chunks_8bel", "escapes_2e33"])
def test_narrow_cases_take_the_narrow_entries(name, monkeypatch):
    """The high-rate cases are what selects the narrow entries: most slots belong to symbols
    with extra bits (so the stream reads them inline) and no frequency exceeds 2^11; the escape
    case's symbols of 255 and more then come from the entries, not from the lut."""
    x, stream = _stream(name)
    freq, other = _model(x, CASES[name][2]["step"])
    assert max(freq) <= 2**11 and other > 0.4, (max(freq), other)
    assert stream == native(x, rd.default_params(step=CASES[name][2]["step"], chunk_log2=13))
    y = _same_decode(stream, monkeypatch)
    assert y is not None and y.shape == x.shape


def test_escapes_are_met():
    """The escape case really has symbols of 255 and more (magnitudes of 2^33 and more)."""
    _, stream = _stream("escapes_2e33")
    assert slicer.inspect(stream).to_dict()["symbols"] > 255


@pytest.mark.parametrize("table_kind", ["zero_and_raw", "all_raw_but_two"])
def test_group_tables_with_zero_and_raw_groups(table_kind, monkeypatch):
    rng = np.random.default_rng(21)
    shape = (64, 700)  # rows cross chunk boundaries
    x = (rng.standard_normal(shape) * 3).astype(np.float32)
    if table_kind == "zero_and_raw":
        table = [int(b) for b in rng.choice([0, 3, 0xF8, 0x80, 0x81], size=64)]
    else:
        table = [0x81] * 64
        table[10] = table[50] = 0
    params = rd.default_params(step=0.1, layout=1, group_table=table, chunk_log2=13)
    stream = native(x, params)
    y = _same_decode(stream, monkeypatch)
    assert same_values(y, rd.reconstruct(rd.plan(x, params)))


def test_threads_and_paths_agree(monkeypatch):
    _, stream = _stream("outliers_1e4")
    monkeypatch.setenv("SLICER_DENSE_SIMD", "1")
    a = slicer.decode(stream, threads=2)
    monkeypatch.setenv("SLICER_DENSE_SIMD", "0")
    b = slicer.decode(stream, threads=1)
    assert same_values(a, b)


@pytest.mark.parametrize(
    "name",
    [
        "six_chunks_4bel",
        "nine_chunks_8bel",
        "rows_576_10bel",
        "classes16_rank",
        "sparse_extras_4bel",
        "classes8_8bel",
        "low5_8bel",
    ],
)
def test_damaged_streams_same_verdict_and_name(name, monkeypatch):
    _, stream = _stream(name)
    body = stream[:-4]
    rng = np.random.default_rng(len(name))
    rejected = 0
    for it in range(60):
        b = bytearray(body)
        kind = it % 3
        for _ in range(int(rng.integers(1, 3))):
            # mostly in the payload (the chunk data starts well past the first quarter)
            pos = int(rng.integers(len(b) // 4, len(b)))
            if kind == 0:
                b[pos] ^= 1 << int(rng.integers(8))
            elif kind == 1:
                b[pos] = int(rng.integers(256))
            else:
                del b[pos]
        if _same_decode(with_crc(bytes(b)), monkeypatch) is None:
            rejected += 1
    assert rejected > 20


def _encode(x, simd: bool, monkeypatch, **kwargs) -> bytes:
    monkeypatch.setenv("SLICER_DENSE_SIMD", "1" if simd else "0")
    return slicer.encode(x, mode="dense", chunk_size=CHUNK, threads=1, **kwargs)


@pytest.mark.parametrize("name", sorted(CASES))
def test_simd_encode_same_bytes(name, monkeypatch):
    x, _ = _stream(name)
    kwargs = CASES[name][2]
    assert _encode(x, True, monkeypatch, **kwargs) == _encode(x, False, monkeypatch, **kwargs)


def test_simd_encode_with_raw_and_zero_groups(monkeypatch):
    rng = np.random.default_rng(22)
    x = (rng.standard_normal((64, 700)) * 3).astype(np.float32)
    table = [int(b) for b in rng.choice([0, 3, 0xF8, 0x80, 0x81], size=64)]
    params = rd.default_params(step=0.05, layout=1, group_table=table, chunk_log2=13)
    monkeypatch.setenv("SLICER_DENSE_SIMD", "0")
    scalar = native(x, params)
    monkeypatch.setenv("SLICER_DENSE_SIMD", "1")
    assert native(x, params) == scalar
    assert scalar == rd.encode(x, params)


def test_threads_split_sets_the_same(monkeypatch):
    """2^18 + 5 elements: the pool splits the 33 chunks into parts (sets of four chunks, pairs
    and single chunks within each part); bytes and values as one thread and the scalar path."""
    x = _data((2**18 + 5,), 23, outliers=100)
    want = _encode(x, False, monkeypatch, step=0.3)
    monkeypatch.setenv("SLICER_DENSE_SIMD", "1")
    for threads in (1, 2, 3):
        assert slicer.encode(x, mode="dense", step=0.3, chunk_size=CHUNK, threads=threads) == want
        got = slicer.decode(want, threads=threads)
        monkeypatch.setenv("SLICER_DENSE_SIMD", "0")
        assert same_values(got, slicer.decode(want, threads=1))
        monkeypatch.setenv("SLICER_DENSE_SIMD", "1")


def _extra_bit_blocks(seed: int, n: int, step: float) -> np.ndarray:
    """float32 input whose 256-element blocks (the encoder's quantizer blocks) hold 0, 1, 63, 64,
    65, 128 or 256 codes ≥ 8 (the ones with extra bits), in random places: the encoder writes a
    block's extra bits one element at a time when at most a quarter of its codes carry them and
    eight lanes at a time otherwise; both must give the scalar path's and the reference's bytes."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(0.0, 7.4, n) * step  # codes 0 … 7 (ρ = 1/2)
    counts = (0, 1, 63, 64, 65, 128, 256)
    for b, start in enumerate(range(0, n, 256)):
        size = min(256, n - start)
        k = min(counts[b % len(counts)], size)
        at = start + rng.choice(size, size=k, replace=False)
        x[at] = rng.uniform(8.0, 3000.0, k) * step  # codes 8 … 3000: 1 to 9 extra bits
    x *= rng.choice([-1.0, 1.0], n)
    return x.astype(np.float32)


@pytest.mark.parametrize("offsets", [None, (-20, 7)])
def test_encoder_extra_bit_blocks_match_reference(offsets, monkeypatch):
    x = _extra_bit_blocks(31, 3 * CHUNK + 101, 0.25)  # a tail block of 101 (the general path)
    params = rd.default_params(step=0.25, offsets=offsets, chunk_log2=13)
    want = rd.encode(x, params)
    for simd in ("1", "0"):
        monkeypatch.setenv("SLICER_DENSE_SIMD", simd)
        assert native(x, params) == want, simd
    monkeypatch.setenv("SLICER_DENSE_SIMD", "1")
    assert same_values(_same_decode(want, monkeypatch), rd.reconstruct(rd.plan(x, params)))


@pytest.mark.parametrize(
    "shape, extra",
    [
        # positions along the last axis (runs of the class map), rows crossing chunks
        ((33, 577), dict(classes=2)),
        # positions along axis 1 with an inner extent (one position per element, cursor walk)
        ((4, 40, 300), dict(classes=16, class_axis=1)),
        ((20, 1000), dict(classes=16, class_map="ranges")),
        (
            (8, 12, 9, 31),
            dict(classes=5, class_axis=1, class_map="bounds", class_bounds=[2, 5, 7, 10]),
        ),
        ((48, 576), dict(classes=8, layout=1)),  # one step per row
    ],
)
def test_encoder_class_symbols_match_reference(shape, extra, monkeypatch):
    """Mode 2: every element's class folded into its symbol index (class · 512 + symbol, the
    encoder's per-class tables and eight histogram tables), on the SIMD and the scalar path,
    against the NumPy reference's bytes (at step 0.05 most codes carry extra bits)."""
    x = _data(shape, 32 + len(shape), outliers=60, outlier_size=40.0)
    params = rd.default_params(step=0.05, chunk_log2=13, **extra)
    want = rd.encode(x, params)
    for simd in ("1", "0"):
        monkeypatch.setenv("SLICER_DENSE_SIMD", simd)
        assert native(x, params) == want, simd
