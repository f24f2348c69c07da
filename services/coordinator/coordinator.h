// The coordinator: sweeps, runs and their state machine, workers and their leases, scheduling,
// telemetry ingestion. No gRPC server types: service.cc adapts this class to the wire, so
// everything here can be tested with plain calls and a real SQLite store.
//
// One lock (mu_) guards the state, which lives in two parts with one owner each: the RunBook
// (sweeps, runs, every transition; run_book.h) and the Fleet (workers, sessions, leases;
// fleet.h). This class is the API over them; its methods are defined by responsibility:
//   coordinator.cc  creation, queries, watches, ticks, and Flush (after the lock)
//   actions.cc      client actions: submit, pause, resume, snapshot, cancel, edit, fork
//   worker_api.cc   the worker protocol: register, sessions, heartbeats, run statuses
//   ingest.cc       telemetry batches (the store write runs without the lock)
//   dispatch.cc     scheduling queued runs onto workers, and recovery of stranded runs
// Under the lock nothing blocks: messages to workers and metric observations collect in an
// Outbox and happen after it is released. Lock annotations let clang check all of this
// (tests/lint/thread_safety.sh).
//
//   auto c = Coordinator::Create(store.get(), opts);
//   absl::StatusOr<v1::SubmitSweepResponse> r = (*c)->SubmitSweep(request);
//   (*c)->Tick();  // leases and scheduling; the daemon calls it from a timer thread
#ifndef SGT_SERVICES_COORDINATOR_COORDINATOR_H_
#define SGT_SERVICES_COORDINATOR_COORDINATOR_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "services/coordinator/autoscaler.h"
#include "services/coordinator/fleet.h"
#include "services/coordinator/metrics.h"
#include "services/coordinator/outbox.h"
#include "services/coordinator/run_book.h"
#include "services/coordinator/scheduler.h"
#include "services/coordinator/store.h"
#include "sgt/v1/coordinator.pb.h"
#include "sgt/v1/worker.pb.h"

namespace sgt::coord {

struct CoordinatorOptions {
  int32_t lease_seconds = 30;
  // Seconds since the epoch; tests pass a fake clock to expire leases without sleeping.
  std::function<double()> clock;
  // Where the run and fleet metrics go (docs/metrics.md); null: none. Outlives the coordinator.
  CoordinatorMetrics* metrics = nullptr;
};

class Coordinator {
 public:
  // Loads every sweep, run and worker from `store` (which must outlive the coordinator).
  // Workers loaded from the store get one lease from now to reconnect before their runs are
  // declared lost.
  static absl::StatusOr<std::unique_ptr<Coordinator>> Create(Store* store,
                                                             CoordinatorOptions options);
  ~Coordinator();

  // --- Client API (coordinator.proto). Errors: InvalidArgument, NotFound, FailedPrecondition.
  absl::StatusOr<v1::SubmitSweepResponse> SubmitSweep(const v1::SubmitSweepRequest& req)
      ABSL_LOCKS_EXCLUDED(mu_);
  v1::ListSweepsResponse ListSweeps() ABSL_LOCKS_EXCLUDED(mu_);
  absl::StatusOr<v1::GetSweepResponse> GetSweep(const v1::GetSweepRequest& req)
      ABSL_LOCKS_EXCLUDED(mu_);
  absl::StatusOr<v1::ListRunsResponse> ListRuns(const v1::ListRunsRequest& req)
      ABSL_LOCKS_EXCLUDED(mu_);
  absl::StatusOr<v1::GetRunResponse> GetRun(const v1::GetRunRequest& req) ABSL_LOCKS_EXCLUDED(mu_);
  absl::StatusOr<v1::ActionResponse> Pause(const v1::ActionRequest& req) ABSL_LOCKS_EXCLUDED(mu_);
  absl::StatusOr<v1::ActionResponse> Resume(const v1::ActionRequest& req) ABSL_LOCKS_EXCLUDED(mu_);
  absl::StatusOr<v1::ActionResponse> Snapshot(const v1::ActionRequest& req)
      ABSL_LOCKS_EXCLUDED(mu_);
  absl::StatusOr<v1::ActionResponse> Cancel(const v1::ActionRequest& req) ABSL_LOCKS_EXCLUDED(mu_);
  absl::StatusOr<v1::EditResponse> Edit(const v1::EditRequest& req) ABSL_LOCKS_EXCLUDED(mu_);
  absl::StatusOr<v1::ForkResponse> Fork(const v1::ForkRequest& req) ABSL_LOCKS_EXCLUDED(mu_);
  v1::ListWorkersResponse ListWorkers() ABSL_LOCKS_EXCLUDED(mu_);

  // ListRuns' and Watch's pages (coordinator.proto): runs per page by default and at most, and
  // the bytes after which a page ends (it always holds at least one run).
  static constexpr int kDefaultPageRuns = 500;
  static constexpr int kMaxPageRuns = 1000;
  static constexpr size_t kPageBytes = 2u << 20;
  // `runs` cut into Watch responses of at most kDefaultPageRuns runs and about kPageBytes, every
  // one but the last with `more` set, `done` on the last; one response when `runs` is empty.
  static std::vector<v1::WatchResponse> WatchPages(std::vector<v1::Run> runs, bool done);

