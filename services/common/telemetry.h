// The rules of a telemetry batch (proto/sgt/v1/types.proto, TelemetryBatch) that worker and
// coordinator share: how its rows are counted, how many one batch may hold, and what the
// coordinator refuses at ingestion. Protobuf messages only: no gRPC, no storage.
#ifndef SGT_SERVICES_COMMON_TELEMETRY_H_
#define SGT_SERVICES_COMMON_TELEMETRY_H_

#include <cstdint>

#include "absl/status/status.h"
#include "sgt/v1/types.pb.h"

namespace sgt::telemetry {

// Rows in one telemetry batch at most. sgt-train's events come in batches of a few hundred rows;
// a bigger one would hold the coordinator store's writer (and every state change behind it) for
// seconds.
inline constexpr int64_t kMaxBatchRows = 65536;

// The rows of a batch: its entropy, scalar, decision and checkpoint rows together.
int64_t RowCount(const sgt::v1::TelemetryBatch& batch);

// What the coordinator checks of a batch before it looks at the run: attempt and sequence are
// >= 1, at most kMaxBatchRows rows, every checkpoint path passes IsWirePath
// (services/common/checkpoint_path.h). kInvalidArgument naming the batch's run, what is wrong and
// the fix; a refused batch is never stored.
absl::Status ValidateBatch(const sgt::v1::TelemetryBatch& batch);

}  // namespace sgt::telemetry

#endif  // SGT_SERVICES_COMMON_TELEMETRY_H_
