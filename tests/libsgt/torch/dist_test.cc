// The communicator and the gradient averager over real c10d Gloo, two ranks on loopback in one
// process (a thread each): libsgt/torch/dist.h.
#include "libsgt/torch/dist.h"

#include <arpa/inet.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <functional>
#include <thread>
#include <vector>

namespace sgt {
namespace {

// A loopback port nothing listens on right now.
int FreePort() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  EXPECT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(fd);
  return ntohs(a.sin_port);
}

DistEnv Env(int rank, int world, int port, double timeout_s = 60) {
  DistEnv e;
  e.rank = rank;
  e.world_size = world;
  e.local_rank = rank;
  e.local_world_size = world;
  e.master_addr = "127.0.0.1";
  e.master_port = port;
  e.timeout_s = timeout_s;
  return e;
}

// Runs body(rank, comm) on `world` ranks, one thread each, joined before returning.
void OnRanks(int world, const std::function<void(int, Communicator&)>& body) {
  const int port = FreePort();
  std::vector<std::thread> threads;
  for (int r = 0; r < world; ++r) {
    threads.emplace_back([&, r] {
      absl::StatusOr<std::unique_ptr<Communicator>> c =
          Communicator::Connect(Env(r, world, port), torch::kCPU);
      ASSERT_TRUE(c.ok()) << c.status();
      EXPECT_EQ((*c)->rank(), r);
      EXPECT_EQ((*c)->size(), world);
      EXPECT_STREQ((*c)->backend(), "gloo");
      body(r, **c);
    });
  }
  for (std::thread& t : threads) t.join();
}

TEST(CommunicatorTest, CollectivesAgreeAcrossRanks) {
  OnRanks(2, [](int rank, Communicator& c) {
    std::vector<torch::Tensor> t = {torch::full({3}, rank + 1.0)};
    ASSERT_TRUE(c.AllReduceSum(t).ok());
    EXPECT_TRUE(torch::equal(t[0], torch::full({3}, 3.0)));

    t = {torch::tensor({rank == 0 ? 5 : 2, rank == 0 ? 1 : 9}, torch::kInt)};
    ASSERT_TRUE(c.AllReduceMax(t).ok());
    EXPECT_TRUE(torch::equal(t[0], torch::tensor({5, 9}, torch::kInt)));

    t = {torch::full({2, 2}, static_cast<double>(rank))};
    ASSERT_TRUE(c.Broadcast(t, 1).ok());
    EXPECT_TRUE(torch::equal(t[0], torch::full({2, 2}, 1.0)));

    std::string text = rank == 0 ? std::string("growth state \0 with a NUL", 25) : "stale";
    ASSERT_TRUE(c.BroadcastString(text, 0).ok());
    EXPECT_EQ(text, std::string("growth state \0 with a NUL", 25));
    std::string empty = rank == 0 ? "" : "stale";
    ASSERT_TRUE(c.BroadcastString(empty, 0).ok());
    EXPECT_EQ(empty, "");

    absl::StatusOr<bool> all = c.AllOk(true);
    ASSERT_TRUE(all.ok());
    EXPECT_TRUE(*all);
    all = c.AllOk(rank == 0);  // rank 1 failed: both learn it
    ASSERT_TRUE(all.ok());
    EXPECT_FALSE(*all);
    EXPECT_TRUE(c.Barrier().ok());
  });
}

// A small model, different data on each rank: after the averager, every rank's gradients are
// the sum of both ranks' own, and equal on both ranks; a parameter the step did not use gets
// zeros on both. Buckets of 32 bytes make several buckets, started as the backward fills them.
TEST(GradientAveragerTest, SumsGradientsAcrossRanksInBuckets) {
  auto make = [] {
    torch::manual_seed(5);
    return std::vector<torch::Tensor>{torch::randn({4, 3}).requires_grad_(),
                                      torch::randn({4}).requires_grad_(),
                                      torch::randn({2, 4}).requires_grad_(),
                                      torch::randn({5}).requires_grad_()};  // unused
  };
  auto input = [](int rank) { return torch::arange(6, torch::kFloat).view({2, 3}) + rank; };
  // Two micro-batches per rank: gradient accumulation before the last one's backward.
  auto backward = [](std::vector<torch::Tensor>& p, const torch::Tensor& x, bool last,
                     GradientAverager* avg) {
    for (int m = 0; m < 2; ++m) {
      torch::Tensor h = torch::tanh(torch::matmul(x * (m + 1), p[0].t()) + p[1]);
      torch::Tensor loss = torch::matmul(h, p[2].t()).pow(2).sum();
      if (avg != nullptr && last && m == 1) avg->Arm();
      loss.backward();
    }
  };
  // The reference: both ranks' data in one process.
  std::vector<torch::Tensor> ref = make();
  backward(ref, input(0), false, nullptr);
  backward(ref, input(1), false, nullptr);

  // Made here: the global generator is not for two threads at once.
  std::vector<std::vector<torch::Tensor>> params = {make(), make()};
  OnRanks(2, [&](int rank, Communicator& c) {
    std::vector<torch::Tensor>& p = params[rank];
    GradientAverager avg(&c, p, /*bucket_bytes=*/32);
    EXPECT_GE(avg.buckets(), 3);
    for (int step = 0; step < 2; ++step) {  // twice: the averager is reusable
      for (torch::Tensor& t : p) {
        if (t.grad().defined()) t.mutable_grad().zero_();
      }
      backward(p, input(rank), true, &avg);
      ASSERT_TRUE(avg.Finish().ok());
      for (size_t k = 0; k < 3; ++k) {
        EXPECT_TRUE(torch::allclose(p[k].grad(), ref[k].grad(), 1e-5, 1e-6))
            << "parameter " << k << " on rank " << rank << ", step " << step;
      }
      ASSERT_TRUE(p[3].grad().defined());
      EXPECT_TRUE(torch::equal(p[3].grad(), torch::zeros({5})));
      // Both ranks hold the same bits.
      std::vector<torch::Tensor> mine = {p[0].grad().clone()};
      std::vector<torch::Tensor> r0 = {p[0].grad().clone()};
      ASSERT_TRUE(c.Broadcast(r0, 0).ok());
      EXPECT_TRUE(torch::equal(mine[0], r0[0]));
    }
  });
}

TEST(CommunicatorTest, AMasterNobodyServesIsAnErrorWithinTheTimeout) {
  const auto t0 = std::chrono::steady_clock::now();
  absl::StatusOr<std::unique_ptr<Communicator>> c =
      Communicator::Connect(Env(1, 2, FreePort(), /*timeout_s=*/2), torch::kCPU);
  const double waited =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(std::string(c.status().message()),
              ::testing::AllOf(::testing::HasSubstr("rank 1 of 2: rendezvous at 127.0.0.1:"),
                               ::testing::HasSubstr("check that rank 0 is running")));
  EXPECT_LT(waited, 60);  // bounded by the timeout, not a hang
}

TEST(CommunicatorTest, ARankThatNeverArrivesIsAnErrorForRankZero) {
  absl::StatusOr<std::unique_ptr<Communicator>> c =
      Communicator::Connect(Env(0, 2, FreePort(), /*timeout_s=*/2), torch::kCPU);
  ASSERT_FALSE(c.ok());
  EXPECT_THAT(std::string(c.status().message()),
              ::testing::HasSubstr("the other ranks did not all arrive"));
}

}  // namespace
}  // namespace sgt
