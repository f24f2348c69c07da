# Shared helpers for the integration tests (sourced, not run).
set -euo pipefail

fail() { echo "FAIL: $*" >&2; exit 1; }

# Runs a command that must fail with exit status $1 and print text matching $2 on stderr.
expect_fail() {
  local want_rc=$1 pattern=$2; shift 2
  local rc=0
  "$@" > "$SCRATCH/out.txt" 2> "$SCRATCH/err.txt" || rc=$?
  [[ $rc == "$want_rc" ]] || { cat "$SCRATCH/err.txt" >&2; fail "'$*' exited $rc, want $want_rc"; }
  grep -qE -- "$pattern" "$SCRATCH/err.txt" || { cat "$SCRATCH/err.txt" >&2; fail "'$*' stderr lacks /$pattern/"; }
}

# Fails unless TEXT ($1) contains NEEDLE ($2) literally; WHAT ($3) names the check.
expect_contains() {
  [[ "$1" == *"$2"* ]] || fail "$3: expected output to contain \"$2\", got:"$'\n'"$1"
}

# Runs CMD... (after --), which must exit with STATUS ($1) and print NEEDLE ($2), matched
# literally, on stdout or stderr.
expect_status_output() {
  local want=$1 needle=$2; shift 3
  local got=0 msg
  msg=$("$@" 2>&1) || got=$?
  [[ $got -eq $want ]] || fail "$* exited $got, expected $want: $msg"
  expect_contains "$msg" "$needle" "$*"
}

# A deterministic little corpus of ~2,000 sentences and its token files (vocabulary 320).
make_tiny_data() {
  local dir=$1
  mkdir -p "$dir"
  awk 'BEGIN {
    split("the a one every some no this that", det);
    split("cat dog bird model layer head loop growth entropy signal river city", noun);
    split("sees finds loops grows likes measures follows keeps", verb);
    split("quickly slowly often rarely deeply gently", adv);
    srand(7);
    for (i = 0; i < 2000; i++) {
      printf "%s %s %s %s %s %s.\n", det[int(rand()*8)+1], noun[int(rand()*12)+1], adv[int(rand()*6)+1],
             verb[int(rand()*8)+1], det[int(rand()*8)+1], noun[int(rand()*12)+1];
    }
  }' > "$dir/corpus.txt"
  "$BIN/sgt-data" prepare --input "$dir/corpus.txt" --out "$dir" --vocab 320 > "$dir/prepare.log"
}

# A tiny SGT run configuration over make_tiny_data's files.
write_tiny_config() {
  local path=$1 data=$2
  cat > "$path" <<YAML
name: tiny
variant: sgt
data: {train: $data/train.u16, validation: $data/val.u16}
model: {layers: 3, d_model: 32, heads: 4, d_ff: 64, context: 32, vocab_size: 320}
train: {steps: 24, batch_size: 4, micro_batch_size: 2, lr: 3.0e-3, warmup_steps: 4,
        eval_interval: 12, eval_batches: 2, extrapolation: [2], seed: 3, threads: 1}
growth: {t_start: 6, delta_t: 6, layers: 2, k_max: 2, heads: 2}
entropy: {telemetry_interval: 3, probe_sequences: 4}
checkpoint: {at_boundaries: true}
YAML
}

# Starts sgt-coordinator on a loopback port it picks itself, on the store $1, with any further
# flags; sets COORD_PID and exports SGT_COORDINATOR for sgtctl. Its log: $SCRATCH/coordinator.log.
# COORD_LISTEN=host:port restarts it where it was (workers reconnect to the same address).
start_coordinator() {
  local db=$1; shift
  rm -f "$SCRATCH/coord.port"
  "$BIN/sgt-coordinator" --listen "${COORD_LISTEN:-127.0.0.1:0}" --db "$db" --port-file "$SCRATCH/coord.port" "$@" \
    >> "$SCRATCH/coordinator.log" 2>&1 &
  COORD_PID=$!
  local deadline=$((SECONDS + 60))
  until [[ -s $SCRATCH/coord.port ]]; do
    kill -0 "$COORD_PID" 2>/dev/null || fail "sgt-coordinator exited: $(tail -5 "$SCRATCH/coordinator.log")"
    ((SECONDS < deadline)) || fail "sgt-coordinator did not start listening in 60 s"
    sleep 0.05
  done
  export SGT_COORDINATOR=127.0.0.1:$(cat "$SCRATCH/coord.port")
}

