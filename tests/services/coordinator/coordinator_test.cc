// The coordinator's state machine against a real SQLite store, with a fake clock and an
// in-memory worker sink (what a session stream would carry).
#include "services/coordinator/coordinator.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sqlite3.h>
#include <unistd.h>

#include <filesystem>
#include <limits>
#include <map>
#include <set>
#include <utility>

#include "services/common/ids.h"

namespace sgt::coord {
namespace {

namespace fs = std::filesystem;

class RecordingSink : public WorkerSink {
 public:
  bool Send(const v1::CoordinatorMessage& m) override {
    std::lock_guard<std::mutex> lock(mu);
    messages.push_back(m);
    return true;
  }
  std::vector<v1::StartRun> Starts() {
    std::lock_guard<std::mutex> lock(mu);
    std::vector<v1::StartRun> out;
    for (const auto& m : messages)
      if (m.has_start()) out.push_back(m.start());
    return out;
  }
  std::vector<v1::RunCommand> Commands() {
    std::lock_guard<std::mutex> lock(mu);
    std::vector<v1::RunCommand> out;
    for (const auto& m : messages)
      if (m.has_command()) out.push_back(m.command());
    return out;
  }
  std::vector<v1::TelemetryAck> Acks() {
    std::lock_guard<std::mutex> lock(mu);
    std::vector<v1::TelemetryAck> out;
    for (const auto& m : messages)
      if (m.has_ack()) out.push_back(m.ack());
    return out;
  }
  std::mutex mu;
  std::vector<v1::CoordinatorMessage> messages;
};

constexpr char kSweep[] = R"(name: t
base:
  variant: sgt
  model: {layers: 4, d_model: 64, heads: 4, d_ff: 128, context: 32, vocab_size: 256}
  train: {steps: 100, warmup_steps: 5}
  growth: {t_start: 20, delta_t: 20, layers: 2, k_max: 1, heads: 1}
  data: {train: a.u16, validation: b.u16}
grid:
  variant: [vanilla, sgt]
max_restarts: 1
)";

// The same sweep with the SGT run first, so that the first run a worker gets has growth
// boundaries (pause and snapshot happen there).
std::string SgtFirst() {
  std::string y = kSweep;
  y.replace(y.find("[vanilla, sgt]"), 14, "[sgt, vanilla]");
  return y;
}

class CoordinatorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/sgt-coord-test-XXXXXX";
    dir_ = mkdtemp(tmpl);
    Reopen();
  }
  void TearDown() override {
    coord_.reset();
    store_.reset();
    fs::remove_all(dir_);
  }
  void Reopen() {
    coord_.reset();
    store_.reset();
    auto s = Store::Open((fs::path(dir_) / "sgt.db").string());
    ASSERT_TRUE(s.ok()) << s.status();
    store_ = std::move(*s);
    CoordinatorOptions o;
    o.lease_seconds = 10;
    o.clock = [this] { return now_; };
    auto c = Coordinator::Create(store_.get(), o);
    ASSERT_TRUE(c.ok()) << c.status();
    coord_ = std::move(*c);
  }
  v1::SubmitSweepResponse Submit(const std::string& yaml = kSweep) {
    v1::SubmitSweepRequest req;
    req.set_yaml(yaml);
    req.set_source_name("t.yaml");
    auto r = coord_->SubmitSweep(req);
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? *r : v1::SubmitSweepResponse{};
  }
  // A registered worker with an open session; returns the session. With `rendezvous` it takes
  // part in multi-node runs: rendezvous at <name>.lan, ports 29500-29501.
  uint64_t Connect(const std::string& name, int cpus, std::shared_ptr<RecordingSink> sink,
                   std::vector<v1::RunRef> held = {}, bool rendezvous = false) {
    v1::RegisterRequest reg;
    reg.set_name(name);
    if (rendezvous) {
      reg.set_rendezvous_host(name + ".lan");
      reg.set_rendezvous_port_base(29500);
      reg.set_rendezvous_port_count(2);
    }
    for (int i = 0; i < cpus; ++i) {
      v1::Device* d = reg.add_devices();
      d->set_id("cpu:" + std::to_string(i));
      d->set_kind("cpu");
    }
    auto r = coord_->Register(reg);
    EXPECT_TRUE(r.ok()) << r.status();
    v1::Hello hello;
    hello.set_worker_id(r->worker_id());
    for (auto& h : held) *hello.add_runs() = h;
    auto s = coord_->OpenSession(hello, sink);
    EXPECT_TRUE(s.ok()) << s.status();
    return *s;
  }
  uint64_t ConnectDp(const std::string& name, int cpus, std::shared_ptr<RecordingSink> sink) {
    return Connect(name, cpus, std::move(sink), {}, /*rendezvous=*/true);
  }
  absl::Status Heartbeat(uint64_t session, const std::vector<std::pair<std::string, int>>& runs) {
    v1::WorkerMessage m;
    for (const auto& [run, attempt] : runs) {
      v1::RunRef* ref = m.mutable_heartbeat()->add_runs();
      ref->set_run_id(run);
      ref->set_attempt(attempt);
    }
    m.mutable_heartbeat();
    return coord_->HandleWorkerMessage(session, m);
  }
  int32_t FreeDevices(const std::string& worker_id) {
    const v1::ListWorkersResponse workers = coord_->ListWorkers();
    for (const v1::Worker& w : workers.workers()) {
      if (w.id() == worker_id) return w.free_devices();
    }
    return -1;
  }
  v1::Run Get(const std::string& id) {
    v1::GetRunRequest req;
    req.set_run_id(id);
    auto r = coord_->GetRun(req);
    EXPECT_TRUE(r.ok()) << r.status();
    return r->run();
  }
  absl::Status Status(uint64_t session, const std::string& run, int attempt, v1::RunState st,
                      const std::string& summary = "") {
    v1::WorkerMessage m;
    m.mutable_status()->set_run_id(run);
    m.mutable_status()->set_attempt(attempt);
    m.mutable_status()->set_state(st);
    m.mutable_status()->set_summary_json(summary);
    return coord_->HandleWorkerMessage(session, m);
  }
  // The SGT run of SgtFirst() started on worker n1 (one CPU) and reported running; the
  // worker's session in *session.
  std::string StartSgtRun(const std::shared_ptr<RecordingSink>& sink, uint64_t* session) {
    Submit(SgtFirst());
    *session = Connect("n1", 1, sink);
    const std::string run = sink->Starts().at(0).run_id();
    EXPECT_TRUE(Status(*session, run, 1, v1::RUN_STATE_RUNNING).ok());
    return run;
  }
  std::string dir_;
  double now_ = 1000;
  std::unique_ptr<Store> store_;
  std::unique_ptr<Coordinator> coord_;
};

