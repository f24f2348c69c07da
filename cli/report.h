// `sgtctl report`: the paper's Table 1 for one sweep. Succeeded runs that differ only in
// train.seed form one row (the variant and the step count are part of the row), with the mean
// and sample standard deviation over seeds of validation perplexity, training FLOPs, overhead
// vs vanilla and throughput, and of the zero-shot task accuracies (eval.tasks: one column per
// task, and their macro mean) when some run was scored. Pure logic over Run messages; tested in
// tests/cli/report_test.cc.
//
//   Report report = BuildReport(response.sweep(), {response.runs().begin(),
//   response.runs().end()}); std::cout << (json ? ReportJson(report) : RenderReportTable(report));
#ifndef SGT_CLI_REPORT_H_
#define SGT_CLI_REPORT_H_

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "sgt/v1/types.pb.h"

namespace sgt::cli {

// Mean and sample standard deviation (n - 1 in the denominator) over seeds; no std for one seed.
struct SeedStat {
  double mean = 0;
  std::optional<double> std;
};

// The statistics of `values`; mean 0 and no std for none.
SeedStat Summarize(const std::vector<double>& values);

// One task's accuracy over a row's seeds: nullopt when none of its runs scored the task.
struct TaskStat {
  std::optional<SeedStat> acc;
  std::optional<SeedStat> acc_norm;
};

// One row of Table 1: one variant at one setting of the other grid keys.
struct ReportRow {
  std::string variant;
  // The run's grid values without train.seed and variant (the variant has its own column), in
  // grid order.
  std::vector<std::pair<std::string, std::string>> settings;
  int64_t steps = 0;
  std::vector<std::string> run_ids;  // one per seed, in sweep order
  std::vector<std::string> seeds;    // train.seed of each run ("" when unknown)
  SeedStat val_ppl;
  SeedStat train_flops;
  SeedStat overhead_pct;  // (train_flops / vanilla_flops - 1) * 100
  SeedStat tokens_per_s;
  // Accuracies from each run's final scores (RunMetrics.tasks, their totals), by Report::tasks;
  // `macro`: over each run's macro mean (RunMetrics.acc, acc_norm). A run without a task's score
  // adds nothing to its column.
  std::vector<TaskStat> tasks;
  TaskStat macro;

  int64_t n() const { return static_cast<int64_t>(run_ids.size()); }
};

// Runs left out of the table because they have not succeeded, by state.
struct StateRuns {
  v1::RunState state = v1::RUN_STATE_UNSPECIFIED;
  std::vector<std::string> run_ids;
};

struct Report {
  std::string sweep_id;
  std::string sweep_name;
  int64_t runs = 0;                      // every run of the sweep
  std::vector<ReportRow> rows;           // in order of each row's first run
  std::vector<std::string> tasks;        // every task a succeeded run was scored on, sorted
  std::vector<StateRuns> not_succeeded;  // in RunState order
};

// The grid settings that place a run in a row: its grid values without train.seed and variant,
// in grid order, and for a fork its parent ("fork" = "r3@200"): a fork is not another seed.
std::vector<std::pair<std::string, std::string>> RowSettings(const v1::Run& run);
// What runs that are seeds of one row share: the variant, the step count and RowSettings.
std::string RowKey(const v1::Run& run);

// Groups the sweep's succeeded runs by (variant, train.steps, settings minus train.seed).
Report BuildReport(const v1::Sweep& sweep, const std::vector<v1::Run>& runs);

// The table for people, then a line on the runs left out. Accuracies are in percent, one ACC
// column per task and ACC AVG (their macro mean); `acc_norm` adds the ACC_NORM columns.
struct ReportTableOptions {
  bool acc_norm = false;
};
std::string RenderReportTable(const Report& report, const ReportTableOptions& options = {});

// The report as one JSON object (docs/cli.md, "report"); a std of one seed is null.
std::string ReportJson(const Report& report);

}  // namespace sgt::cli

#endif  // SGT_CLI_REPORT_H_
