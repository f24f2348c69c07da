// The fused ends of an attention pass on the CPU (cpu_pass.h): forward and hand-written backward,
// one block of rows at a time on each compute thread.
#include "libsgt/torch/cpu_pass.h"

#include <torch/version.h>

// SGT_CPU_KERNELS: see cpu_blas.h.
#if defined(SGT_CPU_KERNELS) && TORCH_VERSION_MAJOR < 2
#define SGT_HAVE_CPU_PASS 1
#include <algorithm>
#include <cmath>
#include <cstring>

#include "libsgt/torch/cpu_blas.h"
#endif

namespace sgt {

#ifdef SGT_HAVE_CPU_PASS
namespace {

using cpu::Gemm;
using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// Rows of the [B * T, d] activations per work item: a block of x and its outputs stay in a
// core's cache between the product and the elementwise work on it, and each block's product is
// large enough to repay the BLAS's packing of the weight (64 rows measured slower on the base
// pass's 768-row W_QKV, 512 slower on both; docs/benchmarks.md).
constexpr int64_t kBlockRows = 128;

// Calls f(first_row, rows, scratch) for each block of the M rows on the compute threads, with a
// scratch of at least `scratch` floats that belongs to the calling thread.
template <typename F>
void ForEachRowBlock(int64_t M, int64_t scratch, const F& f) {
  cpu::ForEachItem((M + kBlockRows - 1) / kBlockRows, scratch, [&](int64_t block, float* mine) {
    const int64_t m0 = block * kBlockRows;
    f(m0, std::min(kBlockRows, M - m0), mine);
  });
}

// Where head j's d_head values of row m = b T + t sit in a contiguous [B, h, T, d_head] tensor.
struct HeadLayout {
  int64_t heads, T, dh;
  int64_t Offset(int64_t m, int64_t j) const { return ((m / T * heads + j) * T + m % T) * dh; }
};

// dst = RoPE(scale * src) for one head's d_head values at one position (cos, sin: that
// position's row): rotate-half, [a, b] -> [a cos - b sin, b cos + a sin] on the two halves.
inline void RopeRow(float* __restrict dst, const float* __restrict src, const float* __restrict cos,
                    const float* __restrict sin, float scale, int64_t half) {
#pragma omp simd
  for (int64_t c = 0; c < half; ++c) {
    const float a = src[c] * scale, b = src[c + half] * scale;
    dst[c] = a * cos[c] - b * sin[c];
    dst[c + half] = b * cos[c + half] + a * sin[c + half];
  }
}

// The transpose of RopeRow: dst = scale * RoPE^T(grad).
inline void RopeRowTransposed(float* __restrict dst, const float* __restrict grad,
                              const float* __restrict cos, const float* __restrict sin, float scale,
                              int64_t half) {
#pragma omp simd
  for (int64_t c = 0; c < half; ++c) {
    const float ga = grad[c], gb = grad[c + half];
    dst[c] = (ga * cos[c] + gb * sin[c + half]) * scale;
    dst[c + half] = (gb * cos[c + half] - ga * sin[c]) * scale;
  }
}

inline void ScaleRow(float* __restrict dst, const float* __restrict src, float scale, int64_t n) {
#pragma omp simd
  for (int64_t c = 0; c < n; ++c) dst[c] = src[c] * scale;
}

const float* DataOrNull(const torch::Tensor& t) {
  return t.defined() ? t.data_ptr<float>() : nullptr;
}

// y = RMSNorm(x; g) W^T = r (x (W g)^T) with r the row's 1/rms: the gain is folded into the
// weight and r scales the narrow output, so the normalised input is never formed. Its backward:
// with gz = r dL/dy and u = gz (W g), dL/dx = u - (r^2 / d) <u, x> x (<u, x> = <dL/dy, y>),
// dL/d(W g) = gz^T x, so dL/dW = (gz^T x) g and dL/dg = sum over rows of (gz^T x) * W.
class NormQkvRopeFn : public torch::autograd::Function<NormQkvRopeFn> {
 public:
  static variable_list forward(AutogradContext* ctx, const torch::Tensor& x, const torch::Tensor& g,
                               const torch::Tensor& w, double eps, const WeightUse& use,
                               int64_t heads, const torch::Tensor& cos, const torch::Tensor& sin) {
    const int64_t B = x.size(0), T = x.size(1), d = x.size(2), M = B * T;
    torch::Tensor x2 = x.reshape({M, d}).contiguous();
    torch::Tensor ws = use.index.defined() ? w.index_select(0, use.index) : w;  // [n, d]
    torch::Tensor wg = (ws * g).contiguous();
    const int64_t n = ws.size(0), dh = n / (3 * heads), half = dh / 2;
    torch::Tensor cos2 = cos.contiguous(), sin2 = sin.contiguous();
    torch::Tensor r = torch::empty({M}, x2.options());
    torch::Tensor q = torch::empty({B, heads, T, dh}, x2.options());
    torch::Tensor k = torch::empty_like(q), v = torch::empty_like(q);
    const HeadLayout layout{heads, T, dh};
    const float *xp = x2.data_ptr<float>(), *wgp = wg.data_ptr<float>();
    const float *cp = cos2.data_ptr<float>(), *sp = sin2.data_ptr<float>();
    float *rp = r.data_ptr<float>(), *qp = q.data_ptr<float>(), *kp = k.data_ptr<float>(),
          *vp = v.data_ptr<float>();
    const float inv_d = 1.0f / static_cast<float>(d), epsf = static_cast<float>(eps);
    ForEachRowBlock(M, kBlockRows * n, [&](int64_t m0, int64_t rows, float* y) {
      // y (rows x n) = x_rows (W g)^T, as y^T = (W g) x_rows^T.
      Gemm('T', 'N', n, rows, d, 1.0f, wgp, d, xp + m0 * d, d, 0.0f, y, n);
      for (int64_t i = 0; i < rows; ++i) {
        const int64_t m = m0 + i;
        const float* xr = xp + m * d;
        float ss = 0.0f;
#pragma omp simd reduction(+ : ss)
        for (int64_t c = 0; c < d; ++c) ss += xr[c] * xr[c];
        const float ri = 1.0f / std::sqrt(ss * inv_d + epsf);
        rp[m] = ri;
        const float* yr = y + i * n;
        const float *cr = cp + (m % T) * dh, *sr = sp + (m % T) * dh;
        for (int64_t j = 0; j < heads; ++j) {
          const int64_t o = layout.Offset(m, j);
          RopeRow(qp + o, yr + j * dh, cr, sr, ri, half);
          RopeRow(kp + o, yr + (heads + j) * dh, cr, sr, ri, half);
          ScaleRow(vp + o, yr + (2 * heads + j) * dh, ri, dh);
        }
      }
    });
    ctx->save_for_backward({x2, r, ws, wg, g, cos2, sin2});
    ctx->saved_data["heads"] = heads;
    ctx->saved_data["w_sizes"] = w.sizes();
    ctx->saved_data["x_sizes"] = x.sizes();
    SaveWeightUse(ctx, use);
    return {q, k, v};
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    variable_list s = ctx->get_saved_variables();
    const torch::Tensor &x2 = s[0], &r = s[1], &ws = s[2], &wg = s[3], &g = s[4];
    const torch::Tensor &cos = s[5], &sin = s[6];
    const int64_t heads = ctx->saved_data["heads"].toInt();
    const int64_t M = x2.size(0), d = x2.size(1), n = wg.size(0), dh = n / (3 * heads);
    const int64_t T = cos.size(0), half = dh / 2;
    torch::Tensor gparts[3];
    for (int i = 0; i < 3; ++i) {
      if (grads[i].defined()) gparts[i] = grads[i].contiguous();
    }
    const float *gqp = DataOrNull(gparts[0]), *gkp = DataOrNull(gparts[1]),
                *gvp = DataOrNull(gparts[2]);
    torch::Tensor gz = torch::empty({M, n}, x2.options());
    torch::Tensor gx = torch::empty({M, d}, x2.options());
    const HeadLayout layout{heads, T, dh};
    const float *xp = x2.data_ptr<float>(), *rp = r.data_ptr<float>(), *wgp = wg.data_ptr<float>();
    const float *cp = cos.data_ptr<float>(), *sp = sin.data_ptr<float>();
    float *gzp = gz.data_ptr<float>(), *gxp = gx.data_ptr<float>();
    const float inv_d = 1.0f / static_cast<float>(d);
    ForEachRowBlock(M, 0, [&](int64_t m0, int64_t rows, float*) {
      for (int64_t i = 0; i < rows; ++i) {
        const int64_t m = m0 + i;
        const float ri = rp[m];
        const float *cr = cp + (m % T) * dh, *sr = sp + (m % T) * dh;
        float* z = gzp + m * n;  // r dL/dy: the part of q, then of k, then of v
        for (int64_t j = 0; j < heads; ++j) {
          const int64_t o = layout.Offset(m, j);
          float *zq = z + j * dh, *zk = z + (heads + j) * dh, *zv = z + (2 * heads + j) * dh;
          if (gqp != nullptr)
            RopeRowTransposed(zq, gqp + o, cr, sr, ri, half);
          else
            std::fill(zq, zq + dh, 0.0f);
          if (gkp != nullptr)
            RopeRowTransposed(zk, gkp + o, cr, sr, ri, half);
          else
            std::fill(zk, zk + dh, 0.0f);
          if (gvp != nullptr)
            ScaleRow(zv, gvp + o, ri, dh);
          else
            std::fill(zv, zv + dh, 0.0f);
        }
      }
      // u (rows x d) = gz_rows (W g), as u^T = (W g)^T gz_rows^T; then the norm's correction.
      Gemm('N', 'N', d, rows, n, 1.0f, wgp, d, gzp + m0 * n, n, 0.0f, gxp + m0 * d, d);
      for (int64_t i = 0; i < rows; ++i) {
        const int64_t m = m0 + i;
        const float* xr = xp + m * d;
        float* u = gxp + m * d;
        float dot = 0.0f;
#pragma omp simd reduction(+ : dot)
        for (int64_t c = 0; c < d; ++c) dot += u[c] * xr[c];
        const float coef = -dot * rp[m] * rp[m] * inv_d;
#pragma omp simd
        for (int64_t c = 0; c < d; ++c) u[c] += coef * xr[c];
      }
    });
    torch::Tensor gg, gw;
    if (ctx->needs_input_grad(1) || ctx->needs_input_grad(2)) {
      torch::Tensor gwg = torch::mm(gz.t(), x2);  // dL/d(W g) [n, d]
      gg = (gwg * ws).sum(0);
      gw = WeightUseGrad(ctx, gwg.mul_(g), ctx->saved_data["w_sizes"].toIntVector(), 0);
    }
    return {gx.view(ctx->saved_data["x_sizes"].toIntVector()),
            gg,
            gw,
            torch::Tensor(),
            torch::Tensor(),
            torch::Tensor(),
            torch::Tensor(),
            torch::Tensor()};
  }
};

// The fade window's per-head output scale (not differentiated), or none; a struct, not a tensor
// argument, because autograd functions take no undefined tensors.
struct HeadScale {
  torch::Tensor scale;  // float32 [h], contiguous, or undefined
};

class OutProjResidualFn : public torch::autograd::Function<OutProjResidualFn> {
 public:
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& res,
                               const torch::Tensor& o, const torch::Tensor& w, const WeightUse& use,
                               const HeadScale& head_scale) {
    const int64_t d = res.size(-1), M = res.numel() / d;
    const int64_t heads = o.size(1), T = o.size(2), dh = o.size(3), kdim = heads * dh;
    torch::Tensor res2 = res.reshape({M, d}).contiguous();
    torch::Tensor o2 = o.contiguous();
    torch::Tensor ws = (use.index.defined() ? w.index_select(1, use.index) : w).contiguous();
    const torch::Tensor& scale = head_scale.scale;
    torch::Tensor a2 = torch::empty({M, kdim}, res2.options());  // merged heads, scaled
    torch::Tensor out = torch::empty({M, d}, res2.options());
    const HeadLayout layout{heads, T, dh};
    const float *op = o2.data_ptr<float>(), *resp = res2.data_ptr<float>(),
                *wsp = ws.data_ptr<float>(), *scp = DataOrNull(scale);
    float *ap = a2.data_ptr<float>(), *outp = out.data_ptr<float>();
    ForEachRowBlock(M, 0, [&](int64_t m0, int64_t rows, float*) {
      for (int64_t i = 0; i < rows; ++i) {
        const int64_t m = m0 + i;
        for (int64_t j = 0; j < heads; ++j) {
          ScaleRow(ap + m * kdim + j * dh, op + layout.Offset(m, j), scp ? scp[j] : 1.0f, dh);
        }
        std::memcpy(outp + m * d, resp + m * d, d * sizeof(float));
      }
      // out_rows += a_rows W^T, as out^T += W a_rows^T.
      Gemm('T', 'N', d, rows, kdim, 1.0f, wsp, kdim, ap + m0 * kdim, kdim, 1.0f, outp + m0 * d, d);
    });
    ctx->save_for_backward({a2, ws});
    if (scale.defined()) ctx->saved_data["scale"] = scale;
    ctx->saved_data["w_sizes"] = w.sizes();
    ctx->saved_data["o_sizes"] = o.sizes();
    SaveWeightUse(ctx, use);
    return out.view(res.sizes());
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    variable_list s = ctx->get_saved_variables();
    const torch::Tensor &a2 = s[0], &ws = s[1];
    const torch::Tensor scale =
        ctx->saved_data.count("scale") ? ctx->saved_data["scale"].toTensor() : torch::Tensor();
    const std::vector<int64_t> o_sizes = ctx->saved_data["o_sizes"].toIntVector();
    const int64_t heads = o_sizes[1], T = o_sizes[2], dh = o_sizes[3], kdim = heads * dh;
    const int64_t d = ws.size(0), M = a2.size(0);
    torch::Tensor gy = grads[0].reshape({M, d}).contiguous();
    torch::Tensor go = torch::empty(o_sizes, gy.options());
    const HeadLayout layout{heads, T, dh};
    const float *gyp = gy.data_ptr<float>(), *wsp = ws.data_ptr<float>(), *scp = DataOrNull(scale);
    float* gop = go.data_ptr<float>();
    ForEachRowBlock(M, kBlockRows * kdim, [&](int64_t m0, int64_t rows, float* ga) {
      // ga (rows x kdim) = gy_rows W, as ga^T = W^T gy_rows^T.
      Gemm('N', 'N', kdim, rows, d, 1.0f, wsp, kdim, gyp + m0 * d, d, 0.0f, ga, kdim);
      for (int64_t i = 0; i < rows; ++i) {
        for (int64_t j = 0; j < heads; ++j) {
          ScaleRow(gop + layout.Offset(m0 + i, j), ga + i * kdim + j * dh, scp ? scp[j] : 1.0f, dh);
        }
      }
    });
    torch::Tensor gw;
    if (ctx->needs_input_grad(2)) {
      gw = WeightUseGrad(ctx, torch::mm(gy.t(), a2), ctx->saved_data["w_sizes"].toIntVector(), 1);
    }
    return {grads[0], go, gw, torch::Tensor(), torch::Tensor()};
  }
};

}  // namespace

