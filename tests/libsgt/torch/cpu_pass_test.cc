// The fused CPU ends of an attention pass (libsgt/torch/cpu_pass.h) against their textbook forms:
// RMSNorm, the projection, the split into heads and RoPE; the merge of the heads, the output
// projection and the residual add. Forward and every input's gradient.
#include "libsgt/torch/cpu_pass.h"

#include <ATen/Parallel.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "libsgt/torch/model.h"
#include "tests/libsgt/torch/tensor_test_util.h"

namespace sgt {
namespace {

// |got - want| within 1e-5 of want's scale.
void ExpectClose(const torch::Tensor& got, const torch::Tensor& want, const std::string& where) {
  ASSERT_TRUE(got.defined()) << where;
  ASSERT_EQ(got.sizes(), want.sizes()) << where;
  EXPECT_LE(MaxAbs(got - want), 1e-5 * std::max(1.0, MaxAbs(want))) << where;
}

bool Built() { return CpuPassSupports(torch::zeros({1})); }

constexpr int64_t kHeads = 4, kHeadDim = 8, kWidth = kHeads * kHeadDim;

// The rows of W_QKV (q, k, v parts) and the columns of W_O of `heads`, as the model gathers them.
torch::Tensor QkvRows(const std::vector<int64_t>& heads) {
  std::vector<int64_t> rows;
  for (int64_t part = 0; part < 3; ++part) {
    for (int64_t h : heads) {
      for (int64_t c = 0; c < kHeadDim; ++c) rows.push_back(part * kWidth + h * kHeadDim + c);
    }
  }
  return torch::tensor(rows, torch::kLong);
}

torch::Tensor OutCols(const std::vector<int64_t>& heads) {
  std::vector<int64_t> cols;
  for (int64_t h : heads) {
    for (int64_t c = 0; c < kHeadDim; ++c) cols.push_back(h * kHeadDim + c);
  }
  return torch::tensor(cols, torch::kLong);
}

// Rotary tables as the model's cache builds them (each position's angles twice, for both halves).
std::pair<torch::Tensor, torch::Tensor> Rotary(int64_t T) {
  RotaryCache cache(kHeadDim, 10000.0);
  return cache.Get(T, torch::kCPU, torch::kFloat);
}

// The cases both ends are checked on: 1 and 2 threads; B x T rows below one block, across several
// blocks and not a multiple of the block; 1, 2 or 3 of 4 heads gathered (unsorted) or all (empty).
// Calls f(heads, B, T, a description of the case) with the thread count set.
template <typename F>
void ForEachCase(const F& f) {
  const std::vector<std::vector<int64_t>> head_sets = {{2}, {3, 0}, {1, 3, 2}, {}};
  for (int threads : {1, 2}) {
    ThreadCount guard(threads);
    for (auto [B, T] : std::vector<std::pair<int64_t, int64_t>>{{1, 3}, {3, 50}, {2, 257}}) {
      for (const std::vector<int64_t>& heads : head_sets) {
        f(heads, B, T,
          "threads " + std::to_string(threads) + " B " + std::to_string(B) + " T " +
              std::to_string(T) + " heads " + std::to_string(heads.size()));
      }
    }
  }
}

// The textbook form of NormQkvRopeCpu: full-width RMSNorm, the gathered rows, a view into heads,
// RoPE by concatenation.
std::vector<torch::Tensor> TextbookQkv(const torch::Tensor& x, const torch::Tensor& g,
                                       const torch::Tensor& w, const torch::Tensor& rows, int64_t h,
                                       const torch::Tensor& cos, const torch::Tensor& sin) {
  const int64_t B = x.size(0), T = x.size(1);
  torch::Tensor qkv =
      torch::linear(RmsNorm(x, g, 1e-5), rows.defined() ? w.index_select(0, rows) : w);
  torch::Tensor parts = qkv.view({B, T, 3, h, kHeadDim}).permute({2, 0, 3, 1, 4});
  return {ApplyRope(parts[0], cos, sin), ApplyRope(parts[1], cos, sin), parts[2]};
}

// Every case of ForEachCase, with upstream gradients for all of q, k, v or for some of them only.
TEST(CpuPass, NormQkvRopeEqualsTheTextbookFormInValueAndGradients) {
  if (!Built()) GTEST_SKIP() << "no CPU pass in this build (LibTorch 2.x)";
  torch::manual_seed(21);
  ForEachCase(
      [](const std::vector<int64_t>& heads, int64_t B, int64_t T, const std::string& which) {
        for (int used : {0b111, 0b101, 0b010}) {  // which of q, k, v the loss reads
          const std::string where = which + " used " + std::to_string(used);
          const int64_t h = heads.empty() ? kHeads : static_cast<int64_t>(heads.size());
          const torch::Tensor rows = heads.empty() ? torch::Tensor() : QkvRows(heads);
          torch::Tensor x = torch::randn({B, T, kWidth}, torch::requires_grad());
          torch::Tensor g = (1 + 0.3 * torch::randn({kWidth})).requires_grad_();
          torch::Tensor w = (0.2 * torch::randn({3 * kWidth, kWidth})).requires_grad_();
          auto [cos, sin] = Rotary(T);
          std::vector<torch::Tensor> up;
          for (int i = 0; i < 3; ++i) up.push_back(torch::randn({B, h, T, kHeadDim}));
          auto loss = [&](const std::vector<torch::Tensor>& qkv) {
            torch::Tensor l = torch::zeros({});
            for (int i = 0; i < 3; ++i) {
              if (used & (1 << i)) l = l + (qkv[i] * up[i]).sum();
            }
            return l;
          };
          std::vector<torch::Tensor> want = TextbookQkv(x, g, w, rows, h, cos, sin);
          auto want_grads = torch::autograd::grad({loss(want)}, {x, g, w});
          std::vector<torch::Tensor> got =
              NormQkvRopeCpu(x, g, w, 1e-5, {rows, nullptr, -1}, h, cos, sin);
          for (int i = 0; i < 3; ++i) {
            ExpectClose(got[i], want[i], where + " output " + std::to_string(i));
            EXPECT_TRUE(got[i].is_contiguous()) << where;
          }
          auto got_grads = torch::autograd::grad({loss(got)}, {x, g, w});
          ExpectClose(got_grads[0], want_grads[0], where + " dx");
          ExpectClose(got_grads[1], want_grads[1], where + " dg");
          ExpectClose(got_grads[2], want_grads[2], where + " dW");
        }
      });
}

// The textbook form of OutProjResidualCpu: scale each head, merge the heads, project, add.
torch::Tensor TextbookOut(const torch::Tensor& res, const torch::Tensor& o, const torch::Tensor& w,
                          const torch::Tensor& cols, const torch::Tensor& scale) {
  const int64_t B = o.size(0), h = o.size(1), T = o.size(2);
  torch::Tensor s = scale.defined() ? o * scale.view({1, h, 1, 1}) : o;
  torch::Tensor merged = s.transpose(1, 2).reshape({B, T, h * kHeadDim});
  return res + torch::linear(merged, cols.defined() ? w.index_select(1, cols) : w);
}

TEST(CpuPass, OutProjResidualEqualsTheTextbookFormInValueAndGradients) {
  if (!Built()) GTEST_SKIP() << "no CPU pass in this build (LibTorch 2.x)";
  torch::manual_seed(22);
  ForEachCase(
      [](const std::vector<int64_t>& heads, int64_t B, int64_t T, const std::string& which) {
        for (bool scaled : {false, true}) {
          const std::string where = which + " scaled " + std::to_string(scaled);
          const int64_t h = heads.empty() ? kHeads : static_cast<int64_t>(heads.size());
          const torch::Tensor cols = heads.empty() ? torch::Tensor() : OutCols(heads);
          torch::Tensor res = torch::randn({B, T, kWidth}, torch::requires_grad());
          // A strided o (the kernel gives a contiguous one): any strides must be taken.
          torch::Tensor o = torch::randn({B, T, h, kHeadDim}).transpose(1, 2).requires_grad_();
          torch::Tensor w = (0.2 * torch::randn({kWidth, kWidth})).requires_grad_();
          torch::Tensor scale = scaled ? torch::rand({h}) : torch::Tensor();
          torch::Tensor up = torch::randn({B, T, kWidth});
          torch::Tensor want = TextbookOut(res, o, w, cols, scale);
          auto want_grads = torch::autograd::grad({(want * up).sum()}, {res, o, w});
          torch::Tensor got = OutProjResidualCpu(res, o, w, {cols, nullptr, -1}, scale);
          ExpectClose(got, want, where + " output");
          auto got_grads = torch::autograd::grad({(got * up).sum()}, {res, o, w});
          ExpectClose(got_grads[0], want_grads[0], where + " dres");
          ExpectClose(got_grads[1], want_grads[1], where + " do");
          ExpectClose(got_grads[2], want_grads[2], where + " dW");
        }
      });
}

// A gathered use with a slot leaves its weight gradient there, and the whole use of the same
// forward adds it into the full gradient: what the base pass does for its loop passes.
TEST(CpuPass, GatheredWeightGradientsGoThroughTheSlot) {
  if (!Built()) GTEST_SKIP() << "no CPU pass in this build (LibTorch 2.x)";
  torch::manual_seed(23);
  const int64_t B = 2, T = 9;
  torch::Tensor x = torch::randn({B, T, kWidth});
  torch::Tensor g = torch::ones({kWidth}, torch::requires_grad());
  torch::Tensor wqkv = (0.2 * torch::randn({3 * kWidth, kWidth})).requires_grad_();
  torch::Tensor wo = (0.2 * torch::randn({kWidth, kWidth})).requires_grad_();
  auto [cos, sin] = Rotary(T);
  const std::vector<int64_t> heads = {1, 3};
  auto pass = [&](const torch::Tensor& in, bool gathered, GradSlot* qkv_slot, GradSlot* o_slot) {
    const torch::Tensor rows = gathered ? QkvRows(heads) : torch::Tensor();
    const torch::Tensor cols = gathered ? OutCols(heads) : torch::Tensor();
    const int64_t h = gathered ? 2 : kHeads;
    std::vector<torch::Tensor> qkv =
        NormQkvRopeCpu(in, g, wqkv, 1e-5, {rows, qkv_slot, 7}, h, cos, sin);
    return OutProjResidualCpu(in, qkv[2] * qkv[0].sigmoid(), wo, {cols, o_slot, 7}, {});
  };
  torch::Tensor up = torch::randn({B, T, kWidth});
  (pass(pass(x, false, nullptr, nullptr), true, nullptr, nullptr) * up).sum().backward();
  const torch::Tensor want_qkv = wqkv.grad().clone(), want_o = wo.grad().clone();
  wqkv.mutable_grad() = torch::Tensor();
  wo.mutable_grad() = torch::Tensor();

  GradSlot qkv_slot, o_slot;
  (pass(pass(x, false, &qkv_slot, &o_slot), true, &qkv_slot, &o_slot) * up).sum().backward();
  ExpectClose(wqkv.grad(), want_qkv, "W_QKV through the slot");
  ExpectClose(wo.grad(), want_o, "W_O through the slot");
  EXPECT_FALSE(qkv_slot.grad.defined());  // drained by the whole use
  EXPECT_FALSE(o_slot.grad.defined());
}

TEST(CpuPass, RejectsInputItCannotTake) {
  if (!Built()) GTEST_SKIP() << "no CPU pass in this build (LibTorch 2.x)";
  auto [cos, sin] = Rotary(5);
  torch::Tensor x = torch::randn({2, 5, kWidth});
  torch::Tensor g = torch::ones({kWidth});
  torch::Tensor w = torch::randn({3 * kWidth, kWidth});
  auto qkv_error = [&](const torch::Tensor& xx, const torch::Tensor& ww, int64_t h) {
    try {
      NormQkvRopeCpu(xx, g, ww, 1e-5, {}, h, cos, sin);
    } catch (const c10::Error& e) {
      return std::string(e.what_without_backtrace());
    }
    return std::string();
  };
  EXPECT_NE(qkv_error(x.to(torch::kDouble), w, kHeads).find("float32"), std::string::npos);
  EXPECT_NE(qkv_error(x, w.narrow(1, 0, 8), kHeads).find("w [rows, d]"), std::string::npos);
  EXPECT_NE(qkv_error(x, w, 5).find("3 x heads"), std::string::npos);
  EXPECT_NE(qkv_error(x.narrow(1, 0, 4), w, kHeads).find("cos and sin"), std::string::npos);
  try {
    OutProjResidualCpu(x, torch::randn({2, 3, 5, kHeadDim}), torch::randn({kWidth, kWidth}), {},
                       {});
    ADD_FAILURE() << "3 heads against 4 heads' columns passed";
  } catch (const c10::Error& e) {
    EXPECT_NE(std::string(e.what_without_backtrace()).find("h x d_head"), std::string::npos);
  }
}

}  // namespace
}  // namespace sgt
