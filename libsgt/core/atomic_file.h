// Whole-file writes that a reader never sees half done, for the tools' outputs (sgt-data's
// tokenizer, stamps and task files).
#ifndef SGT_CORE_ATOMIC_FILE_H_
#define SGT_CORE_ATOMIC_FILE_H_

#include <string>
#include <string_view>

#include "absl/status/status.h"

namespace sgt {

// Writes `content` to a fresh temporary file beside `path` (mode 0644), syncs it and renames it
// onto `path`. On any error the temporary file is removed: nothing new is left behind and a file
// already at `path` is untouched. Errors carry the errno's code and name the file.
absl::Status WriteFileAtomic(const std::string& path, std::string_view content);

// An absl::Status of errno `err`'s code: "`message`: strerror(err)".
absl::Status ErrnoStatus(int err, const std::string& message);

}  // namespace sgt

#endif  // SGT_CORE_ATOMIC_FILE_H_
