// Tests for the event log's format (libsgt/core/event_log.cc): every kind written and parsed back
// equal, lines exactly as sgt-train writes them (sorted keys, integers as integers, non-finite
// numbers as null), the summary.json payload, and the parser's errors naming event and field.
#include "libsgt/core/event_log.h"

#include <cmath>
#include <limits>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace sgt::events {
namespace {

using ::testing::HasSubstr;

// Writes `e` at time 12.5, parses it back, and checks kind, step, time and the struct.
template <typename T>
void ExpectRoundTrip(const T& e, bool has_step = true) {
  const std::string line = EventLine(Event(e), 12.5);
  SCOPED_TRACE(line);
  absl::StatusOr<ParsedEvent> p = ParseEventLine(line);
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->kind, EventKind(Event(e)));
  EXPECT_EQ(p->step.has_value(), has_step);
  EXPECT_DOUBLE_EQ(p->time, 12.5);
  ASSERT_TRUE(p->event.has_value());
  ASSERT_TRUE(std::holds_alternative<T>(*p->event));
  EXPECT_TRUE(std::get<T>(*p->event) == e);
}

// The error of parsing `line`: kInvalidArgument, its message.
std::string ParseError(const std::string& line) {
  absl::StatusOr<ParsedEvent> p = ParseEventLine(line);
  if (p.ok()) return "parsed";
  EXPECT_EQ(p.status().code(), absl::StatusCode::kInvalidArgument) << p.status();
  return std::string(p.status().message());
}

StartEvent AStart() {
  StartEvent e;
  e.run = "tiny";
  e.variant = "sgt";
  e.config_json = R"({"model":{"heads":4,"layers":3},"name":"tiny"})";
  e.resumed_from = "/ck/step-0000020.sgtckpt";
  e.step = 20;
  e.steps = 60;
  e.pid = 14282;
  return e;
}

EntropyEvent AnEntropy() {
  EntropyEvent e;
  e.step = 21;
  e.signal = EntropySignal::kProbe;
  e.layers.push_back({0, 0.9999, 3.07e-09, 0, {{0.91, 0.92}}, {{0, 1}}});
  e.layers.push_back({2, 0.9996, 1.27e-07, 1, {{0.81, 0.82}, {0.75}}, {{0, 1}, {1}}});
  return e;
}

DecisionEvent ADecision() {
  GrowthDecision d;
  d.step = 40;
  d.action = GrowthAction::kDeepen;
  d.layer = 2;
  d.k = 2;
  d.heads = {0, 3};
  d.whole_block = false;
  d.candidates = {1, 2};
  d.layer_entropy = {0.99955, 0.9992, 0.99868};
  d.head_entropy = {{0.99975, 0.99961}, {0.99846, 0.9994}, {0.9994, 0.99927}};
  d.reason = "deepen layer 2 to K=2 (Ebar 0.9987, rank 2 of C)";
  return DecisionEventOf(d, EntropySignal::kTrain);
}

RunSummary ASummary() {
  RunSummary s;
  s.run = "tiny";
  s.variant = "sgt";
  s.status = kStatusSucceeded;
  s.step = 24;
  s.steps = 24;
  s.final_loss = 3.21;
  s.validated = true;
  s.val_loss = 3.5;
  s.val_ppl = std::exp(3.5);
  s.extrapolation = {{2, "", 64, 3.25, 25.75, 4}, {1000, "validation split too short"}};
  s.train_flops = 1.5e9;
  s.vanilla_flops = 1.25e9;
  s.overhead_vs_vanilla = 0.2;
  s.probe_flops = 1e6;
  s.eval_flops = 2e6;
  s.tokens = 3072;
  s.train_seconds = 0.75;
  s.tokens_per_s = 4096;
  s.growth_json = R"({"active":[],"growing_layer":-1,"num_layers":3,"phase":"warmup"})";
  s.peak_rss_mb = 210.5;
  s.last_checkpoint = "/out/checkpoints/step-0000024.sgtckpt";
  return s;
}

// Final scores of two tasks, one with groups, as the trainer's hook writes them.
std::vector<eval::TaskScore> SomeScores() {
  return {{"arithmetic", "", 40, 0.275, 0.3},
          {"mmlu", "", 12, 0.5, 0.25},
          {"mmlu", "stem", 5, 0.4, 0.2},
          {"mmlu", "social sciences", 7, 4.0 / 7, 2.0 / 7}};
}

