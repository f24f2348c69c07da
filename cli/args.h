// sgtctl's command line: flag parsing, target ids ("r12", "s3"), run states, and the exit codes
// (docs/cli.md). Pure logic, no network: every function here is tested in
// tests/cli/args_test.cc.
//
//   absl::StatusOr<ParsedArgs> args = ParseArgs(argv_rest, {{"reason", true}});
//   if (!args.ok()) return Fail(kExitUsage, args.status().message());
//   std::string reason = args->Get("reason");
#ifndef SGT_CLI_ARGS_H_
#define SGT_CLI_ARGS_H_

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "grpcpp/support/status.h"
#include "sgt/v1/types.pb.h"

namespace sgt::cli {

// sgtctl's exit status; `sgtctl --help` and docs/cli.md list the same table.
enum ExitCode : int {
  kExitOk = 0,
  kExitCoordinator = 1,  // the coordinator failed or could not be reached
  kExitUsage = 2,        // bad arguments or bad input (also INVALID_ARGUMENT)
  kExitNotFound = 3,     // NOT_FOUND
  kExitState = 4,        // FAILED_PRECONDITION: the target's state does not allow it
  kExitAuth = 5,         // UNAUTHENTICATED or PERMISSION_DENIED
  kExitRunsFailed = 6,   // watch: every run ended, not all succeeded
};

// The exit status for a failed call with this gRPC code (kExitOk for OK).
int ExitCodeFor(grpc::StatusCode code);

// The "sgtctl: ..." message (without the prefix) for a failed call to the coordinator at
// `address`: the server's message as is for input errors, and what to do for the rest
// (UNAVAILABLE names the address and how to start or point at a coordinator).
std::string DescribeRpcError(const grpc::Status& status, absl::string_view address, bool token_sent,
                             double deadline_s);

// One flag a command accepts: "--name VALUE" or "--name=VALUE" when it takes a value, else
// "--name"; `short_name` adds "-x" as a synonym.
struct FlagSpec {
  std::string name;
  bool takes_value = false;
  bool repeated = false;  // may be given more than once (--set, --state)
  char short_name = 0;
};

struct ParsedArgs {
  std::vector<std::string> positional;
  // Flag name (no dashes) -> values in command-line order; "" for flags without a value.
  std::map<std::string, std::vector<std::string>> flags;

  bool Has(const std::string& name) const { return flags.count(name) > 0; }
  // The flag's last value, or `fallback` when it was not given.
  std::string Get(const std::string& name, const std::string& fallback = "") const;
  // Every value of a repeated flag (empty when not given).
  std::vector<std::string> All(const std::string& name) const;
};

// Parses `args` against `specs`. With `stop_at_positional`, parsing ends at the first positional
// argument, which with everything after it lands in `positional` unparsed (global options
// before the command). "--" ends the flags. Returns InvalidArgument naming the flag for an
// unknown flag, a missing value, a value given to a flag that takes none, or a repeat of a flag
// that is not repeatable.
absl::StatusOr<ParsedArgs> ParseArgs(const std::vector<std::string>& args,
                                     const std::vector<FlagSpec>& specs,
                                     bool stop_at_positional = false);

enum class TargetKind { kRun, kSweep };

// Classifies an id: "r<N>" is a run, "s<N>" a sweep. Returns InvalidArgument naming `arg` and
// the expected form when it is neither, or when it is a kind the command does not take.
absl::StatusOr<TargetKind> ParseTarget(absl::string_view arg, bool runs_ok = true,
                                       bool sweeps_ok = true);

// "queued", "running", ... (the enum name without RUN_STATE_, lower case; any case accepted).
// Returns InvalidArgument listing the valid names otherwise.
absl::StatusOr<v1::RunState> ParseRunState(absl::string_view name);

// A decimal integer in [min, max] for `flag`; InvalidArgument naming the flag otherwise.
absl::StatusOr<int64_t> ParseInteger(absl::string_view value, absl::string_view flag, int64_t min,
                                     int64_t max);

// "growth.k_max=2" -> {"growth.k_max", "2"}; InvalidArgument when there is no '=' or no key.
absl::StatusOr<std::pair<std::string, std::string>> ParseSetting(absl::string_view text);

// File content with surrounding whitespace removed (the bearer token); InvalidArgument naming
// the file when it cannot be read or is empty.
absl::StatusOr<std::string> ReadTokenFile(const std::string& path);

// A whole file; InvalidArgument naming the file and the OS error when it cannot be read.
absl::StatusOr<std::string> ReadWholeFile(const std::string& path);

}  // namespace sgt::cli

#endif  // SGT_CLI_ARGS_H_
