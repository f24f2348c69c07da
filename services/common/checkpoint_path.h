// Checkpoint paths between processes: the one owner of both rules a checkpoint path must pass.
// A checkpoint path travels worker -> coordinator (a CheckpointRecord in a telemetry batch) and
// coordinator -> worker (a resume point, handed to whichever worker takes the run next).
//
//   IsWirePath    the lexical rule, for the side that cannot look at the file system where the
//                 file lies: the coordinator. A path on the wire names one file plainly: absolute
//                 and free of '..' components. It says nothing about symbolic links.
//   ConfinedPath  the resolving rule, for the side that can: a worker, on its own file system.
//                 The path is resolved (symbolic links, '..') and must lie inside the worker's
//                 checkpoint root. Its result always passes IsWirePath, so a worker that sends
//                 what ConfinedPath returned is never refused by the coordinator's rule.
#ifndef SGT_SERVICES_COMMON_CHECKPOINT_PATH_H_
#define SGT_SERVICES_COMMON_CHECKPOINT_PATH_H_

#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace sgt {

// True when `path` is non-empty, starts with '/' and has no ".." component ("/a/../b", "/..").
// Purely lexical: no file system access.
bool IsWirePath(std::string_view path);

// Resolves `path` (absolute, or relative to `root`) lexically and through every symbolic link
// of the part that exists, and checks that the result lies inside `root` (resolved the same
// way). Returns the resolved path; kPermissionDenied naming the path, where it leads and the
// root when it escapes; kInvalidArgument for an empty path.
absl::StatusOr<std::string> ConfinedPath(const std::string& root, const std::string& path);

}  // namespace sgt

#endif  // SGT_SERVICES_COMMON_CHECKPOINT_PATH_H_
