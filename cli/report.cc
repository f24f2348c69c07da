// `sgtctl report`: Table 1 of a sweep.
#include "cli/report.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "cli/format.h"
#include "nlohmann/json.hpp"

namespace sgt::cli {

namespace {

using Json = nlohmann::ordered_json;

constexpr char kSeedKey[] = "train.seed";
constexpr char kVariantKey[] = "variant";

// train.seed from the grid values, else from the effective configuration.
std::string SeedOf(const v1::Run& run) {
  for (const v1::Setting& setting : run.settings()) {
    if (setting.key() == kSeedKey) return setting.value();
  }
  Json config = Json::parse(run.config_json(), nullptr, /*allow_exceptions=*/false);
  if (config.is_object() && config.contains("train") && config["train"].is_object() &&
      config["train"].contains("seed")) {
    const Json& seed = config["train"]["seed"];
    return seed.is_string() ? seed.get<std::string>() : seed.dump();
  }
  return "";
}

// Everything that must be equal for two runs to be seeds of one row. Settings are sorted by key
// so that a run whose grid values came in another order (a fork) still matches.
std::string GroupKey(const v1::Run& run,
                     const std::vector<std::pair<std::string, std::string>>& settings) {
  std::vector<std::pair<std::string, std::string>> sorted = settings;
  std::sort(sorted.begin(), sorted.end());
  std::string key = absl::StrCat(run.variant(), "\x1f", run.steps());
  for (const auto& [k, v] : sorted) absl::StrAppend(&key, "\x1f", k, "\x1e", v);
  return key;
}

Json StatJson(const SeedStat& stat) {
  Json out = Json::object();
  out["mean"] = stat.mean;
  out["std"] = stat.std.has_value() ? Json(*stat.std) : Json(nullptr);
  return out;
}

std::string WithStd(const std::string& mean, const std::optional<std::string>& spread) {
  return absl::StrCat(mean, " ± ", spread.value_or("-"));
}

}  // namespace

SeedStat Summarize(const std::vector<double>& values) {
  SeedStat stat;
  if (values.empty()) return stat;
  double sum = 0;
  for (double v : values) sum += v;
  stat.mean = sum / static_cast<double>(values.size());
  if (values.size() >= 2) {
    double squares = 0;
    for (double v : values) squares += (v - stat.mean) * (v - stat.mean);
    stat.std = std::sqrt(squares / static_cast<double>(values.size() - 1));
  }
  return stat;
}

std::vector<std::pair<std::string, std::string>> RowSettings(const v1::Run& run) {
  std::vector<std::pair<std::string, std::string>> settings;
  for (const v1::Setting& setting : run.settings()) {
    if (setting.key() == kSeedKey || setting.key() == kVariantKey) continue;
    settings.emplace_back(setting.key(), setting.value());
  }
  // A fork is not another seed of its parent's setting: it is its own row.
  if (!run.parent_run_id().empty()) {
    settings.emplace_back("fork", absl::StrCat(run.parent_run_id(), "@", run.parent_step()));
  }
  return settings;
}

std::string RowKey(const v1::Run& run) { return GroupKey(run, RowSettings(run)); }

Report BuildReport(const v1::Sweep& sweep, const std::vector<v1::Run>& runs) {
  Report report;
  report.sweep_id = sweep.id();
  report.sweep_name = sweep.name();
  report.runs = static_cast<int64_t>(runs.size());

  struct Samples {
    std::vector<double> val_ppl, train_flops, overhead_pct, tokens_per_s;
    std::map<std::string, std::vector<double>> acc, acc_norm;  // task ("" : macro) -> values
  };
  std::set<std::string> tasks;
  std::map<std::string, size_t> row_of_key;
  std::vector<Samples> samples;
  std::map<v1::RunState, std::vector<std::string>> left_out;

  for (const v1::Run& run : runs) {
    if (run.state() != v1::RUN_STATE_SUCCEEDED) {
      left_out[run.state()].push_back(run.id());
      continue;
    }
    std::vector<std::pair<std::string, std::string>> settings = RowSettings(run);
    auto [it, inserted] = row_of_key.emplace(GroupKey(run, settings), report.rows.size());
    if (inserted) {
      ReportRow row;
      row.variant = run.variant();
      row.settings = settings;
      row.steps = run.steps();
      report.rows.push_back(std::move(row));
      samples.emplace_back();
    }
    ReportRow& row = report.rows[it->second];
    Samples& s = samples[it->second];
    row.run_ids.push_back(run.id());
    row.seeds.push_back(SeedOf(run));
    // 0 is "not reported" (proto3 has no presence for doubles): such a run adds nothing to that
    // column rather than a zero. An overhead counts only beside its FLOPs.
    const v1::RunMetrics& m = run.metrics();
    if (m.val_ppl() > 0) s.val_ppl.push_back(m.val_ppl());
    if (m.train_flops() > 0) {
      s.train_flops.push_back(m.train_flops());
      s.overhead_pct.push_back(m.overhead() * 100);
    }
    if (m.tokens_per_s() > 0) s.tokens_per_s.push_back(m.tokens_per_s());
    // An accuracy of 0 is a score: presence is the task's entry. A non-finite one (a task of no
    // items) adds nothing.
    bool scored = false;
    for (const v1::TaskAccuracy& t : m.tasks()) {
      if (!t.group().empty()) continue;
      scored = true;
      tasks.insert(t.task());
      if (std::isfinite(t.acc())) s.acc[t.task()].push_back(t.acc());
      if (std::isfinite(t.acc_norm())) s.acc_norm[t.task()].push_back(t.acc_norm());
    }
    if (scored) {
      if (std::isfinite(m.acc())) s.acc[""].push_back(m.acc());
      if (std::isfinite(m.acc_norm())) s.acc_norm[""].push_back(m.acc_norm());
    }
  }
  report.tasks.assign(tasks.begin(), tasks.end());
  const auto task_stat = [](const Samples& s, const std::string& task) {
    TaskStat t;
    if (auto it = s.acc.find(task); it != s.acc.end()) t.acc = Summarize(it->second);
    if (auto it = s.acc_norm.find(task); it != s.acc_norm.end()) {
      t.acc_norm = Summarize(it->second);
    }
    return t;
  };
  for (size_t i = 0; i < report.rows.size(); ++i) {
    report.rows[i].val_ppl = Summarize(samples[i].val_ppl);
    report.rows[i].train_flops = Summarize(samples[i].train_flops);
    report.rows[i].overhead_pct = Summarize(samples[i].overhead_pct);
    report.rows[i].tokens_per_s = Summarize(samples[i].tokens_per_s);
    for (const std::string& task : report.tasks) {
      report.rows[i].tasks.push_back(task_stat(samples[i], task));
    }
    report.rows[i].macro = task_stat(samples[i], "");
  }
  for (auto& [state, ids] : left_out) report.not_succeeded.push_back({state, std::move(ids)});
  return report;
}

std::string RenderReportTable(const Report& report, const ReportTableOptions& options) {
  using Align = Table::Align;
  std::vector<std::string> headers = {"VARIANT",  "SETTINGS",    "STEPS",    "N",
                                      "VAL PPL",  "TRAIN FLOPS", "OVERHEAD", "TOKENS/S"};
  std::vector<Align> aligns = {Align::kLeft,  Align::kLeft,  Align::kRight, Align::kRight,
                               Align::kRight, Align::kRight, Align::kRight, Align::kRight};
  const bool accuracies = !report.tasks.empty();
  if (accuracies) {
    for (const bool norm : {false, true}) {
      if (norm && !options.acc_norm) continue;
      const char* metric = norm ? "ACC_NORM" : "ACC";
      for (const std::string& task : report.tasks) {
        headers.push_back(absl::StrCat(metric, " ", task));
      }
      headers.push_back(absl::StrCat(metric, " AVG"));
      aligns.insert(aligns.end(), report.tasks.size() + 1, Align::kRight);
    }
  }
  Table table(headers, aligns);
  auto fixed = [](int decimals) {
    return [decimals](double v) { return absl::StrFormat("%.*f", decimals, v); };
  };
  auto cell = [](const SeedStat& stat, auto format) {
    std::optional<std::string> spread;
    if (stat.std.has_value()) spread = format(*stat.std);
    return WithStd(format(stat.mean), spread);
  };
  // An accuracy in percent, one decimal; "-" when no run of the row was scored on it.
  auto acc_cell = [&cell](const std::optional<SeedStat>& stat) {
    if (!stat.has_value()) return std::string("-");
    return cell(*stat, [](double v) { return absl::StrFormat("%.1f", v * 100); });
  };
  for (const ReportRow& row : report.rows) {
    std::vector<std::string> settings;
    for (const auto& [key, value] : row.settings) settings.push_back(absl::StrCat(key, "=", value));
    std::string overhead = FormatPercent(row.overhead_pct.mean / 100);
    std::optional<std::string> overhead_std;
    if (row.overhead_pct.std.has_value()) {
      overhead_std = absl::StrFormat("%.1f", *row.overhead_pct.std);
    }
    std::vector<std::string> cells = {
        row.variant, settings.empty() ? "-" : absl::StrJoin(settings, " "),
        absl::StrCat(row.steps), absl::StrCat(row.n()), cell(row.val_ppl, fixed(2)),
        cell(row.train_flops, FormatFlops), WithStd(overhead, overhead_std),
        cell(row.tokens_per_s, fixed(0))};
    if (accuracies) {
      for (const bool norm : {false, true}) {
        if (norm && !options.acc_norm) continue;
        for (const TaskStat& t : row.tasks) cells.push_back(acc_cell(norm ? t.acc_norm : t.acc));
        cells.push_back(acc_cell(norm ? row.macro.acc_norm : row.macro.acc));
      }
    }
    table.AddRow(cells);
  }

  int64_t succeeded = 0;
  for (const ReportRow& row : report.rows) succeeded += row.n();
  std::string out = absl::StrFormat("Table 1: sweep %s \"%s\", %d of %d runs succeeded\n",
                                    report.sweep_id, report.sweep_name, succeeded, report.runs);
  if (report.rows.empty()) {
    absl::StrAppend(&out, "no succeeded runs yet\n");
  } else {
    absl::StrAppend(&out, table.Render(),
                    "N: seeds; mean ± sample std over seeds (- for one seed); overhead: training "
                    "FLOPs vs vanilla on the same tokens\n");
    if (accuracies) {
      absl::StrAppend(&out, "ACC: zero-shot accuracy in % of each task's items at the end of "
                            "training; AVG: the mean over tasks",
                      options.acc_norm ? "; ACC_NORM: choices scored per byte" : "", "\n");
    }
  }
  if (!report.not_succeeded.empty()) {
    std::vector<std::string> parts;
    for (const StateRuns& group : report.not_succeeded) {
      parts.push_back(absl::StrCat(group.run_ids.size(), " ", RunStateName(group.state), " (",
                                   absl::StrJoin(group.run_ids, ", "), ")"));
    }
    absl::StrAppend(&out, "not in the table: ", absl::StrJoin(parts, ", "), "\n");
  }
  return out;
}

std::string ReportJson(const Report& report) {
  Json out = Json::object();
  out["sweep"] = {{"id", report.sweep_id}, {"name", report.sweep_name}};
  out["runs"] = report.runs;
  if (!report.tasks.empty()) out["tasks"] = report.tasks;
  Json rows = Json::array();
  for (const ReportRow& row : report.rows) {
    Json settings = Json::object();
    for (const auto& [key, value] : row.settings) settings[key] = value;
    Json item = Json::object();
    item["variant"] = row.variant;
    item["settings"] = settings;
    item["steps"] = row.steps;
    item["n"] = row.n();
    item["runs"] = row.run_ids;
    item["seeds"] = row.seeds;
    item["val_ppl"] = StatJson(row.val_ppl);
    item["train_flops"] = StatJson(row.train_flops);
    item["overhead_pct"] = StatJson(row.overhead_pct);
    item["tokens_per_s"] = StatJson(row.tokens_per_s);
    if (!report.tasks.empty()) {
      const auto optional_stat = [](const std::optional<SeedStat>& s) {
        return s.has_value() ? StatJson(*s) : Json(nullptr);
      };
      Json tasks = Json::object();
      for (size_t t = 0; t < report.tasks.size(); ++t) {
        tasks[report.tasks[t]] = {{"acc", optional_stat(row.tasks[t].acc)},
                                  {"acc_norm", optional_stat(row.tasks[t].acc_norm)}};
      }
      item["tasks"] = tasks;
      item["acc"] = optional_stat(row.macro.acc);
      item["acc_norm"] = optional_stat(row.macro.acc_norm);
    }
    rows.push_back(item);
  }
  out["rows"] = rows;
  Json left_out = Json::array();
  for (const StateRuns& group : report.not_succeeded) {
    left_out.push_back({{"state", RunStateName(group.state)},
                        {"count", group.run_ids.size()},
                        {"runs", group.run_ids}});
  }
  out["not_succeeded"] = left_out;
  return out.dump(2, ' ', false, Json::error_handler_t::replace) + "\n";
}

}  // namespace sgt::cli
