"""A small real ONNX model for smoke tests of the serving path (seconds, no model package).

``x`` [1, 256] float32 → MatMul + bias + Relu (the cut: ``h1``) → MatMul + bias + Relu →
Reshape [1, -1] → MatMul → logits [1, 10] × ``scale`` (an int64 side input that crosses the
cut raw). Weights are seeded Gaussians; the fixed leading 1s (input shapes and the Reshape
constant) are what exported models look like, so batching has to rewrite them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

TOY_CUT = "h1"
WIDTH = 256
CLASSES = 10


def toy_model(seed: int = 0) -> onnx.ModelProto:
    rng = np.random.default_rng(seed)

    def w(name: str, *shape: int) -> onnx.TensorProto:
        scale = 1.0 / np.sqrt(shape[0]) if len(shape) == 2 else 0.1
        return numpy_helper.from_array(
            (rng.standard_normal(shape) * scale).astype(np.float32), name
        )

    inits = [
        w("w1", WIDTH, WIDTH),
        w("b1", WIDTH),
        w("w2", WIDTH, WIDTH),
        w("b2", WIDTH),
        w("w3", WIDTH, CLASSES),
        numpy_helper.from_array(np.array([1, -1], dtype=np.int64), "flat"),
    ]
    nodes = [
        helper.make_node("MatMul", ["x", "w1"], ["m1"]),
        helper.make_node("Add", ["m1", "b1"], ["a1"]),
        helper.make_node("Relu", ["a1"], ["h1"]),
        helper.make_node("MatMul", ["h1", "w2"], ["m2"]),
        helper.make_node("Add", ["m2", "b2"], ["a2"]),
        helper.make_node("Relu", ["a2"], ["h2"]),
        helper.make_node("Reshape", ["h2", "flat"], ["f2"]),
        helper.make_node("MatMul", ["f2", "w3"], ["raw_logits"]),
        helper.make_node("Cast", ["scale"], ["scale_f"], to=TensorProto.FLOAT),
        helper.make_node("Mul", ["raw_logits", "scale_f"], ["logits"]),
    ]
    graph = helper.make_graph(
        nodes,
        "slicer_toy",
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, WIDTH]),
            helper.make_tensor_value_info("scale", TensorProto.INT64, [1, 1]),
        ],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, CLASSES])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def save_toy(path: str | Path, seed: int = 0) -> Path:
    path = Path(path)
    onnx.save(toy_model(seed), str(path))
    return path


def toy_inputs(seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "x": rng.standard_normal((1, WIDTH)).astype(np.float32),
        "scale": np.array([[1 + seed % 3]], dtype=np.int64),
    }
