// The views of `ls`, `show` and `workers` (cli/show.h).
#include "cli/show.h"

#include <algorithm>
#include <cmath>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "cli/format.h"

namespace sgt::cli {

using Align = Table::Align;

namespace {

bool MultiNode(const v1::Run& run) { return run.nodes() > 1; }

// "2 x 4": nodes x devices on each.
std::string NodesByDevices(const v1::Run& run) {
  return absl::StrCat(std::max(1, run.nodes()), " x ", run.devices());
}

// The run's workers: node 0's, or every node's joined by "+" for a multi-node attempt.
std::string WorkersOf(const v1::Run& run) {
  if (run.worker_ids_size() > 1) return absl::StrJoin(run.worker_ids(), "+");
  return Dash(run.worker_id());
}

}  // namespace

std::string SweepsText(const v1::ListSweepsResponse& response, absl::TimeZone tz) {
  if (response.sweeps_size() == 0) return "no sweeps yet; submit one with: sgtctl submit FILE\n";
  Table table({"ID", "NAME", "PRIORITY", "MAX CONC", "RUNS", "BY STATE", "CREATED"},
              {Align::kLeft, Align::kLeft, Align::kRight, Align::kRight, Align::kRight,
               Align::kLeft, Align::kLeft});
  for (const v1::Sweep& sweep : response.sweeps()) {
    table.AddRow({sweep.id(), sweep.name(), absl::StrCat(sweep.priority()),
                  sweep.max_concurrent() > 0 ? absl::StrCat(sweep.max_concurrent()) : "-",
                  absl::StrCat(sweep.runs()), StateCounts(sweep.runs_by_state()),
                  FormatTime(sweep.created_at(), tz)});
  }
  return table.Render();
}

std::string RunsTable(const google::protobuf::RepeatedPtrField<v1::Run>& runs, bool with_sweep) {
  std::vector<std::string> header = {"ID",      "NAME",   "VARIANT", "STATE",  "STEP",
                                     "ATTEMPT", "WORKER", "LOSS",    "VAL PPL"};
  std::vector<Align> align = {Align::kLeft, Align::kLeft,  Align::kLeft,
                              Align::kLeft, Align::kRight, Align::kRight,
                              Align::kLeft, Align::kRight, Align::kRight};
  // Runs over several workers add a column of nodes x devices (absent otherwise, as before).
  const bool nodes = std::any_of(runs.begin(), runs.end(), MultiNode);
  if (nodes) {
    header.insert(header.begin() + 6, "NODES x DEV");
    align.insert(align.begin() + 6, Align::kRight);
  }
  if (with_sweep) {
    header.insert(header.begin() + 1, "SWEEP");
    align.insert(align.begin() + 1, Align::kLeft);
  }
  Table table(header, align);
  for (const v1::Run& run : runs) {
    std::vector<std::string> row = {run.id(),
                                    run.name(),
                                    run.variant(),
                                    RunStateName(run.state()),
                                    StepOfSteps(run),
                                    absl::StrCat(run.attempt()),
                                    WorkersOf(run),
                                    FormatMetric(run.metrics().loss(), 3),
                                    FormatMetric(run.metrics().val_ppl(), 2)};
    if (nodes) row.insert(row.begin() + 6, NodesByDevices(run));
    if (with_sweep) row.insert(row.begin() + 1, run.sweep_id());
    table.AddRow(row);
  }
  return table.Render();
}

std::string RunsText(const v1::ListRunsResponse& response, const std::string& sweep_id,
                     bool states_asked) {
  if (response.runs_size() == 0) {
    return absl::StrCat("no runs", sweep_id.empty() ? "" : absl::StrCat(" in ", sweep_id),
                        states_asked ? " in the states asked for" : "", "\n");
  }
  return RunsTable(response.runs(), sweep_id.empty());
}

namespace {
// An accuracy in percent with one decimal ("27.5%"); "-" when not finite.
std::string FormatAccuracy(double fraction) {
  if (!std::isfinite(fraction)) return "-";
  return absl::StrFormat("%.1f%%", fraction * 100);
}
}  // namespace

std::string ShowRun(const v1::GetRunResponse& response, absl::TimeZone tz) {
  const v1::Run& run = response.run();
  const v1::RunMetrics& m = run.metrics();
  std::string state = RunStateName(run.state());
  if (!run.reason().empty()) absl::StrAppend(&state, " (", run.reason(), ")");
  std::string parent = "-";
  if (!run.parent_run_id().empty()) {
    parent = absl::StrCat(run.parent_run_id(), " at step ", run.parent_step());
  }
  std::string devices = absl::StrCat(run.devices());
  std::string workers = Dash(run.worker_id());
  if (MultiNode(run)) {
    devices = absl::StrCat(run.devices(), " on each of ", run.nodes(), " nodes (",
                           int64_t{run.devices()} * run.nodes(), " ranks)");
    if (run.worker_ids_size() > 0) {
      std::vector<std::string> parts;
      for (int i = 0; i < run.worker_ids_size(); ++i) {
        parts.push_back(absl::StrCat(run.worker_ids(i), " (node ", i, ")"));
      }
      workers = absl::StrJoin(parts, ", ");
    }
  }
  auto flops = [](double v) {
    return absl::StrCat(FormatFlops(v), " (", FormatFlopsHuman(v), ")");
  };
  std::string out = Fields({
      {"run", run.id()},
      {"sweep", run.sweep_id()},
      {"name", run.name()},
      {"variant", run.variant()},
      {"state", state},
      {"priority", absl::StrCat(run.priority())},
      {"devices", devices},
      {"step", StepOfSteps(run)},
      {"attempt", absl::StrCat(run.attempt())},
      {"restarts", absl::StrCat(run.restarts())},
      {"worker", workers},
      {"settings", SettingsText(run)},
      {"forked from", parent},
      {"resume from",
       run.resume_checkpoint().empty() ? "- (a fresh start)" : run.resume_checkpoint()},
      {"config hash", Dash(run.config_hash())},
      {"created", FormatTime(run.created_at(), tz)},
      {"updated", FormatTime(run.updated_at(), tz)},
      {"loss", FormatMetric(m.loss(), 4)},
      {"val loss", FormatMetric(m.val_loss(), 4)},
      {"val ppl", FormatMetric(m.val_ppl(), 2)},
      {"tokens", absl::StrCat(m.tokens())},
      {"tokens/s", FormatMetric(m.tokens_per_s(), 0)},
      {"train FLOPs", flops(m.train_flops())},
      {"vanilla FLOPs", flops(m.vanilla_flops())},
      {"overhead", FormatPercent(m.overhead())},
      {"train time", m.train_seconds() > 0 ? FormatDuration(m.train_seconds()) : "-"},
      {"stored", absl::StrCat(response.decisions(), " decisions, ", response.entropy_rows(),
                              " entropy rows, ", response.scalar_rows(), " scalar rows")},
  });
  if (m.tasks_size() > 0) {
    // Zero-shot task scores: the final ones of a finished run, the newest of a running one.
    int64_t step = 0;
    for (const v1::TaskAccuracy& t : m.tasks()) step = std::max(step, t.step());
    absl::StrAppend(&out, "task scores at step ", step, " (acc ", FormatAccuracy(m.acc()),
                    ", acc_norm ", FormatAccuracy(m.acc_norm()), " over the tasks):\n");
    Table tasks({"TASK", "GROUP", "ITEMS", "ACC", "ACC_NORM"},
                {Align::kLeft, Align::kLeft, Align::kRight, Align::kRight, Align::kRight});
    for (const v1::TaskAccuracy& t : m.tasks()) {
      tasks.AddRow({t.task(), Dash(t.group()), t.items() > 0 ? absl::StrCat(t.items()) : "-",
                    FormatAccuracy(t.acc()), FormatAccuracy(t.acc_norm())});
    }
    absl::StrAppend(&out, tasks.Render());
  }
  absl::StrAppend(&out, "config:\n",
                  run.config_json().empty() ? "  -\n" : IndentedJson(run.config_json()));
  absl::StrAppend(&out, "summary:\n",
                  run.summary_json().empty() ? "  - (no attempt has finished or paused)\n"
                                             : IndentedJson(run.summary_json()));

  absl::StrAppend(&out, "\nstate transitions:\n");
  if (response.events_size() == 0) {
    absl::StrAppend(&out, "  none\n");
  } else {
    Table events({"TIME", "ATTEMPT", "TRANSITION", "REASON"}, {Align::kLeft, Align::kRight});
    for (const v1::RunEvent& e : response.events()) {
      std::string from =
          e.from_state() == v1::RUN_STATE_UNSPECIFIED ? "(new)" : RunStateName(e.from_state());
      events.AddRow({FormatTime(e.time(), tz), absl::StrCat(e.attempt()),
                     absl::StrCat(from, " → ", RunStateName(e.to_state())), e.reason()});
    }
    absl::StrAppend(&out, events.Render());
  }

  absl::StrAppend(&out, "\ncheckpoints:\n");
  if (response.checkpoints_size() == 0) {
    absl::StrAppend(&out, "  none\n");
  } else {
    Table checkpoints({"STEP", "ATTEMPT", "REASON", "SIZE", "TIME", "SHA256", "PATH"},
                      {Align::kRight, Align::kRight, Align::kLeft, Align::kRight});
    for (const v1::CheckpointRecord& c : response.checkpoints()) {
      checkpoints.AddRow({absl::StrCat(c.step()), absl::StrCat(c.attempt()), c.reason(),
                          FormatBytes(c.bytes()), FormatTime(c.time(), tz),
                          c.sha256().substr(0, 12), c.path()});
    }
    absl::StrAppend(&out, checkpoints.Render());
  }
  return out;
}

std::string ShowSweep(const v1::GetSweepResponse& response, absl::TimeZone tz) {
  const v1::Sweep& sweep = response.sweep();
  std::string out = Fields({
      {"sweep", sweep.id()},
      {"name", sweep.name()},
      {"source", Dash(sweep.source_name())},
      {"priority", absl::StrCat(sweep.priority())},
      {"max concurrent",
       sweep.max_concurrent() > 0 ? absl::StrCat(sweep.max_concurrent()) : "- (no limit)"},
      {"max restarts", absl::StrCat(sweep.max_restarts())},
      {"created", FormatTime(sweep.created_at(), tz)},
      {"runs", absl::StrCat(sweep.runs(), " (", StateCounts(sweep.runs_by_state()), ")")},
  });
  absl::StrAppend(&out, "\nruns:\n",
                  response.runs_size() == 0 ? "  none\n" : RunsTable(response.runs(), false));
  absl::StrAppend(&out, "\nsweep file (", Dash(sweep.source_name()), "):\n");
  absl::string_view yaml = sweep.source_yaml();
  while (!yaml.empty() && yaml.back() == '\n') yaml.remove_suffix(1);
  for (absl::string_view line : absl::StrSplit(yaml, '\n')) {
    absl::StrAppend(&out, "  ", line, "\n");
  }
  return out;
}

std::string WorkersText(const v1::ListWorkersResponse& response, double now) {
  if (response.workers_size() == 0) {
    return "no workers have registered; start sgt-worker on a machine with devices\n";
  }
  Table table({"ID", "NAME", "HOST", "CONNECTED", "DEVICES", "RUNS", "LEASE", "LAST SEEN"},
              {Align::kLeft, Align::kLeft, Align::kLeft, Align::kLeft, Align::kRight});
  for (const v1::Worker& w : response.workers()) {
    std::string lease = "-";
    if (w.lease_expires_at() > 0) {
      lease = w.lease_expires_at() >= now
                  ? absl::StrCat("expires ", FormatRelative(w.lease_expires_at(), now))
                  : absl::StrCat("expired ", FormatRelative(w.lease_expires_at(), now));
    }
    table.AddRow({w.id(), w.name(), w.hostname(), w.connected() ? "yes" : "no",
                  absl::StrCat(w.free_devices(), "/", w.devices_size()),
                  w.run_ids_size() > 0 ? absl::StrJoin(w.run_ids(), ",") : "-", lease,
                  FormatRelative(std::min(w.last_seen(), now), now)});
  }
  return table.Render();
}

}  // namespace sgt::cli
