// Fuzzes the sweep file parser (services/common/sweep.h, ParseSweep): the YAML `sgtctl submit`
// sends and the coordinator parses again. An accepted sweep is also planned (`sgtctl plan`).
#include <cstddef>
#include <cstdint>
#include <string>

#include "services/common/sweep.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  absl::StatusOr<sgt::SweepSpec> spec = sgt::ParseSweep(text, "fuzz.yaml");
  if (!spec.ok()) return 0;
  sgt::PlanSweepJson(*spec);
  sgt::PlanSweepTable(*spec);
  sgt::PlanResources(*spec);
  return 0;
}
