// Tests for sweep files (services/common/sweep.h): grid expansion, exclusion, merging of
// identical runs, run names, every class of error with its file:line:col and key, and the
// planner output against libsgt's PlanFlops.
#include "services/common/sweep.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "libsgt/core/sha256.h"

namespace sgt {
namespace {

namespace fs = std::filesystem;

testing::AssertionResult Contains(const std::string& message, const std::string& piece) {
  if (message.find(piece) != std::string::npos) return testing::AssertionSuccess();
  return testing::AssertionFailure() << "\n  message: " << message << "\n  lacks:   " << piece;
}

// "<line>:<col>" (1-based) of the first occurrence of `needle` in `text`, plus `skip` characters:
// where an error about that spot must point.
std::string Pos(const std::string& text, const std::string& needle, size_t skip = 0) {
  size_t at = text.find(needle);
  EXPECT_NE(at, std::string::npos) << needle;
  if (at == std::string::npos) return "?";
  at += skip;
  size_t line_start = text.rfind('\n', at == 0 ? 0 : at - 1);
  line_start = line_start == std::string::npos || at == 0 ? 0 : line_start + 1;
  int64_t line = std::count(text.begin(), text.begin() + static_cast<int64_t>(at), '\n') + 1;
  return std::to_string(line) + ":" + std::to_string(at - line_start + 1);
}

std::string ErrorOf(const std::string& text, const std::string& source = "s.yaml") {
  absl::StatusOr<SweepSpec> spec = ParseSweep(text, source);
  EXPECT_FALSE(spec.ok()) << "expected an error for:\n" << text;
  if (spec.ok()) return "";
  EXPECT_EQ(spec.status().code(), absl::StatusCode::kInvalidArgument);
  return std::string(spec.status().message());
}

// The error names the file:line:col and the key, and has "problem; allowed; fix" after them.
void ExpectErrorAt(const std::string& text, const std::string& where, const std::string& key,
                   const std::string& piece = "") {
  const std::string message = ErrorOf(text);
  EXPECT_TRUE(Contains(message, "s.yaml:" + where + ": " + key + ": ")) << text;
  if (!piece.empty()) {
    EXPECT_TRUE(Contains(message, piece));
  }
  size_t first = message.find("; ");
  ASSERT_NE(first, std::string::npos) << message;
  EXPECT_NE(message.find("; ", first + 2), std::string::npos) << message;
}

SweepSpec Parsed(const std::string& text) {
  absl::StatusOr<SweepSpec> spec = ParseSweep(text, "s.yaml");
  EXPECT_TRUE(spec.ok()) << spec.status();
  return spec.ok() ? *spec : SweepSpec{};
}

const SweepRun* FindRun(const SweepSpec& spec, const std::string& name) {
  for (const SweepRun& run : spec.runs) {
    if (run.config.name == name) return &run;
  }
  return nullptr;
}

// The tiny scale of examples/tiny-sgt.yaml.
constexpr char kBase[] = R"(base:
  variant: sgt
  data: {train: data/brown/train.u16, validation: data/brown/val.u16}
  model: {layers: 4, d_model: 128, heads: 4, d_ff: 512, context: 128, vocab_size: 4096}
  train: {steps: 300, batch_size: 16, micro_batch_size: 16, warmup_steps: 30, seed: 1}
  growth: {t_start: 50, delta_t: 50, layers: 2, k_max: 1, heads: 1}
)";

// The issue's example.
const std::string kIssue = std::string("name: seeds\n") + kBase + R"(grid:
  variant: [vanilla, block_loop, sgt]
  growth.k_max: [1, 2]
  train.seed: [1, 2, 3]
exclude: [{variant: vanilla, growth.k_max: 2}]
priority: 50
max_concurrent: 4
)";

// ---------------------------------------------------------------------------------------------
// Expansion.

TEST(SweepExpandTest, IssueExampleExpandsToFifteenRuns) {
  SweepSpec spec = Parsed(kIssue);
  EXPECT_EQ(spec.name, "seeds");
  EXPECT_EQ(spec.source, "s.yaml");
  EXPECT_EQ(spec.combinations, 18);
  EXPECT_EQ(spec.excluded, 3);
  EXPECT_EQ(spec.merged, 0);
  ASSERT_EQ(spec.runs.size(), 15u);
  std::map<Variant, int> per_variant;
  for (const SweepRun& run : spec.runs) ++per_variant[run.config.variant];
  EXPECT_EQ(per_variant[Variant::kVanilla], 3);
  EXPECT_EQ(per_variant[Variant::kBlockLoop], 6);
  EXPECT_EQ(per_variant[Variant::kSgt], 6);

  ASSERT_EQ(spec.grid.size(), 3u);
  EXPECT_EQ(spec.grid[0].key, "variant");
  EXPECT_EQ(spec.grid[0].values, (std::vector<std::string>{"vanilla", "block_loop", "sgt"}));
  EXPECT_EQ(spec.grid[1].values, (std::vector<std::string>{"1", "2"}));
  EXPECT_EQ(spec.grid[1].location, Pos(kIssue, "growth.k_max: [1"));
  ASSERT_EQ(spec.exclude.size(), 1u);
  EXPECT_EQ(spec.exclude[0], (std::vector<std::pair<std::string, std::string>>{
                                 {"variant", "vanilla"}, {"growth.k_max", "2"}}));

  // Grid order, last axis fastest; vanilla k_max 2 is gone.
  EXPECT_EQ(spec.runs[0].config.name, "seeds/variant=vanilla,growth.k_max=1,train.seed=1");
  EXPECT_EQ(spec.runs[2].config.name, "seeds/variant=vanilla,growth.k_max=1,train.seed=3");
  EXPECT_EQ(spec.runs[3].config.name, "seeds/variant=block_loop,growth.k_max=1,train.seed=1");
  EXPECT_EQ(spec.runs[14].config.name, "seeds/variant=sgt,growth.k_max=2,train.seed=3");
  EXPECT_EQ(FindRun(spec, "seeds/variant=vanilla,growth.k_max=2,train.seed=1"), nullptr);

  const SweepRun& last = spec.runs[14];
  EXPECT_EQ(last.config.variant, Variant::kSgt);
  EXPECT_EQ(last.config.growth.k_max, 2);
  EXPECT_EQ(last.config.train.seed, 3u);
  EXPECT_EQ(last.settings, (std::vector<std::pair<std::string, std::string>>{
                               {"variant", "sgt"}, {"growth.k_max", "2"}, {"train.seed", "3"}}));
  EXPECT_EQ(last.combinations, std::vector<std::string>{"variant=sgt,growth.k_max=2,train.seed=3"});
  for (const SweepRun& run : spec.runs) {
    EXPECT_TRUE(ValidateRunConfig(run.config).ok()) << run.config.name;
    EXPECT_EQ(run.canonical_json, CanonicalJson(run.config));
    EXPECT_EQ(run.config_hash, Sha256Hex(run.canonical_json.data(), run.canonical_json.size()));
    EXPECT_EQ(run.config.data.train, "data/brown/train.u16");
  }
}

