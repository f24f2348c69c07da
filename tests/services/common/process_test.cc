// Tests of RunProcess (services/common/process.h): stdout and stderr collected apart, the exit
// status described with stderr's last line, the time limit (the program's process group killed,
// quickly), a program that cannot be started, and a parent's blocked stop signals not passed on.
#include "services/common/process.h"

#include <signal.h>
#include <sys/wait.h>

#include <chrono>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace sgt {
namespace {

using ::testing::HasSubstr;

TEST(RunProcessTest, CollectsOutputAndStatus) {
  auto r = RunProcess(
      {"sh", "-c", "echo out; echo 'first' >&2; echo 'sbatch: error: no' >&2; exit 3"}, 10);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->out, "out\n");
  EXPECT_EQ(r->err, "first\nsbatch: error: no\n");
  EXPECT_FALSE(r->Succeeded());
  EXPECT_EQ(r->Describe(10), "exited with status 3: sbatch: error: no");
  r = RunProcess({"true"}, 10);
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->Succeeded());
  EXPECT_EQ(r->Describe(10), "exited with status 0");
}

TEST(RunProcessTest, ArgumentsGoAsTheyAre) {
  auto r = RunProcess({"printf", "%s|", "a b", "$HOME", "*"}, 10);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->out, "a b|$HOME|*|");
}

TEST(RunProcessTest, TheTimeLimitKillsTheProcessGroup) {
  const auto start = std::chrono::steady_clock::now();
  // The child's own child holds the pipes open too: the whole group goes.
  auto r = RunProcess({"sh", "-c", "sleep 100 & sleep 100"}, 0.3);
  const double took =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->timed_out);
  EXPECT_FALSE(r->Succeeded());
  EXPECT_EQ(r->Describe(0.3), "killed after 0.3 s (the time limit)");
  EXPECT_LT(took, 10);
}

TEST(RunProcessTest, AProgramThatCannotStartIsAnError) {
  auto r = RunProcess({"/nonexistent/sbatch", "--parsable"}, 10);
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(std::string(r.status().message()),
              HasSubstr("cannot run /nonexistent/sbatch: No such file or directory"));
  EXPECT_FALSE(RunProcess({}, 10).ok());
}

TEST(RunProcessTest, StopSignalsBlockedHereAreNotBlockedThere) {
  sigset_t stop, old;
  sigemptyset(&stop);
  sigaddset(&stop, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop, &old);
  auto r = RunProcess({"sh", "-c", "kill -TERM $$; sleep 5"}, 10);
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
  ASSERT_TRUE(r.ok());
  ASSERT_TRUE(WIFSIGNALED(r->wait_status));
  EXPECT_EQ(WTERMSIG(r->wait_status), SIGTERM);
  EXPECT_EQ(r->Describe(10), "killed by signal 15");
}

}  // namespace
}  // namespace sgt
