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

import functools
import math
from collections.abc import Callable
from typing import Any

import numpy as np

from . import _core
from ._errors import raise_encode_status
from ._intake import CODE_OF_DTYPE
from ._varint import varint as _varint

__all__ = [
    "DenseModel", "class_candidates", "classes_at_step", "dense_for_budget", "dense_for_error",
    "encode_within",
]  # fmt: skip

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


# ----------------------------------------------------------------------------- format 2, dense
#
# Rate control of the dense mode (docs/format.md §15): a model predicts the stream size and the
# squared error of the quantizer from a sorted, strided sample of the magnitudes (prefix sums
# over the bins of §11, so one prediction costs a few hundred binary searches, not a pass over
# the data). The step is found by bisection on the model, then at most two more real encodes
# correct the model's error: `max_bytes` / `rel_error` are always met by the returned stream.

_SAMPLE = 1 << 15
_RHO_CANDIDATES = (128, 96, 72)  # rounding offsets tried by mode="auto" (1/256 units)
_MAX_MAG = 2.0**53
_GRID = 17  # steps per refinement round of the step search (four rounds from 56 octaves)
_LOG2_TOLERANCE = 1e-3  # the step search's resolution in log2(step): 0.07 % of the step


def _bin_edges() -> tuple[np.ndarray, np.ndarray]:
    """Smallest magnitude of bins 0..211 (+ the end) and each bin's extra-bit count."""
    base, nbits = [], []
    for b in range(212):
        if b < 8:
            base.append(b)
            nbits.append(0)
        else:
            e, top = (b - 8) // 4 + 3, (b - 8) % 4
            base.append((4 + top) << (e - 2))
            nbits.append(e - 2)
    base.append(2**54)
    return np.asarray(base, dtype=np.float64), np.asarray(nbits, dtype=np.float64)


_BIN_BASE, _BIN_NBITS = _bin_edges()


