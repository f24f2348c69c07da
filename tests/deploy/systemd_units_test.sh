#!/usr/bin/env bash
# deploy/systemd's units: `systemd-analyze verify` accepts them without a single warning (it
# exits 0 on unknown keys and bad values, so any output fails the test), `systemd-analyze
# security --offline` rates them below a threshold, they keep the settings docs/operations.md
# promises (a dedicated user, ProtectSystem=strict, no restart on exit 2, an EnvironmentFile),
# the worker's hardening leaves /dev/nvidia* reachable, and each ExecStart, with the unit's
# defaults and with the example environment files, is a command line its daemon accepts
# (--check-args). Then that the check fails on a broken unit and on a bad flag.
#
# verify needs ExecStart's program to exist, so it checks a copy of each unit whose ExecStart
# names the program built here ("$BIN/sgt-..."); nothing else in the copy differs.
BIN=$1 SCRATCH=$2
source "$(dirname "$0")/../integration/lib.sh"
src=${SGT_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
rm -rf "$SCRATCH" && mkdir -p "$SCRATCH"
command -v systemd-analyze > /dev/null || fail "systemd-analyze not found (scripts/install-deps installs systemd)"
units=$src/deploy/systemd

# A copy of unit $1 whose ExecStart runs $BIN's program, at $2.
localize() {
  local unit=$1 out=$2 exe
  exe=$(basename "$unit" .service)
  sed "s|^ExecStart=/usr/local/bin/$exe |ExecStart=\"$BIN/$exe\" |" "$unit" > "$out"
  [[ $(diff "$unit" "$out" | grep -c '^>') == 1 ]] || fail "$unit: no 'ExecStart=/usr/local/bin/$exe ' line to point at $BIN"
}

# verify: rc 0 and no output at all. $1: the unit (a localized copy).
verify() {
  local rc=0
  (cd "$(dirname "$1")" && systemd-analyze verify "./$(basename "$1")") > "$SCRATCH/verify.txt" 2>&1 || rc=$?
  if ((rc != 0)) || [[ -s $SCRATCH/verify.txt ]]; then
    cat "$SCRATCH/verify.txt" >&2
    return 1
  fi
}

# The ExecStart of unit $1 expanded as systemd does (${V}: one word, $V: split on whitespace),
# with the unit's Environment= defaults overridden by env file $2 (optional); runs $BIN's daemon
# on it with --check-args.
check_flags() {
  python3 - "$1" "${2:-}" "$BIN" <<'PY'
import re, shlex, subprocess, sys
unit, envfile, bin_dir = sys.argv[1:4]
text = re.sub(r"\\\n", " ", open(unit).read())
env, execstart = {}, None
for line in text.splitlines():
    if line.startswith("Environment="):
        for kv in shlex.split(line[len("Environment="):]):
            k, _, v = kv.partition("=")
            env[k] = v
    elif line.startswith("ExecStart="):
        execstart = line[len("ExecStart="):]
if envfile:
    for line in open(envfile):
        line = line.strip()
        if line and not line.startswith("#"):
            k, _, v = line.partition("=")
            env[k] = v
argv = []
for word in shlex.split(execstart):
    m = re.fullmatch(r"\$\{(\w+)\}|\$(\w+)", word)
    if m and m.group(1):
        argv.append(env[m.group(1)])
    elif m:
        argv.extend(env[m.group(2)].split())
    else:
        assert "$" not in word, f"{unit}: cannot expand {word}"
        argv.append(word)
exe = argv[0].split("/")[-1]
cmd = [f"{bin_dir}/{exe}", "--check-args"] + argv[1:]
r = subprocess.run(cmd, capture_output=True, text=True)
if r.returncode != 0:
    sys.exit(f"{unit}{' with ' + envfile if envfile else ''}: {exe} refuses its ExecStart "
             f"{argv[1:]}: {r.stderr.splitlines()[0] if r.stderr else r.returncode}")
PY
}

for name in sgt-coordinator sgt-worker; do
  unit=$units/$name.service
  local_unit=$SCRATCH/$name.service
  localize "$unit" "$local_unit"
  verify "$local_unit" || fail "systemd-analyze verify $name.service is not clean (above)"

  # Settings the docs promise.
  for want in "^User=sgt$" "^ProtectSystem=strict$" "^NoNewPrivileges=yes$" "^PrivateTmp=yes$" \
    "^ProtectHome=" "^RestartPreventExitStatus=2$" "^Restart=on-failure$" "^EnvironmentFile=-/etc/sgt/" \
    "^StateDirectory=" "^ReadWritePaths=" "^CapabilityBoundingSet=$"; do
    grep -qE "$want" "$unit" || fail "$name.service lacks /$want/"
  done

  envfile=$units/${name#sgt-}.env
  [[ -f $envfile ]] || fail "no example environment file $envfile"
  check_flags "$unit" || fail "$name.service's defaults"
  check_flags "$unit" "$envfile" || fail "$name.service with $(basename "$envfile")"
done

# The exposure score (0 safest .. 10), from `systemd-analyze security`; --threshold is x10.
systemd-analyze security --offline=yes --threshold=20 "$SCRATCH/sgt-coordinator.service" > "$SCRATCH/security.txt" 2>&1 ||
  { tail -3 "$SCRATCH/security.txt" >&2; fail "sgt-coordinator.service's exposure is above 2.0"; }
systemd-analyze security --offline=yes --threshold=45 "$SCRATCH/sgt-worker.service" > "$SCRATCH/security.txt" 2>&1 ||
  { tail -3 "$SCRATCH/security.txt" >&2; fail "sgt-worker.service's exposure is above 4.5"; }

# The worker must reach the GPUs: nothing that hides or filters /dev (ProtectClock implies a
# DeviceAllow list), nothing that stops LibTorch's JIT kernels.
for banned in "^PrivateDevices=yes" "^DevicePolicy=(closed|strict)" "^DeviceAllow=" "^ProtectClock=yes" \
  "^MemoryDenyWriteExecute=yes" "^SystemCallFilter="; do
  ! grep -qE "$banned" "$units/sgt-worker.service" || fail "sgt-worker.service has /$banned/: it cuts the worker off its GPUs or LibTorch"
done
grep -q "^ReadWritePaths=.*/shared/sgt/checkpoints" "$units/sgt-worker.service" ||
  fail "sgt-worker.service does not make the checkpoint root writable"

# docs/operations.md points at the files instead of holding copies.
grep -q "deploy/systemd/sgt-coordinator.service" "$src/docs/operations.md" || fail "docs/operations.md does not point at deploy/systemd"
! grep -q "^ExecStart=" "$src/docs/operations.md" || fail "docs/operations.md still holds a unit's text"

# The checks can fail: an unknown key (verify only warns), a bad value, a flag the daemon lacks.
sed 's/^ProtectSystem=/ProtectSytem=/' "$SCRATCH/sgt-coordinator.service" > "$SCRATCH/typo.service"
! verify "$SCRATCH/typo.service" 2> /dev/null || fail "verify accepted an unknown key"
sed 's/^Restart=on-failure/Restart=sometimes/' "$SCRATCH/sgt-worker.service" > "$SCRATCH/value.service"
! verify "$SCRATCH/value.service" 2> /dev/null || fail "verify accepted Restart=sometimes"
sed 's/--lease-seconds /--lease-secs /' "$units/sgt-coordinator.service" > "$SCRATCH/flag.service"
! check_flags "$SCRATCH/flag.service" 2> /dev/null || fail "--check-args accepted --lease-secs"
sed 's/^SGT_DEVICES=cuda/SGT_DEVICES=gpu:1/' "$units/worker.env" > "$SCRATCH/bad.env"
! check_flags "$units/sgt-worker.service" "$SCRATCH/bad.env" 2> /dev/null || fail "--check-args accepted --devices gpu:1"
echo "systemd_units_test: ok"
