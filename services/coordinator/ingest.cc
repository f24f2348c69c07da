// Telemetry ingestion (worker.proto TelemetryBatch): who may send a batch, what a batch may
// hold, and how it updates its run. The SQLite write, the bulk of the work, runs without the
// coordinator's lock so that client calls and other workers are not held up by ingestion.
#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "services/common/ids.h"
#include "services/common/telemetry.h"
#include "services/coordinator/coordinator.h"

namespace sgt::coord {

// A run's telemetry comes from the session that holds it, in order; but during a session
// replacement two sessions of one worker may each have a batch between the snapshot below and
// the update after the store write, so the update is applied again to the run as it is then,
// forward only (AdvanceProgress). Client actions (pause, cancel, edit) do not touch what
// telemetry updates (step, metrics, resume checkpoint).
absl::Status Coordinator::IngestTelemetry(uint64_t session, const v1::TelemetryBatch& b) {
  v1::CoordinatorMessage ack;
  ack.mutable_ack()->set_run_id(b.run_id());
  ack.mutable_ack()->set_attempt(b.attempt());
  ack.mutable_ack()->set_sequence(b.sequence());
  std::shared_ptr<WorkerSink> sink;
  RunRow next;
  bool current = false;
  uint64_t seen = 0;
  bool unknown_run = false;
  // What a batch may hold, whoever sent it: checked before the lock, reported after the
  // session's lease is renewed (a batch on a dead session is ABORTED whatever it holds).
  absl::Status refused = telemetry::ValidateBatch(b);
  const int64_t rid = ParseId(b.run_id(), 'r');
  {
    absl::MutexLock lock(&mu_);
    absl::StatusOr<WorkerState*> ws = fleet_.Renew(session);
    if (!ws.ok()) return ws.status();
    const WorkerState& w = **ws;
    sink = w.sink;
    const RunRow* r = book_.Find(rid);
    if (!refused.ok()) {
      // refused for what it is
    } else if (r == nullptr) {
      unknown_run = true;
    } else {
      // Only the worker that holds the current attempt may speak for it; older attempts' late
      // batches are history (stored, the run untouched); a future attempt does not exist.
      const bool owner = r->worker_id == w.row.id;
      const int rank = NodeRank(*r, w.row.id);
      if (b.attempt() == r->attempt && rank > 0) {
        // Node 0 reports a multi-node run's progress; the other ranks train the same model.
        refused = absl::InvalidArgumentError(
            absl::StrCat("telemetry of ", b.run_id(), " attempt ", b.attempt(), ": worker ",
                         w.row.id, " is node ", rank, " of the run; only node 0 (", r->worker_id,
                         ") sends its telemetry; batch refused"));
      } else if (b.attempt() > r->attempt ||
                 (b.attempt() == r->attempt && !owner && IsActive(r->state))) {
        refused = absl::InvalidArgumentError(
            absl::StrCat("telemetry of ", b.run_id(), " attempt ", b.attempt(), ": worker ",
                         w.row.id, " does not hold that attempt; batch refused"));
      } else {
        current = b.attempt() == r->attempt && owner && !IsEnded(r->state);
        seen = book_.version_of(rid);
        next = *r;
      }
    }
  }
  if (!refused.ok() || unknown_run) {
    // A batch refused for what it is, or with no run to store it under, will never be stored:
    // acknowledged with the reason, so that the worker drops it instead of sending it after
    // every reconnect.
    if (options_.metrics != nullptr) options_.metrics->TelemetryBatch("refused", b);
    if (!refused.ok()) ack.mutable_ack()->set_error(std::string(refused.message()));
    if (sink) sink->Send(ack);
    if (!refused.ok()) return refused;
    return absl::NotFoundError(
        absl::StrCat("telemetry: run '", b.run_id(), "' not found; batch dropped"));
  }
  if (current) {
    AdvanceProgress(b, next);
    next.updated_at = Now();
  }
  absl::StatusOr<bool> fresh = store_->AppendTelemetry(rid, b, Now(), current ? &next : nullptr);
  if (!fresh.ok()) return FromStore(fresh.status());  // not acknowledged: sent again later
  ack.mutable_ack()->set_duplicate(!*fresh);
  if (options_.metrics != nullptr) {
    options_.metrics->TelemetryBatch(*fresh ? "stored" : "duplicate", b);
  }
  bool applied = false;
  if (*fresh && current) {
    absl::MutexLock lock(&mu_);
    RunRow* r = book_.Find(rid);
    if (r != nullptr && r->attempt == b.attempt()) {
      AdvanceProgress(b, *r);
      r->updated_at = next.updated_at;
      // Another batch or a client action wrote the row meanwhile, so the store holds `next`
      // over a newer row: write the merged one again.
      if (book_.version_of(rid) != seen) (void)store_->UpdateRun(*r);
      book_.Bump(rid);
      applied = true;
    }
  }
  if (applied && options_.metrics != nullptr) options_.metrics->science().Ingest(rid, b);
  if (sink) sink->Send(ack);
  return absl::OkStatus();
}

}  // namespace sgt::coord