bool CpuPassSupports(const torch::Tensor& x) {
  return x.device().is_cpu() && x.scalar_type() == torch::kFloat;
}

std::vector<torch::Tensor> NormQkvRopeCpu(const torch::Tensor& x, const torch::Tensor& g,
                                          const torch::Tensor& w, double eps, const WeightUse& use,
                                          int64_t heads, const torch::Tensor& cos,
                                          const torch::Tensor& sin) {
  TORCH_CHECK(CpuPassSupports(x) && g.scalar_type() == torch::kFloat &&
                  w.scalar_type() == torch::kFloat && cos.scalar_type() == torch::kFloat &&
                  sin.scalar_type() == torch::kFloat && g.is_cpu() && w.is_cpu() && cos.is_cpu() &&
                  sin.is_cpu(),
              "NormQkvRopeCpu: x, g, w, cos and sin must be float32 on the CPU");
  TORCH_CHECK(x.dim() == 3 && g.dim() == 1 && g.size(0) == x.size(2) && w.dim() == 2 &&
                  w.size(1) == x.size(2),
              "NormQkvRopeCpu: x must be [B, T, d], g [d] and w [rows, d]");
  const int64_t n = use.index.defined() ? use.index.size(0) : w.size(0);
  TORCH_CHECK(heads > 0 && n % (6 * heads) == 0,
              "NormQkvRopeCpu: the projection's rows must be 3 x heads x an even d_head");
  TORCH_CHECK(cos.dim() == 2 && cos.sizes() == sin.sizes() && cos.size(0) == x.size(1) &&
                  cos.size(1) == n / (3 * heads),
              "NormQkvRopeCpu: cos and sin must be [T, d_head]");
  return NormQkvRopeFn::apply(x, g, w, eps, use, heads, cos, sin);
}

