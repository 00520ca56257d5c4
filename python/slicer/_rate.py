"""Rate control for ``encode(..., max_bytes=...)``.

Policy (documented in ``slicer.encode``): use the requested setting when it fits; otherwise,
for each width b from q_bit down to 2, find the smallest sparsity >= the requested one whose
real stream fits, then keep the candidate with the lowest relative L2 error. Width 1 is the
last resort. Sizes depend on the sparsity only through the per-group kept count k, so the
search runs over k (integers: the size bound brackets it, then an interpolation search with a
bisection safeguard, a few encodes per width) and maps k back to the smallest sparsity_ppb
that yields it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from . import _core
from ._errors import raise_encode_status
from ._intake import CODE_OF_DTYPE

__all__ = ["encode_within"]

_PPB = 1_000_000_000
Encoder = Callable[[np.ndarray, dict[str, Any]], bytes]


def _group_size(shape: tuple[int, ...], rows: bool) -> int:
    count = int(np.prod(shape, dtype=np.int64)) if shape else 1
    if count == 0:
        return 0
    return shape[-1] if rows else count


def _kept(n: int, sparsity_ppb: int) -> int:
    """k before the nnz cap (docs/format.md §4.1)."""
    return n * (_PPB - sparsity_ppb) // _PPB


def _sparsity_for(n: int, k: int, floor_ppb: int) -> int:
    """The smallest sparsity_ppb >= floor_ppb whose kept count is at most k."""
    # k(s) <= k  <=>  n (1e9 - s) < (k + 1) 1e9  <=>  s > 1e9 - (k + 1) 1e9 / n
    ppb = _PPB - (-(-(k + 1) * _PPB // n)) + 1
    return min(max(ppb, floor_ppb), _PPB - 1)


def _with_width(params: dict[str, Any], width: int) -> dict[str, Any]:
    """`params` with q_bit `width`; a multi-level list is scaled so its top becomes `width`."""
    result = dict(params)
    top = params["bits"]
    result["bits"] = width
    if params["levels"]:
        result["levels"] = [max(1, (level * width + top // 2) // top) for level in params["levels"]]
    return result


def _relative_error(array: np.ndarray, stream: bytes) -> float:
    from ._api import decode

    reference = array.astype(np.float64).reshape(-1)
    decoded = decode(stream).astype(np.float64).reshape(-1)
    norm = float(np.linalg.norm(reference))
    diff = float(np.linalg.norm(decoded - reference))
    if norm == 0.0:
        return 0.0 if diff == 0.0 else float("inf")
    return diff / norm


class _Search:
    def __init__(self, array: np.ndarray, params: dict[str, Any], limit: int, encoder: Encoder):
        self.array = array
        self.limit = limit
        self.encoder = encoder
        self.floor_ppb = params["sparsity_ppb"]
        self.n = _group_size(array.shape, bool(params["group_rows"]))
        # (size, params) of the smallest stream seen, for the error message
        self.smallest: tuple[int, dict[str, Any]] | None = None

    def encode(self, params: dict[str, Any]) -> bytes:
        stream = self.encoder(self.array, params)
        if self.smallest is None or len(stream) < self.smallest[0]:
            self.smallest = (len(stream), params)
        return stream

    def at_k(self, params: dict[str, Any], k: int) -> dict[str, Any]:
        result = dict(params)
        result["sparsity_ppb"] = _sparsity_for(self.n, k, self.floor_ppb)
        return result

    def bound(self, params: dict[str, Any]) -> int:
        status, bound = _core.encode_bound(
            list(self.array.shape), CODE_OF_DTYPE[self.array.dtype], params
        )
        if status:
            raise_encode_status(status, "size_bound")
        return bound

    def best_for_width(
        self, params: dict[str, Any], stream: bytes | None = None
    ) -> tuple[dict[str, Any], bytes] | None:
        """The largest k (smallest sparsity) whose stream fits at this width, or None.

        `stream`, when given, is the stream of `params` itself (already encoded).
        """
        k_top = _kept(self.n, self.floor_ppb)
        if stream is None:
            stream = self.encode(params)
        if len(stream) <= self.limit:
            return params, stream
        if k_top <= 1:
            return None
        # Bracket with the bound (never below the real size, growing with k): k_safe fits.
        lo, hi = 0, k_top
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if self.bound(self.at_k(params, mid)) <= self.limit:
                lo = mid
            else:
                hi = mid
        k_fit = lo
        if k_fit == 0:
            fit_params = self.at_k(params, 1)
            fit_stream = self.encode(fit_params)
            if len(fit_stream) > self.limit:
                return None
            k_fit = 1
        else:
            fit_params = self.at_k(params, k_fit)
            fit_stream = self.encode(fit_params)
        # Real sizes: k_fit fits, k_top does not. The size grows almost linearly with k, so
        # guess the boundary by interpolation; a guess that fails to halve the bracket is
        # followed by a bisection step, which bounds the work by twice plain bisection.
        lo, hi = k_fit, k_top
        size_lo, size_hi = len(fit_stream), len(stream)
        bisect_next = False
        while hi - lo > 1:
            if bisect_next or size_hi <= size_lo:
                mid = (lo + hi) // 2
            else:
                mid = lo + (self.limit - size_lo) * (hi - lo) // (size_hi - size_lo)
                mid = min(max(mid, lo + 1), hi - 1)
            trial = self.at_k(params, mid)
            stream = self.encode(trial)
            before = hi - lo
            if len(stream) <= self.limit:
                lo, size_lo, fit_params, fit_stream = mid, len(stream), trial, stream
            else:
                hi, size_hi = mid, len(stream)
            bisect_next = not bisect_next and 2 * (hi - lo) > before
        if len(fit_stream) > self.limit:
            return None
        return fit_params, fit_stream


def encode_within(array: np.ndarray, params: dict[str, Any], limit: int, encoder: Encoder) -> bytes:
    """Encode `array` into at most `limit` bytes by the policy of this module."""
    search = _Search(array, params, limit, encoder)
    first = search.encode(params)
    if len(first) <= limit:
        return first
    candidates: list[tuple[dict[str, Any], bytes]] = []
    if search.n > 0:
        for width in range(params["bits"], 1, -1):
            known = first if width == params["bits"] else None
            found = search.best_for_width(_with_width(params, width), known)
            if found is not None:
                candidates.append(found)
        if not candidates:
            known = first if params["bits"] == 1 else None
            found = search.best_for_width(_with_width(params, 1), known)
            if found is not None:
                candidates.append(found)
    if not candidates:
        size, smallest = search.smallest or (len(first), params)
        raise ValueError(
            f"max_bytes={limit} cannot be met: the smallest stream reached is {size} bytes "
            f"(sparsity {smallest['sparsity_ppb'] / _PPB:.9g}, {smallest['bits']} bits)"
        )
    best_stream = candidates[0][1]
    best_error = _relative_error(array, best_stream)
    for _, stream in candidates[1:]:
        error = _relative_error(array, stream)
        if error < best_error:
            best_stream, best_error = stream, error
    return best_stream
