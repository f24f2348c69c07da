// The cached forward, checkpoint loading for inference and sampling. See inference.h for the
// contract and docs/evaluation.md ("Inference") for the cache layout.
//
// The forward here is written with plain ops on TransformerImpl's own weights: the fused
// autograd functions (fused.h) exist to save memory traffic in training's backward, and there is
// no backward here. Each step mirrors a step of TransformerImpl's forward, so that the two compute
// the same function.
#include "libsgt/torch/inference.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <random>
#include <utility>

#include "absl/strings/str_cat.h"
#include "libsgt/core/checkpoint_format.h"
#include "libsgt/torch/checkpoint.h"
#include "nlohmann/json.hpp"

namespace sgt {
namespace {


// Writes `add` [B, h, T, d_head] after the first `length` positions of a pass's keys or values and
// returns the whole [B, h, length + T, d_head]. `view` is the pass's k (or v): the first `length`
// positions of `store`, a buffer with room to grow, which is written in place when this cache
// alone holds it. A store that another KvCache shares (a plain copy of the struct) is copied
// first, so that two continuations of one prefix never write over each other.
torch::Tensor Append(torch::Tensor* store, const torch::Tensor& view, int64_t length,
                     const torch::Tensor& add) {
  const int64_t T = add.size(2), need = length + T;
  const bool in_place =
      store->defined() && store->use_count() == 1 && store->size(0) == add.size(0) &&
      store->size(1) == add.size(1) && store->size(2) >= need && store->device() == add.device() &&
      (length == 0 ||
       (view.defined() && view.size(2) == length && view.data_ptr() == store->data_ptr()));
  if (!in_place) {
    // Geometric growth: appending a token at a time costs amortised O(1) copies per position.
    const int64_t capacity = need + std::max<int64_t>(64, need / 2);
    torch::Tensor grown =
        torch::empty({add.size(0), add.size(1), capacity, add.size(3)}, add.options());
    if (length > 0) grown.narrow(2, 0, length).copy_(view);
    *store = grown;
  }
  store->narrow(2, length, T).copy_(add);
  return store->narrow(2, 0, need);
}

// The weights of one attention pass: all heads, or the rows of W_QKV and columns of W_O of the
// heads a loop pass runs (sgt-method.md §3), gathered once per call for all loop passes.
struct PassWeights {
  torch::Tensor wqkv, wo;
  int64_t heads = 0;
};

PassWeights GatherHeads(const TransformerImpl::Layer& L, const torch::Tensor& heads,
                        int64_t n_heads, int64_t d_head) {
  if (!heads.defined()) return {L.wqkv, L.wo, n_heads};
  const int64_t h = heads.size(0), d = n_heads * d_head;
  const auto opts = heads.options();
  torch::Tensor cols =
      (heads.view({h, 1}) * d_head + torch::arange(d_head, opts).view({1, d_head})).reshape({-1});
  torch::Tensor rows = (torch::arange(3, opts).view({3, 1}) * d + cols.view({1, -1})).reshape({-1});
  return {L.wqkv.index_select(0, rows), L.wo.index_select(1, cols), h};
}

class CachedForward {
 public:
  CachedForward(TransformerImpl& model, int64_t start, int64_t T, torch::Device device)
      : cfg_(model.config()), start_(start) {
    // RoPE tables for positions start .. start + T - 1. The model's table is rebuilt whenever a
    // longer one is asked for, so ask for a power of two at least the context: decoding a token
    // at a time then rebuilds it a logarithmic number of times.
    int64_t rows = std::max<int64_t>(cfg_.context, 1);
    while (rows < start + T) rows *= 2;
    auto [cos, sin] = model.rope().Get(rows, device);
    cos_ = cos.narrow(0, start, T);
    sin_ = sin.narrow(0, start, T);
    if (T > 1) {
      // New query i (position start + i) sees keys 0 .. start + i of the start + T.
      mask_ = torch::ones({T, start + T}, torch::TensorOptions().dtype(torch::kBool).device(device))
                  .triu(start + 1);
    }
  }

