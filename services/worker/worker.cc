#include "services/worker/worker.h"

#include <poll.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "grpcpp/grpcpp.h"
#include "nlohmann/json.hpp"
#include "prometheus/counter.h"
#include "prometheus/histogram.h"
#include "prometheus/registry.h"
#include "services/common/checkpoint_path.h"
#include "services/common/log.h"
#include "services/common/metrics.h"

namespace sgt::worker {

namespace v1 = sgt::v1;
namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

constexpr char kLog[] = "worker";
constexpr int64_t kBatchRows = 4096;   // a batch is sent once it has this many rows
constexpr double kBatchSeconds = 0.5;  // or once its first row is this old
constexpr size_t kStderrTail = 4096;   // bytes of stderr a failed attempt reports
constexpr double kResendSeconds = 10;  // unacknowledged telemetry and statuses go again
constexpr double kDrainSeconds = 5;    // on shutdown, for the last acknowledgements

double Mono() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

std::string Key(const std::string& run, int32_t attempt) { return absl::StrCat(run, "/", attempt); }

// Run ids name directories: only the coordinator's own form ("r" and digits) is taken.
bool ValidRunId(const std::string& id) {
  if (id.size() < 2 || id.size() > 20 || id[0] != 'r') return false;
  return std::all_of(id.begin() + 1, id.end(), [](char c) { return c >= '0' && c <= '9'; });
}

int64_t Rows(const v1::TelemetryBatch& b) {
  return int64_t{b.scalars_size()} + b.entropy_size() + b.decisions_size() + b.checkpoints_size();
}

}  // namespace

std::string CheckWritable(const std::string& dir_name) {
  const fs::path dir(dir_name);
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return absl::StrCat("cannot create ", dir.string(), ": ", ec.message());
  const fs::path probe = dir / absl::StrCat(".probe-", getpid());
  {
    std::ofstream f(probe);
    if (!(f << "probe") || !f.flush()) {
      return absl::StrCat("cannot write in ", dir.string(), ": ", std::strerror(errno));
    }
  }
  fs::remove(probe, ec);
  return "";
}

struct Worker::Conn {
  std::unique_ptr<v1::WorkerService::Stub> stub;
  grpc::ClientContext ctx;
  std::unique_ptr<grpc::ClientReaderWriter<v1::WorkerMessage, v1::CoordinatorMessage>> stream;
  std::mutex write_mu;
  bool finished = false;  // under write_mu: Finish was called, so no more writes

  // Any thread may write (relays, the replay, the ticker); a sender that took the connection
  // just before it ended gets false instead of writing to a finished stream.
  bool Write(const v1::WorkerMessage& m) {
    std::lock_guard<std::mutex> lock(write_mu);
    return !finished && stream->Write(m);
  }
};

struct Worker::Attempt {
  // The status acknowledgement and the shutdown may both want the relay thread finished.
  void JoinRelay() {
    std::lock_guard<std::mutex> lock(join_mu);
    if (relay.joinable()) relay.join();
  }

  std::string run_id, key;
  int32_t attempt = 0;
  std::vector<std::string> devices;
  std::unique_ptr<Child> child;
  std::string stderr_path;
  std::atomic<int64_t> step{0};
  int64_t next_sequence = 1;  // the relay thread's
  std::thread relay;
  std::mutex join_mu;
  // Guarded by Worker::mu_.
  bool cancel = false;  // the coordinator cancelled it
  double term_at = 0;   // SIGTERM sent (cancel or shutdown); SIGKILL after the grace period
  bool killed = false;
  bool ended = false;  // the child is gone; final_status says how
  v1::WorkerMessage final_status;
  double final_sent_at = -1;  // < 0: not sent on the current session
};

// The worker's counters and histograms (docs/metrics.md), on the registry of its endpoint.
struct Worker::Counters {
  explicit Counters(prometheus::Registry& r)
      : sessions(prometheus::BuildCounter()
                     .Name("sgt_worker_sessions_total")
                     .Help("Sessions opened with the coordinator (the first, then reconnects).")
                     .Register(r)
                     .Add({})),
        exits(prometheus::BuildCounter()
                  .Name("sgt_worker_run_exits_total")
                  .Help("sgt-train children that ended, by the run state reported.")
                  .Register(r)),
        rows(prometheus::BuildCounter()
                 .Name("sgt_worker_telemetry_rows_total")
                 .Help("Telemetry rows read from the children's event streams.")
                 .Register(r)
                 .Add({})),
        sent(prometheus::BuildCounter()
                 .Name("sgt_worker_telemetry_batches_sent_total")
                 .Help("Telemetry batches sent to the coordinator (replays and tries included).")
                 .Register(r)
                 .Add({})),
        ack(prometheus::BuildHistogram()
                .Name("sgt_worker_telemetry_ack_seconds")
                .Help("From sending a telemetry batch to its acknowledgement.")
                .Register(r)
                .Add({}, metrics::LatencyBuckets())) {
    for (const char* state : {"succeeded", "paused", "failed", "cancelled", "lost"}) {
      exits.Add({{"state", state}});
    }
  }

