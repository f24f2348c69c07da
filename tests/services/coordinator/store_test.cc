// Tests for the coordinator's SQLite store, on real files in a scratch directory: round trips of
// every record, reopening, idempotent telemetry, superseded attempts, pagination, all-or-nothing
// writes, and every kind of file Open must refuse without touching it.
#include "services/coordinator/store.h"

#include <sqlite3.h>
#include <stdlib.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "gtest/gtest.h"
#include "services/worker/events.h"

namespace sgt::coord {
namespace {

::testing::AssertionResult Contains(absl::string_view text, absl::string_view part) {
  if (text.find(part) != absl::string_view::npos) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "\"" << text << "\" does not contain \"" << part << "\"";
}

class StoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = ::testing::TempDir() + "/store_test.XXXXXX";
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
    path_ = dir_ + "/sgt.db";
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  static std::unique_ptr<Store> OpenOrDie(const std::string& path) {
    absl::StatusOr<std::unique_ptr<Store>> s = Store::Open(path);
    EXPECT_TRUE(s.ok()) << s.status();
    return s.ok() ? *std::move(s) : nullptr;
  }

  static std::string ReadAll(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
  }
  static void WriteAll(const std::string& path, const std::string& data) {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out << data;
  }

  // One integer from the file through a separate SQLite connection, as an operator would.
  static int64_t SqlInt(const std::string& path, const std::string& sql) {
    sqlite3* db = nullptr;
    EXPECT_EQ(sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE, nullptr), SQLITE_OK);
    sqlite3_stmt* s = nullptr;
    int64_t v = -1;
    if (sqlite3_prepare_v2(db, sql.c_str(), -1, &s, nullptr) == SQLITE_OK &&
        sqlite3_step(s) == SQLITE_ROW) {
      v = sqlite3_column_int64(s, 0);
    } else {
      ADD_FAILURE() << sql << ": " << sqlite3_errmsg(db);
    }
    sqlite3_finalize(s);
    sqlite3_close(db);
    return v;
  }
  static void SqlExec(const std::string& path, const std::string& sql) {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
    char* err = nullptr;
    EXPECT_EQ(sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &err), SQLITE_OK) << err;
    sqlite3_free(err);
    sqlite3_close(db);
  }

  static SweepRow MakeSweep(const std::string& name) {
    SweepRow s;
    s.name = name;
    s.priority = 70;
    s.max_concurrent = 2;
    s.max_restarts = 5;
    s.source_name = "sweeps/" + name + ".yaml";
    s.source_yaml = "name: " + name + "\ngrid:\n  growth.k_max: [1, 2]\n";
    s.created_at = 1700000000.25;
    return s;
  }

  static RunRow MakeRun(const std::string& name) {
    RunRow r;
    r.name = name;
    r.variant = "sgt";
    r.state = v1::RUN_STATE_QUEUED;
    r.reason = "waiting for a worker";
    r.priority = 70;
    r.devices = 2;
    r.steps = 1000;
    r.config_json = "{\"name\":\"" + name + "\"}";
    r.config_hash = "ab12cd";
    // Not in key order: the stored order must be the grid order.
    r.settings = {{"variant", "sgt"}, {"growth.k_max", "2"}, {"data.seq_len", "[1, 2]"}};
    r.metrics.set_loss(3.25);
    r.metrics.set_val_ppl(27.5);
    r.metrics.set_tokens(123456789012LL);
    r.summary_json = "{}";
    r.created_at = 1700000001.5;
    r.updated_at = 1700000001.5;
    return r;
  }

  // One sweep with `n` queued runs; returns the runs with their ids.
  static std::vector<RunRow> Submit(Store& store, int n) {
    SweepRow sweep = MakeSweep("s");
    std::vector<RunRow> runs;
    for (int i = 0; i < n; ++i) runs.push_back(MakeRun("run" + std::to_string(i)));
    absl::Status st = store.InsertSweep(sweep, runs, 1700000002);
    EXPECT_TRUE(st.ok()) << st;
    return runs;
  }

  // Moves a run to ASSIGNED for a new attempt that resumes from `resume_step`.
  static void Assign(Store& store, RunRow& run, int32_t attempt, int64_t resume_step) {
    RunEventRow e;
    e.run_id = run.id;
    e.time = 1700000100 + attempt;
    e.attempt = attempt;
    e.from_state = run.state;
    e.to_state = v1::RUN_STATE_ASSIGNED;
    e.reason = "assigned to w1";
    run.state = v1::RUN_STATE_ASSIGNED;
    run.attempt = attempt;
    run.resume_step = resume_step;
    run.worker_id = "w1";
    absl::Status st = store.TransitionRun(run, e);
    ASSERT_TRUE(st.ok()) << st;
  }

  // Assign, then the worker's first RUNNING: the attempt is recorded (run_attempts) and hides
  // older attempts' rows past `resume_step`.
  static void StartAttempt(Store& store, RunRow& run, int32_t attempt, int64_t resume_step) {
    Assign(store, run, attempt, resume_step);
    RunEventRow e;
    e.run_id = run.id;
    e.time = 1700000150 + attempt;
    e.attempt = attempt;
    e.from_state = v1::RUN_STATE_ASSIGNED;
    e.to_state = v1::RUN_STATE_RUNNING;
    e.reason = "running on w1";
    run.state = v1::RUN_STATE_RUNNING;
    absl::Status st = store.TransitionRun(run, e);
    ASSERT_TRUE(st.ok()) << st;
  }

  // A batch with one entropy row per (step, head) for steps [first, last], and one scalar per
  // step.
  static v1::TelemetryBatch Batch(int32_t attempt, int64_t sequence, int64_t first, int64_t last,
                                  int heads = 2) {
    v1::TelemetryBatch b;
    b.set_attempt(attempt);
    b.set_sequence(sequence);
    for (int64_t s = first; s <= last; ++s) {
      for (int h = 0; h < heads; ++h) {
        v1::EntropyRow* e = b.add_entropy();
        e->set_step(s);
        e->set_signal(v1::ENTROPY_SIGNAL_TRAIN);
        e->set_layer(1);
        e->set_head(h);
        e->set_loop(0);
        e->set_value(static_cast<float>(s) / 1024.0f);
      }
      v1::ScalarRow* sc = b.add_scalars();
      sc->set_step(s);
      sc->set_name("loss");
      sc->set_value(10.0 - static_cast<double>(s) * 0.01);
    }
    return b;
  }

  static std::vector<std::pair<int64_t, int32_t>> StepsAndAttempts(const EntropyPage& p) {
    std::vector<std::pair<int64_t, int32_t>> out;
    for (size_t i = 0; i < p.rows.size(); ++i) out.emplace_back(p.rows[i].step(), p.attempts[i]);
    return out;
  }

  std::string dir_;
  std::string path_;
};

