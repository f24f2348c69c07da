// Sweep files (docs/sweep.md): parsing, grid expansion, merging of identical runs. The FLOPs
// plan of an expanded sweep (sgtctl plan) is in sweep_plan.cc.
//
// The walk is in two passes: the top-level keys in file order (names, duplicates, scheduling
// settings), then base, grid and exclude in that order, because the grid's values are checked
// against the base configuration wherever the keys appear in the file. Every combination is
// then built with SetConfigValue on a copy of the base and validated; its locations point at
// the grid value that set a key, so a rule that fails names the line to fix.
#include "services/common/sweep.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "libsgt/core/config_yaml.h"
#include "libsgt/core/dist_env.h"
#include "libsgt/core/sha256.h"

namespace sgt {
namespace {

constexpr const char* kSweepKeys[] = {"name",         "description", "base",     "grid",
                                      "exclude",      "override",    "priority", "max_concurrent",
                                      "max_restarts", "devices",     "nodes"};
constexpr size_t kMaxNameLength = 100;
constexpr char kExampleFile[] = "examples/quickstart.yaml";

// ---------------------------------------------------------------------------------------------
// Messages: "<file>:<line>:<col>: <key>: <problem>; <allowed>; <fix>".

std::string LineCol(const YAML::Mark& mark) {
  if (mark.line < 0) return "1:1";  // a node built in code; not expected from YAML::Load
  return absl::StrCat(mark.line + 1, ":", mark.column + 1);
}

absl::Status ErrorAt(const std::string& source, const YAML::Mark& mark, const std::string& key,
                     const std::string& message) {
  return absl::InvalidArgumentError(
      absl::StrCat(source, ":", LineCol(mark), ": ", key.empty() ? "" : key + ": ", message));
}

// "; did you mean 'x'?" for the closest option, or "" when none is close enough to be a typo.
std::string Suggestion(const std::string& word, const std::vector<std::string>& options) {
  const std::string best = ClosestName(word, options);
  return best.empty() ? "" : absl::StrCat("; did you mean '", best, "'?");
}

// ---------------------------------------------------------------------------------------------
// Grid values as YAML text: what SetConfigValue reads, what run names and settings show.

std::string DoubleQuoted(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          out += absl::StrFormat("\\x%02x", static_cast<unsigned char>(c));
        } else {
          out += c;
        }
    }
  }
  return out + "\"";
}

// Whether a plain scalar's text reads back as the same plain scalar inside a flow list.
bool SafePlain(const std::string& s) {
  if (s.empty() || s.front() == ' ' || s.back() == ' ') return false;
  if (s.find_first_of(",[]{}#:\"'\\\n\t\r") != std::string::npos) return false;
  return std::string("-?!&*|>%@`").find(s.front()) == std::string::npos ||
         (s.front() == '-' && s.size() > 1 && s[1] != ' ');
}

// Compact flow text of a value: "2", "block_loop", "[1, 2]", "\"300\"". Quoted scalars stay
// quoted, so a quoted number is still refused by a number key. At most `budget` nodes are
// written: YAML aliases can make a few hundred bytes stand for billions of nodes, and a sweep
// file comes from the network. Past the budget the text ends in "...", which no key accepts.
std::string ValueText(const YAML::Node& node, int64_t& budget) {
  if (--budget < 0) return "...";
  switch (node.Type()) {
    case YAML::NodeType::Scalar:
      return IsQuoted(node) || !SafePlain(node.Scalar()) ? DoubleQuoted(node.Scalar())
                                                         : node.Scalar();
    case YAML::NodeType::Sequence: {
      std::vector<std::string> items;
      for (const YAML::Node& item : node) {
        items.push_back(ValueText(item, budget));
        if (budget < 0) break;
      }
      return absl::StrCat("[", absl::StrJoin(items, ", "), "]");
    }
    case YAML::NodeType::Map: {
      std::vector<std::string> items;
      for (const auto& entry : node) {
        items.push_back(
            absl::StrCat(ValueText(entry.first, budget), ": ", ValueText(entry.second, budget)));
        if (budget < 0) break;
      }
      return absl::StrCat("{", absl::StrJoin(items, ", "), "}");
    }
    default:
      return "~";
  }
}

std::string ValueText(const YAML::Node& node) {
  int64_t budget = 10000;
  return ValueText(node, budget);
}

// A value quoted in an error message: short enough to read.
std::string Quoted(const YAML::Node& node) {
  int64_t budget = 50;
  std::string text = ValueText(node, budget);
  return text.size() > 200 ? text.substr(0, 200) + "..." : text;
}

