#!/usr/bin/env bash
# End-to-end check of sgt-data on a small generated corpus (no network): prepare writes verified
# token files, a second run is a no-op, changed arguments rebuild, damaged files are refused by
# `info`, encode works with the prepared tokenizer, and bad arguments fail with a message.
#
# Usage: sgt_data_test.sh BIN_DIR SCRATCH_DIR
set -euo pipefail

bin=$1
scratch=$2
sgt_data="$bin/sgt-data"
rm -rf "$scratch"
mkdir -p "$scratch"

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
json_field() {  # FILE KEY -> the scalar value of "KEY" in a flat JSON file
  sed -n "s/^ *\"$2\": *\"\{0,1\}\([^\",]*\)\"\{0,1\},\{0,1\}$/\1/p" "$1" | head -1
}

# --- A corpus: 60 documents of 6 sentences, blank lines between documents, from a fixed word list
# and a fixed LCG so every run sees the same text. Lowercase letters only, so a 300-piece vocab
# (259 reserved for specials and bytes) still covers every character.
awk 'BEGIN {
  n = split("the a model grows heads when layers learn slowly and entropy falls or rises " \
            "we train small sparse transformers on text with many tokens per step each " \
            "new head starts near zero so loss stays smooth", w, " ");
  x = 12345;
  for (d = 0; d < 60; d++) {
    for (s = 0; s < 6; s++) {
      x = (x * 1103515245 + 12345) % 2147483648; len = 5 + x % 8; line = "";
      for (i = 0; i < len; i++) {
        x = (x * 1103515245 + 12345) % 2147483648;
        line = line (i ? " " : "") w[1 + int(x / 65536) % n];
      }
      print line ".";
    }
    print "";
  }
}' > "$scratch/corpus_a.txt"
head -n 200 "$scratch/corpus_a.txt" > "$scratch/corpus_b.txt"
[[ $(grep -c . "$scratch/corpus_a.txt") -eq 360 ]] || fail "corpus generator produced the wrong line count"

out="$scratch/prepared"

# --- prepare builds everything.
log=$("$sgt_data" prepare --input "$scratch/corpus_a.txt" "$scratch/corpus_b.txt" --out "$out" \
      --vocab 300 --seed 3 2>&1) || fail "prepare failed: $log"
expect_contains "$log" "building" "first prepare"
for f in tokenizer.model tokenizer.vocab train.u16 train.u16.json val.u16 val.u16.json prepare.json \
         text/train.txt text/val.txt; do
  [[ -s "$out/$f" ]] || fail "prepare did not write $f"
done
ls -A "$out" | grep -q '^\.prepare-' && fail "prepare left its scratch directory behind"
[[ $(tail -n 2 <<<"$log" | head -n 1) == "$out/train.u16" ]] || fail "summary does not end with the train path"
[[ $(tail -n 1 <<<"$log") == "$out/val.u16" ]] || fail "summary does not end with the val path"

[[ $(json_field "$out/train.u16.json" format) == sgt-tokens ]] || fail "sidecar format"
[[ $(json_field "$out/train.u16.json" dtype) == uint16 ]] || fail "sidecar dtype"
[[ $(json_field "$out/train.u16.json" vocab_size) == 300 ]] || fail "sidecar vocab_size"
train_count=$(json_field "$out/train.u16.json" count)
val_count=$(json_field "$out/val.u16.json" count)
[[ $(stat -c %s "$out/train.u16") -eq $((2 * train_count)) ]] || fail "train.u16 size != 2 * count"
(( val_count > 0 && train_count > 10 * val_count )) ||
  fail "split sizes look wrong: train $train_count, val $val_count tokens"
