"""Validation of encoder parameters and their conversion to the stored integers.

docs/format.md §2: floats become integers exactly once, here, with Python's round()
(round-half-to-even of the binary64 product). The C library, the CUDA backend and the
bitstream only ever see the integers.
"""

from __future__ import annotations

import functools
import math
import operator
from collections.abc import Hashable, Sequence
from typing import Any

__all__ = ["DEFAULT_CHUNK_LOG2", "make_params"]

DEFAULT_CHUNK_LOG2 = 14
_MAX_BITS = 16
_MAX_BLOCKS = 64
_PPB = 1_000_000_000
_U32_MAX = 2**32 - 1
_U64_MAX = 2**64 - 1


def _real(name: str, value: Any) -> float:
    is_real = isinstance(value, (int, float)) or hasattr(value, "__float__")
    if isinstance(value, (bool, str, bytes)) or not is_real:
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    result = float(value)
    if not math.isfinite(result):
        raise ValueError(f"{name} must be finite, got {value!r}")
    return result


def _integer(name: str, value: Any) -> int:
    if isinstance(value, bool):
        raise TypeError(f"{name} must be an integer, got bool")
    try:
        return operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be an integer, got {type(value).__name__}") from None


def _fraction_ppb(name: str, value: Any) -> int:
    """A fraction in [0, 1) as parts per billion (docs/format.md §2)."""
    fraction = _real(name, value)
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"{name} must be in [0, 1), got {value!r}")
    ppb = round(fraction * _PPB)
    if ppb > _PPB - 1:
        raise ValueError(f"{name}={value!r} rounds to 1 at the stored precision of 1e-9")
    return ppb


def _width(name: str, value: Any) -> int:
    width = _integer(name, value)
    if not 1 <= width <= _MAX_BITS:
        raise ValueError(f"{name} must be in 1..{_MAX_BITS}, got {width}")
    return width


def _block_count(name: str, value: Any) -> int:
    count = _integer(name, value)
    if not 1 <= count <= _MAX_BLOCKS:
        raise ValueError(f"{name} must be in 1..{_MAX_BLOCKS}, got {count}")
    return count


def _levels(bits: Any) -> tuple[int, list[int]]:
    """(q_bit, levels): levels is empty for ABQ (a single int), else one width per block."""
    if isinstance(bits, (str, bytes)):
        raise TypeError("bits must be an int or a sequence of ints")
    if isinstance(bits, Sequence) or hasattr(bits, "tolist"):
        raw = bits.tolist() if hasattr(bits, "tolist") else list(bits)
        if not isinstance(raw, list):
            return _width("bits", raw), []
        if not 1 <= len(raw) <= _MAX_BLOCKS:
            raise ValueError(f"bits as a list must hold 1..{_MAX_BLOCKS} widths, got {len(raw)}")
        levels = [_width(f"bits[{i}]", b) for i, b in enumerate(raw)]
        return max(levels), levels
    return _width("bits", bits), []


def _blocks(blocks: Any, levels: list[int]) -> tuple[int, int]:
    if blocks is None:
        count = len(levels) if levels else 3
        return count, count
    if isinstance(blocks, (str, bytes)):
        raise TypeError("blocks must be an int or a pair (M+, M-)")
    if isinstance(blocks, Sequence):
        if len(blocks) != 2:
            raise ValueError(f"blocks as a sequence must be a pair (M+, M-), got {len(blocks)}")
        pos, neg = _block_count("blocks[0]", blocks[0]), _block_count("blocks[1]", blocks[1])
    else:
        pos = neg = _block_count("blocks", blocks)
    if levels and max(pos, neg) != len(levels):
        raise ValueError(
            f"blocks {(pos, neg)} do not match bits={levels}: multi-level mode needs "
            f"max(M+, M-) == len(bits) == {len(levels)}"
        )
    return pos, neg


def make_params(**kwargs: Any) -> dict[str, Any]:
    """Validate the public encoder parameters and return the integer parameter dict.

    The dict uses the field names of ``slicer_params`` (cpp/include/slicer/slicer.h) plus
    ``levels`` (the fixed multi-level widths, empty for ABQ). It is what the native backends
    (``slicer._core`` and ``slicer._gpu``) receive. Out-of-range values raise ``ValueError``
    naming the parameter; values of the wrong type raise ``TypeError``. Keyword arguments are
    those of :func:`_make_params`.
    """
    # Per-token callers encode many small tensors with the same settings: validation is
    # cached on the exact (type, value) of every argument, so bool never aliases int.
    key = tuple(sorted((name, type(value), value) for name, value in kwargs.items()))
    try:
        hash(key)
    except TypeError:  # a list of widths, a NumPy array, ...: validate without the cache
        return _make_params(**kwargs)
    cached = _make_params_cached(key)
    return {**cached, "levels": list(cached["levels"])}


