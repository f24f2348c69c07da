// One sgt-train child of a worker (child.h): fork and exec with the events pipe, its output
// files, its process group, signals and reaping.
#include "services/worker/child.h"

#include <fcntl.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstring>
#include <fstream>
#include <map>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"

extern char** environ;

namespace sgt::worker {

namespace {

constexpr int kChildEventsFd = 3;

absl::Status Errno(const std::string& what) {
  return absl::InternalError(absl::StrCat(what, ": ", std::strerror(errno)));
}

}  // namespace

absl::StatusOr<std::unique_ptr<Child>> Child::Spawn(const ChildSpec& spec) {
  if (spec.argv.empty()) return absl::InvalidArgumentError("child: no program given");
  // Everything the child needs is prepared before fork: after it, only async-signal-safe calls.
  std::vector<std::string> args;
  for (const std::string& a : spec.argv) {
    args.push_back(absl::StrReplaceAll(a, {{"{events_fd}", std::to_string(kChildEventsFd)}}));
  }
  std::map<std::string, std::string> env;
  for (char** e = environ; *e != nullptr; ++e) {
    const std::string kv = *e;
    env[kv.substr(0, kv.find('='))] = kv;
  }
  for (const std::string& name : spec.unset) env.erase(name);
  for (const std::string& kv : spec.env) env[kv.substr(0, kv.find('='))] = kv;
  std::vector<std::string> envs;
  for (auto& [k, kv] : env) envs.push_back(kv);
  std::vector<char*> argv, envp;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  for (std::string& e : envs) envp.push_back(e.data());
  envp.push_back(nullptr);

  const int out = ::open(spec.stdout_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (out < 0) return Errno("cannot open " + spec.stdout_path);
  const int err = ::open(spec.stderr_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (err < 0) {
    ::close(out);
    return Errno("cannot open " + spec.stderr_path);
  }
  int pipefd[2];
  if (::pipe2(pipefd, O_CLOEXEC) != 0) {
    ::close(out);
    ::close(err);
    return Errno("pipe");
  }
  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid < 0) {
    const absl::Status s = Errno("fork");
    for (int fd : {out, err, pipefd[0], pipefd[1]}) ::close(fd);
    return s;
  }
  if (pid == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(127);  // the worker died before the line above
    ::setpgid(0, 0);  // its own group: signals reach what it starts, not the worker's terminal
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR1);
    sigaddset(&set, SIGUSR2);
    ::sigprocmask(SIG_SETMASK, &set, nullptr);
    ::signal(SIGPIPE, SIG_DFL);  // the worker ignores it; a child whose reader is gone dies
    // A worker started with 0-2 closed has given the files and the pipe low numbers: lift them
    // above 3 so that no dup2 below overwrites one before it is used, or is a no-op that leaves
    // its target close-on-exec.
    auto lift = [](int fd) {
      return fd > kChildEventsFd ? fd : ::fcntl(fd, F_DUPFD, kChildEventsFd + 1);
    };
    const int child_out = lift(out), child_err = lift(err), child_events = lift(pipefd[1]);
    const int devnull = ::open("/dev/null", O_RDONLY);
    if (devnull < 0 || ::dup2(devnull, 0) < 0 || ::dup2(child_out, 1) < 0 ||
        ::dup2(child_err, 2) < 0 || ::dup2(child_events, kChildEventsFd) < 0) {
      ::_exit(127);
    }
    ::syscall(SYS_close_range, kChildEventsFd + 1, ~0U, 0);  // CLOEXEC covers older kernels
    ::execve(argv[0], argv.data(), envp.data());
    const char msg[] = "sgt-worker: cannot execute the training program\n";
    (void)!::write(2, msg, sizeof msg - 1);
    ::_exit(127);
  }
  for (int fd : {out, err, pipefd[1]}) ::close(fd);
  auto c = std::unique_ptr<Child>(new Child());
  c->pid_ = pid;
  c->events_fd_ = pipefd[0];
  return c;
}

Child::~Child() {
  bool reaped;
  {
    std::lock_guard<std::mutex> lock(mu_);
    reaped = reaped_;
  }
  if (!reaped) {
    Signal(SIGKILL);
    Wait();
  }
  if (events_fd_ >= 0) ::close(events_fd_);
}

bool Child::Signal(int sig) {
  std::lock_guard<std::mutex> lock(mu_);
  if (reaped_) return false;
  // The group when the child made it, else the child alone (it may not have run setpgid yet).
  if (::kill(-pid_, sig) != 0) ::kill(pid_, sig);
  return true;
}

int Child::Wait() {
  // Wait for the exit without reaping, then reap under the lock: Signal never sees a pid that
  // the kernel may already have handed to another process.
  siginfo_t info;
  while (::waitid(P_PID, static_cast<id_t>(pid_), &info, WEXITED | WNOWAIT) < 0 && errno == EINTR) {
  }
  std::lock_guard<std::mutex> lock(mu_);
  int status = 0;
  if (!reaped_) {
    while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
    }
    reaped_ = true;
    status_ = status;
  }
  return status_;
}

std::string Child::DescribeExit(int st) {
  if (WIFEXITED(st)) return absl::StrCat("exit status ", WEXITSTATUS(st));
  if (WIFSIGNALED(st)) {
    return absl::StrCat("killed by signal ", WTERMSIG(st), " (", ::strsignal(WTERMSIG(st)), ")");
  }
  return absl::StrCat("wait status ", st);
}

std::string Child::Tail(const std::string& path, size_t max_bytes) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) return "";
  const std::streamoff size = in.tellg();
  const std::streamoff from = size > static_cast<std::streamoff>(max_bytes)
                                  ? size - static_cast<std::streamoff>(max_bytes)
                                  : 0;
  // The byte before the window: a '\n' there means the window already starts at a line start.
  char before = '\n';
  if (from > 0) in.seekg(from - 1).get(before);
  in.seekg(from);
  std::string text(static_cast<size_t>(size - from), '\0');
  in.read(text.data(), static_cast<std::streamsize>(text.size()));
  if (before != '\n') {
    const size_t nl = text.find('\n');
    if (nl != std::string::npos) text.erase(0, nl + 1);
  }
  // Progress lines redraw with '\r': keep what a terminal would show last.
  std::string shown;
  for (size_t start = 0; start < text.size();) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    std::string line = text.substr(start, end - start);
    if (const size_t cr = line.rfind('\r', line.size() > 0 ? line.size() - 1 : 0);
        cr != std::string::npos && cr + 1 < line.size()) {
      line.erase(0, cr + 1);
    }
    absl::StrAppend(&shown, line, end < text.size() ? "\n" : "");
    start = end + 1;
  }
  return shown;
}

}  // namespace sgt::worker
