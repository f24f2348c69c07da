// Tests for the run configuration (libsgt/core/config.h): parsing, error messages with
// file:line:col and fixes, validation rules, canonical JSON, overrides and data file checks.
#include "libsgt/core/config.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <regex>
#include <string>
#include <utility>
#include <vector>

namespace sgt {
namespace {

namespace fs = std::filesystem;
// "message contains piece", printing both when it does not (no gmock in this binary).
testing::AssertionResult Contains(const std::string& message, const std::string& piece) {
  if (message.find(piece) != std::string::npos) return testing::AssertionSuccess();
  return testing::AssertionFailure() << "\n  message: " << message << "\n  lacks:   " << piece;
}

// The example from docs/config.md.
constexpr char kExample[] = R"(variant: sgt
data: {train: data/brown/train.u16, validation: data/brown/val.u16}
model: {layers: 4, d_model: 128, heads: 4, d_ff: 512, context: 128, vocab_size: 4096}
train: {steps: 300, batch_size: 16, micro_batch_size: 16, lr: 1.0e-3, warmup_steps: 30, min_lr_ratio: 0.1, weight_decay: 0.1, betas: [0.9, 0.95], grad_clip: 1.0, eval_interval: 50, seed: 1, threads: 1}
growth: {t_start: 50, delta_t: 50, layers: 2, k_max: 1, heads: 1}
)";

RunConfig Example() {
  absl::StatusOr<RunConfig> cfg = ParseRunConfig(kExample, "example.yaml");
  EXPECT_TRUE(cfg.ok()) << cfg.status();
  return cfg.ok() ? *cfg : RunConfig{};
}

std::string ErrorOf(const absl::StatusOr<RunConfig>& cfg) {
  EXPECT_FALSE(cfg.ok());
  if (!cfg.ok()) {
    EXPECT_EQ(cfg.status().code(), absl::StatusCode::kInvalidArgument);
  }
  return cfg.ok() ? "" : std::string(cfg.status().message());
}

// "<problem>; <allowed>; <fix>" after the location and key.
void ExpectProblemAllowedFix(const std::string& message) {
  size_t first = message.find("; ");
  ASSERT_NE(first, std::string::npos) << message;
  EXPECT_NE(message.find("; ", first + 2), std::string::npos) << message;
}

TEST(ConfigParseTest, ParsesTheDocumentedExample) {
  RunConfig cfg = Example();
  EXPECT_EQ(cfg.variant, Variant::kSgt);
  EXPECT_EQ(cfg.data.train, "data/brown/train.u16");
  EXPECT_EQ(cfg.data.validation, "data/brown/val.u16");
  EXPECT_EQ(cfg.model.layers, 4);
  EXPECT_EQ(cfg.model.d_model, 128);
  EXPECT_EQ(cfg.model.vocab_size, 4096);
  EXPECT_EQ(cfg.train.steps, 300);
  EXPECT_DOUBLE_EQ(cfg.train.lr, 1e-3);
  EXPECT_DOUBLE_EQ(cfg.train.beta1, 0.9);
  EXPECT_DOUBLE_EQ(cfg.train.beta2, 0.95);
  EXPECT_EQ(cfg.train.seed, 1u);
  EXPECT_EQ(cfg.growth.t_start, 50);
  EXPECT_EQ(cfg.growth.k_max, 1);
  EXPECT_EQ(cfg.source, "example.yaml");
  EXPECT_EQ(cfg.locations.at("growth.k_max"), "5:47");
}

TEST(ConfigParseTest, MissingKeysTakeDefaults) {
  absl::StatusOr<RunConfig> cfg =
      ParseRunConfig("data: {train: a.u16, validation: b.u16}\n", "min.yaml");
  ASSERT_TRUE(cfg.ok()) << cfg.status();
  RunConfig defaults;
  EXPECT_EQ(cfg->name, defaults.name);
  EXPECT_EQ(cfg->variant, defaults.variant);
  EXPECT_EQ(cfg->model.heads, defaults.model.heads);
  EXPECT_EQ(cfg->train.extrapolation, defaults.train.extrapolation);
  EXPECT_EQ(cfg->growth.head_policy, defaults.growth.head_policy);
  EXPECT_EQ(cfg->entropy.probe_sequences, defaults.entropy.probe_sequences);
  EXPECT_EQ(cfg->checkpoint.final, defaults.checkpoint.final);
}

TEST(ConfigParseTest, ParsesEveryEnumAndList) {
  absl::StatusOr<RunConfig> cfg = ParseRunConfig(R"(name: ablation
variant: sgt
data: {train: a.u16, validation: b.u16}
train: {device: cuda, extrapolation: [2, 8], seed: 18446744073709551615}
growth:
  schedule: fixed
  fixed_layers: [2, 3]
  fixed_from_step: 100
  head_policy: random
  head_seed: 7
  direction: s2d
  include_first_layer: true
  transition: fade
  fade: cosine
  deepen: reference
  no_candidate: fix
entropy: {signal: probe, looped_heads: last_loop, probe_telemetry: false}
checkpoint: {at_boundaries: true, every: 100, keep: 3, final: false}
)",
                                                 "all.yaml");
  ASSERT_TRUE(cfg.ok()) << cfg.status();
  EXPECT_EQ(cfg->name, "ablation");
  EXPECT_EQ(cfg->train.device, Device::kCuda);
  EXPECT_EQ(cfg->train.extrapolation, (std::vector<int64_t>{2, 8}));
  EXPECT_EQ(cfg->train.seed, UINT64_MAX);
  EXPECT_EQ(cfg->growth.schedule, GrowthSchedule::kFixed);
  EXPECT_EQ(cfg->growth.fixed_layers, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(cfg->growth.fixed_from_step, 100);
  EXPECT_EQ(cfg->growth.head_policy, HeadPolicy::kRandom);
  EXPECT_EQ(cfg->growth.head_seed, 7u);
  EXPECT_EQ(cfg->growth.direction, GrowthDirection::kShallowToDeep);
  EXPECT_TRUE(cfg->growth.include_first_layer);
  EXPECT_EQ(cfg->growth.transition, HeadTransition::kFade);
  EXPECT_EQ(cfg->growth.fade, FadeShape::kCosine);
  EXPECT_EQ(cfg->growth.deepen, DeepenRule::kReference);
  EXPECT_EQ(cfg->growth.no_candidate, NoCandidateRule::kFix);
  EXPECT_EQ(cfg->entropy.signal, EntropySignal::kProbe);
  EXPECT_EQ(cfg->entropy.looped_heads, LoopedHeadEntropy::kLastLoop);
  EXPECT_FALSE(cfg->entropy.probe_telemetry);
  EXPECT_TRUE(cfg->checkpoint.at_boundaries);
  EXPECT_EQ(cfg->checkpoint.every, 100);
  EXPECT_EQ(cfg->checkpoint.keep, 3);
  EXPECT_FALSE(cfg->checkpoint.final);
}

TEST(ConfigParseTest, ExampleFilesParse) {
  const fs::path dir = fs::path(SGT_SOURCE_DIR) / "examples";
  std::vector<std::string> names = {"tiny-vanilla.yaml", "tiny-block-loop.yaml", "tiny-sgt.yaml"};
  for (const auto& entry : fs::directory_iterator(dir)) {
    std::string name = entry.path().filename().string();
    if (name.rfind("tiny-", 0) == 0 && entry.path().extension() == ".yaml" &&
        std::find(names.begin(), names.end(), name) == names.end()) {
      names.push_back(name);
    }
  }
  for (const std::string& name : names) {
    absl::StatusOr<RunConfig> cfg = LoadRunConfig((dir / name).string());
    EXPECT_TRUE(cfg.ok()) << name << ": " << cfg.status();
  }
  absl::StatusOr<RunConfig> vanilla = LoadRunConfig((dir / "tiny-vanilla.yaml").string());
  absl::StatusOr<RunConfig> block = LoadRunConfig((dir / "tiny-block-loop.yaml").string());
  absl::StatusOr<RunConfig> sgt = LoadRunConfig((dir / "tiny-sgt.yaml").string());
  ASSERT_TRUE(vanilla.ok() && block.ok() && sgt.ok());
  EXPECT_EQ(vanilla->variant, Variant::kVanilla);
  EXPECT_EQ(block->variant, Variant::kBlockLoop);
  EXPECT_EQ(sgt->variant, Variant::kSgt);
  EXPECT_EQ(CanonicalJson(*sgt), CanonicalJson(Example()));
}

TEST(ConfigParseTest, MissingFileIsNotFound) {
  absl::StatusOr<RunConfig> cfg = LoadRunConfig("/nonexistent/run.yaml");
  ASSERT_FALSE(cfg.ok());
  EXPECT_EQ(cfg.status().code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(Contains(std::string(cfg.status().message()), "/nonexistent/run.yaml"));
}

TEST(ConfigErrorTest, MalformedYamlNamesFileLineColumn) {
  std::string message =
      ErrorOf(ParseRunConfig("variant: sgt\nmodel: {layers: 4\ntrain: {}\n", "bad.yaml"));
  EXPECT_TRUE(std::regex_search(message, std::regex("^bad\\.yaml:[0-9]+:[0-9]+: "))) << message;
  EXPECT_TRUE(Contains(message, "malformed YAML"));
  ExpectProblemAllowedFix(message);

  message = ErrorOf(ParseRunConfig("model:\n  layers: 4\n   heads: 2\n", "indent.yaml"));
  EXPECT_TRUE(Contains(message, "indent.yaml:3:"));
}

TEST(ConfigErrorTest, UnknownKeyNamesKeyAndSuggestsNearest) {
  std::string message = ErrorOf(ParseRunConfig(
      "data: {train: a, validation: b}\ngrowth:\n  t_start: 50\n  kmax: 2\n", "typo.yaml"));
  EXPECT_TRUE(Contains(message, "typo.yaml:4:3: growth.kmax: unknown key"));
  EXPECT_TRUE(Contains(message, "did you mean 'k_max'?"));
  ExpectProblemAllowedFix(message);
}

TEST(ConfigErrorTest, UnknownSectionSuggestsNearest) {
  std::string message = ErrorOf(ParseRunConfig("trian: {steps: 10}\n", "s.yaml"));
  EXPECT_TRUE(Contains(message, "s.yaml:1:1: trian: unknown key"));
  EXPECT_TRUE(Contains(message, "did you mean 'train'?"));
}

TEST(ConfigErrorTest, KeyInWrongSectionPointsToItsSection) {
  std::string message = ErrorOf(ParseRunConfig("model: {k_max: 2}\n", "s.yaml"));
  EXPECT_TRUE(Contains(message, "model.k_max: unknown key"));
  EXPECT_TRUE(Contains(message, "did you mean 'growth.k_max'?"));
}

TEST(ConfigErrorTest, UnknownKeyWithoutNearNameListsKeys) {
  std::string message = ErrorOf(ParseRunConfig("checkpoint: {zzzzzzzz: 1}\n", "s.yaml"));
  EXPECT_TRUE(Contains(message, "checkpoint.zzzzzzzz: unknown key"));
  EXPECT_TRUE(Contains(message, "at_boundaries, every, keep, final"));
}

TEST(ConfigErrorTest, WrongTypesAreErrors) {
  struct Case {
    std::string yaml;
    std::string expect;
  };
  const std::vector<Case> cases = {
      {"train: {steps: many}\n", "t.yaml:1:9: train.steps: expected an integer, got 'many'"},
      {"train: {steps: 300.5}\n", "train.steps: expected an integer, got '300.5'"},
      {"train: {steps: 1e3}\n", "without a fraction or exponent"},
      {"train: {steps: \"300\"}\n", "train.steps: expected an integer, got the string \"300\""},
      {"train: {seed: -1}\n", "train.seed: must not be negative"},
      {"growth: {head_seed: -3}\n", "growth.head_seed: must not be negative"},
      {"train: {lr: fast}\n", "train.lr: expected a finite number"},
      {"train: {lr: .nan}\n", "train.lr: expected a finite number"},
      {"train: {betas: 0.9}\n", "train.betas: expected a list of two numbers"},
      {"train: {betas: [0.9, 0.95, 0.99]}\n", "train.betas: expected a list of two numbers"},
      {"train: {extrapolation: [2, x]}\n", "train.extrapolation: element 1: expected an integer"},
      {"growth: {include_first_layer: maybe}\n", "growth.include_first_layer: expected a boolean"},
      {"variant: sgtt\n",
       "variant: unknown value 'sgtt'; one of: vanilla, block_loop, sgt; "
       "did you mean 'sgt'?"},
      {"growth: {head_policy: highest}\n", "one of: high, low, random, all"},
      {"model: 4\n", "model: expected a mapping"},
      {"name: [a, b]\n", "name: expected a string"},
      {"- a\n- b\n", "expected a mapping of sections"},
      {"train: {steps: 1}\ntrain: {steps: 2}\n", "t.yaml:2:1: train: duplicate key"},
  };
  for (const Case& c : cases) {
    std::string message = ErrorOf(ParseRunConfig(c.yaml, "t.yaml"));
    EXPECT_TRUE(Contains(message, c.expect)) << c.yaml;
    ExpectProblemAllowedFix(message);
  }
}

TEST(ConfigErrorTest, CrossFieldErrorKeepsTheKeysLine) {
  std::string message = ErrorOf(ParseRunConfig(R"(data: {train: a, validation: b}
model:
  d_model: 128
  heads: 3
)",
                                               "x.yaml"));
  EXPECT_TRUE(Contains(message,
                       "x.yaml:4:3: model.heads: heads must divide d_model: "
                       "128 % 3 != 0"));
  EXPECT_TRUE(Contains(message,
                       "set model.heads to a divisor of 128 with an even quotient such as 2 or 4"));
}

TEST(ConfigErrorTest, DefaultedKeyPointsAtItsSection) {
  // growth.layers is left at its default 2, but a 2-layer model has only 1 eligible layer.
  std::string message = ErrorOf(ParseRunConfig(R"(data: {train: a, validation: b}
model: {layers: 2}
growth:
  k_max: 1
)",
                                               "x.yaml"));
  EXPECT_TRUE(Contains(message, "x.yaml:3:1: growth.layers:"));
  EXPECT_TRUE(Contains(message, "include_first_layer"));
}