// A named axis sets several keys per value (a model scale, a method), crossed with the grid.
TEST(SweepExpandTest, NamedAxesSetSeveralKeysAtOnce) {
  const std::string text = std::string("name: scales\n") + kBase + R"(grid:
  scale:
    - {label: small, model.layers: 4, model.d_model: 128}
    - {label: wide, model.layers: 6, model.d_model: 256, model.d_ff: 1024}
  method:
    - {label: vanilla, variant: vanilla}
    - {label: block, variant: block_loop, growth.schedule: fixed, growth.fixed_from_step: 0, growth.fixed_layers: [2, 3]}
    - {label: sgt-k2, growth.k_max: 2}
  train.seed: [1, 2]
exclude: [{scale: wide, method: block}]
)";
  const SweepSpec spec = Parsed(text);
  ASSERT_EQ(spec.grid.size(), 3u);
  EXPECT_TRUE(spec.grid[0].named());
  EXPECT_EQ(spec.grid[0].values, (std::vector<std::string>{"small", "wide"}));
  EXPECT_FALSE(spec.grid[2].named());
  EXPECT_EQ(spec.combinations, 12);
  EXPECT_EQ(spec.excluded, 2);
  ASSERT_EQ(spec.runs.size(), 10u);
  const SweepRun* wide = FindRun(spec, "scales/scale=wide,method=sgt-k2,train.seed=2");
  ASSERT_NE(wide, nullptr);
  EXPECT_EQ(wide->config.model.layers, 6);
  EXPECT_EQ(wide->config.model.d_model, 256);
  EXPECT_EQ(wide->config.model.d_ff, 1024);
  EXPECT_EQ(wide->config.model.heads, 4);  // from the base
  EXPECT_EQ(wide->config.growth.k_max, 2);
  EXPECT_EQ(wide->settings, (std::vector<std::pair<std::string, std::string>>{
                                {"scale", "wide"}, {"method", "sgt-k2"}, {"train.seed", "2"}}));
  // Its keys point at where the axis value set them.
  EXPECT_EQ(wide->config.locations.at("model.d_ff"), Pos(text, "1024"));
  const SweepRun* block = FindRun(spec, "scales/scale=small,method=block,train.seed=1");
  ASSERT_NE(block, nullptr);
  EXPECT_EQ(block->config.variant, Variant::kBlockLoop);
  EXPECT_EQ(block->config.growth.schedule, GrowthSchedule::kFixed);
  EXPECT_EQ(block->config.growth.fixed_layers, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(FindRun(spec, "scales/scale=wide,method=block,train.seed=1"), nullptr);
}

// override: keys set in every run after the grid, so a sweep file with an override block
// appended is its scaled-down version; runs it makes identical merge.
TEST(SweepExpandTest, OverrideAppliesAfterTheGrid) {
  const std::string text = std::string("name: o\n") + kBase + R"(grid:
  model.layers: [4, 6]
  growth.k_max: [1, 2]
override:
  model.layers: 3
  train.steps: 100
)";
  const SweepSpec spec = Parsed(text);
  EXPECT_EQ(spec.combinations, 4);
  ASSERT_EQ(spec.runs.size(), 2u);  // the model.layers axis no longer differs
  EXPECT_EQ(spec.merged, 2);
  for (const SweepRun& run : spec.runs) {
    EXPECT_EQ(run.config.model.layers, 3);
    EXPECT_EQ(run.config.train.steps, 100);
    EXPECT_EQ(run.config.locations.at("train.steps"), Pos(text, "100"));
  }
  std::string bad = std::string("name: o\n") + kBase + "override: {train.step: 20}\n";
  ExpectErrorAt(bad, Pos(bad, "train.step:"), "train.step", "did you mean 'steps'?");
  bad = std::string("name: o\n") + kBase + "override: [1]\n";
  ExpectErrorAt(bad, Pos(bad, "override"), "override", "expected a mapping");
  bad = std::string("name: o\n") + kBase + "override: {train.steps: x}\n";
  ExpectErrorAt(bad, Pos(bad, "x}"), "train.steps");
  // An override that makes a run invalid names the run and points at the override.
  bad = std::string("name: o\n") + kBase + "override: {growth.layers: 9}\n";
  const std::string message = ErrorOf(bad);
  EXPECT_TRUE(Contains(message, "s.yaml:" + Pos(bad, "9}")));
  EXPECT_TRUE(Contains(message, "run o"));
}

