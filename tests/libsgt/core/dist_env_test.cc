// torchrun's environment and the split of a global batch among ranks (libsgt/core/dist_env.h).
#include "libsgt/core/dist_env.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <set>
#include <string>

namespace sgt {
namespace {

absl::StatusOr<DistEnv> Parse(const std::map<std::string, std::string>& vars) {
  return DistEnvFromEnvironment([&](const char* name) -> const char* {
    auto it = vars.find(name);
    return it == vars.end() ? nullptr : it->second.c_str();
  });
}

TEST(DistEnvTest, NoVariablesIsOneProcess) {
  absl::StatusOr<DistEnv> e = Parse({});
  ASSERT_TRUE(e.ok()) << e.status();
  EXPECT_FALSE(e->distributed());
  EXPECT_EQ(e->world_size, 1);
  EXPECT_EQ(e->rank, 0);
  // WORLD_SIZE=1 from a launcher is one process too, whatever MASTER_* say.
  e = Parse({{"WORLD_SIZE", "1"}, {"RANK", "0"}, {"MASTER_ADDR", "x"}});
  ASSERT_TRUE(e.ok()) << e.status();
  EXPECT_FALSE(e->distributed());
}

TEST(DistEnvTest, ReadsTorchrunsVariables) {
  absl::StatusOr<DistEnv> e = Parse({{"WORLD_SIZE", "4"},
                                     {"RANK", "3"},
                                     {"LOCAL_RANK", "1"},
                                     {"LOCAL_WORLD_SIZE", "2"},
                                     {"MASTER_ADDR", "node0"},
                                     {"MASTER_PORT", "29500"},
                                     {"SGT_DIST_TIMEOUT_S", "7.5"},
                                     {"SGT_DIST_BUCKET_MB", "1"}});
  ASSERT_TRUE(e.ok()) << e.status();
  EXPECT_TRUE(e->distributed());
  EXPECT_EQ(e->rank, 3);
  EXPECT_EQ(e->world_size, 4);
  EXPECT_EQ(e->local_rank, 1);
  EXPECT_EQ(e->local_world_size, 2);
  EXPECT_EQ(e->master_addr, "node0");
  EXPECT_EQ(e->master_port, 29500);
  EXPECT_DOUBLE_EQ(e->timeout_s, 7.5);
  EXPECT_DOUBLE_EQ(e->bucket_mb, 1);
  EXPECT_FALSE(e->is_rank0());
}

TEST(DistEnvTest, LocalRankDefaultsToTheGlobalOne) {
  absl::StatusOr<DistEnv> e = Parse(
      {{"WORLD_SIZE", "2"}, {"RANK", "1"}, {"MASTER_ADDR", "127.0.0.1"}, {"MASTER_PORT", "1"}});
  ASSERT_TRUE(e.ok()) << e.status();
  EXPECT_EQ(e->local_rank, 1);
  EXPECT_EQ(e->local_world_size, 2);
}

TEST(DistEnvTest, ErrorsNameTheVariableAndTheFix) {
  struct Case {
    std::map<std::string, std::string> vars;
    std::string want;
  };
  const std::map<std::string, std::string> ok = {
      {"WORLD_SIZE", "2"}, {"RANK", "0"}, {"MASTER_ADDR", "h"}, {"MASTER_PORT", "29500"}};
  auto with = [&](const std::string& k, const std::string& v) {
    auto m = ok;
    if (v == "<unset>") {
      m.erase(k);
    } else {
      m[k] = v;
    }
    return m;
  };
  const Case cases[] = {
      {with("WORLD_SIZE", "two"), "WORLD_SIZE='two': expected an integer"},
      {with("WORLD_SIZE", "0"), "WORLD_SIZE='0'"},
      {with("RANK", "<unset>"), "needs RANK"},
      {with("RANK", "2"), "RANK='2': must be below WORLD_SIZE=2"},
      {with("RANK", "-1"), "RANK='-1'"},
      {with("MASTER_ADDR", "<unset>"), "MASTER_ADDR=''"},
      {with("MASTER_PORT", "<unset>"), "MASTER_PORT=''"},
      {with("MASTER_PORT", "70000"), "MASTER_PORT='70000': expected an integer in \\[1, 65535\\]"},
      {with("LOCAL_RANK", "3"), "LOCAL_RANK='3': must be below LOCAL_WORLD_SIZE=2"},
      {with("LOCAL_WORLD_SIZE", "3"), "LOCAL_WORLD_SIZE='3': cannot exceed WORLD_SIZE=2"},
      {with("SGT_DIST_TIMEOUT_S", "0"), "SGT_DIST_TIMEOUT_S='0'"},
      {with("SGT_DIST_BUCKET_MB", "lots"), "SGT_DIST_BUCKET_MB='lots'"},
      {{{"RANK", "1"}}, "RANK is set but WORLD_SIZE is not"},
  };
  for (const Case& c : cases) {
    absl::StatusOr<DistEnv> e = Parse(c.vars);
    ASSERT_FALSE(e.ok()) << c.want;
    EXPECT_EQ(e.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(e.status().message()), ::testing::ContainsRegex(c.want));
  }
}

// The ranks' shares tile the global batch in order: rank r holds the sequences a single process
// would train at the same positions, so the data order is the same on any number of ranks.
TEST(ShareOfBatchTest, SharesTileTheGlobalBatchInOrder) {
  for (int world : {1, 2, 4, 8}) {
    std::set<int64_t> seen;
    int64_t next = 0;
    for (int r = 0; r < world; ++r) {
      absl::StatusOr<RankShare> s = ShareOfBatch(16, 4, r, world);
      ASSERT_TRUE(s.ok()) << s.status();
      EXPECT_EQ(s->first, next);
      EXPECT_EQ(s->count, 16 / world);
      EXPECT_EQ(s->micro, std::min<int64_t>(4, 16 / world));
      EXPECT_EQ(s->count % s->micro, 0);
      for (int64_t i = s->first; i < s->first + s->count; ++i) EXPECT_TRUE(seen.insert(i).second);
      next = s->first + s->count;
    }
    EXPECT_EQ(next, 16);
  }
}

TEST(ShareOfBatchTest, ARankCountThatDoesNotDivideTheBatchIsAnError) {
  absl::StatusOr<RankShare> s = ShareOfBatch(16, 16, 0, 3);
  ASSERT_FALSE(s.ok());
  EXPECT_THAT(std::string(s.status().message()),
              ::testing::HasSubstr("train.batch_size 16 does not divide among 3 ranks"));
  // 24 over 2 ranks is 12 each, which micro-batches of 8 do not divide.
  s = ShareOfBatch(24, 8, 1, 2);
  ASSERT_FALSE(s.ok());
  EXPECT_THAT(std::string(s.status().message()),
              ::testing::HasSubstr("train.micro_batch_size 8 does not divide each rank's 12"));
}

}  // namespace
}  // namespace sgt
