// The rules of an attempt, as pure functions (no files, no processes, no clock): which StartRuns
// a worker takes, which of its devices an attempt gets, how its sgt-train children are launched
// (one per rank: argv, environment, directories), and what status its end is reported with
// (docs/worker.md, "Running an attempt" and "Data-parallel runs"). The supervisor
// (supervisor.h) applies them; their tests need nothing but the inputs.
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

// sgt-train's exit status when a data-parallel rank lost contact with the others (a collective
// or the rendezvous failed): in a run over several nodes, its attempt is LOST, not FAILED.
constexpr int kExitLostPeer = 3;

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

// The ranks of an attempt (docs/worker.md, "Data-parallel runs"): each of the `local` devices
// an attempt uses on this worker is one rank, and every node of a run has as many.
struct Ranks {
  int nodes = 1;      // workers the run spans
  int node_rank = 0;  // this worker's place among them
  int local = 1;      // ranks on this worker (StartRun.devices)
  int world() const { return nodes * local; }
  int first() const { return node_rank * local; }  // the global rank of local rank 0
  // A single process, launched exactly as before data-parallel runs: no distributed environment.
  bool single() const { return world() == 1; }
};

// The ranks of `s`: devices and the rendezvous; an unset rendezvous (nodes 0) is one node, and
// devices below 1 count as 1 (CheckStartRun refuses them first).
Ranks RanksOf(const sgt::v1::StartRun& s);

// The most ranks a run may have (nodes x devices).
constexpr int64_t kMaxWorldSize = 65536;

// OK when the worker can run `s` as far as its shape goes: devices >= 1, and a rendezvous of
// nodes > 1 has node_rank in [0, nodes), a master_addr and a master_port in 1..65535. Otherwise
// kInvalidArgument, the reason the attempt is refused with (FAILED): "bad StartRun from the
// coordinator: rendezvous node_rank 2 is not in [0, 2)".
absl::Status CheckStartRun(const sgt::v1::StartRun& s);

// The device kind a run trains on (sgt::BriefOfConfigJson: train.device, "cpu" when absent).
// Text that is not a JSON object is kInvalidArgument "config_json is not a JSON object" (the
// reason the attempt is refused with).
absl::StatusOr<std::string> RunDeviceKind(const std::string& config_json);

// The ids of the first `want` devices of `kind` that `busy` (device id -> the attempt holding
// it) does not hold, in the order of `devices`; fewer when there are not that many free.
std::vector<std::string> PickDevices(const std::vector<sgt::v1::Device>& devices,
                                     const std::map<std::string, std::string>& busy,
                                     const std::string& kind, int want);

// How an attempt's children are started.
struct AttemptLaunch {
  std::string dir;             // WORK_DIR/runs/RUN/attempt-K (config.json, the ranks' logs)
  std::string checkpoint_dir;  // CHECKPOINT_ROOT/RUN/attempt-K
  std::string config_path;     // dir/config.json, holding StartRun.config_json
  Ranks ranks;
  // sgt-train's argv, environment and output files, one per local rank, local rank 0 first.
  std::vector<ChildSpec> children;
};

// The launch of attempt `s` on `devices` (ids PickDevices gave it), resuming from `resume` (a
// path already confined to the checkpoint root; "" for a fresh start). Every rank runs
//   TRAIN --config DIR/config.json --out DIR --checkpoint-dir CKPT_DIR
//         [--events-fd {events_fd}] --no-progress [--resume RESUME]
// where only global rank 0 gets --events-fd and --resume; on CPU each also gets
// `--set train.threads=1` (one slot, one rank, one thread), on any other kind
// CUDA_VISIBLE_DEVICES=i,j (the indices of all the attempt's GPUs) in its environment. A run of
// more than one rank adds torchrun's environment: MASTER_ADDR, MASTER_PORT (the rendezvous's
// when nodes > 1, else 127.0.0.1 and `local_master_port`, a free port the caller picked), RANK,
// WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE. Global rank 0 writes DIR/stdout.log and stderr.log,
// rank R DIR/rank-R.stdout.log and rank-R.stderr.log.
AttemptLaunch PlanLaunch(const sgt::v1::StartRun& s, const AttemptOptions& options,
                         const std::vector<std::string>& devices, const std::string& resume,
                         int local_master_port = 0);

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
  // Data-parallel attempts. wait_status and stderr_tail above are local rank 0's; the defaults
  // are a single-rank attempt.
  Ranks ranks;
  bool others_clean = true;  // every other local rank exited 0
  // The global rank that failed first on its own (a non-zero exit or a signal the worker did
  // not send), which made the worker stop the others; -1 when none did.
  int failed_rank = -1;
  int failed_wait_status = 0;
  std::string failed_stderr_tail;
};

// The final status of an ended attempt, from its end and what `events` (the translator of its
// event lines) saw. In this order:
//   shutting down, not cancelled, not a clean end  LOST       "W shut down; the run goes back to
//                                                             the queue"
//   cancelled                                      CANCELLED  "cancelled" or "cancelled (killed
//                                                             after G s of SIGTERM)"
//   over several nodes, first failure exit 3       LOST       "rank R lost contact with another
//   (kExitLostPeer)                                           node at step N on W (...); the run
//                                                             goes back to the queue"
//   exit 0 after end "paused"                      PAUSED     "paused at step N on W" + summary
//   exit 0 after end "succeeded"                   SUCCEEDED  summary, no reason
//   anything else                                  FAILED     "WHY (EXIT on W)" + stderr tail,
// where WHY is the last error event ("non-finite loss at step N"), else "sgt-train exited
// without reporting an end" (exit 0), else the last stderr line without its "sgt-train: "
// (an exit status), else "sgt-train crashed at step N" (a signal). A clean end is exit 0 after
// an end event. `step` is always the newest step the events reported.
//
// With several ranks, rank 0's exit and end event decide as above, except that when another rank
// failed first (and rank 0 reported no error event and ended unclean) the attempt is FAILED
// "rank R exited with status S on W: WHY" (or "rank R was killed by signal ...") with that
// rank's stderr tail. On a node without rank 0 (node_rank > 0) there are no events: every rank
// exiting 0 is SUCCEEDED "node N of M: ranks A-B exited cleanly on W" (the coordinator takes the
// run's outcome from node 0), a failed rank is FAILED as above; cancel and shutdown as above.
sgt::v1::RunStatus FinalStatus(const AttemptEnd& end, const EventTranslator& events);

}  // namespace sgt::worker

#endif  // SGT_SERVICES_WORKER_ATTEMPT_RULES_H_
