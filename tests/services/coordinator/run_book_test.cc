// The RunBook (services/coordinator/run_book.h) against a real SQLite store: every transition is
// checked against the state machine before anything is stored, and a refused one changes
// neither the store nor the book; losses go where run_state's table lets them.
#include "services/coordinator/run_book.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "nlohmann/json.hpp"

namespace sgt::coord {
namespace {

namespace fs = std::filesystem;

class RunBookTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/sgt-run-book-test-XXXXXX";
    dir_ = mkdtemp(tmpl);
    auto s = Store::Open((fs::path(dir_) / "sgt.db").string());
    ASSERT_TRUE(s.ok()) << s.status();
    store_ = std::move(*s);
    book_ = std::make_unique<RunBook>(store_.get(), nullptr, [this] { return now_; });
    SweepRow sweep;
    sweep.name = "t";
    sweep.max_restarts = 1;
    std::vector<RunRow> runs(1);
    runs[0].name = "r";
    runs[0].variant = "sgt";
    runs[0].steps = 100;
    runs[0].config_json = R"({"train":{"device":"cpu","steps":100}})";
    runs[0].config_hash = "h";
    ASSERT_TRUE(book_->AddSweep(sweep, runs, now_).ok());
    id_ = runs[0].id;
  }
  void TearDown() override {
    book_.reset();
    store_.reset();
    fs::remove_all(dir_);
  }
  RunRow& Run() { return *book_->Find(id_); }
  size_t StoredEvents() {
    auto events = store_->RunEvents(id_);
    EXPECT_TRUE(events.ok()) << events.status();
    return events.ok() ? events->size() : 0;
  }

  std::string dir_;
  double now_ = 1000;
  std::unique_ptr<Store> store_;
  std::unique_ptr<RunBook> book_;
  int64_t id_ = 0;
  Outbox out_;
};

TEST_F(RunBookTest, IllegalTransitionIsRefusedBeforeAnythingIsStored) {
  const size_t before = StoredEvents();
  const uint64_t version = book_->version();
  absl::Status s = book_->Transition(Run(), v1::RUN_STATE_RUNNING, "skips assigned", out_);
  EXPECT_EQ(s.code(), absl::StatusCode::kInternal);
  EXPECT_NE(s.message().find("queued -> running"), std::string::npos) << s;
  EXPECT_EQ(Run().state, v1::RUN_STATE_QUEUED);
  EXPECT_EQ(Run().reason, "");
  EXPECT_EQ(StoredEvents(), before);
  EXPECT_EQ(book_->version(), version);
  auto stored = store_->LoadRuns();
  ASSERT_TRUE(stored.ok());
  EXPECT_EQ(stored->at(0).state, v1::RUN_STATE_QUEUED);
}

TEST_F(RunBookTest, LegalTransitionIsStoredWithItsReasonAndBumpsTheVersion) {
  const size_t before = StoredEvents();
  const uint64_t version = book_->version();
  now_ = 1005;
  ASSERT_TRUE(book_->Transition(Run(), v1::RUN_STATE_ASSIGNED, "assigned to w1", out_).ok());
  EXPECT_EQ(Run().state, v1::RUN_STATE_ASSIGNED);
  EXPECT_EQ(Run().updated_at, 1005);
  EXPECT_GT(book_->version(), version);
  EXPECT_EQ(book_->version_of(id_), book_->version());
  auto events = store_->RunEvents(id_);
  ASSERT_TRUE(events.ok());
  ASSERT_EQ(events->size(), before + 1);
  EXPECT_EQ(events->back().from_state, v1::RUN_STATE_QUEUED);
  EXPECT_EQ(events->back().to_state, v1::RUN_STATE_ASSIGNED);
  EXPECT_EQ(events->back().reason, "assigned to w1");
  // Ended runs go nowhere: the state machine, not the caller, says so.
  ASSERT_TRUE(book_->Transition(Run(), v1::RUN_STATE_CANCELLED, "cancelled", out_).ok());
  EXPECT_EQ(book_->Transition(Run(), v1::RUN_STATE_QUEUED, "again", out_).code(),
            absl::StatusCode::kInternal);
  EXPECT_EQ(Run().state, v1::RUN_STATE_CANCELLED);
}

