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
