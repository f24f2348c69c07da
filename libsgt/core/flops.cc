// Training FLOPs (sgt-method.md §6): per-token counts for a structure Theta, the running tally
// the trainer keeps, and the planner that simulates a whole run without data.
#include "libsgt/core/flops.h"

#include "nlohmann/json.hpp"

namespace sgt {

double LayerForwardFlopsPerToken(const ModelConfig& m, int64_t seq) {
  const double d = static_cast<double>(m.d_model);
  // Q, K, V, O projections; scores and weighted values over the full sequence (the causal mask
  // is not halved, as in the paper's count); SwiGLU gate, up and down.
  return 8.0 * d * d + 4.0 * static_cast<double>(seq) * d + 6.0 * d * static_cast<double>(m.d_ff);
}

double HeadLoopForwardFlopsPerToken(const ModelConfig& m, int64_t seq, int64_t looped_heads) {
  // A loop pass computes only the looped heads' slices of Q, K, V and O (§3), so every term of
  // the attention sublayer shrinks to width h * d_head.
  const double width =
      static_cast<double>(looped_heads) * static_cast<double>(m.heads > 0 ? m.d_head() : 0);
  return 8.0 * static_cast<double>(m.d_model) * width + 4.0 * static_cast<double>(seq) * width;
}

double VanillaForwardFlopsPerToken(const ModelConfig& m, int64_t seq) {
  return static_cast<double>(m.layers) * LayerForwardFlopsPerToken(m, seq) +
         2.0 * static_cast<double>(m.d_model) * static_cast<double>(m.vocab_size);
}

double ForwardFlopsPerToken(const RunConfig& cfg, const GrowthState& s, int64_t step, int64_t seq) {
  double flops = VanillaForwardFlopsPerToken(cfg.model, seq);
  for (const LoopedLayer& l : s.active) {
    const double k = static_cast<double>(l.k);
    if (l.whole_block) {
      flops += k * LayerForwardFlopsPerToken(cfg.model, seq);
      continue;
    }
    // The fade transition loops every head until its window closes, fading the unkept ones.
    const int64_t h = InFadeWindow(cfg.growth, l.activated_step, step)
                          ? cfg.model.heads
                          : static_cast<int64_t>(l.heads.size());
    flops += k * HeadLoopForwardFlopsPerToken(cfg.model, seq, h);
  }
  return flops;
}

double EmbeddingTrainFlopsPerToken(const RunConfig& cfg) {
  if (!cfg.flops.embedding) return 0.0;
  return 4.0 * static_cast<double>(cfg.model.d_model) * static_cast<double>(cfg.model.vocab_size);
}

void FlopsTally::AddTrainStep(const RunConfig& cfg, const GrowthState& s, int64_t step) {
  const int64_t step_tokens = cfg.train.batch_size * cfg.model.context;
  const double n = static_cast<double>(step_tokens);
  const double embedding = n * EmbeddingTrainFlopsPerToken(cfg);
  train += 3.0 * n * ForwardFlopsPerToken(cfg, s, step, cfg.model.context) + embedding;
  vanilla += 3.0 * n * VanillaForwardFlopsPerToken(cfg.model, cfg.model.context) + embedding;
  tokens += step_tokens;
}

bool IsProbeStep(const RunConfig& cfg, int64_t step) {
  const EntropyConfig& e = cfg.entropy;
  // A boundary before the first step has no training signal yet: it always measures the probe.
  if ((e.signal == EntropySignal::kProbe || step == 0) && IsGrowthBoundary(cfg, step)) return true;
  return step > 0 && e.probe_telemetry && e.telemetry_interval > 0 &&
         step % e.telemetry_interval == 0;
}

double ProbeForwardFlopsPerToken(const RunConfig& cfg, const GrowthState& s, int64_t step,
                                 int64_t seq) {
  // The probe reads attention entropies only: it stops before the final norm and the LM head.
  return ForwardFlopsPerToken(cfg, s, step, seq) -
         2.0 * static_cast<double>(cfg.model.d_model) * static_cast<double>(cfg.model.vocab_size);
}

double ProbeForwardFlops(const RunConfig& cfg, const GrowthState& s, int64_t step) {
  return static_cast<double>(cfg.entropy.probe_sequences) * static_cast<double>(cfg.model.context) *
         ProbeForwardFlopsPerToken(cfg, s, step, cfg.model.context);
}

FlopsPlan PlanFlops(const RunConfig& cfg) {
  // Entropy rising with depth puts the deepest eligible layers in C and keeps them there, so
  // every SGT boundary activates or deepens: the fastest growth, hence an upper bound.
  EntropySnapshot rising;
  const int64_t layers = cfg.model.layers;
  for (int64_t l = 0; l < layers; ++l) {
    rising.head.emplace_back(cfg.model.heads, static_cast<double>(l + 1) / (layers + 1));
  }
  FlopsPlan plan;
  plan.final_state = GrowthState::Initial(layers);
  FlopsTally tally;
  // Step 0 trains nothing; it is a boundary only for a fixed schedule from step 0, which loops
  // from the first step on (the paper's Block Loop).
  for (int64_t step = 0; step <= cfg.train.steps; ++step) {
    if (step > 0) tally.AddTrainStep(cfg, plan.final_state, step);
    // The probe measures before the boundary's decision, at the structure that just trained.
    if (IsProbeStep(cfg, step)) tally.probe += ProbeForwardFlops(cfg, plan.final_state, step);
    if (IsGrowthBoundary(cfg, step)) {
      ++plan.boundaries;
      plan.final_state = Decide(cfg, plan.final_state, rising, step).state;
    }
  }
  plan.train_flops = tally.train;
  plan.vanilla_flops = tally.vanilla;
  plan.overhead_vs_vanilla = tally.Overhead();
  plan.probe_flops = tally.probe;
  plan.tokens = tally.tokens;
  return plan;
}

std::string FlopsPlanToJson(const RunConfig& cfg, const FlopsPlan& p) {
  using nlohmann::json;
  json layers = json::array();
  for (const LoopedLayer& l : p.final_state.active) {
    layers.push_back(
        {{"layer", l.layer}, {"k", l.k}, {"heads", l.heads}, {"whole_block", l.whole_block}});
  }
  const int64_t seq = cfg.model.context;
  json j = {
      {"variant", VariantName(cfg.variant)},
      {"steps", cfg.train.steps},
      {"tokens", p.tokens},
      {"train_flops", p.train_flops},
      {"vanilla_flops", p.vanilla_flops},
      {"overhead_vs_vanilla", p.overhead_vs_vanilla},
      {"probe_flops", p.probe_flops},
      {"boundaries", p.boundaries},
      {"flops_per_token_vanilla", VanillaForwardFlopsPerToken(cfg.model, seq)},
      {"flops_per_token_final", ForwardFlopsPerToken(cfg, p.final_state, cfg.train.steps + 1, seq)},
      {"final_structure", {{"phase", GrowthPhaseName(p.final_state.phase)}, {"layers", layers}}},
  };
  return j.dump();
}

}  // namespace sgt
