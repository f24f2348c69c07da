// Fuzzes the checkpoint reader (libsgt/core/checkpoint_format.h, ParseCheckpointBytes: the
// framing, lengths, header and checksum of a .sgtckpt file, as sgt-train --resume reads it)
// and the readers of the header's parts that a resume then runs: RunConfigFromJson and
// GrowthStateFromJson. The payload (a LibTorch archive) is opaque here: this build has no
// LibTorch.
//
// The input's first byte picks the form: odd, the rest is a whole file as is; even, the rest is
// the header's JSON, a NUL byte and the payload, which the harness frames with their lengths,
// writing the payload's sha256 where the header says "@sha256" (so mutations of the header reach
// the field checks instead of failing the lengths or the checksum).
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>

#include "libsgt/core/checkpoint_format.h"
#include "libsgt/core/config.h"
#include "libsgt/core/growth.h"
#include "libsgt/core/sha256.h"

namespace {

void PutU64(std::string& out, uint64_t v) {
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const std::string rest(reinterpret_cast<const char*>(data) + 1, size - 1);
  std::string bytes;
  if (data[0] & 1) {
    bytes = rest;
  } else {
    const size_t nul = std::min(rest.find('\0'), rest.size());
    std::string header = rest.substr(0, nul);
    const std::string payload = rest.substr(std::min(nul + 1, rest.size()));
    if (size_t at = header.find("\"@sha256\""); at != std::string::npos) {
      header.replace(at, 9, "\"" + sgt::Sha256Hex(payload.data(), payload.size()) + "\"");
    }
    bytes = "SGTCKPT1";
    PutU64(bytes, header.size());
    bytes += header;
    PutU64(bytes, payload.size());
    bytes += payload;
  }
  absl::StatusOr<sgt::CheckpointParts> parts = sgt::ParseCheckpointBytes(bytes, "fuzz.sgtckpt");
  if (!parts.ok()) return 0;
  (void)sgt::RunConfigFromJson(parts->header.config_json);
  (void)sgt::GrowthStateFromJson(parts->header.growth_json);
  return 0;
}
