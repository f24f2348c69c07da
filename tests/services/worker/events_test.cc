#include "services/worker/events.h"

#include <stdlib.h>

#include <cmath>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace sgt::worker {
namespace {

namespace fs = std::filesystem;
using sgt::v1::TelemetryBatch;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

// Lines shaped as sgt-train writes them (copied from a real events.jsonl, shortened).
constexpr char kStart[] =
    R"js({"config":{"variant":"sgt"},"event":"start","pid":14282,"resumed_from":"/ck/step-0000020.sgtckpt","run":"tiny","step":20,"steps":60,"time":1795443347.89,"variant":"sgt"})js";
constexpr char kScalars[] =
    R"js({"event":"scalars","flops":36175872.0,"grad_norm":1.1014653444290161,"loss":5.779832363128662,"lr":0.00075,"overhead":0.0,"step":21,"step_s":0.00886652,"time":1795443346.38,"tokens":128,"tokens_per_s":14436.329021983824,"vanilla_flops":36175872.0})js";
constexpr char kEntropy[] =
    R"js({"event":"entropy","layers":[{"k":0,"layer":0,"mean":0.9999,"pass_heads":[[0,1,2,3]],"passes":[[0.91,0.92,0.93,0.94]],"variance":3.07e-09},{"k":1,"layer":2,"mean":0.9996,"pass_heads":[[0,1,2,3],[0,3]],"passes":[[0.81,0.82,0.83,0.84],[0.75,0.5]],"variance":1.27e-07}],"signal":"train","step":21,"time":1795443346.48})js";
constexpr char kEval[] =
    R"js({"event":"eval","step":24,"time":1795443346.51,"val_loss":3.892082095146179,"val_ppl":49.012829734061974})js";
constexpr char kDecision[] =
    R"js({"action":"deepen","candidates":[1,2],"event":"decision","head_entropy":[[0.99975,0.99961],[0.99846,0.99940],[0.99940,0.99927]],"heads":[0,3],"k":2,"layer":2,"layer_entropy":[0.99955,0.99920,0.99868],"reason":"deepen layer 2 to K=2 (Ebar 0.9987, rank 2 of C)","signal":"train","step":40,"time":1795443346.61,"whole_block":false})js";
constexpr char kExtrapolation[] =
    R"js({"context":64,"event":"extrapolation","multiple":2,"step":60,"time":1795443346.76,"val_loss":3.2486841678619385,"val_ppl":25.75642647616948})js";
constexpr char kEnd[] =
    R"js({"eval_flops":165150720.0,"event":"end","final_loss":3.21,"growth":{"active":[],"phase":"growing"},"run":"tiny","status":"succeeded","step":60,"steps":60,"time":1795443346.77,"tokens":7680,"variant":"sgt"})js";

std::string CheckpointLine(const std::string& path, int step = 40) {
  return nlohmann::json{{"event", "checkpoint"},
                        {"step", step},
                        {"path", path},
                        {"bytes", 664684},
                        {"sha256", std::string(64, 'a')},
                        {"reason", "boundary"},
                        {"time", 1795443346.7}}
      .dump();
}

// A batch that already holds a row, to check that failed lines leave it as it was.
TelemetryBatch Prefilled() {
  TelemetryBatch b;
  b.set_run_id("r1");
  b.set_attempt(2);
  sgt::v1::ScalarRow* row = b.add_scalars();
  row->set_step(1);
  row->set_name("loss");
  row->set_value(6.0);
  return b;
}

// A fresh directory under the system's temporary directory.
class TempDir {
 public:
  TempDir() {
    std::string tmpl = (fs::temp_directory_path() / "sgt-events-test-XXXXXX").string();
    path_ = mkdtemp(tmpl.data());
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

TEST(EventTranslatorTest, ScalarsBecomeOneRowPerNumericFieldInKeyOrder) {
  EventTranslator t;
  TelemetryBatch b;
  ASSERT_TRUE(t.Add(kScalars, &b).ok());
  std::vector<std::string> names;
  for (const auto& row : b.scalars()) {
    EXPECT_EQ(row.step(), 21);
    names.push_back(row.name());
  }
  EXPECT_THAT(names, ElementsAre("flops", "grad_norm", "loss", "lr", "overhead", "step_s", "tokens",
                                 "tokens_per_s", "vanilla_flops"));
  EXPECT_DOUBLE_EQ(b.scalars(2).value(), 5.779832363128662);
  EXPECT_DOUBLE_EQ(b.scalars(6).value(), 128);
  EXPECT_EQ(t.rows(), 9);
  EXPECT_EQ(b.entropy_size() + b.decisions_size() + b.checkpoints_size(), 0);
}

TEST(EventTranslatorTest, ScalarsSkipNullAndNonNumericFieldsAndKeepUnknownNumbers) {
  EventTranslator t;
  TelemetryBatch b;
  ASSERT_TRUE(t.Add(R"({"event":"scalars","step":7,"zeta":1,"loss":null,"note":"x",)"
                    R"("ok":true,"lr":0.5,"time":3.5})",
                    &b)
                  .ok());
  ASSERT_EQ(b.scalars_size(), 2);
  EXPECT_EQ(b.scalars(0).name(), "zeta");  // the line's order, not sorted
  EXPECT_EQ(b.scalars(1).name(), "lr");
  EXPECT_DOUBLE_EQ(b.scalars(1).value(), 0.5);
  EXPECT_EQ(t.rows(), 2);
}

TEST(EventTranslatorTest, EvalAndExtrapolation) {
  EventTranslator t;
  TelemetryBatch b;
  ASSERT_TRUE(t.Add(kEval, &b).ok());
  ASSERT_TRUE(t.Add(kExtrapolation, &b).ok());
  ASSERT_EQ(b.scalars_size(), 4);
  EXPECT_EQ(b.scalars(0).name(), "val_loss");
  EXPECT_EQ(b.scalars(0).step(), 24);
  EXPECT_DOUBLE_EQ(b.scalars(0).value(), 3.892082095146179);
  EXPECT_EQ(b.scalars(1).name(), "val_ppl");
  EXPECT_DOUBLE_EQ(b.scalars(1).value(), 49.012829734061974);
  EXPECT_EQ(b.scalars(2).name(), "val_loss@x2");
  EXPECT_EQ(b.scalars(2).step(), 60);
  EXPECT_DOUBLE_EQ(b.scalars(2).value(), 3.2486841678619385);
  EXPECT_EQ(b.scalars(3).name(), "val_ppl@x2");
  EXPECT_FALSE(t.flush_now());
}

// A task_eval line as sgt-train writes it: two tasks, one with a group, and a task of no items.
constexpr char kTaskEval[] =
    R"js({"event":"task_eval","reason":"final","scores":[{"acc":0.275,"acc_norm":0.3,"items":40,"task":"arithmetic"},{"acc":0.5,"acc_norm":0.25,"items":12,"task":"mmlu"},{"acc":0.4,"acc_norm":0.2,"group":"stem","items":5,"task":"mmlu"},{"acc":null,"acc_norm":null,"items":0,"task":"empty"}],"step":60,"time":1795443346.75})js";

TEST(EventTranslatorTest, TaskEvalBecomesAccuracyRowsAndTheirMacroMean) {
  EventTranslator t;
  TelemetryBatch b;
  ASSERT_TRUE(t.Add(kTaskEval, &b).ok());
  std::vector<std::string> names;
  for (const sgt::v1::ScalarRow& r : b.scalars()) {
    names.push_back(r.name());
    EXPECT_EQ(r.step(), 60) << r.name();
  }
  // The task of no items (null scores) adds no row; the macro mean counts the totals with a
  // finite score only.
  EXPECT_THAT(names, ElementsAre("acc/arithmetic", "acc_norm/arithmetic", "acc/mmlu",
                                 "acc_norm/mmlu", "acc/mmlu/stem", "acc_norm/mmlu/stem", "acc",
                                 "acc_norm"));
  EXPECT_DOUBLE_EQ(b.scalars(0).value(), 0.275);
  EXPECT_DOUBLE_EQ(b.scalars(5).value(), 0.2);
  EXPECT_DOUBLE_EQ(b.scalars(6).value(), (0.275 + 0.5) / 2);
  EXPECT_DOUBLE_EQ(b.scalars(7).value(), (0.3 + 0.25) / 2);
  EXPECT_EQ(t.step(), 60);
  EXPECT_EQ(t.rows(), 8);

  // The same step's scores again (a checkpoint's evaluation at the last step, then the final
  // one): no rows twice. Another step's scores are new rows.
  TelemetryBatch again;
  ASSERT_TRUE(t.Add(kTaskEval, &again).ok());
  EXPECT_EQ(again.scalars_size(), 0);
  ASSERT_TRUE(t.Add(R"js({"event":"task_eval","reason":"checkpoint","scores":[{"acc":0.25,"acc_norm":0.5,"items":40,"task":"arithmetic"}],"step":80,"time":1.0})js",
                    &again)
                  .ok());
  ASSERT_EQ(again.scalars_size(), 4);
  EXPECT_EQ(again.scalars(0).name(), "acc/arithmetic");
  EXPECT_EQ(again.scalars(0).step(), 80);
  EXPECT_EQ(again.scalars(2).name(), "acc");
  EXPECT_DOUBLE_EQ(again.scalars(2).value(), 0.25);
}

TEST(EventTranslatorTest, TaskEvalWithABadScoreIsRefusedWhole) {
  EventTranslator t;
  TelemetryBatch b = Prefilled();
  const std::string before = b.SerializeAsString();
  const absl::Status s = t.Add(
      R"js({"event":"task_eval","reason":"final","scores":[{"acc":0.5,"acc_norm":0.5,"items":4,"task":"a"},{"acc":"0.5","acc_norm":0.5,"items":4,"task":"b"}],"step":9})js",
      &b);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(), "task_eval event at step 9: scores[1].acc is not a number");
  EXPECT_EQ(b.SerializeAsString(), before);
  EXPECT_EQ(t.rows(), 0);
}

TEST(EventTranslatorTest, EntropyMapsPassHeadsAndLoops) {
  EventTranslator t;
  TelemetryBatch b;
  ASSERT_TRUE(t.Add(kEntropy, &b).ok());
  ASSERT_EQ(b.entropy_size(), 4 + 4 + 2);
  for (const auto& row : b.entropy()) {
    EXPECT_EQ(row.step(), 21);
    EXPECT_EQ(row.signal(), sgt::v1::ENTROPY_SIGNAL_TRAIN);
  }
  EXPECT_EQ(b.entropy(0).layer(), 0);
  EXPECT_EQ(b.entropy(3).head(), 3);
  EXPECT_FLOAT_EQ(b.entropy(3).value(), 0.94f);
  EXPECT_EQ(b.entropy(4).layer(), 2);  // the second object is layer 2
  EXPECT_EQ(b.entropy(4).loop(), 0);
  const sgt::v1::EntropyRow& loop_a = b.entropy(8);
  const sgt::v1::EntropyRow& loop_b = b.entropy(9);
  EXPECT_EQ(loop_a.layer(), 2);
  EXPECT_EQ(loop_a.loop(), 1);
  EXPECT_EQ(loop_a.head(), 0);
  EXPECT_FLOAT_EQ(loop_a.value(), 0.75f);
  EXPECT_EQ(loop_b.loop(), 1);
  EXPECT_EQ(loop_b.head(), 3);
  EXPECT_FLOAT_EQ(loop_b.value(), 0.5f);
  EXPECT_EQ(t.rows(), 10);
}

TEST(EventTranslatorTest, EntropyProbeSignal) {
  EventTranslator t;
  TelemetryBatch b;
  ASSERT_TRUE(t.Add(R"({"event":"entropy","signal":"probe","step":3,"layers":[{"layer":1,)"
                    R"("passes":[[0.5,0.25]],"pass_heads":[[1,0]]}]})",
                    &b)
                  .ok());
  ASSERT_EQ(b.entropy_size(), 2);
  EXPECT_EQ(b.entropy(0).signal(), sgt::v1::ENTROPY_SIGNAL_PROBE);
  EXPECT_EQ(b.entropy(0).head(), 1);
  EXPECT_EQ(b.entropy(1).head(), 0);
  EXPECT_FLOAT_EQ(b.entropy(1).value(), 0.25f);
}

TEST(EventTranslatorTest, EntropySkipsNonFiniteValues) {
  EventTranslator t;
  TelemetryBatch b;
  ASSERT_TRUE(t.Add(R"({"event":"entropy","signal":"train","step":3,"layers":[{"layer":0,)"
                    R"("passes":[[null,0.25],[0.5]],"pass_heads":[[0,1],[1]]}]})",
                    &b)
                  .ok());
  ASSERT_EQ(b.entropy_size(), 2);  // the null (NaN) of head 0 adds no row
  EXPECT_EQ(b.entropy(0).head(), 1);
  EXPECT_EQ(b.entropy(0).loop(), 0);
  EXPECT_EQ(b.entropy(1).head(), 1);
  EXPECT_EQ(b.entropy(1).loop(), 1);
  EXPECT_EQ(t.rows(), 2);
}

TEST(EventTranslatorTest, EntropyErrorsNameTheField) {
  EventTranslator t;
  TelemetryBatch b = Prefilled();
  const std::string before = b.SerializeAsString();
  absl::Status s = t.Add(R"({"event":"entropy","signal":"train","step":30,"layers":[)"
                         R"({"layer":0,"passes":[[0.5]],"pass_heads":[[0]]},)"
                         R"({"layer":1,"passes":[["x"]],"pass_heads":[[0]]}]})",
                         &b);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(), "entropy event at step 30: layers[1].passes[0] is not a list of numbers");
  EXPECT_EQ(b.SerializeAsString(), before);  // layer 0's row was not kept

