// The Slurm autoscaler's decisions (docs/operations.md, "Autoscaling on Slurm"): pure logic, no
// clock, no processes, no storage. slurm_autoscaler.h runs sbatch, squeue and scancel around it.
//
// Each worker job (deploy/slurm/sgt-workers.sbatch) brings `nodes_per_job` workers of
// `devices_per_node` devices of one kind. A round:
// 1. The queued runs of that kind that their sweeps' max_concurrent lets start are placed, best
//    fit, on the free devices of the connected workers: those that fit need nothing.
// 2. The rest are placed on the workers still coming: jobs pending in Slurm, and jobs running
//    for less than `start_s` whose workers have not all connected, oldest job first, so that the
//    newest are the ones left empty. A worker whose session opened after a running job was
//    submitted is taken to be that job's (the oldest job first), so a job's workers are not
//    counted twice, once connected and once coming.
// 3. The rest again are placed on new nodes, as few as fit them; the jobs to submit are those
//    nodes over nodes_per_job, rounded up, capped so that no more than `max_jobs` jobs are
//    alive (every job Slurm still lists, whatever its state). A run that needs more devices
//    than a node has, or more nodes than max_jobs jobs bring, can never be served: counted, never
//    submitted for.
// 4. Jobs PENDING in Slurm that step 2 left empty are surplus: they are cancelled (none while
//    jobs are being submitted). Running jobs are never cancelled: their workers exit by
//    themselves when idle (--exit-when-idle).
//
//   ScaleDecision d = DecideScaling(demand, jobs, config, now);
//   for (int i = 0; i < d.submit; ++i) run sbatch SbatchArgv(config) ...;
//   for (const std::string& id : d.cancel) run scancel id ...;
#ifndef SGT_SERVICES_COORDINATOR_AUTOSCALER_H_
#define SGT_SERVICES_COORDINATOR_AUTOSCALER_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "services/coordinator/store.h"

namespace sgt::coord {

// A queued run of the autoscaler's device kind: `devices` on each of `nodes` workers.
struct WaitingRun {
  int32_t devices = 1;
  int32_t nodes = 1;
};

// A connected worker that takes runs: its free devices of the kind, and since when its session
// is open (seconds since the epoch).
struct ConnectedWorker {
  int32_t free = 0;
  double since = 0;
};

// What the coordinator knows at one moment (Coordinator::ScalingDemand).
struct ScaleDemand {
  std::vector<WaitingRun> waiting;       // highest priority first
  std::vector<ConnectedWorker> workers;  // every connected worker with devices of the kind
};

// A worker job the autoscaler submitted, as last seen: the store's row (table slurm_jobs).
using SlurmJob = SlurmJobRow;

struct AutoscaleConfig {
  // The batch script and what sbatch gets (SbatchArgv).
  std::string script;  // deploy/slurm/sgt-workers.sbatch
  std::string job_name = "sgt-worker-autoscaled";
  std::string partition, account, time_limit;  // "" = Slurm's default
  int32_t nodes_per_job = 1;
  int32_t gpus_per_node = 0;             // > 0: GPU workers (--gres=gpu:N); 0: CPU workers
  int32_t cpu_slots_per_node = 1;        // CPU workers: cpu:N (--cpus-per-task=N)
  std::vector<std::string> sbatch_args;  // more sbatch arguments, before the script
  std::vector<std::string> script_args;  // KEY=VALUE arguments of the script
  // The decisions.
  int32_t max_jobs = 1;
  double start_s = 300;  // a running job counts as workers still coming for this long
  // The device kind and count a worker of a job offers.
  std::string kind() const { return gpus_per_node > 0 ? "cuda" : "cpu"; }
  int32_t devices_per_node() const {
    return gpus_per_node > 0 ? gpus_per_node : cpu_slots_per_node;
  }
};

struct ScaleDecision {
  int32_t submit = 0;               // jobs to submit now
  std::vector<std::string> cancel;  // pending jobs to cancel, newest first
  int32_t unserved = 0;             // waiting runs that neither connected nor coming workers hold
  int32_t too_big = 0;              // waiting runs no job of this configuration could ever hold
  int32_t alive = 0;                // jobs Slurm still lists
  // One line for the log when something is done: "2 queued runs need 2 more nodes: submitting
  // 2 jobs (0 of 2 alive)", "the queue is empty: cancelling 1 pending job".
  std::string why;
};

ScaleDecision DecideScaling(const ScaleDemand& demand, const std::vector<SlurmJob>& jobs,
                            const AutoscaleConfig& config, double now);

// Whether squeue's state is one in which the job waits for nodes (PENDING, CONFIGURING, ...):
// its workers are still coming.
bool SlurmJobStarting(const std::string& state);

// sbatch's arguments after the program: --parsable, the job name, the partition, account, time
// limit, nodes, the devices (GPU: --gres=gpu:N; CPU: --cpus-per-task=N and SGT_DEVICES=cpu:N for
// the script), the extra arguments, the script and its arguments.
std::vector<std::string> SbatchArgv(const AutoscaleConfig& config);

// The job id in `sbatch --parsable`'s output ("1234" or "1234;cluster"); an error quoting the
// output when there is none.
absl::StatusOr<std::string> ParseSbatchOutput(const std::string& out);

// squeue's arguments after the program, listing the jobs named `job_name` of `user` as
// "ID STATE" lines (squeue -h -o "%i %T").
std::vector<std::string> SqueueArgv(const std::string& job_name, const std::string& user);

// The jobs of those lines, id and state only; an error naming the first line that is not
// "ID STATE".
absl::StatusOr<std::vector<SlurmJob>> ParseSqueueOutput(const std::string& out);

}  // namespace sgt::coord

#endif  // SGT_SERVICES_COORDINATOR_AUTOSCALER_H_
