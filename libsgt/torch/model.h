// The LLaMA-style decoder (sgt-method.md §1) with head-level attention looping (§3) and Block
// Loop (§5), plus last-position attention entropy capture (§2).
//
// The structure to run is passed to every forward as a LoopPlan, derived from the growth state,
// so one set of weights serves vanilla, Block Loop and SGT and a checkpoint of one can be resumed
// with any structure. A loop pass over h of n heads gathers those heads' slices of W_QKV and W_O
// and computes only them: its cost is h/n of an attention sublayer.
//
// The sublayers run fused forms (fused.h) that touch the full-width activations fewer times:
// the RMSNorm inside the projection after it, the residual add inside the output projection's
// addmm, RoPE written straight into q and k, causal attention in query blocks (LibTorch 1.x), and
// a loop pass's weight gradients handed to the base pass instead of full-size zero-filled
// gradients per pass. ModelPaths turns each back to the
// textbook form it replaced: the reference for the tests and the benchmark's "before" arms.
#ifndef SGT_TORCH_MODEL_H_
#define SGT_TORCH_MODEL_H_

#include <torch/torch.h>

#include <cstdint>
#include <deque>
#include <string>
#include <vector>

#include "libsgt/core/config.h"
#include "libsgt/core/growth.h"
#include "libsgt/torch/fused.h"

namespace sgt {

// How one layer runs in this forward.
struct LayerLoop {
  int64_t k = 0;             // extra passes
  bool whole_block = false;  // Block Loop: attention and FFN again
  torch::Tensor heads;       // int64 [h]: heads of each loop pass (undefined: all heads)
  // Fade transition (§9): when defined, the loop pass computes every head and scales head i's
  // output by head_scale[i] (1 for kept heads, the fade weight for the others).
  torch::Tensor head_scale;
  std::vector<int64_t> head_ids;  // the same heads as a plain list, for entropy bookkeeping
};
using LoopPlan = std::vector<LayerLoop>;

// Which formulation each part of the forward uses; all fused by default. Every combination computes
// the same function (up to floating-point reassociation) with the same parameters, so a
// checkpoint does not depend on it.
struct ModelPaths {
  bool fused_norm = true;      // RMSNorm inside the following projection (NormLinear)
  bool grad_slot = true;       // loop passes' weight gradients go to the base pass (GradSlot)
  bool fused_residual = true;  // x + linear(a, W) as one addmm (ResidualLinear)
  bool fused_rope = true;      // q, k, v split with RoPE in one pass (SplitHeadsRope)
  bool causal_blocks = true;   // LibTorch 1.x: attention in 4 query blocks (BlockCausalAttention)
  // LibTorch 1.x, float32 on the CPU, where this build has it: the attention kernel of
  // cpu_attention.h instead of the query blocks of LibTorch ops.
  bool attention_kernel = true;
  // LibTorch 1.x, float32 on the CPU: the norm, QKV projection and RoPE, and the output projection
  // and residual, each as one blocked loop (cpu_pass.h) instead of the fused functions above (only
  // where fused_norm, fused_rope and fused_residual are all on).
  bool cpu_pass = true;

  // The textbook forms: full-width RMSNorm, index_select gathers, separate residual adds,
  // concatenating RoPE, attention over the whole masked T x T scores.
  static ModelPaths Reference() { return {false, false, false, false, false, false, false}; }
};

// Turns the path `name` (norm, slot, residual, rope, attention; all for every one) of `paths` to
// its textbook form; false for an unknown name. For the benchmark's before arms. `kernel` turns
// only the attention kernel off, leaving the query blocks of LibTorch ops it replaced; `pass`
// turns only the CPU pass off, leaving NormLinear, SplitHeadsRope and ResidualLinear.
bool UseTextbookPath(const std::string& name, ModelPaths* paths);

// Builds the per-layer plan of `state` at `step` for tensors on `device`.
LoopPlan MakeLoopPlan(const RunConfig& cfg, const GrowthState& state, int64_t step,
                      torch::Device device);

// Entropies captured during a forward: passes[l][p] is a float tensor [heads in pass p] with the
// batch-mean last-position entropy of layer l's pass p (p = 0 is the base pass with every head;
// p >= 1 are loop passes over LayerLoop::head_ids, or whole-block passes over every head).
struct EntropyCapture {
  std::vector<std::vector<torch::Tensor>> passes;
};

// E(l, i) for a batch: -(1/log N) sum_j A[N,j] log A[N,j] of the last query row, averaged over
// the batch. q_last: [B, H, 1, d_head] (RoPE applied), k: [B, H, N, d_head]. Returns [H]. Costs
// O(N * d_head) per head: it never forms the N x N matrix.
torch::Tensor LastRowEntropy(const torch::Tensor& q_last, const torch::Tensor& k);

// The textbook forms the model's reference paths and the cached inference forward share:
// RMSNorm, x * rsqrt(mean(x^2) + eps) * g over the last dimension, and rotate-half RoPE,
// x * cos + rotate_half(x) * sin, on the last dimension (cos, sin broadcast against x).
torch::Tensor RmsNorm(const torch::Tensor& x, const torch::Tensor& g, double eps);
torch::Tensor ApplyRope(const torch::Tensor& x, const torch::Tensor& cos,
                        const torch::Tensor& sin);

class RotaryCache {
 public:
  RotaryCache(int64_t d_head, double theta) : d_head_(d_head), theta_(theta) {}
  // cos and sin tables [T, d_head] for positions 0..T-1, cached per (T, device), returned
  // in `dtype` (the compute dtype: a bf16 q times an fp32 table would promote to fp32).
  std::pair<torch::Tensor, torch::Tensor> Get(int64_t T, torch::Device device,
                                              at::ScalarType dtype = at::kFloat);

