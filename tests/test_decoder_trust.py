"""The decoder accepts exactly the streams docs/format.md calls valid, whatever the thread
count, and agrees with the NumPy reference (tests/reference.py) on mutated streams."""

from __future__ import annotations

import numpy as np
import pytest

import reference as ref
import slicer
import stream_tools as st

# Issue 11: a CRC-valid stream whose per-label counts differ from c_m (§6.1) in group 0 of 2;
# the check of a group that is not the last of a worker's slice used to be overwritten.
ISSUE_STREAM = bytes.fromhex(
    "534c435201000100020208000000000802010602020200000000404000000040000000400202000000002000"
    "f8db668e"
)

THREADS = [1, 2, 3, 4]


@pytest.mark.parametrize("threads", THREADS)
def test_issue_stream_is_rejected(threads: int) -> None:
    with pytest.raises(ref.ReferenceFormatError, match="block counts"):
        ref.decode(ISSUE_STREAM)
    with pytest.raises(slicer.FormatError, match="corrupt"):
        slicer.decode(ISSUE_STREAM, threads=threads)
    with pytest.raises(slicer.FormatError):
        slicer.inspect(ISSUE_STREAM)


@pytest.fixture(scope="module")
def rows_stream() -> bytes:
    """8 groups of 2**16 elements (4 chunks each): enough for 4 decoder threads."""
    x = np.random.default_rng(11).standard_normal((8, 1 << 16)).astype(np.float32)
    # Equal widths for both blocks of a sign, so relabelling a value keeps every bit in place.
    return slicer.encode(x, sparsity=0.99, blocks=2, bits=[8, 8], groups="rows", seed=1)


def relabel_first_value(stream: bytes, group: int) -> bytes:
    """Move the first kept value of `group` from its block to the sign's other block."""
    lay = st.layout(stream)
    chunk = next(c for c in lay.chunks if c.group == group and c.count > 0)
    at, label = st.label_bit_offsets(stream, lay, chunk)[0]
    assert lay.num_labels == 4  # labels are plain 2-bit fields (§6.1, b = 2, u = 4)
    other = label ^ 1
    assert lay.widths[group][label] == lay.widths[group][other]
    return st.fix_crc(st.set_bits(stream, chunk.offset, at, other, 2))


def test_rows_stream_matches_reference(rows_stream: bytes) -> None:
    expected, _ = ref.decode(rows_stream)
    for threads in THREADS:
        np.testing.assert_array_equal(slicer.decode(rows_stream, threads=threads), expected)


@pytest.mark.parametrize("group", [0, 3, 4, 7])
def test_bad_group_rejected_at_every_thread_count(rows_stream: bytes, group: int) -> None:
    bad = relabel_first_value(rows_stream, group)
    with pytest.raises(ref.ReferenceFormatError, match="block counts do not match labels"):
        ref.decode(bad)
    for threads in THREADS:
        with pytest.raises(slicer.FormatError, match="corrupt"):
            slicer.decode(bad, threads=threads)
    with pytest.raises(slicer.FormatError):
        slicer.inspect(bad)


# ------------------------------------------------ differential against the reference