TEST(EventLogTest, EveryKindRoundTrips) {
  ExpectRoundTrip(AStart());
  StartEvent fresh = AStart();
  fresh.resumed_from = "";
  fresh.step = 0;
  ExpectRoundTrip(fresh);
  ExpectRoundTrip(ScalarsEvent{7, {{"flops", 1.5}, {"loss", 2.25}, {"tokens", int64_t{128}}}});
  ExpectRoundTrip(AnEntropy());
  ExpectRoundTrip(EvalEvent{24, 3.89, 49.01});
  ExpectRoundTrip(ExtrapolationEvent{60, 2, 64, 3.25, 25.75});
  ExpectRoundTrip(ADecision());
  ExpectRoundTrip(
      CheckpointEvent{40, "/ck/step-0000040.sgtckpt", 664684, std::string(64, 'a'), "boundary"});
  ExpectRoundTrip(ErrorEvent{22, "non-finite loss"});
  ExpectRoundTrip(EndEventOf(ASummary()));
  RunSummary paused = ASummary();
  paused.status = kStatusPaused;
  paused.validated = false;
  paused.last_checkpoint = "";
  ExpectRoundTrip(EndEventOf(paused));
  ExpectRoundTrip(TaskEvalEventOf(60, task_eval_reason::kFinal, SomeScores()));
  ExpectRoundTrip(TaskEvalEvent{20, task_eval_reason::kCheckpoint, {}});
  RunSummary evaluated = ASummary();
  evaluated.tasks = SomeScores();
  ExpectRoundTrip(EndEventOf(evaluated));
}

TEST(EventLogTest, TaskEvalLineAndNonFiniteScores) {
  EXPECT_EQ(EventLine(TaskEvalEvent{60, "final", {{"arith", "", 40, 0.25, 0.5},
                                                  {"arith", "add", 10, 0.5, 1.0}}},
                      7.0),
            R"({"event":"task_eval","reason":"final","scores":[)"
            R"({"acc":0.25,"acc_norm":0.5,"items":40,"task":"arith"},)"
            R"({"acc":0.5,"acc_norm":1.0,"group":"add","items":10,"task":"arith"}],)"
            R"("step":60,"time":7.0})");
  // A score of no items (NaN) is written as null and read back as NaN.
  const std::string line =
      EventLine(TaskEvalEvent{3, "final", {{"empty", "", 0, std::nan(""), std::nan("")}}}, 1.0);
  absl::StatusOr<ParsedEvent> p = ParseEventLine(line);
  ASSERT_TRUE(p.ok()) << p.status();
  const TaskEvalEvent& e = std::get<TaskEvalEvent>(*p->event);
  ASSERT_EQ(e.scores.size(), 1u);
  EXPECT_TRUE(std::isnan(e.scores[0].acc));
  EXPECT_EQ(p->step, 3);
  EXPECT_EQ(std::string(EventKind(Event(e))), "task_eval");
}