  // A batch goes out now (again, for a replay): noted before the send, which its
  // acknowledgement may overtake.
  void Sending(const v1::TelemetryBatch& b) {
    sent.Increment();
    std::lock_guard<std::mutex> lock(mu);
    sent_at[{b.run_id(), b.attempt(), b.sequence()}] = Mono();
  }
  void Acked(const v1::TelemetryAck& a) {
    std::lock_guard<std::mutex> lock(mu);
    auto it = sent_at.find({a.run_id(), a.attempt(), a.sequence()});
    if (it == sent_at.end()) return;
    ack.Observe(Mono() - it->second);
    sent_at.erase(it);
  }
  // A new session: batches sent on the old one are never acknowledged there.
  void NewSession() {
    sessions.Increment();
    std::lock_guard<std::mutex> lock(mu);
    sent_at.clear();
  }

  prometheus::Counter& sessions;
  prometheus::Family<prometheus::Counter>& exits;
  prometheus::Counter& rows;
  prometheus::Counter& sent;
  prometheus::Histogram& ack;
  std::mutex mu;
  std::map<std::tuple<std::string, int32_t, int64_t>, double> sent_at;
};

Worker::Worker(WorkerOptions options, std::unique_ptr<Spool> spool)
    : o_(std::move(options)), spool_(std::move(spool)) {
  if (o_.metrics != nullptr) counters_ = std::make_unique<Counters>(*o_.metrics);
  std::shared_ptr<grpc::ChannelCredentials> creds = grpc::InsecureChannelCredentials();
  if (!o_.tls_ca_pem.empty()) {
    grpc::SslCredentialsOptions ssl;
    ssl.pem_root_certs = o_.tls_ca_pem;
    creds = grpc::SslCredentials(ssl);
  }
  grpc::ChannelArguments args;
  // The channel's own reconnect backoff stays short; the worker's loop paces the retries.
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
  args.SetMaxSendMessageSize(16 << 20);
  channel_ = grpc::CreateCustomChannel(o_.coordinator, creds, args);
}

Worker::~Worker() {
  Stop();
  if (ticker_.joinable()) ticker_.join();
}

std::vector<prometheus::MetricFamily> Worker::Gauges() {
  metrics::Families f;
  std::lock_guard<std::mutex> lock(mu_);
  f.Gauge("sgt_worker_connected", "1 while the worker holds a session with the coordinator.", {},
          conn_ != nullptr ? 1 : 0);
  std::map<std::pair<std::string, std::string>, int> devices;
  for (const v1::Device& d : o_.devices) {
    devices[{d.kind(), "free"}] += 0;
    devices[{d.kind(), "busy"}] += 0;
    devices[{d.kind(), busy_.count(d.id()) ? "busy" : "free"}] += 1;
  }
  for (const auto& [key, n] : devices) {
    f.Gauge("sgt_worker_devices", "This worker's devices, by kind and state (free, busy).",
            {{"kind", key.first}, {"state", key.second}}, n);
  }
  int alive = 0;
  for (const auto& [key, a] : attempts_) alive += a->ended ? 0 : 1;
  f.Gauge("sgt_worker_runs_active", "sgt-train children alive.", {}, alive);
  f.Gauge("sgt_worker_spool_bytes", "Bytes of the telemetry spool's segment files.", {},
          static_cast<double>(spool_->Bytes()));
  f.Gauge("sgt_worker_spool_capacity_bytes", "The spool's bound (--spool-max-mb).", {},
          static_cast<double>(spool_->MaxBytes()));
  f.Gauge("sgt_worker_spool_batches", "Telemetry batches not yet acknowledged.", {},
          static_cast<double>(spool_->Pending()));
  return f.Take();
}

void Worker::Stop() {
  stopping_ = true;
  std::lock_guard<std::mutex> lock(mu_);
  if (registering_ != nullptr) registering_->TryCancel();
  cv_.notify_all();
}

