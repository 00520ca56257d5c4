"""Writes the frame goldens (tests/golden/v2/frames) with the NumPy reference.

    python tests/golden/make_frames_golden.py

Written once and committed; never regenerated for a released format. Per case NAME:
``NAME.json`` (dtype, row_shape, step, rho_256, offsets, states, and classes for contexts with a
class map, §18, and trellis = λ for trellis contexts, §17.4), ``NAME_calib.npy``
(calibration rows), ``NAME_rows.npy`` (the rows coded as frames; bfloat16 stored as its ``<u2``
bits), ``NAME.ctx`` (the context) and ``NAME_K.frame`` (frame K, sequence number K).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import ml_dtypes
import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE.parent.parent / "bench"))

import reference_frames as rf  # noqa: E402

OUT = HERE / "v2" / "frames"
NAMES = {
    np.dtype(np.float32): "float32",
    np.dtype(np.float16): "float16",
    np.dtype(ml_dtypes.bfloat16): "bfloat16",
    np.dtype(np.float64): "float64",
}


def llm_rows(seed: int, n: int, d: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.standard_t(4, size=(n, d)) * 1.5
    x[:, rng.choice(d, size=max(1, d // 150), replace=False)] *= 300.0
    return x


def cases() -> dict:
    real = np.load(HERE.parent.parent / "bench" / "data" / "smollm2_l15.npy")
    big = np.zeros((2, 40))
    big[1, :5] = [1e15, -3e9, 7.0, -1.0, 2.0**52]
    big_t = big.copy()
    big_t[1, :5] = [1e15, -3e9, 7.0, -1.0, 2.0**50 + 3]  # a trellis row: |x| / Δ below 2^52
    return {
        # real SmolLM2 hidden states after layer 15: prefill rows 0-15 (the first carries the
        # massive activations), then three generated-token rows
        "f32_smollm2_l15": (real[:16], real[16:19], (576,), 1.0, 128, None, 1),
        # the same rows with two interleaved rANS states
        "f32_smollm2_l15_k2": (real[:16], real[16:19], (576,), 1.0, 128, None, 2),
        "f16_7": (
            llm_rows(1, 4, 7).astype(np.float16),
            llm_rows(2, 2, 7).astype(np.float16),
            (7,),
            0.25,
            96,
            (-5, 3),
            1,
        ),
        "bf16_3x5": (
            llm_rows(3, 3, 15).reshape(3, 3, 5).astype(ml_dtypes.bfloat16),
            llm_rows(4, 2, 15).reshape(2, 3, 5).astype(ml_dtypes.bfloat16),
            (3, 5),
            0.5,
            128,
            None,
            1,
        ),
        "f64_1": (
            np.array([[0.3], [-2.5], [11.0]]),
            np.array([[-0.7], [123.456]]),
            (1,),
            0.125,
            64,
            None,
            2,
        ),
        "f64_unseen": (big[:1], big[1:], (40,), 1.0, 128, None, 4),
        # class maps (§18): the real rows with 8 classes; an odd row (padding nibble) with 3;
        # the smallest map (2 classes of a 2-element row); bfloat16 rows of 3 x 5 with 16
        "f32_smollm2_l15_c8": (real[:16], real[16:19], (576,), 1.0, 128, None, 2, 8),
        "f16_7_c3": (
            llm_rows(7, 4, 7).astype(np.float16),
            llm_rows(8, 2, 7).astype(np.float16),
            (7,),
            0.25,
            128,
            None,
            1,
            3,
        ),
        "f64_2_c2": (
            np.array([[0.3, 40.0], [-2.5, -61.0], [11.0, 7.0]]),
            np.array([[-0.7, 100.0], [123.456, 0.0]]),
            (2,),
            0.125,
            64,
            None,
            2,
            2,
        ),
        "bf16_3x5_c15": (
            llm_rows(9, 6, 15).reshape(6, 3, 5).astype(ml_dtypes.bfloat16),
            llm_rows(10, 2, 15).reshape(2, 3, 5).astype(ml_dtypes.bfloat16),
            (3, 5),
            0.5,
            128,
            None,
            4,
            15,
        ),
        "f32_8192": (
            llm_rows(5, 1, 8192).astype(np.float32),
            llm_rows(6, 1, 8192).astype(np.float32),
            (8192,),
            0.5,
            128,
            None,
            4,
        ),
        # trellis contexts (§17.4): the real rows with one table pair and with 8 classes; fixed
        # offsets and one state; magnitudes up to 2^50 under a context calibrated on zeros;
        # bfloat16 rows with 15 classes and four states
        "f32_smollm2_l15_t": (real[:16], real[16:19], (576,), 0.5, 0, None, 2, 1, 0.34),
        "f32_smollm2_l15_c8_t": (real[:16], real[16:19], (576,), 0.5, 0, None, 2, 8, 0.34),
        "f16_7_t": (
            llm_rows(1, 4, 7).astype(np.float16),
            llm_rows(2, 2, 7).astype(np.float16),
            (7,),
            0.125,
            0,
            (-5, 3, 2, -4),
            1,
            1,
            0.5,
        ),
        "f64_unseen_t": (big[:1], big_t[1:], (40,), 1.0, 0, None, 4, 1, 0.34),
        "bf16_3x5_c15_t": (
            llm_rows(9, 6, 15).reshape(6, 3, 5).astype(ml_dtypes.bfloat16),
            llm_rows(10, 2, 15).reshape(2, 3, 5).astype(ml_dtypes.bfloat16),
            (3, 5),
            0.25,
            0,
            None,
            4,
            15,
            0.25,
        ),
    }


def to_disk(x: np.ndarray) -> np.ndarray:
    return x.view("<u2") if x.dtype == ml_dtypes.bfloat16 else x


def main() -> int:
    OUT.mkdir(parents=True, exist_ok=True)
    for name, case in cases().items():
        calib, rows, row_shape, step, rho_256, offsets, states = case[:7]
        classes = case[7] if len(case) > 7 else 1
        lam = case[8] if len(case) > 8 else None
        if calib.dtype == np.float64 and name.startswith("f32"):
            calib, rows = calib.astype(np.float32), rows.astype(np.float32)
        ctx = rf.build_context(
            calib,
            row_shape=row_shape,
            step=step,
            rho_256=rho_256,
            offsets=offsets,
            states=states,
            classes=classes,
            trellis=lam,
        )
        (OUT / f"{name}.ctx").write_bytes(ctx.data)
        np.save(OUT / f"{name}_calib.npy", to_disk(calib))
        np.save(OUT / f"{name}_rows.npy", to_disk(rows))
        for k, row in enumerate(rows):
            (OUT / f"{name}_{k}.frame").write_bytes(rf.encode_frame(ctx, row, k))
        meta = {
            "dtype": NAMES[np.dtype(calib.dtype)],
            "row_shape": list(row_shape),
            "step": float(np.float32(step)),
            "rho_256": rho_256,
            "offsets": None if offsets is None else list(offsets),
            "states": states,
            "frames": len(rows),
        }
        if classes > 1:
            meta["classes"] = classes
        if lam is not None:
            meta["trellis"] = lam
        (OUT / f"{name}.json").write_text(json.dumps(meta, indent=1) + "\n")
        print(name, len(ctx.data), [len(rf.encode_frame(ctx, r, 0)) for r in rows])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
