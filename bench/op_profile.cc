// Where one attention pass's time goes, op by op: LibTorch's profiler around the forward and
// backward of TransformerImpl::AttentionSublayer at the benchmark model's width (d_model 256,
// 8 heads, context 256, batch 8), as in sgt-bench-head-loop, printing each op's self time (its
// time less that of the ops it called) per pass, largest first.
//
//   sgt-bench-op-profile [--heads H] [--threads N] [--iters N] [--textbook PATH]...
//
// Compare the table at h = 2 with the one at h = 8 to see which ops do not shrink with h
// (docs/benchmarks.md, "The attention kernel"). The profiler adds a few microseconds per op, so
// read the totals against sgt-bench-head-loop's, not as step times.
#include <torch/csrc/autograd/profiler_legacy.h>
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>
#include <vector>

#include "bench/one_pass.h"
#include "libsgt/torch/model.h"
#include "libsgt/torch/threads.h"

namespace {

namespace prof = torch::autograd::profiler;

struct OpTime {
  double self_us = 0;
  int64_t calls = 0;
};

// Adds each op's self time in `lists` (push/pop pairs per thread) to `ops`.
void Accumulate(const prof::thread_event_lists& lists, std::map<std::string, OpTime>* ops) {
  for (const auto& list : lists) {
    std::vector<std::pair<const prof::LegacyEvent*, double>> open;  // push event, children's time
    for (const prof::LegacyEvent& e : list) {
      if (e.kind() == prof::EventKind::PushRange) {
        open.push_back({&e, 0.0});
      } else if (e.kind() == prof::EventKind::PopRange && !open.empty()) {
        auto [push, children] = open.back();
        open.pop_back();
        const double total = push->cpuElapsedUs(e);
        OpTime& op = (*ops)[push->name()];
        op.self_us += total - children;
        op.calls += 1;
        if (!open.empty()) open.back().second += total;
      }
    }
  }
}

int Usage(const char* problem) {
  std::fprintf(stderr,
               "sgt-bench-op-profile: %s\nusage: sgt-bench-op-profile [--heads H] [--threads N] "
               "[--iters N] [--textbook PATH]...\n",
               problem);
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  int64_t heads = 2, iters = 20;
  int threads = 2;
  sgt::ModelPaths paths;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (i + 1 >= argc) return Usage(("missing a value after " + a).c_str());
    const std::string v = argv[++i];
    if (a == "--heads") {
      heads = std::atoll(v.c_str());
    } else if (a == "--threads") {
      threads = std::atoi(v.c_str());
    } else if (a == "--iters") {
      iters = std::atoll(v.c_str());
    } else if (a == "--textbook") {
      if (!sgt::UseTextbookPath(v, &paths)) return Usage(("unknown path " + v).c_str());
    } else {
      return Usage(("unknown option " + a).c_str());
    }
  }
  if (heads < 1 || heads > 8 || threads < 1 || iters < 1) {
    return Usage("--heads takes 1 to 8, --threads and --iters at least 1");
  }
  sgt::SetComputeThreads(threads);
  sgt::KeepFreedMemoryMapped();
  const sgt::ModelConfig m = sgt::OnePassModel();
  torch::manual_seed(1);
  sgt::Transformer model(m);
  model->set_paths(paths);
  const torch::Tensor selected = sgt::SpreadHeads(heads, m.heads);  // undefined: the base pass
  torch::Tensor x = torch::randn({8, m.context, m.d_model}, torch::requires_grad());
  auto pass = [&] {
    torch::Tensor y = model->AttentionSublayer(0, x, selected, {}, nullptr);
    y.sum().backward();
  };
  for (int i = 0; i < 3; ++i) pass();

  std::map<std::string, OpTime> ops;
  double wall_ms = 0;
  for (int64_t it = 0; it < iters; ++it) {
    torch::profiler::impl::ProfilerConfig cfg(torch::profiler::impl::ProfilerState::CPU);
    const auto t0 = std::chrono::steady_clock::now();
    prof::enableProfilerLegacy(cfg);
    pass();
    prof::thread_event_lists lists = prof::disableProfilerLegacy();
    wall_ms +=
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    Accumulate(lists, &ops);
  }
  std::vector<std::pair<std::string, OpTime>> rows(ops.begin(), ops.end());
  std::sort(rows.begin(), rows.end(),
            [](const auto& a, const auto& b) { return a.second.self_us > b.second.self_us; });
  double self_ms = 0;
  for (const auto& r : rows) self_ms += r.second.self_us / 1e3 / iters;
  std::printf(
      "h = %lld of 8, %d threads: %.2f ms per pass (forward + backward, profiled), "
      "%.2f ms inside ops\n",
      static_cast<long long>(heads), threads, wall_ms / iters, self_ms);
  std::printf("%-60s %10s %8s\n", "op", "self ms", "calls");
  for (const auto& [name, t] : rows) {
    const double ms = t.self_us / 1e3 / iters;
    if (ms < 0.01) continue;
    std::printf("%-60.60s %10.3f %8.1f\n", name.c_str(), ms, static_cast<double>(t.calls) / iters);
  }
  return 0;
}
