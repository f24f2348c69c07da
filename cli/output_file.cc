// `sgtctl export`'s output: a file renamed into place when complete, or stdout
// (cli/output_file.h).
#include "cli/output_file.h"

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <system_error>

#include "absl/strings/str_cat.h"

namespace sgt::cli {

OutputFile::OutputFile(std::ostream* standard_output) : standard_output_(standard_output) {}

OutputFile::~OutputFile() {
  if (partial_.empty() || committed_) return;
  file_.close();
  std::error_code ignored;
  std::filesystem::remove(partial_, ignored);
}

absl::Status OutputFile::Open(const std::string& path) {
  if (path.empty()) return absl::OkStatus();
  const std::string partial = path + ".partial";
  file_.open(partial, std::ios::binary | std::ios::trunc);
  if (!file_) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot write ", partial, ": ", std::strerror(errno), "; fix -o"));
  }
  path_ = path;
  partial_ = partial;
  return absl::OkStatus();
}

absl::Status OutputFile::Commit() {
  if (path_.empty()) {
    if (!*standard_output_) return absl::InvalidArgumentError("cannot write to standard output");
    return absl::OkStatus();
  }
  file_.close();
  if (!file_) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot write ", partial_, ": ", std::strerror(errno)));
  }
  std::error_code error;
  std::filesystem::rename(partial_, path_, error);
  if (error) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot rename ", partial_, " to ", path_, ": ", error.message()));
  }
  committed_ = true;
  return absl::OkStatus();
}

}  // namespace sgt::cli
