// JSON of the growth state, as checkpoints store it. Decision records are the event log's
// (libsgt/core/event_log.cc).
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "libsgt/core/growth.h"
#include "nlohmann/json.hpp"

namespace sgt {

using nlohmann::json;

std::string GrowthStateToJson(const GrowthState& s) {
  json active = json::array();
  for (const LoopedLayer& l : s.active) {
    active.push_back({{"layer", l.layer},
                      {"k", l.k},
                      {"heads", l.heads},
                      {"whole_block", l.whole_block},
                      {"activated_step", l.activated_step}});
  }
  return json{{"phase", GrowthPhaseName(s.phase)},
              {"num_layers", s.num_layers},
              {"growing_layer", s.growing_layer},
              {"active", active}}
      .dump();
}

namespace {

absl::Status BadState(const std::string& what) {
  return absl::InvalidArgumentError(
      absl::StrCat("growth state JSON: ", what, "; write it with GrowthStateToJson"));
}

bool GetInt(const json& j, const char* key, int64_t* out) {
  auto it = j.find(key);
  if (it == j.end() || !it->is_number_integer()) return false;
  *out = it->get<int64_t>();
  return true;
}

}  // namespace

absl::StatusOr<GrowthState> GrowthStateFromJson(const std::string& json_text) {
  // Parsing without exceptions, and every get<> guarded by a type check: nothing can throw.
  const json j = json::parse(json_text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return BadState("not valid JSON");
  if (!j.is_object()) return BadState("expected an object");
  GrowthState s;
  auto phase = j.find("phase");
  if (phase == j.end() || !phase->is_string()) return BadState("\"phase\" missing");
  const std::string name = phase->get<std::string>();
  bool known = false;
  for (GrowthPhase p : {GrowthPhase::kWarmup, GrowthPhase::kGrowing, GrowthPhase::kFixed}) {
    if (name == GrowthPhaseName(p)) {
      s.phase = p;
      known = true;
    }
  }
  if (!known) {
    return BadState(absl::StrCat("phase \"", name, "\" is not warmup, growing or fixed"));
  }
  if (!GetInt(j, "num_layers", &s.num_layers) || s.num_layers < 0) {
    return BadState("\"num_layers\" must be an integer >= 0");
  }
  if (!GetInt(j, "growing_layer", &s.growing_layer) || s.growing_layer < -1 ||
      s.growing_layer >= s.num_layers) {
    return BadState("\"growing_layer\" must be -1 or a layer index below num_layers");
  }
  auto active = j.find("active");
  if (active == j.end() || !active->is_array()) return BadState("\"active\" must be an array");
  for (const json& a : *active) {
    LoopedLayer l;
    if (!a.is_object() || !GetInt(a, "layer", &l.layer) || !GetInt(a, "k", &l.k) ||
        !GetInt(a, "activated_step", &l.activated_step)) {
      return BadState("each active entry needs integer layer, k and activated_step");
    }
    if (l.layer < 0 || l.layer >= s.num_layers || l.k < 0 || s.Find(l.layer) != nullptr) {
      return BadState(absl::StrCat("active layer ", l.layer, " is out of range or repeated"));
    }
    auto wb = a.find("whole_block");
    auto heads = a.find("heads");
    if (wb == a.end() || !wb->is_boolean() || heads == a.end() || !heads->is_array()) {
      return BadState("each active entry needs boolean whole_block and array heads");
    }
    l.whole_block = wb->get<bool>();
    for (const json& h : *heads) {
      if (!h.is_number_integer() || h.get<int64_t>() < 0 ||
          (!l.heads.empty() && h.get<int64_t>() <= l.heads.back())) {
        return BadState("heads must be ascending distinct integers >= 0");
      }
      l.heads.push_back(h.get<int64_t>());
    }
    s.active.push_back(std::move(l));
  }
  return s;
}

}  // namespace sgt
