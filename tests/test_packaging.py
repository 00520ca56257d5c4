"""What the installed package (and a release wheel) ships for native users and packagers."""

from __future__ import annotations

import email
import importlib.metadata
import os
import re
import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest

import slicer
from slicer import _core
from slicer.cli import cmake_dir, pkgconfig_dir

ROOT = Path(__file__).resolve().parents[1]
NATIVE = Path(_core.__file__).resolve().parent  # slicer/ of the installed native parts


def test_installed_native_layout() -> None:
    assert (NATIVE / "include" / "slicer" / "slicer.h").is_file()
    assert (NATIVE / "include" / "slicer" / "slicer.hpp").is_file()
    assert (NATIVE / "lib" / "libslicer.a").is_file()
    for name in ("slicerConfig.cmake", "slicerConfigVersion.cmake", "slicerTargets.cmake"):
        assert (cmake_dir() / name).is_file()
    assert (pkgconfig_dir() / "slicer.pc").is_file()
    assert (Path(slicer.__file__).parent / "py.typed").is_file()


def test_pkg_config_file_is_relocatable_and_complete() -> None:
    text = (pkgconfig_dir() / "slicer.pc").read_text()
    assert re.search(r"^prefix=\$\{pcfiledir\}/", text, re.M)  # no absolute build paths
    assert str(ROOT) not in text and "/usr/local" not in text
    assert re.search(r"^Version: " + re.escape(slicer.__version__) + "$", text, re.M)
    libs = re.search(r"^Libs: (.*)$", text, re.M).group(1).split()
    # the static library is C++ inside: a C program needs the C++ runtime, libm and threads
    assert {"-lslicer", "-lstdc++", "-lm", "-pthread"} <= set(libs)


def test_cmake_config_makes_cuda_a_component() -> None:
    text = (cmake_dir() / "slicerConfig.cmake").read_text()
    # CUDAToolkit is looked for only inside the branch of the requested component
    before_component = text.split('if("cuda" IN_LIST slicer_FIND_COMPONENTS)')[0]
    assert "CUDAToolkit" not in before_component.replace("# find_package(slicer COMPONENTS", "")
    assert "check_required_components(slicer)" in text


