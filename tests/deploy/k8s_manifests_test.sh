#!/usr/bin/env bash
# deploy/k8s: `kubectl kustomize` renders the base and every overlay; every rendered object is
# valid Kubernetes (the kubernetes-models classes, and tsc against the package's interfaces for
# unknown fields); every container's command line is accepted by the daemon built here
# (--check-args); each target has the shape docs/clusters.md describes (k8s_check.mjs says what).
# Then that the checks fail: broken copies of the base (k8s_check.mjs --selftest) and a broken
# overlay rendered through kubectl. Also that the Dockerfile installs only packages that
# scripts/install-deps installs.
#
# kubectl: $KUBECTL, else kubectl on PATH (Debian's kubernetes-client, 1.20, whose kustomize is
# 2.0.3; newer ones render the same). The npm packages pinned by package-lock.json here are
# installed once into ${SGT_NPM_DIR:-~/.cache/sgt-k8s-test} and again only when the lockfile
# changes. Needs node and npm (scripts/install-deps).
BIN=$1 SCRATCH=$2
source "$(dirname "$0")/../integration/lib.sh"
src=${SGT_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
here=$src/tests/deploy
rm -rf "$SCRATCH" && mkdir -p "$SCRATCH"
kubectl=${KUBECTL:-kubectl}
for tool in "$kubectl" node npm; do
  command -v "$tool" > /dev/null || fail "$tool not found (scripts/install-deps installs it)"
done
start=$(date +%s%N)

npm_dir=${SGT_NPM_DIR:-${HOME:-$SCRATCH}/.cache/sgt-k8s-test}
mkdir -p "$npm_dir"
exec 9> "$npm_dir/.lock"
flock 9
if ! cmp -s "$here/package-lock.json" "$npm_dir/installed-lock.json" || [[ ! -d $npm_dir/node_modules ]]; then
  echo "k8s_manifests_test: installing the pinned npm packages into $npm_dir"
  rm -f "$npm_dir/installed-lock.json"
  cp "$here/package.json" "$here/package-lock.json" "$npm_dir/"
  (cd "$npm_dir" && npm ci --prefer-offline --no-audit --no-fund --ignore-scripts --loglevel=error) ||
    fail "npm ci of tests/deploy/package-lock.json failed"
  cp "$here/package-lock.json" "$npm_dir/installed-lock.json"
fi
flock -u 9
installed=$(date +%s%N)

# Render. Newer kubectl warn on stderr that bases and patchesJson6902 are deprecated (kept for
# kustomize 2.0.3); any other stderr output is shown.
render() {  # render NAME DIR
  "$kubectl" kustomize "$2" > "$SCRATCH/$1.yaml" 2> "$SCRATCH/$1.err" ||
    { cat "$SCRATCH/$1.err" >&2; fail "kubectl kustomize $2 failed"; }
  grep -v "is deprecated" "$SCRATCH/$1.err" >&2 || true
  [[ $(grep -c '^kind:' "$SCRATCH/$1.yaml") -ge 8 ]] || fail "kubectl kustomize $2 rendered $(grep -c '^kind:' "$SCRATCH/$1.yaml") objects"
}
render base "$src/deploy/k8s/base"
targets=(base="$SCRATCH/base.yaml")
for overlay in "$src"/deploy/k8s/overlays/*/; do
  name=$(basename "$overlay")
  render "$name" "$overlay"
  targets+=("$name=$SCRATCH/$name.yaml")
done
[[ ${#targets[@]} -ge 3 ]] || fail "expected the base and the cpu and tls overlays"
rendered=$(date +%s%N)

node "$here/k8s_check.mjs" "$src" "$SCRATCH/check" "$npm_dir/node_modules" "$BIN" "${targets[@]}" > "$SCRATCH/check.txt" 2>&1 ||
  { cat "$SCRATCH/check.txt" >&2; fail "the rendered manifests do not pass (above)"; }
tail -1 "$SCRATCH/check.txt"
checked=$(date +%s%N)

# The checks can fail: broken copies of the base ...
node "$here/k8s_check.mjs" --selftest "$src" "$SCRATCH/selftest" "$npm_dir/node_modules" "$BIN" "base=$SCRATCH/base.yaml" > "$SCRATCH/selftest.txt" 2>&1 ||
  { cat "$SCRATCH/selftest.txt" >&2; fail "k8s_check.mjs --selftest: a broken manifest was not caught (above)"; }
tail -1 "$SCRATCH/selftest.txt"
# ... and an overlay that adds an unknown field and a wrong type, rendered by kubectl.
mkdir -p "$SCRATCH/broken"
cp -r "$src/deploy" "$SCRATCH/broken/deploy" && cp -r "$src/dashboards" "$SCRATCH/broken/dashboards"
mkdir -p "$SCRATCH/broken/deploy/k8s/overlays/broken"
cat > "$SCRATCH/broken/deploy/k8s/overlays/broken/kustomization.yaml" <<'YAML'
bases:
- ../../base
patchesJson6902:
- target: {group: apps, version: v1, kind: DaemonSet, name: sgt-worker}
  path: patch.yaml
YAML
cat > "$SCRATCH/broken/deploy/k8s/overlays/broken/patch.yaml" <<'YAML'
- {op: add, path: /spec/template/spec/containers/0/resource, value: {limits: {cpu: "1"}}}
- {op: add, path: /spec/template/spec/terminationGracePeriodSeconds, value: "thirty"}
YAML
render broken "$SCRATCH/broken/deploy/k8s/overlays/broken"
! node "$here/k8s_check.mjs" "$src" "$SCRATCH/check-broken" "$npm_dir/node_modules" "$BIN" "broken=$SCRATCH/broken.yaml" > "$SCRATCH/broken.txt" 2>&1 ||
  fail "a rendered overlay with an unknown field and a wrong type passed"
grep -q "containers\[0\].resource: unknown field" "$SCRATCH/broken.txt" || { cat "$SCRATCH/broken.txt" >&2; fail "the unknown field 'resource' was not reported"; }
grep -q "terminationGracePeriodSeconds must be integer" "$SCRATCH/broken.txt" || { cat "$SCRATCH/broken.txt" >&2; fail "the wrong type was not reported"; }

# The Dockerfile's build packages are scripts/install-deps' (the image builds as CI does).
python3 - "$src/deploy/k8s/Dockerfile" "$src/scripts/install-deps" <<'PY' || fail "the Dockerfile's packages (above)"
import re, sys
docker = open(sys.argv[1]).read().replace("\\\n", " ")
deps = open(sys.argv[2]).read()
allowed = set(re.search(r"packages=\((.*?)\)", deps, re.S).group(1).split())
installs = re.findall(r"apt-get install (.*?)(?:&&|$)", docker, re.M)
assert len(installs) == 2, f"expected 2 apt-get install commands in the Dockerfile, found {len(installs)}"
build = [w for w in installs[0].split() if not w.startswith("-")]
extra = sorted(set(build) - allowed)
assert not extra, f"the Dockerfile's build stage installs {extra}, which scripts/install-deps does not"
for need in ("libtorch-dev", "libgrpc++-dev", "prometheus-cpp-dev", "cmake", "ninja-build"):
    assert need in build, f"the build stage does not install {need}"
# The final stage adds the packages found by ldd in the build stage: $(cat ...), not checked here.
runtime = [w for w in re.sub(r"\$\([^)]*\)", "", installs[1]).split() if not w.startswith("-")]
extra = sorted(set(runtime) - allowed)
assert not extra, f"the final stage installs {extra}, which scripts/install-deps does not"
entry = re.findall(r"^ENTRYPOINT (.*)$", docker, re.M)
assert entry and "/usr/local/bin/sgt-" in entry[-1], "the image's ENTRYPOINT is not an sgt daemon"
PY

end=$(date +%s%N)
s() { printf '%d.%d' $((($2 - $1) / 1000000000)) $((($2 - $1) / 100000000 % 10)); }
echo "k8s_manifests_test: ok (npm $(s "$start" "$installed") s, render $(s "$installed" "$rendered") s," \
  "check $(s "$rendered" "$checked") s, self-test $(s "$checked" "$end") s)"
