// The coordinator's logic: sweeps, runs and their state machine, workers and their leases,
// scheduling, telemetry ingestion. No gRPC server types: service.cc adapts this class to the
// wire, so everything here can be tested with plain calls and a real SQLite store.
//
// State lives in the Store; this class keeps a cache of sweeps, runs and workers, changed only
// after the store accepted the change, so a failed write leaves both as they were.
//
//   auto c = Coordinator::Create(store.get(), opts);
//   absl::StatusOr<v1::SubmitSweepResponse> r = (*c)->SubmitSweep(request);
//   (*c)->Tick();  // leases and scheduling; the daemon calls it from a timer thread
#ifndef SGT_SERVICES_COORDINATOR_COORDINATOR_H_
#define SGT_SERVICES_COORDINATOR_COORDINATOR_H_

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "services/coordinator/metrics.h"
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

// The fleet at one moment, for the metrics endpoint.
struct FleetCounts {
  int workers_connected = 0;
  int workers_registered = 0;
  std::map<std::pair<std::string, std::string>, int> devices;  // (kind, free|busy) -> count
  std::map<std::string, int> runs;                               // state name -> count
  int queue_depth = 0;
};

// Where commands to one connected worker go. The gRPC session implements it; Send returns
// false once the stream is gone.
class WorkerSink {
 public:
  virtual ~WorkerSink() = default;
  virtual bool Send(const v1::CoordinatorMessage& message) = 0;
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
  absl::StatusOr<v1::SubmitSweepResponse> SubmitSweep(const v1::SubmitSweepRequest& req);
  v1::ListSweepsResponse ListSweeps();
  absl::StatusOr<v1::GetSweepResponse> GetSweep(const v1::GetSweepRequest& req);
  absl::StatusOr<v1::ListRunsResponse> ListRuns(const v1::ListRunsRequest& req);
  absl::StatusOr<v1::GetRunResponse> GetRun(const v1::GetRunRequest& req);
  absl::StatusOr<v1::ActionResponse> Pause(const v1::ActionRequest& req);
  absl::StatusOr<v1::ActionResponse> Resume(const v1::ActionRequest& req);
  absl::StatusOr<v1::ActionResponse> Snapshot(const v1::ActionRequest& req);
  absl::StatusOr<v1::ActionResponse> Cancel(const v1::ActionRequest& req);
  absl::StatusOr<v1::EditResponse> Edit(const v1::EditRequest& req);
  absl::StatusOr<v1::ForkResponse> Fork(const v1::ForkRequest& req);
  v1::ListWorkersResponse ListWorkers();

  // Watch: the runs of `target` changed after version `*seen` (all of them when *seen is 0),
  // waiting up to `timeout_s` for a change; updates *seen. *done is set when every watched run
  // has ended.
  absl::StatusOr<std::vector<v1::Run>> WatchRuns(const std::string& target, uint64_t* seen,
                                                 double timeout_s, bool* done);
  // Numeric run ids of a run or sweep target, for telemetry queries.
  absl::StatusOr<std::vector<int64_t>> ResolveRuns(const std::string& target);

  // --- Worker API (worker.proto).
  absl::StatusOr<v1::RegisterResponse> Register(const v1::RegisterRequest& req);
  // Opens the session of a registered worker (the stream's first message, a Hello). Replaces
  // the worker's previous session if it still had one. Returns a session number for the calls
  // below.
  absl::StatusOr<uint64_t> OpenSession(const v1::Hello& hello, std::shared_ptr<WorkerSink> sink);
  // Handles one message of an open session. Errors are the worker's fault (bad run id, ...):
  // the session stays open; the service logs them.
  absl::Status HandleWorkerMessage(uint64_t session, const v1::WorkerMessage& msg);
  void CloseSession(uint64_t session);

  // Expires leases (their runs become lost and are re-queued or failed) and schedules queued
  // runs. Also called after every change that could start a run.
  void Tick();

  // Wakes blocked WatchRuns calls so the server can shut down.
  void Shutdown();

