#include "services/worker/events.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "nlohmann/json.hpp"
#include "services/worker/paths.h"

namespace sgt::worker {
namespace {

// Ordered, so that rows follow the line's key order.
using Json = nlohmann::ordered_json;
using sgt::v1::TelemetryBatch;

constexpr int64_t kInt64Max = std::numeric_limits<int64_t>::max();
constexpr int64_t kInt32Max = std::numeric_limits<int32_t>::max();
constexpr int64_t kInt32Min = std::numeric_limits<int32_t>::min();
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// An integer in [lo, hi].
bool ToInt(const Json& v, int64_t lo, int64_t hi, int64_t* out) {
  if (v.is_number_unsigned()) {
    const uint64_t u = v.get<uint64_t>();
    if (u > static_cast<uint64_t>(kInt64Max)) return false;
    *out = static_cast<int64_t>(u);
  } else if (v.is_number_integer()) {
    *out = v.get<int64_t>();
  } else {
    return false;
  }
  return *out >= lo && *out <= hi;
}

// A number; null (how a non-finite value is written) reads as NaN.
bool ToNumber(const Json& v, double* out) {
  if (v.is_null()) {
    *out = kNaN;
    return true;
  }
  if (!v.is_number()) return false;
  *out = v.get<double>();
  return true;
}

bool ToInts(const Json& v, int64_t lo, int64_t hi, std::vector<int32_t>* out) {
  if (!v.is_array()) return false;
  out->clear();
  for (const Json& e : v) {
    int64_t i;
    if (!ToInt(e, lo, hi, &i)) return false;
    out->push_back(static_cast<int32_t>(i));
  }
  return true;
}

bool ToNumbers(const Json& v, std::vector<double>* out) {
  if (!v.is_array()) return false;
  out->clear();
  for (const Json& e : v) {
    double d;
    if (!ToNumber(e, &d)) return false;
    out->push_back(d);
  }
  return true;
}

// The fields of one event (or of an object inside it), read with errors that name the event
// ("entropy event at step 30") and the field ("layers[1].passes[0]").
class Fields {
 public:
  Fields(const Json& j, std::string what, std::string prefix = "")
      : j_(j), what_(std::move(what)), prefix_(std::move(prefix)) {}

  Fields Nested(const Json& j, absl::string_view name) const {
    return Fields(j, what_, absl::StrCat(prefix_, name, "."));
  }
  const std::string& what() const { return what_; }
  absl::Status Error(absl::string_view message) const {
    return absl::InvalidArgumentError(absl::StrCat(what_, ": ", message));
  }
  absl::Status Bad(absl::string_view field, absl::string_view expected) const {
    return Error(absl::StrCat(prefix_, field, " is not ", expected));
  }
  const Json* Find(const char* key) const {
    const auto it = j_.find(key);
    return it == j_.end() ? nullptr : &*it;
  }

