#!/usr/bin/env bash
# The scaled-down versions of the paper's ablation sweeps (examples/paper/table{2,3,4,9}.yaml
# through examples/paper/cpu-version) run to completion through a real coordinator and two
# workers. CI shortens them further: 30 steps, with the schedule moved inside them (which merges
# Table 9's three schedules into one run); the tiny corpus of lib.sh stands in for Brown.
BIN=$1 SCRATCH=$2
source "$(dirname "$0")/lib.sh"
begin_worker_test
paper="$SGT_SOURCE_DIR/examples/paper"

declare -A want_runs=([table2]=13 [table3]=3 [table4]=3 [table9]=3)
for table in table2 table3 table4 table9; do
  "$paper/cpu-version" "$paper/$table.yaml" |
    sed -e "s|data/brown/train.u16|$SCRATCH/data/train.u16|" \
        -e "s|data/brown/val.u16|$SCRATCH/data/val.u16|" \
        -e 's|model.vocab_size: 4096|model.vocab_size: 320|' \
        -e 's|train.steps: 600|train.steps: 30|' > "$SCRATCH/$table.yaml"
  printf '  train.warmup_steps: 3\n  growth.t_start: 10\n  growth.delta_t: 10\n  growth.fixed_from_step: 5\n' >> "$SCRATCH/$table.yaml"
  grep -q "train.steps: 30" "$SCRATCH/$table.yaml" || fail "$table: the CPU version was not shortened"
done

start_coordinator "$db" --lease-seconds 10
start_two_workers
for table in table2 table3 table4 table9; do
  "$BIN/sgtctl" submit "$SCRATCH/$table.yaml" > "$SCRATCH/$table.submit" || fail "submit $table"
done
wait_until_deadline=600
for sweep in s1 s2 s3 s4; do
  timeout "$wait_until_deadline" "$BIN/sgtctl" watch "$sweep" > "$SCRATCH/watch-$sweep.txt" ||
    fail "watch $sweep: $(tail -5 "$SCRATCH/watch-$sweep.txt")"
done
for table in table2 table3 table4 table9; do
  got=$(sqlite3 "$db" "SELECT COUNT(*) FROM runs r JOIN sweeps s ON s.id = r.sweep_id
         WHERE s.name = 'paper-$table-cpu' AND r.state = 'succeeded'")
  [[ $got == "${want_runs[$table]}" ]] || fail "$table: $got runs succeeded, want ${want_runs[$table]}"
done
[[ $(sqlite3 "$db" "SELECT COUNT(*) FROM runs WHERE state != 'succeeded'") == 0 ]] || fail "a run did not succeed"
# The runs did what their cells say: Table 2's head loops chose 2 heads, its attention loops all
# 4, its Block Loops whole blocks; Table 4's runs evaluated at 2x, 3x and 4x the context.
sqlite3 "$db" "SELECT r.name, d.heads, d.whole_block FROM growth_decisions d JOIN runs r ON r.id = d.run_id
               WHERE r.name LIKE 'paper-table2-cpu/%' AND d.action = 'activate'" > "$SCRATCH/t2.txt"
grep "component=high-entropy" "$SCRATCH/t2.txt" | grep -qE '\|\[[0-9], ?[0-9]\]\|0$' || fail "high-entropy heads: $(cat "$SCRATCH/t2.txt")"
grep "component=attention-loop" "$SCRATCH/t2.txt" | grep -qE '\|\[0, ?1, ?2, ?3\]\|0$' || fail "attention loop heads"
grep "component=block-loop" "$SCRATCH/t2.txt" | grep -qE '\|1$' || fail "block loop is not whole blocks"
"$BIN/sgtctl" report s3 > "$SCRATCH/report-table4.txt" || fail "report table4"
echo "PASS"
