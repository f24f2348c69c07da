// Run configuration: YAML parsing, validation, canonical JSON and dotted-key overrides
// (docs/config.md).
//
// Every key lives in one table, VisitFields, which pairs a dotted key with the field it sets.
// The YAML parser, RunConfigFromJson, SetConfigValue and CanonicalJson all walk that table, so a
// new key is added in one place. Errors read
//   <file>:<line>:<col>: <dotted.key>: <problem>; <allowed range or values>; <fix>
// and never escape as exceptions.
#include "libsgt/core/config.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/types/span.h"
#include "libsgt/core/config_yaml.h"

namespace sgt {
namespace {

// ---------------------------------------------------------------------------------------------
// Enum spellings (the YAML and JSON names).

template <typename E>
using EnumName = std::pair<E, const char*>;

constexpr EnumName<Variant> kVariantNames[] = {
    {Variant::kVanilla, "vanilla"}, {Variant::kBlockLoop, "block_loop"}, {Variant::kSgt, "sgt"}};
constexpr EnumName<HeadPolicy> kHeadPolicyNames[] = {{HeadPolicy::kHighEntropy, "high"},
                                                     {HeadPolicy::kLowEntropy, "low"},
                                                     {HeadPolicy::kRandom, "random"},
                                                     {HeadPolicy::kAll, "all"}};
constexpr EnumName<GrowthDirection> kGrowthDirectionNames[] = {
    {GrowthDirection::kDeepToShallow, "d2s"}, {GrowthDirection::kShallowToDeep, "s2d"}};
constexpr EnumName<GrowthSchedule> kGrowthScheduleNames[] = {
    {GrowthSchedule::kProgressive, "progressive"}, {GrowthSchedule::kFixed, "fixed"}};
constexpr EnumName<HeadTransition> kHeadTransitionNames[] = {{HeadTransition::kHard, "hard"},
                                                             {HeadTransition::kFade, "fade"}};
constexpr EnumName<FadeShape> kFadeShapeNames[] = {{FadeShape::kLinear, "linear"},
                                                   {FadeShape::kCosine, "cosine"},
                                                   {FadeShape::kExponential, "exponential"}};
constexpr EnumName<DeepenRule> kDeepenRuleNames[] = {{DeepenRule::kPaper, "paper"},
                                                     {DeepenRule::kReference, "reference"}};
constexpr EnumName<NoCandidateRule> kNoCandidateRuleNames[] = {{NoCandidateRule::kHold, "hold"},
                                                               {NoCandidateRule::kFix, "fix"}};
constexpr EnumName<EntropySignal> kEntropySignalNames[] = {{EntropySignal::kTrain, "train"},
                                                           {EntropySignal::kProbe, "probe"}};
constexpr EnumName<LoopedHeadEntropy> kLoopedHeadEntropyNames[] = {
    {LoopedHeadEntropy::kBase, "base"}, {LoopedHeadEntropy::kLastLoop, "last_loop"}};
constexpr EnumName<Device> kDeviceNames[] = {{Device::kCpu, "cpu"}, {Device::kCuda, "cuda"}};

// Overloads that let the generic codec find the table of an enum type.
absl::Span<const EnumName<Variant>> Names(Variant) { return kVariantNames; }
absl::Span<const EnumName<HeadPolicy>> Names(HeadPolicy) { return kHeadPolicyNames; }
absl::Span<const EnumName<GrowthDirection>> Names(GrowthDirection) { return kGrowthDirectionNames; }
absl::Span<const EnumName<GrowthSchedule>> Names(GrowthSchedule) { return kGrowthScheduleNames; }
absl::Span<const EnumName<HeadTransition>> Names(HeadTransition) { return kHeadTransitionNames; }
absl::Span<const EnumName<FadeShape>> Names(FadeShape) { return kFadeShapeNames; }
absl::Span<const EnumName<DeepenRule>> Names(DeepenRule) { return kDeepenRuleNames; }
absl::Span<const EnumName<NoCandidateRule>> Names(NoCandidateRule) { return kNoCandidateRuleNames; }
absl::Span<const EnumName<EntropySignal>> Names(EntropySignal) { return kEntropySignalNames; }
absl::Span<const EnumName<LoopedHeadEntropy>> Names(LoopedHeadEntropy) {
  return kLoopedHeadEntropyNames;
}
absl::Span<const EnumName<Device>> Names(Device) { return kDeviceNames; }

template <typename E>
const char* NameOf(E value) {
  for (const auto& [v, name] : Names(value)) {
    if (v == value) return name;
  }
  return "?";
}

template <typename E>
std::string AllNames() {
  std::vector<std::string> names;
  for (const auto& entry : Names(E{})) names.push_back(entry.second);
  return absl::StrJoin(names, ", ");
}

// ---------------------------------------------------------------------------------------------
// The table of keys.

// train.betas is one YAML key, [beta1, beta2], over two struct fields.
template <typename D>
struct DoublePair {
  D& first;
  D& second;
};

template <typename D>
DoublePair<D> Pair(D& a, D& b) {
  return {a, b};
}

// Calls visit(dotted_key, field) for every configurable field. `Config` is RunConfig or
// const RunConfig. Order is the order of docs/config.md; JSON output sorts it anyway.
template <typename Config, typename Visitor>
void VisitFields(Config& c, Visitor&& visit) {
  visit("name", c.name);
  visit("variant", c.variant);

  visit("model.layers", c.model.layers);
  visit("model.d_model", c.model.d_model);
  visit("model.heads", c.model.heads);
  visit("model.d_ff", c.model.d_ff);
  visit("model.context", c.model.context);
  visit("model.vocab_size", c.model.vocab_size);
  visit("model.norm_eps", c.model.norm_eps);
  visit("model.init_std", c.model.init_std);
  visit("model.init_truncation", c.model.init_truncation);
  visit("model.rope_theta", c.model.rope_theta);

  visit("train.steps", c.train.steps);
  visit("train.batch_size", c.train.batch_size);
  visit("train.micro_batch_size", c.train.micro_batch_size);
  visit("train.lr", c.train.lr);
  visit("train.warmup_steps", c.train.warmup_steps);
  visit("train.min_lr_ratio", c.train.min_lr_ratio);
  visit("train.weight_decay", c.train.weight_decay);
  visit("train.decay_norms", c.train.decay_norms);
  visit("train.betas", Pair(c.train.beta1, c.train.beta2));
  visit("train.eps", c.train.eps);
  visit("train.grad_clip", c.train.grad_clip);
  visit("train.eval_interval", c.train.eval_interval);
  visit("train.eval_batches", c.train.eval_batches);
  visit("train.extrapolation", c.train.extrapolation);
  visit("train.seed", c.train.seed);
  visit("train.threads", c.train.threads);
  visit("train.device", c.train.device);
  visit("train.log_interval", c.train.log_interval);

  visit("growth.schedule", c.growth.schedule);
  visit("growth.t_start", c.growth.t_start);
  visit("growth.delta_t", c.growth.delta_t);
  visit("growth.layers", c.growth.layers);
  visit("growth.k_max", c.growth.k_max);
  visit("growth.heads", c.growth.heads);
  visit("growth.head_policy", c.growth.head_policy);
  visit("growth.head_seed", c.growth.head_seed);
  visit("growth.direction", c.growth.direction);
  visit("growth.include_first_layer", c.growth.include_first_layer);
  visit("growth.transition", c.growth.transition);
  visit("growth.fade", c.growth.fade);
  visit("growth.deepen", c.growth.deepen);
  visit("growth.no_candidate", c.growth.no_candidate);
  visit("growth.fixed_layers", c.growth.fixed_layers);
  visit("growth.fixed_from_step", c.growth.fixed_from_step);

  visit("entropy.signal", c.entropy.signal);
  visit("entropy.ema_decay", c.entropy.ema_decay);
  visit("entropy.looped_heads", c.entropy.looped_heads);
  visit("entropy.probe_sequences", c.entropy.probe_sequences);
  visit("entropy.telemetry_interval", c.entropy.telemetry_interval);
  visit("entropy.probe_telemetry", c.entropy.probe_telemetry);

  visit("data.train", c.data.train);
  visit("data.validation", c.data.validation);

  visit("checkpoint.at_boundaries", c.checkpoint.at_boundaries);
  visit("checkpoint.every", c.checkpoint.every);
  visit("checkpoint.keep", c.checkpoint.keep);
  visit("checkpoint.final", c.checkpoint.final);

  visit("flops.embedding", c.flops.embedding);

  visit("eval.tasks", c.eval.tasks);
  visit("eval.tokenizer", c.eval.tokenizer);
  visit("eval.at_checkpoints", c.eval.at_checkpoints);
  visit("eval.limit", c.eval.limit);
  visit("eval.batch_size", c.eval.batch_size);
}

// "growth.k_max" -> "growth"; "name" -> "".
std::string SectionOf(const std::string& key) {
  size_t dot = key.find('.');
  return dot == std::string::npos ? "" : key.substr(0, dot);
}

std::string LeafOf(const std::string& key) {
  size_t dot = key.find('.');
  return dot == std::string::npos ? key : key.substr(dot + 1);
}

struct KeySet {
  std::vector<std::string> leaves;    // every dotted key, table order
  std::vector<std::string> sections;  // "model", "train", ...
  bool IsLeaf(const std::string& k) const {
    return std::find(leaves.begin(), leaves.end(), k) != leaves.end();
  }
  bool IsSection(const std::string& k) const {
    return std::find(sections.begin(), sections.end(), k) != sections.end();
  }
};

const KeySet& Keys() {
  static const KeySet* keys = [] {
    auto* k = new KeySet;
    RunConfig scratch;
    VisitFields(scratch, [k](const char* key, auto&&) {
      k->leaves.push_back(key);
      std::string section = SectionOf(key);
      if (!section.empty() && !k->IsSection(section)) k->sections.push_back(section);
    });
    return k;
  }();
  return *keys;
}

// The first key of a section in table order, for examples in messages.
std::string FirstKeyOf(const std::string& section) {
  for (const std::string& k : Keys().leaves) {
    if (SectionOf(k) == section) return k;
  }
  return section;
}

// ---------------------------------------------------------------------------------------------
// Unknown-key suggestions.

size_t EditDistance(const std::string& a, const std::string& b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diagonal = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = up;
    }
  }
  return row[b.size()];
}

