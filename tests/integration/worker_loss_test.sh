#!/usr/bin/env bash
# kill -9 the worker running a run: its sgt-train child dies with it; when the worker's lease
# expires the run is lost and re-queued from its newest checkpoint, finishes on the other worker,
# and its losses (the steps the dead attempt reported, then the new attempt's) are bit-identical
# to an uninterrupted run of the same configuration. The dead worker's rows are kept, never
# doubled; a restarted worker comes back under its old id.
BIN=$1 SCRATCH=$2
source "$(dirname "$0")/lib.sh"
begin_worker_test
write_real_sweep "$SCRATCH/sweep.yaml" "$SCRATCH/data" "train.seed: [6]"

start_coordinator "$db" --lease-seconds 3
start_two_workers
"$BIN/sgtctl" submit "$SCRATCH/sweep.yaml" > /dev/null
wait_until sql_true "$db" "SELECT COUNT(*) > 0 FROM checkpoints WHERE run_id = 1"
wait_until sql_true "$db" "SELECT step > 130 FROM runs WHERE id = 1"
holder=$(holder_of "$db" r1)
other=$(other_than "$holder")
child=$(pgrep -f "$SCRATCH/$holder/runs/r1/attempt-1") || fail "no child for r1"
kill -9 "$(pid_of "$holder")"
wait_until bash -c "! kill -0 $child"

timeout 300 "$BIN/sgtctl" watch r1 > "$SCRATCH/watch.txt" || fail "watch: $(tail -3 "$SCRATCH/watch.txt")"
sqlite3 "$db" "SELECT reason FROM run_events WHERE run_id = 1 AND to_state = 'queued' AND attempt = 1" |
  grep -q "re-queued from its checkpoint at step" || fail "r1 was not re-queued from a checkpoint"
resume=$(sqlite3 "$db" "SELECT start_step FROM run_attempts WHERE run_id = 1 AND attempt = 2")
(( resume >= 100 )) || fail "attempt 2 started at step $resume, not from a checkpoint"
[[ $(sqlite3 "$db" "SELECT w.name FROM run_attempts a JOIN workers w ON w.id = a.worker_id
      WHERE a.run_id = 1 AND a.attempt = 2") == "$other" ]] || fail "attempt 2 did not run on $other"
[[ $(sqlite3 "$db" "SELECT restarts FROM runs WHERE id = 1") == 1 ]] || fail "restarts"

check_store_matches_events "$db" "$SCRATCH/node-a" "$SCRATCH/node-b"
# Rows of both attempts stay; queries show the surviving attempt per step.
(( $(sqlite3 "$db" "SELECT COUNT(*) FROM scalars WHERE run_id = 1 AND attempt = 1 AND step > $resume") > 0 )) ||
  fail "the dead attempt reported nothing past the checkpoint (test too fast to show replacement)"
"$BIN/sgtctl" export r1 --what scalars --format csv > "$SCRATCH/export.csv"
python3 - "$SCRATCH/export.csv" "$resume" <<'PY'
import csv, sys
rows = [r for r in csv.DictReader(open(sys.argv[1])) if r.get("name") == "loss"]
steps = [int(r["step"]) for r in rows]
assert sorted(steps) == list(range(1, 501)), "export does not show one loss per step"
PY
run_alone "$db" r1 "$SCRATCH/whole"
check_same_losses "$db" r1 "$SCRATCH/whole/events.jsonl" 0

# The dead worker restarts under its name: same id, connected, and free for work.
start_worker "$holder"
"$BIN/sgtctl" workers | grep -E "^w[0-9]+ +$holder " | grep -q " yes " || fail "$holder did not come back"
stop_coordinator
echo PASS