TEST(SweepErrorTest, NamedAxisValuesNeedALabelAndRealKeys) {
  auto sweep = [](const std::string& axis) {
    return std::string("name: x\n") + kBase + "grid:\n  scale:\n" + axis;
  };
  std::string text = sweep("    - {model.layers: 6}\n");
  ExpectErrorAt(text, Pos(text, "{model"), "scale", "has no label");
  text = sweep("    - {label: a, model.layer: 6}\n");
  ExpectErrorAt(text, Pos(text, "model.layer:"), "model.layer", "did you mean 'layers'?");
  text = sweep("    - {label: a, model.layers: six}\n");
  ExpectErrorAt(text, Pos(text, "six"), "model.layers");
  text = sweep("    - {label: a b, model.layers: 6}\n");
  ExpectErrorAt(text, Pos(text, "label"), "scale.label", "part of run names");
  text = sweep("    - {label: a, model.layers: 6}\n    - {label: a, model.layers: 8}\n");
  ExpectErrorAt(text, Pos(text, "{label: a, model.layers: 8"), "scale", "used twice");
  text = sweep("    - {label: a}\n");
  ExpectErrorAt(text, Pos(text, "{label"), "scale", "sets no key");
  // A combination the axis makes invalid names the run and points at the value that set it.
  text = sweep("    - {label: a, model.heads: 3}\n");
  const std::string message = ErrorOf(text);
  EXPECT_TRUE(Contains(message, "run x/scale=a"));
  EXPECT_TRUE(Contains(message, "s.yaml:" + Pos(text, "3}")));
}

TEST(SweepExpandTest, BlockLoopDependsOnKMaxAndVanillaDoesNot) {
  // Why the example has 6 Block Loop runs: k_max is its number of extra passes per block and is
  // part of its canonical JSON; vanilla's canonical JSON has no growth section.
  SweepSpec spec = Parsed(kIssue);
  const SweepRun* bl1 = FindRun(spec, "seeds/variant=block_loop,growth.k_max=1,train.seed=1");
  const SweepRun* bl2 = FindRun(spec, "seeds/variant=block_loop,growth.k_max=2,train.seed=1");
  ASSERT_NE(bl1, nullptr);
  ASSERT_NE(bl2, nullptr);
  EXPECT_NE(bl1->canonical_json, bl2->canonical_json);
  EXPECT_NE(bl1->config_hash, bl2->config_hash);
  RunConfig vanilla = bl1->config;
  vanilla.variant = Variant::kVanilla;
  RunConfig vanilla2 = bl2->config;
  vanilla2.variant = Variant::kVanilla;
  EXPECT_EQ(CanonicalJson(vanilla), CanonicalJson(vanilla2));
}

TEST(SweepExpandTest, IdenticalConfigurationsMergeIntoOneRun) {
  std::string text = kIssue;
  text.erase(text.find("exclude:"), text.find("priority:") - text.find("exclude:"));
  SweepSpec spec = Parsed(text);
  EXPECT_EQ(spec.combinations, 18);
  EXPECT_EQ(spec.excluded, 0);
  EXPECT_EQ(spec.merged, 3);
  ASSERT_EQ(spec.runs.size(), 15u);
  const SweepRun* v = FindRun(spec, "seeds/variant=vanilla,growth.k_max=1,train.seed=2");
  ASSERT_NE(v, nullptr);
  EXPECT_EQ(v->combinations,
            (std::vector<std::string>{"variant=vanilla,growth.k_max=1,train.seed=2",
                                      "variant=vanilla,growth.k_max=2,train.seed=2"}));
  // The first combination's settings and configuration are the run's.
  EXPECT_EQ(v->settings[1], (std::pair<std::string, std::string>{"growth.k_max", "1"}));
  EXPECT_EQ(v->config.growth.k_max, 1);
  // Runs keep grid order: vanilla seeds 1..3, then Block Loop.
  EXPECT_EQ(spec.runs[2].config.name, "seeds/variant=vanilla,growth.k_max=1,train.seed=3");
  EXPECT_EQ(spec.runs[3].config.variant, Variant::kBlockLoop);
}

TEST(SweepExpandTest, KeysOutsideTheCanonicalJsonMerge) {
  // checkpoint.* and (for vanilla) entropy.* do not change the run; lr written two ways neither.
  SweepSpec spec = Parsed(std::string("name: m\n") + kBase + R"(  checkpoint: {every: 0}
grid:
  variant: [vanilla, sgt]
  entropy.ema_decay: [0.5, 0.9]
  checkpoint.every: [0, 100]
  train.lr: [1.0e-3, 0.001]
)");
  EXPECT_EQ(spec.combinations, 16);
  // vanilla: 1 run of 8 combinations; sgt: 2 (ema_decay) of 4 each.
  ASSERT_EQ(spec.runs.size(), 3u);
  EXPECT_EQ(spec.merged, 13);
  EXPECT_EQ(spec.runs[0].combinations.size(), 8u);
  EXPECT_EQ(spec.runs[1].combinations.size(), 4u);
  EXPECT_EQ(spec.runs[1].config.entropy.ema_decay, 0.5);
  EXPECT_EQ(spec.runs[2].config.entropy.ema_decay, 0.9);
}

TEST(SweepExpandTest, AnEvalSectionInBaseAndGridReachesEveryRunAndDoesNotMerge) {
  // eval (issue 19) is not in the canonical JSON (it does not change training) but is in what
  // workers receive; its relative paths stay as written, as data.train's do (the worker's
  // sgt-train resolves both against its working directory).
  SweepSpec spec = Parsed(std::string("name: ev\n") + kBase + R"(  eval: {tasks: [tasks/arith.jsonl], limit: 20}
grid:
  variant: [vanilla, sgt]
  eval.tasks: [[tasks/arith.jsonl], [tasks/arith.jsonl, "my tasks/hellaswag.jsonl"]]
  eval.at_checkpoints: [false]
)");
  EXPECT_EQ(spec.combinations, 4);
  // Two tasks lists are two runs per variant: merged, one list's scores would never be made.
  ASSERT_EQ(spec.runs.size(), 4u);
  EXPECT_EQ(spec.merged, 0);
  EXPECT_EQ(spec.runs[0].config.eval.tasks, std::vector<std::string>{"tasks/arith.jsonl"});
  EXPECT_EQ(spec.runs[0].config.eval.limit, 20);
  EXPECT_EQ(spec.runs[1].config.eval.tasks,
            (std::vector<std::string>{"tasks/arith.jsonl", "my tasks/hellaswag.jsonl"}));
  // Same training: the same canonical JSON and hash; the worker's JSON carries the tasks.
  EXPECT_EQ(spec.runs[0].canonical_json, spec.runs[1].canonical_json);
  EXPECT_EQ(spec.runs[0].config_hash, spec.runs[1].config_hash);
  const std::string worker = WorkerConfigJson(spec.runs[1].config);
  EXPECT_TRUE(Contains(worker, "my tasks/hellaswag.jsonl"));
  EXPECT_TRUE(Contains(worker, "\"limit\":20"));
  // A bad value is refused at its line, like any key's.
  const std::string bad = std::string("name: ev\n") + kBase + "grid:\n  eval.limit: [-1]\n";
  EXPECT_TRUE(Contains(ErrorOf(bad), "eval.limit"));
}

