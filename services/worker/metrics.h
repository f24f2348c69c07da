// The worker's Prometheus metrics (docs/metrics.md): the counters and the histogram the link
// and the supervisor update as they go (WorkerMetrics), and the state gauges read at a scrape
// (WorkerGauges).
#ifndef SGT_SERVICES_WORKER_METRICS_H_
#define SGT_SERVICES_WORKER_METRICS_H_

#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "prometheus/counter.h"
#include "prometheus/family.h"
#include "prometheus/histogram.h"
#include "prometheus/metric_family.h"
#include "prometheus/registry.h"
#include "sgt/v1/types.pb.h"
#include "sgt/v1/worker.pb.h"

namespace sgt::worker {

// Counters and the acknowledgement histogram, registered on `registry` (which outlives them).
// Thread-safe.
class WorkerMetrics {
 public:
  explicit WorkerMetrics(prometheus::Registry& registry);

  // A session opened: sgt_worker_sessions_total; batches sent on the old one are never
  // acknowledged there.
  void NewSession();
  // A batch goes out now (again, for a replay): noted before the send, which its
  // acknowledgement may overtake.
  void Sending(const sgt::v1::TelemetryBatch& b);
  // Its acknowledgement: sgt_worker_telemetry_ack_seconds (unknown batches are ignored).
  void Acked(const sgt::v1::TelemetryAck& a);
  // `rows` telemetry rows read from a child's event stream.
  void Rows(int64_t rows);
  // A child ended, reported in `state` (RUN_STATE_FAILED counts as "failed").
  void Exit(sgt::v1::RunState state);

 private:
  prometheus::Counter& sessions_;
  prometheus::Family<prometheus::Counter>& exits_;
  prometheus::Counter& rows_;
  prometheus::Counter& sent_;
  prometheus::Histogram& ack_;
  std::mutex mu_;
  std::map<std::tuple<std::string, int32_t, int64_t>, double> sent_at_;  // monotonic seconds
};

// What the state gauges show.
struct WorkerState {
  bool connected = false;                             // a session is open
  std::vector<std::pair<std::string, bool>> devices;  // every device: kind, busy
  int children = 0;                                   // sgt-train children alive
  int64_t spool_bytes = 0, spool_max_bytes = 0, spool_batches = 0;
};

// sgt_worker_connected, sgt_worker_devices{kind,state} (free and busy, 0 included, for every
// kind), sgt_worker_runs_active, sgt_worker_spool_bytes, sgt_worker_spool_capacity_bytes,
// sgt_worker_spool_batches.
std::vector<prometheus::MetricFamily> WorkerGauges(const WorkerState& s);

}  // namespace sgt::worker

#endif  // SGT_SERVICES_WORKER_METRICS_H_
