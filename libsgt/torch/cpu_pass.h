// The two ends of an attention pass on the CPU for LibTorch 1.x, float32: the input end (RMSNorm,
// the QKV projection of the pass's heads, RoPE and the split into heads) and the output end (the
// heads' outputs merged, projected by W_O and added to the residual stream), each one autograd
// function whose forward and backward run as one parallel loop over blocks of rows.
//
// Built from LibTorch ops (fused.h), each end is a dozen operations, each its own pass over the
// data and its own fork and join of the compute threads: on a loop pass over 2 of 8 heads they
// cost about a fifth of the pass, and they do not shrink with the number of heads
// (docs/benchmarks.md, "The fused CPU pass"). Here every thread takes the next block of rows,
// multiplies it with a one-thread BLAS call, and does that block's elementwise work (norm
// statistics, output scaling, RoPE, the head layout, the residual) while the block is in its cache.
//
// Both compute what NormLinear + SplitHeadsRope and ResidualLinear compute (fused.h), up to
// floating-point reassociation, with the same WeightUse: gathered heads and their gradient slots.
#ifndef SGT_TORCH_CPU_PASS_H_
#define SGT_TORCH_CPU_PASS_H_

#include <torch/torch.h>

#include <cstdint>
#include <vector>

#include "libsgt/torch/fused.h"

namespace sgt {

// Whether this build has the CPU pass (LibTorch 1.x with the BLAS and OpenMP LibTorch uses;
// libsgt/CMakeLists.txt) and `x` is float32 on the CPU.
bool CpuPassSupports(const torch::Tensor& x);

// q, k, v [B, heads, T, d_head], contiguous, of RMSNorm(x; g) W[rows]^T split into heads, with
// rotate-half RoPE (cos, sin [T, d_head]) on q and k. x [B, T, d], g [d], W [3 d, d] (or its rows
// `use.index`: the pass's heads' q, k and v rows, in that order), all float32 on the CPU.
// Differentiable in x, g and W.
std::vector<torch::Tensor> NormQkvRopeCpu(const torch::Tensor& x, const torch::Tensor& g,
                                          const torch::Tensor& w, double eps, const WeightUse& use,
                                          int64_t heads, const torch::Tensor& cos,
                                          const torch::Tensor& sin);

// res + merge(o) W[:, cols]^T, for res [B, T, d], o [B, h, T, d_head] (merge: [B, T, h d_head],
// head-major) and W [d, d] (or its columns `use.index`). With `head_scale` [h] defined, head i's
// output is scaled by head_scale[i] first (the fade window; not differentiated). Differentiable
// in res, o and W.
torch::Tensor OutProjResidualCpu(const torch::Tensor& res, const torch::Tensor& o,
                                 const torch::Tensor& w, const WeightUse& use,
                                 const torch::Tensor& head_scale);

}  // namespace sgt

#endif  // SGT_TORCH_CPU_PASS_H_
