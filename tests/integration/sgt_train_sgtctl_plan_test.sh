#!/usr/bin/env bash
# `sgtctl plan` on a sweep gives, for every run, the numbers `sgt-train --plan` gives on that
# run's configuration; it needs no coordinator and no data.
BIN=$1 SCRATCH=$2
source "$(dirname "$0")/lib.sh"
rm -rf "$SCRATCH" && mkdir -p "$SCRATCH"
export SGT_COORDINATOR=127.0.0.1:1  # nothing listens there: plan must not need it
for sweep in "$SGT_SOURCE_DIR/examples/sweep-seeds.yaml" "$SGT_SOURCE_DIR/examples/quickstart.yaml"; do
  name=$(basename "$sweep" .yaml)
  "$BIN/sgtctl" plan "$sweep" --json > "$SCRATCH/$name.json" || fail "sgtctl plan $name failed"
  "$BIN/sgtctl" plan "$sweep" > "$SCRATCH/$name.txt" || fail "sgtctl plan $name (table) failed"
  # Each run's configuration to a file, then sgt-train --plan on it.
  python3 - "$SCRATCH/$name.json" "$SCRATCH/$name" <<'PY'
import json, os, sys
plan = json.load(open(sys.argv[1]))
os.makedirs(sys.argv[2], exist_ok=True)
assert plan["runs"], "no runs"
for i, run in enumerate(plan["runs"]):
    json.dump(run["config"], open(f"{sys.argv[2]}/run{i}.json", "w"))
    json.dump(run["plan"], open(f"{sys.argv[2]}/run{i}.plan.json", "w"))
print(len(plan["runs"]), "runs")
PY
  n=0
  for cfg in "$SCRATCH/$name"/run*[0-9].json; do
    "$BIN/sgt-train" --plan --config "$cfg" > "${cfg%.json}.train-plan.json" || fail "sgt-train --plan $cfg failed"
    python3 - "${cfg%.json}.plan.json" "${cfg%.json}.train-plan.json" <<'PY' || fail "plans differ for $cfg"
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:3])
assert a == b, f"sgtctl plan: {a}\nsgt-train --plan: {b}"
PY
    n=$((n + 1))
  done
  echo "$name: $n runs, sgtctl plan == sgt-train --plan"
  # The table shows every run with its overhead.
  [[ $(grep -c "^$(python3 -c "import json;print(json.load(open('$SCRATCH/$name.json'))['sweep'])")/" "$SCRATCH/$name.txt") == "$n" ]] \
    || fail "the plan table does not list the $n runs"
done
[[ $(ls "$SCRATCH/sweep-seeds"/run*[0-9].json | wc -l) == 15 ]] || fail "sweep-seeds should plan 15 runs"
echo "PASS"
