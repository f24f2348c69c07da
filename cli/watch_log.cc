// sgtctl watch on a pipe: state changes, evaluations, growth decisions and paced progress lines.
#include "cli/watch_log.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "cli/format.h"

namespace sgt::cli {

namespace {

// One line of text: a multi-line reason is folded.
std::string OneLine(std::string text) {
  std::replace(text.begin(), text.end(), '\n', ' ');
  std::replace(text.begin(), text.end(), '\r', ' ');
  return text;
}

}  // namespace

std::string DecisionLine(const v1::Run& run, const v1::GrowthDecision& decision,
                         absl::TimeZone tz) {
  return absl::StrCat(FormatTimeToken(run.updated_at(), tz), " ", run.id(), " growth at step ",
                      decision.step(), ": ",
                      decision.reason().empty() ? decision.action() : OneLine(decision.reason()));
}

std::string EvalLine(const v1::Run& run, absl::TimeZone tz) {
  return absl::StrCat(FormatTimeToken(run.updated_at(), tz), " ", run.id(), " eval as of step ",
                      run.step(), ": val loss ", FormatMetric(run.metrics().val_loss(), 3),
                      " val ppl ", FormatMetric(run.metrics().val_ppl(), 2));
}

WatchLog::WatchLog(double progress_every_s, FetchDecisions fetch, absl::TimeZone tz)
    : progress_every_s_(progress_every_s), fetch_(std::move(fetch)), tz_(tz) {}

std::vector<std::string> WatchLog::NewDecisions(const v1::Run& run, RunLog& log) {
  std::vector<std::string> lines;
  if (run.variant() == "vanilla" || !fetch_ || run.step() <= log.decisions_at_step) return lines;
  absl::StatusOr<std::vector<v1::GrowthDecision>> decisions = fetch_(run.id(), log.decisions_from);
  if (!decisions.ok()) return lines;  // asked again at the run's next line
  log.decisions_at_step = run.step();
  // Moved past the fetched steps only at the end: a boundary can make several decisions.
  int64_t next_from = log.decisions_from;
  for (const v1::GrowthDecision& decision : *decisions) {
    next_from = std::max(next_from, decision.step() + 1);
    if (decision.step() < log.decisions_from) continue;
    // "structure is fixed" at every later boundary, or the same hold: said once.
    if (decision.reason() == log.last_reason && !decision.reason().empty()) continue;
    log.last_reason = decision.reason();
    lines.push_back(DecisionLine(run, decision, tz_));
  }
  log.decisions_from = next_from;
  return lines;
}

std::vector<std::string> WatchLog::Update(const v1::Run& run, double now) {
  RunLog& log = runs_[run.id()];
  const bool changed = run.state() != log.state || run.attempt() != log.attempt;
  const bool evaluated = run.metrics().val_ppl() != 0 && run.metrics().val_ppl() != log.val_ppl;
  const bool progressed =
      run.step() != log.printed_step && now - log.printed_at >= progress_every_s_;
  if (!changed && !evaluated && !progressed) return {};

  // Decisions first: they were made at or before the step the other lines report.
  std::vector<std::string> lines = NewDecisions(run, log);
  if (evaluated) {
    lines.push_back(EvalLine(run, tz_));
    log.val_ppl = run.metrics().val_ppl();
  }
  if (changed || progressed) {
    lines.push_back(ChangeLine(run, tz_));
    log.state = run.state();
    log.attempt = run.attempt();
    log.printed_step = run.step();
    log.printed_at = now;
  }
  return lines;
}

}  // namespace sgt::cli
