// Tests of the FLOPs count (sgt-method.md §6) against arithmetic done by hand, and of the
// planner on a tiny run and on the paper's 275M setting (Table 1 overheads).
#include "libsgt/core/flops.h"

#include <cstdio>
#include <string>

#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace sgt {
namespace {

// d 8, 2 heads of d_head 4, d_ff 16, T 4, V 10, 3 layers; 2 sequences of 4 tokens per step.
//   layer     = 8*8*8 + 4*4*8 + 6*8*16 = 512 + 128 + 768 = 1408
//   LM head   = 2*8*10                  = 160
//   vanilla   = 3*1408 + 160            = 4384 per token, forward
//   loop h=1  = 8*8*4 + 4*4*4           = 256 + 64 = 320;  h=2: 640
RunConfig Tiny() {
  RunConfig c;
  c.variant = Variant::kSgt;
  c.model.layers = 3;
  c.model.d_model = 8;
  c.model.heads = 2;
  c.model.d_ff = 16;
  c.model.context = 4;
  c.model.vocab_size = 10;
  c.train.steps = 10;
  c.train.batch_size = 2;
  c.growth.t_start = 4;
  c.growth.delta_t = 2;
  c.growth.layers = 2;
  c.growth.k_max = 2;
  c.growth.heads = 1;
  c.entropy.probe_telemetry = false;
  return c;
}

GrowthState Looping(int64_t layers, LoopedLayer l) {
  GrowthState s = GrowthState::Initial(layers);
  s.phase = GrowthPhase::kGrowing;
  s.active.push_back(std::move(l));
  s.growing_layer = s.active.back().layer;
  return s;
}

TEST(FlopsTest, PerTokenFormulaByHand) {
  const RunConfig c = Tiny();
  EXPECT_EQ(LayerForwardFlopsPerToken(c.model, 4), 1408.0);
  EXPECT_EQ(VanillaForwardFlopsPerToken(c.model, 4), 4384.0);
  EXPECT_EQ(HeadLoopForwardFlopsPerToken(c.model, 4, 1), 320.0);
  EXPECT_EQ(HeadLoopForwardFlopsPerToken(c.model, 4, 2), 640.0);
  // At T = 8 the attention terms double: 512 + 256 + 768 = 1536; loop 256 + 128 = 384.
  EXPECT_EQ(LayerForwardFlopsPerToken(c.model, 8), 1536.0);
  EXPECT_EQ(HeadLoopForwardFlopsPerToken(c.model, 8, 1), 384.0);
  EXPECT_EQ(ForwardFlopsPerToken(c, GrowthState::Initial(3), 1, 4), 4384.0);
}

TEST(FlopsTest, PaperModelVanillaByHand) {
  ModelConfig m;
  m.layers = 12;
  m.d_model = 768;
  m.heads = 12;
  m.d_ff = 6144;
  m.vocab_size = 50304;
  // 8*768^2 = 4718592; 4*4096*768 = 12582912; 6*768*6144 = 28311552 -> 45613056 per layer.
  EXPECT_EQ(LayerForwardFlopsPerToken(m, 4096), 45613056.0);
  // 12 * 45613056 + 2*768*50304 = 547356672 + 77266944.
  EXPECT_EQ(VanillaForwardFlopsPerToken(m, 4096), 624623616.0);
  // h = 2 heads of 64: 8*768*128 + 4*4096*128 = 786432 + 2097152.
  EXPECT_EQ(HeadLoopForwardFlopsPerToken(m, 4096, 2), 2883584.0);
}

TEST(FlopsTest, LoopedLayerAddsExactlyTheLoopTerm) {
  const RunConfig c = Tiny();
  EXPECT_EQ(ForwardFlopsPerToken(c, Looping(3, LoopedLayer{2, 1, {1}, false, 4}), 5, 4),
            4384.0 + 320.0);
  EXPECT_EQ(ForwardFlopsPerToken(c, Looping(3, LoopedLayer{2, 3, {0, 1}, false, 4}), 5, 4),
            4384.0 + 3 * 640.0);
}

TEST(FlopsTest, WholeBlockPassAddsALayer) {
  const RunConfig c = Tiny();
  EXPECT_EQ(ForwardFlopsPerToken(c, Looping(3, LoopedLayer{1, 1, {0, 1}, true, 4}), 5, 4),
            4384.0 + 1408.0);
  EXPECT_EQ(ForwardFlopsPerToken(c, Looping(3, LoopedLayer{1, 2, {0, 1}, true, 4}), 5, 4),
            4384.0 + 2 * 1408.0);
}

TEST(FlopsTest, FadeLoopsEveryHeadUntilWindowCloses) {
  RunConfig c = Tiny();
  c.growth.transition = HeadTransition::kFade;
  const GrowthState s = Looping(3, LoopedLayer{2, 1, {1}, false, 4});
  // Activated at 4, delta_t 2: step 5 still fades (all 2 heads), step 6 loops the kept head.
  EXPECT_EQ(ForwardFlopsPerToken(c, s, 5, 4), 4384.0 + 640.0);
  EXPECT_EQ(ForwardFlopsPerToken(c, s, 6, 4), 4384.0 + 320.0);
  c.growth.transition = HeadTransition::kHard;
  EXPECT_EQ(ForwardFlopsPerToken(c, s, 5, 4), 4384.0 + 320.0);
}

TEST(FlopsTest, TallyAddsThreeTimesForwardPerToken) {
  const RunConfig c = Tiny();
  FlopsTally t;
  t.AddTrainStep(c, GrowthState::Initial(3), 1);
  // 2 sequences * 4 tokens = 8 tokens; 3 * 8 * 4384 = 105216.
  EXPECT_EQ(t.tokens, 8);
  EXPECT_EQ(t.train, 105216.0);
  EXPECT_EQ(t.vanilla, 105216.0);
  EXPECT_EQ(t.Overhead(), 0.0);
  t.AddTrainStep(c, Looping(3, LoopedLayer{2, 1, {1}, false, 1}), 2);
  EXPECT_EQ(t.tokens, 16);
  EXPECT_EQ(t.train, 105216.0 + 24.0 * (4384 + 320));
  EXPECT_EQ(t.vanilla, 2 * 105216.0);
  EXPECT_EQ(FlopsTally{}.Overhead(), 0.0);
}

TEST(FlopsTest, PlanVanillaHasNoOverhead) {
  RunConfig c = Tiny();
  c.variant = Variant::kVanilla;
  const FlopsPlan p = PlanFlops(c);
  EXPECT_EQ(p.boundaries, 0);
  EXPECT_EQ(p.train_flops, p.vanilla_flops);
  EXPECT_EQ(p.overhead_vs_vanilla, 0.0);
  EXPECT_EQ(p.train_flops, 10 * 105216.0);
  EXPECT_TRUE(p.final_state.active.empty());
}

// Boundaries 4, 6, 8, 10 with C = [2, 1] (entropy rising with depth):
//   4: activate 2 (K 1)      -> steps 5, 6 loop 1 head once:      + 320
//   6: deepen 2 (K 2)        -> steps 7, 8:                       + 640
//   8: activate 1 (K 1)      -> steps 9, 10:                      + 640 + 320 = 960
//  10: deepen 1 (K 2), fixed -> after the last step, costs nothing
// Extra forward per token over the run: 2*320 + 2*640 + 2*960 = 3840.
// train   = 3 * 8 * (10*4384 + 3840) = 24 * 47680 = 1144320
// vanilla = 3 * 8 * 10 * 4384        = 24 * 43840 = 1052160
TEST(FlopsTest, PlanSgtTinyByHand) {
  const RunConfig c = Tiny();
  const FlopsPlan p = PlanFlops(c);
  EXPECT_EQ(p.boundaries, 4);
  EXPECT_EQ(p.tokens, 80);
  EXPECT_EQ(p.train_flops, 1144320.0);
  EXPECT_EQ(p.vanilla_flops, 1052160.0);
  EXPECT_NEAR(p.overhead_vs_vanilla, 3840.0 / 43840.0, 1e-15);
  EXPECT_EQ(p.probe_flops, 0.0);
  EXPECT_EQ(p.final_state.phase, GrowthPhase::kFixed);
  ASSERT_EQ(p.final_state.active.size(), 2u);
  EXPECT_EQ(p.final_state.active[0].layer, 2);
  EXPECT_EQ(p.final_state.active[0].k, 2);
  EXPECT_EQ(p.final_state.active[1].layer, 1);
  EXPECT_EQ(p.final_state.active[1].k, 2);
}

// One boundary at 4: the top-2 layers [2, 1] re-run whole, once, for steps 5..10.
// Extra forward per token: 6 * 2 * 1408 = 16896; train = 24 * (43840 + 16896) = 1457664.
TEST(FlopsTest, PlanBlockLoopTinyByHand) {
  RunConfig c = Tiny();
  c.variant = Variant::kBlockLoop;
  c.growth.k_max = 1;
  const FlopsPlan p = PlanFlops(c);
  EXPECT_EQ(p.boundaries, 1);
  EXPECT_EQ(p.train_flops, 1457664.0);
  EXPECT_EQ(p.vanilla_flops, 1052160.0);
  EXPECT_NEAR(p.overhead_vs_vanilla, 16896.0 / 43840.0, 1e-15);
  ASSERT_EQ(p.final_state.active.size(), 2u);
  EXPECT_TRUE(p.final_state.active[0].whole_block);
}

TEST(FlopsTest, IsProbeStep) {
  RunConfig c = Tiny();
  c.entropy.signal = EntropySignal::kTrain;
  c.entropy.probe_telemetry = false;
  for (int64_t step = 1; step <= 10; ++step) EXPECT_FALSE(IsProbeStep(c, step)) << step;
  c.entropy.signal = EntropySignal::kProbe;  // every boundary: 4, 6, 8, 10
  EXPECT_FALSE(IsProbeStep(c, 3));
  EXPECT_TRUE(IsProbeStep(c, 4));
  EXPECT_FALSE(IsProbeStep(c, 5));
  EXPECT_TRUE(IsProbeStep(c, 6));
  c.entropy.probe_telemetry = true;
  c.entropy.telemetry_interval = 3;  // and 3, 6, 9
  EXPECT_TRUE(IsProbeStep(c, 3));
  EXPECT_TRUE(IsProbeStep(c, 9));
  EXPECT_FALSE(IsProbeStep(c, 5));
  c.entropy.telemetry_interval = 0;  // boundaries only
  EXPECT_FALSE(IsProbeStep(c, 3));
  EXPECT_TRUE(IsProbeStep(c, 4));
  c.variant = Variant::kVanilla;  // no boundaries
  EXPECT_FALSE(IsProbeStep(c, 4));
}

// Probe at boundaries {4, 6, 8, 10} and telemetry steps {3, 6, 9}: 6 steps, step 6 once.
// Each is 2 sequences * 4 tokens, forward only, at the structure before that step's decision:
//   3: 4384   4: 4384   6: 4384+320   8: 4384+640   9: 4384+960   10: 4384+960
// = 6*4384 + 2880 = 29184 per token; * 8 tokens = 233472.
TEST(FlopsTest, ProbeFlopsCountedApart) {
  RunConfig c = Tiny();
  c.entropy.signal = EntropySignal::kProbe;
  c.entropy.probe_telemetry = true;
  c.entropy.telemetry_interval = 3;
  c.entropy.probe_sequences = 2;
  const FlopsPlan p = PlanFlops(c);
  // Probes at 3, 4, 6, 8, 9, 10 (telemetry every 3; boundaries 4, 6, 8, 10), 2 x 4 tokens each,
  // at the structure of the moment, without the LM head (2 * 8 * 10 = 160 per token).
  double want = 0;
  GrowthState s = GrowthState::Initial(3);
  EntropySnapshot rising;
  for (int l = 0; l < 3; ++l) rising.head.emplace_back(2, (l + 1) / 4.0);
  for (int64_t step = 1; step <= 10; ++step) {
    if (step % 3 == 0 || IsGrowthBoundary(c, step)) {
      want += 8.0 * (ForwardFlopsPerToken(c, s, step, 4) - 160.0);
    }
    if (IsGrowthBoundary(c, step)) s = Decide(c, s, rising, step).state;
  }
  EXPECT_EQ(p.probe_flops, want);
  EXPECT_EQ(p.probe_flops, 225792.0);   // the LM head is 6 probes x 8 tokens x 160 = 7680 less
  EXPECT_EQ(p.train_flops, 1144320.0);  // unchanged: the probe is not training
  EXPECT_NEAR(p.overhead_vs_vanilla, 3840.0 / 43840.0, 1e-15);
}

// flops.embedding (the paper's Table 1 count): 4 * d * V = 320 per training token, in the
// training total and in vanilla's alike; the probe and the per-token figures are unchanged.
TEST(FlopsTest, EmbeddingCountedPerTrainingToken) {
  RunConfig c = Tiny();
  const FlopsPlan without = PlanFlops(c);
  c.flops.embedding = true;
  EXPECT_EQ(EmbeddingTrainFlopsPerToken(c), 320.0);
  const FlopsPlan with = PlanFlops(c);
  EXPECT_EQ(with.train_flops, without.train_flops + 80 * 320.0);
  EXPECT_EQ(with.vanilla_flops, without.vanilla_flops + 80 * 320.0);
  EXPECT_EQ(with.probe_flops, without.probe_flops);
  FlopsTally t;
  t.AddTrainStep(c, GrowthState::Initial(3), 1);
  EXPECT_EQ(t.train, 8 * (3 * 4384.0 + 320.0));
  EXPECT_EQ(t.vanilla, t.train);
}

// Block Loop from the first step (growth.fixed_from_step: 0, the paper's count): the blocks
// loop at every one of the 10 steps, and the decision before step 1 probes the initial model.
TEST(FlopsTest, FixedScheduleFromStepZeroLoopsEveryStep) {
  RunConfig c = Tiny();
  c.variant = Variant::kBlockLoop;
  c.growth.schedule = GrowthSchedule::kFixed;
  c.growth.fixed_layers = {2};
  c.growth.fixed_from_step = 0;
  c.growth.k_max = 1;
  c.entropy.probe_sequences = 3;
  EXPECT_TRUE(IsGrowthBoundary(c, 0));
  EXPECT_TRUE(IsProbeStep(c, 0));
  EXPECT_EQ(NextGrowthBoundary(c, 0), 0);  // nothing ahead to pause at
  const FlopsPlan p = PlanFlops(c);
  EXPECT_EQ(p.boundaries, 1);
  EXPECT_EQ(p.train_flops, 3.0 * 80 * (4384.0 + 1408.0));
  EXPECT_EQ(p.vanilla_flops, 3.0 * 80 * 4384.0);
  EXPECT_EQ(p.probe_flops, 3 * 4 * (4384.0 - 160.0));  // before the first step: no loops yet
  ASSERT_EQ(p.final_state.active.size(), 1u);
  EXPECT_TRUE(p.final_state.active[0].whole_block);
  // From step 1 instead: the loops start at step 2.
  c.growth.fixed_from_step = 1;
  EXPECT_EQ(PlanFlops(c).train_flops, 3.0 * 8 * 4384.0 + 3.0 * 72 * (4384.0 + 1408.0));
}

TEST(FlopsTest, PlanJson) {
  const RunConfig c = Tiny();
  const FlopsPlan p = PlanFlops(c);
  const nlohmann::json j = nlohmann::json::parse(FlopsPlanToJson(c, p));
  EXPECT_EQ(j["variant"], "sgt");
  EXPECT_EQ(j["train_flops"].get<double>(), 1144320.0);
  EXPECT_EQ(j["vanilla_flops"].get<double>(), 1052160.0);
  EXPECT_NEAR(j["overhead_vs_vanilla"].get<double>(), 3840.0 / 43840.0, 1e-15);
  EXPECT_EQ(j["probe_flops"].get<double>(), 0.0);
  EXPECT_EQ(j["tokens"], 80);
  EXPECT_EQ(j["boundaries"], 4);
  EXPECT_EQ(j["flops_per_token_vanilla"].get<double>(), 4384.0);
  EXPECT_EQ(j["flops_per_token_final"].get<double>(), 4384.0 + 2 * 320.0 + 2 * 320.0);
  EXPECT_EQ(j["final_structure"]["phase"], "fixed");
  ASSERT_EQ(j["final_structure"]["layers"].size(), 2u);
  EXPECT_EQ(j["final_structure"]["layers"][0]["layer"], 2);
  EXPECT_EQ(j["final_structure"]["layers"][0]["k"], 2);
  EXPECT_EQ(j["final_structure"]["layers"][0]["heads"], nlohmann::json::array({0}));
}

// The paper's 275M model (sgt-method.md §1) and schedule: T 4096, V 50304, 5035 steps,
// t_start = delta_t = 250, L 3, h 2. Table 1 reports Block Loop +16 to +20 %, SGT +0.7 to +3.2 %.
RunConfig Paper275M(Variant v, int64_t k_max) {
  RunConfig c;
  c.variant = v;
  c.model.layers = 12;
  c.model.d_model = 768;
  c.model.heads = 12;
  c.model.d_ff = 6144;
  c.model.context = 4096;
  c.model.vocab_size = 50304;
  c.train.steps = 5035;
  c.train.batch_size = 1024;
  c.growth.t_start = 250;
  c.growth.delta_t = 250;
  c.growth.layers = 3;
  c.growth.heads = 2;
  c.growth.k_max = k_max;
  return c;
}

TEST(FlopsTest, PaperSettingOverheads) {
  const double sgt1 = PlanFlops(Paper275M(Variant::kSgt, 1)).overhead_vs_vanilla;
  const double sgt2 = PlanFlops(Paper275M(Variant::kSgt, 2)).overhead_vs_vanilla;
  const double sgt3 = PlanFlops(Paper275M(Variant::kSgt, 3)).overhead_vs_vanilla;
  const double block = PlanFlops(Paper275M(Variant::kBlockLoop, 1)).overhead_vs_vanilla;
  std::printf("275M planned overhead: SGT K=1 %.3f%%, K=2 %.3f%%, K=3 %.3f%%, Block Loop %.3f%%\n",
              100 * sgt1, 100 * sgt2, 100 * sgt3, 100 * block);
  EXPECT_LT(sgt1, sgt2);
  EXPECT_LT(sgt2, sgt3);
  EXPECT_LT(sgt3, block);
  for (double sgt : {sgt1, sgt2, sgt3}) {
    EXPECT_GT(sgt, 0.005);
    EXPECT_LT(sgt, 0.05);
  }
  EXPECT_GT(block, 0.10);
  EXPECT_LT(block, 0.30);
  // SGT K=1 by hand: layers 11, 10, 9 start looping after steps 250, 500, 750, each adding
  // 2883584 per token for 4785, 4535 and 4285 of the 5035 steps.
  EXPECT_NEAR(sgt1, 2883584.0 * (4785 + 4535 + 4285) / (5035 * 624623616.0), 1e-12);
  // Block Loop: three whole layers from step 251 on.
  EXPECT_NEAR(block, 3 * 45613056.0 * 4785 / (5035 * 624623616.0), 1e-12);
}

}  // namespace
}  // namespace sgt