TEST(SweepExpandTest, EmptyGridIsOneRunNamedAfterTheSweep) {
  for (const std::string grid : {"", "grid:\n", "grid: {}\n"}) {
    SweepSpec spec = Parsed(std::string("name: single\n") + kBase + grid);
    EXPECT_EQ(spec.combinations, 1);
    ASSERT_EQ(spec.runs.size(), 1u);
    EXPECT_EQ(spec.runs[0].config.name, "single");
    EXPECT_TRUE(spec.runs[0].settings.empty());
    EXPECT_EQ(spec.runs[0].combinations, std::vector<std::string>{""});
    EXPECT_TRUE(spec.grid.empty());
  }
}

TEST(SweepExpandTest, SettingsTakeDefaultsAndDocumentedValues) {
  SweepSpec defaults = Parsed(std::string("name: d\n") + kBase);
  EXPECT_EQ(defaults.priority, 50);
  EXPECT_EQ(defaults.max_concurrent, 0);
  EXPECT_EQ(defaults.max_restarts, 3);
  EXPECT_EQ(defaults.devices, 1);
  EXPECT_EQ(defaults.description, "");
  EXPECT_EQ(defaults.base.variant, Variant::kSgt);
  EXPECT_EQ(defaults.base.source, "s.yaml");

  SweepSpec set = Parsed(std::string("name: d\ndescription: a test\npriority: 1000\n"
                                     "max_concurrent: 7\nmax_restarts: 0\ndevices: 8\nnodes: 2\n") +
                         kBase);
  EXPECT_EQ(set.description, "a test");
  EXPECT_EQ(set.priority, 1000);
  EXPECT_EQ(set.max_concurrent, 7);
  EXPECT_EQ(set.max_restarts, 0);
  EXPECT_EQ(set.devices, 8);
  EXPECT_EQ(set.nodes, 2);
  EXPECT_EQ(defaults.nodes, 1);
}

TEST(SweepExpandTest, ListValuedGridValues) {
  const std::string fixed = std::string("name: fixed\n") + kBase + R"(grid:
  growth.schedule: [fixed]
  growth.fixed_layers: [[1, 2], [3]]
  growth.fixed_from_step: [10]
  train.betas:
    - [0.9, 0.95]
    -
      - 0.9
      - 0.99
)";
  SweepSpec spec = Parsed(fixed);
  ASSERT_EQ(spec.runs.size(), 4u);
  EXPECT_EQ(spec.grid[1].values, (std::vector<std::string>{"[1, 2]", "[3]"}));
  EXPECT_EQ(spec.grid[3].values, (std::vector<std::string>{"[0.9, 0.95]", "[0.9, 0.99]"}));
  EXPECT_EQ(spec.runs[0].config.name,
            "fixed/growth.schedule=fixed,growth.fixed_layers=[1, 2],growth.fixed_from_step=10,"
            "train.betas=[0.9, 0.95]");
  EXPECT_EQ(spec.runs[0].config.growth.fixed_layers, (std::vector<int64_t>{1, 2}));
  EXPECT_EQ(spec.runs[1].config.train.beta2, 0.99);
  EXPECT_EQ(spec.runs[2].config.growth.fixed_layers, (std::vector<int64_t>{3}));
  EXPECT_EQ(spec.runs[2].config.growth.schedule, GrowthSchedule::kFixed);

  // An exclude entry names a list value by the list.
  SweepSpec excluded = Parsed(fixed + "exclude: [{growth.fixed_layers: [3]}]\n");
  EXPECT_EQ(excluded.runs.size(), 2u);
  EXPECT_EQ(excluded.excluded, 2);
}

TEST(SweepExpandTest, StringValuesAndQuotes) {
  const std::string text = std::string("name: paths\n") + kBase + R"(grid:
  data.train: [a.u16, 'dir with, comma/b.u16', "c:d.u16"]
)";
  SweepSpec spec = Parsed(text);
  ASSERT_EQ(spec.runs.size(), 3u);
  EXPECT_EQ(spec.runs[1].config.data.train, "dir with, comma/b.u16");
  EXPECT_EQ(spec.runs[2].config.data.train, "c:d.u16");
  EXPECT_EQ(spec.runs[1].settings[0].second, "\"dir with, comma/b.u16\"");
}

// ---------------------------------------------------------------------------------------------
// Errors, one test per class named in ParseSweep's contract.

TEST(SweepErrorTest, MalformedYaml) {
  const std::string text = "name: x\ngrid: {variant: [sgt\n";
  const std::string message = ErrorOf(text);
  EXPECT_TRUE(Contains(message, "s.yaml:"));
  EXPECT_TRUE(Contains(message, "malformed YAML"));
}

TEST(SweepErrorTest, NotAMappingOrEmpty) {
  ExpectErrorAt("- a\n- b\n", "1:1", "(top level)", "expected a mapping");
  ExpectErrorAt("", "1:1", "(top level)", "empty");
}

TEST(SweepErrorTest, UnknownTopLevelKeySuggestsTheNearest) {
  const std::string text = std::string("name: x\n") + kBase + "priorty: 5\n";
  ExpectErrorAt(text, Pos(text, "priorty"), "priorty", "did you mean 'priority'?");
}

