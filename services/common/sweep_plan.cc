// The plan of an expanded sweep (sgtctl plan): each run's training
// FLOPs against vanilla and the resources each run asks for (devices x nodes = ranks), as a table
// for people and as JSON, without training anything (docs/sweep.md, "Checking a sweep offline").
#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "libsgt/core/flops.h"
#include "nlohmann/json.hpp"
#include "services/common/sweep.h"

namespace sgt {

std::string PlanResources(const SweepSpec& spec) {
  const int64_t ranks = int64_t{spec.devices} * spec.nodes;
  return absl::StrCat(spec.devices, spec.devices == 1 ? " device" : " devices", " x ", spec.nodes,
                      spec.nodes == 1 ? " node" : " nodes", " = ", ranks,
                      ranks == 1 ? " rank" : " ranks");
}

std::string PlanSweepJson(const SweepSpec& spec) {
  using Json = nlohmann::ordered_json;
  // Both texts come from nlohmann; a string stands in should either not parse.
  auto parsed = [](const std::string& text) {
    Json j = Json::parse(text, nullptr, false);
    return j.is_discarded() ? Json(text) : j;
  };
  Json runs = Json::array();
  for (const SweepRun& run : spec.runs) {
    Json settings = Json::object();
    for (const auto& [key, value] : run.settings) settings[key] = value;
    const FlopsPlan plan = PlanFlops(run.config);
    Json r = Json::object();
    r["name"] = run.config.name;
    r["settings"] = std::move(settings);
    r["combinations"] = run.combinations;
    r["variant"] = VariantName(run.config.variant);
    r["config_hash"] = run.config_hash;
    r["config"] = parsed(run.canonical_json);
    r["plan"] = parsed(FlopsPlanToJson(run.config, plan));
    runs.push_back(std::move(r));
  }
  Json j = Json::object();
  j["sweep"] = spec.name;
  j["runs"] = std::move(runs);
  j["combinations"] = spec.combinations;
  j["excluded"] = spec.excluded;
  j["merged"] = spec.merged;
  // What each run asks of the workers: `devices` on each of `nodes` workers, one rank a device.
  j["devices"] = spec.devices;
  j["nodes"] = spec.nodes;
  j["ranks"] = int64_t{spec.devices} * spec.nodes;
  return j.dump(-1, ' ', false, Json::error_handler_t::replace);
}

std::string PlanSweepTable(const SweepSpec& spec) {
  const std::vector<std::string> header = {"RUN", "VARIANT", "STEPS", "TRAIN FLOPS", "VS VANILLA"};
  std::vector<std::vector<std::string>> rows;
  double total = 0;
  bool any_sgt = false;
  for (const SweepRun& run : spec.runs) {
    const FlopsPlan plan = PlanFlops(run.config);
    total += plan.train_flops;
    any_sgt = any_sgt || run.config.variant == Variant::kSgt;
    std::string name = run.config.name;
    if (run.combinations.size() > 1) {
      name += absl::StrCat(" (+", run.combinations.size() - 1, " merged)");
    }
    rows.push_back({name, VariantName(run.config.variant), absl::StrCat(run.config.train.steps),
                    absl::StrFormat("%.3e", plan.train_flops),
                    absl::StrFormat("%+.1f%%", 100.0 * plan.overhead_vs_vanilla)});
  }
  std::vector<size_t> width(header.size());
  for (size_t c = 0; c < header.size(); ++c) {
    width[c] = header[c].size();
    for (const auto& row : rows) width[c] = std::max(width[c], row[c].size());
  }
  // Text columns left-aligned, numbers right-aligned.
  auto line = [&](const std::vector<std::string>& cells) {
    std::string out;
    for (size_t c = 0; c < cells.size(); ++c) {
      const std::string pad(width[c] - cells[c].size(), ' ');
      if (c > 0) out += "  ";
      out += c < 2 ? cells[c] + (c + 1 < cells.size() ? pad : "") : pad + cells[c];
    }
    return out + "\n";
  };
  std::string out = line(header);
  for (const auto& row : rows) out += line(row);
  out += absl::StrFormat(
      "%d run%s from %d combination%s (%d excluded, %d merged), each on %s; %.3e training FLOPs "
      "in all\n",
      spec.runs.size(), spec.runs.size() == 1 ? "" : "s", spec.combinations,
      spec.combinations == 1 ? "" : "s", spec.excluded, spec.merged, PlanResources(spec), total);
  if (any_sgt) {
    out += "SGT overheads assume every growth boundary acts: an upper bound.\n";
  }
  return out;
}

}  // namespace sgt