# SIGTERM, and the clean exit status it promises.
stop_coordinator() {
  kill -TERM "$COORD_PID"
  local rc=0
  wait "$COORD_PID" || rc=$?
  [[ $rc == 0 ]] || fail "sgt-coordinator exited $rc on SIGTERM: $(tail -5 "$SCRATCH/coordinator.log")"
}

# Kills every background job of the test when it ends, however it ends.
kill_jobs_on_exit() {
  trap 'jobs -p | xargs -r kill -9 2>/dev/null || true' EXIT
}

# Polls `$@` (a command) until it succeeds, up to $WAIT_S seconds (default 60). The deadline is
# only there to turn a hang into a failure: keep it generous, since CI may share a loaded machine.
wait_until() {
  local deadline=$(( $(date +%s) + ${WAIT_S:-60} ))
  until "$@" > /dev/null 2>&1; do
    (( $(date +%s) < deadline )) || fail "timed out waiting for: $*"
    sleep 0.1
  done
}

# True when the SQL query $2 on the store $1 returns 1 (for wait_until).
sql_true() { [[ $(sqlite3 "$1" "$2") == 1 ]]; }

# Row count of a table in the SQLite store $1.
rows() { sqlite3 "$1" "SELECT COUNT(*) FROM $2"; }

# A sweep of three tiny runs (vanilla, block_loop, sgt) for coordinator tests: 60 steps, growth
# boundaries at 20 and 40, entropy every 10 steps. Data paths are never opened by these tests.
write_tiny_sweep() {
  cat > "$1" <<'YAML'
name: tiny
base:
  variant: sgt
  data: {train: data/brown/train.u16, validation: data/brown/val.u16}
  model: {layers: 3, d_model: 32, heads: 4, d_ff: 64, context: 32, vocab_size: 320}
  train: {steps: 60, batch_size: 4, micro_batch_size: 2, warmup_steps: 4, seed: 1}
  growth: {t_start: 20, delta_t: 20, layers: 2, k_max: 1, heads: 1}
  entropy: {telemetry_interval: 10}
  checkpoint: {at_boundaries: true}
grid:
  variant: [vanilla, block_loop, sgt]
YAML
}

