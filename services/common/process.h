// Runs a short-lived program and collects what it printed, with a time limit: what the
// coordinator's Slurm autoscaler does with sbatch, squeue and scancel. No shell: the arguments go
// to the program as they are. Blocks the calling thread until the program exits or is killed.
//
//   absl::StatusOr<sgt::ProcessResult> r = sgt::RunProcess({"squeue", "--noheader"}, 30);
//   if (r.ok() && r->Succeeded()) Parse(r->out);
#ifndef SGT_SERVICES_COMMON_PROCESS_H_
#define SGT_SERVICES_COMMON_PROCESS_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace sgt {

struct ProcessResult {
  int wait_status = 0;     // as waitpid gave it
  bool timed_out = false;  // killed (SIGKILL, its process group) at the time limit
  std::string out, err;    // its stdout and stderr, each cut at kProcessOutputMax bytes

  bool Succeeded() const;
  // "exited with status 1: <the last line of stderr>", "killed after 30 s (the time limit)",
  // "killed by signal 9": for a log line.
  std::string Describe(double timeout_s) const;
};

inline constexpr size_t kProcessOutputMax = 1 << 20;

// Runs argv[0] (looked up on PATH when it has no slash) with argv[1..], stdin from /dev/null,
// in its own process group, with no signal blocked; kills the group after `timeout_s`. An error
// only when it cannot be started (no such program, ...), naming it.
absl::StatusOr<ProcessResult> RunProcess(const std::vector<std::string>& argv, double timeout_s);

}  // namespace sgt

#endif  // SGT_SERVICES_COMMON_PROCESS_H_
