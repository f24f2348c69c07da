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
