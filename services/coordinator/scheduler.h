// Which queued run goes to which workers: pure logic, no clock, no storage, no network.
//
// Policy (docs/operations.md, "Scheduling"):
// - Higher priority first. Within one priority, sweeps take turns (round-robin from the sweep
//   after the one served last at that priority); within a sweep, oldest run first.
// - A sweep never has more than max_concurrent runs on workers (0: no limit).
// - A one-node run needs `devices` free devices of its kind on ONE worker; among the workers
//   that fit, the one with the fewest free devices of that kind wins (best fit keeps big holes
//   for big runs), ties by worker id.
// - A run that does not fit now does not block runs after it (backfill): a lower-priority run
//   may use devices a higher-priority one cannot.
// - A gang (a run with nodes M > 1) needs M distinct workers that announced a rendezvous
//   address, each with `devices` free devices of its kind, and a free rendezvous port on the one
//   that becomes node 0: all of them at once or none (no partial hold, so nothing to deadlock
//   on). The M workers are picked best fit, as above; node 0 is the first of them with a free
//   port.
// - Reservation, so that a gang does not starve behind a stream of small runs: the first gang in
//   scheduling order that cannot start (but could, once devices free up) reserves the M workers
//   that suit it best (fewest of its devices still busy, then worker id). No other run starts on
//   a reserved worker; other runs backfill onto the rest. The reserved workers only drain, so
//   the gang starts at the latest when the runs on them end. There is one reservation at a
//   time, so two gangs never hold parts of each other's workers. It is kept across calls until
//   the gang starts or leaves the queue, or until a queued gang of strictly higher priority
//   that cannot start takes it over; a reserved worker that goes away is replaced.
#ifndef SGT_SERVICES_COORDINATOR_SCHEDULER_H_
#define SGT_SERVICES_COORDINATOR_SCHEDULER_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace sgt::coord {

struct QueuedRun {
  int64_t run_id = 0;
  int64_t sweep_id = 0;
  int32_t priority = 0;
  int32_t devices = 1;  // on each node
  std::string device_kind = "cpu";
  int32_t nodes = 1;  // > 1: a gang over that many workers
};

struct SweepLimit {
  int32_t max_concurrent = 0;  // 0: no limit
  int32_t active = 0;          // runs of the sweep on workers now
};

struct WorkerCapacity {
  std::string worker_id;
  std::map<std::string, int32_t> free;   // kind -> free devices
  std::map<std::string, int32_t> total;  // kind -> devices
  // Whether the worker takes part in gangs (it announced a rendezvous address), and how many
  // of its rendezvous ports no gang whose node 0 it is uses now.
  bool rendezvous = false;
  int32_t free_ports = 0;
};

struct Assignment {
  int64_t run_id = 0;
  std::string worker_id;                // node 0's
  std::vector<std::string> worker_ids;  // every node's, by node rank (one entry for one node)
};

// The gang that holds the reservation and the workers it holds, by the order they were picked.
struct Reservation {
  int64_t run_id = 0;  // 0: none
  std::vector<std::string> worker_ids;
};

class FairScheduler {
 public:
  // Assignments for as many queued runs as fit. `workers` are the connected workers; their
  // free counts are what is free before this call. Remembers, per priority, the sweep served
  // last, so successive calls continue the round-robin, and the reservation of a waiting gang.
  std::vector<Assignment> Plan(const std::vector<QueuedRun>& queued,
                               const std::map<int64_t, SweepLimit>& sweeps,
                               const std::vector<WorkerCapacity>& workers);

  // The reservation after the last Plan.
  const Reservation& reservation() const { return reservation_; }

 private:
  std::map<int32_t, int64_t> last_sweep_;  // priority -> sweep id served last
  Reservation reservation_;
};

// Why a queued run cannot start anywhere, or "" when some workers could hold it once their
// devices free up: "needs 4 cpu devices; the largest connected worker has 2", or for a gang
// "needs 2 workers with 1 free cpu device each; 1 connected worker has 1 cpu device".
std::string UnschedulableReason(const QueuedRun& run, const std::vector<WorkerCapacity>& workers);

}  // namespace sgt::coord

#endif  // SGT_SERVICES_COORDINATOR_SCHEDULER_H_
