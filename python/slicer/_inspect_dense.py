"""``slicer.inspect`` of format-2 (dense modes 1, 2 and 3) streams: header, parameters and byte
account."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from . import _core

__all__ = ["DenseAccount", "DenseStreamInfo", "inspect_dense"]

_DTYPES = {1: "float32", 2: "float16", 3: "bfloat16", 4: "float64"}
_LAYOUTS = {0: "tensor", 1: "rows", 2: "channels"}


@dataclass(frozen=True)
class DenseAccount:
    """Where the bytes of a format-2 dense stream go (docs/format.md §16); they add up."""

    header: int  #: common header + mode parameters
    group_table: int  #: per-group kinds / step exponents (0 without a table)
    class_map: int  #: mode 2: the class of each position (§18.1); 0 in mode 1 and for ranges
    freq_table: int  #: the rANS frequency table (mode 2: all class tables, class_tables' sum)
    chunk_table: int  #: per-chunk rANS and extra-bit lengths
    raw: int  #: values of raw groups
    codes: int  #: rANS bytes of all chunks (the entropy-coded symbols)
    extra_bits: int  #: verbatim low bits of large codes (outliers included)
    checksum: int  #: CRC-32
    total: int  #: stream length
    bits_per_element: float | None  #: 8 * total / N (None for an empty array)
    #: mode 2: bytes of each class's table (class 0 first); mode 3: of each class's two tables
    class_tables: tuple[int, ...] = ()


@dataclass(frozen=True)
class DenseStreamInfo:
    """Header, parameters and byte account of a format-2 dense stream."""

    format_version: int
    shape: tuple[int, ...]
    dtype: str
    mode: str
    groups: str
    group_count: int
    step: float
    rho: float
    offsets: tuple[int, int]
    chunk_size: int
    chunks: int
    coded: int  #: elements entropy-coded (outside zero / raw groups)
    symbols: int  #: alphabet size of the frequency table
    zero_groups: int
    raw_groups: int
    account: DenseAccount
    classes: int = 1  #: frequency tables: 1 (mode 1) or 2..16 (mode 2, one per class)
    class_axis: str | None = None  #: mode 2: "last" or "1" (positions along that axis)
    #: mode 2: "rank" (§18.1 map bytes), "ranges" (§18.3 index ranges, no bytes) or "bounds"
    #: (§18.4 range boundaries); None in mode 1
    class_map: str | None = None
    #: mode 2 with class_map "bounds": the K − 1 boundaries (first position of classes 1 … K−1)
    class_bounds: list[int] | None = None
    #: mode 3 ("dense-trellis", docs/format.md §21): quantizer Q1's offsets (`offsets` are
    #: Q0's); None in modes 1-2
    trellis_offsets: tuple[int, int] | None = None
    #: the frequency table's kind (docs/format.md §13.5): 0 count classes (§13.1), 1 … 3
    #: coarser count classes, 4 geometric (3 bytes); 0 in modes 2-3
    table_kind: int = 0
    #: the low-bit plane's width k (docs/format.md §13.6; 0: none, always in modes 2-3); its
    #: coded·k bits are counted in the account's extra_bits
    low_bits: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def __str__(self) -> str:
        a = self.account
        lines = [
            f"SLICER stream, format {self.format_version}, mode {self.mode}: shape "
            f"{self.shape} {self.dtype}, groups={self.groups} ({self.group_count}), step "
            f"{self.step:.6g}, "
            + ("" if self.trellis_offsets else f"rho {self.rho:g}, ")  # mode 3 has no dead zone
            + f"offsets {self.offsets}, {self.chunks} chunks"
            + (
                f", {self.classes} classes ({self.class_map} map"
                + (f" at {self.class_bounds}" if self.class_bounds else "")
                + f"), axis {self.class_axis}"
                if self.classes > 1
                else ""
            )
            + (f", Q1 offsets {self.trellis_offsets}" if self.trellis_offsets else "")
            + (f", table kind {self.table_kind}" if self.table_kind else "")
            + (f", low-bit plane {self.low_bits} bits" if self.low_bits else ""),
            f"{'field':<12} {'bytes':>10}",
        ]
        for name in ("header", "group_table", "class_map", "freq_table", "chunk_table", "raw",
                     "codes", "extra_bits", "checksum", "total"):  # fmt: skip
            lines.append(f"{name:<12} {getattr(a, name):>10}")
        if a.bits_per_element is not None:
            lines.append(f"bits per element: {a.bits_per_element:.4f}")
        return "\n".join(lines)


def inspect_dense(data: Any, limit: int) -> DenseStreamInfo:
    from ._api import raise_stream_status

    status, d = _core.dense_inspect(data, limit)
    if status:
        raise_stream_status(status, data)
    n = d["num_elements"]
    account = DenseAccount(
        header=d["header_bytes"],
        group_table=d["group_table_bytes"],
        class_map=d["class_map_bytes"],
        freq_table=d["freq_table_bytes"],
        chunk_table=d["chunk_table_bytes"],
        raw=d["raw_bytes"],
        codes=d["rans_bytes"],
        extra_bits=d["extra_bits_bytes"],
        checksum=d["checksum_bytes"],
        total=d["total_bytes"],
        bits_per_element=8 * d["total_bytes"] / n if n else None,
        class_tables=tuple(d["class_table_bytes"]),
    )
    return DenseStreamInfo(
        format_version=d["format_version"],
        shape=tuple(d["shape"]),
        dtype=_DTYPES[d["dtype"]],
        mode={1: "dense", 2: "dense-classes"}.get(d["mode"], "dense-trellis"),
        groups=_LAYOUTS[d["layout"]],
        group_count=d["group_count"],
        step=d["step"],
        rho=d["rho_256"] / 256,  # 0 in mode 3 (no dead zone)
        offsets=tuple(d["offsets"]),
        chunk_size=1 << d["chunk_log2"],
        chunks=d["chunks"],
        coded=d["coded"],
        symbols=d["symbols"],
        zero_groups=d["zero_groups"],
        raw_groups=d["raw_groups"],
        account=account,
        classes=d["classes"],
        class_axis=None if d["classes"] == 1 else ("last" if d["class_axis"] == 0 else "1"),
        class_map=None if d["classes"] == 1 else d["class_map"],
        class_bounds=list(d["class_bounds"]) if d.get("class_map") == "bounds" else None,
        trellis_offsets=tuple(d["trellis_offsets"]) if d["mode"] == 3 else None,
        table_kind=d["table_kind"],
        low_bits=d["low_bits"],
    )
