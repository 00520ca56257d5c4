"""Calibration (`slicer calibrate`, `slicer.split.calibrate`), settings files, the planner's
fidelity constraint and dynamic input shapes, on a small hand-built ONNX classifier (runs in
seconds); the shipped models and third-party ONNX models are in test_split_calibrate_models.py.
"""

from __future__ import annotations

import json
import math

import pytest

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

import numpy as np  # noqa: E402
import onnx  # noqa: E402
from hypothesis import given  # noqa: E402
from hypothesis import settings as hypothesis_settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from slicer.cli import main  # noqa: E402
from slicer.split import Partitioner  # noqa: E402
from slicer.split.calibrate import (  # noqa: E402
    TopKFamily,
    _CutEvaluator,
    aggregate,
    bootstrap_interval,
    calibrate,
    output_for,
    sample_stats,
    split_indices,
)
from slicer.split.datasets import (  # noqa: E402
    Samples,
    image_samples,
    input_shapes,
    npz_samples,
    parse_shapes,
    random_samples,
)
from slicer.split.link import Link  # noqa: E402
from slicer.split.planner import Budget, plan  # noqa: E402
from slicer.split.settings import (  # noqa: E402
    Target,
    check_model,
    fingerprint,
    load_settings,
    parse_target,
    save_settings,
    validate_settings,
)
from slicer.split.transport import CodecParams  # noqa: E402

HIDDEN = 96