// ---------------------------------------------------------------------------------------------
// The session.

void Worker::Run() {
  ticker_ = std::thread([this] { Tick(); });
  double backoff = 0.2;
  std::mt19937 jitter(static_cast<uint32_t>(getpid()));
  bool warned = false;
  while (!stopping_) {
    std::string error;
    std::shared_ptr<Conn> c = Connect(&error);
    if (!c) {
      if (!warned)
        log::Warn(kLog, "cannot reach the coordinator at ", o_.coordinator, ": ", error,
                  "; retrying with backoff");
      warned = true;
      const double wait = backoff * std::uniform_real_distribution<double>(0.8, 1.2)(jitter);
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait_for(lock, std::chrono::duration<double>(wait), [&] { return stopping_.load(); });
      // Never longer than a heartbeat interval (a third of the lease): a coordinator that
      // restarts gives workers one lease to come back.
      backoff = std::min({backoff * 2, o_.max_backoff_s, static_cast<double>(heartbeat_s_)});
      continue;
    }
    warned = false;
    backoff = 0.2;
    Serve(c);
  }
  ticker_.join();  // it stops the children and drains first
  std::thread replay;
  {
    std::lock_guard<std::mutex> lock(mu_);
    replay = std::move(replay_thread_);
  }
  if (replay.joinable()) replay.join();
}

std::shared_ptr<Worker::Conn> Worker::Connect(std::string* error) {
  auto c = std::make_shared<Conn>();
  c->stub = v1::WorkerService::NewStub(channel_);
  grpc::ClientContext rctx;
  if (!o_.token.empty()) rctx.AddMetadata("authorization", "Bearer " + o_.token);
  {
    // Short: a call made while the channel is still connecting waits out its deadline, and a
    // restarted coordinator gives a worker only one lease to come back.
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_) {
      *error = "stopping";
      return nullptr;
    }
    rctx.set_deadline(std::chrono::system_clock::now() +
                      std::chrono::seconds(std::clamp(heartbeat_s_, 1, 5)));
    registering_ = &rctx;
  }
  v1::RegisterRequest reg;
  reg.set_name(o_.name);
  reg.set_hostname(o_.hostname);
  reg.set_version("sgt-worker");
  for (const v1::Device& d : o_.devices) *reg.add_devices() = d;
  v1::RegisterResponse rr;
  grpc::Status s = c->stub->Register(&rctx, reg, &rr);
  {
    std::lock_guard<std::mutex> lock(mu_);
    registering_ = nullptr;
  }
  if (!s.ok()) {
    *error = s.error_message().empty() ? "unreachable" : s.error_message();
    return nullptr;
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    worker_id_ = rr.worker_id();
    heartbeat_s_ = std::max(1, rr.heartbeat_seconds());
  }
  if (!o_.token.empty()) c->ctx.AddMetadata("authorization", "Bearer " + o_.token);
  c->stream = c->stub->Session(&c->ctx);
  v1::WorkerMessage hello;
  hello.mutable_hello()->set_worker_id(rr.worker_id());
  for (const v1::RunRef& r : Held()) *hello.mutable_hello()->add_runs() = r;
  if (!c->Write(hello)) {
    grpc::Status fs = c->stream->Finish();
    *error = absl::StrCat("the session closed at once: ", fs.error_message());
    return nullptr;
  }
  return c;
}

void Worker::Serve(const std::shared_ptr<Conn>& conn) {
  std::string id;
  {
    std::lock_guard<std::mutex> lock(mu_);
    conn_ = conn;
    last_received_ = last_heartbeat_ = Mono();
    id = worker_id_;
    // A new session has seen none of the final statuses.
    for (auto& [key, a] : attempts_) a->final_sent_at = -1;
    // Connected after the shutdown finished (Stop came while connecting): nothing will end this
    // session but this.
    if (shut_down_) conn->ctx.TryCancel();
  }
  log::Info(kLog, "connected to ", o_.coordinator, " as ", id, " (", o_.devices.size(),
            " device(s))");
  if (counters_) counters_->NewSession();
  StartReplay();
  v1::CoordinatorMessage m;
  while (conn->stream->Read(&m)) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      last_received_ = Mono();
    }
    Handle(m);
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (conn_ == conn) conn_.reset();
  }
  conn->ctx.TryCancel();
  std::lock_guard<std::mutex> wlock(conn->write_mu);  // no Write in flight past this point
  conn->finished = true;
  grpc::Status s = conn->stream->Finish();
  if (!stopping_) {
    log::Warn(kLog, "session with ", o_.coordinator, " ended (",
              s.ok() ? std::string("closed") : s.error_message(), "); reconnecting");
  }
}