  // Shapes that differ: more values than heads in a pass, and fewer pass_heads than passes.
  s = t.Add(R"({"event":"entropy","signal":"train","step":30,"layers":[)"
            R"({"layer":0,"passes":[[0.5,0.6],[0.1]],"pass_heads":[[0,1],[0,1]]}]})",
            &b);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("layers[0].passes[1] has 1 values"));
  s = t.Add(R"({"event":"entropy","signal":"train","step":30,"layers":[)"
            R"({"layer":0,"passes":[[0.5],[0.1]],"pass_heads":[[0]]}]})",
            &b);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("2 passes but 1 pass_heads"));
  s = t.Add(R"({"event":"entropy","signal":"ema","step":30,"layers":[]})", &b);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("signal"));
  EXPECT_EQ(b.SerializeAsString(), before);
  EXPECT_EQ(t.rows(), 0);
}

TEST(EventTranslatorTest, DecisionCarriesEveryField) {
  EventTranslator t;
  TelemetryBatch b;
  ASSERT_TRUE(t.Add(kDecision, &b).ok());
  EXPECT_TRUE(t.flush_now());
  ASSERT_EQ(b.decisions_size(), 1);
  const sgt::v1::GrowthDecision& d = b.decisions(0);
  EXPECT_EQ(d.step(), 40);
  EXPECT_EQ(d.action(), "deepen");
  EXPECT_EQ(d.layer(), 2);
  EXPECT_EQ(d.k(), 2);
  EXPECT_THAT(d.heads(), ElementsAre(0, 3));
  EXPECT_FALSE(d.whole_block());
  EXPECT_THAT(d.candidates(), ElementsAre(1, 2));
  EXPECT_THAT(d.layer_entropy(), ElementsAre(0.99955, 0.99920, 0.99868));
  ASSERT_EQ(d.head_entropy_size(), 3);
  EXPECT_THAT(d.head_entropy(1).values(), ElementsAre(0.99846, 0.99940));
  EXPECT_EQ(d.reason(), "deepen layer 2 to K=2 (Ebar 0.9987, rank 2 of C)");
  EXPECT_EQ(d.signal(), sgt::v1::ENTROPY_SIGNAL_TRAIN);
  EXPECT_EQ(t.rows(), 1);
}

