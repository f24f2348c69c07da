// sgtctl: the command-line client of sgt-coordinator (docs/cli.md). Submits and plans sweeps,
// lists and shows runs, acts on them, watches them, exports their telemetry and prints the
// paper's Table 1 of a sweep.
//
// This file is the dispatch: the command table, argument checks, one RPC per command, and the
// printing of what the sgt_cli library makes of the response. Everything testable without a
// network is there: flags (cli/args.h), the connection (cli/client.h), help (cli/help.h), the
// text of every command (cli/show.h, cli/changes.h, cli/format.h), the watch screen and log
// (cli/watch_screen.h, cli/watch_log.h), export rendering and output (cli/export.h,
// cli/output_file.h), the report (cli/report.h) and its HTML page (cli/report_html.h).
//
//   sgtctl submit examples/quickstart.yaml
//   sgtctl watch s1
//   sgtctl report s1
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <ctime>
#include <iostream>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "cli/args.h"
#include "cli/changes.h"
#include "cli/client.h"
#include "cli/export.h"
#include "cli/format.h"
#include "cli/help.h"
#include "cli/output_file.h"
#include "cli/report.h"
#include "cli/report_html.h"
#include "cli/show.h"
#include "cli/watch_log.h"
#include "cli/watch_screen.h"
#include "grpc/support/log.h"
#include "grpcpp/grpcpp.h"
#include "services/common/sweep.h"
#include "sgt/v1/coordinator.grpc.pb.h"
#include "sgt/v1/types.pb.h"

