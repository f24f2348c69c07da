// The command line of a daemon (sgt-coordinator, sgt-worker): the walk over `--flag value`
// arguments, and the flags every daemon takes (--help, --log-level, the metrics endpoint's
// flags, --check-args), so that each main() lists only its own.
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
//   ... the checks between flags that need no file, device or network ...
//   if (args.check_args()) return args.Checked("sgt-x");
//
// --check-args makes the daemon parse and check its whole command line as always and then exit,
// 0 (Checked) or 2 with the usual message, before it reads a file a flag names, probes a device,
// opens its store or listens: deploy/k8s's test runs the daemons so on the command lines of the
// rendered manifests, on a machine that has none of their files.
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
  // Whether --check-args was given: check the command line, then exit without doing anything.
  bool check_args() const { return check_args_; }
  // For --check-args once every check has passed: prints "<daemon>: arguments accepted" on
  // stdout and returns 0, the exit status.
  static int Checked(const char* daemon);

  // After the walk: sets the log level and checks the metrics flags; "" or the problem.
  std::string Finish();
  const metrics::MetricsFlags& metrics_flags() const { return metrics_; }

 private:
  std::vector<std::string> args_;
  size_t i_ = 0;
  bool help_ = false;
  bool check_args_ = false;
  std::string level_ = "info";
  metrics::MetricsFlags metrics_;
};

}  // namespace sgt

#endif  // SGT_SERVICES_COMMON_DAEMON_ARGS_H_
