// `sgtctl export`: telemetry pages as CSV or a JSON array.
#include "cli/export.h"

#include <charconv>
#include <cmath>
#include <cstdlib>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "cli/format.h"
#include "nlohmann/json.hpp"

namespace sgt::cli {

using Json = nlohmann::ordered_json;

absl::StatusOr<v1::TelemetryKind> ParseExportKind(absl::string_view what) {
  if (what == "entropy") return v1::TELEMETRY_KIND_ENTROPY;
  if (what == "scalars") return v1::TELEMETRY_KIND_SCALARS;
  if (what == "decisions") return v1::TELEMETRY_KIND_DECISIONS;
  return absl::InvalidArgumentError(absl::StrCat(
      "--what '", what, "' is not a telemetry kind; use entropy, scalars, decisions or tasks"));
}

absl::StatusOr<ExportFormat> ParseExportFormat(absl::string_view format) {
  if (format == "csv") return ExportFormat::kCsv;
  if (format == "json") return ExportFormat::kJson;
  return absl::InvalidArgumentError(
      absl::StrCat("--format '", format, "' is not an export format; use csv or json"));
}

std::string CsvQuoted(absl::string_view text) {
  std::string out = "\"";
  for (char c : text) {
    if (c == '"') out += '"';
    out += c;
  }
  out += '"';
  return out;
}

std::string CsvField(absl::string_view text) {
  bool needs_quotes = text.find_first_of(",\"\r\n") != absl::string_view::npos ||
                      (!text.empty() && (text.front() == ' ' || text.back() == ' '));
  return needs_quotes ? CsvQuoted(text) : std::string(text);
}

std::string CsvHeader(v1::TelemetryKind kind) {
  switch (kind) {
    case v1::TELEMETRY_KIND_ENTROPY:
      return "run,attempt,step,signal,layer,head,loop,value";
    case v1::TELEMETRY_KIND_SCALARS:
      return "run,attempt,step,name,value";
    case v1::TELEMETRY_KIND_DECISIONS:
      return "run,attempt,step,signal,action,layer,k,heads,whole_block,candidates,layer_entropy,"
             "reason";
    default:
      return "";
  }
}

namespace {

template <typename T>
std::string Shortest(T value) {
  if (std::isnan(value)) return "nan";
  if (std::isinf(value)) return value > 0 ? "inf" : "-inf";
  char buffer[64];
  std::to_chars_result result = std::to_chars(buffer, buffer + sizeof(buffer), value);
  return std::string(buffer, result.ptr);
}

// The double nearest the float's shortest decimal, so JSON shows "0.8123" and not the float's
// exact binary value widened to double.
double FloatForJson(float value) {
  if (!std::isfinite(value)) return static_cast<double>(value);
  return std::strtod(Shortest(value).c_str(), nullptr);
}

// Compact, and never throwing on a string that is not UTF-8.
std::string Dump(const Json& object) {
  return object.dump(-1, ' ', false, Json::error_handler_t::replace);
}

template <typename Repeated, typename Format>
std::string JoinSpaced(const Repeated& values, Format format) {
  std::vector<std::string> parts;
  parts.reserve(values.size());
  for (const auto& value : values) parts.push_back(format(value));
  return absl::StrJoin(parts, " ");
}

}  // namespace

std::string ShortestDouble(double value) { return Shortest(value); }
std::string ShortestFloat(float value) { return Shortest(value); }

std::string EntropySignalName(v1::EntropySignal signal) {
  switch (signal) {
    case v1::ENTROPY_SIGNAL_TRAIN:
      return "train";
    case v1::ENTROPY_SIGNAL_PROBE:
      return "probe";
    default:
      return "";
  }
}

TelemetryWriter::TelemetryWriter(v1::TelemetryKind kind, ExportFormat format, std::ostream* out)
    : kind_(kind), format_(format), out_(out) {}

void TelemetryWriter::Begin() {
  if (format_ == ExportFormat::kCsv) {
    *out_ << CsvHeader(kind_) << '\n';
  } else {
    *out_ << '[';
  }
}

void TelemetryWriter::End() {
  if (format_ == ExportFormat::kJson) *out_ << (rows_ > 0 ? "\n]\n" : "]\n");
  out_->flush();
}

void TelemetryWriter::WriteJsonObject(const std::string& object) {
  *out_ << (rows_ > 0 ? ",\n  " : "\n  ") << object;
}

absl::Status TelemetryWriter::Write(const v1::TelemetryPage& page) {
  int rows = 0;
  switch (kind_) {
    case v1::TELEMETRY_KIND_ENTROPY:
      rows = page.entropy_size();
      break;
    case v1::TELEMETRY_KIND_SCALARS:
      rows = page.scalars_size();
      break;
    case v1::TELEMETRY_KIND_DECISIONS:
      rows = page.decisions_size();
      break;
    default:
      return absl::InvalidArgumentError("no telemetry kind to export");
  }
  if (page.attempts_size() != rows) {
    return absl::InvalidArgumentError(
        absl::StrCat("the coordinator sent a telemetry page of run ", page.run_id(), " with ", rows,
                     " rows but ", page.attempts_size(), " attempts; each row needs its attempt"));
  }
  const bool csv = format_ == ExportFormat::kCsv;
  const std::string run_csv = CsvField(page.run_id());
  for (int i = 0; i < rows; ++i) {
    const int32_t attempt = page.attempts(i);
    switch (kind_) {
      case v1::TELEMETRY_KIND_ENTROPY: {
        const v1::EntropyRow& row = page.entropy(i);
        if (csv) {
          *out_ << run_csv << ',' << attempt << ',' << row.step() << ','
                << EntropySignalName(row.signal()) << ',' << row.layer() << ',' << row.head() << ','
                << row.loop() << ',' << ShortestFloat(row.value()) << '\n';
        } else {
          Json object = {{"run", page.run_id()}, {"attempt", attempt},
                         {"step", row.step()},   {"signal", EntropySignalName(row.signal())},
                         {"layer", row.layer()}, {"head", row.head()},
                         {"loop", row.loop()},   {"value", FloatForJson(row.value())}};
          WriteJsonObject(Dump(object));
        }
        break;
      }
      case v1::TELEMETRY_KIND_SCALARS: {
        const v1::ScalarRow& row = page.scalars(i);
        if (csv) {
          *out_ << run_csv << ',' << attempt << ',' << row.step() << ',' << CsvField(row.name())
                << ',' << ShortestDouble(row.value()) << '\n';
        } else {
          Json object = {{"run", page.run_id()},
                         {"attempt", attempt},
                         {"step", row.step()},
                         {"name", row.name()},
                         {"value", row.value()}};
          WriteJsonObject(Dump(object));
        }
        break;
      }
      case v1::TELEMETRY_KIND_DECISIONS: {
        const v1::GrowthDecision& row = page.decisions(i);
        auto integer = [](int32_t v) { return absl::StrCat(v); };
        if (csv) {
          *out_ << run_csv << ',' << attempt << ',' << row.step() << ','
                << EntropySignalName(row.signal()) << ',' << CsvField(row.action()) << ','
                << row.layer() << ',' << row.k() << ','
                << CsvQuoted(JoinSpaced(row.heads(), integer)) << ','
                << (row.whole_block() ? "true" : "false") << ','
                << CsvQuoted(JoinSpaced(row.candidates(), integer)) << ','
                << CsvQuoted(JoinSpaced(row.layer_entropy(), ShortestDouble)) << ','
                << CsvField(row.reason()) << '\n';
        } else {
          Json head_entropy = Json::array();
          for (const v1::HeadEntropies& layer : row.head_entropy()) {
            head_entropy.push_back(
                Json(std::vector<double>(layer.values().begin(), layer.values().end())));
          }
          Json object = {{"run", page.run_id()},
                         {"attempt", attempt},
                         {"step", row.step()},
                         {"signal", EntropySignalName(row.signal())},
                         {"action", row.action()},
                         {"layer", row.layer()},
                         {"k", row.k()},
                         {"heads", std::vector<int32_t>(row.heads().begin(), row.heads().end())},
                         {"whole_block", row.whole_block()},
                         {"candidates",
                          std::vector<int32_t>(row.candidates().begin(), row.candidates().end())},
                         {"layer_entropy", std::vector<double>(row.layer_entropy().begin(),
                                                               row.layer_entropy().end())},
                         {"reason", row.reason()},
                         {"head_entropy", head_entropy}};
          WriteJsonObject(Dump(object));
        }
        break;
      }
      default:
        break;
    }
    ++rows_;
  }
  return absl::OkStatus();
}

const char kTaskScoresCsvHeader[] = "run,name,variant,state,step,task,group,items,acc,acc_norm";

std::string TaskScoresExport(const std::vector<v1::Run>& runs, ExportFormat format) {
  std::string out;
  if (format == ExportFormat::kCsv) {
    absl::StrAppend(&out, kTaskScoresCsvHeader, "\n");
  } else {
    out = "[";
  }
  bool first = true;
  for (const v1::Run& run : runs) {
    const std::string state = RunStateName(run.state());
    for (const v1::TaskAccuracy& t : run.metrics().tasks()) {
      if (format == ExportFormat::kCsv) {
        absl::StrAppend(&out, CsvField(run.id()), ",", CsvField(run.name()), ",",
                        CsvField(run.variant()), ",", state, ",", t.step(), ",",
                        CsvField(t.task()), ",", CsvField(t.group()), ",", t.items(), ",",
                        ShortestDouble(t.acc()), ",", ShortestDouble(t.acc_norm()), "\n");
        continue;
      }
      const auto number = [](double v) { return std::isfinite(v) ? Json(v) : Json(nullptr); };
      Json o = Json::object();
      o["run"] = run.id();
      o["name"] = run.name();
      o["variant"] = run.variant();
      o["state"] = state;
      o["step"] = t.step();
      o["task"] = t.task();
      o["group"] = t.group();
      o["items"] = t.items();
      o["acc"] = number(t.acc());
      o["acc_norm"] = number(t.acc_norm());
      absl::StrAppend(&out, first ? "\n  " : ",\n  ", Dump(o));
      first = false;
    }
  }
  if (format == ExportFormat::kJson) absl::StrAppend(&out, first ? "]\n" : "\n]\n");
  return out;
}

int64_t TaskScoreRows(const std::vector<v1::Run>& runs) {
  int64_t n = 0;
  for (const v1::Run& run : runs) n += run.metrics().tasks_size();
  return n;
}

}  // namespace sgt::cli
