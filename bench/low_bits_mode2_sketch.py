"""Mode 2 (8 class tables) with §13.6's low-bit plane, as a sketch: ideal code lengths per class
(symbols' order-0 entropy per class table, tables and map not counted) of q's symbols against
h's plus the k-bit plane, k by §13.6's rule, at the step of ``mode="dense", classes=8,
max_bytes=B·N/8``. Not a stream: mode 2 has no plane (bench/RESULTS.md §9.23).

    python bench/low_bits_mode2_sketch.py
"""

import sys

import numpy as np

sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parents[1] / "tests"))
import reference_dense as rd
import slicer


def ideal(sym, cls, K):
    bits = 0.0
    for c in range(K):
        s = sym[cls == c]
        if s.size == 0:
            continue
        h = np.bincount(s)
        p = h[h > 0] / s.size
        bits += float(-(h[h > 0] * np.log2(p)).sum())
    return bits


for name in ("smollm2_l15", "gemma3_l9", "minilm_l3"):
    x = np.load(f"bench/data/{name}.npy").astype(np.float32)
    for rate in (6, 8):
        st = slicer.inspect(
            slicer.encode(x, mode="dense", classes=8, max_bytes=int(rate * x.size / 8))
        )
        p = rd.plan(x, rd.default_params(step=st.step, classes=8, class_axis=0))
        base = ideal(p.symbols, p.cls, 8) + p.nbits.sum()
        k = rd.auto_low_bits(p.symbols)
        s2, nb2, ex2, low = rd.split_low_bits(p.m, p.negative & (p.m > 0), k)
        with_plane = ideal(s2, p.cls, 8) + nb2.sum() + k * x.size
        one = rd.plan(x, rd.default_params(step=st.step))
        one_bits = ideal(one.symbols, np.zeros(x.size, int), 1) + one.nbits.sum()
        change = 100 * (with_plane - base) / base
        print(
            f"{name} {rate} b/el: 8 classes {base / x.size:.3f} b/el "
            f"(1 table {one_bits / x.size:.3f}), k={k}: {with_plane / x.size:.3f} "
            f"({change:+.2f} %), share of h with extra bits {np.mean(nb2 > 0):.3f}"
        )
