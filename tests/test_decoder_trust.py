"""The decoder accepts exactly the streams docs/format.md calls valid, whatever the thread
count, and agrees with the NumPy reference (tests/reference.py) on mutated streams."""

from __future__ import annotations

import numpy as np
import pytest
import reference as ref
import stream_tools as st

import slicer

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
