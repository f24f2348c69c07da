// Sweep files (docs/sweep.md): one base run configuration, a grid over dotted keys, exclusions
// and scheduling settings, expanded into the runs a coordinator schedules.
//
// Torch-free and network-free: sgtctl uses it to plan a sweep offline, the coordinator to
// validate and expand a submitted one. Every error names file:line:column, the key and the fix;
// a sweep either expands completely or not at all.
//
//   absl::StatusOr<SweepSpec> spec = LoadSweep("examples/quickstart.yaml");
//   for (const SweepRun& run : spec->runs) Schedule(run.config, run.canonical_json);
#ifndef SGT_SERVICES_COMMON_SWEEP_H_
#define SGT_SERVICES_COMMON_SWEEP_H_

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "libsgt/core/config.h"
#include "libsgt/core/flops.h"

namespace sgt {

// One axis of the grid: a dotted configuration key and its values, as YAML text ("2",
// "block_loop", "[1, 2]"); or a named axis ("scale", "method"), whose values are labels, each
// setting several keys at once (sets[i] for values[i]: dotted key, YAML text).
struct GridAxis {
  std::string key;
  std::vector<std::string> values;
  std::string location;  // "line:col" of the key in the sweep file
  std::vector<std::vector<std::pair<std::string, std::string>>> sets;  // named axes only
  bool named() const { return !sets.empty(); }
};

// One run of an expanded sweep.
struct SweepRun {
  RunConfig config;            // validated; config.name is the run's name
  std::string canonical_json;  // CanonicalJson(config)
  std::string config_hash;     // sha256 hex of canonical_json
  // The grid values of the first combination that produced this run, in grid order.
  std::vector<std::pair<std::string, std::string>> settings;
  // Every combination that produced it (more than one when settings the variant ignores
  // differ, e.g. growth.k_max for vanilla): "variant=vanilla,growth.k_max=2".
  std::vector<std::string> combinations;
};

struct SweepSpec {
  std::string name;
  std::string source;  // file name used in messages
  std::string description;
  int32_t priority = 50;       // 0..1000, higher first
  int32_t max_concurrent = 0;  // runs of this sweep at once; 0 = no limit
  int32_t max_restarts = 3;    // re-queues after a lost worker, per run
  int32_t devices = 1;         // devices each run needs on each of its nodes (one rank each)
  int32_t nodes = 1;           // workers each run spans (gang-scheduled); ranks = devices x nodes
  RunConfig base;              // the base section, not validated alone
  std::vector<GridAxis> grid;
  std::vector<std::vector<std::pair<std::string, std::string>>> exclude;
  int64_t combinations = 0;    // product of the axis sizes
  int64_t excluded = 0;        // combinations an exclude entry removed
  int64_t merged = 0;          // combinations identical to an earlier run
  std::vector<SweepRun> runs;  // distinct runs, in grid order (last axis fastest)
};

// Parses, validates and expands a sweep. `source` names the file in errors. Fails on: malformed
// YAML, unknown keys (with the nearest known key), a missing name or base, out-of-range
// settings, grid keys that are not configuration keys or sections, empty or duplicate axis
// values, exclude entries naming keys or values not in the grid, more than kMaxSweepRuns runs,
// train.batch_size not divisible by the ranks (devices x nodes), and any combination whose
// configuration is invalid (the error names that combination and
// points at the grid value or base key to fix).
absl::StatusOr<SweepSpec> ParseSweep(const std::string& yaml_text, const std::string& source);
absl::StatusOr<SweepSpec> LoadSweep(const std::string& path);

inline constexpr int64_t kMaxSweepRuns = 10000;

// The libsgt planner over every run: one JSON object
// {"sweep": name, "runs": [{"name", "settings": {key: value}, "variant", "config": {canonical},
//   "plan": {FlopsPlanToJson}}], "combinations", "excluded", "merged", "devices", "nodes",
//   "ranks"}.
std::string PlanSweepJson(const SweepSpec& spec);
// The same as an aligned text table: run name, variant, steps, train FLOPs, overhead vs vanilla;
// its last lines give the totals and what each run asks for (PlanResources).
std::string PlanSweepTable(const SweepSpec& spec);
// What each run of the sweep asks of the workers: "2 devices x 3 nodes = 6 ranks".
std::string PlanResources(const SweepSpec& spec);

}  // namespace sgt

#endif  // SGT_SERVICES_COMMON_SWEEP_H_
