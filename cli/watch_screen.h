// What `sgtctl watch` shows on a terminal: a summary line and one progress line per run, redrawn
// in place as the Watch stream reports changes (cli/watch_log.h is what it prints to a pipe or
// a file instead); the terminal's size; and the runs a watch follows, which decide its exit
// status. Frames are pure text for a given terminal size, tested in
// tests/cli/watch_screen_test.cc; sgtctl.cc writes them to stdout.
//
//   WatchScreen screen("s1");
//   std::cout << screen.Frame(runs.Runs(), TerminalSizeOf(STDOUT_FILENO, getenv)) << std::flush;
#ifndef SGT_CLI_WATCH_SCREEN_H_
#define SGT_CLI_WATCH_SCREEN_H_

#include <cstddef>
#include <functional>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "sgt/v1/types.pb.h"

namespace sgt::cli {

struct TerminalSize {
  int columns = 80;
  int rows = 24;
};

// The size of the terminal on `fd` as the kernel reports it (TIOCGWINSZ). Where it reports none
// (not a terminal, or 0x0), the positive integers in the environment variables COLUMNS and
// LINES as `getenv` returns them (nullptr: unset), each on its own; else 80 columns, 24 rows.
TerminalSize TerminalSizeOf(int fd, const std::function<const char*(const char*)>& getenv);

// The live screen of one `watch`.
class WatchScreen {
 public:
  // `target`: the run or sweep watched, the start of the summary line.
  explicit WatchScreen(std::string target) : target_(std::move(target)) {}

  // The bytes that replace the previous frame (none on the first call) with `runs`, in order,
  // on a terminal of `size`: "TARGET: N runs, <state counts>", then a progress line per run
  // (cli/format.h ProgressLine, bars lined up), each line cut to columns - 1 so that none wraps.
  // When the runs do not fit in rows - 2 lines, the ended runs are left out first and the last
  // line counts those not shown. Each line is erased before it is written; what a longer previous
  // frame left below is cleared.
  std::string Frame(const std::vector<v1::Run>& runs, TerminalSize size);

 private:
  std::string target_;
  size_t drawn_ = 0;  // lines of the previous frame
};

// The runs a watch follows, in the order the stream first reported them, each as last reported.
class WatchedRuns {
 public:
  void Update(const v1::Run& run);
  std::vector<v1::Run> Runs() const;
  size_t size() const { return order_.size(); }
  // "" when every run succeeded; else "2 of 3 watched runs did not succeed: r2 failed, r3
  // cancelled; `sgtctl show RUN` says why".
  std::string NotSucceeded() const;

 private:
  std::vector<std::string> order_;
  std::map<std::string, v1::Run> runs_;
};

}  // namespace sgt::cli

#endif  // SGT_CLI_WATCH_SCREEN_H_
