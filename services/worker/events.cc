// EventTranslator: sgt-train's event lines, parsed by libsgt/core/event_log (which owns the
// format and its error messages), mapped to the telemetry rows of the worker protocol.
#include "services/worker/events.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <tuple>
#include <utility>
#include <variant>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "libsgt/core/event_log.h"
#include "services/common/checkpoint_path.h"
#include "services/common/telemetry.h"

namespace sgt::worker {
namespace {

using sgt::v1::TelemetryBatch;
namespace events = sgt::events;

sgt::v1::EntropySignal ProtoSignal(EntropySignal s) {
  return s == EntropySignal::kProbe ? sgt::v1::ENTROPY_SIGNAL_PROBE : sgt::v1::ENTROPY_SIGNAL_TRAIN;
}

void AddScalar(int64_t step, std::string name, double value, TelemetryBatch* out) {
  sgt::v1::ScalarRow* row = out->add_scalars();
  row->set_step(step);
  row->set_name(std::move(name));
  row->set_value(value);
}

// val_loss and val_ppl, named by `name`; a non-finite value adds no row.
template <typename Name>
void Validation(int64_t step, double val_loss, double val_ppl, Name name, TelemetryBatch* out) {
  if (std::isfinite(val_loss)) AddScalar(step, name(events::scalar::kValLoss), val_loss, out);
  if (std::isfinite(val_ppl)) AddScalar(step, name(events::scalar::kValPpl), val_ppl, out);
}

// One row per finite value of `passes`: layer, head = pass_heads[p][i], loop = p.
void Entropy(const events::EntropyEvent& e, TelemetryBatch* out) {
  for (const events::EntropyLayer& l : e.layers) {
    for (size_t p = 0; p < l.passes.size(); ++p) {
      for (size_t v = 0; v < l.passes[p].size(); ++v) {
        if (!std::isfinite(l.passes[p][v])) continue;  // a null: nothing measured
        sgt::v1::EntropyRow* row = out->add_entropy();
        row->set_step(e.step);
        row->set_signal(ProtoSignal(e.signal));
        row->set_layer(static_cast<int32_t>(l.layer));
        row->set_head(static_cast<int32_t>(l.pass_heads[p][v]));
        row->set_loop(static_cast<int32_t>(p));
        row->set_value(static_cast<float>(l.passes[p][v]));
      }
    }
  }
}

void Decision(const events::DecisionEvent& e, TelemetryBatch* out) {
  sgt::v1::GrowthDecision* d = out->add_decisions();
  for (const std::vector<double>& values : e.head_entropy) {
    d->add_head_entropy()->mutable_values()->Add(values.begin(), values.end());
  }
  d->set_step(e.step);
  d->set_action(e.action);
  d->set_layer(static_cast<int32_t>(e.layer));
  d->set_k(static_cast<int32_t>(e.k));
  for (int64_t h : e.heads) d->add_heads(static_cast<int32_t>(h));
  d->set_whole_block(e.whole_block);
  for (int64_t c : e.candidates) d->add_candidates(static_cast<int32_t>(c));
  d->mutable_layer_entropy()->Add(e.layer_entropy.begin(), e.layer_entropy.end());
  d->set_reason(e.reason);
  d->set_signal(ProtoSignal(e.signal));
}

// The record of a checkpoint inside `root` ("" : any absolute path); `what` names the event in
// errors, `time` is when it was written (the event's time).
absl::Status Checkpoint(const events::CheckpointEvent& e, double time, const std::string& what,
                        const std::string& root, TelemetryBatch* out) {
  std::string path = e.path;
  if (root.empty()) {
    // No root to confine to: at least the wire rule the coordinator applies, so that a bad
    // path costs this line, not the whole batch it would travel in.
    if (!IsWirePath(path)) {
      return absl::InvalidArgumentError(absl::StrCat(
          what, ": path ", path, " is not absolute or has a '..' component; sgt-train writes "
          "absolute checkpoint paths"));
    }
  } else {
    absl::StatusOr<std::string> confined = ConfinedPath(root, path);
    if (!confined.ok()) {
      return absl::Status(confined.status().code(),
                          absl::StrCat(what, ": ", confined.status().message()));
    }
    path = *std::move(confined);
  }
  sgt::v1::CheckpointRecord* c = out->add_checkpoints();
  c->set_step(e.step);
  c->set_path(path);
  c->set_bytes(e.bytes);
  c->set_sha256(e.sha256);
  c->set_reason(e.reason);
  c->set_time(time);
  return absl::OkStatus();
}

// The rows of a task_eval event: acc/<task>[/<group>] and acc_norm/<task>[/<group>] per score,
// and the macro means acc and acc_norm over the tasks' totals; a non-finite value adds no row. A
// (step, task, group) already translated adds nothing again (the scores of one step are those
// of one model: a checkpoint's evaluation at the last step and the final one are the same).
void TaskEval(const events::TaskEvalEvent& e,
              std::set<std::tuple<int64_t, std::string, std::string>>* seen,
              TelemetryBatch* out) {
  const auto add = [&](const std::string& task, const std::string& group, double acc,
                       double acc_norm) {
    if (!seen->emplace(e.step, task, group).second) return;
    if (std::isfinite(acc)) {
      AddScalar(e.step, events::TaskScalarName(events::scalar::kAcc, task, group), acc, out);
    }
    if (std::isfinite(acc_norm)) {
      AddScalar(e.step, events::TaskScalarName(events::scalar::kAccNorm, task, group), acc_norm,
                out);
    }
  };
  for (const eval::TaskScore& t : e.scores) add(t.task, t.group, t.acc, t.acc_norm);
  if (const std::optional<events::MacroAccuracy> m = events::TaskMacroMean(e.scores)) {
    add("", "", m->acc, m->acc_norm);
  }
}

}  // namespace

EventTranslator::EventTranslator(std::string checkpoint_root) : root_(std::move(checkpoint_root)) {}

absl::Status EventTranslator::Add(std::string_view line, TelemetryBatch* batch) {
  flush_now_ = false;
  absl::StatusOr<events::ParsedEvent> parsed = events::ParseEventLine(line);
  if (!parsed.ok()) return parsed.status();
  const events::ParsedEvent& p = *parsed;
  if (!p.event) {  // a newer sgt-train's event: only its step counts
    if (p.step) step_ = std::max(step_, *p.step);
    return absl::OkStatus();
  }

  TelemetryBatch rows;
  absl::Status status;
  const events::Event& event = *p.event;
  if (const auto* e = std::get_if<events::ScalarsEvent>(&event)) {
    for (const events::Scalar& v : e->values) AddScalar(e->step, v.name, v.value, &rows);
  } else if (const auto* e = std::get_if<events::EvalEvent>(&event)) {
    Validation(e->step, e->val_loss, e->val_ppl, [](const char* n) { return std::string(n); },
               &rows);
  } else if (const auto* e = std::get_if<events::ExtrapolationEvent>(&event)) {
    Validation(
        e->step, e->val_loss, e->val_ppl,
        [&](const char* n) { return events::ExtrapolationScalarName(n, e->multiple); }, &rows);
  } else if (const auto* e = std::get_if<events::EntropyEvent>(&event)) {
    Entropy(*e, &rows);
  } else if (const auto* e = std::get_if<events::TaskEvalEvent>(&event)) {
    TaskEval(*e, &task_eval_seen_, &rows);
  } else if (const auto* e = std::get_if<events::DecisionEvent>(&event)) {
    Decision(*e, &rows);
  } else if (const auto* e = std::get_if<events::CheckpointEvent>(&event)) {
    status = Checkpoint(*e, p.time, p.what, root_, &rows);
  }
  if (!status.ok()) return status;

  // The line is good: only now does anything change.
  if (std::holds_alternative<events::StartEvent>(event)) {
    started_ = true;
    start_step_ = step_ = *p.step;
  } else if (p.step) {
    step_ = std::max(step_, *p.step);
  }
  if (const auto* e = std::get_if<events::ErrorEvent>(&event)) error_ = e->message;
  const auto* end = std::get_if<events::EndEvent>(&event);
  if (end != nullptr) {
    end_status_ = end->status;
    summary_json_ = end->summary_json;
  }
  flush_now_ = std::holds_alternative<events::DecisionEvent>(event) ||
               std::holds_alternative<events::CheckpointEvent>(event) || end != nullptr ||
               std::holds_alternative<events::ErrorEvent>(event);
  rows_ += telemetry::RowCount(rows);
  batch->MergeFrom(rows);
  return absl::OkStatus();
}

}  // namespace sgt::worker
