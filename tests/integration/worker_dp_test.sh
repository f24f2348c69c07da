#!/usr/bin/env bash
# A data-parallel run through the whole system (issue 16): a sweep run with `devices: 2` on a
# worker with two CPU slots trains as two sgt-train ranks; paused at a growth boundary and
# resumed, it finishes with losses bit-identical to an uninterrupted 2-rank run of the same
# configuration, and its telemetry (rank 0's) is stored exactly once.
BIN=$1 SCRATCH=$2
source "$(dirname "$0")/lib.sh"
begin_worker_test
EXTRA="devices: 2" write_real_sweep "$SCRATCH/sweep.yaml" "$SCRATCH/data" "train.seed: [5]"

start_coordinator "$db" --lease-seconds 6
DEVICES=cpu:2 start_worker node-a
"$BIN/sgtctl" submit "$SCRATCH/sweep.yaml" > /dev/null
wait_until sql_true "$db" "SELECT state = 'running' AND step > 0 FROM runs WHERE id = 1"
dir=$SCRATCH/node-a/runs/r1/attempt-1
[[ -f $dir/rank-1.stderr.log ]] || fail "no second rank: $(ls "$dir")"
"$BIN/sgtctl" show r1 > "$SCRATCH/show.txt"

"$BIN/sgtctl" pause r1 > /dev/null
wait_until sql_true "$db" "SELECT state = 'paused' FROM runs WHERE id = 1"
step=$(sqlite3 "$db" "SELECT step FROM runs WHERE id = 1")
(( step % 100 == 0 && step < 500 )) || fail "paused at step $step: not a growth boundary before the end"
# Both ranks stopped at that boundary: none is left running.
# ([-]: the pattern must not match the command line of the bash that runs pgrep.)
wait_until bash -c "! pgrep -f -- '[-]-out $dir' > /dev/null"
grep -q "paused at step $step" "$dir/rank-1.stdout.log" || fail "rank 1 did not pause at $step: $(cat "$dir/rank-1.stdout.log")"

"$BIN/sgtctl" resume r1 > /dev/null
timeout 300 "$BIN/sgtctl" watch r1 > "$SCRATCH/watch.txt" || fail "watch: $(tail -3 "$SCRATCH/watch.txt")"
[[ $(run_state "$db" r1) == succeeded ]] || fail "r1 is $(run_state "$db" r1)"
[[ $(sqlite3 "$db" "SELECT start_step FROM run_attempts WHERE run_id = 1 AND attempt = 2") == "$step" ]] ||
  fail "attempt 2 did not resume from step $step"
[[ -f $SCRATCH/node-a/runs/r1/attempt-2/rank-1.stderr.log ]] || fail "attempt 2 ran on one rank"

check_store_matches_events "$db" "$SCRATCH/node-a"
RANKS=2 run_alone "$db" r1 "$SCRATCH/whole"
check_same_losses "$db" r1 "$SCRATCH/whole/events.jsonl" 0
stop_coordinator
echo PASS
