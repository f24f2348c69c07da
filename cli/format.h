// Text output of sgtctl: aligned tables and "key  value" fields, the short texts of a run (its
// step, settings, state counts), progress lines for `watch`, numbers people read (times,
// durations, FLOPs, bytes) and messages as JSON. Pure functions of their arguments; tested in
// tests/cli/format_test.cc. The views built from them are in cli/show.h.
//
//   Table table({"ID", "NAME", "STATE"});
//   for (const v1::Run& run : runs) table.AddRow({run.id(), run.name(),
//   RunStateName(run.state())}); std::cout << table.Render();
#ifndef SGT_CLI_FORMAT_H_
#define SGT_CLI_FORMAT_H_

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "google/protobuf/message.h"
#include "google/protobuf/repeated_ptr_field.h"
#include "sgt/v1/types.pb.h"

namespace sgt::cli {

// "queued", "running", ...; "unspecified" for 0 and "state(N)" for a value this client does
// not know (a newer coordinator).
std::string RunStateName(v1::RunState state);
// succeeded, failed, cancelled: the run will not change any more.
bool IsEnded(v1::RunState state);

// Unix seconds as "2025-11-23 11:53:02" in `tz`; "-" for 0 (not set).
std::string FormatTime(double unix_seconds, absl::TimeZone tz = absl::LocalTimeZone());
// The same as one token for log lines: "2025-11-23T11:53:02".
std::string FormatTimeToken(double unix_seconds, absl::TimeZone tz = absl::LocalTimeZone());
// A duration for people: "850ms", "45s", "3m05s", "2h03m", "3d04h".
std::string FormatDuration(double seconds);
// `when` relative to `now`: "in 25s", "3m10s ago"; "-" when `when` is 0.
std::string FormatRelative(double when, double now);
// FLOPs in scientific notation with three significant digits: "1.23e15"; "0" for 0.
std::string FormatFlops(double flops);
// FLOPs with an SI prefix: "1.2 PFLOP", "350 GFLOP", "12 FLOP".
std::string FormatFlopsHuman(double flops);
// Bytes with a binary prefix: "512 B", "1.5 KiB", "2.0 GiB".
std::string FormatBytes(int64_t bytes);
// A fraction as a signed percentage: 0.123 -> "+12.3%", -0.05 -> "-5.0%".
std::string FormatPercent(double fraction);
// `value` with `decimals` decimals, or "-" when it is 0 or not finite (not reported yet).
std::string FormatMetric(double value, int decimals);

// `text`, or "-" when it is empty.
std::string Dash(const std::string& text);
// "120/300": the run's step of its steps; "120/?" when its length is not known.
std::string StepOfSteps(const v1::Run& run);
// The run's settings as "key=value" separated by spaces, in their order; "-" when it has none.
std::string SettingsText(const v1::Run& run);
// "3 succeeded, 2 running, 1 queued": the counts above 0, in the order of the RunState enum, a
// state listed twice counted once; "-" when every count is 0.
std::string StateCounts(const google::protobuf::RepeatedPtrField<v1::StateCount>& counts);
// The same of the states of `runs`.
std::string StateCounts(const std::vector<v1::Run>& runs);

// "key  value" lines, the values lined up two spaces after the longest key, each ending in '\n'.
std::string Fields(const std::vector<std::pair<std::string, std::string>>& fields);
// JSON text pretty-printed (two-space indent) with every line indented by two more spaces, each
// ending in '\n'; `text` as it is, indented, when it is not JSON.
std::string IndentedJson(const std::string& text);

// `message` as proto3 JSON for people and scripts: snake_case field names, fields at their
// default value included, one field a line (protobuf's indent: a space a level), ending in '\n'.
// An error when protobuf cannot print it (an Any of an unknown type).
absl::StatusOr<std::string> MessageJson(const google::protobuf::Message& message);
// The same on one line with no '\n' (JSON Lines, as `watch --json` prints); on an error, what
// protobuf wrote before it.
std::string CompactJson(const google::protobuf::Message& message);

// Width on a terminal, counting UTF-8 code points (the CLI prints "→" and "±").
size_t DisplayWidth(absl::string_view text);
// `text` cut to at most `width` code points, ending in "…" when it was cut; with `keep_end`, the
// end is kept and "…" starts it (run names differ at their end: "sweep/variant=sgt,seed=2").
std::string TruncateDisplay(absl::string_view text, size_t width, bool keep_end = false);

// A text table: a header row and rows, columns separated by two spaces, each as wide as its
// widest cell, no trailing spaces. Right-aligned columns suit numbers.
class Table {
 public:
  enum class Align { kLeft, kRight };

  explicit Table(std::vector<std::string> header, std::vector<Align> align = {});
  // Short rows are padded with empty cells; extra cells are kept in extra columns.
  void AddRow(std::vector<std::string> cells);
  size_t rows() const { return rows_.size(); }
  // The header and every row, one line each, each ending in '\n'.
  std::string Render() const;

 private:
  std::vector<std::string> header_;
  std::vector<Align> align_;
  std::vector<std::vector<std::string>> rows_;
};

// "[#######-------------]": `width` characters between the brackets, filled in proportion to
// step/steps (clamped to [0, 1]; empty when steps <= 0).
std::string ProgressBar(int64_t step, int64_t steps, int width);

// Column widths shared by every line of one `watch` screen, so the bars line up.
struct ProgressLayout {
  size_t id_width = 3;
  size_t name_width = 8;
  size_t steps_width = 7;  // "120/300"
  int bar_width = 20;
};

// A layout for `runs` on a terminal `terminal_width` columns wide: the bar gets 10 to 40
// columns, names what is left after the bar's 10 (cut at their start when too long).
ProgressLayout FitProgressLayout(const std::vector<v1::Run>& runs, int terminal_width);

// One `watch` line of a run on a terminal:
// "r12  tiny-sgt  running    [########------------]  120/300  loss 5.120   val ppl 170.31"
// (no trailing spaces).
std::string ProgressLine(const v1::Run& run, const ProgressLayout& layout);

// One `watch` line of a changed run when stdout is not a terminal:
// "2025-11-23T11:53:02 r12 running step 150/300 loss 5.120 val ppl 170.31", with
// ": <reason>" after failed, lost, cancelled and paused runs.
std::string ChangeLine(const v1::Run& run, absl::TimeZone tz = absl::LocalTimeZone());

}  // namespace sgt::cli

#endif  // SGT_CLI_FORMAT_H_
