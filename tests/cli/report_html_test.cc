// Tests of cli/report_html.cc: the page's figures and tables from runs and telemetry pages.
#include "cli/report_html.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <regex>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "libsgt/core/config.h"

namespace sgt::cli {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

int Count(const std::string& text, const std::string& what) {
  int n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

// The part of the page from the figure `id` to the end of that figure.
std::string Figure(const std::string& page, const std::string& id) {
  size_t begin = page.find(absl::StrCat("data-figure=\"", id, "\""));
  if (begin == std::string::npos) return "";
  return page.substr(begin, page.find("</figure>", begin) - begin);
}

v1::Run MakeRun(const std::string& id, const std::string& variant, int seed,
                v1::RunState state = v1::RUN_STATE_SUCCEEDED, bool fade = false) {
  RunConfig config;
  config.variant = variant == "vanilla" ? Variant::kVanilla : Variant::kSgt;
  config.model.layers = 3;
  config.model.heads = 4;
  config.train.steps = 100;
  config.train.seed = seed;
  config.growth.t_start = 40;
  config.growth.delta_t = 20;
  if (fade) config.growth.transition = HeadTransition::kFade;
  v1::Run run;
  run.set_id(id);
  run.set_name(absl::StrCat(variant, "-", seed));
  run.set_variant(variant);
  run.set_state(state);
  run.set_steps(100);
  run.set_step(state == v1::RUN_STATE_SUCCEEDED ? 100 : 50);
  run.set_config_json(CanonicalJson(config));
  v1::Setting* s = run.add_settings();
  s->set_key("variant");
  s->set_value(variant);
  s = run.add_settings();
  s->set_key("train.seed");
  s->set_value(absl::StrCat(seed));
  run.mutable_metrics()->set_val_ppl(10 + seed);
  run.mutable_metrics()->set_train_flops(1e12);
  return run;
}

// Loss and flops every step up to `last`, entropies (3 layers x 4 heads, and a loop pass that
// must be ignored) every 10 steps.
v1::TelemetryPage Trace(const std::string& run_id, int last, double offset,
                        v1::EntropySignal signal = v1::ENTROPY_SIGNAL_TRAIN) {
  v1::TelemetryPage page;
  page.set_run_id(run_id);
  for (int step = 1; step <= last; ++step) {
    v1::ScalarRow* r = page.add_scalars();
    r->set_step(step);
    r->set_name("loss");
    r->set_value(5.0 - step * 0.01 + offset);
    r = page.add_scalars();
    r->set_step(step);
    r->set_name("flops");
    r->set_value(1e10 * step);
    if (step % 50 == 0) {
      r = page.add_scalars();
      r->set_step(step);
      r->set_name("val_ppl");
      r->set_value(20.0 - step * 0.1);
    }
    if (step % 10 == 0) {
      for (int l = 0; l < 3; ++l) {
        for (int h = 0; h < 4; ++h) {
          v1::EntropyRow* e = page.add_entropy();
          e->set_step(step);
          e->set_signal(signal);
          e->set_layer(l);
          e->set_head(h);
          e->set_loop(0);
          e->set_value(0.25f * static_cast<float>(h));
        }
        v1::EntropyRow* e = page.add_entropy();
        e->set_step(step);
        e->set_signal(signal);
        e->set_layer(l);
        e->set_head(0);
        e->set_loop(1);
        e->set_value(0.9f);
      }
    }
  }
  return page;
}

v1::TelemetryPage Decisions(const std::string& run_id) {
  v1::TelemetryPage page;
  page.set_run_id(run_id);
  v1::GrowthDecision* d = page.add_decisions();
  d->set_step(40);
  d->set_action("activate");
  d->set_layer(2);
  d->set_k(1);
  d->add_heads(0);
  d->add_heads(3);
  d->add_candidates(2);
  d->add_candidates(1);
  d = page.add_decisions();
  d->set_step(60);
  d->set_action("hold");
  d->set_layer(-1);
  d->set_reason("no candidate <above> the threshold");
  d = page.add_decisions();
  d->set_step(80);
  d->set_action("deepen");
  d->set_layer(2);
  d->set_k(2);
  return page;
}

v1::Sweep MakeSweep() {
  v1::Sweep sweep;
  sweep.set_id("s1");
  sweep.set_name("seeds");
  sweep.set_source_yaml("name: seeds\ngrid: {variant: [vanilla, sgt]}\n");
  return sweep;
}

TEST(HtmlEscapeTest, EscapesMarkup) {
  EXPECT_EQ(HtmlEscape("a<b & \"c\" 'd'>"), "a&lt;b &amp; &quot;c&quot; &#39;d&#39;&gt;");
}

TEST(ReportTelemetryTest, KeepsTheBasePassAndTheScalarsTheFiguresDraw) {
  ReportTelemetry telemetry;
  v1::TelemetryPage page = Trace("r1", 20, 0);
  v1::ScalarRow* lr = page.add_scalars();
  lr->set_name("lr");
  telemetry.Add(page);
  const RunTrace* trace = telemetry.Find("r1");
  ASSERT_NE(trace, nullptr);
  EXPECT_EQ(telemetry.rows(), page.scalars_size() + page.entropy_size());
  EXPECT_EQ(trace->loss.size(), 20u);
  EXPECT_EQ(trace->flops.size(), 20u);
  ASSERT_EQ(trace->train_entropy.size(), 2u);
  EXPECT_TRUE(trace->probe_entropy.empty());
  // The loop pass (0.9 at head 0) does not replace the base pass.
  EXPECT_FLOAT_EQ(trace->train_entropy.at(10)[1][0], 0.0f);
  EXPECT_FLOAT_EQ(trace->train_entropy.at(10)[1][3], 0.75f);
  EXPECT_EQ(telemetry.Find("r2"), nullptr);
}

TEST(RenderReportHtmlTest, OneLinePerRowOfTableOneWithSeedsAsABand) {
  std::vector<v1::Run> runs = {MakeRun("r1", "vanilla", 1), MakeRun("r2", "vanilla", 2),
                               MakeRun("r3", "sgt", 1), MakeRun("r4", "sgt", 2)};
  ReportTelemetry telemetry;
  telemetry.Add(Trace("r1", 100, 0.0));
  telemetry.Add(Trace("r2", 100, 0.2));
  telemetry.Add(Trace("r3", 100, -0.1));
  telemetry.Add(Decisions("r3"));
  const std::string page =
      RenderReportHtml(MakeSweep(), runs, telemetry, "s1", HtmlReportOptions());

  EXPECT_THAT(page, HasSubstr("<!DOCTYPE html>"));
  // Self-contained: nothing fetched.
  EXPECT_THAT(page, Not(HasSubstr("http://")));
  EXPECT_THAT(page, Not(HasSubstr("https://")));
  EXPECT_THAT(page, Not(HasSubstr("src=")));
  EXPECT_EQ(Count(page, "<tr data-runs="), 2);
  EXPECT_THAT(page, HasSubstr("data-col=\"val_ppl\" data-mean=\"11.5\" data-std=\"0.7071067811865476\""));

  for (const char* id : {"loss-step", "loss-flops", "ppl-step", "ppl-flops"}) {
    std::string figure = Figure(page, id);
    EXPECT_EQ(Count(figure, "<g class=\"series\""), 2) << id;
    EXPECT_THAT(figure, HasSubstr("data-series=\"2\"")) << id;
  }
  std::string loss = Figure(page, "loss-step");
  // Vanilla's two seeds: a band, and the last point is their mean at step 100.
  EXPECT_THAT(loss, HasSubstr("data-series=\"vanilla\" data-points=\"100\" data-last-x=\"100\" "
                              "data-last-y=\"4.1\""));
  EXPECT_EQ(Count(loss, "class=\"band\""), 2);
  EXPECT_THAT(Figure(page, "loss-flops"), HasSubstr("data-last-x=\"1e+12\""));

  // Per layer: three lines each; Ebar = mean(0, .25, .5, .75), Var = population variance.
  std::string entropy = Figure(page, "entropy-0");
  EXPECT_EQ(Count(entropy, "<g class=\"series\""), 3);
  EXPECT_THAT(entropy, HasSubstr("data-last-y=\"0.375\""));
  EXPECT_THAT(entropy, HasSubstr("train signal"));
  EXPECT_THAT(Figure(page, "variance-0"), HasSubstr("data-last-y=\"0.078125\""));
  // sgt's second seed has no telemetry: one run in the mean.
  EXPECT_THAT(Figure(page, "entropy-1"), HasSubstr("the mean over 1 run"));
  // Heat maps at three of the ten entropy steps, the first and the last among them.
  std::string heat = Figure(page, "heatmap-0");
  EXPECT_EQ(Count(heat, "<svg class=\"series\""), 3);
  EXPECT_THAT(heat, HasSubstr("data-step=\"10\""));
  EXPECT_THAT(heat, HasSubstr("data-step=\"100\""));
  EXPECT_EQ(Count(heat, "<rect "), 3 * 12);

  // Growth: an activation and a deepening of layer 2; the hold as a dashed line.
  std::string timeline = Figure(page, "timeline-r3");
  EXPECT_EQ(Count(timeline, "<g class=\"event\""), 2);
  EXPECT_THAT(timeline, HasSubstr("data-step=\"40\" data-action=\"activate\" data-layer=\"2\""));
  EXPECT_THAT(timeline, HasSubstr("heads 0 3; candidates 2 1"));
  EXPECT_THAT(timeline, HasSubstr("no candidate &lt;above&gt; the threshold"));
  EXPECT_THAT(timeline, Not(HasSubstr("fade window")));
  EXPECT_THAT(Figure(page, "timeline-r1"), HasSubstr("vanilla does not grow"));

  EXPECT_THAT(page, HasSubstr("grid: {variant: [vanilla, sgt]}"));
  EXPECT_THAT(page, HasSubstr("No run failed"));
  EXPECT_THAT(page, Not(HasSubstr("Snapshot:")));
}

TEST(RenderReportHtmlTest, LongSeriesAreDownsampledKeepingTheEnds) {
  std::vector<v1::Run> runs = {MakeRun("r1", "sgt", 1)};
  runs[0].set_steps(5000);
  ReportTelemetry telemetry;
  telemetry.Add(Trace("r1", 5000, 0));
  HtmlReportOptions options;
  options.max_points = 50;
  const std::string page = RenderReportHtml(MakeSweep(), runs, telemetry, "r1", options);
  std::string loss = Figure(page, "loss-step");
  EXPECT_THAT(loss, HasSubstr("data-points=\"50\" data-last-x=\"5000\" data-last-y=\"-45\""));
  // No band for one seed.
  EXPECT_EQ(Count(loss, "class=\"band\""), 0);
  EXPECT_THAT(page, HasSubstr("SGT report: run r1"));
}

TEST(RenderReportHtmlTest, ASnapshotFailuresWithReasonsAndTheFadeWindow) {
  std::vector<v1::Run> runs = {
      MakeRun("r1", "sgt", 1, v1::RUN_STATE_RUNNING, /*fade=*/true),
      MakeRun("r2", "sgt", 2, v1::RUN_STATE_FAILED)};
  runs[1].set_reason("sgt-train exited 1: out of memory");
  ReportTelemetry telemetry;
  telemetry.Add(Trace("r1", 50, 0, v1::ENTROPY_SIGNAL_PROBE));
  telemetry.Add(Decisions("r1"));
  const std::string page =
      RenderReportHtml(MakeSweep(), runs, telemetry, "s1", HtmlReportOptions());
  EXPECT_THAT(page, HasSubstr("<b>Snapshot:</b> 1 run is still going"));
  EXPECT_THAT(page, HasSubstr("No run has succeeded yet."));
  EXPECT_THAT(page, HasSubstr("<table id=\"failed\">"));
  EXPECT_THAT(page, HasSubstr("sgt-train exited 1: out of memory"));
  EXPECT_THAT(Figure(page, "timeline-r1"), HasSubstr("fade window, steps 40-60"));
  EXPECT_THAT(Figure(page, "entropy-0"), HasSubstr("probe signal"));
  // Planned FLOPs from the configuration, beside the measured ones.
  EXPECT_TRUE(std::regex_search(page, std::regex("data-planned=\"[1-9][0-9.e+]*\"")));
  EXPECT_THAT(page, HasSubstr("data-measured=\"1e+12\""));
}

TEST(RenderReportHtmlTest, TableOneHasTaskAccuracyColumnsWhenRunsWereScored) {
  std::vector<v1::Run> runs = {MakeRun("r1", "sgt", 1), MakeRun("r2", "sgt", 2)};
  for (size_t i = 0; i < runs.size(); ++i) {
    v1::TaskAccuracy* t = runs[i].mutable_metrics()->add_tasks();
    t->set_task("arith<x>");
    t->set_items(40);
    t->set_acc(i == 0 ? 0.25 : 0.35);
    t->set_acc_norm(0.5);
    runs[i].mutable_metrics()->set_acc(t->acc());
    runs[i].mutable_metrics()->set_acc_norm(0.5);
  }
  std::string page =
      RenderReportHtml(MakeSweep(), runs, ReportTelemetry(), "s1", HtmlReportOptions());
  EXPECT_THAT(page, HasSubstr("<th>acc arith&lt;x&gt;</th><th>acc avg</th>"));
  EXPECT_THAT(page, HasSubstr("<th>acc_norm arith&lt;x&gt;</th><th>acc_norm avg</th>"));
  // Percent in the cell, the fractions of report --json in its attributes.
  EXPECT_THAT(page, HasSubstr("data-col=\"acc:arith&lt;x&gt;\" data-mean=\"0.3\""));
  EXPECT_THAT(page, HasSubstr(">30.0 ± 7.1</td>"));
  EXPECT_THAT(page, HasSubstr("data-col=\"acc_norm\" data-mean=\"0.5\" data-std=\"0\""));
  // Unscored runs: no such columns.
  page = RenderReportHtml(MakeSweep(), {MakeRun("r1", "sgt", 1)}, ReportTelemetry(), "s1",
                          HtmlReportOptions());
  EXPECT_THAT(page, Not(HasSubstr("<th>acc")));
}

TEST(RenderReportHtmlTest, NoTelemetryYetStillMakesAPage) {
  std::vector<v1::Run> runs = {MakeRun("r1", "sgt", 1, v1::RUN_STATE_QUEUED)};
  const std::string page =
      RenderReportHtml(MakeSweep(), runs, ReportTelemetry(), "s1", HtmlReportOptions());
  EXPECT_THAT(Figure(page, "loss-step"), HasSubstr("no data yet"));
  EXPECT_THAT(Figure(page, "heatmap-0"), HasSubstr("no entropy yet"));
  EXPECT_THAT(page, HasSubstr("</html>"));
}

}  // namespace
}  // namespace sgt::cli