TEST_F(RunBookTest, LossesRequeueUntilTheRestartLimitThenFail) {
  for (int attempt = 1; attempt <= 2; ++attempt) {
    ASSERT_TRUE(book_->Transition(Run(), v1::RUN_STATE_ASSIGNED, "assigned", out_).ok());
    ASSERT_TRUE(
        book_->Requeue(Run(), v1::RUN_STATE_LOST, "worker gone", /*count_restart=*/true, out_)
            .ok());
  }
  // max_restarts 1: the first loss re-queued it, the second failed it.
  EXPECT_EQ(Run().state, v1::RUN_STATE_FAILED);
  EXPECT_EQ(Run().restarts, 1);
  EXPECT_NE(Run().reason.find("restart limit reached (max_restarts 1)"), std::string::npos)
      << Run().reason;
  auto events = store_->RunEvents(id_);
  ASSERT_TRUE(events.ok());
  std::vector<std::string> path;
  for (const RunEventRow& e : *events) path.push_back(RunStateName(e.to_state));
  EXPECT_EQ(path, (std::vector<std::string>{"queued", "assigned", "lost", "queued", "assigned",
                                            "lost", "failed"}));
}

TEST_F(RunBookTest, LossWhilePausingPausesAtTheNewestCheckpoint) {
  ASSERT_TRUE(book_->Transition(Run(), v1::RUN_STATE_ASSIGNED, "assigned", out_).ok());
  ASSERT_TRUE(book_->Transition(Run(), v1::RUN_STATE_PAUSING, "pause requested", out_).ok());
  Run().resume_checkpoint = "/ckpt/r1/step-40.sgtckpt";
  Run().resume_step = 40;
  ASSERT_TRUE(
      book_->Requeue(Run(), v1::RUN_STATE_LOST, "worker gone", /*count_restart=*/true, out_).ok());
  EXPECT_EQ(Run().state, v1::RUN_STATE_PAUSED);
  EXPECT_EQ(Run().restarts, 0);
  EXPECT_NE(Run().reason.find("checkpoint at step 40"), std::string::npos) << Run().reason;
}

TEST_F(RunBookTest, TargetsNameWhatIsWrong) {
  EXPECT_EQ(book_->Targets("r999").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(book_->Targets("s999").status().code(), absl::StatusCode::kNotFound);
  absl::Status bad = book_->Targets("run-1").status();
  EXPECT_EQ(bad.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(bad.message().find("write r<N> for a run or s<N> for a sweep"), std::string::npos);
  auto runs = book_->Targets("r" + std::to_string(id_));
  ASSERT_TRUE(runs.ok());
  ASSERT_EQ(runs->size(), 1u);
  EXPECT_EQ(runs->front()->id, id_);
}

}  // namespace
}  // namespace sgt::coord

