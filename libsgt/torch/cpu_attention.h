// Causal attention on the CPU for LibTorch 1.x, which has no fused attention kernel (2.x has
// scaled_dot_product_attention, which the model calls there instead).
//
// LibTorch 1.13 computes a batched product [B*h, T, d_head] x [B*h, d_head, T] as B*h separate
// BLAS calls, each split between the compute threads (a fork and a join per call), and each step
// of attention (scores, mask, softmax, values; five products backward) as its own pass over all
// B*h heads. With d_head 32 these products are thin, so at 2 threads the attention core ran at a
// quarter of the speed of the model's other products, and a head loop pass, which is mostly
// attention, cost more than its FLOPs (docs/benchmarks.md, "The attention kernel").
//
// This kernel hands whole (batch, head) pairs to the compute threads instead: each thread takes
// the next pair as it finishes one (threads that run slower on a shared machine take fewer), and
// runs that pair's whole forward or backward with one-thread BLAS calls on data that stays in its
// cache. Queries go in blocks of `block_rows`; block i's scores are computed against the keys up
// to its own last query only, so most of the masked half of the scores is never computed.
#ifndef SGT_TORCH_CPU_ATTENTION_H_
#define SGT_TORCH_CPU_ATTENTION_H_

#include <torch/torch.h>

#include <cstdint>

namespace sgt {

// Whether CausalAttentionCpu can take `q`: this build has the kernel (LibTorch 1.x, with the
// BLAS and OpenMP LibTorch uses; libsgt/CMakeLists.txt) and q is float32 on the CPU.
bool CpuAttentionSupports(const torch::Tensor& q);

// softmax(q k^T / sqrt(d_head) + causal mask) v for q, k, v [B, h, T, d_head] (float32, CPU, any
// strides), differentiable in q, k and v. Equals the textbook form up to floating-point
// reassociation; the attention weights above the diagonal are exactly 0, as with the mask. With
// gradients, saves the attention weights of the computed blocks (about half of B*h*T*T floats).
torch::Tensor CausalAttentionCpu(const torch::Tensor& q, const torch::Tensor& k,
                                 const torch::Tensor& v, int64_t block_rows = 64);

}  // namespace sgt

#endif  // SGT_TORCH_CPU_ATTENTION_H_
