// Tests for the worker's training child, with /bin/sh scripts for children: the events pipe at
// fd 3 ("{events_fd}" in argv), stdout/stderr appended to files, the environment, exit statuses
// and their descriptions, SIGUSR1/SIGUSR2 blocked at start, the child's own process group (a
// signal reaches what it starts), the parent-death signal following the spawning thread, a
// program that cannot be executed, and Tail. Every wait is for a condition with a generous
// deadline, never a fixed sleep.
#include "services/worker/child.h"

#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace sgt::worker {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using Clock = std::chrono::steady_clock;

constexpr auto kDeadline = std::chrono::seconds(60);  // generous: CI may be loaded

int MsLeft(Clock::time_point deadline) {
  const auto left =
      std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
  return left > 0 ? static_cast<int>(left) : 0;
}

// Reads `fd` until EOF; false (with what was read) when the deadline passes first.
bool ReadToEof(int fd, std::string* out, Clock::time_point deadline = Clock::now() + kDeadline) {
  char buf[4096];
  for (;;) {
    pollfd p{fd, POLLIN, 0};
    const int r = ::poll(&p, 1, MsLeft(deadline));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return false;
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return n == 0;
    out->append(buf, static_cast<size_t>(n));
  }
}

// Reads `fd` up to and including the next '\n' (byte by byte: nothing after it is consumed);
// "" when EOF or the deadline comes first.
std::string ReadLine(int fd, Clock::time_point deadline = Clock::now() + kDeadline) {
  std::string line;
  for (;;) {
    pollfd p{fd, POLLIN, 0};
    const int r = ::poll(&p, 1, MsLeft(deadline));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return "";
    char c;
    const ssize_t n = ::read(fd, &c, 1);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return "";
    line.push_back(c);
    if (c == '\n') return line;
  }
}