namespace sgt::cli {
namespace {

// Prints "sgtctl: <message>" to stderr and returns `code`.
int Fail(int code, absl::string_view message) {
  std::cerr << "sgtctl: " << message << "\n";
  return code;
}

const std::vector<FlagSpec>& GlobalFlags() {
  static const std::vector<FlagSpec> flags = {
      {"coordinator", true}, {"token-file", true}, {"tls-ca", true},
      {"timeout", true},     {"json", false},      {"help", false, false, 'h'},
  };
  return flags;
}

std::string Env(const char* name) {
  const char* value = std::getenv(name);
  return value == nullptr ? "" : value;
}

// Prints the error of a failed call and returns its exit code.
int RpcError(const Client& client, const grpc::Status& status) {
  return Fail(ExitCodeFor(status.error_code()), client.Describe(status));
}

// Runs one unary call: `call(stub, context)` returns its status.
template <typename Call>
int Unary(Client& client, Call call) {
  absl::StatusOr<v1::CoordinatorService::Stub*> stub = client.Stub();
  if (!stub.ok()) return Fail(kExitUsage, stub.status().message());
  std::unique_ptr<grpc::ClientContext> context = client.Context();
  grpc::Status status = call(**stub, context.get());
  return status.ok() ? kExitOk : RpcError(client, status);
}

// Prints a message as proto3 JSON (snake_case names, default values included).
void PrintJson(const google::protobuf::Message& message) {
  absl::StatusOr<std::string> text = MessageJson(message);
  if (!text.ok()) {
    Fail(kExitCoordinator, absl::StrCat("cannot print as JSON: ", text.status().message()));
    return;
  }
  std::cout << *text;
}

using Stub = v1::CoordinatorService::Stub;

// Calls `method` with `request` and prints the response: as JSON with --json, else as
// `text(response)` (cli/show.h, cli/changes.h).
template <typename Request, typename Response, typename Text>
int CallAndPrint(Client& client,
                 grpc::Status (Stub::*method)(grpc::ClientContext*, const Request&, Response*),
                 const Request& request, Text text) {
  Response response;
  int code = Unary(client, [&](Stub& stub, grpc::ClientContext* context) {
    return (stub.*method)(context, request, &response);
  });
  if (code != kExitOk) return code;
  if (client.options().json) {
    PrintJson(response);
  } else {
    std::cout << text(response);
  }
  return kExitOk;
}

// ---------------------------------------------------------------------------------------------
// Commands. Each gets the client and its parsed arguments and returns the exit code.

struct Command {
  const char* name;
  const char* usage;  // after "sgtctl "
  std::vector<FlagSpec> flags;
  size_t min_args;
  size_t max_args;
  int (*run)(const Command&, Client&, const ParsedArgs&);
};

int UsageError(const Command& command, absl::string_view message) {
  return Fail(kExitUsage, absl::StrCat(command.name, ": ", message, "\nusage: sgtctl ",
                                       command.usage, "  (sgtctl help ", command.name, ")"));
}

// The target argument of a command; prints the usage error and returns nullopt when it is
// not an id of a kind the command takes.
std::optional<TargetKind> Target(const Command& command, const std::string& arg, bool runs_ok,
                                 bool sweeps_ok) {
  absl::StatusOr<TargetKind> kind = ParseTarget(arg, runs_ok, sweeps_ok);
  if (!kind.ok()) {
    UsageError(command, kind.status().message());
    return std::nullopt;
  }
  return *kind;
}

int Submit(const Command& command, Client& client, const ParsedArgs& args) {
  const std::string& file = args.positional[0];
  absl::StatusOr<std::string> text = ReadWholeFile(file);
  if (!text.ok()) {
    return Fail(kExitUsage, absl::StrCat(text.status().message(), "; check the sweep file's path"));
  }
  v1::SubmitSweepRequest request;
  request.set_yaml(*text);
  request.set_source_name(file);
  return CallAndPrint(client, &Stub::SubmitSweep, request,
                      [&](const auto& response) { return SubmitText(response, file); });
}

int Plan(const Command& command, Client& client, const ParsedArgs& args) {
  absl::StatusOr<SweepSpec> spec = LoadSweep(args.positional[0]);
  if (!spec.ok()) return Fail(kExitUsage, spec.status().message());
  std::string out = client.options().json ? PlanSweepJson(*spec) : PlanSweepTable(*spec);
  std::cout << out;
  if (!out.empty() && out.back() != '\n') std::cout << '\n';
  return kExitOk;
}

int List(const Command& command, Client& client, const ParsedArgs& args) {
  std::string sweep_id;
  if (!args.positional.empty()) {
    if (!Target(command, args.positional[0], false, true)) return kExitUsage;
    sweep_id = args.positional[0];
  }
  std::vector<v1::RunState> states;
  for (const std::string& value : args.All("state")) {
    for (absl::string_view name : absl::StrSplit(value, ',', absl::SkipWhitespace())) {
      absl::StatusOr<v1::RunState> state = ParseRunState(name);
      if (!state.ok()) return UsageError(command, state.status().message());
      states.push_back(*state);
    }
  }
  if (sweep_id.empty() && states.empty()) {
    return CallAndPrint(client, &Stub::ListSweeps, v1::ListSweepsRequest(),
                        [](const auto& response) { return SweepsText(response); });
  }
  v1::ListRunsRequest request;
  request.set_sweep_id(sweep_id);
  for (v1::RunState state : states) request.add_states(state);
  // Page by page (a sweep of 10,000 runs is never one message), printed as one list.
  v1::ListRunsResponse all;
  do {
    v1::ListRunsResponse page;
    int code = Unary(client, [&](Stub& stub, grpc::ClientContext* context) {
      return stub.ListRuns(context, request, &page);
    });
    if (code != kExitOk) return code;
    for (v1::Run& run : *page.mutable_runs()) *all.add_runs() = std::move(run);
    request.set_page_token(page.next_page_token());
  } while (!request.page_token().empty());
  if (client.options().json) {
    PrintJson(all);
  } else {
    std::cout << RunsText(all, sweep_id, !states.empty());
  }
  return kExitOk;
}

int Show(const Command& command, Client& client, const ParsedArgs& args) {
  const std::string& id = args.positional[0];
  std::optional<TargetKind> kind = Target(command, id, true, true);
  if (!kind) return kExitUsage;
  if (*kind == TargetKind::kRun) {
    v1::GetRunRequest request;
    request.set_run_id(id);
    return CallAndPrint(client, &Stub::GetRun, request,
                        [](const auto& response) { return ShowRun(response); });
  }
  v1::GetSweepRequest request;
  request.set_sweep_id(id);
  return CallAndPrint(client, &Stub::GetSweep, request,
                      [](const auto& response) { return ShowSweep(response); });
}

int Action(const Command& command, Client& client, const ParsedArgs& args) {
  const std::string& target = args.positional[0];
  if (!Target(command, target, true, true)) return kExitUsage;
  v1::ActionRequest request;
  request.set_target(target);
  request.set_reason(args.Get("reason"));
  const std::string verb = command.name;
  auto method = verb == "pause"      ? &Stub::Pause
                : verb == "resume"   ? &Stub::Resume
                : verb == "snapshot" ? &Stub::Snapshot
                                     : &Stub::Cancel;
  return CallAndPrint(client, method, request,
                      [&](const auto& response) { return ActionText(verb, target, response); });
}

int Fork(const Command& command, Client& client, const ParsedArgs& args) {
  const std::string& run_id = args.positional[0];
  if (!Target(command, run_id, true, false)) return kExitUsage;
  if (!args.Has("from-step")) {
    return UsageError(command,
                      "--from-step N is required: a step with a checkpoint "
                      "(`sgtctl show RUN` lists them)");
  }
  absl::StatusOr<int64_t> step =
      ParseInteger(args.Get("from-step"), "--from-step", 1, std::numeric_limits<int64_t>::max());
  if (!step.ok()) return UsageError(command, step.status().message());
  v1::ForkRequest request;
  request.set_run_id(run_id);
  request.set_from_step(*step);
  request.set_name(args.Get("name"));
  for (const std::string& text : args.All("set")) {
    absl::StatusOr<std::pair<std::string, std::string>> setting = ParseSetting(text);
    if (!setting.ok()) return UsageError(command, setting.status().message());
    v1::Setting* s = request.add_set();
    s->set_key(setting->first);
    s->set_value(setting->second);
  }
  return CallAndPrint(client, &Stub::Fork, request,
                      [&](const auto& response) { return ForkText(run_id, *step, response); });
}

int Edit(const Command& command, Client& client, const ParsedArgs& args) {
  const std::string& target = args.positional[0];
  std::optional<TargetKind> kind = Target(command, target, true, true);
  if (!kind) return kExitUsage;
  if (!args.Has("priority") && !args.Has("max-concurrent") && !args.Has("steps")) {
    return UsageError(command, "give at least one of --priority, --max-concurrent, --steps");
  }
  v1::EditRequest request;
  request.set_target(target);
  if (args.Has("priority")) {
    absl::StatusOr<int64_t> v = ParseInteger(args.Get("priority"), "--priority", 0, 1000);
    if (!v.ok()) return UsageError(command, v.status().message());
    request.set_priority(static_cast<int32_t>(*v));
  }
  if (args.Has("max-concurrent")) {
    if (*kind == TargetKind::kRun) {
      return UsageError(command, absl::StrCat("--max-concurrent limits a sweep; ", target,
                                              " is a run: give its sweep id"));
    }
    absl::StatusOr<int64_t> v =
        ParseInteger(args.Get("max-concurrent"), "--max-concurrent", 0, 1000000);
    if (!v.ok()) return UsageError(command, v.status().message());
    request.set_max_concurrent(static_cast<int32_t>(*v));
  }
  if (args.Has("steps")) {
    absl::StatusOr<int64_t> v =
        ParseInteger(args.Get("steps"), "--steps", 1, std::numeric_limits<int64_t>::max());
    if (!v.ok()) return UsageError(command, v.status().message());
    request.set_steps(*v);
  }
  return CallAndPrint(client, &Stub::Edit, request,
                      [](const auto& response) { return EditText(response); });
}

int Workers(const Command& command, Client& client, const ParsedArgs& args) {
  return CallAndPrint(client, &Stub::ListWorkers, v1::ListWorkersRequest(), [](const auto& r) {
    return WorkersText(r, static_cast<double>(std::time(nullptr)));
  });
}

// The runs of `target`: a sweep's (and the sweep itself), or the one run.
int GetRuns(Client& client, const std::string& target, TargetKind kind, v1::Sweep* sweep,
            std::vector<v1::Run>* runs) {
  return Unary(client, [&](auto& stub, grpc::ClientContext* context) {
    if (kind == TargetKind::kSweep) {
      v1::GetSweepRequest request;
      request.set_sweep_id(target);
      v1::GetSweepResponse response;
      grpc::Status status = stub.GetSweep(context, request, &response);
      *sweep = response.sweep();
      runs->assign(response.runs().begin(), response.runs().end());
      return status;
    }
    v1::GetRunRequest request;
    request.set_run_id(target);
    v1::GetRunResponse response;
    grpc::Status status = stub.GetRun(context, request, &response);
    *runs = {response.run()};
    return status;
  });
}

// export --what tasks: the runs' task scores (their metrics, GetSweep or GetRun), not telemetry.
int ExportTasks(const Command& command, Client& client, const ParsedArgs& args,
                const std::string& target, TargetKind kind) {
  for (const char* flag : {"from-step", "to-step", "all-attempts"}) {
    if (args.Has(flag)) {
      return UsageError(command, absl::StrCat("--", flag, " is for telemetry; --what tasks "
                                              "exports each run's newest scores"));
    }
  }
  absl::StatusOr<ExportFormat> format = ParseExportFormat(args.Get("format", "csv"));
  if (!format.ok()) return UsageError(command, format.status().message());
  v1::Sweep sweep;
  std::vector<v1::Run> runs;
  if (const int code = GetRuns(client, target, kind, &sweep, &runs); code != kExitOk) return code;
  const std::string path = args.Get("output");
  OutputFile output(&std::cout);
  if (absl::Status opened = output.Open(path); !opened.ok()) {
    return Fail(kExitUsage, opened.message());
  }
  output.stream() << TaskScoresExport(runs, *format);
  if (absl::Status committed = output.Commit(); !committed.ok()) {
    return Fail(kExitUsage, committed.message());
  }
  if (!path.empty()) {
    std::cerr << "sgtctl: wrote " << TaskScoreRows(runs) << " tasks rows to " << path << "\n";
  }
  return kExitOk;
}

int Export(const Command& command, Client& client, const ParsedArgs& args) {
  const std::string& target = args.positional[0];
  const std::optional<TargetKind> target_kind = Target(command, target, true, true);
  if (!target_kind) return kExitUsage;
  if (!args.Has("what")) {
    return UsageError(command, "--what entropy|scalars|decisions|tasks is required");
  }
  if (args.Get("what") == "tasks") {
    return ExportTasks(command, client, args, target, *target_kind);
  }
  absl::StatusOr<v1::TelemetryKind> kind = ParseExportKind(args.Get("what"));
  if (!kind.ok()) return UsageError(command, kind.status().message());
  absl::StatusOr<ExportFormat> format = ParseExportFormat(args.Get("format", "csv"));
  if (!format.ok()) return UsageError(command, format.status().message());
  v1::TelemetryQuery query;
  query.set_target(target);
  query.set_kind(*kind);
  query.set_all_attempts(args.Has("all-attempts"));
  for (const char* flag : {"from-step", "to-step"}) {
    if (!args.Has(flag)) continue;
    absl::StatusOr<int64_t> step = ParseInteger(args.Get(flag), absl::StrCat("--", flag), 0,
                                                std::numeric_limits<int64_t>::max());
    if (!step.ok()) return UsageError(command, step.status().message());
    if (std::string(flag) == "from-step") {
      query.set_from_step(*step);
    } else {
      query.set_to_step(*step);
    }
  }
  if (query.to_step() > 0 && query.from_step() > query.to_step()) {
    return UsageError(command, absl::StrCat("--from-step ", query.from_step(),
                                            " is after --to-step ", query.to_step()));
  }

  // -o FILE: written as FILE.partial, renamed when complete (the destructor removes it on errors).
  const std::string path = args.Get("output");
  OutputFile output(&std::cout);
  if (absl::Status opened = output.Open(path); !opened.ok()) {
    return Fail(kExitUsage, opened.message());
  }
  absl::StatusOr<v1::CoordinatorService::Stub*> stub = client.Stub();
  if (!stub.ok()) return Fail(kExitUsage, stub.status().message());
  // No deadline: a sweep's entropy can take minutes to stream.
  std::unique_ptr<grpc::ClientContext> context = client.Context(/*deadline=*/false);
  std::unique_ptr<grpc::ClientReader<v1::TelemetryPage>> reader =
      (*stub)->QueryTelemetry(context.get(), query);
  TelemetryWriter writer(*kind, *format, &output.stream());
  writer.Begin();
  v1::TelemetryPage page;
  absl::Status written = absl::OkStatus();
  while (reader->Read(&page)) {
    written = writer.Write(page);
    if (!written.ok()) {
      context->TryCancel();
      break;
    }
  }
  grpc::Status status = reader->Finish();
  if (!written.ok()) return Fail(kExitCoordinator, written.message());
  if (!status.ok()) return RpcError(client, status);
  writer.End();
  if (absl::Status committed = output.Commit(); !committed.ok()) {
    return Fail(kExitUsage, committed.message());
  }
  if (!path.empty()) {
    std::cerr << "sgtctl: wrote " << writer.rows() << " " << args.Get("what") << " rows to " << path
              << "\n";
  }
  return kExitOk;
}

// Streams every row of `kind` of `target` (the surviving attempts) into `telemetry`.
grpc::Status FetchTelemetry(v1::CoordinatorService::Stub& stub, const Client& client,
                            const std::string& target, v1::TelemetryKind kind,
                            ReportTelemetry* telemetry) {
  v1::TelemetryQuery query;
  query.set_target(target);
  query.set_kind(kind);
  // No deadline: a large sweep's entropy takes a while to stream.
  std::unique_ptr<grpc::ClientContext> context = client.Context(/*deadline=*/false);
  std::unique_ptr<grpc::ClientReader<v1::TelemetryPage>> reader =
      stub.QueryTelemetry(context.get(), query);
  v1::TelemetryPage page;
  while (reader->Read(&page)) telemetry->Add(page);
  return reader->Finish();
}

// report --html: the runs (a sweep's, or one run and its sweep), their telemetry, the page.
int ReportHtml(const Command& command, Client& client, const std::string& target,
               TargetKind kind, const std::string& path) {
  v1::Sweep sweep;
  std::vector<v1::Run> runs;
  int code = GetRuns(client, target, kind, &sweep, &runs);
  if (code != kExitOk) return code;
  if (kind == TargetKind::kRun && !runs.front().sweep_id().empty()) {
    // The sweep's settings are part of a run's report; without them the page still stands.
    v1::GetSweepRequest request;
    request.set_sweep_id(runs.front().sweep_id());
    v1::GetSweepResponse response;
    if (Unary(client, [&](auto& stub, grpc::ClientContext* context) {
          return stub.GetSweep(context, request, &response);
        }) == kExitOk) {
      sweep = response.sweep();
    }
  }
  absl::StatusOr<v1::CoordinatorService::Stub*> stub = client.Stub();
  if (!stub.ok()) return Fail(kExitUsage, stub.status().message());
  ReportTelemetry telemetry;
  for (v1::TelemetryKind what : {v1::TELEMETRY_KIND_SCALARS, v1::TELEMETRY_KIND_ENTROPY,
                                 v1::TELEMETRY_KIND_DECISIONS}) {
    grpc::Status status = FetchTelemetry(**stub, client, target, what, &telemetry);
    if (!status.ok()) return RpcError(client, status);
  }
  HtmlReportOptions options;
  options.generated = FormatTime(static_cast<double>(std::time(nullptr)));
  const std::string page = RenderReportHtml(sweep, runs, telemetry, target, options);
  OutputFile output(&std::cout);
  if (absl::Status opened = output.Open(path == "-" ? "" : path); !opened.ok()) {
    return Fail(kExitUsage, opened.message());
  }
  output.stream() << page;
  if (absl::Status committed = output.Commit(); !committed.ok()) {
    return Fail(kExitUsage, committed.message());
  }
  if (path != "-") {
    std::cerr << "sgtctl: wrote the report of " << target << " (" << runs.size() << " runs, "
              << FormatBytes(static_cast<int64_t>(page.size())) << ") to " << path << "\n";
  }
  return kExitOk;
}

int Report(const Command& command, Client& client, const ParsedArgs& args) {
  const std::string& target = args.positional[0];
  const bool html = args.Has("html");
  std::optional<TargetKind> kind = Target(command, target, html, true);
  if (!kind) return kExitUsage;
  if (html) {
    if (args.Get("html").empty()) return UsageError(command, "--html needs a FILE, or - for stdout");
    return ReportHtml(command, client, target, *kind, args.Get("html"));
  }
  v1::GetSweepRequest request;
  request.set_sweep_id(target);
  v1::GetSweepResponse response;
  int code = Unary(client, [&](auto& stub, grpc::ClientContext* context) {
    return stub.GetSweep(context, request, &response);
  });
  if (code != kExitOk) return code;
  cli::Report report = BuildReport(
      response.sweep(), std::vector<v1::Run>(response.runs().begin(), response.runs().end()));
  ReportTableOptions options;
  options.acc_norm = args.Has("acc-norm");
  std::cout << (client.options().json ? ReportJson(report) : RenderReportTable(report, options));
  return kExitOk;
}

// The growth decisions of one run from `from_step` on (QueryTelemetry, with the call deadline).
absl::StatusOr<std::vector<v1::GrowthDecision>> FetchDecisions(v1::CoordinatorService::Stub& stub,
                                                               const Client& client,
                                                               const std::string& run_id,
                                                               int64_t from_step) {
  v1::TelemetryQuery query;
  query.set_target(run_id);
  query.set_kind(v1::TELEMETRY_KIND_DECISIONS);
  query.set_from_step(from_step);
  std::unique_ptr<grpc::ClientContext> context = client.Context();
  std::unique_ptr<grpc::ClientReader<v1::TelemetryPage>> reader =
      stub.QueryTelemetry(context.get(), query);
  std::vector<v1::GrowthDecision> decisions;
  v1::TelemetryPage page;
  while (reader->Read(&page)) {
    for (v1::GrowthDecision& decision : *page.mutable_decisions()) {
      decisions.push_back(std::move(decision));
    }
  }
  grpc::Status status = reader->Finish();
  if (!status.ok()) return absl::UnavailableError(status.error_message());
  return decisions;
}

int Watch(const Command& command, Client& client, const ParsedArgs& args) {
  const std::string& target = args.positional[0];
  if (!Target(command, target, true, true)) return kExitUsage;
  absl::StatusOr<int64_t> every = ParseInteger(args.Get("every", "10"), "--every", 1, 86400);
  if (!every.ok()) return UsageError(command, every.status().message());
  absl::StatusOr<v1::CoordinatorService::Stub*> stub = client.Stub();
  if (!stub.ok()) return Fail(kExitUsage, stub.status().message());
  v1::WatchRequest request;
  request.set_target(target);
  std::unique_ptr<grpc::ClientContext> context = client.Context(/*deadline=*/false);
  std::unique_ptr<grpc::ClientReader<v1::WatchResponse>> reader =
      (*stub)->Watch(context.get(), request);

  const bool json = client.options().json;
  const bool live = !json && isatty(STDOUT_FILENO) == 1;
  WatchScreen screen(target);
  // Not a terminal: a log (cli/watch_log.h), with the growth decisions fetched as runs advance.
  bool fetch_warned = false;
  WatchLog log(*every, [&](const std::string& run_id, int64_t from_step) {
    absl::StatusOr<std::vector<v1::GrowthDecision>> decisions =
        FetchDecisions(**stub, client, run_id, from_step);
    if (!decisions.ok() && !fetch_warned) {
      fetch_warned = true;
      std::cerr << "sgtctl: cannot fetch growth decisions of " << run_id
                << " (retrying): " << decisions.status().message() << "\n";
    }
    return decisions;
  });
  const auto started = std::chrono::steady_clock::now();
  auto now = [&] {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  };
  WatchedRuns runs;
  bool done = false;
  v1::WatchResponse response;
  while (reader->Read(&response)) {
    if (json) std::cout << CompactJson(response) << "\n" << std::flush;
    for (const v1::Run& run : response.runs()) {
      runs.Update(run);
      if (json || live) continue;
      for (const std::string& line : log.Update(run, now())) std::cout << line << "\n";
      std::cout << std::flush;
    }
    // An update of many runs comes in pages: draw once it is whole.
    if (live && !response.more())
      std::cout << screen.Frame(runs.Runs(), TerminalSizeOf(STDOUT_FILENO, getenv)) << std::flush;
    if (response.done()) {
      // The stream closes after done; do not wait on a server that fails to close it.
      done = true;
      context->TryCancel();
      break;
    }
  }
  grpc::Status status = reader->Finish();
  if (!done) {
    if (!status.ok()) return RpcError(client, status);
    return Fail(kExitCoordinator,
                absl::StrCat("the coordinator closed the watch of ", target,
                             " before every run ended; run sgtctl watch ", target, " again"));
  }
  std::string not_succeeded = runs.NotSucceeded();
  return not_succeeded.empty() ? kExitOk : Fail(kExitRunsFailed, not_succeeded);
}

const std::vector<Command>& Commands() {
  const FlagSpec reason{"reason", true};
  static const std::vector<Command> commands = {
      {"submit", "submit FILE", {}, 1, 1, Submit},
      {"plan", "plan FILE [--json]", {}, 1, 1, Plan},
      {"ls", "ls [SWEEP] [--state S]...", {{"state", true, true}}, 0, 1, List},
      {"show", "show RUN|SWEEP", {}, 1, 1, Show},
      {"watch", "watch RUN|SWEEP [--every SECONDS]", {{"every", true}}, 1, 1, Watch},
      {"pause", "pause RUN|SWEEP [--reason TEXT]", {reason}, 1, 1, Action},
      {"resume", "resume RUN|SWEEP [--reason TEXT]", {reason}, 1, 1, Action},
      {"snapshot", "snapshot RUN|SWEEP [--reason TEXT]", {reason}, 1, 1, Action},
      {"cancel", "cancel RUN|SWEEP [--reason TEXT]", {reason}, 1, 1, Action},
      {"fork",
       "fork RUN --from-step N [--set KEY=VALUE]... [--name NAME]",
       {{"from-step", true}, {"set", true, true}, {"name", true}},
       1,
       1,
       Fork},
      {"edit",
       "edit RUN|SWEEP [--priority P] [--max-concurrent N] [--steps S]",
       {{"priority", true}, {"max-concurrent", true}, {"steps", true}},
       1,
       1,
       Edit},
      {"workers", "workers", {}, 0, 0, Workers},
      {"export",
       "export RUN|SWEEP --what entropy|scalars|decisions|tasks [--format csv|json] [--from-step A] "
       "[--to-step B] [--all-attempts] [-o FILE]",
       {{"what", true},
        {"format", true},
        {"from-step", true},
        {"to-step", true},
        {"all-attempts", false},
        {"output", true, false, 'o'}},
       1,
       1,
       Export},
      {"report", "report SWEEP [--json] [--acc-norm] | report RUN|SWEEP --html FILE|-",
       {{"html", true}, {"acc-norm", false}}, 1, 1, Report},
  };
  return commands;
}

const Command* FindCommand(const std::string& name) {
  for (const Command& command : Commands()) {
    if (name == command.name) return &command;
  }
  return nullptr;
}

// Folds the global options found before and after the command into `options`, after the
// environment and the defaults.
absl::Status ResolveOptions(const ParsedArgs& before, const ParsedArgs& after, Options* options) {
  auto pick = [&](const std::string& flag, const char* env, const std::string& fallback) {
    if (after.Has(flag)) return after.Get(flag);
    if (before.Has(flag)) return before.Get(flag);
    std::string value = Env(env);
    return value.empty() ? fallback : value;
  };
  options->address = pick("coordinator", "SGT_COORDINATOR", kDefaultAddress);
  options->token_file = pick("token-file", "SGT_TOKEN_FILE", "");
  options->tls_ca_file = pick("tls-ca", "SGT_TLS_CA", "");
  options->json = before.Has("json") || after.Has("json");
  std::string timeout = after.Has("timeout") ? after.Get("timeout") : before.Get("timeout");
  if (!timeout.empty()) {
    double seconds = 0;
    if (!absl::SimpleAtod(timeout, &seconds) || !(seconds > 0) || seconds > 86400) {
      return absl::InvalidArgumentError(
          absl::StrCat("--timeout '", timeout, "' is not a number of seconds in (0, 86400]"));
    }
    options->timeout_s = seconds;
  }
  if (options->address.empty()) {
    return absl::InvalidArgumentError("--coordinator is empty; give HOST:PORT");
  }
  return absl::OkStatus();
}

void DiscardGrpcLog(gpr_log_func_args*) {}

int Main(int argc, char** argv) {
  // gRPC's own log repeats, less clearly, the errors sgtctl prints; GRPC_VERBOSITY brings it back.
  if (std::getenv("GRPC_VERBOSITY") == nullptr) gpr_set_log_function(DiscardGrpcLog);
  std::vector<std::string> argv_rest(argv + 1, argv + argc);
  absl::StatusOr<ParsedArgs> before = ParseArgs(argv_rest, GlobalFlags(), true);
  if (!before.ok()) {
    return Fail(kExitUsage, absl::StrCat(before.status().message(), "; see sgtctl --help"));
  }
  if (before->positional.empty()) {
    if (before->Has("help")) {
      std::cout << kUsage;
      return kExitOk;
    }
    std::cerr << kUsage;
    return Fail(kExitUsage, "no command given");
  }
  const std::string name = before->positional[0];
  if (name == "help") {
    if (before->positional.size() > 1) {
      const Command* command = FindCommand(before->positional[1]);
      if (command == nullptr) {
        return Fail(kExitUsage, absl::StrCat("help: unknown command '", before->positional[1],
                                             "'; see sgtctl --help"));
      }
      std::cout << CommandHelp(command->usage);
      return kExitOk;
    }
    std::cout << kUsage;
    return kExitOk;
  }
  const Command* command = FindCommand(name);
  if (command == nullptr) {
    return Fail(kExitUsage, absl::StrCat("unknown command '", name, "'; see sgtctl --help"));
  }
  if (before->Has("help")) {
    std::cout << CommandHelp(command->usage);
    return kExitOk;
  }
  std::vector<FlagSpec> specs = command->flags;
  specs.insert(specs.end(), GlobalFlags().begin(), GlobalFlags().end());
  absl::StatusOr<ParsedArgs> after = ParseArgs(
      std::vector<std::string>(before->positional.begin() + 1, before->positional.end()), specs);
  if (!after.ok()) return UsageError(*command, after.status().message());
  if (after->Has("help")) {
    std::cout << CommandHelp(command->usage);
    return kExitOk;
  }
  if (after->positional.size() < command->min_args) {
    return UsageError(*command, "missing argument");
  }
  if (after->positional.size() > command->max_args) {
    return UsageError(
        *command, absl::StrCat("unexpected argument '", after->positional[command->max_args], "'"));
  }
  Options options;
  if (absl::Status status = ResolveOptions(*before, *after, &options); !status.ok()) {
    return Fail(kExitUsage, status.message());
  }
  Client client(options);
  return command->run(*command, client, *after);
}

}  // namespace
}  // namespace sgt::cli

int main(int argc, char** argv) { return sgt::cli::Main(argc, argv); }