// The closest of `options` to `word`, or "" when none is close enough to be a typo.
std::string Closest(const std::string& word, const std::vector<std::string>& options) {
  std::string best;
  size_t best_distance = std::max<size_t>(2, word.size() / 3) + 1;
  for (const std::string& option : options) {
    size_t d = EditDistance(word, option);
    if (d < best_distance) {
      best_distance = d;
      best = option;
    }
  }
  return best;
}

// "<allowed>; <fix>" for an unknown dotted key (or section, when `key` has no dot).
std::string UnknownKeyAdvice(const std::string& key) {
  const KeySet& keys = Keys();
  std::string section = SectionOf(key);
  std::string leaf = LeafOf(key);
  std::vector<std::string> siblings;
  std::vector<std::string> all_leaves;
  for (const std::string& k : keys.leaves) {
    if (SectionOf(k) == section) siblings.push_back(LeafOf(k));
    all_leaves.push_back(LeafOf(k));
  }
  if (section.empty()) siblings.insert(siblings.end(), keys.sections.begin(), keys.sections.end());
  std::string where = section.empty() ? "at the top level" : absl::StrCat("in ", section);
  std::string allowed = absl::StrCat("valid keys ", where, ": ", absl::StrJoin(siblings, ", "));
  std::string near = Closest(leaf, siblings);
  if (!near.empty()) return absl::StrCat(allowed, "; did you mean '", near, "'?");
  // The right name in the wrong section: "model.k_max" -> "growth.k_max".
  for (const std::string& k : keys.leaves) {
    if (LeafOf(k) == leaf && k != key) {
      return absl::StrCat(allowed, "; did you mean '", k, "'? (move it under ", SectionOf(k), ")");
    }
  }
  return absl::StrCat(allowed, "; remove the key or fix its spelling (docs/config.md)");
}

// ---------------------------------------------------------------------------------------------
// Decoding one YAML value into one field. Each returns "" on success, else
// "<problem>; <allowed>; <fix>" without the location and key, which the caller adds.

std::string Decode(const YAML::Node& node, int64_t& out) {
  const std::string& s = node.IsScalar() ? node.Scalar() : "";
  bool digits = !s.empty() && s.find_first_not_of("+-0123456789") == std::string::npos;
  int64_t value = 0;
  if (!node.IsScalar() || IsQuoted(node) || !digits || !absl::SimpleAtoi(s, &value)) {
    bool fractional = node.IsScalar() && !IsQuoted(node) &&
                      s.find_first_not_of("+-0123456789.eE") == std::string::npos;
    return absl::StrCat("expected an integer, got ", Shown(node),
                        "; a whole number in [-2^63, 2^63)",
                        fractional ? "; write it without a fraction or exponent (e.g. 300)"
                                   : "; write a plain integer without quotes");
  }
  out = value;
  return "";
}

