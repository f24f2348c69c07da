// The event log's format (docs/events.md): every field name, the writer and the parser. The
// writer builds an nlohmann::json (sorted keys, as sgt-train has always written); the parser reads
// an ordered_json, so that a scalars line's rows follow the line's order.
#include "libsgt/core/event_log.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <initializer_list>
#include <iterator>
#include <limits>
#include <tuple>
#include <utility>
#include <variant>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "nlohmann/json.hpp"

namespace sgt::events {

// --- names -------------------------------------------------------------------------------------

const char kStartEvent[] = "start";
const char kScalarsEvent[] = "scalars";
const char kEntropyEvent[] = "entropy";
const char kEvalEvent[] = "eval";
const char kDecisionEvent[] = "decision";
const char kCheckpointEvent[] = "checkpoint";
const char kExtrapolationEvent[] = "extrapolation";
const char kTaskEvalEvent[] = "task_eval";
const char kErrorEvent[] = "error";
const char kEndEvent[] = "end";

namespace scalar {
const char kLoss[] = "loss";
const char kLr[] = "lr";
const char kGradNorm[] = "grad_norm";
const char kTokens[] = "tokens";
const char kTokensPerS[] = "tokens_per_s";
const char kFlops[] = "flops";
const char kVanillaFlops[] = "vanilla_flops";
const char kOverhead[] = "overhead";
const char kStepS[] = "step_s";
const char kValLoss[] = "val_loss";
const char kValPpl[] = "val_ppl";
const char kAcc[] = "acc";
const char kAccNorm[] = "acc_norm";
}  // namespace scalar

namespace summary {
const char kRun[] = "run";
const char kVariant[] = "variant";
const char kStatus[] = "status";
const char kStep[] = "step";
const char kSteps[] = "steps";
const char kFinalLoss[] = "final_loss";
const char kValLoss[] = "val_loss";
const char kValPpl[] = "val_ppl";
const char kExtrapolation[] = "extrapolation";
const char kTrainFlops[] = "train_flops";
const char kVanillaFlops[] = "vanilla_flops";
const char kOverheadVsVanilla[] = "overhead_vs_vanilla";
const char kProbeFlops[] = "probe_flops";
const char kEvalFlops[] = "eval_flops";
const char kTokens[] = "tokens";
const char kTrainSeconds[] = "train_seconds";
const char kTokensPerS[] = "tokens_per_s";
const char kGrowth[] = "growth";
const char kPeakRssMb[] = "peak_rss_mb";
const char kLastCheckpoint[] = "last_checkpoint";
const char kTasks[] = "tasks";
const char kAcc[] = "acc";
const char kAccNorm[] = "acc_norm";
}  // namespace summary

namespace task_eval_reason {
const char kFinal[] = "final";
const char kCheckpoint[] = "checkpoint";
}  // namespace task_eval_reason

namespace checkpoint_reason {
const char kBoundary[] = "boundary";
const char kInterval[] = "interval";
const char kSnapshot[] = "snapshot";
const char kPause[] = "pause";
const char kFinal[] = "final";
}  // namespace checkpoint_reason

const char kStatusSucceeded[] = "succeeded";
const char kStatusPaused[] = "paused";

namespace {

// Fields of the events themselves (summary fields and scalar names are above).
constexpr char kEvent[] = "event";
constexpr char kTime[] = "time";
constexpr char kStep[] = "step";
// start
constexpr char kRun[] = "run";
constexpr char kVariant[] = "variant";
constexpr char kConfig[] = "config";
constexpr char kResumedFrom[] = "resumed_from";
constexpr char kSteps[] = "steps";
constexpr char kPid[] = "pid";
// entropy (and decision's signal)
constexpr char kSignal[] = "signal";
constexpr char kLayers[] = "layers";
constexpr char kLayer[] = "layer";
constexpr char kMean[] = "mean";
constexpr char kVariance[] = "variance";
constexpr char kK[] = "k";
constexpr char kPasses[] = "passes";
constexpr char kPassHeads[] = "pass_heads";
// extrapolation (and summary.json's extrapolation entries)
constexpr char kMultiple[] = "multiple";
constexpr char kContext[] = "context";
constexpr char kSequences[] = "sequences";
constexpr char kSkipped[] = "skipped";
// decision
constexpr char kAction[] = "action";
constexpr char kHeads[] = "heads";
constexpr char kWholeBlock[] = "whole_block";
constexpr char kCandidates[] = "candidates";
constexpr char kLayerEntropy[] = "layer_entropy";
constexpr char kHeadEntropy[] = "head_entropy";
constexpr char kReason[] = "reason";
// checkpoint
constexpr char kPath[] = "path";
constexpr char kBytes[] = "bytes";
constexpr char kSha256[] = "sha256";
// error
constexpr char kMessage[] = "message";
// task_eval (and summary.json's tasks entries)
constexpr char kScores[] = "scores";
constexpr char kTask[] = "task";
constexpr char kGroup[] = "group";
constexpr char kItems[] = "items";

using Json = nlohmann::json;
using Ordered = nlohmann::ordered_json;

constexpr int64_t kInt64Max = std::numeric_limits<int64_t>::max();
constexpr int64_t kInt32Max = std::numeric_limits<int32_t>::max();
constexpr int64_t kInt32Min = std::numeric_limits<int32_t>::min();
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

double WallTime() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// --- writer ------------------------------------------------------------------------------------

Json DecisionRecord(const DecisionEvent& d) {
  return Json{{kStep, d.step},
              {kAction, d.action},
              {kLayer, d.layer},
              {kK, d.k},
              {kHeads, d.heads},
              {kWholeBlock, d.whole_block},
              {kCandidates, d.candidates},
              {kLayerEntropy, d.layer_entropy},
              {kHeadEntropy, d.head_entropy},
              {kReason, d.reason}};
}

Json TaskScoresJson(const std::vector<eval::TaskScore>& scores) {
  Json a = Json::array();
  for (const eval::TaskScore& t : scores) {
    Json j{{kTask, t.task},
           {kItems, t.items},
           {scalar::kAcc, t.acc},
           {scalar::kAccNorm, t.acc_norm}};
    if (!t.group.empty()) j[kGroup] = t.group;
    a.push_back(std::move(j));
  }
  return a;
}

Json SummaryObject(const RunSummary& s) {
  Json j;
  if (s.validated) {
    Json extra = Json::array();
    for (const ExtrapolationResult& e : s.extrapolation) {
      if (!e.skipped.empty()) {
        extra.push_back({{kMultiple, e.multiple}, {kSkipped, e.skipped}});
        continue;
      }
      extra.push_back({{kMultiple, e.multiple},
                       {kContext, e.context},
                       {summary::kValLoss, e.val_loss},
                       {summary::kValPpl, e.val_ppl},
                       {kSequences, e.sequences}});
    }
    j[summary::kExtrapolation] = extra;
    j[summary::kValLoss] = s.val_loss;
    j[summary::kValPpl] = s.val_ppl;
  }
  j[summary::kRun] = s.run;
  j[summary::kVariant] = s.variant;
  j[summary::kStatus] = s.status;
  j[summary::kStep] = s.step;
  j[summary::kSteps] = s.steps;
  j[summary::kFinalLoss] = s.final_loss;
  j[summary::kTrainFlops] = s.train_flops;
  j[summary::kVanillaFlops] = s.vanilla_flops;
  j[summary::kOverheadVsVanilla] = s.overhead_vs_vanilla;
  j[summary::kProbeFlops] = s.probe_flops;
  j[summary::kEvalFlops] = s.eval_flops;
  j[summary::kTokens] = s.tokens;
  j[summary::kTrainSeconds] = s.train_seconds;
  j[summary::kTokensPerS] = s.tokens_per_s;
  j[summary::kGrowth] = Json::parse(s.growth_json, nullptr, /*allow_exceptions=*/false);
  if (j[summary::kGrowth].is_discarded()) j[summary::kGrowth] = nullptr;
  j[summary::kPeakRssMb] = s.peak_rss_mb;
  if (!s.last_checkpoint.empty()) j[summary::kLastCheckpoint] = s.last_checkpoint;
  if (!s.tasks.empty()) {
    j[summary::kTasks] = TaskScoresJson(s.tasks);
    if (const std::optional<MacroAccuracy> m = TaskMacroMean(s.tasks)) {
      j[summary::kAcc] = m->acc;
      j[summary::kAccNorm] = m->acc_norm;
    }
  }
  return j;
}

// The JSON object of one event, without `time`.
struct ToJson {
  Json operator()(const StartEvent& e) const {
    Json config = nullptr;
    if (!e.config_json.empty()) {
      config = Json::parse(e.config_json, nullptr, /*allow_exceptions=*/false);
      if (config.is_discarded()) config = nullptr;
    }
    return {{kEvent, kStartEvent},
            {kRun, e.run},
            {kVariant, e.variant},
            {kConfig, config},
            {kResumedFrom, e.resumed_from.empty() ? Json(nullptr) : Json(e.resumed_from)},
            {kStep, e.step},
            {kSteps, e.steps},
            {kPid, e.pid}};
  }
  Json operator()(const ScalarsEvent& e) const {
    Json j{{kEvent, kScalarsEvent}, {kStep, e.step}};
    for (const Scalar& s : e.values) {
      j[s.name] = s.integer ? Json(static_cast<int64_t>(s.value)) : Json(s.value);
    }
    return j;
  }
  Json operator()(const EntropyEvent& e) const {
    Json layers = Json::array();
    for (const EntropyLayer& l : e.layers) {
      layers.push_back({{kLayer, l.layer},
                        {kMean, l.mean},
                        {kVariance, l.variance},
                        {kK, l.k},
                        {kPasses, l.passes},
                        {kPassHeads, l.pass_heads}});
    }
    return {{kEvent, kEntropyEvent},
            {kStep, e.step},
            {kSignal, EntropySignalName(e.signal)},
            {kLayers, layers}};
  }
  Json operator()(const EvalEvent& e) const {
    return {{kEvent, kEvalEvent},
            {kStep, e.step},
            {scalar::kValLoss, e.val_loss},
            {scalar::kValPpl, e.val_ppl}};
  }
  Json operator()(const ExtrapolationEvent& e) const {
    return {{kEvent, kExtrapolationEvent},  {kStep, e.step},
            {kMultiple, e.multiple},        {kContext, e.context},
            {scalar::kValLoss, e.val_loss}, {scalar::kValPpl, e.val_ppl}};
  }
  Json operator()(const DecisionEvent& e) const {
    Json j = DecisionRecord(e);
    j[kEvent] = kDecisionEvent;
    j[kSignal] = EntropySignalName(e.signal);
    return j;
  }
  Json operator()(const CheckpointEvent& e) const {
    return {{kEvent, kCheckpointEvent}, {kStep, e.step},     {kPath, e.path},
            {kBytes, e.bytes},          {kSha256, e.sha256}, {kReason, e.reason}};
  }
  Json operator()(const ErrorEvent& e) const {
    return {{kEvent, kErrorEvent}, {kStep, e.step}, {kMessage, e.message}};
  }
  Json operator()(const TaskEvalEvent& e) const {
    return {{kEvent, kTaskEvalEvent},
            {kStep, e.step},
            {kReason, e.reason},
            {kScores, TaskScoresJson(e.scores)}};
  }
  Json operator()(const EndEvent& e) const {
    Json j = Json::parse(e.summary_json, nullptr, /*allow_exceptions=*/false);
    if (!j.is_object()) j = Json::object();
    j[summary::kStatus] = e.status;
    j[kEvent] = kEndEvent;
    return j;
  }
};

// --- parser ------------------------------------------------------------------------------------

// An integer in [lo, hi].
bool ToInt(const Ordered& v, int64_t lo, int64_t hi, int64_t* out) {
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
bool ToNumber(const Ordered& v, double* out) {
  if (v.is_null()) {
    *out = kNaN;
    return true;
  }
  if (!v.is_number()) return false;
  *out = v.get<double>();
  return true;
}

bool ToInts(const Ordered& v, int64_t lo, int64_t hi, std::vector<int64_t>* out) {
  if (!v.is_array()) return false;
  out->clear();
  for (const Ordered& e : v) {
    int64_t i;
    if (!ToInt(e, lo, hi, &i)) return false;
    out->push_back(i);
  }
  return true;
}

bool ToNumbers(const Ordered& v, std::vector<double>* out) {
  if (!v.is_array()) return false;
  out->clear();
  for (const Ordered& e : v) {
    double d;
    if (!ToNumber(e, &d)) return false;
    out->push_back(d);
  }
  return true;
}

bool ToSignal(const Ordered& v, EntropySignal* out) {
  for (EntropySignal s : {EntropySignal::kTrain, EntropySignal::kProbe}) {
    if (v == EntropySignalName(s)) {
      *out = s;
      return true;
    }
  }
  return false;
}

// The fields of one event (or of an object inside it), read with errors that name the event
// ("entropy event at step 30") and the field ("layers[1].passes[0]").
class Fields {
 public:
  Fields(const Ordered& j, std::string what, std::string prefix = "")
      : j_(j), what_(std::move(what)), prefix_(std::move(prefix)) {}

  Fields Nested(const Ordered& j, absl::string_view name) const {
    return Fields(j, what_, absl::StrCat(prefix_, name, "."));
  }
  absl::Status Error(absl::string_view message) const {
    return absl::InvalidArgumentError(absl::StrCat(what_, ": ", message));
  }
  absl::Status Bad(absl::string_view field, absl::string_view expected) const {
    return Error(absl::StrCat(prefix_, field, " is not ", expected));
  }
  const Ordered* Find(const char* key) const {
    const auto it = j_.find(key);
    return it == j_.end() ? nullptr : &*it;
  }

  // Reads `key` with `convert`, which returns false when the value is not `expected`. A missing
  // key is an error unless `optional` (then nothing is read).
  template <typename Convert>
  absl::Status Read(const char* key, absl::string_view expected, Convert convert,
                    bool optional = false) const {
    const Ordered* v = Find(key);
    if (v == nullptr) {
      return optional ? absl::OkStatus() : Error(absl::StrCat("no ", prefix_, key));
    }
    if (!convert(*v)) return Bad(key, expected);
    return absl::OkStatus();
  }
  absl::Status Int(const char* key, int64_t lo, int64_t hi, int64_t* out,
                   bool optional = false) const {
    return Read(
        key, "an integer in range", [&](const Ordered& v) { return ToInt(v, lo, hi, out); },
        optional);
  }
  absl::Status Int32(const char* key, int64_t* out) const {
    return Int(key, kInt32Min, kInt32Max, out);
  }
  absl::Status Number(const char* key, double* out, bool optional = false) const {
    return Read(
        key, "a number", [&](const Ordered& v) { return ToNumber(v, out); }, optional);
  }
  absl::Status String(const char* key, std::string* out, bool optional = false) const {
    return Read(
        key, "a string",
        [&](const Ordered& v) {
          if (v.is_string()) *out = v.get<std::string>();
          return v.is_string();
        },
        optional);
  }
  absl::Status Bool(const char* key, bool* out) const {
    return Read(key, "a boolean", [&](const Ordered& v) {
      if (v.is_boolean()) *out = v.get<bool>();
      return v.is_boolean();
    });
  }
  absl::Status Int32s(const char* key, std::vector<int64_t>* out) const {
    return Read(key, "a list of integers",
                [&](const Ordered& v) { return ToInts(v, kInt32Min, kInt32Max, out); });
  }
  absl::Status Numbers(const char* key, std::vector<double>* out) const {
    return Read(key, "a list of numbers", [&](const Ordered& v) { return ToNumbers(v, out); });
  }
  absl::Status Signal(EntropySignal* out) const {
    return Read(kSignal, "\"train\" or \"probe\"",
                [&](const Ordered& v) { return ToSignal(v, out); });
  }

 private:
  const Ordered& j_;
  std::string what_;
  std::string prefix_;
};

// The first failure of several reads, all made in order.
absl::Status First(std::initializer_list<absl::Status> all) {
  for (const absl::Status& s : all) {
    if (!s.ok()) return s;
  }
  return absl::OkStatus();
}

absl::Status ReadStart(const Fields& f, StartEvent* e) {
  if (absl::Status s = First({f.String(kRun, &e->run, true), f.String(kVariant, &e->variant, true),
                              f.Int(kSteps, 0, kInt64Max, &e->steps, true),
                              f.Int(kPid, 0, kInt64Max, &e->pid, true)});
      !s.ok()) {
    return s;
  }
  if (const Ordered* c = f.Find(kConfig); c != nullptr && !c->is_null()) {
    if (!c->is_object()) return f.Bad(kConfig, "an object");
    e->config_json = c->dump(-1, ' ', false, Ordered::error_handler_t::replace);
  }
  if (const Ordered* r = f.Find(kResumedFrom); r != nullptr && !r->is_null()) {
    if (!r->is_string()) return f.Bad(kResumedFrom, "a string or null");
    e->resumed_from = r->get<std::string>();
  }
  return absl::OkStatus();
}

// Every numeric field but step and time, in the line's order. A Scalar holds its value as a
// double, so only integers a double holds exactly (|i| <= 2^53) are read as integers; a larger
// one is read as the number it is, and the writer writes it back as such (an integer scalar of
// 2^63 could not be converted back to int64).
void ReadScalars(const Ordered& j, ScalarsEvent* e) {
  constexpr int64_t kExactInDouble = int64_t{1} << 53;
  for (const auto& [key, value] : j.items()) {
    if (key == kStep || key == kTime || !value.is_number()) continue;
    int64_t i = 0;
    if (ToInt(value, -kExactInDouble, kExactInDouble, &i)) {
      e->values.emplace_back(key, i);
    } else {
      e->values.emplace_back(key, value.get<double>());
    }
  }
}

absl::Status ReadEntropy(const Fields& f, EntropyEvent* e) {
  if (absl::Status s = f.Signal(&e->signal); !s.ok()) return s;
  const Ordered* layers = f.Find(kLayers);
  if (layers == nullptr || !layers->is_array()) return f.Bad(kLayers, "a list");
  for (size_t i = 0; i < layers->size(); ++i) {
    const std::string name = absl::StrCat(kLayers, "[", i, "]");
    const Ordered& l = (*layers)[i];
    if (!l.is_object()) return f.Bad(name, "an object");
    const Fields lf = f.Nested(l, name);
    EntropyLayer layer;
    if (absl::Status s = lf.Int32(kLayer, &layer.layer); !s.ok()) return s;
    const Ordered* passes = lf.Find(kPasses);
    const Ordered* heads = lf.Find(kPassHeads);
    if (passes == nullptr || !passes->is_array()) return lf.Bad(kPasses, "a list");
    if (heads == nullptr || !heads->is_array()) return lf.Bad(kPassHeads, "a list");
    if (heads->size() != passes->size()) {
      return f.Error(absl::StrCat(name, " has ", passes->size(), " ", kPasses, " but ",
                                  heads->size(), " ", kPassHeads));
    }
    for (size_t p = 0; p < passes->size(); ++p) {
      std::vector<double> values;
      std::vector<int64_t> head;
      if (!ToNumbers((*passes)[p], &values)) {
        return lf.Bad(absl::StrCat(kPasses, "[", p, "]"), "a list of numbers");
      }
      if (!ToInts((*heads)[p], 0, kInt32Max, &head)) {
        return lf.Bad(absl::StrCat(kPassHeads, "[", p, "]"), "a list of head indices");
      }
      if (head.size() != values.size()) {
        return f.Error(absl::StrCat(name, ".", kPasses, "[", p, "] has ", values.size(),
                                    " values but ", kPassHeads, "[", p, "] ", head.size(),
                                    " heads"));
      }
      layer.passes.push_back(std::move(values));
      layer.pass_heads.push_back(std::move(head));
    }
    if (absl::Status s =
            First({lf.Number(kMean, &layer.mean, true), lf.Number(kVariance, &layer.variance, true),
                   lf.Int(kK, 0, kInt64Max, &layer.k, true)});
        !s.ok()) {
      return s;
    }
    e->layers.push_back(std::move(layer));
  }
  return absl::OkStatus();
}

absl::Status ReadDecision(const Fields& f, DecisionEvent* d) {
  if (absl::Status s =
          First({f.String(kAction, &d->action), f.Int32(kLayer, &d->layer), f.Int32(kK, &d->k),
                 f.Int32s(kHeads, &d->heads), f.Bool(kWholeBlock, &d->whole_block),
                 f.Int32s(kCandidates, &d->candidates), f.Numbers(kLayerEntropy, &d->layer_entropy),
                 f.String(kReason, &d->reason), f.Signal(&d->signal)});
      !s.ok()) {
    return s;
  }
  const Ordered* head_entropy = f.Find(kHeadEntropy);
  if (head_entropy == nullptr || !head_entropy->is_array()) {
    return f.Bad(kHeadEntropy, "a list of lists of numbers");
  }
  for (size_t l = 0; l < head_entropy->size(); ++l) {
    std::vector<double> values;
    if (!ToNumbers((*head_entropy)[l], &values)) {
      return f.Bad(absl::StrCat(kHeadEntropy, "[", l, "]"), "a list of numbers");
    }
    d->head_entropy.push_back(std::move(values));
  }
  return absl::OkStatus();
}

// A list of task scores (a task_eval event's `scores`, summary.json's `tasks`), named `key` in
// errors: "scores[2].acc is not a number".
absl::Status ReadTaskScores(const Fields& f, const char* key, std::vector<eval::TaskScore>* out) {
  const Ordered* list = f.Find(key);
  if (list == nullptr) return f.Error(absl::StrCat("no ", key));
  if (!list->is_array()) return f.Bad(key, "a list of task scores");
  for (size_t i = 0; i < list->size(); ++i) {
    const std::string name = absl::StrCat(key, "[", i, "]");
    const Ordered& o = (*list)[i];
    if (!o.is_object()) return f.Bad(name, "an object (task, group, items, acc, acc_norm)");
    const Fields sf = f.Nested(o, name);
    eval::TaskScore t;
    if (absl::Status s = First({sf.String(kTask, &t.task), sf.String(kGroup, &t.group, true),
                                sf.Int(kItems, 0, kInt64Max, &t.items),
                                sf.Number(scalar::kAcc, &t.acc),
                                sf.Number(scalar::kAccNorm, &t.acc_norm)});
        !s.ok()) {
      return s;
    }
    if (t.task.empty() || t.task.find('/') != std::string::npos) {
      return sf.Bad(kTask, "a non-empty task name without '/' (a task file's stem)");
    }
    out->push_back(std::move(t));
  }
  return absl::OkStatus();
}

// The start of a line, for errors about lines that are not events at all.
std::string Excerpt(std::string_view line) {
  constexpr size_t kMax = 80;
  return line.size() <= kMax ? std::string(line) : std::string(line.substr(0, kMax)) + "...";
}

}  // namespace

std::string ExtrapolationScalarName(std::string_view name, int64_t multiple) {
  return absl::StrCat(absl::string_view(name.data(), name.size()), "@x", multiple);
}

std::string TaskScalarName(std::string_view metric, std::string_view task, std::string_view group) {
  const auto view = [](std::string_view v) { return absl::string_view(v.data(), v.size()); };
  if (task.empty()) return std::string(metric);
  if (group.empty()) return absl::StrCat(view(metric), "/", view(task));
  return absl::StrCat(view(metric), "/", view(task), "/", view(group));
}

std::optional<TaskScalar> ParseTaskScalarName(std::string_view name) {
  for (const char* metric : {scalar::kAcc, scalar::kAccNorm}) {
    const std::string_view m(metric);
    if (name == m) return TaskScalar{metric, "", ""};
    if (name.size() <= m.size() + 1 || name.substr(0, m.size()) != m || name[m.size()] != '/') {
      continue;
    }
    const std::string_view rest = name.substr(m.size() + 1);
    const size_t slash = rest.find('/');
    const std::string_view task = rest.substr(0, slash);
    if (task.empty()) return std::nullopt;
    if (slash == std::string_view::npos) return TaskScalar{metric, std::string(task), ""};
    const std::string_view group = rest.substr(slash + 1);
    if (group.empty()) return std::nullopt;
    return TaskScalar{metric, std::string(task), std::string(group)};
  }
  return std::nullopt;
}

TaskEvalEvent TaskEvalEventOf(int64_t step, std::string reason,
                              std::vector<eval::TaskScore> scores) {
  return TaskEvalEvent{step, std::move(reason), std::move(scores)};
}

std::optional<MacroAccuracy> TaskMacroMean(const std::vector<eval::TaskScore>& scores) {
  MacroAccuracy m;
  double acc_sum = 0, norm_sum = 0;
  int64_t acc_n = 0, norm_n = 0;
  for (const eval::TaskScore& t : scores) {
    if (!t.group.empty()) continue;
    ++m.tasks;
    if (std::isfinite(t.acc)) acc_sum += t.acc, ++acc_n;
    if (std::isfinite(t.acc_norm)) norm_sum += t.acc_norm, ++norm_n;
  }
  if (m.tasks == 0) return std::nullopt;
  m.acc = acc_n > 0 ? acc_sum / static_cast<double>(acc_n) : kNaN;
  m.acc_norm = norm_n > 0 ? norm_sum / static_cast<double>(norm_n) : kNaN;
  return m;
}

absl::StatusOr<std::vector<eval::TaskScore>> SummaryTasks(std::string_view summary_json) {
  const Ordered j = Ordered::parse(summary_json.begin(), summary_json.end(), nullptr,
                                   /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    return absl::InvalidArgumentError(
        absl::StrCat("summary.json is not a JSON object: ", Excerpt(summary_json)));
  }
  std::vector<eval::TaskScore> out;
  if (!j.contains(summary::kTasks)) return out;
  const Fields f(j, "summary.json");
  if (absl::Status s = ReadTaskScores(f, summary::kTasks, &out); !s.ok()) return s;
  return out;
}

ScalarsEvent ScalarsEventOf(int64_t step, const TrainingScalars& s) {
  return ScalarsEvent{step,
                      {{scalar::kLoss, s.loss},
                       {scalar::kLr, s.lr},
                       {scalar::kGradNorm, s.grad_norm},
                       {scalar::kTokens, s.tokens},
                       {scalar::kTokensPerS, s.tokens_per_s},
                       {scalar::kFlops, s.flops},
                       {scalar::kVanillaFlops, s.vanilla_flops},
                       {scalar::kOverhead, s.overhead},
                       {scalar::kStepS, s.step_s}}};
}

DecisionEvent DecisionEventOf(const GrowthDecision& d, EntropySignal signal) {
  DecisionEvent e;
  e.step = d.step;
  e.action = GrowthActionName(d.action);
  e.layer = d.layer;
  e.k = d.k;
  e.heads = d.heads;
  e.whole_block = d.whole_block;
  e.candidates = d.candidates;
  e.layer_entropy = d.layer_entropy;
  e.head_entropy = d.head_entropy;
  e.reason = d.reason;
  e.signal = signal;
  return e;
}

std::string DecisionRecordJson(const GrowthDecision& d) {
  return DecisionRecord(DecisionEventOf(d, EntropySignal::kTrain)).dump();
}

std::string RunSummaryJson(const RunSummary& s, int indent) {
  return SummaryObject(s).dump(indent);
}

EndEvent EndEventOf(const RunSummary& s) { return EndEvent{s.status, RunSummaryJson(s)}; }

const char* EventKind(const Event& e) {
  static constexpr const char* kKinds[] = {kStartEvent,      kScalarsEvent,       kEntropyEvent,
                                           kEvalEvent,       kExtrapolationEvent, kDecisionEvent,
                                           kCheckpointEvent, kErrorEvent,         kEndEvent,
                                           kTaskEvalEvent};
  static_assert(std::size(kKinds) == std::variant_size_v<Event>);
  return kKinds[e.index()];
}

std::string EventLine(const Event& e, double time) {
  Json j = std::visit(ToJson{}, e);
  j[kTime] = time;
  return j.dump();
}

std::string EventLine(const Event& e) { return EventLine(e, WallTime()); }

absl::StatusOr<ParsedEvent> ParseEventLine(std::string_view line) {
  const Ordered j = Ordered::parse(line.begin(), line.end(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    return absl::InvalidArgumentError(
        absl::StrCat("event line is not a JSON object: ", Excerpt(line)));
  }
  const auto event_field = j.find(kEvent);
  if (event_field == j.end() || !event_field->is_string()) {
    return absl::InvalidArgumentError(
        absl::StrCat("event line without a string `event`: ", Excerpt(line)));
  }
  ParsedEvent out;
  out.kind = event_field->get<std::string>();
  const std::string& kind = out.kind;
  const bool rows_event = kind == kScalarsEvent || kind == kEvalEvent ||
                          kind == kExtrapolationEvent || kind == kEntropyEvent ||
                          kind == kDecisionEvent || kind == kCheckpointEvent ||
                          kind == kTaskEvalEvent;
  const bool known = rows_event || kind == kStartEvent || kind == kEndEvent || kind == kErrorEvent;

  const auto step_field = j.find(kStep);
  const bool has_step = step_field != j.end();
  if (int64_t n; has_step && ToInt(*step_field, 0, kInt64Max, &n)) out.step = n;
  out.what = absl::StrCat(kind, " event", out.step ? absl::StrCat(" at step ", *out.step) : "");
  const Fields f(j, out.what);
  // A time that is not a number reads as 0; only a checkpoint's (when it was written, which
  // the worker records) must be one, checked after the checkpoint's own fields below.
  if (const auto time_field = j.find(kTime);
      time_field != j.end() && !ToNumber(*time_field, &out.time)) {
    out.time = 0;
  }
  if (!known) return out;  // a newer sgt-train's event: only its kind and step are read

  if (!out.step && (has_step || rows_event || kind == kStartEvent)) {
    return has_step ? f.Bad(kStep, "a non-negative integer") : f.Error("no step");
  }
  const int64_t step = out.step.value_or(0);
  absl::Status status;
  if (kind == kStartEvent) {
    StartEvent e;
    e.step = step;
    status = ReadStart(f, &e);
    out.event = std::move(e);
  } else if (kind == kScalarsEvent) {
    ScalarsEvent e;
    e.step = step;
    ReadScalars(j, &e);
    out.event = std::move(e);
  } else if (kind == kEvalEvent) {
    EvalEvent e;
    e.step = step;
    status =
        First({f.Number(scalar::kValLoss, &e.val_loss), f.Number(scalar::kValPpl, &e.val_ppl)});
    out.event = e;
  } else if (kind == kExtrapolationEvent) {
    ExtrapolationEvent e;
    e.step = step;
    status = f.Int(kMultiple, 1, kInt64Max, &e.multiple);
    if (status.ok()) {
      status =
          First({f.Number(scalar::kValLoss, &e.val_loss), f.Number(scalar::kValPpl, &e.val_ppl),
                 f.Int(kContext, 0, kInt64Max, &e.context, /*optional=*/true)});
    }
    out.event = e;
  } else if (kind == kEntropyEvent) {
    EntropyEvent e;
    e.step = step;
    status = ReadEntropy(f, &e);
    out.event = std::move(e);
  } else if (kind == kDecisionEvent) {
    DecisionEvent e;
    e.step = step;
    status = ReadDecision(f, &e);
    out.event = std::move(e);
  } else if (kind == kCheckpointEvent) {
    CheckpointEvent e;
    e.step = step;
    status = First({f.String(kPath, &e.path), f.Int(kBytes, 0, kInt64Max, &e.bytes),
                    f.String(kSha256, &e.sha256), f.String(kReason, &e.reason)});
    if (status.ok()) status = f.Number(kTime, &out.time, /*optional=*/true);
    out.event = std::move(e);
  } else if (kind == kTaskEvalEvent) {
    TaskEvalEvent e;
    e.step = step;
    status = f.String(kReason, &e.reason);
    if (status.ok()) status = ReadTaskScores(f, kScores, &e.scores);
    out.event = std::move(e);
  } else if (kind == kErrorEvent) {
    ErrorEvent e;
    e.step = step;
    status = f.String(kMessage, &e.message);
    out.event = std::move(e);
  } else if (kind == kEndEvent) {
    EndEvent e;
    status = f.String(summary::kStatus, &e.status);
    if (status.ok() && e.status.empty()) status = f.Bad(summary::kStatus, "a non-empty string");
    Ordered payload = j;
    payload.erase(kEvent);
    payload.erase(kTime);
    e.summary_json = payload.dump(-1, ' ', false, Ordered::error_handler_t::replace);
    out.event = std::move(e);
  }
  if (!status.ok()) return status;
  return out;
}

// --- equality ----------------------------------------------------------------------------------

bool operator==(const StartEvent& a, const StartEvent& b) {
  return std::tie(a.run, a.variant, a.config_json, a.resumed_from, a.step, a.steps, a.pid) ==
         std::tie(b.run, b.variant, b.config_json, b.resumed_from, b.step, b.steps, b.pid);
}
bool operator==(const Scalar& a, const Scalar& b) {
  return std::tie(a.name, a.value, a.integer) == std::tie(b.name, b.value, b.integer);
}
bool operator==(const ScalarsEvent& a, const ScalarsEvent& b) {
  return a.step == b.step && a.values == b.values;
}
bool operator==(const EntropyLayer& a, const EntropyLayer& b) {
  return std::tie(a.layer, a.mean, a.variance, a.k, a.passes, a.pass_heads) ==
         std::tie(b.layer, b.mean, b.variance, b.k, b.passes, b.pass_heads);
}
bool operator==(const EntropyEvent& a, const EntropyEvent& b) {
  return std::tie(a.step, a.signal, a.layers) == std::tie(b.step, b.signal, b.layers);
}
bool operator==(const EvalEvent& a, const EvalEvent& b) {
  return std::tie(a.step, a.val_loss, a.val_ppl) == std::tie(b.step, b.val_loss, b.val_ppl);
}
bool operator==(const ExtrapolationEvent& a, const ExtrapolationEvent& b) {
  return std::tie(a.step, a.multiple, a.context, a.val_loss, a.val_ppl) ==
         std::tie(b.step, b.multiple, b.context, b.val_loss, b.val_ppl);
}
bool operator==(const DecisionEvent& a, const DecisionEvent& b) {
  return std::tie(a.step, a.action, a.layer, a.k, a.heads, a.whole_block, a.candidates,
                  a.layer_entropy, a.head_entropy, a.reason, a.signal) ==
         std::tie(b.step, b.action, b.layer, b.k, b.heads, b.whole_block, b.candidates,
                  b.layer_entropy, b.head_entropy, b.reason, b.signal);
}
bool operator==(const CheckpointEvent& a, const CheckpointEvent& b) {
  return std::tie(a.step, a.path, a.bytes, a.sha256, a.reason) ==
         std::tie(b.step, b.path, b.bytes, b.sha256, b.reason);
}
bool operator==(const ErrorEvent& a, const ErrorEvent& b) {
  return std::tie(a.step, a.message) == std::tie(b.step, b.message);
}
bool operator==(const EndEvent& a, const EndEvent& b) {
  return std::tie(a.status, a.summary_json) == std::tie(b.status, b.summary_json);
}
bool operator==(const TaskEvalEvent& a, const TaskEvalEvent& b) {
  const auto same = [](const eval::TaskScore& x, const eval::TaskScore& y) {
    return std::tie(x.task, x.group, x.items, x.acc, x.acc_norm) ==
           std::tie(y.task, y.group, y.items, y.acc, y.acc_norm);
  };
  return a.step == b.step && a.reason == b.reason &&
         std::equal(a.scores.begin(), a.scores.end(), b.scores.begin(), b.scores.end(), same);
}

}  // namespace sgt::events
