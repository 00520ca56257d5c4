"""Baselines the SLICER codec is measured against.

Two families live here:

- Throughput baselines: the top-k + magnitude-split + block-quantize pipeline written the way a
  user writes it today in plain NumPy and in plain PyTorch (CPU): top-k by magnitude, split the
  kept values by sign, cut each sign into equal-cardinality blocks by magnitude, min/max
  quantize every block to `bits` bits. Their "stream" is the arrays a user would ship
  (int32 indices, uint8/uint16 codes, block ranges); they do no entropy coding.
- Rate-distortion peers that need no extra package: fp16 / bf16 casts, uniform per-tensor
  int8 / int4, and plain top-k + int8. Each returns the reconstruction and the bits it costs,
  with every piece of side information counted.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

PPB = 10**9


def kept_count(n: int, sparsity: float) -> int:
    """k = floor(n (1 - s)) with s fixed to parts per billion, as docs/format.md §2/§4.1 does."""
    if not 0.0 <= sparsity < 1.0:
        raise ValueError(f"sparsity must be in [0, 1), got {sparsity}")
    s_ppb = round(sparsity * PPB)
    return n * (PPB - s_ppb) // PPB


def _code_dtype(bits: int) -> type[np.unsignedinteger[Any]]:
    if not 1 <= bits <= 16:
        raise ValueError(f"bits must be in 1..16, got {bits}")
    return np.uint8 if bits <= 8 else np.uint16


@dataclass
class BlockQuantized:
    """What the plain top-k + block-quantize baseline ships."""

    shape: tuple[int, ...]
    indices: Any  # int32 (NumPy) / int64 (torch) flat positions, largest magnitude first per sign
    codes: Any  # quantized magnitudes, same order as indices
    negative: int  # the first `len(indices) - negative` entries are positives
    bounds: list[tuple[int, int, float, float]]  # (start, stop, lo, hi) per block, in `codes`
    bits: int

    def nbytes(self) -> int:
        """Bytes of the arrays a user would send (indices, codes, 8 bytes of range per block)."""
        return int(self.indices.nbytes + self.codes.nbytes + 8 * len(self.bounds) + 8)


# ---------------------------------------------------------------------------------------------
# NumPy


def numpy_encode(
    x: np.ndarray, sparsity: float = 0.9, blocks: int = 3, bits: int = 8
) -> BlockQuantized:
    flat = np.ascontiguousarray(x, dtype=np.float32).reshape(-1)
    n = flat.size
    k = min(kept_count(n, sparsity), int(np.count_nonzero(flat)))
    mag = np.abs(flat)
    if k == 0:
        empty = np.empty(0, dtype=np.int32)
        return BlockQuantized(x.shape, empty, empty.astype(_code_dtype(bits)), 0, [], bits)
    top = np.argpartition(mag, n - k)[n - k :]
    top = top[np.argsort(-mag[top], kind="stable")]  # largest magnitudes first
    positive = flat[top] > 0
    order = np.concatenate([top[positive], top[~positive]]).astype(np.int32)
    a = mag[order].astype(np.float64)
    codes = np.empty(k, dtype=_code_dtype(bits))
    levels = (1 << bits) - 1
    bounds: list[tuple[int, int, float, float]] = []
    n_pos = int(positive.sum())
    for start, stop in ((0, n_pos), (n_pos, k)):
        count = stop - start
        for m in range(blocks):
            b0 = start + m * count // blocks
            b1 = start + (m + 1) * count // blocks
            if b1 == b0:
                continue
            seg = a[b0:b1]
            hi, lo = float(seg[0]), float(seg[-1])
            step = (hi - lo) / levels if hi > lo else 1.0
            codes[b0:b1] = np.clip(np.rint((seg - lo) / step), 0, levels)
            bounds.append((b0, b1, lo, hi))
    return BlockQuantized(x.shape, order, codes, k - n_pos, bounds, bits)


def numpy_decode(enc: BlockQuantized) -> np.ndarray:
    n = math.prod(enc.shape)
    out = np.zeros(n, dtype=np.float32)
    levels = (1 << enc.bits) - 1
    k = enc.indices.size
    values = np.empty(k, dtype=np.float64)
    for b0, b1, lo, hi in enc.bounds:
        step = (hi - lo) / levels
        values[b0:b1] = lo + enc.codes[b0:b1] * step
    values[k - enc.negative :] *= -1.0
    out[enc.indices] = values
    return out.reshape(enc.shape)


# ---------------------------------------------------------------------------------------------
# PyTorch (CPU)


def torch_encode(x: Any, sparsity: float = 0.9, blocks: int = 3, bits: int = 8) -> BlockQuantized:
    import torch

    flat = x.reshape(-1)
    n = flat.numel()
    k = min(kept_count(n, sparsity), int(torch.count_nonzero(flat)))
    code_dtype = torch.uint8 if bits <= 8 else torch.int32
    if k == 0:
        empty = torch.empty(0, dtype=torch.int64)
        return BlockQuantized(tuple(x.shape), empty, empty.to(code_dtype), 0, [], bits)
    mag, top = torch.topk(flat.abs(), k, sorted=True)
    positive = flat[top] > 0
    order = torch.cat([top[positive], top[~positive]])
    a = torch.cat([mag[positive], mag[~positive]]).double()
    n_pos = int(positive.sum())
    levels = (1 << bits) - 1
    code_parts = []
    bounds: list[tuple[int, int, float, float]] = []
    for start, stop in ((0, n_pos), (n_pos, k)):
        count = stop - start
        for m in range(blocks):
            b0 = start + m * count // blocks
            b1 = start + (m + 1) * count // blocks
            if b1 == b0:
                continue
            seg = a[b0:b1]
            hi, lo = seg[0], seg[-1]
            step = torch.where(hi > lo, (hi - lo) / levels, torch.ones_like(hi))
            q = torch.clamp(torch.round((seg - lo) / step), 0, levels)
            code_parts.append(q.to(code_dtype))
            bounds.append((b0, b1, float(lo), float(hi)))
    return BlockQuantized(tuple(x.shape), order, torch.cat(code_parts), k - n_pos, bounds, bits)


def torch_decode(enc: BlockQuantized) -> Any:
    import torch

    n = math.prod(enc.shape)
    out = torch.zeros(n, dtype=torch.float32)
    levels = (1 << enc.bits) - 1
    k = enc.indices.numel()
    parts = []
    for b0, b1, lo, hi in enc.bounds:
        step = (hi - lo) / levels
        parts.append(enc.codes[b0:b1].double() * step + lo)
    if parts:
        values = torch.cat(parts)
        values[k - enc.negative :] *= -1.0
        out[enc.indices] = values.float()
    return out.reshape(enc.shape)


# ---------------------------------------------------------------------------------------------
# Rate-distortion peers (all return (reconstruction, bits in total))


def cast_fp16(x: np.ndarray) -> tuple[np.ndarray, int]:
    """IEEE half: 16 bits per element (values beyond 65504 become inf and show as such)."""
    with np.errstate(over="ignore"):
        y = x.astype(np.float16)
    return y.astype(np.float32), 16 * x.size


def cast_bf16(x: np.ndarray) -> tuple[np.ndarray, int]:
    """bfloat16 (round to nearest even): 16 bits per element, float32's range."""
    import ml_dtypes

    return x.astype(ml_dtypes.bfloat16).astype(np.float32), 16 * x.size


