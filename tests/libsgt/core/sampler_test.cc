// Tests for the window samplers: determinism (resumed runs depend on it), range, slicing across
// workers, and the evenly spaced evaluation windows.
#include "libsgt/core/sampler.h"

#include <set>
#include <vector>

#include "gtest/gtest.h"

namespace sgt {
namespace {

TEST(SamplerTest, SplitMix64KnownValues) {
  // Reference outputs of splitmix64 seeded with 0 (first two draws), i.e. SplitMix64(0) and
  // SplitMix64(0x9e3779b97f4a7c15): pins the constants, since checkpoints depend on them.
  EXPECT_EQ(SplitMix64(0), 0xe220a8397b1dcdafULL);
  EXPECT_EQ(SplitMix64(0x9e3779b97f4a7c15ULL), 0x6e789e6aa1b965f4ULL);
  EXPECT_NE(SplitMix64(1), SplitMix64(2));
}

TEST(SamplerTest, TrainStartsFrozen) {
  // The documented formula, recomputed here: if this fails, resumed runs change their data.
  const uint64_t seed = 7;
  const int64_t step = 3, j = 5, n = 1000, w = 17;
  const uint64_t h = SplitMix64(SplitMix64(SplitMix64(seed) ^ uint64_t{3}) ^ uint64_t{5});
  EXPECT_EQ(TrainWindowStarts(seed, step, j, 1, n, w)[0], static_cast<int64_t>(h % (n - w + 1)));
}

TEST(SamplerTest, TrainDeterministic) {
  EXPECT_EQ(TrainWindowStarts(1, 10, 0, 64, 100000, 129),
            TrainWindowStarts(1, 10, 0, 64, 100000, 129));
}

TEST(SamplerTest, TrainDiffersAcrossStepsAndSeeds) {
  const auto a = TrainWindowStarts(1, 10, 0, 64, 100000, 129);
  EXPECT_NE(a, TrainWindowStarts(1, 11, 0, 64, 100000, 129));
  EXPECT_NE(a, TrainWindowStarts(2, 10, 0, 64, 100000, 129));
  // Not just a shift of the same sequence: (step, j) vs (step + 1, j - 1) must differ.
  const auto b = TrainWindowStarts(1, 11, 0, 64, 100000, 129);
  int same = 0;
  for (int i = 1; i < 64; ++i) same += a[i] == b[i - 1];
  EXPECT_LT(same, 3);
}

TEST(SamplerTest, TrainStartsInRangeAndWindowsFit) {
  const int64_t n = 5000, w = 257;
  std::set<int64_t> distinct;
  for (int64_t step = 0; step < 50; ++step) {
    for (int64_t s : TrainWindowStarts(42, step, 0, 100, n, w)) {
      ASSERT_GE(s, 0);
      ASSERT_LE(s + w, n);
      distinct.insert(s);
    }
  }
  // 5000 draws over 4744 starts: a uniform sampler hits well over half of them.
  EXPECT_GT(distinct.size(), 2500u);
  // Both ends of the range are reachable; a window that fills the file has a single start.
  EXPECT_EQ(TrainWindowStarts(1, 0, 0, 10, 100, 100), std::vector<int64_t>(10, 0));
}

TEST(SamplerTest, TrainSlicesConcatenate) {
  // Workers that each take a slice of the step's sequences read what one worker would.
  auto all = TrainWindowStarts(9, 123, 0, 8, 1 << 20, 1025);
  auto lo = TrainWindowStarts(9, 123, 0, 4, 1 << 20, 1025);
  auto hi = TrainWindowStarts(9, 123, 4, 4, 1 << 20, 1025);
  lo.insert(lo.end(), hi.begin(), hi.end());
  EXPECT_EQ(all, lo);
  EXPECT_TRUE(TrainWindowStarts(9, 123, 4, 0, 1 << 20, 1025).empty());
}

TEST(SamplerTest, EvalEvenlySpaced) {
  // span = 100 - 10 = 90 over 4 gaps: 0, 22.5, 45, 67.5, 90 floored.
  EXPECT_EQ(EvalWindowStarts(5, 100, 10), (std::vector<int64_t>{0, 22, 45, 67, 90}));
  const auto starts = EvalWindowStarts(7, 1000, 100);
  EXPECT_EQ(starts.front(), 0);
  EXPECT_EQ(starts.back(), 900);  // the last window ends at the end of the file
  for (size_t i = 1; i < starts.size(); ++i) EXPECT_GT(starts[i], starts[i - 1]);
}

TEST(SamplerTest, EvalEdgeCases) {
  EXPECT_TRUE(EvalWindowStarts(0, 100, 10).empty());
  EXPECT_EQ(EvalWindowStarts(1, 100, 10), std::vector<int64_t>{0});
  // A file exactly one window long: every window is the whole file.
  EXPECT_EQ(EvalWindowStarts(3, 10, 10), (std::vector<int64_t>{0, 0, 0}));
  // More windows than starts: they overlap but stay in range and ordered.
  const auto dense = EvalWindowStarts(20, 12, 10);
  ASSERT_EQ(dense.size(), 20u);
  EXPECT_EQ(dense.back(), 2);
  for (size_t i = 1; i < dense.size(); ++i) EXPECT_GE(dense[i], dense[i - 1]);
  // Sizes whose product would overflow int64 still come out exact.
  const int64_t huge = int64_t{1} << 50;
  const auto big = EvalWindowStarts(1 << 20, huge, 1);
  EXPECT_EQ(big.back(), huge - 1);
  EXPECT_EQ(big[1], (huge - 1) / ((1 << 20) - 1));
}

TEST(SamplerDeathTest, WindowLongerThanFileAborts) {
  EXPECT_DEATH(TrainWindowStarts(1, 0, 0, 1, 10, 11), "window <= num_tokens");
  EXPECT_DEATH(EvalWindowStarts(1, 10, 11), "window <= num_tokens");
}

}  // namespace
}  // namespace sgt
