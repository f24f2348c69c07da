// The rules of an attempt, as pure functions (no files, no processes, no clock): which StartRuns
// a worker takes, which of its devices an attempt gets, how its sgt-train child is launched
// (argv, environment, directories), and what status its end is reported with (docs/worker.md,
// "Running an attempt"). The supervisor (supervisor.h) applies them; their tests need nothing
// but the inputs.
#ifndef SGT_SERVICES_WORKER_ATTEMPT_RULES_H_
#define SGT_SERVICES_WORKER_ATTEMPT_RULES_H_

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "services/worker/child.h"
#include "services/worker/events.h"
#include "sgt/v1/types.pb.h"
#include "sgt/v1/worker.pb.h"

namespace sgt::worker {

// Bytes of the child's stderr a FAILED status carries.
constexpr size_t kStderrTailBytes = 4096;

// The worker's options an attempt's launch and end depend on.
struct AttemptOptions {
  std::string checkpoint_root;  // absolute, resolved, writable
  std::string work_dir;         // absolute: runs/RUN/attempt-K per attempt
  std::string train_program;    // sgt-train
  double cancel_grace_s = 10;   // SIGTERM, then SIGKILL after this long
};

// "r3/2": the key of attempt 2 of run r3.
std::string AttemptKey(const std::string& run_id, int32_t attempt);

// Run ids name directories: only the coordinator's own form ("r" and 1 to 19 digits) is taken.
bool ValidRunId(const std::string& run_id);

// The device kind a run trains on (sgt::BriefOfConfigJson: train.device, "cpu" when absent).
// Text that is not a JSON object is kInvalidArgument "config_json is not a JSON object" (the
// reason the attempt is refused with).
absl::StatusOr<std::string> RunDeviceKind(const std::string& config_json);

// The ids of the first `want` devices of `kind` that `busy` (device id -> the attempt holding
// it) does not hold, in the order of `devices`; fewer when there are not that many free.
std::vector<std::string> PickDevices(const std::vector<sgt::v1::Device>& devices,
                                     const std::map<std::string, std::string>& busy,
                                     const std::string& kind, int want);

// How an attempt's child is started.
struct AttemptLaunch {
  std::string dir;             // WORK_DIR/runs/RUN/attempt-K (config.json, stdout/stderr.log)
  std::string checkpoint_dir;  // CHECKPOINT_ROOT/RUN/attempt-K
  std::string config_path;     // dir/config.json, holding StartRun.config_json
  ChildSpec child;             // sgt-train's argv, environment and output files
};

// The launch of attempt `s` on `devices` (ids PickDevices gave it), resuming from `resume` (a
// path already confined to the checkpoint root; "" for a fresh start):
//   TRAIN --config DIR/config.json --out DIR --checkpoint-dir CKPT_DIR --events-fd {events_fd}
//         --no-progress [--resume RESUME]
// plus `--set train.threads=N` (N = the devices the run needs) on CPU, or
// CUDA_VISIBLE_DEVICES=i,j (the GPUs' indices) in the environment on any other kind.
AttemptLaunch PlanLaunch(const sgt::v1::StartRun& s, const AttemptOptions& options,
                         const std::vector<std::string>& devices, const std::string& resume);

// What is known when an attempt's child has exited.
struct AttemptEnd {
  std::string run_id;
  int32_t attempt = 0;
  std::string worker_id;       // names the worker in reasons ("w2")
  int wait_status = 0;         // the child's, as waitpid gave it
  bool cancelled = false;      // the coordinator cancelled the attempt
  bool killed = false;         // it then got SIGKILL after the grace period
  double cancel_grace_s = 10;  // that grace period, for the reason
  bool shutting_down = false;  // the worker is stopping, and so stopped the child
  std::string stderr_tail;     // the end of its stderr (Child::Tail, kStderrTailBytes)
};

// The final status of an ended attempt, from its end and what `events` (the translator of its
// event lines) saw. In this order:
//   shutting down, not cancelled, not a clean end  LOST       "W shut down; the run goes back to
//                                                             the queue"
//   cancelled                                      CANCELLED  "cancelled" or "cancelled (killed
//                                                             after G s of SIGTERM)"
//   exit 0 after end "paused"                      PAUSED     "paused at step N on W" + summary
//   exit 0 after end "succeeded"                   SUCCEEDED  summary, no reason
//   anything else                                  FAILED     "WHY (EXIT on W)" + stderr tail,
// where WHY is the last error event ("non-finite loss at step N"), else "sgt-train exited
// without reporting an end" (exit 0), else the last stderr line without its "sgt-train: "
// (an exit status), else "sgt-train crashed at step N" (a signal). A clean end is exit 0 after
// an end event. `step` is always the newest step the events reported.
sgt::v1::RunStatus FinalStatus(const AttemptEnd& end, const EventTranslator& events);

}  // namespace sgt::worker

#endif  // SGT_SERVICES_WORKER_ATTEMPT_RULES_H_
