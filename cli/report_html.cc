// `sgtctl report --html`: the report as one self-contained page of inline SVG.
#include "cli/report_html.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <optional>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "cli/export.h"
#include "cli/format.h"
#include "cli/report.h"
#include "libsgt/core/config.h"
#include "libsgt/core/flops.h"

namespace sgt::cli {

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
// Entropy rows beyond these indices are not believed (they would size the matrices).
constexpr int32_t kMaxLayers = 1024;
constexpr int32_t kMaxHeads = 1024;

// ---------------------------------------------------------------------------------------------
// Series: points with a band, aggregated over seeds and downsampled.

struct Point {
  double x = 0, y = 0, lo = 0, hi = 0;
};

struct Line {
  std::string name;
  std::string color;
  std::vector<Point> points;
  bool band = false;  // draw lo..hi
};

// At most `max_points` points: the first and last as they are, the others in equal buckets of
// consecutive points (x and y their means, the band their extremes).
std::vector<Point> Downsample(const std::vector<Point>& in, int max_points) {
  max_points = std::max(max_points, 3);
  if (static_cast<int>(in.size()) <= max_points) return in;
  std::vector<Point> out;
  out.push_back(in.front());
  const size_t inner = in.size() - 2;
  const size_t buckets = static_cast<size_t>(max_points) - 2;
  for (size_t b = 0; b < buckets; ++b) {
    size_t begin = 1 + b * inner / buckets, end = 1 + (b + 1) * inner / buckets;
    if (begin >= end) continue;
    Point p{0, 0, in[begin].lo, in[begin].hi};
    for (size_t i = begin; i < end; ++i) {
      p.x += in[i].x;
      p.y += in[i].y;
      p.lo = std::min(p.lo, in[i].lo);
      p.hi = std::max(p.hi, in[i].hi);
    }
    p.x /= static_cast<double>(end - begin);
    p.y /= static_cast<double>(end - begin);
    out.push_back(p);
  }
  out.push_back(in.back());
  return out;
}

// Sorted by step; a repeated step keeps its last value.
std::vector<std::pair<int64_t, double>> ByStep(std::vector<std::pair<int64_t, double>> v) {
  std::stable_sort(v.begin(), v.end(),
                   [](const auto& a, const auto& b) { return a.first < b.first; });
  std::vector<std::pair<int64_t, double>> out;
  for (const auto& p : v) {
    if (!out.empty() && out.back().first == p.first) {
      out.back() = p;
    } else {
      out.push_back(p);
    }
  }
  return out;
}

// Training FLOPs at `step`, linear between the logged steps (0 at step 0); nullopt past the last.
std::optional<double> FlopsAt(const std::vector<std::pair<int64_t, double>>& flops, int64_t step) {
  auto it = std::lower_bound(flops.begin(), flops.end(), step,
                             [](const auto& p, int64_t s) { return p.first < s; });
  if (it != flops.end() && it->first == step) return it->second;
  if (it == flops.end()) return std::nullopt;
  int64_t s0 = 0;
  double f0 = 0;
  if (it != flops.begin()) {
    s0 = std::prev(it)->first;
    f0 = std::prev(it)->second;
  }
  if (it->first == s0) return it->second;
  return f0 + (it->second - f0) * static_cast<double>(step - s0) /
                  static_cast<double>(it->first - s0);
}

// One line over the seeds: per step, y the mean and the band min..max of the seeds that have
// that step; x the step, or the mean training FLOPs at that step when `x_flops`.
std::vector<Point> OverSeeds(const std::vector<std::vector<std::pair<int64_t, double>>>& ys,
                             const std::vector<std::vector<std::pair<int64_t, double>>>& flops,
                             bool x_flops) {
  struct Acc {
    double x = 0, y = 0, lo = 0, hi = 0;
    int n = 0;
  };
  std::map<int64_t, Acc> at;
  for (size_t r = 0; r < ys.size(); ++r) {
    for (const auto& [step, value] : ys[r]) {
      if (!std::isfinite(value)) continue;
      double x = static_cast<double>(step);
      if (x_flops) {
        std::optional<double> f = FlopsAt(flops[r], step);
        if (!f.has_value()) continue;
        x = *f;
      }
      Acc& a = at[step];
      if (a.n == 0) {
        a.lo = a.hi = value;
      } else {
        a.lo = std::min(a.lo, value);
        a.hi = std::max(a.hi, value);
      }
      a.x += x;
      a.y += value;
      ++a.n;
    }
  }
  std::vector<Point> out;
  for (const auto& [step, a] : at) out.push_back({a.x / a.n, a.y / a.n, a.lo, a.hi});
  return out;
}

// ---------------------------------------------------------------------------------------------
// Drawing.

const char* const kPalette[] = {"#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f",
                                "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac"};

std::string PaletteColor(size_t i) { return kPalette[i % (sizeof(kPalette) / sizeof(*kPalette))]; }

// A colour of the viridis map at t in [0, 1].
std::string Viridis(double t) {
  static const double stops[][3] = {
      {68, 1, 84}, {59, 82, 139}, {33, 145, 140}, {94, 201, 98}, {253, 231, 37}};
  if (!std::isfinite(t)) return "#dddddd";
  t = std::clamp(t, 0.0, 1.0) * 4;
  int i = std::min(static_cast<int>(t), 3);
  double f = t - i;
  auto c = [&](int k) {
    return static_cast<int>(std::lround(stops[i][k] + (stops[i + 1][k] - stops[i][k]) * f));
  };
  return absl::StrFormat("#%02x%02x%02x", c(0), c(1), c(2));
}

// A coordinate in the SVG: one decimal is below a pixel's width.
std::string Px(double v) {
  std::string s = absl::StrFormat("%.1f", v);
  if (absl::EndsWith(s, ".0")) s.resize(s.size() - 2);
  return s;
}

std::string Label(double v) { return absl::StrFormat("%.4g", v); }

// About five round tick values over [lo, hi].
std::vector<double> Ticks(double lo, double hi) {
  std::vector<double> ticks;
  double span = hi - lo;
  if (!(span > 0)) return {lo};
  double raw = span / 5;
  double mag = std::pow(10, std::floor(std::log10(raw)));
  double step = mag;
  for (double m : {1.0, 2.0, 5.0, 10.0}) {
    if (raw <= m * mag) {
      step = m * mag;
      break;
    }
  }
  for (double t = std::ceil(lo / step) * step; t <= hi + step * 1e-9; t += step) {
    ticks.push_back(std::abs(t) < step * 1e-9 ? 0 : t);
  }
  return ticks;
}

struct Chart {
  std::string id;  // data-figure
  std::string title;
  std::string x_label, y_label;
  bool x_flops = false;  // x tick labels as FLOPs
  bool log_y = false;
  std::vector<Line> lines;
  std::string note;  // under the figure
};

constexpr int kWidth = 600, kHeight = 300;
constexpr int kLeft = 62, kRight = 12, kTop = 10, kBottom = 42;

std::string Legend(const std::vector<Line>& lines) {
  std::string out = "<ul class=\"legend\">";
  for (const Line& line : lines) {
    absl::StrAppend(&out, "<li data-series=\"", HtmlEscape(line.name),
                    "\"><span class=\"swatch\" style=\"background:", line.color, "\"></span>",
                    HtmlEscape(line.name), "</li>");
  }
  return out + "</ul>";
}

std::string RenderChart(const Chart& chart) {
  std::vector<const Line*> drawn;
  double x0 = std::numeric_limits<double>::infinity(), x1 = -x0, y0 = x0, y1 = -x0;
  auto fy = [&](double y) { return chart.log_y ? std::log10(y) : y; };
  for (const Line& line : chart.lines) {
    if (line.points.empty()) continue;
    drawn.push_back(&line);
    for (const Point& p : line.points) {
      if (chart.log_y && !(p.lo > 0)) continue;
      x0 = std::min(x0, p.x);
      x1 = std::max(x1, p.x);
      y0 = std::min(y0, fy(line.band ? p.lo : p.y));
      y1 = std::max(y1, fy(line.band ? p.hi : p.y));
    }
  }
  std::string out = absl::StrCat("<figure class=\"fig\" data-figure=\"", HtmlEscape(chart.id),
                                 "\" data-series=\"", drawn.size(), "\"><figcaption>",
                                 HtmlEscape(chart.title), "</figcaption>");
  if (drawn.empty() || !std::isfinite(x0) || !std::isfinite(y0)) {
    return absl::StrCat(out, "<p class=\"empty\">no data yet</p></figure>");
  }
  if (x1 == x0) x1 = x0 + 1;
  if (y1 == y0) {
    y0 -= 0.5;
    y1 += 0.5;
  }
  const double pad = (y1 - y0) * 0.04;
  y0 -= pad;
  y1 += pad;
  const double w = kWidth - kLeft - kRight, h = kHeight - kTop - kBottom;
  auto sx = [&](double x) { return kLeft + (x - x0) / (x1 - x0) * w; };
  auto sy = [&](double y) { return kTop + (1 - (fy(y) - y0) / (y1 - y0)) * h; };
  auto sy_raw = [&](double t) { return kTop + (1 - (t - y0) / (y1 - y0)) * h; };

  absl::StrAppend(&out, "<svg viewBox=\"0 0 ", kWidth, " ", kHeight, "\" width=\"", kWidth,
                  "\" height=\"", kHeight, "\" role=\"img\" aria-label=\"",
                  HtmlEscape(chart.title), "\">");
  // Axes, grid and ticks.
  absl::StrAppend(&out, "<g class=\"axis\">");
  for (double t : Ticks(x0, x1)) {
    absl::StrAppend(&out, "<line x1=\"", Px(sx(t)), "\" x2=\"", Px(sx(t)), "\" y1=\"", kTop,
                    "\" y2=\"", kTop + h, "\"/><text x=\"", Px(sx(t)), "\" y=\"", kTop + h + 14,
                    "\" text-anchor=\"middle\">", chart.x_flops ? FormatFlops(t) : Label(t),
                    "</text>");
  }
  // Log scale: round values within a decade, else 1, 2 and 5 times the powers of ten; in log10.
  std::vector<double> yticks;
  if (!chart.log_y) {
    yticks = Ticks(y0, y1);
  } else if (y1 - y0 < 1) {
    for (double t : Ticks(std::pow(10, y0), std::pow(10, y1))) {
      if (t > 0) yticks.push_back(std::log10(t));
    }
  } else {
    for (double e = std::floor(y0); e <= y1; ++e) {
      for (double m : {1.0, 2.0, 5.0}) {
        double t = e + std::log10(m);
        if (t >= y0 && t <= y1 && (m == 1 || y1 - y0 < 3)) yticks.push_back(t);
      }
    }
  }
  for (double t : yticks) {
    absl::StrAppend(&out, "<line x1=\"", kLeft, "\" x2=\"", kLeft + w, "\" y1=\"", Px(sy_raw(t)),
                    "\" y2=\"", Px(sy_raw(t)), "\"/><text x=\"", kLeft - 4, "\" y=\"",
                    Px(sy_raw(t) + 4), "\" text-anchor=\"end\">",
                    Label(chart.log_y ? std::pow(10, t) : t), "</text>");
  }
  absl::StrAppend(&out, "<rect class=\"frame\" x=\"", kLeft, "\" y=\"", kTop, "\" width=\"", w,
                  "\" height=\"", h, "\"/><text x=\"", Px(kLeft + w / 2), "\" y=\"",
                  kHeight - 6, "\" text-anchor=\"middle\">", HtmlEscape(chart.x_label),
                  "</text><text transform=\"translate(14 ", Px(kTop + h / 2),
                  ") rotate(-90)\" text-anchor=\"middle\">", HtmlEscape(chart.y_label),
                  "</text></g>");
  for (const Line* line : drawn) {
    const Point& last = line->points.back();
    absl::StrAppend(&out, "<g class=\"series\" data-series=\"", HtmlEscape(line->name),
                    "\" data-points=\"", line->points.size(), "\" data-last-x=\"",
                    ShortestDouble(last.x), "\" data-last-y=\"", ShortestDouble(last.y),
                    "\"><title>", HtmlEscape(line->name), "</title>");
    auto usable = [&](const Point& p) { return !chart.log_y || (p.lo > 0 && p.y > 0); };
    if (line->band) {
      std::string up, down;
      for (const Point& p : line->points) {
        if (!usable(p)) continue;
        absl::StrAppend(&up, up.empty() ? "M" : "L", Px(sx(p.x)), " ", Px(sy(p.hi)));
      }
      for (auto it = line->points.rbegin(); it != line->points.rend(); ++it) {
        if (!usable(*it)) continue;
        absl::StrAppend(&down, "L", Px(sx(it->x)), " ", Px(sy(it->lo)));
      }
      if (!up.empty()) {
        absl::StrAppend(&out, "<path class=\"band\" fill=\"", line->color, "\" d=\"", up, down,
                        "Z\"/>");
      }
    }
    std::string d;
    for (const Point& p : line->points) {
      if (!usable(p)) continue;
      absl::StrAppend(&d, d.empty() ? "M" : "L", Px(sx(p.x)), " ", Px(sy(p.y)));
    }
    absl::StrAppend(&out, "<path class=\"line\" stroke=\"", line->color, "\" d=\"", d, "\"/>");
    if (line->points.size() == 1) {
      absl::StrAppend(&out, "<circle r=\"3\" fill=\"", line->color, "\" cx=\"",
                      Px(sx(last.x)), "\" cy=\"", Px(sy(last.y)), "\"/>");
    }
    absl::StrAppend(&out, "</g>");
  }
  absl::StrAppend(&out, "</svg>", Legend(chart.lines));
  if (!chart.note.empty()) absl::StrAppend(&out, "<p class=\"note\">", chart.note, "</p>");
  return out + "</figure>";
}

// ---------------------------------------------------------------------------------------------
// The rows of Table 1 as groups of runs (every state: a running run has a line too).

struct Group {
  std::string label;
  std::string color;
  std::vector<const v1::Run*> runs;
};

std::vector<Group> GroupRuns(const std::vector<v1::Run>& runs) {
  std::vector<Group> groups;
  std::map<std::string, size_t> index;
  for (const v1::Run& run : runs) {
    auto [it, inserted] = index.emplace(RowKey(run), groups.size());
    if (inserted) {
      std::vector<std::string> parts = {run.variant()};
      for (const auto& [k, v] : RowSettings(run)) parts.push_back(absl::StrCat(k, "=", v));
      groups.push_back({absl::StrJoin(parts, " "), "", {}});
    }
    groups[it->second].runs.push_back(&run);
  }
  // Rows that differ only in their step count would share a label.
  std::map<std::string, int> uses;
  for (const Group& g : groups) ++uses[g.label];
  for (size_t i = 0; i < groups.size(); ++i) {
    if (uses[groups[i].label] > 1) {
      absl::StrAppend(&groups[i].label, " (", groups[i].runs.front()->steps(), " steps)");
    }
    groups[i].color = PaletteColor(i);
  }
  return groups;
}

const RunTrace* TraceOf(const ReportTelemetry& telemetry, const v1::Run& run) {
  return telemetry.Find(run.id());
}

// The entropies a run's per-layer figures use: the probe when it has any, else the training
// signal.
const std::map<int64_t, std::vector<std::vector<float>>>* EntropyOf(const RunTrace& trace,
                                                                    std::string* signal) {
  if (!trace.probe_entropy.empty()) {
    *signal = "probe";
    return &trace.probe_entropy;
  }
  *signal = "train";
  return &trace.train_entropy;
}

// Layer mean and population variance over the heads that have a value.
std::pair<double, double> MeanAndVariance(const std::vector<float>& heads) {
  double sum = 0, squares = 0;
  int n = 0;
  for (float v : heads) {
    if (!std::isfinite(v)) continue;
    sum += v;
    ++n;
  }
  if (n == 0) return {kNaN, kNaN};
  double mean = sum / n;
  for (float v : heads) {
    if (std::isfinite(v)) squares += (v - mean) * (v - mean);
  }
  return {mean, squares / n};
}

std::optional<RunConfig> ConfigOf(const v1::Run& run) {
  absl::StatusOr<RunConfig> config = RunConfigFromJson(run.config_json());
  if (!config.ok()) return std::nullopt;
  return *config;
}

// ---------------------------------------------------------------------------------------------
// Sections.

std::string Cell(const std::string& text, const std::string& attrs = "") {
  return absl::StrCat("<td", attrs.empty() ? "" : " ", attrs, ">", text, "</td>");
}

// A mean ± std cell as `sgtctl report` prints it; the exact numbers of `report --json` in its
// data-mean and data-std attributes.
std::string StatCell(const std::string& column, const SeedStat& stat,
                     const std::string& mean_text, const std::optional<std::string>& std_text) {
  return Cell(absl::StrCat(HtmlEscape(mean_text), " ± ", HtmlEscape(std_text.value_or("-"))),
              absl::StrCat("class=\"num\" data-col=\"", column, "\" data-mean=\"",
                           ShortestDouble(stat.mean), "\" data-std=\"",
                           stat.std.has_value() ? ShortestDouble(*stat.std) : "", "\""));
}

std::string TableOne(const Report& report) {
  // Task accuracies (when some run was scored): acc per task and their mean, then acc_norm's.
  std::string task_headers;
  for (const char* metric : {"acc", "acc_norm"}) {
    for (const std::string& task : report.tasks) {
      absl::StrAppend(&task_headers, "<th>", metric, " ", HtmlEscape(task), "</th>");
    }
    if (!report.tasks.empty()) absl::StrAppend(&task_headers, "<th>", metric, " avg</th>");
  }
  std::string out = absl::StrCat(
      "<table id=\"table1\"><thead><tr><th>variant</th><th>settings</th><th>steps</th>"
      "<th>n</th><th>val ppl</th><th>train FLOPs</th><th>overhead</th><th>tokens/s</th>",
      task_headers, "<th>runs</th></tr></thead><tbody>");
  auto fixed = [](int decimals) {
    return [decimals](double v) { return absl::StrFormat("%.*f", decimals, v); };
  };
  auto stat = [](const std::string& column, const SeedStat& s, auto format) {
    std::optional<std::string> spread;
    if (s.std.has_value()) spread = format(*s.std);
    return StatCell(column, s, format(s.mean), spread);
  };
  // In percent, as `sgtctl report`; the data attributes hold the fractions of `report --json`.
  const auto percent = [](double v) { return absl::StrFormat("%.1f", v * 100); };
  const auto acc = [&](const std::string& column, const std::optional<SeedStat>& s) {
    if (!s.has_value()) return Cell("-", absl::StrCat("class=\"num\" data-col=\"", column, "\""));
    std::optional<std::string> spread;
    if (s->std.has_value()) spread = percent(*s->std);
    return StatCell(column, *s, percent(s->mean), spread);
  };
  for (const ReportRow& row : report.rows) {
    std::vector<std::string> settings;
    for (const auto& [k, v] : row.settings) settings.push_back(absl::StrCat(k, "=", v));
    std::string task_cells;
    for (const bool norm : {false, true}) {
      const char* metric = norm ? "acc_norm" : "acc";
      for (size_t t = 0; t < report.tasks.size(); ++t) {
        absl::StrAppend(&task_cells, acc(absl::StrCat(metric, ":", HtmlEscape(report.tasks[t])),
                                         norm ? row.tasks[t].acc_norm : row.tasks[t].acc));
      }
      if (!report.tasks.empty()) {
        absl::StrAppend(&task_cells, acc(metric, norm ? row.macro.acc_norm : row.macro.acc));
      }
    }
    absl::StrAppend(
        &out, "<tr data-runs=\"", HtmlEscape(absl::StrJoin(row.run_ids, " ")), "\">",
        Cell(HtmlEscape(row.variant), "data-col=\"variant\""),
        Cell(HtmlEscape(settings.empty() ? "-" : absl::StrJoin(settings, " "))),
        Cell(absl::StrCat(row.steps), "class=\"num\" data-col=\"steps\""),
        Cell(absl::StrCat(row.n()), "class=\"num\" data-col=\"n\""),
        stat("val_ppl", row.val_ppl, fixed(2)), stat("train_flops", row.train_flops, FormatFlops),
        stat("overhead_pct", row.overhead_pct, fixed(1)),
        stat("tokens_per_s", row.tokens_per_s, fixed(0)), task_cells,
        Cell(HtmlEscape(absl::StrJoin(row.run_ids, " "))), "</tr>");
  }
  absl::StrAppend(&out, "</tbody></table>");
  if (report.rows.empty()) absl::StrAppend(&out, "<p>No run has succeeded yet.</p>");
  absl::StrAppend(&out,
                  "<p class=\"note\">n: seeds; mean ± sample std over seeds (- for one seed); "
                  "overhead: training FLOPs vs vanilla on the same tokens, in percent. Rows are "
                  "the succeeded runs.",
                  report.tasks.empty()
                      ? ""
                      : " acc: zero-shot accuracy in percent of each task's items at the end of "
                        "training (acc_norm: choices scored per byte); avg: the mean over tasks.",
                  "</p>");
  return out;
}

std::string LossFigures(const std::vector<Group>& groups, const ReportTelemetry& telemetry,
                        const HtmlReportOptions& options) {
  std::string out;
  struct Spec {
    const char* id;
    const char* title;
    const char* y_label;
    bool ppl;
    bool x_flops;
  };
  const Spec specs[] = {
      {"loss-step", "Training loss against step", "training loss", false, false},
      {"loss-flops", "Training loss against training FLOPs", "training loss", false, true},
      {"ppl-step", "Validation perplexity against step", "validation perplexity", true, false},
      {"ppl-flops", "Validation perplexity against training FLOPs", "validation perplexity", true,
       true},
  };
  for (const Spec& spec : specs) {
    Chart chart;
    chart.id = spec.id;
    chart.title = spec.title;
    chart.x_label = spec.x_flops ? "training FLOPs" : "step";
    chart.y_label = spec.y_label;
    chart.x_flops = spec.x_flops;
    chart.log_y = spec.ppl;
    for (const Group& group : groups) {
      std::vector<std::vector<std::pair<int64_t, double>>> ys, flops;
      for (const v1::Run* run : group.runs) {
        const RunTrace* trace = TraceOf(telemetry, *run);
        if (trace == nullptr) continue;
        ys.push_back(ByStep(spec.ppl ? trace->val_ppl : trace->loss));
        flops.push_back(ByStep(trace->flops));
      }
      Line line;
      line.name = group.label;
      line.color = group.color;
      line.band = group.runs.size() > 1;
      line.points = Downsample(OverSeeds(ys, flops, spec.x_flops), options.max_points);
      chart.lines.push_back(std::move(line));
    }
    chart.note = "One line per row of Table 1: the mean over its seeds; the band spans the seeds.";
    if (spec.ppl) absl::StrAppend(&chart.note, " Log scale.");
    absl::StrAppend(&out, RenderChart(chart));
  }
  return out;
}

// Ebar(l) or Var(l) per layer over training for one group, the mean over its seeds.
std::string LayerFigures(const std::vector<Group>& groups, const ReportTelemetry& telemetry,
                         const HtmlReportOptions& options) {
  std::string out;
  for (size_t g = 0; g < groups.size(); ++g) {
    const Group& group = groups[g];
    // layer -> per run (step, value) of the mean and of the variance.
    std::map<int, std::vector<std::vector<std::pair<int64_t, double>>>> means, variances;
    std::vector<std::string> signals;
    size_t runs_with_data = 0;
    for (const v1::Run* run : group.runs) {
      const RunTrace* trace = TraceOf(telemetry, *run);
      if (trace == nullptr) continue;
      std::string signal;
      const auto* entropy = EntropyOf(*trace, &signal);
      if (entropy->empty()) continue;
      if (std::find(signals.begin(), signals.end(), signal) == signals.end()) {
        signals.push_back(signal);
      }
      for (const auto& [step, layers] : *entropy) {
        for (size_t l = 0; l < layers.size(); ++l) {
          auto [mean, variance] = MeanAndVariance(layers[l]);
          auto& m = means[static_cast<int>(l)];
          auto& v = variances[static_cast<int>(l)];
          m.resize(runs_with_data + 1);
          v.resize(runs_with_data + 1);
          m[runs_with_data].emplace_back(step, mean);
          v[runs_with_data].emplace_back(step, variance);
        }
      }
      ++runs_with_data;
    }
    const std::string signal_text =
        signals.empty() ? "" : absl::StrCat(absl::StrJoin(signals, " and "), " signal");
    for (int which = 0; which < 2; ++which) {
      Chart chart;
      chart.id = absl::StrCat(which == 0 ? "entropy-" : "variance-", g);
      chart.title = absl::StrCat(which == 0 ? "Mean attention entropy per layer, "
                                            : "Intra-layer variance of head entropy, ",
                                 group.label);
      chart.x_label = "step";
      chart.y_label = which == 0 ? "Ebar(l)" : "Var(l)";
      const auto& source = which == 0 ? means : variances;
      const int layers = source.empty() ? 0 : source.rbegin()->first + 1;
      for (const auto& [layer, per_run] : source) {
        Line line;
        line.name = absl::StrCat("layer ", layer);
        line.color = Viridis(layers > 1 ? 0.9 * layer / (layers - 1) : 0);
        line.points = Downsample(OverSeeds(per_run, {}, false), options.max_points);
        chart.lines.push_back(std::move(line));
      }
      chart.note = absl::StrCat(
          "Base pass (loop 0), ", signal_text.empty() ? "no entropy yet" : signal_text,
          "; the mean over ", runs_with_data, runs_with_data == 1 ? " run" : " runs",
          which == 0 ? ". The paper's Figure 2." : "; population variance over heads. The "
                                                   "paper's Figure 14.");
      absl::StrAppend(&out, RenderChart(chart));
    }
  }
  return out;
}

// Head entropies (layers x heads) at a few steps for one group, the mean over its seeds.
std::string HeatMaps(const std::vector<Group>& groups, const ReportTelemetry& telemetry,
                     const HtmlReportOptions& options) {
  std::string out;
  for (size_t g = 0; g < groups.size(); ++g) {
    struct Acc {
      std::vector<std::vector<double>> sum;
      std::vector<std::vector<int>> n;
    };
    std::map<int64_t, Acc> at;
    for (const v1::Run* run : groups[g].runs) {
      const RunTrace* trace = TraceOf(telemetry, *run);
      if (trace == nullptr) continue;
      std::string signal;
      for (const auto& [step, layers] : *EntropyOf(*trace, &signal)) {
        Acc& a = at[step];
        if (a.sum.size() < layers.size()) {
          a.sum.resize(layers.size());
          a.n.resize(layers.size());
        }
        for (size_t l = 0; l < layers.size(); ++l) {
          if (a.sum[l].size() < layers[l].size()) {
            a.sum[l].resize(layers[l].size());
            a.n[l].resize(layers[l].size());
          }
          for (size_t h = 0; h < layers[l].size(); ++h) {
            if (!std::isfinite(layers[l][h])) continue;
            a.sum[l][h] += layers[l][h];
            ++a.n[l][h];
          }
        }
      }
    }
    std::vector<int64_t> steps;
    for (const auto& [step, a] : at) steps.push_back(step);
    std::vector<int64_t> chosen;
    const int k = std::max(options.heatmap_steps, 1);
    if (static_cast<int>(steps.size()) <= k) {
      chosen = steps;
    } else {
      for (int i = 0; i < k; ++i) {
        int64_t step = steps[k == 1 ? steps.size() - 1 : i * (steps.size() - 1) / (k - 1)];
        if (chosen.empty() || chosen.back() != step) chosen.push_back(step);
      }
    }
    absl::StrAppend(&out, "<figure class=\"fig heat\" data-figure=\"heatmap-", g,
                    "\" data-series=\"", chosen.size(), "\"><figcaption>Head entropy, ",
                    HtmlEscape(groups[g].label), "</figcaption>");
    if (chosen.empty()) {
      absl::StrAppend(&out, "<p class=\"empty\">no entropy yet</p></figure>");
      continue;
    }
    for (int64_t step : chosen) {
      const Acc& a = at[step];
      size_t heads = 0;
      for (const auto& row : a.sum) heads = std::max(heads, row.size());
      const int cell = 18, left = 56, top = 20;
      const int width = left + static_cast<int>(heads) * cell + 8;
      const int height = top + static_cast<int>(a.sum.size()) * cell + 22;
      absl::StrAppend(&out, "<svg class=\"series\" data-series=\"step ", step, "\" data-step=\"",
                      step, "\" viewBox=\"0 0 ", width, " ", height, "\" width=\"", width,
                      "\" height=\"", height, "\" role=\"img\"><text x=\"", left, "\" y=\"14\">step ",
                      step, "</text>");
      // Layer 0 at the bottom, as in the paper's figures.
      for (size_t l = 0; l < a.sum.size(); ++l) {
        const int y = top + static_cast<int>(a.sum.size() - 1 - l) * cell;
        absl::StrAppend(&out, "<text x=\"", left - 4, "\" y=\"", y + 13,
                        "\" text-anchor=\"end\">L", l, "</text>");
        for (size_t h = 0; h < a.sum[l].size(); ++h) {
          double v = a.n[l][h] > 0 ? a.sum[l][h] / a.n[l][h] : kNaN;
          absl::StrAppend(&out, "<rect x=\"", left + static_cast<int>(h) * cell, "\" y=\"", y,
                          "\" width=\"", cell - 1, "\" height=\"", cell - 1, "\" fill=\"",
                          Viridis(v), "\"><title>layer ", l, " head ", h, ": ",
                          std::isfinite(v) ? absl::StrFormat("%.3f", v) : "-", "</title></rect>");
        }
      }
      absl::StrAppend(&out, "<text x=\"", left, "\" y=\"", height - 6, "\">heads 0..",
                      heads == 0 ? 0 : heads - 1, "</text></svg>");
    }
    absl::StrAppend(&out,
                    "<p class=\"note\">Base pass; colour from 0 (dark) to 1 (yellow); the mean "
                    "over the row's runs. Steps: the first, the last and evenly between.</p>"
                    "</figure>");
  }
  return out;
}

std::string JoinInts(const google::protobuf::RepeatedField<int32_t>& v) {
  return absl::StrJoin(v.begin(), v.end(), " ");
}

// When each layer was activated and deepened, its heads, the candidate pool; the fade window.
std::string Timelines(const std::vector<v1::Run>& runs, const ReportTelemetry& telemetry) {
  std::string out;
  for (const v1::Run& run : runs) {
    const RunTrace* trace = TraceOf(telemetry, run);
    std::vector<v1::GrowthDecision> decisions;
    if (trace != nullptr) decisions = trace->decisions;
    std::stable_sort(decisions.begin(), decisions.end(),
                     [](const auto& a, const auto& b) { return a.step() < b.step(); });
    std::optional<RunConfig> config = ConfigOf(run);
    int layers = config.has_value() ? static_cast<int>(config->model.layers) : 0;
    for (const auto& d : decisions) layers = std::max(layers, d.layer() + 1);
    const bool fade = config.has_value() && config->growth.transition == HeadTransition::kFade;
    const int64_t delta_t = config.has_value() ? config->growth.delta_t : 0;
    const int64_t steps = std::max<int64_t>(run.steps(), 1);
    int events = 0;
    for (const auto& d : decisions) events += d.layer() >= 0 ? 1 : 0;

    absl::StrAppend(&out, "<figure class=\"fig timeline\" data-figure=\"timeline-",
                    HtmlEscape(run.id()), "\" data-series=\"", events, "\"><figcaption>",
                    HtmlEscape(run.id()), " ", HtmlEscape(run.name()), " (",
                    HtmlEscape(run.variant()), ", ", RunStateName(run.state()), ", step ",
                    run.step(), " of ", run.steps(), ")</figcaption>");
    if (decisions.empty()) {
      absl::StrAppend(&out, "<p class=\"empty\">no growth decisions",
                      run.variant() == "vanilla" ? " (vanilla does not grow)" : "",
                      "</p></figure>");
      continue;
    }
    const int lane = 16, left = 40, top = 6, w = kWidth - left - kRight;
    const int height = top + layers * lane + 30;
    auto sx = [&](double step) { return left + step / static_cast<double>(steps) * w; };
    auto ly = [&](int l) { return top + (layers - 1 - l) * lane; };
    absl::StrAppend(&out, "<svg viewBox=\"0 0 ", kWidth, " ", height, "\" width=\"", kWidth,
                    "\" height=\"", height, "\" role=\"img\"><g class=\"axis\">");
    for (int l = 0; l < layers; ++l) {
      absl::StrAppend(&out, "<text x=\"", left - 4, "\" y=\"", ly(l) + 12,
                      "\" text-anchor=\"end\">L", l, "</text><line x1=\"", left, "\" x2=\"",
                      left + w, "\" y1=\"", ly(l) + lane - 1, "\" y2=\"", ly(l) + lane - 1,
                      "\"/>");
    }
    for (double t : Ticks(0, static_cast<double>(steps))) {
      absl::StrAppend(&out, "<text x=\"", Px(sx(t)), "\" y=\"", height - 14,
                      "\" text-anchor=\"middle\">", Label(t), "</text>");
    }
    absl::StrAppend(&out, "<text x=\"", left + w / 2, "\" y=\"", height - 2,
                    "\" text-anchor=\"middle\">step</text></g>");
    // Each looping layer's bar from its activation, darker with each deepening.
    std::map<int, std::pair<int64_t, int>> open;  // layer -> (since, k)
    auto close_bar = [&](int layer, int64_t until) {
      auto it = open.find(layer);
      if (it == open.end()) return;
      const auto [since, k] = it->second;
      absl::StrAppend(&out, "<rect class=\"loop\" x=\"", Px(sx(static_cast<double>(since))),
                      "\" y=\"", ly(layer) + 2, "\" width=\"",
                      Px(std::max(1.0, sx(static_cast<double>(until)) -
                                           sx(static_cast<double>(since)))),
                      "\" height=\"", lane - 5, "\" fill-opacity=\"",
                      Px(std::min(1.0, 0.3 + 0.25 * k)), "\"/>");
      open.erase(it);
    };
    for (const auto& d : decisions) {
      if (d.layer() < 0) continue;
      close_bar(d.layer(), d.step());
      open[d.layer()] = {d.step(), d.k()};
      if (fade && d.action() == "activate" && !d.whole_block()) {
        absl::StrAppend(&out, "<rect class=\"fade\" x=\"", Px(sx(static_cast<double>(d.step()))),
                        "\" y=\"", ly(d.layer()), "\" width=\"",
                        Px(std::max(1.0, sx(static_cast<double>(d.step() + delta_t)) -
                                             sx(static_cast<double>(d.step())))),
                        "\" height=\"", lane - 1, "\"><title>fade window, steps ", d.step(),
                        "-", d.step() + delta_t, "</title></rect>");
      }
    }
    std::vector<int> still_open;
    for (const auto& [layer, since] : open) still_open.push_back(layer);
    const int64_t end = IsEnded(run.state()) ? run.steps() : std::max<int64_t>(run.step(), 1);
    for (int layer : still_open) close_bar(layer, end);
    for (const auto& d : decisions) {
      const double x = sx(static_cast<double>(d.step()));
      if (d.layer() < 0) {
        absl::StrAppend(&out, "<line class=\"hold\" x1=\"", Px(x), "\" x2=\"", Px(x), "\" y1=\"",
                        top, "\" y2=\"", top + layers * lane, "\"><title>step ", d.step(), ": ",
                        HtmlEscape(d.action()), "; ", HtmlEscape(d.reason()), "</title></line>");
        continue;
      }
      absl::StrAppend(
          &out, "<g class=\"event\" data-step=\"", d.step(), "\" data-action=\"",
          HtmlEscape(d.action()), "\" data-layer=\"", d.layer(), "\" data-k=\"", d.k(),
          "\"><circle cx=\"", Px(x), "\" cy=\"", ly(d.layer()) + lane / 2 - 1,
          "\" r=\"4\"/><text x=\"", Px(x + 6), "\" y=\"", ly(d.layer()) + 11, "\">K", d.k(),
          d.whole_block() ? " block" : absl::StrCat(" h", JoinInts(d.heads())), "</text><title>step ",
          d.step(), ": ", HtmlEscape(d.action()), " layer ", d.layer(), ", K=", d.k(),
          d.whole_block() ? ", whole block" : absl::StrCat(", heads ", JoinInts(d.heads())),
          "; candidates ", JoinInts(d.candidates()), "</title></g>");
    }
    absl::StrAppend(&out, "</svg>");
    // The decisions as a table, folded.
    absl::StrAppend(&out,
                    "<details><summary>decisions</summary><table class=\"decisions\"><thead><tr>"
                    "<th>step</th><th>action</th><th>layer</th><th>K</th><th>heads</th>"
                    "<th>candidates</th><th>reason</th></tr></thead><tbody>");
    for (const auto& d : decisions) {
      absl::StrAppend(&out, "<tr>", Cell(absl::StrCat(d.step()), "class=\"num\""),
                      Cell(HtmlEscape(d.action())),
                      Cell(d.layer() >= 0 ? absl::StrCat(d.layer()) : "-", "class=\"num\""),
                      Cell(absl::StrCat(d.k()), "class=\"num\""),
                      Cell(d.whole_block() ? "all (block)" : JoinInts(d.heads())),
                      Cell(JoinInts(d.candidates())), Cell(HtmlEscape(d.reason())), "</tr>");
    }
    absl::StrAppend(&out, "</tbody></table></details>");
    if (fade) {
      absl::StrAppend(&out, "<p class=\"note\">Hatched: the fade window (", delta_t,
                      " steps) after each activation, while all heads still loop.</p>");
    }
    absl::StrAppend(&out, "</figure>");
  }
  return out;
}

std::string RunsTable(const std::vector<v1::Run>& runs) {
  std::string out =
      "<table id=\"runs\"><thead><tr><th>run</th><th>name</th><th>variant</th><th>state</th>"
      "<th>step</th><th>planned train FLOPs</th><th>measured</th><th>measured / planned</th>"
      "<th>reason</th></tr></thead><tbody>";
  for (const v1::Run& run : runs) {
    std::optional<RunConfig> config = ConfigOf(run);
    double planned = config.has_value() ? PlanFlops(*config).train_flops : 0;
    double measured = run.metrics().train_flops();
    absl::StrAppend(
        &out, "<tr data-run=\"", HtmlEscape(run.id()), "\" data-state=\"",
        RunStateName(run.state()), "\">", Cell(HtmlEscape(run.id())), Cell(HtmlEscape(run.name())),
        Cell(HtmlEscape(run.variant())), Cell(RunStateName(run.state())),
        Cell(StepOfSteps(run), "class=\"num\""),
        Cell(planned > 0 ? FormatFlops(planned) : "-",
             absl::StrCat("class=\"num\" data-planned=\"", ShortestDouble(planned), "\"")),
        Cell(measured > 0 ? FormatFlops(measured) : "-",
             absl::StrCat("class=\"num\" data-measured=\"", ShortestDouble(measured), "\"")),
        Cell(planned > 0 && measured > 0 ? absl::StrFormat("%.4f", measured / planned) : "-",
             "class=\"num\""),
        Cell(HtmlEscape(run.reason())), "</tr>");
  }
  absl::StrAppend(&out,
                  "</tbody></table><p class=\"note\">Planned: the FLOPs count of the run's "
                  "configuration (sgtctl plan); measured: what the run reported "
                  "(metrics.train_flops), so far for a run still going.</p>");
  return out;
}

std::string NotSucceeded(const std::vector<v1::Run>& runs) {
  std::string rows;
  int n = 0;
  for (const v1::Run& run : runs) {
    v1::RunState s = run.state();
    if (s != v1::RUN_STATE_FAILED && s != v1::RUN_STATE_CANCELLED && s != v1::RUN_STATE_LOST) {
      continue;
    }
    ++n;
    absl::StrAppend(&rows, "<tr data-run=\"", HtmlEscape(run.id()), "\">",
                    Cell(HtmlEscape(run.id())), Cell(HtmlEscape(run.name())),
                    Cell(RunStateName(s)), Cell(StepOfSteps(run), "class=\"num\""),
                    Cell(HtmlEscape(Dash(run.reason()))), "</tr>");
  }
  if (n == 0) return "<p id=\"failed\">No run failed, was lost or was cancelled.</p>";
  return absl::StrCat(
      "<table id=\"failed\"><thead><tr><th>run</th><th>name</th><th>state</th><th>step</th>"
      "<th>reason</th></tr></thead><tbody>",
      rows, "</tbody></table>");
}

constexpr char kStyle[] = R"css(
body{font:14px/1.4 system-ui,sans-serif;margin:24px auto;max-width:1290px;color:#222;padding:0 12px}
h1{font-size:22px}h2{font-size:18px;margin-top:32px;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:8px 0}td,th{padding:3px 8px;border-bottom:1px solid #eee;text-align:left}
td.num{text-align:right;font-variant-numeric:tabular-nums}th{background:#f6f6f6}
.figs{display:flex;flex-wrap:wrap;gap:12px}.fig{margin:0;border:1px solid #eee;padding:6px}
figcaption{font-weight:600;margin-bottom:4px}.note{color:#666;font-size:12px;max-width:600px}
svg text{font-size:11px;fill:#333}.axis line{stroke:#e5e5e5}.frame{fill:none;stroke:#999}
.line{fill:none;stroke-width:1.6}.band{opacity:.18;stroke:none}
.legend{list-style:none;padding:0;margin:4px 0;display:flex;flex-wrap:wrap;gap:4px 12px;max-width:600px}
.legend li{cursor:pointer;font-size:12px}.legend li.off,.series.off{opacity:.12}
.swatch{display:inline-block;width:12px;height:3px;margin-right:4px;vertical-align:middle}
.loop{fill:#4e79a7}.fade{fill:url(#hatch);stroke:#f28e2b}.event circle{fill:#e15759}
.hold{stroke:#bbb;stroke-dasharray:2 2}.heat svg{margin-right:8px}pre{background:#f6f6f6;padding:8px;overflow:auto}
)css";

// Toggles a figure's series from its legend. Optional: the page says everything without it.
constexpr char kScript[] = R"js(
(function () {
  document.querySelectorAll('.legend li').forEach(function (li) {
    li.addEventListener('click', function () {
      var name = li.getAttribute('data-series');
      li.classList.toggle('off');
      li.closest('figure').querySelectorAll('g.series').forEach(function (g) {
        if (g.getAttribute('data-series') === name) g.classList.toggle('off');
      });
    });
  });
  document.documentElement.setAttribute('data-script', 'ran');
})();
)js";

}  // namespace

std::string HtmlEscape(const std::string& text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&#39;"; break;
      default: out += c;
    }
  }
  return out;
}

void ReportTelemetry::Add(const v1::TelemetryPage& page) {
  RunTrace& trace = runs_[page.run_id()];
  for (const v1::ScalarRow& row : page.scalars()) {
    ++rows_;
    if (row.name() == "loss") {
      trace.loss.emplace_back(row.step(), row.value());
    } else if (row.name() == "flops") {
      trace.flops.emplace_back(row.step(), row.value());
    } else if (row.name() == "val_ppl") {
      trace.val_ppl.emplace_back(row.step(), row.value());
    }
  }
  for (const v1::EntropyRow& row : page.entropy()) {
    ++rows_;
    if (row.loop() != 0 || row.layer() < 0 || row.head() < 0 || row.layer() >= kMaxLayers ||
        row.head() >= kMaxHeads) {
      continue;
    }
    auto& by_step = row.signal() == v1::ENTROPY_SIGNAL_PROBE ? trace.probe_entropy
                                                              : trace.train_entropy;
    auto& layers = by_step[row.step()];
    if (layers.size() <= static_cast<size_t>(row.layer())) layers.resize(row.layer() + 1);
    auto& heads = layers[row.layer()];
    if (heads.size() <= static_cast<size_t>(row.head())) {
      heads.resize(row.head() + 1, std::numeric_limits<float>::quiet_NaN());
    }
    heads[row.head()] = row.value();
  }
  for (const v1::GrowthDecision& decision : page.decisions()) {
    ++rows_;
    trace.decisions.push_back(decision);
  }
}

const RunTrace* ReportTelemetry::Find(const std::string& run_id) const {
  auto it = runs_.find(run_id);
  return it == runs_.end() ? nullptr : &it->second;
}

std::string RenderReportHtml(const v1::Sweep& sweep, const std::vector<v1::Run>& runs,
                             const ReportTelemetry& telemetry, const std::string& target,
                             const HtmlReportOptions& options) {
  const Report report = BuildReport(sweep, runs);
  const std::vector<Group> groups = GroupRuns(runs);
  int going = 0;
  for (const v1::Run& run : runs) going += IsEnded(run.state()) ? 0 : 1;
  const bool is_run = runs.size() == 1 && target == runs.front().id();
  const std::string title =
      is_run ? absl::StrCat("SGT report: run ", target, " ", runs.front().name())
             : absl::StrCat("SGT report: sweep ", sweep.id(), " ", sweep.name());

  std::string out = absl::StrCat(
      "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
      "<meta name=\"viewport\" content=\"width=device-width\">"
      "<link rel=\"icon\" href=\"data:,\"><title>",
      HtmlEscape(title), "</title><style>", kStyle, "</style></head><body>",
      "<svg width=\"0\" height=\"0\" style=\"position:absolute\"><defs><pattern id=\"hatch\" "
      "width=\"6\" height=\"6\" patternUnits=\"userSpaceOnUse\" patternTransform=\"rotate(45)\">"
      "<rect width=\"3\" height=\"6\" fill=\"#f28e2b\" fill-opacity=\".5\"/></pattern></defs>"
      "</svg><h1>",
      HtmlEscape(title), "</h1><p>", runs.size(), runs.size() == 1 ? " run" : " runs", " (",
      HtmlEscape(StateCounts(runs)), ")");
  if (!options.generated.empty()) {
    absl::StrAppend(&out, "; made ", HtmlEscape(options.generated));
  }
  absl::StrAppend(&out, ".</p>");
  if (going > 0) {
    absl::StrAppend(&out, "<p class=\"snapshot\"><b>Snapshot:</b> ", going,
                    going == 1 ? " run is" : " runs are",
                    " still going; their lines end at the newest step stored.</p>");
  }
  absl::StrAppend(&out, "<nav>", "<a href=\"#t1\">Table 1</a> · <a href=\"#loss\">loss</a> · ",
                  "<a href=\"#layers\">entropy and variance per layer</a> · ",
                  "<a href=\"#heat\">head entropy</a> · <a href=\"#growth\">growth</a> · ",
                  "<a href=\"#settings\">settings and FLOPs</a> · <a href=\"#fail\">failed</a>",
                  "</nav>");
  absl::StrAppend(&out, "<h2 id=\"t1\">Table 1</h2>", TableOne(report));
  absl::StrAppend(&out, "<h2 id=\"loss\">Loss and perplexity</h2><div class=\"figs\">",
                  LossFigures(groups, telemetry, options), "</div>");
  absl::StrAppend(&out,
                  "<h2 id=\"layers\">Entropy and intra-layer variance per layer</h2>"
                  "<div class=\"figs\">",
                  LayerFigures(groups, telemetry, options), "</div>");
  absl::StrAppend(&out, "<h2 id=\"heat\">Head entropy</h2><div class=\"figs\">",
                  HeatMaps(groups, telemetry, options), "</div>");
  absl::StrAppend(&out,
                  "<h2 id=\"growth\">Growth</h2><p class=\"note\">Per run: a bar from each "
                  "layer's activation, darker as it deepens; dots are decisions (K, heads), "
                  "dashed lines the boundaries where nothing grew. Hover for the candidate "
                  "pool.</p><div class=\"figs\">",
                  Timelines(runs, telemetry), "</div>");
  absl::StrAppend(&out, "<h2 id=\"settings\">Settings and FLOPs</h2>", RunsTable(runs));
  if (!sweep.source_yaml().empty()) {
    absl::StrAppend(&out, "<details open><summary>the sweep file",
                    sweep.source_name().empty() ? "" : absl::StrCat(" (", HtmlEscape(sweep.source_name()), ")"),
                    "</summary><pre id=\"sweep-yaml\">", HtmlEscape(sweep.source_yaml()),
                    "</pre></details>");
  }
  absl::StrAppend(&out, "<h2 id=\"fail\">Runs that did not succeed</h2>", NotSucceeded(runs));
  absl::StrAppend(&out, "<script>", kScript, "</script></body></html>\n");
  return out;
}

}  // namespace sgt::cli
