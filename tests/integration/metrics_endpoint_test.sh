#!/usr/bin/env bash
# /metrics of a real coordinator and worker (docs/metrics.md): `promtool check metrics` is clean
# idle, with a run in flight and after it ended; the run's science gauges agree with what the
# store holds for the step they report; its series go when it ends; bad --metrics-listen values
# and a taken port stop the daemons at start with the reason.
BIN=$1 SCRATCH=$2
source "$(dirname "$0")/lib.sh"
begin_worker_test

scrape() { curl -sf "http://127.0.0.1:$1/metrics"; }
check_clean() {  # promtool check metrics on the endpoint at port $1 ($2 names it)
  scrape "$1" > "$SCRATCH/scrape.txt" || fail "$2: /metrics did not answer"
  promtool check metrics < "$SCRATCH/scrape.txt" > "$SCRATCH/promtool.txt" 2>&1 ||
    fail "$2: promtool check metrics: $(cat "$SCRATCH/promtool.txt")"
}
value() {  # the value of sample $2 (exact name and labels) in scrape file $1
  awk -v k="$2" '$1 == k { print $2; found = 1 } END { exit !found }' "$1"
}

# Bad flags and a taken port: exit 2, naming the flag and the fix; nothing is left listening.
expect_fail 2 "--metrics-listen 'nonsense': not host:port.*e.g. 127.0.0.1:9464" \
  "$BIN/sgt-coordinator" --listen 127.0.0.1:0 --db "$SCRATCH/x.db" --metrics-listen nonsense
expect_fail 2 "--metrics-listen '127.0.0.1:70000': the port must be a number" \
  "$BIN/sgt-worker" --checkpoint-root "$SCRATCH/ckpt" --work-dir "$SCRATCH/x" --metrics-listen 127.0.0.1:70000
expect_fail 2 "--metrics-port-file needs --metrics-listen" \
  "$BIN/sgt-coordinator" --listen 127.0.0.1:0 --db "$SCRATCH/x.db" --metrics-port-file "$SCRATCH/p"

STEPS=100000 write_real_sweep "$SCRATCH/sweep.yaml" "$SCRATCH/data" "variant: [sgt]"
start_coordinator "$db" --metrics-listen 127.0.0.1:0 --metrics-port-file "$SCRATCH/coord.mport"
cport=$(cat "$SCRATCH/coord.mport")
start_worker node-a --metrics-listen 127.0.0.1:0 --metrics-port-file "$SCRATCH/node-a.mport"
wport=$(cat "$SCRATCH/node-a.mport")
check_clean "$cport" coordinator
check_clean "$wport" worker
[[ $(value "$SCRATCH/scrape.txt" sgt_worker_connected) == 1 ]] || fail "worker not connected"
# A second worker on the first's metrics port stops at start with the reason.
expect_fail 2 "--metrics-listen 127.0.0.1:$wport: cannot listen there" \
  "$BIN/sgt-worker" --coordinator "$SGT_COORDINATOR" --checkpoint-root "$SCRATCH/ckpt" \
  --work-dir "$SCRATCH/node-x" --metrics-listen "127.0.0.1:$wport"

"$BIN/sgtctl" submit "$SCRATCH/sweep.yaml" > /dev/null
# Past two growth boundaries (100, 200), so the run has decisions and looped heads.
wait_until sql_true "$db" "SELECT COUNT(*) >= 2 FROM growth_decisions WHERE run_id = 1"
check_clean "$wport" worker
cp "$SCRATCH/scrape.txt" "$SCRATCH/worker.txt"
check_clean "$cport" coordinator
cp "$SCRATCH/scrape.txt" "$SCRATCH/coord.txt"
[[ $(value "$SCRATCH/worker.txt" sgt_worker_runs_active) == 1 ]] || fail "worker: runs_active"
[[ $(value "$SCRATCH/worker.txt" 'sgt_worker_devices{kind="cpu",state="busy"}') == 1 ]] || fail "worker: busy"
[[ $(value "$SCRATCH/coord.txt" 'sgt_runs{state="running"}') == 1 ]] || fail "coordinator: sgt_runs"
[[ $(value "$SCRATCH/coord.txt" sgt_workers_connected) == 1 ]] || fail "coordinator: workers"

