// Tests of libsgt/core/checkpoint_format.cc: the framing and header of a checkpoint file.
#include "libsgt/core/checkpoint_format.h"

#include <gtest/gtest.h>

#include <string>

#include "absl/strings/str_cat.h"

namespace sgt {
namespace {

::testing::AssertionResult Contains(absl::string_view text, absl::string_view part) {
  if (text.find(part) != absl::string_view::npos) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "\"" << text << "\" does not contain \"" << part << "\"";
}

CheckpointHeader Header(int64_t step) {
  CheckpointHeader h;
  h.step = step;
  h.config_json = R"({"variant":"sgt"})";
  h.growth_json = R"({"phase":"warmup"})";
  h.trainer_json = R"({"ema":[0.5]})";
  return h;
}

TEST(CheckpointFormatTest, RoundTrip) {
  const std::string file = CheckpointFileBytes(Header(40), "payload bytes");
  absl::StatusOr<CheckpointParts> p = ParseCheckpointBytes(file, "c.sgtckpt");
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->header.step, 40);
  EXPECT_EQ(p->header.config_json, R"({"variant":"sgt"})");
  EXPECT_EQ(p->header.growth_json, R"({"phase":"warmup"})");
  EXPECT_EQ(p->header.trainer_json, R"({"ema":[0.5]})");
  EXPECT_EQ(p->payload, "payload bytes");
}

TEST(CheckpointFormatTest, TruncatedAndCorruptedRefused) {
  const std::string file = CheckpointFileBytes(Header(40), "payload bytes");
  for (const std::string& bad : {file.substr(0, file.size() - 1), std::string("SGTCKPT"),
                                 absl::StrCat(file.substr(0, file.size() - 1), "X")}) {
    absl::StatusOr<CheckpointParts> p = ParseCheckpointBytes(bad, "c.sgtckpt");
    ASSERT_FALSE(p.ok());
    EXPECT_EQ(p.status().code(), absl::StatusCode::kDataLoss);
    EXPECT_TRUE(Contains(p.status().message(), "checkpoint c.sgtckpt is unusable"));
  }
}

}  // namespace
}  // namespace sgt