namespace sgt::coord {
namespace {

v1::TelemetryBatch Batch(int64_t first, int64_t last, int64_t checkpoint, double loss) {
  v1::TelemetryBatch b;
  for (int64_t s = first; s <= last; ++s) {
    v1::ScalarRow* row = b.add_scalars();
    row->set_step(s);
    row->set_name("loss");
    row->set_value(s == last ? loss : 9.0);
  }
  v1::CheckpointRecord* c = b.add_checkpoints();
  c->set_step(checkpoint);
  c->set_path("/ck/step-" + std::to_string(checkpoint));
  return b;
}

// Two batches of one attempt applied in either order leave the same, newest progress: what the
// coordinator relies on when two sessions of a worker race during a session replacement (the
// older batch's update lands after the newer one's).
TEST(AdvanceProgressTest, ProgressOnlyMovesForward) {
  RunRow in_order;
  in_order.steps = 300;
  AdvanceProgress(Batch(1, 50, 40, 2.0), in_order);
  EXPECT_EQ(in_order.step, 50);
  EXPECT_EQ(in_order.resume_step, 40);
  EXPECT_EQ(in_order.resume_checkpoint, "/ck/step-40");
  EXPECT_DOUBLE_EQ(in_order.metrics.loss(), 2.0);
  AdvanceProgress(Batch(51, 100, 80, 1.0), in_order);
  EXPECT_EQ(in_order.step, 100);
  EXPECT_EQ(in_order.resume_step, 80);
  EXPECT_DOUBLE_EQ(in_order.metrics.loss(), 1.0);

  // The older batch lands last: nothing goes back.
  RunRow raced;
  raced.steps = 300;
  AdvanceProgress(Batch(51, 100, 80, 1.0), raced);
  AdvanceProgress(Batch(1, 50, 40, 2.0), raced);
  EXPECT_EQ(raced.step, in_order.step);
  EXPECT_EQ(raced.resume_step, in_order.resume_step);
  EXPECT_EQ(raced.resume_checkpoint, in_order.resume_checkpoint);
  EXPECT_DOUBLE_EQ(raced.metrics.loss(), in_order.metrics.loss());
}

TEST(AdvanceProgressTest, AWorkersNumbersStayInRange) {
  RunRow r;
  r.steps = 300;
  r.resume_step = 100;
  r.step = 100;
  AdvanceProgress(Batch(1000000, 1000000, 400, 1.0), r);  // past the end; a checkpoint at 400
  EXPECT_EQ(r.step, 300);
  EXPECT_EQ(r.resume_step, 100);  // a checkpoint at or past the last step is no resume point
}

// Task scores: rows of the worker's task_eval translation (hand-written, as the worker makes
// them of an events.jsonl line) update the run's metrics one evaluation at a time, and the
// summary's final list replaces them.
v1::TelemetryBatch TaskRows(int64_t step, double acc) {
  v1::TelemetryBatch b;
  for (const auto& [name, value] : std::vector<std::pair<std::string, double>>{
           {"acc/arith", acc}, {"acc_norm/arith", acc / 2}, {"acc/mmlu/stem", 0.75},
           {"acc", acc}, {"acc_norm", acc / 2}}) {
    v1::ScalarRow* row = b.add_scalars();
    row->set_step(step);
    row->set_name(name);
    row->set_value(value);
  }
  return b;
}

TEST(AdvanceProgressTest, TaskRowsKeepTheNewestEvaluation) {
  RunRow r;
  r.steps = 300;
  AdvanceProgress(TaskRows(100, 0.5), r);
  ASSERT_EQ(r.metrics.tasks_size(), 2);
  EXPECT_EQ(r.metrics.tasks(0).task(), "arith");
  EXPECT_EQ(r.metrics.tasks(0).group(), "");
  EXPECT_EQ(r.metrics.tasks(0).step(), 100);
  EXPECT_DOUBLE_EQ(r.metrics.tasks(0).acc(), 0.5);
  EXPECT_DOUBLE_EQ(r.metrics.tasks(0).acc_norm(), 0.25);
  EXPECT_EQ(r.metrics.tasks(1).group(), "stem");
  EXPECT_DOUBLE_EQ(r.metrics.acc(), 0.5);
  EXPECT_DOUBLE_EQ(r.metrics.acc_norm(), 0.25);
  // A newer evaluation replaces the set; an older batch landing late changes nothing.
  v1::TelemetryBatch newer;
  v1::ScalarRow* row = newer.add_scalars();
  row->set_step(200);
  row->set_name("acc/arith");
  row->set_value(0.625);
  AdvanceProgress(newer, r);
  ASSERT_EQ(r.metrics.tasks_size(), 1);
  EXPECT_DOUBLE_EQ(r.metrics.tasks(0).acc(), 0.625);
  EXPECT_EQ(r.metrics.tasks(0).step(), 200);
  EXPECT_DOUBLE_EQ(r.metrics.acc(), 0);  // its macro row has not arrived yet
  AdvanceProgress(TaskRows(100, 0.5), r);
  ASSERT_EQ(r.metrics.tasks_size(), 1);
  EXPECT_DOUBLE_EQ(r.metrics.tasks(0).acc(), 0.625);
}

TEST(MetricsFromSummaryTest, TheSummarysTasksReplaceTheRows) {
  v1::RunMetrics m;
  MetricFromScalar("acc/old", 0.1, &m, 10);
  const nlohmann::json summary = nlohmann::json::parse(
      R"({"step":60,"final_loss":3.5,"tasks":[{"task":"arith","items":40,"acc":0.25,)"
      R"("acc_norm":0.5},{"task":"mmlu","items":10,"acc":0.5,"acc_norm":0.75},)"
      R"({"task":"mmlu","group":"stem","items":4,"acc":1.0,"acc_norm":0.0}],"acc":0.375,)"
      R"("acc_norm":0.625})");
  MetricsFromSummary(summary, &m);
  EXPECT_DOUBLE_EQ(m.loss(), 3.5);
  ASSERT_EQ(m.tasks_size(), 3);
  EXPECT_EQ(m.tasks(0).task(), "arith");
  EXPECT_EQ(m.tasks(0).items(), 40);
  EXPECT_EQ(m.tasks(0).step(), 60);
  EXPECT_EQ(m.tasks(2).group(), "stem");
  EXPECT_DOUBLE_EQ(m.acc(), 0.375);
  EXPECT_DOUBLE_EQ(m.acc_norm(), 0.625);
  // A malformed list changes nothing, and throws nothing.
  MetricsFromSummary(nlohmann::json::parse(R"({"run":7,"tasks":[{"task":"x","items":"many"}]})"),
                     &m);
  EXPECT_EQ(m.tasks_size(), 3);
  // A summary without tasks (a run without eval) leaves them.
  MetricsFromSummary(nlohmann::json::parse(R"({"final_loss":3.0})"), &m);
  EXPECT_EQ(m.tasks_size(), 3);
}

}  // namespace
}  // namespace sgt::coord
