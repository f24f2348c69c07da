// sgt-train's event log (events.jsonl, docs/events.md): the one owner of its format. The event
// kinds, every field name (spelled only in event_log.cc), one plain struct per event, the one
// writer (struct -> JSON line, as sgt-train writes it) and the one parser (line -> struct, as the
// worker reads it). Also the names of the scalar rows the worker makes of scalars, eval and
// extrapolation events, and the fields of summary.json (the payload of the end event).
//
//   std::string line = events::EventLine(events::EvalEvent{step, loss, std::exp(loss)});
//   absl::StatusOr<events::ParsedEvent> e = events::ParseEventLine(line);
//   if (e.ok() && e->event) std::visit(..., *e->event);
//
// Torch-free, no protobuf: sgt-train writes through it, the worker and the benchmarks read
// through it.
#ifndef SGT_CORE_EVENT_LOG_H_
#define SGT_CORE_EVENT_LOG_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "absl/status/statusor.h"
#include "libsgt/core/config.h"
#include "libsgt/core/eval_tasks.h"
#include "libsgt/core/growth.h"

namespace sgt::events {

// --- names -------------------------------------------------------------------------------------

// Event kinds: the `event` field of a line.
extern const char kStartEvent[];
extern const char kScalarsEvent[];
extern const char kEntropyEvent[];
extern const char kEvalEvent[];
extern const char kDecisionEvent[];
extern const char kCheckpointEvent[];
extern const char kExtrapolationEvent[];
extern const char kTaskEvalEvent[];
extern const char kErrorEvent[];
extern const char kEndEvent[];

// Scalar names: the numeric fields of a scalars event as sgt-train writes them, and the names
// of the telemetry scalar rows the worker makes of scalars, eval and extrapolation events.
namespace scalar {
extern const char kLoss[];
extern const char kLr[];
extern const char kGradNorm[];
extern const char kTokens[];
extern const char kTokensPerS[];
extern const char kFlops[];
extern const char kVanillaFlops[];
extern const char kOverhead[];
extern const char kStepS[];
extern const char kValLoss[];  // eval and extrapolation
extern const char kValPpl[];   // eval and extrapolation
extern const char kAcc[];      // task_eval: accuracy (TaskScalarName), and the macro mean
extern const char kAccNorm[];  // task_eval: length-normalised accuracy, and the macro mean
}  // namespace scalar

// The row name of an extrapolation event's value: `name` (scalar::kValLoss or kValPpl) at
// `multiple` times the context, "val_loss@x2".
std::string ExtrapolationScalarName(std::string_view name, int64_t multiple);

// The row name of one task score's `metric` (scalar::kAcc or kAccNorm): "acc/arc_easy" for a
// task's total (group ""), "acc/mmlu/stem" for a group. The macro mean over the tasks' totals is
// the row named `metric` alone ("acc"). A task is a file stem and holds no '/', so the name
// parses back unambiguously (ParseTaskScalarName).
std::string TaskScalarName(std::string_view metric, std::string_view task, std::string_view group);
struct TaskScalar {
  std::string metric;  // scalar::kAcc or kAccNorm
  std::string task;    // "" for the macro mean
  std::string group;
};
// The parts of a row name TaskScalarName made, or of a macro mean ("acc"); nullopt for any other
// name (val_loss, loss@x2, acc/ without a task).
std::optional<TaskScalar> ParseTaskScalarName(std::string_view name);

// The fields of summary.json (and of the end event, which carries it).
namespace summary {
extern const char kRun[];
extern const char kVariant[];
extern const char kStatus[];
extern const char kStep[];
extern const char kSteps[];
extern const char kFinalLoss[];
extern const char kValLoss[];
extern const char kValPpl[];
extern const char kExtrapolation[];
extern const char kTrainFlops[];
extern const char kVanillaFlops[];
extern const char kOverheadVsVanilla[];
extern const char kProbeFlops[];
extern const char kEvalFlops[];
extern const char kTokens[];
extern const char kTrainSeconds[];
extern const char kTokensPerS[];
extern const char kGrowth[];
extern const char kPeakRssMb[];
extern const char kLastCheckpoint[];
extern const char kTasks[];    // task_eval scores of the final evaluation (list; absent: none)
extern const char kAcc[];      // their macro mean (TaskMacroMean), with kTasks only
extern const char kAccNorm[];
}  // namespace summary

// A checkpoint event's `reason` values.
namespace checkpoint_reason {
extern const char kBoundary[];  // checkpoint.at_boundaries
extern const char kInterval[];  // checkpoint.every
extern const char kSnapshot[];  // SIGUSR1
extern const char kPause[];     // SIGUSR2
extern const char kFinal[];     // checkpoint.final, after the last step
}  // namespace checkpoint_reason

// A task_eval event's `reason` values.
namespace task_eval_reason {
extern const char kFinal[];       // after the last step
extern const char kCheckpoint[];  // at a checkpoint (eval.at_checkpoints)
}  // namespace task_eval_reason

// summary.json's `status` values.
extern const char kStatusSucceeded[];
extern const char kStatusPaused[];

// --- events ------------------------------------------------------------------------------------
// Every struct is one kind. Fields the worker needs are required when parsing (ParseEventLine);
// the others read as their default when a line lacks them (lines of older or other writers), but
// a field that is present with the wrong type is an error.

struct StartEvent {
  std::string run;
  std::string variant;
  std::string config_json;   // the run's canonical JSON (written as an object; "" writes null)
  std::string resumed_from;  // checkpoint path; "" is written as null
  int64_t step = 0;          // the step it starts after (required)
  int64_t steps = 0;
  int64_t pid = 0;
};

// One numeric field of a scalars event: written as a JSON integer when `integer` (made from an
// int64_t; exact up to 2^53, which token counts stay far below). Give a double or an int64_t:
// a plain int literal is ambiguous between the two.
struct Scalar {
  Scalar() = default;
  Scalar(std::string n, double v) : name(std::move(n)), value(v) {}
  Scalar(std::string n, int64_t v)
      : name(std::move(n)), value(static_cast<double>(v)), integer(true) {}
  std::string name;
  double value = 0;
  bool integer = false;
};

struct ScalarsEvent {
  int64_t step = 0;  // required
  // Written in name order (the writer sorts keys); parsed in the line's order, every numeric
  // field but step and time; a null (a non-finite value) or non-numeric field is left out.
  std::vector<Scalar> values;
};

// The values sgt-train logs every train.log_interval steps, in the names above.
struct TrainingScalars {
  double loss = 0, lr = 0, grad_norm = 0;
  int64_t tokens = 0;
  double tokens_per_s = 0, flops = 0, vanilla_flops = 0, overhead = 0, step_s = 0;
};
ScalarsEvent ScalarsEventOf(int64_t step, const TrainingScalars& s);

struct EntropyLayer {
  int64_t layer = 0;  // required, an int32
  double mean = 0;
  double variance = 0;
  int64_t k = 0;
  std::vector<std::vector<double>> passes;       // required; a null value is NaN
  std::vector<std::vector<int64_t>> pass_heads;  // required, same shape as passes
};

struct EntropyEvent {
  int64_t step = 0;
  EntropySignal signal = EntropySignal::kTrain;  // required
  std::vector<EntropyLayer> layers;              // required
};

struct EvalEvent {
  int64_t step = 0;
  double val_loss = 0;  // required; null is NaN
  double val_ppl = 0;   // required; null is NaN
};

struct ExtrapolationEvent {
  int64_t step = 0;
  int64_t multiple = 0;  // required, >= 1
  int64_t context = 0;
  double val_loss = 0;  // required
  double val_ppl = 0;   // required
};

// Zero-shot multiple-choice scores (eval.tasks, docs/evaluation.md) at one step: each task's
// total (group "") and its groups. All required; in a score `group` may be absent ("").
struct TaskEvalEvent {
  int64_t step = 0;
  std::string reason;                   // task_eval_reason; any string parses
  std::vector<eval::TaskScore> scores;  // each: task non-empty, items >= 0; acc null is NaN
};
TaskEvalEvent TaskEvalEventOf(int64_t step, std::string reason,
                              std::vector<eval::TaskScore> scores);

// The macro mean over the tasks' totals (the scores with group ""), each task weighing the same
// whatever its item count; a non-finite score is left out of its mean. nullopt when no total is
// among `scores`; a mean with no finite value is NaN.
struct MacroAccuracy {
  double acc = 0;
  double acc_norm = 0;
  int64_t tasks = 0;  // the totals averaged
};
std::optional<MacroAccuracy> TaskMacroMean(const std::vector<eval::TaskScore>& scores);

// A growth decision record (GrowthDecision) with the signal it was taken on. All required.
struct DecisionEvent {
  int64_t step = 0;
  std::string action;  // GrowthActionName; any string parses
  int64_t layer = -1;  // an int32
  int64_t k = 0;       // an int32
  std::vector<int64_t> heads;
  bool whole_block = false;
  std::vector<int64_t> candidates;
  std::vector<double> layer_entropy;
  std::vector<std::vector<double>> head_entropy;
  std::string reason;
  EntropySignal signal = EntropySignal::kTrain;
};
DecisionEvent DecisionEventOf(const GrowthDecision& d, EntropySignal signal);
// A decision record's fields alone, compact JSON: a decision compared or replayed on its own.
std::string DecisionRecordJson(const GrowthDecision& d);

struct CheckpointEvent {  // all required
  int64_t step = 0;
  std::string path;
  int64_t bytes = 0;  // >= 0
  std::string sha256;
  std::string reason;
};

struct ErrorEvent {
  int64_t step = 0;     // may be absent when parsing
  std::string message;  // required
};

// The end event: summary.json's object with `event` and `time` added.
struct EndEvent {
  std::string status;        // required, non-empty; written over the summary's own
  std::string summary_json;  // the object without event and time, compact (parsed: line order)
};

// --- summary.json ------------------------------------------------------------------------------

struct ExtrapolationResult {
  int64_t multiple = 0;
  std::string skipped;  // non-empty: not evaluated, and why (only `multiple` is written)
  int64_t context = 0;
  double val_loss = 0;
  double val_ppl = 0;
  int64_t sequences = 0;
};

struct RunSummary {
  std::string run, variant, status;
  int64_t step = 0, steps = 0;
  double final_loss = 0;
  bool validated = false;  // val_loss, val_ppl and extrapolation are written (succeeded runs)
  double val_loss = 0, val_ppl = 0;
  std::vector<ExtrapolationResult> extrapolation;
  double train_flops = 0, vanilla_flops = 0, overhead_vs_vanilla = 0, probe_flops = 0,
         eval_flops = 0;
  int64_t tokens = 0;
  double train_seconds = 0, tokens_per_s = 0;
  std::string growth_json;  // GrowthStateToJson
  double peak_rss_mb = 0;
  std::string last_checkpoint;  // "" leaves the field out
  // The final task_eval scores ([] leaves out tasks, acc and acc_norm; acc and acc_norm are
  // TaskMacroMean's, written when some score is a total).
  std::vector<eval::TaskScore> tasks;
};

// summary.json's `tasks` read back (the worker, the coordinator, sgtctl): [] when absent; an
// entry that is not an object with a string task, an integer items and numeric (or null) acc
// and acc_norm is an error naming its index.
absl::StatusOr<std::vector<eval::TaskScore>> SummaryTasks(std::string_view summary_json);

// summary.json's text: keys sorted, `indent` as nlohmann's dump (-1 compact; sgt-train: 2).
std::string RunSummaryJson(const RunSummary& s, int indent = -1);
EndEvent EndEventOf(const RunSummary& s);

// --- writer and parser -------------------------------------------------------------------------

using Event = std::variant<StartEvent, ScalarsEvent, EntropyEvent, EvalEvent, ExtrapolationEvent,
                           DecisionEvent, CheckpointEvent, ErrorEvent, EndEvent, TaskEvalEvent>;

// The `event` field of `e`'s line.
const char* EventKind(const Event& e);

// One line of events.jsonl, without its newline: keys in sorted order, `time` (Unix seconds) the
// given one, or now. Non-finite numbers are written as null.
std::string EventLine(const Event& e, double time);
std::string EventLine(const Event& e);

struct ParsedEvent {
  std::string kind;             // the `event` field
  std::optional<int64_t> step;  // `step`, when it is a non-negative integer
  double time = 0;              // `time`; 0 when absent (checked to be a number for checkpoints)
  std::string what;             // for messages: "checkpoint event at step 40"
  std::optional<Event> event;   // empty for a kind this version does not know
};

// Parses one line (without its newline). kInvalidArgument when it is not a JSON object with a
// string `event`, or when a known kind's fields are missing or of the wrong type: the message
// names the event and the field ("entropy event at step 30: layers[1].passes[0] is not a list of
// numbers"). An unknown kind is not an error: only its kind and step are read.
absl::StatusOr<ParsedEvent> ParseEventLine(std::string_view line);

// Field-by-field equality (round-trip tests).
bool operator==(const StartEvent& a, const StartEvent& b);
bool operator==(const Scalar& a, const Scalar& b);
bool operator==(const ScalarsEvent& a, const ScalarsEvent& b);
bool operator==(const EntropyLayer& a, const EntropyLayer& b);
bool operator==(const EntropyEvent& a, const EntropyEvent& b);
bool operator==(const EvalEvent& a, const EvalEvent& b);
bool operator==(const ExtrapolationEvent& a, const ExtrapolationEvent& b);
bool operator==(const DecisionEvent& a, const DecisionEvent& b);
bool operator==(const CheckpointEvent& a, const CheckpointEvent& b);
bool operator==(const ErrorEvent& a, const ErrorEvent& b);
bool operator==(const EndEvent& a, const EndEvent& b);
bool operator==(const TaskEvalEvent& a, const TaskEvalEvent& b);

}  // namespace sgt::events

#endif  // SGT_CORE_EVENT_LOG_H_
