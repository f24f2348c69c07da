// The fused autograd functions of fused.h: forward and hand-written backward.
#include "libsgt/torch/fused.h"

#include <ATen/autocast_mode.h>
#include <torch/version.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

namespace sgt {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

int64_t SlotKey(GradSlot* s) { return static_cast<int64_t>(reinterpret_cast<intptr_t>(s)); }
GradSlot* SlotOf(AutogradContext* ctx) {
  return reinterpret_cast<GradSlot*>(static_cast<intptr_t>(ctx->saved_data["slot"].toInt()));
}

// Per-row 1/rms of x2 [M, d] in fp32: rsqrt(mean(x^2) + eps), one read of x (a norm reduction
// instead of x^2, then its mean).
torch::Tensor InvRms(const torch::Tensor& x2f, double eps) {
  const double d = static_cast<double>(x2f.size(1));
  torch::Tensor n = at::linalg_vector_norm(x2f, 2, at::IntArrayRef{1}, /*keepdim=*/true);
  return torch::rsqrt(n.mul_(n).div_(d).add_(eps));
}

// d loss / d x of the RMSNorm factor: given u = r * (d loss / d (x * r)) [M, d] (in place) and
// r [M, 1], returns u - (r^2 / d) * <u, x> x, the whole input gradient.
torch::Tensor NormBackwardInPlace(torch::Tensor u, const torch::Tensor& x2f,
                                  const torch::Tensor& r) {
  const double d = static_cast<double>(x2f.size(1));
  torch::Tensor s = (u * x2f).sum(1, /*keepdim=*/true);
  return u.addcmul_(x2f, s.mul_(r).mul_(r).div_(-d));
}

class NormLinearFn : public torch::autograd::Function<NormLinearFn> {
 public:
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& x, const torch::Tensor& g,
                               const torch::Tensor& w, double eps, const WeightUse& use) {
    const int64_t d = x.size(-1);
    const at::ScalarType cdt = ComputeDtype(x);
    torch::Tensor x2f = x.reshape({-1, d}).to(torch::kFloat);
    torch::Tensor ws = use.index.defined() ? w.index_select(0, use.index) : w;  // [n, d]
    const int64_t n = ws.size(0);
    torch::Tensor r = InvRms(x2f, eps);  // [M, 1]
    const bool scale_output = n < d;
    torch::Tensor y;
    if (scale_output) {
      // (x r g) W^T = ((x) (W g)^T) r: the gain rides in the gathered weight, r on the output.
      torch::Tensor wg = (ws * g).to(cdt);
      torch::Tensor xc = x2f.to(cdt);
      y = torch::mm(xc, wg.t());
      y.mul_(r.to(cdt));
      ctx->save_for_backward({x2f, xc, r, ws, g, wg, y});
    } else {
      torch::Tensor xr = x2f * r;
      torch::Tensor xn = (xr * g).to(cdt);
      torch::Tensor wc = ws.to(cdt);
      y = torch::mm(xn, wc.t());
      ctx->save_for_backward({x2f, xn, r, xr, g, wc, torch::Tensor()});
    }
    ctx->saved_data["scale_output"] = scale_output;
    ctx->saved_data["w_sizes"] = w.sizes();
    ctx->saved_data["w_dtype"] = static_cast<int64_t>(w.scalar_type());
    ctx->saved_data["x_dtype"] = static_cast<int64_t>(x.scalar_type());
    ctx->saved_data["x_sizes"] = x.sizes();
    SaveWeightUse(ctx, use);
    std::vector<int64_t> out_sizes = x.sizes().vec();
    out_sizes.back() = n;
    return y.view(out_sizes);
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    variable_list s = ctx->get_saved_variables();
    const torch::Tensor& x2f = s[0];
    const torch::Tensor& r = s[2];
    const torch::Tensor& g = s[4];
    const auto w_dtype = static_cast<at::ScalarType>(ctx->saved_data["w_dtype"].toInt());
    const auto x_dtype = static_cast<at::ScalarType>(ctx->saved_data["x_dtype"].toInt());
    const int64_t n = s[5].size(0);
    torch::Tensor gx, gws, gg;
    if (ctx->saved_data["scale_output"].toBool()) {
      const torch::Tensor &xc = s[1], &ws = s[3], &wg = s[5], &y = s[6];
      torch::Tensor gy = grads[0].reshape({-1, n}).to(wg.scalar_type());
      // <dL/d(x r), x r> per row, from the narrow output: <gy, y> (= <gy, z> r, z = y / r).
      torch::Tensor dot = (gy.to(torch::kFloat) * y.to(torch::kFloat)).sum(1, /*keepdim=*/true);
      torch::Tensor gz = gy * r.to(wg.scalar_type());
      torch::Tensor u = torch::mm(gz, wg).to(torch::kFloat);  // r * dL/d(x r)
      torch::Tensor gwg = torch::mm(gz.t(), xc).to(torch::kFloat);
      const double d = static_cast<double>(x2f.size(1));
      gx = u.addcmul_(x2f, dot.mul_(r).mul_(r).div_(-d));
      gg = (gwg * ws).sum(0);
      gws = gwg.mul_(g);
    } else {
      const torch::Tensor &xn = s[1], &xr = s[3], &wc = s[5];
      torch::Tensor gy = grads[0].reshape({-1, n}).to(wc.scalar_type());
      torch::Tensor u = torch::mm(gy, wc).to(torch::kFloat);  // dL/d(x r g)
      gws = torch::mm(gy.t(), xn);
      gg = (u * xr).sum(0);
      gx = NormBackwardInPlace(u.mul_(g).mul_(r), x2f, r);
    }
    gws = gws.to(w_dtype);
    torch::Tensor gw = WeightUseGrad(ctx, gws, ctx->saved_data["w_sizes"].toIntVector(), 0);
    gx = gx.to(x_dtype).view(ctx->saved_data["x_sizes"].toIntVector());
    return {gx, gg.to(g.scalar_type()), gw, torch::Tensor(), torch::Tensor()};
  }
};

