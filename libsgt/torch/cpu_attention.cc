// The CPU causal attention kernel of cpu_attention.h: forward and hand-written backward, one
// (batch, head) pair at a time on each compute thread.
#include "libsgt/torch/cpu_attention.h"

#include <torch/version.h>

// SGT_CPU_KERNELS is defined only for the files libsgt/CMakeLists.txt compiles with OpenMP, where
// it found the BLAS (LibTorch 1.x); see cpu_blas.h.
#if defined(SGT_CPU_KERNELS) && TORCH_VERSION_MAJOR < 2
#define SGT_HAVE_CPU_ATTENTION 1
#include <algorithm>
#include <climits>
#include <cmath>
#include <limits>
#include <vector>

#include "libsgt/torch/cpu_blas.h"
#endif

namespace sgt {

#ifdef SGT_HAVE_CPU_ATTENTION
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

using cpu::Gemm;

// The query blocks of one (batch, head) pair and where each block's weights sit in the packed
// weights: block i has queries [start[i], start[i + 1]) and keys [0, start[i + 1]); its weights
// are tq x tk floats at offset[i].
struct Blocks {
  std::vector<int64_t> start;
  std::vector<int64_t> offset;

  Blocks(int64_t T, int64_t rows) {
    for (int64_t t = 0; t < T; t += rows) start.push_back(t);
    start.push_back(T);
    offset.push_back(0);
    for (size_t i = 0; i + 1 < start.size(); ++i) {
      offset.push_back(offset.back() + (start[i + 1] - start[i]) * start[i + 1]);
    }
  }
  size_t count() const { return start.size() - 1; }
  int64_t total() const { return offset.back(); }  // packed weights per pair
  int64_t largest() const { return (start[1] - start[0]) * start.back(); }
};

// One pair's forward: out = softmax(scale q k^T + mask) v, its weights written to `weights`
// (packed by `blocks`) and `scores` a thread's scratch of blocks.largest() floats.
void PairForward(const float* q, const float* k, const float* v, float* out, float* weights,
                 float* scores, int64_t dh, float scale, const Blocks& blocks) {
  const float minus_inf = -std::numeric_limits<float>::infinity();
  const auto opts = torch::TensorOptions().dtype(torch::kFloat);
  for (size_t i = 0; i < blocks.count(); ++i) {
    const int64_t t0 = blocks.start[i], tq = blocks.start[i + 1] - t0, tk = blocks.start[i + 1];
    // S (tq x tk) = scale Q_i K^T, as S^T = scale K Q_i^T.
    Gemm('T', 'N', tk, tq, dh, scale, k, dh, q + t0 * dh, dh, 0.0f, scores, tk);
    for (int64_t r = 0; r < tq; ++r) {
      std::fill(scores + r * tk + t0 + r + 1, scores + (r + 1) * tk, minus_inf);
    }
    float* w = weights + blocks.offset[i];
    torch::Tensor w_view = torch::from_blob(w, {tq, tk}, opts);
    at::_softmax_out(w_view, torch::from_blob(scores, {tq, tk}, opts), 1, false);
    // O_i (tq x dh) = P V, as O_i^T = V^T P^T.
    Gemm('N', 'N', dh, tq, tk, 1.0f, v, dh, w, tk, 0.0f, out + t0 * dh, dh);
  }
}

// One pair's backward from the forward's weights; `work` a thread's scratch of blocks.largest().
void PairBackward(const float* q, const float* k, const float* v, const float* weights,
                  const float* grad_out, float* gq, float* gk, float* gv, float* work, int64_t T,
                  int64_t dh, float scale, const Blocks& blocks) {
  std::fill(gk, gk + T * dh, 0.0f);
  std::fill(gv, gv + T * dh, 0.0f);
  for (size_t i = 0; i < blocks.count(); ++i) {
    const int64_t t0 = blocks.start[i], tq = blocks.start[i + 1] - t0, tk = blocks.start[i + 1];
    const float* w = weights + blocks.offset[i];
    const float* go = grad_out + t0 * dh;
    // dV[:tk] += P^T dO_i, as dV^T += dO_i^T P.
    Gemm('N', 'T', dh, tk, tq, 1.0f, go, dh, w, tk, 1.0f, gv, dh);
    // dP (tq x tk) = dO_i V^T, as dP^T = V dO_i^T.
    Gemm('T', 'N', tk, tq, dh, 1.0f, v, dh, go, dh, 0.0f, work, tk);
    // dS = P * (dP - rowsum(dP * P)): softmax's backward, in place.
    for (int64_t r = 0; r < tq; ++r) {
      float* d = work + r * tk;
      const float* p = w + r * tk;
      float dot = 0.0f;
#pragma omp simd reduction(+ : dot)
      for (int64_t c = 0; c < tk; ++c) dot += d[c] * p[c];
#pragma omp simd
      for (int64_t c = 0; c < tk; ++c) d[c] = p[c] * (d[c] - dot);
    }
    // dQ_i = scale dS K, as dQ_i^T = scale K^T dS^T.
    Gemm('N', 'N', dh, tq, tk, scale, k, dh, work, tk, 0.0f, gq + t0 * dh, dh);
    // dK[:tk] += scale dS^T Q_i, as dK^T += scale Q_i^T dS.
    Gemm('N', 'T', dh, tk, tq, scale, q + t0 * dh, dh, work, tk, 1.0f, gk, dh);
  }
}

struct Shape {
  int64_t pairs, T, dh;
};

Shape ShapeOf(const torch::Tensor& q) { return {q.size(0) * q.size(1), q.size(2), q.size(3)}; }

float ScaleOf(int64_t dh) { return 1.0f / std::sqrt(static_cast<float>(dh)); }

// The forward over every pair; `weights` [pairs, blocks.total()] or undefined (no gradients:
// each thread's weights then live in its scratch only).
torch::Tensor Forward(const torch::Tensor& q3, const torch::Tensor& k3, const torch::Tensor& v3,
                      const torch::Tensor& weights, const Shape& s, const Blocks& blocks) {
  torch::Tensor out = torch::empty({s.pairs, s.T, s.dh}, q3.options());
  const int64_t scratch_size = blocks.largest() + (weights.defined() ? 0 : blocks.total());
  const float* q = q3.data_ptr<float>();
  const float* k = k3.data_ptr<float>();
  const float* v = v3.data_ptr<float>();
  float* o = out.data_ptr<float>();
  float* w = weights.defined() ? weights.data_ptr<float>() : nullptr;
  const float scale = ScaleOf(s.dh);
  const int64_t stride = s.T * s.dh;
  cpu::ForEachItem(s.pairs, scratch_size, [&](int64_t p, float* mine) {
    float* pair_weights = w != nullptr ? w + p * blocks.total() : mine + blocks.largest();
    PairForward(q + p * stride, k + p * stride, v + p * stride, o + p * stride, pair_weights, mine,
                s.dh, scale, blocks);
  });
  return out;
}

class CausalAttentionCpuFn : public torch::autograd::Function<CausalAttentionCpuFn> {
 public:
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& q, const torch::Tensor& k,
                               const torch::Tensor& v, int64_t block_rows) {
    const Shape s = ShapeOf(q);
    const Blocks blocks(s.T, block_rows);
    torch::Tensor q3 = q.reshape({s.pairs, s.T, s.dh}).contiguous();
    torch::Tensor k3 = k.reshape({s.pairs, s.T, s.dh}).contiguous();
    torch::Tensor v3 = v.reshape({s.pairs, s.T, s.dh}).contiguous();
    torch::Tensor weights = torch::empty({s.pairs, blocks.total()}, q3.options());
    torch::Tensor out = Forward(q3, k3, v3, weights, s, blocks);
    ctx->save_for_backward({q3, k3, v3, weights});
    ctx->saved_data["block_rows"] = block_rows;
    return out.view(q.sizes());
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    variable_list saved = ctx->get_saved_variables();
    const torch::Tensor &q3 = saved[0], &k3 = saved[1], &v3 = saved[2], &weights = saved[3];
    const Shape s{q3.size(0), q3.size(1), q3.size(2)};
    const Blocks blocks(s.T, ctx->saved_data["block_rows"].toInt());
    torch::Tensor go = grads[0].reshape({s.pairs, s.T, s.dh}).contiguous();
    torch::Tensor gq = torch::empty_like(q3), gk = torch::empty_like(k3),
                  gv = torch::empty_like(v3);
    const float* q = q3.data_ptr<float>();
    const float* k = k3.data_ptr<float>();
    const float* v = v3.data_ptr<float>();
    const float* w = weights.data_ptr<float>();
    const float* g = go.data_ptr<float>();
    float *dq = gq.data_ptr<float>(), *dk = gk.data_ptr<float>(), *dv = gv.data_ptr<float>();
    const float scale = ScaleOf(s.dh);
    const int64_t stride = s.T * s.dh;
    cpu::ForEachItem(s.pairs, blocks.largest(), [&](int64_t p, float* mine) {
      const int64_t o = p * stride;
      PairBackward(q + o, k + o, v + o, w + p * blocks.total(), g + o, dq + o, dk + o, dv + o, mine,
                   s.T, s.dh, scale, blocks);
    });
    const auto sizes = grads[0].sizes();
    return {gq.view(sizes), gk.view(sizes), gv.view(sizes), torch::Tensor()};
  }
};

}  // namespace

