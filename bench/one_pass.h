// The setting of the benchmarks that time one attention pass alone (sgt-bench-head-loop,
// sgt-bench-op-profile): one layer at the benchmark model's width (d_model 256, 8 heads, context
// 256; batch 8 is the caller's), and the looped heads spread out over the eight.
#ifndef SGT_BENCH_ONE_PASS_H_
#define SGT_BENCH_ONE_PASS_H_

#include <torch/torch.h>

#include <cstdint>

#include "libsgt/torch/model.h"

namespace sgt {

inline ModelConfig OnePassModel() {
  ModelConfig m;
  m.layers = 1;
  m.d_model = 256;
  m.heads = 8;
  m.d_ff = 688;
  m.context = 256;
  m.vocab_size = 256;
  return m;
}

// h of the model's heads, spread out (0, 4 for h = 2 of 8); undefined (the base pass, every head)
// for h = all of them.
inline torch::Tensor SpreadHeads(int64_t h, int64_t heads) {
  if (h >= heads) return {};
  return torch::arange(0, h, torch::kLong) * (heads / h);
}

}  // namespace sgt

#endif  // SGT_BENCH_ONE_PASS_H_