class ResidualLinearFn : public torch::autograd::Function<ResidualLinearFn> {
 public:
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& res,
                               const torch::Tensor& a, const torch::Tensor& w,
                               const WeightUse& use) {
    const int64_t k = a.size(-1), d_out = w.size(0);
    const at::ScalarType cdt = ComputeDtype(a);
    torch::Tensor ws = (use.index.defined() ? w.index_select(1, use.index) : w).to(cdt);
    torch::Tensor a2 = a.reshape({-1, k}).to(cdt);
    torch::Tensor res2 = res.reshape({-1, d_out});
    torch::Tensor y;
    if (res2.scalar_type() == cdt) {
      y = torch::addmm(res2, a2, ws.t());
    } else {  // bf16 product, fp32 residual stream: as autocast's linear and the add would do
      y = res2 + torch::mm(a2, ws.t());
    }
    ctx->save_for_backward({a2, ws});
    ctx->saved_data["w_sizes"] = w.sizes();
    ctx->saved_data["w_dtype"] = static_cast<int64_t>(w.scalar_type());
    ctx->saved_data["a_dtype"] = static_cast<int64_t>(a.scalar_type());
    ctx->saved_data["a_sizes"] = a.sizes();
    SaveWeightUse(ctx, use);
    return y.view(res.sizes());
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    variable_list s = ctx->get_saved_variables();
    const torch::Tensor &a2 = s[0], &ws = s[1];
    const auto w_dtype = static_cast<at::ScalarType>(ctx->saved_data["w_dtype"].toInt());
    const auto a_dtype = static_cast<at::ScalarType>(ctx->saved_data["a_dtype"].toInt());
    torch::Tensor gy = grads[0].reshape({-1, ws.size(0)}).to(ws.scalar_type());
    torch::Tensor ga = torch::mm(gy, ws).to(a_dtype).view(ctx->saved_data["a_sizes"].toIntVector());
    torch::Tensor gws = torch::mm(gy.t(), a2).to(w_dtype);
    torch::Tensor gw = WeightUseGrad(ctx, gws, ctx->saved_data["w_sizes"].toIntVector(), 1);
    return {grads[0], ga, gw, torch::Tensor()};
  }
};

// out = x * cos + rotate_half(x) * sin, written into `out` (same shape as x, any strides), with
// rotate_half(x) = [-x2, x1]; sign -1 applies the transpose (the backward).
void RopeInto(torch::Tensor out, const torch::Tensor& x, const torch::Tensor& cos,
              const torch::Tensor& sin, double sign) {
  const int64_t half = x.size(-1) / 2;
  at::mul_out(out, x, cos);
  out.narrow(-1, 0, half).addcmul_(x.narrow(-1, half, half), sin.narrow(-1, 0, half), -sign);
  out.narrow(-1, half, half).addcmul_(x.narrow(-1, 0, half), sin.narrow(-1, half, half), sign);
}

