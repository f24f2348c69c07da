// Model tests: head-level looping equals the plain computation (forward and gradients, fused and
// textbook paths), loop passes never touch the unselected heads, Block Loop re-runs whole blocks,
// and entropy has its defining values.
#include "libsgt/torch/model.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <map>
#include <string>
#include <tuple>

#include "libsgt/torch/entropy.h"
#include "tests/libsgt/torch/tensor_test_util.h"

namespace sgt {
namespace {

ModelConfig TinyModel() {
  ModelConfig m;
  m.layers = 2;
  m.d_model = 32;
  m.heads = 4;
  m.d_ff = 48;
  m.context = 12;
  m.vocab_size = 50;
  return m;
}

torch::Tensor Rms(const torch::Tensor& x, const torch::Tensor& w, double eps) {
  return x * torch::rsqrt(x.pow(2).mean(-1, true) + eps) * w;
}

// Plain multi-head attention that computes EVERY head, then keeps the heads in `keep` (all when
// empty) by zeroing the others before W_O: the textbook form the looped layer must equal.
torch::Tensor ReferenceAttention(const ModelConfig& m, const TransformerImpl::Layer& L,
                                 const torch::Tensor& xn, const std::vector<int64_t>& keep) {
  const int64_t B = xn.size(0), T = xn.size(1), H = m.heads, dh = m.d_head();
  torch::Tensor qkv = torch::matmul(xn, L.wqkv.t()).view({B, T, 3, H, dh});
  torch::Tensor q = qkv.select(2, 0).transpose(1, 2), k = qkv.select(2, 1).transpose(1, 2),
                v = qkv.select(2, 2).transpose(1, 2);
  // RoPE, written out independently of the model's cache.
  torch::Tensor pos = torch::arange(T, torch::kDouble).unsqueeze(1);
  torch::Tensor inv =
      torch::pow(m.rope_theta, -torch::arange(0, dh / 2, torch::kDouble) / (dh / 2.0));
  torch::Tensor ang = torch::cat({pos * inv, pos * inv}, 1).to(torch::kFloat);
  auto rope = [&](const torch::Tensor& x) {
    torch::Tensor x1 = x.narrow(-1, 0, dh / 2), x2 = x.narrow(-1, dh / 2, dh / 2);
    return x * ang.cos() + torch::cat({-x2, x1}, -1) * ang.sin();
  };
  q = rope(q);
  k = rope(k);
  torch::Tensor scores = torch::matmul(q, k.transpose(-2, -1)) / std::sqrt(double(dh));
  torch::Tensor mask = torch::ones({T, T}, torch::kBool).triu(1);
  scores = scores.masked_fill(mask, -std::numeric_limits<float>::infinity());
  torch::Tensor out = torch::matmul(torch::softmax(scores, -1), v);  // [B,H,T,dh]
  if (!keep.empty()) {
    torch::Tensor sel = torch::zeros({H});
    for (int64_t h : keep) sel[h] = 1.0;
    out = out * sel.view({1, H, 1, 1});
  }
  return torch::matmul(out.transpose(1, 2).reshape({B, T, H * dh}), L.wo.t());
}

torch::Tensor ReferenceFfn(const TransformerImpl::Layer& L, const torch::Tensor& x) {
  auto gu = torch::matmul(x, L.w_gate_up.t()).chunk(2, -1);
  return torch::matmul(torch::silu(gu[0]) * gu[1], L.w_down.t());
}

// Logits by the textbook forward written from sgt-method.md §3 on the model's own parameters: a
// loop pass computes EVERY head and zeroes those not in `keep`.
torch::Tensor ReferenceLogits(Transformer& model, const torch::Tensor& tokens, const LoopPlan& plan,
                              const std::vector<int64_t>& keep) {
  const ModelConfig& m = model->config();
  const auto params = model->named_parameters();
  torch::Tensor x = torch::embedding(params["embed"], tokens);
  for (int64_t l = 0; l < m.layers; ++l) {
    const auto& L = model->layers()[l];
    torch::Tensor h = x + ReferenceAttention(m, L, Rms(x, L.attn_norm, m.norm_eps), {});
    for (int64_t k = 1; k <= plan[l].k; ++k) {
      h = h + ReferenceAttention(m, L, Rms(h, L.attn_norm, m.norm_eps), keep);
    }
    x = h + ReferenceFfn(L, Rms(h, L.ffn_norm, m.norm_eps));
  }
  return torch::matmul(Rms(x, params["final_norm"], m.norm_eps), params["lm_head"].t());
}

class LoopTest : public ::testing::TestWithParam<int64_t> {};

TEST_P(LoopTest, LoopedLayerEqualsAllHeadsComputedThenSelected) {
  torch::manual_seed(7);
  const ModelConfig m = TinyModel();
  Transformer model(m);
  torch::NoGradGuard no_grad;
  const int64_t K = GetParam();
  const std::vector<int64_t> S = {1, 3};
  LoopPlan plan(m.layers);
  plan[1].k = K;
  plan[1].heads = torch::tensor(S, torch::kLong);
  plan[1].head_ids = S;

  torch::Tensor tokens = torch::randint(m.vocab_size, {3, m.context}, torch::kLong);
  torch::Tensor got = model->forward(tokens, plan);

  torch::Tensor want = ReferenceLogits(model, tokens, plan, S);
  EXPECT_LT((got - want).abs().max().item<double>(), 1e-5) << "K=" << K;
}

INSTANTIATE_TEST_SUITE_P(K, LoopTest, ::testing::Values(1, 2, 3));

// The mean next-token loss of `window` by the textbook forward (ReferenceLogits).
torch::Tensor ReferenceLoss(Transformer& model, const torch::Tensor& window, const LoopPlan& plan,
                            const std::vector<int64_t>& keep) {
  const ModelConfig& m = model->config();
  const int64_t T = window.size(1) - 1;
  torch::Tensor logits = ReferenceLogits(model, window.narrow(1, 0, T), plan, keep);
  return torch::cross_entropy_loss(logits.reshape({-1, m.vocab_size}),
                                   window.narrow(1, 1, T).reshape({-1}));
}

// Every parameter's gradient by name (cloned), then clears them.
std::map<std::string, torch::Tensor> TakeGrads(Transformer& model) {
  std::map<std::string, torch::Tensor> out;
  for (auto& p : model->named_parameters()) {
    out[p.key()] = p.value().grad().defined() ? p.value().grad().clone() : torch::Tensor();
    p.value().mutable_grad() = torch::Tensor();
  }
  return out;
}

// h heads of 4 looped K times in layer 1; every path of the model against the textbook forward,
// in the loss and in every parameter's gradient, over two micro-batches of gradient accumulation.
class LoopGradientTest : public ::testing::TestWithParam<std::tuple<int64_t, int64_t>> {};

TEST_P(LoopGradientTest, EveryPathEqualsAllHeadsComputedThenMasked) {
  const auto [h, K] = GetParam();
  torch::manual_seed(17);
  const ModelConfig m = TinyModel();
  Transformer model(m);
  // Unsorted, so that the gathered order is the plan's order, not the weights' order.
  const std::vector<int64_t> order = {3, 1, 2, 0};
  const std::vector<int64_t> S(order.begin(), order.begin() + h);
  LoopPlan plan(m.layers);
  plan[1].k = K;
  plan[1].head_ids = S;
  if (h < m.heads)
    plan[1].heads = torch::tensor(S, torch::kLong);  // as MakeLoopPlan: all heads
                                                     // loop without a gather
  std::vector<torch::Tensor> micro;
  for (int i = 0; i < 2; ++i) {
    micro.push_back(torch::randint(m.vocab_size, {3, m.context + 1}, torch::kLong));
  }

  std::vector<double> want_loss;
  for (const torch::Tensor& w : micro) {
    torch::Tensor loss = ReferenceLoss(model, w, plan, S);
    loss.backward();
    want_loss.push_back(loss.item<double>());
  }
  const std::map<std::string, torch::Tensor> want = TakeGrads(model);

  ModelPaths no_slot;
  no_slot.grad_slot = false;
  ModelPaths no_cpu_pass;  // the fused functions of fused.h that the CPU pass replaces here
  no_cpu_pass.cpu_pass = false;
  for (const ModelPaths& paths : {ModelPaths{}, ModelPaths::Reference(), no_slot, no_cpu_pass}) {
    model->set_paths(paths);
    // A forward whose graph is dropped without a backward leaves nothing for the next one.
    model->Loss(micro[0], plan);
    for (size_t i = 0; i < micro.size(); ++i) {
      torch::Tensor loss = model->Loss(micro[i], plan);
      loss.backward();
      EXPECT_NEAR(loss.item<double>(), want_loss[i], 1e-5)
          << "h=" << h << " K=" << K << " fused_norm=" << paths.fused_norm;
    }
    const std::map<std::string, torch::Tensor> got = TakeGrads(model);
    for (const auto& [name, g] : want) {
      ASSERT_TRUE(got.at(name).defined()) << name;
      EXPECT_LE(MaxAbs(got.at(name) - g), 1e-5 * MaxAbs(g) + 1e-7)
          << name << " h=" << h << " K=" << K << " fused_norm=" << paths.fused_norm
          << " grad_slot=" << paths.grad_slot << " cpu_pass=" << paths.cpu_pass;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(HeadsAndDepth, LoopGradientTest,
                         ::testing::Combine(::testing::Range<int64_t>(1, 5),
                                            ::testing::Range<int64_t>(1, 4)));

TEST(Model, LoopPassNeverReadsUnselectedHeads) {
  // Poison the unselected heads' slices of W_QKV and W_O with NaN. If a loop pass computed all
  // heads and masked the unkept ones (NaN * 0 = NaN), its output would be NaN.
  torch::manual_seed(3);
  const ModelConfig m = TinyModel();
  Transformer model(m);
  torch::NoGradGuard no_grad;
  auto& L = model->layers()[0];
  const int64_t d = m.d_model, dh = m.d_head();
  const float nan = std::numeric_limits<float>::quiet_NaN();
  for (int64_t h : {0, 2}) {
    for (int64_t part = 0; part < 3; ++part) L.wqkv.narrow(0, part * d + h * dh, dh).fill_(nan);
    L.wo.narrow(1, h * dh, dh).fill_(nan);
  }
  torch::Tensor x = torch::randn({2, m.context, d});
  for (const ModelPaths& paths : {ModelPaths{}, ModelPaths::Reference()}) {
    model->set_paths(paths);
    torch::Tensor selected =
        model->AttentionSublayer(0, x, torch::tensor({1, 3}, torch::kLong), {}, nullptr);
    EXPECT_TRUE(torch::isfinite(selected).all().item<bool>());
    EXPECT_EQ(selected.sizes(), x.sizes());
    torch::Tensor all = model->AttentionSublayer(0, x, {}, {}, nullptr);
    EXPECT_FALSE(torch::isfinite(all).all().item<bool>());  // the poison is really there
  }
}

TEST(Model, BlockLoopRunsTheWholeBlockAgain) {
  torch::manual_seed(5);
  ModelConfig m = TinyModel();
  Transformer model(m);
  torch::NoGradGuard no_grad;
  LoopPlan plan(m.layers);
  plan[0].k = 2;
  plan[0].whole_block = true;
  torch::Tensor tokens = torch::randint(m.vocab_size, {2, m.context}, torch::kLong);
  EntropyCapture capture;
  torch::Tensor got = model->forward(tokens, plan, &capture);
  ASSERT_EQ(capture.passes[0].size(), 3u);  // base pass and two more
  ASSERT_EQ(capture.passes[1].size(), 1u);

  // Same as a vanilla model whose layer list is [0, 0, 0, 1].
  auto& layers = model->layers();
  const auto params = model->named_parameters();
  torch::Tensor x = torch::embedding(params["embed"], tokens);
  for (int64_t l : {0, 0, 0, 1}) {
    const auto& L = layers[l];
    torch::Tensor h = x + ReferenceAttention(m, L, Rms(x, L.attn_norm, m.norm_eps), {});
    x = h + ReferenceFfn(L, Rms(h, L.ffn_norm, m.norm_eps));
  }
  torch::Tensor want =
      torch::matmul(Rms(x, params["final_norm"], m.norm_eps), params["lm_head"].t());
  EXPECT_LT((got - want).abs().max().item<double>(), 1e-5);
}

// TinyModel under the fade transition with a window of 10 steps, and a structure whose layer 1
// loops once over `kept`, activated at step 100.
RunConfig FadeConfig() {
  RunConfig cfg;
  cfg.model = TinyModel();
  cfg.growth.transition = HeadTransition::kFade;
  cfg.growth.delta_t = 10;
  return cfg;
}
GrowthState LayerOneLoops(const RunConfig& cfg, std::vector<int64_t> kept) {
  GrowthState s = GrowthState::Initial(cfg.model.layers);
  s.phase = GrowthPhase::kGrowing;
  s.active.push_back(LoopedLayer{1, 1, std::move(kept), false, 100});
  return s;
}

TEST(Model, FadeScalesUnkeptHeadsAndThenDropsThem) {
  const RunConfig cfg = FadeConfig();
  const GrowthState s = LayerOneLoops(cfg, {2});
  LoopPlan during = MakeLoopPlan(cfg, s, 105, torch::kCPU);
  ASSERT_TRUE(during[1].head_scale.defined());
  EXPECT_FALSE(during[1].heads.defined());  // every head loops during the window
  EXPECT_FLOAT_EQ(during[1].head_scale[2].item<float>(), 1.0f);
  EXPECT_NEAR(during[1].head_scale[0].item<float>(), 0.5, 1e-6);
  LoopPlan after = MakeLoopPlan(cfg, s, 110, torch::kCPU);
  EXPECT_FALSE(after[1].head_scale.defined());
  ASSERT_TRUE(after[1].heads.defined());
  EXPECT_EQ(after[1].heads.numel(), 1);
}

// model.init_truncation: no initial weight beyond the cut; untruncated, some are (a model of
// about 10,000 weights has ~27 beyond 3 standard deviations).
TEST(Model, InitTruncationBoundsEveryWeight) {
  ModelConfig m = TinyModel();
  auto beyond = [](const ModelConfig& cfg) {
    torch::manual_seed(5);
    Transformer model(cfg);
    int64_t n = 0;
    for (const torch::Tensor& p : model->parameters()) {
      if (p.dim() >= 2) n += (p.abs() > 3 * cfg.init_std).sum().item<int64_t>();
    }
    return n;
  };
  EXPECT_GT(beyond(m), 0);
  m.init_truncation = 3;
  EXPECT_EQ(beyond(m), 0);
}

// train.decay_norms: with zero gradients AdamW's step is the decay alone, p *= 1 - lr * wd; the
// norm gains (all 1 at init) shrink only when they are decayed. Matrices are decayed either way.
TEST(Model, DecayNormsDecaysTheGains) {
  for (bool decay_norms : {false, true}) {
    TrainConfig t;
    t.lr = 0.1;
    t.weight_decay = 0.5;
    t.decay_norms = decay_norms;
    Transformer model(TinyModel());
    const torch::Tensor wo = model->named_parameters()["layer0_wo"].detach().clone();
    auto opt = MakeOptimizer(t, *model);
    ASSERT_EQ(opt->param_groups().size(), 2u);
    for (torch::Tensor& p : model->parameters()) p.mutable_grad() = torch::zeros_like(p);
    opt->step();
    const double gain = model->named_parameters()["final_norm"][0].item<double>();
    EXPECT_NEAR(gain, decay_norms ? 0.95 : 1.0, 1e-6) << decay_norms;
    EXPECT_TRUE(torch::allclose(model->named_parameters()["layer0_wo"], wo * 0.95));
  }
}

TEST(Entropy, UniformAttentionIsOneAndOneHotIsZero) {
  const int64_t B = 2, H = 3, N = 16, dh = 8;
  torch::Tensor k = torch::randn({B, H, N, dh});
  torch::Tensor q_zero = torch::zeros({B, H, 1, dh});  // equal scores everywhere
  torch::Tensor e = LastRowEntropy(q_zero, k);
  ASSERT_EQ(e.numel(), H);
  EXPECT_LT((e - 1.0).abs().max().item<double>(), 1e-6);

  // Keys orthogonal one-hots; a query that is a huge multiple of key 5 attends only to it.
  torch::Tensor k1 = torch::zeros({B, H, N, N});
  for (int64_t j = 0; j < N; ++j)
    k1.index_put_({torch::indexing::Slice(), torch::indexing::Slice(), j, j}, 1.0);
  torch::Tensor q1 = torch::zeros({B, H, 1, N});
  q1.index_put_({torch::indexing::Slice(), torch::indexing::Slice(), 0, 5}, 1e4);
  EXPECT_LT(LastRowEntropy(q1, k1).abs().max().item<double>(), 1e-6);
}

TEST(Entropy, LastRowPathEqualsFullMatrixPath) {
  torch::manual_seed(11);
  const int64_t B = 3, H = 4, N = 20, dh = 8;
  torch::Tensor q = torch::randn({B, H, N, dh}), k = torch::randn({B, H, N, dh});
  // Full path: the whole causal N x N attention matrix, then its last row.
  torch::Tensor scores = torch::matmul(q, k.transpose(-2, -1)) / std::sqrt(double(dh));
  scores = scores.masked_fill(torch::ones({N, N}, torch::kBool).triu(1), -INFINITY);
  torch::Tensor A = torch::softmax(scores.to(torch::kDouble), -1);
  torch::Tensor row = A.select(2, N - 1);  // [B,H,N]
  torch::Tensor full = (-(row * row.log()).sum(-1) / std::log(double(N))).mean(0);
  torch::Tensor fast = LastRowEntropy(q.narrow(2, N - 1, 1), k);
  EXPECT_LT((full - fast.to(torch::kDouble)).abs().max().item<double>(), 1e-5);
}

TEST(Entropy, CaptureHasOneTensorPerPassAndProbeAveragesChunks) {
  torch::manual_seed(2);
  const ModelConfig m = TinyModel();
  Transformer model(m);
  LoopPlan plan(m.layers);
  plan[1].k = 2;
  plan[1].heads = torch::tensor({0, 2}, torch::kLong);
  plan[1].head_ids = {0, 2};
  torch::Tensor windows = torch::randint(m.vocab_size, {6, m.context}, torch::kLong);
  EntropyReading whole = MeasureProbe(model, windows, plan, 6);
  EntropyReading chunked = MeasureProbe(model, windows, plan, 4);  // ragged: 4 + 2
  ASSERT_EQ(whole.passes.size(), 2u);
  ASSERT_EQ(whole.passes[1].size(), 3u);
  ASSERT_EQ(whole.passes[1][1].size(), 2u);
  EXPECT_EQ(whole.pass_heads[1][2], (std::vector<int64_t>{0, 2}));
  for (size_t l = 0; l < 2; ++l) {
    for (size_t p = 0; p < whole.passes[l].size(); ++p) {
      for (size_t i = 0; i < whole.passes[l][p].size(); ++i) {
        EXPECT_NEAR(whole.passes[l][p][i], chunked.passes[l][p][i], 1e-5);
        EXPECT_GE(whole.passes[l][p][i], 0.0);
        EXPECT_LE(whole.passes[l][p][i], 1.0);
      }
    }
  }
  // last_loop mode: kept heads report their last loop, the others loop 0.
  GrowthState s = GrowthState::Initial(m.layers);
  s.active.push_back(LoopedLayer{1, 2, {0, 2}, false, 10});
  EntropySnapshot base = GrowthSignal(whole, s, LoopedHeadEntropy::kBase);
  EntropySnapshot last = GrowthSignal(whole, s, LoopedHeadEntropy::kLastLoop);
  EXPECT_EQ(base.head[1][1], last.head[1][1]);
  EXPECT_EQ(last.head[1][2], whole.passes[1][2][1]);
  EXPECT_EQ(base.head[1][2], whole.passes[1][0][2]);
}

// Inside a fade window the loop runs every head, but only the kept heads S_l report their last
// loop under last_loop (§9); the others keep their loop-0 entropy, as in the reference.
TEST(Entropy, LastLoopUnderFadeReplacesOnlyKeptHeads) {
  torch::manual_seed(3);
  const RunConfig cfg = FadeConfig();
  const GrowthState s = LayerOneLoops(cfg, {1, 3});
  const LoopPlan plan = MakeLoopPlan(cfg, s, 104, torch::kCPU);
  ASSERT_EQ(plan[1].head_ids.size(), static_cast<size_t>(cfg.model.heads));
  Transformer model(cfg.model);
  torch::Tensor windows =
      torch::randint(cfg.model.vocab_size, {3, cfg.model.context}, torch::kLong);
  const EntropyReading r = MeasureProbe(model, windows, plan, 3);
  ASSERT_EQ(r.passes[1].size(), 2u);
  ASSERT_EQ(r.passes[1][1].size(), static_cast<size_t>(cfg.model.heads));
  const EntropySnapshot last = GrowthSignal(r, s, LoopedHeadEntropy::kLastLoop);
  for (int64_t i = 0; i < cfg.model.heads; ++i) {
    const bool kept = i == 1 || i == 3;
    EXPECT_EQ(last.head[1][i], r.passes[1][kept ? 1 : 0][i]) << "head " << i;
    // The two passes differ, so the check tells them apart.
    EXPECT_NE(r.passes[1][0][i], r.passes[1][1][i]) << "head " << i;
  }
  EXPECT_EQ(last.head[0], r.passes[0][0]);
}

}  // namespace
}  // namespace sgt