bool Worker::Send(const v1::WorkerMessage& m) {
  std::shared_ptr<Conn> c;
  {
    std::lock_guard<std::mutex> lock(mu_);
    c = conn_;
  }
  return c != nullptr && c->Write(m);
}

std::vector<v1::RunRef> Worker::Held(bool unreported_only) {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<v1::RunRef> out;
  for (const auto& [key, a] : attempts_) {
    if (unreported_only && a->final_sent_at >= 0) continue;
    v1::RunRef r;
    r.set_run_id(a->run_id);
    r.set_attempt(a->attempt);
    r.set_step(a->step);
    out.push_back(std::move(r));
  }
  return out;
}

// Replay on its own thread, so that the session goes on reading acknowledgements (a worker that
// sent a long spool without reading would have its session cancelled by the coordinator); one
// replay at a time.
void Worker::StartReplay() {
  std::thread old;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (replaying_) return;
    replaying_ = true;
    old = std::move(replay_thread_);
  }
  if (old.joinable()) old.join();  // finished: replaying_ was false
  // Made under the lock, which the thread needs before it can clear replaying_.
  std::lock_guard<std::mutex> lock(mu_);
  replay_thread_ = std::thread([this] {
    Replay();
    std::lock_guard<std::mutex> lock(mu_);
    replaying_ = false;
  });
}

// Everything the coordinator has not acknowledged, then the final statuses that wait for it.
void Worker::Replay() {
  absl::Status s = spool_->ForEachUnacked([&](const v1::TelemetryBatch& b) {
    v1::WorkerMessage m;
    *m.mutable_telemetry() = b;
    if (counters_) counters_->Sending(b);
    Send(m);
  });
  if (!s.ok()) log::Error(kLog, "replaying the spool: ", s.message());
  std::vector<std::string> keys;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& [key, a] : attempts_) keys.push_back(key);
  }
  for (const std::string& k : keys) MaybeSendFinal(k);
}

void Worker::Handle(const v1::CoordinatorMessage& m) {
  switch (m.kind_case()) {
    case v1::CoordinatorMessage::kStart:
      Start(m.start());
      break;
    case v1::CoordinatorMessage::kCommand:
      Command(m.command());
      break;
    case v1::CoordinatorMessage::kAck: {
      const v1::TelemetryAck& a = m.ack();
      if (!a.error().empty()) {
        log::Warn(kLog, "the coordinator refused telemetry batch ", a.sequence(), " of ",
                  a.run_id(), " attempt ", a.attempt(), ": ", a.error());
      }
      spool_->Ack(a.run_id(), a.attempt(), a.sequence());
      if (counters_) counters_->Acked(a);
      MaybeSendFinal(Key(a.run_id(), a.attempt()));
      break;
    }
    case v1::CoordinatorMessage::kStatusAck: {
      const v1::StatusAck& a = m.status_ack();
      std::shared_ptr<Attempt> done;
      {
        std::lock_guard<std::mutex> lock(mu_);
        auto it = attempts_.find(Key(a.run_id(), a.attempt()));
        if (it != attempts_.end() && it->second->ended &&
            it->second->final_status.status().state() == a.state()) {
          done = std::move(it->second);
          attempts_.erase(it);
          cv_.notify_all();
        }
      }
      if (!a.error().empty()) {
        log::Warn(kLog, "the coordinator did not take the status of ", a.run_id(), " attempt ",
                  a.attempt(), ": ", a.error());
      }
      if (done) done->JoinRelay();
      break;
    }
    case v1::CoordinatorMessage::kLease:
    case v1::CoordinatorMessage::KIND_NOT_SET:
      break;
  }
}

