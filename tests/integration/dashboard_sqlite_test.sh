#!/usr/bin/env bash
# The SQLite sweep-analysis dashboard (dashboards/sgt-sweep-analysis.json) against a real store:
# a coordinator and two workers run a tiny sweep (vanilla, block_loop, sgt; 300 steps); the
# worker running block_loop is killed -9 after its first checkpoint, so that run resumes on the
# other worker and its first attempt's rows past the checkpoint are superseded. Then every SQL
# query of the dashboard (panel targets, variable queries, annotations) is interpolated the way
# Grafana does it for frser-sqlite-datasource (which formats a multi-value variable as a glob
# unless the query names a format) and run with the sqlite3 CLI on the store, read-only: each
# must succeed and return rows, for all runs and layers and for one run and one layer. Values
# are checked against the store and against the event logs sgt-train wrote: Table 1 rows and
# metrics, one loss per step with superseded rows hidden, layer entropy and intra-layer variance
# (recomputed here from the raw entropy rows, and as sgt-train logged them), loop depths against
# summary.json, decisions, checkpoints and run events.
BIN=$1 SCRATCH=$2
source "$(dirname "$0")/lib.sh"
SRC=${SGT_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
DASHBOARD=${DASHBOARD:-$SRC/dashboards/sgt-sweep-analysis.json}  # another file: to try a broken one
[[ -f $DASHBOARD ]] || fail "no dashboard $DASHBOARD"
begin_worker_test
STEPS=300 write_real_sweep "$SCRATCH/sweep.yaml" "$SCRATCH/data"

start_coordinator "$db" --lease-seconds 3
start_two_workers
"$BIN/sgtctl" submit "$SCRATCH/sweep.yaml" > /dev/null
# r2 (block_loop) checkpoints at step 100; kill its worker once the store has its entropy rows
# of step 110 (then step 111's scalars): soon, as the run has only 300 steps.
wait_until sql_true "$db" "SELECT COUNT(*) > 0 FROM checkpoints WHERE run_id = 2"
wait_until sql_true "$db" "SELECT step > 110 FROM runs WHERE id = 2"
holder=$(holder_of "$db" r2)
child=$(pgrep -f "$SCRATCH/$holder/runs/r2/attempt-1") || fail "no child for r2"
kill -9 "$(pid_of "$holder")"
wait_until bash -c "! kill -0 $child"
timeout 300 "$BIN/sgtctl" watch s1 > "$SCRATCH/watch.txt" || fail "watch: $(tail -3 "$SCRATCH/watch.txt")"
stop_coordinator
[[ $(sqlite3 "$db" "SELECT group_concat(state || ':' || restarts) FROM runs ORDER BY id") == \
   "succeeded:0,succeeded:1,succeeded:0" ]] || fail "runs: $(sqlite3 "$db" "SELECT * FROM runs")"

python3 - "$DASHBOARD" "$db" "$SCRATCH" <<'PY'
import glob, json, math, os, re, sqlite3, statistics, subprocess, sys, time

dash_path, db_path, scratch = sys.argv[1:]
DS = {"type": "frser-sqlite-datasource", "uid": "sgt-sqlite"}
errors = []
def check(ok, msg):
    if not ok: errors.append(msg)
def done():
    if errors:
        print("\n".join("FAIL: " + e for e in errors[:40]), file=sys.stderr); sys.exit(1)

# ---- the dashboard's queries
d = json.load(open(dash_path))
check(d.get("uid") == "sgt-sweep-analysis" and d.get("title") == "SGT sweep analysis", "uid/title")
def sql_of(q, where):
    text = q.get("rawQueryText") if isinstance(q, dict) else q
    check(isinstance(text, str) and text.strip(), f"{where}: no SQL")
    return text or ""
queries = []  # (where, sql)
def walk(panels):
    for p in panels:
        walk(p.get("panels", []))
        if p.get("type") == "row": continue
        where = f"panel '{p.get('title')}'"
        check(p.get("datasource") in (None, DS), f"{where}: datasource {p.get('datasource')}")
        check(p.get("targets"), f"{where}: no targets")
        for t in p.get("targets", []):
            check(t.get("datasource") == DS, f"{where}: target datasource {t.get('datasource')}")
            queries.append((f"{where} {t.get('refId')}", sql_of(t, where)))
walk(d.get("panels", []))
for a in d.get("annotations", {}).get("list", []):
    where = f"annotation '{a.get('name')}'"
    check(a.get("datasource") == DS, f"{where}: datasource {a.get('datasource')}")
    queries.append((where, sql_of(a.get("target", {}), where)))
variables = d.get("templating", {}).get("list", [])
for v in variables:
    check(v.get("type") == "query", f"variable {v.get('name')}: type {v.get('type')}, want query")
    check(v.get("datasource") == DS, f"variable {v.get('name')}: datasource {v.get('datasource')}")
check({"sweep", "run", "layer"} <= {v.get("name") for v in variables}, "variables sweep, run, layer")
check(len(queries) >= 12, f"only {len(queries)} queries")
done()

# ---- Grafana's interpolation (templateSrv.replace without a format function)
VAR = re.compile(r"\$(\w+)|\[\[(\w+)(?::(\w+))?\]\]|\$\{(\w+)(?::([^}]+))?\}")
def fmt(value, f):
    vals = value if isinstance(value, list) else [value]
    if f in (None, "glob"):
        return "{" + ",".join(vals) + "}" if len(vals) > 1 else vals[0]
    if f in ("raw", "text"): return ",".join(vals)
    if f == "csv": return ",".join(vals)
    if f == "singlequote": return ",".join("'" + x.replace("'", "\\'") + "'" for x in vals)
    if f == "doublequote": return ",".join('"' + x.replace('"', '\\"') + '"' for x in vals)
    if f == "sqlstring": return ",".join("'" + x.replace("'", "''") + "'" for x in vals)
    raise SystemExit(f"FAIL: variable format {f} not emulated by this test")
def interpolate(sql, values):
    def sub(m):
        name = m.group(1) or m.group(2) or m.group(4)
        if name not in values: return m.group(0)
        return fmt(values[name], m.group(3) or m.group(5))
    return VAR.sub(sub, sql)
def leftovers(sql):  # variables nothing replaced (sqlite3 would bind NULL to $name silently)
    bare = re.sub(r"'(?:[^']|'')*'", "''", sql)
    return re.findall(r"\$\{[^}]*\}|\$\w+|\[\[\w+", bare)

def run_sql(sql, where):
    t0 = time.time()
    p = subprocess.run(["sqlite3", "-readonly", "-json", db_path], input=sql, text=True,
                       capture_output=True)
    ms = (time.time() - t0) * 1000
    if p.returncode != 0 or p.stderr.strip():
        errors.append(f"{where}: sqlite3 exited {p.returncode}: {p.stderr.strip()[:300]}\n{sql}")
        return []
    rows = json.loads(p.stdout) if p.stdout.strip() else []
    return rows

def var_options(v, values):
    sql = interpolate(sql_of(v["query"], v["name"]), values)
    check(not leftovers(sql), f"variable {v['name']}: unreplaced {leftovers(sql)}")
    rows = run_sql(sql, f"variable {v['name']}")
    check(rows, f"variable {v['name']}: no options")
    rx = v.get("regex") or ""
    opts = []
    for r in rows:
        cols = list(r.values())
        check(len(cols) == 1, f"variable {v['name']}: {len(cols)} columns, the plugin wants 1")
        text = str(cols[0])
        if rx:
            m = re.fullmatch(r"/(.*)/([a-z]*)", rx)
            pat = re.compile(m.group(1).replace("(?<", "(?P<"))
            hit = pat.search(text)
            if not hit: continue
            g = hit.groupdict()
            value = g.get("value") or g.get("text") or hit.group(1 if hit.groups() else 0)
            opts.append((value, g.get("text") or value))
        else:
            opts.append((text, text))
    return opts

db = sqlite3.connect(db_path)
one = lambda q, *a: db.execute(q, a).fetchone()[0]
sweep_id = one("SELECT id FROM sweeps WHERE name = 'e2e'")
run_ids = [str(r) for (r,) in db.execute("SELECT id FROM runs WHERE sweep_id = ? ORDER BY id", (sweep_id,))]
variant = dict(db.execute("SELECT id, variant FROM runs"))
sgt_run = str(one("SELECT id FROM runs WHERE variant = 'sgt'"))
killed = 2

# Option lists, each variable resolved with the ones before it.
values, options = {}, {}
for v in variables:
    options[v["name"]] = var_options(v, values)
    values[v["name"]] = [o[0] for o in options[v["name"]]]  # "All"
    if not v.get("multi"):
        values[v["name"]] = values[v["name"]][0]
check((str(sweep_id), f"s{sweep_id} e2e") in options["sweep"], f"sweep options {options['sweep']}")
check([o[0] for o in options["run"]] == run_ids, f"run options {options['run']} != {run_ids}")
check(all(t.startswith(f"r{v} e2e/") for v, t in options["run"]), f"run texts {options['run']}")
check([o[0] for o in options["layer"]] == ["0", "1", "2"], f"layer options {options['layer']}")
if "signal" in options:
    check([o for o, _ in options["signal"]] == ["2", "1"], f"signal options {options['signal']}")
done()

# ---- every query, for all runs and layers (probe signal), and for one run and layer (train)
scenarios = {
    "all runs": dict(sweep=str(sweep_id), run=run_ids, layer=["0", "1", "2"], signal="2"),
    "one run": dict(sweep=str(sweep_id), run=[sgt_run], layer=["2"], signal="1"),
}
results = {}
t0 = time.time()
for name, vals in scenarios.items():
    for where, raw in queries:
        sql = interpolate(raw, vals)
        left = leftovers(sql)
        check(not left, f"{where}: unreplaced variables {left}")
        rows = run_sql(sql, f"{where} ({name})")
        check(rows, f"{where} ({name}): no rows\n{sql}")
        results[(name, where)] = rows
print(f"{len(queries)} queries x {len(scenarios)} variable settings ran in {time.time() - t0:.2f} s")
done()
def panel_rows(title, scenario="all runs"):
    hits = [r for (s, w), r in results.items() if s == scenario and w.startswith(f"panel '{title}")]
    check(len(hits) == 1, f"no single panel titled {title!r}")
    return hits[0] if hits else []

# ---- independent truth: the store's rows with the documented supersession rule, and the logs
attempts = {}
for rid, a, start in db.execute("SELECT run_id, attempt, start_step FROM run_attempts"):
    attempts.setdefault(rid, []).append((a, start))
def visible(rid, a, step):
    return not any(b > a and s < step for b, s in attempts.get(rid, []))
resume = one("SELECT start_step FROM run_attempts WHERE run_id = ? AND attempt = 2", killed)
superseded = one("SELECT COUNT(*) FROM scalars WHERE run_id = ? AND attempt = 1 AND step > ?", killed, resume)
check(resume >= 100 and superseded > 0,
      f"r{killed}: attempt 2 from step {resume}, {superseded} superseded rows (nothing to hide)")
def events(rid):  # per step, the events of the newest attempt that logged the step
    per_step = {}
    for path in sorted(glob.glob(f"{scratch}/node-*/runs/r{rid}/attempt-*/events.jsonl"),
                       key=lambda p: int(re.search(r"attempt-(\d+)", p).group(1))):
        mine = {}
        for line in open(path):
            e = json.loads(line)
            if "step" in e and e["event"] != "start":  # a start's step is the one it resumes after
                mine.setdefault(e["step"], []).append(e)
        per_step.update(mine)
    return per_step
logs = {int(r): events(r) for r in run_ids}
def logged(rid, kind, **match):
    return [(s, e) for s, evs in sorted(logs[rid].items()) for e in evs
            if e["event"] == kind and all(e.get(k) == v for k, v in match.items())]
close = lambda a, b: a is not None and b is not None and math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-15)

