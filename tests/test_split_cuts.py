"""Partitioning: cut enumeration on hand-built graphs, and tail(head(x)) == full(x) on the
real models (every cut of EfficientNet-Lite0, MiniLM's simple cuts plus a fifth of the rest,
and a sample of SmolLM2's 3,520)."""

from __future__ import annotations

import pytest

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

import numpy as np  # noqa: E402
import onnx  # noqa: E402
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from slicer.split import Partitioner, SplitModel  # noqa: E402
from split_helpers.models import full_outputs, partitioner, real_inputs  # noqa: E402


def _toy_model() -> onnx.ModelProto:
    """x ─ MatMul(W) ─ a ─ Relu ─ b ─ Add(a) ─ c ─ Mul(mask) ─ y, plus a Constant feeding Mul.

    Cuts by hand (after each compute node, graph input `mask` crosses until Mul):
      after MatMul: {mask, a}; after Relu: {mask, a, b} (skip connection);
      after Add: {mask, c}. `w` (initializer) and `k` (Constant) never cross.
    """
    rng = np.random.default_rng(5)
    w = numpy_helper.from_array(rng.standard_normal((7, 5)).astype(np.float32), "w")
    nodes = [
        helper.make_node("MatMul", ["x", "w"], ["a"], name="mm"),
        helper.make_node("Relu", ["a"], ["b"], name="relu"),
        helper.make_node(
            "Constant", [], ["k"], value=numpy_helper.from_array(np.float32(2.0), "k")
        ),
        helper.make_node("Add", ["a", "b"], ["c"], name="add"),
        helper.make_node("Mul", ["k", "mask"], ["m2"], name="scale_mask"),
        helper.make_node("Mul", ["c", "m2"], ["y"], name="mul"),
    ]
    graph = helper.make_graph(
        nodes,
        "toy",
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, [3, 7]),
            helper.make_tensor_value_info("mask", TensorProto.FLOAT, [3, 5]),
        ],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [3, 5])],
        initializer=[w],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    return model


def test_toy_cuts_match_hand_enumeration() -> None:
    part = Partitioner(_toy_model())
    got = [(c.name, [t.name for t in c.tensors]) for c in part.cuts()]
    assert got == [
        ("a", ["mask", "a"]),
        ("b", ["mask", "a", "b"]),
        ("c", ["mask", "c"]),
        ("m2", ["c", "m2"]),
    ]
    cuts = part.cuts()
    assert [c.index for c in cuts] == [0, 1, 2, 3]
    assert cuts[0].head_param_bytes == 7 * 5 * 4  # W, first used by MatMul
    assert cuts[3].head_param_bytes == 7 * 5 * 4 + 4  # + the Constant k
    assert cuts[0].tensors[1].shape is not None and cuts[0].tensors[1].dtype == "float32"
    assert not any(c.single for c in cuts)


def test_toy_split_reproduces_full_model() -> None:
    part = Partitioner(_toy_model())
    rng = np.random.default_rng(11)
    inputs = {
        "x": rng.standard_normal((3, 7)).astype(np.float32),
        "mask": (rng.random((3, 5)) > 0.3).astype(np.float32),
    }
    for cut in part.cuts():
        split = SplitModel(part, cut, providers="cpu", threads=1)
        result = split.run(inputs, None)
        np.testing.assert_array_equal(result.outputs["y"], result.reference["y"])


def test_find_cut_by_name_and_index_and_errors(tmp_path) -> None:  # noqa: ANN001
    part = Partitioner(_toy_model())
    assert part.find_cut("c").index == 2
    assert part.find_cut(1).name == "b"
    assert part.find_cut("3").name == "m2"
    assert part.find_cut(-1).name == "m2"
    with pytest.raises(ValueError, match="out of range"):
        part.find_cut(4)
    with pytest.raises(ValueError, match="no cut named"):
        part.find_cut("nope")
    with pytest.raises(FileNotFoundError):
        Partitioner(tmp_path / "missing.onnx")
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x00not an onnx model")
    with pytest.raises(ValueError, match="not a readable ONNX model"):
        Partitioner(bad)


