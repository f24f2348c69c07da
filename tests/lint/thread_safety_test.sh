#!/usr/bin/env bash
# clang's thread-safety analysis over the coordinator: every member marked ABSL_GUARDED_BY(mu_)
# is touched only with mu_ held, every ABSL_EXCLUSIVE_LOCKS_REQUIRED function is called with it,
# and no ABSL_LOCKS_EXCLUDED function is called with it. GCC, which builds the project, ignores
# these annotations; this test is what makes them checked. It compiles each file of
# services/coordinator/ with clang++ -fsyntax-only and the flags CMake gave GCC
# (compile_commands.json), with -Werror=thread-safety.
#
#   thread_safety_test.sh BIN_DIR SCRATCH_DIR      (BIN_DIR's parent is the build directory)
set -euo pipefail
BIN=$1 SCRATCH=$2
build=$(cd "$BIN/.." && pwd)
mkdir -p "$SCRATCH"
command -v clang++ > /dev/null || { echo "FAIL: clang++ not found; scripts/install-deps installs clang"; exit 1; }
[[ -f $build/compile_commands.json ]] ||
  { echo "FAIL: $build/compile_commands.json missing (CMAKE_EXPORT_COMPILE_COMMANDS)"; exit 1; }

python3 - "$build/compile_commands.json" "$SCRATCH/commands" <<'PY'
import json, os, shlex, sys
entries = json.load(open(sys.argv[1]))
out = open(sys.argv[2], "w")
n = 0
for e in entries:
    f = e["file"]
    if "/services/coordinator/" not in f or "/tests/" in f:
        continue
    args = shlex.split(e["command"])
    # Drop the ccache launcher (cmake -E env ... ccache) and the compiler itself.
    i = max(k for k, a in enumerate(args) if os.path.basename(a) in ("c++", "g++", "clang++"))
    keep, skip = [], False
    for a in args[i + 1:]:
        if skip:
            skip = False
            continue
        if a in ("-o", "-MF", "-MT"):
            skip = True
            continue
        if a in ("-c", "-MD") or a == f:
            continue
        keep.append(a)
    out.write(shlex.join([e["directory"], f] + keep) + "\n")
    n += 1
if n < 5:
    sys.exit(f"FAIL: only {n} coordinator sources in compile_commands.json")
PY

failed=0
while read -r line; do
  eval "set -- $line"
  dir=$1 file=$2
  shift 2
  if ! (cd "$dir" && clang++ "$@" -fsyntax-only -Wno-unknown-warning-option -Wthread-safety \
          -Werror=thread-safety "$file") 2> "$SCRATCH/out.txt"; then
    echo "FAIL: $file"
    grep -E "error|warning" "$SCRATCH/out.txt" | head -20
    failed=1
  fi
done < "$SCRATCH/commands"
(( failed == 0 )) || exit 1
echo "PASS: $(wc -l < "$SCRATCH/commands") files"