// One validation rule: settings applied to the valid example, the key the error must name and a
// piece of the fix it must give.
struct RuleCase {
  std::string name;
  std::vector<std::pair<std::string, std::string>> settings;
  std::string key;
  std::string fix;
};

class ConfigRuleTest : public testing::TestWithParam<RuleCase> {};

TEST_P(ConfigRuleTest, NamesKeyAndFix) {
  const RuleCase& c = GetParam();
  RunConfig cfg = Example();
  for (const auto& [key, value] : c.settings) {
    ASSERT_TRUE(SetConfigValue(cfg, key, value).ok()) << key << "=" << value;
  }
  absl::Status status = ValidateRunConfig(cfg);
  ASSERT_FALSE(status.ok()) << c.name;
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  std::string message(status.message());
  EXPECT_TRUE(Contains(message, ": " + c.key + ": ")) << message;
  EXPECT_TRUE(Contains(message, c.fix)) << message;
  ExpectProblemAllowedFix(message);
  EXPECT_EQ(message.rfind("example.yaml:", 0), 0u) << message;
}

INSTANTIATE_TEST_SUITE_P(
    Config, ConfigRuleTest,
    testing::Values(
        RuleCase{"Layers", {{"model.layers", "0"}}, "model.layers", "set model.layers to 1"},
        RuleCase{"DModel", {{"model.d_model", "0"}}, "model.d_model", "set model.d_model to 1"},
        RuleCase{"Heads", {{"model.heads", "0"}}, "model.heads", "set model.heads to 1"},
        RuleCase{"HeadsDivide",
                 {{"model.heads", "3"}},
                 "model.heads",
                 "set model.heads to a divisor of 128"},
        RuleCase{"HeadSizeEven",
                 {{"model.d_model", "96"}, {"model.heads", "32"}},
                 "model.heads",
                 "with an even quotient"},
        RuleCase{"HeadsOddDModel",
                 {{"model.d_model", "129"}, {"model.heads", "2"}},
                 "model.heads",
                 "set model.d_model to a multiple of 2 x model.heads = 4"},
        RuleCase{"DFf", {{"model.d_ff", "0"}}, "model.d_ff", "set model.d_ff to 1"},
        RuleCase{"Context", {{"model.context", "1"}}, "model.context", "set model.context to 2"},
        RuleCase{"VocabSmall", {{"model.vocab_size", "1"}}, "model.vocab_size", "[2, 2^32]"},
        RuleCase{"VocabLarge",
                 {{"model.vocab_size", "4294967297"}},
                 "model.vocab_size",
                 "set model.vocab_size to the tokenizer's"},
        RuleCase{"NormEps", {{"model.norm_eps", "0"}}, "model.norm_eps", "positive"},
        RuleCase{"Steps", {{"train.steps", "0"}}, "train.steps", "set train.steps to 1"},
        RuleCase{"BatchSize",
                 {{"train.batch_size", "0"}},
                 "train.batch_size",
                 "set train.batch_size to 1"},
        RuleCase{"MicroBatch",
                 {{"train.micro_batch_size", "0"}},
                 "train.micro_batch_size",
                 "set train.micro_batch_size to 1"},
        RuleCase{"MicroBatchDivides",
                 {{"train.micro_batch_size", "5"}},
                 "train.micro_batch_size",
                 "set train.micro_batch_size to a divisor of 16"},
        RuleCase{"Lr", {{"train.lr", "0"}}, "train.lr", "set train.lr to a positive number"},
        RuleCase{"WarmupNegative",
                 {{"train.warmup_steps", "-1"}},
                 "train.warmup_steps",
                 "at most train.steps"},
        RuleCase{"WarmupTooLong",
                 {{"train.warmup_steps", "301"}},
                 "train.warmup_steps",
                 "at most train.steps"},
        RuleCase{"MinLrRatio", {{"train.min_lr_ratio", "1.5"}}, "train.min_lr_ratio", "[0, 1]"},
        RuleCase{"WeightDecay",
                 {{"train.weight_decay", "-0.1"}},
                 "train.weight_decay",
                 "set train.weight_decay to 0"},
        RuleCase{"Beta1", {{"train.betas", "[1.0, 0.95]"}}, "train.betas", "[0.9, 0.95]"},
        RuleCase{"Beta2", {{"train.betas", "[0.9, -0.1]"}}, "train.betas", "[0.9, 0.95]"},
        RuleCase{"Eps", {{"train.eps", "0"}}, "train.eps", "positive"},
        RuleCase{
            "GradClip", {{"train.grad_clip", "-1"}}, "train.grad_clip", "set train.grad_clip to 0"},
        RuleCase{"EvalInterval",
                 {{"train.eval_interval", "-1"}},
                 "train.eval_interval",
                 "set train.eval_interval to 0"},
        RuleCase{"EvalBatches",
                 {{"train.eval_batches", "0"}},
                 "train.eval_batches",
                 "set train.eval_batches to 1"},
        RuleCase{"Extrapolation",
                 {{"train.extrapolation", "[2, 0]"}},
                 "train.extrapolation",
                 "[2, 3, 4]"},
        RuleCase{"Threads", {{"train.threads", "0"}}, "train.threads", "set train.threads to 1"},
        RuleCase{"LogInterval",
                 {{"train.log_interval", "0"}},
                 "train.log_interval",
                 "set train.log_interval to 1"},
        RuleCase{"TStartZero", {{"growth.t_start", "0"}}, "growth.t_start", "raise train.steps"},
        RuleCase{
            "TStartAfterEnd", {{"growth.t_start", "301"}}, "growth.t_start", "raise train.steps"},
        RuleCase{"DeltaT", {{"growth.delta_t", "0"}}, "growth.delta_t", "set growth.delta_t to 1"},
        RuleCase{"KMax", {{"growth.k_max", "0"}}, "growth.k_max", "set growth.k_max to 1"},
        RuleCase{"GrowthLayersZero",
                 {{"growth.layers", "0"}},
                 "growth.layers",
                 "set growth.layers to 1"},
        RuleCase{"GrowthLayersTooMany",
                 {{"growth.layers", "4"}},
                 "growth.layers",
                 "set growth.layers to at most 3, or set growth.include_first_layer: true"},
        RuleCase{"GrowthLayersWithFirst",
                 {{"growth.layers", "5"}, {"growth.include_first_layer", "true"}},
                 "growth.layers",
                 "set growth.layers to at most 4"},
        RuleCase{"GrowthHeadsZero",
                 {{"growth.heads", "0"}},
                 "growth.heads",
                 "set growth.heads to a value in [1, 4]"},
        RuleCase{"GrowthHeadsTooMany",
                 {{"growth.heads", "5"}},
                 "growth.heads",
                 "growth.head_policy: all"},
        RuleCase{"FixedEmpty",
                 {{"growth.schedule", "fixed"}, {"growth.fixed_from_step", "10"}},
                 "growth.fixed_layers",
                 "list the layers to loop"},
        RuleCase{"FixedOutOfRange",
                 {{"growth.schedule", "fixed"},
                  {"growth.fixed_layers", "[4]"},
                  {"growth.fixed_from_step", "10"}},
                 "growth.fixed_layers",
                 "list only existing layer indices"},
        RuleCase{"FixedLayerZero",
                 {{"growth.schedule", "fixed"},
                  {"growth.fixed_layers", "[0, 2]"},
                  {"growth.fixed_from_step", "10"}},
                 "growth.fixed_layers",
                 "growth.include_first_layer: true"},
        RuleCase{"FixedDuplicate",
                 {{"growth.schedule", "fixed"},
                  {"growth.fixed_layers", "[2, 2]"},
                  {"growth.fixed_from_step", "10"}},
                 "growth.fixed_layers",
                 "list each layer once"},
        RuleCase{"FixedFromNegative",
                 {{"growth.schedule", "fixed"},
                  {"growth.fixed_layers", "[2]"},
                  {"growth.fixed_from_step", "-1"}},
                 "growth.fixed_from_step",
                 "set growth.fixed_from_step"},
        RuleCase{"FixedFromLastStep",
                 {{"growth.schedule", "fixed"},
                  {"growth.fixed_layers", "[2]"},
                  {"growth.fixed_from_step", "300"}},
                 "growth.fixed_from_step",
                 "[0, 299]"},
        RuleCase{"InitTruncation",
                 {{"model.init_truncation", "0.5"}},
                 "model.init_truncation",
                 "set model.init_truncation to 0, or to 3"},
        RuleCase{"EmaDecay", {{"entropy.ema_decay", "1.0"}}, "entropy.ema_decay", "[0, 1)"},
        RuleCase{"ProbeSequences",
                 {{"entropy.probe_sequences", "0"}},
                 "entropy.probe_sequences",
                 "set entropy.probe_sequences to 1"},
        RuleCase{"TelemetryInterval",
                 {{"entropy.telemetry_interval", "-1"}},
                 "entropy.telemetry_interval",
                 "set entropy.telemetry_interval to 0"},
        RuleCase{"CheckpointEvery",
                 {{"checkpoint.every", "-1"}},
                 "checkpoint.every",
                 "set checkpoint.every to 0"},
        RuleCase{"CheckpointKeep",
                 {{"checkpoint.keep", "-1"}},
                 "checkpoint.keep",
                 "set checkpoint.keep to 0"},
        RuleCase{"EvalLimit", {{"eval.limit", "-1"}}, "eval.limit", "set eval.limit to 0"},
        RuleCase{"EvalBatch", {{"eval.batch_size", "0"}}, "eval.batch_size",
                 "set eval.batch_size to 1"},
        RuleCase{"EvalEmptyTask", {{"eval.tasks", "[a.jsonl, '']"}}, "eval.tasks",
                 "remove the empty entry"},
        RuleCase{"EvalSameTaskName",
                 {{"eval.tasks", "[x/arc.jsonl, y/arc.jsonl]"}},
                 "eval.tasks",
                 "rename one of the files"}),
    [](const testing::TestParamInfo<RuleCase>& info) { return info.param.name; });