def test_extracted_pieces_are_valid_onnx() -> None:
    part = Partitioner(_toy_model())
    head, tail = part.extract("b")
    onnx.checker.check_model(head)
    onnx.checker.check_model(tail)
    assert [i.name for i in head.graph.input] == ["x", "mask"]  # mask passes through
    assert [o.name for o in head.graph.output] == ["mask", "a", "b"]
    assert [i.name for i in tail.graph.input] == ["mask", "a", "b"]
    assert [t.name for t in head.graph.initializer] == ["w"]
    assert not tail.graph.initializer  # the tail needs no weights of the head


def _assert_split_matches(name: str, cut_indices: list[int] | None = None) -> int:
    part = partitioner(name)
    inputs = real_inputs(name)
    ref = full_outputs(name)
    cuts = part.cuts() if cut_indices is None else [part.cuts()[i] for i in cut_indices]
    for cut in cuts:
        split = SplitModel(part, cut, providers="cpu", threads=2)
        result = split.run(inputs, None, reference=ref)
        for out_name, value in result.outputs.items():
            scale = float(np.max(np.abs(ref[out_name]))) or 1.0
            np.testing.assert_allclose(
                value,
                ref[out_name],
                rtol=1e-5,
                atol=1e-5 * scale,
                err_msg=f"{name} cut #{cut.index} {cut.name}",
            )
    return len(cuts)


def test_every_cut_of_efficientnet_lite0() -> None:
    assert (
        _assert_split_matches("efficientnet-lite0")
        == len(partitioner("efficientnet-lite0").cuts())
        >= 100
    )


def test_minilm_every_simple_cut_and_every_fifth_other() -> None:
    """All 164 simple cuts (hidden state + mask and shape scalars) and every 5th of the other
    186 (inside attention, several bulky tensors): session setup makes all 350 too slow."""
    cuts = partitioner("minilm").cuts()
    others = [c.index for c in cuts if not c.simple]
    sample = [c.index for c in cuts if c.simple] + others[::5]
    assert _assert_split_matches("minilm", sorted(sample)) >= 190


def test_sampled_cuts_of_smollm2_prefill() -> None:
    """SmolLM2's head/tail sessions take seconds each (540 MB of weights), so we test the
    first and last cut, every 6th layer boundary, and two mid-layer multi-tensor cuts."""
    part = partitioner("smollm2")
    cuts = part.cuts()
    boundaries = [
        c.index
        for c in cuts
        if c.simple and "/add_" in c.name and c.name.startswith("/model.layers.")
    ]
    multi = [c.index for c in cuts if len(c.tensors) >= 4]
    sample = sorted({0, len(cuts) - 1, *boundaries[::12], multi[0], multi[len(multi) // 2]})
    assert len(sample) >= 6
    _assert_split_matches("smollm2", sample)


def test_real_model_cut_names_are_readable() -> None:
    names = [c.name for c in partitioner("smollm2").cuts() if c.simple]
    assert any(n.startswith("/model.layers.11/") for n in names)
    eff = partitioner("efficientnet-lite0")
    cut = eff.find_cut("/_blocks.9/Add_output_0")
    assert cut.single and cut.tensors[0].shape == (1, 112, 14, 14)
    mini = partitioner("minilm")
    layer = [
        c for c in mini.cuts() if c.name == "/layer.2/output/LayerNorm/LayerNormalization_output_0"
    ]
    assert layer and layer[0].simple
    assert {"attention_mask"} <= {t.name for t in layer[0].tensors}


def test_peak_activation_memory_by_hand() -> None:
    """Liveness on the toy graph (float32 tensors: x 3x7 = 84 B, every other one 3x5 = 60 B).

    mm: x, mask, a = 204 | relu: mask, a, b = 180 | add: mask, a, b, c = 240 |
    scale_mask: mask, c, m2 = 180 | mul: c, m2, y = 180. A head ending at node i peaks at the
    running maximum; the Constant (node 2) changes nothing.
    """
    from slicer.split.profile import _all_tensor_sizes, _peak_activation_bytes

    part = Partitioner(_toy_model())
    inputs = {"x": np.ones((3, 7), np.float32), "mask": np.ones((3, 5), np.float32)}
    sizes = _all_tensor_sizes(part, inputs, ["CPUExecutionProvider"], 1)
    assert sizes["a"] == ((3, 5), "float32")
    assert _peak_activation_bytes(part, sizes) == {0: 204, 1: 204, 2: 204, 3: 240, 4: 240, 5: 240}
