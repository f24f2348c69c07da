// The worker's counters, histogram and state gauges (metrics.h, docs/metrics.md).
#include "services/worker/metrics.h"

#include <chrono>

#include "absl/strings/ascii.h"
#include "absl/strings/strip.h"
#include "services/common/metrics.h"

namespace sgt::worker {

namespace v1 = sgt::v1;

namespace {

double Mono() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

}  // namespace

WorkerMetrics::WorkerMetrics(prometheus::Registry& r)
    : sessions_(prometheus::BuildCounter()
                    .Name("sgt_worker_sessions_total")
                    .Help("Sessions opened with the coordinator (the first, then reconnects).")
                    .Register(r)
                    .Add({})),
      exits_(prometheus::BuildCounter()
                 .Name("sgt_worker_run_exits_total")
                 .Help("sgt-train children that ended, by the run state reported.")
                 .Register(r)),
      rows_(prometheus::BuildCounter()
                .Name("sgt_worker_telemetry_rows_total")
                .Help("Telemetry rows read from the children's event streams.")
                .Register(r)
                .Add({})),
      sent_(prometheus::BuildCounter()
                .Name("sgt_worker_telemetry_batches_sent_total")
                .Help("Telemetry batches sent to the coordinator (replays and tries included).")
                .Register(r)
                .Add({})),
      ack_(prometheus::BuildHistogram()
               .Name("sgt_worker_telemetry_ack_seconds")
               .Help("From sending a telemetry batch to its acknowledgement.")
               .Register(r)
               .Add({}, metrics::LatencyBuckets())) {
  for (const char* state : {"succeeded", "paused", "failed", "cancelled", "lost"}) {
    exits_.Add({{"state", state}});
  }
}

void WorkerMetrics::NewSession() {
  sessions_.Increment();
  std::lock_guard<std::mutex> lock(mu_);
  sent_at_.clear();
}

void WorkerMetrics::Sending(const v1::TelemetryBatch& b) {
  sent_.Increment();
  std::lock_guard<std::mutex> lock(mu_);
  sent_at_[{b.run_id(), b.attempt(), b.sequence()}] = Mono();
}

void WorkerMetrics::Acked(const v1::TelemetryAck& a) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = sent_at_.find({a.run_id(), a.attempt(), a.sequence()});
  if (it == sent_at_.end()) return;
  ack_.Observe(Mono() - it->second);
  sent_at_.erase(it);
}

void WorkerMetrics::Rows(int64_t rows) { rows_.Increment(static_cast<double>(rows)); }

void WorkerMetrics::Exit(v1::RunState state) {
  const std::string name =
      absl::AsciiStrToLower(absl::StripPrefix(v1::RunState_Name(state), "RUN_STATE_"));
  exits_.Add({{"state", name}}).Increment();
}

std::vector<prometheus::MetricFamily> WorkerGauges(const WorkerState& s) {
  metrics::Families f;
  f.Gauge("sgt_worker_connected", "1 while the worker holds a session with the coordinator.", {},
          s.connected ? 1 : 0);
  std::map<std::pair<std::string, std::string>, int> devices;
  for (const auto& [kind, busy] : s.devices) {
    devices[{kind, "free"}] += 0;
    devices[{kind, "busy"}] += 0;
    devices[{kind, busy ? "busy" : "free"}] += 1;
  }
  for (const auto& [key, n] : devices) {
    f.Gauge("sgt_worker_devices", "This worker's devices, by kind and state (free, busy).",
            {{"kind", key.first}, {"state", key.second}}, n);
  }
  f.Gauge("sgt_worker_runs_active", "sgt-train children alive.", {}, s.children);
  f.Gauge("sgt_worker_spool_bytes", "Bytes of the telemetry spool's segment files.", {},
          static_cast<double>(s.spool_bytes));
  f.Gauge("sgt_worker_spool_capacity_bytes", "The spool's bound (--spool-max-mb).", {},
          static_cast<double>(s.spool_max_bytes));
  f.Gauge("sgt_worker_spool_batches", "Telemetry batches not yet acknowledged.", {},
          static_cast<double>(s.spool_batches));
  return f.Take();
}

}  // namespace sgt::worker