void ExpectSameRun(const RunRow& a, const RunRow& b) {
  EXPECT_EQ(a.id, b.id);
  EXPECT_EQ(a.sweep_id, b.sweep_id);
  EXPECT_EQ(a.name, b.name);
  EXPECT_EQ(a.variant, b.variant);
  EXPECT_EQ(a.state, b.state);
  EXPECT_EQ(a.reason, b.reason);
  EXPECT_EQ(a.priority, b.priority);
  EXPECT_EQ(a.devices, b.devices);
  EXPECT_EQ(a.steps, b.steps);
  EXPECT_EQ(a.step, b.step);
  EXPECT_EQ(a.attempt, b.attempt);
  EXPECT_EQ(a.restarts, b.restarts);
  EXPECT_EQ(a.worker_id, b.worker_id);
  EXPECT_EQ(a.config_json, b.config_json);
  EXPECT_EQ(a.config_hash, b.config_hash);
  EXPECT_EQ(a.settings, b.settings);
  EXPECT_EQ(a.parent_run_id, b.parent_run_id);
  EXPECT_EQ(a.parent_step, b.parent_step);
  EXPECT_EQ(a.resume_checkpoint, b.resume_checkpoint);
  EXPECT_EQ(a.resume_step, b.resume_step);
  EXPECT_EQ(a.metrics.SerializeAsString(), b.metrics.SerializeAsString())
      << a.metrics.DebugString() << " vs " << b.metrics.DebugString();
  EXPECT_EQ(a.summary_json, b.summary_json);
  EXPECT_EQ(a.created_at, b.created_at);
  EXPECT_EQ(a.updated_at, b.updated_at);
  EXPECT_EQ(a.nodes, b.nodes);
  EXPECT_EQ(a.worker_ids, b.worker_ids);
  EXPECT_EQ(a.master_port, b.master_port);
}

TEST(RunStateNames, RoundTripEveryState) {
  for (int i = v1::RunState_MIN; i <= v1::RunState_MAX; ++i) {
    const auto s = static_cast<v1::RunState>(i);
    EXPECT_EQ(RunStateFromName(RunStateName(s)), s) << RunStateName(s);
  }
  EXPECT_STREQ(RunStateName(v1::RUN_STATE_CANCELLED), "cancelled");
  EXPECT_EQ(RunStateFromName("bogus"), v1::RUN_STATE_UNSPECIFIED);
}

TEST_F(StoreTest, CreatesAFreshFileAtTheCurrentSchema) {
  auto store = OpenOrDie(path_);
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(store->SchemaVersion(), kSchemaVersion);
  EXPECT_EQ(store->path(), path_);
  EXPECT_TRUE(std::filesystem::exists(path_ + "-wal"));
  store.reset();
  // Closing checkpoints the WAL into the file and removes it.
  EXPECT_FALSE(std::filesystem::exists(path_ + "-wal"));
  EXPECT_EQ(SqlInt(path_, "PRAGMA user_version"), kSchemaVersion);
  EXPECT_EQ(SqlInt(path_,
                   "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name IN "
                   "('sweeps', 'runs', 'run_events', 'run_attempts', 'workers', "
                   "'checkpoints', 'growth_decisions', 'entropy', 'scalars', "
                   "'telemetry_batches', 'slurm_jobs')"),
            11);
  // WAL mode is persistent in the file: header bytes 18 and 19 (read and write version) are 2.
  const std::string header = ReadAll(path_).substr(0, 20);
  EXPECT_EQ(header.substr(0, 15), "SQLite format 3");
  EXPECT_EQ(header[18], 2);
  EXPECT_EQ(header[19], 2);
}

TEST_F(StoreTest, MigratesAnEmptyFile) {
  WriteAll(path_, "");
  auto store = OpenOrDie(path_);
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(store->SchemaVersion(), kSchemaVersion);
  ASSERT_TRUE(Submit(*store, 1).size() == 1);
  auto runs = store->LoadRuns();
  ASSERT_TRUE(runs.ok()) << runs.status();
  EXPECT_EQ(runs->size(), 1u);
  store.reset();
  EXPECT_EQ(SqlInt(path_, "PRAGMA user_version"), kSchemaVersion);
}

// A file written by a version-1 coordinator (before multi-node runs): made here by taking the
// version-2 columns away again, as a version-1 file has the same tables without them. It opens,
// is migrated to the current version in place, and keeps its rows: runs on one node, workers
// without a rendezvous address.
TEST_F(StoreTest, MigratesAVersion1File) {
  {
    auto store = OpenOrDie(path_);
    ASSERT_NE(store, nullptr);
    Submit(*store, 2);
    WorkerRow w;
    w.id = "w1";
    w.name = "old";
    ASSERT_TRUE(store->UpsertWorker(w).ok());
  }
  SqlExec(path_,
          "ALTER TABLE runs DROP COLUMN nodes; ALTER TABLE runs DROP COLUMN worker_ids; "
          "ALTER TABLE runs DROP COLUMN master_port; "
          "ALTER TABLE workers DROP COLUMN rendezvous_host; "
          "ALTER TABLE workers DROP COLUMN rendezvous_port_base; "
          "ALTER TABLE workers DROP COLUMN rendezvous_port_count; DROP TABLE slurm_jobs; "
          "PRAGMA user_version = 1");
  ASSERT_EQ(SqlInt(path_, "SELECT count(*) FROM pragma_table_info('runs') WHERE name = 'nodes'"),
            0);

  auto store = OpenOrDie(path_);
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(store->SchemaVersion(), kSchemaVersion);
  auto runs = store->LoadRuns();
  ASSERT_TRUE(runs.ok()) << runs.status();
  ASSERT_EQ(runs->size(), 2u);
  for (const RunRow& r : *runs) {
    EXPECT_EQ(r.nodes, 1);
    EXPECT_TRUE(r.worker_ids.empty());
    EXPECT_EQ(r.master_port, 0);
    EXPECT_EQ(r.devices, 2);
  }
  auto workers = store->LoadWorkers();
  ASSERT_TRUE(workers.ok()) << workers.status();
  ASSERT_EQ(workers->size(), 1u);
  EXPECT_EQ((*workers)[0].name, "old");
  EXPECT_EQ((*workers)[0].rendezvous_host, "");
  EXPECT_EQ((*workers)[0].rendezvous_port_count, 0);
  // The new columns are written from now on.
  RunRow gang = (*runs)[0];
  gang.nodes = 2;
  gang.worker_ids = {"w1", "w2"};
  gang.worker_id = "w1";
  gang.master_port = 29500;
  ASSERT_TRUE(store->UpdateRun(gang).ok());
  auto again = store->LoadRuns();
  ASSERT_TRUE(again.ok()) << again.status();
  ExpectSameRun((*again)[0], gang);
  store.reset();
  EXPECT_EQ(SqlInt(path_, "PRAGMA user_version"), kSchemaVersion);
}

