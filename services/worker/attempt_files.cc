// The files of an attempt before its child starts: resume checkpoint, directories, config.json
// (attempt_files.h).
#include "services/worker/attempt_files.h"

#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <system_error>

#include "absl/strings/str_cat.h"
#include "services/common/checkpoint_path.h"

namespace sgt::worker {

namespace fs = std::filesystem;

std::string CheckWritable(const std::string& dir_name) {
  const fs::path dir(dir_name);
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return absl::StrCat("cannot create ", dir.string(), ": ", ec.message());
  const fs::path probe = dir / absl::StrCat(".probe-", getpid());
  {
    std::ofstream f(probe);
    if (!(f << "probe") || !f.flush()) {
      return absl::StrCat("cannot write in ", dir.string(), ": ", std::strerror(errno));
    }
  }
  fs::remove(probe, ec);
  return "";
}

absl::StatusOr<std::string> ResolveResume(const std::string& checkpoint_root,
                                          const std::string& resume_checkpoint,
                                          const std::string& id) {
  // A resume point from the wire is only opened inside the checkpoint root.
  absl::StatusOr<std::string> p = ConfinedPath(checkpoint_root, resume_checkpoint);
  if (!p.ok()) {
    return absl::FailedPreconditionError(
        absl::StrCat("resume checkpoint refused on ", id, ": ", p.status().message(),
                     "; workers resume only from their --checkpoint-root"));
  }
  std::error_code ec;
  if (!fs::is_regular_file(*p, ec)) {
    return absl::FailedPreconditionError(
        absl::StrCat("resume checkpoint ", *p, " is not a file on ", id,
                     "; is the checkpoint root shared between the workers?"));
  }
  return p;
}

absl::Status PrepareAttemptFiles(const AttemptLaunch& launch, const std::string& config_json,
                                 const std::string& checkpoint_root, const std::string& id) {
  std::error_code ec;
  fs::remove_all(launch.dir, ec);  // left by an earlier worker process: that attempt is over
  if (std::string why = CheckWritable(launch.dir); !why.empty()) {
    return absl::FailedPreconditionError(
        absl::StrCat("work directory on ", id, " is not writable: ", why,
                     "; fix its permissions or start the worker with another --work-dir"));
  }
  if (std::string why = CheckWritable(launch.checkpoint_dir); !why.empty()) {
    return absl::FailedPreconditionError(
        absl::StrCat("checkpoint root ", checkpoint_root, " is not writable on ", id, ": ", why,
                     "; fix its permissions or start the worker with another "
                     "--checkpoint-root"));
  }
  if (!(std::ofstream(launch.config_path) << config_json << "\n")) {
    return absl::FailedPreconditionError(absl::StrCat("cannot write ", launch.config_path));
  }
  return absl::OkStatus();
}

}  // namespace sgt::worker
