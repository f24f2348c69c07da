// The byte layout of a training checkpoint (sgt-method.md §8), without LibTorch: the one writer
// and the one parser of the file's framing and header, which libsgt/torch/checkpoint.h wraps
// around the tensors' archive (and which fuzz/fuzz_checkpoint.cc fuzzes without LibTorch).
//
// File layout, all integers little-endian:
//   "SGTCKPT1" | u64 header_bytes | header JSON | u64 payload_bytes | payload
// The header holds the step, the configuration, Theta, the trainer's state (entropy EMA, FLOPs
// tally, data cursor) and the payload's sha256; the payload is opaque here (a LibTorch archive).
//
//   std::string file = CheckpointFileBytes(header, payload);
//   absl::StatusOr<CheckpointParts> parts = ParseCheckpointBytes(file, path);
#ifndef SGT_CORE_CHECKPOINT_FORMAT_H_
#define SGT_CORE_CHECKPOINT_FORMAT_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"

namespace sgt {

struct CheckpointHeader {
  int64_t step = 0;
  std::string config_json;   // CanonicalJson of the run
  std::string growth_json;   // GrowthStateToJson
  std::string trainer_json;  // trainer-owned state (EMA, FLOPs tally, ...)
  std::string payload_sha256;
};

// The whole file: `header` (its payload_sha256 is computed here from `payload`) and `payload`.
// The header's JSON fields must be valid JSON (they are what CanonicalJson and the growth and
// trainer writers produce); invalid JSON throws nlohmann::json::parse_error.
std::string CheckpointFileBytes(const CheckpointHeader& header, const std::string& payload);

struct CheckpointParts {
  CheckpointHeader header;
  std::string payload;
};

// Splits a checkpoint file's `bytes` into its header and payload, checking the magic, the
// lengths, the header's fields and the payload's sha256. A file that fails any check is
// kDataLoss naming `path` (which only names the bytes in errors) and what is wrong.
absl::StatusOr<CheckpointParts> ParseCheckpointBytes(const std::string& bytes,
                                                     const std::string& path);

}  // namespace sgt

#endif  // SGT_CORE_CHECKPOINT_FORMAT_H_