// ---------------------------------------------------------------------------------------------
// Top-level settings.

// Reads a plain integer in [lo, hi].
absl::Status ReadInt(const std::string& source, const YAML::Node& value, const YAML::Mark& mark,
                     const std::string& key, int64_t lo, int64_t hi, const std::string& meaning,
                     int32_t& out) {
  const std::string allowed =
      hi == std::numeric_limits<int32_t>::max()
          ? absl::StrCat("allowed: an integer >= ", lo, meaning)
          : absl::StrCat("allowed: an integer in [", lo, ", ", hi, "]", meaning);
  const std::string s = value.IsScalar() ? value.Scalar() : "";
  int64_t parsed = 0;
  if (!value.IsScalar() || IsQuoted(value) || s.empty() ||
      s.find_first_not_of("+-0123456789") != std::string::npos || !absl::SimpleAtoi(s, &parsed)) {
    return ErrorAt(source, mark, key,
                   absl::StrCat("expected an integer, got ", Shown(value), "; ", allowed,
                                "; write a plain integer without quotes, e.g. ", key, ": ", out));
  }
  if (parsed < lo || parsed > hi) {
    return ErrorAt(source, mark, key,
                   absl::StrCat("is ", parsed, ", outside the range; ", allowed, "; set ", key,
                                parsed < lo ? absl::StrCat(" to ", lo, " or more")
                                            : absl::StrCat(" to at most ", hi)));
  }
  out = static_cast<int32_t>(parsed);
  return absl::OkStatus();
}

bool NameChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
         c == '_' || c == '-';
}

// The sweep's name starts every run name ("<name>/<settings>"), so it has no '/' or spaces.
absl::Status ReadName(const std::string& source, const YAML::Node& value, const YAML::Mark& mark,
                      std::string& out) {
  const std::string allowed = absl::StrCat(
      "allowed: letters, digits, '.', '_' and '-', starting with a letter or digit, at most ",
      kMaxNameLength, " characters");
  if (!value.IsScalar() || value.Scalar().empty()) {
    return ErrorAt(source, mark, "name",
                   absl::StrCat("expected the sweep's name, got ", Shown(value), "; ", allowed,
                                "; write e.g. name: quickstart"));
  }
  const std::string& name = value.Scalar();
  std::string suggestion;
  for (char c : name) suggestion += NameChar(c) ? c : '-';
  bool valid = name.size() <= kMaxNameLength && std::all_of(name.begin(), name.end(), NameChar) &&
               name.front() != '.' && name.front() != '_' && name.front() != '-';
  if (!valid) {
    return ErrorAt(source, mark, "name",
                   absl::StrCat("'", name, "' is not a valid sweep name (run names are <name>/",
                                "<settings>); ", allowed,
                                "; rename it, e.g. name: ", suggestion.substr(0, kMaxNameLength)));
  }
  out = name;
  return absl::OkStatus();
}

// ---------------------------------------------------------------------------------------------
// The parse.

// One axis as parsed: the public GridAxis plus where each value was written (for a named axis,
// where each of its keys' values was).
struct Axis {
  GridAxis axis;
  std::vector<YAML::Mark> value_marks;
  std::vector<std::vector<YAML::Mark>> set_marks;
};

// Whether `values` make a named axis: a non-empty list of mappings.
bool IsNamedAxis(const YAML::Node& values) {
  if (!values.IsSequence() || values.size() == 0) return false;
  for (const YAML::Node& v : values) {
    if (!v.IsMap()) return false;
  }
  return true;
}

// A label: what a run's name shows for a named axis's value.
bool IsLabel(const std::string& s) {
  if (s.empty() || s.size() > 40) return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-';
  });
}

// One exclude entry: (axis index, value index) pairs.
using ExcludeEntry = std::vector<std::pair<size_t, size_t>>;

class SweepParser {
 public:
  explicit SweepParser(std::string source) { spec_.source = std::move(source); }

  absl::StatusOr<SweepSpec> Parse(const YAML::Node& root) {
    absl::Status s = ReadTopLevel(root);
    if (s.ok()) s = ReadBase();
    if (s.ok()) s = ReadGrid();
    if (s.ok()) s = ReadExclude();
    if (s.ok()) s = ReadOverride();
    if (s.ok()) s = Expand();
    if (!s.ok()) return s;
    return std::move(spec_);
  }

 private:
  const std::string& source() const { return spec_.source; }