TEST_F(CoordinatorTest, SubmitQueuesRunsAndAWorkerGetsThem) {
  auto resp = Submit();
  ASSERT_EQ(resp.runs_size(), 2);
  EXPECT_EQ(resp.sweep().id(), "s1");
  for (const auto& r : resp.runs()) EXPECT_EQ(r.state(), v1::RUN_STATE_QUEUED);
  auto sink = std::make_shared<RecordingSink>();
  uint64_t session = Connect("n1", 1, sink);
  // One device: one run at a time.
  ASSERT_EQ(sink->Starts().size(), 1u);
  const v1::StartRun start = sink->Starts()[0];
  EXPECT_EQ(start.attempt(), 1);
  EXPECT_FALSE(start.has_rendezvous());  // a one-node run picks its own
  EXPECT_EQ(Get(start.run_id()).state(), v1::RUN_STATE_ASSIGNED);
  EXPECT_EQ(Get(start.run_id()).worker_ids_size(), 0);
  ASSERT_TRUE(Status(session, start.run_id(), 1, v1::RUN_STATE_RUNNING).ok());
  EXPECT_EQ(Get(start.run_id()).state(), v1::RUN_STATE_RUNNING);
  ASSERT_TRUE(Status(session, start.run_id(), 1, v1::RUN_STATE_SUCCEEDED,
                     R"({"step": 100, "val_ppl": 42.5, "train_flops": 1e12})")
                  .ok());
  v1::Run done = Get(start.run_id());
  EXPECT_EQ(done.state(), v1::RUN_STATE_SUCCEEDED);
  EXPECT_DOUBLE_EQ(done.metrics().val_ppl(), 42.5);
  EXPECT_EQ(done.step(), 100);
  // The device is free again: the second run starts.
  EXPECT_EQ(sink->Starts().size(), 2u);
}

TEST_F(CoordinatorTest, TelemetryBatchSentTwiceIsStoredOnce) {
  Submit();
  auto sink = std::make_shared<RecordingSink>();
  uint64_t session = Connect("n1", 1, sink);
  const v1::StartRun start = sink->Starts().at(0);
  v1::WorkerMessage m;
  v1::TelemetryBatch* b = m.mutable_telemetry();
  b->set_run_id(start.run_id());
  b->set_attempt(1);
  b->set_sequence(1);
  for (int h = 0; h < 4; ++h) {
    v1::EntropyRow* e = b->add_entropy();
    e->set_step(10);
    e->set_head(h);
    e->set_value(0.5f);
  }
  v1::ScalarRow* s = b->add_scalars();
  s->set_step(10);
  s->set_name("loss");
  s->set_value(4.5);
  ASSERT_TRUE(coord_->HandleWorkerMessage(session, m).ok());
  ASSERT_TRUE(coord_->HandleWorkerMessage(session, m).ok());
  auto acks = sink->Acks();
  ASSERT_EQ(acks.size(), 2u);
  EXPECT_FALSE(acks[0].duplicate());
  EXPECT_TRUE(acks[1].duplicate());
  v1::GetRunRequest req;
  req.set_run_id(start.run_id());
  auto got = coord_->GetRun(req);
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->entropy_rows(), 4);
  EXPECT_EQ(got->scalar_rows(), 1);
  EXPECT_EQ(got->run().step(), 10);
  EXPECT_DOUBLE_EQ(got->run().metrics().loss(), 4.5);
}

TEST_F(CoordinatorTest, PauseAtBoundaryThenResumeFromCheckpoint) {
  auto sink = std::make_shared<RecordingSink>();
  uint64_t session = 0;
  const std::string run = StartSgtRun(sink, &session);
  v1::ActionRequest pause;
  pause.set_target(run);
  auto p = coord_->Pause(pause);
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(Get(run).state(), v1::RUN_STATE_PAUSING);
  ASSERT_EQ(sink->Commands().size(), 1u);
  EXPECT_EQ(sink->Commands()[0].kind(), v1::RunCommand::KIND_PAUSE);
  ASSERT_TRUE(Status(session, run, 1, v1::RUN_STATE_PAUSED,
                     R"({"status": "paused", "step": 40, "last_checkpoint": "/ck/step-40.pt"})")
                  .ok());
  v1::Run paused = Get(run);
  EXPECT_EQ(paused.state(), v1::RUN_STATE_PAUSED);
  EXPECT_EQ(paused.resume_checkpoint(), "/ck/step-40.pt");
  // Pausing it again is refused with the reason, and nothing changes.
  auto again = coord_->Pause(pause);
  EXPECT_EQ(again.status().code(), absl::StatusCode::kFailedPrecondition);
  auto r = coord_->Resume(pause);
  ASSERT_TRUE(r.ok()) << r.status();
  // The freed device took the other run; this one waits, then restarts from step 40.
  v1::Run resumed = Get(run);
  EXPECT_EQ(resumed.state(), v1::RUN_STATE_QUEUED);
  EXPECT_NE(resumed.reason().find("step 40"), std::string::npos) << resumed.reason();
}

TEST_F(CoordinatorTest, ExpiredLeaseLosesRunsAndRequeuesUpToTheLimit) {
  Submit();
  auto sink = std::make_shared<RecordingSink>();
  Connect("n1", 2, sink);
  ASSERT_EQ(sink->Starts().size(), 2u);
  const std::string run = sink->Starts()[0].run_id();
  now_ += 11;  // past the 10 s lease
  coord_->Tick();
  v1::Run r = Get(run);
  EXPECT_EQ(r.state(), v1::RUN_STATE_QUEUED);
  EXPECT_EQ(r.restarts(), 1);
  v1::GetRunRequest req;
  req.set_run_id(run);
  auto got = coord_->GetRun(req);
  bool saw_lost = false;
  for (const auto& e : got->events()) saw_lost |= e.to_state() == v1::RUN_STATE_LOST;
  EXPECT_TRUE(saw_lost);
  // A new worker takes it (attempt 2); it is lost again: max_restarts is 1, so it fails.
  auto sink2 = std::make_shared<RecordingSink>();
  Connect("n2", 2, sink2);
  ASSERT_EQ(sink2->Starts().size(), 2u);
  EXPECT_EQ(sink2->Starts()[0].attempt(), 2);
  now_ += 11;
  coord_->Tick();
  EXPECT_EQ(Get(run).state(), v1::RUN_STATE_FAILED);
  EXPECT_NE(Get(run).reason().find("restart limit"), std::string::npos);
}

TEST_F(CoordinatorTest, EverythingSurvivesARestartAndQueuedRunsAreScheduled) {
  auto resp = Submit();
  Reopen();
  v1::ListRunsRequest all;
  auto runs = coord_->ListRuns(all);
  ASSERT_TRUE(runs.ok());
  ASSERT_EQ(runs->runs_size(), 2);
  EXPECT_EQ(runs->runs(0).config_hash(), resp.runs(0).config_hash());
  auto sink = std::make_shared<RecordingSink>();
  Connect("n1", 2, sink);
  EXPECT_EQ(sink->Starts().size(), 2u);
}

TEST_F(CoordinatorTest, RunningRunsWaitOneLeaseForTheirWorkerAfterARestart) {
  Submit();
  auto sink = std::make_shared<RecordingSink>();
  uint64_t session = Connect("n1", 2, sink);
  const std::string run = sink->Starts()[0].run_id();
  ASSERT_TRUE(Status(session, run, 1, v1::RUN_STATE_RUNNING).ok());
  Reopen();
  coord_->Tick();
  EXPECT_EQ(Get(run).state(), v1::RUN_STATE_RUNNING);  // within the grace lease
  // The worker comes back holding the attempt: nothing is lost.
  v1::RunRef ref;
  ref.set_run_id(run);
  ref.set_attempt(1);
  auto sink2 = std::make_shared<RecordingSink>();
  Connect("n1", 2, sink2, {ref});
  now_ += 5;
  coord_->Tick();
  EXPECT_EQ(Get(run).state(), v1::RUN_STATE_RUNNING);
  EXPECT_EQ(Get(run).restarts(), 0);
}