TEST(SweepErrorTest, RunConfigurationKeyAtTheTopLevelBelongsUnderBase) {
  const std::string text = std::string("name: x\nvariant: sgt\n") + kBase;
  ExpectErrorAt(text, "2:1", "variant", "under base");
  // A run configuration submitted as a sweep says so at its first run key.
  std::ifstream in(std::string(SGT_SOURCE_DIR) + "/examples/tiny-sgt.yaml");
  std::stringstream run;
  run << in.rdbuf();
  const std::string message = ErrorOf(run.str());
  EXPECT_TRUE(Contains(message, Pos(run.str(), "variant:") + ": variant: is a run configuration"));
}

TEST(SweepErrorTest, DuplicateKey) {
  const std::string text = std::string("name: x\n") + kBase + "priority: 1\npriority: 2\n";
  ExpectErrorAt(text, Pos(text, "priority: 2"), "priority", "duplicate key");
}

TEST(SweepErrorTest, MissingNameOrBase) {
  ExpectErrorAt(kBase, "1:1", "name", "missing");
  ExpectErrorAt("name: x\npriority: 3\n", "1:1", "base", "missing");
  const std::string empty_base = "name: x\nbase:\n";
  ExpectErrorAt(empty_base, "2:1", "base", "is empty");
  const std::string list_base = "name: x\nbase: [1]\n";
  ExpectErrorAt(list_base, "2:1", "base", "expected a mapping");
}

TEST(SweepErrorTest, InvalidSweepName) {
  const std::string text = std::string("name: my sweep/1\n") + kBase;
  ExpectErrorAt(text, "1:1", "name", "rename it, e.g. name: my-sweep-1");
  ExpectErrorAt(std::string("name: [a]\n") + kBase, "1:1", "name", "expected the sweep's name");
  ExpectErrorAt(std::string("name: -x\n") + kBase, "1:1", "name");
  ExpectErrorAt(std::string("name: ") + std::string(101, 'a') + "\n" + kBase, "1:1", "name");
}

TEST(SweepErrorTest, ErrorsInBasePointIntoTheSweepFile) {
  std::string text = std::string("name: x\n") + kBase;
  std::string typo = text;
  typo.replace(typo.find("k_max: 1"), 5, "kmax");
  ExpectErrorAt(typo, Pos(typo, "kmax"), "growth.kmax", "did you mean 'k_max'?");
  std::string type = text;
  type.replace(type.find("steps: 300"), 10, "steps: 1.5");
  ExpectErrorAt(type, Pos(type, "steps: 1.5"), "train.steps", "expected an integer");
  std::string named = text;
  named.insert(named.find("  variant: sgt"), "  name: foo\n");
  ExpectErrorAt(named, Pos(named, "name: foo"), "base.name", "remove it");
}

TEST(SweepErrorTest, OutOfRangeSettings) {
  struct Case {
    std::string line;
    std::string key;
    std::string piece;
  };
  for (const Case& c : std::vector<Case>{
           {"priority: 1001", "priority", "[0, 1000]"},
           {"priority: -1", "priority", "to 0 or more"},
           {"priority: high", "priority", "expected an integer"},
           {"priority: \"5\"", "priority", "expected an integer"},
           {"priority: 1.5", "priority", "expected an integer"},
           {"max_concurrent: -1", "max_concurrent", ">= 0"},
           {"max_restarts: 101", "max_restarts", "at most 100"},
           {"devices: 0", "devices", "[1, 64]"},
           {"devices: 65", "devices", "[1, 64]"},
           {"nodes: 0", "nodes", "[1, 64]"},
           {"nodes: 65", "nodes", "[1, 64]"},
           {"nodes: two", "nodes", "expected an integer"},
           {"description: [a]", "description", "expected text"},
       }) {
    const std::string text = std::string("name: x\n") + kBase + c.line + "\n";
    ExpectErrorAt(text, Pos(text, c.line), c.key, c.piece);
  }
}

// The ranks (devices x nodes) must divide train.batch_size (16 in kBase); the error points at
// where batch_size was set and names the run and the fix.
TEST(SweepErrorTest, BatchSizeMustDivideAmongTheRanks) {
  EXPECT_EQ(Parsed(std::string("name: x\nnodes: 4\ndevices: 4\n") + kBase).runs.size(), 1u);
  EXPECT_EQ(Parsed(std::string("name: x\nnodes: 16\n") + kBase).runs.size(), 1u);

  const std::string base = std::string("name: x\nnodes: 3\n") + kBase;
  const std::string message = ErrorOf(base);
  EXPECT_TRUE(Contains(message, "s.yaml:" + Pos(base, "batch_size: 16") +
                                    ": run x: train.batch_size: is 16, not divisible by the "
                                    "run's 3 ranks (devices 1 x nodes 3"));
  EXPECT_TRUE(Contains(message, "allowed: a multiple of 3"));
  EXPECT_TRUE(Contains(message, "set train.batch_size to 15 or 18, or change devices or nodes"));

  // From the grid: the error names the run and points at the grid value.
  const std::string grid = std::string("name: x\ndevices: 2\nnodes: 2\n") + kBase +
                           "grid:\n  train.batch_size: [16, 6]\n  train.micro_batch_size: [2]\n";
  const std::string from_grid = ErrorOf(grid);
  EXPECT_TRUE(Contains(from_grid, "s.yaml:" + Pos(grid, "6]") +
                                      ": run x/train.batch_size=6,train.micro_batch_size=2: "
                                      "train.batch_size: is 6, not "
                                      "divisible by the run's 4 ranks (devices 2 x nodes 2"));
  EXPECT_TRUE(Contains(from_grid, "set train.batch_size to 4 or 8"));

  // A batch smaller than the ranks: the smallest multiple is the fix.
  const std::string small = std::string("name: x\ndevices: 32\n") + kBase;
  EXPECT_TRUE(Contains(ErrorOf(small), "set train.batch_size to 32, or change devices or nodes"));

  // Each rank's share must split into its micro-batches (sgt-train's rule): 24 over 2 ranks is
  // 12 each, which micro-batches of 8 do not divide; the error points at the micro-batch.
  const std::string micro = std::string("name: x\ndevices: 2\n") + kBase +
                            "grid:\n  train.batch_size: [24]\n  train.micro_batch_size: [8]\n";
  const std::string micro_error = ErrorOf(micro);
  EXPECT_TRUE(Contains(micro_error, "s.yaml:" + Pos(micro, "8]") +
                                        ": run x/train.batch_size=24,train.micro_batch_size=8: "
                                        "train.micro_batch_size 8 does not divide each rank's 12"))
      << micro_error;
  EXPECT_TRUE(Contains(micro_error, "(devices 2 x nodes 1 ranks)")) << micro_error;
  // Micro-batches larger than a rank's share shrink to it: 16 over 4 ranks of micro 16 is fine.
  EXPECT_EQ(Parsed(std::string("name: x\ndevices: 4\n") + kBase).runs.size(), 1u);
}

