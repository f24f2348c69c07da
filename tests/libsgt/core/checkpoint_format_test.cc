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

void PutU64(std::string& out, uint64_t v) {
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>(v >> (8 * i)));
}

// Found by fuzz/fuzz_checkpoint: a step of 1e300 was converted to an integer (undefined
// behaviour), and a negative step was taken as the step to resume after.
TEST(CheckpointFormatTest, StepMustBeANonNegativeInteger) {
  const std::string payload = "x";
  for (const char* step : {"1e300", "-7", "\"40\""}) {
    const std::string header = absl::StrCat(
        R"({"config":{},"growth":{},"payload_sha256":"a","step":)", step, R"(,"trainer":{}})");
    std::string file = "SGTCKPT1";
    PutU64(file, header.size());
    file += header;
    PutU64(file, payload.size());
    file += payload;
    absl::StatusOr<CheckpointParts> p = ParseCheckpointBytes(file, "c.sgtckpt");
    ASSERT_FALSE(p.ok()) << step;
    EXPECT_EQ(p.status().code(), absl::StatusCode::kDataLoss);
    EXPECT_TRUE(Contains(p.status().message(), "is not a non-negative integer")) << p.status();
    EXPECT_TRUE(Contains(p.status().message(), "checkpoint c.sgtckpt")) << p.status();
  }
}

}  // namespace
}  // namespace sgt