// A file written by a version-2 coordinator (before the Slurm autoscaler): made here by dropping
// the version-3 table. It is migrated in place, keeps its rows, and stores Slurm jobs from then on.
TEST_F(StoreTest, MigratesAVersion2File) {
  {
    auto store = OpenOrDie(path_);
    ASSERT_NE(store, nullptr);
    Submit(*store, 1);
  }
  SqlExec(path_, "DROP TABLE slurm_jobs; PRAGMA user_version = 2");
  ASSERT_EQ(SqlInt(path_, "SELECT count(*) FROM sqlite_master WHERE name = 'slurm_jobs'"), 0);

  auto store = OpenOrDie(path_);
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(store->SchemaVersion(), kSchemaVersion);
  auto runs = store->LoadRuns();
  ASSERT_TRUE(runs.ok()) << runs.status();
  EXPECT_EQ(runs->size(), 1u);
  auto jobs = store->LoadSlurmJobs();
  ASSERT_TRUE(jobs.ok()) << jobs.status();
  EXPECT_TRUE(jobs->empty());
  SlurmJobRow j;
  j.id = "41";
  j.state = "PENDING";
  j.submitted_at = 1700000000.25;
  ASSERT_TRUE(store->UpsertSlurmJob(j).ok());
  store.reset();
  EXPECT_EQ(SqlInt(path_, "PRAGMA user_version"), kSchemaVersion);
  EXPECT_EQ(SqlInt(path_, "SELECT count(*) FROM slurm_jobs"), 1);
}

// The autoscaler's jobs: inserted, updated by id, deleted, loaded oldest first, across a reopen.
TEST_F(StoreTest, SlurmJobsRoundTrip) {
  {
    auto store = OpenOrDie(path_);
    ASSERT_NE(store, nullptr);
    SlurmJobRow a{"12", "SUBMITTED", 1700000010.5, 0};
    SlurmJobRow b{"9", "PENDING", 1700000000.0, 0};
    SlurmJobRow c{"13", "PENDING", 1700000020.0, 0};
    for (const SlurmJobRow& j : {a, b, c}) ASSERT_TRUE(store->UpsertSlurmJob(j).ok());
    a.state = "RUNNING";
    a.running_since = 1700000011.75;
    ASSERT_TRUE(store->UpsertSlurmJob(a).ok());
    ASSERT_TRUE(store->DeleteSlurmJob("13").ok());
    ASSERT_TRUE(store->DeleteSlurmJob("404").ok());  // gone already: nothing to do
  }
  auto store = OpenOrDie(path_);
  ASSERT_NE(store, nullptr);
  auto jobs = store->LoadSlurmJobs();
  ASSERT_TRUE(jobs.ok()) << jobs.status();
  ASSERT_EQ(jobs->size(), 2u);
  EXPECT_EQ((*jobs)[0].id, "9");
  EXPECT_EQ((*jobs)[0].state, "PENDING");
  EXPECT_EQ((*jobs)[0].running_since, 0);
  EXPECT_EQ((*jobs)[1].id, "12");
  EXPECT_EQ((*jobs)[1].state, "RUNNING");
  EXPECT_EQ((*jobs)[1].submitted_at, 1700000010.5);
  EXPECT_EQ((*jobs)[1].running_since, 1700000011.75);
}

TEST_F(StoreTest, SweepsAndRunsRoundTrip) {
  auto store = OpenOrDie(path_);
  ASSERT_NE(store, nullptr);
  SweepRow sweep = MakeSweep("grid");
  std::vector<RunRow> runs = {MakeRun("a"), MakeRun("b")};
  runs[1].state = v1::RUN_STATE_PAUSED;  // the event records whatever state it was stored in
  runs[1].nodes = 2;  // a gang on two workers, with its rendezvous port on node 0's
  runs[1].worker_id = "w3";
  runs[1].worker_ids = {"w3", "w1"};
  runs[1].master_port = 29400;
  ASSERT_TRUE(store->InsertSweep(sweep, runs, 1700000009.5).ok());
  EXPECT_GT(sweep.id, 0);
  EXPECT_GT(runs[0].id, 0);
  EXPECT_NE(runs[0].id, runs[1].id);
  EXPECT_EQ(runs[0].sweep_id, sweep.id);
  EXPECT_EQ(runs[1].sweep_id, sweep.id);

  auto sweeps = store->LoadSweeps();
  ASSERT_TRUE(sweeps.ok()) << sweeps.status();
  ASSERT_EQ(sweeps->size(), 1u);
  const SweepRow& s = (*sweeps)[0];
  EXPECT_EQ(s.id, sweep.id);
  EXPECT_EQ(s.name, "grid");
  EXPECT_EQ(s.priority, 70);
  EXPECT_EQ(s.max_concurrent, 2);
  EXPECT_EQ(s.max_restarts, 5);
  EXPECT_EQ(s.source_name, sweep.source_name);
  EXPECT_EQ(s.source_yaml, sweep.source_yaml);
  EXPECT_EQ(s.created_at, sweep.created_at);

  auto loaded = store->LoadRuns();
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  ASSERT_EQ(loaded->size(), 2u);
  ExpectSameRun((*loaded)[0], runs[0]);
  ExpectSameRun((*loaded)[1], runs[1]);
  EXPECT_EQ((*loaded)[0].settings[0].first, "variant");  // grid order, not key order
  EXPECT_DOUBLE_EQ((*loaded)[0].metrics.loss(), 3.25);
  EXPECT_EQ((*loaded)[0].metrics.tokens(), 123456789012LL);

  auto events = store->RunEvents(runs[1].id);
  ASSERT_TRUE(events.ok()) << events.status();
  ASSERT_EQ(events->size(), 1u);
  EXPECT_EQ((*events)[0].run_id, runs[1].id);
  EXPECT_EQ((*events)[0].from_state, v1::RUN_STATE_UNSPECIFIED);
  EXPECT_EQ((*events)[0].to_state, v1::RUN_STATE_PAUSED);
  EXPECT_EQ((*events)[0].reason, "submitted");
  EXPECT_EQ((*events)[0].time, 1700000009.5);

  // UpdateSweep and UpdateRun write every mutable field.
  sweep.priority = 900;
  sweep.max_concurrent = 0;
  ASSERT_TRUE(store->UpdateSweep(sweep).ok());
  RunRow changed = runs[0];
  changed.reason = "changed";
  changed.step = 77;
  changed.restarts = 2;
  changed.settings.emplace_back("extra", "x");
  changed.metrics.set_overhead(0.125);
  changed.summary_json = "{\"final\":1}";
  changed.updated_at = 1700000500;
  ASSERT_TRUE(store->UpdateRun(changed).ok());
  sweeps = store->LoadSweeps();
  ASSERT_TRUE(sweeps.ok());
  EXPECT_EQ((*sweeps)[0].priority, 900);
  EXPECT_EQ((*sweeps)[0].max_concurrent, 0);
  loaded = store->LoadRuns();
  ASSERT_TRUE(loaded.ok());
  ExpectSameRun((*loaded)[0], changed);
  ExpectSameRun((*loaded)[1], runs[1]);
}

TEST_F(StoreTest, UpdatesOfMissingRowsAreNotFound) {
  auto store = OpenOrDie(path_);
  ASSERT_NE(store, nullptr);
  RunRow ghost = MakeRun("ghost");
  ghost.id = 42;
  absl::Status st = store->UpdateRun(ghost);
  EXPECT_EQ(st.code(), absl::StatusCode::kNotFound) << st;
  EXPECT_TRUE(Contains(st.message(), path_));
  SweepRow sweep = MakeSweep("ghost");
  sweep.id = 7;
  EXPECT_EQ(store->UpdateSweep(sweep).code(), absl::StatusCode::kNotFound);
}

