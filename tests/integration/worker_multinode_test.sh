#!/usr/bin/env bash
# One run over two workers (issue 16): a `nodes: 2` sweep run is gang-scheduled on two workers
# with one CPU slot each, ranks 0 and 1 meeting at node 0's rendezvous address. kill -9 of either
# worker ends the attempt on both (no rank process is left behind), the run goes back to the
# queue, and once the worker is back it resumes on both from its newest checkpoint; it finishes
# with losses bit-identical to an uninterrupted 2-rank run. Killed twice: node 1's worker, then
# node 0's.
BIN=$1 SCRATCH=$2
source "$(dirname "$0")/lib.sh"
begin_worker_test
EXTRA="nodes: 2" STEPS=600 write_real_sweep "$SCRATCH/sweep.yaml" "$SCRATCH/data" "train.seed: [5]"

start_coordinator "$db" --lease-seconds 6
port_a=$(free_port) port_b=$(free_port)
flags_of() {  # the worker flags of node-a / node-b
  if [[ $1 == node-a ]]; then echo "--rendezvous-host 127.0.0.1 --rendezvous-ports $port_a-$port_a"
  else echo "--rendezvous-host 127.0.0.1 --rendezvous-ports $port_b-$port_b"; fi
}
start_worker node-a $(flags_of node-a); pid_a=$WORKER_PID
start_worker node-b $(flags_of node-b); pid_b=$WORKER_PID
"$BIN/sgtctl" submit "$SCRATCH/sweep.yaml" > /dev/null

# kill_node ATTEMPT NODE: waits until attempt ATTEMPT has written a checkpoint past its start,
# kills -9 the worker of node NODE, checks that the attempt ends on both workers with no rank
# left, and starts that worker again.
kill_node() {
  local attempt=$1 node=$2 name pid start
  wait_until sql_true "$db" "SELECT state = 'running' AND attempt = $attempt FROM runs WHERE id = 1"
  start=$(sqlite3 "$db" "SELECT start_step FROM run_attempts WHERE run_id = 1 AND attempt = $attempt")
  wait_until sql_true "$db" "SELECT COUNT(*) > 0 FROM checkpoints WHERE run_id = 1 AND attempt = $attempt AND step > $start"
  name=$(sqlite3 "$db" "SELECT w.name FROM runs r JOIN workers w ON w.id = json_extract(r.worker_ids, '\$[$node]') WHERE r.id = 1")
  [[ -n $name ]] || fail "no worker for node $node: $(sqlite3 "$db" "SELECT worker_ids FROM runs WHERE id = 1")"
  pid=$(pid_of "$name")
  pgrep -f -- "run[s]/r1/attempt-$attempt" > /dev/null || fail "no rank of attempt $attempt is running"
  kill -9 "$pid"
  # Its rank dies with it; the other node's rank loses its peer and ends; nothing is left.
  # ([s]: the pattern must not match the command line of the bash that runs pgrep.)
  wait_until bash -c "! pgrep -f -- 'run[s]/r1/attempt-$attempt' > /dev/null"
  wait_until sql_true "$db" "SELECT state IN ('queued', 'assigned') AND attempt = $attempt FROM runs WHERE id = 1"
  echo "attempt $attempt: killed $name (node $node): $(sqlite3 "$db" "SELECT reason FROM runs WHERE id = 1")"
  start_worker "$name" $(flags_of "$name")
  if [[ $name == node-a ]]; then pid_a=$WORKER_PID; else pid_b=$WORKER_PID; fi
}
kill_node 1 1
kill_node 2 0

timeout 300 "$BIN/sgtctl" watch r1 > "$SCRATCH/watch.txt" || fail "watch: $(tail -3 "$SCRATCH/watch.txt")"
[[ $(run_state "$db" r1) == succeeded ]] || fail "r1 is $(run_state "$db" r1): $(sqlite3 "$db" "SELECT reason FROM runs WHERE id = 1")"
IFS='|' read -r attempt restarts < <(sqlite3 "$db" "SELECT attempt, restarts FROM runs WHERE id = 1")
[[ $attempt == 3 && $restarts == 2 ]] || fail "attempt $attempt, restarts $restarts; want 3 and 2"
# Each later attempt resumed from a checkpoint of the one before.
for a in 2 3; do
  s=$(sqlite3 "$db" "SELECT start_step FROM run_attempts WHERE run_id = 1 AND attempt = $a")
  sql_true "$db" "SELECT COUNT(*) = 1 FROM checkpoints WHERE run_id = 1 AND attempt = $((a - 1)) AND step = $s AND $s > 0" ||
    fail "attempt $a started at step $s, not at a checkpoint of attempt $((a - 1))"
done
# Only node 0's telemetry is stored, once; the ranks of node 1 wrote no events.
check_store_matches_events "$db" "$SCRATCH/node-a" "$SCRATCH/node-b"
RANKS=2 run_alone "$db" r1 "$SCRATCH/whole"
check_same_losses "$db" r1 "$SCRATCH/whole/events.jsonl" 0
stop_coordinator
echo PASS