// Heartbeats, a coordinator gone silent, cancel grace periods, resends; and the shutdown.
void Worker::Tick() {
  while (true) {
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait_for(lock, std::chrono::milliseconds(250), [&] { return stopping_.load(); });
    }
    if (stopping_) break;
    const double now = Mono();
    std::shared_ptr<Conn> conn;
    bool heartbeat = false, silent = false, resend = false;
    std::vector<std::string> finals;
    {
      std::lock_guard<std::mutex> lock(mu_);
      conn = conn_;
      if (conn) {
        heartbeat = now - last_heartbeat_ >= heartbeat_s_;
        if (heartbeat) last_heartbeat_ = now;
        // The coordinator answers every heartbeat with a lease renewal.
        silent = now - last_received_ > std::max(3.0 * heartbeat_s_, 5.0);
        resend = spool_->OldestAgeSeconds() > kResendSeconds && now - last_resend_ > kResendSeconds;
        if (resend) last_resend_ = now;
      }
      for (auto& [key, a] : attempts_) {
        if (a->term_at > 0 && !a->ended && !a->killed && now - a->term_at >= o_.cancel_grace_s) {
          log::Warn(kLog, a->run_id, " attempt ", a->attempt, " still runs ", o_.cancel_grace_s,
                    " s after SIGTERM; sending SIGKILL");
          a->child->Signal(SIGKILL);
          a->killed = true;
        }
        if (a->ended && a->final_sent_at >= 0 && now - a->final_sent_at > kResendSeconds) {
          a->final_sent_at = -1;
          finals.push_back(key);
        }
      }
    }
    if (silent) {
      log::Warn(kLog, "no word from the coordinator for ", std::max(3.0 * heartbeat_s_, 5.0),
                " s; reconnecting");
      conn->ctx.TryCancel();
      continue;
    }
    if (heartbeat) {
      v1::WorkerMessage hb;
      hb.mutable_heartbeat();
      // Not the attempts whose final status went on this session: the coordinator has it
      // before this heartbeat, and would take a listed attempt for one still running.
      for (const v1::RunRef& r : Held(/*unreported_only=*/true)) {
        *hb.mutable_heartbeat()->add_runs() = r;
      }
      Send(hb);
    }
    if (resend) StartReplay();
    for (const std::string& k : finals) MaybeSendFinal(k);
  }
  StopChildren();
}

// ---------------------------------------------------------------------------------------------
// Attempts.

void Worker::Reject(const v1::StartRun& s, v1::RunState state, const std::string& reason) {
  log::Warn(kLog, s.run_id(), " attempt ", s.attempt(), ": ", reason);
  v1::WorkerMessage m;
  v1::RunStatus* st = m.mutable_status();
  st->set_run_id(s.run_id());
  st->set_attempt(s.attempt());
  st->set_state(state);
  st->set_reason(reason);
  Send(m);
}

