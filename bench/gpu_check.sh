#!/usr/bin/env bash
# One-shot check of the CUDA backend on a machine WITH an NVIDIA GPU (about 8-10 minutes on an
# H100/H200): build with the CUDA backend, the CTest suite (host + emulated kernel tests), the
# GPU tests (pytest -m cuda), compute-sanitizer memcheck and racecheck on a few dense and topk
# cases, and bench/bench_cuda.py. Every log and the bench JSON land in $OUT (default ./gpu_out);
# $OUT/summary.txt lists each step with its exit status. Run from the repository root:
#
#   OUT=/some/dir bash bench/gpu_check.sh
set -u
OUT=${OUT:-$PWD/gpu_out}
mkdir -p "$OUT"
SUMMARY="$OUT/summary.txt"
: >"$SUMMARY"
JOBS=$(nproc)

step() {  # step NAME TIMEOUT_S COMMAND...: runs it, logs to $OUT/NAME.log, records the status
  local name=$1 limit=$2
  shift 2
  local start=$SECONDS
  timeout "$limit" "$@" >"$OUT/$name.log" 2>&1
  local rc=$?
  echo "$name rc=$rc ${SECONDS}s-total $((SECONDS - start))s" | tee -a "$SUMMARY"
  return $rc
}

{
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
  nvcc --version | tail -2
  python3 -c "import torch; print('torch', torch.__version__, torch.cuda.is_available())"
} >"$OUT/device.txt" 2>&1

# 1. The Python package with its CUDA module, into a throw-away venv.
python3 -m venv --system-site-packages /tmp/slicer_gpu_venv
. /tmp/slicer_gpu_venv/bin/activate
export CMAKE_BUILD_PARALLEL_LEVEL=$JOBS
step build 400 env SLICER_WITH_CUDA=ON pip install -q --no-build-isolation --no-deps \
  -C build-dir=build/gpu-check -C cmake.define.CMAKE_CUDA_ARCHITECTURES=native -e . || exit 1

# 2. CTest: C++ tests, CUDA host tests, the emulated kernel tests (format 1 and dense).
step cmake 200 cmake -S . -B build/gpu-check-cmake -DSLICER_BUILD_TESTS=ON -DSLICER_WITH_CUDA=ON \
  -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=native
step ctest_build 400 cmake --build build/gpu-check-cmake -j "$JOBS"
step ctest 300 ctest --test-dir build/gpu-check-cmake --output-on-failure -j 4

# 3. The GPU tests (byte equality with the CPU codec, golden streams, damaged streams).
step pytest_cuda 400 python -m pytest -q -m cuda -rs tests/test_cuda.py

# 4. compute-sanitizer on a few cases (dense golden + random, mode 2 included; topk golden).
SAN="compute-sanitizer --error-exitcode 99 --print-limit 20"
step memcheck_dense 300 $SAN --tool memcheck python -m pytest -q -m cuda tests/test_cuda.py \
  -k "dense_golden and (chunks_5000 or rows_table or channels_table or m2_) or dense_bytes_equal_cpu and 4096 or dense_classes_bytes_equal_cpu and f32"
step racecheck_dense 300 $SAN --tool racecheck python -m pytest -q -m cuda tests/test_cuda.py \
  -k "dense_golden and (chunks_5000 or outliers) or dense_bytes_equal_cpu and 4096 and f32 or dense_classes_bytes_equal_cpu and f32"
step memcheck_topk 300 $SAN --tool memcheck python -m pytest -q -m cuda tests/test_cuda.py \
  -k "gpu_encodes_golden or gpu_decodes_golden"

# 5. The bench (dense and format 1), JSON for RESULTS.md.
step bench 400 python bench/bench_cuda.py --repeats 20 --json "$OUT/bench_cuda.json"
cp "$OUT/bench.log" "$OUT/bench_cuda.txt" 2>/dev/null
cat "$SUMMARY"