# Sweep and Table 1.
sw = panel_rows("Sweep")
check(len(sw) == 1 and sw[0]["runs"] == 3 and sw[0]["succeeded"] == 3 and sw[0]["restarts"] == 1,
      f"Sweep panel: {sw}")
t1 = panel_rows("Runs (paper Table 1)")
check(len(t1) == len(run_ids) == one("SELECT COUNT(*) FROM runs WHERE sweep_id = ?", sweep_id),
      f"Table 1 has {len(t1)} rows for {len(run_ids)} runs")
by_variant = {r["variant"]: r for r in t1}
check(set(by_variant) == {"vanilla", "block_loop", "sgt"}, f"Table 1 variants {set(by_variant)}")
for r in t1:
    rid = int(r["run"][1:])
    end = [e for _, e in logged(rid, "end")][-1]
    check(r["state"] == "succeeded" and r["step"] == r["steps"] == 300, f"Table 1 {r['run']}: {r}")
    check(close(r["val_ppl"], end["val_ppl"]), f"Table 1 {r['run']}: val ppl {r['val_ppl']} != logged {end['val_ppl']}")
    check(close(r["flops_overhead"], end["overhead_vs_vanilla"]), f"Table 1 {r['run']}: overhead {r['flops_overhead']}")
    check(close(r["train_flops"], end["train_flops"]), f"Table 1 {r['run']}: train FLOPs {r['train_flops']}")
    check(r["restarts"] == (1 if rid == killed else 0), f"Table 1 {r['run']}: restarts {r['restarts']}")
    check(r["settings"] == f"variant={r['variant']}" and r["seed"] == 3, f"Table 1 {r['run']}: settings {r}")
    check(close(r["val_ppl_vs_vanilla"] + by_variant["vanilla"]["val_ppl"], r["val_ppl"]) or
          (r["variant"] == "vanilla" and r["val_ppl_vs_vanilla"] == 0), f"Table 1 {r['run']}: Δ ppl {r}")