TEST(ConfigValidationTest, GrowthRulesDoNotApplyToVanilla) {
  RunConfig cfg = Example();
  ASSERT_TRUE(SetConfigValue(cfg, "variant", "vanilla").ok());
  ASSERT_TRUE(SetConfigValue(cfg, "growth.k_max", "0").ok());
  ASSERT_TRUE(SetConfigValue(cfg, "growth.t_start", "1000").ok());
  EXPECT_TRUE(ValidateRunConfig(cfg).ok());
}

TEST(ConfigValidationTest, HeadCountIgnoredForAllHeadsAndBlockLoop) {
  RunConfig cfg = Example();
  ASSERT_TRUE(SetConfigValue(cfg, "growth.heads", "9").ok());
  ASSERT_TRUE(SetConfigValue(cfg, "growth.head_policy", "all").ok());
  EXPECT_TRUE(ValidateRunConfig(cfg).ok());
  ASSERT_TRUE(SetConfigValue(cfg, "growth.head_policy", "high").ok());
  ASSERT_TRUE(SetConfigValue(cfg, "variant", "block_loop").ok());
  EXPECT_TRUE(ValidateRunConfig(cfg).ok());
}

TEST(ConfigValidationTest, DataPathsAreNeededOnlyToTrain) {
  RunConfig cfg;  // no data paths: enough to plan or benchmark
  EXPECT_TRUE(ValidateRunConfig(cfg).ok());
  absl::Status status = ValidateDataFiles(cfg);
  ASSERT_FALSE(status.ok());
  EXPECT_TRUE(Contains(std::string(status.message()), "<config>: data.train: is empty"));
  EXPECT_TRUE(Contains(std::string(status.message()), "data/brown/train.u16"));
}

