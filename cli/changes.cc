// What sgtctl prints after submit, pause/resume/snapshot/cancel, fork and edit (cli/changes.h).
#include "cli/changes.h"

#include "absl/strings/str_cat.h"
#include "cli/format.h"

namespace sgt::cli {

std::string SubmitText(const v1::SubmitSweepResponse& response, const std::string& file) {
  std::string out =
      absl::StrCat("submitted sweep ", response.sweep().id(), " \"", response.sweep().name(),
                   "\" from ", file, ": ", response.runs_size(), " runs\n");
  Table table({"ID", "NAME", "VARIANT", "STATE"});
  for (const v1::Run& run : response.runs()) {
    table.AddRow({run.id(), run.name(), run.variant(), RunStateName(run.state())});
  }
  return absl::StrCat(out, table.Render());
}

std::string ActionText(const std::string& verb, const std::string& target,
                       const v1::ActionResponse& response) {
  std::string out = absl::StrCat(verb, " ", target, ": ", response.changed_size(), " ",
                                 response.changed_size() == 1 ? "run" : "runs", " changed, ",
                                 response.unchanged_size(), " unchanged\n");
  if (response.changed_size() > 0) {
    Table table({"ID", "NAME", "STATE", "STEP"});
    for (const v1::Run& run : response.changed()) {
      table.AddRow({run.id(), run.name(), RunStateName(run.state()), StepOfSteps(run)});
    }
    absl::StrAppend(&out, "\nchanged:\n", table.Render());
  }
  if (response.unchanged_size() > 0) {
    Table table({"ID", "NAME", "STATE", "REASON"});
    for (const v1::Run& run : response.unchanged()) {
      table.AddRow({run.id(), run.name(), RunStateName(run.state()), run.reason()});
    }
    absl::StrAppend(&out, "\nunchanged (", verb, " does not apply to their state):\n",
                    table.Render());
  }
  return out;
}

std::string ForkText(const std::string& run_id, int64_t from_step,
                     const v1::ForkResponse& response) {
  const v1::Run& run = response.run();
  return absl::StrCat("forked ", run_id, " at step ", from_step, " as ", run.id(), " \"",
                      run.name(), "\" (", RunStateName(run.state()), ") in sweep ", run.sweep_id(),
                      "\nsettings: ", SettingsText(run), "\n");
}

std::string EditText(const v1::EditResponse& response) {
  std::string out;
  if (response.has_sweep()) {
    const v1::Sweep& sweep = response.sweep();
    absl::StrAppend(
        &out, "sweep ", sweep.id(), " \"", sweep.name(), "\": priority ", sweep.priority(),
        ", max concurrent ",
        sweep.max_concurrent() > 0 ? absl::StrCat(sweep.max_concurrent()) : "- (no limit)", "\n");
  }
  absl::StrAppend(&out, "edited ", response.changed_size(),
                  response.changed_size() == 1 ? " run" : " runs",
                  " (only queued and paused runs change)\n");
  if (response.changed_size() > 0) {
    Table table({"ID", "NAME", "STATE", "PRIORITY", "STEP"});
    for (const v1::Run& run : response.changed()) {
      table.AddRow({run.id(), run.name(), RunStateName(run.state()), absl::StrCat(run.priority()),
                    StepOfSteps(run)});
    }
    absl::StrAppend(&out, table.Render());
  }
  return out;
}

}  // namespace sgt::cli
