// Inference tests: the cached forward, prefilled then decoded a token at a time or in chunks,
// gives the logits of the full uncached forward under every structure (vanilla, Block Loop, SGT,
// fade); RepeatRows shares a prompt between continuations; sampling is deterministic per seed and
// greedy decoding follows the forward's argmax; a checkpoint loads with its structure.
#include "libsgt/torch/inference.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <set>
#include <string>
#include <vector>

#include "libsgt/core/checkpoint_format.h"
#include "libsgt/torch/checkpoint.h"

namespace sgt {
namespace {

ModelConfig TinyModel() {
  ModelConfig m;
  m.layers = 3;
  m.d_model = 32;
  m.heads = 4;
  m.d_ff = 48;
  m.context = 12;
  m.vocab_size = 50;
  return m;
}

// A tiny model with weights ten times the initial scale, so that attention is far from uniform
// and the logits spread: a wrong key, value or position then shows in the logits.
Transformer TinyTransformer(uint64_t seed = 5) {
  torch::manual_seed(seed);
  Transformer model(TinyModel());
  torch::NoGradGuard no_grad;
  for (torch::Tensor& p : model->parameters()) {
    if (p.dim() >= 2) {
      p.mul_(10.0);
    } else {
      p.add_(torch::randn_like(p) * 0.2);  // norm gains away from 1
    }
  }
  model->eval();
  return model;
}

LayerLoop HeadLoop(int64_t k, std::vector<int64_t> heads) {
  LayerLoop p;
  p.k = k;
  p.head_ids = heads;
  p.heads = torch::tensor(heads, torch::kLong);
  return p;
}

LayerLoop BlockLoop(int64_t k) {
  LayerLoop p;
  p.k = k;
  p.whole_block = true;
  return p;
}

struct NamedPlan {
  std::string name;
  LoopPlan plan;
};

std::vector<NamedPlan> Plans() {
  const int64_t layers = TinyModel().layers;
  std::vector<NamedPlan> plans;
  plans.push_back({"vanilla", LoopPlan(layers)});
  for (int64_t k : {1, 2}) {
    LoopPlan block(layers);
    block[1] = BlockLoop(k);
    block[2] = BlockLoop(k);
    plans.push_back({"block_loop_k" + std::to_string(k), block});
    LoopPlan sgt(layers);
    sgt[1] = HeadLoop(k, {1, 3});
    sgt[2] = HeadLoop(k, {2});
    plans.push_back({"sgt_k" + std::to_string(k), sgt});
  }
  LoopPlan fade(layers);
  fade[2] = HeadLoop(2, {0, 1, 2, 3});
  fade[2].heads = torch::Tensor();  // fade: every head loops, the unkept ones scaled down
  fade[2].head_scale = torch::tensor({1.0f, 0.4f, 1.0f, 0.4f});
  fade[1] = HeadLoop(1, {0});
  plans.push_back({"fade", fade});
  return plans;
}

torch::Tensor FullLogits(Transformer& model, const torch::Tensor& tokens, const LoopPlan& plan) {
  torch::NoGradGuard no_grad;
  return model->forward(tokens, plan);
}

// Runs `tokens` through ForwardCached in chunks of `chunks` (summing to T) and concatenates the
// logits.
torch::Tensor ChunkedLogits(Transformer& model, const torch::Tensor& tokens, const LoopPlan& plan,
                            const std::vector<int64_t>& chunks, KvCache* cache) {
  std::vector<torch::Tensor> out;
  int64_t at = 0;
  for (int64_t n : chunks) {
    out.push_back(ForwardCached(*model, plan, tokens.narrow(1, at, n), cache));
    at += n;
  }
  EXPECT_EQ(at, tokens.size(1));
  return torch::cat(out, 1);
}

double MaxDiff(const torch::Tensor& a, const torch::Tensor& b) {
  return (a - b).abs().max().item<double>();
}

constexpr double kTolerance = 1e-4;

TEST(ForwardCached, EqualsTheUncachedForwardUnderEveryStructure) {
  Transformer model = TinyTransformer();
  torch::manual_seed(11);
  // 20 positions: past the model's context of 12, where RoPE extends.
  const torch::Tensor tokens = torch::randint(0, TinyModel().vocab_size, {3, 20}, torch::kLong);
  std::vector<std::vector<int64_t>> schedules = {
      {20},             // one prefill
      {5},              // a prefill of 5, then a token at a time (below)
      {},               // a token at a time from the first
      {7, 1, 4, 3, 5},  // chunks
  };
  schedules[1].resize(16, 1);
  schedules[2].resize(20, 1);
  for (const NamedPlan& np : Plans()) {
    const torch::Tensor full = FullLogits(model, tokens, np.plan);
    ASSERT_GT(full.std().item<double>(), 0.1) << np.name << ": logits too flat to tell";
    for (const auto& chunks : schedules) {
      KvCache cache;
      const torch::Tensor cached = ChunkedLogits(model, tokens, np.plan, chunks, &cache);
      EXPECT_LT(MaxDiff(cached, full), kTolerance)
          << np.name << " with " << chunks.size() << " chunks";
      EXPECT_EQ(cache.length, 20);
    }
  }
}

TEST(ForwardCached, ADecodeStepWithoutItsCacheDiffers) {
  // The tolerance above can fail: the last token run without the cache of the 19 before it
  // (position 0 instead of 19, no context) gives logits far from the full forward's.
  Transformer model = TinyTransformer();
  torch::manual_seed(11);
  const torch::Tensor tokens = torch::randint(0, TinyModel().vocab_size, {3, 20}, torch::kLong);
  for (const NamedPlan& np : Plans()) {
    const torch::Tensor full = FullLogits(model, tokens, np.plan);
    KvCache fresh;
    const torch::Tensor alone = ForwardCached(*model, np.plan, tokens.narrow(1, 19, 1), &fresh);
    EXPECT_GT(MaxDiff(alone, full.narrow(1, 19, 1)), 100 * kTolerance) << np.name;
  }
}

TEST(ForwardCached, KeepsOneCachePerPassWithThePassHeads) {
  Transformer model = TinyTransformer();
  const torch::Tensor tokens = torch::randint(0, TinyModel().vocab_size, {2, 6}, torch::kLong);
  const std::vector<NamedPlan> plans = Plans();
  // sgt_k2: layer 1 loops heads {1, 3} twice, layer 2 head {2} twice.
  const LoopPlan& sgt = plans[4].plan;
  ASSERT_EQ(plans[4].name, "sgt_k2");
  KvCache cache;
  ForwardCached(*model, sgt, tokens, &cache);
  ASSERT_EQ(cache.passes.size(), 3u);
  ASSERT_EQ(cache.passes[0].size(), 1u);
  ASSERT_EQ(cache.passes[1].size(), 3u);
  ASSERT_EQ(cache.passes[2].size(), 3u);
  EXPECT_EQ(cache.passes[1][0].k.sizes(), (std::vector<int64_t>{2, 4, 6, 8}));
  EXPECT_EQ(cache.passes[1][1].k.sizes(), (std::vector<int64_t>{2, 2, 6, 8}));
  EXPECT_EQ(cache.passes[2][2].v.sizes(), (std::vector<int64_t>{2, 1, 6, 8}));
  // Loop passes see different inputs: their keys differ from the base pass's for the same head.
  EXPECT_GT(MaxDiff(cache.passes[1][1].k.select(1, 0), cache.passes[1][0].k.select(1, 1)), 1e-3);
  // Block Loop K=2: three passes of the block, all heads each.
  const LoopPlan& block = plans[3].plan;
  ASSERT_EQ(plans[3].name, "block_loop_k2");
  KvCache bcache;
  ForwardCached(*model, block, tokens, &bcache);
  ASSERT_EQ(bcache.passes[2].size(), 3u);
  EXPECT_EQ(bcache.passes[2][2].k.size(1), 4);
  // A cache started under one plan refuses another.
  EXPECT_THROW(ForwardCached(*model, block, tokens.narrow(1, 0, 1), &cache), c10::Error);
}

TEST(ForwardCached, CopiesOfACacheContinueIndependently) {
  // A plain copy shares the growable buffers; appending to one must not change the other.
  Transformer model = TinyTransformer();
  const LoopPlan plan = Plans()[2].plan;  // sgt_k1
  torch::manual_seed(3);
  const torch::Tensor prefix = torch::randint(0, 50, {1, 8}, torch::kLong);
  const torch::Tensor a = torch::randint(0, 50, {1, 3}, torch::kLong);
  const torch::Tensor b = torch::randint(0, 50, {1, 3}, torch::kLong);
  KvCache cache;
  ForwardCached(*model, plan, prefix, &cache);
  KvCache copy = cache;
  const torch::Tensor la = ForwardCached(*model, plan, a, &cache);
  const torch::Tensor lb = ForwardCached(*model, plan, b, &copy);
  EXPECT_LT(MaxDiff(la, FullLogits(model, torch::cat({prefix, a}, 1), plan).narrow(1, 8, 3)),
            kTolerance);
  EXPECT_LT(MaxDiff(lb, FullLogits(model, torch::cat({prefix, b}, 1), plan).narrow(1, 8, 3)),
            kTolerance);
  // And the first continues correctly after the second wrote.
  const torch::Tensor la2 = ForwardCached(*model, plan, b, &cache);
  EXPECT_LT(MaxDiff(la2, FullLogits(model, torch::cat({prefix, a, b}, 1), plan).narrow(1, 11, 3)),
            kTolerance);
}

TEST(KvCache, RepeatRowsSharesEachPromptBetweenContinuations) {
  Transformer model = TinyTransformer();
  for (const NamedPlan& np : Plans()) {
    torch::manual_seed(7);
    const torch::Tensor prompt = torch::randint(0, 50, {2, 9}, torch::kLong);
    KvCache cache;
    ForwardCached(*model, np.plan, prompt, &cache);
    KvCache rep = cache.RepeatRows(3);
    ASSERT_EQ(rep.length, 9);
    // Row b of the original is rows 3b .. 3b+2 of the copy.
    for (size_t l = 0; l < cache.passes.size(); ++l) {
      ASSERT_EQ(rep.passes[l].size(), cache.passes[l].size());
      for (size_t p = 0; p < cache.passes[l].size(); ++p) {
        ASSERT_EQ(rep.passes[l][p].k.size(0), 6);
        for (int64_t r = 0; r < 6; ++r) {
          EXPECT_TRUE(torch::equal(rep.passes[l][p].k[r], cache.passes[l][p].k[r / 3]));
          EXPECT_TRUE(torch::equal(rep.passes[l][p].v[r], cache.passes[l][p].v[r / 3]));
        }
      }
    }
    // Six different continuations of two tokens each.
    const torch::Tensor next = torch::randint(0, 50, {6, 2}, torch::kLong);
    const torch::Tensor cached = ForwardCached(*model, np.plan, next, &rep);
    const torch::Tensor whole = torch::cat({prompt.repeat_interleave(3, 0), next}, 1);
    EXPECT_LT(MaxDiff(cached, FullLogits(model, whole, np.plan).narrow(1, 9, 2)), kTolerance)
        << np.name;
    // The original is unchanged and still continues its own two rows.
    EXPECT_EQ(cache.length, 9);
    const torch::Tensor own = ForwardCached(*model, np.plan, next.narrow(0, 0, 2), &cache);
    const torch::Tensor own_whole = torch::cat({prompt, next.narrow(0, 0, 2)}, 1);
    EXPECT_LT(MaxDiff(own, FullLogits(model, own_whole, np.plan).narrow(1, 9, 2)), kTolerance)
        << np.name;
  }
}

TEST(Generate, GreedyFollowsTheForwardArgmax) {
  Transformer model = TinyTransformer();
  for (const NamedPlan& np : Plans()) {
    torch::manual_seed(2);
    const torch::Tensor prompt = torch::randint(0, 50, {2, 4}, torch::kLong);
    SampleOptions o;
    o.temperature = 0.0;
    o.max_new_tokens = 12;
    const torch::Tensor out = Generate(*model, np.plan, prompt, o);
    ASSERT_EQ(out.sizes(), (std::vector<int64_t>{2, 16}));
    EXPECT_TRUE(torch::equal(out.narrow(1, 0, 4), prompt));
    const torch::Tensor argmax = FullLogits(model, out, np.plan).argmax(-1);
    EXPECT_TRUE(torch::equal(out.narrow(1, 4, 12), argmax.narrow(1, 3, 12))) << np.name;
  }
}

TEST(Generate, DeterministicPerSeedAndTopKOneIsGreedy) {
  Transformer model = TinyTransformer();
  const LoopPlan plan = Plans()[4].plan;  // sgt_k2
  const torch::Tensor prompt = torch::randint(0, 50, {3, 5}, torch::kLong);
  SampleOptions o;
  o.temperature = 1.5;
  o.max_new_tokens = 16;
  o.seed = 42;
  const torch::Tensor a = Generate(*model, plan, prompt, o);
  const torch::Tensor b = Generate(*model, plan, prompt, o);
  EXPECT_TRUE(torch::equal(a, b));
  o.seed = 43;
  const torch::Tensor c = Generate(*model, plan, prompt, o);
  EXPECT_FALSE(torch::equal(a, c));
  // Sampling spreads over several tokens at temperature 1.5 (not a disguised argmax).
  const torch::Tensor drawn_a = a.narrow(1, 5, 16).contiguous();
  std::set<int64_t> distinct(drawn_a.data_ptr<int64_t>(),
                             drawn_a.data_ptr<int64_t>() + drawn_a.numel());
  EXPECT_GT(distinct.size(), 4u);

  SampleOptions greedy;
  greedy.temperature = 0.0;
  greedy.max_new_tokens = 16;
  const torch::Tensor g = Generate(*model, plan, prompt, greedy);
  o.top_k = 1;
  EXPECT_TRUE(torch::equal(Generate(*model, plan, prompt, o), g));
  o.top_k = 0;
  o.top_p = 1e-9;  // the nucleus is the single most likely token
  EXPECT_TRUE(torch::equal(Generate(*model, plan, prompt, o), g));
  // top-k restricts every draw to the k most likely tokens of its position.
  o.top_p = 1.0;
  o.top_k = 3;
  o.seed = 9;
  const torch::Tensor t3 = Generate(*model, plan, prompt, o);
  const torch::Tensor top3 = std::get<1>(FullLogits(model, t3, plan).topk(3, -1));  // [3,T,3]
  const torch::Tensor drawn = t3.narrow(1, 5, 16).unsqueeze(-1);
  EXPECT_TRUE(top3.narrow(1, 4, 16).eq(drawn).any(-1).all().item<bool>());
}

TEST(Generate, RowsStopAtTheStopTokenAndArePadded) {
  Transformer model = TinyTransformer();
  const LoopPlan plan = Plans()[1].plan;  // block_loop_k1
  torch::manual_seed(4);
  const torch::Tensor prompt = torch::randint(0, 50, {2, 3}, torch::kLong);
  SampleOptions o;
  o.temperature = 0.0;
  o.max_new_tokens = 10;
  const torch::Tensor free_run = Generate(*model, plan, prompt, o);
  // Stop at row 0's third greedy token: row 0 ends there and is padded with it.
  o.stop_token = free_run[0][5].item<int64_t>();
  const torch::Tensor out = Generate(*model, plan, prompt, o);
  int64_t first = 3;
  while (free_run[0][first].item<int64_t>() != o.stop_token) ++first;
  EXPECT_TRUE(torch::equal(out[0].narrow(0, 0, first + 1), free_run[0].narrow(0, 0, first + 1)));
  EXPECT_TRUE(out[0].narrow(0, first, out.size(1) - first).eq(o.stop_token).all().item<bool>());
  // Generation ends early only when every row has stopped.
  bool row1_stops = false;
  for (int64_t t = 3; t < 13; ++t) row1_stops |= free_run[1][t].item<int64_t>() == o.stop_token;
  if (!row1_stops) {
    EXPECT_EQ(out.size(1), 13);
  }
  // Nothing to generate: the prompt itself.
  o.max_new_tokens = 0;
  EXPECT_TRUE(torch::equal(Generate(*model, plan, prompt, o), prompt));
}

TEST(LoadModelForInference, ReadsWeightsConfigAndStructure) {
  RunConfig cfg;
  cfg.model = TinyModel();
  cfg.variant = Variant::kSgt;
  cfg.growth.transition = HeadTransition::kFade;
  cfg.growth.delta_t = 10;
  Transformer model = TinyTransformer(8);
  auto optimizer = MakeOptimizer(cfg.train, *model);
  GrowthState state = GrowthState::Initial(cfg.model.layers);
  state.phase = GrowthPhase::kGrowing;
  LoopedLayer a;
  a.layer = 2;
  a.k = 2;
  a.heads = {1, 2};
  a.activated_step = 20;
  state.active.push_back(a);
  LoopedLayer b;
  b.layer = 1;
  b.k = 1;
  b.heads = {3};
  b.activated_step = 26;  // in its fade window at step 30
  state.active.push_back(b);
  CheckpointHeader h;
  h.step = 30;
  h.config_json = CanonicalJson(cfg);
  h.growth_json = GrowthStateToJson(state);
  h.trainer_json = "{}";
  const std::string path =
      ::testing::TempDir() + "/inference_test_" + std::to_string(getpid()) + ".sgtckpt";
  ASSERT_TRUE(WriteCheckpoint(path, h, *model, *optimizer).ok());

  // The caller's RNG stream is left alone.
  torch::manual_seed(99);
  const torch::Tensor expect_next = torch::randn({4});
  torch::manual_seed(99);
  absl::StatusOr<LoadedModel> m = LoadModelForInference(path, torch::kCPU);
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_TRUE(torch::equal(torch::randn({4}), expect_next));
  EXPECT_EQ(m->step, 30);
  EXPECT_EQ(m->state, state);
  EXPECT_FALSE(m->model->is_training());
  for (const auto& p : model->named_parameters()) {
    EXPECT_TRUE(torch::equal(p.value(), m->model->named_parameters()[p.key()])) << p.key();
  }
  ASSERT_EQ(m->plan.size(), 3u);
  EXPECT_EQ(m->plan[2].k, 2);
  EXPECT_FALSE(m->plan[2].head_scale.defined());  // out of its fade window
  EXPECT_EQ(m->plan[1].k, 1);
  ASSERT_TRUE(m->plan[1].head_scale.defined());  // 4 of 10 steps into its fade
  EXPECT_NEAR(m->plan[1].head_scale[0].item<double>(), 0.6, 1e-6);
  EXPECT_EQ(m->plan[1].head_scale[3].item<double>(), 1.0);
  // The loaded model decodes with a cache as it forwards without one.
  const torch::Tensor tokens = torch::randint(0, 50, {2, 15}, torch::kLong);
  KvCache cache;
  const torch::Tensor cached =
      ChunkedLogits(m->model, tokens, m->plan, {6, 1, 1, 1, 1, 1, 4}, &cache);
  EXPECT_LT(MaxDiff(cached, FullLogits(m->model, tokens, m->plan)), kTolerance);
  std::remove(path.c_str());

  absl::StatusOr<LoadedModel> missing = LoadModelForInference(path, torch::kCPU);
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(missing.status().message().find(path), std::string::npos);
}

}  // namespace
}  // namespace sgt