oh = {v: r["flops_overhead"] for v, r in by_variant.items()}
check(oh["vanilla"] == 0 < oh["sgt"] < oh["block_loop"], f"FLOPs overheads {oh}: want 0 < sgt < block_loop")

# Loss and validation curves: one row per step and run, the surviving attempt's value.
def series_rows(rows, run):
    return [r for r in rows if r["series"] == f"r{run} {variant[run]}"]
loss = panel_rows("Training loss")
for rid in map(int, run_ids):
    got = {}
    for r in series_rows(loss, rid):
        check(r["step"] not in got, f"loss r{rid}: step {r['step']} twice (superseded row shown)")
        got[r["step"]] = r["loss"]
    want = {s: e["loss"] for s, e in logged(rid, "scalars")}
    check(sorted(got) == list(range(1, 301)), f"loss r{rid}: steps {min(got)}..{max(got)}, {len(got)} rows")
    check(all(close(got.get(s), want[s]) for s in want), f"loss r{rid}: values differ from the log")
vp = panel_rows("Validation perplexity by step")
vf = panel_rows("Validation perplexity by training FLOPs")
for rid in map(int, run_ids):
    want = {s: e["val_ppl"] for s, e in logged(rid, "eval")}
    got = {r["step"]: r["val_ppl"] for r in series_rows(vp, rid)}
    check(got.keys() == want.keys() and all(close(got[s], want[s]) for s in want), f"val ppl r{rid}: {got} != {want}")
    flops = {s: e["flops"] for s, e in logged(rid, "scalars")}
    got = sorted((r["flops"], r["val_ppl"]) for r in series_rows(vf, rid))
    check(len(got) == len(want) and all(close(f, flops[s]) and close(p, want[s])
          for (f, p), s in zip(got, sorted(want))), f"val ppl by FLOPs r{rid}: {got}")

