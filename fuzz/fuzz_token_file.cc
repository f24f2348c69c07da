// Fuzzes the readers of token files and their sidecars: libsgt/core/token_file.h (a sidecar
// (JSON) and its array of tokens, as sgt-train maps them) and ValidateDataFiles of
// libsgt/core/config.h (the sidecar check at the start of training). The input is the sidecar's
// text, a NUL byte, then the array's bytes; both are written to a temporary directory, checked
// and opened, then every token is read.
#include <unistd.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "libsgt/core/config.h"
#include "libsgt/core/token_file.h"
#include "fuzz/scratch.h"

namespace {

// A directory of its own, removed when the fuzzer exits.
const std::string& TokenPath() {
  static const std::string path = sgt::fuzz::ScratchPath("token", "tokens.bin");
  return path;
}

void Write(const std::string& path, const char* data, size_t size) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(data, static_cast<std::streamsize>(size));
  if (!out) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const char* text = reinterpret_cast<const char*>(data);
  size_t split = 0;
  while (split < size && text[split] != '\0') ++split;
  const std::string& path = TokenPath();
  Write(sgt::SidecarPath(path), text, split);
  Write(path, text + std::min(split + 1, size), size - std::min(split + 1, size));

  sgt::RunConfig cfg;
  cfg.data.train = cfg.data.validation = path;
  if (absl::StatusOr<sgt::TokenFileInfo> info = sgt::ReadTokenFileInfo(path); info.ok()) {
    cfg.model.vocab_size = info->vocab_size;
  }
  (void)sgt::ValidateDataFiles(cfg);

  for (bool verify : {false, true}) {
    absl::StatusOr<std::unique_ptr<sgt::TokenFile>> file = sgt::TokenFile::Open(path, verify);
    if (!file.ok()) continue;
    uint64_t sum = 0;
    for (int64_t i = 0; i < (*file)->size(); ++i) sum += (*file)->at(i);
    std::vector<int64_t> all(static_cast<size_t>((*file)->size()));
    (*file)->CopyTo(0, (*file)->size(), all.data());
    volatile uint64_t sink = sum + static_cast<uint64_t>(all.empty() ? 0 : all.back());
    (void)sink;
  }
  return 0;
}
