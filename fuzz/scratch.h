// A harness's scratch directory: made once (under /dev/shm when writable, else /tmp), removed
// when the fuzzer exits. ScratchPath("spool", "spool") is DIR/spool.
#ifndef SGT_FUZZ_SCRATCH_H_
#define SGT_FUZZ_SCRATCH_H_

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <string>

namespace sgt::fuzz {

inline const std::string& ScratchDir(const std::string& harness) {
  static const std::string dir = [&] {
    const char* base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    std::string d = std::string(base) + "/sgt-fuzz-" + harness + "-XXXXXX";
    if (mkdtemp(d.data()) == nullptr) std::abort();
    return d;
  }();
  static const bool cleanup = [] {
    // Registered after `dir` is made: runs before its destructor.
    std::atexit([] { std::filesystem::remove_all(ScratchDir("")); });
    return true;
  }();
  (void)cleanup;
  return dir;
}

inline std::string ScratchPath(const std::string& harness, const std::string& name) {
  return ScratchDir(harness) + "/" + name;
}

}  // namespace sgt::fuzz

#endif  // SGT_FUZZ_SCRATCH_H_
