// Fused pieces of the decoder's forward and backward: autograd functions with hand-written
// backward passes that read and write the full-width activations fewer times than the textbook
// ops they replace (docs/benchmarks.md, "The loop pass and the residuals").
//
// Each computes exactly what its textbook form computes, up to floating-point reassociation;
// model.cc keeps the textbook forms as the reference path (ModelPaths), which the tests compare
// these against in forward and gradients.
//
// Dtypes: weights and the residual stream are fp32; under CUDA bf16 autocast the matrix products
// run in bf16 (as autocast would run them) and the norm's statistics and its backward stay fp32.
#ifndef SGT_TORCH_FUSED_H_
#define SGT_TORCH_FUSED_H_

#include <torch/torch.h>

#include <cstdint>

namespace sgt {

// The dtype matrix products of `x` run in: the autocast dtype when autocast is on for x's device
// (CUDA), else x's own.
at::ScalarType ComputeDtype(const torch::Tensor& x);

// Where a loop pass's gradient for the rows (or columns) of a weight it gathered goes. Without a
// slot, a gathered weight's gradient is a full-size tensor, zero outside the gathered rows, made
// and added to .grad on every pass and micro-batch (index_select's backward). With one, the loop
// pass adds its narrow gradient here, and the base pass of the same layer, whose backward always
// runs after every loop pass of that layer (each loop pass reads the base pass's output), adds
// it into the full-size gradient it computes anyway. `id` names the forward: a gradient left by
// a forward whose base pass never ran backward is dropped, never given to another forward.
struct GradSlot {
  int64_t id = -1;
  int64_t dim = 0;      // the weight's dimension the index selects on
  torch::Tensor index;  // int64: the gathered rows or columns
  torch::Tensor grad;   // their summed gradient, or undefined

  void Add(int64_t forward_id, const torch::Tensor& index, const torch::Tensor& g);
  // Adds the pending gradient of forward `forward_id` into `full` (in place) and empties the slot.
  void DrainInto(int64_t forward_id, torch::Tensor& full);
};

// How a weight is used: all of it, or the `index` rows (dim 0) or columns (dim 1) of it, and
// where the gradient of a gathered part goes.
struct WeightUse {
  torch::Tensor index;       // undefined: the whole weight
  GradSlot* slot = nullptr;  // gathered: add the gradient here; whole: drain this slot
  int64_t forward_id = -1;
};

// For autograd functions that take a WeightUse: SaveWeightUse in the forward; in the backward,
// WeightUseGrad turns the gradient `g` of the part of the weight the forward used (gathered on
// dimension `dim`) into what to return for the whole weight (shape `w_sizes`), adding to or
// draining the use's GradSlot.
void SaveWeightUse(torch::autograd::AutogradContext* ctx, const WeightUse& use);
torch::Tensor WeightUseGrad(torch::autograd::AutogradContext* ctx, torch::Tensor g,
                            at::IntArrayRef w_sizes, int64_t dim);

// RMSNorm followed by a linear map: (x * rsqrt(mean(x^2) + eps) * g) @ W[rows]^T, for x [..., d],
// g [d], W [n, d]. When the output is narrower than x (a loop pass over few heads), the gain is
// folded into the gathered rows of W and the output is scaled by the per-row 1/rms instead, so
// the normalised input is never formed; otherwise the normalised input is formed once and the
// backward is RMSNorm's in three passes over it. Returns [..., n_rows] in ComputeDtype(x).
torch::Tensor NormLinear(const torch::Tensor& x, const torch::Tensor& g, const torch::Tensor& w,
                         double eps, const WeightUse& use);

// res + a @ W[:, cols]^T in one addmm (the residual is not a separate temporary), for res
// [..., d_out], a [..., k], W [d_out, d_in]. Returns the residual stream's dtype.
torch::Tensor ResidualLinear(const torch::Tensor& res, const torch::Tensor& a,
                             const torch::Tensor& w, const WeightUse& use);

// The fused QKV projection's output [B, T, 3 * h * d_head] (rows q heads, k heads, v heads) into
// q, k, v [B, h, T, d_head], contiguous, with rotate-half RoPE (cos, sin [T, d_head], in qkv's
// dtype) applied to q and k. Each output element is written once forward and each gradient
// element once backward (no concatenation, no per-part zero-filled gradients).
std::vector<torch::Tensor> SplitHeadsRope(const torch::Tensor& qkv, int64_t heads,
                                          const torch::Tensor& cos, const torch::Tensor& sin);

// Causal attention softmax(q k^T / sqrt(d_head) + mask) v for q, k, v [B, h, T, d_head] and the
// additive causal mask [T, T] (0 on and below the diagonal, -inf above), computed in `blocks`
// blocks of queries: block i's queries see only the keys up to its last query, so the scores
// above the diagonal's blocks are never formed (at 4 blocks, 10/16 of the T x T work). Exact:
// the skipped scores' weights are exactly 0. The hand-written backward accumulates each block's
// key and value gradients in place. The textbook path of LibTorch 1.x (2.x has a fused kernel).
torch::Tensor BlockCausalAttention(const torch::Tensor& q, const torch::Tensor& k,
                                   const torch::Tensor& v, const torch::Tensor& mask,
                                   int64_t blocks);

}  // namespace sgt

#endif  // SGT_TORCH_FUSED_H_
