// The live `watch` screen, the terminal's size and the watched runs (cli/watch_screen.h).
#include "cli/watch_screen.h"

#include <sys/ioctl.h>

#include <algorithm>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "cli/format.h"

namespace sgt::cli {
namespace {

// The positive integer in environment variable `name`, or `fallback`.
int EnvSize(const std::function<const char*(const char*)>& getenv, const char* name, int fallback) {
  const char* text = getenv(name);
  int value = 0;
  if (text != nullptr && absl::SimpleAtoi(text, &value) && value > 0) return value;
  return fallback;
}

}  // namespace

TerminalSize TerminalSizeOf(int fd, const std::function<const char*(const char*)>& getenv) {
  winsize size{};
  if (ioctl(fd, TIOCGWINSZ, &size) == 0 && size.ws_col > 0 && size.ws_row > 0) {
    return {size.ws_col, size.ws_row};
  }
  TerminalSize fallback;
  return {EnvSize(getenv, "COLUMNS", fallback.columns), EnvSize(getenv, "LINES", fallback.rows)};
}

std::string WatchScreen::Frame(const std::vector<v1::Run>& runs, TerminalSize size) {
  std::vector<std::string> lines;
  lines.push_back(absl::StrCat(target_, ": ", runs.size(), runs.size() == 1 ? " run" : " runs",
                               ", ", StateCounts(runs)));
  // Lines beyond the screen could not be redrawn in place: keep the runs still going, in
  // order, and count the rest.
  size_t room = static_cast<size_t>(std::max(size.rows - 2, 1));
  std::vector<const v1::Run*> shown;
  for (const v1::Run& run : runs) shown.push_back(&run);
  if (shown.size() > room) {
    shown.clear();
    for (const v1::Run& run : runs) {
      if (!IsEnded(run.state()) && shown.size() < room - 1) shown.push_back(&run);
    }
  }
  std::vector<v1::Run> layout_runs;
  for (const v1::Run* run : shown) layout_runs.push_back(*run);
  ProgressLayout layout = FitProgressLayout(layout_runs, size.columns - 1);
  for (const v1::Run* run : shown) lines.push_back(ProgressLine(*run, layout));
  if (shown.size() < runs.size()) {
    lines.push_back(absl::StrCat("… ", runs.size() - shown.size(),
                                 " more not shown (ended runs first); the terminal is too short"));
  }
  std::string frame;
  if (drawn_ > 0) absl::StrAppend(&frame, "\x1b[", drawn_, "A\r");
  for (const std::string& line : lines) {
    absl::StrAppend(&frame, "\x1b[2K", TruncateDisplay(line, size.columns - 1), "\n");
  }
  absl::StrAppend(&frame, "\x1b[J");  // clear what a longer previous frame left below
  drawn_ = lines.size();
  return frame;
}

void WatchedRuns::Update(const v1::Run& run) {
  if (runs_.count(run.id()) == 0) order_.push_back(run.id());
  runs_[run.id()] = run;
}

std::vector<v1::Run> WatchedRuns::Runs() const {
  std::vector<v1::Run> runs;
  for (const std::string& id : order_) runs.push_back(runs_.at(id));
  return runs;
}

std::string WatchedRuns::NotSucceeded() const {
  std::vector<std::string> not_succeeded;
  for (const std::string& id : order_) {
    const v1::Run& run = runs_.at(id);
    if (run.state() != v1::RUN_STATE_SUCCEEDED) {
      not_succeeded.push_back(absl::StrCat(id, " ", RunStateName(run.state())));
    }
  }
  if (not_succeeded.empty()) return "";
  return absl::StrCat(not_succeeded.size(), " of ", order_.size(),
                      " watched runs did not succeed: ", absl::StrJoin(not_succeeded, ", "),
                      "; `sgtctl show RUN` says why");
}

}  // namespace sgt::cli
