#!/usr/bin/env bash
# A worker that sends every telemetry batch twice: the coordinator acknowledges the second copy
# as a duplicate and stores each batch once. Also: export and report through sgtctl.
BIN=$1 SCRATCH=$2
source "$(dirname "$0")/lib.sh"
rm -rf "$SCRATCH" && mkdir -p "$SCRATCH"
kill_jobs_on_exit
db=$SCRATCH/sgt.db
write_tiny_sweep "$SCRATCH/sweep.yaml"
start_coordinator "$db"
"$BIN/sgtctl" submit "$SCRATCH/sweep.yaml" > /dev/null
# watch, not on a terminal: plain lines, and it ends (exit 0) when every run has succeeded.
"$BIN/sgtctl" watch s1 > "$SCRATCH/watch.txt" 2>&1 &
watch_pid=$!
"$BIN/sgt-loadgen" simulate --name node-a --devices 2 --step-ms 2 --resend --exit-after-runs 3 \
  > "$SCRATCH/worker.json" 2> "$SCRATCH/worker.log" || fail "simulated worker failed"
python3 - "$SCRATCH/worker.json" <<'PY' || fail "duplicates were not acknowledged as such"
import json, sys
w = json.loads(open(sys.argv[1]).read().strip().splitlines()[-1])
assert w["duplicates_acked"] > 0 and w["duplicates_acked"] * 2 == w["batches_acked"], w
print("acks:", w)
PY
check_complete_telemetry "$db" || fail "a batch sent twice was stored twice (or lost)"
wait "$watch_pid" || fail "sgtctl watch exited $? after the sweep succeeded: $(tail -3 "$SCRATCH/watch.txt")"
for r in r1 r2 r3; do
  grep -q "$r.*succeeded" "$SCRATCH/watch.txt" || fail "watch never showed $r succeeded"
done
batches=$(rows "$db" telemetry_batches)
[[ $batches -gt 0 ]] || fail "no telemetry batches recorded"

# Export: one CSV line per stored entropy row of the run, plus the header.
"$BIN/sgtctl" export r3 --what entropy --format csv -o "$SCRATCH/r3.csv"
want=$(sqlite3 "$db" "SELECT COUNT(*) FROM entropy WHERE run_id=3")
got=$(( $(wc -l < "$SCRATCH/r3.csv") - 1 ))
[[ $got == "$want" ]] || fail "export wrote $got entropy rows, the store has $want"
"$BIN/sgtctl" export s1 --what decisions --format json > "$SCRATCH/decisions.json"
want=$(rows "$db" growth_decisions)
python3 -c "import json,sys; d=json.load(open('$SCRATCH/decisions.json')); assert len(d)==$want, d" \
  || fail "decision export of the sweep is not the $want decisions stored"
"$BIN/sgtctl" report s1 --json > "$SCRATCH/report.json"
python3 - "$SCRATCH/report.json" "$db" <<'PY' || fail "report does not match the stored runs"
import json, sqlite3, sys
rep = json.load(open(sys.argv[1]))
print(json.dumps(rep)[:400])
text = json.dumps(rep)
for v in ("vanilla", "block_loop", "sgt"):
    assert v in text, v
PY

# Fork r3 from its boundary checkpoint at step 20 with another learning rate: a new run that
# resumes there, and a simulated worker runs it from step 21.
"$BIN/sgtctl" fork r3 --from-step 20 --set train.lr=0.0005 > "$SCRATCH/fork.txt" || fail "fork failed"
[[ $(sqlite3 "$db" "SELECT parent_run_id || ' ' || parent_step || ' ' || resume_checkpoint FROM runs WHERE id = 4") == "3 20 /sim/r3/a1/step-20" ]] \
  || fail "the fork does not start from r3's checkpoint at step 20"
sqlite3 "$db" "SELECT config_json FROM runs WHERE id = 4" | grep -q '"lr":0.0005' || fail "the fork's lr is not set"
"$BIN/sgt-loadgen" simulate --name node-b --devices 1 --step-ms 2 --exit-after-runs 1 \
  > /dev/null 2> "$SCRATCH/worker2.log" || fail "simulated worker failed on the fork"
[[ $(sqlite3 "$db" "SELECT MIN(step) FROM scalars WHERE run_id = 4") == 21 ]] || fail "the fork did not resume after step 20"
check_complete_telemetry "$db" || fail "the fork's telemetry is incomplete"
stop_coordinator
echo "PASS"
