// The decoder, its looped forward and its entropy capture. See model.h for the contract.
#include "libsgt/torch/model.h"

#include <torch/version.h>

#include <cmath>
#include <limits>
#include <string>

#include "libsgt/torch/cpu_attention.h"
#include "libsgt/torch/cpu_pass.h"

namespace sgt {
namespace {

// LibTorch 2.x has a fused causal attention (flash kernels on CUDA and CPU); 1.13 does not, so
// it gets libsgt's CPU kernel (float32 on the CPU), else the textbook three-op form, which is also
// what the PyTorch reference benchmark runs, or the same in query blocks that skip the scores
// above the diagonal (`blocks` > 1).
torch::Tensor CausalAttention(const torch::Tensor& q, const torch::Tensor& k,
                              const torch::Tensor& v, const torch::Tensor& mask, int64_t blocks,
                              bool kernel) {
#if TORCH_VERSION_MAJOR >= 2
  (void)mask;
  (void)blocks;
  (void)kernel;
  return at::scaled_dot_product_attention(q, k, v, {}, 0.0, /*is_causal=*/true);
#else
  if (kernel && CpuAttentionSupports(q)) return CausalAttentionCpu(q, k, v);
  // The scores tensor [B, h, T, T] is the largest in the step, and every pass over it is
  // memory-bound: scaling and masking ride along in one baddbmm (bias + alpha * q k^T) instead
  // of two more passes forward and two backward.
  if (blocks > 1) return BlockCausalAttention(q, k, v, mask, blocks);
  const double scale = 1.0 / std::sqrt(static_cast<double>(q.size(-1)));
  const int64_t B = q.size(0), h = q.size(1), T = q.size(2), dh = q.size(3);
  torch::Tensor scores =
      torch::baddbmm(mask, q.reshape({B * h, T, dh}), k.reshape({B * h, T, dh}).transpose(1, 2),
                     /*beta=*/1.0, /*alpha=*/scale);
  return torch::matmul(torch::softmax(scores, -1).view({B, h, T, T}), v);
#endif
}

// normal(0, std), with values beyond `truncation` standard deviations drawn again (0: none):
// exactly the truncated normal, by rejection.
torch::Tensor InitNormal(std::vector<int64_t> shape, double std, double truncation) {
  torch::Tensor z = torch::randn(shape);
  if (truncation > 0) {
    for (torch::Tensor out = z.abs() > truncation; out.any().item<bool>();
         out = z.abs() > truncation) {
      z.masked_scatter_(out, torch::randn({out.sum().item<int64_t>()}));
    }
  }
  return z * std;
}

}  // namespace

torch::Tensor RmsNorm(const torch::Tensor& x, const torch::Tensor& g, double eps) {
  return x * torch::rsqrt(x.pow(2).mean(-1, /*keepdim=*/true) + eps) * g;
}

torch::Tensor ApplyRope(const torch::Tensor& x, const torch::Tensor& cos,
                        const torch::Tensor& sin) {
  const int64_t half = x.size(-1) / 2;
  torch::Tensor x1 = x.narrow(-1, 0, half);
  torch::Tensor x2 = x.narrow(-1, half, half);
  return x * cos + torch::cat({-x2, x1}, -1) * sin;
}

torch::Tensor LastRowEntropy(const torch::Tensor& q_last, const torch::Tensor& k) {
  const int64_t n = k.size(-2);
  const double scale = 1.0 / std::sqrt(static_cast<double>(q_last.size(-1)));
  torch::Tensor logits = torch::matmul(q_last.to(torch::kFloat) * scale,
                                       k.to(torch::kFloat).transpose(-2, -1));  // [B,H,1,N]
  torch::Tensor logp = torch::log_softmax(logits, -1);
  torch::Tensor ent = -(logp.exp() * logp).sum(-1) / std::log(static_cast<double>(n));
  return ent.mean(0).reshape({-1});
}

std::pair<torch::Tensor, torch::Tensor> RotaryCache::Get(int64_t T, torch::Device device,
                                                         at::ScalarType dtype) {
  if (!cos_.defined() || cos_.size(0) < T || cos_.device() != device) {
    const int64_t half = d_head_ / 2;
    torch::Tensor inv_freq =
        torch::pow(theta_, -torch::arange(0, half, torch::kDouble) / static_cast<double>(half));
    torch::Tensor pos = torch::arange(0, T, torch::kDouble);
    torch::Tensor freqs = torch::outer(pos, inv_freq);   // [T, half]
    torch::Tensor emb = torch::cat({freqs, freqs}, -1);  // [T, d_head]
    cos_ = emb.cos().to(torch::kFloat).to(device);
    sin_ = emb.sin().to(torch::kFloat).to(device);
    cos_c_ = sin_c_ = torch::Tensor();
  }
  if (dtype == cos_.scalar_type()) return {cos_.narrow(0, 0, T), sin_.narrow(0, 0, T)};
  if (!cos_c_.defined() || cos_c_.scalar_type() != dtype) {
    cos_c_ = cos_.to(dtype);
    sin_c_ = sin_.to(dtype);
  }
  return {cos_c_.narrow(0, 0, T), sin_c_.narrow(0, 0, T)};
}

bool UseTextbookPath(const std::string& name, ModelPaths* paths) {
  if (name == "all") {
    *paths = ModelPaths::Reference();
  } else if (name == "norm") {
    paths->fused_norm = false;
  } else if (name == "slot") {
    paths->grad_slot = false;
  } else if (name == "residual") {
    paths->fused_residual = false;
  } else if (name == "rope") {
    paths->fused_rope = false;
  } else if (name == "attention") {
    paths->causal_blocks = false;
    paths->attention_kernel = false;
  } else if (name == "kernel") {
    paths->attention_kernel = false;
  } else if (name == "pass") {
    paths->cpu_pass = false;
  } else {
    return false;
  }
  return true;
}

LoopPlan MakeLoopPlan(const RunConfig& cfg, const GrowthState& state, int64_t step,
                      torch::Device device) {
  LoopPlan plan(cfg.model.layers);
  const auto long_opts = torch::TensorOptions().dtype(torch::kLong);
  for (const LoopedLayer& a : state.active) {
    LayerLoop& p = plan[a.layer];
    p.k = a.k;
    p.whole_block = a.whole_block;
    if (a.whole_block) continue;
    const double fade = FadeWeight(cfg.growth, a.activated_step, step);
    const bool all_heads = static_cast<int64_t>(a.heads.size()) == cfg.model.heads;
    if (fade > 0.0 && !all_heads) {
      // Fade window: every head loops; the unkept ones are scaled down towards zero.
      std::vector<float> scale(cfg.model.heads, static_cast<float>(fade));
      for (int64_t h : a.heads) scale[h] = 1.0f;
      p.head_scale = torch::tensor(scale).to(device);
      for (int64_t h = 0; h < cfg.model.heads; ++h) p.head_ids.push_back(h);
    } else {
      p.head_ids = a.heads;
      if (!all_heads) p.heads = torch::tensor(a.heads, long_opts).to(device);
    }
  }
  return plan;
}

TransformerImpl::TransformerImpl(const ModelConfig& cfg)
    : cfg_(cfg), rope_(cfg.d_head(), cfg.rope_theta) {
  const int64_t d = cfg.d_model, ff = cfg.d_ff, V = cfg.vocab_size;
  const double sd = cfg.init_std, cut = cfg.init_truncation;
  embed_ = register_parameter("embed", InitNormal({V, d}, sd, cut));
  layers_.resize(cfg.layers);
  for (int64_t l = 0; l < cfg.layers; ++l) {
    const std::string p = "layer" + std::to_string(l) + "_";
    Layer& L = layers_[l];
    L.attn_norm = register_parameter(p + "attn_norm", torch::ones({d}));
    L.wqkv = register_parameter(p + "wqkv", InitNormal({3 * d, d}, sd, cut));
    L.wo = register_parameter(p + "wo", InitNormal({d, d}, sd, cut));
    L.ffn_norm = register_parameter(p + "ffn_norm", torch::ones({d}));
    L.w_gate_up = register_parameter(p + "w_gate_up", InitNormal({2 * ff, d}, sd, cut));
    L.w_down = register_parameter(p + "w_down", InitNormal({d, ff}, sd, cut));
  }
  final_norm_ = register_parameter("final_norm", torch::ones({d}));
  slots_.resize(cfg.layers);
  lm_head_ = register_parameter("lm_head", InitNormal({V, d}, sd, cut));
}

torch::Tensor TransformerImpl::RmsNorm(const torch::Tensor& x, const torch::Tensor& w) const {
  return sgt::RmsNorm(x, w, cfg_.norm_eps);
}

torch::Tensor TransformerImpl::NormThenLinear(const torch::Tensor& x, const torch::Tensor& g,
                                              const torch::Tensor& w) const {
  if (paths_.fused_norm) return NormLinear(x, g, w, cfg_.norm_eps, {});
  return torch::linear(RmsNorm(x, g), w);
}

torch::Tensor TransformerImpl::FfnSublayer(const Layer& L, const torch::Tensor& h) const {
  std::vector<torch::Tensor> gu = NormThenLinear(h, L.ffn_norm, L.w_gate_up).chunk(2, -1);
  torch::Tensor a = torch::silu(gu[0]) * gu[1];
  if (paths_.fused_residual) return ResidualLinear(h, a, L.w_down, {});
  return h + torch::linear(a, L.w_down);
}

torch::Tensor TransformerImpl::AttentionSublayer(int64_t layer, const torch::Tensor& x,
                                                 const torch::Tensor& heads,
                                                 const torch::Tensor& head_scale,
                                                 torch::Tensor* entropy_out) {
  return AttentionPass(layer, x, heads, head_scale, entropy_out, /*forward_id=*/-1);
}

torch::Tensor TransformerImpl::AttentionPass(int64_t layer, const torch::Tensor& x,
                                             const torch::Tensor& heads,
                                             const torch::Tensor& head_scale,
                                             torch::Tensor* entropy_out, int64_t forward_id) {
  const Layer& L = layers_[layer];
  const int64_t B = x.size(0), T = x.size(1), d = cfg_.d_model;
  const int64_t dh = cfg_.d_head();
  const int64_t n_heads = cfg_.heads;
  // A loop pass gathers only the selected heads' rows of W_QKV and columns of W_O: it then costs
  // h/n of a full attention sublayer (sgt-method.md §3).
  const bool gathered = heads.defined();
  const int64_t h = gathered ? heads.size(0) : n_heads;
  torch::Tensor rows, cols;  // of W_QKV (q, k, v parts, each head's d_head rows) and of W_O
  if (gathered) {
    const auto opts = heads.options();
    torch::Tensor within = torch::arange(dh, opts);
    cols = (heads.view({h, 1}) * dh + within.view({1, dh})).reshape({-1});
    rows = (torch::arange(3, opts).view({3, 1}) * d + cols.view({1, -1})).reshape({-1});
  }
  GradSlot* qkv_slot = nullptr;
  GradSlot* o_slot = nullptr;
  if (paths_.grad_slot && forward_id >= 0) {
    qkv_slot = &slots_[layer].qkv;
    o_slot = &slots_[layer].o;
  }

  // LibTorch 1.x on the CPU: both ends of the pass as blocked loops (cpu_pass.h).
  const bool cpu_pass = paths_.cpu_pass && paths_.fused_norm && paths_.fused_rope &&
                        paths_.fused_residual && CpuPassSupports(x);
  torch::Tensor q, k, v;
  if (cpu_pass) {
    auto [rope_cos, rope_sin] = rope_.Get(T, x.device(), torch::kFloat);
    std::vector<torch::Tensor> split = NormQkvRopeCpu(
        x, L.attn_norm, L.wqkv, cfg_.norm_eps, {rows, qkv_slot, forward_id}, h, rope_cos, rope_sin);
    q = split[0];
    k = split[1];
    v = split[2];
  } else {
    torch::Tensor qkv;  // [B, T, 3 * h * dh]
    if (paths_.fused_norm) {
      qkv = NormLinear(x, L.attn_norm, L.wqkv, cfg_.norm_eps, {rows, qkv_slot, forward_id});
    } else {
      qkv = torch::linear(RmsNorm(x, L.attn_norm),
                          gathered ? L.wqkv.index_select(0, rows) : L.wqkv);
    }
    auto [rope_cos, rope_sin] = rope_.Get(T, x.device(), qkv.scalar_type());
    if (paths_.fused_rope) {
      std::vector<torch::Tensor> split = SplitHeadsRope(qkv, h, rope_cos, rope_sin);
      q = split[0];
      k = split[1];
      v = split[2];
    } else {
      torch::Tensor parts = qkv.view({B, T, 3, h, dh}).permute({2, 0, 3, 1, 4});
      torch::Tensor qk = ApplyRope(parts.narrow(0, 0, 2), rope_cos, rope_sin);
      q = qk[0];
      k = qk[1];
      v = parts[2];
    }
  }
  if (entropy_out != nullptr) {
    torch::NoGradGuard no_grad;
    *entropy_out = LastRowEntropy(q.narrow(2, T - 1, 1).detach(), k.detach());
  }
  torch::Tensor mask;
#if TORCH_VERSION_MAJOR < 2
  if (!causal_mask_.defined() || causal_mask_.size(0) < T || causal_mask_.device() != x.device()) {
    causal_mask_ =
        torch::full({T, T}, -std::numeric_limits<float>::infinity()).triu(1).to(x.device());
  }
  mask = causal_mask_.narrow(0, 0, T).narrow(1, 0, T);
#endif
  torch::Tensor out = CausalAttention(q, k, v, mask, paths_.causal_blocks ? 4 : 1,
                                      paths_.attention_kernel);  // [B, h, T, dh]
  if (cpu_pass) return OutProjResidualCpu(x, out, L.wo, {cols, o_slot, forward_id}, head_scale);
  if (head_scale.defined()) out = out * head_scale.view({1, h, 1, 1}).to(out.dtype());
  out = out.transpose(1, 2).reshape({B, T, h * dh});
  if (paths_.fused_residual) return ResidualLinear(x, out, L.wo, {cols, o_slot, forward_id});
  return x + torch::linear(out, gathered ? L.wo.index_select(1, cols) : L.wo);
}

torch::Tensor TransformerImpl::Block(int64_t layer, const torch::Tensor& x_in,
                                     const LayerLoop* loop, EntropyCapture* capture) {
  const Layer& L = layers_[layer];
  const bool whole_block = loop != nullptr && loop->whole_block;
  const int64_t block_passes = whole_block ? 1 + loop->k : 1;
  const int64_t head_loops = (loop != nullptr && !whole_block) ? loop->k : 0;
  // Names this forward of the layer for its gradient slots (only a graph has a backward).
  const int64_t id = torch::GradMode::is_enabled() ? next_forward_id_++ : -1;
  torch::Tensor x = x_in;
  for (int64_t pass = 0; pass < block_passes; ++pass) {
    torch::Tensor ent;
    torch::Tensor* ent_ptr = capture != nullptr ? &ent : nullptr;
    torch::Tensor h = AttentionPass(layer, x, {}, {}, ent_ptr, id);
    if (capture != nullptr) capture->passes[layer].push_back(ent);
    for (int64_t k = 1; k <= head_loops; ++k) {
      // Hk = H(k-1) + sum_{i in S} Attn_i(RMSNorm_attn(H(k-1))): same weights, norm and RoPE.
      h = AttentionPass(layer, h, loop->heads, loop->head_scale, ent_ptr, id);
      if (capture != nullptr) capture->passes[layer].push_back(ent);
    }
    x = FfnSublayer(L, h);
  }
  return x;
}

torch::Tensor TransformerImpl::forward(const torch::Tensor& tokens, const LoopPlan& plan,
                                       EntropyCapture* capture, bool want_logits) {
  if (capture != nullptr) {
    capture->passes.assign(cfg_.layers, {});
  }
  torch::Tensor x = torch::embedding(embed_, tokens);
  for (int64_t l = 0; l < cfg_.layers; ++l) {
    const LayerLoop* loop =
        (l < static_cast<int64_t>(plan.size()) && plan[l].k > 0) ? &plan[l] : nullptr;
    x = Block(l, x, loop, capture);
  }
  if (!want_logits) return {};
  return NormThenLinear(x, final_norm_, lm_head_);
}

torch::Tensor TransformerImpl::Loss(const torch::Tensor& window, const LoopPlan& plan,
                                    EntropyCapture* capture) {
  const int64_t T = window.size(1) - 1;
  torch::Tensor logits = forward(window.narrow(1, 0, T), plan, capture);
  return torch::cross_entropy_loss(logits.reshape({-1, cfg_.vocab_size}).to(torch::kFloat),
                                   window.narrow(1, 1, T).reshape({-1}));
}

std::unique_ptr<torch::optim::AdamW> MakeOptimizer(const TrainConfig& train,
                                                   TransformerImpl& model) {
  std::vector<torch::Tensor> decay, no_decay;
  for (const auto& p : model.named_parameters()) {
    (p.value().dim() >= 2 || train.decay_norms ? decay : no_decay).push_back(p.value());
  }
  auto opts = torch::optim::AdamWOptions(train.lr)
                  .betas({train.beta1, train.beta2})
                  .eps(train.eps)
                  .weight_decay(train.weight_decay);
  std::vector<torch::optim::OptimizerParamGroup> groups;
  groups.emplace_back(decay, std::make_unique<torch::optim::AdamWOptions>(opts));
  auto nd = opts;
  nd.weight_decay(0.0);
  groups.emplace_back(no_decay, std::make_unique<torch::optim::AdamWOptions>(nd));
  return std::make_unique<torch::optim::AdamW>(std::move(groups));
}

}  // namespace sgt