class SplitHeadsRopeFn : public torch::autograd::Function<SplitHeadsRopeFn> {
 public:
  static variable_list forward(AutogradContext* ctx, const torch::Tensor& qkv, int64_t heads,
                               const torch::Tensor& cos, const torch::Tensor& sin) {
    const int64_t B = qkv.size(0), T = qkv.size(1), dh = qkv.size(2) / (3 * heads);
    torch::Tensor parts = qkv.view({B, T, 3, heads, dh}).permute({2, 0, 3, 1, 4});  // [3,B,h,T,dh]
    torch::Tensor q = torch::empty({B, heads, T, dh}, qkv.options());
    torch::Tensor k = torch::empty({B, heads, T, dh}, qkv.options());
    RopeInto(q, parts[0], cos, sin, 1.0);
    RopeInto(k, parts[1], cos, sin, 1.0);
    torch::Tensor v = parts[2].contiguous();
    ctx->saved_data["cos"] = cos;
    ctx->saved_data["sin"] = sin;
    ctx->saved_data["heads"] = heads;
    return {q, k, v};
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const torch::Tensor cos = ctx->saved_data["cos"].toTensor();
    const torch::Tensor sin = ctx->saved_data["sin"].toTensor();
    const int64_t heads = ctx->saved_data["heads"].toInt();
    const torch::Tensor& any = grads[0].defined() ? grads[0] : grads[2];
    const int64_t B = any.size(0), T = any.size(2), dh = any.size(3);
    torch::Tensor g = torch::empty({B, T, 3, heads, dh}, any.options());
    torch::Tensor parts = g.permute({2, 0, 3, 1, 4});
    for (int64_t i = 0; i < 3; ++i) {
      torch::Tensor part = parts[i];
      if (!grads[i].defined()) {
        part.zero_();
      } else if (i < 2) {
        RopeInto(part, grads[i], cos, sin, -1.0);
      } else {
        part.copy_(grads[i]);
      }
    }
    return {g.view({B, T, 3 * heads * dh}), torch::Tensor(), torch::Tensor(), torch::Tensor()};
  }
};

class BlockCausalAttentionFn : public torch::autograd::Function<BlockCausalAttentionFn> {
 public:
  // Query block i is [starts[i], starts[i + 1]); it sees keys [0, starts[i + 1]).
  static std::vector<int64_t> Starts(int64_t T, int64_t blocks) {
    blocks = std::max<int64_t>(1, std::min(blocks, T));
    std::vector<int64_t> starts;
    for (int64_t i = 0; i <= blocks; ++i) starts.push_back(T * i / blocks);
    return starts;
  }

  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& q, const torch::Tensor& k,
                               const torch::Tensor& v, const torch::Tensor& mask, int64_t blocks) {
    const int64_t B = q.size(0), h = q.size(1), T = q.size(2), dh = q.size(3);
    const double scale = 1.0 / std::sqrt(static_cast<double>(dh));
    torch::Tensor q3 = q.reshape({B * h, T, dh}), k3 = k.reshape({B * h, T, dh}),
                  v3 = v.reshape({B * h, T, dh});
    const std::vector<int64_t> starts = Starts(T, blocks);
    torch::Tensor out = torch::empty({B * h, T, dh}, q.options());
    variable_list saved = {q3, k3, v3};
    for (size_t i = 0; i + 1 < starts.size(); ++i) {
      const int64_t t0 = starts[i], tq = starts[i + 1] - t0, tk = starts[i + 1];
      // Under CUDA autocast (bf16 q, k, v) softmax runs in fp32, as autocast runs it.
      torch::Tensor p =
          torch::softmax(torch::baddbmm(mask.narrow(0, t0, tq).narrow(1, 0, tk).to(q.scalar_type()),
                                        q3.narrow(1, t0, tq), k3.narrow(1, 0, tk).transpose(1, 2),
                                        /*beta=*/1.0, /*alpha=*/scale),
                         -1);
      out.narrow(1, t0, tq).copy_(torch::bmm(p.to(v.scalar_type()), v3.narrow(1, 0, tk)));
      saved.push_back(p);
    }
    ctx->save_for_backward(saved);
    ctx->saved_data["blocks"] = blocks;
    return out.view({B, h, T, dh});
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    variable_list s = ctx->get_saved_variables();
    const torch::Tensor &q3 = s[0], &k3 = s[1], &v3 = s[2];
    const int64_t BH = q3.size(0), T = q3.size(1), dh = q3.size(2);
    const double scale = 1.0 / std::sqrt(static_cast<double>(dh));
    const torch::Tensor go = grads[0].reshape({BH, T, dh}).to(q3.scalar_type());
    const std::vector<int64_t> starts = Starts(T, ctx->saved_data["blocks"].toInt());
    // Zeroed: baddbmm_ with beta 0 still propagates NaN from uninitialised memory (LibTorch 1.13).
    torch::Tensor gq = torch::zeros_like(q3);
    torch::Tensor gk = torch::zeros_like(k3);
    torch::Tensor gv = torch::zeros_like(v3);
    for (size_t i = 0; i + 1 < starts.size(); ++i) {
      const int64_t t0 = starts[i], tq = starts[i + 1] - t0, tk = starts[i + 1];
      const torch::Tensor& p = s[3 + i];  // fp32 under autocast; q, k, v's dtype otherwise
      const at::ScalarType cdt = q3.scalar_type();
      torch::Tensor goi = go.narrow(1, t0, tq);
      gv.narrow(1, 0, tk).baddbmm_(p.to(cdt).transpose(1, 2), goi);
      torch::Tensor gs =
          torch::_softmax_backward_data(
              torch::bmm(goi, v3.narrow(1, 0, tk).transpose(1, 2)).to(p.scalar_type()), p, -1,
              p.scalar_type())
              .to(cdt);
      gq.narrow(1, t0, tq).baddbmm_(gs, k3.narrow(1, 0, tk), 1.0, scale);
      gk.narrow(1, 0, tk).baddbmm_(gs.transpose(1, 2), q3.narrow(1, t0, tq), 1.0, scale);
    }
    const auto sizes = grads[0].sizes();
    return {gq.view(sizes), gk.view(sizes), gv.view(sizes), torch::Tensor(), torch::Tensor()};
  }
};

}  // namespace

