// The scheduling policy of scheduler.h with plain numbers.
#include <gtest/gtest.h>

#include "services/coordinator/scheduler.h"

namespace sgt::coord {
namespace {

WorkerCapacity Worker(const std::string& id, int32_t cpus) {
  return {id, {{"cpu", cpus}}, {{"cpu", cpus}}};
}

std::vector<int64_t> RunsOf(const std::vector<Assignment>& as) {
  std::vector<int64_t> out;
  for (const Assignment& a : as) out.push_back(a.run_id);
  return out;
}

TEST(SchedulerTest, HigherPriorityFirst) {
  FairScheduler s;
  std::vector<QueuedRun> q = {{1, 1, 10, 1}, {2, 2, 90, 1}, {3, 1, 10, 1}};
  auto as = s.Plan(q, {}, {Worker("w1", 1)});
  EXPECT_EQ(RunsOf(as), std::vector<int64_t>({2}));
}

TEST(SchedulerTest, SweepsOfOnePriorityTakeTurns) {
  FairScheduler s;
  // Sweep 1 submitted four runs before sweep 2's two: they still alternate.
  std::vector<QueuedRun> q = {{1, 1, 50, 1}, {2, 1, 50, 1}, {3, 1, 50, 1},
                              {4, 1, 50, 1}, {5, 2, 50, 1}, {6, 2, 50, 1}};
  auto as = s.Plan(q, {}, {Worker("w1", 4)});
  EXPECT_EQ(RunsOf(as), std::vector<int64_t>({1, 5, 2, 6}));
}

TEST(SchedulerTest, RoundRobinContinuesAcrossCalls) {
  FairScheduler s;
  std::vector<QueuedRun> q = {{1, 1, 50, 1}, {2, 1, 50, 1}, {3, 2, 50, 1}, {4, 2, 50, 1}};
  EXPECT_EQ(RunsOf(s.Plan(q, {}, {Worker("w1", 1)})), std::vector<int64_t>({1}));
  // Sweep 1 was served last: sweep 2 is next even though run 2 is older than run 3.
  q.erase(q.begin());
  EXPECT_EQ(RunsOf(s.Plan(q, {}, {Worker("w1", 1)})), std::vector<int64_t>({3}));
}

TEST(SchedulerTest, MaxConcurrentCapsASweep) {
  FairScheduler s;
  std::vector<QueuedRun> q = {{1, 1, 50, 1}, {2, 1, 50, 1}, {3, 1, 50, 1}};
  std::map<int64_t, SweepLimit> limits = {{1, {2, 1}}};  // one already running, limit two
  auto as = s.Plan(q, limits, {Worker("w1", 8)});
  EXPECT_EQ(RunsOf(as), std::vector<int64_t>({1}));
}

TEST(SchedulerTest, BestFitAndBackfill) {
  FairScheduler s;
  // Run 1 needs 4 devices: no worker has 4 free. Run 2 (lower priority) backfills.
  std::vector<QueuedRun> q = {{1, 1, 90, 4}, {2, 2, 10, 1}};
  auto as = s.Plan(q, {}, {Worker("w1", 3), Worker("w2", 2)});
  ASSERT_EQ(as.size(), 1u);
  EXPECT_EQ(as[0].run_id, 2);
  EXPECT_EQ(as[0].worker_id, "w2");  // the smaller hole that fits
}

TEST(SchedulerTest, DeviceKindsMustMatch) {
  FairScheduler s;
  QueuedRun gpu{1, 1, 50, 1, "cuda"};
  EXPECT_TRUE(s.Plan({gpu}, {}, {Worker("w1", 8)}).empty());
  WorkerCapacity g{"w2", {{"cuda", 1}}, {{"cuda", 1}}};
  EXPECT_EQ(s.Plan({gpu}, {}, {Worker("w1", 8), g}).at(0).worker_id, "w2");
}

TEST(SchedulerTest, UnschedulableReasonNamesTheGap) {
  QueuedRun big{1, 1, 50, 4};
  EXPECT_EQ(UnschedulableReason(big, {Worker("w1", 4)}), "");
  const std::string why = UnschedulableReason(big, {Worker("w1", 2)});
  EXPECT_NE(why.find("needs 4 cpu"), std::string::npos) << why;
  EXPECT_NE(why.find("largest connected worker has 2"), std::string::npos) << why;
  EXPECT_NE(UnschedulableReason(big, {}).find("waiting for a worker"), std::string::npos);
}

}  // namespace
}  // namespace sgt::coord