std::string Decode(const YAML::Node& node, uint64_t& out) {
  const std::string& s = node.IsScalar() ? node.Scalar() : "";
  if (node.IsScalar() && !IsQuoted(node) && !s.empty() && s[0] == '-') {
    return absl::StrCat("must not be negative, got ", s,
                        "; an integer in [0, 2^64); use a non-negative value");
  }
  bool digits = !s.empty() && s.find_first_not_of("+0123456789") == std::string::npos;
  uint64_t value = 0;
  if (!node.IsScalar() || IsQuoted(node) || !digits || !absl::SimpleAtoi(s, &value)) {
    return absl::StrCat("expected a non-negative integer, got ", Shown(node),
                        "; an integer in [0, 2^64); write a plain integer without quotes");
  }
  out = value;
  return "";
}

std::string Decode(const YAML::Node& node, double& out) {
  const std::string& s = node.IsScalar() ? node.Scalar() : "";
  bool numeric = !s.empty() && s.find_first_not_of("+-.0123456789eE") == std::string::npos &&
                 s.find_first_of("0123456789") != std::string::npos;
  double value = 0;
  if (!node.IsScalar() || IsQuoted(node) || !numeric || !absl::SimpleAtod(s, &value) ||
      !std::isfinite(value)) {
    return absl::StrCat("expected a finite number, got ", Shown(node),
                        "; a decimal number such as 0.001 or 1.0e-3; write it without quotes");
  }
  out = value;
  return "";
}

std::string Decode(const YAML::Node& node, bool& out) {
  const std::string& s = node.IsScalar() ? node.Scalar() : "";
  if (node.IsScalar() && !IsQuoted(node)) {
    if (s == "true" || s == "True" || s == "TRUE") {
      out = true;
      return "";
    }
    if (s == "false" || s == "False" || s == "FALSE") {
      out = false;
      return "";
    }
  }
  return absl::StrCat("expected a boolean, got ", Shown(node),
                      "; true or false; write true or false");
}

std::string Decode(const YAML::Node& node, std::string& out) {
  if (!node.IsScalar()) {
    return absl::StrCat("expected a string, got ", Shown(node), "; any text; write a value");
  }
  out = node.Scalar();
  return "";
}

std::string Decode(const YAML::Node& node, std::vector<int64_t>& out) {
  if (node.IsNull()) {  // "extrapolation:" with nothing after it means the empty list
    out.clear();
    return "";
  }
  if (!node.IsSequence()) {
    return absl::StrCat("expected a list of integers, got ", Shown(node),
                        "; a list such as [2, 3, 4]; write the values in square brackets");
  }
  std::vector<int64_t> values;
  for (size_t i = 0; i < node.size(); ++i) {
    int64_t v = 0;
    std::string error = Decode(node[i], v);
    if (!error.empty()) return absl::StrCat("element ", i, ": ", error);
    values.push_back(v);
  }
  out = std::move(values);
  return "";
}

std::string Decode(const YAML::Node& node, std::vector<std::string>& out) {
  if (node.IsNull()) {
    out.clear();
    return "";
  }
  if (!node.IsSequence()) {
    return absl::StrCat("expected a list of strings, got ", Shown(node),
                        "; a list such as [tasks/arc_easy.jsonl]; write the values in square "
                        "brackets or as a block list");
  }
  std::vector<std::string> values;
  for (size_t i = 0; i < node.size(); ++i) {
    std::string v;
    std::string error = Decode(node[i], v);
    if (!error.empty()) return absl::StrCat("element ", i, ": ", error);
    values.push_back(std::move(v));
  }
  out = std::move(values);
  return "";
}

std::string Decode(const YAML::Node& node, DoublePair<double> out) {
  if (!node.IsSequence() || node.size() != 2) {
    return absl::StrCat("expected a list of two numbers, got ", Shown(node),
                        node.IsSequence() ? absl::StrCat(" of ", node.size()) : "",
                        "; [beta1, beta2], each in [0, 1); write e.g. [0.9, 0.95]");
  }
  double a = 0, b = 0;
  std::string error = Decode(node[0], a);
  if (error.empty()) error = Decode(node[1], b);
  if (!error.empty()) return absl::StrCat("in [beta1, beta2]: ", error);
  out.first = a;
  out.second = b;
  return "";
}

template <typename E, typename = std::enable_if_t<std::is_enum_v<E>>>
std::string Decode(const YAML::Node& node, E& out) {
  if (node.IsScalar()) {
    for (const auto& [value, name] : Names(E{})) {
      if (node.Scalar() == name) {
        out = value;
        return "";
      }
    }
  }
  std::vector<std::string> names;
  for (const auto& entry : Names(E{})) names.push_back(entry.second);
  std::string near = node.IsScalar() ? Closest(node.Scalar(), names) : "";
  return absl::StrCat(
      "unknown value ", Shown(node), "; one of: ", AllNames<E>(),
      near.empty() ? "; pick one of those values" : absl::StrCat("; did you mean '", near, "'?"));
}

// ---------------------------------------------------------------------------------------------
// Encoding one field as JSON.

nlohmann::json Encode(int64_t v) { return v; }
nlohmann::json Encode(uint64_t v) { return v; }
nlohmann::json Encode(double v) { return v; }
nlohmann::json Encode(bool v) { return v; }
nlohmann::json Encode(const std::string& v) { return v; }
nlohmann::json Encode(const std::vector<int64_t>& v) { return v; }
nlohmann::json Encode(const std::vector<std::string>& v) { return v; }
nlohmann::json Encode(DoublePair<const double> v) {
  return nlohmann::json::array({v.first, v.second});
}
template <typename E, typename = std::enable_if_t<std::is_enum_v<E>>>
nlohmann::json Encode(E v) {
  return NameOf(v);
}

// ---------------------------------------------------------------------------------------------
// Locations and errors.

std::string FileName(const std::string& source) { return source.empty() ? "<config>" : source; }

std::string LineCol(const YAML::Mark& mark) {
  return absl::StrCat(mark.line + 1, ":", mark.column + 1);
}

