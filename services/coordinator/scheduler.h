// Which queued run goes to which worker: pure logic, no clock, no storage, no network.
//
// Policy (docs/operations.md, "Scheduling"):
// - Higher priority first. Within one priority, sweeps take turns (round-robin from the sweep
//   after the one served last at that priority); within a sweep, oldest run first.
// - A sweep never has more than max_concurrent runs on workers (0: no limit).
// - A run needs `devices` free devices of its kind on ONE worker; among the workers that fit,
//   the one with the fewest free devices of that kind wins (best fit keeps big holes for big
//   runs), ties by worker id.
// - A run that does not fit now does not block runs after it (backfill): a lower-priority run
//   may use devices a higher-priority one cannot.
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
  int32_t devices = 1;
  std::string device_kind = "cpu";
};

struct SweepLimit {
  int32_t max_concurrent = 0;  // 0: no limit
  int32_t active = 0;          // runs of the sweep on workers now
};

struct WorkerCapacity {
  std::string worker_id;
  std::map<std::string, int32_t> free;   // kind -> free devices
  std::map<std::string, int32_t> total;  // kind -> devices
};

struct Assignment {
  int64_t run_id = 0;
  std::string worker_id;
};

class FairScheduler {
 public:
  // Assignments for as many queued runs as fit. `workers` are the connected workers; their
  // free counts are what is free before this call. Remembers, per priority, the sweep served
  // last, so successive calls continue the round-robin.
  std::vector<Assignment> Plan(const std::vector<QueuedRun>& queued,
                               const std::map<int64_t, SweepLimit>& sweeps,
                               const std::vector<WorkerCapacity>& workers);

 private:
  std::map<int32_t, int64_t> last_sweep_;  // priority -> sweep id served last
};

// Why a queued run cannot start anywhere, or "" when some worker could hold it once its
// devices free up: "needs 4 cpu devices; the largest connected worker has 2".
std::string UnschedulableReason(const QueuedRun& run, const std::vector<WorkerCapacity>& workers);

}  // namespace sgt::coord

#endif  // SGT_SERVICES_COORDINATOR_SCHEDULER_H_
