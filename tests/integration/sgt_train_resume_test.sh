#!/usr/bin/env bash
# Exact resume (sgt-method.md §8): a tiny SGT run stopped at a growth boundary and resumed in a
# new process from that boundary's checkpoint gives losses bit-identical to a run never stopped.
BIN=$1 SCRATCH=$2
source "$(dirname "$0")/lib.sh"
rm -rf "$SCRATCH" && mkdir -p "$SCRATCH"
make_tiny_data "$SCRATCH/data"
write_tiny_config "$SCRATCH/run.yaml" "$SCRATCH/data"

"$BIN/sgt-train" --config "$SCRATCH/run.yaml" --out "$SCRATCH/whole" --no-progress
"$BIN/sgt-train" --config "$SCRATCH/run.yaml" --out "$SCRATCH/split" --stop-after 12 --no-progress
ckpt="$SCRATCH/split/checkpoints/step-0000012.sgtckpt"
[[ -f $ckpt ]] || fail "no checkpoint at the step-12 boundary"
"$BIN/sgt-train" --config "$SCRATCH/run.yaml" --out "$SCRATCH/split" --resume "$ckpt" --no-progress

python3 - "$SCRATCH/whole/events.jsonl" "$SCRATCH/split/events.jsonl" <<'PY'
import json, sys
def load(path):
    ev = [json.loads(l) for l in open(path)]
    loss = {e["step"]: e["loss"] for e in ev if e["event"] == "scalars"}
    dec = [(e["step"], e["action"], e["layer"], e["k"], e["heads"]) for e in ev if e["event"] == "decision"]
    return ev, loss, dec
_, whole, wdec = load(sys.argv[1])
_, split, sdec = load(sys.argv[2])
assert sorted(whole) == list(range(1, 25)), sorted(whole)
assert sorted(split) == list(range(1, 25)), sorted(split)
# float.hex compares the exact bits of the doubles that were logged.
diff = [s for s in range(13, 25) if whole[s].hex() != split[s].hex()]
assert not diff, f"losses differ after resume at steps {diff}: {[(whole[s], split[s]) for s in diff]}"
assert wdec == sdec, (wdec, sdec)
assert any(d[1] == "activate" for d in wdec) and any(d[1] == "deepen" for d in wdec), wdec
print(f"resume exact: steps 13-24 identical; decisions {wdec}")
PY
# The summary of both runs agrees on the final FLOPs and structure too.
python3 - "$SCRATCH/whole/summary.json" "$SCRATCH/split/summary.json" <<'PY'
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:])
for k in ("final_loss", "val_loss", "train_flops", "vanilla_flops", "growth"):
    assert a[k] == b[k], (k, a[k], b[k])
assert a["status"] == "succeeded" and 0 < a["overhead_vs_vanilla"] < 0.5, a
PY
echo "PASS"