# Checks that every run in store $1 has exactly the telemetry a simulated worker sends for the
# whole run (a fork: from its parent's step on), once: entropy rows at every 10th step and boundary, 5 scalars per step plus 2 at the
# end, a decision per boundary. Only surviving attempts' rows count (superseded ones are allowed).
check_complete_telemetry() {
  python3 - "$1" <<'PY'
import json, sqlite3, sys
db = sqlite3.connect(sys.argv[1])
bad = []
for rid, name, cfg, state, first in db.execute(
        "SELECT id, name, config_json, state, COALESCE(parent_step, 0) + 1 FROM runs"):
    c = json.loads(cfg)  # a fork starts after its parent's step
    steps, layers, heads = c["train"]["steps"], c["model"]["layers"], c["model"]["heads"]
    interval = 10
    boundaries = [] if c["variant"] == "vanilla" else ([20] if c["variant"] == "block_loop" else list(range(20, steps + 1, 20)))
    boundaries = [b for b in boundaries if b >= first]
    ent_steps = {s for s in range(first, steps + 1) if s % interval == 0} | set(boundaries)
    # Surviving rows: for each step, the rows of the newest attempt that reported it.
    got = dict(db.execute("""SELECT step, COUNT(*) FROM entropy e WHERE run_id=? AND attempt =
        (SELECT MAX(attempt) FROM entropy WHERE run_id=e.run_id AND step=e.step) GROUP BY step""", (rid,)))
    want = {s: layers * heads for s in ent_steps}
    if state != "succeeded": bad.append(f"r{rid} {name}: state {state}")
    if got != want: bad.append(f"r{rid} {name}: entropy rows per step {got} != {want}")
    sc = dict(db.execute("""SELECT step, COUNT(*) FROM scalars s WHERE run_id=? AND attempt =
        (SELECT MAX(attempt) FROM scalars WHERE run_id=s.run_id AND step=s.step) GROUP BY step""", (rid,)))
    want_sc = {s: 5 for s in range(first, steps + 1)}; want_sc[steps] = 7
    if sc != want_sc: bad.append(f"r{rid} {name}: scalars per step differ: {sorted(set(sc.items()) ^ set(want_sc.items()))[:6]}")
    dec = [s for (s,) in db.execute("SELECT DISTINCT step FROM growth_decisions WHERE run_id=? ORDER BY step", (rid,))]
    if dec != boundaries: bad.append(f"r{rid} {name}: decisions at {dec}, want {boundaries}")
if bad:
    print("\n".join(bad)); sys.exit(1)
print("telemetry complete for", db.execute("SELECT COUNT(*) FROM runs").fetchone()[0], "runs")
PY
}

# Starts sgt-worker named $1 on $SGT_COORDINATOR with ${DEVICES:-cpu:1}, its own work dir
# $SCRATCH/$1 and the shared checkpoint root ${CKPT:-$SCRATCH/ckpt}, plus any further flags;
# waits until it holds a session. Sets WORKER_PID; its log is $SCRATCH/$1.log. $AS prefixes the
# command (e.g. setpriv, to run it as another user).
start_worker() {
  local name=$1; shift
  # Counted before the start: a worker that connects at once must not be waited for twice.
  local n0; n0=$(grep -c "connected to" "$SCRATCH/$name.log" 2>/dev/null || true)
  ${AS:-} "$BIN/sgt-worker" --coordinator "$SGT_COORDINATOR" --name "$name" --devices "${DEVICES:-cpu:1}" \
    --checkpoint-root "${CKPT:-$SCRATCH/ckpt}" --work-dir "$SCRATCH/$name" "$@" \
    >> "$SCRATCH/$name.log" 2>&1 &
  WORKER_PID=$!
  wait_until bash -c "(( \$(grep -c 'connected to' '$SCRATCH/$name.log') > ${n0:-0} ))"
}

# The start of an end-to-end test with real workers: a fresh $SCRATCH, background jobs killed at
# exit, the store path in $db, and tiny token files in $SCRATCH/data.
begin_worker_test() {
  rm -rf "$SCRATCH" && mkdir -p "$SCRATCH"
  kill_jobs_on_exit
  db=$SCRATCH/sgt.db
  make_tiny_data "$SCRATCH/data"
}

# Workers node-a and node-b (start_worker); their pids in pid_a and pid_b.
start_two_workers() {
  start_worker node-a "$@"; pid_a=$WORKER_PID
  start_worker node-b "$@"; pid_b=$WORKER_PID
}

# The name of the worker that runs run $2 now (store $1); the other of the two; a name's pid.
holder_of() { sqlite3 "$1" "SELECT w.name FROM runs r JOIN workers w ON w.id = r.worker_id WHERE r.id = ${2#r}"; }
other_than() { [[ $1 == node-a ]] && echo node-b || echo node-a; }
pid_of() { [[ $1 == node-a ]] && echo "$pid_a" || echo "$pid_b"; }

