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
"$BIN/sgt-loadgen" simulate --name node-a --devices 2 --step-ms 2 --resend --exit-after-runs 3 \
  > "$SCRATCH/worker.json" 2> "$SCRATCH/worker.log" || fail "simulated worker failed"
python3 - "$SCRATCH/worker.json" <<'PY' || fail "duplicates were not acknowledged as such"
import json, sys
w = json.loads(open(sys.argv[1]).read().strip().splitlines()[-1])
assert w["duplicates_acked"] > 0 and w["duplicates_acked"] * 2 == w["batches_acked"], w
print("acks:", w)
PY
check_complete_telemetry "$db" || fail "a batch sent twice was stored twice (or lost)"
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
stop_coordinator
echo "PASS"