  absl::Status ReadTopLevel(const YAML::Node& root) {
    root_mark_ = root.Mark();
    if (root.IsNull()) {
      return ErrorAt(source(), root_mark_, "(top level)",
                     absl::StrCat("the sweep file is empty; a mapping with at least name and "
                                  "base; start from ",
                                  kExampleFile, " (docs/sweep.md)"));
    }
    if (!root.IsMap()) {
      return ErrorAt(source(), root_mark_, "(top level)",
                     absl::StrCat("expected a mapping of sweep keys, got ", Shown(root),
                                  "; keys name, description, base, grid, exclude, override, "
                                  "priority, max_concurrent, max_restarts, devices, nodes; "
                                  "start from ",
                                  kExampleFile));
    }
    std::map<std::string, std::string> seen;  // key -> "line:col"
    const std::vector<std::string> keys(std::begin(kSweepKeys), std::end(kSweepKeys));
    for (const auto& entry : root) {
      const YAML::Node& key_node = entry.first;
      const YAML::Node& value = entry.second;
      const YAML::Mark mark = key_node.Mark();
      if (!key_node.IsScalar()) {
        return ErrorAt(source(), mark, "(top level)",
                       "keys must be plain names; the sweep keys of docs/sweep.md; write "
                       "name: value");
      }
      const std::string key = key_node.Scalar();
      if (auto [it, fresh] = seen.emplace(key, LineCol(mark)); !fresh) {
        return ErrorAt(source(), mark, key,
                       absl::StrCat("duplicate key (first at line ", it->second,
                                    "); each key at most once; remove one of them"));
      }
      absl::Status s;
      if (key == "name") {
        s = ReadName(source(), value, mark, spec_.name);
      } else if (key == "description") {
        if (!value.IsNull() && !value.IsScalar()) {
          s = ErrorAt(source(), mark, key,
                      absl::StrCat("expected text, got ", Shown(value),
                                   "; any text; write it on one line, or as a YAML block (|)"));
        } else if (value.IsScalar()) {
          spec_.description = value.Scalar();
        }
      } else if (key == "base") {
        base_node_ = value;
        base_mark_ = mark;
        has_base_ = true;
      } else if (key == "grid") {
        grid_node_ = value;
        grid_mark_ = mark;
      } else if (key == "exclude") {
        exclude_node_ = value;
        exclude_mark_ = mark;
      } else if (key == "override") {
        override_node_ = value;
        override_mark_ = mark;
      } else if (key == "priority") {
        s = ReadInt(source(), value, mark, key, 0, 1000, " (higher runs first)", spec_.priority);
      } else if (key == "max_concurrent") {
        s = ReadInt(source(), value, mark, key, 0, std::numeric_limits<int32_t>::max(),
                    " (0: no limit)", spec_.max_concurrent);
      } else if (key == "max_restarts") {
        s = ReadInt(source(), value, mark, key, 0, 100, "", spec_.max_restarts);
      } else if (key == "devices") {
        s = ReadInt(source(), value, mark, key, 1, 64, " (devices per node of a run)",
                    spec_.devices);
      } else if (key == "nodes") {
        s = ReadInt(source(), value, mark, key, 1, 64, " (workers per run)", spec_.nodes);
      } else if (IsRunConfigKey(key) || IsRunConfigSection(key)) {
        s = ErrorAt(source(), mark, key,
                    absl::StrCat("is a run configuration key, not a sweep key; a sweep's run "
                                 "configuration lives under base: (docs/sweep.md); indent ",
                                 key, " under base:, or to sweep it, list its values under grid:"));
      } else {
        s = ErrorAt(
            source(), mark, key,
            absl::StrCat("unknown key; valid keys at the top level: ", absl::StrJoin(keys, ", "),
                         Suggestion(key, keys).empty()
                             ? "; remove the key or fix its spelling (docs/sweep.md)"
                             : Suggestion(key, keys)));
      }
      if (!s.ok()) return s;
    }
    if (spec_.name.empty()) {
      return ErrorAt(source(), root_mark_, "name",
                     "missing; the sweep's name, which starts every run's name; add e.g. "
                     "name: quickstart at the top level");
    }
    if (!has_base_) {
      return ErrorAt(source(), root_mark_, "base",
                     absl::StrCat("missing; one run's configuration (docs/config.md) that the "
                                  "grid varies; add base: with the run's sections, as in ",
                                  kExampleFile));
    }
    return absl::OkStatus();
  }

  // What must be equal for two combinations to be one run: the canonical JSON and the eval
  // section. Evaluation does not change training (so it is not in the canonical JSON), but two
  // combinations that score different tasks are two runs: merged, one's tasks would be lost.
  // (The checkpoint schedule still merges, as documented.)
  static std::string MergeKey(const RunConfig& cfg) {
    RunConfig key = cfg;
    key.name.clear();
    key.checkpoint = CheckpointConfig{};
    return WorkerConfigJson(key);
  }