# A sweep of tiny real runs over make_tiny_data's files ($2): ${STEPS:-500} steps of ~10 ms,
# growth boundaries every 100 steps with a checkpoint at each. $3: the grid (default: the three
# variants); $EXTRA: more top-level sweep lines (devices: 4, ...).
write_real_sweep() {
  local path=$1 data=$2 grid=${3:-"variant: [vanilla, block_loop, sgt]"}
  cat > "$path" <<YAML
name: ${SWEEP_NAME:-e2e}
${EXTRA:-}
base:
  variant: sgt
  data: {train: $data/train.u16, validation: $data/val.u16}
  model: {layers: 3, d_model: 32, heads: 4, d_ff: 64, context: 32, vocab_size: 320}
  train: {steps: ${STEPS:-500}, batch_size: 4, micro_batch_size: 2, lr: 3.0e-3, warmup_steps: 4,
          eval_interval: 100, eval_batches: 2, extrapolation: [2], seed: 3, threads: 1}
  growth: {t_start: 100, delta_t: 100, layers: 2, k_max: 2, heads: 2}
  entropy: {telemetry_interval: 10, probe_sequences: 4}
  checkpoint: {at_boundaries: true}
grid:
  $grid
YAML
}

# The state of run $2 in store $1.
run_state() { sqlite3 "$1" "SELECT state FROM runs WHERE id = ${2#r}"; }

