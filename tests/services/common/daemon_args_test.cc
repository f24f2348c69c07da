// The command-line walk every daemon shares (services/common/daemon_args.h): the common flags,
// --check-args among them, are taken wherever they stand and the daemon's own flags are left to
// it. The daemons' behaviour under --check-args (exit status, nothing opened) is
// tests/integration/daemon_check_args_test.sh.
#include "services/common/daemon_args.h"

#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace sgt {
namespace {

// Walks `args` as a daemon's main() does, with one flag of its own (--db PATH); returns the
// first problem, "" when there is none, and what --db was.
struct Walk {
  std::string problem, db;
  bool help = false, check = false;
};

Walk WalkArgs(std::vector<std::string> args) {
  args.insert(args.begin(), "sgt-test");
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  DaemonArgs d(static_cast<int>(argv.size()), argv.data());
  Walk w;
  for (; d.More(); d.Next()) {
    std::string problem;
    if (d.TakeCommon(&problem)) {
      if (!problem.empty()) {
        w.problem = problem;
        return w;
      }
    } else if (d.Is("--db")) {
      if (!d.Value(&w.db)) {
        w.problem = "--db needs a path";
        return w;
      }
    } else {
      w.problem = d.Unknown();
      return w;
    }
  }
  w.help = d.help();
  w.check = d.check_args();
  if (!w.help) w.problem = d.Finish();
  return w;
}

TEST(DaemonArgs, CheckArgsIsACommonFlagAnywhereOnTheLine) {
  for (const auto& args : std::vector<std::vector<std::string>>{{"--check-args", "--db", "x.db"},
                                                                {"--db", "x.db", "--check-args"}}) {
    const Walk w = WalkArgs(args);
    EXPECT_EQ(w.problem, "");
    EXPECT_TRUE(w.check);
    EXPECT_EQ(w.db, "x.db");  // the daemon's own flags are still walked
  }
  EXPECT_FALSE(WalkArgs({"--db", "x.db"}).check);
}

TEST(DaemonArgs, CheckArgsStillReportsEveryProblem) {
  EXPECT_EQ(WalkArgs({"--check-args", "--bogus"}).problem, "unknown argument '--bogus'");
  EXPECT_EQ(WalkArgs({"--check-args", "--db"}).problem, "--db needs a path");
  EXPECT_NE(WalkArgs({"--check-args", "--log-level", "loud"}).problem.find("--log-level 'loud'"),
            std::string::npos);
  // Finish's checks between flags run too.
  EXPECT_NE(WalkArgs({"--check-args", "--metrics-port-file", "p"}).problem, "");
  EXPECT_EQ(WalkArgs({"--check-args", "--metrics-listen", "127.0.0.1:0"}).problem, "");
}

TEST(DaemonArgs, CheckArgsTakesNoValue) {
  // "--check-args x" would be x as the next flag, not the value of --check-args.
  EXPECT_EQ(WalkArgs({"--check-args", "x.db"}).problem, "unknown argument 'x.db'");
}

TEST(DaemonArgs, HelpEndsTheWalk) {
  const Walk w = WalkArgs({"--help", "--bogus"});
  EXPECT_TRUE(w.help);
  EXPECT_EQ(w.problem, "");
}

}  // namespace
}  // namespace sgt
