#!/usr/bin/env bash
# `sgtctl report --html` in a real browser. A coordinator and a worker run a sweep of six tiny
# real runs (vanilla, block_loop, sgt x two seeds); a report taken while they run says it is a
# snapshot; the report of the finished sweep and of one run load in Debian's headless Chromium
# (driven over the DevTools protocol by report_html_browser.py) with no console error and no
# network request, every figure has its expected series, and a screenshot is kept as an
# artifact; the numbers in the page equal those of `sgtctl report --json`, `sgtctl export` and
# `sgtctl plan --json`; with scripts off the page still shows Table 1 and its figures.
# Runs from a scratch path with a space in it.
BIN=$1 SCRATCH="$2/report html"
source "$(dirname "$0")/lib.sh"
HERE=$(cd "$(dirname "$0")" && pwd)
command -v chromium > /dev/null || fail "chromium is not installed (scripts/install-deps installs it)"
/usr/bin/python3 -c 'import websocket' 2> /dev/null ||
  fail "Debian's python3-websocket is not installed (scripts/install-deps installs it)"
begin_worker_test
STEPS=200 write_real_sweep "$SCRATCH/sweep.yaml" "$SCRATCH/data" "variant: [vanilla, block_loop, sgt]
  train.seed: [1, 2]"

start_coordinator "$db"
DEVICES=cpu:2 start_worker node-a
"$BIN/sgtctl" submit "$SCRATCH/sweep.yaml" > /dev/null

# While runs are going: a snapshot.
wait_until sql_true "$db" "SELECT COUNT(*) > 0 FROM scalars WHERE name = 'loss'"
"$BIN/sgtctl" report s1 --html "$SCRATCH/snapshot.html" 2> "$SCRATCH/snapshot.err" ||
  fail "report of a running sweep: $(cat "$SCRATCH/snapshot.err")"
grep -q 'class="snapshot"' "$SCRATCH/snapshot.html" || fail "the report of a running sweep does not say it is a snapshot"

timeout 300 "$BIN/sgtctl" watch s1 > "$SCRATCH/watch.txt" || fail "watch: $(tail -5 "$SCRATCH/watch.txt")"
[[ $(sqlite3 "$db" "SELECT COUNT(*) FROM runs WHERE state = 'succeeded'") == 6 ]] || fail "not all succeeded"

start=$(date +%s%N)
"$BIN/sgtctl" report s1 --html "$SCRATCH/report.html" 2> "$SCRATCH/report.err" || fail "report --html: $(cat "$SCRATCH/report.err")"
echo "report --html: $(( ($(date +%s%N) - start) / 1000000 )) ms, $(stat -c %s "$SCRATCH/report.html") bytes"
"$BIN/sgtctl" report s1 --html - > "$SCRATCH/stdout.html"
# The same page but for the time it was made.
diff <(sed 's/; made [^<]*//' "$SCRATCH/report.html") <(sed 's/; made [^<]*//' "$SCRATCH/stdout.html") > /dev/null ||
  fail "--html - differs from --html FILE"
"$BIN/sgtctl" report r5 --html "$SCRATCH/run.html" 2> /dev/null || fail "report r5 --html"
"$BIN/sgtctl" report s1 --json > "$SCRATCH/report.json"
"$BIN/sgtctl" plan "$SCRATCH/sweep.yaml" --json > "$SCRATCH/plan.json"
for what in scalars entropy decisions; do
  "$BIN/sgtctl" export s1 --what $what --format json -o "$SCRATCH/$what.json" 2> /dev/null
done
expect_fail 2 "is not a sweep id" "$BIN/sgtctl" report r5
expect_fail 2 "--html needs a FILE" "$BIN/sgtctl" report s1 --html ""

# The browser: the sweep's page, then the run's.
ARTIFACTS="$SCRATCH/artifacts"
/usr/bin/python3 "$HERE/report_html_browser.py" "$SCRATCH/report.html" --out "$ARTIFACTS" \
  --probe-file "$HERE/report_html_probe.js" > "$SCRATCH/browser.json" || fail "the browser check failed"
/usr/bin/python3 "$HERE/report_html_browser.py" "$SCRATCH/run.html" --out "$ARTIFACTS/run" \
  --probe-file "$HERE/report_html_probe.js" > "$SCRATCH/browser-run.json" || fail "the browser check of run r5 failed"
[[ -s $ARTIFACTS/report-top.png && -s $ARTIFACTS/report-full.png ]] || fail "no screenshot"
echo "screenshots: $ARTIFACTS/report-top.png, $ARTIFACTS/report-full.png"

/usr/bin/python3 - "$SCRATCH" <<'PY' || fail "the page does not match sgtctl report --json, export and plan"
import json, math, pathlib, sys
d = pathlib.Path(sys.argv[1])
load = lambda name: json.loads((d / name).read_text())
page, run_page = load("browser.json"), load("browser-run.json")
report, plan = load("report.json"), load("plan.json")
scalars, entropy, decisions = load("scalars.json"), load("entropy.json"), load("decisions.json")
problems = []
def check(ok, what):
    if not ok: problems.append(what)
def same(a, b):
    return a is not None and b is not None and math.isclose(float(a), float(b), rel_tol=1e-12, abs_tol=1e-12)

for p, name in ((page, "sweep"), (run_page, "run r5")):
    check(p["console_errors"] == [], f"{name}: console errors {p['console_errors']}")
    check(p["requests"] == [], f"{name}: network requests {p['requests']}")
    check(p["script_ran"], f"{name}: the page's script did not run")

