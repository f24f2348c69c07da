// The growth rule of SGT (sgt-method.md §4, §5, §9), pure logic. Read top to bottom: Theta and
// entropy basics, when a boundary happens, the candidate pool and head choice, the decision for
// each schedule (fixed, Block Loop, SGT), and the fade weight. JSON
// for checkpoints and logs is in growth_json.cc.
#include "libsgt/core/growth.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "libsgt/core/sampler.h"

namespace sgt {

namespace {
// Indexed by the enums' values; the names are the JSON and event-log vocabulary.
constexpr const char* kPhaseNames[] = {"warmup", "growing", "fixed"};
constexpr const char* kActionNames[] = {"activate", "deepen", "hold", "fixed"};
}  // namespace

const char* GrowthPhaseName(GrowthPhase p) { return kPhaseNames[static_cast<int>(p)]; }
const char* GrowthActionName(GrowthAction a) { return kActionNames[static_cast<int>(a)]; }

GrowthState GrowthState::Initial(int64_t num_layers) {
  GrowthState s;
  s.num_layers = num_layers;
  return s;
}

const LoopedLayer* GrowthState::Find(int64_t layer) const {
  for (const LoopedLayer& l : active) {
    if (l.layer == layer) return &l;
  }
  return nullptr;
}

int64_t GrowthState::LoopDepth(int64_t layer) const {
  const LoopedLayer* l = Find(layer);
  return l == nullptr ? 0 : l->k;
}

bool GrowthState::operator==(const GrowthState& o) const {
  if (phase != o.phase || num_layers != o.num_layers || growing_layer != o.growing_layer ||
      active.size() != o.active.size()) {
    return false;
  }
  for (size_t i = 0; i < active.size(); ++i) {
    const LoopedLayer& a = active[i];
    const LoopedLayer& b = o.active[i];
    if (a.layer != b.layer || a.k != b.k || a.heads != b.heads || a.whole_block != b.whole_block ||
        a.activated_step != b.activated_step) {
      return false;
    }
  }
  return true;
}

// A missing row reads as 0 so that a short snapshot ranks last instead of crashing the trainer.
double EntropySnapshot::LayerMean(int64_t layer) const {
  if (layer < 0 || layer >= static_cast<int64_t>(head.size()) || head[layer].empty()) return 0.0;
  return std::accumulate(head[layer].begin(), head[layer].end(), 0.0) / head[layer].size();
}

double EntropySnapshot::LayerVariance(int64_t layer) const {
  if (layer < 0 || layer >= static_cast<int64_t>(head.size()) || head[layer].empty()) return 0.0;
  const double mean = LayerMean(layer);
  double sum = 0.0;
  for (double e : head[layer]) sum += (e - mean) * (e - mean);
  return sum / head[layer].size();
}

bool IsGrowthBoundary(const RunConfig& cfg, int64_t step) {
  const GrowthConfig& g = cfg.growth;
  if (cfg.variant == Variant::kVanilla) return false;
  if (g.schedule == GrowthSchedule::kFixed) return step == g.fixed_from_step;
  if (cfg.variant == Variant::kBlockLoop || g.delta_t <= 0) return step == g.t_start;
  return step >= g.t_start && (step - g.t_start) % g.delta_t == 0;
}

int64_t NextGrowthBoundary(const RunConfig& cfg, int64_t step) {
  if (cfg.variant == Variant::kVanilla) return 0;
  const GrowthConfig& g = cfg.growth;
  const int64_t after = std::max<int64_t>(step, 0);
  int64_t next = 0;
  if (g.schedule == GrowthSchedule::kFixed) {
    next = g.fixed_from_step;
  } else if (cfg.variant == Variant::kBlockLoop || g.delta_t <= 0 || after < g.t_start) {
    next = g.t_start;
  } else {
    next = g.t_start + ((after - g.t_start) / g.delta_t + 1) * g.delta_t;
  }
  return next > after && next <= cfg.train.steps && IsGrowthBoundary(cfg, next) ? next : 0;
}

namespace {

constexpr double kPi = 3.14159265358979323846;

// NaN would break the strict weak ordering std::sort relies on; it ranks as the lowest entropy.
double Rankable(double e) { return std::isnan(e) ? -std::numeric_limits<double>::infinity() : e; }

// E(l, i) for the model's heads, 0 where the snapshot is short.
std::vector<double> HeadRow(const RunConfig& cfg, const EntropySnapshot& e, int64_t layer) {
  std::vector<double> row(cfg.model.heads, 0.0);
  if (layer >= 0 && layer < static_cast<int64_t>(e.head.size())) {
    for (size_t i = 0; i < row.size() && i < e.head[layer].size(); ++i) row[i] = e.head[layer][i];
  }
  return row;
}

std::vector<int64_t> AllHeads(int64_t n) {
  std::vector<int64_t> all(std::max<int64_t>(n, 0));
  std::iota(all.begin(), all.end(), 0);
  return all;
}

std::string List(const std::vector<int64_t>& v) {
  return absl::StrCat("[", absl::StrJoin(v, ", "), "]");
}

}  // namespace

std::vector<int64_t> CandidatePool(const RunConfig& cfg, const EntropySnapshot& entropies) {
  std::vector<std::pair<double, int64_t>> ranked;
  for (int64_t l = cfg.growth.include_first_layer ? 0 : 1; l < cfg.model.layers; ++l) {
    ranked.emplace_back(Rankable(entropies.LayerMean(l)), l);
  }
  // Higher entropy first; between equal layers the deeper one (sgt-method.md §4).
  std::sort(ranked.begin(), ranked.end(), [](const auto& a, const auto& b) {
    return a.first != b.first ? a.first > b.first : a.second > b.second;
  });
  const size_t n = std::min<size_t>(ranked.size(), std::max<int64_t>(cfg.growth.layers, 0));
  std::vector<int64_t> pool;
  for (size_t i = 0; i < n; ++i) pool.push_back(ranked[i].second);
  return pool;
}

std::vector<int64_t> SelectHeads(const GrowthConfig& g, const std::vector<double>& head_entropy,
                                 int64_t layer) {
  const int64_t n = static_cast<int64_t>(head_entropy.size());
  std::vector<int64_t> order = AllHeads(n);
  if (g.head_policy == HeadPolicy::kAll) return order;
  const int64_t h = std::clamp<int64_t>(g.heads, 0, n);
  // stable_sort keeps the lower index first between equal heads.
  if (g.head_policy == HeadPolicy::kHighEntropy) {
    std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) {
      return Rankable(head_entropy[a]) > Rankable(head_entropy[b]);
    });
  } else if (g.head_policy == HeadPolicy::kLowEntropy) {
    std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) {
      return Rankable(head_entropy[a]) < Rankable(head_entropy[b]);
    });
  } else {
    // Partial Fisher-Yates driven by a counter hash of (seed, layer): the choice depends on
    // nothing else, so a resumed or replayed run picks the same heads.
    const uint64_t key = SplitMix64(g.head_seed ^ SplitMix64(static_cast<uint64_t>(layer)));
    for (int64_t j = 0; j < h; ++j) {
      const uint64_t r = SplitMix64(key + static_cast<uint64_t>(j));
      std::swap(order[j], order[j + static_cast<int64_t>(r % static_cast<uint64_t>(n - j))]);
    }
  }
  order.resize(h);
  std::sort(order.begin(), order.end());
  return order;
}