def _mlp(seed: int = 0, batch: int | str = 1) -> onnx.ModelProto:
    """x [batch, 16] -> 96 -> relu -> 96 -> relu -> 10 logits (random, fixed seed)."""
    rng = np.random.default_rng(seed)
    w1 = rng.standard_normal((16, HIDDEN)).astype(np.float32) / 4
    w2 = rng.standard_normal((HIDDEN, HIDDEN)).astype(np.float32) / 10
    w3 = rng.standard_normal((HIDDEN, 10)).astype(np.float32) / 10
    nodes = [
        helper.make_node("MatMul", ["x", "w1"], ["h1"]),
        helper.make_node("Relu", ["h1"], ["a1"]),
        helper.make_node("MatMul", ["a1", "w2"], ["h2"]),
        helper.make_node("Relu", ["h2"], ["a2"]),
        helper.make_node("MatMul", ["a2", "w3"], ["logits"]),
    ]
    graph = helper.make_graph(
        nodes,
        "mlp",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 16])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [batch, 10])],
        initializer=[
            numpy_helper.from_array(w1, "w1"),
            numpy_helper.from_array(w2, "w2"),
            numpy_helper.from_array(w3, "w3"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return onnx.shape_inference.infer_shapes(model)


@pytest.fixture(scope="module")
def mlp_path(tmp_path_factory) -> str:  # noqa: ANN001
    path = tmp_path_factory.mktemp("mlp") / "mlp.onnx"
    onnx.save(_mlp(), str(path))
    return str(path)


@pytest.fixture(scope="module")
def dyn_path(tmp_path_factory) -> str:  # noqa: ANN001
    path = tmp_path_factory.mktemp("mlp") / "mlp_dyn.onnx"
    onnx.save(_mlp(batch="batch"), str(path))
    return str(path)


def _samples(n: int, seed: int = 1) -> list[dict[str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    return [{"x": rng.standard_normal((1, 16)).astype(np.float32)} for _ in range(n)]


SMALL_TOPK = TopKFamily(bits=(8, 4), sparsities=(0.0, 0.3, 0.6, 0.8, 0.9))


# ------------------------------------------------------------------------------ targets


def test_parse_target_forms_and_errors() -> None:
    assert parse_target("agreement:0.99") == Target("agreement", 0.99)
    assert parse_target("agreement:99%").value == pytest.approx(0.99)
    assert parse_target("ppl:+2%").value == pytest.approx(0.02)
    assert parse_target("REL-L2:0.05") == Target("rel_l2", 0.05)
    assert not Target("kl", 0.1).higher_is_better and Target("cosine", 0.9).higher_is_better
    with pytest.raises(ValueError, match="METRIC:VALUE"):
        parse_target("agreement")
    with pytest.raises(ValueError, match="unknown metric 'top5'"):
        parse_target("top5:0.9")
    with pytest.raises(ValueError, match="not a number"):
        parse_target("cosine:high")
    with pytest.raises(ValueError, match=r"agreement target must be in \[0, 1\]"):
        parse_target("agreement:99")
    with pytest.raises(ValueError, match="kl target must be ≥ 0"):
        parse_target("kl:-1")


# ------------------------------------------------------------------------------ metrics


def _ref_kl(p_logits: np.ndarray, q_logits: np.ndarray) -> float:
    def softmax(z: np.ndarray) -> np.ndarray:
        e = np.exp(z - z.max(-1, keepdims=True))
        return e / e.sum(-1, keepdims=True)

    p, q = softmax(p_logits.astype(np.float64)), softmax(q_logits.astype(np.float64))
    return float(np.mean(np.sum(p * np.log(p / q), axis=-1)))


@given(st.integers(0, 2**31 - 1), st.integers(1, 6), st.integers(2, 9))
def test_metrics_match_direct_formulas(seed: int, rows: int, classes: int) -> None:
    rng = np.random.default_rng(seed)
    ref = rng.standard_normal((2, rows, classes)).astype(np.float32)
    got = (ref + rng.standard_normal(ref.shape) * 0.5).astype(np.float32)
    agree = sample_stats("agreement", ref, got)
    direct = np.mean(ref.reshape(-1, classes).argmax(-1) == got.reshape(-1, classes).argmax(-1))
    assert agree[1] == 2 * rows and aggregate("agreement", agree) == pytest.approx(direct)
    kl = sample_stats("kl", ref, got)
    assert aggregate("kl", kl) == pytest.approx(
        _ref_kl(ref.reshape(-1, classes), got.reshape(-1, classes)), rel=1e-9, abs=1e-12
    )
    r, g = ref.astype(np.float64).ravel(), got.astype(np.float64).ravel()
    assert aggregate("rel_l2", sample_stats("rel_l2", ref, got)) == pytest.approx(
        np.linalg.norm(g - r) / np.linalg.norm(r)
    )
    assert aggregate("cosine", sample_stats("cosine", ref, got)) == pytest.approx(
        r @ g / np.linalg.norm(r) / np.linalg.norm(g)
    )


def test_kl_of_softmax_outputs_reads_them_as_probabilities() -> None:
    rng = np.random.default_rng(3)
    logits = rng.standard_normal((5, 7))
    probs = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    noisy = logits + rng.standard_normal(logits.shape) * 0.3
    qprobs = np.exp(noisy) / np.exp(noisy).sum(-1, keepdims=True)
    direct = _ref_kl(logits, noisy)
    assert aggregate("kl", sample_stats("kl", probs, qprobs)) == pytest.approx(direct, rel=1e-6)


def test_ppl_is_relative_perplexity_change_over_all_tokens() -> None:
    rng = np.random.default_rng(5)
    vocab, tokens = 11, 9
    stats = []
    nll_ref = nll_got = count = 0.0
    for _ in range(3):
        ids = rng.integers(0, vocab, size=(1, tokens))
        ref = rng.standard_normal((1, tokens, vocab))
        got = ref + rng.standard_normal(ref.shape) * 0.4
        stats.append(sample_stats("ppl", ref, got, {"input_ids": ids}))
        for logits, acc in ((ref, "r"), (got, "g")):
            lp = logits[0] - np.log(np.exp(logits[0]).sum(-1, keepdims=True))
            nll = -sum(lp[t, ids[0, t + 1]] for t in range(tokens - 1))
            if acc == "r":
                nll_ref += nll
            else:
                nll_got += nll
        count += tokens - 1
    expected = np.exp(nll_got / count) / np.exp(nll_ref / count) - 1
    assert aggregate("ppl", np.sum(stats, axis=0)) == pytest.approx(expected, rel=1e-9)
    with pytest.raises(ValueError, match="token ids"):
        sample_stats("ppl", np.zeros((1, 3, 4)), np.zeros((1, 3, 4)), {"x": np.zeros((1, 3))})


def test_bootstrap_interval_brackets_and_degenerates() -> None:
    per = np.array([[1.0, 1.0]] * 20)
    assert bootstrap_interval("agreement", per) == (1.0, 1.0)
    rng = np.random.default_rng(0)
    per = np.stack([rng.random(200) * 0.1, np.ones(200)], axis=1)
    lo, hi = bootstrap_interval("rel_l2", per)
    mean = per[:, 0].mean()
    assert lo < mean < hi and hi - lo < 0.02


def test_split_indices_partition_and_seed() -> None:
    calib, hold = split_indices(200, 0.3, 0)
    assert len(hold) == 60 and sorted(calib + hold) == list(range(200))
    assert split_indices(200, 0.3, 0) == (calib, hold)
    assert split_indices(200, 0.3, 1) != (calib, hold)
    assert split_indices(5, 0.0, 0) == ([0, 1, 2, 3, 4], [0, 1, 2, 3, 4])
    assert len(split_indices(3, 0.01, 0)[1]) == 1


@hypothesis_settings(max_examples=200, deadline=None)
@given(
    st.lists(st.integers(1, 12), min_size=2, max_size=30),
    st.sampled_from([0.01, 0.1, 0.3, 0.5, 0.9]),
    st.integers(0, 5),
    st.booleans(),
)
def test_grouped_split_never_puts_a_group_on_both_sides(sizes, holdout, seed, shuffle) -> None:  # noqa: ANN001
    # Group k has sizes[k] members; labels are strings, interleaved or contiguous.
    labels = [f"photo{k}" for k, size in enumerate(sizes) for _ in range(size)]
    if shuffle:
        labels = [labels[i] for i in np.random.default_rng(seed).permutation(len(labels))]
    n = len(labels)
    calib, hold = split_indices(n, holdout, seed, labels)
    assert sorted(calib + hold) == list(range(n)) and calib and hold
    assert not {labels[i] for i in calib} & {labels[i] for i in hold}
    # Groups are added until the held-out side reaches its share, never all of them.
    want = max(1, round(holdout * n))
    held_groups = {labels[i] for i in hold}
    assert len(hold) >= want or len(held_groups) == len(sizes) - 1
    assert split_indices(n, holdout, seed, labels) == (calib, hold)
    # Groups stop being added once the share is reached: without the last group added (at
    # most the largest held-out one) the held-out side was still short of it.
    largest = max(sum(1 for i in hold if labels[i] == g) for g in held_groups)
    assert len(hold) - largest < want


def test_grouped_split_rejects_bad_groups() -> None:
    with pytest.raises(ValueError, match="groups: 3 labels for 4"):
        split_indices(4, 0.3, 0, [0, 0, 1])
    with pytest.raises(ValueError, match="at least 2 groups"):
        split_indices(4, 0.3, 0, [7, 7, 7, 7])
    # Singleton groups behave like the plain split's sizes.
    calib, hold = split_indices(200, 0.3, 0, list(range(200)))
    assert len(hold) == 60 and len(calib) == 140
    with pytest.raises(ValueError, match="groups: 1 labels for 2 samples"):
        Samples([{}, {}], groups=[0])


# ------------------------------------------------------------------------------ search


def _evaluator(path: str, targets: list[Target], n: int = 24) -> tuple[_CutEvaluator, list[int]]:
    from slicer.split.providers import make_session

    part = Partitioner(path)
    samples = _samples(n)
    full = make_session(part.model, ["CPUExecutionProvider"], 1, part.external_dir)
    refs = [{"logits": full.run(["logits"], s)[0]} for s in samples]
    outputs = {t.metric: output_for(t.metric, refs[0], None) for t in targets}
    cut = part.find_cut("a1")
    ev = _CutEvaluator(part, cut, samples, refs, targets, outputs, ["CPUExecutionProvider"], 1)
    return ev, list(range(n))


@hypothesis_settings(max_examples=20)  # each example builds ORT sessions
@given(
    st.sampled_from([0.0, 0.3, 0.6, 0.8, 0.9, 0.97]),
    st.sampled_from([2, 4, 8]),
    st.sampled_from(
        ["agreement:0.9", "agreement:1", "cosine:0.995", "kl:0.001", "rel_l2:0.05", "kl:0"]
    ),
)
def test_early_stop_gives_the_same_verdict(mlp_path, sparsity, bits, target) -> None:  # noqa: ANN001
    ev, idx = _evaluator(mlp_path, [parse_target(target)])
    params = CodecParams(sparsity=sparsity, bits=bits, delta=0.0)
    fast, _ = ev.evaluate(params, idx, early_stop=True)
    full, _ = ev.evaluate(params, idx, early_stop=False)
    assert fast.passed == full.passed
    assert full.complete
    if fast.complete:
        assert fast.metrics == pytest.approx(full.metrics)


def test_calibrate_picks_the_cheapest_passing_setting(mlp_path, tmp_path) -> None:  # noqa: ANN001
    settings = calibrate(
        mlp_path,
        ["agreement:0.9", "kl:0.05"],
        _samples(40),
        split="a1",
        holdout=0.25,
        families=[SMALL_TOPK],
        model_name="mlp",
    )
    assert settings["slicer_settings"] == 1
    (entry,) = settings["cuts"]
    assert entry["name"] == "a1" and entry["status"] in ("ok", "interval-misses")
    eligible = [p for p in entry["trace"] if p.get("eligible")]
    assert entry["bits_per_element"] == min(p["bits_per_element"] for p in eligible)
    assert all(p["complete"] and p["passed"] for p in eligible)
    # The chosen setting really meets the targets on the calibration split ...
    assert entry["calibration"]["agreement"] >= 0.9 and entry["calibration"]["kl"] <= 0.05
    # ... and the held-out numbers come with an interval around them.
    for metric, h in entry["holdout"].items():
        assert h["low"] <= h["value"] <= h["high"], metric
    assert settings["data"]["calibration"] == 30 and settings["data"]["holdout_count"] == 10
    path = tmp_path / "s.json"
    save_settings(settings, path)
    again = load_settings(path)
    assert again["cuts"][0]["params"] == entry["params"]
    assert again["model"]["fingerprint"] == fingerprint(Partitioner(mlp_path).model)


def test_backoff_keeps_a_knob_step_of_margin(mlp_path) -> None:  # noqa: ANN001
    grid = (0.0, 0.3, 0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95)
    fam = [TopKFamily(bits=(8,), sparsities=grid)]
    kw = dict(split="a1", holdout=0.25, families=fam, guard=1.0)
    cheapest = calibrate(mlp_path, "cosine:0.99", _samples(24), backoff=0, **kw)["cuts"][0]
    margin = calibrate(mlp_path, "cosine:0.99", _samples(24), backoff=1, **kw)["cuts"][0]
    passing = [p for p in cheapest["trace"] if p["passed"]]
    assert cheapest["params"]["sparsity"] == max(p["params"]["sparsity"] for p in passing)
    s0 = grid.index(cheapest["params"]["sparsity"])
    assert margin["params"]["sparsity"] == grid[max(0, s0 - 1)]
    with pytest.raises(ValueError, match="backoff"):
        calibrate(mlp_path, "cosine:0.99", _samples(4), backoff=-1, **kw)


@pytest.mark.parametrize(
    ("passes", "backoff", "expected"),
    [
        ("TTTFFF", 1, 1),  # monotone: one step more generous than the cheapest passing (2)
        ("TTTFFF", 0, 2),
        ("TTFTFF", 1, 1),  # bisection lands on 3; 2 fails, so the pick moves on to 1
        ("TFFTFF", 1, 0),  # only the most generous passes below the landing point
        ("TTTTTT", 2, 3),
        ("TFFFFF", 1, 0),
    ],
)
def test_bisect_backoff_skips_failing_settings(passes, backoff, expected) -> None:  # noqa: ANN001
    from slicer.split.calibrate import Point, _bisect

    grid = [CodecParams(sparsity=0.1 * k) for k in range(len(passes))]
    calls = []

    def evaluate(params):  # noqa: ANN001, ANN202
        k = grid.index(params)
        calls.append(k)
        return Point(params, 10.0 - k, 0.0, 0, {}, passes[k] == "T", True)

    evaluate.backoff = backoff
    got = _bisect(evaluate, grid)
    assert got is not None and got.chosen and got.passed
    assert grid.index(got.params) == expected
    # The pick passes and is at least ``backoff`` steps more generous than where the
    # bisection landed; every setting between them that was tried failed.
    assert len(calls) == len(set(calls))  # no setting is evaluated twice


# A settings file written before class tables and the refined knob (the shipped MiniLM file of
# 2026-12-01, one cut, trace left out): no "classes" in params, no "refine" in data.
OLD_SETTINGS = {
    "slicer_settings": 1,
    "model": {"name": "minilm", "fingerprint": "sha256:" + "ab" * 32},
    "targets": [{"metric": "cosine", "value": 0.99}],
    "data": {"source": "shakespeare", "count": 150, "calibration": 105, "holdout": 0.3,
             "holdout_count": 45, "seed": 0, "guard": 0.5, "backoff": 1},
    "codec": {"families": ["dense", "topk", "auto"], "slicer_version": "0.1.0"},
    "cuts": [{
        "index": 88, "name": "/layer.0/output/LayerNorm/LayerNormalization_output_0",
        "raw_bytes": 56832, "status": "ok",
        "params": {"sparsity": 0.9, "blocks": 3, "bits": 8, "delta": 0.01, "asym": 0.0,
                   "seed": 0, "groups": "tensor", "mode": "dense",
                   "rel_step": 0.31697863849222285},
        "bits_per_element": 3.659019466988654, "payload_bytes": 6502.2,
        "payload_bytes_max": 12290, "calibration": {"cosine": 0.998},
        "holdout": {"cosine": {"value": 0.99831, "low": 0.99818, "high": 0.99843}},
    }],
}  # fmt: skip


def test_fine_grid_keeps_the_coarse_points_and_splits_each_step_evenly() -> None:
    from slicer.split.calibrate import DENSE_REL_STEPS, fine_grid

    for refine in (0, 1, 2, 3):
        grid = fine_grid(DENSE_REL_STEPS, refine)
        n = 2**refine
        assert len(grid) == (len(DENSE_REL_STEPS) - 1) * n + 1
        assert grid[::n] == pytest.approx(DENSE_REL_STEPS, rel=1e-12)
        ratios = np.diff(np.log(grid))
        assert ratios == pytest.approx(np.log(DENSE_REL_STEPS[1] / DENSE_REL_STEPS[0]) / n)
    assert fine_grid([0.5], 2) == [0.5]
    with pytest.raises(ValueError, match="refine"):
        fine_grid(DENSE_REL_STEPS, -1)
    with pytest.raises(ValueError, match="positive"):
        fine_grid([0.0, 1.0], 1)


@hypothesis_settings(max_examples=200, deadline=None)
@given(
    st.floats(1e-3, 4.0),
    st.integers(0, 4),
    st.integers(0, 2),
    st.integers(2, 20),
)
def test_refined_bisection_finds_a_monotone_boundary_within_one_fine_step(
    threshold, refine, backoff, coarse_n
) -> None:  # noqa: ANN001
    """A toy metric that passes iff rel_step ≤ threshold: the refined bisection lands on the
    last passing fine point (within one fine step of the boundary), backs off ``backoff``
    fine steps, and costs a coarse bisection plus ``refine`` evaluations."""
    from slicer.split.calibrate import Point, _bisect, fine_grid

    coarse = list(np.geomspace(0.002, 2.0, coarse_n))
    grid = fine_grid(coarse, refine)
    params = [CodecParams(mode="dense", rel_step=r, classes="auto") for r in grid]
    calls = []

    def evaluate(p):  # noqa: ANN001, ANN202
        calls.append(p.rel_step)
        return Point(p, 10.0 / p.rel_step, 0.0, 0, {}, p.rel_step <= threshold, True)

    evaluate.backoff = backoff
    got = _bisect(evaluate, params, stride=2**refine)
    passing = [i for i, r in enumerate(grid) if r <= threshold]
    if not passing:
        assert got is None and calls == [grid[0]]
        return
    last = passing[-1]
    assert got is not None and got.chosen and got.passed
    assert grid.index(got.params.rel_step) == max(0, last - backoff)
    # The boundary: the last passing fine point is within one fine step of the threshold.
    fine_step = (coarse[1] / coarse[0]) ** (1 / 2**refine)
    assert grid[last] <= threshold
    assert last == len(grid) - 1 or threshold < grid[last] * fine_step * (1 + 1e-12)
    assert len(calls) == len(set(calls))
    assert len(calls) <= 1 + math.ceil(math.log2(coarse_n)) + refine + 1


def test_refined_bisection_is_deterministic_and_matches_the_coarse_one(mlp_path) -> None:  # noqa: ANN001
    from slicer.split.calibrate import DenseFamily

    kw = dict(split="a1", holdout=0.25, families=[DenseFamily()], guard=1.0)
    runs = [calibrate(mlp_path, "cosine:0.999", _samples(32), **kw) for _ in range(2)]
    for r in runs:
        for c in r["cuts"]:
            c.pop("search_seconds"), c.pop("search_cpu_seconds")
        r.pop("seconds")
    assert runs[0] == runs[1]
    fine = runs[0]["cuts"][0]
    assert runs[0]["data"]["refine"] == 2
    coarse = calibrate(mlp_path, "cosine:0.999", _samples(32), refine=0, backoff=0, **kw)
    coarse_pick = coarse["cuts"][0]["params"]["rel_step"]
    # Without back-off the refined pick is at least the coarse pick and less than one coarse
    # step above it; with one fine step of back-off it costs no more than the coarse one
    # with one coarse step of back-off.
    cheapest = calibrate(mlp_path, "cosine:0.999", _samples(32), backoff=0, **kw)["cuts"][0]
    assert coarse_pick <= cheapest["params"]["rel_step"] < coarse_pick * 1.585
    old = calibrate(mlp_path, "cosine:0.999", _samples(32), refine=0, **kw)["cuts"][0]
    assert fine["bits_per_element"] <= old["bits_per_element"]
    for bad in (-1, 7, 1.5, True):
        with pytest.raises(ValueError, match="refine"):
            calibrate(mlp_path, "cosine:0.999", _samples(4), refine=bad, **kw)


def test_dense_classes_are_recorded_and_honoured(mlp_path, tmp_path) -> None:  # noqa: ANN001
    """The dense family searches with class tables; one table is tried at the pick and wins
    when its streams are smaller (16 tables for 96 values cost more than they save). The
    settings file records the tables and a run from it encodes with them."""
    import slicer
    from slicer.split.calibrate import DenseFamily
    from slicer.split.settings import params_from_json, settings_for_cut
    from slicer.split.transport import encode_values

    kw = dict(split="a1", holdout=0.25, guard=1.0)
    for classes, want in (((16, None), None), ((4,), 4), (("auto",), "auto")):
        fam = DenseFamily(classes=classes)
        settings = calibrate(mlp_path, "cosine:0.999", _samples(24), families=[fam], **kw)
        entry = settings["cuts"][0]
        assert entry["params"].get("classes") == want
        traced = [p["params"].get("classes") for p in entry["trace"]]
        assert traced[0] == classes[0] and set(traced) <= set(classes)
        assert (None in traced) == (None in classes)  # one table tried (and won) at the pick
        path = tmp_path / "s.json"
        save_settings(settings, path)
        params = params_from_json(settings_for_cut(load_settings(path), "a1")["params"])
        assert params.classes == want
        ev, _ = _evaluator(mlp_path, [parse_target("cosine:0.999")], n=2)
        x = ev.cut_values[0]["a1"]
        packet = encode_values({"a1": x}, params, {})
        info = slicer.inspect(packet.streams["a1"])
        if want is None:
            assert info.mode == "dense"
        if isinstance(want, int):
            assert info.mode == "dense-classes" and info.classes == want
        step = params.rel_step * float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))
        direct = slicer.encode(x, mode="dense", step=step, classes=want)
        assert packet.streams["a1"] == direct
    # The one-table variant at the pick decodes to the same values: same step, same codes.
    one = CodecParams(mode="dense", rel_step=0.1)
    many = CodecParams(mode="dense", rel_step=0.1, classes=4)
    a, b = encode_values({"a1": x}, one, {}), encode_values({"a1": x}, many, {})
    assert a.streams["a1"] != b.streams["a1"]
    assert np.array_equal(slicer.decode(a.streams["a1"]), slicer.decode(b.streams["a1"]))


def test_settings_written_before_class_tables_still_load(tmp_path) -> None:  # noqa: ANN001
    from slicer.split.settings import params_from_json, settings_for_cut

    path = tmp_path / "old.json"
    path.write_text(json.dumps(OLD_SETTINGS))
    loaded = load_settings(path)
    entry = settings_for_cut(loaded, 88)
    params = params_from_json(entry["params"])
    assert params.mode == "dense" and params.classes is None  # one table, as calibrated
    assert params.rel_step == pytest.approx(0.31697863849222285)
    assert "refine" not in loaded["data"]


def test_shipped_settings_load_and_name_their_tables() -> None:
    from slicer.split.settings import params_from_json, shipped_settings_path

    for name in ("efficientnet-lite0", "minilm", "smollm2"):
        settings = load_settings(shipped_settings_path(name))
        for c in settings["cuts"]:
            if c["status"] != "unreachable":
                p = params_from_json(c["params"])
                assert p.classes in (None, "auto") or 1 <= p.classes <= 16


def test_calibrate_holds_out_whole_groups(mlp_path) -> None:  # noqa: ANN001
    # 10 "photos" in 4 "views" each (small perturbations of one vector): with groups, the
    # held-out split takes whole photos; the settings say so.
    rng = np.random.default_rng(3)
    base = rng.standard_normal((10, 1, 16)).astype(np.float32)
    items, groups = [], []
    for _view in range(4):
        for k in range(10):
            noise = 0.05 * rng.standard_normal((1, 16)).astype(np.float32)
            items.append({"x": base[k] + noise})
            groups.append(k)
    samples = Samples(items, groups)
    kw = dict(split="a1", holdout=0.25, families=[SMALL_TOPK])
    settings = calibrate(mlp_path, "cosine:0.99", samples, **kw)
    data = settings["data"]
    assert data["grouped_holdout"] is True and data["groups"] == 10
    calib, hold = split_indices(40, 0.25, 0, groups)
    assert data["holdout_count"] == len(hold) == 12  # 3 photos x 4 views (≥ 10 inputs)
    assert data["calibration"] == 28
    # Without groups (a plain list) the split is per input.
    plain = calibrate(mlp_path, "cosine:0.99", list(items), **kw)["data"]
    assert "grouped_holdout" not in plain and plain["holdout_count"] == 10
    # An explicit ``groups`` argument wins over the samples' own.
    explicit = calibrate(mlp_path, "cosine:0.99", list(items), groups=groups, **kw)["data"]
    assert explicit["holdout_count"] == 12


def test_unreachable_target_says_so_with_the_best_value(mlp_path) -> None:  # noqa: ANN001
    settings = calibrate(mlp_path, "rel_l2:1e-9", _samples(12), split="a1", families=[SMALL_TOPK])
    (entry,) = settings["cuts"]
    assert entry["status"] == "unreachable"
    best = entry["best"]
    assert best["metrics"]["rel_l2"] > 1e-9
    # The best value reached is the smallest error any complete evaluation measured.
    complete = [p["metrics"]["rel_l2"] for p in entry["trace"] if p["complete"]]
    assert best["metrics"]["rel_l2"] == pytest.approx(min(complete))


def test_calibrate_rejects_bad_arguments(mlp_path) -> None:  # noqa: ANN001
    with pytest.raises(ValueError, match="holdout"):
        calibrate(mlp_path, "agreement:0.9", _samples(4), holdout=1.0)
    with pytest.raises(ValueError, match="at least 2 inputs"):
        calibrate(mlp_path, "agreement:0.9", _samples(1))
    with pytest.raises(ValueError, match="lacks"):
        calibrate(mlp_path, "agreement:0.9", [{"y": np.zeros((1, 16), np.float32)}] * 3)
    with pytest.raises(ValueError, match="token ids"):
        calibrate(mlp_path, "ppl:0.02", _samples(4), families=[SMALL_TOPK])
    with pytest.raises(ValueError, match="one target"):
        calibrate(mlp_path, ["kl:0.1", "kl:0.2"], _samples(4))


# ------------------------------------------------------------------------------ fingerprint


def test_fingerprint_follows_the_weights_not_the_file(tmp_path) -> None:  # noqa: ANN001
    a = _mlp(seed=0)
    b = onnx.ModelProto()
    b.CopyFrom(a)
    for n in b.graph.node:  # renamed nodes, same weights: the same model
        n.name = "renamed_" + n.name
    assert fingerprint(a) == fingerprint(b)
    assert fingerprint(a) != fingerprint(_mlp(seed=1))
    # External data: the same fingerprint as the weights inline.
    inline = fingerprint(a)
    path = tmp_path / "ext.onnx"
    onnx.save(b, str(path), save_as_external_data=True, location="ext.onnx.data", size_threshold=0)
    part = Partitioner(str(path))
    assert part.external_dir is not None
    assert fingerprint(part.model, part.external_dir) == inline


# ------------------------------------------------------------------------------ settings files


def _settings(statuses: dict[str, str], payload: dict[str, int] | None = None) -> dict:
    cuts = []
    for i, (name, status) in enumerate(statuses.items()):
        entry = {"index": i, "name": name, "status": status}
        if status != "unreachable":
            entry.update(
                params=CodecParams(sparsity=0.5, bits=4, delta=0.0).to_json(),
                bits_per_element=2.0,
                payload_bytes=(payload or {}).get(name, 1000),
                payload_bytes_max=(payload or {}).get(name, 1000),
                holdout={"agreement": {"value": 0.995, "low": 0.99, "high": 1.0}},
            )
        else:
            entry["best"] = {"params": None, "bits_per_element": None, "metrics": {}}
        cuts.append(entry)
    return {
        "slicer_settings": 1,
        "model": {"name": "m", "fingerprint": "sha256:" + "0" * 64},
        "targets": [{"metric": "agreement", "value": 0.99}],
        "cuts": cuts,
    }


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda s: s.pop("slicer_settings"), "no 'slicer_settings'"),
        (lambda s: s.update(slicer_settings=99), "reads version 1"),
        (lambda s: s["model"].pop("fingerprint"), "model.fingerprint"),
        (lambda s: s.update(targets=[]), "'targets' must be a non-empty list"),
        (lambda s: s["targets"][0].update(metric="top5"), r"targets\[0\]: unknown metric"),
        (lambda s: s.update(cuts={}), "'cuts' must be a list"),
        (lambda s: s["cuts"][0].update(status="great"), r"cuts\[0\].status"),
        (lambda s: s["cuts"][0].pop("name"), r"cuts\[0\].name"),
        (lambda s: s["cuts"][0]["params"].update(sparsity=1.5), r"cuts\[0\].params: sparsity"),
        (lambda s: s["cuts"][0]["params"].update(colour="red"), "unknown codec parameter"),
        (lambda s: s["cuts"][0].update(bits_per_element=-1), r"cuts\[0\].bits_per_element"),
        (lambda s: s["cuts"][0].update(bits_per_element=float("nan")), "bits_per_element"),
    ],
)
def test_malformed_settings_are_refused_by_field(mutate, message) -> None:  # noqa: ANN001
    s = _settings({"c0": "ok"})
    validate_settings(s)
    mutate(s)
    with pytest.raises(ValueError, match=message):
        validate_settings(s)


