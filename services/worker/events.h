// Turns the lines of sgt-train's event log (docs/events.md) into the telemetry rows of the worker
// protocol (proto/sgt/v1/types.proto, TelemetryBatch), and keeps what the worker needs to report
// the attempt's status: whether it started, its newest step, its last error, and its end. Lines
// are parsed by libsgt/core/event_log (the format's owner, and its error messages); this maps the
// parsed events to rows. Checkpoint paths are confined with services/common/checkpoint_path.
//
//   EventTranslator t(checkpoint_root);
//   sgt::v1::TelemetryBatch batch;
//   for (each line the child writes) {
//     if (absl::Status s = t.Add(line, &batch); !s.ok()) log it;  // the line adds nothing
//     if (t.flush_now() || big or old enough) send batch;
//   }
//   if (t.ended()) report t.end_status() with t.summary_json();
//
// Mapping (every row carries the event's `step`):
//   scalars        one ScalarRow per numeric field: loss, lr, grad_norm, tokens, tokens_per_s,
//                  flops, vanilla_flops, overhead, step_s
//   eval           ScalarRows val_loss, val_ppl
//   extrapolation  ScalarRows val_loss@xM and val_ppl@xM (M = `multiple`)
//   task_eval      ScalarRows acc/<task> and acc_norm/<task> per task total, acc/<task>/<group>
//                  and acc_norm/<task>/<group> per group, and acc and acc_norm: the macro mean
//                  over the totals (events::TaskScalarName, TaskMacroMean); non-finite scores add
//                  no row, and a (step, task, group) translated before adds none again
//   entropy        one EntropyRow per value of `passes`: layer, head = pass_heads[p][i], loop = p,
//                  signal from `signal`
//   decision       one GrowthDecision (all its fields)
//   checkpoint     one CheckpointRecord (step, path, bytes, sha256, reason); a path outside the
//                  checkpoint root is refused (an error; no record)
//   start, end, error   no rows; they set started(), ended()/end_status()/summary_json(), error()
// Unknown event kinds add nothing and are not errors (newer sgt-train versions may add some).
#ifndef SGT_SERVICES_WORKER_EVENTS_H_
#define SGT_SERVICES_WORKER_EVENTS_H_

#include <cstdint>
#include <string>
#include <set>
#include <string_view>
#include <tuple>

#include "absl/status/status.h"
#include "sgt/v1/types.pb.h"

namespace sgt::worker {

class EventTranslator {
 public:
  // `checkpoint_root`: checkpoint records must lie inside it ("" accepts any absolute path).
  explicit EventTranslator(std::string checkpoint_root = "");

  // Appends the rows of one line (without its newline) to *batch. A line that is not a JSON
  // object with a string `event`, or whose fields have the wrong types, is kInvalidArgument
  // naming the event and field; *batch is then unchanged.
  absl::Status Add(std::string_view line, sgt::v1::TelemetryBatch* batch);

  // The line just added should be sent without waiting for more: a decision, a checkpoint, an
  // end or an error.
  bool flush_now() const { return flush_now_; }
  bool started() const { return started_; }
  // Step of the start event (the checkpoint step a resumed attempt starts after; 0 fresh).
  int64_t start_step() const { return start_step_; }
  // Newest step any event reported (start_step() before the first step).
  int64_t step() const { return step_; }
  // The message of the newest error event ("" if none).
  const std::string& error() const { return error_; }
  bool ended() const { return !end_status_.empty(); }
  // "succeeded" or "paused" once the end event arrived.
  const std::string& end_status() const { return end_status_; }
  // The end event without `event` and `time`: summary.json, as compact JSON.
  const std::string& summary_json() const { return summary_json_; }
  // Rows added so far, over all batches.
  int64_t rows() const { return rows_; }

 private:
  std::string root_;
  bool flush_now_ = false;
  bool started_ = false;
  int64_t start_step_ = 0;
  int64_t step_ = 0;
  std::string error_;
  std::string end_status_;
  std::string summary_json_;
  int64_t rows_ = 0;
  std::set<std::tuple<int64_t, std::string, std::string>> task_eval_seen_;  // (step, task, group)
};

}  // namespace sgt::worker

#endif  // SGT_SERVICES_WORKER_EVENTS_H_