TEST_F(StoreTest, ForkedRunRoundTrips) {
  auto store = OpenOrDie(path_);
  ASSERT_NE(store, nullptr);
  std::vector<RunRow> runs = Submit(*store, 1);
  RunRow fork = MakeRun("fork");
  fork.sweep_id = runs[0].sweep_id;
  fork.parent_run_id = runs[0].id;
  fork.parent_step = 500;
  fork.resume_checkpoint = "/ckpt/r1/step500.pt";
  fork.resume_step = 500;
  RunEventRow event;
  event.time = 1700000300;
  event.to_state = v1::RUN_STATE_QUEUED;
  event.reason = "forked from r1 at step 500";
  ASSERT_TRUE(store->InsertRun(fork, event).ok());
  EXPECT_GT(fork.id, runs[0].id);

  // A run outside any sweep (sweep_id 0) is allowed too.
  RunRow loose = MakeRun("loose");
  ASSERT_TRUE(store->InsertRun(loose, event).ok());

  auto loaded = store->LoadRuns();
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  ASSERT_EQ(loaded->size(), 3u);
  ExpectSameRun((*loaded)[1], fork);
  EXPECT_EQ((*loaded)[2].sweep_id, 0);
  EXPECT_EQ((*loaded)[2].parent_run_id, 0);
  auto events = store->RunEvents(fork.id);
  ASSERT_TRUE(events.ok());
  ASSERT_EQ(events->size(), 1u);
  EXPECT_EQ((*events)[0].reason, "forked from r1 at step 500");
  EXPECT_EQ((*events)[0].run_id, fork.id);
}

TEST_F(StoreTest, TransitionsRecordEventsAndAttempts) {
  auto store = OpenOrDie(path_);
  ASSERT_NE(store, nullptr);
  std::vector<RunRow> runs = Submit(*store, 1);
  RunRow run = runs[0];
  Assign(*store, run, 1, 0);
  // Assigned is not yet an attempt: one the worker never ran must not hide older rows.
  EXPECT_EQ(SqlInt(path_, "SELECT count(*) FROM run_attempts"), 0);
  RunEventRow running;
  running.run_id = run.id;
  running.time = 1700000200;
  running.attempt = 1;
  running.from_state = v1::RUN_STATE_ASSIGNED;
  running.to_state = v1::RUN_STATE_RUNNING;
  running.reason = "started";
  run.state = v1::RUN_STATE_RUNNING;
  ASSERT_TRUE(store->TransitionRun(run, running).ok());

  auto events = store->RunEvents(run.id);
  ASSERT_TRUE(events.ok());
  ASSERT_EQ(events->size(), 3u);
  EXPECT_EQ((*events)[1].to_state, v1::RUN_STATE_ASSIGNED);
  EXPECT_EQ((*events)[1].attempt, 1);
  EXPECT_EQ((*events)[2].from_state, v1::RUN_STATE_ASSIGNED);
  EXPECT_EQ((*events)[2].to_state, v1::RUN_STATE_RUNNING);
  auto loaded = store->LoadRuns();
  ASSERT_TRUE(loaded.ok());
  EXPECT_EQ((*loaded)[0].state, v1::RUN_STATE_RUNNING);
  EXPECT_EQ((*loaded)[0].worker_id, "w1");

  EXPECT_EQ(SqlInt(path_, "SELECT count(*) FROM run_attempts"), 1);

  // Running the same attempt again replaces its run_attempts row instead of failing.
  StartAttempt(*store, run, 1, 40);
  store.reset();
  EXPECT_EQ(SqlInt(path_, "SELECT count(*) FROM run_attempts"), 1);
  EXPECT_EQ(SqlInt(path_, "SELECT start_step FROM run_attempts WHERE attempt = 1"), 40);
}