namespace {

// Builds the records of one boundary; every record carries the inputs needed to replay it.
struct Recorder {
  const RunConfig& cfg;
  const EntropySnapshot& entropies;
  int64_t step;
  std::vector<int64_t> pool;
  GrowthOutcome out;

  void Emit(GrowthAction action, const LoopedLayer* l, std::string reason) {
    GrowthDecision d;
    d.step = step;
    d.action = action;
    if (l != nullptr) {
      d.layer = l->layer;
      d.k = l->k;
      d.heads = l->heads;
      d.whole_block = l->whole_block;
    }
    d.candidates = pool;
    for (int64_t i = 0; i < cfg.model.layers; ++i) {
      d.layer_entropy.push_back(entropies.LayerMean(i));
    }
    d.head_entropy = entropies.head;
    d.reason = std::move(reason);
    out.decisions.push_back(std::move(d));
  }
  int64_t Rank(int64_t layer) const {
    return std::find(pool.begin(), pool.end(), layer) - pool.begin() + 1;
  }
  bool InPool(int64_t layer) const { return Rank(layer) <= static_cast<int64_t>(pool.size()); }
  std::string Describe(int64_t layer) const {
    return absl::StrFormat("Ebar %.4g, rank %d of C", entropies.LayerMean(layer), Rank(layer));
  }
  LoopedLayer& Activate(int64_t layer, int64_t k, std::vector<int64_t> heads, bool whole_block) {
    out.state.active.push_back(LoopedLayer{layer, k, std::move(heads), whole_block, step});
    return out.state.active.back();
  }
};

// Fixed schedule (paper Table 2): the given layers loop at K_max from the given step on.
void DecideFixedSchedule(Recorder& r) {
  const bool block = r.cfg.variant == Variant::kBlockLoop;
  for (int64_t layer : r.cfg.growth.fixed_layers) {
    if (layer < 0 || layer >= r.cfg.model.layers || r.out.state.Find(layer) != nullptr) continue;
    const LoopedLayer& l =
        r.Activate(layer, r.cfg.growth.k_max,
                   block ? AllHeads(r.cfg.model.heads)
                         : SelectHeads(r.cfg.growth, HeadRow(r.cfg, r.entropies, layer), layer),
                   block);
    r.Emit(GrowthAction::kActivate, &l,
           absl::StrFormat("fixed schedule: loop layer %d with K=%d%s; heads %s", layer, l.k,
                           block ? " (whole block)" : "", List(l.heads)));
  }
  r.out.state.phase = GrowthPhase::kFixed;
  if (r.out.decisions.empty()) r.Emit(GrowthAction::kFixed, nullptr, "fixed schedule: no layers");
}

// Block Loop (§5): the top-L layers at t_start loop as whole blocks K_max times, for good.
void DecideBlockLoop(Recorder& r) {
  for (int64_t layer : r.pool) {
    const LoopedLayer& l = r.Activate(layer, r.cfg.growth.k_max, AllHeads(r.cfg.model.heads), true);
    r.Emit(GrowthAction::kActivate, &l,
           absl::StrFormat("block loop: layer %d (%s) loops as a whole block K=%d", layer,
                           r.Describe(layer), l.k));
  }
  r.out.state.phase = GrowthPhase::kFixed;
  if (r.out.decisions.empty()) r.Emit(GrowthAction::kFixed, nullptr, "block loop: C is empty");
}

// SGT, Algorithm 1 with the project's readings (§4) and the reference options (§9).
void DecideSgt(Recorder& r) {
  const GrowthConfig& g = r.cfg.growth;
  GrowthState& s = r.out.state;
  s.phase = GrowthPhase::kGrowing;

  // (3) Deepen: l* only (paper), or the first active layer in C below K_max (reference).
  LoopedLayer* deepen = nullptr;
  for (LoopedLayer& l : s.active) {
    const bool may = g.deepen == DeepenRule::kReference || l.layer == s.growing_layer;
    if (may && r.InPool(l.layer) && l.k < g.k_max) {
      deepen = &l;
      break;
    }
  }
  const LoopedLayer* changed = nullptr;
  if (deepen != nullptr) {
    deepen->k += 1;
    s.growing_layer = deepen->layer;
    changed = deepen;
    r.Emit(GrowthAction::kDeepen, deepen,
           absl::StrFormat("deepen layer %d to K=%d (%s)", deepen->layer, deepen->k,
                           r.Describe(deepen->layer)));
  } else if (static_cast<int64_t>(s.active.size()) < g.layers) {
    // (4) Activate the next layer in the growth direction; min/max of an empty set is +/-inf.
    const bool d2s = g.direction == GrowthDirection::kDeepToShallow;
    int64_t bound = d2s ? std::numeric_limits<int64_t>::max() : -1;
    for (const LoopedLayer& l : s.active) {
      bound = d2s ? std::min(bound, l.layer) : std::max(bound, l.layer);
    }
    int64_t pick = -1;
    for (int64_t c : r.pool) {
      if (s.Find(c) != nullptr || (d2s ? c >= bound : c <= bound)) continue;
      if (pick < 0 || (d2s ? c > pick : c < pick)) pick = c;
    }
    if (pick < 0) {
      const std::string why = absl::StrFormat("no layer of C %s is inactive and %s than %s",
                                              List(r.pool), d2s ? "shallower" : "deeper",
                                              s.active.empty() ? "none" : absl::StrCat(bound));
      if (g.no_candidate == NoCandidateRule::kFix) {
        s.phase = GrowthPhase::kFixed;
        r.Emit(GrowthAction::kFixed, nullptr, absl::StrCat("fixed: ", why));
      } else {
        r.Emit(GrowthAction::kHold, nullptr, absl::StrCat("hold: ", why));
      }
      return;
    }
    const LoopedLayer& l =
        r.Activate(pick, 1, SelectHeads(g, HeadRow(r.cfg, r.entropies, pick), pick), false);
    s.growing_layer = pick;
    changed = &l;
    r.Emit(
        GrowthAction::kActivate, &l,
        absl::StrFormat("activate layer %d (%s); heads %s", pick, r.Describe(pick), List(l.heads)));
  } else {
    // (5) Full set of layers, and nothing can deepen (l*, or under the reference rule every
    // active layer, is at K_max or not in C): "no candidate", held or fixed by the rule (§9).
    const std::string why = absl::StrFormat(
        "%d of L=%d layers loop and %s can deepen (C %s)", s.active.size(), g.layers,
        g.deepen == DeepenRule::kReference
            ? std::string("no active layer")
            : absl::StrCat("l* = ", s.growing_layer, " cannot; no layer"),
        List(r.pool));
    if (g.no_candidate == NoCandidateRule::kFix) {
      s.phase = GrowthPhase::kFixed;
      r.Emit(GrowthAction::kFixed, nullptr, absl::StrCat("fixed: ", why));
    } else {
      r.Emit(GrowthAction::kHold, nullptr, absl::StrCat("hold: ", why));
    }
    return;
  }
  // Fixed once nothing is left to grow: the paper's rule looks at l* alone (it stops growing
  // when it is no longer l*); the reference keeps deepening every selected layer below K_max,
  // so it is fixed only when all of them are at K_max (§9).
  bool done = static_cast<int64_t>(s.active.size()) == g.layers;
  if (g.deepen == DeepenRule::kReference) {
    for (const LoopedLayer& l : s.active) done = done && l.k == g.k_max;
  } else {
    done = done && changed->k == g.k_max;
  }
  if (done) {
    s.phase = GrowthPhase::kFixed;
    r.out.decisions.back().reason += "; structure now fixed";
  }
}

}  // namespace

