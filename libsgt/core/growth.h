// The growth rule of SGT (sgt-method.md §4, §5, §9): pure logic, no tensors.
//
// At each growth boundary the trainer measures attention entropy and calls Decide(), which
// returns the new structure Theta and one decision record per change. The same inputs always
// give the same outputs, so every decision can be replayed from the recorded entropies.
//
//   GrowthState s = GrowthState::Initial(cfg.model.layers);
//   if (IsGrowthBoundary(cfg, step)) {
//     GrowthOutcome out = Decide(cfg, s, entropies, step);
//     s = out.state;  // log out.decisions
//   }
#ifndef SGT_CORE_GROWTH_H_
#define SGT_CORE_GROWTH_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "libsgt/core/config.h"

namespace sgt {

enum class GrowthPhase { kWarmup, kGrowing, kFixed };
const char* GrowthPhaseName(GrowthPhase p);  // "warmup", "growing", "fixed"

// One looping layer of Theta.
struct LoopedLayer {
  int64_t layer = 0;
  int64_t k = 0;                  // K_l: extra passes
  std::vector<int64_t> heads;     // S_l, ascending; all heads for Block Loop
  bool whole_block = false;       // Block Loop: attention and FFN re-run
  int64_t activated_step = 0;     // for the fade transition (§9)
};

// Theta_t.
struct GrowthState {
  GrowthPhase phase = GrowthPhase::kWarmup;
  int64_t num_layers = 0;
  std::vector<LoopedLayer> active;  // in activation order
  int64_t growing_layer = -1;       // l*, or -1

  static GrowthState Initial(int64_t num_layers);
  const LoopedLayer* Find(int64_t layer) const;  // nullptr if layer does not loop
  int64_t LoopDepth(int64_t layer) const;        // K_l, 0 if not looping
  bool operator==(const GrowthState& o) const;
};

// Entropies of one measurement: head[l][i] = E(l, i) (loop-0 entropy unless the config says
// kept heads report their last loop). Layer mean and variance are derived.
struct EntropySnapshot {
  std::vector<std::vector<double>> head;
  double LayerMean(int64_t layer) const;      // Ebar(l)
  double LayerVariance(int64_t layer) const;  // population variance over heads
};

enum class GrowthAction { kActivate, kDeepen, kHold, kFixed };
const char* GrowthActionName(GrowthAction a);

// Why a boundary did what it did, with everything needed to replay it.
struct GrowthDecision {
  int64_t step = 0;
  GrowthAction action = GrowthAction::kHold;
  int64_t layer = -1;               // -1 for hold / fixed
  int64_t k = 0;                    // new K of `layer`
  std::vector<int64_t> heads;       // S of `layer` (activate)
  bool whole_block = false;
  std::vector<int64_t> candidates;  // C, best first
  std::vector<double> layer_entropy;  // Ebar(l) for every layer
  std::vector<std::vector<double>> head_entropy;
  std::string reason;               // one line for people
};

struct GrowthOutcome {
  GrowthState state;
  std::vector<GrowthDecision> decisions;  // at least one per boundary
};

// True when `step` (1-based, after its optimizer step) is a decision point: progressive growth
// boundaries t >= t_start, (t - t_start) % delta_t == 0; t_start for Block Loop; fixed_from_step
// for the fixed schedule. Always false for vanilla.
bool IsGrowthBoundary(const RunConfig& cfg, int64_t step);

// The first growth boundary after `step`, in closed form (train.steps may be huge); 0 when no
// boundary is left up to train.steps (and always for vanilla). Pause and snapshot take effect
// there, so the coordinator asks this before accepting them.
int64_t NextGrowthBoundary(const RunConfig& cfg, int64_t step);

// Applies the rule for cfg.variant / cfg.growth at a boundary. Entropies must have one row per
// layer with cfg.model.heads values each. Returns at least one decision: one per activated or
// deepened layer, else a single hold or fixed record (vanilla and an already fixed phase: fixed).
GrowthOutcome Decide(const RunConfig& cfg, const GrowthState& state,
                     const EntropySnapshot& entropies, int64_t step);

// Candidate pool C: the top-L eligible layers by Ebar, best first (ties: deeper layer first).
// Layer 0 is eligible only with growth.include_first_layer.
std::vector<int64_t> CandidatePool(const RunConfig& cfg, const EntropySnapshot& entropies);

// S_l for a newly activated layer by growth.head_policy, ascending. `head_entropy` is E(l, i)
// over the layer's heads; `layer` seeds the random policy.
std::vector<int64_t> SelectHeads(const GrowthConfig& g, const std::vector<double>& head_entropy,
                                 int64_t layer);

// Fade transition (§9): whether a layer activated at `activated_step` is inside its fade window
// at `step`: its loop passes then run every head (the unkept ones weighted by FadeWeight), for
// delta_t steps. Always false under the hard transition.
bool InFadeWindow(const GrowthConfig& g, int64_t activated_step, int64_t step);

// Fade transition (§9): weight of a non-kept head in a loop pass of a layer activated at
// `activated_step`, at `step`; 0 once the window of delta_t steps has passed. Hard transition: 0.
double FadeWeight(const GrowthConfig& g, int64_t activated_step, int64_t step);

// JSON round trip of the growth state, for checkpoints. Decision records are the event log's
// (events::DecisionRecordJson, libsgt/core/event_log.h).
std::string GrowthStateToJson(const GrowthState& s);
absl::StatusOr<GrowthState> GrowthStateFromJson(const std::string& json_text);

}  // namespace sgt

#endif  // SGT_CORE_GROWTH_H_
