// The thin gRPC handlers of the coordinator (service.h): token check, proto in, Coordinator
// call, proto or status out; the worker session's stream and its sink.
#include "services/coordinator/service.h"

#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>

#include "absl/strings/str_cat.h"
#include "services/common/ids.h"
#include "services/common/log.h"

namespace sgt::coord {
namespace {

constexpr char kLog[] = "api";

// Compares without an early exit, so the time taken does not reveal how much of a token matched.
bool SameToken(const std::string& a, const std::string& b) {
  if (a.size() != b.size()) return false;
  unsigned char diff = 0;
  for (size_t i = 0; i < a.size(); ++i) diff |= static_cast<unsigned char>(a[i] ^ b[i]);
  return diff == 0;
}

// Where commands to a worker go: its Session stream. Send only queues: a writer thread of the
// session does the blocking Write, so a worker that stops reading holds up nobody but itself
// (not the scheduler, not client calls, not other workers). A queue that overflows means the
// worker is not reading: the session is cancelled and its lease decides what happens to its runs.
class StreamSink : public WorkerSink {
 public:
  StreamSink(grpc::ServerContext* ctx,
             grpc::ServerReaderWriter<v1::CoordinatorMessage, v1::WorkerMessage>* s)
      : ctx_(ctx), stream_(s), writer_([this] { Drain(); }) {}
  ~StreamSink() override { Close(); }

  bool Send(const v1::CoordinatorMessage& m) override {
    std::lock_guard<std::mutex> lock(mu_);
    if (closed_) return false;
    if (queue_.size() >= kMaxQueued) {
      log::Warn(kLog, "a worker is not reading its session (", kMaxQueued,
                " messages queued); cancelling the session");
      closed_ = true;
      ctx_->TryCancel();
      cv_.notify_all();
      return false;
    }
    queue_.push_back(m);
    cv_.notify_all();
    return true;
  }

  // Stops the writer; messages still queued are dropped (the stream is ending). Called by the
  // session's handler before it returns, so the stream outlives every Write.
  void Close() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      closed_ = true;
      if (writing_) ctx_->TryCancel();  // a Write blocked on a peer that does not read
      cv_.notify_all();
    }
    if (writer_.joinable()) writer_.join();
  }

 private:
  static constexpr size_t kMaxQueued = 10000;

  void Drain() {
    std::unique_lock<std::mutex> lock(mu_);
    while (true) {
      cv_.wait(lock, [&] { return closed_ || !queue_.empty(); });
      if (closed_) return;
      v1::CoordinatorMessage m = std::move(queue_.front());
      queue_.pop_front();
      writing_ = true;
      lock.unlock();
      const bool ok = stream_->Write(m);
      lock.lock();
      writing_ = false;
      if (!ok) closed_ = true;
    }
  }

  grpc::ServerContext* ctx_;
  grpc::ServerReaderWriter<v1::CoordinatorMessage, v1::WorkerMessage>* stream_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<v1::CoordinatorMessage> queue_;
  bool closed_ = false;
  bool writing_ = false;
  std::thread writer_;  // last: starts after the members it uses
};

}  // namespace

grpc::Status ToGrpc(const absl::Status& s) {
  if (s.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(s.code()), std::string(s.message()));
}

grpc::Status Authorize(const grpc::ServerContext& ctx, const AuthConfig& auth, Role role) {
  if (!auth.enabled()) return grpc::Status::OK;
  const auto& md = ctx.client_metadata();
  auto it = md.find("authorization");
  if (it == md.end()) {
    return grpc::Status(grpc::StatusCode::UNAUTHENTICATED,
                        "no bearer token; send metadata 'authorization: Bearer <token>' (sgtctl "
                        "--token-file, sgt-worker --token-file)");
  }
  const std::string value(it->second.data(), it->second.size());
  const std::string prefix = "Bearer ";
  const std::string token = value.rfind(prefix, 0) == 0 ? value.substr(prefix.size()) : "";
  const std::string& mine = role == Role::kClient ? auth.client_token : auth.worker_token;
  const std::string& other = role == Role::kClient ? auth.worker_token : auth.client_token;
  if (!token.empty() && SameToken(token, mine)) return grpc::Status::OK;
  if (!token.empty() && SameToken(token, other)) {
    return grpc::Status(grpc::StatusCode::PERMISSION_DENIED,
                        role == Role::kClient
                            ? "a worker token cannot call the client API; use the client token"
                            : "a client token cannot call the worker API; use the worker token");
  }
  return grpc::Status(grpc::StatusCode::UNAUTHENTICATED,
                      "the bearer token matches no token of this coordinator; check the token "
                      "file");
}