void Worker::Start(const v1::StartRun& s) {
  if (!ValidRunId(s.run_id()) || s.attempt() < 1) {
    log::Warn(kLog, "StartRun for run '", s.run_id(), "' attempt ", s.attempt(),
              " ignored: not a run id and attempt a coordinator gives");
    return;
  }
  std::string id;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (attempts_.count(Key(s.run_id(), s.attempt()))) return;  // already running it
    id = worker_id_;
  }
  if (stopping_) return Reject(s, v1::RUN_STATE_LOST, absl::StrCat(id, " is shutting down"));
  json cfg = json::parse(s.config_json(), nullptr, /*allow_exceptions=*/false);
  if (!cfg.is_object()) {
    return Reject(s, v1::RUN_STATE_FAILED, "config_json is not a JSON object");
  }
  std::string kind = "cpu";
  if (cfg.contains("train") && cfg["train"].is_object() && cfg["train"].contains("device") &&
      cfg["train"]["device"].is_string()) {
    kind = cfg["train"]["device"].get<std::string>();
  }
  // Devices: the coordinator's bookkeeping says they are free; check.
  const int want = std::max(1, s.devices());
  std::vector<std::string> picked;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (const v1::Device& d : o_.devices) {
      if (static_cast<int>(picked.size()) < want && d.kind() == kind && !busy_.count(d.id())) {
        picked.push_back(d.id());
      }
    }
  }
  if (static_cast<int>(picked.size()) < want) {
    return Reject(s, v1::RUN_STATE_LOST,
                  absl::StrCat(id, " has ", picked.size(), " free ", kind,
                               " device(s), the run needs ", want, "; back to the queue"));
  }
  // A resume point from the wire is only opened inside the checkpoint root.
  std::string resume;
  if (!s.resume_checkpoint().empty()) {
    absl::StatusOr<std::string> p = ConfinedPath(o_.checkpoint_root, s.resume_checkpoint());
    if (!p.ok()) {
      return Reject(s, v1::RUN_STATE_FAILED,
                    absl::StrCat("resume checkpoint refused on ", id, ": ", p.status().message(),
                                 "; workers resume only from their --checkpoint-root"));
    }
    std::error_code ec;
    if (!fs::is_regular_file(*p, ec)) {
      return Reject(s, v1::RUN_STATE_FAILED,
                    absl::StrCat("resume checkpoint ", *p, " is not a file on ", id,
                                 "; is the checkpoint root shared between the workers?"));
    }
    resume = *p;
  }
  const std::string tag = absl::StrCat("attempt-", s.attempt());
  const fs::path dir = fs::path(o_.work_dir) / "runs" / s.run_id() / tag;
  const fs::path ckdir = fs::path(o_.checkpoint_root) / s.run_id() / tag;
  std::error_code ec;
  fs::remove_all(dir, ec);  // left by an earlier worker process: that attempt is over
  if (std::string why = CheckWritable(dir.string()); !why.empty()) {
    return Reject(
        s, v1::RUN_STATE_FAILED,
        absl::StrCat("work directory on ", id, " is not writable: ", why,
                     "; fix its permissions or start the worker with another --work-dir"));
  }
  if (std::string why = CheckWritable(ckdir.string()); !why.empty()) {
    return Reject(
        s, v1::RUN_STATE_FAILED,
        absl::StrCat("checkpoint root ", o_.checkpoint_root, " is not writable on ", id, ": ", why,
                     "; fix its permissions or start the worker with another "
                     "--checkpoint-root"));
  }
  const fs::path config = dir / "config.json";
  if (!(std::ofstream(config) << s.config_json() << "\n")) {
    return Reject(s, v1::RUN_STATE_FAILED, absl::StrCat("cannot write ", config.string()));
  }
  ChildSpec spec;
  spec.argv = {o_.train_program,   "--config",     config.string(), "--out",       dir.string(),
               "--checkpoint-dir", ckdir.string(), "--events-fd",   "{events_fd}", "--no-progress"};
  if (!resume.empty()) spec.argv.insert(spec.argv.end(), {"--resume", resume});
  if (kind == "cpu") {
    spec.argv.insert(spec.argv.end(), {"--set", absl::StrCat("train.threads=", want)});
  } else {
    std::vector<std::string> idx;
    for (const std::string& d : picked) idx.push_back(d.substr(d.find(':') + 1));
    spec.env.push_back(absl::StrCat("CUDA_VISIBLE_DEVICES=", absl::StrJoin(idx, ",")));
  }
  spec.stdout_path = (dir / "stdout.log").string();
  spec.stderr_path = (dir / "stderr.log").string();
  absl::StatusOr<std::unique_ptr<Child>> child = Child::Spawn(spec);
  if (!child.ok()) {
    return Reject(s, v1::RUN_STATE_FAILED,
                  absl::StrCat("cannot start ", o_.train_program, " on ", id, ": ",
                               child.status().message()));
  }
  auto a = std::make_shared<Attempt>();
  a->run_id = s.run_id();
  a->attempt = s.attempt();
  a->key = Key(s.run_id(), s.attempt());
  a->devices = picked;
  a->child = std::move(*child);
  a->stderr_path = spec.stderr_path;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (const std::string& d : picked) busy_[d] = a->key;
    attempts_[a->key] = a;
  }
  log::Info(kLog, s.run_id(), " attempt ", s.attempt(), " (", s.name(), ") started as pid ",
            a->child->pid(), " on ", absl::StrJoin(picked, ","),
            resume.empty() ? std::string() : absl::StrCat(", resuming ", resume));
  v1::WorkerMessage running;
  running.mutable_status()->set_run_id(a->run_id);
  running.mutable_status()->set_attempt(a->attempt);
  running.mutable_status()->set_state(v1::RUN_STATE_RUNNING);
  Send(running);
  a->relay = std::thread([this, a] { Relay(a); });
}

void Worker::Command(const v1::RunCommand& c) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = attempts_.find(Key(c.run_id(), c.attempt()));
  if (it == attempts_.end() || it->second->ended) {
    log::Debug(kLog, "command for ", c.run_id(), " attempt ", c.attempt(), " ignored: not running");
    return;
  }
  Attempt& a = *it->second;
  switch (c.kind()) {
    case v1::RunCommand::KIND_PAUSE:
      log::Info(kLog, a.run_id, ": pause at the next growth boundary (SIGUSR2)");
      a.child->Signal(SIGUSR2);
      break;
    case v1::RunCommand::KIND_SNAPSHOT:
      log::Info(kLog, a.run_id, ": snapshot at the next growth boundary (SIGUSR1)");
      a.child->Signal(SIGUSR1);
      break;
    case v1::RunCommand::KIND_CANCEL:
      if (a.cancel) break;
      log::Info(kLog, a.run_id, ": cancelled (SIGTERM; SIGKILL after ", o_.cancel_grace_s, " s)");
      a.cancel = true;
      a.term_at = Mono();
      a.child->Signal(SIGTERM);
      break;
    default:
      log::Warn(kLog, "unknown command kind ", static_cast<int>(c.kind()), " for ", a.run_id);
  }
}