bool CpuAttentionSupports(const torch::Tensor& q) {
  return q.device().is_cpu() && q.scalar_type() == torch::kFloat;
}

torch::Tensor CausalAttentionCpu(const torch::Tensor& q, const torch::Tensor& k,
                                 const torch::Tensor& v, int64_t block_rows) {
  TORCH_CHECK(CpuAttentionSupports(q) && k.scalar_type() == q.scalar_type() &&
                  v.scalar_type() == q.scalar_type() && k.device() == q.device() &&
                  v.device() == q.device(),
              "CausalAttentionCpu: q, k and v must be float32 on the CPU");
  TORCH_CHECK(q.dim() == 4 && k.sizes() == q.sizes() && v.sizes() == q.sizes(),
              "CausalAttentionCpu: q, k and v must all be [B, h, T, d_head]");
  TORCH_CHECK(block_rows > 0, "CausalAttentionCpu: block_rows must be positive");
  TORCH_CHECK(q.size(2) * q.size(2) < INT_MAX && q.size(3) < INT_MAX,
              "CausalAttentionCpu: T x T must fit a BLAS int");
  const bool grads = torch::GradMode::is_enabled() &&
                     (q.requires_grad() || k.requires_grad() || v.requires_grad());
  if (grads) return CausalAttentionCpuFn::apply(q, k, v, block_rows);
  const Shape s = ShapeOf(q);
  const Blocks blocks(s.T, block_rows);
  return Forward(q.reshape({s.pairs, s.T, s.dh}).contiguous(),
                 k.reshape({s.pairs, s.T, s.dh}).contiguous(),
                 v.reshape({s.pairs, s.T, s.dh}).contiguous(), torch::Tensor(), s, blocks)
      .view(q.sizes());
}

#else  // no kernel in this build

bool CpuAttentionSupports(const torch::Tensor&) { return false; }

torch::Tensor CausalAttentionCpu(const torch::Tensor&, const torch::Tensor&, const torch::Tensor&,
                                 int64_t) {
  TORCH_CHECK(false,
              "CausalAttentionCpu: this build has no CPU attention kernel (LibTorch 2.x uses "
              "scaled_dot_product_attention; see libsgt/CMakeLists.txt)");
}

#endif

}  // namespace sgt
