#!/usr/bin/env bash
# Runs that cannot succeed end in a clear state with a reason, visible in `sgtctl show`, and the
# daemons keep serving: a child that crashes (failed: the signal and the tail of its stderr; not
# retried), bad data (failed: sgt-train's own message), a run needing more devices than any
# worker has (queued, saying why), a checkpoint root that is not writable (failed, naming it),
# and a resume checkpoint outside the worker's checkpoint root (refused). Also: cancel of a child
# that ignores SIGTERM ends with SIGKILL after the grace period.
BIN=$1 SCRATCH=$2
source "$(dirname "$0")/lib.sh"
begin_worker_test
show() { "$BIN/sgtctl" show "$1" > "$SCRATCH/show.txt" 2>&1; grep -qE -- "$2" "$SCRATCH/show.txt" ||
  fail "sgtctl show $1 lacks /$2/: $(cat "$SCRATCH/show.txt")"; }
submit() { "$BIN/sgtctl" submit "$1" > /dev/null; }

# sgt-train, except that a run with train.seed 13 crashes at once, saying something on stderr,
# and one with train.seed 18 ignores SIGTERM.
cat > "$SCRATCH/train-wrapper" <<SH
#!/bin/sh
for a in "\$@"; do case \$a in *config.json) cfg=\$a;; esac; done
if grep -q '"seed":13' "\$cfg"; then echo "simulated crash in the data loader" >&2; kill -SEGV \$\$; fi
if grep -q '"seed":18' "\$cfg"; then trap '' TERM; fi   # ignored across exec: only SIGKILL stops it
exec "$BIN/sgt-train" "\$@"
SH
chmod +x "$SCRATCH/train-wrapper"

start_coordinator "$db" --lease-seconds 6
start_worker node-a --train-program "$SCRATCH/train-wrapper" --cancel-grace-seconds 1; pid_a=$WORKER_PID

STEPS=300 SWEEP_NAME=crash write_real_sweep "$SCRATCH/crash.yaml" "$SCRATCH/data" "train.seed: [13]"
submit "$SCRATCH/crash.yaml"                                                       # r1
wait_until sql_true "$db" "SELECT state = 'failed' FROM runs WHERE id = 1"
show r1 "failed"
show r1 "Segmentation fault"
show r1 "simulated crash in the data loader"
[[ $(sqlite3 "$db" "SELECT attempt || ' ' || restarts FROM runs WHERE id = 1") == "1 0" ]] || fail "r1 was retried"

STEPS=300 SWEEP_NAME=baddata write_real_sweep "$SCRATCH/bad.yaml" "$SCRATCH/nowhere" "train.seed: [14]"
submit "$SCRATCH/bad.yaml"                                                         # r2
wait_until sql_true "$db" "SELECT state = 'failed' FROM runs WHERE id = 2"
show r2 "nowhere/train.u16"

EXTRA="devices: 4" SWEEP_NAME=big write_real_sweep "$SCRATCH/big.yaml" "$SCRATCH/data" "train.seed: [15]"
submit "$SCRATCH/big.yaml"                                                         # r3
show r3 "queued"
show r3 "needs 4 cpu device"

STEPS=300 SWEEP_NAME=ok write_real_sweep "$SCRATCH/ok.yaml" "$SCRATCH/data" "train.seed: [16]"
submit "$SCRATCH/ok.yaml"                                                          # r4
timeout 300 "$BIN/sgtctl" watch r4 > /dev/null || fail "r4 did not succeed after the failures"

# Cancel: SIGTERM, and SIGKILL after the grace period for a child that ignores SIGTERM.
STEPS=100000 SWEEP_NAME=stubborn write_real_sweep "$SCRATCH/stubborn.yaml" "$SCRATCH/data" "train.seed: [18]"
submit "$SCRATCH/stubborn.yaml"                                                    # r5
wait_until sql_true "$db" "SELECT state = 'running' AND step > 0 FROM runs WHERE id = 5"
child=$(pgrep -f "$SCRATCH/node-a/runs/r5/attempt-1") || fail "no child for r5"
"$BIN/sgtctl" cancel r5 > /dev/null
show r5 "cancelled"
wait_until bash -c "! kill -0 $child"
wait_until grep -q "r5 attempt 1 still runs 1 s after SIGTERM; sending SIGKILL" "$SCRATCH/node-a.log"
wait_until grep -q "r5 attempt 1 ended: RUN_STATE_CANCELLED" "$SCRATCH/node-a.log"

# A worker whose checkpoint root becomes read-only. Root ignores permission bits through
# CAP_DAC_OVERRIDE, so a test run as root runs this worker as root without that capability (and
# CAP_DAC_READ_SEARCH): the bits bind it as they bind any user, and it still reaches the checkout
# wherever that lives (another user, such as nobody, cannot enter a checkout under /root).
kill -TERM "$pid_a"; wait "$pid_a" || fail "node-a did not stop cleanly"
mkdir -p "$SCRATCH/ro-root"
AS=""
if [[ $(id -u) == 0 ]]; then
  AS="setpriv --inh-caps=-dac_override,-dac_read_search --bounding-set=-dac_override,-dac_read_search"
fi
AS=$AS CKPT=$SCRATCH/ro-root start_worker node-n
chmod 555 "$SCRATCH/ro-root"
# The premise: the worker's user cannot write there.
if $AS touch "$SCRATCH/ro-root/probe" 2> /dev/null; then
  fail "the worker's user can still write to the read-only $SCRATCH/ro-root; this test cannot check the refusal"
fi

# A resume point outside this worker's root (node-a's checkpoints) is refused.
"$BIN/sgtctl" fork r4 --from-step 100 > /dev/null                                  # r6
wait_until sql_true "$db" "SELECT state = 'failed' FROM runs WHERE id = 6"
show r6 "outside the checkpoint root $SCRATCH/ro-root"

STEPS=300 SWEEP_NAME=ro write_real_sweep "$SCRATCH/ro.yaml" "$SCRATCH/data" "train.seed: [17]"
submit "$SCRATCH/ro.yaml"                                                          # r7
wait_until sql_true "$db" "SELECT state = 'failed' FROM runs WHERE id = 7"
show r7 "checkpoint root $SCRATCH/ro-root is not writable"

# Still serving: the worker is connected, the big run still waits and says why, and cancels.
"$BIN/sgtctl" workers | grep -E "^w[0-9]+ +node-n " | grep -q " yes " || fail "node-n is gone"
show r3 "largest connected worker has 1"
"$BIN/sgtctl" cancel r3 > /dev/null
[[ $(run_state "$db" r3) == cancelled ]] || fail "r3 not cancelled"
chmod 755 "$SCRATCH/ro-root"
stop_coordinator
echo PASS
