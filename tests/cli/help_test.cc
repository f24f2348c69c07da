// Tests for sgtctl's help texts (cli/help.h): the exit codes `sgtctl --help` lists are the ones
// sgtctl returns (cli/args.h), and one command's help names it and the global options.
#include "cli/help.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "cli/args.h"

namespace sgt::cli {
namespace {

// The lines of kUsage after "exit codes:" up to the next blank line.
std::vector<std::string> ExitCodeLines() {
  std::vector<std::string> lines = absl::StrSplit(kUsage, '\n');
  std::vector<std::string> codes;
  bool in_section = false;
  for (const std::string& line : lines) {
    if (line == "exit codes:") {
      in_section = true;
    } else if (in_section && line.empty()) {
      break;
    } else if (in_section) {
      codes.push_back(line);
    }
  }
  return codes;
}

TEST(HelpTest, TheExitCodesListedAreTheOnesReturned) {
  std::vector<std::string> lines = ExitCodeLines();
  ASSERT_EQ(lines.size(), static_cast<size_t>(kExitRunsFailed) + 1);
  for (int code = kExitOk; code <= kExitRunsFailed; ++code) {
    EXPECT_TRUE(absl::StartsWith(lines[code], absl::StrCat("  ", code, "  "))) << lines[code];
  }
  // The gRPC codes a line names map to its exit code.
  EXPECT_EQ(ExitCodeFor(grpc::StatusCode::UNAVAILABLE), kExitCoordinator);
  EXPECT_TRUE(absl::StrContains(lines[kExitCoordinator], "UNAVAILABLE"));
  EXPECT_EQ(ExitCodeFor(grpc::StatusCode::DEADLINE_EXCEEDED), kExitCoordinator);
  EXPECT_TRUE(absl::StrContains(lines[kExitCoordinator], "DEADLINE_EXCEEDED"));
  EXPECT_EQ(ExitCodeFor(grpc::StatusCode::INVALID_ARGUMENT), kExitUsage);
  EXPECT_TRUE(absl::StrContains(lines[kExitUsage], "INVALID_ARGUMENT"));
  EXPECT_EQ(ExitCodeFor(grpc::StatusCode::NOT_FOUND), kExitNotFound);
  EXPECT_TRUE(absl::StrContains(lines[kExitNotFound], "NOT_FOUND"));
  EXPECT_EQ(ExitCodeFor(grpc::StatusCode::FAILED_PRECONDITION), kExitState);
  EXPECT_TRUE(absl::StrContains(lines[kExitState], "FAILED_PRECONDITION"));
  EXPECT_EQ(ExitCodeFor(grpc::StatusCode::UNAUTHENTICATED), kExitAuth);
  EXPECT_EQ(ExitCodeFor(grpc::StatusCode::PERMISSION_DENIED), kExitAuth);
  EXPECT_TRUE(absl::StrContains(lines[kExitAuth], "unauthenticated or permission denied"));
}

TEST(HelpTest, TheOverviewListsEveryCommandAndGlobalOption) {
  for (const char* command :
       {"submit", "plan", "ls", "show", "watch", "pause", "resume", "snapshot", "cancel", "fork",
        "edit", "workers", "export", "report", "help"}) {
    EXPECT_TRUE(absl::StrContains(kUsage, absl::StrCat("\n  ", command, " "))) << command;
  }
  for (const char* option : {"--coordinator ADDR", "--token-file FILE", "--tls-ca FILE",
                             "--timeout SECONDS", "--json", "-h, --help"}) {
    EXPECT_TRUE(absl::StrContains(kUsage, absl::StrCat("\n  ", option, " "))) << option;
  }
  EXPECT_TRUE(absl::EndsWith(kUsage, "docs/cli.md has examples of every command.\n"));
}

TEST(HelpTest, OneCommandsHelp) {
  EXPECT_EQ(CommandHelp("show RUN|SWEEP"),
            "usage: sgtctl [GLOBAL OPTIONS] show RUN|SWEEP\n"
            "\n"
            "global options: --coordinator ADDR, --token-file FILE, --tls-ca FILE, --timeout "
            "SECONDS, --json\n"
            "docs/cli.md describes the command and its output; `sgtctl --help` lists the exit "
            "codes.\n");
}

}  // namespace
}  // namespace sgt::cli