void SaveWeightUse(AutogradContext* ctx, const WeightUse& use) {
  ctx->saved_data["slot"] = SlotKey(use.slot);
  ctx->saved_data["forward_id"] = use.forward_id;
  ctx->saved_data["gathered"] = use.index.defined();
  if (use.index.defined()) ctx->saved_data["index"] = use.index;
}

torch::Tensor WeightUseGrad(AutogradContext* ctx, torch::Tensor g, at::IntArrayRef w_sizes,
                         int64_t dim) {
  GradSlot* slot = SlotOf(ctx);
  const int64_t id = ctx->saved_data["forward_id"].toInt();
  if (!ctx->saved_data["gathered"].toBool()) {
    if (slot != nullptr) slot->DrainInto(id, g);
    return g;
  }
  torch::Tensor index = ctx->saved_data["index"].toTensor();
  if (slot != nullptr) {
    slot->dim = dim;
    slot->Add(id, index, g);
    return {};  // the base pass of this layer adds it (GradSlot)
  }
  return torch::zeros(w_sizes, g.options()).index_add_(dim, index, g);
}

at::ScalarType ComputeDtype(const torch::Tensor& x) {
  if (x.is_cuda()) {
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
    if (at::autocast::is_autocast_enabled(at::kCUDA))
      return at::autocast::get_autocast_dtype(at::kCUDA);
#else
    if (at::autocast::is_enabled()) return at::autocast::get_autocast_gpu_dtype();
#endif
  }
  return x.scalar_type();
}

void GradSlot::Add(int64_t forward_id, const torch::Tensor& idx, const torch::Tensor& g) {
  if (id != forward_id || !grad.defined()) {
    id = forward_id;
    index = idx;
    grad = g;
    return;
  }
  grad.add_(g);
}

void GradSlot::DrainInto(int64_t forward_id, torch::Tensor& full) {
  if (id == forward_id && grad.defined()) full.index_add_(dim, index, grad);
  grad = torch::Tensor();
  index = torch::Tensor();
  id = -1;
}

torch::Tensor NormLinear(const torch::Tensor& x, const torch::Tensor& g, const torch::Tensor& w,
                         double eps, const WeightUse& use) {
  return NormLinearFn::apply(x, g, w, eps, use);
}

torch::Tensor ResidualLinear(const torch::Tensor& res, const torch::Tensor& a,
                             const torch::Tensor& w, const WeightUse& use) {
  return ResidualLinearFn::apply(res, a, w, use);
}

std::vector<torch::Tensor> SplitHeadsRope(const torch::Tensor& qkv, int64_t heads,
                                          const torch::Tensor& cos, const torch::Tensor& sin) {
  return SplitHeadsRopeFn::apply(qkv, heads, cos, sin);
}

torch::Tensor BlockCausalAttention(const torch::Tensor& q, const torch::Tensor& k,
                                   const torch::Tensor& v, const torch::Tensor& mask,
                                   int64_t blocks) {
  return BlockCausalAttentionFn::apply(q, k, v, mask, blocks);
}

}  // namespace sgt