TEST(ConfigJsonTest, CanonicalJsonRoundTrips) {
  for (const char* variant : {"vanilla", "block_loop", "sgt"}) {
    RunConfig cfg = Example();
    ASSERT_TRUE(SetConfigValue(cfg, "variant", variant).ok());
    ASSERT_TRUE(SetConfigValue(cfg, "train.lr", "6.0e-4").ok());
    ASSERT_TRUE(SetConfigValue(cfg, "train.seed", "18446744073709551615").ok());
    ASSERT_TRUE(SetConfigValue(cfg, "growth.fade", "exponential").ok());
    ASSERT_TRUE(SetConfigValue(cfg, "data.train", "\"dir with space/x.u16\"").ok());
    const std::string json = CanonicalJson(cfg);
    absl::StatusOr<RunConfig> back = RunConfigFromJson(json);
    ASSERT_TRUE(back.ok()) << back.status() << "\n" << json;
    EXPECT_EQ(CanonicalJson(*back), json);
    EXPECT_EQ(back->train.seed, UINT64_MAX);
    EXPECT_EQ(back->data.train, "dir with space/x.u16");
  }
}

TEST(ConfigJsonTest, CanonicalJsonIsSortedCompactAndDropsNonRunFields) {
  RunConfig cfg = Example();
  cfg.name = "some-name";
  const std::string json = CanonicalJson(cfg);
  EXPECT_EQ(json.find(' '), std::string::npos) << json;
  EXPECT_EQ(json.rfind("{\"data\":{\"train\":", 0), 0u) << json;
  EXPECT_LT(json.find("\"entropy\""), json.find("\"growth\""));
  EXPECT_LT(json.find("\"growth\""), json.find("\"model\""));
  EXPECT_TRUE(Contains(json, "\"betas\":[0.9,0.95]"));
  EXPECT_TRUE(Contains(json, "\"variant\":\"sgt\""));
  EXPECT_TRUE(Contains(json, "\"head_policy\":\"high\""));
  EXPECT_EQ(json.find("some-name"), std::string::npos);
  EXPECT_EQ(json.find("checkpoint"), std::string::npos);
  EXPECT_EQ(json.find("source"), std::string::npos);
  EXPECT_EQ(json.find("example.yaml"), std::string::npos);
}

