// The RunBook (services/coordinator/run_book.h) against a real SQLite store: every transition is
// checked against the state machine before anything is stored, and a refused one changes
// neither the store nor the book; losses go where run_state's table lets them.
#include "services/coordinator/run_book.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

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
