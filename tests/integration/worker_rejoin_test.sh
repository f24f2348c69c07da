#!/usr/bin/env bash
# An idle worker rejoins a coordinator that was killed and started again at the same address
# as soon as it listens (issue 22): the worker's Register waits for the connecting channel and
# so drives the connection itself. Before, it failed fast while the channel was in transient
# failure, and the channel then retried only on gRPC's backup poll (5 s by default). Here that
# poll is set to 120 s, so a worker that still depended on it could not come back within the
# test's deadline (60 s, generous for a loaded machine; it takes about a second).
BIN=$1 SCRATCH=$2
source "$(dirname "$0")/lib.sh"
begin_worker_test
export GRPC_CLIENT_CHANNEL_BACKUP_POLL_INTERVAL_MS=120000

start_coordinator "$db"
start_worker node-a
kill -9 "$COORD_PID"
wait "$COORD_PID" 2>/dev/null || true
# The worker notices and starts retrying while nothing listens.
wait_until grep -q "cannot reach the coordinator" "$SCRATCH/node-a.log"
COORD_LISTEN=${SGT_COORDINATOR} start_coordinator "$db"
listening=$EPOCHREALTIME
WAIT_S=60 wait_until bash -c "(( \$(grep -c 'connected to' '$SCRATCH/node-a.log') >= 2 ))"
echo "rejoined $(python3 -c "print(f'{$EPOCHREALTIME - $listening:.2f}')") s after the coordinator listened again"
# It rejoined as the same worker, with a live session.
[[ $("$BIN/sgtctl" workers --json | python3 -c "import json,sys; w=json.load(sys.stdin)['workers']; print(len(w), w[0]['connected'])") == "1 True" ]] ||
  fail "after the rejoin: $("$BIN/sgtctl" workers)"
stop_coordinator
echo PASS
