// Fuzzes the run configuration parser (libsgt/core/config.h, ParseRunConfig): the YAML of a
// `sgt-train --config` file. Whatever it accepts must survive the round trip through its
// canonical JSON, which is what checkpoints and the coordinator store.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "libsgt/core/config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  absl::StatusOr<sgt::RunConfig> cfg = sgt::ParseRunConfig(text, "fuzz.yaml");
  if (!cfg.ok()) return 0;
  const std::string json = sgt::CanonicalJson(*cfg);
  absl::StatusOr<sgt::RunConfig> back = sgt::RunConfigFromJson(json);
  // An accepted configuration that its own canonical JSON cannot express is a bug.
  if (!back.ok() || sgt::CanonicalJson(*back) != json) std::abort();
  return 0;
}