// Whether the child `pid` has exited (without reaping it), polling until the deadline.
bool ExitsBy(pid_t pid, Clock::time_point deadline = Clock::now() + kDeadline) {
  for (;;) {
    siginfo_t info{};
    if (::waitid(P_PID, static_cast<id_t>(pid), &info, WEXITED | WNOHANG | WNOWAIT) == 0 &&
        info.si_pid == pid) {
      return true;
    }
    if (Clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

class ChildTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = "/tmp/sgt_child_test.XXXXXX";
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  ChildSpec Shell(const std::string& script, std::vector<std::string> args = {}) {
    ChildSpec spec;
    spec.argv = {"/bin/sh", "-c", script, "sh"};
    spec.argv.insert(spec.argv.end(), args.begin(), args.end());
    spec.stdout_path = dir_ + "/stdout.log";
    spec.stderr_path = dir_ + "/stderr.log";
    return spec;
  }

  std::unique_ptr<Child> Start(const ChildSpec& spec) {
    absl::StatusOr<std::unique_ptr<Child>> c = Child::Spawn(spec);
    EXPECT_TRUE(c.ok()) << c.status();
    return c.ok() ? *std::move(c) : nullptr;
  }

  std::string dir_;
};

TEST_F(ChildTest, EventsReachThePipeAndOutputTheFiles) {
  std::ofstream(dir_ + "/stdout.log") << "from before\n";  // appended to, not truncated
  std::unique_ptr<Child> c = Start(Shell(
      "echo one >&3; echo out; echo two >&3; echo err >&2; printf 'three\\n' >&3; echo out2"));
  ASSERT_NE(c, nullptr);
  EXPECT_GT(c->pid(), 0);
  EXPECT_GE(c->events_fd(), 0);
  std::string events;
  ASSERT_TRUE(ReadToEof(c->events_fd(), &events)) << "no EOF; got: " << events;
  EXPECT_EQ(events, "one\ntwo\nthree\n");
  const int st = c->Wait();
  ASSERT_TRUE(WIFEXITED(st)) << Child::DescribeExit(st);
  EXPECT_EQ(WEXITSTATUS(st), 0);
  EXPECT_EQ(Child::DescribeExit(st), "exit status 0");
  EXPECT_EQ(ReadFile(dir_ + "/stdout.log"), "from before\nout\nout2\n");
  EXPECT_EQ(ReadFile(dir_ + "/stderr.log"), "err\n");
  // The worker's end is close-on-exec: a later child never holds it open.
  EXPECT_NE(::fcntl(c->events_fd(), F_GETFD) & FD_CLOEXEC, 0);
}

TEST_F(ChildTest, EventsFdPlaceholderIsReplacedBy3) {
  std::unique_ptr<Child> c = Start(Shell("echo \"$1 $2 $3\" >&3; echo via >&\"$2\"",
                                         {"--events-fd={events_fd}", "{events_fd}", "x{events_fd}y"}));
  ASSERT_NE(c, nullptr);
  std::string events;
  ASSERT_TRUE(ReadToEof(c->events_fd(), &events)) << events;
  EXPECT_EQ(events, "--events-fd=3 3 x3y\nvia\n");
  EXPECT_EQ(c->Wait(), 0);
}

TEST_F(ChildTest, StdinIsDevNullAndOtherFdsAreClosed) {
  // A descriptor of this process without close-on-exec must not reach the child.
  const int devnull = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  ASSERT_GE(devnull, 0);
  const int leaked = ::fcntl(devnull, F_DUPFD, 10);  // above 3, without FD_CLOEXEC
  ::close(devnull);
  ASSERT_GE(leaked, 10);
  std::unique_ptr<Child> c = Start(Shell(
      "readlink /proc/self/fd/0 >&3; if [ -e /proc/$$/fd/$1 ]; then echo open >&3; "
      "else echo closed >&3; fi",
      {std::to_string(leaked)}));
  ::close(leaked);
  ASSERT_NE(c, nullptr);
  std::string events;
  ASSERT_TRUE(ReadToEof(c->events_fd(), &events)) << events;
  EXPECT_EQ(events, "/dev/null\nclosed\n");
  EXPECT_EQ(c->Wait(), 0);
}

TEST_F(ChildTest, WorkerWithoutStandardDescriptors) {
  // A worker started with stdin (or more of 0-2) closed: its files and pipe then get low
  // descriptor numbers, which must not collide with the child's 0-3 (one overwritten before it
  // is used, or one that is its own target and so keeps its close-on-exec flag).
  for (int closed : {1, 2, 3}) {
    SCOPED_TRACE(absl::StrCat("descriptors 0 to ", closed - 1, " closed"));
    int saved[3];
    for (int fd = 0; fd < 3; ++fd) saved[fd] = ::fcntl(fd, F_DUPFD_CLOEXEC, 10);
    for (int fd = 0; fd < closed; ++fd) ::close(fd);
    absl::StatusOr<std::unique_ptr<Child>> spawned = Child::Spawn(
        Shell("echo event >&3; echo out; echo err >&2; readlink /proc/self/fd/0 >&3"));
    // Put 0-2 back (gtest reports on them), except where the worker's end of the pipe now is.
    const int events_fd = spawned.ok() ? (*spawned)->events_fd() : -1;
    for (int fd = 0; fd < 3; ++fd) {
      if (fd != events_fd) ::dup2(saved[fd], fd);
    }
    if (spawned.ok()) {
      std::unique_ptr<Child> c = *std::move(spawned);
      std::string events;
      EXPECT_TRUE(ReadToEof(c->events_fd(), &events)) << events;
      EXPECT_EQ(events, "event\n/dev/null\n");
      EXPECT_EQ(c->Wait(), 0);
    } else {
      ADD_FAILURE() << spawned.status();
    }
    if (events_fd >= 0 && events_fd < 3) ::dup2(saved[events_fd], events_fd);
    for (int fd : saved) ::close(fd);
    EXPECT_EQ(ReadFile(dir_ + "/stdout.log"), "out\n");
    EXPECT_EQ(ReadFile(dir_ + "/stderr.log"), "err\n");
    fs::remove(dir_ + "/stdout.log");
    fs::remove(dir_ + "/stderr.log");
  }
}

TEST_F(ChildTest, EnvironmentIsAddedToAndOverridden) {
  ASSERT_EQ(::setenv("SGT_CHILD_TEST_OLD", "old", 1), 0);
  ASSERT_EQ(::setenv("SGT_CHILD_TEST_KEPT", "kept", 1), 0);
  ASSERT_EQ(::setenv("SGT_CHILD_TEST_GONE", "gone", 1), 0);
  ChildSpec spec = Shell(
      "echo \"$SGT_CHILD_TEST_NEW $SGT_CHILD_TEST_OLD $SGT_CHILD_TEST_KEPT $SGT_CHILD_TEST_EQ "
      "${SGT_CHILD_TEST_GONE-unset}\" >&3");
  spec.env = {"SGT_CHILD_TEST_NEW=new", "SGT_CHILD_TEST_OLD=replaced", "SGT_CHILD_TEST_EQ=a=b"};
  spec.unset = {"SGT_CHILD_TEST_GONE", "SGT_CHILD_TEST_OLD"};  // unset, then set again by env
  std::unique_ptr<Child> c = Start(spec);
  ::unsetenv("SGT_CHILD_TEST_OLD");
  ::unsetenv("SGT_CHILD_TEST_KEPT");
  ::unsetenv("SGT_CHILD_TEST_GONE");
  ASSERT_NE(c, nullptr);
  std::string events;
  ASSERT_TRUE(ReadToEof(c->events_fd(), &events)) << events;
  EXPECT_EQ(events, "new replaced kept a=b unset\n");
  EXPECT_EQ(c->Wait(), 0);
}

TEST_F(ChildTest, ExitStatusIsDescribed) {
  std::unique_ptr<Child> c = Start(Shell("exit 3"));
  ASSERT_NE(c, nullptr);
  const int st = c->Wait();
  ASSERT_TRUE(WIFEXITED(st));
  EXPECT_EQ(WEXITSTATUS(st), 3);
  EXPECT_EQ(Child::DescribeExit(st), "exit status 3");
  EXPECT_EQ(c->Wait(), st);  // again: the status kept, no second reap
}

TEST_F(ChildTest, DeathBySignalIsDescribed) {
  // No core file: the test leaves nothing behind and does not wait for a dump.
  std::unique_ptr<Child> c = Start(Shell("ulimit -c 0; kill -SEGV $$; echo survived >&3"));
  ASSERT_NE(c, nullptr);
  const int st = c->Wait();
  ASSERT_TRUE(WIFSIGNALED(st)) << Child::DescribeExit(st);
  EXPECT_EQ(WTERMSIG(st), SIGSEGV);
  EXPECT_EQ(Child::DescribeExit(st), "killed by signal 11 (Segmentation fault)");
  std::string events;
  ASSERT_TRUE(ReadToEof(c->events_fd(), &events));
  EXPECT_EQ(events, "");
}

TEST(DescribeExitTest, Statuses) {
  EXPECT_EQ(Child::DescribeExit(0), "exit status 0");
  EXPECT_EQ(Child::DescribeExit(127 << 8), "exit status 127");
  EXPECT_EQ(Child::DescribeExit(SIGKILL), "killed by signal 9 (Killed)");
  EXPECT_EQ(Child::DescribeExit(SIGTERM), "killed by signal 15 (Terminated)");
  EXPECT_EQ(Child::DescribeExit(SIGSEGV | 0x80), "killed by signal 11 (Segmentation fault)");
  EXPECT_EQ(Child::DescribeExit(0x137f), "wait status 4991");  // stopped by SIGSTOP
}

// The bit of `sig` in a /proc/PID/status signal mask ("SigBlk:\t0000000000000a00").
bool MaskHas(const std::string& status, const std::string& field, int sig) {
  const size_t at = status.find(field + ":");
  if (at == std::string::npos) return false;
  const uint64_t mask = std::stoull(status.substr(at + field.size() + 1), nullptr, 16);
  return (mask >> (sig - 1)) & 1;
}

TEST_F(ChildTest, Usr1AndUsr2StartBlocked) {
  // The worker ignores SIGPIPE; the child must get the default back.
  struct sigaction ign {}, old {};
  ign.sa_handler = SIG_IGN;
  ASSERT_EQ(::sigaction(SIGPIPE, &ign, &old), 0);
  // Builtins only: a shell that forks and waits may unblock signals while it waits (dash does),
  // which would let the pending SIGUSR1 in.
  std::unique_ptr<Child> c = Start(Shell(
      "kill -USR1 $$; kill -USR2 $$; echo alive >&3; "
      "while read -r l; do echo \"$l\" >&3; done < /proc/$$/status; exit 0"));
  ::sigaction(SIGPIPE, &old, nullptr);
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(ReadLine(c->events_fd()), "alive\n");
  std::string status;
  ASSERT_TRUE(ReadToEof(c->events_fd(), &status)) << status;
  EXPECT_TRUE(MaskHas(status, "SigBlk", SIGUSR1)) << status;
  EXPECT_TRUE(MaskHas(status, "SigBlk", SIGUSR2)) << status;
  EXPECT_TRUE(MaskHas(status, "ShdPnd", SIGUSR1)) << status;  // sent, held back
  EXPECT_TRUE(MaskHas(status, "ShdPnd", SIGUSR2)) << status;
  EXPECT_FALSE(MaskHas(status, "SigBlk", SIGTERM)) << status;
  EXPECT_FALSE(MaskHas(status, "SigIgn", SIGPIPE)) << status;
  const int st = c->Wait();
  EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << Child::DescribeExit(st);
}

TEST_F(ChildTest, SignalTermEndsASleepingChild) {
  std::unique_ptr<Child> c = Start(Shell("echo up >&3; exec sleep 100"));
  ASSERT_NE(c, nullptr);
  ASSERT_EQ(ReadLine(c->events_fd()), "up\n");
  EXPECT_TRUE(c->Signal(SIGTERM));
  const int st = c->Wait();
  ASSERT_TRUE(WIFSIGNALED(st)) << Child::DescribeExit(st);
  EXPECT_EQ(WTERMSIG(st), SIGTERM);
  EXPECT_EQ(Child::DescribeExit(st), "killed by signal 15 (Terminated)");
  // Reaped: its pid may belong to someone else now, so nothing is sent.
  EXPECT_FALSE(c->Signal(SIGTERM));
  EXPECT_FALSE(c->Signal(0));
  EXPECT_EQ(c->Wait(), st);
}

TEST_F(ChildTest, SignalRightAfterSpawnStillLands) {
  // Before the child may have made its process group: the child alone is signalled.
  std::unique_ptr<Child> c = Start(Shell("exec sleep 100"));
  ASSERT_NE(c, nullptr);
  EXPECT_TRUE(c->Signal(SIGKILL));
  ASSERT_TRUE(ExitsBy(c->pid()));
  const int st = c->Wait();
  ASSERT_TRUE(WIFSIGNALED(st)) << Child::DescribeExit(st);
  EXPECT_EQ(WTERMSIG(st), SIGKILL);
}

TEST_F(ChildTest, OwnProcessGroupAndSignalReachesGrandchildren) {
  std::unique_ptr<Child> c = Start(Shell("sleep 100 & echo $! >&3; wait"));
  ASSERT_NE(c, nullptr);
  const std::string line = ReadLine(c->events_fd());
  ASSERT_FALSE(line.empty());
  const pid_t grandchild = std::stoi(line);
  EXPECT_EQ(::getpgid(c->pid()), c->pid());
  EXPECT_NE(::getpgid(c->pid()), ::getpgid(0));  // not the worker's group
  EXPECT_EQ(::getpgid(grandchild), c->pid());
  EXPECT_TRUE(c->Signal(SIGKILL));
  // The grandchild holds fd 3 too: EOF means it died with the child.
  std::string rest;
  ASSERT_TRUE(ReadToEof(c->events_fd(), &rest)) << "the events pipe stayed open";
  EXPECT_EQ(rest, "");
  const int st = c->Wait();
  ASSERT_TRUE(WIFSIGNALED(st)) << Child::DescribeExit(st);
  EXPECT_EQ(WTERMSIG(st), SIGKILL);
}

TEST_F(ChildTest, DestructorKillsAndReapsAnUnreapedChild) {
  std::unique_ptr<Child> c = Start(Shell("echo up >&3; exec sleep 100"));
  ASSERT_NE(c, nullptr);
  ASSERT_EQ(ReadLine(c->events_fd()), "up\n");
  const pid_t pid = c->pid();
  c.reset();
  // Reaped, not a zombie: no child of ours by that pid is left.
  siginfo_t info{};
  EXPECT_EQ(::waitid(P_PID, static_cast<id_t>(pid), &info, WEXITED | WNOHANG), -1);
  EXPECT_EQ(errno, ECHILD);
}

TEST_F(ChildTest, MissingProgramExits127) {
  ChildSpec spec = Shell("");
  spec.argv = {dir_ + "/no-such-program", "--events-fd", "{events_fd}"};
  std::unique_ptr<Child> c = Start(spec);  // fork succeeded; exec fails in the child
  ASSERT_NE(c, nullptr);
  const int st = c->Wait();
  ASSERT_TRUE(WIFEXITED(st)) << Child::DescribeExit(st);
  EXPECT_EQ(WEXITSTATUS(st), 127);
  EXPECT_THAT(ReadFile(dir_ + "/stderr.log"), HasSubstr("cannot execute"));
  std::string events;
  ASSERT_TRUE(ReadToEof(c->events_fd(), &events));
  EXPECT_EQ(events, "");
}

TEST_F(ChildTest, SpawnErrors) {
  ChildSpec none = Shell("");
  none.argv.clear();
  absl::StatusOr<std::unique_ptr<Child>> c = Child::Spawn(none);
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), absl::StatusCode::kInvalidArgument);

  ChildSpec bad_out = Shell("exit 0");
  bad_out.stdout_path = dir_ + "/missing-dir/stdout.log";
  c = Child::Spawn(bad_out);
  ASSERT_FALSE(c.ok());
  EXPECT_THAT(std::string(c.status().message()), HasSubstr(bad_out.stdout_path));

  ChildSpec bad_err = Shell("exit 0");
  bad_err.stderr_path = dir_ + "/missing-dir/stderr.log";
  c = Child::Spawn(bad_err);
  ASSERT_FALSE(c.ok());
  EXPECT_THAT(std::string(c.status().message()), HasSubstr(bad_err.stderr_path));
}