TEST(EventLogTest, TaskEvalErrorsNameTheField) {
  EXPECT_EQ(ParseError(R"({"event":"task_eval","step":5,"scores":[]})"),
            "task_eval event at step 5: no reason");
  EXPECT_EQ(ParseError(R"({"event":"task_eval","reason":"final","scores":[]})"),
            "task_eval event: no step");
  EXPECT_EQ(ParseError(R"({"event":"task_eval","step":5,"reason":"final"})"),
            "task_eval event at step 5: no scores");
  EXPECT_EQ(ParseError(R"({"event":"task_eval","step":5,"reason":"final","scores":{}})"),
            "task_eval event at step 5: scores is not a list of task scores");
  EXPECT_EQ(ParseError(R"({"event":"task_eval","step":5,"reason":"final","scores":[3]})"),
            "task_eval event at step 5: scores[0] is not an object (task, group, items, acc, "
            "acc_norm)");
  EXPECT_EQ(ParseError(R"({"event":"task_eval","step":5,"reason":"final","scores":[)"
                       R"({"task":"a","items":4,"acc":0.5,"acc_norm":0.5},)"
                       R"({"task":"b","items":4,"acc":"high","acc_norm":0.5}]})"),
            "task_eval event at step 5: scores[1].acc is not a number");
  EXPECT_EQ(ParseError(R"({"event":"task_eval","step":5,"reason":"final","scores":[)"
                       R"({"task":"a","items":4,"acc":0.5}]})"),
            "task_eval event at step 5: no scores[0].acc_norm");
  EXPECT_EQ(ParseError(R"({"event":"task_eval","step":5,"reason":"final","scores":[)"
                       R"({"task":"a","items":-1,"acc":0.5,"acc_norm":0.5}]})"),
            "task_eval event at step 5: scores[0].items is not an integer in range");
  EXPECT_EQ(ParseError(R"({"event":"task_eval","step":5,"reason":"final","scores":[)"
                       R"({"task":"a","group":1,"items":1,"acc":0.5,"acc_norm":0.5}]})"),
            "task_eval event at step 5: scores[0].group is not a string");
  EXPECT_EQ(ParseError(R"({"event":"task_eval","step":5,"reason":"final","scores":[)"
                       R"({"task":"a/b","items":1,"acc":0.5,"acc_norm":0.5}]})"),
            "task_eval event at step 5: scores[0].task is not a non-empty task name without '/' "
            "(a task file's stem)");
  EXPECT_EQ(ParseError(R"({"event":"task_eval","step":5,"reason":7,"scores":[]})"),
            "task_eval event at step 5: reason is not a string");
}

TEST(EventLogTest, TaskMacroMeanIsOverTheTasksTotals) {
  const std::optional<MacroAccuracy> m = TaskMacroMean(SomeScores());
  ASSERT_TRUE(m.has_value());
  EXPECT_EQ(m->tasks, 2);
  EXPECT_DOUBLE_EQ(m->acc, (0.275 + 0.5) / 2);  // groups are not counted, items do not weigh
  EXPECT_DOUBLE_EQ(m->acc_norm, (0.3 + 0.25) / 2);
  EXPECT_FALSE(TaskMacroMean({}).has_value());
  EXPECT_FALSE(TaskMacroMean({{"mmlu", "stem", 5, 0.4, 0.2}}).has_value());
  // A task with no finite score is left out of the mean, not counted as 0.
  const std::optional<MacroAccuracy> n =
      TaskMacroMean({{"a", "", 4, 0.5, std::nan("")}, {"b", "", 0, std::nan(""), std::nan("")}});
  ASSERT_TRUE(n.has_value());
  EXPECT_DOUBLE_EQ(n->acc, 0.5);
  EXPECT_TRUE(std::isnan(n->acc_norm));
}

TEST(EventLogTest, SummaryJsonCarriesTheTasksAndTheirMacroMean) {
  RunSummary s = ASummary();
  s.tasks = SomeScores();
  const nlohmann::json j = nlohmann::json::parse(RunSummaryJson(s, 2));
  EXPECT_EQ(j.size(), 23u);
  ASSERT_EQ(j[summary::kTasks].size(), 4u);
  EXPECT_EQ(j[summary::kTasks][0].dump(),
            R"({"acc":0.275,"acc_norm":0.3,"items":40,"task":"arithmetic"})");
  EXPECT_EQ(j[summary::kTasks][2]["group"], "stem");
  EXPECT_DOUBLE_EQ(j[summary::kAcc].get<double>(), (0.275 + 0.5) / 2);
  EXPECT_DOUBLE_EQ(j[summary::kAccNorm].get<double>(), (0.3 + 0.25) / 2);
  absl::StatusOr<std::vector<eval::TaskScore>> back = SummaryTasks(RunSummaryJson(s));
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_TRUE((TaskEvalEvent{0, "", *back} == TaskEvalEvent{0, "", SomeScores()}));
  // No tasks: none of the three fields, and SummaryTasks reads [].
  const nlohmann::json none = nlohmann::json::parse(RunSummaryJson(ASummary()));
  EXPECT_FALSE(none.contains(summary::kTasks));
  EXPECT_FALSE(none.contains(summary::kAcc));
  back = SummaryTasks(RunSummaryJson(ASummary()));
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_TRUE(back->empty());
  // Bad entries are errors naming the index.
  EXPECT_EQ(SummaryTasks(R"({"tasks":[{"task":"a","items":1,"acc":true,"acc_norm":0}]})")
                .status()
                .message(),
            "summary.json: tasks[0].acc is not a number");
  EXPECT_FALSE(SummaryTasks("[1]").ok());
}