TEST(EventTranslatorTest, HoldDecisionWithProbeSignalAndWholeBlock) {
  EventTranslator t;
  TelemetryBatch b;
  ASSERT_TRUE(t.Add(R"({"event":"decision","step":60,"action":"hold","layer":-1,"k":0,)"
                    R"("heads":[],"whole_block":true,"candidates":[],"layer_entropy":[0.5,null],)"
                    R"("head_entropy":[[0.5],[null]],"reason":"no candidate","signal":"probe"})",
                    &b)
                  .ok());
  ASSERT_EQ(b.decisions_size(), 1);
  const sgt::v1::GrowthDecision& d = b.decisions(0);
  EXPECT_EQ(d.layer(), -1);
  EXPECT_TRUE(d.whole_block());
  EXPECT_EQ(d.signal(), sgt::v1::ENTROPY_SIGNAL_PROBE);
  ASSERT_EQ(d.layer_entropy_size(), 2);  // a non-finite entry keeps its place
  EXPECT_TRUE(std::isnan(d.layer_entropy(1)));
}

TEST(EventTranslatorTest, DecisionWithAMissingOrWrongFieldIsRefused) {
  EventTranslator t;
  TelemetryBatch b = Prefilled();
  const std::string before = b.SerializeAsString();
  nlohmann::json d = nlohmann::json::parse(kDecision);
  d.erase("whole_block");
  absl::Status s = t.Add(d.dump(), &b);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(), "decision event at step 40: no whole_block");
  d = nlohmann::json::parse(kDecision);
  d["heads"] = {0, "3"};
  s = t.Add(d.dump(), &b);
  EXPECT_EQ(s.message(), "decision event at step 40: heads is not a list of integers");
  d = nlohmann::json::parse(kDecision);
  d["head_entropy"] = {{0.5}, 0.5};
  s = t.Add(d.dump(), &b);
  EXPECT_EQ(s.message(), "decision event at step 40: head_entropy[1] is not a list of numbers");
  EXPECT_FALSE(t.flush_now());
  EXPECT_EQ(b.SerializeAsString(), before);
}