TEST_F(ChildTest, ParentDeathSignalFollowsTheSpawningThread) {
  // The header's warning, shown: a child spawned from a thread that ends is killed.
  std::unique_ptr<Child> c;
  std::thread spawner([&] {
    c = Start(Shell("echo up >&3; exec sleep 100"));
    // The child has run past prctl(PR_SET_PDEATHSIG) once it writes: only then end the thread.
    if (c != nullptr) {
      EXPECT_EQ(ReadLine(c->events_fd()), "up\n");
    }
  });
  spawner.join();
  ASSERT_NE(c, nullptr);
  ASSERT_TRUE(ExitsBy(c->pid())) << "the child outlived the thread that spawned it";
  const int st = c->Wait();
  ASSERT_TRUE(WIFSIGNALED(st)) << Child::DescribeExit(st);
  EXPECT_EQ(WTERMSIG(st), SIGKILL);
  EXPECT_EQ(Child::DescribeExit(st), "killed by signal 9 (Killed)");
}

class TailTest : public ChildTest {
 protected:
  std::string Write(const std::string& text) {
    const std::string path = dir_ + "/log";
    std::ofstream(path, std::ios::binary | std::ios::trunc) << text;
    return path;
  }
};

TEST_F(TailTest, WholeFileWhenSmall) {
  EXPECT_EQ(Child::Tail(Write("a\nb\nc\n"), 100), "a\nb\nc\n");
  EXPECT_EQ(Child::Tail(Write("a\nb\nc\n"), 6), "a\nb\nc\n");
  EXPECT_EQ(Child::Tail(Write("no newline"), 100), "no newline");
  EXPECT_EQ(Child::Tail(Write(""), 100), "");
}

