// Confinement of file paths to a root directory: checkpoint paths arrive over the wire (a resume
// point from the coordinator, a record from a child) and must never lead a worker outside its
// checkpoint root.
#ifndef SGT_SERVICES_WORKER_PATHS_H_
#define SGT_SERVICES_WORKER_PATHS_H_

#include <string>

#include "absl/status/statusor.h"

namespace sgt::worker {

// Resolves `path` (absolute, or relative to `root`) lexically and through every symbolic link
// of the part that exists, and checks that the result lies inside `root` (resolved the same
// way). Returns the resolved path; kPermissionDenied naming the path, where it leads and the
// root when it escapes; kInvalidArgument for an empty path.
absl::StatusOr<std::string> ConfinedPath(const std::string& root, const std::string& path);

}  // namespace sgt::worker

#endif  // SGT_SERVICES_WORKER_PATHS_H_