#define SGT_AUTHORIZE(role) \
  if (grpc::Status auth_status = Authorize(*ctx, auth_, role); !auth_status.ok()) return auth_status

// Unary handlers: authorize, call, convert.
#define SGT_UNARY(Method, Req, Resp, call)                                                       \
  grpc::Status ClientApi::Method(grpc::ServerContext* ctx, const v1::Req* req, v1::Resp* resp) { \
    SGT_AUTHORIZE(Role::kClient);                                                                \
    auto r = (call);                                                                             \
    if (!r.ok()) {                                                                               \
      log::Debug(kLog, #Method ": ", r.status().message());                                      \
      return ToGrpc(r.status());                                                                 \
    }                                                                                            \
    *resp = std::move(*r);                                                                       \
    return grpc::Status::OK;                                                                     \
  }

SGT_UNARY(SubmitSweep, SubmitSweepRequest, SubmitSweepResponse, c_->SubmitSweep(*req))
SGT_UNARY(GetSweep, GetSweepRequest, GetSweepResponse, c_->GetSweep(*req))
SGT_UNARY(ListRuns, ListRunsRequest, ListRunsResponse, c_->ListRuns(*req))
SGT_UNARY(GetRun, GetRunRequest, GetRunResponse, c_->GetRun(*req))
SGT_UNARY(Pause, ActionRequest, ActionResponse, c_->Pause(*req))
SGT_UNARY(Resume, ActionRequest, ActionResponse, c_->Resume(*req))
SGT_UNARY(Snapshot, ActionRequest, ActionResponse, c_->Snapshot(*req))
SGT_UNARY(Cancel, ActionRequest, ActionResponse, c_->Cancel(*req))
SGT_UNARY(Edit, EditRequest, EditResponse, c_->Edit(*req))
SGT_UNARY(Fork, ForkRequest, ForkResponse, c_->Fork(*req))
#undef SGT_UNARY

grpc::Status ClientApi::ListSweeps(grpc::ServerContext* ctx, const v1::ListSweepsRequest*,
                                   v1::ListSweepsResponse* resp) {
  SGT_AUTHORIZE(Role::kClient);
  *resp = c_->ListSweeps();
  return grpc::Status::OK;
}

grpc::Status ClientApi::ListWorkers(grpc::ServerContext* ctx, const v1::ListWorkersRequest*,
                                    v1::ListWorkersResponse* resp) {
  SGT_AUTHORIZE(Role::kClient);
  *resp = c_->ListWorkers();
  return grpc::Status::OK;
}

grpc::Status ClientApi::Watch(grpc::ServerContext* ctx, const v1::WatchRequest* req,
                              grpc::ServerWriter<v1::WatchResponse>* writer) {
  SGT_AUTHORIZE(Role::kClient);
  uint64_t seen = 0;
  while (!ctx->IsCancelled()) {
    bool done = false;
    absl::StatusOr<std::vector<v1::Run>> runs = c_->WatchRuns(req->target(), &seen, 1.0, &done);
    if (!runs.ok()) return ToGrpc(runs.status());  // includes UNAVAILABLE at shutdown
    if (!runs->empty() || done) {
      bool written = true;
      for (const v1::WatchResponse& page : Coordinator::WatchPages(std::move(*runs), done)) {
        if (!(written = writer->Write(page))) break;
      }
      if (!written) break;
    }
    if (done) break;
  }
  return grpc::Status::OK;
}

grpc::Status ClientApi::QueryTelemetry(grpc::ServerContext* ctx, const v1::TelemetryQuery* req,
                                       grpc::ServerWriter<v1::TelemetryPage>* writer) {
  SGT_AUTHORIZE(Role::kClient);
  if (req->kind() != v1::TELEMETRY_KIND_ENTROPY && req->kind() != v1::TELEMETRY_KIND_SCALARS &&
      req->kind() != v1::TELEMETRY_KIND_DECISIONS) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        "kind: required; ENTROPY, SCALARS or DECISIONS");
  }
  if (req->from_step() < 0 || req->to_step() < 0 ||
      (req->to_step() > 0 && req->to_step() < req->from_step())) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        absl::StrCat("from_step ", req->from_step(), ", to_step ", req->to_step(),
                                     ": steps are >= 0 (0: unbounded) and from <= to"));
  }
  absl::StatusOr<std::vector<int64_t>> runs = c_->ResolveRuns(req->target());
  if (!runs.ok()) return ToGrpc(runs.status());
  for (int64_t rid : *runs) {
    TelemetryFilter f;
    f.run_id = rid;
    f.from_step = req->from_step();
    f.to_step = req->to_step();
    f.all_attempts = req->all_attempts();
    do {
      if (ctx->IsCancelled()) return grpc::Status::CANCELLED;
      v1::TelemetryPage page;
      page.set_run_id(RunId(rid));
      int64_t next = 0;
      if (req->kind() == v1::TELEMETRY_KIND_ENTROPY) {
        absl::StatusOr<EntropyPage> p = store_->QueryEntropy(f);
        if (!p.ok()) return ToGrpc(p.status());
        for (v1::EntropyRow& row : p->rows) *page.add_entropy() = std::move(row);
        page.mutable_attempts()->Add(p->attempts.begin(), p->attempts.end());
        next = p->next;
      } else if (req->kind() == v1::TELEMETRY_KIND_SCALARS) {
        absl::StatusOr<ScalarPage> p = store_->QueryScalars(f);
        if (!p.ok()) return ToGrpc(p.status());
        for (v1::ScalarRow& row : p->rows) *page.add_scalars() = std::move(row);
        page.mutable_attempts()->Add(p->attempts.begin(), p->attempts.end());
        next = p->next;
      } else {
        absl::StatusOr<DecisionPage> p = store_->QueryDecisions(f);
        if (!p.ok()) return ToGrpc(p.status());
        for (v1::GrowthDecision& row : p->rows) *page.add_decisions() = std::move(row);
        page.mutable_attempts()->Add(p->attempts.begin(), p->attempts.end());
        next = p->next;
      }
      if (page.attempts_size() > 0 && !writer->Write(page)) return grpc::Status::CANCELLED;
      f.cursor = next;
    } while (f.cursor != 0);
  }
  return grpc::Status::OK;
}