torch::Tensor OutProjResidualCpu(const torch::Tensor& res, const torch::Tensor& o,
                                 const torch::Tensor& w, const WeightUse& use,
                                 const torch::Tensor& head_scale) {
  TORCH_CHECK(CpuPassSupports(res) && o.scalar_type() == torch::kFloat &&
                  w.scalar_type() == torch::kFloat && o.is_cpu() && w.is_cpu(),
              "OutProjResidualCpu: res, o and w must be float32 on the CPU");
  TORCH_CHECK(res.dim() == 3 && o.dim() == 4 && o.size(0) == res.size(0) &&
                  o.size(2) == res.size(1) && w.dim() == 2 && w.size(0) == res.size(2),
              "OutProjResidualCpu: res must be [B, T, d], o [B, h, T, d_head] and w [d, cols]");
  const int64_t cols = use.index.defined() ? use.index.size(0) : w.size(1);
  TORCH_CHECK(cols == o.size(1) * o.size(3),
              "OutProjResidualCpu: w's (gathered) columns must be h x d_head");
  TORCH_CHECK(!head_scale.defined() || head_scale.numel() == o.size(1),
              "OutProjResidualCpu: head_scale must have one value per head");
  HeadScale scale;
  if (head_scale.defined()) scale.scale = head_scale.to(torch::kCPU, torch::kFloat).contiguous();
  return OutProjResidualFn::apply(res, o, w, use, scale);
}

#else  // no CPU pass in this build

bool CpuPassSupports(const torch::Tensor&) { return false; }

std::vector<torch::Tensor> NormQkvRopeCpu(const torch::Tensor&, const torch::Tensor&,
                                          const torch::Tensor&, double, const WeightUse&, int64_t,
                                          const torch::Tensor&, const torch::Tensor&) {
  TORCH_CHECK(false, "NormQkvRopeCpu: this build has no CPU pass (see libsgt/CMakeLists.txt)");
}

torch::Tensor OutProjResidualCpu(const torch::Tensor&, const torch::Tensor&, const torch::Tensor&,
                                 const WeightUse&, const torch::Tensor&) {
  TORCH_CHECK(false, "OutProjResidualCpu: this build has no CPU pass (see libsgt/CMakeLists.txt)");
}

#endif

}  // namespace sgt
