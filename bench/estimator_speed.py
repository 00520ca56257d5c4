"""CPU cost of applying the decoder-side estimator (slicer.split.estimator) against the tail it
runs before, one input at a time, BLAS and ONNX Runtime on one thread, CPU time of the calling
thread (median of --repeat calls, interleaved).

    python bench/estimator_speed.py [--blas-threads 0]

Cuts: EfficientNet-Lite0 after blocks 4 and 10 (3 x 3 'map' estimator), MiniLM after layer 3
(a 36-token sentence, 'rows' estimator). Weights are random (the cost does not depend on
them). ``apply`` runs the estimator as a one-node ONNX Runtime graph; the two NumPy variants
it replaced are kept here as baselines: one (pixels, C) x (C, C) product per tap, and one
(pixels, 9·C) regressor matrix with one product.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from threadpoolctl import threadpool_limits

from slicer.split import SplitModel, zoo
from slicer.split.estimator import CutEstimator


def numpy_apply(est: CutEstimator, y: np.ndarray) -> np.ndarray:
    """The NumPy implementation before ONNX Runtime: one (pixels, C) × (C, C) product per tap."""
    c, h, w = y.shape[-3:]
    k, r = est.window, est.window // 2
    pixels = np.ascontiguousarray(y.reshape(-1, c, h, w).transpose(0, 2, 3, 1), np.float32)
    padded = np.pad(pixels, ((0, 0), (r, r), (r, r), (0, 0)))
    out = np.empty(pixels.shape, np.float32)
    out[...] = est.bias
    flat = out.reshape(-1, c)
    for t in range(k * k):
        dy, dx = divmod(t, k)
        shifted = np.ascontiguousarray(padded[:, dy : dy + h, dx : dx + w, :])
        flat += shifted.reshape(-1, c) @ est.weights[t * c : (t + 1) * c]
    return np.ascontiguousarray(out.transpose(0, 3, 1, 2)).reshape(y.shape)


def taps_matrix_apply(est: CutEstimator, y: np.ndarray) -> np.ndarray:
    """The first NumPy implementation: the (pixels, window² · C) regressors, one product."""
    c, h, w = y.shape[-3:]
    k, r = est.window, est.window // 2
    p = np.pad(y.reshape(-1, c, h, w), ((0, 0), (0, 0), (r, r), (r, r)))
    taps = np.empty((p.shape[0], h, w, k * k, c), np.float32)
    for dy in range(k):
        for dx in range(k):
            taps[:, :, :, dy * k + dx, :] = p[:, :, dy : dy + h, dx : dx + w].transpose(0, 2, 3, 1)
    out = taps.reshape(-1, k * k * c) @ est.weights + est.bias
    return np.ascontiguousarray(out.reshape(-1, h, w, c).transpose(0, 3, 1, 2)).reshape(y.shape)


def cpu_ms(fn, repeat: int) -> list[float]:  # noqa: ANN001
    out = []
    for _ in range(repeat):
        t = time.thread_time()
        fn()
        out.append(1e3 * (time.thread_time() - t))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--repeat", type=int, default=200)
    ap.add_argument(
        "--blas-threads", type=int, default=1, help="BLAS threads (0: the library's default)"
    )
    a = ap.parse_args()
    rng = np.random.default_rng(0)
    cases = []
    eff = zoo.model_path("efficientnet-lite0")
    for cut in ("/_blocks.4/Add_output_0", "/_blocks.9/Add_output_0"):
        split = SplitModel(eff, cut, providers="cpu", threads=1)
        x = split.run_head({"image": rng.standard_normal((1, 3, 224, 224)).astype(np.float32)})
        cases.append((f"effnet {cut.split('/')[1]}", split, x, cut, 3))
    mini = "/layer.3/output/LayerNorm/LayerNormalization_output_0"
    split = SplitModel(zoo.model_path("minilm"), mini, providers="cpu", threads=1)
    tok = zoo.minilm_tokenizer()
    enc = tok(zoo.prose_sentences(1)[0], return_tensors="np", truncation=True, max_length=128)
    x = split.run_head({k: enc[k].astype(np.int64) for k in ("input_ids", "attention_mask")})
    cases.append(("minilm layer.3", split, x, mini, 1))
    with threadpool_limits(a.blas_threads or None):
        for label, split, values, name, window in cases:
            y = values[name]
            layout = "map" if y.ndim == 4 else "rows"
            c = y.shape[-3] if layout == "map" else y.shape[-1]
            est = CutEstimator(
                rng.standard_normal((window * window * c, c)).astype(np.float32) * 0.01,
                rng.standard_normal(c),
                layout=layout,
                window=window,
            )
            fns = {
                "apply": lambda est=est, y=y: est.apply(y),
                "tail": lambda split=split, values=values: split.run_tail(values),
            }
            if layout == "map":
                fns["numpy per tap"] = lambda est=est, y=y: numpy_apply(est, y)
                fns["taps matrix"] = lambda est=est, y=y: taps_matrix_apply(est, y)
                for k in ("numpy per tap", "taps matrix"):
                    np.testing.assert_allclose(fns[k](), est.apply(y), rtol=1e-4, atol=1e-4)
            times: dict[str, list[float]] = {k: [] for k in fns}
            for _ in range(a.repeat // 10):  # interleaved blocks of 10 calls
                for k, fn in fns.items():
                    times[k] += cpu_ms(fn, 10)
            med = {k: float(np.median(v)) for k, v in times.items()}
            line = (
                f"{label:16} {tuple(y.shape)}  apply {med['apply']:.3f} ms  tail "
                f"{med['tail']:.3f} ms  apply/tail {100 * med['apply'] / med['tail']:.1f} %"
            )
            if "taps matrix" in med:
                line += (
                    f"  (NumPy: per tap {med['numpy per tap']:.3f} ms, "
                    f"taps matrix {med['taps matrix']:.3f} ms)"
                )
            print(line, flush=True)


if __name__ == "__main__":
    main()