TEST_F(CoordinatorTest, BadInputChangesNothing) {
  v1::SubmitSweepRequest bad;
  bad.set_yaml("name: t\nbase: {variant: sgt, model: {layers: 0}}\n");
  bad.set_source_name("bad.yaml");
  auto r = coord_->SubmitSweep(bad);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("bad.yaml:2"), std::string::npos) << r.status();
  EXPECT_EQ(coord_->ListSweeps().sweeps_size(), 0);
  v1::GetRunRequest unknown;
  unknown.set_run_id("r99");
  EXPECT_EQ(coord_->GetRun(unknown).status().code(), absl::StatusCode::kNotFound);
  unknown.set_run_id("banana");
  EXPECT_EQ(coord_->GetRun(unknown).status().code(), absl::StatusCode::kInvalidArgument);
  v1::ActionRequest cancel;
  cancel.set_target("");
  EXPECT_EQ(coord_->Cancel(cancel).status().code(), absl::StatusCode::kInvalidArgument);
  v1::RegisterRequest reg;  // no name
  EXPECT_EQ(coord_->Register(reg).status().code(), absl::StatusCode::kInvalidArgument);
  v1::Hello hello;
  hello.set_worker_id("w7");
  EXPECT_EQ(coord_->OpenSession(hello, std::make_shared<RecordingSink>()).status().code(),
            absl::StatusCode::kNotFound);
}

TEST_F(CoordinatorTest, EditChangesQueuedRunsOnly) {
  Submit();
  v1::EditRequest e;
  e.set_target("s1");
  e.set_priority(70);
  e.set_steps(200);
  e.set_max_concurrent(1);
  auto r = coord_->Edit(e);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->changed_size(), 2);
  EXPECT_EQ(r->sweep().max_concurrent(), 1);
  v1::Run run = Get("r1");
  EXPECT_EQ(run.priority(), 70);
  EXPECT_EQ(run.steps(), 200);
  EXPECT_NE(run.config_json().find("\"steps\":200"), std::string::npos);
  // A bad value changes nothing.
  v1::EditRequest bad;
  bad.set_target("s1");
  bad.set_steps(10);  // below growth.t_start for the sgt run
  EXPECT_FALSE(coord_->Edit(bad).ok());
  EXPECT_EQ(Get("r1").steps(), 200);
  EXPECT_EQ(Get("r2").steps(), 200);
  // max_concurrent = 1: two devices, one run.
  auto sink = std::make_shared<RecordingSink>();
  Connect("n1", 2, sink);
  EXPECT_EQ(sink->Starts().size(), 1u);
}

