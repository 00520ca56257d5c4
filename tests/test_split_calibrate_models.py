"""Calibration on real models: the shipped ones (and their shipped settings) and two ONNX
models that other PyPI packages ship with their weights — the PP-OCRv4 text detector of
``rapidocr-onnxruntime`` (dynamic N×3×H×W input) and the Silero voice-activity model of
``silero-vad`` (an LSTM over 576-sample frames, dynamic sequence length). Tests skip when a
package is missing; install them with ``pip install --no-deps rapidocr-onnxruntime silero-vad``
(only their .onnx files are used)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

import numpy as np  # noqa: E402

from slicer.cli import main  # noqa: E402
from slicer.split import Partitioner, SplitModel  # noqa: E402
from slicer.split.calibrate import AutoFamily, TopKFamily, calibrate  # noqa: E402
from slicer.split.datasets import load_samples, random_samples  # noqa: E402
from slicer.split.settings import (  # noqa: E402
    fingerprint,
    load_settings,
    shipped_settings_path,
)
from split_helpers.models import partitioner  # noqa: E402

QUICK = [TopKFamily(bits=(8, 4), sparsities=(0.0, 0.5, 0.8, 0.9))]


def _package_file(module: str, relative: str) -> str:
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        pytest.skip(f"package {module!r} is not installed")
    path = Path(spec.origin).parent / relative
    if not path.is_file():
        pytest.skip(f"{relative} not found in {module}")
    return str(path)


def ocr_detector() -> str:
    return _package_file("rapidocr_onnxruntime", "models/ch_PP-OCRv4_det_infer.onnx")


def vad() -> str:
    return _package_file("silero_vad", "data/silero_vad_16k_sequence.onnx")


# ------------------------------------------------------------------------------ shipped


@pytest.mark.parametrize("name", ["efficientnet-lite0", "minilm", "smollm2"])
def test_shipped_settings_match_the_local_export(name) -> None:  # noqa: ANN001
    path = shipped_settings_path(name)
    if not path.is_file():
        pytest.skip(f"no shipped settings for {name}")
    settings = load_settings(path)
    part = partitioner(name)
    assert settings["model"]["fingerprint"] == fingerprint(part.model, part.external_dir)
    names = {c.name for c in part.cuts()}
    for entry in settings["cuts"]:
        assert entry["name"] in names
        assert entry["status"] in ("ok", "interval-misses", "unreachable")


def test_calibrate_efficientnet_on_photos_quick() -> None:
    pytest.importorskip("PIL")
    part = partitioner("efficientnet-lite0")
    samples = load_samples("photos", part, 16, model_name="efficientnet-lite0")
    settings = calibrate(
        part,
        "agreement:0.9",
        samples,
        split="/_blocks.11/_swish/Clip_output_0",
        holdout=0.25,
        families=QUICK,
        model_name="efficientnet-lite0",
    )
    (entry,) = settings["cuts"]
    assert entry["status"] != "unreachable"
    assert entry["bits_per_element"] < 8  # far below 32-bit floats
    assert entry["calibration"]["agreement"] >= 0.95  # guard 0.5 of a 10 % budget


def test_run_with_settings_for_another_model_is_refused(tmp_path, capsys) -> None:  # noqa: ANN001
    path = shipped_settings_path("efficientnet-lite0")
    if not path.is_file():
        pytest.skip("no shipped settings")
    partitioner("minilm")
    assert main(["run", "minilm", "--settings", str(path)]) == 2
    assert "calibrated for efficientnet-lite0" in capsys.readouterr().err


# ------------------------------------------------------------------------------ third party


def test_ocr_detector_cuts_lossless_and_dynamic_shape_error(capsys) -> None:  # noqa: ANN001
    path = ocr_detector()
    part = Partitioner(path)
    cuts = part.cuts()
    assert len(cuts) > 300 and [c.index for c in cuts] == list(range(len(cuts)))
    # Without --shape the dynamic dimensions are named in one line.
    assert main(["run", path]) == 2
    (line,) = [ln for ln in capsys.readouterr().err.splitlines() if "dynamic" in ln]
    assert "x [p2o.DynamicDimension.0,3,p2o.DynamicDimension.1,p2o.DynamicDimension.2]" in line
    assert "(axes 0, 2, 3)" in line
    (sample,) = random_samples(part, 1, {"x": (1, 3, 64, 96)})
    for index in np.linspace(0, len(cuts) - 1, 4).round().astype(int):
        result = SplitModel(part, cuts[index], providers="cpu", threads=1).run(sample, None)
        for name, ref in result.reference.items():
            np.testing.assert_allclose(result.outputs[name], ref, rtol=1e-5, atol=1e-5)


def test_ocr_detector_calibrates_on_photos() -> None:
    pytest.importorskip("PIL")
    path = ocr_detector()
    part = Partitioner(path)
    samples = load_samples("photos", part, 8, shapes={"x": (1, 3, 64, 64)}, preprocess="imagenet")
    settings = calibrate(part, "cosine:0.98", samples, split="auto", holdout=0.25, families=QUICK)
    (entry,) = settings["cuts"]
    assert entry["trace"] and entry["status"] in ("ok", "interval-misses", "unreachable")
    if entry["status"] != "unreachable":
        assert entry["calibration"]["cosine"] >= 0.99  # guarded: 1 - 0.02 * 0.5


def test_vad_every_cut_extracts_and_runs_lossless() -> None:
    path = vad()
    part = Partitioner(path)
    (sample,) = random_samples(part, 1, {"input": (3, 576)})
    cuts = part.cuts()
    assert len(cuts) >= 20
    for cut in cuts:
        result = SplitModel(part, cut, providers="cpu", threads=1).run(sample, None)
        for name, ref in result.reference.items():
            np.testing.assert_allclose(result.outputs[name], ref, rtol=1e-5, atol=1e-6)


def test_vad_calibrates_and_cli_writes_settings(tmp_path, capsys) -> None:  # noqa: ANN001
    path = vad()
    part = Partitioner(path)
    samples = random_samples(part, 10, {"input": (4, 576)}, seed=3)
    families = QUICK + (
        [AutoFamily(rel_errors=(0.003, 0.01, 0.03))] if AutoFamily().available() else []
    )
    settings = calibrate(part, "rel_l2:0.05", samples, split="auto", families=families)
    assert settings["model"]["outputs"]["rel_l2"] == "speech_probs"
    out = tmp_path / "vad.json"
    code = main(
        [
            "calibrate",
            path,
            "--shape",
            "input=4x576",
            "--target",
            "rel_l2:0.05",
            "--count",
            "8",
            "--out",
            str(out),
            "--json",
        ]
    )
    printed = json.loads(capsys.readouterr().out)
    assert code in (0, 1) and printed["cuts"] and out.is_file()
    assert load_settings(out)["model"]["fingerprint"] == fingerprint(part.model)


@pytest.mark.slow
def test_ocr_detector_every_cut_extracts() -> None:
    part = Partitioner(ocr_detector())
    for cut in part.cuts():
        head, tail = part.extract(cut)
        assert len(head.graph.node) and len(tail.graph.node)