def test_settings_files_that_are_not_json_or_missing(tmp_path) -> None:  # noqa: ANN001
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        load_settings(bad)
    with pytest.raises(ValueError, match="not found"):
        load_settings(tmp_path / "missing.json")
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"profile_version": 1, "cuts": []}))
    with pytest.raises(ValueError, match="not a settings file"):
        load_settings(other)


def test_settings_of_another_model_are_refused() -> None:
    s = _settings({"c0": "ok"})
    s["model"]["fingerprint"] = fingerprint(_mlp(seed=0))
    check_model(s, fingerprint(_mlp(seed=0)), "mlp")
    with pytest.raises(ValueError, match="calibrated for m .*not for other"):
        check_model(s, fingerprint(_mlp(seed=1)), "other")


# ------------------------------------------------------------------------------ planner

TABLE = {"elements": [1024, 1 << 20], "encode_s": [1e-4, 1e-2], "decode_s": [5e-5, 5e-3]}


def _profile(n: int, device: list[float], memory: list[int]) -> dict:
    return {
        "profile_version": 1,
        "codec_table": TABLE,
        "cuts": [
            {
                "index": i,
                "name": f"c{i}",
                "node_index": 10 * (i + 1),
                "tensors": [{"name": f"t{i}", "shape": [1, 4096], "dtype": "float32"}],
                "memory_bytes": memory[i],
                "raw_bytes": 4 * 4096,
                "coded_elements": 4096,
                "device_latency_s": device[i],
            }
            for i in range(n)
        ],
    }