TEST(EventLogTest, TaskScalarNamesParseBack) {
  EXPECT_EQ(TaskScalarName(scalar::kAcc, "arc_easy", ""), "acc/arc_easy");
  EXPECT_EQ(TaskScalarName(scalar::kAccNorm, "mmlu", "social sciences"),
            "acc_norm/mmlu/social sciences");
  EXPECT_EQ(TaskScalarName(scalar::kAcc, "", ""), "acc");
  const std::optional<TaskScalar> t = ParseTaskScalarName("acc_norm/mmlu/a/b");
  ASSERT_TRUE(t.has_value());
  EXPECT_EQ(t->metric, "acc_norm");
  EXPECT_EQ(t->task, "mmlu");
  EXPECT_EQ(t->group, "a/b");  // only the task is free of '/'
  const std::optional<TaskScalar> macro = ParseTaskScalarName("acc");
  ASSERT_TRUE(macro.has_value());
  EXPECT_EQ(macro->task, "");
  const std::optional<TaskScalar> total = ParseTaskScalarName("acc/arith");
  ASSERT_TRUE(total.has_value());
  EXPECT_EQ(total->metric, "acc");
  EXPECT_EQ(total->task, "arith");
  EXPECT_EQ(total->group, "");
  for (const char* other : {"accuracy", "acc/", "acc//x", "acc/x/", "val_loss", "loss@x2", ""}) {
    EXPECT_FALSE(ParseTaskScalarName(other).has_value()) << other;
  }
}

TEST(EventLogTest, LinesAreWrittenAsSgtTrainAlwaysHas) {
  // Sorted keys, time last but in its place, integers as integers, doubles with a fraction.
  EXPECT_EQ(EventLine(EvalEvent{24, 3.5, 33.0}, 1795443346.5),
            R"({"event":"eval","step":24,"time":1795443346.5,"val_loss":3.5,"val_ppl":33.0})");
  EXPECT_EQ(EventLine(CheckpointEvent{40, "/ck/a", 9, "ab", "final"}, 2.0),
            R"({"bytes":9,"event":"checkpoint","path":"/ck/a","reason":"final","sha256":"ab",)"
            R"("step":40,"time":2.0})");
  EXPECT_EQ(EventLine(ErrorEvent{2, "non-finite loss"}, 3.0),
            R"({"event":"error","message":"non-finite loss","step":2,"time":3.0})");
  EXPECT_EQ(EventLine(ExtrapolationEvent{60, 2, 64, 3.0, 20.0}, 4.0),
            R"({"context":64,"event":"extrapolation","multiple":2,"step":60,"time":4.0,)"
            R"("val_loss":3.0,"val_ppl":20.0})");
  TrainingScalars t;
  t.loss = 5.5;
  t.lr = 0.00075;
  t.grad_norm = 1.25;
  t.tokens = 128;
  t.tokens_per_s = 14436.5;
  t.flops = 36175872.0;
  t.vanilla_flops = 36175872.0;
  t.overhead = 0.0;
  t.step_s = 0.5;
  EXPECT_EQ(EventLine(ScalarsEventOf(21, t), 5.0),
            R"({"event":"scalars","flops":36175872.0,"grad_norm":1.25,"loss":5.5,"lr":0.00075,)"
            R"("overhead":0.0,"step":21,"step_s":0.5,"time":5.0,"tokens":128,)"
            R"("tokens_per_s":14436.5,"vanilla_flops":36175872.0})");
  StartEvent s = AStart();
  s.resumed_from = "";
  EXPECT_EQ(EventLine(s, 6.0),
            R"({"config":{"model":{"heads":4,"layers":3},"name":"tiny"},"event":"start",)"
            R"("pid":14282,"resumed_from":null,"run":"tiny","step":20,"steps":60,"time":6.0,)"
            R"("variant":"sgt"})");
}

