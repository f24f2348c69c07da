#!/usr/bin/env bash
# The README's main command as a newcomer meets it: `scripts/quickstart --steps 60` in a fresh
# copy of the checkout (its tracked and not-ignored files only: no build/, data/ or runs/), at a
# path with a space in it, started from another working directory. It must build, fetch and
# prepare the corpus, train the three runs through a real coordinator and two workers, and print
# the report; `sgtctl watch` on a pipe must print a log (state changes, evals, growth decisions,
# paced progress), not a line per step. (Run twice in a row it starts afresh each time: checked
# by hand, not here, to keep this test near a minute of training.)
BIN=$1 SCRATCH=$2
source "$(dirname "$0")/lib.sh"
src=${SGT_SOURCE_DIR:?SGT_SOURCE_DIR: the checkout to copy}
rm -rf "$SCRATCH" && mkdir -p "$SCRATCH"
kill_jobs_on_exit

copy="$SCRATCH/fresh clone"
mkdir -p "$copy"
git -C "$src" rev-parse --git-dir > /dev/null 2>&1 || fail "$src is not a git checkout; this test copies what git tracks"
# What a clone has: tracked files (as they are in the work tree) and new files git would add.
(cd "$src" && git ls-files -z --cached --others --exclude-standard |
  while IFS= read -r -d '' f; do [[ -e $f ]] && printf '%s\0' "$f"; done |
  tar --null -T - -cf -) | tar -C "$copy" -xf -
[[ -x $copy/scripts/quickstart ]] || fail "scripts/quickstart is missing or not executable in the copy"
[[ ! -e $copy/build && ! -e $copy/data && ! -e $copy/runs ]] || fail "the copy is not fresh"

# From /, so that the script must find its checkout itself.
log=$SCRATCH/quickstart.log
rc=0
(cd / && "$copy/scripts/quickstart" --steps 60) > "$log" 2>&1 || rc=$?
[[ $rc == 0 ]] || { tail -30 "$log" >&2; fail "scripts/quickstart --steps 60 exited $rc (log: $log)"; }
db=$copy/runs/quickstart/sgt.db
[[ $(sqlite3 "$db" "SELECT group_concat(variant || ':' || state || ':' || step, ' ') FROM runs ORDER BY id") == \
  "vanilla:succeeded:60 block_loop:succeeded:60 sgt:succeeded:60" ]] ||
  fail "the store's runs are not the three variants succeeded at step 60: $(sqlite3 "$db" 'SELECT variant, state, step FROM runs')"
# The report: Table 1 with every run, and a row per variant with its perplexity and overhead.
grep -q 'Table 1: sweep s1 "quickstart", 3 of 3 runs succeeded' "$log" || fail "no report of s1: $(tail -15 "$log")"
for v in vanilla block_loop sgt; do
  grep -qE "^$v +.* 60 +1 +[0-9]+\.[0-9]+ ± - .*\+[0-9]+\.[0-9]%" "$log" || fail "the report has no row for $v: $(tail -8 "$log")"
done
grep -q "quickstart: trained in" "$log" || fail "the quickstart did not say how long training took"

# The watch log: every run's state changes, an eval at step 50 and 60, the growth decisions of
# Block Loop and SGT at step 50, and progress lines paced (at most one per run per 10 s, plus
# the state lines), never one per step.
for r in r1 r2 r3; do
  grep -qE " $r succeeded step 60/60" "$log" || fail "watch did not log $r succeeding"
  grep -qE " $r eval as of step (5[0-9]|60): val loss [0-9.]+ val ppl [0-9.]+" "$log" || fail "watch logged no eval of $r"
done
for r in r2 r3; do
  grep -qE " $r growth at step 50: " "$log" || fail "watch logged no growth decision of $r at step 50"
done
grep -qE " r1 growth at step" "$log" && fail "watch logged growth of the vanilla run"
trained=$(sed -n 's/^quickstart: trained in \([0-9]*\) s$/\1/p' "$log")
progress=$(grep -cE " r[1-3] running step [0-9]+/60" "$log" || true)
bound=$((3 * (trained / 10 + 3)))
((progress <= bound)) || fail "watch printed $progress progress lines in $trained s (at most $bound: one per run per 10 s and per state change)"
echo "quickstart: trained in $trained s, $progress progress lines"

echo PASS