def test_differential_fixed_seed() -> None:
    """A small, fixed-seed pass of fuzz/differential.py: C++ and reference verdicts agree."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "fuzz"))
    import differential

    stats = differential.run(2500, seed=20261201, seconds=None, progress=False)
    assert stats.disagreements == []
    # Both verdicts are exercised, and rejections come from many different checks.
    assert 0 < stats.accepted < stats.streams
    assert len(stats.reasons) >= 15
    assert stats.reasons["block counts do not match labels"] > 0


# ------------------------------------------------ bounded memory, hostile headers


def _stream(shape: tuple[int, ...], tables: bytes) -> bytes:
    header = ref.header_bytes(shape, 1, ref.default_params())
    return st.fix_crc(header + tables + b"\0\0\0\0")


def test_claimed_size_is_not_allocated_before_tables_are_validated() -> None:
    # 2**38 float32 elements (1 TiB) claimed by a stream with no chunk table at all.
    bad = _stream((2**38,), b"\x00\x00")
    assert len(bad) < 50
    with pytest.raises(ref.ReferenceFormatError):
        ref.decode(bad, max_elements=2**38)
    with pytest.raises(slicer.FormatError, match="truncated"):
        slicer.decode(bad, max_elements=2**38)
    with pytest.raises(slicer.FormatError):
        slicer.inspect(bad, max_elements=2**38)


@pytest.mark.parametrize(
    "shape", [(0, 2**60), (2**61, 0), (3, 0, 2**59), (0, 2**62, 2), (0, 2**63 - 1)]
)
def test_zero_size_shapes_with_huge_dims_are_refused(shape: tuple[int, ...]) -> None:
    stream = _stream(shape, b"\x00\x00")
    for limit in (2**31, 2**64 - 1):
        with pytest.raises(ref.ReferenceFormatError, match="max_elements"):
            ref.decode(stream, max_elements=limit)
        with pytest.raises(slicer.FormatError, match="max_elements") as info:
            slicer.decode(stream, max_elements=limit)
        assert "shape" in str(info.value)  # the field that failed is named
        with pytest.raises(slicer.FormatError, match="max_elements"):
            slicer.inspect(stream, max_elements=limit)


@pytest.mark.parametrize("shape", [(0, 2**40), (2**59, 0, 1), (0, 3)])
def test_representable_zero_size_shapes_decode(shape: tuple[int, ...]) -> None:
    stream = _stream(shape, b"\x00\x00")
    for limit in (0, 2**31):
        y = slicer.decode(stream, max_elements=limit)
        assert y.shape == shape and y.dtype == np.float32
        assert ref.decode(stream, max_elements=limit)[0].shape == shape


def test_out_is_untouched_by_a_late_format_error(rows_stream: bytes) -> None:
    bad = relabel_first_value(rows_stream, 7)  # fails after every chunk was decoded
    out = np.full((8, 1 << 16), 7.0, dtype=np.float32)
    for threads in THREADS:
        with pytest.raises(slicer.FormatError):
            slicer.decode(bad, out=out, threads=threads)
        assert np.all(out == 7.0)
    assert slicer.decode(rows_stream, out=out) is out
    np.testing.assert_array_equal(out, ref.decode(rows_stream)[0])


# ------------------------------------------------ readable argument errors


@pytest.fixture(scope="module")
def small() -> bytes:
    return slicer.encode(np.arange(1, 40, dtype=np.float32), sparsity=0.5)


@pytest.mark.parametrize(
    ("call", "error", "name"),
    [
        (lambda s: slicer.decode(s, max_elements=2**64), ValueError, "max_elements"),
        (lambda s: slicer.decode(s, max_elements=-1), ValueError, "max_elements"),
        (lambda s: slicer.decode(s, max_elements=1.5), TypeError, "max_elements"),
        (lambda s: slicer.decode(s, max_elements=True), TypeError, "max_elements"),
        (lambda s: slicer.decode(s, threads=-1), ValueError, "threads"),
        (lambda s: slicer.decode(s, threads=2**32), ValueError, "threads"),
        (lambda s: slicer.decode(s, threads="2"), TypeError, "threads"),
        (lambda s: slicer.inspect(s, max_elements=-1), ValueError, "max_elements"),
        (lambda s: slicer.inspect(s, max_elements=2**64), ValueError, "max_elements"),
        (lambda s: slicer.inspect(s, max_elements=None), TypeError, "max_elements"),
        (lambda s: slicer.inspect(s, blocks=1), TypeError, "blocks"),
        (lambda s: slicer.size_bound((2**63,), "float32"), ValueError, "shape"),
        (lambda s: slicer.size_bound((3, 2**64), "float16"), ValueError, "shape"),
    ],
)
def test_bad_decode_arguments_name_the_parameter(small: bytes, call, error, name: str) -> None:
    with pytest.raises(error, match=name):
        call(small)


def test_max_elements_limits_are_exact(small: bytes) -> None:
    assert slicer.decode(small, max_elements=39).size == 39
    with pytest.raises(slicer.FormatError, match="max_elements"):
        slicer.decode(small, max_elements=38)
    assert slicer.inspect(small, max_elements=2**64 - 1).num_elements == 39


# ------------------------------------------------ inspect: summary by default


def test_inspect_lists_blocks_only_on_request(rows_stream: bytes) -> None:
    import json

    summary = slicer.inspect(rows_stream)
    detail = slicer.inspect(rows_stream, blocks=True)
    assert summary.block_table is None
    assert summary.num_blocks == detail.num_blocks == len(detail.block_table) == 8 * 4
    assert summary.account == detail.account and summary.kept == detail.kept
    assert sum(b.count for b in detail.block_table) == detail.kept
    json.dumps(summary.to_dict())
    as_dict = detail.to_dict()
    json.dumps(as_dict)
    assert as_dict["block_table"][0]["count"] == detail.block_table[0].count
    assert "blocks=True" in str(summary) and "more blocks" in str(detail)


# ------------------------------------------------ the failing field is named


def test_format_errors_name_the_field(small: bytes) -> None:
    with pytest.raises(slicer.FormatError, match=r"\[block counts"):
        slicer.decode(ISSUE_STREAM, threads=2)
    lay = st.layout(small)
    bad = bytearray(small)
    bad[lay.header_end - 2] = 5  # chunk_log2 below 6 (the byte before the group count)
    with pytest.raises(slicer.FormatError, match=r"\[chunk_log2\]") as info:
        slicer.decode(st.fix_crc(bytes(bad)))
    assert info.value.status == 14
    with pytest.raises(slicer.FormatError, match=r"\[CRC-32\]"):
        slicer.inspect(bytes(bad))
    with pytest.raises(slicer.FormatError, match=r"\[chunk length"):
        slicer.decode(st.fix_crc(small[:-5] + small[-4:]))


# ------------------------------------------------ two chunks side by side (decoder.cpp)


@pytest.fixture(scope="module")
def two_chunks() -> bytes:
    """Two chunks of 2**16 elements: one thread decodes them side by side (interleaved fast
    steps), two threads one each, one after the other — the reference order of verdicts."""
    x = np.random.default_rng(21).standard_normal(1 << 17).astype(np.float32)
    return slicer.encode(x, sparsity=0.9, blocks=2, bits=[6, 8], chunk_size=1 << 16, seed=3)


def _verdict(stream: bytes, threads: int):  # noqa: ANN202
    try:
        return "ok", slicer.decode(stream, threads=threads).tobytes()
    except slicer.FormatError as e:
        return "error", (e.status, str(e))


def test_side_by_side_chunks_keep_the_order_of_verdicts(two_chunks: bytes) -> None:
    """Damage in the first chunk, the second or both (early in one, late in the other): the
    interleaved decode gives the sequential decode's status, rejection and values."""
    lay = st.layout(two_chunks)
    first, second = lay.chunks
    assert first.count > 1000 and second.count > 1000
    assert _verdict(two_chunks, 1) == _verdict(two_chunks, 2)
    assert _verdict(two_chunks, 1)[0] == "ok"
    assert ref.decode(two_chunks) is not None
    rng = np.random.default_rng(5)
    outcomes = set()
    for it in range(300):
        bad = bytearray(two_chunks)
        targets = [first, second, (first, second)][it % 3]
        for chunk in targets if isinstance(targets, tuple) else (targets,):
            # early bytes of one chunk, late bytes of the other, or anywhere
            span = chunk.length
            lo, hi = {0: (0, span // 8), 1: (span - span // 8, span), 2: (0, span)}[
                int(rng.integers(3))
            ]
            pos = chunk.offset + int(rng.integers(lo, max(lo + 1, hi)))
            bad[pos] ^= 1 << int(rng.integers(8))
        stream = st.fix_crc(bytes(bad))
        one, two = _verdict(stream, 1), _verdict(stream, 2)
        assert one == two, (
            it,
            one[1] if one[0] == "error" else "ok",
            two[1] if two[0] == "error" else "ok",
        )
        outcomes.add(one[0] if one[0] == "ok" else one[1][1].split("[")[-1])
    assert "ok" in outcomes and len(outcomes) >= 4  # accepted and several kinds of rejection
