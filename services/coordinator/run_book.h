// The sweeps and runs the coordinator holds, and every change to a run: the run lifecycle's
// state. A cache of the store, changed only after the store accepted the change, so a failed
// write leaves both as they were. Every state change goes through Transition, which checks it
// against the state machine (run_state.h) before storing it.
//
// Not thread-safe: the coordinator owns one and calls it with its lock held. Metric
// observations are left in the caller's Outbox, for after the lock is released.
#ifndef SGT_SERVICES_COORDINATOR_RUN_BOOK_H_
#define SGT_SERVICES_COORDINATOR_RUN_BOOK_H_

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "nlohmann/json_fwd.hpp"
#include "services/coordinator/metrics.h"
#include "services/coordinator/outbox.h"
#include "services/coordinator/run_state.h"
#include "services/coordinator/store.h"
#include "sgt/v1/coordinator.pb.h"

namespace sgt::coord {

class RunBook {
 public:
  // `store` and `metrics` (null: none) outlive the book; `clock` gives seconds since the epoch.
  RunBook(Store* store, CoordinatorMetrics* metrics, std::function<double()> clock);

  // Loads every sweep and run from the store.
  absl::Status Load();

  std::map<int64_t, SweepRow>& sweeps() { return sweeps_; }
  const std::map<int64_t, SweepRow>& sweeps() const { return sweeps_; }
  std::map<int64_t, RunRow>& runs() { return runs_; }
  const std::map<int64_t, RunRow>& runs() const { return runs_; }
  RunRow* Find(int64_t run_id);
  const RunRow* Find(int64_t run_id) const;
  // The runs of a target: "r<N>" (one run) or "s<N>" (a sweep's runs). NOT_FOUND for an id
  // that does not exist, INVALID_ARGUMENT for text that is no id.
  absl::StatusOr<std::vector<RunRow*>> Targets(const std::string& target);

  // Versions, for watches: the book's newest, and the one at which a run last changed.
  uint64_t version() const { return version_; }
  uint64_t version_of(int64_t run_id) const;
  void Bump(int64_t run_id);

  // --- Changes. Each is stored first; on a store error nothing changes (INTERNAL or
  // UNAVAILABLE, see FromStore).
  // A state change: checked against run_state.h, stored with its reason as a run event, and
  // only then applied to `run` (a row of this book).
  absl::Status Transition(RunRow& run, v1::RunState to, const std::string& reason, Outbox& out);
  // A run whose worker went away (via = LOST): back to the queue from its newest checkpoint, or
  // paused (it was pausing), or failed once it has used its restarts.
  absl::Status Requeue(RunRow& run, v1::RunState via, const std::string& reason, bool count_restart,
                       Outbox& out);
  // Where a lost run goes next (the second half of Requeue; also for runs a failed write left
  // in `lost`).
  absl::Status AfterLoss(RunRow& run, bool was_pausing, const std::string& reason,
                         bool count_restart, Outbox& out);
  // A changed row without a state change (priority, steps, reason, progress).
  absl::Status Update(const RunRow& next);
  absl::Status UpdateSweep(const SweepRow& next);
  // New rows; their ids are assigned by the store.
  absl::Status AddSweep(SweepRow& sweep, std::vector<RunRow>& runs, double now);
  absl::Status AddRun(RunRow& run, const RunEventRow& created);

  // --- Questions about a run.
  // The device kind the run trains on (train.device), read once per configuration.
  const std::string& DeviceKind(const RunRow& run);
  // Whether the run has a growth boundary after its current step (where pause and snapshot
  // take effect).
  bool BoundaryAhead(const RunRow& run) const;

  // Starts the run's metric series (after the lock) if it is active and has none yet.
  // `past_to_step`: growth decisions up to that step are read from the store (0: none; -1: all).
  void TrackMetrics(const RunRow& run, int64_t past_to_step, Outbox& out) const;

  v1::Run ToProto(const RunRow& r) const;
  v1::Sweep ToProto(const SweepRow& s) const;

 private:
  Store* store_;
  CoordinatorMetrics* metrics_;
  std::function<double()> clock_;
  uint64_t version_ = 1;
  std::map<int64_t, SweepRow> sweeps_;
  std::map<int64_t, RunRow> runs_;
  std::map<int64_t, uint64_t> run_version_;
  std::map<int64_t, std::pair<std::string, std::string>> device_kind_;  // run -> (hash, kind)
};

// The workers of a run's current attempt by node rank: worker_ids for a multi-node run, else
// {worker_id} (empty when the run is on no worker).
std::vector<std::string> NodesOf(const RunRow& run);
// The node rank `worker_id` has in the run's current attempt, or -1 when it holds no node.
int NodeRank(const RunRow& run, const std::string& worker_id);
// Forgets the workers of the run's attempt (it left them).
void ClearWorkers(RunRow& run);

// A store failure as the caller should see it: the coordinator's own trouble (INTERNAL, or
// UNAVAILABLE when SQLite is busy), never a code that means something else on the wire
// (FAILED_PRECONDITION from a constraint, PERMISSION_DENIED from a read-only file).
absl::Status FromStore(const absl::Status& s);

// A run's metrics from its summary.json (the end event), and from one scalar of a telemetry
// batch at `step`; fields the source does not carry are left as they are. Task scores: the
// summary's `tasks` replace the metrics' (at the summary's step); a task row (acc/<task>...,
// events::ParseTaskScalarName) at a newer step than the metrics' scores starts a new set, at an
// older one is ignored. At most 256 scores are kept.
void MetricsFromSummary(const nlohmann::json& summary, v1::RunMetrics* m);
void MetricFromScalar(const std::string& name, double value, v1::RunMetrics* m, int64_t step = 0);

// What a telemetry batch of the run's current attempt tells of its progress, applied to `run`,
// forward only: the step is the newest the batch or the run has seen (within resume_step..steps:
// a worker's numbers are not trusted), the resume point moves only to a newer checkpoint, and a
// scalar updates the metrics only if it is not older than the run's step. So batches may be
// applied in any order (two sessions of a worker during a session replacement, a batch replayed
// from the spool) and the run's progress never goes back.
void AdvanceProgress(const v1::TelemetryBatch& b, RunRow& run);

}  // namespace sgt::coord

#endif  // SGT_SERVICES_COORDINATOR_RUN_BOOK_H_