BUDGET = Budget(64e6, 0.050, Link(20e6))


def test_planner_skips_the_fast_cut_that_loses_fidelity() -> None:
    # The deepest cut is also the cheapest in latency (smallest payload) but its calibrated
    # setting misses the target on the held-out split: the plan must retreat.
    profile = _profile(3, [0.001, 0.002, 0.003], [1_000_000] * 3)
    settings = _settings(
        {"c0": "ok", "c1": "ok", "c2": "interval-misses"}, {"c0": 9000, "c1": 6000, "c2": 100}
    )
    result = plan(profile, BUDGET, settings=settings)
    assert result.feasible and result.chosen.name == "c1"
    c2 = next(c for c in result.candidates if c.name == "c2")
    assert c2.constraint == "fidelity" and "interval" in c2.detail
    assert result.chosen.payload_bytes == 6000
    assert result.chosen.params == CodecParams(sparsity=0.5, bits=4, delta=0.0)
    # Without calibrated settings the same profile picks the deepest cut.
    assert plan(profile, BUDGET).chosen.name == "c2"


def test_planner_with_settings_reports_fidelity_when_nothing_qualifies() -> None:
    profile = _profile(2, [0.001, 0.002], [1_000_000] * 2)
    result = plan(profile, BUDGET, settings=_settings({"c0": "unreachable"}))
    assert not result.feasible
    assert "fidelity" in result.reason
    kinds = {c.name: c.detail for c in result.candidates}
    assert "not calibrated" in kinds["c1"] and "no codec setting" in kinds["c0"]