def _configure(tmp_path: Path, body: str, *defines: str) -> subprocess.CompletedProcess:
    project = tmp_path / "project"
    project.mkdir(parents=True, exist_ok=True)
    (project / "CMakeLists.txt").write_text(
        "cmake_minimum_required(VERSION 3.18)\nproject(consumer LANGUAGES CXX)\n" + body
    )
    return subprocess.run(
        ["cmake", "-S", str(project), "-B", str(tmp_path / "build"), *defines],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.mark.skipif(shutil.which("cmake") is None, reason="needs cmake")
def test_find_package_needs_no_cuda_toolkit_for_the_core(tmp_path: Path) -> None:
    """Even a wheel built with CUDA: slicer::slicer without the CUDA Toolkit; the cuda
    component asks for it (and fails clearly without it)."""
    prefix = f"-DCMAKE_PREFIX_PATH={cmake_dir()}"
    no_toolkit = "-DCMAKE_DISABLE_FIND_PACKAGE_CUDAToolkit=ON"
    body = (
        "find_package(slicer REQUIRED)\n"
        "if(NOT TARGET slicer::slicer OR TARGET slicer::slicer_cuda)\n"
        "  message(FATAL_ERROR unexpected-targets)\nendif()\n"
    )
    result = _configure(tmp_path / "core", body, prefix, no_toolkit)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    body = "find_package(slicer REQUIRED COMPONENTS cuda)\n"
    result = _configure(tmp_path / "cuda", body, prefix, no_toolkit)
    assert result.returncode != 0
    built_with_cuda = (cmake_dir() / "slicerCudaTargets.cmake").is_file()
    reason = "CUDAToolkit" if built_with_cuda else "built without the CUDA backend"
    assert reason in result.stderr, result.stderr[-3000:]


@pytest.mark.skipif(
    shutil.which("pkg-config") is None or shutil.which("cc") is None,
    reason="needs pkg-config and a C compiler",
)
def test_plain_c_example_links_through_pkg_config(tmp_path: Path) -> None:
    env = {**os.environ, "PKG_CONFIG_PATH": str(pkgconfig_dir())}
    flags = subprocess.run(
        ["pkg-config", "--cflags", "--libs", "slicer"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    exe = tmp_path / "roundtrip_c"
    subprocess.run(
        ["cc", "-std=c99", "-O1", str(ROOT / "examples" / "roundtrip.c"), *flags, "-o", str(exe)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    result = subprocess.run([str(exe)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"slicer {slicer.__version__} (format {slicer.FORMAT_VERSION}), C ABI" in result.stdout


def test_distribution_metadata() -> None:
    try:
        dist = importlib.metadata.distribution("slicer-codec")
    except importlib.metadata.PackageNotFoundError:
        pytest.fail(
            "no installed distribution 'slicer-codec' (the package was renamed from 'slicer'): "
            "pip uninstall slicer, then reinstall this checkout"
        )
    meta = dist.metadata
    assert meta["Name"] == "slicer-codec" and meta["Version"] == slicer.__version__
    assert meta["License-Expression"] == "Apache-2.0"
    assert "Typing :: Typed" in meta.get_all("Classifier")
    assert not [v for v in meta.get_all("Project-URL") or [] if v]  # URL-free by design
    groups = {(e.group, e.name): e.value for e in dist.entry_points}
    assert groups[("console_scripts", "slicer")] == "slicer.cli:main"
    assert groups[("numcodecs.codecs", "slicer")] == "slicer.codec:Slicer"
    assert groups[("zarr.codecs", "slicer")] == "slicer.zarr3:SlicerCodec"
    assert (ROOT / "LICENSE").read_text().lstrip().startswith("Apache License")


WHEEL = os.environ.get("SLICER_WHEEL")


@pytest.mark.skipif(not WHEEL, reason="SLICER_WHEEL names a built wheel (tools/release.sh)")
def test_release_wheel_contents() -> None:
    path = Path(WHEEL)
    # name-version-python-abi-platform.whl; PyPI takes manylinux / musllinux tags only
    assert path.name.startswith(f"slicer_codec-{slicer.__version__}-")
    assert re.search(r"-(manylinux|musllinux)_\d+_\d+_\w+(\.manylinux\w+)*\.whl$", path.name)
    with zipfile.ZipFile(path) as wheel:
        names = set(wheel.namelist())
        dist_info = f"slicer_codec-{slicer.__version__}.dist-info"
        meta = email.message_from_bytes(wheel.read(f"{dist_info}/METADATA"))
    required = {
        "slicer/__init__.py",
        "slicer/py.typed",
        "slicer/_core.pyi",
        "slicer/zarr3.py",
        "slicer/include/slicer/slicer.h",
        "slicer/include/slicer/slicer.hpp",
        "slicer/lib/libslicer.a",
        "slicer/lib/cmake/slicer/slicerConfig.cmake",
        "slicer/lib/cmake/slicer/slicerConfigVersion.cmake",
        "slicer/lib/cmake/slicer/slicerTargets.cmake",
        "slicer/lib/pkgconfig/slicer.pc",
        f"{dist_info}/licenses/LICENSE",
        f"{dist_info}/entry_points.txt",
    }
    assert required <= names, sorted(required - names)
    assert any(re.fullmatch(r"slicer/_core\.cpython-[^/]+\.so", n) for n in names)
    assert not [n for n in names if n.startswith(("tests/", "bench/", "build/"))]
    assert meta["Name"] == "slicer-codec" and meta["License-Expression"] == "Apache-2.0"
    assert meta["Description-Content-Type"] == "text/markdown"
