#!/usr/bin/env bash
# Pause and snapshot by signal (sgt-method.md §8): SIGUSR1 writes a snapshot and SIGUSR2 pauses
# at the next growth boundary, after its decision; resuming the paused run gives the losses of a
# run never paused, bit for bit. Also: asking for CUDA on a CPU-only build is a clear error.
BIN=$1 SCRATCH=$2
source "$(dirname "$0")/lib.sh"
rm -rf "$SCRATCH" && mkdir -p "$SCRATCH"
make_tiny_data "$SCRATCH/data"
write_tiny_config "$SCRATCH/run.yaml" "$SCRATCH/data"
# Longer, with boundaries every 20 steps: the signals, sent once the first step is logged, land
# before the last boundary but one even on a loaded machine.
sed -i 's/steps: 24,/steps: 200,/; s/t_start: 6, delta_t: 6/t_start: 20, delta_t: 20/' "$SCRATCH/run.yaml"
sed -i 's/at_boundaries: true/at_boundaries: false/' "$SCRATCH/run.yaml"

"$BIN/sgt-train" --config "$SCRATCH/run.yaml" --out "$SCRATCH/whole" --no-progress > /dev/null

wait_for_step() {  # waits until the run in $1 logs a scalars event (its handlers are in place)
  wait_until grep -q '"event":"scalars"' "$1/events.jsonl"
}

"$BIN/sgt-train" --config "$SCRATCH/run.yaml" --out "$SCRATCH/paused" --no-progress > "$SCRATCH/paused.log" &
pid=$!
wait_for_step "$SCRATCH/paused"
kill -USR1 "$pid"
kill -USR2 "$pid"
wait "$pid" || fail "paused run exited non-zero"
python3 - "$SCRATCH/paused" <<'PY'
import json, sys
ev = [json.loads(l) for l in open(sys.argv[1] + "/events.jsonl")]
end = [e for e in ev if e["event"] == "end"]
assert end and end[-1]["status"] == "paused", end
ck = [e for e in ev if e["event"] == "checkpoint"]
step = end[-1]["step"]
assert step % 20 == 0 and step < 200, f"paused at {step}, not a boundary before the end"
assert any(c["reason"] == "pause" and c["step"] == step for c in ck), ck
# The decision of the boundary is logged before the checkpoint that follows it.
dec = [i for i, e in enumerate(ev) if e["event"] == "decision" and e["step"] == step]
cki = [i for i, e in enumerate(ev) if e["event"] == "checkpoint" and e["step"] == step]
assert dec and cki and max(dec) < min(cki), (dec, cki)
print(step, file=open(sys.argv[1] + "/paused_at", "w"))
PY
step=$(cat "$SCRATCH/paused/paused_at")
ckpt=$(printf '%s/paused/checkpoints/step-%07d.sgtckpt' "$SCRATCH" "$step")
"$BIN/sgt-train" --config "$SCRATCH/run.yaml" --out "$SCRATCH/paused" --resume "$ckpt" --no-progress > /dev/null
python3 - "$SCRATCH/whole/events.jsonl" "$SCRATCH/paused/events.jsonl" "$step" <<'PY'
import json, sys
def losses(p):
    return {e["step"]: e["loss"] for e in map(json.loads, open(p)) if e["event"] == "scalars"}
a, b, step = losses(sys.argv[1]), losses(sys.argv[2]), int(sys.argv[3])
assert sorted(b) == list(range(1, 201)), sorted(b)
bad = [s for s in range(step + 1, 201) if a[s].hex() != b[s].hex()]
assert not bad, f"losses differ after the pause at steps {bad}"
print(f"paused at step {step}; steps {step + 1}-200 identical to the run never paused")
PY

expect_fail 2 "train.device is cuda" "$BIN/sgt-train" --config "$SCRATCH/run.yaml" --out "$SCRATCH/cuda" --set train.device=cuda
echo "PASS"
