#!/usr/bin/env bash
# FLOPs accounting (sgt-method.md §6) of a real run against the planner. With a fixed schedule
# the structure at every step is known in advance, so the run's training and probe FLOPs must
# equal `sgt-train --plan`'s. The fade transition makes a loop pass cost all heads until its
# window closes: probes inside the window (step 9) and after it (steps 12, 15, ...) cost
# differently, which catches FLOPs counted at the wrong step.
BIN=$1 SCRATCH=$2
source "$(dirname "$0")/lib.sh"
rm -rf "$SCRATCH" && mkdir -p "$SCRATCH"
make_tiny_data "$SCRATCH/data"
write_tiny_config "$SCRATCH/tiny.yaml" "$SCRATCH/data"
sed -e 's/^growth: .*/growth: {schedule: fixed, fixed_layers: [1, 2], fixed_from_step: 6, delta_t: 6, k_max: 1, heads: 2, transition: fade}/' \
    -e 's/^checkpoint: .*//' "$SCRATCH/tiny.yaml" > "$SCRATCH/run.yaml"
grep -q "transition: fade" "$SCRATCH/run.yaml" || fail "the growth line was not rewritten"

"$BIN/sgt-train" --plan --config "$SCRATCH/run.yaml" > "$SCRATCH/plan.json"
"$BIN/sgt-train" --config "$SCRATCH/run.yaml" --out "$SCRATCH/run" --no-progress

python3 - "$SCRATCH/plan.json" "$SCRATCH/run/summary.json" "$SCRATCH/run/events.jsonl" <<'PY'
import json, sys
plan, summary = (json.load(open(p)) for p in sys.argv[1:3])
events = [json.loads(l) for l in open(sys.argv[3])]
assert any(e["event"] == "decision" and e["step"] == 6 for e in events), "no decision at step 6"
for key in ("train_flops", "vanilla_flops", "probe_flops"):
    a, b = plan[key], summary[key]
    assert a > 0 and abs(a - b) <= 1e-12 * a, f"{key}: planned {a!r}, counted {b!r}"
assert summary["train_flops"] > summary["vanilla_flops"], summary
assert summary["eval_flops"] > 0, summary
print(f"train {summary['train_flops']:.6g} and probe {summary['probe_flops']:.6g} FLOPs as planned")
PY
# The paper's counting: Block Loop from the first step (its decision before step 1, on the probe
# of the initial model) and the input embedding counted, with the reference's decay of every
# parameter and truncated initialisation. Counted as planned again, and the loops ran from step 1.
sed -e 's/^growth: .*/growth: {schedule: fixed, fixed_layers: [2], fixed_from_step: 0, k_max: 1}/' \
    -e 's/^variant: .*/variant: block_loop/' -e 's/^checkpoint: .*//' \
    -e 's/^model: {\(.*\)}/model: {\1, init_truncation: 3}/' \
    -e 's/^train: {/train: {decay_norms: true, /' "$SCRATCH/tiny.yaml" > "$SCRATCH/paper.yaml"
printf 'flops: {embedding: true}\n' >> "$SCRATCH/paper.yaml"
grep -q "init_truncation: 3" "$SCRATCH/paper.yaml" && grep -q "decay_norms: true" "$SCRATCH/paper.yaml" \
  || fail "the paper config was not rewritten"
"$BIN/sgt-train" --plan --config "$SCRATCH/paper.yaml" > "$SCRATCH/paper-plan.json"
"$BIN/sgt-train" --config "$SCRATCH/paper.yaml" --out "$SCRATCH/paper" --no-progress
python3 - "$SCRATCH/paper-plan.json" "$SCRATCH/paper/summary.json" "$SCRATCH/paper/events.jsonl" <<'PY' || fail "paper counting"
import json, sys
plan, summary = (json.load(open(p)) for p in sys.argv[1:3])
events = [json.loads(l) for l in open(sys.argv[3])]
first = [e for e in events if e["event"] == "decision"]
assert first and first[0]["step"] == 0 and first[0]["action"] == "activate", first[:1]
assert first[0]["whole_block"] and first[0]["signal"] == "probe", first[0]
for key in ("train_flops", "vanilla_flops", "probe_flops"):
    a, b = plan[key], summary[key]
    assert a > 0 and abs(a - b) <= 1e-12 * a, f"{key}: planned {a!r}, counted {b!r}"
# Every one of the 24 steps looped one more block of 3 (and the embedding is in both totals).
scalars = [e for e in events if e["event"] == "scalars" and e["step"] == 1]
assert scalars and scalars[0]["flops"] > scalars[0]["vanilla_flops"], scalars[:1]
print(f"block loop from step 1: overhead {summary['train_flops'] / summary['vanilla_flops'] - 1:.4f}")
PY
echo "PASS"
