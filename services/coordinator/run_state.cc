// The run state machine (docs/api.md#run-states): state names and the table of legal transitions.
#include "services/coordinator/run_state.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "services/common/ids.h"

namespace sgt::coord {

namespace {

using v1::RunState;

// The table of docs/api.md#run-states, one entry per (from, to); the triggers are in the doc.
const std::vector<std::pair<RunState, RunState>> kLegal = {
    // SubmitSweep, Fork.
    {v1::RUN_STATE_UNSPECIFIED, v1::RUN_STATE_QUEUED},
    // The scheduler; Pause before it started; Cancel.
    {v1::RUN_STATE_QUEUED, v1::RUN_STATE_ASSIGNED},
    {v1::RUN_STATE_QUEUED, v1::RUN_STATE_PAUSED},
    {v1::RUN_STATE_QUEUED, v1::RUN_STATE_CANCELLED},
    // On a worker: its first RUNNING; Pause; the worker's end statuses; Cancel; a loss.
    {v1::RUN_STATE_ASSIGNED, v1::RUN_STATE_RUNNING},
    {v1::RUN_STATE_ASSIGNED, v1::RUN_STATE_PAUSING},
    {v1::RUN_STATE_ASSIGNED, v1::RUN_STATE_PAUSED},
    {v1::RUN_STATE_ASSIGNED, v1::RUN_STATE_SUCCEEDED},
    {v1::RUN_STATE_ASSIGNED, v1::RUN_STATE_FAILED},
    {v1::RUN_STATE_ASSIGNED, v1::RUN_STATE_CANCELLED},
    {v1::RUN_STATE_ASSIGNED, v1::RUN_STATE_LOST},
    {v1::RUN_STATE_RUNNING, v1::RUN_STATE_PAUSING},
    {v1::RUN_STATE_RUNNING, v1::RUN_STATE_PAUSED},
    {v1::RUN_STATE_RUNNING, v1::RUN_STATE_SUCCEEDED},
    {v1::RUN_STATE_RUNNING, v1::RUN_STATE_FAILED},
    {v1::RUN_STATE_RUNNING, v1::RUN_STATE_CANCELLED},
    {v1::RUN_STATE_RUNNING, v1::RUN_STATE_LOST},
    {v1::RUN_STATE_PAUSING, v1::RUN_STATE_PAUSED},
    {v1::RUN_STATE_PAUSING, v1::RUN_STATE_SUCCEEDED},
    {v1::RUN_STATE_PAUSING, v1::RUN_STATE_FAILED},
    {v1::RUN_STATE_PAUSING, v1::RUN_STATE_CANCELLED},
    {v1::RUN_STATE_PAUSING, v1::RUN_STATE_LOST},
    // Resume; Cancel.
    {v1::RUN_STATE_PAUSED, v1::RUN_STATE_QUEUED},
    {v1::RUN_STATE_PAUSED, v1::RUN_STATE_CANCELLED},
    // A loss is passing: the same step re-queues, pauses or fails the run. A loss whose next
    // step could not be stored waits in `lost` for the next tick, and may be cancelled meanwhile.
    {v1::RUN_STATE_LOST, v1::RUN_STATE_QUEUED},
    {v1::RUN_STATE_LOST, v1::RUN_STATE_PAUSED},
    {v1::RUN_STATE_LOST, v1::RUN_STATE_FAILED},
    {v1::RUN_STATE_LOST, v1::RUN_STATE_CANCELLED},
};

}  // namespace

bool IsActive(RunState s) {
  return s == v1::RUN_STATE_ASSIGNED || s == v1::RUN_STATE_RUNNING || s == v1::RUN_STATE_PAUSING;
}

bool IsEnded(RunState s) {
  return s == v1::RUN_STATE_SUCCEEDED || s == v1::RUN_STATE_FAILED || s == v1::RUN_STATE_CANCELLED;
}

const char* RunStateName(RunState s) {
  switch (s) {
    case v1::RUN_STATE_QUEUED:
      return "queued";
    case v1::RUN_STATE_ASSIGNED:
      return "assigned";
    case v1::RUN_STATE_RUNNING:
      return "running";
    case v1::RUN_STATE_PAUSING:
      return "pausing";
    case v1::RUN_STATE_PAUSED:
      return "paused";
    case v1::RUN_STATE_SUCCEEDED:
      return "succeeded";
    case v1::RUN_STATE_FAILED:
      return "failed";
    case v1::RUN_STATE_CANCELLED:
      return "cancelled";
    case v1::RUN_STATE_LOST:
      return "lost";
    default:
      return "unspecified";
  }
}

RunState RunStateFromName(const std::string& name) {
  for (int i = v1::RunState_MIN; i <= v1::RunState_MAX; ++i) {
    const auto s = static_cast<RunState>(i);
    if (v1::RunState_IsValid(i) && name == RunStateName(s)) return s;
  }
  return v1::RUN_STATE_UNSPECIFIED;
}

const std::vector<std::pair<RunState, RunState>>& LegalTransitions() { return kLegal; }

bool IsLegalTransition(RunState from, RunState to) {
  return std::find(kLegal.begin(), kLegal.end(), std::make_pair(from, to)) != kLegal.end();
}

absl::Status CheckTransition(int64_t run_id, RunState from, RunState to) {
  if (IsLegalTransition(from, to)) return absl::OkStatus();
  std::vector<std::string> allowed;
  for (const auto& [f, t] : kLegal) {
    if (f == from) allowed.push_back(RunStateName(t));
  }
  return absl::InternalError(absl::StrCat(
      "run ", RunId(run_id), ": ", RunStateName(from), " -> ", RunStateName(to),
      " is not a transition of the run state machine (docs/api.md#run-states); from ",
      RunStateName(from), " a run may go to ",
      allowed.empty() ? std::string("nothing (it has ended)") : absl::StrJoin(allowed, ", "),
      "; this is a coordinator bug: report it with the coordinator's log"));
}

}  // namespace sgt::coord
