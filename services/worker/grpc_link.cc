// The worker's gRPC link to the coordinator: register with backoff, serve the session stream,
// heartbeats, silence, spool replay (grpc_link.h).
#include "services/worker/grpc_link.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <random>
#include <utility>

#include "absl/strings/str_cat.h"
#include "grpcpp/grpcpp.h"
#include "services/common/log.h"

namespace sgt::worker {

namespace v1 = sgt::v1;

namespace {

constexpr char kLog[] = "worker";
constexpr double kResendSeconds = 10;  // unacknowledged telemetry goes again

double Mono() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

}  // namespace

struct GrpcLink::Conn {
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

GrpcLink::GrpcLink(LinkOptions options, Spool& spool) : o_(std::move(options)), spool_(spool) {
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

GrpcLink::~GrpcLink() {
  Stop();
  std::thread replay;
  {
    std::lock_guard<std::mutex> lock(mu_);
    replay = std::move(replay_thread_);
  }
  if (replay.joinable()) replay.join();
}

void GrpcLink::Stop() {
  stopping_ = true;
  std::lock_guard<std::mutex> lock(mu_);
  if (registering_ != nullptr) registering_->TryCancel();
  cv_.notify_all();
}

void GrpcLink::Close() {
  Stop();
  std::shared_ptr<Conn> conn;
  {
    std::lock_guard<std::mutex> lock(mu_);
    closed_ = true;
    conn = conn_;
  }
  if (conn) conn->ctx.TryCancel();
}

bool GrpcLink::Connected() {
  std::lock_guard<std::mutex> lock(mu_);
  return conn_ != nullptr;
}

bool GrpcLink::Send(const v1::WorkerMessage& m) {
  std::shared_ptr<Conn> c;
  {
    std::lock_guard<std::mutex> lock(mu_);
    c = conn_;
  }
  return c != nullptr && c->Write(m);
}

void GrpcLink::Run(LinkHandler& handler) {
  handler_ = &handler;
  std::thread ticker([this] { Tick(); });
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
  ticker.join();
  std::thread replay;
  {
    std::lock_guard<std::mutex> lock(mu_);
    replay = std::move(replay_thread_);
  }
  if (replay.joinable()) replay.join();
}

std::shared_ptr<GrpcLink::Conn> GrpcLink::Connect(std::string* error) {
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
    // Wait for the channel to connect rather than fail at once while it is in transient
    // failure: the waiting call drives the reconnection (every 0.1-1 s, the channel's backoff
    // above), so a coordinator that listens again is rejoined within about a second. A call
    // that fails fast leaves the channel to retry on gRPC's backup poll, every 5 s.
    rctx.set_wait_for_ready(true);
    registering_ = &rctx;
  }
  v1::RegisterRequest reg;
  reg.set_name(o_.name);
  reg.set_hostname(o_.hostname);
  reg.set_version("sgt-worker");
  for (const v1::Device& d : o_.devices) *reg.add_devices() = d;
  reg.set_rendezvous_host(o_.rendezvous.host);
  reg.set_rendezvous_port_base(o_.rendezvous.port_base);
  reg.set_rendezvous_port_count(o_.rendezvous.port_count);
  v1::RegisterResponse rr;
  grpc::Status s = c->stub->Register(&rctx, reg, &rr);
  {
    std::lock_guard<std::mutex> lock(mu_);
    registering_ = nullptr;
  }
  if (!s.ok()) {
    if (s.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED) {
      *error = "no connection (nothing listening there yet, or the network is down)";
    } else {
      *error = s.error_message().empty() ? "unreachable" : s.error_message();
    }
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
  for (const v1::RunRef& r : handler_->Held(/*unreported_only=*/false)) {
    *hello.mutable_hello()->add_runs() = r;
  }
  if (!c->Write(hello)) {
    grpc::Status fs = c->stream->Finish();
    *error = absl::StrCat("the session closed at once: ", fs.error_message());
    return nullptr;
  }
  return c;
}

void GrpcLink::Serve(const std::shared_ptr<Conn>& conn) {
  std::string id;
  {
    std::lock_guard<std::mutex> lock(mu_);
    id = worker_id_;
  }
  // Before the session can carry anything: a final status sent from here on counts as sent on
  // it (one sent before fails, conn_ being unset, and is kept for the replay).
  handler_->SessionOpened(id);
  {
    std::lock_guard<std::mutex> lock(mu_);
    conn_ = conn;
    last_received_ = last_heartbeat_ = Mono();
    // Connected after the shutdown finished (Stop came while connecting): nothing will end this
    // session but this.
    if (closed_) conn->ctx.TryCancel();
  }
  log::Info(kLog, "connected to ", o_.coordinator, " as ", id, " (", o_.devices.size(),
            " device(s))");
  if (o_.metrics) o_.metrics->NewSession();
  StartReplay();
  v1::CoordinatorMessage m;
  while (conn->stream->Read(&m)) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      last_received_ = Mono();
    }
    handler_->Handle(m);
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (conn_ == conn) conn_.reset();
  }
  handler_->SessionClosed();
  conn->ctx.TryCancel();
  std::lock_guard<std::mutex> wlock(conn->write_mu);  // no Write in flight past this point
  conn->finished = true;
  grpc::Status s = conn->stream->Finish();
  if (!stopping_) {
    log::Warn(kLog, "session with ", o_.coordinator, " ended (",
              s.ok() ? std::string("closed") : s.error_message(), "); reconnecting");
  }
}

// Replay on its own thread, so that the session goes on reading acknowledgements (a worker that
// sent a long spool without reading would have its session cancelled by the coordinator); one
// replay at a time.
void GrpcLink::StartReplay() {
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
void GrpcLink::Replay() {
  absl::Status s = spool_.ForEachUnacked([&](const v1::TelemetryBatch& b) {
    v1::WorkerMessage m;
    *m.mutable_telemetry() = b;
    if (o_.metrics) o_.metrics->Sending(b);
    Send(m);
  });
  if (!s.ok()) log::Error(kLog, "replaying the spool: ", s.message());
  handler_->Replayed();
}

// Heartbeats, a coordinator gone silent, telemetry resends; until Stop.
void GrpcLink::Tick() {
  while (true) {
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait_for(lock, std::chrono::milliseconds(250), [&] { return stopping_.load(); });
    }
    if (stopping_) break;
    const double now = Mono();
    std::shared_ptr<Conn> conn;
    bool heartbeat = false, silent = false, resend = false;
    {
      std::lock_guard<std::mutex> lock(mu_);
      conn = conn_;
      if (conn) {
        heartbeat = now - last_heartbeat_ >= heartbeat_s_;
        if (heartbeat) last_heartbeat_ = now;
        // The coordinator answers every heartbeat with a lease renewal.
        silent = now - last_received_ > std::max(3.0 * heartbeat_s_, 5.0);
        resend = spool_.OldestAgeSeconds() > kResendSeconds && now - last_resend_ > kResendSeconds;
        if (resend) last_resend_ = now;
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
      for (const v1::RunRef& r : handler_->Held(/*unreported_only=*/true)) {
        *hb.mutable_heartbeat()->add_runs() = r;
      }
      Send(hb);
    }
    if (resend) StartReplay();
  }
}

}  // namespace sgt::worker
