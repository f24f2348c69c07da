// Tests of the Slurm autoscaler's pure decisions (services/coordinator/autoscaler.h): what is
// submitted for queued runs that connected workers cannot take, the cap on jobs alive, the
// workers still coming (pending jobs, jobs running for less than start_s), surplus pending jobs
// cancelled newest first (never running ones), runs too big for any job, gangs, GPU and
// multi-node jobs; and the command lines and the parsing of sbatch's and squeue's output.
#include "services/coordinator/autoscaler.h"

#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace sgt::coord {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

constexpr double kNow = 10000;

AutoscaleConfig Config(int32_t max_jobs, int32_t slots = 1, int32_t nodes_per_job = 1) {
  AutoscaleConfig c;
  c.script = "/shared/sgt/sgt-workers.sbatch";
  c.max_jobs = max_jobs;
  c.cpu_slots_per_node = slots;
  c.nodes_per_job = nodes_per_job;
  c.start_s = 60;
  return c;
}

SlurmJob Job(const std::string& id, const std::string& state, double submitted_at,
             double running_since = 0) {
  SlurmJob j;
  j.id = id;
  j.state = state;
  j.submitted_at = submitted_at;
  j.running_since = running_since;
  return j;
}

// Connected workers with these free devices, all connected long ago.
std::vector<ConnectedWorker> Free(const std::vector<int32_t>& free) {
  std::vector<ConnectedWorker> w;
  for (int32_t f : free) w.push_back({f, 1});
  return w;
}

ScaleDemand Waiting(int n, int32_t devices = 1, const std::vector<int32_t>& free = {}) {
  ScaleDemand d;
  for (int i = 0; i < n; ++i) d.waiting.push_back({devices, 1});
  d.workers = Free(free);
  return d;
}

TEST(DecideScalingTest, NothingQueuedNothingToDo) {
  const ScaleDecision d = DecideScaling({}, {}, Config(4), kNow);
  EXPECT_EQ(d.submit, 0);
  EXPECT_THAT(d.cancel, IsEmpty());
  EXPECT_EQ(d.why, "");
}

TEST(DecideScalingTest, QueuedRunsWithNoWorkerGetOneJobEachUpToTheMaximum) {
  ScaleDecision d = DecideScaling(Waiting(3), {}, Config(4), kNow);
  EXPECT_EQ(d.submit, 3);
  EXPECT_EQ(d.unserved, 3);
  EXPECT_EQ(d.why, "3 queued runs need 3 more nodes (3 jobs): submitting 3 (0 of 4 alive)");
  d = DecideScaling(Waiting(10), {}, Config(4), kNow);
  EXPECT_EQ(d.submit, 4);
  EXPECT_THAT(d.why, HasSubstr("the rest wait for --slurm-max-jobs"));
}

TEST(DecideScalingTest, RunsThatFitOnConnectedWorkersNeedNoJob) {
  // Two free slots on connected workers hold two of the three runs.
  const ScaleDecision d = DecideScaling(Waiting(3, 1, {1, 1, 0}), {}, Config(4), kNow);
  EXPECT_EQ(d.submit, 1);
  EXPECT_EQ(d.unserved, 1);
  EXPECT_EQ(DecideScaling(Waiting(2, 1, {2}), {}, Config(4), kNow).submit, 0);
}

TEST(DecideScalingTest, SeveralRunsShareANodeOfSeveralSlots) {
  // cpu:4 workers: five one-slot runs need two nodes, a three-slot and a two-slot run two.
  EXPECT_EQ(DecideScaling(Waiting(5), {}, Config(8, 4), kNow).submit, 2);
  ScaleDemand d;
  d.waiting = {{2, 1}, {3, 1}, {1, 1}};
  EXPECT_EQ(DecideScaling(d, {}, Config(8, 4), kNow).submit, 2);
}

TEST(DecideScalingTest, NeverMoreThanTheMaximumAliveWhateverTheirState) {
  const std::vector<SlurmJob> jobs = {Job("1", "RUNNING", 1, 2), Job("2", "COMPLETING", 1),
                                      Job("3", "SUSPENDED", 1)};
  ScaleDecision d = DecideScaling(Waiting(5), jobs, Config(3), kNow);
  EXPECT_EQ(d.submit, 0);
  EXPECT_EQ(d.alive, 3);
  EXPECT_EQ(d.why,
            "5 queued runs need 5 more nodes (5 jobs): none submitted: 3 of 3 jobs alive "
            "(--slurm-max-jobs)");
  d = DecideScaling(Waiting(5), jobs, Config(4), kNow);
  EXPECT_EQ(d.submit, 1);
  // A maximum below what is alive (lowered across a restart) submits nothing, cancels nothing
  // that runs.
  d = DecideScaling(Waiting(5), jobs, Config(1), kNow);
  EXPECT_EQ(d.submit, 0);
  EXPECT_THAT(d.cancel, IsEmpty());
}

