// A daemon's command line (daemon_args.h): the walk and the flags every daemon takes.
#include "services/common/daemon_args.h"

#include <iostream>

#include "services/common/log.h"

namespace sgt {

bool DaemonArgs::Value(std::string* out) {
  if (i_ + 1 >= args_.size()) return false;
  *out = args_[++i_];
  return true;
}

bool DaemonArgs::TakeCommon(std::string* problem) {
  if (Is("--help") || Is("-h")) {
    help_ = true;
    return true;
  }
  if (Is("--check-args")) {
    check_args_ = true;
    return true;
  }
  if (Is("--log-level")) {
    if (!Value(&level_)) *problem = "--log-level needs debug, info, warn or error";
    return true;
  }
  return metrics_.Take(args_, &i_, problem);
}

int DaemonArgs::Checked(const char* daemon) {
  std::cout << daemon << ": arguments accepted (--check-args: no file read, nothing opened)\n";
  return 0;
}

std::string DaemonArgs::Finish() {
  log::Level level;
  if (!log::ParseLevel(level_, &level)) {
    return "--log-level '" + level_ + "': use debug, info, warn or error";
  }
  log::SetLevel(level);
  return metrics_.Check();
}

}  // namespace sgt
