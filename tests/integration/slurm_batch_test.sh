#!/usr/bin/env bash
# Slurm for real (issue 17): a one-host cluster of Debian's slurm-wlm (start_slurm in lib.sh:
# munge with a key made here, slurmctld and slurmd on loopback) and the worker batch script
# deploy/slurm/sgt-workers.sbatch submitted with sbatch, against a coordinator on loopback.
# 1. A worker job joins (worker `sgtnode`, the Slurm node's name), a tiny run finishes on it, the
#    worker exits when idle (--exit-when-idle) and the job ends COMPLETED (scontrol show job:
#    there is no accounting, and MinJobAge keeps ended jobs known).
# 2. scancel of a worker job running a run: Slurm's SIGTERM reaches the worker and sgt-train
#    alike; the run is reported lost by the worker ("shut down", not failed) and re-queued from
#    its newest checkpoint; a second worker job resumes it from that checkpoint and finishes
#    it; the store matches the event logs; the first job ends CANCELLED, the second COMPLETED.
# Times (sbatch to the worker's registration, the whole test) go to $SCRATCH/times.txt.
BIN=$1 SCRATCH=$2
source "$(dirname "$0")/lib.sh"
begin_slurm_test
start_coordinator "$db" --lease-seconds 6

# A worker job of the batch script, as a user would submit it; prints its job id.
submit_workers() {
  sbatch --parsable --output "$SCRATCH/job-%j.out" "$SOURCE/deploy/slurm/sgt-workers.sbatch" \
    "SGT_COORDINATOR=$SGT_COORDINATOR" "SGT_CHECKPOINT_ROOT=$SCRATCH/ckpt" "SGT_BIN=$BIN" \
    "SGT_WORK_BASE=$SCRATCH/work" SGT_DEVICES=cpu:1 SGT_EXIT_WHEN_IDLE=2
}
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
ended() { [[ -z $(slurm_state "$1") ]]; }

# --- 1. A job, a run, an idle exit, COMPLETED.
STEPS=100 SWEEP_NAME=one write_real_sweep "$SCRATCH/one.yaml" "$SCRATCH/data" "train.seed: [1]"
"$BIN/sgtctl" submit "$SCRATCH/one.yaml" > /dev/null
t0=$(now)
job1=$(submit_workers)
wait_until sql_true "$db" "SELECT COUNT(*) = 1 FROM workers WHERE name = 'sgtnode'"
echo "sbatch to the worker registered: $(since "$t0") s" >> "$SCRATCH/times.txt"
WAIT_S=180 wait_until sql_true "$db" "SELECT state = 'succeeded' FROM runs WHERE id = 1"
wait_until ended "$job1"
[[ $(slurm_final_state "$job1") == COMPLETED ]] ||
  fail "job $job1 ended $(slurm_final_state "$job1"): $(tail -5 "$SCRATCH/job-$job1.out")"
grep -q "no run for 2 s (--exit-when-idle): stopping" "$SCRATCH/job-$job1.out" ||
  fail "the worker of job $job1 did not exit when idle: $(tail -5 "$SCRATCH/job-$job1.out")"
echo "job 1, sbatch to COMPLETED: $(since "$t0") s" >> "$SCRATCH/times.txt"

# --- 2. scancel while a run runs: re-queued from its newest checkpoint, resumed by another job.
STEPS=500 SWEEP_NAME=long write_real_sweep "$SCRATCH/long.yaml" "$SCRATCH/data" "train.seed: [2]"
"$BIN/sgtctl" submit "$SCRATCH/long.yaml" > /dev/null
job2=$(submit_workers)
WAIT_S=120 wait_until sql_true "$db" "SELECT COUNT(*) > 0 FROM checkpoints WHERE run_id = 2"
[[ $(run_state "$db" r2) == running ]] || fail "r2 ended before the scancel; make it longer"
t0=$(now)
scancel "$job2"
wait_until sql_true "$db" "SELECT COUNT(*) = 1 FROM run_events WHERE run_id = 2 AND to_state = 'lost'"
echo "scancel to the run re-queued: $(since "$t0") s" >> "$SCRATCH/times.txt"
reason=$(sqlite3 "$db" "SELECT reason FROM run_events WHERE run_id = 2 AND to_state = 'lost'")
[[ $reason == *"shut down; the run goes back to the queue"* ]] || fail "r2 lost for: $reason"
[[ $(sqlite3 "$db" "SELECT COUNT(*) FROM run_events WHERE run_id = 2 AND to_state = 'failed'") == 0 ]] ||
  fail "r2 failed: $(sqlite3 "$db" "SELECT reason FROM run_events WHERE run_id = 2")"
wait_until sql_true "$db" "SELECT state = 'queued' AND resume_step > 0 FROM runs WHERE id = 2"
resume=$(sqlite3 "$db" "SELECT resume_step FROM runs WHERE id = 2")
newest=$(sqlite3 "$db" "SELECT MAX(step) FROM checkpoints WHERE run_id = 2")
[[ $resume == "$newest" ]] || fail "r2 resumes from step $resume, its newest checkpoint is at $newest"
wait_until ended "$job2"
[[ $(slurm_final_state "$job2") == CANCELLED ]] || fail "job $job2 ended $(slurm_final_state "$job2")"
grep -q "signal 15: stopping" "$SCRATCH/job-$job2.out" || fail "the worker of job $job2 got no SIGTERM"

job3=$(submit_workers)
WAIT_S=180 wait_until sql_true "$db" "SELECT state = 'succeeded' FROM runs WHERE id = 2"
[[ $(sqlite3 "$db" "SELECT start_step FROM run_attempts WHERE run_id = 2 AND attempt = 2") == "$resume" ]] ||
  fail "attempt 2 of r2 did not start from step $resume: $(sqlite3 "$db" "SELECT * FROM run_attempts")"
grep -q "r2 attempt 2 .* resuming .*step-0*$resume.sgtckpt" "$SCRATCH/job-$job3.out" ||
  fail "job $job3's worker did not resume r2 from step $resume: $(grep r2 "$SCRATCH/job-$job3.out")"
check_store_matches_events "$db" "$SCRATCH/work/sgtnode"
wait_until ended "$job3"
[[ $(slurm_final_state "$job3") == COMPLETED ]] || fail "job $job3 ended $(slurm_final_state "$job3")"
stop_coordinator
stop_slurm
echo "whole test: ${SECONDS} s" >> "$SCRATCH/times.txt"
cat "$SCRATCH/times.txt"
echo PASS
