#!/usr/bin/env bash
# sgt-generate on real checkpoints: a tiny SGT run grows a layer to K=2 (and a fade run is
# checkpointed inside its fade windows); on each checkpoint the cached forward equals the uncached
# forward (--check-cache), text comes out, the same seed gives the same text, and bad input fails
# with exit 2 and a message that names it.
BIN=$1 SCRATCH=$2
source "$(dirname "$0")/lib.sh"
rm -rf "$SCRATCH" && mkdir -p "$SCRATCH"
make_tiny_data "$SCRATCH/data"
write_tiny_config "$SCRATCH/run.yaml" "$SCRATCH/data"

"$BIN/sgt-train" --config "$SCRATCH/run.yaml" --out "$SCRATCH/hard" --no-progress > /dev/null
"$BIN/sgt-train" --config "$SCRATCH/run.yaml" --out "$SCRATCH/fade" --no-progress \
  --set growth.transition=fade --set checkpoint.every=3 > /dev/null

final="$SCRATCH/hard/checkpoints/step-0000024.sgtckpt"
[[ -f $final ]] || fail "no final checkpoint at step 24: $(ls "$SCRATCH/hard/checkpoints")"

# Checks the cache on checkpoint $1 (with prompts long enough to pass the context of 32);
# prints the structure line.
check_cache() {
  local ckpt=$1
  "$BIN/sgt-generate" --checkpoint "$ckpt" --check-cache --max-new-tokens 40 --temperature 1 \
    --prompt "the cat sees a dog." --prompt "every model grows" \
    > "$SCRATCH/check.out" 2> "$SCRATCH/check.err" \
    || { cat "$SCRATCH/check.out" "$SCRATCH/check.err" >&2; fail "--check-cache failed on $ckpt"; }
  python3 - "$SCRATCH/check.out" "$ckpt" <<'PY'
import re, sys
lines = [l for l in open(sys.argv[1]) if l.startswith("check-cache:")]
assert len(lines) == 2, lines
for l in lines:
    n, d = re.search(r"(\d+) positions, max \|cached - uncached\| logit difference (\S+)", l).groups()
    assert int(n) > 32, f"{sys.argv[2]}: only {n} positions: the check should pass the context"
    assert float(d) < 1e-4, f"{sys.argv[2]}: cached and uncached logits differ by {d}"
PY
  cat "$SCRATCH/check.err"
}

# The hard run's last checkpoint has a layer at K=2 over a subset of heads.
check_cache "$final" > "$SCRATCH/final.structure"
grep -qE "layer [0-9]+ K=2 heads [0-9](,[0-9])?( |;|$)" "$SCRATCH/final.structure" \
  || fail "the final checkpoint has no layer at K=2 over a subset of heads: $(cat "$SCRATCH/final.structure")"
# Every checkpoint of the fade run, including those inside a fade window (all heads loop, the
# unkept ones scaled).
n=0
for ckpt in "$SCRATCH"/fade/checkpoints/*.sgtckpt; do
  check_cache "$ckpt" > /dev/null
  n=$((n + 1))
done
((n >= 6)) || fail "the fade run wrote $n checkpoints, want at least 6"

# Text, deterministic per seed.
gen() {
  "$BIN/sgt-generate" --checkpoint "$final" --prompt "the dog" --prompt "a river" \
    --max-new-tokens 12 --seed "$1" 2> /dev/null
}
gen 5 > "$SCRATCH/a.txt"
gen 5 > "$SCRATCH/b.txt"
cmp -s "$SCRATCH/a.txt" "$SCRATCH/b.txt" || fail "the same seed gave different text"
grep -q -- "--- prompt 1: the dog" "$SCRATCH/a.txt" || fail "no prompt 1 header: $(cat "$SCRATCH/a.txt")"
grep -q -- "--- prompt 2: a river" "$SCRATCH/a.txt" || fail "no prompt 2 header: $(cat "$SCRATCH/a.txt")"
gen 6 > "$SCRATCH/d.txt"
cmp -s "$SCRATCH/a.txt" "$SCRATCH/d.txt" && fail "seeds 5 and 6 gave the same text"
# Greedy text: 24 steps of training give pieces of the corpus's words (e.g. ". meas as as").
"$BIN/sgt-generate" --checkpoint "$final" --prompt "the dog" --prompt "a river" \
  --max-new-tokens 12 --temperature 0 2> /dev/null > "$SCRATCH/greedy.txt"
python3 - "$SCRATCH/greedy.txt" <<'PY'
import re, sys
lines = open(sys.argv[1]).read().split("\n")
conts = [lines[i + 1] for i, l in enumerate(lines) if l.startswith("--- prompt")]
assert len(conts) == 2, lines
assert all(re.search(r"[a-z]{2}", c) for c in conts), f"no text in {conts}"
PY
# An explicit tokenizer gives the same text.
"$BIN/sgt-generate" --checkpoint "$final" --prompt "the dog" --prompt "a river" \
  --max-new-tokens 12 --seed 5 --tokenizer "$SCRATCH/data/tokenizer.model" 2> /dev/null > "$SCRATCH/c.txt"
cmp -s "$SCRATCH/a.txt" "$SCRATCH/c.txt" || fail "--tokenizer changed the text"

# Bad input: exit 2, naming what is wrong.
expect_fail 2 "does-not-exist.sgtckpt.*does not exist" \
  "$BIN/sgt-generate" --checkpoint "$SCRATCH/does-not-exist.sgtckpt" --prompt "the"
head -c 300 "$final" > "$SCRATCH/truncated.sgtckpt"
expect_fail 2 "truncated.sgtckpt" "$BIN/sgt-generate" --checkpoint "$SCRATCH/truncated.sgtckpt" --prompt "the"
expect_fail 2 "--prompt" "$BIN/sgt-generate" --checkpoint "$final"
expect_fail 2 "--checkpoint is required" "$BIN/sgt-generate" --prompt "the"
expect_fail 2 "--top-p needs a probability" "$BIN/sgt-generate" --checkpoint "$final" --prompt x --top-p 0
expect_fail 2 "--temperature needs" "$BIN/sgt-generate" --checkpoint "$final" --prompt x --temperature -1
expect_fail 2 "unknown argument '--bogus'" "$BIN/sgt-generate" --checkpoint "$final" --prompt x --bogus
expect_fail 2 "tokenizer .*missing.model" \
  "$BIN/sgt-generate" --checkpoint "$final" --prompt x --tokenizer "$SCRATCH/missing.model"
"$BIN/sgt-generate" --help | grep -q "usage:" || fail "--help prints no usage"
echo "PASS"
