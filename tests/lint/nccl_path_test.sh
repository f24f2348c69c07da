#!/usr/bin/env bash
# The NCCL branch of libsgt/torch/dist.cc compiles. It is built only against a LibTorch with
# NCCL (2.x CUDA builds define USE_C10D_NCCL), which this machine does not have, so GCC never
# sees it in the normal build. Here it is compiled (-fsyntax-only: full semantic checks, no
# object) against this LibTorch's ProcessGroupNCCL.hpp and the CUDA toolkit's nccl.h, with the
# guard's version condition lifted: the calls it makes (Options::create, ->timeout, the
# constructor, allreduce/broadcast/barrier) have the same form in 1.13 and 2.x.
#
#   nccl_path_test.sh BIN_DIR SCRATCH_DIR      (BIN_DIR's parent is the build directory)
set -euo pipefail
BIN=$1 SCRATCH=$2
build=$(cd "$BIN/.." && pwd)
src=${SGT_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
cuda=${CUDA_HOME:-/usr/local/cuda}
rm -rf "$SCRATCH" && mkdir -p "$SCRATCH/stub/c10/cuda/impl"
[[ -f $cuda/include/nccl.h ]] ||
  { echo "FAIL: $cuda/include/nccl.h missing: the CUDA toolkit with NCCL is expected at $cuda (or set CUDA_HOME)"; exit 1; }
grep -q 'if defined(USE_C10D_NCCL) && TORCH_VERSION_MAJOR >= 2' "$src/libsgt/torch/dist.cc" ||
  { echo "FAIL: the NCCL guard of dist.cc changed; update this test"; exit 1; }
sed 's/#if defined(USE_C10D_NCCL) && TORCH_VERSION_MAJOR >= 2/#if defined(USE_C10D_NCCL)/' \
  "$src/libsgt/torch/dist.cc" > "$SCRATCH/dist_nccl.cc"
# A CPU-only LibTorch lacks the generated CUDA macros header; an empty one stands in.
echo "#pragma once" > "$SCRATCH/stub/c10/cuda/impl/cuda_cmake_macros.h"
# The flags CMake gave dist.cc, plus NCCL's.
flags=$(python3 - "$build/compile_commands.json" <<'PY'
import json, shlex, sys
for e in json.load(open(sys.argv[1])):
    if e["file"].endswith("libsgt/torch/dist.cc"):
        a = shlex.split(e["command"])
        print(" ".join(shlex.quote(x) for x in a if x.startswith(("-D", "-I", "-isystem", "-std")) or x.startswith("/usr/include")))
        break
else:
    sys.exit("dist.cc is not in compile_commands.json")
PY
)
eval "set -- $flags"
# -isystem takes its path as the next argument: keep the pairs together.
c++ "$@" -DUSE_C10D_NCCL -isystem "$SCRATCH/stub" -isystem "$cuda/include" -fsyntax-only \
  -Wall -Wextra -Wno-unused-parameter -Werror "$SCRATCH/dist_nccl.cc"
grep -q "ProcessGroupNCCL" "$SCRATCH/dist_nccl.cc" || { echo "FAIL: no NCCL code was checked"; exit 1; }
echo "PASS: the NCCL branch of dist.cc compiles against this LibTorch c10d and $cuda/include/nccl.h"
