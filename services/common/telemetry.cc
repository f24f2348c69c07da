// Telemetry batch rules shared by worker and coordinator (services/common/telemetry.h).
#include "services/common/telemetry.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "services/common/checkpoint_path.h"

namespace sgt::telemetry {

int64_t RowCount(const sgt::v1::TelemetryBatch& batch) {
  return int64_t{batch.entropy_size()} + batch.scalars_size() + batch.decisions_size() +
         batch.checkpoints_size();
}

absl::Status ValidateBatch(const sgt::v1::TelemetryBatch& b) {
  if (b.sequence() < 1 || b.attempt() < 1) {
    return absl::InvalidArgumentError(absl::StrCat("telemetry of ", b.run_id(), ": attempt ",
                                                   b.attempt(), ", sequence ", b.sequence(),
                                                   "; both start at 1"));
  }
  const int64_t rows = RowCount(b);
  if (rows > kMaxBatchRows) {
    return absl::InvalidArgumentError(absl::StrCat("telemetry of ", b.run_id(), ": ", rows,
                                                   " rows in one batch; at most ", kMaxBatchRows,
                                                   "; send smaller batches"));
  }
  for (const sgt::v1::CheckpointRecord& c : b.checkpoints()) {
    // A resume point is handed to other workers: it must name one file, plainly.
    if (!IsWirePath(c.path())) {
      return absl::InvalidArgumentError(absl::StrCat(
          "telemetry of ", b.run_id(), ": checkpoint path '", c.path(),
          "' is not an absolute path free of '..'; the worker must send resolved paths"));
    }
  }
  return absl::OkStatus();
}

}  // namespace sgt::telemetry
