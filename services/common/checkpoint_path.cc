// The two rules of services/common/checkpoint_path.h: lexical (the wire) and resolving (a
// worker's checkpoint root).
#include "services/common/checkpoint_path.h"

#include <filesystem>
#include <system_error>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace sgt {

namespace fs = std::filesystem;

bool IsWirePath(std::string_view path) {
  if (path.empty() || path[0] != '/') return false;
  // A ".." component anywhere: "/../" once a separator closes the last component.
  return !absl::StrContains(absl::StrCat(absl::string_view(path.data(), path.size()), "/"), "/../");
}

absl::StatusOr<std::string> ConfinedPath(const std::string& root, const std::string& path) {
  if (path.empty()) return absl::InvalidArgumentError("empty path; give a file under the root");
  std::error_code ec;
  // weakly_canonical resolves the existing prefix through its symbolic links and the rest
  // lexically (".." included), so "root/../x" and "root/link-to-etc/x" are both seen for what
  // they are.
  const fs::path r = fs::weakly_canonical(fs::absolute(root, ec), ec);
  if (ec) return absl::InvalidArgumentError(absl::StrCat("root ", root, ": ", ec.message()));
  fs::path p = fs::path(path).is_absolute() ? fs::path(path) : r / path;
  const fs::path resolved = fs::weakly_canonical(p, ec);
  if (ec) return absl::InvalidArgumentError(absl::StrCat("path ", path, ": ", ec.message()));
  // Inside means: every component of the root is a leading component of the path.
  auto ri = r.begin(), pi = resolved.begin();
  for (; ri != r.end(); ++ri, ++pi) {
    if (ri->empty()) continue;  // a trailing separator of the root
    if (pi == resolved.end() || *pi != *ri) {
      return absl::PermissionDeniedError(
          absl::StrCat("path ", path,
                       resolved.string() == path ? "" : absl::StrCat(" (", resolved.string(), ")"),
                       " is outside the checkpoint root ", r.string()));
    }
  }
  return resolved.string();
}

}  // namespace sgt
