// The run state machine of docs/api.md#run-states: which states hold devices, which are final,
// and the one table of legal transitions that every state change of a run is checked against.
// Torch-free and storage-free; tests/services/coordinator/run_state_test.cc checks the table
// against the one in docs/api.md, row by row.
#ifndef SGT_SERVICES_COORDINATOR_RUN_STATE_H_
#define SGT_SERVICES_COORDINATOR_RUN_STATE_H_

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "sgt/v1/types.pb.h"

namespace sgt::coord {

// assigned, running, pausing: the run is on a worker, holds devices and counts against its
// sweep's max_concurrent.
bool IsActive(v1::RunState s);
// succeeded, failed, cancelled: final.
bool IsEnded(v1::RunState s);

// The lower-case name used in the store, logs and sgtctl ("queued", "running", ...);
// "unspecified" for RUN_STATE_UNSPECIFIED (a run being created).
const char* RunStateName(v1::RunState s);
// Inverse of RunStateName; RUN_STATE_UNSPECIFIED for an unknown name.
v1::RunState RunStateFromName(const std::string& name);

// Every legal (from, to) pair. `from` RUN_STATE_UNSPECIFIED stands for a run being created.
const std::vector<std::pair<v1::RunState, v1::RunState>>& LegalTransitions();
bool IsLegalTransition(v1::RunState from, v1::RunState to);

// OK for a legal transition; else INTERNAL (the coordinator tried something its own state
// machine forbids), naming the run, both states and the states `from` may go to.
absl::Status CheckTransition(int64_t run_id, v1::RunState from, v1::RunState to);

}  // namespace sgt::coord

#endif  // SGT_SERVICES_COORDINATOR_RUN_STATE_H_
