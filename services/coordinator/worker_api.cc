// The worker protocol of the coordinator (worker.proto): registration, sessions, heartbeats
// and run statuses. Sessions and leases are the Fleet's; what a status does to a run is here.
#include <algorithm>
#include <chrono>
#include <utility>

#include "absl/strings/str_cat.h"
#include "libsgt/core/event_log.h"
#include "nlohmann/json.hpp"
#include "services/common/ids.h"
#include "services/common/log.h"
#include "services/coordinator/coordinator.h"

namespace sgt::coord {

namespace {

using json = nlohmann::json;

constexpr char kLog[] = "coordinator";

// Observes how long handling one worker message took, when it goes out of scope.
class MessageTimer {
 public:
  MessageTimer(CoordinatorMetrics* m, const char* kind)
      : m_(m), kind_(kind), start_(std::chrono::steady_clock::now()) {}
  ~MessageTimer() {
    if (m_ == nullptr) return;
    m_->WorkerMessage(
        kind_, std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count());
  }
  MessageTimer(const MessageTimer&) = delete;
  MessageTimer& operator=(const MessageTimer&) = delete;

 private:
  CoordinatorMetrics* m_;
  const char* kind_;
  std::chrono::steady_clock::time_point start_;
};

const char* MessageKind(const v1::WorkerMessage& m) {
  switch (m.kind_case()) {
    case v1::WorkerMessage::kHello:
      return "hello";
    case v1::WorkerMessage::kHeartbeat:
      return "heartbeat";
    case v1::WorkerMessage::kStatus:
      return "status";
    case v1::WorkerMessage::kTelemetry:
      return "telemetry";
    default:
      return "other";
  }
}

}  // namespace

absl::StatusOr<v1::RegisterResponse> Coordinator::Register(const v1::RegisterRequest& req) {
  v1::RegisterResponse resp;
  absl::MutexLock lock(&mu_);
  absl::StatusOr<WorkerState*> w = fleet_.Register(req);
  if (!w.ok()) return w.status();
  resp.set_worker_id((*w)->row.id);
  resp.set_lease_seconds(fleet_.lease_seconds());
  resp.set_heartbeat_seconds(fleet_.heartbeat_seconds());
  return resp;
}

absl::StatusOr<uint64_t> Coordinator::OpenSession(const v1::Hello& hello,
                                                  std::shared_ptr<WorkerSink> sink) {
  MessageTimer timer(options_.metrics, "hello");
  Outbox out;
  absl::StatusOr<uint64_t> session;
  {
    absl::MutexLock lock(&mu_);
    session = fleet_.Open(hello, std::move(sink), book_, out);
    if (session.ok()) Schedule(out);
  }
  Flush(out);
  return session;
}

void Coordinator::CloseSession(uint64_t session) {
  absl::MutexLock lock(&mu_);
  fleet_.Close(session);
}

absl::Status Coordinator::HandleWorkerMessage(uint64_t session, const v1::WorkerMessage& msg) {
  MessageTimer timer(options_.metrics, MessageKind(msg));
  if (msg.has_telemetry()) return IngestTelemetry(session, msg.telemetry());
  Outbox out;
  absl::Status status;
  {
    absl::MutexLock lock(&mu_);
    absl::StatusOr<WorkerState*> ws = fleet_.Renew(session);
    if (!ws.ok()) return ws.status();
    WorkerState& w = **ws;
    switch (msg.kind_case()) {
      case v1::WorkerMessage::kHeartbeat: {
        absl::StatusOr<bool> lost = fleet_.Heartbeat(w, msg.heartbeat(), book_, out);
        if (!lost.ok()) return lost.status();
        if (*lost) Schedule(out);
        break;
      }
      case v1::WorkerMessage::kStatus: {
        status = HandleStatus(w, msg.status(), out);
        // Acknowledged unless the store failed (then the worker sends it again later).
        if (status.ok() || status.code() == absl::StatusCode::kInvalidArgument ||
            status.code() == absl::StatusCode::kNotFound) {
          v1::CoordinatorMessage ack;
          v1::StatusAck* a = ack.mutable_status_ack();
          a->set_run_id(msg.status().run_id());
          a->set_attempt(msg.status().attempt());
          a->set_state(msg.status().state());
          a->set_error(std::string(status.message()));
          out.Add(w.sink, ack);
        }
        Schedule(out);
        break;
      }
      case v1::WorkerMessage::kTelemetry:  // handled above, without the lock
        break;
      case v1::WorkerMessage::kHello:
        status =
            absl::InvalidArgumentError("hello: only the first message of a session is a hello");
        break;
      case v1::WorkerMessage::KIND_NOT_SET:
        status = absl::InvalidArgumentError(
            "message: empty; one of heartbeat, status, telemetry (worker.proto)");
        break;
    }
  }
  Flush(out);
  return status;
}

absl::Status Coordinator::HandleStatus(WorkerState& w, const v1::RunStatus& st, Outbox& out) {
  const int64_t rid = ParseId(st.run_id(), 'r');
  RunRow* found = book_.Find(rid);
  if (found == nullptr) {
    return absl::NotFoundError(absl::StrCat("status: run '", st.run_id(), "' not found"));
  }
  RunRow& run = *found;
  json summary;
  if (!st.summary_json().empty()) {
    summary = json::parse(st.summary_json(), nullptr, /*allow_exceptions=*/false);
    if (summary.is_discarded() || !summary.is_object()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "status of ", st.run_id(), ": summary_json is not a JSON object; send summary.json"));
    }
  }
  const bool ended_on_worker =
      st.state() == v1::RUN_STATE_PAUSED || st.state() == v1::RUN_STATE_LOST || IsEnded(st.state());
  const int rank = NodeRank(run, w.row.id);
  const bool current = run.attempt == st.attempt() && rank >= 0;
  if (ended_on_worker) fleet_.Ended(w, rid, st.attempt());
  if (!current || IsEnded(run.state)) {
    log::Debug(kLog, "status of ", st.run_id(), " attempt ", st.attempt(), " ignored (",
               current ? "run already ended" : "not its current attempt", ")");
    return absl::OkStatus();
  }
  if (rank > 0) return HandleNodeStatus(w, rank, run, st, out);
  // Changes go to a copy; the book's Transition stores it and only then replaces its row.
  RunRow r = run;
  if (st.step() > r.step) r.step = std::min(st.step(), r.steps);
  int64_t summary_step = -1;  // the step the attempt stopped after, per its summary
  if (summary.is_object()) {
    r.summary_json = st.summary_json();
    MetricsFromSummary(summary, &r.metrics);
    if (summary.contains(events::summary::kStep) &&
        summary[events::summary::kStep].is_number_integer()) {
      summary_step =
          std::clamp(summary[events::summary::kStep].get<int64_t>(), r.resume_step, r.steps);
      r.step = summary_step;
    }
  }
  v1::RunState to = st.state();
  std::string reason = st.reason();
  switch (st.state()) {
    case v1::RUN_STATE_RUNNING:
      if (run.state != v1::RUN_STATE_ASSIGNED) {
        if (r.step != run.step) {
          run.step = r.step;
          book_.Bump(run.id);
        }
        return absl::OkStatus();
      }
      reason = absl::StrCat("running on ", w.row.id, " (attempt ", r.attempt, ")");
      break;
    case v1::RUN_STATE_PAUSED:
      // A paused attempt's checkpoint is at the step it stopped after.
      if (summary.is_object() && summary.contains(events::summary::kLastCheckpoint) &&
          summary[events::summary::kLastCheckpoint].is_string() && summary_step > 0 &&
          summary_step < r.steps) {
        r.resume_checkpoint = summary[events::summary::kLastCheckpoint].get<std::string>();
        r.resume_step = summary_step;
      }
      if (reason.empty()) reason = absl::StrCat("paused at step ", r.step);
      break;
    case v1::RUN_STATE_SUCCEEDED:
      reason = absl::StrCat("finished ", r.step, " steps on ", w.row.id);
      break;
    case v1::RUN_STATE_FAILED:
      if (reason.empty()) reason = "failed";
      if (!st.stderr_tail().empty()) absl::StrAppend(&reason, "\nstderr tail:\n", st.stderr_tail());
      break;
    case v1::RUN_STATE_CANCELLED:
      if (reason.empty()) reason = "cancelled on the worker";
      break;
    case v1::RUN_STATE_LOST:  // the worker gave it up (shutting down): back to the queue now;
                              // one that never ran (still assigned) costs no restart
      fleet_.CancelOtherNodes(run, w.row.id, out);
      return book_.Requeue(run, v1::RUN_STATE_LOST,
                           reason.empty() ? absl::StrCat(w.row.id, " gave the run up") : reason,
                           /*count_restart=*/run.state != v1::RUN_STATE_ASSIGNED, out);
    default:
      return absl::InvalidArgumentError(absl::StrCat(
          "status of ", st.run_id(), ": state ", v1::RunState_Name(st.state()),
          " cannot come from a worker; RUNNING, PAUSED, SUCCEEDED, FAILED, CANCELLED or LOST"));
  }
  if (to != v1::RUN_STATE_RUNNING) ClearWorkers(r);
  // The copy's state is still the run's: the book checks and stores the change, then the row
  // with every other change of the status replaces the run's.
  if (absl::Status s = book_.Transition(r, to, reason, out); !s.ok()) return s;
  // A multi-node attempt that failed or was cancelled on node 0 cannot go on elsewhere (its
  // other ranks would wait in a collective): they are told to stop. A success or a pause ends
  // on every node by itself.
  if (to == v1::RUN_STATE_FAILED || to == v1::RUN_STATE_CANCELLED) {
    fleet_.CancelOtherNodes(run, w.row.id, out);
  }
  run = std::move(r);
  return absl::OkStatus();
}