@functools.lru_cache(maxsize=256)
def _make_params_cached(key: tuple[tuple[str, type, Hashable], ...]) -> dict[str, Any]:
    return _make_params(**{name: value for name, _, value in key})


def _make_params(
    *,
    sparsity: Any = 0.9,
    asym: Any = 0.0,
    blocks: Any = None,
    bits: Any = 8,
    delta: Any = 0.01,
    seed: Any = 0,
    groups: str = "tensor",
    chunk_size: Any = 1 << DEFAULT_CHUNK_LOG2,
    threads: Any = 0,
) -> dict[str, Any]:
    sparsity_ppb = _fraction_ppb("sparsity", sparsity)
    asym_ppb = _fraction_ppb("asym", asym)
    delta_value = _real("delta", delta)
    if delta_value < 0:
        raise ValueError(f"delta must be >= 0, got {delta!r}")
    delta_micro = round(delta_value * 1_000_000)
    if delta_micro > _U32_MAX:
        raise ValueError(f"delta must be <= {_U32_MAX / 1e6:g}, got {delta!r}")
    seed_value = _integer("seed", seed)
    if not 0 <= seed_value <= _U64_MAX:
        raise ValueError(f"seed must be in 0..2**64-1, got {seed_value}")
    q_bit, levels = _levels(bits)
    blocks_pos, blocks_neg = _blocks(blocks, levels)
    if groups not in ("tensor", "rows"):
        raise ValueError(f"groups must be 'tensor' or 'rows', got {groups!r}")
    chunk = _integer("chunk_size", chunk_size)
    if not (64 <= chunk <= 1 << 24 and chunk & (chunk - 1) == 0):
        raise ValueError(f"chunk_size must be a power of two in 64..2**24, got {chunk}")
    thread_count = _integer("threads", threads)
    if not 0 <= thread_count <= 65535:
        raise ValueError(f"threads must be in 0..65535 (0 = all cores), got {thread_count}")
    return {
        "sparsity_ppb": sparsity_ppb,
        "asym_ppb": asym_ppb,
        "delta_micro": delta_micro,
        "seed": seed_value,
        "bits": q_bit,
        "blocks_pos": blocks_pos,
        "blocks_neg": blocks_neg,
        "levels": levels,
        "level_count": len(levels),
        "chunk_log2": chunk.bit_length() - 1,
        "group_rows": 1 if groups == "rows" else 0,
        "threads": thread_count,
    }


# ----------------------------------------------------------------------------- format 2, dense

DENSE_LAYOUTS = {"tensor": 0, "rows": 1, "channels": 2}
MAX_CLASSES = 16
__all__ += ["CLASS_MAPS", "DENSE_LAYOUTS", "MAX_CLASSES", "class_axis_of", "class_length",
            "dense_class_bounds", "dense_class_map", "dense_classes", "dense_low_bits",
            "dense_table_kind",
            "make_dense_params"]  # fmt: skip


def dense_classes(value: Any) -> int | str:
    """`classes` of the dense modes: an int in 1..16 (1: mode 1, one frequency table; 2..16:
    mode 2, docs/format.md §19) or "auto" (chosen by the rate model)."""
    if isinstance(value, str):
        if value != "auto":
            raise ValueError(
                f"classes must be an integer in 1..{MAX_CLASSES} or 'auto', got {value!r}"
            )
        return value
    if isinstance(value, bool):
        raise TypeError("classes must be an integer in 1..16 or 'auto', got bool")
    try:
        count = operator.index(value)
    except TypeError:
        raise TypeError(
            f"classes must be an integer in 1..{MAX_CLASSES} or 'auto', got {type(value).__name__}"
        ) from None
    if not 1 <= count <= MAX_CLASSES:
        raise ValueError(f"classes must be in 1..{MAX_CLASSES} or 'auto', got {count}")
    return count


TABLE_KIND_GEOM = 4  # docs/format.md §13.5: kinds 0 … 3 count classes, 4 geometric