# Checks the store $1 against the event logs the attempts' sgt-train children wrote in the
# worker directories $2...: every scalar, entropy row, decision and checkpoint of every attempt
# is stored exactly once (an attempt cut off by a dead worker: a subset, nothing twice), and
# every succeeded run's surviving rows cover each of its steps once.
check_store_matches_events() {
  python3 - "$@" <<'PY'
import collections, glob, json, os, sqlite3, sys
db = sqlite3.connect(sys.argv[1]); dirs = sys.argv[2:]
bad = []
def log(rid, a):
    for d in dirs:
        p = f"{d}/runs/r{rid}/attempt-{a}/events.jsonl"
        if os.path.exists(p):
            return [json.loads(l) for l in open(p)]
    return None
def want_rows(ev):
    sc, ent, dec, ck = collections.Counter(), collections.Counter(), [], set()
    scored = set()  # (step, task, group) of task_eval scores: the worker translates each once
    for e in ev:
        k, s = e["event"], e.get("step")
        if k == "scalars":
            for n, v in e.items():
                if n not in ("event", "time", "step") and isinstance(v, (int, float)):
                    sc[(s, n, float(v))] += 1
        elif k == "eval":
            sc[(s, "val_loss", e["val_loss"])] += 1; sc[(s, "val_ppl", e["val_ppl"])] += 1
        elif k == "extrapolation":
            m = e["multiple"]
            sc[(s, f"val_loss@x{m}", e["val_loss"])] += 1; sc[(s, f"val_ppl@x{m}", e["val_ppl"])] += 1
        elif k == "entropy":
            ent[s] += sum(len(p) for l in e["layers"] for p in l["passes"])
        elif k == "decision":
            dec.append(s)
        elif k == "checkpoint":
            ck.add((s, e["path"], e["bytes"], e["sha256"], e["reason"]))
        elif k == "task_eval":  # docs/events.md: acc/<task>[/<group>], acc_norm/..., acc, acc_norm
            totals = [t for t in e["scores"] if not t.get("group")]
            rows = [(t["task"], t.get("group", ""), t["acc"], t["acc_norm"]) for t in e["scores"]]
            if totals:
                mean = lambda xs: sum(xs) / len(xs) if xs else None
                rows.append(("", "", mean([t["acc"] for t in totals if t["acc"] is not None]),
                             mean([t["acc_norm"] for t in totals if t["acc_norm"] is not None])))
            for task, group, acc, norm in rows:
                if (s, task, group) in scored: continue
                scored.add((s, task, group))
                for metric, v in (("acc", acc), ("acc_norm", norm)):
                    if v is not None:
                        sc[(s, "/".join(x for x in (metric, task, group) if x), float(v))] += 1
    return sc, ent, sorted(dec), ck
checked = 0
for rid, name, state, attempts, steps in db.execute("SELECT id, name, state, attempt, steps FROM runs"):
    for a in range(1, attempts + 1):
        ev = log(rid, a)
        if ev is None:
            continue  # never started (refused, or no device)
        checked += 1
        sc, ent, dec, ck = want_rows(ev)
        got_sc = collections.Counter(db.execute(
            "SELECT step, name, value FROM scalars WHERE run_id=? AND attempt=?", (rid, a)))
        got_ent = collections.Counter(dict(db.execute(
            "SELECT step, COUNT(*) FROM entropy WHERE run_id=? AND attempt=? GROUP BY step", (rid, a))))
        got_dec = [s for (s,) in db.execute(
            "SELECT step FROM growth_decisions WHERE run_id=? AND attempt=? ORDER BY step", (rid, a))]
        got_ck = set(db.execute("SELECT step, path, bytes, sha256, reason FROM checkpoints "
                                "WHERE run_id=? AND attempt=?", (rid, a)))
        ended = any(e["event"] == "end" for e in ev) or any(e["event"] == "error" for e in ev)
        tag = f"r{rid} ({name}) attempt {a}"
        if any(c > 1 for c in got_sc.values()): bad.append(f"{tag}: scalars stored twice")
        if ended:
            if got_sc != sc: bad.append(f"{tag}: scalars differ: stored only {list((got_sc - sc).items())[:3]}, logged only {list((sc - got_sc).items())[:3]}")
            if got_ent != ent: bad.append(f"{tag}: entropy rows per step differ")
            if got_dec != dec: bad.append(f"{tag}: decisions at {got_dec}, logged {dec}")
            if got_ck != ck: bad.append(f"{tag}: checkpoints differ: {got_ck ^ ck}")
        else:
            if got_sc - sc: bad.append(f"{tag}: stored scalars that were never logged")
            if any(got_ent[s] > ent[s] for s in got_ent): bad.append(f"{tag}: more entropy rows than logged")
            if not got_ck <= ck: bad.append(f"{tag}: checkpoints never logged")
    if state == "succeeded":
        # Surviving rows: per step, the newest attempt that reported it.
        loss = dict(db.execute("""SELECT step, COUNT(*) FROM scalars s WHERE run_id=? AND name='loss'
            AND attempt = (SELECT MAX(attempt) FROM scalars WHERE run_id=s.run_id AND step=s.step)
            GROUP BY step""", (rid,)))
        if loss != {s: 1 for s in range(1, steps + 1)}:
            bad.append(f"r{rid} ({name}): surviving loss rows do not cover steps 1..{steps} once")
if bad:
    print("\n".join(bad)); sys.exit(1)
print(f"store matches the event logs of {checked} attempt(s)")
PY
}

# The losses that run $2 (store $1) reported after step $4 are bit-identical to those of the
# event log $3 (a run of the same configuration never interrupted), and so is the final loss.
check_same_losses() {
  python3 - "$@" <<'PY'
import json, sqlite3, sys
db, rid, whole, after = sqlite3.connect(sys.argv[1]), int(sys.argv[2].lstrip("r")), sys.argv[3], int(sys.argv[4])
ev = [json.loads(l) for l in open(whole)]
want = {e["step"]: e["loss"] for e in ev if e["event"] == "scalars"}
got = dict(db.execute("""SELECT step, value FROM scalars s WHERE run_id=? AND name='loss'
    AND attempt = (SELECT MAX(attempt) FROM scalars WHERE run_id=s.run_id AND step=s.step)""", (rid,)))
steps = sorted(s for s in want if s > after)
diff = [s for s in steps if s not in got or got[s].hex() != want[s].hex()]
assert steps and not diff, f"losses differ from the uninterrupted run at steps {diff[:10]}"
final = json.loads(db.execute("SELECT summary_json FROM runs WHERE id=?", (rid,)).fetchone()[0])
end = [e for e in ev if e["event"] == "end"][-1]
assert final["final_loss"].hex() == end["final_loss"].hex(), (final["final_loss"], end["final_loss"])
print(f"r{rid}: losses of steps {steps[0]}-{steps[-1]} and the final loss {end['final_loss']} are bit-identical")
PY
}