  // x + sum_{i in pass} scale_i Attn_i(RMSNorm_attn(x)), with the pass's keys and values
  // appended to `pass`.
  torch::Tensor Attention(const TransformerImpl::Layer& L, const PassWeights& w,
                          const torch::Tensor& head_scale, const torch::Tensor& x,
                          KvCache::Pass* pass) {
    const int64_t B = x.size(0), T = x.size(1), h = w.heads, dh = cfg_.d_head();
    torch::Tensor qkv = torch::linear(RmsNorm(x, L.attn_norm, cfg_.norm_eps), w.wqkv);
    torch::Tensor parts = qkv.view({B, T, 3, h, dh}).permute({2, 0, 3, 1, 4});  // [3,B,h,T,dh]
    torch::Tensor qk = ApplyRope(parts.narrow(0, 0, 2), cos_, sin_);            // q and k in one go
    torch::Tensor q = qk[0];
    torch::Tensor k = qk[1];
    torch::Tensor v = parts[2];
    TORCH_CHECK(!pass->k.defined() || pass->k.size(1) == h, "KvCache: a pass cached ",
                pass->k.defined() ? pass->k.size(1) : 0, " heads but the plan runs ", h,
                "; continue a cache with the loop plan that started it");
    pass->k = Append(&pass->k_store, pass->k, start_, k);
    pass->v = Append(&pass->v_store, pass->v, start_, v);
    const double scale = 1.0 / std::sqrt(static_cast<double>(dh));
    torch::Tensor scores = torch::matmul(q, pass->k.transpose(-2, -1)) * scale;  // [B,h,T,S]
    if (mask_.defined()) scores.masked_fill_(mask_, -std::numeric_limits<float>::infinity());
    torch::Tensor out = torch::matmul(torch::softmax(scores, -1), pass->v);  // [B,h,T,dh]
    if (head_scale.defined()) out = out * head_scale.view({1, h, 1, 1}).to(out.dtype());
    return x + torch::linear(out.transpose(1, 2).reshape({B, T, h * dh}), w.wo);
  }

  torch::Tensor Ffn(const TransformerImpl::Layer& L, const torch::Tensor& h) const {
    std::vector<torch::Tensor> gu =
        torch::linear(RmsNorm(h, L.ffn_norm, cfg_.norm_eps), L.w_gate_up).chunk(2, -1);
    return h + torch::linear(torch::silu(gu[0]) * gu[1], L.w_down);
  }

