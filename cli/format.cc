// Text output of sgtctl: tables, fields, progress lines, numbers for people, JSON.
#include "cli/format.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "google/protobuf/util/json_util.h"
#include "nlohmann/json.hpp"

namespace sgt::cli {

std::string RunStateName(v1::RunState state) {
  if (state == v1::RUN_STATE_UNSPECIFIED) return "unspecified";
  if (!v1::RunState_IsValid(state)) return absl::StrCat("state(", static_cast<int>(state), ")");
  std::string name = absl::AsciiStrToLower(v1::RunState_Name(state));
  constexpr absl::string_view kPrefix = "run_state_";
  return absl::StartsWith(name, kPrefix) ? name.substr(kPrefix.size()) : name;
}

bool IsEnded(v1::RunState state) {
  return state == v1::RUN_STATE_SUCCEEDED || state == v1::RUN_STATE_FAILED ||
         state == v1::RUN_STATE_CANCELLED;
}

std::string Dash(const std::string& text) { return text.empty() ? "-" : text; }

std::string StepOfSteps(const v1::Run& run) {
  return absl::StrCat(run.step(), "/", run.steps() > 0 ? absl::StrCat(run.steps()) : "?");
}

std::string SettingsText(const v1::Run& run) {
  std::vector<std::string> parts;
  for (const v1::Setting& s : run.settings())
    parts.push_back(absl::StrCat(s.key(), "=", s.value()));
  return parts.empty() ? "-" : absl::StrJoin(parts, " ");
}

std::string StateCounts(const google::protobuf::RepeatedPtrField<v1::StateCount>& counts) {
  std::map<int, int> by_state;
  for (const v1::StateCount& c : counts) by_state[c.state()] += c.count();
  std::vector<std::string> parts;
  for (const auto& [state, count] : by_state) {
    if (count > 0) {
      parts.push_back(absl::StrCat(count, " ", RunStateName(static_cast<v1::RunState>(state))));
    }
  }
  return parts.empty() ? "-" : absl::StrJoin(parts, ", ");
}

std::string StateCounts(const std::vector<v1::Run>& runs) {
  google::protobuf::RepeatedPtrField<v1::StateCount> counts;
  for (const v1::Run& run : runs) {
    v1::StateCount* count = counts.Add();
    count->set_state(run.state());
    count->set_count(1);
  }
  return StateCounts(counts);
}

std::string Fields(const std::vector<std::pair<std::string, std::string>>& fields) {
  size_t width = 0;
  for (const auto& [key, value] : fields) width = std::max(width, key.size());
  std::string out;
  for (const auto& [key, value] : fields) {
    absl::StrAppend(&out, key, std::string(width - key.size() + 2, ' '), value, "\n");
  }
  return out;
}

std::string IndentedJson(const std::string& text) {
  nlohmann::json parsed = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  std::string pretty = parsed.is_discarded()
                           ? text
                           : parsed.dump(2, ' ', false, nlohmann::json::error_handler_t::replace);
  std::string out;
  for (absl::string_view line : absl::StrSplit(pretty, '\n'))
    absl::StrAppend(&out, "  ", line, "\n");
  return out;
}

absl::StatusOr<std::string> MessageJson(const google::protobuf::Message& message) {
  google::protobuf::util::JsonPrintOptions options;
  options.add_whitespace = true;
  options.always_print_primitive_fields = true;
  options.preserve_proto_field_names = true;
  std::string text;
  auto status = google::protobuf::util::MessageToJsonString(message, &text, options);
  if (!status.ok()) return absl::InternalError(status.ToString());
  if (text.empty() || text.back() != '\n') text += '\n';
  return text;
}

std::string CompactJson(const google::protobuf::Message& message) {
  google::protobuf::util::JsonPrintOptions options;
  options.always_print_primitive_fields = true;
  options.preserve_proto_field_names = true;
  std::string text;
  (void)google::protobuf::util::MessageToJsonString(message, &text, options);
  return text;
}

namespace {

absl::Time ToTime(double unix_seconds) {
  return absl::FromUnixMicros(static_cast<int64_t>(std::llround(unix_seconds * 1e6)));
}

}  // namespace

std::string FormatTime(double unix_seconds, absl::TimeZone tz) {
  if (unix_seconds == 0 || !std::isfinite(unix_seconds)) return "-";
  return absl::FormatTime("%Y-%m-%d %H:%M:%S", ToTime(unix_seconds), tz);
}

std::string FormatTimeToken(double unix_seconds, absl::TimeZone tz) {
  if (unix_seconds == 0 || !std::isfinite(unix_seconds)) return "-";
  return absl::FormatTime("%Y-%m-%dT%H:%M:%S", ToTime(unix_seconds), tz);
}

std::string FormatDuration(double seconds) {
  if (!std::isfinite(seconds)) return "-";
  if (seconds < 0) seconds = -seconds;
  if (seconds < 1) return absl::StrCat(static_cast<int64_t>(std::llround(seconds * 1000)), "ms");
  int64_t s = static_cast<int64_t>(std::llround(seconds));
  if (s < 60) return absl::StrCat(s, "s");
  if (s < 3600) return absl::StrFormat("%dm%02ds", s / 60, s % 60);
  if (s < 86400) return absl::StrFormat("%dh%02dm", s / 3600, (s % 3600) / 60);
  return absl::StrFormat("%dd%02dh", s / 86400, (s % 86400) / 3600);
}

std::string FormatRelative(double when, double now) {
  if (when == 0) return "-";
  std::string span = FormatDuration(when - now);
  return when >= now ? absl::StrCat("in ", span) : absl::StrCat(span, " ago");
}

std::string FormatFlops(double flops) {
  if (flops == 0) return "0";
  if (!std::isfinite(flops)) return "-";
  // "%.2e" gives "1.23e+15"; people and the paper write "1.23e15".
  std::string text = absl::StrFormat("%.2e", flops);
  size_t e = text.find('e');
  std::string mantissa = text.substr(0, e);
  std::string exponent = text.substr(e + 1);
  bool negative = exponent[0] == '-';
  exponent = exponent.substr(1);
  while (exponent.size() > 1 && exponent[0] == '0') exponent.erase(0, 1);
  return absl::StrCat(mantissa, "e", negative ? "-" : "", exponent);
}

std::string FormatFlopsHuman(double flops) {
  if (!std::isfinite(flops)) return "-";
  static constexpr const char* kPrefixes[] = {"", "K", "M", "G", "T", "P", "E", "Z"};
  double value = std::fabs(flops);
  int prefix = 0;
  while (value >= 999.95 && prefix < 7) {
    value /= 1000;
    ++prefix;
  }
  std::string number = value >= 99.95 || prefix == 0 ? absl::StrFormat("%.0f", value)
                                                     : absl::StrFormat("%.1f", value);
  return absl::StrCat(flops < 0 ? "-" : "", number, " ", kPrefixes[prefix], "FLOP");
}

std::string FormatBytes(int64_t bytes) {
  static constexpr const char* kPrefixes[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
  if (bytes < 1024) return absl::StrCat(bytes, " B");
  double value = static_cast<double>(bytes);
  int prefix = 0;
  while (value >= 1023.95 && prefix < 5) {
    value /= 1024;
    ++prefix;
  }
  return absl::StrFormat("%.1f %s", value, kPrefixes[prefix]);
}

std::string FormatPercent(double fraction) {
  if (!std::isfinite(fraction)) return "-";
  double percent = fraction * 100;
  // No "-0.0%" for a tiny negative rounding error.
  if (std::fabs(percent) < 0.05) percent = 0;
  return absl::StrFormat("%+.1f%%", percent);
}

std::string FormatMetric(double value, int decimals) {
  if (value == 0 || !std::isfinite(value)) return "-";
  return absl::StrFormat("%.*f", decimals, value);
}

size_t DisplayWidth(absl::string_view text) {
  size_t width = 0;
  for (char c : text) {
    if ((static_cast<unsigned char>(c) & 0xC0) != 0x80) ++width;
  }
  return width;
}

std::string TruncateDisplay(absl::string_view text, size_t width, bool keep_end) {
  size_t total = DisplayWidth(text);
  if (total <= width) return std::string(text);
  if (width == 0) return "";
  if (keep_end) {
    // Skip total-(width-1) code points, keep the rest after the ellipsis.
    size_t skip = total - (width - 1);
    size_t seen = 0;
    size_t start = 0;
    for (; start < text.size(); ++start) {
      if ((static_cast<unsigned char>(text[start]) & 0xC0) != 0x80) {
        if (seen == skip) break;
        ++seen;
      }
    }
    return absl::StrCat("…", text.substr(start));
  }
  // Keep width-1 code points, then the ellipsis.
  size_t kept = 0;
  size_t end = 0;
  for (; end < text.size(); ++end) {
    if ((static_cast<unsigned char>(text[end]) & 0xC0) != 0x80) {
      if (kept == width - 1) break;
      ++kept;
    }
  }
  return absl::StrCat(text.substr(0, end), "…");
}

Table::Table(std::vector<std::string> header, std::vector<Align> align)
    : header_(std::move(header)), align_(std::move(align)) {}

void Table::AddRow(std::vector<std::string> cells) { rows_.push_back(std::move(cells)); }

std::string Table::Render() const {
  size_t columns = header_.size();
  for (const auto& row : rows_) columns = std::max(columns, row.size());
  std::vector<size_t> widths(columns, 0);
  auto measure = [&](const std::vector<std::string>& row) {
    for (size_t c = 0; c < row.size(); ++c) widths[c] = std::max(widths[c], DisplayWidth(row[c]));
  };
  measure(header_);
  for (const auto& row : rows_) measure(row);

  std::string out;
  auto render_row = [&](const std::vector<std::string>& row) {
    std::string line;
    for (size_t c = 0; c < columns; ++c) {
      const std::string empty;
      const std::string& cell = c < row.size() ? row[c] : empty;
      std::string padding(widths[c] - DisplayWidth(cell), ' ');
      bool right = c < align_.size() && align_[c] == Align::kRight;
      if (c > 0) line += "  ";
      line += right ? padding + cell : cell + padding;
    }
    // Trailing padding of the last (left-aligned) column helps nobody.
    while (!line.empty() && line.back() == ' ') line.pop_back();
    out += line;
    out += '\n';
  };
  render_row(header_);
  for (const auto& row : rows_) render_row(row);
  return out;
}

std::string ProgressBar(int64_t step, int64_t steps, int width) {
  width = std::max(width, 1);
  int filled = 0;
  if (steps > 0) {
    double fraction = std::clamp(static_cast<double>(step) / static_cast<double>(steps), 0.0, 1.0);
    filled = static_cast<int>(std::floor(fraction * width));
  }
  return absl::StrCat("[", std::string(filled, '#'), std::string(width - filled, '-'), "]");
}

namespace {

constexpr size_t kStateWidth = 9;  // "cancelled", "succeeded"

// `text` padded with spaces to `width` columns.
std::string Pad(std::string text, size_t width) {
  size_t shown = DisplayWidth(text);
  if (shown < width) text.append(width - shown, ' ');
  return text;
}

// What follows the bar: "  120/300  loss 5.120  val ppl 170.31" (the bar shows the fraction).
std::string ProgressTail(const v1::Run& run, size_t steps_width) {
  return absl::StrCat("  ", Pad(StepOfSteps(run), steps_width), "  loss ",
                      Pad(FormatMetric(run.metrics().loss(), 3), 6), "  val ppl ",
                      FormatMetric(run.metrics().val_ppl(), 2));
}

}  // namespace

ProgressLayout FitProgressLayout(const std::vector<v1::Run>& runs, int terminal_width) {
  ProgressLayout layout;
  layout.id_width = 2;
  layout.steps_width = 3;
  size_t longest_name = 4;
  for (const v1::Run& run : runs) {
    layout.id_width = std::max(layout.id_width, DisplayWidth(run.id()));
    layout.steps_width = std::max(layout.steps_width, DisplayWidth(StepOfSteps(run)));
    longest_name = std::max(longest_name, DisplayWidth(run.name()));
  }
  size_t tail_width = 0;
  for (const v1::Run& run : runs) {
    tail_width = std::max(tail_width, DisplayWidth(ProgressTail(run, layout.steps_width)));
  }
  // id, state, tail, the bar's brackets and the gaps between the columns.
  int fixed = static_cast<int>(layout.id_width + kStateWidth + tail_width) + 3 * 2 + 2;
  int name_room = std::max(terminal_width - fixed - 10, 8);
  layout.name_width = std::min(longest_name, static_cast<size_t>(name_room));
  layout.bar_width =
      std::clamp(terminal_width - fixed - static_cast<int>(layout.name_width), 10, 40);
  return layout;
}

std::string ProgressLine(const v1::Run& run, const ProgressLayout& layout) {
  std::string line = absl::StrCat(
      Pad(TruncateDisplay(run.id(), layout.id_width), layout.id_width), "  ",
      Pad(TruncateDisplay(run.name(), layout.name_width, /*keep_end=*/true), layout.name_width),
      "  ", Pad(RunStateName(run.state()), kStateWidth), "  ",
      ProgressBar(run.state() == v1::RUN_STATE_SUCCEEDED ? run.steps() : run.step(), run.steps(),
                  layout.bar_width),
      ProgressTail(run, layout.steps_width));
  while (!line.empty() && line.back() == ' ') line.pop_back();
  return line;
}

std::string ChangeLine(const v1::Run& run, absl::TimeZone tz) {
  std::string line = absl::StrCat(FormatTimeToken(run.updated_at(), tz), " ", run.id(), " ",
                                  RunStateName(run.state()), " step ", StepOfSteps(run));
  if (run.metrics().loss() != 0) {
    absl::StrAppend(&line, " loss ", FormatMetric(run.metrics().loss(), 3));
  }
  if (run.metrics().val_ppl() != 0) {
    absl::StrAppend(&line, " val ppl ", FormatMetric(run.metrics().val_ppl(), 2));
  }
  switch (run.state()) {
    case v1::RUN_STATE_FAILED:
    case v1::RUN_STATE_LOST:
    case v1::RUN_STATE_CANCELLED:
    case v1::RUN_STATE_PAUSED:
      if (!run.reason().empty()) {
        // One line per change: a multi-line failure message is folded.
        std::string reason = run.reason();
        std::replace(reason.begin(), reason.end(), '\n', ' ');
        std::replace(reason.begin(), reason.end(), '\r', ' ');
        absl::StrAppend(&line, ": ", reason);
      }
      break;
    default:
      break;
  }
  return line;
}

}  // namespace sgt::cli