// "<file>:<line>:<col>: " for a key, or for its section when the key was not written (the
// section is where it belongs), or the top of the file when neither was. A configuration built
// in code has no file: "<config>: ".
std::string Where(const RunConfig& cfg, const std::string& key) {
  for (const std::string& k : {key, SectionOf(key)}) {
    auto it = cfg.locations.find(k);
    if (!k.empty() && it != cfg.locations.end()) {
      return absl::StrCat(FileName(cfg.source), ":", it->second, ": ");
    }
  }
  if (cfg.source.empty() || cfg.locations.empty()) return absl::StrCat(FileName(cfg.source), ": ");
  return absl::StrCat(cfg.source, ":1:1: ");
}

absl::Status ErrorAt(const std::string& source, const YAML::Mark& mark, const std::string& key,
                     const std::string& message) {
  std::string where = mark.line >= 0 ? absl::StrCat(FileName(source), ":", LineCol(mark), ": ")
                                     : absl::StrCat(FileName(source), ": ");
  return absl::InvalidArgumentError(
      absl::StrCat(where, key.empty() ? "" : absl::StrCat(key, ": "), message));
}

// ---------------------------------------------------------------------------------------------
// Parsing a YAML tree.

// Assigns the value of `key` from `node` through the table.
absl::Status AssignField(RunConfig& cfg, const std::string& key, const YAML::Node& node,
                         const YAML::Mark& mark) {
  bool found = false;
  std::string error;
  VisitFields(cfg, [&](const char* k, auto&& field) {
    if (found || key != k) return;
    found = true;
    error = Decode(node, field);
  });
  if (!found) return ErrorAt(cfg.source, mark, key, "unknown key; " + UnknownKeyAdvice(key));
  if (!error.empty()) return ErrorAt(cfg.source, mark, key, error);
  return absl::OkStatus();
}

// Walks a mapping (top level or section), recording locations and assigning leaves.
absl::Status ParseMapping(const YAML::Node& map, const std::string& prefix, RunConfig& cfg) {
  std::set<std::string> seen;
  for (const auto& entry : map) {
    const YAML::Node& key_node = entry.first;
    const YAML::Node& value = entry.second;
    YAML::Mark mark = key_node.Mark();
    if (!key_node.IsScalar()) {
      return ErrorAt(cfg.source, mark, prefix.empty() ? "(top level)" : prefix,
                     "keys must be plain names; see docs/config.md for the keys; write name: "
                     "value");
    }
    std::string key = prefix.empty() ? key_node.Scalar() : prefix + "." + key_node.Scalar();
    if (!seen.insert(key).second) {
      return ErrorAt(cfg.source, mark, key,
                     absl::StrCat("duplicate key (first at line ", cfg.locations[key],
                                  "); each key at most once; remove one of them"));
    }
    cfg.locations[key] = LineCol(mark);
    if (prefix.empty() && Keys().IsSection(key)) {
      if (value.IsNull()) continue;  // "growth:" alone: all defaults
      if (!value.IsMap()) {
        return ErrorAt(cfg.source, mark, key,
                       absl::StrCat("expected a mapping, got ", Shown(value), "; keys such as ",
                                    FirstKeyOf(key), "; indent the keys of ", key,
                                    " under it (docs/config.md)"));
      }
      absl::Status s = ParseMapping(value, key, cfg);
      if (!s.ok()) return s;
      continue;
    }
    if (!Keys().IsLeaf(key)) {
      return ErrorAt(cfg.source, mark, key, "unknown key; " + UnknownKeyAdvice(key));
    }
    absl::Status s = AssignField(cfg, key, value, mark);
    if (!s.ok()) return s;
  }
  return absl::OkStatus();
}

// `validate` false leaves ValidateRunConfig to the caller (a sweep's base is checked only after
// the grid's overrides); types and key names are checked either way.
absl::StatusOr<RunConfig> ParseTree(const YAML::Node& root, const std::string& source,
                                    bool validate = true) {
  RunConfig cfg;
  cfg.source = source;
  if (!root.IsNull() && !root.IsMap()) {
    return ErrorAt(source, root.Mark(), "(top level)",
                   absl::StrCat("expected a mapping of sections, got ", Shown(root),
                                "; sections name, variant, model, train, growth, entropy, data, "
                                "checkpoint, flops, eval; see examples/tiny-sgt.yaml"));
  }
  if (root.IsMap()) {
    absl::Status s = ParseMapping(root, "", cfg);
    if (!s.ok()) return s;
  }
  if (!validate) return cfg;
  absl::Status s = ValidateRunConfig(cfg);
  if (!s.ok()) return s;
  return cfg;
}

// JSON -> YAML tree, so that RunConfigFromJson shares the YAML decoding (and its type checks).
YAML::Node ToYaml(const nlohmann::json& j) {
  switch (j.type()) {
    case nlohmann::json::value_t::object: {
      YAML::Node map(YAML::NodeType::Map);
      for (const auto& [k, v] : j.items()) map[k] = ToYaml(v);
      return map;
    }
    case nlohmann::json::value_t::array: {
      YAML::Node seq(YAML::NodeType::Sequence);
      for (const auto& v : j) seq.push_back(ToYaml(v));
      return seq;
    }
    case nlohmann::json::value_t::null:
      return YAML::Node(YAML::NodeType::Null);
    case nlohmann::json::value_t::string: {
      YAML::Node s(j.get<std::string>());
      s.SetTag("!");  // a JSON string stays a string: "5" is not an integer
      return s;
    }
    default:  // numbers and booleans: their JSON text is a plain YAML scalar
      return YAML::Node(j.dump());
  }
}

// ---------------------------------------------------------------------------------------------
// Validation.

// Collects the first problem; later checks are skipped once one has failed.
class Validator {
 public:
  explicit Validator(const RunConfig& cfg) : cfg_(cfg) {}

  bool ok() const { return status_.ok(); }
  absl::Status status() const { return status_; }

  // Records `problem; allowed; fix` for `key` unless `condition` holds.
  void Check(bool condition, const std::string& key, const std::string& problem,
             const std::string& allowed, const std::string& fix) {
    if (condition || !status_.ok()) return;
    status_ = absl::InvalidArgumentError(
        absl::StrCat(Where(cfg_, key), key, ": ", problem, "; ", allowed, "; ", fix));
  }

  template <typename T>
  void AtLeast(const std::string& key, T value, T min) {
    Check(value >= min, key, absl::StrCat("is ", value, ", below ", min),
          absl::StrCat("allowed: >= ", min), absl::StrCat("set ", key, " to ", min, " or more"));
  }