TEST_F(StoreTest, WorkersUpsertAndRoundTrip) {
  auto store = OpenOrDie(path_);
  ASSERT_NE(store, nullptr);
  WorkerRow w;
  w.id = "w1";
  w.name = "gpu-box";
  w.hostname = "gpu-box.local";
  v1::Device d;
  d.set_id("cuda:0");
  d.set_kind("cuda");
  d.set_name("NVIDIA H100");
  d.set_memory_bytes(85899345920LL);
  w.devices.push_back(d);
  d.set_id("cuda:1");
  w.devices.push_back(d);
  w.registered_at = 1700000000;
  w.last_seen = 1700000010;
  w.rendezvous_host = "10.0.0.7";
  w.rendezvous_port_base = 29400;
  w.rendezvous_port_count = 16;
  ASSERT_TRUE(store->UpsertWorker(w).ok());
  WorkerRow cpu;
  cpu.id = "w2";
  cpu.name = "laptop";
  ASSERT_TRUE(store->UpsertWorker(cpu).ok());
  w.last_seen = 1700000099;
  w.devices.pop_back();
  ASSERT_TRUE(store->UpsertWorker(w).ok());  // update in place, keeps its position

  auto workers = store->LoadWorkers();
  ASSERT_TRUE(workers.ok()) << workers.status();
  ASSERT_EQ(workers->size(), 2u);
  const WorkerRow& got = (*workers)[0];
  EXPECT_EQ(got.id, "w1");
  EXPECT_EQ(got.name, "gpu-box");
  EXPECT_EQ(got.hostname, "gpu-box.local");
  EXPECT_EQ(got.last_seen, 1700000099);
  EXPECT_EQ(got.registered_at, 1700000000);
  ASSERT_EQ(got.devices.size(), 1u);
  EXPECT_EQ(got.devices[0].SerializeAsString(), w.devices[0].SerializeAsString());
  EXPECT_EQ(got.rendezvous_host, "10.0.0.7");
  EXPECT_EQ(got.rendezvous_port_base, 29400);
  EXPECT_EQ(got.rendezvous_port_count, 16);
  EXPECT_EQ((*workers)[1].id, "w2");
  EXPECT_EQ((*workers)[1].rendezvous_host, "");
  EXPECT_EQ((*workers)[1].rendezvous_port_count, 0);
  EXPECT_TRUE((*workers)[1].devices.empty());

  WorkerRow nameless;
  EXPECT_EQ(store->UpsertWorker(nameless).code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(StoreTest, TelemetryRoundTrip) {
  auto store = OpenOrDie(path_);
  ASSERT_NE(store, nullptr);
  RunRow run = Submit(*store, 1)[0];
  Assign(*store, run, 1, 0);

  v1::TelemetryBatch b = Batch(1, 1, 1, 2);
  b.mutable_entropy(0)->set_signal(v1::ENTROPY_SIGNAL_PROBE);
  b.mutable_entropy(0)->set_loop(2);
  b.mutable_entropy(0)->set_value(0.8125f);
  v1::ScalarRow* nan = b.add_scalars();
  nan->set_step(2);
  nan->set_name("grad_norm");
  nan->set_value(std::nan(""));
  v1::GrowthDecision* d = b.add_decisions();
  d->set_step(2);
  d->set_action("deepen");
  d->set_layer(3);
  d->set_k(2);
  d->add_heads(0);
  d->add_heads(5);
  d->set_whole_block(true);
  d->add_candidates(3);
  d->add_candidates(1);
  d->add_layer_entropy(0.5);
  d->add_layer_entropy(0.1 + 0.2);  // not exactly representable in decimal: full precision
  d->add_head_entropy()->add_values(0.25);
  d->add_head_entropy();  // an empty layer stays an empty layer
  d->set_reason("layer 3 entropy variance below delta_t");
  d->set_signal(v1::ENTROPY_SIGNAL_PROBE);
  v1::CheckpointRecord* c = b.add_checkpoints();
  c->set_attempt(1);
  c->set_step(2);
  c->set_path("/ckpt/r1/step2.pt");
  c->set_bytes(1 << 20);
  c->set_sha256("deadbeef");
  c->set_reason("boundary");
  c->set_time(1700000222.5);

  // Only the progress fields are written: the state below is not (a concurrent state change
  // must not be overwritten by ingestion).
  run.step = 2;
  run.metrics.set_loss(9.98);
  run.resume_checkpoint = "/ckpt/r1/step2.pt";
  run.resume_step = 2;
  run.updated_at = 1700000223;
  RunRow sent = run;
  sent.state = v1::RUN_STATE_RUNNING;
  sent.reason = "not written";
  auto fresh = store->AppendTelemetry(run.id, b, 1700000223, &sent);
  ASSERT_TRUE(fresh.ok()) << fresh.status();
  EXPECT_TRUE(*fresh);

  auto counts = store->Counts(run.id);
  ASSERT_TRUE(counts.ok()) << counts.status();
  EXPECT_EQ(counts->entropy_rows, 4);
  EXPECT_EQ(counts->scalar_rows, 3);
  EXPECT_EQ(counts->decisions, 1);

  TelemetryFilter f;
  f.run_id = run.id;
  auto entropy = store->QueryEntropy(f);
  ASSERT_TRUE(entropy.ok()) << entropy.status();
  ASSERT_EQ(entropy->rows.size(), 4u);
  EXPECT_EQ(entropy->next, 0);
  EXPECT_EQ(entropy->rows[0].SerializeAsString(), b.entropy(0).SerializeAsString());
  EXPECT_EQ(entropy->rows[3].SerializeAsString(), b.entropy(3).SerializeAsString());
  EXPECT_EQ(entropy->attempts, std::vector<int32_t>(4, 1));

  auto scalars = store->QueryScalars(f);
  ASSERT_TRUE(scalars.ok()) << scalars.status();
  ASSERT_EQ(scalars->rows.size(), 3u);
  EXPECT_EQ(scalars->rows[0].name(), "loss");
  EXPECT_DOUBLE_EQ(scalars->rows[1].value(), b.scalars(1).value());
  EXPECT_EQ(scalars->rows[2].name(), "grad_norm");
  EXPECT_TRUE(std::isnan(scalars->rows[2].value()));  // SQLite keeps NaN as NULL

  auto decisions = store->QueryDecisions(f);
  ASSERT_TRUE(decisions.ok()) << decisions.status();
  ASSERT_EQ(decisions->rows.size(), 1u);
  EXPECT_EQ(decisions->rows[0].SerializeAsString(), d->SerializeAsString())
      << decisions->rows[0].DebugString();
  EXPECT_EQ(decisions->attempts, std::vector<int32_t>{1});

  auto checkpoints = store->Checkpoints(run.id);
  ASSERT_TRUE(checkpoints.ok()) << checkpoints.status();
  ASSERT_EQ(checkpoints->size(), 1u);
  v1::CheckpointRecord want = *c;
  want.set_run_id("r" + std::to_string(run.id));
  EXPECT_EQ((*checkpoints)[0].SerializeAsString(), want.SerializeAsString())
      << (*checkpoints)[0].DebugString();

  // The run row came along in the same transaction.
  auto runs = store->LoadRuns();
  ASSERT_TRUE(runs.ok());
  ExpectSameRun((*runs)[0], run);
}

TEST_F(StoreTest, DuplicateBatchIsStoredOnce) {
  auto store = OpenOrDie(path_);
  ASSERT_NE(store, nullptr);
  RunRow run = Submit(*store, 1)[0];
  const v1::TelemetryBatch b = Batch(1, 7, 1, 3);
  auto first = store->AppendTelemetry(run.id, b, 1, nullptr);
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_TRUE(*first);

  RunRow later = run;
  later.step = 999;
  auto again = store->AppendTelemetry(run.id, b, 2, &later);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_FALSE(*again);
  auto counts = store->Counts(run.id);
  ASSERT_TRUE(counts.ok());
  EXPECT_EQ(counts->entropy_rows, 6);
  EXPECT_EQ(counts->scalar_rows, 3);
  auto runs = store->LoadRuns();
  ASSERT_TRUE(runs.ok());
  EXPECT_EQ((*runs)[0].step, run.step);  // the duplicate's run update was not written either

  // The same sequence of another attempt is another batch.
  auto other = store->AppendTelemetry(run.id, Batch(2, 7, 1, 1), 3, nullptr);
  ASSERT_TRUE(other.ok());
  EXPECT_TRUE(*other);
  store.reset();
  EXPECT_EQ(SqlInt(path_, "SELECT count(*) FROM telemetry_batches"), 2);
  EXPECT_EQ(SqlInt(path_, "SELECT rows FROM telemetry_batches WHERE attempt = 1"), 9);
}

// Task scores (issue 19) as the worker sends them: a task_eval line of events.jsonl through the
// worker's real EventTranslator. Resent (a reconnect, a worker restart replaying its spool), the
// batch is stored once: one row per (run, step, task, group) and metric. The run's metrics keep
// the scores (RunMetrics.tasks, as JSON in runs.metrics) across a reopen.
TEST_F(StoreTest, TaskScoresAreStoredOncePerStepTaskAndGroup) {
  auto store = OpenOrDie(path_);
  ASSERT_NE(store, nullptr);
  RunRow run = Submit(*store, 1)[0];
  StartAttempt(*store, run, 1, 0);
  worker::EventTranslator translator;
  v1::TelemetryBatch b;
  b.set_attempt(1);
  b.set_sequence(4);
  // The checkpoint's evaluation at the last step and the final one: the same step's scores.
  for (const char* reason : {"checkpoint", "final"}) {
    const std::string line = absl::StrCat(
        R"({"event":"task_eval","reason":")", reason,
        R"(","scores":[{"acc":0.275,"acc_norm":0.3,"items":40,"task":"arithmetic"},)"
        R"({"acc":0.5,"acc_norm":0.25,"group":"add","items":14,"task":"arithmetic"}],)"
        R"("step":60,"time":1795443346.75})");
    ASSERT_TRUE(translator.Add(line, &b).ok()) << line;
  }
  for (int send = 0; send < 3; ++send) {
    auto stored = store->AppendTelemetry(run.id, b, 10 + send, nullptr);
    ASSERT_TRUE(stored.ok()) << stored.status();
    EXPECT_EQ(*stored, send == 0);
  }
  // What the run book keeps of them (run_book_test.cc tests how): written as JSON, read back.
  run.metrics.set_loss(3.5);
  for (const char* group : {"", "add"}) {
    v1::TaskAccuracy* t = run.metrics.add_tasks();
    t->set_task("arithmetic");
    t->set_group(group);
    t->set_items(*group == 0 ? 40 : 14);
    t->set_acc(*group == 0 ? 0.275 : 0.5);
    t->set_step(60);
  }
  run.metrics.set_acc(0.275);
  ASSERT_TRUE(store->UpdateRun(run).ok());
  store.reset();

  EXPECT_EQ(SqlInt(path_, "SELECT count(*) FROM scalars"), 6);
  EXPECT_EQ(SqlInt(path_, "SELECT count(*) FROM (SELECT step, name FROM scalars "
                          "GROUP BY run_id, step, name HAVING count(*) > 1)"),
            0);
  EXPECT_EQ(SqlInt(path_, "SELECT count(*) FROM scalars WHERE step = 60 AND name IN "
                          "('acc/arithmetic', 'acc_norm/arithmetic', 'acc/arithmetic/add', "
                          "'acc_norm/arithmetic/add', 'acc', 'acc_norm')"),
            6);
  EXPECT_EQ(SqlInt(path_, "SELECT CAST(value * 1000 AS INTEGER) FROM scalars "
                          "WHERE name = 'acc/arithmetic'"),
            275);

  store = OpenOrDie(path_);
  ASSERT_NE(store, nullptr);
  auto runs = store->LoadRuns();
  ASSERT_TRUE(runs.ok()) << runs.status();
  const v1::RunMetrics& m = (*runs)[0].metrics;
  ASSERT_EQ(m.tasks_size(), 2);
  EXPECT_EQ(m.tasks(0).task(), "arithmetic");
  EXPECT_EQ(m.tasks(1).group(), "add");
  EXPECT_DOUBLE_EQ(m.tasks(0).acc(), 0.275);
  EXPECT_DOUBLE_EQ(m.acc(), 0.275);
  EXPECT_DOUBLE_EQ(m.loss(), 3.5);
}

TEST_F(StoreTest, SupersededAttemptsAreHiddenUnlessAllAttempts) {
  auto store = OpenOrDie(path_);
  ASSERT_NE(store, nullptr);
  RunRow run = Submit(*store, 1)[0];
  // Attempt 1 ran steps 1..6, then was lost; attempt 2 resumed from its step-3 checkpoint and
  // re-ran 4..7; attempt 3 resumed from step 6 of attempt 2 and ran 7..8.
  StartAttempt(*store, run, 1, 0);
  ASSERT_TRUE(store->AppendTelemetry(run.id, Batch(1, 1, 1, 6, 1), 1, nullptr).ok());
  StartAttempt(*store, run, 2, 3);
  ASSERT_TRUE(store->AppendTelemetry(run.id, Batch(2, 1, 4, 7, 1), 2, nullptr).ok());
  StartAttempt(*store, run, 3, 6);
  ASSERT_TRUE(store->AppendTelemetry(run.id, Batch(3, 1, 7, 8, 1), 3, nullptr).ok());

  TelemetryFilter f;
  f.run_id = run.id;
  auto page = store->QueryEntropy(f);
  ASSERT_TRUE(page.ok()) << page.status();
  using SA = std::vector<std::pair<int64_t, int32_t>>;
  EXPECT_EQ(StepsAndAttempts(*page),
            (SA{{1, 1}, {2, 1}, {3, 1}, {4, 2}, {5, 2}, {6, 2}, {7, 3}, {8, 3}}));

  f.all_attempts = true;
  page = store->QueryEntropy(f);
  ASSERT_TRUE(page.ok()) << page.status();
  // Every row, ordered by step, then attempt.
  EXPECT_EQ(StepsAndAttempts(*page), (SA{{1, 1},
                                         {2, 1},
                                         {3, 1},
                                         {4, 1},
                                         {4, 2},
                                         {5, 1},
                                         {5, 2},
                                         {6, 1},
                                         {6, 2},
                                         {7, 2},
                                         {7, 3},
                                         {8, 3}}));

  // The same rule for scalars, with a step window.
  f.all_attempts = false;
  f.from_step = 3;
  f.to_step = 7;
  auto scalars = store->QueryScalars(f);
  ASSERT_TRUE(scalars.ok()) << scalars.status();
  ASSERT_EQ(scalars->rows.size(), 5u);
  EXPECT_EQ(scalars->rows[0].step(), 3);
  EXPECT_EQ(scalars->attempts, (std::vector<int32_t>{1, 2, 2, 2, 3}));
  // Superseded rows still count: they are stored.
  auto counts = store->Counts(run.id);
  ASSERT_TRUE(counts.ok());
  EXPECT_EQ(counts->entropy_rows, 12);
}

TEST_F(StoreTest, PaginatesOverSeveralPagesWithStepFilters) {
  auto store = OpenOrDie(path_);
  ASSERT_NE(store, nullptr);
  std::vector<RunRow> runs = Submit(*store, 2);
  StartAttempt(*store, runs[0], 1, 0);
  // Steps 1..30 with 3 heads each, in batches of 5 steps; the other run's rows interleave.
  for (int i = 0; i < 6; ++i) {
    ASSERT_TRUE(
        store->AppendTelemetry(runs[0].id, Batch(1, i + 1, i * 5 + 1, i * 5 + 5, 3), i, nullptr)
            .ok());
    ASSERT_TRUE(
        store->AppendTelemetry(runs[1].id, Batch(1, i + 1, i * 5 + 1, i * 5 + 5, 3), i, nullptr)
            .ok());
  }
  // A superseding attempt from step 20 re-runs 21..25: pages must skip attempt 1's 21..30.
  StartAttempt(*store, runs[0], 2, 20);
  ASSERT_TRUE(store->AppendTelemetry(runs[0].id, Batch(2, 1, 21, 25, 3), 9, nullptr).ok());

  TelemetryFilter f;
  f.run_id = runs[0].id;
  f.from_step = 4;
  f.to_step = 24;
  f.limit = 7;
  std::vector<std::pair<int64_t, int32_t>> got;
  std::vector<int32_t> heads;
  int pages = 0;
  do {
    auto page = store->QueryEntropy(f);
    ASSERT_TRUE(page.ok()) << page.status();
    ++pages;
    ASSERT_LE(page->rows.size(), 7u);
    if (page->next != 0) {
      EXPECT_EQ(page->rows.size(), 7u);
    }
    for (const auto& sa : StepsAndAttempts(*page)) got.push_back(sa);
    for (const v1::EntropyRow& r : page->rows) heads.push_back(r.head());
    f.cursor = page->next;
    ASSERT_LT(pages, 100);
  } while (f.cursor != 0);

  std::vector<std::pair<int64_t, int32_t>> want;
  for (int64_t s = 4; s <= 24; ++s) {
    for (int h = 0; h < 3; ++h) want.emplace_back(s, s <= 20 ? 1 : 2);
  }
  EXPECT_EQ(got, want);
  EXPECT_EQ(pages, 9);  // 63 rows, 7 per page, and no empty last page
  for (size_t i = 0; i < heads.size(); ++i) EXPECT_EQ(heads[i], static_cast<int32_t>(i % 3));

  // A limit that divides the rows exactly still ends with next == 0 on the last full page.
  f.cursor = 0;
  f.limit = 63;
  auto all = store->QueryEntropy(f);
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(all->rows.size(), 63u);
  EXPECT_EQ(all->next, 0);

  // A cursor from another run's rows is refused.
  TelemetryFilter other;
  other.run_id = runs[1].id;
  other.limit = 1;
  auto first = store->QueryEntropy(other);
  ASSERT_TRUE(first.ok());
  ASSERT_NE(first->next, 0);
  f.cursor = first->next;
  auto bad = store->QueryEntropy(f);
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(Contains(bad.status().message(), "cursor"));
}

TEST_F(StoreTest, FailedWritesLeaveNothing) {
  auto store = OpenOrDie(path_);
  ASSERT_NE(store, nullptr);
  std::vector<RunRow> runs = Submit(*store, 1);

  // A sweep whose second run names a parent that does not exist: no sweep, no run, no event.
  SweepRow sweep = MakeSweep("broken");
  std::vector<RunRow> bad_runs = {MakeRun("ok"), MakeRun("orphan")};
  bad_runs[1].parent_run_id = 999;
  absl::Status st = store->InsertSweep(sweep, bad_runs, 5);
  EXPECT_FALSE(st.ok());
  EXPECT_TRUE(Contains(st.message(), path_)) << st;
  EXPECT_EQ(sweep.id, 0);
  EXPECT_EQ(bad_runs[0].id, 0);

  // A sweep-wide transition where the second run does not exist: the first is not changed.
  RunRow changed = runs[0];
  changed.state = v1::RUN_STATE_CANCELLED;
  RunRow ghost = MakeRun("ghost");
  ghost.id = 999;
  RunEventRow cancel;
  cancel.to_state = v1::RUN_STATE_CANCELLED;
  cancel.reason = "cancelled by user";
  st = store->TransitionRuns({{changed, cancel}, {ghost, cancel}});
  EXPECT_EQ(st.code(), absl::StatusCode::kNotFound) << st;

  // A telemetry batch whose run update fails at the very end (a trigger refuses it): no rows,
  // and the batch key is not taken, so a retry is stored.
  SqlExec(path_,
          "CREATE TRIGGER refuse_progress BEFORE UPDATE OF step ON runs "
          "BEGIN SELECT RAISE(ABORT, 'refused by the test'); END;");
  RunRow progressed = runs[0];
  progressed.step = 7;
  const v1::TelemetryBatch b = Batch(1, 1, 1, 10);
  auto appended = store->AppendTelemetry(runs[0].id, b, 1, &progressed);
  EXPECT_FALSE(appended.ok());
  SqlExec(path_, "DROP TRIGGER refuse_progress");
  // Telemetry for a run that is not stored.
  auto unknown = store->AppendTelemetry(4242, b, 1, nullptr);
  EXPECT_EQ(unknown.status().code(), absl::StatusCode::kNotFound) << unknown.status();

  auto sweeps = store->LoadSweeps();
  ASSERT_TRUE(sweeps.ok());
  EXPECT_EQ(sweeps->size(), 1u);
  auto loaded = store->LoadRuns();
  ASSERT_TRUE(loaded.ok());
  ASSERT_EQ(loaded->size(), 1u);
  ExpectSameRun((*loaded)[0], runs[0]);
  auto events = store->RunEvents(runs[0].id);
  ASSERT_TRUE(events.ok());
  EXPECT_EQ(events->size(), 1u);
  auto counts = store->Counts(runs[0].id);
  ASSERT_TRUE(counts.ok());
  EXPECT_EQ(counts->entropy_rows, 0);
  EXPECT_EQ(counts->scalar_rows, 0);

  auto retry = store->AppendTelemetry(runs[0].id, b, 2, nullptr);
  ASSERT_TRUE(retry.ok()) << retry.status();
  EXPECT_TRUE(*retry);
  store.reset();
  EXPECT_EQ(SqlInt(path_, "SELECT count(*) FROM runs"), 1);
  EXPECT_EQ(SqlInt(path_, "SELECT count(*) FROM run_events"), 1);
  EXPECT_EQ(SqlInt(path_, "SELECT count(*) FROM entropy"), 20);
}

TEST_F(StoreTest, ReopenedFileHasEverything) {
  RunRow run;
  WorkerRow worker;
  {
    auto store = OpenOrDie(path_);
    ASSERT_NE(store, nullptr);
    run = Submit(*store, 1)[0];
    Assign(*store, run, 1, 0);
    worker.id = "w1";
    worker.name = "box";
    worker.last_seen = 17;
    ASSERT_TRUE(store->UpsertWorker(worker).ok());
    v1::TelemetryBatch b = Batch(1, 1, 1, 4);
    b.add_decisions()->set_action("hold");
    b.add_checkpoints()->set_path("/c/1.pt");
    run.step = 4;
    ASSERT_TRUE(store->AppendTelemetry(run.id, b, 1, &run).ok());
  }
  auto store = OpenOrDie(path_);
  ASSERT_NE(store, nullptr);
  auto sweeps = store->LoadSweeps();
  ASSERT_TRUE(sweeps.ok());
  EXPECT_EQ(sweeps->size(), 1u);
  auto runs = store->LoadRuns();
  ASSERT_TRUE(runs.ok());
  ASSERT_EQ(runs->size(), 1u);
  ExpectSameRun((*runs)[0], run);
  auto events = store->RunEvents(run.id);
  ASSERT_TRUE(events.ok());
  EXPECT_EQ(events->size(), 2u);
  auto workers = store->LoadWorkers();
  ASSERT_TRUE(workers.ok());
  ASSERT_EQ(workers->size(), 1u);
  EXPECT_EQ((*workers)[0].last_seen, 17);
  auto counts = store->Counts(run.id);
  ASSERT_TRUE(counts.ok());
  EXPECT_EQ(counts->entropy_rows, 8);
  EXPECT_EQ(counts->scalar_rows, 4);
  EXPECT_EQ(counts->decisions, 1);
  auto checkpoints = store->Checkpoints(run.id);
  ASSERT_TRUE(checkpoints.ok());
  ASSERT_EQ(checkpoints->size(), 1u);
  EXPECT_EQ((*checkpoints)[0].path(), "/c/1.pt");
  // The batch key survived too: resending it after a restart is still a duplicate.
  auto again = store->AppendTelemetry(run.id, Batch(1, 1, 1, 4), 2, nullptr);
  ASSERT_TRUE(again.ok());
  EXPECT_FALSE(*again);
}

TEST_F(StoreTest, ReadsDoNotWaitForAnotherWriter) {
  auto store = OpenOrDie(path_);
  ASSERT_NE(store, nullptr);
  Submit(*store, 1);
  // Another connection holds the write lock with an uncommitted run; WAL readers see the last
  // commit without waiting (a rollback journal would block them behind the busy timeout).
  sqlite3* other = nullptr;
  ASSERT_EQ(sqlite3_open(path_.c_str(), &other), SQLITE_OK);
  ASSERT_EQ(
      sqlite3_exec(other, "BEGIN IMMEDIATE; DELETE FROM run_events;", nullptr, nullptr, nullptr),
      SQLITE_OK);
  const auto start = std::chrono::steady_clock::now();
  auto events = store->RunEvents(1);
  const double waited =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  ASSERT_TRUE(events.ok()) << events.status();
  EXPECT_EQ(events->size(), 1u);
  EXPECT_LT(waited, 2.0);
  sqlite3_exec(other, "ROLLBACK", nullptr, nullptr, nullptr);
  sqlite3_close(other);
}

TEST_F(StoreTest, ConcurrentReadersSeeWholeBatches) {
  auto store = OpenOrDie(path_);
  ASSERT_NE(store, nullptr);
  RunRow run = Submit(*store, 1)[0];
  constexpr int kBatches = 200;
  std::atomic<bool> done{false};
  std::thread writer([&] {
    auto write = [&] {
      for (int i = 1; i <= kBatches; ++i) {
        RunRow r = run;
        r.step = i * 4;
        auto ok = store->AppendTelemetry(run.id, Batch(1, i, i * 4 - 3, i * 4), i, &r);
        ASSERT_TRUE(ok.ok() && *ok) << ok.status();
      }
    };
    write();
    done = true;
  });
  // Each read sees a whole number of batches (8 entropy rows and 4 scalars each), never part.
  TelemetryFilter f;
  f.run_id = run.id;
  f.limit = 100000;

  for (bool last = false; !last;) {
    last = done;  // one more read after the writer finished
    // No ASSERT here: returning would leave the writer thread unjoined.
    auto counts = store->Counts(run.id);
    auto page = store->QueryEntropy(f);
    if (!counts.ok() || !page.ok()) {
      ADD_FAILURE() << counts.status() << " " << page.status();
      break;
    }
    EXPECT_EQ(counts->entropy_rows % 8, 0);
    EXPECT_EQ(counts->entropy_rows, counts->scalar_rows * 2);
    EXPECT_GE(static_cast<int64_t>(page->rows.size()), counts->entropy_rows);
    EXPECT_EQ(page->rows.size() % 8, 0u);
    if (last) {
      EXPECT_EQ(counts->entropy_rows, kBatches * 8);
    }
  }
  writer.join();
  auto runs = store->LoadRuns();
  ASSERT_TRUE(runs.ok());
  EXPECT_EQ((*runs)[0].step, kBatches * 4);
}

TEST_F(StoreTest, RefusesANewerSchema) {
  OpenOrDie(path_).reset();
  SqlExec(path_, "PRAGMA user_version = " + std::to_string(kSchemaVersion + 1));
  const std::string before = ReadAll(path_);
  auto store = Store::Open(path_);
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(Contains(store.status().message(), path_));
  EXPECT_TRUE(Contains(store.status().message(), "newer sgt-coordinator; upgrade"));
  EXPECT_EQ(ReadAll(path_), before);
}

TEST_F(StoreTest, RefusesAFileThatIsNotSqlite) {
  const std::string garbage(8192, 'x');
  WriteAll(path_, garbage);
  auto store = Store::Open(path_);
  ASSERT_FALSE(store.ok());
  EXPECT_TRUE(Contains(store.status().message(), path_));
  EXPECT_TRUE(Contains(store.status().message(), "not an SQLite database"));
  EXPECT_EQ(ReadAll(path_), garbage);
  EXPECT_FALSE(std::filesystem::exists(path_ + "-wal"));
}

TEST_F(StoreTest, RefusesAnotherApplicationsDatabase) {
  SqlExec(path_, "CREATE TABLE notes(text TEXT); INSERT INTO notes VALUES ('mine');");
  const std::string before = ReadAll(path_);
  auto store = Store::Open(path_);
  ASSERT_FALSE(store.ok());
  EXPECT_TRUE(Contains(store.status().message(), "not an sgt-coordinator one"));
  EXPECT_TRUE(Contains(store.status().message(), path_));
  EXPECT_EQ(ReadAll(path_), before);
}

TEST_F(StoreTest, MissingDirectoryIsNamed) {
  const std::string missing = dir_ + "/no/such/dir";
  auto store = Store::Open(missing + "/sgt.db");
  ASSERT_FALSE(store.ok());
  EXPECT_TRUE(Contains(store.status().message(), missing + "/sgt.db"));
  EXPECT_TRUE(Contains(store.status().message(), "check that the directory " + missing));
  EXPECT_FALSE(std::filesystem::exists(dir_ + "/no"));
}

double CpuSeconds() {
  timespec t;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_nsec) * 1e-9;
}

