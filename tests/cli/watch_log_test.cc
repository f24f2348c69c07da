// Tests for `sgtctl watch` on a pipe (cli/watch_log.h): state changes, evaluations and growth
// decisions each print once, progress lines are paced per run, and decisions are fetched only
// when a line is printed and the run advanced.
#include <gtest/gtest.h>

#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "cli/watch_log.h"

namespace sgt::cli {
namespace {

constexpr double kTime = 1700000000;  // 2023-11-14 22:13:20 UTC

v1::Run MakeRun(const std::string& id, const std::string& variant, v1::RunState state,
                int64_t step) {
  v1::Run run;
  run.set_id(id);
  run.set_variant(variant);
  run.set_state(state);
  run.set_step(step);
  run.set_steps(300);
  run.set_attempt(state == v1::RUN_STATE_QUEUED ? 0 : 1);
  run.set_updated_at(kTime);
  return run;
}

v1::GrowthDecision MakeDecision(int64_t step, const std::string& reason) {
  v1::GrowthDecision decision;
  decision.set_step(step);
  decision.set_action("activate");
  decision.set_reason(reason);
  return decision;
}

// The decisions a coordinator has stored, and the queries the log made.
struct FakeDecisions {
  std::vector<v1::GrowthDecision> stored;
  std::vector<std::pair<std::string, int64_t>> queries;
  bool fail = false;

