#!/usr/bin/env bash
# The end-to-end loop: a coordinator, two sgt-worker daemons with one CPU slot each, and a sweep
# of three real runs (vanilla, block_loop, sgt) submitted with sgtctl. Every run succeeds; every
# scalar, entropy row, growth decision and checkpoint its sgt-train child logged is stored
# exactly once; every growth boundary has its decision; checkpoints are recorded with the size
# and sha256 of the file on disk; the report covers the three variants; both workers stop
# cleanly on SIGTERM and their children die with them.
BIN=$1 SCRATCH=$2
source "$(dirname "$0")/lib.sh"
begin_worker_test
STEPS=300 write_real_sweep "$SCRATCH/sweep.yaml" "$SCRATCH/data"

start_coordinator "$db" --lease-seconds 6
start_two_workers
[[ $("$BIN/sgtctl" workers | grep -c " yes ") == 2 ]] || fail "sgtctl workers: $("$BIN/sgtctl" workers)"

"$BIN/sgtctl" submit "$SCRATCH/sweep.yaml" > /dev/null
timeout 300 "$BIN/sgtctl" watch s1 > "$SCRATCH/watch.txt" || fail "watch: $(tail -5 "$SCRATCH/watch.txt")"
[[ $(sqlite3 "$db" "SELECT COUNT(*) FROM runs WHERE state = 'succeeded'") == 3 ]] || fail "not all succeeded"
# Both workers took part (one run each at first; the third went to whichever was free).
[[ $(sqlite3 "$db" "SELECT COUNT(DISTINCT worker_id) FROM run_attempts") == 2 ]] ||
  fail "the runs did not spread over both workers: $(sqlite3 "$db" "SELECT * FROM run_attempts")"

check_store_matches_events "$db" "$SCRATCH/node-a" "$SCRATCH/node-b"
# Every growth boundary of the growing runs has its decision: sgt at 100, 200, 300; block_loop
# loops all blocks once, at 100.
[[ $(sqlite3 "$db" "SELECT group_concat(step) FROM (SELECT DISTINCT step FROM growth_decisions
      WHERE run_id = 3 ORDER BY step)") == "100,200,300" ]] || fail "sgt decisions"
[[ $(sqlite3 "$db" "SELECT COUNT(*) FROM growth_decisions WHERE run_id = 1") == 0 ]] || fail "vanilla decided"
# Each checkpoint record names a file under the root with that size and hash; one per step.
sqlite3 -separator $'\t' "$db" "SELECT path, bytes, sha256 FROM checkpoints" | while IFS=$'\t' read -r path bytes sha; do
  [[ $path == "$SCRATCH/ckpt/"* ]] || fail "checkpoint $path outside the root"
  [[ $(stat -c %s "$path") == "$bytes" ]] || fail "$path: size differs from the record"
  [[ $(sha256sum "$path" | cut -d' ' -f1) == "$sha" ]] || fail "$path: sha256 differs from the record"
done
[[ $(sqlite3 "$db" "SELECT COUNT(*) FROM checkpoints GROUP BY run_id, step HAVING COUNT(*) > 1") == "" ]] ||
  fail "a step has two checkpoint records"
"$BIN/sgtctl" report s1 > "$SCRATCH/report.txt"
for v in vanilla block_loop sgt; do grep -q "$v" "$SCRATCH/report.txt" || fail "report lacks $v"; done
# Nothing left unacknowledged in the spools.
[[ -z $(find "$SCRATCH/node-a/spool" "$SCRATCH/node-b/spool" -type f -size +0) ]] || fail "spool not empty"

# A long run, then SIGTERM to its worker: the child dies, the run goes back to the queue at once
# (the worker reports it lost), and the worker exits 0.
STEPS=100000 SWEEP_NAME=long write_real_sweep "$SCRATCH/long.yaml" "$SCRATCH/data" "train.seed: [9]"
"$BIN/sgtctl" submit "$SCRATCH/long.yaml" > /dev/null
wait_until sql_true "$db" "SELECT state = 'running' AND step > 0 FROM runs WHERE id = 4"
holder=$(holder_of "$db" r4)
child=$(pgrep -f "$SCRATCH/$holder/runs/r4/attempt-1") || fail "no sgt-train child for r4"
other=$(other_than "$holder")
pid=$(pid_of "$holder")
kill -TERM "$pid"
rc=0; wait "$pid" || rc=$?
[[ $rc == 0 ]] || fail "$holder exited $rc on SIGTERM: $(tail -3 "$SCRATCH/$holder.log")"
! kill -0 "$child" 2>/dev/null || fail "sgt-train of r4 outlived its worker"
sqlite3 "$db" "SELECT reason FROM run_events WHERE run_id = 4 AND to_state = 'lost'" | grep -q "shut down" ||
  fail "r4 was not reported lost by its worker: $(sqlite3 "$db" "SELECT * FROM run_events WHERE run_id = 4")"
# It goes on on the other worker.
# It goes on on the other worker; cancel stops its child.
wait_until sql_true "$db" "SELECT state = 'running' AND attempt = 2 AND step > 100 FROM runs WHERE id = 4"
child=$(pgrep -f "$SCRATCH/$other/runs/r4/attempt-2") || fail "no sgt-train child for r4 on $other"
"$BIN/sgtctl" cancel r4 > /dev/null
wait_until sql_true "$db" "SELECT state = 'cancelled' FROM runs WHERE id = 4"
wait_until bash -c "! kill -0 $child"   # SIGTERM; SIGKILL after the grace period
wait_until grep -q "r4 attempt 2 ended: RUN_STATE_CANCELLED" "$SCRATCH/$other.log"
stop_coordinator
echo PASS