TEST_F(TailTest, CutAtALineStart) {
  const std::string path = Write("line1\nline2\nline3\n");
  EXPECT_EQ(Child::Tail(path, 8), "line3\n");   // "2\nline3\n": the partial line goes
  EXPECT_EQ(Child::Tail(path, 11), "line3\n");  // "ne2\nline3\n"
  EXPECT_EQ(Child::Tail(path, 13), "line2\nline3\n");
  EXPECT_EQ(Child::Tail(path, 3), "");  // "e3\n": no whole line in reach
  EXPECT_EQ(Child::Tail(Write("abcdefghij"), 4), "ghij");  // no line end at all: the bytes
}

TEST_F(TailTest, CutExactlyAtALineStartKeepsThatLine) {
  // The last 6 bytes are exactly "line3\n", a whole line: nothing to cut.
  const std::string path = Write("line1\nline2\nline3\n");
  EXPECT_EQ(Child::Tail(path, 6), "line3\n");
  EXPECT_EQ(Child::Tail(path, 12), "line2\nline3\n");
  EXPECT_EQ(Child::Tail(Write("aaa\nbbb\n"), 4), "bbb\n");
  EXPECT_EQ(Child::Tail(Write("\nbbb\n"), 4), "bbb\n");
}

TEST_F(TailTest, CarriageReturnRedrawsShowTheLastSegment) {
  const std::string path = Write(
      "start\n\rstep 1/3 loss 5.0\rstep 2/3 loss 4.0\rstep 3/3 loss 3.0\nsgt-train: done\n");
  EXPECT_EQ(Child::Tail(path, 4096), "start\nstep 3/3 loss 3.0\nsgt-train: done\n");
  // An unfinished progress line at the end.
  EXPECT_EQ(Child::Tail(Write("a\n\r10%\r20%"), 4096), "a\n20%");
  // Cut and redraws together.
  EXPECT_EQ(Child::Tail(Write("xxxxxxxx\n\r1\r2\r3\nerr\n"), 12), "3\nerr\n");
}

TEST_F(TailTest, MissingFileIsEmpty) {
  EXPECT_EQ(Child::Tail(dir_ + "/no-such-file", 100), "");
  EXPECT_EQ(Child::Tail(dir_ + "/no-dir/no-such-file", 100), "");
}

}  // namespace
}  // namespace sgt::worker
