// The fleet: the workers the coordinator knows, their sessions, leases and heartbeats, the
// attempts each holds (and so its free devices), and what happens to a worker's runs when it
// reconnects without them, stops listing them or lets its lease expire.
//
// A multi-node attempt (a gang) is held on each of its workers, one node each. Losing any node
// (its worker's lease, a reconnect or heartbeats without it) loses the attempt on all of them:
// the other nodes are told to cancel it and the run is re-queued, as for a one-node run.
//
// Not thread-safe: the coordinator owns one and calls it with its lock held. Run changes go
// through the RunBook; messages to workers are left in the caller's Outbox.
#ifndef SGT_SERVICES_COORDINATOR_FLEET_H_
#define SGT_SERVICES_COORDINATOR_FLEET_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "services/coordinator/outbox.h"
#include "services/coordinator/run_book.h"
#include "services/coordinator/scheduler.h"
#include "services/coordinator/store.h"
#include "sgt/v1/coordinator.pb.h"
#include "sgt/v1/worker.pb.h"

namespace sgt::coord {

// Attempts one worker may list in a hello or heartbeat (a worker runs a few at once).
inline constexpr int kMaxHeldRuns = 1024;

// The fleet at one moment, for the metrics endpoint.
struct FleetCounts {
  int workers_connected = 0;
  int workers_registered = 0;
  std::map<std::pair<std::string, std::string>, int> devices;  // (kind, free|busy) -> count
  std::map<std::string, int> runs;                             // state name -> count
  int queue_depth = 0;
};

struct WorkerState {
  WorkerRow row;
  std::shared_ptr<WorkerSink> sink;  // null while disconnected
  uint64_t session = 0;
  double session_opened = 0;  // when the current session opened (the Slurm autoscaler's)
  double lease_expires = 0;
  struct Held {
    int32_t attempt = 0;
    int32_t devices = 0;
    std::string kind;
    double since = 0;  // when it was assigned (or, after a restart, loaded)
    int32_t node_rank = 0;
    int32_t master_port = 0;  // node 0 of a multi-node attempt: its rendezvous port here
  };
  std::map<int64_t, Held> held;  // run id -> the attempt this worker holds
  // (run id, attempt) of multi-node attempts whose part here, a node above 0, finished
  // (succeeded or paused) while node 0 was still finishing: no longer held, but not lost.
  std::set<std::pair<int64_t, int32_t>> finished_parts;
  bool draining = false;  // shutting down (its heartbeat says): nothing new for it
  // Attempts the worker still runs that the coordinator cancelled on it (superseded after a
  // lost lease, say): their devices stay busy until the worker stops listing them or reports
  // how they ended.
  std::map<std::pair<int64_t, int32_t>, Held> stopping;

  std::map<std::string, int32_t> Total() const;
  std::map<std::string, int32_t> Free() const;
  // Whether it takes part in multi-node runs (it announced a rendezvous address and ports).
  bool Rendezvous() const;
  // The lowest of its rendezvous ports that no attempt it holds (or still stops) as node 0
  // uses, or 0 when none is free; and how many are free.
  int32_t FreePort() const;
  int32_t FreePorts() const;
};

class Fleet {
 public:
  Fleet(Store* store, int32_t lease_seconds, std::function<double()> clock);

  // Loads the workers from the store; each gets one lease from `now` to come back before its
  // runs count as lost. Then counts the book's active runs as held by their workers.
  absl::Status Load(RunBook& book, double now);

  int32_t lease_seconds() const { return lease_seconds_; }
  int32_t heartbeat_seconds() const { return std::max(1, lease_seconds_ / 3); }
  const std::map<std::string, std::unique_ptr<WorkerState>>& workers() const { return workers_; }
  WorkerState* Find(const std::string& worker_id);
  // Connected, with a live lease.
  bool Connected(const std::string& worker_id) const;