 private:
  int64_t d_head_;
  double theta_;
  torch::Tensor cos_, sin_;      // fp32
  torch::Tensor cos_c_, sin_c_;  // the same in the last other dtype asked for
};

class TransformerImpl : public torch::nn::Module {
 public:
  explicit TransformerImpl(const ModelConfig& cfg);

  // tokens [B, T] int64 -> logits [B, T, V] (float32), or an undefined tensor when
  // `want_logits` is false (the entropy probe needs only the attention rows).
  torch::Tensor forward(const torch::Tensor& tokens, const LoopPlan& plan,
                        EntropyCapture* capture = nullptr, bool want_logits = true);

  // Mean next-token cross-entropy of tokens[:, :-1] predicting tokens[:, 1:].
  torch::Tensor Loss(const torch::Tensor& window, const LoopPlan& plan,
                     EntropyCapture* capture = nullptr);

  // One attention pass of layer `layer` over the heads `heads` (undefined: all), residual
  // included: x + sum_i Attn_i(RMSNorm_attn(x)). Exposed for tests and benchmarks; on its own a
  // pass returns its weight gradients in full (no GradSlot: no base pass follows it).
  torch::Tensor AttentionSublayer(int64_t layer, const torch::Tensor& x, const torch::Tensor& heads,
                                  const torch::Tensor& head_scale, torch::Tensor* entropy_out);

  const ModelConfig& config() const { return cfg_; }
  const ModelPaths& paths() const { return paths_; }
  void set_paths(const ModelPaths& p) { paths_ = p; }

  struct Layer {
    torch::Tensor attn_norm, wqkv, wo;          // wqkv [3*d, d] rows: q heads, k heads, v heads
    torch::Tensor ffn_norm, w_gate_up, w_down;  // w_gate_up [2*d_ff, d]
  };
  std::vector<Layer>& layers() { return layers_; }
  // Read access for the cached inference forward (inference.h), which runs these weights with
  // plain ops.
  const torch::Tensor& embed() const { return embed_; }
  const torch::Tensor& final_norm() const { return final_norm_; }
  const torch::Tensor& lm_head() const { return lm_head_; }
  RotaryCache& rope() { return rope_; }

 private:
  // A loop pass's gathered weights hand their gradients to the base pass through these.
  struct LayerSlots {
    GradSlot qkv, o;
  };

  torch::Tensor RmsNorm(const torch::Tensor& x, const torch::Tensor& w) const;
  // x @ w^T after RMSNorm with gain g, fused or textbook per paths_.
  torch::Tensor NormThenLinear(const torch::Tensor& x, const torch::Tensor& g,
                               const torch::Tensor& w) const;
  torch::Tensor AttentionPass(int64_t layer, const torch::Tensor& x, const torch::Tensor& heads,
                              const torch::Tensor& head_scale, torch::Tensor* entropy_out,
                              int64_t forward_id);
  torch::Tensor FfnSublayer(const Layer& L, const torch::Tensor& h) const;
  torch::Tensor Block(int64_t layer, const torch::Tensor& x, const LayerLoop* loop,
                      EntropyCapture* capture);

  ModelConfig cfg_;
  torch::Tensor embed_, final_norm_, lm_head_;
  std::vector<Layer> layers_;
  std::deque<LayerSlots> slots_;  // one per layer (a deque: addresses stay put)
  int64_t next_forward_id_ = 0;
  ModelPaths paths_;
  RotaryCache rope_;
  torch::Tensor
      causal_mask_;  // [T, T] additive bias: -inf above the diagonal, else 0 (LibTorch 1.x path)
};
TORCH_MODULE(Transformer);

// AdamW over the model's parameters with train's settings. Weight decay applies to the matrices
// (embeddings included), and to the norm gains too with train.decay_norms (the reference decays
// every parameter, §9). Two parameter groups, decayed then not, whatever the setting, so that
// optimizer state in checkpoints has one layout.
std::unique_ptr<torch::optim::AdamW> MakeOptimizer(const TrainConfig& train,
                                                   TransformerImpl& model);

}  // namespace sgt

#endif  // SGT_TORCH_MODEL_H_