absl::Status Coordinator::HandleNodeStatus(WorkerState& w, int rank, RunRow& run,
                                           const v1::RunStatus& st, Outbox& out) {
  const std::string node = absl::StrCat("node ", rank, " of ", run.nodes, " (", w.row.id, ")");
  std::string reason = st.reason();
  switch (st.state()) {
    case v1::RUN_STATE_RUNNING:  // node 0's status says the run runs
      return absl::OkStatus();
    case v1::RUN_STATE_SUCCEEDED:  // node 0's status decides the outcome; this node's devices
    case v1::RUN_STATE_PAUSED:     // are free (Fleet::Ended), and its part is not a loss
      w.finished_parts.insert({run.id, run.attempt});
      return absl::OkStatus();
    case v1::RUN_STATE_FAILED: {
      std::string why = absl::StrCat(node, " failed", reason.empty() ? "" : ": ", reason);
      if (!st.stderr_tail().empty()) absl::StrAppend(&why, "\nstderr tail:\n", st.stderr_tail());
      return EndOnEveryNode(run, w.row.id, v1::RUN_STATE_FAILED, why, out);
    }
    case v1::RUN_STATE_CANCELLED:
      return EndOnEveryNode(run, w.row.id, v1::RUN_STATE_CANCELLED,
                            absl::StrCat("cancelled on ", node, reason.empty() ? "" : ": ", reason),
                            out);
    case v1::RUN_STATE_LOST:
      fleet_.CancelOtherNodes(run, w.row.id, out);
      return book_.Requeue(run, v1::RUN_STATE_LOST,
                           absl::StrCat(node, " gave the run up", reason.empty() ? "" : ": ",
                                        reason, "; the other nodes were told to cancel"),
                           /*count_restart=*/run.state != v1::RUN_STATE_ASSIGNED, out);
    default:
      return absl::InvalidArgumentError(absl::StrCat(
          "status of ", st.run_id(), ": state ", v1::RunState_Name(st.state()),
          " cannot come from a worker; RUNNING, PAUSED, SUCCEEDED, FAILED, CANCELLED or LOST"));
  }
}

absl::Status Coordinator::EndOnEveryNode(RunRow& run, const std::string& from, v1::RunState to,
                                         const std::string& why, Outbox& out) {
  RunRow r = run;
  ClearWorkers(r);
  if (absl::Status s = book_.Transition(r, to, why, out); !s.ok()) return s;
  fleet_.CancelOtherNodes(run, from, out);
  run = std::move(r);
  return absl::OkStatus();
}

}  // namespace sgt::coord