  // lo <= value (< or <=) hi.
  void InRange(const std::string& key, double value, double lo, double hi, bool hi_open) {
    bool inside = value >= lo && (hi_open ? value < hi : value <= hi);
    Check(inside, key, absl::StrCat("is ", value, ", outside the range"),
          absl::StrCat("allowed: [", lo, ", ", hi, hi_open ? ")" : "]"),
          absl::StrCat("set ", key, " to a value in that range"));
  }

  void Positive(const std::string& key, double value) {
    Check(value > 0, key, absl::StrCat("is ", value, ", not positive"), "allowed: > 0",
          absl::StrCat("set ", key, " to a positive number"));
  }

 private:
  const RunConfig& cfg_;
  absl::Status status_;
};

// Divisors of n, the few nearest to `near`, for fix hints ("such as 4 or 8").
std::string DivisorHint(int64_t n, int64_t near, bool even_quotient) {
  std::vector<int64_t> divisors;
  for (int64_t d = 1; d <= n && d <= 4096; ++d) {
    if (n % d == 0 && (!even_quotient || (n / d) % 2 == 0)) divisors.push_back(d);
  }
  std::sort(divisors.begin(), divisors.end(), [near](int64_t a, int64_t b) {
    return std::llabs(a - near) < std::llabs(b - near) ||
           (std::llabs(a - near) == std::llabs(b - near) && a < b);
  });
  if (divisors.size() > 2) divisors.resize(2);
  std::sort(divisors.begin(), divisors.end());
  return absl::StrJoin(divisors, " or ");
}

void ValidateModel(const ModelConfig& m, Validator& v) {
  v.AtLeast<int64_t>("model.layers", m.layers, 1);
  v.AtLeast<int64_t>("model.d_model", m.d_model, 1);
  v.AtLeast<int64_t>("model.heads", m.heads, 1);
  if (!v.ok()) return;
  // Good head counts: divisors of d_model that leave an even head size.
  const std::string hint = DivisorHint(m.d_model, m.heads, true);
  const std::string heads_fix =
      hint.empty()
          ? absl::StrCat("set model.d_model to a multiple of 2 x model.heads = ", 2 * m.heads,
                         " (d_model ", m.d_model,
                         " has no divisor that "
                         "leaves an even head size)")
          : absl::StrCat("set model.heads to a divisor of ", m.d_model,
                         " with an even quotient such as ", hint);
  v.Check(m.d_model % m.heads == 0, "model.heads",
          absl::StrCat("heads must divide d_model: ", m.d_model, " % ", m.heads, " != 0"),
          "allowed: a divisor of model.d_model", heads_fix);
  v.Check(m.d_model % m.heads != 0 || m.d_head() % 2 == 0, "model.heads",
          absl::StrCat("head size d_model / heads = ", m.d_model, " / ", m.heads, " = ", m.d_head(),
                       " is odd, and RoPE rotates pairs of dimensions"),
          "allowed: an even head size", heads_fix);
  v.AtLeast<int64_t>("model.d_ff", m.d_ff, 1);
  v.AtLeast<int64_t>("model.context", m.context, 2);
  v.Check(m.vocab_size >= 2 && m.vocab_size <= (int64_t{1} << 32), "model.vocab_size",
          absl::StrCat("is ", m.vocab_size, ", outside the range"), "allowed: [2, 2^32]",
          "set model.vocab_size to the tokenizer's vocabulary size (the data sidecar's "
          "vocab_size)");
  v.Positive("model.norm_eps", m.norm_eps);
  v.Positive("model.init_std", m.init_std);
  v.Check(m.init_truncation == 0 || m.init_truncation >= 1, "model.init_truncation",
          absl::StrCat("is ", m.init_truncation, " standard deviations"),
          "allowed: 0 (untruncated) or at least 1",
          "set model.init_truncation to 0, or to 3 as OLMo does");
  v.Positive("model.rope_theta", m.rope_theta);
}

void ValidateTrain(const TrainConfig& t, Validator& v) {
  v.AtLeast<int64_t>("train.steps", t.steps, 1);
  v.AtLeast<int64_t>("train.batch_size", t.batch_size, 1);
  v.AtLeast<int64_t>("train.micro_batch_size", t.micro_batch_size, 1);
  if (!v.ok()) return;
  v.Check(
      t.batch_size % t.micro_batch_size == 0, "train.micro_batch_size",
      absl::StrCat("must divide batch_size: ", t.batch_size, " % ", t.micro_batch_size, " != 0"),
      "allowed: a divisor of train.batch_size",
      absl::StrCat("set train.micro_batch_size to a divisor of ", t.batch_size, " such as ",
                   DivisorHint(t.batch_size, t.micro_batch_size, false)));
  v.Positive("train.lr", t.lr);
  v.Check(t.warmup_steps >= 0 && t.warmup_steps <= t.steps, "train.warmup_steps",
          absl::StrCat("is ", t.warmup_steps, ", outside [0, train.steps = ", t.steps, "]"),
          absl::StrCat("allowed: [0, ", t.steps, "]"),
          "set train.warmup_steps to at most train.steps (about 10% of it is usual)");
  v.InRange("train.min_lr_ratio", t.min_lr_ratio, 0, 1, false);
  v.AtLeast<double>("train.weight_decay", t.weight_decay, 0);
  v.Check(t.beta1 >= 0 && t.beta1 < 1, "train.betas",
          absl::StrCat("beta1 is ", t.beta1, ", outside the range"), "allowed: [0, 1)",
          "set train.betas to e.g. [0.9, 0.95]");
  v.Check(t.beta2 >= 0 && t.beta2 < 1, "train.betas",
          absl::StrCat("beta2 is ", t.beta2, ", outside the range"), "allowed: [0, 1)",
          "set train.betas to e.g. [0.9, 0.95]");
  v.Positive("train.eps", t.eps);
  v.AtLeast<double>("train.grad_clip", t.grad_clip, 0);
  v.AtLeast<int64_t>("train.eval_interval", t.eval_interval, 0);
  v.AtLeast<int64_t>("train.eval_batches", t.eval_batches, 1);
  for (size_t i = 0; i < t.extrapolation.size(); ++i) {
    v.Check(t.extrapolation[i] >= 1, "train.extrapolation",
            absl::StrCat("element ", i, " is ", t.extrapolation[i], ", below 1"),
            "allowed: multiples of model.context >= 1",
            "list multiples such as [2, 3, 4], or [] for none");
  }
  v.AtLeast<int64_t>("train.threads", t.threads, 1);
  v.AtLeast<int64_t>("train.log_interval", t.log_interval, 1);
}

