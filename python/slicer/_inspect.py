"""``slicer.inspect``: what a stream holds and where its bytes go."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

from . import _core
from ._errors import raise_decode_status
from ._intake import as_stream_bytes, dtype_name

__all__ = ["BlockInfo", "ByteAccount", "StreamInfo", "inspect"]

_MODES = {0: "sparse-topk"}
_FLAG_MULTILEVEL = 1


@dataclass(frozen=True)
class BlockInfo:
    """One non-empty block of one group (docs/format.md §5)."""

    group: int  #: group index (0 for groups="tensor")
    label: int  #: 0 .. M+-1 positive blocks, then negative
    sign: int  #: +1 or -1
    index: int  #: block index within its sign, 0 = largest magnitudes
    count: int  #: kept elements in the block
    width: int  #: bits per value (0: every value decodes to `hi`)
    lo: float  #: bottom of the quantization range (magnitude)
    hi: float  #: top of the quantization range (magnitude)


@dataclass(frozen=True)
class ByteAccount:
    """Where the bytes of a stream go. Bit-packed parts are counted exactly in bits."""

    header: int  #: fixed header incl. shape and parameters (bytes)
    groups: int  #: k and n_pos of every group (bytes)
    block_meta: int  #: widths and range chains of all blocks (bytes)
    chunk_table: int  #: per-chunk kept counts and lengths (bytes)
    positions_bits: int  #: Rice parameters and gap codes
    labels_bits: int  #: block labels
    values_bits: int  #: quantization codes
    padding_bits: int  #: zero bits that end every chunk on a byte
    checksum: int  #: CRC-32 (bytes)
    total: int  #: stream length (bytes)
    bits_per_element: float | None  #: 8 * total / N (None for an empty array)


@dataclass(frozen=True)
class StreamInfo:
    """Header, parameters, per-block table and byte account of a SLICER stream."""

    format_version: int
    shape: tuple[int, ...]
    dtype: str
    mode: str
    sparsity: float
    asym: float
    delta: float
    seed: int
    bits: int  #: q_bit (multi-level: the largest level)
    blocks: tuple[int, int]  #: (M+, M-)
    multilevel: bool  #: fixed multi-level widths instead of ABQ
    chunk_size: int
    groups: str  #: "tensor" (one group) or "rows"
    group_count: int
    num_elements: int
    kept: int
    chunks: int
    num_blocks: int  #: non-empty blocks over all groups
    account: ByteAccount = field(repr=False)
    #: one BlockInfo per non-empty block with ``inspect(..., blocks=True)``, else None
    block_table: list[BlockInfo] | None = field(default=None, repr=False)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-serializable dict (lists for tuples; block_table None unless requested)."""
        result = {f.name: getattr(self, f.name) for f in fields(self)}
        result["shape"] = list(self.shape)
        result["blocks"] = list(self.blocks)
        result["account"] = asdict(self.account)
        if self.block_table is not None:
            result["block_table"] = [dict(vars(b)) for b in self.block_table]
        return result

    def __str__(self) -> str:
        return _render(self)


def _render(info: StreamInfo, max_rows: int = 24) -> str:
    shape = "x".join(str(d) for d in info.shape) or "scalar"
    kept_pct = 100.0 * info.kept / info.num_elements if info.num_elements else 0.0
    widths = "fixed multi-level" if info.multilevel else f"ABQ, delta {info.delta:g}"
    lines = [
        f"SLICER stream, format {info.format_version} ({info.mode})",
        f"  shape       {shape}  {info.dtype}  ({info.num_elements} elements)",
        f"  parameters  sparsity {info.sparsity:.9g}  asym {info.asym:.9g}  seed {info.seed}",
        f"              bits {info.bits} ({widths})  blocks +{info.blocks[0]}/-{info.blocks[1]}",
        f"  layout      groups {info.groups} ({info.group_count})  chunk {info.chunk_size} "
        f"elements ({info.chunks} chunks)",
        f"  kept        {info.kept} ({kept_pct:.3f} %)",
        "",
        "  group  sign  block    count  width            lo            hi",
    ]
    for block in (info.block_table or [])[:max_rows]:
        sign = "+" if block.sign > 0 else "-"
        lines.append(
            f"  {block.group:5d}  {sign:>4}  {block.index:5d}  {block.count:7d}  {block.width:5d}"
            f"  {block.lo:12.6g}  {block.hi:12.6g}"
        )
    if info.block_table is None:
        lines[-1] = f"  {info.num_blocks} blocks (inspect(stream, blocks=True) lists them)"
    elif len(info.block_table) > max_rows:
        lines.append(f"  ... {len(info.block_table) - max_rows} more blocks")
    acct = info.account
    total_bits = 8 * acct.total if acct.total else 1
    rows = [
        ("header", 8 * acct.header),
        ("groups (k, n_pos)", 8 * acct.groups),
        ("block metadata", 8 * acct.block_meta),
        ("chunk table", 8 * acct.chunk_table),
        ("positions", acct.positions_bits),
        ("labels", acct.labels_bits),
        ("values", acct.values_bits),
        ("padding", acct.padding_bits),
        ("checksum", 8 * acct.checksum),
    ]
    lines += ["", "  part                       bytes       %"]
    for name, bits in rows:
        lines.append(f"  {name:<20} {bits / 8:>11.3f}  {100.0 * bits / total_bits:6.2f}")
    bpe = "n/a" if acct.bits_per_element is None else f"{acct.bits_per_element:.4f}"
    lines.append(f"  {'total':<20} {acct.total:>11d}  100.00   ({bpe} bits per element)")
    return "\n".join(lines)