  // Watch: the runs of `target` changed after version `*seen` (all of them when *seen is 0),
  // waiting up to `timeout_s` for a change; updates *seen. *done is set when every watched run
  // has ended.
  absl::StatusOr<std::vector<v1::Run>> WatchRuns(const std::string& target, uint64_t* seen,
                                                 double timeout_s, bool* done)
      ABSL_LOCKS_EXCLUDED(mu_);
  // Numeric run ids of a run or sweep target, for telemetry queries.
  absl::StatusOr<std::vector<int64_t>> ResolveRuns(const std::string& target)
      ABSL_LOCKS_EXCLUDED(mu_);

  // --- Worker API (worker.proto).
  absl::StatusOr<v1::RegisterResponse> Register(const v1::RegisterRequest& req)
      ABSL_LOCKS_EXCLUDED(mu_);
  // Opens the session of a registered worker (the stream's first message, a Hello). Replaces
  // the worker's previous session if it still had one. Returns a session number for the calls
  // below.
  absl::StatusOr<uint64_t> OpenSession(const v1::Hello& hello, std::shared_ptr<WorkerSink> sink)
      ABSL_LOCKS_EXCLUDED(mu_);
  // Handles one message of an open session. Errors are the worker's fault (bad run id, ...):
  // the session stays open; the service logs them.
  absl::Status HandleWorkerMessage(uint64_t session, const v1::WorkerMessage& msg)
      ABSL_LOCKS_EXCLUDED(mu_);
  void CloseSession(uint64_t session) ABSL_LOCKS_EXCLUDED(mu_);

  // Expires leases (their runs become lost and are re-queued or failed) and schedules queued
  // runs. Also called after every change that could start a run.
  void Tick() ABSL_LOCKS_EXCLUDED(mu_);

  // Wakes blocked WatchRuns calls so the server can shut down.
  void Shutdown() ABSL_LOCKS_EXCLUDED(mu_);

  int32_t lease_seconds() const { return options_.lease_seconds; }

  // Takes the lock; for metrics scrapes.
  FleetCounts Fleet() ABSL_LOCKS_EXCLUDED(mu_);

  // For the Slurm autoscaler (autoscaler.h): the queued runs of device kind `kind` that their
  // sweeps' max_concurrent lets start, highest priority first, and the free devices of that
  // kind on each connected worker that takes runs. Takes the lock briefly.
  ScaleDemand ScalingDemand(const std::string& kind) ABSL_LOCKS_EXCLUDED(mu_);

 private:
  Coordinator(Store* store, CoordinatorOptions options);

  double Now() const { return options_.clock(); }
  // Takes the lock. One action over a run or a sweep's runs: `applies` picks the runs it changes,
  // `act` changes one (transition, commands). A run target it does not apply to is refused as
  // FAILED_PRECONDITION naming `need`; a sweep's other runs are listed as unchanged.
  absl::StatusOr<v1::ActionResponse> Act(const v1::ActionRequest& req, const char* verb,
                                         const char* need,
                                         const std::function<bool(const RunRow&)>& applies,
                                         const std::function<absl::Status(RunRow&, Outbox&)>& act)
      ABSL_LOCKS_EXCLUDED(mu_);
  absl::Status HandleStatus(WorkerState& w, const v1::RunStatus& st, Outbox& out)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The status of a multi-node attempt from node `rank` > 0 of it: a success or a pause frees
  // that worker's devices only (node 0's status decides the run); a failure, a cancel or a loss
  // ends the attempt on every node.
  absl::Status HandleNodeStatus(WorkerState& w, int rank, RunRow& run, const v1::RunStatus& st,
                                Outbox& out) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Ends a multi-node `run` in `to` (failed, cancelled) because of worker `from`: stored first,
  // then the other nodes' workers are told to stop.
  absl::Status EndOnEveryNode(RunRow& run, const std::string& from, v1::RunState to,
                              const std::string& why, Outbox& out)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status IngestTelemetry(uint64_t session, const v1::TelemetryBatch& b)
      ABSL_LOCKS_EXCLUDED(mu_);
  // Places queued runs on workers with room (StartRun messages into `out`), and says why the
  // others wait when no worker could ever hold them.
  void Schedule(Outbox& out) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Runs that a failed store write left half-way, finished on a later tick.
  void RecoverStranded(Outbox& out) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Sends the messages and runs the metric observations of `out`; without the lock.
  void Flush(Outbox& out) ABSL_LOCKS_EXCLUDED(mu_);

  Store* store_;
  CoordinatorOptions options_;
  absl::Mutex mu_;
  RunBook book_ ABSL_GUARDED_BY(mu_);
  coord::Fleet fleet_ ABSL_GUARDED_BY(mu_);  // coord::, as Fleet() names the method here
  FairScheduler scheduler_ ABSL_GUARDED_BY(mu_);
  bool shutdown_ ABSL_GUARDED_BY(mu_) = false;
  double started_at_ = 0;
};

}  // namespace sgt::coord

#endif  // SGT_SERVICES_COORDINATOR_COORDINATOR_H_