TEST(ConfigJsonTest, EvalTravelsToWorkersButIsNotPartOfTheRun) {
  RunConfig cfg = Example();
  cfg.name = "with-eval";
  ASSERT_TRUE(SetConfigValue(cfg, "eval.tasks", "[tasks/arith.jsonl, 'dir with space/arc.jsonl']").ok());
  ASSERT_TRUE(SetConfigValue(cfg, "eval.at_checkpoints", "true").ok());
  ASSERT_TRUE(SetConfigValue(cfg, "eval.limit", "50").ok());
  ASSERT_TRUE(ValidateRunConfig(cfg).ok()) << ValidateRunConfig(cfg);
  // Scoring does not change training: the run's identity is the same with or without it.
  EXPECT_EQ(CanonicalJson(cfg), CanonicalJson(Example()));
  const std::string whole = WorkerConfigJson(cfg);
  EXPECT_TRUE(Contains(whole, "\"eval\":{")) << whole;
  EXPECT_TRUE(Contains(whole, "\"name\":\"with-eval\"")) << whole;
  absl::StatusOr<RunConfig> back = RunConfigFromJson(whole);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->eval.tasks, cfg.eval.tasks);
  EXPECT_TRUE(back->eval.at_checkpoints);
  EXPECT_EQ(back->eval.limit, 50);
  EXPECT_EQ(back->name, "with-eval");
  EXPECT_EQ(WorkerConfigJson(*back), whole);
}

