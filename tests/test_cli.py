"""The command line: encode / decode / inspect, errors as one line with exit status 2."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
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
    assert info["block_table"] is None and info["num_blocks"] > 0
    assert main(["inspect", str(slc), "--json", "--blocks"]) == 0
    table = json.loads(capsys.readouterr().out)["block_table"]
    assert len(table) == info["num_blocks"] and sum(b["count"] for b in table) == info["kept"]


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


def test_decode_writes_exactly_the_named_file(npy: Path, tmp_path: Path, capsys) -> None:
    slc = tmp_path / "x.slc"
    slc.write_bytes(slicer.encode(np.load(npy), sparsity=0.5))
    bare = tmp_path / "out"  # numpy.save alone would write out.npy and leave `out` missing
    assert main(["decode", str(slc), str(bare)]) == 0
    assert capsys.readouterr().out.startswith(f"{bare}:")
    assert bare.is_file() and not (tmp_path / "out.npy").exists()
    assert np.array_equal(np.load(bare), slicer.decode(slc.read_bytes()))


def test_decode_max_elements(npy: Path, tmp_path: Path, capsys) -> None:
    slc, out = tmp_path / "x.slc", tmp_path / "y.npy"
    slc.write_bytes(slicer.encode(np.load(npy)))  # 12 x 50 = 600 elements
    assert main(["decode", str(slc), str(out), "--max-elements", "599"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("slicer: error:") and "max_elements" in err and not out.exists()
    assert main(["decode", str(slc), str(out), "--max-elements", "600"]) == 0
    assert np.load(out).shape == (12, 50)


@pytest.mark.parametrize("value", ["-5", "-1", "abc"])
def test_decode_max_elements_must_be_a_count(npy: Path, tmp_path: Path, capsys, value) -> None:
    with pytest.raises(SystemExit) as info:
        main(["decode", str(npy), str(tmp_path / "o.npy"), "--max-elements", value])
    assert info.value.code == 2
    assert "non-negative integer" in capsys.readouterr().err


def test_negative_option_values_reach_the_option_check(npy: Path, tmp_path: Path, capsys) -> None:
    assert main(["encode", str(npy), str(tmp_path / "o.slc"), "--max-bytes", "-5"]) == 2
    assert "max_bytes must be >= 1" in capsys.readouterr().err


def test_missing_extra_names_the_install_command() -> None:
    """Without onnx (the split extra), `slicer run` says what to install, exit status 2."""
    script = textwrap.dedent(
        """
        import sys

        class Block:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in ("onnx", "onnxruntime"):
                    raise ModuleNotFoundError(f"No module named {name!r}")
                return None

        sys.meta_path.insert(0, Block())
        from slicer.cli import main
        sys.exit(main(sys.argv[1:]))
        """
    )
    for argv in (["run"], ["plan", "m.onnx", "--memory", "1MB"], ["cuts", "--help"]):
        result = subprocess.run(
            [sys.executable, "-c", script, *argv],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert result.returncode == 2, result.stderr
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("slicer: error:"), result.stderr
        assert "pip install 'slicer-codec[split]'" in lines[0] and "onnx" in lines[0]
