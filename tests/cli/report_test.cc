// Tests for `sgtctl report` (cli/report.h): grouping runs into Table 1 rows by everything but
// the seed, mean and sample std over seeds, and the runs left out.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <utility>
#include <vector>

#include "cli/report.h"
#include "nlohmann/json.hpp"

namespace sgt::cli {
namespace {

using Json = nlohmann::json;

v1::Sweep MakeSweep() {
  v1::Sweep sweep;
  sweep.set_id("s3");
  sweep.set_name("sweep-seeds");
  return sweep;
}

struct RunSpec {
  std::string id;
  std::string variant;
  std::vector<std::pair<std::string, std::string>> settings;
  v1::RunState state = v1::RUN_STATE_SUCCEEDED;
  double val_ppl = 100;
  double train_flops = 1e12;
  double overhead = 0;
  double tokens_per_s = 1000;
  int64_t steps = 300;
};

v1::Run MakeRun(const RunSpec& spec) {
  v1::Run run;
  run.set_id(spec.id);
  run.set_sweep_id("s3");
  run.set_variant(spec.variant);
  run.set_state(spec.state);
  run.set_steps(spec.steps);
  for (const auto& [key, value] : spec.settings) {
    v1::Setting* s = run.add_settings();
    s->set_key(key);
    s->set_value(value);
  }
  run.mutable_metrics()->set_val_ppl(spec.val_ppl);
  run.mutable_metrics()->set_train_flops(spec.train_flops);
  run.mutable_metrics()->set_overhead(spec.overhead);
  run.mutable_metrics()->set_tokens_per_s(spec.tokens_per_s);
  return run;
}

RunSpec Sgt(const std::string& id, const std::string& k_max, const std::string& seed,
            double val_ppl) {
  RunSpec spec;
  spec.id = id;
  spec.variant = "sgt";
  spec.settings = {{"variant", "sgt"}, {"growth.k_max", k_max}, {"train.seed", seed}};
  spec.val_ppl = val_ppl;
  return spec;
}

TEST(SummarizeTest, MeanAndSampleStd) {
  SeedStat stat = Summarize({1, 2, 3, 4});
  EXPECT_DOUBLE_EQ(stat.mean, 2.5);
  ASSERT_TRUE(stat.std.has_value());
  // Sample std: sqrt(5 / 3), not the population's sqrt(5 / 4).
  EXPECT_DOUBLE_EQ(*stat.std, std::sqrt(5.0 / 3.0));
  SeedStat one = Summarize({7});
  EXPECT_DOUBLE_EQ(one.mean, 7);
  EXPECT_FALSE(one.std.has_value());
  EXPECT_FALSE(Summarize({}).std.has_value());
}

TEST(BuildReportTest, SeedsMergeIntoOneRow) {
  Report report = BuildReport(MakeSweep(),
                              {MakeRun(Sgt("r1", "1", "1", 100)), MakeRun(Sgt("r2", "1", "2", 102)),
                               MakeRun(Sgt("r3", "1", "3", 104))});
  ASSERT_EQ(report.rows.size(), 1u);
  const ReportRow& row = report.rows[0];
  EXPECT_EQ(row.variant, "sgt");
  EXPECT_EQ(row.n(), 3);
  EXPECT_EQ(row.run_ids, std::vector<std::string>({"r1", "r2", "r3"}));
  EXPECT_EQ(row.seeds, std::vector<std::string>({"1", "2", "3"}));
  // The seed and the variant are not settings of the row.
  EXPECT_EQ(row.settings,
            (std::vector<std::pair<std::string, std::string>>{{"growth.k_max", "1"}}));
  EXPECT_DOUBLE_EQ(row.val_ppl.mean, 102);
  ASSERT_TRUE(row.val_ppl.std.has_value());
  EXPECT_DOUBLE_EQ(*row.val_ppl.std, 2);
  EXPECT_TRUE(report.not_succeeded.empty());
}

TEST(BuildReportTest, AForkIsItsOwnRowNotAnotherSeed) {
  v1::Run fork = MakeRun(Sgt("r4", "1", "1", 90));
  fork.set_parent_run_id("r1");
  fork.set_parent_step(40);
  Report report = BuildReport(MakeSweep(), {MakeRun(Sgt("r1", "1", "1", 100)), fork});
  ASSERT_EQ(report.rows.size(), 2u);
  EXPECT_EQ(report.rows[0].n(), 1);
  EXPECT_EQ(report.rows[1].run_ids, std::vector<std::string>({"r4"}));
  EXPECT_EQ(report.rows[1].settings.back(), (std::pair<std::string, std::string>{"fork", "r1@40"}));
}

TEST(BuildReportTest, UnreportedMetricsAreNotAveragedAsZero) {
  RunSpec no_eval = Sgt("r2", "1", "2", 0);  // evaluation off: no val_ppl
  Report report = BuildReport(MakeSweep(), {MakeRun(Sgt("r1", "1", "1", 100)), MakeRun(no_eval)});
  ASSERT_EQ(report.rows.size(), 1u);
  EXPECT_EQ(report.rows[0].n(), 2);
  EXPECT_DOUBLE_EQ(report.rows[0].val_ppl.mean, 100);
  EXPECT_FALSE(report.rows[0].val_ppl.std.has_value());
  EXPECT_DOUBLE_EQ(report.rows[0].train_flops.mean, 1e12);
}

TEST(BuildReportTest, DifferentSettingsVariantsOrStepsDoNotMerge) {
  RunSpec other_variant = Sgt("r3", "1", "1", 120);
  other_variant.variant = "block_loop";
  other_variant.settings[0].second = "block_loop";
  RunSpec longer = Sgt("r4", "1", "2", 90);
  longer.steps = 600;
  Report report =
      BuildReport(MakeSweep(), {MakeRun(Sgt("r1", "1", "1", 100)), MakeRun(Sgt("r2", "2", "1", 98)),
                                MakeRun(other_variant), MakeRun(longer)});
  ASSERT_EQ(report.rows.size(), 4u);
  for (const ReportRow& row : report.rows) EXPECT_EQ(row.n(), 1);
  // Rows keep the order of their first run.
  EXPECT_EQ(report.rows[0].run_ids[0], "r1");
  EXPECT_EQ(report.rows[1].run_ids[0], "r2");
  EXPECT_EQ(report.rows[1].settings[0].second, "2");
  EXPECT_EQ(report.rows[2].variant, "block_loop");
  EXPECT_EQ(report.rows[3].steps, 600);
}

TEST(BuildReportTest, SettingsInAnotherOrderStillMerge) {
  RunSpec reordered = Sgt("r2", "1", "2", 110);
  std::swap(reordered.settings[0], reordered.settings[2]);
  Report report = BuildReport(MakeSweep(), {MakeRun(Sgt("r1", "1", "1", 100)), MakeRun(reordered)});
  ASSERT_EQ(report.rows.size(), 1u);
  EXPECT_EQ(report.rows[0].n(), 2);
}

TEST(BuildReportTest, OneSeedHasNoStd) {
  Report report = BuildReport(MakeSweep(), {MakeRun(Sgt("r1", "1", "1", 100))});
  ASSERT_EQ(report.rows.size(), 1u);
  EXPECT_FALSE(report.rows[0].val_ppl.std.has_value());
  EXPECT_FALSE(report.rows[0].tokens_per_s.std.has_value());

  std::string table = RenderReportTable(report);
  EXPECT_NE(table.find("100.00 ± -"), std::string::npos) << table;

  Json json = Json::parse(ReportJson(report));
  EXPECT_TRUE(json["rows"][0]["val_ppl"]["std"].is_null());
  EXPECT_EQ(json["rows"][0]["val_ppl"]["mean"], 100.0);
  EXPECT_EQ(json["rows"][0]["n"], 1);
}

TEST(BuildReportTest, RunsNotSucceededAreLeftOutAndCounted) {
  RunSpec failed = Sgt("r4", "1", "3", 5000);
  failed.state = v1::RUN_STATE_FAILED;
  RunSpec running = Sgt("r5", "1", "4", 300);
  running.state = v1::RUN_STATE_RUNNING;
  RunSpec failed_too = Sgt("r6", "2", "1", 7000);
  failed_too.state = v1::RUN_STATE_FAILED;
  Report report = BuildReport(MakeSweep(),
                              {MakeRun(Sgt("r1", "1", "1", 100)), MakeRun(Sgt("r2", "1", "2", 102)),
                               MakeRun(failed), MakeRun(running), MakeRun(failed_too)});
  ASSERT_EQ(report.rows.size(), 1u);
  EXPECT_EQ(report.rows[0].n(), 2);
  EXPECT_DOUBLE_EQ(report.rows[0].val_ppl.mean, 101);  // the failed 5000 is not averaged in
  EXPECT_EQ(report.runs, 5);
  ASSERT_EQ(report.not_succeeded.size(), 2u);
  EXPECT_EQ(report.not_succeeded[0].state, v1::RUN_STATE_RUNNING);  // RunState order
  EXPECT_EQ(report.not_succeeded[0].run_ids, std::vector<std::string>({"r5"}));
  EXPECT_EQ(report.not_succeeded[1].state, v1::RUN_STATE_FAILED);
  EXPECT_EQ(report.not_succeeded[1].run_ids, std::vector<std::string>({"r4", "r6"}));

  std::string table = RenderReportTable(report);
  EXPECT_NE(table.find("2 of 5 runs succeeded"), std::string::npos) << table;
  EXPECT_NE(table.find("not in the table: 1 running (r5), 2 failed (r4, r6)"), std::string::npos)
      << table;

  Json json = Json::parse(ReportJson(report));
  ASSERT_EQ(json["not_succeeded"].size(), 2u);
  EXPECT_EQ(json["not_succeeded"][1]["state"], "failed");
  EXPECT_EQ(json["not_succeeded"][1]["count"], 2);
}

TEST(BuildReportTest, OverheadIsAPercentageAndEveryMetricIsAveraged) {
  RunSpec a = Sgt("r1", "1", "1", 100);
  a.overhead = 0.02;
  a.train_flops = 6.4e12;
  a.tokens_per_s = 1000;
  RunSpec b = Sgt("r2", "1", "2", 100);
  b.overhead = 0.04;
  b.train_flops = 6.6e12;
  b.tokens_per_s = 3000;
  Report report = BuildReport(MakeSweep(), {MakeRun(a), MakeRun(b)});
  ASSERT_EQ(report.rows.size(), 1u);
  const ReportRow& row = report.rows[0];
  EXPECT_NEAR(row.overhead_pct.mean, 3.0, 1e-12);
  EXPECT_NEAR(row.train_flops.mean, 6.5e12, 1);
  EXPECT_DOUBLE_EQ(row.tokens_per_s.mean, 2000);
  EXPECT_NEAR(*row.tokens_per_s.std, std::sqrt(2.0) * 1000, 1e-9);

  std::string table = RenderReportTable(report);
  EXPECT_NE(table.find("+3.0%"), std::string::npos) << table;
  EXPECT_NE(table.find("6.50e12"), std::string::npos) << table;
  EXPECT_NE(table.find("2000 ± 1414"), std::string::npos) << table;
  EXPECT_NE(table.find("growth.k_max=1"), std::string::npos) << table;

  Json json = Json::parse(ReportJson(report));
  EXPECT_NEAR(json["rows"][0]["overhead_pct"]["mean"].get<double>(), 3.0, 1e-12);
  EXPECT_EQ(json["rows"][0]["settings"], Json::parse(R"({"growth.k_max": "1"})"));
  EXPECT_EQ(json["rows"][0]["runs"], Json::array({"r1", "r2"}));
  EXPECT_EQ(json["sweep"]["id"], "s3");
}

// A run's final task scores as the coordinator keeps them (RunMetrics.tasks from summary.json).
void Score(v1::Run& run, const std::string& task, double acc, double acc_norm,
           const std::string& group = "") {
  v1::TaskAccuracy* t = run.mutable_metrics()->add_tasks();
  t->set_task(task);
  t->set_group(group);
  t->set_items(40);
  t->set_acc(acc);
  t->set_acc_norm(acc_norm);
  t->set_step(300);
}

TEST(BuildReportTest, TaskAccuraciesAreAveragedOverSeedsPerTaskAndTheirMean) {
  v1::Run a = MakeRun(Sgt("r1", "1", "1", 100));
  Score(a, "arith", 0.25, 0.5);
  Score(a, "hella", 0.0, 0.1);  // 0 is a score, not "not reported"
  Score(a, "hella", 0.9, 0.9, "wiki");  // a group: no column
  a.mutable_metrics()->set_acc(0.125);
  a.mutable_metrics()->set_acc_norm(0.3);
  v1::Run b = MakeRun(Sgt("r2", "1", "2", 102));
  Score(b, "arith", 0.35, 0.6);
  Score(b, "hella", 0.1, 0.3);
  b.mutable_metrics()->set_acc(0.225);
  b.mutable_metrics()->set_acc_norm(0.45);
  RunSpec plain = Sgt("r3", "2", "1", 99);  // another row, not scored
  Report report = BuildReport(MakeSweep(), {a, b, MakeRun(plain)});
  EXPECT_EQ(report.tasks, (std::vector<std::string>{"arith", "hella"}));
  ASSERT_EQ(report.rows.size(), 2u);
  const ReportRow& row = report.rows[0];
  ASSERT_EQ(row.tasks.size(), 2u);
  ASSERT_TRUE(row.tasks[0].acc.has_value());
  EXPECT_DOUBLE_EQ(row.tasks[0].acc->mean, 0.3);
  EXPECT_NEAR(*row.tasks[0].acc->std, std::sqrt(0.005), 1e-12);
  EXPECT_DOUBLE_EQ(row.tasks[1].acc->mean, 0.05);
  EXPECT_DOUBLE_EQ(row.tasks[1].acc_norm->mean, 0.2);
  EXPECT_DOUBLE_EQ(row.macro.acc->mean, 0.175);
  EXPECT_DOUBLE_EQ(row.macro.acc_norm->mean, 0.375);
  EXPECT_FALSE(report.rows[1].tasks[0].acc.has_value());
  EXPECT_FALSE(report.rows[1].macro.acc.has_value());

  // Text: ACC columns in percent, mean ± std; acc_norm only with the option.
  std::string table = RenderReportTable(report);
  EXPECT_NE(table.find("ACC arith"), std::string::npos) << table;
  EXPECT_NE(table.find("ACC AVG"), std::string::npos) << table;
  EXPECT_NE(table.find("30.0 ± 7.1"), std::string::npos) << table;   // arith
  EXPECT_NE(table.find("5.0 ± 7.1"), std::string::npos) << table;    // hella
  EXPECT_NE(table.find("17.5 ± 7.1"), std::string::npos) << table;   // the mean over tasks
  EXPECT_EQ(table.find("ACC_NORM"), std::string::npos) << table;
  EXPECT_EQ(table.find("wiki"), std::string::npos) << table;
  EXPECT_NE(table.find("ACC: zero-shot accuracy"), std::string::npos) << table;
  ReportTableOptions norm;
  norm.acc_norm = true;
  table = RenderReportTable(report, norm);
  EXPECT_NE(table.find("ACC_NORM hella"), std::string::npos) << table;
  EXPECT_NE(table.find("37.5 ± 10.6"), std::string::npos) << table;  // acc_norm mean over tasks

  // JSON: the fractions, a task nobody in the row scored is null.
  Json json = Json::parse(ReportJson(report));
  EXPECT_EQ(json["tasks"], Json::array({"arith", "hella"}));
  EXPECT_DOUBLE_EQ(json["rows"][0]["tasks"]["arith"]["acc"]["mean"].get<double>(), 0.3);
  EXPECT_NEAR(json["rows"][0]["tasks"]["arith"]["acc"]["std"].get<double>(), std::sqrt(0.005),
              1e-12);
  EXPECT_DOUBLE_EQ(json["rows"][0]["acc"]["mean"].get<double>(), 0.175);
  EXPECT_TRUE(json["rows"][1]["tasks"]["arith"]["acc"].is_null());
  EXPECT_TRUE(json["rows"][1]["acc"].is_null());
}

TEST(BuildReportTest, NoTaskColumnsWithoutScores) {
  Report report = BuildReport(MakeSweep(), {MakeRun(Sgt("r1", "1", "1", 100))});
  EXPECT_TRUE(report.tasks.empty());
  EXPECT_EQ(RenderReportTable(report).find("ACC"), std::string::npos);
  Json json = Json::parse(ReportJson(report));
  EXPECT_FALSE(json.contains("tasks"));
  EXPECT_FALSE(json["rows"][0].contains("acc"));
}

TEST(BuildReportTest, SeedComesFromTheConfigWhenItIsNotAGridKey) {
  RunSpec spec;
  spec.id = "r1";
  spec.variant = "vanilla";
  spec.settings = {{"variant", "vanilla"}};
  v1::Run run = MakeRun(spec);
  run.set_config_json(R"({"train": {"seed": 7, "steps": 300}, "variant": "vanilla"})");
  Report report = BuildReport(MakeSweep(), {run});
  ASSERT_EQ(report.rows.size(), 1u);
  EXPECT_EQ(report.rows[0].seeds, std::vector<std::string>({"7"}));
  EXPECT_NE(RenderReportTable(report).find("vanilla  -"), std::string::npos)
      << RenderReportTable(report);
}

TEST(BuildReportTest, NoSucceededRunsSaysSo) {
  RunSpec queued = Sgt("r1", "1", "1", 0);
  queued.state = v1::RUN_STATE_QUEUED;
  Report report = BuildReport(MakeSweep(), {MakeRun(queued)});
  EXPECT_TRUE(report.rows.empty());
  std::string table = RenderReportTable(report);
  EXPECT_NE(table.find("no succeeded runs yet"), std::string::npos) << table;
  EXPECT_NE(table.find("1 queued (r1)"), std::string::npos) << table;
}

}  // namespace
}  // namespace sgt::cli
