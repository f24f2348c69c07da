#!/usr/bin/env bash
# Zero-shot task evaluation through the whole system (issue 19): a coordinator, two workers and a
# sweep of six tiny real runs (vanilla, block_loop, sgt x two seeds) with an eval section over a
# generated arithmetic task (`sgt-data task arithmetic`), scored at every checkpoint and after
# the last step. Every run succeeds; its task scores are stored exactly once per (step, task,
# group) as the scalar rows acc/<task>, acc_norm/<task>, acc, acc_norm (docs/events.md), with
# the values of its events.jsonl task_eval events; the run's metrics carry the final scores of
# its summary.json; `sgtctl report` (text and JSON) has the arithmetic column and the mean over
# tasks as mean ± std over the two seeds; `sgtctl export --what tasks` has each run's scores
# and `--what scalars` their rows; `sgtctl show` lists them; the dashboard's task panel shows
# them. Runs from a scratch path with a space in it (the task file's path has one too).
BIN=$1 SCRATCH="$2/eval sweep"
source "$(dirname "$0")/lib.sh"
SRC=${SGT_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
begin_worker_test
TASK="$SCRATCH/my tasks/arithmetic.jsonl"
mkdir -p "$(dirname "$TASK")"
"$BIN/sgt-data" task arithmetic --items 40 --seed 1 --out "$TASK" > "$SCRATCH/task.log" 2>&1 ||
  fail "sgt-data task arithmetic: $(tail -3 "$SCRATCH/task.log")"
[[ $(wc -l < "$TASK") == 40 ]] || fail "the task file has $(wc -l < "$TASK") items, want 40"
# 200 steps: growth boundaries (and checkpoints) at 100 and 200; the eval section in the base,
# eval.at_checkpoints from a grid key. The task path is quoted YAML (it holds a space).
STEPS=200 EXTRA="" write_real_sweep "$SCRATCH/sweep.yaml" "$SCRATCH/data" "variant: [vanilla, block_loop, sgt]
  train.seed: [1, 2]
  eval.at_checkpoints: [true]"
awk -v task="$TASK" '{ print } /^base:$/ { printf "  eval: {tasks: [\"%s\"], batch_size: 8}\n", task }' \
  "$SCRATCH/sweep.yaml" > "$SCRATCH/sweep.tmp" && mv "$SCRATCH/sweep.tmp" "$SCRATCH/sweep.yaml"
grep -qF "eval: {tasks: [\"$TASK\"]" "$SCRATCH/sweep.yaml" || fail "no eval section: $(cat "$SCRATCH/sweep.yaml")"
"$BIN/sgtctl" plan "$SCRATCH/sweep.yaml" > "$SCRATCH/plan.txt" 2>&1 || fail "plan: $(tail -3 "$SCRATCH/plan.txt")"

start_coordinator "$db"
start_two_workers
"$BIN/sgtctl" submit "$SCRATCH/sweep.yaml" > /dev/null
timeout 450 "$BIN/sgtctl" watch s1 > "$SCRATCH/watch.txt" || fail "watch: $(tail -5 "$SCRATCH/watch.txt")"
[[ $(sqlite3 "$db" "SELECT COUNT(*) FROM runs WHERE state = 'succeeded'") == 6 ]] ||
  fail "not all succeeded: $(sqlite3 "$db" "SELECT id, state, reason FROM runs")"
# Every stored row of every attempt is one its sgt-train logged, once (the task rows included).
check_store_matches_events "$db" "$SCRATCH/node-a" "$SCRATCH/node-b"

"$BIN/sgtctl" report s1 > "$SCRATCH/report.txt" || fail "report"
"$BIN/sgtctl" report s1 --acc-norm > "$SCRATCH/report-norm.txt" || fail "report --acc-norm"
"$BIN/sgtctl" --json report s1 > "$SCRATCH/report.json" || fail "report --json"
"$BIN/sgtctl" export s1 --what tasks --format json -o "$SCRATCH/tasks.json" 2> /dev/null || fail "export --what tasks"
"$BIN/sgtctl" export s1 --what tasks -o "$SCRATCH/tasks.csv" 2> /dev/null || fail "export --what tasks (csv)"
"$BIN/sgtctl" export s1 --what scalars --format json -o "$SCRATCH/scalars.json" 2> /dev/null || fail "export --what scalars"
for r in 1 2 3 4 5 6; do "$BIN/sgtctl" show "r$r" > "$SCRATCH/show-r$r.txt" || fail "show r$r"; done
stop_coordinator

python3 - "$db" "$SCRATCH" "$SRC/dashboards/sgt-sweep-analysis.json" <<'PY'
import csv, glob, json, math, os, sqlite3, statistics, subprocess, sys
db_path, scratch, dash_path = sys.argv[1:]
db = sqlite3.connect(db_path)
errors = []
def check(ok, msg):
    if not ok: errors.append(msg)
def close(a, b):
    return a is not None and b is not None and abs(a - b) <= 1e-12 * max(1.0, abs(b))

runs = {}  # id -> dict(variant, seed, summary, events)
for rid, variant, config, metrics, summary in db.execute(
        "SELECT id, variant, config_json, metrics, summary_json FROM runs ORDER BY id"):
    logs = glob.glob(f"{scratch}/node-*/runs/r{rid}/attempt-*/events.jsonl")
    check(len(logs) == 1, f"r{rid}: {len(logs)} event logs, want 1 attempt")
    events = [json.loads(l) for l in open(logs[0])]
    summary_file = os.path.join(os.path.dirname(logs[0]), "summary.json")
    check(os.path.exists(summary_file), f"r{rid}: no summary.json beside {logs[0]}")
    on_disk = json.load(open(summary_file))
    runs[rid] = dict(variant=variant, seed=json.loads(config)["train"]["seed"],
                     metrics=json.loads(metrics), summary=json.loads(summary), disk=on_disk,
                     events=events)
check(len(runs) == 6, f"{len(runs)} runs")

for rid, r in runs.items():
    tag = f"r{rid} ({r['variant']}, seed {r['seed']})"
    te = [e for e in r["events"] if e["event"] == "task_eval"]
    final = [e for e in te if e["reason"] == "final"]
    check(len(final) == 1, f"{tag}: {len(final)} final task_eval events")
    if r["variant"] != "vanilla":  # its growth boundary at step 100 writes a checkpoint
        check(any(e["reason"] == "checkpoint" and e["step"] == 100 for e in te),
              f"{tag}: no task_eval at the step-100 checkpoint (eval.at_checkpoints)")
    if not final: continue
    final = final[0]
    totals = [s for s in final["scores"] if not s.get("group")]
    check([s["task"] for s in totals] == ["arithmetic"] and totals[0]["items"] == 40,
          f"{tag}: final scores {final['scores']}")
    # summary.json on disk, the summary the coordinator stored and the final event agree.
    check(r["disk"] == r["summary"], f"{tag}: stored summary differs from summary.json")
    check(r["disk"].get("tasks") == final["scores"], f"{tag}: summary tasks {r['disk'].get('tasks')} != {final['scores']}")
    check(r["disk"].get("acc") == totals[0]["acc"] and r["disk"].get("acc_norm") == totals[0]["acc_norm"],
          f"{tag}: summary acc {r['disk'].get('acc')}, want the one task's {totals[0]['acc']}")
    # The run's metrics: the final scores.
    m = r["metrics"]
    got = [(t["task"], t.get("group", ""), int(t["items"]), t["acc"], t["acc_norm"], int(t["step"]))
           for t in m.get("tasks", [])]
    want = [(s["task"], s.get("group", ""), s["items"], s["acc"], s["acc_norm"], final["step"])
            for s in final["scores"]]
    check(len(got) == len(want) and all(g[:3] == w[:3] and g[5] == w[5] and close(g[3], w[3]) and
                                        close(g[4], w[4]) for g, w in zip(got, want)),
          f"{tag}: metrics tasks {got} != {want}")
    check(close(m.get("acc"), totals[0]["acc"]), f"{tag}: metrics acc {m.get('acc')}")
    # Stored exactly once per (step, task, group) and metric, with the logged values.
    rows = list(db.execute("SELECT step, name, value, COUNT(*) FROM scalars WHERE run_id = ? AND "
                           "(name IN ('acc', 'acc_norm') OR name LIKE 'acc/%' OR name LIKE 'acc_norm/%') "
                           "GROUP BY step, name", (rid,)))
    check(rows and all(n == 1 for *_, n in rows), f"{tag}: task rows stored more than once: {rows}")
    steps = sorted({e["step"] for e in te})
    check(sorted({s for s, *_ in rows}) == steps, f"{tag}: task rows at {sorted({s for s, *_ in rows})}, logged at {steps}")
    stored = {(s, n): v for s, n, v, _ in rows}
    for e in te:
        for sc in e["scores"]:
            name = "/".join(x for x in ("acc", sc["task"], sc.get("group", "")) if x)
            check(stored.get((e["step"], name)) == sc["acc"], f"{tag}: {name} at {e['step']}: stored {stored.get((e['step'], name))}, logged {sc['acc']}")
    check(stored.get((final["step"], "acc")) == r["disk"]["acc"], f"{tag}: macro acc row")
    check(stored.get((final["step"], "acc_norm/arithmetic")) == totals[0]["acc_norm"], f"{tag}: acc_norm row")
    # sgtctl show lists the scores.
    show = open(f"{scratch}/show-r{rid}.txt").read()
    check(f"task scores at step {final['step']}" in show and "arithmetic" in show and
          "%.1f%%" % (totals[0]["acc"] * 100) in show, f"{tag}: show lacks the task scores:\n{show}")

# sgtctl report: one row per variant, n = 2, arithmetic and the mean as mean ± std over seeds.
rep = json.load(open(f"{scratch}/report.json"))
check(rep.get("tasks") == ["arithmetic"], f"report tasks {rep.get('tasks')}")
check(len(rep["rows"]) == 3, f"report rows {len(rep['rows'])}")
text = open(f"{scratch}/report.txt").read()
norm_text = open(f"{scratch}/report-norm.txt").read()
check("ACC arithmetic" in text and "ACC AVG" in text and "ACC_NORM" not in text, f"report text:\n{text}")
check("ACC_NORM arithmetic" in norm_text, f"report --acc-norm:\n{norm_text}")
for row in rep["rows"]:
    ids = [int(x[1:]) for x in row["runs"]]
    check(row["n"] == 2 and sorted(runs[i]["seed"] for i in ids) == [1, 2], f"report row {row}")
    for key, task in (("acc", "arithmetic"), ("acc_norm", "arithmetic")):
        vals = [t[key] for i in ids for t in runs[i]["disk"]["tasks"] if t["task"] == task and not t.get("group")]
        stat = row["tasks"][task][key]
        check(close(stat["mean"], statistics.mean(vals)) and close(stat["std"], statistics.stdev(vals)),
              f"report {row['variant']} {key}: {stat} vs seeds {vals}")
        macro = row[key]
        check(close(macro["mean"], statistics.mean(runs[i]["disk"][key] for i in ids)),
              f"report {row['variant']} mean {key}: {macro}")
    # As sgtctl prints the numbers of its JSON: percent, one decimal.
    cell = "%.1f ± %.1f" % (row["acc"]["mean"] * 100, row["acc"]["std"] * 100)
    line = [l for l in text.splitlines() if l.startswith(row["variant"] + " ")]
    check(len(line) == 1 and cell in line[0], f"report text {row['variant']}: no '{cell}' in {line}")

# sgtctl export --what tasks: every run's final scores, exactly; --what scalars: the stored rows.
exp = json.load(open(f"{scratch}/tasks.json"))
for rid, r in runs.items():
    mine = [(e["task"], e["group"], e["items"], e["acc"], e["acc_norm"]) for e in exp if e["run"] == f"r{rid}"]
    want = [(s["task"], s.get("group", ""), s["items"], s["acc"], s["acc_norm"]) for s in r["disk"]["tasks"]]
    check(mine == want, f"export tasks r{rid}: {mine} != {want}")
with open(f"{scratch}/tasks.csv", newline="") as f:
    rows = list(csv.DictReader(f))
check(len(rows) == len(exp) and all(float(c["acc"]) == e["acc"] for c, e in zip(rows, exp)),
      "export --what tasks: CSV differs from JSON")
sc = json.load(open(f"{scratch}/scalars.json"))
task_rows = [x for x in sc if x["name"] == "acc" or x["name"].startswith(("acc/", "acc_norm/")) or x["name"] == "acc_norm"]
n_stored = db.execute("SELECT COUNT(*) FROM scalars WHERE name IN ('acc', 'acc_norm') OR name LIKE 'acc/%' "
                      "OR name LIKE 'acc_norm/%'").fetchone()[0]
check(len(task_rows) == n_stored, f"export --what scalars: {len(task_rows)} task rows, stored {n_stored}")

# The dashboard's task panel, run on the store as Grafana's SQLite plugin would.
d = json.load(open(dash_path))
panel = [p for p in d["panels"] if p.get("title") == "Task accuracy per run (zero-shot)"]
check(len(panel) == 1, "no task accuracy panel")
if panel:
    sql = panel[0]["targets"][0]["rawQueryText"].replace("${run:singlequote}", ",".join(f"'{i}'" for i in runs))
    out = subprocess.run(["sqlite3", "-readonly", "-json", db_path], input=sql, text=True, capture_output=True)
    check(out.returncode == 0 and not out.stderr, f"panel SQL: {out.stderr}")
    got = json.loads(out.stdout or "[]")
    for rid, r in runs.items():
        mine = [x for x in got if x["run"] == f"r{rid}" and x["task"] == "arithmetic"]
        check(len(mine) == 1 and close(mine[0]["acc"], r["disk"]["acc"]), f"panel r{rid}: {mine}")
if errors:
    print("\n".join("FAIL: " + e for e in errors[:30]), file=sys.stderr); sys.exit(1)
print(f"task scores of {len(runs)} runs check out")
PY
echo PASS
