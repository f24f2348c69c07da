// Tests for services/common/telemetry: rows counted over all four kinds, the batch limit at its
// edge, and the coordinator's ingestion checks with their exact messages.
#include "services/common/telemetry.h"

#include <string>

#include "gtest/gtest.h"

namespace sgt::telemetry {
namespace {

using sgt::v1::TelemetryBatch;

TelemetryBatch Good() {
  TelemetryBatch b;
  b.set_run_id("r7");
  b.set_attempt(1);
  b.set_sequence(1);
  return b;
}

TEST(TelemetryTest, RowCountCountsEveryKind) {
  TelemetryBatch b = Good();
  EXPECT_EQ(RowCount(b), 0);
  b.add_scalars();
  b.add_scalars();
  b.add_entropy();
  b.add_decisions();
  b.add_checkpoints();
  b.add_checkpoints();
  b.add_checkpoints();
  EXPECT_EQ(RowCount(b), 2 + 1 + 1 + 3);
}

TEST(TelemetryTest, AGoodBatchPasses) {
  TelemetryBatch b = Good();
  b.add_scalars()->set_name("loss");
  b.add_checkpoints()->set_path("/ck/r7/attempt-1/step-0000040.sgtckpt");
  b.set_attempt(3);
  b.set_sequence(12);
  EXPECT_TRUE(ValidateBatch(b).ok()) << ValidateBatch(b);
}

TEST(TelemetryTest, AttemptAndSequenceStartAtOne) {
  TelemetryBatch b = Good();
  b.set_sequence(0);
  absl::Status s = ValidateBatch(b);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(), "telemetry of r7: attempt 1, sequence 0; both start at 1");
  b = Good();
  b.set_attempt(0);
  b.set_sequence(4);
  EXPECT_EQ(ValidateBatch(b).message(), "telemetry of r7: attempt 0, sequence 4; both start at 1");
}

TEST(TelemetryTest, AtMostMaxBatchRows) {
  TelemetryBatch b = Good();
  for (int64_t i = 0; i < kMaxBatchRows - 1; ++i) b.add_scalars();
  b.add_entropy();
  EXPECT_EQ(RowCount(b), kMaxBatchRows);
  EXPECT_TRUE(ValidateBatch(b).ok());
  b.add_decisions();
  absl::Status s = ValidateBatch(b);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(),
            "telemetry of r7: 65537 rows in one batch; at most 65536; send smaller batches");
}

TEST(TelemetryTest, CheckpointPathsMustBeAbsoluteAndFreeOfDotDot) {
  for (const std::string& path : {std::string(""), std::string("ck/step.sgtckpt"),
                                  std::string("/ck/../etc/passwd"), std::string("/ck/..")}) {
    SCOPED_TRACE(path);
    TelemetryBatch b = Good();
    b.add_checkpoints()->set_path("/ck/fine.sgtckpt");
    b.add_checkpoints()->set_path(path);
    absl::Status s = ValidateBatch(b);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(s.message(), "telemetry of r7: checkpoint path '" + path +
                               "' is not an absolute path free of '..'; the worker must send "
                               "resolved paths");
  }
}

TEST(TelemetryTest, AttemptIsCheckedBeforeRowsAndPaths) {
  TelemetryBatch b = Good();
  b.set_attempt(0);
  b.add_checkpoints()->set_path("relative");
  EXPECT_EQ(ValidateBatch(b).message(), "telemetry of r7: attempt 0, sequence 1; both start at 1");
}

}  // namespace
}  // namespace sgt::telemetry
