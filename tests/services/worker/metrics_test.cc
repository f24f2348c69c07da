// Tests for the worker's metrics (services/worker/metrics.h): the state gauges from a state
// (every kind with both free and busy series), and the counters and acknowledgement histogram
// as a registry collects them, under the names of docs/metrics.md.
#include "services/worker/metrics.h"

#include <map>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "prometheus/registry.h"

namespace sgt::worker {
namespace {

namespace v1 = sgt::v1;

// The sample of `name` whose labels include `labels`; null if none.
const prometheus::ClientMetric* Find(const std::vector<prometheus::MetricFamily>& families,
                                     const std::string& name,
                                     const std::map<std::string, std::string>& labels = {}) {
  for (const prometheus::MetricFamily& f : families) {
    if (f.name != name) continue;
    for (const prometheus::ClientMetric& m : f.metric) {
      size_t matched = 0;
      for (const prometheus::ClientMetric::Label& l : m.label) {
        auto it = labels.find(l.name);
        matched += it != labels.end() && it->second == l.value;
      }
      if (matched == labels.size()) return &m;
    }
  }
  return nullptr;
}

double Gauge(const std::vector<prometheus::MetricFamily>& f, const std::string& name,
             const std::map<std::string, std::string>& labels = {}) {
  const prometheus::ClientMetric* m = Find(f, name, labels);
  EXPECT_NE(m, nullptr) << name;
  return m == nullptr ? -1 : m->gauge.value;
}

TEST(WorkerGaugesTest, StateAsGauges) {
  WorkerState s;
  s.connected = true;
  s.devices = {{"cpu", true}, {"cpu", false}, {"cpu", true}, {"cuda", false}};
  s.children = 2;
  s.spool_bytes = 1234;
  s.spool_max_bytes = 1 << 20;
  s.spool_batches = 3;
  const std::vector<prometheus::MetricFamily> f = WorkerGauges(s);
  EXPECT_EQ(Gauge(f, "sgt_worker_connected"), 1);
  EXPECT_EQ(Gauge(f, "sgt_worker_devices", {{"kind", "cpu"}, {"state", "busy"}}), 2);
  EXPECT_EQ(Gauge(f, "sgt_worker_devices", {{"kind", "cpu"}, {"state", "free"}}), 1);
  EXPECT_EQ(Gauge(f, "sgt_worker_devices", {{"kind", "cuda"}, {"state", "busy"}}), 0);
  EXPECT_EQ(Gauge(f, "sgt_worker_devices", {{"kind", "cuda"}, {"state", "free"}}), 1);
  EXPECT_EQ(Gauge(f, "sgt_worker_runs_active"), 2);
  EXPECT_EQ(Gauge(f, "sgt_worker_spool_bytes"), 1234);
  EXPECT_EQ(Gauge(f, "sgt_worker_spool_capacity_bytes"), 1 << 20);
  EXPECT_EQ(Gauge(f, "sgt_worker_spool_batches"), 3);

  const std::vector<prometheus::MetricFamily> idle = WorkerGauges(WorkerState());
  EXPECT_EQ(Gauge(idle, "sgt_worker_connected"), 0);
  EXPECT_EQ(Find(idle, "sgt_worker_devices"), nullptr);  // no devices, no series
}

TEST(WorkerMetricsTest, CountersAndAckLatency) {
  prometheus::Registry registry;
  WorkerMetrics m(registry);
  // Every exit state has a series from the start.
  for (const char* state : {"succeeded", "paused", "failed", "cancelled", "lost"}) {
    const prometheus::ClientMetric* c =
        Find(registry.Collect(), "sgt_worker_run_exits_total", {{"state", state}});
    ASSERT_NE(c, nullptr) << state;
    EXPECT_EQ(c->counter.value, 0) << state;
  }
  m.NewSession();
  m.NewSession();
  m.Rows(5);
  m.Rows(7);
  m.Exit(v1::RUN_STATE_FAILED);
  m.Exit(v1::RUN_STATE_SUCCEEDED);
  m.Exit(v1::RUN_STATE_SUCCEEDED);
  v1::TelemetryBatch b;
  b.set_run_id("r1");
  b.set_attempt(1);
  b.set_sequence(4);
  m.Sending(b);
  m.Sending(b);  // sent again: one acknowledgement still
  v1::TelemetryAck other;
  other.set_run_id("r1");
  other.set_attempt(1);
  other.set_sequence(5);
  m.Acked(other);  // never sent: ignored
  v1::TelemetryAck ack = other;
  ack.set_sequence(4);
  m.Acked(ack);
  m.Acked(ack);  // a duplicate acknowledgement: observed once

  const std::vector<prometheus::MetricFamily> f = registry.Collect();
  auto counter = [&](const std::string& name, const std::map<std::string, std::string>& l = {}) {
    const prometheus::ClientMetric* c = Find(f, name, l);
    EXPECT_NE(c, nullptr) << name;
    return c == nullptr ? -1 : c->counter.value;
  };
  EXPECT_EQ(counter("sgt_worker_sessions_total"), 2);
  EXPECT_EQ(counter("sgt_worker_telemetry_rows_total"), 12);
  EXPECT_EQ(counter("sgt_worker_telemetry_batches_sent_total"), 2);
  EXPECT_EQ(counter("sgt_worker_run_exits_total", {{"state", "failed"}}), 1);
  EXPECT_EQ(counter("sgt_worker_run_exits_total", {{"state", "succeeded"}}), 2);
  EXPECT_EQ(counter("sgt_worker_run_exits_total", {{"state", "lost"}}), 0);
  const prometheus::ClientMetric* h = Find(f, "sgt_worker_telemetry_ack_seconds");
  ASSERT_NE(h, nullptr);
  EXPECT_EQ(h->histogram.sample_count, 1u);

  // A new session forgets what was sent on the old one.
  m.Sending(b);
  m.NewSession();
  m.Acked(ack);
  h = Find(registry.Collect(), "sgt_worker_telemetry_ack_seconds");
  ASSERT_NE(h, nullptr);
  EXPECT_EQ(h->histogram.sample_count, 1u);
}

}  // namespace
}  // namespace sgt::worker
