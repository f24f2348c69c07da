// What `sgtctl watch` prints when stdout is not a terminal (a pipe, a file, a CI log): a log a
// person reads afterwards, not a line per step. Per run, in order:
//   - its growth decisions, one line each, as they become known (a decision with the same reason
//     as the one before, such as "structure is fixed" at every later boundary, is not repeated);
//   - a line per evaluation (a new validation perplexity, with the step the run had reached when
//     it was reported: the evaluation itself may be a step or two older);
//   - a line at each state change and each new attempt (the failure reason on failed, lost,
//     cancelled and paused runs);
//   - while it runs, a progress line at most every `progress_every_s` seconds, and only when its
//     step moved since its previous line.
// Pure logic: the caller passes the time and the function that fetches decisions (the
// coordinator's QueryTelemetry in sgtctl, a table in the tests).
//
//   WatchLog log(10, fetch);
//   for (const v1::Run& run : response.runs())
//     for (const std::string& line : log.Update(run, NowSeconds())) std::cout << line << "\n";
#ifndef SGT_CLI_WATCH_LOG_H_
#define SGT_CLI_WATCH_LOG_H_

#include <cstdint>
#include <functional>
#include <limits>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "sgt/v1/types.pb.h"

namespace sgt::cli {

class WatchLog {
 public:
  // The growth decisions of run `run_id` at steps >= `from_step`, in step order. An error is
  // not fatal: the same steps are asked for again at the run's next line.
  using FetchDecisions = std::function<absl::StatusOr<std::vector<v1::GrowthDecision>>(
      const std::string& run_id, int64_t from_step)>;

  WatchLog(double progress_every_s, FetchDecisions fetch,
           absl::TimeZone tz = absl::LocalTimeZone());

  // The lines to print for `run`, as the Watch stream reported it at `now` (seconds, on any
  // clock that does not go back). Decisions are fetched only when the run prints a line and has
  // advanced since the previous fetch; never for vanilla runs, which make none.
  std::vector<std::string> Update(const v1::Run& run, double now);

 private:
  struct RunLog {
    v1::RunState state = v1::RUN_STATE_UNSPECIFIED;
    int32_t attempt = -1;
    double val_ppl = 0;
    int64_t printed_step = -1;
    double printed_at = -std::numeric_limits<double>::infinity();
    int64_t decisions_from = 0;      // first step whose decisions are not printed yet
    int64_t decisions_at_step = -1;  // the run's step when decisions were last fetched
    std::string last_reason;         // of the newest decision printed
  };

  std::vector<std::string> NewDecisions(const v1::Run& run, RunLog& log);

  double progress_every_s_;
  FetchDecisions fetch_;
  absl::TimeZone tz_;
  std::map<std::string, RunLog> runs_;
};

// "2025-11-23T11:54:10 r3 growth at step 100: activate layer 2 (...); heads [1, 3]", timed by
// the run's updated_at.
std::string DecisionLine(const v1::Run& run, const v1::GrowthDecision& decision,
                         absl::TimeZone tz = absl::LocalTimeZone());

// "2025-11-23T11:54:10 r3 eval as of step 100: val loss 5.137 val ppl 170.31".
std::string EvalLine(const v1::Run& run, absl::TimeZone tz = absl::LocalTimeZone());

}  // namespace sgt::cli

#endif  // SGT_CLI_WATCH_LOG_H_
