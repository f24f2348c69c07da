// Tests of the fused autograd functions (libsgt/torch/fused.h) against their textbook forms, and
// of the gradient slot through which a loop pass hands its weight gradient to the base pass.
#include "libsgt/torch/fused.h"

#include <gtest/gtest.h>

#include <cmath>

#include "tests/libsgt/torch/tensor_test_util.h"

namespace sgt {
namespace {

torch::Tensor Rms(const torch::Tensor& x, const torch::Tensor& g, double eps) {
  return x * torch::rsqrt(x.pow(2).mean(-1, true) + eps) * g;
}

// Both forms of NormLinear (output narrower than the input: gain folded into the gathered rows;
// wider: the normalised input formed once) against RMSNorm then linear, forward and gradients.
TEST(Fused, NormLinearEqualsRmsNormThenLinear) {
  torch::manual_seed(4);
  const int64_t d = 16;
  for (int64_t n_rows : {4, 12, 24}) {
    torch::Tensor x = torch::randn({2, 5, d}, torch::requires_grad());
    torch::Tensor g = (torch::rand({d}) + 0.5).requires_grad_();
    torch::Tensor w = torch::randn({24, d}, torch::requires_grad());
    torch::Tensor rows = torch::randperm(24, torch::kLong).narrow(0, 0, n_rows);
    torch::Tensor idx = n_rows < 24 ? rows : torch::Tensor();
    torch::Tensor dy = torch::randn({2, 5, n_rows});

    torch::Tensor got = NormLinear(x, g, w, 1e-6, {idx, nullptr, -1});
    torch::autograd::variable_list gg = torch::autograd::grad({got}, {x, g, w}, {dy});
    torch::Tensor ws = idx.defined() ? w.index_select(0, idx) : w;
    torch::Tensor want = torch::linear(Rms(x, g, 1e-6), ws);
    torch::autograd::variable_list wg = torch::autograd::grad({want}, {x, g, w}, {dy});
    EXPECT_LT(MaxAbs(got - want), 1e-5) << n_rows;
    for (size_t i = 0; i < 3; ++i) {
      EXPECT_LE(MaxAbs(gg[i] - wg[i]), 1e-5 * MaxAbs(wg[i])) << n_rows << " input " << i;
    }
  }
}

TEST(Fused, ResidualLinearAndSplitHeadsRopeEqualTheirTextbookForms) {
  torch::manual_seed(5);
  const int64_t B = 2, T = 6, h = 3, dh = 4;
  torch::Tensor res = torch::randn({B, T, 8}, torch::requires_grad());
  torch::Tensor a = torch::randn({B, T, 2 * dh}, torch::requires_grad());
  torch::Tensor w = torch::randn({8, 4 * dh}, torch::requires_grad());
  torch::Tensor cols = torch::tensor({12, 13, 14, 15, 0, 1, 2, 3}, torch::kLong);
  torch::Tensor got = ResidualLinear(res, a, w, {cols, nullptr, -1});
  torch::Tensor want = res + torch::linear(a, w.index_select(1, cols));
  torch::Tensor dy = torch::randn_like(want);
  auto gg = torch::autograd::grad({got}, {res, a, w}, {dy});
  auto wg = torch::autograd::grad({want}, {res, a, w}, {dy});
  EXPECT_LT(MaxAbs(got - want), 1e-5);
  for (size_t i = 0; i < 3; ++i) EXPECT_LT(MaxAbs(gg[i] - wg[i]), 1e-5) << i;

  torch::Tensor qkv = torch::randn({B, T, 3 * h * dh}, torch::requires_grad());
  torch::Tensor ang = torch::rand({T, dh / 2}) * 3;
  ang = torch::cat({ang, ang}, -1);
  torch::Tensor cos = ang.cos(), sin = ang.sin();
  std::vector<torch::Tensor> split = SplitHeadsRope(qkv, h, cos, sin);
  torch::Tensor parts = qkv.view({B, T, 3, h, dh}).permute({2, 0, 3, 1, 4});
  auto rope = [&](const torch::Tensor& x) {
    return x * cos + torch::cat({-x.narrow(-1, dh / 2, dh / 2), x.narrow(-1, 0, dh / 2)}, -1) * sin;
  };
  std::vector<torch::Tensor> ref = {rope(parts[0]), rope(parts[1]), parts[2]};
  std::vector<torch::Tensor> dys;
  for (int i = 0; i < 3; ++i) {
    EXPECT_TRUE(split[i].is_contiguous());
    EXPECT_LT(MaxAbs(split[i] - ref[i]), 1e-6) << i;
    dys.push_back(torch::randn_like(ref[i]));
  }
  torch::Tensor g1 = torch::autograd::grad(split, {qkv}, dys)[0];
  torch::Tensor g2 = torch::autograd::grad(ref, {qkv}, dys)[0];
  EXPECT_LT(MaxAbs(g1 - g2), 1e-6);
}

// Any number of query blocks, T divisible by it or not, against the whole masked T x T form.
TEST(Fused, BlockCausalAttentionEqualsTheMaskedFullMatrix) {
  torch::manual_seed(6);
  const int64_t B = 2, h = 3, T = 11, dh = 4;
  torch::Tensor q = torch::randn({B, h, T, dh}, torch::requires_grad());
  torch::Tensor k = torch::randn({B, h, T, dh}, torch::requires_grad());
  torch::Tensor v = torch::randn({B, h, T, dh}, torch::requires_grad());
  torch::Tensor mask = torch::full({T, T}, -INFINITY).triu(1);
  torch::Tensor want =
      torch::matmul(torch::softmax(torch::matmul(q, k.transpose(-2, -1)) / 2.0 + mask, -1), v);
  torch::Tensor dy = torch::randn_like(want);
  auto wg = torch::autograd::grad({want}, {q, k, v}, {dy});
  for (int64_t blocks : {1, 2, 3, 4, 5, 11}) {
    torch::Tensor got = BlockCausalAttention(q, k, v, mask, blocks);
    auto gg = torch::autograd::grad({got}, {q, k, v}, {dy});
    EXPECT_LT(MaxAbs(got - want), 1e-5) << blocks;
    for (size_t i = 0; i < 3; ++i) EXPECT_LT(MaxAbs(gg[i] - wg[i]), 1e-5) << blocks << " " << i;
  }
}

// A loop pass's gathered gradient reaches the weight only through the base pass of its own
// forward; one from another forward is dropped.
TEST(Fused, GradSlotHandsTheGatheredGradientToItsOwnBasePass) {
  GradSlot slot;
  slot.dim = 0;
  torch::Tensor idx = torch::tensor({2, 0}, torch::kLong);
  slot.Add(7, idx, torch::ones({2, 3}));
  slot.Add(7, idx, torch::ones({2, 3}));
  torch::Tensor full = torch::zeros({4, 3});
  slot.DrainInto(7, full);
  EXPECT_EQ(full[2][1].item<float>(), 2.0f);
  EXPECT_EQ(full[0][0].item<float>(), 2.0f);
  EXPECT_EQ(full[1][0].item<float>(), 0.0f);
  EXPECT_FALSE(slot.grad.defined());

  slot.Add(8, idx, torch::ones({2, 3}));  // its base pass never ran backward
  slot.Add(9, idx, torch::full({2, 3}, 5.0));
  torch::Tensor next = torch::zeros({4, 3});
  slot.DrainInto(9, next);
  EXPECT_EQ(next[2][0].item<float>(), 5.0f);
  slot.Add(10, idx, torch::ones({2, 3}));
  torch::Tensor other = torch::zeros({4, 3});
  slot.DrainInto(11, other);
  EXPECT_EQ(MaxAbs(other), 0.0);
  EXPECT_FALSE(slot.grad.defined());
}

}  // namespace
}  // namespace sgt
