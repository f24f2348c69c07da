#!/usr/bin/env bash
# sgtctl against a live coordinator on a loopback port: submit, ls, show, edit, pause, resume,
# cancel, workers; bad input of every kind gets a clear error and a meaningful exit status, the
# daemon keeps serving, and the store is unchanged.
BIN=$1 SCRATCH=$2
source "$(dirname "$0")/lib.sh"
rm -rf "$SCRATCH" && mkdir -p "$SCRATCH"
kill_jobs_on_exit
db=$SCRATCH/sgt.db
ctl() { "$BIN/sgtctl" "$@"; }  # a function: $BIN may hold spaces
start_coordinator "$db"

# Submit: the sweep id and its runs.
ctl submit "$SGT_SOURCE_DIR/examples/sweep-seeds.yaml" > "$SCRATCH/submit.txt"
grep -q "submitted sweep s1" "$SCRATCH/submit.txt" || fail "submit did not print the sweep id"
[[ $(grep -c "^r[0-9]" "$SCRATCH/submit.txt") == 15 ]] || fail "submit did not list 15 runs"
[[ $(rows "$db" runs) == 15 ]] || fail "store has $(rows "$db" runs) runs, want 15"

# ls / show, text and JSON.
ctl ls | grep -q "sweep-seeds" || fail "ls does not list the sweep"
ctl ls s1 --json > "$SCRATCH/ls.json"
python3 - "$SCRATCH/ls.json" <<'PY' || fail "ls s1 --json is not the 15 queued runs"
import json, sys
d = json.load(open(sys.argv[1]))
runs = d["runs"] if isinstance(d, dict) else d
assert len(runs) == 15 and all(r["state"] == "RUN_STATE_QUEUED" for r in runs), runs[:1]
PY
ctl show r4 | grep -q "block_loop" || fail "show r4 does not show its variant"
ctl show s1 | grep -q "sweep-seeds" || fail "show s1 does not show the sweep"

# Edit the sweep's queued runs; the store has the new values.
ctl edit s1 --priority 70 --steps 400 --max-concurrent 2 > /dev/null
[[ $(sqlite3 "$db" "SELECT COUNT(*) FROM runs WHERE priority = 70 AND steps = 400") == 15 ]] \
  || fail "edit did not reach every queued run"
[[ $(sqlite3 "$db" "SELECT max_concurrent FROM sweeps WHERE id = 1") == 2 ]] || fail "edit did not set max_concurrent"
sqlite3 "$db" "SELECT config_json FROM runs WHERE id = 1" | grep -q '"steps":400' || fail "edit did not change the run's configuration"

# Pause a queued run, resume it, cancel another, cancel a cancelled one (refused: exit 4).
ctl pause r2 > /dev/null
[[ $(sqlite3 "$db" "SELECT state FROM runs WHERE id = 2") == paused ]] || fail "pause r2"
ctl resume r2 > /dev/null
[[ $(sqlite3 "$db" "SELECT state FROM runs WHERE id = 2") == queued ]] || fail "resume r2"
ctl cancel r3 --reason "not needed" > /dev/null
[[ $(sqlite3 "$db" "SELECT state FROM runs WHERE id = 3") == cancelled ]] || fail "cancel r3"
sqlite3 "$db" "SELECT reason FROM run_events WHERE run_id = 3 ORDER BY id DESC LIMIT 1" | grep -q "not needed" \
  || fail "the cancel reason is not in the run's events"
expect_fail 4 "already ended" ctl cancel r3
ctl workers > /dev/null || fail "workers failed"

# Bad input: each refused with the place and the fix, nothing stored.
dump() { sqlite3 "$db" ".dump sweeps runs run_events workers"; }
dump > "$SCRATCH/before.txt"
printf 'name: bad\nbase:\n  variant: sgt\n  model: {layers: 4\n' > "$SCRATCH/malformed.yaml"
expect_fail 2 "malformed.yaml:[0-9]+:[0-9]+" ctl submit "$SCRATCH/malformed.yaml"
printf 'name: bad\nbase:\n  variant: sgt\n  trian: {steps: 10}\n' > "$SCRATCH/unknown.yaml"
expect_fail 2 "unknown.yaml:4:3: .*trian.*unknown key" ctl submit "$SCRATCH/unknown.yaml"
printf 'name: bad\nbase:\n  variant: sgt\ngrid:\n  growth.k_max: [1, 0]\n' > "$SCRATCH/range.yaml"
expect_fail 2 "range.yaml:5:.*growth.k_max" ctl submit "$SCRATCH/range.yaml"
printf 'name: bad\nbase: {variant: sgt}\npriority: 5000\n' > "$SCRATCH/prio.yaml"
expect_fail 2 "prio.yaml:3:.*priority" ctl submit "$SCRATCH/prio.yaml"
expect_fail 3 "r999 not found" ctl show r999
expect_fail 3 "s9 not found" ctl cancel s9
expect_fail 2 "r<N>|s<N>" ctl show banana
expect_fail 2 "steps" ctl edit r1 --steps 0
expect_fail 4 "no checkpoint" ctl fork r1 --from-step 10
dump > "$SCRATCH/after.txt"
diff "$SCRATCH/before.txt" "$SCRATCH/after.txt" > /dev/null || fail "bad input changed the store"

# The daemon is still serving, and an unreachable coordinator is exit 1 with the fix.
ctl ls | grep -q "sweep-seeds" || fail "the coordinator stopped serving after bad input"
expect_fail 1 "start sgt-coordinator" ctl --coordinator 127.0.0.1:1 ls

# A second coordinator on the same store, or on the same port, is refused (exit 2).
expect_fail 2 "in use by another sgt-coordinator \(pid $COORD_PID\)" \
  "$BIN/sgt-coordinator" --listen 127.0.0.1:0 --db "$db"
expect_fail 2 "cannot listen on $SGT_COORDINATOR" \
  "$BIN/sgt-coordinator" --listen "$SGT_COORDINATOR" --db "$SCRATCH/other.db"

# Cancel the whole sweep; SIGTERM stops the daemon cleanly.
ctl cancel s1 > /dev/null
[[ $(sqlite3 "$db" "SELECT COUNT(*) FROM runs WHERE state = 'cancelled'") == 15 ]] || fail "cancel s1"
stop_coordinator
grep -q "stopped" "$SCRATCH/coordinator.log" || fail "no clean shutdown in the log"
echo "PASS"
