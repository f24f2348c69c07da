// The byte layout of a checkpoint file. See checkpoint_format.h.
#include "libsgt/core/checkpoint_format.h"

#include <cstring>
#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "libsgt/core/sha256.h"

namespace sgt {
namespace {

constexpr char kMagic[8] = {'S', 'G', 'T', 'C', 'K', 'P', 'T', '1'};
constexpr uint64_t kMaxHeaderBytes = 64ull << 20;

void PutU64(std::string& out, uint64_t v) {
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

uint64_t GetU64(const std::string& in, size_t at) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | static_cast<unsigned char>(in[at + i]);
  return v;
}

}  // namespace

std::string CheckpointFileBytes(const CheckpointHeader& header, const std::string& payload) {
  nlohmann::json h;
  h["format"] = "sgt-checkpoint";
  h["step"] = header.step;
  h["config"] = nlohmann::json::parse(header.config_json);
  h["growth"] = nlohmann::json::parse(header.growth_json);
  h["trainer"] = nlohmann::json::parse(header.trainer_json);
  h["payload_sha256"] = Sha256Hex(payload.data(), payload.size());
  const std::string header_text = h.dump();

  std::string file(kMagic, sizeof(kMagic));
  PutU64(file, header_text.size());
  file += header_text;
  PutU64(file, payload.size());
  file += payload;
  return file;
}

absl::StatusOr<CheckpointParts> ParseCheckpointBytes(const std::string& bytes,
                                                     const std::string& path) {
  auto corrupt = [&](const std::string& what) {
    return absl::DataLossError(absl::StrCat(
        "checkpoint ", path, " is unusable: ", what,
        "; it is truncated or corrupted: resume from an earlier checkpoint of the run"));
  };
  if (bytes.size() < sizeof(kMagic) + 8 || std::memcmp(bytes.data(), kMagic, sizeof(kMagic)) != 0) {
    return corrupt("it does not start with the SGTCKPT1 magic");
  }
  size_t at = sizeof(kMagic);
  const uint64_t header_bytes = GetU64(bytes, at);
  at += 8;
  if (header_bytes > kMaxHeaderBytes || at + header_bytes + 8 > bytes.size()) {
    return corrupt(
        absl::StrCat("its header claims ", header_bytes, " bytes but the file has ", bytes.size()));
  }
  nlohmann::json h = nlohmann::json::parse(bytes.begin() + at, bytes.begin() + at + header_bytes,
                                           nullptr, /*allow_exceptions=*/false);
  at += header_bytes;
  if (h.is_discarded() || !h.is_object()) return corrupt("its header is not valid JSON");
  const uint64_t payload_bytes = GetU64(bytes, at);
  at += 8;
  if (at + payload_bytes != bytes.size()) {
    return corrupt(absl::StrCat("its payload should be ", payload_bytes, " bytes but ",
                                bytes.size() - at, " follow the header"));
  }
  // A step that is not an integer (1e300) cannot be converted; a negative one no run reached.
  auto step = h.find("step");
  if (step != h.end() && (!step->is_number_integer() || step->get<int64_t>() < 0)) {
    return corrupt(
        absl::StrCat("its header's step ", step->dump(), " is not a non-negative integer"));
  }
  CheckpointParts p;
  try {
    p.header.step = h.at("step").get<int64_t>();
    p.header.config_json = h.at("config").dump();
    p.header.growth_json = h.at("growth").dump();
    p.header.trainer_json = h.at("trainer").dump();
    p.header.payload_sha256 = h.at("payload_sha256").get<std::string>();
  } catch (const nlohmann::json::exception& e) {
    return corrupt(absl::StrCat("its header lacks a field (", e.what(), ")"));
  }
  p.payload = bytes.substr(at);
  const std::string actual = Sha256Hex(p.payload.data(), p.payload.size());
  if (actual != p.header.payload_sha256) {
    return corrupt(
        absl::StrCat("payload sha256 is ", actual, ", header says ", p.header.payload_sha256));
  }
  return p;
}

}  // namespace sgt