TEST(EventTranslatorTest, CheckpointInsideTheRootIsRecorded) {
  TempDir dir;
  const fs::path root = fs::canonical(dir.path());
  fs::create_directories(root / "r1" / "checkpoints");
  const std::string path = (root / "r1" / "checkpoints" / "step-0000040.sgtckpt").string();
  EventTranslator t(root.string());
  TelemetryBatch b;
  ASSERT_TRUE(t.Add(CheckpointLine(path), &b).ok());
  EXPECT_TRUE(t.flush_now());
  ASSERT_EQ(b.checkpoints_size(), 1);
  const sgt::v1::CheckpointRecord& c = b.checkpoints(0);
  EXPECT_EQ(c.step(), 40);
  EXPECT_EQ(c.path(), path);
  EXPECT_EQ(c.bytes(), 664684);
  EXPECT_EQ(c.sha256(), std::string(64, 'a'));
  EXPECT_EQ(c.reason(), "boundary");
  EXPECT_TRUE(c.run_id().empty());
  EXPECT_EQ(c.attempt(), 0);
  EXPECT_DOUBLE_EQ(c.time(), 1795443346.7);  // the event's time: when it was written
  EXPECT_EQ(t.rows(), 1);
}

TEST(EventTranslatorTest, CheckpointOutsideTheRootIsRefused) {
  TempDir dir;
  const fs::path root = dir.path() / "root";
  fs::create_directories(root);
  fs::create_directories(dir.path() / "elsewhere");
  fs::create_directory_symlink(dir.path() / "elsewhere", root / "link");
  EventTranslator t(root.string());
  for (const std::string& path : {std::string("/etc/passwd"), (root / ".." / "x").string(),
                                  (root / "link" / "step-0000040.sgtckpt").string()}) {
    SCOPED_TRACE(path);
    TelemetryBatch b = Prefilled();
    const std::string before = b.SerializeAsString();
    absl::Status s = t.Add(CheckpointLine(path), &b);
    EXPECT_EQ(s.code(), absl::StatusCode::kPermissionDenied);
    EXPECT_THAT(s.message(), HasSubstr("checkpoint event at step 40: "));
    EXPECT_THAT(s.message(), HasSubstr(path));
    EXPECT_EQ(b.SerializeAsString(), before);
    EXPECT_FALSE(t.flush_now());
  }
  EXPECT_EQ(t.rows(), 0);
  EXPECT_EQ(t.step(), 0);  // a refused line changes nothing
}