  WatchLog::FetchDecisions Fetch() {
    return [this](const std::string& run_id,
                  int64_t from) -> absl::StatusOr<std::vector<v1::GrowthDecision>> {
      queries.emplace_back(run_id, from);
      if (fail) return absl::UnavailableError("coordinator away");
      std::vector<v1::GrowthDecision> out;
      for (const v1::GrowthDecision& d : stored) {
        if (d.step() >= from) out.push_back(d);
      }
      return out;
    };
  }
};

TEST(WatchLogTest, PacesProgressLinesPerRun) {
  FakeDecisions decisions;
  WatchLog log(10, decisions.Fetch(), absl::UTCTimeZone());
  std::vector<std::string> printed;
  auto update = [&](const v1::Run& run, double now) {
    for (std::string& line : log.Update(run, now)) printed.push_back(std::move(line));
  };
  update(MakeRun("r1", "vanilla", v1::RUN_STATE_QUEUED, 0), 0);
  // One update per step, four steps a second: a line every 10 s (40 steps), not one per step.
  for (int step = 1; step < 300; ++step) {
    update(MakeRun("r1", "vanilla", v1::RUN_STATE_RUNNING, step), step / 4.0);
  }
  update(MakeRun("r1", "vanilla", v1::RUN_STATE_SUCCEEDED, 300), 75);
  ASSERT_EQ(printed.size(), 10u) << testing::PrintToString(printed);
  EXPECT_EQ(printed[0], "2023-11-14T22:13:20 r1 queued step 0/300");
  EXPECT_EQ(printed[1], "2023-11-14T22:13:20 r1 running step 1/300");
  EXPECT_EQ(printed[2], "2023-11-14T22:13:20 r1 running step 41/300");  // 10 s after step 1
  EXPECT_EQ(printed[8], "2023-11-14T22:13:20 r1 running step 281/300");
  EXPECT_EQ(printed[9], "2023-11-14T22:13:20 r1 succeeded step 300/300");
  EXPECT_TRUE(decisions.queries.empty()) << "vanilla runs make no decisions";
}

TEST(WatchLogTest, NoProgressLineWhenTheStepDidNotMove) {
  WatchLog log(10, nullptr, absl::UTCTimeZone());
  EXPECT_EQ(log.Update(MakeRun("r1", "sgt", v1::RUN_STATE_RUNNING, 5), 0).size(), 1u);
  EXPECT_TRUE(log.Update(MakeRun("r1", "sgt", v1::RUN_STATE_RUNNING, 5), 60).empty());
  EXPECT_EQ(log.Update(MakeRun("r1", "sgt", v1::RUN_STATE_RUNNING, 6), 61).size(), 1u);
}

TEST(WatchLogTest, RunsArePacedIndependently) {
  WatchLog log(10, nullptr, absl::UTCTimeZone());
  EXPECT_EQ(log.Update(MakeRun("r1", "vanilla", v1::RUN_STATE_RUNNING, 1), 0).size(), 1u);
  EXPECT_EQ(log.Update(MakeRun("r2", "vanilla", v1::RUN_STATE_RUNNING, 1), 9).size(), 1u);
  EXPECT_EQ(log.Update(MakeRun("r1", "vanilla", v1::RUN_STATE_RUNNING, 50), 10).size(), 1u);
  EXPECT_TRUE(log.Update(MakeRun("r2", "vanilla", v1::RUN_STATE_RUNNING, 50), 10).empty());
  EXPECT_EQ(log.Update(MakeRun("r2", "vanilla", v1::RUN_STATE_RUNNING, 60), 19).size(), 1u);
}

TEST(WatchLogTest, EachEvaluationPrintsOnce) {
  WatchLog log(1000, nullptr, absl::UTCTimeZone());
  v1::Run run = MakeRun("r2", "block_loop", v1::RUN_STATE_RUNNING, 99);
  log.Update(run, 0);
  run.set_step(100);
  run.mutable_metrics()->set_val_loss(5.1374);
  run.mutable_metrics()->set_val_ppl(170.314);
  EXPECT_EQ(log.Update(run, 1),
            std::vector<std::string>{
                "2023-11-14T22:13:20 r2 eval as of step 100: val loss 5.137 val ppl 170.31"});
  run.set_step(101);
  EXPECT_TRUE(log.Update(run, 2).empty()) << "the same perplexity is not a new evaluation";
}

TEST(WatchLogTest, StateChangesAndNewAttemptsAlwaysPrint) {
  WatchLog log(1000, nullptr, absl::UTCTimeZone());
  v1::Run run = MakeRun("r4", "sgt", v1::RUN_STATE_RUNNING, 10);
  log.Update(run, 0);
  run.set_state(v1::RUN_STATE_LOST);
  run.set_reason("worker w1 stopped answering");
  EXPECT_EQ(log.Update(run, 0.1),
            std::vector<std::string>{
                "2023-11-14T22:13:20 r4 lost step 10/300: worker w1 stopped answering"});
  run.set_state(v1::RUN_STATE_RUNNING);
  EXPECT_EQ(log.Update(run, 0.2).size(), 1u);
  run.set_attempt(2);
  EXPECT_EQ(log.Update(run, 0.3),
            std::vector<std::string>{"2023-11-14T22:13:20 r4 running step 10/300"});
}

TEST(WatchLogTest, GrowthDecisionsPrintOnceBeforeTheRunsLine) {
  FakeDecisions decisions;
  WatchLog log(10, decisions.Fetch(), absl::UTCTimeZone());
  EXPECT_EQ(log.Update(MakeRun("r3", "sgt", v1::RUN_STATE_RUNNING, 1), 0).size(), 1u);
  ASSERT_EQ(decisions.queries.size(), 1u);
  EXPECT_EQ(decisions.queries[0], std::make_pair(std::string("r3"), int64_t{0}));

  decisions.stored.push_back(MakeDecision(50, "activate layer 2 (H 1.2); heads [0, 3]"));
  // Updates that print nothing ask for nothing.
  EXPECT_TRUE(log.Update(MakeRun("r3", "sgt", v1::RUN_STATE_RUNNING, 55), 5).empty());
  EXPECT_EQ(decisions.queries.size(), 1u);
  EXPECT_EQ(log.Update(MakeRun("r3", "sgt", v1::RUN_STATE_RUNNING, 60), 10),
            (std::vector<std::string>{
                "2023-11-14T22:13:20 r3 growth at step 50: activate layer 2 (H 1.2); heads [0, 3]",
                "2023-11-14T22:13:20 r3 running step 60/300"}));
  ASSERT_EQ(decisions.queries.size(), 2u);
  EXPECT_EQ(decisions.queries[1].second, 0);

  // Two decisions at one boundary, then the end: each printed once, asked from step 51 on.
  decisions.stored.push_back(MakeDecision(100, "block loop: layer 2 loops as a whole block K=2"));
  decisions.stored.push_back(MakeDecision(100, "block loop: layer 1 loops as a whole block K=2"));
  std::vector<std::string> end = log.Update(MakeRun("r3", "sgt", v1::RUN_STATE_SUCCEEDED, 300), 11);
  ASSERT_EQ(end.size(), 3u) << testing::PrintToString(end);
  EXPECT_NE(end[0].find("growth at step 100: block loop: layer 2"), std::string::npos);
  EXPECT_NE(end[1].find("growth at step 100: block loop: layer 1"), std::string::npos);
  EXPECT_EQ(end[2], "2023-11-14T22:13:20 r3 succeeded step 300/300");
  EXPECT_EQ(decisions.queries.back().second, 51);
}

TEST(WatchLogTest, ARepeatedDecisionIsSaidOnce) {
  FakeDecisions decisions;
  decisions.stored = {MakeDecision(150, "activate layer 1; structure now fixed"),
                      MakeDecision(200, "structure is fixed"),
                      MakeDecision(250, "structure is fixed")};
  WatchLog log(10, decisions.Fetch(), absl::UTCTimeZone());
  std::vector<std::string> lines = log.Update(MakeRun("r3", "sgt", v1::RUN_STATE_RUNNING, 260), 0);
  ASSERT_EQ(lines.size(), 3u) << testing::PrintToString(lines);
  EXPECT_NE(lines[0].find("growth at step 150: activate layer 1"), std::string::npos);
  EXPECT_NE(lines[1].find("growth at step 200: structure is fixed"), std::string::npos);
  decisions.stored.push_back(MakeDecision(300, "structure is fixed"));
  lines = log.Update(MakeRun("r3", "sgt", v1::RUN_STATE_SUCCEEDED, 300), 1);
  EXPECT_EQ(lines, std::vector<std::string>{"2023-11-14T22:13:20 r3 succeeded step 300/300"});
  EXPECT_EQ(decisions.queries.back().second, 251) << "asked only for what came after";
}

TEST(WatchLogTest, AFailedFetchIsRetriedAtTheNextLine) {
  FakeDecisions decisions;
  decisions.stored.push_back(MakeDecision(20, "deepen layer 2 to K=2\n(second line)"));
  decisions.fail = true;
  WatchLog log(10, decisions.Fetch(), absl::UTCTimeZone());
  EXPECT_EQ(log.Update(MakeRun("r5", "sgt", v1::RUN_STATE_RUNNING, 30), 0),
            std::vector<std::string>{"2023-11-14T22:13:20 r5 running step 30/300"});
  decisions.fail = false;
  std::vector<std::string> lines = log.Update(MakeRun("r5", "sgt", v1::RUN_STATE_RUNNING, 40), 10);
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[0],
            "2023-11-14T22:13:20 r5 growth at step 20: deepen layer 2 to K=2 (second line)");
  EXPECT_EQ(decisions.queries.size(), 2u);
}

}  // namespace
}  // namespace sgt::cli