TEST_F(CoordinatorTest, ForkStartsFromARecordedCheckpoint) {
  Submit();
  auto sink = std::make_shared<RecordingSink>();
  uint64_t session = Connect("n1", 1, sink);
  const std::string run = sink->Starts()[0].run_id();
  v1::ForkRequest f;
  f.set_run_id(run);
  f.set_from_step(40);
  EXPECT_EQ(coord_->Fork(f).status().code(), absl::StatusCode::kFailedPrecondition);
  v1::WorkerMessage m;
  v1::TelemetryBatch* b = m.mutable_telemetry();
  b->set_run_id(run);
  b->set_attempt(1);
  b->set_sequence(1);
  v1::CheckpointRecord* c = b->add_checkpoints();
  c->set_step(40);
  c->set_path("/ck/" + run + "/step-40.pt");
  c->set_bytes(123);
  c->set_sha256(std::string(64, 'a'));
  c->set_reason("boundary");
  ASSERT_TRUE(coord_->HandleWorkerMessage(session, m).ok());
  v1::Setting* s = f.add_set();
  s->set_key("train.lr");
  s->set_value("0.0005");
  auto forked = coord_->Fork(f);
  ASSERT_TRUE(forked.ok()) << forked.status();
  EXPECT_EQ(forked->run().parent_run_id(), run);
  EXPECT_EQ(forked->run().resume_checkpoint(), "/ck/" + run + "/step-40.pt");
  EXPECT_NE(forked->run().config_json().find("0.0005"), std::string::npos);
  // Changing the model is refused: the checkpoint's weights would not fit.
  s->set_key("model.layers");
  s->set_value("8");
  EXPECT_EQ(coord_->Fork(f).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(CoordinatorTest, CancelASweepStopsRunningRunsAndDropsQueuedOnes) {
  Submit();
  auto sink = std::make_shared<RecordingSink>();
  uint64_t session = Connect("n1", 1, sink);
  const std::string running = sink->Starts()[0].run_id();
  ASSERT_TRUE(Status(session, running, 1, v1::RUN_STATE_RUNNING).ok());
  v1::ActionRequest c;
  c.set_target("s1");
  auto r = coord_->Cancel(c);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->changed_size(), 2);
  ASSERT_EQ(sink->Commands().size(), 1u);
  EXPECT_EQ(sink->Commands()[0].kind(), v1::RunCommand::KIND_CANCEL);
  EXPECT_EQ(Get("r1").state(), v1::RUN_STATE_CANCELLED);
  EXPECT_EQ(Get("r2").state(), v1::RUN_STATE_CANCELLED);
  // The worker holds its device until it reports the child gone.
  EXPECT_EQ(coord_->ListWorkers().workers(0).free_devices(), 0);
  ASSERT_TRUE(Status(session, running, 1, v1::RUN_STATE_CANCELLED).ok());
  EXPECT_EQ(coord_->ListWorkers().workers(0).free_devices(), 1);
}

// Issue 22: an attempt whose RUNNING status went on a session that broke. Its worker's hello
// lists it: the coordinator records it running, so its attempt row is written and the rows the
// previous attempt logged after the checkpoint this one resumed from are superseded (before,
// the run stayed `assigned` and steps 51-80 were exported twice).
TEST_F(CoordinatorTest, AnAttemptWhoseRunningStatusWasLostIsLearntFromTheHello) {
  auto sink = std::make_shared<RecordingSink>();
  uint64_t session = 0;
  const std::string run = StartSgtRun(sink, &session);
  // Losses of steps [from, to] from `attempt`, and a checkpoint at `ckpt` (0: none).
  auto log_steps = [&](uint64_t ses, int attempt, int from, int to, int ckpt) {
    v1::WorkerMessage m;
    v1::TelemetryBatch* b = m.mutable_telemetry();
    b->set_run_id(run);
    b->set_attempt(attempt);
    b->set_sequence(1);
    for (int step = from; step <= to; ++step) {
      v1::ScalarRow* s = b->add_scalars();
      s->set_step(step);
      s->set_name("loss");
      s->set_value(attempt);
    }
    if (ckpt > 0) {
      v1::CheckpointRecord* c = b->add_checkpoints();
      c->set_step(ckpt);
      c->set_path("/ckpt/" + run + "/step-" + std::to_string(ckpt) + ".sgtckpt");
      c->set_bytes(1);
      c->set_reason("interval");
    }
    ASSERT_TRUE(coord_->HandleWorkerMessage(ses, m).ok());
  };
  log_steps(session, 1, 1, 80, 50);
  // Its worker goes away for good: the run is re-queued from its checkpoint at step 50.
  coord_->CloseSession(session);
  now_ += 100;
  coord_->Tick();
  ASSERT_EQ(Get(run).state(), v1::RUN_STATE_QUEUED);
  // Attempt 2 starts on n2, but the RUNNING status it sends is lost with its session.
  auto sink2 = std::make_shared<RecordingSink>();
  const uint64_t s2 = Connect("n2", 2, sink2);
  bool started = false;
  for (const v1::StartRun& st : sink2->Starts()) {
    if (st.run_id() != run) continue;
    started = true;
    EXPECT_EQ(st.attempt(), 2);
    EXPECT_NE(st.resume_checkpoint().find("step-50"), std::string::npos);
  }
  ASSERT_TRUE(started);
  EXPECT_EQ(Get(run).state(), v1::RUN_STATE_ASSIGNED);
  coord_->CloseSession(s2);
  // n2 comes back; its hello lists attempt 2, which has trained meanwhile.
  v1::RunRef ref;
  ref.set_run_id(run);
  ref.set_attempt(2);
  auto sink3 = std::make_shared<RecordingSink>();
  const uint64_t s3 = Connect("n2", 2, sink3, {ref});
  EXPECT_EQ(Get(run).state(), v1::RUN_STATE_RUNNING);
  EXPECT_NE(Get(run).reason().find("its hello lists it"), std::string::npos) << Get(run).reason();
  log_steps(s3, 2, 51, 100, 0);
  // Every step once: attempt 1's 51-80 are superseded by attempt 2's.
  TelemetryFilter f;
  f.run_id = ParseId(run, 'r');
  std::map<int64_t, std::vector<double>> by_step;
  for (;;) {
    absl::StatusOr<ScalarPage> page = store_->QueryScalars(f);
    ASSERT_TRUE(page.ok()) << page.status();
    for (const v1::ScalarRow& r : page->rows) by_step[r.step()].push_back(r.value());
    if (page->next == 0) break;
    f.cursor = page->next;
  }
  ASSERT_EQ(by_step.size(), 100u);
  for (const auto& [step, values] : by_step) {
    ASSERT_EQ(values.size(), 1u) << "step " << step << " stored " << values.size() << " times";
    EXPECT_EQ(values[0], step <= 50 ? 1 : 2) << "step " << step;
  }
}

// The same learnt from a heartbeat: the session stayed, only the status was lost.
TEST_F(CoordinatorTest, AnAttemptWhoseRunningStatusWasLostIsLearntFromAHeartbeat) {
  Submit(SgtFirst());
  auto sink = std::make_shared<RecordingSink>();
  const uint64_t session = Connect("n1", 1, sink);
  const v1::StartRun start = sink->Starts().at(0);
  EXPECT_EQ(Get(start.run_id()).state(), v1::RUN_STATE_ASSIGNED);
  v1::WorkerMessage hb;
  v1::RunRef* ref = hb.mutable_heartbeat()->add_runs();
  ref->set_run_id(start.run_id());
  ref->set_attempt(start.attempt());
  ASSERT_TRUE(coord_->HandleWorkerMessage(session, hb).ok());
  EXPECT_EQ(Get(start.run_id()).state(), v1::RUN_STATE_RUNNING);
  EXPECT_NE(Get(start.run_id()).reason().find("its heartbeat lists it"), std::string::npos);
  // The RUNNING status arriving late changes nothing more.
  ASSERT_TRUE(Status(session, start.run_id(), start.attempt(), v1::RUN_STATE_RUNNING).ok());
  EXPECT_EQ(Get(start.run_id()).state(), v1::RUN_STATE_RUNNING);
}

TEST_F(CoordinatorTest, APauseAskedWhileTheWorkerIsAwayReachesItOnReconnect) {
  auto sink = std::make_shared<RecordingSink>();
  uint64_t session = 0;
  const std::string run = StartSgtRun(sink, &session);
  coord_->CloseSession(session);
  v1::ActionRequest pause;
  pause.set_target(run);
  ASSERT_TRUE(coord_->Pause(pause).ok());
  EXPECT_EQ(Get(run).state(), v1::RUN_STATE_PAUSING);
  EXPECT_TRUE(sink->Commands().empty());
  v1::RunRef ref;
  ref.set_run_id(run);
  ref.set_attempt(1);
  auto sink2 = std::make_shared<RecordingSink>();
  Connect("n1", 1, sink2, {ref});
  ASSERT_EQ(sink2->Commands().size(), 1u);
  EXPECT_EQ(sink2->Commands()[0].kind(), v1::RunCommand::KIND_PAUSE);
  EXPECT_EQ(Get(run).state(), v1::RUN_STATE_PAUSING);
}

TEST_F(CoordinatorTest, PauseAndSnapshotNeedABoundaryAhead) {
  Submit();  // r1 is vanilla: no growth boundaries at all
  auto sink = std::make_shared<RecordingSink>();
  uint64_t session = Connect("n1", 1, sink);
  const std::string run = sink->Starts().at(0).run_id();
  ASSERT_TRUE(Status(session, run, 1, v1::RUN_STATE_RUNNING).ok());
  v1::ActionRequest req;
  req.set_target(run);
  auto p = coord_->Pause(req);
  EXPECT_EQ(p.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(p.status().message().find("vanilla has none"), std::string::npos) << p.status();
  EXPECT_EQ(coord_->Snapshot(req).status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(Get(run).state(), v1::RUN_STATE_RUNNING);
  EXPECT_TRUE(sink->Commands().empty());
}

TEST_F(CoordinatorTest, APausingRunWhoseWorkerIsLostStaysPaused) {
  auto sink = std::make_shared<RecordingSink>();
  uint64_t session = 0;
  const std::string run = StartSgtRun(sink, &session);
  v1::ActionRequest req;
  req.set_target(run);
  ASSERT_TRUE(coord_->Pause(req).ok());
  now_ += 11;
  coord_->Tick();
  EXPECT_EQ(Get(run).state(), v1::RUN_STATE_PAUSED);
  EXPECT_EQ(Get(run).restarts(), 0);
}

TEST_F(CoordinatorTest, AnAttemptMissingFromHeartbeatsIsLost) {
  auto sink = std::make_shared<RecordingSink>();
  uint64_t session = 0;
  const std::string run = StartSgtRun(sink, &session);
  v1::WorkerMessage hb;
  hb.mutable_heartbeat();
  // Right after the start, an empty heartbeat may have crossed the StartRun: nothing happens.
  ASSERT_TRUE(coord_->HandleWorkerMessage(session, hb).ok());
  EXPECT_EQ(Get(run).state(), v1::RUN_STATE_RUNNING);
  // Later, it means the attempt is gone.
  now_ += 7;
  ASSERT_TRUE(coord_->HandleWorkerMessage(session, hb).ok());
  EXPECT_EQ(Get(run).state(), v1::RUN_STATE_ASSIGNED);  // lost, re-queued, given out again
  EXPECT_EQ(Get(run).restarts(), 1);
  EXPECT_EQ(Get(run).attempt(), 2);
}

TEST_F(CoordinatorTest, RunStepFollowsTheCurrentAttempt) {
  auto sink = std::make_shared<RecordingSink>();
  uint64_t session = 0;
  const std::string run = StartSgtRun(sink, &session);
  // Attempt 1 checkpoints at 20 and reaches 30, then its worker is lost.
  v1::WorkerMessage m;
  v1::TelemetryBatch* b = m.mutable_telemetry();
  b->set_run_id(run);
  b->set_attempt(1);
  b->set_sequence(1);
  b->add_scalars()->set_step(30);
  v1::CheckpointRecord* c = b->add_checkpoints();
  c->set_step(20);
  c->set_path("/ck/step-20");
  ASSERT_TRUE(coord_->HandleWorkerMessage(session, m).ok());
  EXPECT_EQ(Get(run).step(), 30);
  now_ += 11;
  coord_->Tick();
  auto sink2 = std::make_shared<RecordingSink>();
  uint64_t s2 = Connect("n2", 1, sink2);
  ASSERT_EQ(sink2->Starts().at(0).resume_checkpoint(), "/ck/step-20");
  EXPECT_EQ(Get(run).step(), 20);  // attempt 2 starts from the checkpoint
  ASSERT_TRUE(Status(s2, run, 2, v1::RUN_STATE_RUNNING).ok());
  v1::ActionRequest req;
  req.set_target(run);
  ASSERT_TRUE(coord_->Pause(req).ok());
  ASSERT_TRUE(Status(s2, run, 2, v1::RUN_STATE_PAUSED,
                     R"({"status": "paused", "step": 40, "last_checkpoint": "/ck/step-40"})")
                  .ok());
  EXPECT_EQ(Get(run).step(), 40);
  EXPECT_NE(Get(run).reason().find("40"), std::string::npos);
  auto resumed = coord_->Resume(req);
  ASSERT_TRUE(resumed.ok());
  EXPECT_NE(resumed->changed(0).reason().find("step 40"), std::string::npos);
}

TEST_F(CoordinatorTest, PauseWithAHugeStepCountAnswersAtOnce) {
  std::string y = SgtFirst();
  y.replace(y.find("steps: 100,"), 11, "steps: 1000000000000,");
  Submit(y);
  auto sink = std::make_shared<RecordingSink>();
  uint64_t session = Connect("n1", 1, sink);
  const std::string run = sink->Starts().at(0).run_id();
  ASSERT_TRUE(Status(session, run, 1, v1::RUN_STATE_RUNNING).ok());
  // A hostile step far past the end is clamped, and the boundary search is closed-form.
  v1::WorkerMessage m;
  m.mutable_telemetry()->set_run_id(run);
  m.mutable_telemetry()->set_attempt(1);
  m.mutable_telemetry()->set_sequence(1);
  m.mutable_telemetry()->add_scalars()->set_step(std::numeric_limits<int64_t>::max());
  ASSERT_TRUE(coord_->HandleWorkerMessage(session, m).ok());
  EXPECT_EQ(Get(run).step(), 1000000000000);
  v1::ActionRequest req;
  req.set_target(run);
  EXPECT_EQ(coord_->Pause(req).status().code(), absl::StatusCode::kFailedPrecondition);
}

TEST_F(CoordinatorTest, OnlyTheWorkerHoldingAnAttemptMaySendItsTelemetry) {
  Submit(SgtFirst());
  auto sink = std::make_shared<RecordingSink>();
  uint64_t session = Connect("n1", 1, sink);
  const std::string run = sink->Starts().at(0).run_id();
  auto intruder_sink = std::make_shared<RecordingSink>();
  uint64_t intruder = Connect("n2", 1, intruder_sink);
  v1::WorkerMessage m;
  v1::TelemetryBatch* b = m.mutable_telemetry();
  b->set_run_id(run);
  b->set_attempt(1);
  b->set_sequence(1);
  b->add_scalars()->set_step(50);
  EXPECT_EQ(coord_->HandleWorkerMessage(intruder, m).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Get(run).step(), 0);
  b->set_attempt(2);  // an attempt the run has not had
  EXPECT_EQ(coord_->HandleWorkerMessage(session, m).code(), absl::StatusCode::kInvalidArgument);
  // The holder's batch with the same key is still stored: the intruder took nothing.
  b->set_attempt(1);
  ASSERT_TRUE(coord_->HandleWorkerMessage(session, m).ok());
  EXPECT_FALSE(sink->Acks().back().duplicate());
  EXPECT_EQ(Get(run).step(), 50);
}

TEST_F(CoordinatorTest, OversizedBatchesAndHeldListsAreRefused) {
  Submit(SgtFirst());
  auto sink = std::make_shared<RecordingSink>();
  uint64_t session = Connect("n1", 1, sink);
  const std::string run = sink->Starts().at(0).run_id();
  v1::WorkerMessage m;
  v1::TelemetryBatch* b = m.mutable_telemetry();
  b->set_run_id(run);
  b->set_attempt(1);
  b->set_sequence(1);
  for (int i = 0; i < 65537; ++i) b->add_entropy()->set_step(1);
  EXPECT_EQ(coord_->HandleWorkerMessage(session, m).code(), absl::StatusCode::kInvalidArgument);
  v1::WorkerMessage hb;
  for (int i = 0; i < 1025; ++i) hb.mutable_heartbeat()->add_runs()->set_run_id("r1");
  EXPECT_EQ(coord_->HandleWorkerMessage(session, hb).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(sink->Commands().empty());
}

// A worker back after its lease expired still runs the attempt that was re-queued: it is told to
// cancel it, and its device stays busy (no new start) until the worker reports it ended.
TEST_F(CoordinatorTest, ACancelledAttemptKeepsItsDevicesUntilItEnds) {
  auto sink = std::make_shared<RecordingSink>();
  uint64_t session = 0;
  const std::string run = StartSgtRun(sink, &session);
  coord_->CloseSession(session);
  now_ += 11;  // past the 10 s lease: lost, re-queued
  coord_->Tick();
  ASSERT_EQ(Get(run).state(), v1::RUN_STATE_QUEUED);
  v1::RunRef ref;
  ref.set_run_id(run);
  ref.set_attempt(1);
  auto sink2 = std::make_shared<RecordingSink>();
  uint64_t s2 = Connect("n1", 1, sink2, {ref});
  ASSERT_EQ(sink2->Commands().size(), 1u);
  EXPECT_EQ(sink2->Commands()[0].kind(), v1::RunCommand::KIND_CANCEL);
  EXPECT_TRUE(sink2->Starts().empty()) << "started a run on a device the old attempt still uses";
  // Still listed in a heartbeat: still busy.
  v1::WorkerMessage hb;
  *hb.mutable_heartbeat()->add_runs() = ref;
  ASSERT_TRUE(coord_->HandleWorkerMessage(s2, hb).ok());
  coord_->Tick();
  EXPECT_TRUE(sink2->Starts().empty());
  // It ended: the device is free, and the run's next attempt starts there.
  ASSERT_TRUE(Status(s2, run, 1, v1::RUN_STATE_CANCELLED).ok());
  ASSERT_FALSE(sink2->Starts().empty());
  EXPECT_EQ(sink2->Starts()[0].run_id(), run);
  EXPECT_EQ(sink2->Starts()[0].attempt(), 2);
}

// A status gets a StatusAck; a refused telemetry batch gets an ack that says why.
TEST_F(CoordinatorTest, StatusesAndRefusedBatchesAreAcknowledged) {
  auto sink = std::make_shared<RecordingSink>();
  uint64_t session = 0;
  const std::string run = StartSgtRun(sink, &session);
  v1::WorkerMessage bad;
  v1::TelemetryBatch* b = bad.mutable_telemetry();
  b->set_run_id(run);
  b->set_attempt(1);
  b->set_sequence(1);
  v1::CheckpointRecord* c = b->add_checkpoints();
  c->set_step(20);
  c->set_path("/ckpt/../etc/passwd");
  EXPECT_FALSE(coord_->HandleWorkerMessage(session, bad).ok());
  std::vector<v1::TelemetryAck> acks = sink->Acks();
  ASSERT_EQ(acks.size(), 1u);
  EXPECT_NE(acks[0].error().find("'..'"), std::string::npos) << acks[0].error();
  int status_acks = 0;
  for (const auto& m : sink->messages) {
    if (m.has_status_ack()) {
      ++status_acks;
      EXPECT_EQ(m.status_ack().state(), v1::RUN_STATE_RUNNING);
      EXPECT_TRUE(m.status_ack().error().empty());
    }
  }
  EXPECT_EQ(status_acks, 1);
  // LOST from the worker: re-queued at once, a restart counted.
  ASSERT_TRUE(Status(session, run, 1, v1::RUN_STATE_LOST).ok());
  EXPECT_EQ(Get(run).restarts(), 1);
  // Re-assigned at once (attempt 2); given up before it ran: back in the queue, no restart.
  ASSERT_EQ(Get(run).state(), v1::RUN_STATE_ASSIGNED);
  ASSERT_EQ(Get(run).attempt(), 2);
  ASSERT_TRUE(Status(session, run, 2, v1::RUN_STATE_LOST).ok());
  EXPECT_EQ(Get(run).restarts(), 1);
  v1::GetRunRequest req;
  req.set_run_id(run);
  auto got = coord_->GetRun(req);
  ASSERT_TRUE(got.ok());
  bool said = false;
  for (const auto& e : got->events()) {
    said |= e.reason().find("no restart counted") != std::string::npos;
  }
  EXPECT_TRUE(said);
}

// A failed store write (a trigger stands in for a full disk) must not strand a run: the loss or
// the re-queue that could not be stored is finished on a later tick, once writes work again.
TEST_F(CoordinatorTest, ARunAFailedStoreWriteLeftHalfWayIsFinishedLater) {
  auto sql = [this](const std::string& q) {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open((fs::path(dir_) / "sgt.db").string().c_str(), &db), SQLITE_OK);
    char* err = nullptr;
    EXPECT_EQ(sqlite3_exec(db, q.c_str(), nullptr, nullptr, &err), SQLITE_OK) << err;
    sqlite3_free(err);
    sqlite3_close(db);
  };
  auto sink = std::make_shared<RecordingSink>();
  uint64_t session = 0;
  const std::string run = StartSgtRun(sink, &session);
  coord_->CloseSession(session);
  // The loss itself cannot be stored: the run stays running, its worker holding nothing.
  sql("CREATE TRIGGER full BEFORE UPDATE ON runs WHEN NEW.state = 'lost' "
      "BEGIN SELECT RAISE(ABORT, 'disk full'); END");
  now_ += 11;  // past the lease
  coord_->Tick();
  EXPECT_EQ(Get(run).state(), v1::RUN_STATE_RUNNING);
  // Then the loss is stored but the re-queue is not: the run stays lost.
  sql("DROP TRIGGER full; CREATE TRIGGER full BEFORE UPDATE ON runs WHEN NEW.state = 'queued' "
      "BEGIN SELECT RAISE(ABORT, 'disk full'); END");
  coord_->Tick();
  EXPECT_EQ(Get(run).state(), v1::RUN_STATE_LOST);
  EXPECT_EQ(Get(run).restarts(), 0);
  // Writes work again: re-queued, one restart counted, once.
  sql("DROP TRIGGER full");
  coord_->Tick();
  EXPECT_EQ(Get(run).state(), v1::RUN_STATE_QUEUED);
  EXPECT_EQ(Get(run).restarts(), 1);
  coord_->Tick();
  EXPECT_EQ(Get(run).restarts(), 1);
}

// --- Runs across several workers (gangs).

// kSweep's SGT run alone, over `nodes` workers (batch_size 16 splits into 2 ranks).
std::string GangSweep(int nodes, const std::string& variants = "[sgt]") {
  std::string y = kSweep;
  y.replace(y.find("[vanilla, sgt]"), 14, variants);
  return y + "nodes: " + std::to_string(nodes) + "\n";
}

class GangTest : public CoordinatorTest {
 protected:
  // The gang of GangSweep(2) started on a (node 0, w1) and b (node 1, w2) and reported running
  // by node 0.
  void StartGang() {
    Submit(GangSweep(2));
    sa_ = ConnectDp("a", 1, a_);
    sb_ = ConnectDp("b", 1, b_);
    ASSERT_EQ(a_->Starts().size(), 1u);
    ASSERT_EQ(b_->Starts().size(), 1u);
    run_ = a_->Starts()[0].run_id();
    ASSERT_TRUE(Status(sa_, run_, 1, v1::RUN_STATE_RUNNING).ok());
    ASSERT_EQ(Get(run_).state(), v1::RUN_STATE_RUNNING);
  }
  std::vector<v1::RunCommand> CancelsOf(const std::shared_ptr<RecordingSink>& sink) {
    std::vector<v1::RunCommand> out;
    for (const v1::RunCommand& c : sink->Commands()) {
      if (c.kind() == v1::RunCommand::KIND_CANCEL && c.run_id() == run_) out.push_back(c);
    }
    return out;
  }
  std::shared_ptr<RecordingSink> a_ = std::make_shared<RecordingSink>();
  std::shared_ptr<RecordingSink> b_ = std::make_shared<RecordingSink>();
  uint64_t sa_ = 0, sb_ = 0;
  std::string run_;
};

TEST_F(GangTest, AGangStartsOnEveryWorkerWithNodeZerosRendezvous) {
  Submit(GangSweep(2));
  sa_ = ConnectDp("a", 1, a_);
  // One worker is not enough: nothing starts, and the run says why.
  EXPECT_TRUE(a_->Starts().empty());
  const std::string run = "r1";
  EXPECT_NE(Get(run).reason().find("needs 2 workers with 1 free cpu device each; 1 connected "
                                   "worker has 1 cpu device"),
            std::string::npos)
      << Get(run).reason();
  // A worker without a rendezvous address cannot be a node.
  auto plain = std::make_shared<RecordingSink>();
  Connect("plain", 1, plain);
  EXPECT_TRUE(plain->Starts().empty());
  EXPECT_TRUE(a_->Starts().empty());
  EXPECT_NE(Get(run).reason().find("1 more without one cannot join a multi-node run"),
            std::string::npos)
      << Get(run).reason();

  sb_ = ConnectDp("b", 1, b_);
  ASSERT_EQ(a_->Starts().size(), 1u);
  ASSERT_EQ(b_->Starts().size(), 1u);
  const v1::StartRun s0 = a_->Starts()[0], s1 = b_->Starts()[0];
  for (const v1::StartRun& s : {s0, s1}) {
    EXPECT_EQ(s.run_id(), run);
    EXPECT_EQ(s.attempt(), 1);
    EXPECT_EQ(s.devices(), 1);
    ASSERT_TRUE(s.has_rendezvous());
    EXPECT_EQ(s.rendezvous().nodes(), 2);
    EXPECT_EQ(s.rendezvous().master_addr(), "a.lan");
    EXPECT_EQ(s.rendezvous().master_port(), 29500);
  }
  EXPECT_EQ(s0.rendezvous().node_rank(), 0);
  EXPECT_EQ(s1.rendezvous().node_rank(), 1);
  v1::Run r = Get(run);
  EXPECT_EQ(r.state(), v1::RUN_STATE_ASSIGNED);
  EXPECT_EQ(r.nodes(), 2);
  EXPECT_EQ(r.worker_id(), "w1");
  EXPECT_EQ(std::vector<std::string>(r.worker_ids().begin(), r.worker_ids().end()),
            std::vector<std::string>({"w1", "w3"}));
  EXPECT_EQ(FreeDevices("w1"), 0);
  EXPECT_EQ(FreeDevices("w3"), 0);
  // Node 1's RUNNING says nothing of the run; node 0's does.
  ASSERT_TRUE(Status(sb_, run, 1, v1::RUN_STATE_RUNNING).ok());
  EXPECT_EQ(Get(run).state(), v1::RUN_STATE_ASSIGNED);
  ASSERT_TRUE(Status(sa_, run, 1, v1::RUN_STATE_RUNNING).ok());
  EXPECT_EQ(Get(run).state(), v1::RUN_STATE_RUNNING);
}

TEST_F(GangTest, TwoGangsWithTheSameNodeZeroGetDifferentPorts) {
  Submit(GangSweep(2, "[vanilla, sgt]"));
  sa_ = ConnectDp("a", 2, a_);
  sb_ = ConnectDp("b", 2, b_);
  ASSERT_EQ(a_->Starts().size(), 2u);
  std::set<int32_t> ports;
  for (const v1::StartRun& s : a_->Starts()) {
    EXPECT_EQ(s.rendezvous().node_rank(), 0);
    ports.insert(s.rendezvous().master_port());
  }
  EXPECT_EQ(ports, std::set<int32_t>({29500, 29501}));
}

TEST_F(GangTest, NodeOneSucceededFreesItsDevicesOnly) {
  StartGang();
  ASSERT_TRUE(Status(sb_, run_, 1, v1::RUN_STATE_SUCCEEDED, R"({"step": 100})").ok());
  EXPECT_EQ(Get(run_).state(), v1::RUN_STATE_RUNNING);
  EXPECT_EQ(FreeDevices("w2"), 1);
  EXPECT_EQ(FreeDevices("w1"), 0);
  EXPECT_TRUE(CancelsOf(a_).empty());
  // Node 0 is still writing its final evaluation and checkpoint: ticks meanwhile must not take
  // node 1's finished part, no longer held, for a lost one (seen as an extra attempt under load).
  coord_->Tick();
  coord_->Tick();
  EXPECT_EQ(Get(run_).state(), v1::RUN_STATE_RUNNING);
  EXPECT_EQ(Get(run_).attempt(), 1);
  EXPECT_TRUE(CancelsOf(a_).empty());
  ASSERT_TRUE(Status(sa_, run_, 1, v1::RUN_STATE_SUCCEEDED, R"({"step": 100})").ok());
  EXPECT_EQ(Get(run_).state(), v1::RUN_STATE_SUCCEEDED);
  EXPECT_EQ(Get(run_).worker_ids_size(), 0);
  EXPECT_EQ(FreeDevices("w1"), 1);
}

TEST_F(GangTest, NodeOneFailedFailsTheRunAndCancelsNodeZero) {
  StartGang();
  v1::WorkerMessage m;
  m.mutable_status()->set_run_id(run_);
  m.mutable_status()->set_attempt(1);
  m.mutable_status()->set_state(v1::RUN_STATE_FAILED);
  m.mutable_status()->set_reason("sgt-train exited with code 1");
  m.mutable_status()->set_stderr_tail("NCCL error");
  ASSERT_TRUE(coord_->HandleWorkerMessage(sb_, m).ok());
  const v1::Run r = Get(run_);
  EXPECT_EQ(r.state(), v1::RUN_STATE_FAILED);
  EXPECT_NE(r.reason().find("node 1 of 2 (w2) failed: sgt-train exited with code 1"),
            std::string::npos)
      << r.reason();
  EXPECT_NE(r.reason().find("NCCL error"), std::string::npos);
  ASSERT_EQ(CancelsOf(a_).size(), 1u);
  EXPECT_EQ(CancelsOf(a_)[0].attempt(), 1);
  EXPECT_TRUE(CancelsOf(b_).empty());
  // Node 0's devices are busy until its worker says the attempt stopped.
  EXPECT_EQ(FreeDevices("w1"), 0);
  ASSERT_TRUE(Status(sa_, run_, 1, v1::RUN_STATE_CANCELLED).ok());
  EXPECT_EQ(FreeDevices("w1"), 1);
  EXPECT_EQ(Get(run_).state(), v1::RUN_STATE_FAILED);
}

TEST_F(GangTest, NodeOneLostRequeuesFromTheCheckpointAndCancelsNodeZero) {
  StartGang();
  ASSERT_TRUE(Status(sb_, run_, 1, v1::RUN_STATE_LOST).ok());
  v1::Run r = Get(run_);
  EXPECT_EQ(r.state(), v1::RUN_STATE_QUEUED);
  EXPECT_EQ(r.restarts(), 1);
  EXPECT_EQ(r.worker_ids_size(), 0);
  ASSERT_EQ(CancelsOf(a_).size(), 1u);
  // Not started again while node 0 still stops the old attempt.
  EXPECT_EQ(a_->Starts().size(), 1u);
  ASSERT_TRUE(Status(sa_, run_, 1, v1::RUN_STATE_CANCELLED).ok());
  ASSERT_EQ(a_->Starts().size(), 2u);
  ASSERT_EQ(b_->Starts().size(), 2u);
  EXPECT_EQ(a_->Starts()[1].attempt(), 2);
  EXPECT_EQ(a_->Starts()[1].rendezvous().master_port(), 29500);  // the old attempt's, freed
  EXPECT_EQ(Get(run_).state(), v1::RUN_STATE_ASSIGNED);
}

TEST_F(GangTest, NodeOnesLeaseExpiryLosesTheAttemptOnEveryNode) {
  StartGang();
  now_ += 11;  // b's lease is past; a renews its own
  ASSERT_TRUE(Heartbeat(sa_, {{run_, 1}}).ok());
  coord_->Tick();
  const v1::Run r = Get(run_);
  EXPECT_EQ(r.state(), v1::RUN_STATE_QUEUED);
  EXPECT_EQ(r.restarts(), 1);
  // Re-queued; with b gone it now says what it waits for.
  EXPECT_NE(r.reason().find("needs 2 workers"), std::string::npos) << r.reason();
  ASSERT_EQ(CancelsOf(a_).size(), 1u);
  // a's heartbeat no longer lists it once stopped: its devices are free again.
  ASSERT_TRUE(Heartbeat(sa_, {}).ok());
  EXPECT_EQ(FreeDevices("w1"), 1);
  EXPECT_EQ(Get(run_).state(), v1::RUN_STATE_QUEUED);  // b is gone: one worker is not enough
}

TEST_F(GangTest, NodeZerosLeaseExpiryCancelsNodeOne) {
  StartGang();
  now_ += 11;
  ASSERT_TRUE(Heartbeat(sb_, {{run_, 1}}).ok());
  coord_->Tick();
  EXPECT_EQ(Get(run_).state(), v1::RUN_STATE_QUEUED);
  ASSERT_EQ(CancelsOf(b_).size(), 1u);
}

TEST_F(GangTest, CommandsGoToEveryNodeAndTelemetryOnlyFromNodeZero) {
  StartGang();
  // Telemetry from node 1 is refused with a reason.
  v1::WorkerMessage m;
  v1::TelemetryBatch* b = m.mutable_telemetry();
  b->set_run_id(run_);
  b->set_attempt(1);
  b->set_sequence(1);
  v1::ScalarRow* s = b->add_scalars();
  s->set_step(10);
  s->set_name("loss");
  s->set_value(4.5);
  EXPECT_EQ(coord_->HandleWorkerMessage(sb_, m).code(), absl::StatusCode::kInvalidArgument);
  ASSERT_EQ(b_->Acks().size(), 1u);
  EXPECT_NE(b_->Acks()[0].error().find("is node 1 of the run; only node 0 (w1) sends"),
            std::string::npos)
      << b_->Acks()[0].error();
  EXPECT_TRUE(coord_->HandleWorkerMessage(sa_, m).ok());
  EXPECT_EQ(Get(run_).step(), 10);

  v1::ActionRequest cancel;
  cancel.set_target(run_);
  ASSERT_TRUE(coord_->Cancel(cancel).ok());
  EXPECT_EQ(CancelsOf(a_).size(), 1u);
  EXPECT_EQ(CancelsOf(b_).size(), 1u);
}

TEST_F(GangTest, NodeOneReconnectingWithoutTheAttemptLosesIt) {
  StartGang();
  auto again = std::make_shared<RecordingSink>();
  ConnectDp("b", 1, again);  // a restarted worker: its hello lists nothing
  EXPECT_EQ(Get(run_).state(), v1::RUN_STATE_QUEUED);
  EXPECT_EQ(CancelsOf(a_).size(), 1u);
}

TEST_F(GangTest, AGangSurvivesACoordinatorRestart) {
  StartGang();
  Reopen();
  const v1::Run r = Get(run_);
  EXPECT_EQ(r.state(), v1::RUN_STATE_RUNNING);
  EXPECT_EQ(r.nodes(), 2);
  EXPECT_EQ(std::vector<std::string>(r.worker_ids().begin(), r.worker_ids().end()),
            std::vector<std::string>({"w1", "w2"}));
  // Both come back listing it: nothing is lost, and the port stays taken on a.
  auto a2 = std::make_shared<RecordingSink>(), b2 = std::make_shared<RecordingSink>();
  v1::RunRef ref;
  ref.set_run_id(run_);
  ref.set_attempt(1);
  v1::RegisterRequest reg;
  for (auto [name, sink] : {std::pair{"a", a2}, std::pair{"b", b2}}) {
    reg.Clear();
    reg.set_name(name);
    reg.set_rendezvous_host(std::string(name) + ".lan");
    reg.set_rendezvous_port_base(29500);
    reg.set_rendezvous_port_count(1);
    v1::Device* d = reg.add_devices();
    d->set_id("cpu:0");
    d->set_kind("cpu");
    auto w = coord_->Register(reg);
    ASSERT_TRUE(w.ok()) << w.status();
    v1::Hello hello;
    hello.set_worker_id(w->worker_id());
    *hello.add_runs() = ref;
    ASSERT_TRUE(coord_->OpenSession(hello, sink).ok());
  }
  EXPECT_EQ(Get(run_).state(), v1::RUN_STATE_RUNNING);
  EXPECT_TRUE(CancelsOf(a2).empty());
  EXPECT_TRUE(CancelsOf(b2).empty());
}

TEST_F(CoordinatorTest, RegisterRefusesAHalfGivenRendezvous) {
  v1::RegisterRequest reg;
  reg.set_name("x");
  v1::Device* d = reg.add_devices();
  d->set_id("cpu:0");
  d->set_kind("cpu");
  reg.set_rendezvous_host("x.lan");  // no ports
  auto r = coord_->Register(reg);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("a host and a port range"), std::string::npos);
  reg.set_rendezvous_port_base(65535);
  reg.set_rendezvous_port_count(2);
  EXPECT_FALSE(coord_->Register(reg).ok());
  reg.set_rendezvous_port_count(1);
  EXPECT_TRUE(coord_->Register(reg).ok());
}

}  // namespace
}  // namespace sgt::coord