def _integer_or_auto(name: str, value: Any, top: int) -> int | str:
    """An integer in 0..top or the string "auto" (TypeError / ValueError naming `name`)."""
    if isinstance(value, str):
        if value != "auto":
            raise ValueError(f"{name} must be an integer in 0..{top} or 'auto', got {value!r}")
        return value
    number = _integer(name, value)
    if not 0 <= number <= top:
        raise ValueError(f"{name} must be in 0..{top} or 'auto', got {number}")
    return number


def dense_table_kind(value: Any) -> int | str:
    """`table_kind` of mode 1 (docs/format.md §13.5): 0 (§13.1's count classes, the default),
    1 … 3 (coarser count classes), 4 (a geometric table of 3 bytes) or "auto" (the shortest
    stream of the five, ties to the lower kind)."""
    return _integer_or_auto("table_kind", value, TABLE_KIND_GEOM)


MAX_LOW_BITS = 15  # docs/format.md §13.6: bits 4-7 of the group_table byte


def dense_low_bits(value: Any) -> int | str:
    """`low_bits` of mode 1 (docs/format.md §13.6): 0 (no low-bit plane, the default), 1 … 15
    (the low k bits of every code in a fixed-width plane) or "auto" (§13.6's encoder rule: 0 at
    low rates, 3 … 5 at 6 … 8 bits per element)."""
    return _integer_or_auto("low_bits", value, MAX_LOW_BITS)


CLASS_MAPS = ("rank", "ranges", "bounds")