void ValidateGrowth(const RunConfig& c, Validator& v) {
  const GrowthConfig& g = c.growth;
  const int64_t first_eligible = g.include_first_layer ? 0 : 1;
  const int64_t eligible = c.model.layers - first_eligible;
  const std::string eligible_text = absl::StrCat(
      eligible, " eligible layer", eligible == 1 ? "" : "s", " (model.layers = ", c.model.layers,
      g.include_first_layer ? "" : ", minus layer 0", ")");

  v.AtLeast<int64_t>("growth.k_max", g.k_max, 1);
  if (g.schedule == GrowthSchedule::kProgressive) {
    v.Check(g.t_start >= 1 && g.t_start <= c.train.steps, "growth.t_start",
            absl::StrCat("is ", g.t_start, ", outside [1, train.steps = ", c.train.steps, "]"),
            absl::StrCat("allowed: [1, ", c.train.steps, "]"),
            "set growth.t_start to a step before the end of training, or raise train.steps");
    v.AtLeast<int64_t>("growth.delta_t", g.delta_t, 1);
    v.AtLeast<int64_t>("growth.layers", g.layers, 1);
    v.Check(
        g.layers <= eligible, "growth.layers",
        absl::StrCat("L = ", g.layers, " exceeds the ", eligible_text),
        eligible >= 1 ? absl::StrCat("allowed: [1, ", eligible, "]")
                      : "allowed: none, the model has no eligible layer",
        eligible >= 1
            ? absl::StrCat("set growth.layers to at most ", eligible,
                           g.include_first_layer ? "" : ", or set growth.include_first_layer: true")
            : "set model.layers to 2 or more, or growth.include_first_layer: true");
  } else {
    v.Check(!g.fixed_layers.empty(), "growth.fixed_layers",
            "is empty, but growth.schedule is fixed",
            absl::StrCat("allowed: distinct layer indices in [", first_eligible, ", ",
                         c.model.layers - 1, "]"),
            "list the layers to loop, e.g. [2, 3], or set growth.schedule: progressive");
    std::set<int64_t> seen;
    for (int64_t layer : g.fixed_layers) {
      v.Check(
          layer >= 0 && layer < c.model.layers, "growth.fixed_layers",
          absl::StrCat("layer ", layer, " does not exist (model.layers = ", c.model.layers, ")"),
          absl::StrCat("allowed: [", first_eligible, ", ", c.model.layers - 1, "]"),
          "list only existing layer indices (0 is the shallowest)");
      v.Check(layer != 0 || g.include_first_layer, "growth.fixed_layers",
              "layer 0 is not eligible (paper Appendix C.4)",
              absl::StrCat("allowed: [1, ", c.model.layers - 1, "]"),
              "remove 0 from growth.fixed_layers, or set growth.include_first_layer: true");
      v.Check(seen.insert(layer).second, "growth.fixed_layers",
              absl::StrCat("layer ", layer, " is listed twice"), "allowed: distinct indices",
              "list each layer once");
    }
    v.Check(g.fixed_from_step >= 0 && g.fixed_from_step < c.train.steps, "growth.fixed_from_step",
            absl::StrCat("is ", g.fixed_from_step,
                         ", outside [0, train.steps - 1 = ", c.train.steps - 1, "]"),
            absl::StrCat("allowed: [0, ", c.train.steps - 1, "]"),
            "set growth.fixed_from_step to the step after which the layers loop (0: from the first "
            "step)");
  }
  // h matters only where heads are selected: SGT with a selective head policy.
  if (c.variant == Variant::kSgt && g.head_policy != HeadPolicy::kAll) {
    v.Check(g.heads >= 1 && g.heads <= c.model.heads, "growth.heads",
            absl::StrCat("h = ", g.heads, ", outside [1, model.heads = ", c.model.heads, "]"),
            absl::StrCat("allowed: [1, ", c.model.heads, "]"),
            absl::StrCat("set growth.heads to a value in [1, ", c.model.heads,
                         "], or growth.head_policy: all to loop every head"));
  }
}

void ValidateEntropy(const EntropyConfig& e, Validator& v) {
  v.InRange("entropy.ema_decay", e.ema_decay, 0, 1, true);
  v.AtLeast<int64_t>("entropy.probe_sequences", e.probe_sequences, 1);
  v.AtLeast<int64_t>("entropy.telemetry_interval", e.telemetry_interval, 0);
}

void ValidateRest(const RunConfig& c, Validator& v) {
  v.AtLeast<int64_t>("checkpoint.every", c.checkpoint.every, 0);
  v.AtLeast<int64_t>("checkpoint.keep", c.checkpoint.keep, 0);
  std::set<std::string> names;
  for (size_t i = 0; i < c.eval.tasks.size(); ++i) {
    const std::string& t = c.eval.tasks[i];
    const std::string stem = std::filesystem::path(t).stem().string();
    v.Check(!t.empty(), "eval.tasks", absl::StrCat("element ", i, " is empty"),
            "allowed: paths of task files (JSONL, docs/evaluation.md)",
            "remove the empty entry or write the task file's path");
    v.Check(t.empty() || names.insert(stem).second, "eval.tasks",
            absl::StrCat("element ", i, " (", t, ") has the same task name '", stem,
                         "' as an earlier one"),
            "allowed: task files whose names (file names without .jsonl) differ",
            "rename one of the files or list each task once");
  }
  v.AtLeast<int64_t>("eval.limit", c.eval.limit, 0);
  v.AtLeast<int64_t>("eval.batch_size", c.eval.batch_size, 1);
}

// ---------------------------------------------------------------------------------------------
// Data files.