namespace sgt::coord {
namespace {

// A sweep of `n` runs (train.seed 1..n).
std::string SeedSweep(int n) {
  std::string seeds;
  for (int i = 1; i <= n; ++i) seeds += (i > 1 ? ", " : "") + std::to_string(i);
  std::string y = kSweep;
  y.replace(y.find("variant: [vanilla, sgt]"), 23, "train.seed: [" + seeds + "]");
  return y;
}

// A large sweep lists in pages, in run order, each run once; a filter applies across pages; a
// token that ListRuns did not give is refused.
TEST_F(CoordinatorTest, ListRunsComesInPages) {
  Submit(SeedSweep(25));
  Submit();  // two more runs, of another sweep
  v1::ListRunsRequest req;
  req.set_sweep_id("s1");
  req.set_page_size(10);
  std::vector<std::string> ids;
  std::vector<int> sizes;
  do {
    auto page = coord_->ListRuns(req);
    ASSERT_TRUE(page.ok()) << page.status();
    sizes.push_back(page->runs_size());
    for (const v1::Run& r : page->runs()) ids.push_back(r.id());
    req.set_page_token(page->next_page_token());
  } while (!req.page_token().empty() && sizes.size() < 10);
  EXPECT_THAT(sizes, ::testing::ElementsAre(10, 10, 5));
  ASSERT_EQ(ids.size(), 25u);
  for (int i = 0; i < 25; ++i) EXPECT_EQ(ids[i], "r" + std::to_string(i + 1));

  // The default page holds every run of a small list, and says it is the last.
  v1::ListRunsRequest every;
  auto all = coord_->ListRuns(every);
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(all->runs_size(), 27);
  EXPECT_EQ(all->next_page_token(), "");

  for (const char* token : {"r3", "after:x", "after:"}) {
    v1::ListRunsRequest bad;
    bad.set_page_token(token);
    auto r = coord_->ListRuns(bad);
    ASSERT_FALSE(r.ok()) << token;
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(r.status().message()), ::testing::HasSubstr("not a token ListRuns gave"));
  }
  v1::ListRunsRequest big;
  big.set_page_size(Coordinator::kMaxPageRuns + 1);
  EXPECT_EQ(coord_->ListRuns(big).status().code(), absl::StatusCode::kInvalidArgument);
}

// A watch update of many runs is cut into pages: `more` on all but the last, `done` on the last.
TEST(WatchPagesTest, AnUpdateOfManyRunsComesInPages) {
  std::vector<v1::Run> runs(Coordinator::kDefaultPageRuns * 2 + 3);
  for (size_t i = 0; i < runs.size(); ++i) runs[i].set_id("r" + std::to_string(i + 1));
  std::vector<v1::WatchResponse> pages = Coordinator::WatchPages(runs, /*done=*/true);
  ASSERT_EQ(pages.size(), 3u);
  EXPECT_EQ(pages[0].runs_size(), Coordinator::kDefaultPageRuns);
  EXPECT_TRUE(pages[0].more());
  EXPECT_FALSE(pages[0].done());
  EXPECT_TRUE(pages[1].more());
  EXPECT_EQ(pages[2].runs_size(), 3);
  EXPECT_FALSE(pages[2].more());
  EXPECT_TRUE(pages[2].done());
  EXPECT_EQ(pages[2].runs(2).id(), runs.back().id());
  // Big runs: pages end at about kPageBytes, each holding at least one run.
  std::vector<v1::Run> big(5);
  for (v1::Run& r : big) r.set_config_json(std::string(Coordinator::kPageBytes, 'x'));
  EXPECT_EQ(Coordinator::WatchPages(big, false).size(), 5u);
  // Nothing changed but the watch is done: one empty page that says so.
  pages = Coordinator::WatchPages({}, true);
  ASSERT_EQ(pages.size(), 1u);
  EXPECT_TRUE(pages[0].done());
}

}  // namespace
}  // namespace sgt::coord