// Throughput of AppendTelemetry alone, in 256-entropy-row batches (docs/store.md quotes it).
// Run: sgt_store_tests --gtest_also_run_disabled_tests --gtest_filter='*Throughput*'
TEST_F(StoreTest, DISABLED_AppendTelemetryThroughput) {
  auto store = OpenOrDie(path_);
  ASSERT_NE(store, nullptr);
  SweepRow sweep = MakeSweep("bench");
  std::vector<RunRow> runs;
  for (int i = 0; i < 4; ++i) {
    runs.push_back(MakeRun("bench" + std::to_string(i)));
    runs.back().config_json = std::string(4096, 'c');  // a realistic effective configuration
  }
  ASSERT_TRUE(store->InsertSweep(sweep, runs, 0).ok());
  constexpr int kBatches = 8000;
  constexpr int kRows = 256;  // 8 layers x 8 heads x 4 loops per step
  std::vector<v1::TelemetryBatch> batches(runs.size());
  std::vector<int64_t> step(runs.size(), 0);
  double seconds = 0, cpu_seconds = 0;
  for (int i = 0; i < kBatches; ++i) {
    const size_t r = static_cast<size_t>(i) % runs.size();
    v1::TelemetryBatch& b = batches[r];
    b.Clear();
    b.set_attempt(1);
    b.set_sequence(++step[r]);
    for (int j = 0; j < kRows; ++j) {
      v1::EntropyRow* e = b.add_entropy();
      e->set_step(step[r]);
      e->set_signal(v1::ENTROPY_SIGNAL_TRAIN);
      e->set_layer(j / 32);
      e->set_head(j / 4 % 8);
      e->set_loop(j % 4);
      e->set_value(0.5f + static_cast<float>(j) * 1e-3f);
    }
    RunRow& run = runs[r];
    run.step = step[r];
    run.metrics.set_loss(3.0 - i * 1e-4);
    const auto start = std::chrono::steady_clock::now();  // AppendTelemetry alone
    const double cpu_start = CpuSeconds();
    auto ok = store->AppendTelemetry(run.id, b, i, &run);
    seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    cpu_seconds += CpuSeconds() - cpu_start;
    ASSERT_TRUE(ok.ok() && *ok) << ok.status();
  }
  // CPU time as well: on a shared machine, wall time also counts other processes' turns.
  std::printf(
      "AppendTelemetry: %d batches x %d entropy rows: %.3f s wall = %.0f rows/s, %.3f s "
      "CPU = %.0f rows/s\n",
      kBatches, kRows, seconds, kBatches * kRows / seconds, cpu_seconds,
      kBatches * kRows / cpu_seconds);
  auto counts = store->Counts(runs[0].id);
  ASSERT_TRUE(counts.ok());
  EXPECT_EQ(counts->entropy_rows, int64_t{kBatches} / 4 * kRows);
}

}  // namespace
}  // namespace sgt::coord
