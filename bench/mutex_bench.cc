// What one uncontended lock of the coordinator's mutex costs: absl::Mutex with Abseil's deadlock
// detection on (how Debian builds Abseil, and so the default here) and off (what
// sgt-coordinator sets at start), against std::mutex. Figures in docs/benchmarks.md.
//
//   build/bin/sgt-bench-mutex
#include <benchmark/benchmark.h>

#include <mutex>

#include "absl/synchronization/mutex.h"

namespace {

void AbslMutex(benchmark::State& state, absl::OnDeadlockCycle mode) {
  absl::SetMutexDeadlockDetectionMode(mode);
  absl::Mutex mu;
  int64_t n = 0;
  for (auto _ : state) {
    absl::MutexLock lock(&mu);
    benchmark::DoNotOptimize(++n);
  }
}

void BM_AbslMutexDetectionOn(benchmark::State& state) {
  AbslMutex(state, absl::OnDeadlockCycle::kAbort);
}
void BM_AbslMutexDetectionOff(benchmark::State& state) {
  AbslMutex(state, absl::OnDeadlockCycle::kIgnore);
}
void BM_StdMutex(benchmark::State& state) {
  std::mutex mu;
  int64_t n = 0;
  for (auto _ : state) {
    std::lock_guard<std::mutex> lock(mu);
    benchmark::DoNotOptimize(++n);
  }
}

BENCHMARK(BM_AbslMutexDetectionOn);
BENCHMARK(BM_AbslMutexDetectionOff);
BENCHMARK(BM_StdMutex);

}  // namespace

BENCHMARK_MAIN();
