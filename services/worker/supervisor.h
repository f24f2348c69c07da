// The supervisor of a worker's attempts (docs/worker.md, "Running an attempt" and "Data-parallel
// runs"): starts each attempt a StartRun gives as a group of sgt-train children, one per rank,
// passes the coordinator's commands on as signals to every rank, relays rank 0's event pipe as
// telemetry batches through the spool, ends the whole group when one rank fails, and reports how
// the attempt ended once every rank has exited, again until the coordinator acknowledges it. It
// knows the coordinator only through a Link (link.h): it sends WorkerMessages on it and is its
// LinkHandler.
//
//   Supervisor s(options, spool, link);
//   link.Run(s);             // on the main thread: s.Handle starts the children there
//   ... s.Stop(); s.StopChildren(); link.Close();
#ifndef SGT_SERVICES_WORKER_SUPERVISOR_H_
#define SGT_SERVICES_WORKER_SUPERVISOR_H_

#include <atomic>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "services/worker/attempt_rules.h"
#include "services/worker/link.h"
#include "services/worker/metrics.h"
#include "services/worker/spool.h"
#include "sgt/v1/worker.pb.h"

namespace sgt::worker {

struct SupervisorOptions {
  std::vector<sgt::v1::Device> devices;  // this worker's
  AttemptOptions attempt;
  WorkerMetrics* metrics = nullptr;  // null: none; outlives the supervisor
  // Ranks still running this long after global rank 0 exited are stopped (SIGTERM, SIGKILL
  // after the cancel grace period): they have nothing left to do, and a hung one would otherwise
  // hold the attempt and its devices for ever.
  double straggler_s = 30;
};

class Supervisor : public LinkHandler {
 public:
  // `spool` and `link` outlive the supervisor. Starts its timer (SIGKILL after the cancel grace
  // period, final statuses sent again after 10 s without acknowledgement).
  Supervisor(SupervisorOptions options, Spool& spool, Link& link);
  // Stop() and StopChildren() unless done.
  ~Supervisor() override;
  Supervisor(const Supervisor&) = delete;
  Supervisor& operator=(const Supervisor&) = delete;

  // LinkHandler.
  std::vector<sgt::v1::RunRef> Held(bool unreported_only) override;
  void SessionOpened(const std::string& worker_id) override;
  // StartRun: Start; RunCommand: Command; TelemetryAck: the spool forgets the batch (and the
  // final status it held back may go); StatusAck: the attempt is forgotten.
  void Handle(const sgt::v1::CoordinatorMessage& m) override;
  void Replayed() override;
  void SessionClosed() override;

  // The worker is shutting down: StartRuns are refused (LOST), children that end from now on
  // are reported LOST unless they ended cleanly or were cancelled, a relay waiting for room in
  // the spool gives up, the timer stops. Safe from any thread (not a signal handler).
  void Stop();
  // After Stop: a draining heartbeat, SIGTERM to every child, SIGKILL after the grace period;
  // then up to 5 s for their statuses and telemetry to be acknowledged (or the session to end).
  // Joins every relay. Blocks up to grace + 5 s.
  void StopChildren();

  // For the state gauges: every device (kind, busy), and the children (ranks) alive. For
  // --exit-when-idle (idle.h): the attempts held (until their final status is acknowledged),
  // and since when none has been held (the steady clock's seconds; the start, at first).
  struct Load {
    std::vector<std::pair<std::string, bool>> devices;
    int children = 0;
    int attempts = 0;
    double idle_since = 0;
  };
  Load CurrentLoad();

 private:
  struct Rank;
  struct Attempt;

  void Start(const sgt::v1::StartRun& s);
  void Command(const sgt::v1::RunCommand& c);
  void WaitRank(std::shared_ptr<Attempt> a, size_t i);
  void Relay(std::shared_ptr<Attempt> a);
  void Flush(Attempt& a, sgt::v1::TelemetryBatch& batch);
  void Ended(Attempt& a, const EventTranslator& t);
  void MaybeSendFinal(const std::string& key);
  void Reject(const sgt::v1::StartRun& s, sgt::v1::RunState state, const std::string& reason);
  void Tick();

  const SupervisorOptions o_;
  Spool& spool_;
  Link& link_;
  std::atomic<bool> stopping_{false};

  std::mutex mu_;
  std::condition_variable cv_;  // stopping_, attempts_ and session changes
  std::string worker_id_;
  bool session_open_ = false;
  bool stopped_children_ = false;
  std::map<std::string, std::shared_ptr<Attempt>> attempts_;  // "r3/2"
  double idle_since_;                        // when attempts_ last became empty (Load::idle_since)
  std::map<std::string, std::string> busy_;  // device id -> attempt key
  std::thread timer_;
};

}  // namespace sgt::worker

#endif  // SGT_SERVICES_WORKER_SUPERVISOR_H_