TEST(SweepErrorTest, GridNotAMapping) {
  const std::string text = std::string("name: x\n") + kBase + "grid: [variant]\n";
  ExpectErrorAt(text, Pos(text, "grid:"), "grid", "expected a mapping");
}

TEST(SweepErrorTest, GridKeysMustBeConfigurationKeys) {
  const std::string unknown = std::string("name: x\n") + kBase + "grid:\n  growth.kmax: [1]\n";
  ExpectErrorAt(unknown, Pos(unknown, "growth.kmax"), "growth.kmax", "did you mean 'k_max'?");
  const std::string section = std::string("name: x\n") + kBase + "grid:\n  growth: [1]\n";
  ExpectErrorAt(section, Pos(section, "growth: [1]"), "growth", "is a section");
  const std::string name = std::string("name: x\n") + kBase + "grid:\n  name: [a, b]\n";
  ExpectErrorAt(name, Pos(name, "name: [a"), "name", "cannot be a grid key");
  const std::string twice =
      std::string("name: x\n") + kBase + "grid:\n  train.seed: [1]\n  train.seed: [2]\n";
  ExpectErrorAt(twice, Pos(twice, "train.seed: [2]"), "train.seed", "duplicate grid key");
}

TEST(SweepErrorTest, EmptyOrDuplicateAxisValues) {
  const std::string empty = std::string("name: x\n") + kBase + "grid:\n  train.seed: []\n";
  ExpectErrorAt(empty, Pos(empty, "train.seed"), "train.seed", "has no values");
  const std::string null = std::string("name: x\n") + kBase + "grid:\n  train.seed:\n";
  ExpectErrorAt(null, Pos(null, "train.seed"), "train.seed", "has no values");
  const std::string scalar = std::string("name: x\n") + kBase + "grid:\n  train.seed: 3\n";
  ExpectErrorAt(scalar, Pos(scalar, "train.seed"), "train.seed", "write [3]");
  const std::string dup = std::string("name: x\n") + kBase + "grid:\n  train.seed: [1, 2, 1]\n";
  ExpectErrorAt(dup, Pos(dup, "1]"), "train.seed", "listed twice");
}

TEST(SweepErrorTest, AxisValueOfTheWrongTypePointsAtTheValue) {
  const std::string text = std::string("name: x\n") + kBase + "grid:\n  growth.k_max: [1, two]\n";
  ExpectErrorAt(text, Pos(text, "two"), "growth.k_max", "expected an integer");
  const std::string quoted = std::string("name: x\n") + kBase + "grid:\n  train.steps: [\"300\"]\n";
  ExpectErrorAt(quoted, Pos(quoted, "\"300\""), "train.steps", "the string \"300\"");
  const std::string variant =
      std::string("name: x\n") + kBase + "grid:\n  variant: [sgt, blockloop]\n";
  ExpectErrorAt(variant, Pos(variant, "blockloop"), "variant", "did you mean 'block_loop'?");
  const std::string list =
      std::string("name: x\n") + kBase + "grid:\n  growth.fixed_layers: [1, 2]\n";
  ExpectErrorAt(list, Pos(list, "1, 2]"), "growth.fixed_layers", "[[1, 2], [3]]");
}

TEST(SweepErrorTest, ExcludeEntries) {
  const std::string grid = std::string("name: x\n") + kBase +
                           "grid:\n  variant: [vanilla, sgt]\n  growth.k_max: [1, 2]\n";
  const std::string not_list = grid + "exclude: {variant: sgt}\n";
  ExpectErrorAt(not_list, Pos(not_list, "exclude"), "exclude", "expected a list of mappings");
  const std::string not_map = grid + "exclude: [oops]\n";
  ExpectErrorAt(not_map, Pos(not_map, "oops"), "exclude[0]", "expected a mapping");
  const std::string empty_map = grid + "exclude: [{variant: sgt}, {}]\n";
  ExpectErrorAt(empty_map, Pos(empty_map, "{}"), "exclude[1]", "an empty mapping");
  const std::string key = grid + "exclude: [{growth.kmax: 2}]\n";
  ExpectErrorAt(key, Pos(key, "growth.kmax"), "exclude[0].growth.kmax",
                "did you mean 'growth.k_max'?");
  const std::string not_grid = grid + "exclude: [{train.seed: 2}]\n";
  ExpectErrorAt(not_grid, Pos(not_grid, "train.seed: 2"), "exclude[0].train.seed",
                "not a grid key; grid keys: variant, growth.k_max");
  const std::string value = grid + "exclude:\n  - {variant: vanilla, growth.k_max: 3}\n";
  ExpectErrorAt(value, Pos(value, "growth.k_max: 3"), "exclude[0].growth.k_max",
                "value 3 is not in the grid; grid values of growth.k_max: 1, 2");
  const std::string twice = grid + "exclude: [{variant: sgt, variant: vanilla}]\n";
  ExpectErrorAt(twice, Pos(twice, "variant: vanilla}"), "exclude[0].variant", "duplicate key");
  const std::string all = grid + "exclude: [{growth.k_max: 1}, {growth.k_max: 2}]\n";
  ExpectErrorAt(all, Pos(all, "exclude"), "exclude", "removes all 4 combinations");
}

