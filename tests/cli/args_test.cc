// Tests for sgtctl's command line (cli/args.h): flag parsing, target ids, run states, exit codes,
// error messages and the token file.
#include <gtest/gtest.h>

#include <fstream>
#include <string>
#include <vector>

#include "cli/args.h"

namespace sgt::cli {
namespace {

testing::AssertionResult Contains(const std::string& message, const std::string& piece) {
  if (message.find(piece) != std::string::npos) return testing::AssertionSuccess();
  return testing::AssertionFailure() << "\n  message: " << message << "\n  lacks:   " << piece;
}

const std::vector<FlagSpec> kSpecs = {
    {"reason", true}, {"set", true, true}, {"json", false}, {"output", true, false, 'o'}};

TEST(ParseArgsTest, SeparatesFlagsFromPositionals) {
  absl::StatusOr<ParsedArgs> args =
      ParseArgs({"r12", "--reason", "too slow", "--json", "--set=a.b=1", "--set", "c=2"}, kSpecs);
  ASSERT_TRUE(args.ok()) << args.status();
  EXPECT_EQ(args->positional, std::vector<std::string>({"r12"}));
  EXPECT_EQ(args->Get("reason"), "too slow");
  EXPECT_TRUE(args->Has("json"));
  EXPECT_FALSE(args->Has("output"));
  EXPECT_EQ(args->Get("output", "fallback"), "fallback");
  // "--set=a.b=1" splits at the first '=' only.
  EXPECT_EQ(args->All("set"), std::vector<std::string>({"a.b=1", "c=2"}));
}

TEST(ParseArgsTest, ShortNameIsASynonym) {
  absl::StatusOr<ParsedArgs> args = ParseArgs({"-o", "out.csv", "r1"}, kSpecs);
  ASSERT_TRUE(args.ok()) << args.status();
  EXPECT_EQ(args->Get("output"), "out.csv");
  EXPECT_EQ(args->positional, std::vector<std::string>({"r1"}));
}

TEST(ParseArgsTest, RejectsUnknownMissingAndMisusedFlags) {
  absl::StatusOr<ParsedArgs> unknown = ParseArgs({"--colour"}, kSpecs);
  ASSERT_FALSE(unknown.ok());
  EXPECT_TRUE(Contains(std::string(unknown.status().message()), "'--colour'"));

  absl::StatusOr<ParsedArgs> missing = ParseArgs({"r1", "--reason"}, kSpecs);
  ASSERT_FALSE(missing.ok());
  EXPECT_TRUE(Contains(std::string(missing.status().message()), "needs a value"));

  absl::StatusOr<ParsedArgs> valued_bool = ParseArgs({"--json=yes"}, kSpecs);
  ASSERT_FALSE(valued_bool.ok());
  EXPECT_TRUE(Contains(std::string(valued_bool.status().message()), "takes no value"));

  absl::StatusOr<ParsedArgs> twice = ParseArgs({"--reason", "a", "--reason", "b"}, kSpecs);
  ASSERT_FALSE(twice.ok());
  EXPECT_TRUE(Contains(std::string(twice.status().message()), "given twice"));
}

TEST(ParseArgsTest, DoubleDashEndsFlagsAndNegativeNumbersArePositional) {
  absl::StatusOr<ParsedArgs> args = ParseArgs({"--", "--json", "-5"}, kSpecs);
  ASSERT_TRUE(args.ok()) << args.status();
  EXPECT_FALSE(args->Has("json"));
  EXPECT_EQ(args->positional, std::vector<std::string>({"--json", "-5"}));

  // A value-taking flag takes the next argument even when it looks like a number.
  absl::StatusOr<ParsedArgs> negative = ParseArgs({"--reason", "-1"}, kSpecs);
  ASSERT_TRUE(negative.ok()) << negative.status();
  EXPECT_EQ(negative->Get("reason"), "-1");
}

TEST(ParseArgsTest, StopsAtTheCommandForGlobalOptions) {
  absl::StatusOr<ParsedArgs> args =
      ParseArgs({"--json", "ls", "--state", "running"}, kSpecs, /*stop_at_positional=*/true);
  ASSERT_TRUE(args.ok()) << args.status();
  EXPECT_TRUE(args->Has("json"));
  // "--state" is not a known flag, yet it is not parsed: it belongs to the command.
  EXPECT_EQ(args->positional, std::vector<std::string>({"ls", "--state", "running"}));
}

TEST(ParseTargetTest, ClassifiesRunsAndSweeps) {
  ASSERT_TRUE(ParseTarget("r12").ok());
  EXPECT_EQ(*ParseTarget("r12"), TargetKind::kRun);
  EXPECT_EQ(*ParseTarget("s3"), TargetKind::kSweep);
}

TEST(ParseTargetTest, RejectsOtherFormsNamingTheArgumentAndTheForm) {
  for (const char* bad : {"x1", "r", "s", "r1a", "12", "", "r0", "w2", "R12"}) {
    absl::StatusOr<TargetKind> kind = ParseTarget(bad);
    ASSERT_FALSE(kind.ok()) << bad;
    EXPECT_EQ(kind.status().code(), absl::StatusCode::kInvalidArgument);
    std::string message(kind.status().message());
    EXPECT_TRUE(Contains(message, std::string("'") + bad + "'"));
    EXPECT_TRUE(Contains(message, "r<N>"));
    EXPECT_TRUE(Contains(message, "s<N>"));
  }
}

TEST(ParseTargetTest, RejectsTheWrongKind) {
  absl::StatusOr<TargetKind> sweep_for_run = ParseTarget("s3", /*runs_ok=*/true,
                                                         /*sweeps_ok=*/false);
  ASSERT_FALSE(sweep_for_run.ok());
  EXPECT_TRUE(Contains(std::string(sweep_for_run.status().message()), "a sweep id"));
  EXPECT_TRUE(Contains(std::string(sweep_for_run.status().message()), "a run id r<N>"));
  EXPECT_FALSE(ParseTarget("r3", false, true).ok());
  EXPECT_TRUE(ParseTarget("s3", false, true).ok());
}

TEST(ParseRunStateTest, AcceptsNamesInAnyCase) {
  EXPECT_EQ(*ParseRunState("running"), v1::RUN_STATE_RUNNING);
  EXPECT_EQ(*ParseRunState("QUEUED"), v1::RUN_STATE_QUEUED);
  EXPECT_EQ(*ParseRunState("RUN_STATE_PAUSED"), v1::RUN_STATE_PAUSED);
  EXPECT_EQ(*ParseRunState("lost"), v1::RUN_STATE_LOST);
  absl::StatusOr<v1::RunState> bad = ParseRunState("done");
  ASSERT_FALSE(bad.ok());
  EXPECT_TRUE(Contains(std::string(bad.status().message()), "succeeded"));
  EXPECT_FALSE(ParseRunState("unspecified").ok());
}

TEST(ExitCodeTest, MapsEveryDocumentedCode) {
  EXPECT_EQ(ExitCodeFor(grpc::StatusCode::OK), 0);
  EXPECT_EQ(ExitCodeFor(grpc::StatusCode::UNAVAILABLE), 1);
  EXPECT_EQ(ExitCodeFor(grpc::StatusCode::DEADLINE_EXCEEDED), 1);
  EXPECT_EQ(ExitCodeFor(grpc::StatusCode::INTERNAL), 1);
  EXPECT_EQ(ExitCodeFor(grpc::StatusCode::UNKNOWN), 1);
  EXPECT_EQ(ExitCodeFor(grpc::StatusCode::INVALID_ARGUMENT), 2);
  EXPECT_EQ(ExitCodeFor(grpc::StatusCode::NOT_FOUND), 3);
  EXPECT_EQ(ExitCodeFor(grpc::StatusCode::FAILED_PRECONDITION), 4);
  EXPECT_EQ(ExitCodeFor(grpc::StatusCode::UNAUTHENTICATED), 5);
  EXPECT_EQ(ExitCodeFor(grpc::StatusCode::PERMISSION_DENIED), 5);
  EXPECT_EQ(kExitRunsFailed, 6);
}

TEST(DescribeRpcErrorTest, UnavailableNamesTheAddressAndTheFix) {
  std::string message = DescribeRpcError(
      grpc::Status(grpc::StatusCode::UNAVAILABLE, "connection refused"), "gpu1:7070", false, 30);
  EXPECT_TRUE(Contains(message, "gpu1:7070"));
  EXPECT_TRUE(Contains(message, "connection refused"));
  EXPECT_TRUE(Contains(message, "start sgt-coordinator or pass --coordinator / SGT_COORDINATOR"));
}

TEST(DescribeRpcErrorTest, InputErrorsArePrintedAsTheServerSentThem) {
  const std::string text = "sweeps/a.yaml:3:5: grid.growth.k_max: value 0 is below 1; use 1..8";
  EXPECT_EQ(
      DescribeRpcError(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, text), "h:1", false, 30),
      text);
  EXPECT_EQ(
      DescribeRpcError(grpc::Status(grpc::StatusCode::NOT_FOUND, "no run r9"), "h:1", false, 30),
      "no run r9");
}

TEST(DescribeRpcErrorTest, UnauthenticatedSaysWhetherATokenWasSent) {
  grpc::Status status(grpc::StatusCode::UNAUTHENTICATED, "missing token");
  EXPECT_TRUE(Contains(DescribeRpcError(status, "h:1", false, 30), "no token was sent"));
  EXPECT_TRUE(Contains(DescribeRpcError(status, "h:1", true, 30), "was refused"));
}

TEST(ParseIntegerTest, ChecksRangeAndSyntax) {
  EXPECT_EQ(*ParseInteger("150", "--from-step", 1, 1000), 150);
  EXPECT_FALSE(ParseInteger("0", "--from-step", 1, 1000).ok());
  EXPECT_FALSE(ParseInteger("1001", "--from-step", 1, 1000).ok());
  absl::StatusOr<int64_t> bad = ParseInteger("12x", "--from-step", 1, 1000);
  ASSERT_FALSE(bad.ok());
  EXPECT_TRUE(Contains(std::string(bad.status().message()), "--from-step '12x'"));
}

TEST(ParseSettingTest, SplitsAtTheFirstEquals) {
  absl::StatusOr<std::pair<std::string, std::string>> s = ParseSetting("growth.k_max=2");
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->first, "growth.k_max");
  EXPECT_EQ(s->second, "2");
  EXPECT_EQ(ParseSetting("name=a=b")->second, "a=b");
  EXPECT_FALSE(ParseSetting("growth.k_max").ok());
  EXPECT_FALSE(ParseSetting("=2").ok());
}

