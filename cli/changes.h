// What sgtctl prints after the commands that change something: `submit`, `pause`, `resume`,
// `snapshot`, `cancel`, `fork` and `edit`. Pure functions of the coordinator's response and the
// command's arguments, tested in tests/cli/changes_test.cc; sgtctl.cc prints what they return.
//
//   std::cout << ActionText("pause", "s1", action_response);
#ifndef SGT_CLI_CHANGES_H_
#define SGT_CLI_CHANGES_H_

#include <cstdint>
#include <string>

#include "sgt/v1/coordinator.pb.h"

namespace sgt::cli {

// `submit FILE`: "submitted sweep s1 "NAME" from FILE: N runs", then ID NAME VARIANT STATE of
// each run.
std::string SubmitText(const v1::SubmitSweepResponse& response, const std::string& file);

// `pause|resume|snapshot|cancel TARGET` (`verb`): "VERB TARGET: N runs changed, M unchanged",
// then the runs changed (ID NAME STATE STEP) and those unchanged with the reason (ID NAME STATE
// REASON), each table only when it has rows.
std::string ActionText(const std::string& verb, const std::string& target,
                       const v1::ActionResponse& response);

// `fork RUN --from-step N`: the new run's id, name, state and sweep, and its settings.
std::string ForkText(const std::string& run_id, int64_t from_step,
                     const v1::ForkResponse& response);

// `edit TARGET`: the sweep's priority and concurrency limit when a sweep was edited, the number
// of runs changed and their ID NAME STATE PRIORITY STEP.
std::string EditText(const v1::EditResponse& response);

}  // namespace sgt::cli

#endif  // SGT_CLI_CHANGES_H_
