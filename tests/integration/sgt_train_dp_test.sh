#!/usr/bin/env bash
# Data-parallel sgt-train (issue 16): real processes meeting on loopback through c10d Gloo, one
# intra-op thread per rank.
# - 2 ranks against 1 process on the same global batch: every step's loss within a relative
#   1e-6 (the tiny config's micro-batches are the same sequences on both, so the gradient sums
#   match), the same growth decisions at every boundary of an SGT run, the same Block Loop pick,
#   the same FLOPs and tokens; only rank 0 writes anything.
# - A 2-rank checkpoint resumed on 1 rank, a 1-rank one on 2 ranks: within the same tolerance.
# - Bad input: a rank count that does not divide the batch, a master nobody serves, a rank that
#   never arrives, a rank killed mid-run: a clear error, in bounded time, nothing left running.
BIN=$1 SCRATCH=$2
source "$(dirname "$0")/lib.sh"
rm -rf "$SCRATCH" && mkdir -p "$SCRATCH/logs"
make_tiny_data "$SCRATCH/data"
write_tiny_config "$SCRATCH/run.yaml" "$SCRATCH/data"
export OMP_NUM_THREADS=1 SGT_DIST_TIMEOUT_S=120
unset MASTER_ADDR MASTER_PORT RANK WORLD_SIZE LOCAL_RANK LOCAL_WORLD_SIZE

# ranks N OUT [sgt-train args...]: the N ranks of a run of $SCRATCH/run.yaml (lib.sh's run_ranks).
ranks() {
  local n=$1 out=$2; shift 2
  run_ranks "$n" "$SCRATCH/run.yaml" "$out" "$@"
}

# compare A B FIRST TOL: losses of steps FIRST..24 of events A and B within relative TOL;
# decisions (step, action, layer, k, heads) identical.
compare() {
  python3 - "$@" <<'PY'
import json, sys
a, b, first, tol = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
def load(p):
    ev = [json.loads(l) for l in open(p)]
    return ({e["step"]: e for e in ev if e["event"] == "scalars"},
            [(e["step"], e["action"], e["layer"], e["k"], e["heads"]) for e in ev if e["event"] == "decision"])
sa, da = load(a)
sb, db = load(b)
steps = list(range(first, 25))
assert all(s in sa and s in sb for s in steps), (sorted(sa), sorted(sb))
worst = max(abs(sa[s]["loss"] - sb[s]["loss"]) / abs(sa[s]["loss"]) for s in steps)
assert worst <= tol, f"losses differ by a relative {worst:.3g} > {tol}"
for s in steps:
    for k in ("tokens", "flops", "vanilla_flops"):
        assert sa[s][k] == sb[s][k], (s, k, sa[s][k], sb[s][k])
if first == 1:
    assert da == db, f"decisions differ:\n{da}\n{db}"
    assert da, "no growth decision at all"
else:
    late = lambda d: [x for x in d if x[0] >= first]
    assert late(da) == late(db), f"decisions differ:\n{da}\n{db}"
print(f"{a.split('/')[-2]} vs {b.split('/')[-2]}: steps {first}-24, worst relative loss gap {worst:.2e}; decisions {da}")
PY
}

echo "== SGT: 2 ranks against 1 process"
"$BIN/sgt-train" --config "$SCRATCH/run.yaml" --out "$SCRATCH/one" --no-progress > "$SCRATCH/logs/one.log"
ranks 2 "$SCRATCH/two"
compare "$SCRATCH/one/events.jsonl" "$SCRATCH/two/events.jsonl" 1 1e-6
python3 - "$SCRATCH/one/summary.json" "$SCRATCH/two/summary.json" <<'PY'
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:])
for k in ("train_flops", "vanilla_flops", "tokens", "growth", "steps"):
    assert a[k] == b[k], (k, a[k], b[k])
assert abs(a["val_loss"] - b["val_loss"]) <= 1e-6 * abs(a["val_loss"]), (a["val_loss"], b["val_loss"])
PY
# Rank 0 alone wrote: one start event, one summary; rank 1 said which rank it was.
[[ $(grep -c '"event":"start"' "$SCRATCH/two/events.jsonl") == 1 ]] || fail "more than one start event"
grep -q "succeeded at step 24.*rank 1 of 2" "$SCRATCH/two.rank1.log" || fail "rank 1 did not finish"

echo "== Block Loop: the same pick"
sed 's/^variant: sgt/variant: block_loop/' "$SCRATCH/run.yaml" > "$SCRATCH/bl.yaml"
"$BIN/sgt-train" --config "$SCRATCH/bl.yaml" --out "$SCRATCH/bl-one" --no-progress > "$SCRATCH/logs/bl-one.log"
cp "$SCRATCH/run.yaml" "$SCRATCH/run-sgt.yaml" && cp "$SCRATCH/bl.yaml" "$SCRATCH/run.yaml"
ranks 2 "$SCRATCH/bl-two"
cp "$SCRATCH/run-sgt.yaml" "$SCRATCH/run.yaml"
compare "$SCRATCH/bl-one/events.jsonl" "$SCRATCH/bl-two/events.jsonl" 1 1e-6