TEST(EventTranslatorTest, CheckpointWithoutRootNeedsAWirePath) {
  EventTranslator t;
  TelemetryBatch b;
  for (const char* bad : {"checkpoints/step-0000040.sgtckpt", "/ckpt/../etc/step-0000040.sgtckpt"}) {
    absl::Status s = t.Add(CheckpointLine(bad), &b);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(s.message(), HasSubstr(std::string(bad) + " is not absolute or has a '..'"));
    EXPECT_EQ(b.checkpoints_size(), 0);
  }
  ASSERT_TRUE(t.Add(CheckpointLine("/anywhere/step-0000040.sgtckpt"), &b).ok());
  ASSERT_EQ(b.checkpoints_size(), 1);
  EXPECT_EQ(b.checkpoints(0).path(), "/anywhere/step-0000040.sgtckpt");
}

TEST(EventTranslatorTest, MalformedLinesAreErrorsAndChangeNothing) {
  const std::vector<std::string> lines = {
      "",
      "not json",
      R"({"event":"scalars","step":1)",
      R"([1,2])",
      R"({"step":1,"loss":2})",
      R"({"event":7,"step":1})",
      R"({"event":"scalars","loss":2})",
      R"({"event":"scalars","step":"5","loss":2})",
      R"({"event":"scalars","step":-1,"loss":2})",
      R"({"event":"scalars","step":1.5,"loss":2})",
      R"({"event":"eval","step":5,"val_loss":"3","val_ppl":20})",
      R"({"event":"eval","step":5,"val_ppl":20})",
      R"({"event":"extrapolation","step":5,"multiple":"2","val_loss":3,"val_ppl":20})",
      R"({"event":"entropy","step":5,"signal":"train","layers":{}})",
      R"({"event":"entropy","step":5,"signal":"train","layers":[{"layer":"0","passes":[],"pass_heads":[]}]})",
      R"({"event":"checkpoint","step":5,"path":"/a","bytes":-1,"sha256":"x","reason":"final"})",
      R"({"event":"checkpoint","step":5,"path":"/a","bytes":1,"sha256":"x"})",
      R"({"event":"start","run":"x"})",
      R"({"event":"error","step":5})",
      R"({"event":"end","step":5})",
      R"({"event":"end","step":5,"status":""})",
  };
  EventTranslator t;
  for (const std::string& line : lines) {
    SCOPED_TRACE(line);
    TelemetryBatch b = Prefilled();
    const std::string before = b.SerializeAsString();
    absl::Status s = t.Add(line, &b);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
    EXPECT_EQ(b.SerializeAsString(), before);
    EXPECT_FALSE(t.flush_now());
  }
  EXPECT_FALSE(t.started());
  EXPECT_FALSE(t.ended());
  EXPECT_EQ(t.error(), "");
  EXPECT_EQ(t.step(), 0);
  EXPECT_EQ(t.rows(), 0);
}

