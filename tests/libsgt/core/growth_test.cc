// Tests of the growth rule (sgt-method.md §4, §5, §9) on hand-made entropies: every branch of
// Decide, the head policies, the fade shapes, JSON, and one full run walked boundary by boundary.
#include "libsgt/core/growth.h"

#include <cmath>
#include <set>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "libsgt/core/event_log.h"
#include "nlohmann/json.hpp"

namespace sgt {
namespace {

using Rows = std::vector<std::vector<double>>;

// 6 layers of 4 heads, L = 3, K_max = 2, h = 2, boundaries at 10, 20, 30, ...
RunConfig SgtConfig() {
  RunConfig c;
  c.variant = Variant::kSgt;
  c.model.layers = 6;
  c.model.heads = 4;
  c.model.d_model = 32;
  c.growth.schedule = GrowthSchedule::kProgressive;
  c.growth.t_start = 10;
  c.growth.delta_t = 10;
  c.growth.layers = 3;
  c.growth.k_max = 2;
  c.growth.heads = 2;
  return c;
}

// Every head of layer l has entropy means[l].
EntropySnapshot Flat(const std::vector<double>& means, int heads = 4) {
  EntropySnapshot e;
  for (double m : means) e.head.emplace_back(heads, m);
  return e;
}

GrowthState WithActive(const RunConfig& c, std::vector<LoopedLayer> active, int64_t growing) {
  GrowthState s = GrowthState::Initial(c.model.layers);
  s.phase = GrowthPhase::kGrowing;
  s.active = std::move(active);
  s.growing_layer = growing;
  return s;
}

LoopedLayer Loop(int64_t layer, int64_t k, std::vector<int64_t> heads = {0, 1}) {
  return LoopedLayer{layer, k, std::move(heads), false, 10};
}

// ---- Boundaries --------------------------------------------------------------------------

TEST(GrowthBoundaryTest, SgtEveryDeltaTFromTStart) {
  RunConfig c = SgtConfig();
  c.growth.t_start = 10;
  c.growth.delta_t = 5;
  for (int64_t step : {1, 5, 9, 11, 12, 14, 16}) EXPECT_FALSE(IsGrowthBoundary(c, step)) << step;
  for (int64_t step : {10, 15, 20, 250}) EXPECT_TRUE(IsGrowthBoundary(c, step)) << step;
}

TEST(GrowthBoundaryTest, BlockLoopOnlyAtTStart) {
  RunConfig c = SgtConfig();
  c.variant = Variant::kBlockLoop;
  EXPECT_FALSE(IsGrowthBoundary(c, 9));
  EXPECT_TRUE(IsGrowthBoundary(c, 10));
  EXPECT_FALSE(IsGrowthBoundary(c, 20));
}

TEST(GrowthBoundaryTest, FixedScheduleOnlyAtFixedFromStep) {
  for (Variant v : {Variant::kSgt, Variant::kBlockLoop}) {
    RunConfig c = SgtConfig();
    c.variant = v;
    c.growth.schedule = GrowthSchedule::kFixed;
    c.growth.fixed_from_step = 7;
    EXPECT_TRUE(IsGrowthBoundary(c, 7));
    EXPECT_FALSE(IsGrowthBoundary(c, 10));
    EXPECT_FALSE(IsGrowthBoundary(c, 20));
  }
}

TEST(GrowthBoundaryTest, VanillaNever) {
  RunConfig c = SgtConfig();
  c.variant = Variant::kVanilla;
  for (int64_t step = 1; step <= 100; ++step) EXPECT_FALSE(IsGrowthBoundary(c, step));
}

// The first boundary after `step` by walking every step: what NextGrowthBoundary must equal.
int64_t NextBoundaryByWalking(const RunConfig& c, int64_t step) {
  for (int64_t t = std::max<int64_t>(step, 0) + 1; t <= c.train.steps; ++t) {
    if (IsGrowthBoundary(c, t)) return t;
  }
  return 0;
}

TEST(GrowthBoundaryTest, NextBoundaryMatchesWalkingEveryStep) {
  std::vector<RunConfig> configs;
  for (Variant v : {Variant::kVanilla, Variant::kBlockLoop, Variant::kSgt}) {
    for (int64_t delta_t : {1, 7, 25}) {
      RunConfig c = SgtConfig();
      c.variant = v;
      c.train.steps = 120;
      c.growth.t_start = 13;
      c.growth.delta_t = delta_t;
      configs.push_back(c);
      c.growth.schedule = GrowthSchedule::kFixed;
      c.growth.fixed_from_step = 40;
      configs.push_back(c);
    }
  }
  for (const RunConfig& c : configs) {
    for (int64_t step = -1; step <= 125; ++step) {
      ASSERT_EQ(NextGrowthBoundary(c, step), NextBoundaryByWalking(c, step))
          << VariantName(c.variant) << " delta_t " << c.growth.delta_t << " schedule "
          << static_cast<int>(c.growth.schedule) << " step " << step;
    }
  }
}

TEST(GrowthBoundaryTest, NextBoundaryOfAHugeRunIsClosedForm) {
  RunConfig c = SgtConfig();
  c.train.steps = int64_t{1} << 60;
  c.growth.t_start = 10;
  c.growth.delta_t = 10;
  // 2^59 = 576460752303423488: the next multiple of 10 after 2^59 + 3 is 2^59 + 12.
  EXPECT_EQ(NextGrowthBoundary(c, (int64_t{1} << 59) + 3), (int64_t{1} << 59) + 12);
  EXPECT_EQ(NextGrowthBoundary(c, c.train.steps), 0);
}

// ---- Entropy, candidate pool, heads -------------------------------------------------------

TEST(GrowthEntropyTest, LayerMeanAndPopulationVariance) {
  EntropySnapshot e;
  e.head = {{0.2, 0.4, 0.6, 0.8}};
  EXPECT_NEAR(e.LayerMean(0), 0.5, 1e-12);
  // ((-0.3)^2 + (-0.1)^2 + 0.1^2 + 0.3^2) / 4 = 0.2 / 4
  EXPECT_NEAR(e.LayerVariance(0), 0.05, 1e-12);
  EXPECT_EQ(e.LayerMean(3), 0.0);  // missing rows read as 0
}

TEST(GrowthCandidatesTest, TopLEligibleBestFirst) {
  RunConfig c = SgtConfig();
  // Layer 0 has the highest entropy but is not eligible by default.
  EntropySnapshot e = Flat({0.9, 0.1, 0.5, 0.7, 0.3, 0.6});
  EXPECT_EQ(CandidatePool(c, e), (std::vector<int64_t>{3, 5, 2}));
  c.growth.include_first_layer = true;
  EXPECT_EQ(CandidatePool(c, e), (std::vector<int64_t>{0, 3, 5}));
}

TEST(GrowthCandidatesTest, EqualEntropyPrefersDeeperLayer) {
  RunConfig c = SgtConfig();
  EXPECT_EQ(CandidatePool(c, Flat({0.0, 0.5, 0.5, 0.2, 0.5, 0.1})),
            (std::vector<int64_t>{4, 2, 1}));
  EXPECT_EQ(CandidatePool(c, Flat({0.3, 0.3, 0.3, 0.3, 0.3, 0.3})),
            (std::vector<int64_t>{5, 4, 3}));
}

TEST(GrowthHeadsTest, HighEntropyTiesLowerIndexFirst) {
  GrowthConfig g;
  g.head_policy = HeadPolicy::kHighEntropy;
  g.heads = 2;
  EXPECT_EQ(SelectHeads(g, {0.2, 0.9, 0.2, 0.9, 0.2}, 1), (std::vector<int64_t>{1, 3}));
  g.heads = 3;  // one of the three 0.2 heads: the lowest index
  EXPECT_EQ(SelectHeads(g, {0.2, 0.9, 0.2, 0.9, 0.2}, 1), (std::vector<int64_t>{0, 1, 3}));
  g.heads = 2;  // stored ascending whatever the rank order
  EXPECT_EQ(SelectHeads(g, {0.1, 0.3, 0.8, 0.2, 0.9}, 1), (std::vector<int64_t>{2, 4}));
}

TEST(GrowthHeadsTest, LowEntropyTiesLowerIndexFirst) {
  GrowthConfig g;
  g.head_policy = HeadPolicy::kLowEntropy;
  g.heads = 2;
  EXPECT_EQ(SelectHeads(g, {0.2, 0.9, 0.2, 0.9, 0.2}, 1), (std::vector<int64_t>{0, 2}));
  g.heads = 4;
  EXPECT_EQ(SelectHeads(g, {0.2, 0.9, 0.2, 0.9, 0.2}, 1), (std::vector<int64_t>{0, 1, 2, 4}));
}

TEST(GrowthHeadsTest, AllHeads) {
  GrowthConfig g;
  g.head_policy = HeadPolicy::kAll;
  g.heads = 2;  // ignored
  EXPECT_EQ(SelectHeads(g, {0.2, 0.9, 0.2, 0.9}, 1), (std::vector<int64_t>{0, 1, 2, 3}));
}

TEST(GrowthHeadsTest, RandomIsDeterministicDistinctAndSeeded) {
  GrowthConfig g;
  g.head_policy = HeadPolicy::kRandom;
  g.heads = 3;
  const std::vector<double> row(16, 0.5);
  std::set<std::vector<int64_t>> by_seed;
  std::set<std::vector<int64_t>> by_layer;
  for (uint64_t seed = 0; seed < 8; ++seed) {
    g.head_seed = seed;
    const std::vector<int64_t> heads = SelectHeads(g, row, 4);
    EXPECT_EQ(heads, SelectHeads(g, row, 4)) << "same seed and layer, same heads";
    ASSERT_EQ(heads.size(), 3u);
    for (size_t i = 0; i < heads.size(); ++i) {
      EXPECT_GE(heads[i], 0);
      EXPECT_LT(heads[i], 16);
      if (i > 0) {
        EXPECT_LT(heads[i - 1], heads[i]) << "distinct and ascending";
      }
    }
    by_seed.insert(heads);
  }
  g.head_seed = 1;
  for (int64_t layer = 0; layer < 8; ++layer) by_layer.insert(SelectHeads(g, row, layer));
  // 560 possible sets: eight seeds (or layers) all colliding would mean the seed is ignored.
  EXPECT_GT(by_seed.size(), 1u);
  EXPECT_GT(by_layer.size(), 1u);
  // h equal to the head count takes every head.
  g.heads = 16;
  EXPECT_EQ(SelectHeads(g, row, 2).size(), 16u);
}

// ---- SGT progressive ----------------------------------------------------------------------

TEST(GrowthSgtTest, FirstBoundaryActivatesDeepestOfPool) {
  RunConfig c = SgtConfig();
  EntropySnapshot e = Flat({0.9, 0.1, 0.5, 0.7, 0.3, 0.6});  // C = [3, 5, 2]
  e.head[5] = {0.6, 0.5, 0.7, 0.6};                          // Ebar 0.6, top-2 heads 2, 0
  const GrowthOutcome out = Decide(c, GrowthState::Initial(6), e, 10);
  ASSERT_EQ(out.decisions.size(), 1u);
  const GrowthDecision& d = out.decisions[0];
  EXPECT_EQ(d.step, 10);
  EXPECT_EQ(d.action, GrowthAction::kActivate);
  EXPECT_EQ(d.layer, 5);
  EXPECT_EQ(d.k, 1);
  EXPECT_EQ(d.heads, (std::vector<int64_t>{0, 2}));
  EXPECT_FALSE(d.whole_block);
  EXPECT_EQ(d.candidates, (std::vector<int64_t>{3, 5, 2}));
  ASSERT_EQ(d.layer_entropy.size(), 6u);
  EXPECT_NEAR(d.layer_entropy[3], 0.7, 1e-12);
  EXPECT_EQ(d.head_entropy, e.head);
  EXPECT_EQ(d.reason, "activate layer 5 (Ebar 0.6, rank 2 of C); heads [0, 2]");

  EXPECT_EQ(out.state.phase, GrowthPhase::kGrowing);
  EXPECT_EQ(out.state.growing_layer, 5);
  ASSERT_EQ(out.state.active.size(), 1u);
  EXPECT_EQ(out.state.active[0].activated_step, 10);
  EXPECT_EQ(out.state.LoopDepth(5), 1);
  EXPECT_EQ(out.state.LoopDepth(3), 0);
}

TEST(GrowthSgtTest, NextActivationMustBeShallowerThanEveryActiveLayer) {
  RunConfig c = SgtConfig();
  // l* = 3 is at K_max; C = [5, 4, 2]: 5 and 4 rank higher but are deeper than min(active) = 3.
  const GrowthState s = WithActive(c, {Loop(3, 2)}, 3);
  const GrowthOutcome out = Decide(c, s, Flat({0, 0.1, 0.6, 0.2, 0.8, 0.9}), 20);
  ASSERT_EQ(out.decisions.size(), 1u);
  EXPECT_EQ(out.decisions[0].action, GrowthAction::kActivate);
  EXPECT_EQ(out.decisions[0].layer, 2);
  EXPECT_EQ(out.state.growing_layer, 2);
  EXPECT_EQ(out.state.active.size(), 2u);
}

TEST(GrowthSgtTest, DeepensGrowingLayerInPool) {
  RunConfig c = SgtConfig();
  const GrowthState s = WithActive(c, {Loop(5, 1)}, 5);
  const GrowthOutcome out = Decide(c, s, Flat({0, 0.1, 0.6, 0.2, 0.8, 0.9}), 20);
  ASSERT_EQ(out.decisions.size(), 1u);
  EXPECT_EQ(out.decisions[0].action, GrowthAction::kDeepen);
  EXPECT_EQ(out.decisions[0].layer, 5);
  EXPECT_EQ(out.decisions[0].k, 2);
  EXPECT_EQ(out.decisions[0].heads, (std::vector<int64_t>{0, 1}));
  EXPECT_EQ(out.decisions[0].reason, "deepen layer 5 to K=2 (Ebar 0.9, rank 1 of C)");
  EXPECT_EQ(out.state.LoopDepth(5), 2);
  EXPECT_EQ(out.state.phase, GrowthPhase::kGrowing);
}

TEST(GrowthSgtTest, GrowingLayerOutOfPoolDoesNotDeepenAndNextLayerActivates) {
  RunConfig c = SgtConfig();
  const GrowthState s = WithActive(c, {Loop(5, 1)}, 5);
  // C = [4, 3, 2]; 5 left the pool.
  const GrowthOutcome out = Decide(c, s, Flat({0, 0.1, 0.6, 0.7, 0.8, 0.2}), 20);
  ASSERT_EQ(out.decisions.size(), 1u);
  EXPECT_EQ(out.decisions[0].action, GrowthAction::kActivate);
  EXPECT_EQ(out.decisions[0].layer, 4);
  EXPECT_EQ(out.state.LoopDepth(5), 1);
  EXPECT_EQ(out.state.LoopDepth(4), 1);
}

TEST(GrowthSgtTest, HoldWhenNoLayerQualifies) {
  RunConfig c = SgtConfig();
  const GrowthState s = WithActive(c, {Loop(2, 2)}, 2);
  // C = [5, 4, 3]: all deeper than min(active) = 2.
  const GrowthOutcome out = Decide(c, s, Flat({0, 0.1, 0.2, 0.7, 0.8, 0.9}), 30);
  ASSERT_EQ(out.decisions.size(), 1u);
  EXPECT_EQ(out.decisions[0].action, GrowthAction::kHold);
  EXPECT_EQ(out.decisions[0].layer, -1);
  EXPECT_EQ(out.decisions[0].candidates, (std::vector<int64_t>{5, 4, 3}));
  EXPECT_EQ(out.decisions[0].reason,
            "hold: no layer of C [5, 4, 3] is inactive and shallower than 2");
  EXPECT_EQ(out.state, s);
}

TEST(GrowthSgtTest, NoCandidateFixFreezesStructure) {
  RunConfig c = SgtConfig();
  c.growth.no_candidate = NoCandidateRule::kFix;
  const GrowthState s = WithActive(c, {Loop(2, 2)}, 2);
  const GrowthOutcome out = Decide(c, s, Flat({0, 0.1, 0.2, 0.7, 0.8, 0.9}), 30);
  ASSERT_EQ(out.decisions.size(), 1u);
  EXPECT_EQ(out.decisions[0].action, GrowthAction::kFixed);
  EXPECT_EQ(out.state.phase, GrowthPhase::kFixed);
  EXPECT_EQ(out.state.active.size(), 1u);
  EXPECT_EQ(out.state.LoopDepth(2), 2);
  // Every later boundary only reports the fixed structure.
  const GrowthOutcome later = Decide(c, out.state, Flat({0, 0.9, 0.2, 0.1, 0.1, 0.1}), 40);
  EXPECT_EQ(later.decisions[0].action, GrowthAction::kFixed);
  EXPECT_EQ(later.state, out.state);
}

TEST(GrowthSgtTest, HoldWhenAllLayersLoopAndGrowingLayerLeftPool) {
  RunConfig c = SgtConfig();
  c.growth.layers = 2;
  const GrowthState s = WithActive(c, {Loop(4, 1), Loop(3, 1)}, 3);
  // C = [5, 4]; l* = 3 is not in C and |active| = L: step (5) of §4.
  const GrowthOutcome out = Decide(c, s, Flat({0, 0.1, 0.2, 0.3, 0.8, 0.9}), 30);
  ASSERT_EQ(out.decisions.size(), 1u);
  EXPECT_EQ(out.decisions[0].action, GrowthAction::kHold);
  EXPECT_EQ(out.state, s);
}

TEST(GrowthSgtTest, DeepenRuleReferenceDiffersFromPaper) {
  RunConfig c = SgtConfig();
  // Active 4 then 3 (l*), both K = 1 < K_max = 2. C = [5, 4, 2]: l* = 3 is not in C.
  const GrowthState s = WithActive(c, {Loop(4, 1), Loop(3, 1)}, 3);
  const EntropySnapshot e = Flat({0, 0.1, 0.7, 0.2, 0.8, 0.9});

  // Paper: only l* may deepen; it cannot, so the next layer shallower than 3 activates.
  const GrowthOutcome paper = Decide(c, s, e, 30);
  EXPECT_EQ(paper.decisions[0].action, GrowthAction::kActivate);
  EXPECT_EQ(paper.decisions[0].layer, 2);
  EXPECT_EQ(paper.state.LoopDepth(4), 1);

  // Reference: the first active layer (in activation order) that is in C deepens: 4.
  c.growth.deepen = DeepenRule::kReference;
  const GrowthOutcome ref = Decide(c, s, e, 30);
  EXPECT_EQ(ref.decisions[0].action, GrowthAction::kDeepen);
  EXPECT_EQ(ref.decisions[0].layer, 4);
  EXPECT_EQ(ref.decisions[0].k, 2);
  EXPECT_EQ(ref.state.growing_layer, 4);
  EXPECT_EQ(ref.state.LoopDepth(2), 0);
}

// Reference deepening (§9): the layer that just deepened reaching K_max fixes nothing while
// another selected layer is still below K_max; that layer goes on deepening.
TEST(GrowthSgtTest, ReferenceDeepeningFixedOnlyWhenEverySelectedLayerAtKMax) {
  RunConfig c = SgtConfig();
  c.growth.deepen = DeepenRule::kReference;
  // All L = 3 layers active; 5 and 3 at K = 1 < K_max = 2, 4 already at K_max. C = [5, 4, 3].
  const GrowthState s = WithActive(c, {Loop(5, 1), Loop(4, 2), Loop(3, 1)}, 4);
  const EntropySnapshot e = Flat({0, 0.1, 0.2, 0.7, 0.8, 0.9});
  const GrowthOutcome first = Decide(c, s, e, 40);
  ASSERT_EQ(first.decisions.size(), 1u);
  EXPECT_EQ(first.decisions[0].action, GrowthAction::kDeepen);
  EXPECT_EQ(first.decisions[0].layer, 5);
  EXPECT_EQ(first.state.LoopDepth(5), 2);
  // 5 reached K_max with |active| = L, but 3 is still below it: not fixed.
  EXPECT_EQ(first.state.phase, GrowthPhase::kGrowing);
  EXPECT_EQ(first.decisions[0].reason, "deepen layer 5 to K=2 (Ebar 0.9, rank 1 of C)");
  const GrowthOutcome second = Decide(c, first.state, e, 50);
  EXPECT_EQ(second.decisions[0].action, GrowthAction::kDeepen);
  EXPECT_EQ(second.decisions[0].layer, 3);
  EXPECT_EQ(second.state.phase, GrowthPhase::kFixed);
  // The paper's rule on the same state: l* = 5 deepening to K_max fixes the structure.
  c.growth.deepen = DeepenRule::kPaper;
  const GrowthOutcome paper = Decide(c, WithActive(c, s.active, 5), e, 40);
  EXPECT_EQ(paper.decisions[0].layer, 5);
  EXPECT_EQ(paper.state.phase, GrowthPhase::kFixed);
}

// `no_candidate: fix` covers the boundary at which all L layers loop and nothing can deepen.
TEST(GrowthSgtTest, NoCandidateFixAppliesWhenAllLayersLoop) {
  RunConfig c = SgtConfig();
  c.growth.layers = 2;
  c.growth.no_candidate = NoCandidateRule::kFix;
  const GrowthState s = WithActive(c, {Loop(4, 1), Loop(3, 1)}, 3);
  // C = [5, 4]; l* = 3 is not in C and |active| = L: nothing can be activated or deepened.
  const EntropySnapshot e = Flat({0, 0.1, 0.2, 0.3, 0.8, 0.9});
  const GrowthOutcome out = Decide(c, s, e, 30);
  ASSERT_EQ(out.decisions.size(), 1u);
  EXPECT_EQ(out.decisions[0].action, GrowthAction::kFixed);
  EXPECT_EQ(out.state.phase, GrowthPhase::kFixed);
  EXPECT_EQ(out.state.active.size(), 2u);
  EXPECT_EQ(out.decisions[0].reason,
            "fixed: 2 of L=2 layers loop and l* = 3 cannot; no layer can deepen (C [5, 4])");
  // Reference deepening with every active layer at K_max, also fixed; with hold, held.
  c.growth.deepen = DeepenRule::kReference;
  const GrowthState full = WithActive(c, {Loop(4, 2), Loop(3, 2)}, 3);
  EXPECT_EQ(Decide(c, full, e, 30).state.phase, GrowthPhase::kFixed);
  c.growth.no_candidate = NoCandidateRule::kHold;
  const GrowthOutcome held = Decide(c, full, e, 30);
  EXPECT_EQ(held.decisions[0].action, GrowthAction::kHold);
  EXPECT_EQ(held.decisions[0].reason,
            "hold: 2 of L=2 layers loop and no active layer can deepen (C [5, 4])");
}

TEST(GrowthSgtTest, ShallowToDeepTakesShallowestAboveMaxActive) {
  RunConfig c = SgtConfig();
  c.growth.direction = GrowthDirection::kShallowToDeep;
  c.growth.k_max = 1;
  // C = [5, 3, 2], nothing active: max of the empty set is -inf, so the shallowest: 2.
  const GrowthOutcome first =
      Decide(c, GrowthState::Initial(6), Flat({0, 0.1, 0.7, 0.8, 0.2, 0.9}), 10);
  EXPECT_EQ(first.decisions[0].action, GrowthAction::kActivate);
  EXPECT_EQ(first.decisions[0].layer, 2);
  // C = [5, 3, 1]: 1 is shallower than max(active) = 2, so 3.
  const GrowthOutcome second = Decide(c, first.state, Flat({0, 0.7, 0.1, 0.8, 0.2, 0.9}), 20);
  EXPECT_EQ(second.decisions[0].action, GrowthAction::kActivate);
  EXPECT_EQ(second.decisions[0].layer, 3);
  // C = [2, 1, 4]: only 4 is deeper than max(active) = 3. Three layers at K_max: fixed.
  const GrowthOutcome third = Decide(c, second.state, Flat({0, 0.7, 0.8, 0.1, 0.2, 0.1}), 30);
  EXPECT_EQ(third.decisions[0].layer, 4);
  EXPECT_EQ(third.state.phase, GrowthPhase::kFixed);
}

TEST(GrowthSgtTest, PhaseFixedOnceFullAndGrowingLayerAtKMax) {
  RunConfig c = SgtConfig();
  c.growth.layers = 1;
  const EntropySnapshot e = Flat({0, 0.1, 0.2, 0.3, 0.4, 0.5});
  GrowthOutcome out = Decide(c, GrowthState::Initial(6), e, 10);  // activate 5, K = 1 < 2
  EXPECT_EQ(out.state.phase, GrowthPhase::kGrowing);
  out = Decide(c, out.state, e, 20);  // deepen 5 to K_max
  EXPECT_EQ(out.decisions[0].action, GrowthAction::kDeepen);
  EXPECT_EQ(out.state.phase, GrowthPhase::kFixed);
  EXPECT_EQ(out.decisions[0].reason,
            "deepen layer 5 to K=2 (Ebar 0.5, rank 1 of C); structure now fixed");
  const GrowthState fixed = out.state;
  out = Decide(c, fixed, e, 30);
  ASSERT_EQ(out.decisions.size(), 1u);
  EXPECT_EQ(out.decisions[0].action, GrowthAction::kFixed);
  EXPECT_EQ(out.decisions[0].step, 30);
  EXPECT_EQ(out.decisions[0].candidates, (std::vector<int64_t>{5}));
  EXPECT_EQ(out.state, fixed);
}

TEST(GrowthSgtTest, HeadPolicyAppliesAtActivation) {
  RunConfig c = SgtConfig();
  EntropySnapshot e = Flat({0, 0.1, 0.2, 0.3, 0.4, 0.5});
  e.head[5] = {0.9, 0.1, 0.6, 0.4};
  c.growth.head_policy = HeadPolicy::kLowEntropy;
  EXPECT_EQ(Decide(c, GrowthState::Initial(6), e, 10).decisions[0].heads,
            (std::vector<int64_t>{1, 3}));
  c.growth.head_policy = HeadPolicy::kAll;
  EXPECT_EQ(Decide(c, GrowthState::Initial(6), e, 10).decisions[0].heads,
            (std::vector<int64_t>{0, 1, 2, 3}));
}

// A whole run: 6 layers, L = 3, K_max = 2, h = 2, boundaries every 10 steps from 10.
TEST(GrowthSgtTest, WalkThroughFullRun) {
  const RunConfig c = SgtConfig();
  // Snapshot A: Ebar = [.9, .1, .3, .5, .6, .4] -> C = [4, 3, 5].
  const Rows a = {{0.9, 0.9, 0.9, 0.9}, {0.1, 0.1, 0.1, 0.1}, {0.3, 0.3, 0.3, 0.3},
                  {0.4, 0.6, 0.5, 0.5}, {0.7, 0.5, 0.8, 0.4}, {0.2, 0.6, 0.2, 0.6}};
  // Snapshot B: Ebar = [.9, .1, .5, .7, .2, .8] -> C = [5, 3, 2].
  const Rows b = {{0.9, 0.9, 0.9, 0.9}, {0.1, 0.1, 0.1, 0.1}, {0.5, 0.5, 0.5, 0.5},
                  {0.9, 0.5, 0.5, 0.9}, {0.2, 0.2, 0.2, 0.2}, {0.8, 0.8, 0.8, 0.8}};
  // Snapshot C: Ebar = [.9, .6, .7, .1, .2, .8] -> C = [5, 2, 1].
  const Rows cc = {{0.9, 0.9, 0.9, 0.9}, {0.6, 0.6, 0.6, 0.6}, {0.7, 0.7, 0.7, 0.7},
                   {0.1, 0.1, 0.1, 0.1}, {0.2, 0.2, 0.2, 0.2}, {0.8, 0.8, 0.8, 0.8}};
  struct Expected {
    int64_t step;
    Rows entropies;
    GrowthAction action;
    int64_t layer;
    int64_t k;
    std::vector<int64_t> heads;
    std::vector<int64_t> candidates;
    GrowthPhase phase;
    int64_t growing_layer;
  };
  const std::vector<Expected> walk = {
      // Deepest layer of C starts looping with its two highest-entropy heads.
      {10, a, GrowthAction::kActivate, 5, 1, {1, 3}, {4, 3, 5}, GrowthPhase::kGrowing, 5},
      // l* = 5 is in C below K_max: deepen.
      {20, a, GrowthAction::kDeepen, 5, 2, {1, 3}, {4, 3, 5}, GrowthPhase::kGrowing, 5},
      // l* at K_max: next layer shallower than 5 from C = {4, 3}: the deepest, 4 (heads 2, 0).
      {30, a, GrowthAction::kActivate, 4, 1, {0, 2}, {4, 3, 5}, GrowthPhase::kGrowing, 4},
      // l* = 4 left C = [5, 3, 2]; shallower than 4: {3, 2} -> 3. Three layers, l* at K = 1.
      {40, b, GrowthAction::kActivate, 3, 1, {0, 3}, {5, 3, 2}, GrowthPhase::kGrowing, 3},
      // l* = 3 not in C = [5, 2, 1] and |active| = L: hold.
      {50, cc, GrowthAction::kHold, -1, 0, {}, {5, 2, 1}, GrowthPhase::kGrowing, 3},
      // l* = 3 back in C: deepen to K_max with |active| = L: fixed.
      {60, a, GrowthAction::kDeepen, 3, 2, {0, 3}, {4, 3, 5}, GrowthPhase::kFixed, 3},
      {70, b, GrowthAction::kFixed, -1, 0, {}, {5, 3, 2}, GrowthPhase::kFixed, 3},
  };
  GrowthState s = GrowthState::Initial(6);
  for (const Expected& x : walk) {
    ASSERT_TRUE(IsGrowthBoundary(c, x.step));
    EntropySnapshot e;
    e.head = x.entropies;
    const GrowthOutcome out = Decide(c, s, e, x.step);
    ASSERT_EQ(out.decisions.size(), 1u) << x.step;
    const GrowthDecision& d = out.decisions[0];
    EXPECT_EQ(d.step, x.step);
    EXPECT_EQ(d.action, x.action) << x.step << ": " << d.reason;
    EXPECT_EQ(d.layer, x.layer) << x.step;
    EXPECT_EQ(d.k, x.k) << x.step;
    EXPECT_EQ(d.heads, x.heads) << x.step;
    EXPECT_EQ(d.candidates, x.candidates) << x.step;
    EXPECT_EQ(out.state.phase, x.phase) << x.step;
    EXPECT_EQ(out.state.growing_layer, x.growing_layer) << x.step;
    s = out.state;
  }
  // Theta at the end: 5 (K 2), 4 (K 1), 3 (K 2), in activation order.
  ASSERT_EQ(s.active.size(), 3u);
  EXPECT_EQ(s.active[0].layer, 5);
  EXPECT_EQ(s.active[0].k, 2);
  EXPECT_EQ(s.active[0].activated_step, 10);
  EXPECT_EQ(s.active[1].layer, 4);
  EXPECT_EQ(s.active[1].k, 1);
  EXPECT_EQ(s.active[1].activated_step, 30);
  EXPECT_EQ(s.active[2].layer, 3);
  EXPECT_EQ(s.active[2].k, 2);
  EXPECT_EQ(s.active[2].heads, (std::vector<int64_t>{0, 3}));
}

TEST(GrowthSgtTest, ReplayGivesIdenticalDecisions) {
  const RunConfig c = SgtConfig();
  const EntropySnapshot e = Flat({0.9, 0.1, 0.5, 0.7, 0.3, 0.6});
  const GrowthState s = WithActive(c, {Loop(5, 2)}, 5);
  const GrowthOutcome one = Decide(c, s, e, 30);
  const GrowthOutcome two = Decide(c, s, e, 30);
  EXPECT_EQ(one.state, two.state);
  ASSERT_EQ(one.decisions.size(), two.decisions.size());
  EXPECT_EQ(events::DecisionRecordJson(one.decisions[0]),
            events::DecisionRecordJson(two.decisions[0]));
  // The record alone is enough: its head entropies give the same decision again.
  EntropySnapshot recorded;
  recorded.head = one.decisions[0].head_entropy;
  EXPECT_EQ(events::DecisionRecordJson(Decide(c, s, recorded, 30).decisions[0]),
            events::DecisionRecordJson(one.decisions[0]));
}

TEST(GrowthSgtTest, VanillaDecideChangesNothing) {
  RunConfig c = SgtConfig();
  c.variant = Variant::kVanilla;
  const GrowthOutcome out = Decide(c, GrowthState::Initial(6), Flat({0, 1, 2, 3, 4, 5}), 10);
  ASSERT_EQ(out.decisions.size(), 1u);
  EXPECT_EQ(out.decisions[0].action, GrowthAction::kFixed);
  EXPECT_EQ(out.state, GrowthState::Initial(6));
}

// ---- Block Loop and the fixed schedule ----------------------------------------------------

TEST(GrowthBlockLoopTest, TopLAtTStartLoopAsWholeBlocks) {
  RunConfig c = SgtConfig();
  c.variant = Variant::kBlockLoop;
  c.growth.k_max = 3;
  const GrowthOutcome out =
      Decide(c, GrowthState::Initial(6), Flat({0.9, 0.1, 0.5, 0.7, 0.3, 0.6}), 10);
  ASSERT_EQ(out.decisions.size(), 3u);  // one record per layer, in C order
  const std::vector<int64_t> expected = {3, 5, 2};
  for (size_t i = 0; i < 3; ++i) {
    const GrowthDecision& d = out.decisions[i];
    EXPECT_EQ(d.action, GrowthAction::kActivate);
    EXPECT_EQ(d.layer, expected[i]);
    EXPECT_EQ(d.k, 3);
    EXPECT_EQ(d.heads, (std::vector<int64_t>{0, 1, 2, 3}));
    EXPECT_TRUE(d.whole_block);
  }
  EXPECT_EQ(out.state.phase, GrowthPhase::kFixed);
  ASSERT_EQ(out.state.active.size(), 3u);
  for (const LoopedLayer& l : out.state.active) {
    EXPECT_TRUE(l.whole_block);
    EXPECT_EQ(l.k, 3);
  }
  EXPECT_EQ(Decide(c, out.state, Flat({0, 1, 2, 3, 4, 5}), 20).decisions[0].action,
            GrowthAction::kFixed);
}

TEST(GrowthFixedScheduleTest, SgtLoopsGivenLayersWithPolicyHeads) {
  RunConfig c = SgtConfig();
  c.growth.schedule = GrowthSchedule::kFixed;
  c.growth.fixed_layers = {1, 4};
  c.growth.fixed_from_step = 7;
  EntropySnapshot e = Flat({0.9, 0.1, 0.5, 0.7, 0.3, 0.6});
  e.head[4] = {0.1, 0.2, 0.4, 0.3};
  const GrowthOutcome out = Decide(c, GrowthState::Initial(6), e, 7);
  ASSERT_EQ(out.decisions.size(), 2u);
  EXPECT_EQ(out.decisions[0].layer, 1);
  EXPECT_EQ(out.decisions[0].k, 2);
  EXPECT_EQ(out.decisions[0].heads, (std::vector<int64_t>{0, 1}));  // ties: lower index
  EXPECT_EQ(out.decisions[1].layer, 4);
  EXPECT_EQ(out.decisions[1].heads, (std::vector<int64_t>{2, 3}));
  EXPECT_FALSE(out.decisions[1].whole_block);
  EXPECT_EQ(out.state.phase, GrowthPhase::kFixed);
  EXPECT_EQ(out.state.LoopDepth(4), 2);
}

TEST(GrowthFixedScheduleTest, BlockLoopLoopsGivenLayersAsWholeBlocks) {
  RunConfig c = SgtConfig();
  c.variant = Variant::kBlockLoop;
  c.growth.schedule = GrowthSchedule::kFixed;
  c.growth.fixed_layers = {2};
  c.growth.k_max = 1;
  const GrowthOutcome out = Decide(c, GrowthState::Initial(6), Flat({0, 1, 2, 3, 4, 5}), 7);
  ASSERT_EQ(out.decisions.size(), 1u);
  EXPECT_EQ(out.decisions[0].layer, 2);
  EXPECT_TRUE(out.decisions[0].whole_block);
  EXPECT_EQ(out.decisions[0].heads, (std::vector<int64_t>{0, 1, 2, 3}));
  EXPECT_EQ(out.state.phase, GrowthPhase::kFixed);
}

// ---- Fade ---------------------------------------------------------------------------------

TEST(GrowthFadeTest, WindowIsDeltaTStepsFromActivationUnderFadeOnly) {
  GrowthConfig g;
  g.transition = HeadTransition::kFade;
  g.delta_t = 10;
  EXPECT_TRUE(InFadeWindow(g, 100, 100));
  EXPECT_TRUE(InFadeWindow(g, 100, 109));
  EXPECT_FALSE(InFadeWindow(g, 100, 110));
  g.transition = HeadTransition::kHard;
  EXPECT_FALSE(InFadeWindow(g, 100, 101));
  // Inside the window the weight is positive, outside it is 0: one rule for both.
  g.transition = HeadTransition::kFade;
  for (FadeShape shape : {FadeShape::kLinear, FadeShape::kCosine, FadeShape::kExponential}) {
    g.fade = shape;
    for (int64_t step = 95; step <= 115; ++step) {
      EXPECT_EQ(InFadeWindow(g, 100, step), FadeWeight(g, 100, step) > 0.0) << step;
    }
  }
}

TEST(GrowthFadeTest, HardIsAlwaysZero) {
  GrowthConfig g;
  g.transition = HeadTransition::kHard;
  g.delta_t = 10;
  EXPECT_EQ(FadeWeight(g, 100, 100), 0.0);
  EXPECT_EQ(FadeWeight(g, 100, 105), 0.0);
}

TEST(GrowthFadeTest, ShapesAtStartMiddleEndAndBeyond) {
  GrowthConfig g;
  g.transition = HeadTransition::kFade;
  g.delta_t = 10;
  g.fade = FadeShape::kLinear;
  EXPECT_DOUBLE_EQ(FadeWeight(g, 100, 100), 1.0);  // u = 0
  EXPECT_DOUBLE_EQ(FadeWeight(g, 100, 105), 0.5);  // u = 0.5
  EXPECT_DOUBLE_EQ(FadeWeight(g, 100, 108), 0.2);
  EXPECT_EQ(FadeWeight(g, 100, 110), 0.0);  // u = 1
  EXPECT_EQ(FadeWeight(g, 100, 500), 0.0);
  EXPECT_DOUBLE_EQ(FadeWeight(g, 100, 90), 1.0);  // before activation u clamps to 0
  g.fade = FadeShape::kCosine;
  EXPECT_DOUBLE_EQ(FadeWeight(g, 100, 100), 1.0);
  EXPECT_NEAR(FadeWeight(g, 100, 105), 0.5, 1e-12);  // 0.5 * (1 + cos(pi / 2))
  EXPECT_EQ(FadeWeight(g, 100, 110), 0.0);
  g.fade = FadeShape::kExponential;
  EXPECT_DOUBLE_EQ(FadeWeight(g, 100, 100), 1.0);
  EXPECT_DOUBLE_EQ(FadeWeight(g, 100, 105), std::exp(-2.5));
  EXPECT_EQ(FadeWeight(g, 100, 110), 0.0);  // exactly 0, not exp(-5)
  EXPECT_EQ(FadeWeight(g, 100, 111), 0.0);
}

// ---- JSON ---------------------------------------------------------------------------------

TEST(GrowthJsonTest, StateRoundTrip) {
  GrowthState s = GrowthState::Initial(12);
  s.phase = GrowthPhase::kGrowing;
  s.growing_layer = 9;
  s.active = {LoopedLayer{11, 2, {3, 7}, false, 250}, LoopedLayer{9, 1, {0, 5}, false, 750},
              LoopedLayer{4, 1, {0, 1, 2}, true, 1000}};
  const absl::StatusOr<GrowthState> back = GrowthStateFromJson(GrowthStateToJson(s));
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(*back, s);
  const nlohmann::json j = nlohmann::json::parse(GrowthStateToJson(s));
  EXPECT_EQ(j["phase"], "growing");
  for (GrowthPhase p : {GrowthPhase::kWarmup, GrowthPhase::kFixed}) {
    s.phase = p;
    EXPECT_EQ(*GrowthStateFromJson(GrowthStateToJson(s)), s);
  }
  EXPECT_EQ(*GrowthStateFromJson(GrowthStateToJson(GrowthState::Initial(4))),
            GrowthState::Initial(4));
}

// A fixed-phase state of 6 layers whose active list is `entries`.
std::string Fixed(const std::string& entries) {
  return R"({"phase":"fixed","num_layers":6,"growing_layer":-1,"active":[)" + entries + "]}";
}

TEST(GrowthJsonTest, MalformedStateIsInvalidArgument) {
  ASSERT_TRUE(
      GrowthStateFromJson(
          Fixed(R"({"layer":5,"k":1,"heads":[0,2],"whole_block":false,"activated_step":10})"))
          .ok());
  const std::vector<std::string> bad = {
      "",
      "{",
      "[]",
      R"({"phase":"grown","num_layers":6,"growing_layer":-1,"active":[]})",
      R"({"num_layers":6,"growing_layer":-1,"active":[]})",
      R"({"phase":"fixed","num_layers":"6","growing_layer":-1,"active":[]})",
      R"({"phase":"fixed","num_layers":6,"growing_layer":6,"active":[]})",
      R"({"phase":"fixed","num_layers":6,"growing_layer":-1,"active":{}})",
      // One entry each: layer out of range, heads not ascending, whole_block not a boolean,
      // fractional k, the same layer twice.
      Fixed(R"({"layer":6,"k":1,"heads":[],"whole_block":false,"activated_step":1})"),
      Fixed(R"({"layer":2,"k":1,"heads":[2,1],"whole_block":false,"activated_step":1})"),
      Fixed(R"({"layer":2,"k":1,"heads":[1],"whole_block":0,"activated_step":1})"),
      Fixed(R"({"layer":2,"k":1.5,"heads":[1],"whole_block":false,"activated_step":1})"),
      Fixed(std::string(R"({"layer":2,"k":1,"heads":[1],"whole_block":false,"activated_step":1})") +
            R"(,{"layer":2,"k":1,"heads":[1],"whole_block":false,"activated_step":1})"),
  };
  for (const std::string& text : bad) {
    const absl::StatusOr<GrowthState> s = GrowthStateFromJson(text);
    ASSERT_FALSE(s.ok()) << text;
    EXPECT_EQ(s.status().code(), absl::StatusCode::kInvalidArgument) << text;
  }
}

TEST(GrowthJsonTest, DecisionHasEveryKey) {
  const RunConfig c = SgtConfig();
  const EntropySnapshot e = Flat({0.9, 0.1, 0.5, 0.7, 0.3, 0.6});
  const GrowthDecision d = Decide(c, GrowthState::Initial(6), e, 10).decisions[0];
  const nlohmann::json j = nlohmann::json::parse(events::DecisionRecordJson(d));
  EXPECT_EQ(j["step"], 10);
  EXPECT_EQ(j["action"], "activate");
  EXPECT_EQ(j["layer"], 5);
  EXPECT_EQ(j["k"], 1);
  EXPECT_EQ(j["heads"], nlohmann::json::array({0, 1}));
  EXPECT_EQ(j["whole_block"], false);
  EXPECT_EQ(j["candidates"], nlohmann::json::array({3, 5, 2}));
  EXPECT_EQ(j["layer_entropy"].size(), 6u);
  EXPECT_EQ(j["head_entropy"].size(), 6u);
  EXPECT_EQ(j["head_entropy"][3][0].get<double>(), 0.7);  // full precision for replay
  EXPECT_EQ(j["reason"], d.reason);
  EXPECT_STREQ(GrowthActionName(GrowthAction::kDeepen), "deepen");
  EXPECT_STREQ(GrowthActionName(GrowthAction::kHold), "hold");
  EXPECT_STREQ(GrowthActionName(GrowthAction::kFixed), "fixed");
}

}  // namespace
}  // namespace sgt
