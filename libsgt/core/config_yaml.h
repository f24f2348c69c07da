// The run configuration parser at the level of YAML nodes, for files that embed a run
// configuration in a larger document (a sweep's `base:`, docs/sweep.md).
//
// Kept apart from config.h so that only code which already reads YAML includes yaml-cpp. Errors
// have config.h's form and locations: a node taken from a whole document keeps its line and
// column in that document, so messages point into the embedding file.
//
//   YAML::Node doc = YAML::Load(text);
//   absl::StatusOr<RunConfig> base = ParseRunConfigNode(doc["base"], "sweep.yaml", false);
#ifndef SGT_CORE_CONFIG_YAML_H_
#define SGT_CORE_CONFIG_YAML_H_

#include <yaml-cpp/yaml.h>

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "libsgt/core/config.h"

namespace sgt {

// Parses a mapping node (or a null node: all defaults) as a run configuration, with the key
// and type checks of ParseRunConfig and `locations` recorded as "line:col" in `source`. With
// `validate` false the result has not been through ValidateRunConfig: the caller changes it
// (SetConfigValue) and validates afterwards.
absl::StatusOr<RunConfig> ParseRunConfigNode(const YAML::Node& node, const std::string& source,
                                             bool validate);

// Parses YAML text into a document; a syntax error becomes the same InvalidArgument message
// for every YAML file of the project: "<source>:<line>:<col>: malformed YAML: ...; fix".
absl::StatusOr<YAML::Node> LoadYamlDocument(const std::string& yaml_text,
                                            const std::string& source);

// Whether `dotted_key` is a configurable leaf ("growth.k_max", "variant"), or `name` one of
// the sections ("growth").
bool IsRunConfigKey(const std::string& dotted_key);
bool IsRunConfigSection(const std::string& name);

// The closest of `options` to `word` by edit distance, or "" when none is close enough to be a
// typo: for "did you mean" hints in files that embed a run configuration.
std::string ClosestName(const std::string& word, const std::vector<std::string>& options);

// Whether a scalar was quoted in the file (yaml-cpp tags quoted scalars "!"), and how a node
// is named in an error: "nothing", "a mapping", "a list", "the string \"x\"" or "'x'".
bool IsQuoted(const YAML::Node& node);
std::string Shown(const YAML::Node& node);

}  // namespace sgt

#endif  // SGT_CORE_CONFIG_YAML_H_