TEST(EventTranslatorTest, ErrorsNameTheEventAndField) {
  EventTranslator t;
  TelemetryBatch b;
  EXPECT_EQ(t.Add(R"({"event":"eval","step":5,"val_loss":"3","val_ppl":20})", &b).message(),
            "eval event at step 5: val_loss is not a number");
  EXPECT_EQ(t.Add(R"({"event":"scalars","step":"5"})", &b).message(),
            "scalars event: step is not a non-negative integer");
  EXPECT_EQ(t.Add(R"({"event":"error"})", &b).message(), "error event: no message");
  EXPECT_THAT(t.Add("not json", &b).message(), HasSubstr("not json"));
}

TEST(EventTranslatorTest, UnknownEventsAddNothing) {
  EventTranslator t;
  TelemetryBatch b = Prefilled();
  const std::string before = b.SerializeAsString();
  EXPECT_TRUE(t.Add(R"({"event":"profile","step":"soon","loss":1.5})", &b).ok());
  EXPECT_TRUE(t.Add(R"({"event":"memory","step":9,"bytes":123})", &b).ok());
  EXPECT_EQ(b.SerializeAsString(), before);
  EXPECT_FALSE(t.flush_now());
  EXPECT_EQ(t.rows(), 0);
  EXPECT_EQ(t.step(), 9);  // its step still counts as progress
}

