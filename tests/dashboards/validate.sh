#!/usr/bin/env bash
# Checks dashboards/*.json, the Grafana provisioning files and deploy/prometheus (check.mjs says
# what), then that the checks still catch broken dashboards (selftest.mjs).
# Usage: validate.sh SOURCE_DIR SCRATCH_DIR
#
# The npm packages pinned by package-lock.json here are installed once into a cache outside the
# source tree, ${SGT_NPM_DIR:-~/.cache/sgt-dashboard-test}, and installed again (npm ci) only
# when the lockfile changes. Needs node, npm and promtool (scripts/install-deps).
set -euo pipefail

if (($# != 2)); then
  echo "usage: $0 SOURCE_DIR SCRATCH_DIR" >&2
  exit 2
fi
src=$(cd "$1" && pwd)
mkdir -p "$2"
scratch=$(cd "$2" && pwd)
here=$src/tests/dashboards

for tool in node npm promtool; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "validate.sh: $tool not found (scripts/install-deps installs it)" >&2
    exit 1
  fi
done

npm_dir=${SGT_NPM_DIR:-${HOME:-$scratch}/.cache/sgt-dashboard-test}
mkdir -p "$npm_dir"
start=$(date +%s)

# One install at a time per cache directory (two checkouts may share it).
exec 9>"$npm_dir/.lock"
flock 9
if ! cmp -s "$here/package-lock.json" "$npm_dir/installed-lock.json" || [[ ! -d $npm_dir/node_modules ]]; then
  echo "validate.sh: installing the pinned npm packages into $npm_dir"
  rm -f "$npm_dir/installed-lock.json"
  cp "$here/package.json" "$here/package-lock.json" "$npm_dir/"
  (cd "$npm_dir" && npm ci --prefer-offline --no-audit --no-fund --ignore-scripts --loglevel=error)
  cp "$here/package-lock.json" "$npm_dir/installed-lock.json"
fi
flock -u 9

node "$here/check.mjs" "$src" "$scratch" "$npm_dir/node_modules"
# ... and that the checker still rejects broken dashboards (selftest.mjs says which).
node "$here/selftest.mjs" "$src" "$scratch" "$npm_dir/node_modules"
echo "validate.sh: took $(($(date +%s) - start)) s"