TEST(EventLogTest, ScalarsOfTrainingParseBackInNameOrder) {
  TrainingScalars t;
  t.loss = 5.5;
  t.tokens = 256;
  const ScalarsEvent written = ScalarsEventOf(3, t);
  absl::StatusOr<ParsedEvent> p = ParseEventLine(EventLine(written, 1.0));
  ASSERT_TRUE(p.ok()) << p.status();
  const ScalarsEvent& read = std::get<ScalarsEvent>(*p->event);
  std::vector<std::string> names;
  for (const Scalar& v : read.values) names.push_back(v.name);
  EXPECT_THAT(names,
              ::testing::ElementsAre(scalar::kFlops, scalar::kGradNorm, scalar::kLoss, scalar::kLr,
                                     scalar::kOverhead, scalar::kStepS, scalar::kTokens,
                                     scalar::kTokensPerS, scalar::kVanillaFlops));
  EXPECT_TRUE(read.values[6].integer);
  EXPECT_DOUBLE_EQ(read.values[6].value, 256);
  EXPECT_FALSE(read.values[2].integer);
  EXPECT_DOUBLE_EQ(read.values[2].value, 5.5);
}

TEST(EventLogTest, ScalarsKeepTheLineOrderAndSkipNullAndNonNumbers) {
  absl::StatusOr<ParsedEvent> p =
      ParseEventLine(R"({"event":"scalars","step":7,"zeta":1,"loss":null,"note":"x","ok":true,)"
                     R"("lr":0.5,"time":3.5})");
  ASSERT_TRUE(p.ok()) << p.status();
  const ScalarsEvent& e = std::get<ScalarsEvent>(*p->event);
  ASSERT_EQ(e.values.size(), 2u);
  EXPECT_EQ(e.values[0], Scalar("zeta", int64_t{1}));
  EXPECT_EQ(e.values[1], Scalar("lr", 0.5));
}

// Found by fuzz/fuzz_event_line: an integer scalar of 2^63 - 1 was read as an integer Scalar
// (held as the double 2^63), which the writer could not convert back to int64 (undefined
// behaviour). Integers past 2^53 are read as numbers, and written back as numbers.
TEST(EventLogTest, IntegerScalarsPastADoublesPrecisionReadAsNumbers) {
  absl::StatusOr<ParsedEvent> p = ParseEventLine(
      R"({"event":"scalars","step":1,"tokens":9223372036854775807,"rows":9007199254740992})");
  ASSERT_TRUE(p.ok()) << p.status();
  const ScalarsEvent& e = std::get<ScalarsEvent>(*p->event);
  ASSERT_EQ(e.values.size(), 2u);
  EXPECT_FALSE(e.values[0].integer);
  EXPECT_EQ(e.values[0].value, 9223372036854775807.0);
  EXPECT_EQ(e.values[1], Scalar("rows", int64_t{1} << 53));
  absl::StatusOr<ParsedEvent> again = ParseEventLine(EventLine(*p->event, 1.0));
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(std::get<ScalarsEvent>(*again->event).values.size(), 2u);
}

TEST(EventLogTest, NonFiniteNumbersAreWrittenAsNullAndReadAsNaN) {
  const double inf = std::numeric_limits<double>::infinity();
  const std::string line = EventLine(EvalEvent{5, std::nan(""), inf}, 1.0);
  EXPECT_THAT(line, HasSubstr(R"("val_loss":null,"val_ppl":null)"));
  absl::StatusOr<ParsedEvent> p = ParseEventLine(line);
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_TRUE(std::isnan(std::get<EvalEvent>(*p->event).val_loss));
  EXPECT_TRUE(std::isnan(std::get<EvalEvent>(*p->event).val_ppl));
}

TEST(EventLogTest, DecisionRecordIsTheDecisionEventWithoutKindSignalAndTime) {
  const DecisionEvent e = ADecision();
  nlohmann::json event = nlohmann::json::parse(EventLine(e, 1.0));
  event.erase("event");
  event.erase("signal");
  event.erase("time");
  GrowthDecision d;
  d.step = e.step;
  d.action = GrowthAction::kDeepen;
  d.layer = e.layer;
  d.k = e.k;
  d.heads = e.heads;
  d.candidates = e.candidates;
  d.layer_entropy = e.layer_entropy;
  d.head_entropy = e.head_entropy;
  d.reason = e.reason;
  EXPECT_EQ(DecisionRecordJson(d), event.dump());
  EXPECT_EQ(e.action, "deepen");
}

