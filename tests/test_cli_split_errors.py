"""`slicer run | plan` with bad options or inputs: one clear line on stderr, exit status 2."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

import numpy as np  # noqa: E402

from slicer.cli import main  # noqa: E402
from split_helpers.models import partitioner  # noqa: E402

BUDGET = ["--memory", "64MB", "--deadline", "30ms", "--rate", "20Mbps"]


@pytest.fixture(scope="module")
def effnet() -> str:
    from slicer.split import zoo

    partitioner("efficientnet-lite0")  # skips when the model packages are missing
    return str(zoo.model_path("efficientnet-lite0"))


def one_error_line(capsys) -> str:  # noqa: ANN001
    err = capsys.readouterr().err
    last = err.replace("\r", "\n").rstrip("\n").split("\n")[-1]
    assert last.startswith("slicer: error: "), err
    # the progress bar, if one was drawn, was cleared: nothing but blanks before the message
    before = err[: err.rindex("slicer: error: ")]
    assert before.split("\r")[-1].strip() == "", repr(before[-200:])
    return last


def test_inputs_that_are_not_an_npz(effnet: str, tmp_path: Path, capsys) -> None:  # noqa: ANN001
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"not a zip archive at all")
    npy = tmp_path / "a.npy"
    np.save(npy, np.zeros((1, 3, 224, 224), np.float32))
    for path in (garbage, npy):
        assert main(["run", effnet, "--inputs", str(path)]) == 2
        assert "is not an .npz archive" in one_error_line(capsys)
    assert main(["run", effnet, "--inputs", str(tmp_path / "missing.npz")]) == 2
    assert "no such file" in one_error_line(capsys)


def test_inputs_of_the_wrong_shape(effnet: str, tmp_path: Path, capsys) -> None:  # noqa: ANN001
    wrong = tmp_path / "wrong.npz"
    np.savez(wrong, image=np.zeros((1, 3, 100, 100), np.float32))
    assert main(["run", effnet, "--inputs", str(wrong)]) == 2
    line = one_error_line(capsys)
    assert "'image' has shape [1, 3, 100, 100]" in line and "[1,3,224,224]" in line
    flat = tmp_path / "flat.npz"
    np.savez(flat, image=np.zeros(3 * 224 * 224, np.float32))
    assert main(["plan", effnet, *BUDGET, "--inputs", str(flat)]) == 2
    assert "'image' has shape" in one_error_line(capsys)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--sparsity", "2", "--bits", "0"], "--sparsity must be in [0, 1)"),
        (["--bits", "0"], "--bits must be in 1..16"),
        (["--raw", "--blocks", "99"], "--blocks must be in 1..64"),
        (["--split", "-1"], "index >= 0"),
    ],
)
def test_run_refuses_bad_settings(effnet: str, capsys, options, message) -> None:  # noqa: ANN001
    assert main(["run", effnet, *options]) == 2
    assert message in one_error_line(capsys)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--bits", "40"], "--bits must be in 1..16"),
        (["--memory", "1e400MB"], "--memory must be a finite number > 0, got 1e400MB"),
        (["--memory", "-5MB"], "--memory must be a finite number > 0, got -5MB"),
        (["--deadline", "0ms"], "--deadline must be a finite number > 0"),
        (["--rate", "-1Mbps"], "--rate must be a finite number > 0"),
        (["--eps", "1.5"], "--eps must be in (0, 1)"),
        (["--max-sparsity", "1"], "--max-sparsity must be in [0, 1)"),
    ],
)
def test_plan_refuses_bad_budgets(effnet: str, capsys, options, message) -> None:  # noqa: ANN001
    assert main(["plan", effnet, *BUDGET, *options]) == 2
    assert message in one_error_line(capsys)