@given(
    st.lists(
        st.sampled_from(["ok", "interval-misses", "unreachable", None]), min_size=1, max_size=6
    ),
    st.lists(st.integers(100, 2_000_000), min_size=6, max_size=6),
    st.lists(st.floats(1e-4, 0.06), min_size=6, max_size=6),
    st.floats(0.005, 0.1),
)
def test_planner_never_returns_a_cut_that_misses_the_target(
    statuses, payloads, device, deadline
) -> None:  # noqa: ANN001
    n = len(statuses)
    profile = _profile(n, device[:n], [1_000_000] * n)
    settings = _settings(
        {f"c{i}": s for i, s in enumerate(statuses) if s is not None},
        {f"c{i}": payloads[i] for i in range(n)},
    )
    result = plan(profile, Budget(64e6, deadline, Link(20e6)), settings=settings)
    ok = {c["name"] for c in settings["cuts"] if c["status"] == "ok"}
    if result.feasible:
        assert result.chosen.name in ok
        assert result.chosen.total_s <= deadline
        deeper = [c for c in result.candidates if c.index > result.chosen.index]
        assert all(not c.feasible for c in deeper)
    else:
        assert result.chosen is None


# ------------------------------------------------------------------------------ datasets


def test_parse_shapes_and_dynamic_dimension_errors(dyn_path) -> None:  # noqa: ANN001
    assert parse_shapes(["x=2x16", "y=1"]) == {"x": (2, 16), "y": (1,)}
    for bad in ("x", "x=", "x=2xa", "x=0x16", "=2x16"):
        with pytest.raises(ValueError, match="NAME=D1xD2"):
            parse_shapes([bad])
    part = Partitioner(dyn_path)
    with pytest.raises(ValueError, match=r"dynamic input dimensions: x \[batch,16\] \(axes 0\)"):
        input_shapes(part)
    assert input_shapes(part, {"x": (3, 16)}) == {"x": (3, 16)}
    with pytest.raises(ValueError, match="dimension 16 is fixed"):
        input_shapes(part, {"x": (3, 8)})
    with pytest.raises(ValueError, match="unknown input"):
        input_shapes(part, {"y": (3, 16)})
    with pytest.raises(ValueError, match="2 dimensions given, the input has 2|1 dimensions"):
        input_shapes(part, {"x": (3,)})
    (s,) = random_samples(part, 1, {"x": (5, 16)})
    assert s["x"].shape == (5, 16) and s["x"].dtype == np.float32