figs = {f["id"]: f for f in page["probe"]["figures"]}
rows = report["rows"]
groups = [r["runs"] for r in rows]  # every run succeeded: the groups are Table 1's rows
run_ids = [r for g in groups for r in g]
check(len(rows) == 3 and all(r["n"] == 2 for r in rows), f"report rows {rows}")

# Table 1 equals report --json.
table = {t["runs"]: t["cells"] for t in page["probe"]["table"]}
check(len(table) == len(rows), f"table rows {list(table)}")
for r in rows:
    cells = table.get(" ".join(r["runs"]), {})
    for col in ("val_ppl", "train_flops", "overhead_pct", "tokens_per_s"):
        c = cells.get(col, {})
        check(same(c.get("mean"), r[col]["mean"]) and same(c.get("std"), r[col]["std"]),
              f"{r['runs']} {col}: page {c} json {r[col]}")

# Figures and their series.
for fid in ("loss-step", "loss-flops", "ppl-step", "ppl-flops"):
    f = figs.get(fid)
    check(f is not None and f["declared"] == 3 and len(f["series"]) == 3 and f["legend"] == 3
          and all(s["drawn"] for s in f["series"]) and f["visible"], f"{fid}: {f}")
for g in range(3):
    for kind in ("entropy", "variance"):
        f = figs.get(f"{kind}-{g}")
        check(f is not None and len(f["series"]) == 3 and f["declared"] == 3, f"{kind}-{g}: {f}")
    f = figs.get(f"heatmap-{g}")
    check(f is not None and len(f["series"]) == 3, f"heatmap-{g}: {f}")

def last(run, name):
    rows = [s for s in scalars if s["run"] == run and s["name"] == name]
    top = max(s["step"] for s in rows)
    return top, [s["value"] for s in rows if s["step"] == top][-1]

# The last point of each line is the mean over the row's seeds of the exported last value.
for g, runs in enumerate(groups):
    for fid, name in (("loss-step", "loss"), ("ppl-step", "val_ppl")):
        series = figs[fid]["series"][g]
        ends = [last(r, name) for r in runs]
        check(same(series["x"], ends[0][0]) and same(series["y"], sum(v for _, v in ends) / len(ends)),
              f"{fid} {runs}: page {series['x']},{series['y']} export {ends}")
    # Ebar(l) at the last entropy step: the mean over heads of the probe's base pass, then seeds.
    f = figs[f"entropy-{g}"]
    for layer, series in enumerate(f["series"]):
        means = []
        for r in runs:
            rows_ = [e for e in entropy if e["run"] == r and e["signal"] == "probe" and e["loop"] == 0]
            top = max(e["step"] for e in rows_)
            heads = [e["value"] for e in rows_ if e["step"] == top and e["layer"] == layer]
            means.append(sum(heads) / len(heads))
        check(math.isclose(float(series["y"]), sum(means) / len(means), rel_tol=1e-6),
              f"entropy-{g} layer {layer}: page {series['y']} export {means}")

# One timeline per run; its events are the exported decisions that name a layer.
for r in run_ids:
    f = figs.get(f"timeline-{r}")
    want = [(x["step"], x["action"], x["layer"], x["k"]) for x in decisions if x["run"] == r and x["layer"] >= 0]
    got = [(e["step"], e["action"], e["layer"], e["k"]) for e in f["events"]] if f else None
    check(got == want, f"timeline-{r}: page {got} export {want}")
check(any(f["events"] for f in figs.values()), "no growth event in any timeline")

# Planned FLOPs are sgtctl plan's; measured, the runs' own (Table 1's n=2 means).
planned = {r["name"]: r["plan"]["train_flops"] for r in plan["runs"]}
check(len(page["probe"]["runs"]) == 6, f"runs table {page['probe']['runs']}")
check(sorted(float(r["planned"]) for r in page["probe"]["runs"]) == sorted(planned.values()),
      f"planned FLOPs: page {[r['planned'] for r in page['probe']['runs']]} plan {planned}")
for r in rows:
    measured = [float(x["measured"]) for x in page["probe"]["runs"] if x["run"] in r["runs"]]
    check(same(sum(measured) / 2, r["train_flops"]["mean"]), f"measured FLOPs of {r['runs']}: {measured}")

# The run's page: its one line, its timeline.
rfigs = {f["id"]: f for f in run_page["probe"]["figures"]}
check(len(rfigs["loss-step"]["series"]) == 1 and "timeline-r5" in rfigs and len(rfigs) == 8,
      f"run page figures {sorted(rfigs)}")
if problems:
    print("\n".join(problems), file=sys.stderr)
    sys.exit(1)
PY

# Scripts off: the page still shows Table 1's three rows and all 19 figures, with their series.
/usr/bin/python3 "$HERE/report_html_browser.py" "$SCRATCH/report.html" --out "$ARTIFACTS/noscript" \
  --probe-file "$HERE/report_html_probe.js" --scripts-off > "$SCRATCH/noscript.json" || fail "the browser check with scripts off failed"
/usr/bin/python3 - "$SCRATCH/noscript.json" "$SCRATCH/browser.json" <<'PY' || fail "with scripts off the page differs"
import json, sys
off, on = (json.load(open(p)) for p in sys.argv[1:3])
assert not off["script_ran"], "the script ran with scripts off"
assert off["console_errors"] == [] and off["requests"] == [], off
assert len(off["probe"]["table"]) == 3, off["probe"]["table"]
assert off["probe"]["figures"] == on["probe"]["figures"] and len(off["probe"]["figures"]) == 19, "figures"
PY
echo "ok"