  // --- Worker API.
  // Validates and stores a worker's registration (the same name keeps its id).
  absl::StatusOr<WorkerState*> Register(const v1::RegisterRequest& req);
  // Opens the session of a registered worker, replacing an older one; reconciles what it still
  // runs with what the book says it runs. Returns the session number.
  absl::StatusOr<uint64_t> Open(const v1::Hello& hello, std::shared_ptr<WorkerSink> sink,
                                RunBook& book, Outbox& out);
  void Close(uint64_t session);
  // Every message of a session renews its worker's lease. ABORTED if the session is gone.
  absl::StatusOr<WorkerState*> Renew(uint64_t session);
  // A heartbeat: attempts it no longer lists are lost, unwanted ones are stopped. Returns
  // whether runs were lost (scheduling may then place them again).
  absl::StatusOr<bool> Heartbeat(WorkerState& w, const v1::Heartbeat& hb, RunBook& book,
                                 Outbox& out);
  // Workers whose lease expired lose their runs; active runs of unknown workers too.
  void ExpireLeases(RunBook& book, Outbox& out);

  // --- Attempts.
  // `w` holds (a node of) the run's attempt. An older attempt of the run it still held is being
  // stopped: its devices stay busy until it ends.
  void Hold(WorkerState& w, int64_t run_id, WorkerState::Held held);
  // The attempt ended on the worker (a final status): its devices are free.
  void Ended(WorkerState& w, int64_t run_id, int32_t attempt);
  // A pause, snapshot or cancel of the run's current attempt, to each of its workers.
  void Command(const RunRow& run, v1::RunCommand::Kind kind, Outbox& out);
  // A cancel of the run's current attempt to every node's worker but `except` (the one that
  // reported the attempt's end; "" for none): the attempt cannot go on without all its ranks.
  // Their devices count busy until those workers report the attempt ended or stop listing it.
  void CancelOtherNodes(const RunRow& run, const std::string& except, Outbox& out);
  // The run's attempt is lost on `w` (a node of it): cancelled on its other nodes, and the run
  // re-queued (RunBook::Requeue, via LOST).
  void LoseAttempt(RunRow& run, const WorkerState& w, const std::string& reason, RunBook& book,
                   Outbox& out);

  // What the scheduler may place runs on: connected, live, not draining workers.
  std::vector<WorkerCapacity> Capacity() const;
  void Count(FleetCounts* f) const;
  v1::Worker ToProto(const WorkerState& w) const;

 private:
  double Now() const { return clock_(); }
  // Whether the attempt `ref` that `w` reports is one the coordinator gave it and still wants.
  bool Wants(const RunBook& book, const WorkerState& w, const v1::RunRef& ref) const;
  // Cancels an attempt the worker runs but should not; its devices count busy meanwhile.
  void StopUnwanted(RunBook& book, WorkerState& w, const v1::RunRef& ref, Outbox& out);
  void Reconcile(WorkerState& w, const std::vector<v1::RunRef>& held, RunBook& book, Outbox& out);
  // An attempt the worker lists (`source`: its hello or a heartbeat) is running, whether or not
  // its RUNNING status arrived (it may have gone on a session that broke): an assigned run is
  // recorded as running, which writes its attempt row and supersedes the telemetry an older
  // attempt logged after the checkpoint this one resumed from.
  void LearnRunning(const WorkerState& w, RunRow& r, const char* source, RunBook& book,
                    Outbox& out);

  Store* store_;
  int32_t lease_seconds_;
  std::function<double()> clock_;
  std::map<std::string, std::unique_ptr<WorkerState>> workers_;
  std::map<uint64_t, std::string> sessions_;  // session -> worker id
  uint64_t next_session_ = 1;
  int64_t next_worker_ = 1;
};

// A pause, snapshot or cancel of one attempt.
v1::CoordinatorMessage CommandMessage(v1::RunCommand::Kind kind, const std::string& run_id,
                                      int32_t attempt);

}  // namespace sgt::coord

#endif  // SGT_SERVICES_COORDINATOR_FLEET_H_