# 89 documents (60 + 29 from corpus_b, whose last is cut short): 5% -> 4 whole documents.
expect_contains "$log" "documents   89 (train 85, validation 4; split by document)" "split summary"
expect_contains "$log" "sentences   532" "sentence count"
# Every document ends with the end-of-text id (2, SentencePiece's </s>), and no piece maps to it.
eos_count() { od -An -tu2 -v "$1" | tr -s ' ' '\n' | grep -cx 2 || true; }
[[ $(eos_count "$out/train.u16") -eq 85 ]] || fail "train.u16 holds $(eos_count "$out/train.u16") end-of-text ids, expected 85"
[[ $(eos_count "$out/val.u16") -eq 4 ]] || fail "val.u16 holds $(eos_count "$out/val.u16") end-of-text ids, expected 4"
[[ $(wc -l < "$out/text/val.txt") -eq 24 ]] || fail "text/val.txt should hold the 24 validation sentences"

# --- info verifies the files.
info=$("$sgt_data" info "$out/train.u16" 2>&1) || fail "info rejected a fresh file: $info"
expect_contains "$info" "verified: $train_count uint16 tokens" "info"
expect_contains "$info" "\"sha256\"" "info prints the sidecar"

# --- A second run is a no-op: same inodes and mtimes, and it says so.
before=$(stat -c '%i %Y' "$out/train.u16" "$out/val.u16" "$out/tokenizer.model" "$out/prepare.json")
log2=$("$sgt_data" prepare --input "$scratch/corpus_a.txt" "$scratch/corpus_b.txt" --out "$out" \
       --vocab 300 --seed 3 2>&1) || fail "second prepare failed: $log2"
expect_contains "$log2" "up to date" "second prepare"
after=$(stat -c '%i %Y' "$out/train.u16" "$out/val.u16" "$out/tokenizer.model" "$out/prepare.json")
[[ "$before" == "$after" ]] || fail "second prepare rewrote outputs"

# --- Changed arguments (another seed) rebuild, with a different split.
old_sha=$(json_field "$out/val.u16.json" sha256)
log3=$("$sgt_data" prepare --input "$scratch/corpus_a.txt" "$scratch/corpus_b.txt" --out "$out" \
       --vocab 300 --seed 4 2>&1) || fail "prepare with a new seed failed: $log3"
expect_contains "$log3" "arguments differ" "prepare with a new seed"
[[ $(json_field "$out/val.u16.json" sha256) != "$old_sha" ]] || fail "a new seed gave the same validation file"
"$sgt_data" info "$out/val.u16" > /dev/null || fail "info rejected the rebuilt val.u16"

# --- A damaged output is noticed by the next prepare, which rebuilds it.
printf '\x01' | dd of="$out/train.u16" bs=1 seek=10 conv=notrunc status=none
log4=$("$sgt_data" prepare --input "$scratch/corpus_a.txt" "$scratch/corpus_b.txt" --out "$out" \
       --vocab 300 --seed 4 2>&1) || fail "prepare over a damaged file failed: $log4"
expect_contains "$log4" "building" "prepare over a damaged file"
"$sgt_data" info "$out/train.u16" > /dev/null || fail "prepare did not repair train.u16"

# --- An unreadable stamp also means rebuild, never a crash.
echo '{}' > "$out/prepare.json"
log5=$("$sgt_data" prepare --input "$scratch/corpus_a.txt" "$scratch/corpus_b.txt" --out "$out" \
       --vocab 300 --seed 4 2>&1) || fail "prepare over an empty stamp failed: $log5"
expect_contains "$log5" "unreadable or incomplete" "prepare over an empty stamp"

# --- Few documents (9 here) cannot give validation a whole one at 5%: split by sentence instead.
log6=$("$sgt_data" prepare --input "$scratch/corpus_a.txt" --out "$scratch/small" --vocab 300 \
       --max-sentences 50 2>&1) || fail "prepare --max-sentences failed: $log6"
expect_contains "$log6" "sentences   50 (train 47, validation 3)" "prepare --max-sentences"
expect_contains "$log6" "split by sentence" "prepare --max-sentences"

