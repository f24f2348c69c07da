// The command line of a daemon (sgt-coordinator, sgt-worker): the walk over `--flag value`
// arguments, and the flags every daemon takes (--help, --log-level, the metrics endpoint's
// flags), so that each main() lists only its own.
//
//   sgt::DaemonArgs args(argc, argv);
//   for (; args.More(); args.Next()) {
//     std::string problem;
//     if (args.TakeCommon(&problem)) {
//       if (!problem.empty()) return Usage(problem);
//     } else if (args.Is("--db")) {
//       if (!args.Value(&db)) return Usage("--db needs a path");
//     } else {
//       return Usage(args.Unknown());
//     }
//   }
//   if (args.help()) { print usage; return 0; }
//   if (std::string problem = args.Finish(); !problem.empty()) return Usage(problem);
#ifndef SGT_SERVICES_COMMON_DAEMON_ARGS_H_
#define SGT_SERVICES_COMMON_DAEMON_ARGS_H_

#include <cstddef>
#include <string>
#include <vector>

#include "services/common/metrics.h"

namespace sgt {

class DaemonArgs {
 public:
  DaemonArgs(int argc, char** argv) : args_(argv + 1, argv + argc) {}

  bool More() const { return !help_ && i_ < args_.size(); }
  void Next() { ++i_; }
  // Whether the current argument is `flag`.
  bool Is(const char* flag) const { return args_[i_] == flag; }
  // The value after the current flag, which the walk then skips; false when there is none.
  bool Value(std::string* out);
  // "unknown argument '--x'", for the current argument.
  std::string Unknown() const { return "unknown argument '" + args_[i_] + "'"; }

  // Takes the current argument when it is one every daemon has: returns true, with *problem
  // set when its value is missing or bad. --help and -h end the walk (help() is then true).
  bool TakeCommon(std::string* problem);
  bool help() const { return help_; }

  // After the walk: sets the log level and checks the metrics flags; "" or the problem.
  std::string Finish();
  const metrics::MetricsFlags& metrics_flags() const { return metrics_; }

 private:
  std::vector<std::string> args_;
  size_t i_ = 0;
  bool help_ = false;
  std::string level_ = "info";
  metrics::MetricsFlags metrics_;
};

}  // namespace sgt

#endif  // SGT_SERVICES_COMMON_DAEMON_ARGS_H_
