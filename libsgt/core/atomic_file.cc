// WriteFileAtomic (atomic_file.h).
#include "libsgt/core/atomic_file.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace sgt {

absl::Status ErrnoStatus(int err, const std::string& message) {
  return absl::Status(absl::ErrnoToStatusCode(err),
                      absl::StrCat(message, ": ", std::strerror(err)));
}

absl::Status WriteFileAtomic(const std::string& path, std::string_view content) {
  const size_t slash = path.rfind('/');
  const std::string dir = slash == std::string::npos ? "." : slash == 0 ? "/" : path.substr(0, slash);
  const std::string base = slash == std::string::npos ? path : path.substr(slash + 1);
  std::string temp = absl::StrCat(dir, "/.", base, ".tmp.XXXXXX");
  const int fd = mkstemp(temp.data());
  if (fd < 0) {
    return ErrnoStatus(errno, absl::StrCat("cannot create a temporary file beside ", path));
  }
  auto fail = [&](int err, const std::string& what) {
    close(fd);
    unlink(temp.c_str());
    return ErrnoStatus(err, what);
  };
  const char* p = content.data();
  size_t left = content.size();
  while (left > 0) {
    const ssize_t w = write(fd, p, left);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0) return fail(errno, absl::StrCat("cannot write ", temp));
    p += w;
    left -= static_cast<size_t>(w);
  }
  if (fchmod(fd, 0644) != 0 || fsync(fd) != 0) return fail(errno, absl::StrCat("cannot flush ", temp));
  if (close(fd) != 0) {
    const int err = errno;
    unlink(temp.c_str());
    return ErrnoStatus(err, absl::StrCat("cannot flush ", temp));
  }
  if (rename(temp.c_str(), path.c_str()) != 0) {
    const int err = errno;
    unlink(temp.c_str());
    return ErrnoStatus(err, absl::StrCat("cannot write ", path, " (rename from ", temp, ")"));
  }
  return absl::OkStatus();
}

}  // namespace sgt