# --- The same arguments give byte-identical outputs in another directory (no paths or clocks leak
# into them), so every checkout trains on the same tokens.
"$sgt_data" prepare --input "$scratch/corpus_a.txt" "$scratch/corpus_b.txt" --out "$scratch/twin" \
  --vocab 300 --seed 4 > /dev/null 2>&1 || fail "prepare into a second directory failed"
for f in tokenizer.model tokenizer.vocab train.u16 val.u16; do
  cmp -s "$out/$f" "$scratch/twin/$f" || fail "$f differs between two runs with the same arguments"
done

# --- info refuses damaged copies, naming the problem.
mkdir -p "$scratch/bad"
cp "$out/train.u16" "$out/train.u16.json" "$scratch/bad/"
printf '\xff\xff' | dd of="$scratch/bad/train.u16" bs=1 seek=0 conv=notrunc status=none
if msg=$("$sgt_data" info "$scratch/bad/train.u16" 2>&1); then fail "info accepted a corrupted file"; fi
expect_contains "$msg" "sha256" "info on a corrupted file"
cp "$out/train.u16" "$scratch/bad/train.u16"
truncate -s 9 "$scratch/bad/train.u16"
if msg=$("$sgt_data" info "$scratch/bad/train.u16" 2>&1); then fail "info accepted a truncated file"; fi
expect_contains "$msg" "truncated" "info on a truncated file"
expect_contains "$msg" "9 bytes" "info on a truncated file"
rm "$scratch/bad/train.u16.json"
if msg=$("$sgt_data" info "$scratch/bad/train.u16" 2>&1); then fail "info accepted a file without sidecar"; fi
expect_contains "$msg" "sgt-data prepare" "info without a sidecar"

# --- encode with the prepared tokenizer: 60 documents -> 60 end-of-text ids.
enc=$("$sgt_data" encode --tokenizer "$out/tokenizer.model" --input "$scratch/corpus_a.txt" \
      --out "$scratch/a.u16" 2>&1) || fail "encode failed: $enc"
expect_contains "$enc" "from 60 documents, 360 sentences" "encode"
"$sgt_data" info "$scratch/a.u16" > /dev/null || fail "info rejected the encoded file"

# --- Usage errors exit 2 with a message; runtime errors exit 1.
# expect_status STATUS NEEDLE -- ARGS...: sgt-data ARGS... exits STATUS printing NEEDLE.
expect_status() { local want=$1 needle=$2; shift 3; expect_status_output "$want" "$needle" -- "$sgt_data" "$@"; }
expect_status 2 "--vocab must be an integer" -- prepare --input "$scratch/corpus_a.txt" --out "$out" --vocab abc
expect_status 2 "--vocab must be an integer >= 260" -- prepare --input "$scratch/corpus_a.txt" --out "$out" --vocab 100
expect_status 2 "unknown flag --frobnicate" -- prepare --frobnicate --out "$out"
expect_status 2 "needs --out" -- prepare --input "$scratch/corpus_a.txt"
expect_status 2 "exactly one of" -- prepare --corpus brown --input "$scratch/corpus_a.txt" --out "$out"
expect_status 2 "unknown corpus" -- prepare --corpus wikipedia --out "$out"
expect_status 2 "--val-fraction" -- prepare --input "$scratch/corpus_a.txt" --out "$out" --val-fraction 1.5
expect_status 2 "unknown command" -- frobnicate
expect_status 1 "no such file" -- prepare --input "$scratch/missing.txt" --out "$out"
expect_status 1 "does not exist" -- encode --tokenizer "$scratch/none.model" --input "$scratch/corpus_a.txt" --out "$scratch/x.u16"
# A failed prepare leaves the good outputs alone.
"$sgt_data" info "$out/train.u16" > /dev/null || fail "a failed prepare damaged the outputs"

help=$("$sgt_data" --help) || fail "--help exited non-zero"
for word in prepare encode info --corpus --input --vocab --val-fraction --seed --max-sentences; do
  expect_contains "$help" "$word" "--help"
done

echo "sgt_data_test: all checks passed"