// Reads the child's events until it is gone, sending them as batches through the spool.
void Worker::Relay(std::shared_ptr<Attempt> a) {
  EventTranslator t(o_.checkpoint_root);
  v1::TelemetryBatch batch;
  double first_row_at = 0;
  std::string buf;
  std::vector<char> chunk(1 << 16);
  const int fd = a->child->events_fd();
  auto add = [&](std::string_view line) {
    if (line.empty()) return;
    if (absl::Status s = t.Add(line, &batch); !s.ok()) {
      log::Warn(kLog, a->run_id, " attempt ", a->attempt, ": event skipped: ", s.message());
    }
    a->step = t.step();
    if (Rows(batch) > 0 && first_row_at == 0) first_row_at = Mono();
    if (t.flush_now() || Rows(batch) >= kBatchRows) {
      Flush(*a, batch);
      first_row_at = 0;
    }
  };
  while (true) {
    int timeout_ms = -1;
    if (first_row_at > 0) {
      timeout_ms = std::max(0, static_cast<int>(1000 * (first_row_at + kBatchSeconds - Mono())));
    }
    pollfd p{fd, POLLIN, 0};
    const int r = ::poll(&p, 1, timeout_ms);
    if (r < 0 && errno != EINTR) break;
    if (r > 0) {
      const ssize_t n = ::read(fd, chunk.data(), chunk.size());
      if (n == 0) break;  // every writer is gone: the child exited
      if (n < 0 && errno != EINTR && errno != EAGAIN) break;
      if (n > 0) {
        buf.append(chunk.data(), static_cast<size_t>(n));
        size_t start = 0;
        for (size_t nl; (nl = buf.find('\n', start)) != std::string::npos; start = nl + 1) {
          add(std::string_view(buf).substr(start, nl - start));
        }
        buf.erase(0, start);
      }
    }
    if (first_row_at > 0 && Mono() - first_row_at >= kBatchSeconds) {
      Flush(*a, batch);
      first_row_at = 0;
    }
  }
  add(buf);  // a last line without its newline
  Flush(*a, batch);
  const int status = a->child->Wait();
  Ended(*a, status, t);
  MaybeSendFinal(a->key);
}

void Worker::Flush(Attempt& a, v1::TelemetryBatch& batch) {
  if (Rows(batch) == 0) return;
  batch.set_run_id(a.run_id);
  batch.set_attempt(a.attempt);
  batch.set_sequence(a.next_sequence++);
  // Waits while the spool is full (the child then waits on its pipe); gives up on shutdown.
  absl::Status s = spool_->Append(batch, [this] { return stopping_.load(); });
  if (!s.ok() && !absl::IsCancelled(s)) {
    log::Error(kLog, "spool: ", s.message(), "; sending batch ", batch.sequence(), " of ", a.run_id,
               " unspooled");
  }
  if (counters_) counters_->rows.Increment(static_cast<double>(Rows(batch)));
  v1::WorkerMessage m;
  *m.mutable_telemetry() = std::move(batch);
  // Not sent now: it goes with the next replay.
  if (!absl::IsCancelled(s)) {
    if (counters_) counters_->Sending(m.telemetry());
    Send(m);
  }
  batch.Clear();
}

