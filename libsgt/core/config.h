// Run configuration: one training run of vanilla, Block Loop or SGT (docs/config.md).
//
// This header is torch-free: the coordinator links it to validate sweeps and plan FLOPs.
// Parsing and validation live in config.cc; every error names the file, line and column,
// the key, the allowed range and the fix.
//
//   absl::StatusOr<RunConfig> cfg = LoadRunConfig("run.yaml");
//   if (!cfg.ok()) { std::cerr << cfg.status().message(); return 2; }
#ifndef SGT_CORE_CONFIG_H_
#define SGT_CORE_CONFIG_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace sgt {

enum class Variant { kVanilla, kBlockLoop, kSgt };

// How looped heads are picked when a layer is activated (paper Table 2 ablations).
enum class HeadPolicy { kHighEntropy, kLowEntropy, kRandom, kAll };

// Which way progressive growth walks the layer stack (paper Table 3).
enum class GrowthDirection { kDeepToShallow, kShallowToDeep };

// progressive: Algorithm 1 (SGT) or top-L at t_start (Block Loop).
// fixed: loop the given layers from a given step (paper Table 2).
enum class GrowthSchedule { kProgressive, kFixed };

// sgt-method.md §9 options: paper default first, the authors' released code second.
enum class HeadTransition { kHard, kFade };
enum class FadeShape { kLinear, kCosine, kExponential };
enum class DeepenRule { kPaper, kReference };
enum class NoCandidateRule { kHold, kFix };

// Which measurement drives growth decisions (sgt-method.md §2).
enum class EntropySignal { kTrain, kProbe };
// For a looped layer, which pass's entropy its kept heads report to the growth rule (§9).
enum class LoopedHeadEntropy { kBase, kLastLoop };

enum class Device { kCpu, kCuda };

struct ModelConfig {
  int64_t layers = 4;
  int64_t d_model = 128;
  int64_t heads = 4;
  int64_t d_ff = 512;
  int64_t context = 128;
  int64_t vocab_size = 4096;
  double norm_eps = 1e-6;
  double init_std = 0.02;
  // Initial weights are normal(0, init_std), resampled outside +/- init_truncation standard
  // deviations; 0 leaves the normal untruncated (OLMo, the reference, truncates at 3).
  double init_truncation = 0.0;
  double rope_theta = 10000.0;

  int64_t d_head() const { return d_model / heads; }
};

struct TrainConfig {
  int64_t steps = 300;
  int64_t batch_size = 16;        // sequences per optimizer step
  int64_t micro_batch_size = 16;  // sequences per forward/backward; divides batch_size
  double lr = 1e-3;
  int64_t warmup_steps = 30;
  double min_lr_ratio = 0.1;
  double weight_decay = 0.1;
  bool decay_norms = false;  // also decay the RMSNorm gains (the reference decays everything)
  double beta1 = 0.9;
  double beta2 = 0.95;
  double eps = 1e-8;
  double grad_clip = 1.0;  // 0 disables clipping
  int64_t eval_interval = 50;
  int64_t eval_batches = 8;                        // validation batches of batch_size sequences
  std::vector<int64_t> extrapolation = {2, 3, 4};  // multiples of context, evaluated at the end
  uint64_t seed = 1;
  int64_t threads = 1;  // intra-op threads on CPU
  Device device = Device::kCpu;
  int64_t log_interval = 1;  // steps between scalar events
};

struct GrowthConfig {
  GrowthSchedule schedule = GrowthSchedule::kProgressive;
  int64_t t_start = 50;
  int64_t delta_t = 50;
  int64_t layers = 2;  // L: target number of looping layers
  int64_t k_max = 1;
  int64_t heads = 1;  // h: looped heads per layer (ignored for head_policy all and Block Loop)
  HeadPolicy head_policy = HeadPolicy::kHighEntropy;
  uint64_t head_seed = 0;  // for head_policy random
  GrowthDirection direction = GrowthDirection::kDeepToShallow;
  bool include_first_layer = false;  // layer 0 eligible (paper Appendix C.4 says no)
  HeadTransition transition = HeadTransition::kHard;
  FadeShape fade = FadeShape::kLinear;
  DeepenRule deepen = DeepenRule::kPaper;
  NoCandidateRule no_candidate = NoCandidateRule::kHold;
  // schedule fixed: these layers loop (K = k_max) after fixed_from_step, 0 meaning from the
  // first step on (the paper's counting of Block Loop).
  std::vector<int64_t> fixed_layers;
  int64_t fixed_from_step = 0;
};

struct EntropyConfig {
  EntropySignal signal = EntropySignal::kTrain;
  double ema_decay = 0.5;
  LoopedHeadEntropy looped_heads = LoopedHeadEntropy::kBase;
  int64_t probe_sequences = 16;
  int64_t telemetry_interval = 10;  // steps between entropy events (0: boundaries only)
  bool probe_telemetry = true;      // also log probe entropies at telemetry steps
};

struct DataConfig {
  std::string train;  // token file (raw little-endian uint16/uint32 + .json sidecar)
  std::string validation;
};

