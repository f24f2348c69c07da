// sgt-loadgen: speaks the worker protocol (worker.proto) to a live sgt-coordinator.
//
//   sgt-loadgen ingest   --coordinator ADDR [--streams 1] [--batches 4000] [--rows 256]
//   sgt-loadgen fleet    --coordinator ADDR [--workers 100] [--seconds 20] [--rows 64]
//                        [--coordinator-pid PID]
//   sgt-loadgen baseline --db PATH [--batches 4000] [--rows 256]
//   sgt-loadgen simulate --coordinator ADDR --name NAME [--devices 1] [--step-ms 2]
//                        [--resend] [--exit-after-runs N]
//
// ingest: submits a sweep of one run per stream, takes the runs as a worker would and streams
//   entropy batches as fast as the coordinator acknowledges them (a window of batches in
//   flight); prints rows/s end to end (gRPC + ingestion + SQLite).
// fleet: N workers heartbeating every second and streaming a batch each per second, while a
//   client measures the latency of client RPCs; prints p50/p99/max and the coordinator's RSS.
// baseline: SQLite alone, one prepared INSERT per row and one transaction per batch, into a
//   plain table and into the coordinator's entropy table: the numbers `ingest` is compared with.
// simulate: a worker that runs what it is given without training: it walks the steps of each
//   run's configuration (step-ms per step), sends scalars, entropy rows, growth decisions and
//   checkpoint records as sgt-train would, honours pause / snapshot at growth boundaries and
//   cancel at once, and reconnects (replaying unacknowledged batches) when the coordinator goes
//   away. --resend sends every telemetry batch twice (the coordinator must store it once).
//
// The coordinator's address: --coordinator, else $SGT_COORDINATOR, else localhost:7070.
// Every mode prints one JSON line on stdout. Token: --token-file F (worker and client tokens:
// --client-token-file F).
#include <sqlite3.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <fstream>
#include <iostream>
#include <map>
#include <mutex>
#include <sstream>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "grpcpp/grpcpp.h"
#include "libsgt/core/config.h"
#include "libsgt/core/event_log.h"
#include "libsgt/core/growth.h"
#include "nlohmann/json.hpp"
#include "services/common/telemetry.h"
#include "services/coordinator/store.h"
#include "sgt/v1/coordinator.grpc.pb.h"
#include "sgt/v1/worker.grpc.pb.h"

