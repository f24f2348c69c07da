// The LLaMA-style decoder (sgt-method.md §1) with head-level attention looping (§3) and Block
// Loop (§5), plus last-position attention entropy capture (§2).
//
// The structure to run is passed to every forward as a LoopPlan, derived from the growth state,
// so one set of weights serves vanilla, Block Loop and SGT and a checkpoint of one can be resumed
// with any structure. A loop pass over h of n heads gathers those heads' slices of W_QKV and W_O
// and computes only them: its cost is h/n of an attention sublayer.
#ifndef SGT_TORCH_MODEL_H_
#define SGT_TORCH_MODEL_H_

#include <torch/torch.h>

#include <cstdint>
#include <vector>

#include "libsgt/core/config.h"
#include "libsgt/core/growth.h"

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

class RotaryCache {
 public:
  RotaryCache(int64_t d_head, double theta) : d_head_(d_head), theta_(theta) {}
  // cos and sin tables [T, d_head] for positions 0..T-1, cached per (T, device).
  std::pair<torch::Tensor, torch::Tensor> Get(int64_t T, torch::Device device);

 private:
  int64_t d_head_;
  double theta_;
  torch::Tensor cos_, sin_;
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

  // Applies attention of layer `layer` to normalised input for the given heads (undefined: all)
  // and returns the sublayer output before the residual add. Exposed for tests.
  torch::Tensor Attention(int64_t layer, const torch::Tensor& x_norm, const torch::Tensor& heads,
                          const torch::Tensor& head_scale, torch::Tensor* entropy_out);

  const ModelConfig& config() const { return cfg_; }

  struct Layer {
    torch::Tensor attn_norm, wqkv, wo;          // wqkv [3*d, d] rows: q heads, k heads, v heads
    torch::Tensor ffn_norm, w_gate_up, w_down;  // w_gate_up [2*d_ff, d]
  };
  std::vector<Layer>& layers() { return layers_; }

 private:
  torch::Tensor RmsNorm(const torch::Tensor& x, const torch::Tensor& w) const;
  torch::Tensor Ffn(const Layer& L, const torch::Tensor& x) const;
  torch::Tensor Block(int64_t layer, const torch::Tensor& x, const LayerLoop* loop,
                      EntropyCapture* capture);

  ModelConfig cfg_;
  torch::Tensor embed_, final_norm_, lm_head_;
  std::vector<Layer> layers_;
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
