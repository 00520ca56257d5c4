#!/usr/bin/env bash
# Builds the libFuzzer targets with clang (ASan + UBSan) and runs each for SECONDS seconds,
# starting from seed corpora of real encoded streams written by the build itself.
# Usage: fuzz/run.sh SECONDS [BUILD_DIR]
set -euo pipefail
seconds=${1:?usage: fuzz/run.sh SECONDS [BUILD_DIR]}
root=$(cd "$(dirname "$0")/.." && pwd)
build=${2:-$root/build/fuzz}
mkdir -p "$build" && build=$(cd "$build" && pwd)  # absolute: the targets run from inside it
jobs=${SLICER_FUZZ_JOBS:-2}
generator=()
if command -v ninja >/dev/null 2>&1; then generator=(-G Ninja); fi

cmake -S "$root" -B "$build" "${generator[@]}" \
  -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DSLICER_WITH_CUDA=OFF -DSLICER_BUILD_FUZZ=ON -DSLICER_BUILD_TESTS=OFF >/dev/null
cmake --build "$build" -j "$jobs" --target fuzz_decode fuzz_roundtrip fuzz_dense fuzz_frames fuzz_seed_corpus

corpus=$build/corpus
mkdir -p "$corpus/decode" "$corpus/roundtrip"
"$build/fuzz/fuzz_seed_corpus" "$corpus/decode" "$corpus/roundtrip"

export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
# Round-trip inputs may reach 10000 float32 values, past the radix-selection threshold (8192).
# Format 2 (dense): seeded with the golden streams, each behind a 0x00 byte (the decode property).
mkdir -p "$corpus/dense"
for f in "$root"/tests/golden/v2/*.slc; do
  { printf '\x00'; cat "$f"; } >"$corpus/dense/$(basename "$f")"
done
# ... and with inputs that once failed (fuzz/regressions/dense: full fuzz inputs, kept as found).
cp "$root"/fuzz/regressions/dense/* "$corpus/dense/"
# Frames: seeded with the golden contexts (property 0) and frames (property 1; the trellis
# contexts' frames, names ending _t_K, also as property 3: frames under a trellis context).
mkdir -p "$corpus/frames"
for f in "$root"/tests/golden/v2/frames/*.ctx; do
  [ -e "$f" ] && { printf '\x00'; cat "$f"; } >"$corpus/frames/$(basename "$f")"
done
for f in "$root"/tests/golden/v2/frames/*.frame; do
  [ -e "$f" ] && { printf '\x01'; cat "$f"; } >"$corpus/frames/$(basename "$f")"
done
for f in "$root"/tests/golden/v2/frames/*_t_*.frame; do
  [ -e "$f" ] && { printf '\x03'; cat "$f"; } >"$corpus/frames/t3_$(basename "$f")"
done
for target in decode:4096 roundtrip:40100 dense:8192 frames:4096; do
  name=${target%%:*}
  echo "== fuzz_$name for ${seconds}s"
  (cd "$build" && "$build/fuzz/fuzz_$name" -max_total_time="$seconds" -max_len="${target##*:}" \
     -rss_limit_mb=2048 -timeout=20 -print_final_stats=1 "$corpus/$name")
done
