// `sgtctl export`: telemetry pages (QueryTelemetry) rendered as CSV (RFC 4180) or as one JSON
// array of objects, streamed page by page so a sweep's entropy rows never sit in memory at once.
// The columns are in docs/cli.md; tested in tests/cli/export_test.cc.
//
//   TelemetryWriter writer(v1::TELEMETRY_KIND_SCALARS, ExportFormat::kCsv, &std::cout);
//   writer.Begin();
//   while (reader->Read(&page)) if (absl::Status s = writer.Write(page); !s.ok()) ...
//   writer.End();
#ifndef SGT_CLI_EXPORT_H_
#define SGT_CLI_EXPORT_H_

#include <cstdint>
#include <ostream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "sgt/v1/coordinator.pb.h"

namespace sgt::cli {

enum class ExportFormat { kCsv, kJson };

// "entropy", "scalars", "decisions"; InvalidArgument naming the valid ones otherwise ("tasks",
// the runs' task scores, is not telemetry: TaskScoresExport).
absl::StatusOr<v1::TelemetryKind> ParseExportKind(absl::string_view what);
// "csv", "json"; InvalidArgument otherwise.
absl::StatusOr<ExportFormat> ParseExportFormat(absl::string_view format);

// One CSV field per RFC 4180: quoted when it holds a comma, a double quote, CR or LF (or starts
// or ends with a space), with inner quotes doubled.
std::string CsvField(absl::string_view text);
// The same, always quoted (the space-separated list fields of decisions).
std::string CsvQuoted(absl::string_view text);

// The CSV header line of a kind, without the line break:
// entropy:   run,attempt,step,signal,layer,head,loop,value
// scalars:   run,attempt,step,name,value
// decisions: run,attempt,step,signal,action,layer,k,heads,whole_block,candidates,layer_entropy,
//            reason
std::string CsvHeader(v1::TelemetryKind kind);

// The shortest text that reads back as the same double ("0.1", "5.123", "1e+20").
std::string ShortestDouble(double value);
// The same for a float (entropy values are floats on the wire: "0.8123", not 0.81230002641…).
std::string ShortestFloat(float value);

// "train", "probe", or "" when unspecified.
std::string EntropySignalName(v1::EntropySignal signal);

// Writes the rows of one kind from successive pages as CSV (a header line, then one line per
// row, CRLF-free "\n" line ends) or as one JSON array of objects with the same fields (list
// fields as arrays; decisions also carry head_entropy, an array per layer).
class TelemetryWriter {
 public:
  TelemetryWriter(v1::TelemetryKind kind, ExportFormat format, std::ostream* out);

  // The CSV header or the opening bracket.
  void Begin();
  // The page's rows of this writer's kind. Returns InvalidArgument (and writes nothing) when
  // page.attempts is not parallel to those rows, which would mislabel rows.
  absl::Status Write(const v1::TelemetryPage& page);
  // The closing bracket of the JSON array.
  void End();

  int64_t rows() const { return rows_; }

 private:
  void WriteJsonObject(const std::string& object);

  v1::TelemetryKind kind_;
  ExportFormat format_;
  std::ostream* out_;
  int64_t rows_ = 0;
};

// `export --what tasks`: the zero-shot task scores of `runs` (RunMetrics.tasks: the final ones of
// a finished run, the newest evaluation's of a running one), one row per run, task and group, as
// CSV (header kTaskScoresCsvHeader) or one JSON array of objects with the same fields (group
// "" for a task's total; acc and acc_norm null when not finite). Runs without scores add no row.
extern const char kTaskScoresCsvHeader[];
std::string TaskScoresExport(const std::vector<v1::Run>& runs, ExportFormat format);
// The number of rows TaskScoresExport writes for `runs`.
int64_t TaskScoreRows(const std::vector<v1::Run>& runs);

}  // namespace sgt::cli

#endif  // SGT_CLI_EXPORT_H_