namespace {

using Clock = std::chrono::steady_clock;
using json = nlohmann::json;
namespace scalar = sgt::events::scalar;
namespace summary = sgt::events::summary;
namespace ckpt_reason = sgt::events::checkpoint_reason;
using Stream = grpc::ClientReaderWriter<sgt::v1::WorkerMessage, sgt::v1::CoordinatorMessage>;

struct Flags {
  std::string mode, coordinator = "localhost:7070", db, name = "sim", token_file, client_token_file;
  int64_t streams = 1, batches = 4000, rows = 256, workers = 100, seconds = 20, devices = 1,
          step_ms = 2, coordinator_pid = 0, exit_after_runs = 0, window = 64;
  bool resend = false;
  bool rows_set = false;
};

std::string ReadToken(const std::string& path) {
  if (path.empty()) return "";
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return std::string(absl::StripAsciiWhitespace(ss.str()));
}

double Seconds(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

void Authorize(grpc::ClientContext* ctx, const std::string& token) {
  if (!token.empty()) ctx->AddMetadata("authorization", "Bearer " + token);
}

[[noreturn]] void Die(const std::string& what) {
  std::cerr << "sgt-loadgen: " << what << "\n";
  std::exit(1);
}

// A sweep of `n` vanilla runs differing only in seed: telemetry needs runs to belong to.
std::string SweepYaml(const std::string& name, int64_t n) {
  std::string seeds;
  for (int64_t i = 1; i <= n; ++i) absl::StrAppend(&seeds, i == 1 ? "" : ", ", i);
  return absl::StrCat("name: ", name, "\nbase:\n  variant: vanilla\n",
                      "  model: {layers: 4, d_model: 128, heads: 4, d_ff: 512, context: 128, "
                      "vocab_size: 4096}\n  train: {steps: 1000000}\n",
                      "  data: {train: data/brown/train.u16, validation: data/brown/val.u16}\n",
                      "grid:\n  train.seed: [", seeds, "]\n");
}

std::vector<std::string> Submit(const std::shared_ptr<grpc::Channel>& ch, const Flags& f,
                                const std::string& yaml, std::string* sweep_id) {
  auto stub = sgt::v1::CoordinatorService::NewStub(ch);
  grpc::ClientContext ctx;
  Authorize(&ctx, ReadToken(f.client_token_file));
  sgt::v1::SubmitSweepRequest req;
  req.set_yaml(yaml);
  req.set_source_name("sgt-loadgen");
  sgt::v1::SubmitSweepResponse resp;
  grpc::Status s = stub->SubmitSweep(&ctx, req, &resp);
  if (!s.ok()) Die("submit: " + s.error_message());
  *sweep_id = resp.sweep().id();
  std::vector<std::string> ids;
  for (const auto& r : resp.runs()) ids.push_back(r.id());
  return ids;
}

void CancelSweep(const std::shared_ptr<grpc::Channel>& ch, const Flags& f,
                 const std::string& sweep) {
  auto stub = sgt::v1::CoordinatorService::NewStub(ch);
  grpc::ClientContext ctx;
  Authorize(&ctx, ReadToken(f.client_token_file));
  sgt::v1::ActionRequest req;
  req.set_target(sweep);
  req.set_reason("load generator done");
  sgt::v1::ActionResponse resp;
  (void)stub->Cancel(&ctx, req, &resp);
}

// One simulated worker connection: registered, with an open session.
struct Conn {
  std::string id;
  std::unique_ptr<sgt::v1::WorkerService::Stub> stub;
  std::unique_ptr<grpc::ClientContext> ctx;
  std::unique_ptr<Stream> stream;
  std::mutex write_mu;
  int heartbeat_s = 10;

  bool Write(const sgt::v1::WorkerMessage& m) {
    std::lock_guard<std::mutex> lock(write_mu);
    return stream->Write(m);
  }
};

std::unique_ptr<Conn> Connect(const std::shared_ptr<grpc::Channel>& ch, const std::string& token,
                              const std::string& name, int64_t devices,
                              const std::vector<sgt::v1::RunRef>& held, std::string* error) {
  auto c = std::make_unique<Conn>();
  c->stub = sgt::v1::WorkerService::NewStub(ch);
  grpc::ClientContext rctx;
  Authorize(&rctx, token);
  rctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  sgt::v1::RegisterRequest reg;
  reg.set_name(name);
  reg.set_hostname("loadgen");
  reg.set_version("sgt-loadgen");
  for (int64_t i = 0; i < devices; ++i) {
    sgt::v1::Device* d = reg.add_devices();
    d->set_id(absl::StrCat("cpu:", i));
    d->set_kind("cpu");
  }
  sgt::v1::RegisterResponse rr;
  grpc::Status s = c->stub->Register(&rctx, reg, &rr);
  if (!s.ok()) {
    *error = s.error_message();
    return nullptr;
  }
  c->id = rr.worker_id();
  c->heartbeat_s = rr.heartbeat_seconds();
  c->ctx = std::make_unique<grpc::ClientContext>();
  Authorize(c->ctx.get(), token);
  c->stream = c->stub->Session(c->ctx.get());
  sgt::v1::WorkerMessage hello;
  hello.mutable_hello()->set_worker_id(c->id);
  for (const auto& r : held) *hello.mutable_hello()->add_runs() = r;
  if (!c->stream->Write(hello)) {
    *error = "the session closed at once";
    return nullptr;
  }
  return c;
}

sgt::v1::WorkerMessage Status(const std::string& run, int32_t attempt, sgt::v1::RunState st,
                              int64_t step, const std::string& summary = "") {
  sgt::v1::WorkerMessage m;
  sgt::v1::RunStatus* s = m.mutable_status();
  s->set_run_id(run);
  s->set_attempt(attempt);
  s->set_state(st);
  s->set_step(step);
  s->set_summary_json(summary);
  return m;
}

// ---------------------------------------------------------------------------------------------
// ingest

int Ingest(const Flags& f) {
  auto ch = grpc::CreateChannel(f.coordinator, grpc::InsecureChannelCredentials());
  const std::string token = ReadToken(f.token_file);
  std::string sweep;
  std::vector<std::string> runs = Submit(ch, f, SweepYaml("loadgen-ingest", f.streams), &sweep);
  std::vector<std::unique_ptr<Conn>> conns;
  for (int64_t i = 0; i < f.streams; ++i) {
    std::string err;
    auto c = Connect(ch, token, absl::StrCat("ingest-", i), 1, {}, &err);
    if (!c) Die("connect: " + err);
    conns.push_back(std::move(c));
  }
  // Each connection gets one run; wait for its StartRun.
  std::vector<std::pair<std::string, int32_t>> assigned(conns.size());
  for (size_t i = 0; i < conns.size(); ++i) {
    sgt::v1::CoordinatorMessage m;
    while (conns[i]->stream->Read(&m)) {
      if (m.has_start()) {
        assigned[i] = {m.start().run_id(), m.start().attempt()};
        conns[i]->Write(
            Status(m.start().run_id(), m.start().attempt(), sgt::v1::RUN_STATE_RUNNING, 0));
        break;
      }
    }
    if (assigned[i].first.empty()) Die("no run was assigned to " + conns[i]->id);
  }
  std::atomic<int64_t> acked{0}, duplicates{0};
  const auto t0 = Clock::now();
  std::vector<std::thread> threads;
  for (size_t i = 0; i < conns.size(); ++i) {
    threads.emplace_back([&, i] {
      Conn& c = *conns[i];
      std::mutex mu;
      std::condition_variable cv;
      int64_t in_flight = 0, done = 0;
      std::thread reader([&] {
        sgt::v1::CoordinatorMessage m;
        while (done < f.batches && c.stream->Read(&m)) {
          if (!m.has_ack()) continue;
          std::lock_guard<std::mutex> lock(mu);
          --in_flight;
          ++done;
          acked += 1;
          if (m.ack().duplicate()) duplicates += 1;
          cv.notify_all();
        }
      });
      sgt::v1::WorkerMessage msg;
      sgt::v1::TelemetryBatch* b = msg.mutable_telemetry();
      b->set_run_id(assigned[i].first);
      b->set_attempt(assigned[i].second);
      for (int64_t r = 0; r < f.rows; ++r) {
        sgt::v1::EntropyRow* e = b->add_entropy();
        e->set_signal(sgt::v1::ENTROPY_SIGNAL_TRAIN);
        e->set_layer(static_cast<int32_t>(r / 16 % 24));
        e->set_head(static_cast<int32_t>(r % 16));
        e->set_value(0.5f + 0.001f * static_cast<float>(r % 100));
      }
      for (int64_t seq = 1; seq <= f.batches; ++seq) {
        {
          std::unique_lock<std::mutex> lock(mu);
          cv.wait(lock, [&] { return in_flight < f.window; });
          ++in_flight;
        }
        b->set_sequence(seq);
        for (auto& e : *b->mutable_entropy()) e.set_step(seq);
        if (!c.Write(msg)) Die("the session closed while streaming");
      }
      reader.join();
    });
  }
  for (auto& t : threads) t.join();
  const double secs = Seconds(t0, Clock::now());
  const int64_t rows = acked.load() * f.rows;
  CancelSweep(ch, f, sweep);
  for (auto& c : conns) {
    c->stream->WritesDone();
    c->ctx->TryCancel();
  }
  json out = {{"mode", "ingest"},
              {"streams", f.streams},
              {"batches", acked.load()},
              {"rows_per_batch", f.rows},
              {"rows", rows},
              {"seconds", secs},
              {"rows_per_s", rows / secs},
              {"duplicates", duplicates.load()},
              {"window", f.window}};
  std::cout << out.dump() << std::endl;
  return 0;
}

// ---------------------------------------------------------------------------------------------
// baseline

// Inserts batches x rows entropy rows with `sql` (8 parameters), one transaction per batch;
// returns rows per second.
double InsertRows(sqlite3* db, const char* sql, const Flags& f) {
  sqlite3_stmt* ins = nullptr;
  if (sqlite3_prepare_v2(db, sql, -1, &ins, nullptr) != SQLITE_OK) {
    Die(std::string("prepare: ") + sqlite3_errmsg(db));
  }
  const auto t0 = Clock::now();
  for (int64_t seq = 1; seq <= f.batches; ++seq) {
    sqlite3_exec(db, "BEGIN", nullptr, nullptr, nullptr);
    for (int64_t r = 0; r < f.rows; ++r) {
      sqlite3_bind_int64(ins, 1, 1);
      sqlite3_bind_int(ins, 2, 1);
      sqlite3_bind_int64(ins, 3, seq);
      sqlite3_bind_int(ins, 4, 1);
      sqlite3_bind_int(ins, 5, static_cast<int>(r / 16 % 24));
      sqlite3_bind_int(ins, 6, static_cast<int>(r % 16));
      sqlite3_bind_int(ins, 7, 0);
      sqlite3_bind_double(ins, 8, 0.5 + 0.001 * static_cast<double>(r % 100));
      if (sqlite3_step(ins) != SQLITE_DONE) Die(std::string("insert: ") + sqlite3_errmsg(db));
      sqlite3_reset(ins);
    }
    sqlite3_exec(db, "COMMIT", nullptr, nullptr, nullptr);
  }
  const double secs = Seconds(t0, Clock::now());
  sqlite3_finalize(ins);
  return static_cast<double>(f.batches * f.rows) / secs;
}

// SQLite alone, WAL and synchronous=NORMAL as the coordinator runs it, one prepared INSERT per
// row, one transaction per batch: (plain) into an unindexed table, the setting of the issue's
// 900,000 rows/s; (schema) into the coordinator's own entropy table with its index.
int Baseline(const Flags& f) {
  if (f.db.empty()) Die("baseline needs --db PATH (a new file)");
  {
    auto store = sgt::coord::Store::Open(f.db);
    if (!store.ok()) Die(std::string(store.status().message()));
  }
  sqlite3* db = nullptr;
  if (sqlite3_open(f.db.c_str(), &db) != SQLITE_OK) Die("cannot open " + f.db);
  sqlite3_exec(db,
               "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"
               "CREATE TABLE plain(run_id INTEGER, attempt INTEGER, step INTEGER, signal INTEGER,"
               " layer INTEGER, head INTEGER, loop INTEGER, value REAL);",
               nullptr, nullptr, nullptr);
  const double plain =
      InsertRows(db,
                 "INSERT INTO plain(run_id, attempt, step, signal, layer, head, loop, value) "
                 "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                 f);
  const double schema =
      InsertRows(db,
                 "INSERT INTO entropy(run_id, attempt, step, signal, layer, head, loop, value) "
                 "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                 f);
  sqlite3_close(db);
  json out = {{"mode", "baseline"},
              {"batches", f.batches},
              {"rows_per_batch", f.rows},
              {"plain_rows_per_s", plain},
              {"schema_rows_per_s", schema}};
  std::cout << out.dump() << std::endl;
  return 0;
}

// ---------------------------------------------------------------------------------------------
// fleet

double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t i = std::min(v.size() - 1, static_cast<size_t>(p * static_cast<double>(v.size())));
  return v[i];
}

int64_t RssKb(int64_t pid, const char* field) {
  std::ifstream in(absl::StrCat("/proc/", pid, "/status"));
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(field, 0) == 0) {
      int64_t kb = 0;
      std::istringstream(line.substr(std::string(field).size())) >> kb;
      return kb;
    }
  }
  return 0;
}

int Fleet(const Flags& f) {
  const std::string token = ReadToken(f.token_file);
  // A channel per ten workers, as workers on separate hosts would each have their own.
  std::vector<std::shared_ptr<grpc::Channel>> channels;
  for (int64_t i = 0; i < (f.workers + 9) / 10; ++i) {
    grpc::ChannelArguments args;
    args.SetInt("grpc.channel_id", static_cast<int>(i));  // distinct channels, not shared
    channels.push_back(
        grpc::CreateCustomChannel(f.coordinator, grpc::InsecureChannelCredentials(), args));
  }
  std::string sweep;
  Submit(channels[0], f, SweepYaml("loadgen-fleet", f.workers), &sweep);
  std::vector<std::unique_ptr<Conn>> conns;
  for (int64_t i = 0; i < f.workers; ++i) {
    std::string err;
    auto c = Connect(channels[i / 10], token, absl::StrCat("fleet-", i), 1, {}, &err);
    if (!c) Die("connect: " + err);
    conns.push_back(std::move(c));
  }
  std::atomic<bool> stop{false};
  std::atomic<int64_t> batches{0};
  std::vector<std::pair<std::string, int32_t>> runs(conns.size());
  std::mutex runs_mu;
  std::vector<std::thread> readers;
  for (size_t i = 0; i < conns.size(); ++i) {
    readers.emplace_back([&, i] {
      sgt::v1::CoordinatorMessage m;
      while (conns[i]->stream->Read(&m)) {
        if (m.has_start()) {
          std::lock_guard<std::mutex> lock(runs_mu);
          runs[i] = {m.start().run_id(), m.start().attempt()};
          conns[i]->Write(
              Status(m.start().run_id(), m.start().attempt(), sgt::v1::RUN_STATE_RUNNING, 0));
        }
        if (m.has_ack()) batches += 1;
      }
    });
  }
  // One sender walks the workers: each sends a heartbeat and a telemetry batch per second.
  std::thread sender([&] {
    std::vector<int64_t> seq(conns.size(), 0);
    auto next = Clock::now();
    while (!stop) {
      for (size_t i = 0; i < conns.size() && !stop; ++i) {
        sgt::v1::WorkerMessage hb;
        hb.mutable_heartbeat();
        std::pair<std::string, int32_t> run;
        {
          std::lock_guard<std::mutex> lock(runs_mu);
          run = runs[i];
        }
        if (!run.first.empty()) {
          sgt::v1::RunRef* ref = hb.mutable_heartbeat()->add_runs();
          ref->set_run_id(run.first);
          ref->set_attempt(run.second);
        }
        conns[i]->Write(hb);
        if (run.first.empty()) continue;
        sgt::v1::WorkerMessage m;
        sgt::v1::TelemetryBatch* b = m.mutable_telemetry();
        b->set_run_id(run.first);
        b->set_attempt(run.second);
        b->set_sequence(++seq[i]);
        for (int64_t r = 0; r < f.rows; ++r) {
          sgt::v1::EntropyRow* e = b->add_entropy();
          e->set_step(seq[i]);
          e->set_signal(sgt::v1::ENTROPY_SIGNAL_TRAIN);
          e->set_layer(static_cast<int32_t>(r / 4));
          e->set_head(static_cast<int32_t>(r % 4));
          e->set_value(0.6f);
        }
        sgt::v1::ScalarRow* s = b->add_scalars();
        s->set_step(seq[i]);
        s->set_name(scalar::kLoss);
        s->set_value(5.0);
        conns[i]->Write(m);
      }
      next += std::chrono::seconds(1);
      std::this_thread::sleep_until(next);
    }
  });

  // The client side: the calls sgtctl makes, in turn, timed.
  auto client = sgt::v1::CoordinatorService::NewStub(
      grpc::CreateChannel(f.coordinator, grpc::InsecureChannelCredentials()));
  const std::string client_token = ReadToken(f.client_token_file);
  std::vector<double> lat_ms;
  std::map<std::string, std::vector<double>> by_method;
  std::this_thread::sleep_for(std::chrono::seconds(2));  // runs assigned, streams flowing
  const auto end = Clock::now() + std::chrono::seconds(f.seconds);
  int64_t errors = 0;
  for (int64_t i = 0; Clock::now() < end; ++i) {
    grpc::ClientContext ctx;
    Authorize(&ctx, client_token);
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
    const auto t0 = Clock::now();
    grpc::Status s;
    std::string method;
    switch (i % 4) {
      case 0: {
        method = "ListRuns";
        sgt::v1::ListRunsRequest req;
        req.set_sweep_id(sweep);
        sgt::v1::ListRunsResponse resp;
        s = client->ListRuns(&ctx, req, &resp);
        break;
      }
      case 1: {
        method = "GetRun";
        sgt::v1::GetRunRequest req;
        req.set_run_id(runs[static_cast<size_t>(i) % runs.size()].first.empty()
                           ? "r1"
                           : runs[static_cast<size_t>(i) % runs.size()].first);
        sgt::v1::GetRunResponse resp;
        s = client->GetRun(&ctx, req, &resp);
        break;
      }
      case 2: {
        method = "ListWorkers";
        sgt::v1::ListWorkersResponse resp;
        s = client->ListWorkers(&ctx, {}, &resp);
        break;
      }
      default: {
        method = "ListSweeps";
        sgt::v1::ListSweepsResponse resp;
        s = client->ListSweeps(&ctx, {}, &resp);
        break;
      }
    }
    const double ms = Seconds(t0, Clock::now()) * 1000;
    if (!s.ok()) ++errors;
    lat_ms.push_back(ms);
    by_method[method].push_back(ms);
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  json out = {{"mode", "fleet"},
              {"workers", f.workers},
              {"seconds", f.seconds},
              {"rows_per_batch", f.rows},
              {"telemetry_batches_acked", batches.load()},
              {"client_calls", lat_ms.size()},
              {"client_errors", errors},
              {"p50_ms", Percentile(lat_ms, 0.50)},
              {"p99_ms", Percentile(lat_ms, 0.99)},
              {"max_ms", Percentile(lat_ms, 1.0)}};
  for (const auto& [m, v] : by_method) out["p99_ms_by_method"][m] = Percentile(v, 0.99);
  if (f.coordinator_pid > 0) {
    out["coordinator_rss_mb"] = RssKb(f.coordinator_pid, "VmRSS:") / 1024.0;
    out["coordinator_peak_rss_mb"] = RssKb(f.coordinator_pid, "VmHWM:") / 1024.0;
  }
  stop = true;
  sender.join();
  CancelSweep(channels[0], f, sweep);
  for (auto& c : conns) c->ctx->TryCancel();
  for (auto& t : readers) t.join();
  std::cout << out.dump() << std::endl;
  return 0;
}

// ---------------------------------------------------------------------------------------------
// simulate

class Simulator {
 public:
  explicit Simulator(const Flags& f) : f_(f), token_(ReadToken(f.token_file)) {
    channel_ = grpc::CreateChannel(f.coordinator, grpc::InsecureChannelCredentials());
  }

  int Run() {
    double backoff = 0.2;
    while (!quit_) {
      std::string err;
      std::vector<sgt::v1::RunRef> held = Held();
      std::unique_ptr<Conn> c = Connect(channel_, token_, f_.name, f_.devices, held, &err);
      if (!c) {
        std::this_thread::sleep_for(std::chrono::duration<double>(backoff));
        backoff = std::min(backoff * 2, 2.0);
        continue;
      }
      backoff = 0.2;
      {
        std::lock_guard<std::mutex> lock(mu_);
        conn_ = std::move(c);
        for (auto& [key, m] : unacked_) conn_->Write(m);  // replay what was not acknowledged
        for (auto& [key, m] : final_status_) {
          if (conn_->Write(m)) attempts_.erase(key);
        }
        final_status_.clear();
      }
      std::thread heart([this] { Heartbeats(); });
      sgt::v1::CoordinatorMessage m;
      while (conn_->stream->Read(&m)) Handle(m);
      {
        std::lock_guard<std::mutex> lock(mu_);
        connected_gen_ += 1;
      }
      heart.join();
      std::lock_guard<std::mutex> lock(mu_);
      conn_->ctx->TryCancel();
      old_conns_.push_back(std::move(conn_));
    }
    for (auto& t : run_threads_) t.join();
    json out = {{"mode", "simulate"},
                {"runs_finished", finished_.load()},
                {"duplicates_acked", duplicates_.load()},
                {"batches_acked", acked_.load()}};
    std::cout << out.dump() << std::endl;
    return 0;
  }

 private:
  struct Attempt {
    std::string run;
    int32_t attempt = 0;
    std::atomic<int64_t> step{0};
    std::atomic<bool> pause{false}, snapshot{false}, cancel{false};
  };

  std::vector<sgt::v1::RunRef> Held() {
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<sgt::v1::RunRef> out;
    for (auto& [key, a] : attempts_) {
      sgt::v1::RunRef r;
      r.set_run_id(a->run);
      r.set_attempt(a->attempt);
      r.set_step(a->step);
      out.push_back(r);
    }
    return out;
  }

  void Heartbeats() {
    const uint64_t gen = connected_gen_;
    while (true) {
      for (int i = 0; i < 10; ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(100 * conn_->heartbeat_s));
        std::lock_guard<std::mutex> lock(mu_);
        if (connected_gen_ != gen) return;
      }
      sgt::v1::WorkerMessage hb;
      for (const auto& r : Held()) *hb.mutable_heartbeat()->add_runs() = r;
      if (!hb.has_heartbeat()) hb.mutable_heartbeat();
      Send(hb);
    }
  }

  void Send(const sgt::v1::WorkerMessage& m) {
    std::lock_guard<std::mutex> lock(mu_);
    if (m.has_telemetry()) {
      const auto& b = m.telemetry();
      unacked_[absl::StrCat(b.run_id(), "/", b.attempt(), "/", b.sequence())] = m;
    }
    if (conn_) conn_->Write(m);
  }

  void Handle(const sgt::v1::CoordinatorMessage& m) {
    if (m.has_ack()) {
      std::lock_guard<std::mutex> lock(mu_);
      unacked_.erase(
          absl::StrCat(m.ack().run_id(), "/", m.ack().attempt(), "/", m.ack().sequence()));
      acked_ += 1;
      if (m.ack().duplicate()) duplicates_ += 1;
    } else if (m.has_start()) {
      auto a = std::make_shared<Attempt>();
      a->run = m.start().run_id();
      a->attempt = m.start().attempt();
      {
        std::lock_guard<std::mutex> lock(mu_);
        attempts_[absl::StrCat(a->run, "/", a->attempt)] = a;
      }
      run_threads_.emplace_back([this, a, start = m.start()] { Train(a, start); });
    } else if (m.has_command()) {
      std::lock_guard<std::mutex> lock(mu_);
      auto it = attempts_.find(absl::StrCat(m.command().run_id(), "/", m.command().attempt()));
      if (it == attempts_.end()) return;
      switch (m.command().kind()) {
        case sgt::v1::RunCommand::KIND_PAUSE:
          it->second->pause = true;
          break;
        case sgt::v1::RunCommand::KIND_SNAPSHOT:
          it->second->snapshot = true;
          break;
        case sgt::v1::RunCommand::KIND_CANCEL:
          it->second->cancel = true;
          break;
        default:
          break;
      }
    }
  }

  // Walks the run's steps as sgt-train would report them.
  void Train(std::shared_ptr<Attempt> a, sgt::v1::StartRun start) {
    absl::StatusOr<sgt::RunConfig> cfg = sgt::RunConfigFromJson(start.config_json());
    // The attempt stays held (listed in hellos) until its final status reached a coordinator,
    // so a reconnect does not make a finished run look lost.
    auto finish = [&](sgt::v1::RunState st, const std::string& summary, const std::string& why) {
      sgt::v1::WorkerMessage m = Status(a->run, a->attempt, st, a->step, summary);
      m.mutable_status()->set_reason(why);
      std::lock_guard<std::mutex> lock(mu_);
      const std::string key = absl::StrCat(a->run, "/", a->attempt);
      if (conn_ && conn_->Write(m)) {
        attempts_.erase(key);
      } else {
        final_status_[key] = m;
      }
    };
    if (!cfg.ok()) {
      finish(sgt::v1::RUN_STATE_FAILED, "", std::string(cfg.status().message()));
      return;
    }
    int64_t step = 0;
    const std::string& ck = start.resume_checkpoint();
    if (auto pos = ck.rfind("step-"); pos != std::string::npos) {
      (void)absl::SimpleAtoi(ck.substr(pos + 5), &step);
    }
    a->step = step;
    Send(Status(a->run, a->attempt, sgt::v1::RUN_STATE_RUNNING, step));
    int64_t seq = 0;
    sgt::v1::WorkerMessage batch;
    auto flush = [&] {
      sgt::v1::TelemetryBatch* b = batch.mutable_telemetry();
      if (sgt::telemetry::RowCount(*b) == 0) return;
      b->set_run_id(a->run);
      b->set_attempt(a->attempt);
      b->set_sequence(++seq);
      Send(batch);
      if (f_.resend) Send(batch);
      batch.Clear();
    };
    auto checkpoint = [&](const char* reason) {
      sgt::v1::CheckpointRecord* c = batch.mutable_telemetry()->add_checkpoints();
      c->set_step(step);
      c->set_path(absl::StrCat("/sim/", a->run, "/a", a->attempt, "/step-", step));
      c->set_bytes(1000 + step);
      c->set_sha256(std::string(64, '0'));
      c->set_reason(reason);
      return c->path();
    };
    const sgt::RunConfig& rc = *cfg;
    const double seed = static_cast<double>(rc.train.seed);
    const double variant = static_cast<double>(static_cast<int>(rc.variant));
    std::string last_ck;
    auto loss_at = [&](int64_t s) {
      return 8.0 * std::exp(-static_cast<double>(s) / 200.0) + 3.0 + 0.01 * seed - 0.02 * variant;
    };
    while (step < rc.train.steps) {
      if (a->cancel) {
        finish(sgt::v1::RUN_STATE_CANCELLED, "", "cancelled");
        return;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(f_.step_ms));
      ++step;
      a->step = step;
      sgt::v1::TelemetryBatch* b = batch.mutable_telemetry();
      for (const auto& [name, value] : {
               std::pair<const char*, double>{scalar::kLoss, loss_at(step)},
               {scalar::kTokensPerS, 5000.0},
               {scalar::kFlops, 1e9 * static_cast<double>(step) * (1 + 0.1 * variant)},
               {scalar::kVanillaFlops, 1e9 * static_cast<double>(step)},
               {scalar::kOverhead, 0.1 * variant}}) {
        sgt::v1::ScalarRow* s = b->add_scalars();
        s->set_step(step);
        s->set_name(name);
        s->set_value(value);
      }
      const int64_t interval = rc.entropy.telemetry_interval;
      const bool boundary = sgt::IsGrowthBoundary(rc, step);
      if ((interval > 0 && step % interval == 0) || boundary) {
        for (int64_t l = 0; l < rc.model.layers; ++l) {
          for (int64_t h = 0; h < rc.model.heads; ++h) {
            sgt::v1::EntropyRow* e = b->add_entropy();
            e->set_step(step);
            e->set_signal(sgt::v1::ENTROPY_SIGNAL_TRAIN);
            e->set_layer(static_cast<int32_t>(l));
            e->set_head(static_cast<int32_t>(h));
            e->set_value(0.5f + 0.01f * static_cast<float>(l + h));
          }
        }
      }
      if (boundary) {
        sgt::v1::GrowthDecision* d = b->add_decisions();
        d->set_step(step);
        d->set_action("hold");
        d->set_layer(-1);
        d->set_reason("simulated");
        d->set_signal(sgt::v1::ENTROPY_SIGNAL_TRAIN);
        if (rc.checkpoint.at_boundaries || a->pause || a->snapshot) {
          last_ck = checkpoint(a->pause      ? ckpt_reason::kPause
                              : a->snapshot ? ckpt_reason::kSnapshot
                                            : ckpt_reason::kBoundary);
          a->snapshot = false;
        }
      }
      if (step % 10 == 0 || boundary) flush();
      if (boundary && a->pause) {
        flush();
        json paused;
        paused[summary::kStatus] = std::string(sgt::events::kStatusPaused);
        paused[summary::kStep] = step;
        paused[summary::kLastCheckpoint] = last_ck;
        finish(sgt::v1::RUN_STATE_PAUSED, paused.dump(), "paused at a growth boundary");
        return;
      }
    }
    const double ppl = std::exp(loss_at(step));
    AddFinalEval(batch, step, ppl);
    if (rc.checkpoint.final) checkpoint(ckpt_reason::kFinal);
    flush();
    json succeeded;
    succeeded[summary::kStatus] = std::string(sgt::events::kStatusSucceeded);
    succeeded[summary::kStep] = step;
    succeeded[summary::kFinalLoss] = loss_at(step);
    succeeded[summary::kValLoss] = std::log(ppl);
    succeeded[summary::kValPpl] = ppl;
    succeeded[summary::kTrainFlops] = 1e9 * static_cast<double>(step) * (1 + 0.1 * variant);
    succeeded[summary::kVanillaFlops] = 1e9 * static_cast<double>(step);
    succeeded[summary::kOverheadVsVanilla] = 0.1 * variant;
    succeeded[summary::kTokensPerS] = 5000.0 - 100 * variant;
    succeeded[summary::kTokens] = step * rc.train.batch_size * rc.model.context;
    finish(sgt::v1::RUN_STATE_SUCCEEDED, succeeded.dump(), "");
    finished_ += 1;
    if (f_.exit_after_runs > 0 && finished_ >= f_.exit_after_runs) {
      std::this_thread::sleep_for(std::chrono::milliseconds(500));  // acks come back
      quit_ = true;
      std::lock_guard<std::mutex> lock(mu_);
      if (conn_) conn_->ctx->TryCancel();
    }
  }

  static void AddFinalEval(sgt::v1::WorkerMessage& batch, int64_t step, double ppl) {
    for (const auto& [name, v] :
         {std::pair<const char*, double>{scalar::kValPpl, ppl},
          std::pair<const char*, double>{scalar::kValLoss, std::log(ppl)}}) {
      sgt::v1::ScalarRow* s = batch.mutable_telemetry()->add_scalars();
      s->set_step(step);
      s->set_name(name);
      s->set_value(v);
    }
  }

  const Flags& f_;
  std::string token_;
  std::shared_ptr<grpc::Channel> channel_;
  std::mutex mu_;
  std::unique_ptr<Conn> conn_;
  std::vector<std::unique_ptr<Conn>> old_conns_;
  uint64_t connected_gen_ = 0;
  std::map<std::string, std::shared_ptr<Attempt>> attempts_;
  std::map<std::string, sgt::v1::WorkerMessage> unacked_;
  std::map<std::string, sgt::v1::WorkerMessage> final_status_;
  std::vector<std::thread> run_threads_;
  std::atomic<bool> quit_{false};
  std::atomic<int64_t> finished_{0}, acked_{0}, duplicates_{0};
};

}  // namespace

