#!/usr/bin/env bash
# Growth decisions of real runs replayed by an independent reading of the rule (growth_replay.py,
# sgt-method.md §4 and §9), under the reference code's options (fade transition, last-loop
# entropies of the kept heads only, reference deepening, no-candidate fix), the paper's, and a
# mix. The replay rebuilds the entropy signal from every step's training entropies too, so a
# signal that took an unkept head's last loop during a fade window would fail it.
BIN=$1 SCRATCH=$2
source "$(dirname "$0")/lib.sh"
rm -rf "$SCRATCH" && mkdir -p "$SCRATCH"
make_tiny_data "$SCRATCH/data"

# A 6-layer model with layer 0 eligible, boundaries every 3 steps and K_max 3: the candidate
# pool moves enough for holds, and for the no-candidate rule with all L layers looping.
run_case() {
  local name=$1 seed=$2 layers=$3 growth=$4 looped=$5
  cat > "$SCRATCH/$name.yaml" <<YAML
name: $name
variant: sgt
data: {train: $SCRATCH/data/train.u16, validation: $SCRATCH/data/val.u16}
model: {layers: 6, d_model: 32, heads: 4, d_ff: 64, context: 32, vocab_size: 320}
train: {steps: 66, batch_size: 4, micro_batch_size: 4, lr: 3.0e-3, warmup_steps: 4,
        eval_interval: 0, eval_batches: 1, extrapolation: [], seed: $seed, threads: 1}
growth: {t_start: 6, delta_t: 3, layers: $layers, k_max: 3, heads: 2, include_first_layer: true,
         $growth}
entropy: {telemetry_interval: 1, probe_telemetry: false, looped_heads: $looped}
checkpoint: {final: false}
YAML
  "$BIN/sgt-train" --config "$SCRATCH/$name.yaml" --out "$SCRATCH/$name" --no-progress \
    > "$SCRATCH/$name.log" 2>&1 || { cat "$SCRATCH/$name.log"; fail "$name: sgt-train failed"; }
  python3 "$(dirname "$0")/growth_replay.py" "$SCRATCH/$name/events.jsonl" | tee "$SCRATCH/$name.replay" \
    || fail "$name: the replay disagrees with the recorded decisions"
}

run_case reference 1 2 "transition: fade, deepen: reference, no_candidate: fix" last_loop
run_case reference-hold 1 2 "transition: fade, deepen: reference, no_candidate: hold" last_loop
run_case paper 2 3 "transition: hard, deepen: paper, no_candidate: hold" base
run_case mixed 2 3 "transition: fade, deepen: paper, no_candidate: fix" last_loop

# The runs grew and met the branches that differ between the options: every run activated and
# deepened; reference-hold held with a layer below K_max out of the pool, where reference (the same
# run with no_candidate: fix) became fixed instead.
for name in reference reference-hold paper mixed; do
  grep -q "activate" "$SCRATCH/$name.replay" || fail "$name: no activation to replay"
  grep -q "deepen" "$SCRATCH/$name.replay" || fail "$name: no deepening to replay"
done
grep -q "hold" "$SCRATCH/reference-hold.replay" || fail "reference-hold: no hold to replay"
for name in reference mixed; do
  grep -q "final phase fixed" "$SCRATCH/$name.replay" || fail "$name: did not end fixed"
done
echo "PASS"