# Entropy: layer mean and intra-layer population variance over heads, base pass, probe signal.
raw = {}
for rid, a, step, layer, value in db.execute(
        "SELECT run_id, attempt, step, layer, value FROM entropy WHERE signal = 2 AND loop = 0"):
    if visible(rid, a, step):
        raw.setdefault((rid, layer, step), []).append(value)
check(any(not visible(r, a, s) for r, a, s in db.execute(
      "SELECT run_id, attempt, step FROM entropy WHERE signal = 2")), "no superseded entropy rows to hide")
for title, col, fn, key in (("Layer entropy", "entropy", statistics.fmean, "mean"),
                            ("Intra-layer variance", "variance", statistics.pvariance, "variance")):
    rows = panel_rows(title)
    got = {}
    for r in rows:
        m = re.fullmatch(r"r(\d+) L(\d+)", r["series"])
        check(m, f"{title}: series {r['series']}")
        k = (int(m.group(1)), int(m.group(2)), r["step"])
        check(k not in got, f"{title}: {k} twice"); got[k] = r[col]
    check(got.keys() == raw.keys(), f"{title}: {len(got)} points, the store has {len(raw)}")
    bad = [k for k in raw if not math.isclose(got.get(k, math.nan), fn(raw[k]), rel_tol=1e-9, abs_tol=1e-12)]
    check(not bad, f"{title}: differs from the raw entropy rows at {bad[:5]}")
    # And as sgt-train logged it (probe events; the newest attempt's for each step).
    n = 0
    for rid in map(int, run_ids):
        for s, e in logged(rid, "entropy", signal="probe"):
            for l in e["layers"]:
                n += 1
                check(math.isclose(got.get((rid, l["layer"], s), math.nan), l[key], rel_tol=1e-9, abs_tol=1e-12),
                      f"{title} r{rid} L{l['layer']} step {s}: {got.get((rid, l['layer'], s))} != logged {l[key]}")
    check(n == len(raw), f"{title}: {n} logged layer measurements, {len(raw)} in the panel")