TEST(EventTranslatorTest, StateFollowsStartStepsErrorAndEnd) {
  EventTranslator t;
  TelemetryBatch b;
  EXPECT_FALSE(t.started());
  ASSERT_TRUE(t.Add(kStart, &b).ok());
  EXPECT_TRUE(t.started());
  EXPECT_EQ(t.start_step(), 20);
  EXPECT_EQ(t.step(), 20);
  ASSERT_TRUE(t.Add(kScalars, &b).ok());
  EXPECT_EQ(t.step(), 21);
  ASSERT_TRUE(t.Add(R"({"event":"eval","step":12,"val_loss":3,"val_ppl":20})", &b).ok());
  EXPECT_EQ(t.step(), 21);  // the newest step never goes back
  EXPECT_EQ(t.start_step(), 20);
  EXPECT_EQ(t.error(), "");
  ASSERT_TRUE(
      t.Add(R"({"event":"error","step":22,"message":"non-finite loss","time":1.0})", &b).ok());
  EXPECT_EQ(t.error(), "non-finite loss");
  EXPECT_EQ(t.step(), 22);
  EXPECT_FALSE(t.ended());
  EXPECT_EQ(t.end_status(), "");
  ASSERT_TRUE(t.Add(kEnd, &b).ok());
  EXPECT_TRUE(t.ended());
  EXPECT_EQ(t.end_status(), "succeeded");
  EXPECT_EQ(t.step(), 60);
  const nlohmann::json summary = nlohmann::json::parse(t.summary_json(), nullptr, false);
  ASSERT_TRUE(summary.is_object()) << t.summary_json();
  EXPECT_FALSE(summary.contains("event"));
  EXPECT_FALSE(summary.contains("time"));
  EXPECT_EQ(summary["status"], "succeeded");
  EXPECT_EQ(summary["tokens"], 7680);
  EXPECT_EQ(summary["growth"]["phase"], "growing");
  EXPECT_EQ(t.summary_json().find('\n'), std::string::npos);  // compact
  EXPECT_EQ(b.scalars_size(), 9 + 2);                         // start, error, end add no rows
}

