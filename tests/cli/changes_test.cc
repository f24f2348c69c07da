// Tests for what sgtctl prints after submit, pause/resume/snapshot/cancel, fork and edit
// (cli/changes.h): real response messages in, the exact text out.
#include "cli/changes.h"

#include <gtest/gtest.h>

#include <string>

namespace sgt::cli {
namespace {

v1::Run MakeRun(const std::string& id, const std::string& name, v1::RunState state, int64_t step,
                int64_t steps) {
  v1::Run run;
  run.set_id(id);
  run.set_name(name);
  run.set_state(state);
  run.set_step(step);
  run.set_steps(steps);
  return run;
}

TEST(SubmitTextTest, TheSweepThenItsRuns) {
  v1::SubmitSweepResponse response;
  response.mutable_sweep()->set_id("s1");
  response.mutable_sweep()->set_name("quickstart");
  v1::Run* vanilla = response.add_runs();
  *vanilla = MakeRun("r1", "quickstart/variant=vanilla", v1::RUN_STATE_QUEUED, 0, 300);
  vanilla->set_variant("vanilla");
  v1::Run* sgt = response.add_runs();
  *sgt = MakeRun("r10", "quickstart/variant=sgt", v1::RUN_STATE_QUEUED, 0, 300);
  sgt->set_variant("sgt");
  EXPECT_EQ(SubmitText(response, "examples/quickstart.yaml"),
            "submitted sweep s1 \"quickstart\" from examples/quickstart.yaml: 2 runs\n"
            "ID   NAME                        VARIANT  STATE\n"
            "r1   quickstart/variant=vanilla  vanilla  queued\n"
            "r10  quickstart/variant=sgt      sgt      queued\n");
}

TEST(ActionTextTest, ChangedAndUnchangedRunsEachInATable) {
  v1::ActionResponse response;
  *response.add_changed() = MakeRun("r1", "a", v1::RUN_STATE_PAUSING, 120, 300);
  *response.add_changed() = MakeRun("r3", "bb", v1::RUN_STATE_PAUSED, 0, 0);
  v1::Run* ended = response.add_unchanged();
  *ended = MakeRun("r2", "c", v1::RUN_STATE_SUCCEEDED, 300, 300);
  ended->set_reason("already ended");
  EXPECT_EQ(ActionText("pause", "s1", response),
            "pause s1: 2 runs changed, 1 unchanged\n"
            "\n"
            "changed:\n"
            "ID  NAME  STATE    STEP\n"
            "r1  a     pausing  120/300\n"
            "r3  bb    paused   0/?\n"
            "\n"
            "unchanged (pause does not apply to their state):\n"
            "ID  NAME  STATE      REASON\n"
            "r2  c     succeeded  already ended\n");
}

TEST(ActionTextTest, OneRunIsARunAndEmptyTablesAreLeftOut) {
  v1::ActionResponse response;
  *response.add_changed() = MakeRun("r4", "n", v1::RUN_STATE_QUEUED, 40, 300);
  EXPECT_EQ(ActionText("resume", "r4", response),
            "resume r4: 1 run changed, 0 unchanged\n"
            "\n"
            "changed:\n"
            "ID  NAME  STATE   STEP\n"
            "r4  n     queued  40/300\n");
  EXPECT_EQ(ActionText("cancel", "s2", v1::ActionResponse()),
            "cancel s2: 0 runs changed, 0 unchanged\n");
}

TEST(ForkTextTest, TheNewRunAndItsSettings) {
  v1::ForkResponse response;
  v1::Run& run = *response.mutable_run();
  run = MakeRun("r19", "k2-from-150", v1::RUN_STATE_QUEUED, 150, 300);
  run.set_sweep_id("s1");
  v1::Setting* k_max = run.add_settings();
  k_max->set_key("growth.k_max");
  k_max->set_value("2");
  v1::Setting* lr = run.add_settings();
  lr->set_key("train.lr");
  lr->set_value("3e-4");
  EXPECT_EQ(ForkText("r9", 150, response),
            "forked r9 at step 150 as r19 \"k2-from-150\" (queued) in sweep s1\n"
            "settings: growth.k_max=2 train.lr=3e-4\n");
  run.clear_settings();
  EXPECT_EQ(ForkText("r9", 150, response),
            "forked r9 at step 150 as r19 \"k2-from-150\" (queued) in sweep s1\n"
            "settings: -\n");
}

TEST(EditTextTest, TheSweepWhenOneWasEditedThenTheRunsChanged) {
  v1::EditResponse response;
  response.mutable_sweep()->set_id("s1");
  response.mutable_sweep()->set_name("seeds");
  response.mutable_sweep()->set_priority(80);
  response.mutable_sweep()->set_max_concurrent(2);
  v1::Run* queued = response.add_changed();
  *queued = MakeRun("r1", "a", v1::RUN_STATE_QUEUED, 0, 400);
  queued->set_priority(80);
  v1::Run* paused = response.add_changed();
  *paused = MakeRun("r12", "b", v1::RUN_STATE_PAUSED, 150, 400);
  paused->set_priority(80);
  EXPECT_EQ(EditText(response),
            "sweep s1 \"seeds\": priority 80, max concurrent 2\n"
            "edited 2 runs (only queued and paused runs change)\n"
            "ID   NAME  STATE   PRIORITY  STEP\n"
            "r1   a     queued  80        0/400\n"
            "r12  b     paused  80        150/400\n");

  response.mutable_sweep()->set_max_concurrent(0);
  response.mutable_changed()->DeleteSubrange(1, 1);
  EXPECT_EQ(EditText(response),
            "sweep s1 \"seeds\": priority 80, max concurrent - (no limit)\n"
            "edited 1 run (only queued and paused runs change)\n"
            "ID  NAME  STATE   PRIORITY  STEP\n"
            "r1  a     queued  80        0/400\n");

  v1::EditResponse run_only;  // a run edited: no sweep line; a run that was not queued: no table
  EXPECT_EQ(EditText(run_only), "edited 0 runs (only queued and paused runs change)\n");
}

}  // namespace
}  // namespace sgt::cli