def inspect(buf: Any, *, max_elements: int = 2**31, blocks: bool = False) -> StreamInfo:
    """Validate a stream fully and describe it.

    Parameters
    ----------
    buf : bytes, bytearray, memoryview or numpy.ndarray of uint8
        The stream.
    max_elements : int, default 2**31
        Streams whose header claims more elements are refused.
    blocks : bool, default False
        Also list every block (``StreamInfo.block_table``). Time and memory then grow with the
        number of blocks (a groups="rows" stream has up to 2 x M blocks per row); without it
        they stay proportional to the stream and the result holds summaries only.

    Returns
    -------
    StreamInfo
        Format version, shape, dtype, mode, parameters, kept count, block count, the
        :class:`ByteAccount` and, with ``blocks=True``, one :class:`BlockInfo` per non-empty
        block. ``str(info)`` is a readable table, ``info.to_dict()`` a JSON-ready dict.

    Raises
    ------
    slicer.FormatError
        The stream is malformed.
    """
    from ._api import check_max_elements

    limit = check_max_elements(max_elements)
    if not isinstance(blocks, bool):
        raise TypeError(f"blocks must be a bool, got {type(blocks).__name__}")
    data = as_stream_bytes(buf)
    if len(data) >= 9 and bytes(data[:5]) == b"SLCR\x02":  # format 2 (docs/format.md §10)
        from ._inspect_dense import inspect_dense

        return inspect_dense(data, limit)
    status, header, account, num_blocks, columns = _core.inspect(data, limit, blocks)
    if status:
        raise_decode_status(status)
    table = None
    if columns is not None:
        names = ("group", "label", "sign", "index", "count", "width", "lo", "hi")
        lists = [columns[name].tolist() for name in names]
        table = [BlockInfo(*row) for row in zip(*lists, strict=True)]
    n = header["num_elements"]
    acct = ByteAccount(
        header=account["header_bytes"],
        groups=account["group_bytes"],
        block_meta=account["block_meta_bytes"],
        chunk_table=account["chunk_table_bytes"],
        positions_bits=account["position_bits"],
        labels_bits=account["label_bits"],
        values_bits=account["value_bits"],
        padding_bits=account["padding_bits"],
        checksum=account["checksum_bytes"],
        total=account["total_bytes"],
        bits_per_element=8.0 * account["total_bytes"] / n if n else None,
    )
    return StreamInfo(
        format_version=header["format_version"],
        shape=tuple(header["shape"]),
        dtype=dtype_name(header["dtype"]),
        mode=_MODES.get(header["mode"], f"mode {header['mode']}"),
        sparsity=header["sparsity_ppb"] / 1e9,
        asym=header["asym_ppb"] / 1e9,
        delta=header["delta_micro"] / 1e6,
        seed=header["seed"],
        bits=header["bits"],
        blocks=(header["blocks_pos"], header["blocks_neg"]),
        multilevel=bool(header["flags"] & _FLAG_MULTILEVEL),
        chunk_size=1 << header["chunk_log2"],
        groups="tensor" if header["group_count"] <= 1 else "rows",
        group_count=header["group_count"],
        num_elements=n,
        kept=account["kept"],
        chunks=account["chunks"],
        num_blocks=num_blocks,
        account=acct,
        block_table=table,
    )