void Worker::Ended(Attempt& a, int st, const EventTranslator& t) {
  const std::string how = Child::DescribeExit(st);
  v1::WorkerMessage m;
  v1::RunStatus* s = m.mutable_status();
  s->set_run_id(a.run_id);
  s->set_attempt(a.attempt);
  s->set_step(t.step());
  std::lock_guard<std::mutex> lock(mu_);
  for (const std::string& d : a.devices) busy_.erase(d);
  const bool clean = WIFEXITED(st) && WEXITSTATUS(st) == 0;
  if (stopping_ && !a.cancel && !(clean && t.ended())) {
    s->set_state(v1::RUN_STATE_LOST);
    s->set_reason(absl::StrCat(worker_id_, " shut down; the run goes back to the queue"));
  } else if (a.cancel) {
    s->set_state(v1::RUN_STATE_CANCELLED);
    s->set_reason(
        a.killed ? absl::StrCat("cancelled (killed after ", o_.cancel_grace_s, " s of SIGTERM)")
                 : "cancelled");
  } else if (clean && t.end_status() == "paused") {
    s->set_state(v1::RUN_STATE_PAUSED);
    s->set_summary_json(t.summary_json());
    s->set_reason(absl::StrCat("paused at step ", t.step(), " on ", worker_id_));
  } else if (clean && t.end_status() == "succeeded") {
    s->set_state(v1::RUN_STATE_SUCCEEDED);
    s->set_summary_json(t.summary_json());
  } else {
    s->set_state(v1::RUN_STATE_FAILED);
    const std::string tail = Child::Tail(a.stderr_path, kStderrTail);
    // The last line sgt-train printed says why, in its words ("sgt-train: token file ...").
    std::string last;
    for (absl::string_view line : absl::StrSplit(tail, '\n')) {
      line = absl::StripAsciiWhitespace(line);
      if (!line.empty()) last = std::string(line);
    }
    std::string reason;
    if (!t.error().empty()) {
      reason = absl::StrCat(t.error(), " at step ", t.step());
    } else if (clean) {
      reason = "sgt-train exited without reporting an end";
    } else if (!last.empty() && WIFEXITED(st)) {
      reason = std::string(absl::StripPrefix(last, "sgt-train: "));
    } else {
      reason = absl::StrCat("sgt-train crashed at step ", t.step());
    }
    s->set_reason(absl::StrCat(reason, " (", how, " on ", worker_id_, ")"));
    s->set_stderr_tail(tail);
  }
  if (counters_) {
    std::string state = absl::AsciiStrToLower(
        absl::StripPrefix(v1::RunState_Name(s->state()), "RUN_STATE_"));
    counters_->exits.Add({{"state", state}}).Increment();
  }
  log::Info(kLog, a.run_id, " attempt ", a.attempt, " ended: ", v1::RunState_Name(s->state()),
            " at step ", t.step(), " (", how, ")");
  a.final_status = std::move(m);
  a.ended = true;
  cv_.notify_all();
}

// The final status goes once every batch of the attempt is acknowledged, so that the
// coordinator has the attempt's telemetry before it hears how it ended.
void Worker::MaybeSendFinal(const std::string& key) {
  v1::WorkerMessage m;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = attempts_.find(key);
    if (it == attempts_.end()) return;
    Attempt& a = *it->second;
    if (!a.ended || a.final_sent_at >= 0 || spool_->Pending(a.run_id, a.attempt) > 0) return;
    a.final_sent_at = Mono();
    m = a.final_status;
  }
  if (!Send(m)) {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = attempts_.find(key);
    if (it != attempts_.end()) it->second->final_sent_at = -1;
  }
}

// SIGTERM to every child, SIGKILL after the grace period; their statuses (lost) and telemetry
// get a few seconds to be acknowledged; then the session is closed.
void Worker::StopChildren() {
  v1::WorkerMessage drain;
  drain.mutable_heartbeat()->set_draining(true);
  for (const v1::RunRef& r : Held(/*unreported_only=*/true))
    *drain.mutable_heartbeat()->add_runs() = r;
  Send(drain);  // before the lost statuses below free its devices at the coordinator
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& [key, a] : attempts_) {
      if (a->ended) continue;
      log::Info(kLog, "stopping ", a->run_id, " attempt ", a->attempt, " (SIGTERM)");
      a->term_at = Mono();
      a->child->Signal(SIGTERM);
    }
  }
  auto wait_for = [&](double seconds, const std::function<bool()>& done) {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait_for(lock, std::chrono::duration<double>(seconds), done);
  };
  wait_for(o_.cancel_grace_s, [&] {
    return std::all_of(attempts_.begin(), attempts_.end(),
                       [](auto& kv) { return kv.second->ended; });
  });
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& [key, a] : attempts_) {
      if (!a->ended) a->child->Signal(SIGKILL);
    }
  }
  wait_for(kDrainSeconds, [&] { return attempts_.empty() || conn_ == nullptr; });
  std::shared_ptr<Conn> conn;
  std::map<std::string, std::shared_ptr<Attempt>> left;
  {
    std::lock_guard<std::mutex> lock(mu_);
    shut_down_ = true;
    conn = conn_;
    left = attempts_;
  }
  if (conn) conn->ctx.TryCancel();
  for (auto& [key, a] : left) a->JoinRelay();
}

}  // namespace sgt::worker