echo "== a 2-rank checkpoint resumed on 1 rank"
ranks 2 "$SCRATCH/two-split" --stop-after 12
ckpt2="$SCRATCH/two-split/checkpoints/step-0000012.sgtckpt"
[[ -f $ckpt2 ]] || fail "no 2-rank checkpoint at step 12"
"$BIN/sgt-train" --config "$SCRATCH/run.yaml" --out "$SCRATCH/two-split" --resume "$ckpt2" --no-progress \
  > "$SCRATCH/logs/two-split-resume.log"
compare "$SCRATCH/two/events.jsonl" "$SCRATCH/two-split/events.jsonl" 13 1e-6

echo "== a 1-rank checkpoint resumed on 2 ranks (--resume given to rank 0 only)"
"$BIN/sgt-train" --config "$SCRATCH/run.yaml" --out "$SCRATCH/one-split" --stop-after 12 --no-progress \
  > "$SCRATCH/logs/one-split.log"
ckpt1="$SCRATCH/one-split/checkpoints/step-0000012.sgtckpt"
RANK0_ARGS=(--resume "$ckpt1")
ranks 2 "$SCRATCH/one-split"
RANK0_ARGS=()
compare "$SCRATCH/one/events.jsonl" "$SCRATCH/one-split/events.jsonl" 13 1e-6

echo "== bad input"
export SGT_DIST_TIMEOUT_S=3
port=$(free_port)
expect_fail 2 "train.batch_size 4 does not divide among 3 ranks" \
  env MASTER_ADDR=127.0.0.1 MASTER_PORT="$port" RANK=0 WORLD_SIZE=3 "$BIN/sgt-train" \
  --config "$SCRATCH/run.yaml" --out "$SCRATCH/bad" --no-progress
expect_fail 2 "RANK is set but WORLD_SIZE is not" env RANK=1 "$BIN/sgt-train" \
  --config "$SCRATCH/run.yaml" --out "$SCRATCH/bad" --no-progress
start=$SECONDS
expect_fail 3 "rank 1 of 2: rendezvous at 127.0.0.1:$port failed within 3 s.*check that rank 0 is running" \
  env MASTER_ADDR=127.0.0.1 MASTER_PORT="$port" RANK=1 WORLD_SIZE=2 "$BIN/sgt-train" \
  --config "$SCRATCH/run.yaml" --out "$SCRATCH/bad" --no-progress
expect_fail 3 "rank 0 of 2: .*127.0.0.1:$port failed within 3 s.*did not all arrive" \
  env MASTER_ADDR=127.0.0.1 MASTER_PORT="$port" RANK=0 WORLD_SIZE=2 "$BIN/sgt-train" \
  --config "$SCRATCH/run.yaml" --out "$SCRATCH/bad" --no-progress
((SECONDS - start < 60)) || fail "the failed rendezvous took $((SECONDS - start)) s"
[[ ! -e $SCRATCH/bad/events.jsonl ]] || fail "a failed rendezvous wrote events"

echo "== a rank killed mid-run ends the other"
sed 's/steps: 24,/steps: 100000,/' "$SCRATCH/run-sgt.yaml" > "$SCRATCH/long.yaml"
port=$(free_port)
for r in 0 1; do
  MASTER_ADDR=127.0.0.1 MASTER_PORT=$port RANK=$r WORLD_SIZE=2 SGT_DIST_TIMEOUT_S=30 \
    "$BIN/sgt-train" --config "$SCRATCH/long.yaml" --out "$SCRATCH/long" --no-progress \
    > "$SCRATCH/logs/long.rank$r.log" 2>&1 &
  eval "pid$r=$!"
done
deadline=$((SECONDS + 120))
until grep -q '"step":3,' "$SCRATCH/long/events.jsonl" 2>/dev/null; do
  ((SECONDS < deadline)) || fail "the long run did not reach step 3"
  kill -0 "$pid0" 2>/dev/null || fail "rank 0 died early: $(tail -3 "$SCRATCH/logs/long.rank0.log")"
  sleep 0.2
done
kill -9 "$pid1"
start=$SECONDS
rc=0
wait "$pid0" || rc=$?
[[ $rc == 3 ]] || fail "rank 0 exited $rc after rank 1 was killed, want 3 (lost a peer)"
((SECONDS - start < 60)) || fail "rank 0 took $((SECONDS - start)) s to notice"
grep -q "data-parallel .* failed" "$SCRATCH/logs/long.rank0.log" || fail "rank 0's error: $(tail -3 "$SCRATCH/logs/long.rank0.log")"
echo "rank 0 after rank 1's death: $(tail -1 "$SCRATCH/logs/long.rank0.log")"
echo "PASS"