int main(int argc, char** argv) {
  Flags f;
  if (const char* env = std::getenv("SGT_COORDINATOR"); env != nullptr && *env != 0) {
    f.coordinator = env;
  }
  std::vector<std::string> args(argv + 1, argv + argc);
  if (args.empty())
    Die("usage: sgt-loadgen ingest|fleet|baseline|simulate [flags] (see the source)");
  f.mode = args[0];
  for (size_t i = 1; i < args.size(); ++i) {
    const std::string& a = args[i];
    auto str = [&](std::string* out) {
      if (i + 1 >= args.size()) Die(a + " needs a value");
      *out = args[++i];
    };
    auto num = [&](int64_t* out) {
      std::string v;
      str(&v);
      if (!absl::SimpleAtoi(v, out) || *out < 0) Die(a + " needs a number >= 0");
    };
    if (a == "--coordinator")
      str(&f.coordinator);
    else if (a == "--db")
      str(&f.db);
    else if (a == "--name")
      str(&f.name);
    else if (a == "--token-file")
      str(&f.token_file);
    else if (a == "--client-token-file")
      str(&f.client_token_file);
    else if (a == "--streams")
      num(&f.streams);
    else if (a == "--batches")
      num(&f.batches);
    else if (a == "--rows") {
      num(&f.rows);
      f.rows_set = true;
    } else if (a == "--window")
      num(&f.window);
    else if (a == "--workers")
      num(&f.workers);
    else if (a == "--seconds")
      num(&f.seconds);
    else if (a == "--devices")
      num(&f.devices);
    else if (a == "--step-ms")
      num(&f.step_ms);
    else if (a == "--coordinator-pid")
      num(&f.coordinator_pid);
    else if (a == "--exit-after-runs")
      num(&f.exit_after_runs);
    else if (a == "--resend")
      f.resend = true;
    else
      Die("unknown argument '" + a + "'");
  }
  if (f.mode == "ingest") return Ingest(f);
  if (f.mode == "fleet") {
    if (!f.rows_set) f.rows = 64;
    return Fleet(f);
  }
  if (f.mode == "baseline") return Baseline(f);
  if (f.mode == "simulate") return Simulator(f).Run();
  Die("unknown mode '" + f.mode + "'; ingest, fleet, baseline or simulate");
}
