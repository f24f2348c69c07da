// Attention entropy as the growth rule and telemetry see it (sgt-method.md §2).
//
// The model captures per-pass last-row entropies as tensors (model.h); this file turns them into
// numbers once per step, keeps the training signal's exponential moving average, and runs the
// probe signal: a fixed set of validation sequences measured without gradients.
#ifndef SGT_TORCH_ENTROPY_H_
#define SGT_TORCH_ENTROPY_H_

#include <torch/torch.h>

#include <optional>
#include <string>
#include <vector>

#include "libsgt/core/config.h"
#include "libsgt/core/growth.h"
#include "libsgt/torch/model.h"

namespace sgt {

// passes[l][p][j]: entropy of the j-th head of pass p of layer l (pass 0: every head; loop
// passes: the heads in LayerLoop::head_ids order).
struct EntropyReading {
  std::vector<std::vector<std::vector<double>>> passes;
  std::vector<std::vector<std::vector<int64_t>>> pass_heads;  // [l][p]: head ids of pass p
};

// Sums captures of several micro-batches; Mean() divides by their count and reads the numbers
// (one device-to-host copy per step).
class EntropyAccumulator {
 public:
  void Add(const EntropyCapture& c);
  bool empty() const { return count_ == 0; }
  EntropyReading Mean(const LoopPlan& plan) const;

 private:
  std::vector<std::vector<torch::Tensor>> sum_;
  int64_t count_ = 0;
};

// The per-head matrix the growth rule reads: loop-0 entropies, except that with
// entropy.looped_heads = last_loop the kept heads (S_l of `state`, the structure that produced
// the reading) of a looped layer report their last loop (§9); every other head keeps loop 0,
// also while a fade window makes the loop run every head.
EntropySnapshot GrowthSignal(const EntropyReading& r, const GrowthState& state,
                             LoopedHeadEntropy mode);

// Exponential moving average across steps of the training signal (decay 0.5 by default).
class EntropyEma {
 public:
  explicit EntropyEma(double decay) : decay_(decay) {}
  void Update(const EntropySnapshot& s);
  bool has_value() const { return value_.has_value(); }
  const EntropySnapshot& value() const { return *value_; }
  std::string ToJson() const;
  bool FromJson(const std::string& json);  // false if malformed

 private:
  double decay_;
  std::optional<EntropySnapshot> value_;
};

// Runs `windows` ([P, T] tokens) through the model with no gradient, in chunks of `chunk`
// sequences, and returns the mean entropies: the probe signal.
EntropyReading MeasureProbe(Transformer& model, const torch::Tensor& windows, const LoopPlan& plan,
                            int64_t chunk);

// Loads windows of `window` tokens at `starts` from a token file into an int64 tensor [n, window].
class TokenFile;
torch::Tensor LoadWindows(const TokenFile& file, const std::vector<int64_t>& starts,
                          int64_t window);

}  // namespace sgt

#endif  // SGT_TORCH_ENTROPY_H_