absl::Status CheckTokenFile(const RunConfig& cfg, const std::string& key, const std::string& path) {
  namespace fs = std::filesystem;
  auto fail = [&](const std::string& problem, const std::string& allowed, const std::string& fix) {
    return absl::InvalidArgumentError(
        absl::StrCat(Where(cfg, key), key, ": ", problem, "; ", allowed, "; ", fix));
  };
  const std::string regenerate = "regenerate it with sgt-data (docs/config.md)";
  if (path.empty()) {
    return fail("is empty", "allowed: the path of a token file written by sgt-data",
                absl::StrCat("set ", key, " to e.g. data/brown/",
                             key == "data.train" ? "train" : "val", ".u16"));
  }
  std::error_code ec;
  fs::path resolved = fs::absolute(path, ec);
  if (!fs::is_regular_file(path, ec)) {
    return fail(absl::StrCat("token file '", path, "' does not exist (resolved to ",
                             resolved.string(), ")"),
                "allowed: a token file written by sgt-data, relative to the current directory",
                absl::StrCat("fix the path or ", regenerate));
  }
  const std::string sidecar = path + ".json";
  std::ifstream in(sidecar);
  if (!in) {
    return fail(absl::StrCat("sidecar '", sidecar, "' is missing"),
                "allowed: a JSON sidecar <path>.json beside every token file",
                absl::StrCat("copy the sidecar along with the token file, or ", regenerate));
  }
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception& e) {
    return fail(absl::StrCat("sidecar '", sidecar, "' is not valid JSON: ", e.what()),
                "allowed: {\"dtype\", \"vocab_size\", \"count\", \"tokenizer\", \"sha256\"}",
                regenerate);
  }
  const std::string format =
      "allowed: {\"dtype\": \"uint16\"|\"uint32\", \"vocab_size\": N, \"count\": N, ...}";
  if (!j.is_object() || !j.contains("dtype") || !j["dtype"].is_string() ||
      !j.contains("vocab_size") || !j["vocab_size"].is_number_integer() || !j.contains("count") ||
      !j["count"].is_number_integer()) {
    return fail(absl::StrCat("sidecar '", sidecar, "' lacks dtype, vocab_size or count"), format,
                regenerate);
  }
  const std::string dtype = j["dtype"].get<std::string>();
  if (dtype != "uint16" && dtype != "uint32") {
    return fail(absl::StrCat("sidecar '", sidecar, "' has dtype '", dtype, "'"), format,
                regenerate);
  }
  const int64_t vocab = j["vocab_size"].get<int64_t>();
  const int64_t count = j["count"].get<int64_t>();
  if (vocab != cfg.model.vocab_size) {
    return fail(
        absl::StrCat("'", path, "' was tokenized with vocab_size ", vocab,
                     " but model.vocab_size is ", cfg.model.vocab_size),
        "allowed: model.vocab_size equal to the sidecar's vocab_size",
        absl::StrCat("set model.vocab_size: ", vocab,
                     ", or tokenize the corpus with a vocabulary of ", cfg.model.vocab_size));
  }
  const int64_t bytes_per_token = dtype == "uint16" ? 2 : 4;
  if (dtype == "uint16" && vocab > 65536) {
    return fail(absl::StrCat("dtype uint16 cannot hold vocab_size ", vocab), format, regenerate);
  }
  if (count > std::numeric_limits<int64_t>::max() / bytes_per_token) {
    return fail(absl::StrCat("sidecar '", sidecar, "' says count ", count, ", more ", dtype,
                             " tokens than a file can hold"),
                format, regenerate);
  }
  const auto size = fs::file_size(path, ec);
  if (ec || count < 0 || static_cast<int64_t>(size) != count * bytes_per_token) {
    return fail(
        absl::StrCat("'", path, "' has ", ec ? 0 : size, " bytes but its sidecar says ", count, " ",
                     dtype, " tokens = ", count * bytes_per_token, " bytes"),
        "allowed: size = count x bytes per token",
        absl::StrCat("the file is truncated or does not belong to this sidecar; ", regenerate));
  }
  return absl::OkStatus();
}

}  // namespace

// yaml-cpp tags quoted scalars "!"; plain ones "?" (or "" when built in code).
bool IsQuoted(const YAML::Node& node) { return node.Tag() == "!"; }

std::string Shown(const YAML::Node& node) {
  if (node.IsNull()) return "nothing";
  if (node.IsMap()) return "a mapping";
  if (node.IsSequence()) return "a list";
  if (IsQuoted(node)) return absl::StrCat("the string \"", node.Scalar(), "\"");
  return absl::StrCat("'", node.Scalar(), "'");
}

// -------------------------------------------------------------------------------------------------
// Public API.

const char* VariantName(Variant v) { return NameOf(v); }
const char* HeadPolicyName(HeadPolicy p) { return NameOf(p); }
const char* GrowthDirectionName(GrowthDirection d) { return NameOf(d); }
const char* DeviceName(Device d) { return NameOf(d); }
const char* GrowthScheduleName(GrowthSchedule s) { return NameOf(s); }
const char* HeadTransitionName(HeadTransition t) { return NameOf(t); }
const char* FadeShapeName(FadeShape f) { return NameOf(f); }
const char* DeepenRuleName(DeepenRule r) { return NameOf(r); }
const char* NoCandidateRuleName(NoCandidateRule r) { return NameOf(r); }
const char* EntropySignalName(EntropySignal s) { return NameOf(s); }
const char* LoopedHeadEntropyName(LoopedHeadEntropy e) { return NameOf(e); }

absl::StatusOr<YAML::Node> LoadYamlDocument(const std::string& yaml_text,
                                            const std::string& source) {
  try {
    return YAML::Load(yaml_text);
  } catch (const YAML::Exception& e) {
    return ErrorAt(source, e.mark, "",
                   absl::StrCat("malformed YAML: ", e.msg,
                                "; YAML mappings of `key: value`; check the indentation, "
                                "brackets and quotes at this position"));
  }
}

absl::StatusOr<RunConfig> ParseRunConfig(const std::string& yaml_text, const std::string& source) {
  absl::StatusOr<YAML::Node> root = LoadYamlDocument(yaml_text, source);
  if (!root.ok()) return root.status();
  try {
    return ParseTree(*root, source);
  } catch (const YAML::Exception& e) {  // not expected: the walk checks node types first
    return ErrorAt(
        source, e.mark, "",
        absl::StrCat("cannot read the YAML: ", e.msg, "; see docs/config.md; fix the value here"));
  }
}

absl::StatusOr<RunConfig> ParseRunConfigNode(const YAML::Node& node, const std::string& source,
                                             bool validate) {
  try {
    return ParseTree(node, source, validate);
  } catch (const YAML::Exception& e) {  // not expected: the walk checks node types first
    return ErrorAt(
        source, e.mark, "",
        absl::StrCat("cannot read the YAML: ", e.msg, "; see docs/config.md; fix the value here"));
  }
}