TEST(DecideScalingTest, PendingJobsAreWorkersComing) {
  const std::vector<SlurmJob> jobs = {Job("7", "PENDING", 100), Job("8", "SUBMITTED", 200)};
  ScaleDecision d = DecideScaling(Waiting(2), jobs, Config(4), kNow);
  EXPECT_EQ(d.submit, 0);
  EXPECT_THAT(d.cancel, IsEmpty());
  EXPECT_EQ(d.unserved, 0);
  d = DecideScaling(Waiting(3), jobs, Config(4), kNow);
  EXPECT_EQ(d.submit, 1);
}

TEST(DecideScalingTest, ARunningJobCountsAsComingOnlyForStartSeconds) {
  // Running for 30 s of start_s 60: its worker may not have connected yet.
  std::vector<SlurmJob> jobs = {Job("7", "RUNNING", 100, kNow - 30)};
  EXPECT_EQ(DecideScaling(Waiting(1), jobs, Config(4), kNow).submit, 0);
  // Running for 61 s: its worker would be connected (and counted free) by now.
  jobs[0].running_since = kNow - 61;
  EXPECT_EQ(DecideScaling(Waiting(1), jobs, Config(4), kNow).submit, 1);
  // Running, not yet seen so (running_since 0): coming.
  jobs[0].running_since = 0;
  EXPECT_EQ(DecideScaling(Waiting(1), jobs, Config(4), kNow).submit, 0);
}

TEST(DecideScalingTest, ARunningJobWhoseWorkersConnectedIsNoLongerComing) {
  // Job 7, submitted at 100, runs; a busy worker connected at 150: that is job 7's worker, so
  // the queued run needs a new job.
  const std::vector<SlurmJob> jobs = {Job("7", "RUNNING", 100, kNow - 5)};
  ScaleDemand d = Waiting(1);
  d.workers = {{0, 150}};
  EXPECT_EQ(DecideScaling(d, jobs, Config(4), kNow).submit, 1);
  // A worker connected before job 7 was submitted is someone else's: job 7's is still coming.
  d.workers = {{0, 50}};
  EXPECT_EQ(DecideScaling(d, jobs, Config(4), kNow).submit, 0);
  // Two nodes per job, one of them connected: the other is still coming.
  d.workers = {{0, 150}};
  EXPECT_EQ(DecideScaling(d, jobs, Config(4, 1, 2), kNow).submit, 0);
  // Two running jobs and one new worker: the older job claims it, the newer is still coming.
  const std::vector<SlurmJob> two = {Job("7", "RUNNING", 100, kNow - 5),
                                     Job("8", "RUNNING", 120, kNow - 5)};
  d = Waiting(2);
  d.workers = {{0, 150}};
  EXPECT_EQ(DecideScaling(d, two, Config(4), kNow).submit, 1);
}

TEST(DecideScalingTest, SurplusPendingJobsAreCancelledNewestFirstWhenTheQueueEmpties) {
  const std::vector<SlurmJob> jobs = {Job("5", "RUNNING", 50, 60), Job("7", "PENDING", 100),
                                      Job("9", "PENDING", 300), Job("8", "CONFIGURING", 200)};
  ScaleDecision d = DecideScaling({}, jobs, Config(4), kNow);
  EXPECT_EQ(d.submit, 0);
  EXPECT_THAT(d.cancel, ElementsAre("9", "7"));  // never running or configuring ones
  EXPECT_EQ(d.why, "no run is queued: cancelling 2 pending jobs (9, 7)");
  // One queued run: the running job (within start_s) takes it first, so both pending ones go.
  std::vector<SlurmJob> young = jobs;
  young[0].running_since = kNow - 5;
  d = DecideScaling(Waiting(1), young, Config(4), kNow);
  EXPECT_THAT(d.cancel, ElementsAre("9", "7"));
  EXPECT_THAT(d.why, HasSubstr("the queued runs fit on the connected and coming workers"));
  // Three queued runs: the running job is past start_s (its worker would be connected), so the
  // three coming jobs are all needed.
  d = DecideScaling(Waiting(3), jobs, Config(4), kNow);
  EXPECT_THAT(d.cancel, IsEmpty());
  EXPECT_EQ(d.submit, 0);
  // Two queued runs: the configuring job and the oldest pending hold them; the newest goes.
  d = DecideScaling(Waiting(2), jobs, Config(4), kNow);
  EXPECT_THAT(d.cancel, ElementsAre("9"));
}

TEST(DecideScalingTest, NothingIsCancelledWhileSubmitting) {
  // A gang of 3 nodes with 2 coming: one more is submitted and the pending ones are kept.
  ScaleDemand d;
  d.waiting = {{1, 3}};
  const ScaleDecision s =
      DecideScaling(d, {Job("1", "PENDING", 1), Job("2", "PENDING", 2)}, Config(4), kNow);
  EXPECT_EQ(s.submit, 1);
  EXPECT_THAT(s.cancel, IsEmpty());
}

TEST(DecideScalingTest, RunsNoJobCouldHoldAreCountedNotSubmittedFor) {
  ScaleDemand d;
  d.waiting = {{8, 1}, {1, 5}, {1, 1}};  // 8 slots > 4 per node; 5 nodes > 2 jobs of 2 nodes
  const ScaleDecision s = DecideScaling(d, {}, Config(2, 4, 2), kNow);
  EXPECT_EQ(s.too_big, 2);
  EXPECT_EQ(s.unserved, 1);
  EXPECT_EQ(s.submit, 1);
  // A big run that a connected worker holds is not too big.
  d.waiting = {{8, 1}};
  d.workers = Free({8});
  EXPECT_EQ(DecideScaling(d, {}, Config(2, 4), kNow).too_big, 0);
}

