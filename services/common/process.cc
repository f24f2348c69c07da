// A short-lived program run with a time limit, its output collected (process.h).
#include "services/common/process.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"

namespace sgt {

namespace {

double Now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

void CloseBoth(int p[2]) {
  for (int i = 0; i < 2; ++i) {
    if (p[i] >= 0) ::close(p[i]);
    p[i] = -1;
  }
}

}  // namespace

bool ProcessResult::Succeeded() const {
  return !timed_out && WIFEXITED(wait_status) && WEXITSTATUS(wait_status) == 0;
}

std::string ProcessResult::Describe(double timeout_s) const {
  if (timed_out) return absl::StrCat("killed after ", timeout_s, " s (the time limit)");
  std::string what;
  if (WIFEXITED(wait_status)) {
    what = absl::StrCat("exited with status ", WEXITSTATUS(wait_status));
  } else if (WIFSIGNALED(wait_status)) {
    what = absl::StrCat("killed by signal ", WTERMSIG(wait_status));
  } else {
    what = "ended";
  }
  absl::string_view e = absl::StripAsciiWhitespace(err);
  if (const size_t nl = e.rfind('\n'); nl != absl::string_view::npos) e = e.substr(nl + 1);
  if (!e.empty()) absl::StrAppend(&what, ": ", e);
  return what;
}

absl::StatusOr<ProcessResult> RunProcess(const std::vector<std::string>& argv, double timeout_s) {
  if (argv.empty() || argv[0].empty()) return absl::InvalidArgumentError("no program to run");
  std::vector<char*> args;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  int out[2] = {-1, -1}, err[2] = {-1, -1}, exec_err[2] = {-1, -1};
  if (::pipe2(out, O_CLOEXEC) != 0 || ::pipe2(err, O_CLOEXEC) != 0 ||
      ::pipe2(exec_err, O_CLOEXEC) != 0) {
    const int e = errno;
    CloseBoth(out);
    CloseBoth(err);
    CloseBoth(exec_err);
    return absl::InternalError(absl::StrCat("cannot run ", argv[0], ": pipe: ", std::strerror(e)));
  }
  const pid_t pid = ::fork();
  if (pid < 0) {
    const int e = errno;
    CloseBoth(out);
    CloseBoth(err);
    CloseBoth(exec_err);
    return absl::InternalError(absl::StrCat("cannot run ", argv[0], ": fork: ", std::strerror(e)));
  }
  if (pid == 0) {
    // The child: only async-signal-safe calls until exec.
    ::setpgid(0, 0);
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    ::signal(SIGPIPE, SIG_DFL);
    const int devnull = ::open("/dev/null", O_RDONLY);
    if (devnull >= 0) ::dup2(devnull, 0);
    ::dup2(out[1], 1);
    ::dup2(err[1], 2);
    ::execvp(args[0], args.data());
    const int e = errno;
    (void)!::write(exec_err[1], &e, sizeof e);
    ::_exit(127);
  }
  ::close(out[1]);
  ::close(err[1]);
  ::close(exec_err[1]);
  ProcessResult r;
  const double deadline = Now() + timeout_s;
  pollfd fds[2] = {{out[0], POLLIN, 0}, {err[0], POLLIN, 0}};
  std::string* into[2] = {&r.out, &r.err};
  int open_fds = 2;
  char buf[8192];
  while (open_fds > 0) {
    const double left = deadline - Now();
    if (left <= 0) {
      r.timed_out = true;
      ::kill(-pid, SIGKILL);
      break;
    }
    const int n = ::poll(fds, 2, static_cast<int>(left * 1000) + 1);
    if (n < 0 && errno != EINTR) break;
    for (int i = 0; i < 2 && n > 0; ++i) {
      if (fds[i].fd < 0 || fds[i].revents == 0) continue;
      const ssize_t got = ::read(fds[i].fd, buf, sizeof buf);
      if (got > 0) {
        const size_t room = kProcessOutputMax - std::min(kProcessOutputMax, into[i]->size());
        into[i]->append(buf, std::min(room, static_cast<size_t>(got)));
      } else if (got == 0 || (errno != EINTR && errno != EAGAIN)) {
        ::close(fds[i].fd);
        fds[i].fd = -1;
        --open_fds;
      }
    }
  }
  for (pollfd& p : fds) {
    if (p.fd >= 0) ::close(p.fd);
  }
  // A program that closed its output but runs on is waited for up to the deadline as well.
  int status = 0;
  while (true) {
    const pid_t w = ::waitpid(pid, &status, r.timed_out ? 0 : WNOHANG);
    if (w == pid || (w < 0 && errno != EINTR)) break;
    if (w == 0 && Now() >= deadline) {
      r.timed_out = true;
      ::kill(-pid, SIGKILL);
    } else if (w == 0) {
      ::usleep(10000);
    }
  }
  r.wait_status = status;
  int exec_errno = 0;
  const bool exec_failed = ::read(exec_err[0], &exec_errno, sizeof exec_errno) ==
                           static_cast<ssize_t>(sizeof exec_errno);
  ::close(exec_err[0]);
  if (exec_failed) {
    return absl::NotFoundError(
        absl::StrCat("cannot run ", argv[0], ": ", std::strerror(exec_errno)));
  }
  return r;
}

}  // namespace sgt
