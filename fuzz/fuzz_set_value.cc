// Fuzzes `--set key=value` (libsgt/core/config.h, SetConfigValue): sweeps' grid values and
// `sgtctl fork --set`. The input is "key=value" (the first '=' splits, as sgtctl does); several
// lines set several keys on one configuration, which is then validated and written as JSON.
#include <cstddef>
#include <cstdint>
#include <string>

#include "libsgt/core/config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  sgt::RunConfig cfg;
  size_t begin = 0;
  while (begin <= text.size()) {
    size_t end = text.find('\n', begin);
    if (end == std::string::npos) end = text.size();
    const std::string line = text.substr(begin, end - begin);
    begin = end + 1;
    const size_t eq = line.find('=');
    if (eq == std::string::npos) continue;
    (void)sgt::SetConfigValue(cfg, line.substr(0, eq), line.substr(eq + 1));
  }
  if (sgt::ValidateRunConfig(cfg).ok()) sgt::CanonicalJson(cfg);
  return 0;
}