# Runs the configuration of run $2 (store $1) with sgt-train alone, uninterrupted, in $3; on
# $RANKS data-parallel ranks (run_ranks) when that is above 1.
run_alone() {
  sqlite3 "$1" "SELECT config_json FROM runs WHERE id = ${2#r}" > "$3.json"
  if (( ${RANKS:-1} > 1 )); then
    run_ranks "$RANKS" "$3.json" "$3" --set train.threads=1
  else
    "$BIN/sgt-train" --config "$3.json" --out "$3" --no-progress > /dev/null
  fi
}

# A loopback port nothing listens on now.
free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# run_ranks N CONFIG OUT [sgt-train args...]: the N ranks of one data-parallel run on loopback,
# all waited for; fails when any fails (its log is printed). Logs: OUT.rankR.log.
# RANK0_ARGS (an array) go to rank 0 only, as --resume does.
RANK0_ARGS=()
run_ranks() {
  local n=$1 config=$2 out=$3; shift 3
  local port pids=() rc=0 r
  port=$(free_port)
  for ((r = 0; r < n; r++)); do
    local extra=()
    ((r == 0)) && extra=("${RANK0_ARGS[@]}")
    MASTER_ADDR=127.0.0.1 MASTER_PORT=$port RANK=$r WORLD_SIZE=$n LOCAL_RANK=$r LOCAL_WORLD_SIZE=$n \
      "$BIN/sgt-train" --config "$config" --out "$out" --no-progress "$@" "${extra[@]}" \
      > "$out.rank$r.log" 2>&1 &
    pids+=($!)
  done
  for r in "${!pids[@]}"; do
    wait "${pids[$r]}" || { rc=$?; cat "$out.rank$r.log" >&2; }
  done
  return $rc
}

