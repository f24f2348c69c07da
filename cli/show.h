// What sgtctl prints for the commands that look: `ls` (sweeps, or runs), `show RUN`, `show SWEEP`
// and `workers`. Each is a pure function of the coordinator's response (and the time zone, or
// the time now, it shows times in), so that tests/cli/show_test.cc can check the text exactly;
// sgtctl.cc makes the call and prints what these return.
//
//   std::cout << ShowRun(get_run_response);
#ifndef SGT_CLI_SHOW_H_
#define SGT_CLI_SHOW_H_

#include <string>

#include "absl/time/time.h"
#include "google/protobuf/repeated_ptr_field.h"
#include "sgt/v1/coordinator.pb.h"
#include "sgt/v1/types.pb.h"

namespace sgt::cli {

// The table of `ls` without a sweep: ID NAME PRIORITY "MAX CONC" RUNS "BY STATE" CREATED, one
// sweep a row ("-" for no concurrency limit); a hint to submit one when there is none.
std::string SweepsText(const v1::ListSweepsResponse& response,
                       absl::TimeZone tz = absl::LocalTimeZone());

// The runs table of `ls SWEEP`, `ls --state S` and `show SWEEP`: ID [SWEEP] NAME VARIANT STATE
// STEP ATTEMPT WORKER LOSS "VAL PPL", numbers right-aligned, "-" for no worker and for metrics
// not reported yet. With `with_sweep`, the SWEEP column (runs of several sweeps). When a run
// spans several workers, a "NODES x DEV" column after ATTEMPT (nodes x devices on each), and
// such a run's WORKER is every node's worker joined by "+", node 0 first.
std::string RunsTable(const google::protobuf::RepeatedPtrField<v1::Run>& runs, bool with_sweep);

// What `ls` prints for runs: the runs table (with the sweep column when `sweep_id` is empty), or
// "no runs[ in SWEEP][ in the states asked for]" when there are none.
std::string RunsText(const v1::ListRunsResponse& response, const std::string& sweep_id,
                     bool states_asked);

// `show RUN`: every field of the run (aligned "key  value" lines; a multi-node run's devices as
// "D on each of N nodes (R ranks)" and its workers by node), its config and summary JSON
// indented, then its state transitions and its checkpoints as tables ("none" when empty).
std::string ShowRun(const v1::GetRunResponse& response, absl::TimeZone tz = absl::LocalTimeZone());

// `show SWEEP`: the sweep's fields, its runs table and its sweep file, indented.
std::string ShowSweep(const v1::GetSweepResponse& response,
                      absl::TimeZone tz = absl::LocalTimeZone());

// `workers`: ID NAME HOST CONNECTED DEVICES (free/all) RUNS LEASE "LAST SEEN", the lease and the
// last heartbeat relative to `now` (Unix seconds); a hint to start sgt-worker when there is none.
std::string WorkersText(const v1::ListWorkersResponse& response, double now);

}  // namespace sgt::cli

#endif  // SGT_CLI_SHOW_H_
