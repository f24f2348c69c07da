#!/usr/bin/env bash
# The dashboards against a live Prometheus (Debian's `prometheus`): a real server on loopback,
# configured with deploy/prometheus/prometheus.yml itself (its targets files pointing at a live
# coordinator and worker, the scrape interval shortened to 1 s), scrapes them while a tiny SGT run
# grows. Once both targets are up and the run is past its growth, every PromQL expression of
# every panel, variable and annotation of every Prometheus dashboard in dashboards/ (variables
# filled in with the values Prometheus has) goes through the query API: each must succeed and
# return at least one series.
BIN=$1 SCRATCH=$2
SRC=${SGT_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
source "$(dirname "$0")/lib.sh"
begin_worker_test

start_coordinator "$db" --metrics-listen 127.0.0.1:0 --metrics-port-file "$SCRATCH/coord.mport"
start_worker node-a --metrics-listen 127.0.0.1:0 --metrics-port-file "$SCRATCH/node-a.mport"

# The deploy configuration, as shipped, next to targets files naming the live daemons.
prom=$SCRATCH/prometheus
mkdir -p "$prom/targets" "$prom/data"
sed -e 's/^\(  scrape_interval:\).*/\1 1s/' -e 's/^\(  scrape_timeout:\).*/\1 1s/' \
  -e 's/^\(  evaluation_interval:\).*/\1 1s/' -e 's/refresh_interval: .*/refresh_interval: 1s/' \
  "$SRC/deploy/prometheus/prometheus.yml" > "$prom/prometheus.yml"
grep -q "scrape_interval: 1s" "$prom/prometheus.yml" || fail "deploy/prometheus/prometheus.yml: no global scrape_interval to shorten"
echo "[{\"targets\": [\"127.0.0.1:$(cat "$SCRATCH/coord.mport")\"], \"labels\": {\"cluster\": \"test\"}}]" \
  > "$prom/targets/coordinator.json"
echo "[{\"targets\": [\"127.0.0.1:$(cat "$SCRATCH/node-a.mport")\"], \"labels\": {\"cluster\": \"test\"}}]" \
  > "$prom/targets/workers.json"
promtool check config "$prom/prometheus.yml" > "$SCRATCH/promtool.txt" 2>&1 ||
  fail "promtool check config: $(cat "$SCRATCH/promtool.txt")"
# Prometheus cannot pick its own port: take a free one, and another if a parallel test took it
# in between (Prometheus then exits at once).
for try in 1 2 3; do
  pport=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  prometheus --config.file="$prom/prometheus.yml" --storage.tsdb.path="$prom/data" \
    --web.listen-address="127.0.0.1:$pport" >> "$SCRATCH/prometheus.log" 2>&1 &
  prom_pid=$!
  # Ready, or gone: a Prometheus that lost its port exits.
  wait_until bash -c "curl -sf http://127.0.0.1:$pport/-/ready || ! kill -0 $prom_pid"
  kill -0 "$prom_pid" 2>/dev/null && break
  (( try < 3 )) || fail "prometheus did not start: $(tail -5 "$SCRATCH/prometheus.log")"
done
export PROM=http://127.0.0.1:$pport
# The value of every series of an instant query, one per line (nothing when it has none).
prom_query() {
  python3 - "$1" <<'PY'
import json, os, sys, urllib.parse, urllib.request
url = os.environ["PROM"] + "/api/v1/query?" + urllib.parse.urlencode({"query": sys.argv[1]})
for r in json.load(urllib.request.urlopen(url, timeout=10))["data"]["result"]:
    v = float(r["value"][1])
    print(int(v) if v.is_integer() else v)
PY
}
# True when the query has series and each is at least $2 (for wait_until).
prom_at_least() {
  local values; values=$(prom_query "$1") || return 1
  [[ -n $values ]] && awk -v min="$2" '$1 < min { bad = 1 } END { exit bad }' <<< "$values"
}
# Both targets up (the worker's and the coordinator's jobs).
WAIT_S=60 wait_until python3 - <<'PY'
import json, os, sys, urllib.request
try:
    t = json.load(urllib.request.urlopen(os.environ["PROM"] + "/api/v1/targets", timeout=2))
except Exception:
    sys.exit(1)
up = {x["labels"]["job"] for x in t["data"]["activeTargets"] if x["health"] == "up"}
sys.exit(0 if {"sgt-coordinator", "sgt-worker"} <= up else 1)
PY

# A tiny SGT run with boundaries every 300 steps (a few seconds apart) so that scrapes see each
# loop depth change; long enough to stay active through the queries.
cat > "$SCRATCH/sweep.yaml" <<YAML
name: live
base:
  variant: sgt
  data: {train: $SCRATCH/data/train.u16, validation: $SCRATCH/data/val.u16}
  model: {layers: 3, d_model: 32, heads: 4, d_ff: 64, context: 32, vocab_size: 320}
  train: {steps: 100000, batch_size: 4, micro_batch_size: 2, lr: 3.0e-3, warmup_steps: 4,
          eval_interval: 100, eval_batches: 2, seed: 3, threads: 1}
  growth: {t_start: 300, delta_t: 300, layers: 2, k_max: 2, heads: 2}
  entropy: {telemetry_interval: 10, probe_sequences: 4}
YAML
"$BIN/sgtctl" submit "$SCRATCH/sweep.yaml" > /dev/null
start=$(date +%s)
# Growth done (activate, deepen for two layers: 4 decisions) and scraped, then three more
# scrapes of every target.
WAIT_S=120 wait_until sql_true "$db" "SELECT COUNT(*) >= 4 FROM growth_decisions WHERE run_id = 1"
wait_until prom_at_least 'sum(sgt_growth_decisions_total{run="r1"})' 4
scrapes=$(prom_query 'min(count_over_time(up[1h]))')
wait_until prom_at_least 'count_over_time(up[1h])' $((scrapes + 3))

python3 - "$SRC/dashboards" "$start" <<'PY'
import glob, json, os, re, sys, time, urllib.parse, urllib.request

prom, start = os.environ["PROM"], float(sys.argv[2])
end = time.time()

def api(path, **params):
    url = prom + path + "?" + urllib.parse.urlencode(params, doseq=True)
    try:
        return json.load(urllib.request.urlopen(url, timeout=10))
    except urllib.error.HTTPError as e:
        return json.load(e)

def is_prometheus(ds):
    return isinstance(ds, dict) and ds.get("type") == "prometheus"

# Every query of a dashboard: (where, kind, text), kind "expr" or "variable".
def queries(d):
    out = []
    def panels(ps, where):
        for p in ps or []:
            here = f"{where} panel {p.get('id')} '{p.get('title', '')}'"
            for t in p.get("targets") or []:
                ds = t.get("datasource") or p.get("datasource")
                if is_prometheus(ds) and t.get("expr"):
                    out.append((here + f" target {t.get('refId')}", "expr", t["expr"]))
            panels(p.get("panels"), where)
    panels(d.get("panels"), d["title"])
    for v in (d.get("templating") or {}).get("list") or []:
        if v.get("type") == "query" and is_prometheus(v.get("datasource")):
            q = v.get("query")
            q = q.get("query") if isinstance(q, dict) else q
            if q:
                out.append((f"{d['title']} variable {v['name']}", "variable", q))
    for a in (d.get("annotations") or {}).get("list") or []:
        expr = (a.get("target") or {}).get("expr") or a.get("expr")
        if is_prometheus(a.get("datasource")) and expr:
            out.append((f"{d['title']} annotation '{a.get('name')}'", "expr", expr))
    return out

def label_values(selector, label):
    r = api("/api/v1/series", **{"match[]": selector, "start": start, "end": end})
    if r.get("status") != "success":
        return None, r.get("error")
    return sorted({s[label] for s in r["data"] if label in s}), None

# Variables get every value Prometheus has for them, as Grafana formats a multi-value regex:
# (a|b) with regex metacharacters escaped by two backslashes (one for PromQL's string literal).
VALUE_OF = {}
def esc(x):
    return re.sub(r"([$^*{}\[\]'+?.()|\\])", r"\\\\\1", x)
def multi(vals):
    return vals[0] if len(vals) == 1 else "(" + "|".join(esc(x) for x in vals) + ")"
def fill(text, dash_vars):
    text = text.replace("$__rate_interval", "4s").replace("${__rate_interval}", "4s")
    text = text.replace("$__interval", "2s").replace("${__interval}", "2s")
    rng = f"{max(1, int(end - start))}s"
    text = text.replace("$__range", rng).replace("${__range}", rng)
    def sub(m):
        name = m.group(1) or m.group(2)
        if name not in dash_vars:
            return m.group(0)
        return dash_vars[name]
    return re.sub(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)", sub, text)

failures, ran = [], 0
dashboards = sorted(glob.glob(os.path.join(sys.argv[1], "*.json")))
for path in dashboards:
    d = json.load(open(path))
    qs = queries(d)
    if not qs:
        continue  # not a Prometheus dashboard (the SQLite one)
    dash_vars = {}
    # Variables in order (later ones may use earlier ones), custom ones from their options.
    for v in (d.get("templating") or {}).get("list") or []:
        name = v["name"]
        if v.get("type") == "custom":
            opts = [o.strip() for o in re.split(r"(?<!\\),", v.get("query", "")) if o.strip()]
            cur = (v.get("current") or {}).get("value")
            vals = cur if isinstance(cur, list) else [cur] if cur else opts[:1]
            vals = [x for x in vals if x not in ("$__all",)] or opts
            dash_vars[name] = multi(vals)
        elif v.get("type") == "query" and is_prometheus(v.get("datasource")):
            q = v.get("query")
            q = q.get("query") if isinstance(q, dict) else q
            q = fill(q, dash_vars)
            m = re.fullmatch(r"\s*label_values\((.*),\s*(\w+)\s*\)\s*", q, re.S)
            if m:
                vals, err = label_values(m.group(1), m.group(2))
            elif re.fullmatch(r"\s*label_values\(\s*(\w+)\s*\)\s*", q):
                label = re.fullmatch(r"\s*label_values\(\s*(\w+)\s*\)\s*", q).group(1)
                r = api(f"/api/v1/label/{label}/values", start=start, end=end)
                vals, err = (r["data"], None) if r.get("status") == "success" else (None, r.get("error"))
            elif q.strip().startswith("query_result("):
                inner = q.strip()[len("query_result("):-1]
                r = api("/api/v1/query", query=inner, time=end)
                vals, err = ([json.dumps(x["metric"]) for x in r["data"]["result"]], None) \
                    if r.get("status") == "success" else (None, r.get("error"))
            else:
                vals, err = None, f"a variable query this test cannot evaluate: {q}"
            ran += 1
            if err or not vals:
                failures.append(f"{d['title']} variable {name}: {q!r}: {err or 'no values'}")
                vals = ["none"]
            regex = v.get("regex")
            if regex:
                rx = re.compile(regex.strip("/"))
                vals = [(rx.search(x).group(1) if rx.search(x) and rx.search(x).groups() else x)
                        for x in vals if rx.search(x)] or vals
            dash_vars[name] = multi(vals)
        elif v.get("type") in ("constant", "textbox"):
            dash_vars[name] = v.get("query", "")
        elif v.get("type") == "datasource":
            dash_vars[name] = "sgt-prometheus"
    VALUE_OF[d["title"]] = dash_vars
    for where, kind, q in qs:
        if kind != "expr":
            continue
        expr = fill(q, dash_vars)
        left = re.findall(r"\$\{?\w+", expr)
        if left:
            failures.append(f"{where}: unfilled variables {left} in {expr!r}")
            continue
        r = api("/api/v1/query_range", query=expr, start=start, end=end, step=1)
        ran += 1
        if r.get("status") != "success":
            failures.append(f"{where}: {expr!r}: {r.get('errorType')}: {r.get('error')}")
        elif not r["data"]["result"]:
            failures.append(f"{where}: {expr!r}: no series")

annotations = sum(1 for d in dashboards for w, k, q in queries(json.load(open(d))) if " annotation " in w)
print(f"{ran} PromQL queries ({annotations} annotations) from {len(dashboards)} dashboard(s); variables {VALUE_OF}")
if annotations == 0:
    failures.append("no annotation queries found")
if ran < 20:
    failures.append(f"only {ran} queries found: are the dashboards there?")
if failures:
    print("\n".join(failures))
    sys.exit(1)
PY
"$BIN/sgtctl" cancel r1 > /dev/null
stop_coordinator
echo PASS