TEST(ConfigParseTest, EvalSectionParses) {
  absl::StatusOr<RunConfig> cfg = ParseRunConfig(
      "eval:\n  tasks:\n    - a.jsonl\n    - b.jsonl\n  tokenizer: t.model\n  batch_size: 4\n",
      "e.yaml");
  ASSERT_TRUE(cfg.ok()) << cfg.status();
  EXPECT_EQ(cfg->eval.tasks, (std::vector<std::string>{"a.jsonl", "b.jsonl"}));
  EXPECT_EQ(cfg->eval.tokenizer, "t.model");
  EXPECT_EQ(cfg->eval.batch_size, 4);
  EXPECT_FALSE(cfg->eval.at_checkpoints);
  absl::StatusOr<RunConfig> bad = ParseRunConfig("eval:\n  tasks: a.jsonl\n", "e.yaml");
  ASSERT_FALSE(bad.ok());
  EXPECT_TRUE(Contains(std::string(bad.status().message()), "e.yaml:2:")) << bad.status();
  EXPECT_TRUE(Contains(std::string(bad.status().message()), "expected a list of strings"))
      << bad.status();
}

TEST(ConfigJsonTest, VanillaIgnoresGrowthAndEntropy) {
  RunConfig a = Example();
  ASSERT_TRUE(SetConfigValue(a, "variant", "vanilla").ok());
  RunConfig b = a;
  ASSERT_TRUE(SetConfigValue(b, "growth.k_max", "3").ok());
  ASSERT_TRUE(SetConfigValue(b, "entropy.ema_decay", "0.9").ok());
  EXPECT_EQ(CanonicalJson(a), CanonicalJson(b));
  EXPECT_EQ(CanonicalJson(a).find("growth"), std::string::npos);
  EXPECT_EQ(CanonicalJson(a).find("entropy"), std::string::npos);

  RunConfig c = Example();
  RunConfig d = c;
  ASSERT_TRUE(SetConfigValue(d, "growth.k_max", "3").ok());
  EXPECT_NE(CanonicalJson(c), CanonicalJson(d));
}

TEST(ConfigJsonTest, ChangingTheRunChangesTheJson) {
  RunConfig a = Example();
  RunConfig b = a;
  ASSERT_TRUE(SetConfigValue(b, "train.seed", "2").ok());
  EXPECT_NE(CanonicalJson(a), CanonicalJson(b));
  RunConfig c = a;
  ASSERT_TRUE(SetConfigValue(c, "checkpoint.every", "10").ok());
  EXPECT_EQ(CanonicalJson(a), CanonicalJson(c));
}

TEST(ConfigJsonTest, MissingSectionsTakeDefaults) {
  absl::StatusOr<RunConfig> cfg = RunConfigFromJson(
      R"({"variant":"block_loop","data":{"train":"a.u16","validation":"b.u16"}})");
  ASSERT_TRUE(cfg.ok()) << cfg.status();
  RunConfig defaults;
  EXPECT_EQ(cfg->variant, Variant::kBlockLoop);
  EXPECT_EQ(cfg->model.d_ff, defaults.model.d_ff);
  EXPECT_EQ(cfg->train.steps, defaults.train.steps);
  EXPECT_EQ(cfg->growth.k_max, defaults.growth.k_max);
}

TEST(ConfigJsonTest, BriefReadsDeviceAndShapeOfCanonicalJson) {
  RunConfig cfg = Example();
  ASSERT_TRUE(SetConfigValue(cfg, "train.device", "cuda").ok());
  ASSERT_TRUE(SetConfigValue(cfg, "model.layers", "6").ok());
  ASSERT_TRUE(SetConfigValue(cfg, "model.heads", "3").ok());
  const RunConfigBrief b = BriefOfConfigJson(CanonicalJson(cfg));
  EXPECT_TRUE(b.is_object);
  EXPECT_EQ(b.device, "cuda");
  EXPECT_EQ(b.layers, 6);
  EXPECT_EQ(b.heads, 3);
}

TEST(ConfigJsonTest, BriefKeepsDefaultsForWhatIsMissingOrMistyped) {
  for (const char* text : {"", "not json", "[1,2]", "{}", R"({"train":{"device":7}})",
                           R"({"train":"cpu","model":{"layers":"6","heads":2.5}})"}) {
    const RunConfigBrief b = BriefOfConfigJson(text);
    EXPECT_EQ(b.is_object, text[0] == '{') << text;
    EXPECT_EQ(b.device, "cpu") << text;
    EXPECT_EQ(b.layers, 0) << text;
    EXPECT_EQ(b.heads, 0) << text;
  }
  EXPECT_EQ(BriefOfConfigJson(R"({"model":{"layers":4}})").layers, 4);
}

TEST(ConfigJsonTest, JsonErrorsAreReported) {
  EXPECT_TRUE(Contains(ErrorOf(RunConfigFromJson("{\"model\": ")), "malformed JSON"));
  EXPECT_TRUE(Contains(ErrorOf(RunConfigFromJson(R"({"train":{"steps":"300"}})")),
                       "train.steps: expected an integer, got the string \"300\""));
  EXPECT_TRUE(
      Contains(ErrorOf(RunConfigFromJson(R"({"growth":{"kmax":1}})")), "did you mean 'k_max'?"));
  EXPECT_TRUE(Contains(ErrorOf(RunConfigFromJson(R"({"train":{"steps":1.5}})")),
                       "train.steps: expected an integer"));
}