 private:
  const ModelConfig& cfg_;
  int64_t start_;
  torch::Tensor cos_, sin_, mask_;
};

// A uniform double in [0, 1) from the top 53 bits: the same on every standard library.
double Uniform(std::mt19937_64& rng) {
  return static_cast<double>(rng() >> 11) * (1.0 / 9007199254740992.0);
}

// One token from `logits` (V doubles) under `o`.
int64_t SampleToken(const double* logits, int64_t V, const SampleOptions& o, std::mt19937_64& rng) {
  if (o.temperature <= 0.0) {
    return static_cast<int64_t>(std::max_element(logits, logits + V) - logits);
  }
  std::vector<int64_t> ids(V);
  std::iota(ids.begin(), ids.end(), 0);
  int64_t n = V;  // candidates: ids[0 .. n)
  const bool limit_k = o.top_k > 0 && o.top_k < V;
  const bool limit_p = o.top_p < 1.0;
  auto higher = [logits](int64_t a, int64_t b) {
    return logits[a] > logits[b] || (logits[a] == logits[b] && a < b);
  };
  if (limit_k) {
    std::partial_sort(ids.begin(), ids.begin() + o.top_k, ids.end(), higher);
    n = o.top_k;
  } else if (limit_p) {
    std::sort(ids.begin(), ids.end(), higher);
  }
  double top = -std::numeric_limits<double>::infinity();
  for (int64_t i = 0; i < n; ++i) top = std::max(top, logits[ids[i]]);
  std::vector<double> weight(n);
  double total = 0.0;
  for (int64_t i = 0; i < n; ++i) {
    weight[i] = std::exp((logits[ids[i]] - top) / o.temperature);
    total += weight[i];
  }
  if (limit_p) {
    // Nucleus: the fewest most likely tokens whose probability reaches top_p.
    double kept = 0.0;
    int64_t m = 0;
    while (m < n && (m == 0 || kept < o.top_p * total)) kept += weight[m++];
    n = m;
    total = kept;
  }
  const double u = Uniform(rng) * total;
  double cumulative = 0.0;
  for (int64_t i = 0; i < n; ++i) {
    cumulative += weight[i];
    if (u < cumulative) return ids[i];
  }
  return ids[n - 1];  // u rounded up to the total
}

}  // namespace

KvCache KvCache::RepeatRows(int64_t n) const {
  TORCH_CHECK(n >= 1, "KvCache::RepeatRows: n is ", n, "; pass a count >= 1");
  KvCache out;
  out.length = length;
  out.passes.resize(passes.size());
  for (size_t l = 0; l < passes.size(); ++l) {
    out.passes[l].resize(passes[l].size());
    for (size_t p = 0; p < passes[l].size(); ++p) {
      const Pass& from = passes[l][p];
      Pass& to = out.passes[l][p];
      // repeat_interleave makes new tensors: the copy never writes into this cache's stores.
      if (from.k.defined()) to.k = from.k.repeat_interleave(n, 0);
      if (from.v.defined()) to.v = from.v.repeat_interleave(n, 0);
    }
  }
  return out;
}

torch::Tensor ForwardCached(TransformerImpl& model, const LoopPlan& plan,
                            const torch::Tensor& tokens, KvCache* cache) {
  torch::NoGradGuard no_grad;
  const ModelConfig& cfg = model.config();
  TORCH_CHECK(tokens.dim() == 2 && tokens.size(1) >= 1,
              "ForwardCached: tokens must be [batch, T >= 1], got ", tokens.sizes());
  const int64_t B = tokens.size(0), T = tokens.size(1), start = cache->length;
  if (cache->passes.empty()) {
    TORCH_CHECK(start == 0, "ForwardCached: the cache has length ", start,
                " but no passes; start a sequence with an empty KvCache");
    cache->passes.resize(cfg.layers);
  }
  TORCH_CHECK(static_cast<int64_t>(cache->passes.size()) == cfg.layers,
              "ForwardCached: the cache has ", cache->passes.size(), " layers, the model ",
              cfg.layers, "; use a cache started on this model");
  const torch::Tensor& embed = model.embed();
  CachedForward f(model, start, T, embed.device());
  torch::Tensor x = torch::embedding(embed, tokens.to(embed.device()));
  for (int64_t l = 0; l < cfg.layers; ++l) {
    const TransformerImpl::Layer& L = model.layers()[l];
    const LayerLoop* loop =
        (l < static_cast<int64_t>(plan.size()) && plan[l].k > 0) ? &plan[l] : nullptr;
    const bool whole_block = loop != nullptr && loop->whole_block;
    const int64_t block_passes = whole_block ? 1 + loop->k : 1;
    const int64_t head_loops = (loop != nullptr && !whole_block) ? loop->k : 0;
    std::vector<KvCache::Pass>& passes = cache->passes[l];
    const size_t n_passes = static_cast<size_t>(block_passes * (1 + head_loops));
    if (passes.empty()) passes.resize(n_passes);
    TORCH_CHECK(passes.size() == n_passes, "ForwardCached: layer ", l, " cached ", passes.size(),
                " attention passes but the plan runs ", n_passes,
                "; continue a cache with the loop plan that started it");
    TORCH_CHECK(
        !passes[0].k.defined() || (passes[0].k.size(0) == B && passes[0].k.size(2) == start),
        "ForwardCached: the cache holds ", passes[0].k.defined() ? passes[0].k.size(0) : 0,
        " rows of ", passes[0].k.defined() ? passes[0].k.size(2) : 0, " positions, the call ", B,
        " rows after ", start, "; pass as many rows as the cache holds (RepeatRows)");
    const PassWeights all{L.wqkv, L.wo, cfg.heads};
    PassWeights looped;
    if (head_loops > 0) looped = GatherHeads(L, loop->heads, cfg.heads, cfg.d_head());
    size_t p = 0;
    for (int64_t bp = 0; bp < block_passes; ++bp) {
      torch::Tensor h = f.Attention(L, all, {}, x, &passes[p++]);
      for (int64_t k = 1; k <= head_loops; ++k) {
        // Hk = H(k-1) + sum_{i in S} Attn_i(RMSNorm_attn(H(k-1))), with this pass's own cache.
        h = f.Attention(L, looped, loop->head_scale, h, &passes[p++]);
      }
      x = f.Ffn(L, h);
    }
  }
  cache->length = start + T;
  return torch::linear(RmsNorm(x, model.final_norm(), cfg.norm_eps), model.lm_head())
      .to(torch::kFloat);
}

torch::Tensor Generate(TransformerImpl& model, const LoopPlan& plan, const torch::Tensor& prompt,
                       const SampleOptions& options) {
  torch::NoGradGuard no_grad;
  TORCH_CHECK(prompt.dim() == 2 && prompt.size(1) >= 1,
              "Generate: the prompt must be [batch, T >= 1], got ", prompt.sizes());
  if (options.max_new_tokens <= 0) return prompt;
  const int64_t B = prompt.size(0), V = model.config().vocab_size;
  const torch::Device device = model.embed().device();
  std::mt19937_64 rng(options.seed);
  KvCache cache;
  torch::Tensor logits = ForwardCached(model, plan, prompt, &cache).select(1, prompt.size(1) - 1);
  std::vector<bool> stopped(B, false);
  std::vector<torch::Tensor> generated;
  for (int64_t step = 0; step < options.max_new_tokens; ++step) {
    // Sampling runs on the CPU in double with one explicitly seeded generator, drawn row by row:
    // the same seed gives the same tokens on any device and LibTorch version.
    torch::Tensor row_logits = logits.to(torch::kCPU, torch::kDouble).contiguous();
    torch::Tensor next = torch::empty({B}, torch::kLong);
    int64_t* next_ids = next.data_ptr<int64_t>();
    bool all_stopped = true;
    for (int64_t b = 0; b < B; ++b) {
      int64_t token = options.stop_token;
      if (!stopped[b]) {
        token = SampleToken(row_logits.data_ptr<double>() + b * V, V, options, rng);
        stopped[b] = token == options.stop_token;
      }
      next_ids[b] = token;
      all_stopped = all_stopped && stopped[b];
    }
    generated.push_back(next);
    if (all_stopped || step + 1 == options.max_new_tokens) break;
    logits = ForwardCached(model, plan, next.view({B, 1}).to(device), &cache).select(1, 0);
  }
  return torch::cat({prompt, torch::stack(generated, 1).to(prompt.device())}, 1);
}

absl::StatusOr<LoadedModel> LoadModelForInference(const std::string& checkpoint,
                                                  torch::Device device) {
  absl::StatusOr<std::string> bytes = ReadCheckpointFile(checkpoint);
  if (!bytes.ok()) return bytes.status();
  absl::StatusOr<CheckpointParts> parts = ParseCheckpointBytes(*bytes, checkpoint);
  if (!parts.ok()) return parts.status();
  bytes->clear();
  LoadedModel m;
  m.step = parts->header.step;
  absl::StatusOr<RunConfig> cfg = RunConfigFromJson(parts->header.config_json);
  if (!cfg.ok()) {
    return absl::DataLossError(absl::StrCat(
        "checkpoint ", checkpoint, ": the configuration in its header does not parse (",
        cfg.status().message(), "); pass a checkpoint written by this sgt-train"));
  }
  m.config = *cfg;
  absl::StatusOr<GrowthState> state = GrowthStateFromJson(parts->header.growth_json);
  if (!state.ok()) {
    return absl::DataLossError(
        absl::StrCat("checkpoint ", checkpoint, ": the growth state in its header does not parse (",
                     state.status().message(), "); pass a checkpoint written by this sgt-train"));
  }
  m.state = *state;
  // The structure the last trained step ran with, which the trainer records beside the growth
  // state: at a growth boundary the state already holds that boundary's decision, for the steps
  // to come. The run's own final evaluations used it. Checkpoints without it: the growth state.
  GrowthState trained = m.state;
  int64_t trained_step = m.step;
  const nlohmann::json trainer =
      nlohmann::json::parse(parts->header.trainer_json, nullptr, /*allow_exceptions=*/false);
  if (trainer.is_object() && trainer.contains("structure")) {
    const nlohmann::json& st = trainer["structure"];
    absl::StatusOr<GrowthState> s = st.is_object() && st.contains("growth")
                                        ? GrowthStateFromJson(st["growth"].dump())
                                        : absl::InvalidArgumentError("no growth field");
    if (!s.ok() || !st.contains("step") || !st["step"].is_number_integer()) {
      return absl::DataLossError(absl::StrCat(
          "checkpoint ", checkpoint, ": the trained structure in its header does not parse (",
          s.ok() ? "no integer step" : s.status().message(),
          "); pass a checkpoint written by this sgt-train"));
    }
    trained = *s;
    trained_step = st["step"].get<int64_t>();
  }
  const ModelConfig& mc = m.config.model;
  for (const GrowthState* g : {&m.state, &trained}) {
    for (const LoopedLayer& a : g->active) {
      bool heads_ok = a.k >= 0;
      for (int64_t h : a.heads) heads_ok = heads_ok && h >= 0 && h < mc.heads;
      if (a.layer < 0 || a.layer >= mc.layers || !heads_ok) {
        return absl::DataLossError(absl::StrCat(
            "checkpoint ", checkpoint, ": its growth state loops layer ", a.layer,
            " but the model has ", mc.layers, " layers of ", mc.heads,
            " heads; pass a checkpoint written by this sgt-train"));
      }
    }
  }
  try {
    // Building the model draws its initial weights from the default generator, which the
    // checkpoint's weights then replace: leave the generator as the caller had it.
    at::Generator cpu_gen = at::detail::getDefaultCPUGenerator();
    torch::Tensor rng_state = cpu_gen.get_state();
    m.model = Transformer(mc);
    cpu_gen.set_state(rng_state);
  } catch (const c10::Error& e) {
    return absl::ResourceExhaustedError(absl::StrCat("checkpoint ", checkpoint,
                                                     ": building its model failed (",
                                                     e.what_without_backtrace(), ")"));
  }
  if (absl::Status s = LoadCheckpointParameters(*parts, checkpoint, *m.model); !s.ok()) return s;
  try {
    m.model->to(device);
  } catch (const c10::Error& e) {
    return absl::FailedPreconditionError(
        absl::StrCat("checkpoint ", checkpoint, ": cannot place the model on ", device.str(), " (",
                     e.what_without_backtrace(), "); choose a device this machine has"));
  }
  m.model->eval();
  m.plan = MakeLoopPlan(m.config, trained, trained_step, device);
  return m;
}

}  // namespace sgt
