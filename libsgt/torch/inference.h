// Inference with a key/value cache (docs/evaluation.md, "Inference"): prefill a prompt once, then
// decode a token at a time, under the growth structure a checkpoint recorded.
//
// Every attention pass that runs keeps its own cache: the base pass of each layer over all heads,
// and each loop pass over the looped heads only (a loop pass sees a different input, so its keys
// and values differ from the base pass's); Block Loop keeps one per extra pass of the block. The
// cached forward computes what TransformerImpl::forward computes on the whole sequence, up to
// floating-point reassociation.
//
//   absl::StatusOr<LoadedModel> m = LoadModelForInference("run/checkpoints/step-0000300.sgtckpt",
//                                                           torch::kCPU);
//   KvCache cache;
//   torch::Tensor logits = ForwardCached(*m->model, m->plan, prompt, &cache);  // [B, T, V]
#ifndef SGT_TORCH_INFERENCE_H_
#define SGT_TORCH_INFERENCE_H_

#include <torch/torch.h>

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "libsgt/core/config.h"
#include "libsgt/core/growth.h"
#include "libsgt/torch/model.h"

namespace sgt {

// A trained model ready to run: the checkpoint's configuration, growth state and weights, in eval
// mode on `device`, with the loop plan of its last trained step (fade weights included). That is
// the structure the run's own final evaluations used; at a growth boundary `state` already holds
// the boundary's decision, which only the steps after it (a resumed run) would train with.
struct LoadedModel {
  RunConfig config;
  GrowthState state;
  int64_t step = 0;
  Transformer model{nullptr};
  LoopPlan plan;
};
// Reads a checkpoint written by sgt-train (any variant). Errors name the file.
absl::StatusOr<LoadedModel> LoadModelForInference(const std::string& checkpoint,
                                                  torch::Device device);

// The cached keys and values of every pass. passes[l][p] for layer l's pass p in the order the
// forward runs them (p = 0 the base pass); each k, v is [B, heads of the pass, length, d_head].
struct KvCache {
  struct Pass {
    torch::Tensor k, v;
    // Buffers with room to grow along the positions: k and v are their first `length` positions,
    // and appending writes after them in place unless another cache shares the buffer (a plain
    // copy of this struct), which is then copied first. Undefined: the next append makes them.
    torch::Tensor k_store, v_store;
  };
  std::vector<std::vector<Pass>> passes;
  int64_t length = 0;  // positions cached

  // A copy with each batch row repeated `n` times in place (row b becomes rows b*n .. b*n+n-1):
  // one prompt's cache shared by n continuations.
  KvCache RepeatRows(int64_t n) const;
};

// Runs tokens [B, T] (int64) at positions cache->length .. cache->length + T - 1 under `plan`,
// appends their keys and values to `cache`, and returns logits [B, T, V] (float32). No autograd.
// An empty cache starts a sequence. Positions beyond model.context are allowed (RoPE extends).
torch::Tensor ForwardCached(TransformerImpl& model, const LoopPlan& plan, const torch::Tensor& tokens,
                            KvCache* cache);

struct SampleOptions {
  int64_t max_new_tokens = 128;
  double temperature = 1.0;  // 0: greedy
  int64_t top_k = 0;         // 0: no limit
  double top_p = 1.0;        // nucleus; 1: no limit
  uint64_t seed = 0;
  int64_t stop_token = -1;   // stop a row after this token (-1: never)
};
// Samples continuations of `prompt` [B, T]: returns [B, T + generated] (rows that stopped early
// are padded with stop_token). Deterministic for a given seed on a given device.
torch::Tensor Generate(TransformerImpl& model, const LoopPlan& plan, const torch::Tensor& prompt,
                       const SampleOptions& options);

}  // namespace sgt

#endif  // SGT_TORCH_INFERENCE_H_