TEST(EventLogTest, SummaryJsonHasEveryFieldAndValidationOnlyWhenValidated) {
  const RunSummary s = ASummary();
  const nlohmann::json j = nlohmann::json::parse(RunSummaryJson(s, 2));
  for (const char* key :
       {summary::kRun,          summary::kVariant,       summary::kStatus,
        summary::kStep,         summary::kSteps,         summary::kFinalLoss,
        summary::kValLoss,      summary::kValPpl,        summary::kExtrapolation,
        summary::kTrainFlops,   summary::kVanillaFlops,  summary::kOverheadVsVanilla,
        summary::kProbeFlops,   summary::kEvalFlops,     summary::kTokens,
        summary::kTrainSeconds, summary::kTokensPerS,    summary::kGrowth,
        summary::kPeakRssMb,    summary::kLastCheckpoint}) {
    EXPECT_TRUE(j.contains(key)) << key;
  }
  EXPECT_EQ(j.size(), 20u);
  EXPECT_EQ(j[summary::kExtrapolation][1].dump(),
            R"({"multiple":1000,"skipped":"validation split too short"})");
  EXPECT_EQ(j[summary::kExtrapolation][0]["sequences"], 4);
  EXPECT_EQ(j[summary::kGrowth]["num_layers"], 3);
  EXPECT_EQ(j[summary::kTokens], 3072);
  EXPECT_NE(RunSummaryJson(s, 2).find('\n'), std::string::npos);  // summary.json is indented

  RunSummary paused = s;
  paused.status = kStatusPaused;
  paused.validated = false;
  paused.last_checkpoint = "";
  const nlohmann::json p = nlohmann::json::parse(RunSummaryJson(paused));
  EXPECT_FALSE(p.contains(summary::kValLoss));
  EXPECT_FALSE(p.contains(summary::kExtrapolation));
  EXPECT_FALSE(p.contains(summary::kLastCheckpoint));
  EXPECT_EQ(p[summary::kStatus], "paused");

  // The end event is the summary with event and time added.
  nlohmann::json end = nlohmann::json::parse(EventLine(EndEventOf(s), 9.0));
  EXPECT_EQ(end["event"], "end");
  EXPECT_EQ(end["time"], 9.0);
  end.erase("event");
  end.erase("time");
  EXPECT_EQ(end.dump(), RunSummaryJson(s));
}

TEST(EventLogTest, ExtrapolationScalarNames) {
  EXPECT_EQ(ExtrapolationScalarName(scalar::kValLoss, 2), "val_loss@x2");
  EXPECT_EQ(ExtrapolationScalarName(scalar::kValPpl, 16), "val_ppl@x16");
}

TEST(EventLogTest, LenientWhereTheWorkerAlwaysWas) {
  // Fields the worker does not need may be missing: they read as their defaults.
  absl::StatusOr<ParsedEvent> p =
      ParseEventLine(R"({"event":"entropy","signal":"probe","step":3,"layers":[{"layer":1,)"
                     R"("passes":[[0.5,null]],"pass_heads":[[1,0]]}]})");
  ASSERT_TRUE(p.ok()) << p.status();
  const EntropyEvent& e = std::get<EntropyEvent>(*p->event);
  ASSERT_EQ(e.layers.size(), 1u);
  EXPECT_EQ(e.layers[0].k, 0);
  EXPECT_TRUE(std::isnan(e.layers[0].passes[0][1]));
  EXPECT_EQ(e.signal, EntropySignal::kProbe);
  p = ParseEventLine(R"({"event":"start","step":0})");
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(std::get<StartEvent>(*p->event).run, "");
  // error and end need no step.
  p = ParseEventLine(R"({"event":"error","message":"boom"})");
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_FALSE(p->step.has_value());
  EXPECT_EQ(p->what, "error event");
  // An unknown kind: its step (when it is one) and nothing else.
  p = ParseEventLine(R"({"event":"memory","step":9,"bytes":"x"})");
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->kind, "memory");
  EXPECT_EQ(p->step, 9);
  EXPECT_FALSE(p->event.has_value());
  p = ParseEventLine(R"({"event":"profile","step":"soon"})");
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_FALSE(p->step.has_value());
}

