#!/usr/bin/env bash
# Bad input to sgt-train: malformed YAML, values out of range, token files of the wrong size,
# a corrupt or truncated checkpoint. Each exits non-zero with a message naming the input and the
# fix, and nothing already written is overwritten.
BIN=$1 SCRATCH=$2
source "$(dirname "$0")/lib.sh"
rm -rf "$SCRATCH" && mkdir -p "$SCRATCH"
make_tiny_data "$SCRATCH/data"
write_tiny_config "$SCRATCH/run.yaml" "$SCRATCH/data"

printf 'variant: sgt\nmodel: {layers: 3\ntrain: {steps: 2}\n' > "$SCRATCH/malformed.yaml"
expect_fail 2 "malformed.yaml:[0-9]+:[0-9]+" "$BIN/sgt-train" --config "$SCRATCH/malformed.yaml" --out "$SCRATCH/x"

sed 's/heads: 4,/heads: 3,/' "$SCRATCH/run.yaml" > "$SCRATCH/heads.yaml"
expect_fail 2 "heads.yaml:[0-9]+:[0-9]+.*model.heads.*divide" "$BIN/sgt-train" --config "$SCRATCH/heads.yaml" --out "$SCRATCH/x"

sed 's/k_max: 2/k_max: 0/' "$SCRATCH/run.yaml" > "$SCRATCH/kmax.yaml"
expect_fail 2 "growth.k_max" "$BIN/sgt-train" --config "$SCRATCH/kmax.yaml" --out "$SCRATCH/x"

# --set overrides are validated together, after the last one; a bad result names them.
"$BIN/sgt-train" --plan --config "$SCRATCH/run.yaml" --set train.steps=2 --set train.warmup_steps=1 --set growth.t_start=1 > /dev/null \
  || fail "--set train.steps=2 --set train.warmup_steps=1 was rejected on its intermediate state"
expect_fail 2 "train.warmup_steps.*after the --set overrides" "$BIN/sgt-train" --plan --config "$SCRATCH/run.yaml" --set train.steps=1
expect_fail 2 "--set growth.nope=1: growth.nope: unknown key" "$BIN/sgt-train" --plan --config "$SCRATCH/run.yaml" --set growth.nope=1

expect_fail 2 "unknown argument" "$BIN/sgt-train" --config "$SCRATCH/run.yaml" --bogus

# No data section: enough to plan, not to train.
grep -v '^data:' "$SCRATCH/run.yaml" > "$SCRATCH/nodata.yaml"
"$BIN/sgt-train" --plan --config "$SCRATCH/nodata.yaml" | grep -q '"train_flops"' || fail "--plan needed data files"
expect_fail 2 "nodata.yaml:1:1: data.train: is empty.*set data.train to" "$BIN/sgt-train" --config "$SCRATCH/nodata.yaml" --out "$SCRATCH/x"
[[ ! -e $SCRATCH/x ]] || fail "a rejected configuration created its output directory"

# A token file one byte short: wrong dtype or truncated.
mkdir -p "$SCRATCH/short"
cp "$SCRATCH/data/val.u16" "$SCRATCH/data/val.u16.json" "$SCRATCH/short/"
cp "$SCRATCH/data/train.u16.json" "$SCRATCH/short/"
head -c -1 "$SCRATCH/data/train.u16" > "$SCRATCH/short/train.u16"
sed "s#$SCRATCH/data#$SCRATCH/short#" "$SCRATCH/run.yaml" > "$SCRATCH/short.yaml"
expect_fail 2 "short/train.u16" "$BIN/sgt-train" --config "$SCRATCH/short.yaml" --out "$SCRATCH/y"

# A finished run is never overwritten by a second start in the same directory.
"$BIN/sgt-train" --config "$SCRATCH/run.yaml" --out "$SCRATCH/done" --set train.steps=6 --no-progress > /dev/null
before=$(sha256sum "$SCRATCH/done/events.jsonl")
expect_fail 2 "already holds a run" "$BIN/sgt-train" --config "$SCRATCH/run.yaml" --out "$SCRATCH/done"
[[ $(sha256sum "$SCRATCH/done/events.jsonl") == "$before" ]] || fail "events.jsonl was modified"

# Corrupt and truncated checkpoints are refused before anything is appended.
ckpt="$SCRATCH/done/checkpoints/step-0000006.sgtckpt"
[[ -f $ckpt ]] || fail "no boundary checkpoint at step 6"
cp "$ckpt" "$SCRATCH/corrupt.sgtckpt"
size=$(stat -c %s "$ckpt")
printf '\xff' | dd of="$SCRATCH/corrupt.sgtckpt" bs=1 seek=$((size - 100)) conv=notrunc status=none
expect_fail 2 "corrupt.sgtckpt.*(corrupted|truncated)" "$BIN/sgt-train" --config "$SCRATCH/run.yaml" --out "$SCRATCH/done" --resume "$SCRATCH/corrupt.sgtckpt"
head -c $((size / 2)) "$ckpt" > "$SCRATCH/truncated.sgtckpt"
expect_fail 2 "truncated.sgtckpt.*truncated" "$BIN/sgt-train" --config "$SCRATCH/run.yaml" --out "$SCRATCH/done" --resume "$SCRATCH/truncated.sgtckpt"
[[ $(sha256sum "$SCRATCH/done/events.jsonl") == "$before" ]] || fail "a refused resume appended to events.jsonl"
echo "PASS"