grpc::Status WorkerApi::Register(grpc::ServerContext* ctx, const v1::RegisterRequest* req,
                                 v1::RegisterResponse* resp) {
  SGT_AUTHORIZE(Role::kWorker);
  absl::StatusOr<v1::RegisterResponse> r = c_->Register(*req);
  if (!r.ok()) return ToGrpc(r.status());
  *resp = std::move(*r);
  return grpc::Status::OK;
}

grpc::Status WorkerApi::Session(
    grpc::ServerContext* ctx,
    grpc::ServerReaderWriter<v1::CoordinatorMessage, v1::WorkerMessage>* stream) {
  SGT_AUTHORIZE(Role::kWorker);
  v1::WorkerMessage first;
  if (!stream->Read(&first)) return grpc::Status::OK;
  if (!first.has_hello()) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        "the first message of a session must be a hello with the worker id");
  }
  auto sink = std::make_shared<StreamSink>(ctx, stream);
  absl::StatusOr<uint64_t> session = c_->OpenSession(first.hello(), sink);
  if (!session.ok()) {
    sink->Close();
    return ToGrpc(session.status());
  }
  grpc::Status result = grpc::Status::OK;
  v1::WorkerMessage msg;
  while (stream->Read(&msg)) {
    absl::Status s = c_->HandleWorkerMessage(*session, msg);
    if (s.ok()) continue;
    log::Warn(kLog, "worker ", first.hello().worker_id(), ": ", s.message());
    if (s.code() == absl::StatusCode::kAborted) {  // the session was replaced or expired
      result = ToGrpc(s);
      break;
    }
  }
  sink->Close();
  c_->CloseSession(*session);
  return result;
}

#undef SGT_AUTHORIZE

}  // namespace sgt::coord