TEST(SweepErrorTest, TooManyCombinations) {
  auto range = [](int from, int to) {
    std::string list = "[";
    for (int i = from; i <= to; ++i) list += (i > from ? ", " : "") + std::to_string(i);
    return list + "]";
  };
  const std::string text = std::string("name: x\n") + kBase +
                           "grid:\n  train.seed: " + range(0, 100) +
                           "\n  model.d_ff: " + range(1, 100) + "\n";
  ExpectErrorAt(text, Pos(text, "grid:"), "grid", "101 x 100 combinations, more than 10000");
  // Exactly kMaxSweepRuns is allowed.
  SweepSpec spec =
      Parsed(std::string("name: x\n") + kBase + "grid:\n  train.seed: " + range(1, 100) +
             "\n  model.d_ff: " + range(1, 100) + "\n");
  EXPECT_EQ(spec.combinations, kMaxSweepRuns);
  EXPECT_EQ(static_cast<int64_t>(spec.runs.size()), kMaxSweepRuns);
}

TEST(SweepErrorTest, InvalidCombinationPointsAtTheGridValue) {
  // L = 4 exceeds the 3 eligible layers of a 4-layer model: only for block_loop and sgt.
  const std::string text = std::string("name: x\n") + kBase +
                           "grid:\n  variant: [vanilla, sgt]\n  growth.layers: [2, 4]\n";
  const std::string message = ErrorOf(text);
  EXPECT_TRUE(Contains(message, "s.yaml:" + Pos(text, "4]") +
                                    ": run x/variant=sgt,growth.layers=4: growth.layers: L = 4 "
                                    "exceeds the 3 eligible layers"));
  // Vanilla ignores growth: the same grid over vanilla alone is fine.
  std::string vanilla = text;
  vanilla.replace(vanilla.find("[vanilla, sgt]"), 14, "[vanilla]");
  EXPECT_EQ(Parsed(vanilla).runs.size(), 1u);
}

TEST(SweepErrorTest, InvalidCombinationPointsAtTheBaseKeyItBreaks) {
  // train.steps 40 comes from the grid, but the rule that fails is on growth.t_start (50).
  const std::string text = std::string("name: x\n") + kBase + "grid:\n  train.steps: [300, 40]\n";
  const std::string message = ErrorOf(text);
  EXPECT_TRUE(Contains(message, "s.yaml:" + Pos(text, "t_start") +
                                    ": run x/train.steps=40: growth.t_start: is 50, outside [1, "
                                    "train.steps = 40]"));
  // warmup_steps (30) is a train key written in base: 20 steps break it at that key.
  const std::string warm = std::string("name: x\n") + kBase + "grid:\n  train.steps: [20]\n";
  EXPECT_TRUE(Contains(ErrorOf(warm), "s.yaml:" + Pos(warm, "warmup_steps") +
                                          ": run x/train.steps=20: train.warmup_steps:"));
}

TEST(SweepErrorTest, InvalidDefaultOfAnAbsentSectionPointsAtBase) {
  // No growth section: its default t_start (50) is past 20 steps; the message points at base:.
  const std::string text =
      "name: x\nbase:\n  variant: sgt\n  train: {steps: 20, warmup_steps: 0}\n";
  const std::string message = ErrorOf(text);
  EXPECT_TRUE(Contains(message, "s.yaml:2:1: run x: growth.t_start: is 50")) << message;
}

