// Training FLOPs accounting (sgt-method.md §6) and the planner behind `sgt-train --plan`.
//
// Matrix-multiply FLOPs only, 2 per multiply-add; training = 3 x forward. The per-token count
// depends on the structure Theta, so totals are sums over steps.
#ifndef SGT_CORE_FLOPS_H_
#define SGT_CORE_FLOPS_H_

#include <cstdint>
#include <string>

#include "libsgt/core/config.h"
#include "libsgt/core/growth.h"

namespace sgt {

// Forward FLOPs per token of one plain layer at sequence length `seq`.
double LayerForwardFlopsPerToken(const ModelConfig& m, int64_t seq);

// Forward FLOPs per token of one extra loop pass over `looped_heads` heads.
double HeadLoopForwardFlopsPerToken(const ModelConfig& m, int64_t seq, int64_t looped_heads);

// Forward FLOPs per token of the whole model with structure `s` at `step` (the step matters only
// for the fade transition, whose loops compute every head until the window closes).
double ForwardFlopsPerToken(const RunConfig& cfg, const GrowthState& s, int64_t step, int64_t seq);

// Same model with no loops.
double VanillaForwardFlopsPerToken(const ModelConfig& m, int64_t seq);

// The input embedding counted as a matmul per training token (flops.embedding): 4 * d * V, its
// forward and its weight gradient (the paper's Table 1 counts it); 0 when not counted.
double EmbeddingTrainFlopsPerToken(const RunConfig& cfg);

// Running totals kept by the trainer.
struct FlopsTally {
  double train = 0;    // 3 x forward over every training token so far (+ the embedding)
  double vanilla = 0;  // what vanilla would have spent on the same tokens
  double probe = 0;    // entropy probe forwards, apart
  double eval = 0;     // validation forwards, apart
  int64_t tokens = 0;

  void AddTrainStep(const RunConfig& cfg, const GrowthState& s, int64_t step);
  double Overhead() const { return vanilla > 0 ? train / vanilla - 1.0 : 0.0; }
};

// Totals for a whole configuration, assuming every growth boundary acts (fastest growth): an
// upper bound on SGT's overhead. Needs no data.
struct FlopsPlan {
  double train_flops = 0;
  double vanilla_flops = 0;
  double overhead_vs_vanilla = 0;
  double probe_flops = 0;
  int64_t tokens = 0;
  int64_t boundaries = 0;
  GrowthState final_state;
};
FlopsPlan PlanFlops(const RunConfig& cfg);

// True when `step` runs the entropy probe (forward only, entropy.probe_sequences sequences of
// full context): at growth boundaries when entropy.signal is probe, at a boundary at step 0
// (before training: a fixed schedule from the first step), and at telemetry steps
// (step % entropy.telemetry_interval == 0) when entropy.probe_telemetry is set. The trainer and
// the planner both ask this, so planned and measured probe FLOPs agree.
bool IsProbeStep(const RunConfig& cfg, int64_t step);

// Forward FLOPs per token of the probe at sequence length `seq`: the layers only, as the probe
// runs no LM head.
double ProbeForwardFlopsPerToken(const RunConfig& cfg, const GrowthState& s, int64_t step,
                                 int64_t seq);

// Forward FLOPs of one probe measurement (entropy.probe_sequences of model.context tokens).
double ProbeForwardFlops(const RunConfig& cfg, const GrowthState& s, int64_t step);

// One JSON object: variant, steps, tokens, train_flops, vanilla_flops, overhead_vs_vanilla,
// probe_flops, boundaries, flops_per_token_vanilla and flops_per_token_final (forward, per
// token), final_structure {phase, layers [{layer, k, heads, whole_block}]}.
std::string FlopsPlanToJson(const RunConfig& cfg, const FlopsPlan& p);

}  // namespace sgt

#endif  // SGT_CORE_FLOPS_H_
