"""Format-2 golden streams (tests/golden/v2): every backend decodes them to the reference's
values and re-encodes their inputs to the same bytes."""

from __future__ import annotations

import json
from pathlib import Path

import ml_dtypes
import numpy as np
import pytest

import reference_dense as rd
import slicer
from slicer import _core
from slicer._context import native_context

GOLDEN = Path(__file__).resolve().parent / "golden" / "v2"
# m3_*: mode 3 (trellis, docs/format.md §21), tested in test_dense_trellis.py
CASES = sorted(p.stem for p in GOLDEN.glob("*.slc") if not p.stem.startswith("m3_"))
DTYPES = {"float32": np.float32, "float16": np.float16, "bfloat16": ml_dtypes.bfloat16,
          "float64": np.float64}  # fmt: skip


def load(name: str) -> tuple[np.ndarray, dict, bytes]:
    meta = json.loads((GOLDEN / f"{name}.json").read_text())
    x = np.load(GOLDEN / f"{name}.npy")
    if meta["dtype"] == "bfloat16":
        x = x.view(ml_dtypes.bfloat16)
    assert x.dtype == DTYPES[meta["dtype"]]
    params = meta["params"]
    if params["offsets"] is not None:
        params["offsets"] = tuple(params["offsets"])
    return x, params, (GOLDEN / f"{name}.slc").read_bytes()


def test_cases_present():
    assert len(CASES) >= 13


@pytest.mark.parametrize("name", CASES)
def test_golden(name):
    x, params, stream = load(name)
    assert stream[4] == 2
    assert rd.encode(x, params) == stream
    p = dict(params, threads=1)
    p["group_table"] = None if params["group_table"] is None else bytes(params["group_table"])
    raw = np.ascontiguousarray(x).reshape(-1).view(np.uint8)
    status, native = _core.dense_encode(
        native_context(None), raw, rd.DTYPE_CODES[x.dtype], list(x.shape), p
    )
    assert status == 0 and native == stream
    want, _ = rd.decode(stream)
    got = slicer.decode(stream)
    assert got.dtype == want.dtype and got.shape == want.shape
    assert got.tobytes() == want.tobytes()
    info = slicer.inspect(stream)
    assert info.account.total == len(stream)
