#!/usr/bin/env bash
# Snapshot and pause through the whole system: sgtctl -> coordinator -> worker -> sgt-train,
# honoured at growth boundaries; the checkpoints are recorded with the size and sha256 of the
# file. The paused run resumes on the other worker (its own has stopped) and finishes with the
# losses of an uninterrupted sgt-train run of the same configuration, bit for bit.
BIN=$1 SCRATCH=$2
source "$(dirname "$0")/lib.sh"
begin_worker_test
write_real_sweep "$SCRATCH/sweep.yaml" "$SCRATCH/data" "train.seed: [5]"

start_coordinator "$db" --lease-seconds 6
start_two_workers
"$BIN/sgtctl" submit "$SCRATCH/sweep.yaml" > /dev/null
wait_until sql_true "$db" "SELECT state = 'running' AND step > 0 FROM runs WHERE id = 1"

"$BIN/sgtctl" snapshot r1 > /dev/null
wait_until sql_true "$db" "SELECT COUNT(*) = 1 FROM checkpoints WHERE run_id = 1 AND reason = 'snapshot'"
"$BIN/sgtctl" pause r1 > /dev/null
wait_until sql_true "$db" "SELECT state = 'paused' FROM runs WHERE id = 1"
step=$(sqlite3 "$db" "SELECT step FROM runs WHERE id = 1")
snap=$(sqlite3 "$db" "SELECT step FROM checkpoints WHERE run_id = 1 AND reason = 'snapshot'")
(( snap % 100 == 0 && step % 100 == 0 && snap < step && step < 500 )) ||
  fail "snapshot at $snap, pause at $step: not at distinct growth boundaries before the end"
"$BIN/sgtctl" show r1 > "$SCRATCH/show.txt"
grep -q "paused" "$SCRATCH/show.txt" || fail "sgtctl show r1 does not say paused: $(cat "$SCRATCH/show.txt")"
IFS=$'\t' read -r path bytes sha < <(sqlite3 -separator $'\t' "$db" \
  "SELECT path, bytes, sha256 FROM checkpoints WHERE run_id = 1 AND reason = 'pause' AND step = $step")
[[ -n $path ]] || fail "no pause checkpoint recorded at step $step"
[[ $(stat -c %s "$path") == "$bytes" && $(sha256sum "$path" | cut -d' ' -f1) == "$sha" ]] ||
  fail "pause checkpoint $path does not match its record"
[[ $(sqlite3 "$db" "SELECT resume_checkpoint FROM runs WHERE id = 1") == "$path" ]] || fail "resume point"

# The worker that ran it goes away; resume continues on the other one.
holder=$(sqlite3 "$db" "SELECT w.name FROM run_attempts a JOIN workers w ON w.id = a.worker_id
                        WHERE a.run_id = 1 AND a.attempt = 1")
other=$(other_than "$holder")
kill -TERM "$(pid_of "$holder")"
wait_until bash -c "\"$BIN/sgtctl\" workers | grep -E '^w[0-9]+ +$holder ' | grep -q ' no '"
"$BIN/sgtctl" resume r1 > /dev/null
timeout 300 "$BIN/sgtctl" watch r1 > "$SCRATCH/watch.txt" || fail "watch: $(tail -3 "$SCRATCH/watch.txt")"
[[ $(sqlite3 "$db" "SELECT w.name || ' ' || a.start_step FROM run_attempts a JOIN workers w
      ON w.id = a.worker_id WHERE a.run_id = 1 AND a.attempt = 2") == "$other $step" ]] ||
  fail "attempt 2 did not resume on $other from step $step"

check_store_matches_events "$db" "$SCRATCH/node-a" "$SCRATCH/node-b"
run_alone "$db" r1 "$SCRATCH/whole"
check_same_losses "$db" r1 "$SCRATCH/whole/events.jsonl" 0
stop_coordinator
echo PASS
