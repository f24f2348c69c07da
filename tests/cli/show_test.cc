// Tests for the views of `ls`, `show` and `workers` (cli/show.h): real response messages in,
// the exact text out (columns lined up, "-" for what is not set, times in UTC).
#include "cli/show.h"

#include <gtest/gtest.h>

#include <string>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"

namespace sgt::cli {
namespace {

constexpr double kTime = 1700000000;  // 2023-11-14 22:13:20 UTC

v1::Run MakeRun(const std::string& id, const std::string& sweep_id, const std::string& name,
                const std::string& variant, v1::RunState state, int64_t step, int64_t steps) {
  v1::Run run;
  run.set_id(id);
  run.set_sweep_id(sweep_id);
  run.set_name(name);
  run.set_variant(variant);
  run.set_state(state);
  run.set_step(step);
  run.set_steps(steps);
  return run;
}

// r1 running on w2 with metrics, r12 queued with no length, worker or metrics yet.
google::protobuf::RepeatedPtrField<v1::Run> TwoRuns() {
  google::protobuf::RepeatedPtrField<v1::Run> runs;
  v1::Run* r1 = runs.Add();
  *r1 = MakeRun("r1", "s1", "s/a", "sgt", v1::RUN_STATE_RUNNING, 120, 300);
  r1->set_attempt(1);
  r1->set_worker_id("w2");
  r1->mutable_metrics()->set_loss(5.1234);
  r1->mutable_metrics()->set_val_ppl(170.314);
  *runs.Add() = MakeRun("r12", "s2", "s/longer-name", "vanilla", v1::RUN_STATE_QUEUED, 0, 0);
  return runs;
}

TEST(RunsTableTest, ColumnsLineUpNumbersRightAlignedDashesForWhatIsNotSet) {
  EXPECT_EQ(RunsTable(TwoRuns(), /*with_sweep=*/false),
            "ID   NAME           VARIANT  STATE       STEP  ATTEMPT  WORKER   LOSS  VAL PPL\n"
            "r1   s/a            sgt      running  120/300        1  w2      5.123   170.31\n"
            "r12  s/longer-name  vanilla  queued       0/?        0  -           -        -\n");
}

TEST(RunsTableTest, TheSweepColumnComesSecond) {
  EXPECT_EQ(
      RunsTable(TwoRuns(), /*with_sweep=*/true),
      "ID   SWEEP  NAME           VARIANT  STATE       STEP  ATTEMPT  WORKER   LOSS  VAL PPL\n"
      "r1   s1     s/a            sgt      running  120/300        1  w2      5.123   170.31\n"
      "r12  s2     s/longer-name  vanilla  queued       0/?        0  -           -        -\n");
}

TEST(RunsTableTest, AMultiNodeRunAddsNodesByDevicesAndListsItsWorkers) {
  google::protobuf::RepeatedPtrField<v1::Run> runs = TwoRuns();
  v1::Run* gang = runs.Add();
  *gang = MakeRun("r13", "s2", "s/dp", "sgt", v1::RUN_STATE_RUNNING, 5, 100);
  gang->set_attempt(1);
  gang->set_nodes(2);
  gang->set_devices(4);
  gang->set_worker_id("w1");
  gang->add_worker_ids("w1");
  gang->add_worker_ids("w3");
  EXPECT_EQ(RunsTable(runs, /*with_sweep=*/false),
            "ID   NAME           VARIANT  STATE       STEP  ATTEMPT  NODES x DEV  WORKER   LOSS  "
            "VAL PPL\n"
            "r1   s/a            sgt      running  120/300        1        1 x 0  w2      5.123   "
            "170.31\n"
            "r12  s/longer-name  vanilla  queued       0/?        0        1 x 0  -           -   "
            "     -\n"
            "r13  s/dp           sgt      running    5/100        1        2 x 4  w1+w3       -   "
            "     -\n");
}

TEST(ShowRunTest, AMultiNodeRunShowsItsRanksAndItsWorkersByNode) {
  v1::GetRunResponse response;
  *response.mutable_run() = MakeRun("r13", "s2", "s/dp", "sgt", v1::RUN_STATE_RUNNING, 5, 100);
  response.mutable_run()->set_nodes(2);
  response.mutable_run()->set_devices(4);
  response.mutable_run()->set_worker_id("w1");
  response.mutable_run()->add_worker_ids("w1");
  response.mutable_run()->add_worker_ids("w3");
  const std::string text = ShowRun(response, absl::UTCTimeZone());
  EXPECT_TRUE(absl::StrContains(text, "devices        4 on each of 2 nodes (8 ranks)\n")) << text;
  EXPECT_TRUE(absl::StrContains(text, "worker         w1 (node 0), w3 (node 1)\n")) << text;
}

TEST(RunsTextTest, TheTableOrWhyThereIsNone) {
  v1::ListRunsResponse response;
  EXPECT_EQ(RunsText(response, "", false), "no runs\n");
  EXPECT_EQ(RunsText(response, "s4", false), "no runs in s4\n");
  EXPECT_EQ(RunsText(response, "", true), "no runs in the states asked for\n");
  EXPECT_EQ(RunsText(response, "s4", true), "no runs in s4 in the states asked for\n");
  *response.mutable_runs() = TwoRuns();
  EXPECT_EQ(RunsText(response, "s1", false), RunsTable(response.runs(), false));
  EXPECT_EQ(RunsText(response, "", true), RunsTable(response.runs(), true));
}

TEST(SweepsTextTest, OneSweepARowWithItsStateCounts) {
  v1::ListSweepsResponse response;
  EXPECT_EQ(SweepsText(response, absl::UTCTimeZone()),
            "no sweeps yet; submit one with: sgtctl submit FILE\n");
  v1::Sweep* seeds = response.add_sweeps();
  seeds->set_id("s1");
  seeds->set_name("sweep-seeds");
  seeds->set_priority(70);
  seeds->set_max_concurrent(2);
  seeds->set_runs(15);
  seeds->set_created_at(kTime);
  v1::StateCount* queued = seeds->add_runs_by_state();
  queued->set_state(v1::RUN_STATE_QUEUED);
  queued->set_count(13);
  v1::StateCount* cancelled = seeds->add_runs_by_state();
  cancelled->set_state(v1::RUN_STATE_CANCELLED);
  cancelled->set_count(2);
  v1::Sweep* quick = response.add_sweeps();
  quick->set_id("s10");
  quick->set_name("quickstart");
  quick->set_priority(5);
  quick->set_runs(3);
  quick->set_created_at(kTime + 60);
  EXPECT_EQ(
      SweepsText(response, absl::UTCTimeZone()),
      "ID   NAME         PRIORITY  MAX CONC  RUNS  BY STATE                CREATED\n"
      "s1   sweep-seeds        70         2    15  13 queued, 2 cancelled  2023-11-14 22:13:20\n"
      "s10  quickstart          5         -     3  -                       2023-11-14 22:14:20\n");
}

// A run that forked, ran twice, failed, and has two checkpoints and stored telemetry.
v1::GetRunResponse FailedRun() {
  v1::GetRunResponse response;
  v1::Run& run = *response.mutable_run();
  run = MakeRun("r3", "s1", "seeds/variant=sgt,seed=2", "sgt", v1::RUN_STATE_FAILED, 150, 300);
  run.set_reason("worker lost");
  run.set_priority(50);
  run.set_devices(1);
  run.set_attempt(2);
  run.set_restarts(1);
  v1::Setting* variant = run.add_settings();
  variant->set_key("variant");
  variant->set_value("sgt");
  v1::Setting* seed = run.add_settings();
  seed->set_key("seed");
  seed->set_value("2");
  run.set_parent_run_id("r1");
  run.set_parent_step(100);
  run.set_resume_checkpoint("/ckpt/r3/step-150.pt");
  run.set_config_hash("abc");
  run.set_config_json(R"({"model":{"layers":4}})");
  run.set_created_at(kTime);
  run.set_updated_at(kTime + 65);
  v1::RunMetrics& m = *run.mutable_metrics();
  m.set_loss(5.25);
  m.set_val_loss(5.5);
  m.set_val_ppl(244.69);
  m.set_tokens(61440);
  m.set_tokens_per_s(1234.4);
  m.set_train_flops(1.5e15);
  m.set_vanilla_flops(1.2e15);
  m.set_overhead(0.25);
  m.set_train_seconds(185);
  response.set_decisions(4);
  response.set_entropy_rows(96);
  response.set_scalar_rows(30);
  auto event = [&](double time, int attempt, v1::RunState from, v1::RunState to,
                   const std::string& reason) {
    v1::RunEvent* e = response.add_events();
    e->set_time(time);
    e->set_attempt(attempt);
    e->set_from_state(from);
    e->set_to_state(to);
    e->set_reason(reason);
  };
  event(kTime, 0, v1::RUN_STATE_UNSPECIFIED, v1::RUN_STATE_QUEUED, "submitted");
  event(kTime + 5, 1, v1::RUN_STATE_QUEUED, v1::RUN_STATE_RUNNING, "");
  event(kTime + 65, 2, v1::RUN_STATE_RUNNING, v1::RUN_STATE_FAILED, "worker lost");
  auto checkpoint = [&](int64_t step, int attempt, const std::string& reason, int64_t bytes,
                        double time, const std::string& sha256) {
    v1::CheckpointRecord* c = response.add_checkpoints();
    c->set_step(step);
    c->set_attempt(attempt);
    c->set_reason(reason);
    c->set_bytes(bytes);
    c->set_time(time);
    c->set_sha256(sha256);
    c->set_path(absl::StrCat("/ckpt/r3/step-", step, ".pt"));
  };
  checkpoint(100, 1, "boundary", 1536, kTime + 30, "0123456789abcdef0123");
  checkpoint(150, 2, "pause", 3 << 20, kTime + 60, "fedcba9876543210fedc");
  return response;
}

TEST(ShowRunTest, EveryFieldThenTransitionsAndCheckpoints) {
  EXPECT_EQ(
      ShowRun(FailedRun(), absl::UTCTimeZone()),
      "run            r3\n"
      "sweep          s1\n"
      "name           seeds/variant=sgt,seed=2\n"
      "variant        sgt\n"
      "state          failed (worker lost)\n"
      "priority       50\n"
      "devices        1\n"
      "step           150/300\n"
      "attempt        2\n"
      "restarts       1\n"
      "worker         -\n"
      "settings       variant=sgt seed=2\n"
      "forked from    r1 at step 100\n"
      "resume from    /ckpt/r3/step-150.pt\n"
      "config hash    abc\n"
      "created        2023-11-14 22:13:20\n"
      "updated        2023-11-14 22:14:25\n"
      "loss           5.2500\n"
      "val loss       5.5000\n"
      "val ppl        244.69\n"
      "tokens         61440\n"
      "tokens/s       1234\n"
      "train FLOPs    1.50e15 (1.5 PFLOP)\n"
      "vanilla FLOPs  1.20e15 (1.2 PFLOP)\n"
      "overhead       +25.0%\n"
      "train time     3m05s\n"
      "stored         4 decisions, 96 entropy rows, 30 scalar rows\n"
      "config:\n"
      "  {\n"
      "    \"model\": {\n"
      "      \"layers\": 4\n"
      "    }\n"
      "  }\n"
      "summary:\n"
      "  - (no attempt has finished or paused)\n"
      "\n"
      "state transitions:\n"
      "TIME                 ATTEMPT  TRANSITION        REASON\n"
      "2023-11-14 22:13:20        0  (new) → queued    submitted\n"
      "2023-11-14 22:13:25        1  queued → running\n"
      "2023-11-14 22:14:25        2  running → failed  worker lost\n"
      "\n"
      "checkpoints:\n"
      "STEP  ATTEMPT  REASON       SIZE  TIME                 SHA256        PATH\n"
      " 100        1  boundary  1.5 KiB  2023-11-14 22:13:50  0123456789ab  /ckpt/r3/step-100.pt\n"
      " 150        2  pause     3.0 MiB  2023-11-14 22:14:20  fedcba987654  "
      "/ckpt/r3/step-150.pt\n");
}

TEST(ShowRunTest, TaskScoresAreListedWithTheirStepAndMean) {
  v1::GetRunResponse response;
  *response.mutable_run() = MakeRun("r4", "s1", "n", "sgt", v1::RUN_STATE_SUCCEEDED, 60, 60);
  v1::RunMetrics* m = response.mutable_run()->mutable_metrics();
  for (const auto& [group, acc] : std::vector<std::pair<std::string, double>>{{"", 0.275},
                                                                            {"add", 0.5}}) {
    v1::TaskAccuracy* t = m->add_tasks();
    t->set_task("arithmetic");
    t->set_group(group);
    t->set_items(group.empty() ? 40 : 14);
    t->set_acc(acc);
    t->set_acc_norm(0.3);
    t->set_step(60);
  }
  m->set_acc(0.275);
  m->set_acc_norm(0.3);
  const std::string text = ShowRun(response, absl::UTCTimeZone());
  EXPECT_TRUE(absl::StrContains(
      text, "task scores at step 60 (acc 27.5%, acc_norm 30.0% over the tasks):\n"
            "TASK        GROUP  ITEMS    ACC  ACC_NORM\n"
            "arithmetic  -         40  27.5%     30.0%\n"
            "arithmetic  add       14  50.0%     30.0%\n"))
      << text;
  // A run without scores has no such section.
  response.mutable_run()->mutable_metrics()->clear_tasks();
  EXPECT_FALSE(absl::StrContains(ShowRun(response, absl::UTCTimeZone()), "task scores"));
}

TEST(ShowRunTest, ANewRunSaysWhatItHasNotGotYet) {
  v1::GetRunResponse response;
  *response.mutable_run() = MakeRun("r9", "s1", "n", "vanilla", v1::RUN_STATE_QUEUED, 0, 300);
  response.mutable_run()->set_summary_json(R"({"final_step":0})");
  std::string text = ShowRun(response, absl::UTCTimeZone());
  EXPECT_TRUE(absl::StrContains(text, "\nstate          queued\n")) << text;  // no reason
  EXPECT_TRUE(absl::StrContains(text, "\nforked from    -\n")) << text;
  EXPECT_TRUE(absl::StrContains(text, "\nresume from    - (a fresh start)\n")) << text;
  EXPECT_TRUE(absl::StrContains(text, "\nconfig hash    -\n")) << text;
  EXPECT_TRUE(absl::StrContains(text, "\ncreated        -\n")) << text;
  EXPECT_TRUE(absl::StrContains(text, "\ntrain time     -\n")) << text;
  EXPECT_TRUE(
      absl::StrContains(text, "\nconfig:\n  -\nsummary:\n  {\n    \"final_step\": 0\n  }\n"))
      << text;
  EXPECT_TRUE(absl::EndsWith(text, "\nstate transitions:\n  none\n\ncheckpoints:\n  none\n"))
      << text;
}

TEST(ShowSweepTest, FieldsRunsAndTheSweepFileIndented) {
  v1::GetSweepResponse response;
  v1::Sweep& sweep = *response.mutable_sweep();
  sweep.set_id("s1");
  sweep.set_name("seeds");
  sweep.set_source_name("seeds.yaml");
  sweep.set_priority(50);
  sweep.set_max_restarts(2);
  sweep.set_created_at(kTime);
  sweep.set_runs(2);
  v1::StateCount* running = sweep.add_runs_by_state();
  running->set_state(v1::RUN_STATE_RUNNING);
  running->set_count(1);
  v1::StateCount* queued = sweep.add_runs_by_state();
  queued->set_state(v1::RUN_STATE_QUEUED);
  queued->set_count(1);
  sweep.set_source_yaml("name: seeds\nbase: {variant: sgt}\n\n\n");
  *response.mutable_runs() = TwoRuns();
  EXPECT_EQ(ShowSweep(response, absl::UTCTimeZone()),
            "sweep           s1\n"
            "name            seeds\n"
            "source          seeds.yaml\n"
            "priority        50\n"
            "max concurrent  - (no limit)\n"
            "max restarts    2\n"
            "created         2023-11-14 22:13:20\n"
            "runs            2 (1 queued, 1 running)\n"
            "\n"
            "runs:\n" +
                RunsTable(response.runs(), false) +
                "\n"
                "sweep file (seeds.yaml):\n"
                "  name: seeds\n"
                "  base: {variant: sgt}\n");

  sweep.set_max_concurrent(3);
  sweep.clear_source_name();
  response.clear_runs();
  std::string text = ShowSweep(response, absl::UTCTimeZone());
  EXPECT_TRUE(absl::StrContains(text, "\nmax concurrent  3\n")) << text;
  EXPECT_TRUE(absl::StrContains(text, "\nsource          -\n")) << text;
  EXPECT_TRUE(absl::StrContains(text, "\nruns:\n  none\n\nsweep file (-):\n  name: seeds\n"))
      << text;
}

TEST(WorkersTextTest, LeasesAndLastSeenRelativeToNow) {
  v1::ListWorkersResponse response;
  EXPECT_EQ(WorkersText(response, kTime),
            "no workers have registered; start sgt-worker on a machine with devices\n");
  v1::Worker* gpu = response.add_workers();
  gpu->set_id("w1");
  gpu->set_name("gpu-box");
  gpu->set_hostname("node7");
  gpu->set_connected(true);
  gpu->add_devices()->set_id("cuda:0");
  gpu->add_devices()->set_id("cuda:1");
  gpu->set_free_devices(1);
  gpu->add_run_ids("r1");
  gpu->add_run_ids("r12");
  gpu->set_lease_expires_at(kTime + 25);
  gpu->set_last_seen(kTime - 3);
  v1::Worker* gone = response.add_workers();
  gone->set_id("w10");
  gone->set_name("cpu");
  gone->set_hostname("laptop.local");
  gone->add_devices()->set_id("cpu:0");
  gone->set_lease_expires_at(kTime - 190);
  gone->set_last_seen(kTime + 2);  // its clock ahead of ours: seen now, not in the future
  v1::Worker* fresh = response.add_workers();
  fresh->set_id("w11");
  fresh->set_name("new");
  fresh->set_hostname("h");
  fresh->set_connected(true);
  fresh->set_last_seen(kTime - 7200);
  EXPECT_EQ(
      WorkersText(response, kTime),
      "ID   NAME     HOST          CONNECTED  DEVICES  RUNS    LEASE              LAST SEEN\n"
      "w1   gpu-box  node7         yes            1/2  r1,r12  expires in 25s     3s ago\n"
      "w10  cpu      laptop.local  no             0/1  -       expired 3m10s ago  in 0ms\n"
      "w11  new      h             yes            0/0  -       -                  2h00m ago\n");
}

}  // namespace
}  // namespace sgt::cli