  // Reads `key` with `convert`, which returns false when the value is not `expected`.
  template <typename Convert>
  absl::Status Read(const char* key, absl::string_view expected, Convert convert) const {
    const Json* v = Find(key);
    if (v == nullptr) return Error(absl::StrCat("no ", prefix_, key));
    if (!convert(*v)) return Bad(key, expected);
    return absl::OkStatus();
  }
  absl::Status Int(const char* key, int64_t lo, int64_t hi, int64_t* out) const {
    return Read(key, "an integer in range", [&](const Json& v) { return ToInt(v, lo, hi, out); });
  }
  absl::Status Int32(const char* key, int32_t* out) const {
    int64_t i = 0;
    absl::Status s = Int(key, kInt32Min, kInt32Max, &i);
    *out = static_cast<int32_t>(i);
    return s;
  }
  absl::Status Number(const char* key, double* out) const {
    return Read(key, "a number", [&](const Json& v) { return ToNumber(v, out); });
  }
  absl::Status String(const char* key, std::string* out) const {
    return Read(key, "a string", [&](const Json& v) {
      if (v.is_string()) *out = v.get<std::string>();
      return v.is_string();
    });
  }
  absl::Status Bool(const char* key, bool* out) const {
    return Read(key, "a boolean", [&](const Json& v) {
      if (v.is_boolean()) *out = v.get<bool>();
      return v.is_boolean();
    });
  }
  absl::Status Int32s(const char* key, std::vector<int32_t>* out) const {
    return Read(key, "a list of integers",
                [&](const Json& v) { return ToInts(v, kInt32Min, kInt32Max, out); });
  }
  absl::Status Numbers(const char* key, std::vector<double>* out) const {
    return Read(key, "a list of numbers", [&](const Json& v) { return ToNumbers(v, out); });
  }
  absl::Status Signal(sgt::v1::EntropySignal* out) const {
    return Read("signal", "\"train\" or \"probe\"", [&](const Json& v) {
      if (v == "train") *out = sgt::v1::ENTROPY_SIGNAL_TRAIN;
      if (v == "probe") *out = sgt::v1::ENTROPY_SIGNAL_PROBE;
      return v == "train" || v == "probe";
    });
  }