class _Part:
    """Sorted positive and negative magnitudes (with prefix sums) and the zeros of a sample."""

    def __init__(self, sample: np.ndarray) -> None:
        # One sort of `sample` in its own float type (a float32 sort is faster than a float64
        # one, and the widening after it is exact and monotone), split at zero: the negative
        # values reversed and negated are the negative side's magnitudes in ascending order.
        ordered = np.sort(sample)
        first_zero = int(np.searchsorted(ordered, 0.0, side="left"))
        first_pos = int(np.searchsorted(ordered, 0.0, side="right"))
        self.sides = []
        for raw in (
            ordered[first_pos:],
            -ordered[first_zero - 1 :: -1] if first_zero else ordered[:0],
        ):
            mags = raw.astype(np.float64)
            s1 = np.zeros(mags.size + 1)
            s2 = np.zeros(mags.size + 1)
            np.cumsum(mags, out=s1[1:])
            np.cumsum(mags * mags, out=s2[1:])
            self.sides.append((mags, s1, s2))
        # both sides' prefix sums in one array (the negative side's from `offset` on): one
        # gather serves both sides
        self.offset = np.array([0, self.sides[0][1].size], dtype=np.intp)[:, None, None]
        self.s1 = np.concatenate((self.sides[0][1], self.sides[1][1]))
        self.s2 = np.concatenate((self.sides[0][2], self.sides[1][2]))
        self.zeros = first_pos - first_zero
        self.size = sample.size

    def counts(self, steps: np.ndarray, rho: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(symbol counts (g, ≤ 423: the symbols past the last column have none), squared
        error (g,)) of the sample for each step."""
        g = steps.size
        edges = np.maximum(_BIN_BASE[None, :] - rho[:, None], 0.0) * steps[:, None]  # (g, 213)
        edges[:, 0] = 0.0
        # Edges rise along each row: past the first edge above a side's largest magnitude every
        # count is the side's size, so only the columns up to it are searched, and the bins
        # beyond the last such column of both sides (empty) are left out.
        widths = []
        for mags, _, _ in self.sides:
            top = mags[-1] if mags.size else -1.0
            widths.append(int(np.count_nonzero(edges <= top, axis=1).max()) + 1)
        w = min(max(9, *widths), edges.shape[1])  # bins 0 … w-2 (at least the centroid bins)
        idx = np.empty((2, g, w), dtype=np.intp)  # per side, mags below each edge
        for side, (mags, _, _) in enumerate(self.sides):
            width = min(widths[side], w)
            idx[side, :, width:] = mags.size
            idx[side, :, :width] = np.searchsorted(
                mags, edges[:, :width].ravel(), side="left"
            ).reshape(g, width)
        c = np.diff(idx, axis=2).astype(np.float64)  # (2, g, w - 1) per side and bin
        head = idx[:, :, :9] + self.offset  # bins 0..7 only: the centroid bins
        sa = self.s1[head[:, :, 1:]] - self.s1[head[:, :, :-1]]
        sa2 = self.s2[head[:, :, 1:]] - self.s2[head[:, :, :-1]]
        # bin 0 decodes to 0; bins 1..7 to their centroid (the data offsets approximate it);
        # wider bins: uniform error step^2/12
        c17 = c[:, :, 1:8]
        safe = np.where(c17 > 0, c17, 1.0)
        mid = np.sum(np.where(c17 > 0, sa2[:, :, 1:8] - sa[:, :, 1:8] ** 2 / safe, 0.0), axis=2)
        wide = (idx[:, :, -1] - idx[:, :, 8]).astype(np.float64) * steps * steps / 12.0
        sse = np.zeros(g)
        for side in (0, 1):  # the positive side's terms first, in this order
            sse += sa2[side, :, 0]
            sse += mid[side]
            sse += wide[side]
        sym = np.empty((g, 2 * w - 3))  # symbols 0 … 2(w-2); the rest are empty
        sym[:, 0] = c[0, :, 0] + c[1, :, 0] + self.zeros
        sym[:, 1::2] = c[0, :, 1:]  # symbols 2b-1 (positive), 2b (negative)
        sym[:, 2::2] = c[1, :, 1:]
        return sym, sse


_SYMBOL_NBITS = np.repeat(_BIN_NBITS[1:], 2)[None, :]  # extra bits of symbols 1..422


def _coded_bits(sym: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(ideal symbol bits, estimated table bytes) of per-step symbol counts (g, ≤ 423: the
    symbols beyond the last column are empty)."""
    total = sym.sum(axis=1, keepdims=True)
    used = sym > 0
    log_p = np.zeros(sym.shape)  # log2 of the used symbols' shares only (0 elsewhere)
    np.log2(sym / np.where(total > 0, total, 1.0), out=log_p, where=used)
    bits = -np.sum(sym * log_p, axis=1)
    extra = np.sum(sym[:, 1:] * _SYMBOL_NBITS[:, : sym.shape[1] - 1], axis=1)
    last = np.where(used.any(axis=1), sym.shape[1] - np.argmax(used[:, ::-1], axis=1), 0)
    table = np.where(last > 0, 2 + (9 + 4 * np.maximum(0, last - 1) + 7) // 8, 1)
    return bits + extra, table


class DenseModel:
    """Predicted (bytes, squared error) of a dense encode for any (step, rho) (one table: the
    saving of class tables, docs/format.md §19, is estimated by _class_saving)."""

    def __init__(
        self, flat: np.ndarray, itemsize: int, header_bytes: int, energy: bool = False
    ) -> None:
        """(`energy`: KernelModel's, ignored here: computed when asked for.)"""
        # no float64 copy of the whole input: one pass for the range here, one for the energy
        # when it is asked for (rel_error only)
        flat = _plain_float(flat)
        self._flat = flat
        self._energy: float | None = None
        self.n = flat.size
        self.max_abs = max(float(flat.max()), -float(flat.min())) if flat.size else 0.0
        raw = _sample(flat)
        self.sample = raw.astype(np.float64)
        self.scale = flat.size / self.sample.size if self.sample.size else 0.0
        self.parts = [_Part(raw)]
        self.header_bytes = header_bytes
        self.itemsize = itemsize

    @property
    def energy(self) -> float:
        """Σ x² of the input (binary64)."""
        if self._energy is None:
            self._energy = _energy(self._flat)
        return self._energy

    def sample_indices(self) -> np.ndarray:
        """Flat indices of the sample's elements."""
        if self.n <= _SAMPLE:
            return np.arange(self.n)
        return _sample_positions(self.n)

    def min_step(self) -> float:
        """The smallest step whose codes stay below 2^53 (with margin), and normal."""
        return max(2.0**-126, self.max_abs / 2.0**50)

    def predict(self, step: float, rho_256: int) -> tuple[float, float]:
        size, sse = self.predict_many(np.asarray([step], dtype=np.float64), rho_256)
        return float(size[0]), float(sse[0])

    def predict_many(self, steps: np.ndarray, rho_256: Any) -> tuple[np.ndarray, np.ndarray]:
        """Predicted (bytes, squared error) for every step of `steps` (one vectorised pass);
        `rho_256` is one rounding offset or one per step."""
        g = steps.size
        rho = np.broadcast_to(np.asarray(rho_256, dtype=np.float64) / 256.0, (g,))
        bits = np.zeros(g)
        tables = np.zeros(g)
        sse = np.zeros(g)
        for part in self.parts:
            if part.size == 0:
                tables += 1
                continue
            sym, part_sse = part.counts(steps, rho)
            part_bits, part_table = _coded_bits(sym)
            bits += part_bits
            tables += part_table
            sse += part_sse
        chunks = -(-self.n // 16384)
        size = self.header_bytes + tables + 4 + 6 * chunks + bits * self.scale / 8.0 * 1.002
        return size, sse * self.scale

    # the pieces of the class estimate (§19.4), shared with KernelModel

    def symbols(self, step: float, rho_256: int) -> np.ndarray:
        """§11 symbols of the sample's codes at (step, rho)."""
        return _sample_symbols(self.sample, step, rho_256)

    def class_bits(self, sym: np.ndarray, cls: np.ndarray | None, k: int) -> tuple[float, int]:
        """(ideal bits, estimated table bytes) of one histogram of `sym` per class 0..k-1
        (`cls` None: every element in class 0)."""
        key = sym if cls is None else cls * 423 + sym
        hist = np.bincount(key, minlength=423 * k).reshape(k, 423)
        return _entropy_bits(hist), int(_table_bytes(hist).sum())

    def rank_bits(
        self, sym: np.ndarray, pos: np.ndarray, rank: np.ndarray | None, length: int,
        ks: list[int],
    ) -> list[tuple[float, int]]:  # fmt: skip
        """class_bits of classes K·rank[pos] div length (rank None: the position itself), for
        each K of `ks`."""
        ranked = pos if rank is None else rank[pos]
        return [self.class_bits(sym, ranked * k // length, k) for k in ks]

    def best_bounds(
        self, pos: np.ndarray, sym: np.ndarray, length: int, ks: list[int]
    ) -> dict[int, tuple[float, list[int]]]:
        return _best_bounds(pos, sym, length, ks, self.scale)

    def position_scores(self, work: np.ndarray, shape: tuple[int, ...], axis: int) -> np.ndarray:
        return _position_scores(work, shape, axis)


_KERNEL_CODES = {np.dtype(np.float32): 1, np.dtype(np.float16): 2, np.dtype(np.float64): 4}
_KERNEL_CODES.update({dt: code for dt, code in CODE_OF_DTYPE.items() if code == 3})  # bfloat16


class KernelModel:
    """DenseModel computed by the C++ kernel (cpp/src/dense/rate_model.cpp, slicer._core
    RateModel): the same sample, counts, predictions, grid search, class histograms and §18.4
    boundaries, without a NumPy call per step. DenseModel is its reference
    (tests/test_rate_kernel.py)."""

    def __init__(
        self, flat: np.ndarray, itemsize: int, header_bytes: int, energy: bool = False
    ) -> None:
        """`energy`: Σ x² computed in the one pass that reads the range and the sample."""
        flat = np.ascontiguousarray(flat).reshape(-1)
        self._code = _KERNEL_CODES[flat.dtype]
        self._raw = flat.view(np.uint8)
        self.n = flat.size
        positions = None if self.n <= _SAMPLE else _sample_positions(self.n)
        self.core = _core.RateModel(self._raw, self._code, positions, float(header_bytes), energy)
        self.max_abs = self.core.max_abs
        self._energy: float | None = self.core.energy if energy else None
        self.scale = self.core.scale
        self.header_bytes = header_bytes
        self.itemsize = itemsize

    @property
    def energy(self) -> float:
        """Σ x² of the input (binary64)."""
        if self._energy is None:
            self._energy = _core.rate_stats(self._raw, self._code, True)[1]
        return self._energy

    @property
    def sample(self) -> np.ndarray:
        return self.core.sample

    sample_indices = DenseModel.sample_indices
    min_step = DenseModel.min_step
    predict = DenseModel.predict

    def predict_many(self, steps: np.ndarray, rho_256: Any) -> tuple[np.ndarray, np.ndarray]:
        steps = np.ascontiguousarray(steps, dtype=np.float64).reshape(-1)
        if isinstance(rho_256, tuple) and len(rho_256) == steps.size:  # one per step
            rho = np.array(rho_256, dtype=np.float64)
        elif np.ndim(rho_256) == 0:
            rho = np.full(steps.shape, float(rho_256))
        else:
            rho = np.ascontiguousarray(np.broadcast_to(np.asarray(rho_256, dtype=np.float64),
                                                       steps.shape))  # fmt: skip
        return self.core.predict(steps, rho)

    def symbols(self, step: float, rho_256: int) -> np.ndarray:
        return self.core.symbols(float(step), int(rho_256))

    def class_bits(self, sym: np.ndarray, cls: np.ndarray | None, k: int) -> tuple[float, int]:
        if cls is not None:
            cls = np.ascontiguousarray(cls, dtype=np.int64)
        return _core.rate_class_bits(sym, cls, k)

    def rank_bits(
        self, sym: np.ndarray, pos: np.ndarray, rank: np.ndarray | None, length: int,
        ks: list[int],
    ) -> list[tuple[float, int]]:  # fmt: skip
        return _core.rate_rank_bits(sym, pos, rank, length, list(ks))

    def best_bounds(
        self, pos: np.ndarray, sym: np.ndarray, length: int, ks: list[int]
    ) -> dict[int, tuple[float, list[int]]]:
        pos = np.ascontiguousarray(pos, dtype=np.int64)
        found = _core.rate_best_bounds(pos, sym, length, list(ks), self.scale)
        return {k: (cost, list(bounds)) for k, cost, bounds in found}

    def position_scores(self, work: np.ndarray, shape: tuple[int, ...], axis: int) -> np.ndarray:
        """Σ|x| per position along the class axis over the model's input (= `work`)."""
        if axis == 0:
            length = shape[-1]
            outer, inner = self.n // length, 1
        else:
            length = shape[1]
            outer = shape[0]
            inner = self.n // (outer * length)
        return _core.rate_position_scores(self._raw, self._code, outer, length, inner)


def _energy_of(array: np.ndarray) -> float:
    """Σ x² of `array` (binary64), one pass of the kernel."""
    flat = np.ascontiguousarray(array).reshape(-1)
    return _core.rate_stats(flat.view(np.uint8), _KERNEL_CODES[flat.dtype], True)[1]


MODEL: Any = KernelModel  # the model rate control builds (DenseModel: the NumPy reference)
# mode="auto" / "dense" with max_bytes / rel_error (no group table, no trellis; classes 1, a
# fixed K with any map, or "auto") run in the C++ driver (cpp/src/dense/dense_budget.cpp), which
# reproduces dense_for_budget / dense_for_error below step for step; False: these (the reference)
NATIVE_DRIVER = True


def _new_model(array: np.ndarray, work: np.ndarray, energy: bool) -> Any:
    """MODEL of `work` (the values the steps divide) for `array` (`energy`: Σ x² read in the
    model's first pass)."""
    return MODEL(work.reshape(-1), array.dtype.itemsize, _dense_header_bytes(array.shape),
                 energy=energy)  # fmt: skip


def _sample(flat: np.ndarray) -> np.ndarray:
    """About _SAMPLE elements at fixed pseudo-random positions (seeded: deterministic), in the
    input's float type (a copy). A regular stride would alias with the row length (a stride of
    32 on 576-wide token rows sees 18 of the 576 channels) and bias the model by up to 40 %."""
    if flat.size <= _SAMPLE:
        return flat.copy()
    return flat[_sample_positions(flat.size)]


@functools.lru_cache(maxsize=16)
def _sample_positions(n: int) -> np.ndarray:
    out = np.sort(np.random.default_rng(0x51C3).integers(0, n, _SAMPLE))
    out.flags.writeable = False
    return out


@functools.lru_cache(maxsize=32)
def _sample_positions_along(n: int, length: int, inner: int) -> np.ndarray:
    """Position along a class axis of each sample element: (index div inner) mod length."""
    idx = np.arange(n) if n <= _SAMPLE else _sample_positions(n)
    out = (idx // inner) % length
    out.flags.writeable = False
    return out


def _energy(flat: np.ndarray) -> float:
    """Σ x² in binary64, in blocks (no float64 copy of the whole input)."""
    total = 0.0
    for i in range(0, flat.size, 1 << 16):
        part = flat[i : i + (1 << 16)].astype(np.float64)
        total += float(np.einsum("i,i->", part, part))  # not BLAS: no thread hand-off
    return total


def _plain_float(x: np.ndarray) -> np.ndarray:
    """float32 / float64 as they are; float16 / bfloat16 widened to float32 (exact)."""
    return x if x.dtype in (np.float32, np.float64) else x.astype(np.float32)


@functools.lru_cache(maxsize=64)
def _dense_header_bytes(shape: tuple[int, ...]) -> int:
    return 8 + sum(len(_varint(d)) for d in shape) + 2 + 1 + 9


def _boundary(
    model: Any, rhos: tuple[int, ...], lo: float, hi: float, on_size: bool, threshold: float,
    large_ok: bool,
) -> np.ndarray:  # fmt: skip
    """Per rounding offset of `rhos`, the log2 step at the boundary of the monotone predicate
    `value <= threshold` (value: the predicted size when `on_size`, else the squared error) in
    [lo, hi], on its ok side (within _LOG2_TOLERANCE; `large_ok`: ok holds for large steps).
    Grids of _GRID steps, refined until fine enough (four rounds from a 56-octave range), each
    round bisecting its grid's points after testing the ends: one vectorised prediction per
    round for all offsets together here; a KernelModel runs the same search in C++
    (rate_model.cpp), predicting only the points the bisection reads (about six a round)."""
    if isinstance(model, KernelModel):
        return np.asarray(
            model.core.boundary(list(rhos), lo, hi, on_size, float(threshold), large_ok)
        )
    r = len(rhos)
    lo_v, hi_v = np.full(r, float(lo)), np.full(r, float(hi))
    result = np.full(r, np.nan)
    rho_grid = np.repeat(np.asarray(rhos, dtype=np.float64), _GRID).reshape(r, _GRID)
    frac = np.linspace(0.0, 1.0, _GRID)
    for _ in range(8):
        grid = lo_v[:, None] + (hi_v - lo_v)[:, None] * frac[None, :]  # (r, _GRID)
        open_ = np.flatnonzero(np.isnan(result))  # offsets not resolved yet (rows independent)
        good = np.zeros((r, _GRID), dtype=bool)
        sizes, sses = model.predict_many(2.0 ** grid[open_].ravel(), rho_grid[open_].ravel())
        good[open_] = ((sizes if on_size else sses) <= threshold).reshape(open_.size, _GRID)
        for j in open_:
            g = good[j]
            # the end where the predicate should fail first: holding there, the boundary is that
            # end; failing at the other end too, no point holds; else bisect the grid's points
            # (fails at a, holds at b when large_ok; the reverse otherwise): the points and the
            # answer of the kernel, which predicts only the points the bisection reads
            first, last = (0, _GRID - 1) if large_ok else (_GRID - 1, 0)
            if g[first]:
                result[j] = grid[j, first]
                continue
            if not g[last]:
                result[j] = hi_v[j] if large_ok else lo_v[j]
                continue
            a, b = 0, _GRID - 1
            while b - a > 1:
                m = (a + b) // 2
                if g[m] == large_ok:
                    b = m
                else:
                    a = m
            lo_v[j], hi_v[j] = grid[j, a], grid[j, b]
            if hi_v[j] - lo_v[j] < _LOG2_TOLERANCE:
                result[j] = hi_v[j] if large_ok else lo_v[j]
        if not np.isnan(result).any():
            break
    return np.where(np.isnan(result), hi_v if large_ok else lo_v, result)


def _step_range(model: DenseModel, top: float) -> tuple[float, float]:
    return math.log2(model.min_step()), math.log2(max(model.max_abs, 2.0**-100)) + top


def _exp2(log2_steps: Any) -> np.ndarray:
    """2^x of each x as CPython's float power (libm's pow), not NumPy's vectorised power (SIMD
    on some machines, an ulp away at times): the C++ driver (cpp/src/dense/dense_budget.cpp)
    takes the same pow, so both find the same steps."""
    return np.array([2.0 ** float(x) for x in log2_steps], dtype=np.float64)


def _bisect_step(
    model: Any, rhos: tuple[int, ...], limit: float, near: float | None = None
) -> np.ndarray:
    """Per offset of `rhos`, the smallest step whose predicted size is <= limit (larger steps
    fit). `near`: a step close to the answer, to search around it first."""
    lo, hi = _step_range(model, 2.0)
    if near is not None:  # bracket around a known step: fewer rounds
        c = math.log2(near)
        f = model.predict_many(_exp2((c - 1.0, c + 1.0)), rhos[0])[0] <= limit
        if not f[0] and f[1]:
            lo, hi = c - 1.0, c + 1.0
    return _exp2(_boundary(model, rhos, lo, hi, True, limit, large_ok=True))


DenseEncoder = Callable[[np.ndarray, dict[str, Any]], bytes]

# ----------------------------------------------------------------------------- classes (§19)
#
# classes="auto": at the step (and rounding offset) the rate model chose, the sample's codes are
# computed once and split by the class of each element's position; per candidate K (and class
# axis) the ideal cost of one table per class, the tables and the map included, is compared
# with one table. The estimate ranks positions by Σ|x| (the encoder ranks by Σ min(m, 2^16) of
# the codes, §18.2: the same order wherever the clamp does not bite) over the whole input (one
# pass per axis). One histogram of the sample by (class, symbol) at the largest K; a K that
# divides it merges its classes (class ⌊K·r/L⌋ of rank r is class ⌊K'·r/L⌋ of K' = a multiple of
# K, integer-divided). No encode.

_CLASS_CANDIDATES = (1, 2, 4, 8, 16)


@functools.lru_cache(maxsize=64)
def class_candidates(shape: tuple[int, ...], axis: int) -> tuple[int, ...]:
    """The K of _CLASS_CANDIDATES that the shape allows along `axis` (K ≤ L; 1 always)."""
    from ._params import class_length

    length = class_length(shape, axis)
    n = int(np.prod(shape, dtype=np.int64)) if shape else 1
    if n == 0:
        return (1,)
    return tuple(k for k in _CLASS_CANDIDATES if k == 1 or k <= length)


def _position_scores(work: np.ndarray, shape: tuple[int, ...], axis: int) -> np.ndarray:
    """Σ|x| per position along the class axis (binary64), over the whole input: ranks from a
    subset of rows (1/8 of a 1M-element SmolLM2 tensor) put only 25 % of the positions in the
    class the whole input gives them (the first token's outliers weigh differently) and
    underestimated the saving by 17 %."""
    length = shape[-1] if axis == 0 else shape[1]
    if axis == 0:
        return np.abs(work.reshape(-1, length)).sum(axis=0, dtype=np.float64)
    return np.abs(work.reshape(shape[0], length, -1)).sum(axis=(0, 2), dtype=np.float64)


def _sample_symbols(sample: np.ndarray, step: float, rho_256: int) -> np.ndarray:
    """§11 symbols of the sample's codes at (step, rho)."""
    m = np.floor(np.abs(sample) / step + rho_256 / 256.0)  # < 2^51: step >= max|x| / 2^50
    # bin of m: m itself below 4, else 4·e − 4 + the two bits below the leading one (e =
    # floor(log2 m)), both read from the binary64 pattern of the integer m
    pattern = m.view(np.int64)
    wide = 4 * ((pattern >> 52) - 1023) - 4 + ((pattern >> 50) & 3)
    b = np.where(m < 4, m.astype(np.int64), wide)
    return np.where(b == 0, 0, 2 * b - 1 + (sample < 0))


def _table_bytes(hist: np.ndarray) -> np.ndarray:
    """Estimated bytes of each row's frequency table (§13.1) from its symbol counts."""
    used = hist > 0
    last = np.where(used.any(axis=1), hist.shape[1] - np.argmax(used[:, ::-1], axis=1), 0)
    return np.where(last > 0, 2 + (9 + 4 * np.maximum(0, last - 1) + 7) // 8, 1)


def _entropy_bits(hist: np.ndarray) -> float:
    """Σ over rows of the ideal order-0 bits of each row's counts."""
    total = hist.sum(axis=1, keepdims=True)
    p = np.where(hist > 0, hist / np.where(total > 0, total, 1), 1.0)
    return float(-np.sum(hist * np.log2(p)))


def _map_bytes(kind: str, length: int, k: int = 2) -> int:
    """Bytes of a class map of `length` positions: §18.1's nibbles, none for index ranges, at
    least K − 1 for §18.4's boundary varints (their exact bytes: _bounds_bytes)."""
    if kind == "bounds":
        return k - 1
    return 0 if kind == "ranges" else (length + 1) // 2


def _bounds_bytes(bounds: list[int]) -> int:
    """§18.4: bytes of the boundaries' varint gaps."""
    total, prev = 0, 0
    for b in bounds:
        gap = b - prev
        total += max(1, (gap.bit_length() + 6) // 7)
        prev = b
    return total


BOUNDS_GRID = 64  # classes="auto": boundaries on multiples of ceil(L / 64)


def _best_bounds(
    pos: np.ndarray, sym: np.ndarray, length: int, ks: list[int], scale: float
) -> dict[int, tuple[float, list[int]]]:  # fmt: skip
    """§18.4 boundaries estimated from the sample: for each K in `ks`, the contiguous cut of the
    positions into K ranges, boundaries on multiples of g = ceil(L / 64), that minimises the
    ideal code bytes of the sample's symbols (per-class histograms scaled to the stream) plus
    the tables' estimated bytes and the gaps' varint bytes; dynamic programming over the grid
    cells, ties to the earlier boundary (deterministic). Returns K → (estimated bytes with the
    boundaries' bytes, boundaries)."""
    g = -(-length // BOUNDS_GRID)
    cells = -(-length // g)
    hist = np.bincount((pos // g) * 423 + sym, minlength=cells * 423).reshape(cells, 423)
    cols = np.flatnonzero(hist.any(axis=0))  # the symbols the sample holds (few of 423)
    cum = np.zeros((cells + 1, cols.size), dtype=np.int64)
    np.cumsum(hist[:, cols], axis=0, out=cum[1:])
    ii, jj = np.triu_indices(cells + 1, k=1)  # segment [i, j) of cells
    seg = (cum[jj] - cum[ii]).astype(np.float64)
    total = seg.sum(axis=1)
    # ideal bits Σ_s n_s·log2(n / n_s) = n·log2 n − Σ_s n_s·log2 n_s
    xlogx = np.where(seg > 0, seg * np.log2(np.where(seg > 0, seg, 1.0)), 0.0).sum(axis=1)
    bits = np.where(total > 0, total * np.log2(np.where(total > 0, total, 1.0)), 0.0) - xlogx
    used = seg > 0  # the table's bytes (§13.1) from the last symbol used, as _table_bytes
    last = np.where(used.any(axis=1), cols[cols.size - 1 - np.argmax(used[:, ::-1], axis=1)]
                    + 1, 0) if cols.size else np.zeros(ii.size, dtype=np.int64)  # fmt: skip
    table = np.where(last > 0, 2 + (9 + 4 * np.maximum(0, last - 1) + 7) // 8, 1)
    cost_flat = bits * scale / 8.0 * 1.002 + table
    # a range that ends before L ends at a boundary: its gap's varint (§18.4) counts too
    gap = (jj - ii) * g
    cost_flat = cost_flat + np.where(jj < cells, np.maximum(1, (np.log2(gap) // 7 + 1)), 0)
    cost = np.full((cells + 1, cells + 1), np.inf)
    cost[ii, jj] = cost_flat
    out: dict[int, tuple[float, list[int]]] = {}
    top = max(ks)
    if top > cells:
        ks = [k for k in ks if k <= cells]
        if not ks:
            return out
        top = max(ks)
    best = cost[0].copy()  # best[j]: cells [0, j) in c + 1 ranges
    back = []
    for c in range(1, top):
        cand = best[:, None] + cost  # [i, j]: first c + 1 ranges end at i, the next is [i, j)
        arg = np.argmin(cand, axis=0)
        back.append(arg)
        best = cand[arg, np.arange(cells + 1)]
        k = c + 1
        if k in ks and np.isfinite(best[cells]):
            cuts, j = [], cells
            for b in reversed(back):
                j = int(b[j])
                cuts.append(j)
            out[k] = (float(best[cells]), sorted(min(length - 1, x * g) for x in cuts))
    return out


def _class_saving(
    model: DenseModel, work: np.ndarray, shape: tuple[int, ...], axes: tuple[int, ...],
    candidates: tuple[int, ...], step: float, rho_256: int,
    kinds: tuple[str, ...] = ("rank",),
    bounds: list[int] | None = None,
) -> tuple[int, int, str, float, list[int] | None]:  # fmt: skip
    """(K, axis, map kind, predicted bytes saved against one table, §18.4 boundaries or None)
    of the best candidate at (step, rho); (1, axes[0], kinds[0], 0.0, None) when no K ≥ 2
    saves. Candidates are tried in the order axis, kind, K and a later one wins only when it
    saves strictly more: deterministic. Kind "bounds" estimates its boundaries (_best_bounds)
    unless `bounds` gives them."""
    best = (1, axes[0], kinds[0], 0.0, None)
    plans = _class_plans(shape, axes, candidates, kinds, model.n)
    if not plans:
        return best
    if FUSED_CLASS_SEARCH and bounds is None and isinstance(model, KernelModel):
        return _kernel_class_search(model, shape, plans, step, rho_256, best)
    sym = model.symbols(step, rho_256)
    bits, tables = model.class_bits(sym, None, 1)
    base = bits * model.scale / 8.0 * 1.002 + float(tables)
    for axis, kind, length, useful in plans:
        inner = 1 if axis == 0 else int(np.prod(shape[2:], dtype=np.int64))
        pos = _sample_positions_along(model.n, length, max(inner, 1))
        if kind == "bounds":  # §18.4: contiguous ranges, boundaries given or estimated
            if bounds is not None:
                cls = np.searchsorted(np.asarray(bounds, dtype=np.int64), pos, side="right")
                k = len(bounds) + 1
                bits, tables = model.class_bits(sym, cls, k)
                est = {k: (bits * model.scale / 8.0 * 1.002 + float(tables)
                           + _bounds_bytes(bounds), list(bounds))}  # fmt: skip
            else:
                est = model.best_bounds(pos, sym, length, useful)
            for k in useful:
                if k not in est:
                    continue
                cost = est[k][0] + 2
                if base - cost > best[3]:
                    best = (k, axis, kind, base - cost, est[k][1])
            continue
        if kind == "ranges":  # §18.3: class a·K div L of the index itself
            rank = None
        else:
            scores = model.position_scores(work, shape, axis)
            rank = np.empty(length, dtype=np.int64)
            rank[np.lexsort((np.arange(length), scores))] = np.arange(length)
        for k, (bits, tables) in zip(useful, model.rank_bits(sym, pos, rank, length, useful),
                                     strict=True):  # fmt: skip
            cost = bits * model.scale / 8.0 * 1.002
            cost += float(tables) + 2 + _map_bytes(kind, length)
            if base - cost > best[3]:
                best = (k, axis, kind, base - cost, None)
    return best


@functools.lru_cache(maxsize=64)
def _class_plans(
    shape: tuple[int, ...], axes: tuple[int, ...], candidates: tuple[int, ...],
    kinds: tuple[str, ...], n: int,
) -> tuple[tuple[int, str, int, tuple[int, ...]], ...]:  # fmt: skip
    """_class_saving's (axis, kind, length, K that can pay) in the order they are tried: the
    saving is at most log2(K) bits per element (the class's information), so a K whose map
    costs more can never pay (a 1-D array's rank map holds every element) and is skipped."""
    plans = []
    for axis in axes:
        length = shape[-1] if axis == 0 else shape[1]
        for kind in kinds:
            useful = tuple(k for k in candidates if 1 < k <= length and
                           2 + _map_bytes(kind, length, k) < n * math.log2(k) / 8)  # fmt: skip
            if useful:
                plans.append((axis, kind, length, useful))
    return tuple(plans)


FUSED_CLASS_SEARCH = True  # False: the composition above (the pieces one call each), for tests
_KIND_CODES = {"rank": 0, "ranges": 1, "bounds": 2}


@functools.lru_cache(maxsize=64)
def _class_search_args(
    shape: tuple[int, ...], plans: tuple[tuple[int, str, int, tuple[int, ...]], ...], n: int
) -> list[tuple[int, int, int, int, tuple[int, ...], int]]:
    """RateModel.class_search's plans (kind code, outer, length, inner, K, map bytes)."""
    args = []
    for axis, kind, length, useful in plans:
        if axis == 0:
            outer, inner = n // length, 1
        else:
            outer = shape[0]
            inner = n // (outer * length)
        map_bytes = 0 if kind == "bounds" else _map_bytes(kind, length)
        args.append((_KIND_CODES[kind], outer, length, inner, useful, map_bytes))
    return args


def _kernel_class_search(
    model: KernelModel, shape: tuple[int, ...],
    plans: tuple[tuple[int, str, int, tuple[int, ...]], ...], step: float, rho_256: int,
    best: tuple[int, int, str, float, list[int] | None],
) -> tuple[int, int, str, float, list[int] | None]:  # fmt: skip
    """_class_saving's search in one kernel call (RateModel.class_search): the same candidates in
    the same order and the same arithmetic as the composition of the kernel's pieces."""
    args = _class_search_args(shape, plans, model.n)
    k, at, saving, cut = model.core.class_search(float(step), int(rho_256), args)
    if k == 1:
        return best
    axis, kind = plans[at][0], plans[at][1]
    return (k, axis, kind, saving, list(cut) if kind == "bounds" else None)


def _class_axes(params: dict[str, Any], shape: tuple[int, ...]) -> tuple[int, ...]:
    """Axes classes="auto" considers: the layout's, and axis 1 too for ndim ≥ 3."""
    axis = params.get("class_axis", 0)
    if len(shape) >= 3:
        return (axis, 1 - axis)
    return (axis,)


def _resolve_classes(
    array: np.ndarray, params: dict[str, Any], model: DenseModel, work: np.ndarray, step: float,
    rho_256: int,
) -> tuple[dict[str, Any], float]:  # fmt: skip
    """params with classes / class_axis resolved at (step, rho), and the predicted saving."""
    k = params.get("classes", 1)
    if k == 1 or array.size == 0:
        return dict(params, classes=1, class_map=None), 0.0
    if not model.max_abs / step < 2.0**52:
        # codes near or past the §12.2 limit of 2^53 (a step given too small for the data):
        # no estimate; the encoder accepts or rejects the step itself
        if k == "auto":
            return dict(params, classes=1, class_map=None), 0.0
        return params, 0.0
    if k == "auto":
        axes = _class_axes(params, array.shape)
        candidates = tuple(
            sorted({c for axis in axes for c in class_candidates(array.shape, axis)})
        )
        if len(candidates) <= 1:
            return dict(params, classes=1, class_map=None), 0.0
        kind = params.get("class_map")
        kinds = ("rank", "ranges", "bounds") if kind is None else (kind,)
        k, axis, kind, saving, bounds = _class_saving(
            model, work, array.shape, axes, candidates, step, rho_256, kinds
        )
        out = dict(params, classes=k, class_axis=axis, class_map=kind if k > 1 else None)
        out.pop("class_bounds", None)
        if k > 1 and kind == "bounds":
            out["class_bounds"] = bounds
        return out, saving
    axis = params["class_axis"]
    kinds = (params.get("class_map") or "rank",)
    saving = _class_saving(
        model, work, array.shape, (axis,), (k,), step, rho_256, kinds, params.get("class_bounds")
    )[3]
    return params, saving


def classes_at_step(
    array: np.ndarray, params: dict[str, Any], work: np.ndarray | None = None
) -> dict[str, Any]:
    """params with classes="auto" resolved for its step (the K and axis that save most)."""
    src = array if work is None else work
    model = _new_model(array, src, energy=False)
    return _resolve_classes(array, params, model, src, params["step"], params["rho_256"])[0]


def _f32(step: float) -> float:
    return float(np.float32(step))


def dense_for_budget(
    array: np.ndarray,
    params: dict[str, Any],
    limit: int,
    encoder: DenseEncoder,
    auto: bool,
    model_input: np.ndarray | None = None,
) -> bytes:
    """The lowest-error dense stream of at most `limit` bytes (rho searched when `auto`)."""
    work = array if model_input is None else model_input
    model = _new_model(array, work, energy=False)
    rhos = _RHO_CANDIDATES if auto else (params["rho_256"],)
    best = None
    steps = _bisect_step(model, rhos, limit)
    sses = model.predict_many(steps, rhos)[1]  # rows are independent: as one call per offset
    for rho, step, sse in zip(rhos, steps, sses, strict=True):
        if best is None or sse < best[0]:
            best = (float(sse), float(step), rho)
    _, step, rho = best
    # Classes (§19): K and axis at this step; their predicted saving lets a smaller step fit.
    params, saving = _resolve_classes(array, params, model, work, step, rho)
    if params["classes"] > 1 and saving > 0:
        goal = limit + saving - 0.004 * limit  # the saving is an estimate: aim inside
        step = float(_bisect_step(model, (rho,), goal, step)[0])
    fitting = None  # the largest stream found so far that fits (lowest error)
    stream = b""
    for attempt in range(3):
        stream = encoder(array, dict(params, step=_f32(step), rho_256=rho))
        size = len(stream)
        if size <= limit and (fitting is None or size > len(fitting)):
            fitting = stream
        if size <= limit and (size >= 0.99 * limit or attempt == 2):
            break
        # aim again with the model corrected by its miss on the real stream
        goal = limit - (size - model.predict(step, rho)[0]) - 0.001 * limit
        step = float(_bisect_step(model, (rho,), goal, step)[0])
    if fitting is not None:
        return fitting
    # Rare: the model is far off. Double the step until it fits (terminates: coarse steps
    # code everything as zeros).
    while len(stream) > limit:
        step *= 1.25
        if step > 2.0**127:
            break
        stream = encoder(array, dict(params, step=_f32(step), rho_256=rho))
    if len(stream) > limit:
        raise ValueError(
            f"max_bytes={limit} is below the smallest dense stream for this array "
            f"({len(stream)} bytes)"
        )
    return stream


def dense_for_error(
    array: np.ndarray,
    params: dict[str, Any],
    rel_error: float,
    encoder: DenseEncoder,
    auto: bool,
    model_input: np.ndarray | None = None,
    context: Any = None,
) -> bytes:
    """The smallest dense stream found whose relative L2 error is <= rel_error. Each attempt's
    error is the exact error of its decoded stream, returned by the encoder
    (slicer_dense_encode_sse): no attempt is decoded."""
    work = array if model_input is None else model_input
    model = _new_model(array, work, energy=True)
    same = model_input is None or model_input is array
    energy = model.energy if same else _energy_of(array)
    if energy == 0.0:
        k = params.get("classes", 1)
        if k == "auto":  # one table (class_map too: "bounds" has no boundaries to give)
            return encoder(array, dict(params, step=1.0, classes=1, class_map=None))
        return encoder(array, dict(params, step=1.0, classes=k))
    goal = rel_error**2 * model.energy
    rhos = _RHO_CANDIDATES if auto else (params["rho_256"],)
    best = None
    # per offset, the largest step whose predicted error fits; then the smallest predicted size
    steps = _largest_step(model, rhos, goal * 0.97)
    sizes = model.predict_many(steps, rhos)[0]  # rows are independent: as one call per offset
    for rho, step, size in zip(rhos, steps, sizes, strict=True):
        if best is None or size < best[0]:
            best = (float(size), float(step), rho)
    _, step, rho = best
    params = _resolve_classes(array, params, model, work, step, rho)[0]  # the size depends on K
    measured = _sse_encoder(array, context)

    def attempt(step: float) -> tuple[bytes, float]:
        stream, sse = measured(dict(params, step=_f32(step), rho_256=rho))
        return stream, float(np.sqrt(sse / energy))

    stream = b""
    for _ in range(3):
        stream, err = attempt(step)
        if err <= rel_error:
            return stream
        step = max(model.min_step(), step * min(0.97, rel_error / err * 0.98))
    while True:  # rare: keep shrinking
        step = max(model.min_step(), step * 0.8)
        stream, err = attempt(step)
        if err <= rel_error:
            return stream
        if step <= model.min_step():
            raise ValueError(f"rel_error={rel_error} cannot be reached for this array")


def _sse_encoder(
    array: np.ndarray, context: Any
) -> Callable[[dict[str, Any]], tuple[bytes, float]]:
    """Encoder of dense_for_error: (stream, squared error of the decoded stream) through the C
    ABI's slicer_context_dense_encode on `context` (a ``_core.Context``)."""
    code = 4 if array.dtype == np.float64 else CODE_OF_DTYPE[array.dtype]
    raw = np.ascontiguousarray(array).reshape(-1).view(np.uint8)
    shape = list(array.shape)

    def run(params: dict[str, Any]) -> tuple[bytes, float]:
        status, stream, sse = _core.dense_encode_sse(context, raw, code, shape, params)
        if status:
            raise_encode_status(status)
        return stream, sse

    return run


def _largest_step(model: Any, rhos: tuple[int, ...], goal: float) -> np.ndarray:
    """Per offset of `rhos`, the largest step whose predicted squared error is <= goal."""
    lo, hi = _step_range(model, 4.0)
    return _exp2(_boundary(model, rhos, lo, hi, False, goal, large_ok=False))
