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
echo "PASS"
