// Fuzzes the readers of a run's configuration JSON (libsgt/core/config.h): RunConfigFromJson
// (checkpoints, the coordinator's stored runs) and BriefOfConfigJson (what the scheduler, the
// worker and the run metrics read of a config sent over the wire).
#include <cstddef>
#include <cstdint>
#include <string>

#include "libsgt/core/config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  sgt::BriefOfConfigJson(text);
  absl::StatusOr<sgt::RunConfig> cfg = sgt::RunConfigFromJson(text);
  if (cfg.ok()) sgt::CanonicalJson(*cfg);
  return 0;
}
