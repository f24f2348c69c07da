// Tests for the live `watch` screen (cli/watch_screen.h): frames that fit the terminal they are
// drawn for and replace the previous one, the terminal's size from the kernel or COLUMNS/LINES,
// and the watched runs behind the exit status.
#include "cli/watch_screen.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <cstdlib>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "cli/format.h"

namespace sgt::cli {
namespace {

v1::Run MakeRun(const std::string& id, const std::string& name, v1::RunState state, int64_t step,
                int64_t steps) {
  v1::Run run;
  run.set_id(id);
  run.set_name(name);
  run.set_state(state);
  run.set_step(step);
  run.set_steps(steps);
  run.mutable_metrics()->set_loss(step > 0 ? 5.5 : 0);
  return run;
}

// The lines a frame writes, with the escape sequences that erase each line taken off; checks
// that every line is erased before it is written.
std::vector<std::string> FrameLines(const std::string& frame) {
  std::string body = frame;
  EXPECT_TRUE(absl::EndsWith(body, "\n\x1b[J")) << body;
  body.resize(body.size() - 4);
  std::vector<std::string> lines;
  for (absl::string_view line : absl::StrSplit(body, '\n')) {
    EXPECT_TRUE(absl::ConsumePrefix(&line, "\x1b[2K")) << line;
    lines.emplace_back(line);
  }
  return lines;
}

TEST(WatchScreenTest, ASummaryLineThenOneProgressLinePerRun) {
  std::vector<v1::Run> runs = {MakeRun("r1", "seeds/sgt", v1::RUN_STATE_RUNNING, 150, 300),
                               MakeRun("r2", "seeds/vanilla", v1::RUN_STATE_SUCCEEDED, 300, 300),
                               MakeRun("r3", "seeds/block_loop", v1::RUN_STATE_FAILED, 20, 300)};
  WatchScreen screen("s1");
  std::string frame = screen.Frame(runs, {100, 30});
  EXPECT_TRUE(absl::StartsWith(frame, "\x1b[2Ks1: ")) << "the first frame moves the cursor up";
  ProgressLayout layout = FitProgressLayout(runs, 99);
  std::vector<std::string> lines = FrameLines(frame);
  ASSERT_EQ(lines.size(), 4u) << frame;
  EXPECT_EQ(lines[0], "s1: 3 runs, 1 running, 1 succeeded, 1 failed");
  for (size_t i = 0; i < runs.size(); ++i) EXPECT_EQ(lines[i + 1], ProgressLine(runs[i], layout));
  // The bars line up: each starts in the same column.
  size_t bar = lines[1].find('[');
  ASSERT_NE(bar, std::string::npos);
  EXPECT_EQ(lines[2].find('['), bar);
  EXPECT_EQ(lines[3].find('['), bar);

  WatchScreen one("r1");
  EXPECT_EQ(FrameLines(one.Frame({runs[0]}, {100, 30}))[0], "r1: 1 run, 1 running");
}

TEST(WatchScreenTest, EachFrameGoesBackUpOverThePreviousOne) {
  std::vector<v1::Run> runs = {MakeRun("r1", "a", v1::RUN_STATE_RUNNING, 10, 300),
                               MakeRun("r2", "b", v1::RUN_STATE_QUEUED, 0, 300)};
  WatchScreen screen("s1");
  std::string first = screen.Frame(runs, {80, 24});
  runs[1].set_state(v1::RUN_STATE_RUNNING);
  std::string second = screen.Frame(runs, {80, 24});
  EXPECT_TRUE(absl::StartsWith(second, "\x1b[3A\r")) << second;  // the 3 lines of the first
  EXPECT_EQ(FrameLines(second.substr(5))[0], "s1: 2 runs, 2 running");
  runs.pop_back();
  std::string third = screen.Frame(runs, {80, 24});
  EXPECT_TRUE(absl::StartsWith(third, "\x1b[3A\r")) << third;
  EXPECT_EQ(FrameLines(third.substr(5)).size(), 2u);  // "\x1b[J" clears the line left below
}

TEST(WatchScreenTest, LinesAreCutToTheTerminalWidth) {
  std::vector<v1::Run> runs = {
      MakeRun("r1", "a-sweep-with-a-long-name/variant=sgt,growth.k_max=2,train.seed=3",
              v1::RUN_STATE_RUNNING, 150, 300),
      MakeRun("r12345", "short", v1::RUN_STATE_QUEUED, 0, 300)};
  for (int columns : {40, 60, 80, 200}) {
    WatchScreen screen("s1-with-a-long-target-name-for-the-summary-line");
    for (const std::string& line : FrameLines(screen.Frame(runs, {columns, 24}))) {
      EXPECT_LE(DisplayWidth(line), static_cast<size_t>(columns - 1))
          << columns << " columns: " << line;
    }
  }
  WatchScreen screen("s1");
  std::vector<std::string> lines = FrameLines(screen.Frame(runs, {60, 24}));
  // A name cut keeps its end, where the names of one sweep differ.
  EXPECT_TRUE(absl::StrContains(lines[1], "….seed=3  running")) << lines[1];
  EXPECT_FALSE(absl::StrContains(lines[1], "a-sweep")) << lines[1];
}

TEST(WatchScreenTest, ATerminalTooShortShowsTheRunsStillGoingAndCountsTheRest) {
  std::vector<v1::Run> runs;
  for (int i = 1; i <= 10; ++i) {
    v1::RunState state = i % 2 == 0 ? v1::RUN_STATE_SUCCEEDED : v1::RUN_STATE_RUNNING;
    runs.push_back(MakeRun(absl::StrCat("r", i), absl::StrCat("n", i), state, 10, 300));
  }
  WatchScreen screen("s1");
  // 6 rows: the summary, 3 runs, the count, and the cursor's line.
  std::vector<std::string> lines = FrameLines(screen.Frame(runs, {80, 6}));
  ASSERT_EQ(lines.size(), 5u);
  EXPECT_EQ(lines[0], "s1: 10 runs, 5 running, 5 succeeded");
  EXPECT_TRUE(absl::StartsWith(lines[1], "r1 ")) << lines[1];
  EXPECT_TRUE(absl::StartsWith(lines[2], "r3 ")) << lines[2];
  EXPECT_TRUE(absl::StartsWith(lines[3], "r5 ")) << lines[3];
  EXPECT_EQ(lines[4], "… 7 more not shown (ended runs first); the terminal is too short");

  // Exactly as many runs as there is room for: all shown, no count.
  runs.resize(4);
  WatchScreen fits("s1");
  EXPECT_EQ(FrameLines(fits.Frame(runs, {80, 6})).size(), 5u);
  EXPECT_TRUE(absl::StartsWith(FrameLines(fits.Frame(runs, {80, 6}).substr(5))[2], "r2 "));
}

// An environment of its own for TerminalSizeOf.
struct FakeEnv {
  std::map<std::string, std::string> vars;
  std::function<const char*(const char*)> Getenv() const {
    return [this](const char* name) -> const char* {
      auto it = vars.find(name);
      return it == vars.end() ? nullptr : it->second.c_str();
    };
  }
};

TEST(TerminalSizeTest, NotATerminalFallsBackOnColumnsAndLinesThenOn80x24) {
  int pipe_fds[2];
  ASSERT_EQ(pipe(pipe_fds), 0);
  FakeEnv env;
  TerminalSize size = TerminalSizeOf(pipe_fds[1], env.Getenv());
  EXPECT_EQ(size.columns, 80);
  EXPECT_EQ(size.rows, 24);
  env.vars = {{"COLUMNS", "132"}, {"LINES", "50"}};
  size = TerminalSizeOf(pipe_fds[1], env.Getenv());
  EXPECT_EQ(size.columns, 132);
  EXPECT_EQ(size.rows, 50);
  env.vars = {{"COLUMNS", "wide"}, {"LINES", "0"}};  // not a positive number: ignored
  size = TerminalSizeOf(pipe_fds[1], env.Getenv());
  EXPECT_EQ(size.columns, 80);
  EXPECT_EQ(size.rows, 24);
  env.vars = {{"LINES", "40"}};  // each on its own
  size = TerminalSizeOf(pipe_fds[1], env.Getenv());
  EXPECT_EQ(size.columns, 80);
  EXPECT_EQ(size.rows, 40);
  close(pipe_fds[0]);
  close(pipe_fds[1]);
}

TEST(TerminalSizeTest, ATerminalSaysItsOwnSize) {
  int master = posix_openpt(O_RDWR | O_NOCTTY);
  ASSERT_GE(master, 0) << "no pseudo-terminal";
  ASSERT_EQ(grantpt(master), 0);
  ASSERT_EQ(unlockpt(master), 0);
  int terminal = open(ptsname(master), O_RDWR | O_NOCTTY);
  ASSERT_GE(terminal, 0);
  winsize set{};
  set.ws_col = 101;
  set.ws_row = 33;
  ASSERT_EQ(ioctl(terminal, TIOCSWINSZ, &set), 0);
  FakeEnv env;
  env.vars = {{"COLUMNS", "132"}, {"LINES", "50"}};  // the kernel's size comes first
  TerminalSize size = TerminalSizeOf(terminal, env.Getenv());
  EXPECT_EQ(size.columns, 101);
  EXPECT_EQ(size.rows, 33);
  set.ws_col = 0;  // a terminal that does not know its size
  set.ws_row = 0;
  ASSERT_EQ(ioctl(terminal, TIOCSWINSZ, &set), 0);
  size = TerminalSizeOf(terminal, env.Getenv());
  EXPECT_EQ(size.columns, 132);
  EXPECT_EQ(size.rows, 50);
  close(terminal);
  close(master);
}

TEST(WatchedRunsTest, FirstReportedOrderLatestStateAndWhatDidNotSucceed) {
  WatchedRuns runs;
  runs.Update(MakeRun("r2", "b", v1::RUN_STATE_RUNNING, 10, 300));
  runs.Update(MakeRun("r1", "a", v1::RUN_STATE_QUEUED, 0, 300));
  runs.Update(MakeRun("r2", "b", v1::RUN_STATE_SUCCEEDED, 300, 300));
  ASSERT_EQ(runs.size(), 2u);
  std::vector<v1::Run> now = runs.Runs();
  ASSERT_EQ(now.size(), 2u);
  EXPECT_EQ(now[0].id(), "r2");
  EXPECT_EQ(now[0].state(), v1::RUN_STATE_SUCCEEDED);
  EXPECT_EQ(now[1].id(), "r1");
  EXPECT_EQ(runs.NotSucceeded(),
            "1 of 2 watched runs did not succeed: r1 queued; `sgtctl show RUN` says why");
  runs.Update(MakeRun("r1", "a", v1::RUN_STATE_SUCCEEDED, 300, 300));
  EXPECT_EQ(runs.NotSucceeded(), "");
  runs.Update(MakeRun("r3", "c", v1::RUN_STATE_FAILED, 3, 300));
  runs.Update(MakeRun("r4", "d", v1::RUN_STATE_CANCELLED, 0, 300));
  EXPECT_EQ(runs.NotSucceeded(),
            "2 of 4 watched runs did not succeed: r3 failed, r4 cancelled; `sgtctl show RUN` says "
            "why");
}

}  // namespace
}  // namespace sgt::cli
