// Tests for sgtctl's text output (cli/format.h): tables, fields, the short texts of a run (step,
// settings, state counts), indented JSON, messages as JSON, progress bars and lines, change
// lines, and the formatting of times, durations, FLOPs, bytes and percentages.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_split.h"
#include "cli/format.h"
#include "nlohmann/json.hpp"
#include "sgt/v1/coordinator.pb.h"

namespace sgt::cli {
namespace {

constexpr double kTime = 1700000000;  // 2023-11-14 22:13:20 UTC

v1::Run MakeRun(const std::string& id, const std::string& name, v1::RunState state, int64_t step,
                int64_t steps, double loss, double val_ppl) {
  v1::Run run;
  run.set_id(id);
  run.set_name(name);
  run.set_state(state);
  run.set_step(step);
  run.set_steps(steps);
  run.mutable_metrics()->set_loss(loss);
  run.mutable_metrics()->set_val_ppl(val_ppl);
  run.set_updated_at(kTime);
  return run;
}

TEST(ProgressBarTest, FillsInProportion) {
  EXPECT_EQ(ProgressBar(150, 300, 10), "[#####-----]");
  EXPECT_EQ(ProgressBar(0, 300, 4), "[----]");
  EXPECT_EQ(ProgressBar(299, 300, 10), "[#########-]");  // never full before the end
  EXPECT_EQ(ProgressBar(300, 300, 4), "[####]");
  EXPECT_EQ(ProgressBar(450, 300, 4), "[####]");  // clamped
  EXPECT_EQ(ProgressBar(10, 0, 4), "[----]");     // unknown length
}

TEST(ProgressLineTest, ShowsIdNameStateBarStepsLossAndPerplexity) {
  v1::Run run = MakeRun("r12", "tiny-sgt", v1::RUN_STATE_RUNNING, 150, 300, 5.1234, 170.314);
  ProgressLayout layout;
  layout.id_width = 3;
  layout.name_width = 8;
  layout.steps_width = 7;
  layout.bar_width = 10;
  EXPECT_EQ(ProgressLine(run, layout),
            "r12  tiny-sgt  running    [#####-----]  150/300  loss 5.123   val ppl 170.31");
}

TEST(ProgressLineTest, NotYetReportedMetricsShowADash) {
  v1::Run run = MakeRun("r3", "q", v1::RUN_STATE_QUEUED, 0, 300, 0, 0);
  ProgressLayout layout;
  layout.id_width = 2;
  layout.name_width = 1;
  layout.steps_width = 5;
  layout.bar_width = 4;
  EXPECT_EQ(ProgressLine(run, layout), "r3  q  queued     [----]  0/300  loss -       val ppl -");
}

TEST(ProgressLineTest, BarsLineUpAndLinesFitTheTerminal) {
  std::vector<v1::Run> runs = {
      MakeRun("r1", "short", v1::RUN_STATE_RUNNING, 10, 300, 6.0, 400),
      MakeRun("r100", "sweep-seeds/variant=block_loop,growth.k_max=2,train.seed=3",
              v1::RUN_STATE_SUCCEEDED, 300, 300, 4.5, 95.5),
      MakeRun("r7", "sweep-seeds/variant=block_loop,growth.k_max=2,train.seed=1",
              v1::RUN_STATE_PAUSED, 1200, 12000, 4.9, 130.25)};
  for (int width : {80, 100, 160}) {
    ProgressLayout layout = FitProgressLayout(runs, width);
    EXPECT_GE(layout.bar_width, 10);
    EXPECT_LE(layout.bar_width, 40);
    size_t bar_column = std::string::npos;
    size_t loss_column = std::string::npos;
    for (const v1::Run& run : runs) {
      std::string line = ProgressLine(run, layout);
      EXPECT_LE(DisplayWidth(line), static_cast<size_t>(width)) << line;
      // Screen columns, not bytes: a cut name starts with the 3-byte "…".
      size_t bar = DisplayWidth(line.substr(0, line.find('[')));
      size_t loss = DisplayWidth(line.substr(0, line.find("loss")));
      if (bar_column == std::string::npos) bar_column = bar;
      if (loss_column == std::string::npos) loss_column = loss;
      EXPECT_EQ(bar, bar_column) << line;
      EXPECT_EQ(loss, loss_column) << line;
    }
  }
  // A name that does not fit keeps its end, where runs of one sweep differ.
  ProgressLayout narrow = FitProgressLayout(runs, 100);
  std::string line = ProgressLine(runs[1], narrow);
  EXPECT_NE(line.find("train.seed=3"), std::string::npos) << line;
  EXPECT_NE(line.find("…"), std::string::npos) << line;
}

TEST(ProgressLineTest, SucceededRunHasAFullBar) {
  v1::Run run = MakeRun("r1", "a", v1::RUN_STATE_SUCCEEDED, 300, 300, 4.0, 60);
  ProgressLayout layout;
  layout.bar_width = 5;
  EXPECT_NE(ProgressLine(run, layout).find("[#####]  300/300"), std::string::npos);
}

TEST(ChangeLineTest, OneLinePerChange) {
  absl::TimeZone utc = absl::UTCTimeZone();
  v1::Run run = MakeRun("r12", "tiny", v1::RUN_STATE_RUNNING, 150, 300, 5.1234, 0);
  EXPECT_EQ(ChangeLine(run, utc), "2023-11-14T22:13:20 r12 running step 150/300 loss 5.123");
  run.mutable_metrics()->set_val_ppl(170.314);
  EXPECT_EQ(ChangeLine(run, utc),
            "2023-11-14T22:13:20 r12 running step 150/300 loss 5.123 val ppl 170.31");
  v1::Run queued = MakeRun("r2", "q", v1::RUN_STATE_QUEUED, 0, 0, 0, 0);
  EXPECT_EQ(ChangeLine(queued, utc), "2023-11-14T22:13:20 r2 queued step 0/?");
}

TEST(ChangeLineTest, FailureReasonIsFoldedOntoTheLine) {
  v1::Run run = MakeRun("r4", "x", v1::RUN_STATE_FAILED, 20, 300, 9.5, 0);
  run.set_reason("sgt-train exited 1:\nloss is nan");
  std::string line = ChangeLine(run, absl::UTCTimeZone());
  EXPECT_EQ(
      line,
      "2023-11-14T22:13:20 r4 failed step 20/300 loss 9.500: sgt-train exited 1: loss is nan");
  // A running run's reason is not news on every line.
  run.set_state(v1::RUN_STATE_RUNNING);
  EXPECT_EQ(ChangeLine(run, absl::UTCTimeZone()).find("exited"), std::string::npos);
}

TEST(TableTest, AlignsColumnsWithoutTrailingSpaces) {
  Table table({"ID", "NAME", "STEP"},
              {Table::Align::kLeft, Table::Align::kLeft, Table::Align::kRight});
  table.AddRow({"r1", "tiny-vanilla", "5/300"});
  table.AddRow({"r10", "sgt", "150/300"});
  table.AddRow({"r11"});  // short rows are padded
  EXPECT_EQ(table.Render(),
            "ID   NAME             STEP\n"
            "r1   tiny-vanilla    5/300\n"
            "r10  sgt           150/300\n"
            "r11\n");
  EXPECT_EQ(table.rows(), 3u);
}

TEST(TableTest, CountsCodePointsNotBytes) {
  Table table({"A", "B"});
  table.AddRow({"queued → running", "x"});
  table.AddRow({"a", "y"});
  std::vector<std::string> lines = absl::StrSplit(table.Render(), '\n');
  ASSERT_GE(lines.size(), 3u);
  // "x" and "y" start in the same column on screen.
  EXPECT_EQ(DisplayWidth(lines[1].substr(0, lines[1].find('x'))),
            DisplayWidth(lines[2].substr(0, lines[2].find('y'))));
}

TEST(TruncateDisplayTest, CutsAtEitherEnd) {
  EXPECT_EQ(TruncateDisplay("abcdef", 10), "abcdef");
  EXPECT_EQ(TruncateDisplay("abcdef", 4), "abc…");
  EXPECT_EQ(TruncateDisplay("abcdef", 4, /*keep_end=*/true), "…def");
  EXPECT_EQ(DisplayWidth(TruncateDisplay("a→b→c→d", 4)), 4u);
  EXPECT_EQ(TruncateDisplay("abc", 0), "");
}

TEST(FormatTest, Flops) {
  EXPECT_EQ(FormatFlops(1.234e15), "1.23e15");
  EXPECT_EQ(FormatFlops(6.281389e12), "6.28e12");
  EXPECT_EQ(FormatFlops(0), "0");
  EXPECT_EQ(FormatFlops(1.5e-3), "1.50e-3");
  EXPECT_EQ(FormatFlopsHuman(1.234e15), "1.2 PFLOP");
  EXPECT_EQ(FormatFlopsHuman(3.5e11), "350 GFLOP");
  EXPECT_EQ(FormatFlopsHuman(12), "12 FLOP");
  EXPECT_EQ(FormatFlopsHuman(999999), "1.0 MFLOP");
}

TEST(FormatTest, DurationsAndRelativeTimes) {
  EXPECT_EQ(FormatDuration(0.85), "850ms");
  EXPECT_EQ(FormatDuration(45), "45s");
  EXPECT_EQ(FormatDuration(185), "3m05s");
  EXPECT_EQ(FormatDuration(7380), "2h03m");
  EXPECT_EQ(FormatDuration(273600), "3d04h");
  EXPECT_EQ(FormatRelative(kTime + 25, kTime), "in 25s");
  EXPECT_EQ(FormatRelative(kTime - 190, kTime), "3m10s ago");
  EXPECT_EQ(FormatRelative(0, kTime), "-");
}

TEST(FormatTest, TimesBytesPercentagesAndMetrics) {
  EXPECT_EQ(FormatTime(kTime, absl::UTCTimeZone()), "2023-11-14 22:13:20");
  EXPECT_EQ(FormatTimeToken(kTime, absl::UTCTimeZone()), "2023-11-14T22:13:20");
  EXPECT_EQ(FormatTime(0), "-");
  EXPECT_EQ(FormatBytes(512), "512 B");
  EXPECT_EQ(FormatBytes(1536), "1.5 KiB");
  EXPECT_EQ(FormatBytes(3LL << 30), "3.0 GiB");
  EXPECT_EQ(FormatPercent(0.123), "+12.3%");
  EXPECT_EQ(FormatPercent(-0.05), "-5.0%");
  EXPECT_EQ(FormatPercent(-1e-9), "+0.0%");
  EXPECT_EQ(FormatMetric(5.12345, 3), "5.123");
  EXPECT_EQ(FormatMetric(0, 3), "-");
}

TEST(FormatTest, RunStateNames) {
  EXPECT_EQ(RunStateName(v1::RUN_STATE_RUNNING), "running");
  EXPECT_EQ(RunStateName(v1::RUN_STATE_SUCCEEDED), "succeeded");
  EXPECT_EQ(RunStateName(static_cast<v1::RunState>(42)), "state(42)");
  EXPECT_TRUE(IsEnded(v1::RUN_STATE_CANCELLED));
  EXPECT_FALSE(IsEnded(v1::RUN_STATE_PAUSED));
  EXPECT_FALSE(IsEnded(v1::RUN_STATE_LOST));
}

TEST(RunTextTest, DashStepOfStepsAndSettings) {
  EXPECT_EQ(Dash(""), "-");
  EXPECT_EQ(Dash("w2"), "w2");
  v1::Run run = MakeRun("r1", "n", v1::RUN_STATE_RUNNING, 120, 300, 0, 0);
  EXPECT_EQ(StepOfSteps(run), "120/300");
  run.set_steps(0);
  EXPECT_EQ(StepOfSteps(run), "120/?");
  EXPECT_EQ(SettingsText(run), "-");
  v1::Setting* variant = run.add_settings();
  variant->set_key("variant");
  variant->set_value("sgt");
  v1::Setting* k_max = run.add_settings();
  k_max->set_key("growth.k_max");
  k_max->set_value("2");
  EXPECT_EQ(SettingsText(run), "variant=sgt growth.k_max=2");  // grid order, not sorted
}

TEST(RunTextTest, StateCountsInEnumOrderMergedAndWithoutZeros) {
  google::protobuf::RepeatedPtrField<v1::StateCount> counts;
  auto add = [&](v1::RunState state, int count) {
    v1::StateCount* c = counts.Add();
    c->set_state(state);
    c->set_count(count);
  };
  EXPECT_EQ(StateCounts(counts), "-");
  add(v1::RUN_STATE_SUCCEEDED, 3);
  add(v1::RUN_STATE_QUEUED, 1);
  add(v1::RUN_STATE_FAILED, 0);
  add(v1::RUN_STATE_RUNNING, 2);
  add(v1::RUN_STATE_QUEUED, 4);
  EXPECT_EQ(StateCounts(counts), "5 queued, 2 running, 3 succeeded");

  std::vector<v1::Run> runs = {MakeRun("r1", "a", v1::RUN_STATE_FAILED, 0, 1, 0, 0),
                               MakeRun("r2", "b", v1::RUN_STATE_RUNNING, 0, 1, 0, 0),
                               MakeRun("r3", "c", v1::RUN_STATE_FAILED, 0, 1, 0, 0)};
  EXPECT_EQ(StateCounts(runs), "1 running, 2 failed");
  EXPECT_EQ(StateCounts(std::vector<v1::Run>()), "-");
}

TEST(FieldsTest, ValuesLineUpTwoSpacesAfterTheLongestKey) {
  EXPECT_EQ(Fields({{"run", "r3"}, {"config hash", "ab12"}, {"step", "0/300"}}),
            "run          r3\n"
            "config hash  ab12\n"
            "step         0/300\n");
  EXPECT_EQ(Fields({}), "");
}

TEST(IndentedJsonTest, PrettyPrintsJsonAndKeepsOtherTextAsItIs) {
  EXPECT_EQ(IndentedJson(R"({"b":[1,2],"a":{"x":"y"}})"),
            "  {\n"
            "    \"a\": {\n"
            "      \"x\": \"y\"\n"
            "    },\n"
            "    \"b\": [\n"
            "      1,\n"
            "      2\n"
            "    ]\n"
            "  }\n");
  EXPECT_EQ(IndentedJson("not json: {\nsecond line"), "  not json: {\n  second line\n");
}

TEST(MessageJsonTest, SnakeCaseNamesDefaultsIncludedAndANewlineAtTheEnd) {
  v1::GetRunResponse response;
  response.mutable_run()->set_id("r3");
  response.mutable_run()->set_config_hash("ab");
  response.set_entropy_rows(12);
  absl::StatusOr<std::string> text = MessageJson(response);
  ASSERT_TRUE(text.ok()) << text.status();
  ASSERT_FALSE(text->empty());
  EXPECT_EQ(text->back(), '\n');
  EXPECT_TRUE(absl::StrContains(*text, "\n \"run\": {\n  \"id\": \"r3\",\n")) << *text;
  nlohmann::json json = nlohmann::json::parse(*text);
  EXPECT_EQ(json["run"]["id"], "r3");
  EXPECT_EQ(json["run"]["config_hash"], "ab");       // the proto's name, not configHash
  EXPECT_EQ(json["run"]["state"], "RUN_STATE_UNSPECIFIED");  // a default value, printed
  EXPECT_EQ(json["run"]["step"], "0");                // int64 as a string (proto3 JSON)
  EXPECT_EQ(json["entropy_rows"], "12");
  EXPECT_TRUE(json["events"].is_array());

  std::string line = CompactJson(response);
  EXPECT_EQ(line.find('\n'), std::string::npos);
  EXPECT_EQ(nlohmann::json::parse(line), json);  // the same JSON on one line
}

}  // namespace
}  // namespace sgt::cli