def test_npz_samples_both_layouts(mlp_path, tmp_path) -> None:  # noqa: ANN001
    part = Partitioner(mlp_path)
    data = np.arange(7 * 16, dtype=np.float64).reshape(7, 1, 16)
    np.savez(tmp_path / "lead.npz", x=data)
    got = npz_samples(tmp_path / "lead.npz", part)
    assert len(got) == 7 and got[3]["x"].shape == (1, 16) and got[3]["x"].dtype == np.float32
    np.testing.assert_array_equal(got[3]["x"], data[3].astype(np.float32))
    np.savez(tmp_path / "batch.npz", x=data[:, 0])
    got = npz_samples(tmp_path / "batch.npz", part)
    assert len(got) == 7 and got[6]["x"].shape == (1, 16)
    np.savez(tmp_path / "wrong.npz", y=data)
    with pytest.raises(ValueError, match="no array named 'x'"):
        npz_samples(tmp_path / "wrong.npz", part)
    np.savez(tmp_path / "rank.npz", x=np.zeros((2, 2, 1, 16)))
    with pytest.raises(ValueError, match="4 dimensions"):
        npz_samples(tmp_path / "rank.npz", part)


def _image_model(layout: str) -> Partitioner:
    shape = [1, 3, 20, 30] if layout == "nchw" else [1, 20, 30, 3]
    graph = helper.make_graph(
        [helper.make_node("Relu", ["img"], ["r"]), helper.make_node("Neg", ["r"], ["out"])],
        "img",
        [helper.make_tensor_value_info("img", TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, shape)],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return Partitioner(onnx.shape_inference.infer_shapes(model))


@pytest.mark.parametrize("layout", ["nchw", "nhwc"])
def test_image_preprocessing_layouts_and_scales(layout) -> None:  # noqa: ANN001
    part = _image_model(layout)
    # A 40x90 image whose left half is black and right half white: the centre crop of the
    # 2:3 target aspect is 40 high, 60 wide, half black, half white.
    img = np.zeros((40, 90, 3), np.uint8)
    img[:, 45:] = 255
    (s,) = image_samples([img], part, 1, preprocess="unit")
    x = s["img"]
    assert x.shape == ((1, 3, 20, 30) if layout == "nchw" else (1, 20, 30, 3))
    plane = x[0, 0] if layout == "nchw" else x[0, :, :, 0]
    assert plane[:, 0].max() == 0.0 and plane[:, -1].min() == pytest.approx(1.0)
    (s,) = image_samples([img], part, 1, preprocess="signed")
    assert s["img"].min() == pytest.approx(-127 / 128) and s["img"].max() == pytest.approx(1.0)
    (s,) = image_samples([img], part, 1, preprocess="imagenet")
    red = s["img"][0, 0] if layout == "nchw" else s["img"][0, :, :, 0]
    assert red.min() == pytest.approx(-0.485 / 0.229, rel=1e-5)
    got = image_samples([img, img[::-1]], part, 7)
    assert len(got) == 7  # views cycle: 2 images x several crops / flips
    assert got.groups == [0, 1, 0, 1, 0, 1, 0]  # each view names its source image
    with pytest.raises(ValueError, match="preprocess must be one of"):
        image_samples([img], part, 1, preprocess="zscore")


def test_gallery_photos_from_the_installed_packages() -> None:
    import importlib.util

    from slicer.split.datasets import SKIMAGE_PHOTOS, gallery_images, load_samples

    if importlib.util.find_spec("foolbox") is None:
        pytest.skip("foolbox (its photos) is not installed")
    photos = gallery_images()
    names = [n for _, n in photos]
    assert len(set(names)) == len(names)
    # foolbox: 20 ImageNet photos, 20 CIFAR-10 and 20 CIFAR-100 (32x32).
    assert sum(n.startswith("foolbox/imagenet_") for n in names) == 20
    assert sum(n.startswith("foolbox/cifar") for n in names) == 40
    expected = 60
    if importlib.util.find_spec("skimage") is not None:
        from pathlib import Path

        data = Path(importlib.util.find_spec("skimage").origin).parent / "data"
        present = [n for n in SKIMAGE_PHOTOS if (data / n).is_file()]
        assert len(present) >= 10  # scikit-image 0.26 ships all 19 in its wheel
        assert sorted(n for n in names if n.startswith("skimage/")) == sorted(
            f"skimage/{n}" for n in present
        )
        expected += len(present)
    if importlib.util.find_spec("sklearn") is not None:
        assert {"sklearn/china.jpg", "sklearn/flower.jpg"} <= set(names)
        expected += 2
    if importlib.util.find_spec("matplotlib") is not None:
        expected += 1
    assert len(photos) == expected
    for rgb, name in photos:
        assert rgb.dtype == np.uint8 and rgb.ndim == 3 and rgb.shape[2] == 3, name
        assert min(rgb.shape[:2]) >= 32 and rgb.std() > 1, name  # real pictures, not blanks
    # As a dataset: every photo's first view, then the second ...; groups name the photo.
    part = _image_model("nchw")
    samples = load_samples("gallery", part, len(photos) + 3, preprocess="unit")
    assert len(samples) == len(photos) + 3
    assert samples.groups == list(range(len(photos))) + [0, 1, 2]
    assert not np.array_equal(samples[0]["img"], samples[len(photos)]["img"])  # another view


# ------------------------------------------------------------------------------ CLI


def test_cli_calibrate_then_run_and_plan_with_settings(mlp_path, tmp_path, capsys) -> None:  # noqa: ANN001
    out = tmp_path / "settings.json"
    plot = tmp_path / "plot.png"
    npz = tmp_path / "inputs.npz"
    np.savez(npz, x=np.stack([s["x"] for s in _samples(20)]))
    code = main(
        [
            "calibrate",
            mlp_path,
            "--split",
            "a1,a2",
            "--target",
            "agreement:0.9",
            "--inputs",
            str(npz),
            "--out",
            str(out),
            "--plot",
            str(plot),
            "--json",
        ]
    )
    printed = json.loads(capsys.readouterr().out)
    assert code == 0
    assert [c["name"] for c in printed["cuts"]] == ["a1", "a2"]
    assert plot.stat().st_size > 1000
    settings = load_settings(out)
    entry = {c["name"]: c for c in settings["cuts"]}["a1"]
    assert main(["run", mlp_path, "--split", "a1", "--settings", str(out), "--json"]) == 0
    run = json.loads(capsys.readouterr().out)
    assert run["params"] == entry["params"] and run["settings"].startswith("settings file")
    # Codec options and --settings both choose the setting: refused.
    assert main(["run", mlp_path, "--settings", str(out), "--bits", "4"]) == 2
    assert "give one" in capsys.readouterr().err
    # Settings of another model are refused by fingerprint.
    other = tmp_path / "other.onnx"
    onnx.save(_mlp(seed=7), str(other))
    assert main(["run", str(other), "--settings", str(out)]) == 2
    assert "calibrated for mlp.onnx" in capsys.readouterr().err
    # Malformed settings: a clear one-line error.
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps({**settings, "cuts": [{"name": 3}]}))
    assert main(["run", mlp_path, "--settings", str(broken)]) == 2
    assert "malformed settings" in capsys.readouterr().err
    profile = tmp_path / "profile.json"
    code = main(
        [
            "plan",
            mlp_path,
            "--memory",
            "64MB",
            "--deadline",
            "1s",
            "--rate",
            "20Mbps",
            "--settings",
            str(out),
            "--profile",
            str(profile),
            "--json",
        ]
    )
    planned = json.loads(capsys.readouterr().out)
    ok = {c["name"] for c in settings["cuts"] if c["status"] == "ok"}
    if ok:
        assert code == 0 and planned["cut"]["name"] in ok
    else:
        assert code == 1 and "fidelity" in planned["reason"]


