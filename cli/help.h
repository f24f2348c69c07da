// sgtctl's help: the overview `sgtctl --help` and `sgtctl help` print (commands, global options,
// exit codes) and the short help of one command. Tested in tests/cli/help_test.cc, which checks
// the exit codes listed against ExitCode and ExitCodeFor (cli/args.h).
//
//   std::cout << kUsage;
//   std::cout << CommandHelp("show RUN|SWEEP");
#ifndef SGT_CLI_HELP_H_
#define SGT_CLI_HELP_H_

#include <string>

#include "absl/strings/string_view.h"

namespace sgt::cli {

// `sgtctl --help`: every command, the ids, the global options and the exit codes.
extern const char kUsage[];

// `sgtctl help COMMAND` and `sgtctl COMMAND --help`: the command's `usage` (its line in the
// command table, after "sgtctl "), the global options, and where to read more.
std::string CommandHelp(absl::string_view usage);

}  // namespace sgt::cli

#endif  // SGT_CLI_HELP_H_