struct CheckpointConfig {
  bool at_boundaries = false;  // write a checkpoint at every growth boundary
  int64_t every = 0;           // and every N steps (0: never)
  int64_t keep = 0;            // newest checkpoints to keep (0: all)
  bool final = true;           // write one after the last step
};

// How training FLOPs are counted (sgt-method.md §6); training itself is the same either way.
struct FlopsConfig {
  // Count the input embedding as a matmul: 4 * d_model * vocab_size per training token (its
  // forward and its weight gradient), as the paper's Table 1 does.
  bool embedding = false;
};

// Zero-shot multiple-choice evaluation (docs/evaluation.md): each task file is scored after the
// last step, and at every checkpoint with at_checkpoints. It does not change training, so, like
// the checkpoint schedule, it is not part of CanonicalJson.
struct EvalConfig {
  std::vector<std::string> tasks;  // task files (JSONL, docs/evaluation.md); the stem names each
  std::string tokenizer;           // SentencePiece model; "": the one data.train's sidecar names
  bool at_checkpoints = false;     // also score at every checkpoint written
  int64_t limit = 0;               // score the first `limit` items of each task (0: all)
  int64_t batch_size = 16;         // sequences per forward pass while scoring
};

struct RunConfig {
  std::string name = "run";
  Variant variant = Variant::kSgt;
  ModelConfig model;
  TrainConfig train;
  GrowthConfig growth;
  EntropyConfig entropy;
  DataConfig data;
  CheckpointConfig checkpoint;
  FlopsConfig flops;
  EvalConfig eval;
  std::string source;  // file the configuration was read from ("" if built in code)
  // Dotted key ("growth.k_max", and sections: "growth") -> "line:col" in `source`, filled by
  // ParseRunConfig so that ValidateRunConfig can point at the line to fix. Not part of the run.
  std::map<std::string, std::string> locations;
};

// Names as written in YAML and JSON ("sgt", "block_loop", "high", ...).
const char* VariantName(Variant v);
const char* HeadPolicyName(HeadPolicy p);
const char* GrowthDirectionName(GrowthDirection d);
const char* DeviceName(Device d);
const char* GrowthScheduleName(GrowthSchedule s);
const char* HeadTransitionName(HeadTransition t);
const char* FadeShapeName(FadeShape f);
const char* DeepenRuleName(DeepenRule r);
const char* NoCandidateRuleName(NoCandidateRule r);
const char* EntropySignalName(EntropySignal s);
const char* LoopedHeadEntropyName(LoopedHeadEntropy e);

// Parses YAML text. `source` names the file in error messages. Unknown keys are errors.
// Data file checks are not done here (see ValidateDataFiles). The result has passed
// ValidateRunConfig, and its `locations` point errors found later at the right line.
absl::StatusOr<RunConfig> ParseRunConfig(const std::string& yaml_text, const std::string& source);

// Reads and parses a YAML file; relative data paths stay as written.
absl::StatusOr<RunConfig> LoadRunConfig(const std::string& path);

// Checks ranges and cross-field constraints (heads divide d_model, h <= heads, L <= eligible
// layers, ...). Returns the first problem found, naming the key and the fix.
absl::Status ValidateRunConfig(const RunConfig& cfg);

// Checks that the data paths are set and name files that exist, have sidecars, and match
// model.vocab_size. Only training needs this: planning and benchmarking read no data.
absl::Status ValidateDataFiles(const RunConfig& cfg);

// Canonical JSON of the effective configuration: keys sorted, fields that do not affect the run
// dropped (growth.* and entropy.* for vanilla). Equal strings mean identical runs.
std::string CanonicalJson(const RunConfig& cfg);

// CanonicalJson plus what a worker needs that does not change the losses: the run's name, its
// checkpoint schedule and its eval section. RunConfigFromJson reads it back whole.
std::string WorkerConfigJson(const RunConfig& cfg);

// Inverse of CanonicalJson (also accepts any JSON with the YAML schema). Used by checkpoints.
absl::StatusOr<RunConfig> RunConfigFromJson(const std::string& json_text);

// What the services need of a run's configuration JSON (as CanonicalJson writes it) without
// parsing and validating all of it: the device kind it trains on and the model's shape. The
// coordinator schedules on `device`, the worker picks devices by it, the run metrics size their
// series by the shape. Missing or mistyped fields (or text that is not JSON) keep the defaults.
struct RunConfigBrief {
  bool is_object = false;  // the text was a JSON object at all
  std::string device = "cpu";
  int layers = 0;
  int heads = 0;
};
RunConfigBrief BriefOfConfigJson(const std::string& json_text);

// Sets a dotted key ("growth.k_max", "train.seed") from a YAML scalar or sequence text, as
// sweeps and `fork --set` need. Errors name the key and the allowed values. Only the value's type
// is checked here: call ValidateRunConfig after the last change.
absl::Status SetConfigValue(RunConfig& cfg, const std::string& dotted_key,
                            const std::string& yaml_value);

}  // namespace sgt

#endif  // SGT_CORE_CONFIG_H_