std::string ClosestName(const std::string& word, const std::vector<std::string>& options) {
  return Closest(word, options);
}

bool IsRunConfigKey(const std::string& dotted_key) { return Keys().IsLeaf(dotted_key); }

bool IsRunConfigSection(const std::string& name) { return Keys().IsSection(name); }

absl::StatusOr<RunConfig> LoadRunConfig(const std::string& path) {
  std::error_code ec;
  std::ifstream in(path);
  if (!std::filesystem::is_regular_file(path, ec) || !in) {
    return absl::NotFoundError(absl::StrCat(
        path, ": cannot open the run configuration; a readable YAML file; check the path"));
  }
  std::stringstream text;
  text << in.rdbuf();
  return ParseRunConfig(text.str(), path);
}

absl::Status ValidateRunConfig(const RunConfig& cfg) {
  Validator v(cfg);
  ValidateModel(cfg.model, v);
  ValidateTrain(cfg.train, v);
  if (cfg.variant != Variant::kVanilla && v.ok()) ValidateGrowth(cfg, v);
  ValidateEntropy(cfg.entropy, v);
  ValidateRest(cfg, v);
  return v.status();
}

absl::Status ValidateDataFiles(const RunConfig& cfg) {
  absl::Status s = CheckTokenFile(cfg, "data.train", cfg.data.train);
  if (!s.ok()) return s;
  s = CheckTokenFile(cfg, "data.validation", cfg.data.validation);
  if (!s.ok()) return s;
  std::error_code ec;
  for (const std::string& t : cfg.eval.tasks) {
    if (!std::filesystem::is_regular_file(t, ec)) {
      return absl::NotFoundError(absl::StrCat(
          Where(cfg, "eval.tasks"), "eval.tasks: task file '", t, "' does not exist (resolved to ",
          std::filesystem::absolute(t, ec).string(),
          "); allowed: JSONL task files, relative to the current directory; fix the path, or "
          "write the file with `sgt-data task` (docs/evaluation.md)"));
    }
  }
  if (!cfg.eval.tokenizer.empty() && !std::filesystem::is_regular_file(cfg.eval.tokenizer, ec)) {
    return absl::NotFoundError(absl::StrCat(
        Where(cfg, "eval.tokenizer"), "eval.tokenizer: '", cfg.eval.tokenizer,
        "' does not exist; allowed: a SentencePiece model; fix the path, or leave eval.tokenizer "
        "out to use the one data.train was encoded with"));
  }
  return absl::OkStatus();
}

namespace {

// The configuration as JSON: every field (`whole`), or only those that change the losses (name,
// the checkpoint schedule and the eval section left out). Fields that do not apply (growth.* and
// entropy.* for vanilla) are left out either way.
std::string ConfigJson(const RunConfig& cfg, bool whole) {
  nlohmann::json j = nlohmann::json::object();
  VisitFields(cfg, [&](const char* key, auto&& field) {
    const std::string section = SectionOf(key);
    if (!whole && (section.empty() && std::string(key) == "name")) return;
    if (!whole && (section == "checkpoint" || section == "eval")) return;
    if (cfg.variant == Variant::kVanilla && (section == "growth" || section == "entropy")) return;
    if (section.empty()) {
      j[key] = Encode(field);
    } else {
      j[section][LeafOf(key)] = Encode(field);
    }
  });
  // Replace, not throw, on invalid UTF-8 in a path: this function cannot fail.
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace

std::string CanonicalJson(const RunConfig& cfg) { return ConfigJson(cfg, false); }

std::string WorkerConfigJson(const RunConfig& cfg) { return ConfigJson(cfg, true); }

RunConfigBrief BriefOfConfigJson(const std::string& json_text) {
  RunConfigBrief b;
  const nlohmann::json j = nlohmann::json::parse(json_text, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) return b;
  b.is_object = true;
  if (auto t = j.find("train"); t != j.end() && t->is_object()) {
    if (auto d = t->find("device"); d != t->end() && d->is_string())
      b.device = d->get<std::string>();
  }
  if (auto m = j.find("model"); m != j.end() && m->is_object()) {
    if (auto l = m->find("layers"); l != m->end() && l->is_number_integer())
      b.layers = l->get<int>();
    if (auto h = m->find("heads"); h != m->end() && h->is_number_integer()) b.heads = h->get<int>();
  }
  return b;
}

absl::StatusOr<RunConfig> RunConfigFromJson(const std::string& json_text) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(json_text);
  } catch (const nlohmann::json::exception& e) {
    return absl::InvalidArgumentError(
        absl::StrCat("<json>: malformed JSON: ", e.what(),
                     "; a JSON object as written by CanonicalJson; check the checkpoint's "
                     "config or regenerate it"));
  }
  try {
    return ParseTree(ToYaml(j), "<json>");
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("<json>: cannot read the configuration: ", e.msg,
                                                   "; see docs/config.md; fix the JSON"));
  } catch (const nlohmann::json::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(
        "<json>: cannot read the configuration: ", e.what(), "; see docs/config.md; fix the JSON"));
  }
}

absl::Status SetConfigValue(RunConfig& cfg, const std::string& dotted_key,
                            const std::string& yaml_value) {
  if (Keys().IsSection(dotted_key)) {
    return absl::InvalidArgumentError(
        absl::StrCat(dotted_key, ": is a section, not a key; one key at a time; set e.g. ",
                     FirstKeyOf(dotted_key)));
  }
  if (!Keys().IsLeaf(dotted_key)) {
    return absl::InvalidArgumentError(
        absl::StrCat(dotted_key, ": unknown key; ", UnknownKeyAdvice(dotted_key)));
  }
  YAML::Node node;
  try {
    node = YAML::Load(yaml_value);
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(
        absl::StrCat(dotted_key, ": value '", yaml_value, "' is malformed YAML: ", e.msg,
                     "; a YAML scalar or [list]; quote or bracket the value"));
  }
  std::string error;
  try {
    VisitFields(cfg, [&](const char* k, auto&& field) {
      if (dotted_key == k) error = Decode(node, field);
    });
  } catch (const YAML::Exception& e) {
    error = absl::StrCat("cannot read the value: ", e.msg, "; see docs/config.md; fix the value");
  }
  if (!error.empty()) return absl::InvalidArgumentError(absl::StrCat(dotted_key, ": ", error));
  // The value no longer comes from the file; errors fall back to the key's section.
  cfg.locations.erase(dotted_key);
  return absl::OkStatus();
}

}  // namespace sgt