std::string WriteTemp(const std::string& name, const std::string& content) {
  std::string path = testing::TempDir() + "/" + name;
  std::ofstream(path, std::ios::binary) << content;
  return path;
}

TEST(ReadTokenFileTest, TrimsWhitespace) {
  absl::StatusOr<std::string> token = ReadTokenFile(WriteTemp("token", "  s3cr3t-token\n\n"));
  ASSERT_TRUE(token.ok()) << token.status();
  EXPECT_EQ(*token, "s3cr3t-token");
}

TEST(ReadTokenFileTest, RejectsMissingEmptyAndMultiLineFiles) {
  absl::StatusOr<std::string> missing = ReadTokenFile(testing::TempDir() + "/no-such-token");
  ASSERT_FALSE(missing.ok());
  EXPECT_TRUE(Contains(std::string(missing.status().message()), "no-such-token"));
  EXPECT_TRUE(Contains(std::string(missing.status().message()), "--token-file"));

  absl::StatusOr<std::string> empty = ReadTokenFile(WriteTemp("empty-token", " \n"));
  ASSERT_FALSE(empty.ok());
  EXPECT_TRUE(Contains(std::string(empty.status().message()), "is empty"));

  EXPECT_FALSE(ReadTokenFile(WriteTemp("two-line-token", "abc\ndef\n")).ok());
}

}  // namespace
}  // namespace sgt::cli
