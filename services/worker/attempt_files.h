// The files an attempt needs before its child starts (docs/worker.md, "Running an attempt",
// steps 2 and 3): its resume checkpoint, found inside the checkpoint root, and its directories,
// emptied and probed, with the run's config.json written. Each failure is the reason the
// attempt is refused with (FAILED), naming the path, the worker and the fix.
#ifndef SGT_SERVICES_WORKER_ATTEMPT_FILES_H_
#define SGT_SERVICES_WORKER_ATTEMPT_FILES_H_

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "services/worker/attempt_rules.h"

namespace sgt::worker {

// "" when `dir` can be created and written in, else why not (for the startup checks and each
// attempt's directories).
std::string CheckWritable(const std::string& dir);

// The resolved path of `resume_checkpoint` (from a StartRun) if it lies inside
// `checkpoint_root` and is a file there. Errors (kFailedPrecondition) are the refusal's reason:
// "resume checkpoint refused on W: WHY; workers resume only from their --checkpoint-root" or
// "resume checkpoint P is not a file on W; is the checkpoint root shared between the workers?".
absl::StatusOr<std::string> ResolveResume(const std::string& checkpoint_root,
                                          const std::string& resume_checkpoint,
                                          const std::string& worker_id);

// Empties launch.dir (left by an earlier worker process: that attempt is over), checks that it
// and launch.checkpoint_dir are writable, and writes `config_json` to launch.config_path.
// Errors (kFailedPrecondition) are the refusal's reason, naming the flag to change.
absl::Status PrepareAttemptFiles(const AttemptLaunch& launch, const std::string& config_json,
                                 const std::string& checkpoint_root, const std::string& worker_id);

}  // namespace sgt::worker

#endif  // SGT_SERVICES_WORKER_ATTEMPT_FILES_H_