def uniform_int(x: np.ndarray, bits: int) -> tuple[np.ndarray, int]:
    """Per-tensor affine quantization, as torch.quantize_per_tensor does it.

    scale = (max - min) / (2^bits - 1) over a range widened to include 0, and an integer zero
    point, so that 0 is exact; 64 bits of side information (scale, zero point).
    """
    lo, hi = min(float(x.min()), 0.0), max(float(x.max()), 0.0)
    levels = (1 << bits) - 1
    if hi == lo:
        return np.zeros_like(x), bits * x.size + 64
    scale = (hi - lo) / levels
    zero_point = round(-lo / scale)
    q = np.clip(np.rint(x.astype(np.float64) / scale) + zero_point, 0, levels)
    return ((q - zero_point) * scale).astype(np.float32), bits * x.size + 64


def log2_binomial(n: int, k: int) -> float:
    """log2 C(n, k): the bits an ideal enumerative code spends on a k-subset of n positions."""
    return (math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)) / math.log(2)


def topk_int(
    x: np.ndarray, sparsity: float, bits: int = 8, positions: str = "entropy"
) -> tuple[np.ndarray, int]:
    """Plain top-k by magnitude, kept values on one symmetric per-tensor int grid.

    Positions cost log2 C(N, k) bits ("entropy": an ideal enumerative code, the most
    favourable costing a plain scheme can claim) or N bits ("bitmap"). Values cost `bits`
    each, plus 4 bytes of scale.
    """
    flat = x.reshape(-1).astype(np.float64)
    n = flat.size
    k = min(kept_count(n, sparsity), int(np.count_nonzero(flat)))
    out = np.zeros(n, dtype=np.float32)
    if positions == "entropy":
        pos_bits = math.ceil(log2_binomial(n, k))
    elif positions == "bitmap":
        pos_bits = n
    else:
        raise ValueError(f"positions must be 'entropy' or 'bitmap', got {positions!r}")
    if k == 0:
        return out.reshape(x.shape), pos_bits + 32
    top = np.argpartition(np.abs(flat), n - k)[n - k :]
    amax = float(np.abs(flat[top]).max())
    half = (1 << (bits - 1)) - 1  # symmetric grid -half..half
    step = amax / half
    out[top] = (np.clip(np.rint(flat[top] / step), -half, half) * step).astype(np.float32)
    return out.reshape(x.shape), pos_bits + bits * k + 32
