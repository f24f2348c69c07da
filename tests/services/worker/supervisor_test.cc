// Tests for the supervisor of attempts (services/worker/supervisor.h), driven through an
// in-memory link (FakeLink: it records what the supervisor sends and opens and closes sessions
// as the gRPC link does) with real children: small /bin/sh scripts stand in for sgt-train and
// write event lines (docs/events.md) on the events pipe, fd 3. A real spool holds the telemetry.
// Covered: a run that succeeds (RUNNING, telemetry batches, acknowledgements, then SUCCEEDED with
// its summary, then forgotten once acknowledged), a failure with its stderr, cancel (SIGTERM;
// SIGKILL after the grace period), StartRuns refused as the worker refuses them, a final status
// kept for the next session, and the shutdown (draining heartbeat, LOST). Data-parallel attempts
// (one script per rank, telling its rank by $RANK): every rank started with its environment, a
// failing rank ending the others and named in FAILED, commands reaching every rank, a node
// without rank 0 reporting its ranks, bad rendezvous refused. Every wait is for a condition with a
// generous deadline, never a fixed sleep; the test directory's path has a space in it.
#include "services/worker/supervisor.h"

#include <stdlib.h>
#include <sys/stat.h>

#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <mutex>
#include <sstream>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "services/worker/link.h"
#include "services/worker/spool.h"

namespace sgt::worker {
namespace {

namespace fs = std::filesystem;
namespace v1 = sgt::v1;
using ::testing::HasSubstr;
using ::testing::Not;
using Clock = std::chrono::steady_clock;
using Messages = std::vector<v1::WorkerMessage>;

constexpr auto kDeadline = std::chrono::seconds(60);  // generous: the machine may be loaded

// A Link in memory: Send records the message while a session is open and fails otherwise.
class FakeLink : public Link {
 public:
  bool Send(const v1::WorkerMessage& m) override {
    std::lock_guard<std::mutex> lock(mu_);
    if (!open_) {
      ++refused_;
    } else {
      sent_.push_back(m);
    }
    cv_.notify_all();
    return open_;
  }

  // Opens a session on `h` as the gRPC link does: a Hello listing what `h` holds, then
  // SessionOpened before anything else can be sent.
  void Open(LinkHandler& h, const std::string& worker_id) {
    v1::WorkerMessage hello;
    hello.mutable_hello()->set_worker_id(worker_id);
    for (const v1::RunRef& r : h.Held(/*unreported_only=*/false)) {
      *hello.mutable_hello()->add_runs() = r;
    }
    h.SessionOpened(worker_id);
    std::lock_guard<std::mutex> lock(mu_);
    sent_.push_back(hello);
    open_ = true;
  }
  void Close(LinkHandler& h) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      open_ = false;
    }
    h.SessionClosed();
  }

  // Waits until `done` holds for the messages sent so far; false at the deadline.
  bool WaitFor(const std::function<bool(const Messages&)>& done) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_until(lock, Clock::now() + kDeadline, [&] { return done(sent_); });
  }
  bool WaitForRefused(int n) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_until(lock, Clock::now() + kDeadline, [&] { return refused_ >= n; });
  }
  Messages Sent() {
    std::lock_guard<std::mutex> lock(mu_);
    return sent_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool open_ = false;
  int refused_ = 0;  // sends while no session was open
  Messages sent_;
};

// The index of the first status of run/attempt in state `state` in `m`, or -1.
int StatusAt(const Messages& m, const std::string& run, v1::RunState state, int32_t attempt = 1) {
  for (size_t i = 0; i < m.size(); ++i) {
    const v1::RunStatus& s = m[i].status();
    if (m[i].has_status() && s.run_id() == run && s.attempt() == attempt && s.state() == state) {
      return static_cast<int>(i);
    }
  }
  return -1;
}
std::function<bool(const Messages&)> HasStatus(const std::string& run, v1::RunState state) {
  return [=](const Messages& m) { return StatusAt(m, run, state) >= 0; };
}
int StatusCount(const Messages& m, const std::string& run) {
  int n = 0;
  for (const v1::WorkerMessage& w : m) n += w.has_status() && w.status().run_id() == run;
  return n;
}
std::vector<v1::TelemetryBatch> Batches(const Messages& m, const std::string& run) {
  std::vector<v1::TelemetryBatch> out;
  for (const v1::WorkerMessage& w : m) {
    if (w.has_telemetry() && w.telemetry().run_id() == run) out.push_back(w.telemetry());
  }
  return out;
}
int64_t ScalarRows(const std::vector<v1::TelemetryBatch>& batches) {
  int64_t n = 0;
  for (const v1::TelemetryBatch& b : batches) n += b.scalars_size();
  return n;
}

