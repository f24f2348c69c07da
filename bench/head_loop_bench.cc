// How the cost of one attention loop pass scales with the number of looped heads h.
//
// sgt-method.md §3: a loop pass over h of n heads must cost h/n of an attention sublayer. This
// times one attention pass (TransformerImpl::AttentionSublayer: RMSNorm, the heads' projections,
// RoPE, attention, output projection and residual) forward + backward for h = 1, 2, 4, 8 of 8
// heads (the base pass is h = 8) at the benchmark model's width (d_model 256, context 256, batch
// 8); second argument 1 for the fused paths (the default), 0 for the textbook ones
// (ModelPaths::Reference()), 2 for the fused paths with the attention in query blocks of LibTorch
// ops instead of the CPU kernel (cpu_attention.h), 3 for the fused paths without the CPU pass
// (cpu_pass.h); third argument the compute threads, 1 or 2. glibc keeps freed memory mapped, as
// in sgt-train.
#include <benchmark/benchmark.h>
#include <torch/torch.h>

#include "bench/one_pass.h"
#include "libsgt/torch/model.h"
#include "libsgt/torch/threads.h"

namespace {

void BM_LoopPass(benchmark::State& state) {
  sgt::SetComputeThreads(static_cast<int>(state.range(2)));
  const sgt::ModelConfig m = sgt::OnePassModel();
  torch::manual_seed(1);
  sgt::Transformer model(m);
  sgt::ModelPaths paths = state.range(1) != 0 ? sgt::ModelPaths{} : sgt::ModelPaths::Reference();
  if (state.range(1) == 2) sgt::UseTextbookPath("kernel", &paths);
  if (state.range(1) == 3) sgt::UseTextbookPath("pass", &paths);
  model->set_paths(paths);
  const int64_t h = state.range(0);
  torch::Tensor heads = sgt::SpreadHeads(h, m.heads);
  torch::Tensor x = torch::randn({8, m.context, m.d_model}, torch::requires_grad());
  for (auto _ : state) {
    torch::Tensor y = model->AttentionSublayer(0, x, heads, {}, nullptr);
    y.sum().backward();
    benchmark::DoNotOptimize(y.data_ptr());
  }
  state.counters["heads"] = static_cast<double>(h);
  state.counters["fused"] = static_cast<double>(state.range(1));
  state.counters["threads"] = static_cast<double>(state.range(2));
}
BENCHMARK(BM_LoopPass)
    ->ArgsProduct({{1, 2, 4, 8}, {0, 1, 2, 3}, {1, 2}})
    ->Unit(benchmark::kMillisecond);

}  // namespace

int main(int argc, char** argv) {
  sgt::KeepFreedMemoryMapped();
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