 private:
  const Json& j_;
  std::string what_;
  std::string prefix_;
};

void AddScalar(int64_t step, std::string name, double value, TelemetryBatch* out) {
  sgt::v1::ScalarRow* row = out->add_scalars();
  row->set_step(step);
  row->set_name(std::move(name));
  row->set_value(value);
}

// Every numeric field but step and time; null (a non-finite value) and other types add nothing.
void Scalars(const Json& j, int64_t step, TelemetryBatch* out) {
  for (const auto& [key, value] : j.items()) {
    if (key == "step" || key == "time" || !value.is_number()) continue;
    AddScalar(step, key, value.get<double>(), out);
  }
}

// val_loss and val_ppl, named with `suffix`; a non-finite value adds no row.
absl::Status Validation(const Fields& f, int64_t step, absl::string_view suffix,
                        TelemetryBatch* out) {
  for (const char* key : {"val_loss", "val_ppl"}) {
    double v = 0;
    if (absl::Status s = f.Number(key, &v); !s.ok()) return s;
    if (std::isfinite(v)) AddScalar(step, absl::StrCat(key, suffix), v, out);
  }
  return absl::OkStatus();
}

absl::Status Entropy(const Fields& f, int64_t step, TelemetryBatch* out) {
  sgt::v1::EntropySignal signal = sgt::v1::ENTROPY_SIGNAL_UNSPECIFIED;
  if (absl::Status s = f.Signal(&signal); !s.ok()) return s;
  const Json* layers = f.Find("layers");
  if (layers == nullptr || !layers->is_array()) return f.Bad("layers", "a list");
  for (size_t i = 0; i < layers->size(); ++i) {
    const std::string name = absl::StrCat("layers[", i, "]");
    const Json& l = (*layers)[i];
    if (!l.is_object()) return f.Bad(name, "an object");
    const Fields lf = f.Nested(l, name);
    int32_t layer = 0;
    if (absl::Status s = lf.Int32("layer", &layer); !s.ok()) return s;
    const Json* passes = lf.Find("passes");
    const Json* heads = lf.Find("pass_heads");
    if (passes == nullptr || !passes->is_array()) return lf.Bad("passes", "a list");
    if (heads == nullptr || !heads->is_array()) return lf.Bad("pass_heads", "a list");
    if (heads->size() != passes->size()) {
      return f.Error(absl::StrCat(name, " has ", passes->size(), " passes but ", heads->size(),
                                  " pass_heads"));
    }
    std::vector<double> values;
    std::vector<int32_t> head;
    for (size_t p = 0; p < passes->size(); ++p) {
      if (!ToNumbers((*passes)[p], &values)) {
        return lf.Bad(absl::StrCat("passes[", p, "]"), "a list of numbers");
      }
      if (!ToInts((*heads)[p], 0, kInt32Max, &head)) {
        return lf.Bad(absl::StrCat("pass_heads[", p, "]"), "a list of head indices");
      }
      if (head.size() != values.size()) {
        return f.Error(absl::StrCat(name, ".passes[", p, "] has ", values.size(),
                                    " values but pass_heads[", p, "] ", head.size(), " heads"));
      }
      for (size_t v = 0; v < values.size(); ++v) {
        if (!std::isfinite(values[v])) continue;  // a null: nothing measured
        sgt::v1::EntropyRow* row = out->add_entropy();
        row->set_step(step);
        row->set_signal(signal);
        row->set_layer(layer);
        row->set_head(head[v]);
        row->set_loop(static_cast<int32_t>(p));
        row->set_value(static_cast<float>(values[v]));
      }
    }
  }
  return absl::OkStatus();
}

absl::Status Decision(const Fields& f, int64_t step, TelemetryBatch* out) {
  std::string action, reason;
  int32_t layer = 0, k = 0;
  bool whole_block = false;
  std::vector<int32_t> heads, candidates;
  std::vector<double> layer_entropy;
  sgt::v1::EntropySignal signal = sgt::v1::ENTROPY_SIGNAL_UNSPECIFIED;
  for (absl::Status s :
       {f.String("action", &action), f.Int32("layer", &layer), f.Int32("k", &k),
        f.Int32s("heads", &heads), f.Bool("whole_block", &whole_block),
        f.Int32s("candidates", &candidates), f.Numbers("layer_entropy", &layer_entropy),
        f.String("reason", &reason), f.Signal(&signal)}) {
    if (!s.ok()) return s;
  }
  const Json* head_entropy = f.Find("head_entropy");
  if (head_entropy == nullptr || !head_entropy->is_array()) {
    return f.Bad("head_entropy", "a list of lists of numbers");
  }
  sgt::v1::GrowthDecision* d = out->add_decisions();
  std::vector<double> values;
  for (size_t l = 0; l < head_entropy->size(); ++l) {
    if (!ToNumbers((*head_entropy)[l], &values)) {
      return f.Bad(absl::StrCat("head_entropy[", l, "]"), "a list of numbers");
    }
    d->add_head_entropy()->mutable_values()->Add(values.begin(), values.end());
  }
  d->set_step(step);
  d->set_action(action);
  d->set_layer(layer);
  d->set_k(k);
  d->mutable_heads()->Add(heads.begin(), heads.end());
  d->set_whole_block(whole_block);
  d->mutable_candidates()->Add(candidates.begin(), candidates.end());
  d->mutable_layer_entropy()->Add(layer_entropy.begin(), layer_entropy.end());
  d->set_reason(reason);
  d->set_signal(signal);
  return absl::OkStatus();
}

// The record of a checkpoint inside `root` ("" : any absolute path).
absl::Status Checkpoint(const Fields& f, int64_t step, const std::string& root,
                        TelemetryBatch* out) {
  std::string path, sha256, reason;
  int64_t bytes = 0;
  for (absl::Status s : {f.String("path", &path), f.Int("bytes", 0, kInt64Max, &bytes),
                         f.String("sha256", &sha256), f.String("reason", &reason)}) {
    if (!s.ok()) return s;
  }
  double time = 0;  // when it was written (the event's time); 0 if the line has none
  if (f.Find("time") != nullptr) {
    if (absl::Status s = f.Number("time", &time); !s.ok()) return s;
  }
  if (root.empty()) {
    if (!std::filesystem::path(path).is_absolute()) {
      return f.Error(absl::StrCat("path ", path, " is not absolute"));
    }
  } else {
    absl::StatusOr<std::string> confined = ConfinedPath(root, path);
    if (!confined.ok()) {
      return absl::Status(confined.status().code(),
                          absl::StrCat(f.what(), ": ", confined.status().message()));
    }
    path = *std::move(confined);
  }
  sgt::v1::CheckpointRecord* c = out->add_checkpoints();
  c->set_step(step);
  c->set_path(path);
  c->set_bytes(bytes);
  c->set_sha256(sha256);
  c->set_reason(reason);
  c->set_time(time);
  return absl::OkStatus();
}

// The start of a line, for errors about lines that are not events at all.
std::string Excerpt(std::string_view line) {
  constexpr size_t kMax = 80;
  return line.size() <= kMax ? std::string(line) : std::string(line.substr(0, kMax)) + "...";
}

}  // namespace

EventTranslator::EventTranslator(std::string checkpoint_root) : root_(std::move(checkpoint_root)) {}

absl::Status EventTranslator::Add(std::string_view line, TelemetryBatch* batch) {
  flush_now_ = false;
  const Json j = Json::parse(line.begin(), line.end(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    return absl::InvalidArgumentError(
        absl::StrCat("event line is not a JSON object: ", Excerpt(line)));
  }
  const auto event_field = j.find("event");
  if (event_field == j.end() || !event_field->is_string()) {
    return absl::InvalidArgumentError(
        absl::StrCat("event line without a string `event`: ", Excerpt(line)));
  }
  const std::string event = event_field->get<std::string>();
  const bool rows_event = event == "scalars" || event == "eval" || event == "extrapolation" ||
                          event == "entropy" || event == "decision" || event == "checkpoint";
  const bool known = rows_event || event == "start" || event == "end" || event == "error";

  std::optional<int64_t> step;
  const auto step_field = j.find("step");
  const bool has_step = step_field != j.end();
  if (int64_t n; has_step && ToInt(*step_field, 0, kInt64Max, &n)) step = n;
  if (!known) {  // a newer sgt-train's event: only its step counts
    if (step) step_ = std::max(step_, *step);
    return absl::OkStatus();
  }

  const Fields f(j, absl::StrCat(event, " event", step ? absl::StrCat(" at step ", *step) : ""));
  if (!step && (has_step || rows_event || event == "start")) {
    return has_step ? f.Bad("step", "a non-negative integer") : f.Error("no step");
  }
  TelemetryBatch rows;
  absl::Status status;
  std::string text;  // error's message, end's status
  if (event == "scalars") {
    Scalars(j, *step, &rows);
  } else if (event == "eval") {
    status = Validation(f, *step, "", &rows);
  } else if (event == "extrapolation") {
    int64_t multiple = 0;
    status = f.Int("multiple", 1, kInt64Max, &multiple);
    if (status.ok()) status = Validation(f, *step, absl::StrCat("@x", multiple), &rows);
  } else if (event == "entropy") {
    status = Entropy(f, *step, &rows);
  } else if (event == "decision") {
    status = Decision(f, *step, &rows);
  } else if (event == "checkpoint") {
    status = Checkpoint(f, *step, root_, &rows);
  } else if (event == "error") {
    status = f.String("message", &text);
  } else if (event == "end") {
    status = f.String("status", &text);
    if (status.ok() && text.empty()) status = f.Bad("status", "a non-empty string");
  }
  if (!status.ok()) return status;

  // The line is good: only now does anything change.
  if (event == "start") {
    started_ = true;
    start_step_ = step_ = *step;
  } else if (step) {
    step_ = std::max(step_, *step);
  }
  if (event == "error") error_ = std::move(text);
  if (event == "end") {
    end_status_ = std::move(text);
    Json summary = j;
    summary.erase("event");
    summary.erase("time");
    summary_json_ = summary.dump(-1, ' ', false, Json::error_handler_t::replace);
  }
  flush_now_ = event == "decision" || event == "checkpoint" || event == "end" || event == "error";
  rows_ +=
      rows.scalars_size() + rows.entropy_size() + rows.decisions_size() + rows.checkpoints_size();
  batch->MergeFrom(rows);
  return absl::OkStatus();
}

}  // namespace sgt::worker