// Polls `done` (state of the supervisor, not of the link) until it holds or the deadline.
bool Eventually(const std::function<bool()>& done) {
  const Clock::time_point deadline = Clock::now() + kDeadline;
  while (!done()) {
    if (Clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return true;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// Event lines for the scripts (echo '...' >&3).
std::string Event(const std::string& json) { return absl::StrCat("echo '", json, "' >&3\n"); }
const std::string kStart = Event(R"({"event":"start","time":1,"step":0})");

class SupervisorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = "/tmp/sgt supervisor_test.XXXXXX";  // a space: paths are never split
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
    fs::create_directories(dir_ + "/work");
    fs::create_directories(dir_ + "/ck");
    Spool::Options so;
    so.dir = dir_ + "/work/spool";
    absl::StatusOr<std::unique_ptr<Spool>> spool = Spool::Open(so);
    ASSERT_TRUE(spool.ok()) << spool.status();
    spool_ = *std::move(spool);
  }
  void TearDown() override {
    if (sup_) {
      link_.Close(*sup_);  // the shutdown then waits for no acknowledgement
      sup_.reset();
    }
    spool_.reset();
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  // The stand-in for sgt-train: a /bin/sh script with this body.
  void Train(const std::string& body) {
    const std::string path = dir_ + "/train.sh";
    std::ofstream(path) << "#!/bin/sh\n" << body;
    ASSERT_EQ(::chmod(path.c_str(), 0755), 0);
  }

  // The supervisor of `cpus` CPU slots, its session open as w1.
  void Make(int cpus = 1, double grace_s = 30, double straggler_s = 30) {
    SupervisorOptions o;
    for (int i = 0; i < cpus; ++i) {
      v1::Device d;
      d.set_kind("cpu");
      d.set_id(absl::StrCat("cpu:", i));
      o.devices.push_back(d);
    }
    o.attempt.work_dir = dir_ + "/work";
    o.attempt.checkpoint_root = dir_ + "/ck";
    o.attempt.train_program = dir_ + "/train.sh";
    o.attempt.cancel_grace_s = grace_s;
    o.straggler_s = straggler_s;
    sup_ = std::make_unique<Supervisor>(o, *spool_, link_);
    link_.Open(*sup_, "w1");
  }

  // Delivers a StartRun from the coordinator (on this thread, which outlives the children).
  void Start(const std::string& run, int devices = 1,
             const std::string& config = R"({"train":{"device":"cpu"}})") {
    v1::CoordinatorMessage m;
    m.mutable_start()->set_run_id(run);
    m.mutable_start()->set_attempt(1);
    m.mutable_start()->set_config_json(config);
    m.mutable_start()->set_devices(devices);
    m.mutable_start()->set_name("test-" + run);
    sup_->Handle(m);
  }
  // A StartRun of `devices` ranks here, on node `node_rank` of `nodes` when nodes > 1.
  void StartRanks(const std::string& run, int devices, int nodes = 0, int node_rank = 0,
                  const std::string& resume = "") {
    v1::CoordinatorMessage m;
    v1::StartRun* s = m.mutable_start();
    s->set_run_id(run);
    s->set_attempt(1);
    s->set_config_json(R"({"train":{"device":"cpu"}})");
    s->set_devices(devices);
    s->set_resume_checkpoint(resume);
    s->mutable_rendezvous()->set_nodes(nodes);
    s->mutable_rendezvous()->set_node_rank(node_rank);
    if (nodes > 1) {
      s->mutable_rendezvous()->set_master_addr("10.1.2.3");
      s->mutable_rendezvous()->set_master_port(29517);
    }
    sup_->Handle(m);
  }
  void Command(const std::string& run, v1::RunCommand::Kind kind) {
    v1::CoordinatorMessage m;
    m.mutable_command()->set_run_id(run);
    m.mutable_command()->set_attempt(1);
    m.mutable_command()->set_kind(kind);
    sup_->Handle(m);
  }
  void Ack(const v1::TelemetryBatch& b) {
    v1::CoordinatorMessage m;
    m.mutable_ack()->set_run_id(b.run_id());
    m.mutable_ack()->set_attempt(b.attempt());
    m.mutable_ack()->set_sequence(b.sequence());
    sup_->Handle(m);
  }
  void StatusAck(const std::string& run, v1::RunState state) {
    v1::CoordinatorMessage m;
    m.mutable_status_ack()->set_run_id(run);
    m.mutable_status_ack()->set_attempt(1);
    m.mutable_status_ack()->set_state(state);
    sup_->Handle(m);
  }
  v1::RunStatus Status(const std::string& run, v1::RunState state) {
    const Messages m = link_.Sent();
    const int i = StatusAt(m, run, state);
    return i < 0 ? v1::RunStatus() : m[static_cast<size_t>(i)].status();
  }
  int Children() { return sup_->CurrentLoad().children; }

  std::string dir_;
  FakeLink link_;
  std::unique_ptr<Spool> spool_;
  std::unique_ptr<Supervisor> sup_;
};

TEST_F(SupervisorTest, RunSucceedsAfterItsTelemetryIsAcknowledged) {
  Train("echo \"$@\"\n" + kStart + Event(R"({"event":"scalars","time":2,"step":1,"loss":3.5})") +
        Event(R"({"event":"scalars","time":2,"step":2,"loss":3.0})") +
        Event(R"({"event":"end","time":3,"status":"succeeded","step":2,"final_loss":3.0})"));
  Make();
  const double idle_at_start = sup_->CurrentLoad().idle_since;
  EXPECT_EQ(sup_->CurrentLoad().attempts, 0);
  Start("r1");
  ASSERT_TRUE(link_.WaitFor(HasStatus("r1", v1::RUN_STATE_RUNNING)));
  EXPECT_EQ(sup_->CurrentLoad().attempts, 1);
  // The end event sends what is left; the child is gone; its status waits for the acks.
  ASSERT_TRUE(link_.WaitFor([](const Messages& m) { return ScalarRows(Batches(m, "r1")) == 2; }));
  ASSERT_TRUE(Eventually([&] { return Children() == 0; }));
  EXPECT_EQ(StatusAt(link_.Sent(), "r1", v1::RUN_STATE_SUCCEEDED), -1)
      << "the final status went before its telemetry was acknowledged";
  const std::vector<v1::TelemetryBatch> batches = Batches(link_.Sent(), "r1");
  for (size_t i = 0; i < batches.size(); ++i) {
    EXPECT_EQ(batches[i].attempt(), 1);
    EXPECT_EQ(batches[i].sequence(), static_cast<int64_t>(i) + 1);
  }
  EXPECT_EQ(batches.front().scalars(0).name(), "loss");
  EXPECT_EQ(batches.front().scalars(0).step(), 1);
  EXPECT_EQ(batches.front().scalars(0).value(), 3.5);
  EXPECT_EQ(spool_->Pending("r1", 1), static_cast<int64_t>(batches.size()));

  for (const v1::TelemetryBatch& b : batches) Ack(b);
  EXPECT_EQ(spool_->Pending(), 0);
  ASSERT_TRUE(link_.WaitFor(HasStatus("r1", v1::RUN_STATE_SUCCEEDED)));
  const v1::RunStatus s = Status("r1", v1::RUN_STATE_SUCCEEDED);
  EXPECT_EQ(s.step(), 2);
  EXPECT_EQ(s.reason(), "");
  EXPECT_EQ(s.summary_json(), R"({"status":"succeeded","step":2,"final_loss":3.0})");
  const Messages sent = link_.Sent();
  EXPECT_LT(StatusAt(sent, "r1", v1::RUN_STATE_RUNNING),
            StatusAt(sent, "r1", v1::RUN_STATE_SUCCEEDED));

  // The child was started as sgt-train is, in the attempt's directory.
  const std::string run_dir = dir_ + "/work/runs/r1/attempt-1";
  EXPECT_EQ(ReadFile(run_dir + "/config.json"), "{\"train\":{\"device\":\"cpu\"}}\n");
  EXPECT_EQ(
      ReadFile(run_dir + "/stdout.log"),
      absl::StrCat("--config ", run_dir, "/config.json --out ", run_dir, " --checkpoint-dir ", dir_,
                   "/ck/r1/attempt-1 --events-fd 3 --no-progress --set "
                   "train.threads=1\n"));

  // Held until its status is acknowledged; its device is free since it ended.
  EXPECT_EQ(sup_->Held(false).size(), 1u);
  EXPECT_TRUE(sup_->Held(/*unreported_only=*/true).empty());  // its final status went
  EXPECT_FALSE(sup_->CurrentLoad().devices.at(0).second);
  StatusAck("r1", v1::RUN_STATE_RUNNING);  // not the state reported: kept
  EXPECT_EQ(sup_->Held(false).size(), 1u);
  EXPECT_EQ(sup_->CurrentLoad().attempts, 1);  // busy for --exit-when-idle until then
  StatusAck("r1", v1::RUN_STATE_SUCCEEDED);
  EXPECT_TRUE(sup_->Held(false).empty());
  EXPECT_EQ(sup_->CurrentLoad().attempts, 0);
  EXPECT_GT(sup_->CurrentLoad().idle_since, idle_at_start);  // idle from the acknowledgement
}

TEST_F(SupervisorTest, FailingChildIsReportedFailedWithItsStderr) {
  Train(kStart + Event(R"({"event":"scalars","time":2,"step":4,"loss":3.5})") +
        "echo 'reading the data' >&2\n"
        "echo 'sgt-train: cannot read /data/x/train.u16: No such file' >&2\n"
        "exit 2\n");
  Make();
  Start("r2");
  // Its one batch must be acknowledged before the status goes.
  ASSERT_TRUE(link_.WaitFor([](const Messages& m) { return !Batches(m, "r2").empty(); }));
  ASSERT_TRUE(Eventually([&] { return Children() == 0; }));
  for (const v1::TelemetryBatch& b : Batches(link_.Sent(), "r2")) Ack(b);
  ASSERT_TRUE(link_.WaitFor(HasStatus("r2", v1::RUN_STATE_FAILED)));
  const v1::RunStatus s = Status("r2", v1::RUN_STATE_FAILED);
  EXPECT_EQ(s.reason(), "cannot read /data/x/train.u16: No such file (exit status 2 on w1)");
  EXPECT_EQ(s.stderr_tail(),
            "reading the data\nsgt-train: cannot read /data/x/train.u16: No such file\n");
  EXPECT_EQ(s.step(), 4);
  EXPECT_EQ(s.summary_json(), "");
}

TEST_F(SupervisorTest, CancelEndsTheChildAndReportsCancelled) {
  Train(kStart + "exec sleep 1000\n");
  Make();
  Start("r3");
  ASSERT_TRUE(link_.WaitFor(HasStatus("r3", v1::RUN_STATE_RUNNING)));
  EXPECT_TRUE(sup_->CurrentLoad().devices.at(0).second);
  Command("r3", v1::RunCommand::KIND_CANCEL);
  ASSERT_TRUE(link_.WaitFor(HasStatus("r3", v1::RUN_STATE_CANCELLED)));
  EXPECT_EQ(Status("r3", v1::RUN_STATE_CANCELLED).reason(), "cancelled");
  EXPECT_EQ(Status("r3", v1::RUN_STATE_CANCELLED).stderr_tail(), "");
  EXPECT_EQ(Children(), 0);
  EXPECT_FALSE(sup_->CurrentLoad().devices.at(0).second);  // its device is free again
}

TEST_F(SupervisorTest, CancelOfAChildIgnoringSigtermKillsItAfterTheGracePeriod) {
  // The scalars line shows the trap is set; SIGTERM is ignored by the shell and its sleeps.
  Train("trap '' TERM\n" + kStart + Event(R"({"event":"scalars","time":2,"step":1,"loss":1})") +
        "while :; do sleep 1; done\n");
  Make(1, /*grace_s=*/0.5);
  Start("r4");
  ASSERT_TRUE(link_.WaitFor([](const Messages& m) { return !Batches(m, "r4").empty(); }));
  for (const v1::TelemetryBatch& b : Batches(link_.Sent(), "r4")) Ack(b);
  Command("r4", v1::RunCommand::KIND_CANCEL);
  ASSERT_TRUE(link_.WaitFor(HasStatus("r4", v1::RUN_STATE_CANCELLED)));
  EXPECT_EQ(Status("r4", v1::RUN_STATE_CANCELLED).reason(),
            "cancelled (killed after 0.5 s of SIGTERM)");
}

TEST_F(SupervisorTest, StartRunsAreRefusedAsTheWorkerRefusesThem) {
  Train(kStart + "exec sleep 1000\n");
  Make(/*cpus=*/2);
  Start("r1");
  ASSERT_TRUE(link_.WaitFor(HasStatus("r1", v1::RUN_STATE_RUNNING)));
  // Synchronous: a refusal is sent before Handle returns.
  Start("r2", /*devices=*/2);
  EXPECT_EQ(Status("r2", v1::RUN_STATE_LOST).reason(),
            "w1 has 1 free cpu device(s), the run needs 2; back to the queue");
  Start("r3", 1, R"({"train":{"device":"cuda"}})");
  EXPECT_EQ(Status("r3", v1::RUN_STATE_LOST).reason(),
            "w1 has 0 free cuda device(s), the run needs 1; back to the queue");
  Start("r4", 1, "not json");
  EXPECT_EQ(Status("r4", v1::RUN_STATE_FAILED).reason(), "config_json is not a JSON object");
  Start("r5", 1, R"({"train":{"device":"cpu"}})");
  ASSERT_TRUE(link_.WaitFor(HasStatus("r5", v1::RUN_STATE_RUNNING)));
  Start("r6");  // both slots busy now
  EXPECT_EQ(Status("r6", v1::RUN_STATE_LOST).reason(),
            "w1 has 0 free cpu device(s), the run needs 1; back to the queue");
  v1::CoordinatorMessage resume;
  resume.mutable_start()->set_run_id("r7");
  resume.mutable_start()->set_attempt(1);
  resume.mutable_start()->set_config_json("{}");
  resume.mutable_start()->set_devices(1);
  resume.mutable_start()->set_resume_checkpoint("/etc/passwd");
  sup_->Handle(resume);
  // A busy worker checks its devices first.
  EXPECT_EQ(Status("r7", v1::RUN_STATE_LOST).reason(),
            "w1 has 0 free cpu device(s), the run needs 1; back to the queue");
  // Ignored: an attempt it runs already, and what a coordinator never sends.
  Start("r1");
  Start("x9");
  Start("r1/../r2");
  const Messages m = link_.Sent();
  EXPECT_EQ(StatusCount(m, "r1"), 1);  // RUNNING, once
  EXPECT_EQ(StatusCount(m, "x9"), 0);
  EXPECT_EQ(StatusCount(m, "r1/../r2"), 0);
  EXPECT_EQ(sup_->CurrentLoad().children, 2);
}

TEST_F(SupervisorTest, ResumeOutsideTheCheckpointRootIsRefused) {
  Train(kStart);
  Make();
  v1::CoordinatorMessage m;
  m.mutable_start()->set_run_id("r8");
  m.mutable_start()->set_attempt(2);
  m.mutable_start()->set_config_json("{}");
  m.mutable_start()->set_devices(1);
  m.mutable_start()->set_resume_checkpoint("/etc/passwd");
  sup_->Handle(m);
  const Messages sent = link_.Sent();
  const int i = StatusAt(sent, "r8", v1::RUN_STATE_FAILED, 2);
  ASSERT_GE(i, 0);
  EXPECT_THAT(sent[static_cast<size_t>(i)].status().reason(),
              HasSubstr("resume checkpoint refused on w1: "));
  EXPECT_EQ(Children(), 0);
}

TEST_F(SupervisorTest, FinalStatusWaitsForTheNextSession) {
  const std::string go = dir_ + "/go";
  Train(kStart + "while [ ! -e '" + go + "' ]; do sleep 0.05; done\n" +
        Event(R"({"event":"end","time":3,"status":"paused","step":7})"));
  Make();
  Start("r9");
  ASSERT_TRUE(link_.WaitFor(HasStatus("r9", v1::RUN_STATE_RUNNING)));
  link_.Close(*sup_);
  std::ofstream(go) << "go";
  ASSERT_TRUE(link_.WaitForRefused(1));  // the final status, with no session to go on
  ASSERT_TRUE(Eventually([&] { return Children() == 0; }));
  EXPECT_EQ(StatusAt(link_.Sent(), "r9", v1::RUN_STATE_PAUSED), -1);

  link_.Open(*sup_, "w1");
  const Messages m = link_.Sent();
  ASSERT_TRUE(m.back().has_hello());
  ASSERT_EQ(m.back().hello().runs_size(), 1);  // still held: its status was never acknowledged
  EXPECT_EQ(m.back().hello().runs(0).run_id(), "r9");
  EXPECT_EQ(m.back().hello().runs(0).step(), 7);
  sup_->Replayed();
  ASSERT_TRUE(link_.WaitFor(HasStatus("r9", v1::RUN_STATE_PAUSED)));
  EXPECT_EQ(Status("r9", v1::RUN_STATE_PAUSED).reason(), "paused at step 7 on w1");
}

// Issue 22: a RUNNING status sent on a session that then broke is sent again on the next
// session, until the coordinator acknowledges it; once acknowledged, never again.
TEST_F(SupervisorTest, RunningStatusGoesAgainOnEachSessionUntilAcknowledged) {
  const std::string go = dir_ + "/go";
  Train(kStart + "while [ ! -e '" + go + "' ]; do sleep 0.05; done\n" +
        Event(R"({"event":"end","time":3,"status":"succeeded","step":7})"));
  Make();
  Start("r7");
  ASSERT_TRUE(link_.WaitFor(HasStatus("r7", v1::RUN_STATE_RUNNING)));
  auto running_count = [&] {
    int n = 0;
    for (const v1::WorkerMessage& w : link_.Sent()) {
      n += w.has_status() && w.status().run_id() == "r7" &&
           w.status().state() == v1::RUN_STATE_RUNNING;
    }
    return n;
  };
  EXPECT_EQ(running_count(), 1);
  // The session breaks before any acknowledgement; the next one carries RUNNING again.
  link_.Close(*sup_);
  link_.Open(*sup_, "w1");
  sup_->Replayed();
  EXPECT_EQ(running_count(), 2);
  StatusAck("r7", v1::RUN_STATE_RUNNING);
  link_.Close(*sup_);
  link_.Open(*sup_, "w1");
  sup_->Replayed();
  EXPECT_EQ(running_count(), 2);  // acknowledged: not again
  std::ofstream(go) << "go";
  ASSERT_TRUE(link_.WaitFor(HasStatus("r7", v1::RUN_STATE_SUCCEEDED)));
  EXPECT_EQ(running_count(), 2);
}

TEST_F(SupervisorTest, ShutdownDrainsAndReportsItsChildrenLost) {
  Train(kStart + "exec sleep 1000\n");
  Make();
  Start("r10");
  ASSERT_TRUE(link_.WaitFor(HasStatus("r10", v1::RUN_STATE_RUNNING)));
  sup_->Stop();
  Start("r11");
  EXPECT_EQ(Status("r11", v1::RUN_STATE_LOST).reason(), "w1 is shutting down");
  std::thread stopper([&] { sup_->StopChildren(); });
  ASSERT_TRUE(link_.WaitFor(HasStatus("r10", v1::RUN_STATE_LOST)));
  // The drain waits for the acknowledgement (up to 5 s): give it.
  StatusAck("r10", v1::RUN_STATE_LOST);
  stopper.join();
  const Messages m = link_.Sent();
  EXPECT_EQ(Status("r10", v1::RUN_STATE_LOST).reason(),
            "w1 shut down; the run goes back to the queue");
  int drain = -1;
  for (size_t i = 0; i < m.size(); ++i) {
    if (m[i].has_heartbeat() && m[i].heartbeat().draining()) drain = static_cast<int>(i);
  }
  ASSERT_GE(drain, 0) << "no draining heartbeat";
  ASSERT_EQ(m[static_cast<size_t>(drain)].heartbeat().runs_size(), 1);
  EXPECT_EQ(m[static_cast<size_t>(drain)].heartbeat().runs(0).run_id(), "r10");
  EXPECT_LT(drain, StatusAt(m, "r10", v1::RUN_STATE_LOST));
  EXPECT_TRUE(sup_->Held(false).empty());
}

// A batch system ending the job (scancel, a time limit) sends SIGTERM to every process of it at
// once: the child dies of it just before the worker stops. The run is LOST, as in a shutdown,
// not FAILED for a crash; an outside SIGTERM with no stop following is still a failure.
TEST_F(SupervisorTest, AnOutsideSigtermFollowedByTheWorkersStopIsLost) {
  Train(kStart + "kill -TERM $$\nexec sleep 1000\n");
  Make();
  Start("r12");
  ASSERT_TRUE(link_.WaitFor(HasStatus("r12", v1::RUN_STATE_RUNNING)));
  ASSERT_TRUE(Eventually([&] { return Children() == 0; }));
  sup_->Stop();
  std::thread stopper([&] { sup_->StopChildren(); });
  ASSERT_TRUE(link_.WaitFor(HasStatus("r12", v1::RUN_STATE_LOST)));
  StatusAck("r12", v1::RUN_STATE_LOST);
  stopper.join();
  EXPECT_EQ(Status("r12", v1::RUN_STATE_LOST).reason(),
            "w1 shut down; the run goes back to the queue");
  EXPECT_EQ(StatusAt(link_.Sent(), "r12", v1::RUN_STATE_FAILED), -1);
}

TEST_F(SupervisorTest, AnOutsideSigtermAloneIsAFailure) {
  Train(kStart + "kill -TERM $$\nexec sleep 1000\n");
  Make();
  Start("r13");
  ASSERT_TRUE(link_.WaitFor(HasStatus("r13", v1::RUN_STATE_FAILED)));
  EXPECT_THAT(Status("r13", v1::RUN_STATE_FAILED).reason(), HasSubstr("signal 15"));
}

// ---------------------------------------------------------------------------------------------
// Data-parallel attempts: one child per rank.

// Waits until each rank of `ranks` has written DIR/up-RANK (the scripts' first line).
bool RanksUp(const std::string& dir, int first, int count) {
  return Eventually([&] {
    for (int r = first; r < first + count; ++r) {
      if (!fs::exists(absl::StrCat(dir, "/up-", r))) return false;
    }
    return true;
  });
}
std::string Up(const std::string& dir) { return "echo up > '" + dir + "'/up-\"$RANK\"\n"; }
// What every rank prints first: its environment and arguments.
const std::string kSayWho =
    "echo \"$RANK $WORLD_SIZE $LOCAL_RANK $LOCAL_WORLD_SIZE $MASTER_ADDR $MASTER_PORT\"\n"
    "echo \"$@\"\n";

TEST_F(SupervisorTest, RanksStartWithTheirEnvironmentAndSucceedTogether) {
  const std::string go = dir_ + "/go";
  Train(kSayWho + Up(dir_) + "while [ ! -e '" + go + "' ]; do sleep 0.05; done\n" +
        "[ \"$RANK\" = 0 ] || exit 0\n" + kStart +
        Event(R"({"event":"scalars","time":2,"step":1,"loss":3.5})") +
        Event(R"({"event":"end","time":3,"status":"succeeded","step":1,"final_loss":3.5})"));
  Make(/*cpus=*/3);
  StartRanks("r20", 2);
  ASSERT_TRUE(link_.WaitFor(HasStatus("r20", v1::RUN_STATE_RUNNING)));
  ASSERT_TRUE(RanksUp(dir_, 0, 2));
  EXPECT_EQ(Children(), 2);
  const Supervisor::Load load = sup_->CurrentLoad();
  EXPECT_TRUE(load.devices.at(0).second && load.devices.at(1).second);  // one device per rank
  EXPECT_FALSE(load.devices.at(2).second);
  ASSERT_EQ(sup_->Held(false).size(), 1u);  // heartbeats list the attempt once
  EXPECT_EQ(sup_->Held(false)[0].run_id(), "r20");
  std::ofstream(go) << "go";

  ASSERT_TRUE(link_.WaitFor([](const Messages& m) { return ScalarRows(Batches(m, "r20")) == 1; }));
  ASSERT_TRUE(Eventually([&] { return Children() == 0; }));
  for (const v1::TelemetryBatch& b : Batches(link_.Sent(), "r20")) Ack(b);
  ASSERT_TRUE(link_.WaitFor(HasStatus("r20", v1::RUN_STATE_SUCCEEDED)));
  const v1::RunStatus st = Status("r20", v1::RUN_STATE_SUCCEEDED);
  EXPECT_EQ(st.reason(), "");
  EXPECT_EQ(st.summary_json(), R"({"status":"succeeded","step":1,"final_loss":3.5})");
  EXPECT_EQ(StatusCount(link_.Sent(), "r20"), 2);  // RUNNING, SUCCEEDED: one attempt
  EXPECT_FALSE(sup_->CurrentLoad().devices.at(0).second);

  // Rank 0 alone has the events pipe; both run one thread, and meet on loopback at a port the
  // worker picked.
  const std::string run_dir = dir_ + "/work/runs/r20/attempt-1";
  const std::string args = absl::StrCat("--config ", run_dir, "/config.json --out ", run_dir,
                                        " --checkpoint-dir ", dir_, "/ck/r20/attempt-1");
  const std::string out0 = ReadFile(run_dir + "/stdout.log");
  const std::string out1 = ReadFile(run_dir + "/rank-1.stdout.log");
  EXPECT_THAT(out0, HasSubstr("0 2 0 2 127.0.0.1 "));
  EXPECT_THAT(out1, HasSubstr("1 2 1 2 127.0.0.1 "));
  EXPECT_THAT(out0, HasSubstr(args + " --events-fd 3 --no-progress --set train.threads=1\n"));
  EXPECT_THAT(out1, HasSubstr(args + " --no-progress --set train.threads=1\n"));
  const std::string port0 = out0.substr(0, out0.find('\n')).substr(18);
  const std::string port1 = out1.substr(0, out1.find('\n')).substr(18);
  EXPECT_EQ(port0, port1);
  EXPECT_GT(std::stoi(port0), 0);
  EXPECT_TRUE(fs::exists(run_dir + "/rank-1.stderr.log"));
  EXPECT_FALSE(fs::exists(run_dir + "/rank-0.stdout.log"));
}

TEST_F(SupervisorTest, AFailingRankStopsTheOthersAndIsNamed) {
  // Rank 1 fails once both are up; rank 0 would sleep for ever.
  Train(Up(dir_) + "[ \"$RANK\" = 0 ] && { " + kStart.substr(0, kStart.size() - 1) +
        "; exec sleep 1000; }\n"
        "while [ ! -e '" +
        dir_ +
        "/up-0' ]; do sleep 0.05; done\n"
        "echo 'sgt-train: rendezvous with 127.0.0.1 broke' >&2\n"
        "exit 3\n");
  Make(/*cpus=*/2);
  StartRanks("r21", 2);
  ASSERT_TRUE(link_.WaitFor(HasStatus("r21", v1::RUN_STATE_FAILED)));
  const v1::RunStatus st = Status("r21", v1::RUN_STATE_FAILED);
  EXPECT_EQ(st.reason(), "rank 1 exited with status 3 on w1: rendezvous with 127.0.0.1 broke");
  EXPECT_EQ(st.stderr_tail(), "sgt-train: rendezvous with 127.0.0.1 broke\n");
  EXPECT_EQ(Children(), 0);  // rank 0 was stopped, well before the 30 s grace period
  EXPECT_FALSE(sup_->CurrentLoad().devices.at(0).second);
  EXPECT_FALSE(sup_->CurrentLoad().devices.at(1).second);
}

TEST_F(SupervisorTest, ARankIgnoringSigtermAfterAFailureIsKilled) {
  // Rank 0 is up once SIGTERM is ignored; then rank 1 crashes.
  Train("ulimit -c 0\nif [ \"$RANK\" = 0 ]; then\n  trap '' TERM\n  " + Up(dir_) +
        "  while :; do sleep 1; done\nfi\n"
        "while [ ! -e '" +
        dir_ +
        "/up-0' ]; do sleep 0.05; done\n"
        "kill -SEGV $$\n");
  Make(/*cpus=*/2, /*grace_s=*/0.5);
  StartRanks("r22", 2);
  ASSERT_TRUE(link_.WaitFor(HasStatus("r22", v1::RUN_STATE_FAILED)));
  EXPECT_EQ(Status("r22", v1::RUN_STATE_FAILED).reason(),
            "rank 1 was killed by signal 11 (Segmentation fault) at step 0 on w1");
  EXPECT_EQ(Children(), 0);
}

// Pause is SIGUSR2 to every rank. The ranks start with it blocked (as sgt-train does until it
// handles it), so each script watches for it pending, with builtins only (a shell that forks
// and waits may unblock it).
TEST_F(SupervisorTest, PauseReachesEveryRank) {
  Train(Up(dir_) + "[ \"$RANK\" = 0 ] && " + kStart +
        "pending() {\n"
        "  while read -r k v; do\n"
        "    [ \"$k\" = ShdPnd: ] && [ $(( 0x$v & 0x800 )) -ne 0 ] && return 0\n"
        "  done < /proc/$$/status\n"
        "  return 1\n"
        "}\n"
        "until pending; do :; done\n"
        "echo \"rank $RANK: SIGUSR2\"\n"
        "[ \"$RANK\" = 0 ] || exit 0\n" +
        Event(R"({"event":"end","time":3,"status":"paused","step":5})"));
  Make(/*cpus=*/3);
  StartRanks("r23", 3);
  ASSERT_TRUE(link_.WaitFor(HasStatus("r23", v1::RUN_STATE_RUNNING)));
  ASSERT_TRUE(RanksUp(dir_, 0, 3));
  Command("r23", v1::RunCommand::KIND_PAUSE);
  ASSERT_TRUE(link_.WaitFor(HasStatus("r23", v1::RUN_STATE_PAUSED)));
  EXPECT_EQ(Status("r23", v1::RUN_STATE_PAUSED).reason(), "paused at step 5 on w1");
  const std::string run_dir = dir_ + "/work/runs/r23/attempt-1";
  EXPECT_EQ(ReadFile(run_dir + "/stdout.log"), "rank 0: SIGUSR2\n");
  EXPECT_EQ(ReadFile(run_dir + "/rank-1.stdout.log"), "rank 1: SIGUSR2\n");
  EXPECT_EQ(ReadFile(run_dir + "/rank-2.stdout.log"), "rank 2: SIGUSR2\n");
}

// Rank 0 succeeded; a rank that then hangs is stopped after the straggler time, and the outcome
// is rank 0's.
TEST_F(SupervisorTest, ARankLeftRunningAfterRankZeroIsStopped) {
  Train("[ \"$RANK\" = 0 ] || exec sleep 1000\n" + kStart +
        Event(R"({"event":"end","time":3,"status":"succeeded","step":2})"));
  Make(/*cpus=*/2, /*grace_s=*/30, /*straggler_s=*/0.2);
  StartRanks("r29", 2);
  ASSERT_TRUE(link_.WaitFor(HasStatus("r29", v1::RUN_STATE_SUCCEEDED)));
  EXPECT_EQ(Status("r29", v1::RUN_STATE_SUCCEEDED).summary_json(),
            R"({"status":"succeeded","step":2})");
  EXPECT_EQ(Children(), 0);
}

TEST_F(SupervisorTest, CancelReachesEveryRank) {
  Train(Up(dir_) + "exec sleep 1000\n");
  Make(/*cpus=*/2);
  StartRanks("r24", 2);
  ASSERT_TRUE(RanksUp(dir_, 0, 2));
  Command("r24", v1::RunCommand::KIND_CANCEL);
  ASSERT_TRUE(link_.WaitFor(HasStatus("r24", v1::RUN_STATE_CANCELLED)));
  EXPECT_EQ(Status("r24", v1::RUN_STATE_CANCELLED).reason(), "cancelled");
  EXPECT_EQ(Children(), 0);
}

// Node 1 of 2 runs ranks 2 and 3 and has no events: its ranks exiting 0 is SUCCEEDED. The resume
// checkpoint is rank 0's, on node 0: not looked at here.
TEST_F(SupervisorTest, NodeWithoutRankZeroReportsItsRanks) {
  Train(kSayWho + "exit 0\n");
  Make(/*cpus=*/2);
  StartRanks("r25", 2, /*nodes=*/2, /*node_rank=*/1, /*resume=*/"/etc/passwd");
  ASSERT_TRUE(link_.WaitFor(HasStatus("r25", v1::RUN_STATE_SUCCEEDED)));
  const v1::RunStatus st = Status("r25", v1::RUN_STATE_SUCCEEDED);
  EXPECT_EQ(st.reason(), "node 1 of 2: ranks 2-3 exited cleanly on w1");
  EXPECT_EQ(st.summary_json(), "");
  EXPECT_TRUE(Batches(link_.Sent(), "r25").empty());
  const std::string run_dir = dir_ + "/work/runs/r25/attempt-1";
  const std::string out2 = ReadFile(run_dir + "/rank-2.stdout.log");
  EXPECT_THAT(out2, HasSubstr("2 4 0 2 10.1.2.3 29517\n"));
  EXPECT_THAT(out2, Not(HasSubstr("--events-fd")));
  EXPECT_THAT(out2, Not(HasSubstr("--resume")));
  EXPECT_THAT(ReadFile(run_dir + "/rank-3.stdout.log"), HasSubstr("3 4 1 2 10.1.2.3 29517\n"));
  EXPECT_FALSE(fs::exists(run_dir + "/stdout.log"));
}

TEST_F(SupervisorTest, NodeWithoutRankZeroReportsAFailedRank) {
  Train(
      "[ \"$RANK\" = 3 ] || exec sleep 1000\necho 'sgt-train: no route to 10.1.2.3' >&2\nexit 1\n");
  Make(/*cpus=*/2);
  StartRanks("r26", 2, /*nodes=*/2, /*node_rank=*/1);
  ASSERT_TRUE(link_.WaitFor(HasStatus("r26", v1::RUN_STATE_FAILED)));
  EXPECT_EQ(Status("r26", v1::RUN_STATE_FAILED).reason(),
            "rank 3 exited with status 1 on w1: no route to 10.1.2.3");
  EXPECT_EQ(Children(), 0);
}

TEST_F(SupervisorTest, BadRendezvousIsRefused) {
  Train("exit 0\n");
  Make(/*cpus=*/2);
  StartRanks("r27", 1, /*nodes=*/2, /*node_rank=*/2);
  EXPECT_EQ(Status("r27", v1::RUN_STATE_FAILED).reason(),
            "bad StartRun from the coordinator: rendezvous node_rank 2 is not in [0, 2)");
  StartRanks("r28", 0);
  EXPECT_EQ(Status("r28", v1::RUN_STATE_FAILED).reason(),
            "bad StartRun from the coordinator: devices is 0; a run needs at least 1");
  EXPECT_EQ(Children(), 0);
  EXPECT_FALSE(fs::exists(dir_ + "/work/runs/r27"));
}

}  // namespace
}  // namespace sgt::worker
