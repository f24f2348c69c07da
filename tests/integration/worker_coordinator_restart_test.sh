#!/usr/bin/env bash
# kill -9 the coordinator while a real run trains, and start it again on the same store and
# port: the worker spools its telemetry meanwhile, reconnects, replays it, and the run goes on
# in the same attempt. Every row the child logged is stored exactly once. Then SIGTERM to the
# worker while the coordinator is frozen: it exits 0 at once.
BIN=$1 SCRATCH=$2
source "$(dirname "$0")/lib.sh"
begin_worker_test
STEPS=800 write_real_sweep "$SCRATCH/sweep.yaml" "$SCRATCH/data" "train.seed: [7]"

start_coordinator "$db" --lease-seconds 6
start_worker node-a
"$BIN/sgtctl" submit "$SCRATCH/sweep.yaml" > /dev/null
wait_until sql_true "$db" "SELECT state = 'running' AND step > 50 FROM runs WHERE id = 1"
kill -9 "$COORD_PID"
wait "$COORD_PID" 2>/dev/null || true
down_step=$(sqlite3 "$db" "SELECT step FROM runs WHERE id = 1")
# The child trains on while the coordinator is away.
log=$SCRATCH/node-a/runs/r1/attempt-1/events.jsonl
wait_until python3 -c "import json,sys; s=[json.loads(l).get('step',0) for l in open('$log')]; sys.exit(max(s) < $down_step + 60)"
COORD_LISTEN=${SGT_COORDINATOR} start_coordinator "$db" --lease-seconds 6
timeout 300 "$BIN/sgtctl" watch r1 > "$SCRATCH/watch.txt" || fail "watch: $(tail -3 "$SCRATCH/watch.txt")"
[[ $(sqlite3 "$db" "SELECT attempt || ' ' || restarts FROM runs WHERE id = 1") == "1 0" ]] ||
  fail "the run did not go on in its first attempt: $(sqlite3 "$db" "SELECT * FROM run_events")"
[[ $(sqlite3 "$db" "SELECT COUNT(*) FROM run_events WHERE to_state = 'lost'") == 0 ]] || fail "lost"
(( $(grep -c "connected to" "$SCRATCH/node-a.log") >= 2 )) || fail "the worker did not reconnect"
check_store_matches_events "$db" "$SCRATCH/node-a"
[[ -z $(find "$SCRATCH/node-a/spool" -type f -size +0) ]] || fail "spool not empty"

# SIGTERM while the coordinator does not answer (stopped): the worker still stops, at once and
# cleanly, and does not come back to life when the coordinator does.
kill -STOP "$COORD_PID"
WAIT_S=30 wait_until grep -q "no word from the coordinator" "$SCRATCH/node-a.log"
kill -TERM "$WORKER_PID"
# A hang becomes a failure (137) rather than a stuck test; a loaded machine is slow, not hung.
# The watchdog's output goes nowhere, so that its sleep, left behind when it is killed, does not
# hold the test's output open (ctest would wait for it).
(sleep 60; kill -9 "$WORKER_PID") > /dev/null 2>&1 & watchdog=$!
rc=0; wait "$WORKER_PID" || rc=$?
kill "$watchdog" 2> /dev/null || true
kill -CONT "$COORD_PID"
[[ $rc == 0 ]] || fail "the worker exited $rc on SIGTERM while the coordinator was away (137: it hung)"
stop_coordinator
echo PASS
