"""The command line: encode / decode / inspect, errors as one line with exit status 2."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import ml_dtypes
import numpy as np
import pytest

import slicer
from slicer.cli import main


@pytest.fixture
def npy(tmp_path: Path) -> Path:
    path = tmp_path / "x.npy"
    np.save(path, np.random.default_rng(4).standard_normal((12, 50)).astype(np.float32))
    return path


def test_encode_decode_inspect(npy: Path, tmp_path: Path, capsys) -> None:
    slc, out = tmp_path / "x.slc", tmp_path / "y.npy"
    argv = ["encode", str(npy), str(slc), "--sparsity", "0.8", "--bits", "6", "--seed", "5"]
    assert main([*argv, "--blocks", "2,3", "--groups", "rows"]) == 0
    x = np.load(npy)
    stream = slc.read_bytes()
    assert stream == slicer.encode(x, sparsity=0.8, bits=6, seed=5, blocks=(2, 3), groups="rows")
    assert "bytes" in capsys.readouterr().out
    assert main(["decode", str(slc), str(out)]) == 0
    assert np.array_equal(np.load(out), slicer.decode(stream))
    capsys.readouterr()
    assert main(["inspect", str(slc)]) == 0
    text = capsys.readouterr().out
    assert "total" in text and "12x50" in text
    assert main(["inspect", str(slc), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["shape"] == [12, 50] and info["account"]["total"] == len(stream)
    assert info["group_count"] == 12 and info["blocks"] == [2, 3]


def test_multilevel_and_max_bytes(npy: Path, tmp_path: Path) -> None:
    slc = tmp_path / "x.slc"
    assert main(["encode", str(npy), str(slc), "--bits", "8,4,2", "--max-bytes", "150"]) == 0
    stream = slc.read_bytes()
    assert len(stream) <= 150
    assert slicer.inspect(stream).multilevel


def test_bfloat16_bit_patterns(tmp_path: Path, capsys) -> None:
    x = np.random.default_rng(1).standard_normal(300).astype(ml_dtypes.bfloat16)
    src, slc, out = tmp_path / "b.npy", tmp_path / "b.slc", tmp_path / "c.npy"
    np.save(src, x.view(np.uint16))
    assert main(["encode", str(src), str(slc), "--bfloat16-bits"]) == 0
    assert slc.read_bytes() == slicer.encode(x)
    assert main(["decode", str(slc), str(out)]) == 0
    assert "bit patterns" in capsys.readouterr().err
    decoded = np.load(out).view(ml_dtypes.bfloat16)
    assert np.array_equal(decoded.view(np.uint16), slicer.decode(slc.read_bytes()).view(np.uint16))
    # numpy.save of an ml_dtypes.bfloat16 array stores raw 2-byte records ('|V2')
    raw = tmp_path / "raw.npy"
    np.save(raw, x)
    assert main(["encode", str(raw), str(slc)]) == 2
    assert "--bfloat16-bits" in capsys.readouterr().err
    assert main(["encode", str(raw), str(slc), "--bfloat16-bits"]) == 0
    assert slc.read_bytes() == slicer.encode(x)


@pytest.mark.parametrize(
    "argv_tail",
    [
        ["--sparsity", "1.5"],
        ["--bits", "0"],
        ["--max-bytes", "5"],
    ],
)
def test_errors_are_one_line_exit_2(npy: Path, tmp_path: Path, capsys, argv_tail) -> None:
    assert main(["encode", str(npy), str(tmp_path / "o.slc"), *argv_tail]) == 2
    err = capsys.readouterr().err
    assert err.startswith("slicer: error:") and err.count("\n") == 1


def test_missing_and_corrupt_files(tmp_path: Path, capsys) -> None:
    assert main(["decode", str(tmp_path / "missing.slc"), str(tmp_path / "o.npy")]) == 2
    assert "slicer: error:" in capsys.readouterr().err
    bad = tmp_path / "bad.slc"
    bad.write_bytes(b"SLCR\x01garbage-garbage")
    assert main(["inspect", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "checksum" in err
    ints = tmp_path / "ints.npy"
    np.save(ints, np.arange(10))
    assert main(["encode", str(ints), str(tmp_path / "o.slc")]) == 2
    assert "floating-point" in capsys.readouterr().err


def test_no_command_is_an_error(capsys) -> None:
    assert main([]) == 2
    assert "command is required" in capsys.readouterr().err


def test_cmake_dir_holds_the_package_config(capsys) -> None:
    assert main(["--cmake-dir"]) == 0
    folder = Path(capsys.readouterr().out.strip())
    assert (folder / "slicerConfig.cmake").is_file()
    assert (folder / "slicerTargets.cmake").is_file()


def test_python_dash_m(npy: Path, tmp_path: Path) -> None:
    slc = tmp_path / "x.slc"
    slc.write_bytes(slicer.encode(np.load(npy), sparsity=0.5))
    result = subprocess.run(
        [sys.executable, "-m", "slicer", "inspect", str(slc), "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["sparsity"] == 0.5


def test_version(capsys) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out.strip() == f"slicer {slicer.__version__}"