  int32_t lease_seconds() const { return options_.lease_seconds; }

  // Takes the lock; for metrics scrapes.
  FleetCounts Fleet();

 private:
  struct WorkerState;
  struct Outbox;
  Coordinator(Store* store, CoordinatorOptions options);

  // All below run with mu_ held, except where marked.
  double Now() const;
  void Bump(int64_t run_id);
  absl::Status Transition(RunRow& run, v1::RunState to, const std::string& reason);
  absl::Status Requeue(RunRow& run, v1::RunState via, const std::string& reason,
                       bool count_restart = true);
  absl::Status AfterLoss(RunRow& run, bool was_pausing, const std::string& reason,
                         bool count_restart);
  void RecoverStranded();
  absl::StatusOr<std::vector<RunRow*>> Targets(const std::string& target);
  // Takes the lock. One action over a run or a sweep's runs: `applies` picks the runs it changes,
  // `act` changes one (transition, commands). A run target it does not apply to is refused as
  // FAILED_PRECONDITION naming `need`; a sweep's other runs are listed as unchanged.
  absl::StatusOr<v1::ActionResponse> Act(const v1::ActionRequest& req, const char* verb,
                                         const char* need,
                                         const std::function<bool(const RunRow&)>& applies,
                                         const std::function<absl::Status(RunRow&, Outbox&)>& act);
  v1::Run ToProto(const RunRow& r) const;
  v1::Sweep ToProto(const SweepRow& s) const;
  v1::Worker ToProto(const WorkerState& w) const;
  void Release(const std::string& worker_id, int64_t run_id);
  // Starts the run's metric series if it is active and has none yet. `past_to_step`: growth
  // decisions up to that step are read from the store (0: none; -1: all).
  void TrackMetrics(const RunRow& run, int64_t past_to_step);
  // Whether the run has a growth boundary after its current step (where pause and snapshot
  // take effect).
  bool BoundaryAhead(const RunRow& r) const;
  void ExpireLeases(Outbox& out);
  void StopUnwanted(WorkerState& w, const v1::RunRef& ref, Outbox& out);
  void Schedule(Outbox& out);
  void Command(Outbox& out, const RunRow& run, v1::RunCommand::Kind kind);
  // Whether the attempt `ref` that worker `w` reports is one the coordinator gave it and still
  // wants run (else the worker is told to cancel it).
  bool Wants(const WorkerState& w, const v1::RunRef& ref) const;
  absl::Status HandleStatus(WorkerState& w, const v1::RunStatus& st, Outbox& out);
  absl::Status IngestTelemetry(uint64_t session, const v1::TelemetryBatch& b);  // takes mu_
  absl::StatusOr<WorkerState*> RenewLease(uint64_t session);  // ABORTED if the session is gone
  void Reconcile(WorkerState& w, const std::vector<v1::RunRef>& held, Outbox& out);
  void Flush(Outbox& out);  // sends outside the lock
  // Schedules, releases `lock` (on mu_) and sends what scheduling produced: the end of every
  // client call that may have made room or work.
  void ScheduleAndFlush(std::unique_lock<std::mutex>& lock);

  Store* store_;
  CoordinatorOptions options_;
  std::mutex mu_;
  std::condition_variable changed_;
  uint64_t version_ = 1;
  bool shutdown_ = false;
  std::map<int64_t, SweepRow> sweeps_;
  std::map<int64_t, RunRow> runs_;
  std::map<int64_t, uint64_t> run_version_;
  std::map<int64_t, std::pair<std::string, std::string>> device_kind_;  // run -> (hash, kind)
  std::map<std::string, std::unique_ptr<WorkerState>> workers_;
  std::map<uint64_t, std::string> sessions_;  // session -> worker id
  uint64_t next_session_ = 1;
  int64_t next_worker_ = 1;
  FairScheduler scheduler_;
  double started_at_ = 0;
};

}  // namespace sgt::coord

#endif  // SGT_SERVICES_COORDINATOR_COORDINATOR_H_
