// The CPU attention kernel (libsgt/torch/cpu_attention.h) against the textbook form: the whole
// masked T x T scores, softmax, then the values; forward and the three input gradients.
#include "libsgt/torch/cpu_attention.h"

#include <ATen/Parallel.h>
#include <gtest/gtest.h>
#include <torch/version.h>

#include <cmath>
#include <string>

#include "tests/libsgt/torch/tensor_test_util.h"

namespace sgt {
namespace {

torch::Tensor Textbook(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v) {
  const int64_t T = q.size(2);
  torch::Tensor mask = torch::full({T, T}, -INFINITY).triu(1);
  torch::Tensor scores = torch::matmul(q, k.transpose(-2, -1)) / std::sqrt(double(q.size(3)));
  return torch::matmul(torch::softmax(scores + mask, -1), v);
}

bool Built() { return CpuAttentionSupports(torch::zeros({1})); }

// T below, at and above a block's rows and not a multiple of them; blocks of 1 row (every score
// block a single query), 7 and 64 rows; 1 and 2 threads (the pairs then split between threads).
TEST(CpuAttention, EqualsTheTextbookFormInValueAndGradients) {
  if (!Built()) GTEST_SKIP() << "no CPU attention kernel in this build (LibTorch 2.x)";
  torch::manual_seed(11);
  for (int threads : {1, 2}) {
    ThreadCount guard(threads);
    for (int64_t T : {1, 5, 7, 64, 65, 130}) {
      for (int64_t rows : {1, 7, 64}) {
        const std::string where = "threads " + std::to_string(threads) + " T " + std::to_string(T) +
                                  " rows " + std::to_string(rows);
        auto make = [&] { return torch::randn({2, 3, T, 8}, torch::requires_grad()); };
        torch::Tensor q = make(), k = make(), v = make();
        torch::Tensor want = Textbook(q, k, v);
        torch::Tensor dy = torch::randn_like(want);
        auto wg = torch::autograd::grad({want}, {q, k, v}, {dy});
        torch::Tensor got = CausalAttentionCpu(q, k, v, rows);
        auto gg = torch::autograd::grad({got}, {q, k, v}, {dy});
        EXPECT_LT(MaxAbs(got - want), 1e-5) << where;
        for (size_t i = 0; i < 3; ++i) {
          EXPECT_LT(MaxAbs(gg[i] - wg[i]), 1e-5 * std::max(1.0, MaxAbs(wg[i])))
              << where << " input " << i;
        }
      }
    }
  }
}

// Strided inputs (the textbook RoPE path hands over views of the fused projection), gradients
// for only some inputs, and no gradients at all (the forward then keeps no attention weights)
// give the same values.
TEST(CpuAttention, TakesViewsAndWorksWithAndWithoutGradients) {
  if (!Built()) GTEST_SKIP() << "no CPU attention kernel in this build (LibTorch 2.x)";
  torch::manual_seed(12);
  const int64_t B = 2, h = 4, T = 70, dh = 16;
  torch::Tensor qkv = torch::randn({B, T, 3, h, dh}, torch::requires_grad());
  torch::Tensor parts = qkv.permute({2, 0, 3, 1, 4});  // [3, B, h, T, dh], strided
  torch::Tensor q = parts[0], k = parts[1], v = parts[2];
  ASSERT_FALSE(q.is_contiguous());
  torch::Tensor want = Textbook(q, k, v);
  torch::Tensor dy = torch::randn_like(want);
  torch::Tensor got = CausalAttentionCpu(q, k, v);
  EXPECT_LT(MaxAbs(got - want), 1e-5);
  torch::Tensor g_want = torch::autograd::grad({want}, {qkv}, {dy})[0];
  torch::Tensor g_got = torch::autograd::grad({got}, {qkv}, {dy})[0];
  EXPECT_LT(MaxAbs(g_got - g_want), 1e-5 * std::max(1.0, MaxAbs(g_want)));

  torch::Tensor vq = torch::randn({B, h, T, dh}, torch::requires_grad());
  torch::Tensor kc = k.detach().contiguous(), vc = v.detach().contiguous();
  torch::Tensor only_q = CausalAttentionCpu(vq, kc, vc);
  torch::Tensor gq = torch::autograd::grad({only_q}, {vq}, {dy})[0];
  torch::Tensor gq_want = torch::autograd::grad({Textbook(vq, kc, vc)}, {vq}, {dy})[0];
  EXPECT_LT(MaxAbs(gq - gq_want), 1e-5 * std::max(1.0, MaxAbs(gq_want)));

  torch::NoGradGuard no_grad;
  torch::Tensor plain = CausalAttentionCpu(q, k, v);
  EXPECT_FALSE(plain.requires_grad());
  EXPECT_LT(MaxAbs(plain - want.detach()), 1e-5);
}

// Nothing above the diagonal leaks in: changing a later key or value leaves earlier outputs
// exactly as they were.
TEST(CpuAttention, IsCausal) {
  if (!Built()) GTEST_SKIP() << "no CPU attention kernel in this build (LibTorch 2.x)";
  torch::manual_seed(13);
  torch::Tensor q = torch::randn({1, 2, 100, 8}), k = torch::randn_like(q),
                v = torch::randn_like(q);
  torch::Tensor before = CausalAttentionCpu(q, k, v, 16);
  k.narrow(2, 60, 40).add_(5.0);
  v.narrow(2, 60, 40).mul_(-3.0);
  torch::Tensor after = CausalAttentionCpu(q, k, v, 16);
  EXPECT_TRUE(torch::equal(before.narrow(2, 0, 60), after.narrow(2, 0, 60)));
  EXPECT_FALSE(torch::equal(before.narrow(2, 60, 40), after.narrow(2, 60, 40)));
}

TEST(CpuAttention, RefusesWhatItCannotTake) {
  if (!Built()) {
    EXPECT_THROW(CausalAttentionCpu(torch::zeros({1, 1, 2, 2}), torch::zeros({1, 1, 2, 2}),
                                    torch::zeros({1, 1, 2, 2})),
                 c10::Error);
    return;
  }
  torch::Tensor x = torch::zeros({1, 1, 4, 2});
  EXPECT_FALSE(CpuAttentionSupports(x.to(torch::kDouble)));
  EXPECT_THROW(CausalAttentionCpu(x.to(torch::kDouble), x, x), c10::Error);
  EXPECT_THROW(CausalAttentionCpu(x, torch::zeros({1, 1, 5, 2}), x), c10::Error);
  EXPECT_THROW(CausalAttentionCpu(x, x, x, 0), c10::Error);
}

}  // namespace
}  // namespace sgt
