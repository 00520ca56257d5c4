"""Plain against trellis frame contexts on real rows: bytes per frame against SNR (§13.13).

    python bench/frames_trellis_rd.py            # seconds; prints a table, writes a JSON

SmolLM2-135M hidden states after layer 15 (bench/data/smollm2_l15.npy, 384 rows of 576): a
context from the first 64 rows (8 classes, one rANS state, as the LLM path), then every other
row as a frame. Per step: mean frame bytes (framing included, no message framing) and the SNR
of the decoded rows (10 log10 of signal over error energy, the massive-activation rows
included). The gain is the trellis SNR minus the plain SNR at equal bytes, interpolated
linearly in bytes between measured plain steps.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

import slicer

HERE = Path(__file__).resolve().parent
CALIB = 64


def curve(x: np.ndarray, steps, trellis, classes: int) -> list[dict]:
    rows = x[CALIB:].astype(np.float64)
    energy = float(np.sum(rows**2))
    out = []
    for step in steps:
        enc = slicer.FrameEncoder(x[:CALIB], step=step, states=1, classes=classes, trellis=trellis)
        dec = slicer.FrameDecoder(enc.context)
        frames = [enc.encode(r) for r in x[CALIB:]]
        y = np.stack([dec.decode(f) for f in frames]).astype(np.float64)
        sse = float(np.sum((y - rows) ** 2))
        size = float(np.mean([len(f) for f in frames]))
        snr = float(10 * np.log10(energy / sse))
        out.append({"step": step, "frame_bytes": size, "snr_db": snr,
                    "context_bytes": len(enc.context)})  # fmt: skip
    return out


def main() -> int:
    x = np.load(HERE / "data" / "smollm2_l15.npy").astype(np.float32)
    res = {}
    for classes in (1, 8):
        plain = curve(x, [0.8, 1.2, 1.6, 2.0, 2.4, 3.2], False, classes)
        tcq = curve(x, [0.4, 0.6, 0.8, 1.0, 1.2, 1.6], True, classes)
        pb = np.array([p["frame_bytes"] for p in plain])[::-1]
        ps = np.array([p["snr_db"] for p in plain])[::-1]
        for t in tcq:
            b = t["frame_bytes"]
            t["gain_db"] = (
                float(t["snr_db"] - np.interp(b, pb, ps)) if pb[0] <= b <= pb[-1] else None
            )
        res[f"classes {classes}"] = {"plain": plain, "trellis": tcq}
        print(f"classes {classes}")
        for p in plain:
            print(f"  plain   q{p['step']:<4} {p['frame_bytes']:7.1f} B {p['snr_db']:6.2f} dB "
                  f"(context {p['context_bytes']} B)")  # fmt: skip
        for t in tcq:
            g = "" if t["gain_db"] is None else f"  {t['gain_db']:+.2f} dB at equal bytes"
            print(f"  trellis q{t['step']:<4} {t['frame_bytes']:7.1f} B {t['snr_db']:6.2f} dB "
                  f"(context {t['context_bytes']} B){g}")  # fmt: skip
    out = HERE / "results" / "frames_trellis_rd.json"
    out.write_text(json.dumps(res, indent=1) + "\n")
    print(f"wrote {out.relative_to(HERE.parent)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