heads = panel_rows("Head entropy, first and last measurement")
check(len(heads) == 3 * 3 * 4, f"head entropy table: {len(heads)} rows, want runs x layers x heads = 36")

# Growth: decisions and the final loop depths (against summary.json).
dec = panel_rows("Growth decisions")
want = [(f"r{r}", s) for r, a, s in db.execute(
        "SELECT run_id, attempt, step FROM growth_decisions ORDER BY run_id, step, id") if visible(r, a, s)]
check([(r["run"], r["step"]) for r in dec] == want, f"decisions {[(r['run'], r['step']) for r in dec]} != {want}")
check([r["step"] for r in dec if r["run"] == f"r{sgt_run}"] == [100, 200, 300], "sgt decisions at 100, 200, 300")
depth = panel_rows("Loop depth per layer at the end")
check(len(depth) == 9, f"loop depth: {len(depth)} rows, want 3 runs x 3 layers")
for rid in map(int, run_ids):
    summary = json.loads(one("SELECT summary_json FROM runs WHERE id = ?", rid))
    active = {a["layer"]: a for a in summary["growth"]["active"]}
    for r in (r for r in depth if r["run"] == f"r{rid}"):
        a = active.get(r["layer"])
        check(r["k"] == (a["k"] if a else 0), f"loop depth r{rid} L{r['layer']}: k {r['k']}, summary {a}")
        if a:
            want_loops = "whole block" if a["whole_block"] else json.dumps(a["heads"], separators=(",", ":"))
            check(r["loops"] == want_loops and r["activated at"] == a["activated_step"],
                  f"loop depth r{rid} L{r['layer']}: {r} vs summary {a}")
    if variant[rid] == "sgt":
        looped = {(r["layer"], r["head"]) for r in heads if r["run"] == f"r{rid}" and r["looped"] == "yes"}
        check(looped == {(l, h) for l, a in active.items() for h in a["heads"]}, f"looped heads r{rid}: {looped}")

# Checkpoints and run events.
ck = panel_rows("Checkpoints")
want = [(f"r{r}", a, s) for r, a, s in db.execute(
        "SELECT run_id, attempt, step FROM checkpoints ORDER BY run_id, step, id") if visible(r, a, s)]
check([(r["run"], r["attempt"], r["step"]) for r in ck] == want, f"checkpoints {ck} != {want}")
check(sum(r["reason"] == "final" for r in ck) == 3, "one final checkpoint per run")
ev = panel_rows("Run events")
check(len(ev) == one("SELECT COUNT(*) FROM run_events"), f"run events: {len(ev)} rows")
check(any(r["run"] == f"r{killed}" and r["to"] == "lost" for r in ev), f"r{killed} never lost in run events")
st = panel_rows("Run state timeline")
check({r["state"] for r in st} >= {"queued", "running", "lost", "succeeded"}, f"state timeline {st[:4]}")
# This sweep scores no tasks: one "(not scored)" row per run (eval_sweep_test.sh checks scores).
ta = panel_rows("Task accuracy per run (zero-shot)")
check(sorted(r["run"] for r in ta) == [f"r{r}" for r in run_ids] and
      all(r["task"] == "(not scored)" and r["acc"] is None for r in ta), f"task accuracy {ta}")
done()
print(f"dashboard values check out ({len(results)} query results)")
PY
echo PASS
