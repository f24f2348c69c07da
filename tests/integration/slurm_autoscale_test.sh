#!/usr/bin/env bash
# The coordinator's Slurm autoscaler (issue 17) against a real one-host Slurm (start_slurm in
# lib.sh), with the worker batch script deploy/slurm/sgt-workers.sbatch and --slurm-max-jobs 2:
# - a sweep of four one-slot runs brings up worker jobs, never more than 2 alive (squeue is
#   polled throughout by a watcher, every 0.2 s);
# - the coordinator is restarted while they run: it loads its 2 jobs from the store and submits
#   none (the watcher still never sees a third);
# - the sweep finishes and the jobs go away by themselves (the workers exit when idle), ending
#   COMPLETED;
# - with the node drained, a queued run makes the autoscaler submit a job that stays PENDING;
#   once the run is cancelled, the autoscaler cancels that surplus job (CANCELLED);
# - the sgt_slurm_* metrics count what happened since the restart;
# - bad autoscaler flags stop the start with exit status 2, naming the flag, the value and the fix.
BIN=$1 SCRATCH=$2
source "$(dirname "$0")/lib.sh"
begin_slurm_test

# Bad autoscaler flags: exit 2 before anything starts, naming the flag, the value and the fix.
script=$SOURCE/deploy/slurm/sgt-workers.sbatch
bad() { expect_fail 2 "$1" "$BIN/sgt-coordinator" --db "$SCRATCH/bad.db" "${@:2}"; }
bad "^sgt-coordinator: --slurm-max-jobs '0': needs a whole number from 1 to 10000, e.g. --slurm-max-jobs 4$" \
  --slurm-autoscale --slurm-script "$script" --slurm-max-jobs 0
bad "--slurm-poll-seconds 'soon': needs a number of seconds from 0.2 to 3600, e.g. --slurm-poll-seconds 10" \
  --slurm-autoscale --slurm-script "$script" --slurm-poll-seconds soon
bad "--slurm-partition is a setting of the Slurm autoscaler, which is off; add --slurm-autoscale" \
  --slurm-partition gpu
bad "--slurm-autoscale needs --slurm-script PATH" --slurm-autoscale
bad "--slurm-script $SCRATCH/none.sbatch: not a readable file; pass the path of deploy/slurm/sgt-workers.sbatch" \
  --slurm-autoscale --slurm-script "$SCRATCH/none.sbatch"
bad "--sbatch /nonexistent/sbatch: not an executable file \(nor on PATH\); install Slurm's client commands" \
  --slurm-autoscale --slurm-script "$script" --sbatch /nonexistent/sbatch
bad "--slurm-script-arg 'SGT_COORDINATOR': needs KEY=VALUE" \
  --slurm-autoscale --slurm-script "$script" --slurm-script-arg SGT_COORDINATOR
bad "--slurm-gpus-per-node 4 and --slurm-cpu-slots-per-node 2: a worker offers GPUs or CPU slots, not both; drop one" \
  --slurm-autoscale --slurm-script "$script" --slurm-gpus-per-node 4 --slurm-cpu-slots-per-node 2
bad "--slurm-time-limit '1h': not a time limit sbatch takes" \
  --slurm-autoscale --slurm-script "$script" --slurm-time-limit 1h
[[ ! -e $SCRATCH/bad.db ]] || fail "a refused start created its store"

# The workers dial the coordinator's address, so it is fixed before the start (and kept by the
# restart).
COORD_LISTEN=127.0.0.1:$(free_port)
export COORD_LISTEN
name=sgt-autoscale-test
flags=(--lease-seconds 6 --slurm-autoscale --slurm-script "$SOURCE/deploy/slurm/sgt-workers.sbatch"
  --slurm-max-jobs 2 --slurm-cpu-slots-per-node 1 --slurm-poll-seconds 0.5
  --slurm-start-seconds 20 --slurm-job-name "$name" --slurm-sbatch-arg "--output=$SCRATCH/job-%j.out"
  --slurm-script-arg "SGT_COORDINATOR=$COORD_LISTEN" --slurm-script-arg "SGT_CHECKPOINT_ROOT=$SCRATCH/ckpt"
  --slurm-script-arg "SGT_BIN=$BIN" --slurm-script-arg "SGT_WORK_BASE=$SCRATCH/work"
  --slurm-script-arg SGT_EXIT_WHEN_IDLE=2
  --metrics-listen 127.0.0.1:0 --metrics-port-file "$SCRATCH/metrics.port")
start_coordinator "$db" "${flags[@]}"
alive() { squeue -h --name="$name" -o %i | wc -l; }