# The science gauges are what the store holds for the step the scrape reports.
python3 - "$SCRATCH/coord.txt" "$db" <<'PY'
import re, sqlite3, sys
samples = {}
for line in open(sys.argv[1]):
    if line.startswith("#") or not line.strip():
        continue
    key, value = line.rsplit(" ", 1)
    samples[key] = float(value)
db = sqlite3.connect(sys.argv[2])
def get(name, **labels):
    key = name + "{" + ",".join(f'{k}="{v}"' for k, v in sorted(labels.items())) + "}"
    if key not in samples:
        sys.exit(f"missing {key}; have {sorted(k for k in samples if k.startswith(name))}")
    return samples[key]
run = dict(run="r1", sweep="e2e")
step = get("sgt_run_step", **run)
assert step >= 200, step
layers = db.execute("SELECT MAX(layer) + 1 FROM entropy WHERE run_id = 1").fetchone()[0]
for layer in range(layers):
    at = db.execute("""SELECT MAX(step) FROM entropy WHERE run_id = 1 AND layer = ? AND loop = 0
                       AND signal = 1 AND step <= ?""", (layer, step)).fetchone()[0]
    heads = [v for (v,) in db.execute("""SELECT value FROM entropy WHERE run_id = 1 AND layer = ?
             AND loop = 0 AND signal = 1 AND step = ?""", (layer, at))]
    mean = sum(heads) / len(heads)
    var = sum((h - mean) ** 2 for h in heads) / len(heads)
    got = get("sgt_layer_attention_entropy", layer=layer, signal="train", **run)
    assert abs(got - mean) < 1e-6, (layer, at, got, mean)
    got = get("sgt_layer_entropy_variance", layer=layer, signal="train", **run)
    assert abs(got - var) < 1e-6, (layer, at, got, var)
    # Loop depth: the k of the layer's newest decision at or before the step, else 0.
    k = db.execute("""SELECT k FROM growth_decisions WHERE run_id = 1 AND layer = ? AND step <= ?
                      ORDER BY step DESC LIMIT 1""", (layer, step)).fetchone()
    assert get("sgt_layer_loop_depth", layer=layer, **run) == (k[0] if k else 0), layer
n = db.execute("SELECT COUNT(*) FROM growth_decisions WHERE run_id = 1 AND step <= ?", (step,)).fetchone()[0]
total = sum(get("sgt_growth_decisions_total", action=a, **run) for a in ("activate", "deepen", "hold", "fixed"))
assert total == n, (total, n)
loss = db.execute("""SELECT value FROM scalars WHERE run_id = 1 AND name = 'loss' AND step <= ?
                     ORDER BY step DESC LIMIT 1""", (step,)).fetchone()[0]
assert abs(get("sgt_run_loss", **run) - loss) < 1e-12, (get("sgt_run_loss", **run), loss)
assert get("sgt_run_target_steps", **run) == 100000
print(f"science gauges match the store at step {step:.0f} ({layers} layers, {n} decisions)")
PY

# Ended: its series are gone; the endpoints stay clean and count the end.
"$BIN/sgtctl" cancel r1 > /dev/null
wait_until sql_true "$db" "SELECT state = 'cancelled' FROM runs WHERE id = 1"
wait_until bash -c "curl -sf http://127.0.0.1:$wport/metrics | grep -qx 'sgt_worker_runs_active 0'"
check_clean "$cport" coordinator
! grep -q 'run="r1"' "$SCRATCH/scrape.txt" || fail "r1's series outlived it: $(grep 'run="r1"' "$SCRATCH/scrape.txt" | head -3)"
[[ $(value "$SCRATCH/scrape.txt" 'sgt_runs{state="cancelled"}') == 1 ]] || fail "coordinator: cancelled count"
(( $(value "$SCRATCH/scrape.txt" 'sgt_telemetry_rows_ingested_total{kind="entropy"}') > 0 )) || fail "no rows counted"
check_clean "$wport" worker
[[ $(value "$SCRATCH/scrape.txt" 'sgt_worker_run_exits_total{state="cancelled"}') == 1 ]] || fail "worker: exits"
stop_coordinator
echo PASS
