#!/usr/bin/env bash
# The libFuzzer harnesses (fuzz/harnesses) in brief: builds them with clang, AddressSanitizer and
# UndefinedBehaviorSanitizer in a build of its own (SGT_FUZZ=ON, without LibTorch, only the
# harness targets; ccache makes a second build cheap), replays every checked-in input (the seed
# corpora and the regression inputs of bugs found earlier: each must run clean), then fuzzes
# each harness for a few seconds from a copy of its corpus. Any crash, leak, timeout or
# allocation past the limit fails the test and names the input it left. bench/run-fuzzers runs
# them for longer.
#
#   fuzz_smoke_test.sh BIN_DIR SCRATCH_DIR
#   (SGT_FUZZ_SECONDS: seconds per harness, default 5; SGT_FUZZ_JOBS: build jobs, default nproc)
set -euo pipefail
shopt -s nullglob
SCRATCH=$2
SRC=${SGT_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
SECONDS_EACH=${SGT_FUZZ_SECONDS:-5}
mkdir -p "$SCRATCH"
command -v clang++ > /dev/null || { echo "FAIL: clang++ not found; scripts/install-deps installs clang"; exit 1; }

build=$SCRATCH/build
mapfile -t names < <(awk '!/^#/ && NF {print $1}' "$SRC/fuzz/harnesses")
start=$(date +%s)
if ! CC=clang CXX=clang++ cmake -S "$SRC" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Fuzz \
       -DSGT_FUZZ=ON -DSGT_BUILD_TORCH=OFF -DSGT_BUILD_TESTS=OFF > "$SCRATCH/configure.log" 2>&1; then
  tail -20 "$SCRATCH/configure.log"
  echo "FAIL: configuring the fuzz build (log: $SCRATCH/configure.log); libFuzzer comes with "
  echo "      clang in libclang-rt-14-dev (scripts/install-deps)"
  exit 1
fi
if ! ninja -C "$build" -j "${SGT_FUZZ_JOBS:-$(nproc)}" "${names[@]/#/fuzz_}" > "$SCRATCH/build.log" 2>&1; then
  grep -E "error|FAILED" "$SCRATCH/build.log" | head -20
  echo "FAIL: building the harnesses (log: $SCRATCH/build.log)"
  exit 1
fi
echo "built ${#names[@]} harnesses in $(( $(date +%s) - start )) s"

export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1
failed=0
while read -r name dict _; do
  [[ $name == \#* || -z $name ]] && continue
  bin=$build/bin/fuzz_$name
  dict_flag=()
  [[ $dict != - ]] && dict_flag=(-dict="$SRC/fuzz/dict/$dict")
  limits=(-timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=1024)
  # Every checked-in input once: the regression inputs must stay fixed.
  inputs=("$SRC/fuzz/corpus/$name"/*)
  [[ -d $SRC/fuzz/regressions/$name ]] && inputs+=("$SRC/fuzz/regressions/$name"/*)
  if ! "$bin" "${limits[@]}" "${inputs[@]}" > "$SCRATCH/$name.replay.log" 2>&1; then
    grep -E "ERROR|SUMMARY|Running:|runtime error" "$SCRATCH/$name.replay.log" | tail -8
    echo "FAIL: $name: a checked-in input fails (log: $SCRATCH/$name.replay.log)"
    failed=1
    continue
  fi
  # A few seconds of fuzzing from a copy of the corpus (the checkout stays untouched).
  rm -rf "$SCRATCH/corpus/$name" "$SCRATCH/artifacts/$name"
  mkdir -p "$SCRATCH/corpus/$name" "$SCRATCH/artifacts/$name"
  cp "$SRC/fuzz/corpus/$name"/* "$SCRATCH/corpus/$name/"
  if ! "$bin" "${limits[@]}" "${dict_flag[@]}" -max_total_time="$SECONDS_EACH" \
         -artifact_prefix="$SCRATCH/artifacts/$name/" "$SCRATCH/corpus/$name" \
         > "$SCRATCH/$name.fuzz.log" 2>&1; then
    grep -E "ERROR|SUMMARY|runtime error|Test unit written" "$SCRATCH/$name.fuzz.log" | tail -8
    echo "FAIL: $name: the fuzzer found a failing input in $SCRATCH/artifacts/$name/; fix the"
    echo "      parser and add the input to fuzz/regressions/$name/ (log: $SCRATCH/$name.fuzz.log)"
    failed=1
    continue
  fi
  echo "ok: $name: $(grep -E '^#[0-9]+[[:space:]]+DONE' "$SCRATCH/$name.fuzz.log" | tail -1)"
done < "$SRC/fuzz/harnesses"
(( failed == 0 )) || exit 1
echo "PASS: ${#names[@]} harnesses, $SECONDS_EACH s each, in $(( $(date +%s) - start )) s"