# The most jobs of the autoscaler ever alive at once, in $SCRATCH/most.txt.
echo 0 > "$SCRATCH/most.txt"
(
  most=0
  while true; do
    n=$(alive)
    if ((n > most)); then
      most=$n
      echo "$most" > "$SCRATCH/most.txt"
    fi
    sleep 0.2
  done
) &
watcher=$!
check_most() {
  (($(cat "$SCRATCH/most.txt") <= 2)) || fail "$(cat "$SCRATCH/most.txt") jobs were alive at once"
}

# --- Four runs, at most two jobs, a restart in the middle.
t0=$SECONDS
STEPS=200 SWEEP_NAME=four write_real_sweep "$SCRATCH/four.yaml" "$SCRATCH/data" "train.seed: [1, 2, 3, 4]"
"$BIN/sgtctl" submit "$SCRATCH/four.yaml" > /dev/null
wait_until grep -q "submitting 2 (0 of 2 alive)" "$SCRATCH/coordinator.log"
wait_until sql_true "$db" "SELECT COUNT(*) = 2 FROM runs WHERE state = 'running'"
echo "sweep submitted to two runs running on two new worker jobs: $((SECONDS - t0)) s" >> "$SCRATCH/times.txt"
[[ $(sqlite3 "$db" "SELECT group_concat(name) FROM (SELECT name FROM workers ORDER BY name)") == sgtnode,sgtnode-2 ]] ||
  fail "workers: $(sqlite3 "$db" "SELECT name FROM workers")"
stop_coordinator
start_coordinator "$db" "${flags[@]}"
grep -q "autoscaler on: at most 2 worker job(s) alive; 2 from the store" "$SCRATCH/coordinator.log" ||
  fail "the restarted coordinator did not load its jobs: $(grep slurm "$SCRATCH/coordinator.log")"
WAIT_S=240 wait_until sql_true "$db" "SELECT COUNT(*) = 4 FROM runs WHERE state = 'succeeded'"
check_most
jobs=$(grep -o "submitted worker job [0-9]*" "$SCRATCH/coordinator.log" | awk '{print $4}')
[[ $(echo "$jobs" | wc -l) == 2 ]] || fail "jobs submitted: $jobs"
wait_until bash -c "(( \$(squeue -h --name='$name' -o %i | wc -l) == 0 ))"
for j in $jobs; do
  [[ $(slurm_final_state "$j") == COMPLETED ]] || fail "job $j ended $(slurm_final_state "$j")"
  grep -q "no run for 2 s (--exit-when-idle)" "$SCRATCH/job-$j.out" || fail "job $j's worker did not exit idle"
done
wait_until grep -q "job .* ended (squeue no longer lists it)" "$SCRATCH/coordinator.log"
wait_until sql_true "$db" "SELECT COUNT(*) = 0 FROM slurm_jobs"
echo "the four runs done and the jobs gone: $((SECONDS - t0)) s" >> "$SCRATCH/times.txt"

# --- A job that stays pending (the node drained) is cancelled once the queue is empty.
scontrol update NodeName=sgtnode State=DRAIN Reason=sgt-autoscale-test
STEPS=100 SWEEP_NAME=late write_real_sweep "$SCRATCH/late.yaml" "$SCRATCH/data" "train.seed: [5]"
"$BIN/sgtctl" submit "$SCRATCH/late.yaml" > /dev/null
wait_until bash -c "[[ \$(squeue -h --name='$name' -o %T) == PENDING ]]"
pending=$(squeue -h --name="$name" -o %i)
"$BIN/sgtctl" cancel s2 > /dev/null
wait_until grep -q "no run is queued: cancelling 1 pending job ($pending)" "$SCRATCH/coordinator.log"
wait_until bash -c "[[ -z \$(squeue -h -j $pending -o %i 2>/dev/null) ]]"
[[ $(slurm_final_state "$pending") == CANCELLED ]] || fail "job $pending ended $(slurm_final_state "$pending")"
scontrol update NodeName=sgtnode State=RESUME
check_most

# The metrics since the restart: one submission (the pending job), one cancel, no failures.
metrics=$(curl -fsS "http://127.0.0.1:$(cat "$SCRATCH/metrics.port")/metrics")
for want in 'sgt_slurm_job_submissions_total{result="ok"} 1' 'sgt_slurm_job_submissions_total{result="failed"} 0' \
  'sgt_slurm_job_cancels_total 1' 'sgt_slurm_command_failures_total{command="squeue"} 0'; do
  grep -qF "$want" <<< "$metrics" || fail "metrics lack '$want': $(grep sgt_slurm <<< "$metrics")"
done
wait_until bash -c "curl -fsS 'http://127.0.0.1:$(cat "$SCRATCH/metrics.port")/metrics' | grep -q 'sgt_slurm_jobs{state=\"pending\"} 0'"
kill "$watcher" && wait "$watcher" 2> /dev/null || true
stop_coordinator
stop_slurm
echo "whole test: ${SECONDS} s" >> "$SCRATCH/times.txt"
cat "$SCRATCH/times.txt"
echo PASS