  absl::Status ReadBase() {
    if (!base_node_.IsMap()) {
      return ErrorAt(source(), base_mark_, "base",
                     absl::StrCat(base_node_.IsNull() ? "is empty" : "expected a mapping, got ",
                                  base_node_.IsNull() ? "" : Shown(base_node_),
                                  "; a run configuration (variant, model, train, growth, ..., "
                                  "docs/config.md); indent the run's sections under base:, as in ",
                                  kExampleFile));
    }
    absl::StatusOr<RunConfig> base = ParseRunConfigNode(base_node_, source(), false);
    if (!base.ok()) return base.status();
    if (auto it = base->locations.find("name"); it != base->locations.end()) {
      return absl::InvalidArgumentError(
          absl::StrCat(source(), ":", it->second,
                       ": base.name: a sweep names its runs itself (<sweep name>/<grid settings>); "
                       "no name in base; remove it (the sweep's name is the top-level name:)"));
    }
    spec_.base = std::move(*base);
    spec_.base.name = spec_.name;
    // A rule that fails on a default of a section the base does not write points at base:.
    for (const char* section : {"model", "train", "growth", "entropy", "data", "checkpoint"}) {
      spec_.base.locations.emplace(section, LineCol(base_mark_));
    }
    return absl::OkStatus();
  }

  absl::Status ReadGrid() {
    spec_.combinations = 1;                            // the empty product: one run
    if (grid_node_.IsNull()) return absl::OkStatus();  // absent, or "grid:"
    if (!grid_node_.IsMap()) {
      return ErrorAt(source(), grid_mark_, "grid",
                     absl::StrCat("expected a mapping of keys to lists, got ", Shown(grid_node_),
                                  "; dotted run configuration keys, each with a list of "
                                  "values; write e.g. grid: {growth.k_max: [1, 2]}"));
    }
    std::map<std::string, std::string> seen;
    for (const auto& entry : grid_node_) {
      const YAML::Node& key_node = entry.first;
      const YAML::Node& values = entry.second;
      const YAML::Mark mark = key_node.Mark();
      if (!key_node.IsScalar()) {
        return ErrorAt(source(), mark, "grid",
                       "keys must be plain dotted names; run configuration keys such as "
                       "growth.k_max; write key: [values]");
      }
      const std::string key = key_node.Scalar();
      if (auto [it, fresh] = seen.emplace(key, LineCol(mark)); !fresh) {
        return ErrorAt(source(), mark, key,
                       absl::StrCat("duplicate grid key (first at line ", it->second,
                                    "); each key at most once; merge the two lists"));
      }
      if (key == "name") {
        return ErrorAt(source(), mark, key,
                       "cannot be a grid key: the sweep names each run <sweep name>/<grid "
                       "settings>; any run configuration key but name; remove it from the grid");
      }
      if (!IsRunConfigKey(key) && IsNamedAxis(values) && key.find('.') == std::string::npos &&
          !IsRunConfigSection(key)) {
        absl::StatusOr<Axis> named = ReadNamedAxis(key, mark, values);
        if (!named.ok()) return named.status();
        axes_.push_back(*std::move(named));
        continue;
      }
      if (!IsRunConfigKey(key)) {
        // SetConfigValue words the advice: "is a section", or the nearest key.
        RunConfig probe;
        absl::Status s = SetConfigValue(probe, key, "~");
        return absl::InvalidArgumentError(
            absl::StrCat(source(), ":", LineCol(mark), ": ", s.message()));
      }
      if (values.IsNull() || (values.IsSequence() && values.size() == 0)) {
        return ErrorAt(source(), mark, key,
                       "has no values; a list of at least one value; list the values, e.g. "
                       "[1, 2], or remove the key from the grid");
      }
      if (!values.IsSequence()) {
        return ErrorAt(source(), mark, key,
                       absl::StrCat("expected a list of values, got ", Shown(values),
                                    "; a list such as [1, 2] (a list key takes a list of lists: ",
                                    "[[1, 2], [3]]); write [", Quoted(values),
                                    "] for a single value, or set it in base"));
      }
      Axis axis;
      axis.axis.key = key;
      axis.axis.location = LineCol(mark);
      std::map<std::string, std::string> seen_values;
      for (const YAML::Node& value : values) {
        const std::string text = ValueText(value);
        const YAML::Mark value_mark = value.Mark();
        if (auto [it, fresh] = seen_values.emplace(text, LineCol(value_mark)); !fresh) {
          return ErrorAt(source(), value_mark, key,
                         absl::StrCat("value ", text, " is listed twice (first at ", it->second,
                                      "); distinct values; remove one of them"));
        }
        // The value's type is checked once here, at the value, rather than in every run.
        RunConfig probe = spec_.base;
        absl::Status s = SetConfigValue(probe, key, text);
        if (!s.ok()) {
          std::string hint;
          if (!value.IsSequence() && s.message().find("expected a list") != std::string::npos) {
            hint = " (each grid value of a list key is itself a list: [[1, 2], [3]])";
          }
          return absl::InvalidArgumentError(
              absl::StrCat(source(), ":", LineCol(value_mark), ": ", s.message(), hint));
        }
        axis.axis.values.push_back(text);
        axis.value_marks.push_back(value_mark);
      }
      axes_.push_back(std::move(axis));
    }
    // Counting with a cap: the product of large axes must not overflow.
    int64_t combinations = 1;
    std::vector<std::string> sizes;
    for (const Axis& a : axes_) {
      const int64_t n = static_cast<int64_t>(a.axis.values.size());
      sizes.push_back(absl::StrCat(n));
      combinations = std::min<int64_t>(combinations * n, kMaxSweepRuns + 1);
    }
    if (combinations > kMaxSweepRuns) {
      return ErrorAt(source(), grid_mark_, "grid",
                     absl::StrCat(absl::StrJoin(sizes, " x "), " combinations, more than ",
                                  kMaxSweepRuns, "; at most ", kMaxSweepRuns,
                                  " combinations per sweep; split the sweep into several files "
                                  "or list fewer values"));
    }
    spec_.combinations = combinations;
    for (Axis& a : axes_) spec_.grid.push_back(a.axis);
    return absl::OkStatus();
  }

