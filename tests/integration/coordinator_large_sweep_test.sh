#!/usr/bin/env bash
# A sweep of 10,000 runs (the most a sweep may have) through a real coordinator: `sgtctl ls`
# lists every run, and `sgtctl watch` gets every run in its first update, both in pages (no
# message near gRPC's 4 MiB limit; issue 22, part 3). No worker: the runs stay queued.
BIN=$1 SCRATCH=$2
source "$(dirname "$0")/lib.sh"
rm -rf "$SCRATCH" && mkdir -p "$SCRATCH"
kill_jobs_on_exit
n=10000
{
  echo "name: big"
  echo "base:"
  echo "  variant: sgt"
  echo "  data: {train: data/brown/train.u16, validation: data/brown/val.u16}"
  echo "  model: {layers: 3, d_model: 32, heads: 4, d_ff: 64, context: 32, vocab_size: 320}"
  echo "  train: {steps: 60, batch_size: 4, micro_batch_size: 2, warmup_steps: 4}"
  echo "  growth: {t_start: 20, delta_t: 20, layers: 2, k_max: 1, heads: 1}"
  echo "grid:"
  echo "  train.seed: [$(seq -s ', ' 1 $n)]"
} > "$SCRATCH/big.yaml"
start_coordinator "$SCRATCH/sgt.db"
start=$SECONDS
"$BIN/sgtctl" submit "$SCRATCH/big.yaml" > "$SCRATCH/submit.txt"
echo "submitted $n runs in $((SECONDS - start)) s"

start=$SECONDS
"$BIN/sgtctl" ls s1 --json > "$SCRATCH/ls.json"
"$BIN/sgtctl" ls s1 > "$SCRATCH/ls.txt"
echo "listed them in $((SECONDS - start)) s (twice)"
python3 - "$SCRATCH/ls.json" "$SCRATCH/ls.txt" "$n" <<'PY'
import json, sys
runs = json.load(open(sys.argv[1]))["runs"]
n = int(sys.argv[3])
assert [r["id"] for r in runs] == [f"r{i}" for i in range(1, n + 1)], "not every run once, in order"
text = open(sys.argv[2]).read().splitlines()
assert sum(1 for l in text if l.startswith("r")) == n, "the table lacks runs"
PY

# The watch's first update: every run, in pages of at most 500 with `more` on all but the last.
timeout 120 "$BIN/sgtctl" watch s1 --json > "$SCRATCH/watch.jsonl" &
watch=$!
# (A script file: wait_until runs its command again, and a here-document is read only once.)
cat > "$SCRATCH/whole_update.py" <<'PY'
import json, sys
lines = open(sys.argv[1]).read().split("\n")[:-1]  # whole lines only
pages = [json.loads(l) for l in lines if l.strip()]
sys.exit(0 if pages and not pages[-1].get("more") else 1)
PY
WAIT_S=120 wait_until python3 "$SCRATCH/whole_update.py" "$SCRATCH/watch.jsonl"
kill "$watch" 2>/dev/null || true
python3 - "$SCRATCH/watch.jsonl" "$n" <<'PY'
import json, sys
pages = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
n = int(sys.argv[2])
first = []
for p in pages:
    first += [r["id"] for r in p.get("runs", [])]
    if not p.get("more"):
        break
assert sorted(first, key=lambda s: int(s[1:])) == [f"r{i}" for i in range(1, n + 1)], len(first)
assert all(len(p.get("runs", [])) <= 500 for p in pages)
assert all(p.get("more") for p in pages[:-1]) and not pages[-1].get("more")
print(f"watch: {len(pages)} pages, {len(first)} runs in the first update")
PY
stop_coordinator
echo PASS
