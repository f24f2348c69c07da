// The Slurm autoscaler of the coordinator (docs/operations.md, "Autoscaling on Slurm"): the thin
// part around the pure decisions of autoscaler.h. Each round asks squeue which of its worker
// jobs Slurm still lists, asks the coordinator what waits and what is free
// (Coordinator::ScalingDemand, a moment under its lock), decides, and runs sbatch and scancel.
// Every program runs on the round's thread, never under the coordinator's lock, with a time
// limit; a program that fails is logged and counted (sgt_slurm_* metrics), never fatal. The jobs
// live in the store (table slurm_jobs), so a restarted coordinator still counts them.
//
//   SlurmAutoscaler a(config, commands, coordinator, store, registry);
//   if (absl::Status s = a.Load(); !s.ok()) ...;
//   while (!stopping) { a.Round(); sleep(poll_seconds); }
#ifndef SGT_SERVICES_COORDINATOR_SLURM_AUTOSCALER_H_
#define SGT_SERVICES_COORDINATOR_SLURM_AUTOSCALER_H_

#include <functional>
#include <map>
#include <string>

#include "absl/status/status.h"
#include "prometheus/counter.h"
#include "prometheus/family.h"
#include "prometheus/gauge.h"
#include "prometheus/registry.h"
#include "services/coordinator/autoscaler.h"
#include "services/coordinator/coordinator.h"
#include "services/coordinator/store.h"

namespace sgt::coord {

// The Slurm programs and how long each may take.
struct SlurmCommands {
  std::string sbatch = "sbatch", squeue = "squeue", scancel = "scancel";
  double timeout_s = 30;
  std::string user;  // whose jobs squeue lists: the coordinator's user
};

class SlurmAutoscaler {
 public:
  // `coordinator` and `store` outlive it; `registry` may be null (no metrics). `clock`: seconds
  // since the epoch (null: the system clock).
  SlurmAutoscaler(AutoscaleConfig config, SlurmCommands commands, Coordinator* coordinator,
                  Store* store, prometheus::Registry* registry,
                  std::function<double()> clock = nullptr);

  // The jobs of an earlier run of the coordinator, from the store.
  absl::Status Load();
  // One round: squeue, the decision, sbatch and scancel. Blocks up to a few times the commands'
  // time limit. Call it from one thread.
  void Round();

  size_t jobs() const { return jobs_.size(); }

 private:
  // Updates the known jobs from squeue's list; false when squeue could not be asked.
  bool Refresh(double now);
  void Submit(int count, double now);
  void Cancel(const std::vector<std::string>& ids);
  void Remember(const SlurmJob& job);
  void Forget(const std::string& id);
  void Observe(const ScaleDecision& d);

  AutoscaleConfig config_;
  SlurmCommands commands_;
  Coordinator* coordinator_;
  coord::Store* store_;
  std::function<double()> clock_;
  std::map<std::string, SlurmJob> jobs_;  // by id: every job Slurm listed last time
  std::string last_why_, last_problem_;   // logged once until they change

  struct Metrics {
    prometheus::Family<prometheus::Gauge>* jobs = nullptr;
    prometheus::Gauge* unserved = nullptr;
    prometheus::Gauge* too_big = nullptr;
    prometheus::Counter* submitted = nullptr;
    prometheus::Counter* submit_failures = nullptr;
    prometheus::Counter* cancelled = nullptr;
    prometheus::Family<prometheus::Counter>* failures = nullptr;
  } m_;
};

}  // namespace sgt::coord

#endif  // SGT_SERVICES_COORDINATOR_SLURM_AUTOSCALER_H_