TEST(ConfigSetTest, SetsValuesOfEveryKind) {
  RunConfig cfg = Example();
  EXPECT_TRUE(SetConfigValue(cfg, "growth.k_max", "2").ok());
  EXPECT_EQ(cfg.growth.k_max, 2);
  EXPECT_TRUE(SetConfigValue(cfg, "train.lr", "6e-4").ok());
  EXPECT_DOUBLE_EQ(cfg.train.lr, 6e-4);
  EXPECT_TRUE(SetConfigValue(cfg, "train.betas", "[0.8, 0.99]").ok());
  EXPECT_DOUBLE_EQ(cfg.train.beta1, 0.8);
  EXPECT_DOUBLE_EQ(cfg.train.beta2, 0.99);
  EXPECT_TRUE(SetConfigValue(cfg, "train.extrapolation", "[]").ok());
  EXPECT_TRUE(cfg.train.extrapolation.empty());
  EXPECT_TRUE(SetConfigValue(cfg, "variant", "block_loop").ok());
  EXPECT_EQ(cfg.variant, Variant::kBlockLoop);
  EXPECT_TRUE(SetConfigValue(cfg, "growth.include_first_layer", "true").ok());
  EXPECT_TRUE(cfg.growth.include_first_layer);
  EXPECT_TRUE(SetConfigValue(cfg, "name", "fork-1").ok());
  EXPECT_EQ(cfg.name, "fork-1");
  EXPECT_TRUE(ValidateRunConfig(cfg).ok());
  EXPECT_EQ(cfg.locations.count("growth.k_max"), 0u);
}

TEST(ConfigSetTest, RejectsUnknownKeysAndBadValues) {
  RunConfig cfg = Example();
  absl::Status s = SetConfigValue(cfg, "growth.kmax", "2");
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(Contains(std::string(s.message()), "growth.kmax: unknown key"));
  EXPECT_TRUE(Contains(std::string(s.message()), "did you mean 'k_max'?"));

  s = SetConfigValue(cfg, "growth", "{k_max: 2}");
  EXPECT_TRUE(Contains(std::string(s.message()), "growth: is a section"));

  s = SetConfigValue(cfg, "growth.k_max", "two");
  EXPECT_TRUE(Contains(std::string(s.message()), "growth.k_max: expected an integer"));
  s = SetConfigValue(cfg, "growth.head_policy", "entropy");
  EXPECT_TRUE(Contains(std::string(s.message()), "one of: high, low, random, all"));
  s = SetConfigValue(cfg, "train.seed", "-1");
  EXPECT_TRUE(Contains(std::string(s.message()), "must not be negative"));
  s = SetConfigValue(cfg, "train.betas", "[0.9, 0.95");
  EXPECT_TRUE(Contains(std::string(s.message()), "malformed YAML"));
  EXPECT_EQ(cfg.growth.k_max, 1);  // failed sets leave the field alone
}

TEST(ConfigNamesTest, NamesAreTheYamlSpellings) {
  EXPECT_STREQ(VariantName(Variant::kVanilla), "vanilla");
  EXPECT_STREQ(VariantName(Variant::kBlockLoop), "block_loop");
  EXPECT_STREQ(VariantName(Variant::kSgt), "sgt");
  EXPECT_STREQ(HeadPolicyName(HeadPolicy::kHighEntropy), "high");
  EXPECT_STREQ(HeadPolicyName(HeadPolicy::kAll), "all");
  EXPECT_STREQ(GrowthDirectionName(GrowthDirection::kShallowToDeep), "s2d");
  EXPECT_STREQ(DeviceName(Device::kCuda), "cuda");
  EXPECT_STREQ(GrowthScheduleName(GrowthSchedule::kFixed), "fixed");
  EXPECT_STREQ(HeadTransitionName(HeadTransition::kFade), "fade");
  EXPECT_STREQ(FadeShapeName(FadeShape::kExponential), "exponential");
  EXPECT_STREQ(DeepenRuleName(DeepenRule::kReference), "reference");
  EXPECT_STREQ(NoCandidateRuleName(NoCandidateRule::kFix), "fix");
  EXPECT_STREQ(EntropySignalName(EntropySignal::kProbe), "probe");
  EXPECT_STREQ(LoopedHeadEntropyName(LoopedHeadEntropy::kLastLoop), "last_loop");
}

// Writes a raw token file of `bytes` bytes and, unless sidecar is empty, its sidecar.
class ConfigDataFilesTest : public testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::path(testing::TempDir()) /
           ("config_test_" +
            std::string(testing::UnitTest::GetInstance()->current_test_info()->name()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    cfg_ = Example();
    cfg_.data.train = (dir_ / "train.u16").string();
    cfg_.data.validation = (dir_ / "val.u16").string();
  }
  void TearDown() override { fs::remove_all(dir_); }

  void Write(const std::string& path, size_t bytes, const std::string& sidecar) {
    std::ofstream(path, std::ios::binary) << std::string(bytes, '\0');
    if (!sidecar.empty()) std::ofstream(path + ".json") << sidecar;
  }
  static std::string Sidecar(const std::string& dtype, int64_t vocab, int64_t count) {
    return "{\"dtype\":\"" + dtype + "\",\"vocab_size\":" + std::to_string(vocab) +
           ",\"count\":" + std::to_string(count) + ",\"tokenizer\":\"t.model\",\"sha256\":\"0\"}";
  }
  std::string Error() {
    absl::Status s = ValidateDataFiles(cfg_);
    EXPECT_FALSE(s.ok());
    if (!s.ok()) {
      ExpectProblemAllowedFix(std::string(s.message()));
    }
    return std::string(s.message());
  }

  fs::path dir_;
  RunConfig cfg_;
};