# A one-host Slurm cluster of Debian's slurm-wlm for the Slurm tests: munged on its own socket
# with a key made here, slurmctld and slurmd (node `sgtnode`, CPUs=4) on free ports, addressed on
# 127.0.0.1 only, with no cgroups (proctrack/linuxproc, task/none), no accounting, and
# MinJobAge=3600 so that `scontrol show job` still knows ended jobs. The configuration and the
# logs are in $SCRATCH/slurm; the state, spool and socket directories in $SLURM_RUN, a short path
# under /tmp, since Unix socket paths (munge's, slurmd's per-step ones) must stay under 108 bytes.
# Exports SLURM_CONF (sbatch, squeue, scancel, scontrol read it); needs root (slurmd runs the
# jobs). stop_slurm ends it all: kill_slurm_on_exit arranges that, however the test ends.
start_slurm() {
  local tool
  for tool in munged mungekey slurmctld slurmd sbatch; do
    command -v "$tool" > /dev/null ||
      fail "$tool is not installed; scripts/install-deps installs munge, slurmctld, slurmd and slurm-client"
  done
  [[ $(id -u) == 0 ]] || fail "the Slurm tests start slurmd, which runs jobs as their users: run them as root"
  local dir=$SCRATCH/slurm
  mkdir -p "$dir"
  SLURM_RUN=$(mktemp -d /tmp/sgt-slurm.XXXXXX)
  mkdir -p "$SLURM_RUN/munge" "$SLURM_RUN/state" "$SLURM_RUN/spool"
  chmod 700 "$SLURM_RUN/munge"
  mungekey --create --keyfile "$SLURM_RUN/munge/munge.key" --bits 1024
  munged --foreground --force --socket "$SLURM_RUN/munge/socket" \
    --key-file "$SLURM_RUN/munge/munge.key" --pid-file "$SLURM_RUN/munge/munged.pid" \
    --seed-file "$SLURM_RUN/munge/seed" --log-file "$dir/munged.log" >> "$dir/munged.log" 2>&1 &
  MUNGED_PID=$!
  wait_until test -S "$SLURM_RUN/munge/socket"
  local host
  host=$(hostname -s)
  export SLURM_CONF=$dir/slurm.conf
  cat > "$SLURM_CONF" <<CONF
ClusterName=sgttest
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$(free_port)
SlurmdPort=$(free_port)
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$SLURM_RUN/munge/socket
SlurmUser=root
SlurmdUser=root
StateSaveLocation=$SLURM_RUN/state
SlurmdSpoolDir=$SLURM_RUN/spool
SlurmctldPidFile=$SLURM_RUN/slurmctld.pid
SlurmdPidFile=$SLURM_RUN/slurmd.pid
SlurmctldLogFile="$dir/slurmctld.log"
SlurmdLogFile="$dir/slurmd.log"
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
MailProg=/bin/true
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SlurmdParameters=config_overrides
ReturnToService=2
MinJobAge=3600
KillWait=30
NodeName=sgtnode NodeHostname=$host NodeAddr=127.0.0.1 CPUs=4 State=UNKNOWN
PartitionName=sgt Nodes=sgtnode Default=YES MaxTime=INFINITE State=UP
CONF
  slurmctld -D -i >> "$dir/slurmctld.out" 2>&1 &
  SLURMCTLD_PID=$!
  wait_until scontrol ping
  slurmd -D -N sgtnode >> "$dir/slurmd.out" 2>&1 &
  SLURMD_PID=$!
  wait_until bash -c "sinfo -h -n sgtnode -o %T | grep -qx idle"
}

# Cancels every job, waits for them to be gone (their processes with them), then stops slurmd,
# slurmctld and munged (by their pids) and removes $SLURM_RUN. Safe to call twice.
stop_slurm() {
  [[ -n ${SLURM_RUN:-} ]] || return 0
  if [[ -n ${SLURMCTLD_PID:-} ]] && kill -0 "$SLURMCTLD_PID" 2> /dev/null; then
    scancel --quiet --partition=sgt 2> /dev/null || true
    # Not wait_until: its failure would exit this trap half-way.
    local deadline=$((SECONDS + 60))
    while [[ -n $(squeue -h -o %i 2> /dev/null) ]] && ((SECONDS < deadline)); do sleep 0.2; done
  fi
  local pid
  for pid in ${SLURMD_PID:-} ${SLURMCTLD_PID:-} ${MUNGED_PID:-}; do
    kill -TERM "$pid" 2> /dev/null || continue
    wait "$pid" 2> /dev/null || true
  done
  rm -rf "$SLURM_RUN"
  SLURM_RUN=
}

# The EXIT trap of a Slurm test: the cluster stopped first (its jobs' processes are not the
# test's children), then every background job killed.
kill_slurm_on_exit() {
  trap 'stop_slurm; jobs -p | xargs -r kill -9 2>/dev/null || true' EXIT
}

# The start of a Slurm test: begin_worker_test's fresh $SCRATCH, $db and tiny token files, a
# one-host Slurm (start_slurm) stopped at exit, and $SOURCE, the source tree (deploy/slurm/).
begin_slurm_test() {
  begin_worker_test
  kill_slurm_on_exit
  SOURCE=${SGT_SOURCE_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
  start_slurm
}

# squeue's state of Slurm job $1 ("" once it has ended), and the final state scontrol remembers
# for an ended one (COMPLETED, CANCELLED, ...).
slurm_state() { squeue -h -j "$1" -o %T 2> /dev/null || true; }
slurm_final_state() { scontrol show job "$1" | sed -n 's/.*JobState=\([A-Z_]*\).*/\1/p'; }