def test_cli_calibrate_unreachable_exits_1_with_best_value(mlp_path, capsys) -> None:  # noqa: ANN001
    code = main(
        [
            "calibrate",
            mlp_path,
            "--split",
            "a1",
            "--target",
            "rel_l2:1e-9",
            "--count",
            "6",
            "--dataset",
            "random",
        ]
    )
    out = capsys.readouterr().out
    assert code == 1
    assert "UNREACHABLE" in out and "best rel_l2" in out and "target not reachable" in out


def test_cli_dynamic_shapes_need_shape_or_inputs(dyn_path, capsys) -> None:  # noqa: ANN001
    assert main(["run", dyn_path]) == 2
    err = capsys.readouterr().err
    (line,) = [ln for ln in err.splitlines() if "dynamic input dimensions" in ln]
    assert "slicer: error: the model has dynamic input dimensions: x [batch,16]" in line
    assert "--shape" in line
    assert main(["run", dyn_path, "--shape", "x=3x16", "--raw", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["tensors"][0]["shape"][0] == 3
    assert out["fidelity"]["max_abs_diff"] == 0.0
    assert main(["run", dyn_path, "--shape", "x=3x17"]) == 2
    assert "fixed" in capsys.readouterr().err


def test_cli_run_target_calibrates_the_cut_on_the_fly(dyn_path, tmp_path, capsys) -> None:  # noqa: ANN001
    npz = tmp_path / "batch.npz"
    np.savez(npz, x=np.concatenate([s["x"] for s in _samples(20)]))
    code = main(
        [
            "run",
            dyn_path,
            "--split",
            "a1",
            "--target",
            "agreement:0.9",
            "--inputs",
            str(npz),
            "--json",
        ]
    )
    out = json.loads(capsys.readouterr().out)
    assert code == 0
    assert out["settings"] == "calibrated now for agreement ≥ 90 %"
    assert out["params"]["mode"] in ("topk", "dense", "auto")
    # 20 inputs in one batch through the calibrated setting: at least 90 % agree (the search
    # demanded 95 % on 14 of them).
    assert out["fidelity"]["top1_agreement"] >= 0.9
    assert main(["run", dyn_path, "--target", "rel_l2:1e-12", "--inputs", str(npz)]) == 2
    assert "cannot meet the targets" in capsys.readouterr().err
