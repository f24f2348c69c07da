// The scheduling policy of scheduler.h with plain numbers.
#include "services/coordinator/scheduler.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <functional>
#include <set>
#include <string>
#include <vector>

namespace sgt::coord {
namespace {

WorkerCapacity Worker(const std::string& id, int32_t cpus) {
  return {id, {{"cpu", cpus}}, {{"cpu", cpus}}};
}

// A worker that takes part in gangs, with `ports` rendezvous ports free.
WorkerCapacity GangWorker(const std::string& id, int32_t cpus, int32_t free, int32_t ports = 4) {
  WorkerCapacity w{id, {{"cpu", free}}, {{"cpu", cpus}}};
  w.rendezvous = true;
  w.free_ports = ports;
  return w;
}

QueuedRun Gang(int64_t id, int64_t sweep, int32_t priority, int32_t nodes, int32_t devices = 1) {
  QueuedRun r{id, sweep, priority, devices};
  r.nodes = nodes;
  return r;
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

// --- Gangs (runs over several workers).

// A small fleet the tests below simulate: each worker's runs, which end after `ticks` plans.
struct Sim {
  struct Running {
    int64_t run_id;
    std::vector<std::string> workers;
    int32_t devices;
    int ticks;
  };
  std::vector<WorkerCapacity> workers;
  std::vector<Running> running;
  std::vector<QueuedRun> queued;

  // One scheduling round: runs that are done free their devices, then a plan; returns the
  // assignments, which start with `ticks` rounds to go (per run, from `ticks_of`).
  std::vector<Assignment> Round(FairScheduler& s, const std::function<int(int64_t)>& ticks_of) {
    for (auto it = running.begin(); it != running.end();) {
      if (--it->ticks > 0) {
        ++it;
        continue;
      }
      for (const std::string& id : it->workers) {
        for (WorkerCapacity& w : workers) {
          if (w.worker_id == id) w.free["cpu"] += it->devices;
        }
      }
      if (it->workers.size() > 1) {
        for (WorkerCapacity& w : workers) {
          if (w.worker_id == it->workers.front()) w.free_ports += 1;
        }
      }
      it = running.erase(it);
    }
    std::vector<Assignment> as = s.Plan(queued, {}, workers);
    for (const Assignment& a : as) {
      auto q = std::find_if(queued.begin(), queued.end(),
                            [&](const QueuedRun& r) { return r.run_id == a.run_id; });
      const int32_t devices = q->devices;
      for (const std::string& id : a.worker_ids) {
        for (WorkerCapacity& w : workers) {
          if (w.worker_id == id) w.free["cpu"] -= devices;
        }
      }
      if (a.worker_ids.size() > 1) {
        for (WorkerCapacity& w : workers) {
          if (w.worker_id == a.worker_ids.front()) w.free_ports -= 1;
        }
      }
      running.push_back({a.run_id, a.worker_ids, devices, ticks_of(a.run_id)});
      queued.erase(q);
    }
    for (const WorkerCapacity& w : workers) {
      EXPECT_GE(w.free.at("cpu"), 0) << w.worker_id << " overcommitted";
      EXPECT_GE(w.free_ports, 0) << w.worker_id << " gave out a port twice";
    }
    return as;
  }
};

TEST(SchedulerGangTest, AllOrNothingOnDistinctWorkers) {
  FairScheduler s;
  // Three workers, one free CPU each on two of them: a gang of 3 does not start on 2.
  auto as = s.Plan({Gang(1, 1, 50, 3)}, {},
                   {GangWorker("w1", 1, 1), GangWorker("w2", 1, 1), GangWorker("w3", 1, 0)});
  EXPECT_TRUE(as.empty());
  // With the third free it starts on all three, one node each, node 0 first.
  as = s.Plan({Gang(1, 1, 50, 3)}, {},
              {GangWorker("w1", 1, 1), GangWorker("w2", 1, 1), GangWorker("w3", 1, 1)});
  ASSERT_EQ(as.size(), 1u);
  EXPECT_EQ(as[0].worker_ids, std::vector<std::string>({"w1", "w2", "w3"}));
  EXPECT_EQ(as[0].worker_id, "w1");
  // A worker with 2 free devices is still one node: a gang of 2 needs 2 workers.
  EXPECT_TRUE(s.Plan({Gang(2, 1, 50, 2)}, {}, {GangWorker("w1", 4, 4)}).empty());
}

TEST(SchedulerGangTest, NodesNeedARendezvousAndNodeZeroAFreePort) {
  FairScheduler s;
  // w1 announced no rendezvous address: not a node of any gang.
  EXPECT_TRUE(s.Plan({Gang(1, 1, 50, 2)}, {}, {Worker("w1", 1), GangWorker("w2", 1, 1)}).empty());
  // w1 has no free port: it can be node 1, not node 0.
  auto as = s.Plan({Gang(1, 1, 50, 2)}, {}, {GangWorker("w1", 1, 1, 0), GangWorker("w2", 1, 1)});
  ASSERT_EQ(as.size(), 1u);
  EXPECT_EQ(as[0].worker_ids, std::vector<std::string>({"w2", "w1"}));
  // Neither has one: it waits.
  EXPECT_TRUE(
      s.Plan({Gang(1, 1, 50, 2)}, {}, {GangWorker("w1", 1, 1, 0), GangWorker("w2", 1, 1, 0)})
          .empty());
}

TEST(SchedulerGangTest, OneNodeRunsAreScheduledAsBefore) {
  FairScheduler s;
  std::vector<QueuedRun> q = {{1, 1, 90, 4}, {2, 2, 10, 1}};
  auto as = s.Plan(q, {}, {GangWorker("w1", 3, 3), GangWorker("w2", 2, 2)});
  ASSERT_EQ(as.size(), 1u);
  EXPECT_EQ(as[0].run_id, 2);
  EXPECT_EQ(as[0].worker_id, "w2");
  EXPECT_EQ(as[0].worker_ids, std::vector<std::string>({"w2"}));
  EXPECT_EQ(s.reservation().run_id, 0);  // no gang, no reservation
}

TEST(SchedulerGangTest, AWaitingGangReservesWorkersAndSmallRunsBackfillTheRest) {
  FairScheduler s;
  // w1 and w2 are busy, w3 is free; the gang (priority 10) waits; the small runs (priority 90)
  // come first in order but only w3 is theirs.
  std::vector<QueuedRun> q = {Gang(1, 1, 10, 2), {2, 2, 90, 1}, {3, 2, 90, 1}};
  std::vector<WorkerCapacity> w = {GangWorker("w1", 1, 0), GangWorker("w2", 1, 0),
                                   GangWorker("w3", 1, 1)};
  auto as = s.Plan(q, {}, w);
  ASSERT_EQ(as.size(), 1u);
  EXPECT_EQ(as[0].run_id, 2);
  EXPECT_EQ(s.reservation().run_id, 1);
  EXPECT_EQ(s.reservation().worker_ids, std::vector<std::string>({"w1", "w2"}));
  // w1 frees up: it stays empty for the gang even though run 3 could use it.
  w[0].free["cpu"] = 1;
  w[2].free["cpu"] = 0;
  EXPECT_TRUE(s.Plan({q[0], q[2]}, {}, w).empty());
  EXPECT_EQ(s.reservation().worker_ids, std::vector<std::string>({"w1", "w2"}));
  // w2 too: the gang starts there and the reservation ends.
  w[1].free["cpu"] = 1;
  as = s.Plan({q[0], q[2]}, {}, w);
  ASSERT_EQ(as.size(), 1u);
  EXPECT_EQ(as[0].run_id, 1);
  EXPECT_EQ(as[0].worker_ids, std::vector<std::string>({"w1", "w2"}));
  EXPECT_EQ(s.reservation().run_id, 0);
}

// A steady stream of single-device runs of a higher priority, each taking 3 rounds, on three
// one-CPU workers: without the reservation the freed devices would always go to them first.
TEST(SchedulerGangTest, AGangStartsWithinBoundedRoundsBehindAStreamOfSmallRuns) {
  FairScheduler s;
  Sim sim;
  for (const char* id : {"w1", "w2", "w3"}) sim.workers.push_back(GangWorker(id, 1, 1));
  int64_t next = 100;
  auto feed = [&] {
    while (std::count_if(sim.queued.begin(), sim.queued.end(),
                         [](const QueuedRun& r) { return r.nodes == 1; }) < 5) {
      sim.queued.push_back({next++, 2, 90, 1});
    }
  };
  feed();
  sim.Round(s, [](int64_t) { return 3; });  // the small runs fill every worker
  ASSERT_EQ(sim.running.size(), 3u);
  sim.queued.push_back(Gang(1, 1, 10, 2));
  int started = -1;
  for (int round = 1; round <= 20 && started < 0; ++round) {
    feed();
    for (const Assignment& a : sim.Round(s, [](int64_t) { return 3; })) {
      if (a.run_id == 1) {
        started = round;
        EXPECT_EQ(a.worker_ids.size(), 2u);
      }
    }
  }
  // The runs on the reserved workers end within 3 rounds; the gang starts then.
  ASSERT_GT(started, 0) << "the gang starved";
  EXPECT_LE(started, 3);
  // Meanwhile the unreserved worker kept taking small runs.
  EXPECT_GT(next, 100 + 3);
}

// Two gangs of 2 on three workers, with small runs around them: they never hold parts of each
// other's workers, both start, and no run is ever placed on part of a gang's workers.
TEST(SchedulerGangTest, TwoGangsDoNotDeadlock) {
  FairScheduler s;
  Sim sim;
  for (const char* id : {"w1", "w2", "w3"}) sim.workers.push_back(GangWorker(id, 1, 1));
  sim.queued = {Gang(1, 1, 50, 2), Gang(2, 2, 50, 2), {3, 3, 50, 1}, {4, 3, 50, 1}};
  std::set<int64_t> started;
  for (int round = 0; round < 20 && started.size() < 4; ++round) {
    for (const Assignment& a : sim.Round(s, [](int64_t id) { return id <= 2 ? 4 : 2; })) {
      started.insert(a.run_id);
    }
    if (s.reservation().run_id != 0) {
      EXPECT_EQ(s.reservation().worker_ids.size(), 2u);
    }
  }
  EXPECT_EQ(started, std::set<int64_t>({1, 2, 3, 4}));
}

TEST(SchedulerGangTest, AHigherPriorityGangTakesTheReservationOver) {
  FairScheduler s;
  std::vector<WorkerCapacity> w = {GangWorker("w1", 1, 0), GangWorker("w2", 1, 0),
                                   GangWorker("w3", 1, 0)};
  EXPECT_TRUE(s.Plan({Gang(1, 1, 10, 2)}, {}, w).empty());
  EXPECT_EQ(s.reservation().run_id, 1);
  // Another gang of the same priority does not take it.
  EXPECT_TRUE(s.Plan({Gang(1, 1, 10, 2), Gang(2, 2, 10, 2)}, {}, w).empty());
  EXPECT_EQ(s.reservation().run_id, 1);
  // A higher-priority one does.
  EXPECT_TRUE(s.Plan({Gang(1, 1, 10, 2), Gang(2, 2, 10, 2), Gang(3, 3, 20, 3)}, {}, w).empty());
  EXPECT_EQ(s.reservation().run_id, 3);
  EXPECT_EQ(s.reservation().worker_ids.size(), 3u);
  // A gang that no connected workers could ever hold reserves nothing.
  FairScheduler t;
  EXPECT_TRUE(t.Plan({Gang(4, 1, 10, 5)}, {}, w).empty());
  EXPECT_EQ(t.reservation().run_id, 0);
}

TEST(SchedulerGangTest, AReservedWorkerThatLeavesIsReplaced) {
  FairScheduler s;
  std::vector<WorkerCapacity> w = {GangWorker("w1", 1, 0), GangWorker("w2", 1, 0),
                                   GangWorker("w3", 1, 0)};
  EXPECT_TRUE(s.Plan({Gang(1, 1, 10, 2)}, {}, w).empty());
  EXPECT_EQ(s.reservation().worker_ids, std::vector<std::string>({"w1", "w2"}));
  w.erase(w.begin());  // w1 disconnects
  EXPECT_TRUE(s.Plan({Gang(1, 1, 10, 2)}, {}, w).empty());
  EXPECT_EQ(s.reservation().worker_ids, std::vector<std::string>({"w2", "w3"}));
  // The gang leaves the queue (cancelled, say): the reservation goes.
  EXPECT_TRUE(s.Plan({}, {}, w).empty());
  EXPECT_EQ(s.reservation().run_id, 0);
}

TEST(SchedulerGangTest, UnschedulableReasonOfAGang) {
  QueuedRun g = Gang(1, 1, 50, 2);
  EXPECT_EQ(UnschedulableReason(g, {GangWorker("w1", 1, 0), GangWorker("w2", 1, 0)}), "");
  EXPECT_EQ(UnschedulableReason(g, {GangWorker("w1", 1, 1)}),
            "needs 2 workers with 1 free cpu device each; 1 connected worker has 1 cpu device; "
            "connect more workers or lower `nodes` in the sweep");
  const std::string why = UnschedulableReason(g, {GangWorker("w1", 1, 1), Worker("w2", 1)});
  EXPECT_NE(why.find("and a rendezvous address (1 more without one"), std::string::npos) << why;
  EXPECT_NE(UnschedulableReason(g, {}).find("waiting for workers"), std::string::npos);
}

}  // namespace
}  // namespace sgt::coord