GrowthOutcome Decide(const RunConfig& cfg, const GrowthState& state,
                     const EntropySnapshot& entropies, int64_t step) {
  Recorder r{cfg, entropies, step, CandidatePool(cfg, entropies), GrowthOutcome{state, {}}};
  if (cfg.variant == Variant::kVanilla) {
    r.Emit(GrowthAction::kFixed, nullptr, "vanilla: no loops");
  } else if (state.phase == GrowthPhase::kFixed) {
    r.Emit(GrowthAction::kFixed, nullptr, "structure is fixed");
  } else if (cfg.growth.schedule == GrowthSchedule::kFixed) {
    DecideFixedSchedule(r);
  } else if (cfg.variant == Variant::kBlockLoop) {
    DecideBlockLoop(r);
  } else {
    DecideSgt(r);
  }
  return std::move(r.out);
}

bool InFadeWindow(const GrowthConfig& g, int64_t activated_step, int64_t step) {
  return g.transition == HeadTransition::kFade && g.delta_t > 0 &&
         step < activated_step + g.delta_t;
}

double FadeWeight(const GrowthConfig& g, int64_t activated_step, int64_t step) {
  if (!InFadeWindow(g, activated_step, step)) return 0.0;
  const double u = std::clamp(static_cast<double>(step - activated_step) / g.delta_t, 0.0, 1.0);
  switch (g.fade) {
    case FadeShape::kLinear:
      return 1.0 - u;
    case FadeShape::kCosine:
      return 0.5 * (1.0 + std::cos(kPi * u));
    case FadeShape::kExponential:
      return std::exp(-5.0 * u);
  }
  return 0.0;
}

}  // namespace sgt
