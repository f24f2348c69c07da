#!/usr/bin/env bash
# Zero-shot scoring end to end without the services (docs/evaluation.md): a tiny SGT run with an
# eval section scores a generated arithmetic task and a WinoGrande-shaped task after its last
# step and at its boundary checkpoints; `sgt-eval` on the final checkpoint gives the same scores
# as the run did, with and without the shared context. Bad task files fail sgt-train before its
# first step and sgt-eval before loading the model, naming the file and line.
BIN=$1 SCRATCH=$2
source "$(dirname "$0")/lib.sh"
rm -rf "$SCRATCH" && mkdir -p "$SCRATCH/with space"
SCRATCH=$SCRATCH/with\ space
make_tiny_data "$SCRATCH/data"
write_tiny_config "$SCRATCH/tiny.yaml" "$SCRATCH/data"
"$BIN/sgt-data" task arithmetic --items 40 --seed 3 --out "$SCRATCH/arith.jsonl" > /dev/null
cat > "$SCRATCH/wino.jsonl" <<'JSONL'
{"contexts": ["the cat sees the dog so the cat", "the cat sees the dog so the dog"], "continuation": " loops quickly.", "gold": 0}
{"contexts": ["a bird finds a river and the bird", "a bird finds a river and the river"], "continuation": " grows slowly.", "gold": 1}
{"contexts": ["one model keeps a head because the model", "one model keeps a head because the head"], "continuation": " measures entropy.", "gold": 0}
JSONL
cat >> "$SCRATCH/tiny.yaml" <<YAML
eval: {tasks: ["$SCRATCH/arith.jsonl", "$SCRATCH/wino.jsonl"], at_checkpoints: true, batch_size: 5}
YAML
"$BIN/sgt-train" --config "$SCRATCH/tiny.yaml" --out "$SCRATCH/run" --no-progress \
  || fail "the run with an eval section failed"

ckpt=$(ls "$SCRATCH/run/checkpoints/"*.sgtckpt | sort | tail -1)
"$BIN/sgt-eval" --checkpoint "$ckpt" --task "$SCRATCH/arith.jsonl" --task "$SCRATCH/wino.jsonl" \
  --json > "$SCRATCH/shared.json" || fail "sgt-eval failed"
"$BIN/sgt-eval" --checkpoint "$ckpt" --task "$SCRATCH/arith.jsonl" --task "$SCRATCH/wino.jsonl" \
  --json --no-share --batch-size 3 > "$SCRATCH/whole.json" || fail "sgt-eval --no-share failed"
"$BIN/sgt-eval" --checkpoint "$ckpt" --task "$SCRATCH/arith.jsonl" > "$SCRATCH/table.txt" \
  || fail "sgt-eval (table) failed"
grep -q "average over tasks" "$SCRATCH/table.txt" || fail "the table has no average: $(cat "$SCRATCH/table.txt")"

python3 - "$SCRATCH/run" "$SCRATCH/shared.json" "$SCRATCH/whole.json" <<'PY' || fail "scores"
import json, sys
run, shared, whole = sys.argv[1], *(json.load(open(p)) for p in sys.argv[2:4])
events = [json.loads(l) for l in open(run + "/events.jsonl")]
summary = json.load(open(run + "/summary.json"))
evals = [e for e in events if e["event"] == "task_eval"]
checkpoints = [e for e in events if e["event"] == "checkpoint"]
final = [e for e in evals if e["reason"] == "final"]
assert len(final) == 1 and final[0]["step"] == 24, [(e["step"], e["reason"]) for e in evals]
# at_checkpoints: one evaluation per boundary checkpoint (the final checkpoint is scored once).
at = sorted(e["step"] for e in evals if e["reason"] == "checkpoint")
boundary = sorted(e["step"] for e in checkpoints if e["reason"] == "boundary")
assert at == boundary and at, (at, boundary)
def totals(scores):
    return {s["task"]: s for s in scores if not s.get("group")}
ran = totals(final[0]["scores"])
assert set(ran) == {"arith", "wino"}, ran
assert ran["arith"]["items"] == 40 and ran["wino"]["items"] == 3, ran
groups = {s["group"] for s in final[0]["scores"] if s.get("group")}
assert groups == {"addition", "subtraction", "multiplication"}, groups
assert summary["tasks"] == final[0]["scores"], (summary["tasks"], final[0]["scores"])
for out in (shared, whole):
    got = totals(out["tasks"])
    for t in ran:
        for k in ("items", "acc", "acc_norm"):
            assert got[t][k] == ran[t][k], (t, k, got[t][k], ran[t][k])
    assert abs(out["acc"] - summary["acc"]) < 1e-12, (out["acc"], summary["acc"])
    assert out["step"] == 24 and out["variant"] == "sgt", out
print("final", {t: (s["acc"], s["acc_norm"]) for t, s in ran.items()}, "at checkpoints", at)
PY

# A bad task file: sgt-train stops before its first step, naming the file and the line.
printf '{"context": "a", "choices": [" b", " c"], "gold": 0}\n{"context": "a", "choices": [" b"], "gold": 0}\n' \
  > "$SCRATCH/bad.jsonl"
sed "s|$SCRATCH/wino.jsonl|$SCRATCH/bad.jsonl|" "$SCRATCH/tiny.yaml" > "$SCRATCH/bad.yaml"
expect_fail 2 'bad\.jsonl:2' "$BIN/sgt-train" --config "$SCRATCH/bad.yaml" --out "$SCRATCH/bad-run" --no-progress
[[ ! -e $SCRATCH/bad-run/summary.json ]] || fail "a run with a bad task file trained"
! grep -q '"event":"scalars"' "$SCRATCH/bad-run/events.jsonl" 2> /dev/null || fail "a run with a bad task file took a step"

expect_fail 2 'bad\.jsonl:2' "$BIN/sgt-eval" --checkpoint "$ckpt" --task "$SCRATCH/bad.jsonl"
expect_fail 2 'none\.sgtckpt' "$BIN/sgt-eval" --checkpoint "$SCRATCH/none.sgtckpt" --task "$SCRATCH/arith.jsonl"
expect_fail 2 'at least one --task' "$BIN/sgt-eval" --checkpoint "$ckpt"
expect_fail 2 'unknown argument' "$BIN/sgt-eval" --checkpoint "$ckpt" --task "$SCRATCH/arith.jsonl" --shots 5
mkdir -p "$SCRATCH/x" && cp "$SCRATCH/arith.jsonl" "$SCRATCH/x/"
expect_fail 2 "same task name 'arith'" "$BIN/sgt-eval" --checkpoint "$ckpt" --task "$SCRATCH/arith.jsonl" --task "$SCRATCH/x/arith.jsonl"
echo "PASS"
