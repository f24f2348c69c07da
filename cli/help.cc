// sgtctl's help texts (cli/help.h).
#include "cli/help.h"

#include "absl/strings/str_cat.h"

namespace sgt::cli {

const char kUsage[] = R"(sgtctl: the command-line client of sgt-coordinator

usage: sgtctl [GLOBAL OPTIONS] COMMAND [ARGS] [OPTIONS]

commands:
  submit FILE                       submit a sweep file; prints the sweep and its runs
  plan FILE                         plan a sweep offline (runs, FLOPs); needs no coordinator
  ls [SWEEP] [--state S]...         list sweeps, or the runs of a sweep (of every sweep with
                                    --state and no SWEEP)
  show RUN|SWEEP                    every field of a run (transitions, checkpoints) or a sweep
  watch RUN|SWEEP [--every SECONDS] follow runs until they end: progress bars on a terminal;
                                    else a log of state changes, evals, growth decisions and
                                    a progress line per run at most every SECONDS (default 10)
  pause TARGET [--reason TEXT]      pause a run or every run of a sweep (at the next boundary)
  resume TARGET [--reason TEXT]     re-queue paused runs
  snapshot TARGET [--reason TEXT]   write a checkpoint at the next growth boundary
  cancel TARGET [--reason TEXT]     cancel a run or every run of a sweep
  fork RUN --from-step N [--set KEY=VALUE]... [--name NAME]
                                    a new run from a checkpoint of RUN, settings changed
  edit TARGET [--priority P] [--max-concurrent N] [--steps S]
                                    change queued and paused runs (max-concurrent: sweeps)
  workers                           list workers
  export RUN|SWEEP --what entropy|scalars|decisions|tasks [--format csv|json]
         [--from-step A] [--to-step B] [--all-attempts] [-o FILE]
                                    telemetry (tasks: each run's task scores) as CSV (default)
                                    or a JSON array
  report SWEEP [--acc-norm]         the paper's Table 1: mean and std over seeds per setting
                                    (task accuracies too; --acc-norm adds acc_norm)
  report RUN|SWEEP --html FILE|-    one self-contained HTML page: Table 1 and the figures
  help [COMMAND]                    this text, or one command's

ids: sweeps s<N> (s3), runs r<N> (r12), workers w<N>; TARGET is a run or a sweep id.

global options (before or after the command):
  --coordinator ADDR   coordinator address (env SGT_COORDINATOR; default localhost:7070)
  --token-file FILE    file holding the client token, sent as "authorization: Bearer <token>"
                       (env SGT_TOKEN_FILE)
  --tls-ca FILE        CA certificate (PEM) to connect with TLS (env SGT_TLS_CA); else plaintext
  --timeout SECONDS    deadline of each call except the streams of watch and export (default 30)
  --json               machine-readable output: the API's messages as JSON (proto3 mapping,
                       snake_case field names), or the JSON objects docs/cli.md describes
  -h, --help           help

exit codes:
  0  ok
  1  the coordinator failed or is unreachable (UNAVAILABLE, DEADLINE_EXCEEDED, INTERNAL, ...)
  2  bad usage or bad input (bad arguments, unreadable file, INVALID_ARGUMENT)
  3  not found (NOT_FOUND)
  4  the target's state does not allow it (FAILED_PRECONDITION)
  5  unauthenticated or permission denied
  6  (watch only) every watched run ended but not all succeeded

docs/cli.md has examples of every command.
)";

std::string CommandHelp(absl::string_view usage) {
  return absl::StrCat("usage: sgtctl [GLOBAL OPTIONS] ", usage,
                      "\n\n"
                      "global options: --coordinator ADDR, --token-file FILE, --tls-ca FILE, "
                      "--timeout SECONDS, --json\n"
                      "docs/cli.md describes the command and its output; `sgtctl --help` lists "
                      "the exit codes.\n");
}

}  // namespace sgt::cli
