// What one scrape of the coordinator's run metrics costs as the fleet grows: RunScience holding
// R active runs of a GPT-2-small-like shape (12 layers x 12 heads, train and probe signals),
// collected and serialized to the text format, as the endpoint does on every scrape; and what
// ingesting one telemetry batch costs. Figures in docs/benchmarks.md.
//
//   build/bin/sgt-bench-metrics
#include <benchmark/benchmark.h>

#include <string>

#include "libsgt/core/event_log.h"
#include "prometheus/text_serializer.h"
#include "services/coordinator/metrics.h"

namespace {

constexpr int kLayers = 12, kHeads = 12;

sgt::v1::TelemetryBatch Batch(int64_t step) {
  sgt::v1::TelemetryBatch b;
  for (auto signal : {sgt::v1::ENTROPY_SIGNAL_TRAIN, sgt::v1::ENTROPY_SIGNAL_PROBE}) {
    for (int l = 0; l < kLayers; ++l) {
      for (int h = 0; h < kHeads; ++h) {
        sgt::v1::EntropyRow* e = b.add_entropy();
        e->set_step(step);
        e->set_signal(signal);
        e->set_layer(l);
        e->set_head(h);
        e->set_value(0.5f + 0.01f * h);
      }
    }
  }
  namespace scalar = sgt::events::scalar;
  for (const char* name : {scalar::kLoss, scalar::kLr, scalar::kTokensPerS, scalar::kFlops,
                           scalar::kVanillaFlops, scalar::kOverhead}) {
    sgt::v1::ScalarRow* s = b.add_scalars();
    s->set_step(step);
    s->set_name(name);
    s->set_value(1.0);
  }
  return b;
}

void Fill(sgt::coord::RunScience& s, int runs) {
  const sgt::v1::TelemetryBatch b = Batch(100);
  for (int r = 1; r <= runs; ++r) {
    sgt::coord::RunInfo info;
    info.sweep = "sweep";
    info.run = "r" + std::to_string(r);
    info.name = "run-" + std::to_string(r);
    info.variant = "sgt";
    info.layers = kLayers;
    info.heads = kHeads;
    s.Track(r, info, {});
    s.Ingest(r, b);
  }
}

void BM_Scrape(benchmark::State& state) {
  sgt::coord::RunScience s;
  Fill(s, static_cast<int>(state.range(0)));
  size_t bytes = 0, series = 0;
  for (auto _ : state) {
    const std::vector<prometheus::MetricFamily> f = s.Collect();
    const std::string text = prometheus::TextSerializer().Serialize(f);
    bytes = text.size();
    series = 0;
    for (const auto& fam : f) series += fam.metric.size();
    benchmark::DoNotOptimize(text.data());
  }
  state.counters["series"] = static_cast<double>(series);
  state.counters["bytes"] = static_cast<double>(bytes);
}
BENCHMARK(BM_Scrape)->Arg(1)->Arg(10)->Arg(100)->Unit(benchmark::kMillisecond);

void BM_IngestBatch(benchmark::State& state) {
  sgt::coord::RunScience s;
  Fill(s, 10);
  const sgt::v1::TelemetryBatch b = Batch(200);
  for (auto _ : state) s.Ingest(5, b);
  state.counters["rows"] = static_cast<double>(b.entropy_size() + b.scalars_size());
}
BENCHMARK(BM_IngestBatch)->Unit(benchmark::kMicrosecond);

}  // namespace

BENCHMARK_MAIN();
