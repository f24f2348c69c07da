// One training child process (sgt-train) of a worker: started with its event log on a pipe and
// its stdout/stderr in files, in its own process group, and killed when its worker dies.
#ifndef SGT_SERVICES_WORKER_CHILD_H_
#define SGT_SERVICES_WORKER_CHILD_H_

#include <sys/types.h>

#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace sgt::worker {

struct ChildSpec {
  std::vector<std::string> argv;  // argv[0] is the program's path; "{events_fd}" in an argument
                                  // is replaced by the child's end of the events pipe
  std::vector<std::string> env;   // NAME=VALUE added to (or replacing in) the worker's environment
  std::vector<std::string> unset;  // NAMEs taken out of the worker's environment (before `env`)
  std::string stdout_path, stderr_path;  // appended to (created if missing)
};

class Child {
 public:
  // Starts the child. It gets SIGKILL when the thread that called Spawn ends (Linux's parent-death
  // signal follows the thread), so call it from a thread that lives as long as the worker. SIGUSR1
  // and SIGUSR2 start blocked in the child (sgt-train unblocks them once it handles them), so a
  // pause or snapshot sent early waits instead of ending it.
  static absl::StatusOr<std::unique_ptr<Child>> Spawn(const ChildSpec& spec);
  ~Child();  // kills the child if it was never reaped
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;

  pid_t pid() const { return pid_; }
  // The worker's end of the events pipe; EOF once the child (and anything it started) is gone.
  int events_fd() const { return events_fd_; }

  // Sends `sig` to the child's process group unless the child was already reaped (so a pid that
  // was reused is never hit). Returns false when it was reaped.
  bool Signal(int sig);
  // Waits for the child to exit; returns its wait status.
  int Wait();

  // "exit status 1", "killed by signal 9 (Killed)"...
  static std::string DescribeExit(int wait_status);
  // The last `max_bytes` of a file, cut at a line start.
  static std::string Tail(const std::string& path, size_t max_bytes);

 private:
  Child() = default;
  pid_t pid_ = -1;
  int events_fd_ = -1;
  std::mutex mu_;
  bool reaped_ = false;
  int status_ = 0;
};

}  // namespace sgt::worker

#endif  // SGT_SERVICES_WORKER_CHILD_H_
