"""Translate the reference's integer parameters (slicer_params fields) to the Python API."""

from __future__ import annotations

import json
from pathlib import Path

import ml_dtypes
import numpy as np

GOLDEN = Path(__file__).resolve().parent / "golden" / "v1"


def api_kwargs(params: dict) -> dict:
    """Keyword arguments of slicer.encode that the spec (§2) maps back to `params` exactly."""
    kwargs = {
        "sparsity": params["sparsity_ppb"] / 1e9,
        "asym": params["asym_ppb"] / 1e9,
        "delta": params["delta_micro"] / 1e6,
        "seed": params["seed"],
        "bits": list(params["levels"]) if params["levels"] else params["bits"],
        "blocks": (params["blocks_pos"], params["blocks_neg"]),
        "groups": "rows" if params["group_rows"] else "tensor",
        "chunk_size": 1 << params["chunk_log2"],
    }
    assert round(kwargs["sparsity"] * 1e9) == params["sparsity_ppb"]
    assert round(kwargs["asym"] * 1e9) == params["asym_ppb"]
    assert round(kwargs["delta"] * 1e6) == params["delta_micro"]
    return kwargs


def golden_cases() -> list[str]:
    return sorted(p.stem for p in GOLDEN.glob("*.slc"))


def load_golden(name: str) -> tuple[np.ndarray, dict, bytes]:
    meta = json.loads((GOLDEN / f"{name}.json").read_text())
    x = np.load(GOLDEN / f"{name}.npy")
    if meta["dtype"] == "bfloat16":
        x = x.view(ml_dtypes.bfloat16)
    return x, meta["params"], (GOLDEN / f"{name}.slc").read_bytes()