TEST(SweepErrorTest, LoadSweepOfAMissingFile) {
  absl::StatusOr<SweepSpec> spec = LoadSweep("/nonexistent/sweep.yaml");
  ASSERT_FALSE(spec.ok());
  EXPECT_EQ(spec.status().code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(Contains(std::string(spec.status().message()), "/nonexistent/sweep.yaml: "));
}

TEST(SweepErrorTest, SourceNameDefaults) {
  absl::StatusOr<SweepSpec> spec = ParseSweep("name: x\n", "");
  ASSERT_FALSE(spec.ok());
  EXPECT_TRUE(Contains(std::string(spec.status().message()), "<sweep>:1:1: base: missing"));
}

// ---------------------------------------------------------------------------------------------
// Planning.

TEST(SweepPlanTest, JsonNumbersAreThePlannersOnEveryRun) {
  SweepSpec spec = Parsed(kIssue);
  nlohmann::json j = nlohmann::json::parse(PlanSweepJson(spec));
  EXPECT_EQ(j["sweep"], "seeds");
  EXPECT_EQ(j["combinations"], 18);
  EXPECT_EQ(j["excluded"], 3);
  EXPECT_EQ(j["merged"], 0);
  ASSERT_EQ(j["runs"].size(), spec.runs.size());
  for (size_t i = 0; i < spec.runs.size(); ++i) {
    const SweepRun& run = spec.runs[i];
    const nlohmann::json& r = j["runs"][i];
    const FlopsPlan plan = PlanFlops(run.config);
    EXPECT_EQ(r["name"], run.config.name);
    EXPECT_EQ(r["variant"], VariantName(run.config.variant));
    EXPECT_EQ(r["config"], nlohmann::json::parse(run.canonical_json));
    EXPECT_EQ(r["plan"], nlohmann::json::parse(FlopsPlanToJson(run.config, plan)));
    EXPECT_EQ(r["plan"]["train_flops"].get<double>(), plan.train_flops);
    EXPECT_EQ(r["plan"]["vanilla_flops"].get<double>(), plan.vanilla_flops);
    EXPECT_EQ(r["plan"]["overhead_vs_vanilla"].get<double>(), plan.overhead_vs_vanilla);
    EXPECT_EQ(r["plan"]["tokens"].get<int64_t>(), plan.tokens);
    ASSERT_EQ(r["settings"].size(), run.settings.size());
    for (const auto& [key, value] : run.settings) EXPECT_EQ(r["settings"][key], value);
    if (run.config.variant == Variant::kVanilla) {
      EXPECT_EQ(plan.overhead_vs_vanilla, 0.0);
    } else {
      EXPECT_GT(plan.overhead_vs_vanilla, 0.0);
    }
  }
  // settings keep grid order in the text.
  const std::string text = PlanSweepJson(spec);
  size_t settings = text.find("\"settings\":{\"variant\"");
  EXPECT_NE(settings, std::string::npos);
}

TEST(SweepPlanTest, ResourcesAreDevicesTimesNodes) {
  SweepSpec spec = Parsed(std::string("name: dp\ndevices: 4\nnodes: 2\n") + kBase);
  EXPECT_EQ(PlanResources(spec), "4 devices x 2 nodes = 8 ranks");
  nlohmann::json j = nlohmann::json::parse(PlanSweepJson(spec));
  EXPECT_EQ(j["devices"], 4);
  EXPECT_EQ(j["nodes"], 2);
  EXPECT_EQ(j["ranks"], 8);
  EXPECT_TRUE(Contains(PlanSweepTable(spec),
                       "1 run from 1 combination (0 excluded, 0 merged), "
                       "each on 4 devices x 2 nodes = 8 ranks;"));
}

TEST(SweepPlanTest, TableListsEveryRun) {
  SweepSpec spec = Parsed(kIssue);
  const std::string table = PlanSweepTable(spec);
  EXPECT_TRUE(Contains(table, "RUN"));
  EXPECT_TRUE(Contains(table, "VS VANILLA"));
  for (const SweepRun& run : spec.runs) EXPECT_TRUE(Contains(table, run.config.name + " "));
  EXPECT_TRUE(Contains(table,
                       "15 runs from 18 combinations (3 excluded, 0 merged), each on 1 "
                       "device x 1 node = 1 rank;"));
  EXPECT_EQ(std::count(table.begin(), table.end(), '\n'), 1 + 15 + 2);
}

// ---------------------------------------------------------------------------------------------
// The shipped examples.

TEST(SweepExamplesTest, EverySweepInExamplesParses) {
  int sweeps = 0;
  for (const auto& entry : fs::directory_iterator(std::string(SGT_SOURCE_DIR) + "/examples")) {
    if (entry.path().extension() != ".yaml") continue;
    std::ifstream in(entry.path());
    std::stringstream text;
    text << in.rdbuf();
    // Run configurations have no top-level base: they are not sweeps.
    if (text.str().find("\nbase:") == std::string::npos && text.str().rfind("base:", 0) != 0) {
      continue;
    }
    ++sweeps;
    absl::StatusOr<SweepSpec> spec = LoadSweep(entry.path().string());
    ASSERT_TRUE(spec.ok()) << spec.status();
    EXPECT_FALSE(spec->runs.empty()) << entry.path();
    EXPECT_EQ(spec->source, entry.path().string());
  }
  EXPECT_GE(sweeps, 2);
}

TEST(SweepExamplesTest, QuickstartIsThreeVariantsAndSeedsIsFifteen) {
  absl::StatusOr<SweepSpec> quick =
      LoadSweep(std::string(SGT_SOURCE_DIR) + "/examples/quickstart.yaml");
  ASSERT_TRUE(quick.ok()) << quick.status();
  ASSERT_EQ(quick->runs.size(), 3u);
  EXPECT_EQ(quick->runs[0].config.name, "quickstart/variant=vanilla");
  EXPECT_EQ(quick->runs[1].config.name, "quickstart/variant=block_loop");
  EXPECT_EQ(quick->runs[2].config.name, "quickstart/variant=sgt");
  // The runs are examples/tiny-*.yaml but for their names.
  for (const auto& [run, file] : std::vector<std::pair<size_t, std::string>>{
           {0, "tiny-vanilla.yaml"}, {1, "tiny-block-loop.yaml"}, {2, "tiny-sgt.yaml"}}) {
    absl::StatusOr<RunConfig> tiny =
        LoadRunConfig(std::string(SGT_SOURCE_DIR) + "/examples/" + file);
    ASSERT_TRUE(tiny.ok()) << tiny.status();
    EXPECT_EQ(quick->runs[run].canonical_json, CanonicalJson(*tiny)) << file;
  }

  absl::StatusOr<SweepSpec> seeds =
      LoadSweep(std::string(SGT_SOURCE_DIR) + "/examples/sweep-seeds.yaml");
  ASSERT_TRUE(seeds.ok()) << seeds.status();
  EXPECT_EQ(seeds->combinations, 18);
  EXPECT_EQ(seeds->excluded, 3);
  EXPECT_EQ(seeds->runs.size(), 15u);
}

// A few hundred bytes of nested YAML aliases stand for billions of nodes; the sweep is refused
// quickly instead of being expanded.
TEST(SweepErrorTest, AliasBombIsRefusedWithoutExpandingIt) {
  // A mapping where a list was expected: the error message quotes the value, which once meant
  // walking every alias (10^8 nodes here; minutes and gigabytes).
  std::string yaml = "name: bomb\nbase: {variant: sgt}\ngrid:\n  train.steps:\n";
  yaml += "    k0: &a0 [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]\n";
  for (int i = 1; i <= 8; ++i) {
    yaml += "    k" + std::to_string(i) + ": &a" + std::to_string(i) + " [";
    for (int j = 0; j < 10; ++j) yaml += (j ? ", *a" : "*a") + std::to_string(i - 1);
    yaml += "]\n";
  }
  const auto start = std::chrono::steady_clock::now();
  absl::StatusOr<SweepSpec> spec = ParseSweep(yaml, "bomb.yaml");
  ASSERT_FALSE(spec.ok());
  EXPECT_NE(spec.status().message().find("bomb.yaml:4:3: train.steps"), std::string::npos);
  EXPECT_LT(spec.status().message().size(), 1000u);
  // Not a timing target: a bound on "did not expand 10^9 nodes" (that takes minutes).
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(20));
}

}  // namespace
}  // namespace sgt