TEST(DecideScalingTest, GangsNeedDistinctNodesAndMultiNodeJobsBringSeveral) {
  ScaleDemand d;
  d.waiting = {{2, 3}};  // 3 workers with 2 free devices each
  // One node of 4 slots per job: three jobs (the gang's nodes must be distinct).
  EXPECT_EQ(DecideScaling(d, {}, Config(8, 4), kNow).submit, 3);
  // Two nodes per job: two jobs (four nodes, one left over).
  EXPECT_EQ(DecideScaling(d, {}, Config(8, 4, 2), kNow).submit, 2);
  // Two connected workers with 2 free and one with 1: one more node.
  d.workers = Free({2, 2, 1});
  EXPECT_EQ(DecideScaling(d, {}, Config(8, 4), kNow).submit, 1);
  // A second gang: the new node has room for one of its nodes; two more are needed.
  d.waiting.push_back({2, 3});
  EXPECT_EQ(DecideScaling(d, {}, Config(8, 4), kNow).submit, 3);
}

TEST(DecideScalingTest, GpuWorkersOfferTheirGpus) {
  AutoscaleConfig c = Config(4);
  c.gpus_per_node = 8;
  EXPECT_EQ(c.kind(), "cuda");
  EXPECT_EQ(c.devices_per_node(), 8);
  ScaleDemand d;
  d.waiting = {{4, 1}, {4, 1}, {4, 1}};
  EXPECT_EQ(DecideScaling(d, {}, c, kNow).submit, 2);
}

TEST(SbatchArgvTest, CpuWorkers) {
  AutoscaleConfig c = Config(4, 2);
  c.sbatch_args = {"--qos=low", "--mem=8G"};
  c.script_args = {"SGT_COORDINATOR=coord:7070", "SGT_CHECKPOINT_ROOT=/shared/a b"};
  EXPECT_THAT(SbatchArgv(c),
              ElementsAre("--parsable", "--job-name=sgt-worker-autoscaled", "--nodes=1",
                          "--ntasks-per-node=1", "--cpus-per-task=2", "--qos=low", "--mem=8G",
                          "/shared/sgt/sgt-workers.sbatch", "SGT_DEVICES=cpu:2",
                          "SGT_COORDINATOR=coord:7070", "SGT_CHECKPOINT_ROOT=/shared/a b"));
}

TEST(SbatchArgvTest, GpuWorkersWithPartitionAccountAndTimeLimit) {
  AutoscaleConfig c = Config(4, 1, 2);
  c.gpus_per_node = 4;
  c.partition = "gpu";
  c.account = "lab";
  c.time_limit = "12:00:00";
  c.job_name = "sgt-a";
  EXPECT_THAT(SbatchArgv(c),
              ElementsAre("--parsable", "--job-name=sgt-a", "--partition=gpu", "--account=lab",
                          "--time=12:00:00", "--nodes=2", "--ntasks-per-node=1", "--gres=gpu:4",
                          "/shared/sgt/sgt-workers.sbatch"));
}

TEST(ParseSbatchOutputTest, TakesTheJobIdWithOrWithoutACluster) {
  EXPECT_EQ(*ParseSbatchOutput("1234\n"), "1234");
  EXPECT_EQ(*ParseSbatchOutput("1234;big\n"), "1234");
  EXPECT_EQ(*ParseSbatchOutput("sbatch: warning: something\n77\n"), "77");
  const auto bad = ParseSbatchOutput("Submitted batch job x\n");
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(std::string(bad.status().message()), HasSubstr("printed no job id"));
  EXPECT_FALSE(ParseSbatchOutput("").ok());
}

TEST(ParseSqueueOutputTest, ReadsIdsAndStates) {
  EXPECT_THAT(SqueueArgv("sgt-w", "alice"),
              ElementsAre("--noheader", "--name=sgt-w", "--user=alice", "--format=%i %T"));
  const auto jobs = ParseSqueueOutput("12 RUNNING\n13 PENDING\n\n  14  COMPLETING \n");
  ASSERT_TRUE(jobs.ok()) << jobs.status();
  ASSERT_EQ(jobs->size(), 3u);
  EXPECT_EQ((*jobs)[0].id, "12");
  EXPECT_EQ((*jobs)[0].state, "RUNNING");
  EXPECT_EQ((*jobs)[2].id, "14");
  EXPECT_EQ((*jobs)[2].state, "COMPLETING");
  EXPECT_TRUE(ParseSqueueOutput("").ok());
  const auto bad = ParseSqueueOutput("JOBID STATE\n");
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(std::string(bad.status().message()), HasSubstr("\"JOBID STATE\""));
  EXPECT_FALSE(ParseSqueueOutput("12 RUNNING extra\n").ok());
}

}  // namespace
}  // namespace sgt::coord
