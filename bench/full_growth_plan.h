// The structure a benchmark configuration's fixed schedule reaches, for the benchmarks that run a
// model without training it (sgt-bench-eval, sgt-bench-inference): growth.fixed_layers loop
// growth.k_max times, over the first growth.heads heads (SGT) or as whole blocks (Block Loop). A
// trained run picks its heads by entropy; throughput does not depend on which.
#ifndef SGT_BENCH_FULL_GROWTH_PLAN_H_
#define SGT_BENCH_FULL_GROWTH_PLAN_H_

#include "libsgt/core/config.h"
#include "libsgt/torch/model.h"

namespace sgt {

inline LoopPlan FullGrowthPlan(const RunConfig& cfg) {
  LoopPlan plan(cfg.model.layers);
  if (cfg.variant == Variant::kVanilla) return plan;
  for (int64_t l : cfg.growth.fixed_layers) {
    LayerLoop& p = plan[l];
    p.k = cfg.growth.k_max;
    p.whole_block = cfg.variant == Variant::kBlockLoop;
    if (p.whole_block) continue;
    for (int64_t h = 0; h < cfg.growth.heads; ++h) p.head_ids.push_back(h);
    if (cfg.growth.heads < cfg.model.heads) p.heads = torch::tensor(p.head_ids, torch::kLong);
  }
  return plan;
}

}  // namespace sgt

#endif  // SGT_BENCH_FULL_GROWTH_PLAN_H_