TEST_F(ConfigDataFilesTest, GoodFilesPass) {
  Write(cfg_.data.train, 200, Sidecar("uint16", 4096, 100));
  Write(cfg_.data.validation, 40, Sidecar("uint32", 4096, 10));
  EXPECT_TRUE(ValidateDataFiles(cfg_).ok()) << ValidateDataFiles(cfg_);
}

TEST_F(ConfigDataFilesTest, EmptyPathsNameTheKeyAndFix) {
  Write(cfg_.data.train, 200, Sidecar("uint16", 4096, 100));
  Write(cfg_.data.validation, 40, Sidecar("uint32", 4096, 10));
  for (const auto& [key, fix] :
       {std::pair<std::string, std::string>{"data.train", "data/brown/train.u16"},
        {"data.validation", "data/brown/val.u16"}}) {
    RunConfig saved = cfg_;
    ASSERT_TRUE(SetConfigValue(cfg_, key, "''").ok());
    EXPECT_TRUE(ValidateRunConfig(cfg_).ok()) << key;  // planning and benchmarks need no data
    const std::string message = Error();
    EXPECT_TRUE(Contains(message, ": " + key + ": is empty")) << message;
    EXPECT_TRUE(Contains(message, "set " + key + " to e.g. " + fix)) << message;
    cfg_ = saved;
  }
}

TEST_F(ConfigDataFilesTest, RelativePathsResolveAgainstTheCurrentDirectory) {
  Write(cfg_.data.train, 200, Sidecar("uint16", 4096, 100));
  Write(cfg_.data.validation, 40, Sidecar("uint32", 4096, 10));
  const fs::path old = fs::current_path();
  fs::current_path(dir_);
  cfg_.data.train = "train.u16";
  cfg_.data.validation = "./val.u16";
  absl::Status s = ValidateDataFiles(cfg_);
  fs::current_path(old);
  EXPECT_TRUE(s.ok()) << s;
}

TEST_F(ConfigDataFilesTest, EvalTaskFilesAndTokenizerMustExist) {
  Write(cfg_.data.train, 200, Sidecar("uint16", 4096, 100));
  Write(cfg_.data.validation, 40, Sidecar("uint32", 4096, 10));
  cfg_.eval.tasks = {(dir_ / "arith.jsonl").string()};
  std::string message = Error();
  EXPECT_TRUE(Contains(message, "eval.tasks: task file")) << message;
  EXPECT_TRUE(Contains(message, "arith.jsonl' does not exist")) << message;
  EXPECT_TRUE(Contains(message, "sgt-data task")) << message;
  std::ofstream(dir_ / "arith.jsonl") << "{}\n";
  EXPECT_TRUE(ValidateDataFiles(cfg_).ok()) << ValidateDataFiles(cfg_);
  cfg_.eval.tokenizer = (dir_ / "missing.model").string();
  message = Error();
  EXPECT_TRUE(Contains(message, "eval.tokenizer: ")) << message;
  EXPECT_TRUE(Contains(message, "does not exist")) << message;
}

TEST_F(ConfigDataFilesTest, MissingFile) {
  Write(cfg_.data.validation, 40, Sidecar("uint32", 4096, 10));
  std::string message = Error();
  EXPECT_TRUE(Contains(message, "data.train: token file"));
  EXPECT_TRUE(Contains(message, "does not exist"));
  EXPECT_TRUE(Contains(message, "sgt-data"));
}

TEST_F(ConfigDataFilesTest, MissingSidecar) {
  Write(cfg_.data.train, 200, Sidecar("uint16", 4096, 100));
  Write(cfg_.data.validation, 40, "");
  std::string message = Error();
  EXPECT_TRUE(Contains(message, "data.validation: sidecar"));
  EXPECT_TRUE(Contains(message, "is missing"));
}

TEST_F(ConfigDataFilesTest, BadSidecar) {
  Write(cfg_.data.train, 200, "{not json");
  EXPECT_TRUE(Contains(Error(), "is not valid JSON"));
  Write(cfg_.data.train, 200, R"({"dtype":"int8","vocab_size":4096,"count":200})");
  EXPECT_TRUE(Contains(Error(), "has dtype 'int8'"));
  Write(cfg_.data.train, 200, R"({"dtype":"uint16"})");
  EXPECT_TRUE(Contains(Error(), "lacks dtype, vocab_size or count"));
}

TEST_F(ConfigDataFilesTest, VocabMismatch) {
  Write(cfg_.data.train, 200, Sidecar("uint16", 8000, 100));
  std::string message = Error();
  EXPECT_TRUE(Contains(message, "data.train:"));
  EXPECT_TRUE(Contains(message, "vocab_size 8000 but model.vocab_size is 4096"));
  EXPECT_TRUE(Contains(message, "set model.vocab_size: 8000"));
}

TEST_F(ConfigDataFilesTest, SizeMismatch) {
  Write(cfg_.data.train, 200, Sidecar("uint16", 4096, 100));
  Write(cfg_.data.validation, 38, Sidecar("uint32", 4096, 10));
  std::string message = Error();
  EXPECT_TRUE(Contains(message, "data.validation:"));
  EXPECT_TRUE(Contains(message, "has 38 bytes but its sidecar says 10 uint32 tokens = 40 bytes"));
}

// Found by fuzz/fuzz_token_file: count x bytes per token overflowed (undefined behaviour) before
// the size comparison.
TEST_F(ConfigDataFilesTest, CountPastAnyFileSize) {
  Write(cfg_.data.train, 2, Sidecar("uint16", 4096, int64_t{1} << 62));
  std::string message = Error();
  EXPECT_TRUE(Contains(message, "data.train:"));
  EXPECT_TRUE(Contains(message, "says count 4611686018427387904, more uint16 tokens than a file"));
}

}  // namespace
}  // namespace sgt
