// Tests of the run state machine (services/coordinator/run_state.cc): its table of legal
// transitions is the one docs/api.md documents, read from the doc itself row by row.
#include "services/coordinator/run_state.h"

#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <utility>

#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "gtest/gtest.h"

namespace sgt::coord {
namespace {

using Pair = std::pair<v1::RunState, v1::RunState>;

v1::RunState FromDocName(std::string name) {
  name = std::string(absl::StripAsciiWhitespace(name));
  if (name == "(new)") return v1::RUN_STATE_UNSPECIFIED;
  const v1::RunState s = RunStateFromName(name);
  EXPECT_NE(s, v1::RUN_STATE_UNSPECIFIED) << "docs/api.md names an unknown state '" << name << "'";
  return s;
}

// The (from, to) pairs of the `| from | to | trigger | by |` table under "## Run states".
std::set<Pair> DocumentedTransitions() {
  std::ifstream in(std::string(SGT_SOURCE_DIR) + "/docs/api.md");
  EXPECT_TRUE(in.good()) << "cannot read docs/api.md";
  std::set<Pair> pairs;
  std::string line;
  bool in_section = false, in_table = false;
  while (std::getline(in, line)) {
    if (line.rfind("## ", 0) == 0) in_section = line == "## Run states";
    if (!in_section) continue;
    if (line.rfind("| from | to |", 0) == 0) {
      in_table = true;
      continue;
    }
    if (!in_table || line.rfind("|---", 0) == 0) continue;
    if (line.rfind("|", 0) != 0) {
      in_table = false;
      continue;
    }
    std::vector<std::string> cells = absl::StrSplit(line, '|');
    EXPECT_GE(cells.size(), 4u) << line;
    if (cells.size() < 4) continue;
    for (absl::string_view from : absl::StrSplit(cells[1], ',')) {
      pairs.insert({FromDocName(std::string(from)), FromDocName(cells[2])});
    }
  }
  return pairs;
}

TEST(RunStateTest, TableIsTheOneDocsApiMdDocuments) {
  const std::set<Pair> documented = DocumentedTransitions();
  ASSERT_GE(documented.size(), 20u) << "the table in docs/api.md#run-states was not found";
  const std::set<Pair> code(LegalTransitions().begin(), LegalTransitions().end());
  EXPECT_EQ(code.size(), LegalTransitions().size()) << "run_state.cc lists a pair twice";
  for (const Pair& p : documented) {
    EXPECT_TRUE(code.count(p)) << "docs/api.md allows " << RunStateName(p.first) << " -> "
                               << RunStateName(p.second) << " but run_state.cc does not";
  }
  for (const Pair& p : code) {
    EXPECT_TRUE(documented.count(p)) << "run_state.cc allows " << RunStateName(p.first) << " -> "
                                     << RunStateName(p.second) << " but docs/api.md does not";
  }
}

TEST(RunStateTest, EveryPairOfStatesIsDecidedByTheTable) {
  const std::set<Pair> code(LegalTransitions().begin(), LegalTransitions().end());
  for (int f = v1::RunState_MIN; f <= v1::RunState_MAX; ++f) {
    for (int t = v1::RunState_MIN; t <= v1::RunState_MAX; ++t) {
      if (!v1::RunState_IsValid(f) || !v1::RunState_IsValid(t)) continue;
      const auto from = static_cast<v1::RunState>(f), to = static_cast<v1::RunState>(t);
      const bool legal = code.count({from, to}) > 0;
      EXPECT_EQ(IsLegalTransition(from, to), legal) << f << " -> " << t;
      EXPECT_EQ(CheckTransition(7, from, to).ok(), legal) << f << " -> " << t;
    }
  }
}

TEST(RunStateTest, EndedStatesGoNowhereAndNothingStaysInPlace) {
  for (const auto& [from, to] : LegalTransitions()) {
    EXPECT_FALSE(IsEnded(from)) << RunStateName(from) << " is final but may change";
    EXPECT_NE(from, to) << RunStateName(from);
    EXPECT_NE(to, v1::RUN_STATE_UNSPECIFIED);
  }
}

TEST(RunStateTest, RefusalNamesTheRunBothStatesAndWhereItMayGo) {
  const absl::Status s = CheckTransition(12, v1::RUN_STATE_QUEUED, v1::RUN_STATE_RUNNING);
  EXPECT_EQ(s.code(), absl::StatusCode::kInternal);
  EXPECT_NE(s.message().find("run r12: queued -> running"), std::string::npos) << s;
  EXPECT_NE(s.message().find("may go to assigned, paused, cancelled"), std::string::npos) << s;
  const absl::Status ended = CheckTransition(3, v1::RUN_STATE_SUCCEEDED, v1::RUN_STATE_QUEUED);
  EXPECT_NE(ended.message().find("nothing (it has ended)"), std::string::npos) << ended;
}

TEST(RunStateTest, ActiveAndEndedStates) {
  std::set<std::string> active, ended;
  for (int i = v1::RunState_MIN; i <= v1::RunState_MAX; ++i) {
    if (!v1::RunState_IsValid(i)) continue;
    const auto s = static_cast<v1::RunState>(i);
    if (IsActive(s)) active.insert(RunStateName(s));
    if (IsEnded(s)) ended.insert(RunStateName(s));
    EXPECT_EQ(RunStateFromName(RunStateName(s)), s);
  }
  EXPECT_EQ(active, (std::set<std::string>{"assigned", "running", "pausing"}));
  EXPECT_EQ(ended, (std::set<std::string>{"succeeded", "failed", "cancelled"}));
  EXPECT_EQ(RunStateFromName("sleeping"), v1::RUN_STATE_UNSPECIFIED);
}

}  // namespace
}  // namespace sgt::coord