TEST(EventLogTest, ErrorsNameTheEventAndTheField) {
  EXPECT_EQ(ParseError(R"({"event":"eval","step":5,"val_loss":"3","val_ppl":20})"),
            "eval event at step 5: val_loss is not a number");
  EXPECT_EQ(ParseError(R"({"event":"scalars","step":"5"})"),
            "scalars event: step is not a non-negative integer");
  EXPECT_EQ(ParseError(R"({"event":"scalars","loss":1})"), "scalars event: no step");
  EXPECT_EQ(ParseError(R"({"event":"error"})"), "error event: no message");
  EXPECT_EQ(ParseError(R"({"event":"end","step":5,"status":""})"),
            "end event at step 5: status is not a non-empty string");
  EXPECT_EQ(
      ParseError(R"({"event":"extrapolation","step":5,"multiple":0,"val_loss":3,"val_ppl":2})"),
      "extrapolation event at step 5: multiple is not an integer in range");
  EXPECT_EQ(ParseError(R"({"event":"entropy","signal":"train","step":30,"layers":[)"
                       R"({"layer":0,"passes":[[0.5]],"pass_heads":[[0]]},)"
                       R"({"layer":1,"passes":[["x"]],"pass_heads":[[0]]}]})"),
            "entropy event at step 30: layers[1].passes[0] is not a list of numbers");
  EXPECT_EQ(ParseError(R"({"event":"entropy","signal":"train","step":30,"layers":[)"
                       R"({"layer":0,"passes":[[0.5],[0.1]],"pass_heads":[[0]]}]})"),
            "entropy event at step 30: layers[0] has 2 passes but 1 pass_heads");
  EXPECT_EQ(ParseError(R"({"event":"entropy","signal":"train","step":30,"layers":[)"
                       R"({"layer":0,"passes":[[0.5,0.6],[0.1]],"pass_heads":[[0,1],[0,1]]}]})"),
            "entropy event at step 30: layers[0].passes[1] has 1 values but pass_heads[1] 2 "
            "heads");
  EXPECT_EQ(ParseError(R"({"event":"entropy","signal":"ema","step":30,"layers":[]})"),
            R"(entropy event at step 30: signal is not "train" or "probe")");
  EXPECT_EQ(ParseError(R"({"event":"entropy","signal":"train","step":3,"layers":[)"
                       R"({"layer":0,"passes":[],"pass_heads":[],"mean":"high"}]})"),
            "entropy event at step 3: layers[0].mean is not a number");
  nlohmann::json d = nlohmann::json::parse(EventLine(ADecision(), 1.0));
  d.erase("whole_block");
  EXPECT_EQ(ParseError(d.dump()), "decision event at step 40: no whole_block");
  d = nlohmann::json::parse(EventLine(ADecision(), 1.0));
  d["head_entropy"] = {{0.5}, 0.5};
  EXPECT_EQ(ParseError(d.dump()),
            "decision event at step 40: head_entropy[1] is not a list of numbers");
  EXPECT_EQ(ParseError(R"({"event":"checkpoint","step":5,"path":"/a","bytes":-1,"sha256":"x",)"
                       R"("reason":"final"})"),
            "checkpoint event at step 5: bytes is not an integer in range");
  EXPECT_EQ(ParseError(R"({"event":"checkpoint","step":5,"path":"/a","bytes":1,"sha256":"x",)"
                       R"("reason":"final","time":"now"})"),
            "checkpoint event at step 5: time is not a number");
  EXPECT_EQ(ParseError(R"({"event":"start","step":1,"run":7})"),
            "start event at step 1: run is not a string");
  EXPECT_EQ(ParseError(R"({"event":"start","step":1,"config":[1]})"),
            "start event at step 1: config is not an object");
  EXPECT_THAT(ParseError("not json"), HasSubstr("event line is not a JSON object: not json"));
  EXPECT_THAT(ParseError(R"({"step":1})"), HasSubstr("event line without a string `event`"));
  EXPECT_THAT(ParseError(std::string(200, 'x')), HasSubstr("..."));  // long lines are cut
}

}  // namespace
}  // namespace sgt::events
