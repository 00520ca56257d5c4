"""Type stubs of the nanobind module slicer._core (python/src/)."""

from typing import Any

import numpy as np
import numpy.typing as npt

FORMAT_VERSION: int
MAX_NDIM: int
MAX_BLOCKS: int
MAX_BITS: int

def version() -> str: ...
def format_version() -> int: ...
def status_string(status: int) -> str: ...
def error_detail() -> str: ...
def raw_view(array: Any) -> tuple[np.ndarray | None, int, int]: ...
def encode_bound(shape: list[int], dtype: int, params: dict[str, Any]) -> tuple[int, int]: ...
def encode(
    raw: npt.NDArray[np.uint8], dtype: int, shape: list[int], params: dict[str, Any]
) -> tuple[int, bytes | None]: ...
def read_header(
    buf: npt.NDArray[np.uint8], max_elements: int
) -> tuple[int, dict[str, Any] | None]: ...
def decode_into(
    buf: npt.NDArray[np.uint8], out: npt.NDArray[np.uint8], max_elements: int, threads: int
) -> int: ...
def decode(
    buf: npt.NDArray[np.uint8], max_elements: int, threads: int, context: Any = None
) -> tuple[int, dict[str, Any] | None, npt.NDArray[np.uint8] | None]: ...
def decode_batch(
    streams: Any,
    out: npt.NDArray[np.uint8],
    dtype: int,
    shape: list[int],
    max_elements: int,
    threads: int,
    statuses: npt.NDArray[np.int32],
    context: Any = None,
) -> tuple[int, int]: ...
def inspect(
    buf: npt.NDArray[np.uint8], max_elements: int, blocks: bool
) -> tuple[
    int,
    dict[str, Any] | None,
    dict[str, int] | None,
    int | None,
    dict[str, npt.NDArray[Any]] | None,
]: ...

# rate model of mode="auto" (python/src/rate.cpp; internal, used by slicer._rate)
class RateModel:
    def __init__(
        self,
        raw: npt.NDArray[np.uint8],
        dtype: int,
        positions: npt.NDArray[np.int64] | None,
        header_bytes: float,
        energy: bool = False,
    ) -> None: ...
    @property
    def max_abs(self) -> float: ...
    @property
    def energy(self) -> float: ...
    @property
    def scale(self) -> float: ...
    @property
    def sample(self) -> npt.NDArray[np.float64]: ...
    def predict(
        self, steps: npt.NDArray[np.float64], rho_256: npt.NDArray[np.float64]
    ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]: ...
    def boundary(
        self, rhos: list[int], lo: float, hi: float, on_size: bool, threshold: float, large_ok: bool
    ) -> list[float]: ...
    def bounds(self, step: float) -> tuple[float, float]: ...
    def symbols(self, step: float, rho_256: int) -> npt.NDArray[np.int32]: ...
    def class_search(
        self, step: float, rho_256: int, plans: list[tuple[int, int, int, int, list[int], int]]
    ) -> tuple[int, int, float, list[int]]: ...

def rate_class_bits(
    sym: npt.NDArray[np.int32], cls: npt.NDArray[np.int64] | None, k: int
) -> tuple[float, int]: ...
def rate_rank_bits(
    sym: npt.NDArray[np.int32],
    pos: npt.NDArray[np.int64],
    rank: npt.NDArray[np.int64] | None,
    length: int,
    ks: list[int],
) -> list[tuple[float, int]]: ...
def rate_best_bounds(
    pos: npt.NDArray[np.int64], sym: npt.NDArray[np.int32], length: int, ks: list[int], scale: float
) -> list[tuple[int, float, list[int]]]: ...
def rate_position_scores(
    raw: npt.NDArray[np.uint8], dtype: int, outer: int, length: int, inner: int
) -> npt.NDArray[np.float64]: ...
def rate_stats(raw: npt.NDArray[np.uint8], dtype: int, energy: bool) -> tuple[float, float]: ...
def rate_sample_positions(n: int) -> npt.NDArray[np.int64]: ...