def dense_class_map(value: Any) -> str | None:
    """`class_map` of mode 2 (docs/format.md §18): "rank" (§18.1 map bytes, positions ranked by
    their codes' magnitude, §18.2), "ranges" (§18.3 index ranges a·K div L, no map bytes),
    "bounds" (§18.4 explicit range boundaries, `class_bounds` or estimated by classes="auto") or
    None ("rank" for an explicit classes=K; classes="auto" tries all three)."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise TypeError(
            f"class_map must be 'rank', 'ranges', 'bounds' or None, got {type(value).__name__}"
        )
    if value not in CLASS_MAPS:
        raise ValueError(f"class_map must be 'rank', 'ranges', 'bounds' or None, got {value!r}")
    return value


def dense_class_bounds(value: Any) -> list[int] | None:
    """`class_bounds` (docs/format.md §18.4): None or a sequence of 1..15 strictly rising
    integers >= 1, the first position of classes 1 … K−1 (checked against L later)."""
    if value is None:
        return None
    if isinstance(value, (str, bytes)) or not hasattr(value, "__len__"):
        raise TypeError(f"class_bounds must be a sequence of integers, got {type(value).__name__}")
    out = []
    for v in value:
        if isinstance(v, bool):
            raise TypeError("class_bounds must hold integers, got bool")
        try:
            out.append(operator.index(v))
        except TypeError:
            raise TypeError(f"class_bounds must hold integers, got {type(v).__name__}") from None
    if not 1 <= len(out) <= MAX_CLASSES - 1:
        raise ValueError(f"class_bounds must hold 1..{MAX_CLASSES - 1} boundaries, got {len(out)}")
    if out[0] < 1 or any(a >= b for a, b in zip(out, out[1:], strict=False)) or out[-1] >= 2**63:
        raise ValueError(f"class_bounds must rise strictly from 1 or more, got {out}")
    return out


def class_axis_of(layout: int) -> int:
    """The class axis (§19.1) that goes with a layout: channels → axis 1, else the last axis."""
    return 1 if layout == 2 else 0


def class_length(shape: tuple[int, ...], axis: int) -> int:
    """L of §19.1 (0 when the shape lacks the axis)."""
    if axis == 0:
        return int(shape[-1]) if len(shape) >= 1 else 0
    return int(shape[1]) if len(shape) >= 2 else 0


def _chunk_log2(chunk_size: Any) -> int:
    size = _integer("chunk_size", chunk_size)
    if size < 64 or size > 2**24 or size & (size - 1):
        raise ValueError(f"chunk_size must be a power of two in 64..2**24, got {size}")
    return size.bit_length() - 1


def dense_step(value: Any) -> float:
    """`step` as the binary32 value the stream stores (finite, normal, > 0)."""
    import numpy as np

    step = _real("step", value)
    stored = float(np.float32(step))
    if not (math.isfinite(stored) and stored >= 2.0**-126):
        raise ValueError(f"step must be a positive normal float32 value, got {value!r}")
    return stored


def make_dense_params(
    *,
    step: Any = None,
    rho: Any = 0.5,
    offsets: Any = None,
    groups: Any = "tensor",
    chunk_size: Any = 16384,
    threads: Any = 0,
    classes: Any = 1,
    class_map: Any = None,
    class_bounds: Any = None,
    trellis: Any = False,
    table_kind: Any = 0,
    low_bits: Any = 0,
) -> dict[str, Any]:
    """Integer parameters of the dense mode (docs/format.md §13); `step` may stay None.

    `table_kind` (§13.5): 0 … 4 or "auto"; 1 … 4 need mode 1 (classes 1, no trellis).
    `low_bits` (§13.6): 0 … 15 or "auto"; 1 … 15 need mode 1 (classes 1, no trellis).

    `trellis`: False / None (modes 1-2), True or λ > 0 (mode 3, trellis-coded quantization,
    docs/format.md §21); stored as "trellis": λ or None.

    `classes` (validated, not yet checked against the shape): 1, 2..16 or "auto"; the class
    axis follows the layout (§19.1); `class_map` the kind of map (§18): None, "rank", "ranges"
    or "bounds"; `class_bounds` the K − 1 boundaries of "bounds" (None: classes="auto" estimates
    them; given, classes None or 1 means K = len + 1)."""
    rho_value = _real("rho", rho)
    rho_256 = round(rho_value * 256)
    if not 1 <= rho_256 <= 128:
        raise ValueError(f"rho must be in [1/256, 1/2], got {rho!r}")
    if offsets is not None:
        if isinstance(offsets, (str, bytes)) or len(offsets) != 2:
            raise TypeError("offsets must be None or a pair of integers (1/256 units)")
        offsets = (_integer("offsets[0]", offsets[0]), _integer("offsets[1]", offsets[1]))
        if not all(-128 <= o <= 127 for o in offsets):
            raise ValueError(f"offsets must be in -128..127, got {offsets}")
    if not isinstance(groups, str) or groups not in DENSE_LAYOUTS:
        raise ValueError(f"groups must be one of {sorted(DENSE_LAYOUTS)}, got {groups!r}")
    count = _integer("threads", threads)
    if not 0 <= count <= 65535:
        raise ValueError(f"threads must be in 0..65535, got {count}")
    kind = dense_table_kind(table_kind)
    low = dense_low_bits(low_bits)
    out = {
        "step": None if step is None else dense_step(step),
        "rho_256": rho_256,
        "offsets": offsets,
        "chunk_log2": _chunk_log2(chunk_size),
        "layout": DENSE_LAYOUTS[groups],
        "group_table": None,
        "threads": count,
        "classes": dense_classes(classes),
        "class_axis": class_axis_of(DENSE_LAYOUTS[groups]),
        **_class_map_params(classes, class_map, class_bounds),
        "trellis": _trellis_lambda(trellis),
        "table_kind": kind,
        "low_bits": low,
    }
    if kind not in (0, "auto") and (out["classes"] != 1 or out["trellis"] is not None):
        raise ValueError(
            f"table_kind={kind} needs mode 1 (one frequency table: classes=1, no trellis); "
            "class tables and trellis tables have kind 0"
        )
    if low not in (0, "auto") and (out["classes"] != 1 or out["trellis"] is not None):
        raise ValueError(
            f"low_bits={low} needs mode 1 (one frequency table: classes=1, no trellis); "
            "modes 2 and 3 have no low-bit plane"
        )
    return out


def _trellis_lambda(value: Any) -> float | None:
    from ._trellis import trellis_lambda  # imports _rate, which imports this module

    return trellis_lambda(value)


def _class_map_params(classes: Any, class_map: Any, class_bounds: Any) -> dict[str, Any]:
    """classes, class_map and class_bounds, consistent (TypeError / ValueError naming them)."""
    kind = dense_class_map(class_map)
    bounds = dense_class_bounds(class_bounds)
    count = dense_classes(classes)
    if bounds is None:
        if kind == "bounds" and count != "auto":
            raise ValueError("class_map='bounds' needs class_bounds (or classes='auto')")
        return {"classes": count, "class_map": kind}
    if kind not in (None, "bounds"):
        raise ValueError(f"class_bounds goes with class_map='bounds', not {kind!r}")
    if count == 1:  # the default of mode="dense": K follows the boundaries
        count = len(bounds) + 1
    if count == "auto":
        raise ValueError("class_bounds fixes K: give an int classes (or none), not 'auto'")
    if count != len(bounds) + 1:
        raise ValueError(
            f"class_bounds must hold classes - 1 = {count - 1} boundaries, got {len(bounds)}"
        )
    return {"classes": count, "class_map": "bounds", "class_bounds": bounds}