TEST(EventTranslatorTest, FlushNowFollowsTheLastLine) {
  EventTranslator t;
  TelemetryBatch b;
  const std::vector<std::pair<std::string, bool>> lines = {
      {kStart, false},
      {kScalars, false},
      {kDecision, true},
      {kEntropy, false},
      {CheckpointLine("/ck/step-0000040.sgtckpt"), true},
      {kEval, false},
      {R"({"event":"error","message":"boom"})", true},
      {R"({"event":"later","step":70})", false},
      {kEnd, true},
  };
  for (const auto& [line, flush] : lines) {
    SCOPED_TRACE(line);
    ASSERT_TRUE(t.Add(line, &b).ok());
    EXPECT_EQ(t.flush_now(), flush);
  }
  ASSERT_TRUE(t.Add(kDecision, &b).ok());
  EXPECT_TRUE(t.flush_now());
  EXPECT_FALSE(t.Add("{", &b).ok());
  EXPECT_FALSE(t.flush_now());  // an error return clears it
}

TEST(EventTranslatorTest, AppendsToABatchAndKeepsItsIdentity) {
  EventTranslator t;
  TelemetryBatch b = Prefilled();
  b.set_sequence(5);
  ASSERT_TRUE(t.Add(kEval, &b).ok());
  EXPECT_EQ(b.run_id(), "r1");
  EXPECT_EQ(b.attempt(), 2);
  EXPECT_EQ(b.sequence(), 5);
  ASSERT_EQ(b.scalars_size(), 3);
  EXPECT_EQ(b.scalars(0).name(), "loss");
  EXPECT_EQ(b.scalars(1).name(), "val_loss");
}

TEST(EventTranslatorTest, TranslatesAWholeLog) {
  TempDir dir;
  const std::string ckpt = (fs::canonical(dir.path()) / "step-0000040.sgtckpt").string();
  const std::string log = absl::StrCat(
      kStart, "\n", kScalars, "\n", kEntropy, "\n",
      R"({"event":"scalars","step":22,"loss":null,"lr":0.001,"time":2.0})", "\n", kEval, "\n",
      kDecision, "\n", CheckpointLine(ckpt), "\n", R"({"event":"heartbeat","step":41})", "\n",
      kExtrapolation, "\n", CheckpointLine(ckpt, 60), "\n", kEnd, "\n");
  EventTranslator t(dir.path().string());
  std::vector<TelemetryBatch> sent;
  TelemetryBatch b;
  size_t start = 0;
  for (size_t nl; (nl = log.find('\n', start)) != std::string::npos; start = nl + 1) {
    ASSERT_TRUE(t.Add(std::string_view(log).substr(start, nl - start), &b).ok());
    if (t.flush_now()) sent.push_back(std::exchange(b, TelemetryBatch()));
  }
  ASSERT_EQ(sent.size(), 4);  // decision, checkpoint, checkpoint, end
  EXPECT_EQ(b.ByteSizeLong(), 0);
  int scalars = 0, entropy = 0, decisions = 0, checkpoints = 0;
  for (const TelemetryBatch& s : sent) {
    scalars += s.scalars_size();
    entropy += s.entropy_size();
    decisions += s.decisions_size();
    checkpoints += s.checkpoints_size();
  }
  EXPECT_EQ(scalars, 9 + 1 + 2 + 2);  // scalars, the null-loss scalars, eval, extrapolation
  EXPECT_EQ(entropy, 10);
  EXPECT_EQ(decisions, 1);
  EXPECT_EQ(checkpoints, 2);
  EXPECT_EQ(sent[0].scalars_size(), 9 + 1 + 2);
  EXPECT_EQ(sent[2].checkpoints(0).step(), 60);
  EXPECT_EQ(t.rows(), 14 + 10 + 1 + 2);
  EXPECT_TRUE(t.started());
  EXPECT_EQ(t.start_step(), 20);
  EXPECT_EQ(t.step(), 60);
  EXPECT_EQ(t.end_status(), "succeeded");
}

}  // namespace
}  // namespace sgt::worker
