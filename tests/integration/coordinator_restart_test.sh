#!/usr/bin/env bash
# kill -9 the coordinator mid-sweep and start it again on the same file: every sweep, run, event
# and telemetry row is still there, the running run goes on, the queued runs are scheduled again,
# and at the end every run's telemetry is stored exactly once.
BIN=$1 SCRATCH=$2
source "$(dirname "$0")/lib.sh"
rm -rf "$SCRATCH" && mkdir -p "$SCRATCH"
kill_jobs_on_exit
db=$SCRATCH/sgt.db
write_tiny_sweep "$SCRATCH/sweep.yaml"

start_coordinator "$db" --lease-seconds 10
"$BIN/sgtctl" submit "$SCRATCH/sweep.yaml" > "$SCRATCH/submit.txt"
[[ $(rows "$db" runs) == 3 ]] || fail "submit stored $(rows "$db" runs) runs, want 3"

# One simulated worker with one device: one run at a time, 40 ms a step.
"$BIN/sgt-loadgen" simulate --name node-a --devices 1 --step-ms 40 --exit-after-runs 3 \
  > "$SCRATCH/worker.json" 2> "$SCRATCH/worker.log" &
worker=$!
WAIT_S=30 wait_until sql_true "$db" "SELECT COUNT(*) > 0 FROM entropy"

# Freeze the worker, then the coordinator, so that nothing changes the store after it is read
# (a batch the coordinator is storing may be committed or not, but not after the dump); then
# kill the coordinator without warning.
kill -STOP "$worker"
kill -STOP "$COORD_PID"
dump() { sqlite3 "$db" "SELECT * FROM sweeps; SELECT id, state, attempt, step FROM runs;
  SELECT * FROM run_events; SELECT COUNT(*), SUM(value) FROM entropy; SELECT COUNT(*) FROM scalars;
  SELECT * FROM telemetry_batches;"; }
dump > "$SCRATCH/before.txt"
grep -q "running" <(sqlite3 "$db" "SELECT state FROM runs") || fail "no run was running before the kill"
kill -9 "$COORD_PID"
wait "$COORD_PID" 2>/dev/null || true
COORD_LISTEN=$SGT_COORDINATOR start_coordinator "$db" --lease-seconds 10
dump > "$SCRATCH/after.txt"
diff "$SCRATCH/before.txt" "$SCRATCH/after.txt" || fail "the store changed across kill -9 and restart"

# The worker comes back, reconnects and finishes its run; the queued runs follow.
kill -CONT "$worker"
WAIT_S=120 wait_until sql_true "$db" "SELECT COUNT(*) = 3 FROM runs WHERE state = 'succeeded'"
wait "$worker" || fail "the simulated worker failed: $(tail -5 "$SCRATCH/worker.log")"
check_complete_telemetry "$db" || fail "telemetry lost or duplicated across the restart"
# No run was lost: the worker reconnected within its lease.
[[ $(sqlite3 "$db" "SELECT COUNT(*) FROM run_events WHERE to_state='lost'") == 0 ]] || fail "a run was declared lost"
"$BIN/sgtctl" ls > "$SCRATCH/ls.txt"
stop_coordinator
echo "PASS"