  // One `key: value` that a named axis's value or the override sets: a run configuration key
  // other than name (`name_problem` is the error for name), with a value of the key's type,
  // checked on a copy of the base at the value's line. *text: the value as YAML text.
  absl::Status ReadSetting(const std::string& key, const YAML::Mark& key_mark,
                           const YAML::Node& value, const char* name_problem, std::string* text) {
    if (!IsRunConfigKey(key) || key == "name") {
      RunConfig probe;
      absl::Status st = SetConfigValue(probe, key, "~");
      return absl::InvalidArgumentError(
          absl::StrCat(source(), ":", LineCol(key_mark), ": ",
                       key == "name" ? std::string(name_problem) : std::string(st.message())));
    }
    *text = ValueText(value);
    RunConfig probe = spec_.base;
    if (absl::Status st = SetConfigValue(probe, key, *text); !st.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat(source(), ":", LineCol(value.Mark()), ": ", st.message()));
    }
    return absl::OkStatus();
  }

  // A named axis: each value a mapping {label: L, dotted.key: value, ...} whose keys are set
  // together; the label names the value in run names, settings and exclude entries.
  absl::StatusOr<Axis> ReadNamedAxis(const std::string& key, const YAML::Mark& mark,
                                     const YAML::Node& values) {
    Axis axis;
    axis.axis.key = key;
    axis.axis.location = LineCol(mark);
    std::map<std::string, std::string> seen_labels;
    for (const YAML::Node& value : values) {
      const YAML::Mark value_mark = value.Mark();
      std::string label;
      std::vector<std::pair<std::string, std::string>> set;
      std::vector<YAML::Mark> marks;
      for (const auto& kv : value) {
        const std::string k = kv.first.IsScalar() ? kv.first.Scalar() : ValueText(kv.first);
        const YAML::Mark k_mark = kv.first.Mark();
        if (k == "label") {
          label = kv.second.IsScalar() ? kv.second.Scalar() : "";
          if (!IsLabel(label)) {
            return ErrorAt(source(), k_mark, absl::StrCat(key, ".label"),
                           absl::StrCat("is ", ValueText(kv.second),
                                        "; 1 to 40 letters, digits, '.', '_' or '-' (it becomes "
                                        "part of run names); write e.g. label: 573m"));
          }
          continue;
        }
        std::string text;
        if (absl::Status st = ReadSetting(k, k_mark, kv.second,
                                          "name: cannot be set by the grid; any run configuration "
                                          "key but name; remove it from the axis value",
                                          &text);
            !st.ok()) {
          return st;
        }
        set.emplace_back(k, text);
        marks.push_back(kv.second.Mark());
      }
      if (label.empty()) {
        return ErrorAt(source(), value_mark, key,
                       absl::StrCat("value ", ValueText(value),
                                    " has no label; each value of a named axis is a mapping with "
                                    "a label and the keys it sets; add e.g. label: 573m"));
      }
      if (set.empty()) {
        return ErrorAt(source(), value_mark, key,
                       absl::StrCat("value ", label,
                                    " sets no key; at least one run configuration key besides "
                                    "the label; list the keys it sets, e.g. {label: ",
                                    label, ", model.layers: 16}"));
      }
      if (auto [it, fresh] = seen_labels.emplace(label, LineCol(value_mark)); !fresh) {
        return ErrorAt(source(), value_mark, key,
                       absl::StrCat("label ", label, " is used twice (first at ", it->second,
                                    "); distinct labels; rename one of them"));
      }
      axis.axis.values.push_back(label);
      axis.axis.sets.push_back(std::move(set));
      axis.value_marks.push_back(value_mark);
      axis.set_marks.push_back(std::move(marks));
    }
    return axis;
  }

  // override: dotted run configuration keys set in every run after the grid (a CPU-sized
  // version of a sweep is the sweep file with an override block appended).
  absl::Status ReadOverride() {
    if (override_node_.IsNull()) return absl::OkStatus();
    if (!override_node_.IsMap()) {
      return ErrorAt(source(), override_mark_, "override",
                     absl::StrCat("expected a mapping of run configuration keys to values, got ",
                                  Shown(override_node_),
                                  "; dotted keys set in every run after the grid; write e.g. "
                                  "override: {train.steps: 20}"));
    }
    for (const auto& kv : override_node_) {
      const std::string k = kv.first.IsScalar() ? kv.first.Scalar() : ValueText(kv.first);
      const YAML::Mark k_mark = kv.first.Mark();
      std::string text;
      if (absl::Status st =
              ReadSetting(k, k_mark, kv.second,
                          "name: cannot be overridden; the sweep names its runs; remove it", &text);
          !st.ok()) {
        return st;
      }
      overrides_.emplace_back(k, text);
      override_marks_.push_back(kv.second.Mark());
    }
    return absl::OkStatus();
  }

  absl::Status ReadExclude() {
    if (exclude_node_.IsNull()) return absl::OkStatus();
    if (!exclude_node_.IsSequence()) {
      return ErrorAt(source(), exclude_mark_, "exclude",
                     absl::StrCat("expected a list of mappings, got ", Shown(exclude_node_),
                                  "; entries of grid keys and values, each removing the "
                                  "combinations that match all of it; write e.g. exclude: "
                                  "[{variant: vanilla, growth.k_max: 2}]"));
    }
    std::vector<std::string> grid_keys;
    for (const Axis& a : axes_) grid_keys.push_back(a.axis.key);
    const std::string grid_list =
        grid_keys.empty() ? "none (the grid is empty)" : absl::StrJoin(grid_keys, ", ");
    for (size_t i = 0; i < exclude_node_.size(); ++i) {
      const YAML::Node entry_node = exclude_node_[i];
      const std::string entry_key = absl::StrCat("exclude[", i, "]");
      if (!entry_node.IsMap() || entry_node.size() == 0) {
        return ErrorAt(source(), entry_node.Mark(), entry_key,
                       absl::StrCat("expected a mapping of grid keys to values, got ",
                                    entry_node.IsMap() ? "an empty mapping" : Shown(entry_node),
                                    "; grid keys: ", grid_list,
                                    "; write e.g. {variant: vanilla, growth.k_max: 2}"));
      }
      ExcludeEntry entry;
      std::vector<std::pair<std::string, std::string>> shown;
      for (const auto& kv : entry_node) {
        const YAML::Mark mark = kv.first.Mark();
        const std::string key = kv.first.IsScalar() ? kv.first.Scalar() : ValueText(kv.first);
        const std::string full = absl::StrCat(entry_key, ".", key);
        auto axis_it = std::find(grid_keys.begin(), grid_keys.end(), key);
        if (axis_it == grid_keys.end()) {
          std::string near = Suggestion(key, grid_keys);
          return ErrorAt(
              source(), mark, full,
              absl::StrCat("not a grid key; grid keys: ", grid_list,
                           near.empty() ? "; exclude only names keys of the grid" : near));
        }
        const size_t a = static_cast<size_t>(axis_it - grid_keys.begin());
        for (const std::pair<size_t, size_t>& done : entry) {
          if (done.first == a) {
            return ErrorAt(source(), mark, full,
                           "duplicate key in this entry; each grid key at most once per "
                           "entry; remove one, or write two entries");
          }
        }
        const std::string text = ValueText(kv.second);
        const std::vector<std::string>& values = axes_[a].axis.values;
        auto value_it = std::find(values.begin(), values.end(), text);
        if (value_it == values.end()) {
          return ErrorAt(source(), mark, full,
                         absl::StrCat("value ", text, " is not in the grid; grid values of ", key,
                                      ": ", absl::StrJoin(values, ", "),
                                      Suggestion(text, values).empty()
                                          ? "; use one of them (one value per key and entry)"
                                          : Suggestion(text, values)));
        }
        entry.emplace_back(a, static_cast<size_t>(value_it - values.begin()));
        shown.emplace_back(key, text);
      }
      excludes_.push_back(std::move(entry));
      spec_.exclude.push_back(std::move(shown));
    }
    return absl::OkStatus();
  }

  bool Excluded(const std::vector<size_t>& index) const {
    for (const ExcludeEntry& entry : excludes_) {
      bool all = std::all_of(entry.begin(), entry.end(),
                             [&](const auto& av) { return index[av.first] == av.second; });
      if (all) return true;
    }
    return false;
  }

  // Rewrites "<file>:<l:c>: <key>: ..." as "<file>:<l:c>: run <name>: <key>: ...".
  std::string InRun(const std::string& message, const std::string& run_name) const {
    const std::string prefix = source() + ":";
    if (message.rfind(prefix, 0) == 0) {
      size_t colon = message.find(": ", prefix.size());
      if (colon != std::string::npos) {
        return absl::StrCat(message.substr(0, colon), ": run ", run_name, ": ",
                            message.substr(colon + 2));
      }
    }
    return absl::StrCat(source(), ": run ", run_name, ": ", message);
  }

  // Every rank of a data-parallel run takes batch_size / ranks sequences of each step, so the
  // ranks (devices x nodes) must divide train.batch_size. Points at where batch_size was set:
  // the grid value, the base key, or the base's train section.
  // The per-rank micro-batch must then divide each rank's share (libsgt's ShareOfBatch, the rule
  // sgt-train applies at start).
  absl::Status CheckRanks(const RunConfig& cfg) const {
    const int64_t ranks = int64_t{spec_.devices} * spec_.nodes;
    auto where_of = [&](std::initializer_list<const char*> keys) {
      for (const char* key : keys) {
        if (auto it = cfg.locations.find(key); it != cfg.locations.end()) return it->second;
      }
      return LineCol(base_mark_);
    };
    if (ranks <= 1) return absl::OkStatus();
    if (cfg.train.batch_size % ranks == 0) {
      absl::StatusOr<RankShare> share = ShareOfBatch(
          cfg.train.batch_size, cfg.train.micro_batch_size, 0, static_cast<int>(ranks));
      if (share.ok()) return absl::OkStatus();
      return absl::InvalidArgumentError(
          absl::StrCat(source(), ":", where_of({"train.micro_batch_size", "train"}), ": run ",
                       cfg.name, ": ", share.status().message(), " (devices ", spec_.devices,
                       " x nodes ", spec_.nodes, " ranks)"));
    }
    const std::string where = where_of({"train.batch_size", "train"});
    const int64_t below = cfg.train.batch_size / ranks * ranks;
    const int64_t above = below + ranks;
    return absl::InvalidArgumentError(absl::StrCat(
        source(), ":", where, ": run ", cfg.name, ": train.batch_size: is ", cfg.train.batch_size,
        ", not divisible by the run's ", ranks, " ranks (devices ", spec_.devices, " x nodes ",
        spec_.nodes,
        "; each rank trains on batch_size / ranks sequences of every step); allowed: a multiple "
        "of ",
        ranks, "; set train.batch_size to ",
        below > 0 ? absl::StrCat(below, " or ", above) : absl::StrCat(above),
        ", or change devices or nodes so that devices x nodes divides it"));
  }

  absl::Status Expand() {
    std::map<std::string, size_t> by_json;  // MergeKey -> index in spec_.runs
    std::vector<size_t> index(axes_.size(), 0);
    for (int64_t n = 0; n < spec_.combinations; ++n) {
      if (n > 0) {  // odometer, last axis fastest
        for (size_t a = axes_.size(); a-- > 0;) {
          if (++index[a] < axes_[a].axis.values.size()) break;
          index[a] = 0;
        }
      }
      if (Excluded(index)) {
        ++spec_.excluded;
        continue;
      }
      std::vector<std::pair<std::string, std::string>> settings;
      std::vector<std::string> parts;
      RunConfig cfg = spec_.base;
      for (size_t a = 0; a < axes_.size(); ++a) {
        const GridAxis& axis = axes_[a].axis;
        const std::string& value = axis.values[index[a]];
        settings.emplace_back(axis.key, value);
        parts.push_back(absl::StrCat(axis.key, "=", value));
        // A named axis sets each of its keys; a key axis, its own key.
        const size_t n_set = axis.named() ? axis.sets[index[a]].size() : 1;
        for (size_t i = 0; i < n_set; ++i) {
          const std::string& k = axis.named() ? axis.sets[index[a]][i].first : axis.key;
          const std::string& v = axis.named() ? axis.sets[index[a]][i].second : value;
          const YAML::Mark& where =
              axis.named() ? axes_[a].set_marks[index[a]][i] : axes_[a].value_marks[index[a]];
          absl::Status s = SetConfigValue(cfg, k, v);
          if (!s.ok()) {  // checked in ReadGrid; kept so that a failure cannot pass silently
            return ErrorAt(source(), where, "", std::string(s.message()));
          }
          cfg.locations[k] = LineCol(where);
        }
      }
      for (size_t i = 0; i < overrides_.size(); ++i) {
        absl::Status s = SetConfigValue(cfg, overrides_[i].first, overrides_[i].second);
        if (!s.ok()) return ErrorAt(source(), override_marks_[i], "", std::string(s.message()));
        cfg.locations[overrides_[i].first] = LineCol(override_marks_[i]);
      }
      const std::string combination = absl::StrJoin(parts, ",");
      cfg.name = combination.empty() ? spec_.name : absl::StrCat(spec_.name, "/", combination);
      absl::Status valid = ValidateRunConfig(cfg);
      if (!valid.ok()) {
        return absl::InvalidArgumentError(InRun(std::string(valid.message()), cfg.name));
      }
      if (absl::Status ranks = CheckRanks(cfg); !ranks.ok()) return ranks;
      std::string json = CanonicalJson(cfg);
      const std::string merge_key = MergeKey(cfg);
      if (auto it = by_json.find(merge_key); it != by_json.end()) {
        spec_.runs[it->second].combinations.push_back(combination);
        ++spec_.merged;
        continue;
      }
      SweepRun run;
      run.config_hash = Sha256Hex(json.data(), json.size());
      run.canonical_json = std::move(json);
      run.config = std::move(cfg);
      run.settings = std::move(settings);
      run.combinations.push_back(combination);
      by_json.emplace(merge_key, spec_.runs.size());
      spec_.runs.push_back(std::move(run));
    }
    if (spec_.runs.empty()) {
      return ErrorAt(source(), exclude_mark_, "exclude",
                     absl::StrCat("removes all ", spec_.combinations,
                                  " combinations of the grid, so the sweep has no run; at "
                                  "least one combination must remain; remove or narrow an "
                                  "entry"));
    }
    return absl::OkStatus();
  }

  SweepSpec spec_;
  YAML::Mark root_mark_;
  YAML::Node base_node_, grid_node_, exclude_node_, override_node_;
  YAML::Mark base_mark_, grid_mark_, exclude_mark_, override_mark_;
  std::vector<std::pair<std::string, std::string>> overrides_;
  std::vector<YAML::Mark> override_marks_;
  bool has_base_ = false;
  std::vector<Axis> axes_;
  std::vector<ExcludeEntry> excludes_;
};

}  // namespace

absl::StatusOr<SweepSpec> ParseSweep(const std::string& yaml_text, const std::string& source) {
  const std::string file = source.empty() ? "<sweep>" : source;
  absl::StatusOr<YAML::Node> root = LoadYamlDocument(yaml_text, file);
  if (!root.ok()) return root.status();
  try {
    return SweepParser(file).Parse(*root);
  } catch (const YAML::Exception& e) {  // not expected: the walk checks node types first
    return ErrorAt(
        file, e.mark, "",
        absl::StrCat("cannot read the YAML: ", e.msg, "; see docs/sweep.md; fix the value here"));
  }
}

absl::StatusOr<SweepSpec> LoadSweep(const std::string& path) {
  std::error_code ec;
  std::ifstream in(path);
  if (!std::filesystem::is_regular_file(path, ec) || !in) {
    return absl::NotFoundError(
        absl::StrCat(path, ": cannot open the sweep file; a readable YAML file; check the path"));
  }
  std::stringstream text;
  text << in.rdbuf();
  return ParseSweep(text.str(), path);
}

}  // namespace sgt
