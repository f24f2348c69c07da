#!/usr/bin/env bash
# examples/paper/: `sgtctl plan table1.yaml` reproduces every FLOPs total of the paper's Table 1
# within 0.5 % (the paper's figures are below, x 1e18), with the paper's counting options; the
# ablation files and their CPU versions (examples/paper/cpu-version) plan, with no data and no
# coordinator.
BIN=$1 SCRATCH=$2
source "$(dirname "$0")/lib.sh"
rm -rf "$SCRATCH" && mkdir -p "$SCRATCH"
export SGT_COORDINATOR=127.0.0.1:1  # nothing listens there: plan must not need it
paper="$SGT_SOURCE_DIR/examples/paper"

"$BIN/sgtctl" plan "$paper/table1.yaml" --json > "$SCRATCH/table1.json" || fail "plan table1"
python3 - "$SCRATCH/table1.json" <<'PY' || fail "Table 1's totals"
import json, sys
# Table 1 of the paper: total training FLOPs, x 1e18.
paper = {
    "275m": {"vanilla": 42.83, "block-loop": 51.50, "sgt-k1": 43.46, "sgt-k2": 43.88, "sgt-k3": 44.21},
    "573m": {"vanilla": 87.41, "block-loop": 101.76, "sgt-k1": 88.15, "sgt-k2": 88.60, "sgt-k3": 88.96},
    "1.2b": {"vanilla": 175.76, "block-loop": 205.65, "sgt-k1": 177.06, "sgt-k2": 177.85, "sgt-k3": 178.48},
}
plan = json.load(open(sys.argv[1]))
assert len(plan["runs"]) == 15, len(plan["runs"])
worst = 0.0
seen = set()
for run in plan["runs"]:
    scale, method = run["settings"]["scale"], run["settings"]["method"]
    got = run["plan"]["train_flops"] / 1e18
    want = paper[scale][method]
    err = abs(got - want) / want
    worst = max(worst, err)
    print(f"{scale:5} {method:10} planned {got:8.2f}  paper {want:7.2f}  {100 * (got / want - 1):+.2f} %")
    assert err <= 0.005, f"{scale} {method}: planned {got:.2f}e18, the paper's {want}e18"
    seen.add((scale, method))
assert len(seen) == 15
print(f"all 15 within {100 * worst:.2f} % of the paper")
PY

for table in table2 table3 table4 table9 block-loop-pick; do
  "$BIN/sgtctl" plan "$paper/$table.yaml" > "$SCRATCH/$table.txt" || fail "plan $table"
  "$paper/cpu-version" "$paper/$table.yaml" > "$SCRATCH/$table-cpu.yaml"
  "$BIN/sgtctl" plan "$SCRATCH/$table-cpu.yaml" --json > "$SCRATCH/$table-cpu.json" \
    || fail "plan the CPU version of $table"
done
# The CPU versions keep every run (nothing the override replaces tells runs apart) and train on
# the CPU, one device each.
python3 - "$SCRATCH" <<'PY' || fail "CPU versions"
import json, sys
want = {"table2": 13, "table3": 3, "table4": 3, "table9": 5}
for table, n in want.items():
    plan = json.load(open(f"{sys.argv[1]}/{table}-cpu.json"))
    assert len(plan["runs"]) == n, (table, len(plan["runs"]))
    assert plan["ranks"] == 1, plan["ranks"]
    for run in plan["runs"]:
        assert run["config"]["train"]["device"] == "cpu", run["name"]
        assert run["config"]["model"]["d_model"] == 32, run["name"]
print("CPU versions plan:", want)
PY
expect_fail 2 "usage" "$paper/cpu-version"
echo "PASS"
